//! The embedded SQLite store.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use protocol::queue::{AppointmentSlot, TicketChannel, TicketState};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

use super::{Durability, LoginRecord, NewLogin, QueueSnapshot, Store, StoreError, StoreResult};
use crate::domain::{
    CategoryRecord, Centre, Clerk, Device, DeviceKind, ExtensionPoint, WindowRecord, format_roles,
    parse_roles, parse_window_mode, window_mode_str,
};
use crate::queue::{EndReason, Event, Ticket};

/// A login's `last_seen_ms` is rewritten at most this often.
pub(crate) const LAST_SEEN_GRANULARITY_MS: i64 = 60_000;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "relay.sqlite";

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database in `data_dir` and brings its schema up to date,
    /// with changes flushed to disk before a commit returns.
    pub async fn open(data_dir: &Path) -> StoreResult<Self> {
        Self::open_with(data_dir, Durability::PowerLoss).await
    }

    pub async fn open_with(data_dir: &Path, durability: Durability) -> StoreResult<Self> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let options = SqliteConnectOptions::new()
            .filename(data_dir.join(DB_FILE))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match durability {
                Durability::PowerLoss => SqliteSynchronous::Full,
                Durability::ProcessCrash => SqliteSynchronous::Normal,
            })
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        Self::connect(options).await
    }

    /// A private in-memory database, for tests.
    pub async fn in_memory() -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        Self::connect(options).await
    }

    async fn connect(options: SqliteConnectOptions) -> StoreResult<Self> {
        let in_memory = options.get_filename() == Path::new(":memory:");
        let pool = SqlitePoolOptions::new()
            // One in-memory database exists per connection, so tests share a single one.
            .max_connections(if in_memory { 1 } else { 4 })
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{what}: {value:?}"))
}

/// A `clerks` row as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct ClerkRow {
    id: String,
    centre_id: String,
    username: String,
    display_name: String,
    password_hash: String,
    roles: String,
    active: i64,
}

impl TryFrom<ClerkRow> for Clerk {
    type Error = StoreError;

    fn try_from(r: ClerkRow) -> StoreResult<Clerk> {
        Ok(Clerk {
            roles: parse_roles(&r.roles).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            id: r.id,
            centre_id: r.centre_id,
            username: r.username,
            display_name: r.display_name,
            password_hash: r.password_hash,
            active: r.active != 0,
        })
    }
}

/// A `devices` row as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct DeviceRow {
    id: String,
    centre_id: String,
    extension_point_id: Option<String>,
    kind: String,
    name: String,
    secret_hash: String,
    status: String,
}

impl TryFrom<DeviceRow> for Device {
    type Error = StoreError;

    fn try_from(r: DeviceRow) -> StoreResult<Device> {
        Ok(Device {
            kind: DeviceKind::parse(&r.kind).ok_or_else(|| corrupt("device kind", &r.kind))?,
            id: r.id,
            centre_id: r.centre_id,
            extension_point_id: r.extension_point_id,
            name: r.name,
            secret_hash: r.secret_hash,
            active: r.status == "active",
        })
    }
}

/// A `windows` row with its categories (comma separated). The row types here decode rows of
/// both stores: the PostgreSQL schema has the same columns and types.
#[derive(sqlx::FromRow)]
pub(crate) struct WindowRow {
    id: String,
    centre_id: String,
    name: String,
    mode: String,
    clerk_id: Option<String>,
    clerk_name: Option<String>,
    categories: Option<String>,
}

impl TryFrom<WindowRow> for WindowRecord {
    type Error = StoreError;

    fn try_from(r: WindowRow) -> StoreResult<WindowRecord> {
        let mut category_ids: Vec<String> = r
            .categories
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        category_ids.sort();
        Ok(WindowRecord {
            mode: parse_window_mode(&r.mode).ok_or_else(|| corrupt("window mode", &r.mode))?,
            id: r.id,
            centre_id: r.centre_id,
            name: r.name,
            category_ids,
            clerk_id: r.clerk_id,
            clerk_name: r.clerk_name,
        })
    }
}

/// An `extension_points` row as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct ExtensionPointRow {
    id: String,
    centre_id: String,
    name: String,
    address: String,
    phone: String,
    service_hours: String,
    hours_json: Option<String>,
    status: String,
}

impl TryFrom<ExtensionPointRow> for ExtensionPoint {
    type Error = StoreError;

