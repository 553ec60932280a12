//! The sans-IO SFU core: str0m peers, the pairing table and the forwarding path.
//!
//! Longer than the workspace's usual file (≈1,000 lines) on purpose: it is one state machine
//! whose per-datagram path (receive, route, rewrite, forward, record) touches every table here,
//! and splitting it would scatter that hot path over files (str0m's own `lib.rs` is 2,000+
//! lines for the same reason). Pieces with no state of their own are already apart: `rewrite`,
//! `keyframe`, `slots`, `routing`, `peer`, `metrics`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::media::Slot;
use str0m::change::SdpOffer;
use str0m::media::{KeyframeRequestKind, Pt};
use str0m::net::{DatagramRecv, Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Vp8Descriptor};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use super::keyframe::starts_keyframe;
use super::metrics::{self, SfuMetrics};
use super::peer::{DisconnectReason, Peer, PeerStats};
use super::rewrite::{Rewritten, SourceKey};
use super::routing::Pairing;
use super::slots::{check_direction, slot_mids_from_offer};
use super::{MediaCodec, PeerId, Role, SfuError};

/// Settings of the core. `candidate` is the address clients reach the relay's UDP socket at
/// (advertised address + the socket's port); it is the only candidate in every answer and the
/// `destination` the driver passes for every datagram.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    pub candidate: SocketAddr,
    pub max_peers: usize,
    /// A peer whose ICE/DTLS is not up this long after `add_peer` is dropped.
    pub connect_timeout: Duration,
    /// A keyframe request still unanswered is repeated every `max(2 × RTT, keyframe_retry_min)`
    /// of its source, at most `keyframe_retry_max` apart. Browser senders ignore a request
    /// within 300 ms of the last one they honoured, so a repeat is what rescues a swallowed one.
    pub keyframe_retry_min: Duration,
    pub keyframe_retry_max: Duration,
    /// A new keyframe request (not a repeat) goes to a source at most this often per stream.
    pub keyframe_min_interval: Duration,
    /// How many forwarded packets may wait in `poll_recorded` before new ones are dropped.
    pub record_queue: usize,
    /// How often str0m reports per-peer stats (NACK/PLI counters, RTT).
    pub stats_interval: Duration,
    /// Retransmissions towards a viewer stop while they exceed this share of the bytes sent in
    /// the last second (str0m's default is 0.15, which gives up on a link with a few percent
    /// loss during a keyframe; the viewer's PLI is the fallback either way).
    pub rtx_ratio_cap: Option<f32>,
    /// Packets kept per outgoing video track to answer NACKs (str0m keeps them ≤ 3 s).
    pub rtx_cache_packets: usize,
}

impl SfuConfig {
    pub fn new(candidate: SocketAddr) -> Self {
        Self {
            candidate,
            max_peers: 512,
            connect_timeout: Duration::from_secs(30),
            keyframe_retry_min: Duration::from_millis(200),
            keyframe_retry_max: Duration::from_millis(1000),
            keyframe_min_interval: Duration::from_millis(300),
            record_queue: 4096,
            stats_interval: Duration::from_secs(1),
            rtx_ratio_cap: Some(0.3),
            rtx_cache_packets: 1000,
        }
    }
}

/// A source slot without RTP for this long is idle: a waiting viewer track stops asking it for
/// keyframes until packets arrive again.
const SOURCE_IDLE: Duration = Duration::from_secs(2);

/// A datagram to send from the SFU's socket.
#[derive(Debug)]
pub struct SfuTransmit {
    pub destination: SocketAddr,
    pub contents: Vec<u8>,
}

/// What the session layer hears from the SFU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SfuEvent {
    /// ICE and DTLS are up: the peer can be connected to a partner with media flowing at once.
    PeerConnected { peer: PeerId },
    /// See [`DisconnectReason`]; for `ConnectTimeout` and `Closed` the peer is already removed.
    PeerDisconnected {
        peer: PeerId,
        reason: DisconnectReason,
    },
    /// A keyframe was requested from `source` for `slot` (relayed from its viewer, or on
    /// connect).
    KeyframeRequested { source: PeerId, slot: Slot },
}

/// Who asked for a keyframe (they differ only in throttling).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    /// A pairing started: the viewer's track waits for its first keyframe. Not throttled.
    Pairing,
    /// The viewer sent PLI/FIR, or its waiting track saw a delta frame.
    Viewer,
}

/// One forwarded packet of a recorded pair, as received from its source (original SSRC,
/// sequence number and timestamp).
#[derive(Debug, Clone)]
pub struct RecordedRtp {
    pub kiosk: PeerId,
    pub clerk: PeerId,
    pub slot: Slot,
    pub codec: MediaCodec,
    pub pt: u8,
    pub ssrc: u32,
    /// Extended (64-bit) sequence number.
    pub seq: u64,
    pub rtp_ts: u32,
    pub marker: bool,
    /// Arrival time at the relay.
    pub arrival: Instant,
    pub payload: Arc<[u8]>,
}

