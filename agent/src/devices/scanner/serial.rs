//! Scanners in serial mode (USB-CDC virtual COM or RS-232): bytes arrive as the scanner sends
//! them, one scan per line. [`LineAssembler`] is the sans-IO part (bytes and time in, scans
//! out); [`SerialScanner`] feeds it from a tty with bounded reads, through the read loop both
//! transports share ([`ReadLoop`]).

use std::collections::VecDeque;
use std::io::Read;
use std::time::{Duration, Instant};

use serialport::SerialPort;

use super::{Assembled, Assembler, ReadLoop, Scan, ScanBuffer, Scanner, ScannerError};

/// Splits a byte stream into scans.
#[derive(Debug)]
pub struct LineAssembler {
    scan: ScanBuffer,
    after_cr: bool,
    /// End a scan after this much silence too (scanners configured without a suffix).
    idle_end: Option<Duration>,
    last_byte: Option<Instant>,
}

impl LineAssembler {
    /// Scans end at CR, LF or CR LF; with `idle_end`, also after that much silence.
    pub fn new(max_len: usize, idle_end: Option<Duration>) -> Self {
        LineAssembler {
            scan: ScanBuffer::new(max_len),
            after_cr: false,
            idle_end,
            last_byte: None,
        }
    }

    pub fn push(&mut self, bytes: &[u8], now: Instant, out: &mut VecDeque<Assembled>) {
        if let Some(a) = self.poll_idle(now) {
            out.push_back(a);
        }
        for &b in bytes {
            let lf_after_cr = b == b'\n' && self.after_cr;
            self.after_cr = b == b'\r';
            match b {
                b'\r' | b'\n' => {
                    if !lf_after_cr {
                        out.extend(self.finish());
                    }
                }
                _ => self.scan.push(b),
            }
        }
        if !bytes.is_empty() {
            self.last_byte = Some(now);
        }
    }

    fn finish(&mut self) -> Option<Assembled> {
        self.last_byte = None;
        self.scan.finish()
    }
}

impl Assembler for LineAssembler {
    fn poll_idle(&mut self, now: Instant) -> Option<Assembled> {
        let gap = self.idle_end?;
        let last = self.last_byte?;
        if now.saturating_duration_since(last) >= gap {
            self.finish()
        } else {
            None
        }
    }

    fn idle_deadline(&self) -> Option<Instant> {
        match (self.scan.is_pending(), self.idle_end, self.last_byte) {
            (true, Some(gap), Some(last)) => Some(last + gap),
            _ => None,
        }
    }
}

/// A scanner on a serial port.
pub struct SerialScanner {
    port: Box<dyn SerialPort>,
    reads: ReadLoop<LineAssembler>,
}

impl SerialScanner {
    /// Opens `path` 8N1 at `baud` (ignored on the wire by USB-CDC scanners).
    pub fn open(
        path: &str,
        baud: u32,
        max_len: usize,
        idle_end: Option<Duration>,
    ) -> Result<Self, ScannerError> {
        let port = serialport::new(path, baud)
            .timeout(Duration::from_millis(100))
            .open()
            .map_err(|e| ScannerError::Open {
                path: path.to_string(),
                source: e.into(),
            })?;
        Ok(Self::from_port(port, max_len, idle_end))
    }

    pub fn from_port(
        port: Box<dyn SerialPort>,
        max_len: usize,
        idle_end: Option<Duration>,
    ) -> Self {
        SerialScanner {
            port,
            reads: ReadLoop::new(LineAssembler::new(max_len, idle_end), max_len),
        }
    }

    /// Settings from a device profile.
    pub fn open_profile(
        path: &str,
        profile: &device_profiles::DeviceProfile,
    ) -> Result<Self, ScannerError> {
        let baud = profile.serial.as_ref().map_or(9600, |s| s.baud);
        let (max_len, idle) = profile.scanner.as_ref().map_or((4096, None), |s| {
            let idle = (s.terminator == device_profiles::Terminator::None)
                .then(|| Duration::from_millis(u64::from(s.idle_gap_ms)));
            (s.max_length as usize, idle)
        });
        Self::open(path, baud, max_len, idle)
    }
}

