//! The microphone and speaker→microphone checks.
//!
//! An [`AudioRig`] records the microphone and plays a tone on the speaker. On a kiosk that is
//! [`CpalRig`] (cpal: raw samples from the sound card, as the design asks for level metering
//! and the loop test). A simulated kiosk uses [`SimulatedRig`]: the microphone is the live
//! call's own simulated source (`audiotestsrc`, through the same element builder), recorded
//! through a GStreamer pipeline; the "room" adds what the simulated speaker plays into what the
//! simulated microphone records, at an attenuation and delay. A silent microphone is a dead
//! capsule (it records zeros, hearing neither the room nor the speaker); a silent speaker puts
//! nothing into the room. Either way, the recordings go through the same analysis
//! ([`audio_analysis`](super::audio_analysis)) a kiosk's do.
//!
//! Everything here blocks; the runner calls it on a worker thread with a time limit.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use device_profiles::AudioSelfTest;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use protocol::device::DeviceKind;
use protocol::inspection::CheckResult;

use super::audio_analysis::{self, CLIP_SHARE, SILENCE_DBFS, Tone};
use super::check::{Check, bi};
use crate::devices::faults::{MicrophoneFault, SpeakerFault};
use crate::media::AudioSource;
use crate::media::elements;

/// The sample rate every rig records at (resampled if the device differs).
pub const RATE: u32 = 48_000;
/// How long the level check listens.
const LISTEN: Duration = Duration::from_millis(1000);
/// Recorded before the tone starts: the background the tone must stand out from.
const LEAD_MS: u32 = 400;
/// Recorded after the tone ends: playback and acoustic delay.
const TAIL_MS: u32 = 500;
/// How loud the speaker plays the tone (−6 dBFS).
const TONE_AMPLITUDE: f32 = 0.5;

/// A microphone recording, mono `f32` at [`RATE`].
pub struct Recording {
    pub samples: Vec<f32>,
}

/// Which end of the sound path a failure is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoundDevice {
    Microphone,
    Speaker,
}

impl SoundDevice {
    fn names(self) -> (&'static str, &'static str) {
        match self {
            SoundDevice::Microphone => ("麦克风", "microphone"),
            SoundDevice::Speaker => ("扬声器", "speaker"),
        }
    }
}

/// Why a rig could not record or play, sorted by what a technician does about it (the
/// XFS4IoT state in brackets).
#[derive(Debug, Clone, thiserror::Error)]
pub enum RigError {
    /// `noDevice`: no such device (unplugged, wrong name, no sound card).
    #[error("no {which} found{detail}", which = .0.names().1, detail = detail_suffix(.1))]
    NoDevice(SoundDevice, Option<String>),
    /// `deviceBusy`: another program holds the device.
    #[error("the {which} is in use by another program: {message}", which = .0.names().1, message = .1)]
    Busy(SoundDevice, String),
    /// Opening the device was not allowed.
    #[error("no permission to open the {which}: {message}", which = .0.names().1, message = .1)]
    Denied(SoundDevice, String),
    /// `hardwareError`: anything else the device or driver reported.
    #[error("{0}")]
    Device(String),
}

fn detail_suffix(detail: &Option<String>) -> String {
    detail.as_ref().map_or(String::new(), |d| format!(": {d}"))
}

impl RigError {
    /// A cpal error on `device`, sorted by its kind.
    fn cpal(device: SoundDevice, e: &cpal::Error) -> RigError {
        use cpal::ErrorKind;
        match e.kind() {
            ErrorKind::DeviceNotAvailable | ErrorKind::HostUnavailable => {
                RigError::NoDevice(device, Some(e.to_string()))
            }
            ErrorKind::DeviceBusy => RigError::Busy(device, e.to_string()),
            ErrorKind::PermissionDenied => RigError::Denied(device, e.to_string()),
            _ => RigError::Device(format!("{}: {e}", device.names().1)),
        }
    }
}

/// The kiosk's microphone and speaker, for the self-test.
pub trait AudioRig: Send + Sync {
    /// Records the microphone for `duration`.
    fn record(&self, duration: Duration) -> Result<Recording, RigError>;
    /// Records for `lead + tone + tail`, starting the tone on the speaker after `lead`.
    fn play_and_record(
        &self,
        tone: &Tone,
        lead: Duration,
        tail: Duration,
    ) -> Result<Recording, RigError>;
}

