//! The kiosk's media link: pipelines + peer + the tasks between them.
//!
//! Pipelines live as long as the link; the peer is replaced on a full reconnect. Each peer
//! generation gets its own tasks (keyframe requests → encoders, estimate → bitrates, remote
//! tracks → playback and screen, state forwarding); the send pumps follow the current
//! generation through a `watch`, so a reconnect never rebuilds a pipeline or reopens a device.
//! Frames are dropped, never queued without bound, when the peer is not negotiated yet, a slot
//! is not sending, or webrtc-rs pushes back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use protocol::media::Slot;
use rtc::shared::marshal::Marshal;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use crate::media::ladder::{LadderConfig, ResolutionLadder, Rung};
use crate::media::{
    AudioPlaybackStats, AudioSendConfig, AudioSendPipeline, DecodedFrame, EncodedFrame,
    FrameReceiver, FrameSender, MediaError, MediaSources, RtpAudioPlayback, RtpVideoReceiver,
    VideoCodec, VideoEncoderControl, VideoReceiveStats, VideoSendConfig, VideoSendPipeline,
    frame_channel,
};

mod generation;
mod playback;

use self::generation::spawn_generation;
use super::RtcError;
use super::bitrate::{allocate_bitrate, worth_changing};
use super::codecs::{self, OPUS_PAYLOAD_TYPE};
use super::config::{PeerConfig, TurnServer};
use super::packetizer::{RtpPacketizer, StreamCodec};
use super::peer::{KioskPeer, RemoteTrack, RemoteTrackRequester};
use super::state::ConnectionState;
use super::stats::LinkStats;

/// Everything the media link needs.
#[derive(Debug, Clone)]
pub struct MediaLinkConfig {
    pub peer: PeerConfig,
    /// Camera size, rate and encoder settings; its source and codec are filled in from
    /// `sources` and `peer.preferred_video_codec`.
    pub camera: VideoSendConfig,
    pub document: VideoSendConfig,
    pub microphone: AudioSendConfig,
    pub speaker: crate::media::AudioOutput,
    pub clerk_video_latency: Duration,
    pub clerk_audio_latency: Duration,
    /// Decoded clerk frames held for the kiosk screen before the oldest is dropped.
    pub clerk_video_queue: usize,
    /// How often the congestion-control estimate is applied to the encoders.
    pub bitrate_interval: Duration,
    /// Lower the camera's resolution before its frame rate when the bitrate falls
    /// ([`crate::media::ladder`]); `None` keeps the configured size whatever the rate.
    pub camera_ladder: Option<LadderConfig>,
    /// Which kiosk slots send from the start.
    pub camera_sending: bool,
    pub document_sending: bool,
    pub microphone_sending: bool,
    /// Decode the clerk's video in the agent ([`ClerkMedia::video_frames`]). Off when the
    /// kiosk screen receives the clerk's RTP as it arrived and decodes it itself.
    pub decode_clerk_video: bool,
    /// Hand the clerk's video RTP and the camera's encoded frames to the kiosk screen
    /// ([`ClerkMedia::video_rtp`], [`ClerkMedia::camera_frames`]).
    pub screen_taps: bool,
    /// Clerk video RTP packets held for the screen before the oldest is dropped.
    pub screen_rtp_queue: usize,
    /// Encoded camera frames held for the screen's self-view before the oldest is dropped.
    pub screen_camera_queue: usize,
}

impl MediaLinkConfig {
    pub fn new(sources: MediaSources, peer: PeerConfig) -> MediaLinkConfig {
        let mut camera = VideoSendConfig::camera(sources.camera);
        camera.codec = peer.preferred_video_codec;
        let mut document = VideoSendConfig::document_preview(sources.document_camera);
        document.codec = peer.preferred_video_codec;
        camera.bitrate_bps = camera.bitrate_bps.min(peer.bitrate.camera_max_bps);
        document.bitrate_bps = document.bitrate_bps.min(peer.bitrate.document_max_bps);
        MediaLinkConfig {
            microphone: AudioSendConfig::new(sources.microphone, None),
            speaker: sources.speaker,
            camera,
            document,
            peer,
            clerk_video_latency: Duration::from_millis(60),
            clerk_audio_latency: Duration::from_millis(60),
            clerk_video_queue: 4,
            bitrate_interval: Duration::from_millis(500),
            camera_ladder: Some(LadderConfig::default()),
            camera_sending: true,
            document_sending: false,
            microphone_sending: true,
            decode_clerk_video: true,
            screen_taps: false,
            screen_rtp_queue: 512,
            screen_camera_queue: 4,
        }
    }
}

