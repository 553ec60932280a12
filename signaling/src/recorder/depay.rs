//! From recorded RTP packets to timestamped codec frames, per track, without decoding.
//!
//! Packets are put back in sequence order (a bounded window; the dump is in arrival order),
//! grouped into frames by RTP timestamp and marker bit, and stripped of their RTP payload
//! format: the VP8 payload descriptor, H.264 STAP-A/FU-A (re-emitted as 4-byte length-prefixed
//! NAL units, as Matroska's `V_MPEG4/ISO/AVC` wants), nothing for Opus. A frame with a missing
//! packet is dropped, and a video track then skips to its next keyframe, so the file never
//! holds a frame that references a lost one.

use std::collections::BTreeMap;

use super::dump::DumpRecord;
use crate::sfu::MediaCodec;

/// A whole codec frame with its presentation time (microseconds since the dump started).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub pts_us: u64,
    pub keyframe: bool,
    pub data: Vec<u8>,
}

/// What the muxer needs to describe a track, learnt while assembling.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackInfo {
    pub frames: u64,
    pub first_pts_us: Option<u64>,
    pub last_pts_us: u64,
    pub width: u16,
    pub height: u16,
    pub sps: Option<Vec<u8>>,
    pub pps: Option<Vec<u8>>,
    pub opus_stereo: bool,
    pub dropped_frames: u64,
}

/// Packets held back to restore sequence order.
const REORDER_PACKETS: usize = 256;
/// ... or for at most this long (by arrival time).
const REORDER_US: u64 = 500_000;
/// RTP time that disagrees with arrival time by more than this re-anchors the timeline (a
/// source restart or pause).
const MAX_DRIFT_US: u64 = 3_000_000;

#[derive(Debug)]
struct Partial {
    ts: u32,
    pts_us: u64,
    keyframe: bool,
    broken: bool,
    data: Vec<u8>,
    /// H.264: a fragmented NAL unit being reassembled (offset of its length prefix).
    fu_start: Option<usize>,
}

#[derive(Debug, Default)]
struct Timeline {
    ssrc: Option<u32>,
    last_ts: u32,
    ext_ts: u64,
    anchor_ext: u64,
    anchor_us: u64,
}

pub struct TrackAssembler {
    codec: MediaCodec,
    clock: u64,
    reorder: BTreeMap<u64, DumpRecord>,
    newest_arrival: u64,
    next_seq: Option<u64>,
    cur: Option<Partial>,
    need_keyframe: bool,
    timeline: Timeline,
    pub info: TrackInfo,
}

impl TrackAssembler {
    pub fn new(codec: MediaCodec) -> Self {
        Self {
            codec,
            clock: u64::from(codec.clock_rate()),
            reorder: BTreeMap::new(),
            newest_arrival: 0,
            next_seq: None,
            cur: None,
            need_keyframe: codec.is_video(),
            timeline: Timeline::default(),
            info: TrackInfo::default(),
        }
    }

    pub fn codec(&self) -> MediaCodec {
        self.codec
    }

    /// Feed one record (arrival order); completed frames are appended to `out`.
    pub fn push(&mut self, rec: DumpRecord, out: &mut Vec<Frame>) {
        if self.timeline.ssrc.is_some_and(|s| s != rec.ssrc) {
            // New source stream: its sequence space is unrelated. Drain the old one first.
            self.drain_all(out);
            self.next_seq = None;
        }
        self.newest_arrival = self.newest_arrival.max(rec.t_micros);
        if self.next_seq.is_some_and(|n| rec.seq < n) {
            return; // Already released past it (late duplicate or very late packet).
        }
        self.reorder.entry(rec.seq).or_insert(rec);
        loop {
            let len = self.reorder.len();
            let Some(entry) = self.reorder.first_entry() else {
                break;
            };
            if len <= REORDER_PACKETS && entry.get().t_micros + REORDER_US > self.newest_arrival {
                break;
            }
            let rec = entry.remove();
            self.process(rec, out);
        }
    }

    /// End of the dump: release everything and close the last frame.
    pub fn finish(&mut self, out: &mut Vec<Frame>) {
        self.drain_all(out);
        self.close_frame(out);
    }

    fn drain_all(&mut self, out: &mut Vec<Frame>) {
        while let Some((_, rec)) = self.reorder.pop_first() {
            self.process(rec, out);
        }
    }

