//! Camera (or document-camera preview) → encoder → encoded frames.
//!
//! `source → videoconvert → videoscale → I420 WxH@fps → [time-code stamp] → leaky queue →
//! vp8enc | openh264enc ! h264parse → appsink`, drained straight into a bounded drop-oldest
//! [`FrameReceiver`]. The leaky queue in front of the encoder keeps capture from stalling when
//! the encoder falls behind (its drops are counted as `raw_frames_dropped`); a drop on the
//! output channel forces a keyframe, because every VP8/H.264 frame is a reference for the next.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use tokio::sync::watch;

use super::config::{VideoCodec, VideoSource};
use super::elements::{self, capsfilter, make, set, set_nick};
use super::frames::{EncodedFrame, FrameReceiver, FrameSender, PushOutcome, frame_channel};
use super::pipeline::{Pipeline, PipelineHealth};
use super::timecode::{self, TimeCode};
use super::{MediaError, init};

/// How one video send pipeline is set up.
#[derive(Debug, Clone)]
pub struct VideoSendConfig {
    /// Names the pipeline in logs and errors: `"camera"`, `"document"`.
    pub label: &'static str,
    pub source: VideoSource,
    pub codec: VideoCodec,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Initial target; the WebRTC peer moves it with the congestion-control estimate.
    pub bitrate_bps: u32,
    /// Longest run of frames without a keyframe. WebRTC-style: long, because receivers ask
    /// for keyframes (PLI/FIR) when they need one.
    pub keyframe_interval_frames: u32,
    /// libvpx realtime speed, 0–16; higher is faster and coarser.
    pub vp8_cpu_used: i32,
    /// Encoder threads. Keep 1 on a kiosk: libvpx's VP8 threads spin-wait for each other,
    /// and on a two-core machine with anything else running, `threads=2` measured 20x the CPU
    /// per 720p frame of `threads=1` (8 ms). One thread encodes 720p30 in about a quarter
    /// of a core.
    pub threads: u32,
    /// Encoded frames held for a slow consumer before the oldest is dropped.
    pub queue_frames: usize,
    /// Let the encoder skip a frame when its rate buffer runs dry, as browsers configure
    /// libvpx for calls. Without it, a picture too detailed for the target (the moving test
    /// pattern at 720p and 1.2 Mbit/s measured 3.0 Mbit/s) overshoots the congestion
    /// controller's estimate and queues in the pacer; with it the rate holds (1.25 Mbit/s)
    /// and the frame rate gives.
    pub drop_frames_to_hold_rate: bool,
    /// Ignore keyframe requests closer together than this (a receiver with loss asks
    /// repeatedly; each keyframe costs several frames' worth of bits).
    pub min_keyframe_spacing: Duration,
}

impl VideoSendConfig {
    /// The kiosk's face camera: 720p30 VP8 at 1.2 Mbit/s to start.
    pub fn camera(source: VideoSource) -> VideoSendConfig {
        VideoSendConfig {
            label: "camera",
            source,
            codec: VideoCodec::Vp8,
            width: 1280,
            height: 720,
            fps: 30,
            bitrate_bps: 1_200_000,
            keyframe_interval_frames: 3000,
            vp8_cpu_used: 8,
            threads: 1,
            queue_frames: 8,
            drop_frames_to_hold_rate: true,
            min_keyframe_spacing: Duration::from_millis(300),
        }
    }

    /// The document camera's live preview: low resolution and rate; full-resolution stills
    /// travel separately as uploads.
    pub fn document_preview(source: VideoSource) -> VideoSendConfig {
        VideoSendConfig {
            label: "document",
            width: 640,
            height: 480,
            fps: 10,
            bitrate_bps: 250_000,
            ..VideoSendConfig::camera(source)
        }
    }

