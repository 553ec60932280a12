//! The tokio shell around [`SessionCore`]: signals, connection states and timers in; the
//! core's actions run one at a time against the media link, each bounded in time, their
//! results fed back.

use std::sync::Arc;
use std::time::Duration;

use protocol::media::Slot;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::core::{Action, CoreCounters, Input, Phase, SessionCore};
use crate::link::control::MediaSignal;
use crate::link::rtc::{ConnectionState, MediaLink, TurnServer};

/// Bounds of the link's operations (each also has its own, shorter, internal bounds).
const START_LIMIT: Duration = Duration::from_secs(30);
const OFFER_LIMIT: Duration = Duration::from_secs(20);
const APPLY_LIMIT: Duration = Duration::from_secs(10);

/// What the session needs from a media link.
#[async_trait::async_trait]
pub trait SessionLink: Send + Sync + 'static {
    /// The offer of the current connection.
    async fn offer(&self) -> Result<String, String>;
    /// A new connection, and its offer.
    async fn reconnect(&self) -> Result<String, String>;
    async fn apply_answer(&self, sdp: &str) -> Result<(), String>;
    async fn set_turn(&self, turn: Option<TurnServer>) -> Result<(), String>;
    /// Camera, document preview and microphone together; each is tried even if another fails.
    fn set_sending(&self, sending: bool) -> Result<(), String>;
    fn state(&self) -> watch::Receiver<ConnectionState>;
    async fn close(&self);
}

/// Builds the media link when the session first goes online.
#[async_trait::async_trait]
pub trait LinkFactory: Send + Sync + 'static {
    type Link: SessionLink;
    async fn start(&self, turn: Option<TurnServer>) -> Result<Arc<Self::Link>, String>;
}

/// Where offers go: the control link ([`crate::link::control::Link`]) or a test's channel.
pub trait OfferSink: Send + Sync + 'static {
    /// False when the offer could not be queued.
    fn send_offer(&self, request_id: u64, sdp: String) -> bool;
}

impl OfferSink for crate::link::control::Link {
    fn send_offer(&self, request_id: u64, sdp: String) -> bool {
        self.send_media_offer(request_id, sdp)
    }
}

impl OfferSink for mpsc::Sender<(u64, String)> {
    fn send_offer(&self, request_id: u64, sdp: String) -> bool {
        self.try_send((request_id, sdp)).is_ok()
    }
}

/// The session as the local API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SessionStatus {
    pub phase: Phase,
    pub sending: bool,
    pub connection: Option<&'static str>,
    pub counters: CoreCounters,
}

impl Default for SessionStatus {
    fn default() -> SessionStatus {
        SessionStatus {
            phase: Phase::Offline,
            sending: false,
            connection: None,
            counters: CoreCounters::default(),
        }
    }
}

/// The TURN server among the relay's ICE servers: the first with a `turn:`/`turns:` URL and
/// credentials. STUN entries are not needed: the relay's SFU is reachable directly or not at
/// all, and it learns the kiosk's address from the kiosk's own checks.
pub fn turn_from_ice_servers(servers: &[protocol::control::IceServer]) -> Option<TurnServer> {
    servers.iter().find_map(|server| {
        let urls: Vec<String> = server
            .urls
            .iter()
            .filter(|u| u.starts_with("turn:") || u.starts_with("turns:"))
            .cloned()
            .collect();
        let turn = TurnServer {
            urls,
            username: server.username.clone()?,
            credential: server.credential.clone()?,
        };
        turn.validate().is_ok().then_some(turn)
    })
}

fn state_name(state: ConnectionState) -> &'static str {
    match state {
        ConnectionState::New => "new",
        ConnectionState::Connecting => "connecting",
        ConnectionState::Connected => "connected",
        ConnectionState::Disconnected => "disconnected",
        ConnectionState::Failed => "failed",
        ConnectionState::Closed => "closed",
    }
}

/// Runs the session until `shutdown` or until the control link's signals end; closes the
/// media link on the way out.
pub async fn run<F: LinkFactory>(
    mut core: SessionCore,
    factory: F,
    offers: Arc<dyn OfferSink>,
    mut signals: mpsc::Receiver<MediaSignal>,
    status: watch::Sender<SessionStatus>,
    shutdown: CancellationToken,
) {
    let mut link: Option<Arc<F::Link>> = None;
    let mut states: Option<watch::Receiver<ConnectionState>> = None;
    loop {
        while let Some(action) = core.poll_action() {
            if let Some(input) = execute(action, &factory, &offers, &mut link, &mut states).await {
                let applied = matches!(input, Input::AnswerApplied { .. });
                core.handle(Instant::now().into_std(), input);
                // The connection may have come up while the answer was being applied.
                if applied && let Some(states) = states.as_mut() {
                    let state = *states.borrow_and_update();
                    core.handle(Instant::now().into_std(), Input::Connection(state));
                }
            }
        }
        status.send_replace(SessionStatus {
            phase: core.phase(),
            sending: core.sending(),
            connection: states.as_ref().map(|s| state_name(*s.borrow())),
            counters: core.counters(),
        });
        let deadline = core.poll_timeout().map(Instant::from_std);
        tokio::select! {
            () = shutdown.cancelled() => break,
            signal = signals.recv() => {
                let Some(signal) = signal else { break };
                let input = match signal {
                    MediaSignal::Online { ice_servers } => Input::Online {
                        turn: turn_from_ice_servers(&ice_servers),
                    },
                    MediaSignal::Offline => Input::Offline,
                    MediaSignal::Answer { request_id, sdp } => Input::Answer { request_id, sdp },
                    MediaSignal::Sending(sending) => Input::Sending(sending),
                };
                core.handle(Instant::now().into_std(), input);
            }
            changed = async {
                match states.as_mut() {
                    Some(states) => states.changed().await.map(|()| *states.borrow_and_update()),
                    None => std::future::pending().await,
                }
            } => {
                match changed {
                    Ok(state) => core.handle(Instant::now().into_std(), Input::Connection(state)),
                    // The link's state channel closed: it is gone.
                    Err(_) => states = None,
                }
            }
            () = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            } => core.handle_timeout(Instant::now().into_std()),
        }
    }
    if let Some(link) = link {
        link.close().await;
    }
}

