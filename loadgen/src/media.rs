//! What the synthetic peers send: pre-encoded frames looped with fresh timestamps, and the
//! stamp every packet carries so the receiving peer can tell loss and delay.
//!
//! Frames come from GStreamer (`vp8enc`, `opusenc`) encoding a few seconds of a moving test
//! pattern once, cached under the cache directory; no peer ever encodes. Without GStreamer a
//! synthetic clip with the same sizes' shape (a large keyframe, then deltas around the mean)
//! is used and the report says so.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// One encoded frame (VP8) or packet (Opus).
#[derive(Debug, Clone)]
pub struct Frame {
    pub data: Arc<[u8]>,
    pub key: bool,
}

/// A loop of frames and where it came from.
#[derive(Debug, Clone)]
pub struct Clip {
    pub frames: Vec<Frame>,
    /// A keyframe sent on a keyframe request (the clip's first).
    pub keyframe: Frame,
    pub fps: u32,
    pub source: String,
}

impl Clip {
    pub fn mean_kbps(&self) -> f64 {
        let bytes: usize = self.frames.iter().map(|f| f.data.len()).sum();
        bytes as f64 * 8.0 * f64::from(self.fps) / self.frames.len().max(1) as f64 / 1000.0
    }

    pub fn keyframe_interval_frames(&self) -> usize {
        self.frames.len() / self.frames.iter().filter(|f| f.key).count().max(1)
    }
}

/// Encode (or load from the cache) a VP8 clip at `kbps`. libvpx's rate control misses the
/// target on a test pattern, so the encoder's target is corrected (up to three tries) until
/// the clip's mean rate is within 10 % of what was asked.
pub fn vp8_clip(cache: &Path, width: u32, height: u32, kbps: u32, seconds: u32, gop: u32) -> Clip {
    let mut encoder_kbps = kbps;
    let mut best: Option<Clip> = None;
    for _ in 0..3 {
        let Some(clip) = vp8_encoded(cache, width, height, encoder_kbps, seconds, gop) else {
            break;
        };
        let got = clip.mean_kbps();
        let off = got / f64::from(kbps);
        let better = best
            .as_ref()
            .is_none_or(|b| (b.mean_kbps() / f64::from(kbps) - 1.0).abs() > (off - 1.0).abs());
        if better {
            best = Some(clip);
        }
        if (0.9..=1.1).contains(&off) {
            break;
        }
        encoder_kbps = ((f64::from(encoder_kbps) / off) as u32).max(50);
    }
    match best {
        Some(mut clip) => {
            clip.source = format!("vp8enc {width}x{height}, asked {kbps} kbit/s");
            clip
        }
        None => synthetic_vp8(width, height, kbps, seconds, gop),
    }
}

fn vp8_encoded(
    cache: &Path,
    width: u32,
    height: u32,
    kbps: u32,
    seconds: u32,
    gop: u32,
) -> Option<Clip> {
    let name = format!("vp8-smpte-{width}x{height}-{kbps}k-{seconds}s-gop{gop}");
    // A moving bar chart: keyframes ≈5× a delta frame, like a camera's. (At 1280×720 it costs
    // ≈2.1 Mbit/s whatever the target; still patterns fall far below any target, and busier
    // ones such as `circular` make 290 kB keyframes.)
    let pipeline = format!(
        "videotestsrc pattern=smpte horizontal-speed=2 num-buffers={n} \
         ! video/x-raw,width={width},height={height},framerate=30/1 \
         ! vp8enc target-bitrate={bps} end-usage=cbr deadline=1 cpu-used=8 lag-in-frames=0 \
           keyframe-max-dist={gop} threads=2",
        n = seconds * 30,
        bps = kbps * 1000,
    );
    let frames: Vec<Frame> = encoded(cache, &name, &pipeline, "vp8")?
        .into_iter()
        // VP8 frame tag: bit 0 of the first byte clear means a keyframe.
        .map(|d| Frame {
            key: d.first().is_some_and(|b| b & 1 == 0),
            data: d.into(),
        })
        .collect();
    frames
        .iter()
        .any(|f| f.key)
        .then(|| finish(frames, 30, String::new()))
}

