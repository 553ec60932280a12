//! The same load against Janus (VideoRoom plugin), started here with a temporary configuration
//! on free loopback ports and driven through its HTTP JSON API.
//!
//! Fair-comparison settings: ICE-lite on loopback only (like the relay), VP8 and Opus only, no
//! transcoding (Janus never transcodes), no periodic keyframe requests (`fir_freq = 0`; the
//! relay only asks on join and relays viewers' requests), recording per room with
//! `record = true` (Janus's `.mjr` RTP dumps, muxed offline like the relay's dumps). One room
//! per served session; the kiosk and the clerk each publish once and subscribe to the other.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, MediaKind};
use tokio::sync::oneshot;

use crate::peer::{Ctl, Kind, Peer, PeerReport, SendTrack};
use crate::server::{Clips, Server, Started};

const PLUGIN_DIR: &str = "/usr/lib/x86_64-linux-gnu/janus";

fn free_tcp_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn write_config(dir: &Path, http_port: u16, ip: std::net::IpAddr) -> anyhow::Result<()> {
    let cfg = dir.join("cfg");
    std::fs::create_dir_all(&cfg)?;
    let plugins = [
        "audiobridge",
        "duktape",
        "echotest",
        "lua",
        "nosip",
        "recordplay",
        "sip",
        "streaming",
        "textroom",
        "videocall",
        "voicemail",
    ]
    .map(|p| format!("libjanus_{p}.so"))
    .join(",");
    let transports = ["websockets", "pfunix", "mqtt", "nanomsg", "rabbitmq"]
        .map(|p| format!("libjanus_{p}.so"))
        .join(",");
    std::fs::write(
        cfg.join("janus.jcfg"),
        format!(
            r#"general: {{
	configs_folder = "{cfg}"
	plugins_folder = "{PLUGIN_DIR}/plugins"
	transports_folder = "{PLUGIN_DIR}/transports"
	events_folder = "{PLUGIN_DIR}/events"
	loggers_folder = "{PLUGIN_DIR}/loggers"
	debug_level = 3
	session_timeout = 120
}}
media: {{
	ipv6 = false
	rtp_port_range = "10000-19999"
}}
nat: {{
	ice_lite = true
	ice_enforce_list = "{ip}"
}}
plugins: {{
	disable = "{plugins}"
}}
transports: {{
	disable = "{transports}"
}}
events: {{
	broadcast = false
}}
loggers: {{
	disable = "libjanus_jsonlog.so"
}}
"#,
            cfg = cfg.display()
        ),
    )?;
    std::fs::write(
        cfg.join("janus.transport.http.jcfg"),
        format!(
            "general: {{\n\tjson = \"compact\"\n\tbase_path = \"/janus\"\n\thttp = true\n\tport = {http_port}\n\tip = \"127.0.0.1\"\n\thttps = false\n}}\nadmin: {{\n\tadmin_http = false\n}}\n"
        ),
    )?;
    std::fs::write(cfg.join("janus.plugin.videoroom.jcfg"), "general: {\n}\n")?;
    Ok(())
}

