//! The media service: the relay's SFU and recorder wired to served sessions.
//!
//! Kiosks and clerk consoles set up their media connections ahead of any call — a kiosk once
//! online, a console once signed in to a window — by sending `media_offer` on their control
//! WebSocket; the relay adds a peer to the SFU and answers. Nothing is forwarded, and the kiosk
//! sends nothing (`media_sending: false`), until a session starts. When the queue starts a
//! remote session ([`SessionObserver`]) the service connects the kiosk's peer with the serving
//! clerk's, begins the recording (every forwarded packet goes through a tap to the recorder),
//! tells the kiosk to send (`media_sending: true`, it starts with a keyframe) and the console
//! which session it now receives (`media_session`). When the session ends it disconnects the
//! pair, tells both, and hands the recording to [`archive`] to be muxed, sealed and stored.
//!
//! How it is driven: which sessions should be live, and between which kiosk and console
//! connections their media should flow, is the switchboard's ([`Switchboard::media_routes`]);
//! this service keeps only each connection's SFU peer ([`peers::PeerTable`]). The switchboard
//! (as a [`SessionObserver`]) and the WebSocket handlers only update that table or say that the
//! routes changed, and wake one task, [`reconcile`], which owns what *is* live and moves it
//! towards what should be: level-triggered, so a wake-up that coalesces with another, an SFU call that failed, or a
//! message that did not fit a full outbox is simply redone on the next pass (at the latest one
//! second later). The observer therefore never blocks and nothing it reports can be dropped.
//!
//! Restarts: sessions in progress when the relay stopped come back through
//! `sessions_resumed`; their kiosks and consoles reconnect and offer again, and the pair is
//! connected with a new recording. Dumps the crash left behind are muxed at start-up before any
//! new recording begins ([`archive::recover`]).
//!
//! Not here: TURN itself (coturn; [`turn`] only issues its REST credentials), bandwidth
//! estimation and transcoding (none), who may *watch* recordings (`http::recordings`).

pub mod archive;
mod collector;
pub mod peers;
mod reconcile;
pub mod turn;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use protocol::control::{ErrorBody, ErrorCode, IceServer};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::peers::{PeerTable, Side};
use self::turn::TurnCredentials;
use crate::clock::Clock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::queue::SessionChange;
use crate::recorder::{Recorder, RecorderError, sealed};
use crate::session::{ConnId, SessionObserver, Switchboard};
use crate::sfu::{PeerId, Role, SfuError, SfuHandle};
use crate::store::StoreError;
use crate::store::recordings::RecordingStore;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("media is not enabled on this relay")]
    Disabled,
    #[error("the connection is not registered (or was replaced)")]
    NotConnected,
    #[error(transparent)]
    Sfu(#[from] SfuError),
    #[error(transparent)]
    Recorder(#[from] RecorderError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Seal(#[from] sealed::SealError),
    #[error("{what}: {detail}")]
    Setup { what: &'static str, detail: String },
}

impl MediaError {
    /// What a client is told (never internal details).
    pub fn body(&self) -> ErrorBody {
        let (code, message) = match self {
            MediaError::Disabled => (
                ErrorCode::InvalidState,
                "本中继未启用音视频 / media is not enabled on this relay",
            ),
            MediaError::NotConnected => (
                ErrorCode::InvalidState,
                "连接已被替换，请重新连接 / this connection was replaced; reconnect",
            ),
            MediaError::Sfu(
                SfuError::BadSdp(_) | SfuError::OfferRefused(_) | SfuError::LayoutMismatch(_),
            ) => (
                ErrorCode::BadMessage,
                "媒体协商失败：提议不符合要求 / the media offer does not fit the relay's layout",
            ),
            MediaError::Sfu(SfuError::TooManyPeers(_)) => (
                ErrorCode::LimitExceeded,
                "音视频连接已满，请稍后再试 / too many media connections, retry later",
            ),
            MediaError::Sfu(SfuError::DriverTimeout) => (
                ErrorCode::Timeout,
                "音视频服务繁忙，请重试 / media is busy, retry",
            ),
            _ => (
                ErrorCode::Internal,
                "音视频服务内部错误 / media failed inside the relay",
            ),
        };
        ErrorBody {
            code,
            message: message.into(),
        }
    }

    /// True when the client sent something wrong (counted as a protocol error).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            MediaError::Sfu(
                SfuError::BadSdp(_) | SfuError::OfferRefused(_) | SfuError::LayoutMismatch(_)
            )
        )
    }
}

