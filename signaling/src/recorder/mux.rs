//! Dump → WebM/Matroska with GStreamer, offline, without decoding.
//!
//! One pass over the dump learns which tracks it holds (slot, codec, payload type). Then one
//! pipeline per recording:
//!
//! ```text
//! appsrc (application/x-rtp) ─ rtpvp8depay ──────────────┐
//! appsrc (application/x-rtp) ─ rtph264depay ─ h264parse ─┼─ webmmux/matroskamux ─ filesink
//! appsrc (application/x-rtp) ─ rtpopusdepay ─ opusparse ─┘
//! ```
//!
//! All-VP8/Opus recordings are WebM (`.webm`); a recording with H.264 is Matroska (`.mkv`).
//!
//! Each track is fed by a thread of its own that reads the dump again, keeps only its slot's
//! packets, puts them back in sequence order through a small window and rebuilds the RTP
//! packet. The muxer interleaves by time and waits for every track, so tracks must never wait
//! for each other on our side: with one feeder per track, a document camera that is silent
//! for minutes holds only its own (bounded, blocking) appsrc queue while the other tracks
//! flow, and a track that has ended sends EOS at once. Every wait is bounded: the bus is
//! polled against a deadline proportional to the dump's size, and on an error or the deadline
//! the pipeline is stopped, which releases every blocked feeder.
//!
//! Presentation times come from the RTP timestamps, unwrapped per track and anchored at the
//! arrival time of the stream's first packet (re-anchored when the two drift apart by
//! seconds: a sender restart), so tracks line up on the dump's common clock.
//!
//! Hostile input: the depayloaders and the parser are the field's code; payloads that would
//! stop the pipeline rather than be skipped (H.264 aggregation types the depayloader does not
//! implement) are refused here and counted. A malformed packet otherwise costs at most the
//! frame it belongs to; a stream that yields nothing leaves its track out.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use protocol::media::Slot;

use super::dump::{DumpError, DumpHeader, DumpReader, DumpRecord};
use crate::sfu::MediaCodec;

/// Packets held back per track to restore sequence order (the dump is in arrival order).
const REORDER_PACKETS: usize = 128;
/// Packets a feeder hands to its appsrc at once.
const BATCH_PACKETS: usize = 32;
/// RTP time that disagrees with arrival time by more than this re-anchors the timeline (a
/// source restart or a long pause).
const MAX_DRIFT_US: u64 = 3_000_000;
/// Bytes of RTP one track's appsrc holds before its feeder waits (about 10 s of a camera).
pub const DEFAULT_QUEUE_BYTES: u64 = 2 * 1024 * 1024;
/// The last frame lasts about one frame interval.
const LAST_FRAME_US: u64 = 20_000;

/// Bounds of one muxing run.
#[derive(Debug, Clone, Copy)]
pub struct MuxOptions {
    /// The longest a run may take (a small dump gets less, see [`deadline_for`]).
    pub limit: Duration,
    /// Bytes of RTP each track's appsrc holds before its feeder waits.
    pub queue_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    #[error(transparent)]
    Dump(#[from] DumpError),
    #[error("recording i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("the dump holds no decodable frame")]
    Empty,
    #[error("GStreamer is not usable: {0}")]
    Init(String),
    #[error("muxing pipeline: {0}")]
    Pipeline(String),
    #[error("muxing did not finish within {0:?}")]
    Timeout(Duration),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuxedTrack {
    pub slot: Slot,
    pub codec: MediaCodec,
    /// Frames written to the file.
    pub frames: u64,
    /// Frames the sender sent (distinct RTP timestamps in the dump) that did not reach the
    /// file: lost or damaged packets, or waiting for a keyframe after a loss.
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
    /// Packets refused before the depayloaders (unsupported or malformed payloads).
    pub rejected_packets: u64,
    pub torn_tail: bool,
}

fn slot_name(slot: Slot) -> &'static str {
    match slot {
        Slot::KioskCamera => "kiosk-camera",
        Slot::KioskDocument => "kiosk-document",
        Slot::KioskMicrophone => "kiosk-microphone",
        Slot::ClerkCamera => "clerk-camera",
        Slot::ClerkMicrophone => "clerk-microphone",
    }
}

/// GStreamer is initialised once per process; a failure is remembered and reported on every
/// attempt (the dumps stay for a retry after the packages are installed).
pub fn init_gstreamer() -> Result<(), MuxError> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| gst::init().map_err(|e| e.to_string()))
        .clone()
        .map_err(MuxError::Init)
}

