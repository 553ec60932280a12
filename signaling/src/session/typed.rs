//! Typed messages from the serving clerk to the resident (a word the resident did not catch,
//! an address): who may send one, how long it may be, how many, and its id.
//!
//! [`TypedGate`] is I/O-free and reads no clock; [`super::core::SwitchboardCore::typed_message`]
//! feeds it with the time and the served session. It only *accepts* a message: the caller
//! records it in the ticket's case (it is part of the service record, encrypted like the other
//! materials) and then delivers it to the kiosk, so nothing reaches a resident that the record
//! does not hold. The text is never logged.

use std::collections::{HashMap, VecDeque};

use protocol::control::{ErrorBody, ErrorCode, TypedMessage, TypedTextError, typed_text};

/// At most this many messages per clerk within [`WINDOW_MS`]: enough for a clerk spelling out
/// an address line by line, not enough for a stuck key or a script to flood a kiosk screen.
pub const MAX_PER_WINDOW: usize = 5;
pub const WINDOW_MS: i64 = 10_000;

/// Counters for the metrics endpoint.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TypedCounters {
    pub accepted: u64,
    /// From a console whose clerk does not serve the ticket.
    pub refused_not_serving: u64,
    /// Empty, longer than 200 characters, or with control characters.
    pub refused_text: u64,
    pub refused_rate: u64,
    /// The kiosk of the session was not connected.
    pub refused_offline: u64,
}

/// Rate limits and ids; see the module documentation.
#[derive(Debug, Default)]
pub struct TypedGate {
    /// Accept times within the window, per clerk. A clerk's entry goes when it empties.
    recent: HashMap<String, VecDeque<i64>>,
    next_id: u64,
    pub counters: TypedCounters,
}

pub fn not_serving() -> ErrorBody {
    ErrorBody {
        code: ErrorCode::Forbidden,
        message: "只能给正在办理的居民发消息 / you may write only to the resident you are serving"
            .into(),
    }
}

pub fn kiosk_offline() -> ErrorBody {
    ErrorBody {
        code: ErrorCode::InvalidState,
        message: "延伸点终端未连接，消息没有发出 / the kiosk is not connected; nothing was sent"
            .into(),
    }
}

fn bad_text(e: TypedTextError) -> ErrorBody {
    ErrorBody {
        code: match e {
            TypedTextError::TooLong => ErrorCode::LimitExceeded,
            TypedTextError::Empty | TypedTextError::ControlCharacter => ErrorCode::BadMessage,
        },
        message: e.to_string(),
    }
}

fn too_many() -> ErrorBody {
    ErrorBody {
        code: ErrorCode::LimitExceeded,
        message: "消息发得太快，请稍等几秒再发 / too many messages; wait a few seconds".into(),
    }
}

impl TypedGate {
    /// Checks the text and the clerk's rate and gives the message its id. The caller has
    /// already checked that the clerk serves `ticket_id` and that its kiosk is connected.
    pub fn accept(
        &mut self,
        now_ms: i64,
        clerk_id: &str,
        ticket_id: &str,
        text: &str,
    ) -> Result<TypedMessage, ErrorBody> {
        let text = match typed_text(text) {
            Ok(t) => t,
            Err(e) => {
                self.counters.refused_text += 1;
                return Err(bad_text(e));
            }
        };
        let recent = self.recent.entry(clerk_id.to_owned()).or_default();
        while recent.front().is_some_and(|t| *t <= now_ms - WINDOW_MS) {
            recent.pop_front();
        }
        if recent.len() >= MAX_PER_WINDOW {
            self.counters.refused_rate += 1;
            return Err(too_many());
        }
        recent.push_back(now_ms);
        self.counters.accepted += 1;
        self.next_id += 1;
        Ok(TypedMessage {
            message_id: self.next_id,
            ticket_id: ticket_id.to_owned(),
            text,
            sent_ms: now_ms,
        })
    }

    /// The clerk's last console closed: their rate history can go.
    pub fn forget_clerk(&mut self, clerk_id: &str) {
        self.recent.remove(clerk_id);
    }

    /// Clerks with a rate history (for tests: the table stays bounded).
    pub fn tracked_clerks(&self) -> usize {
        self.recent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sixth_message_within_ten_seconds_is_refused_and_the_window_slides() {
        let mut gate = TypedGate::default();
        for i in 0..MAX_PER_WINDOW {
            let m = gate
                .accept(1_000 + i as i64, "u1", "t1", "徐汇区")
                .expect("accepted");
            assert_eq!(m.message_id, i as u64 + 1);
        }
        let e = gate
            .accept(1_100, "u1", "t1", "徐汇区")
            .expect_err("refused");
        assert_eq!(e.code, ErrorCode::LimitExceeded);
        assert_eq!(gate.counters.refused_rate, 1);
        // Another clerk has their own allowance.
        assert!(gate.accept(1_100, "u2", "t2", "好").is_ok());
        // Once the first message is 10 s old, one more fits.
        assert!(gate.accept(1_000 + WINDOW_MS, "u1", "t1", "好").is_ok());
        assert!(gate.accept(1_000 + WINDOW_MS, "u1", "t1", "好").is_err());
        assert_eq!(gate.counters.accepted, MAX_PER_WINDOW as u64 + 2);
        gate.forget_clerk("u1");
        gate.forget_clerk("u2");
        assert_eq!(gate.tracked_clerks(), 0);
    }

    #[test]
    fn bad_text_is_refused_with_a_reason_and_counted_without_using_the_allowance() {
        let mut gate = TypedGate::default();
        let long = "字".repeat(201);
        assert_eq!(
            gate.accept(0, "u1", "t1", &long).expect_err("refused").code,
            ErrorCode::LimitExceeded
        );
        assert_eq!(
            gate.accept(0, "u1", "t1", "   ").expect_err("refused").code,
            ErrorCode::BadMessage
        );
        assert_eq!(
            gate.accept(0, "u1", "t1", "a\u{7}")
                .expect_err("refused")
                .code,
            ErrorCode::BadMessage
        );
        assert_eq!(gate.counters.refused_text, 3);
        for _ in 0..MAX_PER_WINDOW {
            assert!(gate.accept(0, "u1", "t1", " 上海 ").is_ok());
        }
    }
}
