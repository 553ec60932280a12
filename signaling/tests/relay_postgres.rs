//! The relay on PostgreSQL, in process: a kiosk's ticket is taken, called, served and evaluated
//! with every store on a fresh database of the test binary's private PostgreSQL server; what
//! was acknowledged is in the database, and a relay started again on that database carries on
//! from it.
//!
//! The ignored benchmark `call_next_core_and_commit` measures "call next" (the queue core's
//! decision plus the committed transaction) on PostgreSQL and, for comparison, on SQLite:
//! `cargo test --workspace --test relay_postgres -- --ignored --nocapture`.

mod common;

use std::time::{Duration, Instant};

use common::{KIOSK_SECRET, TestRelay};
use protocol::queue::{QueueOp, TicketChannel, WindowMode};
use serde_json::{Value, json};
use signaling::queue::{Category, Command, Event, QueueConfig, QueueCore, Window};
use signaling::store::postgres::PgStore;
use signaling::store::private_postgres::{PrivatePostgres, ServerOptions};
use signaling::store::sqlite::SqliteStore;
use signaling::store::{Durability, Store};

/// k1 takes a ticket, clerk-a serves it at w-remote and the kiosk evaluates it; returns the
/// ticket id.
async fn take_call_serve_evaluate(relay: &TestRelay<PgStore>) -> String {
    let mut k = relay.kiosk("k1", KIOSK_SECRET).await;
    k.recv_type("welcome").await;
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
    let stored = k
        .request(json!({
            "type": "evaluation",
            "evaluation": {
                "evaluation_id": "ev-pg-1", "ticket_id": ticket, "level": "very_dissatisfied",
                "reasons": ["attitude"], "evaluated_ms": 0,
            }
        }))
        .await;
    assert_eq!(stored["type"], "evaluation_stored", "{stored}");
    assert_eq!(stored["duplicate"], false);
    ticket
}

async fn get(relay: &TestRelay<PgStore>, token: &str, path: &str) -> Value {
    let r = reqwest::Client::new()
        .get(relay.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 200, "{path}");
    r.json().await.expect("json")
}

#[tokio::test]
async fn a_ticket_is_taken_called_served_and_evaluated_on_postgres() {
    let relay = TestRelay::start_on_postgres().await;
    let ticket = take_call_serve_evaluate(&relay).await;

    // What the relay acknowledged is in PostgreSQL: the ticket, its four audit rows, the
    // evaluation with its follow-up.
    let pool = relay.store.pool();
    let (state, window, clerk): (String, Option<String>, Option<String>) =
        sqlx::query_as("SELECT state, window_id, clerk_id FROM tickets WHERE id = $1")
            .bind(&ticket)
            .fetch_one(pool)
            .await
            .expect("ticket row");
    assert_eq!(state, "served");
    assert_eq!(window.as_deref(), Some("w-remote"));
    assert_eq!(clerk.as_deref(), Some("id-clerk-a"));
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM ticket_events WHERE ticket_id = $1 ORDER BY id")
            .bind(&ticket)
            .fetch_all(pool)
            .await
            .expect("events");
    assert_eq!(actions.len(), 4, "{actions:?}");
    let (level, followups): (Option<i64>, i64) = sqlx::query_as(
        "SELECT e.level, (SELECT COUNT(*) FROM evaluation_followups f
                          WHERE f.evaluation_id = e.id)
         FROM evaluations e WHERE e.ticket_id = $1",
    )
    .bind(&ticket)
    .fetch_one(pool)
    .await
    .expect("evaluation row");
    assert_eq!((level, followups), (Some(1), 1));

    // A supervisor reads it back through the relay's API.
    let boss = relay.login("boss").await;
    let list = get(&relay, &boss, "/api/v1/supervisor/evaluations").await;
    assert_eq!(list[0]["ticket_id"], ticket.as_str(), "{list}");
    assert_eq!(list[0]["window_id"], "w-remote");
    let followups = get(&relay, &boss, "/api/v1/supervisor/followups").await;
    assert_eq!(followups.as_array().map(Vec::len), Some(1), "{followups}");

    // Another relay on the same database carries on: the next ticket of the category is the
    // second of the day, and the clerk's window sign-in survived.
    let url = relay_url(&relay).await;
    let first = relay.url("");
    let mut relay = relay;
    let keys = std::mem::replace(&mut relay.keys, tempfile::tempdir().expect("tempdir"));
    relay.stop().await;
    let again = TestRelay::start_on_database_with_keys(&url, keys).await;
    // The clerk's console connects again: their window, kept signed in, is open again. Their
    // second factor is in the database, so the authenticator they enrolled still answers.
    relay_kit::staff::carry_over(&first, &again.url(""), "clerk-a");
    let _clerk = again.clerk("clerk-a").await;
    let mut k = again.kiosk("k2", KIOSK_SECRET).await;
    k.recv_type("welcome").await;
    let taken = k
        .request(json!({"type": "take_ticket", "category_id": "social"}))
        .await;
    assert_eq!(taken["type"], "ticket_taken", "{taken}");
    let number = taken["ticket"]["number"].as_str().expect("number");
    assert!(number.ends_with("002"), "numbering continues: {number}");
    let signed_in: Option<String> =
        sqlx::query_scalar("SELECT clerk_id FROM windows WHERE id = 'w-remote'")
            .fetch_one(again.store.pool())
            .await
            .expect("window");
    assert_eq!(signed_in.as_deref(), Some("id-clerk-a"));
    again.stop().await;
}