/// Janus's HTTP API: requests by POST, asynchronous events by one long poll per session,
/// matched to their request by transaction.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    session: u64,
    pending: Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl Api {
    async fn create(base: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(40))
            .build()?;
        let r: Value = http
            .post(base)
            .json(&json!({"janus": "create", "transaction": "create"}))
            .send()
            .await?
            .json()
            .await?;
        let session = r["data"]["id"].as_u64().context("no session id")?;
        let api = Self {
            http,
            base: base.to_owned(),
            session,
            pending: Arc::default(),
            next: Arc::new(1.into()),
        };
        tokio::spawn(api.clone().long_poll());
        Ok(api)
    }

    async fn long_poll(self) {
        let url = format!("{}/{}?maxev=50", self.base, self.session);
        // Bounded: a session lives at most a few minutes of a benchmark run.
        for _ in 0..1_000_000 {
            let Ok(resp) = self.http.get(&url).send().await else {
                return;
            };
            let Ok(v) = resp.json::<Value>().await else {
                return;
            };
            let events = match v {
                Value::Array(a) => a,
                other => vec![other],
            };
            for e in events {
                if let Some(tx) = e["transaction"]
                    .as_str()
                    .and_then(|t| self.pending.lock().ok()?.remove(t))
                {
                    let _ = tx.send(e);
                }
            }
        }
    }

    fn transaction(&self) -> String {
        format!(
            "t{}",
            self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        )
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        Ok(self
            .http
            .post(format!("{}/{}{path}", self.base, self.session))
            .json(&body)
            .send()
            .await?
            .json()
            .await?)
    }

    async fn attach(&self) -> anyhow::Result<u64> {
        let r = self
            .post(
                "",
                json!({"janus": "attach", "plugin": "janus.plugin.videoroom",
                "transaction": self.transaction()}),
            )
            .await?;
        r["data"]["id"]
            .as_u64()
            .with_context(|| format!("attach: {r}"))
    }

    /// A plugin request answered synchronously (e.g. `create`).
    async fn sync(&self, handle: u64, body: Value) -> anyhow::Result<Value> {
        let r = self
            .post(
                &format!("/{handle}"),
                json!({"janus": "message", "body": body,
                "transaction": self.transaction()}),
            )
            .await?;
        Ok(r["plugindata"]["data"].clone())
    }

    /// A plugin request answered by an event (with the JSEP, if any).
    async fn message(
        &self,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
    ) -> anyhow::Result<Value> {
        let t = self.transaction();
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .insert(t.clone(), tx);
        let mut msg = json!({"janus": "message", "body": body, "transaction": t});
        if let Some(j) = jsep {
            msg["jsep"] = j;
        }
        let ack = self.post(&format!("/{handle}"), msg).await?;
        if ack["janus"] == "error" {
            bail!("janus: {ack}");
        }
        let ev = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .context("janus event timed out")??;
        if ev["plugindata"]["data"]["error"].is_string() {
            bail!("videoroom: {}", ev["plugindata"]["data"]);
        }
        Ok(ev)
    }
}

