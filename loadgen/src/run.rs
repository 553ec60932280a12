//! One step: a fresh server (relay or Janus, recording on or off) with N sessions, a warm-up,
//! a measurement window, and the figures of that window.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;

use crate::peer::Ctl;
use crate::procstat;
use crate::server::{Clips, Started};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Relay,
    Janus,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Relay => "relay",
            Target::Janus => "janus",
        }
    }
}

pub struct StepConfig<'a> {
    pub relay_bin: &'a Path,
    pub janus_bin: &'a Path,
    pub clips: &'a Clips,
    pub warmup: Duration,
    pub seconds: Duration,
    pub threads: usize,
    pub ip: std::net::IpAddr,
}

/// Everything one step reports. Times in ms unless named otherwise.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub target: Target,
    pub recording: bool,
    pub sessions: usize,
    /// Which attempt at this step (1 = first).
    pub attempt: u32,
    pub error: Option<String>,
    pub seconds: f64,
    pub server_cpu_seconds: f64,
    pub server_cores: f64,
    /// RTP packets that reached a viewer, stamped inside the window.
    pub forwarded_packets: u64,
    pub forwarded_per_second: f64,
    pub us_cpu_per_forwarded_packet: f64,
    /// The relay's own `relay_sfu_rtp_forwarded_total` over the window (relay only).
    pub server_counted_forwarded: Option<u64>,
    pub sent_packets: u64,
    pub loss_percent: f64,
    pub delay_ms_p50: f64,
    pub delay_ms_p99: f64,
    pub delay_ms_max: f64,
    pub keyframe_delay_ms_p50: f64,
    pub keyframe_delay_ms_p95: f64,
    pub keyframe_delay_ms_max: f64,
    /// Received video streams that saw their first keyframe after the join, of those expected.
    pub keyframes_seen: usize,
    pub keyframes_expected: usize,
    pub keyframe_requests_at_sources: u64,
    pub server_rss_mib: f64,
    pub generator_cores: f64,
    pub generator_lag_ms_p99: f64,
    pub generator_send_errors: u64,
    pub generator_bound: bool,
    pub machine_busy_percent: f64,
    pub loadavg_before: [f64; 3],
    pub loadavg_after: [f64; 3],
    pub passes: bool,
}

impl StepResult {
    fn failed(target: Target, recording: bool, sessions: usize, error: String) -> Self {
        Self {
            target,
            recording,
            sessions,
            attempt: 1,
            error: Some(error),
            seconds: 0.0,
            server_cpu_seconds: 0.0,
            server_cores: 0.0,
            forwarded_packets: 0,
            forwarded_per_second: 0.0,
            us_cpu_per_forwarded_packet: f64::NAN,
            server_counted_forwarded: None,
            sent_packets: 0,
            loss_percent: f64::NAN,
            delay_ms_p50: f64::NAN,
            delay_ms_p99: f64::NAN,
            delay_ms_max: f64::NAN,
            keyframe_delay_ms_p50: f64::NAN,
            keyframe_delay_ms_p95: f64::NAN,
            keyframe_delay_ms_max: f64::NAN,
            keyframes_seen: 0,
            keyframes_expected: 0,
            keyframe_requests_at_sources: 0,
            server_rss_mib: f64::NAN,
            generator_cores: f64::NAN,
            generator_lag_ms_p99: f64::NAN,
            generator_send_errors: 0,
            generator_bound: false,
            machine_busy_percent: f64::NAN,
            loadavg_before: procstat::loadavg(),
            loadavg_after: procstat::loadavg(),
            passes: false,
        }
    }
}

impl StepResult {
    /// One line for the console.
    pub fn summary(&self) -> String {
        format!(
            "{:.3} cores, {:.2} µs/pkt, {:.0} pkt/s, loss {:.3}%, p50/p99 {:.2}/{:.2} ms, kf {:.0} ms, rss {:.0} MiB, gen {:.2} cores lag p99 {:.2} ms, busy {:.0}%{}",
            self.server_cores,
            self.us_cpu_per_forwarded_packet,
            self.forwarded_per_second,
            self.loss_percent,
            self.delay_ms_p50,
            self.delay_ms_p99,
            self.keyframe_delay_ms_p50,
            self.server_rss_mib,
            self.generator_cores,
            self.generator_lag_ms_p99,
            self.machine_busy_percent,
            self.error
                .as_deref()
                .map(|e| format!(" ERROR {e}"))
                .unwrap_or_default()
        )
    }
}

/// Loss below 0.5 % and forwarding delay p99 below 50 ms.
pub const MAX_LOSS_PERCENT: f64 = 0.5;
pub const MAX_P99_MS: f64 = 50.0;

pub fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted_us.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted_us[i.min(sorted_us.len() - 1)]) / 1000.0
}