/// What the link hands to the kiosk screen.
pub struct ClerkMedia {
    /// The clerk's video, decoded (I420), newest-first under pressure. Stays empty when
    /// `decode_clerk_video` is off.
    pub video_frames: FrameReceiver<DecodedFrame>,
    /// With `screen_taps`: the clerk's video RTP exactly as the relay sent it (decrypted),
    /// oldest dropped under pressure.
    pub video_rtp: Option<FrameReceiver<ClerkVideoPacket>>,
    /// With `screen_taps`: the camera's encoded frames (while it runs), for the self-view.
    pub camera_frames: Option<FrameReceiver<CameraFrame>>,
}

/// One RTP packet of the clerk's video, as received from the relay.
#[derive(Debug, Clone)]
pub struct ClerkVideoPacket {
    pub codec: VideoCodec,
    pub packet: rtc::rtp::Packet,
}

/// One encoded frame of the kiosk's camera.
#[derive(Debug, Clone)]
pub struct CameraFrame {
    pub codec: VideoCodec,
    pub frame: EncodedFrame,
}

/// The peer of the current generation, and what its answer negotiated.
#[derive(Clone)]
struct Current {
    generation: u64,
    peer: Arc<KioskPeer>,
    negotiated: Option<Negotiated>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Negotiated {
    camera: VideoCodec,
    document: VideoCodec,
}

struct VideoSlot {
    pipeline: VideoSendPipeline,
    pump: JoinHandle<()>,
}

struct Inner {
    config: StdMutex<MediaLinkConfig>,
    current: watch::Sender<Current>,
    state: watch::Sender<ConnectionState>,
    estimate: watch::Sender<Option<f64>>,
    camera: StdMutex<VideoSlot>,
    document: StdMutex<VideoSlot>,
    microphone: AudioSendPipeline,
    microphone_pump: JoinHandle<()>,
    playback: RtpAudioPlayback,
    clerk_video_out: FrameSender<DecodedFrame>,
    clerk_video_stats: StdMutex<Option<Arc<StdMutex<Option<RtpVideoReceiver>>>>>,
    clerk_rtp_out: Option<FrameSender<ClerkVideoPacket>>,
    camera_tap: Option<FrameSender<CameraFrame>>,
    /// Sends PLIs for the clerk's current video track: (requester, media SSRC).
    clerk_keyframes: StdMutex<Option<(RemoteTrackRequester, u32)>>,
    sending: [AtomicBool; 3],
    frames_not_sent: Arc<AtomicU64>,
    reconnects: AtomicU64,
    generation_tasks: Mutex<Vec<JoinHandle<()>>>,
    closed: AtomicBool,
}

/// The kiosk's live media to the relay. See the module docs of [`super`].
pub struct MediaLink {
    inner: Arc<Inner>,
}

impl MediaLink {
    /// The gain of the clerk's voice on the kiosk's speaker (1.0: as decoded); the playback
    /// pipeline lives as long as the link, across peer connections.
    pub fn set_speaker_volume(&self, gain: f64) -> Result<(), MediaError> {
        self.inner.playback.set_volume(gain)
    }