/// Counters of the service itself (the SFU and the recorder keep their own).
#[derive(Debug, Default)]
pub struct ServiceMetrics {
    pub offers_answered: AtomicU64,
    pub offers_failed: AtomicU64,
    pub pairs_connected: AtomicU64,
    pub sfu_call_failures: AtomicU64,
    pub messages_dropped: AtomicU64,
    pub recordings_begun: AtomicU64,
    pub recordings_stored: AtomicU64,
    pub recordings_failed: AtomicU64,
    pub recordings_purged: AtomicU64,
    pub store_failures: AtomicU64,
    pub sessions_live: AtomicU64,
}

pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What the running service holds once started.
pub(crate) struct Running {
    pub sfu: SfuHandle,
}

/// What [`MediaService::start`] needs from the rest of the relay.
pub struct MediaDeps {
    pub config: Arc<Config>,
    pub recordings: Arc<dyn RecordingStore>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub shutdown: CancellationToken,
    /// Where its background tasks are spawned (the relay waits for them at shutdown).
    pub tasks: TaskTracker,
}

/// See the module documentation. One per relay, shared by the HTTP layer and the switchboard.
pub struct MediaService {
    switchboard: Arc<Switchboard>,
    peers: Mutex<PeerTable>,
    wake: Notify,
    running: OnceLock<Running>,
    archive: OnceLock<Arc<archive::Archive>>,
    turn: OnceLock<Option<TurnCredentials>>,
    next_peer: AtomicU64,
    pub metrics: Arc<ServiceMetrics>,
}

