//! Dump → WebM/Matroska, offline, without decoding.
//!
//! Two passes over the dump: the first learns which tracks have frames and what describes them
//! (picture size, H.264 parameter sets, Opus channel count, the earliest frame); the second
//! writes the frames, interleaved by presentation time through a short holding heap.
//! All-VP8/Opus recordings are WebM (`.webm`); a recording with H.264 is Matroska (`.mkv`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use protocol::media::Slot;

use super::depay::{Frame, TrackAssembler, TrackInfo};
use super::dump::{DumpError, DumpHeader, DumpReader};
use super::h264;
use super::mkv::{MkvWriter, TrackSpec, opus_head};
use crate::sfu::MediaCodec;

/// A frame waiting to be interleaved: (pts µs, arrival order, track number, keyframe, data).
type Pending = Reverse<(u64, u64, u64, bool, Vec<u8>)>;

/// Frames are held this long (by arrival time) to be interleaved across tracks.
const INTERLEAVE_US: u64 = 1_500_000;

#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    #[error(transparent)]
    Dump(#[from] DumpError),
    #[error("recording i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("the dump holds no decodable frame")]
    Empty,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuxedTrack {
    pub slot: Slot,
    pub codec: MediaCodec,
    pub frames: u64,
    pub dropped_frames: u64,
}

#[derive(Debug, Clone)]
pub struct MuxOutcome {
    pub header: DumpHeader,
    pub path: PathBuf,
    pub size: u64,
    /// Offset of the file's time 0 from the dump's start.
    pub offset_us: u64,
    pub duration_ms: u64,
    pub tracks: Vec<MuxedTrack>,
    pub records: u64,
    pub torn_tail: bool,
}

fn slot_name(slot: Slot) -> &'static str {
    match slot {
        Slot::KioskCamera => "kiosk camera",
        Slot::KioskDocument => "kiosk document camera",
        Slot::KioskMicrophone => "kiosk microphone",
        Slot::ClerkCamera => "clerk camera",
        Slot::ClerkMicrophone => "clerk microphone",
    }
}

type Assemblers = [Option<TrackAssembler>; 5];

/// Feed the whole dump through per-slot assemblers, calling `sink` with every frame batch.
fn run_dump(
    path: &Path,
    mut sink: impl FnMut(usize, &mut Vec<Frame>, u64) -> Result<(), MuxError>,
) -> Result<(DumpHeader, Assemblers, u64, bool), MuxError> {
    let mut reader = DumpReader::open(path)?;
    let mut tracks: Assemblers = Default::default();
    let mut frames = Vec::new();
    let mut records = 0u64;
    while let Some(rec) = reader.next_record() {
        records += 1;
        let i = rec.slot.index();
        let t = rec.t_micros;
        let a = tracks[i].get_or_insert_with(|| TrackAssembler::new(rec.codec));
        a.push(rec, &mut frames);
        if !frames.is_empty() {
            sink(i, &mut frames, t)?;
            frames.clear();
        }
    }
    for (i, a) in tracks.iter_mut().enumerate() {
        if let Some(a) = a {
            a.finish(&mut frames);
            if !frames.is_empty() {
                sink(i, &mut frames, u64::MAX)?;
                frames.clear();
            }
        }
    }
    Ok((reader.header.clone(), tracks, records, reader.torn_tail))
}