// Packets stay inline (no Box): the queue's slots are reused, so forwarding allocates nothing.
#[allow(clippy::large_enum_variant)]
enum Work {
    Rtp {
        source: PeerId,
        slot: Slot,
        packet: RtpPacket,
    },
    Keyframe {
        viewer: PeerId,
        slot: Slot,
        kind: KeyframeRequestKind,
    },
}

pub struct Sfu {
    config: SfuConfig,
    metrics: Arc<SfuMetrics>,
    peers: HashMap<PeerId, Peer>,
    /// Last peer that accepted traffic from a source address (demux fast path).
    by_addr: HashMap<SocketAddr, PeerId>,
    pairing: Pairing,
    /// Kiosks whose pair is being recorded.
    recording: HashSet<PeerId>,
    transmits: VecDeque<SfuTransmit>,
    events: VecDeque<SfuEvent>,
    recorded: VecDeque<RecordedRtp>,
    work: VecDeque<Work>,
    /// Reused for "which peers are due" so timeouts allocate nothing.
    scratch_ids: Vec<PeerId>,
    /// When each peer's str0m instance wants its next timeout, and when an unconnected peer's
    /// connect timeout expires: a timeout wakes only the peers that are due, instead of a walk
    /// over every peer per wake-up. Entries are lazy: one whose peer rescheduled (see
    /// `Peer::scheduled`) or left is skipped when it comes up.
    deadlines: BinaryHeap<Reverse<(Instant, PeerId)>>,
    /// Source streams with a keyframe request in flight (entries whose request was answered
    /// are removed on the next timeout).
    keyframe_waits: Vec<(PeerId, Slot)>,
    scratch_waits: Vec<(PeerId, Slot)>,
    /// Set when a peer may have died since the last [`Sfu::sweep`]; the sweep, which walks
    /// every peer, is skipped otherwise (it followed every datagram).
    maybe_dead: bool,
}

impl Sfu {
    pub fn new(config: SfuConfig, metrics: Arc<SfuMetrics>) -> Self {
        Self {
            config,
            metrics,
            peers: HashMap::new(),
            by_addr: HashMap::new(),
            pairing: Pairing::default(),
            recording: HashSet::new(),
            transmits: VecDeque::with_capacity(64),
            events: VecDeque::new(),
            recorded: VecDeque::with_capacity(64),
            work: VecDeque::with_capacity(16),
            scratch_ids: Vec::new(),
            deadlines: BinaryHeap::new(),
            keyframe_waits: Vec::new(),
            scratch_waits: Vec::new(),
            maybe_dead: false,
        }
    }

    pub fn config(&self) -> &SfuConfig {
        &self.config
    }

    pub fn metrics(&self) -> &Arc<SfuMetrics> {
        &self.metrics
    }

    /// Accept a client's offer and return the relay's answer (SDP text).
    pub fn add_peer(
        &mut self,
        id: PeerId,
        role: Role,
        offer_sdp: &str,
        now: Instant,
    ) -> Result<String, SfuError> {
        if self.peers.contains_key(&id) {
            return Err(SfuError::PeerExists(id));
        }
        if self.peers.len() >= self.config.max_peers {
            return Err(SfuError::TooManyPeers(self.config.max_peers));
        }
        let result = self.negotiate(id, role, offer_sdp, now);
        let peer = match result {
            Ok(peer) => peer,
            Err(e) => {
                metrics::inc(&self.metrics.offers_refused);
                return Err(e);
            }
        };
        let (peer, answer) = peer;
        self.deadlines
            .push(Reverse((now + self.config.connect_timeout, id)));
        self.peers.insert(id, peer);
        metrics::set(&self.metrics.peers, self.peers.len() as u64);
        self.drain(id, now);
        self.run_work(now);
        self.sweep();
        Ok(answer)
    }

