//! The PostgreSQL implementation of [`super::RecordingStore`]: the SQLite queries in PostgreSQL
//! placeholders, decoding into the same row types.

use async_trait::async_trait;

use super::{
    AccessRow, RecordingAccess, RecordingQuery, RecordingRow, RecordingStore, StoredRecordingRow,
};
use crate::store::postgres::PgStore;
use crate::store::{StoreError, StoreResult};

/// Writes the access row and its audit-trail row; `conn` must be in a transaction.
async fn insert_access(conn: &mut sqlx::PgConnection, a: &RecordingAccess) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO recording_access (at_ms, actor, action, recording_id, centre_id, detail)
         VALUES ($1,$2,$3,$4,$5,$6)",
    )
    .bind(a.at_ms)
    .bind(&a.actor)
    .bind(a.action.as_str())
    .bind(&a.recording_id)
    .bind(&a.centre_id)
    .bind(&a.detail)
    .execute(&mut *conn)
    .await?;
    crate::audit::append_pg(conn, &super::trail_entry(a)).await?;
    Ok(())
}

#[async_trait]
impl RecordingStore for PgStore {
    async fn save_recording(&self, r: &RecordingRow) -> StoreResult<()> {
        let tracks = serde_json::to_string(&r.tracks)
            .map_err(|e| StoreError::Corrupt(format!("recording tracks: {e}")))?;
        sqlx::query(
            "INSERT INTO recordings (id, ticket_id, ticket_number, centre_id, window_id, clerk_id,
                device_id, extension_point_id, state, started_ms, ended_ms, duration_ms,
                size_bytes, sha256, file, container, tracks, encrypted, torn_tail, error, purged_ms)
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21)
             ON CONFLICT(id) DO UPDATE SET
                state = excluded.state, started_ms = excluded.started_ms,
                ended_ms = excluded.ended_ms, duration_ms = excluded.duration_ms,
                size_bytes = excluded.size_bytes, sha256 = excluded.sha256, file = excluded.file,
                container = excluded.container, tracks = excluded.tracks,
                encrypted = excluded.encrypted, torn_tail = excluded.torn_tail,
                error = excluded.error, purged_ms = excluded.purged_ms",
        )
        .bind(&r.id)
        .bind(&r.ticket_id)
        .bind(&r.ticket_number)
        .bind(&r.centre_id)
        .bind(&r.window_id)
        .bind(&r.clerk_id)
        .bind(&r.device_id)
        .bind(&r.extension_point_id)
        .bind(r.state.as_str())
        .bind(r.started_ms)
        .bind(r.ended_ms)
        .bind(r.duration_ms)
        .bind(r.size_bytes)
        .bind(&r.sha256)
        .bind(&r.file)
        .bind(&r.container)
        .bind(tracks)
        .bind(i64::from(r.encrypted))
        .bind(i64::from(r.torn_tail))
        .bind(&r.error)
        .bind(r.purged_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn recording(&self, id: &str) -> StoreResult<Option<RecordingRow>> {
        let row: Option<StoredRecordingRow> = sqlx::query_as(concat!(
            "SELECT ",
            super::columns!(),
            " FROM recordings WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(RecordingRow::try_from).transpose()
    }

    async fn recordings(&self, q: &RecordingQuery) -> StoreResult<Vec<RecordingRow>> {
        let rows: Vec<StoredRecordingRow> = sqlx::query_as(concat!(
            "SELECT ",
            super::columns!(),
            " FROM recordings
             WHERE centre_id = $1 AND state != 'purged'
               AND ($2 IS NULL OR started_ms >= $3) AND ($4 IS NULL OR started_ms < $5)
               AND ($6 IS NULL OR ticket_number = $7)
             ORDER BY started_ms DESC, id LIMIT $8"
        ))
        .bind(&q.centre_id)
        .bind(q.from_ms)
        .bind(q.from_ms)
        .bind(q.to_ms)
        .bind(q.to_ms)
        .bind(&q.ticket_number)
        .bind(&q.ticket_number)
        .bind(i64::from(q.limit))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(RecordingRow::try_from).collect()
    }

    async fn unfinished_recordings(&self) -> StoreResult<Vec<RecordingRow>> {
        let rows: Vec<StoredRecordingRow> = sqlx::query_as(concat!(
            "SELECT ",
            super::columns!(),
            " FROM recordings WHERE state = 'recording' ORDER BY started_ms"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(RecordingRow::try_from).collect()
    }

    async fn recordings_started_before(
        &self,
        before_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<RecordingRow>> {
        let rows: Vec<StoredRecordingRow> = sqlx::query_as(concat!(
            "SELECT ",
            super::columns!(),
            " FROM recordings
             WHERE state IN ('complete', 'failed') AND started_ms < $1
             ORDER BY started_ms LIMIT $2"
        ))
        .bind(before_ms)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(RecordingRow::try_from).collect()
    }

    async fn mark_purged(&self, id: &str, audit: &RecordingAccess) -> StoreResult<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE recordings SET state = 'purged', purged_ms = $1, file = NULL WHERE id = $2",
        )
        .bind(audit.at_ms)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        insert_access(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_recording_access(&self, access: &RecordingAccess) -> StoreResult<()> {
        let mut tx = self.pool().begin().await?;
        insert_access(&mut tx, access).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn recording_audit(
        &self,
        recording_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<RecordingAccess>> {
        let rows: Vec<AccessRow> = sqlx::query_as(
            "SELECT at_ms, actor, action, recording_id, centre_id, detail FROM recording_access
             WHERE ($1 IS NULL OR recording_id = $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(recording_id)
        .bind(recording_id)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(RecordingAccess::try_from).collect()
    }
}