/// The URL of the database a relay runs on (its name, on the shared private server).
/// Staff logins on PostgreSQL: a failed login reaches the audit trail with its source address
/// and never the password; a staff member lists and ends their own sessions; a password set by
/// someone else must be changed first, and changing it ends every login. The trail in the
/// database verifies afterwards.
#[tokio::test]
async fn staff_sessions_and_the_audit_trail_on_postgres() {
    let relay = TestRelay::start_on_postgres().await;
    let http = reqwest::Client::new();
    let wrong = "not-the-password-9";
    let r = http
        .post(relay.url("/api/v1/login"))
        .json(&json!({"username": "clerk-a", "password": wrong}))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 401);
    let laptop = relay.login("clerk-a").await;
    let desk = relay.login("clerk-a").await;
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
    assert!(sessions.iter().all(|s| s["source_address"] == "127.0.0.1"));
    let laptop_id = sessions
        .iter()
        .find(|s| s["current"] == false)
        .and_then(|s| s["id"].as_str())
        .expect("the other session")
        .to_owned();
    let r = http
        .delete(relay.url(&format!("/api/v1/sessions/{laptop_id}")))
        .bearer_auth(&desk)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 200);
    let me = |token: &str| {
        http.get(relay.url("/api/v1/me"))
            .bearer_auth(token.to_owned())
            .send()
    };
    assert_eq!(me(&laptop).await.expect("me").status(), 401);
    assert_eq!(me(&desk).await.expect("me").status(), 200);

    // A password someone else set: the next login may only change it, and the change ends
    // every login the clerk had.
    relay
        .store
        .require_password_change("id-clerk-a")
        .await
        .expect("store");
    // (The password step, then the code of the second factor enrolled above.)
    let body = relay_kit::staff::login_body(&http, &relay.url(""), "clerk-a", common::PASSWORD)
        .await
        .expect("login");
    assert_eq!(body["must_change_password"], true);
    let limited = body["token"].as_str().expect("token").to_owned();
    assert_eq!(me(&limited).await.expect("me").status(), 401);
    let r = http
        .post(relay.url("/api/v1/password"))
        .bearer_auth(&limited)
        .json(&json!({"current_password": common::PASSWORD, "new_password": "tide-lantern-42"}))
        .send()
        .await
        .expect("change");
    assert_eq!(r.status(), 200);
    assert_eq!(me(&desk).await.expect("me").status(), 401);
    assert_eq!(me(&limited).await.expect("me").status(), 401);

    let trail = &relay.state.audit;
    let rows = trail.last(50).await.expect("trail");
    let failed = rows
        .iter()
        .find(|r| r.kind == "login.failed")
        .expect("the failed login is in the trail");
    assert_eq!(failed.source, "127.0.0.1");
    assert!(rows.iter().any(|r| r.kind == "password.changed"));
    assert!(
        rows.iter()
            .all(|r| !r.detail.contains(wrong) && !r.actor.contains(wrong))
    );
    let report = trail.verify().await.expect("verify");
    assert!(report.is_sound(), "{report:?}");
    assert_eq!(report.sound_rows, rows.len() as u64);
    let in_db: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
        .fetch_one(relay.store.pool())
        .await
        .expect("count");
    assert_eq!(
        in_db,
        rows.len() as i64,
        "the trail is the one in PostgreSQL"
    );
    relay.stop().await;
}

async fn relay_url(relay: &TestRelay<PgStore>) -> String {
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(relay.store.pool())
        .await
        .expect("database name");
    PrivatePostgres::shared().expect("server").url(&name)
}

