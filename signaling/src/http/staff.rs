//! Staff sessions and accounts over HTTP: a staff member lists and ends their own logins; a
//! supervisor disables a clerk of their centre, which ends the clerk's logins and closes
//! their open consoles (each console re-checks its login, see `clerk_ws`).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Serialize;
use tracing::info;

use super::auth::{AuthClerk, SourceAddress, audit, idle_ms, login_token};
use super::error::ApiError;
use super::evaluations::AuthSupervisor;
use super::state::AppState;
use crate::audit::kind;
use crate::auth::token_hash;
use crate::domain::{Clerk, Role};
use crate::store::LoginRecord;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/sessions", get(my_sessions))
        .route("/api/v1/sessions/{id}", delete(end_my_session))
        .route("/api/v1/staff/{username}/disable", post(disable_clerk))
}

#[derive(Serialize)]
pub struct SessionView {
    #[serde(flatten)]
    pub login: LoginRecord,
    /// The login this request was made with.
    pub current: bool,
}

async fn my_sessions(
    State(state): State<AppState>,
    AuthClerk(clerk): AuthClerk,
    headers: HeaderMap,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    let current = login_token(&headers).map(|t| token_hash(&t));
    let logins = state
        .store
        .clerk_logins(&clerk.id, state.clock.now_ms(), idle_ms(&state.config.auth))
        .await?;
    Ok(Json(
        logins
            .into_iter()
            .map(|login| SessionView {
                current: current.as_deref() == Some(login.id.as_str()),
                login,
            })
            .collect(),
    ))
}

/// Ends one of the caller's own logins; another clerk's login is "not found".
async fn end_my_session(
    State(state): State<AppState>,
    AuthClerk(clerk): AuthClerk,
    SourceAddress(source): SourceAddress,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !state.store.delete_clerk_login(&clerk.id, &id).await? {
        return Err(ApiError::NotFound);
    }
    info!(clerk = %clerk.id, "staff member ended one of their sessions");
    audit(
        &state,
        kind::SESSION_ENDED,
        &format!("clerk:{}", clerk.id),
        Some(source),
        &format!("clerk:{}", clerk.username),
        "ended one of their own sessions",
    )
    .await;
    Ok(Json(serde_json::json!({"ok": true})))
}

/// A supervisor disables an account of their centre that is not a supervisor's. Every login
/// of that account ends at once; open consoles close at their next check.
async fn disable_clerk(
    State(state): State<AppState>,
    AuthSupervisor(supervisor): AuthSupervisor,
    SourceAddress(source): SourceAddress,
    Path(username): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut target = managed_account(&state, &supervisor, &username).await?;
    target.active = false;
    state
        .store
        .upsert_clerk(&target, state.clock.now_ms())
        .await?;
    let ended = state.store.delete_clerk_logins(&target.id).await?;
    info!(
        supervisor = %supervisor.id,
        clerk = %target.id,
        sessions_ended = ended,
        "supervisor disabled a staff account"
    );
    audit(
        &state,
        kind::ADMIN,
        &format!("clerk:{}", supervisor.id),
        Some(source),
        &format!("clerk:{}", target.username),
        &format!("account disabled; {ended} sessions ended"),
    )
    .await;
    Ok(Json(serde_json::json!({"ok": true})))
}

/// The account a supervisor may act on (disable, reset the second factor, set the password):
/// same centre (another centre's is not found), not a supervisor, not themselves.
pub(super) async fn managed_account(
    state: &AppState,
    supervisor: &Clerk,
    username: &str,
) -> Result<Clerk, ApiError> {
    let Some(target) = state.store.clerk_by_username(username).await? else {
        return Err(ApiError::NotFound);
    };
    if target.centre_id != supervisor.centre_id {
        return Err(ApiError::NotFound);
    }
    if target.id == supervisor.id || target.has(Role::Supervisor) {
        return Err(ApiError::Forbidden);
    }
    Ok(target)
}
