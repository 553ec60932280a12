//! Does an RTP payload start a keyframe? A newly connected video track is held until one
//! arrives, so the viewer's first frame is decodable and the recording starts cleanly.

use str0m::rtp::Vp8Descriptor;

use super::MediaCodec;

/// True for the first packet of a keyframe (VP8), or a packet carrying an SPS or the start of an
/// IDR slice (H.264). Audio is always a valid start.
pub(crate) fn starts_keyframe(codec: MediaCodec, payload: &[u8]) -> bool {
    match codec {
        MediaCodec::Opus => true,
        MediaCodec::Vp8 => Vp8Descriptor::parse(payload)
            .map(|d| d.starts_keyframe(payload))
            .unwrap_or(false),
        MediaCodec::H264 => h264_starts_keyframe(payload),
    }
}

const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_STAP_A: u8 = 24;
const NAL_FU_A: u8 = 28;

fn h264_starts_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    match first & 0x1f {
        NAL_SPS | NAL_IDR => true,
        NAL_STAP_A => {
            let mut rest = &payload[1..];
            while rest.len() >= 2 {
                let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                let Some(nal) = rest.get(2..2 + len) else {
                    return false;
                };
                if matches!(nal.first().map(|b| b & 0x1f), Some(NAL_SPS | NAL_IDR)) {
                    return true;
                }
                rest = &rest[2 + len..];
            }
            false
        }
        NAL_FU_A => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && fu & 0x1f == NAL_IDR),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframe_and_delta() {
        // X=1, S=1, PID=0; I=1 (15-bit picture id); then VP8 header with P=0 (key).
        let key = [0x90, 0x80, 0x81, 0x02, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        assert!(starts_keyframe(MediaCodec::Vp8, &key));
        let mut delta = key;
        delta[4] = 0x11; // P=1
        assert!(!starts_keyframe(MediaCodec::Vp8, &delta));
        // Continuation packet (S=0).
        let mut cont = key;
        cont[0] = 0x80;
        assert!(!starts_keyframe(MediaCodec::Vp8, &cont));
        assert!(!starts_keyframe(MediaCodec::Vp8, &[]));
        assert!(!starts_keyframe(MediaCodec::Vp8, &[0x90]));
    }

    #[test]
    fn h264_variants() {
        assert!(starts_keyframe(MediaCodec::H264, &[0x67, 0x42, 0x00]));
        assert!(starts_keyframe(MediaCodec::H264, &[0x65, 0x88]));
        assert!(!starts_keyframe(MediaCodec::H264, &[0x41, 0x9a]));
        // STAP-A with SPS and PPS.
        let stap = [0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce];
        assert!(starts_keyframe(MediaCodec::H264, &stap));
        // STAP-A with a truncated length is not trusted.
        assert!(!starts_keyframe(
            MediaCodec::H264,
            &[0x78, 0x00, 0x09, 0x67]
        ));
        // FU-A start of IDR, and a middle fragment.
        assert!(starts_keyframe(MediaCodec::H264, &[0x7c, 0x85, 0x00]));
        assert!(!starts_keyframe(MediaCodec::H264, &[0x7c, 0x05, 0x00]));
        assert!(!starts_keyframe(MediaCodec::H264, &[]));
        assert!(starts_keyframe(MediaCodec::Opus, &[]));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_payloads_never_panic(p in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            for codec in [MediaCodec::Vp8, MediaCodec::H264, MediaCodec::Opus] {
                let _ = starts_keyframe(codec, &p);
            }
        }
    }
}
