//! Remote appointments (预约) as stored: trait [`AppointmentStore`], its SQLite implementation
//! below (migration `0055_appointments.sql`) and the PostgreSQL one in [`postgres`].
//!
//! The store never sees a name or a mobile number in clear: the service hands it the sealed
//! bytes, the keyed hash of the number and the masked forms. What the store guarantees is
//! the arithmetic of a slot under concurrency: [`AppointmentStore::book`] and
//! [`AppointmentStore::reschedule_booking`] count the slot and write in one transaction that
//! no other booking of the same slot can interleave with (SQLite: `BEGIN IMMEDIATE`, the
//! database's one writer; PostgreSQL: a transaction-scoped advisory lock on the slot), and a
//! partial unique index keeps one live booking per number, category and day.

mod postgres;

use async_trait::async_trait;
use protocol::queue::AppointmentSlot;

use super::sqlite::SqliteStore;
use super::{StoreError, StoreResult};

/// Where a booking is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingState {
    /// Booked and not yet used: the only live state.
    Booked,
    Cancelled,
    /// The resident checked in at the kiosk (on time or late).
    CheckedIn,
    /// The slot ended without a check-in.
    NoShow,
}

impl BookingState {
    pub fn as_str(self) -> &'static str {
        match self {
            BookingState::Booked => "booked",
            BookingState::Cancelled => "cancelled",
            BookingState::CheckedIn => "checked_in",
            BookingState::NoShow => "no_show",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "booked" => BookingState::Booked,
            "cancelled" => BookingState::Cancelled,
            "checked_in" => BookingState::CheckedIn,
            "no_show" => BookingState::NoShow,
            _ => return None,
        })
    }
}

/// Name and mobile number sealed together (see `cases::crypto`): the wrapped per-row key and
/// the ciphertext, both bound to the booking id.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedContact {
    pub key_id: String,
    pub wrapped_key: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for SealedContact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedContact")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// One booking as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingRecord {
    pub id: String,
    /// 预约码, what the resident types or scans.
    pub code: String,
    pub centre_id: String,
    pub extension_point_id: String,
    pub category_id: String,
    /// The Shanghai date of the slot, as days since 1970-01-01.
    pub service_day: i64,
    pub slot: AppointmentSlot,
    pub state: BookingState,
    /// HMAC-SHA256 of the mobile number (hex); `None` once purged.
    pub mobile_hash: Option<String>,
    /// 张*; empty once purged.
    pub name_masked: String,
    /// 138****1234; empty once purged.
    pub mobile_masked: String,
    /// `None` once purged.
    pub contact: Option<SealedContact>,
    pub ticket_id: Option<String>,
    /// Checked in after the slot ended (served as an ordinary ticket).
    pub late: bool,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// What a booking attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookOutcome {
    Booked,
    /// The slot already holds its capacity.
    SlotFull,
    /// The number already has a live booking of this category on that day.
    AlreadyBooked,
    /// The booking code is taken (draw another).
    CodeTaken,
}

/// What a reschedule came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RescheduleOutcome {
    Moved,
    /// The booking is not live (cancelled, used or missed).
    NotLive,
    SlotFull,
    /// The number already has a live booking of this category on the new day.
    AlreadyBooked,
}

/// An active extension point, as the booking page lists it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ActivePoint {
    pub id: String,
    pub centre_id: String,
    pub name: String,
    pub address: String,
    pub phone: String,
}

/// Live bookings per slot start, for the slot listing.
pub type SlotCounts = Vec<(i64, u32)>;

