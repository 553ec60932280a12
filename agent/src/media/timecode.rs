//! A machine-readable capture-time stamp drawn into video frames, and its reader.
//!
//! The simulated camera draws its capture time (microseconds since the UNIX epoch) into the
//! top-left corner of every frame, before encoding. Whoever decodes the frame later — the
//! relay's recorder, a clerk's browser test, this crate's tests — reads it back and subtracts
//! it from its own clock: that is glass-to-glass latency, with no OCR and no shared state.
//!
//! The pattern is an 8×8 grid of square cells, each entirely black (bit 0) or white (bit 1)
//! on the luma plane, chroma neutral. Cells are 8 px for frames under 360 lines and 16 px
//! otherwise, aligned to the codec's blocks, so a lossy encoder at video-call bitrates keeps
//! the sign of each cell's mean. The 64 bits are 48 bits of the timestamp (modulo 2^48, which
//! wraps every 8.9 years; the reader picks the candidate nearest its own clock) followed by a
//! CRC-16 over them, so an unstamped or damaged frame reads as `None`, not as a wrong time.
//!
//! What it does not do: synchronise clocks. Sender and reader on different machines need NTP;
//! in tests both run on one host.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::frames::DecodedFrame;

/// Cells per side of the stamp.
pub const GRID: u32 = 8;
const VALUE_BITS: u32 = 48;
const VALUE_MASK: u64 = (1 << VALUE_BITS) - 1;
const WHITE: u8 = 235;
const BLACK: u8 = 16;

/// A capture time as stamped into a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeCode {
    unix_micros: u64,
}

impl TimeCode {
    pub fn from_unix_micros(unix_micros: u64) -> TimeCode {
        TimeCode { unix_micros }
    }

    pub fn from_system_time(time: SystemTime) -> TimeCode {
        let micros = time
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or_default();
        TimeCode {
            unix_micros: u64::try_from(micros).unwrap_or(u64::MAX),
        }
    }

    pub fn unix_micros(self) -> u64 {
        self.unix_micros
    }

    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.unix_micros)
    }

    /// How long before `now` this capture happened; `None` if it lies in the future (clocks
    /// disagree).
    pub fn age_at(self, now: SystemTime) -> Option<Duration> {
        now.duration_since(self.to_system_time()).ok()
    }
}

/// Why a frame could not be stamped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StampError {
    #[error("frame {width}x{height} is smaller than the {needed}x{needed} stamp")]
    FrameTooSmall {
        width: u32,
        height: u32,
        needed: u32,
    },
    #[error("plane of {len} bytes does not hold {rows} rows of stride {stride}")]
    PlaneTooShort {
        len: usize,
        rows: u32,
        stride: usize,
    },
}

/// The side of one cell in pixels for a frame of this height.
pub fn cell_size(height: u32) -> u32 {
    if height < 360 { 8 } else { 16 }
}

/// The side of the whole stamp in pixels for a frame of this height.
pub fn stamp_side(height: u32) -> u32 {
    GRID * cell_size(height)
}

