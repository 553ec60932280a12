//! Shared state of the HTTP layer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::Config;
use crate::media::MediaService;
use crate::metrics::Metrics;
use crate::queue::QueueHub;
use crate::session::links::Links;
use crate::session::{Observers, SessionObserver};
use crate::store::Store;
use crate::store::recordings::RecordingStore;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub hub: Arc<QueueHub>,
    /// Live connections and device-command routing.
    pub links: Arc<Links>,
    /// SFU peers, session media and recordings (idle until started).
    pub media: Arc<MediaService>,
    /// Recordings' metadata and access audit (see [`AppState::with_recordings`]).
    pub recordings: Arc<dyn RecordingStore>,
    /// Case materials (ID card reads, document pages, snapshots), encrypted at rest.
    pub cases: crate::cases::Cases,
    /// 好差评: evaluations, their forwarding and follow-ups (idle until started).
    pub evaluations: Arc<crate::evaluation::Evaluations>,
    /// 远程受理柜台维护, kiosk health and inspection records (see [`AppState::with_registry`]).
    pub registry: Arc<crate::registry::Registry>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    /// One permit per open WebSocket connection.
    pub connections: Arc<Semaphore>,
    /// Cancelled when the relay shuts down: long-lived connections close politely.
    pub shutdown: CancellationToken,
    pub(crate) login_failures: Arc<Mutex<RateWindow>>,
    pub(crate) presence: Arc<Mutex<HashMap<String, usize>>>,
    /// The live connection of each kiosk; a new one replaces the old.
    pub(crate) kiosks: Arc<Mutex<HashMap<String, (u64, CancellationToken)>>>,
}

impl AppState {
    pub fn new(
        config: Arc<Config>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let links = Arc::new(Links::new());
        let media = Arc::new(MediaService::new());
        let evaluations = Arc::new(crate::evaluation::Evaluations::new());
        let observers = Observers::new(vec![
            links.clone() as Arc<dyn SessionObserver>,
            media.clone() as Arc<dyn SessionObserver>,
            evaluations.clone() as Arc<dyn SessionObserver>,
        ]);
        let hub = Arc::new(QueueHub::new(
            store.clone(),
            clock.clone(),
            config.queue.to_core(),
            metrics.clone(),
            Arc::new(observers),
        ));
        let cases = crate::cases::Cases::start(config.clone(), clock.clone());
        cases.register_metrics(&metrics);
        Self {
            cases,
            links,
            registry: Arc::new(crate::registry::Registry::unattached()),
            media,
            evaluations,
            recordings: Arc::new(crate::store::recordings::NoRecordings),
            connections: Arc::new(Semaphore::new(config.limits.max_connections)),
            config,
            store,
            hub,
            metrics,
            clock,
            shutdown: CancellationToken::new(),
            login_failures: Arc::new(Mutex::new(RateWindow::default())),
            presence: Arc::new(Mutex::new(HashMap::new())),
            kiosks: Arc::new(Mutex::new(HashMap::new())),
        }
    }
}

impl AppState {
    /// Where recordings' metadata is kept (the relay's store); without it the recordings
    /// routes answer with an error.
    pub fn with_recordings(mut self, recordings: Arc<dyn RecordingStore>) -> Self {
        self.recordings = recordings;
        self
    }
}

impl AppState {
    /// Attaches the registry (its store and division list); without it the registry and
    /// operations routes answer with an error. Its counters join `/metrics`.
    pub fn with_registry(mut self, registry: crate::registry::Registry) -> Self {
        let registry = Arc::new(registry);
        self.metrics
            .register_collector(Box::new(crate::registry::MetricsCollector(
                registry.clone(),
            )));
        self.registry = registry;
        self
    }
}

/// Counts events per key within the current minute; bounded in size.
#[derive(Debug, Default)]
pub(crate) struct RateWindow {
    minute: i64,
    counts: HashMap<String, u32>,
}

impl RateWindow {
    const MAX_KEYS: usize = 10_000;

    pub(crate) fn count(&mut self, key: &str, now_ms: i64) -> u32 {
        self.roll(now_ms);
        self.counts.get(key).copied().unwrap_or(0)
    }

    pub(crate) fn add(&mut self, key: &str, now_ms: i64) {
        self.roll(now_ms);
        if self.counts.len() >= Self::MAX_KEYS && !self.counts.contains_key(key) {
            // Under a flood of distinct names, forget the oldest minute early rather than grow.
            self.counts.clear();
        }
        *self.counts.entry(key.to_owned()).or_insert(0) += 1;
    }

    fn roll(&mut self, now_ms: i64) {
        let minute = now_ms.div_euclid(60_000);
        if minute != self.minute {
            self.minute = minute;
            self.counts.clear();
        }
    }
}
