//! Received audio RTP → jitter buffer → Opus decode → echo probe → speaker.
//!
//! `appsrc (RTP) → rtpjitterbuffer → rtpopusdepay → opusdec (PLC, in-band FEC) →
//! audioconvert → audioresample → S16 48 kHz mono → volume → webrtcechoprobe → audioconvert →
//! audioresample → sink`. The probe records exactly what goes to the speaker, which is the
//! far-end reference the microphone pipeline's echo canceller subtracts; the `volume` element
//! (the resident's volume −/＋ on the kiosk screen) sits before it so that reference includes
//! the resident's choice. The probe's name is
//! unique per instance; hand [`RtpAudioPlayback::echo_probe_name`] to
//! [`AudioSendConfig`](super::AudioSendConfig), and build this pipeline first.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use tokio::sync::watch;

use super::config::AudioOutput;
use super::elements::{self, capsfilter, make, make_named, set};
use super::pipeline::{Pipeline, PipelineHealth};
use super::rtp_input::RtpInput;
use super::{MediaError, init};

/// Counters of the playback pipeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AudioPlaybackStats {
    pub packets_pushed: u64,
    pub packets_dropped: u64,
    pub packets_rejected: u64,
    /// Decoded audio buffers that reached the speaker side of the echo probe.
    pub buffers_played: u64,
    /// Of those, buffers with a peak above -50 dBFS: the clerk was audible, not silence or
    /// concealment noise.
    pub audible_buffers: u64,
    /// Peak of the last buffer played, 0–32767.
    pub last_peak: u16,
}

/// A peak above this (-50 dBFS of full scale) counts as audible.
const AUDIBLE_PEAK: u16 = 104;

/// Plays one incoming Opus stream and feeds the echo canceller's reference.
pub struct RtpAudioPlayback {
    pipeline: Pipeline,
    input: RtpInput,
    buffers_played: Arc<AtomicU64>,
    audible_buffers: Arc<AtomicU64>,
    last_peak: Arc<std::sync::atomic::AtomicU16>,
    played: watch::Receiver<u64>,
    probe_name: String,
    volume: gst::Element,
}

/// The loudest the resident may turn the clerk's voice: 1.5 × as decoded. Louder would clip
/// speech that is already near full scale.
pub const MAX_SPEAKER_GAIN: f64 = 1.5;

static PROBE_SERIAL: AtomicU64 = AtomicU64::new(0);