/// Encode (or load from the cache) an Opus clip of 20 ms packets.
pub fn opus_clip(cache: &Path, kbps: u32, seconds: u32) -> Clip {
    let name = format!("opus-{kbps}k-{seconds}s");
    let pipeline = format!(
        "audiotestsrc wave=pink-noise volume=0.3 num-buffers={n} samplesperbuffer=960 \
         ! audio/x-raw,rate=48000,channels=1 ! opusenc bitrate={bps} frame-size=20",
        n = seconds * 50,
        bps = kbps * 1000,
    );
    match encoded(cache, &name, &pipeline, "opus") {
        Some(raw) if !raw.is_empty() => {
            let frames = raw
                .into_iter()
                .map(|d| Frame {
                    key: true,
                    data: d.into(),
                })
                .collect();
            finish(frames, 50, format!("opusenc {kbps} kbit/s"))
        }
        _ => {
            let bytes = (kbps as usize * 1000 / 8 / 50).max(10);
            let frames = (0..seconds * 50)
                .map(|i| {
                    let mut d = vec![0xfc, (i & 0xff) as u8];
                    d.resize(bytes, 0x55);
                    Frame {
                        key: true,
                        data: d.into(),
                    }
                })
                .collect();
            finish(
                frames,
                50,
                format!("synthetic Opus {kbps} kbit/s (no GStreamer)"),
            )
        }
    }
}

fn finish(frames: Vec<Frame>, fps: u32, source: String) -> Clip {
    let keyframe = frames
        .iter()
        .find(|f| f.key)
        .cloned()
        .unwrap_or_else(|| frames[0].clone());
    Clip {
        frames,
        keyframe,
        fps,
        source,
    }
}

/// Sizes shaped like a real encoder's at the same rate: a keyframe ≈ 6× the mean every `gop`
/// frames, deltas ±25% around what is left.
fn synthetic_vp8(width: u32, height: u32, kbps: u32, seconds: u32, gop: u32) -> Clip {
    let mean = kbps as usize * 1000 / 8 / 30;
    let n = (seconds * 30) as usize;
    let gop = gop.max(1) as usize;
    let key_size = mean * 6;
    let delta_mean = (mean * gop).saturating_sub(key_size) / (gop - 1).max(1);
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let frames = (0..n)
        .map(|i| {
            let key = i % gop == 0;
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let size = if key {
                key_size
            } else {
                delta_mean * (75 + (rng % 51) as usize) / 100
            };
            let mut d = if key {
                let (w, h) = (width as u16, height as u16);
                vec![
                    0x10,
                    0x02,
                    0x00,
                    0x9d,
                    0x01,
                    0x2a,
                    w as u8,
                    (w >> 8) as u8,
                    h as u8,
                    (h >> 8) as u8,
                ]
            } else {
                vec![0x11, 0x02, 0x00]
            };
            d.resize(size.max(d.len()), (i & 0xff) as u8);
            Frame {
                key,
                data: d.into(),
            }
        })
        .collect();
    finish(
        frames,
        30,
        format!("synthetic VP8 {width}x{height} {kbps} kbit/s (no GStreamer)"),
    )
}

/// Run `pipeline ! multifilesink` once into `cache/name/`, then read the buffers back in order.
fn encoded(cache: &Path, name: &str, pipeline: &str, ext: &str) -> Option<Vec<Vec<u8>>> {
    let dir = cache.join(name);
    let done = dir.join("complete");
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).ok()?;
        let location = dir.join(format!("f%05d.{ext}"));
        let cmd = format!("{pipeline} ! multifilesink location={}", location.display());
        let ok = Command::new("gst-launch-1.0")
            .arg("-q")
            .args(cmd.split_whitespace())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return None;
        }
        std::fs::write(&done, b"").ok()?;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    let frames: Vec<Vec<u8>> = files.iter().filter_map(|p| std::fs::read(p).ok()).collect();
    (!frames.is_empty()).then_some(frames)
}

