//! The kiosk's media link against a minimal answerer on 127.0.0.1: a second webrtc-rs peer
//! that answers like the relay (recvonly for the kiosk's three streams, sendonly for the
//! clerk's two), decodes the kiosk's camera and reads its capture-time stamps, and sends a
//! stamped clerk video and a tone back. Ephemeral ports, bounded waits, no sleeps.

use std::sync::Arc;
use std::time::Duration;

use agent::link::rtc::{
    ConnectionState, MediaLink, MediaLinkConfig, PeerConfig, RtpPacketizer, StreamCodec, codecs,
    keyframe, vp8_payload_is_keyframe_start,
};
use agent::media::timecode;
use agent::media::{
    AudioSendConfig, AudioSendPipeline, AudioSource, DecodedFrame, FrameReceiver, MediaSources,
    RtpVideoReceiver, TestWave, VideoCodec, VideoSendConfig, VideoSendPipeline, VideoSource,
};
use bytes::Bytes;
use protocol::media::Slot;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_nack, configure_rtcp_reports, configure_twcc_receiver_only,
};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::shared::marshal::Marshal;
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCIceGatheringState, RTCSessionDescription, Registry, SettingEngineBuilder,
};

const WAIT: Duration = Duration::from_secs(30);

/// The two tests each run two encoders and two decoders in real time; on a two-core machine
/// they take turns.
static REALTIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct AnswererHandler {
    gathering: watch::Sender<RTCIceGatheringState>,
    tracks: mpsc::Sender<Arc<dyn TrackRemote>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for AnswererHandler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        self.gathering.send_replace(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.tracks.try_send(track);
    }
}

/// A stand-in for the relay's answer side, built from webrtc-rs's public API.
struct Answerer {
    pc: Arc<dyn PeerConnection>,
    gathering: watch::Receiver<RTCIceGatheringState>,
    tracks: mpsc::Receiver<Arc<dyn TrackRemote>>,
    clerk_video: (Arc<TrackLocalStaticRTP>, u32),
    clerk_audio: (Arc<TrackLocalStaticRTP>, u32),
}

