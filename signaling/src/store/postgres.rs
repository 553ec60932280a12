//! The PostgreSQL store, for a relay whose state must outlive one machine (several relay nodes
//! share one database). Selected with `store.url = "postgres://…"`; the embedded SQLite store
//! ([`super::sqlite`]) stays the default.
//!
//! The schema is the SQLite one column for column (`migrations/postgres`): times and ids are the
//! same BIGINT milliseconds and TEXT ids, flags the same 0/1, so both stores hand back identical
//! values and the row types of [`super::sqlite`] decode rows of either. Only the SQL differs where
//! the dialects do (placeholders, `string_agg`, `RETURNING`). Every method returns after its
//! transaction committed; with [`Durability::ProcessCrash`] the session runs with
//! `synchronous_commit = off` (a crash of the relay loses nothing, a crash of the database
//! server may lose the last fraction of a second).

use std::str::FromStr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::Postgres;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::sqlite::LAST_SEEN_GRANULARITY_MS;
use super::sqlite::{ClerkRow, DeviceRow, ExtensionPointRow, TicketRow, WindowRow, channel_str};
use super::{Durability, LoginRecord, NewLogin, QueueSnapshot, Store, StoreError, StoreResult};
use crate::domain::{
    CategoryRecord, Centre, Clerk, Device, ExtensionPoint, WindowRecord, format_roles,
    window_mode_str,
};
use crate::queue::{EndReason, Event, Ticket};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections each relay process keeps to the database.
pub const POOL_SIZE: u32 = 8;

/// The PostgreSQL store: a connection pool on one database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

