//! Media test support: a relay running in the test process with media enabled (SFU on
//! 127.0.0.1:0, recording on), and str0m client peers on their own UDP sockets that play a
//! kiosk or a clerk console, each driven by its own task.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protocol::media::Slot;
use serde_json::{Value, json};
use signaling::clock::SystemClock;
use signaling::config::Config;
use signaling::http::{AppState, Listeners};
use signaling::relay::{Relay, Stores};
use signaling::sfu::Role;
use signaling::store::recordings::RecordingStore;
use signaling::store::sqlite::SqliteStore;
use str0m::Input;
use str0m::net::{Protocol, Receive};
use tokio::net::UdpSocket;

use crate::common::{self, Client, METRICS_TOKEN, PASSWORD, WAIT};
use crate::sfu_support;

/// A relay in this process with the SFU and recorder running.
pub struct MediaRelay {
    pub addr: SocketAddr,
    pub state: AppState,
    pub store: SqliteStore,
    pub dir: tempfile::TempDir,
    /// The master keys, outside the data directory as in production.
    pub keys: tempfile::TempDir,
    relay: Relay,
}

impl MediaRelay {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Self {
        signaling::install_crypto_provider();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::default();
        config.server.listen = None;
        config.server.dev_http_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.store.data_dir = dir.path().to_path_buf();
        let keys = tempfile::tempdir().expect("tempdir");
        let made =
            signaling::keys::init_keys(&config, &keys.path().join("keys")).expect("master keys");
        config.privacy.master_key_file = Some(made.cases);
        config.recording.key_file = Some(made.recordings);
        config.media.enabled = true;
        config.media.udp_listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.server.metrics_token = Some(METRICS_TOKEN.to_string());
        configure(&mut config);
        config.validate().expect("valid test configuration");
        let sqlite = SqliteStore::open(dir.path()).await.expect("store");
        common::seed(&sqlite).await;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let relay = Relay::start(
            config,
            Stores::sqlite(&sqlite),
            Arc::new(SystemClock),
            Listeners {
                tls: None,
                dev_http: Some(listener),
            },
        )
        .await
        .expect("the relay starts with media");
        Self {
            addr,
            state: relay.state.clone(),
            store: sqlite,
            dir,
            keys,
            relay,
        }
    }

