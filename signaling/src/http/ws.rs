//! WebSocket plumbing shared by kiosk and clerk connections.
//!
//! Every receive waits at most the idle timeout, every send at most [`SEND_TIMEOUT`] (a client
//! that stops reading is disconnected rather than allowed to hold memory), and bad input is
//! answered, counted, and tolerated up to a per-minute limit.

use std::time::{Duration, Instant};

use std::future::Future;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use protocol::control::{ErrorBody, ErrorCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{Instrument, Span, debug, warn};

use super::error::ApiError;
use super::state::AppState;
use crate::metrics::{ClientKind, Metrics};

/// Read buffer per connection. Control messages are small; the default (128 KiB, plus as much
/// again for writing) would cost hundreds of megabytes across a district's kiosks. Larger
/// messages still arrive whole: the buffer is only the chunk size of each socket read.
pub const READ_BUFFER: usize = 4096;

/// Accepts a WebSocket upgrade for a kiosk or a console: takes one of the relay's connection
/// permits (refusing with 503 when all are taken), sets the frame limits and buffers, and runs
/// `serve` on the socket inside `span`, holding the permit until it returns.
pub fn accept<F, Fut>(
    state: &AppState,
    ws: WebSocketUpgrade,
    span: Span,
    serve: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(WebSocket) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let permit = state
        .connections
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Busy)?;
    let limit = state.config.limits.max_frame_bytes;
    Ok(ws
        .max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .on_upgrade(move |socket| {
            async move {
                let _permit = permit;
                serve(socket).await;
            }
            .instrument(span)
        }))
}

/// Like [`accept`], for a client that authenticates inside the socket (a kiosk's `hello`): it
/// must first get one of its source address's pending slots (refused with 429 when the address
/// holds its share, 503 when all are taken); `serve` gets the slot and drops it once the client
/// has authenticated.
pub fn accept_unauthenticated<F, Fut>(
    state: &AppState,
    ws: WebSocketUpgrade,
    source: std::net::IpAddr,
    span: Span,
    serve: F,
) -> Result<Response, ApiError>
where
    F: FnOnce(WebSocket, super::pending::PendingSlot) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slot = state.pending.try_take(source).map_err(|refused| {
        state.metrics.pending_refused();
        match refused {
            super::pending::Refused::Source => ApiError::TooManyAttempts,
            super::pending::Refused::Total => ApiError::Busy,
        }
    })?;
    accept(state, ws, span, move |socket| serve(socket, slot))
}

/// The longest a single send may take before the client is considered gone.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// WebSocket close codes (RFC 6455 §7.4.1).
pub mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const POLICY: u16 = 1008;
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

pub enum Incoming {
    Text(Utf8Bytes),
    /// The client closed, the connection broke, or it stayed silent past the idle timeout.
    Gone,
}

/// A message that did not parse.
#[derive(Debug)]
pub struct BadMessage {
    pub code: ErrorCode,
    pub request_id: Option<u64>,
    pub detail: String,
}

/// Parses a client message, telling unknown types apart from malformed ones and recovering
/// the request id when there is one, so the error can be correlated.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, BadMessage> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| BadMessage {
        code: ErrorCode::BadMessage,
        request_id: None,
        detail: format!("not JSON: {e}"),
    })?;
    let request_id = value.get("request_id").and_then(serde_json::Value::as_u64);
    serde_json::from_value(value).map_err(|e| {
        let detail = e.to_string();
        let code = if detail.starts_with("unknown variant") {
            ErrorCode::UnknownType
        } else {
            ErrorCode::BadMessage
        };
        BadMessage {
            code,
            request_id,
            detail,
        }
    })
}

pub struct Conn {
    socket: WebSocket,
    kind: ClientKind,
    metrics: std::sync::Arc<Metrics>,
    idle: Duration,
    max_bad_per_minute: u32,
    bad_count: u32,
    bad_since: Instant,
}

impl Conn {
    pub fn new(
        socket: WebSocket,
        kind: ClientKind,
        metrics: std::sync::Arc<Metrics>,
        idle: Duration,
        max_bad_per_minute: u32,
    ) -> Self {
        Self {
            socket,
            kind,
            metrics,
            idle,
            max_bad_per_minute,
            bad_count: 0,
            bad_since: Instant::now(),
        }
    }

