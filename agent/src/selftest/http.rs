//! The technician page's routes on the agent's loopback API:
//!
//! - `GET /technician` the page, `/technician/assets/{file}` its script and style
//!   (`agent/web/technician/`, compiled in);
//! - `POST /api/technician/login` `{pin}` → a login cookie; wrong PINs are rate limited
//!   ([`PinGuard`]) and answered 401 (429 while locked);
//! - `POST /api/technician/logout`;
//! - `GET /api/technician/run`: the current or last run ([`RunView`]);
//! - `POST /api/technician/run` `{technician, with_card, with_code}` → 202 `{run_id}`, 409 when a
//!   run is going or a resident is being served.
//!
//! The run routes take the page's login cookie, or `Authorization: Bearer <token>` with the
//! token the agent writes to `<data_dir>/selftest.token` (0600) for `agent selftest`.
//! Requests must name a loopback host, and a request with an `Origin` must come from the same
//! host. The PIN is never logged.

use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tracing::{info, warn};
use web_common::{CacheControl, SecurityHeaders, security_headers};

use super::Options;
use super::pin::{Logins, PinGuard, verify_pin};
use super::service::{SelfTestService, StartError};
use crate::clock::now_ms;

pub const COOKIE: &str = "rvw_technician";

/// The page's state: the service, the PIN guard and the open logins.
#[derive(Clone)]
pub struct Technician {
    service: SelfTestService,
    guard: Arc<Mutex<PinGuard>>,
    logins: Arc<Mutex<Logins>>,
}

impl Technician {
    pub fn new(service: SelfTestService) -> Technician {
        Technician {
            service,
            guard: Arc::new(Mutex::new(PinGuard::default())),
            logins: Arc::new(Mutex::new(Logins::default())),
        }
    }

    pub fn service(&self) -> &SelfTestService {
        &self.service
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub fn routes(technician: Technician) -> Router {
    Router::new()
        .route("/technician", get(page))
        .route("/technician/assets/{file}", get(asset))
        .route("/api/technician/login", post(login))
        .route("/api/technician/logout", post(logout))
        .route("/api/technician/run", get(view).post(start))
        .layer(middleware::from_fn_with_state(
            SECURITY_HEADERS,
            security_headers,
        ))
        .layer(middleware::from_fn(guard))
        .with_state(technician)
}

fn host_name(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn is_loopback(name: &str) -> bool {
    name == "localhost"
        || name
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Loopback hosts only, same-origin requests only (security headers are added inside, on the
/// answers it lets through).
async fn guard(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !is_loopback(host_name(host)) {
        return (StatusCode::MISDIRECTED_REQUEST, "loopback only").into_response();
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok())
        && origin != format!("http://{host}")
    {
        return (StatusCode::FORBIDDEN, "cross-origin request").into_response();
    }
    next.run(request).await
}

/// The page has no inline script or style and talks to the agent only; nothing is stored.
const SECURITY_HEADERS: SecurityHeaders = SecurityHeaders {
    content_security_policy: "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    deny_framing: false,
    cache_control: CacheControl::All("no-store"),
};

const INDEX: &str = include_str!("../../web/technician/index.html");
const SCRIPT: &str = include_str!("../../web/technician/technician.js");
const STYLE: &str = include_str!("../../web/technician/technician.css");

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX).into_response()
}

async fn asset(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "technician.js" => (
            [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
            SCRIPT,
        )
            .into_response(),
        "technician.css" => {
            ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
        }
        // The script the relay's pages share too (elements, time, requests).
        "common.js" => (
            [(header::CONTENT_TYPE, web_common::JS_CONTENT_TYPE)],
            web_common::COMMON_JS,
        )
            .into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "error": code, "message": message }))).into_response()
}

#[derive(Deserialize)]
struct LoginRequest {
    pin: String,
}