/// Whether `url` names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`) and
    /// brings its schema up to date.
    pub async fn connect(url: &str, durability: Durability) -> StoreResult<Self> {
        let mut options = PgConnectOptions::from_str(url)?.application_name("rvw-relay");
        if durability == Durability::ProcessCrash {
            options = options.options([("synchronous_commit", "off")]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The clerk behind a live login (see [`Store::login_clerk`]); `change_only` also accepts
    /// logins that may only change the password. Marks the login used, at most once a
    /// [`LAST_SEEN_GRANULARITY_MS`].
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
             WHERE s.token_hash = $1 AND s.expires_ms > $2 AND s.last_seen_ms > $3
               AND c.active = 1 AND (s.password_change_only = 0 OR $4)
               AND (s.second_factor_stage = 0 OR ($4 AND s.second_factor_stage = 2))",
        )
        .bind(token_hash)
        .bind(now_ms)
        .bind(idle_cutoff)
        .bind(change_only)
        .fetch_optional(&self.pool)
        .await?;
        if row.is_some() {
            sqlx::query(
                "UPDATE clerk_sessions SET last_seen_ms = $1
                 WHERE token_hash = $2 AND last_seen_ms < $3",
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

/// Writes decided queue events in one statement (so one round trip, atomic on its own): the
/// tickets' last states upserted, one audit row per ticket event in order, and the window
/// sign-ins, each from arrays (`unnest`). A ticket or window changed twice in a batch is
/// written once, with its last state (PostgreSQL refuses to upsert a row twice in one
/// statement). The audit rows' foreign keys are checked at the end of the statement, after the
/// tickets are in.
async fn write_queue_events<'e, E>(executor: E, events: &[Event]) -> StoreResult<()>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    if events.is_empty() {
        return Ok(());
    }
    let mut tickets: Vec<&Ticket> = Vec::new();
    type WindowChange<'a> = (
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a protocol::queue::WindowPause>,
    );
    let mut windows: Vec<WindowChange> = Vec::new();
    let mut ev = EventColumns::default();
    for event in events {
        match event {
            Event::Ticket {
                ticket,
                action,
                at_ms,
                clerk_id,
                window_id,
            } => {
                match tickets.iter_mut().find(|t| t.id == ticket.id) {
                    Some(t) => *t = ticket,
                    None => tickets.push(ticket),
                }
                ev.ticket_id.push(&ticket.id);
                ev.at_ms.push(*at_ms);
                ev.action.push(action.as_str());
                ev.state.push(ticket.state.as_str());
                ev.clerk_id.push(clerk_id.as_deref());
                ev.window_id.push(window_id.as_deref());
            }
            Event::Window {
                window_id,
                clerk_id,
                clerk_name,
                pause,
                ..
            } => {
                let w = (
                    window_id.as_str(),
                    clerk_id.as_deref(),
                    clerk_name.as_deref(),
                    pause.as_ref(),
                );
                match windows
                    .iter_mut()
                    .find(|(id, ..)| *id == window_id.as_str())
                {
                    Some(old) => *old = w,
                    None => windows.push(w),
                }
            }
        }
    }
    let col = |f: fn(&Ticket) -> Option<i64>| tickets.iter().map(|t| f(t)).collect::<Vec<_>>();
    let text = |f: fn(&Ticket) -> Option<&str>| tickets.iter().map(|t| f(t)).collect::<Vec<_>>();
    sqlx::query(
        "WITH ticket_rows AS (
            INSERT INTO tickets (id, centre_id, service_day, number, number_seq, channel,
                category_id, state, created_ms, queue_ms, seq, appointment_start, appointment_end,
                device_id, extension_point_id, window_id, target_window_id, clerk_id,
                first_called_ms, called_ms, serving_ms, finished_ms, recalls, end_reason)
            SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[],
                $6::text[], $7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::bigint[],
                $12::bigint[], $13::bigint[], $14::text[], $15::text[], $16::text[], $17::text[],
                $18::text[], $19::bigint[], $20::bigint[], $21::bigint[], $22::bigint[],
                $23::bigint[], $24::text[])
            ON CONFLICT(id) DO UPDATE SET
                category_id = excluded.category_id, state = excluded.state,
                queue_ms = excluded.queue_ms, window_id = excluded.window_id,
                target_window_id = excluded.target_window_id, clerk_id = excluded.clerk_id,
                first_called_ms = excluded.first_called_ms, called_ms = excluded.called_ms,
                serving_ms = excluded.serving_ms, finished_ms = excluded.finished_ms,
                recalls = excluded.recalls, end_reason = excluded.end_reason
            RETURNING 1
         ), window_rows AS (
            UPDATE windows SET clerk_id = w.clerk_id, clerk_name = w.clerk_name,
                pause_reason = w.pause_reason, pause_since_ms = w.pause_since_ms,
                pause_until_ms = w.pause_until_ms
            FROM unnest($25::text[], $26::text[], $27::text[], $34::text[], $35::bigint[],
                $36::bigint[]) AS w(id, clerk_id, clerk_name, pause_reason, pause_since_ms,
                pause_until_ms)
            WHERE windows.id = w.id
            RETURNING 1
         )
         INSERT INTO ticket_events (ticket_id, at_ms, action, state, clerk_id, window_id)
         SELECT ticket_id, at_ms, action, state, clerk_id, window_id
         FROM unnest($28::text[], $29::bigint[], $30::text[], $31::text[], $32::text[],
             $33::text[]) WITH ORDINALITY AS e(ticket_id, at_ms, action, state, clerk_id,
             window_id, n)
         ORDER BY n",
    )
    .bind(text(|t| Some(t.id.as_str())))
    .bind(text(|t| Some(t.centre_id.as_str())))
    .bind(col(|t| Some(t.service_day)))
    .bind(text(|t| Some(t.number.as_str())))
    .bind(col(|t| Some(i64::from(t.number_seq))))
    .bind(text(|t| Some(channel_str(t.channel))))
    .bind(text(|t| Some(t.category_id.as_str())))
    .bind(text(|t| Some(t.state.as_str())))
    .bind(col(|t| Some(t.created_ms)))
    .bind(col(|t| Some(t.queue_ms)))
    .bind(col(|t| Some(i64::try_from(t.seq).unwrap_or(i64::MAX))))
    .bind(col(|t| t.appointment.map(|a| a.start_ms)))
    .bind(col(|t| t.appointment.map(|a| a.end_ms)))
    .bind(text(|t| t.device_id.as_deref()))
    .bind(text(|t| t.extension_point_id.as_deref()))
    .bind(text(|t| t.window_id.as_deref()))
    .bind(text(|t| t.target_window_id.as_deref()))
    .bind(text(|t| t.clerk_id.as_deref()))
    .bind(col(|t| t.first_called_ms))
    .bind(col(|t| t.called_ms))
    .bind(col(|t| t.serving_ms))
    .bind(col(|t| t.finished_ms))
    .bind(col(|t| Some(i64::from(t.recalls))))
    .bind(text(|t| t.end_reason.map(EndReason::as_str)))
    .bind(windows.iter().map(|w| w.0).collect::<Vec<_>>())
    .bind(windows.iter().map(|w| w.1).collect::<Vec<_>>())
    .bind(windows.iter().map(|w| w.2).collect::<Vec<_>>())
    .bind(ev.ticket_id)
    .bind(ev.at_ms)
    .bind(ev.action)
    .bind(ev.state)
    .bind(ev.clerk_id)
    .bind(ev.window_id)
    .bind(
        windows
            .iter()
            .map(|w| w.3.map(|p| p.reason.as_str()))
            .collect::<Vec<_>>(),
    )
    .bind(
        windows
            .iter()
            .map(|w| w.3.map(|p| p.since_ms))
            .collect::<Vec<_>>(),
    )
    .bind(
        windows
            .iter()
            .map(|w| w.3.map(|p| p.until_ms))
            .collect::<Vec<_>>(),
    )
    .execute(executor)
    .await?;
    Ok(())
}

