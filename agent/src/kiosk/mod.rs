//! The kiosk screen: a local web app for the resident, served by the agent on its loopback
//! address and shown by Chromium in kiosk mode (`deploy/kiosk/`).
//!
//! - The page (`agent/web/kiosk/`, compiled into the binary by [`assets`]) gets the kiosk's
//!   live state as server-sent events from the link's `KioskState` watch and the devices'
//!   screen state (`GET /kiosk/events`), and acts through the local API (`/api/ticket`,
//!   `/api/prompt/answer`) and [`http`] (`/kiosk/api/evaluation`).
//! - [`flow`] decides when a served ticket is to be evaluated; the driver here records an
//!   unanswered request as unrated when its time runs out.
//! - [`outbox`] keeps every evaluation on disk before the resident sees "thank you", and
//!   delivers it to the relay at least once.
//!
//! What it does not do: video (the media work fills `#clerk-video` and `#self-view` through
//! `agent/web/kiosk/media.js`) and devices (it shows what `devices::activity` publishes).

pub mod appointments;
pub mod assets;
pub mod config;
pub mod flow;
pub mod http;
pub mod outbox;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use protocol::control::{CentreInfo, ExtensionPointInfo, KioskEvaluation};
use protocol::queue::CategoryView;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::devices::activity::KioskScreen;
use crate::link::control::{KioskState, Link};

pub use self::config::KioskConfig;
use self::flow::{AwaitedEvaluation, Flow};
use self::outbox::{Outbox, OutboxError, Recorded};

/// A tap may arrive this long after the screen's countdown ended and still count.
const ANSWER_GRACE_MS: i64 = 3_000;
/// The point's details as last heard from the relay, for the offline screen after a restart.
const POINT_CACHE: &str = "kiosk-point.json";

/// What the kiosk last heard from the relay about its place, kept across restarts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PointCache {
    pub centre: Option<CentreInfo>,
    pub extension_point: Option<ExtensionPointInfo>,
    pub categories: Vec<CategoryView>,
}

#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("没有等待评价的办件 / no service is waiting for an evaluation")]
    NotAwaited,
    #[error("暂时无法保存评价，请再点一次 / the evaluation could not be saved, please tap again")]
    Outbox(#[from] OutboxError),
}

struct Shared {
    config: KioskConfig,
    link: Link,
    screen: Arc<KioskScreen>,
    outbox: Outbox,
    flow: Mutex<Flow>,
    /// Bumped whenever the flow changes, for the event stream.
    flow_changed: watch::Sender<u64>,
    cache: Mutex<PointCache>,
    cache_file: PathBuf,
}

/// A handle to the kiosk screen's service.
#[derive(Clone)]
pub struct Kiosk(Arc<Shared>);

/// A new idempotency key for an evaluation: `ev-` and 32 hex digits.
fn new_evaluation_id() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    format!("ev-{}", hex::encode(bytes))
}

