//! When the kiosk asks for an evaluation: after a ticket this kiosk saw being served (called or
//! in service) ends as served. Sans-IO: fed the current ticket and the time, it says what the
//! screen should ask and when an unanswered request becomes "unrated".
//!
//! Only a service seen live in this run is evaluated: after a restart of the agent, a ticket
//! already served is not asked about again (the resident has most likely left).

use protocol::control::KioskTicketStatus;
use protocol::queue::TicketState;
use serde::Serialize;

/// The served ticket the screen asks the resident to evaluate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AwaitedEvaluation {
    pub ticket_id: String,
    pub number: String,
    pub category_name: String,
    pub window_name: Option<String>,
    /// Relay time (Unix ms) after which the screen stops asking.
    pub deadline_ms: i64,
}

#[derive(Debug, Default)]
pub struct Flow {
    /// The ticket being served now, with the window that serves it.
    live: Option<(String, Option<String>)>,
    awaited: Option<AwaitedEvaluation>,
}

impl Flow {
    pub fn awaited(&self) -> Option<&AwaitedEvaluation> {
        self.awaited.as_ref()
    }

    /// Feeds the kiosk's current ticket at relay time `now_ms`. Returns an evaluation that was
    /// still awaited but is overtaken by a new ticket (to be recorded as unrated).
    pub fn observe(
        &mut self,
        ticket: Option<&KioskTicketStatus>,
        now_ms: i64,
        timeout_ms: i64,
    ) -> Option<AwaitedEvaluation> {
        let t = ticket?;
        let mut overtaken = None;
        if self
            .awaited
            .as_ref()
            .is_some_and(|a| a.ticket_id != t.ticket_id)
            && !t.state.is_terminal()
        {
            overtaken = self.awaited.take();
        }
        match t.state {
            TicketState::Called | TicketState::Serving => {
                let window = t
                    .window_name
                    .clone()
                    .or_else(|| self.live.as_ref().and_then(|(_, w)| w.clone()));
                self.live = Some((t.ticket_id.clone(), window));
            }
            TicketState::Served => {
                if let Some((id, window)) = self.live.take_if(|(id, _)| *id == t.ticket_id) {
                    self.awaited = Some(AwaitedEvaluation {
                        ticket_id: id,
                        number: t.number.clone(),
                        category_name: t.category_name.clone(),
                        window_name: t.window_name.clone().or(window),
                        deadline_ms: now_ms.saturating_add(timeout_ms),
                    });
                }
            }
            TicketState::Waiting | TicketState::Parked => {}
            TicketState::NoShow | TicketState::Cancelled => {
                self.live.take_if(|(id, _)| *id == t.ticket_id);
            }
        }
        overtaken
    }

    /// The awaited evaluation, once `now_ms` is past its deadline plus `grace_ms` (so a tap
    /// in the last second still counts): it is to be recorded as unrated.
    pub fn expire(&mut self, now_ms: i64, grace_ms: i64) -> Option<AwaitedEvaluation> {
        self.awaited
            .take_if(|a| now_ms >= a.deadline_ms.saturating_add(grace_ms))
    }

    /// The resident answered for `ticket_id`: stop asking.
    pub fn answer(&mut self, ticket_id: &str) -> Option<AwaitedEvaluation> {
        self.awaited.take_if(|a| a.ticket_id == ticket_id)
    }

    /// Puts an answer back when it could not be recorded (the screen asks again).
    pub fn restore(&mut self, awaited: AwaitedEvaluation) {
        if self.awaited.is_none() {
            self.awaited = Some(awaited);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(id: &str, state: TicketState, window: Option<&str>) -> KioskTicketStatus {
        KioskTicketStatus {
            ticket_id: id.into(),
            number: "YA001".into(),
            category_name: "社会保障".into(),
            state,
            ahead: None,
            eta_seconds: None,
            window_name: window.map(str::to_owned),
            recalls: 0,
            availability: None,
            serving_clerk: None,
            appointment: None,
        }
    }

    #[test]
    fn a_service_seen_live_and_served_is_evaluated_once() {
        let mut f = Flow::default();
        f.observe(Some(&status("t1", TicketState::Waiting, None)), 0, 60_000);
        assert!(f.awaited().is_none());
        f.observe(
            Some(&status("t1", TicketState::Called, Some("8号窗口"))),
            10,
            60_000,
        );
        f.observe(Some(&status("t1", TicketState::Serving, None)), 20, 60_000);
        f.observe(Some(&status("t1", TicketState::Served, None)), 100, 60_000);
        let a = f.awaited().cloned().expect("asks for an evaluation");
        assert_eq!(a.window_name.as_deref(), Some("8号窗口"));
        assert_eq!(a.deadline_ms, 60_100);
        // The same final status again (a reconnect) does not ask twice.
        assert!(f.answer("t1").is_some());
        f.observe(Some(&status("t1", TicketState::Served, None)), 200, 60_000);
        assert!(f.awaited().is_none());
    }

    #[test]
    fn no_evaluation_for_tickets_not_seen_served_or_not_served() {
        let mut f = Flow::default();
        // Already served when first seen (agent restarted).
        f.observe(Some(&status("t1", TicketState::Served, None)), 0, 60_000);
        assert!(f.awaited().is_none());
        f.observe(Some(&status("t2", TicketState::Called, None)), 0, 60_000);
        f.observe(Some(&status("t2", TicketState::NoShow, None)), 0, 60_000);
        f.observe(Some(&status("t2", TicketState::Served, None)), 0, 60_000);
        assert!(f.awaited().is_none());
    }

    #[test]
    fn unanswered_requests_expire_after_the_grace() {
        let mut f = Flow::default();
        f.observe(Some(&status("t1", TicketState::Serving, None)), 0, 1_000);
        f.observe(Some(&status("t1", TicketState::Served, None)), 0, 1_000);
        assert!(f.expire(1_500, 1_000).is_none());
        assert_eq!(
            f.expire(2_000, 1_000).map(|a| a.ticket_id),
            Some("t1".into())
        );
        assert!(f.awaited().is_none());
        // A new live ticket overtakes an awaited one.
        f.observe(Some(&status("t1", TicketState::Serving, None)), 0, 1_000);
        f.observe(Some(&status("t1", TicketState::Served, None)), 0, 1_000);
        let overtaken = f.observe(Some(&status("t2", TicketState::Waiting, None)), 0, 1_000);
        assert_eq!(overtaken.map(|a| a.ticket_id), Some("t1".into()));
    }
}