// --- the checks ----------------------------------------------------------------------------------

const MIC: Option<DeviceKind> = Some(DeviceKind::Microphone);
const SPEAKER: Option<DeviceKind> = Some(DeviceKind::Speaker);

/// `microphone.level`: there is a signal, and it does not clip.
pub fn check_microphone(rig: &dyn AudioRig) -> CheckResult {
    let recording = match rig.record(LISTEN) {
        Ok(r) => r,
        Err(e) => return device_failure("microphone.level", MIC, &e),
    };
    let level = audio_analysis::level(&recording.samples);
    let check = Check::new("microphone.level", MIC)
        .measure("level", level.rms_dbfs.max(-200.0), "dBFS")
        .measure("peak", f64::from(level.peak), "")
        .measure("clipped", level.clipped * 100.0, "%");
    if recording.samples.is_empty() || level.rms_dbfs < SILENCE_DBFS {
        return check.fail(
            bi(
                format!("麦克风没有声音信号（{:.0} dBFS）", level.rms_dbfs.max(-200.0)),
                format!("hardwareError: the microphone delivers silence ({:.0} dBFS)", level.rms_dbfs.max(-200.0)),
            ),
            bi(
                "检查麦克风是否插好、是否被静音（alsamixer 中的采集开关与音量）；仍无声音则更换麦克风",
                "check that the microphone is plugged in and not muted (capture switch and level in alsamixer); if it stays silent, replace it",
            ),
        );
    }
    if level.clipped > CLIP_SHARE {
        return check.warn(
            bi(
                format!(
                    "麦克风输入过载（{:.2}% 采样削波，电平 {:.0} dBFS）",
                    level.clipped * 100.0,
                    level.rms_dbfs
                ),
                format!(
                    "the microphone clips ({:.2}% of samples, level {:.0} dBFS)",
                    level.clipped * 100.0,
                    level.rms_dbfs
                ),
            ),
            bi(
                "在 alsamixer 中调低麦克风增益，远离噪声源",
                "lower the microphone gain in alsamixer and keep it away from noise sources",
            ),
        );
    }
    check.pass(bi(
        format!("麦克风有信号，电平 {:.0} dBFS，无削波", level.rms_dbfs),
        format!("online: signal at {:.0} dBFS, no clipping", level.rms_dbfs),
    ))
}

/// `speaker.loop`: a tone played on the speaker is heard by the microphone.
pub fn check_loop(rig: &dyn AudioRig, st: &AudioSelfTest, min_level_dbfs: f64) -> CheckResult {
    let tone = Tone {
        frequency: f64::from(st.tone_hz),
        duration_ms: st.tone_ms,
        amplitude: TONE_AMPLITUDE,
    };
    let recording = match rig.play_and_record(
        &tone,
        Duration::from_millis(u64::from(LEAD_MS)),
        Duration::from_millis(u64::from(TAIL_MS)),
    ) {
        Ok(r) => r,
        Err(e) => return device_failure("speaker.loop", SPEAKER, &e),
    };
    let found = audio_analysis::find_tone(&recording.samples, RATE, LEAD_MS, &tone, min_level_dbfs);
    let mut check = Check::new("speaker.loop", SPEAKER)
        .measure("tone_level", found.tone_dbfs.max(-200.0), "dBFS")
        .measure("background", found.background_dbfs.max(-200.0), "dBFS")
        .measure("tone", f64::from(st.tone_hz), "Hz");
    if let Some(d) = found.delay_ms {
        check = check.measure("delay", f64::from(d), "ms");
    }
    if found.heard {
        return check.pass(bi(
            format!(
                "扬声器播放的 {} Hz 提示音被麦克风收到，电平 {:.0} dBFS",
                st.tone_hz, found.tone_dbfs
            ),
            format!(
                "online: the {} Hz tone played on the speaker reached the microphone at {:.0} dBFS",
                st.tone_hz, found.tone_dbfs
            ),
        ));
    }
    check.fail(
        bi(
            format!(
                "麦克风没有收到扬声器的提示音（{} Hz 电平 {:.0} dBFS，要求至少 {:.0} dBFS）",
                st.tone_hz,
                found.tone_dbfs.max(-200.0),
                min_level_dbfs
            ),
            format!(
                "the microphone did not hear the speaker's tone ({} Hz at {:.0} dBFS, at least {:.0} dBFS needed)",
                st.tone_hz,
                found.tone_dbfs.max(-200.0),
                min_level_dbfs
            ),
        ),
        bi(
            "检查扬声器电源、连线和音量（alsamixer）；确认扬声器未被静音；若麦克风检查也失败，先处理麦克风",
            "check the speaker's power, cable and volume (alsamixer) and that it is not muted; if the microphone check failed too, fix the microphone first",
        ),
    )
}

