//! QR/barcode scanners (扫码器): the [`Scanner`] trait, a USB-serial driver ([`serial`]) and a
//! HID keyboard-wedge driver read through evdev ([`wedge`]), and [`spawn`], which runs any
//! scanner on its own thread and hands scans over a bounded channel.
//!
//! How it is driven: `spawn(scanner, capacity)` returns a task handle and a
//! `tokio::sync::mpsc::Receiver`; the agent's device-command handler takes the next scan from
//! it for `Scanner.Read`. Every wait inside is bounded (reads poll with a timeout and check the
//! stop flag); when the consumer falls behind, scans are dropped and counted, not queued
//! without limit.
//!
//! Content: scans are kept byte-exact ([`Scan::bytes`]) and decoded for display as UTF-8, else
//! GB18030 (Chinese QR codes, 随申码-style payloads), else lossy UTF-8 — never rejected for
//! their encoding. Scans over the configured length are rejected whole ([`ScannerError::TooLong`]).
//! Scan content may be personal (identity codes, phone numbers): it is a [`Pii`] and is never
//! logged.
//!
//! Not done here: HID-POS mode, scanner configuration by programming barcodes, and non-US
//! keyboard layouts or Alt+numpad sequences in wedge mode (a wedge cannot type non-ASCII; use
//! serial mode for such content).

pub mod serial;
pub mod wedge;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use protocol::Pii;
use protocol::device::{ScanEncoding, ScanResult};
use tokio::sync::mpsc;

/// One scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Exactly the bytes the scanner sent, without the terminator.
    pub bytes: Pii<Vec<u8>>,
    /// The content as text, decoded per `encoding`.
    pub text: Pii<String>,
    pub encoding: ScanEncoding,
}

impl Scan {
    /// Decodes `bytes`: UTF-8 (a leading BOM is dropped from the text), else GB18030, else
    /// lossy UTF-8.
    pub fn from_bytes(bytes: Vec<u8>) -> Scan {
        let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
        let (text, encoding) = if let Ok(text) = std::str::from_utf8(body) {
            (text.to_string(), ScanEncoding::Utf8)
        } else if let Some(text) =
            encoding_rs::GB18030.decode_without_bom_handling_and_without_replacement(&bytes)
        {
            (text.into_owned(), ScanEncoding::Gb18030)
        } else {
            (
                String::from_utf8_lossy(&bytes).into_owned(),
                ScanEncoding::Lossy,
            )
        };
        Scan {
            bytes: Pii::new(bytes),
            text: Pii::new(text),
            encoding,
        }
    }

    /// The `Scanner.Read` completion payload: the raw bytes go along (hex) only when the text
    /// lost information.
    pub fn to_result(&self) -> ScanResult {
        ScanResult {
            text: self.text.clone(),
            encoding: self.encoding,
            raw_hex: (self.encoding == ScanEncoding::Lossy)
                .then(|| Pii::new(hex::encode(self.bytes.expose()))),
        }
    }
}

/// Scanner errors. `Display` is "中文 / English" and never includes scan content.
#[derive(Debug, thiserror::Error)]
pub enum ScannerError {
    #[error("无法打开扫码器 / cannot open the scanner: {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("无法独占扫码器 / cannot grab the scanner input device: {0}")]
    Grab(#[source] std::io::Error),
    #[error("扫码器读写失败 / scanner I/O failed: {0}")]
    Io(#[source] std::io::Error),
    #[error(
        "扫码内容过长（上限 {limit} 字节），已丢弃 / scan longer than {limit} bytes, discarded"
    )]
    TooLong { limit: usize },
}

impl ScannerError {
    /// Whether the scanner can go on after this error (a too-long scan) or is gone.
    pub fn is_fatal(&self) -> bool {
        !matches!(self, ScannerError::TooLong { .. })
    }
}

/// A source of scans. Implementations block for at most `timeout`.
pub trait Scanner: Send {
    /// The next scan, `Ok(None)` if none arrived within `timeout`.
    fn next_scan(&mut self, timeout: Duration) -> Result<Option<Scan>, ScannerError>;
}

/// What the line assemblers produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assembled {
    Scan(Vec<u8>),
    /// A scan exceeded the limit and was discarded.
    TooLong,
}

/// One scan being assembled, whatever the transport: bytes up to the length limit; a scan
/// that goes over it is discarded whole (up to its end) and reported as too long.
#[derive(Debug)]
pub struct ScanBuffer {
    buf: Vec<u8>,
    max_len: usize,
    /// The current scan went over `max_len`: discard until its end.
    overlong: bool,
}