    fn validate(&self) -> Result<(), MediaError> {
        if self.width < 16
            || self.height < 16
            || !self.width.is_multiple_of(2)
            || !self.height.is_multiple_of(2)
        {
            return Err(MediaError::Config(format!(
                "{}: frame size {}x{} must be even and at least 16x16",
                self.label, self.width, self.height
            )));
        }
        if !(1..=120).contains(&self.fps) {
            return Err(MediaError::Config(format!(
                "{}: frame rate {} outside 1..=120",
                self.label, self.fps
            )));
        }
        if self.bitrate_bps < 10_000 {
            return Err(MediaError::Config(format!(
                "{}: bitrate {} below 10 kbit/s",
                self.label, self.bitrate_bps
            )));
        }
        Ok(())
    }
}

/// Counters of one video send pipeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VideoSendStats {
    pub frames_encoded: u64,
    pub keyframes_encoded: u64,
    pub bytes_encoded: u64,
    /// Keyframes this pipeline asked its encoder for (requests and recoveries).
    pub keyframes_forced: u64,
    /// Keyframe requests ignored because one had just been forced.
    pub keyframe_requests_coalesced: u64,
    /// Raw frames dropped in front of the encoder because it was behind.
    pub raw_frames_dropped: u64,
    /// Encoded frames dropped because the consumer was behind.
    pub frames_dropped: u64,
    /// Frames that could not be stamped with a time code (test source only).
    pub stamp_failures: u64,
    pub bitrate_bps: u32,
    /// The size frames are encoded at now (the resolution ladder may have lowered it).
    pub width: u32,
    pub height: u32,
}

#[derive(Default)]
struct Counters {
    frames_encoded: AtomicU64,
    keyframes_encoded: AtomicU64,
    bytes_encoded: AtomicU64,
    keyframes_forced: AtomicU64,
    keyframe_requests_coalesced: AtomicU64,
    raw_frames_dropped: AtomicU64,
    frames_dropped: AtomicU64,
    stamp_failures: AtomicU64,
    bitrate_bps: AtomicU32,
    width: AtomicU32,
    height: AtomicU32,
}

/// What a keyframe's own transmission adds to the round trip before a receiver can have it.
const KEYFRAME_TRANSMISSION_ALLOWANCE: Duration = Duration::from_millis(150);
/// The keyframe spacing never grows beyond this, however long the round trip reads.
const MAX_KEYFRAME_SPACING: Duration = Duration::from_millis(1_000);

/// A cheap, cloneable handle for steering a running encoder from any thread.
#[derive(Clone)]
pub struct VideoEncoderControl {
    encoder: gst::Element,
    /// The raw-caps filter in front of the encoder: its caps set the encoded size.
    raw_filter: gst::Element,
    fps: u32,
    codec: VideoCodec,
    counters: Arc<Counters>,
    last_forced: Arc<Mutex<Option<Instant>>>,
    /// The configured floor of the spacing between forced keyframes.
    min_spacing: Duration,
    /// The spacing in force now, in milliseconds (the floor, or longer on a long round trip).
    spacing_ms: Arc<AtomicU64>,
}

impl VideoEncoderControl {
    /// Asks the encoder for a keyframe (with SPS/PPS for H.264). Returns false when the
    /// request was coalesced into one forced within `min_keyframe_spacing`.
    pub fn force_keyframe(&self) -> bool {
        let now = Instant::now();
        {
            let mut last = self
                .last_forced
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(at) = *last
                && now.duration_since(at) < self.keyframe_spacing()
            {
                self.counters
                    .keyframe_requests_coalesced
                    .fetch_add(1, Ordering::Relaxed);
                return false;
            }
            *last = Some(now);
        }
        self.counters
            .keyframes_forced
            .fetch_add(1, Ordering::Relaxed);
        let event = gst_video::UpstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        // Sent into the encoder's source pad, exactly as a downstream element would ask.
        match self.encoder.static_pad("src") {
            Some(pad) => pad.send_event(event),
            None => false,
        }
    }

