//! Forwarding stored evaluations to the 好差评 system: one JSON POST per evaluation, with the
//! evaluation id as `Idempotency-Key`, retried with exponential backoff until the system
//! accepts it or the attempts run out (then it is a dead letter that supervisors see and may
//! send again).
//!
//! The payload mapping and the retry decisions are pure functions ([`payload`],
//! [`classify`], [`retry_delay_ms`]); [`run`] is the thin task around them. The payload
//! carries no resident's personal information, and failures are logged without the body.

use std::sync::Arc;
use std::time::Duration;

use protocol::hours::shanghai;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{EvaluationMetrics, inc};
use crate::clock::Clock;
use crate::store::evaluations::{EvaluationRecord, EvaluationStore, StoredEvaluation};

/// Evaluations sent per pass before the next look at the store.
const BATCH: u32 = 20;
/// The longest the task sleeps without looking at the store (a change of the clock, an
/// evaluation requeued by another relay node).
const IDLE_LOOK: Duration = Duration::from_secs(60);

/// The 好差评 system's view of one evaluation (field mapping: README, "好差评 forwarding").
pub fn payload(r: &EvaluationRecord) -> Value {
    let reasons: Vec<Value> = r
        .reasons
        .iter()
        .map(|id| {
            let name = protocol::control::EVALUATION_REASONS
                .iter()
                .find(|(r, _, _)| r == id)
                .map_or("", |(_, zh, _)| zh);
            json!({ "code": id, "name": name })
        })
        .collect();
    json!({
        "evaluation_id": r.id,
        "case_number": r.ticket_id,
        "ticket_number": r.ticket_number,
        "service": { "code": r.category_id, "name": r.category_name },
        "centre": { "code": r.centre_id, "name": r.centre_name },
        "window": { "code": r.window_id, "name": r.window_name },
        "staff": { "code": r.clerk_id, "name": r.clerk_name },
        "extension_point": { "code": r.extension_point_id, "name": r.extension_point_name },
        "device_id": r.device_id,
        "channel": "remote_kiosk",
        "rated": r.level.is_some(),
        "level": r.level.map(|l| l.score()),
        "level_name": r.level.map_or("未评价", |l| l.name_zh()),
        "bad_review": r.level.is_some_and(|l| l.is_bad()),
        "reasons": reasons,
        "evaluated_at": rfc3339_shanghai(r.evaluated_ms),
        "service_started_at": rfc3339_shanghai(r.service_started_ms),
        "service_ended_at": rfc3339_shanghai(r.service_ended_ms),
    })
}

/// `2026-11-23T10:05:00+08:00`.
pub fn rfc3339_shanghai(unix_ms: i64) -> String {
    let (date, minute) = shanghai(unix_ms);
    let second = (unix_ms + 8 * 3_600_000).rem_euclid(60_000) / 1000;
    format!(
        "{date}T{:02}:{:02}:{second:02}+08:00",
        minute / 60,
        minute % 60
    )
}

/// What an answer of the 好差评 system means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Try again later (server trouble, rate limit, timeout).
    Retry,
    /// The system refuses this evaluation; retrying will not help.
    Refused,
}

pub fn classify(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        // The idempotency key is already known: an earlier attempt got through.
        409 => Outcome::Delivered,
        408 | 425 | 429 | 500..=599 => Outcome::Retry,
        _ => Outcome::Refused,
    }
}

