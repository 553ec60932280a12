//! Media through the relay's real WebSockets and SFU: kiosks and consoles offer ahead of any
//! call, nothing is forwarded while waiting, calling the ticket connects the pair (and tells
//! both ends), finishing disconnects it and stores the recording; a console re-offer, a kiosk
//! reconnect and a kiosk re-offer during a session keep media flowing into one recording.
//! Clients are str0m peers on real UDP sockets (127.0.0.1, port 0).
#![allow(clippy::unwrap_used)]

mod common;
mod media_support;
mod sfu_support;

use std::time::Duration;

use media_support::{MediaRelay, PeerBuilder, negotiate, recv_where};
use protocol::media::Slot;
use serde_json::{Value, json};
use signaling::recorder::sealed::{MasterKey, SealedReader};
use signaling::sfu::Role;
use signaling::store::recordings::RecordingState;

async fn take_ticket(kiosk: &mut common::Client) -> Value {
    let r = kiosk
        .request(json!({"type": "take_ticket", "category_id": "civil"}))
        .await;
    assert_eq!(r["type"], "ticket_taken", "{r}");
    r["ticket"].clone()
}

async fn open_window(clerk: &mut common::Client, window: &str) {
    let r = clerk
        .request(json!({"type": "open_window", "window_id": window}))
        .await;
    assert_eq!(r["type"], "window_opened", "{r}");
}

