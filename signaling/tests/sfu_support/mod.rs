//! Test support for the SFU scenario tests: str0m *client* peers playing kiosk and clerk, an
//! in-memory network with virtual time (no sockets, no sleeps), and tiny VP8/Opus sources.
#![allow(dead_code, clippy::unwrap_used)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::media::{MediaKind as SlotKind, Slot};
use signaling::sfu::{PeerId, Role, Sfu, SfuConfig, SfuEvent, SfuMetrics};
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc};

pub const RELAY: &str = "10.0.0.1:3478";

/// What a client saw arrive on one slot.
#[derive(Debug, Clone)]
pub struct Got {
    pub slot: Slot,
    pub ssrc: u32,
    pub seq: u64,
    pub ts: u32,
    pub marker: bool,
    pub pt: u8,
    pub payload: Vec<u8>,
    pub at: Instant,
}

pub struct Client {
    pub id: PeerId,
    pub role: Role,
    pub addr: SocketAddr,
    pub rtc: Rtc,
    pub mids: [Mid; 5],
    pub next_timeout: Instant,
    pub connected: bool,
    pub received: Vec<Got>,
    pub keyframe_requests: Vec<(Slot, KeyframeRequestKind)>,
    /// When each keyframe request arrived (virtual time), per slot.
    pub keyframe_request_times: Vec<(Slot, Instant)>,
    /// Requests still to be ignored per slot, as a browser sender ignores one within 300 ms
    /// of the last it honoured.
    pub swallow_keyframe_requests: [u32; 5],
    /// Per-slot send state: next seq, RTP time, VP8 picture id.
    seq: [u64; 5],
    pid: [u16; 5],
    frames: [u64; 5],
    ts_base: [u32; 5],
    /// The next video frame of each slot is a keyframe.
    pub want_keyframe: [bool; 5],
}

impl Client {
    pub fn new(id: u64, role: Role, addr: SocketAddr, now: Instant) -> Self {
        Self::with_rtc(id, role, addr, Rtc::builder().set_rtp_mode(true).build(now))
    }

    /// A client whose only video codec is H.264 (a kiosk whose encoder is OpenH264).
    pub fn new_h264_only(id: u64, role: Role, addr: SocketAddr, now: Instant) -> Self {
        let rtc = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(true, false)
            .build(now);
        Self::with_rtc(id, role, addr, rtc)
    }

