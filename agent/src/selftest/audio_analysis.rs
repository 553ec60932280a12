//! Sound measurements for the microphone and speaker→microphone checks, on mono `f32` samples
//! in −1…1. Pure functions: the checks feed them what the microphone recorded (through cpal on
//! a kiosk, through the simulated source otherwise), unit tests feed them synthetic signals.
//!
//! Levels are in dBFS relative to a full-scale sine (a sine of amplitude 1.0 is 0 dBFS), so a
//! tone's level reads the same whether measured as a whole or picked out by the Goertzel
//! filter.

use std::f64::consts::PI;

/// Quieter than this, a microphone delivers no signal at all (even a quiet room's noise and a
/// preamp's hiss are well above it).
pub const SILENCE_DBFS: f64 = -90.0;
/// A sample at or above this magnitude is clipped.
pub const CLIP_LEVEL: f32 = 0.999;
/// More clipped samples than this share means the input is overdriven.
pub const CLIP_SHARE: f64 = 0.001;
/// The tone must stand this far above what the microphone hears at its frequency without it.
pub const TONE_MARGIN_DB: f64 = 10.0;
/// Analysis block for the tone detector.
pub const BLOCK_MS: u32 = 20;

/// Level figures of one recording.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    /// RMS level, dBFS (full-scale sine = 0).
    pub rms_dbfs: f64,
    pub peak: f32,
    /// Share of samples at the clip level.
    pub clipped: f64,
}

pub fn dbfs(amplitude: f64) -> f64 {
    if amplitude <= 0.0 {
        -200.0
    } else {
        20.0 * amplitude.log10()
    }
}

pub fn level(samples: &[f32]) -> Level {
    if samples.is_empty() {
        return Level {
            rms_dbfs: -200.0,
            peak: 0.0,
            clipped: 0.0,
        };
    }
    let sum_sq: f64 = samples.iter().map(|s| f64::from(*s).powi(2)).sum();
    let rms = (sum_sq / samples.len() as f64).sqrt();
    let peak = samples.iter().fold(0f32, |m, s| m.max(s.abs()));
    let clipped =
        samples.iter().filter(|s| s.abs() >= CLIP_LEVEL).count() as f64 / samples.len() as f64;
    Level {
        // RMS of a full-scale sine is 1/√2.
        rms_dbfs: dbfs(rms * std::f64::consts::SQRT_2),
        peak,
        clipped,
    }
}

/// The amplitude of the `frequency` component of `samples` (Goertzel), as the amplitude of the
/// sine it corresponds to.
pub fn tone_amplitude(samples: &[f32], sample_rate: u32, frequency: f64) -> f64 {
    let n = samples.len();
    if n == 0 || sample_rate == 0 {
        return 0.0;
    }
    let k = (n as f64 * frequency / f64::from(sample_rate)).round();
    let omega = 2.0 * PI * k / n as f64;
    let coeff = 2.0 * omega.cos();
    let (mut s1, mut s2) = (0f64, 0f64);
    for x in samples {
        let s0 = f64::from(*x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power.max(0.0).sqrt() / n as f64
}

/// A tone the speaker plays: a sine with 10 ms fades (no clicks), at `amplitude`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tone {
    pub frequency: f64,
    pub duration_ms: u32,
    pub amplitude: f32,
}

impl Tone {
    /// The tone as samples at `sample_rate`.
    pub fn render(&self, sample_rate: u32) -> Vec<f32> {
        let n = (u64::from(sample_rate) * u64::from(self.duration_ms) / 1000) as usize;
        let fade = (sample_rate / 100) as usize;
        (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(sample_rate);
                let envelope = if i < fade {
                    i as f64 / fade as f64
                } else if n - i < fade {
                    (n - i) as f64 / fade as f64
                } else {
                    1.0
                };
                (f64::from(self.amplitude) * envelope * (2.0 * PI * self.frequency * t).sin())
                    as f32
            })
            .collect()
    }
}

/// What the speaker→microphone loop heard.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoopFindings {
    /// The tone's level while it played, dBFS.
    pub tone_dbfs: f64,
    /// The level at the tone's frequency before it played, dBFS.
    pub background_dbfs: f64,
    /// When the tone was first heard, after the speaker started it (playback + acoustic delay).
    pub delay_ms: Option<u32>,
    pub heard: bool,
}