/// The `ticket_events` rows of a batch, column by column.
#[derive(Default)]
struct EventColumns<'a> {
    ticket_id: Vec<&'a str>,
    at_ms: Vec<i64>,
    action: Vec<&'static str>,
    state: Vec<&'static str>,
    clerk_id: Vec<Option<&'a str>>,
    window_id: Vec<Option<&'a str>>,
}

#[async_trait]
impl Store for PgStore {
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
            "INSERT INTO centres (id, name, district, street, created_ms) VALUES ($1,$2,$3,$4,$5)
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
             WHERE centre_id = $1 AND active = 1 ORDER BY sort_order, id",
        )
        .bind(centre_id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn upsert_category(&self, c: &CategoryRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO service_categories (id, centre_id, prefix, name, sort_order)
             VALUES ($1,$2,$3,$4,$5)
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
                    (SELECT string_agg(category_id, ',' ORDER BY category_id) FROM window_categories wc
                      WHERE wc.window_id = w.id) AS categories
             FROM windows w WHERE w.centre_id = $1 AND w.active = 1 ORDER BY w.sort_order, w.id",
        )
        .bind(centre_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(WindowRecord::try_from).collect()
    }

    async fn upsert_window(&self, w: &WindowRecord) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO windows (id, centre_id, name, mode) VALUES ($1,$2,$3,$4)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, mode = excluded.mode, active = 1",
        )
        .bind(&w.id)
        .bind(&w.centre_id)
        .bind(&w.name)
        .bind(window_mode_str(w.mode))
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM window_categories WHERE window_id = $1")
            .bind(&w.id)
            .execute(&mut *tx)
            .await?;
        for c in &w.category_ids {
            sqlx::query("INSERT INTO window_categories (window_id, category_id) VALUES ($1, $2)")
                .bind(&w.id)
                .bind(c)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn clerk_by_username(&self, username: &str) -> StoreResult<Option<Clerk>> {
        let row: Option<ClerkRow> = sqlx::query_as("SELECT * FROM clerks WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        row.map(Clerk::try_from).transpose()
    }

    async fn clerk(&self, id: &str) -> StoreResult<Option<Clerk>> {
        let row: Option<ClerkRow> = sqlx::query_as("SELECT * FROM clerks WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(Clerk::try_from).transpose()
    }

    async fn upsert_clerk(&self, c: &Clerk, now_ms: i64) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        // A new password or a disabled account ends every login the clerk has open.
        sqlx::query(
            "DELETE FROM clerk_sessions WHERE clerk_id = $1 AND EXISTS (
                SELECT 1 FROM clerks WHERE id = $1 AND (password_hash != $2 OR $3 = 0))",
        )
        .bind(&c.id)
        .bind(&c.password_hash)
        .bind(i64::from(c.active))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO clerks (id, centre_id, username, display_name, password_hash, roles,
                active, created_ms) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)
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
                last_seen_ms, source_address, password_change_only)
             VALUES ($1,$2,$3,$4,$5,$6,$7)",
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
            sqlx::query_as("SELECT must_change_password FROM clerks WHERE id = $1")
                .bind(clerk_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.is_some_and(|(m,)| m != 0))
    }

    async fn require_password_change(&self, clerk_id: &str) -> StoreResult<()> {
        sqlx::query("UPDATE clerks SET must_change_password = 1 WHERE id = $1")
            .bind(clerk_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_own_password(&self, clerk_id: &str, password_hash: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE clerks SET password_hash = $1, must_change_password = 0 WHERE id = $2")
            .bind(password_hash)
            .bind(clerk_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM clerk_sessions WHERE clerk_id = $1")
            .bind(clerk_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_login(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM clerk_sessions WHERE token_hash = $1")
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
             FROM clerk_sessions WHERE second_factor_stage != 1 AND clerk_id = $1 AND expires_ms > $2 AND last_seen_ms > $3
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
        let done =
            sqlx::query("DELETE FROM clerk_sessions WHERE clerk_id = $1 AND token_hash = $2")
                .bind(clerk_id)
                .bind(token_hash)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_clerk_logins(&self, clerk_id: &str) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM clerk_sessions WHERE clerk_id = $1")
            .bind(clerk_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn purge_logins(&self, now_ms: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM clerk_sessions WHERE expires_ms <= $1")
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn extension_point(&self, id: &str) -> StoreResult<Option<ExtensionPoint>> {
        let row: Option<ExtensionPointRow> =
            sqlx::query_as("SELECT * FROM extension_points WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(ExtensionPoint::try_from).transpose()
    }

    async fn upsert_extension_point(&self, p: &ExtensionPoint, now_ms: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO extension_points (id, centre_id, name, address, phone, service_hours,
                hours_json, status, created_ms) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)
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
        let row: Option<DeviceRow> = sqlx::query_as("SELECT * FROM devices WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(Device::try_from).transpose()
    }

    async fn upsert_device(&self, d: &Device, now_ms: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO devices (id, centre_id, extension_point_id, kind, name, secret_hash,
                status, created_ms) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)
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
        sqlx::query("UPDATE devices SET last_seen_ms = $1 WHERE id = $2")
            .bind(now_ms)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn load_queue(&self, centre_id: &str, today: i64) -> StoreResult<QueueSnapshot> {
        let rows: Vec<TicketRow> = sqlx::query_as(
            "SELECT * FROM tickets WHERE centre_id = $1
               AND (state IN ('waiting', 'called', 'serving', 'parked') OR service_day >= $2)
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
             WHERE centre_id = $1 AND clerk_id IS NOT NULL",
        )
        .bind(centre_id)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|(id, clerk_id, clerk_name)| (id, clerk_id, clerk_name.unwrap_or_default()))
        .collect();
        let window_pauses = super::window_pause::load_pg(&self.pool, centre_id).await?;
        Ok(QueueSnapshot {
            tickets,
            window_clerks,
            window_pauses,
        })
    }

    async fn persist_queue_events(&self, events: &[Event]) -> StoreResult<()> {
        // One statement: committed when it returns.
        write_queue_events(&self.pool, events).await
    }
}

/// A node's lease on a centre: while it holds one it decides for the centre, and its queue
/// writes carry `epoch`, the fencing token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub centre_id: String,
    pub node_id: String,
    pub epoch: i64,
    /// When this node must stop deciding, by its own monotonic clock: the time the request
    /// was sent plus the lease (the database's `lease_until` is no earlier than that).
    pub decide_until: Instant,
}

impl PgStore {
    /// Takes or renews the lease on `centre_id` for `node_id`, for `lease` from the database's
    /// `now()`. `None`: another node holds a live lease. The epoch stays while this node keeps
    /// a live lease and grows on every other grant (a new owner, or this node after its lease
    /// ran out).
    pub async fn acquire_lease(
        &self,
        centre_id: &str,
        node_id: &str,
        lease: Duration,
    ) -> StoreResult<Option<Lease>> {
        let asked = Instant::now();
        let epoch: Option<i64> = sqlx::query_scalar(
            "INSERT INTO centre_leases (centre_id, node_id, epoch, lease_until, granted_at,
                renewed_at)
             VALUES ($1, $2, 1, now() + $3::float8 * interval '1 millisecond', now(), now())
             ON CONFLICT (centre_id) DO UPDATE SET
                epoch = CASE WHEN centre_leases.node_id = excluded.node_id
                              AND centre_leases.lease_until >= now()
                         THEN centre_leases.epoch ELSE centre_leases.epoch + 1 END,
                granted_at = CASE WHEN centre_leases.node_id = excluded.node_id
                              AND centre_leases.lease_until >= now()
                         THEN centre_leases.granted_at ELSE now() END,
                node_id = excluded.node_id,
                lease_until = excluded.lease_until,
                renewed_at = now()
             WHERE centre_leases.node_id = excluded.node_id OR centre_leases.lease_until < now()
             RETURNING epoch",
        )
        .bind(centre_id)
        .bind(node_id)
        .bind(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX))
        .fetch_optional(&self.pool)
        .await?;
        Ok(epoch.map(|epoch| Lease {
            centre_id: centre_id.to_owned(),
            node_id: node_id.to_owned(),
            epoch,
            decide_until: asked + lease,
        }))
    }

    /// Gives the lease up (a drain): another node may take the centre at once. False when the
    /// lease was no longer this node's.
    pub async fn release_lease(&self, lease: &Lease) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE centre_leases SET lease_until = now() - interval '1 millisecond'
             WHERE centre_id = $1 AND node_id = $2 AND epoch = $3",
        )
        .bind(&lease.centre_id)
        .bind(&lease.node_id)
        .bind(lease.epoch)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores decided queue events like [`Store::persist_queue_events`], in a transaction that
    /// first checks, under a share lock on the lease row (a takeover waits for it), that the
    /// centre's epoch is still the lease's. A node whose lease was taken over gets
    /// [`StoreError::Fenced`] and nothing is written.
    pub async fn persist_queue_events_fenced(
        &self,
        lease: &Lease,
        events: &[Event],
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let current: Option<(String, i64)> = sqlx::query_as(
            "SELECT node_id, epoch FROM centre_leases WHERE centre_id = $1 FOR SHARE",
        )
        .bind(&lease.centre_id)
        .fetch_optional(&mut *tx)
        .await?;
        if current.as_ref() != Some(&(lease.node_id.clone(), lease.epoch)) {
            return Err(StoreError::Fenced {
                centre_id: lease.centre_id.clone(),
                epoch: lease.epoch,
                current: current.map(|(_, e)| e),
            });
        }
        write_queue_events(&mut *tx, events).await?;
        tx.commit().await?;
        Ok(())
    }
}
