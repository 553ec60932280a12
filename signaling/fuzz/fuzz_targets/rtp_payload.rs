//! RTP payloads forwarded by the SFU, as its own code reads them: whether a packet starts a
//! keyframe (VP8, H.264, Opus) and the VP8 picture-id rewrite across segments. The first byte
//! picks the codec and where segments start; the rest is cut into packets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signaling::sfu::MediaCodec;
use signaling::sfu::fuzz_entry::{starts_keyframe, vp8_rewrite};
use signaling::sfu::rewrite::Vp8Rewriter;

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let codec = match control % 3 {
        0 => MediaCodec::Vp8,
        1 => MediaCodec::H264,
        _ => MediaCodec::Opus,
    };
    let packet_len = usize::from(control >> 2).max(1);
    let mut rewriter = Vp8Rewriter::default();
    for (i, payload) in rest.chunks(packet_len).enumerate() {
        let key = starts_keyframe(codec, payload);
        if codec == MediaCodec::Vp8 {
            let _ = vp8_rewrite(&mut rewriter, payload, key || i == 0);
        }
    }
});
