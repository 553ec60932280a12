//! Selective forwarding of media between kiosk and clerk peers.
//!
//! Every kiosk agent and every clerk console keeps one WebRTC peer connection to the relay,
//! opened ahead of any call ("ready on call"). Each client offers the five transceivers of
//! [`protocol::media::Slot::ORDER`]; the relay answers as an ICE-lite peer with one host
//! candidate, and all peers share one UDP socket.
//!
//! What this module does:
//! - demultiplexes datagrams to the peer ([`str0m::Rtc`]) that accepts them;
//! - forwards RTP packets between a connected kiosk/clerk pair without transcoding, using
//!   str0m's RTP mode: sequence numbers, RTP timestamps and VP8 picture ids are rewritten per
//!   outgoing track so that a clerk's track stays continuous across many kiosks
//!   ([`rewrite`]), and a video track only starts at a keyframe;
//! - relays keyframe requests from a viewer to the source, and requests one itself on connect;
//! - hands every forwarded packet of a recorded pair to a [`RecordSink`] (the recorder
//!   implements it) through [`Sfu::poll_recorded`].
//!
//! What it deliberately does not do: signalling (the session layer carries offers/answers
//! over its own WebSocket), TURN (coturn), bandwidth estimation or simulcast, transcoding.
//!
//! How it is driven: [`Sfu`] is a sans-IO core — `handle_datagram(now, …)`/`handle_timeout(now)`
//! in, `poll_transmit`/`poll_event`/`poll_recorded`/`poll_timeout` out, never reading the clock.
//! [`driver`] is the thin tokio task that owns the UDP socket and the core and takes commands
//! over a bounded channel.
//!
//! NACK/RTX: the relay's str0m receive stream NACKs packets lost between source and relay
//! (when the source negotiated RTX) and forwards the repaired packet when it arrives; the send
//! stream towards the viewer answers the viewer's NACKs from its own RTX cache. A viewer's NACK
//! for a packet the relay never received cannot be answered from that cache: it is covered by
//! the relay's own upstream NACK, whose repaired packet is forwarded under the same rewritten
//! sequence number.

mod core;
pub mod driver;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz_entry;
mod keyframe;
mod metrics;
mod peer;
pub mod rewrite;
mod routing;
mod slots;

pub use self::core::{RecordedRtp, Sfu, SfuConfig, SfuEvent, SfuTransmit};
pub use self::driver::{RecordSink, SfuDriverConfig, SfuHandle};
pub use self::error::SfuError;
pub use self::metrics::{MetricsSnapshot, SfuMetrics};
pub use self::peer::{DisconnectReason, PeerStats};
pub use self::routing::Pairing;
pub use self::slots::{MediaCodec, Role};

/// Identifies one peer connection. The session layer chooses the values (one per kiosk
/// connection, one per signed-in clerk console) and must not reuse one while it is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "peer-{}", self.0)
    }
}
