//! The queue state machine of one centre: decide, then apply.
//!
//! `decide(now, command)` checks a command against the current state and returns the events it
//! would cause, without changing anything. The driver persists those events, and only then calls
//! `apply(events)`. A refused command, or a failed write, therefore leaves the state as it was,
//! and every change a client was told about is on disk first.
//!
//! Time is always passed in (`now_ms`, Unix milliseconds); the core never reads a clock.
//!
//! About 900 lines on purpose: `decide` and `apply` are one state machine over the same tables,
//! and keeping every rule of calling, transferring and ending a ticket side by side is what
//! makes them reviewable. What only reads the queue (statistics, estimates) is in [`stats`];
//! the ticket itself in `super::ticket`.

use std::collections::{BTreeMap, HashMap, VecDeque};

use rustc_hash::FxHashMap;

use protocol::queue::{
    AppointmentSlot, CategoryView, MAX_PAUSE_MINUTES, QueueOp, REMOTE_PREFIX, TicketChannel,
    TicketState, WindowMode, WindowPause, WindowView,
};

use super::error::QueueError;
use super::ticket::{EndReason, Ticket, service_day};

mod stats;

/// Tunables of the queue, from the relay's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Recalls allowed; recalling once more marks the ticket no-show.
    pub max_recalls: u32,
    /// A called ticket not started within this time becomes no-show.
    pub no_show_after_ms: i64,
    /// Service time assumed for estimates before any ticket of a category was served.
    pub default_service_secs: u32,
    /// Most waiting tickets a centre accepts.
    pub max_waiting: usize,
    /// How many recent service times feed the estimate.
    pub service_samples: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_recalls: 3,
            no_show_after_ms: 5 * 60 * 1000,
            default_service_secs: 8 * 60,
            max_waiting: 10_000,
            service_samples: 20,
        }
    }
}

/// 事项类别 of the centre.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    pub id: String,
    pub prefix: String,
    pub name: String,
}

/// A window (窗口) and who is signed in to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub id: String,
    pub name: String,
    pub mode: WindowMode,
    pub category_ids: Vec<String>,
    pub clerk_id: Option<String>,
    pub clerk_name: Option<String>,
    pub clerk_connected: bool,
    /// The ticket called or being served here; derived from tickets, never persisted.
    pub current: Option<String>,
    /// 暂停服务: set by the clerk, cleared when they resume, sign out or sign in again.
    pub pause: Option<WindowPause>,
}

impl Window {
    fn may_take(&self, ticket: &Ticket) -> bool {
        if !self.mode.admits(ticket.channel) {
            return false;
        }
        match &ticket.target_window_id {
            Some(target) => *target == self.id,
            None => self.category_ids.contains(&ticket.category_id),
        }
    }

    pub fn view(&self) -> WindowView {
        WindowView {
            id: self.id.clone(),
            name: self.name.clone(),
            mode: self.mode,
            category_ids: self.category_ids.clone(),
            clerk_id: self.clerk_id.clone(),
            clerk_name: self.clerk_name.clone(),
            clerk_connected: self.clerk_connected,
            current_ticket_id: self.current.clone(),
            pause: self.pause,
        }
    }

    /// Signed in, the clerk's console connected, and not paused: it can call now.
    pub fn is_open(&self) -> bool {
        self.clerk_id.is_some() && self.clerk_connected && self.pause.is_none()
    }
}

/// Something that happens to the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A new ticket from the centre's ticket machine (on-site) or a kiosk (remote).
    Issue {
        channel: TicketChannel,
        category_id: String,
        appointment: Option<AppointmentSlot>,
        device_id: Option<String>,
        extension_point_id: Option<String>,
    },
    OpenWindow {
        clerk_id: String,
        clerk_name: String,
        window_id: String,
    },
    CloseWindow {
        clerk_id: String,
    },
    /// The clerk's console connected or lost its last connection.
    ClerkPresence {
        clerk_id: String,
        connected: bool,
    },
    /// A clerk's operation at the window they are signed in to.
    Op {
        clerk_id: String,
        op: QueueOp,
    },
    /// The resident cancels at the kiosk that took the ticket.
    ResidentCancel {
        device_id: String,
        ticket_id: String,
    },
}

