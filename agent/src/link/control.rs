//! The agent's control connection to the relay: a TLS WebSocket that carries the kiosk's
//! identity, its ticket requests and the relay's live ticket status.
//!
//! The link runs as one task. It always dials out (kiosks sit behind NAT), reconnects after any
//! failure with exponential backoff and jitter (so a relay restart is not met by every kiosk
//! at the same instant), and publishes what the kiosk knows as a [`KioskState`] in a `watch`
//! channel for the kiosk screen and the local API. Requests (take or cancel a ticket) go through
//! a bounded channel and are answered within the configured timeout, or at once when offline.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use protocol::control::{
    negotiate_version, CentreInfo, ErrorCode, ExtensionPointInfo, IceServer, KioskEvaluation,
    KioskTicketStatus, KioskToRelay, RelayToKiosk, MAX_FRAME_BYTES, PROTOCOL_VERSION,
};
use protocol::device::{FromDevice, ToDevice};
use protocol::queue::CategoryView;
use rand::Rng;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::clock::now_ms;
use crate::devices::service::DeviceSink;
use crate::link::config::{Credential, RelayConfig};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long the link may hear nothing from the relay before it reconnects.
const SILENCE_LIMIT: Duration = Duration::from_secs(45);
/// A connection that lasted this long resets the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(10);
const REQUEST_BACKLOG: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    Connecting,
    Online,
    /// Not connected; retrying.
    Offline,
    /// The relay refused this device (credential or version); retrying slowly.
    Refused,
}

/// What the kiosk currently knows, for its screen and local API.
#[derive(Debug, Clone, Serialize)]
pub struct KioskState {
    pub link: LinkState,
    /// Why the link is not online, for technicians (no personal information).
    pub problem: Option<String>,
    pub device_id: String,
    pub centre: Option<CentreInfo>,
    pub extension_point: Option<ExtensionPointInfo>,
    pub categories: Vec<CategoryView>,
    /// The kiosk's ticket; after it ends, its final state stays until a new one is taken.
    pub ticket: Option<KioskTicketStatus>,
    /// Relay time minus local time, from the last welcome or heartbeat answer.
    pub clock_offset_ms: i64,
}

#[derive(Debug, Clone, thiserror::Error, Serialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum LinkError {
    #[error("暂时无法连接受理中心，请稍后再试 / not connected to the centre, please try again shortly")]
    Offline,
    #[error("{message}")]
    Refused { code: ErrorCode, message: String },
    #[error("受理中心未及时响应，请重试 / the centre did not answer in time, please retry")]
    Timeout,
    #[error("当前没有号 / there is no ticket")]
    NoTicket,
}

enum Request {
    TakeTicket {
        category_id: String,
        reply: oneshot::Sender<Result<KioskTicketStatus, LinkError>>,
    },
    CancelTicket {
        reply: oneshot::Sender<Result<(), LinkError>>,
    },
    Evaluation {
        evaluation: KioskEvaluation,
        reply: oneshot::Sender<Result<bool, LinkError>>,
    },
}

/// How many device messages may wait in each direction between the link and the devices.
pub const DEVICE_BACKLOG: usize = 64;
/// How many media signals may wait in each direction.
pub const MEDIA_BACKLOG: usize = 16;

/// The ends of the link that the kiosk's devices and media connection hold.
pub struct Bridges {
    pub devices: DeviceBridge,
    pub media: MediaBridge,
}

/// A handle to the running link.
#[derive(Clone)]
pub struct Link {
    requests: mpsc::Sender<Request>,
    state: watch::Receiver<KioskState>,
    timeout: Duration,
    device_out: mpsc::Sender<FromDevice>,
    media_out: mpsc::Sender<(u64, String)>,
}

/// What the link tells the kiosk's media connection.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaSignal {
    /// The control connection is up (again): (re)offer media with these ICE servers.
    Online { ice_servers: Vec<IceServer> },
    /// The control connection is down.
    Offline,
    /// The relay's answer to the offer sent with this request id.
    Answer { request_id: u64, sdp: String },
    /// Send camera, document preview and microphone now (true) or stop (false).
    Sending(bool),
}

