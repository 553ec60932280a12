//! Received video RTP → jitter buffer → depacketize → decode → I420 frames.
//!
//! `appsrc (RTP) → rtpjitterbuffer → rtpvp8depay | rtph264depay ! h264parse → vp8dec |
//! openh264dec → videoconvert → I420 → appsink`, drained into a bounded drop-oldest
//! [`FrameReceiver<DecodedFrame>`]. The depayloader waits for a keyframe after loss and asks
//! for one; [`RtpVideoReceiver::keyframe_requests`] turns those asks into PLIs at the peer.
//! Used for the clerk's video on the kiosk, and by tests to decode the kiosk's camera.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use tokio::sync::{mpsc, watch};

use super::config::VideoCodec;
use super::elements::{capsfilter, make, make_named, set};
use super::frames::{DecodedFrame, FrameReceiver, FrameSender, PushOutcome, frame_channel};
use super::pipeline::{Pipeline, PipelineHealth};
use super::rtp_input::RtpInput;
use super::{MediaError, init};

/// Counters of one video receive pipeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VideoReceiveStats {
    pub packets_pushed: u64,
    /// Packets the pipeline's input dropped because decoding was behind.
    pub packets_dropped: u64,
    /// Packets refused as malformed or while the pipeline was stopped.
    pub packets_rejected: u64,
    pub frames_decoded: u64,
    /// Decoded frames dropped because the consumer was behind.
    pub frames_dropped: u64,
    pub keyframe_requests: u64,
}

#[derive(Default)]
struct Counters {
    frames_decoded: AtomicU64,
    frames_dropped: AtomicU64,
}

/// Decodes one incoming video stream.
pub struct RtpVideoReceiver {
    pipeline: Pipeline,
    input: RtpInput,
    counters: Arc<Counters>,
    frames: Option<FrameReceiver<DecodedFrame>>,
    keyframe_requests: Option<mpsc::Receiver<()>>,
    codec: VideoCodec,
}

impl RtpVideoReceiver {
    /// `payload_type` is the negotiated one; `latency` is the jitter buffer's depth. Frames
    /// go to a new channel of `queue_frames` (see [`take_frames`](Self::take_frames)).
    pub fn new(
        label: &'static str,
        codec: VideoCodec,
        payload_type: u8,
        latency: Duration,
        queue_frames: usize,
    ) -> Result<RtpVideoReceiver, MediaError> {
        let (tx, rx) = frame_channel(queue_frames);
        let mut receiver = RtpVideoReceiver::with_output(label, codec, payload_type, latency, tx)?;
        receiver.frames = Some(rx);
        Ok(receiver)
    }

