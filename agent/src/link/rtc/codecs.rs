//! The codecs the kiosk negotiates, with fixed payload types, and how they are registered.
//!
//! VP8 and H.264 (constrained baseline, packetization-mode 1 — what browsers and openh264
//! both do) for video, Opus for audio. No RTX: retransmissions answering NACKs go out on the
//! original SSRC, which every receiver accepts and which keeps the SFU's forwarding simple.

use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine,
};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};

use crate::media::VideoCodec;

use super::RtcError;

pub const VP8_PAYLOAD_TYPE: u8 = 96;
pub const H264_PAYLOAD_TYPE: u8 = 102;
pub const OPUS_PAYLOAD_TYPE: u8 = 111;

const H264_FMTP: &str = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
/// In-band FEC and DTX: both sides decode FEC from the next packet and tolerate the gaps DTX
/// leaves in silence (what browsers offer too).
const OPUS_FMTP: &str = "minptime=10;useinbandfec=1;usedtx=1";
const SDES_MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";

/// The RTP codec description of a video codec.
pub fn video_codec(codec: VideoCodec) -> RTCRtpCodec {
    let (mime_type, fmtp) = match codec {
        VideoCodec::Vp8 => (MIME_TYPE_VP8, ""),
        VideoCodec::H264 => (MIME_TYPE_H264, H264_FMTP),
    };
    RTCRtpCodec {
        mime_type: mime_type.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: fmtp.to_owned(),
        rtcp_feedback: vec![],
    }
}

pub fn video_payload_type(codec: VideoCodec) -> u8 {
    match codec {
        VideoCodec::Vp8 => VP8_PAYLOAD_TYPE,
        VideoCodec::H264 => H264_PAYLOAD_TYPE,
    }
}

pub fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: OPUS_FMTP.to_owned(),
        rtcp_feedback: vec![],
    }
}

/// The codec parameters in the order a transceiver should prefer them.
pub fn video_preferences(preferred: VideoCodec) -> Vec<RTCRtpCodecParameters> {
    let other = match preferred {
        VideoCodec::Vp8 => VideoCodec::H264,
        VideoCodec::H264 => VideoCodec::Vp8,
    };
    [preferred, other]
        .into_iter()
        .map(|codec| RTCRtpCodecParameters {
            rtp_codec: video_codec(codec),
            payload_type: video_payload_type(codec),
        })
        .collect()
}

/// Registers VP8, H.264 and Opus (and the keyframe-request feedback FIR, which `configure_nack`
/// does not add) on a media engine. Call the interceptor helpers after this, so their feedback
/// types attach to these codecs.
pub fn register_codecs(media_engine: &mut MediaEngine) -> Result<(), RtcError> {
    let err = |e: rtc::shared::error::Error| RtcError::WebRtc {
        during: "registering codecs",
        message: e.to_string(),
    };
    for codec in [VideoCodec::Vp8, VideoCodec::H264] {
        media_engine
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: video_codec(codec),
                    payload_type: video_payload_type(codec),
                },
                RtpCodecKind::Video,
            )
            .map_err(err)?;
    }
    media_engine
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus_codec(),
                payload_type: OPUS_PAYLOAD_TYPE,
            },
            RtpCodecKind::Audio,
        )
        .map_err(err)?;
    media_engine.register_feedback(
        RTCPFeedback {
            typ: "ccm".to_owned(),
            parameter: "fir".to_owned(),
        },
        RtpCodecKind::Video,
    );
    // The SFU maps packets to transceivers by MID when SSRCs are not yet known to it.
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        media_engine
            .register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: SDES_MID_URI.to_owned(),
                },
                kind,
                None,
            )
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferences_list_the_preferred_codec_first() {
        let prefs = video_preferences(VideoCodec::H264);
        assert_eq!(prefs[0].payload_type, H264_PAYLOAD_TYPE);
        assert_eq!(prefs[1].payload_type, VP8_PAYLOAD_TYPE);
        assert!(
            prefs[0]
                .rtp_codec
                .sdp_fmtp_line
                .contains("packetization-mode=1")
        );
    }

    #[test]
    fn codecs_register_without_error() {
        let mut engine = MediaEngine::default();
        register_codecs(&mut engine).expect("register");
    }
}
