//! The relay assembled in one place: [`Relay::start`] builds every service from the
//! configuration and the stores, starts every background task under one [`TaskTracker`], and
//! serves HTTP on listeners the caller bound. `main.rs`, the tests, the benchmarks and the load
//! generator all start the relay through it, so they run the production wiring.
//!
//! Shutdown, in order ([`Relay::stop`] or a cancelled [`Relay::shutdown_token`]): the HTTP
//! listeners stop taking connections and open ones close politely within the grace period
//! (`server.shutdown_grace_secs`); then every tracked task — the switchboard's deadlines, media
//! reconcile and recordings' retention, 好差评 persistence and forwarding, registry alerts, the
//! login purge — sees the same token and ends; the relay waits for them, bounded by the same
//! grace. Queue tasks are not tracked: every change they make is committed before it is
//! applied, so they hold nothing to flush.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::clock::Clock;
use crate::config::{Config, StoreConfig};
use crate::evaluation::{EvaluationDeps, Evaluations};
use crate::http::{self, AppState, Listeners};
use crate::media::{MediaDeps, MediaService};
use crate::metrics::{Metrics, SnapshotCounters};
use crate::queue::QueueHub;
use crate::registry::Registry;
use crate::registry::divisions::Divisions;
use crate::session::{Observers, SessionObserver, Switchboard};
use crate::store::Store;
use crate::store::appointments::AppointmentStore;
use crate::store::evaluations::EvaluationStore;
use crate::store::postgres::PgStore;
use crate::store::recordings::RecordingStore;
use crate::store::registry::RegistryStore;
use crate::store::sqlite::SqliteStore;

/// How often expired logins are purged from the store.
const LOGIN_PURGE_EVERY: Duration = Duration::from_secs(3600);

/// The stores the relay's services use: all of them on one database, the embedded SQLite file
/// or PostgreSQL (`store.url`).
#[derive(Clone)]
pub struct Stores {
    pub main: Arc<dyn Store>,
    pub recordings: Arc<dyn RecordingStore>,
    pub evaluations: Arc<dyn EvaluationStore>,
    pub registry: Arc<dyn RegistryStore>,
    /// The database the audit trail is kept in ([`crate::audit`]).
    pub audit: crate::audit::Db,
    /// Staff profiles (岗位、工号、照片) shown to residents.
    pub staff: Arc<dyn crate::store::staff_profile::StaffProfileStore>,
    /// Remote appointments (预约).
    pub appointments: Arc<dyn AppointmentStore>,
}

impl Stores {
    /// Every store on one SQLite database (the embedded default).
    pub fn sqlite(store: &SqliteStore) -> Self {
        Self {
            main: Arc::new(store.clone()),
            recordings: Arc::new(store.clone()),
            evaluations: Arc::new(store.clone()),
            registry: Arc::new(store.clone()),
            audit: store.pool().clone().into(),
            staff: Arc::new(store.clone()),
            appointments: Arc::new(store.clone()),
        }
    }

    /// Every store on one PostgreSQL database.
    pub fn postgres(store: &PgStore) -> Self {
        Self {
            main: Arc::new(store.clone()),
            recordings: Arc::new(store.clone()),
            evaluations: Arc::new(store.clone()),
            registry: Arc::new(store.clone()),
            audit: store.pool().clone().into(),
            staff: Arc::new(store.clone()),
            appointments: Arc::new(store.clone()),
        }
    }

    /// The audit trail kept in the same database as the stores.
    pub fn trail(&self, clock: Arc<dyn Clock>) -> crate::audit::Trail {
        crate::audit::Trail::new(self.audit.clone(), clock)
    }

    /// Opens the database `[store]` names (PostgreSQL when `url` is set, else SQLite in
    /// `data_dir`) and brings its schema up to date.
    pub async fn open(config: &StoreConfig) -> Result<Self, crate::store::StoreError> {
        Ok(match &config.url {
            Some(url) => Self::postgres(&PgStore::connect(url, config.durability).await?),
            None => {
                Self::sqlite(&SqliteStore::open_with(&config.data_dir, config.durability).await?)
            }
        })
    }

