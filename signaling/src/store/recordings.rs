//! Recordings' metadata and the audit trail of every access to them.
//!
//! Its own trait beside [`super::Store`]: the media service and the recordings routes are its
//! only users. [`SqliteStore`] implements it in the same database file
//! (`migrations/sqlite/0020_recordings.sql`).
//!
//! A row is written when a recording begins (`recording`), completed when it is muxed and
//! sealed (`complete`) or marked `failed`, and finally `purged` by the retention job — the
//! metadata outlives the file, as a record of the processing. The access table is append-only
//! (database triggers refuse updates and deletes).

use async_trait::async_trait;
use protocol::media::Slot;
use serde::{Deserialize, Serialize};

use super::sqlite::SqliteStore;
use super::{StoreError, StoreResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingState {
    Recording,
    Complete,
    Failed,
    Purged,
}

impl RecordingState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingState::Recording => "recording",
            RecordingState::Complete => "complete",
            RecordingState::Failed => "failed",
            RecordingState::Purged => "purged",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "recording" => RecordingState::Recording,
            "complete" => RecordingState::Complete,
            "failed" => RecordingState::Failed,
            "purged" => RecordingState::Purged,
            _ => return None,
        })
    }
}

/// One track of a recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackSummary {
    pub slot: Slot,
    /// `vp8`, `h264` or `opus`.
    pub codec: String,
    pub frames: u64,
    pub dropped_frames: u64,
}

/// The metadata of one recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingRow {
    pub id: String,
    pub ticket_id: String,
    pub ticket_number: String,
    pub centre_id: String,
    pub window_id: String,
    pub clerk_id: String,
    pub device_id: String,
    pub extension_point_id: Option<String>,
    pub state: RecordingState,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub duration_ms: Option<i64>,
    /// Size of the playable (decrypted) file.
    pub size_bytes: Option<i64>,
    /// SHA-256 of the playable (decrypted) file, hex.
    pub sha256: Option<String>,
    /// File name inside the recordings directory.
    pub file: Option<String>,
    /// `webm` or `mkv`.
    pub container: Option<String>,
    pub tracks: Vec<TrackSummary>,
    pub encrypted: bool,
    /// The relay stopped while recording; the file ends where the dump was torn.
    pub torn_tail: bool,
    pub error: Option<String>,
    pub purged_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessAction {
    List,
    View,
    Play,
    Purge,
    /// Someone without the right asked.
    Denied,
}

impl AccessAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessAction::List => "list",
            AccessAction::View => "view",
            AccessAction::Play => "play",
            AccessAction::Purge => "purge",
            AccessAction::Denied => "denied",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "list" => AccessAction::List,
            "view" => AccessAction::View,
            "play" => AccessAction::Play,
            "purge" => AccessAction::Purge,
            "denied" => AccessAction::Denied,
            _ => return None,
        })
    }
}

/// One audited access: who, when, what, which recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingAccess {
    pub at_ms: i64,
    /// A clerk id, or `system:retention`.
    pub actor: String,
    pub action: AccessAction,
    pub recording_id: Option<String>,
    pub centre_id: Option<String>,
    /// E.g. the byte range played, or the list filter.
    pub detail: String,
}

/// Which recordings to list.
#[derive(Debug, Clone, Default)]
pub struct RecordingQuery {
    pub centre_id: String,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub ticket_number: Option<String>,
    pub limit: u32,
}