impl RtpAudioPlayback {
    pub fn new(
        output: &AudioOutput,
        payload_type: u8,
        latency: Duration,
    ) -> Result<RtpAudioPlayback, MediaError> {
        init()?;
        let pipeline = Pipeline::new("speaker")?;
        // The canceller finds its probe by name in a process-wide list, so names must not
        // collide between two calls (or two peers in a test).
        let probe_name = format!(
            "agent-echo-probe-{}",
            PROBE_SERIAL.fetch_add(1, Ordering::Relaxed)
        );
        let (mut input, _keyframe_requests) = RtpInput::new("audio", "OPUS", 48_000, payload_type)?;
        input.normalise_payload_type();
        let jitter = make("rtpjitterbuffer")?;
        set(
            &jitter,
            "latency",
            u32::try_from(latency.as_millis()).unwrap_or(u32::MAX),
        )?;
        set(&jitter, "do-lost", true)?;
        let depay = make("rtpopusdepay")?;
        let decoder = make("opusdec")?;
        set(&decoder, "plc", true)?;
        set(&decoder, "use-inband-fec", true)?;
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
        let volume = make("volume")?;
        let probe = make_named("webrtcechoprobe", &probe_name)?;
        let convert_out = make("audioconvert")?;
        let resample_out = make("audioresample")?;
        let sink = elements::audio_sink(output)?;
        let appsrc = input.element();
        pipeline.add_chain(&[
            &appsrc,
            &jitter,
            &depay,
            &decoder,
            &convert,
            &resample,
            &caps,
            &volume,
            &probe,
            &convert_out,
            &resample_out,
            &sink,
        ])?;

        let buffers_played = Arc::new(AtomicU64::new(0));
        let audible_buffers = Arc::new(AtomicU64::new(0));
        let last_peak = Arc::new(std::sync::atomic::AtomicU16::new(0));
        let (played_tx, played) = watch::channel(0u64);
        if let Some(pad) = probe.static_pad("src") {
            let counter = Arc::clone(&buffers_played);
            let audible = Arc::clone(&audible_buffers);
            let peak_out = Arc::clone(&last_peak);
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                // S16LE mono at this point (the capsfilter above); a 20 ms buffer is 960
                // samples, so the scan is cheap.
                let peak = info
                    .buffer()
                    .and_then(|b| b.map_readable().ok())
                    .map(|m| s16_peak(m.as_slice()))
                    .unwrap_or(0);
                peak_out.store(peak, Ordering::Relaxed);
                if peak > AUDIBLE_PEAK {
                    audible.fetch_add(1, Ordering::Relaxed);
                }
                let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
                played_tx.send_replace(n);
                gst::PadProbeReturn::Ok
            });
        }

        Ok(RtpAudioPlayback {
            pipeline,
            input,
            buffers_played,
            audible_buffers,
            last_peak,
            played,
            probe_name,
            volume,
        })
    }

    /// Sets the gain of the clerk's voice (1.0: as decoded), clamped to
    /// 0…[`MAX_SPEAKER_GAIN`]; takes effect on the next buffer. A value that is not a number
    /// is refused.
    pub fn set_volume(&self, gain: f64) -> Result<(), MediaError> {
        if !gain.is_finite() {
            return Err(MediaError::Property {
                element: "volume".into(),
                property: "volume".into(),
                reason: "not a number".into(),
            });
        }
        set(&self.volume, "volume", gain.clamp(0.0, MAX_SPEAKER_GAIN))
    }

    /// The gain the pipeline's `volume` element has now (read from the element).
    pub fn volume(&self) -> f64 {
        self.volume.property::<f64>("volume")
    }

    /// The `webrtcechoprobe` element's name, for the microphone's echo canceller.
    pub fn echo_probe_name(&self) -> &str {
        &self.probe_name
    }

    pub fn start(&self) -> Result<(), MediaError> {
        self.pipeline.set_state(gst::State::Playing)
    }

    /// Hands one received RTP packet (decrypted) to the pipeline.
    pub fn push_rtp(&self, packet: Bytes) -> Result<(), MediaError> {
        self.input.push(packet)
    }

    pub fn stats(&self) -> AudioPlaybackStats {
        let input = &self.input.counters;
        AudioPlaybackStats {
            packets_pushed: input.packets_pushed.load(Ordering::Relaxed),
            packets_dropped: input.packets_dropped.load(Ordering::Relaxed),
            packets_rejected: input.packets_rejected.load(Ordering::Relaxed),
            buffers_played: self.buffers_played.load(Ordering::Relaxed),
            audible_buffers: self.audible_buffers.load(Ordering::Relaxed),
            last_peak: self.last_peak.load(Ordering::Relaxed),
        }
    }

    /// The count of buffers played so far, as a channel that changes with every buffer.
    pub fn played(&self) -> watch::Receiver<u64> {
        self.played.clone()
    }

    pub fn health(&self) -> watch::Receiver<PipelineHealth> {
        self.pipeline.health()
    }

    pub fn check(&self) -> Result<(), MediaError> {
        self.pipeline.check()
    }
}

/// The largest absolute sample of S16LE audio (an odd trailing byte is ignored).
fn s16_peak(bytes: &[u8]) -> u16 {
    bytes
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]).unsigned_abs())
        .max()
        .unwrap_or(0)
        .min(i16::MAX as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_of_s16le() {
        assert_eq!(s16_peak(&[]), 0);
        assert_eq!(s16_peak(&[0x01]), 0);
        let samples: Vec<u8> = [0i16, -300, 200, i16::MIN]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        assert_eq!(s16_peak(&samples), 32767);
        assert_eq!(s16_peak(&samples[..6]), 300);
    }
}