fn send_track(
    kind: RtpCodecKind,
    name: &str,
    video: VideoCodec,
) -> (Arc<TrackLocalStaticRTP>, u32) {
    let ssrc = rand::random::<u32>();
    let codec = match kind {
        RtpCodecKind::Audio => codecs::opus_codec(),
        _ => codecs::video_codec(video),
    };
    let track = MediaStreamTrack::new(
        "clerk".to_owned(),
        format!("clerk-{name}"),
        name.to_owned(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    );
    (Arc::new(TrackLocalStaticRTP::new(track)), ssrc)
}

impl Answerer {
    async fn new() -> Answerer {
        Answerer::with_video_codec(None).await
    }

    /// `Some(codec)`: this side supports only that video codec, so the answer picks it.
    async fn with_video_codec(only: Option<VideoCodec>) -> Answerer {
        let mut media_engine = MediaEngine::default();
        match only {
            None => codecs::register_codecs(&mut media_engine).expect("codecs"),
            Some(codec) => {
                media_engine
                    .register_codec(
                        RTCRtpCodecParameters {
                            rtp_codec: codecs::video_codec(codec),
                            payload_type: codecs::video_payload_type(codec),
                        },
                        RtpCodecKind::Video,
                    )
                    .expect("video codec");
                media_engine
                    .register_codec(
                        RTCRtpCodecParameters {
                            rtp_codec: codecs::opus_codec(),
                            payload_type: codecs::OPUS_PAYLOAD_TYPE,
                        },
                        RtpCodecKind::Audio,
                    )
                    .expect("opus");
            }
        }
        let registry = configure_nack(Registry::new(), &mut media_engine);
        let registry = configure_rtcp_reports(registry);
        // Feedback for the kiosk's congestion controller, as the relay sends it.
        let registry =
            configure_twcc_receiver_only(registry, &mut media_engine).expect("twcc receiver");
        // The kiosk's PLIs for the clerk's video reach this side's encoder, as a browser's would.
        let registry = registry.with(
            rtc::interceptor::Slot::from(keyframe::KEYFRAME_FORWARDER_SLOT),
            keyframe::KeyframeRequestForwarder::new(),
        );
        let (gathering_tx, gathering) = watch::channel(RTCIceGatheringState::New);
        let (tracks_tx, tracks) = mpsc::channel(8);
        let pc = PeerConnectionBuilder::new()
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(
                SettingEngineBuilder::new()
                    .with_include_loopback_candidate(true)
                    .build(),
            )
            .with_handler(Arc::new(AnswererHandler {
                gathering: gathering_tx,
                tracks: tracks_tx,
            }))
            .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
            .build()
            .await
            .expect("answerer peer");
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        // Sendonly transceivers added before the offer arrives pair with the offer's
        // recvonly m-lines (mid 3 video, mid 4 audio).
        let video = only.unwrap_or(VideoCodec::Vp8);
        let clerk_video = send_track(RtpCodecKind::Video, "video", video);
        let clerk_audio = send_track(RtpCodecKind::Audio, "audio", video);
        for (track, _) in [&clerk_video, &clerk_audio] {
            pc.add_transceiver_from_track(
                Arc::clone(track) as Arc<dyn TrackLocal>,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    ..Default::default()
                }),
            )
            .await
            .expect("clerk transceiver");
        }
        Answerer {
            pc,
            gathering,
            tracks,
            clerk_video,
            clerk_audio,
        }
    }

    async fn answer(&mut self, offer: &str) -> String {
        let offer = RTCSessionDescription::offer(offer.to_owned()).expect("offer parses");
        self.pc
            .set_remote_description(offer)
            .await
            .expect("remote offer");
        let answer = self.pc.create_answer(None).await.expect("answer");
        self.gathering.borrow_and_update();
        self.pc
            .set_local_description(answer)
            .await
            .expect("local answer");
        timeout(
            WAIT,
            self.gathering
                .wait_for(|s| *s == RTCIceGatheringState::Complete),
        )
        .await
        .expect("answerer gathered")
        .expect("answerer alive");
        self.pc.local_description().await.expect("answer sdp").sdp
    }
}

fn kiosk_config() -> MediaLinkConfig {
    let mut config = MediaLinkConfig::new(MediaSources::simulated(), PeerConfig::loopback());
    // Small pictures keep two encoders and two decoders within a two-core budget.
    config.camera.width = 320;
    config.camera.height = 240;
    config.camera.bitrate_bps = 400_000;
    config.camera.keyframe_interval_frames = 3000;
    config.camera.min_keyframe_spacing = Duration::ZERO;
    config.document.width = 320;
    config.document.height = 240;
    config.document.fps = 5;
    config.document_sending = true;
    config
}

