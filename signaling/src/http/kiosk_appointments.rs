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

/// What a check-in found: the booking and its category, and the slot when in time (the
/// ticket then carries it); `None` after the slot (an ordinary ticket, by arrival).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckInOutcome {
    pub booking_id: String,
    pub category_id: String,
    pub on_time: Option<AppointmentSlot>,
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
    /// Decides a check-in of the booking `key` names at `point` (nothing is marked yet).
    async fn check_in(
        &self,
        point: &ExtensionPoint,
        key: &CheckInKey,
        now_ms: i64,
    ) -> Result<CheckInOutcome, ErrorBody>;
    /// Records the ticket a check-in became (the booking is used from then on).
    async fn confirm_check_in(
        &self,
        booking_id: &str,
        ticket_id: &str,
        late: bool,
    ) -> Result<(), ErrorBody>;
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
    if outcome.on_time.is_some() {
        Arrival::OnTime
    } else {
        Arrival::Late
    }
}

/// The name a booking made at the kiosk carries when the resident gave none: the service
/// needs one for its lists, and the kiosk does not ask (no Chinese input method on a touch
/// screen for the elderly); clerks read it as "not given".
pub const NAME_NOT_GIVEN: &str = "未填姓名";

fn appointment_error(e: &crate::appointments::AppointmentError) -> ErrorBody {
    use crate::appointments::AppointmentError as E;
    let code = match e {
        E::BadMobile | E::BadName | E::BadCode => ErrorCode::BadMessage,
        E::UnknownPoint | E::NoSuchSlot | E::NotFound => ErrorCode::NotFound,
        E::NotBookable | E::NotLive(_) => ErrorCode::InvalidState,
        E::SlotFull | E::AlreadyBooked => ErrorCode::Conflict,
        E::Verification(_) => ErrorCode::Forbidden,
        E::SendFailed | E::Store(_) | E::Crypto => ErrorCode::Internal,
    };
    error(code, &e.message_zh())
}

fn check_in_refusal(r: &crate::appointments::CheckInRefusal) -> ErrorBody {
    use crate::appointments::CheckInRefusal as R;
    let code = match r {
        R::Unreadable => ErrorCode::BadMessage,
        R::NotFound | R::WrongPoint { .. } => ErrorCode::NotFound,
        R::Cancelled | R::AlreadyCheckedIn | R::NotToday { .. } | R::TooEarly { .. } => {
            ErrorCode::InvalidState
        }
        R::Locked { .. } => ErrorCode::LimitExceeded,
        R::Unavailable => ErrorCode::Internal,
    };
    error(code, &r.message_zh())
}

/// The relay's appointment service behind the kiosk's interface.
#[async_trait]
impl KioskDesk for crate::appointments::Appointments {
    async fn check_in(
        &self,
        point: &ExtensionPoint,
        key: &CheckInKey,
        _now_ms: i64,
    ) -> Result<CheckInOutcome, ErrorBody> {
        let key = match key {
            CheckInKey::Qr { qr } => qr.clone(),
            CheckInKey::Code { phone_tail, code } => format!("{phone_tail}{code}"),
        };
        let found = crate::appointments::Appointments::check_in(self, &point.id, &key)
            .await
            .map_err(|r| check_in_refusal(&r))?;
        Ok(CheckInOutcome {
            booking_id: found.booking_id,
            category_id: found.category_id,
            on_time: match found.arrival {
                crate::appointments::Arrival::OnTime(slot) => Some(slot),
                crate::appointments::Arrival::Late => None,
            },
        })
    }

    async fn confirm_check_in(
        &self,
        booking_id: &str,
        ticket_id: &str,
        late: bool,
    ) -> Result<(), ErrorBody> {
        crate::appointments::Appointments::confirm_check_in(self, booking_id, ticket_id, late)
            .await
            .map_err(|e| appointment_error(&e))
    }

    async fn slots(
        &self,
        point: &ExtensionPoint,
        category_id: &str,
        _now_ms: i64,
    ) -> Result<Vec<BookableSlot>, ErrorBody> {
        let slots = crate::appointments::Appointments::slots(self, &point.id, category_id)
            .await
            .map_err(|e| appointment_error(&e))?;
        Ok(slots
            .into_iter()
            .map(|s| BookableSlot {
                start_ms: s.start_ms,
                end_ms: s.end_ms,
                free: s.left,
            })
            .collect())
    }

    async fn request_verification(
        &self,
        _point: &ExtensionPoint,
        phone: &str,
        _now_ms: i64,
    ) -> Result<(), ErrorBody> {
        self.request_code(phone)
            .await
            .map(|_| ())
            .map_err(|e| appointment_error(&e))
    }

    async fn book(
        &self,
        point: &ExtensionPoint,
        form: KioskBookingForm,
        _now_ms: i64,
    ) -> Result<KioskBooking, ErrorBody> {
        let name = if form.name.trim().is_empty() {
            NAME_NOT_GIVEN.to_owned()
        } else {
            form.name
        };
        let request = crate::appointments::BookRequest {
            point_id: point.id.clone(),
            category_id: form.category_id,
            slot_start_ms: form.slot_start_ms,
            name,
            mobile: form.phone,
            verification_code: form.verification_code,
        };
        let b = crate::appointments::Appointments::book(self, request)
            .await
            .map_err(|e| appointment_error(&e))?;
        let qr_image = crate::appointments::qr::svg(&b.qr_payload).map(|svg| {
            use base64::Engine as _;
            format!(
                "data:image/svg+xml;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(svg)
            )
        });
        Ok(KioskBooking {
            booking_code: b.code,
            qr: b.qr_payload,
            category_name: b.category_name,
            slot: AppointmentSlot {
                start_ms: b.slot_start_ms,
                end_ms: b.slot_end_ms,
            },
            phone_masked: b.mobile_masked,
            qr_image,
        })
    }

    async fn next_opening(&self, centre_id: &str, category_id: &str, now_ms: i64) -> Option<i64> {
        crate::appointments::Appointments::next_opening(self, centre_id, category_id, now_ms)
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
