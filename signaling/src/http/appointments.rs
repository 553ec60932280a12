//! Appointments over HTTP.
//!
//! Public, without a login (the booking page `/book/{point}` and anyone's script):
//!
//! - `GET  /api/v1/public/appointment-points` → the points that take appointments
//! - `GET  /api/v1/public/appointment-points/{point}` → `{point, categories}`
//! - `GET  /api/v1/public/appointment-points/{point}/slots?category=` → slots with places left
//! - `POST /api/v1/public/appointments/code` `{mobile}` → a verification code is sent
//! - `POST /api/v1/public/appointments` `{point_id, category_id, slot_start_ms, name, mobile, code}`
//!   → the booking (code, QR payload, masked name and number)
//! - `POST /api/v1/public/appointments/lookup` `{code, mobile}` → the booking
//! - `POST /api/v1/public/appointments/cancel` `{code, mobile}`
//! - `POST /api/v1/public/appointments/reschedule` `{code, mobile, slot_start_ms}`
//! - `GET  /api/v1/public/qr/{code}` → the QR of `RVWB1:<code>` as SVG (any well-formed code;
//!   nothing is looked up, so it tells nobody whether a booking exists)
//!
//! Every public request counts against its source address (IPv6: /64) per minute, and every
//! write also against the mobile number (its keyed hash) per hour; both tables are bounded.
//! Refusals are `{code, message}` with a Chinese message for residents; 429 for limits.
//! Writes go through the relay's same-site rule (JSON, no foreign `Origin`).
//!
//! For staff: `GET /api/v1/appointments?date=YYYY-MM-DD` → the caller's centre's bookings of
//! that day, masked (clerks and supervisors).

use std::sync::Mutex;
use std::sync::atomic::Ordering;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::auth::{AuthClerk, SourceAddress};
use super::error::ApiError;
use super::state::AppState;
use crate::appointments::codes::{self, Admit, WindowCounter};
use crate::appointments::{AppointmentError, Appointments, BookRequest};
use crate::domain::Role;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/book/{point}", get(page))
        .route("/api/v1/public/appointment-points", get(points))
        .route("/api/v1/public/appointment-points/{point}", get(point))
        .route(
            "/api/v1/public/appointment-points/{point}/slots",
            get(slots),
        )
        .route("/api/v1/public/appointments/code", post(request_code))
        .route("/api/v1/public/appointments", post(book))
        .route("/api/v1/public/appointments/lookup", post(lookup))
        .route("/api/v1/public/appointments/cancel", post(cancel))
        .route("/api/v1/public/appointments/reschedule", post(reschedule))
        .route("/api/v1/public/qr/{code}", get(qr))
        .route("/api/v1/appointments", get(day_list))
}

/// The per-address and per-number limits of the public API (kept in `AppState`).
pub struct PublicLimits {
    per_address: Mutex<WindowCounter>,
    per_number: Mutex<WindowCounter>,
}

impl PublicLimits {
    pub fn new(config: &crate::appointments::AppointmentsSection) -> Self {
        Self {
            per_address: Mutex::new(WindowCounter::new(
                usize::try_from(config.max_requests_per_address_per_minute).unwrap_or(60),
                60_000,
                50_000,
            )),
            per_number: Mutex::new(WindowCounter::new(
                usize::try_from(config.max_writes_per_number_per_hour).unwrap_or(20),
                3_600_000,
                100_000,
            )),
        }
    }
}

/// A refusal of the public API: status, code, Chinese message.
struct Refusal(StatusCode, &'static str, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "code": self.1, "message": self.2 }))).into_response()
    }
}

