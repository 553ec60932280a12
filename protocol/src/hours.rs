//! Service hours (服务时间) of an extension point or centre: weekly periods plus dated
//! exceptions (public holidays closed, make-up working days open), in Shanghai time.
//!
//! Pure data and arithmetic, no clock: callers pass the instant they ask about.

use serde::{Deserialize, Serialize};

/// Shanghai is UTC+8 all year.
const SHANGHAI_OFFSET_MS: i64 = 8 * 3600 * 1000;

/// Minutes after midnight, written "HH:MM" on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClockTime(u16);

impl ClockTime {
    pub fn new(hour: u8, minute: u8) -> Option<Self> {
        (hour < 24 && minute < 60).then(|| Self(u16::from(hour) * 60 + u16::from(minute)))
    }

    /// 0:00, the start of a day.
    pub const MIDNIGHT: ClockTime = ClockTime(0);
    /// 24:00, the end of a day, is allowed as a closing time.
    pub const END_OF_DAY: ClockTime = ClockTime(24 * 60);

    pub fn minutes(self) -> u16 {
        self.0
    }

    pub fn parse(s: &str) -> Option<Self> {
        let (h, m) = s.trim().split_once(':')?;
        if h.is_empty() || h.len() > 2 || m.len() != 2 {
            return None;
        }
        let (h, m): (u8, u8) = (h.parse().ok()?, m.parse().ok()?);
        if h == 24 && m == 0 {
            return Some(Self::END_OF_DAY);
        }
        Self::new(h, m)
    }
}

impl std::fmt::Display for ClockTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl Serialize for ClockTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:02}:{:02}", self.0 / 60, self.0 % 60))
    }
}

impl<'de> Deserialize<'de> for ClockTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid time {s:?}, expected HH:MM")))
    }
}

/// A calendar date, written "YYYY-MM-DD" on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: i32,
    pub month: u8,
    pub day: u8,
}

impl Date {
    pub fn new(year: i32, month: u8, day: u8) -> Option<Self> {
        let days_in_month = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if is_leap(year) => 29,
            2 => 28,
            _ => return None,
        };
        (day >= 1 && day <= days_in_month).then_some(Self { year, month, day })
    }

    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.trim().splitn(3, '-');
        let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return None;
        }
        Self::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
    }

    /// Days since 1970-01-01 (proleptic Gregorian).
    pub fn days_since_epoch(self) -> i64 {
        // Howard Hinnant's days_from_civil.
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    pub fn from_days_since_epoch(z: i64) -> Self {
        // Howard Hinnant's civil_from_days.
        let z = z + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = u8::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
        let month = u8::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
        let year = i32::try_from(yoe + era * 400 + i64::from(month <= 2)).unwrap_or(1970);
        Self { year, month, day }
    }

    /// ISO weekday: Monday = 1 … Sunday = 7.
    pub fn weekday(self) -> u8 {
        // 1970-01-01 was a Thursday (4).
        u8::try_from((self.days_since_epoch() + 3).rem_euclid(7) + 1).unwrap_or(1)
    }
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl Serialize for Date {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("invalid date {s:?}, expected YYYY-MM-DD"))
        })
    }
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// One opening period within a day, `[open, close)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub open: ClockTime,
    pub close: ClockTime,
}

/// Periods that repeat on the given weekdays (Monday = 1 … Sunday = 7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeeklyPeriods {
    pub weekdays: Vec<u8>,
    pub periods: Vec<Period>,
}

/// A date whose hours differ from the weekly pattern: no periods means closed all day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateException {
    pub date: Date,
    #[serde(default)]
    pub periods: Vec<Period>,
    /// Why, e.g. "国庆节" or "调休上班".
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceHours {
    pub weekly: Vec<WeeklyPeriods>,
    #[serde(default)]
    pub exceptions: Vec<DateException>,
}

/// Why a set of service hours is not valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoursProblem {
    BadWeekday(u8),
    EmptyPeriod(Period),
    Overlap { weekday: u8 },
    DuplicateException(Date),
}

impl std::fmt::Display for HoursProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HoursProblem::BadWeekday(d) => {
                write!(f, "星期应为1至7 / weekday must be 1..7, got {d}")
            }
            HoursProblem::EmptyPeriod(p) => write!(
                f,
                "时段开始须早于结束 / period {}-{} ends before it starts",
                p.open, p.close
            ),
            HoursProblem::Overlap { weekday } => write!(
                f,
                "星期{weekday}的时段重叠 / overlapping periods on weekday {weekday}"
            ),
            HoursProblem::DuplicateException(d) => {
                write!(f, "{d} 重复设置 / date {d} is listed twice")
            }
        }
    }
}

impl ServiceHours {
    /// Open every day, all day.
    pub fn always() -> Self {
        Self {
            weekly: vec![WeeklyPeriods {
                weekdays: (1..=7).collect(),
                periods: vec![Period {
                    open: ClockTime::MIDNIGHT,
                    close: ClockTime::END_OF_DAY,
                }],
            }],
            exceptions: Vec::new(),
        }
    }

