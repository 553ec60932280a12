//! Queue benchmarks (not part of `cargo test`): `cargo bench -p signaling --bench queue`.
//!
//! 1. The queue core alone: "call next" (decide + apply) at a centre with 50 windows and 5,000
//!    waiting tickets, and the per-step recomputation of every waiting ticket's position.
//! 2. The real `relay` process on loopback with 500 connected kiosks (one remote ticket each)
//!    and 4,500 on-site tickets: from a clerk's "call next" on the WebSocket to the moment every
//!    affected kiosk has received its status update; and the relay's resident memory.
//!
//! Prints a table and writes `target/bench-queue.json`. Options (environment):
//! `BENCH_KIOSKS` (500), `BENCH_TICKETS` (5000), `BENCH_CALLS` (200), `BENCH_CORE_CALLS` (20000),
//! `BENCH_DURABILITY` (`power_loss` or `process_crash`, the relay's `store.durability`),
//! `BENCH_PART` (`core`, `relay` or both).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use protocol::queue::{AppointmentSlot, QueueOp, TicketChannel, WindowMode};
use relay_kit::RelayCommand;
use relay_kit::seed::Seeder;
use serde_json::{Value, json};
use signaling::auth::{hash_device_secret, hash_secret};
use signaling::domain::DeviceKind;
use signaling::queue::{Category, Command, QueueConfig, QueueCore, Window};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

struct Summary {
    n: usize,
    p50: f64,
    p99: f64,
    max: f64,
}

fn summarize(mut samples: Vec<f64>) -> Summary {
    samples.sort_by(f64::total_cmp);
    Summary {
        n: samples.len(),
        p50: percentile(&samples, 50.0),
        p99: percentile(&samples, 99.0),
        max: samples.last().copied().unwrap_or(f64::NAN),
    }
}

const CATEGORIES: [&str; 5] = ["c0", "c1", "c2", "c3", "c4"];

fn core_centre(windows: usize) -> QueueCore {
    let categories = CATEGORIES
        .iter()
        .enumerate()
        .map(|(i, id)| Category {
            id: (*id).into(),
            prefix: ((b'A' + u8::try_from(i).unwrap_or(0)) as char).to_string(),
            name: format!("事项{i}"),
        })
        .collect();
    let windows = (0..windows)
        .map(|i| Window {
            id: format!("w{i}"),
            name: format!("{i}号窗口"),
            mode: match i % 5 {
                0 => WindowMode::Remote,
                1 => WindowMode::Combined,
                _ => WindowMode::OnSite,
            },
            // Each window serves two or three categories, like a real work profile.
            category_ids: CATEGORIES
                .iter()
                .enumerate()
                .filter(|(c, _)| (c + i) % 5 < 3)
                .map(|(_, id)| (*id).to_owned())
                .collect(),
            clerk_id: None,
            clerk_name: None,
            clerk_connected: false,
            current: None,
            pause: None,
        })
        .collect();
    QueueCore::new("bench", QueueConfig::default(), categories, windows)
}

fn run(core: &mut QueueCore, now: i64, cmd: Command) -> bool {
    match core.decide(now, &cmd) {
        Ok(events) => {
            core.apply(&events);
            true
        }
        Err(_) => false,
    }
}

fn issue(core: &mut QueueCore, now: i64, n: usize) {
    let channel = if n.is_multiple_of(10) {
        TicketChannel::Remote
    } else {
        TicketChannel::OnSite
    };
    let appointment = n.is_multiple_of(17).then_some(AppointmentSlot {
        start_ms: now - 60_000,
        end_ms: now + 3_600_000,
    });
    run(
        core,
        now,
        Command::Issue {
            channel,
            category_id: CATEGORIES[n % CATEGORIES.len()].into(),
            appointment,
            device_id: None,
            extension_point_id: None,
        },
    );
}

struct CoreResult {
    call_next_us: Summary,
    estimates_us: Summary,
}

