//! When the daily automatic self-test runs (sans-IO: the driver passes the time in).
//!
//! Once a day at `[selftest] daily_at`, Shanghai time. At that moment it is skipped when the
//! extension point is open (its structured service hours say so: a self-test plays a tone and
//! takes the devices, which must not happen while residents are served), when the kiosk is busy
//! with a ticket, or when the moment was missed by more than [`LATE_LIMIT_MS`] (the kiosk was
//! off or asleep: running late could run into opening time). Missed days are not caught up.

use protocol::hours::{ClockTime, Date, ServiceHours, day_start, shanghai};

/// A due run this late is skipped rather than run.
pub const LATE_LIMIT_MS: i64 = 30 * 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Run,
    Skip(SkipReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The moment falls inside the extension point's service hours.
    InServiceHours,
    /// A resident's ticket is live, or another self-test is running.
    Busy,
    /// The moment passed more than [`LATE_LIMIT_MS`] ago.
    Missed,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::InServiceHours => "inside service hours",
            SkipReason::Busy => "kiosk busy",
            SkipReason::Missed => "missed",
        }
    }
}

/// The daily schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailySchedule {
    at: ClockTime,
    next_due_ms: i64,
}

/// The first instant after `after_ms` that is `at` o'clock in Shanghai.
pub fn next_occurrence(at: ClockTime, after_ms: i64) -> i64 {
    let (today, _) = shanghai(after_ms);
    let at_ms = i64::from(at.minutes()) * 60_000;
    let candidate = day_start(today) + at_ms;
    if candidate > after_ms {
        candidate
    } else {
        day_start(Date::from_days_since_epoch(today.days_since_epoch() + 1)) + at_ms
    }
}

impl DailySchedule {
    pub fn new(at: ClockTime, now_ms: i64) -> DailySchedule {
        DailySchedule {
            at,
            next_due_ms: next_occurrence(at, now_ms),
        }
    }

    /// When to wake up next.
    pub fn next_due_ms(&self) -> i64 {
        self.next_due_ms
    }

