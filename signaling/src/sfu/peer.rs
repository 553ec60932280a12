//! One client's peer connection as the relay holds it.

use std::time::{Duration, Instant};

use protocol::media::{MediaKind as SlotKind, Slot};
use str0m::Rtc;
use str0m::media::Pt;

use super::rewrite::{SeqTsRewriter, Vp8Rewriter};
use super::slots::SlotMids;
use super::{MediaCodec, PeerId, Role};

/// Why a peer stopped being usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// ICE consent lapsed (no STUN from the client for a while). str0m may recover if checks
    /// resume; a `PeerConnected` follows then.
    IceDisconnected,
    /// ICE/DTLS did not come up within the connect timeout after `add_peer`. The peer is removed.
    ConnectTimeout,
    /// The connection closed or str0m reported an error. The peer is removed.
    Closed,
}

/// Counters for one peer, as returned by `peer_stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerStats {
    pub peer: PeerId,
    pub role: Role,
    pub connected: bool,
    pub partner: Option<PeerId>,
    /// RTP packets received from this peer (it is the source).
    pub rtp_in: u64,
    /// RTP payload bytes received from this peer.
    pub rtp_bytes_in: u64,
    /// RTP packets forwarded to this peer (it is the viewer).
    pub rtp_out: u64,
    /// RTP payload bytes forwarded to this peer.
    pub rtp_bytes_out: u64,
    /// NACKs this peer sent to the relay (as viewer), cumulative.
    pub nacks_from_peer: u64,
    /// NACKs the relay sent to this peer (as source), cumulative.
    pub nacks_to_peer: u64,
    /// PLI + FIR this peer sent (as viewer), cumulative.
    pub keyframe_requests_from_peer: u64,
    /// Keyframe requests the relay sent to this peer (as source).
    pub keyframe_requests_to_peer: u64,
    /// Round-trip time str0m last measured, if any.
    pub rtt: Option<Duration>,
}

/// The viewer side of one slot: how packets from the current source are rewritten.
#[derive(Debug)]
pub(crate) struct SinkTrack {
    pub rewriter: SeqTsRewriter,
    pub vp8: Vp8Rewriter,
    /// Set while a (video) track waits for a keyframe before it forwards anything.
    pub waiting_keyframe: bool,
    /// Last source PT seen and the viewer's PT it maps to (`None` when the viewer did not
    /// negotiate that codec).
    pub pt_map: Option<(Pt, Option<(Pt, MediaCodec)>)>,
    /// From the pairing until this track's first keyframe went out: what the viewer waited
    /// for (logged once, at debug level, under `relay::sfu::join`).
    pub join: Option<JoinTrace>,
}

/// Timestamps of one viewer track's start after a pairing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JoinTrace {
    pub paired_at: Instant,
    /// First keyframe request sent to the source after the pairing.
    pub first_request: Option<Instant>,
    /// Requests sent to the source while this track waited.
    pub requests: u32,
    /// Requests for this track that were not sent (one was already in flight).
    pub coalesced: u32,
}

impl SinkTrack {
    fn new(slot: Slot) -> Self {
        let clock = match slot.kind() {
            SlotKind::Audio => 48_000,
            SlotKind::Video => 90_000,
        };
        Self {
            rewriter: SeqTsRewriter::new(clock),
            vp8: Vp8Rewriter::default(),
            waiting_keyframe: slot.kind() == SlotKind::Video,
            pt_map: None,
            join: None,
        }
    }

    /// A new source is about to feed this track.
    pub fn new_source(&mut self, slot: Slot, now: Instant) {
        self.rewriter.end_segment();
        self.waiting_keyframe = slot.kind() == SlotKind::Video;
        self.pt_map = None;
        self.join = self.waiting_keyframe.then_some(JoinTrace {
            paired_at: now,
            first_request: None,
            requests: 0,
            coalesced: 0,
        });
    }
}

/// One source stream's keyframe request: at most one in flight, whoever asked for it (the
/// viewer's track waiting after a pairing, the viewer's own PLI/FIR, and with it the recording,
/// which records what the viewer is sent).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KeyframeAsk {
    /// When a request was last sent to the source.
    pub last_sent: Option<Instant>,
    /// Sent, and no keyframe from the source since: further asks join this one, and it is
    /// repeated every `max(2 × RTT, minimum)` until a keyframe arrives.
    pub in_flight: bool,
}

pub(crate) struct Peer {
    pub id: PeerId,
    pub role: Role,
    pub rtc: Rtc,
    pub mids: SlotMids,
    pub added_at: Instant,
    /// ICE + DTLS up.
    pub connected: bool,
    /// Removed or failed; swept after the current operation.
    pub dead: bool,
    pub next_timeout: Instant,
    /// The earliest entry this peer has in the core's deadline heap (`None`: none pending).
    pub scheduled: Option<Instant>,
    pub sinks: [SinkTrack; 5],
    /// Source side: the keyframe request state of each slot, shared by every consumer.
    pub keyframe: [KeyframeAsk; 5],
    /// Source side: arrival of the last RTP packet per slot.
    pub last_rtp_at: [Option<Instant>; 5],
    /// Source side: the SSRC whose NACK setting was last checked per slot.
    pub nack_checked: [Option<u32>; 5],
    pub stats: PeerStats,
    /// Last cumulative str0m stats per slot: (nacks, plis+firs) egress, nacks ingress.
    pub last_egress: [(u64, u64); 5],
    pub last_ingress_nacks: [u64; 5],
}

impl Peer {
    pub fn new(id: PeerId, role: Role, rtc: Rtc, mids: SlotMids, now: Instant) -> Self {
        Self {
            id,
            role,
            rtc,
            mids,
            added_at: now,
            connected: false,
            dead: false,
            next_timeout: now,
            scheduled: None,
            sinks: Slot::ORDER.map(SinkTrack::new),
            keyframe: [KeyframeAsk::default(); 5],
            last_rtp_at: [None; 5],
            nack_checked: [None; 5],
            stats: PeerStats {
                peer: id,
                role,
                connected: false,
                partner: None,
                rtp_in: 0,
                rtp_bytes_in: 0,
                rtp_out: 0,
                rtp_bytes_out: 0,
                nacks_from_peer: 0,
                nacks_to_peer: 0,
                keyframe_requests_from_peer: 0,
                keyframe_requests_to_peer: 0,
                rtt: None,
            },
            last_egress: [(0, 0); 5],
            last_ingress_nacks: [0; 5],
        }
    }
}