/// Sends the clerk's stamped video and a tone from the answerer.
fn spawn_clerk_media(answerer: &Answerer) -> Vec<tokio::task::JoinHandle<()>> {
    let mut camera = VideoSendPipeline::new(VideoSendConfig {
        label: "clerk-camera",
        width: 320,
        height: 240,
        fps: 15,
        bitrate_bps: 300_000,
        ..VideoSendConfig::camera(VideoSource::Test)
    })
    .expect("clerk camera");
    let mut video_frames = camera.take_frames().expect("frames");
    camera.start().expect("clerk camera start");
    let mut mic = AudioSendPipeline::new(AudioSendConfig::new(
        AudioSource::Test {
            wave: TestWave::Sine,
            frequency_hz: 660.0,
        },
        None,
    ))
    .expect("clerk mic");
    let mut audio_frames = mic.take_frames().expect("packets");
    mic.start().expect("clerk mic start");

    let (video_track, video_ssrc) = answerer.clerk_video.clone();
    let (audio_track, audio_ssrc) = answerer.clerk_audio.clone();
    let control = camera.control();
    let requests = Arc::clone(&video_track);
    vec![
        tokio::spawn(async move {
            while let Some(event) = requests.poll().await {
                if let TrackLocalEvent::OnRtcpPacket(_) = event {
                    control.force_keyframe();
                }
            }
        }),
        tokio::spawn(async move {
            let _camera = camera;
            let mut p = RtpPacketizer::new(
                StreamCodec::Video(VideoCodec::Vp8),
                video_ssrc,
                codecs::VP8_PAYLOAD_TYPE,
                0,
                0,
            );
            while let Some(frame) = video_frames.recv().await {
                for packet in p.packetize(&frame).expect("packetize") {
                    if video_track.write_rtp(packet).await.is_err() {
                        return;
                    }
                }
            }
        }),
        tokio::spawn(async move {
            let _mic = mic;
            let mut p = RtpPacketizer::new(
                StreamCodec::Opus,
                audio_ssrc,
                codecs::OPUS_PAYLOAD_TYPE,
                0,
                0,
            );
            while let Some(frame) = audio_frames.recv().await {
                for packet in p.packetize(&frame).expect("packetize") {
                    if audio_track.write_rtp(packet).await.is_err() {
                        return;
                    }
                }
            }
        }),
    ]
}

/// What the answerer saw of the kiosk's camera.
struct CameraReception {
    decoded: FrameReceiver<DecodedFrame>,
    /// Camera packets carrying the transport-wide sequence number: proof that webrtc-rs bound
    /// the stream to its congestion-control interceptors.
    transport_cc_packets: watch::Receiver<u64>,
    keyframes: watch::Receiver<u64>,
    ssrc: watch::Receiver<Option<u32>>,
    pli: Arc<dyn TrackRemote>,
}

/// Routes the kiosk's three tracks: the camera into a decoder (keyframe starts counted on
/// the wire), the document and microphone into packet counters.
async fn receive_kiosk_tracks(
    answerer: &mut Answerer,
    document_sending: bool,
) -> (CameraReception, watch::Receiver<u64>, watch::Receiver<u64>) {
    receive_kiosk_tracks_as(answerer, document_sending, VideoCodec::Vp8).await
}

/// The id the first m-section of an SDP maps the transport-wide CC extension to.
fn transport_cc_extension_id(sdp: &str) -> Option<u8> {
    sdp.lines()
        .filter_map(|l| l.strip_prefix("a=extmap:"))
        .find(|l| l.contains("transport-wide-cc"))
        .and_then(|l| l.split([' ', '/']).next())
        .and_then(|id| id.parse().ok())
}