/// What a ticket went through, for the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Issued,
    Called,
    Recalled,
    NoShow,
    Started,
    Finished,
    Transferred,
    Parked,
    Resumed,
    Returned,
    Cancelled,
    Expired,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Issued => "issued",
            Action::Called => "called",
            Action::Recalled => "recalled",
            Action::NoShow => "no_show",
            Action::Started => "started",
            Action::Finished => "finished",
            Action::Transferred => "transferred",
            Action::Parked => "parked",
            Action::Resumed => "resumed",
            Action::Returned => "returned",
            Action::Cancelled => "cancelled",
            Action::Expired => "expired",
        }
    }
}

/// A decided change: the new state of one ticket or one window.
// Events live only between decide and apply, a few at a time; boxing the ticket would add an
// allocation to every operation for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Ticket {
        ticket: Ticket,
        action: Action,
        at_ms: i64,
        clerk_id: Option<String>,
        window_id: Option<String>,
    },
    Window {
        window_id: String,
        clerk_id: Option<String>,
        clerk_name: Option<String>,
        clerk_connected: bool,
        pause: Option<WindowPause>,
    },
}

use self::stats::Accumulator;
pub use self::stats::{Estimate, Staffing};

/// The unified call queue of one centre.
#[derive(Debug)]
pub struct QueueCore {
    centre_id: String,
    config: QueueConfig,
    /// Categories in their configured order.
    categories: Vec<Category>,
    windows: BTreeMap<String, Window>,
    /// Live (non-terminal) tickets. Fx hashing: ids are ours, not attacker-chosen, and this map
    /// is read for every waiting ticket on every step.
    tickets: FxHashMap<String, Ticket>,
    /// Waiting tickets in call order by (queue_ms, seq).
    waiting: BTreeMap<(i64, u64), String>,
    /// The waiting tickets that have an appointment, same key.
    appointments: BTreeMap<(i64, u64), String>,
    /// A kiosk's live ticket.
    by_device: FxHashMap<String, String>,
    /// Waiting tickets per channel: [on-site, remote].
    waiting_by_channel: [u32; 2],
    /// Last number handed out per (service day, prefix).
    counters: HashMap<(i64, String), u32>,
    next_seq: u64,
    service_samples: HashMap<String, VecDeque<u32>>,
    stats_day: i64,
    window_stats: BTreeMap<String, Accumulator>,
    clerk_stats: BTreeMap<String, Accumulator>,
    version: u64,
}

impl QueueCore {
    pub fn new(
        centre_id: impl Into<String>,
        config: QueueConfig,
        categories: Vec<Category>,
        windows: Vec<Window>,
    ) -> Self {
        Self {
            centre_id: centre_id.into(),
            config,
            categories,
            windows: windows.into_iter().map(|w| (w.id.clone(), w)).collect(),
            tickets: FxHashMap::default(),
            waiting: BTreeMap::new(),
            appointments: BTreeMap::new(),
            by_device: FxHashMap::default(),
            waiting_by_channel: [0, 0],
            counters: HashMap::new(),
            next_seq: 1,
            service_samples: HashMap::new(),
            stats_day: i64::MIN,
            window_stats: BTreeMap::new(),
            clerk_stats: BTreeMap::new(),
            version: 0,
        }
    }

    /// Restores a ticket read back from the store (live or finished) without an event.
    pub fn restore_ticket(&mut self, ticket: Ticket) {
        self.absorb(ticket);
    }

    pub fn centre_id(&self) -> &str {
        &self.centre_id
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn ticket(&self, id: &str) -> Option<&Ticket> {
        self.tickets.get(id)
    }

    pub fn category(&self, id: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.id == id)
    }

    pub fn window(&self, id: &str) -> Option<&Window> {
        self.windows.get(id)
    }

    pub fn window_of_clerk(&self, clerk_id: &str) -> Option<&Window> {
        self.windows
            .values()
            .find(|w| w.clerk_id.as_deref() == Some(clerk_id))
    }

    pub fn device_ticket(&self, device_id: &str) -> Option<&Ticket> {
        self.by_device
            .get(device_id)
            .and_then(|id| self.tickets.get(id))
    }

    pub fn waiting_len(&self) -> usize {
        self.waiting.len()
    }

    pub fn categories(&self) -> Vec<CategoryView> {
        self.categories
            .iter()
            .map(|c| CategoryView {
                id: c.id.clone(),
                prefix: c.prefix.clone(),
                name: c.name.clone(),
            })
            .collect()
    }

