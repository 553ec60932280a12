//! Every change the relay acknowledged survives a crash: the real `relay` binary is killed with
//! SIGKILL right after acknowledgements and restarted on the same data directory, with the
//! embedded SQLite store and with PostgreSQL (`store.url`, a fresh database on the test
//! binary's private server).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Client;
use relay_kit::{RelayCommand, RelayProcess};
use serde_json::{Value, json};

fn relay_bin() -> &'static str {
    env!("CARGO_BIN_EXE_relay")
}

/// `--set store.url=…` when the relay runs on PostgreSQL.
fn store_url(url: Option<&str>) -> Option<String> {
    url.map(|u| format!("store.url=\"{u}\""))
}

fn seed(data: &Path, url: Option<&str>) {
    let mut cmd = Command::new(relay_bin());
    cmd.args(["--data-dir"])
        .arg(data)
        .args(["--set", "server.tls.self_signed=true"]);
    if let Some(set) = store_url(url) {
        cmd.args(["--set", &set]);
    }
    let out = cmd.arg("seed-demo").output().expect("run seed-demo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn start(data: &Path, url: Option<&str>) -> RelayProcess {
    let mut cmd = RelayCommand::new(relay_bin(), data).set("log.filter=\"warn\"");
    if let Some(set) = store_url(url) {
        cmd = cmd.set(set);
    }
    cmd.start_limit(Duration::from_secs(20))
        .start()
        .await
        .expect("relay did not become ready")
}

/// std's kill() is SIGKILL on Unix: no shutdown code runs.
fn crash(mut relay: RelayProcess) {
    relay.kill().expect("kill");
}

fn read(data: &Path, file: &str) -> String {
    std::fs::read_to_string(data.join("demo").join(file))
        .expect("demo file")
        .trim()
        .to_owned()
}

async fn login(http: &str, password: &str) -> String {
    relay_kit::staff::login(
        &reqwest::Client::new(),
        &format!("http://{http}"),
        "clerk1",
        password,
    )
    .await
    .expect("login")
}

async fn queue(http: &str, token: &str) -> Value {
    reqwest::Client::new()
        .get(format!("http://{http}/api/v1/queue"))
        .bearer_auth(token)
        .send()
        .await
        .expect("queue")
        .json()
        .await
        .expect("json")
}

fn ticket<'a>(q: &'a Value, number: &str) -> &'a Value {
    q["tickets"]
        .as_array()
        .expect("tickets")
        .iter()
        .find(|t| t["number"] == number)
        .unwrap_or_else(|| panic!("ticket {number} missing after restart: {q}"))
}

fn data_dir(url: Option<&str>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("relay");
    seed(&data, url);
    (dir, data)
}

async fn fresh_postgres() -> String {
    signaling::store::private_postgres::PrivatePostgres::fresh_database()
        .await
        .expect("a private PostgreSQL server (Debian package postgresql)")
}

#[tokio::test]
async fn acknowledged_queue_changes_survive_sigkill() {
    queue_changes_survive_sigkill(None).await;
}

#[tokio::test]
async fn acknowledged_queue_changes_survive_sigkill_on_postgres() {
    let url = fresh_postgres().await;
    queue_changes_survive_sigkill(Some(&url)).await;
}

