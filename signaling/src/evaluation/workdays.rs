//! Working days (工作日) for follow-up deadlines: Monday to Friday, less the configured public
//! holidays, plus the configured make-up working days (调休上班) that fall on a weekend.
//!
//! Pure arithmetic on Shanghai dates; the caller passes the instant.

use std::collections::BTreeSet;

use protocol::hours::{Date, day_start, shanghai};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkCalendar {
    holidays: BTreeSet<Date>,
    makeup_workdays: BTreeSet<Date>,
}

impl WorkCalendar {
    pub fn new(
        holidays: impl IntoIterator<Item = Date>,
        makeup: impl IntoIterator<Item = Date>,
    ) -> Self {
        Self {
            holidays: holidays.into_iter().collect(),
            makeup_workdays: makeup.into_iter().collect(),
        }
    }

    pub fn is_working_day(&self, date: Date) -> bool {
        if self.makeup_workdays.contains(&date) {
            return true;
        }
        date.weekday() <= 5 && !self.holidays.contains(&date)
    }

    /// The deadline of something opened at `opened_ms` with `working_days` to deal with it:
    /// the `working_days`-th working day after the opening date (the opening day itself does
    /// not count), due at the end of that day. Returns the date and the instant it ends.
    pub fn deadline(&self, opened_ms: i64, working_days: u32) -> (Date, i64) {
        let (opened, _) = shanghai(opened_ms);
        let mut day = opened.days_since_epoch();
        let mut left = working_days;
        // A calendar year holds well over 200 working days, so this ends quickly even for
        // the largest setting; the bound only guards against a calendar of holidays only.
        let mut guard = 0u32;
        while left > 0 && guard < 3660 {
            day += 1;
            guard += 1;
            if self.is_working_day(Date::from_days_since_epoch(day)) {
                left -= 1;
            }
        }
        let due = Date::from_days_since_epoch(day);
        (due, end_of(due))
    }
}

/// The first instant after `date` ends, Shanghai time.
pub fn end_of(date: Date) -> i64 {
    day_start(Date::from_days_since_epoch(date.days_since_epoch() + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        Date::parse(s).expect("date")
    }

    fn at(date: &str, hour: i64) -> i64 {
        day_start(d(date)) + hour * 3_600_000
    }

    #[test]
    fn five_working_days_skip_the_weekend() {
        let cal = WorkCalendar::default();
        // Monday 2026-11-23, 10:00 → Monday 2026-11-30.
        let (due, due_ms) = cal.deadline(at("2026-11-23", 10), 5);
        assert_eq!(due, d("2026-11-30"));
        assert_eq!(due_ms, day_start(d("2026-12-01")));
        // Friday evening → the following Friday.
        assert_eq!(cal.deadline(at("2026-11-27", 23), 5).0, d("2026-12-04"));
        // Saturday → the following Friday (Monday is the first working day).
        assert_eq!(cal.deadline(at("2026-11-28", 9), 5).0, d("2026-12-04"));
    }

    #[test]
    fn holidays_are_skipped_and_makeup_days_count() {
        // National Day week 2026: 10-01 … 10-07 off, Saturday 10-10 a make-up working day.
        let holidays = (1..=7).map(|n| d(&format!("2026-10-{n:02}")));
        let cal = WorkCalendar::new(holidays, [d("2026-10-10")]);
        // Opened Wednesday 09-30: 10-08 (Thu), 10-09 (Fri), 10-10 (Sat, make-up), 10-12, 10-13.
        assert_eq!(cal.deadline(at("2026-09-30", 15), 5).0, d("2026-10-13"));
        assert!(cal.is_working_day(d("2026-10-10")));
        assert!(!cal.is_working_day(d("2026-10-05")));
        assert!(!cal.is_working_day(d("2026-10-11")));
    }

    #[test]
    fn shanghai_midnight_decides_the_opening_date() {
        let cal = WorkCalendar::default();
        // 2026-11-23 23:30 Shanghai is 15:30 UTC the same day; 00:30 is the next date.
        assert_eq!(
            cal.deadline(at("2026-11-23", 23) + 1_800_000, 1).0,
            d("2026-11-24")
        );
        assert_eq!(
            cal.deadline(at("2026-11-24", 0) + 1_800_000, 1).0,
            d("2026-11-25")
        );
    }
}
