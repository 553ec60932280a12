//! The agent's end of the loopback WebRTC connection to the kiosk page.
//!
//! The page offers two receive-only video transceivers; this side answers with two
//! pre-packetized send tracks (the clerk, the self-view) on 127.0.0.1, ICE-lite (the browser
//! checks, the agent only answers, so the browser's mDNS-obscured candidates never need
//! resolving). VP8 and H.264 are both offered back, so whatever the relay leg carries can be
//! forwarded as it is. NACKs are answered from the sent-packet buffer and RTCP reports go out;
//! there is no congestion control (loopback has no congestion to control). PLI/FIR from the
//! page come out as [`ScreenTrack`] keyframe requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_nack, configure_rtcp_reports,
};
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription, Registry,
    SettingEngineBuilder,
};
use webrtc::rtp_transceiver::RtpTransceiver;

use super::ScreenError;
use crate::link::rtc::keyframe::{
    KEYFRAME_FORWARDER_SLOT, KeyframeRequestForwarder, is_keyframe_request,
};
use crate::link::rtc::{ConnectionState, codecs};
use crate::media::VideoCodec;

/// The two pictures on the kiosk screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScreenTrack {
    /// The clerk, large.
    Clerk,
    /// The kiosk's own camera, small.
    SelfView,
}

struct Handler {
    state: watch::Sender<ConnectionState>,
    gathering: watch::Sender<RTCIceGatheringState>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.state.send_replace(state.into());
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        self.gathering.send_replace(state);
    }
}

/// One send track and what the page negotiated for it.
struct Outgoing {
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    mid: Option<String>,
    vp8: Option<u8>,
    h264: Option<u8>,
}

impl Outgoing {
    fn payload_type(&self, codec: VideoCodec) -> Option<u8> {
        match codec {
            VideoCodec::Vp8 => self.vp8,
            VideoCodec::H264 => self.h264,
        }
    }
}

/// The answer for the page: SDP, and which of its transceivers (by mid) shows what.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScreenAnswer {
    pub sdp: String,
    pub clerk_mid: Option<String>,
    pub self_mid: Option<String>,
}

/// See the module docs.
pub struct ScreenPeer {
    pc: Arc<dyn PeerConnection>,
    clerk: Outgoing,
    own: Outgoing,
    state: watch::Receiver<ConnectionState>,
    tasks: Vec<JoinHandle<()>>,
    pub(super) write_failures: AtomicU64,
}

