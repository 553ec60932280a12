//! Re-addressing forwarded RTP for the screen link, without touching the payload.
//!
//! The clerk's video arrives from the relay with the relay's SSRC, the payload type of the
//! relay leg and that leg's header extensions; a new connection to the relay (or another
//! clerk) brings a new SSRC and unrelated sequence numbers and timestamps. The page must see
//! one steady stream: one SSRC, the payload types it negotiated with the agent, sequence
//! numbers that continue, timestamps that keep moving with wall time. Within one source,
//! differences are kept exactly (reordering and gaps stay visible to the browser's jitter
//! buffer and NACK); at a switch, the new source is placed just after the last packet sent.
//! Header extensions are dropped: their ids belong to the relay leg.

use std::time::Instant;

use rtc::rtp;

/// RTP clock rate of video.
const VIDEO_CLOCK: u64 = 90_000;

#[derive(Debug, Clone, Copy)]
struct Source {
    ssrc: u32,
    seq_offset: u16,
    ts_offset: u32,
}

#[derive(Debug, Clone, Copy)]
struct LastOut {
    seq: u16,
    timestamp: u32,
    at: Instant,
}

/// See the module docs. One per forwarded stream and screen connection.
#[derive(Debug)]
pub struct RtpRewriter {
    ssrc: u32,
    source: Option<Source>,
    last: Option<LastOut>,
    switches: u64,
}

/// What [`RtpRewriter::rewrite`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite {
    /// The packet continues the current source.
    Continued,
    /// The first packet of a new source (or the very first): the receiver needs a keyframe.
    NewSource,
}

impl RtpRewriter {
    /// Packets leave with `ssrc`.
    pub fn new(ssrc: u32) -> RtpRewriter {
        RtpRewriter {
            ssrc,
            source: None,
            last: None,
            switches: 0,
        }
    }

    /// Sources seen after the first.
    pub fn switches(&self) -> u64 {
        self.switches
    }

    /// Rewrites `packet` in place for the screen leg, with `payload_type` (the screen leg's
    /// number for the packet's codec).
    pub fn rewrite(&mut self, now: Instant, packet: &mut rtp::Packet, payload_type: u8) -> Rewrite {
        let header = &mut packet.header;
        let mut outcome = Rewrite::Continued;
        let source = match self.source {
            Some(source) if source.ssrc == header.ssrc => source,
            _ => {
                outcome = Rewrite::NewSource;
                let source = match self.last {
                    None => Source {
                        ssrc: header.ssrc,
                        seq_offset: 0,
                        ts_offset: 0,
                    },
                    Some(last) => {
                        self.switches += 1;
                        // At least one tick later, so the new frame is never "older".
                        let elapsed = now.saturating_duration_since(last.at);
                        let ticks = (elapsed.as_micros() as u64 * VIDEO_CLOCK / 1_000_000).max(1);
                        let next_ts = last.timestamp.wrapping_add(ticks as u32);
                        Source {
                            ssrc: header.ssrc,
                            seq_offset: last
                                .seq
                                .wrapping_add(1)
                                .wrapping_sub(header.sequence_number),
                            ts_offset: next_ts.wrapping_sub(header.timestamp),
                        }
                    }
                };
                self.source = Some(source);
                source
            }
        };
        header.ssrc = self.ssrc;
        header.payload_type = payload_type;
        header.sequence_number = header.sequence_number.wrapping_add(source.seq_offset);
        header.timestamp = header.timestamp.wrapping_add(source.ts_offset);
        header.extension = false;
        header.extension_profile = 0;
        header.extensions.clear();
        header.extensions_padding = 0;
        let newer = self
            .last
            .is_none_or(|last| seq_newer(header.sequence_number, last.seq));
        if newer {
            self.last = Some(LastOut {
                seq: header.sequence_number,
                timestamp: header.timestamp,
                at: now,
            });
        }
        outcome
    }
}

