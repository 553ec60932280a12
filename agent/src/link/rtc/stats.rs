//! A small, stable summary of webrtc-rs's W3C stats report, keyed by media slot.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use protocol::media::Slot;
use webrtc::peer_connection::{RTCStatsReport, RTCStatsReportEntry};

use crate::media::{AudioPlaybackStats, AudioSendStats, VideoReceiveStats, VideoSendStats};

use super::pacer::SendCounters;
use super::state::ConnectionState;

/// The send side's repair and pacing counters (ours: webrtc-rs 0.21 counts neither NACKs
/// nor retransmissions for streams without RTX).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendSummary {
    pub nacks_received: u64,
    pub packets_nacked: u64,
    pub plis_received: u64,
    pub firs_received: u64,
    pub retransmissions_sent: u64,
    pub packets_paced: u64,
    pub pacer_dropped: u64,
    pub stale_repairs_skipped: u64,
    pub path_returns: u64,
    pub pacer_queued: u64,
    /// Longest wait of any packet in the pacer since the connection started.
    pub pacer_max_wait_ms: u64,
    pub pacing_bps: u64,
}

impl SendSummary {
    pub fn read(c: &SendCounters) -> SendSummary {
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        SendSummary {
            nacks_received: get(&c.nacks_received),
            packets_nacked: get(&c.packets_nacked),
            plis_received: get(&c.plis_received),
            firs_received: get(&c.firs_received),
            retransmissions_sent: get(&c.retransmissions_sent),
            packets_paced: get(&c.packets_paced),
            pacer_dropped: get(&c.packets_dropped),
            stale_repairs_skipped: get(&c.stale_repairs_skipped),
            path_returns: get(&c.path_returns),
            pacer_queued: get(&c.queued_packets),
            pacer_max_wait_ms: get(&c.max_queue_ms),
            pacing_bps: get(&c.pacing_bps),
        }
    }
}

/// One outgoing RTP stream.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundStats {
    pub slot: Slot,
    pub ssrc: u32,
    pub packets_sent: u64,
    pub bytes_sent: u64,
    pub retransmitted_packets_sent: u64,
    pub nack_count: u32,
    pub pli_count: u32,
    pub fir_count: u32,
}

/// One incoming RTP stream.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundStats {
    pub slot: Slot,
    pub ssrc: u32,
    pub packets_received: u64,
    pub bytes_received: u64,
    pub packets_lost: i64,
    pub jitter_seconds: f64,
}

/// The peer connection's view: transport, congestion control, RTP streams.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerStats {
    pub state: ConnectionState,
    /// The send-side congestion controller's current estimate for the whole connection.
    pub target_bitrate_bps: Option<f64>,
    /// From the selected ICE candidate pair's STUN round trips.
    pub round_trip_time: Option<Duration>,
    pub outbound: Vec<OutboundStats>,
    pub inbound: Vec<InboundStats>,
    /// PLI/FIR received from the relay for our video.
    pub keyframe_requests_received: u64,
    /// PLIs we sent for the clerk's video.
    pub keyframe_requests_sent: u64,
    pub send: SendSummary,
}

/// Everything the control link reports about media: the peer plus each pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkStats {
    pub peer: PeerStats,
    pub camera: VideoSendStats,
    pub document: VideoSendStats,
    pub microphone: AudioSendStats,
    pub clerk_video: Option<VideoReceiveStats>,
    pub clerk_audio: Option<AudioPlaybackStats>,
    /// Frames the send pumps did not hand to webrtc-rs: not negotiated or connected yet, a
    /// codec mismatch during a rebuild, or a closed connection.
    pub frames_not_sent: u64,
    pub reconnects: u64,
}

pub(crate) fn summarise(
    report: &RTCStatsReport,
    state: ConnectionState,
    outbound_slots: &HashMap<u32, Slot>,
    inbound_slot_by_kind: impl Fn(&str) -> Option<Slot>,
) -> PeerStats {
    let mut stats = PeerStats {
        state,
        target_bitrate_bps: None,
        round_trip_time: None,
        outbound: Vec::new(),
        inbound: Vec::new(),
        keyframe_requests_received: 0,
        keyframe_requests_sent: 0,
        send: SendSummary::default(),
    };
    for entry in report.iter() {
        match entry {
            RTCStatsReportEntry::OutboundRtp(out) => {
                let rtp = &out.sent_rtp_stream_stats.rtp_stream_stats;
                if out.target_bitrate > 0.0 {
                    stats.target_bitrate_bps = Some(
                        stats
                            .target_bitrate_bps
                            .map_or(out.target_bitrate, |t| t.max(out.target_bitrate)),
                    );
                }
                if let Some(&slot) = outbound_slots.get(&rtp.ssrc) {
                    stats.outbound.push(OutboundStats {
                        slot,
                        ssrc: rtp.ssrc,
                        packets_sent: out.sent_rtp_stream_stats.packets_sent,
                        bytes_sent: out.sent_rtp_stream_stats.bytes_sent,
                        retransmitted_packets_sent: out.retransmitted_packets_sent,
                        nack_count: out.nack_count,
                        pli_count: out.pli_count,
                        fir_count: out.fir_count,
                    });
                }
            }
            RTCStatsReportEntry::InboundRtp(inbound) => {
                let received = &inbound.received_rtp_stream_stats;
                let rtp = &received.rtp_stream_stats;
                if let Some(slot) = inbound_slot_by_kind(&rtp.kind.to_string()) {
                    // webrtc-rs 0.21 reports jitter in RTP timestamp units, not the seconds
                    // the W3C stats specify; every codec here has a fixed clock.
                    let clock = if slot.kind() == protocol::media::MediaKind::Audio {
                        48_000.0
                    } else {
                        90_000.0
                    };
                    stats.inbound.push(InboundStats {
                        slot,
                        ssrc: rtp.ssrc,
                        packets_received: received.packets_received,
                        bytes_received: inbound.bytes_received,
                        packets_lost: received.packets_lost,
                        jitter_seconds: received.jitter / clock,
                    });
                }
            }
            RTCStatsReportEntry::IceCandidatePair(pair)
                if pair.nominated
                    && pair.current_round_trip_time.is_finite()
                    && pair.current_round_trip_time > 0.0 =>
            {
                stats.round_trip_time = Some(Duration::from_secs_f64(pair.current_round_trip_time));
            }
            _ => {}
        }
    }
    stats.outbound.sort_by_key(|o| o.slot.index());
    stats.inbound.sort_by_key(|i| i.slot.index());
    stats
}
