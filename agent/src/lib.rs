//! The kiosk agent that runs on each extension-point (延伸点) device.
//!
//! It owns the kiosk's hardware (camera, microphone, speaker, document camera, ID card reader,
//! QR scanner), dials out to the centre's relay over a TLS WebSocket, takes tickets for the
//! resident and carries out device commands that the clerk sends through the relay.

pub mod devices;
pub mod link;
pub mod media;
