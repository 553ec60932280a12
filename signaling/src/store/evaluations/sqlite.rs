//! The SQLite implementation of [`super::EvaluationStore`]: row types mapped with `sqlx::FromRow`, and the queries.

use crate::queue::Session;
use crate::store::sqlite::SqliteStore;
use crate::store::{StoreError, StoreResult};
use async_trait::async_trait;
use protocol::control::EvaluationLevel;

#[allow(clippy::wildcard_imports)]
use super::*;

/// An `evaluations` row's record columns as stored.
#[derive(sqlx::FromRow)]
pub(super) struct EvaluationRow {
    id: String,
    ticket_id: String,
    ticket_number: String,
    centre_id: String,
    centre_name: String,
    category_id: String,
    category_name: String,
    window_id: String,
    window_name: String,
    clerk_id: String,
    clerk_name: String,
    extension_point_id: String,
    extension_point_name: String,
    device_id: String,
    level: Option<i64>,
    /// Comma separated.
    reasons: String,
    service_started_ms: i64,
    service_ended_ms: i64,
    evaluated_ms: i64,
    received_ms: i64,
}

impl TryFrom<EvaluationRow> for EvaluationRecord {
    type Error = StoreError;

    fn try_from(r: EvaluationRow) -> StoreResult<EvaluationRecord> {
        let level = match r.level {
            None => None,
            Some(n) => Some(
                u8::try_from(n)
                    .ok()
                    .and_then(EvaluationLevel::from_score)
                    .ok_or_else(|| StoreError::Corrupt(format!("evaluation level {n}")))?,
            ),
        };
        Ok(EvaluationRecord {
            id: r.id,
            ticket_id: r.ticket_id,
            ticket_number: r.ticket_number,
            centre_id: r.centre_id,
            centre_name: r.centre_name,
            category_id: r.category_id,
            category_name: r.category_name,
            window_id: r.window_id,
            window_name: r.window_name,
            clerk_id: r.clerk_id,
            clerk_name: r.clerk_name,
            extension_point_id: r.extension_point_id,
            extension_point_name: r.extension_point_name,
            device_id: r.device_id,
            level,
            reasons: r
                .reasons
                .split(',')
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect(),
            service_started_ms: r.service_started_ms,
            service_ended_ms: r.service_ended_ms,
            evaluated_ms: r.evaluated_ms,
            received_ms: r.received_ms,
        })
    }
}

/// An `evaluations` row: the record and its forwarding state.
#[derive(sqlx::FromRow)]
pub(super) struct StoredRow {
    #[sqlx(flatten)]
    record: EvaluationRow,
    forward_state: String,
    forward_attempts: i64,
    forward_next_ms: i64,
    forward_error: Option<String>,
    forwarded_ms: Option<i64>,
}

impl TryFrom<StoredRow> for StoredEvaluation {
    type Error = StoreError;

    fn try_from(r: StoredRow) -> StoreResult<StoredEvaluation> {
        Ok(StoredEvaluation {
            record: r.record.try_into()?,
            forwarding: Forwarding {
                state: ForwardState::parse(&r.forward_state)?,
                attempts: u32::try_from(r.forward_attempts).unwrap_or(u32::MAX),
                next_ms: r.forward_next_ms,
                error: r.forward_error,
                forwarded_ms: r.forwarded_ms,
            },
        })
    }
}

/// An `evaluation_followups` row as stored.
#[derive(sqlx::FromRow)]
pub(super) struct FollowUpRow {
    evaluation_id: String,
    centre_id: String,
    opened_ms: i64,
    due_date: String,
    due_ms: i64,
    state: String,
    visited_ms: Option<i64>,
    verification: String,
    rectification: String,
    feedback: String,
    closed_ms: Option<i64>,
    updated_by: Option<String>,
    updated_ms: Option<i64>,
}

impl TryFrom<FollowUpRow> for FollowUp {
    type Error = StoreError;

