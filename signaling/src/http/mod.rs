//! The relay's HTTP surface (axum): REST, WebSockets, the clerk console's files, metrics.
//!
//! [`app`] builds the whole router from an [`AppState`], so tests run it in-process; [`serve`]
//! runs it on listeners the caller bound (tests bind port 0), over TLS or, in development,
//! plain HTTP on loopback, until the shutdown token is cancelled.

pub mod appointments;
pub mod assets;
pub mod auth;
pub mod cases;
pub mod clerk_ws;
pub mod error;
pub mod evaluations;
pub mod kiosk_appointments;
pub mod kiosk_ws;
pub mod pending;
pub mod recordings;
pub mod registry;
pub mod selftest;
pub mod staff;
pub mod staff_profile;
pub mod state;
pub mod tickets;
pub mod two_factor;
pub mod ws;

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::header;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use axum_server::Handle;
// Control messages are small and each one matters at once (a clerk's click, a kiosk's status):
// with Nagle's algorithm, a reply written right after another small message waits for the
// client's delayed ACK (up to 40 ms on Linux).
use axum_server::accept::NoDelayAcceptor;
use axum_server::tls_rustls::RustlsConfig;
use tower_http::trace::TraceLayer;
use tracing::{info, warn};
use web_common::{CacheControl, SecurityHeaders, security_headers};

pub use state::AppState;

use auth::Listener;

pub fn app(state: AppState) -> Router {
    let body_limit = state.config.limits.max_body_bytes;
    Router::new()
        .route("/", get(assets::console))
        .route("/{app}", get(assets::page))
        .route("/assets/{app}/{file}", get(assets::file))
        .route("/api/v1/login", post(auth::login))
        .route("/api/v1/logout", post(auth::logout))
        .route("/api/v1/password", post(auth::change_password))
        .route("/api/v1/me", get(auth::me))
        .route("/api/v1/queue", get(tickets::queue))
        .route("/api/v1/tickets", post(tickets::issue))
        .route("/ws/clerk", get(clerk_ws::upgrade))
        .route("/ws/kiosk", get(kiosk_ws::upgrade))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .merge(recordings::routes())
        .merge(cases::routes())
        .merge(registry::routes())
        .merge(evaluations::routes())
        .merge(staff::routes())
        .merge(two_factor::routes())
        .merge(selftest::routes())
        .merge(staff_profile::routes())
        .merge(appointments::routes())
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            SECURITY_HEADERS,
            security_headers,
        ))
        .layer(middleware::from_fn(same_site_writes))
        .layer(middleware::map_response(strict_transport_security))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Cross-site request forgery, beyond `SameSite=Strict` (which a sibling host of the same
/// site passes): a request that changes something is refused when its `Origin` is another
/// host (403), or when its body comes as a type an HTML form or a no-CORS `fetch` can send
/// without asking (form encodings, `text/plain`, or no type at all: 415). The relay's pages,
/// kiosks, ticket machines and scripts send JSON, images or `application/octet-stream`.
async fn same_site_writes(request: axum::extract::Request, next: middleware::Next) -> Response {
    use axum::http::{Method, StatusCode};
    let method = request.method();
    if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
        return next.run(request).await;
    }
    let headers = request.headers();
    // HTTP/2 carries the host as the request's authority, not as a `Host` header.
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_default();
    let foreign = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|origin| {
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            !origin_host.eq_ignore_ascii_case(&host)
        });
    if foreign {
        tracing::debug!(origin = ?headers.get(header::ORIGIN), host = ?host, "cross-site write refused");
        return error::ApiError::Refused(
            protocol::control::ErrorCode::Forbidden,
            "跨站请求被拒绝 / cross-site request refused".into(),
        )
        .into_response();
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let has_body = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim() != "0");
    let form_like = match content_type.as_deref() {
        Some("application/x-www-form-urlencoded" | "multipart/form-data" | "text/plain") => true,
        None => {
            (has_body && headers.contains_key(header::CONTENT_LENGTH))
                || headers.contains_key(header::TRANSFER_ENCODING)
        }
        Some(_) => false,
    };
    if form_like {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            axum::Json(serde_json::json!({
                "code": "bad_message",
                "message": "请以 JSON 提交 / send the request as JSON (content-type: application/json)",
            })),
        )
            .into_response();
    }
    next.run(request).await
}