impl ScanBuffer {
    pub fn new(max_len: usize) -> Self {
        ScanBuffer {
            buf: Vec::new(),
            max_len,
            overlong: false,
        }
    }

    pub fn push(&mut self, byte: u8) {
        if self.overlong {
        } else if self.buf.len() >= self.max_len {
            self.overlong = true;
            self.buf.clear();
        } else {
            self.buf.push(byte);
        }
    }

    /// Whether a scan has begun.
    pub fn is_pending(&self) -> bool {
        !self.buf.is_empty() || self.overlong
    }

    /// Ends the scan: its bytes, `TooLong`, or nothing when it was empty.
    pub fn finish(&mut self) -> Option<Assembled> {
        if std::mem::take(&mut self.overlong) {
            self.buf.clear();
            return Some(Assembled::TooLong);
        }
        if self.buf.is_empty() {
            None
        } else {
            Some(Assembled::Scan(std::mem::take(&mut self.buf)))
        }
    }
}

/// The sans-IO half of a transport. Input goes in through the transport's own method (bytes
/// for [`serial::LineAssembler`], key events for [`wedge::KeyDecoder`]); a scan can also end
/// by silence, which is what this asks about.
pub trait Assembler {
    /// Ends a scan that has been silent for the idle gap.
    fn poll_idle(&mut self, now: Instant) -> Option<Assembled>;
    /// When [`poll_idle`](Self::poll_idle) should next be called, if a scan is pending.
    fn idle_deadline(&self) -> Option<Instant>;
}

/// The read loop of both transports: hands out what was assembled, ends scans by silence, and
/// otherwise waits for input, never past the caller's timeout or the next idle deadline.
pub struct ReadLoop<A> {
    assembler: A,
    pending: VecDeque<Assembled>,
    max_len: usize,
}

impl<A: Assembler> ReadLoop<A> {
    pub fn new(assembler: A, max_len: usize) -> Self {
        ReadLoop {
            assembler,
            pending: VecDeque::new(),
            max_len,
        }
    }

    /// The next scan within `timeout`. `read(assembler, pending, wait)` waits at most `wait`
    /// (at least 1 ms) for input and feeds what came to the assembler, which appends finished
    /// scans to `pending`.
    pub fn next_scan(
        &mut self,
        timeout: Duration,
        mut read: impl FnMut(&mut A, &mut VecDeque<Assembled>, Duration) -> Result<(), ScannerError>,
    ) -> Result<Option<Scan>, ScannerError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(a) = self.pending.pop_front() {
                return match a {
                    Assembled::Scan(bytes) => Ok(Some(Scan::from_bytes(bytes))),
                    Assembled::TooLong => Err(ScannerError::TooLong {
                        limit: self.max_len,
                    }),
                };
            }
            let now = Instant::now();
            if let Some(a) = self.assembler.poll_idle(now) {
                self.pending.push_back(a);
                continue;
            }
            if now >= deadline {
                return Ok(None);
            }
            let until = self
                .assembler
                .idle_deadline()
                .map_or(deadline, |d| d.min(deadline));
            let wait = until
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
            read(&mut self.assembler, &mut self.pending, wait)?;
        }
    }
}