/// How long muxing `dump_bytes` of dump may take: a floor for start-up, then a rate far below
/// what a loaded 2-core machine manages, capped by `limit`.
pub fn deadline_for(dump_bytes: u64, limit: Duration) -> Duration {
    let proportional = Duration::from_secs(20) + Duration::from_millis(dump_bytes / 1024);
    proportional.min(limit)
}

/// What the first pass learns about one slot.
#[derive(Debug, Clone, Copy)]
struct TrackPlan {
    slot: Slot,
    codec: MediaCodec,
    pt: u8,
}

/// Counters one track's feeder and probes share with the muxing thread.
#[derive(Debug, Default)]
struct TrackStats {
    /// Distinct RTP timestamps seen: the frames the sender sent.
    frames_sent: AtomicU64,
    frames_muxed: AtomicU64,
    rejected: AtomicU64,
    /// First and last presentation time that reached the muxer, µs since the dump started.
    first_pts_us: AtomicU64,
    last_pts_us: AtomicU64,
}

impl TrackStats {
    fn new() -> Self {
        Self {
            first_pts_us: AtomicU64::new(u64::MAX),
            ..Self::default()
        }
    }
}

/// Mux `dump` into `out_dir`, atomically (written as `.part`, synced, renamed), giving up
/// after `options.limit` at most (less for a small dump, see [`deadline_for`]).
pub fn mux_dump(dump: &Path, out_dir: &Path, options: MuxOptions) -> Result<MuxOutcome, MuxError> {
    let started = Instant::now();
    // Pass 1: which tracks there are.
    let mut reader = DumpReader::open(dump)?;
    let mut plans: [Option<TrackPlan>; 5] = [None; 5];
    let mut records = 0u64;
    while let Some(rec) = reader.next_record() {
        records += 1;
        plans[rec.slot.index()].get_or_insert(TrackPlan {
            slot: rec.slot,
            codec: rec.codec,
            pt: rec.pt & 0x7f,
        });
    }
    let header = reader.header.clone();
    let torn_tail = reader.torn_tail;
    drop(reader);
    let plans: Vec<TrackPlan> = plans.into_iter().flatten().collect();
    if plans.is_empty() {
        return Err(MuxError::Empty);
    }
    init_gstreamer()?;

    let webm = plans.iter().all(|p| p.codec != MediaCodec::H264);
    let ext = if webm { "webm" } else { "mkv" };
    let stem = sanitize(&header.session_id);
    let path = out_dir.join(format!("{stem}.{ext}"));
    let part = out_dir.join(format!("{stem}.{ext}.part"));
    // Plaintext audio and video of the resident until it is sealed: the relay's user only.
    // filesink truncates the file it opens but keeps its mode.
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&part)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }

    let dump_bytes = std::fs::metadata(dump).map(|m| m.len()).unwrap_or(0);
    let budget = deadline_for(dump_bytes, options.limit);
    let stats: Vec<Arc<TrackStats>> = plans.iter().map(|_| Arc::new(TrackStats::new())).collect();
    if let Err(e) = run_pipeline(dump, &part, webm, &plans, &stats, started + budget, options) {
        // Not reported as an empty recording even when no frame got through: a pipeline that
        // cannot negotiate is a fault to fix, and its dump must stay for a retry.
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }

    let mut tracks = Vec::new();
    let mut offset_us = u64::MAX;
    let mut last_us = 0u64;
    let mut rejected_packets = 0u64;
    for (plan, s) in plans.iter().zip(&stats) {
        rejected_packets += s.rejected.load(Ordering::Relaxed);
        let frames = s.frames_muxed.load(Ordering::Relaxed);
        if frames == 0 {
            continue;
        }
        offset_us = offset_us.min(s.first_pts_us.load(Ordering::Relaxed));
        last_us = last_us.max(s.last_pts_us.load(Ordering::Relaxed));
        tracks.push(MuxedTrack {
            slot: plan.slot,
            codec: plan.codec,
            frames,
            dropped_frames: s.frames_sent.load(Ordering::Relaxed).saturating_sub(frames),
        });
    }
    if tracks.is_empty() {
        let _ = std::fs::remove_file(&part);
        return Err(MuxError::Empty);
    }
    if offset_us == u64::MAX {
        // No frame carried a time (the depayloaders keep the ones we set; defensive).
        offset_us = 0;
    }
    let duration_ms = last_us
        .saturating_sub(offset_us)
        .saturating_add(LAST_FRAME_US)
        / 1000;
    let file = File::open(&part)?;
    file.sync_all()?;
    let size = file.metadata()?.len();
    drop(file);
    std::fs::rename(&part, &path)?;
    if let Ok(dir) = File::open(out_dir) {
        let _ = dir.sync_all();
    }
    Ok(MuxOutcome {
        header,
        path,
        size,
        offset_us,
        duration_ms,
        tracks,
        records,
        rejected_packets,
        torn_tail,
    })
}

