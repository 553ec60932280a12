//! 好差评 in the relay, in process: a kiosk's evaluation of its served ticket is bound to the
//! session (window, clerk, category, point, device), stored once per idempotency key and once
//! per ticket, refused with a clear error when it is wrong or not the kiosk's; bad reviews
//! open follow-ups; only supervisors use the API; evaluations are forwarded to the 好差评
//! endpoint with retries, and given up ones become dead letters that can be sent again.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Client, KIOSK_SECRET, TestRelay, WAIT};
use serde_json::{Value, json};

async fn kiosk(relay: &TestRelay, device: &str) -> Client {
    let mut k = relay.kiosk(device, KIOSK_SECRET).await;
    k.recv_type("welcome").await;
    k
}

/// k1 takes a ticket, clerk-a serves it at w-remote; returns (ticket id, kiosk).
async fn served(relay: &TestRelay) -> (String, Client) {
    let mut k = kiosk(relay, "k1").await;
    let mut clerk = relay.staffed("clerk-a", "w-remote").await;
    let taken = k
        .request(json!({"type": "take_ticket", "category_id": "social"}))
        .await;
    assert_eq!(taken["type"], "ticket_taken", "{taken}");
    let ticket = taken["ticket"]["ticket_id"]
        .as_str()
        .expect("id")
        .to_owned();
    for op in [
        json!({"op": "call_next"}),
        json!({"op": "start", "ticket_id": ticket}),
        json!({"op": "finish", "ticket_id": ticket}),
    ] {
        let done = clerk.op(op).await;
        assert_eq!(done["type"], "done", "{done}");
    }
    (ticket, k)
}

fn evaluation(id: &str, ticket: &str, level: Value, reasons: &[&str]) -> Value {
    json!({
        "type": "evaluation",
        "evaluation": {
            "evaluation_id": id, "ticket_id": ticket, "level": level,
            "reasons": reasons, "evaluated_ms": 0,
        }
    })
}

