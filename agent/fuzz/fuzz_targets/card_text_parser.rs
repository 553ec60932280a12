//! Arbitrary 256-byte text blocks: the card-text parser must never panic, and whatever it
//! accepts must encode back to a block that parses to the same card.
#![no_main]

use agent::devices::idcard::text::{TEXT_LEN, encode, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut block = [0x20u8; TEXT_LEN];
    let n = data.len().min(TEXT_LEN);
    block[..n].copy_from_slice(&data[..n]);
    let _ = parse(data);
    if let Ok(card) = parse(&block) {
        let again = encode(&card).expect("a parsed card fits its layout");
        assert_eq!(parse(&again), Ok(card));
    }
});
