//! The thin driver around [`SwitchboardCore`]: it owns every connection's outbox and close
//! signal, feeds the core, and delivers what the core decides.
//!
//! Every method locks the core only to feed one input and drain its outputs, then delivers
//! them with the lock released: messages go into bounded outboxes with `try_send` (a
//! connection too slow to read loses the message, which is counted; device commands that do
//! not fit are answered for the kiosk), closes go through each connection's `watch`, session
//! starts and ends to the [`SessionObserver`]s in order, and clerk presence back to the caller
//! (the console handler runs it on the queue, in order with the console's own commands).
//!
//! [`Switchboard::run_deadlines`] is the one task it needs: it wakes when the core's next
//! deadline is due.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use protocol::control::{RelayToClerk, RelayToKiosk};
use protocol::device::{Cancel, DeviceCommand, FromDevice};
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::core::{CloseReason, ConnId, Counters, MediaRoute, Output, SwitchboardCore};
use super::{Observers, SessionObserver};
use crate::clock::Clock;
use crate::queue::Session;

/// Capacity of each connection's outbox. A connection whose outbox is full is too slow to
/// read; what does not fit is dropped and counted, and its session can recover (consoles
/// resynchronise, commands time out, media state is told again).
pub const OUTBOX: usize = 256;
/// The deadline task looks again at least this often.
const DEADLINE_SCAN: Duration = Duration::from_secs(1);

/// A clerk became present (first console) or absent (last console closed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    pub centre_id: String,
    pub clerk_id: String,
    pub connected: bool,
}

/// What a kiosk's connection handler holds: its id, its outbox and its close signal.
pub struct KioskLine {
    pub conn: ConnId,
    pub outbox: mpsc::Receiver<RelayToKiosk>,
    pub close: watch::Receiver<Option<CloseReason>>,
}

/// What a console's connection handler holds.
pub struct ConsoleLine {
    pub conn: ConnId,
    pub outbox: mpsc::Receiver<RelayToClerk>,
    /// Clerk presence changes the handler must tell the queue (the first console's).
    pub presence: Vec<Presence>,
}

enum Outbox {
    Kiosk(mpsc::Sender<RelayToKiosk>),
    Console(mpsc::Sender<RelayToClerk>),
}

struct Line {
    outbox: Outbox,
    close: watch::Sender<Option<CloseReason>>,
}

/// Messages lost to full outboxes, and the core's own counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SwitchboardCounters {
    pub dropped_to_kiosks: u64,
    pub dropped_to_consoles: u64,
    pub core: Counters,
}

/// See the module documentation. One per relay.
pub struct Switchboard {
    core: Mutex<SwitchboardCore>,
    lines: Mutex<HashMap<ConnId, Line>>,
    observers: OnceLock<Observers>,
    clock: Arc<dyn Clock>,
    next_conn: AtomicU64,
    deadline_changed: Notify,
    dropped_to_kiosks: AtomicU64,
    dropped_to_consoles: AtomicU64,
}

