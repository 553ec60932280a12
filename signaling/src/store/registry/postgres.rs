//! The PostgreSQL implementation of [`super::RegistryStore`]: the SQLite queries in PostgreSQL
//! placeholders (`RETURNING id` for the generated ids), decoding into the same row types.

use crate::registry::alerts::{Alert, AlertState, status_wire};
use crate::registry::lifecycle::{Counter, CounterState, RegistryEvent, Transition};
use crate::store::StoreResult;
use crate::store::postgres::PgStore;
use async_trait::async_trait;
use protocol::device::{DeviceKind, DeviceStatus};
use sqlx::{Postgres, Transaction};

use super::sqlite::{
    CounterRow, EventRow, InspectionRow, StoredPointRow, StoredStatusRow, corrupt,
};
#[allow(clippy::wildcard_imports)]
use super::*;

/// `(centre id, district)` filters for a scope: bind both; a NULL matches everything.
fn scope_binds(scope: &Scope) -> (Option<String>, Option<String>) {
    match scope {
        Scope::All => (None, None),
        Scope::Centre(c) => (Some(c.clone()), None),
        Scope::District(d) => (None, Some(d.clone())),
    }
}

async fn write_counter(
    tx: &mut Transaction<'_, Postgres>,
    t: &Transition,
) -> Result<(), CommitError> {
    let c = &t.counter;
    let f = &c.fields;
    let hours = serde_json::to_string(&f.hours).map_err(|e| corrupt("hours", e))?;
    match t.expected_version {
        None => {
            let taken: Option<(String,)> =
                sqlx::query_as("SELECT centre_id FROM extension_points WHERE id = $1")
                    .bind(&c.id)
                    .fetch_optional(&mut **tx)
                    .await?;
            let registered: Option<(String,)> =
                sqlx::query_as("SELECT id FROM registry_counters WHERE id = $1")
                    .bind(&c.id)
                    .fetch_optional(&mut **tx)
                    .await?;
            if registered.is_some() || taken.is_some_and(|(centre,)| centre != c.centre_id) {
                return Err(CommitError::PointInUse(c.id.clone()));
            }
            sqlx::query(
                "INSERT INTO registry_counters (id, centre_id, state, district, street,
                    institution, address, hours_text, hours_json, phone, device_id, device_url,
                    remarks, version, applied_ms, activated_ms, closed_ms, close_reason,
                    updated_ms)
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19)",
            )
            .bind(&c.id)
            .bind(&c.centre_id)
            .bind(c.state.as_str())
            .bind(&f.district)
            .bind(&f.street)
            .bind(&f.institution)
            .bind(&f.address)
            .bind(&f.hours_text)
            .bind(&hours)
            .bind(&f.phone)
            .bind(&f.device_id)
            .bind(&f.device_url)
            .bind(&f.remarks)
            .bind(c.version)
            .bind(c.applied_ms)
            .bind(c.activated_ms)
            .bind(c.closed_ms)
            .bind(&c.close_reason)
            .bind(c.updated_ms)
            .execute(&mut **tx)
            .await?;
        }
        Some(expected) => {
            let done = sqlx::query(
                "UPDATE registry_counters SET state = $1, district = $2, street = $3,
                    institution = $4, address = $5, hours_text = $6, hours_json = $7, phone = $8,
                    device_id = $9, device_url = $10, remarks = $11, version = $12, activated_ms = $13,
                    closed_ms = $14, close_reason = $15, updated_ms = $16
                 WHERE id = $17 AND version = $18",
            )
            .bind(c.state.as_str())
            .bind(&f.district)
            .bind(&f.street)
            .bind(&f.institution)
            .bind(&f.address)
            .bind(&f.hours_text)
            .bind(&hours)
            .bind(&f.phone)
            .bind(&f.device_id)
            .bind(&f.device_url)
            .bind(&f.remarks)
            .bind(c.version)
            .bind(c.activated_ms)
            .bind(c.closed_ms)
            .bind(&c.close_reason)
            .bind(c.updated_ms)
            .bind(&c.id)
            .bind(expected)
            .execute(&mut **tx)
            .await?;
            if done.rows_affected() != 1 {
                return Err(CommitError::Conflict);
            }
        }
    }
    Ok(())
}

