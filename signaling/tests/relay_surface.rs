//! The relay's surface as an outsider sees it: what `/metrics` shows to whom, the headers every
//! answer carries, and log lines a client cannot forge.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{METRICS_TOKEN, TestRelay};
use serde_json::json;

#[tokio::test]
async fn metrics_are_not_served_to_the_internet() {
    let relay = TestRelay::start_with(|c| {
        c.server.metrics_listen = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    let client = reqwest::Client::new();
    // curl -sk https://relay:8443/metrics
    let anonymous = client.get(relay.url("/metrics")).send().await.expect("get");
    assert_eq!(anonymous.status(), 404);
    let guessed = client
        .get(relay.url("/metrics"))
        .bearer_auth("test-metrics-scraper-tokem")
        .send()
        .await
        .expect("get");
    assert_eq!(guessed.status(), 404);
    let scraper = client
        .get(relay.url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .expect("get");
    assert_eq!(scraper.status(), 200);
    assert!(scraper.text().await.expect("text").contains("# EOF"));
    // The separate listener serves them to the host itself, and nothing else.
    let local = relay.metrics_addr().expect("metrics listener");
    assert!(local.ip().is_loopback());
    let text = client
        .get(format!("http://{local}/metrics"))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    assert!(text.contains("# EOF"));
    let other = client
        .get(format!("http://{local}/api/v1/queue"))
        .send()
        .await
        .expect("get");
    assert_eq!(other.status(), 404);
    relay.stop().await;
}

#[tokio::test]
async fn every_answer_asks_browsers_to_stay_on_https() {
    let relay = TestRelay::start().await;
    for path in ["/", "/api/v1/me", "/healthz", "/no-such-page"] {
        let r = reqwest::get(relay.url(path)).await.expect("get");
        assert_eq!(
            r.headers()
                .get("strict-transport-security")
                .and_then(|v| v.to_str().ok()),
            Some("max-age=31536000"),
            "{path}"
        );
    }
    relay.stop().await;
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A hello whose device id carries a line break and a fake log line: the text log must show it
/// escaped on the one line of the refusal, never as a line of its own.
#[tokio::test]
async fn a_device_id_cannot_plant_log_lines() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    // The test runtime has one thread: the relay's tasks log through this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);
    let relay = TestRelay::start().await;
    let forged = "2026-01-01T00:00:00Z  INFO clerk logged in clerk=boss";
    let mut k = common::Client::connect(&relay.ws_url("/ws/kiosk"), None).await;
    k.send(json!({
        "type": "hello", "protocol_versions": [1],
        "device_id": format!("x\n{forged}"),
        "secret": "wrong", "agent_version": format!("1\r\n{forged}")
    }))
    .await;
    let refusal = k.recv_type("error").await;
    assert_eq!(refusal["code"], "unauthenticated");
    k.expect_closed().await;
    relay.stop().await;
    let log = String::from_utf8_lossy(&captured.0.lock().expect("lock")).into_owned();
    let refused = log
        .lines()
        .find(|l| l.contains("kiosk authentication failed"))
        .unwrap_or_else(|| panic!("the refusal is logged: {log}"));
    assert!(refused.contains("\\n2026-01-01"), "{refused}");
    assert!(
        !log.lines().any(|l| l.starts_with("2026-01-01")),
        "a forged line: {log}"
    );
}

fn refused_status(e: tokio_tungstenite::tungstenite::Error) -> u16 {
    match e {
        tokio_tungstenite::tungstenite::Error::Http(r) => r.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

/// Sockets opened and left silent before `hello` no longer take every connection slot: one
/// address holds at most its share of unauthenticated ones, consoles and authenticated
/// kiosks keep their permits, and a silent socket is closed at the hello deadline.
#[tokio::test]
async fn silent_sockets_from_one_address_cannot_take_every_slot() {
    let relay = TestRelay::start_with(|c| {
        c.limits.max_connections = 10;
        c.limits.max_pending_per_source = 4;
        c.limits.max_pending_connections = 6;
        c.limits.handshake_timeout_secs = 1;
    })
    .await;
    let url = relay.ws_url("/ws/kiosk");
    let mut silent = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..10 {
        match common::Client::try_connect(&url, None, None).await {
            Ok(c) => silent.push(c),
            Err(e) => refused.push(refused_status(e)),
        }
    }
    assert_eq!(silent.len(), 4);
    assert_eq!(refused, vec![429; 6]);
    // The console still gets in, and so does a kiosk once the silent ones are gone.
    let mut clerk = relay.clerk("clerk-a").await;
    clerk.send(json!({"type": "ping", "seq": 1})).await;
    assert_eq!(clerk.recv_type("pong").await["seq"], 1);
    for mut s in silent {
        s.expect_closed().await;
    }
    let mut k = relay.kiosk("k1", common::KIOSK_SECRET).await;
    k.recv_type("welcome").await;
    let metrics = relay.metrics().await;
    assert!(
        metrics.contains("relay_pending_refused_total 6"),
        "{metrics}"
    );
    relay.stop().await;
}

/// A sibling host of the same site passes `SameSite=Strict`: its page can post a `text/plain`
/// form (or a body with no type) to close a counter, or post with no body at all to reveal an
/// ID card. Writes now need JSON (or the uploads' own types) and no foreign `Origin`.
#[tokio::test]
async fn cross_site_writes_are_refused() {
    let relay = TestRelay::start().await;
    let token = relay.login("registrar").await;
    let client = reqwest::Client::new();
    let host = relay.addr.to_string();
    let close = relay.url("/api/v1/registry/counters/p1/close");
    let form = client
        .post(&close)
        .header("cookie", format!("rvw_session={token}"))
        .header("content-type", "text/plain")
        .body(r#"{"version":1,"reason":"x"}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(form.status(), 415);
    let untyped = client
        .post(&close)
        .bearer_auth(&token)
        .body(r#"{"version":1,"reason":"x"}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(untyped.status(), 415);
    let foreign = client
        .post(relay.url("/api/v1/cases/t1/items/i1/reveal"))
        .bearer_auth(&token)
        .header("origin", "https://sibling.example.gov.cn")
        .send()
        .await
        .expect("post");
    assert_eq!(foreign.status(), 403);
    // The relay's own pages: JSON, same origin.
    let own = client
        .post(relay.url("/api/v1/login"))
        .header("origin", format!("http://{host}"))
        .json(&json!({"username": "registrar", "password": common::PASSWORD}))
        .send()
        .await
        .expect("post");
    assert_eq!(own.status(), 200);
    relay.stop().await;
}