    /// How close together keyframe requests are coalesced into one keyframe.
    pub fn keyframe_spacing(&self) -> Duration {
        Duration::from_millis(self.spacing_ms.load(Ordering::Relaxed))
    }

    /// Follows the round trip to the receiver: a request that arrives before our last
    /// keyframe could have reached the receiver and its answer come back (a round trip plus
    /// the keyframe's own transmission) is about the same loss and is coalesced. Never below
    /// the configured spacing.
    pub fn follow_round_trip(&self, rtt: Duration) {
        let spacing = self
            .min_spacing
            .max(rtt + KEYFRAME_TRANSMISSION_ALLOWANCE)
            .min(MAX_KEYFRAME_SPACING);
        self.spacing_ms
            .store(spacing.as_millis() as u64, Ordering::Relaxed);
    }

    /// Moves the encoder's target bitrate; takes effect on the next frame.
    pub fn set_bitrate(&self, bps: u32) {
        let bps = bps.max(10_000);
        let result = match self.codec {
            VideoCodec::Vp8 => set(
                &self.encoder,
                "target-bitrate",
                bps.min(i32::MAX as u32) as i32,
            ),
            // OpenH264 refuses a target above its maximum: raise the ceiling before the
            // target, lower it after.
            VideoCodec::H264 if bps > self.bitrate() => {
                set(&self.encoder, "max-bitrate", bps.saturating_mul(2))
                    .and_then(|()| set(&self.encoder, "bitrate", bps))
            }
            VideoCodec::H264 => set(&self.encoder, "bitrate", bps)
                .and_then(|()| set(&self.encoder, "max-bitrate", bps.saturating_mul(2))),
        };
        match result {
            Ok(()) => self.counters.bitrate_bps.store(bps, Ordering::Relaxed),
            Err(err) => tracing::warn!(%err, "encoder bitrate not changed"),
        }
    }

    pub fn bitrate(&self) -> u32 {
        self.counters.bitrate_bps.load(Ordering::Relaxed)
    }

    /// Encodes at `width`×`height` from the next frame on: `videoscale` renegotiates and the
    /// encoder restarts at the new size with a keyframe. The capture keeps its own size.
    pub fn set_resolution(&self, width: u32, height: u32) {
        let (width, height) = (width.max(16) & !1, height.max(16) & !1);
        if (width, height) == self.resolution() {
            return;
        }
        let caps = raw_caps(width, height, self.fps);
        self.raw_filter.set_property("caps", &caps);
        self.counters.width.store(width, Ordering::Relaxed);
        self.counters.height.store(height, Ordering::Relaxed);
    }

    /// The size frames are encoded at.
    pub fn resolution(&self) -> (u32, u32) {
        (
            self.counters.width.load(Ordering::Relaxed),
            self.counters.height.load(Ordering::Relaxed),
        )
    }

    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    pub fn stats(&self) -> VideoSendStats {
        let c = &self.counters;
        VideoSendStats {
            frames_encoded: c.frames_encoded.load(Ordering::Relaxed),
            keyframes_encoded: c.keyframes_encoded.load(Ordering::Relaxed),
            bytes_encoded: c.bytes_encoded.load(Ordering::Relaxed),
            keyframes_forced: c.keyframes_forced.load(Ordering::Relaxed),
            keyframe_requests_coalesced: c.keyframe_requests_coalesced.load(Ordering::Relaxed),
            raw_frames_dropped: c.raw_frames_dropped.load(Ordering::Relaxed),
            frames_dropped: c.frames_dropped.load(Ordering::Relaxed),
            stamp_failures: c.stamp_failures.load(Ordering::Relaxed),
            bitrate_bps: c.bitrate_bps.load(Ordering::Relaxed),
            width: c.width.load(Ordering::Relaxed),
            height: c.height.load(Ordering::Relaxed),
        }
    }
}

/// A running (or paused) video capture-and-encode pipeline.
pub struct VideoSendPipeline {
    pipeline: Pipeline,
    control: VideoEncoderControl,
    frames: Option<FrameReceiver<EncodedFrame>>,
    config: VideoSendConfig,
}