    fn negotiate(
        &self,
        id: PeerId,
        role: Role,
        offer_sdp: &str,
        now: Instant,
    ) -> Result<(Peer, String), SfuError> {
        let mids = slot_mids_from_offer(offer_sdp)?;
        let offer =
            SdpOffer::from_sdp_string(offer_sdp).map_err(|e| SfuError::BadSdp(e.to_string()))?;
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_vp8(true)
            .enable_h264(true)
            .enable_opus(true, false)
            .set_stats_interval(Some(self.config.stats_interval))
            .build(now);
        let candidate = Candidate::host(self.config.candidate, "udp")
            .map_err(|e| SfuError::OfferRefused(format!("local candidate: {e}")))?;
        if rtc.add_local_candidate(candidate).is_none() {
            return Err(SfuError::OfferRefused("local candidate refused".into()));
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| SfuError::OfferRefused(e.to_string()))?;
        for slot in Slot::ORDER {
            let mid = mids.mid(slot);
            let Some(media) = rtc.media(mid) else {
                return Err(SfuError::LayoutMismatch(format!(
                    "{slot:?} mid not negotiated"
                )));
            };
            check_direction(role, slot, media.kind(), media.direction())?;
            if media.remote_pts().is_empty() {
                return Err(SfuError::LayoutMismatch(format!(
                    "{slot:?} has no codec in common with the relay"
                )));
            }
            if !role.sends(slot) && slot.kind() == protocol::media::MediaKind::Video {
                let mut api = rtc.direct_api();
                if let Some(tx) = api.stream_tx_by_mid(mid, None) {
                    tx.set_rtx_cache(
                        self.config.rtx_cache_packets,
                        Duration::from_secs(3),
                        self.config.rtx_ratio_cap,
                    );
                }
            }
        }
        Ok((Peer::new(id, role, rtc, mids, now), answer.to_sdp_string()))
    }

    /// Drop a peer (and its pair, if any). No event is emitted for a removal the caller asked
    /// for.
    pub fn remove_peer(&mut self, id: PeerId, now: Instant) -> Result<(), SfuError> {
        let Some(peer) = self.peers.get_mut(&id) else {
            return Err(SfuError::UnknownPeer(id));
        };
        peer.rtc.disconnect();
        self.drain(id, now);
        self.forget(id);
        self.run_work(now);
        Ok(())
    }

    /// Switch forwarding on between a kiosk and a clerk and, optionally, record the pair.
    /// Requests keyframes from both video sources so the viewers' first frames come fast.
    pub fn connect(
        &mut self,
        kiosk: PeerId,
        clerk: PeerId,
        record: bool,
        now: Instant,
    ) -> Result<(), SfuError> {
        self.check_role(kiosk, Role::Kiosk)?;
        self.check_role(clerk, Role::Clerk)?;
        let newly = self.pairing.connect(kiosk, clerk)?;
        if record {
            self.recording.insert(kiosk);
        } else {
            self.recording.remove(&kiosk);
        }
        if !newly {
            return Ok(());
        }
        metrics::set(&self.metrics.pairs, self.pairing.len() as u64);
        for (viewer, partner) in [(clerk, kiosk), (kiosk, clerk)] {
            if let Some(peer) = self.peers.get_mut(&viewer) {
                peer.stats.partner = Some(partner);
                let role = peer.role;
                for slot in Slot::ORDER {
                    if !role.sends(slot) {
                        peer.sinks[slot.index()].new_source(slot, now);
                    }
                }
            }
        }
        for (source, role) in [(kiosk, Role::Kiosk), (clerk, Role::Clerk)] {
            for slot in Slot::ORDER {
                if role.sends(slot) && slot.kind() == protocol::media::MediaKind::Video {
                    self.ask_keyframe(source, slot, KeyframeRequestKind::Pli, Ask::Pairing, now);
                }
            }
        }
        self.run_work(now);
        self.sweep();
        Ok(())
    }

    /// Switch forwarding off between a kiosk and a clerk (and stop recording the pair).
    pub fn disconnect(&mut self, kiosk: PeerId, clerk: PeerId) -> Result<(), SfuError> {
        self.pairing.disconnect(kiosk, clerk)?;
        self.recording.remove(&kiosk);
        self.recording.remove(&clerk);
        for id in [kiosk, clerk] {
            if let Some(peer) = self.peers.get_mut(&id) {
                peer.stats.partner = None;
            }
        }
        metrics::set(&self.metrics.pairs, self.pairing.len() as u64);
        Ok(())
    }

    pub fn partner(&self, peer: PeerId) -> Option<PeerId> {
        self.pairing.partner(peer)
    }