pub async fn step(
    cfg: &StepConfig<'_>,
    target: Target,
    sessions: usize,
    record: bool,
) -> StepResult {
    let ctl = Ctl::new(sessions, cfg.ip);
    let started = match target {
        Target::Relay => {
            crate::relay::start(cfg.relay_bin, sessions, record, cfg.clips, &ctl).await
        }
        Target::Janus => {
            crate::janus::start(cfg.janus_bin, sessions, record, cfg.clips, &ctl).await
        }
    };
    let started = match started {
        Ok(s) => s,
        Err(e) => {
            ctl.stop.store(true, Ordering::Relaxed);
            return StepResult::failed(target, record, sessions, format!("{e:#}"));
        }
    };
    let Started {
        server,
        peers,
        drains,
    } = started;
    tokio::time::sleep(cfg.warmup).await;

    let pid = server.pid();
    let me = std::process::id();
    let loadavg_before = procstat::loadavg();
    let fwd0 = match &server.metrics_url {
        Some(u) => crate::relay::forwarded_counter(u).await,
        None => None,
    };
    let t0 = ctl.now_us();
    ctl.set_window(t0, t0 + cfg.seconds.as_micros() as u64);
    let (cpu0, gen0, busy0) = (
        procstat::cpu_time(pid),
        procstat::cpu_time(me),
        procstat::machine_busy_ticks(),
    );
    tokio::time::sleep(cfg.seconds).await;
    let (cpu1, gen1, busy1) = (
        procstat::cpu_time(pid),
        procstat::cpu_time(me),
        procstat::machine_busy_ticks(),
    );
    let elapsed = (ctl.now_us() - t0) as f64 / 1e6;
    let rss = procstat::rss_kib(pid).map_or(f64::NAN, |k| k as f64 / 1024.0);
    let fwd1 = match &server.metrics_url {
        Some(u) => crate::relay::forwarded_counter(u).await,
        None => None,
    };
    // Packets stamped at the end of the window are still on their way.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let loadavg_after = procstat::loadavg();
    ctl.stop.store(true, Ordering::Relaxed);
    let mut reports = Vec::new();
    for p in peers {
        if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(10), p).await {
            reports.push(r);
        }
    }
    for d in drains {
        d.abort();
    }
    drop(server);

    let sent: u64 = reports.iter().flat_map(|r| r.sent.values()).sum();
    let received: u64 = reports.iter().flat_map(|r| r.received.values()).sum();
    let mut delays: Vec<u32> = reports
        .iter()
        .flat_map(|r| r.delays_us.iter().copied())
        .collect();
    delays.sort_unstable();
    let mut lag: Vec<u32> = reports
        .iter()
        .flat_map(|r| r.lag_us.iter().copied())
        .collect();
    lag.sort_unstable();
    let mut kf: Vec<u32> = reports
        .iter()
        .flat_map(|r| {
            r.keyframe_delays_us
                .iter()
                .map(|&d| d.min(u64::from(u32::MAX)) as u32)
        })
        .collect();
    kf.sort_unstable();
    let server_cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => (b - a).as_secs_f64(),
        _ => f64::NAN,
    };
    let gen_cpu = match (gen0, gen1) {
        (Some(a), Some(b)) => (b - a).as_secs_f64(),
        _ => f64::NAN,
    };
    let busy = match (busy0, busy1) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => (b1 - b0) as f64 * 100.0 / (t1 - t0) as f64,
        _ => f64::NAN,
    };
    let loss = if sent == 0 {
        f64::NAN
    } else {
        (sent.saturating_sub(received)) as f64 * 100.0 / sent as f64
    };
    let generator_cores = gen_cpu / elapsed;
    let lag_p99 = percentile_ms(&lag, 0.99);
    // The generator is the bottleneck when it has no CPU left or sends late.
    let generator_bound = generator_cores > 0.9 * cfg.threads as f64 || lag_p99 > 10.0;
    let delay_p99 = percentile_ms(&delays, 0.99);
    let passes = sent > 0 && loss < MAX_LOSS_PERCENT && delay_p99 < MAX_P99_MS;
    StepResult {
        target,
        recording: record,
        sessions,
        attempt: 1,
        error: None,
        seconds: elapsed,
        server_cpu_seconds: server_cpu,
        server_cores: server_cpu / elapsed,
        forwarded_packets: received,
        forwarded_per_second: received as f64 / elapsed,
        us_cpu_per_forwarded_packet: server_cpu * 1e6 / received.max(1) as f64,
        server_counted_forwarded: fwd0.zip(fwd1).map(|(a, b)| b.saturating_sub(a)),
        sent_packets: sent,
        loss_percent: loss,
        delay_ms_p50: percentile_ms(&delays, 0.5),
        delay_ms_p99: delay_p99,
        delay_ms_max: delays.last().map_or(f64::NAN, |d| f64::from(*d) / 1000.0),
        keyframe_delay_ms_p50: percentile_ms(&kf, 0.5),
        keyframe_delay_ms_p95: percentile_ms(&kf, 0.95),
        keyframe_delay_ms_max: kf.last().map_or(f64::NAN, |d| f64::from(*d) / 1000.0),
        keyframes_seen: kf.len(),
        keyframes_expected: 2 * sessions,
        keyframe_requests_at_sources: reports.iter().map(|r| r.keyframe_requests).sum(),
        server_rss_mib: rss,
        generator_cores,
        generator_lag_ms_p99: lag_p99,
        generator_send_errors: reports.iter().map(|r| r.send_errors).sum(),
        generator_bound,
        machine_busy_percent: busy,
        loadavg_before,
        loadavg_after,
        passes,
    }
}

/// Where the relay binary sits next to this one (both built by `cargo build --release`).
pub fn sibling_binary(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}