    /// A client whose VP8 has NACK feedback but no RTX payload type (like the kiosk's
    /// webrtc-rs configuration).
    pub fn new_vp8_without_rtx(id: u64, role: Role, addr: SocketAddr, now: Instant) -> Self {
        let mut config = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false);
        config.codec_config().add_config(
            96.into(),
            None,
            Codec::Vp8,
            str0m::media::Frequency::NINETY_KHZ,
            None,
            Default::default(),
        );
        Self::with_rtc(id, role, addr, config.build(now))
    }

    pub fn pt_of(&self, codec: Codec) -> u8 {
        *self.pt(codec)
    }

    fn with_rtc(id: u64, role: Role, addr: SocketAddr, rtc: Rtc) -> Self {
        Self {
            id: PeerId(id),
            role,
            addr,
            rtc,
            mids: [Mid::from("x"); 5],
            next_timeout: Instant::now(),
            connected: false,
            received: Vec::new(),
            keyframe_requests: Vec::new(),
            keyframe_request_times: Vec::new(),
            swallow_keyframe_requests: [0; 5],
            seq: [1000 * id, 2000 * id, 3000 * id, 4000 * id, 5000 * id].map(|s| s % 60_000),
            // Any start will do; ids past 655 wrap, as the real picture id does.
            pid: [(id as u16).wrapping_mul(100); 5],
            frames: [0; 5],
            ts_base: [(id as u32).wrapping_mul(0x1234_5678); 5],
            want_keyframe: [true; 5],
        }
    }

    /// Build the five-transceiver offer of protocol/src/media.rs for this role.
    pub fn offer(&mut self) -> (String, str0m::change::SdpPendingOffer) {
        self.rtc
            .add_local_candidate(Candidate::host(self.addr, "udp").unwrap())
            .unwrap();
        let mut change = self.rtc.sdp_api();
        let mut mids = [Mid::from("x"); 5];
        for slot in Slot::ORDER {
            let kind = match slot.kind() {
                SlotKind::Audio => MediaKind::Audio,
                SlotKind::Video => MediaKind::Video,
            };
            let dir = if self.role.sends(slot) {
                Direction::SendOnly
            } else {
                Direction::RecvOnly
            };
            mids[slot.index()] = change.add_media(kind, dir, None, None, None);
        }
        self.mids = mids;
        let (offer, pending) = change.apply().unwrap();
        (offer.to_sdp_string(), pending)
    }

    /// Apply the relay's answer. The relay is under test, not the client: the client answers
    /// every NACK (str0m's default stops retransmitting above 15% of the bytes sent).
    pub fn accept_answer(&mut self, pending: str0m::change::SdpPendingOffer, answer: &str) {
        self.rtc
            .sdp_api()
            .accept_answer(pending, SdpAnswer::from_sdp_string(answer).unwrap())
            .unwrap();
        for slot in Slot::ORDER.into_iter().filter(|s| self.role.sends(*s)) {
            let mid = self.mids[slot.index()];
            let mut api = self.rtc.direct_api();
            if let Some(tx) = api.stream_tx_by_mid(mid, None) {
                tx.set_rtx_cache(2000, Duration::from_secs(3), None);
            }
        }
    }

    pub fn slot_of(&self, mid: Mid) -> Option<Slot> {
        self.mids
            .iter()
            .position(|m| *m == mid)
            .map(|i| Slot::ORDER[i])
    }

    fn pt(&self, codec: Codec) -> Pt {
        self.rtc
            .codec_config()
            .find(|p| p.spec().codec == codec)
            .unwrap()
            .pt()
    }

    /// Write one raw RTP packet on `slot` (then the caller must drain).
    pub fn write_rtp(
        &mut self,
        slot: Slot,
        codec: Codec,
        ts: u32,
        marker: bool,
        payload: Vec<u8>,
        now: Instant,
    ) {
        let pt = self.pt(codec);
        let i = slot.index();
        let seq = self.seq[i];
        self.seq[i] += 1;
        let mid = self.mids[i];
        let mut api = self.rtc.direct_api();
        let tx = api
            .stream_tx_by_mid(mid, None)
            .expect("send stream for a sending slot");
        tx.write_rtp(
            RtpWrite::new(pt, seq.into(), ts, now, payload)
                .marker(marker)
                .nackable(codec != Codec::Opus),
        );
    }

    /// Send one synthetic VP8 frame (keyframe when one was requested or due); payload bytes
    /// carry `tag` and the frame number so tests can tell sources apart.
    pub fn send_vp8_frame(&mut self, slot: Slot, tag: u8, now: Instant) {
        let i = slot.index();
        let key = self.want_keyframe[i];
        self.want_keyframe[i] = false;
        let n = self.frames[i];
        self.frames[i] += 1;
        let ts = self.ts_base[i].wrapping_add((n * 3000) as u32);
        let mut frame = if key {
            vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00]
        } else {
            vec![0x11, 0x02, 0x00]
        };
        frame.push(tag);
        frame.extend_from_slice(&n.to_be_bytes());
        frame.resize(if key { 2500 } else { 700 }, tag);
        let pid = self.pid[i];
        self.pid[i] = (pid + 1) & 0x7fff;
        let chunks: Vec<Vec<u8>> = frame.chunks(1000).map(|c| c.to_vec()).collect();
        let last = chunks.len() - 1;
        for (k, chunk) in chunks.into_iter().enumerate() {
            let s = if k == 0 { 0x10 } else { 0 };
            let mut p = vec![0x80 | s, 0x80, 0x80 | (pid >> 8) as u8, pid as u8];
            p.extend_from_slice(&chunk);
            self.write_rtp(slot, Codec::Vp8, ts, k == last, p, now);
        }
    }

    /// Send one synthetic H.264 access unit as a single NAL unit packet: an IDR slice when a
    /// keyframe is due, else a non-IDR slice; byte 1 carries `tag`.
    pub fn send_h264_frame(&mut self, slot: Slot, tag: u8, now: Instant) {
        let i = slot.index();
        let key = self.want_keyframe[i];
        self.want_keyframe[i] = false;
        let n = self.frames[i];
        self.frames[i] += 1;
        let ts = self.ts_base[i].wrapping_add((n * 3000) as u32);
        let mut p = vec![if key { 0x65 } else { 0x41 }, tag];
        p.extend_from_slice(&n.to_be_bytes());
        p.resize(600, tag);
        self.write_rtp(slot, Codec::H264, ts, true, p, now);
    }

    /// Send one encoded H.264 access unit (Annex B byte stream, e.g. from openh264enc):
    /// small NAL units as single-NAL packets, large ones as FU-A fragments.
    pub fn send_encoded_h264(&mut self, slot: Slot, access_unit: &[u8], now: Instant) {
        let i = slot.index();
        let n = self.frames[i];
        self.frames[i] += 1;
        let ts = self.ts_base[i].wrapping_add((n * 3000) as u32);
        let mut packets: Vec<Vec<u8>> = Vec::new();
        for nal in annex_b_nals(access_unit) {
            if nal.len() <= 1100 {
                packets.push(nal.to_vec());
                continue;
            }
            let (header, body) = (nal[0], &nal[1..]);
            let chunks: Vec<&[u8]> = body.chunks(1000).collect();
            let last = chunks.len() - 1;
            for (k, chunk) in chunks.into_iter().enumerate() {
                let start = if k == 0 { 0x80 } else { 0 };
                let end = if k == last { 0x40 } else { 0 };
                let mut p = vec![(header & 0xe0) | 28, start | end | (header & 0x1f)];
                p.extend_from_slice(chunk);
                packets.push(p);
            }
        }
        let last = packets.len().saturating_sub(1);
        for (k, p) in packets.into_iter().enumerate() {
            self.write_rtp(slot, Codec::H264, ts, k == last, p, now);
        }
    }

    /// Send an encoded VP8 frame (e.g. from vp8enc), packetized with a 15-bit picture id.
    pub fn send_encoded_vp8(&mut self, slot: Slot, frame: &[u8], now: Instant) {
        let i = slot.index();
        let n = self.frames[i];
        self.frames[i] += 1;
        let ts = self.ts_base[i].wrapping_add((n * 3000) as u32);
        let pid = self.pid[i];
        self.pid[i] = (pid + 1) & 0x7fff;
        let chunks: Vec<&[u8]> = frame.chunks(1000).collect();
        let last = chunks.len() - 1;
        for (k, chunk) in chunks.into_iter().enumerate() {
            let s = if k == 0 { 0x10 } else { 0 };
            let mut p = vec![0x80 | s, 0x80, 0x80 | (pid >> 8) as u8, pid as u8];
            p.extend_from_slice(chunk);
            self.write_rtp(slot, Codec::Vp8, ts, k == last, p, now);
        }
    }

    /// Send one encoded 20 ms Opus packet.
    pub fn send_encoded_opus(&mut self, slot: Slot, packet: &[u8], now: Instant) {
        let i = slot.index();
        let n = self.frames[i];
        self.frames[i] += 1;
        let ts = self.ts_base[i].wrapping_add((n * 960) as u32);
        self.write_rtp(slot, Codec::Opus, ts, false, packet.to_vec(), now);
    }

    pub fn send_opus_frame(&mut self, slot: Slot, tag: u8, now: Instant) {
        let i = slot.index();
        let n = self.frames[i];
        self.frames[i] += 1;
        let ts = self.ts_base[i].wrapping_add((n * 960) as u32);
        let mut p = vec![0xf8, tag];
        p.extend_from_slice(&n.to_be_bytes());
        self.write_rtp(slot, Codec::Opus, ts, false, p, now);
    }

    /// Poll the client's str0m instance until it returns a timeout; returns the datagrams to
    /// send and records what arrived.
    pub fn drain(&mut self, now: Instant) -> Vec<Datagram> {
        let mut out = Vec::new();
        loop {
            match self.rtc.poll_output().unwrap() {
                Output::Timeout(t) => {
                    self.next_timeout = t;
                    return out;
                }
                Output::Transmit(t) => out.push(Datagram {
                    from: self.addr,
                    to: t.destination,
                    bytes: t.contents.into(),
                }),
                Output::Event(e) => match e {
                    Event::Connected => self.connected = true,
                    Event::RtpPacket(p) => {
                        let mid = {
                            let mut api = self.rtc.direct_api();
                            api.stream_rx(&p.header.ssrc).map(|s| s.mid())
                        };
                        if let Some(slot) = mid.and_then(|m| self.slot_of(m)) {
                            self.received.push(Got {
                                slot,
                                ssrc: *p.header.ssrc,
                                seq: *p.seq_no,
                                ts: p.header.timestamp,
                                marker: p.header.marker,
                                pt: *p.header.payload_type,
                                payload: p.payload.to_vec(),
                                at: now,
                            });
                        }
                    }
                    Event::KeyframeRequest(r) => {
                        if let Some(slot) = self.slot_of(r.mid) {
                            self.keyframe_requests.push((slot, r.kind));
                            self.keyframe_request_times.push((slot, now));
                            let swallow = &mut self.swallow_keyframe_requests[slot.index()];
                            if *swallow > 0 {
                                *swallow -= 1;
                            } else {
                                self.want_keyframe[slot.index()] = true;
                            }
                        }
                    }
                    _ => {}
                },
            }
        }
    }

    /// Received packets on `slot`, in arrival order.
    pub fn got(&self, slot: Slot) -> Vec<&Got> {
        self.received.iter().filter(|g| g.slot == slot).collect()
    }
}

