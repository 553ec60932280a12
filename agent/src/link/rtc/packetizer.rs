//! Encoded frames → RTP packets, for one outgoing stream.
//!
//! webrtc-rs's own sample track numbers RTP timestamps by adding each sample's duration, so a
//! dropped or late frame shifts every later frame's timestamp and the receiver's playout. Here
//! the timestamp comes from the frame's capture time (its pipeline PTS), so gaps stay gaps and
//! the receiver's jitter buffer sees the real capture cadence. Payloading (VP8 descriptor,
//! H.264 FU-A/STAP-A, Opus as-is) is webrtc-rs's.

use std::time::Duration;

use bytes::Bytes;
use rtc::rtp;
use rtc::rtp::codec::h264::H264Payloader;
use rtc::rtp::codec::opus::OpusPayloader;
use rtc::rtp::codec::vp8::Vp8Payloader;
use rtc::rtp::packetizer::Payloader;

use crate::media::{EncodedFrame, VideoCodec};

use super::RtcError;

/// Largest RTP payload; leaves room for RTP, SRTP and TURN headers inside a 1280-byte path.
pub const RTP_PAYLOAD_MTU: usize = 1200;

/// What an outgoing stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamCodec {
    Video(VideoCodec),
    Opus,
}

impl StreamCodec {
    fn clock_rate(self) -> u32 {
        match self {
            StreamCodec::Video(_) => 90_000,
            StreamCodec::Opus => 48_000,
        }
    }
}

/// Packetizes one stream's frames; owns its sequence numbers and timestamp offset.
pub struct RtpPacketizer {
    payloader: Box<dyn Payloader>,
    codec: StreamCodec,
    ssrc: u32,
    payload_type: u8,
    next_sequence: u16,
    timestamp_base: u32,
    /// PTS the next frame would have if it came without one.
    next_pts: Duration,
}

impl RtpPacketizer {
    /// `first_sequence` and `timestamp_base` should be random (RFC 3550 §5.1).
    pub fn new(
        codec: StreamCodec,
        ssrc: u32,
        payload_type: u8,
        first_sequence: u16,
        timestamp_base: u32,
    ) -> RtpPacketizer {
        let payloader: Box<dyn Payloader> = match codec {
            StreamCodec::Video(VideoCodec::Vp8) => {
                let mut vp8 = Vp8Payloader::default();
                // Picture IDs let a receiver spot loss inside a frame.
                vp8.enable_picture_id = true;
                Box::new(vp8)
            }
            StreamCodec::Video(VideoCodec::H264) => Box::<H264Payloader>::default(),
            StreamCodec::Opus => Box::<OpusPayloader>::default(),
        };
        RtpPacketizer {
            payloader,
            codec,
            ssrc,
            payload_type,
            next_sequence: first_sequence,
            timestamp_base,
            next_pts: Duration::ZERO,
        }
    }

