//! The relay's audit trail (审计日志): one append-only log of security-relevant events — logins
//! and failed logins with their source address, administrative commands (the CLI's included),
//! registry steps, reveals of ID cards and case items, recording access — whose rows are
//! hash-chained: each row carries the SHA-256 of the row before it ([`chain`]).
//!
//! Writing:
//! - [`Trail::record`] from the HTTP layer and the CLI: one row in its own write transaction
//!   (`BEGIN IMMEDIATE`, so concurrent writers — the relay and a CLI command — take turns and
//!   the chain stays linear).
//! - [`append`] from store code that already holds a write transaction (a case item stored
//!   with its audit row, a registry step): the trail row commits or rolls back with the change
//!   it describes.
//!
//! On PostgreSQL ([`append_pg`], [`Db::Postgres`]) the same rows are written the same way
//! inside the PostgreSQL stores' transactions; the chain is serialised by a transaction-scoped
//! advisory lock ([`CHAIN_LOCK`]) taken before the head row is read, so concurrent appends
//! from several relay connections (or a CLI command) take turns and never fork the chain.
//!
//! Protection, honestly stated: SQLite triggers refuse `UPDATE`/`DELETE` on the table, but
//! anyone who can write the database file can drop them. The chain turns such an edit,
//! deletion or insertion into something `relay audit verify` reports (the first broken row);
//! an attacker who rewrites every row from the edit onwards, or cuts rows off the end, is
//! caught only by comparing with the copy shipped off the host ([`syslog`], `[audit] syslog`)
//! or with a head hash noted earlier (verify prints it).
//!
//! Rows carry ids, never personal data: a subject is `ticket:<id>`, `recording:<id>`,
//! `clerk:<username>`, not a name or an ID number.

pub mod chain;
pub mod syslog;

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::sqlite::{SqliteConnection, SqlitePool};

use crate::clock::Clock;
pub use chain::{Break, Row, Verifier};

/// Kinds of event. Free-form strings are accepted; these are the ones the relay writes.
pub mod kind {
    pub const LOGIN_OK: &str = "login.ok";
    pub const LOGIN_FAILED: &str = "login.failed";
    pub const LOGOUT: &str = "logout";
    /// A staff member ended one of their own sessions.
    pub const SESSION_ENDED: &str = "session.ended";
    pub const PASSWORD_CHANGED: &str = "password.changed";
    /// A supervisor (or the CLI) set someone's password; it must be changed at next login.
    pub const PASSWORD_RESET: &str = "password.reset";
    /// A second factor (TOTP) was enrolled and recovery codes issued.
    pub const TWO_FACTOR_ENROLLED: &str = "two_factor.enrolled";
    /// A login's second step passed with an authenticator code.
    pub const TWO_FACTOR_OK: &str = "two_factor.ok";
    /// A wrong, expired or replayed code (login or enrollment).
    pub const TWO_FACTOR_FAILED: &str = "two_factor.failed";
    /// A login's second step passed with a one-time recovery code.
    pub const TWO_FACTOR_RECOVERY_USED: &str = "two_factor.recovery_used";
    /// A supervisor (or the CLI) removed someone's second factor.
    pub const TWO_FACTOR_RESET: &str = "two_factor.reset";
    pub const CASE: &str = "case";
    pub const RECORDING: &str = "recording";
    pub const REGISTRY: &str = "registry";
    pub const FOLLOWUP: &str = "evaluation.followup";
    pub const ADMIN: &str = "admin";
}

/// Longest `detail` kept; longer text is cut at a character boundary.
pub const MAX_DETAIL: usize = 2000;
/// Longest `kind`, `actor`, `source` or `subject` kept.
pub const MAX_FIELD: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit trail database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// One event to record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub at_ms: i64,
    pub kind: String,
    pub actor: String,
    /// Source address, or empty when the event did not come over the network.
    pub source: String,
    pub subject: String,
    pub detail: String,
}

