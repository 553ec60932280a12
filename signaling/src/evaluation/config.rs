//! The `[evaluation]` section of the relay's configuration.

use std::path::PathBuf;

use protocol::hours::Date;
use serde::{Deserialize, Serialize};

use super::workdays::WorkCalendar;

/// 好差评: forwarding to the 好差评 system and the follow-up of bad reviews.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluationSection {
    /// The 好差评 system's HTTP endpoint that takes one evaluation per POST (JSON). Empty:
    /// evaluations are stored and wait until an endpoint is configured.
    pub forward_url: String,
    /// A file holding a bearer token for the endpoint, if it wants one.
    pub token_file: Option<PathBuf>,
    /// Seconds one attempt may take.
    pub request_timeout_secs: u64,
    /// Attempts before an evaluation becomes a dead letter for supervisors.
    pub max_attempts: u32,
    /// The first retry waits this long; each further one twice as long, up to `retry_max_secs`.
    pub retry_base_secs: u64,
    pub retry_max_secs: u64,
    /// Working days to follow up a bad review (回访整改时限).
    pub followup_working_days: u32,
    /// Public holidays (YYYY-MM-DD) that are not working days.
    pub holidays: Vec<String>,
    /// Weekend days that are working days (调休上班), YYYY-MM-DD.
    pub makeup_workdays: Vec<String>,
    /// Seconds a kiosk has to deliver the evaluation of a session after it ended; older
    /// sessions are forgotten (the kiosk's outbox normally delivers within seconds).
    pub session_memory_secs: u64,
}

impl Default for EvaluationSection {
    fn default() -> Self {
        Self {
            forward_url: String::new(),
            token_file: None,
            request_timeout_secs: 10,
            max_attempts: 12,
            retry_base_secs: 5,
            retry_max_secs: 3600,
            followup_working_days: 5,
            holidays: Vec::new(),
            makeup_workdays: Vec::new(),
            session_memory_secs: 7 * 24 * 3600,
        }
    }
}

impl EvaluationSection {
    /// Checks the section; the error names the key and what is wrong.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !self.forward_url.is_empty() {
            let url = reqwest::Url::parse(&self.forward_url)
                .map_err(|e| ("evaluation.forward_url", e.to_string()))?;
            let loopback = match url.host_str() {
                Some("localhost") => true,
                Some(h) => h
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback()),
                None => false,
            };
            match url.scheme() {
                "https" => {}
                "http" if loopback => {}
                _ => {
                    return Err((
                        "evaluation.forward_url",
                        "must be an https:// URL (plain http only to a loopback address)".into(),
                    ));
                }
            }
        }
        if !(1..=300).contains(&self.request_timeout_secs) {
            return Err((
                "evaluation.request_timeout_secs",
                "must be between 1 and 300".into(),
            ));
        }
        if !(1..=1000).contains(&self.max_attempts) {
            return Err((
                "evaluation.max_attempts",
                "must be between 1 and 1000".into(),
            ));
        }
        if self.retry_base_secs == 0 || self.retry_max_secs < self.retry_base_secs {
            return Err((
                "evaluation.retry_base_secs",
                "must be at least 1 and at most evaluation.retry_max_secs".into(),
            ));
        }
        if !(1..=60).contains(&self.followup_working_days) {
            return Err((
                "evaluation.followup_working_days",
                "must be between 1 and 60".into(),
            ));
        }
        if self.session_memory_secs < 600 {
            return Err((
                "evaluation.session_memory_secs",
                "must be at least 600".into(),
            ));
        }
        self.calendar()?;
        Ok(())
    }

    pub fn calendar(&self) -> Result<WorkCalendar, (&'static str, String)> {
        let dates = |key: &'static str, list: &[String]| {
            list.iter()
                .map(|s| {
                    Date::parse(s).ok_or_else(|| (key, format!("{s:?} is not a date (YYYY-MM-DD)")))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(WorkCalendar::new(
            dates("evaluation.holidays", &self.holidays)?,
            dates("evaluation.makeup_workdays", &self.makeup_workdays)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert!(EvaluationSection::default().check().is_ok());
        let with = |f: fn(&mut EvaluationSection)| {
            let mut s = EvaluationSection::default();
            f(&mut s);
            s.check().err().map(|(k, _)| k)
        };
        assert_eq!(
            with(|s| s.forward_url = "http://hcp.example.gov.cn/api".into()),
            Some("evaluation.forward_url")
        );
        assert_eq!(
            with(|s| s.forward_url = "http://127.0.0.1:9/x".into()),
            None
        );
        assert_eq!(
            with(|s| s.forward_url = "https://hcp.example.gov.cn/api".into()),
            None
        );
        assert_eq!(
            with(|s| s.holidays = vec!["2026-13-01".into()]),
            Some("evaluation.holidays")
        );
        assert_eq!(
            with(|s| s.followup_working_days = 0),
            Some("evaluation.followup_working_days")
        );
        assert_eq!(
            with(|s| s.retry_max_secs = 1),
            Some("evaluation.retry_base_secs")
        );
    }
}
