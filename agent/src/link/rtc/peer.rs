//! The kiosk's `PeerConnection`, set up for the relay's SFU.
//!
//! About 750 lines: webrtc-rs's set-up (media engine, interceptors, the congestion-control slot,
//! ICE and TURN) and its callbacks are one object's life; the estimator, codecs, keyframe
//! forwarding, statistics and state already live beside it.
//!
//! Built once per connection attempt: codecs and interceptors (NACK, RTCP reports, TWCC
//! feedback both ways, our loss-tolerant estimator with a pacer, the keyframe-request
//! forwarder), then the five transceivers in the fixed order of [`Slot::ORDER`]. The send
//! tracks are pre-packetized RTP tracks with fixed SSRCs, so the SFU can map them from the
//! offer. Everything webrtc-rs reports through callbacks is turned into channels: connection
//! state on a `watch`, keyframe requests and remote tracks on bounded `mpsc`s.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use protocol::media::{MediaKind, Slot};
use rtc::interceptor::Slot as ChainSlot;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::{
    CongestionFeedback, configure_congestion_control, configure_nack, configure_rtcp_reports,
};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinHandle;
use webrtc::media_stream::Track;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCBundlePolicy, RTCConfiguration, RTCConfigurationBuilder, RTCIceGatheringState, RTCIceServer,
    RTCIceTransportPolicy, RTCPeerConnectionState, RTCSessionDescription, Registry,
    SettingEngineBuilder, StatsSelector,
};
use webrtc::rtp_transceiver::RtpTransceiver;

use crate::media::VideoCodec;

use super::RtcError;
use super::codecs;
use super::config::{PeerConfig, TurnServer};
use super::estimator::LossTolerantEstimator;
use super::keyframe::{KEYFRAME_FORWARDER_SLOT, KeyframeRequestForwarder};
use super::pacer::{PriorityPacer, SendCounters};
use super::state::ConnectionState;
use super::stats::{self, PeerStats};

/// The relay (or a browser behind it) asked for a keyframe on one of our video slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyframeRequest {
    pub slot: Slot,
}

/// A track the relay sends us (the clerk's video or audio).
pub struct RemoteTrack {
    pub slot: Slot,
    track: Arc<dyn TrackRemote>,
    ssrc: Option<u32>,
    sent_plis: Arc<AtomicU64>,
}

impl RemoteTrack {
    /// The next RTP packet; `None` when the track has ended.
    pub async fn next_rtp(&mut self) -> Option<rtp::Packet> {
        loop {
            match self.track.poll().await? {
                TrackRemoteEvent::OnRtpPacket(packet) => {
                    self.ssrc.get_or_insert(packet.header.ssrc);
                    return Some(packet);
                }
                TrackRemoteEvent::OnOpen(init) => {
                    self.ssrc = Some(init.ssrc);
                }
                TrackRemoteEvent::OnEnded | TrackRemoteEvent::OnError => return None,
                _ => {}
            }
        }
    }

    /// The negotiated codec of this track, once its first packet has arrived.
    pub async fn video_codec(&self) -> Option<VideoCodec> {
        let ssrc = self.ssrc?;
        let codec = self.track.codec(ssrc).await?;
        VideoCodec::from_mime(&codec.mime_type)
    }

    /// Sends a PLI for this track (the decoder needs a keyframe).
    pub async fn request_keyframe(&self) -> Result<(), RtcError> {
        let Some(media_ssrc) = self.ssrc else {
            return Ok(());
        };
        self.sent_plis.fetch_add(1, Ordering::Relaxed);
        self.track
            .write_rtcp(vec![Box::new(PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc,
            })])
            .await
            .map_err(RtcError::webrtc("sending a PLI"))
    }

    /// A cheap handle that can send PLIs from another task.
    pub fn keyframe_requester(&self) -> RemoteTrackRequester {
        RemoteTrackRequester {
            track: Arc::clone(&self.track),
            sent_plis: Arc::clone(&self.sent_plis),
        }
    }

    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }
}

/// Sends PLIs for a remote track; see [`RemoteTrack::keyframe_requester`].
#[derive(Clone)]
pub struct RemoteTrackRequester {
    track: Arc<dyn TrackRemote>,
    sent_plis: Arc<AtomicU64>,
}