fn device_failure(id: &'static str, device: Option<DeviceKind>, e: &RigError) -> CheckResult {
    let check = Check::new(id, device);
    let connections = bi(
        "检查声卡、麦克风和扬声器的连接与供电；确认配置 media.microphone / media.speaker 指向正确的设备（aplay -l、arecord -l 可列出声卡）",
        "check the sound card, microphone and speaker connections and power; check that media.microphone / media.speaker name the right devices (aplay -l and arecord -l list the sound cards)",
    );
    match e {
        RigError::NoDevice(which, _) => check.fail(
            bi(
                format!("未找到{}（noDevice）", which.names().0),
                format!("noDevice: {e}"),
            ),
            connections,
        ),
        RigError::Busy(which, _) => check.fail(
            bi(
                format!("{}被其他程序占用（deviceBusy）", which.names().0),
                format!("deviceBusy: {e}"),
            ),
            bi(
                "终端服务通话时占用声卡：停止终端服务（systemctl stop rvw-agent）后用 agent selftest --standalone 再检查",
                "the kiosk service holds the sound card for calls: stop it (systemctl stop rvw-agent) and check again with agent selftest --standalone",
            ),
        ),
        RigError::Denied(which, _) => check.fail(
            bi(
                format!("无权打开{}（hardwareError）", which.names().0),
                format!("hardwareError: {e}"),
            ),
            bi(
                "把运行终端程序的用户加入 audio 组，重新登录后再检查",
                "add the agent's user to the audio group, log in again and check again",
            ),
        ),
        RigError::Device(_) => check.fail(
            bi(format!("声卡出错（hardwareError）：{e}"), format!("hardwareError: {e}")),
            connections,
        ),
    }
}

// --- the simulated rig -------------------------------------------------------------------------

/// The simulated microphone and speaker (see the module notes).
pub struct SimulatedRig {
    /// The live call's simulated microphone source.
    pub microphone: AudioSource,
    pub microphone_fault: Option<MicrophoneFault>,
    pub speaker_fault: Option<SpeakerFault>,
}

/// How much of the speaker's sound reaches the simulated microphone (−20 dB), and after what
/// delay.
const ROOM_COUPLING: f32 = 0.1;
const ROOM_DELAY_MS: u32 = 40;

impl SimulatedRig {
    fn capsule_gain(&self) -> f32 {
        match self.microphone_fault {
            Some(MicrophoneFault::Silent) => 0.0,
            None => 1.0,
        }
    }
}

impl AudioRig for SimulatedRig {
    fn record(&self, duration: Duration) -> Result<Recording, RigError> {
        let mut samples = record_source(&self.microphone, duration)?;
        let gain = self.capsule_gain();
        samples.iter_mut().for_each(|s| *s *= gain);
        Ok(Recording { samples })
    }

    fn play_and_record(
        &self,
        tone: &Tone,
        lead: Duration,
        tail: Duration,
    ) -> Result<Recording, RigError> {
        let total = lead + Duration::from_millis(u64::from(tone.duration_ms)) + tail;
        let mut samples = record_source(&self.microphone, total)?;
        if self.speaker_fault.is_none() {
            let start =
                samples_in(lead) + samples_in(Duration::from_millis(u64::from(ROOM_DELAY_MS)));
            for (i, s) in tone.render(RATE).into_iter().enumerate() {
                if let Some(slot) = samples.get_mut(start + i) {
                    *slot += s * ROOM_COUPLING;
                }
            }
        }
        let gain = self.capsule_gain();
        samples
            .iter_mut()
            .for_each(|s| *s = (*s * gain).clamp(-1.0, 1.0));
        Ok(Recording { samples })
    }
}

fn samples_in(d: Duration) -> usize {
    (d.as_micros() as u64 * u64::from(RATE) / 1_000_000) as usize
}