/// Bytes of the stamp at the end of every payload.
pub const STAMP_LEN: usize = 20;
const MAGIC: [u8; 2] = *b"LG";
/// The packet starts a keyframe.
pub const FLAG_KEY_START: u8 = 1;

/// What a packet carries at its end: which stream, its number in the stream, when it was
/// handed to the sending peer (µs since the generator's epoch), and flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub stream: u32,
    pub counter: u32,
    pub sent_us: u64,
    pub flags: u8,
}

impl Stamp {
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(self.flags);
        out.push(0);
        out.extend_from_slice(&self.stream.to_be_bytes());
        out.extend_from_slice(&self.counter.to_be_bytes());
        out.extend_from_slice(&self.sent_us.to_be_bytes());
    }

    pub fn read(payload: &[u8]) -> Option<Stamp> {
        let s = payload.get(payload.len().checked_sub(STAMP_LEN)?..)?;
        if s[..2] != MAGIC {
            return None;
        }
        Some(Stamp {
            flags: s[2],
            stream: u32::from_be_bytes(s[4..8].try_into().ok()?),
            counter: u32::from_be_bytes(s[8..12].try_into().ok()?),
            sent_us: u64::from_be_bytes(s[12..20].try_into().ok()?),
        })
    }
}

/// Largest RTP payload of a VP8 packet before the stamp (≈1200-byte datagrams, like browsers).
pub const VP8_CHUNK: usize = 1100;

/// Split one VP8 frame into RTP payloads: the 4-byte payload descriptor (X, S, 15-bit picture
/// id) then up to [`VP8_CHUNK`] bytes of the frame. The stamp is appended by the caller.
pub fn vp8_payloads(frame: &[u8], picture_id: u16) -> Vec<Vec<u8>> {
    frame
        .chunks(VP8_CHUNK)
        .enumerate()
        .map(|(k, chunk)| {
            let s = if k == 0 { 0x10 } else { 0 };
            let mut p = Vec::with_capacity(4 + chunk.len() + STAMP_LEN);
            p.extend_from_slice(&[
                0x80 | s,
                0x80,
                0x80 | (picture_id >> 8) as u8 & 0x7f,
                picture_id as u8,
            ]);
            p.extend_from_slice(chunk);
            p
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trip_at_the_end_of_a_payload() {
        let s = Stamp {
            stream: 7,
            counter: 99,
            sent_us: 123_456_789,
            flags: FLAG_KEY_START,
        };
        let mut p = vec![1, 2, 3];
        s.write(&mut p);
        assert_eq!(p.len(), 3 + STAMP_LEN);
        assert_eq!(Stamp::read(&p), Some(s));
        assert_eq!(Stamp::read(&p[..10]), None);
        assert_eq!(Stamp::read(&[0; 40]), None);
    }

    #[test]
    fn vp8_packets_carry_the_descriptor_and_the_whole_frame() {
        let frame: Vec<u8> = (0..2500u32).map(|i| i as u8).collect();
        let p = vp8_payloads(&frame, 0x1234);
        assert_eq!(p.len(), 3);
        assert_eq!(p[0][0], 0x90);
        assert_eq!(p[1][0], 0x80);
        assert_eq!(&p[0][2..4], &[0x92, 0x34]);
        let joined: Vec<u8> = p.iter().flat_map(|x| x[4..].to_vec()).collect();
        assert_eq!(joined, frame);
    }

    #[test]
    fn synthetic_clip_keeps_the_rate_and_interval() {
        let c = synthetic_vp8(640, 480, 800, 4, 60);
        assert_eq!(c.frames.len(), 120);
        assert_eq!(c.keyframe_interval_frames(), 60);
        assert!((c.mean_kbps() - 800.0).abs() < 80.0, "{}", c.mean_kbps());
        assert!(c.keyframe.key);
    }
}