impl VideoSendPipeline {
    /// Builds the pipeline (in NULL state); `start()` begins capture.
    pub fn new(config: VideoSendConfig) -> Result<VideoSendPipeline, MediaError> {
        init()?;
        config.validate()?;
        let pipeline = Pipeline::new(config.label)?;
        let counters = Arc::new(Counters::default());

        let mut chain =
            elements::video_source(&config.source, config.width, config.height, config.fps)?;
        chain.push(make("videoconvert")?);
        chain.push(make("videoscale")?);
        let raw_filter = capsfilter(raw_caps(config.width, config.height, config.fps))?;
        chain.push(raw_filter.clone());
        let queue = elements::leaky_queue(2)?;
        chain.push(queue.clone());

        let encoder = match config.codec {
            VideoCodec::Vp8 => vp8_encoder(&config)?,
            VideoCodec::H264 => h264_encoder(&config)?,
        };
        chain.push(encoder.clone());
        if config.codec == VideoCodec::H264 {
            let parse = make("h264parse")?;
            // SPS/PPS in front of every IDR, so a receiver joining at a keyframe can decode.
            set(&parse, "config-interval", -1i32)?;
            chain.push(parse);
            chain.push(capsfilter(
                gst::Caps::builder("video/x-h264")
                    .field("stream-format", "byte-stream")
                    .field("alignment", "au")
                    .build(),
            )?);
        }
        let sink = gst_app::AppSink::builder()
            .sync(false)
            .max_buffers(4)
            .enable_last_sample(false)
            .build();
        let sink_element: gst::Element = sink.clone().upcast();
        chain.push(sink_element);
        let refs: Vec<&gst::Element> = chain.iter().collect();
        pipeline.add_chain(&refs)?;

        {
            let counters = Arc::clone(&counters);
            queue.connect("overrun", false, move |_| {
                counters.raw_frames_dropped.fetch_add(1, Ordering::Relaxed);
                None
            });
        }

        if config.source.is_test() {
            let pad = raw_filter
                .static_pad("src")
                .ok_or_else(|| pipeline.build_error("capsfilter has no src pad".into()))?;
            install_stamper(&pad, Arc::clone(&counters));
        }

        let control = VideoEncoderControl {
            encoder,
            raw_filter: raw_filter.clone(),
            fps: config.fps,
            codec: config.codec,
            counters: Arc::clone(&counters),
            last_forced: Arc::new(Mutex::new(None)),
            min_spacing: config.min_keyframe_spacing,
            spacing_ms: Arc::new(AtomicU64::new(
                config.min_keyframe_spacing.as_millis() as u64
            )),
        };
        control
            .counters
            .bitrate_bps
            .store(config.bitrate_bps, Ordering::Relaxed);
        control
            .counters
            .width
            .store(config.width, Ordering::Relaxed);
        control
            .counters
            .height
            .store(config.height, Ordering::Relaxed);

        let (tx, rx) = frame_channel(config.queue_frames);
        install_frame_sink(&sink, tx, control.clone());

        Ok(VideoSendPipeline {
            pipeline,
            control,
            frames: Some(rx),
            config,
        })
    }

    /// The encoded frames. Taken once; later calls return `None`.
    pub fn take_frames(&mut self) -> Option<FrameReceiver<EncodedFrame>> {
        self.frames.take()
    }

    /// Starts or resumes capture and encoding.
    pub fn start(&self) -> Result<(), MediaError> {
        self.pipeline.set_state(gst::State::Playing)
    }

    /// Stops capture but keeps the device open, so `start()` resumes quickly.
    pub fn pause(&self) -> Result<(), MediaError> {
        self.pipeline.set_state(gst::State::Paused)
    }

    pub fn control(&self) -> VideoEncoderControl {
        self.control.clone()
    }

    pub fn force_keyframe(&self) -> bool {
        self.control.force_keyframe()
    }

