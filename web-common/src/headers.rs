//! One middleware sets the security headers on every answer; the servers differ only in the
//! values they pass ([`SecurityHeaders`]).

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

/// Which answers get a `Cache-Control` header from the middleware.
#[derive(Clone, Copy, Debug)]
pub enum CacheControl {
    /// Every answer (replacing what a handler set).
    All(&'static str),
    /// Answers to paths under the prefix; others keep what their handler set.
    Under {
        prefix: &'static str,
        value: &'static str,
    },
}

/// The headers a server puts on every answer.
#[derive(Clone, Copy, Debug)]
pub struct SecurityHeaders {
    pub content_security_policy: &'static str,
    /// `X-Frame-Options: DENY`, for browsers older than `frame-ancestors`.
    pub deny_framing: bool,
    pub cache_control: CacheControl,
}

/// The middleware: `axum::middleware::from_fn_with_state(HEADERS, security_headers)`.
///
/// Always `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`, then the
/// server's content security policy, framing and cache rule.
pub async fn security_headers(
    State(policy): State<SecurityHeaders>,
    request: Request,
    next: Next,
) -> Response {
    let cache = match policy.cache_control {
        CacheControl::All(value) => Some(value),
        CacheControl::Under { prefix, value } => {
            request.uri().path().starts_with(prefix).then_some(value)
        }
    };
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if policy.deny_framing {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(policy.content_security_policy),
    );
    if let Some(value) = cache {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    const HEADERS: SecurityHeaders = SecurityHeaders {
        content_security_policy: "default-src 'self'",
        deny_framing: true,
        cache_control: CacheControl::Under {
            prefix: "/api/",
            value: "no-store",
        },
    };

    async fn get_headers(path: &str) -> axum::http::HeaderMap {
        let app = Router::new()
            .route(
                "/page",
                get(|| async { ([(header::CACHE_CONTROL, "no-cache")], "page") }),
            )
            .route("/api/x", get(|| async { "x" }))
            .layer(axum::middleware::from_fn_with_state(
                HEADERS,
                security_headers,
            ));
        let request = Request::get(path)
            .body(Body::empty())
            .expect("a valid request");
        app.oneshot(request)
            .await
            .expect("the router answers")
            .headers()
            .clone()
    }

    #[tokio::test]
    async fn every_answer_gets_the_headers_and_api_answers_are_not_stored() {
        let page = get_headers("/page").await;
        assert_eq!(page["content-security-policy"], "default-src 'self'");
        assert_eq!(page["x-content-type-options"], "nosniff");
        assert_eq!(page["x-frame-options"], "DENY");
        assert_eq!(page["referrer-policy"], "no-referrer");
        assert_eq!(page["cache-control"], "no-cache");
        let api = get_headers("/api/x").await;
        assert_eq!(api["cache-control"], "no-store");
        let missing = get_headers("/nowhere").await;
        assert_eq!(missing["x-content-type-options"], "nosniff");
    }
}
