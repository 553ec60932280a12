//! 好差评 storage: ended remote sessions (to bind late evaluations), evaluations with their
//! forwarding state, and the follow-up of bad reviews.
//!
//! Its own trait beside [`super::Store`]: the evaluation service and the supervisor routes are
//! its only users. [`SqliteStore`] implements it in the same database file
//! (`migrations/sqlite/0030_evaluations.sql`).
//!
//! An evaluation, its forwarding row and its follow-up item are written in one transaction, so
//! a stored bad review always has its follow-up. One evaluation per id (the kiosk's idempotency
//! key) and one per ticket (一次一评).

use async_trait::async_trait;
use protocol::control::EvaluationLevel;
use serde::{Deserialize, Serialize};

use super::{StoreError, StoreResult};
use crate::queue::Session;

/// An evaluation bound to the session that served its ticket, with the names of the time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvaluationRecord {
    pub id: String,
    /// 办件编号
    pub ticket_id: String,
    pub ticket_number: String,
    pub centre_id: String,
    pub centre_name: String,
    pub category_id: String,
    pub category_name: String,
    pub window_id: String,
    pub window_name: String,
    pub clerk_id: String,
    pub clerk_name: String,
    pub extension_point_id: String,
    pub extension_point_name: String,
    pub device_id: String,
    /// `None`: unrated (未评价).
    pub level: Option<EvaluationLevel>,
    pub reasons: Vec<String>,
    pub service_started_ms: i64,
    pub service_ended_ms: i64,
    pub evaluated_ms: i64,
    pub received_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardState {
    /// Not yet accepted by the 好差评 system; retried.
    Pending,
    Delivered,
    /// Gave up after the configured attempts or a permanent refusal (dead letter).
    Dead,
}