fn make(factory: &str) -> Result<gst::Element, MuxError> {
    gst::ElementFactory::make(factory).build().map_err(|_| {
        MuxError::Init(format!(
            "element {factory} is missing (install gstreamer1.0-plugins-good and \
             gstreamer1.0-plugins-bad)"
        ))
    })
}

fn pipeline_error(e: impl std::fmt::Display) -> MuxError {
    MuxError::Pipeline(e.to_string())
}

/// Build and run the pipeline; the per-track counters when it reached the end.
fn run_pipeline(
    dump: &Path,
    part: &Path,
    webm: bool,
    plans: &[TrackPlan],
    stats: &[Arc<TrackStats>],
    deadline: Instant,
    options: MuxOptions,
) -> Result<(), MuxError> {
    let pipeline = gst::Pipeline::new();
    let mux = make(if webm { "webmmux" } else { "matroskamux" })?;
    // Time 0 of the file is its earliest frame.
    mux.set_property("offset-to-zero", true);
    let sink = make("filesink")?;
    sink.set_property("location", part.to_string_lossy().as_ref());
    sink.set_property("async", false);
    pipeline.add_many([&mux, &sink]).map_err(pipeline_error)?;
    mux.link(&sink).map_err(pipeline_error)?;

    let mut feeds = Vec::new();
    for (plan, stats) in plans.iter().zip(stats) {
        let (media, encoding, clock) = match plan.codec {
            MediaCodec::Vp8 => ("video", "VP8", 90_000),
            MediaCodec::H264 => ("video", "H264", 90_000),
            MediaCodec::Opus => ("audio", "OPUS", 48_000),
        };
        let caps = gst::Caps::builder("application/x-rtp")
            .field("media", media)
            .field("encoding-name", encoding)
            .field("clock-rate", clock)
            .field("payload", i32::from(plan.pt))
            .build();
        let src = gst_app::AppSrc::builder()
            .name(slot_name(plan.slot))
            .caps(&caps)
            .format(gst::Format::Time)
            .is_live(false)
            .max_bytes(options.queue_bytes.max(1500))
            .block(true)
            .build();
        let mut chain: Vec<gst::Element> = vec![src.clone().upcast()];
        match plan.codec {
            MediaCodec::Vp8 => {
                let depay = make("rtpvp8depay")?;
                // A frame after a loss may reference what was lost: skip to the next keyframe.
                depay.set_property("wait-for-keyframe", true);
                chain.push(depay);
            }
            MediaCodec::H264 => {
                let depay = make("rtph264depay")?;
                depay.set_property("wait-for-keyframe", true);
                chain.push(depay);
                chain.push(make("h264parse")?);
            }
            MediaCodec::Opus => {
                chain.push(make("rtpopusdepay")?);
                // Checks every packet's TOC and states the sample rate WebM's caps ask for.
                chain.push(make("opusparse")?);
            }
        }
        pipeline.add_many(&chain).map_err(pipeline_error)?;
        gst::Element::link_many(&chain).map_err(pipeline_error)?;
        let template = if plan.codec.is_video() {
            "video_%u"
        } else {
            "audio_%u"
        };
        let mux_pad = mux
            .request_pad_simple(template)
            .ok_or_else(|| pipeline_error("the muxer refused a track"))?;
        let last = chain.last().ok_or_else(|| pipeline_error("empty chain"))?;
        let src_pad = last
            .static_pad("src")
            .ok_or_else(|| pipeline_error("element without src pad"))?;
        src_pad.link(&mux_pad).map_err(pipeline_error)?;
        watch_muxer_pad(&mux_pad, Arc::clone(stats));
        feeds.push((*plan, src, stats));
    }

    let bus = pipeline
        .bus()
        .ok_or_else(|| pipeline_error("pipeline without bus"))?;
    if pipeline.set_state(gst::State::Playing).is_err() {
        let _ = pipeline.set_state(gst::State::Null);
        return Err(first_error(&bus).unwrap_or_else(|| pipeline_error("could not start")));
    }

    let feeder_errors: Mutex<Vec<MuxError>> = Mutex::new(Vec::new());
    let outcome = std::thread::scope(|scope| {
        for (plan, src, stats) in &feeds {
            let errors = &feeder_errors;
            let spawned = std::thread::Builder::new()
                .name(format!("mux-{}", slot_name(plan.slot)))
                .spawn_scoped(scope, move || {
                    if let Err(e) = feed_track(dump, plan, src, stats)
                        && let Ok(mut list) = errors.lock()
                    {
                        list.push(e);
                    }
                    // Whatever happened, this track is finished.
                    let _ = src.end_of_stream();
                });
            if let Err(e) = spawned {
                let _ = pipeline.set_state(gst::State::Null);
                return Err(MuxError::Io(e));
            }
        }
        let outcome = wait_for_end(&bus, deadline);
        // Stopping releases every feeder still blocked in a full appsrc.
        let _ = pipeline.set_state(gst::State::Null);
        outcome
    });
    outcome?;
    if let Some(e) = feeder_errors.into_inner().ok().and_then(|mut v| v.pop()) {
        return Err(e);
    }
    Ok(())
}

