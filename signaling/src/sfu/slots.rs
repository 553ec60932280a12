//! The fixed transceiver layout (protocol/src/media.rs) as the relay applies it: which mid of
//! a peer's offer is which [`Slot`], who sends it, and where it is forwarded.

use protocol::media::{MediaKind as SlotKind, Slot};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid};

use super::SfuError;

/// Which end of a call a peer connection belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// 延伸点 kiosk agent: sends slots 0–2, receives 3–4.
    Kiosk,
    /// 远程虚拟窗口 clerk console: sends slots 3–4, receives 0–2.
    Clerk,
}

impl Role {
    /// True when a peer of this role is the source of `slot`.
    pub fn sends(self, slot: Slot) -> bool {
        match self {
            Role::Kiosk => slot.from_kiosk(),
            Role::Clerk => !slot.from_kiosk(),
        }
    }

    /// The role a peer must have to be connected with this one.
    pub fn partner(self) -> Role {
        match self {
            Role::Kiosk => Role::Clerk,
            Role::Clerk => Role::Kiosk,
        }
    }
}

/// Codecs the relay negotiates and can record without transcoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaCodec {
    Vp8,
    H264,
    Opus,
}

impl MediaCodec {
    pub fn from_str0m(codec: Codec) -> Option<Self> {
        match codec {
            Codec::Vp8 => Some(MediaCodec::Vp8),
            Codec::H264 => Some(MediaCodec::H264),
            Codec::Opus => Some(MediaCodec::Opus),
            _ => None,
        }
    }

    pub fn clock_rate(self) -> u32 {
        match self {
            MediaCodec::Vp8 | MediaCodec::H264 => 90_000,
            MediaCodec::Opus => 48_000,
        }
    }

    pub fn is_video(self) -> bool {
        !matches!(self, MediaCodec::Opus)
    }
}

/// The mid of each slot of one peer, in [`Slot::ORDER`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlotMids([Mid; 5]);

impl SlotMids {
    pub(crate) fn mid(&self, slot: Slot) -> Mid {
        self.0[slot.index()]
    }

    pub(crate) fn slot_of(&self, mid: Mid) -> Option<Slot> {
        self.0
            .iter()
            .position(|m| *m == mid)
            .map(|i| Slot::ORDER[i])
    }
}

/// The media sections of an SDP offer in order: (kind as written on the `m=` line, mid).
///
/// str0m parses the offer fully; this only recovers the m-line *order*, which str0m does not
/// expose and which the layout contract is defined by.
pub(crate) fn offer_sections(sdp: &str) -> Result<Vec<(String, Option<String>)>, SfuError> {
    let mut sections: Vec<(String, Option<String>)> = Vec::with_capacity(6);
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix("m=") {
            let kind = rest.split(' ').next().unwrap_or_default().to_string();
            sections.push((kind, None));
        } else if let Some(mid) = line.strip_prefix("a=mid:") {
            match sections.last_mut() {
                Some((_, slot @ None)) => *slot = Some(mid.trim().to_string()),
                Some((_, Some(_))) => {
                    return Err(SfuError::BadSdp("two a=mid in one media section".into()));
                }
                None => return Err(SfuError::BadSdp("a=mid before any m= line".into())),
            }
        }
    }
    Ok(sections)
}

/// Map the offer's first five media sections to slots, checking each kind. A data channel
/// (`m=application`) may follow the five; anything else is a layout mismatch.
pub(crate) fn slot_mids_from_offer(sdp: &str) -> Result<SlotMids, SfuError> {
    let sections = offer_sections(sdp)?;
    let media: Vec<&(String, Option<String>)> = sections
        .iter()
        .filter(|(kind, _)| kind != "application")
        .collect();
    if media.len() != Slot::ORDER.len() {
        return Err(SfuError::LayoutMismatch(format!(
            "expected {} audio/video sections, found {}",
            Slot::ORDER.len(),
            media.len()
        )));
    }
    let mut mids = [Mid::from("0"); 5];
    for (i, slot) in Slot::ORDER.iter().enumerate() {
        let (kind, mid) = media[i];
        let want = match slot.kind() {
            SlotKind::Audio => "audio",
            SlotKind::Video => "video",
        };
        if kind != want {
            return Err(SfuError::LayoutMismatch(format!(
                "section {i} ({slot:?}) is {kind}, expected {want}"
            )));
        }
        let Some(mid) = mid else {
            return Err(SfuError::LayoutMismatch(format!(
                "section {i} has no a=mid"
            )));
        };
        if mid.is_empty() || mid.len() > 16 {
            return Err(SfuError::LayoutMismatch(format!(
                "section {i} has a mid str0m cannot hold"
            )));
        }
        mids[i] = Mid::from(mid.as_str());
    }
    for i in 0..mids.len() {
        if mids[..i].contains(&mids[i]) {
            return Err(SfuError::LayoutMismatch("duplicate mid".into()));
        }
    }
    Ok(SlotMids(mids))
}