/// The media connection's end of the link: signals arrive on `signals`; offers go out through
/// [`Link::send_media_offer`].
pub struct MediaBridge {
    pub signals: mpsc::Receiver<MediaSignal>,
}

/// The devices' end of the link: commands from the clerk arrive on `commands`; answers and
/// unsolicited events go back through [`Link::send_device`]. Messages for the relay while it is
/// unreachable are dropped: the relay ends a command that is not completed in time, and it
/// cancels every command of a session that ended.
pub struct DeviceBridge {
    pub commands: mpsc::Receiver<ToDevice>,
}

impl Link {
    pub fn state(&self) -> watch::Receiver<KioskState> {
        self.state.clone()
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, LinkError>>) -> Request,
    ) -> Result<T, LinkError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .try_send(make(tx))
            .map_err(|_| LinkError::Timeout)?;
        // The link answers within its own timeout; this bound only guards against a stuck task.
        match tokio::time::timeout(self.timeout + Duration::from_secs(1), rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(LinkError::Offline),
            Err(_) => Err(LinkError::Timeout),
        }
    }

    pub async fn take_ticket(&self, category_id: &str) -> Result<KioskTicketStatus, LinkError> {
        let category_id = category_id.to_owned();
        self.ask(|reply| Request::TakeTicket { category_id, reply }).await
    }

    pub async fn cancel_ticket(&self) -> Result<(), LinkError> {
        self.ask(|reply| Request::CancelTicket { reply }).await
    }

    /// Delivers a 好差评 evaluation; `Ok(duplicate)` once the relay stored it (`true` when it
    /// had been stored before under the same id).
    pub async fn send_evaluation(&self, evaluation: KioskEvaluation) -> Result<bool, LinkError> {
        self.ask(|reply| Request::Evaluation { evaluation, reply }).await
    }

    /// Queues a device message for the relay; false when the queue is full (counted as a drop
    /// by the caller).
    pub fn send_device(&self, message: FromDevice) -> bool {
        self.device_out.try_send(message).is_ok()
    }

    /// Queues a media offer for the relay; the answer arrives as [`MediaSignal::Answer`] with
    /// the same request id. False when it cannot be queued.
    pub fn send_media_offer(&self, request_id: u64, sdp: String) -> bool {
        self.media_out.try_send((request_id, sdp)).is_ok()
    }
}

