//! The second step of a staff login (a TOTP code from an authenticator app, or a one-time
//! recovery code), enrollment, and a supervisor's resets.
//!
//! After a right password, a staff member with an active second factor gets a *pending token*
//! (not a session: it is valid for [`PENDING_LIFETIME_MS`], for [`MAX_CODE_TRIES`] wrong codes,
//! and only at `POST /api/v1/login/code`); the right code turns it into a session. Each code is
//! reserved and counted with the same throttle as passwords, so wrong codes lock the account
//! and the address out as wrong passwords do; the password step does not clear the account's
//! failures when a code follows, so knowing the password buys no extra code guesses.
//!
//! A staff member whose role requires a second factor and who has none gets a login that may
//! only enroll (and change a password someone else set): `POST /api/v1/two-factor/enroll`
//! makes a secret (sealed under the privacy master key) and answers its QR code, and
//! `POST /api/v1/two-factor/confirm` with a valid code activates it, answers ten recovery
//! codes once (the store keeps their digests) and replaces the login with a full one.

use std::net::IpAddr;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::header::SET_COOKIE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::auth::{
    Listener, LoginResponse, SourceAddress, audit, clerk_info, idle_ms, login_token, refused,
    throttle_key,
};
use super::error::ApiError;
use super::evaluations::AuthSupervisor;
use super::staff::managed_account;
use super::state::AppState;
use crate::audit::kind;
use crate::auth::{hash_secret, new_token, token_hash};
use crate::cases::crypto::Sealed;
use crate::config::ClerkTwoFactor;
use crate::domain::{Clerk, Role};
use crate::login_guard::LoginAttempt;
use crate::metrics::ClientKind;
use crate::password_policy;
use crate::store::NewLogin;
use crate::store::two_factor::{SealedSecret, SecondFactorStage, StagedLogin};
use crate::totp;

/// How long the code may be entered after the password (5 minutes).
pub const PENDING_LIFETIME_MS: i64 = 5 * 60 * 1000;
/// Wrong codes against one pending token before it is dropped (a new password is needed).
pub const MAX_CODE_TRIES: i64 = 5;
/// How long an enroll-only login lasts.
pub const ENROLL_LIFETIME_MS: i64 = 15 * 60 * 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/login/code", post(login_code))
        .route("/api/v1/two-factor", get(status))
        .route("/api/v1/two-factor/enroll", post(enroll))
        .route("/api/v1/two-factor/confirm", post(confirm))
        .route(
            "/api/v1/staff/{username}/two-factor/reset",
            post(reset_two_factor),
        )
        .route("/api/v1/staff/{username}/password", post(set_password))
}

/// Whether `clerk` must use a second factor: always for supervisors, registry operators and
/// technicians; for plain clerks as configured.
pub fn required_for(clerk: &Clerk, policy: ClerkTwoFactor) -> bool {
    clerk.has(Role::Supervisor)
        || clerk.has(Role::RegistryOperator)
        || clerk.has(Role::Technician)
        || policy == ClerkTwoFactor::Required
}

/// The object id a clerk's TOTP secret is sealed under (bound in as associated data, so a
/// sealed secret copied to another clerk's row does not open).
pub(crate) fn secret_object(clerk_id: &str) -> String {
    format!("staff-totp:{clerk_id}")
}

fn ttl_ms(state: &AppState) -> i64 {
    i64::try_from(state.config.auth.session_ttl_hours * 3_600_000).unwrap_or(i64::MAX)
}

fn cookie(token: &str, max_age_ms: i64, secure: bool) -> String {
    format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        super::auth::SESSION_COOKIE,
        max_age_ms / 1000,
        if secure { "; Secure" } else { "" }
    )
}

