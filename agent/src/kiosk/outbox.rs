//! The kiosk's durable outbox for 好差评 evaluations (SQLite, one file under the agent's data
//! directory).
//!
//! An evaluation is committed here (WAL, `synchronous = FULL`) before the resident sees "thank
//! you"; [`deliver`] then sends it to the relay until the relay acknowledges it, so a power cut
//! or a lost network right after the tap loses nothing. Delivery is at least once: the
//! evaluation id is the idempotency key, and the relay stores each id once. One evaluation per
//! ticket, here as at the relay.
//!
//! Rows the relay accepted or refused for good are kept 30 days for technicians, then purged.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use protocol::control::{ErrorCode, KioskEvaluation};
use serde::Serialize;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::now_ms;
use crate::link::control::{KioskState, Link, LinkError, LinkState};

/// The outbox's file inside the agent's data directory.
pub const FILE: &str = "kiosk-outbox.sqlite";
/// Delivered and refused rows are kept this long.
const KEEP_DONE_MS: i64 = 30 * 24 * 3600 * 1000;
/// Pending evaluations beyond this are refused (a kiosk offline for months): bounded storage.
pub const MAX_PENDING: i64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot prepare the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("stored evaluation is unreadable: {0}")]
    Corrupt(String),
    #[error("the outbox is full ({MAX_PENDING} evaluations wait for the relay)")]
    Full,
}

