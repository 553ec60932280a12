//! The control connection's socket: dialling the relay's TLS WebSocket, sending a message and
//! receiving the next one, each bounded. Shared by the link's driver and the self-test's
//! login; what the messages mean is the core's business.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use protocol::control::{KioskToRelay, MAX_FRAME_BYTES, RelayToKiosk};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tracing::warn;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The longest one send may take.
const SEND_LIMIT: Duration = Duration::from_secs(10);
/// Messages from the relay may be this large (a welcome with many categories, an SDP).
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Why the connection could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection timed out")]
    ConnectTimeout,
    #[error("{0}")]
    Connect(#[source] tokio_tungstenite::tungstenite::Error),
    #[error("message too large")]
    TooLarge,
    #[error("sending to the relay timed out")]
    SendTimeout,
    #[error("sending to the relay failed: {0}")]
    Send(#[source] tokio_tungstenite::tungstenite::Error),
    #[error("connection error: {0}")]
    Receive(#[source] tokio_tungstenite::tungstenite::Error),
    /// The relay closed the connection, with its close code and reason when it gave them.
    #[error("{}", closed_text(*.code, .reason))]
    Closed { code: Option<u16>, reason: String },
}

fn closed_text(code: Option<u16>, reason: &str) -> String {
    match code {
        None => "the relay closed the connection".into(),
        Some(code) => format!("the relay closed the connection {code} {reason}")
            .trim_end()
            .to_owned(),
    }
}

/// An open control connection.
pub struct Wire {
    socket: Socket,
}

impl Wire {
    /// Connects to `url` within `limit`.
    pub async fn dial(
        url: &str,
        connector: &Connector,
        limit: Duration,
    ) -> Result<Wire, WireError> {
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_MESSAGE_BYTES));
        let connect = tokio_tungstenite::connect_async_tls_with_config(
            url,
            Some(config),
            true,
            Some(connector.clone()),
        );
        match tokio::time::timeout(limit, connect).await {
            Err(_) => Err(WireError::ConnectTimeout),
            Ok(Err(e)) => Err(WireError::Connect(e)),
            Ok(Ok((socket, _))) => Ok(Wire { socket }),
        }
    }

    pub async fn send(&mut self, message: &KioskToRelay) -> Result<(), WireError> {
        let text = serde_json::to_string(message).map_err(|_| WireError::TooLarge)?;
        if text.len() > MAX_FRAME_BYTES {
            return Err(WireError::TooLarge);
        }
        tokio::time::timeout(SEND_LIMIT, self.socket.send(Message::text(text)))
            .await
            .map_err(|_| WireError::SendTimeout)?
            .map_err(WireError::Send)
    }

    /// The next message from the relay; malformed ones are logged and skipped.
    pub async fn recv(&mut self) -> Result<RelayToKiosk, WireError> {
        loop {
            match self.socket.next().await {
                None => {
                    return Err(WireError::Closed {
                        code: None,
                        reason: String::new(),
                    });
                }
                Some(Err(e)) => return Err(WireError::Receive(e)),
                Some(Ok(Message::Text(text))) => {
                    match serde_json::from_str::<RelayToKiosk>(&text) {
                        Ok(m) => return Ok(m),
                        Err(e) => {
                            warn!(error = %e, "ignoring a message the agent does not understand")
                        }
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(match frame {
                        Some(f) => WireError::Closed {
                            code: Some(u16::from(f.code)),
                            reason: f.reason.to_string(),
                        },
                        None => WireError::Closed {
                            code: None,
                            reason: String::new(),
                        },
                    });
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// Closes the connection politely; errors do not matter any more.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(SEND_LIMIT, self.socket.close(None)).await;
    }
}
