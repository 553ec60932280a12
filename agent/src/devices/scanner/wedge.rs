//! Scanners in their default USB HID keyboard-wedge mode, read from `/dev/input/event*` with
//! evdev. The device is grabbed (exclusive) so scans do not type into the kiosk screen.
//!
//! [`KeyDecoder`] is the sans-IO part: Linux key events (code, press/release, time) in, scans
//! out, for the US layout with Shift and Caps Lock. A scan ends at Enter or after an idle gap
//! (≈ 80 ms: scanners type much faster than people). Keys with no character are counted and
//! ignored. [`EvdevScanner`] feeds it from the device with bounded `poll(2)` waits.

use std::collections::VecDeque;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use super::{Assembled, Assembler, ReadLoop, Scan, ScanBuffer, Scanner, ScannerError};

/// Linux input key codes used here (`linux/input-event-codes.h`).
pub mod key {
    pub const ENTER: u16 = 28;
    pub const KP_ENTER: u16 = 96;
    pub const LEFT_SHIFT: u16 = 42;
    pub const RIGHT_SHIFT: u16 = 54;
    pub const CAPS_LOCK: u16 = 58;
}

/// The character a key types on a US keyboard: (unshifted, shifted).
fn us_layout(code: u16) -> Option<(u8, u8)> {
    const DIGITS: &[u8; 10] = b"1234567890";
    const SHIFTED_DIGITS: &[u8; 10] = b"!@#$%^&*()";
    const ROW_Q: &[u8; 10] = b"qwertyuiop";
    const ROW_A: &[u8; 9] = b"asdfghjkl";
    const ROW_Z: &[u8; 7] = b"zxcvbnm";
    let letter = |c: u8| Some((c, c.to_ascii_uppercase()));
    match code {
        2..=11 => Some((
            DIGITS[usize::from(code - 2)],
            SHIFTED_DIGITS[usize::from(code - 2)],
        )),
        12 => Some((b'-', b'_')),
        13 => Some((b'=', b'+')),
        15 => Some((b'\t', b'\t')),
        16..=25 => letter(ROW_Q[usize::from(code - 16)]),
        26 => Some((b'[', b'{')),
        27 => Some((b']', b'}')),
        30..=38 => letter(ROW_A[usize::from(code - 30)]),
        39 => Some((b';', b':')),
        40 => Some((b'\'', b'"')),
        41 => Some((b'`', b'~')),
        43 => Some((b'\\', b'|')),
        44..=50 => letter(ROW_Z[usize::from(code - 44)]),
        51 => Some((b',', b'<')),
        52 => Some((b'.', b'>')),
        53 => Some((b'/', b'?')),
        55 => Some((b'*', b'*')),
        57 => Some((b' ', b' ')),
        71 => Some((b'7', b'7')),
        72 => Some((b'8', b'8')),
        73 => Some((b'9', b'9')),
        74 => Some((b'-', b'-')),
        75 => Some((b'4', b'4')),
        76 => Some((b'5', b'5')),
        77 => Some((b'6', b'6')),
        78 => Some((b'+', b'+')),
        79 => Some((b'1', b'1')),
        80 => Some((b'2', b'2')),
        81 => Some((b'3', b'3')),
        82 => Some((b'0', b'0')),
        83 => Some((b'.', b'.')),
        98 => Some((b'/', b'/')),
        _ => None,
    }
}

/// A key event: `value` 1 = press, 0 = release, 2 = autorepeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyEvent {
    pub code: u16,
    pub value: i32,
    pub at: Instant,
}

/// Key events → scans.
#[derive(Debug)]
pub struct KeyDecoder {
    scan: ScanBuffer,
    left_shift: bool,
    right_shift: bool,
    caps_lock: bool,
    end_on_enter: bool,
    idle_gap: Duration,
    last_key: Option<Instant>,
    ignored_keys: u64,
}

impl KeyDecoder {
    pub fn new(max_len: usize, idle_gap: Duration, end_on_enter: bool) -> Self {
        KeyDecoder {
            scan: ScanBuffer::new(max_len),
            left_shift: false,
            right_shift: false,
            caps_lock: false,
            end_on_enter,
            idle_gap,
            last_key: None,
            ignored_keys: 0,
        }
    }

    /// Key presses that type nothing (function keys, Ctrl, …), ignored.
    pub fn ignored_keys(&self) -> u64 {
        self.ignored_keys
    }

    pub fn handle(&mut self, ev: KeyEvent, out: &mut VecDeque<Assembled>) {
        out.extend(self.poll_idle(ev.at));
        match (ev.code, ev.value) {
            (key::LEFT_SHIFT, v) => self.left_shift = v != 0,
            (key::RIGHT_SHIFT, v) => self.right_shift = v != 0,
            (_, 1) => self.press(ev, out),
            // Releases and autorepeat type nothing: scanners do not hold keys.
            _ => {}
        }
    }

