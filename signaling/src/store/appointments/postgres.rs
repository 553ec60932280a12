//! The PostgreSQL implementation of [`super::AppointmentStore`]: the SQLite statements with
//! numbered placeholders. Where SQLite serialises bookings by its one writer (`BEGIN
//! IMMEDIATE`), PostgreSQL takes a transaction-scoped advisory lock on the slot
//! (`pg_advisory_xact_lock` of a hash of centre, category and slot start) before counting, so
//! two bookings of the same slot take turns and the count holds until the commit; bookings of
//! other slots do not wait.

use async_trait::async_trait;
use protocol::queue::AppointmentSlot;
use sqlx::{Postgres, Transaction};

use super::{
    ActivePoint, AppointmentStore, BookOutcome, BookingRecord, BookingRow, BookingState,
    RescheduleOutcome, SlotCounts, is_unique_violation, rows, sql,
};
use crate::store::StoreResult;
use crate::store::postgres::PgStore;

/// Takes the slot's lock for the rest of the transaction.
async fn lock_slot(
    tx: &mut Transaction<'_, Postgres>,
    centre_id: &str,
    category_id: &str,
    slot_start_ms: i64,
) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 55))")
        .bind(format!(
            "appointment-slot:{centre_id}:{category_id}:{slot_start_ms}"
        ))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn taken(
    tx: &mut Transaction<'_, Postgres>,
    centre_id: &str,
    category_id: &str,
    slot_start_ms: i64,
) -> StoreResult<i64> {
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM appointments WHERE centre_id = $1 AND category_id = $2
           AND slot_start_ms = $3 AND {}",
        sql::HOLDS_PLACE
    )))
    .bind(centre_id)
    .bind(category_id)
    .bind(slot_start_ms)
    .fetch_one(&mut **tx)
    .await?;
    Ok(n)
}

