//! Plain source, sink and codec values. The device-profiles crate resolves a kiosk model into
//! these; the simulated profile uses the test sources. Everything after the source element is
//! the same code for both.

use std::path::PathBuf;

/// A video capture source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoSource {
    /// A V4L2 camera: `v4l2src device=/dev/videoN`.
    V4l2 { device: PathBuf, format: V4l2Format },
    /// `videotestsrc is-live=true`. Frames carry the capture-time stamp from
    /// [`timecode`](super::timecode), so a receiver can measure glass-to-glass latency.
    Test,
}

/// What a V4L2 camera is asked to deliver. Many UVC cameras give 720p30 only as MJPEG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V4l2Format {
    Raw,
    Mjpeg,
}

impl VideoSource {
    pub fn is_test(&self) -> bool {
        matches!(self, VideoSource::Test)
    }
}

/// An audio capture source.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioSource {
    /// `alsasrc device=…` (for example `hw:1,0` or `plughw:CARD=USB,DEV=0`).
    Alsa { device: String },
    /// `pulsesrc`, optionally with a named source.
    Pulse { device: Option<String> },
    /// `audiotestsrc is-live=true`.
    Test { wave: TestWave, frequency_hz: f64 },
}

/// The `audiotestsrc` waveforms the simulated profile uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestWave {
    Sine,
    Ticks,
    Silence,
    PinkNoise,
}

impl TestWave {
    pub(crate) fn nick(self) -> &'static str {
        match self {
            TestWave::Sine => "sine",
            TestWave::Ticks => "ticks",
            TestWave::Silence => "silence",
            TestWave::PinkNoise => "pink-noise",
        }
    }
}

/// Where the clerk's audio is played.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioOutput {
    Alsa {
        device: String,
    },
    Pulse {
        device: Option<String>,
    },
    /// `autoaudiosink`.
    Auto,
    /// Discards audio at real-time pace: tests and machines without a sound card.
    Null,
}

/// The video codecs the kiosk can send and receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    Vp8,
    H264,
}

impl VideoCodec {
    /// The RTP encoding name, as in `a=rtpmap` and GStreamer's `application/x-rtp` caps.
    pub fn encoding_name(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "VP8",
            VideoCodec::H264 => "H264",
        }
    }

    /// Recognises an SDP/WebRTC mime type such as `video/VP8` (case-insensitive).
    pub fn from_mime(mime: &str) -> Option<VideoCodec> {
        let name = mime.rsplit('/').next().unwrap_or(mime);
        if name.eq_ignore_ascii_case("vp8") {
            Some(VideoCodec::Vp8)
        } else if name.eq_ignore_ascii_case("h264") {
            Some(VideoCodec::H264)
        } else {
            None
        }
    }
}

/// The kiosk's media sources and its speaker, as plain values.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaSources {
    pub camera: VideoSource,
    pub document_camera: VideoSource,
    pub microphone: AudioSource,
    pub speaker: AudioOutput,
}

impl MediaSources {
    /// The simulated profile: test sources everywhere and a null speaker, so the whole media
    /// path runs headless.
    pub fn simulated() -> MediaSources {
        MediaSources {
            camera: VideoSource::Test,
            document_camera: VideoSource::Test,
            microphone: AudioSource::Test {
                wave: TestWave::Sine,
                frequency_hz: 440.0,
            },
            speaker: AudioOutput::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_from_mime_is_case_insensitive() {
        assert_eq!(VideoCodec::from_mime("video/VP8"), Some(VideoCodec::Vp8));
        assert_eq!(VideoCodec::from_mime("video/h264"), Some(VideoCodec::H264));
        assert_eq!(VideoCodec::from_mime("H264"), Some(VideoCodec::H264));
        assert_eq!(VideoCodec::from_mime("video/AV1"), None);
    }
}
