//! The kiosk's pacer: smooths departures without becoming the bottleneck, and lets audio and
//! repairs overtake video.
//!
//! It sits in webrtc-rs's pacer slot in place of its `PacerInterceptor`, which releases one
//! first-in-first-out queue at exactly the congestion controller's estimate. That pacer is a
//! bottleneck of its own: the encoders are given most of the estimate, and retransmissions,
//! packet overhead, a keyframe's overshoot and the document preview's floor come on top, so on
//! any lossy or capped line its queue (up to 4096 packets) grows — 12 s of glass-to-glass under
//! a 500 kbit/s cap — and a retransmission waits behind every video packet already queued, so
//! the repair arrives after the receiver has given the frame up.
//!
//! Like libwebrtc's pacer:
//! - it releases at [`PACING_FACTOR`] × the estimate, so it smooths bursts (a keyframe leaves
//!   over tens of milliseconds rather than at once) but never holds the encoders' steady output;
//! - three queues, released in order: audio, retransmissions, video;
//! - a queue that would take longer than [`MAX_QUEUE_DELAY`] to drain at that rate is drained
//!   faster, so the delay moves onto the path, where the estimator sees it as queueing and
//!   lowers the rate, instead of hiding in the kiosk;
//! - bounded ([`QUEUE_LIMIT`] packets): beyond it an arrival is refused and counted (the NACK
//!   responder above still holds it, so the receiver can ask for it again);
//! - a retransmission of media captured more than [`MAX_REPAIR_AGE`] before the newest packet
//!   of its stream is not sent: no receiver still waits for it (libwebrtc's packet history keeps
//!   about a second too), and after an outage such repairs would only delay the fresh picture.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;
use rtc::shared::marshal::MarshalSize;

/// Release rate over the estimate (libwebrtc's `kDefaultPaceMultiplier`).
pub const PACING_FACTOR: f64 = 2.5;
/// A queue longer than this at the pacing rate is drained faster.
pub const MAX_QUEUE_DELAY: Duration = Duration::from_millis(300);
/// Packets held at most, all queues together.
pub const QUEUE_LIMIT: usize = 2048;
/// Retransmissions of media older than this (against the newest packet of the stream) are
/// not sent.
pub const MAX_REPAIR_AGE: Duration = Duration::from_secs(1);
/// The budget may build up to this many milliseconds of the pacing rate.
const BURST_MS: f64 = 10.0;
/// …and never less than four full packets.
const MIN_BURST_BITS: f64 = 4.0 * 1_500.0 * 8.0;
/// Below any real estimate; only used before the first one.
const FLOOR_BPS: f64 = 30_000.0;

/// What the send side saw: repair traffic, keyframe requests and the pacer's queue. Shared
/// between the interceptors (written) and the peer's statistics (read).
#[derive(Debug, Default)]
pub struct SendCounters {
    /// NACK messages received, and the packets they asked for.
    pub nacks_received: AtomicU64,
    pub packets_nacked: AtomicU64,
    /// PLI and FIR messages received.
    pub plis_received: AtomicU64,
    pub firs_received: AtomicU64,
    /// Retransmissions that left the pacer.
    pub retransmissions_sent: AtomicU64,
    /// RTP packets that left the pacer, retransmissions included.
    pub packets_paced: AtomicU64,
    /// Arrivals refused because the queue was full.
    pub packets_dropped: AtomicU64,
    /// Times transport-wide feedback came back after an outage (each answered with keyframes).
    pub path_returns: AtomicU64,
    /// Retransmissions not sent because their media was older than [`MAX_REPAIR_AGE`].
    pub stale_repairs_skipped: AtomicU64,
    /// Packets held right now.
    pub queued_packets: AtomicU64,
    /// Longest any packet waited in the pacer, in milliseconds, since the connection began.
    pub max_queue_ms: AtomicU64,
    /// The pacer's current release rate.
    pub pacing_bps: AtomicU64,
}