/// EOS, the first error, or the deadline.
fn wait_for_end(bus: &gst::Bus, deadline: Instant) -> Result<(), MuxError> {
    let budget = deadline.saturating_duration_since(Instant::now());
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(MuxError::Timeout(budget));
        }
        let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(left.as_millis().try_into().unwrap_or(u64::MAX)),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        ) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => return Ok(()),
            gst::MessageView::Error(e) => return Err(describe_error(e)),
            _ => {}
        }
    }
}

fn describe_error(e: &gst::message::Error) -> MuxError {
    let from = e
        .src()
        .map(|s| s.name().to_string())
        .unwrap_or_else(|| "pipeline".into());
    MuxError::Pipeline(format!("{from}: {}", e.error()))
}

fn first_error(bus: &gst::Bus) -> Option<MuxError> {
    let msg = bus.pop_filtered(&[gst::MessageType::Error])?;
    match msg.view() {
        gst::MessageView::Error(e) => Some(describe_error(e)),
        _ => None,
    }
}

/// Count what reaches the muxer, and keep a track's format fixed once its first frame went
/// through: Matroska cannot change a track's format after the header (a sender that changes
/// resolution mid-call would otherwise fail the whole recording; decoders read the new size
/// from the stream).
fn watch_muxer_pad(pad: &gst::Pad, stats: Arc<TrackStats>) {
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_pad, info| {
            if let Some(buffer) = info.buffer() {
                if let Some(pts) = buffer.pts() {
                    let us = pts.useconds();
                    stats.first_pts_us.fetch_min(us, Ordering::Relaxed);
                    stats.last_pts_us.fetch_max(us, Ordering::Relaxed);
                }
                stats.frames_muxed.fetch_add(1, Ordering::Relaxed);
            } else if let Some(event) = info.event()
                && event.type_() == gst::EventType::Caps
                && stats.frames_muxed.load(Ordering::Relaxed) > 0
            {
                return gst::PadProbeReturn::Drop;
            }
            gst::PadProbeReturn::Ok
        },
    );
}

/// Whether the depayloader can take this payload without stopping the pipeline.
fn acceptable(codec: MediaCodec, payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else {
        return false;
    };
    match codec {
        // Single NAL units, STAP-A and FU-A are what WebRTC sends; rtph264depay treats
        // STAP-B, MTAP and FU-B (and reserved types) as fatal stream errors.
        MediaCodec::H264 => matches!(b0 & 0x1f, 1..=24 | 28),
        MediaCodec::Vp8 | MediaCodec::Opus => true,
    }
}

