//! The switchboard: who is connected, who is served by whom, and where each message goes.
//!
//! One I/O-free state machine for the whole relay, in the shape of quinn-proto and str0m:
//! inputs come in through `handle_*` methods with the time passed in, outputs leave through
//! [`SwitchboardCore::poll_output`], and deadlines through [`SwitchboardCore::poll_timeout`] /
//! [`SwitchboardCore::handle_timeout`]. It never reads the clock and holds no channel; the thin
//! driver in [`super::driver`] owns the connections' outboxes and delivers what it polls.
//!
//! It keeps three tables and nothing else:
//! - **connections**: kiosks by device (the newest connection of a device wins, and the one it
//!   replaces is told to close) and consoles by connection, with their clerk;
//! - **served sessions** by ticket, derived from the queue's ticket changes: a remote ticket
//!   called or served at a window is a session (see [`crate::queue::Session`]); a ticket that
//!   leaves that state, or moves to another window or clerk, ends its session;
//! - **pending device commands**, each with the relay-side request id it carries on the kiosk
//!   leg and a deadline.
//!
//! The rules it enforces, tested in virtual time below and by a property test over random
//! sequences: a console may operate the devices of a kiosk only while its clerk serves that
//! kiosk's ticket; a kiosk's answers reach only the console that sent the command; media of a
//! session is routed only between the kiosk's current connection and a console of the serving
//! clerk (the one whose media offer was accepted last).
//!
//! Not here: the queue's own decisions (`crate::queue`), SFU peers (`crate::media`), and
//! anything about a console's view of the queue (it reads the queue's broadcast directly).

use std::collections::{BTreeMap, HashMap, VecDeque};

use protocol::control::{ErrorBody, ErrorCode, RelayToClerk, RelayToKiosk, TypedMessage};
use protocol::device::{
    Cancel, Completion, CompletionCode, DeviceCommand, FromDevice, RequestId, ToDevice,
};

use super::typed::{TypedCounters, TypedGate, kiosk_offline, not_serving};
use crate::queue::{Session, SessionChange};

/// Added to a command's own timeout before the relay gives up waiting for the kiosk.
pub const DEADLINE_GRACE_MS: i64 = 5_000;
/// The longest the relay waits for any device command, whatever its timeout says.
pub const MAX_COMMAND_MS: i64 = 10 * 60 * 1000;

/// One WebSocket connection of a kiosk or a console, unique for the relay's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why the switchboard asks a connection to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// A newer connection of the same kiosk took over.
    Replaced,
    /// The kiosk's device was closed or revoked in the registry.
    Revoked,
}

/// What the switchboard wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    ToKiosk {
        conn: ConnId,
        message: RelayToKiosk,
    },
    ToConsole {
        conn: ConnId,
        message: RelayToClerk,
    },
    Close {
        conn: ConnId,
        reason: CloseReason,
    },
    /// A clerk's first console opened (`connected`) or their last one closed.
    Presence {
        centre_id: String,
        clerk_id: String,
        connected: bool,
    },
    /// A served session started or ended (a takeover is an end, then a start).
    Session(SessionChange),
    /// Where a session's media goes changed (see [`SwitchboardCore::media_route`]).
    MediaRouteChanged {
        ticket_id: String,
    },
}

/// Between which connections a served session's media flows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRoute {
    pub session: Session,
    /// The kiosk's current connection, if it is connected.
    pub kiosk: Option<ConnId>,
    /// The serving clerk's console that receives the media: of the clerk's consoles whose
    /// media offer is accepted, the one that offered last.
    pub console: Option<ConnId>,
}

/// Counters for the metrics endpoint.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub commands_timed_out: u64,
    pub commands_refused: u64,
    pub foreign_answers: u64,
    pub stale_answers: u64,
}

#[derive(Debug)]
struct Console {
    centre_id: String,
    clerk_id: String,
    /// Order of its latest accepted media offer; `None` while it has no media peer.
    offered: Option<u64>,
}

