//! Personal information (个人信息) wrapper.
//!
//! `Pii<T>` serialises transparently (the value must reach the clerk who needs it), but its
//! `Debug` and `Display` print `{REDACTED}`, so a value that slips into a log line or an error
//! message leaks nothing. Use it for ID card text, names, ID numbers, phone numbers and image
//! references; call [`Pii::expose`] only where the value is deliberately shown or stored.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pii<T>(T);

impl<T> Pii<T> {
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    /// The wrapped value. Every call site is a place where personal information leaves the
    /// wrapper: keep them few and obvious.
    pub fn expose(&self) -> &T {
        &self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{REDACTED}")
    }
}

impl<T> fmt::Display for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{REDACTED}")
    }
}

impl<T> From<T> for Pii<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value_but_serde_keeps_it() {
        let id = Pii::new("310101199001011234".to_string());
        assert_eq!(format!("{id:?} {id}"), "{REDACTED} {REDACTED}");
        assert_eq!(
            serde_json::to_string(&id).expect("string serialises"),
            "\"310101199001011234\""
        );
        let back: Pii<String> = serde_json::from_str("\"abc\"").expect("string deserialises");
        assert_eq!(back.expose(), "abc");
    }
}
