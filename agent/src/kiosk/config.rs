//! `[kiosk]` in the agent configuration: the screen's timeouts.

use serde::{Deserialize, Serialize};

/// The `[kiosk]` section of the agent's configuration: the screen's timeouts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KioskConfig {
    /// Seconds the resident has to rate a service; then it is recorded as unrated.
    pub evaluation_timeout_secs: u64,
    /// Seconds without a touch after which a choice screen returns to the start.
    pub idle_return_secs: u64,
    /// Seconds the thank-you screen stays.
    pub thank_you_secs: u64,
    /// Seconds of waiting without a touch after which the screen asks "are you still here?".
    pub presence_check_secs: u64,
    /// Seconds to answer that question before the ticket is given up as abandoned.
    pub presence_grace_secs: u64,
}

impl Default for KioskConfig {
    fn default() -> Self {
        Self {
            evaluation_timeout_secs: 90,
            idle_return_secs: 60,
            thank_you_secs: 8,
            presence_check_secs: 15 * 60,
            presence_grace_secs: 60,
        }
    }
}

impl KioskConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (key, v, min, max) in [
            (
                "kiosk.evaluation_timeout_secs",
                self.evaluation_timeout_secs,
                5,
                600,
            ),
            ("kiosk.idle_return_secs", self.idle_return_secs, 5, 600),
            ("kiosk.thank_you_secs", self.thank_you_secs, 1, 60),
            (
                "kiosk.presence_check_secs",
                self.presence_check_secs,
                10,
                7200,
            ),
            (
                "kiosk.presence_grace_secs",
                self.presence_grace_secs,
                5,
                600,
            ),
        ] {
            if !(min..=max).contains(&v) {
                return Err(format!("{key} must be between {min} and {max}"));
            }
        }
        Ok(())
    }
}
