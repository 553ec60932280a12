//! The kiosk's live-call media: GStreamer pipelines that capture, encode, decode and play.
//!
//! What it does:
//! - [`VideoSendPipeline`]: a camera (or the document camera's low-resolution preview, which is
//!   simply a second instance with its own source and size) → raw I420 at a fixed size and rate →
//!   VP8 with realtime settings, or H.264 (`openh264enc`) when that is what was negotiated →
//!   encoded frames with timestamps on a bounded channel. Keyframes on request, target bitrate
//!   settable while running.
//! - [`AudioSendPipeline`]: microphone → `webrtcdsp` (echo cancellation against the far-end
//!   reference, noise suppression) → Opus in 20 ms frames with in-band FEC → encoded frames.
//! - [`RtpAudioPlayback`]: the clerk's audio as RTP → jitter buffer → Opus decode →
//!   `webrtcechoprobe` (the far-end reference the microphone's echo canceller needs) → speaker.
//! - [`RtpVideoReceiver`]: the clerk's video as RTP → jitter buffer → depacketize → decode →
//!   raw I420 frames on a bounded channel, for the kiosk screen (how they reach its local web
//!   page is decided elsewhere).
//! - [`ladder`]: which resolution the camera is encoded at for a given bitrate (720p → 540p →
//!   360p → 180p, with hysteresis), a pure decision the WebRTC link applies.
//! - [`timecode`]: the simulated camera stamps its capture time into every frame as a binary
//!   pattern that survives compression, and a reader recovers it from decoded frames, so that
//!   glass-to-glass latency can be measured end to end.
//!
//! What it deliberately does not do: no networking, no RTP packetization on the send side (the
//! WebRTC peer in `link::rtc` packetizes), no device discovery or quirks (the caller hands plain
//! source values in [`MediaSources`]; the device-profiles crate resolves them), no display.
//!
//! How it is driven: build a pipeline from its config, `start()` it, then read its frame
//! channel from async code. Control calls (`force_keyframe`, `set_bitrate`, `push_rtp`) are
//! cheap, thread-safe and never block on the pipeline. Every queue between GStreamer threads
//! and the caller is bounded: video frames are dropped oldest-first and counted; the send side
//! asks its encoder for a keyframe after a drop so the receiver can recover. Pipeline errors
//! (a vanished camera, a missing plugin) surface as [`MediaError`] through `health()`, never
//! as a panic.

mod audio_recv;
mod audio_send;
mod config;
// The self-test builds its capture pipelines from the same sources.
pub(crate) mod elements;
mod frames;
pub mod ladder;
mod pipeline;
mod rtp_input;
pub mod timecode;
mod video_recv;
mod video_send;

pub use audio_recv::{AudioPlaybackStats, MAX_SPEAKER_GAIN, RtpAudioPlayback};
pub use audio_send::{AudioSendConfig, AudioSendPipeline, AudioSendStats};
pub use config::{
    AudioOutput, AudioSource, MediaSources, TestWave, V4l2Format, VideoCodec, VideoSource,
};
pub use frames::{
    DecodedFrame, EncodedFrame, FrameReceiver, FrameSender, PushOutcome, frame_channel,
};
pub use pipeline::PipelineHealth;
pub use video_recv::{RtpVideoReceiver, VideoReceiveStats};
pub use video_send::{VideoEncoderControl, VideoSendConfig, VideoSendPipeline, VideoSendStats};

/// Errors from building or running a media pipeline.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MediaError {
    #[error("GStreamer could not be initialised: {0}")]
    Init(String),
    #[error("GStreamer element `{factory}` is not installed (a plugin package is missing)")]
    MissingElement { factory: &'static str },
    #[error("pipeline `{pipeline}` could not be built: {reason}")]
    Build {
        pipeline: &'static str,
        reason: String,
    },
    #[error("pipeline `{pipeline}` could not change state: {reason}")]
    State {
        pipeline: &'static str,
        reason: String,
    },
    #[error("pipeline `{pipeline}` failed in `{element}`: {message}")]
    Runtime {
        pipeline: &'static str,
        element: String,
        message: String,
    },
    #[error("element `{element}` property `{property}`: {reason}")]
    Property {
        element: String,
        property: String,
        reason: String,
    },
    #[error("rejected input: {0}")]
    InvalidInput(String),
    #[error("pipeline is not running: {0}")]
    NotRunning(String),
    #[error("invalid media configuration: {0}")]
    Config(String),
}

/// Initialises GStreamer once per process; later calls are cheap.
///
/// Every pipeline constructor calls this, so callers only need it to fail early (for example
/// in a self-test that reports missing plugins).
pub fn init() -> Result<(), MediaError> {
    gstreamer::init().map_err(|e| MediaError::Init(e.to_string()))
}

/// The GStreamer elements the agent's media needs, by factory name, for a self-test.
pub const REQUIRED_ELEMENTS: &[&str] = &[
    "videotestsrc",
    "audiotestsrc",
    "videoconvert",
    "videoscale",
    "audioconvert",
    "audioresample",
    "capsfilter",
    "queue",
    "vp8enc",
    "vp8dec",
    "openh264enc",
    "openh264dec",
    "h264parse",
    "opusenc",
    "opusdec",
    "webrtcdsp",
    "webrtcechoprobe",
    "volume",
    "rtpjitterbuffer",
    "rtpvp8depay",
    "rtph264depay",
    "rtpopusdepay",
    "appsrc",
    "appsink",
    "fakesink",
];

/// Factory names from [`REQUIRED_ELEMENTS`] that this machine lacks.
pub fn missing_elements() -> Result<Vec<&'static str>, MediaError> {
    init()?;
    Ok(REQUIRED_ELEMENTS
        .iter()
        .copied()
        .filter(|name| gstreamer::ElementFactory::find(name).is_none())
        .collect())
}
