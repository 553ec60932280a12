//! The raw recording dump: a small header, then length-prefixed, checksummed, timestamped RTP
//! records appended as packets are forwarded.
//!
//! ```text
//! header  "RVWDUMP1" | u16 len | u64 start_unix_micros | u16 id_len | session id (UTF-8)
//! record  u32 body_len | u32 crc32(body) | body
//! body    u64 t_micros | u8 slot | u8 codec | u8 flags | u8 pt | u32 ssrc | u64 seq
//!         | u32 rtp_ts | payload
//! ```
//! All integers big-endian. `t_micros` is the arrival time since the dump started, `seq` the
//! extended sequence number, flags bit 0 the RTP marker. A crash can leave a partial record at
//! the end; the reader stops at the first record that is short or fails its checksum and
//! reports the torn tail instead of failing.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use protocol::media::Slot;

use crate::sfu::MediaCodec;

pub const MAGIC: &[u8; 8] = b"RVWDUMP1";
const RECORD_FIXED: usize = 8 + 1 + 1 + 1 + 1 + 4 + 8 + 4;
/// Larger bodies are not RTP packets; treated as corruption.
const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpHeader {
    pub start_unix_micros: u64,
    pub session_id: String,
}

/// One recorded RTP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpRecord {
    pub t_micros: u64,
    pub slot: Slot,
    pub codec: MediaCodec,
    pub marker: bool,
    pub pt: u8,
    pub ssrc: u32,
    pub seq: u64,
    pub rtp_ts: u32,
    pub payload: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("dump i/o: {0}")]
    Io(#[from] io::Error),
    #[error("not a recording dump (bad magic or header)")]
    BadHeader,
}

pub fn codec_code(codec: MediaCodec) -> u8 {
    match codec {
        MediaCodec::Vp8 => 1,
        MediaCodec::H264 => 2,
        MediaCodec::Opus => 3,
    }
}

fn codec_from_code(code: u8) -> Option<MediaCodec> {
    match code {
        1 => Some(MediaCodec::Vp8),
        2 => Some(MediaCodec::H264),
        3 => Some(MediaCodec::Opus),
        _ => None,
    }
}

pub fn write_header(w: &mut impl Write, header: &DumpHeader) -> io::Result<()> {
    let id = header.session_id.as_bytes();
    let too_long = || io::Error::new(io::ErrorKind::InvalidInput, "session id too long");
    let id_len = u16::try_from(id.len()).map_err(|_| too_long())?;
    let len = id_len.checked_add(8 + 2).ok_or_else(too_long)?;
    w.write_all(MAGIC)?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(&header.start_unix_micros.to_be_bytes())?;
    w.write_all(&id_len.to_be_bytes())?;
    w.write_all(id)
}

/// Fields of one record without the payload, so the writer can serialise straight from the
/// forwarding path's shared payload buffer.
#[derive(Debug, Clone, Copy)]
pub struct RecordMeta {
    pub t_micros: u64,
    pub slot: Slot,
    pub codec: MediaCodec,
    pub marker: bool,
    pub pt: u8,
    pub ssrc: u32,
    pub seq: u64,
    pub rtp_ts: u32,
}

/// Append one record. `scratch` is reused between calls (no allocation per packet).
pub fn write_record(
    w: &mut impl Write,
    meta: &RecordMeta,
    payload: &[u8],
    scratch: &mut Vec<u8>,
) -> io::Result<()> {
    scratch.clear();
    scratch.extend_from_slice(&meta.t_micros.to_be_bytes());
    scratch.push(meta.slot.index() as u8);
    scratch.push(codec_code(meta.codec));
    scratch.push(u8::from(meta.marker));
    scratch.push(meta.pt);
    scratch.extend_from_slice(&meta.ssrc.to_be_bytes());
    scratch.extend_from_slice(&meta.seq.to_be_bytes());
    scratch.extend_from_slice(&meta.rtp_ts.to_be_bytes());
    scratch.extend_from_slice(payload);
    // The reader refuses bodies over MAX_BODY as corruption; never write one.
    if scratch.len() > MAX_BODY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "RTP packet too large to record",
        ));
    }
    let len =
        u32::try_from(scratch.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let crc = crc32fast::hash(scratch);
    w.write_all(&len.to_be_bytes())?;
    w.write_all(&crc.to_be_bytes())?;
    w.write_all(scratch)
}

