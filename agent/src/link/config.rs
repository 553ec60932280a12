//! `[relay]` in the agent configuration, and the device credential the link logs in with.
//! The link owns these; `crate::config` only assembles the sections.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// The relay's kiosk endpoint, e.g. `wss://relay.example.gov.cn:8443/ws/kiosk`.
    pub url: String,
    /// File holding this device's credential `device_id:secret`, as printed at enrollment.
    pub credential_file: PathBuf,
    /// An extra certificate (PEM) to trust for the relay, e.g. its self-signed certificate.
    pub ca_file: Option<PathBuf>,
    /// INSECURE: allow `ws://` to a loopback relay (development only).
    pub dev_allow_plain_loopback: bool,
    pub connect_timeout_secs: u64,
    pub request_timeout_secs: u64,
    /// Longest pause between reconnection attempts.
    pub max_backoff_secs: u64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            url: "wss://127.0.0.1:8443/ws/kiosk".into(),
            credential_file: PathBuf::from("/etc/rvw/kiosk.credential"),
            ca_file: None,
            dev_allow_plain_loopback: false,
            connect_timeout_secs: 10,
            request_timeout_secs: 10,
            max_backoff_secs: 30,
        }
    }
}

impl RelayConfig {
    /// Checks the section; on error, the key at fault and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let url = url::Url::parse(&self.url).map_err(|e| ("relay.url", e.to_string()))?;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        match url.scheme() {
            "wss" => {}
            "ws" if self.dev_allow_plain_loopback && loopback => {}
            "ws" => {
                return Err((
                    "relay.url",
                    "must use wss:// (TLS); ws:// is only allowed to a loopback relay with relay.dev_allow_plain_loopback = true".into(),
                ));
            }
            other => {
                return Err((
                    "relay.url",
                    format!("unsupported scheme {other:?}; expected wss://"),
                ));
            }
        }
        for (key, v) in [
            ("relay.connect_timeout_secs", self.connect_timeout_secs),
            ("relay.request_timeout_secs", self.request_timeout_secs),
            ("relay.max_backoff_secs", self.max_backoff_secs),
        ] {
            if v == 0 || v > 3600 {
                return Err((key, "must be between 1 and 3600".into()));
            }
        }
        Ok(())
    }
}

/// A device credential `device_id:secret` as printed by `relay enroll-device`.
#[derive(Clone)]
pub struct Credential {
    pub device_id: String,
    pub secret: protocol::Pii<String>,
}

impl Credential {
    pub fn parse(text: &str) -> Option<Self> {
        let (id, secret) = text.trim().split_once(':')?;
        (!id.is_empty() && !secret.is_empty()).then(|| Self {
            device_id: id.to_owned(),
            secret: protocol::Pii::new(secret.to_owned()),
        })
    }

    pub fn read(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the device credential {}: {e}", path.display()))?;
        Self::parse(&text).ok_or_else(|| {
            format!(
                "{} does not hold a credential of the form device_id:secret",
                path.display()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_parse_and_hide_the_secret() {
        let c = Credential::parse("kiosk-1:abc\n").expect("valid");
        assert_eq!(c.device_id, "kiosk-1");
        assert_eq!(format!("{:?}", c.secret), "{REDACTED}");
        assert!(Credential::parse("no-colon").is_none());
        assert!(Credential::parse(":x").is_none());
    }
}
