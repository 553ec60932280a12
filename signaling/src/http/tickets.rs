//! HTTP API of the centre's own ticket machine, and a read-only queue view for staff tools.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use protocol::control::IssueTicketRequest;
use protocol::queue::{TicketChannel, TicketView};
use serde::Serialize;

use super::auth::{AuthClerk, AuthTicketMachine};
use super::error::ApiError;
use super::state::AppState;
use crate::queue::Command;

/// `POST /api/v1/tickets`: the ticket machine issues an on-site ticket (现场取号).
pub async fn issue(
    State(state): State<AppState>,
    AuthTicketMachine(machine): AuthTicketMachine,
    Json(req): Json<IssueTicketRequest>,
) -> Result<(StatusCode, Json<TicketView>), ApiError> {
    let queue = state
        .hub
        .centre(&machine.centre_id)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let ticket = queue
        .run(Command::Issue {
            channel: TicketChannel::OnSite,
            category_id: req.category_id,
            appointment: req.appointment,
            device_id: None,
            extension_point_id: None,
        })
        .await?
        .ok_or_else(|| ApiError::Internal("issue returned no ticket".into()))?;
    Ok((StatusCode::CREATED, Json(ticket)))
}

#[derive(Serialize)]
pub struct QueueResponse {
    pub version: u64,
    pub tickets: Vec<TicketView>,
    pub windows: Vec<protocol::queue::WindowView>,
    pub categories: Vec<protocol::queue::CategoryView>,
    pub stats: protocol::queue::QueueStats,
}

/// `GET /api/v1/queue`: the clerk's own centre's queue.
pub async fn queue(
    State(state): State<AppState>,
    AuthClerk(clerk): AuthClerk,
) -> Result<Json<QueueResponse>, ApiError> {
    let queue = state
        .hub
        .centre(&clerk.centre_id)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let view = queue.view().await?;
    Ok(Json(QueueResponse {
        version: view.version,
        tickets: view.tickets,
        windows: view.windows,
        categories: view.categories,
        stats: view.stats,
    }))
}
