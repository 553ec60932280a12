//! A clerk speaking the console's protocol over `/ws/clerk` on the relay's development HTTP
//! listener: log in, sign in to a window, run queue operations. For tests that need a ticket
//! called, served and finished without driving the console's page.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::procs::Relay;

const WAIT: Duration = Duration::from_secs(20);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Clerk {
    ws: Ws,
    next_id: u64,
}

/// Logs `username` in over the development listener; returns the session token.
/// Every step the relay asks for is answered (a second factor enrolled the first time, codes
/// after that: `relay_kit::staff`).
pub async fn login(relay: &Relay, username: &str, password: &str) -> Result<String> {
    relay_kit::staff::login(
        &reqwest::Client::new(),
        &format!("http://{}", relay.http),
        username,
        password,
    )
    .await
}

impl Clerk {
    pub async fn connect(relay: &Relay, username: &str, password: &str) -> Result<Self> {
        let token = login(relay, username, password).await?;
        let mut request = format!("ws://{}/ws/clerk", relay.http).into_client_request()?;
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
        let (ws, _) = tokio_tungstenite::connect_async(request).await?;
        let mut clerk = Self { ws, next_id: 1 };
        clerk
            .send(json!({ "type": "hello", "protocol_versions": [1] }))
            .await?;
        clerk.recv_type("welcome").await?;
        Ok(clerk)
    }

    async fn send(&mut self, v: Value) -> Result<()> {
        self.ws.send(Message::text(v.to_string())).await?;
        Ok(())
    }

    async fn next(&mut self) -> Result<Value> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next()).await {
                Err(_) => bail!("the relay said nothing within {WAIT:?}"),
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => {
                    bail!("the relay closed the clerk connection")
                }
                Ok(Some(Ok(Message::Text(t)))) => return Ok(serde_json::from_str(&t)?),
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    async fn recv_type(&mut self, ty: &str) -> Result<Value> {
        loop {
            let m = self.next().await?;
            if m["type"] == ty {
                return Ok(m);
            }
        }
    }

    /// Sends a request and returns the answer with its request id; an `error` is an Err.
    pub async fn request(&mut self, mut v: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        v["request_id"] = json!(id);
        self.send(v).await?;
        loop {
            let m = self.next().await?;
            if m["request_id"] == json!(id) {
                if m["type"] == "error" {
                    bail!("the relay refused: {m}");
                }
                return Ok(m);
            }
        }
    }

    pub async fn open_window(&mut self, window_id: &str) -> Result<()> {
        self.request(json!({ "type": "open_window", "window_id": window_id }))
            .await?;
        Ok(())
    }

    /// A queue operation, e.g. `{"op": "call_next"}`; returns the ticket afterwards.
    pub async fn op(&mut self, op: Value) -> Result<Value> {
        let done = self.request(json!({ "type": "queue", "op": op })).await?;
        Ok(done["ticket"].clone())
    }

    /// Sends a device command (`protocol::device::DeviceCommand` as JSON) to the kiosk whose
    /// ticket this clerk serves.
    pub async fn device_command(&mut self, ticket_id: &str, command: Value) -> Result<()> {
        self.send(json!({ "type": "device_command", "ticket_id": ticket_id, "command": command }))
            .await
    }

    /// Waits for the completion of the device command with `request_id`.
    pub async fn device_completion(&mut self, request_id: u64) -> Result<Value> {
        loop {
            let m = self.next().await?;
            if m["type"] == "device"
                && m["message"]["type"] == "completion"
                && m["message"]["request_id"] == json!(request_id)
            {
                return Ok(m["message"].clone());
            }
        }
    }

    /// Calls the next ticket, starts and finishes it; returns its id.
    pub async fn serve_next(&mut self) -> Result<String> {
        let ticket = self.op(json!({ "op": "call_next" })).await?;
        let id = ticket["id"]
            .as_str()
            .context("called ticket id")?
            .to_owned();
        self.op(json!({ "op": "start", "ticket_id": id })).await?;
        self.op(json!({ "op": "finish", "ticket_id": id })).await?;
        Ok(id)
    }
}