/// Check the direction the relay ended up with for a slot (str0m's view of the negotiated
/// media, i.e. the relay's side): the relay must receive what the peer sends and send what it
/// receives. `sendrecv` is tolerated on either side.
pub(crate) fn check_direction(
    role: Role,
    slot: Slot,
    kind: MediaKind,
    relay_direction: Direction,
) -> Result<(), SfuError> {
    let want_kind = match slot.kind() {
        SlotKind::Audio => MediaKind::Audio,
        SlotKind::Video => MediaKind::Video,
    };
    if kind != want_kind {
        return Err(SfuError::LayoutMismatch(format!(
            "{slot:?} has kind {kind:?}"
        )));
    }
    let ok = if role.sends(slot) {
        relay_direction.is_receiving()
    } else {
        relay_direction.is_sending()
    };
    if ok {
        Ok(())
    } else {
        Err(SfuError::LayoutMismatch(format!(
            "{slot:?} of a {role:?} negotiated as {relay_direction} on the relay"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(kinds: &[(&str, &str)]) -> String {
        let mut s = String::from("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n");
        for (kind, mid) in kinds {
            s.push_str(&format!(
                "m={kind} 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:{mid}\r\n"
            ));
        }
        s
    }

    const LAYOUT: [(&str, &str); 5] = [
        ("video", "0"),
        ("video", "1"),
        ("audio", "2"),
        ("video", "3"),
        ("audio", "4"),
    ];

    #[test]
    fn maps_mids_by_position() {
        let mids = slot_mids_from_offer(&offer(&LAYOUT)).expect("valid layout");
        assert_eq!(mids.mid(Slot::KioskCamera), Mid::from("0"));
        assert_eq!(mids.mid(Slot::ClerkMicrophone), Mid::from("4"));
        assert_eq!(mids.slot_of(Mid::from("2")), Some(Slot::KioskMicrophone));
        assert_eq!(mids.slot_of(Mid::from("9")), None);
    }

    #[test]
    fn mids_need_not_be_numbers_and_data_channel_may_follow() {
        let mut l: Vec<(&str, &str)> = vec![
            ("video", "cam"),
            ("video", "doc"),
            ("audio", "mic"),
            ("video", "cc"),
            ("audio", "cm"),
        ];
        l.push(("application", "dc"));
        let mids = slot_mids_from_offer(&offer(&l)).expect("valid layout");
        assert_eq!(mids.slot_of(Mid::from("doc")), Some(Slot::KioskDocument));
    }

    #[test]
    fn rejects_wrong_kind_count_or_duplicate() {
        let mut swapped = LAYOUT;
        swapped.swap(1, 2);
        assert!(matches!(
            slot_mids_from_offer(&offer(&swapped)),
            Err(SfuError::LayoutMismatch(_))
        ));
        assert!(slot_mids_from_offer(&offer(&LAYOUT[..4])).is_err());
        let mut dup = LAYOUT;
        dup[1].1 = "0";
        assert!(slot_mids_from_offer(&offer(&dup)).is_err());
        assert!(slot_mids_from_offer("a=mid:0\r\n").is_err());
        assert!(slot_mids_from_offer("garbage").is_err());
    }

    #[test]
    fn slot_table_directions() {
        // Kiosk sends 0–2, receives 3–4; clerk the opposite.
        for slot in Slot::ORDER {
            assert_eq!(Role::Kiosk.sends(slot), slot.index() < 3);
            assert_eq!(Role::Clerk.sends(slot), slot.index() >= 3);
        }
        assert!(
            check_direction(
                Role::Kiosk,
                Slot::KioskCamera,
                MediaKind::Video,
                Direction::RecvOnly
            )
            .is_ok()
        );
        assert!(
            check_direction(
                Role::Kiosk,
                Slot::KioskCamera,
                MediaKind::Video,
                Direction::SendOnly
            )
            .is_err()
        );
        assert!(
            check_direction(
                Role::Clerk,
                Slot::KioskCamera,
                MediaKind::Video,
                Direction::SendOnly
            )
            .is_ok()
        );
        assert!(
            check_direction(
                Role::Clerk,
                Slot::ClerkMicrophone,
                MediaKind::Video,
                Direction::RecvOnly
            )
            .is_err()
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_offers_never_panic(text in "(m=(video|audio|application) 9 X\r\n|a=mid:[a-z0-9]{0,20}\r\n|[ -~]{0,20}\r\n){0,12}") {
            let _ = slot_mids_from_offer(&text);
        }
    }
}
