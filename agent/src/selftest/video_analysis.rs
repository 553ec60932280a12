//! Picture measurements for the camera and document-camera checks, on 8-bit luma planes. Pure
//! functions: the checks feed them frames decoded by GStreamer (real or simulated source alike),
//! unit tests feed them synthetic planes.
//!
//! - exposure: mean luma, standard deviation, share of clipped pixels (≤ 2 or ≥ 253);
//! - black / blank: a dark or flat picture (lens covered, sensor dead, no light);
//! - frozen: consecutive frames that do not differ (a stuck driver repeating a buffer);
//! - sharpness: the variance of the 4-neighbour Laplacian, normalised to 0–1 as
//!   `v / (v + 900)` (so a variance of 100, the usual "blurry" mark for 8-bit pictures, is 0.1;
//!   the device profiles' `min_sharpness` is on this scale).

/// An 8-bit luma picture, row-major, `stride == width`.
#[derive(Clone, PartialEq, Eq)]
pub struct Luma {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

impl std::fmt::Debug for Luma {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Luma({}x{})", self.width, self.height)
    }
}

impl Luma {
    /// `None` when the buffer does not hold `width × height` pixels.
    pub fn new(width: usize, height: usize, pixels: Vec<u8>) -> Option<Luma> {
        (width > 0 && height > 0 && pixels.len() == width.checked_mul(height)?).then_some(Luma {
            width,
            height,
            pixels,
        })
    }

    /// Copies the visible pixels out of a plane with row padding.
    pub fn from_strided(width: usize, height: usize, stride: usize, data: &[u8]) -> Option<Luma> {
        if stride < width || data.len() < stride.checked_mul(height.checked_sub(1)?)? + width {
            return None;
        }
        let mut pixels = Vec::with_capacity(width * height);
        for row in 0..height {
            pixels.extend_from_slice(&data[row * stride..row * stride + width]);
        }
        Luma::new(width, height, pixels)
    }
}

/// Exposure figures of one picture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exposure {
    pub mean: f64,
    pub stddev: f64,
    /// Share of pixels at 253 or above.
    pub clipped_high: f64,
    /// Share of pixels at 2 or below.
    pub clipped_low: f64,
}

/// Every `step`-th pixel of every `step`-th row: enough for statistics of a camera frame, and
/// cheap in a debug build.
fn sampled(l: &Luma, step: usize) -> impl Iterator<Item = u8> + '_ {
    let step = step.max(1);
    (0..l.height).step_by(step).flat_map(move |y| {
        l.pixels[y * l.width..(y + 1) * l.width]
            .iter()
            .step_by(step)
            .copied()
    })
}

pub fn exposure(l: &Luma, step: usize) -> Exposure {
    let mut histogram = [0u64; 256];
    for p in sampled(l, step) {
        histogram[usize::from(p)] += 1;
    }
    let n: u64 = histogram.iter().sum();
    if n == 0 {
        return Exposure {
            mean: 0.0,
            stddev: 0.0,
            clipped_high: 0.0,
            clipped_low: 0.0,
        };
    }
    let n = n as f64;
    let mean = histogram
        .iter()
        .enumerate()
        .map(|(v, c)| v as f64 * *c as f64)
        .sum::<f64>()
        / n;
    let variance = histogram
        .iter()
        .enumerate()
        .map(|(v, c)| (v as f64 - mean).powi(2) * *c as f64)
        .sum::<f64>()
        / n;
    Exposure {
        mean,
        stddev: variance.sqrt(),
        clipped_high: histogram[253..].iter().sum::<u64>() as f64 / n,
        clipped_low: histogram[..=2].iter().sum::<u64>() as f64 / n,
    }
}

/// Mean absolute difference between two pictures of the same size (sampled), `None` when the
/// sizes differ.
pub fn difference(a: &Luma, b: &Luma, step: usize) -> Option<f64> {
    if a.width != b.width || a.height != b.height {
        return None;
    }
    let (mut sum, mut n) = (0u64, 0u64);
    for (x, y) in sampled(a, step).zip(sampled(b, step)) {
        sum += u64::from(x.abs_diff(y));
        n += 1;
    }
    Some(if n == 0 { 0.0 } else { sum as f64 / n as f64 })
}

