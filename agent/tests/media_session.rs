//! The media session driving a real media link against a stand-in relay, and the screen link
//! against a stand-in kiosk page, all on 127.0.0.1 with ephemeral ports.
//!
//! The stand-in relay behaves as the relay does towards a kiosk: every offer gets a fresh
//! ICE-lite peer (here webrtc-rs) that decodes the kiosk's camera and sends a stamped clerk
//! video back; its UDP goes through a proxy the test can cut, as a network change or a
//! blocked path would. The stand-in page is a webrtc-rs offerer with two receive-only video
//! transceivers, decoding what the agent forwards. Bounded waits, no sleeps as
//! synchronisation, no timing assertions.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent::link::control::MediaSignal;
use agent::link::rtc::{MediaLinkConfig, PeerConfig, RtpPacketizer, StreamCodec, codecs, keyframe};
use agent::media::timecode;
use agent::media::{
    DecodedFrame, MediaSources, RtpVideoReceiver, VideoCodec, VideoSendConfig, VideoSendPipeline,
    VideoSource,
};
use agent::media_session::MediaLinkFactory;
use agent::media_session::core::{CoreConfig, Phase, SessionCore};
use agent::media_session::driver::{self, SessionStatus};
use agent::media_session::screen::ScreenVideo;
use bytes::Bytes;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_nack, configure_rtcp_reports, configure_twcc_receiver_only,
};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::shared::marshal::Marshal;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription, Registry,
    SettingEngineBuilder,
};

const WAIT: Duration = Duration::from_secs(60);

/// Logs to the test's output (shown for a failing test) with `RUST_LOG`, default `info`.
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// The tests run encoders and decoders in real time; on a two-core machine they take turns.
static REALTIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// --- a UDP path the test can cut -------------------------------------------------------------

/// Forwards datagrams between the kiosk (learned from its first datagram) and one peer,
/// unless `blocked`.
struct Proxy {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Proxy {
    async fn start(peer: SocketAddr, blocked: Arc<AtomicBool>) -> Proxy {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("proxy socket");
        let addr = socket.local_addr().expect("proxy addr");
        let task = tokio::spawn(async move {
            let mut client: Option<SocketAddr> = None;
            let mut buf = vec![0u8; 2048];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                if blocked.load(Ordering::Relaxed) {
                    continue;
                }
                let to = if from == peer {
                    match client {
                        Some(c) => c,
                        None => continue,
                    }
                } else {
                    client = Some(from);
                    peer
                };
                let _ = socket.send_to(&buf[..n], to).await;
            }
        });
        Proxy { addr, task }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Points every host candidate of `sdp` at `proxy`, and removes the others.
fn via_proxy(sdp: &str, proxy: SocketAddr) -> String {
    sdp.lines()
        .filter_map(|line| {
            let Some(candidate) = line.strip_prefix("a=candidate:") else {
                return Some(format!("{line}\r\n"));
            };
            let mut fields: Vec<String> = candidate.split(' ').map(str::to_owned).collect();
            if fields.len() < 8 || fields[7] != "host" || !fields[2].eq_ignore_ascii_case("udp") {
                return None;
            }
            fields[4] = proxy.ip().to_string();
            fields[5] = proxy.port().to_string();
            Some(format!("a=candidate:{}\r\n", fields.join(" ")))
        })
        .collect()
}

/// The UDP address of the first host candidate of `sdp`.
fn first_candidate(sdp: &str) -> SocketAddr {
    sdp.lines()
        .filter_map(|l| l.strip_prefix("a=candidate:"))
        .find_map(|c| {
            let f: Vec<&str> = c.split(' ').collect();
            (f.len() >= 8 && f[7] == "host").then(|| format!("{}:{}", f[4], f[5]).parse().ok())?
        })
        .expect("a host candidate")
}

// --- the stand-in relay ----------------------------------------------------------------------

struct Events {
    gathering: watch::Sender<RTCIceGatheringState>,
    state: watch::Sender<RTCPeerConnectionState>,
    tracks: mpsc::Sender<Arc<dyn TrackRemote>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Events {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        self.gathering.send_replace(state);
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.state.send_replace(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.tracks.try_send(track);
    }
}

fn video_track(name: &str, ssrc: u32) -> Arc<TrackLocalStaticRTP> {
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        format!("{name}-stream"),
        format!("{name}-video"),
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
    )))
}

