//! The technician page's API on the agent's loopback server: the PIN (rate limited, never
//! logged), the session cookie, the CLI's token, a run from start to its result, and the
//! guards (loopback host, same origin, one run at a time).
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent::config::{AgentConfig, Credential, Sources};
use agent::selftest::http::{Technician, routes};
use agent::selftest::service::{SelfTestService, local_access};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const PIN: &str = "975310";

/// Log lines of this test process.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn serve(technician: Technician) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, routes(technician)).await;
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_takes_a_pin_runs_a_self_test_and_shows_its_result() {
    let logs = Logs::default();
    let writer = logs.clone();
    let _ = tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_writer(move || writer.clone())
        .try_init();
    agent::install_crypto_provider();

    let dir = tempfile::tempdir().unwrap();
    let credential_file = dir.path().join("kiosk.credential");
    std::fs::write(&credential_file, "kiosk-tech:secret\n").unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hash = agent::selftest::pin::hash_pin(PIN).unwrap();
    let config = AgentConfig::load(&Sources {
        overrides: vec![
            format!("relay.url=\"wss://127.0.0.1:{closed}/ws/kiosk\""),
            format!(
                "relay.credential_file={:?}",
                credential_file.display().to_string()
            ),
            format!(
                "store.data_dir={:?}",
                dir.path().join("data").display().to_string()
            ),
            "devices.simulated=true".into(),
            format!("selftest.pin={hash:?}"),
        ],
        ..Sources::default()
    })
    .unwrap();
    let credential = Credential::read(&config.relay.credential_file).unwrap();
    let connector = agent::link::control::tls_connector(&config.relay).unwrap();
    let shutdown = CancellationToken::new();
    let (link, _bridges, _link_task) = agent::link::control::spawn(
        config.relay.clone(),
        credential.clone(),
        connector.clone(),
        shutdown.clone(),
    );
    let devices = config.devices.clone();
    let opened = tokio::task::spawn_blocking(move || agent::devices::setup::open(&devices))
        .await
        .unwrap();
    let (_handles_tx, handles) = tokio::sync::watch::channel(Some(opened.handles.clone()));
    let service = SelfTestService::new(
        &config,
        &credential,
        &connector,
        link,
        handles,
        Arc::new(|| None),
    );
    let client = reqwest::Client::new();

    // --- wrong PINs lock the page ------------------------------------------------------------
    let locked = serve(Technician::new(service.clone())).await;
    let login = |base: &str, pin: &str| {
        client
            .post(format!("{base}/api/technician/login"))
            .json(&json!({ "pin": pin }))
            .send()
    };
    for _ in 0..agent::selftest::pin::FREE_ATTEMPTS {
        assert_eq!(login(&locked, "000000").await.unwrap().status(), 401);
    }
    let r = login(&locked, PIN).await.unwrap();
    assert_eq!(r.status(), 429, "locked even for the right PIN");
    assert!(r.headers().get("retry-after").is_some());

    // --- guesses sent together do not walk past the limit ---------------------------------------
    let racy = serve(Technician::new(service.clone())).await;
    let guesses: Vec<_> = (0..20)
        .map(|i| {
            let request = client
                .post(format!("{racy}/api/technician/login"))
                .json(&json!({ "pin": format!("{:06}", 100_000 + i) }));
            tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for g in guesses {
        statuses.push(g.await.unwrap());
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(
        checked,
        agent::selftest::pin::FREE_ATTEMPTS as usize,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );

    // --- the page's whole path on a fresh page (its own PIN guard) -----------------------------
    let base = serve(Technician::new(service.clone())).await;
    let run_url = format!("{base}/api/technician/run");
    assert_eq!(client.get(&run_url).send().await.unwrap().status(), 401);
    let page = client
        .get(format!("{base}/technician"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    assert!(page.text().await.unwrap().contains("终端自检"));
    let foreign = client
        .get(&run_url)
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 421);

    let r = login(&base, PIN).await.unwrap();
    assert_eq!(r.status(), 204);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let cookie = cookie.split(';').next().unwrap().to_owned();

    let get = || client.get(&run_url).header("cookie", &cookie).send();
    let idle: Value = get().await.unwrap().json().await.unwrap();
    assert_eq!(idle["running"], false);
    assert_eq!(idle["names"]["camera.frames"][0], "摄像头 画面");

    let start = |body: Value| {
        client
            .post(&run_url)
            .header("cookie", &cookie)
            .json(&body)
            .send()
    };
    assert_eq!(
        start(json!({ "technician": "  " })).await.unwrap().status(),
        400
    );
    let cross = client
        .post(&run_url)
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .json(&json!({ "technician": "张工" }))
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    let started = start(json!({ "technician": "张工", "with_card": true }))
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let run_id = started.json::<Value>().await.unwrap()["run_id"]
        .as_u64()
        .unwrap();
    assert_eq!(
        start(json!({ "technician": "张工" }))
            .await
            .unwrap()
            .status(),
        409,
        "one run at a time"
    );

    // The CLI's token works too; a wrong one does not.
    service.publish(base.trim_start_matches("http://").parse().unwrap());
    let access = local_access(&config.store.data_dir).expect("access file");
    assert_eq!(format!("http://{}", access.local), base);
    let by_token = client
        .get(&run_url)
        .bearer_auth(&access.token)
        .send()
        .await
        .unwrap();
    assert_eq!(by_token.status(), 200);
    assert_eq!(
        client
            .get(&run_url)
            .bearer_auth("forged")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    // Follow the run to its end (bounded).
    let done = tokio::time::timeout(Duration::from_secs(90), async {
        loop {
            let v: Value = get().await.unwrap().json().await.unwrap();
            if v["running"] == false && !v["upload"].is_null() {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the run ends");
    assert_eq!(done["run_id"], run_id);
    assert_eq!(done["technician"], "张工");
    let checks = done["report"]["checks"].as_array().unwrap();
    let outcome = |id: &str| {
        checks
            .iter()
            .find(|c| c["id"] == id)
            .map(|c| c["outcome"].clone())
    };
    assert_eq!(outcome("camera.frames"), Some(json!("pass")));
    assert_eq!(outcome("id_card_reader.read"), Some(json!("pass")));
    // In the agent the login is the running link's, which cannot reach this relay.
    assert_eq!(outcome("network.login"), Some(json!("fail")));
    assert_eq!(
        outcome("network.media_udp"),
        Some(json!("skipped")),
        "media off"
    );
    assert_eq!(done["upload"]["state"], "failed");

    // The result is kept for the page after a restart; nothing secret in it.
    let last = std::fs::read_to_string(config.store.data_dir.join("selftest-last.json")).unwrap();
    assert!(last.contains("camera.frames") && !last.contains(PIN) && !last.contains("argon2"));

    assert_eq!(
        client
            .post(format!("{base}/api/technician/logout"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(get().await.unwrap().status(), 401);

    shutdown.cancel();
    drop(opened);
    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(
        text.contains("wrong PIN"),
        "wrong PINs are logged (without the PIN)"
    );
    assert!(!text.contains(PIN), "the PIN is never logged");
    assert!(!text.contains(&hash), "nor its hash");
}
