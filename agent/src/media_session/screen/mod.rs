//! The clerk's video on the kiosk screen, without transcoding.
//!
//! The kiosk page (served by the agent on loopback) opens a second WebRTC connection, to the
//! agent itself: [`peer::ScreenPeer`]. Over it the agent forwards the clerk's video exactly as
//! the relay sent it — only SSRC, payload type, sequence and timestamp bases are rewritten
//! ([`rewrite`]) — and the kiosk camera's own encoded frames for the small self-view,
//! packetized a second time. The page's browser decodes both (hardware decoding where the
//! browser has it). The page's keyframe requests go where a keyframe can come from: a PLI
//! to the relay for the clerk's video, a forced keyframe from the local encoder for the
//! self-view. The clerk's *audio* does not go to the page: it plays through the agent's
//! GStreamer playback, whose echo probe feeds the microphone's echo canceller.
//!
//! Why this and not the alternatives: decoding in the agent and handing raw frames to the
//! page (as JPEG, or as raw pixels over a WebSocket) costs a decode *and* an encode or a
//! 40 MB/s copy per 720p30 stream on a two-core kiosk; a browser-native stream (MSE) would
//! need the VP8/H.264 frames remuxed into WebM or fMP4 with seconds of buffering. WebRTC is
//! what the browser already does at call latency. Its cost: one extra DTLS/SRTP leg on
//! loopback (encrypt + decrypt ≈ 2–3 µs per packet, ~300 packets/s), and the browser decoding
//! the self-view at the camera's full resolution although it shows it small.
//!
//! What it does not do: more than one page at a time (a new offer replaces the previous
//! connection), audio, or any decoding in the agent.

pub mod peer;
pub mod rewrite;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::{Duration, Instant};

use protocol::media::Slot;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use self::peer::{ScreenAnswer, ScreenPeer, ScreenTrack};
use self::rewrite::{Rewrite, RtpRewriter};
use crate::link::rtc::{
    CameraFrame, ClerkMedia, ClerkVideoPacket, ConnectionState, MediaLink, RtpPacketizer,
    StreamCodec,
};
use crate::media::{FrameReceiver, VideoCodec};

/// Longest wait for one packet to be queued on the screen connection.
const WRITE_LIMIT: Duration = Duration::from_millis(500);
/// Longest wait for the answer's candidates (loopback host candidates: immediate).
const GATHER_LIMIT: Duration = Duration::from_secs(2);
/// Longest wait for a new screen connection to come up before its first keyframes are asked.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, thiserror::Error)]
pub enum ScreenError {
    #[error("the page's offer is unusable: {0}")]
    BadOffer(String),
    #[error("webrtc failed while {during}: {message}")]
    WebRtc {
        during: &'static str,
        message: String,
    },
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    #[error("the kiosk screen's video is switched off")]
    Disabled,
}

/// Counters of the screen link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ScreenCounters {
    pub connections: u64,
    pub clerk_packets_forwarded: u64,
    /// Clerk packets with no connected page, or a codec the page did not accept.
    pub clerk_packets_not_forwarded: u64,
    /// Clerk packets the link dropped because the forwarder was behind.
    pub clerk_packets_dropped: u64,
    pub self_view_frames_forwarded: u64,
    pub self_view_frames_not_forwarded: u64,
    pub self_view_frames_dropped: u64,
    pub keyframe_requests: u64,
    pub write_failures: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    clerk_forwarded: AtomicU64,
    clerk_not_forwarded: AtomicU64,
    clerk_dropped: AtomicU64,
    self_forwarded: AtomicU64,
    self_not_forwarded: AtomicU64,
    self_dropped: AtomicU64,
    keyframe_requests: AtomicU64,
}

/// A screen connection and its generation (so forwarders notice a replacement).
#[derive(Clone)]
struct Current {
    generation: u64,
    peer: Option<Arc<ScreenPeer>>,
}

struct Inner {
    enabled: bool,
    media: StdMutex<Option<Arc<MediaLink>>>,
    current: watch::Sender<Current>,
    offers: tokio::sync::Mutex<()>,
    keyframes: mpsc::Sender<ScreenTrack>,
    counters: Counters,
    tasks: StdMutex<Vec<JoinHandle<()>>>,
}

/// The screen link service: one per agent. Cheap to clone.
#[derive(Clone)]
pub struct ScreenVideo {
    inner: Arc<Inner>,
}

