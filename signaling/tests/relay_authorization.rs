//! Who may do what: each denial the relay enforces has a test here.

mod common;

use common::{Client, KIOSK_SECRET, PASSWORD, TestRelay};
use serde_json::{Value, json};

async fn refused_hello(relay: &TestRelay, device: &str, secret: &str) {
    let mut k = relay.kiosk(device, secret).await;
    let e = k.recv_type("error").await;
    assert_eq!(e["code"], "unauthenticated", "{device}: {e}");
    k.expect_closed().await;
}

#[tokio::test]
async fn a_kiosk_with_a_wrong_secret_is_refused() {
    let relay = TestRelay::start().await;
    refused_hello(&relay, "k1", "wrong").await;
    relay.stop().await;
}

#[tokio::test]
async fn an_unknown_or_disabled_device_is_refused() {
    let relay = TestRelay::start().await;
    refused_hello(&relay, "nobody", KIOSK_SECRET).await;
    refused_hello(&relay, "k-off", KIOSK_SECRET).await;
    relay.stop().await;
}

#[tokio::test]
async fn a_ticket_machine_credential_does_not_open_the_kiosk_endpoint() {
    let relay = TestRelay::start().await;
    refused_hello(&relay, "tm1", KIOSK_SECRET).await;
    relay.stop().await;
}

#[tokio::test]
async fn a_kiosk_may_cancel_only_its_own_ticket() {
    let relay = TestRelay::start().await;
    let _staff = relay.staffed("clerk-b", "w-remote").await;
    let mut k1 = relay.kiosk("k1", KIOSK_SECRET).await;
    k1.recv_type("welcome").await;
    let mut k2 = relay.kiosk("k2", KIOSK_SECRET).await;
    k2.recv_type("welcome").await;
    let taken = k1
        .request(json!({"type": "take_ticket", "category_id": "civil"}))
        .await;
    let id = taken["ticket"]["ticket_id"].clone();
    let refused = k2
        .request(json!({"type": "cancel_ticket", "ticket_id": id}))
        .await;
    assert_eq!(refused["code"], "forbidden");
    relay.stop().await;
}

#[tokio::test]
async fn a_kiosk_of_another_centre_cannot_touch_this_centres_tickets() {
    let relay = TestRelay::start().await;
    let _staff = relay.staffed("clerk-b", "w-remote").await;
    let mut k1 = relay.kiosk("k1", KIOSK_SECRET).await;
    k1.recv_type("welcome").await;
    let taken = k1
        .request(json!({"type": "take_ticket", "category_id": "civil"}))
        .await;
    let mut k9 = relay.kiosk("k9", KIOSK_SECRET).await;
    k9.recv_type("welcome").await;
    let refused = k9
        .request(json!({"type": "cancel_ticket", "ticket_id": taken["ticket"]["ticket_id"]}))
        .await;
    assert_eq!(refused["code"], "not_found");
    // Nor take a ticket in a category of another centre.
    let refused = k9
        .request(json!({"type": "take_ticket", "category_id": "civil"}))
        .await;
    assert_eq!(refused["code"], "not_found");
    relay.stop().await;
}

#[tokio::test]
async fn the_clerk_websocket_needs_a_login() {
    let relay = TestRelay::start().await;
    let err = Client::try_connect(&relay.ws_url("/ws/clerk"), None, None)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("401"), "{err}");
    let err = Client::try_connect(&relay.ws_url("/ws/clerk"), Some("forged"), None)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("401"), "{err}");
    relay.stop().await;
}

#[tokio::test]
async fn a_websocket_from_a_foreign_origin_is_refused() {
    let relay = TestRelay::start().await;
    let token = relay.login("clerk-a").await;
    let err = Client::try_connect(
        &relay.ws_url("/ws/clerk"),
        Some(&token),
        Some("https://evil.example"),
    )
    .await
    .err()
    .expect("refused");
    assert!(err.to_string().contains("403"), "{err}");
    let same = format!("http://{}", relay.addr);
    assert!(
        Client::try_connect(&relay.ws_url("/ws/clerk"), Some(&token), Some(&same))
            .await
            .is_ok()
    );
    relay.stop().await;
}

#[tokio::test]
async fn a_registry_operator_may_not_serve_at_a_window() {
    let relay = TestRelay::start().await;
    let mut registrar = relay.clerk("registrar").await;
    let e = registrar
        .request(json!({"type": "open_window", "window_id": "w-remote"}))
        .await;
    assert_eq!(e["code"], "forbidden");
    let e = registrar.op(json!({"op": "call_next"})).await;
    assert_eq!(e["code"], "forbidden");
    relay.stop().await;
}