/// Records `duration` of `source` through GStreamer as mono `f32` at [`RATE`].
fn record_source(source: &AudioSource, duration: Duration) -> Result<Vec<f32>, RigError> {
    let err = |e: &dyn std::fmt::Display| RigError::Device(e.to_string());
    gst::init().map_err(|e| err(&e))?;
    let pipeline = gst::Pipeline::with_name("selftest-microphone");
    let src = elements::audio_source(source).map_err(|e| err(&e))?;
    let convert = elements::make("audioconvert").map_err(|e| err(&e))?;
    let resample = elements::make("audioresample").map_err(|e| err(&e))?;
    let caps = gst::Caps::builder("audio/x-raw")
        .field("format", "F32LE")
        .field("rate", RATE as i32)
        .field("channels", 1i32)
        .field("layout", "interleaved")
        .build();
    let sink = gst_app::AppSink::builder()
        .caps(&caps)
        .sync(false)
        .max_buffers(64)
        .build();
    let chain: [&gst::Element; 4] = [&src, &convert, &resample, sink.upcast_ref()];
    pipeline.add_many(chain).map_err(|e| err(&e))?;
    gst::Element::link_many(chain).map_err(|e| err(&e))?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| err(&e))?;
    let wanted = samples_in(duration);
    let mut samples = Vec::with_capacity(wanted);
    let deadline = Instant::now() + duration + Duration::from_secs(3);
    let bus = pipeline.bus();
    let result = loop {
        if samples.len() >= wanted {
            break Ok(());
        }
        if Instant::now() >= deadline {
            break Err(RigError::Device(format!(
                "麦克风未及时输出声音 / the microphone delivered {} of {} samples in time",
                samples.len(),
                wanted
            )));
        }
        if let Some(msg) = bus
            .as_ref()
            .and_then(|b| b.pop_filtered(&[gst::MessageType::Error]))
            && let gst::MessageView::Error(e) = msg.view()
        {
            break Err(RigError::Device(e.error().to_string()));
        }
        let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) else {
            continue;
        };
        let Some(buffer) = sample.buffer() else {
            continue;
        };
        let Ok(map) = buffer.map_readable() else {
            continue;
        };
        samples.extend(
            map.as_slice()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
    };
    let _ = pipeline.set_state(gst::State::Null);
    result?;
    samples.truncate(wanted);
    Ok(samples)
}

// --- the cpal rig --------------------------------------------------------------------------------

/// The kiosk's sound card through cpal. `microphone` / `speaker` are ALSA PCM names from
/// `[media]` (`alsa:<pcm>`); `None` takes the host's default device.
pub struct CpalRig {
    pub microphone: Option<String>,
    pub speaker: Option<String>,
}

/// Samples handed from cpal's callback thread; bounded, overflow dropped (the recording just
/// gets shorter and the check says so).
const CALLBACK_BACKLOG: usize = 512;

impl CpalRig {
    fn input(&self) -> Result<cpal::Device, RigError> {
        use cpal::traits::HostTrait;
        let host = cpal::default_host();
        match &self.microphone {
            Some(name) => host
                .input_devices()
                .map_err(|e| RigError::cpal(SoundDevice::Microphone, &e))?
                .find(|d| device_matches(d, name))
                .ok_or_else(|| RigError::NoDevice(SoundDevice::Microphone, Some(name.clone()))),
            None => host
                .default_input_device()
                .ok_or(RigError::NoDevice(SoundDevice::Microphone, None)),
        }
    }

    fn output(&self) -> Result<cpal::Device, RigError> {
        use cpal::traits::HostTrait;
        let host = cpal::default_host();
        match &self.speaker {
            Some(name) => host
                .output_devices()
                .map_err(|e| RigError::cpal(SoundDevice::Speaker, &e))?
                .find(|d| device_matches(d, name))
                .ok_or_else(|| RigError::NoDevice(SoundDevice::Speaker, Some(name.clone()))),
            None => host
                .default_output_device()
                .ok_or(RigError::NoDevice(SoundDevice::Speaker, None)),
        }
    }

