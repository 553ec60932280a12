//! The daily automatic self-test inside the agent: a task that sleeps until the
//! [`DailySchedule`](super::schedule::DailySchedule) is due, asks it whether to run (service
//! hours from the link's welcome, busy when a ticket is live), and runs the self-test without
//! its interactive steps. The record is filed as technician "自动巡检".

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::info;

use super::Options;
use super::schedule::{DailySchedule, Decision, SkipReason};
use super::service::{SelfTestService, StartError};
use crate::clock::now_ms;

/// The task wakes at least this often to notice wall-clock changes (NTP steps, suspend).
const RECHECK: Duration = Duration::from_secs(60);

/// Runs until `shutdown`; does nothing when `[selftest] daily_at` is empty.
pub async fn run(service: SelfTestService, shutdown: CancellationToken) {
    let Some(at) = service.config().selftest.daily_time() else {
        info!("daily self-test is off");
        return;
    };
    let mut schedule = DailySchedule::new(at, now_ms());
    info!(at = %at, "daily self-test scheduled");
    loop {
        let wait = u64::try_from(schedule.next_due_ms() - now_ms()).unwrap_or(0);
        let wait = Duration::from_millis(wait).min(RECHECK);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        let state = service.link_state();
        let hours = state.extension_point.as_ref().and_then(|p| p.hours.clone());
        let busy = service.serving() || service.view().borrow().running;
        match schedule.poll(now_ms(), hours.as_ref(), busy) {
            None => {}
            Some(Decision::Skip(reason)) => {
                info!(reason = reason.as_str(), "daily self-test skipped")
            }
            Some(Decision::Run) => match service.start(Options::automatic()) {
                Ok(run) => info!(run, "daily self-test started"),
                Err(e @ (StartError::Running | StartError::Serving { .. })) => {
                    info!(reason = SkipReason::Busy.as_str(), error = %e, "daily self-test skipped");
                }
                Err(e) => info!(error = %e, "daily self-test not started"),
            },
        }
    }
}