async fn receive_kiosk_tracks_as(
    answerer: &mut Answerer,
    document_sending: bool,
    codec: VideoCodec,
) -> (CameraReception, watch::Receiver<u64>, watch::Receiver<u64>) {
    let transport_cc_id = match answerer.pc.remote_description().await {
        Some(offer) => transport_cc_extension_id(&offer.sdp),
        None => None,
    };
    let mut camera = None;
    let mut document = None;
    let mut microphone = None;
    timeout(WAIT, async {
        // A track appears with its first packet, so a slot that is not sending never does.
        while camera.is_none() || (document_sending && document.is_none()) || microphone.is_none() {
            let track = answerer.tracks.recv().await.expect("track");
            let id = track.track_id().await;
            if id.ends_with("-camera") {
                camera = Some(track);
            } else if id.ends_with("-document") {
                document = Some(track);
            } else if id.ends_with("-microphone") {
                microphone = Some(track);
            }
        }
    })
    .await
    .expect("the kiosk's tracks arrive");
    let (camera, microphone) = (camera.expect("camera"), microphone.expect("microphone"));

    let count_packets = |track: Arc<dyn TrackRemote>| {
        let (tx, rx) = watch::channel(0u64);
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(_) = event {
                    tx.send_modify(|n| *n += 1);
                }
            }
        });
        rx
    };
    let document_packets = match document {
        Some(track) => count_packets(track),
        None => watch::channel(0).1,
    };
    let microphone_packets = count_packets(microphone);

    let mut decoder = RtpVideoReceiver::new(
        "answerer-decoder",
        codec,
        codecs::video_payload_type(codec),
        Duration::from_millis(50),
        256,
    )
    .expect("decoder");
    let decoded = decoder.take_frames().expect("decoded");
    decoder.start().expect("decoder start");
    let (keyframes_tx, keyframes) = watch::channel(0u64);
    let (transport_cc_tx, transport_cc_packets) = watch::channel(0u64);
    let (ssrc_tx, ssrc) = watch::channel(None);
    // The decoder's keyframe needs become PLIs, as the relay's would: the first keyframe
    // may have gone by before this decoder existed.
    let mut needs = decoder.keyframe_requests().expect("keyframe needs");
    let pli_track = Arc::clone(&camera);
    let mut pli_ssrc = ssrc.clone();
    tokio::spawn(async move {
        while needs.recv().await.is_some() {
            let Ok(ssrc) = pli_ssrc
                .wait_for(Option::is_some)
                .await
                .map(|s| s.unwrap_or_default())
            else {
                return;
            };
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc: ssrc,
            };
            if pli_track.write_rtcp(vec![Box::new(pli)]).await.is_err() {
                return;
            }
        }
    });
    let track = Arc::clone(&camera);
    tokio::spawn(async move {
        while let Some(event) = track.poll().await {
            if let TrackRemoteEvent::OnRtpPacket(packet) = event {
                ssrc_tx.send_if_modified(|s| s.replace(packet.header.ssrc).is_none());
                if transport_cc_id.is_some_and(|id| packet.header.get_extension(id).is_some()) {
                    transport_cc_tx.send_modify(|n| *n += 1);
                }
                if codec == VideoCodec::Vp8 && vp8_payload_is_keyframe_start(&packet.payload) {
                    keyframes_tx.send_modify(|n| *n += 1);
                }
                let bytes = Bytes::from(packet.marshal().expect("marshal"));
                let _ = decoder.push_rtp(bytes);
            }
        }
    });
    (
        CameraReception {
            decoded,
            transport_cc_packets,
            keyframes,
            ssrc,
            pli: camera,
        },
        document_packets,
        microphone_packets,
    )
}

async fn wait_connected(link: &MediaLink) {
    let mut state = link.state();
    timeout(WAIT, state.wait_for(|s| *s == ConnectionState::Connected))
        .await
        .expect("kiosk connects")
        .expect("state channel alive");
}

