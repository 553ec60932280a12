//! 预约 at the kiosk: the page's routes for checking in with a booking (QR on the scanner, or
//! the last four digits of the mobile number and the booking code on the keypad) and for
//! booking a slot, passed to the relay's appointment service over the control link.
//!
//! - `POST /kiosk/api/check-in` `{phone_tail, code}`;
//! - `POST /kiosk/api/check-in/scan`: waits up to [`SCAN_WAIT`] for the resident's QR on the
//!   scanner and checks in with it; `204` when nothing was scanned (the page asks again while
//!   its check-in screen is shown);
//! - `GET /kiosk/api/slots/{category_id}`: bookable slots;
//! - `POST /kiosk/api/verification` `{phone}`: a verification code to that number;
//! - `POST /kiosk/api/booking` `{category_id, slot_start_ms, phone, verification_code, name}`.
//!
//! Input is checked here first (digits, lengths) so that a resident's typing mistake is told
//! at once in plain Chinese; the relay checks everything again. Answers are the relay's
//! ([`AppointmentAnswer`]) or an error `{error, message}` whose message the page shows as it
//! is. Nothing personal is logged: phone numbers, codes and scans stay out of every log line.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use protocol::control::CheckInKey;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;

use crate::devices::activity::KioskScreen;
use crate::devices::setup::DeviceHandles;
use crate::devices::workers::TestScan;
use crate::link::control::{AppointmentAnswer, AppointmentRequest, Link};

/// How long one scan request waits for the resident's QR.
pub const SCAN_WAIT: Duration = Duration::from_secs(20);
/// The longest booking code or QR payload the kiosk passes on.
const MAX_CODE: usize = 16;
const MAX_QR: usize = 512;
/// The longest name accepted at the kiosk (characters).
const MAX_NAME: usize = 20;

/// What the appointment routes need: the link, the screen (for "请扫码…") and the scanner.
#[derive(Clone)]
pub struct Desk {
    pub link: Link,
    pub screen: Arc<KioskScreen>,
    pub devices: watch::Receiver<Option<DeviceHandles>>,
}

pub fn routes(desk: Desk) -> Router {
    Router::new()
        .route("/kiosk/api/check-in", post(check_in_by_code))
        .route("/kiosk/api/check-in/scan", post(check_in_by_scan))
        .route("/kiosk/api/slots/{category_id}", get(slots))
        .route("/kiosk/api/verification", post(verification))
        .route("/kiosk/api/booking", post(book))
        .with_state(desk)
}

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "error": code, "message": message }))).into_response()
}

fn bad_input(message: &str) -> Response {
    refuse(StatusCode::BAD_REQUEST, "bad_input", message)
}

async fn ask(desk: &Desk, request: AppointmentRequest) -> Response {
    match desk.link.appointment(request).await {
        Ok(answer) => {
            let status = match answer {
                AppointmentAnswer::CheckedIn { .. } | AppointmentAnswer::Booked { .. } => {
                    StatusCode::CREATED
                }
                _ => StatusCode::OK,
            };
            (status, Json(answer)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

fn digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

/// A mainland mobile number: 11 digits starting with 1.
pub fn is_mobile(s: &str) -> bool {
    digits(s, 11) && s.starts_with('1')
}

/// A booking code as typed: 4–16 letters or digits (upper-cased before sending).
fn booking_code(s: &str) -> Option<String> {
    let s = s.trim();
    let ok = (4..=MAX_CODE).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then(|| s.to_ascii_uppercase())
}

#[derive(Deserialize)]
struct CodeCheckIn {
    phone_tail: String,
    code: String,
}

async fn check_in_by_code(State(desk): State<Desk>, Json(req): Json<CodeCheckIn>) -> Response {
    if !digits(&req.phone_tail, 4) {
        return bad_input("请输入手机号码的后四位数字");
    }
    let Some(code) = booking_code(&req.code) else {
        return bad_input("预约码不正确，请核对后重新输入");
    };
    let key = CheckInKey::Code {
        phone_tail: req.phone_tail,
        code,
    };
    ask(&desk, AppointmentRequest::CheckIn(key)).await
}

async fn check_in_by_scan(State(desk): State<Desk>) -> Response {
    let scanner = desk
        .devices
        .borrow()
        .as_ref()
        .and_then(|h| h.scanner.clone());
    let Some(scanner) = scanner else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_scanner",
            "扫码器不可用，请输入手机号后四位和预约码",
        );
    };
    match scanner.resident_scan(&desk.screen, SCAN_WAIT).await {
        TestScan::NoScan => StatusCode::NO_CONTENT.into_response(),
        TestScan::Busy => refuse(
            StatusCode::CONFLICT,
            "scanner_busy",
            "扫码器正在使用，请稍后再扫",
        ),
        TestScan::Gone | TestScan::Failed(_) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_scanner",
            "扫码器不可用，请输入手机号后四位和预约码",
        ),
        TestScan::Scanned(scan) => {
            let qr = scan.text.into_inner().trim().to_owned();
            if qr.is_empty() || qr.len() > MAX_QR {
                return bad_input("这不是预约二维码，请扫描预约短信或页面上的二维码");
            }
            ask(&desk, AppointmentRequest::CheckIn(CheckInKey::Qr { qr })).await
        }
    }
}

async fn slots(State(desk): State<Desk>, Path(category_id): Path<String>) -> Response {
    ask(&desk, AppointmentRequest::ListSlots { category_id }).await
}

#[derive(Deserialize)]
struct VerificationRequest {
    phone: String,
}

async fn verification(State(desk): State<Desk>, Json(req): Json<VerificationRequest>) -> Response {
    if !is_mobile(&req.phone) {
        return bad_input("请输入11位手机号码");
    }
    ask(
        &desk,
        AppointmentRequest::RequestVerification { phone: req.phone },
    )
    .await
}

#[derive(Deserialize)]
struct BookingRequest {
    category_id: String,
    slot_start_ms: i64,
    phone: String,
    verification_code: String,
    #[serde(default)]
    name: String,
}

async fn book(State(desk): State<Desk>, Json(req): Json<BookingRequest>) -> Response {
    if !is_mobile(&req.phone) {
        return bad_input("请输入11位手机号码");
    }
    if !(4..=8).contains(&req.verification_code.len())
        || !req.verification_code.bytes().all(|b| b.is_ascii_digit())
    {
        return bad_input("请输入短信中的验证码");
    }
    let name = req.name.trim().to_owned();
    if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return bad_input("姓名过长或含有不能识别的字符");
    }
    ask(
        &desk,
        AppointmentRequest::Book {
            category_id: req.category_id,
            slot_start_ms: req.slot_start_ms,
            phone: req.phone,
            verification_code: req.verification_code,
            name,
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_input_is_checked_before_it_leaves_the_kiosk() {
        assert!(is_mobile("13812345678"));
        assert!(!is_mobile("23812345678"));
        assert!(!is_mobile("1381234567"));
        assert!(!is_mobile("1381234567a"));
        assert_eq!(booking_code(" k7p2q9 ").as_deref(), Some("K7P2Q9"));
        assert_eq!(booking_code("K7P"), None);
        assert_eq!(booking_code("K7P2-Q9"), None);
        assert_eq!(booking_code(&"A".repeat(17)), None);
        assert!(digits("5678", 4));
        assert!(!digits("567", 4));
        assert!(!digits("56a8", 4));
    }
}
