//! Case materials in process: uploads from a kiosk in session (auth, size limit, SHA-256,
//! session check), encryption at rest, the IdCard.Read interception (masked to the console,
//! stored encrypted), the audited reveal, image reads, the PDF export, access rules and
//! retention.

mod common;

use common::{Client, KIOSK_SECRET, TestRelay};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use signaling::cases::kind;

/// A tiny valid baseline JPEG header is enough for the relay's checks (SOI, SOF0, EOI).
fn jpeg(width: u16, height: u16, fill: u8, len: usize) -> Vec<u8> {
    let mut j = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 0x08];
    j.extend(height.to_be_bytes());
    j.extend(width.to_be_bytes());
    j.extend([0x01, 0x01, 0x11, 0x00]);
    j.extend(std::iter::repeat_n(fill, len));
    j.extend([0xFF, 0xD9]);
    j
}

struct Served {
    relay: TestRelay,
    kiosk: Client,
    clerk: Client,
    ticket_id: String,
    clerk_token: String,
}

async fn served() -> Served {
    let relay = TestRelay::start_with(|c| c.privacy.max_upload_bytes = 64 * 1024).await;
    let mut kiosk = relay.kiosk("k1", KIOSK_SECRET).await;
    kiosk.recv_type("welcome").await;
    let clerk_token = relay.login("clerk-a").await;
    let mut clerk = Client::connect(&relay.ws_url("/ws/clerk"), Some(&clerk_token)).await;
    clerk
        .send(json!({"type": "hello", "protocol_versions": [1]}))
        .await;
    clerk.recv_type("welcome").await;
    clerk.recv_type("snapshot").await;
    clerk
        .request(json!({"type": "open_window", "window_id": "w-remote"}))
        .await;
    let taken = kiosk
        .request(json!({"type": "take_ticket", "category_id": "social"}))
        .await;
    assert_eq!(taken["type"], "ticket_taken", "{taken}");
    let done = clerk.op(json!({"op": "call_next"})).await;
    let ticket_id = done["ticket"]["id"].as_str().expect("ticket id").to_owned();
    Served {
        relay,
        kiosk,
        clerk,
        ticket_id,
        clerk_token,
    }
}

async fn upload(
    relay: &TestRelay,
    credential: &str,
    kind: &str,
    body: &[u8],
    sha: Option<String>,
) -> reqwest::Response {
    let sha = sha.unwrap_or_else(|| hex::encode(Sha256::digest(body)));
    reqwest::Client::new()
        .post(relay.url(&format!("/api/v1/uploads?kind={kind}")))
        .bearer_auth(credential)
        .header("content-type", "image/jpeg")
        .header("x-content-sha256", sha)
        .body(body.to_vec())
        .send()
        .await
        .expect("upload request")
}

