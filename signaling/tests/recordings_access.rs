//! Recordings are for supervisors of their own centre only, every access is audited (granted
//! or not), playback honours byte ranges over the sealed file, and the retention job deletes
//! what is past its time and audits each deletion.
#![allow(clippy::unwrap_used)]

mod common;
mod media_support;
mod sfu_support;

use media_support::MediaRelay;
use reqwest::StatusCode;
use serde_json::Value;
use signaling::media::archive::RETENTION_ACTOR;
use signaling::recorder::sealed::{self, MasterKey};
use signaling::store::recordings::{
    AccessAction, RecordingRow, RecordingState, RecordingStore, TrackSummary,
};

const DAY_MS: i64 = 24 * 3600 * 1000;

fn now_ms() -> i64 {
    use signaling::clock::Clock;
    signaling::clock::SystemClock.now_ms()
}

/// Store a complete, sealed recording of `centre` with `plain` as its content.
async fn stored(relay: &MediaRelay, id: &str, centre: &str, started_ms: i64, plain: &[u8]) {
    let dir = relay.dir.path().join("recordings");
    std::fs::create_dir_all(&dir).unwrap();
    let plain_path = dir.join(format!("{id}.webm"));
    std::fs::write(&plain_path, plain).unwrap();
    let key = MasterKey::load(&relay.keys.path().join("keys/recordings.key")).unwrap();
    let s = sealed::seal_file(&key, &plain_path, &sealed::sealed_path(&plain_path)).unwrap();
    std::fs::remove_file(&plain_path).unwrap();
    relay
        .store
        .save_recording(&RecordingRow {
            id: id.into(),
            ticket_id: format!("ticket-{id}"),
            ticket_number: "YA007".into(),
            centre_id: centre.into(),
            window_id: "w-remote".into(),
            clerk_id: "id-clerk-a".into(),
            device_id: "k1".into(),
            extension_point_id: Some("p1".into()),
            state: RecordingState::Complete,
            started_ms,
            ended_ms: Some(started_ms + 60_000),
            duration_ms: Some(60_000),
            size_bytes: Some(plain.len() as i64),
            sha256: Some(s.plaintext_sha256_hex),
            file: Some(format!("{id}.webm.sealed")),
            container: Some("webm".into()),
            tracks: vec![TrackSummary {
                slot: protocol::media::Slot::KioskCamera,
                codec: "vp8".into(),
                frames: 1800,
                dropped_frames: 0,
            }],
            encrypted: true,
            torn_tail: false,
            error: None,
            purged_ms: None,
        })
        .await
        .unwrap();
}

async fn get(
    relay: &MediaRelay,
    token: Option<&str>,
    path: &str,
    range: Option<&str>,
) -> reqwest::Response {
    let mut r = reqwest::Client::new().get(relay.url(path));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(range) = range {
        r = r.header("range", range);
    }
    r.send().await.unwrap()
}

