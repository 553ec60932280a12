//! SAM business-terminal frames (GA/T 467): encoding, and a streaming decoder that resyncs.
//!
//! ```text
//! command : AA AA AA 96 69 | LEN_H LEN_L | CMD PARA [DATA…] | CHK
//! response: AA AA AA 96 69 | LEN_H LEN_L | SW1 SW2 SW3 [DATA…] | CHK
//! LEN = bytes after the LEN field (body + CHK), big-endian; CHK = XOR of LEN_H … last body byte
//! ```
//! The decoder is sans-IO: bytes in with [`FrameDecoder::push`], frames out with
//! [`FrameDecoder::next_frame`]. Bytes that are not part of a frame (line noise, a reply that
//! arrived after its timeout) are skipped up to the next preamble and counted. The decoder
//! never holds more than one maximal frame plus the last chunk pushed.

/// The five bytes that start every frame.
pub const PREAMBLE: [u8; 5] = [0xAA, 0xAA, 0xAA, 0x96, 0x69];
/// Largest LEN accepted. The largest known reply (text + photo + 1024-byte fingerprint) has
/// LEN 0x090A = 2314; anything much bigger is noise that looked like a preamble.
pub const MAX_LEN: usize = 2400;
/// Smallest LEN: a command's CMD PARA CHK.
pub const MIN_LEN: usize = 3;

/// Why bytes that started like a frame were not one. Carries no payload bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame checksum mismatch (computed {computed:#04x}, received {received:#04x})")]
    Checksum { computed: u8, received: u8 },
    #[error("frame length {0} is outside {MIN_LEN}..={MAX_LEN}")]
    Length(usize),
    #[error("reply body of {0} bytes is too short for SW1 SW2 SW3")]
    ShortReply(usize),
}

/// XOR of `bytes`.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |acc, b| acc ^ b)
}

/// Wraps `body` (CMD PARA DATA, or SW1 SW2 SW3 DATA) in a frame. Bodies longer than
/// [`MAX_LEN`]` - 1` are a programming error in the caller; they are encoded anyway (the LEN
/// field saturates at the decoder's limit check on the other side).
pub fn encode(body: &[u8]) -> Vec<u8> {
    let len = u16::try_from(body.len() + 1).unwrap_or(u16::MAX);
    let mut frame = Vec::with_capacity(PREAMBLE.len() + 3 + body.len());
    frame.extend_from_slice(&PREAMBLE);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    frame.push(checksum(&frame[PREAMBLE.len()..]));
    frame
}

/// A command frame: `CMD PARA DATA`.
pub fn command(cmd: u8, para: u8, data: &[u8]) -> Vec<u8> {
    let mut body = vec![cmd, para];
    body.extend_from_slice(data);
    encode(&body)
}

/// A decoded reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub sw1: u8,
    pub sw2: u8,
    pub sw3: u8,
    pub data: Vec<u8>,
}

impl Reply {
    pub fn from_body(mut body: Vec<u8>) -> Result<Reply, FrameError> {
        if body.len() < 3 {
            return Err(FrameError::ShortReply(body.len()));
        }
        let data = body.split_off(3);
        Ok(Reply {
            sw1: body[0],
            sw2: body[1],
            sw3: body[2],
            data,
        })
    }

    /// The reply as it goes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = vec![self.sw1, self.sw2, self.sw3];
        body.extend_from_slice(&self.data);
        encode(&body)
    }
}

/// Streaming frame decoder with resynchronisation.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    skipped: u64,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Forgets buffered bytes (before sending a new command: a late reply to an earlier one
    /// must not be taken for this one's).
    pub fn clear(&mut self) {
        self.skipped += self.buf.len() as u64;
        self.buf.clear();
    }

    /// Bytes skipped so far while looking for a preamble.
    pub fn skipped_bytes(&self) -> u64 {
        self.skipped
    }

    /// The next complete frame's body (between LEN and CHK), an error for bytes that looked
    /// like a frame but were not one (the decoder has already moved past them), or `None` when
    /// more bytes are needed.
    pub fn next_frame(&mut self) -> Option<Result<Vec<u8>, FrameError>> {
        let Some(start) = find_preamble(&self.buf) else {
            // Keep a tail that may be the start of a preamble split across reads.
            let keep = partial_preamble_suffix(&self.buf);
            let drop = self.buf.len() - keep;
            self.skip(drop);
            return None;
        };
        self.skip(start);
        let header = PREAMBLE.len() + 2;
        if self.buf.len() < header {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([self.buf[5], self.buf[6]]));
        if !(MIN_LEN..=MAX_LEN).contains(&len) {
            self.skip(1);
            return Some(Err(FrameError::Length(len)));
        }
        let total = header + len;
        if self.buf.len() < total {
            return None;
        }
        let computed = checksum(&self.buf[PREAMBLE.len()..total - 1]);
        let received = self.buf[total - 1];
        if computed != received {
            self.skip(1);
            return Some(Err(FrameError::Checksum { computed, received }));
        }
        let body = self.buf[header..total - 1].to_vec();
        self.buf.drain(..total);
        Some(Ok(body))
    }

    fn skip(&mut self, n: usize) {
        self.skipped += n as u64;
        self.buf.drain(..n);
    }
}

fn find_preamble(buf: &[u8]) -> Option<usize> {
    buf.windows(PREAMBLE.len()).position(|w| w == PREAMBLE)
}