/// Mux `dump` into `out_dir`, atomically (written as `.part`, synced, renamed).
pub fn mux_dump(dump: &Path, out_dir: &Path) -> Result<MuxOutcome, MuxError> {
    // Pass 1: what is in there.
    let (header, learned, records, torn_tail) = run_dump(dump, |_, _, _| Ok(()))?;
    let infos: Vec<(Slot, MediaCodec, TrackInfo)> = learned
        .iter()
        .enumerate()
        .filter_map(|(i, a)| {
            let a = a.as_ref()?;
            (a.info.frames > 0).then(|| (Slot::ORDER[i], a.codec(), a.info.clone()))
        })
        .collect();
    if infos.is_empty() {
        return Err(MuxError::Empty);
    }
    let offset_us = infos
        .iter()
        .filter_map(|(_, _, i)| i.first_pts_us)
        .min()
        .unwrap_or(0);
    let mut specs = Vec::new();
    let mut track_of_slot = [0u64; 5];
    for (slot, codec, info) in &infos {
        let codec_private = match codec {
            MediaCodec::Opus => Some(opus_head(if info.opus_stereo { 2 } else { 1 })),
            MediaCodec::H264 => match (&info.sps, &info.pps) {
                (Some(sps), Some(pps)) => h264::avcc(sps, pps),
                _ => None,
            },
            MediaCodec::Vp8 => None,
        };
        if *codec == MediaCodec::H264 && codec_private.is_none() {
            // Without parameter sets the track cannot be described; leave it out.
            continue;
        }
        let number = specs.len() as u64 + 1;
        track_of_slot[slot.index()] = number;
        specs.push(TrackSpec {
            number,
            codec: *codec,
            name: slot_name(*slot).to_string(),
            width: info.width,
            height: info.height,
            channels: if info.opus_stereo { 2 } else { 1 },
            codec_private,
        });
    }
    if specs.is_empty() {
        return Err(MuxError::Empty);
    }
    let webm = specs.iter().all(|s| s.codec != MediaCodec::H264);
    let (doc_type, ext) = if webm {
        ("webm", "webm")
    } else {
        ("matroska", "mkv")
    };
    let stem = sanitize(&header.session_id);
    let path = out_dir.join(format!("{stem}.{ext}"));
    let part = out_dir.join(format!("{stem}.{ext}.part"));
    // Plaintext audio and video of the resident until it is sealed: the relay's user only.
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&part)?
    };
    let mut writer = MkvWriter::new(
        BufWriter::with_capacity(256 * 1024, file),
        doc_type,
        &header.session_id,
        &specs,
    )?;

    // Pass 2: write, interleaved by time.
    let mut heap: BinaryHeap<Pending> = BinaryHeap::new();
    let mut order = 0u64;
    let mut last_ms = 0u64;
    let mut write_until = |heap: &mut BinaryHeap<Pending>,
                           writer: &mut MkvWriter<BufWriter<File>>,
                           until_us: u64|
     -> Result<(), MuxError> {
        while heap.peek().is_some_and(|Reverse(f)| f.0 <= until_us) {
            let Some(Reverse((pts, _, track, key, data))) = heap.pop() else {
                break;
            };
            let ms = pts.saturating_sub(offset_us) / 1000;
            last_ms = last_ms.max(ms);
            writer.write_frame(track, ms, key, &data)?;
        }
        Ok(())
    };
    run_dump(dump, |slot, frames, arrival_us| {
        let track = track_of_slot[slot];
        if track != 0 {
            for f in frames.drain(..) {
                order += 1;
                heap.push(Reverse((f.pts_us, order, track, f.keyframe, f.data)));
            }
        }
        write_until(
            &mut heap,
            &mut writer,
            arrival_us.saturating_sub(INTERLEAVE_US),
        )
    })?;
    write_until(&mut heap, &mut writer, u64::MAX)?;
    // The last frame lasts about one frame interval.
    let duration_ms = last_ms + 20;
    let (buf, size) = writer.finish(duration_ms)?;
    let file = buf.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&part, &path)?;
    if let Ok(dir) = File::open(out_dir) {
        let _ = dir.sync_all();
    }
    let tracks = infos
        .iter()
        .filter(|(slot, _, _)| track_of_slot[slot.index()] != 0)
        .map(|(slot, codec, info)| MuxedTrack {
            slot: *slot,
            codec: *codec,
            frames: info.frames,
            dropped_frames: info.dropped_frames,
        })
        .collect();
    Ok(MuxOutcome {
        header,
        path,
        size,
        offset_us,
        duration_ms,
        tracks,
        records,
        torn_tail,
    })
}

/// File names come from session ids, which are validated on `begin`; a dump found on disk is
/// re-checked here anyway.
fn sanitize(id: &str) -> String {
    let s: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if s.is_empty() { "recording".into() } else { s }
}