impl SendCounters {
    /// Counts the NACKs and keyframe requests of one inbound RTCP compound packet.
    #[allow(clippy::borrowed_box)]
    pub fn count_inbound(&self, packet: &Box<dyn rtcp::Packet>) {
        let any = packet.as_any();
        if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
            self.nacks_received.fetch_add(1, Ordering::Relaxed);
            let asked: u64 = nack
                .nacks
                .iter()
                .map(|pair| 1 + u64::from(pair.lost_packets.count_ones()))
                .sum();
            self.packets_nacked.fetch_add(asked, Ordering::Relaxed);
        } else if any.is::<PictureLossIndication>() {
            self.plis_received.fetch_add(1, Ordering::Relaxed);
        } else if any.is::<FullIntraRequest>() {
            self.firs_received.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Audio = 0,
    Retransmission = 1,
    Video = 2,
}

struct Held {
    packet: TaggedPacket,
    bits: f64,
    since: Instant,
}

/// The pacer interceptor; see the module docs.
pub struct PriorityPacer {
    estimate_bps: f64,
    budget_bits: f64,
    last_refill: Option<Instant>,
    audio_ssrcs: HashSet<u32>,
    /// Per stream: its clock rate and the newest RTP timestamp sent on it.
    clocks: HashMap<u32, u32>,
    newest_ts: HashMap<u32, u32>,
    queues: [VecDeque<Held>; 3],
    queued_bits: f64,
    released: VecDeque<TaggedPacket>,
    unpaced: VecDeque<TaggedPacket>,
    read_queue: VecDeque<TaggedPacket>,
    counters: Arc<SendCounters>,
}

impl PriorityPacer {
    /// Starts pacing as if the estimate were `start_bps`.
    pub fn new(start_bps: f64, counters: Arc<SendCounters>) -> PriorityPacer {
        let mut pacer = PriorityPacer {
            estimate_bps: start_bps.max(FLOOR_BPS),
            budget_bits: 0.0,
            last_refill: None,
            audio_ssrcs: HashSet::new(),
            clocks: HashMap::new(),
            newest_ts: HashMap::new(),
            queues: [VecDeque::new(), VecDeque::new(), VecDeque::new()],
            queued_bits: 0.0,
            released: VecDeque::new(),
            unpaced: VecDeque::new(),
            read_queue: VecDeque::new(),
            counters,
        };
        pacer.budget_bits = pacer.burst_bits();
        pacer.publish();
        pacer
    }

    /// The release rate now: the estimate times the factor, or faster when the queue would
    /// otherwise take longer than [`MAX_QUEUE_DELAY`] to drain.
    pub fn pacing_bps(&self) -> f64 {
        let steady = self.estimate_bps * PACING_FACTOR;
        // What empties the queue by the time its oldest packet has waited the bound (as
        // libwebrtc's pacer does); at least 10 ms away, so the rate stays finite.
        let oldest = self
            .queues
            .iter()
            .filter_map(|q| q.front())
            .map(|h| h.since)
            .min();
        let drain = match (oldest, self.last_refill) {
            (Some(oldest), Some(now)) => {
                let left = MAX_QUEUE_DELAY
                    .saturating_sub(now.saturating_duration_since(oldest))
                    .max(Duration::from_millis(10));
                self.queued_bits / left.as_secs_f64()
            }
            _ => 0.0,
        };
        steady.max(drain)
    }

    pub fn queued(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }

    fn burst_bits(&self) -> f64 {
        (self.pacing_bps() * BURST_MS / 1_000.0).max(MIN_BURST_BITS)
    }

    fn refill(&mut self, now: Instant) {
        if let Some(last) = self.last_refill {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.budget_bits =
                (self.budget_bits + elapsed * self.pacing_bps()).min(self.burst_bits());
        }
        self.last_refill = Some(self.last_refill.map_or(now, |last| last.max(now)));
    }

    /// Whether a retransmission carries media too old to be worth sending.
    fn stale_repair(&self, rtp: &rtc::rtp::Packet) -> bool {
        let ssrc = rtp.header.ssrc;
        let (Some(&clock), Some(&newest)) = (self.clocks.get(&ssrc), self.newest_ts.get(&ssrc))
        else {
            return false;
        };
        let age = newest.wrapping_sub(rtp.header.timestamp);
        // A timestamp ahead of the newest (wrapped) is not old.
        age < u32::MAX / 2 && f64::from(age) > f64::from(clock) * MAX_REPAIR_AGE.as_secs_f64()
    }