    /// The usual weekday pattern: Monday to Friday, `open`–`close`.
    pub fn weekdays(open: ClockTime, close: ClockTime) -> Self {
        Self {
            weekly: vec![WeeklyPeriods {
                weekdays: vec![1, 2, 3, 4, 5],
                periods: vec![Period { open, close }],
            }],
            exceptions: Vec::new(),
        }
    }

    pub fn validate(&self) -> Result<(), HoursProblem> {
        for w in &self.weekly {
            for d in &w.weekdays {
                if !(1..=7).contains(d) {
                    return Err(HoursProblem::BadWeekday(*d));
                }
            }
        }
        let all_periods = self
            .weekly
            .iter()
            .flat_map(|w| w.periods.iter())
            .chain(self.exceptions.iter().flat_map(|e| e.periods.iter()));
        for p in all_periods {
            if p.close <= p.open {
                return Err(HoursProblem::EmptyPeriod(*p));
            }
        }
        for weekday in 1..=7u8 {
            let mut periods: Vec<Period> = self
                .weekly
                .iter()
                .filter(|w| w.weekdays.contains(&weekday))
                .flat_map(|w| w.periods.iter().copied())
                .collect();
            periods.sort_by_key(|p| p.open);
            if periods.windows(2).any(|w| w[1].open < w[0].close) {
                return Err(HoursProblem::Overlap { weekday });
            }
        }
        let mut dates: Vec<Date> = self.exceptions.iter().map(|e| e.date).collect();
        dates.sort();
        if let Some(w) = dates.windows(2).find(|w| w[0] == w[1]) {
            return Err(HoursProblem::DuplicateException(w[0]));
        }
        Ok(())
    }

    /// The opening periods of a date.
    pub fn periods_on(&self, date: Date) -> Vec<Period> {
        if let Some(e) = self.exceptions.iter().find(|e| e.date == date) {
            return e.periods.clone();
        }
        let weekday = date.weekday();
        let mut periods: Vec<Period> = self
            .weekly
            .iter()
            .filter(|w| w.weekdays.contains(&weekday))
            .flat_map(|w| w.periods.iter().copied())
            .collect();
        periods.sort_by_key(|p| p.open);
        periods
    }

    /// Whether the place is open at `unix_ms`.
    pub fn is_open_at(&self, unix_ms: i64) -> bool {
        let (date, minute) = shanghai(unix_ms);
        self.periods_on(date)
            .iter()
            .any(|p| p.open.minutes() <= minute && minute < p.close.minutes())
    }

    /// The next opening at or after `unix_ms` within two weeks, as (date, time).
    pub fn next_opening(&self, unix_ms: i64) -> Option<(Date, ClockTime)> {
        let (today, minute) = shanghai(unix_ms);
        let first = today.days_since_epoch();
        (first..first + 14).find_map(|day| {
            let date = Date::from_days_since_epoch(day);
            self.periods_on(date)
                .into_iter()
                .find(|p| day > first || p.open.minutes() >= minute)
                .map(|p| (date, p.open))
        })
    }

    /// A short Chinese description of the weekly pattern, e.g. "周一至周五 9:00-17:00".
    pub fn describe_zh(&self) -> String {
        const NAMES: [&str; 7] = ["周一", "周二", "周三", "周四", "周五", "周六", "周日"];
        let name = |d: u8| {
            NAMES
                .get(usize::from(d).saturating_sub(1))
                .copied()
                .unwrap_or("")
        };
        self.weekly
            .iter()
            .map(|w| {
                let mut days = w.weekdays.clone();
                days.sort_unstable();
                days.dedup();
                let contiguous = days.windows(2).all(|p| p[1] == p[0] + 1);
                let days = match (days.first(), days.last()) {
                    (Some(a), Some(b)) if contiguous && days.len() > 2 => {
                        format!("{}至{}", name(*a), name(*b))
                    }
                    _ => days.iter().map(|d| name(*d)).collect::<Vec<_>>().join("、"),
                };
                let periods = w
                    .periods
                    .iter()
                    .map(|p| format!("{}-{}", p.open, p.close))
                    .collect::<Vec<_>>()
                    .join("、");
                format!("{days} {periods}")
            })
            .collect::<Vec<_>>()
            .join("；")
    }
}

/// The first instant of `date` in Shanghai, as Unix ms (where [`shanghai`] gives minute 0).
pub fn day_start(date: Date) -> i64 {
    date.days_since_epoch() * 86_400_000 - SHANGHAI_OFFSET_MS
}

