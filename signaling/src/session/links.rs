//! Live connections and device-command routing.
//!
//! Each kiosk connection and each console connection registers a bounded outbox here. A device
//! command from a console is checked against the session (the console's clerk must be serving
//! that kiosk's ticket), given a relay-side request id unique on the kiosk leg, and queued to the
//! kiosk. The kiosk's acknowledge, events and completion are mapped back to the console's own
//! request id and delivered only to the console that sent the command. A kiosk can only answer
//! commands that were sent to it.
//!
//! Every pending command has a deadline (its timeout plus a grace period): when the kiosk does
//! not complete in time, the console gets a `timeout` completion and the kiosk a cancel. When a
//! session ends, or either side disconnects, its pending commands end too.

use std::collections::HashMap;
use std::sync::Mutex;

use protocol::control::{RelayToClerk, RelayToKiosk};
use protocol::device::{
    Cancel, Completion, CompletionCode, DeviceCommand, FromDevice, RequestId, ToDevice,
};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::SessionObserver;
use crate::queue::{Session, SessionChange};

/// Capacity of each connection's outbox. A connection whose outbox is full is too slow to
/// read; what does not fit is dropped and counted, and its session can recover (consoles
/// resynchronise, commands time out).
pub const OUTBOX: usize = 256;
/// Added to a command's own timeout before the relay gives up waiting for the kiosk.
pub const DEADLINE_GRACE_MS: i64 = 5_000;
/// The longest the relay waits for any device command, whatever its timeout says.
pub const MAX_COMMAND_MS: i64 = 10 * 60 * 1000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error(
        "只能操作正在办理的号的设备 / you may operate only the devices of the ticket you are serving"
    )]
    NotYourSession,
}

struct KioskLink {
    conn: u64,
    tx: mpsc::Sender<RelayToKiosk>,
}

struct ClerkLink {
    clerk_id: String,
    tx: mpsc::Sender<RelayToClerk>,
}

struct Pending {
    device_id: String,
    ticket_id: String,
    clerk_conn: u64,
    /// The console's own request id, and the command (to answer for the kiosk if needed).
    command: DeviceCommand,
    deadline_ms: i64,
}

#[derive(Default)]
struct Inner {
    kiosks: HashMap<String, KioskLink>,
    clerks: HashMap<u64, ClerkLink>,
    /// Sessions by kiosk device: which ticket and clerk it is serving right now.
    serving: HashMap<String, Session>,
    pending: HashMap<u64, Pending>,
    next_request: u64,
}

/// Counters for the metrics endpoint.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LinkCounters {
    pub dropped_to_kiosks: u64,
    pub dropped_to_consoles: u64,
    pub commands_timed_out: u64,
    pub foreign_answers: u64,
}

#[derive(Default)]
pub struct Links {
    inner: Mutex<Inner>,
    counters: Mutex<LinkCounters>,
}

impl Links {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn counters(&self) -> LinkCounters {
        self.counters.lock().map(|c| *c).unwrap_or_default()
    }

