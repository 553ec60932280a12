//! The agent's local HTTP API on a loopback address: the kiosk screen and technicians' tools
//! use it to see the kiosk's state and to take or cancel a ticket, to follow device activity
//! and prompts (`GET /api/devices/activity`) and to answer a prompt (`POST /api/prompt/answer`).

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::link::control::{KioskState, Link, LinkError};

#[derive(Clone)]
pub struct ApiState {
    pub link: Link,
    pub screen: std::sync::Arc<crate::devices::activity::KioskScreen>,
    /// The kiosk screen's page and its routes (`/kiosk…`).
    pub kiosk: crate::kiosk::Kiosk,
    /// The media session (`/api/media…`: its state, the screen's video connection).
    pub media: crate::media_session::MediaSession,
    /// The technician page and the self-test (`/technician`, `/api/technician/…`).
    pub technician: crate::selftest::http::Technician,
    /// 预约签到 and 预约办理 at the kiosk (`/kiosk/api/check-in…`, `/kiosk/api/booking…`).
    pub appointments: crate::kiosk::appointments::Desk,
}

pub fn router(state: ApiState) -> Router {
    let kiosk = crate::kiosk::http::routes(state.kiosk.clone());
    let media = crate::media_session::http::routes(state.media.clone());
    let technician = crate::selftest::http::routes(state.technician.clone());
    let appointments = crate::kiosk::appointments::routes(state.appointments.clone());
    Router::new()
        .route("/api/status", get(status))
        .route("/api/ticket", post(take).delete(cancel))
        .route("/api/devices/activity", get(activity))
        .route("/api/prompt/answer", post(answer))
        .with_state(state)
        .merge(kiosk)
        .merge(media)
        .merge(technician)
        .merge(appointments)
        // Every route, the kiosk's own API included, answers loopback hosts only (DNS
        // rebinding: a browser on the kiosk reaching 127.0.0.1 under a foreign name).
        .layer(axum::middleware::from_fn(crate::kiosk::http::guard))
}

async fn status(State(s): State<ApiState>) -> Json<KioskState> {
    Json(s.link.state().borrow().clone())
}

#[derive(Deserialize)]
struct TakeRequest {
    category_id: String,
}

impl IntoResponse for LinkError {
    fn into_response(self) -> Response {
        let status = match &self {
            LinkError::Offline | LinkError::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            LinkError::Refused { .. } => StatusCode::CONFLICT,
            LinkError::NoTicket => StatusCode::NOT_FOUND,
        };
        let body = serde_json::json!({ "error": self, "message": self.to_string() });
        (status, Json(body)).into_response()
    }
}

async fn take(State(s): State<ApiState>, Json(req): Json<TakeRequest>) -> Response {
    match s.link.take_ticket(&req.category_id).await {
        Ok(ticket) => (StatusCode::CREATED, Json(ticket)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn cancel(State(s): State<ApiState>) -> Response {
    match s.link.cancel_ticket().await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn activity(State(s): State<ApiState>) -> Json<crate::devices::activity::ScreenState> {
    Json(s.screen.current())
}

#[derive(Deserialize)]
struct AnswerRequest {
    /// The prompt's id from the activity; the current prompt when absent.
    prompt_id: Option<u64>,
    answer: protocol::device::PromptAnswer,
}

async fn answer(State(s): State<ApiState>, Json(req): Json<AnswerRequest>) -> Response {
    match s.screen.answer(req.prompt_id, req.answer) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            let body = serde_json::json!({ "error": e, "message": e.to_string() });
            (StatusCode::CONFLICT, Json(body)).into_response()
        }
    }
}

/// Serves the API on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}