#[async_trait]
pub trait RecordingStore: Send + Sync + 'static {
    /// Insert or replace the row with this id.
    async fn save_recording(&self, row: &RecordingRow) -> StoreResult<()>;
    async fn recording(&self, id: &str) -> StoreResult<Option<RecordingRow>>;
    /// Newest first, not purged.
    async fn recordings(&self, query: &RecordingQuery) -> StoreResult<Vec<RecordingRow>>;
    /// Rows still marked `recording` (their session was cut short by a restart).
    async fn unfinished_recordings(&self) -> StoreResult<Vec<RecordingRow>>;
    /// Complete or failed recordings that started before `before_ms`, oldest first.
    async fn recordings_started_before(
        &self,
        before_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<RecordingRow>>;
    /// Mark a recording purged and audit the deletion, in one transaction.
    async fn mark_purged(&self, id: &str, audit: &RecordingAccess) -> StoreResult<()>;
    async fn audit_recording_access(&self, access: &RecordingAccess) -> StoreResult<()>;
    /// Audit entries, newest first; of one recording when given.
    async fn recording_audit(
        &self,
        recording_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<RecordingAccess>>;
}

/// Stands in until the relay's store is attached ([`crate::http::AppState::with_recordings`]):
/// every call fails.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoRecordings;

fn unavailable<T>() -> StoreResult<T> {
    Err(StoreError::Corrupt(
        "no recordings store is attached".into(),
    ))
}

#[async_trait]
impl RecordingStore for NoRecordings {
    async fn save_recording(&self, _: &RecordingRow) -> StoreResult<()> {
        unavailable()
    }
    async fn recording(&self, _: &str) -> StoreResult<Option<RecordingRow>> {
        unavailable()
    }
    async fn recordings(&self, _: &RecordingQuery) -> StoreResult<Vec<RecordingRow>> {
        unavailable()
    }
    async fn unfinished_recordings(&self) -> StoreResult<Vec<RecordingRow>> {
        unavailable()
    }
    async fn recordings_started_before(&self, _: i64, _: u32) -> StoreResult<Vec<RecordingRow>> {
        unavailable()
    }
    async fn mark_purged(&self, _: &str, _: &RecordingAccess) -> StoreResult<()> {
        unavailable()
    }
    async fn audit_recording_access(&self, _: &RecordingAccess) -> StoreResult<()> {
        unavailable()
    }
    async fn recording_audit(&self, _: Option<&str>, _: u32) -> StoreResult<Vec<RecordingAccess>> {
        unavailable()
    }
}

/// The columns of a full row, as a literal so queries stay `&'static str`.
mod postgres;

macro_rules! columns {
    () => {
        "id, ticket_id, ticket_number, centre_id, window_id, clerk_id, device_id,
         extension_point_id, state, started_ms, ended_ms, duration_ms, size_bytes, sha256, file,
         container, tracks, encrypted, torn_tail, error, purged_ms"
    };
}
use columns;

/// A `recordings` row as stored ([`RecordingRow`] once parsed).
#[derive(sqlx::FromRow)]
pub(crate) struct StoredRecordingRow {
    id: String,
    ticket_id: String,
    ticket_number: String,
    centre_id: String,
    window_id: String,
    clerk_id: String,
    device_id: String,
    extension_point_id: Option<String>,
    state: String,
    started_ms: i64,
    ended_ms: Option<i64>,
    duration_ms: Option<i64>,
    size_bytes: Option<i64>,
    sha256: Option<String>,
    file: Option<String>,
    container: Option<String>,
    /// JSON.
    tracks: String,
    encrypted: i64,
    torn_tail: i64,
    error: Option<String>,
    purged_ms: Option<i64>,
}

impl TryFrom<StoredRecordingRow> for RecordingRow {
    type Error = StoreError;

    fn try_from(r: StoredRecordingRow) -> StoreResult<RecordingRow> {
        Ok(RecordingRow {
            state: RecordingState::parse(&r.state)
                .ok_or_else(|| StoreError::Corrupt(format!("recording state {:?}", r.state)))?,
            tracks: serde_json::from_str(&r.tracks)
                .map_err(|e| StoreError::Corrupt(format!("recording tracks: {e}")))?,
            id: r.id,
            ticket_id: r.ticket_id,
            ticket_number: r.ticket_number,
            centre_id: r.centre_id,
            window_id: r.window_id,
            clerk_id: r.clerk_id,
            device_id: r.device_id,
            extension_point_id: r.extension_point_id,
            started_ms: r.started_ms,
            ended_ms: r.ended_ms,
            duration_ms: r.duration_ms,
            size_bytes: r.size_bytes,
            sha256: r.sha256,
            file: r.file,
            container: r.container,
            encrypted: r.encrypted != 0,
            torn_tail: r.torn_tail != 0,
            error: r.error,
            purged_ms: r.purged_ms,
        })
    }
}

/// A `recording_access` row as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct AccessRow {
    at_ms: i64,
    actor: String,
    action: String,
    recording_id: Option<String>,
    centre_id: Option<String>,
    detail: String,
}

