//! The tokio task that owns one centre's [`QueueCore`].
//!
//! Requests arrive on a bounded channel and are handled one at a time: decide, persist, apply,
//! answer, publish. Consoles subscribe to a broadcast of updates (a console that falls behind
//! gets a fresh snapshot instead of stale deltas); each kiosk watches its own ticket's status
//! through a `watch` channel, which always holds only the latest value and never blocks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use protocol::control::{Availability, CategoryStaffing, KioskTicketStatus, ServingClerk};
use protocol::queue::{
    CategoryView, QueueStats, TicketChannel, TicketState, TicketView, WindowView,
};
use tokio::sync::{Mutex, broadcast, mpsc, oneshot, watch};
use tracing::{Instrument, error, info_span};

use super::core::{Category, Command, Estimate, Event, QueueConfig, QueueCore, Window};
use super::error::QueueError;
use super::ticket::{Ticket, service_day};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::session::Switchboard;
use crate::store::{Store, StoreError};

/// How many requests may wait for a centre's queue before callers are told it is busy.
const REQUEST_BACKLOG: usize = 1024;
/// How many updates a console may fall behind before it is resynchronised.
const UPDATE_BACKLOG: usize = 256;
/// The longest a caller waits for the queue to answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error(transparent)]
    Refused(#[from] QueueError),
    #[error("the queue could not store the change")]
    Store,
    #[error("the queue is not answering")]
    Unavailable,
    #[error("the queue did not answer in time")]
    Timeout,
}

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("no such centre")]
    NoSuchCentre,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The whole queue of a centre at one version.
#[derive(Debug, Clone)]
pub struct QueueView {
    pub version: u64,
    pub tickets: Vec<TicketView>,
    pub windows: Vec<WindowView>,
    pub categories: Vec<CategoryView>,
    pub stats: QueueStats,
    pub now_ms: i64,
}

/// What changed in one applied step.
#[derive(Debug, Clone)]
pub struct QueueUpdate {
    pub version: u64,
    pub tickets: Vec<TicketView>,
    pub windows: Vec<WindowView>,
    pub stats: QueueStats,
    pub now_ms: i64,
}

/// A remote ticket being served: from the moment a window calls it until it leaves that
/// window (finished, no-show, cancelled, parked or transferred). While it lasts, the clerk sees
/// and hears the kiosk and may operate its devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub ticket_id: String,
    pub ticket_number: String,
    pub centre_id: String,
    pub device_id: String,
    pub extension_point_id: Option<String>,
    pub window_id: String,
    pub clerk_id: String,
    pub category_id: String,
    pub started_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionChange {
    Started(Session),
    Ended { session: Session, ended_ms: i64 },
}

type Reply<T> = oneshot::Sender<T>;

enum Request {
    Command {
        command: Command,
        reply: Reply<Result<Option<TicketView>, OpError>>,
    },
    Subscribe {
        reply: Reply<(QueueView, broadcast::Receiver<Arc<QueueUpdate>>)>,
    },
    View {
        reply: Reply<QueueView>,
    },
    Window {
        window_id: String,
        reply: Reply<Option<WindowView>>,
    },
    WatchDevice {
        device_id: String,
        reply: Reply<watch::Receiver<Option<KioskTicketStatus>>>,
    },
    WatchStaffing {
        reply: Reply<watch::Receiver<Arc<Vec<CategoryStaffing>>>>,
    },
}

/// A cheap, cloneable handle to one centre's queue task.
#[derive(Clone)]
pub struct QueueHandle {
    centre_id: Arc<str>,
    tx: mpsc::Sender<Request>,
}