    /// `None` before the due moment; otherwise the decision for it, and the schedule moves to
    /// the next day. `hours`: the extension point's structured hours, if known (unknown hours
    /// do not stop the run: `daily_at` is chosen outside service hours anyway).
    pub fn poll(
        &mut self,
        now_ms: i64,
        hours: Option<&ServiceHours>,
        busy: bool,
    ) -> Option<Decision> {
        if now_ms < self.next_due_ms {
            return None;
        }
        let due = self.next_due_ms;
        self.next_due_ms = next_occurrence(self.at, now_ms.max(due));
        Some(if now_ms - due > LATE_LIMIT_MS {
            Decision::Skip(SkipReason::Missed)
        } else if hours.is_some_and(|h| h.is_open_at(due)) {
            Decision::Skip(SkipReason::InServiceHours)
        } else if busy {
            Decision::Skip(SkipReason::Busy)
        } else {
            Decision::Run
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::hours::{DateException, Period};

    const MINUTE: i64 = 60_000;
    const DAY: i64 = 86_400_000;

    fn at(h: u8, m: u8) -> ClockTime {
        ClockTime::new(h, m).expect("time")
    }

    /// Unix ms of a Shanghai date and time.
    fn sh(y: i32, mo: u8, d: u8, h: u8, mi: u8) -> i64 {
        day_start(Date::new(y, mo, d).expect("date"))
            + i64::from(h) * 60 * MINUTE
            + i64::from(mi) * MINUTE
    }

    /// Drives the schedule minute by minute from `from` for `days`, as the driver would;
    /// returns every decision with its time.
    fn drive(
        s: &mut DailySchedule,
        from: i64,
        days: i64,
        hours: Option<&ServiceHours>,
    ) -> Vec<(i64, Decision)> {
        let mut out = Vec::new();
        let mut now = from;
        // Bounded: one step per minute.
        for _ in 0..days * 24 * 60 {
            if let Some(d) = s.poll(now, hours, false) {
                out.push((now, d));
            }
            now += MINUTE;
        }
        out
    }

    #[test]
    fn runs_once_a_day_at_the_time_in_shanghai() {
        // Monday 2026-11-23, 12:00 Shanghai.
        let start = sh(2026, 11, 23, 12, 0);
        let mut s = DailySchedule::new(at(6, 30), start);
        assert_eq!(s.next_due_ms(), sh(2026, 11, 24, 6, 30));
        let weekdays = ServiceHours::weekdays(at(9, 0), at(17, 0));
        let decisions = drive(&mut s, start, 7, Some(&weekdays));
        assert_eq!(decisions.len(), 7);
        for (i, (when, d)) in decisions.iter().enumerate() {
            assert_eq!(*d, Decision::Run);
            assert_eq!(*when, sh(2026, 11, 24, 6, 30) + i as i64 * DAY);
        }
    }

    #[test]
    fn skipped_inside_service_hours_run_on_closed_days() {
        // 10:00 is inside weekday hours: skipped Monday to Friday, run at the weekend.
        let start = sh(2026, 11, 23, 0, 0); // Monday
        let mut s = DailySchedule::new(at(10, 0), start);
        let mut hours = ServiceHours::weekdays(at(9, 0), at(17, 0));
        // Wednesday is a holiday (closed).
        hours.exceptions.push(DateException {
            date: Date::new(2026, 11, 25).expect("date"),
            periods: vec![],
            note: String::new(),
        });
        let decisions: Vec<Decision> = drive(&mut s, start, 7, Some(&hours))
            .into_iter()
            .map(|(_, d)| d)
            .collect();
        let skip = Decision::Skip(SkipReason::InServiceHours);
        assert_eq!(
            decisions,
            vec![
                skip,
                skip,
                Decision::Run,
                skip,
                skip,
                Decision::Run,
                Decision::Run
            ]
        );
        // A make-up working Saturday (open) skips it too.
        let mut s = DailySchedule::new(at(10, 0), sh(2026, 11, 27, 12, 0));
        hours.exceptions.push(DateException {
            date: Date::new(2026, 11, 28).expect("date"),
            periods: vec![Period {
                open: at(9, 0),
                close: at(17, 0),
            }],
            note: String::new(),
        });
        assert_eq!(
            s.poll(sh(2026, 11, 28, 10, 0), Some(&hours), false),
            Some(skip)
        );
        // Unknown hours do not stop it.
        assert_eq!(
            s.poll(sh(2026, 11, 29, 10, 0), None, false),
            Some(Decision::Run)
        );
    }

    #[test]
    fn busy_and_missed_moments_are_skipped_without_catching_up() {
        let start = sh(2026, 11, 23, 0, 0);
        let mut s = DailySchedule::new(at(6, 30), start);
        assert_eq!(s.poll(sh(2026, 11, 23, 6, 29), None, false), None);
        assert_eq!(
            s.poll(sh(2026, 11, 23, 6, 30), None, true),
            Some(Decision::Skip(SkipReason::Busy))
        );
        // Asleep for three days: one "missed", then the next morning as usual.
        assert_eq!(
            s.poll(sh(2026, 11, 27, 9, 0), None, false),
            Some(Decision::Skip(SkipReason::Missed))
        );
        assert_eq!(s.next_due_ms(), sh(2026, 11, 28, 6, 30));
        assert_eq!(
            s.poll(sh(2026, 11, 28, 6, 31), None, false),
            Some(Decision::Run)
        );
        // A little late (the kiosk woke at 06:40) still runs.
        assert_eq!(
            s.poll(sh(2026, 11, 29, 6, 40), None, false),
            Some(Decision::Run)
        );
    }

    #[test]
    fn next_occurrence_crosses_midnight_in_shanghai_not_utc() {
        // 23:00 Shanghai is 15:00 UTC; 06:30 next is the following Shanghai morning.
        let now = sh(2026, 12, 31, 23, 0);
        assert_eq!(next_occurrence(at(6, 30), now), sh(2027, 1, 1, 6, 30));
        assert_eq!(next_occurrence(at(23, 30), now), sh(2026, 12, 31, 23, 30));
        // Exactly at the time: the next day's.
        assert_eq!(next_occurrence(at(23, 0), now), sh(2027, 1, 1, 23, 0));
    }
}
