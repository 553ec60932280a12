//! What the media service knows, shared between the WebSocket handlers, the session observer
//! and the reconcile task: the sessions that should be live, every kiosk and console
//! connection with its outbox and current peer, and the peers waiting to be removed from the
//! SFU. Plain data behind one mutex; every method is short and never waits.

use std::collections::HashMap;

use protocol::control::{RelayToClerk, RelayToKiosk};
use tokio::sync::mpsc;

use crate::queue::Session;
use crate::sfu::PeerId;

/// A client's current peer in the SFU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerSlot {
    pub id: PeerId,
    /// ICE and DTLS are up.
    pub connected: bool,
}

#[derive(Debug)]
pub struct KioskLink {
    pub conn: u64,
    pub tx: mpsc::Sender<RelayToKiosk>,
    pub peer: Option<PeerSlot>,
}

#[derive(Debug)]
pub struct ConsoleLink {
    pub clerk_id: String,
    pub tx: mpsc::Sender<RelayToClerk>,
    pub peer: Option<PeerSlot>,
    /// Order of the latest accepted offer: a clerk with several consoles is served media on
    /// the one that offered last.
    pub offered: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    Kiosk(String),
    Console(u64),
}

#[derive(Debug, Default)]
pub struct Registry {
    /// Sessions that should be live, by ticket.
    pub desired: HashMap<String, Session>,
    /// Kiosk connections by device.
    pub kiosks: HashMap<String, KioskLink>,
    /// Console connections by connection id.
    pub consoles: HashMap<u64, ConsoleLink>,
    owners: HashMap<PeerId, Owner>,
    /// Peers whose connection was replaced or closed, to be removed from the SFU.
    pub orphans: Vec<PeerId>,
    offers: u64,
}

impl Registry {
    pub fn session_started(&mut self, s: Session) {
        self.desired.insert(s.ticket_id.clone(), s);
    }

    pub fn session_ended(&mut self, s: &Session) {
        // A takeover by another window reports the old session's end after (or before) the new
        // one's start; only the session it names is removed.
        if self
            .desired
            .get(&s.ticket_id)
            .is_some_and(|d| d.window_id == s.window_id && d.clerk_id == s.clerk_id)
        {
            self.desired.remove(&s.ticket_id);
        }
    }

    fn orphan(&mut self, peer: Option<PeerSlot>) {
        if let Some(p) = peer {
            self.owners.remove(&p.id);
            self.orphans.push(p.id);
        }
    }

    pub fn kiosk_online(&mut self, device_id: &str, conn: u64, tx: mpsc::Sender<RelayToKiosk>) {
        let old = self.kiosks.insert(
            device_id.to_owned(),
            KioskLink {
                conn,
                tx,
                peer: None,
            },
        );
        self.orphan(old.and_then(|k| k.peer));
    }

    pub fn kiosk_offline(&mut self, device_id: &str, conn: u64) {
        if self.kiosk_is(device_id, conn) {
            let old = self.kiosks.remove(device_id);
            self.orphan(old.and_then(|k| k.peer));
        }
    }

    pub fn kiosk_is(&self, device_id: &str, conn: u64) -> bool {
        self.kiosks.get(device_id).is_some_and(|k| k.conn == conn)
    }

    /// Record the kiosk's new peer (orphaning the old one). False when the connection went
    /// away meanwhile: the new peer is orphaned instead.
    pub fn kiosk_peer(&mut self, device_id: &str, conn: u64, id: PeerId) -> bool {
        let slot = PeerSlot {
            id,
            connected: false,
        };
        match self.kiosks.get_mut(device_id) {
            Some(k) if k.conn == conn => {
                let old = k.peer.replace(slot);
                self.owners.insert(id, Owner::Kiosk(device_id.to_owned()));
                self.orphan(old);
                true
            }
            _ => {
                self.orphans.push(id);
                false
            }
        }
    }

    pub fn console_online(&mut self, conn: u64, clerk_id: &str, tx: mpsc::Sender<RelayToClerk>) {
        let old = self.consoles.insert(
            conn,
            ConsoleLink {
                clerk_id: clerk_id.to_owned(),
                tx,
                peer: None,
                offered: 0,
            },
        );
        self.orphan(old.and_then(|c| c.peer));
    }

    pub fn console_offline(&mut self, conn: u64) {
        let old = self.consoles.remove(&conn);
        self.orphan(old.and_then(|c| c.peer));
    }

    pub fn console_is(&self, conn: u64) -> bool {
        self.consoles.contains_key(&conn)
    }