async fn get(relay: &TestRelay, token: &str, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(relay.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn put(relay: &TestRelay, token: &str, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .put(relay.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_evaluation_is_bound_to_its_session_and_stored_once() {
    let relay = TestRelay::start().await;
    let (ticket, mut k) = served(&relay).await;

    let first = k
        .request(evaluation(
            "ev-1",
            &ticket,
            json!("very_dissatisfied"),
            &["attitude"],
        ))
        .await;
    assert_eq!(first["type"], "evaluation_stored", "{first}");
    assert_eq!(first["duplicate"], false);
    // The same id again (the outbox did not hear the answer): stored once, answered alike.
    let again = k
        .request(evaluation(
            "ev-1",
            &ticket,
            json!("very_dissatisfied"),
            &["attitude"],
        ))
        .await;
    assert_eq!(again["type"], "evaluation_stored");
    assert_eq!(again["duplicate"], true);
    // Another evaluation of the same ticket: 一次一评.
    let second = k
        .request(evaluation("ev-2", &ticket, json!("satisfied"), &[]))
        .await;
    assert_eq!(second["code"], "invalid_state", "{second}");
    // Bad input is refused with a clear code and leaves the connection up.
    for (bad, code) in [
        (
            evaluation("ev-3", &ticket, json!("dissatisfied"), &[]),
            "bad_message",
        ),
        (evaluation("ev 3", &ticket, json!(null), &[]), "bad_message"),
        (
            evaluation("ev-3", &ticket, json!("satisfied"), &["made_up"]),
            "bad_message",
        ),
        (
            evaluation("ev-3", "no-such-ticket", json!(null), &[]),
            "not_found",
        ),
    ] {
        let answer = k.request(bad).await;
        assert_eq!(answer["code"], code, "{answer}");
    }

    // Another kiosk can neither claim the ticket nor the id.
    let mut k2 = kiosk(&relay, "k2").await;
    let other = k2
        .request(evaluation("ev-4", &ticket, json!("satisfied"), &[]))
        .await;
    assert_eq!(other["code"], "not_found", "{other}");
    let stolen = k2
        .request(evaluation(
            "ev-1",
            &ticket,
            json!("very_dissatisfied"),
            &["attitude"],
        ))
        .await;
    assert_eq!(stolen["code"], "forbidden", "{stolen}");

    // Supervisors see it, bound to the whole service, with a follow-up due in working days.
    let boss = relay.login("boss").await;
    let (status, list) = get(&relay, &boss, "/api/v1/supervisor/evaluations").await;
    assert_eq!(status, 200);
    let list = list.as_array().expect("list").clone();
    assert_eq!(list.len(), 1);
    let e = &list[0];
    assert_eq!(e["id"], "ev-1");
    assert_eq!(e["ticket_id"], ticket.as_str());
    assert_eq!(e["window_id"], "w-remote");
    assert_eq!(e["window_name"], "8号远程虚拟窗口");
    assert_eq!(e["clerk_id"], "id-clerk-a");
    assert_eq!(e["clerk_name"], "clerk-a 姓名");
    assert_eq!(e["category_id"], "social");
    assert_eq!(e["extension_point_id"], "p1");
    assert_eq!(e["device_id"], "k1");
    assert_eq!(e["centre_id"], "c1");
    assert_eq!(e["level"], "very_dissatisfied");
    // Nowhere to forward to: it waits.
    assert_eq!(e["forwarding"]["state"], "pending");

    let (_, followups) = get(&relay, &boss, "/api/v1/supervisor/followups").await;
    assert_eq!(followups.as_array().map(Vec::len), Some(1), "{followups}");
    let f = &followups[0];
    assert_eq!(f["evaluation_id"], "ev-1");
    assert_eq!(f["state"], "open");
    assert_eq!(f["overdue"], false);
    assert!(f["due_ms"].as_i64() > f["opened_ms"].as_i64());

    // Closing needs the visit, verification, rectification and feedback.
    let path = "/api/v1/supervisor/followups/ev-1";
    let (status, body) = put(
        &relay,
        &boss,
        path,
        json!({"verification": "x", "rectification": "", "feedback": "", "close": true}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let now = f["opened_ms"].as_i64().expect("opened");
    let (status, closed) = put(
        &relay,
        &boss,
        path,
        json!({"visited_ms": now, "verification": "属实", "rectification": "加强培训", "feedback": "已致歉", "close": true}),
    )
    .await;
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["state"], "closed");
    assert_eq!(closed["updated_by"], "id-boss");
    let (_, open) = get(&relay, &boss, "/api/v1/supervisor/followups").await;
    assert_eq!(open.as_array().map(Vec::len), Some(0));

    // A closed follow-up is final: rewriting its findings is refused and changes nothing.
    let (status, body) = put(
        &relay,
        &boss,
        path,
        json!({"visited_ms": now, "verification": "不属实", "rectification": "", "feedback": "", "close": false}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (_, all) = get(&relay, &boss, "/api/v1/supervisor/followups?state=all").await;
    assert_eq!(all[0]["verification"], "属实", "{all}");
    assert!(
        sqlx::query("UPDATE evaluation_followups SET verification = 'x'")
            .execute(relay.store.pool())
            .await
            .is_err(),
        "the database refuses it too"
    );
    // The queue's record of the served ticket is append-only as well.
    for edit in [
        "UPDATE ticket_events SET clerk_id = 'someone-else'",
        "DELETE FROM ticket_events",
    ] {
        assert!(
            sqlx::query(edit).execute(relay.store.pool()).await.is_err(),
            "{edit}"
        );
    }
    // Every saved version is kept, and the trail records who closed it.
    let history: Vec<(String, String)> = sqlx::query_as(
        "SELECT state, verification FROM evaluation_followup_history WHERE evaluation_id = 'ev-1' ORDER BY id",
    )
    .fetch_all(relay.store.pool())
    .await
    .expect("history");
    assert_eq!(history, vec![("closed".to_string(), "属实".to_string())]);
    let trail: Vec<(String, String, String)> =
        sqlx::query_as("SELECT kind, actor, subject FROM audit_log WHERE kind LIKE 'evaluation.%'")
            .fetch_all(relay.store.pool())
            .await
            .expect("trail");
    assert_eq!(
        trail,
        vec![(
            "evaluation.followup.closed".to_string(),
            "clerk:id-boss".to_string(),
            "evaluation:ev-1".to_string()
        )]
    );

    let (_, stats) = get(&relay, &boss, "/api/v1/supervisor/evaluations/stats").await;
    assert_eq!(stats["total"]["evaluations"], 1);
    assert_eq!(stats["total"]["bad"], 1);
    assert_eq!(stats["total"]["distribution"], json!([0, 0, 0, 0, 1]));
    assert_eq!(stats["by_window"][0]["id"], "w-remote");
    assert_eq!(stats["by_clerk"][0]["id"], "id-clerk-a");
    assert_eq!(stats["by_extension_point"][0]["id"], "p1");

    relay.stop().await;
}

#[tokio::test]
async fn only_supervisors_use_the_evaluation_api_and_only_for_their_centre() {
    let relay = TestRelay::start().await;
    let clerk = relay.login("clerk-a").await;
    for path in [
        "/api/v1/supervisor/evaluations",
        "/api/v1/supervisor/evaluations/stats",
        "/api/v1/supervisor/followups",
        "/api/v1/supervisor/dead-letters",
    ] {
        let (status, _) = get(&relay, &clerk, path).await;
        assert_eq!(status, 403, "{path}");
        let (status, _) = get(&relay, "not-a-token", path).await;
        assert_eq!(status, 401, "{path}");
    }
    let boss = relay.login("boss").await;
    let (status, body) = get(
        &relay,
        &boss,
        "/api/v1/supervisor/evaluations/stats?from=2026-13-01",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = put(
        &relay,
        &boss,
        "/api/v1/supervisor/followups/unknown",
        json!({"verification": "", "rectification": "", "feedback": ""}),
    )
    .await;
    assert_eq!(status, 404);
    relay.stop().await;
}

#[tokio::test]
async fn when_evaluations_cannot_be_stored_they_are_refused_as_retryable() {
    let relay = TestRelay::start().await;
    let (ticket, mut k) = served(&relay).await;
    // The store fails (here: its table is gone); the kiosk must keep the evaluation.
    sqlx::query("DROP TABLE evaluations")
        .execute(relay.store.pool())
        .await
        .expect("drop the evaluations table");
    let answer = k
        .request(evaluation("ev-1", &ticket, json!("satisfied"), &[]))
        .await;
    assert_eq!(
        answer["code"], "internal",
        "the kiosk keeps it and retries: {answer}"
    );
    relay.stop().await;
}

/// A minimal 好差评 endpoint answering 503 for the first `fail` requests, then 200.
async fn endpoint(fail: usize) -> (String, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hcp", listener.local_addr().expect("addr"));
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        for _ in 0..100 {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let mut buf = vec![0u8; 16 * 1024];
            let _ = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
            let status = if n < fail {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            let _ = s
                .write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await;
        }
    });
    (url, count)
}

async fn wait_forwarding(relay: &TestRelay, token: &str, state: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, list) = get(relay, token, "/api/v1/supervisor/evaluations").await;
        if list[0]["forwarding"]["state"] == state {
            return list[0].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "forwarding never {state}: {list}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn forwarding_retries_gives_up_into_a_dead_letter_and_can_be_sent_again() {
    let (url, count) = endpoint(2).await;
    let relay = TestRelay::start_with(|c| {
        c.evaluation.forward_url = url;
        c.evaluation.retry_base_secs = 1;
        c.evaluation.retry_max_secs = 1;
        c.evaluation.max_attempts = 2;
    })
    .await;
    let (ticket, mut k) = served(&relay).await;
    let stored = k
        .request(evaluation("ev-9", &ticket, json!("basic"), &[]))
        .await;
    assert_eq!(stored["type"], "evaluation_stored");
    let boss = relay.login("boss").await;
    // Two 503s with max_attempts = 2: a dead letter.
    let dead = wait_forwarding(&relay, &boss, "dead").await;
    assert_eq!(dead["forwarding"]["attempts"], 2);
    assert_eq!(dead["forwarding"]["error"], "HTTP 503");
    let (_, letters) = get(&relay, &boss, "/api/v1/supervisor/dead-letters").await;
    assert_eq!(letters.as_array().map(Vec::len), Some(1));
    // A clerk may not send it again; the supervisor may.
    let clerk = relay.login("clerk-a").await;
    let retry = |token: String| {
        let url = relay.url("/api/v1/supervisor/dead-letters/ev-9/retry");
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        }
    };
    assert_eq!(retry(clerk).await, 403);
    assert_eq!(retry(boss.clone()).await, 200);
    let delivered = wait_forwarding(&relay, &boss, "delivered").await;
    assert_eq!(delivered["forwarding"]["attempts"], 1);
    assert_eq!(count.load(Ordering::SeqCst), 3);
    let (_, letters) = get(&relay, &boss, "/api/v1/supervisor/dead-letters").await;
    assert_eq!(letters.as_array().map(Vec::len), Some(0));
    let metrics = relay.metrics().await;
    assert!(
        metrics.contains("evaluations_dead_letters_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("evaluations_forwarded_total 1"),
        "{metrics}"
    );
    relay.stop().await;
}
