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
use crate::session::Switchboard;
use crate::store::Store;
use crate::store::recordings::RecordingStore;

/// Handles to the relay's services, shared by every request handler. Built only by
/// [`crate::relay::Relay::start`].
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub hub: Arc<QueueHub>,
    /// Live connections, served sessions, device-command and media routing.
    pub switchboard: Arc<Switchboard>,
    /// SFU peers, session media and recordings.
    pub media: Arc<MediaService>,
    /// Recordings' metadata and access audit.
    pub recordings: Arc<dyn RecordingStore>,
    /// Case materials (ID card reads, document pages, snapshots), encrypted at rest.
    pub cases: crate::cases::Cases,
    /// 好差评: evaluations, their forwarding and follow-ups.
    pub evaluations: Arc<crate::evaluation::Evaluations>,
    /// 远程受理柜台维护, kiosk health and inspection records.
    pub registry: Arc<crate::registry::Registry>,
    /// Staff profiles (岗位、工号、照片) shown to residents.
    pub staff: Arc<dyn crate::store::staff_profile::StaffProfileStore>,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    /// One permit per open WebSocket connection.
    pub connections: Arc<Semaphore>,
    /// Cancelled when the relay shuts down: long-lived connections close politely.
    pub shutdown: CancellationToken,
    pub(crate) login_failures: Arc<Mutex<RateWindow>>,
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
