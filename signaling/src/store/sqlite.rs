//! The embedded SQLite store.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use protocol::queue::{AppointmentSlot, TicketChannel, TicketState};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use super::{Durability, QueueSnapshot, Store, StoreError, StoreResult};
use crate::domain::{
    CategoryRecord, Centre, Clerk, Device, DeviceKind, ExtensionPoint, WindowRecord, format_roles,
    parse_roles, parse_window_mode, window_mode_str,
};
use crate::queue::{EndReason, Event, Ticket};

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

fn clerk_from_row(row: &SqliteRow) -> StoreResult<Clerk> {
    let roles: String = row.try_get("roles")?;
    Ok(Clerk {
        id: row.try_get("id")?,
        centre_id: row.try_get("centre_id")?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        password_hash: row.try_get("password_hash")?,
        roles: parse_roles(&roles).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        active: row.try_get::<i64, _>("active")? != 0,
    })
}

fn device_from_row(row: &SqliteRow) -> StoreResult<Device> {
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    Ok(Device {
        id: row.try_get("id")?,
        centre_id: row.try_get("centre_id")?,
        extension_point_id: row.try_get("extension_point_id")?,
        kind: DeviceKind::parse(&kind).ok_or_else(|| corrupt("device kind", &kind))?,
        name: row.try_get("name")?,
        secret_hash: row.try_get("secret_hash")?,
        active: status == "active",
    })
}

fn channel_str(c: TicketChannel) -> &'static str {
    match c {
        TicketChannel::OnSite => "on_site",
        TicketChannel::Remote => "remote",
    }
}

