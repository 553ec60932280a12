//! Statistics and estimates of one centre's queue: each window's and clerk's served count and
//! average wait and service time today, the recent service time per category, and every waiting
//! ticket's position and estimated wait. Part of [`QueueCore`]; kept apart from its decide/apply
//! logic because it only reads the queue (and `count_served`, which `apply` calls, only updates
//! these figures).

use std::collections::HashMap;

use protocol::queue::{QueueStats, TicketChannel, TicketView, WindowPause};
use rustc_hash::FxHashMap;

use super::{QueueCore, channel_index};
use crate::queue::ticket::{Ticket, service_day};

#[derive(Debug, Clone, Default)]
pub(super) struct Accumulator {
    name: String,
    served: u32,
    wait_sum: i64,
    wait_n: u32,
    service_sum: i64,
    service_n: u32,
}

/// Position and estimate of a waiting ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    pub ahead: u32,
    pub eta_seconds: Option<u32>,
    /// Windows that could take the ticket and can call now.
    pub open: u32,
    /// When none can call now but some are paused: the pause that ends first.
    pub paused: Option<WindowPause>,
}

/// Which windows could serve a category's remote tickets right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staffing {
    /// Signed in, console connected, not paused.
    pub open: u32,
    /// The paused ones' pause that ends first.
    pub paused: Option<WindowPause>,
}

impl QueueCore {
    pub(super) fn count_served(&mut self, ticket: &Ticket) {
        let day = ticket
            .finished_ms
            .map(service_day)
            .unwrap_or(ticket.service_day);
        if day > self.stats_day {
            self.stats_day = day;
            self.window_stats.clear();
            self.clerk_stats.clear();
        }
        if let Some(secs) = ticket.service_seconds() {
            let samples = self
                .service_samples
                .entry(ticket.category_id.clone())
                .or_default();
            samples.push_back(u32::try_from(secs).unwrap_or(u32::MAX));
            while samples.len() > self.config.service_samples {
                samples.pop_front();
            }
        }
        if day < self.stats_day {
            return;
        }
        let window_name = ticket
            .window_id
            .as_ref()
            .and_then(|w| self.windows.get(w))
            .map(|w| w.name.clone());
        let clerk_name = ticket
            .window_id
            .as_ref()
            .and_then(|w| self.windows.get(w))
            .and_then(|w| {
                (w.clerk_id == ticket.clerk_id)
                    .then(|| w.clerk_name.clone())
                    .flatten()
            });
        if let Some(window) = &ticket.window_id {
            let acc = self.window_stats.entry(window.clone()).or_default();
            add_sample(acc, ticket, window_name);
        }
        if let Some(clerk) = &ticket.clerk_id {
            let acc = self.clerk_stats.entry(clerk.clone()).or_default();
            add_sample(acc, ticket, clerk_name);
        }
    }

    // -----------------------------------------------------------------------------------------
    // views
    // -----------------------------------------------------------------------------------------

    /// Average recent service time of a category, in seconds.
    pub fn service_estimate(&self, category_id: &str) -> u32 {
        match self.service_samples.get(category_id) {
            Some(s) if !s.is_empty() => {
                let sum: u64 = s.iter().map(|v| u64::from(*v)).sum();
                u32::try_from(sum / s.len() as u64).unwrap_or(u32::MAX)
            }
            _ => self.config.default_service_secs,
        }
    }

    /// Position and estimated wait of every waiting ticket, in one pass over the call order.
    ///
    /// A ticket's competitors are the waiting tickets of the same category (or sent to the same
    /// window) that would be called before it; the estimate divides their expected service
    /// time by the number of open windows that could take the ticket.
    pub fn estimates(&self, now_ms: i64) -> HashMap<&str, Estimate> {
        self.estimates_where(now_ms, |_| true)
            .into_iter()
            .map(|(t, e)| (t.id.as_str(), e))
            .collect()
    }

