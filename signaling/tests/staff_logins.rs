//! Staff logins under attack: concurrent guesses, guesses from one address at many accounts,
//! a flood of anonymous logins against the password-check bound, and consoles that must close
//! when their login ends (logout, a supervisor disabling the clerk).

mod common;

use std::time::{Duration, Instant};

use common::{Client, PASSWORD, TestRelay, WAIT};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn login_body(username: &str, password: &str) -> Value {
    json!({"username": username, "password": password})
}

async fn post_login(client: &reqwest::Client, relay: &TestRelay, body: &Value) -> u16 {
    client
        .post(relay.url("/api/v1/login"))
        .json(body)
        .send()
        .await
        .expect("login request")
        .status()
        .as_u16()
}

/// The audit's attack: a hundred guesses at one account sent at once. Before the throttle
/// reserved attempts ahead of the password check, every guess that arrived while the first
/// ones were hashing was let through.
#[tokio::test]
async fn a_hundred_concurrent_guesses_get_at_most_five_tries() {
    let relay = TestRelay::start().await;
    let client = reqwest::Client::new();
    let mut guesses = tokio::task::JoinSet::new();
    for i in 0..100 {
        let client = client.clone();
        let url = relay.url("/api/v1/login");
        guesses.spawn(async move {
            client
                .post(url)
                .json(&login_body("clerk-a", &format!("g{i}")))
                .send()
                .await
                .expect("login request")
                .status()
                .as_u16()
        });
    }
    let mut counts = std::collections::BTreeMap::new();
    while let Some(status) = guesses.join_next().await {
        *counts.entry(status.expect("task")).or_insert(0) += 1;
    }
    let unauthorized = counts.get(&401).copied().unwrap_or(0);
    let throttled = counts.get(&429).copied().unwrap_or(0);
    assert!(unauthorized <= 5, "{counts:?}");
    assert_eq!(unauthorized + throttled, 100, "{counts:?}");

    // The account is now locked: even the right password is refused, with how long to wait.
    let r = client
        .post(relay.url("/api/v1/login"))
        .json(&login_body("clerk-a", PASSWORD))
        .send()
        .await
        .expect("login request");
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.expect("json");
    let message = body["message"].as_str().expect("message");
    assert!(message.contains("15 分钟"), "{message}");
    // Other accounts are not affected.
    assert_eq!(
        post_login(&client, &relay, &login_body("clerk-b", PASSWORD)).await,
        200
    );
    relay.stop().await;
}

/// One address trying a few passwords at each of many accounts is stopped by its own limit.
#[tokio::test]
async fn one_address_guessing_across_accounts_is_locked_out() {
    let relay = TestRelay::start_with(|c| c.auth.max_failures_per_address = 8).await;
    let attacker = reqwest::Client::new();
    let mut statuses = Vec::new();
    for i in 0..12 {
        statuses.push(
            post_login(
                &attacker,
                &relay,
                &login_body(&format!("user{i}"), "guess-Zq9"),
            )
            .await,
        );
    }
    assert_eq!(statuses[..8], [401; 8], "{statuses:?}");
    assert_eq!(statuses[8..], [429; 4], "{statuses:?}");
    // A clerk at another address logs in as usual.
    let colleague = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().expect("address")))
        .build()
        .expect("client");
    assert_eq!(
        post_login(&colleague, &relay, &login_body("clerk-a", PASSWORD)).await,
        200
    );
    // Each failure that reached the password check is in the audit trail with its source
    // address, never with the password; refusals are not (a flood must not fill the trail).
    let rows = relay.state.audit.last(100).await.expect("audit trail");
    let failed: Vec<_> = rows.iter().filter(|r| r.kind == "login.failed").collect();
    assert_eq!(failed.len(), 8, "{rows:?}");
    assert!(failed.iter().all(|r| r.source == "127.0.0.1"));
    assert!(
        failed
            .last()
            .is_some_and(|r| r.detail.contains("address locked")),
        "{failed:?}"
    );
    let ok: Vec<_> = rows.iter().filter(|r| r.kind == "login.ok").collect();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].source, "127.0.0.2");
    assert!(
        !rows
            .iter()
            .any(|r| format!("{r:?}").contains("guess-Zq9") || format!("{r:?}").contains(PASSWORD))
    );
    relay.stop().await;
}

