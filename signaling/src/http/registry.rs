//! Routes of the registry (远程受理柜台维护), the operations console's data, inspection uploads
//! and the public listing of extension points.
//!
//! About 720 lines of thin handlers, one per route of the registry's API; the rules are in
//! `crate::registry` (`lifecycle`, `service`).
//!
//! Who may do what:
//! - `registry_operator`: apply, amend/change, activate, close, reissue credentials; read all;
//! - `supervisor`: read the registry, its trail (who changed what) and the exports; health;
//! - `technician`: read the registry and health, inspection records;
//! - everyone else: nothing (403). Kiosks upload inspection records with their own credential.
//! - Everybody, without login: the public listing of open extension points.
//!
//! Scope: an account sees and changes only its own centre's points, unless it was granted a
//! district explicitly (`relay registry-scope`), then every point of that district. A point
//! outside the scope is "not found", so its existence does not leak.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use protocol::hours::{Date, day_start, shanghai};
use protocol::inspection::{InspectionReceipt, InspectionReport};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::info;

use super::auth::{AuthClerk, AuthKiosk};
use super::error::ApiError;
use super::state::AppState;
use crate::domain::{Clerk, Role};
use crate::registry::exports::{self, Form};
use crate::registry::fields::{FormDraft, label};
use crate::registry::lifecycle::{Actor, Counter, EventAction, RegistryEvent};
use crate::registry::service::{Application, Step, Stepped};
use crate::registry::{Registry, Stats, alert_task, health, inspections, public, xlsx};
use crate::store::registry::{CommitError, EventQuery, InspectionRecord, Scope};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/registry/divisions", get(divisions))
        .route("/api/v1/registry/counters", get(list).post(apply))
        .route("/api/v1/registry/counters/{id}", get(detail))
        .route("/api/v1/registry/counters/{id}/change", post(change))
        .route(
            "/api/v1/registry/counters/{id}/activate",
            reason_step(|note| Step::Activate { note }),
        )
        .route(
            "/api/v1/registry/counters/{id}/close",
            reason_step(|reason| Step::Close { reason }),
        )
        .route(
            "/api/v1/registry/counters/{id}/reissue",
            reason_step(|reason| Step::Reissue { reason }),
        )
        .route("/api/v1/registry/history", get(history))
        .route("/api/v1/registry/exports/{form}", get(export))
        .route("/api/v1/ops/health", get(health_view))
        .route("/api/v1/ops/alerts", get(alerts))
        .route("/api/v1/ops/inspections", get(inspection_list))
        .route("/api/v1/inspections", post(upload_inspection))
        .route("/api/v1/public/extension-points", get(public_json))
        .route("/public/extension-points", get(public_html))
}

type Result<T> = std::result::Result<T, ApiError>;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest(message.into())
}

// ---------------------------------------------------------------------------------------------
// who may do what

const WRITE: &[Role] = &[Role::RegistryOperator];
const READ: &[Role] = &[Role::RegistryOperator, Role::Supervisor, Role::Technician];
const AUDIT: &[Role] = &[Role::RegistryOperator, Role::Supervisor];

/// The scope of a staff member with one of `roles`, or 403 (counted).
async fn scope_of(state: &AppState, clerk: &Clerk, roles: &[Role]) -> Result<Scope> {
    if !roles.iter().any(|r| clerk.has(*r)) {
        Stats::inc(&state.registry.stats.denied);
        return Err(ApiError::Forbidden);
    }
    Ok(
        match state.registry.store.district_scope(&clerk.id).await? {
            Some(d) => Scope::District(d),
            None => Scope::Centre(clerk.centre_id.clone()),
        },
    )
}

fn visible(scope: &Scope, c: &Counter) -> bool {
    match scope {
        Scope::All => true,
        Scope::Centre(id) => &c.centre_id == id,
        Scope::District(d) => &c.fields.district == d,
    }
}

async fn visible_counter(state: &AppState, scope: &Scope, id: &str) -> Result<Counter> {
    match state.registry.store.counter(id).await? {
        Some(c) if visible(scope, &c) => Ok(c),
        _ => Err(ApiError::NotFound),
    }
}

