//! The kiosk's WebRTC media connection to the relay's SFU (webrtc-rs 0.21.1).
//!
//! What it does:
//! - [`KioskPeer`]: one `PeerConnection` that offers the five transceivers of
//!   [`protocol::media::Slot::ORDER`] in that order (camera, document, microphone sendonly;
//!   clerk video, clerk audio recvonly) with VP8 + H.264 and Opus, NACK, send-side congestion
//!   control (transport-wide CC feedback into our loss-tolerant estimator, `estimator`,
//!   with a pacer), keyframe requests surfaced from received PLI/FIR, an optional TURN
//!   server, ICE restart.
//! - [`RtpPacketizer`]: encoded frames → RTP packets, timestamps from the capture clock.
//! - [`MediaLink`]: the composition the control link drives — the pipelines of
//!   [`crate::media`], a `KioskPeer`, and the tasks between them: encoded frames into the send
//!   tracks, received RTP into the playback and screen pipelines, PLI/FIR into forced
//!   keyframes, decoder keyframe needs into PLIs, the congestion-control estimate into the
//!   encoders' bitrates ([`allocate_bitrate`]). Full reconnect replaces the peer while the
//!   pipelines keep running.
//!
//! What it deliberately does not do: signalling. The control connection (a sibling module)
//! carries the offer to the relay and the answer back, and decides when to send, restart or
//! reconnect; nothing here opens a WebSocket or knows about tickets. There is no trickle ICE:
//! the offer carries all candidates (the relay is ICE-lite and answers with its one host
//! candidate). No transcoding, no simulcast, no data channels.
//!
//! How it is driven: `MediaLink::start(config)` → `offer()` → (relay) → `apply_answer(sdp)`;
//! then `set_sending`, `force_keyframe`, `set_turn` + `restart_ice`, `reconnect`, `stats`,
//! and `close`. State changes arrive on a `watch` channel. webrtc-rs runs its own driver task
//! per connection on the ambient tokio runtime.

mod bitrate;
pub mod codecs;
mod config;
mod estimator;
pub mod keyframe;
mod media_link;
pub mod pacer;
mod packetizer;
mod peer;
mod state;
mod stats;

pub use bitrate::{BitrateAllocation, BitrateLimits, allocate_bitrate};
pub use config::{IceServer, PeerConfig, TurnServer};
pub use estimator::{DelaySignal, LossTolerantEstimator};
pub use media_link::{CameraFrame, ClerkMedia, ClerkVideoPacket, MediaLink, MediaLinkConfig};
pub use packetizer::{RtpPacketizer, StreamCodec, vp8_payload_is_keyframe_start};
pub use peer::{KeyframeRequest, KioskPeer, RemoteTrack, RemoteTrackRequester};
pub use state::ConnectionState;
pub use stats::{InboundStats, LinkStats, OutboundStats, PeerStats};

use crate::media::MediaError;

/// Errors of the WebRTC peer and the media link.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RtcError {
    #[error("webrtc failed while {during}: {message}")]
    WebRtc {
        during: &'static str,
        message: String,
    },
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error("the relay's answer is unusable: {0}")]
    InvalidAnswer(String),
    #[error("no codec in common for {slot:?}: {detail}")]
    NoCommonCodec {
        slot: protocol::media::Slot,
        detail: String,
    },
    #[error("timed out while {0}")]
    Timeout(&'static str),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("the peer connection is closed")]
    Closed,
}

impl RtcError {
    pub(crate) fn webrtc(during: &'static str) -> impl FnOnce(webrtc::error::Error) -> RtcError {
        move |err| RtcError::WebRtc {
            during,
            message: err.to_string(),
        }
    }
}