    fn try_from(r: ExtensionPointRow) -> StoreResult<ExtensionPoint> {
        Ok(ExtensionPoint {
            hours: r
                .hours_json
                .map(|h| serde_json::from_str(&h))
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("extension point hours: {e}")))?,
            id: r.id,
            centre_id: r.centre_id,
            name: r.name,
            address: r.address,
            phone: r.phone,
            service_hours: r.service_hours,
            status: r.status,
        })
    }
}

pub(crate) fn channel_str(c: TicketChannel) -> &'static str {
    match c {
        TicketChannel::OnSite => "on_site",
        TicketChannel::Remote => "remote",
    }
}

/// A `tickets` row as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct TicketRow {
    id: String,
    centre_id: String,
    service_day: i64,
    number: String,
    number_seq: i64,
    channel: String,
    category_id: String,
    state: String,
    created_ms: i64,
    queue_ms: i64,
    seq: i64,
    appointment_start: Option<i64>,
    appointment_end: Option<i64>,
    device_id: Option<String>,
    extension_point_id: Option<String>,
    window_id: Option<String>,
    target_window_id: Option<String>,
    clerk_id: Option<String>,
    first_called_ms: Option<i64>,
    called_ms: Option<i64>,
    serving_ms: Option<i64>,
    finished_ms: Option<i64>,
    recalls: i64,
    end_reason: Option<String>,
}

impl TryFrom<TicketRow> for Ticket {
    type Error = StoreError;

    fn try_from(r: TicketRow) -> StoreResult<Ticket> {
        Ok(Ticket {
            id: r.id,
            centre_id: r.centre_id,
            service_day: r.service_day,
            number: r.number,
            number_seq: u32::try_from(r.number_seq)
                .map_err(|_| corrupt("number_seq", "out of range"))?,
            channel: match r.channel.as_str() {
                "on_site" => TicketChannel::OnSite,
                "remote" => TicketChannel::Remote,
                other => return Err(corrupt("ticket channel", other)),
            },
            category_id: r.category_id,
            state: TicketState::parse(&r.state).ok_or_else(|| corrupt("ticket state", &r.state))?,
            created_ms: r.created_ms,
            queue_ms: r.queue_ms,
            seq: u64::try_from(r.seq).map_err(|_| corrupt("seq", "negative"))?,
            appointment: match (r.appointment_start, r.appointment_end) {
                (Some(start_ms), Some(end_ms)) => Some(AppointmentSlot { start_ms, end_ms }),
                _ => None,
            },
            device_id: r.device_id,
            extension_point_id: r.extension_point_id,
            window_id: r.window_id,
            target_window_id: r.target_window_id,
            clerk_id: r.clerk_id,
            first_called_ms: r.first_called_ms,
            called_ms: r.called_ms,
            serving_ms: r.serving_ms,
            finished_ms: r.finished_ms,
            recalls: u32::try_from(r.recalls).map_err(|_| corrupt("recalls", "out of range"))?,
            end_reason: match r.end_reason {
                Some(e) => Some(EndReason::parse(&e).ok_or_else(|| corrupt("end reason", &e))?),
                None => None,
            },
        })
    }
}