#[async_trait]
pub trait AppointmentStore: Send + Sync + 'static {
    /// Saves `booking` (state `booked`) unless its slot already holds `capacity` live or
    /// checked-in bookings of its centre and category, counted and written atomically.
    async fn book(&self, booking: &BookingRecord, capacity: u32) -> StoreResult<BookOutcome>;
    async fn booking_by_code(&self, code: &str) -> StoreResult<Option<BookingRecord>>;
    async fn booking(&self, id: &str) -> StoreResult<Option<BookingRecord>>;
    /// Cancels a live booking; false when it was not live.
    async fn cancel_booking(&self, id: &str, now_ms: i64) -> StoreResult<bool>;
    /// Moves a live booking to another slot, with the same capacity rule as [`Self::book`].
    async fn reschedule_booking(
        &self,
        id: &str,
        service_day: i64,
        slot: AppointmentSlot,
        capacity: u32,
        now_ms: i64,
    ) -> StoreResult<RescheduleOutcome>;
    /// Marks a booking checked in with the ticket it became; only from `booked` or `no_show`
    /// (a late arrival after the no-show sweep). False otherwise (e.g. a second check-in).
    async fn mark_checked_in(
        &self,
        id: &str,
        ticket_id: &str,
        late: bool,
        now_ms: i64,
    ) -> StoreResult<bool>;
    /// Marks live bookings whose slot ended before `ended_before_ms` as no-shows; how many.
    async fn mark_no_shows(&self, ended_before_ms: i64, now_ms: i64) -> StoreResult<u64>;
    /// Live and checked-in bookings per slot start of a centre's category in `[from, to)`.
    async fn slot_counts(
        &self,
        centre_id: &str,
        category_id: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> StoreResult<SlotCounts>;
    /// A centre's bookings of one day, by slot then creation.
    async fn day_bookings(
        &self,
        centre_id: &str,
        service_day: i64,
    ) -> StoreResult<Vec<BookingRecord>>;
    /// Removes the personal data (sealed contact, number hash, masks) of bookings whose slot
    /// ended before `ended_before_ms` and that are no longer live; how many. The rows stay,
    /// for statistics.
    async fn purge_booking_contacts(&self, ended_before_ms: i64, now_ms: i64) -> StoreResult<u64>;
    /// Every active extension point, by id.
    async fn active_points(&self) -> StoreResult<Vec<ActivePoint>>;
}

/// A row of `appointments`, as both databases return it.
#[derive(sqlx::FromRow)]
pub(crate) struct BookingRow {
    id: String,
    code: String,
    centre_id: String,
    extension_point_id: String,
    category_id: String,
    service_day: i64,
    slot_start_ms: i64,
    slot_end_ms: i64,
    state: String,
    mobile_hash: Option<String>,
    name_masked: String,
    mobile_masked: String,
    key_id: Option<String>,
    wrapped_key: Option<Vec<u8>>,
    sealed: Option<Vec<u8>>,
    ticket_id: Option<String>,
    late: i64,
    created_ms: i64,
    updated_ms: i64,
}

impl TryFrom<BookingRow> for BookingRecord {
    type Error = StoreError;

    fn try_from(r: BookingRow) -> Result<Self, Self::Error> {
        let state = BookingState::parse(&r.state)
            .ok_or_else(|| StoreError::Corrupt(format!("booking state {:?}", r.state)))?;
        let contact = match (r.key_id, r.wrapped_key, r.sealed) {
            (Some(key_id), Some(wrapped_key), Some(ciphertext)) => Some(SealedContact {
                key_id,
                wrapped_key,
                ciphertext,
            }),
            _ => None,
        };
        Ok(BookingRecord {
            id: r.id,
            code: r.code,
            centre_id: r.centre_id,
            extension_point_id: r.extension_point_id,
            category_id: r.category_id,
            service_day: r.service_day,
            slot: AppointmentSlot {
                start_ms: r.slot_start_ms,
                end_ms: r.slot_end_ms,
            },
            state,
            mobile_hash: r.mobile_hash,
            name_masked: r.name_masked,
            mobile_masked: r.mobile_masked,
            contact,
            ticket_id: r.ticket_id,
            late: r.late != 0,
            created_ms: r.created_ms,
            updated_ms: r.updated_ms,
        })
    }
}

fn rows(rows: Vec<BookingRow>) -> StoreResult<Vec<BookingRecord>> {
    rows.into_iter().map(BookingRecord::try_from).collect()
}