/// A flood of anonymous logins (unknown usernames) never runs more password checks at once
/// than the bound, and other blocking work (what recording playback and sealing use) keeps
/// running while the flood is on.
#[tokio::test]
async fn anonymous_logins_cannot_exceed_the_password_check_bound() {
    let relay = TestRelay::start_with(|c| {
        c.auth.max_concurrent_password_checks = 2;
        c.auth.max_waiting_password_checks = 1000;
        c.auth.max_failures_per_address = 10_000;
    })
    .await;
    let client = reqwest::Client::new();
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut flood = tokio::task::JoinSet::new();
    for i in 0..60 {
        let client = client.clone();
        let url = relay.url("/api/v1/login");
        let answered = answered.clone();
        flood.spawn(async move {
            let status = client
                .post(url)
                .json(&login_body(&format!("nobody{i}"), "x"))
                .send()
                .await
                .expect("login request")
                .status()
                .as_u16();
            answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            status
        });
    }
    let checks = relay.state.password_checks.clone();
    tokio::time::timeout(WAIT, async {
        while checks.running() < 2 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the flood reaches the password checks");
    // Blocking work submitted now finishes while the flood is still being checked.
    tokio::time::timeout(WAIT, tokio::task::spawn_blocking(|| 1 + 1))
        .await
        .expect("blocking work is not stalled")
        .expect("blocking task");
    let done = answered.load(std::sync::atomic::Ordering::SeqCst);
    assert!(done < 60, "the flood was over before the blocking work ran");
    let mut statuses = Vec::new();
    while let Some(status) = flood.join_next().await {
        statuses.push(status.expect("task"));
    }
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert!(checks.peak() <= 2, "peak {}", checks.peak());
    assert_eq!(checks.peak(), 2);
    relay.stop().await;
}

/// Waits for the relay to close `client`'s connection; the close frame's code and reason.
async fn close_frame(client: &mut Client) -> (u16, String) {
    loop {
        let m = tokio::time::timeout(WAIT, client.ws.next())
            .await
            .expect("the relay closes the console within the timeout");
        match m {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.to_string());
            }
            Some(Ok(Message::Close(None))) | None | Some(Err(_)) => {
                panic!("closed without a close frame")
            }
            Some(Ok(_)) => {}
        }
    }
}

/// The audit's M-3 command: after logout, the console's open socket still called tickets.
#[tokio::test]
async fn after_logout_the_open_console_is_closed_and_cannot_call() {
    let relay = TestRelay::start().await;
    let token = relay.login("clerk-a").await;
    let mut console = Client::connect(&relay.ws_url("/ws/clerk"), Some(&token)).await;
    console
        .send(json!({"type": "hello", "protocol_versions": [1]}))
        .await;
    console.recv_type("welcome").await;
    console.recv_type("snapshot").await;
    let r = reqwest::Client::new()
        .post(relay.url("/api/v1/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), 200);
    let (code, reason) = close_frame(&mut console).await;
    assert_eq!(code, 4001);
    assert!(reason.contains("重新登录"), "{reason}");
    // Whatever is still sent goes nowhere: the socket is closed.
    let sent = futures_util::SinkExt::send(
        &mut console.ws,
        Message::text(r#"{"type":"queue","request_id":2,"op":{"op":"call_next"}}"#),
    )
    .await;
    assert!(sent.is_err(), "the socket still accepted a queue command");
    relay.stop().await;
}

#[tokio::test]
async fn a_clerk_disabled_by_a_supervisor_loses_the_open_console_within_two_seconds() {
    let relay = TestRelay::start().await;
    let mut console = relay.clerk("clerk-a").await;
    let boss = relay.login("boss").await;
    let http = reqwest::Client::new();
    let started = Instant::now();
    let r = http
        .post(relay.url("/api/v1/staff/clerk-a/disable"))
        .bearer_auth(&boss)
        .send()
        .await
        .expect("disable");
    assert_eq!(r.status(), 200);
    let (code, _) = close_frame(&mut console).await;
    assert_eq!(code, 4001);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "closed after {:?}",
        started.elapsed()
    );
    // Disabled means disabled: no new login either.
    assert_eq!(
        post_login(&http, &relay, &login_body("clerk-a", PASSWORD)).await,
        401
    );
    // A clerk may not disable anyone, and a supervisor only within their centre.
    let clerk_b = relay.login("clerk-b").await;
    let r = http
        .post(relay.url("/api/v1/staff/boss/disable"))
        .bearer_auth(&clerk_b)
        .send()
        .await
        .expect("disable");
    assert_eq!(r.status(), 403);
    let r = http
        .post(relay.url("/api/v1/staff/other/disable"))
        .bearer_auth(&boss)
        .send()
        .await
        .expect("disable");
    assert_eq!(r.status(), 404);
    relay.stop().await;
}

#[tokio::test]
async fn a_staff_member_sees_and_ends_their_own_sessions() {
    let relay = TestRelay::start().await;
    let laptop = relay.login("clerk-a").await;
    let desk = relay.login("clerk-a").await;
    let someone_else = relay.login("clerk-b").await;
    let http = reqwest::Client::new();
    let sessions: Vec<Value> = http
        .get(relay.url("/api/v1/sessions"))
        .bearer_auth(&desk)
        .send()
        .await
        .expect("sessions")
        .json()
        .await
        .expect("json");
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    assert!(sessions.iter().all(|s| s["source_address"] == "127.0.0.1"));
    let laptop_id = sessions
        .iter()
        .find(|s| s["current"] == false)
        .and_then(|s| s["id"].as_str())
        .expect("the other session")
        .to_owned();
    // clerk-b cannot end clerk-a's session.
    let r = http
        .delete(relay.url(&format!("/api/v1/sessions/{laptop_id}")))
        .bearer_auth(&someone_else)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 404);
    let r = http
        .delete(relay.url(&format!("/api/v1/sessions/{laptop_id}")))
        .bearer_auth(&desk)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 200);
    let me = |token: String| http.get(relay.url("/api/v1/me")).bearer_auth(token).send();
    assert_eq!(me(laptop).await.expect("me").status(), 401);
    assert_eq!(me(desk).await.expect("me").status(), 200);
    relay.stop().await;
}