/// The Shanghai date and minute of the day of a Unix time.
pub fn shanghai(unix_ms: i64) -> (Date, u16) {
    let local = unix_ms + SHANGHAI_OFFSET_MS;
    let day = local.div_euclid(86_400_000);
    let minute = u16::try_from(local.rem_euclid(86_400_000) / 60_000).unwrap_or(0);
    (Date::from_days_since_epoch(day), minute)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> ClockTime {
        ClockTime::parse(s).expect("time")
    }

    fn d(s: &str) -> Date {
        Date::parse(s).expect("date")
    }

    /// Unix ms of a Shanghai local date and time.
    fn at(date: &str, time: &str) -> i64 {
        d(date).days_since_epoch() * 86_400_000 + i64::from(t(time).minutes()) * 60_000
            - SHANGHAI_OFFSET_MS
    }

    fn hours() -> ServiceHours {
        let mut h = ServiceHours::weekdays(t("09:00"), t("17:00"));
        h.weekly.push(WeeklyPeriods {
            weekdays: vec![6],
            periods: vec![Period {
                open: t("09:00"),
                close: t("12:00"),
            }],
        });
        h.exceptions.push(DateException {
            date: d("2026-10-01"),
            periods: vec![],
            note: "国庆节".into(),
        });
        h.exceptions.push(DateException {
            date: d("2026-10-11"),
            periods: vec![Period {
                open: t("09:00"),
                close: t("17:00"),
            }],
            note: "调休上班".into(),
        });
        h
    }

    #[test]
    fn a_day_starts_at_shanghai_midnight() {
        let day = d("2026-03-05");
        assert_eq!(shanghai(day_start(day)), (day, 0));
        assert_eq!(
            shanghai(day_start(day) - 1),
            (d("2026-03-04"), 23 * 60 + 59)
        );
        assert_eq!(day_start(day), at("2026-03-05", "00:00"));
    }

    #[test]
    fn dates_round_trip_and_know_their_weekday() {
        for day in [-1000, 0, 20_780, 100_000] {
            assert_eq!(Date::from_days_since_epoch(day).days_since_epoch(), day);
        }
        assert_eq!(d("2026-11-23").weekday(), 1, "a Monday");
        assert_eq!(d("2024-02-29").weekday(), 4);
        assert!(Date::parse("2026-02-29").is_none());
        assert!(Date::parse("2026-13-01").is_none());
    }

    #[test]
    fn open_within_periods_closed_outside_and_on_exceptions() {
        let h = hours();
        assert!(h.is_open_at(at("2026-11-23", "09:00")));
        assert!(
            !h.is_open_at(at("2026-11-23", "17:00")),
            "closing time is exclusive"
        );
        assert!(!h.is_open_at(at("2026-11-23", "08:59")));
        assert!(h.is_open_at(at("2026-11-28", "11:59")), "Saturday morning");
        assert!(!h.is_open_at(at("2026-11-29", "10:00")), "Sunday");
        assert!(
            !h.is_open_at(at("2026-10-01", "10:00")),
            "holiday, a Thursday"
        );
        assert!(
            h.is_open_at(at("2026-10-11", "10:00")),
            "make-up working Sunday"
        );
    }

    #[test]
    fn next_opening_skips_closed_days() {
        let h = hours();
        assert_eq!(
            h.next_opening(at("2026-09-30", "18:00")),
            Some((d("2026-10-02"), t("09:00")))
        );
        assert_eq!(
            h.next_opening(at("2026-11-23", "08:00")),
            Some((d("2026-11-23"), t("09:00")))
        );
        assert_eq!(ServiceHours::default().next_opening(0), None);
    }

    #[test]
    fn validation_catches_mistakes() {
        assert!(hours().validate().is_ok());
        let mut h = hours();
        h.weekly[0].weekdays.push(8);
        assert_eq!(h.validate(), Err(HoursProblem::BadWeekday(8)));
        let mut h = hours();
        h.weekly.push(WeeklyPeriods {
            weekdays: vec![1],
            periods: vec![Period {
                open: t("16:00"),
                close: t("18:00"),
            }],
        });
        assert_eq!(h.validate(), Err(HoursProblem::Overlap { weekday: 1 }));
        let mut h = hours();
        h.weekly[0].periods[0] = Period {
            open: t("17:00"),
            close: t("09:00"),
        };
        assert!(matches!(h.validate(), Err(HoursProblem::EmptyPeriod(_))));
        let mut h = hours();
        h.exceptions.push(h.exceptions[0].clone());
        assert_eq!(
            h.validate(),
            Err(HoursProblem::DuplicateException(d("2026-10-01")))
        );
    }

    #[test]
    fn wire_form_and_description() {
        let h = ServiceHours::weekdays(t("9:00"), t("17:30"));
        let json = serde_json::to_string(&h).expect("json");
        assert_eq!(
            json,
            r#"{"weekly":[{"weekdays":[1,2,3,4,5],"periods":[{"open":"09:00","close":"17:30"}]}],"exceptions":[]}"#
        );
        assert_eq!(
            serde_json::from_str::<ServiceHours>(&json).expect("parse"),
            h
        );
        assert!(
            serde_json::from_str::<ServiceHours>(
                r#"{"weekly":[{"weekdays":[1],"periods":[{"open":"25:00","close":"26:00"}]}]}"#
            )
            .is_err()
        );
        assert_eq!(
            hours().describe_zh(),
            "周一至周五 9:00-17:00；周六 9:00-12:00"
        );
    }
}