async fn get(relay: &TestRelay, token: &str, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(relay.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
}

fn cred() -> String {
    format!("k1:{KIOSK_SECRET}")
}

#[tokio::test]
async fn uploads_are_checked_encrypted_and_readable_only_by_the_serving_clerk() {
    let s = served().await;
    let page = jpeg(64, 48, 0x5A, 2000);

    // Refusals: bad credential, wrong hash, too large, not a JPEG, unknown kind.
    assert_eq!(
        upload(&s.relay, "k1:wrong", "document", &page, None)
            .await
            .status(),
        401
    );
    assert_eq!(
        upload(&s.relay, &cred(), "document", &page, Some("00".repeat(32)))
            .await
            .status(),
        400
    );
    let big = jpeg(64, 48, 1, 70 * 1024);
    assert_eq!(
        upload(&s.relay, &cred(), "document", &big, None)
            .await
            .status(),
        413
    );
    assert_eq!(
        upload(&s.relay, &cred(), "document", b"plain text", None)
            .await
            .status(),
        400
    );
    assert_eq!(
        upload(&s.relay, &cred(), "pictures", &page, None)
            .await
            .status(),
        400
    );

    let r = upload(&s.relay, &cred(), "document", &page, None).await;
    assert_eq!(r.status(), 201);
    let receipt: Value = r.json().await.expect("receipt");
    let item = receipt["upload_id"].as_str().expect("id").to_owned();
    assert_eq!(receipt["sha256"], hex::encode(Sha256::digest(&page)));
    assert_eq!(receipt["bytes"], page.len());

    // At rest, the page is not in the database in the clear.
    let db = std::fs::read(s.relay.dir.path().join("relay.sqlite")).unwrap_or_default();
    let wal = std::fs::read(s.relay.dir.path().join("relay.sqlite-wal")).unwrap_or_default();
    let needle = vec![0x5Au8; 64];
    for file in [&db, &wal] {
        assert!(
            !file.windows(64).any(|w| w == needle.as_slice()),
            "plaintext at rest"
        );
    }
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(s.relay.keys.path().join("keys/cases.key"))
            .expect("master key outside the data directory")
            .permissions()
            .mode()
    };
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        !s.relay.dir.path().join("privacy/master.key").exists(),
        "no key is created inside the data directory"
    );

    // The serving clerk reads it back decrypted; another clerk may not; a supervisor may.
    let case: Value = get(
        &s.relay,
        &s.clerk_token,
        &format!("/api/v1/cases/{}", s.ticket_id),
    )
    .await
    .json()
    .await
    .expect("case");
    assert_eq!(case["items"][0]["kind"], "document");
    assert_eq!(case["items"][0]["width"], 64);
    let bytes = get(
        &s.relay,
        &s.clerk_token,
        &format!("/api/v1/cases/{}/items/{item}", s.ticket_id),
    )
    .await
    .bytes()
    .await
    .expect("bytes");
    assert_eq!(bytes.as_ref(), page.as_slice());
    let other = s.relay.login("clerk-b").await;
    assert_eq!(
        get(&s.relay, &other, &format!("/api/v1/cases/{}", s.ticket_id))
            .await
            .status(),
        403
    );
    assert_eq!(
        get(
            &s.relay,
            &other,
            &format!("/api/v1/cases/{}/items/{item}", s.ticket_id)
        )
        .await
        .status(),
        403
    );
    let foreign = s.relay.login("other").await;
    assert_eq!(
        get(
            &s.relay,
            &foreign,
            &format!("/api/v1/cases/{}", s.ticket_id)
        )
        .await
        .status(),
        404
    );
    let boss = s.relay.login("boss").await;
    assert_eq!(
        get(&s.relay, &boss, &format!("/api/v1/cases/{}", s.ticket_id))
            .await
            .status(),
        200
    );

    // Two pages become one PDF with both JPEGs embedded as they are.
    let page2 = jpeg(48, 64, 0x33, 1500);
    assert_eq!(
        upload(&s.relay, &cred(), "document", &page2, None)
            .await
            .status(),
        201
    );
    let pdf = get(
        &s.relay,
        &s.clerk_token,
        &format!("/api/v1/cases/{}/pdf", s.ticket_id),
    )
    .await;
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    let pdf = pdf.bytes().await.expect("pdf");
    assert!(pdf.starts_with(b"%PDF-1.4"));
    assert!(pdf.windows(page2.len()).any(|w| w == page2.as_slice()));
    assert_eq!(pdf.windows(10).filter(|w| w == b"/DCTDecode").count(), 2);

    // Operators see the uploads and the refusals on /metrics.
    let metrics = s.relay.metrics().await;
    let counter = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("relay_{name}_total ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} on /metrics: {metrics}"))
    };
    assert!(counter("case_uploads") >= 2, "{metrics}");
    assert!(counter("case_uploads_refused") >= 1, "{metrics}");

    drop((s.kiosk, s.clerk));
    s.relay.stop().await;
}

