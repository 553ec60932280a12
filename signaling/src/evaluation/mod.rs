//! 好差评: residents' evaluations of served remote tickets.
//!
//! - The queue tells [`Evaluations`] (a [`SessionObserver`]) about every ended session; it
//!   keeps the recent ones per device in memory ([`sessions`]) and in the store, so an
//!   evaluation that the kiosk's outbox delivers late is still bound to the session that
//!   served the ticket: centre, window, clerk, category, extension point and device.
//! - [`Evaluations::receive`] checks a kiosk's evaluation, binds it and stores it once per
//!   idempotency key (and once per ticket), opening a follow-up item for a bad review with a
//!   deadline in working days ([`workdays`]).
//! - [`forward`] sends stored evaluations to the 好差评 system with retries; what cannot be
//!   delivered becomes a dead letter for supervisors.
//! - [`stats`] computes satisfaction figures for the supervisor page.
//!
//! Like the media service, it is created idle with the HTTP state (so the queue's observers
//! include it from the start) and [`Evaluations::start`]ed by the binary with its store.
//! Until then evaluations are answered with a retryable error; the kiosk keeps them.

pub mod config;
pub mod forward;
pub mod sessions;
pub mod stats;
pub mod workdays;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use protocol::control::{ErrorBody, ErrorCode, KioskEvaluation, is_evaluation_reason};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::clock::Clock;
use crate::config::Config;
use crate::domain::Device;
use crate::queue::{Session, SessionChange};
use crate::session::SessionObserver;
use crate::store::Store;
use crate::store::evaluations::{EvaluationRecord, EvaluationStore, InsertOutcome, NewFollowUp};

use self::sessions::EndedSessions;
use self::workdays::WorkCalendar;

/// Ended sessions waiting to be written to the store.
const PERSIST_BACKLOG: usize = 1024;

#[derive(Debug, Default)]
pub struct EvaluationMetrics {
    pub received: AtomicU64,
    pub duplicates: AtomicU64,
    pub refused: AtomicU64,
    pub forwarded: AtomicU64,
    pub forward_failures: AtomicU64,
    pub dead_letters: AtomicU64,
    /// Ended sessions not written to the store because its writer fell behind.
    pub sessions_dropped: AtomicU64,
}

pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl EvaluationMetrics {
    /// (name, help, value) of each counter, for `/metrics`.
    pub fn snapshot(&self) -> Vec<(&'static str, &'static str, u64)> {
        let v = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            (
                "evaluations_received",
                "Evaluations stored from kiosks",
                v(&self.received),
            ),
            (
                "evaluations_duplicates",
                "Repeated deliveries of a stored evaluation id",
                v(&self.duplicates),
            ),
            (
                "evaluations_refused",
                "Evaluations refused (bad input, unknown ticket, not stored)",
                v(&self.refused),
            ),
            (
                "evaluations_forwarded",
                "Evaluations accepted by the 好差评 system",
                v(&self.forwarded),
            ),
            (
                "evaluations_forward_failures",
                "Failed attempts to forward an evaluation",
                v(&self.forward_failures),
            ),
            (
                "evaluations_dead_letters",
                "Evaluations given up after all attempts",
                v(&self.dead_letters),
            ),
            (
                "evaluations_sessions_dropped",
                "Ended sessions not written because the writer was behind",
                v(&self.sessions_dropped),
            ),
        ]
    }
}