#[derive(Debug)]
struct Pending {
    device_id: String,
    ticket_id: String,
    console: ConnId,
    /// The command as the console sent it (its own request id), to answer for the kiosk.
    command: DeviceCommand,
    deadline_ms: i64,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct SwitchboardCore {
    kiosks: HashMap<String, ConnId>,
    consoles: HashMap<ConnId, Console>,
    /// Served sessions by ticket.
    served: HashMap<String, Session>,
    /// Pending commands by the relay-side request id of the kiosk leg (ordered, so deadlines
    /// and cancels are handled in a stable order).
    pending: BTreeMap<u64, Pending>,
    next_request: u64,
    offers: u64,
    outputs: VecDeque<Output>,
    counters: Counters,
    typed: TypedGate,
}

/// A typed message the switchboard accepted, for the caller to record and then deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedAccepted {
    pub message: TypedMessage,
    pub session: Session,
}

fn forbidden() -> ErrorBody {
    ErrorBody {
        code: ErrorCode::Forbidden,
        message:
            "只能操作正在办理的号的设备 / you may operate only the devices of the ticket you are serving"
                .into(),
    }
}

impl SwitchboardCore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    // --- outputs and time ------------------------------------------------------------------

    /// The next thing to do, in the order it was decided.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<i64> {
        self.pending.values().map(|p| p.deadline_ms).min()
    }

    /// Ends commands whose deadline passed: the console hears `timeout`, the kiosk a cancel.
    pub fn handle_timeout(&mut self, now_ms: i64) {
        let ended = self.take_pending(|p| p.deadline_ms <= now_ms);
        self.counters.commands_timed_out += ended.len() as u64;
        self.cancel_on_kiosks(&ended);
        self.answer_for_kiosk(
            ended,
            CompletionCode::Timeout,
            "延伸点终端未在时限内完成操作",
            "the kiosk did not complete the command in time",
        );
    }

    // --- connections -----------------------------------------------------------------------

    /// A kiosk authenticated on connection `conn`; an older connection of the same device is
    /// told to close, and commands sent over it are answered for it.
    pub fn kiosk_opened(&mut self, device_id: &str, conn: ConnId) {
        if let Some(old) = self.kiosks.insert(device_id.to_owned(), conn)
            && old != conn
        {
            self.outputs.push_back(Output::Close {
                conn: old,
                reason: CloseReason::Replaced,
            });
            let ended = self.take_pending(|p| p.device_id == device_id);
            self.answer_for_kiosk(
                ended,
                CompletionCode::DeviceNotReady,
                "延伸点终端重新连接，请重试",
                "the kiosk reconnected; please retry",
            );
        }
        self.route_changed_for_device(device_id);
    }

    /// A kiosk's connection ended. Only its current connection counts: a replaced one's end
    /// changes nothing.
    pub fn kiosk_closed(&mut self, device_id: &str, conn: ConnId) {
        if self.kiosks.get(device_id) != Some(&conn) {
            return;
        }
        self.kiosks.remove(device_id);
        let ended = self.take_pending(|p| p.device_id == device_id);
        self.answer_for_kiosk(
            ended,
            CompletionCode::DeviceNotReady,
            "延伸点终端连接中断",
            "the kiosk disconnected",
        );
        self.route_changed_for_device(device_id);
    }

    /// Asks the kiosk's current connection to close (its device was closed or revoked).
    pub fn disconnect_kiosk(&mut self, device_id: &str) {
        if let Some(conn) = self.kiosks.get(device_id) {
            self.outputs.push_back(Output::Close {
                conn: *conn,
                reason: CloseReason::Revoked,
            });
        }
    }

    /// The current connection of a kiosk.
    pub fn kiosk_conn(&self, device_id: &str) -> Option<ConnId> {
        self.kiosks.get(device_id).copied()
    }

    /// Every connected kiosk and its current connection.
    pub fn kiosks(&self) -> impl Iterator<Item = (&str, ConnId)> {
        self.kiosks.iter().map(|(d, c)| (d.as_str(), *c))
    }

    /// A clerk's console connected. The clerk's first console makes them present.
    pub fn console_opened(&mut self, conn: ConnId, centre_id: &str, clerk_id: &str) {
        let first = !self.consoles.values().any(|c| c.clerk_id == clerk_id);
        self.consoles.insert(
            conn,
            Console {
                centre_id: centre_id.to_owned(),
                clerk_id: clerk_id.to_owned(),
                offered: None,
            },
        );
        if first {
            self.outputs.push_back(Output::Presence {
                centre_id: centre_id.to_owned(),
                clerk_id: clerk_id.to_owned(),
                connected: true,
            });
        }
    }

    /// A console's connection ended: its commands are cancelled on the kiosks, and the clerk's
    /// last console makes them absent.
    pub fn console_closed(&mut self, conn: ConnId) {
        let Some(console) = self.consoles.remove(&conn) else {
            return;
        };
        let ended = self.take_pending(|p| p.console == conn);
        self.cancel_on_kiosks(&ended);
        if console.offered.is_some() {
            self.route_changed_for_clerk(&console.clerk_id);
        }
        if !self
            .consoles
            .values()
            .any(|c| c.clerk_id == console.clerk_id)
        {
            self.typed.forget_clerk(&console.clerk_id);
            self.outputs.push_back(Output::Presence {
                centre_id: console.centre_id,
                clerk_id: console.clerk_id,
                connected: false,
            });
        }
    }

    /// Every open console and its clerk.
    pub fn consoles(&self) -> impl Iterator<Item = (ConnId, &str)> {
        self.consoles.iter().map(|(c, v)| (*c, v.clerk_id.as_str()))
    }

    pub fn is_console_open(&self, conn: ConnId) -> bool {
        self.consoles.contains_key(&conn)
    }

    /// The console's media offer was accepted (it has a media peer now).
    pub fn console_media_up(&mut self, conn: ConnId) {
        self.offers += 1;
        let order = self.offers;
        let Some(console) = self.consoles.get_mut(&conn) else {
            return;
        };
        console.offered = Some(order);
        let clerk = console.clerk_id.clone();
        self.route_changed_for_clerk(&clerk);
    }

    /// The console's media peer is gone (dropped by the SFU); it must offer again.
    pub fn console_media_down(&mut self, conn: ConnId) {
        let Some(console) = self.consoles.get_mut(&conn) else {
            return;
        };
        if console.offered.take().is_some() {
            let clerk = console.clerk_id.clone();
            self.route_changed_for_clerk(&clerk);
        }
    }

    // --- served sessions -------------------------------------------------------------------

    /// The queue changed tickets: for each, the session it is in now (`None` when it is not
    /// served remotely). Sessions start, end, or are taken over accordingly.
    pub fn tickets_changed(
        &mut self,
        now_ms: i64,
        changes: impl IntoIterator<Item = (String, Option<Session>)>,
    ) {
        for (ticket_id, is) in changes {
            let was = self.served.get(&ticket_id).cloned();
            match (was, is) {
                (None, Some(new)) => self.start(new),
                (Some(old), None) => self.end(old, now_ms),
                (Some(old), Some(new))
                    if old.window_id != new.window_id || old.clerk_id != new.clerk_id =>
                {
                    // Taken over by another window: one session ends, another starts.
                    self.end(old, now_ms);
                    self.start(new);
                }
                _ => {}
            }
        }
    }

    /// Sessions that were in progress when the relay stopped and resume now.
    pub fn sessions_resumed(&mut self, sessions: impl IntoIterator<Item = Session>) {
        for s in sessions {
            if !self.served.contains_key(&s.ticket_id) {
                self.start(s);
            }
        }
    }

    fn start(&mut self, session: Session) {
        self.served
            .insert(session.ticket_id.clone(), session.clone());
        let ticket_id = session.ticket_id.clone();
        self.outputs
            .push_back(Output::Session(SessionChange::Started(session)));
        self.outputs
            .push_back(Output::MediaRouteChanged { ticket_id });
    }

    fn end(&mut self, session: Session, now_ms: i64) {
        self.served.remove(&session.ticket_id);
        let ended = self.take_pending(|p| p.ticket_id == session.ticket_id);
        self.cancel_on_kiosks(&ended);
        self.answer_for_kiosk(
            ended,
            CompletionCode::Canceled,
            "本次办理已结束",
            "the session has ended",
        );
        let ticket_id = session.ticket_id.clone();
        self.outputs
            .push_back(Output::Session(SessionChange::Ended {
                session,
                ended_ms: now_ms,
            }));
        self.outputs
            .push_back(Output::MediaRouteChanged { ticket_id });
    }

    /// The session of a ticket, if it is being served remotely now.
    pub fn session(&self, ticket_id: &str) -> Option<&Session> {
        self.served.get(ticket_id)
    }

    /// The session a kiosk's device is in, if any.
    pub fn session_of_device(&self, device_id: &str) -> Option<&Session> {
        self.served.values().find(|s| s.device_id == device_id)
    }

    /// Every served session.
    pub fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.served.values()
    }

    /// Where a served session's media flows now.
    pub fn media_route(&self, ticket_id: &str) -> Option<MediaRoute> {
        let session = self.served.get(ticket_id)?;
        Some(MediaRoute {
            kiosk: self.kiosks.get(&session.device_id).copied(),
            console: self.media_console(&session.clerk_id),
            session: session.clone(),
        })
    }

    /// The routes of every served session.
    pub fn media_routes(&self) -> Vec<MediaRoute> {
        self.served
            .keys()
            .filter_map(|t| self.media_route(t))
            .collect()
    }

    /// Of the clerk's consoles with accepted media, the one that offered last.
    fn media_console(&self, clerk_id: &str) -> Option<ConnId> {
        self.consoles
            .iter()
            .filter(|(_, c)| c.clerk_id == clerk_id)
            .filter_map(|(conn, c)| c.offered.map(|o| (o, *conn)))
            .max()
            .map(|(_, conn)| conn)
    }

    fn route_changed_for_device(&mut self, device_id: &str) {
        let tickets: Vec<String> = self
            .served
            .values()
            .filter(|s| s.device_id == device_id)
            .map(|s| s.ticket_id.clone())
            .collect();
        for ticket_id in tickets {
            self.outputs
                .push_back(Output::MediaRouteChanged { ticket_id });
        }
    }

    fn route_changed_for_clerk(&mut self, clerk_id: &str) {
        let tickets: Vec<String> = self
            .served
            .values()
            .filter(|s| s.clerk_id == clerk_id)
            .map(|s| s.ticket_id.clone())
            .collect();
        for ticket_id in tickets {
            self.outputs
                .push_back(Output::MediaRouteChanged { ticket_id });
        }
    }

    // --- typed messages --------------------------------------------------------------------

    /// Console `conn` types `text` for the resident of `ticket_id`. Accepted only from a
    /// console of the clerk serving the ticket, while its kiosk is connected, with a valid
    /// text and within the clerk's rate (see [`super::typed`]). Nothing is sent here: the
    /// caller records the message, then delivers it to the kiosk's current connection.
    pub fn typed_message(
        &mut self,
        now_ms: i64,
        conn: ConnId,
        ticket_id: &str,
        text: &str,
    ) -> Result<TypedAccepted, ErrorBody> {
        let session = match (self.consoles.get(&conn), self.served.get(ticket_id)) {
            (Some(console), Some(s)) if console.clerk_id == s.clerk_id => s.clone(),
            _ => {
                self.typed.counters.refused_not_serving += 1;
                return Err(not_serving());
            }
        };
        if !self.kiosks.contains_key(&session.device_id) {
            self.typed.counters.refused_offline += 1;
            return Err(kiosk_offline());
        }
        let message = self
            .typed
            .accept(now_ms, &session.clerk_id, ticket_id, text)?;
        Ok(TypedAccepted { message, session })
    }

    pub fn typed_counters(&self) -> TypedCounters {
        self.typed.counters
    }

    // --- device commands -------------------------------------------------------------------

    /// Console `conn` sends `command` to the kiosk of the session of `ticket_id`. Its clerk
    /// must be serving that ticket; otherwise it gets a `forbidden` error. When the kiosk is
    /// not connected the console gets a failed completion at once.
    pub fn device_command(
        &mut self,
        now_ms: i64,
        conn: ConnId,
        ticket_id: &str,
        command: DeviceCommand,
    ) {
        let session = self.served.get(ticket_id);
        let allowed = match (self.consoles.get(&conn), session) {
            (Some(console), Some(s)) => console.clerk_id == s.clerk_id,
            _ => false,
        };
        if !allowed {
            self.counters.commands_refused += 1;
            if self.consoles.contains_key(&conn) {
                self.outputs.push_back(Output::ToConsole {
                    conn,
                    message: RelayToClerk::Error {
                        request_id: Some(command.request_id.0),
                        error: forbidden(),
                    },
                });
            }
            return;
        }
        let Some(device_id) = session.map(|s| s.device_id.clone()) else {
            return;
        };
        let Some(kiosk) = self.kiosks.get(&device_id).copied() else {
            let completion = Completion::failed(
                &command,
                CompletionCode::DeviceNotReady,
                "延伸点终端未连接",
                "the kiosk is not connected",
            );
            self.deliver_to_console(conn, ticket_id, FromDevice::Completion(completion));
            return;
        };
        self.next_request += 1;
        let relay_id = self.next_request;
        let mut to_kiosk = command.clone();
        to_kiosk.request_id = RequestId(relay_id);
        self.outputs.push_back(Output::ToKiosk {
            conn: kiosk,
            message: RelayToKiosk::Device {
                message: ToDevice::Command(to_kiosk),
            },
        });
        let timeout = if command.timeout_ms == 0 {
            MAX_COMMAND_MS
        } else {
            i64::from(command.timeout_ms).min(MAX_COMMAND_MS)
        };
        self.pending.insert(
            relay_id,
            Pending {
                device_id,
                ticket_id: ticket_id.to_owned(),
                console: conn,
                command,
                deadline_ms: now_ms + timeout + DEADLINE_GRACE_MS,
            },
        );
    }

    /// The kiosk could not take a command the switchboard routed to it (its outbox was full):
    /// the console is answered for it at once.
    pub fn kiosk_refused(&mut self, message: &RelayToKiosk) {
        let RelayToKiosk::Device {
            message: ToDevice::Command(c),
        } = message
        else {
            return;
        };
        if let Some(p) = self.pending.remove(&c.request_id.0) {
            self.answer_for_kiosk(
                vec![(c.request_id.0, p)],
                CompletionCode::DeviceNotReady,
                "延伸点终端繁忙，请稍后再试",
                "the kiosk is not keeping up; please retry",
            );
        }
    }

    /// Cancels commands console `conn` sent for `ticket_id` (all of them when the list is
    /// empty). Ids the console does not own are ignored.
    pub fn device_cancel(&mut self, conn: ConnId, ticket_id: &str, cancel: &Cancel) {
        let mine: Vec<(u64, &Pending)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.console == conn && p.ticket_id == ticket_id)
            .filter(|(_, p)| {
                cancel.request_ids.is_empty() || cancel.request_ids.contains(&p.command.request_id)
            })
            .map(|(id, p)| (*id, p))
            .collect();
        let Some((_, first)) = mine.first() else {
            return;
        };
        let Some(kiosk) = self.kiosks.get(&first.device_id).copied() else {
            return;
        };
        let request_ids = mine.iter().map(|(id, _)| RequestId(*id)).collect();
        self.outputs.push_back(Output::ToKiosk {
            conn: kiosk,
            message: RelayToKiosk::Device {
                message: ToDevice::Cancel(Cancel { request_ids }),
            },
        });
    }

    /// A device message from kiosk `device_id` on connection `conn`.
    pub fn from_kiosk(&mut self, device_id: &str, conn: ConnId, message: FromDevice) {
        if self.kiosks.get(device_id) != Some(&conn) {
            return;
        }
        let relay_id = match &message {
            FromDevice::Acknowledge(a) => a.request_id,
            FromDevice::Event(e) => e.request_id,
            FromDevice::Completion(c) => c.request_id,
            FromDevice::Unsolicited(_) => {
                // To every console of the clerk serving this kiosk.
                let Some(session) = self.served.values().find(|s| s.device_id == device_id) else {
                    return;
                };
                let ticket_id = session.ticket_id.clone();
                let mut targets: Vec<ConnId> = self
                    .consoles
                    .iter()
                    .filter(|(_, c)| c.clerk_id == session.clerk_id)
                    .map(|(conn, _)| *conn)
                    .collect();
                targets.sort();
                for target in targets {
                    self.deliver_to_console(target, &ticket_id, message.clone());
                }
                return;
            }
        };
        let Some(pending) = self.pending.get(&relay_id.0) else {
            self.counters.stale_answers += 1;
            return;
        };
        if pending.device_id != device_id {
            self.counters.foreign_answers += 1;
            return;
        }
        let console_id = pending.command.request_id;
        let console = pending.console;
        let ticket_id = pending.ticket_id.clone();
        if matches!(message, FromDevice::Completion(_)) {
            self.pending.remove(&relay_id.0);
        }
        let message = match message {
            FromDevice::Acknowledge(mut a) => {
                a.request_id = console_id;
                FromDevice::Acknowledge(a)
            }
            FromDevice::Event(mut e) => {
                e.request_id = console_id;
                FromDevice::Event(e)
            }
            FromDevice::Completion(mut c) => {
                c.request_id = console_id;
                FromDevice::Completion(c)
            }
            other @ FromDevice::Unsolicited(_) => other,
        };
        self.deliver_to_console(console, &ticket_id, message);
    }

    fn deliver_to_console(&mut self, conn: ConnId, ticket_id: &str, message: FromDevice) {
        if self.consoles.contains_key(&conn) {
            self.outputs.push_back(Output::ToConsole {
                conn,
                message: RelayToClerk::Device {
                    ticket_id: ticket_id.to_owned(),
                    message,
                },
            });
        }
    }

    fn take_pending(&mut self, which: impl Fn(&Pending) -> bool) -> Vec<(u64, Pending)> {
        let ids: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| which(p))
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| self.pending.remove(&id).map(|p| (id, p)))
            .collect()
    }

    /// One cancel per connected kiosk for the given ended commands.
    fn cancel_on_kiosks(&mut self, ended: &[(u64, Pending)]) {
        let mut by_kiosk: BTreeMap<ConnId, Vec<RequestId>> = BTreeMap::new();
        for (id, p) in ended {
            if let Some(conn) = self.kiosks.get(&p.device_id) {
                by_kiosk.entry(*conn).or_default().push(RequestId(*id));
            }
        }
        for (conn, request_ids) in by_kiosk {
            self.outputs.push_back(Output::ToKiosk {
                conn,
                message: RelayToKiosk::Device {
                    message: ToDevice::Cancel(Cancel { request_ids }),
                },
            });
        }
    }

    /// Answers ended commands on the kiosk's behalf.
    fn answer_for_kiosk(
        &mut self,
        ended: Vec<(u64, Pending)>,
        code: CompletionCode,
        zh: &str,
        en: &str,
    ) {
        for (_, p) in ended {
            let completion = Completion::failed(&p.command, code, zh, en);
            self.deliver_to_console(p.console, &p.ticket_id, FromDevice::Completion(completion));
        }
    }
}

#[cfg(test)]
mod tests;