    pub fn codec(&self) -> StreamCodec {
        self.codec
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The RTP timestamp for a presentation time.
    pub fn rtp_timestamp(&self, pts: Duration) -> u32 {
        let ticks = pts.as_nanos() * u128::from(self.codec.clock_rate()) / 1_000_000_000;
        // RTP timestamps wrap by design; truncation to 32 bits is the wrap.
        self.timestamp_base.wrapping_add(ticks as u32)
    }

    /// Splits one frame into RTP packets (marker bit on the last packet of a video frame).
    pub fn packetize(&mut self, frame: &EncodedFrame) -> Result<Vec<rtp::Packet>, RtcError> {
        if frame.data.is_empty() {
            return Ok(Vec::new());
        }
        let pts = frame.pts.unwrap_or(self.next_pts);
        let default_duration = match self.codec {
            StreamCodec::Video(_) => Duration::from_millis(33),
            StreamCodec::Opus => Duration::from_millis(20),
        };
        self.next_pts = pts + frame.duration.unwrap_or(default_duration);
        let timestamp = self.rtp_timestamp(pts);

        let payloads = self
            .payloader
            .payload(RTP_PAYLOAD_MTU, &frame.data)
            .map_err(|e| RtcError::WebRtc {
                during: "payloading a frame",
                message: e.to_string(),
            })?;
        let last = payloads.len().saturating_sub(1);
        let is_video = matches!(self.codec, StreamCodec::Video(_));
        Ok(payloads
            .into_iter()
            .enumerate()
            .map(|(i, payload)| {
                let sequence_number = self.next_sequence;
                self.next_sequence = self.next_sequence.wrapping_add(1);
                rtp::Packet {
                    header: rtp::Header {
                        version: 2,
                        marker: is_video && i == last,
                        payload_type: self.payload_type,
                        sequence_number,
                        timestamp,
                        ssrc: self.ssrc,
                        ..Default::default()
                    },
                    payload,
                }
            })
            .collect())
    }
}

/// True when a VP8 RTP payload (RFC 7741) starts a keyframe: the first packet of a frame
/// (S=1, partition 0) whose VP8 header has the inverse keyframe bit clear. Malformed or
/// truncated payloads are simply not keyframe starts.
pub fn vp8_payload_is_keyframe_start(payload: &Bytes) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let extended = first & 0x80 != 0;
    let start = first & 0x10 != 0;
    let partition = first & 0x07;
    if !start || partition != 0 {
        return false;
    }
    let mut offset = 1;
    if extended {
        let Some(&flags) = payload.get(1) else {
            return false;
        };
        offset = 2;
        if flags & 0x80 != 0 {
            // Picture ID: one byte, or two when its M bit is set.
            let Some(&pid) = payload.get(offset) else {
                return false;
            };
            offset += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if flags & 0x40 != 0 {
            offset += 1; // TL0PICIDX
        }
        if flags & 0x30 != 0 {
            offset += 1; // TID/KEYIDX
        }
    }
    payload
        .get(offset)
        .is_some_and(|&header| header & 0x01 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize, pts_ms: u64, keyframe: bool) -> EncodedFrame {
        // A plausible VP8 frame header: bit 0 of the first byte is the inverse keyframe flag.
        let mut data = vec![0u8; len];
        data[0] = if keyframe { 0x10 } else { 0x11 };
        EncodedFrame {
            data: Bytes::from(data),
            pts: Some(Duration::from_millis(pts_ms)),
            duration: Some(Duration::from_millis(33)),
            keyframe,
        }
    }

    #[test]
    fn large_frames_split_with_marker_on_the_last_packet() {
        let mut p = RtpPacketizer::new(StreamCodec::Video(VideoCodec::Vp8), 7, 96, 65_534, 1000);
        let packets = p.packetize(&frame(3000, 0, true)).expect("packetize");
        assert_eq!(packets.len(), 3);
        assert!(packets.iter().all(|pk| pk.payload.len() <= RTP_PAYLOAD_MTU));
        assert_eq!(
            packets
                .iter()
                .map(|pk| pk.header.sequence_number)
                .collect::<Vec<_>>(),
            vec![65_534, 65_535, 0]
        );
        assert_eq!(
            packets
                .iter()
                .map(|pk| pk.header.marker)
                .collect::<Vec<_>>(),
            vec![false, false, true]
        );
        assert!(
            packets
                .iter()
                .all(|pk| pk.header.ssrc == 7 && pk.header.payload_type == 96)
        );
        assert!(vp8_payload_is_keyframe_start(&packets[0].payload));
        assert!(!vp8_payload_is_keyframe_start(&packets[1].payload));
    }

    #[test]
    fn timestamps_follow_the_pts_not_the_frame_count() {
        let mut p =
            RtpPacketizer::new(StreamCodec::Video(VideoCodec::Vp8), 1, 96, 0, u32::MAX - 10);
        let a = p.packetize(&frame(10, 1000, true)).expect("a");
        // A frame lost in between: 100 ms later, not 33.
        let b = p.packetize(&frame(10, 1100, false)).expect("b");
        let delta = b[0].header.timestamp.wrapping_sub(a[0].header.timestamp);
        assert_eq!(delta, 9000);
        assert!(!vp8_payload_is_keyframe_start(&b[0].payload));
    }

    #[test]
    fn opus_is_one_packet_per_frame_at_48khz() {
        let mut p = RtpPacketizer::new(StreamCodec::Opus, 2, 111, 10, 0);
        let mk = |ms| EncodedFrame {
            data: Bytes::from_static(&[1, 2, 3]),
            pts: Some(Duration::from_millis(ms)),
            duration: Some(Duration::from_millis(20)),
            keyframe: true,
        };
        let a = p.packetize(&mk(0)).expect("a");
        let b = p.packetize(&mk(20)).expect("b");
        assert_eq!(a.len(), 1);
        assert_eq!(b[0].header.timestamp - a[0].header.timestamp, 960);
        assert!(!a[0].header.marker);
    }

    #[test]
    fn missing_pts_continues_from_the_last_duration() {
        let mut p = RtpPacketizer::new(StreamCodec::Opus, 2, 111, 0, 0);
        let mut f = EncodedFrame {
            data: Bytes::from_static(&[1]),
            pts: Some(Duration::from_millis(40)),
            duration: Some(Duration::from_millis(20)),
            keyframe: true,
        };
        let a = p.packetize(&f).expect("a");
        f.pts = None;
        let b = p.packetize(&f).expect("b");
        assert_eq!(b[0].header.timestamp - a[0].header.timestamp, 960);
    }

    #[test]
    fn empty_and_malformed_inputs_do_not_panic() {
        let mut p = RtpPacketizer::new(StreamCodec::Video(VideoCodec::H264), 1, 102, 0, 0);
        let empty = EncodedFrame {
            data: Bytes::new(),
            pts: None,
            duration: None,
            keyframe: false,
        };
        assert!(p.packetize(&empty).expect("empty").is_empty());
        let junk = EncodedFrame {
            data: Bytes::from_static(&[0xff; 5]),
            ..empty
        };
        let _ = p.packetize(&junk);
        for bytes in [
            &[][..],
            &[0x90][..],
            &[0x90, 0x80][..],
            &[0x90, 0x80, 0x81][..],
        ] {
            assert!(!vp8_payload_is_keyframe_start(&Bytes::copy_from_slice(
                bytes
            )));
        }
    }
}
