//! The one task that owns the live sessions and moves them towards what the switchboard says
//! should be live (see the module documentation of [`super`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use protocol::control::{KioskMedia, RelayToClerk, RelayToKiosk};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::archive::{Archive, LiveRecording};
use super::peers::{PeerSlot, PeerTable, Side};
use super::{MediaService, inc};
use crate::clock::Clock;
use crate::queue::Session;
use crate::session::{ConnId, MediaRoute, Switchboard};
use crate::sfu::{DisconnectReason, PeerId, RecordSink, SfuError, SfuEvent, SfuHandle};

/// Even without a wake-up, the task looks again this often (retries what failed).
const RESCAN: Duration = Duration::from_secs(1);

/// The peers a live session should have connected, as the registry says now.
struct Wanted {
    ticket: String,
    pair: Option<(PeerId, PeerId)>,
    kiosk_up: bool,
}

/// A session the SFU and recorder are serving.
struct Live {
    session: Session,
    recording: Option<LiveRecording>,
    /// The (kiosk, clerk) peers connected in the SFU for it.
    pair: Option<(PeerId, PeerId)>,
    /// The kiosk's media was up at some point during the session (so its absence is "lost",
    /// not "not yet").
    kiosk_seen: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ToldKiosk {
    conn: ConnId,
    peer: Option<PeerId>,
    sending: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ToldConsole {
    /// The peer that receives the session (so a re-offer during a session hears it again).
    peer: Option<PeerId>,
    ticket: Option<String>,
    kiosk_media: KioskMedia,
}

impl ToldConsole {
    fn idle() -> Self {
        Self {
            peer: None,
            ticket: None,
            kiosk_media: KioskMedia::None,
        }
    }
}

struct Reconciler {
    service: Arc<MediaService>,
    switchboard: Arc<Switchboard>,
    sfu: SfuHandle,
    archive: Arc<Archive>,
    clock: Arc<dyn Clock>,
    live: HashMap<String, Live>,
    told_kiosk: HashMap<String, ToldKiosk>,
    told_console: HashMap<ConnId, ToldConsole>,
    /// Where each live session's media flows, as the switchboard said on this pass.
    routes: HashMap<String, MediaRoute>,
}

pub(crate) async fn run(
    service: Arc<MediaService>,
    switchboard: Arc<Switchboard>,
    sfu: SfuHandle,
    mut events: mpsc::Receiver<SfuEvent>,
    archive: Arc<Archive>,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
) {
    let mut r = Reconciler {
        service,
        switchboard,
        sfu,
        archive,
        clock,
        live: HashMap::new(),
        told_kiosk: HashMap::new(),
        told_console: HashMap::new(),
        routes: HashMap::new(),
    };
    let mut rescan = tokio::time::interval(RESCAN);
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(event) = events.recv() => {
                r.on_event(event);
                while let Ok(event) = events.try_recv() {
                    r.on_event(event);
                }
            }
            () = r.service.wake.notified() => {}
            _ = rescan.tick() => {}
        }
        r.reconcile().await;
    }
    // Open recordings stay as dumps; the next start muxes them (see `archive::recover`).
    info!(live = r.live.len(), "media sessions stopped");
}

fn same_session(a: &Session, b: &Session) -> bool {
    a.device_id == b.device_id && a.window_id == b.window_id && a.clerk_id == b.clerk_id
}

fn kiosk_media(live: &Live, kiosk: Option<PeerSlot>) -> KioskMedia {
    match kiosk {
        Some(p) if p.connected => KioskMedia::Connected,
        _ if live.kiosk_seen => KioskMedia::Lost,
        _ => KioskMedia::None,
    }
}

impl Reconciler {
    fn on_event(&mut self, event: SfuEvent) {
        match event {
            SfuEvent::PeerConnected { peer } => {
                self.service.lock().set_connected(peer, true);
            }
            SfuEvent::PeerDisconnected {
                peer,
                reason: DisconnectReason::IceDisconnected,
            } => {
                self.service.lock().set_connected(peer, false);
            }
            SfuEvent::PeerDisconnected { peer, reason } => {
                debug!(%peer, ?reason, "peer dropped by the SFU");
                let gone = self.service.lock().peer_gone(peer);
                if let Some((conn, Side::Console)) = gone {
                    self.switchboard.console_media_down(conn);
                }
            }
            SfuEvent::KeyframeRequested { .. } => {}
        }
    }