impl ScreenPeer {
    /// Answers the page's offer. Keyframe requests from the page go to `keyframes`.
    pub async fn answer(
        offer: &str,
        gather_timeout: Duration,
        keyframes: mpsc::Sender<ScreenTrack>,
    ) -> Result<(ScreenPeer, ScreenAnswer), ScreenError> {
        let offer = RTCSessionDescription::offer(offer.to_owned())
            .map_err(|e| ScreenError::BadOffer(e.to_string()))?;
        let webrtc = |during: &'static str| {
            move |e: webrtc::error::Error| ScreenError::WebRtc {
                during,
                message: e.to_string(),
            }
        };
        let mut media_engine = MediaEngine::default();
        codecs::register_codecs(&mut media_engine).map_err(|e| ScreenError::WebRtc {
            during: "registering codecs",
            message: e.to_string(),
        })?;
        let registry = configure_nack(Registry::new(), &mut media_engine);
        let registry = configure_rtcp_reports(registry).with(
            rtc::interceptor::Slot::from(KEYFRAME_FORWARDER_SLOT),
            KeyframeRequestForwarder::new(),
        );
        let settings = SettingEngineBuilder::new()
            .with_include_loopback_candidate(true)
            .with_lite(true)
            .build();
        let (state_tx, state) = watch::channel(ConnectionState::New);
        let (gathering_tx, mut gathering) = watch::channel(RTCIceGatheringState::New);
        let pc = PeerConnectionBuilder::new()
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .with_handler(Arc::new(Handler {
                state: state_tx,
                gathering: gathering_tx,
            }))
            .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
            .build()
            .await
            .map_err(webrtc("creating the screen connection"))?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);

        // Added before the offer is applied, so they take the offer's recvonly m-lines in order.
        let mut sent = Vec::new();
        for name in ["clerk", "self"] {
            let ssrc = rand::random::<u32>();
            let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
                format!("screen-{name}"),
                format!("screen-{name}-video"),
                name.to_owned(),
                RtpCodecKind::Video,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec: codecs::video_codec(VideoCodec::Vp8),
                    ..Default::default()
                }],
            )));
            let transceiver = pc
                .add_transceiver_from_track(
                    Arc::clone(&track) as Arc<dyn TrackLocal>,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Sendonly,
                        ..Default::default()
                    }),
                )
                .await
                .map_err(webrtc("adding a screen track"))?;
            sent.push((track, ssrc, transceiver));
        }

        pc.set_remote_description(offer)
            .await
            .map_err(|e| ScreenError::BadOffer(e.to_string()))?;
        let answer = pc
            .create_answer(None)
            .await
            .map_err(webrtc("creating the screen answer"))?;
        gathering.borrow_and_update();
        pc.set_local_description(answer)
            .await
            .map_err(webrtc("applying the screen answer"))?;
        // Host candidates on loopback only: gathering is immediate, but bounded all the same.
        let _ = tokio::time::timeout(
            gather_timeout,
            gathering.wait_for(|s| *s == RTCIceGatheringState::Complete),
        )
        .await;
        let sdp = pc
            .local_description()
            .await
            .ok_or(ScreenError::Timeout("the screen answer"))?
            .sdp;

        let mut outgoing = Vec::new();
        let mut tasks = Vec::new();
        for ((track, ssrc, transceiver), which) in sent
            .into_iter()
            .zip([ScreenTrack::Clerk, ScreenTrack::SelfView])
        {
            let (mid, vp8, h264) = negotiated(&transceiver).await;
            tasks.push(tokio::spawn(watch_keyframe_requests(
                which,
                Arc::clone(&track),
                keyframes.clone(),
            )));
            outgoing.push(Outgoing {
                track,
                ssrc,
                mid,
                vp8,
                h264,
            });
        }
        let own = outgoing
            .pop()
            .ok_or(ScreenError::BadOffer("no tracks".into()))?;
        let clerk = outgoing
            .pop()
            .ok_or(ScreenError::BadOffer("no tracks".into()))?;
        if clerk.mid.is_none() && own.mid.is_none() {
            let _ = pc.close().await;
            return Err(ScreenError::BadOffer(
                "the offer has no video m-line to receive on".into(),
            ));
        }
        let answer = ScreenAnswer {
            sdp,
            clerk_mid: clerk.mid.clone(),
            self_mid: own.mid.clone(),
        };
        Ok((
            ScreenPeer {
                pc,
                clerk,
                own,
                state,
                tasks,
                write_failures: AtomicU64::new(0),
            },
            answer,
        ))
    }

    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
    }

    pub fn is_connected(&self) -> bool {
        *self.state.borrow() == ConnectionState::Connected
    }

    /// The SSRC packets for `which` must carry.
    pub fn ssrc(&self, which: ScreenTrack) -> u32 {
        self.outgoing(which).ssrc
    }

    /// The page's payload type for `codec` on `which`; `None` if it did not accept that codec.
    pub fn payload_type(&self, which: ScreenTrack, codec: VideoCodec) -> Option<u8> {
        self.outgoing(which).payload_type(codec)
    }

    /// Sends one packet (already carrying this track's SSRC and payload type). Bounded: a
    /// send that cannot be queued within `limit` is dropped and counted.
    pub async fn write(&self, which: ScreenTrack, packet: rtp::Packet, limit: Duration) -> bool {
        let outgoing = self.outgoing(which);
        if outgoing.mid.is_none() {
            return false;
        }
        match tokio::time::timeout(limit, outgoing.track.write_rtp(packet)).await {
            Ok(Ok(())) => true,
            _ => {
                self.write_failures.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    pub async fn close(&self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Err(err) = self.pc.close().await {
            tracing::debug!(%err, "closing the screen connection");
        }
    }

    fn outgoing(&self, which: ScreenTrack) -> &Outgoing {
        match which {
            ScreenTrack::Clerk => &self.clerk,
            ScreenTrack::SelfView => &self.own,
        }
    }
}

impl Drop for ScreenPeer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The transceiver's mid and its payload types for VP8 and H.264 (packetization mode 1).
async fn negotiated(
    transceiver: &Arc<dyn RtpTransceiver>,
) -> (Option<String>, Option<u8>, Option<u8>) {
    let mid = transceiver.mid().await.ok().flatten();
    let Ok(Some(sender)) = transceiver.sender().await else {
        return (mid, None, None);
    };
    let Ok(parameters) = sender.get_parameters().await else {
        return (mid, None, None);
    };
    let mut vp8 = None;
    let mut h264 = None;
    for codec in &parameters.rtp_parameters.codecs {
        match VideoCodec::from_mime(&codec.rtp_codec.mime_type) {
            Some(VideoCodec::Vp8) => {
                vp8.get_or_insert(codec.payload_type);
            }
            Some(VideoCodec::H264)
                if codec
                    .rtp_codec
                    .sdp_fmtp_line
                    .contains("packetization-mode=1") =>
            {
                h264.get_or_insert(codec.payload_type);
            }
            _ => {}
        }
    }
    (mid, vp8, h264)
}

async fn watch_keyframe_requests(
    which: ScreenTrack,
    track: Arc<TrackLocalStaticRTP>,
    keyframes: mpsc::Sender<ScreenTrack>,
) {
    while let Some(event) = track.poll().await {
        if let TrackLocalEvent::OnRtcpPacket(packets) = event
            && packets.iter().any(is_keyframe_request)
        {
            // Full: a request is already queued, and one keyframe answers both.
            let _ = keyframes.try_send(which);
        }
    }
}