async fn queue_changes_survive_sigkill(url: Option<&str>) {
    signaling::install_crypto_provider();
    let (_dir, data) = data_dir(url);
    let password = read(&data, "staff-password.txt");
    let machine = read(&data, "ticket-machine.credential");
    let kiosk_cred = read(&data, "kiosk.credential");
    let (kiosk_id, kiosk_secret) = kiosk_cred.split_once(':').expect("credential");

    let relay = start(&data, url).await;
    let http = relay.http().to_owned();
    let client = reqwest::Client::new();
    for _ in 0..2 {
        let r = client
            .post(format!("http://{http}/api/v1/tickets"))
            .bearer_auth(&machine)
            .json(&json!({"category_id": "general"}))
            .send()
            .await
            .expect("issue");
        assert_eq!(r.status(), 201);
    }
    let mut kiosk = Client::connect(&format!("ws://{http}/ws/kiosk"), None).await;
    kiosk
        .send(
            json!({"type": "hello", "protocol_versions": [1], "device_id": kiosk_id,
                     "secret": kiosk_secret, "agent_version": "test"}),
        )
        .await;
    kiosk.recv_type("welcome").await;
    // The clerk signs in first: walk-in tickets need an open window.
    let token = login(&http, &password).await;
    let mut clerk = Client::connect(&format!("ws://{http}/ws/clerk"), Some(&token)).await;
    clerk
        .send(json!({"type": "hello", "protocol_versions": [1]}))
        .await;
    clerk.recv_type("welcome").await;
    clerk
        .request(json!({"type": "open_window", "window_id": "window-08"}))
        .await;
    let taken = kiosk
        .request(json!({"type": "take_ticket", "category_id": "general"}))
        .await;
    assert_eq!(taken["ticket"]["number"], "YE001");
    let called = clerk.op(json!({"op": "call_next"})).await;
    assert_eq!(called["ticket"]["number"], "YE001");
    let started = clerk
        .op(json!({"op": "start", "ticket_id": called["ticket"]["id"]}))
        .await;
    assert_eq!(started["type"], "done");

    crash(relay);
    let relay = start(&data, url).await;
    let http = relay.http().to_owned();
    // The login session survived too.
    let q = queue(&http, &token).await;
    assert_eq!(ticket(&q, "E001")["state"], "waiting");
    assert_eq!(ticket(&q, "E002")["state"], "waiting");
    let remote = ticket(&q, "YE001");
    assert_eq!(remote["state"], "serving");
    assert_eq!(remote["window_id"], "window-08");
    let window = q["windows"]
        .as_array()
        .expect("windows")
        .iter()
        .find(|w| w["id"] == "window-08")
        .expect("window-08");
    assert_eq!(
        window["clerk_id"], "clerk-clerk1",
        "the clerk's window sign-in survived"
    );
    assert_eq!(window["current_ticket_id"], remote["id"]);
    // Numbering continues where it stopped.
    let next: Value = client
        .post(format!("http://{http}/api/v1/tickets"))
        .bearer_auth(&machine)
        .json(&json!({"category_id": "general"}))
        .send()
        .await
        .expect("issue")
        .json()
        .await
        .expect("json");
    assert_eq!(next["number"], "E003");
    crash(relay);
}

#[tokio::test]
async fn a_kill_in_the_middle_of_a_burst_loses_no_acknowledged_ticket() {
    kill_in_a_burst(None).await;
}

#[tokio::test]
async fn a_kill_in_the_middle_of_a_burst_loses_no_acknowledged_ticket_on_postgres() {
    let url = fresh_postgres().await;
    kill_in_a_burst(Some(&url)).await;
}

async fn kill_in_a_burst(url: Option<&str>) {
    signaling::install_crypto_provider();
    let (_dir, data) = data_dir(url);
    let password = read(&data, "staff-password.txt");
    let machine = read(&data, "ticket-machine.credential");
    let relay = start(&data, url).await;
    let http = relay.http().to_owned();

    // Issue tickets from a task while the main test kills the relay partway through.
    let issued = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let issued_in_task = issued.clone();
    let burst_http = http.clone();
    let burst_cred = machine.clone();
    let burst = tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        for _ in 0..400 {
            let r = client
                .post(format!("http://{burst_http}/api/v1/tickets"))
                .bearer_auth(&burst_cred)
                .json(&json!({"category_id": "health"}))
                .send()
                .await;
            match r {
                Ok(r) if r.status() == 201 => {
                    let t: Value = r.json().await.expect("json");
                    issued_in_task
                        .lock()
                        .expect("lock")
                        .push(t["number"].as_str().expect("number").to_owned());
                }
                _ => break,
            }
        }
    });
    // Kill once some tickets were acknowledged.
    let deadline = Instant::now() + Duration::from_secs(30);
    while issued.lock().expect("lock").len() < 20 {
        assert!(Instant::now() < deadline, "tickets are being issued");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    crash(relay);
    let _ = burst.await;
    let acknowledged = issued.lock().expect("lock").clone();
    assert!(acknowledged.len() >= 20);

    let relay = start(&data, url).await;
    let token = login(relay.http(), &password).await;
    let q = queue(relay.http(), &token).await;
    for number in &acknowledged {
        ticket(&q, number);
    }
    crash(relay);
}