    fn class(&self, packet: &TaggedPacket) -> Class {
        if packet.message.has(&Attribute::Retransmission) {
            return Class::Retransmission;
        }
        match &packet.message.packet {
            Packet::Rtp(rtp) if self.audio_ssrcs.contains(&rtp.header.ssrc) => Class::Audio,
            _ => Class::Video,
        }
    }

    /// Releases what the budget allows, highest class first. A packet is released while the
    /// budget is positive and may take it below zero (a debt repaid before the next one).
    fn release(&mut self, now: Instant) {
        self.refill(now);
        while self.budget_bits > 0.0 {
            let Some(queue) = self.queues.iter_mut().find(|q| !q.is_empty()) else {
                break;
            };
            let Some(held) = queue.pop_front() else {
                break;
            };
            self.budget_bits -= held.bits;
            self.queued_bits = (self.queued_bits - held.bits).max(0.0);
            let waited = now.saturating_duration_since(held.since).as_millis() as u64;
            self.counters
                .max_queue_ms
                .fetch_max(waited, Ordering::Relaxed);
            self.counters.packets_paced.fetch_add(1, Ordering::Relaxed);
            if held.packet.message.has(&Attribute::Retransmission) {
                self.counters
                    .retransmissions_sent
                    .fetch_add(1, Ordering::Relaxed);
            }
            let mut packet = held.packet;
            // It departs now: the send history below must record the release, not the
            // enqueue, or the pacer's own wait would be charged to the network.
            packet.now = now;
            self.released.push_back(packet);
        }
        self.publish();
    }

