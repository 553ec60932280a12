//! The agent's control connection to the relay: a TLS WebSocket that carries the kiosk's
//! identity, its ticket requests and the relay's live ticket status.
//!
//! The link always dials out (kiosks sit behind NAT), reconnects after any failure with
//! exponential backoff and jitter (so a relay restart is not met by every kiosk at the same
//! instant), and publishes what the kiosk knows as a [`KioskState`] in a `watch` channel for
//! the kiosk screen and the local API. Requests (take or cancel a ticket, an evaluation) go
//! through a bounded channel and are answered within the configured timeout, or at once when
//! offline.
//!
//! - [`core`]: every decision, without I/O and without a clock (tested in virtual time);
//! - [`state`]: what the core publishes (the kiosk's state, request errors, media signals);
//! - [`driver`]: the tokio task that runs the core against the socket and the agent's channels;
//! - [`wire`]: the socket (dial, send, receive), shared with the self-test's login.

pub mod core;
pub mod driver;
pub mod state;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use protocol::control::{KioskEvaluation, KioskTicketStatus};
use protocol::device::{FromDevice, ToDevice};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::Connector;
use tokio_util::sync::CancellationToken;

pub use self::core::{AppointmentAnswer, AppointmentRequest};
use self::core::{ControlCore, CoreConfig, Request};
use self::driver::{Asked, LinkTask, Reply};
pub use self::state::{KioskState, LinkError, LinkState, MediaSignal};
use crate::devices::service::DeviceSink;
use crate::link::config::{Credential, RelayConfig};

const REQUEST_BACKLOG: usize = 16;
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
    requests: mpsc::Sender<Asked>,
    state: watch::Receiver<KioskState>,
    timeout: Duration,
    device_out: mpsc::Sender<FromDevice>,
    media_out: mpsc::Sender<(u64, String)>,
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
        request: Request,
        reply: impl FnOnce(oneshot::Sender<Result<T, LinkError>>) -> Reply,
    ) -> Result<T, LinkError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .try_send(Asked {
                request,
                reply: reply(tx),
            })
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
        self.ask(Request::TakeTicket { category_id }, Reply::Take)
            .await
    }

    pub async fn cancel_ticket(&self) -> Result<(), LinkError> {
        self.ask(Request::CancelTicket, Reply::Cancel).await
    }

    /// Delivers a 好差评 evaluation; `Ok(duplicate)` once the relay stored it (`true` when it
    /// had been stored before under the same id).
    pub async fn send_evaluation(&self, evaluation: KioskEvaluation) -> Result<bool, LinkError> {
        self.ask(Request::Evaluation(evaluation), Reply::Evaluation)
            .await
    }

    /// 预约: checks in with a booking or books a slot, through the relay's appointment service.
    pub async fn appointment(
        &self,
        request: AppointmentRequest,
    ) -> Result<AppointmentAnswer, LinkError> {
        self.ask(Request::Appointment(request), Reply::Appointment)
            .await
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
    let core = ControlCore::new(
        CoreConfig::new(&config),
        &credential,
        tokio::time::Instant::now().into_std(),
        rand::random(),
    );
    let (state_tx, state_rx) = watch::channel(core.state().clone());
    let (requests_tx, requests_rx) = mpsc::channel(REQUEST_BACKLOG);
    let (commands_tx, commands_rx) = mpsc::channel(DEVICE_BACKLOG);
    let (device_out_tx, device_out_rx) = mpsc::channel(DEVICE_BACKLOG);
    let (media_tx, media_rx) = mpsc::channel(MEDIA_BACKLOG);
    let (media_out_tx, media_out_rx) = mpsc::channel(MEDIA_BACKLOG);
    let timeout = Duration::from_secs(config.request_timeout_secs);
    let task = LinkTask {
        core,
        url: config.url.clone(),
        connector,
        dial_limit: Duration::from_secs(config.connect_timeout_secs) + Duration::from_secs(1),
        state: state_tx,
        requests: requests_rx,
        device_commands: commands_tx,
        device_out: device_out_rx,
        media_signals: media_tx,
        media_out: media_out_rx,
        shutdown,
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
