//! The report: a markdown table (each figure for the relay and Janus, and relay ÷ Janus), the
//! capacity per server and recording mode, and the same as JSON.

use std::fmt::Write;

use serde_json::{Value, json};

use crate::run::{MAX_LOSS_PERCENT, MAX_P99_MS, StepResult, Target};

fn f(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "–".into()
    }
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "–".into()
    }
}

fn load(l: [f64; 3]) -> String {
    format!("{:.2}", l[0])
}

/// The step's last attempt (the one a ratio compares).
fn is_last_attempt(r: &StepResult, results: &[StepResult]) -> bool {
    !results.iter().any(|o| {
        o.target == r.target
            && o.sessions == r.sessions
            && o.recording == r.recording
            && o.attempt > r.attempt
    })
}

/// Largest N that passed, per (target, recording); with the reason the next step failed.
pub fn capacity(
    results: &[StepResult],
    target: Target,
    recording: bool,
) -> (Option<usize>, String) {
    let mut rows: Vec<&StepResult> = results
        .iter()
        .filter(|r| r.target == target && r.recording == recording)
        .collect();
    rows.sort_by_key(|r| (r.sessions, r.attempt));
    let passed = |n: usize| rows.iter().any(|r| r.sessions == n && r.passes);
    // The first N no attempt passed (its last attempt explains why); capacity is the largest
    // N below it, so a lucky pass above a failure does not count.
    let first_fail = rows
        .iter()
        .filter(|r| !passed(r.sessions) && is_last_attempt(r, results))
        .min_by_key(|r| r.sessions);
    let best = rows
        .iter()
        .filter(|r| r.passes && first_fail.is_none_or(|f| r.sessions < f.sessions))
        .map(|r| r.sessions)
        .max();
    let why = match first_fail {
        None => "held at every step run (capacity is at least this)".into(),
        Some(r) => {
            let mut why = match &r.error {
                Some(e) => format!("N={} failed to set up: {e}", r.sessions),
                None => format!(
                    "N={}: loss {}%, p99 {} ms",
                    r.sessions,
                    f(r.loss_percent, 2),
                    f(r.delay_ms_p99, 1)
                ),
            };
            if r.generator_bound {
                why.push_str(" — the generator was the bottleneck there, so the server's own limit may be higher");
            }
            why
        }
    };
    (best, why)
}

pub fn markdown(results: &[StepResult], header: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{header}\n");
    let _ = writeln!(
        s,
        "| N | rec | server | server CPU (cores) | forwarded pkt/s | µs CPU / fwd pkt | loss % | delay p50 / p99 ms | keyframe after join p50 / p95 / max ms | RSS MiB | gen cores / lag p99 ms | machine busy % | load 1m before → after | pass |"
    );
    let _ = writeln!(
        s,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in results {
        let pass = match (&r.error, r.passes, r.generator_bound) {
            (Some(_), _, _) => "setup failed".to_string(),
            (None, true, false) => "yes".into(),
            (None, true, true) => "yes (gen-bound)".into(),
            (None, false, true) => "no (gen-bound)".into(),
            (None, false, false) => "no".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} / {} | {} / {} / {} ({}/{}) | {} | {} / {} | {} | {} → {} | {} |",
            if r.attempt > 1 {
                format!("{} (attempt {})", r.sessions, r.attempt)
            } else {
                r.sessions.to_string()
            },
            if r.recording { "on" } else { "off" },
            r.target.name(),
            f(r.server_cores, 3),
            f(r.forwarded_per_second, 0),
            f(r.us_cpu_per_forwarded_packet, 2),
            f(r.loss_percent, 3),
            f(r.delay_ms_p50, 2),
            f(r.delay_ms_p99, 2),
            f(r.keyframe_delay_ms_p50, 0),
            f(r.keyframe_delay_ms_p95, 0),
            f(r.keyframe_delay_ms_max, 0),
            r.keyframes_seen,
            r.keyframes_expected,
            f(r.server_rss_mib, 1),
            f(r.generator_cores, 2),
            f(r.generator_lag_ms_p99, 2),
            f(r.machine_busy_percent, 0),
            load(r.loadavg_before),
            load(r.loadavg_after),
            pass
        );
    }
    let _ = writeln!(
        s,
        "\n**Relay ÷ Janus** (same N, same recording mode, same run):\n"
    );
    let _ = writeln!(
        s,
        "| N | rec | µs CPU / fwd pkt | server CPU | delay p50 | delay p99 | keyframe p50 | RSS |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for r in results
        .iter()
        .filter(|r| r.target == Target::Relay && is_last_attempt(r, results))
    {
        let Some(j) = results.iter().find(|j| {
            j.target == Target::Janus
                && j.sessions == r.sessions
                && j.recording == r.recording
                && is_last_attempt(j, results)
        }) else {
            continue;
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.sessions,
            if r.recording { "on" } else { "off" },
            ratio(r.us_cpu_per_forwarded_packet, j.us_cpu_per_forwarded_packet),
            ratio(r.server_cores, j.server_cores),
            ratio(r.delay_ms_p50, j.delay_ms_p50),
            ratio(r.delay_ms_p99, j.delay_ms_p99),
            ratio(r.keyframe_delay_ms_p50, j.keyframe_delay_ms_p50),
            ratio(r.server_rss_mib, j.server_rss_mib),
        );
    }
    let _ = writeln!(
        s,
        "\n**Capacity** (largest N with loss < {MAX_LOSS_PERCENT}% and delay p99 < {MAX_P99_MS} ms, among the steps run):\n"
    );
    for target in [Target::Relay, Target::Janus] {
        for rec in [false, true] {
            if !results
                .iter()
                .any(|r| r.target == target && r.recording == rec)
            {
                continue;
            }
            let (best, why) = capacity(results, target, rec);
            let _ = writeln!(
                s,
                "- {} recording {}: **{}** — {}",
                target.name(),
                if rec { "on" } else { "off" },
                best.map_or("none".into(), |b| b.to_string()),
                why
            );
        }
    }
    let errors: Vec<&StepResult> = results.iter().filter(|r| r.error.is_some()).collect();
    if !errors.is_empty() {
        let _ = writeln!(s, "\nSetup failures:\n");
        for r in errors {
            let _ = writeln!(
                s,
                "- {} N={} rec {}: {}",
                r.target.name(),
                r.sessions,
                if r.recording { "on" } else { "off" },
                r.error.as_deref().unwrap_or_default()
            );
        }
    }
    s
}

pub fn json(results: &[StepResult], meta: Value) -> Value {
    let caps: Vec<Value> = [Target::Relay, Target::Janus]
        .into_iter()
        .flat_map(|t| [false, true].map(move |rec| (t, rec)))
        .filter(|(t, rec)| {
            results
                .iter()
                .any(|r| r.target == *t && r.recording == *rec)
        })
        .map(|(t, rec)| {
            let (best, why) = capacity(results, t, rec);
            json!({"target": t.name(), "recording": rec, "capacity_sessions": best, "limit": why})
        })
        .collect();
    json!({"meta": meta, "steps": results, "capacity": caps})
}
