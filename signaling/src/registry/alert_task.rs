//! The tokio driver around the sans-IO [`AlertEngine`] and [`Outbox`]: every
//! `alerts.check_every_secs` it reads the kiosks' health, stores raised and cleared alerts, and
//! posts them as JSON to `alerts.webhook_url` (when set), in order, retrying failures with
//! exponential backoff up to `alerts.max_attempts` times. Started by `relay serve`.

use std::collections::HashSet;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::Stats;
use super::alerts::{AlertEngine, AlertPolicy, AlertState, DeliveryCounts, DeliveryPolicy, Outbox};
use super::health::kiosk_health;
use crate::http::AppState;
use crate::store::registry::Scope;

/// The devices with a live kiosk connection right now.
pub fn online_kiosks(state: &AppState) -> HashSet<String> {
    state
        .switchboard
        .kiosks()
        .into_iter()
        .map(|(device, _)| device)
        .collect()
}

struct Webhook {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl Webhook {
    fn new(state: &AppState) -> Option<Self> {
        let cfg = &state.config.alerts;
        let url = cfg.webhook_url.clone().filter(|u| !u.is_empty())?;
        let token = match &cfg.webhook_token_file {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(t) => Some(t.trim().to_owned()),
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "cannot read the alert webhook token; sending without it");
                    None
                }
            },
            None => None,
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.request_timeout_secs))
            .build()
            .map_err(|e| warn!(error = %e, "cannot build the alert webhook client"))
            .ok()?;
        Some(Self { client, url, token })
    }

    async fn post(&self, body: &super::alerts::Alert) -> bool {
        let mut request = self.client.post(&self.url).json(body);
        if let Some(t) = &self.token {
            request = request.bearer_auth(t);
        }
        match request.send().await {
            Ok(r) if r.status().is_success() => true,
            Ok(r) => {
                warn!(status = %r.status(), key = %body.key, "alert webhook refused the alert");
                false
            }
            Err(e) => {
                warn!(error = %e, key = %body.key, "alert webhook unreachable");
                false
            }
        }
    }
}

/// Starts the alert task on `tasks`; it ends when the relay shuts down.
pub fn spawn(state: &AppState, tasks: &TaskTracker) -> JoinHandle<()> {
    let state = state.clone();
    tasks.spawn(async move { run(state).await })
}

fn sync_counts(stats: &Stats, seen: &mut DeliveryCounts, now: DeliveryCounts) {
    Stats::add(&stats.webhook_delivered, now.delivered - seen.delivered);
    Stats::add(
        &stats.webhook_failed_attempts,
        (now.retried + now.gave_up) - (seen.retried + seen.gave_up),
    );
    Stats::add(&stats.webhook_gave_up, now.gave_up - seen.gave_up);
    Stats::add(&stats.webhook_dropped, now.dropped - seen.dropped);
    *seen = now;
}

async fn run(state: AppState) {
    let cfg = state.config.alerts.clone();
    let registry = state.registry.clone();
    let open = match registry.store.open_alerts().await {
        Ok(a) => a,
        Err(e) => {
            warn!(error = %e, "cannot load open alerts; they may be raised again");
            Vec::new()
        }
    };
    let mut engine = AlertEngine::new(
        AlertPolicy {
            offline_after_ms: i64::try_from(cfg.offline_after_secs.saturating_mul(1000))
                .unwrap_or(i64::MAX),
            watch_since_ms: state.clock.now_ms(),
        },
        open,
    );
    let secs = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
    let mut outbox = Outbox::new(DeliveryPolicy {
        capacity: cfg.queue_capacity,
        max_attempts: cfg.max_attempts,
        retry_initial_ms: secs(cfg.retry_initial_secs),
        retry_max_ms: secs(cfg.retry_max_secs),
    });
    let webhook = Webhook::new(&state);
    let mut seen = DeliveryCounts::default();
    let mut tick = tokio::time::interval(Duration::from_secs(cfg.check_every_secs.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let retry_in = outbox
            .next_due_ms()
            .map(|due| u64::try_from(due - state.clock.now_ms()).unwrap_or(0));
        let check = tokio::select! {
            () = state.shutdown.cancelled() => return,
            _ = tick.tick() => true,
            () = tokio::time::sleep(Duration::from_millis(retry_in.unwrap_or(3_600_000))), if retry_in.is_some() => false,
        };
        let now = state.clock.now_ms();
        if check {
            match registry.store.health_data(&Scope::All).await {
                Ok(data) => {
                    let kiosks = kiosk_health(&data, &online_kiosks(&state));
                    for alert in engine.evaluate(now, &kiosks) {
                        match alert.state {
                            AlertState::Firing => {
                                Stats::inc(&registry.stats.alerts_raised);
                                info!(key = %alert.key, "health alert raised");
                            }
                            AlertState::Resolved => {
                                Stats::inc(&registry.stats.alerts_cleared);
                                info!(key = %alert.key, "health alert cleared");
                            }
                        }
                        if let Err(e) = registry.store.record_alert(&alert).await {
                            warn!(error = %e, "cannot store a health alert");
                        }
                        if webhook.is_some() {
                            outbox.push(alert, now);
                        }
                    }
                }
                Err(e) => warn!(error = %e, "cannot read kiosk health for alerts"),
            }
        }
        if let Some(hook) = &webhook {
            // At most one pass over the queue per wake-up, so a dead receiver cannot spin.
            for _ in 0..outbox.len() {
                let Some((id, alert)) = outbox.due(state.clock.now_ms()) else {
                    break;
                };
                let alert = alert.clone();
                if hook.post(&alert).await {
                    outbox.delivered(id);
                } else if !outbox.failed(id, state.clock.now_ms()) {
                    warn!(key = %alert.key, "alert given up after the last retry");
                }
            }
            sync_counts(&registry.stats, &mut seen, outbox.counts);
        }
    }
}
