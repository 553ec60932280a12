//! The kiosk page's routes on the agent's loopback API:
//!
//! - `GET /` → `/kiosk`; `GET /kiosk` the page; `/kiosk/assets/{file}`, `/kiosk/audio/{file}`;
//! - `GET /kiosk/events`: server-sent `view` events, one whenever the link's state, the
//!   devices' screen state or the evaluation flow changes (and every 30 s, so the open/closed
//!   display follows the clock);
//! - `GET /kiosk/api/view`: the current view once (technicians, tests);
//! - `GET /kiosk/api/setup`: timeouts, evaluation levels and reasons, for the page at start;
//! - `POST /kiosk/api/evaluation` `{ticket_id, level, reasons}`: the resident's rating, answered
//!   once it is on disk;
//! - `GET /kiosk/api/outbox`: how many evaluations wait for the relay (technicians, tests).
//!
//! Requests must name a loopback host (no DNS rebinding from a web page elsewhere), and every
//! response carries a strict content security policy: the page has no inline script or style.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use protocol::control::{EVALUATION_REASONS, EvaluationLevel, is_evaluation_reason};
use serde::{Deserialize, Serialize};
use serde_json::json;
use web_common::{CacheControl, SecurityHeaders, security_headers};

use super::{AnswerError, Kiosk, assets};
use crate::link::control::LinkState;

pub fn routes(kiosk: Kiosk) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/kiosk") }))
        .route("/kiosk", get(page))
        .route("/kiosk/assets/{file}", get(file))
        .route("/kiosk/audio/{file}", get(audio))
        .route("/kiosk/events", get(events))
        .route("/kiosk/api/setup", get(setup))
        .route("/kiosk/api/view", get(current_view))
        .route("/kiosk/api/evaluation", post(evaluate))
        .route("/kiosk/api/outbox", get(outbox))
        .layer(middleware::from_fn_with_state(
            SECURITY_HEADERS,
            security_headers,
        ))
        .layer(middleware::from_fn(guard))
        .with_state(kiosk)
}

/// Only loopback hosts (security headers are added inside, on the answers it lets through).
/// The whole local API sits behind it: a page that rebinds its own name to 127.0.0.1 still
/// sends its own name as `Host`.
pub(crate) async fn guard(request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let name = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            name
        } else {
            host
        }
    });
    let loopback = name == "localhost"
        || name
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return (StatusCode::MISDIRECTED_REQUEST, "loopback only").into_response();
    }
    next.run(request).await
}

/// The page has no inline script or style and talks to the agent only; nothing is cached.
const SECURITY_HEADERS: SecurityHeaders = SecurityHeaders {
    content_security_policy: "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    deny_framing: false,
    cache_control: CacheControl::All("no-cache"),
};

async fn page() -> Response {
    file(Path("index.html".to_owned())).await
}

