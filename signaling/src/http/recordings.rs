//! Recordings for supervisors: list, describe, play (with byte ranges, so a browser's
//! `<video>` can seek). The page that uses them is the `recordings` web app
//! (`signaling/web/recordings`, served at `/recordings`).
//!
//! Only the `supervisor` role of the recording's own centre gets anything; every request —
//! granted or denied — is written to the append-only access trail first, and a request whose
//! audit entry cannot be stored is refused (no unaudited access). A recording of another
//! centre is "not found". Sealed recordings are decrypted on the fly, one 64 KiB chunk at a
//! time; the plaintext never touches the disk.

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::auth::AuthClerk;
use super::error::ApiError;
use super::state::AppState;
use crate::domain::{Clerk, Role};
use crate::store::recordings::{
    AccessAction, RecordingAccess, RecordingQuery, RecordingRow, RecordingState, TrackSummary,
};

/// Most rows one list request returns.
const MAX_LIST: u32 = 500;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/recordings", get(list))
        .route("/api/v1/recordings/{id}", get(show))
        .route("/api/v1/recordings/{id}/media", get(media))
        .route("/api/v1/recordings/{id}/access", get(access_log))
}

/// What a supervisor sees of a recording (not where it is stored).
#[derive(Debug, Serialize)]
pub struct RecordingView {
    pub id: String,
    pub ticket_id: String,
    pub ticket_number: String,
    pub window_id: String,
    pub clerk_id: String,
    pub device_id: String,
    pub extension_point_id: Option<String>,
    pub state: RecordingState,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub duration_ms: Option<i64>,
    pub size_bytes: Option<i64>,
    pub sha256: Option<String>,
    pub container: Option<String>,
    pub tracks: Vec<TrackSummary>,
    pub encrypted: bool,
    pub torn_tail: bool,
    pub playable: bool,
}

impl From<&RecordingRow> for RecordingView {
    fn from(r: &RecordingRow) -> Self {
        Self {
            id: r.id.clone(),
            ticket_id: r.ticket_id.clone(),
            ticket_number: r.ticket_number.clone(),
            window_id: r.window_id.clone(),
            clerk_id: r.clerk_id.clone(),
            device_id: r.device_id.clone(),
            extension_point_id: r.extension_point_id.clone(),
            state: r.state,
            started_ms: r.started_ms,
            ended_ms: r.ended_ms,
            duration_ms: r.duration_ms,
            size_bytes: r.size_bytes,
            sha256: r.sha256.clone(),
            container: r.container.clone(),
            tracks: r.tracks.clone(),
            encrypted: r.encrypted,
            torn_tail: r.torn_tail,
            playable: r.state == RecordingState::Complete && r.file.is_some(),
        }
    }
}

async fn audit(
    state: &AppState,
    clerk: &Clerk,
    action: AccessAction,
    recording_id: Option<&str>,
    detail: String,
) -> Result<(), ApiError> {
    state
        .recordings
        .audit_recording_access(&RecordingAccess {
            at_ms: state.clock.now_ms(),
            actor: clerk.id.clone(),
            action,
            recording_id: recording_id.map(str::to_owned),
            centre_id: Some(clerk.centre_id.clone()),
            detail,
        })
        .await
        .map_err(|e| ApiError::Internal(format!("recording access audit: {e}")))
}

/// The caller must be a supervisor; a refusal is audited too.
async fn supervisor(
    state: &AppState,
    clerk: &Clerk,
    recording_id: Option<&str>,
    what: &str,
) -> Result<(), ApiError> {
    if clerk.has(Role::Supervisor) {
        return Ok(());
    }
    audit(
        state,
        clerk,
        AccessAction::Denied,
        recording_id,
        what.to_owned(),
    )
    .await?;
    Err(ApiError::Forbidden)
}