    /// Like [`estimates`](Self::estimates), but only for the tickets `wanted` accepts (the
    /// others are still counted as competitors). The driver asks for kiosk tickets only.
    pub fn estimates_where(
        &self,
        now_ms: i64,
        wanted: impl Fn(&Ticket) -> bool,
    ) -> Vec<(&Ticket, Estimate)> {
        let mut ahead: FxHashMap<(bool, &str), u32> = FxHashMap::default();
        let mut windows_for: FxHashMap<(bool, &str, TicketChannel), Staffing> =
            FxHashMap::default();
        let mut out = Vec::new();
        for t in self.call_order(now_ms) {
            let group = match &t.target_window_id {
                Some(w) => (true, w.as_str()),
                None => (false, t.category_id.as_str()),
            };
            let n = ahead.entry(group).or_insert(0);
            let position = *n;
            *n += 1;
            if !wanted(t) {
                continue;
            }
            let staffing = *windows_for
                .entry((group.0, group.1, t.channel))
                .or_insert_with(|| self.staffing_for(|w| w.may_take(t)));
            let per = u64::from(self.service_estimate(&t.category_id));
            let share = |windows: u32| {
                u32::try_from(u64::from(position) * per / u64::from(windows)).unwrap_or(u32::MAX)
            };
            // Paused windows are counted from the moment the first of them is expected back,
            // as if only they served; an open window makes the pauses irrelevant.
            let eta_seconds = if staffing.open > 0 {
                Some(share(staffing.open))
            } else {
                staffing.paused.map(|p| {
                    let back = u32::try_from(((p.until_ms - now_ms).max(0) + 999) / 1000)
                        .unwrap_or(u32::MAX);
                    back.saturating_add(share(self.paused_count(|w| w.may_take(t)).max(1)))
                })
            };
            out.push((
                t,
                Estimate {
                    ahead: position,
                    eta_seconds,
                    open: staffing.open,
                    paused: if staffing.open > 0 {
                        None
                    } else {
                        staffing.paused
                    },
                },
            ));
        }
        out
    }

    /// Open windows among those `serves` accepts, and the earliest-ending pause among them.
    fn staffing_for(&self, serves: impl Fn(&super::Window) -> bool) -> Staffing {
        let mut open = 0u32;
        let mut paused: Option<WindowPause> = None;
        for w in self.windows.values().filter(|w| serves(w)) {
            if w.is_open() {
                open = open.saturating_add(1);
            } else if w.clerk_id.is_some()
                && w.clerk_connected
                && let Some(p) = w.pause
                && paused.is_none_or(|q| p.until_ms < q.until_ms)
            {
                paused = Some(p);
            }
        }
        Staffing { open, paused }
    }

    fn paused_count(&self, serves: impl Fn(&super::Window) -> bool) -> u32 {
        let n = self
            .windows
            .values()
            .filter(|w| serves(w) && w.clerk_connected && w.clerk_id.is_some() && w.pause.is_some())
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// For each category, in their configured order, which windows could take a remote ticket
    /// of it now: what a kiosk may offer (only categories with an open window).
    pub fn remote_staffing(&self) -> Vec<(&str, Staffing)> {
        self.categories
            .iter()
            .map(|c| {
                let staffing = self.staffing_for(|w| {
                    w.mode.admits(TicketChannel::Remote) && w.category_ids.contains(&c.id)
                });
                (c.id.as_str(), staffing)
            })
            .collect()
    }

    /// Every live ticket, with positions and estimates for the waiting ones.
    pub fn ticket_views(&self, now_ms: i64) -> Vec<TicketView> {
        let estimates = self.estimates(now_ms);
        let mut views: Vec<(i64, u64, TicketView)> = self
            .tickets
            .values()
            .map(|t| {
                let mut v = t.view();
                if let Some(e) = estimates.get(t.id.as_str()) {
                    v.ahead = Some(e.ahead);
                    v.eta_seconds = e.eta_seconds;
                }
                (t.queue_ms, t.seq, v)
            })
            .collect();
        views.sort_by_key(|(q, s, _)| (*q, *s));
        views.into_iter().map(|(_, _, v)| v).collect()
    }

    pub fn stats(&self) -> QueueStats {
        let waiting = |c| self.waiting_by_channel[channel_index(c)];
        let windows = self
            .window_stats
            .iter()
            .map(|(id, acc)| {
                let mut s = acc.stats(id);
                if let Some(w) = self.windows.get(id) {
                    s.name.clone_from(&w.name);
                }
                s
            })
            .collect();
        QueueStats {
            waiting_on_site: waiting(TicketChannel::OnSite),
            waiting_remote: waiting(TicketChannel::Remote),
            windows,
            clerks: self
                .clerk_stats
                .iter()
                .map(|(id, acc)| acc.stats(id))
                .collect(),
        }
    }
}

impl Accumulator {
    fn stats(&self, id: &str) -> protocol::queue::ServiceStats {
        let avg = |sum: i64, n: u32| {
            (n > 0).then(|| u32::try_from(sum / i64::from(n)).unwrap_or(u32::MAX))
        };
        protocol::queue::ServiceStats {
            id: id.to_owned(),
            name: self.name.clone(),
            served: self.served,
            avg_wait_seconds: avg(self.wait_sum, self.wait_n),
            avg_service_seconds: avg(self.service_sum, self.service_n),
        }
    }
}

fn add_sample(acc: &mut Accumulator, ticket: &Ticket, name: Option<String>) {
    if let Some(name) = name {
        acc.name = name;
    }
    acc.served += 1;
    if let Some(w) = ticket.wait_seconds() {
        acc.wait_sum += w;
        acc.wait_n += 1;
    }
    if let Some(s) = ticket.service_seconds() {
        acc.service_sum += s;
        acc.service_n += 1;
    }
}