impl TryFrom<AccessRow> for RecordingAccess {
    type Error = StoreError;

    fn try_from(r: AccessRow) -> StoreResult<RecordingAccess> {
        Ok(RecordingAccess {
            action: AccessAction::parse(&r.action)
                .ok_or_else(|| StoreError::Corrupt(format!("access action {:?}", r.action)))?,
            at_ms: r.at_ms,
            actor: r.actor,
            recording_id: r.recording_id,
            centre_id: r.centre_id,
            detail: r.detail,
        })
    }
}

/// The audit-trail row mirroring a recording access row (ids only).
fn trail_entry(a: &RecordingAccess) -> crate::audit::Entry {
    let subject = match (&a.recording_id, &a.centre_id) {
        (Some(r), _) => format!("recording:{r}"),
        (None, Some(c)) => format!("centre:{c}"),
        (None, None) => String::new(),
    };
    let actor = if a.actor.contains(':') {
        a.actor.clone()
    } else {
        format!("clerk:{}", a.actor)
    };
    crate::audit::Entry::new(
        a.at_ms,
        &format!("{}.{}", crate::audit::kind::RECORDING, a.action.as_str()),
        &actor,
        None,
        &subject,
        &a.detail,
    )
}

/// Writes the access row and its audit-trail row; `conn` must be in a transaction.
async fn insert_access(conn: &mut sqlx::SqliteConnection, a: &RecordingAccess) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO recording_access (at_ms, actor, action, recording_id, centre_id, detail)
         VALUES (?,?,?,?,?,?)",
    )
    .bind(a.at_ms)
    .bind(&a.actor)
    .bind(a.action.as_str())
    .bind(&a.recording_id)
    .bind(&a.centre_id)
    .bind(&a.detail)
    .execute(&mut *conn)
    .await?;
    crate::audit::append(conn, &trail_entry(a)).await?;
    Ok(())
}

#[async_trait]
impl RecordingStore for SqliteStore {
    async fn save_recording(&self, r: &RecordingRow) -> StoreResult<()> {
        let tracks = serde_json::to_string(&r.tracks)
            .map_err(|e| StoreError::Corrupt(format!("recording tracks: {e}")))?;
        sqlx::query(
            "INSERT INTO recordings (id, ticket_id, ticket_number, centre_id, window_id, clerk_id,
                device_id, extension_point_id, state, started_ms, ended_ms, duration_ms,
                size_bytes, sha256, file, container, tracks, encrypted, torn_tail, error, purged_ms)
             VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
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
            columns!(),
            " FROM recordings WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(RecordingRow::try_from).transpose()
    }

    async fn recordings(&self, q: &RecordingQuery) -> StoreResult<Vec<RecordingRow>> {
        let rows: Vec<StoredRecordingRow> = sqlx::query_as(concat!(
            "SELECT ",
            columns!(),
            " FROM recordings
             WHERE centre_id = ? AND state != 'purged'
               AND (? IS NULL OR started_ms >= ?) AND (? IS NULL OR started_ms < ?)
               AND (? IS NULL OR ticket_number = ?)
             ORDER BY started_ms DESC, id LIMIT ?"
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
            columns!(),
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
            columns!(),
            " FROM recordings
             WHERE state IN ('complete', 'failed') AND started_ms < ?
             ORDER BY started_ms LIMIT ?"
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
            "UPDATE recordings SET state = 'purged', purged_ms = ?, file = NULL WHERE id = ?",
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
             WHERE (? IS NULL OR recording_id = ?) ORDER BY id DESC LIMIT ?",
        )
        .bind(recording_id)
        .bind(recording_id)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(RecordingAccess::try_from).collect()
    }
}