fn ticket_from_row(row: &SqliteRow) -> StoreResult<Ticket> {
    let channel: String = row.try_get("channel")?;
    let state: String = row.try_get("state")?;
    let end_reason: Option<String> = row.try_get("end_reason")?;
    let start: Option<i64> = row.try_get("appointment_start")?;
    let end: Option<i64> = row.try_get("appointment_end")?;
    let number_seq: i64 = row.try_get("number_seq")?;
    let seq: i64 = row.try_get("seq")?;
    let recalls: i64 = row.try_get("recalls")?;
    Ok(Ticket {
        id: row.try_get("id")?,
        centre_id: row.try_get("centre_id")?,
        service_day: row.try_get("service_day")?,
        number: row.try_get("number")?,
        number_seq: u32::try_from(number_seq).map_err(|_| corrupt("number_seq", "out of range"))?,
        channel: match channel.as_str() {
            "on_site" => TicketChannel::OnSite,
            "remote" => TicketChannel::Remote,
            other => return Err(corrupt("ticket channel", other)),
        },
        category_id: row.try_get("category_id")?,
        state: TicketState::parse(&state).ok_or_else(|| corrupt("ticket state", &state))?,
        created_ms: row.try_get("created_ms")?,
        queue_ms: row.try_get("queue_ms")?,
        seq: u64::try_from(seq).map_err(|_| corrupt("seq", "negative"))?,
        appointment: match (start, end) {
            (Some(start_ms), Some(end_ms)) => Some(AppointmentSlot { start_ms, end_ms }),
            _ => None,
        },
        device_id: row.try_get("device_id")?,
        extension_point_id: row.try_get("extension_point_id")?,
        window_id: row.try_get("window_id")?,
        target_window_id: row.try_get("target_window_id")?,
        clerk_id: row.try_get("clerk_id")?,
        first_called_ms: row.try_get("first_called_ms")?,
        called_ms: row.try_get("called_ms")?,
        serving_ms: row.try_get("serving_ms")?,
        finished_ms: row.try_get("finished_ms")?,
        recalls: u32::try_from(recalls).map_err(|_| corrupt("recalls", "out of range"))?,
        end_reason: match end_reason {
            Some(r) => Some(EndReason::parse(&r).ok_or_else(|| corrupt("end reason", &r))?),
            None => None,
        },
    })
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

#[async_trait]
impl Store for SqliteStore {
    async fn centres(&self) -> StoreResult<Vec<Centre>> {
        let rows = sqlx::query("SELECT id, name, district, street FROM centres ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Centre {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    district: r.try_get("district")?,
                    street: r.try_get("street")?,
                })
            })
            .collect()
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
        let rows = sqlx::query(
            "SELECT id, centre_id, prefix, name, sort_order FROM service_categories
             WHERE centre_id = ? AND active = 1 ORDER BY sort_order, id",
        )
        .bind(centre_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CategoryRecord {
                    id: r.try_get("id")?,
                    centre_id: r.try_get("centre_id")?,
                    prefix: r.try_get("prefix")?,
                    name: r.try_get("name")?,
                    sort_order: r.try_get("sort_order")?,
                })
            })
            .collect()
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
        let rows = sqlx::query(
            "SELECT w.id, w.centre_id, w.name, w.mode, w.clerk_id, w.clerk_name,
                    (SELECT group_concat(category_id, ',') FROM window_categories wc
                      WHERE wc.window_id = w.id) AS categories
             FROM windows w WHERE w.centre_id = ? AND w.active = 1 ORDER BY w.sort_order, w.id",
        )
        .bind(centre_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let mode: String = r.try_get("mode")?;
                let categories: Option<String> = r.try_get("categories")?;
                let mut category_ids: Vec<String> = categories
                    .unwrap_or_default()
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                category_ids.sort();
                Ok(WindowRecord {
                    id: r.try_get("id")?,
                    centre_id: r.try_get("centre_id")?,
                    name: r.try_get("name")?,
                    mode: parse_window_mode(&mode).ok_or_else(|| corrupt("window mode", &mode))?,
                    category_ids,
                    clerk_id: r.try_get("clerk_id")?,
                    clerk_name: r.try_get("clerk_name")?,
                })
            })
            .collect()
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
        let row = sqlx::query("SELECT * FROM clerks WHERE username = ?")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(clerk_from_row).transpose()
    }

    async fn clerk(&self, id: &str) -> StoreResult<Option<Clerk>> {
        let row = sqlx::query("SELECT * FROM clerks WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(clerk_from_row).transpose()
    }

    async fn upsert_clerk(&self, c: &Clerk, now_ms: i64) -> StoreResult<()> {
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn create_session(
        &self,
        token_hash: &str,
        clerk_id: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO clerk_sessions (token_hash, clerk_id, created_ms, expires_ms)
             VALUES (?,?,?,?)",
        )
        .bind(token_hash)
        .bind(clerk_id)
        .bind(now_ms)
        .bind(expires_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn session_clerk(&self, token_hash: &str, now_ms: i64) -> StoreResult<Option<Clerk>> {
        let row = sqlx::query(
            "SELECT c.* FROM clerk_sessions s JOIN clerks c ON c.id = s.clerk_id
             WHERE s.token_hash = ? AND s.expires_ms > ? AND c.active = 1",
        )
        .bind(token_hash)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(clerk_from_row).transpose()
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM clerk_sessions WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn purge_sessions(&self, now_ms: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM clerk_sessions WHERE expires_ms <= ?")
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn extension_point(&self, id: &str) -> StoreResult<Option<ExtensionPoint>> {
        let row = sqlx::query("SELECT * FROM extension_points WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let hours: Option<String> = r.try_get("hours_json")?;
            Ok(ExtensionPoint {
                id: r.try_get("id")?,
                centre_id: r.try_get("centre_id")?,
                name: r.try_get("name")?,
                address: r.try_get("address")?,
                phone: r.try_get("phone")?,
                service_hours: r.try_get("service_hours")?,
                hours: hours
                    .map(|h| serde_json::from_str(&h))
                    .transpose()
                    .map_err(|e| StoreError::Corrupt(format!("extension point hours: {e}")))?,
                status: r.try_get("status")?,
            })
        })
        .transpose()
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
        let row = sqlx::query("SELECT * FROM devices WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(device_from_row).transpose()
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
        let rows = sqlx::query(
            "SELECT * FROM tickets WHERE centre_id = ?
               AND (state IN ('waiting', 'called', 'serving', 'parked') OR service_day >= ?)
             ORDER BY seq",
        )
        .bind(centre_id)
        .bind(today)
        .fetch_all(&self.pool)
        .await?;
        let tickets = rows
            .iter()
            .map(ticket_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        let window_clerks = sqlx::query(
            "SELECT id, clerk_id, clerk_name FROM windows
             WHERE centre_id = ? AND clerk_id IS NOT NULL",
        )
        .bind(centre_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get("id")?,
                r.try_get("clerk_id")?,
                r.try_get::<Option<String>, _>("clerk_name")?
                    .unwrap_or_default(),
            ))
        })
        .collect::<StoreResult<Vec<_>>>()?;
        Ok(QueueSnapshot {
            tickets,
            window_clerks,
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
                    ..
                } => {
                    sqlx::query("UPDATE windows SET clerk_id = ?, clerk_name = ? WHERE id = ?")
                        .bind(clerk_id)
                        .bind(clerk_name)
                        .bind(window_id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