    /// Records `duration`; `during` runs once the input stream is live (to start playback).
    fn capture(
        &self,
        duration: Duration,
        during: impl FnOnce() -> Result<Option<cpal::Stream>, RigError>,
    ) -> Result<Recording, RigError> {
        use cpal::traits::{DeviceTrait, StreamTrait};
        let device = self.input()?;
        let supported = device
            .default_input_config()
            .map_err(|e| RigError::cpal(SoundDevice::Microphone, &e))?;
        let config: cpal::StreamConfig = supported.config();
        let (channels, rate) = (usize::from(config.channels).max(1), config.sample_rate);
        let (tx, rx) = mpsc::sync_channel::<Vec<f32>>(CALLBACK_BACKLOG);
        let on_error =
            |e: cpal::Error| tracing::debug!(error = %e, "self-test microphone stream error");
        let timeout = Some(Duration::from_secs(3));
        let stream = match supported.sample_format() {
            cpal::SampleFormat::F32 => device.build_input_stream(
                config,
                move |data: &[f32], _: &cpal::InputCallbackInfo| {
                    let _ = tx.try_send(mono(data, channels, |s| s));
                },
                on_error,
                timeout,
            ),
            cpal::SampleFormat::I16 => device.build_input_stream(
                config,
                move |data: &[i16], _: &cpal::InputCallbackInfo| {
                    let _ = tx.try_send(mono(data, channels, |s| f32::from(s) / 32768.0));
                },
                on_error,
                timeout,
            ),
            cpal::SampleFormat::I32 => device.build_input_stream(
                config,
                move |data: &[i32], _: &cpal::InputCallbackInfo| {
                    let _ = tx.try_send(mono(data, channels, |s| s as f32 / 2_147_483_648.0));
                },
                on_error,
                timeout,
            ),
            other => {
                return Err(RigError::Device(format!(
                    "unsupported microphone sample format {other}"
                )));
            }
        }
        .map_err(|e| RigError::cpal(SoundDevice::Microphone, &e))?;
        stream
            .play()
            .map_err(|e| RigError::cpal(SoundDevice::Microphone, &e))?;
        let started = Instant::now();
        let mut playing = None;
        let mut during = Some(during);
        let mut samples = Vec::new();
        let wanted = (duration.as_secs_f64() * f64::from(rate)) as usize;
        let deadline = started + duration + Duration::from_secs(3);
        while samples.len() < wanted && Instant::now() < deadline {
            if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(50)) {
                samples.extend(chunk);
            }
            if let Some(start) = during.take() {
                playing = start()?;
            }
        }
        drop(playing);
        drop(stream);
        if samples.len() < wanted / 2 {
            return Err(RigError::Device(format!(
                "麦克风只输出了 {} 毫秒声音 / the microphone delivered only {} ms",
                samples.len() as u64 * 1000 / u64::from(rate.max(1)),
                samples.len() as u64 * 1000 / u64::from(rate.max(1))
            )));
        }
        Ok(Recording {
            samples: resample(&samples, rate, RATE),
        })
    }
}

fn device_matches(device: &cpal::Device, wanted: &str) -> bool {
    use cpal::traits::DeviceTrait;
    let id = device.id().map(|i| i.to_string()).unwrap_or_default();
    id == wanted || id.ends_with(&format!(":{wanted}")) || device.to_string() == wanted
}

fn mono<T: Copy>(data: &[T], channels: usize, to_f32: impl Fn(T) -> f32) -> Vec<f32> {
    data.chunks(channels)
        .map(|frame| frame.iter().map(|s| to_f32(*s)).sum::<f32>() / frame.len() as f32)
        .collect()
}