    async fn reconcile(&mut self) {
        self.remove_orphans().await;
        self.routes = self
            .switchboard
            .media_routes()
            .into_iter()
            .map(|r| (r.session.ticket_id.clone(), r))
            .collect();
        let desired: HashMap<String, Session> = self
            .routes
            .iter()
            .map(|(t, r)| (t.clone(), r.session.clone()))
            .collect();

        // Sessions that ended (or moved to another window or clerk).
        let ending: Vec<String> = self
            .live
            .iter()
            .filter(|(t, l)| desired.get(*t).is_none_or(|d| !same_session(d, &l.session)))
            .map(|(t, _)| t.clone())
            .collect();
        for ticket in ending {
            if let Some(live) = self.live.remove(&ticket) {
                self.end(live).await;
            }
        }
        // Sessions that started.
        for s in desired.values() {
            if !self.live.contains_key(&s.ticket_id) {
                let t0 = std::time::Instant::now();
                let recording = self.archive.begin(s, self.clock.now_ms()).await;
                info!(
                    ticket = %s.ticket_number,
                    recorded = recording.is_some(),
                    begin_ms = t0.elapsed().as_millis() as u64,
                    "media session begins"
                );
                self.live.insert(
                    s.ticket_id.clone(),
                    Live {
                        session: s.clone(),
                        recording,
                        pair: None,
                        kiosk_seen: false,
                    },
                );
            }
        }
        self.service
            .metrics
            .sessions_live
            .store(self.live.len() as u64, Ordering::Relaxed);
        self.pair_up().await;
        self.tell();
    }

    async fn remove_orphans(&mut self) {
        let orphans = std::mem::take(&mut self.service.lock().orphans);
        for id in orphans {
            match self.sfu.remove_peer(id).await {
                Ok(()) | Err(SfuError::UnknownPeer(_)) => {}
                Err(e) => {
                    warn!(peer = %id, error = %e, "could not remove a peer; will retry");
                    inc(&self.service.metrics.sfu_call_failures);
                    self.service.lock().orphans.push(id);
                }
            }
        }
    }

    /// Connect each live session's current kiosk and console peers (and disconnect pairs that
    /// are no longer current), disconnects first so a peer is free before it is reused.
    async fn pair_up(&mut self) {
        let wanted: Vec<Wanted> = {
            let peers = self.service.lock();
            self.live
                .keys()
                .map(|ticket| {
                    let route = self.routes.get(ticket);
                    let kiosk = route.and_then(|r| r.kiosk).and_then(|c| peers.peer(c));
                    let console = route.and_then(|r| r.console).and_then(|c| peers.peer(c));
                    Wanted {
                        ticket: ticket.clone(),
                        pair: kiosk.zip(console).map(|(k, c)| (k.id, c.id)),
                        kiosk_up: kiosk.is_some_and(|k| k.connected),
                    }
                })
                .collect()
        };
        for Wanted {
            ticket, pair: want, ..
        } in &wanted
        {
            let Some(live) = self.live.get_mut(ticket) else {
                continue;
            };
            if let Some((k, c)) = live.pair
                && live.pair != *want
            {
                match self.sfu.disconnect(k, c).await {
                    Ok(()) | Err(SfuError::UnknownPeer(_) | SfuError::NotConnected(..)) => {}
                    Err(e) => {
                        warn!(error = %e, "could not disconnect a pair; will retry");
                        inc(&self.service.metrics.sfu_call_failures);
                        continue;
                    }
                }
                live.pair = None;
            }
        }
        for Wanted {
            ticket,
            pair: want,
            kiosk_up,
        } in wanted
        {
            let Some(live) = self.live.get_mut(&ticket) else {
                continue;
            };
            live.kiosk_seen |= kiosk_up;
            let Some((k, c)) = want else { continue };
            if live.pair.is_some() {
                continue;
            }
            let tap = live
                .recording
                .as_ref()
                .map(|r| Arc::new(r.tap.clone()) as Arc<dyn RecordSink>);
            match self.sfu.connect(k, c, tap).await {
                Ok(()) => {
                    live.pair = Some((k, c));
                    inc(&self.service.metrics.pairs_connected);
                    info!(ticket = %live.session.ticket_number, kiosk = %k, clerk = %c, "media connected");
                }
                Err(e) => {
                    debug!(error = %e, "could not connect a pair; will retry");
                    inc(&self.service.metrics.sfu_call_failures);
                }
            }
        }
    }