/// A remote device id may belong to one open counter, and to no other point's device row.
async fn check_device_free(
    tx: &mut Transaction<'_, Postgres>,
    c: &Counter,
) -> Result<(), CommitError> {
    if c.state == CounterState::Closed {
        return Ok(());
    }
    let device = &c.fields.device_id;
    let other: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM registry_counters WHERE device_id = $1 AND state <> 'closed' AND id <> $2",
    )
    .bind(device)
    .bind(&c.id)
    .fetch_optional(&mut **tx)
    .await?;
    let row: Option<(String, Option<String>)> =
        sqlx::query_as("SELECT centre_id, extension_point_id FROM devices WHERE id = $1")
            .bind(device)
            .fetch_optional(&mut **tx)
            .await?;
    let elsewhere = row.is_some_and(|(centre, point)| {
        centre != c.centre_id || point.as_deref() != Some(c.id.as_str())
    });
    if other.is_some() || elsewhere {
        return Err(CommitError::DeviceInUse(device.clone()));
    }
    Ok(())
}

async fn apply_effects(
    tx: &mut Transaction<'_, Postgres>,
    t: &Transition,
) -> Result<(), CommitError> {
    let now = t.event.at_ms;
    if let Some(p) = &t.effects.point {
        let hours = p
            .hours
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| corrupt("hours", e))?;
        sqlx::query(
            "INSERT INTO extension_points (id, centre_id, name, address, phone, service_hours,
                hours_json, status, created_ms) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, address = excluded.address,
                phone = excluded.phone, service_hours = excluded.service_hours,
                hours_json = excluded.hours_json, status = excluded.status",
        )
        .bind(&p.id)
        .bind(&p.centre_id)
        .bind(&p.name)
        .bind(&p.address)
        .bind(&p.phone)
        .bind(&p.service_hours)
        .bind(hours)
        .bind(&p.status)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    for id in &t.effects.disable {
        sqlx::query("UPDATE devices SET status = 'disabled' WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    if let Some(e) = &t.effects.enroll {
        let c = &t.counter;
        sqlx::query(
            "INSERT INTO devices (id, centre_id, extension_point_id, kind, name, secret_hash,
                status, created_ms) VALUES ($1,$2,$3,'kiosk',$4,$5,'active',$6)
             ON CONFLICT(id) DO UPDATE SET centre_id = excluded.centre_id,
                extension_point_id = excluded.extension_point_id, kind = 'kiosk',
                secret_hash = excluded.secret_hash, status = 'active'",
        )
        .bind(&e.device_id)
        .bind(&c.centre_id)
        .bind(&c.id)
        .bind(&c.fields.institution)
        .bind(&e.secret_hash)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[async_trait]
impl RegistryStore for PgStore {
    async fn counter(&self, id: &str) -> StoreResult<Option<Counter>> {
        let row: Option<CounterRow> =
            sqlx::query_as("SELECT * FROM registry_counters WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?;
        row.map(Counter::try_from).transpose()
    }

    async fn counters(&self, scope: &Scope) -> StoreResult<Vec<Counter>> {
        let (centre, district) = scope_binds(scope);
        let rows: Vec<CounterRow> = sqlx::query_as(
            "SELECT * FROM registry_counters
             WHERE ($1 IS NULL OR centre_id = $1) AND ($2 IS NULL OR district = $2)
             ORDER BY district, street, institution, id",
        )
        .bind(centre)
        .bind(district)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(Counter::try_from).collect()
    }

    async fn commit(&self, t: &Transition) -> Result<i64, CommitError> {
        let mut tx = self.pool().begin().await?;
        write_counter(&mut tx, t).await?;
        check_device_free(&mut tx, &t.counter).await?;
        let e = &t.event;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO registry_events (counter_id, centre_id, district, at_ms, actor_id,
                actor_name, action, reason, changes, snapshot) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)
             RETURNING id",
        )
        .bind(&e.counter_id)
        .bind(&e.centre_id)
        .bind(&e.district)
        .bind(e.at_ms)
        .bind(&e.actor.id)
        .bind(&e.actor.name)
        .bind(e.action.as_str())
        .bind(&e.reason)
        .bind(serde_json::to_string(&e.changes).map_err(|e| corrupt("changes", e))?)
        .bind(serde_json::to_string(&e.snapshot).map_err(|e| corrupt("snapshot", e))?)
        .fetch_one(&mut *tx)
        .await?;
        apply_effects(&mut tx, t).await?;
        // The trail row last: the chain's lock is taken after every row lock (see audit::append_pg).
        crate::audit::append_pg(
            &mut tx,
            &crate::audit::Entry::new(
                e.at_ms,
                &format!("{}.{}", crate::audit::kind::REGISTRY, e.action.as_str()),
                &format!("clerk:{}", e.actor.id),
                None,
                &format!("counter:{}", e.counter_id),
                &format!("event {id}"),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn events(&self, q: &EventQuery) -> StoreResult<Vec<RegistryEvent>> {
        let (centre, district) = scope_binds(&q.scope);
        let actions: Option<String> = (!q.actions.is_empty()).then(|| {
            q.actions
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(",")
        });
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT * FROM registry_events
             WHERE ($1 IS NULL OR centre_id = $1) AND ($2 IS NULL OR district = $2)
               AND ($3 IS NULL OR district = $3) AND ($4 IS NULL OR counter_id = $4)
               AND ($5 IS NULL OR strpos(',' || $5 || ',', ',' || action || ',') > 0)
               AND ($6 IS NULL OR at_ms >= $6) AND ($7 IS NULL OR at_ms < $7)
             ORDER BY id DESC LIMIT $8",
        )
        .bind(centre)
        .bind(district)
        .bind(&q.district)
        .bind(&q.counter_id)
        .bind(actions)
        .bind(q.from_ms)
        .bind(q.to_ms)
        .bind(i64::from(q.limit))
        .fetch_all(self.pool())
        .await?;
        let mut events = rows
            .into_iter()
            .map(RegistryEvent::try_from)
            .collect::<StoreResult<Vec<_>>>()?;
        events.reverse();
        Ok(events)
    }

    async fn district_scope(&self, clerk_id: &str) -> StoreResult<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT district FROM registry_district_scopes WHERE clerk_id = $1")
                .bind(clerk_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|(d,)| d))
    }

    async fn set_district_scope(
        &self,
        clerk_id: &str,
        district: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<()> {
        match district {
            Some(d) => {
                sqlx::query(
                    "INSERT INTO registry_district_scopes (clerk_id, district, granted_ms)
                     VALUES ($1,$2,$3) ON CONFLICT(clerk_id) DO UPDATE SET
                        district = excluded.district, granted_ms = excluded.granted_ms",
                )
                .bind(clerk_id)
                .bind(d)
                .bind(now_ms)
                .execute(self.pool())
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM registry_district_scopes WHERE clerk_id = $1")
                    .bind(clerk_id)
                    .execute(self.pool())
                    .await?;
            }
        }
        Ok(())
    }

    async fn record_device_status(
        &self,
        device_id: &str,
        kind: DeviceKind,
        status: DeviceStatus,
        now_ms: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO device_status (device_id, kind, status, since_ms, updated_ms)
             VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT(device_id, kind) DO UPDATE SET
                since_ms = CASE WHEN device_status.status = excluded.status
                    THEN device_status.since_ms ELSE excluded.since_ms END,
                status = excluded.status, updated_ms = excluded.updated_ms",
        )
        .bind(device_id)
        .bind(kind.as_str())
        .bind(status_wire(status))
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn health_data(&self, scope: &Scope) -> StoreResult<HealthData> {
        let (centre, district) = scope_binds(scope);
        let points = sqlx::query_as::<_, StoredPointRow>(
            "SELECT ep.id, ep.centre_id, c.name AS centre_name,
                    COALESCE(rc.district, c.district) AS district, ep.name, ep.status,
                    ep.service_hours, ep.hours_json, rc.state AS registry_state
             FROM extension_points ep JOIN centres c ON c.id = ep.centre_id
             LEFT JOIN registry_counters rc ON rc.id = ep.id
             WHERE ($1 IS NULL OR ep.centre_id = $1) AND ($2 IS NULL OR c.district = $2)
             ORDER BY ep.centre_id, ep.name, ep.id",
        )
        .bind(&centre)
        .bind(&district)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(PointRow::try_from)
        .collect::<StoreResult<Vec<_>>>()?;
        let kiosks: Vec<KioskRow> = sqlx::query_as(
            "SELECT d.id, d.extension_point_id, d.centre_id, d.last_seen_ms, d.created_ms
             FROM devices d JOIN centres c ON c.id = d.centre_id
             WHERE d.kind = 'kiosk' AND d.status = 'active' AND d.extension_point_id IS NOT NULL
               AND ($1 IS NULL OR d.centre_id = $1) AND ($2 IS NULL OR c.district = $2)
             ORDER BY d.id",
        )
        .bind(&centre)
        .bind(&district)
        .fetch_all(self.pool())
        .await?;
        let statuses = sqlx::query_as::<_, StoredStatusRow>(
            "SELECT s.* FROM device_status s JOIN devices d ON d.id = s.device_id
             JOIN centres c ON c.id = d.centre_id
             WHERE d.status = 'active' AND ($1 IS NULL OR d.centre_id = $1)
               AND ($2 IS NULL OR c.district = $2)
             ORDER BY s.device_id, s.kind",
        )
        .bind(&centre)
        .bind(&district)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(StatusRow::try_from)
        .collect::<StoreResult<Vec<_>>>()?;
        let last_inspections = sqlx::query_as::<_, InspectionRow>(
            "SELECT i.* FROM inspections i JOIN centres c ON c.id = i.centre_id
             WHERE i.id IN (SELECT MAX(id) FROM inspections GROUP BY extension_point_id)
               AND ($1 IS NULL OR i.centre_id = $1) AND ($2 IS NULL OR c.district = $2)",
        )
        .bind(&centre)
        .bind(&district)
        .fetch_all(self.pool())
        .await?
        .into_iter()
        .map(InspectionRecord::try_from)
        .collect::<StoreResult<Vec<_>>>()?;
        Ok(HealthData {
            points,
            kiosks,
            statuses,
            last_inspections,
        })
    }

    async fn open_alerts(&self) -> StoreResult<Vec<Alert>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT alert FROM health_alerts WHERE resolved_ms IS NULL ORDER BY id")
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|(a,)| serde_json::from_str(a).map_err(|e| corrupt("alert", e)))
            .collect()
    }

    async fn record_alert(&self, a: &Alert) -> StoreResult<()> {
        match a.state {
            AlertState::Firing => {
                sqlx::query(
                    "INSERT INTO health_alerts (key, kind, centre_id, extension_point_id,
                        device_id, since_ms, fired_ms, alert) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)
                     ON CONFLICT(key) WHERE resolved_ms IS NULL DO NOTHING",
                )
                .bind(&a.key)
                .bind(a.kind.as_str())
                .bind(&a.centre_id)
                .bind(&a.extension_point_id)
                .bind(&a.device_id)
                .bind(a.since_ms)
                .bind(a.at_ms)
                .bind(serde_json::to_string(a).map_err(|e| corrupt("alert", e))?)
                .execute(self.pool())
                .await?;
            }
            AlertState::Resolved => {
                sqlx::query(
                    "UPDATE health_alerts SET resolved_ms = $1 WHERE key = $2 AND resolved_ms IS NULL",
                )
                .bind(a.at_ms)
                .bind(&a.key)
                .execute(self.pool())
                .await?;
            }
        }
        Ok(())
    }

    async fn recent_alerts(&self, scope: &Scope, since_ms: i64) -> StoreResult<Vec<Alert>> {
        let (centre, district) = scope_binds(scope);
        let rows: Vec<(String, Option<i64>)> = sqlx::query_as(
            "SELECT a.alert, a.resolved_ms FROM health_alerts a JOIN centres c ON c.id = a.centre_id
             WHERE (a.resolved_ms IS NULL OR a.resolved_ms >= $3)
               AND ($1 IS NULL OR a.centre_id = $1) AND ($2 IS NULL OR c.district = $2)
             ORDER BY a.id DESC LIMIT 200",
        )
        .bind(centre)
        .bind(district)
        .bind(since_ms)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(text, resolved)| {
                let mut a: Alert = serde_json::from_str(&text).map_err(|e| corrupt("alert", e))?;
                if let Some(at) = resolved {
                    a.state = AlertState::Resolved;
                    a.at_ms = at;
                }
                Ok(a)
            })
            .collect()
    }

    async fn add_inspection(&self, r: &InspectionRecord) -> StoreResult<i64> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO inspections (device_id, extension_point_id, centre_id, technician,
                automatic, started_ms, finished_ms, received_ms, overall, report)
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) RETURNING id",
        )
        .bind(&r.device_id)
        .bind(&r.extension_point_id)
        .bind(&r.centre_id)
        .bind(&r.technician)
        .bind(i64::from(r.automatic))
        .bind(r.started_ms)
        .bind(r.finished_ms)
        .bind(r.received_ms)
        .bind(r.overall.as_str())
        .bind(serde_json::to_string(&r.report).map_err(|e| corrupt("report", e))?)
        .fetch_one(self.pool())
        .await?;
        Ok(id)
    }

    async fn inspections(
        &self,
        scope: &Scope,
        point: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<InspectionRecord>> {
        let (centre, district) = scope_binds(scope);
        let rows: Vec<InspectionRow> = sqlx::query_as(
            "SELECT i.* FROM inspections i JOIN centres c ON c.id = i.centre_id
             WHERE ($1 IS NULL OR i.centre_id = $1) AND ($2 IS NULL OR c.district = $2)
               AND ($3 IS NULL OR i.extension_point_id = $3)
             ORDER BY i.id DESC LIMIT $4",
        )
        .bind(centre)
        .bind(district)
        .bind(point)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(InspectionRecord::try_from).collect()
    }
}