/// The device service answers the clerk through the link.
impl DeviceSink for Link {
    fn send(&self, message: FromDevice) -> bool {
        self.send_device(message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot read the relay certificate {path}: {detail}")]
    Ca { path: String, detail: String },
}

/// Builds the TLS client configuration: public roots plus the optional extra certificate.
pub fn tls_connector(config: &RelayConfig) -> Result<Connector, SetupError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &config.ca_file {
        let ca_error = |detail: String| SetupError::Ca {
            path: path.display().to_string(),
            detail,
        };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        let mut found = false;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| ca_error(e.to_string()))?;
            roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
            found = true;
        }
        if !found {
            return Err(ca_error("no certificate in the file".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError::Ca {
            path: String::new(),
            detail: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Connector::Rustls(Arc::new(client)))
}

/// Starts the link task. It runs until `shutdown` is cancelled.
pub fn spawn(
    config: RelayConfig,
    credential: Credential,
    connector: Connector,
    shutdown: CancellationToken,
) -> (Link, Bridges, tokio::task::JoinHandle<()>) {
    let initial = KioskState {
        link: LinkState::Connecting,
        problem: None,
        device_id: credential.device_id.clone(),
        centre: None,
        extension_point: None,
        categories: Vec::new(),
        ticket: None,
        clock_offset_ms: 0,
    };
    let (state_tx, state_rx) = watch::channel(initial);
    let (requests_tx, requests_rx) = mpsc::channel(REQUEST_BACKLOG);
    let (commands_tx, commands_rx) = mpsc::channel(DEVICE_BACKLOG);
    let (device_out_tx, device_out_rx) = mpsc::channel(DEVICE_BACKLOG);
    let (media_tx, media_rx) = mpsc::channel(MEDIA_BACKLOG);
    let (media_out_tx, media_out_rx) = mpsc::channel(MEDIA_BACKLOG);
    let timeout = Duration::from_secs(config.request_timeout_secs);
    let task = LinkTask {
        config,
        credential,
        connector,
        state: state_tx,
        requests: requests_rx,
        device_commands: commands_tx,
        device_out: device_out_rx,
        media_signals: media_tx,
        media_out: media_out_rx,
        shutdown,
        next_request: 1,
    };
    let handle = tokio::spawn(task.run());
    (
        Link {
            requests: requests_tx,
            state: state_rx,
            timeout,
            device_out: device_out_tx,
            media_out: media_out_tx,
        },
        Bridges {
            devices: DeviceBridge {
                commands: commands_rx,
            },
            media: MediaBridge { signals: media_rx },
        },
        handle,
    )
}

enum Failure {
    /// Network or protocol trouble: retry with the normal backoff.
    Transient(String),
    /// The relay refused us: retry slowly.
    Refused(String),
    Shutdown,
}

type Pending = HashMap<u64, (Instant, PendingReply)>;

enum PendingReply {
    Take(oneshot::Sender<Result<KioskTicketStatus, LinkError>>),
    Cancel(oneshot::Sender<Result<(), LinkError>>),
    Evaluation(oneshot::Sender<Result<bool, LinkError>>),
}

impl PendingReply {
    fn fail(self, e: LinkError) {
        match self {
            PendingReply::Take(tx) => {
                let _ = tx.send(Err(e));
            }
            PendingReply::Cancel(tx) => {
                let _ = tx.send(Err(e));
            }
            PendingReply::Evaluation(tx) => {
                let _ = tx.send(Err(e));
            }
        }
    }
}

struct LinkTask {
    config: RelayConfig,
    credential: Credential,
    connector: Connector,
    state: watch::Sender<KioskState>,
    requests: mpsc::Receiver<Request>,
    /// Device commands and cancels from the relay, for the devices.
    device_commands: mpsc::Sender<ToDevice>,
    /// Device answers and events for the relay.
    device_out: mpsc::Receiver<FromDevice>,
    media_signals: mpsc::Sender<MediaSignal>,
    /// Media offers for the relay: (request id, SDP).
    media_out: mpsc::Receiver<(u64, String)>,
    shutdown: CancellationToken,
    next_request: u64,
}

impl LinkTask {
    async fn run(mut self) {
        let mut attempt: u32 = 0;
        loop {
            self.state.send_modify(|s| s.link = LinkState::Connecting);
            let started = Instant::now();
            let failure = match self.connect().await {
                Ok(socket) => self.session(socket).await,
                Err(f) => f,
            };
            if started.elapsed() >= STABLE_AFTER {
                attempt = 0;
            }
            let (link, problem) = match failure {
                Failure::Shutdown => return,
                Failure::Transient(p) => (LinkState::Offline, p),
                Failure::Refused(p) => {
                    attempt = attempt.max(8);
                    (LinkState::Refused, p)
                }
            };
            warn!(problem = %problem, "relay link down; retrying");
            self.state.send_modify(|s| {
                s.link = link;
                s.problem = Some(problem);
            });
            let delay = backoff(attempt, Duration::from_secs(self.config.max_backoff_secs));
            attempt = attempt.saturating_add(1);
            if !self.wait_offline(delay).await {
                return;
            }
        }
    }

    /// Sleeps before the next attempt, answering requests with "offline" meanwhile.
    async fn wait_offline(&mut self, delay: Duration) -> bool {
        let until = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return false,
                () = tokio::time::sleep_until(until) => return true,
                request = self.requests.recv() => match request {
                    None => return false,
                    Some(Request::TakeTicket { reply, .. }) => { let _ = reply.send(Err(LinkError::Offline)); }
                    Some(Request::CancelTicket { reply }) => { let _ = reply.send(Err(LinkError::Offline)); }
                    Some(Request::Evaluation { reply, .. }) => { let _ = reply.send(Err(LinkError::Offline)); }
                },
                Some(_) = self.device_out.recv() => {
                    debug!("device message dropped while the relay is unreachable");
                }
                Some(_) = self.media_out.recv() => {
                    debug!("media offer dropped while the relay is unreachable; it is sent again once online");
                }
            }
        }
    }

    async fn connect(&mut self) -> Result<Socket, Failure> {
        let ws_config = WebSocketConfig::default()
            .max_message_size(Some(16 * 1024 * 1024))
            .max_frame_size(Some(16 * 1024 * 1024));
        let connect = tokio_tungstenite::connect_async_tls_with_config(
            self.config.url.as_str(),
            Some(ws_config),
            true,
            Some(self.connector.clone()),
        );
        let limit = Duration::from_secs(self.config.connect_timeout_secs);
        let (mut socket, _) = tokio::select! {
            () = self.shutdown.cancelled() => return Err(Failure::Shutdown),
            r = tokio::time::timeout(limit, connect) => match r {
                Err(_) => return Err(Failure::Transient("connection timed out".into())),
                Ok(Err(e)) => return Err(Failure::Transient(format!("cannot connect: {e}"))),
                Ok(Ok(s)) => s,
            },
        };
        let hello = KioskToRelay::Hello {
            protocol_versions: vec![PROTOCOL_VERSION],
            device_id: self.credential.device_id.clone(),
            secret: self.credential.secret.expose().clone(),
            agent_version: env!("CARGO_PKG_VERSION").into(),
        };
        send(&mut socket, &hello).await.map_err(Failure::Transient)?;
        let welcome = match tokio::time::timeout(limit, next_message(&mut socket)).await {
            Err(_) => return Err(Failure::Transient("no welcome from the relay".into())),
            Ok(Err(e)) => return Err(Failure::Transient(e)),
            Ok(Ok(m)) => m,
        };
        match welcome {
            RelayToKiosk::Welcome {
                protocol_version,
                extension_point,
                centre,
                categories,
                ticket,
                server_time_ms,
                ice_servers,
                ..
            } if negotiate_version(&[protocol_version]).is_some() => {
                self.signal_media(MediaSignal::Online { ice_servers });
                info!(centre = %centre.id, point = %extension_point.id, "connected to the relay");
                self.state.send_modify(|s| {
                    s.link = LinkState::Online;
                    s.problem = None;
                    s.centre = Some(centre);
                    s.extension_point = Some(extension_point);
                    s.categories = categories;
                    // A reconnect must not wipe a finished ticket the screen still shows.
                    if ticket.is_some() {
                        s.ticket = ticket;
                    }
                    s.clock_offset_ms = server_time_ms - now_ms();
                });
                Ok(socket)
            }
            RelayToKiosk::Error { error, .. } => Err(Failure::Refused(format!(
                "relay refused the device ({:?}): {}",
                error.code, error.message
            ))),
            _ => Err(Failure::Transient("unexpected first message from the relay".into())),
        }
    }

    async fn session(&mut self, mut socket: Socket) -> Failure {
        let heartbeat_every = Duration::from_secs(15);
        let mut heartbeat = tokio::time::interval(heartbeat_every);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seq = 0u64;
        let mut pending: Pending = HashMap::new();
        let request_timeout = Duration::from_secs(self.config.request_timeout_secs);
        let mut sweep = tokio::time::interval(Duration::from_millis(500));
        let failure = loop {
            tokio::select! {
                () = self.shutdown.cancelled() => {
                    let _ = socket.close(None).await;
                    break Failure::Shutdown;
                }
                incoming = tokio::time::timeout(SILENCE_LIMIT, next_message(&mut socket)) => match incoming {
                    Err(_) => break Failure::Transient("the relay went silent".into()),
                    Ok(Err(e)) => break Failure::Transient(e),
                    Ok(Ok(message)) => self.on_message(message, &mut pending),
                },
                request = self.requests.recv() => {
                    let Some(request) = request else { break Failure::Shutdown };
                    if let Err(e) = self.send_request(&mut socket, request, &mut pending).await {
                        break Failure::Transient(e);
                    }
                }
                Some(message) = self.device_out.recv() => {
                    if let Err(e) = send(&mut socket, &KioskToRelay::Device { message }).await {
                        break Failure::Transient(e);
                    }
                }
                Some((request_id, sdp)) = self.media_out.recv() => {
                    if let Err(e) = send(&mut socket, &KioskToRelay::MediaOffer { request_id, sdp }).await {
                        break Failure::Transient(e);
                    }
                }
                _ = heartbeat.tick() => {
                    seq += 1;
                    if let Err(e) = send(&mut socket, &KioskToRelay::Heartbeat { seq }).await {
                        break Failure::Transient(e);
                    }
                }
                _ = sweep.tick() => {
                    let expired: Vec<u64> = pending
                        .iter()
                        .filter(|(_, (at, _))| at.elapsed() >= request_timeout)
                        .map(|(id, _)| *id)
                        .collect();
                    for id in expired {
                        if let Some((_, reply)) = pending.remove(&id) {
                            reply.fail(LinkError::Timeout);
                        }
                    }
                }
            }
        };
        for (_, (_, reply)) in pending.drain() {
            reply.fail(LinkError::Offline);
        }
        self.signal_media(MediaSignal::Offline);
        failure
    }

    async fn send_request(
        &mut self,
        socket: &mut Socket,
        request: Request,
        pending: &mut Pending,
    ) -> Result<(), String> {
        let request_id = self.next_request;
        self.next_request += 1;
        let (message, reply) = match request {
            Request::TakeTicket { category_id, reply } => (
                KioskToRelay::TakeTicket {
                    request_id,
                    category_id,
                },
                PendingReply::Take(reply),
            ),
            Request::CancelTicket { reply } => {
                let live = self.state.borrow().ticket.as_ref().filter(|t| !t.state.is_terminal()).map(|t| t.ticket_id.clone());
                let Some(ticket_id) = live else {
                    let _ = reply.send(Err(LinkError::NoTicket));
                    return Ok(());
                };
                (
                    KioskToRelay::CancelTicket {
                        request_id,
                        ticket_id,
                    },
                    PendingReply::Cancel(reply),
                )
            }
            Request::Evaluation { evaluation, reply } => (
                KioskToRelay::Evaluation {
                    request_id,
                    evaluation,
                },
                PendingReply::Evaluation(reply),
            ),
        };
        pending.insert(request_id, (Instant::now(), reply));
        send(socket, &message).await
    }

    fn on_message(&mut self, message: RelayToKiosk, pending: &mut Pending) {
        match message {
            RelayToKiosk::TicketStatus { ticket } => {
                if let Some(window) = &ticket.window_name {
                    debug!(ticket = %ticket.number, state = ?ticket.state, window = %window, "ticket status");
                }
                self.set_ticket(ticket);
            }
            RelayToKiosk::TicketTaken { request_id, ticket } => {
                self.set_ticket(ticket.clone());
                if let Some((_, PendingReply::Take(tx))) = pending.remove(&request_id) {
                    let _ = tx.send(Ok(ticket));
                }
            }
            RelayToKiosk::TicketCancelled {
                request_id,
                ticket_id,
            } => {
                // The relay confirms the cancel in its answer (it does not push the final
                // status as well): the kiosk's ticket ends here.
                self.state.send_if_modified(|s| match &mut s.ticket {
                    Some(t) if t.ticket_id == ticket_id && !t.state.is_terminal() => {
                        t.state = protocol::queue::TicketState::Cancelled;
                        t.ahead = None;
                        t.eta_seconds = None;
                        true
                    }
                    _ => false,
                });
                if let Some((_, PendingReply::Cancel(tx))) = pending.remove(&request_id) {
                    let _ = tx.send(Ok(()));
                }
            }
            RelayToKiosk::EvaluationStored {
                request_id,
                duplicate,
                ..
            } => {
                if let Some((_, PendingReply::Evaluation(tx))) = pending.remove(&request_id) {
                    let _ = tx.send(Ok(duplicate));
                }
            }
            RelayToKiosk::HeartbeatAck { server_time_ms, .. } => {
                self.state
                    .send_modify(|s| s.clock_offset_ms = server_time_ms - now_ms());
            }
            RelayToKiosk::Error { request_id, error } => match request_id.and_then(|id| pending.remove(&id)) {
                Some((_, reply)) => reply.fail(LinkError::Refused {
                    code: error.code,
                    message: error.message,
                }),
                None => warn!(code = ?error.code, message = %error.message, "relay reported an error"),
            },
            RelayToKiosk::MediaAnswer { request_id, sdp } => {
                self.signal_media(MediaSignal::Answer { request_id, sdp });
            }
            RelayToKiosk::MediaSending { sending } => {
                self.signal_media(MediaSignal::Sending(sending));
            }
            RelayToKiosk::Device { message } => {
                if self.device_commands.try_send(message).is_err() {
                    // The relay completes the command with a timeout; the clerk may retry.
                    warn!("device command dropped: the devices are not keeping up");
                }
            }
            RelayToKiosk::Welcome { .. } => warn!("unexpected second welcome"),
        }
    }

    fn signal_media(&self, signal: MediaSignal) {
        if self.media_signals.try_send(signal).is_err() {
            warn!("media signal dropped: the media connection is not keeping up");
        }
    }

    fn set_ticket(&self, ticket: KioskTicketStatus) {
        let called = ticket.state == protocol::queue::TicketState::Called;
        if called {
            info!(
                ticket = %ticket.number,
                window = ticket.window_name.as_deref().unwrap_or(""),
                "ticket called"
            );
        }
        self.state.send_modify(|s| s.ticket = Some(ticket));
    }
}

async fn send(socket: &mut Socket, message: &KioskToRelay) -> Result<(), String> {
    let text = serde_json::to_string(message).map_err(|e| e.to_string())?;
    if text.len() > MAX_FRAME_BYTES {
        return Err("message too large".into());
    }
    tokio::time::timeout(Duration::from_secs(10), socket.send(Message::text(text)))
        .await
        .map_err(|_| "sending to the relay timed out".to_owned())?
        .map_err(|e| format!("sending to the relay failed: {e}"))
}

/// The next message from the relay; malformed ones are logged and skipped.
async fn next_message(socket: &mut Socket) -> Result<RelayToKiosk, String> {
    loop {
        match socket.next().await {
            None => return Err("the relay closed the connection".into()),
            Some(Err(e)) => return Err(format!("connection error: {e}")),
            Some(Ok(Message::Text(text))) => match serde_json::from_str::<RelayToKiosk>(&text) {
                Ok(m) => return Ok(m),
                Err(e) => warn!(error = %e, "ignoring a message the agent does not understand"),
            },
            Some(Ok(Message::Close(frame))) => {
                let reason = frame.map(|f| format!("{} {}", u16::from(f.code), f.reason)).unwrap_or_default();
                return Err(format!("the relay closed the connection {reason}").trim_end().to_owned());
            }
            Some(Ok(_)) => {}
        }
    }
}

/// Exponential backoff from 0.5 s, capped, with jitter: between half and all of the step.
pub fn backoff(attempt: u32, max: Duration) -> Duration {
    let base_ms: u64 = 500;
    let cap = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    let ceiling = base_ms.saturating_mul(1u64 << attempt.min(20)).min(cap);
    Duration::from_millis(rand::rng().random_range(ceiling / 2..=ceiling.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let max = Duration::from_secs(30);
        for attempt in 0..40 {
            let d = backoff(attempt, max);
            assert!(d <= max, "attempt {attempt}: {d:?}");
            let ceiling = Duration::from_millis(500u64.saturating_mul(1 << attempt.min(20))).min(max);
            assert!(d >= ceiling / 2, "attempt {attempt}: {d:?} below half of {ceiling:?}");
        }
        let samples: std::collections::HashSet<Duration> = (0..20).map(|_| backoff(10, max)).collect();
        assert!(samples.len() > 1, "jitter varies the delay");
    }
}
