//! Who is connected to whom. A kiosk is paired with at most one clerk and the reverse; media
//! only ever flows inside a pair, which is what guarantees a clerk never receives another
//! kiosk's media.

use std::collections::HashMap;

use protocol::media::Slot;

use super::{PeerId, Role, SfuError};

#[derive(Debug, Default, Clone)]
pub struct Pairing {
    partner: HashMap<PeerId, PeerId>,
}

impl Pairing {
    pub fn partner(&self, peer: PeerId) -> Option<PeerId> {
        self.partner.get(&peer).copied()
    }

    pub fn len(&self) -> usize {
        self.partner.len() / 2
    }

    pub fn is_empty(&self) -> bool {
        self.partner.is_empty()
    }

    /// Pair `kiosk` with `clerk`. Connecting a pair that is already connected is a no-op; a
    /// peer already paired with someone else is an error (disconnect first).
    pub fn connect(&mut self, kiosk: PeerId, clerk: PeerId) -> Result<bool, SfuError> {
        match (self.partner(kiosk), self.partner(clerk)) {
            (Some(k), Some(c)) if k == clerk && c == kiosk => return Ok(false),
            (Some(other), _) => return Err(SfuError::AlreadyConnected(kiosk, other)),
            (_, Some(other)) => return Err(SfuError::AlreadyConnected(clerk, other)),
            (None, None) => {}
        }
        if kiosk == clerk {
            return Err(SfuError::NotConnected(kiosk, clerk));
        }
        self.partner.insert(kiosk, clerk);
        self.partner.insert(clerk, kiosk);
        Ok(true)
    }

    pub fn disconnect(&mut self, a: PeerId, b: PeerId) -> Result<(), SfuError> {
        if self.partner(a) != Some(b) {
            return Err(SfuError::NotConnected(a, b));
        }
        self.partner.remove(&a);
        self.partner.remove(&b);
        Ok(())
    }

    /// Remove whatever pair `peer` is in; returns the former partner.
    pub fn remove(&mut self, peer: PeerId) -> Option<PeerId> {
        let other = self.partner.remove(&peer)?;
        self.partner.remove(&other);
        Some(other)
    }

    /// Where a packet from `source` (of role `role`) on `slot` goes: the partner's same slot,
    /// provided the source's role sends that slot. The layout uses the same slot index on both
    /// sides, so a slot is forwarded as itself.
    pub fn route(&self, source: PeerId, role: Role, slot: Slot) -> Option<(PeerId, Slot)> {
        if !role.sends(slot) {
            return None;
        }
        self.partner(source).map(|sink| (sink, slot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: PeerId = PeerId(1);
    const K2: PeerId = PeerId(2);
    const C1: PeerId = PeerId(11);
    const C2: PeerId = PeerId(12);

    #[test]
    fn routes_only_inside_a_pair_and_by_direction() {
        let mut p = Pairing::default();
        assert_eq!(p.route(K1, Role::Kiosk, Slot::KioskCamera), None);
        assert!(p.connect(K1, C1).expect("free peers"));
        assert!(p.connect(K2, C2).expect("free peers"));
        assert_eq!(p.len(), 2);
        assert_eq!(
            p.route(K1, Role::Kiosk, Slot::KioskCamera),
            Some((C1, Slot::KioskCamera))
        );
        assert_eq!(
            p.route(C1, Role::Clerk, Slot::ClerkMicrophone),
            Some((K1, Slot::ClerkMicrophone))
        );
        // Wrong direction: a kiosk never feeds clerk slots, a clerk never feeds kiosk slots.
        assert_eq!(p.route(K1, Role::Kiosk, Slot::ClerkCamera), None);
        assert_eq!(p.route(C1, Role::Clerk, Slot::KioskDocument), None);
        // K2's media only reaches C2.
        assert_eq!(
            p.route(K2, Role::Kiosk, Slot::KioskMicrophone),
            Some((C2, Slot::KioskMicrophone))
        );
    }

    #[test]
    fn a_peer_is_in_one_pair_at_a_time() {
        let mut p = Pairing::default();
        p.connect(K1, C1).expect("free peers");
        assert!(!p.connect(K1, C1).expect("same pair is a no-op"));
        assert!(matches!(
            p.connect(K2, C1),
            Err(SfuError::AlreadyConnected(_, _))
        ));
        assert!(matches!(
            p.connect(K1, C2),
            Err(SfuError::AlreadyConnected(_, _))
        ));
        assert!(p.disconnect(K1, C2).is_err());
        p.disconnect(C1, K1).expect("connected");
        assert!(p.is_empty());
        p.connect(K2, C1).expect("free again");
        assert_eq!(p.remove(C1), Some(K2));
        assert_eq!(p.partner(K2), None);
    }
}