    fn press(&mut self, ev: KeyEvent, out: &mut VecDeque<Assembled>) {
        self.last_key = Some(ev.at);
        if ev.code == key::CAPS_LOCK {
            self.caps_lock = !self.caps_lock;
            return;
        }
        if ev.code == key::ENTER || ev.code == key::KP_ENTER {
            if self.end_on_enter {
                out.extend(self.finish());
            }
            return;
        }
        let Some((plain, shifted)) = us_layout(ev.code) else {
            self.ignored_keys += 1;
            return;
        };
        let shift = self.left_shift || self.right_shift;
        let c = if plain.is_ascii_alphabetic() {
            if shift != self.caps_lock {
                shifted
            } else {
                plain
            }
        } else if shift {
            shifted
        } else {
            plain
        };
        self.scan.push(c);
    }

    fn finish(&mut self) -> Option<Assembled> {
        self.last_key = None;
        // Modifier state does not carry over between scans.
        self.left_shift = false;
        self.right_shift = false;
        self.scan.finish()
    }
}

impl Assembler for KeyDecoder {
    fn poll_idle(&mut self, now: Instant) -> Option<Assembled> {
        let last = self.last_key?;
        if now.saturating_duration_since(last) >= self.idle_gap {
            self.finish()
        } else {
            None
        }
    }

    fn idle_deadline(&self) -> Option<Instant> {
        let pending = self.scan.is_pending();
        self.last_key.filter(|_| pending).map(|t| t + self.idle_gap)
    }
}

/// A keyboard-wedge scanner on an evdev device.
pub struct EvdevScanner {
    device: evdev::Device,
    reads: ReadLoop<KeyDecoder>,
}

impl EvdevScanner {
    /// Opens the input device (e.g. `/dev/input/by-id/usb-…-event-kbd`) and, if `grab`, takes
    /// it exclusively. Needs read access (the `input` group).
    pub fn open(
        path: &str,
        grab: bool,
        max_len: usize,
        idle_gap: Duration,
        end_on_enter: bool,
    ) -> Result<Self, ScannerError> {
        let mut device = evdev::Device::open(path).map_err(|source| ScannerError::Open {
            path: path.to_string(),
            source,
        })?;
        if grab {
            device.grab().map_err(ScannerError::Grab)?;
        }
        device.set_nonblocking(true).map_err(ScannerError::Io)?;
        Ok(EvdevScanner {
            device,
            reads: ReadLoop::new(KeyDecoder::new(max_len, idle_gap, end_on_enter), max_len),
        })
    }

    /// Settings from a device profile.
    pub fn open_profile(
        path: &str,
        profile: &device_profiles::DeviceProfile,
    ) -> Result<Self, ScannerError> {
        let (grab, max_len, gap, enter) =
            profile
                .scanner
                .as_ref()
                .map_or((true, 4096, 80, true), |s| {
                    (
                        s.grab,
                        s.max_length as usize,
                        s.idle_gap_ms,
                        s.terminator == device_profiles::Terminator::Enter,
                    )
                });
        Self::open(
            path,
            grab,
            max_len,
            Duration::from_millis(u64::from(gap)),
            enter,
        )
    }
}