/// One relay-side peer: answers one offer, decodes the kiosk's camera, sends the clerk video.
struct RelayPeer {
    pc: Arc<dyn PeerConnection>,
    camera_frames: watch::Receiver<u64>,
    tasks: Vec<JoinHandle<()>>,
    _proxy: Proxy,
}

impl RelayPeer {
    async fn answer(
        offer: &str,
        clerk: &ClerkCamera,
        blocked: Arc<AtomicBool>,
    ) -> (RelayPeer, String) {
        let mut media_engine = MediaEngine::default();
        codecs::register_codecs(&mut media_engine).expect("codecs");
        let registry = configure_nack(Registry::new(), &mut media_engine);
        let registry = configure_rtcp_reports(registry);
        let registry =
            configure_twcc_receiver_only(registry, &mut media_engine).expect("twcc receiver");
        let registry = registry.with(
            rtc::interceptor::Slot::from(keyframe::KEYFRAME_FORWARDER_SLOT),
            keyframe::KeyframeRequestForwarder::new(),
        );
        let (gathering_tx, mut gathering) = watch::channel(RTCIceGatheringState::New);
        let (state_tx, _state) = watch::channel(RTCPeerConnectionState::New);
        let (tracks_tx, mut tracks) = mpsc::channel(8);
        let pc = PeerConnectionBuilder::new()
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            // ICE-lite like the relay's SFU: it only answers the kiosk's checks, so every
            // datagram takes the proxy's path.
            .with_setting_engine(
                SettingEngineBuilder::new()
                    .with_include_loopback_candidate(true)
                    .with_lite(true)
                    .build(),
            )
            .with_handler(Arc::new(Events {
                gathering: gathering_tx,
                state: state_tx,
                tracks: tracks_tx,
            }))
            .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
            .build()
            .await
            .expect("relay peer");
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let ssrc = rand::random::<u32>();
        let clerk_track = video_track("clerk", ssrc);
        pc.add_transceiver_from_track(
            Arc::clone(&clerk_track) as Arc<dyn TrackLocal>,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                ..Default::default()
            }),
        )
        .await
        .expect("clerk video transceiver");
        // The kiosk's own candidates are not given: the relay learns its address from the
        // kiosk's checks, which arrive through the proxy.
        let offer =
            RTCSessionDescription::offer(via_proxy(offer, "127.0.0.1:9".parse().expect("addr")))
                .expect("offer parses");
        pc.set_remote_description(offer)
            .await
            .expect("remote offer");
        let answer = pc.create_answer(None).await.expect("answer");
        gathering.borrow_and_update();
        pc.set_local_description(answer)
            .await
            .expect("local answer");
        timeout(
            WAIT,
            gathering.wait_for(|s| *s == RTCIceGatheringState::Complete),
        )
        .await
        .expect("gathered")
        .expect("alive");
        let sdp = pc.local_description().await.expect("answer sdp").sdp;
        let proxy = Proxy::start(first_candidate(&sdp), blocked).await;
        let sdp = via_proxy(&sdp, proxy.addr);

        let mut tasks = Vec::new();
        // The clerk's video: every peer gets the same stamped frames, from a new packetizer.
        let mut frames = clerk.subscribe();
        let writer = Arc::clone(&clerk_track);
        let sent = Arc::clone(&clerk.sent_payloads);
        tasks.push(tokio::spawn(async move {
            let mut p = RtpPacketizer::new(
                StreamCodec::Video(VideoCodec::Vp8),
                ssrc,
                codecs::VP8_PAYLOAD_TYPE,
                rand::random(),
                rand::random(),
            );
            loop {
                let frame = match frames.recv().await {
                    Ok(frame) => frame,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                };
                for packet in p.packetize(&frame).expect("packetize") {
                    remember(&sent, &packet.payload);
                    if writer.write_rtp(packet).await.is_err() {
                        break;
                    }
                }
            }
        }));
        // The kiosk's PLIs for the clerk video → the clerk camera's encoder.
        let requests = Arc::clone(&clerk_track);
        let control = clerk.control.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(event) = requests.poll().await {
                if let TrackLocalEvent::OnRtcpPacket(packets) = event
                    && packets.iter().any(keyframe::is_keyframe_request)
                {
                    control.force_keyframe();
                }
            }
        }));
        // The kiosk's camera → a decoder; frames counted.
        let (camera_tx, camera_frames) = watch::channel(0u64);
        tasks.push(tokio::spawn(async move {
            while let Some(track) = tracks.recv().await {
                if track.kind().await != RtpCodecKind::Video
                    || !track.track_id().await.ends_with("-camera")
                {
                    continue;
                }
                let camera_tx = camera_tx.clone();
                tokio::spawn(decode_into(track, None, move |_| {
                    camera_tx.send_modify(|n| *n += 1);
                }));
            }
        }));
        (
            RelayPeer {
                pc,
                camera_frames,
                tasks,
                _proxy: proxy,
            },
            sdp,
        )
    }

    async fn close(self) {
        for task in &self.tasks {
            task.abort();
        }
        let _ = self.pc.close().await;
    }
}

