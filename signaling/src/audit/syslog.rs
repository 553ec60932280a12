//! Shipping the trail off the host: every row, in order, as one JSON line in an RFC 5424
//! syslog message (facility authpriv, severity notice) to a UDP address or a local Unix
//! datagram socket (`/dev/log`, from where rsyslog or journald forward it).
//!
//! A task tails `audit_log` — so rows written by CLI commands and by store transactions are
//! shipped too — and records how far it got in `audit_shipping`. A send that fails is counted
//! and retried on the next tick; nothing is skipped. At most [`BATCH`] rows go per tick.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{Row, Trail};

/// Rows shipped per tick at most.
pub const BATCH: u32 = 500;
/// authpriv (10) × 8 + notice (5).
const PRI: u32 = 85;

/// `[audit]` in the relay's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    /// Ship every row as a JSON line to syslog: `udp://HOST:PORT` or `unix:///dev/log`.
    /// Empty: not shipped.
    pub syslog: Option<String>,
    /// How often new rows are looked for, in milliseconds.
    pub ship_every_ms: u64,
}

impl Default for AuditSection {
    fn default() -> Self {
        Self {
            syslog: None,
            ship_every_ms: 1000,
        }
    }
}

impl AuditSection {
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if let Some(s) = &self.syslog {
            Target::parse(s).map_err(|m| ("audit.syslog", m))?;
        }
        if self.ship_every_ms == 0 {
            return Err(("audit.ship_every_ms", "must be at least 1".into()));
        }
        Ok(())
    }
}

/// Where the rows go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Udp(SocketAddr),
    Unix(PathBuf),
}

impl Target {
    pub fn parse(s: &str) -> Result<Target, String> {
        if let Some(addr) = s.strip_prefix("udp://") {
            return addr
                .parse()
                .map(Target::Udp)
                .map_err(|e| format!("{s:?}: not an IP address and port: {e}"));
        }
        if let Some(path) = s.strip_prefix("unix://") {
            if path.starts_with('/') {
                return Ok(Target::Unix(PathBuf::from(path)));
            }
            return Err(format!("{s:?}: the socket path must be absolute"));
        }
        Err(format!("{s:?}: use udp://HOST:PORT or unix:///dev/log"))
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct ShipCounters {
    pub shipped: AtomicU64,
    pub failures: AtomicU64,
}

/// The syslog message for one row.
pub fn message(row: &Row, hostname: &str) -> String {
    let ts = chrono::DateTime::from_timestamp_millis(row.at_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| "-".to_string());
    // Serializing a struct of strings and integers cannot fail.
    let json = serde_json::to_string(row).unwrap_or_default();
    format!("<{PRI}>1 {ts} {hostname} rvw-relay - audit - {json}")
}

enum Socket {
    Udp(tokio::net::UdpSocket, SocketAddr),
    Unix(tokio::net::UnixDatagram, PathBuf),
}

impl Socket {
    async fn open(target: &Target) -> std::io::Result<Socket> {
        Ok(match target {
            Target::Udp(addr) => {
                let local: SocketAddr = if addr.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                Socket::Udp(tokio::net::UdpSocket::bind(local).await?, *addr)
            }
            Target::Unix(path) => Socket::Unix(tokio::net::UnixDatagram::unbound()?, path.clone()),
        })
    }

    async fn send(&self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Socket::Udp(s, to) => s.send_to(bytes, to).await.map(|_| ()),
            Socket::Unix(s, to) => s.send_to(bytes, to).await.map(|_| ()),
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_else(|| "-".to_string())
}

/// Ships rows until `shutdown`.
pub async fn run(
    trail: Trail,
    target: Target,
    every: Duration,
    counters: Arc<ShipCounters>,
    shutdown: CancellationToken,
) {
    let host = hostname();
    let mut socket: Option<Socket> = None;
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if socket.is_none() {
            match Socket::open(&target).await {
                Ok(s) => socket = Some(s),
                Err(e) => {
                    counters.failures.fetch_add(1, Ordering::Relaxed);
                    warn!(error = %e, "audit trail: cannot open the syslog socket");
                    continue;
                }
            }
        }
        if let Some(s) = &socket
            && let Err(e) = ship_batch(&trail, s, &host, &counters).await
        {
            counters.failures.fetch_add(1, Ordering::Relaxed);
            warn!(error = %e, "audit trail: shipping to syslog failed; will retry");
            socket = None;
        }
    }
}

async fn ship_batch(
    trail: &Trail,
    socket: &Socket,
    host: &str,
    counters: &ShipCounters,
) -> Result<(), String> {
    let shipped = trail
        .shipped_seq()
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or(0);
    let rows = trail
        .rows_after(shipped, BATCH)
        .await
        .map_err(|e| e.to_string())?;
    let mut last = None;
    let mut result = Ok(());
    for row in &rows {
        if let Err(e) = socket.send(message(row, host).as_bytes()).await {
            result = Err(e.to_string());
            break;
        }
        counters.shipped.fetch_add(1, Ordering::Relaxed);
        last = Some(row.seq);
    }
    if let Some(seq) = last {
        trail
            .set_shipped_seq(seq)
            .await
            .map_err(|e| e.to_string())?;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_bad_ones_say_what_is_expected() {
        assert_eq!(
            Target::parse("udp://127.0.0.1:514"),
            Ok(Target::Udp("127.0.0.1:514".parse().expect("addr")))
        );
        assert_eq!(
            Target::parse("unix:///dev/log"),
            Ok(Target::Unix("/dev/log".into()))
        );
        assert!(Target::parse("tcp://x").is_err());
        assert!(Target::parse("unix://dev/log").is_err());
    }

    #[test]
    fn a_message_is_rfc5424_with_the_row_as_json() {
        let row = Row {
            seq: 7,
            at_ms: 0,
            kind: "login.failed".into(),
            actor: "clerk1".into(),
            source: "203.0.113.9".into(),
            subject: String::new(),
            detail: "a\nb".into(),
            prev_hash: "p".into(),
            hash: "h".into(),
        };
        let m = message(&row, "relay1");
        assert!(m.starts_with("<85>1 1970-01-01T00:00:00.000Z relay1 rvw-relay - audit - {"));
        assert!(!m.contains('\n'), "one line per row: {m}");
        let json = m.split_once(" - audit - ").map(|(_, j)| j).expect("json");
        let back: Row = serde_json::from_str(json).expect("parse");
        assert_eq!(back, row);
    }
}