fn sending(v: bool) -> impl Fn(&Value) -> bool {
    move |m: &Value| m["sending"] == v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calling_connects_media_and_finishing_stores_the_recording() {
    let relay = MediaRelay::start().await;

    // The kiosk is online with a ticket and its media connection is up, ahead of any call.
    let (mut kiosk, welcome) = relay.kiosk("k1").await;
    assert_eq!(welcome["ice_servers"], json!([]), "no TURN configured");
    // The console signs in to the remote window first: walk-in tickets need an open window.
    let (mut clerk, _) = relay.clerk("clerk-a").await;
    open_window(&mut clerk, "w-remote").await;
    let ticket = take_ticket(&mut kiosk).await;
    let mut kp = PeerBuilder::new(1, Role::Kiosk).await;
    let answer = negotiate(&mut kiosk, &mut kp).await;
    assert_eq!(answer["type"], "media_answer", "{answer}");
    let kp = kp.run();
    recv_where(&mut kiosk, "media_sending", sending(false)).await;
    kp.wait("kiosk media up", |s| s.connected).await;

    // The console connects its media too.
    let mut cp = PeerBuilder::new(11, Role::Clerk).await;
    assert_eq!(negotiate(&mut clerk, &mut cp).await["type"], "media_answer");
    let cp = cp.run();
    cp.wait("console media up", |s| s.connected).await;

    // Even a kiosk that sends while waiting reaches nobody.
    kp.set_sending(true);
    cp.set_sending(true);
    let sfu = relay.state.media.sfu().expect("running").clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sfu.metrics().snapshot().rtp_dropped_unconnected < 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "kiosk RTP reached the relay"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cp.received(Slot::KioskCamera), 0);
    assert_eq!(sfu.metrics().snapshot().rtp_forwarded, 0);

    // Calling the ticket switches forwarding on and tells both ends.
    let r = clerk.op(json!({"op": "call_next"})).await;
    assert_eq!(r["ticket"]["id"], ticket["ticket_id"], "{r}");
    recv_where(&mut kiosk, "media_sending", sending(true)).await;
    let session = recv_where(&mut clerk, "media_session", |m| !m["ticket_id"].is_null()).await;
    assert_eq!(session["ticket_id"], ticket["ticket_id"]);
    assert_eq!(session["kiosk_media"], "connected");
    cp.wait("kiosk camera at the console", |s| {
        s.received.get(&Slot::KioskCamera).copied().unwrap_or(0) >= 30
            && s.received.get(&Slot::KioskMicrophone).copied().unwrap_or(0) >= 30
    })
    .await;
    kp.wait("clerk camera at the kiosk", |s| {
        s.received.get(&Slot::ClerkCamera).copied().unwrap_or(0) >= 30
            && s.received.get(&Slot::ClerkMicrophone).copied().unwrap_or(0) >= 30
    })
    .await;
    assert!(
        kp.shared.lock().unwrap().keyframe_requests > 0,
        "keyframe asked on connect"
    );

    // Finishing disconnects the pair and tells both ends.
    let id = ticket["ticket_id"].as_str().unwrap().to_owned();
    assert_eq!(
        clerk.op(json!({"op": "start", "ticket_id": id})).await["type"],
        "done"
    );
    assert_eq!(
        clerk.op(json!({"op": "finish", "ticket_id": id})).await["type"],
        "done"
    );
    recv_where(&mut kiosk, "media_sending", sending(false)).await;
    let idle = recv_where(&mut clerk, "media_session", |m| m["ticket_id"].is_null()).await;
    assert_eq!(idle["kiosk_media"], "none");
    let stats = sfu.peer_stats(signaling::sfu::PeerId(1)).await.unwrap();
    assert!(stats.is_some_and(|s| s.partner.is_none()), "{stats:?}");
    assert_eq!(sfu.metrics().snapshot().pairs, 0);

    // The recording is muxed, sealed and described.
    let rows = relay
        .wait_recordings(|rows| rows.iter().any(|r| r.state != RecordingState::Recording))
        .await;
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!(r.state, RecordingState::Complete, "{r:#?}");
    assert_eq!(r.ticket_id, id);
    assert_eq!(r.ticket_number, ticket["number"].as_str().unwrap());
    assert_eq!(
        (
            r.centre_id.as_str(),
            r.window_id.as_str(),
            r.clerk_id.as_str(),
            r.device_id.as_str()
        ),
        ("c1", "w-remote", "id-clerk-a", "k1")
    );
    assert_eq!(r.extension_point_id.as_deref(), Some("p1"));
    assert!(r.encrypted && r.ended_ms >= Some(r.started_ms));
    let slots: Vec<Slot> = r.tracks.iter().map(|t| t.slot).collect();
    for slot in [
        Slot::KioskCamera,
        Slot::KioskMicrophone,
        Slot::ClerkCamera,
        Slot::ClerkMicrophone,
    ] {
        assert!(slots.contains(&slot), "{slot:?} recorded: {slots:?}");
    }
    // The file on disk is sealed: it opens with the relay's key and hashes to the stored sum.
    let file = relay
        .dir
        .path()
        .join("recordings")
        .join(r.file.as_deref().unwrap());
    let key = MasterKey::load(&relay.keys.path().join("keys/recordings.key")).unwrap();
    let mut reader = SealedReader::open(&[key], &file).unwrap();
    assert_eq!(Some(reader.len() as i64), r.size_bytes);
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    reader
        .read_range(0, reader.len(), |p| {
            sha2::Digest::update(&mut hasher, p);
            true
        })
        .unwrap();
    assert_eq!(Some(hex::encode(sha2::Digest::finalize(hasher))), r.sha256);
    let left: Vec<String> = std::fs::read_dir(relay.dir.path().join("recordings"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        left,
        vec![r.file.clone().unwrap()],
        "no dump or plaintext left"
    );

    // The SFU's and the recorder's counters are on /metrics.
    let metrics = relay.metrics().await;
    for name in [
        "relay_sfu_rtp_forwarded_total",
        "relay_recorder_recordings_muxed_total 1",
        "relay_media_recordings_stored_total 1",
        "relay_sfu_pairs 0",
    ] {
        assert!(metrics.contains(name), "{name} in /metrics:\n{metrics}");
    }
    kp.close().await;
    cp.close().await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reoffers_and_a_kiosk_reconnect_keep_one_session_flowing() {
    let relay = MediaRelay::start().await;
    let (mut kiosk, _) = relay.kiosk("k1").await;
    let (mut clerk, _) = relay.clerk("clerk-a").await;
    open_window(&mut clerk, "w-remote").await;
    let ticket = take_ticket(&mut kiosk).await;
    let mut kp = PeerBuilder::new(1, Role::Kiosk).await;
    negotiate(&mut kiosk, &mut kp).await;
    let kp = kp.run();
    kp.set_sending(true);
    let mut cp = PeerBuilder::new(11, Role::Clerk).await;
    negotiate(&mut clerk, &mut cp).await;
    let cp = cp.run();
    cp.set_sending(true);
    clerk.op(json!({"op": "call_next"})).await;
    cp.wait("kiosk media", |s| {
        s.received.get(&Slot::KioskCamera).copied().unwrap_or(0) > 10
    })
    .await;

    // The console offers again (an ICE restart in the browser is a new offer): the new peer
    // is connected at once, and the console hears which session it receives.
    let mut cp2 = PeerBuilder::new(12, Role::Clerk).await;
    assert_eq!(
        negotiate(&mut clerk, &mut cp2).await["type"],
        "media_answer"
    );
    let cp2 = cp2.run();
    cp2.set_sending(true);
    recv_where(&mut clerk, "media_session", |m| {
        m["ticket_id"] == ticket["ticket_id"]
    })
    .await;
    cp2.wait("kiosk media on the new console peer", |s| {
        s.received.get(&Slot::KioskCamera).copied().unwrap_or(0) > 10
    })
    .await;
    kp.wait("the new console peer's camera at the kiosk", |s| {
        s.by_tag.get(&(Slot::ClerkCamera, 12)).copied().unwrap_or(0) > 10
    })
    .await;
    cp.close().await;

    // The kiosk's control connection drops and comes back; its media reconnects.
    drop(kiosk);
    kp.close().await;
    recv_where(&mut clerk, "media_session", |m| m["kiosk_media"] == "lost").await;
    let (mut kiosk, welcome) = relay.kiosk("k1").await;
    assert_eq!(welcome["ticket"]["ticket_id"], ticket["ticket_id"]);
    recv_where(&mut kiosk, "media_sending", sending(true)).await;
    let mut kp2 = PeerBuilder::new(2, Role::Kiosk).await;
    negotiate(&mut kiosk, &mut kp2).await;
    let kp2 = kp2.run();
    kp2.set_sending(true);
    recv_where(&mut clerk, "media_session", |m| {
        m["kiosk_media"] == "connected"
    })
    .await;
    cp2.wait("the reconnected kiosk's camera", |s| {
        s.by_tag.get(&(Slot::KioskCamera, 2)).copied().unwrap_or(0) > 10
    })
    .await;

    // A kiosk re-offer on the same connection (ICE restart) also continues the session.
    let mut kp3 = PeerBuilder::new(3, Role::Kiosk).await;
    assert_eq!(
        negotiate(&mut kiosk, &mut kp3).await["type"],
        "media_answer"
    );
    let kp3 = kp3.run();
    kp3.set_sending(true);
    cp2.wait("the re-offered kiosk's camera", |s| {
        s.by_tag.get(&(Slot::KioskCamera, 3)).copied().unwrap_or(0) > 10
    })
    .await;
    kp2.close().await;

    let id = ticket["ticket_id"].as_str().unwrap().to_owned();
    clerk.op(json!({"op": "start", "ticket_id": id})).await;
    clerk.op(json!({"op": "finish", "ticket_id": id})).await;
    let rows = relay
        .wait_recordings(|rows| {
            rows.iter().all(|r| r.state != RecordingState::Recording) && !rows.is_empty()
        })
        .await;
    assert_eq!(
        rows.len(),
        1,
        "one recording for the whole session: {rows:#?}"
    );
    assert_eq!(rows[0].state, RecordingState::Complete);
    kp3.close().await;
    cp2.close().await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_offers_are_refused_and_counted_without_harm() {
    let relay = MediaRelay::start().await;
    let (mut kiosk, _) = relay.kiosk("k1").await;
    let r = kiosk
        .request(json!({"type": "media_offer", "sdp": "v=0 not sdp"}))
        .await;
    assert_eq!(r["type"], "error");
    assert_eq!(r["code"], "bad_message");
    // A clerk's layout offered on the kiosk connection does not fit the kiosk role.
    let mut wrong = PeerBuilder::new(5, Role::Clerk).await;
    let r = negotiate(&mut kiosk, &mut wrong).await;
    assert_eq!(r["code"], "bad_message", "{r}");
    // The connection stays usable.
    let mut kp = PeerBuilder::new(1, Role::Kiosk).await;
    assert_eq!(negotiate(&mut kiosk, &mut kp).await["type"], "media_answer");
    // Staff without a serving role may not offer media.
    let (mut registrar, _) = relay.clerk("registrar").await;
    let mut rp = PeerBuilder::new(9, Role::Clerk).await;
    assert_eq!(
        negotiate(&mut registrar, &mut rp).await["code"],
        "forbidden"
    );
    let metrics = relay.metrics().await;
    assert!(
        metrics.contains("relay_sfu_offers_refused_total 2"),
        "{metrics}"
    );
    relay.stop().await;
}

#[tokio::test]
async fn without_media_offers_get_a_clear_error() {
    let relay = common::TestRelay::start().await;
    let mut kiosk = relay.kiosk("k1", common::KIOSK_SECRET).await;
    kiosk.recv_type("welcome").await;
    let r = kiosk
        .request(json!({"type": "media_offer", "sdp": "v=0"}))
        .await;
    assert_eq!(r["type"], "error");
    assert_eq!(r["code"], "invalid_state");
    relay.stop().await;
}

/// The queue answers a command before it pushes kiosk statuses; taking a ticket must still
/// answer with that ticket every time (it once raced and answered "busy" now and then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kiosks_always_get_the_ticket_they_took() {
    let relay = MediaRelay::start().await;
    let (mut clerk, _) = relay.clerk("clerk-a").await;
    open_window(&mut clerk, "w-remote").await;
    for round in 0..20 {
        for device in ["k1", "k2"] {
            let (mut kiosk, _) = relay.kiosk(device).await;
            let ticket = take_ticket(&mut kiosk).await;
            assert_eq!(ticket["state"], "waiting", "round {round}: {ticket}");
            let r = kiosk
                .request(json!({"type": "cancel_ticket", "ticket_id": ticket["ticket_id"]}))
                .await;
            assert_eq!(r["type"], "ticket_cancelled", "{r}");
        }
    }
    relay.stop().await;
}