impl ScreenVideo {
    /// `enabled: false` refuses every page offer (media switched off, or `screen_video` off).
    pub fn new(enabled: bool) -> ScreenVideo {
        let (keyframes_tx, keyframes_rx) = mpsc::channel(4);
        let (current, _) = watch::channel(Current {
            generation: 0,
            peer: None,
        });
        let inner = Arc::new(Inner {
            enabled,
            media: StdMutex::new(None),
            current,
            offers: tokio::sync::Mutex::new(()),
            keyframes: keyframes_tx,
            counters: Counters::default(),
            tasks: StdMutex::new(Vec::new()),
        });
        let task = tokio::spawn(serve_keyframe_requests(
            Arc::downgrade(&inner),
            keyframes_rx,
        ));
        inner
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(task);
        ScreenVideo { inner }
    }

    /// Connects a started media link: its clerk video RTP and camera frames are forwarded to
    /// whichever page is connected, from now on.
    pub fn attach(&self, media: Arc<MediaLink>, clerk: ClerkMedia) {
        *self
            .inner
            .media
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(media);
        let mut tasks = self
            .inner
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(rtp) = clerk.video_rtp {
            tasks.push(tokio::spawn(forward_clerk(
                Arc::downgrade(&self.inner),
                rtp,
            )));
        }
        if let Some(frames) = clerk.camera_frames {
            tasks.push(tokio::spawn(forward_self_view(
                Arc::downgrade(&self.inner),
                frames,
            )));
        }
    }

    /// Answers a page's offer; the new connection replaces any earlier one.
    pub async fn offer(&self, sdp: &str) -> Result<ScreenAnswer, ScreenError> {
        if !self.inner.enabled {
            return Err(ScreenError::Disabled);
        }
        // One at a time, so two racing pages cannot leave two live connections.
        let _one = self.inner.offers.lock().await;
        let (peer, answer) =
            ScreenPeer::answer(sdp, GATHER_LIMIT, self.inner.keyframes.clone()).await?;
        let peer = Arc::new(peer);
        let generation = self.inner.current.borrow().generation + 1;
        let previous = self.inner.current.send_replace(Current {
            generation,
            peer: Some(Arc::clone(&peer)),
        });
        if let Some(old) = previous.peer {
            old.close().await;
        }
        self.inner
            .counters
            .connections
            .fetch_add(1, Ordering::Relaxed);
        // Once the page is connected, both pictures start with a keyframe rather than
        // whenever the browser gets round to asking.
        let keyframes = self.inner.keyframes.clone();
        let mut state = peer.state();
        tokio::spawn(async move {
            let connected = tokio::time::timeout(
                CONNECT_LIMIT,
                state.wait_for(|s| *s == ConnectionState::Connected),
            )
            .await;
            if matches!(connected, Ok(Ok(_))) {
                let _ = keyframes.try_send(ScreenTrack::Clerk);
                let _ = keyframes.try_send(ScreenTrack::SelfView);
            }
        });
        Ok(answer)
    }

    /// Whether a page is connected right now.
    pub fn page_connected(&self) -> bool {
        self.inner
            .current
            .borrow()
            .peer
            .as_ref()
            .is_some_and(|p| p.is_connected())
    }

    pub fn counters(&self) -> ScreenCounters {
        let c = &self.inner.counters;
        let write_failures = self
            .inner
            .current
            .borrow()
            .peer
            .as_ref()
            .map_or(0, |p| p.write_failures.load(Ordering::Relaxed));
        ScreenCounters {
            connections: c.connections.load(Ordering::Relaxed),
            clerk_packets_forwarded: c.clerk_forwarded.load(Ordering::Relaxed),
            clerk_packets_not_forwarded: c.clerk_not_forwarded.load(Ordering::Relaxed),
            clerk_packets_dropped: c.clerk_dropped.load(Ordering::Relaxed),
            self_view_frames_forwarded: c.self_forwarded.load(Ordering::Relaxed),
            self_view_frames_not_forwarded: c.self_not_forwarded.load(Ordering::Relaxed),
            self_view_frames_dropped: c.self_dropped.load(Ordering::Relaxed),
            keyframe_requests: c.keyframe_requests.load(Ordering::Relaxed),
            write_failures,
        }
    }

    /// Closes the page's connection and stops forwarding.
    pub async fn close(&self) {
        for task in self
            .inner
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
        let previous = self.inner.current.send_replace(Current {
            generation: u64::MAX,
            peer: None,
        });
        if let Some(peer) = previous.peer {
            peer.close().await;
        }
    }
}

/// Page keyframe requests → a PLI to the relay (clerk) or a forced keyframe (self-view).
async fn serve_keyframe_requests(
    inner: std::sync::Weak<Inner>,
    mut requests: mpsc::Receiver<ScreenTrack>,
) {
    while let Some(which) = requests.recv().await {
        let Some(inner) = inner.upgrade() else { break };
        inner
            .counters
            .keyframe_requests
            .fetch_add(1, Ordering::Relaxed);
        let media = inner
            .media
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        drop(inner);
        let Some(media) = media else { continue };
        let result = match which {
            ScreenTrack::Clerk => media.request_clerk_keyframe().await.map(|_| ()),
            ScreenTrack::SelfView => media.force_keyframe(Slot::KioskCamera).map(|_| ()),
        };
        if let Err(err) = result {
            tracing::debug!(?which, %err, "keyframe for the screen not requested");
        }
    }
}