impl From<AppointmentError> for Refusal {
    fn from(e: AppointmentError) -> Self {
        let status = match &e {
            AppointmentError::UnknownPoint | AppointmentError::NotFound => StatusCode::NOT_FOUND,
            AppointmentError::SlotFull
            | AppointmentError::AlreadyBooked
            | AppointmentError::NotLive(_) => StatusCode::CONFLICT,
            AppointmentError::Verification(
                codes::CodeRefusal::ResendTooSoon { .. } | codes::CodeRefusal::TooManySends { .. },
            ) => StatusCode::TOO_MANY_REQUESTS,
            AppointmentError::Verification(codes::CodeRefusal::Busy)
            | AppointmentError::SendFailed
            | AppointmentError::Store(_)
            | AppointmentError::Crypto => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        if matches!(e, AppointmentError::Store(_) | AppointmentError::Crypto) {
            tracing::error!(error = %e, "appointments: request failed");
        }
        Refusal(status, e.code(), e.message_zh())
    }
}

type Answer<T> = Result<Json<T>, Refusal>;

/// A JSON body of the public API; one that does not parse is refused with a plain message
/// and counted, not answered with the framework's English text.
struct Body<T>(T);

impl<T: serde::de::DeserializeOwned> axum::extract::FromRequest<AppState> for Body<T> {
    type Rejection = Refusal;

    async fn from_request(
        req: axum::extract::Request,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(e) => {
                state
                    .appointments
                    .counters
                    .refused
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "appointments: unreadable request body");
                Err(Refusal(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "请求内容不完整或格式不正确，请刷新页面后重试".into(),
                ))
            }
        }
    }
}

fn limited(service: &Appointments, wait_secs: u64, what: &str) -> Refusal {
    service
        .counters
        .rate_limited
        .fetch_add(1, Ordering::Relaxed);
    Refusal(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("{what}，请{}后再试", wait_text(wait_secs)),
    )
}

fn wait_text(secs: u64) -> String {
    if secs < 60 {
        format!("{secs}秒")
    } else {
        format!("{}分钟", secs.div_ceil(60))
    }
}

fn busy(service: &Appointments) -> Refusal {
    service
        .counters
        .rate_limited
        .fetch_add(1, Ordering::Relaxed);
    Refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        "系统繁忙，请稍后再试".into(),
    )
}

/// Counts a public request against its address.
fn admit_address(state: &AppState, SourceAddress(ip): SourceAddress) -> Result<(), Refusal> {
    let key = crate::login_guard::address_key(ip).to_string();
    let now = state.clock.now_ms();
    let verdict = state
        .public_limits
        .per_address
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .hit(&key, now);
    match verdict {
        Admit::Yes => Ok(()),
        Admit::No { wait_secs } => Err(limited(&state.appointments, wait_secs, "请求过于频繁")),
        Admit::Busy => Err(busy(&state.appointments)),
    }
}

/// Counts a write against the mobile number (a malformed number is left to the service,
/// which refuses it with its own message).
fn admit_number(state: &AppState, mobile: &str) -> Result<(), Refusal> {
    let Some(mobile) = codes::normalise_mobile(mobile) else {
        return Ok(());
    };
    let key = state.appointments.mobile_hash(&mobile);
    let now = state.clock.now_ms();
    let verdict = state
        .public_limits
        .per_number
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .hit(&key, now);
    match verdict {
        Admit::Yes => Ok(()),
        Admit::No { wait_secs } => Err(limited(
            &state.appointments,
            wait_secs,
            "该手机号操作过于频繁",
        )),
        Admit::Busy => Err(busy(&state.appointments)),
    }
}

/// `/book/{point}`: the booking page (the point is read by the page from its address).
async fn page() -> Result<Response, ApiError> {
    super::assets::page(Path("book".to_owned())).await
}

async fn points(State(state): State<AppState>, source: SourceAddress) -> Answer<serde_json::Value> {
    admit_address(&state, source)?;
    let points = state.appointments.points().await?;
    Ok(Json(json!({ "points": points })))
}

async fn point(
    State(state): State<AppState>,
    source: SourceAddress,
    Path(point_id): Path<String>,
) -> Answer<serde_json::Value> {
    admit_address(&state, source)?;
    let point = state.appointments.point(&point_id).await?;
    let categories = state.appointments.categories(&point_id).await?;
    Ok(Json(json!({
        "point": point,
        "categories": categories,
        "booking_days": state.appointments.config().booking_days,
    })))
}

#[derive(Deserialize)]
struct SlotQuery {
    category: String,
}

async fn slots(
    State(state): State<AppState>,
    source: SourceAddress,
    Path(point_id): Path<String>,
    Query(q): Query<SlotQuery>,
) -> Answer<serde_json::Value> {
    admit_address(&state, source)?;
    let slots = state.appointments.slots(&point_id, &q.category).await?;
    Ok(Json(json!({ "slots": slots })))
}