    pub fn set_bitrate(&self, bps: u32) {
        self.control.set_bitrate(bps);
    }

    pub fn stats(&self) -> VideoSendStats {
        self.control.stats()
    }

    pub fn config(&self) -> &VideoSendConfig {
        &self.config
    }

    pub fn health(&self) -> watch::Receiver<PipelineHealth> {
        self.pipeline.health()
    }

    /// `Err` once the pipeline has failed (for example the camera disappeared).
    pub fn check(&self) -> Result<(), MediaError> {
        self.pipeline.check()
    }

    pub fn label(&self) -> &'static str {
        self.pipeline.name()
    }
}

fn raw_caps(width: u32, height: u32, fps: u32) -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .format(gst_video::VideoFormat::I420)
        .width(width.min(i32::MAX as u32) as i32)
        .height(height.min(i32::MAX as u32) as i32)
        .framerate(gst::Fraction::new(fps.min(i32::MAX as u32) as i32, 1))
        .pixel_aspect_ratio(gst::Fraction::new(1, 1))
        .build()
}

fn vp8_encoder(config: &VideoSendConfig) -> Result<gst::Element, MediaError> {
    let enc = make("vp8enc")?;
    // Realtime: one frame in, one frame out, no lookahead (the default lag alone adds
    // most of a second at 30 fps).
    set(&enc, "deadline", 1i64)?;
    set(&enc, "lag-in-frames", 0i32)?;
    set(&enc, "cpu-used", config.vp8_cpu_used.clamp(-16, 16))?;
    set_nick(&enc, "end-usage", "cbr")?;
    set(
        &enc,
        "target-bitrate",
        config.bitrate_bps.min(i32::MAX as u32) as i32,
    )?;
    // Frames stay decodable after a loss elsewhere in the stream.
    set_nick(&enc, "error-resilient", "default")?;
    set_nick(&enc, "keyframe-mode", "auto")?;
    set(
        &enc,
        "keyframe-max-dist",
        config.keyframe_interval_frames.min(i32::MAX as u32) as i32,
    )?;
    // Rate-control buffer as browsers configure libvpx for calls: short, so the bitrate
    // follows the estimate within a second.
    set(&enc, "buffer-size", 1000i32)?;
    set(&enc, "buffer-initial-size", 500i32)?;
    set(&enc, "buffer-optimal-size", 600i32)?;
    set(&enc, "undershoot", 100i32)?;
    set(&enc, "overshoot", 15i32)?;
    set(&enc, "min-quantizer", 2i32)?;
    set(&enc, "max-quantizer", 56i32)?;
    // Caps a keyframe at ~6 average frames, so one does not flood the pacer.
    set(&enc, "max-intra-bitrate", 600i32)?;
    set(&enc, "threads", config.threads.min(64) as i32)?;
    // libwebrtc's threshold: skip a frame once the rate buffer is below 30 % full.
    set(
        &enc,
        "dropframe-threshold",
        if config.drop_frames_to_hold_rate {
            30i32
        } else {
            0
        },
    )?;
    if config.threads > 1 {
        set_nick(&enc, "token-partitions", "2")?;
    }
    Ok(enc)
}

fn h264_encoder(config: &VideoSendConfig) -> Result<gst::Element, MediaError> {
    let enc = make("openh264enc")?;
    set_nick(&enc, "usage-type", "camera")?;
    set_nick(&enc, "rate-control", "bitrate")?;
    set(&enc, "bitrate", config.bitrate_bps)?;
    set(&enc, "max-bitrate", config.bitrate_bps.saturating_mul(2))?;
    set_nick(&enc, "complexity", "low")?;
    set(&enc, "gop-size", config.keyframe_interval_frames)?;
    set(&enc, "multi-thread", config.threads)?;
    set(&enc, "enable-frame-skip", config.drop_frames_to_hold_rate)?;
    set(&enc, "scene-change-detection", false)?;
    Ok(enc)
}

