//! The control protocol over real WebSockets: the clerk ⇄ relay ⇄ kiosk round trip, error
//! replies to bad input, limits, and versioning.

mod common;

use common::{Client, KIOSK_SECRET, TestRelay};
use serde_json::json;

async fn kiosk_online(relay: &TestRelay, device: &str) -> Client {
    let mut k = relay.kiosk(device, KIOSK_SECRET).await;
    let welcome = k.recv_type("welcome").await;
    assert_eq!(welcome["device_id"], device);
    k
}

#[tokio::test]
async fn a_clerk_calls_a_kiosk_ticket_and_the_kiosk_is_told_which_window() {
    let relay = TestRelay::start().await;
    let mut kiosk = kiosk_online(&relay, "k1").await;
    // Walk-in tickets need an open window that serves the category.
    let mut clerk = relay.staffed("clerk-a", "w-remote").await;

    let taken = kiosk
        .request(json!({"type": "take_ticket", "category_id": "social"}))
        .await;
    assert_eq!(taken["type"], "ticket_taken", "{taken}");
    assert_eq!(taken["ticket"]["number"], "YB001");
    assert_eq!(taken["ticket"]["state"], "waiting");

    // The console sees the new remote ticket in the unified queue.
    let update = loop {
        let u = clerk.recv_type("update").await;
        if u["tickets"].as_array().is_some_and(|t| !t.is_empty()) {
            break u;
        }
    };
    assert_eq!(update["tickets"][0]["number"], "YB001");
    assert_eq!(update["tickets"][0]["channel"], "remote");

    let done = clerk.op(json!({"op": "call_next"})).await;
    assert_eq!(done["type"], "done", "{done}");
    assert_eq!(done["ticket"]["number"], "YB001");
    assert_eq!(done["ticket"]["state"], "called");

    // Position updates may come first (opening the window changed the estimate).
    let status = loop {
        let s = kiosk.recv_type("ticket_status").await;
        if s["ticket"]["state"] != "waiting" {
            break s;
        }
    };
    assert_eq!(status["ticket"]["state"], "called");
    assert_eq!(status["ticket"]["window_name"], "8号远程虚拟窗口");
    relay.stop().await;
}

#[tokio::test]
async fn waiting_kiosks_hear_their_position_move() {
    let relay = TestRelay::start().await;
    let mut k1 = kiosk_online(&relay, "k1").await;
    let mut k2 = kiosk_online(&relay, "k2").await;
    let mut clerk = relay.staffed("clerk-a", "w-remote").await;
    k1.request(json!({"type": "take_ticket", "category_id": "civil"}))
        .await;
    let second = k2
        .request(json!({"type": "take_ticket", "category_id": "civil"}))
        .await;
    assert_eq!(second["ticket"]["ahead"], 1);
    clerk.op(json!({"op": "call_next"})).await;
    loop {
        let s = k2.recv_type("ticket_status").await;
        if s["ticket"]["ahead"] == 0 {
            break;
        }
    }
    relay.stop().await;
}

#[tokio::test]
async fn an_on_site_window_may_not_call_a_remote_ticket() {
    let relay = TestRelay::start().await;
    let mut kiosk = kiosk_online(&relay, "k1").await;
    let _remote = relay.staffed("clerk-b", "w-remote").await;
    let taken = kiosk
        .request(json!({"type": "take_ticket", "category_id": "civil"}))
        .await;
    let id = taken["ticket"]["ticket_id"].clone();
    let mut clerk = relay.clerk("clerk-a").await;
    clerk
        .request(json!({"type": "open_window", "window_id": "w-site"}))
        .await;
    let refused = clerk.op(json!({"op": "call", "ticket_id": id})).await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["code"], "not_eligible");
    let empty = clerk.op(json!({"op": "call_next"})).await;
    assert_eq!(empty["code"], "queue_empty");
    relay.stop().await;
}

#[tokio::test]
async fn operations_in_the_wrong_state_are_refused_with_a_clear_error() {
    let relay = TestRelay::start().await;
    let mut kiosk = kiosk_online(&relay, "k1").await;
    let mut clerk = relay.clerk("clerk-a").await;
    let no_window = clerk.op(json!({"op": "call_next"})).await;
    assert_eq!(no_window["code"], "invalid_state");
    clerk
        .request(json!({"type": "open_window", "window_id": "w-remote"}))
        .await;
    kiosk
        .request(json!({"type": "take_ticket", "category_id": "civil"}))
        .await;
    let called = clerk.op(json!({"op": "call_next"})).await;
    let id = called["ticket"]["id"].clone();
    let finish = clerk.op(json!({"op": "finish", "ticket_id": id})).await;
    assert_eq!(finish["type"], "error");
    assert_eq!(finish["code"], "invalid_state");
    assert!(
        finish["message"]
            .as_str()
            .expect("message")
            .contains("已叫号")
    );
    relay.stop().await;
}