#[derive(Debug, Clone)]
pub struct Datagram {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

impl Datagram {
    /// RTP (not RTCP, STUN or DTLS): version 2 and a payload type outside RTCP's range.
    pub fn is_rtp(&self) -> bool {
        self.bytes.len() > 12
            && self.bytes[0] >> 6 == 2
            && !(64..96).contains(&(self.bytes[1] & 0x7f))
    }
}

pub type LossFn = Box<dyn FnMut(&Datagram) -> bool>;

/// The relay core plus clients on an in-memory network in virtual time.
pub struct Net {
    pub now: Instant,
    pub start: Instant,
    pub sfu: Sfu,
    pub relay: SocketAddr,
    pub clients: Vec<Client>,
    pub events: Vec<SfuEvent>,
    pub recorded: Vec<signaling::sfu::RecordedRtp>,
    pub metrics: Arc<SfuMetrics>,
    pub latency: Duration,
    pub loss: Option<LossFn>,
    pub delivered: u64,
    pub lost: u64,
    /// Real CPU time spent inside the relay core (for the benchmark).
    pub relay_busy: Duration,
    in_flight: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    slots: Vec<Option<Datagram>>,
    order: u64,
}

impl Net {
    pub fn new() -> Self {
        let now = Instant::now();
        let relay: SocketAddr = RELAY.parse().unwrap();
        let metrics = Arc::new(SfuMetrics::default());
        let sfu = Sfu::new(SfuConfig::new(relay), Arc::clone(&metrics));
        Self {
            now,
            start: now,
            sfu,
            relay,
            clients: Vec::new(),
            events: Vec::new(),
            recorded: Vec::new(),
            metrics,
            latency: Duration::from_millis(10),
            loss: None,
            delivered: 0,
            lost: 0,
            relay_busy: Duration::ZERO,
            in_flight: BinaryHeap::new(),
            slots: Vec::new(),
            order: 0,
        }
    }

