//! Login, logout, and finding out who is calling.
//!
//! Clerks log in with a username and password — then, with a second factor, a code (see
//! `http::two_factor`) — and get a login token, both as an HTTP-only,
//! SameSite=Strict cookie (for the console) and in the response body (for other clients, as a
//! bearer token). Devices present `device_id:secret` as a bearer token on HTTP, or in `hello`
//! on their WebSocket.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use protocol::control::ClerkInfo;
use serde::{Deserialize, Serialize};
use tracing::{debug, error, info, warn};

use super::error::ApiError;
use super::state::AppState;
use crate::audit::kind;
use crate::auth::{decoy_hash, hash_secret, token_hash, verify_device_secret, verify_secret};
use crate::domain::{Clerk, Device, DeviceKind};
use crate::login_guard::{ChecksBusy, LoginAttempt, Refusal};
use crate::metrics::ClientKind;
use crate::password_policy;

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
    /// The password was set by someone else: this login may only change it
    /// (`POST /api/v1/password`).
    pub must_change_password: bool,
    /// The staff member's role requires a second factor and none is active: this login may
    /// only enroll one (`POST /api/v1/two-factor/enroll`, then `…/confirm`).
    pub must_enroll_second_factor: bool,
    /// Given once, when a second factor has just been enrolled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes: Option<Vec<String>>,
}

pub fn clerk_info(c: &Clerk) -> ClerkInfo {
    ClerkInfo {
        id: c.id.clone(),
        username: c.username.clone(),
        display_name: c.display_name.clone(),
        roles: c.roles.iter().map(|r| r.as_str().to_owned()).collect(),
    }
}

/// The address a request came from, as the relay's listener saw it (no proxy headers are
/// trusted). Unknown (unspecified) for requests that did not come through a listener.
#[derive(Debug, Clone, Copy)]
pub struct SourceAddress(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for SourceAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(SourceAddress(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |c| c.0.ip()),
        ))
    }
}

/// The throttle's key for a username: case folded and bounded, so neither case variants nor
/// a megabyte of name make a new or large entry.
pub(super) fn throttle_key(username: &str) -> String {
    username
        .chars()
        .take(64)
        .flat_map(char::to_lowercase)
        .collect()
}

pub(super) fn refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::Locked(wait) => ApiError::LockedOut {
            minutes: wait.as_secs().div_ceil(60).max(1),
        },
        Refusal::InFlight => ApiError::TooManyAttempts,
        Refusal::Busy => ApiError::Busy,
    }
}

/// Checks a staff password. The attempt is reserved with the throttle *before* the slow
/// check, so guesses sent together cannot pass the limit; the check runs with one of a few
/// permits of its own; an unknown or disabled username is checked against a decoy hash so
/// it costs (and takes) the same as a known one.
pub async fn login(
    State(state): State<AppState>,
    listener: Option<Extension<Listener>>,
    SourceAddress(source): SourceAddress,
    Json(req): Json<LoginRequest>,
) -> Result<Response, ApiError> {
    let username = req.username.trim().to_owned();
    let attempt = match LoginAttempt::reserve(
        &state.login_throttle,
        &throttle_key(&username),
        source,
    ) {
        Ok(a) => a,
        Err(refusal) => {
            state.metrics.auth_failure(ClientKind::Clerk);
            // Not audited one by one: refusals cost nothing and would let a flood fill the
            // trail. The failures that led to a lockout are audited.
            debug!(username = ?username, %source, ?refusal, "login refused before the password check");
            return Err(refused(refusal));
        }
    };
    let clerk = match state.store.clerk_by_username(&username).await {
        Ok(c) => c,
        Err(e) => {
            attempt.released();
            return Err(e.into());
        }
    };
    let hash = clerk
        .as_ref()
        .filter(|c| c.active)
        .map_or_else(|| decoy_hash().to_owned(), |c| c.password_hash.clone());
    let password = req.password;
    let ok = match state
        .password_checks
        .run(move || verify_secret(&password, &hash))
        .await
    {
        Ok(ok) => ok,
        Err(ChecksBusy) => {
            attempt.released();
            warn!(username = ?username, %source, "login refused: password checks busy");
            return Err(ApiError::Busy);
        }
    };
    let clerk = match clerk {
        Some(c) if ok && c.active => c,
        _ => {
            let outcome = attempt.failed();
            state.metrics.auth_failure(ClientKind::Clerk);
            warn!(
                username = ?username,
                %source,
                username_locked = outcome.username_locked,
                address_locked = outcome.address_locked,
                "login failed"
            );
            let detail = match (outcome.username_locked, outcome.address_locked) {
                (true, true) => "wrong password; username and address locked out",
                (true, false) => "wrong password; username locked out",
                (false, true) => "wrong password; address locked out",
                (false, false) => "wrong password or unknown user",
            };
            audit(
                &state,
                kind::LOGIN_FAILED,
                &username,
                Some(source),
                &format!("clerk:{username}"),
                detail,
            )
            .await;
            return Err(ApiError::BadLogin);
        }
    };
    let secure = listener.is_some_and(|Extension(l)| l.tls);
    super::two_factor::after_password(&state, clerk, attempt, source, secure).await
}