impl QueueHandle {
    pub fn centre_id(&self) -> &str {
        &self.centre_id
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, OpError> {
        let (reply, rx) = oneshot::channel();
        let request = make(reply);
        // A full backlog is a busy queue; wait for room, but never longer than the timeout.
        tokio::time::timeout(REQUEST_TIMEOUT, async {
            self.tx
                .send(request)
                .await
                .map_err(|_| OpError::Unavailable)?;
            rx.await.map_err(|_| OpError::Unavailable)
        })
        .await
        .map_err(|_| OpError::Timeout)?
    }

    /// Runs a command; returns the view of the ticket it acted on.
    pub async fn run(&self, command: Command) -> Result<Option<TicketView>, OpError> {
        self.ask(|reply| Request::Command { command, reply })
            .await?
    }

    /// The current view plus every update after it.
    pub async fn subscribe(
        &self,
    ) -> Result<(QueueView, broadcast::Receiver<Arc<QueueUpdate>>), OpError> {
        self.ask(|reply| Request::Subscribe { reply }).await
    }

    pub async fn view(&self) -> Result<QueueView, OpError> {
        self.ask(|reply| Request::View { reply }).await
    }

    pub async fn window(&self, window_id: &str) -> Result<Option<WindowView>, OpError> {
        let window_id = window_id.to_owned();
        self.ask(|reply| Request::Window { window_id, reply }).await
    }

    /// The latest status of the device's ticket (`None` when it holds none).
    pub async fn watch_device(
        &self,
        device_id: &str,
    ) -> Result<watch::Receiver<Option<KioskTicketStatus>>, OpError> {
        let device_id = device_id.to_owned();
        self.ask(|reply| Request::WatchDevice { device_id, reply })
            .await
    }

    /// Which categories a remote window could serve now; changes whenever a window opens,
    /// closes, pauses or resumes, or its clerk's console comes or goes.
    pub async fn watch_staffing(
        &self,
    ) -> Result<watch::Receiver<Arc<Vec<CategoryStaffing>>>, OpError> {
        self.ask(|reply| Request::WatchStaffing { reply }).await
    }
}

/// Starts and finds the queue task of each centre.
pub struct QueueHub {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: QueueConfig,
    metrics: Arc<Metrics>,
    switchboard: Arc<Switchboard>,
    handles: Mutex<HashMap<String, QueueHandle>>,
}

impl QueueHub {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: QueueConfig,
        metrics: Arc<Metrics>,
        switchboard: Arc<Switchboard>,
    ) -> Self {
        Self {
            store,
            clock,
            config,
            metrics,
            switchboard,
            handles: Mutex::new(HashMap::new()),
        }
    }

    /// The queue of `centre_id`, loading it from the store on first use.
    pub async fn centre(&self, centre_id: &str) -> Result<QueueHandle, HubError> {
        let mut handles = self.handles.lock().await;
        if let Some(h) = handles.get(centre_id)
            && !h.tx.is_closed()
        {
            return Ok(h.clone());
        }
        let core = self.load(centre_id).await?;
        let (tx, rx) = mpsc::channel(REQUEST_BACKLOG);
        let (updates, _) = broadcast::channel(UPDATE_BACKLOG);
        let (staffing, _) = watch::channel(Arc::new(staffing_of(&core)));
        let task = QueueTask {
            staffing,
            core,
            store: self.store.clone(),
            clock: self.clock.clone(),
            metrics: self.metrics.clone(),
            switchboard: self.switchboard.clone(),
            updates,
            devices: HashMap::new(),
            sent: HashMap::new(),
        };
        tokio::spawn(
            task.run(rx)
                .instrument(info_span!("queue", centre = %centre_id)),
        );
        let handle = QueueHandle {
            centre_id: centre_id.into(),
            tx,
        };
        handles.insert(centre_id.to_owned(), handle.clone());
        Ok(handle)
    }

    async fn load(&self, centre_id: &str) -> Result<QueueCore, HubError> {
        if self.store.centre(centre_id).await?.is_none() {
            return Err(HubError::NoSuchCentre);
        }
        let categories = self
            .store
            .categories(centre_id)
            .await?
            .into_iter()
            .map(|c| Category {
                id: c.id,
                prefix: c.prefix,
                name: c.name,
            })
            .collect();
        let windows = self
            .store
            .windows(centre_id)
            .await?
            .into_iter()
            .map(|w| Window {
                id: w.id,
                name: w.name,
                mode: w.mode,
                category_ids: w.category_ids,
                clerk_id: None,
                clerk_name: None,
                clerk_connected: false,
                current: None,
                pause: None,
            })
            .collect();
        let mut core = QueueCore::new(centre_id, self.config.clone(), categories, windows);
        let today = service_day(self.clock.now_ms());
        let snapshot = self.store.load_queue(centre_id, today).await?;
        for (window, clerk, name) in &snapshot.window_clerks {
            core.restore_window_clerk(window, clerk, name);
        }
        for (window, pause) in &snapshot.window_pauses {
            core.restore_window_pause(window, *pause);
        }
        for ticket in snapshot.tickets {
            core.restore_ticket(ticket);
        }
        Ok(core)
    }
}