    /// Add a client, negotiate with the relay; returns its index.
    pub fn add_client(&mut self, id: u64, role: Role) -> usize {
        let addr: SocketAddr = format!("10.1.0.{}:{}", id, 40_000 + id).parse().unwrap();
        let c = Client::new(id, role, addr, self.now);
        self.add(c)
    }

    /// Negotiate a client built by the caller; returns its index.
    pub fn add(&mut self, mut c: Client) -> usize {
        let role = c.role;
        let (offer, pending) = c.offer();
        let answer = self
            .sfu
            .add_peer(c.id, role, &offer, self.now)
            .expect("offer accepted");
        c.accept_answer(pending, &answer);
        self.clients.push(c);
        let i = self.clients.len() - 1;
        self.drain_client(i);
        self.flush_sfu();
        i
    }

    pub fn client(&mut self, id: u64) -> &mut Client {
        self.clients.iter_mut().find(|c| c.id.0 == id).unwrap()
    }

    pub fn idx(&self, id: u64) -> usize {
        self.clients.iter().position(|c| c.id.0 == id).unwrap()
    }

    fn send(&mut self, d: Datagram) {
        if let Some(loss) = self.loss.as_mut()
            && loss(&d)
        {
            self.lost += 1;
            return;
        }
        self.order += 1;
        self.slots.push(Some(d));
        let at = self.now + self.latency;
        self.in_flight
            .push(Reverse((at, self.order, self.slots.len() - 1)));
    }

