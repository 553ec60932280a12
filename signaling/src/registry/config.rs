//! The `[registry]` and `[alerts]` sections of the relay's configuration.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[registry]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrySection {
    /// The division list (区, 街镇) in the format of `deploy/divisions/shanghai.toml`; the copy
    /// built into the relay when unset. The built-in copy is NOT the official list.
    pub divisions_file: Option<PathBuf>,
}

/// `[alerts]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsSection {
    /// Where alerts are posted as JSON; unset: alerts show only in the operations console.
    /// https, or http on a loopback address.
    pub webhook_url: Option<String>,
    /// A file holding a token sent as `Authorization: Bearer <token>`.
    pub webhook_token_file: Option<PathBuf>,
    /// Seconds of its service hours a kiosk may be offline before an alert.
    pub offline_after_secs: u64,
    /// How often health is checked, in seconds.
    pub check_every_secs: u64,
    /// Attempts per alert before it is given up.
    pub max_attempts: u32,
    /// First retry after this many seconds, doubling up to `retry_max_secs`.
    pub retry_initial_secs: u64,
    pub retry_max_secs: u64,
    /// Seconds one webhook request may take.
    pub request_timeout_secs: u64,
    /// Most alerts waiting for delivery; the oldest is dropped beyond it.
    pub queue_capacity: usize,
}

impl Default for AlertsSection {
    fn default() -> Self {
        Self {
            webhook_url: None,
            webhook_token_file: None,
            offline_after_secs: 600,
            check_every_secs: 30,
            max_attempts: 5,
            retry_initial_secs: 10,
            retry_max_secs: 600,
            request_timeout_secs: 10,
            queue_capacity: 256,
        }
    }
}

impl AlertsSection {
    /// `(key, message)` of the first invalid setting.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if let Some(u) = self.webhook_url.as_deref().filter(|u| !u.is_empty()) {
            let parsed = url::Url::parse(u)
                .map_err(|e| ("alerts.webhook_url", format!("{u:?} is not a URL: {e}")))?;
            let loopback = match parsed.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d == "localhost",
                None => false,
            };
            let ok = match parsed.scheme() {
                "https" => parsed.host().is_some(),
                "http" => loopback,
                _ => false,
            };
            if !ok {
                return Err((
                    "alerts.webhook_url",
                    format!("{u:?}: use https (plain http only on a loopback address)"),
                ));
            }
        }
        let range = |key, v: u64, lo: u64, hi: u64| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err((key, format!("must be between {lo} and {hi}")))
            }
        };
        range(
            "alerts.offline_after_secs",
            self.offline_after_secs,
            30,
            24 * 3600,
        )?;
        range("alerts.check_every_secs", self.check_every_secs, 1, 3600)?;
        range("alerts.max_attempts", u64::from(self.max_attempts), 1, 100)?;
        range(
            "alerts.retry_initial_secs",
            self.retry_initial_secs,
            1,
            3600,
        )?;
        range(
            "alerts.retry_max_secs",
            self.retry_max_secs,
            self.retry_initial_secs,
            24 * 3600,
        )?;
        range(
            "alerts.request_timeout_secs",
            self.request_timeout_secs,
            1,
            120,
        )?;
        range(
            "alerts.queue_capacity",
            self.queue_capacity as u64,
            1,
            100_000,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhooks_need_https_except_on_loopback() {
        let with = |u: &str| AlertsSection {
            webhook_url: Some(u.into()),
            ..AlertsSection::default()
        };
        assert!(AlertsSection::default().check().is_ok());
        assert!(with("https://ops.example.gov.cn/hooks/rvw").check().is_ok());
        assert!(with("http://127.0.0.1:9000/hook").check().is_ok());
        assert!(with("http://localhost/hook").check().is_ok());
        assert_eq!(
            with("http://10.0.0.5/hook").check().map_err(|e| e.0),
            Err("alerts.webhook_url")
        );
        assert!(with("ftp://x/").check().is_err());
        assert!(with("not a url").check().is_err());
    }

    #[test]
    fn numbers_within_bounds() {
        let a = AlertsSection {
            offline_after_secs: 5,
            ..AlertsSection::default()
        };
        assert_eq!(a.check().map_err(|e| e.0), Err("alerts.offline_after_secs"));
        let a = AlertsSection {
            retry_initial_secs: 100,
            retry_max_secs: 10,
            ..AlertsSection::default()
        };
        assert_eq!(a.check().map_err(|e| e.0), Err("alerts.retry_max_secs"));
    }
}