/// Start Janus with recording on or off and bring up `n` served sessions.
pub async fn start(
    janus_bin: &Path,
    n: usize,
    record: bool,
    clips: &Clips,
    ctl: &Arc<Ctl>,
) -> anyhow::Result<Started> {
    let dir = tempfile::Builder::new()
        .prefix("loadgen-janus-")
        .tempdir()?;
    let port = free_tcp_port()?;
    write_config(dir.path(), port, ctl.ip)?;
    let rec_dir = dir.path().join("recordings");
    std::fs::create_dir_all(&rec_dir)?;
    let log = std::fs::File::create(dir.path().join("janus.log"))?;
    let cfg = dir.path().join("cfg");
    let child = Command::new(janus_bin)
        .arg("-C")
        .arg(cfg.join("janus.jcfg"))
        .arg("-F")
        .arg(&cfg)
        .arg("--disable-colors")
        .stdout(log.try_clone()?)
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", janus_bin.display()))?;
    let mut server = Server::new(child, dir, "janus");
    let base = format!("http://127.0.0.1:{port}/janus");
    let probe = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if probe.get(format!("{base}/info")).send().await.is_ok() {
            break;
        }
        if Instant::now() > deadline || server.exited() {
            bail!("janus did not start; see {}", server.log_hint());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let api = Api::create(&base).await?;
    let admin = api.attach().await?;

    let mut peers = Vec::new();
    let mut feeds = Vec::new();
    for i in 0..n {
        let room = 1000 + i as u64;
        let created = api
            .sync(
                admin,
                json!({"request": "create", "room": room, "publishers": 2,
                "videocodec": "vp8", "audiocodec": "opus", "fir_freq": 0, "bitrate": 0,
                "notify_joining": false, "record": record,
                "rec_dir": rec_dir.display().to_string()}),
            )
            .await?;
        if created["videoroom"] != "created" {
            bail!("create room: {created}");
        }
        let (k, c) = (2 * i as u64 + 1, 2 * i as u64 + 2);
        peers.push(
            publish(
                &api,
                room,
                k,
                i,
                [
                    (Kind::Video, clips.kiosk_video.clone(), 4 * i as u32),
                    (Kind::Audio, clips.audio.clone(), 4 * i as u32 + 1),
                ],
                ctl,
            )
            .await?,
        );
        peers.push(
            publish(
                &api,
                room,
                c,
                i,
                [
                    (Kind::Video, clips.clerk_video.clone(), 4 * i as u32 + 2),
                    (Kind::Audio, clips.audio.clone(), 4 * i as u32 + 3),
                ],
                ctl,
            )
            .await?,
        );
        feeds.push((room, k, c));
    }
    ctl.wait_connected(peers.len(), Duration::from_secs(30 + n as u64 / 5))
        .await?;
    // Each side subscribes to the other: the equivalent of the clerk calling the ticket.
    for (i, (room, k, c)) in feeds.into_iter().enumerate() {
        ctl.join(i);
        peers.push(subscribe(&api, room, c, i, ctl).await?);
        peers.push(subscribe(&api, room, k, i, ctl).await?);
    }
    ctl.wait_connected(peers.len(), Duration::from_secs(30 + n as u64 / 5))
        .await?;
    Ok(Started {
        server,
        peers,
        drains: Vec::new(),
    })
}

async fn publish(
    api: &Api,
    room: u64,
    feed: u64,
    session: usize,
    tracks: [(Kind, Arc<crate::media::Clip>, u32); 2],
    ctl: &Arc<Ctl>,
) -> anyhow::Result<tokio::task::JoinHandle<PeerReport>> {
    let handle = api.attach().await?;
    let mut p = Peer::bind(session, ctl.ip).await?;
    let mut change = p.rtc.sdp_api();
    let mut mids = Vec::new();
    for (kind, _, _) in &tracks {
        let k = match kind {
            Kind::Video => MediaKind::Video,
            Kind::Audio => MediaKind::Audio,
        };
        mids.push(change.add_media(k, Direction::SendOnly, None, None, None));
    }
    let (offer, pending) = change.apply().context("no offer")?;
    let ev = api
        .message(
            handle,
            json!({"request": "joinandconfigure", "room": room, "ptype": "publisher",
                "id": feed, "audio": true, "video": true}),
            Some(json!({"type": "offer", "sdp": offer.to_sdp_string(), "trickle": false})),
        )
        .await?;
    let sdp = ev["jsep"]["sdp"]
        .as_str()
        .with_context(|| format!("publish: {ev}"))?;
    if std::env::var_os("LOADGEN_DEBUG_SDP").is_some() {
        eprintln!(
            "--- offer\n{}\n--- janus answer\n{sdp}",
            offer.to_sdp_string()
        );
    }
    p.rtc
        .sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(sdp)?)?;
    for ((kind, clip, stream), mid) in tracks.into_iter().zip(mids) {
        p.tracks.push(SendTrack::new(mid, kind, clip, stream));
    }
    p.negotiated();
    Ok(tokio::spawn(p.run(ctl.clone())))
}

async fn subscribe(
    api: &Api,
    room: u64,
    feed: u64,
    session: usize,
    ctl: &Arc<Ctl>,
) -> anyhow::Result<tokio::task::JoinHandle<PeerReport>> {
    let handle = api.attach().await?;
    let ev = api
        .message(
            handle,
            json!({"request": "join", "room": room, "ptype": "subscriber",
                "streams": [{"feed": feed}]}),
            None,
        )
        .await?;
    let offer = ev["jsep"]["sdp"]
        .as_str()
        .with_context(|| format!("subscribe: {ev}"))?;
    let mut p = Peer::bind(session, ctl.ip).await?;
    let answer = p
        .rtc
        .sdp_api()
        .accept_offer(SdpOffer::from_sdp_string(offer)?)?;
    api.message(
        handle,
        json!({"request": "start", "room": room}),
        Some(json!({"type": "answer", "sdp": answer.to_sdp_string(), "trickle": false})),
    )
    .await?;
    Ok(tokio::spawn(p.run(ctl.clone())))
}