/// Feeds the key events the device has ready to the decoder.
fn drain_events(
    device: &mut evdev::Device,
    keys: &mut KeyDecoder,
    pending: &mut VecDeque<Assembled>,
) -> Result<(), ScannerError> {
    match device.fetch_events() {
        Ok(events) => {
            let now = Instant::now();
            for ev in events {
                if ev.event_type() == evdev::EventType::KEY {
                    keys.handle(
                        KeyEvent {
                            code: ev.code(),
                            value: ev.value(),
                            at: now,
                        },
                        pending,
                    );
                }
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(ScannerError::Io(e)),
    }
}

impl Scanner for EvdevScanner {
    fn next_scan(&mut self, timeout: Duration) -> Result<Option<Scan>, ScannerError> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let device = &mut self.device;
        self.reads.next_scan(timeout, |keys, pending, wait| {
            // Bounded so the pump thread sees its stop flag.
            let wait_ms = wait.as_millis().clamp(1, 1000) as u16;
            let mut fds = [PollFd::new(device.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(wait_ms)) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => Ok(()),
                Ok(_) => drain_events(device, keys, pending),
                Err(e) => Err(ScannerError::Io(e.into())),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAP: Duration = Duration::from_millis(80);

    /// Types `text` as a scanner would: shift around capitals and symbols, 2 ms per event.
    fn typing(text: &str, start: Instant) -> Vec<KeyEvent> {
        let mut events = Vec::new();
        let mut t = start;
        let mut ev = |code: u16, value: i32| {
            t += Duration::from_millis(2);
            events.push(KeyEvent { code, value, at: t });
        };
        for c in text.bytes() {
            let (code, shifted) = (1..=98u16)
                .find_map(|code| {
                    let (plain, shifted) = us_layout(code)?;
                    if plain == c {
                        Some((code, false))
                    } else if shifted == c {
                        Some((code, true))
                    } else {
                        None
                    }
                })
                .unwrap_or_else(|| panic!("{c} is not on the US layout"));
            if shifted {
                ev(key::LEFT_SHIFT, 1);
            }
            ev(code, 1);
            ev(code, 0);
            if shifted {
                ev(key::LEFT_SHIFT, 0);
            }
        }
        events
    }

    fn run(decoder: &mut KeyDecoder, events: &[KeyEvent]) -> Vec<Assembled> {
        let mut out = VecDeque::new();
        for &e in events {
            decoder.handle(e, &mut out);
        }
        out.into()
    }

    fn enter(at: Instant) -> [KeyEvent; 2] {
        [
            KeyEvent {
                code: key::ENTER,
                value: 1,
                at,
            },
            KeyEvent {
                code: key::ENTER,
                value: 0,
                at,
            },
        ]
    }

    #[test]
    fn shifted_text_and_enter() {
        let t = Instant::now();
        let text = "https://Example.invalid/q?A=1&b=\"x y\"~{}|<>";
        let mut events = typing(text, t);
        events.extend(enter(t + Duration::from_millis(500)));
        let mut d = KeyDecoder::new(256, Duration::from_secs(10), true);
        assert_eq!(
            run(&mut d, &events),
            vec![Assembled::Scan(text.as_bytes().to_vec())]
        );
    }

    #[test]
    fn idle_gap_ends_a_scan_without_enter() {
        let t = Instant::now();
        let mut d = KeyDecoder::new(256, GAP, true);
        assert!(run(&mut d, &typing("ABC123", t)).is_empty());
        // Last key press: three shifted letters (4 events each), then "1", "2" and the "3" press.
        let last = t + Duration::from_millis(34);
        assert_eq!(d.poll_idle(last + Duration::from_millis(79)), None);
        assert_eq!(
            d.poll_idle(last + GAP),
            Some(Assembled::Scan(b"ABC123".to_vec()))
        );
        // The next key after a gap starts a new scan, and a gap inside the events splits them.
        let mut events = typing("one", t + Duration::from_secs(1));
        events.extend(typing("two", t + Duration::from_secs(2)));
        events.extend(enter(t + Duration::from_millis(2010)));
        assert_eq!(
            run(&mut d, &events),
            vec![
                Assembled::Scan(b"one".to_vec()),
                Assembled::Scan(b"two".to_vec())
            ]
        );
    }

    #[test]
    fn caps_lock_keypad_and_ignored_keys() {
        let t = Instant::now();
        let ms = |n| t + Duration::from_millis(n);
        let press = |code, at| {
            [
                KeyEvent { code, value: 1, at },
                KeyEvent { code, value: 0, at },
            ]
        };
        let mut events = Vec::new();
        events.extend(press(key::CAPS_LOCK, ms(1)));
        events.extend(press(30, ms(2))); // a → A
        events.extend([KeyEvent {
            code: key::RIGHT_SHIFT,
            value: 1,
            at: ms(3),
        }]);
        events.extend(press(30, ms(4))); // shift + caps → a
        events.extend([KeyEvent {
            code: key::RIGHT_SHIFT,
            value: 0,
            at: ms(5),
        }]);
        events.extend(press(key::CAPS_LOCK, ms(6)));
        events.extend(press(79, ms(7))); // keypad 1
        events.extend(press(59, ms(8))); // F1: ignored
        events.extend([KeyEvent {
            code: 30,
            value: 2,
            at: ms(9),
        }]); // autorepeat: ignored
        events.extend(press(key::KP_ENTER, ms(10)));
        let mut d = KeyDecoder::new(64, GAP, true);
        assert_eq!(run(&mut d, &events), vec![Assembled::Scan(b"Aa1".to_vec())]);
        assert_eq!(d.ignored_keys(), 1);
    }

    #[test]
    fn too_long_and_enter_disabled() {
        let t = Instant::now();
        let mut d = KeyDecoder::new(4, GAP, true);
        let mut events = typing("12345", t);
        events.extend(enter(t + Duration::from_millis(30)));
        events.extend(typing("ok", t + Duration::from_millis(40)));
        events.extend(enter(t + Duration::from_millis(60)));
        assert_eq!(
            run(&mut d, &events),
            vec![Assembled::TooLong, Assembled::Scan(b"ok".to_vec())]
        );

        // With Enter not a terminator, only the gap ends a scan.
        let mut d = KeyDecoder::new(64, GAP, false);
        let mut events = typing("ab", t);
        events.extend(enter(t + Duration::from_millis(20)));
        assert!(run(&mut d, &events).is_empty());
        assert_eq!(
            d.poll_idle(t + Duration::from_secs(1)),
            Some(Assembled::Scan(b"ab".to_vec()))
        );
    }

    #[test]
    fn empty_enter_yields_nothing() {
        let t = Instant::now();
        let mut d = KeyDecoder::new(64, GAP, true);
        assert!(run(&mut d, &enter(t)).is_empty());
        assert_eq!(d.idle_deadline(), None);
    }

    #[test]
    fn opening_a_missing_device_is_a_clear_error() {
        let err = EvdevScanner::open("/dev/input/nonexistent", true, 64, GAP, true)
            .err()
            .expect("fails");
        assert!(
            err.to_string()
                .starts_with("无法打开扫码器 / cannot open the scanner"),
            "{err}"
        );
    }
}