async fn upsert_ticket(tx: &mut Transaction<'_, Sqlite>, t: &Ticket) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO tickets (id, centre_id, service_day, number, number_seq, channel, category_id,
            state, created_ms, queue_ms, seq, appointment_start, appointment_end, device_id,
            extension_point_id, window_id, target_window_id, clerk_id, first_called_ms, called_ms,
            serving_ms, finished_ms, recalls, end_reason)
         VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
         ON CONFLICT(id) DO UPDATE SET
            category_id = excluded.category_id, state = excluded.state,
            queue_ms = excluded.queue_ms, window_id = excluded.window_id,
            target_window_id = excluded.target_window_id, clerk_id = excluded.clerk_id,
            first_called_ms = excluded.first_called_ms, called_ms = excluded.called_ms,
            serving_ms = excluded.serving_ms, finished_ms = excluded.finished_ms,
            recalls = excluded.recalls, end_reason = excluded.end_reason",
    )
    .bind(&t.id)
    .bind(&t.centre_id)
    .bind(t.service_day)
    .bind(&t.number)
    .bind(i64::from(t.number_seq))
    .bind(channel_str(t.channel))
    .bind(&t.category_id)
    .bind(t.state.as_str())
    .bind(t.created_ms)
    .bind(t.queue_ms)
    .bind(i64::try_from(t.seq).unwrap_or(i64::MAX))
    .bind(t.appointment.map(|a| a.start_ms))
    .bind(t.appointment.map(|a| a.end_ms))
    .bind(&t.device_id)
    .bind(&t.extension_point_id)
    .bind(&t.window_id)
    .bind(&t.target_window_id)
    .bind(&t.clerk_id)
    .bind(t.first_called_ms)
    .bind(t.called_ms)
    .bind(t.serving_ms)
    .bind(t.finished_ms)
    .bind(i64::from(t.recalls))
    .bind(t.end_reason.map(EndReason::as_str))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl SqliteStore {
    /// The clerk behind a live login (see [`Store::login_clerk`]); `change_only` also accepts
    /// logins that may only change the password.
    async fn live_login(
        &self,
        token_hash: &str,
        now_ms: i64,
        idle_ms: i64,
        change_only: bool,
    ) -> StoreResult<Option<Clerk>> {
        let idle_cutoff = now_ms.saturating_sub(idle_ms);
        let row: Option<ClerkRow> = sqlx::query_as(
            "SELECT c.* FROM clerk_sessions s JOIN clerks c ON c.id = s.clerk_id
             WHERE s.token_hash = ? AND s.expires_ms > ? AND s.last_seen_ms > ?
               AND c.active = 1 AND (s.password_change_only = 0 OR ?)
               AND (s.second_factor_stage = 0 OR (? AND s.second_factor_stage = 2))",
        )
        .bind(token_hash)
        .bind(now_ms)
        .bind(idle_cutoff)
        .bind(change_only)
        .bind(change_only)
        .fetch_optional(&self.pool)
        .await?;
        if row.is_some() {
            sqlx::query(
                "UPDATE clerk_sessions SET last_seen_ms = ?
                 WHERE token_hash = ? AND last_seen_ms < ?",
            )
            .bind(now_ms)
            .bind(token_hash)
            .bind(now_ms.saturating_sub(LAST_SEEN_GRANULARITY_MS))
            .execute(&self.pool)
            .await?;
        }
        row.map(Clerk::try_from).transpose()
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn centres(&self) -> StoreResult<Vec<Centre>> {
        Ok(
            sqlx::query_as("SELECT id, name, district, street FROM centres ORDER BY id")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn centre(&self, id: &str) -> StoreResult<Option<Centre>> {
        Ok(self.centres().await?.into_iter().find(|c| c.id == id))
    }

    async fn upsert_centre(&self, c: &Centre, now_ms: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO centres (id, name, district, street, created_ms) VALUES (?,?,?,?,?)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, district = excluded.district,
                street = excluded.street",
        )
        .bind(&c.id)
        .bind(&c.name)
        .bind(&c.district)
        .bind(&c.street)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn categories(&self, centre_id: &str) -> StoreResult<Vec<CategoryRecord>> {
        Ok(sqlx::query_as(
            "SELECT id, centre_id, prefix, name, sort_order FROM service_categories
             WHERE centre_id = ? AND active = 1 ORDER BY sort_order, id",
        )
        .bind(centre_id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn upsert_category(&self, c: &CategoryRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO service_categories (id, centre_id, prefix, name, sort_order)
             VALUES (?,?,?,?,?)
             ON CONFLICT(id) DO UPDATE SET prefix = excluded.prefix, name = excluded.name,
                sort_order = excluded.sort_order, active = 1",
        )
        .bind(&c.id)
        .bind(&c.centre_id)
        .bind(&c.prefix)
        .bind(&c.name)
        .bind(c.sort_order)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn windows(&self, centre_id: &str) -> StoreResult<Vec<WindowRecord>> {
        let rows: Vec<WindowRow> = sqlx::query_as(
            "SELECT w.id, w.centre_id, w.name, w.mode, w.clerk_id, w.clerk_name,
                    (SELECT group_concat(category_id, ',') FROM window_categories wc
                      WHERE wc.window_id = w.id) AS categories
             FROM windows w WHERE w.centre_id = ? AND w.active = 1 ORDER BY w.sort_order, w.id",
        )
        .bind(centre_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(WindowRecord::try_from).collect()
    }

    async fn upsert_window(&self, w: &WindowRecord) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO windows (id, centre_id, name, mode) VALUES (?,?,?,?)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, mode = excluded.mode, active = 1",
        )
        .bind(&w.id)
        .bind(&w.centre_id)
        .bind(&w.name)
        .bind(window_mode_str(w.mode))
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM window_categories WHERE window_id = ?")
            .bind(&w.id)
            .execute(&mut *tx)
            .await?;
        for c in &w.category_ids {
            sqlx::query("INSERT INTO window_categories (window_id, category_id) VALUES (?, ?)")
                .bind(&w.id)
                .bind(c)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn clerk_by_username(&self, username: &str) -> StoreResult<Option<Clerk>> {
        let row: Option<ClerkRow> = sqlx::query_as("SELECT * FROM clerks WHERE username = ?")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        row.map(Clerk::try_from).transpose()
    }

    async fn clerk(&self, id: &str) -> StoreResult<Option<Clerk>> {
        let row: Option<ClerkRow> = sqlx::query_as("SELECT * FROM clerks WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(Clerk::try_from).transpose()
    }

    async fn upsert_clerk(&self, c: &Clerk, now_ms: i64) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        // A new password or a disabled account ends every login the clerk has open.
        sqlx::query(
            "DELETE FROM clerk_sessions WHERE clerk_id = ? AND EXISTS (
                SELECT 1 FROM clerks WHERE id = ? AND (password_hash != ? OR ? = 0))",
        )
        .bind(&c.id)
        .bind(&c.id)
        .bind(&c.password_hash)
        .bind(i64::from(c.active))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO clerks (id, centre_id, username, display_name, password_hash, roles,
                active, created_ms) VALUES (?,?,?,?,?,?,?,?)
             ON CONFLICT(id) DO UPDATE SET centre_id = excluded.centre_id,
                username = excluded.username, display_name = excluded.display_name,
                password_hash = excluded.password_hash, roles = excluded.roles,
                active = excluded.active",
        )
        .bind(&c.id)
        .bind(&c.centre_id)
        .bind(&c.username)
        .bind(&c.display_name)
        .bind(&c.password_hash)
        .bind(format_roles(&c.roles))
        .bind(i64::from(c.active))
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_login(&self, login: &NewLogin<'_>) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO clerk_sessions (token_hash, clerk_id, created_ms, expires_ms,
                last_seen_ms, source_address, password_change_only) VALUES (?,?,?,?,?,?,?)",
        )
        .bind(login.token_hash)
        .bind(login.clerk_id)
        .bind(login.now_ms)
        .bind(login.expires_ms)
        .bind(login.now_ms)
        .bind(login.source_address)
        .bind(i64::from(login.password_change_only))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn login_clerk(
        &self,
        token_hash: &str,
        now_ms: i64,
        idle_ms: i64,
    ) -> StoreResult<Option<Clerk>> {
        self.live_login(token_hash, now_ms, idle_ms, false).await
    }

    async fn password_change_login(
        &self,
        token_hash: &str,
        now_ms: i64,
        idle_ms: i64,
    ) -> StoreResult<Option<Clerk>> {
        self.live_login(token_hash, now_ms, idle_ms, true).await
    }

    async fn must_change_password(&self, clerk_id: &str) -> StoreResult<bool> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT must_change_password FROM clerks WHERE id = ?")
                .bind(clerk_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.is_some_and(|(m,)| m != 0))
    }

    async fn require_password_change(&self, clerk_id: &str) -> StoreResult<()> {
        sqlx::query("UPDATE clerks SET must_change_password = 1 WHERE id = ?")
            .bind(clerk_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_own_password(&self, clerk_id: &str, password_hash: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE clerks SET password_hash = ?, must_change_password = 0 WHERE id = ?")
            .bind(password_hash)
            .bind(clerk_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM clerk_sessions WHERE clerk_id = ?")
            .bind(clerk_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_login(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM clerk_sessions WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn clerk_logins(
        &self,
        clerk_id: &str,
        now_ms: i64,
        idle_ms: i64,
    ) -> StoreResult<Vec<LoginRecord>> {
        let rows: Vec<(String, i64, i64, i64, String)> = sqlx::query_as(
            "SELECT token_hash, created_ms, last_seen_ms, expires_ms, source_address
             FROM clerk_sessions WHERE second_factor_stage != 1 AND clerk_id = ? AND expires_ms > ? AND last_seen_ms > ?
             ORDER BY created_ms DESC",
        )
        .bind(clerk_id)
        .bind(now_ms)
        .bind(now_ms.saturating_sub(idle_ms))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, created_ms, last_seen_ms, expires_ms, source_address)| LoginRecord {
                    id,
                    created_ms,
                    last_seen_ms,
                    expires_ms,
                    source_address,
                },
            )
            .collect())
    }

    async fn delete_clerk_login(&self, clerk_id: &str, token_hash: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM clerk_sessions WHERE clerk_id = ? AND token_hash = ?")
            .bind(clerk_id)
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_clerk_logins(&self, clerk_id: &str) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM clerk_sessions WHERE clerk_id = ?")
            .bind(clerk_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn purge_logins(&self, now_ms: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM clerk_sessions WHERE expires_ms <= ?")
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn extension_point(&self, id: &str) -> StoreResult<Option<ExtensionPoint>> {
        let row: Option<ExtensionPointRow> =
            sqlx::query_as("SELECT * FROM extension_points WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(ExtensionPoint::try_from).transpose()
    }

    async fn upsert_extension_point(&self, p: &ExtensionPoint, now_ms: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO extension_points (id, centre_id, name, address, phone, service_hours,
                hours_json, status, created_ms) VALUES (?,?,?,?,?,?,?,?,?)
             ON CONFLICT(id) DO UPDATE SET centre_id = excluded.centre_id, name = excluded.name,
                address = excluded.address, phone = excluded.phone,
                service_hours = excluded.service_hours, hours_json = excluded.hours_json,
                status = excluded.status",
        )
        .bind(&p.id)
        .bind(&p.centre_id)
        .bind(&p.name)
        .bind(&p.address)
        .bind(&p.phone)
        .bind(&p.service_hours)
        .bind(
            p.hours
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        )
        .bind(&p.status)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn device(&self, id: &str) -> StoreResult<Option<Device>> {
        let row: Option<DeviceRow> = sqlx::query_as("SELECT * FROM devices WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(Device::try_from).transpose()
    }

    async fn upsert_device(&self, d: &Device, now_ms: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO devices (id, centre_id, extension_point_id, kind, name, secret_hash,
                status, created_ms) VALUES (?,?,?,?,?,?,?,?)
             ON CONFLICT(id) DO UPDATE SET centre_id = excluded.centre_id,
                extension_point_id = excluded.extension_point_id, kind = excluded.kind,
                name = excluded.name, secret_hash = excluded.secret_hash, status = excluded.status",
        )
        .bind(&d.id)
        .bind(&d.centre_id)
        .bind(&d.extension_point_id)
        .bind(d.kind.as_str())
        .bind(&d.name)
        .bind(&d.secret_hash)
        .bind(if d.active { "active" } else { "disabled" })
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn touch_device(&self, id: &str, now_ms: i64) -> StoreResult<()> {
        sqlx::query("UPDATE devices SET last_seen_ms = ? WHERE id = ?")
            .bind(now_ms)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn load_queue(&self, centre_id: &str, today: i64) -> StoreResult<QueueSnapshot> {
        let rows: Vec<TicketRow> = sqlx::query_as(
            "SELECT * FROM tickets WHERE centre_id = ?
               AND (state IN ('waiting', 'called', 'serving', 'parked') OR service_day >= ?)
             ORDER BY seq",
        )
        .bind(centre_id)
        .bind(today)
        .fetch_all(&self.pool)
        .await?;
        let tickets = rows
            .into_iter()
            .map(Ticket::try_from)
            .collect::<StoreResult<Vec<_>>>()?;
        let window_clerks = sqlx::query_as::<_, (String, String, Option<String>)>(
            "SELECT id, clerk_id, clerk_name FROM windows
             WHERE centre_id = ? AND clerk_id IS NOT NULL",
        )
        .bind(centre_id)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|(id, clerk_id, clerk_name)| (id, clerk_id, clerk_name.unwrap_or_default()))
        .collect();
        let window_pauses = super::window_pause::load(&self.pool, centre_id).await?;
        Ok(QueueSnapshot {
            tickets,
            window_clerks,
            window_pauses,
        })
    }

    async fn persist_queue_events(&self, events: &[Event]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for event in events {
            match event {
                Event::Ticket {
                    ticket,
                    action,
                    at_ms,
                    clerk_id,
                    window_id,
                } => {
                    upsert_ticket(&mut tx, ticket).await?;
                    sqlx::query(
                        "INSERT INTO ticket_events (ticket_id, at_ms, action, state, clerk_id,
                            window_id) VALUES (?,?,?,?,?,?)",
                    )
                    .bind(&ticket.id)
                    .bind(at_ms)
                    .bind(action.as_str())
                    .bind(ticket.state.as_str())
                    .bind(clerk_id)
                    .bind(window_id)
                    .execute(&mut *tx)
                    .await?;
                }
                Event::Window {
                    window_id,
                    clerk_id,
                    clerk_name,
                    pause,
                    ..
                } => {
                    sqlx::query("UPDATE windows SET clerk_id = ?, clerk_name = ? WHERE id = ?")
                        .bind(clerk_id)
                        .bind(clerk_name)
                        .bind(window_id)
                        .execute(&mut *tx)
                        .await?;
                    super::window_pause::save(&mut tx, window_id, pause.as_ref()).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