/// What [`Evaluations::start`] needs from the rest of the relay.
pub struct EvaluationDeps {
    pub config: Arc<Config>,
    pub store: Arc<dyn EvaluationStore>,
    /// For the names of windows, clerks, categories, extension points and centres.
    pub main: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// The evaluation counters join its `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    pub shutdown: CancellationToken,
    /// Where its background tasks are spawned (the relay waits for them at shutdown).
    pub tasks: tokio_util::task::TaskTracker,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid setting {0}: {1}")]
    Config(&'static str, String),
    #[error("cannot read evaluation.token_file {path}: {detail}")]
    Token { path: String, detail: String },
    #[error("the evaluation service is already running")]
    AlreadyRunning,
}

struct Running {
    store: Arc<dyn EvaluationStore>,
    main: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    calendar: WorkCalendar,
    followup_days: u32,
    persist: mpsc::Sender<(Session, i64)>,
    wake: Arc<Notify>,
}

/// See the module documentation. One per relay.
pub struct Evaluations {
    memory: Mutex<EndedSessions>,
    running: OnceLock<Running>,
    pub metrics: Arc<EvaluationMetrics>,
}

impl Default for Evaluations {
    fn default() -> Self {
        Self::new()
    }
}

fn refuse(code: ErrorCode, message: &str) -> ErrorBody {
    ErrorBody {
        code,
        message: message.to_owned(),
    }
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks what the kiosk sent, before anything is looked up.
pub fn check(e: &KioskEvaluation) -> Result<(), ErrorBody> {
    let bad = |m: &str| Err(refuse(ErrorCode::BadMessage, m));
    if !valid_id(&e.evaluation_id) {
        return bad("evaluation_id must be 1–64 characters of A-Z a-z 0-9 - _");
    }
    if e.ticket_id.is_empty() || e.ticket_id.len() > 128 {
        return bad("ticket_id must be 1–128 characters");
    }
    if e.reasons.len() > protocol::control::EVALUATION_REASONS.len()
        || e.reasons.iter().any(|r| !is_evaluation_reason(r))
    {
        return bad("unknown evaluation reason");
    }
    let mut unique = e.reasons.clone();
    unique.sort();
    unique.dedup();
    if unique.len() != e.reasons.len() {
        return bad("a reason is given twice");
    }
    match e.level {
        Some(level) if level.is_bad() && e.reasons.is_empty() => {
            bad("a bad review needs at least one reason")
        }
        Some(level) if !level.is_bad() && !e.reasons.is_empty() => {
            bad("reasons are only given with a bad review")
        }
        None if !e.reasons.is_empty() => bad("an unrated evaluation has no reasons"),
        _ => Ok(()),
    }
}

impl Evaluations {
    pub fn new() -> Self {
        Self {
            memory: Mutex::new(EndedSessions::default()),
            running: OnceLock::new(),
            metrics: Arc::new(EvaluationMetrics::default()),
        }
    }

    fn memory(&self) -> MutexGuard<'_, EndedSessions> {
        // Plain data: a panic elsewhere while holding it leaves it usable.
        self.memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The store, once started (for the supervisor routes).
    pub fn store(&self) -> Option<Arc<dyn EvaluationStore>> {
        self.running.get().map(|r| r.store.clone())
    }

    /// Starts writing ended sessions to the store and forwarding evaluations.
    pub fn start(&self, deps: EvaluationDeps) -> Result<(), StartError> {
        let section = &deps.config.evaluation;
        section.check().map_err(|(k, m)| StartError::Config(k, m))?;
        let calendar = section
            .calendar()
            .map_err(|(k, m)| StartError::Config(k, m))?;
        let token = match &section.token_file {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| StartError::Token {
                    path: path.display().to_string(),
                    detail: e.to_string(),
                })?;
                Some(text.trim().to_owned()).filter(|t| !t.is_empty())
            }
        };
        let (persist, persist_rx) = mpsc::channel(PERSIST_BACKLOG);
        let wake = Arc::new(Notify::new());
        let running = Running {
            store: deps.store.clone(),
            main: deps.main.clone(),
            clock: deps.clock.clone(),
            calendar,
            followup_days: section.followup_working_days,
            persist,
            wake: wake.clone(),
        };
        self.running
            .set(running)
            .map_err(|_| StartError::AlreadyRunning)?;
        let counters = self.metrics.clone();
        deps.metrics
            .register_collector(crate::metrics::SnapshotCounters::new(
                "evaluation counters",
                move || counters.snapshot(),
            ));
        deps.tasks.spawn(persist_sessions(
            deps.store.clone(),
            deps.clock.clone(),
            section.session_memory_secs,
            persist_rx,
            deps.shutdown.clone(),
        ));
        if section.forward_url.is_empty() {
            warn!("evaluation.forward_url is not set: evaluations are stored but not forwarded");
        } else {
            let forwarder = forward::Forwarder {
                store: deps.store.clone(),
                clock: deps.clock.clone(),
                metrics: self.metrics.clone(),
                wake,
                shutdown: deps.shutdown.clone(),
                url: section.forward_url.clone(),
                token,
                timeout: Duration::from_secs(section.request_timeout_secs),
                max_attempts: section.max_attempts,
                retry_base_secs: section.retry_base_secs,
                retry_max_secs: section.retry_max_secs,
            };
            deps.tasks.spawn(forwarder.run());
        }
        Ok(())
    }