impl MediaService {
    /// An idle service: it tracks sessions and connections, and answers offers with
    /// [`MediaError::Disabled`] until [`start`](Self::start) succeeds.
    pub fn new(switchboard: Arc<Switchboard>) -> Self {
        Self {
            switchboard,
            peers: Mutex::new(PeerTable::default()),
            wake: Notify::new(),
            running: OnceLock::new(),
            archive: OnceLock::new(),
            turn: OnceLock::new(),
            next_peer: AtomicU64::new(1),
            metrics: Arc::new(ServiceMetrics::default()),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, PeerTable> {
        // The table is plain data; a panic elsewhere while holding it leaves it usable.
        self.peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    fn running(&self) -> Result<&Running, MediaError> {
        self.running.get().ok_or(MediaError::Disabled)
    }

    /// True once the SFU is running.
    pub fn is_enabled(&self) -> bool {
        self.running.get().is_some()
    }

    /// The SFU handle, once running (for metrics and tests).
    pub fn sfu(&self) -> Option<&SfuHandle> {
        self.running.get().map(|r| &r.sfu)
    }

    /// The recordings archive (playback, retention), once started.
    pub fn archive(&self) -> Option<&Arc<archive::Archive>> {
        self.archive.get()
    }

    /// STUN/TURN servers for `user` (a device or clerk id), with fresh credentials.
    pub fn ice_servers(&self, user: &str, now_ms: i64) -> Vec<IceServer> {
        match self.turn.get() {
            Some(Some(t)) => t.ice_servers(user, u64::try_from(now_ms / 1000).unwrap_or(0)),
            _ => Vec::new(),
        }
    }

    fn new_peer_id(&self) -> PeerId {
        PeerId(self.next_peer.fetch_add(1, Ordering::Relaxed))
    }

    // --- connections ---------------------------------------------------------------------------

    /// A kiosk's or console's control connection ended (after the switchboard was told): its
    /// peer goes with it.
    pub fn connection_closed(&self, conn: ConnId) {
        self.lock().connection_closed(conn);
        self.wake();
    }

    /// The kiosk's offer: adds (or replaces) its peer and returns the relay's answer.
    pub async fn kiosk_offer(
        &self,
        device_id: &str,
        conn: ConnId,
        sdp: String,
    ) -> Result<String, MediaError> {
        let running = self.running()?;
        if self.switchboard.kiosk_conn(device_id) != Some(conn) {
            return Err(MediaError::NotConnected);
        }
        let id = self.new_peer_id();
        let answer = self.answered(running.sfu.add_peer(id, Role::Kiosk, sdp).await)?;
        // Checked again under the table's lock: a connection that closed meanwhile has told
        // the switchboard first, so its new peer is orphaned here or removed by its close.
        let accepted = {
            let mut peers = self.lock();
            let current = self.switchboard.kiosk_conn(device_id) == Some(conn);
            if current {
                peers.set_peer(conn, Side::Kiosk, id);
            } else {
                peers.orphan(id);
            }
            current
        };
        self.wake();
        if accepted {
            Ok(answer)
        } else {
            Err(MediaError::NotConnected)
        }
    }

    /// The console's offer: adds (or replaces) its peer and returns the relay's answer.
    pub async fn console_offer(&self, conn: ConnId, sdp: String) -> Result<String, MediaError> {
        let running = self.running()?;
        if !self.switchboard.is_console_open(conn) {
            return Err(MediaError::NotConnected);
        }
        let id = self.new_peer_id();
        let answer = self.answered(running.sfu.add_peer(id, Role::Clerk, sdp).await)?;
        let accepted = {
            let mut peers = self.lock();
            let open = self.switchboard.is_console_open(conn);
            if open {
                peers.set_peer(conn, Side::Console, id);
            } else {
                peers.orphan(id);
            }
            open
        };
        if accepted {
            // This console now receives its clerk's media (it offered last).
            self.switchboard.console_media_up(conn);
        }
        self.wake();
        if accepted {
            Ok(answer)
        } else {
            Err(MediaError::NotConnected)
        }
    }

    fn answered(&self, r: Result<String, SfuError>) -> Result<String, MediaError> {
        match r {
            Ok(a) => {
                inc(&self.metrics.offers_answered);
                Ok(a)
            }
            Err(e) => {
                inc(&self.metrics.offers_failed);
                Err(e.into())
            }
        }
    }

    /// Open the recordings archive and start its retention job; then, when `[media]` is
    /// enabled, start the SFU, the recorder (muxing what a crash left behind first) and the
    /// reconcile task.
    pub async fn start(self: &Arc<Self>, deps: MediaDeps) -> Result<(), MediaError> {
        let config = deps.config.clone();
        let _ = self.turn.set(TurnCredentials::load(&config.turn)?);
        let archive = Arc::new(archive::Archive::open(
            &config,
            deps.recordings.clone(),
            self.metrics.clone(),
        )?);
        if self.archive.set(archive.clone()).is_err() {
            return Err(MediaError::Setup {
                what: "starting media",
                detail: "already started".into(),
            });
        }
        deps.tasks.spawn(archive::retention(
            archive.clone(),
            deps.clock.clone(),
            deps.shutdown.clone(),
        ));
        if !config.media.enabled {
            return Ok(());
        }
        let m = &config.media;
        let (sfu, events) = SfuHandle::bind(crate::sfu::SfuDriverConfig {
            bind: m.udp_listen,
            advertised_ip: m.advertised_ip,
            max_peers: m.max_peers,
            ..crate::sfu::SfuDriverConfig::default()
        })
        .await?;
        tracing::info!(
            udp = %sfu.local_addr(),
            candidate = %sfu.candidate(),
            recording = archive.recorder().is_some(),
            "media (SFU) listening"
        );
        deps.metrics
            .register_collector(Box::new(collector::MediaCollector {
                sfu: sfu.metrics(),
                recorder: archive.recorder().map(Recorder::metrics),
                service: self.metrics.clone(),
            }));
        // Dumps left by a crash are listed before any new recording can begin.
        let leftovers = archive.leftovers();
        let _ = self.running.set(Running { sfu: sfu.clone() });
        deps.tasks.spawn(archive::recover(
            archive.clone(),
            leftovers,
            deps.clock.clone(),
        ));
        deps.tasks.spawn(reconcile::run(
            self.clone(),
            self.switchboard.clone(),
            sfu,
            events,
            archive,
            deps.clock,
            deps.shutdown,
        ));
        Ok(())
    }
}

impl SessionObserver for MediaService {
    fn session_changed(&self, _change: &SessionChange) {
        self.wake();
    }

    fn media_routes_changed(&self) {
        self.wake();
    }
}
