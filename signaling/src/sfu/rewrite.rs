//! Per outgoing track rewriting of RTP sequence numbers, timestamps and VP8 picture ids.
//!
//! A clerk's receiving track lives as long as the clerk is signed in, while the kiosk feeding
//! it changes with every ticket (and a kiosk's encoder may restart). The viewer must see one
//! continuous stream: sequence numbers that go on by one, timestamps that advance with wall
//! time, picture ids that go on by one. Each change of source starts a new *segment*; inside a
//! segment the mapping is a fixed offset, so reordering and late (repaired) packets map to the
//! numbers they would have had.
//!
//! Pure state, no clock: the arrival time of the packet is passed in.

use std::time::{Duration, Instant};

/// Who feeds a track right now: the source peer and its SSRC. A change of either starts a new
/// segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceKey {
    pub peer: u64,
    pub ssrc: u32,
}

/// A forward jump of the source's extended sequence number larger than this is treated as a
/// restart of the source (new segment) rather than as loss.
const MAX_SEQ_JUMP: u64 = 3_000;

#[derive(Debug, Clone, Copy)]
struct Segment {
    source: SourceKey,
    /// out = in + offset (wrapping in u64 space; outgoing numbers stay far from overflow).
    seq_offset: u64,
    ts_offset: u32,
    first_in_seq: u64,
    max_in_seq: u64,
}

#[derive(Debug, Clone, Copy)]
struct LastOut {
    seq: u64,
    ts: u32,
    at: Instant,
}

/// Sequence number and timestamp rewriting for one outgoing track.
#[derive(Debug, Clone)]
pub struct SeqTsRewriter {
    clock_rate: u32,
    segment: Option<Segment>,
    last: Option<LastOut>,
}

/// The verdict for one incoming packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewritten {
    /// Forward with these values. `new_segment` is true for the first packet of a segment.
    Forward {
        seq: u64,
        ts: u32,
        new_segment: bool,
    },
    /// The packet is older than the current segment's first packet: drop it.
    Stale,
}

impl SeqTsRewriter {
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            segment: None,
            last: None,
        }
    }

    /// Forget the current source; the next packet starts a new segment.
    pub fn end_segment(&mut self) {
        self.segment = None;
    }

    /// True when the next packet from `source` with `in_seq` would start a new segment.
    pub fn starts_segment(&self, source: SourceKey, in_seq: u64) -> bool {
        match &self.segment {
            None => true,
            Some(seg) => seg.source != source || in_seq > seg.max_in_seq + MAX_SEQ_JUMP,
        }
    }

    /// Map one packet. `in_seq` is the source's extended sequence number (str0m extends it).
    pub fn rewrite(
        &mut self,
        source: SourceKey,
        in_seq: u64,
        in_ts: u32,
        now: Instant,
    ) -> Rewritten {
        let new_segment = self.starts_segment(source, in_seq);
        if new_segment {
            self.segment = Some(self.open_segment(source, in_seq, in_ts, now));
        }
        let Some(seg) = self.segment.as_mut() else {
            // Just opened above.
            return Rewritten::Stale;
        };
        if in_seq < seg.first_in_seq {
            return Rewritten::Stale;
        }
        seg.max_in_seq = seg.max_in_seq.max(in_seq);
        let seq = in_seq.wrapping_add(seg.seq_offset);
        let ts = in_ts.wrapping_add(seg.ts_offset);
        match &mut self.last {
            Some(last) if seq <= last.seq => {}
            _ => self.last = Some(LastOut { seq, ts, at: now }),
        }
        Rewritten::Forward {
            seq,
            ts,
            new_segment,
        }
    }

    fn open_segment(&self, source: SourceKey, in_seq: u64, in_ts: u32, now: Instant) -> Segment {
        let (out_seq, out_ts) = match self.last {
            // The very first packet keeps its own numbers, reduced to a first rollover
            // counter of 0 (the viewer's SRTP context starts there).
            None => (in_seq & 0xffff, in_ts),
            Some(last) => {
                let elapsed = now.saturating_duration_since(last.at);
                (
                    last.seq + 1,
                    last.ts.wrapping_add(self.ticks(elapsed).max(1)),
                )
            }
        };
        Segment {
            source,
            seq_offset: out_seq.wrapping_sub(in_seq),
            ts_offset: out_ts.wrapping_sub(in_ts),
            first_in_seq: in_seq,
            max_in_seq: in_seq,
        }
    }

    fn ticks(&self, d: Duration) -> u32 {
        let t = d.as_micros() * u128::from(self.clock_rate) / 1_000_000;
        u32::try_from(t).unwrap_or(u32::MAX / 2)
    }
}

/// VP8 picture id / TL0PICIDX continuity across segments.
///
/// The offsets are fixed at the segment's first (key)frame so the viewer's picture ids go on
/// by one; the widths (7 or 15 bit picture id) are kept as the source wrote them.
#[derive(Debug, Clone, Default)]
pub struct Vp8Rewriter {
    pid_offset: u16,
    tl0_offset: u8,
    last_pid: Option<u16>,
    last_tl0: Option<u8>,
}

impl Vp8Rewriter {
    /// Called for the first packet of a new segment, with that packet's values.
    pub fn start_segment(&mut self, in_pid: Option<u16>, in_tl0: Option<u8>) {
        self.pid_offset = match (self.last_pid, in_pid) {
            (Some(last), Some(pid)) => last.wrapping_add(1).wrapping_sub(pid),
            _ => 0,
        };
        self.tl0_offset = match (self.last_tl0, in_tl0) {
            (Some(last), Some(tl0)) => last.wrapping_add(1).wrapping_sub(tl0),
            _ => 0,
        };
    }

