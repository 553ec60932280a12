//! `[media]` in the agent configuration, and how it becomes a [`MediaLinkConfig`].
//!
//! Sources follow the kiosk profile: `simulated` (by default the same as
//! `devices.simulated`) gives the test sources, whose camera stamps its capture time into
//! every frame; otherwise the V4L2 cameras and ALSA/Pulse audio named here (or in `[devices]`,
//! or pinned in the kiosk profile), with the camera's capture format taken from its device
//! profile. Everything after the source element is the same code either way.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use device_profiles::{Catalog, PixelFormat};
use protocol::device::DeviceKind;
use serde::{Deserialize, Serialize};

use super::core::CoreConfig;
use crate::devices::config::DevicesConfig;
use crate::link::rtc::{MediaLinkConfig, PeerConfig};
use crate::media::{AudioOutput, AudioSource, MediaSources, V4l2Format, VideoCodec, VideoSource};

/// `[media]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Live audio and video with the relay. Off: the kiosk only queues (no camera, no call).
    pub enabled: bool,
    /// Test sources (moving pattern with a capture-time stamp, a tone) and no speaker.
    /// Defaults to `devices.simulated`.
    pub simulated: Option<bool>,
    /// V4L2 node of the face camera; defaults to `devices.camera`, a pinned path in the kiosk
    /// profile, or `/dev/video0`.
    pub camera: Option<PathBuf>,
    /// V4L2 node of the document camera's live preview; defaults to
    /// `devices.document_camera`, a pinned path in the kiosk profile, or `/dev/video2`.
    pub document_camera: Option<PathBuf>,
    /// `alsa:<pcm>` (e.g. `alsa:plughw:CARD=USB,DEV=0`), `pulse` or `pulse:<source>`.
    pub microphone: String,
    /// `alsa:<pcm>`, `pulse`, `pulse:<sink>`, `auto` or `null` (discard).
    pub speaker: String,
    /// `vp8` or `h264`: offered first; the relay may choose the other.
    pub video_codec: String,
    /// Local UDP address for media; port 0 picks one.
    pub udp_bind: SocketAddr,
    /// Offer loopback candidates (a relay on the same host: tests and demos).
    pub loopback_candidates: bool,
    /// Send media only through the relay's TURN server (a site whose UDP is blocked except
    /// towards TURN). Needs TURN in the relay's configuration.
    pub relay_only: bool,
    /// Forward the clerk's video (and the camera for the self-view) to the kiosk page.
    pub screen_video: bool,
    pub answer_timeout_secs: u64,
    pub connect_timeout_secs: u64,
    /// Longest pause between reconnection attempts.
    pub max_backoff_secs: u64,
}

impl Default for MediaConfig {
    fn default() -> MediaConfig {
        MediaConfig {
            enabled: true,
            simulated: None,
            camera: None,
            document_camera: None,
            microphone: "alsa:default".into(),
            speaker: "alsa:default".into(),
            video_codec: "vp8".into(),
            udp_bind: SocketAddr::from(([0, 0, 0, 0], 0)),
            loopback_candidates: false,
            relay_only: false,
            screen_video: true,
            answer_timeout_secs: 10,
            connect_timeout_secs: 10,
            max_backoff_secs: 10,
        }
    }
}

impl MediaConfig {
    pub fn validate(&self) -> Result<(), String> {
        parse_codec(&self.video_codec)?;
        parse_microphone(&self.microphone)?;
        parse_speaker(&self.speaker)?;
        for (key, value) in [
            ("media.answer_timeout_secs", self.answer_timeout_secs),
            ("media.connect_timeout_secs", self.connect_timeout_secs),
            ("media.max_backoff_secs", self.max_backoff_secs),
        ] {
            if value == 0 || value > 600 {
                return Err(format!("{key} must be between 1 and 600"));
            }
        }
        Ok(())
    }

    pub fn is_simulated(&self, devices: &DevicesConfig) -> bool {
        self.simulated.unwrap_or(devices.simulated)
    }

    pub fn core(&self) -> CoreConfig {
        CoreConfig {
            answer_timeout: Duration::from_secs(self.answer_timeout_secs),
            connect_timeout: Duration::from_secs(self.connect_timeout_secs),
            max_backoff: Duration::from_secs(self.max_backoff_secs),
            ..CoreConfig::default()
        }
    }

    /// The sources, from this section, `[devices]` and the kiosk profile.
    pub fn sources(&self, devices: &DevicesConfig) -> Result<MediaSources, String> {
        if self.is_simulated(devices) {
            return Ok(MediaSources::simulated());
        }
        let catalog = match &devices.profiles_dir {
            Some(dir) => Catalog::load_dir(dir),
            None => Catalog::embedded(),
        }
        .map_err(|e| format!("device profiles: {e}"))?;
        let kiosk = catalog.kiosk(devices.kiosk_profile());
        let slot = |kind: DeviceKind| kiosk.and_then(|k| k.slots.iter().find(|s| s.kind == kind));
        let format = |kind: DeviceKind| {
            slot(kind)
                .and_then(|s| catalog.device(&s.profile))
                .and_then(|p| p.video.as_ref())
                .and_then(|v| v.formats.first())
                .map(|f| match f {
                    PixelFormat::Mjpeg => V4l2Format::Mjpeg,
                    PixelFormat::Yuyv | PixelFormat::Nv12 | PixelFormat::I420 => V4l2Format::Raw,
                })
                .unwrap_or(V4l2Format::Raw)
        };
        // A pinned path without wildcards names the device itself.
        let pinned = |kind: DeviceKind| {
            slot(kind)
                .and_then(|s| s.path.clone())
                .filter(|p| !p.contains(['*', '?']))
                .map(PathBuf::from)
        };
        let camera = self
            .camera
            .clone()
            .or_else(|| devices.camera.clone().map(PathBuf::from))
            .or_else(|| pinned(DeviceKind::Camera))
            .unwrap_or_else(|| PathBuf::from("/dev/video0"));
        let document = self
            .document_camera
            .clone()
            .or_else(|| devices.document_camera.clone().map(PathBuf::from))
            .or_else(|| pinned(DeviceKind::DocumentCamera))
            .unwrap_or_else(|| PathBuf::from("/dev/video2"));
        Ok(MediaSources {
            camera: VideoSource::V4l2 {
                device: camera,
                format: format(DeviceKind::Camera),
            },
            document_camera: VideoSource::V4l2 {
                device: document,
                format: format(DeviceKind::DocumentCamera),
            },
            microphone: parse_microphone(&self.microphone)?,
            speaker: parse_speaker(&self.speaker)?,
        })
    }

