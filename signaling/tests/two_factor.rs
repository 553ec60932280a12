//! The second factor of staff logins over real HTTP against a real relay: enrollment with a
//! QR code and a first code computed here from the secret the relay gave, the code step of
//! later logins, replayed and wrong codes (counted toward the lockout), recovery codes used
//! once, a supervisor's resets closing the clerk's open console, and roles that may not skip
//! the second factor.

mod common;

use std::time::{Duration, Instant};

use common::{Client, PASSWORD, TestRelay, WAIT};
use futures_util::StreamExt;
use serde_json::{Value, json};
use signaling::totp;
use tokio_tungstenite::tungstenite::Message;

async fn post(relay: &TestRelay, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(relay.url(path)).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn password_step(relay: &TestRelay, username: &str, password: &str) -> Value {
    let (status, body) = post(
        relay,
        "/api/v1/login",
        None,
        json!({"username": username, "password": password}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn me(relay: &TestRelay, token: &str) -> u16 {
    reqwest::Client::new()
        .get(relay.url("/api/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .expect("me")
        .status()
        .as_u16()
}

fn now_ms() -> i64 {
    signaling::clock::Clock::now_ms(&signaling::clock::SystemClock)
}

async fn code_step(relay: &TestRelay, pending: &str, code: &str) -> (u16, Value) {
    post(
        relay,
        "/api/v1/login/code",
        None,
        json!({"pending_token": pending, "code": code}),
    )
    .await
}

async fn trail_kinds(relay: &TestRelay) -> Vec<(String, String)> {
    relay
        .state
        .audit
        .last(200)
        .await
        .expect("trail")
        .into_iter()
        .map(|r| (r.kind, r.subject))
        .collect()
}

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

/// Enrollment: the first login may only enroll; the QR code and the grouped secret come from
/// the relay, the first code (computed here) activates it and gives ten recovery codes once.
/// Later logins need a code; the code of a step already used is refused.
#[tokio::test]
async fn enrollment_then_a_code_at_every_login_and_no_replay() {
    let relay = TestRelay::start().await;
    let first = password_step(&relay, "clerk-a", PASSWORD).await;
    assert_eq!(first["must_enroll_second_factor"], true, "{first}");
    let limited = first["token"].as_str().expect("token").to_owned();
    // The enroll-only login opens nothing else: not the API, not the console.
    assert_eq!(me(&relay, &limited).await, 401);
    assert!(
        Client::try_connect(&relay.ws_url("/ws/clerk"), Some(&limited), None)
            .await
            .is_err()
    );

    let (status, started) = post(
        &relay,
        "/api/v1/two-factor/enroll",
        Some(&limited),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{started}");
    let secret_text = started["secret"].as_str().expect("secret");
    let secret = totp::from_base32(secret_text).expect("base32");
    assert_eq!(secret.len(), totp::SECRET_BYTES);
    assert_eq!(
        started["secret_groups"].as_str().expect("groups"),
        totp::grouped(secret_text)
    );
    let uri = started["otpauth_uri"].as_str().expect("uri");
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={secret_text}")), "{uri}");
    assert!(started["qr_svg"].as_str().expect("svg").contains("<svg"));
    // The secret is sealed at rest: its bytes are nowhere in the table.
    let (sealed,): (Vec<u8>,) =
        sqlx::query_as("SELECT sealed_secret FROM staff_two_factor WHERE clerk_id = 'id-clerk-a'")
            .fetch_one(relay.store.pool())
            .await
            .expect("row");
    assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_slice()));

    let (status, _) = post(
        &relay,
        "/api/v1/two-factor/confirm",
        Some(&limited),
        json!({"code": "000000"}),
    )
    .await;
    assert_eq!(status, 401, "a wrong first code does not activate it");
    let step = totp::step_at(now_ms());
    let (status, confirmed) = post(
        &relay,
        "/api/v1/two-factor/confirm",
        Some(&limited),
        json!({"code": totp::code_for_step(&secret, step)}),
    )
    .await;
    assert_eq!(status, 200, "{confirmed}");
    let codes = confirmed["recovery_codes"].as_array().expect("codes");
    assert_eq!(codes.len(), 10);
    let full = confirmed["token"].as_str().expect("token").to_owned();
    assert_eq!(me(&relay, &full).await, 200);
    assert_eq!(
        me(&relay, &limited).await,
        401,
        "the enroll-only login ended"
    );

    // The next login asks for a code; the pending token itself opens nothing.
    let second = password_step(&relay, "clerk-a", PASSWORD).await;
    assert_eq!(second["second_factor_required"], true, "{second}");
    assert!(second.get("token").is_none());
    let pending = second["pending_token"]
        .as_str()
        .expect("pending")
        .to_owned();
    assert_eq!(me(&relay, &pending).await, 401);
    // The code already used to enroll is a replay.
    let (status, body) = code_step(&relay, &pending, &totp::code_for_step(&secret, step)).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["message"].as_str().unwrap_or("").contains("验证码"),
        "{body}"
    );
    let next = totp::code_for_step(&secret, step + 1);
    let (status, body) = code_step(&relay, &pending, &next).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().expect("token").to_owned();
    assert_eq!(me(&relay, &token).await, 200);
    let mut console = Client::connect(&relay.ws_url("/ws/clerk"), Some(&token)).await;
    console
        .send(json!({"type": "hello", "protocol_versions": [1]}))
        .await;
    console.recv_type("welcome").await;
    // The same code at another login (someone who watched it typed) is refused.
    let third = password_step(&relay, "clerk-a", PASSWORD).await;
    let pending = third["pending_token"].as_str().expect("pending");
    let (status, _) = code_step(&relay, pending, &next).await;
    assert_eq!(status, 401);

    let kinds = trail_kinds(&relay).await;
    for kind in ["two_factor.enrolled", "two_factor.ok", "two_factor.failed"] {
        assert!(kinds.iter().any(|(k, _)| k == kind), "{kind} in {kinds:?}");
    }
    let report = relay.state.audit.verify().await.expect("verify");
    assert!(report.is_sound(), "{report:?}");
    relay.stop().await;
}

/// Wrong codes are counted with wrong passwords: the account locks, and after the limit even
/// the right code and the right password are refused.
#[tokio::test]
async fn wrong_codes_count_toward_the_lockout() {
    let relay = TestRelay::start_with(|c| c.auth.max_failures_per_username = 3).await;
    relay.login("clerk-a").await; // enrolls
    let known = relay_kit::staff::known_factor(&relay.url(""), "clerk-a").expect("enrolled");
    let body = password_step(&relay, "clerk-a", PASSWORD).await;
    let pending = body["pending_token"].as_str().expect("pending");
    let right = totp::code_for_step(&known.secret, known.last_step + 1);
    let wrong = if right == "123456" {
        "654321"
    } else {
        "123456"
    };
    for _ in 0..3 {
        let (status, _) = code_step(&relay, pending, wrong).await;
        assert_eq!(status, 401);
    }
    let (status, body) = code_step(&relay, pending, &right).await;
    assert_eq!(status, 429, "locked after three wrong codes: {body}");
    let (status, _) = post(
        &relay,
        "/api/v1/login",
        None,
        json!({"username": "clerk-a", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 429);
    let failed = trail_kinds(&relay)
        .await
        .into_iter()
        .filter(|(k, s)| k == "two_factor.failed" && s == "clerk:clerk-a")
        .count();
    assert_eq!(failed, 3);
    relay.stop().await;
}

/// A pending token takes at most five wrong codes; then the password is needed again.
#[tokio::test]
async fn a_pending_login_is_dropped_after_five_wrong_codes() {
    let relay = TestRelay::start_with(|c| c.auth.max_failures_per_username = 50).await;
    relay.login("clerk-a").await;
    let known = relay_kit::staff::known_factor(&relay.url(""), "clerk-a").expect("enrolled");
    let body = password_step(&relay, "clerk-a", PASSWORD).await;
    let pending = body["pending_token"].as_str().expect("pending");
    let right = totp::code_for_step(&known.secret, known.last_step + 1);
    let wrong = if right == "123456" {
        "654321"
    } else {
        "123456"
    };
    for _ in 0..5 {
        let (status, _) = code_step(&relay, pending, wrong).await;
        assert_eq!(status, 401);
    }
    let (status, _) = code_step(&relay, pending, &right).await;
    assert_eq!(status, 401, "the pending login is gone");
    relay.stop().await;
}

/// A recovery code stands in for the authenticator once.
#[tokio::test]
async fn a_recovery_code_works_once() {
    let relay = TestRelay::start().await;
    relay.login("clerk-a").await;
    let known = relay_kit::staff::known_factor(&relay.url(""), "clerk-a").expect("enrolled");
    let code = known.recovery_codes[3].clone();
    let body = password_step(&relay, "clerk-a", PASSWORD).await;
    let (status, body) = code_step(
        &relay,
        body["pending_token"].as_str().expect("pending"),
        &code.to_lowercase().replace('-', " "),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        me(&relay, body["token"].as_str().expect("token")).await,
        200
    );
    let body = password_step(&relay, "clerk-a", PASSWORD).await;
    let (status, _) = code_step(
        &relay,
        body["pending_token"].as_str().expect("pending"),
        &code,
    )
    .await;
    assert_eq!(status, 401, "a used recovery code is refused");
    let used: Vec<_> = trail_kinds(&relay)
        .await
        .into_iter()
        .filter(|(k, _)| k == "two_factor.recovery_used")
        .collect();
    assert_eq!(used.len(), 1, "{used:?}");
    let rows = relay.state.audit.last(200).await.expect("trail");
    assert!(
        rows.iter().all(|r| !r.detail.contains(&code)),
        "no code in the trail"
    );
    relay.stop().await;
}

/// A supervisor resets a clerk's second factor: the clerk's open console closes within 2 s
/// with a reason in Chinese, and the next login must enroll again. Setting a clerk's password
/// likewise ends their logins and forces a change.
#[tokio::test]
async fn a_supervisors_reset_closes_the_console_and_forces_reenrollment() {
    let relay = TestRelay::start().await;
    let mut console = relay.clerk("clerk-a").await;
    let boss = relay.login("boss").await;
    let started = Instant::now();
    let (status, body) = post(
        &relay,
        "/api/v1/staff/clerk-a/two-factor/reset",
        Some(&boss),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (code, reason) = close_frame(&mut console).await;
    assert_eq!(code, 4001);
    assert!(reason.contains("验证器"), "{reason}");
    eprintln!("console closed {:?} after the reset", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "closed after {:?}",
        started.elapsed()
    );
    relay_kit::staff::forget(&relay.url(""), "clerk-a");
    let again = password_step(&relay, "clerk-a", PASSWORD).await;
    assert_eq!(again["must_enroll_second_factor"], true, "{again}");
    assert!(again.get("second_factor_required").is_none());

    // A forgotten password: the supervisor sets one, which must be changed at the next login.
    let (status, body) = post(
        &relay,
        "/api/v1/staff/clerk-a/password",
        Some(&boss),
        json!({"new_password": "short"}),
    )
    .await;
    assert_eq!(status, 400, "the password policy applies: {body}");
    let (status, body) = post(
        &relay,
        "/api/v1/staff/clerk-a/password",
        Some(&boss),
        json!({"new_password": "harbour-violet-73"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let limited = again["token"].as_str().expect("token");
    assert_eq!(
        post(
            &relay,
            "/api/v1/two-factor/enroll",
            Some(limited),
            json!({})
        )
        .await
        .0,
        401,
        "the clerk's logins ended"
    );
    let (status, _) = post(
        &relay,
        "/api/v1/login",
        None,
        json!({"username": "clerk-a", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 401, "the old password no longer works");
    let body = password_step(&relay, "clerk-a", "harbour-violet-73").await;
    assert_eq!(body["must_change_password"], true, "{body}");

    let kinds = trail_kinds(&relay).await;
    assert!(kinds.contains(&("two_factor.reset".into(), "clerk:clerk-a".into())));
    assert!(kinds.contains(&("password.reset".into(), "clerk:clerk-a".into())));
    relay.stop().await;
}

/// Resets stay within the supervisor's centre and never reach a supervisor; a clerk cannot
/// reset anyone.
#[tokio::test]
async fn resets_stay_in_the_centre_and_below_supervisors() {
    let relay = TestRelay::start().await;
    let boss = relay.login("boss").await;
    for (path, status) in [
        ("/api/v1/staff/other/two-factor/reset", 404),
        ("/api/v1/staff/other/password", 404),
        ("/api/v1/staff/boss/two-factor/reset", 403),
        ("/api/v1/staff/nobody/two-factor/reset", 404),
    ] {
        let (got, body) = post(
            &relay,
            path,
            Some(&boss),
            json!({"new_password": "harbour-violet-73"}),
        )
        .await;
        assert_eq!(got, status, "{path}: {body}");
    }
    let clerk = relay.login("clerk-b").await;
    let (got, _) = post(
        &relay,
        "/api/v1/staff/clerk-a/two-factor/reset",
        Some(&clerk),
        json!({}),
    )
    .await;
    assert_eq!(got, 403);
    relay.stop().await;
}

/// With the second factor optional for clerks, a clerk logs in with the password alone, but a
/// supervisor and a registry operator still cannot do anything before enrolling.
#[tokio::test]
async fn roles_that_require_a_second_factor_cannot_skip_it() {
    let relay = TestRelay::start_with(|c| {
        c.auth.clerk_two_factor = signaling::config::ClerkTwoFactor::Optional;
    })
    .await;
    let clerk = password_step(&relay, "clerk-a", PASSWORD).await;
    assert_eq!(clerk["must_enroll_second_factor"], false);
    assert_eq!(
        me(&relay, clerk["token"].as_str().expect("token")).await,
        200
    );
    for username in ["boss", "registrar"] {
        let body = password_step(&relay, username, PASSWORD).await;
        assert_eq!(body["must_enroll_second_factor"], true, "{username}");
        let token = body["token"].as_str().expect("token");
        assert_eq!(me(&relay, token).await, 401, "{username}");
        let statistics = reqwest::Client::new()
            .get(relay.url("/api/v1/sessions"))
            .bearer_auth(token)
            .send()
            .await
            .expect("sessions");
        assert_eq!(statistics.status(), 401, "{username}");
        assert!(
            Client::try_connect(&relay.ws_url("/ws/clerk"), Some(token), None)
                .await
                .is_err()
        );
        // Confirming needs a real code from the secret; nothing else turns the login full.
        let (status, _) = post(
            &relay,
            "/api/v1/two-factor/confirm",
            Some(token),
            json!({"code": "123456"}),
        )
        .await;
        assert_ne!(status, 200);
    }
    relay.stop().await;
}

/// The host's commands: `relay reset-two-factor` ends the clerk's open console and forces a new
/// enrollment; `relay set-password` sets a password to be changed at the next login; both are
/// rows of the audit trail.
#[tokio::test]
async fn the_relay_commands_reset_a_second_factor_and_set_a_password() {
    let relay = TestRelay::start().await;
    let mut console = relay.clerk("clerk-a").await;
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_relay"))
            .arg("--data-dir")
            .arg(relay.dir.path())
            .args(["--set", "server.tls.self_signed=true"])
            .args(args)
            .output()
            .expect("run relay")
    };
    let out = cli(&["reset-two-factor", "--username", "clerk-a"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, _) = close_frame(&mut console).await;
    assert_eq!(code, 4001);
    relay_kit::staff::forget(&relay.url(""), "clerk-a");
    let body = password_step(&relay, "clerk-a", PASSWORD).await;
    assert_eq!(body["must_enroll_second_factor"], true, "{body}");

    let file = relay.dir.path().join("new-password.txt");
    std::fs::write(&file, "harbour-violet-73\n").expect("write");
    let out = cli(&[
        "set-password",
        "--username",
        "clerk-a",
        "--password-file",
        file.to_str().expect("utf-8 path"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = password_step(&relay, "clerk-a", "harbour-violet-73").await;
    assert_eq!(body["must_change_password"], true, "{body}");
    let out = cli(&["reset-two-factor", "--username", "nobody"]);
    assert!(!out.status.success(), "an unknown account is an error");

    let kinds = trail_kinds(&relay).await;
    assert!(
        kinds.contains(&("admin.reset_two_factor".into(), "clerk:clerk-a".into())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("admin.set_password".into(), "clerk:clerk-a".into())),
        "{kinds:?}"
    );
    relay.stop().await;
}
