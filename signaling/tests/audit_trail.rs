//! The audit trail against someone with write access to the database: rows edited, deleted or
//! inserted directly in SQLite (triggers dropped first, as such an attacker would) are found by
//! `relay audit verify`, which names the first broken row. Administrative commands of the CLI
//! leave rows, and the trail is shipped to syslog as JSON lines.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use signaling::audit::{Row, Trail};
use signaling::clock::SystemClock;
use signaling::store::sqlite::SqliteStore;
use sqlx::sqlite::SqlitePool;

fn relay(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relay"))
        .arg("--data-dir")
        .arg(data)
        .args(["--set", "server.tls.self_signed=true"])
        .args(args)
        .output()
        .expect("run relay")
}

fn verify(data: &Path) -> (bool, String) {
    let out = relay(data, &["audit", "verify"]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Five rows written through the trail, the way the relay writes them.
async fn seeded() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).await.expect("open");
    let trail = Trail::new(store.pool().clone(), Arc::new(SystemClock));
    for i in 1..=5 {
        trail
            .record(
                "case.revealed",
                &format!("clerk:c{i}"),
                Some([203, 0, 113, i].into()),
                &format!("ticket:t{i}"),
                "",
            )
            .await
            .expect("record");
    }
    (dir, store)
}

async fn drop_triggers(pool: &SqlitePool) {
    for drop in [
        "DROP TRIGGER audit_log_no_update",
        "DROP TRIGGER audit_log_no_delete",
    ] {
        sqlx::query(drop).execute(pool).await.expect("drop trigger");
    }
}

#[tokio::test]
async fn an_untouched_trail_verifies() {
    let (dir, store) = seeded().await;
    store.pool().close().await;
    let (ok, out) = verify(dir.path());
    assert!(ok, "{out}");
    assert!(out.contains("sound: 5 rows"), "{out}");
}

