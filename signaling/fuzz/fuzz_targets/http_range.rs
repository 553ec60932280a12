//! The `Range` header of a recording's playback (`GET /api/v1/recordings/{id}/media`), against
//! a body length taken from the input. Never a panic, and a range it grants lies inside the
//! body, start before end — the reader decrypts exactly those bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signaling::http::recordings::parse_range;

fuzz_target!(|data: &[u8]| {
    let Some((len, header)) = data.split_first_chunk::<8>() else {
        return;
    };
    let len = u64::from_be_bytes(*len);
    // Only headers the HTTP layer passes on (visible ASCII), as the handler reads them.
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    if let Ok(Some((start, end))) = parse_range(Some(header), len) {
        assert!(start <= end, "{header:?} of {len}: {start}-{end}");
        assert!(end < len, "{header:?} of {len}: {start}-{end}");
    }
    if let Ok(Some((start, end))) = parse_range(Some(header), len % 4096) {
        assert!(start <= end && end < len % 4096);
    }
});