/// Decodes a received VP8 track (asking for keyframes as the decoder needs them) and calls
/// `on_frame` for each decoded frame.
async fn decode_into(
    track: Arc<dyn TrackRemote>,
    record: Option<Arc<Mutex<Vec<Bytes>>>>,
    mut on_frame: impl FnMut(DecodedFrame) + Send + 'static,
) {
    let mut decoder = RtpVideoReceiver::new(
        "test-decoder",
        VideoCodec::Vp8,
        codecs::VP8_PAYLOAD_TYPE,
        Duration::from_millis(40),
        64,
    )
    .expect("decoder");
    let mut frames = decoder.take_frames().expect("frames");
    decoder.start().expect("decoder start");
    let mut needs = decoder.keyframe_requests().expect("needs");
    let ssrc = Arc::new(Mutex::new(None::<u32>));
    let pli_ssrc = Arc::clone(&ssrc);
    let pli_track = Arc::clone(&track);
    let pli = tokio::spawn(async move {
        while needs.recv().await.is_some() {
            let media_ssrc = *pli_ssrc.lock().expect("ssrc");
            if let Some(media_ssrc) = media_ssrc {
                let _ = pli_track
                    .write_rtcp(vec![Box::new(PictureLossIndication {
                        sender_ssrc: 0,
                        media_ssrc,
                    })])
                    .await;
            }
        }
    });
    let consume = tokio::spawn(async move {
        while let Some(frame) = frames.recv().await {
            on_frame(frame);
        }
    });
    while let Some(event) = track.poll().await {
        if let TrackRemoteEvent::OnRtpPacket(packet) = event {
            *ssrc.lock().expect("ssrc") = Some(packet.header.ssrc);
            if let Some(record) = &record {
                let mut record = record.lock().expect("payloads");
                if record.len() < 5_000 {
                    record.push(packet.payload.clone());
                }
            }
            let payload_type = packet.header.payload_type;
            let mut packet = packet;
            // The decoder's caps name VP8's payload type; the page's number may differ.
            if payload_type != codecs::VP8_PAYLOAD_TYPE {
                packet.header.payload_type = codecs::VP8_PAYLOAD_TYPE;
            }
            let _ = decoder.push_rtp(Bytes::from(packet.marshal().expect("marshal")));
        }
    }
    pli.abort();
    consume.abort();
}