impl RemoteTrackRequester {
    pub async fn request_keyframe(&self, media_ssrc: u32) -> Result<(), RtcError> {
        self.sent_plis.fetch_add(1, Ordering::Relaxed);
        self.track
            .write_rtcp(vec![Box::new(PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc,
            })])
            .await
            .map_err(RtcError::webrtc("sending a PLI"))
    }
}

struct SendSlot {
    slot: Slot,
    ssrc: u32,
    track: Arc<TrackLocalStaticRTP>,
    transceiver: Arc<dyn RtpTransceiver>,
    stream_id: String,
    track_id: String,
}

struct RecvSlot {
    slot: Slot,
    transceiver: Arc<dyn RtpTransceiver>,
}

struct Handler {
    state: watch::Sender<ConnectionState>,
    gathering: watch::Sender<RTCIceGatheringState>,
    tracks: mpsc::Sender<Arc<dyn TrackRemote>>,
    tracks_dropped: AtomicU64,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!(%state, "media connection state");
        self.state.send_replace(state.into());
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        self.gathering.send_replace(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        // Never await here: this runs on webrtc-rs's driver task.
        if self.tracks.try_send(track).is_err() {
            self.tracks_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The kiosk's peer connection to the relay.
pub struct KioskPeer {
    pc: Arc<dyn PeerConnection>,
    senders: Vec<SendSlot>,
    receivers: Vec<RecvSlot>,
    state: watch::Receiver<ConnectionState>,
    gathering: watch::Receiver<RTCIceGatheringState>,
    handler: Arc<Handler>,
    incoming_tracks: Mutex<mpsc::Receiver<Arc<dyn TrackRemote>>>,
    keyframe_requests: Mutex<Option<mpsc::Receiver<KeyframeRequest>>>,
    keyframe_requests_received: Arc<AtomicU64>,
    plis_sent: Arc<AtomicU64>,
    send_counters: Arc<SendCounters>,
    config: Mutex<PeerConfig>,
    tasks: Vec<JoinHandle<()>>,
}

fn rtc_configuration(config: &PeerConfig) -> RTCConfiguration {
    let mut servers: Vec<RTCIceServer> = config
        .stun_servers
        .iter()
        .map(|s| RTCIceServer {
            urls: s.urls.clone(),
            ..Default::default()
        })
        .collect();
    if let Some(turn) = &config.turn {
        servers.push(turn_server(turn));
    }
    RTCConfigurationBuilder::new()
        .with_ice_servers(servers)
        .with_ice_transport_policy(if config.relay_only {
            RTCIceTransportPolicy::Relay
        } else {
            RTCIceTransportPolicy::All
        })
        // One transport for all five m-lines: the SFU listens on one UDP port.
        .with_bundle_policy(RTCBundlePolicy::MaxBundle)
        .build()
}

fn turn_server(turn: &TurnServer) -> RTCIceServer {
    RTCIceServer {
        urls: turn.urls.clone(),
        username: turn.username.clone(),
        credential: turn.credential.clone(),
    }
}

impl KioskPeer {
    /// Builds the connection and its five transceivers; binds the local UDP sockets.
    pub async fn new(config: PeerConfig) -> Result<KioskPeer, RtcError> {
        config.validate()?;

        let mut media_engine = MediaEngine::default();
        codecs::register_codecs(&mut media_engine)?;
        let registry = configure_nack(Registry::new(), &mut media_engine);
        let registry = configure_rtcp_reports(registry);
        let limits = config.bitrate;
        // Our estimator in webrtc-rs's congestion-control slot, in place of its GCC, whose
        // loss half reads random loss and lost feedback as congestion (see `estimator`).
        let registry = configure_congestion_control(
            registry,
            LossTolerantEstimator::new(&limits),
            CongestionFeedback::Twcc,
            &mut media_engine,
        )
        .map_err(|e| RtcError::WebRtc {
            during: "configuring congestion control",
            message: e.to_string(),
        })?;
        // Our pacer in place of webrtc-rs's, which releases one FIFO at exactly the estimate
        // (see `pacer`): releases at 2.5 × the estimate, audio and repairs first, bounded.
        let send_counters = Arc::new(SendCounters::default());
        let registry = registry
            .with(
                ChainSlot::Pacer,
                PriorityPacer::new(f64::from(limits.start_bps), Arc::clone(&send_counters)),
            )
            .with(
                ChainSlot::from(KEYFRAME_FORWARDER_SLOT),
                KeyframeRequestForwarder::counting(Arc::clone(&send_counters)),
            );

        let setting_engine = SettingEngineBuilder::new()
            .with_include_loopback_candidate(config.include_loopback)
            .build();

        let (state_tx, state_rx) = watch::channel(ConnectionState::New);
        let (gathering_tx, gathering_rx) = watch::channel(RTCIceGatheringState::New);
        let (tracks_tx, tracks_rx) = mpsc::channel(8);
        let handler = Arc::new(Handler {
            state: state_tx,
            gathering: gathering_tx,
            tracks: tracks_tx,
            tracks_dropped: AtomicU64::new(0),
        });

        let pc = PeerConnectionBuilder::new()
            .with_configuration(rtc_configuration(&config))
            .with_media_engine(media_engine)
            .with_setting_engine(setting_engine)
            .with_interceptor_registry(registry)
            .with_handler(Arc::clone(&handler) as Arc<dyn PeerConnectionEventHandler>)
            .with_udp_addrs(config.bind_addresses.clone())
            .build()
            .await
            .map_err(RtcError::webrtc("creating the peer connection"))?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);

        let (keyframe_tx, keyframe_rx) = mpsc::channel(16);
        let keyframe_requests_received = Arc::new(AtomicU64::new(0));
        let stream_id = format!("kiosk-{:08x}", rand::random::<u32>());
        let mut senders = Vec::new();
        let mut receivers = Vec::new();
        let mut tasks = Vec::new();
        for slot in Slot::ORDER {
            let kind = match slot.kind() {
                MediaKind::Video => RtpCodecKind::Video,
                MediaKind::Audio => RtpCodecKind::Audio,
            };
            if slot.from_kiosk() {
                let (codec, preferences) = match slot.kind() {
                    MediaKind::Video => (
                        codecs::video_codec(config.preferred_video_codec),
                        Some(codecs::video_preferences(config.preferred_video_codec)),
                    ),
                    MediaKind::Audio => (codecs::opus_codec(), None),
                };
                let ssrc = rand::random::<u32>();
                let track_id = format!("{stream_id}-{}", slot_name(slot));
                let track = Arc::new(send_track(&stream_id, &track_id, slot, ssrc, codec));
                let transceiver = pc
                    .add_transceiver_from_track(
                        Arc::clone(&track) as Arc<dyn TrackLocal>,
                        Some(RTCRtpTransceiverInit {
                            direction: RTCRtpTransceiverDirection::Sendonly,
                            ..Default::default()
                        }),
                    )
                    .await
                    .map_err(RtcError::webrtc("adding a send transceiver"))?;
                if let Some(preferences) = preferences {
                    // The track's own codec alone would make the offer VP8-only; the
                    // alternative is offered too, in preference order.
                    transceiver
                        .set_codec_preferences(preferences)
                        .await
                        .map_err(RtcError::webrtc("setting codec preferences"))?;
                }
                if slot.kind() == MediaKind::Video {
                    tasks.push(tokio::spawn(watch_keyframe_requests(
                        slot,
                        Arc::clone(&track),
                        keyframe_tx.clone(),
                        Arc::clone(&keyframe_requests_received),
                    )));
                }
                senders.push(SendSlot {
                    slot,
                    ssrc,
                    track,
                    transceiver,
                    stream_id: stream_id.clone(),
                    track_id,
                });
            } else {
                let transceiver = pc
                    .add_transceiver_from_kind(
                        kind,
                        Some(RTCRtpTransceiverInit {
                            direction: RTCRtpTransceiverDirection::Recvonly,
                            ..Default::default()
                        }),
                    )
                    .await
                    .map_err(RtcError::webrtc("adding a receive transceiver"))?;
                receivers.push(RecvSlot { slot, transceiver });
            }
        }

        Ok(KioskPeer {
            pc,
            senders,
            receivers,
            state: state_rx,
            gathering: gathering_rx,
            handler,
            incoming_tracks: Mutex::new(tracks_rx),
            keyframe_requests: Mutex::new(Some(keyframe_rx)),
            keyframe_requests_received,
            plis_sent: Arc::new(AtomicU64::new(0)),
            send_counters,
            config: Mutex::new(config),
            tasks,
        })
    }

    /// Creates the offer, applies it locally and waits (bounded) for candidate gathering, so
    /// the returned SDP carries every local candidate.
    pub async fn create_offer(&self) -> Result<String, RtcError> {
        let mut gathering = self.gathering.clone();
        gathering.borrow_and_update();
        let offer = self
            .pc
            .create_offer(None)
            .await
            .map_err(RtcError::webrtc("creating the offer"))?;
        self.pc
            .set_local_description(offer)
            .await
            .map_err(RtcError::webrtc("applying the offer locally"))?;
        let timeout = self.config.lock().await.gather_timeout;
        let complete = tokio::time::timeout(timeout, async {
            loop {
                if *gathering.borrow_and_update() == RTCIceGatheringState::Complete {
                    return true;
                }
                if gathering.changed().await.is_err() {
                    return false;
                }
            }
        })
        .await
        .unwrap_or(false);
        let local = self
            .pc
            .local_description()
            .await
            .ok_or(RtcError::Timeout("waiting for the local description"))?;
        if !complete && !local.sdp.contains("a=candidate:") {
            return Err(RtcError::Timeout("gathering ICE candidates"));
        }
        Ok(local.sdp)
    }

    /// Applies the relay's answer. Returns the video codec the answer chose for the camera.
    pub async fn apply_answer(&self, sdp: &str) -> Result<VideoCodec, RtcError> {
        let answer = RTCSessionDescription::answer(sdp.to_owned())
            .map_err(|e| RtcError::InvalidAnswer(e.to_string()))?;
        self.follow_answer_codecs(sdp).await?;
        self.pc
            .set_remote_description(answer)
            .await
            .map_err(|e| RtcError::InvalidAnswer(e.to_string()))?;
        self.send_video_codec(Slot::KioskCamera).await
    }

    /// When the first answer picks the alternative codec for a video slot, the slot's track
    /// is redeclared (same SSRC and ids) with that codec before the answer is applied.
    /// webrtc-rs binds a stream to NACK and transport-wide CC when the answer is applied, by
    /// matching the track's declared codec against the negotiated ones; declaring the codec
    /// actually sent keeps that match exact. (With 0.21.1 an H.264-only answer was observed
    /// to bind the stream even without this; the loopback test checks the binding either
    /// way.)
    async fn follow_answer_codecs(&self, sdp: &str) -> Result<(), RtcError> {
        if self.pc.current_remote_description().await.is_some() {
            // Renegotiation (ICE restart): streams are bound already and codecs stay.
            return Ok(());
        }
        let chosen = first_codec_by_mid(sdp);
        for sender in self
            .senders
            .iter()
            .filter(|s| s.slot.kind() == MediaKind::Video)
        {
            let Ok(Some(mid)) = sender.transceiver.mid().await else {
                continue;
            };
            let Some(&codec) = chosen.get(&mid) else {
                continue;
            };
            let declared = sender.track.codec(sender.ssrc).await;
            if declared.is_some_and(|c| VideoCodec::from_mime(&c.mime_type) == Some(codec)) {
                continue;
            }
            let replacement = Arc::new(send_track(
                &sender.stream_id,
                &sender.track_id,
                sender.slot,
                sender.ssrc,
                codecs::video_codec(codec),
            ));
            let rtp_sender = sender
                .transceiver
                .sender()
                .await
                .map_err(RtcError::webrtc("reading the sender"))?
                .ok_or(RtcError::Closed)?;
            rtp_sender
                .replace_track(replacement as Arc<dyn TrackLocal>)
                .await
                .map_err(RtcError::webrtc("declaring the answer's codec"))?;
        }
        Ok(())
    }

    /// The video codec negotiated for a send slot: the first the answer lists.
    pub async fn send_video_codec(&self, slot: Slot) -> Result<VideoCodec, RtcError> {
        let sender = self.send_slot(slot)?;
        let rtp_sender = sender
            .transceiver
            .sender()
            .await
            .map_err(RtcError::webrtc("reading the sender"))?
            .ok_or(RtcError::Closed)?;
        let parameters = rtp_sender
            .get_parameters()
            .await
            .map_err(RtcError::webrtc("reading send parameters"))?;
        parameters
            .rtp_parameters
            .codecs
            .iter()
            .find_map(|c| VideoCodec::from_mime(&c.rtp_codec.mime_type))
            .ok_or_else(|| RtcError::NoCommonCodec {
                slot,
                detail: format!(
                    "answer offers {:?}",
                    parameters
                        .rtp_parameters
                        .codecs
                        .iter()
                        .map(|c| c.rtp_codec.mime_type.clone())
                        .collect::<Vec<_>>()
                ),
            })
    }

    /// Asks for an ICE restart and returns the new offer for the relay.
    pub async fn restart_ice(&self) -> Result<String, RtcError> {
        self.pc
            .restart_ice()
            .await
            .map_err(RtcError::webrtc("restarting ICE"))?;
        self.create_offer().await
    }

    /// Replaces the TURN server used from the next gathering on (an ICE restart or a new
    /// connection). webrtc-rs cannot drop its last ICE server on a live connection, so
    /// removing TURN entirely takes effect at the next full reconnect.
    pub async fn set_turn(&self, turn: Option<TurnServer>) -> Result<(), RtcError> {
        if let Some(turn) = &turn {
            turn.validate()?;
        }
        let mut config = self.config.lock().await;
        config.turn = turn;
        if config.relay_only && config.turn.is_none() {
            config.relay_only = false;
        }
        self.pc
            .set_configuration(rtc_configuration(&config))
            .await
            .map_err(RtcError::webrtc("updating ICE servers"))
    }

    pub async fn config(&self) -> PeerConfig {
        self.config.lock().await.clone()
    }

    /// Writes one RTP packet on a send slot. Awaits only webrtc-rs's bounded queue.
    pub async fn write_rtp(&self, slot: Slot, packet: rtp::Packet) -> Result<(), RtcError> {
        let sender = self.send_slot(slot)?;
        sender
            .track
            .write_rtp(packet)
            .await
            .map_err(RtcError::webrtc("writing RTP"))
    }

    /// The SSRC of a send slot.
    pub fn ssrc(&self, slot: Slot) -> Result<u32, RtcError> {
        Ok(self.send_slot(slot)?.ssrc)
    }

    fn send_slot(&self, slot: Slot) -> Result<&SendSlot, RtcError> {
        self.senders
            .iter()
            .find(|s| s.slot == slot)
            .ok_or_else(|| RtcError::Config(format!("{slot:?} is not a kiosk send slot")))
    }

    /// Keyframe requests (PLI/FIR) from the relay. Taken once.
    pub async fn keyframe_requests(&self) -> Option<mpsc::Receiver<KeyframeRequest>> {
        self.keyframe_requests.lock().await.take()
    }

    /// The next track the relay starts sending, mapped to its slot.
    pub async fn next_remote_track(&self) -> Option<RemoteTrack> {
        let track = self.incoming_tracks.lock().await.recv().await?;
        let mut slot = None;
        for recv in &self.receivers {
            if let Ok(Some(receiver)) = recv.transceiver.receiver().await
                && Arc::ptr_eq(receiver.track(), &track)
            {
                slot = Some(recv.slot);
            }
        }
        let slot = match slot {
            Some(slot) => slot,
            // There is one receive slot per kind, so the kind decides if the lookup missed.
            None => match track.kind().await {
                RtpCodecKind::Audio => Slot::ClerkMicrophone,
                _ => Slot::ClerkCamera,
            },
        };
        Some(RemoteTrack {
            slot,
            track,
            ssrc: None,
            sent_plis: Arc::clone(&self.plis_sent),
        })
    }

    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
    }

    pub async fn stats(&self) -> PeerStats {
        let report = self.pc.get_stats(Instant::now(), StatsSelector::None).await;
        let outbound: HashMap<u32, Slot> = self.senders.iter().map(|s| (s.ssrc, s.slot)).collect();
        let mut stats = stats::summarise(
            &report,
            *self.state.borrow(),
            &outbound,
            |kind| match kind {
                "audio" => Some(Slot::ClerkMicrophone),
                "video" => Some(Slot::ClerkCamera),
                _ => None,
            },
        );
        stats.keyframe_requests_received = self.keyframe_requests_received.load(Ordering::Relaxed);
        stats.keyframe_requests_sent = self.plis_sent.load(Ordering::Relaxed);
        stats.send = stats::SendSummary::read(&self.send_counters);
        stats
    }

    /// The current congestion-control estimate, if feedback has produced one.
    pub async fn target_bitrate(&self) -> Option<f64> {
        let report = self.pc.get_stats(Instant::now(), StatsSelector::None).await;
        stats::summarise(&report, *self.state.borrow(), &HashMap::new(), |_| None)
            .target_bitrate_bps
    }

    /// Remote tracks refused because nobody was taking them (counted, never blocking).
    pub fn remote_tracks_dropped(&self) -> u64 {
        self.handler.tracks_dropped.load(Ordering::Relaxed)
    }

    pub async fn close(&self) -> Result<(), RtcError> {
        for task in &self.tasks {
            task.abort();
        }
        self.pc
            .close()
            .await
            .map_err(RtcError::webrtc("closing the peer connection"))
    }
}

impl Drop for KioskPeer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn send_track(
    stream_id: &str,
    track_id: &str,
    slot: Slot,
    ssrc: u32,
    codec: rtc::rtp_transceiver::rtp_sender::RTCRtpCodec,
) -> TrackLocalStaticRTP {
    let kind = match slot.kind() {
        MediaKind::Video => RtpCodecKind::Video,
        MediaKind::Audio => RtpCodecKind::Audio,
    };
    TrackLocalStaticRTP::new(MediaStreamTrack::new(
        stream_id.to_owned(),
        track_id.to_owned(),
        slot_name(slot).to_owned(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    ))
}

/// For each m-section of an SDP, keyed by its `a=mid`, the video codec of the first payload
/// type on its `m=` line (the one the answerer prefers). Sections whose first format is not
/// a video codec this kiosk knows are left out. Never fails: unparseable lines are skipped.
pub(crate) fn first_codec_by_mid(sdp: &str) -> HashMap<String, VideoCodec> {
    struct Section {
        mid: Option<String>,
        first_pt: Option<String>,
        rtpmap: HashMap<String, String>,
    }
    let mut sections: Vec<Section> = Vec::new();
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            sections.push(Section {
                mid: None,
                first_pt: m.split_whitespace().nth(3).map(str::to_owned),
                rtpmap: HashMap::new(),
            });
        } else if let Some(section) = sections.last_mut() {
            if let Some(mid) = line.strip_prefix("a=mid:") {
                section.mid = Some(mid.trim().to_owned());
            } else if let Some(map) = line.strip_prefix("a=rtpmap:")
                && let Some((pt, encoding)) = map.split_once(' ')
            {
                let name = encoding.split('/').next().unwrap_or_default();
                section.rtpmap.insert(pt.to_owned(), name.to_owned());
            }
        }
    }
    sections
        .into_iter()
        .filter_map(|s| {
            let name = s.rtpmap.get(s.first_pt.as_ref()?)?;
            Some((s.mid?, VideoCodec::from_mime(name)?))
        })
        .collect()
}