fn actor(clerk: &Clerk) -> Actor {
    Actor {
        id: clerk.id.clone(),
        name: clerk.display_name.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// views

#[derive(Serialize)]
struct CounterView {
    #[serde(flatten)]
    counter: Counter,
    state_zh: &'static str,
}

impl From<Counter> for CounterView {
    fn from(counter: Counter) -> Self {
        Self {
            state_zh: counter.state.name_zh(),
            counter,
        }
    }
}

#[derive(Serialize)]
struct ChangeView {
    field: String,
    label: String,
    before: String,
    after: String,
}

#[derive(Serialize)]
struct EventView {
    id: i64,
    counter_id: String,
    centre_id: String,
    district: String,
    institution: String,
    at_ms: i64,
    actor_id: String,
    actor_name: String,
    action: EventAction,
    action_zh: &'static str,
    reason: String,
    changes: Vec<ChangeView>,
}

impl From<RegistryEvent> for EventView {
    fn from(e: RegistryEvent) -> Self {
        Self {
            id: e.id,
            counter_id: e.counter_id,
            centre_id: e.centre_id,
            district: e.district,
            institution: e.snapshot.institution,
            at_ms: e.at_ms,
            actor_id: e.actor.id,
            actor_name: e.actor.name,
            action: e.action,
            action_zh: e.action.name_zh(),
            reason: e.reason,
            changes: e
                .changes
                .into_iter()
                .map(|c| ChangeView {
                    label: label(&c.field).to_owned(),
                    field: c.field,
                    before: c.before,
                    after: c.after,
                })
                .collect(),
        }
    }
}

/// The answer to a lifecycle step: the counter after it, and the new device credential when
/// one was issued. The credential is shown only in this answer; the relay keeps its digest.
#[derive(Serialize)]
struct StepView {
    counter: CounterView,
    #[serde(skip_serializing_if = "Option::is_none")]
    credential: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// registry

async fn divisions(State(state): State<AppState>, AuthClerk(clerk): AuthClerk) -> Result<Response> {
    let scope = scope_of(&state, &clerk, READ).await?;
    let centre = state.store.centre(&clerk.centre_id).await?;
    Ok(Json(json!({
        "divisions": state.registry.divisions,
        "scope": match &scope {
            Scope::District(d) => json!({"district": d}),
            _ => json!({"centre_id": clerk.centre_id}),
        },
        "centre": centre.map(|c| json!({"id": c.id, "name": c.name, "district": c.district, "street": c.street})),
        "can_write": clerk.has(Role::RegistryOperator),
        "can_audit": AUDIT.iter().any(|r| clerk.has(*r)),
    }))
    .into_response())
}

async fn list(State(state): State<AppState>, AuthClerk(clerk): AuthClerk) -> Result<Response> {
    let scope = scope_of(&state, &clerk, READ).await?;
    let counters: Vec<CounterView> = state
        .registry
        .store
        .counters(&scope)
        .await?
        .into_iter()
        .map(CounterView::from)
        .collect();
    Ok(Json(json!({ "counters": counters })).into_response())
}

async fn detail(
    State(state): State<AppState>,
    AuthClerk(clerk): AuthClerk,
    Path(id): Path<String>,
) -> Result<Response> {
    let scope = scope_of(&state, &clerk, READ).await?;
    let counter = visible_counter(&state, &scope, &id).await?;
    let events: Vec<EventView> = state
        .registry
        .store
        .events(&EventQuery {
            scope: Scope::All,
            district: None,
            counter_id: Some(id),
            actions: Vec::new(),
            from_ms: None,
            to_ms: None,
            limit: 1000,
        })
        .await?
        .into_iter()
        .map(EventView::from)
        .collect();
    Ok(Json(json!({ "counter": CounterView::from(counter), "events": events })).into_response())
}

fn parse_body<T: serde::de::DeserializeOwned>(registry: &Registry, body: &Bytes) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| {
        Stats::inc(&registry.stats.invalid_forms);
        bad(format!("请求格式有误 / malformed request: {e}"))
    })
}

#[derive(Deserialize)]
struct ApplyRequest {
    /// The extension point's id; generated when missing.
    #[serde(default)]
    id: Option<String>,
    /// The centre; the caller's own when missing.
    #[serde(default)]
    centre_id: Option<String>,
    #[serde(flatten)]
    fields: FormDraft,
}

/// Ends a device's live kiosk connection (a step that disabled it).
fn end_connection(state: &AppState) -> impl Fn(&str) + Sync + '_ {
    |device| state.switchboard.disconnect_kiosk(device)
}

