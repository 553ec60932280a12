//! A text frame on `/ws/kiosk` or `/ws/clerk`, read as both handlers read it
//! (`http::ws::parse`). It must never panic; whatever parses must serialise and parse back to
//! the same message (nothing half-read), and an ID card in a kiosk's device completion must
//! render masked and unmasked (what the relay forwards to the console) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::card_view::{card_json, card_view};
use protocol::control::{ClerkToRelay, KioskToRelay};
use protocol::device::{CompletionBody, FromDevice};
use signaling::http::ws::parse;

fuzz_target!(|data: &[u8]| {
    // The WebSocket layer hands over text frames only, so valid UTF-8.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(message) = parse::<KioskToRelay>(text) {
        let again = serde_json::to_string(&message).expect("a parsed message serialises");
        assert_eq!(parse::<KioskToRelay>(&again).ok(), Some(message.clone()));
        if let KioskToRelay::Device {
            message: FromDevice::Completion(completion),
        } = &message
            && let CompletionBody::IdCardRead(Some(result)) = &completion.body
            && let Some(card) = &result.card
        {
            let _ = card_view(card, true);
            let _ = card_view(card, false);
            let _ = card_json(card, true);
        }
    }
    if let Ok(message) = parse::<ClerkToRelay>(text) {
        let again = serde_json::to_string(&message).expect("a parsed message serialises");
        assert_eq!(parse::<ClerkToRelay>(&again).ok(), Some(message));
    }
});