/// What [`Outbox::record`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    New,
    /// The ticket already had an evaluation (this one was not stored); its id.
    AlreadyEvaluated(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutboxCounts {
    pub pending: i64,
    pub delivered: i64,
    pub rejected: i64,
}

#[derive(Clone)]
pub struct Outbox {
    pool: SqlitePool,
    wake: Arc<Notify>,
}

impl Outbox {
    pub async fn open(data_dir: &Path) -> Result<Self, OutboxError> {
        std::fs::create_dir_all(data_dir).map_err(|source| OutboxError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let options = SqliteConnectOptions::new()
            .filename(data_dir.join(FILE))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        Self::connect(options).await
    }

    /// A private in-memory outbox, for tests.
    pub async fn in_memory() -> Result<Self, OutboxError> {
        Self::connect(SqliteConnectOptions::from_str("sqlite::memory:")?).await
    }

    async fn connect(options: SqliteConnectOptions) -> Result<Self, OutboxError> {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS evaluations (
                evaluation_id TEXT PRIMARY KEY,
                ticket_id     TEXT NOT NULL UNIQUE,
                body          TEXT NOT NULL,
                created_ms    INTEGER NOT NULL,
                state         TEXT NOT NULL DEFAULT 'pending'
                              CHECK (state IN ('pending', 'delivered', 'rejected')),
                attempts      INTEGER NOT NULL DEFAULT 0,
                next_ms       INTEGER NOT NULL,
                last_error    TEXT,
                done_ms       INTEGER
            )",
        )
        .execute(&pool)
        .await?;
        sqlx::query("CREATE INDEX IF NOT EXISTS evaluations_due ON evaluations (state, next_ms)")
            .execute(&pool)
            .await?;
        Ok(Self {
            pool,
            wake: Arc::new(Notify::new()),
        })
    }

    /// Commits an evaluation for delivery. Returns once it is on disk.
    pub async fn record(&self, e: &KioskEvaluation) -> Result<Recorded, OutboxError> {
        if let Some(existing) = self.evaluation_of(&e.ticket_id).await? {
            return Ok(Recorded::AlreadyEvaluated(existing));
        }
        if self.counts().await?.pending >= MAX_PENDING {
            return Err(OutboxError::Full);
        }
        let body = serde_json::to_string(e).map_err(|err| OutboxError::Corrupt(err.to_string()))?;
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO evaluations (evaluation_id, ticket_id, body, created_ms, next_ms)
             VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&e.evaluation_id)
        .bind(&e.ticket_id)
        .bind(body)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 0 {
            let existing = self.evaluation_of(&e.ticket_id).await?.unwrap_or_default();
            return Ok(Recorded::AlreadyEvaluated(existing));
        }
        self.wake.notify_one();
        Ok(Recorded::New)
    }

    /// The id of the evaluation recorded for `ticket_id`, if any.
    pub async fn evaluation_of(&self, ticket_id: &str) -> Result<Option<String>, OutboxError> {
        let row = sqlx::query("SELECT evaluation_id FROM evaluations WHERE ticket_id = ?")
            .bind(ticket_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get::<String, _>(0)))
    }

    pub async fn counts(&self) -> Result<OutboxCounts, OutboxError> {
        let rows = sqlx::query("SELECT state, COUNT(*) FROM evaluations GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        let mut c = OutboxCounts::default();
        for r in rows {
            let n: i64 = r.get(1);
            match r.get::<String, _>(0).as_str() {
                "pending" => c.pending = n,
                "delivered" => c.delivered = n,
                _ => c.rejected = n,
            }
        }
        Ok(c)
    }

    /// Pending evaluations due at `now`, oldest first, with their attempts so far.
    async fn due(&self, now: i64, limit: i64) -> Result<Vec<(KioskEvaluation, u32)>, OutboxError> {
        let rows = sqlx::query(
            "SELECT body, attempts FROM evaluations WHERE state = 'pending' AND next_ms <= ?
             ORDER BY next_ms, created_ms LIMIT ?",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let body: String = r.get(0);
                let attempts: i64 = r.get(1);
                serde_json::from_str(&body)
                    .map(|e| (e, u32::try_from(attempts).unwrap_or(u32::MAX)))
                    .map_err(|err| OutboxError::Corrupt(err.to_string()))
            })
            .collect()
    }

    async fn next_due(&self) -> Result<Option<i64>, OutboxError> {
        let row = sqlx::query("SELECT MIN(next_ms) FROM evaluations WHERE state = 'pending'")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.get::<Option<i64>, _>(0))
    }

    async fn finish(
        &self,
        id: &str,
        state: &str,
        attempts: u32,
        error: Option<&str>,
    ) -> Result<(), OutboxError> {
        sqlx::query(
            "UPDATE evaluations SET state = ?, attempts = ?, last_error = ?, done_ms = ?
             WHERE evaluation_id = ?",
        )
        .bind(state)
        .bind(i64::from(attempts))
        .bind(error)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn retry_at(
        &self,
        id: &str,
        attempts: u32,
        next_ms: i64,
        error: &str,
    ) -> Result<(), OutboxError> {
        sqlx::query("UPDATE evaluations SET attempts = ?, next_ms = ?, last_error = ? WHERE evaluation_id = ?")
            .bind(i64::from(attempts))
            .bind(next_ms)
            .bind(error)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn purge_done(&self, before_ms: i64) -> Result<(), OutboxError> {
        sqlx::query("DELETE FROM evaluations WHERE state != 'pending' AND done_ms < ?")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Whether a refusal from the relay is worth retrying.
fn retryable(e: &LinkError) -> bool {
    match e {
        LinkError::Offline | LinkError::Timeout => true,
        LinkError::Refused { code, .. } => {
            matches!(
                code,
                ErrorCode::Internal | ErrorCode::Timeout | ErrorCode::LimitExceeded
            )
        }
        LinkError::NoTicket => false,
    }
}

/// The wait after `attempts` failed deliveries: 1 s doubling to a minute.
pub fn retry_delay_ms(attempts: u32) -> i64 {
    1000_i64
        .saturating_mul(1 << attempts.saturating_sub(1).min(6))
        .min(60_000)
}

/// Delivers pending evaluations through the link until `shutdown`: at once when one is
/// recorded or the link comes online, otherwise when the next retry is due.
pub async fn deliver(outbox: Outbox, link: Link, shutdown: CancellationToken) {
    let mut state: watch::Receiver<KioskState> = link.state();
    let mut purge = tokio::time::interval(Duration::from_secs(3600));
    loop {
        let now = now_ms();
        let online = state.borrow().link == LinkState::Online;
        if online {
            match outbox.due(now, 10).await {
                Ok(due) => {
                    for (e, attempts) in due {
                        let attempts = attempts.saturating_add(1);
                        let id = e.evaluation_id.clone();
                        let result = match link.send_evaluation(e).await {
                            Ok(duplicate) => {
                                info!(evaluation = %id, duplicate, "evaluation delivered to the relay");
                                outbox.finish(&id, "delivered", attempts, None).await
                            }
                            Err(err) if retryable(&err) => {
                                warn!(evaluation = %id, attempts, error = %err, "evaluation not delivered; will retry");
                                outbox
                                    .retry_at(
                                        &id,
                                        attempts,
                                        now_ms() + retry_delay_ms(attempts),
                                        &err.to_string(),
                                    )
                                    .await
                            }
                            Err(err) => {
                                warn!(evaluation = %id, error = %err, "the relay refused the evaluation");
                                outbox
                                    .finish(&id, "rejected", attempts, Some(&err.to_string()))
                                    .await
                            }
                        };
                        if let Err(err) = result {
                            warn!(error = %err, "updating the outbox failed");
                        }
                    }
                }
                Err(err) => warn!(error = %err, "reading the outbox failed"),
            }
        }
        let next = if online {
            outbox.next_due().await.ok().flatten()
        } else {
            None
        };
        let wait = next.map_or(Duration::from_secs(60), |n| {
            Duration::from_millis(u64::try_from((n - now_ms()).clamp(50, 60_000)).unwrap_or(1000))
        });
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = outbox.wake.notified() => {}
            changed = state.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(wait) => {}
            _ = purge.tick() => {
                if let Err(err) = outbox.purge_done(now_ms() - KEEP_DONE_MS).await {
                    warn!(error = %err, "purging the outbox failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use protocol::control::EvaluationLevel;

    use super::*;

    fn evaluation(id: &str, ticket: &str) -> KioskEvaluation {
        KioskEvaluation {
            evaluation_id: id.into(),
            ticket_id: ticket.into(),
            level: Some(EvaluationLevel::Satisfied),
            reasons: vec![],
            evaluated_ms: 1,
        }
    }

    #[tokio::test]
    async fn one_evaluation_per_ticket_survives_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outbox = Outbox::open(dir.path()).await.expect("open");
        assert_eq!(
            outbox
                .record(&evaluation("e1", "t1"))
                .await
                .expect("record"),
            Recorded::New
        );
        assert_eq!(
            outbox
                .record(&evaluation("e2", "t1"))
                .await
                .expect("record"),
            Recorded::AlreadyEvaluated("e1".into())
        );
        drop(outbox);
        let outbox = Outbox::open(dir.path()).await.expect("reopen");
        assert_eq!(
            outbox.evaluation_of("t1").await.expect("read"),
            Some("e1".into())
        );
        let due = outbox.due(now_ms(), 10).await.expect("due");
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].0, evaluation("e1", "t1"));
        outbox
            .finish("e1", "delivered", 1, None)
            .await
            .expect("finish");
        assert!(outbox.due(now_ms(), 10).await.expect("due").is_empty());
        assert_eq!(outbox.counts().await.expect("counts").delivered, 1);
    }

    #[tokio::test]
    async fn failed_deliveries_wait_longer_each_time() {
        let outbox = Outbox::in_memory().await.expect("open");
        outbox
            .record(&evaluation("e1", "t1"))
            .await
            .expect("record");
        let now = now_ms();
        outbox
            .retry_at("e1", 1, now + 5_000, "offline")
            .await
            .expect("retry");
        assert!(outbox.due(now, 10).await.expect("due").is_empty());
        assert_eq!(outbox.due(now + 5_000, 10).await.expect("due")[0].1, 1);
        assert_eq!(retry_delay_ms(1), 1000);
        assert_eq!(retry_delay_ms(3), 4000);
        assert_eq!(retry_delay_ms(30), 60_000);
        assert!(retryable(&LinkError::Offline));
        assert!(!retryable(&LinkError::Refused {
            code: ErrorCode::NotFound,
            message: String::new()
        }));
    }
}
