//! Supervisors' 好差评 API, used by the supervisor page (`/supervisor`): satisfaction figures,
//! recent evaluations, bad-review follow-ups (回访, 核实, 整改, 反馈) and the dead letters of the
//! forwarding to the 好差评 system. Only staff with the `supervisor` role, and only for their
//! own centre.

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use protocol::hours::{Date, day_start};
use serde::{Deserialize, Serialize};

use super::auth::AuthClerk;
use super::error::ApiError;
use super::state::AppState;
use crate::domain::{Clerk, Role};
use crate::evaluation::stats::{self, Statistics};
use crate::evaluation::workdays::end_of;
use crate::store::evaluations::{
    EvaluationRecord, EvaluationStore, FollowUp, FollowUpFilter, FollowUpSaved, FollowUpState,
    FollowUpUpdate, StoredEvaluation,
};
use protocol::control::ErrorCode;

/// Evaluations read for one statistics request at most.
const STATS_LIMIT: u32 = 200_000;
const LIST_LIMIT: u32 = 500;
/// The longest text a supervisor may record in one follow-up field.
const MAX_TEXT: usize = 2000;
/// The longest period one statistics request may cover.
const MAX_DAYS: i64 = 400;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/supervisor/evaluations", get(evaluations))
        .route("/api/v1/supervisor/evaluations/stats", get(statistics))
        .route("/api/v1/supervisor/followups", get(followups))
        .route("/api/v1/supervisor/followups/{id}", put(update_followup))
        .route("/api/v1/supervisor/dead-letters", get(dead_letters))
        .route(
            "/api/v1/supervisor/dead-letters/{id}/retry",
            post(retry_dead_letter),
        )
}

/// A logged-in clerk with the supervisor role.
pub struct AuthSupervisor(pub Clerk);

impl FromRequestParts<AppState> for AuthSupervisor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let AuthClerk(clerk) = AuthClerk::from_request_parts(parts, state).await?;
        if clerk.has(Role::Supervisor) {
            Ok(AuthSupervisor(clerk))
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

fn store(state: &AppState) -> Result<std::sync::Arc<dyn EvaluationStore>, ApiError> {
    state.evaluations.store().ok_or(ApiError::Busy)
}

#[derive(Deserialize)]
pub struct Period {
    /// First day, YYYY-MM-DD (Shanghai); 30 days before `to` when absent.
    from: Option<String>,
    /// Last day, inclusive; today when absent.
    to: Option<String>,
}

impl Period {
    /// `[from_ms, to_ms)`.
    fn range(&self, now_ms: i64) -> Result<(String, String, i64, i64), ApiError> {
        let parse = |s: &str| {
            Date::parse(s).ok_or_else(|| {
                ApiError::BadRequest(format!("日期格式应为 YYYY-MM-DD / bad date {s:?}"))
            })
        };
        let to = match &self.to {
            Some(s) => parse(s)?,
            None => protocol::hours::shanghai(now_ms).0,
        };
        let from = match &self.from {
            Some(s) => parse(s)?,
            None => Date::from_days_since_epoch(to.days_since_epoch() - 29),
        };
        let days = to.days_since_epoch() - from.days_since_epoch();
        if !(0..MAX_DAYS).contains(&days) {
            return Err(ApiError::BadRequest(format!(
                "起止日期应在 {MAX_DAYS} 天之内且不颠倒 / the period must be 1–{MAX_DAYS} days"
            )));
        }
        Ok((
            from.to_string(),
            to.to_string(),
            day_start(from),
            end_of(to),
        ))
    }
}

#[derive(Serialize)]
pub struct StatisticsView {
    from: String,
    to: String,
    #[serde(flatten)]
    statistics: Statistics,
    /// True when more evaluations fell in the period than one request reads.
    truncated: bool,
}

async fn statistics(
    State(state): State<AppState>,
    AuthSupervisor(clerk): AuthSupervisor,
    Query(period): Query<Period>,
) -> Result<Json<StatisticsView>, ApiError> {
    let (from, to, from_ms, to_ms) = period.range(state.clock.now_ms())?;
    let rows = store(&state)?
        .evaluations_between(&clerk.centre_id, from_ms, to_ms, STATS_LIMIT)
        .await?;
    let truncated = rows.len() >= usize::try_from(STATS_LIMIT).unwrap_or(usize::MAX);
    let records: Vec<EvaluationRecord> = rows.into_iter().map(|e| e.record).collect();
    Ok(Json(StatisticsView {
        from,
        to,
        statistics: stats::compute(&records),
        truncated,
    }))
}

async fn evaluations(
    State(state): State<AppState>,
    AuthSupervisor(clerk): AuthSupervisor,
    Query(period): Query<Period>,
) -> Result<Json<Vec<StoredEvaluation>>, ApiError> {
    let (_, _, from_ms, to_ms) = period.range(state.clock.now_ms())?;
    Ok(Json(
        store(&state)?
            .evaluations_between(&clerk.centre_id, from_ms, to_ms, LIST_LIMIT)
            .await?,
    ))
}

#[derive(Deserialize)]
pub struct FollowUpQuery {
    /// `open` (default) or `all`.
    state: Option<String>,
}

#[derive(Serialize)]
pub struct FollowUpView {
    #[serde(flatten)]
    followup: FollowUp,
    /// Still open after its deadline.
    overdue: bool,
    evaluation: EvaluationRecord,
}

async fn followups(
    State(state): State<AppState>,
    AuthSupervisor(clerk): AuthSupervisor,
    Query(q): Query<FollowUpQuery>,
) -> Result<Json<Vec<FollowUpView>>, ApiError> {
    let filter = match q.state.as_deref() {
        None | Some("open") => FollowUpFilter::Open,
        Some("all") => FollowUpFilter::All,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "state 应为 open 或 all / state must be open or all, not {other:?}"
            )));
        }
    };
    let now = state.clock.now_ms();
    let items = store(&state)?
        .followups(&clerk.centre_id, filter, LIST_LIMIT)
        .await?;
    Ok(Json(
        items
            .into_iter()
            .map(|(followup, evaluation)| FollowUpView {
                overdue: followup.state == FollowUpState::Open && now >= followup.due_ms,
                followup,
                evaluation,
            })
            .collect(),
    ))
}

