//! Staff profiles over HTTP: the clerk, or a supervisor of their centre, sets the post (岗位),
//! staff number (工号) and photo that residents see on the kiosk while that clerk serves them
//! (综合窗口工作人员信息应公开: 岗位、照片、工号).
//!
//! - `GET  /api/v1/staff/{clerk_id}/profile` → `{clerk_id, name, post, staff_number, has_photo}`
//! - `PUT  /api/v1/staff/{clerk_id}/card` with `{post, staff_number}`
//! - `PUT  /api/v1/staff/{clerk_id}/photo` with the image as the body (JPEG or PNG, recognised by
//!   its bytes, at most [`MAX_PHOTO_BYTES`])
//! - `GET  /api/v1/staff/{clerk_id}/photo` → the image
//!
//! Refusals are counted as protocol errors of clerk clients.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use protocol::control::ErrorCode;
use serde::{Deserialize, Serialize};

use super::auth::AuthClerk;
use super::error::ApiError;
use super::state::AppState;
use crate::domain::{Clerk, Role};
use crate::metrics::ClientKind;
use crate::store::staff_profile::{MAX_PHOTO_BYTES, PhotoType};

const MAX_POST_CHARS: usize = 30;
const MAX_NUMBER_CHARS: usize = 20;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/staff/{clerk_id}/profile", get(profile))
        .route("/api/v1/staff/{clerk_id}/card", put(set_card))
        .route("/api/v1/staff/{clerk_id}/photo", put(set_photo).get(photo))
}

/// The clerk whose profile `caller` may change: themself, or anyone of their centre for a
/// supervisor. Another centre's staff are simply not found.
async fn target(state: &AppState, caller: &Clerk, clerk_id: &str) -> Result<Clerk, ApiError> {
    let clerk = state
        .store
        .clerk(clerk_id)
        .await?
        .filter(|c| c.centre_id == caller.centre_id)
        .ok_or(ApiError::NotFound)?;
    if clerk.id == caller.id || caller.has(Role::Supervisor) {
        Ok(clerk)
    } else {
        Err(ApiError::Forbidden)
    }
}

fn refuse(state: &AppState, message: String) -> ApiError {
    state
        .metrics
        .protocol_error(ClientKind::Clerk, ErrorCode::BadMessage);
    ApiError::BadRequest(message)
}

#[derive(Serialize)]
struct ProfileView {
    clerk_id: String,
    name: String,
    post: String,
    staff_number: String,
    has_photo: bool,
}

async fn profile(
    State(state): State<AppState>,
    AuthClerk(caller): AuthClerk,
    Path(clerk_id): Path<String>,
) -> Result<Json<ProfileView>, ApiError> {
    let clerk = target(&state, &caller, &clerk_id).await?;
    let p = state
        .staff
        .staff_profile(&clerk.id)
        .await?
        .unwrap_or_default();
    Ok(Json(ProfileView {
        clerk_id: clerk.id,
        name: clerk.display_name,
        post: p.post,
        staff_number: p.staff_number,
        has_photo: p.photo.is_some(),
    }))
}

#[derive(Deserialize)]
struct CardRequest {
    post: String,
    staff_number: String,
}

async fn set_card(
    State(state): State<AppState>,
    AuthClerk(caller): AuthClerk,
    Path(clerk_id): Path<String>,
    Json(req): Json<CardRequest>,
) -> Result<Json<ProfileView>, ApiError> {
    let clerk = target(&state, &caller, &clerk_id).await?;
    let post = req.post.trim();
    let number = req.staff_number.trim();
    if post.is_empty()
        || post.chars().count() > MAX_POST_CHARS
        || post.chars().any(char::is_control)
    {
        return Err(refuse(
            &state,
            format!(
                "岗位应为 1 到 {MAX_POST_CHARS} 个字 / the post must be 1 to {MAX_POST_CHARS} characters"
            ),
        ));
    }
    if number.is_empty()
        || number.chars().count() > MAX_NUMBER_CHARS
        || !number
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(refuse(
            &state,
            format!(
                "工号应为 1 到 {MAX_NUMBER_CHARS} 位字母、数字或连字符 / the staff number must be 1 to {MAX_NUMBER_CHARS} letters, digits or hyphens"
            ),
        ));
    }
    state
        .staff
        .set_staff_card(&clerk.id, post, number, &caller.id, state.clock.now_ms())
        .await?;
    profile(State(state), AuthClerk(caller), Path(clerk_id)).await
}

async fn set_photo(
    State(state): State<AppState>,
    AuthClerk(caller): AuthClerk,
    Path(clerk_id): Path<String>,
    body: Bytes,
) -> Result<Json<ProfileView>, ApiError> {
    let clerk = target(&state, &caller, &clerk_id).await?;
    if body.len() > MAX_PHOTO_BYTES {
        state
            .metrics
            .protocol_error(ClientKind::Clerk, ErrorCode::BadMessage);
        return Err(ApiError::TooLarge(format!(
            "照片不能超过 {} KB，请缩小后再上传 / the photo must be at most {} KB",
            MAX_PHOTO_BYTES / 1024,
            MAX_PHOTO_BYTES / 1024
        )));
    }
    let Some(kind) = PhotoType::sniff(&body) else {
        return Err(refuse(
            &state,
            "照片须为 JPEG 或 PNG 图片 / the photo must be a JPEG or PNG image".into(),
        ));
    };
    state
        .staff
        .set_staff_photo(&clerk.id, kind, &body, &caller.id, state.clock.now_ms())
        .await?;
    profile(State(state), AuthClerk(caller), Path(clerk_id)).await
}

async fn photo(
    State(state): State<AppState>,
    AuthClerk(caller): AuthClerk,
    Path(clerk_id): Path<String>,
) -> Result<Response, ApiError> {
    let clerk = target(&state, &caller, &clerk_id).await?;
    let (kind, bytes) = state
        .staff
        .staff_profile(&clerk.id)
        .await?
        .and_then(|p| p.photo)
        .ok_or(ApiError::NotFound)?;
    Ok(([(header::CONTENT_TYPE, kind.mime())], bytes).into_response())
}