    fn try_from(r: FollowUpRow) -> StoreResult<FollowUp> {
        Ok(FollowUp {
            state: match r.state.as_str() {
                "open" => FollowUpState::Open,
                "closed" => FollowUpState::Closed,
                other => return Err(StoreError::Corrupt(format!("follow-up state {other:?}"))),
            },
            evaluation_id: r.evaluation_id,
            centre_id: r.centre_id,
            opened_ms: r.opened_ms,
            due_date: r.due_date,
            due_ms: r.due_ms,
            visited_ms: r.visited_ms,
            verification: r.verification,
            rectification: r.rectification,
            feedback: r.feedback,
            closed_ms: r.closed_ms,
            updated_by: r.updated_by,
            updated_ms: r.updated_ms,
        })
    }
}

/// A follow-up joined with its evaluation (both read `centre_id`: the follow-up's).
#[derive(sqlx::FromRow)]
pub(super) struct FollowUpWithRecordRow {
    #[sqlx(flatten)]
    pub(super) followup: FollowUpRow,
    #[sqlx(flatten)]
    pub(super) record: EvaluationRow,
}

/// An `evaluation_sessions` row: the session and when it ended.
#[derive(sqlx::FromRow)]
pub(super) struct SessionRow {
    ticket_id: String,
    ticket_number: String,
    centre_id: String,
    device_id: String,
    extension_point_id: Option<String>,
    window_id: String,
    clerk_id: String,
    category_id: String,
    started_ms: i64,
    ended_ms: i64,
}

impl From<SessionRow> for (Session, i64) {
    fn from(r: SessionRow) -> Self {
        let session = Session {
            ticket_id: r.ticket_id,
            ticket_number: r.ticket_number,
            centre_id: r.centre_id,
            device_id: r.device_id,
            extension_point_id: r.extension_point_id,
            window_id: r.window_id,
            clerk_id: r.clerk_id,
            category_id: r.category_id,
            started_ms: r.started_ms,
        };
        (session, r.ended_ms)
    }
}

pub(super) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

