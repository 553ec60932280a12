//! When remote windows work and which slots they offer: `[[appointments.centres]]` of the
//! relay's configuration, and the pure arithmetic on it (no clock, no I/O).
//!
//! A centre's remote windows keep weekly hours with dated exceptions (`protocol::hours`, the
//! same type the extension points use). Each opening period is cut into slots of
//! `slot_minutes` from its opening; a remainder shorter than a slot is not offered. Each slot
//! takes `capacity` bookings per category, or the category's own number in
//! `category_capacity` (0 there: the category is not bookable).

use std::collections::BTreeMap;

use protocol::hours::{Date, ServiceHours, day_start, shanghai};
use protocol::queue::AppointmentSlot;
use serde::{Deserialize, Serialize};

/// One centre's remote-window hours and slot sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentreSchedule {
    pub centre_id: String,
    /// The remote windows' working hours (Shanghai time).
    pub hours: ServiceHours,
    /// Length of one slot, in minutes (5–240).
    #[serde(default = "default_slot_minutes")]
    pub slot_minutes: u16,
    /// Bookings one slot takes per category (1–100).
    #[serde(default = "default_capacity")]
    pub capacity: u32,
    /// Per-category exceptions to `capacity`; 0 closes a category to bookings.
    #[serde(default)]
    pub category_capacity: BTreeMap<String, u32>,
}

fn default_slot_minutes() -> u16 {
    30
}

fn default_capacity() -> u32 {
    2
}

impl CentreSchedule {
    pub fn validate(&self) -> Result<(), String> {
        if self.centre_id.trim().is_empty() {
            return Err("centre_id must not be empty".into());
        }
        self.hours
            .validate()
            .map_err(|p| format!("centre {}: hours: {p}", self.centre_id))?;
        if !(5..=240).contains(&self.slot_minutes) {
            return Err(format!(
                "centre {}: slot_minutes must be between 5 and 240",
                self.centre_id
            ));
        }
        if !(1..=100).contains(&self.capacity) {
            return Err(format!(
                "centre {}: capacity must be between 1 and 100",
                self.centre_id
            ));
        }
        if let Some((cat, n)) = self.category_capacity.iter().find(|(_, n)| **n > 100) {
            return Err(format!(
                "centre {}: category_capacity {cat} = {n} is above 100",
                self.centre_id
            ));
        }
        Ok(())
    }

    /// Bookings one slot of `category_id` takes (0: not bookable).
    pub fn capacity_of(&self, category_id: &str) -> u32 {
        self.category_capacity
            .get(category_id)
            .copied()
            .unwrap_or(self.capacity)
    }

    /// The slots of one Shanghai date, in order.
    pub fn slots_on(&self, date: Date) -> Vec<AppointmentSlot> {
        let base = day_start(date);
        let step = u32::from(self.slot_minutes);
        let mut out = Vec::new();
        for p in self.hours.periods_on(date) {
            let (open, close) = (u32::from(p.open.minutes()), u32::from(p.close.minutes()));
            let mut m = open;
            while m + step <= close {
                out.push(AppointmentSlot {
                    start_ms: base + i64::from(m) * 60_000,
                    end_ms: base + i64::from(m + step) * 60_000,
                });
                m += step;
            }
        }
        out
    }

    /// The slot of `category_id` starting exactly at `start_ms`, if the schedule has one.
    pub fn slot_at(&self, start_ms: i64) -> Option<AppointmentSlot> {
        let (date, _) = shanghai(start_ms);
        self.slots_on(date)
            .into_iter()
            .find(|s| s.start_ms == start_ms)
    }

    /// Whether the remote windows work at `now_ms` by their hours.
    pub fn is_open_at(&self, now_ms: i64) -> bool {
        self.hours.is_open_at(now_ms)
    }

    /// The next time the remote windows open *after* `now_ms` (the start of the next
    /// opening period, Unix ms), looking two weeks ahead. When they are open now this is the
    /// next period's start, not now: the kiosk asks when no window is staffed at the moment.
    pub fn next_opening_after(&self, now_ms: i64) -> Option<i64> {
        let (today, _) = shanghai(now_ms);
        let first = today.days_since_epoch();
        (first..first + 14).find_map(|day| {
            let date = Date::from_days_since_epoch(day);
            let base = day_start(date);
            self.hours
                .periods_on(date)
                .into_iter()
                .map(|p| base + i64::from(p.open.minutes()) * 60_000)
                .find(|start| *start > now_ms)
        })
    }
}

/// Every slot that starts after `now_ms` on the `days` Shanghai dates from today on.
pub fn upcoming_slots(schedule: &CentreSchedule, now_ms: i64, days: u32) -> Vec<AppointmentSlot> {
    let (today, _) = shanghai(now_ms);
    let first = today.days_since_epoch();
    (first..first + i64::from(days))
        .flat_map(|d| schedule.slots_on(Date::from_days_since_epoch(d)))
        .filter(|s| s.start_ms > now_ms)
        .collect()
}