    pub fn drain_client(&mut self, i: usize) {
        let now = self.now;
        let out = self.clients[i].drain(now);
        for d in out {
            self.send(d);
        }
    }

    pub fn flush_sfu(&mut self) {
        while let Some(t) = self.sfu.poll_transmit() {
            let d = Datagram {
                from: self.relay,
                to: t.destination,
                bytes: t.contents,
            };
            self.send(d);
        }
        while let Some(e) = self.sfu.poll_event() {
            self.events.push(e);
        }
        while let Some(r) = self.sfu.poll_recorded() {
            self.recorded.push(r);
        }
    }

    /// Advance virtual time to `until`, delivering datagrams and firing timers.
    pub fn run_until(&mut self, until: Instant) {
        for _ in 0..1_000_000 {
            let mut next = until;
            if let Some(Reverse((t, _, _))) = self.in_flight.peek() {
                next = next.min(*t);
            }
            if let Some(t) = self.sfu.poll_timeout() {
                next = next.min(t);
            }
            for c in &self.clients {
                next = next.min(c.next_timeout);
            }
            self.now = self.now.max(next);
            let now = self.now;
            while self
                .in_flight
                .peek()
                .is_some_and(|Reverse((t, _, _))| *t <= now)
            {
                let Some(Reverse((_, _, slot))) = self.in_flight.pop() else {
                    break;
                };
                let Some(d) = self.slots[slot].take() else {
                    continue;
                };
                self.delivered += 1;
                if d.to == self.relay {
                    let t0 = Instant::now();
                    let _ = self.sfu.handle_datagram(now, d.from, d.to, &d.bytes);
                    self.relay_busy += t0.elapsed();
                    self.flush_sfu();
                } else if let Some(i) = self.clients.iter().position(|c| c.addr == d.to) {
                    let input = Input::Receive(
                        now,
                        Receive {
                            proto: Protocol::Udp,
                            source: d.from,
                            destination: d.to,
                            contents: d.bytes.as_slice().try_into().unwrap(),
                        },
                    );
                    self.clients[i].rtc.handle_input(input).unwrap();
                    self.drain_client(i);
                }
            }
            if self.sfu.poll_timeout().is_some_and(|t| t <= now) {
                let t0 = Instant::now();
                self.sfu.handle_timeout(now);
                self.relay_busy += t0.elapsed();
                self.flush_sfu();
            }
            for i in 0..self.clients.len() {
                if self.clients[i].next_timeout <= now {
                    self.clients[i]
                        .rtc
                        .handle_input(Input::Timeout(now))
                        .unwrap();
                    self.drain_client(i);
                }
            }
            if self.slots.len() > 10_000 && self.in_flight.is_empty() {
                self.slots.clear();
            }
            if now >= until {
                return;
            }
        }
        panic!("virtual network did not reach its deadline (livelock)");
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Run until every client and the relay report the connection up (bounded).
    pub fn connect_all(&mut self) {
        for _ in 0..100 {
            if self.clients.iter().all(|c| c.connected)
                && self
                    .clients
                    .iter()
                    .all(|c| self.sfu.peer_stats(c.id).is_some_and(|s| s.connected))
            {
                return;
            }
            self.run_for(Duration::from_millis(50));
        }
        panic!("peers did not connect within 5 s of virtual time");
    }

    /// Every client that sends a slot produces media for `d`: 30 fps video on its video
    /// slots, 50 packets/s audio. `tag` is the client id.
    pub fn media_for(&mut self, ids: &[u64], d: Duration) {
        let end = self.now + d;
        let mut next_video = self.now;
        let mut next_audio = self.now;
        while self.now < end {
            let now = self.now;
            for &id in ids {
                let i = self.idx(id);
                let role = self.clients[i].role;
                for slot in Slot::ORDER {
                    if !role.sends(slot) {
                        continue;
                    }
                    match slot.kind() {
                        SlotKind::Video if now >= next_video => {
                            self.clients[i].send_vp8_frame(slot, id as u8, now);
                        }
                        SlotKind::Audio if now >= next_audio => {
                            self.clients[i].send_opus_frame(slot, id as u8, now);
                        }
                        _ => {}
                    }
                }
                self.drain_client(i);
            }
            if now >= next_video {
                next_video = now + Duration::from_micros(33_333);
            }
            if now >= next_audio {
                next_audio = now + Duration::from_millis(20);
            }
            let step = next_video.min(next_audio).min(end);
            self.run_until(step);
        }
    }
}

/// NAL units of an Annex B byte stream (start codes removed).
pub fn annex_b_nals(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(data.len(), |next| next - 3);
        while end > s && data[end - 1] == 0 {
            end -= 1;
        }
        nals.push(&data[s..end]);
    }
    nals
}

/// Deterministic pseudo-random loss of RTP datagrams on chosen links.
pub fn lossy(seed: u64, percent: u64, links: Vec<(SocketAddr, SocketAddr)>) -> LossFn {
    let mut state = seed;
    Box::new(move |d: &Datagram| {
        if !d.is_rtp() || !links.contains(&(d.from, d.to)) {
            return false;
        }
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % 100 < percent
    })
}

/// Assert received sequence numbers go up by exactly one (no gap, no duplicate, in order).
pub fn assert_contiguous(got: &[&Got], what: &str) {
    assert!(!got.is_empty(), "{what}: nothing received");
    for w in got.windows(2) {
        assert_eq!(
            w[1].seq,
            w[0].seq + 1,
            "{what}: sequence jumps from {} to {}",
            w[0].seq,
            w[1].seq
        );
    }
}

/// The tag (source client id) carried in a synthetic payload.
pub fn tag_of(g: &Got) -> u8 {
    match g.slot.kind() {
        // VP8: descriptor (4 bytes) then the frame; only start packets carry the tag at a
        // known place, continuation packets are filled with it.
        SlotKind::Video => {
            if g.payload[0] & 0x10 != 0 {
                let key = g.payload[4] & 1 == 0;
                g.payload[4 + if key { 10 } else { 3 }]
            } else {
                g.payload[g.payload.len() - 1]
            }
        }
        SlotKind::Audio => g.payload[1],
    }
}