#[async_trait]
impl EvaluationStore for SqliteStore {
    async fn remember_session(&self, s: &Session, ended_ms: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO evaluation_sessions (ticket_id, ticket_number, centre_id, device_id,
                extension_point_id, window_id, clerk_id, category_id, started_ms, ended_ms)
             VALUES (?,?,?,?,?,?,?,?,?,?)
             ON CONFLICT(ticket_id) DO UPDATE SET
                ticket_number = excluded.ticket_number, centre_id = excluded.centre_id,
                device_id = excluded.device_id, extension_point_id = excluded.extension_point_id,
                window_id = excluded.window_id, clerk_id = excluded.clerk_id,
                category_id = excluded.category_id, started_ms = excluded.started_ms,
                ended_ms = excluded.ended_ms
             WHERE excluded.ended_ms >= evaluation_sessions.ended_ms",
        )
        .bind(&s.ticket_id)
        .bind(&s.ticket_number)
        .bind(&s.centre_id)
        .bind(&s.device_id)
        .bind(&s.extension_point_id)
        .bind(&s.window_id)
        .bind(&s.clerk_id)
        .bind(&s.category_id)
        .bind(s.started_ms)
        .bind(ended_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn ended_session(&self, ticket_id: &str) -> StoreResult<Option<(Session, i64)>> {
        let row: Option<SessionRow> =
            sqlx::query_as("SELECT * FROM evaluation_sessions WHERE ticket_id = ?")
                .bind(ticket_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(Into::into))
    }

    async fn forget_sessions_before(&self, ended_before_ms: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM evaluation_sessions WHERE ended_ms < ?")
            .bind(ended_before_ms)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    async fn evaluation(&self, id: &str) -> StoreResult<Option<StoredEvaluation>> {
        let row: Option<StoredRow> = sqlx::query_as(concat!(
            "SELECT ",
            evaluation_columns!(),
            " FROM evaluations WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(StoredEvaluation::try_from).transpose()
    }

    async fn insert_evaluation(
        &self,
        r: &EvaluationRecord,
        followup: Option<&NewFollowUp>,
        forward_next_ms: i64,
    ) -> StoreResult<InsertOutcome> {
        let mut tx = self.pool().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO evaluations (id, ticket_id, ticket_number, centre_id, centre_name,
                category_id, category_name, window_id, window_name, clerk_id, clerk_name,
                extension_point_id, extension_point_name, device_id, level, reasons,
                service_started_ms, service_ended_ms, evaluated_ms, received_ms, forward_next_ms)
             VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        )
        .bind(&r.id)
        .bind(&r.ticket_id)
        .bind(&r.ticket_number)
        .bind(&r.centre_id)
        .bind(&r.centre_name)
        .bind(&r.category_id)
        .bind(&r.category_name)
        .bind(&r.window_id)
        .bind(&r.window_name)
        .bind(&r.clerk_id)
        .bind(&r.clerk_name)
        .bind(&r.extension_point_id)
        .bind(&r.extension_point_name)
        .bind(&r.device_id)
        .bind(r.level.map(|l| i64::from(l.score())))
        .bind(r.reasons.join(","))
        .bind(r.service_started_ms)
        .bind(r.service_ended_ms)
        .bind(r.evaluated_ms)
        .bind(r.received_ms)
        .bind(forward_next_ms)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                drop(tx);
                return Ok(match self.evaluation(&r.id).await? {
                    Some(existing) => InsertOutcome::Duplicate {
                        device_id: existing.record.device_id,
                    },
                    None => InsertOutcome::TicketEvaluated,
                });
            }
            Err(e) => return Err(e.into()),
        }
        if let Some(f) = followup {
            sqlx::query(
                "INSERT INTO evaluation_followups (evaluation_id, centre_id, opened_ms, due_date, due_ms)
                 VALUES (?,?,?,?,?)",
            )
            .bind(&r.id)
            .bind(&r.centre_id)
            .bind(r.received_ms)
            .bind(&f.due_date)
            .bind(f.due_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(InsertOutcome::Stored)
    }

    async fn evaluations_between(
        &self,
        centre_id: &str,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<StoredEvaluation>> {
        let rows: Vec<StoredRow> = sqlx::query_as(concat!(
            "SELECT ",
            evaluation_columns!(),
            " FROM evaluations
             WHERE centre_id = ? AND evaluated_ms >= ? AND evaluated_ms < ?
             ORDER BY evaluated_ms DESC, id LIMIT ?"
        ))
        .bind(centre_id)
        .bind(from_ms)
        .bind(to_ms)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(StoredEvaluation::try_from).collect()
    }

    async fn due_forwards(&self, now_ms: i64, limit: u32) -> StoreResult<Vec<StoredEvaluation>> {
        let rows: Vec<StoredRow> = sqlx::query_as(concat!(
            "SELECT ",
            evaluation_columns!(),
            " FROM evaluations
             WHERE forward_state = 'pending' AND forward_next_ms <= ?
             ORDER BY forward_next_ms, id LIMIT ?"
        ))
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(StoredEvaluation::try_from).collect()
    }

    async fn next_forward_ms(&self) -> StoreResult<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(forward_next_ms) AS next FROM evaluations WHERE forward_state = 'pending'",
        )
        .fetch_one(self.pool())
        .await?)
    }

    async fn forward_delivered(&self, id: &str, attempts: u32, now_ms: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE evaluations SET forward_state = 'delivered', forward_attempts = ?,
                forwarded_ms = ?, forward_error = NULL WHERE id = ?",
        )
        .bind(i64::from(attempts))
        .bind(now_ms)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn forward_failed(
        &self,
        id: &str,
        attempts: u32,
        next_ms: Option<i64>,
        error: &str,
    ) -> StoreResult<()> {
        let (state, next) = match next_ms {
            Some(n) => ("pending", Some(n)),
            None => ("dead", None),
        };
        sqlx::query(
            "UPDATE evaluations SET forward_state = ?, forward_attempts = ?,
                forward_next_ms = COALESCE(?, forward_next_ms), forward_error = ? WHERE id = ?",
        )
        .bind(state)
        .bind(i64::from(attempts))
        .bind(next)
        .bind(error)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn dead_letters(
        &self,
        centre_id: &str,
        limit: u32,
    ) -> StoreResult<Vec<StoredEvaluation>> {
        let rows: Vec<StoredRow> = sqlx::query_as(concat!(
            "SELECT ",
            evaluation_columns!(),
            " FROM evaluations
             WHERE centre_id = ? AND forward_state = 'dead'
             ORDER BY evaluated_ms DESC, id LIMIT ?"
        ))
        .bind(centre_id)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(StoredEvaluation::try_from).collect()
    }

    async fn requeue_dead_letter(
        &self,
        centre_id: &str,
        id: &str,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE evaluations SET forward_state = 'pending', forward_attempts = 0,
                forward_next_ms = ? WHERE id = ? AND centre_id = ? AND forward_state = 'dead'",
        )
        .bind(now_ms)
        .bind(id)
        .bind(centre_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn followups(
        &self,
        centre_id: &str,
        filter: FollowUpFilter,
        limit: u32,
    ) -> StoreResult<Vec<(FollowUp, EvaluationRecord)>> {
        let only_open = matches!(filter, FollowUpFilter::Open);
        let rows: Vec<FollowUpWithRecordRow> = sqlx::query_as(concat!(
            "SELECT ",
            followup_columns!(),
            ", e.id, e.ticket_id, e.ticket_number,
                e.centre_id AS e_centre_id, e.centre_name, e.category_id, e.category_name,
                e.window_id, e.window_name, e.clerk_id, e.clerk_name, e.extension_point_id,
                e.extension_point_name, e.device_id, e.level, e.reasons, e.service_started_ms,
                e.service_ended_ms, e.evaluated_ms, e.received_ms
             FROM evaluation_followups f JOIN evaluations e ON e.id = f.evaluation_id
             WHERE f.centre_id = ? AND (? = 0 OR f.state = 'open')
             ORDER BY f.state DESC, f.due_ms, f.evaluation_id LIMIT ?"
        ))
        .bind(centre_id)
        .bind(i64::from(only_open))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| Ok((r.followup.try_into()?, r.record.try_into()?)))
            .collect()
    }

    async fn update_followup(
        &self,
        centre_id: &str,
        evaluation_id: &str,
        u: &FollowUpUpdate,
        by: &str,
        now_ms: i64,
    ) -> StoreResult<FollowUpSaved> {
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let state: Option<String> = sqlx::query_scalar(
            "SELECT state FROM evaluation_followups WHERE evaluation_id = ? AND centre_id = ?",
        )
        .bind(evaluation_id)
        .bind(centre_id)
        .fetch_optional(&mut *tx)
        .await?;
        match state.as_deref() {
            None => return Ok(FollowUpSaved::NotFound),
            Some("open") => {}
            Some(_) => return Ok(FollowUpSaved::AlreadyClosed),
        }
        sqlx::query(
            "UPDATE evaluation_followups SET visited_ms = ?, verification = ?, rectification = ?,
                feedback = ?, updated_by = ?, updated_ms = ?,
                state = CASE WHEN ? THEN 'closed' ELSE state END,
                closed_ms = CASE WHEN ? AND closed_ms IS NULL THEN ? ELSE closed_ms END
             WHERE evaluation_id = ? AND centre_id = ? AND state = 'open'",
        )
        .bind(u.visited_ms)
        .bind(&u.verification)
        .bind(&u.rectification)
        .bind(&u.feedback)
        .bind(by)
        .bind(now_ms)
        .bind(u.close)
        .bind(u.close)
        .bind(now_ms)
        .bind(evaluation_id)
        .bind(centre_id)
        .execute(&mut *tx)
        .await?;
        let new_state = if u.close { "closed" } else { "open" };
        sqlx::query(
            "INSERT INTO evaluation_followup_history (evaluation_id, at_ms, by_clerk, state,
                visited_ms, verification, rectification, feedback) VALUES (?,?,?,?,?,?,?,?)",
        )
        .bind(evaluation_id)
        .bind(now_ms)
        .bind(by)
        .bind(new_state)
        .bind(u.visited_ms)
        .bind(&u.verification)
        .bind(&u.rectification)
        .bind(&u.feedback)
        .execute(&mut *tx)
        .await?;
        crate::audit::append(
            &mut tx,
            &crate::audit::Entry::new(
                now_ms,
                &format!(
                    "{}.{}",
                    crate::audit::kind::FOLLOWUP,
                    if u.close { "closed" } else { "saved" }
                ),
                &format!("clerk:{by}"),
                None,
                &format!("evaluation:{evaluation_id}"),
                "",
            ),
        )
        .await?;
        let row: FollowUpRow = sqlx::query_as(concat!(
            "SELECT ",
            followup_columns!(),
            " FROM evaluation_followups f WHERE f.evaluation_id = ?"
        ))
        .bind(evaluation_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(FollowUpSaved::Saved(Box::new(row.try_into()?)))
    }
}