    /// Where the state is, for messages (never the password).
    pub fn describe(config: &StoreConfig) -> String {
        match &config.url {
            Some(url) => match url::Url::parse(url) {
                Ok(u) => format!(
                    "PostgreSQL database {} on {}:{}",
                    u.path().trim_start_matches('/'),
                    u.host_str().unwrap_or_default(),
                    u.port().unwrap_or(5432)
                ),
                Err(_) => "PostgreSQL database".to_owned(),
            },
            None => format!("the store in {}", config.data_dir.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    #[error("loading the division list (registry.divisions_file): {0}")]
    Divisions(String),
    #[error("starting media (SFU and recorder): {0}")]
    Media(#[from] crate::media::MediaError),
    #[error("starting the 好差评 service: {0}")]
    Evaluations(#[from] crate::evaluation::StartError),
    #[error("starting the audit trail: {0}")]
    Audit(String),
    #[error("starting appointments (privacy master key): {0}")]
    Appointments(String),
    #[error("preparing the listeners: {0}")]
    Listen(#[from] std::io::Error),
}

/// Where a started relay listens.
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    /// HTTPS/WSS.
    pub https: Option<SocketAddr>,
    /// INSECURE plain HTTP (development only).
    pub http: Option<SocketAddr>,
    /// The SFU's UDP socket, when media is enabled.
    pub media_udp: Option<SocketAddr>,
    /// The separate `/metrics` listener (`server.metrics_listen`).
    pub metrics: Option<SocketAddr>,
}

/// A running relay. See the module documentation.
pub struct Relay {
    pub state: AppState,
    pub addresses: Addresses,
    tasks: TaskTracker,
    server: JoinHandle<std::io::Result<()>>,
}

impl Relay {
    /// Builds every service, starts their tasks and serves on `listeners` until shutdown.
    pub async fn start(
        config: Config,
        stores: Stores,
        clock: Arc<dyn Clock>,
        listeners: Listeners,
    ) -> Result<Relay, StartError> {
        // Master keys first: a relay that could not open what it stores must not start.
        let mut config = config;
        crate::keys::resolve_from_env(&config)?.apply(&mut config);
        let config = Arc::new(config);
        let metrics = Arc::new(Metrics::new());
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();

        let switchboard = Arc::new(Switchboard::new(clock.clone()));
        let media = Arc::new(MediaService::new(switchboard.clone()));
        let evaluations = Arc::new(Evaluations::new());
        switchboard.set_observers(Observers::new(vec![
            media.clone() as Arc<dyn SessionObserver>,
            evaluations.clone() as Arc<dyn SessionObserver>,
        ]));
        let board = switchboard.clone();
        metrics.register_collector(SnapshotCounters::new("switchboard counters", move || {
            let c = board.counters();
            vec![
                (
                    "switchboard_dropped_to_kiosks",
                    "Messages to kiosks dropped because their outbox was full",
                    c.dropped_to_kiosks,
                ),
                (
                    "switchboard_dropped_to_consoles",
                    "Messages to consoles dropped because their outbox was full",
                    c.dropped_to_consoles,
                ),
                (
                    "device_commands_timed_out",
                    "Device commands the kiosk did not complete in time",
                    c.core.commands_timed_out,
                ),
                (
                    "device_commands_refused",
                    "Device commands from a console not serving the ticket",
                    c.core.commands_refused,
                ),
                (
                    "device_answers_foreign",
                    "Device answers from a kiosk the command was not sent to",
                    c.core.foreign_answers,
                ),
            ]
        }));
        let board = switchboard.clone();
        metrics.register_collector(SnapshotCounters::new("typed message counters", move || {
            let c = board.typed_counters();
            vec![
                (
                    "typed_messages_sent",
                    "Messages clerks typed for residents, recorded and sent to the kiosk",
                    c.accepted,
                ),
                (
                    "typed_messages_refused_not_serving",
                    "Typed messages from a console whose clerk does not serve the ticket",
                    c.refused_not_serving,
                ),
                (
                    "typed_messages_refused_text",
                    "Typed messages refused: empty, over 200 characters or with control characters",
                    c.refused_text,
                ),
                (
                    "typed_messages_refused_rate",
                    "Typed messages refused because the clerk sent too many too fast",
                    c.refused_rate,
                ),
                (
                    "typed_messages_refused_offline",
                    "Typed messages refused because the kiosk was not connected",
                    c.refused_offline,
                ),
            ]
        }));

        let hub = Arc::new(QueueHub::new(
            stores.main.clone(),
            clock.clone(),
            config.queue.to_core(),
            metrics.clone(),
            switchboard.clone(),
        ));
        // The appointments' key before the case service's, which creates the same file in the
        // background when it is missing: one of the two must go first.
        let appointments = appointment_service(&config, &stores, clock.clone())?;
        let a = appointments.clone();
        metrics.register_collector(SnapshotCounters::new("appointment counters", move || {
            a.counters.snapshot()
        }));
        let cases = crate::cases::Cases::start(config.clone(), clock.clone());
        cases.register_metrics(&metrics);
        let divisions = Divisions::load(config.registry.divisions_file.as_deref())
            .map_err(|e| StartError::Divisions(e.to_string()))?;
        let registry = Arc::new(Registry::new(stores.registry.clone(), divisions));
        metrics.register_collector(Box::new(crate::registry::MetricsCollector(
            registry.clone(),
        )));

        let audit = stores.trail(clock.clone());
        let state = AppState {
            audit: audit.clone(),
            connections: Arc::new(Semaphore::new(config.limits.max_connections)),
            pending: http::pending::PendingSlots::new(
                config.limits.max_pending_per_source,
                config.limits.max_pending_connections,
            ),
            config: config.clone(),
            store: stores.main.clone(),
            hub,
            switchboard: switchboard.clone(),
            media: media.clone(),
            recordings: stores.recordings.clone(),
            cases,
            evaluations: evaluations.clone(),
            registry,
            staff: stores.staff.clone(),
            appointments: appointments.clone(),
            public_limits: Arc::new(http::appointments::PublicLimits::new(&config.appointments)),
            metrics: metrics.clone(),
            clock: clock.clone(),
            shutdown: shutdown.clone(),
            login_throttle: Arc::new(std::sync::Mutex::new(
                crate::login_guard::LoginThrottle::new(config.auth.throttle_limits()),
            )),
            password_checks: Arc::new(crate::login_guard::PasswordChecks::new(
                config.auth.max_concurrent_password_checks,
                config.auth.max_waiting_password_checks,
                PASSWORD_CHECK_WAIT,
            )),
            kiosk_desk: Some(appointments.clone() as Arc<dyn http::kiosk_appointments::KioskDesk>),
        };

        media
            .start(MediaDeps {
                config: config.clone(),
                recordings: stores.recordings.clone(),
                metrics: metrics.clone(),
                clock: clock.clone(),
                shutdown: shutdown.clone(),
                tasks: tasks.clone(),
            })
            .await?;
        evaluations.start(EvaluationDeps {
            config: config.clone(),
            store: stores.evaluations.clone(),
            main: stores.main.clone(),
            clock: clock.clone(),
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
            tasks: tasks.clone(),
        })?;
        tasks.spawn(switchboard.run_deadlines(shutdown.clone()));
        crate::registry::alert_task::spawn(&state, &tasks);
        tasks.spawn(purge_logins(state.clone()));
        tasks.spawn(sweep_appointments(
            appointments,
            clock.clone(),
            Duration::from_secs(config.privacy.retention_sweep_secs.max(1)),
            shutdown.clone(),
        ));
        if let Some(target) = config.audit.syslog.as_deref() {
            let target = crate::audit::syslog::Target::parse(target)
                .map_err(|e| StartError::Audit(format!("audit.syslog: {e}")))?;
            let counters = Arc::new(crate::audit::syslog::ShipCounters::default());
            let c = counters.clone();
            metrics.register_collector(SnapshotCounters::new("audit shipping", move || {
                use std::sync::atomic::Ordering::Relaxed;
                vec![
                    (
                        "audit_rows_shipped",
                        "Audit trail rows sent to syslog",
                        c.shipped.load(Relaxed),
                    ),
                    (
                        "audit_ship_failures",
                        "Failed attempts to send audit trail rows to syslog (retried)",
                        c.failures.load(Relaxed),
                    ),
                ]
            }));
            tasks.spawn(crate::audit::syslog::run(
                audit,
                target,
                Duration::from_millis(config.audit.ship_every_ms),
                counters,
                shutdown.clone(),
            ));
        }

        let addresses = Addresses {
            https: listeners
                .tls
                .as_ref()
                .map(|(l, _)| l.local_addr())
                .transpose()?,
            http: listeners
                .dev_http
                .as_ref()
                .map(std::net::TcpListener::local_addr)
                .transpose()?,
            media_udp: media.sfu().map(|s| s.local_addr()),
            metrics: None,
        };
        let mut addresses = addresses;
        if let Some(addr) = config.server.metrics_listen {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            addresses.metrics = Some(listener.local_addr()?);
            let state = state.clone();
            tasks.spawn(async move {
                if let Err(e) = http::serve_metrics(state, listener).await {
                    error!(error = %e, "the metrics listener failed");
                }
            });
        }
        let server = tokio::spawn(http::serve(state.clone(), listeners));
        Ok(Relay {
            state,
            addresses,
            tasks,
            server,
        })
    }

    /// Cancelling it shuts the relay down (see [`Relay::wait`]).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Shuts down now and waits for every task.
    pub async fn stop(self) -> std::io::Result<()> {
        self.state.shutdown.cancel();
        self.wait().await
    }

    /// Waits until the relay has shut down: the HTTP server first (it ends once the shutdown
    /// token is cancelled and open requests finished), then every tracked task.
    pub async fn wait(self) -> std::io::Result<()> {
        let served = match self.server.await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        };
        // The server also ends when a listener fails; the tasks must end with it.
        self.state.shutdown.cancel();
        self.tasks.close();
        let grace = Duration::from_secs(self.state.config.server.shutdown_grace_secs.max(1));
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            warn!(
                left = self.tasks.len(),
                "background tasks did not end within the grace period"
            );
        } else {
            info!("every background task ended");
        }
        served
    }
}

/// How long a login may wait for a free password check before it is answered "busy".
const PASSWORD_CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The appointment service on the stores' database, sealing with the privacy master key (the
/// case materials' key) and sending codes through the development sender.
fn appointment_service(
    config: &Config,
    stores: &Stores,
    clock: Arc<dyn Clock>,
) -> Result<Arc<crate::appointments::Appointments>, StartError> {
    // The key file resolved and checked at start (`crate::keys::resolve`), as the case
    // service reads it: never a default inside the data directory.
    let key_file = config.privacy.master_key_file.as_deref().ok_or_else(|| {
        StartError::Appointments("no master key file (privacy.master_key_file)".into())
    })?;
    let key = crate::cases::crypto::MasterKey::load(key_file)
        .map_err(|e| StartError::Appointments(e.to_string()))?;
    if !config.appointments.centres.is_empty() {
        warn!(
            "appointments: no SMS gateway is connected; verification codes are only logged (number masked) and written to dev-sms.jsonl in the data directory"
        );
    }
    let sms = Arc::new(crate::appointments::DevSms::new(Some(
        config.store.data_dir.join("dev-sms.jsonl"),
    )));
    Ok(Arc::new(crate::appointments::Appointments::new(
        crate::appointments::AppointmentDeps {
            config: config.appointments.clone(),
            store: stores.appointments.clone(),
            main: stores.main.clone(),
            key,
            sms,
            clock,
        },
    )))
}

/// Marks no-shows and purges bookings' personal data on the privacy sweep's period.
async fn sweep_appointments(
    appointments: Arc<crate::appointments::Appointments>,
    clock: Arc<dyn Clock>,
    period: Duration,
    shutdown: CancellationToken,
) {
    // No-shows matter within minutes; the purge only daily. Both run at most every minute.
    let mut tick = tokio::time::interval(period.min(Duration::from_secs(60)));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {
                if let Err(e) = appointments.sweep(clock.now_ms()).await {
                    error!(error = %e, "the appointments sweep failed");
                }
            }
        }
    }
}

async fn purge_logins(state: AppState) {
    let mut tick = tokio::time::interval(LOGIN_PURGE_EVERY);
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            _ = tick.tick() => {
                if let Err(e) = state.store.purge_logins(state.clock.now_ms()).await {
                    error!(error = %e, "purging expired logins failed");
                }
            }
        }
    }
}
