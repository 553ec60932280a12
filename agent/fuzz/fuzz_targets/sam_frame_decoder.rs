//! Arbitrary bytes from the serial line, pushed in arbitrary chunks: the SAM frame decoder must
//! never panic, must keep its buffer bounded, and every frame it yields must re-encode to a
//! frame that decodes to the same body.
#![no_main]

use agent::devices::idcard::frame::{FrameDecoder, MAX_LEN, Reply, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else { return };
    let chunk = usize::from(split).max(1);
    let mut decoder = FrameDecoder::new();
    for piece in bytes.chunks(chunk) {
        decoder.push(piece);
        while let Some(frame) = decoder.next_frame() {
            if let Ok(body) = frame {
                assert!(body.len() < MAX_LEN);
                let mut again = FrameDecoder::new();
                again.push(&encode(&body));
                assert_eq!(again.next_frame(), Some(Ok(body.clone())));
                let _ = Reply::from_body(body);
            }
        }
    }
});