/// The recording, if it belongs to the supervisor's centre (else "not found", audited).
async fn own_recording(
    state: &AppState,
    clerk: &Clerk,
    id: &str,
) -> Result<RecordingRow, ApiError> {
    let row = state.recordings.recording(id).await?;
    match row {
        Some(r) if r.centre_id == clerk.centre_id && r.state != RecordingState::Purged => Ok(r),
        _ => {
            audit(
                state,
                clerk,
                AccessAction::Denied,
                Some(id),
                "not found".into(),
            )
            .await?;
            Err(ApiError::NotFound)
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ListParams {
    /// Unix ms, inclusive.
    pub from: Option<i64>,
    /// Unix ms, exclusive.
    pub to: Option<i64>,
    /// A ticket number, e.g. YA001.
    pub ticket: Option<String>,
    pub limit: Option<u32>,
}

async fn list(
    State(state): State<AppState>,
    AuthClerk(clerk): AuthClerk,
    Query(p): Query<ListParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    supervisor(&state, &clerk, None, "list").await?;
    let ticket = p.ticket.filter(|t| !t.is_empty() && t.len() <= 32);
    let detail = format!(
        "from={} to={} ticket={}",
        p.from.map_or_else(String::new, |v| v.to_string()),
        p.to.map_or_else(String::new, |v| v.to_string()),
        ticket.as_deref().unwrap_or("")
    );
    audit(&state, &clerk, AccessAction::List, None, detail).await?;
    let rows = state
        .recordings
        .recordings(&RecordingQuery {
            centre_id: clerk.centre_id.clone(),
            from_ms: p.from,
            to_ms: p.to,
            ticket_number: ticket,
            limit: p.limit.unwrap_or(100).clamp(1, MAX_LIST),
        })
        .await?;
    let views: Vec<RecordingView> = rows.iter().map(RecordingView::from).collect();
    Ok(Json(serde_json::json!({ "recordings": views })))
}

async fn show(
    State(state): State<AppState>,
    AuthClerk(clerk): AuthClerk,
    Path(id): Path<String>,
) -> Result<Json<RecordingView>, ApiError> {
    supervisor(&state, &clerk, Some(&id), "view").await?;
    let row = own_recording(&state, &clerk, &id).await?;
    audit(&state, &clerk, AccessAction::View, Some(&id), String::new()).await?;
    Ok(Json(RecordingView::from(&row)))
}

async fn access_log(
    State(state): State<AppState>,
    AuthClerk(clerk): AuthClerk,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    supervisor(&state, &clerk, Some(&id), "access log").await?;
    own_recording(&state, &clerk, &id).await?;
    audit(
        &state,
        &clerk,
        AccessAction::View,
        Some(&id),
        "access log".into(),
    )
    .await?;
    let entries = state.recordings.recording_audit(Some(&id), 500).await?;
    Ok(Json(serde_json::json!({ "access": entries })))
}

/// A `Range` header that cannot be satisfied (answered with 416).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsatisfiable;

/// A single byte range of a `len`-byte body: `Ok(None)` for the whole body, `Err` when it
/// cannot be satisfied. Several ranges are answered with the whole body (allowed by RFC 9110).
pub fn parse_range(header: Option<&str>, len: u64) -> Result<Option<(u64, u64)>, Unsatisfiable> {
    let Some(h) = header else { return Ok(None) };
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(Unsatisfiable)?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| Unsatisfiable)?;
        if n == 0 || len == 0 {
            return Err(Unsatisfiable);
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let start: u64 = a.parse().map_err(|_| Unsatisfiable)?;
        let end = if b.is_empty() {
            len.checked_sub(1).ok_or(Unsatisfiable)?
        } else {
            b.parse::<u64>()
                .map_err(|_| Unsatisfiable)?
                .min(len.saturating_sub(1))
        };
        if start >= len || end < start {
            return Err(Unsatisfiable);
        }
        (start, end)
    };
    Ok(Some(range))
}

async fn media(
    State(state): State<AppState>,
    AuthClerk(clerk): AuthClerk,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    supervisor(&state, &clerk, Some(&id), "play").await?;
    let row = own_recording(&state, &clerk, &id).await?;
    let range_header = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(100).collect::<String>());
    audit(
        &state,
        &clerk,
        AccessAction::Play,
        Some(&id),
        range_header.clone().unwrap_or_default(),
    )
    .await?;
    if row.state != RecordingState::Complete {
        return Err(ApiError::NotFound);
    }
    let archive = state.media.archive().cloned().ok_or(ApiError::Busy)?;
    let opened = {
        let (archive, row) = (archive.clone(), row.clone());
        tokio::task::spawn_blocking(move || archive.open_playback(&row))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
    };
    let mut playback = opened.map_err(|e| ApiError::Internal(format!("opening recording: {e}")))?;
    let len = playback.len();
    let range = match parse_range(range_header.as_deref(), len) {
        Ok(r) => r,
        Err(Unsatisfiable) => {
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
            )
                .into_response());
        }
    };
    let (start, end) = range.unwrap_or((0, len.saturating_sub(1)));
    let body_len = if len == 0 { 0 } else { end - start + 1 };
    // A blocking reader decrypts chunk by chunk into a small bounded channel: memory stays
    // constant whatever the file size, and a client that stops reading stops the reader.
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let result = playback.read_range(start, end + 1, |piece| {
            tx.blocking_send(Ok(Bytes::copy_from_slice(piece))).is_ok()
        });
        if let Err(e) = result {
            tracing::error!(error = %e, "reading a recording failed");
            let _ = tx.blocking_send(Err(std::io::Error::other("recording unreadable")));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mime = match row.container.as_deref() {
        Some("mkv") => "video/x-matroska",
        _ => "video/webm",
    };
    let mut response = Response::new(Body::from_stream(stream));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body_len));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("inline"),
    );
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
            response.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::{Unsatisfiable, parse_range};

    #[test]
    fn byte_ranges() {
        assert_eq!(parse_range(None, 100), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-"), 100), Ok(Some((0, 99))));
        assert_eq!(parse_range(Some("bytes=10-19"), 100), Ok(Some((10, 19))));
        assert_eq!(parse_range(Some("bytes=90-200"), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(Some("bytes=-10"), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Ok(None));
        assert_eq!(parse_range(Some("items=0-1"), 100), Ok(None));
        assert_eq!(parse_range(Some("bytes=100-"), 100), Err(Unsatisfiable));
        assert_eq!(parse_range(Some("bytes=5-2"), 100), Err(Unsatisfiable));
        assert_eq!(parse_range(Some("bytes=x-"), 100), Err(Unsatisfiable));
        assert_eq!(parse_range(Some("bytes=-0"), 100), Err(Unsatisfiable));
        assert_eq!(parse_range(Some("bytes=0-"), 0), Err(Unsatisfiable));
    }
}