    pub fn console_peer(&mut self, conn: u64, id: PeerId) -> bool {
        self.offers += 1;
        let offered = self.offers;
        let slot = PeerSlot {
            id,
            connected: false,
        };
        match self.consoles.get_mut(&conn) {
            Some(c) => {
                let old = c.peer.replace(slot);
                c.offered = offered;
                self.owners.insert(id, Owner::Console(conn));
                self.orphan(old);
                true
            }
            None => {
                self.orphans.push(id);
                false
            }
        }
    }

    fn slot_of(&mut self, peer: PeerId) -> Option<&mut Option<PeerSlot>> {
        match self.owners.get(&peer)? {
            Owner::Kiosk(d) => self.kiosks.get_mut(d).map(|k| &mut k.peer),
            Owner::Console(c) => self.consoles.get_mut(c).map(|c| &mut c.peer),
        }
    }

    /// The SFU reports a peer's ICE/DTLS state. Returns false for a peer no longer current.
    pub fn set_connected(&mut self, peer: PeerId, connected: bool) -> bool {
        match self.slot_of(peer) {
            Some(Some(slot)) if slot.id == peer => {
                slot.connected = connected;
                true
            }
            _ => false,
        }
    }

    /// The SFU dropped a peer on its own (connect timeout, closed): the client must offer again.
    pub fn peer_gone(&mut self, peer: PeerId) {
        if let Some(slot) = self.slot_of(peer)
            && slot.is_some_and(|s| s.id == peer)
        {
            *slot = None;
        }
        self.owners.remove(&peer);
    }

    /// The console that receives `clerk_id`'s media: the one that offered last.
    pub fn console_of(&self, clerk_id: &str) -> Option<(u64, &ConsoleLink)> {
        self.consoles
            .iter()
            .filter(|(_, c)| c.clerk_id == clerk_id && c.peer.is_some())
            .max_by_key(|(_, c)| c.offered)
            .map(|(conn, c)| (*conn, c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(ticket: &str, device: &str, window: &str, clerk: &str) -> Session {
        Session {
            ticket_id: ticket.into(),
            ticket_number: "YA001".into(),
            centre_id: "c1".into(),
            device_id: device.into(),
            extension_point_id: None,
            window_id: window.into(),
            clerk_id: clerk.into(),
            category_id: "civil".into(),
            started_ms: 0,
        }
    }

    #[test]
    fn a_takeover_keeps_the_new_session_whatever_the_order() {
        let mut r = Registry::default();
        let old = session("t1", "k1", "w1", "a");
        let new = session("t1", "k1", "w2", "b");
        r.session_started(old.clone());
        r.session_started(new.clone());
        r.session_ended(&old);
        assert_eq!(r.desired.get("t1"), Some(&new));
        r.session_ended(&new);
        assert!(r.desired.is_empty());
    }

    #[test]
    fn replaced_connections_and_offers_orphan_their_peers() {
        let mut r = Registry::default();
        let (tx, _rx) = mpsc::channel(1);
        r.kiosk_online("k1", 1, tx.clone());
        assert!(r.kiosk_peer("k1", 1, PeerId(10)));
        assert!(
            r.kiosk_peer("k1", 1, PeerId(11)),
            "a re-offer replaces the peer"
        );
        assert_eq!(r.orphans, vec![PeerId(10)]);
        r.kiosk_online("k1", 2, tx);
        assert_eq!(r.orphans, vec![PeerId(10), PeerId(11)]);
        assert!(
            !r.kiosk_peer("k1", 1, PeerId(12)),
            "the old connection's offer"
        );
        assert!(r.orphans.contains(&PeerId(12)));
        r.kiosk_offline("k1", 1);
        assert!(
            r.kiosks.contains_key("k1"),
            "an old connection's end leaves the new one"
        );
        assert!(!r.set_connected(PeerId(11), true));
    }

    #[test]
    fn the_console_that_offered_last_gets_the_media() {
        let mut r = Registry::default();
        let (tx, _rx) = mpsc::channel(1);
        r.console_online(1, "a", tx.clone());
        r.console_online(2, "a", tx.clone());
        r.console_online(3, "b", tx);
        assert!(r.console_of("a").is_none(), "no peer yet");
        assert!(r.console_peer(2, PeerId(20)));
        assert!(r.console_peer(1, PeerId(21)));
        assert_eq!(r.console_of("a").map(|(c, _)| c), Some(1));
        assert!(r.set_connected(PeerId(21), true));
        r.peer_gone(PeerId(21));
        assert_eq!(r.console_of("a").map(|(c, _)| c), Some(2));
        r.console_offline(2);
        assert!(r.console_of("a").is_none());
        assert_eq!(r.orphans, vec![PeerId(20)]);
    }
}
