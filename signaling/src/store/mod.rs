//! Persistent state of the relay.
//!
//! Domain code talks to the [`Store`] trait (and the per-feature traits beside it) only.
//! [`sqlite::SqliteStore`] is the embedded default (one file under the data directory, zero
//! setup); [`postgres::PgStore`] implements the same traits on PostgreSQL with its own SQL and
//! migrations, for a relay whose state must outlive one machine (`store.url`). The conformance
//! suite (`conformance.rs`) runs the same tests against both.
//!
//! Durability: a method returns only after its transaction committed, so
//! anything acknowledged to a client survives a crash of the relay; [`Durability`] says
//! whether it also survives a power cut.

pub mod appointments;
pub mod cases;
#[cfg(test)]
mod conformance;
pub mod evaluations;
pub mod postgres;
pub mod private_postgres;
pub mod recordings;
pub mod registry;
pub mod sqlite;
pub mod staff_profile;
mod window_pause;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::domain::{CategoryRecord, Centre, Clerk, Device, ExtensionPoint, WindowRecord};
use crate::queue::{Event, Ticket};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// A queue write of a node whose lease on the centre was superseded (PostgreSQL).
    #[error(
        "centre {centre_id}: this node's lease (epoch {epoch}) is no longer current (now {current:?}); another node decides for the centre"
    )]
    Fenced {
        centre_id: String,
        epoch: i64,
        current: Option<i64>,
    },
    #[error("cannot prepare the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
}

pub type StoreResult<T> = Result<T, StoreError>;

/// How far an acknowledged change is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Flushed to disk before it is acknowledged (SQLite `synchronous = FULL`): survives a
    /// crash of the relay and a power cut or kernel crash. Costs one fsync per change.
    PowerLoss,
    /// Written to the operating system before it is acknowledged (`synchronous = NORMAL`):
    /// survives a crash of the relay, but the last changes may be lost if the machine itself
    /// loses power. Faster on slow disks.
    ProcessCrash,
}

/// What the queue of one centre needs at start-up.
#[derive(Debug, Default)]
pub struct QueueSnapshot {
    /// Tickets not yet finished, whatever their day, and today's finished ones (for statistics).
    pub tickets: Vec<Ticket>,
    /// The window sign-ins that were live: (window, clerk, clerk name).
    pub window_clerks: Vec<(String, String, String)>,
    /// The pauses of those windows (暂停服务).
    pub window_pauses: Vec<(String, protocol::queue::WindowPause)>,
}

/// A login being created.
#[derive(Debug, Clone)]
pub struct NewLogin<'a> {
    pub token_hash: &'a str,
    pub clerk_id: &'a str,
    pub now_ms: i64,
    pub expires_ms: i64,
    /// The address the login came from, as the relay saw it.
    pub source_address: &'a str,
    /// The login may only change the password (one set by someone else).
    pub password_change_only: bool,
}

/// A live login as its owner sees it in their list of sessions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LoginRecord {
    /// The SHA-256 digest of the token: names the login without being able to use it.
    pub id: String,
    pub created_ms: i64,
    pub last_seen_ms: i64,
    pub expires_ms: i64,
    pub source_address: String,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // --- centres and their set-up ------------------------------------------------------------
    async fn centres(&self) -> StoreResult<Vec<Centre>>;
    async fn centre(&self, id: &str) -> StoreResult<Option<Centre>>;
    async fn upsert_centre(&self, centre: &Centre, now_ms: i64) -> StoreResult<()>;
    async fn categories(&self, centre_id: &str) -> StoreResult<Vec<CategoryRecord>>;
    async fn upsert_category(&self, category: &CategoryRecord) -> StoreResult<()>;
    async fn windows(&self, centre_id: &str) -> StoreResult<Vec<WindowRecord>>;
    async fn upsert_window(&self, window: &WindowRecord) -> StoreResult<()>;

    // --- staff ---------------------------------------------------------------------------------
    async fn clerk_by_username(&self, username: &str) -> StoreResult<Option<Clerk>>;
    async fn clerk(&self, id: &str) -> StoreResult<Option<Clerk>>;
    async fn upsert_clerk(&self, clerk: &Clerk, now_ms: i64) -> StoreResult<()>;
    /// Saves a new login. Changing a clerk's password or disabling them (through
    /// [`Store::upsert_clerk`]) ends all of their logins.
    async fn create_login(&self, login: &NewLogin<'_>) -> StoreResult<()>;
    /// The clerk behind a live login: not past `expires_ms`, used within `idle_ms`, clerk
    /// active. Marks the login as used now (at most once a minute, to spare the disk).
    async fn login_clerk(
        &self,
        token_hash: &str,
        now_ms: i64,
        idle_ms: i64,
    ) -> StoreResult<Option<Clerk>>;
    /// Like [`Store::login_clerk`], but also finds logins that may only change the password.
    async fn password_change_login(
        &self,
        token_hash: &str,
        now_ms: i64,
        idle_ms: i64,
    ) -> StoreResult<Option<Clerk>>;
    /// Whether the clerk must change their password before doing anything else.
    async fn must_change_password(&self, clerk_id: &str) -> StoreResult<bool>;
    /// Marks a password as set by someone else: it must be changed at the next login.
    async fn require_password_change(&self, clerk_id: &str) -> StoreResult<()>;
    /// Sets a password the clerk chose, clears the change requirement and ends every login.
    async fn set_own_password(&self, clerk_id: &str, password_hash: &str) -> StoreResult<()>;
    async fn delete_login(&self, token_hash: &str) -> StoreResult<()>;
    /// A clerk's live logins, newest first.
    async fn clerk_logins(
        &self,
        clerk_id: &str,
        now_ms: i64,
        idle_ms: i64,
    ) -> StoreResult<Vec<LoginRecord>>;
    /// Ends one of a clerk's logins; false when the clerk has no such login.
    async fn delete_clerk_login(&self, clerk_id: &str, token_hash: &str) -> StoreResult<bool>;
    /// Ends every login of a clerk; how many there were.
    async fn delete_clerk_logins(&self, clerk_id: &str) -> StoreResult<u64>;
    async fn purge_logins(&self, now_ms: i64) -> StoreResult<u64>;

    // --- extension points and devices ---------------------------------------------------------
    async fn extension_point(&self, id: &str) -> StoreResult<Option<ExtensionPoint>>;
    async fn upsert_extension_point(&self, point: &ExtensionPoint, now_ms: i64) -> StoreResult<()>;
    async fn device(&self, id: &str) -> StoreResult<Option<Device>>;
    async fn upsert_device(&self, device: &Device, now_ms: i64) -> StoreResult<()>;
    async fn touch_device(&self, id: &str, now_ms: i64) -> StoreResult<()>;

    // --- the queue -----------------------------------------------------------------------------
    async fn load_queue(&self, centre_id: &str, today: i64) -> StoreResult<QueueSnapshot>;
    /// Stores decided queue events in one transaction.
    async fn persist_queue_events(&self, events: &[Event]) -> StoreResult<()>;
}
