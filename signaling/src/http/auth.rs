//! Login, logout, and finding out who is calling.
//!
//! Clerks log in with a username and password and get a login token, both as an HTTP-only,
//! SameSite=Strict cookie (for the console) and in the response body (for other clients, as a
//! bearer token). Devices present `device_id:secret` as a bearer token on HTTP, or in `hello`
//! on their WebSocket.

use axum::extract::{FromRequestParts, State};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use protocol::control::ClerkInfo;
use serde::{Deserialize, Serialize};
use tracing::info;

use super::error::ApiError;
use super::state::AppState;
use crate::auth::{decoy_hash, new_token, token_hash, verify_device_secret, verify_secret};
use crate::domain::{Clerk, Device, DeviceKind};
use crate::metrics::ClientKind;

pub const SESSION_COOKIE: &str = "rvw_session";

/// Marks which listener a request came in on; cookies are `Secure` on the TLS one.
#[derive(Debug, Clone, Copy)]
pub struct Listener {
    pub tls: bool,
}

#[derive(Deserialize)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Serialize)]
pub struct LoginResponse {
    pub token: String,
    pub expires_ms: i64,
    pub clerk: ClerkInfo,
}

pub fn clerk_info(c: &Clerk) -> ClerkInfo {
    ClerkInfo {
        id: c.id.clone(),
        username: c.username.clone(),
        display_name: c.display_name.clone(),
        roles: c.roles.iter().map(|r| r.as_str().to_owned()).collect(),
    }
}

pub async fn login(
    State(state): State<AppState>,
    listener: Option<Extension<Listener>>,
    Json(req): Json<LoginRequest>,
) -> Result<Response, ApiError> {
    let now = state.clock.now_ms();
    let username = req.username.trim().to_owned();
    let limit = state.config.auth.max_login_failures_per_minute;
    let failures = state
        .login_failures
        .lock()
        .map(|mut w| w.count(&username, now))
        .unwrap_or(0);
    if failures >= limit {
        state.metrics.auth_failure(ClientKind::Clerk);
        return Err(ApiError::TooManyAttempts);
    }
    let clerk = state.store.clerk_by_username(&username).await?;
    let hash = clerk
        .as_ref()
        .filter(|c| c.active)
        .map_or_else(|| decoy_hash().to_owned(), |c| c.password_hash.clone());
    let password = req.password;
    let ok = tokio::task::spawn_blocking(move || verify_secret(&password, &hash))
        .await
        .unwrap_or(false);
    let clerk = match clerk {
        Some(c) if ok && c.active => c,
        _ => {
            if let Ok(mut w) = state.login_failures.lock() {
                w.add(&username, now);
            }
            state.metrics.auth_failure(ClientKind::Clerk);
            return Err(ApiError::BadLogin);
        }
    };
    let token = new_token();
    let ttl_ms = i64::try_from(state.config.auth.session_ttl_hours * 3_600_000).unwrap_or(i64::MAX);
    let expires_ms = now.saturating_add(ttl_ms);
    state
        .store
        .create_login(&token_hash(&token), &clerk.id, now, expires_ms)
        .await?;
    info!(clerk = %clerk.id, "clerk logged in");
    let secure = listener.is_some_and(|Extension(l)| l.tls);
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        ttl_ms / 1000,
        if secure { "; Secure" } else { "" }
    );
    let body = LoginResponse {
        token,
        expires_ms,
        clerk: clerk_info(&clerk),
    };
    Ok(([(SET_COOKIE, cookie)], Json(body)).into_response())
}

pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(token) = login_token(&headers) {
        state.store.delete_login(&token_hash(&token)).await?;
    }
    let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok((
        [(SET_COOKIE, cookie)],
        Json(serde_json::json!({"ok": true})),
    )
        .into_response())
}

pub async fn me(clerk: AuthClerk) -> Json<ClerkInfo> {
    Json(clerk_info(&clerk.0))
}

/// The session token from the cookie or an `Authorization: Bearer` header.
pub fn login_token(headers: &HeaderMap) -> Option<String> {
    if let Some(bearer) = bearer(headers) {
        return Some(bearer);
    }
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|v| v.trim().to_owned())
}

/// A logged-in clerk (any role).
pub struct AuthClerk(pub Clerk);

impl FromRequestParts<AppState> for AuthClerk {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = login_token(&parts.headers).ok_or(ApiError::Unauthenticated)?;
        let now = state.clock.now_ms();
        match state.store.login_clerk(&token_hash(&token), now).await? {
            Some(clerk) => Ok(AuthClerk(clerk)),
            None => {
                state.metrics.auth_failure(ClientKind::Clerk);
                Err(ApiError::Unauthenticated)
            }
        }
    }
}

/// Checks a device's `id` and `secret`; `None` for any mismatch (unknown, disabled, wrong
/// kind or wrong secret), so a caller cannot tell which.
pub async fn authenticate_device(
    state: &AppState,
    device_id: &str,
    secret: &str,
    kind: DeviceKind,
) -> Result<Option<Device>, ApiError> {
    let device = state.store.device(device_id).await?;
    Ok(device
        .filter(|d| verify_device_secret(secret, &d.secret_hash) && d.active && d.kind == kind))
}

/// The device of `kind` behind `Authorization: Bearer <device_id>:<secret>`; a credential
/// that does not match counts as an authentication failure of `client`.
async fn bearer_device(
    parts: &Parts,
    state: &AppState,
    kind: DeviceKind,
    client: ClientKind,
) -> Result<Device, ApiError> {
    let credential = bearer(&parts.headers).ok_or(ApiError::Unauthenticated)?;
    let (id, secret) = credential
        .split_once(':')
        .ok_or(ApiError::Unauthenticated)?;
    match authenticate_device(state, id, secret, kind).await? {
        Some(d) => Ok(d),
        None => {
            state.metrics.auth_failure(client);
            Err(ApiError::Unauthenticated)
        }
    }
}

/// A ticket machine authenticated by `Authorization: Bearer <device_id>:<secret>`.
pub struct AuthTicketMachine(pub Device);

impl FromRequestParts<AppState> for AuthTicketMachine {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        bearer_device(
            parts,
            state,
            DeviceKind::TicketMachine,
            ClientKind::TicketMachine,
        )
        .await
        .map(AuthTicketMachine)
    }
}

/// A kiosk authenticated by `Authorization: Bearer <device_id>:<secret>` (its HTTP uploads).
pub struct AuthKiosk(pub Device);

impl FromRequestParts<AppState> for AuthKiosk {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        bearer_device(parts, state, DeviceKind::Kiosk, ClientKind::Kiosk)
            .await
            .map(AuthKiosk)
    }
}