    pub fn windows(&self) -> Vec<WindowView> {
        self.windows.values().map(Window::view).collect()
    }

    /// Live tickets (not yet finished), in call order for the waiting ones, then the rest.
    pub fn live_tickets(&self) -> impl Iterator<Item = &Ticket> {
        self.tickets.values()
    }

    // -----------------------------------------------------------------------------------------
    // decide
    // -----------------------------------------------------------------------------------------

    /// The events `command` causes at `now_ms`, or why it is refused. Changes nothing.
    pub fn decide(&self, now_ms: i64, command: &Command) -> Result<Vec<Event>, QueueError> {
        match command {
            Command::Issue {
                channel,
                category_id,
                appointment,
                device_id,
                extension_point_id,
            } => self.decide_issue(
                now_ms,
                *channel,
                category_id,
                *appointment,
                device_id.as_deref(),
                extension_point_id.as_deref(),
            ),
            Command::OpenWindow {
                clerk_id,
                clerk_name,
                window_id,
            } => self.decide_open_window(clerk_id, clerk_name, window_id),
            Command::CloseWindow { clerk_id } => {
                let window = self.window_of_clerk(clerk_id).ok_or(QueueError::NoWindow)?;
                if window.current.is_some() {
                    return Err(QueueError::TicketInHand);
                }
                Ok(vec![release(window)])
            }
            Command::ClerkPresence {
                clerk_id,
                connected,
            } => Ok(self
                .window_of_clerk(clerk_id)
                .filter(|w| w.clerk_connected != *connected)
                .map(|w| Event::Window {
                    window_id: w.id.clone(),
                    clerk_id: w.clerk_id.clone(),
                    clerk_name: w.clerk_name.clone(),
                    clerk_connected: *connected,
                    pause: w.pause,
                })
                .into_iter()
                .collect()),
            Command::Op { clerk_id, op } => {
                let window = self.window_of_clerk(clerk_id).ok_or(QueueError::NoWindow)?;
                self.decide_op(now_ms, clerk_id, window, op)
            }
            Command::ResidentCancel {
                device_id,
                ticket_id,
            } => {
                let ticket = self
                    .tickets
                    .get(ticket_id)
                    .ok_or(QueueError::NoSuchTicket)?;
                if ticket.device_id.as_deref() != Some(device_id.as_str()) {
                    return Err(QueueError::NotYourTicket);
                }
                match ticket.state {
                    TicketState::Waiting | TicketState::Called | TicketState::Parked => {
                        let mut t = ticket.clone();
                        end(
                            &mut t,
                            now_ms,
                            TicketState::Cancelled,
                            EndReason::ResidentCancelled,
                        );
                        Ok(vec![ticket_event(t, Action::Cancelled, now_ms, None, None)])
                    }
                    other => Err(QueueError::InvalidState(other)),
                }
            }
        }
    }

    fn decide_issue(
        &self,
        now_ms: i64,
        channel: TicketChannel,
        category_id: &str,
        appointment: Option<AppointmentSlot>,
        device_id: Option<&str>,
        extension_point_id: Option<&str>,
    ) -> Result<Vec<Event>, QueueError> {
        let category = self
            .category(category_id)
            .ok_or(QueueError::NoSuchCategory)?;
        if self.waiting.len() >= self.config.max_waiting {
            return Err(QueueError::QueueFull);
        }
        if let Some(device) = device_id
            && self.by_device.contains_key(device)
        {
            return Err(QueueError::DeviceHasTicket);
        }
        if let Some(slot) = appointment
            && slot.end_ms <= slot.start_ms
        {
            return Err(QueueError::BadAppointment);
        }
        let day = service_day(now_ms);
        let prefix = match channel {
            TicketChannel::OnSite => category.prefix.clone(),
            TicketChannel::Remote => format!("{REMOTE_PREFIX}{}", category.prefix),
        };
        let number_seq = self
            .counters
            .get(&(day, prefix.clone()))
            .copied()
            .unwrap_or(0)
            + 1;
        let seq = self.next_seq;
        let ticket = Ticket {
            id: ticket_id(&self.centre_id, day, seq),
            centre_id: self.centre_id.clone(),
            service_day: day,
            number: format!("{prefix}{number_seq:03}"),
            number_seq,
            channel,
            category_id: category.id.clone(),
            state: TicketState::Waiting,
            created_ms: now_ms,
            queue_ms: now_ms,
            seq,
            appointment,
            device_id: device_id.map(str::to_owned),
            extension_point_id: extension_point_id.map(str::to_owned),
            window_id: None,
            target_window_id: None,
            clerk_id: None,
            first_called_ms: None,
            called_ms: None,
            serving_ms: None,
            finished_ms: None,
            recalls: 0,
            end_reason: None,
        };
        Ok(vec![ticket_event(
            ticket,
            Action::Issued,
            now_ms,
            None,
            None,
        )])
    }

