//! 预约 on the kiosk's connection: check-in with a booking, booking a slot at the kiosk, the
//! next opening time in `staffing`, and the rule that a walk-in ticket needs an open window.
//!
//! The appointment service itself (bookings, verification codes, slots from the windows'
//! working hours) lives elsewhere; this module sees it through [`KioskDesk`], the few calls a
//! kiosk needs, so the connection handler stays the same whatever store backs the service.
//! A check-in that comes in time takes the ticket with its [`AppointmentSlot`] (served first
//! within the slot by the queue core); a late one takes an ordinary ticket, and the kiosk says
//! so plainly.

use std::sync::Arc;

use async_trait::async_trait;
use protocol::control::{
    Arrival, BookableSlot, CategoryStaffing, CheckInKey, ErrorBody, ErrorCode, KioskBooking,
    KioskTicketStatus,
};
use protocol::queue::AppointmentSlot;

use crate::domain::ExtensionPoint;

/// What a check-in found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckInOutcome {
    /// In time: the ticket carries the slot.
    OnTime {
        category_id: String,
        slot: AppointmentSlot,
    },
    /// After the slot: an ordinary ticket, by arrival.
    Late { category_id: String },
}

/// A booking made at the kiosk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KioskBookingForm {
    pub category_id: String,
    pub slot_start_ms: i64,
    pub phone: String,
    pub verification_code: String,
    /// May be empty at the kiosk.
    pub name: String,
}

/// The appointment service as a kiosk connection uses it. Refusals are [`ErrorBody`]s whose
/// message the kiosk shows the resident as it is (plain Chinese first).
#[async_trait]
pub trait KioskDesk: Send + Sync {
    /// Checks in the booking `key` names at `point` (marks it used when it gives a ticket).
    async fn check_in(
        &self,
        point: &ExtensionPoint,
        key: &CheckInKey,
        now_ms: i64,
    ) -> Result<CheckInOutcome, ErrorBody>;
    /// Bookable slots of `category_id` for residents of `point`, earliest first.
    async fn slots(
        &self,
        point: &ExtensionPoint,
        category_id: &str,
        now_ms: i64,
    ) -> Result<Vec<BookableSlot>, ErrorBody>;
    /// Sends a verification code to `phone` (rate-limited by the service).
    async fn request_verification(
        &self,
        point: &ExtensionPoint,
        phone: &str,
        now_ms: i64,
    ) -> Result<(), ErrorBody>;
    async fn book(
        &self,
        point: &ExtensionPoint,
        form: KioskBookingForm,
        now_ms: i64,
    ) -> Result<KioskBooking, ErrorBody>;
    /// When a remote window serving `category_id` opens next, by the windows' working hours.
    async fn next_opening(&self, centre_id: &str, category_id: &str, now_ms: i64) -> Option<i64>;
}

/// The desk, when the relay runs an appointment service.
pub type SharedDesk = Option<Arc<dyn KioskDesk>>;

pub fn error(code: ErrorCode, message: &str) -> ErrorBody {
    ErrorBody {
        code,
        message: message.to_owned(),
    }
}

/// The answer when this relay has no appointment service.
pub fn no_service() -> ErrorBody {
    error(
        ErrorCode::NotFound,
        "本服务点暂未开通预约，请直接取号或咨询工作人员 / appointments are not offered here",
    )
}

/// "12月8日 周二 09:00" in Shanghai time.
pub fn describe_time_zh(unix_ms: i64) -> String {
    const WEEKDAYS: [&str; 7] = ["一", "二", "三", "四", "五", "六", "日"];
    let (date, minute) = protocol::hours::shanghai(unix_ms);
    let weekday = WEEKDAYS
        .get(usize::from(date.weekday().saturating_sub(1)))
        .copied()
        .unwrap_or("");
    format!(
        "{}月{}日 周{} {:02}:{:02}",
        date.month,
        date.day,
        weekday,
        minute / 60,
        minute % 60
    )
}

/// The walk-in rule: a category with no open remote window (as the queue's staffing says)
/// gets no walk-in ticket. `None` when the ticket may be taken (also for a category the
/// staffing does not list: the queue refuses unknown categories itself).
pub fn walk_in_refusal(staffing: &[CategoryStaffing], category_id: &str) -> Option<ErrorBody> {
    let s = staffing.iter().find(|s| s.category_id == category_id)?;
    if s.availability.open > 0 {
        return None;
    }
    let mut message = String::from("现在没有能办理该事项的远程窗口，暂不能取号");
    if let Some(p) = s.availability.paused {
        message.push_str(&format!(
            "（窗口暂停服务，预计{}恢复）",
            describe_time_zh(p.until_ms)
        ));
    } else if let Some(at) = s.next_opening_ms {
        message.push_str(&format!("（下次开放：{}）", describe_time_zh(at)));
    }
    message.push_str(" / no remote window for this service is open now");
    Some(error(ErrorCode::NoOpenWindow, &message))
}

/// Fills `next_opening_ms` of the categories with no open or paused window.
pub async fn with_next_openings(
    desk: &SharedDesk,
    centre_id: &str,
    mut staffing: Vec<CategoryStaffing>,
    now_ms: i64,
) -> Vec<CategoryStaffing> {
    let Some(desk) = desk else {
        return staffing;
    };
    for s in &mut staffing {
        if s.availability.open == 0 && s.availability.paused.is_none() {
            s.next_opening_ms = desk.next_opening(centre_id, &s.category_id, now_ms).await;
        }
    }
    staffing
}

/// Whether the kiosk already holds a live ticket (a check-in then takes none, and the booking
/// stays unused).
pub fn holds_live_ticket(status: Option<&KioskTicketStatus>) -> bool {
    status.is_some_and(|t| !t.state.is_terminal())
}

/// What the kiosk is told with a checked-in ticket.
pub fn arrival_of(outcome: &CheckInOutcome) -> Arrival {
    match outcome {
        CheckInOutcome::OnTime { .. } => Arrival::OnTime,
        CheckInOutcome::Late { .. } => Arrival::Late,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::control::Availability;
    use protocol::queue::{PauseReason, WindowPause};

    fn staffing(open: u32, paused: Option<WindowPause>, next: Option<i64>) -> CategoryStaffing {
        CategoryStaffing {
            category_id: "social".into(),
            availability: Availability { open, paused },
            next_opening_ms: next,
        }
    }

    #[test]
    fn walk_ins_need_an_open_window_and_are_told_when_one_opens() {
        assert_eq!(walk_in_refusal(&[staffing(1, None, None)], "social"), None);
        assert_eq!(walk_in_refusal(&[staffing(0, None, None)], "civil"), None);
        let refused = walk_in_refusal(&[staffing(0, None, None)], "social").expect("refused");
        assert_eq!(refused.code, ErrorCode::NoOpenWindow);
        // 2026-12-08 01:00 UTC is Tuesday 09:00 in Shanghai.
        let next = 1_796_691_600_000;
        let refused = walk_in_refusal(&[staffing(0, None, Some(next))], "social").expect("refused");
        assert!(
            refused.message.contains("下次开放：12月8日 周二 09:00"),
            "{}",
            refused.message
        );
        let pause = WindowPause {
            reason: PauseReason::Meeting,
            since_ms: next - 600_000,
            until_ms: next,
        };
        let refused =
            walk_in_refusal(&[staffing(0, Some(pause), None)], "social").expect("refused");
        assert!(refused.message.contains("暂停服务"), "{}", refused.message);
    }
}