    /// The media link's configuration: nothing sending until the relay says so.
    pub fn link(&self, devices: &DevicesConfig) -> Result<MediaLinkConfig, String> {
        let peer = PeerConfig {
            bind_addresses: vec![self.udp_bind],
            include_loopback: self.loopback_candidates,
            relay_only: self.relay_only,
            preferred_video_codec: parse_codec(&self.video_codec)?,
            ..PeerConfig::default()
        };
        let mut link = MediaLinkConfig::new(self.sources(devices)?, peer);
        link.camera_sending = false;
        link.document_sending = false;
        link.microphone_sending = false;
        link.screen_taps = self.screen_video;
        // The page decodes the clerk's video; the agent would only duplicate the work.
        link.decode_clerk_video = !self.screen_video;
        Ok(link)
    }
}

fn parse_codec(text: &str) -> Result<VideoCodec, String> {
    match text.to_ascii_lowercase().as_str() {
        "vp8" => Ok(VideoCodec::Vp8),
        "h264" => Ok(VideoCodec::H264),
        other => Err(format!(
            "media.video_codec {other:?}: expected \"vp8\" or \"h264\""
        )),
    }
}

fn parse_microphone(text: &str) -> Result<AudioSource, String> {
    match text.split_once(':') {
        Some(("alsa", device)) if !device.is_empty() => Ok(AudioSource::Alsa {
            device: device.to_owned(),
        }),
        Some(("pulse", device)) if !device.is_empty() => Ok(AudioSource::Pulse {
            device: Some(device.to_owned()),
        }),
        None if text == "pulse" => Ok(AudioSource::Pulse { device: None }),
        _ => Err(format!(
            "media.microphone {text:?}: expected \"alsa:<pcm>\", \"pulse\" or \"pulse:<source>\""
        )),
    }
}

fn parse_speaker(text: &str) -> Result<AudioOutput, String> {
    match text.split_once(':') {
        Some(("alsa", device)) if !device.is_empty() => Ok(AudioOutput::Alsa {
            device: device.to_owned(),
        }),
        Some(("pulse", device)) if !device.is_empty() => Ok(AudioOutput::Pulse {
            device: Some(device.to_owned()),
        }),
        None if text == "pulse" => Ok(AudioOutput::Pulse { device: None }),
        None if text == "auto" => Ok(AudioOutput::Auto),
        None if text == "null" => Ok(AudioOutput::Null),
        _ => Err(format!(
            "media.speaker {text:?}: expected \"alsa:<pcm>\", \"pulse\", \"pulse:<sink>\", \"auto\" or \"null\""
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_follows_the_devices_unless_set() {
        let mut devices = DevicesConfig::default();
        let media = MediaConfig::default();
        assert!(!media.is_simulated(&devices));
        devices.simulated = true;
        assert!(media.is_simulated(&devices));
        assert_eq!(
            media.sources(&devices).expect("sources"),
            MediaSources::simulated()
        );
        let media = MediaConfig {
            simulated: Some(false),
            ..MediaConfig::default()
        };
        assert!(!media.is_simulated(&devices));
    }

    #[test]
    fn real_sources_come_from_the_config_and_the_profile() {
        let devices = DevicesConfig {
            camera: Some("/dev/v4l/by-id/face".into()),
            ..DevicesConfig::default()
        };
        let media = MediaConfig {
            microphone: "alsa:plughw:CARD=USB,DEV=0".into(),
            speaker: "pulse".into(),
            ..MediaConfig::default()
        };
        let sources = media.sources(&devices).expect("sources");
        // The generic UVC camera profile prefers MJPEG.
        assert_eq!(
            sources.camera,
            VideoSource::V4l2 {
                device: "/dev/v4l/by-id/face".into(),
                format: V4l2Format::Mjpeg
            }
        );
        assert_eq!(
            sources.microphone,
            AudioSource::Alsa {
                device: "plughw:CARD=USB,DEV=0".into()
            }
        );
        assert_eq!(sources.speaker, AudioOutput::Pulse { device: None });
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in [
            MediaConfig {
                video_codec: "av1".into(),
                ..MediaConfig::default()
            },
            MediaConfig {
                microphone: "oss".into(),
                ..MediaConfig::default()
            },
            MediaConfig {
                speaker: "alsa:".into(),
                ..MediaConfig::default()
            },
            MediaConfig {
                answer_timeout_secs: 0,
                ..MediaConfig::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert!(MediaConfig::default().validate().is_ok());
    }

    #[test]
    fn the_link_starts_silent_and_hands_video_to_the_screen() {
        let devices = DevicesConfig {
            simulated: true,
            ..DevicesConfig::default()
        };
        let link = MediaConfig::default().link(&devices).expect("link");
        assert!(!link.camera_sending && !link.document_sending && !link.microphone_sending);
        assert!(link.screen_taps);
        assert!(!link.decode_clerk_video);
    }
}