/// Whether `a` comes after `b` in 16-bit serial-number arithmetic.
fn seq_newer(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;

    fn packet(ssrc: u32, seq: u16, ts: u32) -> rtp::Packet {
        let mut p = rtp::Packet::default();
        p.header.version = 2;
        p.header.ssrc = ssrc;
        p.header.sequence_number = seq;
        p.header.timestamp = ts;
        p.header.payload_type = 45;
        p.payload = Bytes::from_static(b"payload");
        p
    }

    #[test]
    fn one_source_keeps_its_numbering_and_loses_its_extensions() {
        let mut r = RtpRewriter::new(0xabcd);
        let now = Instant::now();
        let mut p = packet(7, 100, 5000);
        p.header.extension = true;
        p.header.extension_profile = 0xBEDE;
        let _ = p.header.set_extension(3, Bytes::from_static(&[1, 2]));
        assert_eq!(r.rewrite(now, &mut p, 96), Rewrite::NewSource);
        assert_eq!(
            (
                p.header.ssrc,
                p.header.payload_type,
                p.header.sequence_number,
                p.header.timestamp
            ),
            (0xabcd, 96, 100, 5000)
        );
        assert!(!p.header.extension && p.header.extensions.is_empty());
        assert_eq!(p.payload, Bytes::from_static(b"payload"));
        // Reordering and gaps pass through as they are.
        for (seq, ts) in [(102, 8000), (101, 5000), (105, 11000)] {
            let mut p = packet(7, seq, ts);
            assert_eq!(r.rewrite(now, &mut p, 96), Rewrite::Continued);
            assert_eq!((p.header.sequence_number, p.header.timestamp), (seq, ts));
        }
    }

    #[test]
    fn a_new_source_continues_after_the_last_packet() {
        let mut r = RtpRewriter::new(1);
        let t0 = Instant::now();
        let mut p = packet(7, 65_535, u32::MAX - 10);
        r.rewrite(t0, &mut p, 96);
        // 100 ms later another source starts with unrelated numbers.
        let t1 = t0 + Duration::from_millis(100);
        let mut p = packet(9, 40_000, 123);
        assert_eq!(r.rewrite(t1, &mut p, 102), Rewrite::NewSource);
        assert_eq!(p.header.sequence_number, 0, "wraps after 65535");
        assert_eq!(p.header.timestamp, (u32::MAX - 10).wrapping_add(9000));
        assert_eq!(p.header.payload_type, 102);
        let mut q = packet(9, 40_001, 3123);
        assert_eq!(r.rewrite(t1, &mut q, 102), Rewrite::Continued);
        assert_eq!(q.header.sequence_number, 1);
        assert_eq!(q.header.timestamp, p.header.timestamp.wrapping_add(3000));
        assert_eq!(r.switches(), 1);
    }

    proptest! {
        /// Whatever the sources do, output sequence numbers of each source keep the source's
        /// own differences, and a switch never lands on or before the highest number sent.
        #[test]
        fn switches_never_go_backwards(
            runs in proptest::collection::vec((any::<u32>(), any::<u16>(), any::<u32>(), 1usize..20), 1..12)
        ) {
            let mut r = RtpRewriter::new(5);
            let mut now = Instant::now();
            let mut highest: Option<u16> = None;
            let mut previous_ssrc = None;
            for (ssrc, seq, ts, len) in runs {
                now += Duration::from_millis(33);
                for i in 0..len {
                    let mut p = packet(ssrc, seq.wrapping_add(i as u16), ts.wrapping_add(3000 * i as u32));
                    let outcome = r.rewrite(now, &mut p, 96);
                    let out = p.header.sequence_number;
                    if i == 0 && previous_ssrc != Some(ssrc) {
                        prop_assert_eq!(outcome, Rewrite::NewSource);
                        if let Some(h) = highest {
                            prop_assert_eq!(out, h.wrapping_add(1));
                        }
                    }
                    if highest.is_none_or(|h| seq_newer(out, h)) {
                        highest = Some(out);
                    }
                    prop_assert_eq!(p.header.ssrc, 5);
                }
                previous_ssrc = Some(ssrc);
            }
        }
    }
}