    fn process(&mut self, rec: DumpRecord, out: &mut Vec<Frame>) {
        if self.next_seq.is_some_and(|expected| rec.seq > expected) {
            // Lost packets: the frame in progress is incomplete, and whatever follows may
            // reference what was lost, so video waits for the next keyframe.
            if let Some(cur) = self.cur.as_mut() {
                cur.broken = true;
            }
            self.need_keyframe_if_video();
        }
        self.next_seq = Some(rec.seq + 1);
        let pts_us = self.pts_for(&rec);
        match self.codec {
            MediaCodec::Opus => {
                if rec.payload.is_empty() {
                    return;
                }
                if self.info.frames == 0 {
                    self.info.opus_stereo = rec.payload[0] & 0x04 != 0;
                }
                self.emit(
                    Frame {
                        pts_us,
                        keyframe: true,
                        data: rec.payload,
                    },
                    out,
                );
            }
            MediaCodec::Vp8 | MediaCodec::H264 => {
                if self.cur.as_ref().is_some_and(|c| c.ts != rec.rtp_ts) {
                    // Timestamp moved on without a marker: the previous frame lost its end.
                    if let Some(c) = self.cur.as_mut() {
                        c.broken = true;
                    }
                    self.close_frame(out);
                }
                if self.cur.is_none() {
                    self.cur = Some(Partial {
                        ts: rec.rtp_ts,
                        pts_us,
                        keyframe: false,
                        broken: false,
                        data: Vec::with_capacity(rec.payload.len() * 4),
                        fu_start: None,
                    });
                }
                let first = self.cur.as_ref().is_some_and(|c| c.data.is_empty());
                let ok = match self.codec {
                    MediaCodec::Vp8 => self.append_vp8(&rec.payload, first),
                    _ => self.append_h264(&rec.payload),
                };
                if let Some(c) = self.cur.as_mut() {
                    // A frame that ends while an FU-A is still open lost the FU-A's end.
                    c.broken |= !ok || (rec.marker && c.fu_start.is_some());
                }
                if rec.marker {
                    self.close_frame(out);
                }
            }
        }
    }

    fn need_keyframe_if_video(&mut self) {
        if self.codec.is_video() {
            self.need_keyframe = true;
        }
    }

    fn close_frame(&mut self, out: &mut Vec<Frame>) {
        let Some(cur) = self.cur.take() else {
            return;
        };
        if cur.broken || cur.data.is_empty() {
            self.info.dropped_frames += 1;
            self.need_keyframe_if_video();
            return;
        }
        if self.need_keyframe && !cur.keyframe {
            self.info.dropped_frames += 1;
            return;
        }
        self.need_keyframe = false;
        self.emit(
            Frame {
                pts_us: cur.pts_us,
                keyframe: cur.keyframe,
                data: cur.data,
            },
            out,
        );
    }

    fn emit(&mut self, frame: Frame, out: &mut Vec<Frame>) {
        self.info.frames += 1;
        self.info.first_pts_us.get_or_insert(frame.pts_us);
        self.info.last_pts_us = self.info.last_pts_us.max(frame.pts_us);
        out.push(frame);
    }

    /// Presentation time from the RTP timestamp, anchored at the arrival time of the stream's
    /// first packet (and re-anchored when the two drift apart).
    fn pts_for(&mut self, rec: &DumpRecord) -> u64 {
        let t = &mut self.timeline;
        if t.ssrc != Some(rec.ssrc) {
            *t = Timeline {
                ssrc: Some(rec.ssrc),
                last_ts: rec.rtp_ts,
                ext_ts: 1 << 32,
                anchor_ext: 1 << 32,
                anchor_us: rec.t_micros,
            };
        }
        // Extend the 32-bit timestamp relative to the highest one seen so far.
        let delta = rec.rtp_ts.wrapping_sub(t.last_ts) as i32;
        let ext = t.ext_ts.saturating_add_signed(i64::from(delta));
        if delta > 0 {
            t.last_ts = rec.rtp_ts;
            t.ext_ts = ext;
        }
        let pts = if ext >= t.anchor_ext {
            t.anchor_us + (ext - t.anchor_ext) * 1_000_000 / self.clock
        } else {
            t.anchor_us
                .saturating_sub((t.anchor_ext - ext) * 1_000_000 / self.clock)
        };
        if pts.abs_diff(rec.t_micros) > MAX_DRIFT_US {
            t.anchor_ext = ext;
            t.anchor_us = rec.t_micros;
            return rec.t_micros;
        }
        pts
    }

    fn append_vp8(&mut self, payload: &[u8], first: bool) -> bool {
        let Some(cur) = self.cur.as_mut() else {
            return false;
        };
        let Some(offset) = vp8_descriptor_len(payload) else {
            return false;
        };
        let start = payload[0] & 0x10 != 0 && payload[0] & 0x07 == 0;
        if first != start {
            // A frame must begin with its start packet and contain it once.
            return false;
        }
        let body = &payload[offset..];
        if first {
            cur.keyframe = body.first().is_some_and(|b| b & 0x01 == 0);
            if cur.keyframe && body.len() >= 10 && body[3..6] == [0x9d, 0x01, 0x2a] {
                self.info.width = u16::from_le_bytes([body[6], body[7]]) & 0x3fff;
                self.info.height = u16::from_le_bytes([body[8], body[9]]) & 0x3fff;
            }
        }
        cur.data.extend_from_slice(body);
        true
    }

