//! The SFU's, the recorder's and the media service's counters on `/metrics`, read at scrape
//! time from their atomics.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::ServiceMetrics;
use crate::recorder::RecorderMetrics;
use crate::sfu::SfuMetrics;

#[derive(Debug)]
pub(crate) struct MediaCollector {
    pub sfu: Arc<SfuMetrics>,
    pub recorder: Option<Arc<RecorderMetrics>>,
    pub service: Arc<ServiceMetrics>,
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: &AtomicU64) -> std::fmt::Result {
    let c = ConstCounter::new(v.load(Ordering::Relaxed));
    let m = e.encode_descriptor(name, help, None, c.metric_type())?;
    c.encode(m)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: &AtomicU64) -> std::fmt::Result {
    let g = ConstGauge::new(i64::try_from(v.load(Ordering::Relaxed)).unwrap_or(i64::MAX));
    let m = e.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(m)
}

impl Collector for MediaCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let s = &self.sfu;
        counter(
            &mut e,
            "sfu_datagrams_in",
            "UDP datagrams received by the SFU",
            &s.datagrams_in,
        )?;
        counter(
            &mut e,
            "sfu_bytes_in",
            "Bytes received by the SFU",
            &s.bytes_in,
        )?;
        counter(
            &mut e,
            "sfu_datagrams_out",
            "UDP datagrams sent by the SFU",
            &s.datagrams_out,
        )?;
        counter(
            &mut e,
            "sfu_bytes_out",
            "Bytes sent by the SFU",
            &s.bytes_out,
        )?;
        counter(
            &mut e,
            "sfu_datagrams_rejected",
            "Datagrams no peer accepted, or not STUN/DTLS/RTP/RTCP",
            &s.datagrams_rejected,
        )?;
        counter(
            &mut e,
            "sfu_rtp_in",
            "RTP packets received from sources",
            &s.rtp_in,
        )?;
        counter(
            &mut e,
            "sfu_rtp_forwarded",
            "RTP packets forwarded to viewers",
            &s.rtp_forwarded,
        )?;
        counter(
            &mut e,
            "sfu_rtp_dropped_unconnected",
            "RTP packets of sources not in a session",
            &s.rtp_dropped_unconnected,
        )?;
        counter(
            &mut e,
            "sfu_rtp_dropped_waiting_keyframe",
            "Video packets held back until a keyframe",
            &s.rtp_dropped_waiting_keyframe,
        )?;
        counter(
            &mut e,
            "sfu_rtp_dropped_other",
            "RTP packets not forwarded for other reasons",
            &s.rtp_dropped_other,
        )?;
        counter(
            &mut e,
            "sfu_keyframe_requests",
            "Keyframe requests sent to sources",
            &s.keyframe_requests,
        )?;
        counter(
            &mut e,
            "sfu_keyframe_retries",
            "Keyframe requests repeated because no keyframe answered the last one",
            &s.keyframe_retries,
        )?;
        counter(
            &mut e,
            "sfu_keyframe_requests_coalesced",
            "Keyframe asks joined to a request already in flight",
            &s.keyframe_requests_coalesced,
        )?;
        counter(
            &mut e,
            "sfu_nacks_from_viewers",
            "NACKs received from viewers",
            &s.nacks_from_viewers,
        )?;
        counter(
            &mut e,
            "sfu_nacks_to_sources",
            "NACKs sent to sources",
            &s.nacks_to_sources,
        )?;
        counter(
            &mut e,
            "sfu_plis_from_viewers",
            "PLI/FIR received from viewers",
            &s.plis_from_viewers,
        )?;
        counter(
            &mut e,
            "sfu_record_dropped",
            "Forwarded packets the recorder queue could not take",
            &s.record_dropped,
        )?;
        counter(
            &mut e,
            "sfu_offers_refused",
            "Media offers refused by the SFU",
            &s.offers_refused,
        )?;
        counter(
            &mut e,
            "sfu_events_dropped",
            "SFU events the media service did not read in time",
            &s.events_dropped,
        )?;
        counter(
            &mut e,
            "sfu_send_errors",
            "Datagrams the SFU socket failed to send",
            &s.send_errors,
        )?;
        gauge(&mut e, "sfu_peers", "Peers added to the SFU", &s.peers)?;
        gauge(
            &mut e,
            "sfu_peers_connected",
            "Peers with ICE and DTLS up",
            &s.peers_connected,
        )?;
        gauge(
            &mut e,
            "sfu_pairs",
            "Kiosk/clerk pairs forwarding",
            &s.pairs,
        )?;
        if let Some(r) = &self.recorder {
            counter(
                &mut e,
                "recorder_packets_written",
                "Packets written to recording dumps",
                &r.packets_written,
            )?;
            counter(
                &mut e,
                "recorder_bytes_written",
                "Payload bytes written to recording dumps",
                &r.bytes_written,
            )?;
            counter(
                &mut e,
                "recorder_packets_dropped",
                "Packets the recorder dropped (queue full)",
                &r.packets_dropped,
            )?;
            counter(
                &mut e,
                "recorder_write_errors",
                "Recording write or sync failures",
                &r.write_errors,
            )?;
            counter(
                &mut e,
                "recorder_recordings_started",
                "Recordings begun",
                &r.recordings_started,
            )?;
            counter(
                &mut e,
                "recorder_recordings_muxed",
                "Recordings muxed to WebM/Matroska",
                &r.recordings_muxed,
            )?;
            counter(
                &mut e,
                "recorder_mux_failures",
                "Recordings that failed to mux",
                &r.mux_failures,
            )?;
            counter(
                &mut e,
                "recorder_mux_packets_rejected",
                "Recorded packets the muxer refused (malformed or unsupported payload)",
                &r.mux_packets_rejected,
            )?;
        }
        let m = &self.service;
        counter(
            &mut e,
            "media_offers_answered",
            "Media offers answered",
            &m.offers_answered,
        )?;
        counter(
            &mut e,
            "media_offers_failed",
            "Media offers refused or failed",
            &m.offers_failed,
        )?;
        counter(
            &mut e,
            "media_pairs_connected",
            "Kiosk/console pairs connected for sessions",
            &m.pairs_connected,
        )?;
        counter(
            &mut e,
            "media_sfu_call_failures",
            "SFU calls that failed and were retried",
            &m.sfu_call_failures,
        )?;
        counter(
            &mut e,
            "media_messages_dropped",
            "Media control messages that did not fit an outbox (retried)",
            &m.messages_dropped,
        )?;
        counter(
            &mut e,
            "media_recordings_begun",
            "Session recordings begun",
            &m.recordings_begun,
        )?;
        counter(
            &mut e,
            "media_recordings_stored",
            "Session recordings stored",
            &m.recordings_stored,
        )?;
        counter(
            &mut e,
            "media_recordings_failed",
            "Session recordings that failed",
            &m.recordings_failed,
        )?;
        counter(
            &mut e,
            "media_recordings_purged",
            "Recordings deleted after retention",
            &m.recordings_purged,
        )?;
        counter(
            &mut e,
            "media_store_failures",
            "Recording rows that could not be stored",
            &m.store_failures,
        )?;
        gauge(
            &mut e,
            "media_sessions_live",
            "Sessions with media being served",
            &m.sessions_live,
        )?;
        Ok(())
    }
}