fn bench_core() -> CoreResult {
    let windows = 50;
    let tickets = env_usize("BENCH_TICKETS", 5000);
    let calls = env_usize("BENCH_CORE_CALLS", 20_000);
    let mut core = core_centre(windows);
    let mut now: i64 = 1_795_000_000_000;
    for w in 0..windows {
        run(
            &mut core,
            now,
            Command::OpenWindow {
                clerk_id: format!("k{w}"),
                clerk_name: format!("clerk {w}"),
                window_id: format!("w{w}"),
            },
        );
    }
    let mut issued = 0;
    while core.waiting_len() < tickets {
        issue(&mut core, now, issued);
        issued += 1;
        now += 7;
    }
    let mut call_samples = Vec::with_capacity(calls);
    let mut estimate_samples = Vec::new();
    for i in 0..calls {
        now += 1000;
        let clerk = format!("k{}", i % windows);
        // Finish what the window holds (not measured), then measure "call next".
        if let Some(current) = core
            .window(&format!("w{}", i % windows))
            .and_then(|w| w.current.clone())
        {
            run(
                &mut core,
                now,
                Command::Op {
                    clerk_id: clerk.clone(),
                    op: QueueOp::Start {
                        ticket_id: current.clone(),
                    },
                },
            );
            run(
                &mut core,
                now,
                Command::Op {
                    clerk_id: clerk.clone(),
                    op: QueueOp::Finish { ticket_id: current },
                },
            );
        }
        let cmd = Command::Op {
            clerk_id: clerk,
            op: QueueOp::CallNext,
        };
        let started = Instant::now();
        let called = run(&mut core, now, cmd);
        let took = started.elapsed();
        if called {
            call_samples.push(took.as_secs_f64() * 1e6);
        }
        if i % 20 == 0 {
            let started = Instant::now();
            let e = core.estimates(now);
            estimate_samples.push(started.elapsed().as_secs_f64() * 1e6);
            std::hint::black_box(e);
        }
        while core.waiting_len() < tickets {
            issue(&mut core, now, issued);
            issued += 1;
        }
    }
    CoreResult {
        call_next_us: summarize(call_samples),
        estimates_us: summarize(estimate_samples),
    }
}

// ---------------------------------------------------------------------------------------------
// the real relay

const SECRET: &str = "bench-kiosk-secret";
const PASSWORD: &str = "bench-password-1";

async fn seed(data: &Path, kiosks: usize) -> anyhow::Result<()> {
    let s = Seeder::open(data, "bc", 0).await?;
    s.centre("压测中心").await?;
    for (i, id) in CATEGORIES.iter().enumerate() {
        let prefix = ((b'A' + u8::try_from(i)?) as char).to_string();
        s.category(id, &prefix, &format!("事项{i}"), i64::try_from(i)?)
            .await?;
    }
    for i in 0..50 {
        let mode = if i == 0 {
            WindowMode::Remote
        } else if i % 5 == 1 {
            WindowMode::Combined
        } else {
            WindowMode::OnSite
        };
        let categories = CATEGORIES.iter().map(|c| (*c).to_owned()).collect();
        s.window(&format!("w{i}"), &format!("{i}号窗口"), mode, categories)
            .await?;
    }
    s.clerk("bench-clerk", "bench", "压测", &hash_secret(PASSWORD)?)
        .await?;
    s.extension_point("bp", "压测延伸点").await?;
    let hash = hash_device_secret(SECRET);
    for i in 0..kiosks {
        s.device(&format!("bk{i}"), DeviceKind::Kiosk, Some("bp"), "", &hash)
            .await?;
    }
    s.device("bench-tm", DeviceKind::TicketMachine, None, "", &hash)
        .await?;
    s.close().await;
    Ok(())
}