/// Streaming reader over a dump file.
pub struct DumpReader<R> {
    r: R,
    pub header: DumpHeader,
    /// Set once a short or corrupt record ended the stream.
    pub torn_tail: bool,
    done: bool,
    body: Vec<u8>,
}

impl DumpReader<BufReader<File>> {
    pub fn open(path: &Path) -> Result<Self, DumpError> {
        Self::new(BufReader::with_capacity(256 * 1024, File::open(path)?))
    }
}

impl<R: Read> DumpReader<R> {
    pub fn new(mut r: R) -> Result<Self, DumpError> {
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic).map_err(|_| DumpError::BadHeader)?;
        if &magic != MAGIC {
            return Err(DumpError::BadHeader);
        }
        let mut len = [0u8; 2];
        r.read_exact(&mut len).map_err(|_| DumpError::BadHeader)?;
        let len = usize::from(u16::from_be_bytes(len));
        if len < 10 {
            return Err(DumpError::BadHeader);
        }
        let mut h = vec![0u8; len];
        r.read_exact(&mut h).map_err(|_| DumpError::BadHeader)?;
        let start = u64::from_be_bytes(h[0..8].try_into().map_err(|_| DumpError::BadHeader)?);
        let id_len = usize::from(u16::from_be_bytes([h[8], h[9]]));
        let id = h.get(10..10 + id_len).ok_or(DumpError::BadHeader)?;
        let session_id = String::from_utf8(id.to_vec()).map_err(|_| DumpError::BadHeader)?;
        Ok(Self {
            r,
            header: DumpHeader {
                start_unix_micros: start,
                session_id,
            },
            torn_tail: false,
            done: false,
            body: Vec::with_capacity(2048),
        })
    }

    /// The next intact record; `None` at the end of the file or at a torn tail.
    pub fn next_record(&mut self) -> Option<DumpRecord> {
        if self.done {
            return None;
        }
        let rec = self.read_one();
        if rec.is_none() {
            self.done = true;
        }
        rec
    }

    fn read_one(&mut self) -> Option<DumpRecord> {
        let mut prefix = [0u8; 8];
        match read_full(&mut self.r, &mut prefix) {
            Ok(0) => return None,
            Ok(8) => {}
            _ => {
                self.torn_tail = true;
                return None;
            }
        }
        let len = usize::try_from(u32::from_be_bytes([
            prefix[0], prefix[1], prefix[2], prefix[3],
        ]))
        .unwrap_or(usize::MAX);
        let crc = u32::from_be_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
        if !(RECORD_FIXED..=MAX_BODY).contains(&len) {
            self.torn_tail = true;
            return None;
        }
        self.body.resize(len, 0);
        if !matches!(read_full(&mut self.r, &mut self.body), Ok(n) if n == len)
            || crc32fast::hash(&self.body) != crc
        {
            self.torn_tail = true;
            return None;
        }
        let b = &self.body;
        let be64 = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        let be32 = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap_or([0; 4]));
        let (Some(slot), Some(codec)) = (
            Slot::ORDER.get(usize::from(b[8])).copied(),
            codec_from_code(b[9]),
        ) else {
            self.torn_tail = true;
            return None;
        };
        Some(DumpRecord {
            t_micros: be64(0),
            slot,
            codec,
            marker: b[10] & 1 != 0,
            pt: b[11],
            ssrc: be32(12),
            seq: be64(16),
            rtp_ts: be32(24),
            payload: b[RECORD_FIXED..].to_vec(),
        })
    }
}

