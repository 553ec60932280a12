//! The fixed media layout of a peer connection to the relay's SFU.
//!
//! Kiosk agents and clerk consoles connect their media ahead of any call (while waiting, while
//! signed in to a window), so that calling a ticket only switches forwarding on. To make that
//! possible without renegotiation, each role offers the same transceivers in the same order,
//! and the relay maps tracks by their position (`mid` order in the offer):
//!
//! | index | kiosk offer              | clerk offer                  |
//! |-------|--------------------------|------------------------------|
//! | 0     | video sendonly: camera   | video recvonly: kiosk camera |
//! | 1     | video sendonly: document | video recvonly: document     |
//! | 2     | audio sendonly: mic      | audio recvonly: kiosk mic    |
//! | 3     | video recvonly: clerk    | video sendonly: clerk camera |
//! | 4     | audio recvonly: clerk    | audio sendonly: clerk mic    |
//!
//! The client always makes the offer and the relay answers (ICE-lite on the relay), which is
//! also the fast path for ICE on a single host. There is no trickle ICE: the relay's answer
//! carries its one host candidate, and the client's candidates arrive as STUN checks.

use serde::{Deserialize, Serialize};

/// What a media slot carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Slot {
    KioskCamera,
    KioskDocument,
    KioskMicrophone,
    ClerkCamera,
    ClerkMicrophone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Audio,
    Video,
}

impl Slot {
    /// Slots in offer order; the index in this array is the transceiver's position.
    pub const ORDER: [Slot; 5] = [
        Slot::KioskCamera,
        Slot::KioskDocument,
        Slot::KioskMicrophone,
        Slot::ClerkCamera,
        Slot::ClerkMicrophone,
    ];

    pub fn kind(self) -> MediaKind {
        match self {
            Slot::KioskMicrophone | Slot::ClerkMicrophone => MediaKind::Audio,
            _ => MediaKind::Video,
        }
    }

    /// True when the kiosk sends this slot (and the clerk receives it).
    pub fn from_kiosk(self) -> bool {
        matches!(
            self,
            Slot::KioskCamera | Slot::KioskDocument | Slot::KioskMicrophone
        )
    }

    pub fn index(self) -> usize {
        Slot::ORDER
            .iter()
            .position(|s| *s == self)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_direction_are_stable() {
        assert_eq!(Slot::ORDER.len(), 5);
        for (i, slot) in Slot::ORDER.iter().enumerate() {
            assert_eq!(slot.index(), i);
        }
        assert!(Slot::KioskDocument.from_kiosk());
        assert!(!Slot::ClerkMicrophone.from_kiosk());
        assert_eq!(Slot::ClerkMicrophone.kind(), MediaKind::Audio);
    }
}
