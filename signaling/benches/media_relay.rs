//! Relay media benchmark (not part of `cargo test`): the real `relay` binary (release build)
//! on loopback, with N kiosk/console pairs in served sessions, each side a str0m client peer
//! on its own UDP socket sending ~1 Mbit/s of synthetic VP8 (30 fps, 4 packets a frame) and
//! 50 packets/s of Opus-sized audio, both directions, signalled over the real WebSockets.
//!
//! It reports, per run (recording off, then on):
//! - relay CPU per forwarded packet: the relay process's user+system CPU time
//!   (/proc/<pid>/stat) over the measurement window ÷ `relay_sfu_rtp_forwarded_total`;
//! - the relay's added delay: every packet carries the time it was written at the sender;
//!   the receiver takes the time the datagram left its socket read, so each sample is the
//!   relay's own time plus two loopback hops, two SRTP operations in the clients and the
//!   clients' scheduling on the same two cores — an upper bound of the relay's share;
//! - and the ratio of CPU per packet with recording to without;
//! - to read those right: the relay's CPU with every peer connected and paired but nothing
//!   sent (the "ready on call" state: STUN consent, RTCP, timers), the CPU per packet above
//!   that idle cost, the packets the clients actually offered against the full rate (on a
//!   busy machine this process is starved, the relay forwards fewer packets and its fixed
//!   costs weigh more on each), and this process's own CPU.
//!
//! `cargo bench -p signaling --bench media_relay [-- --sessions 50 --seconds 20]`
//! Prints a table and writes JSON to `target/bench-media-relay.json`.
#![allow(clippy::unwrap_used, dead_code)]

#[path = "../tests/sfu_support/mod.rs"]
mod sfu_support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use protocol::media::{MediaKind as SlotKind, Slot};
use relay_kit::seed::LoadCentre;
use relay_kit::{RelayCommand, RelayProcess};
use serde_json::{Value, json};
use sfu_support::Client as Peer;
use signaling::sfu::Role;
use str0m::format::Codec;
use str0m::net::{Protocol, Receive};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;

const PASSWORD: &str = "bench-password-1";
const SECRET: &str = "bench-kiosk-secret";
const FRAME_PACKETS: usize = 4;
const PACKET_BYTES: usize = 1000;
const AUDIO_BYTES: usize = 80;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Control {
    ws: Ws,
    next: u64,
}

impl Control {
    async fn connect(url: &str, token: Option<&str>) -> Self {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = url.into_client_request().unwrap();
        if let Some(t) = token {
            req.headers_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        Self { ws, next: 1 }
    }

    async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    async fn recv_type(&mut self, ty: &str) -> Value {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .expect("relay answers")
                .expect("open")
                .unwrap();
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == ty {
                    return v;
                }
            }
        }
    }

    async fn request(&mut self, mut v: Value) -> Value {
        let id = self.next;
        self.next += 1;
        v["request_id"] = json!(id);
        self.send(v).await;
        loop {
            let m = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .expect("relay answers")
                .expect("open")
                .unwrap();
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["request_id"] == json!(id) {
                    return v;
                }
            }
        }
    }

    /// Keep reading (and discarding) so the relay never finds this connection slow.
    fn drain_forever(mut self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut beat = tokio::time::interval(Duration::from_secs(10));
            let mut seq = 0u64;
            loop {
                tokio::select! {
                    m = self.ws.next() => if m.is_none() { return },
                    _ = beat.tick() => {
                        seq += 1;
                        let _ = self.ws.send(Message::text(json!({"type": "heartbeat", "seq": seq}).to_string())).await;
                    }
                }
            }
        })
    }
}

async fn seed(dir: &Path, n: usize) {
    LoadCentre {
        sessions: n,
        centre_name: "基准中心",
        extension_point_name: "延伸点",
        clerk_name_prefix: "工作人员",
        password: PASSWORD,
        kiosk_secret: SECRET,
    }
    .seed(dir)
    .await
    .unwrap();
}

async fn start_relay(data: &Path, record: bool) -> RelayProcess {
    RelayCommand::new(env!("CARGO_BIN_EXE_relay"), data)
        .args([
            "--set",
            "media.enabled=true",
            "--set",
            "media.udp_listen=127.0.0.1:0",
        ])
        .set(format!("recording.enabled={record}"))
        .set("log.filter=\"warn\"")
        .set("limits.max_connections=1000")
        .log_file(data.join("relay.log"))
        .start()
        .await
        .unwrap()
}

/// User + system CPU time of a process, from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat; `after` starts at field 3.
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    let hz: u64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100);
    Duration::from_secs_f64(ticks as f64 / hz.max(1) as f64)
}