    /// Like [`new`](Self::new), but frames go to an existing channel, so a consumer keeps
    /// one receiver across successive streams (a reconnect, a codec change).
    pub fn with_output(
        label: &'static str,
        codec: VideoCodec,
        payload_type: u8,
        latency: Duration,
        tx: FrameSender<DecodedFrame>,
    ) -> Result<RtpVideoReceiver, MediaError> {
        init()?;
        let pipeline = Pipeline::new(label)?;
        let (input, keyframe_requests) =
            RtpInput::new("video", codec.encoding_name(), 90_000, payload_type)?;
        let jitter = make("rtpjitterbuffer")?;
        set(
            &jitter,
            "latency",
            u32::try_from(latency.as_millis()).unwrap_or(u32::MAX),
        )?;
        set(&jitter, "do-lost", true)?;
        let mut chain = vec![input.element(), jitter];
        match codec {
            VideoCodec::Vp8 => {
                let depay = make("rtpvp8depay")?;
                set(&depay, "request-keyframe", true)?;
                set(&depay, "wait-for-keyframe", true)?;
                chain.push(depay);
                chain.push(decoder("vp8dec")?);
            }
            VideoCodec::H264 => {
                let depay = make("rtph264depay")?;
                set(&depay, "request-keyframe", true)?;
                set(&depay, "wait-for-keyframe", true)?;
                chain.push(depay);
                chain.push(make("h264parse")?);
                chain.push(decoder("openh264dec")?);
            }
        }
        chain.push(make("videoconvert")?);
        chain.push(capsfilter(
            gst_video::VideoCapsBuilder::new()
                .format(gst_video::VideoFormat::I420)
                .build(),
        )?);
        let sink = gst_app::AppSink::builder()
            .sync(false)
            .max_buffers(2)
            .enable_last_sample(false)
            .build();
        chain.push(sink.clone().upcast());
        let refs: Vec<&gst::Element> = chain.iter().collect();
        pipeline.add_chain(&refs)?;

        let counters = Arc::new(Counters::default());
        let sink_counters = Arc::clone(&counters);
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Flushing)?;
                    let decoded_at = SystemTime::now();
                    let (Some(caps), Some(buffer)) = (sample.caps(), sample.buffer_owned()) else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let Ok(info) = gst_video::VideoInfo::from_caps(caps) else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let pts = buffer.pts().map(|t| Duration::from_nanos(t.nseconds()));
                    let Ok(mapped) = buffer.into_mapped_buffer_readable() else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let stride = |i: usize| {
                        info.stride()
                            .get(i)
                            .and_then(|&s| usize::try_from(s).ok())
                            .unwrap_or(0)
                    };
                    let offset = |i: usize| info.offset().get(i).copied().unwrap_or(0);
                    let frame = DecodedFrame {
                        width: info.width(),
                        height: info.height(),
                        // No copy: the bytes keep the GStreamer buffer mapped.
                        data: Bytes::from_owner(mapped),
                        offsets: [offset(0), offset(1), offset(2)],
                        strides: [stride(0), stride(1), stride(2)],
                        pts,
                        decoded_at,
                    };
                    sink_counters.frames_decoded.fetch_add(1, Ordering::Relaxed);
                    if tx.push(frame) == PushOutcome::DroppedOldest {
                        sink_counters.frames_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );

        Ok(RtpVideoReceiver {
            pipeline,
            input,
            counters,
            frames: None,
            keyframe_requests: Some(keyframe_requests),
            codec,
        })
    }

    pub fn start(&self) -> Result<(), MediaError> {
        self.pipeline.set_state(gst::State::Playing)
    }

    /// Hands one received RTP packet (header and payload, decrypted) to the pipeline.
    pub fn push_rtp(&self, packet: Bytes) -> Result<(), MediaError> {
        self.input.push(packet)
    }

    /// Decoded frames, when built with [`new`](Self::new). Taken once.
    pub fn take_frames(&mut self) -> Option<FrameReceiver<DecodedFrame>> {
        self.frames.take()
    }

    /// Fires when the pipeline needs a keyframe (start, loss, decode error). Taken once.
    pub fn keyframe_requests(&mut self) -> Option<mpsc::Receiver<()>> {
        self.keyframe_requests.take()
    }

    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    pub fn stats(&self) -> VideoReceiveStats {
        let input = &self.input.counters;
        VideoReceiveStats {
            packets_pushed: input.packets_pushed.load(Ordering::Relaxed),
            packets_dropped: input.packets_dropped.load(Ordering::Relaxed),
            packets_rejected: input.packets_rejected.load(Ordering::Relaxed),
            frames_decoded: self.counters.frames_decoded.load(Ordering::Relaxed),
            frames_dropped: self.counters.frames_dropped.load(Ordering::Relaxed),
            keyframe_requests: input.keyframe_requests.load(Ordering::Relaxed),
        }
    }

    pub fn health(&self) -> watch::Receiver<PipelineHealth> {
        self.pipeline.health()
    }

    pub fn check(&self) -> Result<(), MediaError> {
        self.pipeline.check()
    }
}

fn decoder(factory: &'static str) -> Result<gst::Element, MediaError> {
    let dec = make_named(factory, factory)?;
    // One thread: libvpx's worker threads spin-wait, which on a busy two-core kiosk costs far
    // more than it gains for call-sized pictures.
    if dec.find_property("threads").is_some() {
        set(&dec, "threads", 1u32)?;
    }
    // A decode error asks upstream for a keyframe instead of showing garbage until the next.
    if dec.find_property("automatic-request-sync-points").is_some() {
        set(&dec, "automatic-request-sync-points", true)?;
    }
    if dec.find_property("discard-corrupted-frames").is_some() {
        set(&dec, "discard-corrupted-frames", true)?;
    }
    Ok(dec)
}
