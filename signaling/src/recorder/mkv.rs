//! A small Matroska/WebM writer: EBML header, one Segment with SeekHead, Info, Tracks,
//! Clusters of SimpleBlocks and Cues. Written to a seekable file; sizes, duration and seek
//! positions are patched in at the end. Timestamps in milliseconds (TimestampScale 1 ms).

use std::io::{self, Seek, SeekFrom, Write};

use crate::sfu::MediaCodec;

mod id {
    pub const EBML: u32 = 0x1A45_DFA3;
    pub const EBML_VERSION: u32 = 0x4286;
    pub const EBML_READ_VERSION: u32 = 0x42F7;
    pub const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
    pub const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
    pub const DOC_TYPE: u32 = 0x4282;
    pub const DOC_TYPE_VERSION: u32 = 0x4287;
    pub const DOC_TYPE_READ_VERSION: u32 = 0x4285;
    pub const SEGMENT: u32 = 0x1853_8067;
    pub const SEEK_HEAD: u32 = 0x114D_9B74;
    pub const SEEK: u32 = 0x4DBB;
    pub const SEEK_ID: u32 = 0x53AB;
    pub const SEEK_POSITION: u32 = 0x53AC;
    pub const INFO: u32 = 0x1549_A966;
    pub const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
    pub const DURATION: u32 = 0x4489;
    pub const MUXING_APP: u32 = 0x4D80;
    pub const WRITING_APP: u32 = 0x5741;
    pub const TITLE: u32 = 0x7BA9;
    pub const TRACKS: u32 = 0x1654_AE6B;
    pub const TRACK_ENTRY: u32 = 0xAE;
    pub const TRACK_NUMBER: u32 = 0xD7;
    pub const TRACK_UID: u32 = 0x73C5;
    pub const TRACK_TYPE: u32 = 0x83;
    pub const FLAG_LACING: u32 = 0x9C;
    pub const CODEC_ID: u32 = 0x86;
    pub const CODEC_PRIVATE: u32 = 0x63A2;
    pub const CODEC_DELAY: u32 = 0x56AA;
    pub const SEEK_PRE_ROLL: u32 = 0x56BB;
    pub const NAME: u32 = 0x536E;
    pub const VIDEO: u32 = 0xE0;
    pub const PIXEL_WIDTH: u32 = 0xB0;
    pub const PIXEL_HEIGHT: u32 = 0xBA;
    pub const AUDIO: u32 = 0xE1;
    pub const SAMPLING_FREQUENCY: u32 = 0xB5;
    pub const CHANNELS: u32 = 0x9F;
    pub const CLUSTER: u32 = 0x1F43_B675;
    pub const TIMESTAMP: u32 = 0xE7;
    pub const SIMPLE_BLOCK: u32 = 0xA3;
    pub const CUES: u32 = 0x1C53_BB6B;
    pub const CUE_POINT: u32 = 0xBB;
    pub const CUE_TIME: u32 = 0xB3;
    pub const CUE_TRACK_POSITIONS: u32 = 0xB7;
    pub const CUE_TRACK: u32 = 0xF7;
    pub const CUE_CLUSTER_POSITION: u32 = 0xF1;
}

fn put_id(buf: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    buf.extend_from_slice(&bytes[skip..]);
}

fn put_size(buf: &mut Vec<u8>, size: u64) {
    for len in 1..=8u32 {
        if size < (1u64 << (7 * len)) - 1 {
            let marked = size | (1u64 << (7 * len));
            buf.extend_from_slice(&marked.to_be_bytes()[(8 - len as usize)..]);
            return;
        }
    }
    // Sizes beyond 2^56 do not occur for one recording.
    buf.extend_from_slice(&(size | (1u64 << 56)).to_be_bytes());
}

fn put_el(buf: &mut Vec<u8>, id: u32, body: &[u8]) {
    put_id(buf, id);
    put_size(buf, body.len() as u64);
    buf.extend_from_slice(body);
}

fn put_uint(buf: &mut Vec<u8>, id: u32, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    put_el(buf, id, &bytes[skip..]);
}

fn put_float(buf: &mut Vec<u8>, id: u32, v: f64) {
    put_el(buf, id, &v.to_be_bytes());
}

fn put_str(buf: &mut Vec<u8>, id: u32, v: &str) {
    put_el(buf, id, v.as_bytes());
}

/// One track of the file.
#[derive(Debug, Clone)]
pub struct TrackSpec {
    pub number: u64,
    pub codec: MediaCodec,
    pub name: String,
    pub width: u16,
    pub height: u16,
    pub channels: u8,
    pub codec_private: Option<Vec<u8>>,
}