/// Whether a database error is a unique-constraint violation.
fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// The SQL both databases share, with `?` placeholders (PostgreSQL's copy numbers them).
pub(crate) mod sql {
    pub const COLUMNS: &str = "id, code, centre_id, extension_point_id, category_id, service_day,
        slot_start_ms, slot_end_ms, state, mobile_hash, name_masked, mobile_masked, key_id,
        wrapped_key, sealed, ticket_id, late, created_ms, updated_ms";
    /// Bookings that take a place in a slot.
    pub const HOLDS_PLACE: &str = "state IN ('booked', 'checked_in')";
    pub const ACTIVE_POINTS: &str = "SELECT id, centre_id, name, address, phone
        FROM extension_points WHERE status = 'active' ORDER BY id";
}

#[async_trait]
impl AppointmentStore for SqliteStore {
    async fn book(&self, b: &BookingRecord, capacity: u32) -> StoreResult<BookOutcome> {
        // The write lock first: every other booking waits, so the count below stays true
        // until the commit.
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let (taken,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM appointments WHERE centre_id = ? AND category_id = ?
               AND slot_start_ms = ? AND {}",
            sql::HOLDS_PLACE
        )))
        .bind(&b.centre_id)
        .bind(&b.category_id)
        .bind(b.slot.start_ms)
        .fetch_one(&mut *tx)
        .await?;
        if taken >= i64::from(capacity) {
            return Ok(BookOutcome::SlotFull);
        }
        let contact = b.contact.as_ref();
        let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO appointments ({}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                let code_taken: Option<(i64,)> =
                    sqlx::query_as("SELECT 1 FROM appointments WHERE code = ?")
                        .bind(&b.code)
                        .fetch_optional(&mut *tx)
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
            "SELECT {} FROM appointments WHERE code = ?",
            sql::COLUMNS
        )))
        .bind(code)
        .fetch_optional(self.pool())
        .await?;
        row.map(BookingRecord::try_from).transpose()
    }

    async fn booking(&self, id: &str) -> StoreResult<Option<BookingRecord>> {
        let row: Option<BookingRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM appointments WHERE id = ?",
            sql::COLUMNS
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(BookingRecord::try_from).transpose()
    }

    async fn cancel_booking(&self, id: &str, now_ms: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE appointments SET state = 'cancelled', updated_ms = ?
             WHERE id = ? AND state = 'booked'",
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
        let mut tx = self.pool().begin_with("BEGIN IMMEDIATE").await?;
        let current: Option<(String, String, String, i64)> = sqlx::query_as(
            "SELECT state, centre_id, category_id, slot_start_ms FROM appointments WHERE id = ?",
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
            let (taken,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM appointments WHERE centre_id = ? AND category_id = ?
                   AND slot_start_ms = ? AND {}",
                sql::HOLDS_PLACE
            )))
            .bind(&centre_id)
            .bind(&category_id)
            .bind(slot.start_ms)
            .fetch_one(&mut *tx)
            .await?;
            if taken >= i64::from(capacity) {
                return Ok(RescheduleOutcome::SlotFull);
            }
        }
        let moved = sqlx::query(
            "UPDATE appointments SET service_day = ?, slot_start_ms = ?, slot_end_ms = ?,
                 updated_ms = ?
             WHERE id = ? AND state = 'booked'",
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
            "UPDATE appointments SET state = 'checked_in', ticket_id = ?, late = ?, updated_ms = ?
             WHERE id = ? AND state IN ('booked', 'no_show')",
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
            "UPDATE appointments SET state = 'no_show', updated_ms = ?
             WHERE state = 'booked' AND slot_end_ms < ?",
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
        let rows: Vec<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT slot_start_ms, COUNT(*) FROM appointments
             WHERE centre_id = ? AND category_id = ? AND slot_start_ms >= ? AND slot_start_ms < ?
               AND {}
             GROUP BY slot_start_ms ORDER BY slot_start_ms",
            sql::HOLDS_PLACE
        )))
        .bind(centre_id)
        .bind(category_id)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
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
            "SELECT {} FROM appointments WHERE centre_id = ? AND service_day = ?
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
                 key_id = NULL, wrapped_key = NULL, sealed = NULL, purged_ms = ?
             WHERE purged_ms IS NULL AND state <> 'booked' AND slot_end_ms < ?",
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