async fn forward_clerk(
    inner: std::sync::Weak<Inner>,
    mut packets: FrameReceiver<ClerkVideoPacket>,
) {
    let mut current = match inner.upgrade() {
        Some(inner) => inner.current.subscribe(),
        None => return,
    };
    let mut rewriter: Option<(u64, RtpRewriter)> = None;
    let mut dropped_seen = 0;
    while let Some(ClerkVideoPacket { codec, mut packet }) = packets.recv().await {
        let Some(inner) = inner.upgrade() else { break };
        let counters = &inner.counters;
        let dropped = packets.dropped();
        if dropped != dropped_seen {
            counters
                .clerk_dropped
                .fetch_add(dropped - dropped_seen, Ordering::Relaxed);
            dropped_seen = dropped;
        }
        let now = current.borrow_and_update().clone();
        let Some(peer) = now.peer.filter(|p| p.is_connected()) else {
            counters.clerk_not_forwarded.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let Some(payload_type) = peer.payload_type(ScreenTrack::Clerk, codec) else {
            counters.clerk_not_forwarded.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        if rewriter.as_ref().is_none_or(|(g, _)| *g != now.generation) {
            rewriter = Some((
                now.generation,
                RtpRewriter::new(peer.ssrc(ScreenTrack::Clerk)),
            ));
        }
        let Some((_, rewriter)) = rewriter.as_mut() else {
            continue;
        };
        if rewriter.rewrite(Instant::now(), &mut packet, payload_type) == Rewrite::NewSource {
            // A new relay connection or another clerk: the page needs a keyframe to start.
            let _ = inner.keyframes.try_send(ScreenTrack::Clerk);
        }
        if peer.write(ScreenTrack::Clerk, packet, WRITE_LIMIT).await {
            counters.clerk_forwarded.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The camera's encoded frames → the page's self-view, packetized for the screen connection.
/// After a new connection, a codec change or a dropped frame, frames wait for a keyframe
/// (and one is asked for): every frame in between would reference one the page never got.
async fn forward_self_view(inner: std::sync::Weak<Inner>, mut frames: FrameReceiver<CameraFrame>) {
    let mut current = match inner.upgrade() {
        Some(inner) => inner.current.subscribe(),
        None => return,
    };
    let mut packetizer: Option<(u64, VideoCodec, RtpPacketizer)> = None;
    let mut dropped_seen = 0;
    let mut need_keyframe = true;
    while let Some(CameraFrame { codec, frame }) = frames.recv().await {
        let Some(inner) = inner.upgrade() else { break };
        let counters = &inner.counters;
        let dropped = frames.dropped();
        if dropped != dropped_seen {
            counters
                .self_dropped
                .fetch_add(dropped - dropped_seen, Ordering::Relaxed);
            dropped_seen = dropped;
            need_keyframe = true;
        }
        let now = current.borrow_and_update().clone();
        let Some(peer) = now.peer.filter(|p| p.is_connected()) else {
            counters.self_not_forwarded.fetch_add(1, Ordering::Relaxed);
            need_keyframe = true;
            continue;
        };
        let Some(payload_type) = peer.payload_type(ScreenTrack::SelfView, codec) else {
            counters.self_not_forwarded.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        if packetizer
            .as_ref()
            .is_none_or(|(g, c, _)| *g != now.generation || *c != codec)
        {
            packetizer = Some((
                now.generation,
                codec,
                RtpPacketizer::new(
                    StreamCodec::Video(codec),
                    peer.ssrc(ScreenTrack::SelfView),
                    payload_type,
                    rand::random(),
                    rand::random(),
                ),
            ));
            need_keyframe = true;
        }
        if need_keyframe && !frame.keyframe {
            counters.self_not_forwarded.fetch_add(1, Ordering::Relaxed);
            let _ = inner.keyframes.try_send(ScreenTrack::SelfView);
            continue;
        }
        need_keyframe = false;
        let Some((_, _, packetizer)) = packetizer.as_mut() else {
            continue;
        };
        let packets = match packetizer.packetize(&frame) {
            Ok(packets) => packets,
            Err(err) => {
                tracing::debug!(%err, "self-view frame not packetized");
                counters.self_not_forwarded.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let mut complete = true;
        for packet in packets {
            if !peer.write(ScreenTrack::SelfView, packet, WRITE_LIMIT).await {
                complete = false;
                break;
            }
        }
        if complete {
            counters.self_forwarded.fetch_add(1, Ordering::Relaxed);
        } else {
            need_keyframe = true;
        }
    }
}