/// HSTS on every answer: browsers that reached the relay over HTTPS keep to HTTPS for a year
/// (RFC 6797; they ignore the header on the plain development listener).
async fn strict_transport_security(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        header::HeaderValue::from_static("max-age=31536000"),
    );
    response
}

/// Serves only `/metrics`, without authentication, on `listener` (the separate listener of
/// `server.metrics_listen`, meant for loopback) until `state.shutdown`.
pub async fn serve_metrics(
    state: AppState,
    listener: tokio::net::TcpListener,
) -> std::io::Result<()> {
    let shutdown = state.shutdown.clone();
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(state): State<AppState>| async move { render_metrics(&state) }),
        )
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// `/metrics` on the main listener: only with the configured bearer token, otherwise as if it
/// did not exist (queue lengths and failure counts are not for the internet).
async fn metrics(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let allowed = match (&state.config.server.metrics_token, presented) {
        (Some(token), Some(presented)) => {
            crate::auth::verify_device_secret(presented, &crate::auth::hash_device_secret(token))
        }
        _ => false,
    };
    if !allowed {
        return axum::http::StatusCode::NOT_FOUND.into_response();
    }
    render_metrics(&state)
}

fn render_metrics(state: &AppState) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// The relay's pages load scripts, styles and media from the relay only; API answers are
/// never stored (the pages' files set their own `no-cache`).
const SECURITY_HEADERS: SecurityHeaders = SecurityHeaders {
    content_security_policy: "default-src 'self'; connect-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    deny_framing: true,
    cache_control: CacheControl::Under {
        prefix: "/api/",
        value: "no-store",
    },
};

/// Listeners the caller has bound.
pub struct Listeners {
    /// HTTPS/WSS.
    pub tls: Option<(std::net::TcpListener, RustlsConfig)>,
    /// INSECURE plain HTTP, loopback only (checked by the configuration).
    pub dev_http: Option<std::net::TcpListener>,
}

/// Serves `app` on the listeners until `state.shutdown` is cancelled, then lets open requests
/// finish for the configured grace period.
pub async fn serve(state: AppState, listeners: Listeners) -> std::io::Result<()> {
    let handle: Handle<SocketAddr> = Handle::new();
    let grace = Duration::from_secs(state.config.server.shutdown_grace_secs);
    let shutdown = state.shutdown.clone();
    let router = app(state);
    let mut tasks = tokio::task::JoinSet::new();
    if let Some((listener, tls)) = listeners.tls {
        listener.set_nonblocking(true)?;
        let app = router.clone().layer(Extension(Listener { tls: true }));
        let server = axum_server::from_tcp_rustls(listener, tls)?
            .map(|tls| tls.acceptor(NoDelayAcceptor::new()))
            .handle(handle.clone());
        tasks.spawn(async move {
            server
                .serve(app.into_make_service_with_connect_info::<SocketAddr>())
                .await
        });
    }
    if let Some(listener) = listeners.dev_http {
        warn!("INSECURE development listener: plain HTTP without TLS");
        listener.set_nonblocking(true)?;
        let app = router.layer(Extension(Listener { tls: false }));
        let server = axum_server::from_tcp(listener)?
            .acceptor(NoDelayAcceptor::new())
            .handle(handle.clone());
        tasks.spawn(async move {
            server
                .serve(app.into_make_service_with_connect_info::<SocketAddr>())
                .await
        });
    }
    tokio::spawn(async move {
        shutdown.cancelled().await;
        info!(grace_secs = grace.as_secs(), "shutting down");
        handle.graceful_shutdown(Some(grace));
    });
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(result) => result?,
            Err(e) => warn!(error = %e, "listener task failed"),
        }
    }
    Ok(())
}