/// The wait before attempt `attempts + 1` (after `attempts` failures): base × 2^(n−1), capped.
pub fn retry_delay_ms(attempts: u32, base_secs: u64, max_secs: u64) -> i64 {
    let exp = attempts.saturating_sub(1).min(30);
    let secs = base_secs.saturating_mul(1u64 << exp).min(max_secs);
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

pub(crate) struct Forwarder {
    pub store: Arc<dyn EvaluationStore>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<EvaluationMetrics>,
    pub wake: Arc<Notify>,
    pub shutdown: CancellationToken,
    pub url: String,
    pub token: Option<String>,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub retry_base_secs: u64,
    pub retry_max_secs: u64,
}

impl Forwarder {
    pub(crate) async fn run(self) {
        let client = match reqwest::Client::builder().timeout(self.timeout).build() {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "cannot build the 好差评 HTTP client; evaluations are not forwarded");
                return;
            }
        };
        info!("forwarding evaluations to the 好差评 system");
        loop {
            if self.shutdown.is_cancelled() {
                return;
            }
            let now = self.clock.now_ms();
            let due = match self.store.due_forwards(now, BATCH).await {
                Ok(d) => d,
                Err(e) => {
                    warn!(error = %e, "reading evaluations to forward failed");
                    Vec::new()
                }
            };
            let full = u32::try_from(due.len()).unwrap_or(u32::MAX) >= BATCH;
            for e in due {
                if self.shutdown.is_cancelled() {
                    return;
                }
                self.attempt(&client, e).await;
            }
            if full {
                continue;
            }
            let next = self.store.next_forward_ms().await.ok().flatten();
            let now = self.clock.now_ms();
            let wait = next.map_or(IDLE_LOOK, |n| {
                Duration::from_millis(u64::try_from((n - now).max(0)).unwrap_or(0)).min(IDLE_LOOK)
            });
            if wait.is_zero() {
                // Something is due already (a failed store update); do not spin.
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn attempt(&self, client: &reqwest::Client, e: StoredEvaluation) {
        let attempts = e.forwarding.attempts.saturating_add(1);
        let mut request = client
            .post(&self.url)
            .header("Idempotency-Key", &e.record.id)
            .json(&payload(&e.record));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let (outcome, detail) = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (classify(status), format!("HTTP {status}"))
            }
            Err(err) if err.is_timeout() => (Outcome::Retry, "timed out".to_owned()),
            Err(err) if err.is_connect() => (Outcome::Retry, "cannot connect".to_owned()),
            Err(_) => (Outcome::Retry, "request failed".to_owned()),
        };
        let now = self.clock.now_ms();
        let stored = match outcome {
            Outcome::Delivered => {
                inc(&self.metrics.forwarded);
                info!(evaluation = %e.record.id, attempts, "evaluation forwarded");
                self.store
                    .forward_delivered(&e.record.id, attempts, now)
                    .await
            }
            Outcome::Retry if attempts < self.max_attempts => {
                inc(&self.metrics.forward_failures);
                let next =
                    now + retry_delay_ms(attempts, self.retry_base_secs, self.retry_max_secs);
                warn!(evaluation = %e.record.id, attempts, %detail, "forwarding failed; will retry");
                self.store
                    .forward_failed(&e.record.id, attempts, Some(next), &detail)
                    .await
            }
            Outcome::Retry | Outcome::Refused => {
                inc(&self.metrics.forward_failures);
                inc(&self.metrics.dead_letters);
                warn!(evaluation = %e.record.id, attempts, %detail, "forwarding given up: dead letter");
                self.store
                    .forward_failed(&e.record.id, attempts, None, &detail)
                    .await
            }
        };
        if let Err(err) = stored {
            warn!(error = %err, evaluation = %e.record.id, "recording the forwarding result failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use protocol::control::EvaluationLevel;

    use super::*;

    fn record() -> EvaluationRecord {
        EvaluationRecord {
            id: "k1-abc".into(),
            ticket_id: "c1-20780-7".into(),
            ticket_number: "YA007".into(),
            centre_id: "c1".into(),
            centre_name: "示范中心".into(),
            category_id: "social".into(),
            category_name: "社会保障".into(),
            window_id: "w8".into(),
            window_name: "8号远程虚拟窗口".into(),
            clerk_id: "clerk-1".into(),
            clerk_name: "王敏".into(),
            extension_point_id: "p1".into(),
            extension_point_name: "示范居委会延伸服务点".into(),
            device_id: "kiosk-01".into(),
            level: Some(EvaluationLevel::Dissatisfied),
            reasons: vec!["too_slow".into()],
            // 2026-11-23 10:00:00 Shanghai
            service_started_ms: 1_795_399_200_000,
            service_ended_ms: 1_795_399_500_000,
            evaluated_ms: 1_795_399_530_000,
            received_ms: 1_795_399_531_000,
        }
    }

    #[test]
    fn the_payload_maps_every_binding() {
        let p = payload(&record());
        assert_eq!(p["evaluation_id"], "k1-abc");
        assert_eq!(p["case_number"], "c1-20780-7");
        assert_eq!(p["window"]["name"], "8号远程虚拟窗口");
        assert_eq!(p["staff"]["code"], "clerk-1");
        assert_eq!(p["extension_point"]["code"], "p1");
        assert_eq!(p["device_id"], "kiosk-01");
        assert_eq!(p["level"], 2);
        assert_eq!(p["level_name"], "不满意");
        assert_eq!(p["bad_review"], true);
        assert_eq!(p["reasons"][0]["name"], "等候或办理时间太长");
        assert_eq!(p["service_started_at"], "2026-11-23T10:00:00+08:00");
        assert_eq!(p["evaluated_at"], "2026-11-23T10:05:30+08:00");
        let mut unrated = record();
        unrated.level = None;
        unrated.reasons.clear();
        let p = payload(&unrated);
        assert_eq!(p["rated"], false);
        assert_eq!(p["level"], Value::Null);
        assert_eq!(p["level_name"], "未评价");
    }

    #[test]
    fn answers_are_classified_and_retries_back_off() {
        assert_eq!(classify(201), Outcome::Delivered);
        assert_eq!(classify(409), Outcome::Delivered);
        assert_eq!(classify(503), Outcome::Retry);
        assert_eq!(classify(429), Outcome::Retry);
        assert_eq!(classify(400), Outcome::Refused);
        assert_eq!(retry_delay_ms(1, 5, 3600), 5_000);
        assert_eq!(retry_delay_ms(2, 5, 3600), 10_000);
        assert_eq!(retry_delay_ms(4, 5, 3600), 40_000);
        assert_eq!(retry_delay_ms(40, 5, 3600), 3_600_000);
    }
}
