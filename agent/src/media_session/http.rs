//! The media session's routes on the agent's loopback API:
//!
//! - `GET /api/media`: the session's phase, whether it is sending, its counters, and the
//!   screen link's (technicians, tests, the page's "connecting…" state);
//! - `POST /api/media/screen` `{sdp}` → `{sdp, clerk_mid, self_mid}`: the kiosk page's offer
//!   for the screen link, answered by the agent; `self_mid`/`clerk_mid` say which of the
//!   page's transceivers shows which picture.
//!
//! - `PUT /api/media/volume` `{level}` (1–5, 4 = as decoded) → `{level, gain}`: the
//!   resident's volume −/＋ for the clerk's voice, set on the playback pipeline's `volume`
//!   element; `GET /api/media` shows the gain the element has (`speaker_volume`).
//!
//! Requests must name a loopback host and, when a browser sends an `Origin`, come from a
//! loopback origin: a web page elsewhere cannot open the kiosk's video.

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::MediaSession;
use super::screen::ScreenError;
use crate::link::rtc::LinkStats;
use crate::media::VideoSendStats;

/// An SDP offer from a browser is a few kilobytes.
const MAX_BODY: usize = 64 * 1024;

pub fn routes(session: MediaSession) -> Router {
    Router::new()
        .route("/api/media", get(status))
        .route("/api/media/screen", post(screen_offer))
        .route("/api/media/volume", axum::routing::put(set_volume))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(loopback_only))
        .with_state(session)
}

fn is_loopback_host(authority: &str) -> bool {
    let name = match authority.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => authority,
    };
    name == "localhost"
        || name
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn loopback_only(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host_ok = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(is_loopback_host);
    let origin_ok = match headers.get(header::ORIGIN).map(|o| o.to_str()) {
        None => true,
        Some(Ok(origin)) => origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(is_loopback_host),
        Some(Err(_)) => false,
    };
    if !(host_ok && origin_ok) {
        return (StatusCode::FORBIDDEN, "loopback only").into_response();
    }
    next.run(request).await
}

async fn status(State(session): State<MediaSession>) -> Response {
    let status = *session.status.borrow();
    let link = match session.link() {
        Some(link) => link_summary(&link.stats().await),
        None => serde_json::Value::Null,
    };
    Json(json!({
        "session": status,
        "link": link,
        "speaker_volume": session.link().map(|l| l.speaker_volume()),
        "screen": {
            "page_connected": session.screen.page_connected(),
            "counters": session.screen.counters(),
        },
    }))
    .into_response()
}

/// What a technician (or a test) needs to see of the media link.
fn link_summary(stats: &LinkStats) -> serde_json::Value {
    let video = |v: &VideoSendStats| {
        json!({
            "frames_encoded": v.frames_encoded,
            "keyframes_encoded": v.keyframes_encoded,
            "bytes_encoded": v.bytes_encoded,
            "keyframes_forced": v.keyframes_forced,
            "keyframe_requests_coalesced": v.keyframe_requests_coalesced,
            "raw_frames_dropped": v.raw_frames_dropped,
            "frames_dropped": v.frames_dropped,
            "bitrate_bps": v.bitrate_bps,
            "width": v.width,
            "height": v.height,
        })
    };
    let peer = &stats.peer;
    json!({
        "camera": video(&stats.camera),
        "document": video(&stats.document),
        "microphone": { "packets_encoded": stats.microphone.packets_encoded },
        "clerk_audio": stats.clerk_audio.map(|a| json!({
            "packets_pushed": a.packets_pushed,
            "buffers_played": a.buffers_played,
            "audible_buffers": a.audible_buffers,
            "last_peak": a.last_peak,
        })),
        "clerk_video_decoded_in_agent": stats.clerk_video.map(|v| v.frames_decoded),
        "round_trip_ms": peer.round_trip_time.map(|d| d.as_secs_f64() * 1000.0),
        "target_bitrate_bps": peer.target_bitrate_bps,
        "packets_sent": peer.outbound.iter().map(|o| o.packets_sent).sum::<u64>(),
        // Counted by the agent's own interceptors: webrtc-rs 0.21 counts neither for a
        // stream without RTX.
        "retransmitted_packets_sent": peer.send.retransmissions_sent,
        "nacks_received": peer.send.nacks_received,
        "packets_nacked": peer.send.packets_nacked,
        "plis_received": peer.send.plis_received,
        "firs_received": peer.send.firs_received,
        "path_returns": peer.send.path_returns,
        "pacer": {
            "queued_packets": peer.send.pacer_queued,
            "max_wait_ms": peer.send.pacer_max_wait_ms,
            "dropped": peer.send.pacer_dropped,
            "stale_repairs_skipped": peer.send.stale_repairs_skipped,
            "packets_paced": peer.send.packets_paced,
            "pacing_bps": peer.send.pacing_bps,
        },
        "packets_received": peer.inbound.iter().map(|i| i.packets_received).sum::<u64>(),
        "keyframe_requests_received": peer.keyframe_requests_received,
        "keyframe_requests_sent": peer.keyframe_requests_sent,
        "frames_not_sent": stats.frames_not_sent,
        "reconnects": stats.reconnects,
    })
}