impl Entry {
    pub fn new(
        at_ms: i64,
        kind: &str,
        actor: &str,
        source: Option<IpAddr>,
        subject: &str,
        detail: &str,
    ) -> Self {
        Self {
            at_ms,
            kind: cut(kind, MAX_FIELD),
            actor: cut(actor, MAX_FIELD),
            source: source.map(|ip| ip.to_string()).unwrap_or_default(),
            subject: cut(subject, MAX_FIELD),
            detail: cut(detail, MAX_DETAIL),
        }
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Appends `entry` as the next row of the chain, inside a transaction the caller already holds
/// the write lock of (SQLite: it has written in it, or it began with `BEGIN IMMEDIATE`), so no
/// other writer can take the same sequence number. Returns the row's sequence number.
pub async fn append(conn: &mut SqliteConnection, entry: &Entry) -> Result<i64, sqlx::Error> {
    let last: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    let (seq, prev_hash) = match last {
        Some((seq, hash)) => (seq.saturating_add(1), hash),
        None => (1, chain::GENESIS.to_string()),
    };
    let hash = chain::row_hash(
        &prev_hash,
        seq,
        entry.at_ms,
        &entry.kind,
        &entry.actor,
        &entry.source,
        &entry.subject,
        &entry.detail,
    );
    sqlx::query(
        "INSERT INTO audit_log (seq, at_ms, kind, actor, source, subject, detail, prev_hash, hash)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(seq)
    .bind(entry.at_ms)
    .bind(&entry.kind)
    .bind(&entry.actor)
    .bind(&entry.source)
    .bind(&entry.subject)
    .bind(&entry.detail)
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    Ok(seq)
}

/// The key of the PostgreSQL advisory lock that serialises appends to the chain (an arbitrary
/// constant, "rvw-audit" in ASCII, shared by every relay and CLI on the database).
pub const CHAIN_LOCK: i64 = 0x0072_7677_2d61_7564;

/// [`append`] on PostgreSQL: `conn` must be in a transaction. Takes the chain's advisory
/// transaction lock first (held until that transaction commits or rolls back), so the head it
/// reads is the last committed one and no other transaction appends the same sequence number.
/// Store code calls it as the last write of its transaction, to hold the lock briefly and
/// always after any row locks (one lock order, no deadlocks).
pub async fn append_pg(conn: &mut PgConnection, entry: &Entry) -> Result<i64, sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(CHAIN_LOCK)
        .execute(&mut *conn)
        .await?;
    let last: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    let (seq, prev_hash) = match last {
        Some((seq, hash)) => (seq.saturating_add(1), hash),
        None => (1, chain::GENESIS.to_string()),
    };
    let hash = chain::row_hash(
        &prev_hash,
        seq,
        entry.at_ms,
        &entry.kind,
        &entry.actor,
        &entry.source,
        &entry.subject,
        &entry.detail,
    );
    sqlx::query(
        "INSERT INTO audit_log (seq, at_ms, kind, actor, source, subject, detail, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(seq)
    .bind(entry.at_ms)
    .bind(&entry.kind)
    .bind(&entry.actor)
    .bind(&entry.source)
    .bind(&entry.subject)
    .bind(&entry.detail)
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    Ok(seq)
}

/// The database a trail lives in: the relay's SQLite file or its PostgreSQL database.
#[derive(Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl From<SqlitePool> for Db {
    fn from(pool: SqlitePool) -> Self {
        Db::Sqlite(pool)
    }
}

impl From<PgPool> for Db {
    fn from(pool: PgPool) -> Self {
        Db::Postgres(pool)
    }
}

macro_rules! row_columns {
    () => {
        "seq, at_ms, kind, actor, source, subject, detail, prev_hash, hash"
    };
}

/// The audit trail of one relay database. Cheap to clone.
#[derive(Clone)]
pub struct Trail {
    db: Db,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Trail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Trail")
    }
}

/// What [`Trail::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Rows checked and found sound, from the first.
    pub sound_rows: u64,
    /// The hash of the last sound row.
    pub head: String,
    /// The first row that breaks the chain: its sequence number and why.
    pub first_broken: Option<(i64, Break)>,
    /// Rows the shipping record says were sent to syslog but are no longer here (rows cut off
    /// the end).
    pub missing_shipped: Option<i64>,
}

impl Report {
    pub fn is_sound(&self) -> bool {
        self.first_broken.is_none() && self.missing_shipped.is_none()
    }
}

impl Trail {
    pub fn new(db: impl Into<Db>, clock: Arc<dyn Clock>) -> Self {
        Self {
            db: db.into(),
            clock,
        }
    }

    /// Records one event now.
    ///
    /// - `kind`: what happened ([`kind`]), e.g. `login.failed`.
    /// - `actor`: who did it: `clerk:<id>`, `device:<id>`, `cli:<os user>`, `system:<task>`,
    ///   or the username tried for a failed login.
    /// - `source_addr`: where the request came from, `None` for local commands and tasks.
    /// - `subject`: what it was done to, by id.
    /// - `detail`: anything else, short, never personal data.
    ///
    /// Returns the row's sequence number.
    pub async fn record(
        &self,
        kind: &str,
        actor: &str,
        source_addr: Option<IpAddr>,
        subject: &str,
        detail: &str,
    ) -> Result<i64, AuditError> {
        let entry = Entry::new(
            self.clock.now_ms(),
            kind,
            actor,
            source_addr,
            subject,
            detail,
        );
        self.record_entry(&entry).await
    }

