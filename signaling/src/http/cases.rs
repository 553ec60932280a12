//! Case materials over HTTP: uploads from kiosks, and the case, its items, the audited reveal
//! of a card and the PDF export for clerks. See [`crate::cases`].
//!
//! - `POST /api/v1/uploads?kind=document|snapshot|id_photo` — kiosk (`Bearer device_id:secret`),
//!   body up to `privacy.max_upload_bytes`, `x-content-sha256` checked; only while the kiosk's
//!   ticket is being served, attached to that ticket's case. 201 `{upload_id, sha256, bytes}`.
//! - `GET /api/v1/cases/{ticket}` — the case: identity method and item list.
//! - `GET /api/v1/cases/{ticket}/items/{item}` — an image (decrypted), or a card masked.
//! - `POST /api/v1/cases/{ticket}/items/{item}/reveal` — the card in full (audited).
//! - `GET /api/v1/cases/{ticket}/pdf` — the document pages as one PDF (audited).
//! - `POST /api/v1/cases/{ticket}/unverified` — the clerk finishes without verified identity
//!   (audited).
//! - `GET /api/v1/cases/{ticket}/audit` — the audit trail (supervisors).
//!
//! Clerk routes are for the clerk serving the ticket, or a supervisor of its centre.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use protocol::control::ErrorCode;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::warn;

use super::auth::{AuthClerk, authenticate_device};
use super::error::ApiError;
use super::state::AppState;
use crate::cases::{CaseError, CaseOrigin, CaseService, kind, pdf};
use crate::domain::{Clerk, DeviceKind, Role};
use crate::metrics::ClientKind;
use crate::store::cases::{AuditEntry, CaseRecord};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/uploads", post(upload))
        .route("/api/v1/cases/{ticket_id}", get(case))
        .route("/api/v1/cases/{ticket_id}/items/{item_id}", get(item))
        .route(
            "/api/v1/cases/{ticket_id}/items/{item_id}/reveal",
            post(reveal),
        )
        .route("/api/v1/cases/{ticket_id}/pdf", get(export_pdf))
        .route("/api/v1/cases/{ticket_id}/unverified", post(unverified))
        .route("/api/v1/cases/{ticket_id}/audit", get(audit))
}