/// Variance of the 4-neighbour Laplacian over the interior of the picture.
pub fn laplacian_variance(l: &Luma) -> f64 {
    if l.width < 3 || l.height < 3 {
        return 0.0;
    }
    let w = l.width;
    let p = &l.pixels;
    let (mut sum, mut sum_sq, mut n) = (0f64, 0f64, 0u64);
    for y in 1..l.height - 1 {
        let (up, row, down) = (
            &p[(y - 1) * w..y * w],
            &p[y * w..(y + 1) * w],
            &p[(y + 1) * w..(y + 2) * w],
        );
        let mut line_sum = 0i64;
        let mut line_sq = 0i64;
        for x in 1..w - 1 {
            let v = i64::from(up[x])
                + i64::from(down[x])
                + i64::from(row[x - 1])
                + i64::from(row[x + 1])
                - 4 * i64::from(row[x]);
            line_sum += v;
            line_sq += v * v;
        }
        sum += line_sum as f64;
        sum_sq += line_sq as f64;
        n += (w - 2) as u64;
    }
    let n = n as f64;
    let mean = sum / n;
    (sum_sq / n - mean * mean).max(0.0)
}

/// The Laplacian variance on the 0–1 scale of the device profiles' `min_sharpness`.
pub fn sharpness(l: &Luma) -> f64 {
    normalised_sharpness(laplacian_variance(l))
}

pub fn normalised_sharpness(variance: f64) -> f64 {
    if variance <= 0.0 {
        0.0
    } else {
        variance / (variance + 900.0)
    }
}

/// What a sequence of camera frames shows.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameFindings {
    pub frames: usize,
    pub exposure: Exposure,
    /// Largest mean absolute difference between consecutive frames.
    pub max_motion: f64,
    pub sharpness: f64,
    pub picture: Picture,
}

/// The verdict on the picture itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Picture {
    Normal,
    /// Dark everywhere: covered lens, dead sensor, or no light at all.
    Black,
    /// One flat colour that is not black (e.g. a test colour, a sensor stuck on a value).
    Flat,
    /// Frames do not change at all.
    Frozen,
}

/// Below this mean luma and this spread a frame is black.
pub const BLACK_MEAN: f64 = 24.0;
pub const BLACK_STDDEV: f64 = 8.0;
/// Below this spread a frame is one flat colour.
pub const FLAT_STDDEV: f64 = 1.5;
/// A real sensor's noise alone moves consecutive frames by more than this.
pub const FROZEN_MOTION: f64 = 0.05;

/// Judges frames in capture order (at least two for the frozen test).
pub fn judge_frames(frames: &[Luma]) -> Option<FrameFindings> {
    let last = frames.last()?;
    let exposures: Vec<Exposure> = frames.iter().map(|f| exposure(f, 2)).collect();
    let n = exposures.len() as f64;
    let exposure = Exposure {
        mean: exposures.iter().map(|e| e.mean).sum::<f64>() / n,
        stddev: exposures.iter().map(|e| e.stddev).sum::<f64>() / n,
        clipped_high: exposures.iter().map(|e| e.clipped_high).sum::<f64>() / n,
        clipped_low: exposures.iter().map(|e| e.clipped_low).sum::<f64>() / n,
    };
    let max_motion = frames
        .windows(2)
        .filter_map(|w| difference(&w[0], &w[1], 2))
        .fold(0.0, f64::max);
    let picture = if exposure.mean < BLACK_MEAN && exposure.stddev < BLACK_STDDEV {
        Picture::Black
    } else if exposure.stddev < FLAT_STDDEV {
        Picture::Flat
    } else if frames.len() >= 2 && max_motion < FROZEN_MOTION {
        Picture::Frozen
    } else {
        Picture::Normal
    };
    Some(FrameFindings {
        frames: frames.len(),
        exposure,
        max_motion,
        sharpness: sharpness(last),
        picture,
    })
}