#[derive(Deserialize)]
struct CodeRequest {
    mobile: String,
}

async fn request_code(
    State(state): State<AppState>,
    source: SourceAddress,
    Body(req): Body<CodeRequest>,
) -> Answer<serde_json::Value> {
    admit_address(&state, source)?;
    admit_number(&state, &req.mobile)?;
    let sent = state.appointments.request_code(&req.mobile).await?;
    Ok(Json(json!({
        "sent": true,
        "valid_secs": sent.valid_secs,
        "resend_after_secs": sent.resend_after_secs,
    })))
}

#[derive(Deserialize)]
struct BookBody {
    point_id: String,
    category_id: String,
    slot_start_ms: i64,
    name: String,
    mobile: String,
    code: String,
}

async fn book(
    State(state): State<AppState>,
    source: SourceAddress,
    Body(req): Body<BookBody>,
) -> Answer<crate::appointments::BookingView> {
    admit_address(&state, source)?;
    admit_number(&state, &req.mobile)?;
    let view = state
        .appointments
        .book(BookRequest {
            point_id: req.point_id,
            category_id: req.category_id,
            slot_start_ms: req.slot_start_ms,
            name: req.name,
            mobile: req.mobile,
            verification_code: req.code,
        })
        .await?;
    Ok(Json(view))
}

#[derive(Deserialize)]
struct ByCode {
    code: String,
    mobile: String,
    #[serde(default)]
    slot_start_ms: Option<i64>,
}

async fn lookup(
    State(state): State<AppState>,
    source: SourceAddress,
    Body(req): Body<ByCode>,
) -> Answer<crate::appointments::BookingView> {
    admit_address(&state, source)?;
    admit_number(&state, &req.mobile)?;
    Ok(Json(
        state.appointments.lookup(&req.code, &req.mobile).await?,
    ))
}

async fn cancel(
    State(state): State<AppState>,
    source: SourceAddress,
    Body(req): Body<ByCode>,
) -> Answer<crate::appointments::BookingView> {
    admit_address(&state, source)?;
    admit_number(&state, &req.mobile)?;
    Ok(Json(
        state.appointments.cancel(&req.code, &req.mobile).await?,
    ))
}

async fn reschedule(
    State(state): State<AppState>,
    source: SourceAddress,
    Body(req): Body<ByCode>,
) -> Answer<crate::appointments::BookingView> {
    admit_address(&state, source)?;
    admit_number(&state, &req.mobile)?;
    let Some(slot) = req.slot_start_ms else {
        return Err(AppointmentError::NoSuchSlot.into());
    };
    Ok(Json(
        state
            .appointments
            .reschedule(&req.code, &req.mobile, slot)
            .await?,
    ))
}

async fn qr(
    State(state): State<AppState>,
    source: SourceAddress,
    Path(code): Path<String>,
) -> Result<Response, Refusal> {
    admit_address(&state, source)?;
    let code = codes::normalise_code(&code).ok_or(AppointmentError::BadCode)?;
    let svg =
        crate::appointments::qr::svg(&codes::qr_payload(&code)).ok_or(AppointmentError::BadCode)?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

#[derive(Deserialize)]
struct DayQuery {
    date: Option<String>,
}

async fn day_list(
    State(state): State<AppState>,
    AuthClerk(clerk): AuthClerk,
    Query(q): Query<DayQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !(clerk.has(Role::Clerk) || clerk.has(Role::Supervisor)) {
        return Err(ApiError::Forbidden);
    }
    let date = match q.date.as_deref() {
        Some(d) => protocol::hours::Date::parse(d).ok_or_else(|| {
            ApiError::BadRequest("日期格式应为 YYYY-MM-DD / date must be YYYY-MM-DD".into())
        })?,
        None => protocol::hours::shanghai(state.clock.now_ms()).0,
    };
    let entries = state
        .appointments
        .day_list(&clerk.centre_id, date)
        .await
        .map_err(|e| match e {
            AppointmentError::Store(s) => ApiError::from(s),
            other => ApiError::Internal(other.to_string()),
        })?;
    Ok(Json(
        json!({ "date": date.to_string(), "appointments": entries }),
    ))
}
