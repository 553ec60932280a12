//! The SQLite side of window pauses (暂停服务): written in the same transaction as the window's
//! sign-in, read back with the queue at start-up. Kept apart from `sqlite.rs` so another
//! store can port exactly these two statements.

use protocol::queue::{PauseReason, WindowPause};
use sqlx::{Sqlite, Transaction};

use super::{StoreError, StoreResult};

/// Sets or clears the pause of `window_id` inside the queue event's transaction.
pub(super) async fn save(
    tx: &mut Transaction<'_, Sqlite>,
    window_id: &str,
    pause: Option<&WindowPause>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE windows SET pause_reason = ?, pause_since_ms = ?, pause_until_ms = ? WHERE id = ?",
    )
    .bind(pause.map(|p| p.reason.as_str()))
    .bind(pause.map(|p| p.since_ms))
    .bind(pause.map(|p| p.until_ms))
    .bind(window_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The paused windows of a centre that still have a clerk signed in.
pub(super) async fn load(
    pool: &sqlx::SqlitePool,
    centre_id: &str,
) -> StoreResult<Vec<(String, WindowPause)>> {
    let rows = sqlx::query_as::<_, (String, String, i64, i64)>(
        "SELECT id, pause_reason, pause_since_ms, pause_until_ms FROM windows
         WHERE centre_id = ? AND clerk_id IS NOT NULL AND pause_reason IS NOT NULL
           AND pause_since_ms IS NOT NULL AND pause_until_ms IS NOT NULL",
    )
    .bind(centre_id)
    .fetch_all(pool)
    .await?;
    decode(rows)
}

/// [`load`] on PostgreSQL. (PostgreSQL writes pauses in the queue batch's one statement,
/// `postgres::write_queue_events`.)
pub(super) async fn load_pg(
    pool: &sqlx::PgPool,
    centre_id: &str,
) -> StoreResult<Vec<(String, WindowPause)>> {
    let rows = sqlx::query_as::<_, (String, String, i64, i64)>(
        "SELECT id, pause_reason, pause_since_ms, pause_until_ms FROM windows
         WHERE centre_id = $1 AND clerk_id IS NOT NULL AND pause_reason IS NOT NULL
           AND pause_since_ms IS NOT NULL AND pause_until_ms IS NOT NULL",
    )
    .bind(centre_id)
    .fetch_all(pool)
    .await?;
    decode(rows)
}

fn decode(rows: Vec<(String, String, i64, i64)>) -> StoreResult<Vec<(String, WindowPause)>> {
    rows.into_iter()
        .map(|(id, reason, since_ms, until_ms)| {
            let reason = PauseReason::parse(&reason)
                .ok_or_else(|| StoreError::Corrupt(format!("window {id}: pause reason")))?;
            Ok((
                id,
                WindowPause {
                    reason,
                    since_ms,
                    until_ms,
                },
            ))
        })
        .collect()
}