    async fn end(&mut self, live: Live) {
        if let Some((k, c)) = live.pair {
            // Once this returns no packet of the pair reaches its recording tap.
            if let Err(e) = self.sfu.disconnect(k, c).await {
                debug!(error = %e, "pair already gone at session end");
            }
        }
        info!(ticket = %live.session.ticket_number, "media session ends");
        if let Some(recording) = live.recording {
            let archive = self.archive.clone();
            let ended = self.clock.now_ms();
            // Muxing and sealing take a while; other sessions must not wait for them.
            tokio::spawn(async move { archive.finish(recording, ended).await });
        }
    }

    /// Tell kiosks whether to send and consoles which session they receive, when that
    /// changed. A message that does not fit its outbox is retried on the next pass.
    fn tell(&mut self) {
        let kiosks = self.switchboard.kiosks();
        let consoles = self.switchboard.consoles();
        let peers = self.service.lock();
        let mut dropped = 0u64;
        let serving_devices: HashSet<&str> = self
            .live
            .values()
            .map(|l| l.session.device_id.as_str())
            .collect();
        for (device, conn) in &kiosks {
            let want = ToldKiosk {
                conn: *conn,
                peer: peers.peer(*conn).map(|p| p.id),
                sending: serving_devices.contains(device.as_str()),
            };
            if self.told_kiosk.get(device) == Some(&want) {
                continue;
            }
            let message = RelayToKiosk::MediaSending {
                sending: want.sending,
            };
            if self.switchboard.send_to_kiosk(*conn, message) {
                self.told_kiosk.insert(device.clone(), want);
            } else {
                dropped += 1;
            }
        }
        self.told_kiosk
            .retain(|d, _| kiosks.iter().any(|(k, _)| k == d));

        for (conn, clerk_id) in &consoles {
            let want = self.console_state(&peers, *conn, clerk_id);
            let told = self
                .told_console
                .get(conn)
                .cloned()
                .unwrap_or_else(ToldConsole::idle);
            if told == want {
                continue;
            }
            let message = RelayToClerk::MediaSession {
                ticket_id: want.ticket.clone(),
                kiosk_media: want.kiosk_media,
            };
            if self.switchboard.send_to_console(*conn, message) {
                self.told_console.insert(*conn, want);
            } else {
                dropped += 1;
            }
        }
        self.told_console
            .retain(|c, _| consoles.iter().any(|(k, _)| k == c));
        drop(peers);
        if dropped > 0 {
            self.service
                .metrics
                .messages_dropped
                .fetch_add(dropped, Ordering::Relaxed);
        }
    }

    /// What console `conn` should know: the session of its clerk, if it is the console that
    /// receives that session's media.
    fn console_state(&self, peers: &PeerTable, conn: ConnId, clerk_id: &str) -> ToldConsole {
        let Some(live) = self.live.values().find(|l| l.session.clerk_id == clerk_id) else {
            return ToldConsole::idle();
        };
        let route = self.routes.get(&live.session.ticket_id);
        if route.and_then(|r| r.console) != Some(conn) {
            return ToldConsole::idle();
        }
        ToldConsole {
            peer: peers.peer(conn).map(|p| p.id),
            ticket: Some(live.session.ticket_id.clone()),
            kiosk_media: kiosk_media(
                live,
                route.and_then(|r| r.kiosk).and_then(|c| peers.peer(c)),
            ),
        }
    }
}