/// Linear resampling; enough for level and tone measurements.
fn resample(samples: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || from == 0 || samples.is_empty() {
        return samples.to_vec();
    }
    let n = (samples.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    (0..n)
        .map(|i| {
            let pos = i as f64 * f64::from(from) / f64::from(to);
            let j = pos as usize;
            let frac = (pos - j as f64) as f32;
            let a = samples[j.min(samples.len() - 1)];
            let b = samples[(j + 1).min(samples.len() - 1)];
            a + (b - a) * frac
        })
        .collect()
}

impl AudioRig for CpalRig {
    fn record(&self, duration: Duration) -> Result<Recording, RigError> {
        self.capture(duration, || Ok(None))
    }

    fn play_and_record(
        &self,
        tone: &Tone,
        lead: Duration,
        tail: Duration,
    ) -> Result<Recording, RigError> {
        use cpal::traits::{DeviceTrait, StreamTrait};
        let output = self.output()?;
        let supported = output
            .default_output_config()
            .map_err(|e| RigError::cpal(SoundDevice::Speaker, &e))?;
        let config: cpal::StreamConfig = supported.config();
        let (channels, rate) = (usize::from(config.channels).max(1), config.sample_rate);
        // Silence for the lead, then the tone: one buffer the callback plays out.
        let mut signal = vec![0f32; (lead.as_secs_f64() * f64::from(rate)) as usize];
        signal.extend(tone.render(rate));
        let total = lead + Duration::from_millis(u64::from(tone.duration_ms)) + tail;
        let format = supported.sample_format();
        self.capture(total, move || {
            let mut position = 0usize;
            let mut next = move || {
                let s = signal.get(position).copied().unwrap_or(0.0);
                position += 1;
                s
            };
            let on_error =
                |e: cpal::Error| tracing::debug!(error = %e, "self-test speaker stream error");
            let timeout = Some(Duration::from_secs(3));
            let stream = match format {
                cpal::SampleFormat::F32 => output.build_output_stream(
                    config,
                    move |data: &mut [f32], _: &cpal::OutputCallbackInfo| {
                        for frame in data.chunks_mut(channels) {
                            frame.fill(next());
                        }
                    },
                    on_error,
                    timeout,
                ),
                cpal::SampleFormat::I16 => output.build_output_stream(
                    config,
                    move |data: &mut [i16], _: &cpal::OutputCallbackInfo| {
                        for frame in data.chunks_mut(channels) {
                            frame.fill((next() * 32767.0) as i16);
                        }
                    },
                    on_error,
                    timeout,
                ),
                cpal::SampleFormat::I32 => output.build_output_stream(
                    config,
                    move |data: &mut [i32], _: &cpal::OutputCallbackInfo| {
                        for frame in data.chunks_mut(channels) {
                            frame.fill((f64::from(next()) * 2_147_483_647.0) as i32);
                        }
                    },
                    on_error,
                    timeout,
                ),
                other => {
                    return Err(RigError::Device(format!(
                        "unsupported speaker sample format {other}"
                    )));
                }
            }
            .map_err(|e| RigError::cpal(SoundDevice::Speaker, &e))?;
            stream
                .play()
                .map_err(|e| RigError::cpal(SoundDevice::Speaker, &e))?;
            Ok(Some(stream))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_keeps_the_length_ratio_and_the_tone() {
        let tone = Tone {
            frequency: 1000.0,
            duration_ms: 200,
            amplitude: 0.5,
        };
        let at44 = tone.render(44_100);
        let at48 = resample(&at44, 44_100, RATE);
        assert_eq!(at48.len(), at44.len() * 48_000 / 44_100);
        let a = audio_analysis::tone_amplitude(&at48[960..at48.len() - 960], RATE, 1000.0);
        assert!((a - 0.5).abs() < 0.05, "{a}");
        assert_eq!(mono(&[1.0f32, 0.0, 0.5, 0.5], 2, |s| s), vec![0.5, 0.5]);
    }

    #[test]
    fn sound_card_errors_say_what_state_and_what_to_do() {
        let gone = RigError::cpal(
            SoundDevice::Microphone,
            &cpal::Error::new(cpal::ErrorKind::DeviceNotAvailable),
        );
        let r = device_failure("microphone.level", MIC, &gone);
        assert!(r.detail.zh.starts_with("未找到麦克风（noDevice）"), "{r:?}");
        assert!(r.detail.en.starts_with("noDevice: no microphone found"));
        assert!(
            r.remedy
                .as_ref()
                .is_some_and(|m| m.zh.contains("media.microphone"))
        );
        let busy = RigError::cpal(
            SoundDevice::Speaker,
            &cpal::Error::new(cpal::ErrorKind::DeviceBusy),
        );
        let r = device_failure("speaker.loop", SPEAKER, &busy);
        assert!(
            r.detail
                .zh
                .starts_with("扬声器被其他程序占用（deviceBusy）"),
            "{r:?}"
        );
        assert!(
            r.remedy
                .as_ref()
                .is_some_and(|m| m.en.contains("--standalone"))
        );
        let odd = RigError::cpal(
            SoundDevice::Speaker,
            &cpal::Error::new(cpal::ErrorKind::Xrun),
        );
        let r = device_failure("speaker.loop", SPEAKER, &odd);
        assert!(
            r.detail.zh.starts_with("声卡出错（hardwareError）"),
            "{r:?}"
        );
    }
}