struct QueueTask {
    core: QueueCore,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    switchboard: Arc<Switchboard>,
    updates: broadcast::Sender<Arc<QueueUpdate>>,
    devices: HashMap<String, watch::Sender<Option<KioskTicketStatus>>>,
    /// The status each device was last sent, to push only changes.
    sent: HashMap<String, Option<KioskTicketStatus>>,
    /// Which categories a remote window could serve now, for every kiosk of the centre.
    staffing: watch::Sender<Arc<Vec<CategoryStaffing>>>,
}

impl QueueTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        // Sessions that were in progress when the relay stopped resume as they were.
        let resumed: Vec<Session> = self
            .core
            .live_tickets()
            .filter_map(|t| session_of(t, self.clock.now_ms()))
            .collect();
        self.switchboard.sessions_resumed(resumed);
        self.publish_gauges();
        let mut retry_after_failure = false;
        loop {
            let now = self.clock.now_ms();
            let due = self.core.next_timeout(now);
            // Wake at least once a minute, and back off after a store failure.
            let wait_ms = (due - now).clamp(if retry_after_failure { 1000 } else { 0 }, 60_000);
            tokio::select! {
                request = rx.recv() => match request {
                    Some(request) => self.handle(request).await,
                    None => break,
                },
                () = tokio::time::sleep(Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0))) => {
                    let now = self.clock.now_ms();
                    let events = self.core.decide_timeouts(now);
                    retry_after_failure = !events.is_empty() && self.commit(&events).await.is_err();
                    if !events.is_empty() && !retry_after_failure {
                        self.publish(&events, now);
                    }
                    self.devices.retain(|_, tx| tx.receiver_count() > 0);
                }
            }
        }
    }

    async fn handle(&mut self, request: Request) {
        match request {
            Request::Command { command, reply } => {
                let op = command_name(&command);
                let started = std::time::Instant::now();
                let now = self.clock.now_ms();
                let result = self.core.decide(now, &command).map_err(OpError::from);
                let result = match result {
                    Ok(events) => self.commit(&events).await.map(|()| events),
                    Err(e) => Err(e),
                };
                let outcome = match &result {
                    Ok(_) => "ok",
                    Err(OpError::Refused(_)) => "refused",
                    Err(_) => "failed",
                };
                self.metrics
                    .observe_queue_op(op, outcome, started.elapsed());
                // Answer first: the clerk's click should not wait for the kiosk fan-out.
                let events = match result {
                    Ok(events) => {
                        // The event holds the ticket's state after the change, which is what
                        // `apply` stored.
                        let ticket = events.iter().find_map(|e| match e {
                            Event::Ticket { ticket, .. } => Some(ticket.view()),
                            Event::Window { .. } => None,
                        });
                        let _ = reply.send(Ok(ticket));
                        events
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                        return;
                    }
                };
                self.publish(&events, self.clock.now_ms());
            }
            Request::Subscribe { reply } => {
                let rx = self.updates.subscribe();
                let _ = reply.send((self.view(), rx));
            }
            Request::View { reply } => {
                let _ = reply.send(self.view());
            }
            Request::Window { window_id, reply } => {
                let _ = reply.send(self.core.window(&window_id).map(Window::view));
            }
            Request::WatchStaffing { reply } => {
                let _ = reply.send(self.staffing.subscribe());
            }
            Request::WatchDevice { device_id, reply } => {
                let status = self.device_status(&device_id);
                let tx = self
                    .devices
                    .entry(device_id.clone())
                    .or_insert_with(|| watch::channel(None).0);
                tx.send_replace(status.clone());
                self.sent.insert(device_id, status);
                let _ = reply.send(tx.subscribe());
            }
        }
    }

    /// Persist, then apply. On a store failure nothing is applied. The caller publishes.
    async fn commit(&mut self, events: &[Event]) -> Result<(), OpError> {
        if events.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.store.persist_queue_events(events).await {
            error!(error = %e, "queue change not stored; refused");
            self.metrics.store_errors.inc();
            return Err(OpError::Store);
        }
        self.core.apply(events);
        let now = self.clock.now_ms();
        for e in events {
            if let Event::Ticket { ticket, .. } = e
                && ticket.first_called_ms == Some(now)
                && ticket.called_ms == Some(now)
                && let Some(wait) = ticket.wait_seconds()
            {
                self.metrics.observe_wait(ticket.channel, wait);
            }
        }
        Ok(())
    }

    fn publish(&mut self, events: &[Event], now: i64) {
        let mut tickets = Vec::new();
        let mut windows_changed = false;
        for e in events {
            match e {
                Event::Ticket { ticket, .. } => {
                    tickets.push(
                        self.core
                            .ticket(&ticket.id)
                            .map_or_else(|| ticket.view(), Ticket::view),
                    );
                    windows_changed |= ticket.window_id.is_some();
                }
                Event::Window { .. } => windows_changed = true,
            }
        }
        let windows = if windows_changed {
            self.core.windows()
        } else {
            Vec::new()
        };
        // The switchboard decides which sessions start and end, and tells its observers.
        self.switchboard.tickets_changed(
            events
                .iter()
                .filter_map(|e| match e {
                    Event::Ticket { ticket, .. } => {
                        Some((ticket.id.clone(), session_of(ticket, now)))
                    }
                    Event::Window { .. } => None,
                })
                .collect(),
        );
        let update = QueueUpdate {
            version: self.core.version(),
            tickets,
            windows,
            stats: self.core.stats(),
            now_ms: now,
        };
        // No receivers is fine: nobody is watching this centre right now.
        let _ = self.updates.send(Arc::new(update));
        if windows_changed {
            let staffing = staffing_of(&self.core);
            self.staffing.send_if_modified(|old| {
                let changed = **old != staffing;
                if changed {
                    *old = Arc::new(staffing);
                }
                changed
            });
        }
        self.push_device_statuses(events, now);
        self.publish_gauges();
    }

    /// Sends each kiosk whose ticket's status changed its new status.
    fn push_device_statuses(&mut self, events: &[Event], now: i64) {
        // Tickets that just ended: their kiosks get the final state once.
        for e in events {
            if let Event::Ticket { ticket, .. } = e
                && ticket.state.is_terminal()
                && let Some(device) = &ticket.device_id
                && let Some(tx) = self.devices.get(device)
            {
                let status = Some(self.status_of(ticket, None));
                tx.send_replace(status.clone());
                self.sent.insert(device.clone(), status);
            }
        }
        if self.devices.is_empty() {
            return;
        }
        let watched = |t: &Ticket| {
            t.device_id
                .as_ref()
                .is_some_and(|d| self.devices.contains_key(d))
        };
        let mut changed = Vec::new();
        for (t, e) in self.core.estimates_where(now, watched) {
            let Some(device) = &t.device_id else { continue };
            let status = Some(self.status_of(t, Some(e)));
            if self.sent.get(device) != Some(&status) {
                changed.push((device.clone(), status));
            }
        }
        // Watched tickets that are not waiting (called, being served, parked).
        for device in self.devices.keys() {
            let Some(t) = self.core.device_ticket(device) else {
                continue;
            };
            if t.state == protocol::queue::TicketState::Waiting {
                continue;
            }
            let status = Some(self.status_of(t, None));
            if self.sent.get(device) != Some(&status) {
                changed.push((device.clone(), status));
            }
        }
        for (device, status) in changed {
            if let Some(tx) = self.devices.get(&device) {
                tx.send_replace(status.clone());
            }
            self.sent.insert(device, status);
        }
    }

    fn device_status(&self, device_id: &str) -> Option<KioskTicketStatus> {
        let t = self.core.device_ticket(device_id)?;
        let e = self
            .core
            .estimates_where(self.clock.now_ms(), |w| w.id == t.id)
            .first()
            .map(|(_, e)| *e);
        Some(self.status_of(t, e))
    }

    /// The kiosk's view of `t`; `estimate` for a waiting ticket.
    fn status_of(&self, t: &Ticket, estimate: Option<Estimate>) -> KioskTicketStatus {
        let category_name = self
            .core
            .category(&t.category_id)
            .map(|c| c.name.clone())
            .unwrap_or_default();
        KioskTicketStatus {
            ticket_id: t.id.clone(),
            number: t.number.clone(),
            category_name,
            state: t.state,
            ahead: estimate.map(|e| e.ahead),
            eta_seconds: estimate.and_then(|e| e.eta_seconds),
            appointment: t.appointment,
            availability: estimate.map(|e| Availability {
                open: e.open,
                paused: e.paused,
            }),
            // The relay's kiosk connection adds post, number and photo from the staff record.
            serving_clerk: match t.state {
                TicketState::Called | TicketState::Serving => t
                    .window_id
                    .as_ref()
                    .and_then(|w| self.core.window(w))
                    .filter(|w| w.clerk_id.is_some() && w.clerk_id == t.clerk_id)
                    .and_then(|w| {
                        Some(Box::new(ServingClerk {
                            id: w.clerk_id.clone()?,
                            name: w.clerk_name.clone().unwrap_or_default(),
                            post: String::new(),
                            staff_number: String::new(),
                            photo: None,
                        }))
                    }),
                _ => None,
            },
            window_name: t
                .window_id
                .as_ref()
                .and_then(|w| self.core.window(w))
                .map(|w| w.name.clone()),
            recalls: t.recalls,
        }
    }

    fn view(&self) -> QueueView {
        let now = self.clock.now_ms();
        QueueView {
            version: self.core.version(),
            tickets: self.core.ticket_views(now),
            windows: self.core.windows(),
            categories: self.core.categories(),
            stats: self.core.stats(),
            now_ms: now,
        }
    }

    fn publish_gauges(&self) {
        let stats = self.core.stats();
        let centre = self.core.centre_id();
        self.metrics.set_waiting(
            centre,
            TicketChannel::OnSite,
            i64::from(stats.waiting_on_site),
        );
        self.metrics.set_waiting(
            centre,
            TicketChannel::Remote,
            i64::from(stats.waiting_remote),
        );
    }
}