#[tokio::test]
async fn an_id_card_read_reaches_the_console_masked_and_is_revealed_with_an_audit_row() {
    let mut s = served().await;
    s.clerk
        .send(
            json!({"type": "device_command", "ticket_id": s.ticket_id, "command": {
            "request_id": 5, "device": "id_card_reader", "timeout_ms": 10000,
            "name": "IdCard.Read", "payload": {}}}),
        )
        .await;
    let cmd = s.kiosk.recv_type("device").await;
    let relay_id = cmd["message"]["request_id"].clone();
    let card = json!({"card_type": "resident", "name": "王小明", "gender": "male",
        "nation": {"code": 1, "name": "汉"}, "birth_date": "1990-03-07",
        "address": "上海市虚拟区示例路100弄1号101室", "id_number": "310101199003071230",
        "issuing_authority": "上海市公安局虚拟分局", "valid_from": "2015-06-01", "valid_until": "2035-06-01"});
    s.kiosk
        .send(
            json!({"type": "device", "message": {"type": "completion", "request_id": relay_id,
            "device": "id_card_reader", "completion_code": "success", "name": "IdCard.Read",
            "payload": {"card": card}}}),
        )
        .await;
    let answer = loop {
        let m = s.clerk.recv_type("device").await;
        if m["message"]["type"] == "completion" {
            break m;
        }
    };
    let text = answer.to_string();
    for secret in ["王小明", "310101199003071230", "示例路", "1990-03-07"] {
        assert!(
            !text.contains(secret),
            "{secret} reached the console: {text}"
        );
    }
    let view = &answer["message"]["payload"]["view"];
    assert_eq!(view["masked"], true);
    assert!(answer["message"]["payload"].get("card").is_none());
    let item = view["case_item_id"].as_str().expect("stored").to_owned();

    let revealed: Value = reqwest::Client::new()
        .post(s.relay.url(&format!(
            "/api/v1/cases/{}/items/{item}/reveal",
            s.ticket_id
        )))
        .bearer_auth(&s.clerk_token)
        .send()
        .await
        .expect("reveal")
        .json()
        .await
        .expect("view");
    assert_eq!(revealed["masked"], false);
    assert!(revealed.to_string().contains("310101199003071230"));

    // The case says identity was verified by the card; the audit trail has the reveal.
    let case: Value = get(
        &s.relay,
        &s.clerk_token,
        &format!("/api/v1/cases/{}", s.ticket_id),
    )
    .await
    .json()
    .await
    .expect("case");
    assert_eq!(case["identity_method"], "id_card");
    let boss = s.relay.login("boss").await;
    let audit: Value = get(
        &s.relay,
        &boss,
        &format!("/api/v1/cases/{}/audit", s.ticket_id),
    )
    .await
    .json()
    .await
    .expect("audit");
    let actions: Vec<(&str, &str)> = audit
        .as_array()
        .expect("list")
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap_or(""),
                a["actor_id"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(actions.contains(&("stored", "id-clerk-a")), "{actions:?}");
    assert!(actions.contains(&("revealed", "id-clerk-a")), "{actions:?}");
    // The reveal is in the relay's hash-chained trail too, by ids only.
    let trail = s.relay.state.audit.last(100).await.expect("trail");
    assert!(
        trail.iter().any(|r| r.kind == "case.revealed"
            && r.actor == "clerk:id-clerk-a"
            && r.subject == format!("ticket:{}/item:{item}", s.ticket_id)),
        "{trail:#?}"
    );
    assert!(!format!("{trail:?}").contains("310101199003071230"));
    assert!(
        s.relay
            .state
            .audit
            .verify()
            .await
            .expect("verify")
            .is_sound()
    );
    assert_eq!(
        get(
            &s.relay,
            &s.clerk_token,
            &format!("/api/v1/cases/{}/audit", s.ticket_id)
        )
        .await
        .status(),
        403,
        "clerks do not read the audit trail"
    );
    s.relay.stop().await;
}

#[tokio::test]
async fn retention_purges_old_items_and_audits_each_deletion() {
    let s = served().await;
    let page = jpeg(32, 32, 7, 100);
    assert_eq!(
        upload(&s.relay, &cred(), "snapshot", &page, None)
            .await
            .status(),
        201
    );
    let service = s.relay.state.cases.service().await.expect("service");
    let now = signaling::clock::Clock::now_ms(&signaling::clock::SystemClock);
    assert_eq!(
        service.purge(now).await.expect("purge"),
        0,
        "nothing is old yet"
    );
    let later = now + 181 * 86_400_000;
    assert_eq!(service.purge(later).await.expect("purge"), 1);
    assert!(
        service
            .store()
            .items(&s.ticket_id)
            .await
            .expect("items")
            .is_empty()
    );
    let log = service
        .store()
        .audit_log(&s.ticket_id)
        .await
        .expect("audit");
    assert!(
        log.iter()
            .any(|a| a.action == "purged" && a.actor_kind == "system")
    );
    let case = service
        .store()
        .case(&s.ticket_id)
        .await
        .expect("case")
        .expect("kept");
    assert_eq!(case.identity_method.as_deref(), Some("snapshot"));
    assert_eq!(signaling::cases::identity_of(kind::SCAN), Some("code_scan"));
    s.relay.stop().await;
}

#[tokio::test]
async fn a_kiosk_without_a_session_cannot_upload() {
    let relay = TestRelay::start().await;
    let page = jpeg(16, 16, 1, 10);
    assert_eq!(
        upload(&relay, &cred(), "document", &page, None)
            .await
            .status(),
        409
    );
    relay.stop().await;
}