    /// Asks the forwarder to look at the store now (after an evaluation was requeued).
    pub fn wake_forwarder(&self) {
        if let Some(r) = self.running.get() {
            r.wake.notify_one();
        }
    }

    /// Stores a kiosk's evaluation. `Ok(true)` when it had been stored before (a repeat of the
    /// same idempotency key). Errors are answers for the kiosk: `internal` and `timeout` are
    /// worth retrying; the others are final.
    pub async fn receive(&self, device: &Device, e: KioskEvaluation) -> Result<bool, ErrorBody> {
        let result = self.receive_inner(device, e).await;
        match &result {
            Ok(true) => inc(&self.metrics.duplicates),
            Ok(false) => inc(&self.metrics.received),
            Err(_) => inc(&self.metrics.refused),
        }
        result
    }

    async fn receive_inner(&self, device: &Device, e: KioskEvaluation) -> Result<bool, ErrorBody> {
        check(&e)?;
        let unavailable = || {
            refuse(
                ErrorCode::Internal,
                "暂时无法保存评价，稍后自动重试 / cannot store the evaluation now; it is retried",
            )
        };
        let Some(run) = self.running.get() else {
            return Err(unavailable());
        };
        let store_failed = |err: crate::store::StoreError| {
            warn!(error = %err, "evaluation store failed");
            unavailable()
        };
        let not_yours = || {
            refuse(
                ErrorCode::Forbidden,
                "该评价不属于本终端 / the evaluation belongs to another device",
            )
        };
        if let Some(existing) = run
            .store
            .evaluation(&e.evaluation_id)
            .await
            .map_err(store_failed)?
        {
            return if existing.record.device_id == device.id {
                Ok(true)
            } else {
                Err(not_yours())
            };
        }
        let remembered = self.memory().find(&device.id, &e.ticket_id);
        let found = match remembered {
            Some(s) => Some(s),
            None => run
                .store
                .ended_session(&e.ticket_id)
                .await
                .map_err(store_failed)?
                .filter(|(s, _)| s.device_id == device.id),
        };
        let Some((session, ended_ms)) = found.filter(|(s, _)| s.centre_id == device.centre_id)
        else {
            return Err(refuse(
                ErrorCode::NotFound,
                "未找到该办件在本终端的服务记录 / no service of this ticket at this device",
            ));
        };
        let now = run.clock.now_ms();
        let record = self
            .bind(run, &session, ended_ms, &e, now)
            .await
            .map_err(store_failed)?;
        let followup = record.level.filter(|l| l.is_bad()).map(|_| {
            let (date, due_ms) = run.calendar.deadline(now, run.followup_days);
            NewFollowUp {
                due_date: date.to_string(),
                due_ms,
            }
        });
        match run
            .store
            .insert_evaluation(&record, followup.as_ref(), now)
            .await
            .map_err(store_failed)?
        {
            InsertOutcome::Stored => {
                info!(
                    evaluation = %record.id,
                    ticket = %record.ticket_number,
                    level = record.level.map_or(0, |l| l.score()),
                    "evaluation stored"
                );
                run.wake.notify_one();
                Ok(false)
            }
            InsertOutcome::Duplicate { device_id } if device_id == device.id => Ok(true),
            InsertOutcome::Duplicate { .. } => Err(not_yours()),
            InsertOutcome::TicketEvaluated => Err(refuse(
                ErrorCode::InvalidState,
                "该办件已经评价过 / this ticket has already been evaluated",
            )),
        }
    }