/// Why these routes refuse; each becomes an [`ApiError`] with its own short text.
#[derive(Debug)]
pub enum CasesHttpError {
    Unauthenticated,
    Forbidden,
    NotFound,
    NoSession,
    TooLarge,
    Bad(&'static str),
    Unavailable,
}

impl From<CaseError> for CasesHttpError {
    fn from(e: CaseError) -> Self {
        match e {
            CaseError::NotFound => CasesHttpError::NotFound,
            CaseError::Forbidden => CasesHttpError::Forbidden,
            CaseError::BadUpload(m) => CasesHttpError::Bad(m),
            other => {
                warn!(error = %other, "case request failed");
                CasesHttpError::Unavailable
            }
        }
    }
}

/// Each refusal with its own message; the status follows in [`ApiError`]'s one mapping.
impl From<CasesHttpError> for ApiError {
    fn from(e: CasesHttpError) -> Self {
        let refused = |code, message: &str| ApiError::Refused(code, message.to_owned());
        match e {
            CasesHttpError::Unauthenticated => {
                refused(ErrorCode::Unauthenticated, "请先登录 / please authenticate")
            }
            CasesHttpError::Forbidden => refused(
                ErrorCode::Forbidden,
                "只能查看正在办理的号的材料 / only the clerk serving the ticket or a supervisor",
            ),
            CasesHttpError::NotFound => refused(ErrorCode::NotFound, "未找到 / not found"),
            CasesHttpError::NoSession => refused(
                ErrorCode::InvalidState,
                "该终端没有正在办理的号 / the kiosk is not being served",
            ),
            CasesHttpError::TooLarge => {
                ApiError::TooLarge("文件过大 / the upload is too large".into())
            }
            CasesHttpError::Bad(m) => ApiError::Refused(
                ErrorCode::BadMessage,
                format!("上传内容无效 / bad upload: {m}"),
            ),
            CasesHttpError::Unavailable => {
                ApiError::Unavailable("材料服务暂不可用 / case materials are unavailable".into())
            }
        }
    }
}

impl From<CaseError> for ApiError {
    fn from(e: CaseError) -> Self {
        CasesHttpError::from(e).into()
    }
}

type HttpResult<T> = Result<T, ApiError>;

#[derive(Deserialize)]
pub struct UploadQuery {
    kind: String,
}

#[derive(Serialize)]
pub struct UploadReceipt {
    upload_id: String,
    sha256: String,
    bytes: u64,
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn upload(
    State(state): State<AppState>,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> HttpResult<Response> {
    let result = upload_inner(&state, &query, &headers, body).await;
    if let Ok(service) = state.cases.service().await {
        let counter = if result.is_ok() {
            &service.counters.uploads
        } else {
            &service.counters.uploads_refused
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    result
}

async fn upload_inner(
    state: &AppState,
    query: &UploadQuery,
    headers: &HeaderMap,
    body: Body,
) -> HttpResult<Response> {
    let (id, secret) = upload_credential(header_str(headers, "authorization"))?;
    let Some(device) = authenticate_device(state, id, secret, DeviceKind::Kiosk)
        .await
        .map_err(|_| CasesHttpError::Unavailable)?
    else {
        state.metrics.auth_failure(ClientKind::Kiosk);
        return Err(CasesHttpError::Unauthenticated.into());
    };
    let item_kind = upload_kind(&query.kind)?;
    let claimed = claimed_sha256(header_str(headers, "x-content-sha256"))?;
    let limit = state.config.privacy.max_upload_bytes;
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| CasesHttpError::TooLarge)?;
    let checked = check_upload(item_kind, &claimed, &bytes)?;
    let session = state
        .switchboard
        .session_of_device(&device.id)
        .filter(|s| s.centre_id == device.centre_id)
        .ok_or(CasesHttpError::NoSession)?;
    let total = bytes.len() as u64;
    let upload_id = state
        .cases
        .store_bytes(
            &CaseOrigin::of(&session),
            item_kind,
            checked.mime,
            bytes.to_vec(),
            checked.size,
            ("device", &device.id),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(UploadReceipt {
            upload_id,
            sha256: claimed,
            bytes: total,
        }),
    )
        .into_response())
}

// The readers of an upload's request, each a pure function so they can be fuzzed on their own
// (`signaling/fuzz`, target `upload`). They run in this order; authentication comes between
// the first and the rest, so an unauthenticated caller learns nothing about the others.

/// `Authorization: Bearer <device_id>:<secret>`, split.
pub fn upload_credential(authorization: Option<&str>) -> Result<(&str, &str), CasesHttpError> {
    authorization
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|c| c.trim().split_once(':'))
        .ok_or(CasesHttpError::Unauthenticated)
}

/// The case item kind named by `?kind=`.
pub fn upload_kind(kind: &str) -> Result<&'static str, CasesHttpError> {
    match kind {
        "document" => Ok(kind::DOCUMENT),
        "snapshot" => Ok(kind::SNAPSHOT),
        "id_photo" => Ok(kind::ID_PHOTO),
        _ => Err(CasesHttpError::Bad("kind")),
    }
}

/// The body's SHA-256 the kiosk claims (`x-content-sha256`), lower-case hex.
pub fn claimed_sha256(header: Option<&str>) -> Result<String, CasesHttpError> {
    header
        .map(str::to_ascii_lowercase)
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or(CasesHttpError::Bad("x-content-sha256"))
}

/// An upload body that passed its checks: what it will be stored as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckedUpload {
    pub mime: &'static str,
    /// Width and height of a JPEG; `None` for the card photo (an opaque blob).
    pub size: Option<(u32, u32)>,
}