#[async_trait]
impl AppointmentStore for PgStore {
    async fn book(&self, b: &BookingRecord, capacity: u32) -> StoreResult<BookOutcome> {
        let mut tx = self.pool().begin().await?;
        lock_slot(&mut tx, &b.centre_id, &b.category_id, b.slot.start_ms).await?;
        if taken(&mut tx, &b.centre_id, &b.category_id, b.slot.start_ms).await?
            >= i64::from(capacity)
        {
            return Ok(BookOutcome::SlotFull);
        }
        let contact = b.contact.as_ref();
        let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO appointments ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
                 $12, $13, $14, $15, $16, $17, $18, $19)",
            sql::COLUMNS
        )))
        .bind(&b.id)
        .bind(&b.code)
        .bind(&b.centre_id)
        .bind(&b.extension_point_id)
        .bind(&b.category_id)
        .bind(b.service_day)
        .bind(b.slot.start_ms)
        .bind(b.slot.end_ms)
        .bind(b.state.as_str())
        .bind(&b.mobile_hash)
        .bind(&b.name_masked)
        .bind(&b.mobile_masked)
        .bind(contact.map(|c| c.key_id.as_str()))
        .bind(contact.map(|c| c.wrapped_key.as_slice()))
        .bind(contact.map(|c| c.ciphertext.as_slice()))
        .bind(&b.ticket_id)
        .bind(i64::from(b.late))
        .bind(b.created_ms)
        .bind(b.updated_ms)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {
                tx.commit().await?;
                Ok(BookOutcome::Booked)
            }
            Err(e) if is_unique_violation(&e) => {
                // The failed statement ended the transaction; ask outside it.
                drop(tx);
                let code_taken: Option<(i32,)> =
                    sqlx::query_as("SELECT 1 FROM appointments WHERE code = $1")
                        .bind(&b.code)
                        .fetch_optional(self.pool())
                        .await?;
                Ok(if code_taken.is_some() {
                    BookOutcome::CodeTaken
                } else {
                    BookOutcome::AlreadyBooked
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn booking_by_code(&self, code: &str) -> StoreResult<Option<BookingRecord>> {
        let row: Option<BookingRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM appointments WHERE code = $1",
            sql::COLUMNS
        )))
        .bind(code)
        .fetch_optional(self.pool())
        .await?;
        row.map(BookingRecord::try_from).transpose()
    }

    async fn booking(&self, id: &str) -> StoreResult<Option<BookingRecord>> {
        let row: Option<BookingRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM appointments WHERE id = $1",
            sql::COLUMNS
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(BookingRecord::try_from).transpose()
    }

    async fn cancel_booking(&self, id: &str, now_ms: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE appointments SET state = 'cancelled', updated_ms = $1
             WHERE id = $2 AND state = 'booked'",
        )
        .bind(now_ms)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn reschedule_booking(
        &self,
        id: &str,
        service_day: i64,
        slot: AppointmentSlot,
        capacity: u32,
        now_ms: i64,
    ) -> StoreResult<RescheduleOutcome> {
        let mut tx = self.pool().begin().await?;
        let current: Option<(String, String, String, i64)> = sqlx::query_as(
            "SELECT state, centre_id, category_id, slot_start_ms FROM appointments
             WHERE id = $1 FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((state, centre_id, category_id, old_start)) = current else {
            return Ok(RescheduleOutcome::NotLive);
        };
        if state != BookingState::Booked.as_str() {
            return Ok(RescheduleOutcome::NotLive);
        }
        if old_start != slot.start_ms {
            lock_slot(&mut tx, &centre_id, &category_id, slot.start_ms).await?;
            if taken(&mut tx, &centre_id, &category_id, slot.start_ms).await? >= i64::from(capacity)
            {
                return Ok(RescheduleOutcome::SlotFull);
            }
        }
        let moved = sqlx::query(
            "UPDATE appointments SET service_day = $1, slot_start_ms = $2, slot_end_ms = $3,
                 updated_ms = $4
             WHERE id = $5 AND state = 'booked'",
        )
        .bind(service_day)
        .bind(slot.start_ms)
        .bind(slot.end_ms)
        .bind(now_ms)
        .bind(id)
        .execute(&mut *tx)
        .await;
        match moved {
            Ok(_) => {
                tx.commit().await?;
                Ok(RescheduleOutcome::Moved)
            }
            Err(e) if is_unique_violation(&e) => Ok(RescheduleOutcome::AlreadyBooked),
            Err(e) => Err(e.into()),
        }
    }

    async fn mark_checked_in(
        &self,
        id: &str,
        ticket_id: &str,
        late: bool,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE appointments SET state = 'checked_in', ticket_id = $1, late = $2,
                 updated_ms = $3
             WHERE id = $4 AND state IN ('booked', 'no_show')",
        )
        .bind(ticket_id)
        .bind(i64::from(late))
        .bind(now_ms)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn mark_no_shows(&self, ended_before_ms: i64, now_ms: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE appointments SET state = 'no_show', updated_ms = $1
             WHERE state = 'booked' AND slot_end_ms < $2",
        )
        .bind(now_ms)
        .bind(ended_before_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    async fn slot_counts(
        &self,
        centre_id: &str,
        category_id: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> StoreResult<SlotCounts> {
        let found: Vec<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT slot_start_ms, COUNT(*) FROM appointments
             WHERE centre_id = $1 AND category_id = $2 AND slot_start_ms >= $3
               AND slot_start_ms < $4 AND {}
             GROUP BY slot_start_ms ORDER BY slot_start_ms",
            sql::HOLDS_PLACE
        )))
        .bind(centre_id)
        .bind(category_id)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.pool())
        .await?;
        Ok(found
            .into_iter()
            .map(|(s, n)| (s, u32::try_from(n).unwrap_or(u32::MAX)))
            .collect())
    }

    async fn day_bookings(
        &self,
        centre_id: &str,
        service_day: i64,
    ) -> StoreResult<Vec<BookingRecord>> {
        let found: Vec<BookingRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM appointments WHERE centre_id = $1 AND service_day = $2
             ORDER BY slot_start_ms, created_ms, id",
            sql::COLUMNS
        )))
        .bind(centre_id)
        .bind(service_day)
        .fetch_all(self.pool())
        .await?;
        rows(found)
    }

    async fn purge_booking_contacts(&self, ended_before_ms: i64, now_ms: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE appointments SET mobile_hash = NULL, name_masked = '', mobile_masked = '',
                 key_id = NULL, wrapped_key = NULL, sealed = NULL, purged_ms = $1
             WHERE purged_ms IS NULL AND state <> 'booked' AND slot_end_ms < $2",
        )
        .bind(now_ms)
        .bind(ended_before_ms)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    async fn active_points(&self) -> StoreResult<Vec<ActivePoint>> {
        Ok(sqlx::query_as(sql::ACTIVE_POINTS)
            .fetch_all(self.pool())
            .await?)
    }
}