#[tokio::test]
async fn a_clerk_sees_and_acts_on_only_their_own_centre() {
    let relay = TestRelay::start().await;
    let _staff = relay.staffed("clerk-b", "w-remote").await;
    let mut k1 = relay.kiosk("k1", KIOSK_SECRET).await;
    k1.recv_type("welcome").await;
    let taken = k1
        .request(json!({"type": "take_ticket", "category_id": "civil"}))
        .await;
    let id = taken["ticket"]["ticket_id"].clone();

    let token = relay.login("other").await;
    let mut other = Client::connect(&relay.ws_url("/ws/clerk"), Some(&token)).await;
    other
        .send(json!({"type": "hello", "protocol_versions": [1]}))
        .await;
    let welcome = other.recv_type("welcome").await;
    assert_eq!(welcome["centre"]["id"], "c2");
    let windows: Vec<&str> = welcome["windows"]
        .as_array()
        .expect("windows")
        .iter()
        .filter_map(|w| w["id"].as_str())
        .collect();
    assert_eq!(windows, ["w2"]);
    let snapshot = other.recv_type("snapshot").await;
    assert_eq!(snapshot["tickets"], json!([]));
    let e = other
        .request(json!({"type": "open_window", "window_id": "w-remote"}))
        .await;
    assert_eq!(e["code"], "not_found");
    other
        .request(json!({"type": "open_window", "window_id": "w2"}))
        .await;
    let e = other.op(json!({"op": "call", "ticket_id": id})).await;
    assert_eq!(e["code"], "not_found");
    let e = other.op(json!({"op": "cancel", "ticket_id": id})).await;
    assert_eq!(e["code"], "not_found");

    // The REST view is scoped the same way.
    let body: Value = reqwest::Client::new()
        .get(relay.url("/api/v1/queue"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("queue")
        .json()
        .await
        .expect("json");
    assert_eq!(body["tickets"], json!([]));
    relay.stop().await;
}

#[tokio::test]
async fn a_window_held_by_a_connected_clerk_cannot_be_taken() {
    let relay = TestRelay::start().await;
    let mut a = relay.clerk("clerk-a").await;
    a.request(json!({"type": "open_window", "window_id": "w-remote"}))
        .await;
    let mut b = relay.clerk("clerk-b").await;
    let e = b
        .request(json!({"type": "open_window", "window_id": "w-remote"}))
        .await;
    assert_eq!(e["code"], "conflict");
    // Once clerk-a's console is gone, the window may be taken over.
    drop(a);
    let mut taken = false;
    for _ in 0..50 {
        let r = b
            .request(json!({"type": "open_window", "window_id": "w-remote"}))
            .await;
        if r["type"] == "window_opened" {
            taken = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(taken, "window freed after the holder disconnected");
    relay.stop().await;
}

#[tokio::test]
async fn wrong_passwords_are_refused_and_then_rate_limited() {
    let relay = TestRelay::start_with(|c| c.auth.max_failures_per_username = 3).await;
    let client = reqwest::Client::new();
    let attempt = |password: &'static str| {
        client
            .post(relay.url("/api/v1/login"))
            .json(&json!({"username": "clerk-a", "password": password}))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(attempt("nope").await.expect("request").status(), 401);
    }
    // Even the right password is refused while the account is throttled.
    assert_eq!(attempt(PASSWORD).await.expect("request").status(), 429);
    // Unknown users look the same as wrong passwords.
    let r = client
        .post(relay.url("/api/v1/login"))
        .json(&json!({"username": "ghost", "password": "x"}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 401);
    relay.stop().await;
}

#[tokio::test]
async fn logout_ends_the_session() {
    let relay = TestRelay::start().await;
    let token = relay.login("clerk-a").await;
    let client = reqwest::Client::new();
    let me = client
        .get(relay.url("/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("me");
    assert_eq!(me.status(), 200);
    client
        .post(relay.url("/api/v1/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("logout");
    let me = client
        .get(relay.url("/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("me");
    assert_eq!(me.status(), 401);
    relay.stop().await;
}

#[tokio::test]
async fn the_login_cookie_is_http_only_and_same_site() {
    let relay = TestRelay::start().await;
    let r = reqwest::Client::new()
        .post(relay.url("/api/v1/login"))
        .json(&json!({"username": "clerk-a", "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(cookie.starts_with("rvw_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    relay.stop().await;
}

#[tokio::test]
async fn the_ticket_machine_issues_on_site_tickets_with_its_own_credential_only() {
    let relay = TestRelay::start().await;
    let client = reqwest::Client::new();
    let issue = |credential: String| {
        client
            .post(relay.url("/api/v1/tickets"))
            .bearer_auth(credential)
            .json(&json!({"category_id": "civil"}))
            .send()
    };
    assert_eq!(
        issue("tm1:wrong".into()).await.expect("request").status(),
        401
    );
    assert_eq!(
        issue(format!("k1:{KIOSK_SECRET}"))
            .await
            .expect("request")
            .status(),
        401
    );
    let ok = issue(format!("tm1:{KIOSK_SECRET}")).await.expect("request");
    assert_eq!(ok.status(), 201);
    let ticket: Value = ok.json().await.expect("json");
    assert_eq!(ticket["number"], "A001");
    assert_eq!(ticket["channel"], "on_site");
    let bad = client
        .post(relay.url("/api/v1/tickets"))
        .bearer_auth(format!("tm1:{KIOSK_SECRET}"))
        .json(&json!({"category_id": "civil2"}))
        .send()
        .await
        .expect("request");
    assert_eq!(bad.status(), 404, "another centre's category");
    relay.stop().await;
}