    fn publish(&self) {
        self.counters
            .queued_packets
            .store(self.queued() as u64, Ordering::Relaxed);
        self.counters
            .pacing_bps
            .store(self.pacing_bps() as u64, Ordering::Relaxed);
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for PriorityPacer {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        // The congestion controller, wire-ward of here, hangs a changed estimate on the
        // feedback packet that produced it.
        if let Some(Attribute::TargetBitrateChanged { bits_per_second }) =
            msg.message.get(&Attribute::TargetBitrateChanged {
                bits_per_second: 0.0,
            })
            && bits_per_second.is_finite()
            && *bits_per_second > 0.0
        {
            self.estimate_bps = bits_per_second.max(FLOOR_BPS);
            self.publish();
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        let bits = match &msg.message.packet {
            Packet::Rtp(rtp) => {
                if msg.message.has(&Attribute::Retransmission) {
                    if self.stale_repair(rtp) {
                        self.counters
                            .stale_repairs_skipped
                            .fetch_add(1, Ordering::Relaxed);
                        return Ok(());
                    }
                } else {
                    let newest = self
                        .newest_ts
                        .entry(rtp.header.ssrc)
                        .or_insert(rtp.header.timestamp);
                    if rtp.header.timestamp.wrapping_sub(*newest) < u32::MAX / 2 {
                        *newest = rtp.header.timestamp;
                    }
                }
                (rtp.marshal_size() * 8) as f64
            }
            // Feedback is only worth something while it is fresh; nothing else is paced.
            _ => {
                self.unpaced.push_back(msg);
                return Ok(());
            }
        };
        if self.queued() >= QUEUE_LIMIT {
            self.counters
                .packets_dropped
                .fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let now = msg.now;
        let class = self.class(&msg);
        self.queued_bits += bits;
        self.queues[class as usize].push_back(Held {
            packet: msg,
            bits,
            since: now,
        });
        self.release(now);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.unpaced
            .pop_front()
            .or_else(|| self.released.pop_front())
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        self.release(now);
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Self::Time> {
        if self.queued() == 0 {
            return None;
        }
        let last = self.last_refill?;
        // The budget is at or below zero (else the queue would have been released): wait
        // until it is positive again.
        let debt = (-self.budget_bits).max(0.0) + 1.0;
        Some(last + Duration::from_secs_f64(debt / self.pacing_bps()))
    }
}

impl Interceptor for PriorityPacer {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        if info.clock_rate > 0 {
            self.clocks.insert(info.ssrc, info.clock_rate);
        }
        if info.mime_type.to_ascii_lowercase().starts_with("audio/") {
            self.audio_ssrcs.insert(info.ssrc);
        }
    }

    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.audio_ssrcs.remove(&info.ssrc);
        self.clocks.remove(&info.ssrc);
        self.newest_ts.remove(&info.ssrc);
    }

    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}

    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::AttributedPacket;
    use rtc::rtp;

    const VIDEO: u32 = 1;
    const AUDIO: u32 = 2;

    fn rtp(now: Instant, ssrc: u32, seq: u16, payload: usize) -> TaggedPacket {
        rtp_at(now, ssrc, seq, 0, payload)
    }

    fn rtp_at(now: Instant, ssrc: u32, seq: u16, timestamp: u32, payload: usize) -> TaggedPacket {
        TaggedPacket {
            now,
            transport: Default::default(),
            message: AttributedPacket::new(Packet::Rtp(rtp::Packet {
                header: rtp::header::Header {
                    version: 2,
                    ssrc,
                    sequence_number: seq,
                    timestamp,
                    ..Default::default()
                },
                payload: vec![0u8; payload].into(),
            })),
        }
    }

    fn pacer(start_bps: f64) -> PriorityPacer {
        let mut pacer = PriorityPacer::new(start_bps, Arc::new(SendCounters::default()));
        pacer.bind_local_stream(&StreamInfo {
            ssrc: AUDIO,
            mime_type: "audio/opus".into(),
            ..Default::default()
        });
        pacer.bind_local_stream(&StreamInfo {
            ssrc: VIDEO,
            mime_type: "video/VP8".into(),
            clock_rate: 90_000,
            ..Default::default()
        });
        pacer
    }

    fn drain(pacer: &mut PriorityPacer) -> Vec<(u32, u16)> {
        std::iter::from_fn(|| pacer.poll_write())
            .filter_map(|p| match p.message.packet {
                Packet::Rtp(rtp) => Some((rtp.header.ssrc, rtp.header.sequence_number)),
                _ => None,
            })
            .collect()
    }

    /// Runs the pacer's timer until nothing is queued or `limit` has passed.
    fn run_until_empty(pacer: &mut PriorityPacer, from: Instant, limit: Duration) -> Instant {
        let mut now = from;
        while pacer.queued() > 0 && now.duration_since(from) < limit {
            now = pacer
                .poll_timeout()
                .expect("a deadline while queued")
                .max(now);
            pacer.handle_timeout(now).expect("timeout");
        }
        now
    }

    #[test]
    fn a_steady_stream_at_the_estimate_is_never_held() {
        // 1 Mbit/s estimate, video at 1 Mbit/s: 1000-byte packets every 8 ms.
        let mut pacer = pacer(1_000_000.0);
        let start = Instant::now();
        for i in 0..500u16 {
            let now = start + Duration::from_millis(8 * u64::from(i));
            pacer.handle_write(rtp(now, VIDEO, i, 988)).expect("write");
            pacer.handle_timeout(now).expect("timeout");
            assert_eq!(drain(&mut pacer).len(), 1, "packet {i} held");
        }
        assert_eq!(pacer.queued(), 0);
    }

    #[test]
    fn a_keyframe_burst_is_spread_at_the_pacing_rate() {
        let mut pacer = pacer(1_000_000.0);
        let start = Instant::now();
        // 50 packets of 1200 bytes: 480 kbit, ~190 ms at 2.5 Mbit/s.
        for i in 0..50u16 {
            pacer
                .handle_write(rtp(start, VIDEO, i, 1188))
                .expect("write");
        }
        assert!(pacer.queued() > 40, "most of the burst waits");
        let end = run_until_empty(&mut pacer, start, Duration::from_secs(2));
        assert_eq!(drain(&mut pacer).len(), 50);
        let took = end.duration_since(start).as_secs_f64();
        assert!((0.12..0.25).contains(&took), "{took} s");
    }

    #[test]
    fn audio_and_repairs_overtake_queued_video() {
        let mut pacer = pacer(500_000.0);
        let start = Instant::now();
        for i in 0..30u16 {
            pacer
                .handle_write(rtp(start, VIDEO, i, 1188))
                .expect("write");
        }
        let mut repair = rtp(start, VIDEO, 7, 1188);
        repair.message.add(Attribute::Retransmission);
        pacer.handle_write(repair).expect("write");
        pacer
            .handle_write(rtp(start, AUDIO, 100, 100))
            .expect("write");
        run_until_empty(&mut pacer, start, Duration::from_secs(2));
        let order = drain(&mut pacer);
        let audio = order
            .iter()
            .position(|&p| p == (AUDIO, 100))
            .expect("audio");
        let repair = order
            .iter()
            .rposition(|&p| p == (VIDEO, 7))
            .expect("repair");
        let last_video = order.iter().position(|&p| p == (VIDEO, 29)).expect("video");
        assert!(audio < repair && repair < last_video, "{order:?}");
        assert_eq!(
            pacer.counters.retransmissions_sent.load(Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn a_long_queue_drains_within_the_bound_whatever_the_estimate() {
        // 150 kbit/s estimate, 2 Mbit of video arrives at once: at 2.5 × the estimate that
        // would wait over 5 s; the pacer speeds up instead.
        let mut pacer = pacer(150_000.0);
        let start = Instant::now();
        for i in 0..200u16 {
            pacer
                .handle_write(rtp(start, VIDEO, i, 1238))
                .expect("write");
        }
        let end = run_until_empty(&mut pacer, start, Duration::from_secs(10));
        assert_eq!(pacer.queued(), 0);
        assert!(
            end.duration_since(start) <= MAX_QUEUE_DELAY * 2,
            "{:?}",
            end.duration_since(start)
        );
    }

    #[test]
    fn the_queue_is_bounded_and_refusals_are_counted() {
        let mut pacer = pacer(100_000.0);
        let start = Instant::now();
        pacer.budget_bits = -1e12;
        for i in 0..(QUEUE_LIMIT + 10) {
            pacer
                .handle_write(rtp(start, VIDEO, i as u16, 1000))
                .expect("write");
        }
        assert_eq!(pacer.queued(), QUEUE_LIMIT);
        assert_eq!(pacer.counters.packets_dropped.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn repairs_of_media_older_than_a_second_are_not_sent() {
        let mut pacer = pacer(1_000_000.0);
        let start = Instant::now();
        pacer
            .handle_write(rtp_at(start, VIDEO, 1, 0, 500))
            .expect("write");
        pacer
            .handle_write(rtp_at(start, VIDEO, 200, 90_000 * 3, 500))
            .expect("write");
        for (seq, ts) in [(1u16, 0u32), (199, 90_000 * 3 - 3_000)] {
            let mut repair = rtp_at(start, VIDEO, seq, ts, 500);
            repair.message.add(Attribute::Retransmission);
            pacer.handle_write(repair).expect("write");
        }
        run_until_empty(&mut pacer, start, Duration::from_secs(1));
        assert_eq!(drain(&mut pacer), [(VIDEO, 1), (VIDEO, 200), (VIDEO, 199)]);
        let c = &pacer.counters;
        assert_eq!(c.stale_repairs_skipped.load(Ordering::Relaxed), 1);
        assert_eq!(c.retransmissions_sent.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_estimate_arrives_on_the_read_leg() {
        let mut pacer = pacer(1_000_000.0);
        let mut carrier = TaggedPacket {
            now: Instant::now(),
            transport: Default::default(),
            message: AttributedPacket::new(Packet::Rtcp(vec![])),
        };
        carrier.message.add(Attribute::TargetBitrateChanged {
            bits_per_second: 400_000.0,
        });
        pacer.handle_read(carrier).expect("read");
        assert!(pacer.poll_read().is_some());
        assert_eq!(pacer.pacing_bps(), 400_000.0 * PACING_FACTOR);
    }

    #[test]
    fn nacks_and_keyframe_requests_are_counted() {
        use rtc::rtcp::transport_feedbacks::transport_layer_nack::NackPair;
        let counters = SendCounters::default();
        let nack: Box<dyn rtcp::Packet> = Box::new(TransportLayerNack {
            sender_ssrc: 0,
            media_ssrc: VIDEO,
            nacks: vec![NackPair {
                packet_id: 10,
                lost_packets: 0b101,
            }],
        });
        let pli: Box<dyn rtcp::Packet> = Box::new(PictureLossIndication::default());
        counters.count_inbound(&nack);
        counters.count_inbound(&pli);
        assert_eq!(counters.nacks_received.load(Ordering::Relaxed), 1);
        assert_eq!(counters.packets_nacked.load(Ordering::Relaxed), 3);
        assert_eq!(counters.plis_received.load(Ordering::Relaxed), 1);
    }
}