    fn count(&self, f: impl FnOnce(&mut LinkCounters)) {
        if let Ok(mut c) = self.counters.lock() {
            f(&mut c);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock would be a bug elsewhere; the data is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a kiosk's connection (replacing an older one of the same device).
    pub fn kiosk_connected(&self, device_id: &str, conn: u64, tx: mpsc::Sender<RelayToKiosk>) {
        let ended = {
            let mut inner = self.lock();
            inner
                .kiosks
                .insert(device_id.to_owned(), KioskLink { conn, tx });
            // Commands sent over the old connection will never be answered.
            take_pending(&mut inner, |p| p.device_id == device_id)
        };
        self.fail(
            ended,
            CompletionCode::DeviceNotReady,
            "延伸点终端重新连接，请重试",
            "the kiosk reconnected; please retry",
        );
    }

    pub fn kiosk_disconnected(&self, device_id: &str, conn: u64) {
        let ended = {
            let mut inner = self.lock();
            if inner.kiosks.get(device_id).is_some_and(|k| k.conn == conn) {
                inner.kiosks.remove(device_id);
                take_pending(&mut inner, |p| p.device_id == device_id)
            } else {
                Vec::new()
            }
        };
        self.fail(
            ended,
            CompletionCode::DeviceNotReady,
            "延伸点终端连接中断",
            "the kiosk disconnected",
        );
    }

    pub fn is_kiosk_connected(&self, device_id: &str) -> bool {
        self.lock().kiosks.contains_key(device_id)
    }

    pub fn clerk_connected(&self, conn: u64, clerk_id: &str, tx: mpsc::Sender<RelayToClerk>) {
        self.lock().clerks.insert(
            conn,
            ClerkLink {
                clerk_id: clerk_id.to_owned(),
                tx,
            },
        );
    }

    pub fn clerk_disconnected(&self, conn: u64) {
        let cancels = {
            let mut inner = self.lock();
            inner.clerks.remove(&conn);
            let ended = take_pending(&mut inner, |p| p.clerk_conn == conn);
            cancel_messages(&inner, &ended)
        };
        self.send_to_kiosks(cancels);
    }

    /// Sends `command` to the kiosk of `session` on behalf of console `clerk_conn`, whose clerk
    /// must be the one serving it. Returns the completion to give the console at once when the
    /// kiosk cannot take it (not connected, too busy).
    pub fn device_command(
        &self,
        session: &Session,
        clerk_conn: u64,
        command: DeviceCommand,
        now_ms: i64,
    ) -> Result<Option<Completion>, RouteError> {
        let mut inner = self.lock();
        let Some(clerk) = inner.clerks.get(&clerk_conn) else {
            return Err(RouteError::NotYourSession);
        };
        let current = inner.serving.get(&session.device_id);
        if clerk.clerk_id != session.clerk_id
            || current.is_none_or(|s| s.ticket_id != session.ticket_id)
        {
            return Err(RouteError::NotYourSession);
        }
        let Some(kiosk_tx) = inner.kiosks.get(&session.device_id).map(|k| k.tx.clone()) else {
            return Ok(Some(Completion::failed(
                &command,
                CompletionCode::DeviceNotReady,
                "延伸点终端未连接",
                "the kiosk is not connected",
            )));
        };
        inner.next_request += 1;
        let relay_id = inner.next_request;
        let mut to_kiosk = command.clone();
        to_kiosk.request_id = RequestId(relay_id);
        let sent = kiosk_tx.try_send(RelayToKiosk::Device {
            message: ToDevice::Command(to_kiosk),
        });
        if sent.is_err() {
            drop(inner);
            self.count(|c| c.dropped_to_kiosks += 1);
            return Ok(Some(Completion::failed(
                &command,
                CompletionCode::DeviceNotReady,
                "延伸点终端繁忙，请稍后再试",
                "the kiosk is not keeping up; please retry",
            )));
        }
        let timeout = if command.timeout_ms == 0 {
            MAX_COMMAND_MS
        } else {
            i64::from(command.timeout_ms).min(MAX_COMMAND_MS)
        };
        inner.pending.insert(
            relay_id,
            Pending {
                device_id: session.device_id.clone(),
                ticket_id: session.ticket_id.clone(),
                clerk_conn,
                command,
                deadline_ms: now_ms + timeout + DEADLINE_GRACE_MS,
            },
        );
        Ok(None)
    }

    /// Cancels commands console `clerk_conn` sent for `ticket_id` (all of them when the list is
    /// empty). Ids the console does not own are ignored.
    pub fn device_cancel(&self, clerk_conn: u64, ticket_id: &str, cancel: &Cancel) {
        let message = {
            let inner = self.lock();
            let mine: Vec<(&u64, &Pending)> = inner
                .pending
                .iter()
                .filter(|(_, p)| p.clerk_conn == clerk_conn && p.ticket_id == ticket_id)
                .filter(|(_, p)| {
                    cancel.request_ids.is_empty()
                        || cancel.request_ids.contains(&p.command.request_id)
                })
                .collect();
            let Some((_, first)) = mine.first() else {
                return;
            };
            let device = first.device_id.clone();
            let ids = mine.iter().map(|(id, _)| RequestId(**id)).collect();
            (device, Cancel { request_ids: ids })
        };
        self.send_to_kiosks(vec![message]);
    }

    /// A device message from kiosk `device_id` (connection `conn`).
    pub fn from_kiosk(&self, device_id: &str, conn: u64, message: FromDevice) {
        let mut inner = self.lock();
        if inner.kiosks.get(device_id).is_none_or(|k| k.conn != conn) {
            return;
        }
        let relay_id = match &message {
            FromDevice::Acknowledge(a) => Some(a.request_id),
            FromDevice::Event(e) => Some(e.request_id),
            FromDevice::Completion(c) => Some(c.request_id),
            FromDevice::Unsolicited(_) => None,
        };
        let Some(RequestId(relay_id)) = relay_id else {
            // Unsolicited: to every console of the clerk serving this kiosk.
            let Some(session) = inner.serving.get(device_id) else {
                return;
            };
            let targets: Vec<mpsc::Sender<RelayToClerk>> = inner
                .clerks
                .values()
                .filter(|c| c.clerk_id == session.clerk_id)
                .map(|c| c.tx.clone())
                .collect();
            let ticket_id = session.ticket_id.clone();
            drop(inner);
            for tx in targets {
                self.to_console(&tx, ticket_id.clone(), message.clone());
            }
            return;
        };
        let Some(pending) = inner.pending.get(&relay_id) else {
            debug!(
                device = device_id,
                "answer to a command that is no longer pending"
            );
            return;
        };
        if pending.device_id != device_id {
            drop(inner);
            warn!(
                device = device_id,
                "a kiosk answered a command that was not sent to it"
            );
            self.count(|c| c.foreign_answers += 1);
            return;
        }
        let console_id = pending.command.request_id;
        let clerk_conn = pending.clerk_conn;
        let ticket_id = pending.ticket_id.clone();
        let finished = matches!(message, FromDevice::Completion(_));
        if finished {
            inner.pending.remove(&relay_id);
        }
        let Some(tx) = inner.clerks.get(&clerk_conn).map(|c| c.tx.clone()) else {
            return;
        };
        drop(inner);
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
        self.to_console(&tx, ticket_id, message);
    }

    /// Ends commands whose deadline passed: the console hears `timeout`, the kiosk a cancel.
    pub fn expire(&self, now_ms: i64) {
        let (ended, cancels) = {
            let mut inner = self.lock();
            let ended = take_pending(&mut inner, |p| p.deadline_ms <= now_ms);
            let cancels = cancel_messages(&inner, &ended);
            (ended, cancels)
        };
        if !ended.is_empty() {
            let n = ended.len() as u64;
            self.count(|c| c.commands_timed_out += n);
        }
        self.send_to_kiosks(cancels);
        self.fail(
            ended,
            CompletionCode::Timeout,
            "延伸点终端未在时限内完成操作",
            "the kiosk did not complete the command in time",
        );
    }

    fn send_to_kiosks(&self, messages: Vec<(String, Cancel)>) {
        for (device, cancel) in messages {
            let tx = self.lock().kiosks.get(&device).map(|k| k.tx.clone());
            if let Some(tx) = tx
                && tx
                    .try_send(RelayToKiosk::Device {
                        message: ToDevice::Cancel(cancel),
                    })
                    .is_err()
            {
                self.count(|c| c.dropped_to_kiosks += 1);
            }
        }
    }

    fn to_console(&self, tx: &mpsc::Sender<RelayToClerk>, ticket_id: String, message: FromDevice) {
        if tx
            .try_send(RelayToClerk::Device { ticket_id, message })
            .is_err()
        {
            self.count(|c| c.dropped_to_consoles += 1);
        }
    }

    /// Answers pending commands on the kiosk's behalf.
    fn fail(&self, ended: Vec<(u64, Pending)>, code: CompletionCode, zh: &str, en: &str) {
        for (_, p) in ended {
            let tx = self.lock().clerks.get(&p.clerk_conn).map(|c| c.tx.clone());
            if let Some(tx) = tx {
                let completion = Completion::failed(&p.command, code, zh, en);
                self.to_console(&tx, p.ticket_id, FromDevice::Completion(completion));
            }
        }
    }
}

fn take_pending(inner: &mut Inner, which: impl Fn(&Pending) -> bool) -> Vec<(u64, Pending)> {
    let ids: Vec<u64> = inner
        .pending
        .iter()
        .filter(|(_, p)| which(p))
        .map(|(id, _)| *id)
        .collect();
    ids.into_iter()
        .filter_map(|id| inner.pending.remove(&id).map(|p| (id, p)))
        .collect()
}

/// One cancel per kiosk for the given ended commands.
fn cancel_messages(inner: &Inner, ended: &[(u64, Pending)]) -> Vec<(String, Cancel)> {
    let mut by_device: HashMap<String, Vec<RequestId>> = HashMap::new();
    for (id, p) in ended {
        if inner.kiosks.contains_key(&p.device_id) {
            by_device
                .entry(p.device_id.clone())
                .or_default()
                .push(RequestId(*id));
        }
    }
    by_device
        .into_iter()
        .map(|(d, ids)| (d, Cancel { request_ids: ids }))
        .collect()
}

impl SessionObserver for Links {
    fn session_changed(&self, change: &SessionChange) {
        match change {
            SessionChange::Started(s) => {
                self.lock().serving.insert(s.device_id.clone(), s.clone());
            }
            SessionChange::Ended { session, .. } => {
                let (ended, cancels) = {
                    let mut inner = self.lock();
                    if inner
                        .serving
                        .get(&session.device_id)
                        .is_some_and(|s| s.ticket_id == session.ticket_id)
                    {
                        inner.serving.remove(&session.device_id);
                    }
                    let ended = take_pending(&mut inner, |p| p.ticket_id == session.ticket_id);
                    let cancels = cancel_messages(&inner, &ended);
                    (ended, cancels)
                };
                self.send_to_kiosks(cancels);
                self.fail(
                    ended,
                    CompletionCode::Canceled,
                    "本次办理已结束",
                    "the session has ended",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use protocol::device::{
        AckStatus, Acknowledge, CommandBody, CompletionBody, DeviceKind, Empty,
    };

    use super::*;

    fn session(ticket: &str, device: &str, clerk: &str) -> Session {
        Session {
            ticket_id: ticket.into(),
            ticket_number: "YA001".into(),
            centre_id: "c1".into(),
            device_id: device.into(),
            extension_point_id: None,
            window_id: "w".into(),
            clerk_id: clerk.into(),
            category_id: "civil".into(),
            started_ms: 0,
        }
    }

    fn command(id: u64) -> DeviceCommand {
        DeviceCommand {
            request_id: RequestId(id),
            device: DeviceKind::QrScanner,
            timeout_ms: 1000,
            body: CommandBody::ScannerRead(Empty {}),
        }
    }

    struct Fixture {
        links: Links,
        kiosk_rx: mpsc::Receiver<RelayToKiosk>,
        clerk_rx: mpsc::Receiver<RelayToClerk>,
        other_rx: mpsc::Receiver<RelayToClerk>,
    }

    /// Kiosk k1 serves ticket t1 to clerk "a" (console 1); clerk "b" has console 2.
    fn fixture() -> Fixture {
        let links = Links::new();
        let (ktx, kiosk_rx) = mpsc::channel(8);
        let (ctx, clerk_rx) = mpsc::channel(8);
        let (otx, other_rx) = mpsc::channel(8);
        links.kiosk_connected("k1", 10, ktx);
        links.clerk_connected(1, "a", ctx);
        links.clerk_connected(2, "b", otx);
        links.session_changed(&SessionChange::Started(session("t1", "k1", "a")));
        Fixture {
            links,
            kiosk_rx,
            clerk_rx,
            other_rx,
        }
    }

    fn kiosk_command(rx: &mut mpsc::Receiver<RelayToKiosk>) -> DeviceCommand {
        match rx.try_recv() {
            Ok(RelayToKiosk::Device {
                message: ToDevice::Command(c),
            }) => c,
            other => panic!("expected a device command, got {other:?}"),
        }
    }

    fn console_message(rx: &mut mpsc::Receiver<RelayToClerk>) -> FromDevice {
        match rx.try_recv() {
            Ok(RelayToClerk::Device { message, .. }) => message,
            other => panic!("expected a device message, got {other:?}"),
        }
    }

    #[test]
    fn commands_reach_the_kiosk_and_answers_return_with_the_consoles_id() {
        let mut f = fixture();
        let immediate = f
            .links
            .device_command(&session("t1", "k1", "a"), 1, command(77), 0);
        assert_eq!(immediate, Ok(None));
        let sent = kiosk_command(&mut f.kiosk_rx);
        assert_ne!(
            sent.request_id,
            RequestId(77),
            "the kiosk leg has the relay's own ids"
        );
        f.links.from_kiosk(
            "k1",
            10,
            FromDevice::Acknowledge(Acknowledge {
                request_id: sent.request_id,
                status: AckStatus::Accepted,
            }),
        );
        match console_message(&mut f.clerk_rx) {
            FromDevice::Acknowledge(a) => assert_eq!(a.request_id, RequestId(77)),
            other => panic!("{other:?}"),
        }
        assert!(
            f.other_rx.try_recv().is_err(),
            "other consoles hear nothing"
        );
    }

    #[test]
    fn only_the_serving_clerk_may_send_commands() {
        let f = fixture();
        assert_eq!(
            f.links
                .device_command(&session("t1", "k1", "a"), 2, command(1), 0),
            Err(RouteError::NotYourSession)
        );
        // A session that is not (or no longer) the kiosk's current one.
        assert_eq!(
            f.links
                .device_command(&session("t0", "k1", "a"), 1, command(1), 0),
            Err(RouteError::NotYourSession)
        );
    }

    #[test]
    fn a_kiosk_cannot_answer_another_kiosks_command() {
        let mut f = fixture();
        let (k2tx, _k2rx) = mpsc::channel(8);
        f.links.kiosk_connected("k2", 20, k2tx);
        f.links
            .device_command(&session("t1", "k1", "a"), 1, command(5), 0)
            .expect("routed");
        let sent = kiosk_command(&mut f.kiosk_rx);
        let forged = Completion::failed(&sent, CompletionCode::Success, "", "");
        f.links.from_kiosk("k2", 20, FromDevice::Completion(forged));
        assert!(f.clerk_rx.try_recv().is_err());
        assert_eq!(f.links.counters().foreign_answers, 1);
    }

    #[test]
    fn an_unconnected_kiosk_is_answered_for() {
        let mut f = fixture();
        f.links.kiosk_disconnected("k1", 10);
        let immediate = f
            .links
            .device_command(&session("t1", "k1", "a"), 1, command(9), 0)
            .expect("allowed");
        let c = immediate.expect("answered at once");
        assert_eq!(c.completion_code, CompletionCode::DeviceNotReady);
        assert_eq!(c.body, CompletionBody::ScannerRead(None));
        assert!(f.kiosk_rx.try_recv().is_err());
    }

    #[test]
    fn commands_time_out_and_the_kiosk_is_told_to_cancel() {
        let mut f = fixture();
        f.links
            .device_command(&session("t1", "k1", "a"), 1, command(3), 0)
            .expect("routed");
        let sent = kiosk_command(&mut f.kiosk_rx);
        f.links.expire(1000 + DEADLINE_GRACE_MS - 1);
        assert!(f.clerk_rx.try_recv().is_err(), "not yet");
        f.links.expire(1000 + DEADLINE_GRACE_MS);
        match console_message(&mut f.clerk_rx) {
            FromDevice::Completion(c) => {
                assert_eq!(c.completion_code, CompletionCode::Timeout);
                assert_eq!(c.request_id, RequestId(3));
            }
            other => panic!("{other:?}"),
        }
        match f.kiosk_rx.try_recv() {
            Ok(RelayToKiosk::Device {
                message: ToDevice::Cancel(c),
            }) => {
                assert_eq!(c.request_ids, vec![sent.request_id]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ending_the_session_cancels_its_commands() {
        let mut f = fixture();
        f.links
            .device_command(&session("t1", "k1", "a"), 1, command(4), 0)
            .expect("routed");
        kiosk_command(&mut f.kiosk_rx);
        f.links.session_changed(&SessionChange::Ended {
            session: session("t1", "k1", "a"),
            ended_ms: 10,
        });
        match console_message(&mut f.clerk_rx) {
            FromDevice::Completion(c) => assert_eq!(c.completion_code, CompletionCode::Canceled),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            f.kiosk_rx.try_recv(),
            Ok(RelayToKiosk::Device {
                message: ToDevice::Cancel(_)
            })
        ));
        assert_eq!(
            f.links
                .device_command(&session("t1", "k1", "a"), 1, command(6), 20),
            Err(RouteError::NotYourSession)
        );
    }
}