/// The answer to a step: 201 for an application, 200 for a step on a counter.
fn stepped(s: Stepped) -> Response {
    let status = if s.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let view = StepView {
        counter: s.counter.into(),
        credential: s.credential,
    };
    (status, Json(view)).into_response()
}

async fn apply(
    State(state): State<AppState>,
    AuthClerk(clerk): AuthClerk,
    body: Bytes,
) -> Result<Response> {
    let scope = scope_of(&state, &clerk, WRITE).await?;
    let registry = state.registry.clone();
    let req: ApplyRequest = parse_body(&registry, &body)?;
    let centre_id = req.centre_id.unwrap_or_else(|| clerk.centre_id.clone());
    let centre = state
        .store
        .centre(&centre_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let allowed = match &scope {
        Scope::All => true,
        Scope::Centre(c) => c == &centre.id,
        Scope::District(d) => d == &centre.district,
    };
    if !allowed {
        Stats::inc(&registry.stats.denied);
        return Err(ApiError::Forbidden);
    }
    let application = Application {
        id: req.id,
        centre: &centre,
        draft: &req.fields,
    };
    let now = state.clock.now_ms();
    let done = registry
        .apply(application, &actor(&clerk), now, &end_connection(&state))
        .await?;
    Ok(stepped(done))
}

#[derive(Deserialize)]
struct ChangeRequest {
    version: i64,
    #[serde(default)]
    reason: String,
    #[serde(flatten)]
    fields: FormDraft,
}

#[derive(Deserialize)]
struct StepRequest {
    version: i64,
    #[serde(default)]
    reason: String,
}

async fn current(state: &AppState, clerk: &Clerk, id: &str, version: i64) -> Result<Counter> {
    let scope = scope_of(state, clerk, WRITE).await?;
    let counter = visible_counter(state, &scope, id).await?;
    if counter.version != version {
        return Err(CommitError::Conflict.into());
    }
    Ok(counter)
}

/// One step on a counter the caller may change, at the version the caller saw.
async fn step_on(
    state: &AppState,
    clerk: &Clerk,
    id: &str,
    version: i64,
    step: Step,
) -> Result<Response> {
    let counter = current(state, clerk, id, version).await?;
    let now = state.clock.now_ms();
    let done = state
        .registry
        .step(&counter, step, &actor(clerk), now, &end_connection(state))
        .await?;
    Ok(stepped(done))
}

async fn change(
    State(state): State<AppState>,
    AuthClerk(clerk): AuthClerk,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let req: ChangeRequest = parse_body(&state.registry, &body)?;
    // The same district and street rule as the application's (checked before anything moves).
    let counter = current(&state, &clerk, &id, req.version).await?;
    let centre = state
        .store
        .centre(&counter.centre_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    state.registry.check_centre(&centre, &req.fields)?;
    let step = Step::Change {
        draft: Box::new(req.fields),
        reason: req.reason,
    };
    step_on(&state, &clerk, &id, req.version, step).await
}

/// `POST …/{id}/activate|close|reissue` `{version, reason}`: a step that takes only a reason.
fn reason_step(make: fn(String) -> Step) -> MethodRouter<AppState> {
    post(
        move |State(state): State<AppState>,
              AuthClerk(clerk): AuthClerk,
              Path(id): Path<String>,
              body: Bytes| async move {
            let req: StepRequest = parse_body(&state.registry, &body)?;
            step_on(&state, &clerk, &id, req.version, make(req.reason)).await
        },
    )
}

// ---------------------------------------------------------------------------------------------
// the trail and the forms

fn date_param(value: Option<&str>, name: &str) -> Result<Option<Date>> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => Date::parse(v).map(Some).ok_or_else(|| {
            bad(format!(
                "日期格式应为 YYYY-MM-DD / {name} must be YYYY-MM-DD"
            ))
        }),
    }
}

#[derive(Deserialize)]
struct HistoryQuery {
    from: Option<String>,
    to: Option<String>,
    counter: Option<String>,
    limit: Option<u32>,
}

async fn history(
    State(state): State<AppState>,
    AuthClerk(clerk): AuthClerk,
    Query(q): Query<HistoryQuery>,
) -> Result<Response> {
    let scope = scope_of(&state, &clerk, AUDIT).await?;
    let from = date_param(q.from.as_deref(), "from")?;
    let to = date_param(q.to.as_deref(), "to")?;
    let events: Vec<EventView> = state
        .registry
        .store
        .events(&EventQuery {
            scope,
            district: None,
            counter_id: q.counter,
            actions: Vec::new(),
            from_ms: from.map(day_start),
            to_ms: to.map(|d| day_start(d) + 86_400_000),
            limit: q.limit.unwrap_or(200).clamp(1, 1000),
        })
        .await?
        .into_iter()
        .rev()
        .map(EventView::from)
        .collect();
    Ok(Json(json!({ "events": events })).into_response())
}