/// Presentation time from RTP timestamps, per track.
#[derive(Debug, Default)]
struct Timeline {
    ssrc: Option<u32>,
    clock: u64,
    last_ts: u32,
    ext_ts: u64,
    anchor_ext: u64,
    anchor_us: u64,
    last_pts: u64,
}

impl Timeline {
    fn new(codec: MediaCodec) -> Self {
        Self {
            clock: u64::from(codec.clock_rate()).max(1),
            ..Self::default()
        }
    }

    /// µs since the dump started; never earlier than the previous packet's.
    fn pts_us(&mut self, rec: &DumpRecord) -> u64 {
        if self.ssrc != Some(rec.ssrc) {
            self.ssrc = Some(rec.ssrc);
            self.last_ts = rec.rtp_ts;
            self.ext_ts = 1 << 32;
            self.anchor_ext = 1 << 32;
            self.anchor_us = rec.t_micros;
        }
        // Extend the 32-bit timestamp relative to the highest one seen so far.
        let delta = rec.rtp_ts.wrapping_sub(self.last_ts) as i32;
        let ext = self.ext_ts.saturating_add_signed(i64::from(delta));
        if delta > 0 {
            self.last_ts = rec.rtp_ts;
            self.ext_ts = ext;
        }
        let since_anchor =
            |a: u64, b: u64| a.saturating_sub(b).saturating_mul(1_000_000) / self.clock;
        let mut pts = if ext >= self.anchor_ext {
            self.anchor_us
                .saturating_add(since_anchor(ext, self.anchor_ext))
        } else {
            self.anchor_us
                .saturating_sub(since_anchor(self.anchor_ext, ext))
        };
        if pts.abs_diff(rec.t_micros) > MAX_DRIFT_US {
            self.anchor_ext = ext;
            self.anchor_us = rec.t_micros;
            pts = rec.t_micros;
        }
        self.last_pts = self.last_pts.max(pts);
        self.last_pts
    }
}

/// One track's feeder: this slot's packets in sequence order, as RTP, into its appsrc.
fn feed_track(
    dump: &Path,
    plan: &TrackPlan,
    src: &gst_app::AppSrc,
    stats: &TrackStats,
) -> Result<(), MuxError> {
    let mut reader = DumpReader::open(dump)?;
    let mut window: BTreeMap<u64, DumpRecord> = BTreeMap::new();
    let mut feeder = Feeder {
        src,
        stats,
        codec: plan.codec,
        timeline: Timeline::new(plan.codec),
        released: None,
        frame: None,
        packet: Vec::with_capacity(1500),
        batch: gst::BufferList::new_sized(BATCH_PACKETS),
    };
    let mut ssrc = None;
    while let Some(rec) = reader.next_record() {
        if rec.slot != plan.slot || rec.codec != plan.codec {
            continue;
        }
        if ssrc.is_some_and(|s| s != rec.ssrc) {
            // A new source stream: its sequence space is unrelated to the old one's.
            while let Some((_, r)) = window.pop_first() {
                if !feeder.push(r) {
                    return Ok(());
                }
            }
            feeder.released = None;
        }
        ssrc = Some(rec.ssrc);
        if feeder.released.is_some_and(|n| rec.seq <= n) {
            continue; // Late duplicate, or later than the window can wait for.
        }
        window.entry(rec.seq).or_insert(rec);
        while window.len() > REORDER_PACKETS {
            let Some((_, r)) = window.pop_first() else {
                break;
            };
            if !feeder.push(r) {
                return Ok(());
            }
        }
    }
    while let Some((_, r)) = window.pop_first() {
        if !feeder.push(r) {
            return Ok(());
        }
    }
    feeder.flush();
    Ok(())
}

struct Feeder<'a> {
    src: &'a gst_app::AppSrc,
    stats: &'a TrackStats,
    codec: MediaCodec,
    timeline: Timeline,
    /// Highest sequence number handed on.
    released: Option<u64>,
    /// (SSRC, RTP timestamp) of the frame being fed.
    frame: Option<(u32, u32)>,
    packet: Vec<u8>,
    /// Packets handed to the appsrc together: one queue operation and one wake-up of its
    /// streaming thread per batch rather than per packet.
    batch: gst::BufferList,
}

