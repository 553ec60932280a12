use std::sync::atomic::{AtomicU64, Ordering};

/// Counters the relay publishes (Prometheus). Updated with relaxed atomics from the single
/// driver task, read from anywhere; a snapshot is consistent per counter, not across counters.
#[derive(Debug, Default)]
pub struct SfuMetrics {
    pub datagrams_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub datagrams_out: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Datagrams that were not STUN/DTLS/RTP/RTCP or that no peer accepted.
    pub datagrams_rejected: AtomicU64,
    /// RTP packets received from a source (after SRTP, deduplicated by str0m).
    pub rtp_in: AtomicU64,
    /// RTP packets written to a viewer's send stream.
    pub rtp_forwarded: AtomicU64,
    /// RTP packets not forwarded: source not connected to a partner.
    pub rtp_dropped_unconnected: AtomicU64,
    /// RTP video packets not forwarded while a newly connected track waits for a keyframe.
    pub rtp_dropped_waiting_keyframe: AtomicU64,
    /// RTP packets not forwarded because the viewer did not negotiate the codec, or the packet
    /// predates the current source segment.
    pub rtp_dropped_other: AtomicU64,
    /// Keyframe requests sent to sources (relayed from viewers or made on connect).
    pub keyframe_requests: AtomicU64,
    /// Of those, repeats of a request no keyframe had answered yet.
    pub keyframe_retries: AtomicU64,
    /// Asks for a keyframe not sent because one was already in flight (or had just been sent).
    pub keyframe_requests_coalesced: AtomicU64,
    /// NACKs received from viewers, as reported by str0m's periodic stats (cumulative).
    pub nacks_from_viewers: AtomicU64,
    /// NACKs sent to sources, as reported by str0m's periodic stats (cumulative).
    pub nacks_to_sources: AtomicU64,
    /// PLIs/FIRs received from viewers, as reported by str0m's periodic stats (cumulative).
    pub plis_from_viewers: AtomicU64,
    /// Forwarded packets that could not be queued for recording (recorder queue full).
    pub record_dropped: AtomicU64,
    /// Offers refused (bad SDP, wrong layout).
    pub offers_refused: AtomicU64,
    /// Events the session layer did not read in time (driver's bounded event queue full).
    pub events_dropped: AtomicU64,
    /// Datagrams the socket failed to send.
    pub send_errors: AtomicU64,
    /// Peers currently added.
    pub peers: AtomicU64,
    /// Peers currently connected (ICE + DTLS up).
    pub peers_connected: AtomicU64,
    /// Kiosk/clerk pairs currently forwarding.
    pub pairs: AtomicU64,
}

/// A plain copy of [`SfuMetrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    pub datagrams_in: u64,
    pub bytes_in: u64,
    pub datagrams_out: u64,
    pub bytes_out: u64,
    pub datagrams_rejected: u64,
    pub rtp_in: u64,
    pub rtp_forwarded: u64,
    pub rtp_dropped_unconnected: u64,
    pub rtp_dropped_waiting_keyframe: u64,
    pub rtp_dropped_other: u64,
    pub keyframe_requests: u64,
    pub keyframe_retries: u64,
    pub keyframe_requests_coalesced: u64,
    pub nacks_from_viewers: u64,
    pub nacks_to_sources: u64,
    pub plis_from_viewers: u64,
    pub record_dropped: u64,
    pub offers_refused: u64,
    pub events_dropped: u64,
    pub send_errors: u64,
    pub peers: u64,
    pub peers_connected: u64,
    pub pairs: u64,
}

pub(crate) fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

pub(crate) fn set(counter: &AtomicU64, n: u64) {
    counter.store(n, Ordering::Relaxed);
}

impl SfuMetrics {
    pub fn snapshot(&self) -> MetricsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            datagrams_in: g(&self.datagrams_in),
            bytes_in: g(&self.bytes_in),
            datagrams_out: g(&self.datagrams_out),
            bytes_out: g(&self.bytes_out),
            datagrams_rejected: g(&self.datagrams_rejected),
            rtp_in: g(&self.rtp_in),
            rtp_forwarded: g(&self.rtp_forwarded),
            rtp_dropped_unconnected: g(&self.rtp_dropped_unconnected),
            rtp_dropped_waiting_keyframe: g(&self.rtp_dropped_waiting_keyframe),
            rtp_dropped_other: g(&self.rtp_dropped_other),
            keyframe_requests: g(&self.keyframe_requests),
            keyframe_retries: g(&self.keyframe_retries),
            keyframe_requests_coalesced: g(&self.keyframe_requests_coalesced),
            nacks_from_viewers: g(&self.nacks_from_viewers),
            nacks_to_sources: g(&self.nacks_to_sources),
            plis_from_viewers: g(&self.plis_from_viewers),
            record_dropped: g(&self.record_dropped),
            offers_refused: g(&self.offers_refused),
            events_dropped: g(&self.events_dropped),
            send_errors: g(&self.send_errors),
            peers: g(&self.peers),
            peers_connected: g(&self.peers_connected),
            pairs: g(&self.pairs),
        }
    }
}