    fn append_h264(&mut self, payload: &[u8]) -> bool {
        let Some(&b0) = payload.first() else {
            return false;
        };
        match b0 & 0x1f {
            1..=23 => {
                self.push_nal(payload);
                true
            }
            24 => {
                let mut rest = &payload[1..];
                while !rest.is_empty() {
                    if rest.len() < 2 {
                        return false;
                    }
                    let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                    let Some(nal) = rest.get(2..2 + len) else {
                        return false;
                    };
                    self.push_nal(nal);
                    rest = &rest[2 + len..];
                }
                true
            }
            28 => {
                let Some(&fu) = payload.get(1) else {
                    return false;
                };
                let Some(cur) = self.cur.as_mut() else {
                    return false;
                };
                let (start, end) = (fu & 0x80 != 0, fu & 0x40 != 0);
                let body = &payload[2..];
                if start {
                    if cur.fu_start.is_some() {
                        return false;
                    }
                    let header = (b0 & 0xe0) | (fu & 0x1f);
                    cur.fu_start = Some(cur.data.len());
                    cur.data.extend_from_slice(&[0, 0, 0, 0, header]);
                    if header & 0x1f == 5 {
                        cur.keyframe = true;
                    }
                } else if cur.fu_start.is_none() {
                    return false;
                }
                cur.data.extend_from_slice(body);
                if let Some(at) = cur.fu_start.take_if(|_| end) {
                    let len = (cur.data.len() - at - 4) as u32;
                    cur.data[at..at + 4].copy_from_slice(&len.to_be_bytes());
                }
                true
            }
            _ => false,
        }
    }

    fn push_nal(&mut self, nal: &[u8]) {
        let Some(&h) = nal.first() else {
            return;
        };
        match h & 0x1f {
            5 => {
                if let Some(c) = self.cur.as_mut() {
                    c.keyframe = true;
                }
            }
            7 if self.info.sps.is_none() => {
                if let Some((w, hgt)) = super::h264::sps_dimensions(nal) {
                    self.info.width = w;
                    self.info.height = hgt;
                }
                self.info.sps = Some(nal.to_vec());
            }
            8 if self.info.pps.is_none() => {
                self.info.pps = Some(nal.to_vec());
            }
            _ => {}
        }
        if let Some(c) = self.cur.as_mut() {
            c.data.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            c.data.extend_from_slice(nal);
        }
    }
}