/// Checks the body against its claimed digest and its kind: a document or snapshot must be a
/// JPEG whose frame header a PDF can show; the card photo is at most 4 KiB.
pub fn check_upload(
    item_kind: &str,
    claimed_sha256: &str,
    bytes: &[u8],
) -> Result<CheckedUpload, CasesHttpError> {
    if hex::encode(Sha256::digest(bytes)) != claimed_sha256 {
        return Err(CasesHttpError::Bad("sha256 mismatch"));
    }
    if item_kind == kind::ID_PHOTO {
        if bytes.len() > 4096 {
            return Err(CasesHttpError::Bad("photo size"));
        }
        return Ok(CheckedUpload {
            mime: "application/octet-stream",
            size: None,
        });
    }
    let (w, h, _) = pdf::jpeg_info(bytes).ok_or(CasesHttpError::Bad("not a JPEG"))?;
    Ok(CheckedUpload {
        mime: "image/jpeg",
        size: Some((w, h)),
    })
}

/// Whether `clerk` is serving `ticket_id` right now.
async fn serving(state: &AppState, clerk: &Clerk, ticket_id: &str) -> bool {
    state
        .switchboard
        .session(ticket_id)
        .is_some_and(|s| s.clerk_id == clerk.id && s.centre_id == clerk.centre_id)
}

/// The case for a reader allowed to see it.
async fn readable(
    state: &AppState,
    clerk: &Clerk,
    ticket_id: &str,
) -> HttpResult<(std::sync::Arc<CaseService>, CaseRecord)> {
    let service = state.cases.service().await?;
    let case = service
        .store()
        .case(ticket_id)
        .await
        .map_err(CaseError::from)?
        .ok_or(CasesHttpError::NotFound)?;
    let is_serving = serving(state, clerk, ticket_id).await;
    service.may_read(clerk, &case, is_serving)?;
    Ok((service, case))
}

#[derive(Serialize)]
pub struct CaseItemView {
    id: String,
    kind: String,
    mime: String,
    bytes: i64,
    width: Option<i64>,
    height: Option<i64>,
    sha256: String,
    created_ms: i64,
}

#[derive(Serialize)]
pub struct CaseView {
    ticket_id: String,
    ticket_number: String,
    /// `id_card`, `code_scan` or `snapshot`; null when not verified yet.
    identity_method: Option<String>,
    identity_ms: Option<i64>,
    items: Vec<CaseItemView>,
}

async fn case(
    State(state): State<AppState>,
    AuthClerk(clerk): AuthClerk,
    Path(ticket_id): Path<String>,
) -> HttpResult<Json<CaseView>> {
    let service = state.cases.service().await?;
    let case = service
        .store()
        .case(&ticket_id)
        .await
        .map_err(CaseError::from)?;
    let Some(case) = case else {
        // Nothing stored yet: an empty case for the serving clerk.
        if serving(&state, &clerk, &ticket_id).await {
            return Ok(Json(CaseView {
                ticket_id,
                ticket_number: String::new(),
                identity_method: None,
                identity_ms: None,
                items: Vec::new(),
            }));
        }
        return Err(CasesHttpError::NotFound.into());
    };
    let is_serving = serving(&state, &clerk, &ticket_id).await;
    service.may_read(&clerk, &case, is_serving)?;
    let items = service
        .store()
        .items(&ticket_id)
        .await
        .map_err(CaseError::from)?
        .into_iter()
        .map(|m| CaseItemView {
            id: m.id,
            kind: m.kind,
            mime: m.mime,
            bytes: m.size_bytes,
            width: m.width,
            height: m.height,
            sha256: m.sha256,
            created_ms: m.created_ms,
        })
        .collect();
    Ok(Json(CaseView {
        ticket_id,
        ticket_number: case.ticket_number,
        identity_method: case.identity_method,
        identity_ms: case.identity_ms,
        items,
    }))
}

