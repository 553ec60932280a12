//! Logging staff in over the relay's real HTTP API, second factor included, for tests,
//! benchmarks and `loadgen`: the password step, then either the enrollment (a staff member
//! without a second factor whose role requires one: the secret is taken from the enrollment
//! answer and its first code confirmed) or the code step (a code computed from the secret this
//! process enrolled). Secrets are remembered per relay address and username for the life of
//! the process; each code is used once (the relay refuses a replay), and when the current and
//! next 30-second steps are used up a recovery code is spent instead of waiting.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use signaling::totp;

/// What this process knows of one staff member's second factor.
#[derive(Debug, Clone)]
pub struct Known {
    pub secret: Vec<u8>,
    /// The last step whose code this process sent.
    pub last_step: i64,
    /// Recovery codes not yet spent.
    pub recovery_codes: Vec<String>,
}

fn known() -> &'static Mutex<HashMap<String, Known>> {
    static KNOWN: OnceLock<Mutex<HashMap<String, Known>>> = OnceLock::new();
    KNOWN.get_or_init(Mutex::default)
}

fn key(base: &str, username: &str) -> String {
    format!("{base} {username}")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The second factor this process enrolled for `username` on the relay at `base`.
pub fn known_factor(base: &str, username: &str) -> Option<Known> {
    known()
        .lock()
        .ok()
        .and_then(|k| k.get(&key(base, username)).cloned())
}

/// Another relay on the same database (a restart on a new address, a second node) knows the
/// same second factor: what this process enrolled at `from` holds at `to` too.
pub fn carry_over(from: &str, to: &str, username: &str) {
    if let Ok(mut k) = known().lock()
        && let Some(found) = k.get(&key(from, username)).cloned()
    {
        k.insert(key(to, username), found);
    }
}

/// Forgets a second factor (after a reset, the next login enrolls again).
pub fn forget(base: &str, username: &str) {
    if let Ok(mut k) = known().lock() {
        k.remove(&key(base, username));
    }
}

/// A code for the next login of `username`: a fresh TOTP step if one within the relay's
/// window is unused, else a recovery code.
pub fn next_code(base: &str, username: &str) -> Result<String> {
    let mut all = known().lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let k = all
        .get_mut(&key(base, username))
        .with_context(|| format!("{username} was not enrolled by this process"))?;
    let now = totp::step_at(now_ms());
    let step = now.max(k.last_step + 1);
    if step <= now + totp::WINDOW {
        k.last_step = step;
        return Ok(totp::code_for_step(&k.secret, step));
    }
    k.recovery_codes
        .pop()
        .context("every code of this step and every recovery code used")
}

async fn post(
    client: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Value,
) -> Result<Value> {
    let mut req = client.post(&url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.with_context(|| format!("POST {url}"))?;
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("POST {url}: {status} {body}");
    }
    Ok(body)
}

/// Enrolls a second factor with an enroll-only (or full) login's `token`; answers the body of
/// the confirmation (the new full login's `token` and the recovery codes).
pub async fn enroll(
    client: &reqwest::Client,
    base: &str,
    username: &str,
    token: &str,
) -> Result<Value> {
    let started = post(
        client,
        format!("{base}/api/v1/two-factor/enroll"),
        Some(token),
        json!({}),
    )
    .await?;
    let secret = totp::from_base32(started["secret"].as_str().context("secret")?)
        .context("secret is base32")?;
    let step = totp::step_at(now_ms());
    let confirmed = post(
        client,
        format!("{base}/api/v1/two-factor/confirm"),
        Some(token),
        json!({ "code": totp::code_for_step(&secret, step) }),
    )
    .await?;
    let recovery_codes = confirmed["recovery_codes"]
        .as_array()
        .context("recovery codes")?
        .iter()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect();
    known()
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .insert(
            key(base, username),
            Known {
                secret,
                last_step: step,
                recovery_codes,
            },
        );
    Ok(confirmed)
}

/// Logs `username` in at `base` (`http://host:port`) with every step the relay asks for;
/// answers the final login body (`token`, `clerk`, `must_change_password`, …).
pub async fn login_body(
    client: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
) -> Result<Value> {
    let mut body = post(
        client,
        format!("{base}/api/v1/login"),
        None,
        json!({ "username": username, "password": password }),
    )
    .await
    .with_context(|| format!("login of {username}"))?;
    if body["second_factor_required"] == true {
        let pending = body["pending_token"].as_str().context("pending token")?;
        body = post(
            client,
            format!("{base}/api/v1/login/code"),
            None,
            json!({ "pending_token": pending, "code": next_code(base, username)? }),
        )
        .await
        .with_context(|| format!("code step of {username}"))?;
    }
    if body["must_enroll_second_factor"] == true && body["must_change_password"] != true {
        let token = body["token"].as_str().context("token")?.to_owned();
        body = enroll(client, base, username, &token).await?;
    }
    Ok(body)
}

/// Like [`login_body`]; answers the session token.
pub async fn login(
    client: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
) -> Result<String> {
    let body = login_body(client, base, username, password).await?;
    Ok(body["token"].as_str().context("token")?.to_owned())
}