async fn execute<F: LinkFactory>(
    action: Action,
    factory: &F,
    offers: &Arc<dyn OfferSink>,
    link: &mut Option<Arc<F::Link>>,
    states: &mut Option<watch::Receiver<ConnectionState>>,
) -> Option<Input> {
    let bounded = |limit: Duration, what: &'static str| {
        move |r: Result<Result<String, String>, tokio::time::error::Elapsed>| match r {
            Ok(r) => r,
            Err(_) => Err(format!("{what} took longer than {limit:?}")),
        }
    };
    match action {
        Action::Start { turn } => {
            let result = match tokio::time::timeout(START_LIMIT, factory.start(turn)).await {
                Ok(Ok(started)) => {
                    let mut receiver = started.state();
                    receiver.borrow_and_update();
                    *states = Some(receiver);
                    *link = Some(started);
                    Ok(())
                }
                Ok(Err(err)) => Err(err),
                Err(_) => Err(format!("starting media took longer than {START_LIMIT:?}")),
            };
            Some(Input::Started(result))
        }
        Action::SetTurn(turn) => {
            if let Some(link) = link
                && let Err(err) = link.set_turn(turn).await
            {
                tracing::warn!(%err, "TURN server not updated");
            }
            None
        }
        Action::CreateOffer { new_connection } => {
            let Some(link) = link else {
                return Some(Input::OfferCreated(Err("no media link".into())));
            };
            let result = if new_connection {
                bounded(OFFER_LIMIT, "a new connection")(
                    tokio::time::timeout(OFFER_LIMIT, link.reconnect()).await,
                )
            } else {
                bounded(OFFER_LIMIT, "the offer")(
                    tokio::time::timeout(OFFER_LIMIT, link.offer()).await,
                )
            };
            Some(Input::OfferCreated(result))
        }
        Action::SendOffer { request_id, sdp } => Some(Input::OfferQueued {
            request_id,
            queued: offers.send_offer(request_id, sdp),
        }),
        Action::ApplyAnswer { request_id, sdp } => {
            let Some(link) = link else {
                return Some(Input::AnswerApplied {
                    request_id,
                    result: Err("no media link".into()),
                });
            };
            let result = match tokio::time::timeout(APPLY_LIMIT, link.apply_answer(&sdp)).await {
                Ok(r) => r,
                Err(_) => Err(format!(
                    "applying the answer took longer than {APPLY_LIMIT:?}"
                )),
            };
            Some(Input::AnswerApplied { request_id, result })
        }
        Action::SetSending(sending) => {
            if let Some(link) = link
                && let Err(err) = link.set_sending(sending)
            {
                tracing::warn!(%err, sending, "media sending not fully switched");
            }
            None
        }
    }
}

#[async_trait::async_trait]
impl SessionLink for MediaLink {
    async fn offer(&self) -> Result<String, String> {
        MediaLink::offer(self).await.map_err(|e| e.to_string())
    }

    async fn reconnect(&self) -> Result<String, String> {
        MediaLink::reconnect(self).await.map_err(|e| e.to_string())
    }

    async fn apply_answer(&self, sdp: &str) -> Result<(), String> {
        MediaLink::apply_answer(self, sdp)
            .await
            .map_err(|e| e.to_string())
    }

    async fn set_turn(&self, turn: Option<TurnServer>) -> Result<(), String> {
        MediaLink::set_turn(self, turn)
            .await
            .map_err(|e| e.to_string())
    }

    fn set_sending(&self, sending: bool) -> Result<(), String> {
        // The camera first: it is what the clerk is waiting to see.
        let mut errors = Vec::new();
        for slot in [
            Slot::KioskCamera,
            Slot::KioskMicrophone,
            Slot::KioskDocument,
        ] {
            if let Err(err) = MediaLink::set_sending(self, slot, sending) {
                errors.push(format!("{slot:?}: {err}"));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    fn state(&self) -> watch::Receiver<ConnectionState> {
        MediaLink::state(self)
    }

    async fn close(&self) {
        MediaLink::close(self).await;
    }
}