/// Checks what a supervisor wants to record.
pub fn check_update(u: &FollowUpUpdate, now_ms: i64) -> Result<(), ApiError> {
    for (name, text) in [
        ("核实结果 / verification", &u.verification),
        ("整改措施 / rectification", &u.rectification),
        ("反馈 / feedback", &u.feedback),
    ] {
        if text.chars().count() > MAX_TEXT {
            return Err(ApiError::BadRequest(format!(
                "{name} 不能超过 {MAX_TEXT} 字 / at most {MAX_TEXT} characters"
            )));
        }
    }
    if u.visited_ms.is_some_and(|v| v > now_ms + 60_000 || v < 0) {
        return Err(ApiError::BadRequest(
            "回访时间不能晚于现在 / the visit cannot be in the future".into(),
        ));
    }
    if u.close
        && (u.visited_ms.is_none()
            || u.verification.trim().is_empty()
            || u.rectification.trim().is_empty()
            || u.feedback.trim().is_empty())
    {
        return Err(ApiError::BadRequest(
            "办结前请填写回访时间、核实结果、整改措施和反馈 / to close, record the visit time, verification, rectification and feedback".into(),
        ));
    }
    Ok(())
}

async fn update_followup(
    State(state): State<AppState>,
    AuthSupervisor(clerk): AuthSupervisor,
    Path(id): Path<String>,
    Json(update): Json<FollowUpUpdate>,
) -> Result<Json<FollowUp>, ApiError> {
    let now = state.clock.now_ms();
    check_update(&update, now)?;
    match store(&state)?
        .update_followup(&clerk.centre_id, &id, &update, &clerk.id, now)
        .await?
    {
        FollowUpSaved::Saved(f) => Ok(Json(*f)),
        FollowUpSaved::NotFound => Err(ApiError::NotFound),
        FollowUpSaved::AlreadyClosed => Err(ApiError::Refused(
            ErrorCode::InvalidState,
            "回访已办结，不能再修改 / this follow-up is closed and can no longer be changed".into(),
        )),
    }
}

async fn dead_letters(
    State(state): State<AppState>,
    AuthSupervisor(clerk): AuthSupervisor,
) -> Result<Json<Vec<StoredEvaluation>>, ApiError> {
    Ok(Json(
        store(&state)?
            .dead_letters(&clerk.centre_id, LIST_LIMIT)
            .await?,
    ))
}

async fn retry_dead_letter(
    State(state): State<AppState>,
    AuthSupervisor(clerk): AuthSupervisor,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let now = state.clock.now_ms();
    if !store(&state)?
        .requeue_dead_letter(&clerk.centre_id, &id, now)
        .await?
    {
        return Err(ApiError::NotFound);
    }
    state.evaluations.wake_forwarder();
    Ok(Json(serde_json::json!({ "requeued": id })))
}