#[tokio::test]
async fn malformed_and_unknown_messages_are_answered_and_the_connection_survives() {
    let relay = TestRelay::start().await;
    let mut clerk = relay.clerk("clerk-a").await;
    clerk.send_raw("{not json").await;
    let e = clerk.recv_type("error").await;
    assert_eq!(e["code"], "bad_message");
    clerk
        .send(json!({"type": "teleport", "request_id": 41}))
        .await;
    let e = clerk.recv_type("error").await;
    assert_eq!(e["code"], "unknown_type");
    assert_eq!(e["request_id"], 41);
    clerk
        .send(json!({"type": "open_window", "request_id": 42}))
        .await;
    let e = clerk.recv_type("error").await;
    assert_eq!(e["code"], "bad_message");
    assert_eq!(e["request_id"], 42);
    // Still connected.
    clerk.send(json!({"type": "ping", "seq": 7})).await;
    assert_eq!(clerk.recv_type("pong").await["seq"], 7);
    let metrics = relay.metrics().await;
    assert!(
        metrics.contains(r#"relay_protocol_errors_total{kind="clerk",code="bad_message"} 2"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"relay_protocol_errors_total{kind="clerk",code="unknown_type"} 1"#));
    relay.stop().await;
}

#[tokio::test]
async fn a_client_that_keeps_sending_garbage_is_disconnected() {
    let relay = TestRelay::start_with(|c| c.limits.max_bad_messages_per_minute = 3).await;
    let mut kiosk = kiosk_online(&relay, "k1").await;
    for _ in 0..5 {
        kiosk.send_raw("garbage").await;
    }
    kiosk.expect_closed().await;
    relay.stop().await;
}

#[tokio::test]
async fn frames_over_the_size_limit_close_the_connection() {
    let relay = TestRelay::start_with(|c| c.limits.max_frame_bytes = 1024).await;
    let mut clerk = relay.clerk("clerk-a").await;
    let big = format!(r#"{{"type":"ping","seq":1,"pad":"{}"}}"#, "x".repeat(4096));
    clerk.send_raw(&big).await;
    clerk.expect_closed().await;
    relay.stop().await;
}

#[tokio::test]
async fn an_unsupported_protocol_version_is_refused() {
    let relay = TestRelay::start().await;
    let mut kiosk = Client::connect(&relay.ws_url("/ws/kiosk"), None).await;
    kiosk
        .send(
            json!({"type": "hello", "protocol_versions": [99], "device_id": "k1",
                     "secret": KIOSK_SECRET, "agent_version": "future"}),
        )
        .await;
    let e = kiosk.recv_type("error").await;
    assert_eq!(e["code"], "unsupported_version");
    kiosk.expect_closed().await;
    relay.stop().await;
}

#[tokio::test]
async fn hello_must_come_first() {
    let relay = TestRelay::start().await;
    let token = relay.login("clerk-a").await;
    let mut clerk = Client::connect(&relay.ws_url("/ws/clerk"), Some(&token)).await;
    clerk.send(json!({"type": "ping", "seq": 1})).await;
    let e = clerk.recv_type("error").await;
    assert_eq!(e["code"], "bad_message");
    clerk.expect_closed().await;
    relay.stop().await;
}

#[tokio::test]
async fn a_newer_connection_of_the_same_kiosk_replaces_the_old_one() {
    let relay = TestRelay::start().await;
    let _staff = relay.staffed("clerk-b", "w-remote").await;
    let mut old = kiosk_online(&relay, "k1").await;
    let mut new = kiosk_online(&relay, "k1").await;
    old.expect_closed().await;
    let taken = new
        .request(json!({"type": "take_ticket", "category_id": "civil"}))
        .await;
    assert_eq!(taken["type"], "ticket_taken");
    relay.stop().await;
}

#[tokio::test]
async fn a_kiosk_that_reconnects_gets_its_ticket_back() {
    let relay = TestRelay::start().await;
    let _staff = relay.staffed("clerk-b", "w-remote").await;
    let mut first = kiosk_online(&relay, "k1").await;
    let taken = first
        .request(json!({"type": "take_ticket", "category_id": "civil"}))
        .await;
    drop(first);
    let mut again = relay.kiosk("k1", KIOSK_SECRET).await;
    let welcome = again.recv_type("welcome").await;
    assert_eq!(welcome["ticket"]["ticket_id"], taken["ticket"]["ticket_id"]);
    relay.stop().await;
}

#[tokio::test]
async fn the_resident_cancels_from_the_kiosk() {
    let relay = TestRelay::start().await;
    let _staff = relay.staffed("clerk-b", "w-remote").await;
    let mut kiosk = kiosk_online(&relay, "k1").await;
    let taken = kiosk
        .request(json!({"type": "take_ticket", "category_id": "civil"}))
        .await;
    let id = taken["ticket"]["ticket_id"].clone();
    let again = kiosk
        .request(json!({"type": "take_ticket", "category_id": "civil"}))
        .await;
    assert_eq!(again["code"], "invalid_state", "one ticket per kiosk");
    let cancelled = kiosk
        .request(json!({"type": "cancel_ticket", "ticket_id": id}))
        .await;
    assert_eq!(cancelled["type"], "ticket_cancelled");
    let fresh = kiosk
        .request(json!({"type": "take_ticket", "category_id": "civil"}))
        .await;
    assert_eq!(fresh["type"], "ticket_taken");
    assert_eq!(fresh["ticket"]["number"], "YA002");
    relay.stop().await;
}

#[tokio::test]
async fn no_remote_tickets_outside_the_extension_points_service_hours() {
    let relay = TestRelay::start().await;
    let _staff = relay.staffed("clerk-b", "w-remote").await;
    let mut point = relay
        .state
        .store
        .extension_point("p1")
        .await
        .expect("store")
        .expect("p1");
    // Weekly hours with no periods at all: never open.
    point.hours = Some(protocol::hours::ServiceHours::default());
    relay
        .state
        .store
        .upsert_extension_point(&point, 0)
        .await
        .expect("store");
    let mut kiosk = kiosk_online(&relay, "k1").await;
    let refused = kiosk
        .request(json!({"type": "take_ticket", "category_id": "civil"}))
        .await;
    assert_eq!(refused["code"], "out_of_hours", "{refused}");
    point.hours = Some(protocol::hours::ServiceHours::always());
    relay
        .state
        .store
        .upsert_extension_point(&point, 0)
        .await
        .expect("store");
    let mut kiosk = kiosk_online(&relay, "k1").await;
    let taken = kiosk
        .request(json!({"type": "take_ticket", "category_id": "civil"}))
        .await;
    assert_eq!(taken["type"], "ticket_taken");
    relay.stop().await;
}

#[tokio::test]
async fn walk_in_tickets_need_an_open_window_for_their_category() {
    let relay = TestRelay::start().await;
    let mut kiosk = kiosk_online(&relay, "k1").await;
    let refused = kiosk
        .request(json!({"type": "take_ticket", "category_id": "civil"}))
        .await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "no_open_window");
    assert!(
        refused["message"]
            .as_str()
            .expect("message")
            .contains("现在没有能办理该事项的远程窗口")
    );
    // An on-site window does not serve kiosks; a remote one does, for its categories only.
    let _site = relay.staffed("clerk-a", "w-site").await;
    let still = kiosk
        .request(json!({"type": "take_ticket", "category_id": "civil"}))
        .await;
    assert_eq!(still["code"], "no_open_window", "{still}");
    let _both = relay.staffed("clerk-b", "w-both").await;
    let social = kiosk
        .request(json!({"type": "take_ticket", "category_id": "social"}))
        .await;
    assert_eq!(
        social["code"], "no_open_window",
        "w-both serves civil only: {social}"
    );
    let taken = kiosk
        .request(json!({"type": "take_ticket", "category_id": "civil"}))
        .await;
    assert_eq!(taken["type"], "ticket_taken", "{taken}");
    assert!(
        relay.metrics().await.contains(r#"code="no_open_window""#),
        "refusals are counted"
    );
    // Appointments are not offered by this relay: said plainly, not a crash.
    let check_in = kiosk
        .request(json!({"type": "check_in", "key": {"by": "code", "phone_tail": "5678", "code": "K7P2Q9"}}))
        .await;
    assert_eq!(check_in["type"], "error", "{check_in}");
    relay.stop().await;
}
