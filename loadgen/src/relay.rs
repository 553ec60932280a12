//! The relay under load: a fresh `relay` process on loopback with N enrolled kiosks, N clerks
//! and N remote windows, driven through its real signalling — kiosk `hello` with the device
//! credential, `take_ticket`, the five-transceiver `media_offer`; clerk login, `open_window`,
//! `media_offer`; and the clerk calling the ticket (`call_next`), which switches forwarding on.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use protocol::media::{MediaKind as SlotKind, Slot};
use protocol::queue::WindowMode;
use serde_json::{Value, json};
use signaling::auth::{hash_device_secret, hash_secret};
use signaling::domain::{
    CategoryRecord, Centre, Clerk, Device, DeviceKind, ExtensionPoint, Role as StaffRole,
    WindowRecord,
};
use signaling::store::Store;
use signaling::store::sqlite::SqliteStore;
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind, Mid};

use crate::control::Control;
use crate::peer::{Ctl, Kind, Peer, SendTrack};
use crate::run::{Clips, Server, Started};

const PASSWORD: &str = "loadgen-password-1";
const SECRET: &str = "loadgen-kiosk-secret";

async fn seed(dir: &Path, n: usize) -> anyhow::Result<()> {
    let store = SqliteStore::open(dir).await?;
    let now = chrono_now_ms();
    store
        .upsert_centre(
            &Centre {
                id: "c1".into(),
                name: "负载测试中心".into(),
                district: String::new(),
                street: String::new(),
            },
            now,
        )
        .await?;
    store
        .upsert_category(&CategoryRecord {
            id: "civil".into(),
            centre_id: "c1".into(),
            prefix: "A".into(),
            name: "民政".into(),
            sort_order: 0,
        })
        .await?;
    store
        .upsert_extension_point(
            &ExtensionPoint {
                id: "p1".into(),
                centre_id: "c1".into(),
                name: "负载测试延伸点".into(),
                address: String::new(),
                phone: String::new(),
                service_hours: String::new(),
                hours: None,
                status: "active".into(),
            },
            now,
        )
        .await?;
    // One argon2id hash for every clerk: hashing is the slow part of seeding, not of serving.
    let hash = hash_secret(PASSWORD)?;
    let device_hash = hash_device_secret(SECRET);
    for i in 0..n {
        store
            .upsert_window(&WindowRecord {
                id: format!("w{i}"),
                centre_id: "c1".into(),
                name: format!("{i}号远程窗口"),
                mode: WindowMode::Remote,
                category_ids: vec!["civil".into()],
                clerk_id: None,
                clerk_name: None,
            })
            .await?;
        store
            .upsert_clerk(
                &Clerk {
                    id: format!("clerk-{i}"),
                    centre_id: "c1".into(),
                    username: format!("clerk{i}"),
                    display_name: format!("负载{i}"),
                    password_hash: hash.clone(),
                    roles: vec![StaffRole::Clerk],
                    active: true,
                },
                now,
            )
            .await?;
        store
            .upsert_device(
                &Device {
                    id: format!("k{i}"),
                    centre_id: "c1".into(),
                    extension_point_id: Some("p1".into()),
                    kind: DeviceKind::Kiosk,
                    name: format!("k{i}"),
                    secret_hash: device_hash.clone(),
                    active: true,
                },
                now,
            )
            .await?;
    }
    store.pool().close().await;
    Ok(())
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Start a relay with recording on or off and bring up `n` served sessions.
pub async fn start(
    relay_bin: &Path,
    n: usize,
    record: bool,
    clips: &Clips,
    ctl: &Arc<Ctl>,
) -> anyhow::Result<Started> {
    let dir = tempfile::Builder::new()
        .prefix("loadgen-relay-")
        .tempdir()?;
    seed(dir.path(), n)
        .await
        .context("seeding the relay's store")?;
    let ready = dir.path().join("ready.json");
    let log = std::fs::File::create(dir.path().join("relay.log"))?;
    let child = Command::new(relay_bin)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--set", "server.tls.self_signed=true"])
        .args(["--set", "media.enabled=true"])
        .args([
            "--set",
            &format!("media.udp_listen={}", SocketAddr::new(ctl.ip, 0)),
        ])
        .args(["--set", &format!("media.max_peers={}", 2 * n + 16)])
        .args(["--set", &format!("recording.enabled={record}")])
        .args(["--set", "log.filter=\"warn\""])
        .args(["--set", &format!("limits.max_connections={}", 4 * n + 100)])
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--dev-http",
            "127.0.0.1:0",
        ])
        .arg("--ready-file")
        .arg(&ready)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", relay_bin.display()))?;
    let mut server = Server::new(child, dir, "relay");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready.exists() {
        if Instant::now() > deadline || server.exited() {
            bail!("relay did not start; see {}", server.log_hint());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let info: Value = serde_json::from_str(&std::fs::read_to_string(&ready)?)?;
    let http = info["http"]
        .as_str()
        .context("ready file without http")?
        .to_owned();
    server.metrics_url = Some(format!("http://{http}/metrics"));

    let client = reqwest::Client::new();
    let mut peers = Vec::new();
    let mut clerks = Vec::new();
    let mut drains = Vec::new();
    for i in 0..n {
        let mut k = Control::connect(&format!("ws://{http}/ws/kiosk"), None).await?;
        k.send(
            json!({"type": "hello", "protocol_versions": [1], "device_id": format!("k{i}"),
            "secret": SECRET, "agent_version": "loadgen"}),
        )
        .await?;
        k.recv_type("welcome").await?;
        let t = k
            .request(json!({"type": "take_ticket", "category_id": "civil"}))
            .await?;
        if t["type"] != "ticket_taken" {
            bail!("take_ticket: {t}");
        }
        let tracks = vec![
            (
                Slot::KioskCamera,
                Kind::Video,
                clips.kiosk_video.clone(),
                4 * i as u32,
            ),
            (
                Slot::KioskMicrophone,
                Kind::Audio,
                clips.audio.clone(),
                4 * i as u32 + 1,
            ),
        ];
        peers.push(peer(&mut k, i, true, tracks, ctl).await?);
        drains.push(k.drain(true));

        let login: Value = client
            .post(format!("http://{http}/api/v1/login"))
            .json(&json!({"username": format!("clerk{i}"), "password": PASSWORD}))
            .send()
            .await?
            .json()
            .await?;
        let token = login["token"].as_str().context("login without token")?;
        let mut c = Control::connect(&format!("ws://{http}/ws/clerk"), Some(token)).await?;
        c.send(json!({"type": "hello", "protocol_versions": [1]}))
            .await?;
        c.recv_type("welcome").await?;
        let w = c
            .request(json!({"type": "open_window", "window_id": format!("w{i}")}))
            .await?;
        if w["type"] != "window_opened" {
            bail!("open_window: {w}");
        }
        let tracks = vec![
            (
                Slot::ClerkCamera,
                Kind::Video,
                clips.clerk_video.clone(),
                4 * i as u32 + 2,
            ),
            (
                Slot::ClerkMicrophone,
                Kind::Audio,
                clips.audio.clone(),
                4 * i as u32 + 3,
            ),
        ];
        peers.push(peer(&mut c, i, false, tracks, ctl).await?);
        clerks.push(c);
    }
    ctl.wait_connected(peers.len(), Duration::from_secs(30 + n as u64 / 5))
        .await?;
    // The clerks call their tickets: the relay pairs the peers and asks for keyframes.
    for (i, mut c) in clerks.into_iter().enumerate() {
        ctl.join(i);
        let r = c
            .request(json!({"type": "queue", "op": {"op": "call_next"}}))
            .await?;
        if r["type"] != "done" {
            bail!("call_next: {r}");
        }
        drains.push(c.drain(false));
    }
    Ok(Started {
        server,
        peers,
        drains,
    })
}

/// Negotiate one peer over its control connection (the fixed five-slot layout) and start it.
async fn peer(
    ctl_ws: &mut Control,
    session: usize,
    kiosk: bool,
    tracks: Vec<(Slot, Kind, Arc<crate::media::Clip>, u32)>,
    ctl: &Arc<Ctl>,
) -> anyhow::Result<tokio::task::JoinHandle<crate::peer::PeerReport>> {
    let mut p = Peer::bind(session, ctl.ip).await?;
    let mut change = p.rtc.sdp_api();
    let mut mids = [Mid::from("x"); 5];
    for slot in Slot::ORDER {
        let kind = match slot.kind() {
            SlotKind::Audio => MediaKind::Audio,
            SlotKind::Video => MediaKind::Video,
        };
        let dir = if slot.from_kiosk() == kiosk {
            Direction::SendOnly
        } else {
            Direction::RecvOnly
        };
        mids[slot.index()] = change.add_media(kind, dir, None, None, None);
    }
    let (offer, pending) = change.apply().context("no offer")?;
    let answer = ctl_ws
        .request(json!({"type": "media_offer", "sdp": offer.to_sdp_string()}))
        .await?;
    if answer["type"] != "media_answer" {
        bail!("media_offer: {answer}");
    }
    let sdp = answer["sdp"].as_str().context("answer without sdp")?;
    p.rtc
        .sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(sdp)?)?;
    for (slot, kind, clip, stream) in tracks {
        p.tracks
            .push(SendTrack::new(mids[slot.index()], kind, clip, stream));
    }
    p.negotiated();
    Ok(tokio::spawn(p.run(ctl.clone())))
}

/// The relay's own count of forwarded RTP packets.
pub async fn forwarded_counter(metrics_url: &str) -> Option<u64> {
    let text = reqwest::get(metrics_url).await.ok()?.text().await.ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("relay_sfu_rtp_forwarded_total "))
        .and_then(|v| v.trim().parse().ok())
}