/// Like `read_exact` but reports how much was read before EOF.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Create a dump file with its header, buffered for appending.
/// Readable by the relay's user only: it holds residents' audio, video and document frames in
/// the clear.
pub fn create(path: &Path, header: &DumpHeader) -> io::Result<BufWriter<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    let mut w = BufWriter::with_capacity(64 * 1024, file);
    write_header(&mut w, header)?;
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(i: u64) -> (RecordMeta, Vec<u8>) {
        (
            RecordMeta {
                t_micros: i * 20_000,
                slot: Slot::KioskMicrophone,
                codec: MediaCodec::Opus,
                marker: i.is_multiple_of(2),
                pt: 111,
                ssrc: 0xdead_beef,
                seq: 65_530 + i,
                rtp_ts: (i * 960) as u32,
            },
            vec![i as u8; 40 + i as usize],
        )
    }

    fn dump(n: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        write_header(
            &mut buf,
            &DumpHeader {
                start_unix_micros: 1_700_000_000_000_000,
                session_id: "ticket-42".into(),
            },
        )
        .expect("vec write");
        let mut scratch = Vec::new();
        for i in 0..n {
            let (m, p) = sample(i);
            write_record(&mut buf, &m, &p, &mut scratch).expect("vec write");
        }
        buf
    }

    #[test]
    fn round_trip() {
        let buf = dump(10);
        let mut r = DumpReader::new(&buf[..]).expect("valid header");
        assert_eq!(r.header.session_id, "ticket-42");
        let mut n = 0;
        while let Some(rec) = r.next_record() {
            let (m, p) = sample(n);
            assert_eq!(rec.seq, m.seq);
            assert_eq!(rec.marker, m.marker);
            assert_eq!(rec.payload, p);
            assert_eq!(rec.slot, Slot::KioskMicrophone);
            n += 1;
        }
        assert_eq!(n, 10);
        assert!(!r.torn_tail);
    }

    #[test]
    fn every_truncation_is_a_clean_torn_tail() {
        let full = dump(5);
        let header_len = dump(0).len();
        for cut in header_len..full.len() {
            let mut r = DumpReader::new(&full[..cut]).expect("header intact");
            let mut n = 0;
            while r.next_record().is_some() {
                n += 1;
            }
            assert!(n < 5);
            // Cutting exactly at a record boundary is indistinguishable from a clean end.
            let _ = r.torn_tail;
        }
    }

    #[test]
    fn corruption_stops_reading() {
        let mut buf = dump(3);
        let last = buf.len() - 1;
        buf[last] ^= 0xff;
        let mut r = DumpReader::new(&buf[..]).expect("header intact");
        assert!(r.next_record().is_some());
        assert!(r.next_record().is_some());
        assert!(r.next_record().is_none());
        assert!(r.torn_tail);
        // A zero-filled tail (file extended but not written before a crash).
        let mut zeros = dump(1);
        zeros.extend_from_slice(&[0u8; 100]);
        let mut r = DumpReader::new(&zeros[..]).expect("header intact");
        assert!(r.next_record().is_some());
        assert!(r.next_record().is_none());
        assert!(r.torn_tail);
        assert!(DumpReader::new(&b"garbage!!"[..]).is_err());
    }

    /// The seed inputs of the `recorder_dump` fuzz target are real dumps: each reads to its
    /// end with no torn tail, so the fuzzer starts from inputs that reach every field.
    #[test]
    fn the_fuzzing_seeds_are_whole_dumps() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/recorder_dump");
        let mut seeds = 0;
        for entry in std::fs::read_dir(&dir).expect("seed directory") {
            let path = entry.expect("entry").path();
            let mut r = DumpReader::open(&path).expect("a dump header");
            while r.next_record().is_some() {}
            assert!(!r.torn_tail, "{} is torn", path.display());
            seeds += 1;
        }
        assert!(seeds >= 2);
    }

    #[test]
    fn a_header_or_record_the_reader_would_refuse_is_not_written() {
        let mut buf = Vec::new();
        let longest = DumpHeader {
            start_unix_micros: 0,
            session_id: "x".repeat(usize::from(u16::MAX) - 10),
        };
        write_header(&mut buf, &longest).expect("fits");
        assert_eq!(DumpReader::new(&buf[..]).expect("reads").header, longest);
        let too_long = DumpHeader {
            start_unix_micros: 0,
            session_id: "x".repeat(usize::from(u16::MAX) - 9),
        };
        assert!(write_header(&mut Vec::new(), &too_long).is_err());
        let (meta, _) = sample(0);
        let huge = vec![0u8; MAX_BODY];
        assert!(write_record(&mut Vec::new(), &meta, &huge, &mut Vec::new()).is_err());
    }

    proptest::proptest! {
        /// Whatever bytes follow a valid header, reading never panics and stops cleanly.
        #[test]
        fn arbitrary_tails_never_panic(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..4096)) {
            let mut buf = dump(2);
            buf.extend_from_slice(&tail);
            let mut r = DumpReader::new(&buf[..]).expect("header intact");
            let mut n = 0;
            while r.next_record().is_some() {
                n += 1;
                proptest::prop_assert!(n < 1000);
            }
            proptest::prop_assert!(n >= 2);
        }
    }
}