/// Reads stamps from `n` decoded frames; returns the glass-to-glass ages.
async fn stamped_ages(frames: &mut FrameReceiver<DecodedFrame>, n: usize) -> Vec<Duration> {
    let mut ages = Vec::new();
    timeout(WAIT, async {
        while ages.len() < n {
            let frame = frames.recv().await.expect("frames keep coming");
            if let Some(code) = timecode::read_frame(&frame) {
                ages.push(code.age_at(frame.decoded_at).expect("stamp in the past"));
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} of {n} stamped frames", ages.len()));
    ages
}

fn median(mut ages: Vec<Duration>) -> Duration {
    ages.sort();
    ages[ages.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_flows_both_ways_and_a_pli_forces_a_keyframe() {
    let _turn = REALTIME.lock().await;
    let (link, mut clerk) = MediaLink::start(kiosk_config()).await.expect("kiosk link");
    let offer = link.offer().await.expect("offer");

    // The offer is the contract: five m-lines in slot order with the right directions.
    let mids: Vec<&str> = offer
        .lines()
        .filter(|l| l.starts_with("m="))
        .map(|l| l.split(' ').next().unwrap_or_default())
        .collect();
    assert_eq!(
        mids,
        ["m=video", "m=video", "m=audio", "m=video", "m=audio"]
    );
    let directions: Vec<&str> = offer
        .lines()
        .filter(|l| {
            matches!(
                *l,
                "a=sendonly" | "a=recvonly" | "a=sendrecv" | "a=inactive"
            )
        })
        .collect();
    assert_eq!(
        directions,
        [
            "a=sendonly",
            "a=sendonly",
            "a=sendonly",
            "a=recvonly",
            "a=recvonly"
        ]
    );
    assert!(offer.contains("VP8/90000") && offer.contains("H264/90000"));
    assert!(offer.contains("opus/48000/2"));
    assert!(offer.contains("transport-cc") && offer.contains("nack pli"));
    assert!(offer.contains("a=candidate:"));

    let mut answerer = Answerer::new().await;
    let answer = answerer.answer(&offer).await;
    link.apply_answer(&answer).await.expect("answer applied");
    let _clerk_tasks = spawn_clerk_media(&answerer);
    wait_connected(&link).await;

    // Kiosk → answerer: camera frames decode and carry readable capture times.
    let (mut camera, mut document_packets, mut microphone_packets) =
        receive_kiosk_tracks(&mut answerer, true).await;
    let ages = stamped_ages(&mut camera.decoded, 30).await;
    assert!(
        *camera.transport_cc_packets.borrow() > 0,
        "camera bound to transport-wide CC"
    );
    let kiosk_to_answerer = median(ages.clone());
    assert!(
        kiosk_to_answerer < Duration::from_millis(500),
        "kiosk camera glass-to-glass median {kiosk_to_answerer:?}: {ages:?}\nestimate {:?}\n{:#?}",
        *link.estimate().borrow(),
        link.stats().await
    );
    timeout(WAIT, microphone_packets.wait_for(|n| *n >= 50))
        .await
        .expect("microphone packets arrive")
        .expect("alive");
    timeout(WAIT, document_packets.wait_for(|n| *n >= 5))
        .await
        .expect("document packets arrive")
        .expect("alive");

    // Answerer → kiosk: the clerk's video decodes on the kiosk with readable stamps, and
    // the clerk's audio reaches the speaker side of the echo probe.
    let clerk_ages = stamped_ages(&mut clerk.video_frames, 20).await;
    eprintln!(
        "kiosk received clerk video: {:?}",
        link.stats().await.clerk_video
    );
    let answerer_to_kiosk = median(clerk_ages);
    assert!(answerer_to_kiosk < Duration::from_millis(500));
    let mut played = link.clerk_audio_played();
    timeout(WAIT, played.wait_for(|n| *n >= 50))
        .await
        .expect("clerk audio plays")
        .expect("alive");

    // A PLI from the answerer produces a keyframe from the kiosk's camera.
    let ssrc = timeout(WAIT, camera.ssrc.wait_for(Option::is_some))
        .await
        .expect("ssrc known")
        .expect("alive")
        .unwrap_or_default();
    let forced_before = link
        .encoder(Slot::KioskCamera)
        .expect("encoder")
        .stats()
        .keyframes_forced;
    let before = *camera.keyframes.borrow_and_update();
    camera
        .pli
        .write_rtcp(vec![Box::new(PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: ssrc,
        })])
        .await
        .expect("PLI sent");
    timeout(
        Duration::from_secs(5),
        camera.keyframes.wait_for(|n| *n > before),
    )
    .await
    .expect("a keyframe follows the PLI")
    .expect("alive");
    let stats = link.stats().await;
    assert!(stats.peer.keyframe_requests_received >= 1, "{stats:#?}");
    assert!(stats.camera.keyframes_forced > forced_before);

    // Congestion control runs: transport-wide feedback produced an estimate that the
    // encoders follow.
    let mut estimate = link.estimate();
    let estimate = timeout(WAIT, estimate.wait_for(Option::is_some))
        .await
        .expect("an estimate appears")
        .expect("alive")
        .unwrap_or_default();
    assert!(estimate > 0.0);
    // One more tick of the allocation loop, then the camera runs at its share of the estimate
    // rather than at its configured start (400 kbit/s).
    let mut tick = link.estimate();
    tick.borrow_and_update();
    timeout(WAIT, tick.changed())
        .await
        .expect("the estimate keeps being applied")
        .expect("alive");
    let camera_bitrate = link.encoder(Slot::KioskCamera).expect("encoder").bitrate();
    assert_ne!(
        camera_bitrate, 400_000,
        "camera bitrate follows the estimate"
    );
    let stats = link.stats().await;
    assert_eq!(stats.peer.state, ConnectionState::Connected);
    assert!(
        stats
            .peer
            .outbound
            .iter()
            .any(|o| o.slot == Slot::KioskCamera && o.packets_sent > 0)
    );
    link.health().expect("pipelines healthy");

    eprintln!(
        "glass-to-glass median: kiosk→answerer {kiosk_to_answerer:?}, answerer→kiosk \
         {answerer_to_kiosk:?}; estimate {estimate:.0} bit/s; camera {:?}",
        stats.camera
    );
    link.close().await;
    let _ = answerer.pc.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_restart_and_full_reconnect_keep_the_camera_flowing() {
    let _turn = REALTIME.lock().await;
    let mut config = kiosk_config();
    config.document_sending = false;
    let (link, _clerk) = MediaLink::start(config).await.expect("kiosk link");
    let mut answerer = Answerer::new().await;
    let first_offer = link.offer().await.expect("offer");
    let answer = answerer.answer(&first_offer).await;
    link.apply_answer(&answer).await.expect("answer");
    wait_connected(&link).await;
    let (mut camera, _, _) = receive_kiosk_tracks(&mut answerer, false).await;
    stamped_ages(&mut camera.decoded, 10).await;

    // ICE restart: a new offer with new credentials, answered by the same peer.
    let restart_offer = link.restart_ice().await.expect("restart offer");
    assert!(ice_ufrag(&restart_offer).is_some());
    assert_ne!(ice_ufrag(&restart_offer), ice_ufrag(&first_offer));
    let answer = answerer.answer(&restart_offer).await;
    link.apply_answer(&answer).await.expect("restart answer");
    wait_connected(&link).await;
    stamped_ages(&mut camera.decoded, 10).await;

    // Full reconnect: a new peer connection against a fresh answerer, pipelines untouched.
    let offer = link.reconnect().await.expect("reconnect offer");
    let mut fresh = Answerer::new().await;
    let answer = fresh.answer(&offer).await;
    link.apply_answer(&answer).await.expect("reconnect answer");
    wait_connected(&link).await;
    let (mut camera, _, _) = receive_kiosk_tracks(&mut fresh, false).await;
    let ages = stamped_ages(&mut camera.decoded, 10).await;
    assert!(median(ages) < Duration::from_millis(500));
    assert_eq!(link.stats().await.reconnects, 1);
    link.close().await;
    let _ = answerer.pc.close().await;
    let _ = fresh.pc.close().await;
}

fn ice_ufrag(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_h264_alternative_is_used_when_the_answer_chooses_it() {
    let _turn = REALTIME.lock().await;
    let mut config = kiosk_config();
    config.document_sending = false;
    let (link, _clerk) = MediaLink::start(config).await.expect("kiosk link");
    let offer = link.offer().await.expect("offer");
    // VP8 is preferred: listed first on the camera's m-line.
    let camera_line = offer
        .lines()
        .find(|l| l.starts_with("m=video"))
        .expect("m=video");
    assert!(camera_line.ends_with(&format!(
        " {} {}",
        codecs::VP8_PAYLOAD_TYPE,
        codecs::H264_PAYLOAD_TYPE
    )));

    let mut answerer = Answerer::with_video_codec(Some(VideoCodec::H264)).await;
    let answer = answerer.answer(&offer).await;
    link.apply_answer(&answer).await.expect("answer");
    assert_eq!(
        link.encoder(Slot::KioskCamera).expect("encoder").codec(),
        VideoCodec::H264,
        "the camera's encoder follows the answer"
    );
    wait_connected(&link).await;
    let (mut camera, _, _) = receive_kiosk_tracks_as(&mut answerer, false, VideoCodec::H264).await;
    let ages = stamped_ages(&mut camera.decoded, 15).await;
    assert!(median(ages) < Duration::from_millis(500));
    link.close().await;
    let _ = answerer.pc.close().await;
}

/// A coturn `turnserver` on 127.0.0.1 for one test: long-term credentials, loopback peers
/// allowed (test only), killed on drop.
struct Coturn {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Coturn {
    const USER: &'static str = "kiosk-test";
    const PASSWORD: &'static str = "turn-test-secret";

    async fn start() -> Coturn {
        let dir = tempfile::tempdir().expect("tempdir");
        // An ephemeral port the kernel just handed out, released for coturn to take.
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("free port")
            .port();
        // Relay ports below the kernel's ephemeral range, so they cannot collide with the
        // peers' own sockets.
        let relay_min = 20_000 + (rand::random::<u16>() % 50) * 200;
        let child = std::process::Command::new("turnserver")
            .args(["-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1"])
            .arg(format!("--listening-port={port}"))
            .arg(format!("--min-port={relay_min}"))
            .arg(format!("--max-port={}", relay_min + 199))
            .args([
                "--allow-loopback-peers",
                "--lt-cred-mech",
                "--realm=agent.test",
            ])
            .arg(format!("--user={}:{}", Coturn::USER, Coturn::PASSWORD))
            .args([
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--simple-log",
                "--log-file=stdout",
            ])
            .arg(format!("--pidfile={}", dir.path().join("pid").display()))
            .arg(format!("--db={}", dir.path().join("turndb").display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("turnserver runs (Debian package coturn, deploy/packages-test.txt)");
        let coturn = Coturn {
            child,
            port,
            _dir: dir,
        };
        coturn.wait_ready().await;
        coturn
    }

    /// Ready once it answers a STUN binding request.
    async fn wait_ready(&self) {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("probe socket");
        let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        request.extend((0..12).map(|_| rand::random::<u8>()));
        let ready = timeout(Duration::from_secs(15), async {
            let mut reply = [0u8; 512];
            loop {
                socket
                    .send_to(&request, ("127.0.0.1", self.port))
                    .await
                    .expect("probe");
                if let Ok(Ok((n, _))) =
                    timeout(Duration::from_millis(200), socket.recv_from(&mut reply)).await
                    && n >= 20
                    && reply[8..20] == request[8..20]
                {
                    return;
                }
            }
        })
        .await;
        assert!(
            ready.is_ok(),
            "turnserver did not answer STUN on port {}",
            self.port
        );
    }

    fn server(&self) -> agent::link::rtc::TurnServer {
        agent::link::rtc::TurnServer {
            urls: vec![format!("turn:127.0.0.1:{}?transport=udp", self.port)],
            username: Coturn::USER.to_owned(),
            credential: Coturn::PASSWORD.to_owned(),
        }
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_flows_through_a_turn_relay_when_forced() {
    let _turn = REALTIME.lock().await;
    let coturn = Coturn::start().await;
    let mut config = kiosk_config();
    config.document_sending = false;
    config.peer.turn = Some(coturn.server());
    config.peer.relay_only = true;
    let (link, _clerk) = MediaLink::start(config).await.expect("kiosk link");
    let offer = link.offer().await.expect("offer");
    let candidates: Vec<&str> = offer
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .collect();
    assert!(!candidates.is_empty(), "relay candidates gathered");
    assert!(
        candidates.iter().all(|c| c.contains(" typ relay")),
        "relay-only offers relay candidates only: {candidates:?}"
    );

    let mut answerer = Answerer::new().await;
    let answer = answerer.answer(&offer).await;
    link.apply_answer(&answer).await.expect("answer");
    wait_connected(&link).await;
    let (mut camera, _, _) = receive_kiosk_tracks(&mut answerer, false).await;
    let ages = stamped_ages(&mut camera.decoded, 15).await;
    assert!(median(ages) < Duration::from_millis(500));
    link.close().await;
    let _ = answerer.pc.close().await;
}