#[derive(Deserialize)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

/// A staff member changes their own password (required after a password someone else set).
/// The current password is checked like a login (throttled, bounded); the new one must pass
/// [`crate::password_policy`]. Every login of the clerk ends, this one included: the console
/// asks for a login with the new password.
pub async fn change_password(
    State(state): State<AppState>,
    SourceAddress(source): SourceAddress,
    headers: HeaderMap,
    Json(req): Json<PasswordChange>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let token = login_token(&headers).ok_or(ApiError::Unauthenticated)?;
    let clerk = state
        .store
        .password_change_login(
            &token_hash(&token),
            state.clock.now_ms(),
            idle_ms(&state.config.auth),
        )
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    password_policy::check(&req.new_password, &clerk.username)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if req.new_password == req.current_password {
        return Err(ApiError::BadRequest(
            "新密码不能与当前密码相同 / the new password must differ from the current one".into(),
        ));
    }
    let attempt = LoginAttempt::reserve(
        &state.login_throttle,
        &throttle_key(&clerk.username),
        source,
    )
    .map_err(refused)?;
    let (current, stored) = (req.current_password, clerk.password_hash.clone());
    let Ok(ok) = state
        .password_checks
        .run(move || verify_secret(&current, &stored))
        .await
    else {
        attempt.released();
        return Err(ApiError::Busy);
    };
    if !ok {
        attempt.failed();
        state.metrics.auth_failure(ClientKind::Clerk);
        audit(
            &state,
            kind::LOGIN_FAILED,
            &format!("clerk:{}", clerk.id),
            Some(source),
            &format!("clerk:{}", clerk.username),
            "wrong current password when changing it",
        )
        .await;
        return Err(ApiError::BadLogin);
    }
    attempt.succeeded();
    let new = req.new_password;
    let hashed = state
        .password_checks
        .run_value(move || hash_secret(&new).ok())
        .await
        .map_err(|_| ApiError::Busy)?
        .flatten()
        .ok_or_else(|| ApiError::Internal("password hashing failed".into()))?;
    state.store.set_own_password(&clerk.id, &hashed).await?;
    info!(clerk = %clerk.id, %source, "password changed; every login of the clerk ended");
    audit(
        &state,
        kind::PASSWORD_CHANGED,
        &format!("clerk:{}", clerk.id),
        Some(source),
        &format!("clerk:{}", clerk.username),
        "every session ended",
    )
    .await;
    Ok(Json(serde_json::json!({"ok": true, "relogin": true})))
}

/// Writes one row of the audit trail; a failure to write is logged as an error (the action
/// itself has already happened and is not undone).
pub async fn audit(
    state: &AppState,
    kind: &str,
    actor: &str,
    source: Option<IpAddr>,
    subject: &str,
    detail: &str,
) {
    if let Err(e) = state
        .audit
        .record(kind, actor, source, subject, detail)
        .await
    {
        error!(error = %e, kind, "could not write the audit trail");
    }
}

pub async fn logout(
    State(state): State<AppState>,
    SourceAddress(source): SourceAddress,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(token) = login_token(&headers) {
        let hash = token_hash(&token);
        let who = state
            .store
            .login_clerk(&hash, state.clock.now_ms(), idle_ms(&state.config.auth))
            .await?;
        state.store.delete_login(&hash).await?;
        if let Some(clerk) = who {
            audit(
                &state,
                kind::LOGOUT,
                &format!("clerk:{}", clerk.id),
                Some(source),
                &format!("clerk:{}", clerk.username),
                "",
            )
            .await;
        }
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

/// How long a login may go unused, in milliseconds.
pub fn idle_ms(auth: &crate::config::AuthConfig) -> i64 {
    i64::try_from(auth.session_idle_minutes.saturating_mul(60_000)).unwrap_or(i64::MAX)
}

/// A logged-in clerk (any role).
pub struct AuthClerk(pub Clerk);

impl FromRequestParts<AppState> for AuthClerk {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = login_token(&parts.headers).ok_or(ApiError::Unauthenticated)?;
        let now = state.clock.now_ms();
        let idle_ms = idle_ms(&state.config.auth);
        match state
            .store
            .login_clerk(&token_hash(&token), now, idle_ms)
            .await?
        {
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