impl TrackSpec {
    fn codec_id(&self) -> &'static str {
        match self.codec {
            MediaCodec::Vp8 => "V_VP8",
            MediaCodec::H264 => "V_MPEG4/ISO/AVC",
            MediaCodec::Opus => "A_OPUS",
        }
    }
}

/// `OpusHead` as Matroska's A_OPUS codec private (RFC 7845 §5.1), pre-skip 0 so audio
/// stays aligned with video.
pub fn opus_head(channels: u8) -> Vec<u8> {
    let mut v = b"OpusHead".to_vec();
    v.push(1);
    v.push(channels);
    v.extend_from_slice(&0u16.to_le_bytes());
    v.extend_from_slice(&48_000u32.to_le_bytes());
    v.extend_from_slice(&0i16.to_le_bytes());
    v.push(0);
    v
}

/// Longest span of one cluster; block timestamps are signed 16-bit offsets from it.
const MAX_CLUSTER_MS: u64 = 5_000;

pub struct MkvWriter<W: Write + Seek> {
    w: W,
    pos: u64,
    segment_size_at: u64,
    segment_data_start: u64,
    seek_positions_at: [u64; 3],
    duration_at: u64,
    info_pos: u64,
    tracks_pos: u64,
    video_tracks: Vec<u64>,
    cluster: Vec<u8>,
    cluster_ts: Option<u64>,
    cues: Vec<(u64, u64, u64)>,
    last_ts: u64,
}