/// Frames per second from capture timestamps (nanoseconds), `None` for fewer than two frames
/// or no time between them.
pub fn frame_rate(timestamps_ns: &[u64]) -> Option<f64> {
    let (first, last) = (timestamps_ns.first()?, timestamps_ns.last()?);
    let span = last.checked_sub(*first)?;
    (span > 0 && timestamps_ns.len() >= 2)
        .then(|| (timestamps_ns.len() - 1) as f64 * 1e9 / span as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(w: usize, h: usize, v: u8) -> Luma {
        Luma::new(w, h, vec![v; w * h]).expect("size")
    }

    /// A checkerboard of `cell`-pixel squares, shifted right by `shift`.
    fn checker(w: usize, h: usize, cell: usize, shift: usize) -> Luma {
        let pixels = (0..h)
            .flat_map(|y| {
                (0..w).map(move |x| {
                    if ((x + shift) / cell + y / cell).is_multiple_of(2) {
                        40
                    } else {
                        200
                    }
                })
            })
            .collect();
        Luma::new(w, h, pixels).expect("size")
    }

    /// A 3×3 box blur, `times` over.
    fn blur(l: &Luma, times: usize) -> Luma {
        let mut cur = l.clone();
        for _ in 0..times {
            let mut out = cur.clone();
            for y in 1..cur.height - 1 {
                for x in 1..cur.width - 1 {
                    let mut s = 0u32;
                    for dy in 0..3 {
                        for dx in 0..3 {
                            s += u32::from(cur.pixels[(y + dy - 1) * cur.width + x + dx - 1]);
                        }
                    }
                    out.pixels[y * cur.width + x] = (s / 9) as u8;
                }
            }
            cur = out;
        }
        cur
    }

    #[test]
    fn exposure_of_flat_and_split_pictures() {
        let e = exposure(&flat(8, 8, 100), 1);
        assert_eq!((e.mean, e.stddev), (100.0, 0.0));
        let mut half = flat(8, 8, 0);
        half.pixels[32..].fill(255);
        let e = exposure(&half, 1);
        assert!((e.mean - 127.5).abs() < 1e-9);
        assert!((e.stddev - 127.5).abs() < 1e-9);
        assert!((e.clipped_high - 0.5).abs() < 1e-9 && (e.clipped_low - 0.5).abs() < 1e-9);
    }

    #[test]
    fn black_flat_frozen_and_normal_frames() {
        let black: Vec<Luma> = (0..5).map(|_| flat(64, 48, 16)).collect();
        assert_eq!(
            judge_frames(&black).map(|f| f.picture),
            Some(Picture::Black)
        );
        let grey: Vec<Luma> = (0..5).map(|_| flat(64, 48, 128)).collect();
        assert_eq!(judge_frames(&grey).map(|f| f.picture), Some(Picture::Flat));
        let still: Vec<Luma> = (0..5).map(|_| checker(64, 48, 8, 0)).collect();
        assert_eq!(
            judge_frames(&still).map(|f| f.picture),
            Some(Picture::Frozen)
        );
        let moving: Vec<Luma> = (0..5).map(|i| checker(64, 48, 8, i * 2)).collect();
        let findings = judge_frames(&moving).expect("frames");
        assert_eq!(findings.picture, Picture::Normal);
        assert!(findings.max_motion > 10.0);
        assert_eq!(judge_frames(&[]), None);
    }

    #[test]
    fn blur_lowers_sharpness() {
        let sharp = checker(120, 90, 4, 0);
        let soft = blur(&sharp, 3);
        let (s, b) = (sharpness(&sharp), sharpness(&soft));
        assert!(s > 0.9, "sharp {s}");
        assert!(b < s / 2.0, "blurred {b} vs sharp {s}");
        assert_eq!(sharpness(&flat(10, 10, 50)), 0.0);
        assert!((normalised_sharpness(100.0) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn frame_rate_from_timestamps() {
        let ts: Vec<u64> = (0..31).map(|i| i * 33_333_333).collect();
        let fps = frame_rate(&ts).expect("rate");
        assert!((fps - 30.0).abs() < 0.01, "{fps}");
        assert_eq!(frame_rate(&[5]), None);
        assert_eq!(frame_rate(&[5, 5]), None);
    }

    #[test]
    fn strided_planes_and_bad_sizes() {
        let data = [1u8, 2, 0, 3, 4, 0];
        let l = Luma::from_strided(2, 2, 3, &data).expect("plane");
        assert_eq!(l.pixels, vec![1, 2, 3, 4]);
        assert!(Luma::from_strided(2, 3, 3, &data).is_none());
        assert!(Luma::new(3, 3, vec![0; 8]).is_none());
        assert!(difference(&flat(2, 2, 0), &flat(3, 3, 0), 1).is_none());
    }
}
