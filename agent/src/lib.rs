//! The kiosk agent that runs on each extension-point (延伸点) device.
//!
//! It owns the kiosk's hardware (camera, microphone, speaker, document camera, ID card reader,
//! QR scanner), dials out to the centre's relay over a TLS WebSocket, takes tickets for the
//! resident and carries out device commands that the clerk sends through the relay.

pub mod clock;
pub mod config;
pub mod devices;
pub mod kiosk;
pub mod link;
pub mod local_api;
pub mod media;
pub mod media_session;
pub mod run;
pub mod selftest;

/// Makes aws-lc-rs the process-wide TLS crypto provider. Some dependencies enable rustls' ring
/// backend as well, and with two backends compiled in rustls cannot pick one by itself. Call it
/// first thing in `main` (and in tests that open TLS connections); calling it again is harmless.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