async fn login(State(t): State<Technician>, body: axum::body::Bytes) -> Response {
    let hash = t.service.config().selftest.pin.clone();
    if hash.is_empty() {
        return error(
            StatusCode::NOT_FOUND,
            "pin_not_set",
            "未设置技术人员密码，页面未开放 / no technician PIN is configured ([selftest] pin)",
        );
    }
    // Parsed by hand so a malformed body's error text cannot echo the PIN back.
    let Ok(request) = serde_json::from_slice::<LoginRequest>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "请求格式有误 / malformed request",
        );
    };
    let now = now_ms();
    let attempt = lock(&t.guard).attempt(now);
    if let Err(wait_ms) = attempt {
        let secs = (wait_ms + 999) / 1000;
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "locked",
            &format!(
                "密码错误次数过多，请 {secs} 秒后再试 / too many wrong PINs, try again in {secs} s"
            ),
        );
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    // argon2 on a worker thread: it takes tens of milliseconds by design.
    let ok = tokio::task::spawn_blocking(move || verify_pin(&request.pin, &hash))
        .await
        .unwrap_or(false);
    if !ok {
        let lock_ms = attempt.ok().flatten();
        warn!(
            locked_secs = lock_ms.map(|l| l / 1000),
            "technician page: wrong PIN"
        );
        return error(
            StatusCode::UNAUTHORIZED,
            "wrong_pin",
            "密码错误 / wrong PIN",
        );
    }
    lock(&t.guard).succeeded();
    let token = lock(&t.logins).open(now_ms());
    info!("technician page: signed in");
    let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
    let mut r = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

fn login_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            kv.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_owned)
        })
}

fn authorised(t: &Technician, headers: &HeaderMap) -> bool {
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return t.service.is_local_token(bearer.trim());
    }
    login_token(headers).is_some_and(|token| lock(&t.logins).touch(&token, now_ms()))
}

async fn logout(State(t): State<Technician>, headers: HeaderMap) -> Response {
    if let Some(token) = login_token(&headers) {
        lock(&t.logins).close(&token);
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("rvw_technician=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    r
}

fn unauthorised() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "请先输入技术人员密码 / enter the technician PIN first",
    )
}

async fn view(State(t): State<Technician>, headers: HeaderMap) -> Response {
    if !authorised(&t, &headers) {
        return unauthorised();
    }
    let view = t.service.view().borrow().clone();
    let mut value = serde_json::to_value(&view).unwrap_or_default();
    // The page shows each check by name.
    value["names"] = super::ORDER
        .iter()
        .map(|id| {
            let (zh, en) = super::check::name(id);
            ((*id).to_owned(), json!([zh, en]))
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    // Names to tap, for a touch screen without a keyboard.
    value["technicians"] = json!(t.service.config().selftest.technicians);
    Json(value).into_response()
}

#[derive(Deserialize)]
struct StartRequest {
    technician: String,
    #[serde(default)]
    with_card: bool,
    #[serde(default)]
    with_code: bool,
}

async fn start(
    State(t): State<Technician>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !authorised(&t, &headers) {
        return unauthorised();
    }
    let Ok(request) = serde_json::from_slice::<StartRequest>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "请求格式有误 / malformed request",
        );
    };
    let options = Options {
        technician: request.technician,
        automatic: false,
        with_card: request.with_card,
        with_code: request.with_code,
    };
    match t.service.start(options) {
        Ok(run_id) => (StatusCode::ACCEPTED, Json(json!({ "run_id": run_id }))).into_response(),
        Err(e @ StartError::Invalid(_)) => {
            error(StatusCode::BAD_REQUEST, "invalid", &e.to_string())
        }
        Err(e @ StartError::DevicesNotReady) => {
            error(StatusCode::SERVICE_UNAVAILABLE, "not_ready", &e.to_string())
        }
        Err(e) => error(StatusCode::CONFLICT, "busy", &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_cookies() {
        assert!(is_loopback(host_name("127.0.0.1:7380")));
        assert!(is_loopback(host_name("[::1]:7380")));
        assert!(is_loopback(host_name("localhost")));
        assert!(!is_loopback(host_name("evil.example:7380")));
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; rvw_technician=abc123; c=d"),
        );
        assert_eq!(login_token(&h).as_deref(), Some("abc123"));
    }

    #[test]
    fn the_page_references_only_its_own_assets() {
        for referenced in [
            "/technician/assets/technician.js",
            "/technician/assets/technician.css",
        ] {
            assert!(INDEX.contains(referenced), "{referenced}");
        }
        assert!(
            !INDEX.contains("<script>") && !INDEX.contains("style="),
            "no inline script or style"
        );
    }
}