    pub fn peer_stats(&self, id: PeerId) -> Option<PeerStats> {
        self.peers.get(&id).map(|p| p.stats)
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Feed one received datagram. `destination` is the address it was sent to, i.e. the
    /// advertised candidate address.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), SfuError> {
        metrics::inc(&self.metrics.datagrams_in);
        metrics::add(&self.metrics.bytes_in, bytes.len() as u64);
        let Ok(contents) = DatagramRecv::try_from(bytes) else {
            metrics::inc(&self.metrics.datagrams_rejected);
            return Err(SfuError::MalformedDatagram);
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        let cached = self
            .by_addr
            .get(&source)
            .copied()
            .filter(|id| self.peers.get(id).is_some_and(|p| p.rtc.accepts(&input)));
        let found = cached.or_else(|| {
            self.peers
                .values()
                .find(|p| !p.dead && p.rtc.accepts(&input))
                .map(|p| p.id)
        });
        let Some(id) = found else {
            metrics::inc(&self.metrics.datagrams_rejected);
            return Err(SfuError::NoPeerForDatagram);
        };
        if cached.is_none() {
            self.by_addr.insert(source, id);
        }
        let Some(peer) = self.peers.get_mut(&id) else {
            return Err(SfuError::UnknownPeer(id));
        };
        if let Err(e) = peer.rtc.handle_input(input) {
            tracing::debug!(peer = %id, error = %e, "peer input failed; closing");
            peer.rtc.disconnect();
        }
        self.drain(id, now);
        self.run_work(now);
        self.sweep();
        Ok(())
    }

    /// Advance time: str0m timers, connect timeouts, keyframe retries.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = std::mem::take(&mut self.scratch_ids);
        due.clear();
        let connect_timeout = self.config.connect_timeout;
        while let Some(&Reverse((at, id))) = self.deadlines.peek() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let Some(peer) = self.peers.get_mut(&id) else {
                continue;
            };
            if !peer.connected && !peer.dead && now >= peer.added_at + connect_timeout {
                peer.dead = true;
                self.maybe_dead = true;
                self.events.push_back(SfuEvent::PeerDisconnected {
                    peer: peer.id,
                    reason: DisconnectReason::ConnectTimeout,
                });
            }
            if peer.scheduled != Some(at) {
                continue;
            }
            peer.scheduled = None;
            if peer.next_timeout <= now {
                due.push(id);
            } else {
                // Woken early (the deadline moved later since): wait for the real one.
                peer.scheduled = Some(peer.next_timeout);
                self.deadlines.push(Reverse((peer.next_timeout, id)));
            }
        }
        for id in due.drain(..) {
            if let Some(peer) = self.peers.get_mut(&id)
                && let Err(e) = peer.rtc.handle_input(Input::Timeout(now))
            {
                tracing::debug!(peer = %id, error = %e, "peer timeout failed; closing");
                peer.rtc.disconnect();
            }
            self.drain(id, now);
        }
        self.scratch_ids = due;
        self.retry_keyframes(now);
        self.run_work(now);
        self.sweep();
    }

    /// The next time `handle_timeout` must be called, if any peer exists.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut earliest = |t: Instant| {
            next = Some(next.map_or(t, |n| n.min(t)));
        };
        if let Some(Reverse((at, _))) = self.deadlines.peek() {
            earliest(*at);
        }
        for (source, slot) in &self.keyframe_waits {
            if let Some(at) = self.keyframe_retry_at(*source, *slot) {
                earliest(at);
            }
        }
        next
    }

    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<SfuTransmit> {
        self.transmits.pop_front()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<SfuEvent> {
        self.events.pop_front()
    }

    #[must_use]
    pub fn poll_recorded(&mut self) -> Option<RecordedRtp> {
        self.recorded.pop_front()
    }

    // ---------------------------------------------------------------------------------------

    fn check_role(&self, id: PeerId, expected: Role) -> Result<(), SfuError> {
        let peer = self.peers.get(&id).ok_or(SfuError::UnknownPeer(id))?;
        if peer.role != expected {
            return Err(SfuError::WrongRole {
                peer: id,
                expected,
                actual: peer.role,
            });
        }
        Ok(())
    }

    /// When the keyframe request in flight on `source`'s `slot` is due to be repeated.
    fn keyframe_retry_at(&self, source: PeerId, slot: Slot) -> Option<Instant> {
        let peer = self.peers.get(&source)?;
        let ask = peer.keyframe[slot.index()];
        if !ask.in_flight {
            return None;
        }
        let rtt = peer.stats.rtt.unwrap_or_default();
        let every = (2 * rtt)
            .max(self.config.keyframe_retry_min)
            .min(self.config.keyframe_retry_max);
        Some(ask.last_sent? + every)
    }

    /// Repeat every keyframe request that is still unanswered after its retry interval; give
    /// up on a source that stopped sending on that slot or lost its partner (a waiting track
    /// asks again when its packets arrive).
    fn retry_keyframes(&mut self, now: Instant) {
        if self.keyframe_waits.is_empty() {
            return;
        }
        let mut waits = std::mem::take(&mut self.scratch_waits);
        waits.clear();
        waits.append(&mut self.keyframe_waits);
        for (source, slot) in waits.drain(..) {
            let Some(at) = self.keyframe_retry_at(source, slot) else {
                continue; // answered, or the source is gone
            };
            if now < at {
                self.keyframe_waits.push((source, slot));
                continue;
            }
            let paired = self.pairing.partner(source).is_some();
            let Some(peer) = self.peers.get_mut(&source) else {
                continue;
            };
            let sending = peer.last_rtp_at[slot.index()].is_some_and(|t| now < t + SOURCE_IDLE);
            if !paired || !sending {
                peer.keyframe[slot.index()].in_flight = false;
                continue;
            }
            if self.send_keyframe_request(source, slot, KeyframeRequestKind::Pli, now) {
                metrics::inc(&self.metrics.keyframe_retries);
                self.keyframe_waits.push((source, slot));
            } else if let Some(peer) = self.peers.get_mut(&source) {
                peer.keyframe[slot.index()].in_flight = false;
            }
        }
        self.scratch_waits = waits;
    }

    /// Ask `source` for a keyframe on `slot`. One request per source stream is in flight at a
    /// time: an ask while one is unanswered joins it (the keyframe that answers it serves every
    /// consumer), and a new request follows the last one no sooner than
    /// `keyframe_min_interval` unless a pairing asks.
    fn ask_keyframe(
        &mut self,
        source: PeerId,
        slot: Slot,
        kind: KeyframeRequestKind,
        ask: Ask,
        now: Instant,
    ) {
        let min_interval = self.config.keyframe_min_interval;
        let viewer = self.pairing.partner(source);
        let Some(peer) = self.peers.get_mut(&source) else {
            return;
        };
        let state = peer.keyframe[slot.index()];
        let throttled =
            ask != Ask::Pairing && state.last_sent.is_some_and(|t| now < t + min_interval);
        if state.in_flight || throttled {
            metrics::inc(&self.metrics.keyframe_requests_coalesced);
            if let Some(trace) = viewer
                .and_then(|v| self.peers.get_mut(&v))
                .and_then(|v| v.sinks[slot.index()].join.as_mut())
            {
                trace.coalesced += 1;
            }
            return;
        }
        if self.send_keyframe_request(source, slot, kind, now) {
            if let Some(peer) = self.peers.get_mut(&source) {
                peer.keyframe[slot.index()].in_flight = true;
            }
            if !self.keyframe_waits.contains(&(source, slot)) {
                self.keyframe_waits.push((source, slot));
            }
        }
    }

    /// Send one keyframe request to `source` on `slot`; false when nothing was received on that
    /// slot yet (there is no stream to ask; the first packets make the waiting track ask).
    fn send_keyframe_request(
        &mut self,
        source: PeerId,
        slot: Slot,
        kind: KeyframeRequestKind,
        now: Instant,
    ) -> bool {
        let viewer = self.pairing.partner(source);
        let Some(peer) = self.peers.get_mut(&source) else {
            return false;
        };
        let kind = if kind == KeyframeRequestKind::Fir
            && !peer.rtc.codec_config().iter().any(|p| p.fb_fir())
        {
            KeyframeRequestKind::Pli
        } else {
            kind
        };
        let mid = peer.mids.mid(slot);
        let mut api = peer.rtc.direct_api();
        let Some(stream) = api.stream_rx_by_mid(mid, None) else {
            return false;
        };
        stream.request_keyframe(kind);
        peer.keyframe[slot.index()].last_sent = Some(now);
        peer.stats.keyframe_requests_to_peer += 1;
        metrics::inc(&self.metrics.keyframe_requests);
        self.events
            .push_back(SfuEvent::KeyframeRequested { source, slot });
        if let Some(trace) = viewer
            .and_then(|v| self.peers.get_mut(&v))
            .and_then(|v| v.sinks[slot.index()].join.as_mut())
        {
            trace.first_request.get_or_insert(now);
            trace.requests += 1;
        }
        self.drain(source, now);
        true
    }

    /// Poll one peer's str0m instance until it returns a timeout: queue transmits, turn events
    /// into work. Must follow every mutation of that instance.
    fn drain(&mut self, id: PeerId, now: Instant) {
        let Sfu {
            peers,
            transmits,
            events,
            work,
            metrics: m,
            maybe_dead,
            deadlines,
            config,
            ..
        } = self;
        let Some(peer) = peers.get_mut(&id) else {
            return;
        };
        let was_connected = peer.connected;
        loop {
            if !peer.rtc.is_alive() {
                mark_closed(peer, events, m);
                *maybe_dead = true;
                return;
            }
            let output = match peer.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    tracing::debug!(peer = %id, error = %e, "peer output failed; closing");
                    peer.rtc.disconnect();
                    mark_closed(peer, events, m);
                    *maybe_dead = true;
                    return;
                }
            };
            match output {
                Output::Timeout(t) => {
                    let next = t.max(now);
                    peer.next_timeout = next;
                    if peer.scheduled.is_none_or(|s| next < s) {
                        peer.scheduled = Some(next);
                        deadlines.push(Reverse((next, id)));
                    }
                    if was_connected && !peer.connected && !peer.dead {
                        // Lost ICE: its connect limit applies again (add_peer queued the
                        // first check).
                        let limit = (peer.added_at + config.connect_timeout).max(now);
                        deadlines.push(Reverse((limit, id)));
                    }
                    return;
                }
                Output::Transmit(t) => {
                    metrics::inc(&m.datagrams_out);
                    metrics::add(&m.bytes_out, t.contents.len() as u64);
                    transmits.push_back(SfuTransmit {
                        destination: t.destination,
                        contents: t.contents.into(),
                    });
                }
                Output::Event(e) => on_event(peer, e, events, work, m),
            }
        }
    }

    fn run_work(&mut self, now: Instant) {
        while let Some(w) = self.work.pop_front() {
            match w {
                Work::Rtp {
                    source,
                    slot,
                    packet,
                } => self.forward(source, slot, packet, now),
                Work::Keyframe { viewer, slot, kind } => {
                    let Some(source) = self.pairing.partner(viewer) else {
                        continue;
                    };
                    self.ask_keyframe(source, slot, kind, Ask::Viewer, now);
                }
            }
        }
    }

    /// The forwarding path: one RTP packet from `source` on `slot` to its partner, if any.
    fn forward(&mut self, source: PeerId, slot: Slot, packet: RtpPacket, now: Instant) {
        let m: &SfuMetrics = &self.metrics;
        let Some(src_role) = self.peers.get(&source).map(|p| p.role) else {
            return;
        };
        let Some((sink_id, _)) = self.pairing.route(source, src_role, slot) else {
            metrics::inc(&m.rtp_dropped_unconnected);
            return;
        };
        let [Some(src), Some(sink)] = self.peers.get_disjoint_mut([&source, &sink_id]) else {
            metrics::inc(&m.rtp_dropped_other);
            return;
        };
        if !sink.connected || sink.dead {
            metrics::inc(&m.rtp_dropped_other);
            return;
        }
        let track = &mut sink.sinks[slot.index()];
        let in_pt = packet.header.payload_type;
        let mapped = match track.pt_map {
            Some((pt, mapped)) if pt == in_pt => mapped,
            _ => {
                let mapped = map_pt(&src.rtc, &sink.rtc, sink.mids.mid(slot), in_pt);
                track.pt_map = Some((in_pt, mapped));
                mapped
            }
        };
        let Some((out_pt, codec)) = mapped else {
            metrics::inc(&m.rtp_dropped_other);
            return;
        };
        let key = SourceKey {
            peer: source.0,
            ssrc: *packet.header.ssrc,
        };
        let in_seq = *packet.seq_no;
        if codec.is_video() && track.rewriter.starts_segment(key, in_seq) {
            track.waiting_keyframe = true;
        }
        let ask = &mut src.keyframe[slot.index()];
        if track.waiting_keyframe || ask.in_flight {
            let key_start = starts_keyframe(codec, &packet.payload);
            if key_start {
                // Answers the request in flight, whoever asked.
                ask.in_flight = false;
            }
            if track.waiting_keyframe {
                if !key_start {
                    metrics::inc(&m.rtp_dropped_waiting_keyframe);
                    let min_interval = self.config.keyframe_min_interval;
                    if !ask.in_flight && ask.last_sent.is_none_or(|t| now >= t + min_interval) {
                        // Nothing asked lately (the source just started sending on this slot,
                        // or its stream changed): ask now, throttled.
                        self.work.push_back(Work::Keyframe {
                            viewer: sink_id,
                            slot,
                            kind: KeyframeRequestKind::Pli,
                        });
                    }
                    return;
                }
                track.waiting_keyframe = false;
                if let Some(j) = track.join.take() {
                    let ms = |t: Instant| t.saturating_duration_since(j.paired_at).as_millis();
                    tracing::debug!(
                        target: "relay::sfu::join",
                        viewer = %sink_id,
                        source = %source,
                        ?slot,
                        first_request_ms = j.first_request.map(ms),
                        requests = j.requests,
                        coalesced = j.coalesced,
                        key_in_ms = ms(packet.timestamp),
                        key_out_ms = ms(now),
                        "first keyframe after pairing"
                    );
                }
            }
        }
        let (seq, ts, new_segment) =
            match track
                .rewriter
                .rewrite(key, in_seq, packet.header.timestamp, now)
            {
                Rewritten::Forward {
                    seq,
                    ts,
                    new_segment,
                } => (seq, ts, new_segment),
                Rewritten::Stale => {
                    metrics::inc(&m.rtp_dropped_other);
                    return;
                }
            };
        let vp8_patch = if codec == MediaCodec::Vp8 {
            vp8_patch(&mut track.vp8, &packet.payload, new_segment)
        } else {
            None
        };
        let ext = ExtensionValues {
            audio_level: packet.header.ext_vals.audio_level,
            voice_activity: packet.header.ext_vals.voice_activity,
            video_orientation: packet.header.ext_vals.video_orientation,
            ..Default::default()
        };
        let mid = sink.mids.mid(slot);
        let mut api = sink.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, None) else {
            metrics::inc(&m.rtp_dropped_other);
            return;
        };
        let payload_len = packet.payload.len() as u64;
        let mut write = RtpWrite::new(
            out_pt,
            seq.into(),
            ts,
            packet.timestamp,
            Arc::clone(&packet.payload),
        )
        .marker(packet.header.marker)
        .ext_vals(ext)
        .nackable(codec.is_video());
        if let Some(patch) = vp8_patch {
            write = write.vp8_patch(patch);
        }
        tx.write_rtp(write);
        sink.stats.rtp_out += 1;
        sink.stats.rtp_bytes_out += payload_len;
        metrics::inc(&m.rtp_forwarded);

        let (kiosk, clerk) = match src_role {
            Role::Kiosk => (source, sink_id),
            Role::Clerk => (sink_id, source),
        };
        if self.recording.contains(&kiosk) {
            if self.recorded.len() >= self.config.record_queue {
                metrics::inc(&m.record_dropped);
            } else {
                self.recorded.push_back(RecordedRtp {
                    kiosk,
                    clerk,
                    slot,
                    codec,
                    pt: *packet.header.payload_type,
                    ssrc: *packet.header.ssrc,
                    seq: in_seq,
                    rtp_ts: packet.header.timestamp,
                    marker: packet.header.marker,
                    arrival: packet.timestamp,
                    payload: packet.payload,
                });
            }
        }
        self.drain(sink_id, now);
    }

    /// Remove a peer from every table (no event).
    fn forget(&mut self, id: PeerId) {
        if let Some(other) = self.pairing.remove(id)
            && let Some(p) = self.peers.get_mut(&other)
        {
            p.stats.partner = None;
        }
        self.recording.remove(&id);
        if let Some(peer) = self.peers.remove(&id)
            && peer.connected
        {
            self.metrics
                .peers_connected
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.by_addr.retain(|_, p| *p != id);
        metrics::set(&self.metrics.peers, self.peers.len() as u64);
        metrics::set(&self.metrics.pairs, self.pairing.len() as u64);
    }

    /// Remove peers that died during the last operation.
    fn sweep(&mut self) {
        if !std::mem::take(&mut self.maybe_dead) {
            return;
        }
        let dead: Vec<PeerId> = self
            .peers
            .values()
            .filter(|p| p.dead)
            .map(|p| p.id)
            .collect();
        for id in dead {
            self.forget(id);
        }
    }
}