    /// The evaluation with the names of the session's window, clerk, category, point, centre.
    async fn bind(
        &self,
        run: &Running,
        s: &Session,
        ended_ms: i64,
        e: &KioskEvaluation,
        now: i64,
    ) -> Result<EvaluationRecord, crate::store::StoreError> {
        let main = &run.main;
        let centre_name = main.centre(&s.centre_id).await?.map(|c| c.name);
        let window_name = main
            .windows(&s.centre_id)
            .await?
            .into_iter()
            .find(|w| w.id == s.window_id)
            .map(|w| w.name);
        let category_name = main
            .categories(&s.centre_id)
            .await?
            .into_iter()
            .find(|c| c.id == s.category_id)
            .map(|c| c.name);
        let clerk_name = main.clerk(&s.clerk_id).await?.map(|c| c.display_name);
        let point_id = s.extension_point_id.clone().unwrap_or_default();
        let point_name = match &s.extension_point_id {
            Some(id) => main.extension_point(id).await?.map(|p| p.name),
            None => None,
        };
        let or_id = |name: Option<String>, id: &str| name.unwrap_or_else(|| id.to_owned());
        Ok(EvaluationRecord {
            id: e.evaluation_id.clone(),
            ticket_id: s.ticket_id.clone(),
            ticket_number: s.ticket_number.clone(),
            centre_id: s.centre_id.clone(),
            centre_name: or_id(centre_name, &s.centre_id),
            category_id: s.category_id.clone(),
            category_name: or_id(category_name, &s.category_id),
            window_id: s.window_id.clone(),
            window_name: or_id(window_name, &s.window_id),
            clerk_id: s.clerk_id.clone(),
            clerk_name: or_id(clerk_name, &s.clerk_id),
            extension_point_id: point_id.clone(),
            extension_point_name: or_id(point_name, &point_id),
            device_id: s.device_id.clone(),
            level: e.level,
            reasons: e.reasons.clone(),
            service_started_ms: s.started_ms,
            service_ended_ms: ended_ms,
            // The kiosk's clock is corrected by the relay's, but bound it all the same: an
            // evaluation is made after its service and before it arrives.
            evaluated_ms: e.evaluated_ms.clamp(ended_ms, now.max(ended_ms)),
            received_ms: now,
        })
    }
}

impl SessionObserver for Evaluations {
    fn session_changed(&self, change: &SessionChange) {
        let SessionChange::Ended { session, ended_ms } = change else {
            return;
        };
        self.memory().remember(session.clone(), *ended_ms);
        if let Some(run) = self.running.get()
            && run.persist.try_send((session.clone(), *ended_ms)).is_err()
        {
            inc(&self.metrics.sessions_dropped);
            warn!("ended session not stored: the writer is behind (kept in memory)");
        }
    }
}

/// Writes ended sessions to the store, and hourly forgets those older than `memory_secs`.
async fn persist_sessions(
    store: Arc<dyn EvaluationStore>,
    clock: Arc<dyn Clock>,
    memory_secs: u64,
    mut rx: mpsc::Receiver<(Session, i64)>,
    shutdown: CancellationToken,
) {
    let memory_ms = i64::try_from(memory_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let mut purge = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = purge.tick() => {
                if let Err(e) = store.forget_sessions_before(clock.now_ms().saturating_sub(memory_ms)).await {
                    warn!(error = %e, "forgetting old sessions failed");
                }
            }
            next = rx.recv() => {
                let Some((session, ended_ms)) = next else { return };
                if let Err(e) = store.remember_session(&session, ended_ms).await {
                    warn!(error = %e, "storing an ended session failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use protocol::control::EvaluationLevel;

    use super::*;

    fn evaluation(level: Option<EvaluationLevel>, reasons: &[&str]) -> KioskEvaluation {
        KioskEvaluation {
            evaluation_id: "k1-0001".into(),
            ticket_id: "t1".into(),
            level,
            reasons: reasons.iter().map(|r| (*r).to_owned()).collect(),
            evaluated_ms: 0,
        }
    }

    #[test]
    fn bad_reviews_need_reasons_and_only_they_have_them() {
        use EvaluationLevel::*;
        assert!(check(&evaluation(Some(VerySatisfied), &[])).is_ok());
        assert!(check(&evaluation(None, &[])).is_ok());
        assert!(check(&evaluation(Some(Dissatisfied), &["too_slow"])).is_ok());
        for bad in [
            evaluation(Some(Dissatisfied), &[]),
            evaluation(Some(VeryDissatisfied), &["made_up"]),
            evaluation(Some(VeryDissatisfied), &["other", "other"]),
            evaluation(Some(Satisfied), &["too_slow"]),
            evaluation(None, &["too_slow"]),
        ] {
            let e = check(&bad).expect_err("refused");
            assert_eq!(e.code, ErrorCode::BadMessage);
        }
        let mut e = evaluation(None, &[]);
        e.evaluation_id = "has space".into();
        assert!(check(&e).is_err());
        e.evaluation_id = "x".repeat(65);
        assert!(check(&e).is_err());
    }
}