fn crc16(bytes: &[u8]) -> u16 {
    // CRC-16/CCITT-FALSE: small, table-free, and an all-black or all-white corner fails it.
    let mut crc: u16 = 0xFFFF;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn encode_bits(code: TimeCode) -> u64 {
    let value = code.unix_micros & VALUE_MASK;
    let bytes = value.to_be_bytes();
    let crc = crc16(&bytes[2..]);
    (value << 16) | u64::from(crc)
}

fn decode_bits(bits: u64) -> Option<u64> {
    let value = bits >> 16;
    let bytes = value.to_be_bytes();
    (crc16(&bytes[2..]) == (bits & 0xFFFF) as u16).then_some(value)
}

/// Picks the full timestamp whose low 48 bits are `value`, nearest to `near`.
fn unwrap_near(value: u64, near: SystemTime) -> u64 {
    let near = TimeCode::from_system_time(near).unix_micros;
    let base = near & !VALUE_MASK;
    let period = VALUE_MASK + 1;
    [base.wrapping_sub(period), base, base.wrapping_add(period)]
        .into_iter()
        .map(|b| b | value)
        .min_by_key(|candidate| candidate.abs_diff(near))
        .unwrap_or(value)
}

fn check_plane(len: usize, stride: usize, rows: u32) -> Result<(), StampError> {
    let needed = stride.checked_mul(rows as usize);
    match needed {
        Some(n) if n <= len => Ok(()),
        _ => Err(StampError::PlaneTooShort { len, rows, stride }),
    }
}

/// Draws `code` into the top-left corner of a luma plane.
pub fn stamp_luma(
    luma: &mut [u8],
    stride: usize,
    width: u32,
    height: u32,
    code: TimeCode,
) -> Result<(), StampError> {
    let cell = cell_size(height);
    let side = GRID * cell;
    if width < side || height < side || stride < side as usize {
        return Err(StampError::FrameTooSmall {
            width,
            height,
            needed: side,
        });
    }
    check_plane(luma.len(), stride, side)?;
    let bits = encode_bits(code);
    for y in 0..side {
        let row = &mut luma[y as usize * stride..][..side as usize];
        for (x, px) in row.iter_mut().enumerate() {
            let index = (y / cell) * GRID + (x as u32 / cell);
            let bit = (bits >> (63 - index)) & 1;
            *px = if bit == 1 { WHITE } else { BLACK };
        }
    }
    Ok(())
}

/// Paints the stamp's area of a half-resolution chroma plane neutral grey, so the stamp is
/// pure black and white whatever the picture underneath.
pub fn neutralise_chroma(
    chroma: &mut [u8],
    stride: usize,
    luma_height: u32,
) -> Result<(), StampError> {
    let side = stamp_side(luma_height).div_ceil(2);
    if stride < side as usize {
        return Err(StampError::PlaneTooShort {
            len: chroma.len(),
            rows: side,
            stride,
        });
    }
    check_plane(chroma.len(), stride, side)?;
    for y in 0..side as usize {
        chroma[y * stride..][..side as usize].fill(128);
    }
    Ok(())
}

/// Reads a stamp from the top-left corner of a luma plane; `None` if there is none or it
/// does not check out. `near` resolves the 48-bit wrap (pass the reader's current time).
pub fn read_luma(
    luma: &[u8],
    stride: usize,
    width: u32,
    height: u32,
    near: SystemTime,
) -> Option<TimeCode> {
    let cell = cell_size(height);
    let side = GRID * cell;
    if width < side || height < side || stride < side as usize {
        return None;
    }
    check_plane(luma.len(), stride, side).ok()?;
    // Sample the middle half of each cell: block edges are where a codec smears.
    let margin = cell / 4;
    let inner = cell - 2 * margin;
    let mut bits = 0u64;
    for index in 0..GRID * GRID {
        let (cy, cx) = (index / GRID, index % GRID);
        let mut sum = 0u32;
        for y in 0..inner {
            let row = (cy * cell + margin + y) as usize * stride;
            let start = row + (cx * cell + margin) as usize;
            sum += luma[start..start + inner as usize]
                .iter()
                .map(|&p| u32::from(p))
                .sum::<u32>();
        }
        let mean = sum / (inner * inner);
        bits = (bits << 1) | u64::from(mean >= 128);
    }
    let value = decode_bits(bits)?;
    Some(TimeCode::from_unix_micros(unwrap_near(value, near)))
}

/// Reads the stamp from a decoded frame, using the reader's clock to resolve the wrap.
pub fn read_frame(frame: &DecodedFrame) -> Option<TimeCode> {
    read_luma(
        frame.luma()?,
        frame.strides[0],
        frame.width,
        frame.height,
        frame.decoded_at,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(width: u32, height: u32) -> Vec<u8> {
        // A gradient, so the reader has to find the stamp in a picture rather than on black.
        (0..width * height).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn stamp_then_read_round_trips() {
        let (w, h) = (320, 240);
        let mut luma = plane(w, h);
        let code = TimeCode::from_unix_micros(1_763_000_000_123_456);
        stamp_luma(&mut luma, w as usize, w, h, code).expect("stamp");
        let near = code.to_system_time() + Duration::from_millis(150);
        assert_eq!(read_luma(&luma, w as usize, w, h, near), Some(code));
    }

    #[test]
    fn large_frames_use_large_cells() {
        assert_eq!(cell_size(240), 8);
        assert_eq!(cell_size(720), 16);
        let (w, h) = (1280, 720);
        let mut luma = plane(w, h);
        let code = TimeCode::from_system_time(SystemTime::now());
        stamp_luma(&mut luma, w as usize, w, h, code).expect("stamp");
        assert_eq!(
            read_luma(&luma, w as usize, w, h, SystemTime::now()),
            Some(code)
        );
    }

    #[test]
    fn survives_noise_of_the_size_a_codec_adds() {
        let (w, h) = (640, 480);
        let mut luma = plane(w, h);
        let code = TimeCode::from_unix_micros(42_000_000);
        stamp_luma(&mut luma, w as usize, w, h, code).expect("stamp");
        for (i, px) in luma.iter_mut().enumerate() {
            let noise = ((i * 7919) % 61) as i16 - 30;
            *px = (i16::from(*px) + noise).clamp(0, 255) as u8;
        }
        let near = code.to_system_time();
        assert_eq!(read_luma(&luma, w as usize, w, h, near), Some(code));
    }

    #[test]
    fn unstamped_or_damaged_frames_read_as_none() {
        let (w, h) = (320, 240);
        let luma = plane(w, h);
        assert_eq!(read_luma(&luma, w as usize, w, h, SystemTime::now()), None);
        let black = vec![BLACK; (w * h) as usize];
        assert_eq!(read_luma(&black, w as usize, w, h, SystemTime::now()), None);

        let mut stamped = plane(w, h);
        stamp_luma(
            &mut stamped,
            w as usize,
            w,
            h,
            TimeCode::from_unix_micros(99),
        )
        .expect("stamp");
        // Flip one cell.
        for y in 0..8 {
            stamped[y * w as usize..][..8].fill(WHITE);
        }
        let near = UNIX_EPOCH;
        // A single flipped bit always fails a CRC-16.
        assert_eq!(read_luma(&stamped, w as usize, w, h, near), None);
    }

    #[test]
    fn small_or_short_planes_are_errors_not_panics() {
        let mut tiny = vec![0u8; 16 * 16];
        assert!(matches!(
            stamp_luma(&mut tiny, 16, 16, 16, TimeCode::from_unix_micros(1)),
            Err(StampError::FrameTooSmall { .. })
        ));
        let mut short = vec![0u8; 100];
        assert!(matches!(
            stamp_luma(&mut short, 320, 320, 240, TimeCode::from_unix_micros(1)),
            Err(StampError::PlaneTooShort { .. })
        ));
        assert_eq!(read_luma(&short, 320, 320, 240, SystemTime::now()), None);
    }

    #[test]
    fn wrap_resolves_to_the_candidate_nearest_the_reader() {
        let period = VALUE_MASK + 1;
        let near = UNIX_EPOCH + Duration::from_micros(3 * period + 10);
        assert_eq!(unwrap_near(5, near), 3 * period + 5);
        let near = UNIX_EPOCH + Duration::from_micros(3 * period + 2);
        assert_eq!(unwrap_near(VALUE_MASK - 1, near), 3 * period - 2);
    }

    #[test]
    fn age_is_none_for_future_stamps() {
        let now = SystemTime::now();
        let future = TimeCode::from_system_time(now + Duration::from_secs(1));
        assert_eq!(future.age_at(now), None);
        let past = TimeCode::from_system_time(now - Duration::from_millis(80));
        let age = past.age_at(now).expect("past");
        assert!(age >= Duration::from_millis(79) && age <= Duration::from_millis(81));
    }
}