    pub async fn record_entry(&self, entry: &Entry) -> Result<i64, AuditError> {
        match &self.db {
            Db::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let seq = append(&mut tx, entry).await?;
                tx.commit().await?;
                Ok(seq)
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let seq = append_pg(&mut tx, entry).await?;
                tx.commit().await?;
                Ok(seq)
            }
        }
    }

    /// Rows after `after_seq`, oldest first, at most `limit`.
    pub async fn rows_after(&self, after_seq: i64, limit: u32) -> Result<Vec<Row>, AuditError> {
        Ok(rows_after(&self.db, after_seq, limit).await?)
    }

    /// The last `limit` rows, oldest first.
    pub async fn last(&self, limit: u32) -> Result<Vec<Row>, AuditError> {
        let records: Vec<RowRecord> = match &self.db {
            Db::Sqlite(pool) => {
                sqlx::query_as(concat!(
                    "SELECT ",
                    row_columns!(),
                    " FROM audit_log ORDER BY seq DESC LIMIT ?"
                ))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
            }
            Db::Postgres(pool) => {
                sqlx::query_as(concat!(
                    "SELECT ",
                    row_columns!(),
                    " FROM audit_log ORDER BY seq DESC LIMIT $1"
                ))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
            }
        };
        let mut rows: Vec<Row> = records.into_iter().map(Row::from).collect();
        rows.reverse();
        Ok(rows)
    }

    /// Recomputes the whole chain and reports the first broken row.
    pub async fn verify(&self) -> Result<Report, AuditError> {
        const PAGE: u32 = 1000;
        let mut verifier = Verifier::default();
        let mut after = i64::MIN;
        let mut first_broken = None;
        let mut last_seq = 0;
        'pages: loop {
            let page = rows_after(&self.db, after, PAGE).await?;
            let Some(tail) = page.last() else { break };
            after = tail.seq;
            for row in &page {
                last_seq = row.seq;
                if let Err(b) = verifier.check(row) {
                    first_broken = Some((row.seq, b));
                    break 'pages;
                }
            }
        }
        let shipped = self.shipped_seq().await?;
        let missing_shipped = match (first_broken.is_none(), shipped) {
            (true, Some(s)) if s > last_seq => Some(s),
            _ => None,
        };
        Ok(Report {
            sound_rows: verifier.checked(),
            head: verifier.head().to_string(),
            first_broken,
            missing_shipped,
        })
    }

    /// The last row the shipping record says was sent to syslog, if any was.
    pub async fn shipped_seq(&self) -> Result<Option<i64>, AuditError> {
        const Q: &str = "SELECT shipped_seq FROM audit_shipping WHERE id = 1";
        Ok(match &self.db {
            Db::Sqlite(pool) => sqlx::query_scalar(Q).fetch_optional(pool).await?,
            Db::Postgres(pool) => sqlx::query_scalar(Q).fetch_optional(pool).await?,
        })
    }

    /// Records that rows up to `seq` were sent to syslog.
    pub async fn set_shipped_seq(&self, seq: i64) -> Result<(), AuditError> {
        match &self.db {
            Db::Sqlite(pool) => {
                sqlx::query(
                    "INSERT INTO audit_shipping (id, shipped_seq) VALUES (1, ?)
                     ON CONFLICT (id) DO UPDATE SET shipped_seq = excluded.shipped_seq",
                )
                .bind(seq)
                .execute(pool)
                .await?;
            }
            Db::Postgres(pool) => {
                sqlx::query(
                    "INSERT INTO audit_shipping (id, shipped_seq) VALUES (1, $1)
                     ON CONFLICT (id) DO UPDATE SET shipped_seq = excluded.shipped_seq",
                )
                .bind(seq)
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }
}

#[derive(sqlx::FromRow)]
struct RowRecord {
    seq: i64,
    at_ms: i64,
    kind: String,
    actor: String,
    source: String,
    subject: String,
    detail: String,
    prev_hash: String,
    hash: String,
}

impl From<RowRecord> for Row {
    fn from(r: RowRecord) -> Row {
        Row {
            seq: r.seq,
            at_ms: r.at_ms,
            kind: r.kind,
            actor: r.actor,
            source: r.source,
            subject: r.subject,
            detail: r.detail,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

async fn rows_after(db: &Db, after_seq: i64, limit: u32) -> Result<Vec<Row>, sqlx::Error> {
    let rows: Vec<RowRecord> = match db {
        Db::Sqlite(pool) => {
            sqlx::query_as(concat!(
                "SELECT ",
                row_columns!(),
                " FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?"
            ))
            .bind(after_seq)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        }
        Db::Postgres(pool) => {
            sqlx::query_as(concat!(
                "SELECT ",
                row_columns!(),
                " FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
            ))
            .bind(after_seq)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        }
    };
    Ok(rows.into_iter().map(Row::from).collect())
}

/// `cli:<os user>` for commands run on the relay host.
pub fn cli_actor() -> String {
    let user = std::env::var("SUDO_USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".to_string());
    format!("cli:{}", cut(&user, 64))
}
