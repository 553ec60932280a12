//! Prometheus metrics of the relay, served as text at `/metrics`.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use protocol::control::ErrorCode;
use protocol::queue::TicketChannel;

type Labels = Vec<(&'static str, String)>;

/// Which kind of client a connection belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    Kiosk,
    Clerk,
    TicketMachine,
}

impl ClientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Kiosk => "kiosk",
            ClientKind::Clerk => "clerk",
            ClientKind::TicketMachine => "ticket_machine",
        }
    }
}

/// Counters another module keeps, read when `/metrics` is scraped: `read` gives each counter's
/// (name, help, value).
pub struct SnapshotCounters<F> {
    what: &'static str,
    read: F,
}

impl<F> SnapshotCounters<F>
where
    F: Fn() -> Vec<(&'static str, &'static str, u64)> + Send + Sync + 'static,
{
    pub fn new(what: &'static str, read: F) -> Box<Self> {
        Box::new(SnapshotCounters { what, read })
    }
}

impl<F> std::fmt::Debug for SnapshotCounters<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.what)
    }
}

impl<F> Collector for SnapshotCounters<F>
where
    F: Fn() -> Vec<(&'static str, &'static str, u64)> + Send + Sync + 'static,
{
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        for (name, help, value) in (self.read)() {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}

pub struct Metrics {
    registry: Registry,
    connections: Family<Labels, Gauge>,
    connections_total: Family<Labels, Counter>,
    protocol_errors: Family<Labels, Counter>,
    auth_failures: Family<Labels, Counter>,
    queue_waiting: Family<Labels, Gauge>,
    queue_ops: Family<Labels, Counter>,
    queue_op_seconds: Histogram,
    ticket_wait_seconds: Family<Labels, Histogram>,
    pub store_errors: Counter,
    pub kiosk_updates_dropped: Counter<u64, AtomicU64>,
    /// WebSocket upgrades refused because their address held its pending (unauthenticated)
    /// slots, or all were taken.
    pub pending_refused: Counter<u64, AtomicU64>,
    /// Collectors registered after start-up (the media service's SFU and recorder counters).
    late: std::sync::Mutex<Registry>,
}

fn wait_histogram() -> Histogram {
    Histogram::new([
        30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
    ])
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("relay");
        let connections = Family::<Labels, Gauge>::default();
        let connections_total = Family::<Labels, Counter>::default();
        let protocol_errors = Family::<Labels, Counter>::default();
        let auth_failures = Family::<Labels, Counter>::default();
        let queue_waiting = Family::<Labels, Gauge>::default();
        let queue_ops = Family::<Labels, Counter>::default();
        let queue_op_seconds =
            Histogram::new([0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5]);
        let ticket_wait_seconds =
            Family::<Labels, Histogram>::new_with_constructor(wait_histogram as fn() -> Histogram);
        let store_errors = Counter::default();
        let kiosk_updates_dropped = Counter::default();
        registry.register(
            "connections",
            "Open WebSocket connections",
            connections.clone(),
        );
        registry.register(
            "connections_opened",
            "WebSocket connections accepted",
            connections_total.clone(),
        );
        registry.register(
            "protocol_errors",
            "Malformed, unknown or refused control messages",
            protocol_errors.clone(),
        );
        registry.register(
            "auth_failures",
            "Failed logins and device authentications",
            auth_failures.clone(),
        );
        registry.register(
            "queue_waiting",
            "Tickets waiting, per centre and channel",
            queue_waiting.clone(),
        );
        registry.register(
            "queue_ops",
            "Queue operations by outcome",
            queue_ops.clone(),
        );
        registry.register(
            "queue_op_seconds",
            "Time to decide, store and apply a queue operation",
            queue_op_seconds.clone(),
        );
        registry.register(
            "ticket_wait_seconds",
            "Waiting time from ticket to first call",
            ticket_wait_seconds.clone(),
        );
        registry.register(
            "store_errors",
            "Failed writes to the store",
            store_errors.clone(),
        );
        registry.register(
            "kiosk_updates_dropped",
            "Kiosk status updates replaced by a newer one before they were sent",
            kiosk_updates_dropped.clone(),
        );
        let pending_refused = Counter::<u64, AtomicU64>::default();
        registry.register(
            "pending_refused",
            "Connections refused before authentication: their address, or everyone, held too many unauthenticated ones",
            pending_refused.clone(),
        );
        Self {
            pending_refused,
            registry,
            connections,
            connections_total,
            protocol_errors,
            auth_failures,
            queue_waiting,
            queue_ops,
            queue_op_seconds,
            ticket_wait_seconds,
            store_errors,
            kiosk_updates_dropped,
            late: std::sync::Mutex::new(Registry::with_prefix("relay")),
        }
    }

    /// Adds metrics read at scrape time by another module.
    pub fn register_collector(&self, collector: Box<dyn Collector>) {
        if let Ok(mut late) = self.late.lock() {
            late.register_collector(collector);
        }
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode_registry(&mut out, &self.registry);
        if let Ok(late) = self.late.lock() {
            let _ = encode_registry(&mut out, &late);
        }
        let _ = encode_eof(&mut out);
        out
    }

    pub fn connection_opened(&self, kind: ClientKind) {
        let labels = vec![("kind", kind.as_str().to_owned())];
        self.connections.get_or_create(&labels).inc();
        self.connections_total.get_or_create(&labels).inc();
    }

    pub fn connection_closed(&self, kind: ClientKind) {
        self.connections
            .get_or_create(&vec![("kind", kind.as_str().to_owned())])
            .dec();
    }

    pub fn protocol_error(&self, kind: ClientKind, code: ErrorCode) {
        let code = serde_json::to_value(code)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        self.protocol_errors
            .get_or_create(&vec![("kind", kind.as_str().to_owned()), ("code", code)])
            .inc();
    }

    pub fn pending_refused(&self) {
        self.pending_refused.inc();
    }

    pub fn auth_failure(&self, kind: ClientKind) {
        self.auth_failures
            .get_or_create(&vec![("kind", kind.as_str().to_owned())])
            .inc();
    }

    pub fn set_waiting(&self, centre: &str, channel: TicketChannel, n: i64) {
        self.queue_waiting
            .get_or_create(&vec![
                ("centre", centre.to_owned()),
                ("channel", channel_label(channel).to_owned()),
            ])
            .set(n);
    }

    pub fn observe_queue_op(&self, op: &'static str, outcome: &'static str, took: Duration) {
        self.queue_ops
            .get_or_create(&vec![
                ("op", op.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
        self.queue_op_seconds.observe(took.as_secs_f64());
    }

    pub fn observe_wait(&self, channel: TicketChannel, seconds: i64) {
        self.ticket_wait_seconds
            .get_or_create(&vec![("channel", channel_label(channel).to_owned())])
            .observe(seconds as f64);
    }
}

fn channel_label(c: TicketChannel) -> &'static str {
    match c {
        TicketChannel::OnSite => "on_site",
        TicketChannel::Remote => "remote",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_labels() {
        let m = Metrics::new();
        m.connection_opened(ClientKind::Kiosk);
        m.protocol_error(ClientKind::Clerk, ErrorCode::BadMessage);
        m.set_waiting("c1", TicketChannel::Remote, 3);
        let text = m.render();
        assert!(
            text.contains("relay_connections{kind=\"kiosk\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("relay_protocol_errors_total{kind=\"clerk\",code=\"bad_message\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("relay_queue_waiting{centre=\"c1\",channel=\"remote\"} 3"),
            "{text}"
        );
    }
}