/// Length of the VP8 payload descriptor (RFC 7741 §4.2), if the payload holds one and some
/// data after it.
fn vp8_descriptor_len(p: &[u8]) -> Option<usize> {
    let b0 = *p.first()?;
    let mut off = 1;
    if b0 & 0x80 != 0 {
        let x = *p.get(off)?;
        off += 1;
        if x & 0x80 != 0 {
            let pid = *p.get(off)?;
            off += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            off += 1;
        }
        if x & 0x30 != 0 {
            off += 1;
        }
    }
    (off < p.len()).then_some(off)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::media::Slot;

    fn rec(seq: u64, ts: u32, t_ms: u64, marker: bool, payload: Vec<u8>) -> DumpRecord {
        DumpRecord {
            t_micros: t_ms * 1000,
            slot: Slot::KioskCamera,
            codec: MediaCodec::Vp8,
            marker,
            pt: 96,
            ssrc: 1,
            seq,
            rtp_ts: ts,
            payload,
        }
    }

    /// A VP8 frame of `n` packets: descriptor X=1,I=1 (15-bit pid), S on the first.
    fn vp8_frame(seq: u64, ts: u32, t_ms: u64, key: bool, n: u64) -> Vec<DumpRecord> {
        (0..n)
            .map(|i| {
                let s = if i == 0 { 0x10 } else { 0 };
                let mut p = vec![0x80 | s, 0x80, 0x80, 0x01];
                if i == 0 {
                    p.extend_from_slice(&[if key { 0x10 } else { 0x11 }, 0, 0]);
                    if key {
                        p.extend_from_slice(&[0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]);
                    }
                }
                p.extend_from_slice(&[i as u8; 10]);
                rec(seq + i, ts, t_ms, i == n - 1, p)
            })
            .collect()
    }

    fn run(records: Vec<DumpRecord>) -> (Vec<Frame>, TrackInfo) {
        let mut a = TrackAssembler::new(MediaCodec::Vp8);
        let mut out = Vec::new();
        for r in records {
            a.push(r, &mut out);
        }
        a.finish(&mut out);
        (out, a.info)
    }

    #[test]
    fn vp8_frames_are_reassembled_in_order_with_dimensions() {
        let mut recs = vp8_frame(10, 0, 0, true, 3);
        recs.extend(vp8_frame(13, 3000, 33, false, 2));
        recs.swap(1, 2); // reordering inside the window
        let (frames, info) = run(recs);
        assert_eq!(frames.len(), 2);
        assert!(frames[0].keyframe);
        assert!(!frames[1].keyframe);
        assert_eq!(frames[1].pts_us - frames[0].pts_us, 33_333);
        assert_eq!((info.width, info.height), (640, 480));
        // Descriptors are stripped: 3 bytes of header + 7 of key header + 3×10 data.
        assert_eq!(frames[0].data.len(), 3 + 7 + 30);
    }

    #[test]
    fn loss_drops_the_frame_and_waits_for_the_next_keyframe() {
        let mut recs = vp8_frame(10, 0, 0, true, 2);
        let mut delta = vp8_frame(12, 3000, 33, false, 3);
        delta.remove(1); // lost middle packet
        recs.extend(delta);
        recs.extend(vp8_frame(15, 6000, 66, false, 1)); // refers to the broken one
        recs.extend(vp8_frame(16, 9000, 100, true, 1));
        let (frames, info) = run(recs);
        assert_eq!(frames.len(), 2);
        assert!(frames.iter().all(|f| f.keyframe));
        assert_eq!(info.dropped_frames, 2);
    }

    #[test]
    fn stream_starting_mid_frame_waits_for_keyframe() {
        let mut recs = vp8_frame(10, 0, 0, false, 3);
        recs.remove(0);
        recs.extend(vp8_frame(13, 3000, 33, true, 1));
        let (frames, _) = run(recs);
        assert_eq!(frames.len(), 1);
        assert!(frames[0].keyframe);
    }

    #[test]
    fn h264_stap_a_and_fu_a_become_length_prefixed_nals() {
        let mut a = TrackAssembler::new(MediaCodec::H264);
        let mut out = Vec::new();
        let sps = super::super::h264::tests::SPS_640X480.to_vec();
        let pps = vec![0x68, 0xce, 0x3c, 0x80];
        let mut stap = vec![0x78];
        for nal in [&sps, &pps] {
            stap.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            stap.extend_from_slice(nal);
        }
        let mk = |seq, marker, payload| DumpRecord {
            codec: MediaCodec::H264,
            ..rec(seq, 0, 0, marker, payload)
        };
        a.push(mk(1, false, stap), &mut out);
        a.push(mk(2, false, vec![0x7c, 0x85, 1, 2, 3]), &mut out);
        a.push(mk(3, true, vec![0x7c, 0x45, 4, 5]), &mut out);
        a.finish(&mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].keyframe);
        let mut expect = Vec::new();
        for nal in [&sps[..], &pps[..], &[0x65, 1, 2, 3, 4, 5][..]] {
            expect.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            expect.extend_from_slice(nal);
        }
        assert_eq!(out[0].data, expect);
        assert_eq!((a.info.width, a.info.height), (640, 480));
        assert_eq!(a.info.pps, Some(pps));
    }

    #[test]
    fn opus_timestamps_follow_rtp_time_and_wrap() {
        let mut a = TrackAssembler::new(MediaCodec::Opus);
        let mut out = Vec::new();
        for i in 0..5u32 {
            let r = DumpRecord {
                codec: MediaCodec::Opus,
                slot: Slot::KioskMicrophone,
                ..rec(
                    u64::from(i),
                    (u32::MAX - 1000).wrapping_add(i * 960),
                    u64::from(i) * 20,
                    false,
                    vec![0xf8, 1],
                )
            };
            a.push(r, &mut out);
        }
        a.finish(&mut out);
        let pts: Vec<u64> = out.iter().map(|f| f.pts_us).collect();
        assert_eq!(pts, vec![0, 20_000, 40_000, 60_000, 80_000]);
    }

    proptest::proptest! {
        /// Random payloads, sequence numbers and timestamps never panic the assemblers.
        #[test]
        fn arbitrary_packets_never_panic(
            packets in proptest::collection::vec(
                (0u64..200, proptest::num::u32::ANY, proptest::bool::ANY,
                 proptest::collection::vec(proptest::num::u8::ANY, 0..64)),
                0..200,
            )
        ) {
            for codec in [MediaCodec::Vp8, MediaCodec::H264, MediaCodec::Opus] {
                let mut a = TrackAssembler::new(codec);
                let mut out = Vec::new();
                for (i, (seq, ts, marker, payload)) in packets.iter().enumerate() {
                    let mut r = rec(*seq, *ts, i as u64 * 10, *marker, payload.clone());
                    r.codec = codec;
                    a.push(r, &mut out);
                }
                a.finish(&mut out);
            }
        }
    }
}