impl Scanner for SerialScanner {
    fn next_scan(&mut self, timeout: Duration) -> Result<Option<Scan>, ScannerError> {
        let port = &mut self.port;
        let mut buf = [0u8; 512];
        self.reads.next_scan(timeout, |lines, pending, wait| {
            port.set_timeout(wait)
                .map_err(|e| ScannerError::Io(e.into()))?;
            match port.read(&mut buf) {
                Ok(n) => lines.push(&buf[..n], Instant::now(), pending),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(ScannerError::Io(e)),
            }
            Ok(())
        })
    }
}

/// A simulated serial scanner on a pseudo-terminal (the `simulated-qr-scanner` profile): the
/// driver opens [`path`](Self::path) like any tty; [`send`](Self::send) "scans" a code.
pub struct SimulatedSerialScanner {
    master: serialport::TTYPort,
    // Kept open so the pty stays usable while no driver has it open.
    _slave: serialport::TTYPort,
    path: String,
}

impl SimulatedSerialScanner {
    pub fn start() -> Result<Self, ScannerError> {
        let io = |e: serialport::Error| ScannerError::Io(e.into());
        let (master, slave) = serialport::TTYPort::pair().map_err(io)?;
        let path = slave
            .name()
            .ok_or_else(|| ScannerError::Io(std::io::Error::other("pty has no path")))?;
        Ok(SimulatedSerialScanner {
            master,
            _slave: slave,
            path,
        })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Sends `content` followed by CR, as a scanner with the usual suffix does.
    pub fn send(&mut self, content: &[u8]) -> Result<(), ScannerError> {
        let mut bytes = content.to_vec();
        bytes.push(b'\r');
        self.send_raw(&bytes)
    }

    /// Sends bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ScannerError> {
        use std::io::Write;
        self.master
            .write_all(bytes)
            .and_then(|()| self.master.flush())
            .map_err(ScannerError::Io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scans(a: &mut LineAssembler, bytes: &[u8], now: Instant) -> Vec<Assembled> {
        let mut out = VecDeque::new();
        a.push(bytes, now, &mut out);
        out.into()
    }

    #[test]
    fn lines_end_at_cr_lf_or_crlf() {
        let t = Instant::now();
        let mut a = LineAssembler::new(16, None);
        assert_eq!(
            scans(&mut a, b"one\rtwo\nthree\r\nfour\r\r\n\nfi", t),
            vec![
                Assembled::Scan(b"one".to_vec()),
                Assembled::Scan(b"two".to_vec()),
                Assembled::Scan(b"three".to_vec()),
                Assembled::Scan(b"four".to_vec()),
            ]
        );
        assert_eq!(
            scans(&mut a, b"ve\r", t),
            vec![Assembled::Scan(b"five".to_vec())]
        );
    }

    #[test]
    fn overlong_scans_are_rejected_whole() {
        let t = Instant::now();
        let mut a = LineAssembler::new(4, None);
        assert_eq!(
            scans(&mut a, b"1234\r12345", t),
            vec![Assembled::Scan(b"1234".to_vec())]
        );
        assert_eq!(
            scans(&mut a, b"6789\rok\r", t),
            vec![Assembled::TooLong, Assembled::Scan(b"ok".to_vec())]
        );
    }

    #[test]
    fn idle_gap_ends_a_scan_without_a_terminator() {
        let t = Instant::now();
        let mut a = LineAssembler::new(64, Some(Duration::from_millis(200)));
        assert!(scans(&mut a, b"abc", t).is_empty());
        assert_eq!(a.idle_deadline(), Some(t + Duration::from_millis(200)));
        assert_eq!(a.poll_idle(t + Duration::from_millis(199)), None);
        assert_eq!(
            a.poll_idle(t + Duration::from_millis(200)),
            Some(Assembled::Scan(b"abc".to_vec()))
        );
        assert_eq!(a.poll_idle(t + Duration::from_millis(900)), None);
        // A late chunk after a gap starts a new scan.
        assert!(scans(&mut a, b"d", t + Duration::from_secs(1)).is_empty());
        assert_eq!(
            scans(&mut a, b"e", t + Duration::from_secs(2)),
            vec![Assembled::Scan(b"d".to_vec())]
        );
    }

    #[test]
    fn serial_scanner_over_a_pty() {
        let mut sim = SimulatedSerialScanner::start().expect("pty");
        let mut scanner = SerialScanner::open(sim.path(), 9600, 32, None).expect("opens");
        assert!(
            scanner
                .next_scan(Duration::from_millis(50))
                .expect("no error")
                .is_none()
        );

        sim.send(b"https://example.invalid/x").expect("send");
        let scan = scanner
            .next_scan(Duration::from_secs(5))
            .expect("ok")
            .expect("a scan");
        assert_eq!(scan.text.expose(), "https://example.invalid/x");

        // GB18030 bytes pass through serial mode unchanged.
        sim.send(&[0xC9, 0xCF, 0xBA, 0xA3]).expect("send");
        let scan = scanner
            .next_scan(Duration::from_secs(5))
            .expect("ok")
            .expect("a scan");
        assert_eq!(
            (scan.text.expose().as_str(), scan.encoding),
            ("上海", protocol::device::ScanEncoding::Gb18030)
        );

        sim.send(&[b'9'; 40]).expect("send");
        sim.send_raw(b"split-").expect("send");
        sim.send_raw(b"line\r\n").expect("send");
        let err = scanner
            .next_scan(Duration::from_secs(5))
            .expect_err("too long");
        assert!(
            matches!(err, ScannerError::TooLong { limit: 32 }) && !err.is_fatal(),
            "{err}"
        );
        let scan = scanner
            .next_scan(Duration::from_secs(5))
            .expect("ok")
            .expect("a scan");
        assert_eq!(scan.bytes.expose(), b"split-line");
    }

    #[test]
    fn serial_scanner_idle_end_over_a_pty() {
        let mut sim = SimulatedSerialScanner::start().expect("pty");
        let mut scanner =
            SerialScanner::open(sim.path(), 9600, 64, Some(Duration::from_millis(50)))
                .expect("opens");
        sim.send_raw(b"no-suffix").expect("send");
        let scan = scanner
            .next_scan(Duration::from_secs(5))
            .expect("ok")
            .expect("a scan");
        assert_eq!(scan.bytes.expose(), b"no-suffix");
    }

    #[test]
    fn missing_port_is_a_clear_error() {
        let err = SerialScanner::open("/dev/nonexistent-scanner", 9600, 64, None)
            .err()
            .expect("fails");
        assert!(
            err.to_string()
                .starts_with("无法打开扫码器 / cannot open the scanner"),
            "{err}"
        );
    }

    proptest! {
        #[test]
        fn content_survives_any_chunking(
            lines in proptest::collection::vec(proptest::collection::vec(any::<u8>().prop_filter("no terminator", |b| *b != b'\r' && *b != b'\n'), 1..40), 1..8),
            cut in 0usize..400,
        ) {
            let mut stream = Vec::new();
            for l in &lines { stream.extend_from_slice(l); stream.extend_from_slice(b"\r\n"); }
            let cut = cut.min(stream.len());
            let t = Instant::now();
            let mut a = LineAssembler::new(64, None);
            let mut got = scans(&mut a, &stream[..cut], t);
            got.extend(scans(&mut a, &stream[cut..], t));
            let expected: Vec<_> = lines.into_iter().map(Assembled::Scan).collect();
            prop_assert_eq!(got, expected);
        }
    }
}
