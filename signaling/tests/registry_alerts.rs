//! The alert task against a real webhook receiver: a failing device raises an alert that is
//! retried until the receiver takes it, and cleared once the device recovers.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::{KIOSK_SECRET, TestRelay, WAIT};
use serde_json::{Value, json};
use tokio::sync::mpsc;

struct Receiver {
    calls: AtomicU32,
    seen: mpsc::Sender<(Value, Option<String>)>,
}

async fn hook(
    State(r): State<Arc<Receiver>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    // The first delivery fails, so the retry path runs.
    if r.calls.fetch_add(1, Ordering::SeqCst) == 0 {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let _ = r.seen.send((body, auth)).await;
    StatusCode::NO_CONTENT
}

async fn next(rx: &mut mpsc::Receiver<(Value, Option<String>)>) -> (Value, Option<String>) {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("an alert within the time limit")
        .expect("receiver alive")
}

#[tokio::test]
async fn a_failing_device_is_alerted_retried_and_cleared() {
    let (tx, mut rx) = mpsc::channel(16);
    let receiver = Arc::new(Receiver {
        calls: AtomicU32::new(0),
        seen: tx,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let app = axum::Router::new()
        .route("/hook", post(hook))
        .with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "hook-token\n").expect("token");

    let relay = TestRelay::start_with(|c| {
        c.alerts.webhook_url = Some(format!("http://127.0.0.1:{port}/hook"));
        c.alerts.webhook_token_file = Some(token_file.clone());
        c.alerts.check_every_secs = 1;
        c.alerts.retry_initial_secs = 1;
        c.alerts.max_attempts = 3;
    })
    .await;
    // The relay runs its own alert task (started with the relay, as in production).

    let mut k = relay.kiosk("k1", KIOSK_SECRET).await;
    k.recv_type("welcome").await;
    let status = |s: &str| {
        json!({"type": "device", "message": {"type": "unsolicited", "name": "Common.StatusChangedEvent",
            "payload": {"device": "id_card_reader", "status": s}}})
    };
    k.send(status("device_busy")).await;
    k.send(status("hardware_error")).await;

    let (alert, auth) = next(&mut rx).await;
    assert_eq!(alert["key"], "device_failed:k1:id_card_reader");
    assert_eq!(alert["kind"], "device_failed");
    assert_eq!(alert["state"], "firing");
    assert_eq!(alert["status"], "hardware_error");
    assert_eq!(alert["extension_point_id"], "p1");
    assert!(
        alert["message_zh"]
            .as_str()
            .expect("zh")
            .contains("身份证阅读器硬件故障")
    );
    assert_eq!(auth.as_deref(), Some("Bearer hook-token"));
    assert!(
        receiver.calls.load(Ordering::SeqCst) >= 2,
        "delivered on a retry"
    );

    let token = relay.login("registrar").await;
    let alerts: Value = reqwest::Client::new()
        .get(relay.url("/api/v1/ops/alerts"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("alerts")
        .json()
        .await
        .expect("json");
    assert_eq!(
        alerts["alerts"][0]["key"],
        "device_failed:k1:id_card_reader"
    );

    k.send(status("online")).await;
    let (cleared, _) = next(&mut rx).await;
    assert_eq!(cleared["key"], "device_failed:k1:id_card_reader");
    assert_eq!(cleared["state"], "resolved");

    let metrics = relay.metrics().await;
    assert!(
        metrics.contains("relay_health_alerts_raised_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("relay_health_alerts_cleared_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("relay_alert_webhook_delivered_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("relay_alert_webhook_failed_attempts_total 1"),
        "{metrics}"
    );
    relay.stop().await;
}