/// A login unused for longer than the idle timeout no longer works, however long its absolute
/// lifetime; one in use stays valid.
#[tokio::test]
async fn an_idle_login_expires() {
    let relay = TestRelay::start().await;
    let token = relay.login("clerk-a").await;
    let hash = signaling::auth::token_hash(&token);
    let idle_ms = 30 * 60_000;
    let now = signaling::clock::Clock::now_ms(&signaling::clock::SystemClock);
    use signaling::store::Store;
    assert!(
        relay
            .store
            .login_clerk(&hash, now + 29 * 60_000, idle_ms)
            .await
            .expect("store")
            .is_some()
    );
    // That use moved the last-seen time forward: 29 more minutes are fine too.
    assert!(
        relay
            .store
            .login_clerk(&hash, now + 58 * 60_000, idle_ms)
            .await
            .expect("store")
            .is_some()
    );
    // 31 minutes without use is too long.
    assert!(
        relay
            .store
            .login_clerk(&hash, now + 89 * 60_000 + 1, idle_ms)
            .await
            .expect("store")
            .is_none()
    );
    relay.stop().await;
}

async fn change_password(relay: &TestRelay, token: &str, current: &str, new: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(relay.url("/api/v1/password"))
        .bearer_auth(token)
        .json(&json!({"current_password": current, "new_password": new}))
        .send()
        .await
        .expect("password change");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A password set by an administrator (a new account, a reset) works only to choose a new one;
/// a weak or common new password is refused with a message the clerk understands.
#[tokio::test]
async fn a_password_set_by_someone_else_must_be_changed_first() {
    use signaling::store::Store;
    let relay = TestRelay::start().await;
    relay
        .store
        .require_password_change("id-clerk-a")
        .await
        .expect("store");
    let http = reqwest::Client::new();
    let r = http
        .post(relay.url("/api/v1/login"))
        .json(&login_body("clerk-a", PASSWORD))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["must_change_password"], true);
    let token = body["token"].as_str().expect("token").to_owned();
    // The login opens nothing else: not the API, not the console.
    let me = http
        .get(relay.url("/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("me");
    assert_eq!(me.status(), 401);
    assert!(
        Client::try_connect(&relay.ws_url("/ws/clerk"), Some(&token), None)
            .await
            .is_err()
    );
    let (status, body) = change_password(&relay, &token, PASSWORD, "short").await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap_or("").contains("12"),
        "{body}"
    );
    let (status, body) = change_password(&relay, &token, PASSWORD, "Password1234").await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap_or("").contains("常见"),
        "{body}"
    );
    let (status, _) = change_password(&relay, &token, "wrong-current-pw", "tide-lantern-42").await;
    assert_eq!(status, 401);
    let (status, _) = change_password(&relay, &token, PASSWORD, "tide-lantern-42").await;
    assert_eq!(status, 200);
    // The old login has ended; the new password logs in fully.
    assert_eq!(
        http.get(relay.url("/api/v1/me"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("me")
            .status(),
        401
    );
    let body: Value = http
        .post(relay.url("/api/v1/login"))
        .json(&login_body("clerk-a", "tide-lantern-42"))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    assert_eq!(body["must_change_password"], false);
    relay.stop().await;
}

#[tokio::test]
async fn changing_the_password_closes_every_open_console() {
    let relay = TestRelay::start().await;
    let mut console = relay.clerk("clerk-a").await;
    let other_device = relay.login("clerk-a").await;
    let (status, _) = change_password(&relay, &other_device, PASSWORD, "tide-lantern-42").await;
    assert_eq!(status, 200);
    let (code, reason) = close_frame(&mut console).await;
    assert_eq!(code, 4001);
    assert!(reason.contains("改密"), "{reason}");
    relay.stop().await;
}