impl ForwardState {
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardState::Pending => "pending",
            ForwardState::Delivered => "delivered",
            ForwardState::Dead => "dead",
        }
    }

    fn parse(s: &str) -> StoreResult<Self> {
        Ok(match s {
            "pending" => ForwardState::Pending,
            "delivered" => ForwardState::Delivered,
            "dead" => ForwardState::Dead,
            other => return Err(StoreError::Corrupt(format!("forward state {other:?}"))),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forwarding {
    pub state: ForwardState,
    pub attempts: u32,
    pub next_ms: i64,
    /// The last failure, for supervisors (no personal information: status and a short reason).
    pub error: Option<String>,
    pub forwarded_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvaluation {
    #[serde(flatten)]
    pub record: EvaluationRecord,
    pub forwarding: Forwarding,
}

/// A new follow-up item's deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFollowUp {
    /// YYYY-MM-DD (Shanghai).
    pub due_date: String,
    /// The end of `due_date`.
    pub due_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowUpState {
    Open,
    Closed,
}

/// 差评回访: a bad review's follow-up item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUp {
    pub evaluation_id: String,
    pub centre_id: String,
    pub opened_ms: i64,
    pub due_date: String,
    pub due_ms: i64,
    pub state: FollowUpState,
    /// 回访时间
    pub visited_ms: Option<i64>,
    /// 核实结果
    pub verification: String,
    /// 整改措施
    pub rectification: String,
    /// 反馈
    pub feedback: String,
    pub closed_ms: Option<i64>,
    pub updated_by: Option<String>,
    pub updated_ms: Option<i64>,
}

/// What a supervisor records on a follow-up item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct FollowUpUpdate {
    pub visited_ms: Option<i64>,
    pub verification: String,
    pub rectification: String,
    pub feedback: String,
    /// Close the item (needs the visit time and all three texts).
    #[serde(default)]
    pub close: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUpFilter {
    Open,
    All,
}

/// The result of storing an evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertOutcome {
    Stored,
    /// An evaluation with this id was stored before (a repeat delivery), from this device.
    Duplicate {
        device_id: String,
    },
    /// The ticket already has an evaluation with another id.
    TicketEvaluated,
}

#[async_trait]
pub trait EvaluationStore: Send + Sync + 'static {
    // --- sessions --------------------------------------------------------------------------------
    /// Remembers an ended session (the latest one per ticket wins).
    async fn remember_session(&self, session: &Session, ended_ms: i64) -> StoreResult<()>;
    async fn ended_session(&self, ticket_id: &str) -> StoreResult<Option<(Session, i64)>>;
    async fn forget_sessions_before(&self, ended_before_ms: i64) -> StoreResult<u64>;

    // --- evaluations -------------------------------------------------------------------------
    async fn evaluation(&self, id: &str) -> StoreResult<Option<StoredEvaluation>>;
    /// Stores an evaluation, pending forwarding from `forward_next_ms`, with its follow-up.
    async fn insert_evaluation(
        &self,
        record: &EvaluationRecord,
        followup: Option<&NewFollowUp>,
        forward_next_ms: i64,
    ) -> StoreResult<InsertOutcome>;
    /// Evaluations of a centre evaluated in `[from_ms, to_ms)`, newest first, at most `limit`.
    async fn evaluations_between(
        &self,
        centre_id: &str,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<StoredEvaluation>>;

    // --- forwarding --------------------------------------------------------------------------
    /// Pending evaluations due at `now_ms`, oldest first.
    async fn due_forwards(&self, now_ms: i64, limit: u32) -> StoreResult<Vec<StoredEvaluation>>;
    /// When the next pending evaluation is due.
    async fn next_forward_ms(&self) -> StoreResult<Option<i64>>;
    async fn forward_delivered(&self, id: &str, attempts: u32, now_ms: i64) -> StoreResult<()>;
    /// A failed attempt: retry at `next_ms`, or a dead letter when `None`.
    async fn forward_failed(
        &self,
        id: &str,
        attempts: u32,
        next_ms: Option<i64>,
        error: &str,
    ) -> StoreResult<()>;
    async fn dead_letters(&self, centre_id: &str, limit: u32)
    -> StoreResult<Vec<StoredEvaluation>>;
    /// Puts a dead letter of the centre back in the queue; false when there is none with `id`.
    async fn requeue_dead_letter(
        &self,
        centre_id: &str,
        id: &str,
        now_ms: i64,
    ) -> StoreResult<bool>;

    // --- follow-ups --------------------------------------------------------------------------
    async fn followups(
        &self,
        centre_id: &str,
        filter: FollowUpFilter,
        limit: u32,
    ) -> StoreResult<Vec<(FollowUp, EvaluationRecord)>>;
    /// Records a supervisor's follow-up work, keeping every saved version in the history and
    /// a row in the audit trail. A closed follow-up is final.
    async fn update_followup(
        &self,
        centre_id: &str,
        evaluation_id: &str,
        update: &FollowUpUpdate,
        by: &str,
        now_ms: i64,
    ) -> StoreResult<FollowUpSaved>;
}

/// What [`EvaluationStore::update_followup`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum FollowUpSaved {
    Saved(Box<FollowUp>),
    /// The centre has no such follow-up.
    NotFound,
    /// It was closed before: nothing changed.
    AlreadyClosed,
}

macro_rules! evaluation_columns {
    () => {
        "id, ticket_id, ticket_number, centre_id, centre_name, category_id,
    category_name, window_id, window_name, clerk_id, clerk_name, extension_point_id,
    extension_point_name, device_id, level, reasons, service_started_ms, service_ended_ms,
    evaluated_ms, received_ms, forward_state, forward_attempts, forward_next_ms, forward_error,
    forwarded_ms"
    };
}

macro_rules! followup_columns {
    () => {
        "f.evaluation_id, f.centre_id, f.opened_ms, f.due_date, f.due_ms,
    f.state, f.visited_ms, f.verification, f.rectification, f.feedback, f.closed_ms, f.updated_by,
    f.updated_ms"
    };
}

mod postgres;
mod sqlite;