pub(crate) fn slot_name(slot: Slot) -> &'static str {
    match slot {
        Slot::KioskCamera => "camera",
        Slot::KioskDocument => "document",
        Slot::KioskMicrophone => "microphone",
        Slot::ClerkCamera => "clerk-camera",
        Slot::ClerkMicrophone => "clerk-microphone",
    }
}

async fn watch_keyframe_requests(
    slot: Slot,
    track: Arc<TrackLocalStaticRTP>,
    tx: mpsc::Sender<KeyframeRequest>,
    received: Arc<AtomicU64>,
) {
    while let Some(event) = track.poll().await {
        if let TrackLocalEvent::OnRtcpPacket(packets) = event {
            let asks = packets
                .iter()
                .filter(|p| {
                    let any = p.as_any();
                    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
                })
                .count();
            if asks > 0 {
                received.fetch_add(asks as u64, Ordering::Relaxed);
                // Full: a request is already queued, and one keyframe answers both.
                let _ = tx.try_send(KeyframeRequest { slot });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_codec_by_mid_reads_each_sections_preferred_format() {
        let sdp = "v=0\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 102 96\r\n\
                   a=mid:0\r\n\
                   a=rtpmap:96 VP8/90000\r\n\
                   a=rtpmap:102 H264/90000\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
                   a=mid:1\r\n\
                   a=rtpmap:96 VP8/90000\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
                   a=mid:2\r\n\
                   a=rtpmap:111 opus/48000/2\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF\r\n\
                   a=mid:3\r\n";
        let chosen = first_codec_by_mid(sdp);
        assert_eq!(chosen.get("0"), Some(&VideoCodec::H264));
        assert_eq!(chosen.get("1"), Some(&VideoCodec::Vp8));
        assert_eq!(chosen.get("2"), None);
        assert_eq!(chosen.get("3"), None);
        assert!(first_codec_by_mid("garbage\nm=\na=mid:\na=rtpmap:x").is_empty());
    }
}