async fn item(
    State(state): State<AppState>,
    AuthClerk(clerk): AuthClerk,
    Path((ticket_id, item_id)): Path<(String, String)>,
) -> HttpResult<Response> {
    let (service, _) = readable(&state, &clerk, &ticket_id).await?;
    let meta = service
        .store()
        .items(&ticket_id)
        .await
        .map_err(CaseError::from)?
        .into_iter()
        .find(|m| m.id == item_id)
        .ok_or(CasesHttpError::NotFound)?;
    if meta.kind == kind::ID_CARD {
        let view = service.card(&ticket_id, &item_id, &clerk, false).await?;
        return Ok(Json(view).into_response());
    }
    let (meta, bytes) = service
        .open_item(&ticket_id, &item_id, &clerk, "viewed")
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, meta.mime),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        bytes,
    )
        .into_response())
}

async fn reveal(
    State(state): State<AppState>,
    AuthClerk(clerk): AuthClerk,
    Path((ticket_id, item_id)): Path<(String, String)>,
) -> HttpResult<Response> {
    let (service, _) = readable(&state, &clerk, &ticket_id).await?;
    let view = service.card(&ticket_id, &item_id, &clerk, true).await?;
    Ok(Json(view).into_response())
}

async fn export_pdf(
    State(state): State<AppState>,
    AuthClerk(clerk): AuthClerk,
    Path(ticket_id): Path<String>,
) -> HttpResult<Response> {
    let (service, case) = readable(&state, &clerk, &ticket_id).await?;
    let bytes = service.pdf(&ticket_id, &clerk).await?;
    let name: String = case
        .ticket_number
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"case-{name}.pdf\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        bytes,
    )
        .into_response())
}

async fn unverified(
    State(state): State<AppState>,
    AuthClerk(clerk): AuthClerk,
    Path(ticket_id): Path<String>,
) -> HttpResult<StatusCode> {
    let session = match state.switchboard.session(&ticket_id) {
        Some(s) if s.clerk_id == clerk.id && s.centre_id == clerk.centre_id => s,
        _ => return Err(CasesHttpError::Forbidden.into()),
    };
    let service = state.cases.service().await?;
    let now = state.clock.now_ms();
    let origin = CaseOrigin::of(&session);
    service
        .store()
        .ensure_case(&CaseRecord {
            ticket_id: origin.ticket_id.clone(),
            centre_id: origin.centre_id,
            device_id: origin.device_id,
            clerk_id: origin.clerk_id,
            ticket_number: origin.ticket_number,
            created_ms: now,
            identity_method: None,
            identity_ms: None,
        })
        .await
        .map_err(CaseError::from)?;
    service
        .store()
        .audit(&AuditEntry {
            at_ms: now,
            ticket_id,
            item_id: None,
            actor_kind: "clerk".into(),
            actor_id: clerk.id.clone(),
            action: "finished_unverified".into(),
        })
        .await
        .map_err(CaseError::from)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
pub struct AuditView {
    at_ms: i64,
    item_id: Option<String>,
    actor_kind: String,
    actor_id: String,
    action: String,
}

async fn audit(
    State(state): State<AppState>,
    AuthClerk(clerk): AuthClerk,
    Path(ticket_id): Path<String>,
) -> HttpResult<Json<Vec<AuditView>>> {
    if !clerk.has(Role::Supervisor) {
        return Err(CasesHttpError::Forbidden.into());
    }
    let (service, _) = readable(&state, &clerk, &ticket_id).await?;
    let log = service
        .store()
        .audit_log(&ticket_id)
        .await
        .map_err(CaseError::from)?;
    Ok(Json(
        log.into_iter()
            .map(|a| AuditView {
                at_ms: a.at_ms,
                item_id: a.item_id,
                actor_kind: a.actor_kind,
                actor_id: a.actor_id,
                action: a.action,
            })
            .collect(),
    ))
}