    /// The gain the playback pipeline's `volume` element has now.
    pub fn speaker_volume(&self) -> f64 {
        self.inner.playback.volume()
    }
}

impl MediaLink {
    /// Builds every pipeline and the first peer connection. Capture starts for the slots
    /// configured as sending; nothing goes on the wire before an answer is applied.
    pub async fn start(config: MediaLinkConfig) -> Result<(MediaLink, ClerkMedia), RtcError> {
        config.peer.validate()?;
        // The speaker pipeline first: the microphone's echo canceller looks its probe up by
        // name when it starts.
        let playback = RtpAudioPlayback::new(
            &config.speaker,
            OPUS_PAYLOAD_TYPE,
            config.clerk_audio_latency,
        )?;
        playback.start()?;
        let mut mic_config = config.microphone.clone();
        if mic_config.echo_probe.is_none() {
            mic_config.echo_probe = Some(playback.echo_probe_name().to_owned());
        }
        let mut microphone = AudioSendPipeline::new(mic_config)?;
        let mic_frames = microphone
            .take_frames()
            .ok_or_else(|| RtcError::Config("microphone frames already taken".into()))?;

        let peer = Arc::new(KioskPeer::new(config.peer.clone()).await?);
        let (current_tx, _) = watch::channel(Current {
            generation: 0,
            peer: Arc::clone(&peer),
            negotiated: None,
        });
        let (state_tx, _) = watch::channel(ConnectionState::New);
        let (estimate_tx, _) = watch::channel(None);
        let frames_not_sent = Arc::new(AtomicU64::new(0));
        let sending = [
            AtomicBool::new(config.camera_sending),
            AtomicBool::new(config.document_sending),
            AtomicBool::new(config.microphone_sending),
        ];

        let (clerk_rtp_out, video_rtp) = if config.screen_taps {
            let (tx, rx) = frame_channel(config.screen_rtp_queue);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let (camera_tap, camera_frames) = if config.screen_taps {
            let (tx, rx) = frame_channel(config.screen_camera_queue);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let camera = build_video_slot(
            Slot::KioskCamera,
            config.camera.clone(),
            current_tx.subscribe(),
            Arc::clone(&frames_not_sent),
            camera_tap.clone(),
        )?;
        let document = build_video_slot(
            Slot::KioskDocument,
            config.document.clone(),
            current_tx.subscribe(),
            Arc::clone(&frames_not_sent),
            None,
        )?;
        let microphone_pump = tokio::spawn(pump(
            Slot::KioskMicrophone,
            StreamCodec::Opus,
            mic_frames,
            current_tx.subscribe(),
            Arc::clone(&frames_not_sent),
            None,
        ));
        if config.camera_sending {
            camera.pipeline.start()?;
        }
        if config.document_sending {
            document.pipeline.start()?;
        }
        if config.microphone_sending {
            microphone.start()?;
        }

        let (clerk_tx, clerk_rx) = frame_channel(config.clerk_video_queue);
        let inner = Arc::new(Inner {
            config: StdMutex::new(config),
            current: current_tx,
            state: state_tx,
            estimate: estimate_tx,
            camera: StdMutex::new(camera),
            document: StdMutex::new(document),
            microphone,
            microphone_pump,
            playback,
            clerk_video_out: clerk_tx,
            clerk_video_stats: StdMutex::new(None),
            clerk_rtp_out,
            camera_tap,
            clerk_keyframes: StdMutex::new(None),
            sending,
            frames_not_sent,
            reconnects: AtomicU64::new(0),
            generation_tasks: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        });
        let tasks = spawn_generation(&inner, peer).await;
        *inner.generation_tasks.lock().await = tasks;
        Ok((
            MediaLink { inner },
            ClerkMedia {
                video_frames: clerk_rx,
                video_rtp,
                camera_frames,
            },
        ))
    }

    /// The SDP offer for the relay, with every local candidate in it.
    pub async fn offer(&self) -> Result<String, RtcError> {
        self.check_open()?;
        let peer = self.inner.current.borrow().peer.clone();
        peer.create_offer().await
    }

    /// Applies the relay's answer. Media flows once ICE and DTLS complete (watch `state()`).
    pub async fn apply_answer(&self, sdp: &str) -> Result<(), RtcError> {
        self.check_open()?;
        let current = self.inner.current.borrow().clone();
        let camera = current.peer.apply_answer(sdp).await?;
        let document = current.peer.send_video_codec(Slot::KioskDocument).await?;
        self.ensure_codec(Slot::KioskCamera, camera)?;
        self.ensure_codec(Slot::KioskDocument, document)?;
        self.inner.current.send_if_modified(|c| {
            if c.generation != current.generation {
                return false;
            }
            c.negotiated = Some(Negotiated { camera, document });
            true
        });
        // The receiver starts decoding at a keyframe, not whenever the next one is due.
        for slot in [Slot::KioskCamera, Slot::KioskDocument] {
            if self.is_sending(slot) {
                self.force_keyframe(slot)?;
            }
        }
        Ok(())
    }

    /// Starts or stops sending one kiosk slot. Stopping pauses capture (the device stays
    /// open); starting resumes it and, for video, begins with a keyframe.
    pub fn set_sending(&self, slot: Slot, sending: bool) -> Result<(), RtcError> {
        self.check_open()?;
        let index = send_index(slot)?;
        self.inner.sending[index].store(sending, Ordering::Release);
        match slot {
            Slot::KioskMicrophone => {
                if sending {
                    self.inner.microphone.start()?;
                } else {
                    self.inner.microphone.pause()?;
                }
            }
            _ => {
                let video = self.video(slot)?;
                let video = video.lock().unwrap_or_else(PoisonError::into_inner);
                if sending {
                    video.pipeline.start()?;
                    video.pipeline.force_keyframe();
                } else {
                    video.pipeline.pause()?;
                }
            }
        }
        Ok(())
    }

    pub fn is_sending(&self, slot: Slot) -> bool {
        send_index(slot)
            .map(|i| self.inner.sending[i].load(Ordering::Acquire))
            .unwrap_or(false)
    }

    /// Makes the slot's encoder emit a keyframe now. `Ok(false)` when coalesced with one
    /// forced moments ago.
    pub fn force_keyframe(&self, slot: Slot) -> Result<bool, RtcError> {
        Ok(self.encoder(slot)?.force_keyframe())
    }

    /// The encoder handle of a video slot (bitrate, keyframes, counters).
    pub fn encoder(&self, slot: Slot) -> Result<VideoEncoderControl, RtcError> {
        let video = self.video(slot)?;
        let video = video.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(video.pipeline.control())
    }

    /// Sets (or clears) the TURN server; it is used from the next `restart_ice` or
    /// `reconnect`.
    pub async fn set_turn(&self, turn: Option<TurnServer>) -> Result<(), RtcError> {
        self.check_open()?;
        if let Some(turn) = &turn {
            turn.validate()?;
        }
        {
            let mut config = self
                .inner
                .config
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            config.peer.turn = turn.clone();
            if config.peer.turn.is_none() {
                config.peer.relay_only = false;
            }
        }
        let peer = self.inner.current.borrow().peer.clone();
        match (peer.set_turn(turn.clone()).await, turn) {
            (Ok(()), _) => Ok(()),
            // Clearing the only ICE server cannot be applied to a live connection; the
            // stored config carries it into the next reconnect.
            (Err(_), None) => Ok(()),
            (Err(err), Some(_)) => Err(err),
        }
    }

    /// Restarts ICE on the current connection; returns the offer for the relay to answer.
    pub async fn restart_ice(&self) -> Result<String, RtcError> {
        self.check_open()?;
        let peer = self.inner.current.borrow().peer.clone();
        peer.restart_ice().await
    }

    /// Replaces the peer connection with a new one (new DTLS, new ICE, same pipelines);
    /// returns its offer for the relay to answer.
    pub async fn reconnect(&self) -> Result<String, RtcError> {
        self.check_open()?;
        let peer_config = self
            .inner
            .config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .peer
            .clone();
        let peer = Arc::new(KioskPeer::new(peer_config).await?);
        let mut tasks = self.inner.generation_tasks.lock().await;
        for task in tasks.drain(..) {
            task.abort();
        }
        let old = self.inner.current.borrow().peer.clone();
        self.inner.current.send_modify(|c| {
            c.generation += 1;
            c.peer = Arc::clone(&peer);
            c.negotiated = None;
        });
        if let Err(err) = old.close().await {
            tracing::debug!(%err, "closing the replaced peer connection");
        }
        self.inner.reconnects.fetch_add(1, Ordering::Relaxed);
        *tasks = spawn_generation(&self.inner, Arc::clone(&peer)).await;
        drop(tasks);
        peer.create_offer().await
    }

    /// Connection state of the current peer; survives reconnects.
    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.inner.state.subscribe()
    }

    /// The congestion controller's latest estimate for the whole connection, in bit/s, as
    /// applied to the encoders (`None` until transport-wide feedback has produced one).
    pub fn estimate(&self) -> watch::Receiver<Option<f64>> {
        self.inner.estimate.subscribe()
    }

    /// Asks the relay for a keyframe of the clerk's video (a PLI on the current track), for
    /// example because the kiosk screen joined or lost packets. `Ok(false)` when no clerk
    /// video has arrived yet.
    pub async fn request_clerk_keyframe(&self) -> Result<bool, RtcError> {
        self.check_open()?;
        let current = self
            .inner
            .clerk_keyframes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match current {
            Some((requester, ssrc)) => requester.request_keyframe(ssrc).await.map(|()| true),
            None => Ok(false),
        }
    }

    /// Audio buffers played to the speaker so far; changes with every buffer.
    pub fn clerk_audio_played(&self) -> watch::Receiver<u64> {
        self.inner.playback.played()
    }

    /// `Err` if a pipeline has failed (camera gone, microphone gone, plugin error).
    pub fn health(&self) -> Result<(), RtcError> {
        for slot in [Slot::KioskCamera, Slot::KioskDocument] {
            let video = self.video(slot)?;
            video
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pipeline
                .check()?;
        }
        self.inner.microphone.check()?;
        self.inner.playback.check()?;
        Ok(())
    }

    pub async fn stats(&self) -> LinkStats {
        let peer = self.inner.current.borrow().peer.clone();
        let camera = self.encoder_stats(Slot::KioskCamera);
        let document = self.encoder_stats(Slot::KioskDocument);
        let clerk_video: Option<VideoReceiveStats> = self
            .inner
            .clerk_video_stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .and_then(|r| {
                r.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_ref()
                    .map(RtpVideoReceiver::stats)
            });
        let clerk_audio: AudioPlaybackStats = self.inner.playback.stats();
        LinkStats {
            peer: peer.stats().await,
            camera,
            document,
            microphone: self.inner.microphone.stats(),
            clerk_video,
            clerk_audio: Some(clerk_audio),
            frames_not_sent: self.inner.frames_not_sent.load(Ordering::Relaxed),
            reconnects: self.inner.reconnects.load(Ordering::Relaxed),
        }
    }

    /// Closes the peer connection and stops every pipeline and task.
    pub async fn close(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        for task in self.inner.generation_tasks.lock().await.drain(..) {
            task.abort();
        }
        let peer = self.inner.current.borrow().peer.clone();
        if let Err(err) = peer.close().await {
            tracing::debug!(%err, "closing the peer connection");
        }
        self.inner.microphone_pump.abort();
        for slot in [Slot::KioskCamera, Slot::KioskDocument] {
            if let Ok(video) = self.video(slot) {
                let video = video.lock().unwrap_or_else(PoisonError::into_inner);
                video.pump.abort();
                let _ = video.pipeline.pause();
            }
        }
        let _ = self.inner.microphone.pause();
    }

    fn encoder_stats(&self, slot: Slot) -> crate::media::VideoSendStats {
        self.encoder(slot).map(|e| e.stats()).unwrap_or_default()
    }

    fn video(&self, slot: Slot) -> Result<&StdMutex<VideoSlot>, RtcError> {
        match slot {
            Slot::KioskCamera => Ok(&self.inner.camera),
            Slot::KioskDocument => Ok(&self.inner.document),
            other => Err(RtcError::Config(format!(
                "{other:?} is not a kiosk video slot"
            ))),
        }
    }

    fn check_open(&self) -> Result<(), RtcError> {
        if self.inner.closed.load(Ordering::Acquire) {
            Err(RtcError::Closed)
        } else {
            Ok(())
        }
    }

    /// Rebuilds a video pipeline when the answer chose the other codec.
    fn ensure_codec(&self, slot: Slot, codec: VideoCodec) -> Result<(), RtcError> {
        let video = self.video(slot)?;
        let mut video = video.lock().unwrap_or_else(PoisonError::into_inner);
        if video.pipeline.config().codec == codec {
            return Ok(());
        }
        tracing::info!(
            ?slot,
            ?codec,
            "answer chose the alternative codec; rebuilding encoder"
        );
        let mut config = video.pipeline.config().clone();
        config.codec = codec;
        config.bitrate_bps = video.pipeline.control().bitrate();
        let tap = match slot {
            Slot::KioskCamera => self.inner.camera_tap.clone(),
            _ => None,
        };
        let rebuilt = build_video_slot(
            slot,
            config,
            self.inner.current.subscribe(),
            Arc::clone(&self.inner.frames_not_sent),
            tap,
        )?;
        video.pump.abort();
        let _ = video.pipeline.pause();
        if self.is_sending(slot) {
            rebuilt.pipeline.start()?;
        }
        *video = rebuilt;
        Ok(())
    }
}

impl Drop for MediaLink {
    fn drop(&mut self) {
        self.inner.microphone_pump.abort();
        for video in [&self.inner.camera, &self.inner.document] {
            video
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pump
                .abort();
        }
        if let Ok(mut tasks) = self.inner.generation_tasks.try_lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
    }
}

fn send_index(slot: Slot) -> Result<usize, RtcError> {
    match slot {
        Slot::KioskCamera => Ok(0),
        Slot::KioskDocument => Ok(1),
        Slot::KioskMicrophone => Ok(2),
        other => Err(RtcError::Config(format!(
            "{other:?} is not a kiosk send slot"
        ))),
    }
}

fn build_video_slot(
    slot: Slot,
    config: VideoSendConfig,
    current: watch::Receiver<Current>,
    frames_not_sent: Arc<AtomicU64>,
    tap: Option<FrameSender<CameraFrame>>,
) -> Result<VideoSlot, MediaError> {
    let codec = config.codec;
    let mut pipeline = VideoSendPipeline::new(config)?;
    let frames = pipeline
        .take_frames()
        .ok_or_else(|| MediaError::Config("video frames already taken".into()))?;
    let pump = tokio::spawn(pump(
        slot,
        StreamCodec::Video(codec),
        frames,
        current,
        frames_not_sent,
        tap,
    ));
    Ok(VideoSlot { pipeline, pump })
}

/// Moves one pipeline's encoded frames into the current peer's send track (and, for the
/// camera, a copy to the kiosk screen's self-view: the same bytes, not re-encoded).
async fn pump(
    slot: Slot,
    codec: StreamCodec,
    mut frames: FrameReceiver<EncodedFrame>,
    mut current: watch::Receiver<Current>,
    not_sent: Arc<AtomicU64>,
    tap: Option<FrameSender<CameraFrame>>,
) {
    let payload_type = match codec {
        StreamCodec::Video(video) => codecs::video_payload_type(video),
        StreamCodec::Opus => OPUS_PAYLOAD_TYPE,
    };
    let mut packetizer: Option<(u64, RtpPacketizer)> = None;
    while let Some(frame) = frames.recv().await {
        if let (Some(tap), StreamCodec::Video(video)) = (&tap, codec) {
            // Drops (a slow screen) are counted by the channel; the screen link recovers
            // with a keyframe request of its own.
            let _ = tap.push(CameraFrame {
                codec: video,
                frame: frame.clone(),
            });
        }
        let now = current.borrow_and_update().clone();
        let negotiated_ok = match (now.negotiated, codec, slot) {
            (None, _, _) => false,
            (Some(n), StreamCodec::Video(c), Slot::KioskCamera) => n.camera == c,
            (Some(n), StreamCodec::Video(c), Slot::KioskDocument) => n.document == c,
            (Some(_), StreamCodec::Opus, _) => true,
            _ => false,
        };
        // Before the transport is up webrtc-rs would refuse (and log) every packet.
        let connected = *now.peer.state().borrow() == ConnectionState::Connected;
        if !negotiated_ok || !connected {
            not_sent.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let needs_new = packetizer
            .as_ref()
            .is_none_or(|(generation, _)| *generation != now.generation);
        if needs_new {
            let Ok(ssrc) = now.peer.ssrc(slot) else {
                not_sent.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            packetizer = Some((
                now.generation,
                RtpPacketizer::new(codec, ssrc, payload_type, rand::random(), rand::random()),
            ));
        }
        let Some((_, packetizer)) = packetizer.as_mut() else {
            continue;
        };
        let packets = match packetizer.packetize(&frame) {
            Ok(packets) => packets,
            Err(err) => {
                tracing::debug!(?slot, %err, "frame could not be packetized");
                not_sent.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        for packet in packets {
            if let Err(err) = now.peer.write_rtp(slot, packet).await {
                tracing::debug!(?slot, %err, "RTP not written");
                not_sent.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
    }
}