fn mark_closed(peer: &mut Peer, events: &mut VecDeque<SfuEvent>, m: &SfuMetrics) {
    if peer.dead {
        return;
    }
    peer.dead = true;
    if peer.connected {
        peer.connected = false;
        peer.stats.connected = false;
        m.peers_connected
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
    events.push_back(SfuEvent::PeerDisconnected {
        peer: peer.id,
        reason: DisconnectReason::Closed,
    });
}

fn on_event(
    peer: &mut Peer,
    event: Event,
    events: &mut VecDeque<SfuEvent>,
    work: &mut VecDeque<Work>,
    m: &SfuMetrics,
) {
    match event {
        Event::Connected => set_connected(peer, true, events, m),
        Event::IceConnectionStateChange(state) => match state {
            IceConnectionState::Disconnected => set_connected(peer, false, events, m),
            IceConnectionState::Connected | IceConnectionState::Completed
                if peer.rtc.is_connected() =>
            {
                set_connected(peer, true, events, m)
            }
            _ => {}
        },
        Event::RtpPacket(packet) => {
            metrics::inc(&m.rtp_in);
            let slot = mid_of_ssrc(peer, &packet).or_else(|| {
                packet
                    .header
                    .ext_vals
                    .mid
                    .and_then(|mid| peer.mids.slot_of(mid))
            });
            let Some(slot) = slot else {
                return;
            };
            if !peer.role.sends(slot) {
                return;
            }
            if peer.nack_checked[slot.index()] != Some(*packet.header.ssrc) {
                enable_plain_nack(peer, slot, &packet);
            }
            peer.last_rtp_at[slot.index()] = Some(packet.timestamp);
            peer.stats.rtp_in += 1;
            peer.stats.rtp_bytes_in += packet.payload.len() as u64;
            work.push_back(Work::Rtp {
                source: peer.id,
                slot,
                packet,
            });
        }
        Event::KeyframeRequest(req) => {
            let Some(slot) = peer.mids.slot_of(req.mid) else {
                return;
            };
            work.push_back(Work::Keyframe {
                viewer: peer.id,
                slot,
                kind: req.kind,
            });
        }
        Event::MediaEgressStats(s) => {
            let Some(slot) = peer.mids.slot_of(s.mid) else {
                return;
            };
            let (nacks, kfr) = &mut peer.last_egress[slot.index()];
            let d_nacks = s.nacks.saturating_sub(*nacks);
            let d_kfr = (s.plis + s.firs).saturating_sub(*kfr);
            (*nacks, *kfr) = (s.nacks, s.plis + s.firs);
            peer.stats.nacks_from_peer += d_nacks;
            peer.stats.keyframe_requests_from_peer += d_kfr;
            metrics::add(&m.nacks_from_viewers, d_nacks);
            metrics::add(&m.plis_from_viewers, d_kfr);
            if s.rtt.is_some() {
                peer.stats.rtt = s.rtt;
            }
        }
        Event::MediaIngressStats(s) => {
            let Some(slot) = peer.mids.slot_of(s.mid) else {
                return;
            };
            let last = &mut peer.last_ingress_nacks[slot.index()];
            let d = s.nacks.saturating_sub(*last);
            *last = s.nacks;
            peer.stats.nacks_to_peer += d;
            metrics::add(&m.nacks_to_sources, d);
        }
        Event::PeerStats(s) if s.rtt.is_some() => peer.stats.rtt = s.rtt,
        _ => {}
    }
}

/// A source that offered `nack` without RTX (the kiosk's webrtc-rs configuration does)
/// retransmits the original packet on its own SSRC, which str0m accepts as the missing packet.
/// str0m suppresses NACK for a receive stream whose offer had no RTX, whether its SSRC was
/// declared (`a=ssrc`) or discovered from RTP; switch it on here.
fn enable_plain_nack(peer: &mut Peer, slot: Slot, packet: &RtpPacket) {
    peer.nack_checked[slot.index()] = Some(*packet.header.ssrc);
    let pt = packet.header.payload_type;
    let plain_nack = peer
        .rtc
        .codec_config()
        .iter()
        .find(|p| p.pt() == pt)
        // Not conditioned on the relay's own RTX for this payload type: the relay's codec
        // configuration keeps its RTX pairing even when the offer had none, and str0m
        // suppresses NACK for a declared SSRC whose offer had no RTX. For a source with RTX,
        // NACK is on already and this changes nothing.
        .is_some_and(|p| p.spec().codec.is_video() && p.fb_nack());
    if plain_nack {
        let mut api = peer.rtc.direct_api();
        if let Some(stream) = api.stream_rx(&packet.header.ssrc) {
            stream.suppress_nack(false);
        }
    }
}

/// str0m only puts the mid header extension on the first packets of a stream; afterwards the
/// mid comes from the receive stream the SSRC is bound to.
fn mid_of_ssrc(peer: &mut Peer, packet: &RtpPacket) -> Option<Slot> {
    let mut api = peer.rtc.direct_api();
    let mid = api.stream_rx(&packet.header.ssrc).map(|s| s.mid())?;
    peer.mids.slot_of(mid)
}

fn set_connected(peer: &mut Peer, up: bool, events: &mut VecDeque<SfuEvent>, m: &SfuMetrics) {
    if peer.connected == up || peer.dead {
        return;
    }
    peer.connected = up;
    peer.stats.connected = up;
    if up {
        metrics::inc(&m.peers_connected);
        events.push_back(SfuEvent::PeerConnected { peer: peer.id });
    } else {
        m.peers_connected
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        events.push_back(SfuEvent::PeerDisconnected {
            peer: peer.id,
            reason: DisconnectReason::IceDisconnected,
        });
    }
}

/// The viewer's PT for the codec the source used, if the viewer negotiated it on that mid.
fn map_pt(
    source: &Rtc,
    sink: &Rtc,
    sink_mid: str0m::media::Mid,
    in_pt: Pt,
) -> Option<(Pt, MediaCodec)> {
    let params = source.codec_config().iter().find(|p| p.pt() == in_pt)?;
    let codec = MediaCodec::from_str0m(params.spec().codec)?;
    let out = sink.codec_config().match_params(*params)?;
    let media = sink.media(sink_mid)?;
    if !media.remote_pts().contains(&out.pt()) {
        return None;
    }
    Some((out.pt(), codec))
}

/// Build the VP8 descriptor patch that keeps the viewer's picture ids continuous.
pub(crate) fn vp8_patch(
    state: &mut super::rewrite::Vp8Rewriter,
    payload: &[u8],
    new_segment: bool,
) -> Option<str0m::rtp::Vp8Patch> {
    let desc = Vp8Descriptor::parse(payload).ok()?;
    let (pid, tl0) = (desc.picture_id(), desc.tl0_pic_idx());
    if pid.is_none() && tl0.is_none() {
        return None;
    }
    // X bit, then I bit, then M bit of the first picture id byte: 15-bit picture id.
    let pid_15_bit = payload.len() > 2
        && payload[0] & 0x80 != 0
        && payload[1] & 0x80 != 0
        && payload[2] & 0x80 != 0;
    if new_segment {
        state.start_segment(pid, tl0);
    }
    let (out_pid, out_tl0) = state.map(pid, pid_15_bit, tl0);
    let mut builder = desc.patch();
    if let Some(p) = out_pid {
        builder = builder.picture_id(p);
    }
    if let Some(t) = out_tl0 {
        builder = builder.tl0_pic_idx(t);
    }
    builder.build().ok()
}