    /// The next text frame. Cancel-safe: it can sit in a `select!` beside other sources.
    pub async fn recv(&mut self) -> Incoming {
        loop {
            let next = match tokio::time::timeout(self.idle, self.socket.recv()).await {
                Err(_) => {
                    debug!("idle timeout");
                    return Incoming::Gone;
                }
                Ok(next) => next,
            };
            match next {
                None | Some(Ok(Message::Close(_))) => return Incoming::Gone,
                Some(Err(e)) => {
                    // Includes frames over the size limit.
                    debug!(error = %e, "connection error");
                    self.metrics
                        .protocol_error(self.kind, ErrorCode::BadMessage);
                    return Incoming::Gone;
                }
                Some(Ok(Message::Text(text))) => return Incoming::Text(text),
                Some(Ok(Message::Binary(_))) => {
                    let bad = BadMessage {
                        code: ErrorCode::BadMessage,
                        request_id: None,
                        detail: "binary frames are not part of the protocol".into(),
                    };
                    if !self.reject_bad(&bad).await {
                        return Incoming::Gone;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            }
        }
    }

    /// Sends one message; false when the client is gone or too slow to read.
    pub async fn send<T: Serialize>(&mut self, message: &T) -> bool {
        let text = match serde_json::to_string(message) {
            Ok(t) => t,
            Err(e) => {
                warn!(error = %e, "cannot serialise an outgoing message");
                return false;
            }
        };
        matches!(
            tokio::time::timeout(SEND_TIMEOUT, self.socket.send(Message::Text(text.into()))).await,
            Ok(Ok(()))
        )
    }

    /// Answers a bad message with an error, counts it, and returns false when the client has
    /// sent too many bad messages this minute and was disconnected.
    pub async fn reject_bad(&mut self, bad: &BadMessage) -> bool {
        self.metrics.protocol_error(self.kind, bad.code);
        debug!(code = ?bad.code, detail = %bad.detail, "bad message");
        if self.bad_since.elapsed() > Duration::from_secs(60) {
            self.bad_since = Instant::now();
            self.bad_count = 0;
        }
        self.bad_count += 1;
        let body = ErrorBody {
            code: bad.code,
            message: match bad.code {
                ErrorCode::UnknownType => "未知的消息类型 / unknown message type".into(),
                _ => format!("消息格式错误 / malformed message: {}", bad.detail),
            },
        };
        if !self.send_error(bad.request_id, body).await {
            return false;
        }
        if self.bad_count > self.max_bad_per_minute {
            warn!("too many bad messages; closing");
            self.close(close_code::POLICY, "too many bad messages")
                .await;
            return false;
        }
        true
    }

    /// Sends an `error` message. It has the same shape in every direction's enum (a golden
    /// test in the protocol crate holds them to it).
    pub async fn send_error(&mut self, request_id: Option<u64>, error: ErrorBody) -> bool {
        #[derive(Serialize)]
        struct ErrorFrame {
            r#type: &'static str,
            request_id: Option<u64>,
            #[serde(flatten)]
            error: ErrorBody,
        }
        self.send(&ErrorFrame {
            r#type: "error",
            request_id,
            error,
        })
        .await
    }

    pub async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ =
            tokio::time::timeout(SEND_TIMEOUT, self.socket.send(Message::Close(Some(frame)))).await;
    }
}

#[cfg(test)]
mod tests {
    use protocol::control::ClerkToRelay;

    use super::*;

    #[test]
    fn unknown_types_and_malformed_messages_are_told_apart() {
        let e = parse::<ClerkToRelay>(r#"{"type":"fly","request_id":7}"#).expect_err("unknown");
        assert_eq!(e.code, ErrorCode::UnknownType);
        assert_eq!(e.request_id, Some(7));
        let e = parse::<ClerkToRelay>(r#"{"type":"open_window","request_id":8}"#)
            .expect_err("missing field");
        assert_eq!(e.code, ErrorCode::BadMessage);
        assert_eq!(e.request_id, Some(8));
        let e = parse::<ClerkToRelay>("{not json").expect_err("not json");
        assert_eq!(e.code, ErrorCode::BadMessage);
        assert!(parse::<ClerkToRelay>(r#"{"type":"ping","seq":1,"extra":"ignored"}"#).is_ok());
    }
}