fn drain(core: &mut SwitchboardCore) -> Vec<Output> {
    std::iter::from_fn(|| core.poll_output()).collect()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data; a panic elsewhere while holding it leaves it usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Switchboard {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            core: Mutex::new(SwitchboardCore::new()),
            lines: Mutex::new(HashMap::new()),
            observers: OnceLock::new(),
            clock,
            next_conn: AtomicU64::new(1),
            deadline_changed: Notify::new(),
            dropped_to_kiosks: AtomicU64::new(0),
            dropped_to_consoles: AtomicU64::new(0),
        }
    }

    /// Who hears of session starts and ends (media, 好差评). Set once, before the first
    /// connection; a second call is ignored.
    pub fn set_observers(&self, observers: Observers) {
        let _ = self.observers.set(observers);
    }

    /// A fresh id for a connection, also used in its log span.
    pub fn next_conn_id(&self) -> ConnId {
        ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed))
    }

    pub fn counters(&self) -> SwitchboardCounters {
        SwitchboardCounters {
            dropped_to_kiosks: self.dropped_to_kiosks.load(Ordering::Relaxed),
            dropped_to_consoles: self.dropped_to_consoles.load(Ordering::Relaxed),
            core: lock(&self.core).counters(),
        }
    }

    /// Feeds the core one input and delivers what it decided; returns the presence changes.
    fn drive(&self, input: impl FnOnce(&mut SwitchboardCore, i64)) -> Vec<Presence> {
        let now = self.clock.now_ms();
        let (outputs, deadline_moved) = {
            let mut core = lock(&self.core);
            let due = core.poll_timeout();
            input(&mut core, now);
            (drain(&mut core), core.poll_timeout() != due)
        };
        if deadline_moved {
            self.deadline_changed.notify_one();
        }
        self.dispatch(outputs)
    }

    /// Delivers outputs with the core's lock released; returns the presence changes.
    fn dispatch(&self, outputs: Vec<Output>) -> Vec<Presence> {
        let mut presence = Vec::new();
        let mut changes = Vec::new();
        let mut routes = false;
        let mut refused = Vec::new();
        {
            let lines = lock(&self.lines);
            for output in outputs {
                match output {
                    Output::ToKiosk { conn, message } => {
                        let sent = match lines.get(&conn).map(|l| &l.outbox) {
                            Some(Outbox::Kiosk(tx)) => {
                                tx.try_send(message).map_err(|e| e.into_inner())
                            }
                            _ => Err(message),
                        };
                        if let Err(message) = sent {
                            self.dropped_to_kiosks.fetch_add(1, Ordering::Relaxed);
                            refused.push(message);
                        }
                    }
                    Output::ToConsole { conn, message } => {
                        let sent = match lines.get(&conn).map(|l| &l.outbox) {
                            Some(Outbox::Console(tx)) => tx.try_send(message).is_ok(),
                            _ => false,
                        };
                        if !sent {
                            self.dropped_to_consoles.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Output::Close { conn, reason } => {
                        if let Some(line) = lines.get(&conn) {
                            line.close.send_replace(Some(reason));
                        }
                    }
                    Output::Presence {
                        centre_id,
                        clerk_id,
                        connected,
                    } => presence.push(Presence {
                        centre_id,
                        clerk_id,
                        connected,
                    }),
                    Output::Session(change) => changes.push(change),
                    Output::MediaRouteChanged { .. } => routes = true,
                }
            }
        }
        if !refused.is_empty() {
            // Commands a kiosk could not take are answered for it (which may refuse nothing
            // further: answers go to consoles).
            let outputs = {
                let mut core = lock(&self.core);
                for m in &refused {
                    core.kiosk_refused(m);
                }
                drain(&mut core)
            };
            presence.append(&mut self.dispatch(outputs));
        }
        if let Some(observers) = self.observers.get() {
            for change in &changes {
                observers.session_changed(change);
            }
            if routes || !changes.is_empty() {
                observers.media_routes_changed();
            }
        }
        presence
    }

    // --- connections -----------------------------------------------------------------------

    /// Registers kiosk `device_id`'s new connection; an older one is told to close.
    pub fn open_kiosk(&self, device_id: &str, conn: ConnId) -> KioskLine {
        let (tx, outbox) = mpsc::channel(OUTBOX);
        let (close_tx, close) = watch::channel(None);
        lock(&self.lines).insert(
            conn,
            Line {
                outbox: Outbox::Kiosk(tx),
                close: close_tx,
            },
        );
        self.drive(|core, _| core.kiosk_opened(device_id, conn));
        KioskLine {
            conn,
            outbox,
            close,
        }
    }

    pub fn close_kiosk(&self, device_id: &str, conn: ConnId) {
        self.drive(|core, _| core.kiosk_closed(device_id, conn));
        lock(&self.lines).remove(&conn);
    }

    /// Asks a kiosk's connection to close (its device was closed or revoked in the registry).
    pub fn disconnect_kiosk(&self, device_id: &str) {
        self.drive(|core, _| core.disconnect_kiosk(device_id));
    }

    pub fn kiosk_conn(&self, device_id: &str) -> Option<ConnId> {
        lock(&self.core).kiosk_conn(device_id)
    }

    /// Every connected kiosk and its connection.
    pub fn kiosks(&self) -> Vec<(String, ConnId)> {
        lock(&self.core)
            .kiosks()
            .map(|(d, c)| (d.to_owned(), c))
            .collect()
    }

    /// Registers a console's connection.
    pub fn open_console(&self, conn: ConnId, centre_id: &str, clerk_id: &str) -> ConsoleLine {
        let (tx, outbox) = mpsc::channel(OUTBOX);
        let (close_tx, _) = watch::channel(None);
        lock(&self.lines).insert(
            conn,
            Line {
                outbox: Outbox::Console(tx),
                close: close_tx,
            },
        );
        let presence = self.drive(|core, _| core.console_opened(conn, centre_id, clerk_id));
        ConsoleLine {
            conn,
            outbox,
            presence,
        }
    }

    /// A console's connection ended; returns the presence change to tell the queue.
    pub fn close_console(&self, conn: ConnId) -> Vec<Presence> {
        let presence = self.drive(|core, _| core.console_closed(conn));
        lock(&self.lines).remove(&conn);
        presence
    }

    pub fn is_console_open(&self, conn: ConnId) -> bool {
        lock(&self.core).is_console_open(conn)
    }

    /// Every open console and its clerk.
    pub fn consoles(&self) -> Vec<(ConnId, String)> {
        lock(&self.core)
            .consoles()
            .map(|(c, k)| (c, k.to_owned()))
            .collect()
    }

    /// Sends a kiosk a message outside any routing decision (media control); false when it
    /// did not fit or the connection is gone.
    pub fn send_to_kiosk(&self, conn: ConnId, message: RelayToKiosk) -> bool {
        match lock(&self.lines).get(&conn).map(|l| &l.outbox) {
            Some(Outbox::Kiosk(tx)) => tx.try_send(message).is_ok(),
            _ => false,
        }
    }

    /// Sends a console a message outside any routing decision (media control).
    pub fn send_to_console(&self, conn: ConnId, message: RelayToClerk) -> bool {
        match lock(&self.lines).get(&conn).map(|l| &l.outbox) {
            Some(Outbox::Console(tx)) => tx.try_send(message).is_ok(),
            _ => false,
        }
    }

    // --- media -----------------------------------------------------------------------------

    pub fn console_media_up(&self, conn: ConnId) {
        self.drive(|core, _| core.console_media_up(conn));
    }

    pub fn console_media_down(&self, conn: ConnId) {
        self.drive(|core, _| core.console_media_down(conn));
    }

    /// Where each served session's media flows now.
    pub fn media_routes(&self) -> Vec<MediaRoute> {
        lock(&self.core).media_routes()
    }

    // --- sessions --------------------------------------------------------------------------

    /// The queue changed tickets (see [`SwitchboardCore::tickets_changed`]); the sessions
    /// that start and end are told to the observers before this returns.
    pub fn tickets_changed(&self, changes: Vec<(String, Option<Session>)>) {
        self.drive(|core, now| core.tickets_changed(now, changes));
    }

    /// Sessions in progress when the relay stopped resume now.
    pub fn sessions_resumed(&self, sessions: Vec<Session>) {
        self.drive(|core, _| core.sessions_resumed(sessions));
    }

    /// The session of a ticket, if it is being served remotely now.
    pub fn session(&self, ticket_id: &str) -> Option<Session> {
        lock(&self.core).session(ticket_id).cloned()
    }

    /// The session a kiosk is in, if any.
    pub fn session_of_device(&self, device_id: &str) -> Option<Session> {
        lock(&self.core).session_of_device(device_id).cloned()
    }

    // --- typed messages --------------------------------------------------------------------

    /// See [`SwitchboardCore::typed_message`]: accepted (not yet sent) or refused.
    pub fn typed_message(
        &self,
        conn: ConnId,
        ticket_id: &str,
        text: &str,
    ) -> Result<super::TypedAccepted, protocol::control::ErrorBody> {
        let now = self.clock.now_ms();
        lock(&self.core).typed_message(now, conn, ticket_id, text)
    }

    pub fn typed_counters(&self) -> super::typed::TypedCounters {
        lock(&self.core).typed_counters()
    }

    // --- device commands -------------------------------------------------------------------

    pub fn device_command(&self, conn: ConnId, ticket_id: &str, command: DeviceCommand) {
        self.drive(|core, now| core.device_command(now, conn, ticket_id, command));
    }

    pub fn device_cancel(&self, conn: ConnId, ticket_id: &str, cancel: &Cancel) {
        self.drive(|core, _| core.device_cancel(conn, ticket_id, cancel));
    }

    pub fn from_kiosk(&self, device_id: &str, conn: ConnId, message: FromDevice) {
        self.drive(|core, _| core.from_kiosk(device_id, conn, message));
    }

    /// Ends device commands when their deadline passes, until `shutdown`.
    pub async fn run_deadlines(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let now = self.clock.now_ms();
            let due = lock(&self.core).poll_timeout();
            let wait = due.map_or(DEADLINE_SCAN, |d| {
                Duration::from_millis(u64::try_from(d - now).unwrap_or(0)).min(DEADLINE_SCAN)
            });
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.deadline_changed.notified() => {}
                () = tokio::time::sleep(wait) => {
                    self.drive(|core, now| core.handle_timeout(now));
                }
            }
        }
    }
}