/// Looks for `tone` in a recording whose first `lead_ms` were recorded before the speaker
/// started it. `min_level_dbfs` is the device profile's bar.
pub fn find_tone(
    recording: &[f32],
    sample_rate: u32,
    lead_ms: u32,
    tone: &Tone,
    min_level_dbfs: f64,
) -> LoopFindings {
    let block = ((sample_rate * BLOCK_MS) / 1000).max(1) as usize;
    let levels: Vec<f64> = recording
        .chunks_exact(block)
        .map(|b| dbfs(tone_amplitude(b, sample_rate, tone.frequency)))
        .collect();
    let lead_blocks = (lead_ms / BLOCK_MS) as usize;
    // The first blocks may hold the device's start-up transient.
    let background: Vec<f64> = levels
        .iter()
        .take(lead_blocks)
        .skip(lead_blocks / 4)
        .copied()
        .collect();
    let background_dbfs = median(&background).unwrap_or(-200.0);
    let after: Vec<f64> = levels.iter().skip(lead_blocks).copied().collect();
    let threshold = (background_dbfs + TONE_MARGIN_DB).max(min_level_dbfs);
    let delay_ms = after
        .iter()
        .position(|l| *l >= threshold)
        .map(|i| (i as u32) * BLOCK_MS);
    // The tone's level: the median of the loudest blocks, as many as half the tone spans, so a
    // click or a single loud block does not count as hearing it.
    let mut sorted = after.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let span = ((tone.duration_ms / BLOCK_MS) as usize / 2).max(1);
    let tone_dbfs = median(&sorted[..span.min(sorted.len())]).unwrap_or(-200.0);
    LoopFindings {
        tone_dbfs,
        background_dbfs,
        delay_ms,
        heard: tone_dbfs >= threshold,
    }
}

fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 48_000;

    fn sine(freq: f64, amplitude: f32, ms: u32) -> Vec<f32> {
        Tone {
            frequency: freq,
            duration_ms: ms,
            amplitude,
        }
        .render(RATE)
    }

    /// Deterministic noise in −amplitude…amplitude.
    fn noise(amplitude: f32, n: usize) -> Vec<f32> {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ((x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * amplitude
            })
            .collect()
    }

    #[test]
    fn levels() {
        let l = level(&sine(440.0, 0.5, 500));
        assert!((l.rms_dbfs - dbfs(0.5)).abs() < 0.2, "{l:?}");
        assert!(l.clipped == 0.0 && (l.peak - 0.5).abs() < 0.01);
        let silent = level(&vec![0.0; 4800]);
        assert!(silent.rms_dbfs < SILENCE_DBFS);
        let clipped = level(
            &sine(440.0, 1.5, 100)
                .iter()
                .map(|s| s.clamp(-1.0, 1.0))
                .collect::<Vec<_>>(),
        );
        assert!(clipped.clipped > CLIP_SHARE);
        assert_eq!(level(&[]).peak, 0.0);
    }

    #[test]
    fn goertzel_picks_the_tone_out() {
        let mut mix = sine(1000.0, 0.1, 200);
        for (m, s) in mix.iter_mut().zip(sine(440.0, 0.5, 200)) {
            *m += s;
        }
        let a = tone_amplitude(&mix, RATE, 1000.0);
        assert!((a - 0.1).abs() < 0.01, "{a}");
        assert!(tone_amplitude(&sine(440.0, 0.5, 200), RATE, 1000.0) < 0.01);
        assert_eq!(tone_amplitude(&[], RATE, 1000.0), 0.0);
    }

    #[test]
    fn tone_heard_over_background_with_its_delay() {
        let tone = Tone {
            frequency: 1000.0,
            duration_ms: 500,
            amplitude: 0.5,
        };
        let lead = 300;
        let total = RATE as usize * 1200 / 1000;
        let mut recording = noise(0.01, total);
        let delay = RATE as usize * 60 / 1000;
        let start = RATE as usize * lead as usize / 1000 + delay;
        for (i, s) in tone.render(RATE).iter().enumerate() {
            recording[start + i] += s * 0.05;
        }
        let found = find_tone(&recording, RATE, lead, &tone, -40.0);
        assert!(found.heard, "{found:?}");
        assert!((found.tone_dbfs - dbfs(0.025)).abs() < 1.5, "{found:?}");
        let delay_ms = found.delay_ms.expect("delay");
        assert!((40..=100).contains(&delay_ms), "{found:?}");

        // The same recording without the tone: nothing heard.
        let quiet = noise(0.01, total);
        let found = find_tone(&quiet, RATE, lead, &tone, -40.0);
        assert!(!found.heard && found.delay_ms.is_none(), "{found:?}");

        // A tone present all along (e.g. a hum at that frequency) is not the loop.
        let hum = sine(1000.0, 0.05, 1200);
        assert!(!find_tone(&hum, RATE, lead, &tone, -40.0).heard);
    }
}