/// The kiosk screen's five volume steps for the clerk's voice, quietest first. Step 4, where a
/// new resident starts, plays the clerk as decoded; never silent (the resident could not
/// hear the clerk ask them to turn it up again).
pub const VOLUME_GAINS: [f64; 5] = [0.3, 0.55, 0.8, 1.0, 1.4];

pub fn volume_gain(level: u8) -> Option<f64> {
    VOLUME_GAINS
        .get(usize::from(level).checked_sub(1)?)
        .copied()
}

#[derive(Deserialize)]
struct Volume {
    level: u8,
}

async fn set_volume(
    State(session): State<MediaSession>,
    body: Result<Json<Volume>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let bad = |message: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "bad_volume", "message": message })),
        )
            .into_response()
    };
    let Ok(Json(Volume { level })) = body else {
        return bad("音量应为 1 到 5 / the level must be 1 to 5");
    };
    let Some(gain) = volume_gain(level) else {
        return bad("音量应为 1 到 5 / the level must be 1 to 5");
    };
    let Some(link) = session.link() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({ "error": "no_media", "message": "媒体尚未就绪 / media is not ready yet" }),
            ),
        )
            .into_response();
    };
    if let Err(e) = link.set_speaker_volume(gain) {
        tracing::warn!(error = %e, "speaker volume not set");
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": "internal", "message": "音量未能设置 / the volume could not be set" })),
        )
            .into_response();
    }
    Json(json!({ "level": level, "gain": link.speaker_volume() })).into_response()
}

#[derive(Deserialize)]
struct Offer {
    sdp: String,
}

async fn screen_offer(State(session): State<MediaSession>, Json(offer): Json<Offer>) -> Response {
    match session.screen.offer(&offer.sdp).await {
        Ok(answer) => Json(answer).into_response(),
        Err(err) => {
            let status = match &err {
                ScreenError::BadOffer(_) => StatusCode::BAD_REQUEST,
                ScreenError::Disabled => StatusCode::SERVICE_UNAVAILABLE,
                ScreenError::Timeout(_) | ScreenError::WebRtc { .. } => {
                    tracing::warn!(%err, "screen connection not answered");
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            };
            let code = match &err {
                ScreenError::BadOffer(_) => "bad_offer",
                ScreenError::Disabled => "disabled",
                _ => "internal",
            };
            (
                status,
                Json(json!({ "error": code, "message": err.to_string() })),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_steps_are_one_to_five_and_never_silent() {
        assert_eq!(volume_gain(0), None);
        assert_eq!(volume_gain(6), None);
        assert_eq!(volume_gain(4), Some(1.0));
        for level in 1..=5 {
            let gain = volume_gain(level).expect("levels 1 to 5 have a gain");
            assert!(gain > 0.0 && gain <= crate::media::MAX_SPEAKER_GAIN);
        }
        assert!(VOLUME_GAINS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn only_loopback_names_pass() {
        for ok in [
            "127.0.0.1:7380",
            "localhost:7380",
            "[::1]:7380",
            "127.0.0.1",
            "localhost",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example:7380",
            "192.0.2.2:7380",
            "127.0.0.1.evil.example",
            "",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }
}