    fn decide_open_window(
        &self,
        clerk_id: &str,
        clerk_name: &str,
        window_id: &str,
    ) -> Result<Vec<Event>, QueueError> {
        let window = self
            .windows
            .get(window_id)
            .ok_or(QueueError::NoSuchWindow)?;
        let mut events = Vec::new();
        match window.clerk_id.as_deref() {
            Some(holder) if holder != clerk_id && window.clerk_connected => {
                return Err(QueueError::WindowTaken);
            }
            _ => {}
        }
        if let Some(previous) = self.window_of_clerk(clerk_id)
            && previous.id != window.id
        {
            if previous.current.is_some() {
                return Err(QueueError::TicketInHand);
            }
            events.push(release(previous));
        }
        events.push(Event::Window {
            window_id: window.id.clone(),
            clerk_id: Some(clerk_id.to_owned()),
            clerk_name: Some(clerk_name.to_owned()),
            clerk_connected: true,
            pause: None,
        });
        Ok(events)
    }

    fn decide_op(
        &self,
        now_ms: i64,
        clerk_id: &str,
        window: &Window,
        op: &QueueOp,
    ) -> Result<Vec<Event>, QueueError> {
        let here = |t: &Ticket| t.window_id.as_deref() == Some(window.id.as_str());
        let event =
            |t: Ticket, action| ticket_event(t, action, now_ms, Some(clerk_id), Some(&window.id));
        match op {
            QueueOp::CallNext => {
                if window.current.is_some() {
                    return Err(QueueError::TicketInHand);
                }
                if window.pause.is_some() {
                    return Err(QueueError::WindowPaused);
                }
                let ticket = self
                    .next_for(window, now_ms)
                    .ok_or(QueueError::QueueEmpty)?;
                Ok(vec![event(
                    self.called(ticket, window, clerk_id, now_ms),
                    Action::Called,
                )])
            }
            QueueOp::Call { ticket_id } => {
                let ticket = self.live(ticket_id)?;
                if ticket.state != TicketState::Waiting {
                    return Err(QueueError::InvalidState(ticket.state));
                }
                if !window.may_take(ticket) {
                    return Err(QueueError::NotEligible);
                }
                if window.current.is_some() {
                    return Err(QueueError::TicketInHand);
                }
                if window.pause.is_some() {
                    return Err(QueueError::WindowPaused);
                }
                Ok(vec![event(
                    self.called(ticket, window, clerk_id, now_ms),
                    Action::Called,
                )])
            }
            QueueOp::Recall { ticket_id } => {
                let ticket = self.at_window(ticket_id, &here, &[TicketState::Called])?;
                let mut t = ticket.clone();
                if t.recalls >= self.config.max_recalls {
                    end(
                        &mut t,
                        now_ms,
                        TicketState::NoShow,
                        EndReason::NoShowRecalls,
                    );
                    return Ok(vec![event(t, Action::NoShow)]);
                }
                t.recalls += 1;
                t.called_ms = Some(now_ms);
                Ok(vec![event(t, Action::Recalled)])
            }
            QueueOp::NoShow { ticket_id } => {
                let mut t = self
                    .at_window(ticket_id, &here, &[TicketState::Called])?
                    .clone();
                end(&mut t, now_ms, TicketState::NoShow, EndReason::NoShowMarked);
                Ok(vec![event(t, Action::NoShow)])
            }
            QueueOp::Start { ticket_id } => {
                let mut t = self
                    .at_window(ticket_id, &here, &[TicketState::Called])?
                    .clone();
                t.state = TicketState::Serving;
                t.serving_ms = Some(now_ms);
                Ok(vec![event(t, Action::Started)])
            }
            QueueOp::Finish { ticket_id } => {
                let mut t = self
                    .at_window(ticket_id, &here, &[TicketState::Serving])?
                    .clone();
                t.state = TicketState::Served;
                t.finished_ms = Some(now_ms);
                Ok(vec![event(t, Action::Finished)])
            }
            QueueOp::Transfer {
                ticket_id,
                category_id,
                window_id,
            } => {
                let ticket = self.at_window(
                    ticket_id,
                    &here,
                    &[
                        TicketState::Called,
                        TicketState::Serving,
                        TicketState::Parked,
                    ],
                )?;
                let mut t = ticket.clone();
                if category_id.is_none() && window_id.is_none() {
                    return Err(QueueError::NoSuchCategory);
                }
                if let Some(category) = category_id {
                    if self.category(category).is_none() {
                        return Err(QueueError::NoSuchCategory);
                    }
                    t.category_id = category.clone();
                }
                t.target_window_id = None;
                if let Some(target) = window_id {
                    let target = self.windows.get(target).ok_or(QueueError::NoSuchWindow)?;
                    if !target.mode.admits(t.channel) {
                        return Err(QueueError::NotEligible);
                    }
                    t.target_window_id = Some(target.id.clone());
                }
                requeue(&mut t);
                Ok(vec![event(t, Action::Transferred)])
            }
            QueueOp::Park { ticket_id } => {
                let mut t = self
                    .at_window(
                        ticket_id,
                        &here,
                        &[TicketState::Called, TicketState::Serving],
                    )?
                    .clone();
                t.state = TicketState::Parked;
                Ok(vec![event(t, Action::Parked)])
            }
            QueueOp::Resume { ticket_id } => {
                let mut t = self
                    .at_window(ticket_id, &here, &[TicketState::Parked])?
                    .clone();
                if window.current.is_some() {
                    return Err(QueueError::TicketInHand);
                }
                if window.pause.is_some() {
                    return Err(QueueError::WindowPaused);
                }
                t.state = TicketState::Called;
                t.called_ms = Some(now_ms);
                t.clerk_id = Some(clerk_id.to_owned());
                Ok(vec![event(t, Action::Resumed)])
            }
            QueueOp::ReturnToQueue { ticket_id } => {
                let mut t = self
                    .at_window(ticket_id, &here, &[TicketState::Parked])?
                    .clone();
                requeue(&mut t);
                Ok(vec![event(t, Action::Returned)])
            }
            QueueOp::Cancel { ticket_id } => {
                let ticket = self.live(ticket_id)?;
                let allowed = match ticket.state {
                    TicketState::Waiting => true,
                    TicketState::Called | TicketState::Parked => here(ticket),
                    _ => false,
                };
                if !allowed {
                    return Err(if ticket.state == TicketState::Waiting || here(ticket) {
                        QueueError::InvalidState(ticket.state)
                    } else {
                        QueueError::NotAtThisWindow
                    });
                }
                let mut t = ticket.clone();
                end(
                    &mut t,
                    now_ms,
                    TicketState::Cancelled,
                    EndReason::ClerkCancelled,
                );
                Ok(vec![event(t, Action::Cancelled)])
            }
            QueueOp::PauseWindow { reason, minutes } => {
                // A resident called or being served is never left at a paused window: finish,
                // park or hand the ticket on first.
                if window.current.is_some() {
                    return Err(QueueError::TicketInHand);
                }
                if *minutes == 0 || *minutes > MAX_PAUSE_MINUTES {
                    return Err(QueueError::BadPause);
                }
                let since_ms = window.pause.map_or(now_ms, |p| p.since_ms);
                Ok(vec![window_event(
                    window,
                    Some(WindowPause {
                        reason: *reason,
                        since_ms,
                        until_ms: now_ms + i64::from(*minutes) * 60_000,
                    }),
                )])
            }
            QueueOp::ResumeWindow => {
                if window.pause.is_none() {
                    return Err(QueueError::NotPaused);
                }
                Ok(vec![window_event(window, None)])
            }
        }
    }