impl<W: Write + Seek> MkvWriter<W> {
    pub fn new(mut w: W, doc_type: &str, title: &str, tracks: &[TrackSpec]) -> io::Result<Self> {
        let mut head = Vec::with_capacity(512);
        let mut ebml = Vec::new();
        put_uint(&mut ebml, id::EBML_VERSION, 1);
        put_uint(&mut ebml, id::EBML_READ_VERSION, 1);
        put_uint(&mut ebml, id::EBML_MAX_ID_LENGTH, 4);
        put_uint(&mut ebml, id::EBML_MAX_SIZE_LENGTH, 8);
        put_str(&mut ebml, id::DOC_TYPE, doc_type);
        put_uint(&mut ebml, id::DOC_TYPE_VERSION, 4);
        put_uint(&mut ebml, id::DOC_TYPE_READ_VERSION, 2);
        put_el(&mut head, id::EBML, &ebml);

        put_id(&mut head, id::SEGMENT);
        let segment_size_at = head.len() as u64;
        head.extend_from_slice(&[0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        let segment_data_start = head.len() as u64;

        // SeekHead with three entries whose 8-byte positions are patched at the end.
        let mut seek_positions_at = [0u64; 3];
        let mut seek_head = Vec::new();
        let mut offsets_in_seek_head = [0usize; 3];
        for (i, target) in [id::INFO, id::TRACKS, id::CUES].into_iter().enumerate() {
            let mut seek = Vec::new();
            let mut target_id = Vec::new();
            put_id(&mut target_id, target);
            put_el(&mut seek, id::SEEK_ID, &target_id);
            put_id(&mut seek, id::SEEK_POSITION);
            put_size(&mut seek, 8);
            let in_seek = seek.len();
            seek.extend_from_slice(&[0; 8]);
            put_id(&mut seek_head, id::SEEK);
            put_size(&mut seek_head, seek.len() as u64);
            offsets_in_seek_head[i] = seek_head.len() + in_seek;
            seek_head.extend_from_slice(&seek);
        }
        put_id(&mut head, id::SEEK_HEAD);
        put_size(&mut head, seek_head.len() as u64);
        let seek_head_body = head.len();
        head.extend_from_slice(&seek_head);
        for (i, off) in offsets_in_seek_head.iter().enumerate() {
            seek_positions_at[i] = (seek_head_body + off) as u64;
        }

        let info_pos = head.len() as u64 - segment_data_start;
        let mut info = Vec::new();
        put_uint(&mut info, id::TIMESTAMP_SCALE, 1_000_000);
        put_str(&mut info, id::MUXING_APP, "rvw-recorder");
        put_str(&mut info, id::WRITING_APP, "rvw-relay");
        put_str(&mut info, id::TITLE, title);
        put_id(&mut info, id::DURATION);
        put_size(&mut info, 8);
        let duration_in_info = info.len();
        info.extend_from_slice(&0f64.to_be_bytes());
        put_id(&mut head, id::INFO);
        put_size(&mut head, info.len() as u64);
        let duration_at = (head.len() + duration_in_info) as u64;
        head.extend_from_slice(&info);

        let tracks_pos = head.len() as u64 - segment_data_start;
        let mut tracks_body = Vec::new();
        for t in tracks {
            let mut e = Vec::new();
            put_uint(&mut e, id::TRACK_NUMBER, t.number);
            put_uint(&mut e, id::TRACK_UID, t.number);
            put_uint(
                &mut e,
                id::TRACK_TYPE,
                if t.codec.is_video() { 1 } else { 2 },
            );
            put_uint(&mut e, id::FLAG_LACING, 0);
            put_str(&mut e, id::NAME, &t.name);
            put_str(&mut e, id::CODEC_ID, t.codec_id());
            if let Some(p) = &t.codec_private {
                put_el(&mut e, id::CODEC_PRIVATE, p);
            }
            if t.codec.is_video() {
                let mut v = Vec::new();
                put_uint(&mut v, id::PIXEL_WIDTH, u64::from(t.width.max(1)));
                put_uint(&mut v, id::PIXEL_HEIGHT, u64::from(t.height.max(1)));
                put_el(&mut e, id::VIDEO, &v);
            } else {
                put_uint(&mut e, id::CODEC_DELAY, 0);
                put_uint(&mut e, id::SEEK_PRE_ROLL, 80_000_000);
                let mut a = Vec::new();
                put_float(&mut a, id::SAMPLING_FREQUENCY, 48_000.0);
                put_uint(&mut a, id::CHANNELS, u64::from(t.channels.max(1)));
                put_el(&mut e, id::AUDIO, &a);
            }
            put_el(&mut tracks_body, id::TRACK_ENTRY, &e);
        }
        put_el(&mut head, id::TRACKS, &tracks_body);

        w.write_all(&head)?;
        Ok(Self {
            w,
            pos: head.len() as u64,
            segment_size_at,
            segment_data_start,
            seek_positions_at,
            duration_at,
            info_pos,
            tracks_pos,
            video_tracks: tracks
                .iter()
                .filter(|t| t.codec.is_video())
                .map(|t| t.number)
                .collect(),
            cluster: Vec::with_capacity(256 * 1024),
            cluster_ts: None,
            cues: Vec::new(),
            last_ts: 0,
        })
    }

    /// Append one frame. Timestamps should be roughly non-decreasing; an earlier one is
    /// clamped to the current cluster's start.
    pub fn write_frame(
        &mut self,
        track: u64,
        ts_ms: u64,
        keyframe: bool,
        data: &[u8],
    ) -> io::Result<()> {
        let is_video = self.video_tracks.contains(&track);
        let cue_worthy = keyframe && (is_video || self.video_tracks.is_empty());
        let start_new = match self.cluster_ts {
            None => true,
            Some(c) => {
                ts_ms >= c + MAX_CLUSTER_MS
                    || (cue_worthy && is_video && ts_ms > c)
                    || (cue_worthy && !is_video && ts_ms >= c + 1000)
            }
        };
        if start_new {
            self.flush_cluster()?;
            let c = ts_ms.max(self.last_ts);
            self.cluster_ts = Some(c);
            if cue_worthy {
                self.cues
                    .push((c, track, self.pos - self.segment_data_start));
            }
        }
        let cluster_ts = self.cluster_ts.unwrap_or(0);
        let rel = ts_ms.saturating_sub(cluster_ts).min(i16::MAX as u64) as i16;
        self.last_ts = self.last_ts.max(cluster_ts + rel as u64);
        let mut head = [0u8; 4];
        head[0] = 0x80 | (track as u8 & 0x7f);
        head[1..3].copy_from_slice(&rel.to_be_bytes());
        head[3] = if keyframe { 0x80 } else { 0 };
        put_id(&mut self.cluster, id::SIMPLE_BLOCK);
        put_size(&mut self.cluster, (head.len() + data.len()) as u64);
        self.cluster.extend_from_slice(&head);
        self.cluster.extend_from_slice(data);
        Ok(())
    }

    fn flush_cluster(&mut self) -> io::Result<()> {
        let Some(ts) = self.cluster_ts.take() else {
            return Ok(());
        };
        let mut head = Vec::with_capacity(24);
        let mut ts_el = Vec::new();
        put_uint(&mut ts_el, id::TIMESTAMP, ts);
        put_id(&mut head, id::CLUSTER);
        put_size(&mut head, (ts_el.len() + self.cluster.len()) as u64);
        head.extend_from_slice(&ts_el);
        self.w.write_all(&head)?;
        self.w.write_all(&self.cluster)?;
        self.pos += (head.len() + self.cluster.len()) as u64;
        self.cluster.clear();
        Ok(())
    }

    /// Write the last cluster and the cues, patch sizes and the duration; returns the writer
    /// and the total file size.
    pub fn finish(mut self, duration_ms: u64) -> io::Result<(W, u64)> {
        self.flush_cluster()?;
        let cues_pos = self.pos - self.segment_data_start;
        let mut cues = Vec::new();
        for (t, track, pos) in &self.cues {
            let mut ctp = Vec::new();
            put_uint(&mut ctp, id::CUE_TRACK, *track);
            put_uint(&mut ctp, id::CUE_CLUSTER_POSITION, *pos);
            let mut cp = Vec::new();
            put_uint(&mut cp, id::CUE_TIME, *t);
            put_el(&mut cp, id::CUE_TRACK_POSITIONS, &ctp);
            put_el(&mut cues, id::CUE_POINT, &cp);
        }
        let mut out = Vec::new();
        put_el(&mut out, id::CUES, &cues);
        self.w.write_all(&out)?;
        self.pos += out.len() as u64;

        let segment_size = self.pos - self.segment_data_start;
        self.patch(
            self.segment_size_at,
            &(segment_size | (1u64 << 56)).to_be_bytes(),
        )?;
        self.patch(self.duration_at, &(duration_ms as f64).to_be_bytes())?;
        let positions = [self.info_pos, self.tracks_pos, cues_pos];
        for (at, p) in self.seek_positions_at.into_iter().zip(positions) {
            self.patch(at, &p.to_be_bytes())?;
        }
        self.w.seek(SeekFrom::Start(self.pos))?;
        self.w.flush()?;
        Ok((self.w, self.pos))
    }

    fn patch(&mut self, at: u64, bytes: &[u8]) -> io::Result<()> {
        self.w.seek(SeekFrom::Start(at))?;
        self.w.write_all(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn sizes_are_minimal_vints() {
        let mut b = Vec::new();
        put_size(&mut b, 5);
        assert_eq!(b, [0x85]);
        b.clear();
        put_size(&mut b, 127);
        assert_eq!(b, [0x40, 0x7f]);
        b.clear();
        put_uint(&mut b, id::TRACK_NUMBER, 0);
        assert_eq!(b, [0xD7, 0x81, 0x00]);
        b.clear();
        put_id(&mut b, id::SEGMENT);
        assert_eq!(b, [0x18, 0x53, 0x80, 0x67]);
    }

    #[test]
    fn writes_a_structurally_sound_file() {
        let tracks = [
            TrackSpec {
                number: 1,
                codec: MediaCodec::Vp8,
                name: "kiosk camera".into(),
                width: 320,
                height: 240,
                channels: 0,
                codec_private: None,
            },
            TrackSpec {
                number: 2,
                codec: MediaCodec::Opus,
                name: "kiosk microphone".into(),
                width: 0,
                height: 0,
                channels: 1,
                codec_private: Some(opus_head(1)),
            },
        ];
        let mut w =
            MkvWriter::new(Cursor::new(Vec::new()), "webm", "t", &tracks).expect("in memory");
        for i in 0..100u64 {
            w.write_frame(2, i * 20, true, &[0xf8, 1, 2])
                .expect("in memory");
            if i % 3 == 0 {
                w.write_frame(1, i * 20, i % 30 == 0, &[0u8; 50])
                    .expect("in memory");
            }
        }
        let (cursor, size) = w.finish(2000).expect("in memory");
        let bytes = cursor.into_inner();
        assert_eq!(bytes.len() as u64, size);
        assert_eq!(&bytes[..4], &[0x1A, 0x45, 0xDF, 0xA3]);
        // The segment size covers exactly the rest of the file.
        let seg = bytes
            .windows(4)
            .position(|w| w == [0x18, 0x53, 0x80, 0x67])
            .expect("segment present");
        let size_field = u64::from_be_bytes(bytes[seg + 4..seg + 12].try_into().expect("8"));
        assert_eq!(size_field & !(1u64 << 56), (bytes.len() - seg - 12) as u64);
        // Four keyframe clusters (0, 600, 1200, 1800 ms) are cued.
        let cues = bytes
            .windows(4)
            .position(|w| w == [0x1C, 0x53, 0xBB, 0x6B])
            .expect("cues present");
        assert!(cues > seg);
    }
}