impl Feeder<'_> {
    /// Hand one packet on; false once the pipeline has stopped taking packets.
    fn push(&mut self, rec: DumpRecord) -> bool {
        self.released = Some(rec.seq);
        if !acceptable(self.codec, &rec.payload) {
            self.stats.rejected.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        if self.frame != Some((rec.ssrc, rec.rtp_ts)) {
            self.frame = Some((rec.ssrc, rec.rtp_ts));
            self.stats.frames_sent.fetch_add(1, Ordering::Relaxed);
        }
        let pts = self.timeline.pts_us(&rec);
        self.packet.clear();
        self.packet.push(0x80);
        self.packet
            .push((u8::from(rec.marker) << 7) | (rec.pt & 0x7f));
        self.packet
            .extend_from_slice(&((rec.seq & 0xffff) as u16).to_be_bytes());
        self.packet.extend_from_slice(&rec.rtp_ts.to_be_bytes());
        self.packet.extend_from_slice(&rec.ssrc.to_be_bytes());
        self.packet.extend_from_slice(&rec.payload);
        let mut buffer = gst::Buffer::from_mut_slice(std::mem::take(&mut self.packet));
        if let Some(b) = buffer.get_mut() {
            b.set_pts(gst::ClockTime::from_useconds(pts));
        }
        self.packet = Vec::with_capacity(1500);
        if let Some(batch) = self.batch.get_mut() {
            batch.add(buffer);
        }
        if self.batch.len() >= BATCH_PACKETS {
            return self.flush();
        }
        true
    }

    /// Hand the batch on; false once the pipeline has stopped taking packets.
    fn flush(&mut self) -> bool {
        if self.batch.is_empty() {
            return true;
        }
        let batch = std::mem::replace(&mut self.batch, gst::BufferList::new_sized(BATCH_PACKETS));
        self.src.push_buffer_list(batch).is_ok()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ssrc: u32, rtp_ts: u32, t_ms: u64) -> DumpRecord {
        DumpRecord {
            t_micros: t_ms * 1000,
            slot: Slot::KioskMicrophone,
            codec: MediaCodec::Opus,
            marker: false,
            pt: 111,
            ssrc,
            seq: 0,
            rtp_ts,
            payload: vec![0xf8],
        }
    }

    #[test]
    fn presentation_times_follow_rtp_time_across_the_wrap() {
        let mut t = Timeline::new(MediaCodec::Opus);
        let pts: Vec<u64> = (0..5u32)
            .map(|i| {
                let ts = (u32::MAX - 1000).wrapping_add(i * 960);
                // Arrival jitters; RTP time decides.
                t.pts_us(&rec(7, ts, 100 + u64::from(i) * 20 + u64::from(i % 2) * 7))
            })
            .collect();
        assert_eq!(pts, vec![100_000, 120_000, 140_000, 160_000, 180_000]);
    }

    #[test]
    fn a_restarted_sender_is_re_anchored_and_time_never_runs_backwards() {
        let mut t = Timeline::new(MediaCodec::Vp8);
        assert_eq!(t.pts_us(&rec(1, 90_000, 0)), 0);
        assert_eq!(t.pts_us(&rec(1, 180_000, 1000)), 1_000_000);
        // Same source, RTP time jumps by an hour: re-anchored at arrival.
        assert_eq!(t.pts_us(&rec(1, 180_000 + 324_000_000, 1040)), 1_040_000);
        // A new source starts with its own timestamps, anchored at arrival.
        assert_eq!(t.pts_us(&rec(2, 5, 2000)), 2_000_000);
        // A reordered older packet does not move time backwards.
        assert_eq!(t.pts_us(&rec(2, 1, 2001)), 2_000_000);
    }

    #[test]
    fn only_h264_types_the_depayloader_survives_are_passed() {
        for t in 0u8..32 {
            let ok = acceptable(MediaCodec::H264, &[0x60 | t, 0]);
            assert_eq!(ok, (1..=24).contains(&t) || t == 28, "type {t}");
        }
        assert!(!acceptable(MediaCodec::Vp8, &[]));
        assert!(acceptable(MediaCodec::Opus, &[0xf8]));
    }

    #[test]
    fn the_deadline_grows_with_the_dump_and_respects_the_limit() {
        let limit = Duration::from_secs(600);
        assert_eq!(deadline_for(0, limit), Duration::from_secs(20));
        assert!(deadline_for(100 << 20, limit) > deadline_for(1 << 20, limit));
        assert_eq!(deadline_for(u64::MAX, limit), limit);
    }
}
