//! One generation of the link's WebRTC peer: the tasks that feed its send tracks from the
//! encoders, forward keyframe requests, and receive the clerk's audio and video. A reconnect
//! starts a new generation on a new peer and ends the old one's tasks.

use super::playback::{play_clerk_audio, show_clerk_video};
#[allow(clippy::wildcard_imports)]
use super::*;

/// While more than this share of the packets sent is asked for again, the camera's picture
/// does not step up (see [`crate::media::ladder::ResolutionLadder::update_holding`]).
const LOSSY_REPAIR_SHARE: f64 = 0.03;

pub(super) async fn spawn_generation(
    inner: &Arc<Inner>,
    peer: Arc<KioskPeer>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();

    // Connection state, re-published on the link's own channel so it outlives the peer.
    // On (re)connecting, each sending video slot starts with a keyframe: frames encoded
    // before the transport was up were not sent.
    {
        let mut state = peer.state();
        let out = inner.state.clone();
        let weak = Arc::downgrade(inner);
        tasks.push(tokio::spawn(async move {
            loop {
                let value = *state.borrow_and_update();
                let previous = out.send_replace(value);
                if value == ConnectionState::Connected
                    && previous != ConnectionState::Connected
                    && let Some(inner) = weak.upgrade()
                {
                    for (index, video) in [(0, &inner.camera), (1, &inner.document)] {
                        if inner.sending[index].load(Ordering::Acquire) {
                            video
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .pipeline
                                .force_keyframe();
                        }
                    }
                }
                if state.changed().await.is_err() {
                    break;
                }
            }
        }));
    }

    // PLI/FIR from the relay → a keyframe from the right encoder.
    if let Some(mut requests) = peer.keyframe_requests().await {
        let weak = Arc::downgrade(inner);
        tasks.push(tokio::spawn(async move {
            while let Some(request) = requests.recv().await {
                let Some(inner) = weak.upgrade() else { break };
                let video = match request.slot {
                    Slot::KioskCamera => &inner.camera,
                    Slot::KioskDocument => &inner.document,
                    _ => continue,
                };
                let control = video
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pipeline
                    .control();
                control.force_keyframe();
            }
        }));
    }

    // The congestion-control estimate → encoder bitrates.
    {
        let weak = Arc::downgrade(inner);
        let peer = Arc::clone(&peer);
        tasks.push(tokio::spawn(async move {
            let (interval, ladder, capture) = weak
                .upgrade()
                .map(|i| {
                    let config = i.config.lock().unwrap_or_else(PoisonError::into_inner);
                    let capture = (config.camera.width, config.camera.height);
                    let top = Rung::fitting(capture.1);
                    (
                        config.bitrate_interval,
                        config.camera_ladder.map(|c| ResolutionLadder::new(c, top)),
                        capture,
                    )
                })
                .unwrap_or((Duration::from_millis(500), None, (0, 0)));
            // The first estimate of a connection places the ladder at once; later ones move
            // it with hysteresis.
            let mut ladder = ladder.map(|l| (l, false));
            let mut last_repair = (0u64, 0u64);
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let stats = peer.stats().await;
                let (estimate, rtt) = (stats.target_bitrate_bps, stats.round_trip_time);
                // Share of what left the pacer that the relay asked for again, this tick.
                let (nacked, paced) = (stats.send.packets_nacked, stats.send.packets_paced);
                let repair_share = nacked.saturating_sub(last_repair.0) as f64
                    / paced.saturating_sub(last_repair.1).max(1) as f64;
                last_repair = (nacked, paced);
                let lossy = repair_share > LOSSY_REPAIR_SHARE;
                if let Some(rtt) = rtt {
                    for video in [&inner.camera, &inner.document] {
                        video
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .pipeline
                            .control()
                            .follow_round_trip(rtt);
                    }
                }
                let Some(estimate) = estimate else {
                    continue;
                };
                inner.estimate.send_replace(Some(estimate));
                let limits = inner
                    .config
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .peer
                    .bitrate;
                let sending = |i: usize| inner.sending[i].load(Ordering::Acquire);
                let allocation =
                    allocate_bitrate(estimate, &limits, sending(0), sending(1), sending(2));
                if let Some((ladder, placed)) = ladder.as_mut() {
                    let rung = if *placed {
                        ladder.update_holding(Instant::now(), allocation.camera_bps, lossy)
                    } else {
                        *placed = true;
                        Some(ladder.reset_to(allocation.camera_bps))
                    };
                    if let Some(rung) = rung {
                        let (width, height) = if rung == ladder.top() {
                            capture
                        } else {
                            rung.scaled(capture.0, capture.1)
                        };
                        let control = inner
                            .camera
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .pipeline
                            .control();
                        if control.resolution() != (width, height) {
                            tracing::info!(
                                ?rung,
                                camera_bps = allocation.camera_bps,
                                "camera size"
                            );
                            control.set_resolution(width, height);
                        }
                    }
                }
                for (video, target) in [
                    (&inner.camera, allocation.camera_bps),
                    (&inner.document, allocation.document_bps),
                ] {
                    let control = video
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .pipeline
                        .control();
                    if worth_changing(control.bitrate(), target) {
                        control.set_bitrate(target);
                    }
                }
            }
        }));
    }

    // Tracks the relay sends → speaker and screen.
    {
        let weak = Arc::downgrade(inner);
        let peer = Arc::clone(&peer);
        tasks.push(tokio::spawn(async move {
            while let Some(track) = peer.next_remote_track().await {
                let Some(inner) = weak.upgrade() else { break };
                match track.slot {
                    Slot::ClerkMicrophone => {
                        tokio::spawn(play_clerk_audio(Arc::downgrade(&inner), track));
                    }
                    Slot::ClerkCamera => {
                        let holder = Arc::new(StdMutex::new(None));
                        *inner
                            .clerk_video_stats
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&holder));
                        let (latency, decode) = {
                            let config =
                                inner.config.lock().unwrap_or_else(PoisonError::into_inner);
                            (config.clerk_video_latency, config.decode_clerk_video)
                        };
                        tokio::spawn(show_clerk_video(
                            track,
                            Arc::downgrade(&inner),
                            holder,
                            latency,
                            decode,
                            inner.clerk_video_out.clone(),
                            inner.clerk_rtp_out.clone(),
                        ));
                    }
                    _ => {}
                }
            }
        }));
    }
    tasks
}