#[derive(Deserialize)]
struct ExportQuery {
    format: Option<String>,
    district: Option<String>,
    from: Option<String>,
    to: Option<String>,
    /// The date printed as 申请日期/备案日期; today when missing.
    filed: Option<String>,
}

/// Most rows in one export; a wider range is refused with a clear message.
const MAX_EXPORT_ROWS: u32 = 20_000;

/// RFC 5987 `filename*` value.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn export(
    State(state): State<AppState>,
    AuthClerk(clerk): AuthClerk,
    Path(form): Path<String>,
    Query(q): Query<ExportQuery>,
) -> Result<Response> {
    let scope = scope_of(&state, &clerk, AUDIT).await?;
    let registry = state.registry.clone();
    let form = Form::parse(&form).ok_or(ApiError::NotFound)?;
    let xlsx_format = match q.format.as_deref().unwrap_or("xlsx") {
        "xlsx" => true,
        "csv" => false,
        _ => return Err(bad("格式应为 xlsx 或 csv / format must be xlsx or csv")),
    };
    let district = q.district.as_deref().map(str::trim).unwrap_or_default();
    if !registry.divisions.is_district(district) {
        return Err(bad(
            "请选择区划名录中的区 / choose a district from the division list",
        ));
    }
    if let Scope::District(d) = &scope
        && d != district
    {
        Stats::inc(&registry.stats.denied);
        return Err(ApiError::Forbidden);
    }
    let (Some(from), Some(to)) = (
        date_param(q.from.as_deref(), "from")?,
        date_param(q.to.as_deref(), "to")?,
    ) else {
        return Err(bad("请填写起止日期 / give from and to dates"));
    };
    if to < from {
        return Err(bad("结束日期早于开始日期 / to is before from"));
    }
    let now = state.clock.now_ms();
    let filed = date_param(q.filed.as_deref(), "filed")?.unwrap_or_else(|| shanghai(now).0);
    let to_ms = day_start(to) + 86_400_000;
    let query = |actions: Vec<EventAction>, to_ms: Option<i64>| EventQuery {
        scope: scope.clone(),
        district: Some(district.to_owned()),
        counter_id: None,
        actions,
        from_ms: Some(day_start(from)),
        to_ms,
        limit: MAX_EXPORT_ROWS + 1,
    };
    let events = match form {
        // Amendments follow their application, so read them past the range's end too.
        Form::Application => exports::applications_as_reviewed(
            &registry
                .store
                .events(&query(vec![EventAction::Apply, EventAction::Amend], None))
                .await?,
        )
        .into_iter()
        .filter(|e| e.at_ms < to_ms)
        .collect(),
        _ => {
            registry
                .store
                .events(&query(form.actions().to_vec(), Some(to_ms)))
                .await?
        }
    };
    if events.len() > MAX_EXPORT_ROWS as usize {
        return Err(bad(format!(
            "超过{MAX_EXPORT_ROWS}行，请缩小日期范围 / more than {MAX_EXPORT_ROWS} rows; narrow the range"
        )));
    }
    let sheet = exports::build(form, district, filed, &events);
    let stem = form.file_stem(district, from, to);
    let (bytes, mime, ext) = if xlsx_format {
        let bytes = xlsx::to_xlsx(&sheet).map_err(|e| ApiError::Internal(e.to_string()))?;
        (
            bytes,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "xlsx",
        )
    } else {
        (exports::to_csv(&sheet), "text/csv; charset=utf-8", "csv")
    };
    let disposition = format!(
        "attachment; filename=\"attachment-{}.{ext}\"; filename*=UTF-8''{}.{ext}",
        form.attachment(),
        percent_encode(&stem)
    );
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(mime));
    if let Ok(v) = header::HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok((headers, bytes).into_response())
}

// ---------------------------------------------------------------------------------------------
// operations console