/// The centre "c1" of the test seed as a queue core, with clerk-a signed in at w-remote.
fn centre_core() -> QueueCore {
    let category = |id: &str, prefix: &str| Category {
        id: id.into(),
        prefix: prefix.into(),
        name: id.into(),
    };
    QueueCore::new(
        "c1",
        QueueConfig {
            max_waiting: 100_000,
            ..QueueConfig::default()
        },
        vec![category("civil", "A"), category("social", "B")],
        vec![Window {
            id: "w-remote".into(),
            name: "8号远程虚拟窗口".into(),
            mode: WindowMode::Remote,
            category_ids: vec!["civil".into(), "social".into()],
            clerk_id: None,
            clerk_name: None,
            clerk_connected: false,
            current: None,
            pause: None,
        }],
    )
}

async fn run(store: &dyn Store, q: &mut QueueCore, now: i64, command: Command) -> Vec<Event> {
    let events = q.decide(now, &command).expect("decide");
    store.persist_queue_events(&events).await.expect("persist");
    q.apply(&events);
    events
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// `calls` rounds of call next on `store` (each followed, unmeasured, by start and finish),
/// with `waiting` tickets in the queue at the start; the sorted latencies.
async fn measure_call_next(store: &dyn Store, waiting: usize, calls: usize) -> Vec<Duration> {
    common::seed(store).await;
    let mut q = centre_core();
    let mut now = 1_795_000_000_000;
    let clerk = "id-clerk-a";
    run(
        store,
        &mut q,
        now,
        Command::OpenWindow {
            clerk_id: clerk.into(),
            clerk_name: "clerk-a 姓名".into(),
            window_id: "w-remote".into(),
        },
    )
    .await;
    // Issue in batches of 100 (one transaction each): setting up, not measured.
    let mut batch = Vec::new();
    for n in 0..waiting {
        now += 10;
        let events = q
            .decide(
                now,
                &Command::Issue {
                    channel: TicketChannel::Remote,
                    category_id: if n % 2 == 0 { "civil" } else { "social" }.into(),
                    appointment: None,
                    device_id: None,
                    extension_point_id: Some("p1".into()),
                },
            )
            .expect("issue");
        q.apply(&events);
        batch.extend(events);
        if batch.len() >= 100 {
            store.persist_queue_events(&batch).await.expect("persist");
            batch.clear();
        }
    }
    store.persist_queue_events(&batch).await.expect("persist");
    let mut latencies = Vec::with_capacity(calls);
    for _ in 0..calls {
        now += 1_000;
        let op = |op| Command::Op {
            clerk_id: clerk.into(),
            op,
        };
        let started = Instant::now();
        let events = q.decide(now, &op(QueueOp::CallNext)).expect("call next");
        store.persist_queue_events(&events).await.expect("commit");
        q.apply(&events);
        latencies.push(started.elapsed());
        let ticket_id = events
            .iter()
            .find_map(|e| match e {
                Event::Ticket { ticket, .. } => Some(ticket.id.clone()),
                Event::Window { .. } => None,
            })
            .expect("a ticket was called");
        run(
            store,
            &mut q,
            now + 1,
            op(QueueOp::Start {
                ticket_id: ticket_id.clone(),
            }),
        )
        .await;
        run(store, &mut q, now + 2, op(QueueOp::Finish { ticket_id })).await;
    }
    latencies.sort();
    latencies
}

fn report(what: &str, latencies: &[Duration]) {
    println!(
        "{what}: {} calls, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        percentile(latencies, 0.50).as_secs_f64() * 1e3,
        percentile(latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo test --workspace --test relay_postgres -- --ignored --nocapture"]
async fn call_next_core_and_commit() {
    const WAITING: usize = 2_000;
    const CALLS: usize = 1_000;
    // A server of its own with fsync on: a commit is on disk when it returns.
    let server = PrivatePostgres::start(ServerOptions { fsync: true }).expect("postgres");
    let url = server.create_database().await.expect("database");
    let pg = PgStore::connect(&url, Durability::PowerLoss)
        .await
        .expect("postgres store");
    let on_pg = measure_call_next(&pg, WAITING, CALLS).await;
    report(
        "PostgreSQL (fsync on, synchronous_commit on), call next core + commit",
        &on_pg,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = SqliteStore::open_with(dir.path(), Durability::PowerLoss)
        .await
        .expect("sqlite store");
    let on_sqlite = measure_call_next(&sqlite, WAITING, CALLS).await;
    report(
        "SQLite (WAL, synchronous FULL), call next core + commit",
        &on_sqlite,
    );
    // A benchmark reports against its target; it does not fail on a busy machine.
    let p99 = percentile(&on_pg, 0.99);
    let verdict = if p99 <= Duration::from_millis(10) {
        "met"
    } else {
        "NOT met"
    };
    println!("target p99 <= 10 ms on PostgreSQL: {verdict} ({p99:?})");
}