    /// `/metrics`, read with the scraper's bearer token.
    pub async fn metrics(&self) -> String {
        reqwest::Client::new()
            .get(self.url("/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    pub async fn stop(self) {
        let _ = tokio::time::timeout(WAIT, self.relay.stop()).await;
    }

    /// Logs a staff member in with every step the relay asks for (see `relay_kit::staff`).
    pub async fn login(&self, username: &str) -> String {
        relay_kit::staff::login(&reqwest::Client::new(), &self.url(""), username, PASSWORD)
            .await
            .unwrap_or_else(|e| panic!("login of {username} failed: {e:#}"))
    }

    /// A console signed in (hello, welcome, snapshot); returns it and its welcome.
    pub async fn clerk(&self, username: &str) -> (Client, Value) {
        let token = self.login(username).await;
        let mut c = Client::connect(&self.ws_url("/ws/clerk"), Some(&token)).await;
        c.send(json!({"type": "hello", "protocol_versions": [1]}))
            .await;
        let welcome = c.recv_type("welcome").await;
        c.recv_type("snapshot").await;
        (c, welcome)
    }

    /// A kiosk after hello; returns it and its welcome.
    pub async fn kiosk(&self, device: &str) -> (Client, Value) {
        let mut k = Client::connect(&self.ws_url("/ws/kiosk"), None).await;
        k.send(json!({
            "type": "hello", "protocol_versions": [1], "device_id": device,
            "secret": common::KIOSK_SECRET, "agent_version": "test"
        }))
        .await;
        let welcome = k.recv_type("welcome").await;
        (k, welcome)
    }

    pub async fn recordings(&self) -> Vec<signaling::store::recordings::RecordingRow> {
        self.store
            .recordings(&signaling::store::recordings::RecordingQuery {
                centre_id: "c1".into(),
                limit: 100,
                ..Default::default()
            })
            .await
            .expect("recordings")
    }

    /// Waits (bounded) until the recordings of centre c1 satisfy `check`.
    pub async fn wait_recordings(
        &self,
        check: impl Fn(&[signaling::store::recordings::RecordingRow]) -> bool,
    ) -> Vec<signaling::store::recordings::RecordingRow> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let rows = self.recordings().await;
            if check(&rows) {
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "recordings did not reach the expected state: {rows:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Sends a `media_offer` built by `peer` over the control connection and applies the answer.
pub async fn negotiate(ws: &mut Client, peer: &mut PeerBuilder) -> Value {
    let (offer, pending) = peer.client.offer();
    let answer = ws
        .request(json!({"type": "media_offer", "sdp": offer}))
        .await;
    if answer["type"] == "media_answer" {
        peer.client
            .accept_answer(pending, answer["sdp"].as_str().expect("sdp"));
    }
    answer
}

/// A str0m client peer before negotiation.
pub struct PeerBuilder {
    pub client: sfu_support::Client,
    socket: UdpSocket,
}

impl PeerBuilder {
    pub async fn new(id: u64, role: Role) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("udp");
        let addr = socket.local_addr().expect("addr");
        let client = sfu_support::Client::new(id, role, addr, Instant::now());
        Self { client, socket }
    }

    /// Start the peer's task: it keeps ICE/DTLS going, records what arrives and, while
    /// `sending` is on, sends 30 fps synthetic VP8 on its video slots and 50 packets/s Opus.
    pub fn run(self) -> MediaPeer {
        let shared = Arc::new(Mutex::new(PeerState::default()));
        let task = tokio::spawn(drive(self.client, self.socket, shared.clone()));
        MediaPeer { shared, task }
    }
}

#[derive(Debug, Default)]
pub struct PeerState {
    pub connected: bool,
    pub sending: bool,
    pub received: HashMap<Slot, u64>,
    /// Packets received per (slot, tag); the tag is the sending client's id.
    pub by_tag: HashMap<(Slot, u8), u64>,
    pub keyframe_requests: u64,
    pub stop: bool,
}

pub struct MediaPeer {
    pub shared: Arc<Mutex<PeerState>>,
    task: tokio::task::JoinHandle<()>,
}

impl MediaPeer {
    pub fn set_sending(&self, on: bool) {
        self.shared.lock().unwrap().sending = on;
    }

    pub fn received(&self, slot: Slot) -> u64 {
        self.shared
            .lock()
            .unwrap()
            .received
            .get(&slot)
            .copied()
            .unwrap_or(0)
    }

    /// Packets received on `slot` from the client with id `tag`.
    pub fn received_from(&self, slot: Slot, tag: u8) -> u64 {
        self.shared
            .lock()
            .unwrap()
            .by_tag
            .get(&(slot, tag))
            .copied()
            .unwrap_or(0)
    }

    pub fn connected(&self) -> bool {
        self.shared.lock().unwrap().connected
    }

    /// Waits (bounded) until `check` holds.
    pub async fn wait(&self, what: &str, check: impl Fn(&PeerState) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if check(&self.shared.lock().unwrap()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {:?}",
                self.shared.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn close(self) {
        self.shared.lock().unwrap().stop = true;
        let _ = tokio::time::timeout(WAIT, self.task).await;
    }
}

async fn drive(mut c: sfu_support::Client, socket: UdpSocket, shared: Arc<Mutex<PeerState>>) {
    let mut buf = vec![0u8; 2048];
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    let mut next_video = Instant::now();
    let mut next_audio = Instant::now();
    let tag = c.id.0 as u8;
    let mut seen = 0usize;
    loop {
        tick.tick().await;
        let (stop, sending) = {
            let s = shared.lock().unwrap();
            (s.stop, s.sending)
        };
        if stop {
            return;
        }
        let now = Instant::now();
        if sending && c.connected {
            let role = c.role;
            for slot in Slot::ORDER.into_iter().filter(|s| role.sends(*s)) {
                match slot.kind() {
                    protocol::media::MediaKind::Video if now >= next_video => {
                        c.send_vp8_frame(slot, tag, now)
                    }
                    protocol::media::MediaKind::Audio if now >= next_audio => {
                        c.send_opus_frame(slot, tag, now)
                    }
                    _ => {}
                }
            }
        }
        if now >= next_video {
            next_video = now + Duration::from_micros(33_333);
        }
        if now >= next_audio {
            next_audio = now + Duration::from_millis(20);
        }
        for d in c.drain(now) {
            let _ = socket.send_to(&d.bytes, d.to).await;
        }
        while let Ok((n, from)) = socket.try_recv_from(&mut buf) {
            let Ok(contents) = buf[..n].try_into() else {
                continue;
            };
            let input = Input::Receive(
                Instant::now(),
                Receive {
                    proto: Protocol::Udp,
                    source: from,
                    destination: c.addr,
                    contents,
                },
            );
            if c.rtc.handle_input(input).is_err() {
                continue;
            }
            for d in c.drain(Instant::now()) {
                let _ = socket.send_to(&d.bytes, d.to).await;
            }
        }
        if c.next_timeout <= Instant::now() {
            let _ = c.rtc.handle_input(Input::Timeout(Instant::now()));
            for d in c.drain(Instant::now()) {
                let _ = socket.send_to(&d.bytes, d.to).await;
            }
        }
        let mut s = shared.lock().unwrap();
        s.connected = c.connected;
        s.keyframe_requests = c.keyframe_requests.len() as u64;
        for g in &c.received[seen..] {
            *s.received.entry(g.slot).or_default() += 1;
            *s.by_tag
                .entry((g.slot, sfu_support::tag_of(g)))
                .or_default() += 1;
        }
        seen = c.received.len();
        // Keep memory flat in long tests.
        if c.received.len() > 10_000 {
            c.received.clear();
            seen = 0;
        }
    }
}

/// Waits for the next message of `ty` whose fields match `check`, skipping others.
pub async fn recv_where(ws: &mut Client, ty: &str, check: impl Fn(&Value) -> bool) -> Value {
    loop {
        let m = ws.recv_type(ty).await;
        if check(&m) {
            return m;
        }
    }
}