async fn health_view(
    State(state): State<AppState>,
    AuthClerk(clerk): AuthClerk,
) -> Result<Response> {
    let scope = scope_of(&state, &clerk, READ).await?;
    let store = &state.registry.store;
    let data = store.health_data(&scope).await?;
    let open = store.open_alerts().await?;
    let view = health::view(
        &data,
        &alert_task::online_kiosks(&state),
        &open,
        state.clock.now_ms(),
    );
    Ok(Json(view).into_response())
}

#[derive(Deserialize)]
struct AlertQuery {
    days: Option<u32>,
}

async fn alerts(
    State(state): State<AppState>,
    AuthClerk(clerk): AuthClerk,
    Query(q): Query<AlertQuery>,
) -> Result<Response> {
    let scope = scope_of(&state, &clerk, READ).await?;
    let days = i64::from(q.days.unwrap_or(7).clamp(1, 90));
    let since = state.clock.now_ms() - days * 86_400_000;
    let alerts = state.registry.store.recent_alerts(&scope, since).await?;
    Ok(Json(json!({ "alerts": alerts })).into_response())
}

#[derive(Deserialize)]
struct InspectionQuery {
    point: Option<String>,
    limit: Option<u32>,
}

async fn inspection_list(
    State(state): State<AppState>,
    AuthClerk(clerk): AuthClerk,
    Query(q): Query<InspectionQuery>,
) -> Result<Response> {
    let scope = scope_of(&state, &clerk, READ).await?;
    let records = state
        .registry
        .store
        .inspections(
            &scope,
            q.point.as_deref(),
            q.limit.unwrap_or(50).clamp(1, 500),
        )
        .await?;
    // The checks' names as the kiosk shows them, for the ids in these records.
    let names: serde_json::Map<String, serde_json::Value> = records
        .iter()
        .flat_map(|r| r.report.checks.iter())
        .filter_map(|c| {
            protocol::inspection::check_name(&c.id)
                .map(|(zh, en)| (c.id.clone(), json!({ "zh": zh, "en": en })))
        })
        .collect();
    Ok(Json(json!({ "inspections": records, "check_names": names })).into_response())
}

/// `POST /api/v1/inspections`: a kiosk files its self-test result (巡检记录).
async fn upload_inspection(
    State(state): State<AppState>,
    AuthKiosk(device): AuthKiosk,
    body: Bytes,
) -> Result<Response> {
    let registry: Arc<Registry> = state.registry.clone();
    let Some(point) = device.extension_point_id.clone() else {
        return Err(ApiError::Forbidden);
    };
    let now = state.clock.now_ms();
    let report = serde_json::from_slice::<InspectionReport>(&body)
        .map_err(|e| format!("巡检记录格式有误 / malformed inspection report: {e}"))
        .and_then(|r| inspections::check(r, now));
    let report = match report {
        Ok(r) => r,
        Err(message) => {
            Stats::inc(&registry.stats.inspections_refused);
            return Err(bad(message));
        }
    };
    let overall = report.overall();
    let record = InspectionRecord {
        id: 0,
        device_id: device.id.clone(),
        extension_point_id: point,
        centre_id: device.centre_id.clone(),
        technician: report.technician.clone(),
        automatic: report.automatic,
        started_ms: report.started_ms,
        finished_ms: report.finished_ms,
        received_ms: now,
        overall,
        report,
    };
    let id = registry.store.add_inspection(&record).await?;
    Stats::inc(&registry.stats.inspections_received);
    info!(device = %device.id, id, overall = overall.as_str(), "inspection record filed");
    Ok((
        StatusCode::CREATED,
        Json(InspectionReceipt {
            id,
            overall,
            received_ms: now,
        }),
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------------
// public listing

async fn public_listing(state: &AppState) -> Result<public::PublicListing> {
    let counters = state.registry.store.counters(&Scope::All).await?;
    Ok(public::listing(&counters, state.clock.now_ms()))
}

async fn public_json(State(state): State<AppState>) -> Result<Response> {
    Ok(Json(public_listing(&state).await?).into_response())
}

async fn public_html(State(state): State<AppState>) -> Result<Response> {
    let listing = public_listing(&state).await?;
    let (date, minute) = shanghai(listing.generated_ms);
    let updated = format!("{} {:02}:{:02}", date, minute / 60, minute % 60);
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        public::html(&listing, &updated),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_percent_encoded() {
        assert_eq!(percent_encode("附件1_a b"), "%E9%99%84%E4%BB%B61_a%20b");
    }
}