async fn forwarded(http: &str) -> u64 {
    let text = reqwest::get(format!("http://{http}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("relay_sfu_rtp_forwarded_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Shared between the benchmark and one peer's task.
#[derive(Default)]
struct PeerShared {
    connected: bool,
    sending: bool,
    stop: bool,
    /// Collect delay samples (µs) while set.
    measure: bool,
    delays_us: Vec<u32>,
    /// RTP packets written while `measure` was set (what the relay was offered to forward).
    sent: u64,
}

fn now_us(epoch: Instant) -> u64 {
    epoch.elapsed().as_micros() as u64
}

/// One peer: event-driven (datagrams are read as soon as they arrive), sending on a timer.
async fn run_peer(mut c: Peer, socket: UdpSocket, shared: Arc<Mutex<PeerShared>>, epoch: Instant) {
    let mut buf = vec![0u8; 2048];
    let start = Instant::now() + Duration::from_millis(u64::from(c.id.0 as u32 % 33));
    let (mut next_video, mut next_audio) = (start, start);
    let mut frame = [0u64; 5];
    let mut pid = [0u16; 5];
    loop {
        let (stop, sending) = {
            let s = shared.lock().unwrap();
            (s.stop, s.sending)
        };
        if stop {
            return;
        }
        let mut wake = c.next_timeout;
        if sending {
            wake = wake.min(next_video).min(next_audio);
        }
        let wake = wake.max(Instant::now());
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                let t_recv = now_us(epoch);
                let Ok(contents) = buf[..n].try_into() else { continue };
                let input = str0m::Input::Receive(Instant::now(), Receive {
                    proto: Protocol::Udp, source: from, destination: c.addr, contents,
                });
                if c.rtc.handle_input(input).is_err() { continue; }
                for d in c.drain(Instant::now()) {
                    let _ = socket.send_to(&d.bytes, d.to).await;
                }
                let got = std::mem::take(&mut c.received);
                let mut s = shared.lock().unwrap();
                if s.measure {
                    for g in got {
                        let off = match g.slot.kind() {
                            SlotKind::Audio => 2,
                            SlotKind::Video => 4 + if g.payload[0] & 0x10 != 0 { 10 } else { 0 },
                        };
                        if g.payload.len() >= off + 8 {
                            let sent = u64::from_be_bytes(g.payload[off..off + 8].try_into().unwrap());
                            s.delays_us.push(t_recv.saturating_sub(sent).min(u64::from(u32::MAX)) as u32);
                        }
                    }
                }
                s.connected = c.connected;
                continue;
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {}
        }
        let now = Instant::now();
        if now >= c.next_timeout {
            let _ = c.rtc.handle_input(str0m::Input::Timeout(now));
        }
        let mut written = 0u64;
        if sending && c.connected {
            let role = c.role;
            for slot in Slot::ORDER.into_iter().filter(|s| role.sends(*s)) {
                let i = slot.index();
                match slot.kind() {
                    // The document camera stays idle, as it mostly does.
                    SlotKind::Video if slot == Slot::KioskDocument => {}
                    SlotKind::Video if now >= next_video => {
                        let key = std::mem::replace(&mut c.want_keyframe[i], false);
                        let ts = (frame[i] * 3000) as u32;
                        frame[i] += 1;
                        pid[i] = (pid[i] + 1) & 0x7fff;
                        for k in 0..FRAME_PACKETS {
                            let mut p = vec![
                                if k == 0 { 0x90 } else { 0x80 },
                                0x80,
                                0x80 | (pid[i] >> 8) as u8,
                                pid[i] as u8,
                            ];
                            if k == 0 {
                                p.extend_from_slice(&if key {
                                    [0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]
                                } else {
                                    [0x11, 0x02, 0x00, 0, 0, 0, 0, 0, 0, 0]
                                });
                            }
                            p.extend_from_slice(&now_us(epoch).to_be_bytes());
                            p.resize(PACKET_BYTES, 0x5a);
                            c.write_rtp(slot, Codec::Vp8, ts, k == FRAME_PACKETS - 1, p, now);
                            written += 1;
                        }
                    }
                    SlotKind::Audio if now >= next_audio => {
                        let ts = (frame[i] * 960) as u32;
                        frame[i] += 1;
                        let mut p = vec![0xf8, 0x01];
                        p.extend_from_slice(&now_us(epoch).to_be_bytes());
                        p.resize(AUDIO_BYTES, 0x33);
                        c.write_rtp(slot, Codec::Opus, ts, false, p, now);
                        written += 1;
                    }
                    _ => {}
                }
            }
            if now >= next_video {
                next_video += Duration::from_micros(33_333);
                if next_video < now {
                    next_video = now + Duration::from_micros(33_333);
                }
            }
            if now >= next_audio {
                next_audio += Duration::from_millis(20);
                if next_audio < now {
                    next_audio = now + Duration::from_millis(20);
                }
            }
        }
        for d in c.drain(Instant::now()) {
            let _ = socket.send_to(&d.bytes, d.to).await;
        }
        c.received.clear();
        let mut s = shared.lock().unwrap();
        s.connected = c.connected;
        if s.measure {
            s.sent += written;
        }
    }
}

async fn peer(
    ws: &mut Control,
    id: u64,
    role: Role,
    epoch: Instant,
) -> (Arc<Mutex<PeerShared>>, tokio::task::JoinHandle<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = socket.local_addr().unwrap();
    let mut c = Peer::new(id, role, addr, Instant::now());
    let (offer, pending) = c.offer();
    let answer = ws
        .request(json!({"type": "media_offer", "sdp": offer}))
        .await;
    assert_eq!(answer["type"], "media_answer", "{answer}");
    c.accept_answer(pending, answer["sdp"].as_str().unwrap());
    let shared = Arc::new(Mutex::new(PeerShared::default()));
    let task = tokio::spawn(run_peer(c, socket, shared.clone(), epoch));
    (shared, task)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

struct RunResult {
    record: bool,
    sessions: usize,
    seconds: f64,
    forwarded: u64,
    relay_cpu_s: f64,
    us_per_packet: f64,
    /// Packets the clients wrote during the window (each is forwarded to one viewer).
    offered: u64,
    /// Relay cores with every peer connected and paired but nothing sent (ready on call).
    idle_cores: f64,
    /// This benchmark process's cores during the window (the 2N client peers).
    clients_cores: f64,
    delay_ms: [f64; 3],
    samples: usize,
    load_before: String,
    load_after: String,
}

impl RunResult {
    /// Relay CPU per forwarded packet beyond what the same peers cost it while idle.
    fn us_above_idle(&self) -> f64 {
        (self.relay_cpu_s - self.idle_cores * self.seconds) * 1e6 / self.forwarded.max(1) as f64
    }

    /// Packets a full-rate window would forward: per session, each side's camera (30 frames of
    /// `FRAME_PACKETS`) and microphone (50 packets) a second; the document camera stays idle.
    fn offered_full(&self, seconds: u64) -> f64 {
        (self.sessions * 2 * (30 * FRAME_PACKETS + 50)) as f64 * seconds as f64
    }
}

async fn run(sessions: usize, seconds: u64, record: bool) -> RunResult {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay");
    seed(&data, sessions).await;
    let relay = start_relay(&data, record).await;
    let pid = relay.pid();
    let http = relay.http().to_owned();
    let epoch = Instant::now();
    let client = reqwest::Client::new();
    let mut peers = Vec::new();
    let mut controls = Vec::new();
    for i in 0..sessions {
        let mut k = Control::connect(&format!("ws://{http}/ws/kiosk"), None).await;
        k.send(json!({"type": "hello", "protocol_versions": [1], "device_id": format!("k{i}"), "secret": SECRET, "agent_version": "bench"})).await;
        k.recv_type("welcome").await;
        let t = k
            .request(json!({"type": "take_ticket", "category_id": "civil"}))
            .await;
        assert_eq!(
            t["type"],
            "ticket_taken",
            "{t}\n{}",
            std::fs::read_to_string(data.join("relay.log")).unwrap_or_default()
        );
        peers.push(peer(&mut k, 1 + i as u64, Role::Kiosk, epoch).await);
        let token = relay_kit::staff::login(
            &client,
            &format!("http://{http}"),
            &format!("clerk{i}"),
            PASSWORD,
        )
        .await
        .unwrap();
        let mut c = Control::connect(&format!("ws://{http}/ws/clerk"), Some(&token)).await;
        c.send(json!({"type": "hello", "protocol_versions": [1]}))
            .await;
        c.recv_type("welcome").await;
        let w = c
            .request(json!({"type": "open_window", "window_id": format!("w{i}")}))
            .await;
        assert_eq!(w["type"], "window_opened", "{w}");
        peers.push(peer(&mut c, 1001 + i as u64, Role::Clerk, epoch).await);
        controls.push((k, c));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !peers.iter().all(|(s, _)| s.lock().unwrap().connected) {
        assert!(Instant::now() < deadline, "peers did not connect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut drains = Vec::new();
    for (k, mut c) in controls {
        let r = c
            .request(json!({"type": "queue", "op": {"op": "call_next"}}))
            .await;
        assert_eq!(r["type"], "done", "{r}");
        drains.push(k.drain_forever());
        drains.push(c.drain_forever());
    }
    // Ready on call: every peer connected and paired, nothing sent. What does the relay
    // spend on that alone (STUN consent, RTCP, timers)?
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (idle_cpu0, idle_t0) = (cpu_time(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_cores = (cpu_time(pid) - idle_cpu0).as_secs_f64() / idle_t0.elapsed().as_secs_f64();
    for (s, _) in &peers {
        s.lock().unwrap().sending = true;
    }
    // Warm up: keyframes, NACK/RTX caches, socket buffers.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let load_before = loadavg();
    for (s, _) in &peers {
        s.lock().unwrap().measure = true;
    }
    let me = std::process::id();
    let (cpu0, fwd0, t0) = (cpu_time(pid), forwarded(&http).await, Instant::now());
    let own0 = cpu_time(me);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (cpu1, fwd1, elapsed) = (cpu_time(pid), forwarded(&http).await, t0.elapsed());
    let own1 = cpu_time(me);
    let load_after = loadavg();
    let mut delays: Vec<u32> = Vec::new();
    let mut offered = 0;
    for (s, _) in &peers {
        let mut s = s.lock().unwrap();
        s.measure = false;
        s.stop = true;
        delays.append(&mut s.delays_us);
        offered += s.sent;
    }
    for (_, t) in peers {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    for d in drains {
        d.abort();
    }
    drop(relay);
    delays.sort_unstable();
    let forwarded = fwd1 - fwd0;
    let relay_cpu = (cpu1 - cpu0).as_secs_f64();
    RunResult {
        record,
        sessions,
        seconds: elapsed.as_secs_f64(),
        forwarded,
        relay_cpu_s: relay_cpu,
        us_per_packet: relay_cpu * 1e6 / forwarded.max(1) as f64,
        offered,
        idle_cores,
        clients_cores: (own1 - own0).as_secs_f64() / elapsed.as_secs_f64(),
        delay_ms: [
            percentile(&delays, 0.5),
            percentile(&delays, 0.95),
            percentile(&delays, 0.99),
        ],
        samples: delays.len(),
        load_before,
        load_after,
    }
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    signaling::install_crypto_provider();
    let sessions = arg("--sessions", 50) as usize;
    let seconds = arg("--seconds", 20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let results: Vec<RunResult> = [false, true]
        .into_iter()
        .map(|record| rt.block_on(run(sessions, seconds, record)))
        .collect();
    println!(
        "\n| recording | sessions | offered pkt/s | forwarded pkt/s | relay CPU (cores) | µs CPU / forwarded packet | relay idle, peers ready (cores) | µs above idle / packet | delay p50 / p95 / p99 (ms) | samples | clients (cores) | load avg before → after |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &results {
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.3} | {:.2} | {:.3} | {:.2} | {:.2} / {:.2} / {:.2} | {} | {:.2} | {} → {} |",
            if r.record { "on" } else { "off" },
            r.sessions,
            r.offered as f64 / r.seconds,
            r.forwarded as f64 / r.seconds,
            r.relay_cpu_s / r.seconds,
            r.us_per_packet,
            r.idle_cores,
            r.us_above_idle(),
            r.delay_ms[0],
            r.delay_ms[1],
            r.delay_ms[2],
            r.samples,
            r.clients_cores,
            r.load_before,
            r.load_after
        );
    }
    if results
        .iter()
        .any(|r| (r.forwarded as f64) < 0.95 * r.offered_full(seconds))
    {
        println!(
            "\nNOTE: the clients did not offer the full {:.0} packets/s (a busy machine starves this process); per-packet figures are then inflated by the relay's fixed costs.",
            results[0].offered_full(seconds) / seconds as f64
        );
    }
    let ratio = results[1].us_per_packet / results[0].us_per_packet;
    println!("\nrelay CPU per forwarded packet, recording on ÷ off: {ratio:.3}");
    let json = json!({
        "benchmark": "media_relay",
        "sessions": sessions,
        "seconds": seconds,
        "runs": results.iter().map(|r| json!({
            "recording": r.record,
            "forwarded_packets": r.forwarded,
            "forwarded_per_second": r.forwarded as f64 / r.seconds,
            "relay_cpu_seconds": r.relay_cpu_s,
            "relay_cores": r.relay_cpu_s / r.seconds,
            "us_cpu_per_forwarded_packet": r.us_per_packet,
            "offered_packets": r.offered,
            "offered_full_rate_packets": r.offered_full(seconds),
            "relay_idle_cores_peers_ready": r.idle_cores,
            "us_cpu_above_idle_per_forwarded_packet": r.us_above_idle(),
            "clients_cores": r.clients_cores,
            "delay_ms": {"p50": r.delay_ms[0], "p95": r.delay_ms[1], "p99": r.delay_ms[2]},
            "delay_samples": r.samples,
            "loadavg_before": r.load_before,
            "loadavg_after": r.load_after,
        })).collect::<Vec<_>>(),
        "recording_cpu_ratio": ratio,
    });
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-media-relay.json");
    let _ = std::fs::write(&out, serde_json::to_string_pretty(&json).unwrap());
    println!("{}", serde_json::to_string_pretty(&json).unwrap());
}
