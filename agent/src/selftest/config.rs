//! `[selftest]` in the agent configuration.

use serde::{Deserialize, Serialize};

/// The most names `[selftest] technicians` may list.
pub const MAX_TECHNICIANS: usize = 30;

/// `[selftest]`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelfTestConfig {
    /// The technician page's PIN as its argon2 hash (`agent hash-pin`); empty turns the page
    /// off. Never the PIN itself.
    pub pin: String,
    /// The daily automatic self-test, Shanghai time `"HH:MM"`; empty turns it off. Skipped
    /// when that moment falls inside the extension point's service hours.
    pub daily_at: String,
    /// Seconds a technician has to place the test ID card.
    pub card_wait_secs: u64,
    /// What the site's test QR code carries, to check the scanner decodes it exactly.
    pub test_code: Option<String>,
    /// Names the technician page offers to tap, for kiosks with a touch screen and no
    /// keyboard (nor a Chinese input method) to type a name with.
    pub technicians: Vec<String>,
}

impl Default for SelfTestConfig {
    fn default() -> Self {
        SelfTestConfig {
            pin: String::new(),
            daily_at: "06:30".into(),
            card_wait_secs: 30,
            test_code: None,
            technicians: Vec::new(),
        }
    }
}

// The PIN hash stays out of logs and `check-config`-style dumps.
impl std::fmt::Debug for SelfTestConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfTestConfig")
            .field(
                "pin",
                &if self.pin.is_empty() {
                    "(off)"
                } else {
                    "{REDACTED}"
                },
            )
            .field("daily_at", &self.daily_at)
            .field("card_wait_secs", &self.card_wait_secs)
            .field("test_code", &self.test_code.as_ref().map(|_| "(set)"))
            .field("technicians", &self.technicians.len())
            .finish()
    }
}

impl SelfTestConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !self.pin.is_empty() && !super::pin::is_hash(&self.pin) {
            return Err(
                "selftest.pin must be the PIN's hash, not the PIN: run `agent hash-pin` and put its output here"
                    .into(),
            );
        }
        if !self.daily_at.is_empty() && protocol::hours::ClockTime::parse(&self.daily_at).is_none()
        {
            return Err(format!(
                "selftest.daily_at {:?} is not HH:MM",
                self.daily_at
            ));
        }
        if !(5..=300).contains(&self.card_wait_secs) {
            return Err("selftest.card_wait_secs must be between 5 and 300".into());
        }
        if self
            .test_code
            .as_ref()
            .is_some_and(|c| c.is_empty() || c.len() > 4096)
        {
            return Err("selftest.test_code must be 1 to 4096 bytes".into());
        }
        if self.technicians.len() > MAX_TECHNICIANS {
            return Err(format!(
                "selftest.technicians lists more than {MAX_TECHNICIANS} names"
            ));
        }
        if let Some(bad) = self.technicians.iter().find(|n| {
            let n = n.trim();
            n.is_empty()
                || n.chars().count() > protocol::inspection::MAX_TECHNICIAN_CHARS
                || n.chars().any(char::is_control)
        }) {
            return Err(format!(
                "selftest.technicians: {bad:?} is not a name of 1 to {} characters",
                protocol::inspection::MAX_TECHNICIAN_CHARS
            ));
        }
        Ok(())
    }

    pub fn daily_time(&self) -> Option<protocol::hours::ClockTime> {
        protocol::hours::ClockTime::parse(&self.daily_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_pin_is_refused_and_the_hash_is_not_shown() {
        let plain = SelfTestConfig {
            pin: "1234".into(),
            ..SelfTestConfig::default()
        };
        assert!(
            plain
                .validate()
                .is_err_and(|e| e.contains("hash-pin") && !e.contains("1234"))
        );
        let hashed = SelfTestConfig {
            pin: super::super::pin::hash_pin("1234").expect("hash"),
            ..SelfTestConfig::default()
        };
        assert!(hashed.validate().is_ok());
        assert!(!format!("{hashed:?}").contains("argon2"));
        let bad_time = SelfTestConfig {
            daily_at: "25:00".into(),
            ..SelfTestConfig::default()
        };
        assert!(bad_time.validate().is_err());
        let off = SelfTestConfig {
            daily_at: String::new(),
            ..SelfTestConfig::default()
        };
        assert!(off.validate().is_ok() && off.daily_time().is_none());
    }

    #[test]
    fn technicians_are_names() {
        let names = |list: &[&str]| SelfTestConfig {
            technicians: list.iter().map(|s| (*s).to_owned()).collect(),
            ..SelfTestConfig::default()
        };
        assert!(names(&["张伟", "李娜"]).validate().is_ok());
        assert!(names(&["张伟", " "]).validate().is_err());
        assert!(names(&["a\nb"]).validate().is_err());
        assert!(names(&["名".repeat(200).as_str()]).validate().is_err());
        let many: Vec<String> = (0..=MAX_TECHNICIANS)
            .map(|i| format!("技术员{i}"))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(names(&many).validate().is_err());
    }
}