/// Length of the longest suffix of `buf` that is a proper prefix of the preamble.
fn partial_preamble_suffix(buf: &[u8]) -> usize {
    (1..PREAMBLE.len())
        .rev()
        .find(|&n| buf.len() >= n && buf[buf.len() - n..] == PREAMBLE[..n])
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
            .collect()
    }

    /// The verified vectors of the reference (shared/reference/idcard-sam-protocol.md §1.2).
    #[test]
    fn command_vectors() {
        let cases = [
            ((0x20, 0x01), "AA AA AA 96 69 00 03 20 01 22"),
            ((0x20, 0x02), "AA AA AA 96 69 00 03 20 02 21"),
            ((0x30, 0x01), "AA AA AA 96 69 00 03 30 01 32"),
            ((0x30, 0x10), "AA AA AA 96 69 00 03 30 10 23"),
            ((0x11, 0xFF), "AA AA AA 96 69 00 03 11 FF ED"),
            ((0x10, 0xFF), "AA AA AA 96 69 00 03 10 FF EC"),
            ((0x12, 0xFF), "AA AA AA 96 69 00 03 12 FF EE"),
        ];
        for ((cmd, para), bytes) in cases {
            assert_eq!(command(cmd, para, &[]), hex(bytes), "{cmd:02X} {para:02X}");
        }
    }

    #[test]
    fn reply_vectors() {
        let cases = [
            ("AA AA AA 96 69 00 04 00 00 90 94", 0x90, 0),
            ("AA AA AA 96 69 00 08 00 00 9F 00 00 00 00 97", 0x9F, 4),
            ("AA AA AA 96 69 00 04 00 00 80 84", 0x80, 0),
            (
                "AA AA AA 96 69 00 0C 00 00 90 00 00 00 00 00 00 00 00 9C",
                0x90,
                8,
            ),
            ("AA AA AA 96 69 00 04 00 00 81 85", 0x81, 0),
            ("AA AA AA 96 69 00 04 00 00 41 45", 0x41, 0),
            ("AA AA AA 96 69 00 04 00 00 60 64", 0x60, 0),
        ];
        for (bytes, sw3, data_len) in cases {
            let mut d = FrameDecoder::new();
            d.push(&hex(bytes));
            let body = d.next_frame().expect("a frame").expect("valid");
            let reply = Reply::from_body(body).expect("reply");
            assert_eq!(
                (reply.sw1, reply.sw2, reply.sw3, reply.data.len()),
                (0, 0, sw3, data_len),
                "{bytes}"
            );
            assert_eq!(reply.encode(), hex(bytes));
            assert!(d.next_frame().is_none());
        }
    }

    #[test]
    fn resyncs_after_noise_and_split_reads() {
        let ok = hex("AA AA AA 96 69 00 04 00 00 90 94");
        let mut stream = hex("01 AA AA 96 AA 55 AA AA AA");
        stream.extend_from_slice(&ok);
        stream.extend_from_slice(&hex("AA AA"));
        let mut d = FrameDecoder::new();
        for byte in &stream {
            d.push(std::slice::from_ref(byte));
            if let Some(frame) = d.next_frame() {
                assert_eq!(frame, Ok(vec![0x00, 0x00, 0x90]));
            }
        }
        assert_eq!(d.skipped_bytes(), 9);
    }

    #[test]
    fn bad_checksum_is_reported_and_skipped() {
        let mut d = FrameDecoder::new();
        d.push(&hex(
            "AA AA AA 96 69 00 04 00 00 90 95 AA AA AA 96 69 00 04 00 00 80 84",
        ));
        assert_eq!(
            d.next_frame(),
            Some(Err(FrameError::Checksum {
                computed: 0x94,
                received: 0x95
            }))
        );
        assert_eq!(d.next_frame(), Some(Ok(vec![0, 0, 0x80])));
    }

    #[test]
    fn absurd_length_is_skipped() {
        let mut d = FrameDecoder::new();
        d.push(&hex(
            "AA AA AA 96 69 FF FF AA AA AA 96 69 00 04 00 00 90 94",
        ));
        assert_eq!(d.next_frame(), Some(Err(FrameError::Length(0xFFFF))));
        assert_eq!(d.next_frame(), Some(Ok(vec![0, 0, 0x90])));
    }

    proptest! {
        #[test]
        fn decoder_never_panics_and_stays_bounded(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..64)) {
            let mut d = FrameDecoder::new();
            for chunk in chunks {
                d.push(&chunk);
                while d.next_frame().is_some() {}
                prop_assert!(d.buf.len() <= PREAMBLE.len() + 2 + MAX_LEN + 64);
            }
        }

        #[test]
        fn any_body_roundtrips_through_noise(
            body in proptest::collection::vec(any::<u8>(), 2..600),
            noise in proptest::collection::vec(0u8..0x96, 0..40),
            split in 0usize..700,
        ) {
            let mut stream = noise.clone();
            stream.extend_from_slice(&encode(&body));
            let split = split.min(stream.len());
            let mut d = FrameDecoder::new();
            d.push(&stream[..split]);
            let mut got = Vec::new();
            while let Some(f) = d.next_frame() { got.push(f); }
            d.push(&stream[split..]);
            while let Some(f) = d.next_frame() { got.push(f); }
            prop_assert_eq!(got, vec![Ok(body)]);
        }
    }
}
