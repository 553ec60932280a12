//! A WebSocket control connection to the relay (kiosk or clerk), JSON messages.

use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Control {
    ws: Ws,
    next: u64,
}

impl Control {
    pub async fn connect(url: &str, bearer: Option<&str>) -> anyhow::Result<Self> {
        let mut req = url.into_client_request()?;
        if let Some(t) = bearer {
            req.headers_mut()
                .insert("authorization", format!("Bearer {t}").parse()?);
        }
        let (ws, _) = tokio::time::timeout(ANSWER_TIMEOUT, tokio_tungstenite::connect_async(req))
            .await
            .context("websocket connect timed out")??;
        Ok(Self { ws, next: 1 })
    }

    pub async fn send(&mut self, v: Value) -> anyhow::Result<()> {
        self.ws.send(Message::text(v.to_string())).await?;
        Ok(())
    }

    async fn next_json(&mut self) -> anyhow::Result<Value> {
        loop {
            let m = tokio::time::timeout(ANSWER_TIMEOUT, self.ws.next())
                .await
                .context("relay did not answer in time")?
                .context("relay closed the connection")??;
            if let Message::Text(t) = m {
                return Ok(serde_json::from_str(&t)?);
            }
        }
    }

    /// Wait for a message of type `ty` (others are skipped).
    pub async fn recv_type(&mut self, ty: &str) -> anyhow::Result<Value> {
        for _ in 0..10_000 {
            let v = self.next_json().await?;
            if v["type"] == ty {
                return Ok(v);
            }
            if v["type"] == "error" && v.get("request_id").is_none() {
                bail!("relay error while waiting for {ty}: {v}");
            }
        }
        bail!("no {ty} among 10000 messages")
    }

    /// Send a request with a fresh `request_id`; return the answer with that id.
    pub async fn request(&mut self, mut v: Value) -> anyhow::Result<Value> {
        let id = self.next;
        self.next += 1;
        v["request_id"] = json!(id);
        self.send(v).await?;
        for _ in 0..10_000 {
            let a = self.next_json().await?;
            if a["request_id"] == json!(id) {
                return Ok(a);
            }
        }
        bail!("no answer to request {id} among 10000 messages")
    }

    /// Keep reading (and discarding) so the relay never finds this connection slow; heartbeat
    /// as a kiosk does. Ends when the connection closes or the task is aborted.
    pub fn drain(mut self, heartbeat: bool) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut beat = tokio::time::interval(Duration::from_secs(10));
            let mut seq = 0u64;
            loop {
                tokio::select! {
                    m = self.ws.next() => if !matches!(m, Some(Ok(_))) { return },
                    _ = beat.tick() => {
                        seq += 1;
                        let msg = if heartbeat {
                            json!({"type": "heartbeat", "seq": seq})
                        } else {
                            json!({"type": "ping", "seq": seq})
                        };
                        if self.ws.send(Message::text(msg.to_string())).await.is_err() {
                            return;
                        }
                    }
                }
            }
        })
    }
}
