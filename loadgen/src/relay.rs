//! The relay under load: a fresh `relay` process on loopback with N enrolled kiosks, N clerks
//! and N remote windows, driven through its real signalling — kiosk `hello` with the device
//! credential, `take_ticket`, the five-transceiver `media_offer`; clerk login, `open_window`,
//! `media_offer`; and the clerk calling the ticket (`call_next`), which switches forwarding on.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use protocol::media::{MediaKind as SlotKind, Slot};
use relay_kit::RelayCommand;
use relay_kit::seed::LoadCentre;
use serde_json::json;
use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind, Mid};

use crate::control::Control;
use crate::peer::{Ctl, Kind, Peer, SendTrack};
use crate::server::{Clips, Server, Started, keep_if_asked};

const PASSWORD: &str = "loadgen-password-1";
const SECRET: &str = "loadgen-kiosk-secret";

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
    LoadCentre {
        sessions: n,
        centre_name: "负载测试中心",
        extension_point_name: "负载测试延伸点",
        clerk_name_prefix: "负载",
        password: PASSWORD,
        kiosk_secret: SECRET,
    }
    .seed(&dir.path().join("relay"))
    .await
    .context("seeding the relay's store")?;
    let relay = RelayCommand::new(relay_bin, dir.path().join("relay"))
        .set("media.enabled=true")
        .set(format!("media.udp_listen={}", SocketAddr::new(ctl.ip, 0)))
        .set(format!("media.max_peers={}", 2 * n + 16))
        .set(format!("recording.enabled={record}"))
        .set(format!(
            "log.filter=\"{}\"",
            // e.g. "warn,signaling::media=info,relay::sfu::join=debug" to trace joins.
            std::env::var("LOADGEN_RELAY_LOG").unwrap_or_else(|_| "warn".into())
        ))
        .set(format!("server.metrics_token=\"{METRICS_TOKEN}\""))
        .set(format!("limits.max_connections={}", 4 * n + 100))
        .log_file(dir.path().join("relay.log"))
        .start()
        .await;
    // On a failed start the kit has killed the relay; its directory is kept as for any step.
    let relay = match relay {
        Ok(relay) => relay,
        Err(e) => {
            keep_if_asked(dir);
            return Err(e.context("relay did not start"));
        }
    };
    let http = relay.http().to_owned();
    let mut server = Server::relay(relay, dir);
    server.metrics_url = Some(format!("http://{http}/metrics"));

    let client = reqwest::Client::new();
    let mut peers = Vec::new();
    let mut clerks = Vec::new();
    let mut drains = Vec::new();
    for i in 0..n {
        // The clerk signs in first: the relay gives walk-in tickets only while a window
        // that serves the category is open.
        let token = relay_kit::staff::login(
            &client,
            &format!("http://{http}"),
            &format!("clerk{i}"),
            PASSWORD,
        )
        .await?;
        let mut c = Control::connect(&format!("ws://{http}/ws/clerk"), Some(&token)).await?;
        c.send(json!({"type": "hello", "protocol_versions": [1]}))
            .await?;
        c.recv_type("welcome").await?;
        let w = c
            .request(json!({"type": "open_window", "window_id": format!("w{i}")}))
            .await?;
        if w["type"] != "window_opened" {
            bail!("open_window: {w}");
        }
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
/// The bearer token the load generator's relay is started with, to read `/metrics`.
pub const METRICS_TOKEN: &str = "loadgen-metrics-scraper";

pub async fn forwarded_counter(metrics_url: &str) -> Option<u64> {
    let text = reqwest::Client::new()
        .get(metrics_url)
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("relay_sfu_rtp_forwarded_total "))
        .and_then(|v| v.trim().parse().ok())
}
