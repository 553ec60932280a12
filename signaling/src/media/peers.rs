//! The media service's table of SFU peers: which peer each kiosk or console connection has
//! now, and the peers waiting to be removed from the SFU. Who is connected and who is served
//! by whom is the switchboard's ([`crate::session::Switchboard`]); this table only maps its
//! connections to peers. Plain data behind one mutex; every method is short and never waits.

use std::collections::HashMap;

use crate::session::ConnId;
use crate::sfu::PeerId;

/// A connection's current peer in the SFU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerSlot {
    pub id: PeerId,
    /// ICE and DTLS are up.
    pub connected: bool,
}

/// What a peer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Kiosk,
    Console,
}

#[derive(Debug, Default)]
pub struct PeerTable {
    slots: HashMap<ConnId, (Side, PeerSlot)>,
    owners: HashMap<PeerId, ConnId>,
    /// Peers whose connection was replaced or closed, to be removed from the SFU.
    pub orphans: Vec<PeerId>,
}

impl PeerTable {
    /// Records `conn`'s new peer, orphaning the one it replaces.
    pub fn set_peer(&mut self, conn: ConnId, side: Side, id: PeerId) {
        let slot = PeerSlot {
            id,
            connected: false,
        };
        if let Some((_, old)) = self.slots.insert(conn, (side, slot)) {
            self.owners.remove(&old.id);
            self.orphans.push(old.id);
        }
        self.owners.insert(id, conn);
    }

    /// A peer that arrived for a connection already gone: it is removed at once.
    pub fn orphan(&mut self, id: PeerId) {
        self.orphans.push(id);
    }

    /// The connection ended: its peer goes with it.
    pub fn connection_closed(&mut self, conn: ConnId) {
        if let Some((_, old)) = self.slots.remove(&conn) {
            self.owners.remove(&old.id);
            self.orphans.push(old.id);
        }
    }

    /// The connection's current peer.
    pub fn peer(&self, conn: ConnId) -> Option<PeerSlot> {
        self.slots.get(&conn).map(|(_, p)| *p)
    }

    /// The SFU reports a peer's ICE/DTLS state. False for a peer no longer current.
    pub fn set_connected(&mut self, peer: PeerId, connected: bool) -> bool {
        let Some(conn) = self.owners.get(&peer) else {
            return false;
        };
        match self.slots.get_mut(conn) {
            Some((_, slot)) if slot.id == peer => {
                slot.connected = connected;
                true
            }
            _ => false,
        }
    }

    /// The SFU dropped a peer on its own (connect timeout, closed): the client must offer
    /// again. Returns the connection and side it belonged to, if it was current.
    pub fn peer_gone(&mut self, peer: PeerId) -> Option<(ConnId, Side)> {
        let conn = self.owners.remove(&peer)?;
        match self.slots.get(&conn) {
            Some((side, slot)) if slot.id == peer => {
                let side = *side;
                self.slots.remove(&conn);
                Some((conn, side))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaced_and_closed_connections_orphan_their_peers() {
        let mut t = PeerTable::default();
        t.set_peer(ConnId(1), Side::Kiosk, PeerId(10));
        t.set_peer(ConnId(1), Side::Kiosk, PeerId(11));
        assert_eq!(t.orphans, vec![PeerId(10)], "a re-offer replaces the peer");
        assert!(
            !t.set_connected(PeerId(10), true),
            "the old peer is not current"
        );
        assert!(t.set_connected(PeerId(11), true));
        assert_eq!(
            t.peer(ConnId(1)),
            Some(PeerSlot {
                id: PeerId(11),
                connected: true
            })
        );
        t.connection_closed(ConnId(1));
        assert_eq!(t.orphans, vec![PeerId(10), PeerId(11)]);
        assert_eq!(t.peer(ConnId(1)), None);
    }

    #[test]
    fn a_peer_the_sfu_dropped_leaves_its_connection_without_one() {
        let mut t = PeerTable::default();
        t.set_peer(ConnId(2), Side::Console, PeerId(20));
        assert_eq!(t.peer_gone(PeerId(20)), Some((ConnId(2), Side::Console)));
        assert_eq!(t.peer(ConnId(2)), None);
        assert_eq!(t.peer_gone(PeerId(20)), None, "told once");
        assert!(t.orphans.is_empty(), "the SFU already dropped it");
    }
}