    fn live(&self, ticket_id: &str) -> Result<&Ticket, QueueError> {
        self.tickets.get(ticket_id).ok_or(QueueError::NoSuchTicket)
    }

    fn at_window(
        &self,
        ticket_id: &str,
        here: &dyn Fn(&Ticket) -> bool,
        states: &[TicketState],
    ) -> Result<&Ticket, QueueError> {
        let ticket = self.live(ticket_id)?;
        if !here(ticket) {
            return Err(QueueError::NotAtThisWindow);
        }
        if !states.contains(&ticket.state) {
            return Err(QueueError::InvalidState(ticket.state));
        }
        Ok(ticket)
    }

    fn called(&self, ticket: &Ticket, window: &Window, clerk_id: &str, now_ms: i64) -> Ticket {
        let mut t = ticket.clone();
        t.state = TicketState::Called;
        t.window_id = Some(window.id.clone());
        t.clerk_id = Some(clerk_id.to_owned());
        t.first_called_ms.get_or_insert(now_ms);
        t.called_ms = Some(now_ms);
        t.recalls = 0;
        t
    }

    /// The ticket "call next" takes at `window`: appointments within their slot first, then
    /// every waiting ticket by arrival.
    pub fn next_for(&self, window: &Window, now_ms: i64) -> Option<&Ticket> {
        self.call_order(now_ms).find(|t| window.may_take(t))
    }