/// A scanner running on its own thread. Dropping it stops the thread (within one poll).
pub struct ScannerTask {
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl ScannerTask {
    /// Scans dropped because the consumer did not keep up.
    pub fn dropped_scans(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for ScannerTask {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How often the pump thread checks its stop flag.
const PUMP_POLL: Duration = Duration::from_millis(100);

/// Runs `scanner` on a thread; scans (and errors) arrive on a channel of `capacity` (≥ 1).
/// A fatal error is sent and ends the thread; so does dropping the receiver.
pub fn spawn(
    mut scanner: Box<dyn Scanner>,
    capacity: usize,
) -> std::io::Result<(ScannerTask, mpsc::Receiver<Result<Scan, ScannerError>>)> {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let stop = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicU64::new(0));
    let thread = std::thread::Builder::new().name("scanner".into()).spawn({
        let (stop, dropped) = (stop.clone(), dropped.clone());
        move || {
            while !stop.load(Ordering::Relaxed) && !tx.is_closed() {
                let item = match scanner.next_scan(PUMP_POLL) {
                    Ok(None) => continue,
                    Ok(Some(scan)) => Ok(scan),
                    Err(e) => Err(e),
                };
                let fatal = item.as_ref().err().is_some_and(ScannerError::is_fatal);
                match tx.try_send(item) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!("scanner: consumer is behind; a scan was dropped");
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
                if fatal {
                    return;
                }
            }
        }
    })?;
    Ok((
        ScannerTask {
            stop,
            dropped,
            thread: Some(thread),
        },
        rx,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decoding() {
        let s = Scan::from_bytes(b"https://example.invalid/a?b=1".to_vec());
        assert_eq!(
            (s.text.expose().as_str(), s.encoding),
            ("https://example.invalid/a?b=1", ScanEncoding::Utf8)
        );
        assert_eq!(s.to_result().raw_hex, None);

        let utf8 = Scan::from_bytes("上海市".as_bytes().to_vec());
        assert_eq!(
            (utf8.text.expose().as_str(), utf8.encoding),
            ("上海市", ScanEncoding::Utf8)
        );

        // "上海" in GB18030 (also GBK): C9CF BAA3.
        let gb = Scan::from_bytes(vec![0xC9, 0xCF, 0xBA, 0xA3]);
        assert_eq!(
            (gb.text.expose().as_str(), gb.encoding),
            ("上海", ScanEncoding::Gb18030)
        );

        let junk = Scan::from_bytes(vec![b'a', 0xFF, 0xFF, 0x80]);
        assert_eq!(junk.encoding, ScanEncoding::Lossy);
        assert_eq!(junk.bytes.expose(), &vec![b'a', 0xFF, 0xFF, 0x80]);
        assert_eq!(
            junk.to_result().raw_hex.map(|h| h.into_inner()).as_deref(),
            Some("61ffff80")
        );
        assert_eq!(format!("{junk:?}").matches("REDACTED").count(), 2);

        let bom = Scan::from_bytes(b"\xEF\xBB\xBFok".to_vec());
        assert_eq!(bom.text.expose(), "ok");
        assert_eq!(bom.bytes.expose().len(), 5);
    }

    proptest! {
        #[test]
        fn bytes_are_always_kept_exactly(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let scan = Scan::from_bytes(bytes.clone());
            prop_assert_eq!(scan.bytes.expose(), &bytes);
            if scan.encoding == ScanEncoding::Utf8 {
                prop_assert!(bytes.ends_with(scan.text.expose().as_bytes()));
            }
        }
    }

    struct Scripted(Vec<Result<Option<Scan>, ScannerError>>);

    impl Scanner for Scripted {
        fn next_scan(&mut self, timeout: Duration) -> Result<Option<Scan>, ScannerError> {
            if self.0.is_empty() {
                std::thread::sleep(timeout.min(Duration::from_millis(5)));
                return Ok(None);
            }
            self.0.remove(0)
        }
    }

    #[tokio::test]
    async fn spawn_delivers_scans_and_stops_on_a_fatal_error() {
        let scanner = Scripted(vec![
            Ok(Some(Scan::from_bytes(b"one".to_vec()))),
            Ok(None),
            Err(ScannerError::TooLong { limit: 4 }),
            Ok(Some(Scan::from_bytes(b"two".to_vec()))),
            Err(ScannerError::Io(std::io::Error::other("unplugged"))),
        ]);
        let (task, mut rx) = spawn(Box::new(scanner), 8).expect("thread starts");
        async fn recv(
            rx: &mut mpsc::Receiver<Result<Scan, ScannerError>>,
        ) -> Option<Result<Scan, ScannerError>> {
            tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("bounded wait")
        }
        assert_eq!(
            recv(&mut rx)
                .await
                .expect("item")
                .expect("scan")
                .text
                .expose(),
            "one"
        );
        assert!(matches!(
            recv(&mut rx).await,
            Some(Err(ScannerError::TooLong { limit: 4 }))
        ));
        assert_eq!(
            recv(&mut rx)
                .await
                .expect("item")
                .expect("scan")
                .text
                .expose(),
            "two"
        );
        assert!(matches!(
            recv(&mut rx).await,
            Some(Err(ScannerError::Io(_)))
        ));
        assert!(
            recv(&mut rx).await.is_none(),
            "the thread ended after the fatal error"
        );
        assert_eq!(task.dropped_scans(), 0);
    }

    #[tokio::test]
    async fn a_full_channel_drops_and_counts() {
        let scans = (0..5)
            .map(|i| Ok(Some(Scan::from_bytes(vec![b'0' + i]))))
            .collect();
        let (task, mut rx) = spawn(Box::new(Scripted(scans)), 2).expect("thread starts");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while task.dropped_scans() < 3 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(task.dropped_scans(), 3);
        assert_eq!(
            rx.recv().await.expect("first").expect("scan").text.expose(),
            "0"
        );
        assert_eq!(
            rx.recv()
                .await
                .expect("second")
                .expect("scan")
                .text
                .expose(),
            "1"
        );
    }
}