#[tokio::test]
async fn the_triggers_refuse_edits_through_sql() {
    let (_dir, store) = seeded().await;
    assert!(
        sqlx::query("UPDATE audit_log SET actor = 'x' WHERE seq = 2")
            .execute(store.pool())
            .await
            .is_err()
    );
    assert!(
        sqlx::query("DELETE FROM audit_log WHERE seq = 2")
            .execute(store.pool())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn an_edited_row_is_reported() {
    let (dir, store) = seeded().await;
    drop_triggers(store.pool()).await;
    sqlx::query("UPDATE audit_log SET actor = 'clerk:someone-else' WHERE seq = 3")
        .execute(store.pool())
        .await
        .expect("edit");
    store.pool().close().await;
    let (ok, out) = verify(dir.path());
    assert!(!ok, "{out}");
    assert!(out.contains("BROKEN at row 3"), "{out}");
    assert!(out.contains("edited"), "{out}");
}

#[tokio::test]
async fn an_edited_row_with_its_hash_recomputed_breaks_the_next_row() {
    let (dir, store) = seeded().await;
    drop_triggers(store.pool()).await;
    let row: (String, i64) = sqlx::query_as("SELECT prev_hash, at_ms FROM audit_log WHERE seq = 3")
        .fetch_one(store.pool())
        .await
        .expect("row");
    let forged = signaling::audit::chain::row_hash(
        &row.0,
        3,
        row.1,
        "case.revealed",
        "clerk:someone-else",
        "203.0.113.3",
        "ticket:t3",
        "",
    );
    sqlx::query("UPDATE audit_log SET actor = 'clerk:someone-else', hash = ? WHERE seq = 3")
        .bind(forged)
        .execute(store.pool())
        .await
        .expect("edit");
    store.pool().close().await;
    let (ok, out) = verify(dir.path());
    assert!(!ok, "{out}");
    assert!(out.contains("BROKEN at row 4"), "{out}");
}

#[tokio::test]
async fn a_deleted_row_is_reported() {
    let (dir, store) = seeded().await;
    drop_triggers(store.pool()).await;
    sqlx::query("DELETE FROM audit_log WHERE seq = 2")
        .execute(store.pool())
        .await
        .expect("delete");
    store.pool().close().await;
    let (ok, out) = verify(dir.path());
    assert!(!ok, "{out}");
    assert!(out.contains("BROKEN at row 3"), "{out}");
}

#[tokio::test]
async fn an_inserted_row_is_reported() {
    let (dir, store) = seeded().await;
    drop_triggers(store.pool()).await;
    // Make room after row 2 and slip in a row that chains correctly onto row 2.
    for seq in (3..=5).rev() {
        sqlx::query("UPDATE audit_log SET seq = seq + 1 WHERE seq = ?")
            .bind(seq)
            .execute(store.pool())
            .await
            .expect("shift");
    }
    let prev: String = sqlx::query_scalar("SELECT hash FROM audit_log WHERE seq = 2")
        .fetch_one(store.pool())
        .await
        .expect("prev");
    let hash =
        signaling::audit::chain::row_hash(&prev, 3, 1, "login.ok", "clerk:ghost", "", "", "");
    sqlx::query(
        "INSERT INTO audit_log (seq, at_ms, kind, actor, source, subject, detail, prev_hash, hash)
         VALUES (3, 1, 'login.ok', 'clerk:ghost', '', '', '', ?, ?)",
    )
    .bind(&prev)
    .bind(&hash)
    .execute(store.pool())
    .await
    .expect("insert");
    store.pool().close().await;
    let (ok, out) = verify(dir.path());
    assert!(!ok, "{out}");
    // The inserted row itself chains; the row after it no longer does.
    assert!(out.contains("BROKEN at row 4"), "{out}");
}

#[tokio::test]
async fn cli_administration_is_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let password_file = dir.path().join("new-password");
    std::fs::write(&password_file, "correct horse battery staple\n").expect("password file");
    let password_file = password_file.to_str().expect("utf-8 path");
    let out = relay(
        dir.path(),
        &["add-centre", "--id", "c1", "--name", "徐汇区中心"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = relay(
        dir.path(),
        &[
            "add-clerk",
            "--centre",
            "c1",
            "--username",
            "sup1",
            "--name",
            "Sup",
            "--roles",
            "supervisor",
            "--password-file",
            password_file,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A refused command is recorded as failed.
    let out = relay(
        dir.path(),
        &[
            "add-clerk",
            "--centre",
            "nowhere",
            "--username",
            "x",
            "--name",
            "X",
        ],
    );
    assert!(!out.status.success());

    let out = relay(dir.path(), &["audit", "show", "--last", "10"]);
    assert!(out.status.success());
    let rows: Vec<Row> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let summary: Vec<(&str, &str, bool)> = rows
        .iter()
        .map(|r| {
            (
                r.kind.as_str(),
                r.subject.as_str(),
                r.detail.starts_with("ok"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("admin.add_centre", "centre:c1", true),
            ("admin.add_clerk", "clerk:sup1", true),
            ("admin.add_clerk", "clerk:x", false),
        ]
    );
    assert!(rows.iter().all(|r| r.actor.starts_with("cli:")));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("correct horse"), "no password in the trail");
    assert!(verify(dir.path()).0);
}

#[tokio::test]
async fn rows_are_shipped_to_syslog_as_json_lines() {
    let (dir, store) = seeded().await;
    let collector = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let target = format!("udp://{}", collector.local_addr().expect("addr"));
    let trail = Trail::new(store.pool().clone(), Arc::new(SystemClock));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let counters = Arc::new(signaling::audit::syslog::ShipCounters::default());
    let task = tokio::spawn(signaling::audit::syslog::run(
        trail.clone(),
        signaling::audit::syslog::Target::parse(&target).expect("target"),
        Duration::from_millis(20),
        counters.clone(),
        shutdown.clone(),
    ));
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    while got.len() < 6 {
        if got.len() == 5 {
            trail
                .record(
                    "login.failed",
                    "clerk9",
                    Some([198, 51, 100, 7].into()),
                    "",
                    "",
                )
                .await
                .expect("record");
        }
        let n = tokio::time::timeout(Duration::from_secs(5), collector.recv(&mut buf))
            .await
            .expect("a syslog datagram within 5 s")
            .expect("recv");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(text.starts_with("<85>1 "), "{text}");
        let json = text.split_once(" - audit - ").expect("structured").1;
        let row: Row = serde_json::from_str(json).expect("json");
        got.push(row);
    }
    shutdown.cancel();
    task.await.expect("join");
    assert_eq!(
        got.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6]
    );
    assert_eq!(got[5].source, "198.51.100.7");
    // The shipped copy carries the chain: it can be checked on the collecting host.
    let mut v = signaling::audit::Verifier::default();
    for r in &got {
        v.check(r).expect("shipped rows chain");
    }
    // Rows cut off the end of the trail are noticed against the shipping record.
    assert!(trail.verify().await.expect("verify").is_sound());
    sqlx::query("DROP TRIGGER audit_log_no_delete")
        .execute(store.pool())
        .await
        .expect("drop");
    sqlx::query("DELETE FROM audit_log WHERE seq = 6")
        .execute(store.pool())
        .await
        .expect("delete");
    let report = trail.verify().await.expect("verify");
    assert_eq!(report.missing_shipped, Some(6));
    drop(dir);
}

/// The relay's CLI on a PostgreSQL database (`store.url`): administration is recorded in the
/// trail there, `audit verify` checks it, and an edit made after disabling the triggers (as the
/// table's owner could) is reported with the first broken row.
#[tokio::test]
async fn on_postgres_the_cli_records_and_verify_finds_an_edit() {
    let url = signaling::store::private_postgres::PrivatePostgres::fresh_database()
        .await
        .expect("a private PostgreSQL server (Debian package postgresql)");
    let dir = tempfile::tempdir().expect("tempdir");
    let set_url = format!("store.url=\"{url}\"");
    let on_pg = |args: &[&str]| {
        let mut all = vec!["--set", set_url.as_str()];
        all.extend_from_slice(args);
        relay(dir.path(), &all)
    };
    for id in ["c1", "c2"] {
        let out = on_pg(&["add-centre", "--id", id, "--name", "徐汇区中心"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = on_pg(&["audit", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("sound: 2 rows"), "{text}");
    let out = on_pg(&["audit", "show", "--last", "5"]);
    let rows: Vec<Row> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(
        rows.iter()
            .map(|r| (r.seq, r.kind.as_str(), r.subject.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (1, "admin.add_centre", "centre:c1"),
            (2, "admin.add_centre", "centre:c2")
        ]
    );
    // Nothing is written to the SQLite file in the data directory.
    assert!(!dir.path().join(signaling::store::sqlite::DB_FILE).exists());

    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    assert!(
        sqlx::query("UPDATE audit_log SET actor = 'cli:someone-else' WHERE seq = 1")
            .execute(&pool)
            .await
            .is_err(),
        "the trigger refuses edits"
    );
    sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER USER")
        .execute(&pool)
        .await
        .expect("disable the triggers");
    sqlx::query("UPDATE audit_log SET actor = 'cli:someone-else' WHERE seq = 1")
        .execute(&pool)
        .await
        .expect("edit");
    pool.close().await;
    let out = on_pg(&["audit", "verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("BROKEN at row 1"), "{text}");
    assert!(text.contains("edited"), "{text}");
}

/// Shipping to syslog from a trail kept in PostgreSQL, and the shipping record there.
#[tokio::test]
async fn on_postgres_rows_are_shipped_to_syslog() {
    let url = signaling::store::private_postgres::PrivatePostgres::fresh_database()
        .await
        .expect("a private PostgreSQL server (Debian package postgresql)");
    let store =
        signaling::store::postgres::PgStore::connect(&url, signaling::store::Durability::PowerLoss)
            .await
            .expect("store");
    let trail = Trail::new(store.pool().clone(), Arc::new(SystemClock));
    for i in 1..=3 {
        trail
            .record("login.ok", &format!("clerk:c{i}"), None, "", "")
            .await
            .expect("record");
    }
    let collector = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let target = format!("udp://{}", collector.local_addr().expect("addr"));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let counters = Arc::new(signaling::audit::syslog::ShipCounters::default());
    let task = tokio::spawn(signaling::audit::syslog::run(
        trail.clone(),
        signaling::audit::syslog::Target::parse(&target).expect("target"),
        Duration::from_millis(20),
        counters.clone(),
        shutdown.clone(),
    ));
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    while got.len() < 3 {
        let n = tokio::time::timeout(Duration::from_secs(5), collector.recv(&mut buf))
            .await
            .expect("a syslog datagram within 5 s")
            .expect("recv");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let json = text.split_once(" - audit - ").expect("structured").1;
        got.push(serde_json::from_str::<Row>(json).expect("json"));
    }
    // The shipping record is written after the send; wait for it, bounded.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while trail.shipped_seq().await.expect("shipped") != Some(3) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "shipping record not written"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    task.await.expect("join");
    assert_eq!(got.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(got, trail.last(10).await.expect("rows"));
    sqlx::query("ALTER TABLE audit_log DISABLE TRIGGER USER")
        .execute(store.pool())
        .await
        .expect("disable");
    sqlx::query("DELETE FROM audit_log WHERE seq = 3")
        .execute(store.pool())
        .await
        .expect("cut");
    assert_eq!(
        trail.verify().await.expect("verify").missing_shipped,
        Some(3)
    );
}

/// Appends through `Trail::record` from `writers` tasks at once, `each` per task; the time
/// taken, after checking the chain is whole.
async fn timed_appends(trail: &Trail, writers: usize, each: usize) -> Duration {
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let trail = trail.clone();
            tokio::spawn(async move {
                for i in 0..each {
                    trail
                        .record(
                            "login.ok",
                            &format!("clerk:w{w}"),
                            None,
                            &format!("n{i}"),
                            "",
                        )
                        .await
                        .expect("append");
                }
            })
        })
        .collect();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(300), t)
            .await
            .expect("appends finish")
            .expect("task");
    }
    let took = started.elapsed();
    let report = trail.verify().await.expect("verify");
    assert!(report.is_sound(), "{report:?}");
    assert_eq!(report.sound_rows, (writers * each) as u64);
    took
}

/// Benchmark: audit appends per second from 8 concurrent writers, on PostgreSQL (fsync on,
/// the advisory lock serialising the chain) and on the SQLite file store (BEGIN IMMEDIATE).
/// `cargo test --workspace --test audit_trail -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo test --workspace --test audit_trail -- --ignored --nocapture"]
async fn append_rate_with_concurrent_writers() {
    const WRITERS: usize = 8;
    const EACH: usize = 250;
    let server = signaling::store::private_postgres::PrivatePostgres::start(
        signaling::store::private_postgres::ServerOptions { fsync: true },
    )
    .expect("postgres");
    let url = server.create_database().await.expect("database");
    let pg =
        signaling::store::postgres::PgStore::connect(&url, signaling::store::Durability::PowerLoss)
            .await
            .expect("store");
    let took = timed_appends(
        &Trail::new(pg.pool().clone(), Arc::new(SystemClock)),
        WRITERS,
        EACH,
    )
    .await;
    println!(
        "PostgreSQL (fsync on): {} appends from {WRITERS} writers in {took:?}: {:.0}/s",
        WRITERS * EACH,
        (WRITERS * EACH) as f64 / took.as_secs_f64()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = SqliteStore::open(dir.path()).await.expect("sqlite");
    let took = timed_appends(
        &Trail::new(sqlite.pool().clone(), Arc::new(SystemClock)),
        WRITERS,
        EACH,
    )
    .await;
    println!(
        "SQLite (durability power_loss): {} appends from {WRITERS} writers in {took:?}: {:.0}/s",
        WRITERS * EACH,
        (WRITERS * EACH) as f64 / took.as_secs_f64()
    );
}