/// Stamps the capture time into each raw frame passing `pad` (I420).
fn install_stamper(pad: &gst::Pad, counters: Arc<Counters>) {
    let info: Mutex<Option<(gst::Caps, gst_video::VideoInfo)>> = Mutex::new(None);
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, probe| {
        let now = SystemTime::now();
        let Some(caps) = pad.current_caps() else {
            return gst::PadProbeReturn::Ok;
        };
        let mut cached = info.lock().unwrap_or_else(PoisonError::into_inner);
        let video_info = match &*cached {
            Some((c, i)) if *c == caps => i.clone(),
            _ => match gst_video::VideoInfo::from_caps(&caps) {
                Ok(i) => {
                    *cached = Some((caps, i.clone()));
                    i
                }
                Err(_) => {
                    counters.stamp_failures.fetch_add(1, Ordering::Relaxed);
                    return gst::PadProbeReturn::Ok;
                }
            },
        };
        drop(cached);
        let Some(buffer) = probe.buffer_mut() else {
            return gst::PadProbeReturn::Ok;
        };
        if stamp_buffer(
            buffer.make_mut(),
            &video_info,
            TimeCode::from_system_time(now),
        )
        .is_err()
        {
            counters.stamp_failures.fetch_add(1, Ordering::Relaxed);
        }
        gst::PadProbeReturn::Ok
    });
}

fn stamp_buffer(
    buffer: &mut gst::BufferRef,
    info: &gst_video::VideoInfo,
    code: TimeCode,
) -> Result<(), MediaError> {
    let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(buffer, info)
        .map_err(|e| MediaError::Config(format!("mapping frame for stamping: {e}")))?;
    let (width, height) = (frame.width(), frame.height());
    let strides: Vec<usize> = frame
        .plane_stride()
        .iter()
        .map(|&s| usize::try_from(s).unwrap_or(0))
        .collect();
    let stamp_err = |e: timecode::StampError| MediaError::Config(e.to_string());
    {
        let luma = frame
            .plane_data_mut(0)
            .map_err(|e| MediaError::Config(e.to_string()))?;
        let stride = strides.first().copied().unwrap_or(0);
        timecode::stamp_luma(luma, stride, width, height, code).map_err(stamp_err)?;
    }
    for plane in 1..3u32 {
        let stride = strides.get(plane as usize).copied().unwrap_or(0);
        let data = frame
            .plane_data_mut(plane)
            .map_err(|e| MediaError::Config(e.to_string()))?;
        timecode::neutralise_chroma(data, stride, height).map_err(stamp_err)?;
    }
    Ok(())
}

fn install_frame_sink(
    sink: &gst_app::AppSink,
    tx: FrameSender<EncodedFrame>,
    control: VideoEncoderControl,
) {
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Flushing)?;
                let Some(buffer) = sample.buffer() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let Ok(map) = buffer.map_readable() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
                let frame = EncodedFrame {
                    data: Bytes::copy_from_slice(map.as_slice()),
                    pts: buffer.pts().map(|t| Duration::from_nanos(t.nseconds())),
                    duration: buffer
                        .duration()
                        .map(|t| Duration::from_nanos(t.nseconds())),
                    keyframe,
                };
                let c = &control.counters;
                c.frames_encoded.fetch_add(1, Ordering::Relaxed);
                c.bytes_encoded
                    .fetch_add(frame.data.len() as u64, Ordering::Relaxed);
                if keyframe {
                    c.keyframes_encoded.fetch_add(1, Ordering::Relaxed);
                }
                match tx.push(frame) {
                    PushOutcome::Queued => {}
                    PushOutcome::DroppedOldest => {
                        c.frames_dropped.fetch_add(1, Ordering::Relaxed);
                        // The dropped frame was a reference for what follows.
                        control.force_keyframe();
                    }
                    // Nobody is listening any more: keep the pipeline running quietly.
                    PushOutcome::Closed => {}
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
}