/// What a right password leads to: a pending token when a code must follow, otherwise a login
/// (enroll-only when the role requires a second factor and none is active).
pub async fn after_password(
    state: &AppState,
    clerk: Clerk,
    attempt: LoginAttempt,
    source: IpAddr,
    secure: bool,
) -> Result<Response, ApiError> {
    let enrolled = match state.store.two_factor(&clerk.id).await {
        Ok(r) => r.is_some_and(|r| r.enabled),
        Err(e) => {
            attempt.released();
            return Err(e.into());
        }
    };
    let now = state.clock.now_ms();
    let must_change_password = state.store.must_change_password(&clerk.id).await?;
    let source_text = source.to_string();
    if enrolled {
        // Neither a success (that would forget the account's failures, and with them the
        // wrong codes) nor a failure.
        attempt.released();
        let token = new_token();
        let expires_ms = now.saturating_add(PENDING_LIFETIME_MS);
        state
            .store
            .create_staged_login(
                &NewLogin {
                    token_hash: &token_hash(&token),
                    clerk_id: &clerk.id,
                    now_ms: now,
                    expires_ms,
                    source_address: &source_text,
                    password_change_only: must_change_password,
                },
                SecondFactorStage::AwaitingCode,
            )
            .await?;
        info!(clerk = %clerk.id, %source, "password right; second-factor code awaited");
        return Ok(Json(serde_json::json!({
            "second_factor_required": true,
            "pending_token": token,
            "expires_ms": expires_ms,
        }))
        .into_response());
    }
    attempt.succeeded();
    let must_enroll = required_for(&clerk, state.config.auth.clerk_two_factor);
    let (stage, lifetime) = if must_enroll {
        (SecondFactorStage::MustEnroll, ENROLL_LIFETIME_MS)
    } else {
        (SecondFactorStage::Done, ttl_ms(state))
    };
    let response = open_login(
        state,
        &clerk,
        stage,
        lifetime,
        must_change_password,
        source,
        secure,
        if must_enroll {
            "password; second factor to be enrolled"
        } else {
            "password; no second factor required"
        },
        None,
    )
    .await?;
    Ok(response)
}

