//! The PostgreSQL implementation of [`super::EvaluationStore`]: the SQLite queries in PostgreSQL
//! placeholders, decoding into the same row types.

use crate::queue::Session;
use crate::store::StoreResult;
use crate::store::postgres::PgStore;
use async_trait::async_trait;

use super::sqlite::{
    FollowUpRow, FollowUpWithRecordRow, SessionRow, StoredRow, is_unique_violation,
};
#[allow(clippy::wildcard_imports)]
use super::*;

#[async_trait]
impl EvaluationStore for PgStore {
    async fn remember_session(&self, s: &Session, ended_ms: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO evaluation_sessions (ticket_id, ticket_number, centre_id, device_id,
                extension_point_id, window_id, clerk_id, category_id, started_ms, ended_ms)
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)
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
            sqlx::query_as("SELECT * FROM evaluation_sessions WHERE ticket_id = $1")
                .bind(ticket_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(Into::into))
    }

    async fn forget_sessions_before(&self, ended_before_ms: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM evaluation_sessions WHERE ended_ms < $1")
            .bind(ended_before_ms)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    async fn evaluation(&self, id: &str) -> StoreResult<Option<StoredEvaluation>> {
        let row: Option<StoredRow> = sqlx::query_as(concat!(
            "SELECT ",
            evaluation_columns!(),
            " FROM evaluations WHERE id = $1"
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
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21)",
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
                 VALUES ($1,$2,$3,$4,$5)",
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
             WHERE centre_id = $1 AND evaluated_ms >= $2 AND evaluated_ms < $3
             ORDER BY evaluated_ms DESC, id LIMIT $4"
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
             WHERE forward_state = 'pending' AND forward_next_ms <= $1
             ORDER BY forward_next_ms, id LIMIT $2"
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
            "UPDATE evaluations SET forward_state = 'delivered', forward_attempts = $1,
                forwarded_ms = $2, forward_error = NULL WHERE id = $3",
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
            "UPDATE evaluations SET forward_state = $1, forward_attempts = $2,
                forward_next_ms = COALESCE($3, forward_next_ms), forward_error = $4 WHERE id = $5",
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
             WHERE centre_id = $1 AND forward_state = 'dead'
             ORDER BY evaluated_ms DESC, id LIMIT $2"
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
                forward_next_ms = $1 WHERE id = $2 AND centre_id = $3 AND forward_state = 'dead'",
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
             WHERE f.centre_id = $1 AND ($2 = 0 OR f.state = 'open')
             ORDER BY f.state DESC, f.due_ms, f.evaluation_id LIMIT $3"
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
        let mut tx = self.pool().begin().await?;
        // The row is locked until commit: concurrent saves of one follow-up take turns, so one
        // that closes it is seen by the next (SQLite gets the same from BEGIN IMMEDIATE).
        let state: Option<String> = sqlx::query_scalar(
            "SELECT state FROM evaluation_followups WHERE evaluation_id = $1 AND centre_id = $2
             FOR UPDATE",
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
            "UPDATE evaluation_followups SET visited_ms = $1, verification = $2, rectification = $3,
                feedback = $4, updated_by = $5, updated_ms = $6,
                state = CASE WHEN $7 THEN 'closed' ELSE state END,
                closed_ms = CASE WHEN $8 AND closed_ms IS NULL THEN $9 ELSE closed_ms END
             WHERE evaluation_id = $10 AND centre_id = $11 AND state = 'open'",
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
                visited_ms, verification, rectification, feedback)
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
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
        let row: FollowUpRow = sqlx::query_as(concat!(
            "SELECT ",
            followup_columns!(),
            " FROM evaluation_followups f WHERE f.evaluation_id = $1"
        ))
        .bind(evaluation_id)
        .fetch_one(&mut *tx)
        .await?;
        // The trail row last: the chain's lock is taken after every row lock (see audit::append_pg).
        crate::audit::append_pg(
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
        tx.commit().await?;
        Ok(FollowUpSaved::Saved(Box::new(row.try_into()?)))
    }
}
