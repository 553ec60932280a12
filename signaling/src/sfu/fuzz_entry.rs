//! Entry points for the fuzz targets in `signaling/fuzz` (feature `fuzzing`, off in every
//! normal build): the SFU's own readers of what peers send — the offer's media-section layout
//! and the first bytes of each RTP payload. str0m parses the rest.

use super::MediaCodec;

/// The offer's media sections mapped to slots, as `negotiate` does before str0m sees it.
/// `true` when the layout was accepted.
pub fn offer_layout(sdp: &str) -> bool {
    super::slots::slot_mids_from_offer(sdp).is_ok()
}

/// Whether the payload starts a keyframe (what holds a new video track back).
pub fn starts_keyframe(codec: MediaCodec, payload: &[u8]) -> bool {
    super::keyframe::starts_keyframe(codec, payload)
}

/// The VP8 picture-id patch of one forwarded payload, as the forwarding path builds it
/// (str0m applies it when writing). `true` when a patch was built.
pub fn vp8_rewrite(
    state: &mut super::rewrite::Vp8Rewriter,
    payload: &[u8],
    new_segment: bool,
) -> bool {
    super::core::vp8_patch(state, payload, new_segment).is_some()
}
