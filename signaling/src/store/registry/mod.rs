//! The registry's records (远程受理柜台维护), kiosk health and inspection records.
//!
//! Its own trait beside [`super::Store`]: the registry routes, the health view and the alert
//! task are its only users. [`SqliteStore`] implements it in the same database file
//! (`migrations/sqlite/0040_registry.sql`, `0041_device_health.sql`), which lets
//! [`RegistryStore::commit`] write a lifecycle step and its effect on `extension_points` and
//! `devices` (what the queue and the kiosk handshake read) in one transaction.

use async_trait::async_trait;
use protocol::device::{DeviceKind, DeviceStatus};
use protocol::inspection::{CheckOutcome, InspectionReport};
use serde::Serialize;

use super::{StoreError, StoreResult};
use crate::registry::alerts::Alert;
use crate::registry::lifecycle::{Counter, CounterState, EventAction, RegistryEvent, Transition};

/// Whose records a query covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every centre (the alert task, the public listing).
    All,
    /// One centre: a registry operator's, supervisor's or technician's own.
    Centre(String),
    /// Every centre of a district: an account granted district scope explicitly.
    District(String),
}

/// Which registry events to read.
#[derive(Debug, Clone)]
pub struct EventQuery {
    pub scope: Scope,
    /// Of this district only (the forms are per district).
    pub district: Option<String>,
    pub counter_id: Option<String>,
    pub actions: Vec<EventAction>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub limit: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("记录已被他人修改，请刷新后重试 / changed by someone else; reload and retry")]
    Conflict,
    #[error("编号已被其他延伸点使用 / the id {0} is used by another extension point")]
    PointInUse(String),
    #[error("远程设备 ID {0} 已在其他点位使用 / remote device id {0} is used elsewhere")]
    DeviceInUse(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CommitError {
    fn from(e: sqlx::Error) -> Self {
        CommitError::Store(StoreError::Database(e))
    }
}

/// An extension point as the health view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PointRow {
    pub id: String,
    pub centre_id: String,
    pub centre_name: String,
    pub district: String,
    pub name: String,
    pub status: String,
    pub service_hours: String,
    pub hours: Option<protocol::hours::ServiceHours>,
    /// The registry's state of the point, when it is in the registry.
    pub registry_state: Option<CounterState>,
}

/// An enabled kiosk of a point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct KioskRow {
    #[sqlx(rename = "id")]
    pub device_id: String,
    pub extension_point_id: String,
    pub centre_id: String,
    pub last_seen_ms: Option<i64>,
    /// When the device row was created (its first credential).
    pub created_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusRow {
    pub device_id: String,
    pub kind: DeviceKind,
    pub status: DeviceStatus,
    pub since_ms: i64,
    pub updated_ms: i64,
}

/// A stored inspection record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InspectionRecord {
    pub id: i64,
    pub device_id: String,
    pub extension_point_id: String,
    pub centre_id: String,
    pub technician: String,
    pub automatic: bool,
    pub started_ms: i64,
    pub finished_ms: i64,
    pub received_ms: i64,
    pub overall: CheckOutcome,
    pub report: InspectionReport,
}

/// Everything the health view and the alert task read, for one scope.
#[derive(Debug, Clone, Default)]
pub struct HealthData {
    pub points: Vec<PointRow>,
    pub kiosks: Vec<KioskRow>,
    pub statuses: Vec<StatusRow>,
    /// The latest inspection of each point.
    pub last_inspections: Vec<InspectionRecord>,
}

#[async_trait]
pub trait RegistryStore: Send + Sync + 'static {
    async fn counter(&self, id: &str) -> StoreResult<Option<Counter>>;
    async fn counters(&self, scope: &Scope) -> StoreResult<Vec<Counter>>;
    /// Stores a decided lifecycle step: the counter (still at `expected_version`), its event,
    /// and its effects on `extension_points` and `devices`, in one transaction. Returns the
    /// event's id.
    async fn commit(&self, transition: &Transition) -> Result<i64, CommitError>;
    /// Oldest first.
    async fn events(&self, query: &EventQuery) -> StoreResult<Vec<RegistryEvent>>;

    /// The district an account acts for, if it was granted district scope.
    async fn district_scope(&self, clerk_id: &str) -> StoreResult<Option<String>>;
    async fn set_district_scope(
        &self,
        clerk_id: &str,
        district: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<()>;

    /// Records a device's status; `since_ms` moves only when the status changes.
    async fn record_device_status(
        &self,
        device_id: &str,
        kind: DeviceKind,
        status: DeviceStatus,
        now_ms: i64,
    ) -> StoreResult<()>;
    async fn health_data(&self, scope: &Scope) -> StoreResult<HealthData>;

    async fn open_alerts(&self) -> StoreResult<Vec<Alert>>;
    /// Stores a raised alert, or marks the open one with its key resolved.
    async fn record_alert(&self, alert: &Alert) -> StoreResult<()>;
    /// Newest first: open ones and those resolved since `since_ms`.
    async fn recent_alerts(&self, scope: &Scope, since_ms: i64) -> StoreResult<Vec<Alert>>;

    async fn add_inspection(&self, record: &InspectionRecord) -> StoreResult<i64>;
    /// Newest first.
    async fn inspections(
        &self,
        scope: &Scope,
        point: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<InspectionRecord>>;
}

mod postgres;
mod sqlite;

/// Stands in until the relay's store is attached ([`crate::http::AppState::with_registry`]):
/// every call fails.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoRegistry;

fn unavailable<T>() -> StoreResult<T> {
    Err(StoreError::Corrupt("no registry store is attached".into()))
}

#[async_trait]
impl RegistryStore for NoRegistry {
    async fn counter(&self, _: &str) -> StoreResult<Option<Counter>> {
        unavailable()
    }
    async fn counters(&self, _: &Scope) -> StoreResult<Vec<Counter>> {
        unavailable()
    }
    async fn commit(&self, _: &Transition) -> Result<i64, CommitError> {
        Ok(unavailable()?)
    }
    async fn events(&self, _: &EventQuery) -> StoreResult<Vec<RegistryEvent>> {
        unavailable()
    }
    async fn district_scope(&self, _: &str) -> StoreResult<Option<String>> {
        unavailable()
    }
    async fn set_district_scope(&self, _: &str, _: Option<&str>, _: i64) -> StoreResult<()> {
        unavailable()
    }
    async fn record_device_status(
        &self,
        _: &str,
        _: DeviceKind,
        _: DeviceStatus,
        _: i64,
    ) -> StoreResult<()> {
        unavailable()
    }
    async fn health_data(&self, _: &Scope) -> StoreResult<HealthData> {
        unavailable()
    }
    async fn open_alerts(&self) -> StoreResult<Vec<Alert>> {
        unavailable()
    }
    async fn record_alert(&self, _: &Alert) -> StoreResult<()> {
        unavailable()
    }
    async fn recent_alerts(&self, _: &Scope, _: i64) -> StoreResult<Vec<Alert>> {
        unavailable()
    }
    async fn add_inspection(&self, _: &InspectionRecord) -> StoreResult<i64> {
        unavailable()
    }
    async fn inspections(
        &self,
        _: &Scope,
        _: Option<&str>,
        _: u32,
    ) -> StoreResult<Vec<InspectionRecord>> {
        unavailable()
    }
}