/// The session a ticket is in, if it is a remote ticket called or served at a window.
fn staffing_of(core: &QueueCore) -> Vec<CategoryStaffing> {
    core.remote_staffing()
        .into_iter()
        .map(|(id, s)| CategoryStaffing {
            category_id: id.to_owned(),
            availability: Availability {
                open: s.open,
                paused: s.paused,
            },
            // The kiosk connection adds it from the windows' working hours.
            next_opening_ms: None,
        })
        .collect()
}

fn session_of(t: &Ticket, now: i64) -> Option<Session> {
    use protocol::queue::TicketState;
    if !matches!(t.state, TicketState::Called | TicketState::Serving) {
        return None;
    }
    Some(Session {
        ticket_id: t.id.clone(),
        ticket_number: t.number.clone(),
        centre_id: t.centre_id.clone(),
        device_id: t.device_id.clone()?,
        extension_point_id: t.extension_point_id.clone(),
        window_id: t.window_id.clone()?,
        clerk_id: t.clerk_id.clone()?,
        category_id: t.category_id.clone(),
        started_ms: t.called_ms.unwrap_or(now),
    })
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Issue {
            channel: TicketChannel::OnSite,
            ..
        } => "issue_on_site",
        Command::Issue {
            channel: TicketChannel::Remote,
            ..
        } => "issue_remote",
        Command::OpenWindow { .. } => "open_window",
        Command::CloseWindow { .. } => "close_window",
        Command::ClerkPresence { .. } => "clerk_presence",
        Command::Op { op, .. } => op.name(),
        Command::ResidentCancel { .. } => "resident_cancel",
    }
}