async fn file(Path(name): Path<String>) -> Response {
    match assets::text(&name) {
        Some((mime, body)) => ([(header::CONTENT_TYPE, mime)], body).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn audio(Path(name): Path<String>) -> Response {
    match assets::audio(&name) {
        Some(bytes) => ([(header::CONTENT_TYPE, "audio/ogg")], bytes).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The extension point's hours as the page shows them.
#[derive(Debug, Serialize)]
struct HoursView {
    /// `None` when the point has no structured hours (then tickets are always offered).
    open: Option<bool>,
    /// The next opening: date `YYYY-MM-DD`, ISO weekday and `H:MM`.
    next_opening: Option<(String, u8, String)>,
}

/// Everything the page shows, in one event.
#[derive(Debug, Serialize)]
struct View {
    link: LinkState,
    /// The relay's time now (Unix ms), for countdowns.
    now_ms: i64,
    centre: Option<protocol::control::CentreInfo>,
    extension_point: Option<protocol::control::ExtensionPointInfo>,
    categories: Vec<protocol::queue::CategoryView>,
    /// Which categories a remote window could serve now (`None`: the relay has not said).
    staffing: Option<Vec<protocol::control::CategoryStaffing>>,
    ticket: Option<protocol::control::KioskTicketStatus>,
    /// The serving clerk's typed messages for this ticket, oldest first.
    typed_messages: Vec<protocol::control::TypedMessage>,
    hours: HoursView,
    evaluation: Option<super::flow::AwaitedEvaluation>,
    devices: crate::devices::activity::ScreenState,
}

fn view(kiosk: &Kiosk) -> View {
    let state = kiosk.link().state().borrow().clone();
    let cache = kiosk.point_cache();
    let now_ms = kiosk.now_ms();
    let extension_point = state.extension_point.or(cache.extension_point);
    let hours = match extension_point.as_ref().and_then(|p| p.hours.as_ref()) {
        None => HoursView {
            open: None,
            next_opening: None,
        },
        Some(h) => HoursView {
            open: Some(h.is_open_at(now_ms)),
            next_opening: h
                .next_opening(now_ms)
                .map(|(d, t)| (d.to_string(), d.weekday(), t.to_string())),
        },
    };
    View {
        link: state.link,
        now_ms,
        centre: state.centre.or(cache.centre),
        categories: if state.categories.is_empty() {
            cache.categories
        } else {
            state.categories
        },
        extension_point,
        staffing: state.staffing,
        ticket: state.ticket,
        typed_messages: state.typed_messages,
        hours,
        evaluation: kiosk.awaited(),
        devices: kiosk.screen().current(),
    }
}

async fn events(State(kiosk): State<Kiosk>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let link = kiosk.link().state();
    let screen = kiosk.screen().subscribe();
    let flow = kiosk.subscribe_flow();
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let start = (kiosk, link, screen, flow, tick, true);
    let stream = futures_util::stream::unfold(
        start,
        |(kiosk, mut link, mut screen, mut flow, mut tick, first)| async move {
            if !first {
                let alive = tokio::select! {
                    r = link.changed() => r.is_ok(),
                    r = screen.changed() => r.is_ok(),
                    r = flow.changed() => r.is_ok(),
                    _ = tick.tick() => true,
                };
                if !alive {
                    return None;
                }
            }
            link.borrow_and_update();
            screen.borrow_and_update();
            flow.borrow_and_update();
            let event = Event::default()
                .event("view")
                .json_data(view(&kiosk))
                .unwrap_or_else(|_| Event::default().event("error"));
            Some((Ok(event), (kiosk, link, screen, flow, tick, false)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn current_view(State(kiosk): State<Kiosk>) -> Json<View> {
    Json(view(&kiosk))
}

async fn setup(State(kiosk): State<Kiosk>) -> Json<serde_json::Value> {
    let c = kiosk.config();
    let reasons: Vec<_> = EVALUATION_REASONS
        .iter()
        .map(|(id, zh, en)| json!({ "id": id, "zh": zh, "en": en }))
        .collect();
    let levels: Vec<_> = EvaluationLevel::ALL
        .iter()
        .map(|l| json!({ "id": l.as_str(), "score": l.score(), "bad": l.is_bad() }))
        .collect();
    Json(json!({
        "evaluation_timeout_secs": c.evaluation_timeout_secs,
        "idle_return_secs": c.idle_return_secs,
        "thank_you_secs": c.thank_you_secs,
        "presence_check_secs": c.presence_check_secs,
        "presence_grace_secs": c.presence_grace_secs,
        "levels": levels,
        "reasons": reasons,
    }))
}

#[derive(Deserialize)]
struct EvaluationRequest {
    ticket_id: String,
    level: EvaluationLevel,
    #[serde(default)]
    reasons: Vec<String>,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "error": code, "message": message }))).into_response()
}

async fn evaluate(State(kiosk): State<Kiosk>, Json(req): Json<EvaluationRequest>) -> Response {
    let mut reasons = req.reasons;
    reasons.sort();
    reasons.dedup();
    if reasons.iter().any(|r| !is_evaluation_reason(r)) {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_reason",
            "未知的原因 / unknown reason",
        );
    }
    if req.level.is_bad() && reasons.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "reason_needed",
            "请选择至少一个原因 / please choose at least one reason",
        );
    }
    if !req.level.is_bad() {
        reasons.clear();
    }
    match kiosk.answer(&req.ticket_id, req.level, reasons).await {
        Ok(()) => (StatusCode::CREATED, Json(json!({ "recorded": true }))).into_response(),
        Err(e @ AnswerError::NotAwaited) => {
            error(StatusCode::CONFLICT, "not_awaited", &e.to_string())
        }
        Err(e @ AnswerError::Outbox(_)) => {
            error(StatusCode::SERVICE_UNAVAILABLE, "not_saved", &e.to_string())
        }
    }
}

async fn outbox(State(kiosk): State<Kiosk>) -> Response {
    match kiosk.outbox().counts().await {
        Ok(c) => Json(c).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "outbox", &e.to_string()),
    }
}