    /// Waiting tickets in the order "call next" considers them.
    fn call_order(&self, now_ms: i64) -> impl Iterator<Item = &Ticket> {
        let in_slot = move |t: &&Ticket| t.appointment.is_some_and(|a| a.contains(now_ms));
        let first = self
            .appointments
            .values()
            .filter_map(|id| self.tickets.get(id))
            .filter(in_slot);
        let rest = self
            .waiting
            .values()
            .filter_map(|id| self.tickets.get(id))
            .filter(move |t| !in_slot(t));
        first.chain(rest)
    }

    // -----------------------------------------------------------------------------------------
    // time
    // -----------------------------------------------------------------------------------------

    /// Changes that are due at `now_ms` without anyone asking: no-show after the call timeout,
    /// and tickets left over from an earlier service day.
    pub fn decide_timeouts(&self, now_ms: i64) -> Vec<Event> {
        let today = service_day(now_ms);
        let mut events = Vec::new();
        for t in self.tickets.values() {
            if t.service_day < today {
                let mut t = t.clone();
                end(&mut t, now_ms, TicketState::Cancelled, EndReason::DayClosed);
                events.push(ticket_event(t, Action::Expired, now_ms, None, None));
            } else if t.state == TicketState::Called
                && t.called_ms
                    .is_some_and(|c| now_ms - c >= self.config.no_show_after_ms)
            {
                let mut t = t.clone();
                let window = t.window_id.clone();
                end(
                    &mut t,
                    now_ms,
                    TicketState::NoShow,
                    EndReason::NoShowTimeout,
                );
                events.push(ticket_event(
                    t,
                    Action::NoShow,
                    now_ms,
                    None,
                    window.as_deref(),
                ));
            }
        }
        events.sort_by_key(|e| match e {
            Event::Ticket { ticket, .. } => ticket.seq,
            Event::Window { .. } => 0,
        });
        events
    }

    /// When `decide_timeouts` next has something to do.
    pub fn next_timeout(&self, now_ms: i64) -> i64 {
        const SHANGHAI_OFFSET_MS: i64 = 8 * 3600 * 1000;
        let next_day = (service_day(now_ms) + 1) * 86_400_000 - SHANGHAI_OFFSET_MS;
        self.windows
            .values()
            .filter_map(|w| w.current.as_ref())
            .filter_map(|id| self.tickets.get(id))
            .filter(|t| t.state == TicketState::Called)
            .filter_map(|t| t.called_ms)
            .map(|c| c + self.config.no_show_after_ms)
            .fold(next_day, i64::min)
    }

    // -----------------------------------------------------------------------------------------
    // apply
    // -----------------------------------------------------------------------------------------

    /// Applies events returned by `decide` (after they were stored). Bumps the version once.
    pub fn apply(&mut self, events: &[Event]) {
        for event in events {
            match event {
                Event::Ticket { ticket, .. } => self.absorb(ticket.clone()),
                Event::Window {
                    window_id,
                    clerk_id,
                    clerk_name,
                    clerk_connected,
                    pause,
                } => {
                    if let Some(w) = self.windows.get_mut(window_id) {
                        w.clerk_id.clone_from(clerk_id);
                        w.clerk_name.clone_from(clerk_name);
                        w.clerk_connected = *clerk_connected;
                        w.pause = *pause;
                    }
                }
            }
        }
        self.version += 1;
    }