fn remember(set: &Mutex<HashSet<Bytes>>, payload: &Bytes) {
    let mut set = set.lock().expect("payloads");
    // Bounded: the test only compares the most recent few seconds.
    if set.len() > 20_000 {
        set.clear();
    }
    set.insert(payload.clone());
}

/// The clerk's camera at the stand-in relay: a stamped test source, shared by every peer.
struct ClerkCamera {
    frames: tokio::sync::broadcast::Sender<agent::media::EncodedFrame>,
    control: agent::media::VideoEncoderControl,
    sent_payloads: Arc<Mutex<HashSet<Bytes>>>,
    _task: JoinHandle<()>,
}

impl ClerkCamera {
    fn start() -> ClerkCamera {
        let mut camera = VideoSendPipeline::new(VideoSendConfig {
            label: "clerk-camera",
            width: 320,
            height: 240,
            fps: 15,
            bitrate_bps: 300_000,
            min_keyframe_spacing: Duration::ZERO,
            ..VideoSendConfig::camera(VideoSource::Test)
        })
        .expect("clerk camera");
        let mut encoded = camera.take_frames().expect("frames");
        camera.start().expect("clerk camera start");
        let control = camera.control();
        let (frames, _) = tokio::sync::broadcast::channel(32);
        let tx = frames.clone();
        let task = tokio::spawn(async move {
            let _camera = camera;
            while let Some(frame) = encoded.recv().await {
                let _ = tx.send(frame);
            }
        });
        ClerkCamera {
            frames,
            control,
            sent_payloads: Arc::new(Mutex::new(HashSet::new())),
            _task: task,
        }
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<agent::media::EncodedFrame> {
        self.frames.subscribe()
    }
}

/// The stand-in relay's signalling: answers every offer with a fresh peer (replacing the
/// previous one, as the relay does), and can be "restarted" (peer dropped, kiosk offline).
struct StandInRelay {
    signals: mpsc::Sender<MediaSignal>,
    current: Arc<tokio::sync::Mutex<Option<RelayPeer>>>,
    answered: watch::Receiver<u64>,
    blocked: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl StandInRelay {
    fn start(
        mut offers: mpsc::Receiver<(u64, String)>,
        signals: mpsc::Sender<MediaSignal>,
        clerk: Arc<ClerkCamera>,
    ) -> StandInRelay {
        let current: Arc<tokio::sync::Mutex<Option<RelayPeer>>> = Arc::default();
        let (answered_tx, answered) = watch::channel(0u64);
        let blocked = Arc::new(AtomicBool::new(false));
        let task = {
            let current = Arc::clone(&current);
            let signals = signals.clone();
            let blocked = Arc::clone(&blocked);
            tokio::spawn(async move {
                while let Some((request_id, sdp)) = offers.recv().await {
                    let (peer, answer) =
                        RelayPeer::answer(&sdp, &clerk, Arc::clone(&blocked)).await;
                    if let Some(old) = current.lock().await.replace(peer) {
                        old.close().await;
                    }
                    // A stale answer first (an old request id): the session must ignore it.
                    let _ = signals
                        .send(MediaSignal::Answer {
                            request_id: request_id.wrapping_sub(1),
                            sdp: "v=0\r\n".into(),
                        })
                        .await;
                    let _ = signals
                        .send(MediaSignal::Answer {
                            request_id,
                            sdp: answer,
                        })
                        .await;
                    answered_tx.send_modify(|n| *n += 1);
                }
            })
        };
        StandInRelay {
            signals,
            current,
            answered,
            blocked,
            task,
        }
    }

    async fn online(&self) {
        self.signals
            .send(MediaSignal::Online {
                ice_servers: vec![],
            })
            .await
            .expect("session alive");
    }

    async fn sending(&self, sending: bool) {
        self.signals
            .send(MediaSignal::Sending(sending))
            .await
            .expect("session alive");
    }

    /// The relay process dies: its peer is gone and the kiosk's control link drops.
    async fn crash(&self) {
        if let Some(peer) = self.current.lock().await.take() {
            peer.close().await;
        }
        self.signals
            .send(MediaSignal::Offline)
            .await
            .expect("session alive");
    }

    /// Camera frames decoded by the current relay-side peer.
    async fn camera_frames(&self) -> watch::Receiver<u64> {
        loop {
            if let Some(peer) = self.current.lock().await.as_ref() {
                return peer.camera_frames.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for StandInRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// --- the session under test ------------------------------------------------------------------

fn kiosk_link_config() -> MediaLinkConfig {
    let mut config = MediaLinkConfig::new(MediaSources::simulated(), PeerConfig::loopback());
    config.camera.width = 320;
    config.camera.height = 240;
    config.camera.fps = 15;
    config.camera.bitrate_bps = 300_000;
    config.camera.min_keyframe_spacing = Duration::ZERO;
    config.document.width = 160;
    config.document.height = 120;
    config.document.fps = 2;
    config.camera_sending = false;
    config.document_sending = false;
    config.microphone_sending = false;
    config.screen_taps = true;
    config.decode_clerk_video = false;
    config
}

struct Session {
    status: watch::Receiver<SessionStatus>,
    screen: ScreenVideo,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Session {
    fn start(offers: mpsc::Sender<(u64, String)>, signals: mpsc::Receiver<MediaSignal>) -> Session {
        let screen = ScreenVideo::new(true);
        let factory = MediaLinkFactory::new(kiosk_link_config(), screen.clone());
        let core = SessionCore::new(CoreConfig {
            answer_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            disconnected_grace: Duration::from_secs(1),
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
        });
        let (status_tx, status) = watch::channel(SessionStatus::default());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(driver::run(
            core,
            factory,
            Arc::new(offers),
            signals,
            status_tx,
            shutdown.clone(),
        ));
        Session {
            status,
            screen,
            shutdown,
            task,
        }
    }

    async fn wait(&mut self, what: &str, check: impl Fn(&SessionStatus) -> bool) -> SessionStatus {
        let reached = match timeout(WAIT, self.status.wait_for(|s| check(s))).await {
            Ok(Ok(status)) => Some(*status),
            _ => None,
        };
        reached
            .unwrap_or_else(|| panic!("session never reached {what}: {:?}", *self.status.borrow()))
    }

    async fn stop(self) {
        self.shutdown.cancel();
        timeout(WAIT, self.task)
            .await
            .expect("session stops")
            .expect("no panic");
        self.screen.close().await;
    }
}

async fn frames_grow(frames: &mut watch::Receiver<u64>, by: u64, what: &str) {
    let start = *frames.borrow_and_update();
    timeout(WAIT, frames.wait_for(|n| *n >= start + by))
        .await
        .unwrap_or_else(|_| panic!("{what}: fewer than {by} new frames"))
        .expect("decoder alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_recovers_from_a_relay_restart_and_a_cut_udp_path() {
    init_logs();
    let _turn = REALTIME.lock().await;
    let clerk = Arc::new(ClerkCamera::start());
    let (offers_tx, offers_rx) = mpsc::channel(8);
    let (signals_tx, signals_rx) = mpsc::channel(16);
    let relay = StandInRelay::start(offers_rx, signals_tx, Arc::clone(&clerk));
    let mut session = Session::start(offers_tx, signals_rx);

    // Online: the session starts the link and offers; nothing is sent while nobody serves.
    relay.online().await;
    session
        .wait("connected", |s| s.phase == Phase::Connected)
        .await;
    let mut camera = relay.camera_frames().await;
    assert_eq!(*camera.borrow(), 0, "no uplink while waiting");

    // A clerk calls: the camera starts (with a keyframe) and the relay decodes it.
    relay.sending(true).await;
    frames_grow(&mut camera, 10, "first connection").await;
    relay.sending(false).await;
    session.wait("not sending", |s| !s.sending).await;

    // The relay restarts: peer gone, control link offline, then back.
    relay.crash().await;
    session.wait("offline", |s| s.phase == Phase::Offline).await;
    relay.online().await;
    let status = session
        .wait("connected again", |s| {
            s.phase == Phase::Connected && s.counters.new_connections >= 1
        })
        .await;
    assert!(
        status.counters.stale_answers >= 2,
        "stale answers ignored: {status:?}"
    );
    relay.sending(true).await;
    let mut camera = relay.camera_frames().await;
    frames_grow(&mut camera, 10, "after the relay restart").await;

    // The UDP path is cut while sending (a network change): the session notices, and once
    // the path is back a new connection carries the camera again.
    let before = session.status.borrow().counters.new_connections;
    relay.blocked.store(true, Ordering::Relaxed);
    session
        .wait("a reconnection attempt", |s| {
            s.counters.new_connections > before
        })
        .await;
    relay.blocked.store(false, Ordering::Relaxed);
    session
        .wait("connected after the cut", |s| s.phase == Phase::Connected)
        .await;
    let mut camera = relay.camera_frames().await;
    frames_grow(&mut camera, 10, "after the UDP path returned").await;
    assert!(
        session.status.borrow().sending,
        "still sending after recovery"
    );

    let answered = *relay.answered.borrow();
    assert!(answered >= 3, "one answer per connection: {answered}");
    session.stop().await;
}

// --- the stand-in kiosk page -----------------------------------------------------------------

/// A webrtc-rs peer that does what `agent/web/kiosk/media.js` does: offers two receive-only
/// video transceivers, posts the offer, and shows (here: decodes) what arrives.
struct Page {
    pc: Arc<dyn PeerConnection>,
    clerk_stamps: watch::Receiver<Vec<Duration>>,
    self_stamps: watch::Receiver<Vec<Duration>>,
    clerk_payloads: Arc<Mutex<Vec<Bytes>>>,
}

impl Page {
    async fn open(screen: &ScreenVideo) -> Page {
        let mut media_engine = MediaEngine::default();
        codecs::register_codecs(&mut media_engine).expect("codecs");
        let registry = configure_nack(Registry::new(), &mut media_engine);
        let registry = configure_rtcp_reports(registry);
        let (gathering_tx, mut gathering) = watch::channel(RTCIceGatheringState::New);
        let (state_tx, _) = watch::channel(RTCPeerConnectionState::New);
        let (tracks_tx, mut tracks) = mpsc::channel(8);
        let pc = PeerConnectionBuilder::new()
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(
                SettingEngineBuilder::new()
                    .with_include_loopback_candidate(true)
                    .build(),
            )
            .with_handler(Arc::new(Events {
                gathering: gathering_tx,
                state: state_tx,
                tracks: tracks_tx,
            }))
            .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
            .build()
            .await
            .expect("page peer");
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        for _ in 0..2 {
            pc.add_transceiver_from_kind(
                RtpCodecKind::Video,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    ..Default::default()
                }),
            )
            .await
            .expect("recvonly transceiver");
        }
        let offer = pc.create_offer(None).await.expect("offer");
        gathering.borrow_and_update();
        pc.set_local_description(offer).await.expect("local offer");
        timeout(
            WAIT,
            gathering.wait_for(|s| *s == RTCIceGatheringState::Complete),
        )
        .await
        .expect("gathered")
        .expect("alive");
        let offer = pc.local_description().await.expect("offer sdp").sdp;
        let answer = timeout(WAIT, screen.offer(&offer))
            .await
            .expect("the agent answers the page in time")
            .expect("the agent answers the page");
        assert!(answer.clerk_mid.is_some() && answer.self_mid.is_some());
        pc.set_remote_description(RTCSessionDescription::answer(answer.sdp).expect("answer"))
            .await
            .expect("remote answer");

        let (clerk_tx, clerk_stamps) = watch::channel(Vec::new());
        let (self_tx, self_stamps) = watch::channel(Vec::new());
        let clerk_payloads: Arc<Mutex<Vec<Bytes>>> = Arc::default();
        let payloads = Arc::clone(&clerk_payloads);
        let clerk_mid = answer.clerk_mid;
        let receivers = pc.get_transceivers().await;
        tokio::spawn(async move {
            while let Some(track) = tracks.recv().await {
                // Which picture: the transceiver's mid against the agent's answer.
                let mut is_clerk = false;
                for t in &receivers {
                    if let Ok(Some(receiver)) = t.receiver().await
                        && Arc::ptr_eq(receiver.track(), &track)
                    {
                        is_clerk = t.mid().await.ok().flatten() == clerk_mid;
                    }
                }
                let stamps = if is_clerk {
                    clerk_tx.clone()
                } else {
                    self_tx.clone()
                };
                let record = is_clerk.then(|| Arc::clone(&payloads));
                tokio::spawn(decode_into(track, record, move |frame| {
                    if let Some(code) = timecode::read_frame(&frame)
                        && let Some(age) = code.age_at(frame.decoded_at)
                    {
                        stamps.send_modify(|v| v.push(age));
                    }
                }));
            }
        });
        Page {
            pc,
            clerk_stamps,
            self_stamps,
            clerk_payloads,
        }
    }
}

async fn stamps_grow(stamps: &mut watch::Receiver<Vec<Duration>>, by: usize, what: &str) {
    let start = stamps.borrow_and_update().len();
    timeout(WAIT, stamps.wait_for(|v| v.len() >= start + by))
        .await
        .unwrap_or_else(|_| panic!("{what}: fewer than {by} new stamped frames"))
        .expect("page alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_clerk_and_itself_without_transcoding() {
    init_logs();
    let _turn = REALTIME.lock().await;
    let clerk = Arc::new(ClerkCamera::start());
    let (offers_tx, offers_rx) = mpsc::channel(8);
    let (signals_tx, signals_rx) = mpsc::channel(16);
    let relay = StandInRelay::start(offers_rx, signals_tx, Arc::clone(&clerk));
    let mut session = Session::start(offers_tx, signals_rx);
    relay.online().await;
    session
        .wait("connected", |s| s.phase == Phase::Connected)
        .await;

    tracing::info!("test: opening the page");
    let mut page = Page::open(&session.screen).await;
    tracing::info!("test: page open");
    relay.sending(true).await;
    // Both pictures arrive and decode in the page; their capture stamps read back.
    stamps_grow(&mut page.clerk_stamps, 10, "clerk video in the page").await;
    stamps_grow(&mut page.self_stamps, 10, "self-view in the page").await;
    assert!(session.screen.page_connected());

    // Not transcoded: every payload the page got is one the relay sent, byte for byte.
    let received = page.clerk_payloads.lock().expect("payloads").clone();
    assert!(received.len() >= 20, "{} clerk packets", received.len());
    {
        let sent = clerk.sent_payloads.lock().expect("sent");
        let foreign = received.iter().filter(|p| !sent.contains(*p)).count();
        assert_eq!(
            foreign,
            0,
            "{foreign} of {} payloads were not the relay's",
            received.len()
        );
    }
    let counters = session.screen.counters();
    assert!(counters.clerk_packets_forwarded > 0 && counters.self_view_frames_forwarded > 0);

    // The relay restarts: the page keeps its connection and the clerk's video continues on
    // the same picture, from the new relay connection.
    relay.crash().await;
    session.wait("offline", |s| s.phase == Phase::Offline).await;
    relay.online().await;
    session
        .wait("connected again", |s| {
            s.phase == Phase::Connected && s.counters.new_connections >= 1
        })
        .await;
    relay.sending(true).await;
    stamps_grow(
        &mut page.clerk_stamps,
        10,
        "clerk video after the relay restart",
    )
    .await;
    stamps_grow(
        &mut page.self_stamps,
        10,
        "self-view after the relay restart",
    )
    .await;
    assert_eq!(
        session.screen.counters().connections,
        1,
        "one page connection throughout"
    );

    let _ = page.pc.close().await;
    session.stop().await;
}
