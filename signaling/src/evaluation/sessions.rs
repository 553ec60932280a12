//! Recently ended remote sessions per device, so an evaluation from a kiosk is bound to the
//! session that served its ticket (window, clerk, category, extension point).
//!
//! Plain data: bounded per device and in the number of devices; the caller passes the time.

use std::collections::{HashMap, VecDeque};

use crate::queue::Session;

/// Sessions kept per device: a kiosk serves one ticket at a time, so a handful covers a
/// ticket transferred between windows and an outbox that is a few tickets behind.
const PER_DEVICE: usize = 8;
/// Devices remembered at once; beyond that the device whose last session ended longest ago
/// is forgotten (its evaluations are still bound through the store).
const MAX_DEVICES: usize = 20_000;

#[derive(Debug, Default)]
pub struct EndedSessions {
    by_device: HashMap<String, VecDeque<(Session, i64)>>,
}

impl EndedSessions {
    pub fn remember(&mut self, session: Session, ended_ms: i64) {
        if !self.by_device.contains_key(&session.device_id) && self.by_device.len() >= MAX_DEVICES {
            let oldest = self
                .by_device
                .iter()
                .min_by_key(|(_, list)| list.back().map_or(i64::MIN, |(_, t)| *t))
                .map(|(d, _)| d.clone());
            if let Some(d) = oldest {
                self.by_device.remove(&d);
            }
        }
        let list = self.by_device.entry(session.device_id.clone()).or_default();
        if list.len() >= PER_DEVICE {
            list.pop_front();
        }
        list.push_back((session, ended_ms));
    }

    /// The last session that served `ticket_id` at `device_id`, with its end time.
    pub fn find(&self, device_id: &str, ticket_id: &str) -> Option<(Session, i64)> {
        self.by_device
            .get(device_id)?
            .iter()
            .rev()
            .find(|(s, _)| s.ticket_id == ticket_id)
            .cloned()
    }

    /// Forgets sessions that ended before `before_ms`.
    pub fn forget_before(&mut self, before_ms: i64) {
        self.by_device.retain(|_, list| {
            list.retain(|(_, ended)| *ended >= before_ms);
            !list.is_empty()
        });
    }

    pub fn len(&self) -> usize {
        self.by_device.values().map(VecDeque::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_device.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(device: &str, ticket: &str, window: &str) -> Session {
        Session {
            ticket_id: ticket.into(),
            ticket_number: "YA001".into(),
            centre_id: "c1".into(),
            device_id: device.into(),
            extension_point_id: Some("p1".into()),
            window_id: window.into(),
            clerk_id: "clerk".into(),
            category_id: "social".into(),
            started_ms: 0,
        }
    }

    #[test]
    fn the_last_session_of_a_ticket_at_its_own_device_is_found() {
        let mut m = EndedSessions::default();
        m.remember(session("k1", "t1", "w1"), 10);
        // Transferred: a second window served it last.
        m.remember(session("k1", "t1", "w2"), 20);
        assert_eq!(
            m.find("k1", "t1").map(|(s, t)| (s.window_id, t)),
            Some(("w2".into(), 20))
        );
        // Another kiosk cannot claim it.
        assert_eq!(m.find("k2", "t1"), None);
        assert_eq!(m.find("k1", "t9"), None);
    }

    #[test]
    fn memory_is_bounded_per_device_and_forgets_old_sessions() {
        let mut m = EndedSessions::default();
        for i in 0..(PER_DEVICE + 3) {
            m.remember(
                session("k1", &format!("t{i}"), "w"),
                i64::try_from(i).unwrap_or(0),
            );
        }
        assert_eq!(m.len(), PER_DEVICE);
        assert_eq!(m.find("k1", "t0"), None);
        m.forget_before(9);
        assert_eq!(m.len(), 2);
        m.forget_before(100);
        assert!(m.is_empty());
    }
}
