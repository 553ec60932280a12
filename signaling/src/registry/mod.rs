//! The registry of remote counters (远程受理柜台维护), kiosk health and inspection records.
//!
//! What it does:
//! - keeps every remote device at an extension point with all fields of the city's three forms
//!   (`fields`, validated by `rules` against the division list in `divisions`), through its
//!   lifecycle application → activation → change → closure (`lifecycle`, sans-IO; `service`
//!   checks, decides, commits and counts one step), with who, when and why, and every change
//!   as before/after pairs;
//! - writes what the queue and the kiosk handshake read (`extension_points`, `devices`) in the
//!   same transaction: a point joins the queue only when activated, where its kiosk's
//!   credential is issued, and a closed point's kiosks are refused ([`admits_kiosks`]);
//! - exports the forms (attachments 1–3) as CSV and XLSX (`exports`, `xlsx`) and lists open
//!   points publicly (`public`);
//! - records the kiosks' device statuses and their inspection records, shows health
//!   (`health`) and raises alerts to a webhook (`alerts` sans-IO, `alert_task` its driver).
//!
//! What it does not do: decide who may call (the `http::registry` routes check roles and
//! scope), or talk to kiosks (the kiosk connection taps [`health::observe`]).

pub mod alert_task;
pub mod alerts;
pub mod cli;
pub mod config;
pub mod divisions;
pub mod exports;
pub mod fields;
pub mod health;
pub mod inspections;
pub mod lifecycle;
pub mod public;
pub mod rules;
pub mod service;
pub mod xlsx;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::domain::ExtensionPoint;
use crate::store::registry::{NoRegistry, RegistryStore};
use divisions::Divisions;

/// The registry's state in the relay: its store, the division list, and its statistics.
pub struct Registry {
    pub store: Arc<dyn RegistryStore>,
    pub divisions: Divisions,
    pub stats: Stats,
}

impl Registry {
    pub fn new(store: Arc<dyn RegistryStore>, divisions: Divisions) -> Self {
        Self {
            store,
            divisions,
            stats: Stats::default(),
        }
    }

    /// No store attached yet: every registry route answers with an internal error.
    pub fn unattached() -> Self {
        Self::new(Arc::new(NoRegistry), Divisions::builtin())
    }
}

/// Whether kiosks of this point may connect: only while it is active. A point the registry
/// closed (`status = 'closed'`) refuses them even if a device credential survived.
pub fn admits_kiosks(point: &ExtensionPoint) -> bool {
    point.status == "active"
}

/// What the registry counted since start-up (shown at `/metrics`).
#[derive(Debug, Default)]
pub struct Stats {
    /// Forms refused for invalid fields.
    pub invalid_forms: AtomicU64,
    /// Requests refused for role or scope.
    pub denied: AtomicU64,
    /// Lifecycle steps stored.
    pub commits: AtomicU64,
    pub inspections_received: AtomicU64,
    /// Inspection uploads refused (bad body or limits).
    pub inspections_refused: AtomicU64,
    /// Status changes recorded from kiosks.
    pub status_changes: AtomicU64,
    /// Status changes that could not be stored.
    pub status_errors: AtomicU64,
    pub alerts_raised: AtomicU64,
    pub alerts_cleared: AtomicU64,
    pub webhook_delivered: AtomicU64,
    pub webhook_failed_attempts: AtomicU64,
    pub webhook_gave_up: AtomicU64,
    pub webhook_dropped: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn inc(counter: &AtomicU64) {
        Self::add(counter, 1);
    }

    /// `(name, help, value)` of each counter, for the metrics endpoint.
    pub fn snapshot(&self) -> Vec<(&'static str, &'static str, u64)> {
        let v = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            (
                "registry_invalid_forms",
                "Registry forms refused for invalid fields",
                v(&self.invalid_forms),
            ),
            (
                "registry_denied",
                "Registry and operations requests refused for role or scope",
                v(&self.denied),
            ),
            (
                "registry_commits",
                "Registry lifecycle steps stored",
                v(&self.commits),
            ),
            (
                "inspections_received",
                "Inspection records received from kiosks",
                v(&self.inspections_received),
            ),
            (
                "inspections_refused",
                "Inspection uploads refused",
                v(&self.inspections_refused),
            ),
            (
                "device_status_changes",
                "Device status changes recorded from kiosks",
                v(&self.status_changes),
            ),
            (
                "device_status_errors",
                "Device status changes that could not be stored",
                v(&self.status_errors),
            ),
            (
                "health_alerts_raised",
                "Health alerts raised",
                v(&self.alerts_raised),
            ),
            (
                "health_alerts_cleared",
                "Health alerts cleared",
                v(&self.alerts_cleared),
            ),
            (
                "alert_webhook_delivered",
                "Alerts delivered to the webhook",
                v(&self.webhook_delivered),
            ),
            (
                "alert_webhook_failed_attempts",
                "Failed webhook attempts",
                v(&self.webhook_failed_attempts),
            ),
            (
                "alert_webhook_gave_up",
                "Alerts given up after the last retry",
                v(&self.webhook_gave_up),
            ),
            (
                "alert_webhook_dropped",
                "Alerts dropped because the outbox was full",
                v(&self.webhook_dropped),
            ),
        ]
    }
}

/// Puts the registry's [`Stats`] on `/metrics`.
pub struct MetricsCollector(pub Arc<Registry>);

impl std::fmt::Debug for MetricsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("registry statistics")
    }
}

impl prometheus_client::collector::Collector for MetricsCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        for (name, help, value) in self.0.stats.snapshot() {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}
