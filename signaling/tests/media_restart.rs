//! A relay killed (SIGKILL) in the middle of a served, recorded session: on restart the
//! session resumes (its kiosk and console reconnect and offer again, forwarding and recording
//! start anew), and the dump the crash left is muxed, sealed and its row completed. The real
//! `relay` binary on the demo data, clients over its plain-HTTP development listener.
#![allow(clippy::unwrap_used)]

mod common;
mod media_support;
mod sfu_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Client;
use media_support::{PeerBuilder, negotiate, recv_where};
use protocol::media::Slot;
use relay_kit::{RelayCommand, RelayProcess};
use serde_json::{Value, json};
use signaling::sfu::Role;

fn relay_bin() -> &'static str {
    env!("CARGO_BIN_EXE_relay")
}

fn demo(data: &Path, file: &str) -> String {
    std::fs::read_to_string(data.join("demo").join(file))
        .unwrap()
        .trim()
        .to_owned()
}

async fn start(data: &Path) -> RelayProcess {
    let relay = RelayCommand::new(relay_bin(), data)
        .args([
            "--set",
            "media.enabled=true",
            "--set",
            "media.udp_listen=127.0.0.1:0",
        ])
        .set("log.filter=\"warn\"")
        .start_limit(Duration::from_secs(20))
        .start()
        .await
        .expect("relay did not become ready");
    assert!(relay.ready.media_udp.is_some(), "{:?}", relay.ready);
    relay
}

async fn login(http: &str, user: &str, password: &str) -> String {
    relay_kit::staff::login(
        &reqwest::Client::new(),
        &format!("http://{http}"),
        user,
        password,
    )
    .await
    .expect("login")
}

async fn kiosk(http: &str, credential: &str) -> Client {
    let (device, secret) = credential.split_once(':').unwrap();
    let mut k = Client::connect(&format!("ws://{http}/ws/kiosk"), None).await;
    k.send(json!({
        "type": "hello", "protocol_versions": [1], "device_id": device,
        "secret": secret, "agent_version": "test"
    }))
    .await;
    k.recv_type("welcome").await;
    k
}

async fn console(http: &str, token: &str) -> Client {
    let mut c = Client::connect(&format!("ws://{http}/ws/clerk"), Some(token)).await;
    c.send(json!({"type": "hello", "protocol_versions": [1]}))
        .await;
    c.recv_type("welcome").await;
    c
}

fn dump_bytes(data: &Path) -> u64 {
    std::fs::read_dir(data.join("recordings"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "rtpdump"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

async fn recordings(http: &str, token: &str) -> Vec<Value> {
    let list: Value = reqwest::Client::new()
        .get(format!("http://{http}/api/v1/recordings"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["recordings"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_in_progress_resumes_after_a_crash_and_both_recordings_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = &dir.path().join("relay");
    let out = Command::new(relay_bin())
        .arg("--data-dir")
        .arg(data)
        .args(["--set", "server.tls.self_signed=true", "seed-demo"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let password = demo(data, "staff-password.txt");
    let credential = demo(data, "kiosk.credential");

    let mut relay = start(data).await;
    let mut k = kiosk(relay.http(), &credential).await;
    let token = login(relay.http(), "clerk1", &password).await;
    let mut c = console(relay.http(), &token).await;
    let opened = c
        .request(json!({"type": "open_window", "window_id": "window-08"}))
        .await;
    assert_eq!(opened["type"], "window_opened", "{opened}");
    let taken = k
        .request(json!({"type": "take_ticket", "category_id": "social-security"}))
        .await;
    let ticket = taken["ticket"]["ticket_id"].as_str().unwrap().to_owned();
    let mut kp = PeerBuilder::new(1, Role::Kiosk).await;
    assert_eq!(negotiate(&mut k, &mut kp).await["type"], "media_answer");
    let kp = kp.run();
    kp.set_sending(true);
    let mut cp = PeerBuilder::new(11, Role::Clerk).await;
    assert_eq!(negotiate(&mut c, &mut cp).await["type"], "media_answer");
    let cp = cp.run();
    cp.set_sending(true);
    assert_eq!(
        c.op(json!({"op": "call_next"})).await["ticket"]["id"],
        ticket
    );
    cp.wait("kiosk media before the crash", |s| {
        s.received.get(&Slot::KioskCamera).copied().unwrap_or(0) > 60
    })
    .await;
    // Wait until the recorder's writer has flushed media to the dump (every 250 ms).
    let deadline = Instant::now() + Duration::from_secs(10);
    while dump_bytes(data) < 20_000 {
        assert!(Instant::now() < deadline, "nothing was written to the dump");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    relay.kill().unwrap();
    kp.close().await;
    cp.close().await;
    drop((k, c));
    let dumps: Vec<_> = std::fs::read_dir(data.join("recordings"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "rtpdump"))
        .collect();
    assert_eq!(dumps.len(), 1, "the crash left the session's dump");

    // Restart: the kiosk and the console reconnect and offer again; the session resumes.
    let mut relay = start(data).await;
    let mut k = kiosk(relay.http(), &credential).await;
    let mut kp = PeerBuilder::new(2, Role::Kiosk).await;
    assert_eq!(negotiate(&mut k, &mut kp).await["type"], "media_answer");
    let kp = kp.run();
    recv_where(&mut k, "media_sending", |m| m["sending"] == true).await;
    kp.set_sending(true);
    let mut c = console(relay.http(), &token).await;
    let mut cp = PeerBuilder::new(12, Role::Clerk).await;
    assert_eq!(negotiate(&mut c, &mut cp).await["type"], "media_answer");
    let cp = cp.run();
    cp.set_sending(true);
    let session = recv_where(&mut c, "media_session", |m| !m["ticket_id"].is_null()).await;
    assert_eq!(session["ticket_id"], ticket.as_str());
    cp.wait("kiosk media after the restart", |s| {
        s.received.get(&Slot::KioskCamera).copied().unwrap_or(0) > 30
    })
    .await;
    kp.wait("clerk media after the restart", |s| {
        s.received.get(&Slot::ClerkCamera).copied().unwrap_or(0) > 30
    })
    .await;

    // The crashed recording was recovered; the new one completes when the session ends.
    let boss = login(relay.http(), "supervisor1", &password).await;
    c.op(json!({"op": "start", "ticket_id": ticket})).await;
    c.op(json!({"op": "finish", "ticket_id": ticket})).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let rows = loop {
        let rows = recordings(relay.http(), &boss).await;
        if rows.len() == 2 && rows.iter().all(|r| r["state"] == "complete") {
            break rows;
        }
        assert!(Instant::now() < deadline, "recordings: {rows:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for r in &rows {
        assert_eq!(r["ticket_id"], ticket.as_str());
        assert_eq!(r["encrypted"], true);
        assert!(r["tracks"].as_array().unwrap().len() >= 4, "{r}");
    }
    let left: Vec<String> = std::fs::read_dir(data.join("recordings"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".sealed"))
        .collect();
    assert!(left.is_empty(), "only sealed recordings remain: {left:?}");
    kp.close().await;
    cp.close().await;
    relay.kill().unwrap();
}