fn content(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[tokio::test]
async fn only_supervisors_of_the_centre_see_and_play_recordings_and_every_access_is_audited() {
    let relay = MediaRelay::start().await;
    let plain = content(300_000);
    stored(&relay, "rec-c1", "c1", now_ms(), &plain).await;
    stored(&relay, "rec-c2", "c2", now_ms(), &content(1000)).await;
    let boss = relay.login("boss").await;
    let clerk = relay.login("clerk-a").await;

    // Without a login: nothing.
    assert_eq!(
        get(&relay, None, "/api/v1/recordings", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // A clerk who is not a supervisor: refused, and the refusal is on record.
    assert_eq!(
        get(&relay, Some(&clerk), "/api/v1/recordings", None)
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(
            &relay,
            Some(&clerk),
            "/api/v1/recordings/rec-c1/media",
            None
        )
        .await
        .status(),
        StatusCode::FORBIDDEN
    );

    // The supervisor lists only the own centre's recordings, and never where they are stored.
    let r = get(&relay, Some(&boss), "/api/v1/recordings", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let list: Value = r.json().await.unwrap();
    let ids: Vec<&str> = list["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["rec-c1"]);
    assert!(list["recordings"][0].get("file").is_none());
    assert_eq!(list["recordings"][0]["playable"], true);
    // Another centre's recording does not exist for this supervisor.
    assert_eq!(
        get(&relay, Some(&boss), "/api/v1/recordings/rec-c2", None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&relay, Some(&boss), "/api/v1/recordings/rec-c2/media", None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    // Playback decrypts on the fly, whole or by range.
    let whole = get(&relay, Some(&boss), "/api/v1/recordings/rec-c1/media", None).await;
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.headers()["content-type"], "video/webm");
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    assert_eq!(whole.bytes().await.unwrap().as_ref(), plain.as_slice());
    let part = get(
        &relay,
        Some(&boss),
        "/api/v1/recordings/rec-c1/media",
        Some("bytes=65530-70000"),
    )
    .await;
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.headers()["content-range"], "bytes 65530-70000/300000");
    assert_eq!(part.bytes().await.unwrap().as_ref(), &plain[65530..=70000]);
    let tail = get(
        &relay,
        Some(&boss),
        "/api/v1/recordings/rec-c1/media",
        Some("bytes=-10"),
    )
    .await;
    assert_eq!(
        tail.bytes().await.unwrap().as_ref(),
        &plain[plain.len() - 10..]
    );
    let beyond = get(
        &relay,
        Some(&boss),
        "/api/v1/recordings/rec-c1/media",
        Some("bytes=400000-"),
    )
    .await;
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(beyond.headers()["content-range"], "bytes */300000");

    // The access trail says who did what to which recording.
    let trail = relay
        .store
        .recording_audit(Some("rec-c1"), 100)
        .await
        .unwrap();
    let by = |actor: &str, action: AccessAction| {
        trail
            .iter()
            .filter(|a| a.actor == actor && a.action == action)
            .count()
    };
    assert_eq!(by("id-clerk-a", AccessAction::Denied), 1, "{trail:#?}");
    assert_eq!(by("id-boss", AccessAction::Play), 4, "{trail:#?}");
    assert!(
        trail
            .iter()
            .any(|a| a.action == AccessAction::Play && a.detail == "bytes=65530-70000")
    );
    let all = relay.store.recording_audit(None, 100).await.unwrap();
    assert!(
        all.iter()
            .any(|a| a.actor == "id-boss" && a.action == AccessAction::List)
    );
    assert!(all.iter().any(|a| a.actor == "id-clerk-a"
        && a.action == AccessAction::Denied
        && a.recording_id.is_none()));
    assert!(
        all.iter().any(
            |a| a.action == AccessAction::Denied && a.recording_id.as_deref() == Some("rec-c2")
        )
    );
    // Each access is a row of the relay's hash-chained trail as well.
    let chained = relay.state.audit.last(500).await.expect("trail");
    assert_eq!(
        chained
            .iter()
            .filter(|r| r.kind == "recording.play"
                && r.actor == "clerk:id-boss"
                && r.subject == "recording:rec-c1")
            .count(),
        4,
        "{chained:#?}"
    );
    // Supervisors can read a recording's trail (and that reading is itself audited).
    let log: Value = get(
        &relay,
        Some(&boss),
        "/api/v1/recordings/rec-c1/access",
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(log["access"].as_array().unwrap().len() >= 6);
    relay.stop().await;
}

#[tokio::test]
async fn the_retention_job_deletes_expired_recordings_and_audits_each_deletion() {
    let relay = MediaRelay::start_with(|c| c.recording.retention_days = 90).await;
    let now = now_ms();
    stored(&relay, "rec-old", "c1", now - 91 * DAY_MS, &content(5000)).await;
    stored(
        &relay,
        "rec-recent",
        "c1",
        now - 89 * DAY_MS,
        &content(5000),
    )
    .await;
    let archive = relay.state.media.archive().unwrap().clone();
    // The relay's own retention job runs once shortly after start and may have purged it
    // already; either way it is purged once, and audited once.
    assert!(archive.purge_expired(now).await.unwrap() <= 1);
    let dir = relay.dir.path().join("recordings");
    assert!(
        !dir.join("rec-old.webm.sealed").exists(),
        "the file is gone"
    );
    assert!(dir.join("rec-recent.webm.sealed").exists());
    let old = relay.store.recording("rec-old").await.unwrap().unwrap();
    assert_eq!(old.state, RecordingState::Purged);
    assert_eq!(old.file, None);
    let trail = relay
        .store
        .recording_audit(Some("rec-old"), 10)
        .await
        .unwrap();
    assert_eq!(trail.len(), 1);
    assert_eq!(
        (trail[0].actor.as_str(), trail[0].action),
        (RETENTION_ACTOR, AccessAction::Purge)
    );
    assert_eq!(trail[0].detail, "retention 90 days");
    // Purged recordings are not listed or playable; running again purges nothing more.
    let boss = relay.login("boss").await;
    assert_eq!(
        get(
            &relay,
            Some(&boss),
            "/api/v1/recordings/rec-old/media",
            None
        )
        .await
        .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(archive.purge_expired(now).await.unwrap(), 0);
    // Two days later the other one goes too.
    assert_eq!(archive.purge_expired(now + 2 * DAY_MS).await.unwrap(), 1);
    relay.stop().await;
}
