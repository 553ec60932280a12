//! A kiosk's or a console's SDP offer (`media_offer` on the control socket), read as the SFU
//! reads it: its own pass over the media sections' layout, then str0m's parser. Neither may
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signaling::sfu::fuzz_entry::offer_layout;
use str0m::change::SdpOffer;

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = std::str::from_utf8(data) else {
        return;
    };
    if offer_layout(sdp) {
        let _ = SdpOffer::from_sdp_string(sdp);
    }
});
