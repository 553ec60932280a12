//! The entry of a receive pipeline: an `appsrc` that takes RTP packets as the WebRTC peer
//! received them (already decrypted), plus the path back for the pipeline's keyframe requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use tokio::sync::mpsc;

use super::MediaError;

/// Packets the appsrc holds before it drops the oldest: about a second of 720p video.
const MAX_QUEUED_PACKETS: u64 = 512;

#[derive(Default)]
pub(crate) struct InputCounters {
    pub(crate) packets_pushed: AtomicU64,
    pub(crate) packets_dropped: AtomicU64,
    pub(crate) packets_rejected: AtomicU64,
    pub(crate) keyframe_requests: AtomicU64,
}

pub(crate) struct RtpInput {
    appsrc: gst_app::AppSrc,
    pub(crate) counters: Arc<InputCounters>,
    payload_type: u8,
    /// Rewrite every packet's payload type to ours: for a slot that carries one codec only,
    /// whatever number the remote chose for it.
    normalise_payload_type: bool,
}

impl RtpInput {
    pub(crate) fn new(
        media: &str,
        encoding_name: &str,
        clock_rate: i32,
        payload_type: u8,
    ) -> Result<(RtpInput, mpsc::Receiver<()>), MediaError> {
        let caps = gst::Caps::builder("application/x-rtp")
            .field("media", media)
            .field("encoding-name", encoding_name)
            .field("clock-rate", clock_rate)
            .field("payload", i32::from(payload_type))
            .build();
        let appsrc = gst_app::AppSrc::builder()
            .caps(&caps)
            .is_live(true)
            .format(gst::Format::Time)
            // Arrival times: the jitter buffer measures jitter from them.
            .do_timestamp(true)
            .max_buffers(MAX_QUEUED_PACKETS)
            .max_bytes(0)
            .leaky_type(gst_app::AppLeakyType::Downstream)
            .build();
        let counters = Arc::new(InputCounters::default());

        // Depayloaders and decoders ask for a keyframe by sending GstForceKeyUnit upstream;
        // it ends here, where it becomes a PLI to the sender. Capacity 1: requests coalesce.
        let (tx, rx) = mpsc::channel(1);
        let pad = appsrc.static_pad("src").ok_or_else(|| MediaError::Build {
            pipeline: "rtp input",
            reason: "appsrc has no src pad".into(),
        })?;
        let probe_counters = Arc::clone(&counters);
        pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_pad, info| {
            if let Some(event) = info.event()
                && gst_video::ForceKeyUnitEvent::is(event)
            {
                probe_counters
                    .keyframe_requests
                    .fetch_add(1, Ordering::Relaxed);
                // Full means a request is already pending, which says the same thing.
                let _ = tx.try_send(());
            }
            gst::PadProbeReturn::Ok
        });
        Ok((
            RtpInput {
                appsrc,
                counters,
                payload_type,
                normalise_payload_type: false,
            },
            rx,
        ))
    }

    pub(crate) fn normalise_payload_type(&mut self) {
        self.normalise_payload_type = true;
    }

    pub(crate) fn element(&self) -> gst::Element {
        self.appsrc.clone().upcast()
    }

    /// Hands one RTP packet to the pipeline. Never blocks: when the pipeline is behind, the
    /// appsrc drops its oldest packet (counted).
    pub(crate) fn push(&self, packet: Bytes) -> Result<(), MediaError> {
        if packet.len() < 12 || packet[0] >> 6 != 2 {
            self.counters
                .packets_rejected
                .fetch_add(1, Ordering::Relaxed);
            return Err(MediaError::InvalidInput(
                "not an RTP version 2 packet".into(),
            ));
        }
        let packet = if self.normalise_payload_type && packet[1] & 0x7f != self.payload_type {
            let mut owned = bytes::BytesMut::from(&packet[..]);
            owned[1] = (owned[1] & 0x80) | (self.payload_type & 0x7f);
            owned.freeze()
        } else {
            packet
        };
        if self.appsrc.current_level_buffers() >= MAX_QUEUED_PACKETS {
            self.counters
                .packets_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
        let buffer = gst::Buffer::from_slice(packet);
        match self.appsrc.push_buffer(buffer) {
            Ok(_) => {
                self.counters.packets_pushed.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(flow) => {
                self.counters
                    .packets_rejected
                    .fetch_add(1, Ordering::Relaxed);
                Err(MediaError::NotRunning(format!(
                    "appsrc refused packet: {flow:?}"
                )))
            }
        }
    }
}