/// Saves a login and answers it like `POST /api/v1/login` (token in a cookie and the body).
#[allow(clippy::too_many_arguments)]
async fn open_login(
    state: &AppState,
    clerk: &Clerk,
    stage: SecondFactorStage,
    lifetime_ms: i64,
    must_change_password: bool,
    source: IpAddr,
    secure: bool,
    how: &str,
    recovery_codes: Option<Vec<String>>,
) -> Result<Response, ApiError> {
    let now = state.clock.now_ms();
    let token = new_token();
    let expires_ms = now.saturating_add(lifetime_ms);
    let source_text = source.to_string();
    state
        .store
        .create_staged_login(
            &NewLogin {
                token_hash: &token_hash(&token),
                clerk_id: &clerk.id,
                now_ms: now,
                expires_ms,
                source_address: &source_text,
                password_change_only: must_change_password,
            },
            stage,
        )
        .await?;
    info!(clerk = %clerk.id, username = ?clerk.username, %source, how, "clerk logged in");
    audit(
        state,
        kind::LOGIN_OK,
        &format!("clerk:{}", clerk.id),
        Some(source),
        &format!("clerk:{}", clerk.username),
        how,
    )
    .await;
    let body = LoginResponse {
        token: token.clone(),
        expires_ms,
        clerk: clerk_info(clerk),
        must_change_password,
        must_enroll_second_factor: stage == SecondFactorStage::MustEnroll,
        recovery_codes,
    };
    Ok((
        [(SET_COOKIE, cookie(&token, lifetime_ms, secure))],
        Json(body),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct CodeRequest {
    pub pending_token: String,
    /// Six digits from the authenticator, or a recovery code.
    pub code: String,
}

/// Which code a staff member proved.
enum Proof {
    Totp,
    Recovery { left: i64 },
}

/// Checks `code` against the clerk's active (or, for `enrolling`, pending) secret, and uses it
/// up: a TOTP step is recorded, a recovery code spent. `None` for anything wrong.
async fn check_code(
    state: &AppState,
    clerk: &Clerk,
    code: &str,
    allow_recovery: bool,
) -> Result<Option<(Proof, i64)>, ApiError> {
    let Some(record) = state.store.two_factor(&clerk.id).await? else {
        return Ok(None);
    };
    let now = state.clock.now_ms();
    if totp::looks_like_code(code) {
        let secret = open_secret(state, &clerk.id, &record.secret).await?;
        let Some(step) = totp::verify(&secret, code, now, record.last_step) else {
            return Ok(None);
        };
        if record.enabled && !state.store.use_totp_step(&clerk.id, step).await? {
            return Ok(None);
        }
        return Ok(Some((Proof::Totp, step)));
    }
    if allow_recovery
        && record.enabled
        && state
            .store
            .use_recovery_code(&clerk.id, &totp::recovery_code_hash(code), now)
            .await?
    {
        let left = state.store.recovery_codes_left(&clerk.id).await?;
        return Ok(Some((Proof::Recovery { left }, record.last_step)));
    }
    Ok(None)
}

async fn open_secret(
    state: &AppState,
    clerk_id: &str,
    s: &SealedSecret,
) -> Result<Vec<u8>, ApiError> {
    let sealed = Sealed {
        key_id: s.key_id.clone(),
        wrapped_key: s.wrapped_key.clone(),
        ciphertext: s.sealed.clone(),
    };
    state
        .cases
        .open_secret(&secret_object(clerk_id), &sealed)
        .await
        .map_err(|e| ApiError::Unavailable(format!("second-factor secret: {e}")))
}

/// A wrong code: counted by the throttle and against the pending token, logged and audited.
async fn wrong_code(
    state: &AppState,
    attempt: LoginAttempt,
    clerk: &Clerk,
    source: IpAddr,
    pending: Option<&str>,
    what: &str,
) -> ApiError {
    let outcome = attempt.failed();
    state.metrics.auth_failure(ClientKind::Clerk);
    let mut dropped = false;
    if let Some(hash) = pending {
        match state.store.count_code_try(hash).await {
            Ok(n) if n < MAX_CODE_TRIES => {}
            _ => {
                dropped = true;
                if let Err(e) = state.store.delete_login(hash).await {
                    warn!(error = %e, "could not drop a pending login");
                }
            }
        }
    }
    warn!(
        clerk = %clerk.id,
        %source,
        username_locked = outcome.username_locked,
        address_locked = outcome.address_locked,
        pending_dropped = dropped,
        "wrong second-factor code"
    );
    let detail = format!(
        "{what}{}{}{}",
        if outcome.username_locked {
            "; username locked out"
        } else {
            ""
        },
        if outcome.address_locked {
            "; address locked out"
        } else {
            ""
        },
        if dropped {
            "; too many codes, password needed again"
        } else {
            ""
        },
    );
    audit(
        state,
        kind::TWO_FACTOR_FAILED,
        &format!("clerk:{}", clerk.id),
        Some(source),
        &format!("clerk:{}", clerk.username),
        &detail,
    )
    .await;
    if dropped {
        ApiError::Unauthenticated
    } else {
        ApiError::BadCode
    }
}

/// The second step of a login: the pending token and a code give a session.
async fn login_code(
    State(state): State<AppState>,
    listener: Option<Extension<Listener>>,
    SourceAddress(source): SourceAddress,
    Json(req): Json<CodeRequest>,
) -> Result<Response, ApiError> {
    let pending = token_hash(req.pending_token.trim());
    let staged = state
        .store
        .staged_login(&pending, state.clock.now_ms(), PENDING_LIFETIME_MS)
        .await?
        .filter(|s| s.stage == SecondFactorStage::AwaitingCode)
        .ok_or(ApiError::Unauthenticated)?;
    let clerk = staged.clerk;
    let attempt = LoginAttempt::reserve(
        &state.login_throttle,
        &throttle_key(&clerk.username),
        source,
    )
    .map_err(|r| {
        state.metrics.auth_failure(ClientKind::Clerk);
        refused(r)
    })?;
    let checked = match check_code(&state, &clerk, req.code.trim(), true).await {
        Ok(c) => c,
        Err(e) => {
            attempt.released();
            return Err(e);
        }
    };
    let Some((proof, _)) = checked else {
        return Err(wrong_code(
            &state,
            attempt,
            &clerk,
            source,
            Some(&pending),
            "wrong, expired or reused code",
        )
        .await);
    };
    attempt.succeeded();
    state.store.delete_login(&pending).await?;
    let how = match proof {
        Proof::Totp => {
            audit(
                &state,
                kind::TWO_FACTOR_OK,
                &format!("clerk:{}", clerk.id),
                Some(source),
                &format!("clerk:{}", clerk.username),
                "authenticator code",
            )
            .await;
            "password and authenticator code"
        }
        Proof::Recovery { left } => {
            warn!(clerk = %clerk.id, %source, left, "recovery code used");
            audit(
                &state,
                kind::TWO_FACTOR_RECOVERY_USED,
                &format!("clerk:{}", clerk.id),
                Some(source),
                &format!("clerk:{}", clerk.username),
                &format!("{left} recovery codes left"),
            )
            .await;
            "password and recovery code"
        }
    };
    open_login(
        &state,
        &clerk,
        SecondFactorStage::Done,
        ttl_ms(&state),
        staged.password_change_only,
        source,
        listener.is_some_and(|Extension(l)| l.tls),
        how,
        None,
    )
    .await
}

/// A login that may enroll: an enroll-only one, or a full one without an active second
/// factor (a clerk enrolling by choice). Never one that must first change its password.
async fn enrolling_login(state: &AppState, headers: &HeaderMap) -> Result<StagedLogin, ApiError> {
    let token = login_token(headers).ok_or(ApiError::Unauthenticated)?;
    let staged = state
        .store
        .staged_login(
            &token_hash(&token),
            state.clock.now_ms(),
            idle_ms(&state.config.auth),
        )
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    match staged.stage {
        SecondFactorStage::AwaitingCode => Err(ApiError::Unauthenticated),
        _ if staged.password_change_only => Err(ApiError::Unauthenticated),
        _ => Ok(staged),
    }
}

#[derive(Serialize)]
struct Status {
    enabled: bool,
    required: bool,
    recovery_codes_left: i64,
}

async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Status>, ApiError> {
    let staged = enrolling_login(&state, &headers).await?;
    let clerk = &staged.clerk;
    Ok(Json(Status {
        enabled: state
            .store
            .two_factor(&clerk.id)
            .await?
            .is_some_and(|r| r.enabled),
        required: required_for(clerk, state.config.auth.clerk_two_factor),
        recovery_codes_left: state.store.recovery_codes_left(&clerk.id).await?,
    }))
}

#[derive(Serialize)]
struct Enrollment {
    /// Base32, for apps that take it typed.
    secret: String,
    /// The same in groups of four.
    secret_groups: String,
    otpauth_uri: String,
    /// The QR code of `otpauth_uri`, an SVG document.
    qr_svg: String,
}

/// Starts (or restarts) an enrollment: a new secret, sealed, waiting for its first code.
async fn enroll(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Enrollment>, ApiError> {
    let staged = enrolling_login(&state, &headers).await?;
    let clerk = &staged.clerk;
    let secret = totp::new_secret();
    let sealed = state
        .cases
        .seal_secret(&secret_object(&clerk.id), &secret)
        .await
        .map_err(|e| ApiError::Unavailable(format!("second-factor secret: {e}")))?;
    let stored = SealedSecret {
        key_id: sealed.key_id,
        wrapped_key: sealed.wrapped_key,
        sealed: sealed.ciphertext,
    };
    if !state
        .store
        .begin_two_factor(&clerk.id, &stored, state.clock.now_ms())
        .await?
    {
        return Err(ApiError::BadRequest(
            "已启用验证器；如需更换，请值班长重置 / a second factor is already active; a supervisor can reset it".into(),
        ));
    }
    let uri = totp::otpauth_uri(
        &state.config.auth.two_factor_issuer,
        &clerk.username,
        &secret,
    );
    let qr_svg = totp::qr_svg(&uri)
        .ok_or_else(|| ApiError::Internal("the QR code could not be drawn".into()))?;
    let text = totp::base32(&secret);
    Ok(Json(Enrollment {
        secret_groups: totp::grouped(&text),
        secret: text,
        otpauth_uri: uri,
        qr_svg,
    }))
}

#[derive(Deserialize)]
struct Confirm {
    code: String,
}

/// The first code from the new secret activates it: ten recovery codes are answered once,
/// and the login is replaced by a full one.
async fn confirm(
    State(state): State<AppState>,
    listener: Option<Extension<Listener>>,
    SourceAddress(source): SourceAddress,
    headers: HeaderMap,
    Json(req): Json<Confirm>,
) -> Result<Response, ApiError> {
    let staged = enrolling_login(&state, &headers).await?;
    let clerk = staged.clerk;
    let attempt = LoginAttempt::reserve(
        &state.login_throttle,
        &throttle_key(&clerk.username),
        source,
    )
    .map_err(refused)?;
    let pending = match state.store.two_factor(&clerk.id).await {
        Ok(Some(r)) if !r.enabled => r,
        Ok(_) => {
            attempt.released();
            return Err(ApiError::BadRequest(
                "请先开始绑定验证器 / start the enrollment first".into(),
            ));
        }
        Err(e) => {
            attempt.released();
            return Err(e.into());
        }
    };
    let step = match check_code(&state, &clerk, req.code.trim(), false).await {
        Ok(Some((_, step))) => step,
        Ok(None) => {
            return Err(wrong_code(
                &state,
                attempt,
                &clerk,
                source,
                None,
                "wrong code while enrolling",
            )
            .await);
        }
        Err(e) => {
            attempt.released();
            return Err(e);
        }
    };
    drop(pending);
    let codes = totp::new_recovery_codes();
    let hashes: Vec<String> = codes.iter().map(|c| totp::recovery_code_hash(c)).collect();
    if !state
        .store
        .enable_two_factor(&clerk.id, step, &hashes, state.clock.now_ms())
        .await?
    {
        attempt.released();
        return Err(ApiError::BadRequest(
            "请先开始绑定验证器 / start the enrollment first".into(),
        ));
    }
    attempt.succeeded();
    info!(clerk = %clerk.id, %source, "second factor enrolled");
    audit(
        &state,
        kind::TWO_FACTOR_ENROLLED,
        &format!("clerk:{}", clerk.id),
        Some(source),
        &format!("clerk:{}", clerk.username),
        "authenticator enrolled; 10 recovery codes issued",
    )
    .await;
    if let Some(token) = login_token(&headers) {
        state.store.delete_login(&token_hash(&token)).await?;
    }
    open_login(
        &state,
        &clerk,
        SecondFactorStage::Done,
        ttl_ms(&state),
        false,
        source,
        listener.is_some_and(|Extension(l)| l.tls),
        "second factor enrolled",
        Some(codes),
    )
    .await
}

/// A supervisor resets a clerk's second factor (a lost phone): it is removed with its
/// recovery codes, every login of the clerk ends (open consoles close within a second), and
/// the clerk enrolls again at the next login.
async fn reset_two_factor(
    State(state): State<AppState>,
    AuthSupervisor(supervisor): AuthSupervisor,
    SourceAddress(source): SourceAddress,
    Path(username): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let target = managed_account(&state, &supervisor, &username).await?;
    let ended = state.store.reset_two_factor(&target.id).await?;
    info!(supervisor = %supervisor.id, clerk = %target.id, sessions_ended = ended, "second factor reset");
    audit(
        &state,
        kind::TWO_FACTOR_RESET,
        &format!("clerk:{}", supervisor.id),
        Some(source),
        &format!("clerk:{}", target.username),
        &format!("second factor reset by a supervisor; {ended} sessions ended"),
    )
    .await;
    Ok(Json(
        serde_json::json!({"ok": true, "sessions_ended": ended}),
    ))
}

#[derive(Deserialize)]
struct NewPassword {
    new_password: String,
}

/// A supervisor sets a clerk's password (a forgotten one): it must pass the password policy,
/// every login of the clerk ends, and the clerk must change it at the next login.
async fn set_password(
    State(state): State<AppState>,
    AuthSupervisor(supervisor): AuthSupervisor,
    SourceAddress(source): SourceAddress,
    Path(username): Path<String>,
    Json(req): Json<NewPassword>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let target = managed_account(&state, &supervisor, &username).await?;
    password_policy::check(&req.new_password, &target.username)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let new = req.new_password;
    let hashed = state
        .password_checks
        .run_value(move || hash_secret(&new).ok())
        .await
        .map_err(|_| ApiError::Busy)?
        .flatten()
        .ok_or_else(|| ApiError::Internal("password hashing failed".into()))?;
    let ended = state
        .store
        .set_password_by_other(&target.id, &hashed)
        .await?;
    info!(supervisor = %supervisor.id, clerk = %target.id, sessions_ended = ended, "password set by a supervisor");
    audit(
        &state,
        kind::PASSWORD_RESET,
        &format!("clerk:{}", supervisor.id),
        Some(source),
        &format!("clerk:{}", target.username),
        &format!(
            "password set by a supervisor, to be changed at next login; {ended} sessions ended"
        ),
    )
    .await;
    Ok(Json(
        serde_json::json!({"ok": true, "sessions_ended": ended}),
    ))
}