fn durability() -> String {
    std::env::var("BENCH_DURABILITY").unwrap_or_else(|_| "power_loss".into())
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Ws) -> anyhow::Result<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await? {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t)?),
            Some(Ok(_)) => {}
            other => anyhow::bail!("connection ended: {other:?}"),
        }
    }
}

/// A kiosk status update seen by the bench: which kiosk, when, and what it said.
struct Seen {
    kiosk: usize,
    at: Instant,
    state: String,
    ahead: Option<u64>,
}

struct RelayResult {
    op_to_all_kiosks_ms: Summary,
    op_reply_ms: Summary,
    kiosks_per_op: f64,
    rss_idle_mib: f64,
    rss_connected_mib: f64,
    rss_end_mib: f64,
}

async fn bench_relay() -> anyhow::Result<RelayResult> {
    let kiosks = env_usize("BENCH_KIOSKS", 500);
    let tickets = env_usize("BENCH_TICKETS", 5000);
    let calls = env_usize("BENCH_CALLS", 200).min(kiosks.saturating_sub(1));
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("relay");
    seed(&data, kiosks).await?;
    let mut relay = RelayCommand::new(env!("CARGO_BIN_EXE_relay"), &data)
        .set("log.filter=\"error\"")
        .set(format!("store.durability={}", durability()))
        .start()
        .await?;
    let pid = relay.pid();
    let http = relay.http().to_owned();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_idle = rss_kib(pid).unwrap_or(0);

    // On-site tickets from the ticket machine.
    let client = reqwest::Client::new();
    let on_site = tickets.saturating_sub(kiosks);
    for i in 0..on_site {
        let r = client
            .post(format!("http://{http}/api/v1/tickets"))
            .bearer_auth(format!("bench-tm:{SECRET}"))
            .json(&json!({"category_id": CATEGORIES[1 + i % 4]}))
            .send()
            .await?;
        anyhow::ensure!(r.status() == 201, "issue failed: {}", r.status());
    }

    // 500 kiosks, each with one remote ticket in the same category (the worst case: every call
    // moves every kiosk's position).
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<Seen>();
    let mut kiosk_tasks = Vec::new();
    for k in 0..kiosks {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{http}/ws/kiosk")).await?;
        ws.send(Message::text(json!({"type": "hello", "protocol_versions": [1], "device_id": format!("bk{k}"), "secret": SECRET, "agent_version": "bench"}).to_string())).await?;
        let welcome = next_json(&mut ws).await?;
        anyhow::ensure!(welcome["type"] == "welcome", "kiosk {k}: {welcome}");
        ws.send(Message::text(
            json!({"type": "take_ticket", "request_id": 1, "category_id": "c0"}).to_string(),
        ))
        .await?;
        loop {
            let m = next_json(&mut ws).await?;
            if m["type"] == "ticket_taken" {
                break;
            }
            anyhow::ensure!(m["type"] != "error", "kiosk {k}: {m}");
        }
        let tx = seen_tx.clone();
        kiosk_tasks.push(tokio::spawn(async move {
            let mut heartbeat = tokio::time::interval(Duration::from_secs(15));
            loop {
                tokio::select! {
                    _ = heartbeat.tick() => {
                        if ws.send(Message::text(json!({"type": "heartbeat", "seq": 1}).to_string())).await.is_err() { return; }
                    }
                    m = ws.next() => {
                        let Some(Ok(Message::Text(t))) = m else { return };
                        let Ok(v) = serde_json::from_str::<Value>(&t) else { continue };
                        if v["type"] == "ticket_status" {
                            let _ = tx.send(Seen {
                                kiosk: k,
                                at: Instant::now(),
                                state: v["ticket"]["state"].as_str().unwrap_or_default().to_owned(),
                                ahead: v["ticket"]["ahead"].as_u64(),
                            });
                        }
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    while seen_rx.try_recv().is_ok() {}
    let rss_connected = rss_kib(pid).unwrap_or(0);

    let token =
        relay_kit::staff::login(&client, &format!("http://{http}"), "bench", PASSWORD).await?;
    let mut request = format!("ws://{http}/ws/clerk");
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        request.as_str(),
    )?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    request.clear();
    let (mut clerk, _) = tokio_tungstenite::connect_async(req).await?;
    clerk
        .send(Message::text(
            json!({"type": "hello", "protocol_versions": [1]}).to_string(),
        ))
        .await?;
    let mut next_id = 1u64;
    let mut ask = async |clerk: &mut Ws, body: Value| -> anyhow::Result<(Value, Instant)> {
        let id = next_id;
        next_id += 1;
        let mut body = body;
        body["request_id"] = json!(id);
        clerk.send(Message::text(body.to_string())).await?;
        loop {
            let m = next_json(clerk).await?;
            if m["request_id"] == json!(id) {
                return Ok((m, Instant::now()));
            }
        }
    };
    ask(
        &mut clerk,
        json!({"type": "open_window", "window_id": "w0"}),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    while seen_rx.try_recv().is_ok() {}

    // Which kiosk is at which position, from the statuses the kiosks hold.
    let mut waiting: HashMap<usize, u64> = (0..kiosks)
        .map(|k| (k, u64::try_from(k).unwrap_or(0)))
        .collect();
    let mut to_all = Vec::new();
    let mut replies = Vec::new();
    let mut per_op = Vec::new();
    for _ in 0..calls {
        let started = Instant::now();
        let (done, replied) = ask(
            &mut clerk,
            json!({"type": "queue", "op": {"op": "call_next"}}),
        )
        .await?;
        anyhow::ensure!(done["type"] == "done", "call_next: {done}");
        replies.push((replied - started).as_secs_f64() * 1e3);
        // Affected: the called kiosk (→ called) and every other waiting kiosk (ahead - 1).
        let called = waiting.iter().find(|(_, a)| **a == 0).map(|(k, _)| *k);
        let mut expected: HashMap<usize, u64> = waiting
            .iter()
            .filter(|(_, a)| **a > 0)
            .map(|(k, a)| (*k, a - 1))
            .collect();
        let mut called_seen = called.is_none();
        let mut last = started;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !expected.is_empty() || !called_seen {
            let seen = tokio::time::timeout(deadline - Instant::now(), seen_rx.recv())
                .await?
                .ok_or_else(|| anyhow::anyhow!("kiosks gone"))?;
            if Some(seen.kiosk) == called && seen.state == "called" {
                called_seen = true;
                last = last.max(seen.at);
            } else if expected.get(&seen.kiosk).copied() == seen.ahead && seen.state == "waiting" {
                expected.remove(&seen.kiosk);
                last = last.max(seen.at);
            }
        }
        per_op.push(waiting.len() as f64);
        to_all.push((last - started).as_secs_f64() * 1e3);
        if let Some(c) = called {
            waiting.remove(&c);
        }
        for a in waiting.values_mut() {
            *a -= 1;
        }
        // Serve it (not measured), then let the resulting estimate updates drain.
        let ticket = done["ticket"]["id"].clone();
        ask(
            &mut clerk,
            json!({"type": "queue", "op": {"op": "start", "ticket_id": ticket}}),
        )
        .await?;
        ask(
            &mut clerk,
            json!({"type": "queue", "op": {"op": "finish", "ticket_id": ticket}}),
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
        while seen_rx.try_recv().is_ok() {}
    }
    let rss_end = rss_kib(pid).unwrap_or(0);
    for t in kiosk_tasks {
        t.abort();
    }
    relay.kill()?;
    Ok(RelayResult {
        op_to_all_kiosks_ms: summarize(to_all),
        op_reply_ms: summarize(replies),
        kiosks_per_op: per_op.iter().sum::<f64>() / per_op.len().max(1) as f64,
        rss_idle_mib: rss_idle as f64 / 1024.0,
        rss_connected_mib: rss_connected as f64 / 1024.0,
        rss_end_mib: rss_end as f64 / 1024.0,
    })
}

fn main() -> anyhow::Result<()> {
    signaling::install_crypto_provider();
    // `cargo bench` passes --bench; nothing else to parse.
    let part = std::env::var("BENCH_PART").unwrap_or_default();
    let mut report = json!({
        "machine": {
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "load_avg_at_start": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
        }
    });
    if part != "relay" {
        let core = bench_core();
        println!(
            "queue core, 50 windows, {} waiting tickets:",
            env_usize("BENCH_TICKETS", 5000)
        );
        println!(
            "  call next (decide+apply)       n={:6}  p50 {:8.1} µs  p99 {:8.1} µs  max {:8.1} µs",
            core.call_next_us.n,
            core.call_next_us.p50,
            core.call_next_us.p99,
            core.call_next_us.max
        );
        println!(
            "  positions+estimates, all       n={:6}  p50 {:8.1} µs  p99 {:8.1} µs  max {:8.1} µs",
            core.estimates_us.n,
            core.estimates_us.p50,
            core.estimates_us.p99,
            core.estimates_us.max
        );
        report["core"] = json!({
            "windows": 50, "waiting": env_usize("BENCH_TICKETS", 5000),
            "call_next_us": {"n": core.call_next_us.n, "p50": core.call_next_us.p50, "p99": core.call_next_us.p99, "max": core.call_next_us.max},
            "estimates_us": {"n": core.estimates_us.n, "p50": core.estimates_us.p50, "p99": core.estimates_us.p99, "max": core.estimates_us.max},
        });
    }
    if part != "core" {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let relay = runtime.block_on(bench_relay())?;
        println!(
            "relay process, {} kiosks connected, {} tickets, durability {}:",
            env_usize("BENCH_KIOSKS", 500),
            env_usize("BENCH_TICKETS", 5000),
            durability()
        );
        println!(
            "  call next → clerk's reply      n={:6}  p50 {:8.2} ms  p99 {:8.2} ms  max {:8.2} ms",
            relay.op_reply_ms.n,
            relay.op_reply_ms.p50,
            relay.op_reply_ms.p99,
            relay.op_reply_ms.max
        );
        println!(
            "  call next → all kiosks updated n={:6}  p50 {:8.2} ms  p99 {:8.2} ms  max {:8.2} ms  ({:.0} kiosks per op)",
            relay.op_to_all_kiosks_ms.n,
            relay.op_to_all_kiosks_ms.p50,
            relay.op_to_all_kiosks_ms.p99,
            relay.op_to_all_kiosks_ms.max,
            relay.kiosks_per_op
        );
        println!(
            "  relay RSS: idle {:.1} MiB, with kiosks {:.1} MiB, at end {:.1} MiB",
            relay.rss_idle_mib, relay.rss_connected_mib, relay.rss_end_mib
        );

        report["relay"] = json!({
            "kiosks": env_usize("BENCH_KIOSKS", 500), "tickets": env_usize("BENCH_TICKETS", 5000),
            "durability": durability(),
            "op_reply_ms": {"n": relay.op_reply_ms.n, "p50": relay.op_reply_ms.p50, "p99": relay.op_reply_ms.p99, "max": relay.op_reply_ms.max},
            "op_to_all_kiosks_ms": {"n": relay.op_to_all_kiosks_ms.n, "p50": relay.op_to_all_kiosks_ms.p50, "p99": relay.op_to_all_kiosks_ms.p99, "max": relay.op_to_all_kiosks_ms.max},
            "kiosks_per_op": relay.kiosks_per_op,
            "rss_mib": {"idle": relay.rss_idle_mib, "connected": relay.rss_connected_mib, "end": relay.rss_end_mib},
        });
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-queue.json");
    std::fs::write(&out, serde_json::to_string_pretty(&report)?)?;
    println!("report: {}", out.display());
    Ok(())
}