    /// Restores a window's sign-in read back from the store (the console is not connected yet).
    pub fn restore_window_clerk(&mut self, window_id: &str, clerk_id: &str, clerk_name: &str) {
        if let Some(w) = self.windows.get_mut(window_id) {
            w.clerk_id = Some(clerk_id.to_owned());
            w.clerk_name = Some(clerk_name.to_owned());
            w.clerk_connected = false;
        }
    }

    /// Restores a signed-in window's pause read back from the store.
    pub fn restore_window_pause(&mut self, window_id: &str, pause: WindowPause) {
        if let Some(w) = self.windows.get_mut(window_id)
            && w.clerk_id.is_some()
        {
            w.pause = Some(pause);
        }
    }

    fn absorb(&mut self, ticket: Ticket) {
        let key = (ticket.queue_ms, ticket.seq);
        if let Some(old) = self.tickets.remove(&ticket.id) {
            if self.waiting.remove(&(old.queue_ms, old.seq)).is_some() {
                self.waiting_by_channel[channel_index(old.channel)] -= 1;
            }
            self.appointments.remove(&(old.queue_ms, old.seq));
        }
        for w in self.windows.values_mut() {
            if w.current.as_deref() == Some(ticket.id.as_str()) {
                w.current = None;
            }
        }
        self.next_seq = self.next_seq.max(ticket.seq + 1);
        let counter = self
            .counters
            .entry((ticket.service_day, number_prefix(&ticket.number).to_owned()))
            .or_insert(0);
        *counter = (*counter).max(ticket.number_seq);

        if ticket.state.is_terminal() {
            if let Some(device) = &ticket.device_id
                && self.by_device.get(device) == Some(&ticket.id)
            {
                self.by_device.remove(device);
            }
            if ticket.state == TicketState::Served {
                self.count_served(&ticket);
            }
            return;
        }
        match ticket.state {
            TicketState::Waiting => {
                self.waiting.insert(key, ticket.id.clone());
                self.waiting_by_channel[channel_index(ticket.channel)] += 1;
                if ticket.appointment.is_some() {
                    self.appointments.insert(key, ticket.id.clone());
                }
            }
            TicketState::Called | TicketState::Serving => {
                if let Some(w) = ticket
                    .window_id
                    .as_ref()
                    .and_then(|w| self.windows.get_mut(w))
                {
                    w.current = Some(ticket.id.clone());
                }
            }
            _ => {}
        }
        if let Some(device) = &ticket.device_id {
            self.by_device.insert(device.clone(), ticket.id.clone());
        }
        self.tickets.insert(ticket.id.clone(), ticket);
    }
}

fn ticket_event(
    ticket: Ticket,
    action: Action,
    at_ms: i64,
    clerk_id: Option<&str>,
    window_id: Option<&str>,
) -> Event {
    Event::Ticket {
        ticket,
        action,
        at_ms,
        clerk_id: clerk_id.map(str::to_owned),
        window_id: window_id.map(str::to_owned),
    }
}

fn release(window: &Window) -> Event {
    Event::Window {
        window_id: window.id.clone(),
        clerk_id: None,
        clerk_name: None,
        clerk_connected: false,
        pause: None,
    }
}

/// The window as it is, with `pause` set or cleared.
fn window_event(window: &Window, pause: Option<WindowPause>) -> Event {
    Event::Window {
        window_id: window.id.clone(),
        clerk_id: window.clerk_id.clone(),
        clerk_name: window.clerk_name.clone(),
        clerk_connected: window.clerk_connected,
        pause,
    }
}

fn end(t: &mut Ticket, now_ms: i64, state: TicketState, reason: EndReason) {
    t.state = state;
    t.finished_ms = Some(now_ms);
    t.end_reason = Some(reason);
}

/// Back to waiting at the original place in line.
fn requeue(t: &mut Ticket) {
    t.state = TicketState::Waiting;
    t.window_id = None;
    t.called_ms = None;
    t.serving_ms = None;
    t.recalls = 0;
}

fn channel_index(c: TicketChannel) -> usize {
    match c {
        TicketChannel::OnSite => 0,
        TicketChannel::Remote => 1,
    }
}

fn number_prefix(number: &str) -> &str {
    number.trim_end_matches(|c: char| c.is_ascii_digit())
}

fn ticket_id(centre_id: &str, day: i64, seq: u64) -> String {
    format!("{centre_id}-{day}-{seq}")
}