    /// The rewritten picture id (masked to the descriptor's width) and TL0PICIDX.
    pub fn map(
        &mut self,
        in_pid: Option<u16>,
        pid_15_bit: bool,
        in_tl0: Option<u8>,
    ) -> (Option<u16>, Option<u8>) {
        let mask = if pid_15_bit { 0x7fff } else { 0x7f };
        let pid = in_pid.map(|p| p.wrapping_add(self.pid_offset) & mask);
        let tl0 = in_tl0.map(|t| t.wrapping_add(self.tl0_offset));
        if pid.is_some() {
            self.last_pid = pid;
        }
        if tl0.is_some() {
            self.last_tl0 = tl0;
        }
        (pid, tl0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: SourceKey = SourceKey { peer: 1, ssrc: 10 };
    const B: SourceKey = SourceKey { peer: 2, ssrc: 20 };

    fn fwd(r: Rewritten) -> (u64, u32) {
        match r {
            Rewritten::Forward { seq, ts, .. } => (seq, ts),
            Rewritten::Stale => panic!("unexpected stale"),
        }
    }

    #[test]
    fn first_segment_keeps_numbers_with_zero_rollover() {
        let t0 = Instant::now();
        let mut r = SeqTsRewriter::new(90_000);
        assert_eq!(fwd(r.rewrite(A, 70_000, 1000, t0)), (70_000 & 0xffff, 1000));
        assert_eq!(
            fwd(r.rewrite(A, 70_001, 4000, t0)),
            ((70_000 & 0xffff) + 1, 4000)
        );
    }

    #[test]
    fn switching_source_continues_seq_and_advances_ts_by_wall_time() {
        let t0 = Instant::now();
        let mut r = SeqTsRewriter::new(90_000);
        for i in 0..10u64 {
            r.rewrite(
                A,
                100 + i,
                3000 * i as u32,
                t0 + Duration::from_millis(33 * i),
            );
        }
        let (last_seq, last_ts) = (109, 27_000);
        r.end_segment();
        // Second source, wildly different numbers, 1 s after the last packet of A.
        let t1 = t0 + Duration::from_millis(33 * 9 + 1000);
        let (s, ts) = fwd(r.rewrite(B, 50_000, 123_456_789, t1));
        assert_eq!(s, last_seq + 1);
        assert_eq!(ts, last_ts + 90_000);
        let (s2, ts2) = fwd(r.rewrite(B, 50_001, 123_456_789 + 3000, t1));
        assert_eq!((s2, ts2), (last_seq + 2, last_ts + 93_000));
    }

    #[test]
    fn reordered_and_late_packets_keep_their_place_and_stale_ones_are_dropped() {
        let t0 = Instant::now();
        let mut r = SeqTsRewriter::new(90_000);
        r.rewrite(A, 10, 0, t0);
        r.end_segment();
        let (first, _) = fwd(r.rewrite(B, 500, 0, t0));
        assert_eq!(first, 11);
        // 502 arrives before 501.
        assert_eq!(fwd(r.rewrite(B, 502, 0, t0)).0, 13);
        assert_eq!(fwd(r.rewrite(B, 501, 0, t0)).0, 12);
        // A packet from before the segment began (e.g. a delayed delta frame) is stale.
        assert_eq!(r.rewrite(B, 499, 0, t0), Rewritten::Stale);
        // The next one continues after the highest.
        assert_eq!(fwd(r.rewrite(B, 503, 0, t0)).0, 14);
    }

    #[test]
    fn ssrc_change_or_huge_jump_starts_a_segment() {
        let t0 = Instant::now();
        let mut r = SeqTsRewriter::new(48_000);
        r.rewrite(A, 10, 0, t0);
        let restarted = SourceKey { peer: 1, ssrc: 11 };
        assert!(r.starts_segment(restarted, 5));
        assert_eq!(fwd(r.rewrite(restarted, 5, 0, t0)).0, 11);
        assert!(r.starts_segment(restarted, 5 + MAX_SEQ_JUMP + 1));
        assert!(!r.starts_segment(restarted, 6));
    }

    #[test]
    fn timestamps_wrap() {
        let t0 = Instant::now();
        let mut r = SeqTsRewriter::new(90_000);
        r.rewrite(A, 1, u32::MAX - 10, t0);
        assert_eq!(fwd(r.rewrite(A, 2, 5, t0)).1, 5);
    }

    #[test]
    fn vp8_picture_ids_continue_across_segments() {
        let mut v = Vp8Rewriter::default();
        v.start_segment(Some(30_000), Some(7));
        assert_eq!(v.map(Some(30_000), true, Some(7)), (Some(30_000), Some(7)));
        assert_eq!(v.map(Some(32_767), true, Some(8)), (Some(32_767), Some(8)));
        v.start_segment(Some(5), Some(200));
        // Continues at 32_767 + 1 = 0 (15-bit wrap), tl0 8 + 1.
        assert_eq!(v.map(Some(5), true, Some(200)), (Some(0), Some(9)));
        assert_eq!(v.map(Some(6), true, Some(201)), (Some(1), Some(10)));
        // 7-bit descriptors stay 7-bit.
        v.start_segment(Some(100), None);
        assert_eq!(v.map(Some(100), false, None), (Some(2), None));
        assert_eq!(v.map(Some(127), false, None).0, Some(29));
    }
}