impl Kiosk {
    /// Opens the outbox under `data_dir` and starts the screen's driver and the delivery.
    pub async fn start(
        config: KioskConfig,
        data_dir: &std::path::Path,
        link: Link,
        screen: Arc<KioskScreen>,
        shutdown: CancellationToken,
    ) -> Result<Self, OutboxError> {
        let outbox = Outbox::open(data_dir).await?;
        let cache_file = data_dir.join(POINT_CACHE);
        let cache = std::fs::read(&cache_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let kiosk = Kiosk(Arc::new(Shared {
            config,
            link: link.clone(),
            screen,
            outbox: outbox.clone(),
            flow: Mutex::new(Flow::default()),
            flow_changed: watch::Sender::new(0),
            cache: Mutex::new(cache),
            cache_file,
        }));
        tokio::spawn(outbox::deliver(outbox, link, shutdown.clone()));
        tokio::spawn(kiosk.clone().drive(shutdown));
        Ok(kiosk)
    }

    fn flow(&self) -> MutexGuard<'_, Flow> {
        // Plain data: a panic elsewhere while holding it leaves it usable.
        self.0
            .flow
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn config(&self) -> &KioskConfig {
        &self.0.config
    }

    pub fn outbox(&self) -> &Outbox {
        &self.0.outbox
    }

    pub fn link(&self) -> &Link {
        &self.0.link
    }

    pub fn screen(&self) -> &KioskScreen {
        &self.0.screen
    }

    pub fn awaited(&self) -> Option<AwaitedEvaluation> {
        self.flow().awaited().cloned()
    }

    pub fn subscribe_flow(&self) -> watch::Receiver<u64> {
        self.0.flow_changed.subscribe()
    }

    pub fn point_cache(&self) -> PointCache {
        self.0.cache.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn bump(&self) {
        self.0.flow_changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Relay time: local time corrected by the offset the link measured.
    pub fn now_ms(&self) -> i64 {
        crate::clock::now_ms().saturating_add(self.0.link.state().borrow().clock_offset_ms)
    }

    /// The resident's answer for the awaited evaluation of `ticket_id`; returns once it is
    /// on disk.
    pub async fn answer(
        &self,
        ticket_id: &str,
        level: protocol::control::EvaluationLevel,
        reasons: Vec<String>,
    ) -> Result<(), AnswerError> {
        let Some(awaited) = self.flow().answer(ticket_id) else {
            return Err(AnswerError::NotAwaited);
        };
        self.bump();
        let evaluation = KioskEvaluation {
            evaluation_id: new_evaluation_id(),
            ticket_id: awaited.ticket_id.clone(),
            level: Some(level),
            reasons,
            evaluated_ms: self.now_ms(),
        };
        match self.0.outbox.record(&evaluation).await {
            Ok(_) => {
                info!(ticket = %awaited.number, level = level.score(), "evaluation recorded");
                Ok(())
            }
            Err(e) => {
                warn!(error = %e, "recording an evaluation failed");
                self.flow().restore(awaited);
                self.bump();
                Err(e.into())
            }
        }
    }

    async fn record_unrated(&self, awaited: AwaitedEvaluation) {
        let evaluation = KioskEvaluation {
            evaluation_id: new_evaluation_id(),
            ticket_id: awaited.ticket_id.clone(),
            level: None,
            reasons: Vec::new(),
            evaluated_ms: self.now_ms(),
        };
        match self.0.outbox.record(&evaluation).await {
            Ok(Recorded::New) => {
                info!(ticket = %awaited.number, "no answer in time: recorded as unrated")
            }
            Ok(Recorded::AlreadyEvaluated(_)) => {}
            Err(e) => warn!(error = %e, "recording an unrated evaluation failed"),
        }
    }

    /// Follows the kiosk's ticket, ends unanswered evaluation requests, keeps the point cache.
    async fn drive(self, shutdown: CancellationToken) {
        let mut state = self.0.link.state();
        let timeout_ms = i64::try_from(self.0.config.evaluation_timeout_secs.saturating_mul(1000))
            .unwrap_or(i64::MAX);
        loop {
            let snapshot: KioskState = state.borrow_and_update().clone();
            self.keep_point(&snapshot);
            let now = self.now_ms();
            let overtaken = {
                let mut flow = self.flow();
                let before = flow.awaited().cloned();
                let overtaken = flow.observe(snapshot.ticket.as_ref(), now, timeout_ms);
                let expired = flow.expire(now, ANSWER_GRACE_MS);
                let changed = before.as_ref() != flow.awaited();
                (
                    overtaken.into_iter().chain(expired).collect::<Vec<_>>(),
                    changed,
                )
            };
            if overtaken.1 {
                self.bump();
            }
            for a in overtaken.0 {
                self.record_unrated(a).await;
            }
            let wait = self
                .awaited()
                .map(|a| a.deadline_ms + ANSWER_GRACE_MS - self.now_ms())
                .map_or(Duration::from_secs(3600), |ms| {
                    Duration::from_millis(u64::try_from(ms.max(0)).unwrap_or(0) + 10)
                });
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = state.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Remembers the point's details when they change (written atomically; no personal
    /// information in them).
    fn keep_point(&self, s: &KioskState) {
        if s.extension_point.is_none() {
            return;
        }
        let fresh = PointCache {
            centre: s.centre.clone(),
            extension_point: s.extension_point.clone(),
            categories: s.categories.clone(),
        };
        let Ok(mut cache) = self.0.cache.lock() else {
            return;
        };
        if *cache == fresh {
            return;
        }
        *cache = fresh;
        let path = &self.0.cache_file;
        let tmp = path.with_extension("tmp");
        let written = serde_json::to_vec(&*cache)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            warn!(error = %e, "cannot keep the extension point's details for offline use");
        }
    }
}
