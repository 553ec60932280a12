//! Microphone → echo cancellation and noise suppression → Opus → encoded packets.
//!
//! `source → audioconvert → audioresample → S16 48 kHz mono → webrtcdsp → audioconvert →
//! opusenc (20 ms, in-band FEC, DTX, voice) → appsink`. The echo canceller subtracts what the
//! speaker played; it finds that reference through the named `webrtcechoprobe` in the
//! [`RtpAudioPlayback`](super::RtpAudioPlayback) pipeline, which therefore has to exist first.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::watch;

use super::config::AudioSource;
use super::elements::{self, capsfilter, make, set, set_nick};
use super::frames::{EncodedFrame, FrameReceiver, PushOutcome, frame_channel};
use super::pipeline::{Pipeline, PipelineHealth};
use super::{MediaError, init};

/// How the microphone pipeline is set up.
#[derive(Debug, Clone)]
pub struct AudioSendConfig {
    pub source: AudioSource,
    pub bitrate_bps: u32,
    /// Name of the `webrtcechoprobe` that sees the speaker's signal; `None` turns echo
    /// cancellation off (no playback pipeline, or a headset).
    pub echo_probe: Option<String>,
    pub noise_suppression: bool,
    /// Loss the Opus encoder plans FEC for, in percent.
    pub expected_loss_percent: u32,
    /// Discontinuous transmission: during silence Opus sends a tiny comfort-noise frame
    /// instead of full ones, which leaves the bits to video on a poor line (and costs nothing
    /// while the resident speaks).
    pub dtx: bool,
    /// Encoded packets held for a slow consumer before the oldest is dropped.
    pub queue_packets: usize,
}

impl AudioSendConfig {
    pub fn new(source: AudioSource, echo_probe: Option<String>) -> AudioSendConfig {
        AudioSendConfig {
            source,
            bitrate_bps: 32_000,
            echo_probe,
            noise_suppression: true,
            expected_loss_percent: 10,
            dtx: true,
            queue_packets: 25,
        }
    }
}

/// Counters of the microphone pipeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AudioSendStats {
    pub packets_encoded: u64,
    pub bytes_encoded: u64,
    pub packets_dropped: u64,
}

#[derive(Default)]
struct Counters {
    packets_encoded: AtomicU64,
    bytes_encoded: AtomicU64,
    packets_dropped: AtomicU64,
}

/// A running (or paused) microphone pipeline.
pub struct AudioSendPipeline {
    pipeline: Pipeline,
    counters: Arc<Counters>,
    frames: Option<FrameReceiver<EncodedFrame>>,
}

impl AudioSendPipeline {
    pub fn new(config: AudioSendConfig) -> Result<AudioSendPipeline, MediaError> {
        init()?;
        if !(6_000..=510_000).contains(&config.bitrate_bps) {
            return Err(MediaError::Config(format!(
                "opus bitrate {} outside 6000..=510000",
                config.bitrate_bps
            )));
        }
        let pipeline = Pipeline::new("microphone")?;
        let counters = Arc::new(Counters::default());

        let source = elements::audio_source(&config.source)?;
        let convert = make("audioconvert")?;
        let resample = make("audioresample")?;
        let caps = capsfilter(
            gst::Caps::builder("audio/x-raw")
                .field("format", "S16LE")
                .field("rate", 48_000i32)
                .field("channels", 1i32)
                .field("layout", "interleaved")
                .build(),
        )?;
        let dsp = make("webrtcdsp")?;
        match &config.echo_probe {
            Some(probe) => {
                set(&dsp, "echo-cancel", true)?;
                set(&dsp, "probe", probe.as_str())?;
                // The probe's delay to the microphone is not known on a kiosk's sound card.
                set(&dsp, "delay-agnostic", true)?;
            }
            None => set(&dsp, "echo-cancel", false)?,
        }
        set(&dsp, "noise-suppression", config.noise_suppression)?;
        set_nick(&dsp, "noise-suppression-level", "high")?;
        set(&dsp, "high-pass-filter", true)?;
        set(&dsp, "gain-control", true)?;
        let convert_out = make("audioconvert")?;
        let encoder = make("opusenc")?;
        set(&encoder, "bitrate", config.bitrate_bps as i32)?;
        set_nick(&encoder, "frame-size", "20")?;
        set_nick(&encoder, "audio-type", "voice")?;
        set(&encoder, "inband-fec", true)?;
        set(
            &encoder,
            "packet-loss-percentage",
            config.expected_loss_percent.min(100) as i32,
        )?;
        set(&encoder, "dtx", config.dtx)?;
        let sink = gst_app::AppSink::builder()
            .sync(false)
            .max_buffers(8)
            .enable_last_sample(false)
            .build();
        let sink_element: gst::Element = sink.clone().upcast();
        pipeline.add_chain(&[
            &source,
            &convert,
            &resample,
            &caps,
            &dsp,
            &convert_out,
            &encoder,
            &sink_element,
        ])?;

        let (tx, rx) = frame_channel(config.queue_packets);
        let sink_counters = Arc::clone(&counters);
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
                    let frame = EncodedFrame {
                        data: Bytes::copy_from_slice(map.as_slice()),
                        pts: buffer.pts().map(|t| Duration::from_nanos(t.nseconds())),
                        duration: buffer
                            .duration()
                            .map(|t| Duration::from_nanos(t.nseconds())),
                        keyframe: true,
                    };
                    sink_counters
                        .packets_encoded
                        .fetch_add(1, Ordering::Relaxed);
                    sink_counters
                        .bytes_encoded
                        .fetch_add(frame.data.len() as u64, Ordering::Relaxed);
                    if tx.push(frame) == PushOutcome::DroppedOldest {
                        sink_counters
                            .packets_dropped
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );

        Ok(AudioSendPipeline {
            pipeline,
            counters,
            frames: Some(rx),
        })
    }

    /// The Opus packets, 20 ms each. Taken once; later calls return `None`.
    pub fn take_frames(&mut self) -> Option<FrameReceiver<EncodedFrame>> {
        self.frames.take()
    }

    pub fn start(&self) -> Result<(), MediaError> {
        self.pipeline.set_state(gst::State::Playing)
    }

    pub fn pause(&self) -> Result<(), MediaError> {
        self.pipeline.set_state(gst::State::Paused)
    }

    pub fn stats(&self) -> AudioSendStats {
        AudioSendStats {
            packets_encoded: self.counters.packets_encoded.load(Ordering::Relaxed),
            bytes_encoded: self.counters.bytes_encoded.load(Ordering::Relaxed),
            packets_dropped: self.counters.packets_dropped.load(Ordering::Relaxed),
        }
    }

    pub fn health(&self) -> watch::Receiver<PipelineHealth> {
        self.pipeline.health()
    }

    pub fn check(&self) -> Result<(), MediaError> {
        self.pipeline.check()
    }
}
