//! `[appointments]`: which centres take remote appointments, their remote windows' hours and
//! slot sizes (`[[appointments.centres]]`), and the rules and limits of booking and check-in.

use serde::{Deserialize, Serialize};

use super::schedule::CentreSchedule;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppointmentsSection {
    /// One entry per centre that takes appointments; a centre without one offers none.
    pub centres: Vec<CentreSchedule>,
    /// Dates offered for booking, today included (1–31).
    pub booking_days: u32,
    /// How early before the slot a check-in still counts as on time (minutes, 0–120).
    pub early_check_in_minutes: u32,
    /// Minutes after a slot ends before an unused booking is marked a no-show. A later
    /// check-in the same day becomes an ordinary ticket.
    pub no_show_after_minutes: u32,
    /// Days after the slot the booking's personal data (name, number) is kept (1–365).
    pub retention_days: u32,
    /// How verification codes go out: only `dev` (logged with the number masked and appended
    /// to `<data_dir>/dev-sms.jsonl`) exists until an SMS gateway is connected.
    pub sms: String,
    /// Verification code lifetime (seconds).
    pub code_ttl_secs: u64,
    /// Wrong entries of one code before it is void.
    pub code_max_tries: u32,
    /// Seconds before another code may be sent to the same number.
    pub code_resend_secs: u64,
    /// Codes one number may receive per hour.
    pub code_max_sends_per_hour: u32,
    /// Failed check-ins one extension point may make within `check_in_window_secs` before
    /// it must wait (guessing 4 digits and a code).
    pub check_in_max_failures: u32,
    pub check_in_window_secs: u64,
    /// Public API requests one address (IPv6: /64) may make per minute.
    pub max_requests_per_address_per_minute: u32,
    /// Public writes (code, book, cancel, reschedule, lookup) one mobile number may make per hour.
    pub max_writes_per_number_per_hour: u32,
}

impl Default for AppointmentsSection {
    fn default() -> Self {
        Self {
            centres: Vec::new(),
            booking_days: 7,
            early_check_in_minutes: 15,
            no_show_after_minutes: 30,
            retention_days: 30,
            sms: "dev".into(),
            code_ttl_secs: 300,
            code_max_tries: 5,
            code_resend_secs: 60,
            code_max_sends_per_hour: 5,
            check_in_max_failures: 5,
            check_in_window_secs: 600,
            max_requests_per_address_per_minute: 60,
            max_writes_per_number_per_hour: 20,
        }
    }
}

impl AppointmentsSection {
    pub fn validate(&self) -> Result<(), String> {
        for c in &self.centres {
            c.validate()?;
        }
        let mut ids: Vec<&str> = self.centres.iter().map(|c| c.centre_id.as_str()).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("centre {} is listed twice", w[0]));
        }
        let check = |ok: bool, what: &str| if ok { Ok(()) } else { Err(what.to_owned()) };
        check(
            (1..=31).contains(&self.booking_days),
            "booking_days must be 1–31",
        )?;
        check(
            self.early_check_in_minutes <= 120,
            "early_check_in_minutes must be at most 120",
        )?;
        check(
            self.no_show_after_minutes <= 24 * 60,
            "no_show_after_minutes must be at most 1440",
        )?;
        check(
            (1..=365).contains(&self.retention_days),
            "retention_days must be 1–365",
        )?;
        check(
            self.sms == "dev",
            "sms: only \"dev\" exists (no SMS gateway is connected yet)",
        )?;
        check(
            (60..=1800).contains(&self.code_ttl_secs),
            "code_ttl_secs must be 60–1800",
        )?;
        check(
            (1..=10).contains(&self.code_max_tries),
            "code_max_tries must be 1–10",
        )?;
        check(
            self.code_resend_secs <= 600,
            "code_resend_secs must be at most 600",
        )?;
        check(
            (1..=100).contains(&self.code_max_sends_per_hour),
            "code_max_sends_per_hour must be 1–100",
        )?;
        check(
            (1..=100).contains(&self.check_in_max_failures) && self.check_in_window_secs >= 60,
            "check_in_max_failures must be 1–100 and check_in_window_secs at least 60",
        )?;
        check(
            self.max_requests_per_address_per_minute >= 1
                && self.max_writes_per_number_per_hour >= 1,
            "rate limits must be at least 1",
        )?;
        Ok(())
    }

    pub fn centre(&self, centre_id: &str) -> Option<&CentreSchedule> {
        self.centres.iter().find(|c| c.centre_id == centre_id)
    }
}