/// The Shanghai date (days since 1970-01-01) of a slot.
pub fn service_day_of(slot: AppointmentSlot) -> i64 {
    shanghai(slot.start_ms).0.days_since_epoch()
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::hours::{ClockTime, DateException, Period};

    fn schedule() -> CentreSchedule {
        let mut hours = ServiceHours::weekdays(
            ClockTime::new(9, 0).expect("time"),
            ClockTime::new(11, 45).expect("time"),
        );
        hours.exceptions.push(DateException {
            date: Date::new(2026, 12, 9).expect("date"),
            periods: vec![],
            note: "停电检修".into(),
        });
        hours.exceptions.push(DateException {
            date: Date::new(2026, 12, 12).expect("date"),
            periods: vec![Period {
                open: ClockTime::new(13, 0).expect("time"),
                close: ClockTime::new(14, 0).expect("time"),
            }],
            note: "调休上班".into(),
        });
        CentreSchedule {
            centre_id: "c1".into(),
            hours,
            slot_minutes: 30,
            capacity: 2,
            category_capacity: BTreeMap::from([("closed".into(), 0), ("big".into(), 5)]),
        }
    }

    /// Unix ms of a Shanghai wall time.
    fn at(y: i32, mo: u8, d: u8, h: u16, mi: u16) -> i64 {
        day_start(Date::new(y, mo, d).expect("date")) + i64::from(h * 60 + mi) * 60_000
    }

    #[test]
    fn periods_are_cut_into_whole_slots() {
        let s = schedule();
        // Tuesday 2026-12-08: 9:00–11:45 gives five 30-minute slots; 11:30–11:45 is too short.
        let slots = s.slots_on(Date::new(2026, 12, 8).expect("date"));
        assert_eq!(slots.len(), 5);
        assert_eq!(slots[0].start_ms, at(2026, 12, 8, 9, 0));
        assert_eq!(slots[4].end_ms, at(2026, 12, 8, 11, 30));
        // The closed exception day has none; the make-up Saturday has two.
        assert!(s.slots_on(Date::new(2026, 12, 9).expect("date")).is_empty());
        assert_eq!(s.slots_on(Date::new(2026, 12, 12).expect("date")).len(), 2);
        assert!(
            s.slots_on(Date::new(2026, 12, 13).expect("date"))
                .is_empty()
        );
    }

    #[test]
    fn upcoming_slots_skip_the_past_and_span_the_days_asked() {
        let s = schedule();
        let now = at(2026, 12, 8, 10, 10);
        let slots = upcoming_slots(&s, now, 7);
        assert_eq!(slots[0].start_ms, at(2026, 12, 8, 10, 30));
        // 8th: 10:30, 11:00; 9th closed; 10th, 11th: 5 each; 12th: 2; 13th none; 14th: 5.
        assert_eq!(slots.len(), 2 + 5 + 5 + 2 + 5);
        assert_eq!(
            s.slot_at(at(2026, 12, 10, 9, 30)).map(|x| x.end_ms),
            Some(at(2026, 12, 10, 10, 0))
        );
        assert_eq!(s.slot_at(at(2026, 12, 10, 9, 40)), None);
    }

    #[test]
    fn next_opening_is_the_next_period_start_after_now() {
        let s = schedule();
        assert_eq!(
            s.next_opening_after(at(2026, 12, 8, 8, 0)),
            Some(at(2026, 12, 8, 9, 0))
        );
        // Open now: the next period, skipping the closed 9th.
        assert_eq!(
            s.next_opening_after(at(2026, 12, 8, 10, 0)),
            Some(at(2026, 12, 10, 9, 0))
        );
        assert!(s.is_open_at(at(2026, 12, 8, 10, 0)));
        assert!(!s.is_open_at(at(2026, 12, 9, 10, 0)));
    }

    #[test]
    fn capacity_per_category_and_validation() {
        let s = schedule();
        assert_eq!(s.capacity_of("a"), 2);
        assert_eq!(s.capacity_of("big"), 5);
        assert_eq!(s.capacity_of("closed"), 0);
        assert!(s.validate().is_ok());
        let mut bad = s.clone();
        bad.slot_minutes = 2;
        assert!(bad.validate().is_err());
        let mut bad = s.clone();
        bad.capacity = 0;
        assert!(bad.validate().is_err());
        let mut bad = s;
        bad.hours.weekly[0].weekdays.push(9);
        assert!(
            bad.validate()
                .expect_err("a weekday 9 is refused")
                .contains("weekday")
        );
    }
}
