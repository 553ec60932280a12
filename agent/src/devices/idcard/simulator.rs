//! A simulated SAM reader that answers the real serial protocol on a pseudo-terminal, so the
//! driver under test is the code that runs on a kiosk.
//!
//! [`SimulatedSam`] is the device as a sans-IO state machine (command body in, reply bytes and
//! a delay out); [`SamSimulator`] runs it on a thread behind the master side of a pty pair and
//! exposes the slave's path (e.g. `/dev/pts/7`) for the driver to open like any tty.
//!
//! The card model: a card is placed after `polls_before_card` failed presence checks; after a
//! successful read it is lifted and the next fixture card is placed `swap_time` later (a person
//! swapping cards takes about a second, whether or not anyone polls meanwhile). Every reply
//! takes its wire time at the scenario's baud rate (10 bits a byte: the 1295-byte card reply
//! ≈0.11 s at 115200 baud), as on a real serial line; a pty itself has no baud rate. Faults
//! are chosen per [`Scenario`]; see [`Fault`]. The simulator holds no personal data beyond the
//! made-up fixture cards.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use protocol::device::IdCard;
use serialport::{SerialPort, TTYPort};

use super::frame::{self, FrameDecoder, Reply};
use super::status::Sw3;
use super::{SamCommand, fixtures, text};

/// Selectable faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Fault {
    /// Every other reply (the 1st, 3rd, …) has a wrong checksum.
    BadChecksum,
    /// Garbage bytes (including partial preambles) before every reply.
    LineNoise,
    /// Every reply is delayed by the scenario's `slow_reply_delay`.
    SlowReplies,
    /// The SAM failed its self-test: every command is answered with SW3 0x60.
    SamSelfTestFailure,
    /// No card is ever placed.
    NoCard,
    /// Reading the card fails with SW3 0x41.
    ReadFailure,
    /// After a read the card stays on the reader (presence checks keep succeeding).
    CardNotRemoved,
}

/// What the simulated reader does.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Cards presented in turn (cycling). Empty = no card, like [`Fault::NoCard`].
    pub cards: Vec<IdCard>,
    pub faults: Vec<Fault>,
    pub slow_reply_delay: Duration,
    /// Failed presence checks before the first card is placed.
    pub polls_before_card: u32,
    /// Time between lifting a read card and placing the next.
    pub swap_time: Duration,
    /// Failed presence checks, at least, between lifting a read card and placing the next
    /// (for drivers polling in virtual time, where `swap_time` would never pass).
    pub swap_polls: u32,
    /// The serial line's speed, for the replies' wire time.
    pub baud: u32,
    /// Seed of the line-noise generator (deterministic runs).
    pub noise_seed: u64,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            cards: fixtures::cards(),
            faults: Vec::new(),
            slow_reply_delay: Duration::from_millis(200),
            polls_before_card: 0,
            swap_time: SWAP_TIME,
            swap_polls: 0,
            baud: 115_200,
            noise_seed: 0x5EED,
        }
    }
}

impl Scenario {
    pub fn with_fault(fault: Fault) -> Self {
        Scenario {
            faults: vec![fault],
            ..Scenario::default()
        }
    }

    fn has(&self, fault: Fault) -> bool {
        self.faults.contains(&fault)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CardState {
    Absent {
        polls_left: u32,
    },
    /// Lifted after a read; the next card is on the reader from `placed_at` (simulator time)
    /// and after `polls_left` more failed presence checks.
    Swapping {
        placed_at: Duration,
        polls_left: u32,
    },
    Present,
    Selected,
    /// Read (successfully or not) at `at`; lifted right after, unless the scenario keeps it.
    Read {
        at: Duration,
    },
}

/// One reply of the simulated device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// How long the device takes before sending.
    pub delay: Duration,
    pub bytes: Vec<u8>,
}

/// Counters of what the simulated device received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    pub commands: u64,
    pub find_commands: u64,
    pub read_commands: u64,
    pub bad_frames: u64,
    pub cards_read: u64,
}

/// The simulated reader, sans-IO.
#[derive(Debug)]
pub struct SimulatedSam {
    scenario: Scenario,
    state: CardState,
    card_index: usize,
    replies: u64,
    rng: u64,
    stats: SimStats,
}

/// Time between lifting a read card and placing the next, by default.
pub const SWAP_TIME: Duration = Duration::from_secs(1);

const SAM_ID_DATA: [u8; 16] = [
    5, 0, 1, 0, 0x0F, 0xB6, 0x32, 0x01, 0x39, 0x30, 0, 0, 0x15, 0xCD, 0x5B, 0x07,
];

impl SimulatedSam {
    pub fn new(scenario: Scenario) -> Self {
        let polls_left = scenario.polls_before_card;
        let rng = scenario.noise_seed | 1;
        SimulatedSam {
            scenario,
            state: CardState::Absent { polls_left },
            card_index: 0,
            replies: 0,
            rng,
            stats: SimStats::default(),
        }
    }

    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Answers one well-formed command frame body (`CMD PARA DATA`) arriving at `now`
    /// (simulator time, e.g. since it started).
    pub fn handle(&mut self, now: Duration, body: &[u8]) -> Output {
        self.stats.commands += 1;
        let (sw3, data) = self.respond(now, body);
        self.emit(Reply {
            sw1: 0,
            sw2: 0,
            sw3: sw3.byte(),
            data,
        })
    }

    /// Answers a frame that failed its checksum, as a SAM does (SW3 0x10).
    pub fn handle_bad_frame(&mut self) -> Output {
        self.stats.bad_frames += 1;
        self.emit(Reply {
            sw1: 0,
            sw2: 0,
            sw3: Sw3::ChecksumError.byte(),
            data: Vec::new(),
        })
    }

    fn respond(&mut self, now: Duration, body: &[u8]) -> (Sw3, Vec<u8>) {
        let command = match body {
            [cmd, para, ..] => SamCommand::from_code(*cmd, *para),
            _ => None,
        };
        let Some(command) = command else {
            return (Sw3::CommandError, Vec::new());
        };
        if self.scenario.has(Fault::SamSelfTestFailure) {
            return (Sw3::SamSelfTestFailed, Vec::new());
        }
        match command {
            SamCommand::Reset | SamCommand::Status => (Sw3::Success, Vec::new()),
            SamCommand::ReadSamId => (Sw3::Success, SAM_ID_DATA.to_vec()),
            SamCommand::FindCard => {
                self.stats.find_commands += 1;
                self.find(now)
            }
            SamCommand::SelectCard => match self.state {
                CardState::Present | CardState::Selected => {
                    self.state = CardState::Selected;
                    (Sw3::Success, self.card_serial().to_vec())
                }
                // A card left on a reader that lets it be found again.
                CardState::Read { .. } if self.scenario.has(Fault::CardNotRemoved) => {
                    self.state = CardState::Selected;
                    (Sw3::Success, self.card_serial().to_vec())
                }
                _ => (Sw3::SelectFailed, Vec::new()),
            },
            SamCommand::ReadCard | SamCommand::ReadCardWithFingerprint => {
                self.stats.read_commands += 1;
                self.read(now, command == SamCommand::ReadCardWithFingerprint)
            }
        }
    }

    fn find(&mut self, now: Duration) -> (Sw3, Vec<u8>) {
        if self.scenario.has(Fault::NoCard) || self.scenario.cards.is_empty() {
            return (Sw3::FindFailed, Vec::new());
        }
        let found = (Sw3::FindSuccess, vec![0; 4]);
        match self.state {
            CardState::Absent { polls_left: 0 } => {
                self.state = CardState::Present;
                found
            }
            CardState::Absent { polls_left } => {
                self.state = CardState::Absent {
                    polls_left: polls_left - 1,
                };
                (Sw3::FindFailed, Vec::new())
            }
            CardState::Swapping {
                placed_at,
                polls_left: 0,
            } if now >= placed_at => {
                self.state = CardState::Present;
                found
            }
            CardState::Swapping {
                placed_at,
                polls_left,
            } => {
                self.state = CardState::Swapping {
                    placed_at,
                    polls_left: polls_left.saturating_sub(1),
                };
                (Sw3::FindFailed, Vec::new())
            }
            CardState::Present | CardState::Selected => found,
            CardState::Read { .. } if self.scenario.has(Fault::CardNotRemoved) => found,
            CardState::Read { at } => {
                // The resident lifted the card after the read and places the next one a
                // little later: it may be there already.
                self.card_index = (self.card_index + 1) % self.scenario.cards.len();
                let placed_at = at + self.scenario.swap_time;
                if self.scenario.swap_polls == 0 && now >= placed_at {
                    self.state = CardState::Present;
                    return found;
                }
                self.state = CardState::Swapping {
                    placed_at,
                    polls_left: self.scenario.swap_polls.saturating_sub(1),
                };
                (Sw3::FindFailed, Vec::new())
            }
        }
    }

    /// The card's serial number (the select reply): one per card of the scenario.
    fn card_serial(&self) -> [u8; 8] {
        let mut serial = [0xC5, 0x1D, 0, 0, 0, 0, 0, 0];
        serial[4..].copy_from_slice(&(self.card_index as u32 + 1).to_be_bytes());
        serial
    }

    fn read(&mut self, now: Duration, with_fingerprint: bool) -> (Sw3, Vec<u8>) {
        // A selected card may be read again before it is lifted (the driver repeats a read
        // whose reply was corrupted); without a select first, reading fails.
        if !matches!(self.state, CardState::Selected | CardState::Read { .. }) {
            return (Sw3::ReadFailed, Vec::new());
        }
        self.state = CardState::Read { at: now };
        if self.scenario.has(Fault::ReadFailure) {
            return (Sw3::ReadFailed, Vec::new());
        }
        let card = &self.scenario.cards[self.card_index];
        let Ok(text_block) = text::encode(card) else {
            return (Sw3::ReadFailed, Vec::new());
        };
        let photo = fixtures::photo();
        let mut data = Vec::with_capacity(6 + 256 + 1024 * 2);
        data.extend((text_block.len() as u16).to_be_bytes());
        data.extend((photo.len() as u16).to_be_bytes());
        if with_fingerprint {
            data.extend(1024u16.to_be_bytes());
        }
        data.extend(text_block);
        data.extend(photo);
        if with_fingerprint {
            // A made-up stand-in for the fingerprint file; the driver must discard it.
            data.extend(std::iter::repeat_n(0xF1, 1024));
        }
        self.stats.cards_read += 1;
        (Sw3::Success, data)
    }

    fn emit(&mut self, reply: Reply) -> Output {
        self.replies += 1;
        let mut frame = reply.encode();
        if self.scenario.has(Fault::BadChecksum)
            && self.replies % 2 == 1
            && let Some(last) = frame.last_mut()
        {
            *last ^= 0x5A;
        }
        let mut bytes = Vec::new();
        if self.scenario.has(Fault::LineNoise) {
            bytes.extend(self.noise());
        }
        bytes.extend(frame);
        let processing = if self.scenario.has(Fault::SlowReplies) {
            self.scenario.slow_reply_delay
        } else {
            Duration::ZERO
        };
        let delay = processing + wire_time(bytes.len(), self.scenario.baud);
        Output { delay, bytes }
    }

    /// 1–24 noise bytes ending, every other time, in a partial preamble. Never a full preamble.
    fn noise(&mut self) -> Vec<u8> {
        let mut next = || {
            // xorshift64: deterministic, good enough for noise.
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            self.rng
        };
        let len = 1 + (next() % 24) as usize;
        let mut noise: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if next() % 2 == 0 {
            noise.extend_from_slice(&frame::PREAMBLE[..3 + (next() % 2) as usize]);
            noise.push(0x00);
        }
        // Break any accidental preamble.
        while let Some(i) = noise
            .windows(frame::PREAMBLE.len())
            .position(|w| w == frame::PREAMBLE)
        {
            noise[i + 4] = 0x00;
        }
        noise
    }
}

/// How long `bytes` take on a serial line at `baud` (8N1: 10 bits a byte).
pub fn wire_time(bytes: usize, baud: u32) -> Duration {
    Duration::from_secs_f64(bytes as f64 * 10.0 / f64::from(baud.max(1)))
}

/// Errors starting the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    #[error("无法创建伪终端 / cannot create a pseudo-terminal: {0}")]
    Pty(#[source] serialport::Error),
    #[error("伪终端没有路径 / the pseudo-terminal has no path")]
    NoPath,
    #[error("无法启动模拟线程 / cannot start the simulator thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// A running simulated reader. Dropping it stops the thread and closes the pty.
pub struct SamSimulator {
    path: String,
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<SimStats>>,
    thread: Option<JoinHandle<()>>,
    // Kept open so the pty stays usable while no driver has it open.
    _slave: TTYPort,
}

impl SamSimulator {
    pub fn start(scenario: Scenario) -> Result<SamSimulator, SimulatorError> {
        let (mut master, slave) = TTYPort::pair().map_err(SimulatorError::Pty)?;
        let path = slave.name().ok_or(SimulatorError::NoPath)?;
        master
            .set_timeout(Duration::from_millis(50))
            .map_err(SimulatorError::Pty)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(SimStats::default()));
        let thread = std::thread::Builder::new()
            .name("sam-simulator".into())
            .spawn({
                let (stop, stats) = (stop.clone(), stats.clone());
                move || serve(master, SimulatedSam::new(scenario), &stop, &stats)
            })
            .map_err(SimulatorError::Thread)?;
        Ok(SamSimulator {
            path,
            stop,
            stats,
            thread: Some(thread),
            _slave: slave,
        })
    }

    /// The tty path to open, e.g. `/dev/pts/7`.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn stats(&self) -> SimStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// Whether the serving thread is still running.
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for SamSimulator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // The thread checks `stop` at least every 50 ms (its read timeout).
            let _ = thread.join();
        }
    }
}

fn serve(mut master: TTYPort, mut sam: SimulatedSam, stop: &AtomicBool, stats: &Mutex<SimStats>) {
    let mut decoder = FrameDecoder::new();
    let mut buf = [0u8; 256];
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match master.read(&mut buf) {
            Ok(n) => decoder.push(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "SAM simulator: pty read failed; stopping");
                return;
            }
        }
        while let Some(frame) = decoder.next_frame() {
            let output = match frame {
                Ok(body) => sam.handle(started.elapsed(), &body),
                Err(_) => sam.handle_bad_frame(),
            };
            if let Ok(mut s) = stats.lock() {
                *s = sam.stats();
            }
            if !sleep_unless_stopped(output.delay, stop) {
                return;
            }
            if master
                .write_all(&output.bytes)
                .and_then(|()| master.flush())
                .is_err()
            {
                tracing::warn!("SAM simulator: pty write failed; stopping");
                return;
            }
        }
    }
}

/// Sleeps in short steps; false if asked to stop meanwhile.
fn sleep_unless_stopped(duration: Duration, stop: &AtomicBool) -> bool {
    let end = Instant::now() + duration;
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(sam: &mut SimulatedSam, command: SamCommand) -> Reply {
        send_at(sam, Duration::ZERO, command)
    }

    fn send_at(sam: &mut SimulatedSam, now: Duration, command: SamCommand) -> Reply {
        let (cmd, para) = command.code();
        let out = sam.handle(now, &[cmd, para]);
        let mut d = FrameDecoder::new();
        d.push(&out.bytes);
        let body = d.next_frame().expect("a frame").expect("valid frame");
        Reply::from_body(body).expect("reply")
    }

    #[test]
    fn a_card_is_read_lifted_and_the_next_placed() {
        let mut sam = SimulatedSam::new(Scenario {
            polls_before_card: 2,
            ..Scenario::default()
        });
        assert_eq!(send(&mut sam, SamCommand::Status).sw3, 0x90);
        assert_eq!(send(&mut sam, SamCommand::FindCard).sw3, 0x80);
        assert_eq!(send(&mut sam, SamCommand::FindCard).sw3, 0x80);
        assert_eq!(send(&mut sam, SamCommand::FindCard).sw3, 0x9F);
        assert_eq!(send(&mut sam, SamCommand::SelectCard).data.len(), 8);
        let lifted = Duration::from_secs(10);
        let read = send_at(&mut sam, lifted, SamCommand::ReadCard);
        assert_eq!((read.sw3, read.data.len()), (0x90, 4 + 256 + 1024));
        for ms in [0, 500, 999] {
            let now = lifted + Duration::from_millis(ms);
            assert_eq!(
                send_at(&mut sam, now, SamCommand::FindCard).sw3,
                0x80,
                "card lifted at {ms} ms"
            );
        }
        assert_eq!(
            send_at(&mut sam, lifted + SWAP_TIME, SamCommand::FindCard).sw3,
            0x9F,
            "next card placed"
        );
        let placed = lifted + SWAP_TIME;
        assert_eq!(send_at(&mut sam, placed, SamCommand::SelectCard).sw3, 0x90);
        let read = send_at(&mut sam, placed, SamCommand::ReadCardWithFingerprint);
        assert_eq!(read.data.len(), 6 + 256 + 1024 + 1024);
        assert_eq!(sam.stats().cards_read, 2);
        // A check made once the resident had time to swap finds the next card at once.
        let later = placed + SWAP_TIME + Duration::from_millis(1);
        assert_eq!(send_at(&mut sam, later, SamCommand::FindCard).sw3, 0x9F);
    }

    #[test]
    fn full_read_reply_matches_the_reference_length() {
        let mut sam = SimulatedSam::new(Scenario::default());
        send(&mut sam, SamCommand::FindCard);
        send(&mut sam, SamCommand::SelectCard);
        let out = sam.handle(Duration::ZERO, &[0x30, 0x01]);
        assert_eq!(out.bytes.len(), 1295);
        // Its wire time at 115200 baud.
        assert_eq!(out.delay.as_micros(), 112_413);
        assert_eq!(&out.bytes[5..10], &[0x05, 0x08, 0x00, 0x00, 0x90]);
    }

    #[test]
    fn faults() {
        let mut sam = SimulatedSam::new(Scenario::with_fault(Fault::SamSelfTestFailure));
        assert_eq!(send(&mut sam, SamCommand::Status).sw3, 0x60);
        assert_eq!(send(&mut sam, SamCommand::FindCard).sw3, 0x60);

        let mut sam = SimulatedSam::new(Scenario::with_fault(Fault::NoCard));
        assert_eq!(send(&mut sam, SamCommand::FindCard).sw3, 0x80);

        let mut sam = SimulatedSam::new(Scenario::with_fault(Fault::ReadFailure));
        send(&mut sam, SamCommand::FindCard);
        send(&mut sam, SamCommand::SelectCard);
        assert_eq!(send(&mut sam, SamCommand::ReadCard).sw3, 0x41);

        let mut sam = SimulatedSam::new(Scenario::with_fault(Fault::CardNotRemoved));
        send(&mut sam, SamCommand::FindCard);
        send(&mut sam, SamCommand::SelectCard);
        send(&mut sam, SamCommand::ReadCard);
        assert_eq!(send(&mut sam, SamCommand::FindCard).sw3, 0x9F);

        let mut sam = SimulatedSam::new(Scenario::with_fault(Fault::BadChecksum));
        let mut d = FrameDecoder::new();
        d.push(&sam.handle(Duration::ZERO, &[0x11, 0xFF]).bytes);
        assert!(matches!(
            d.next_frame(),
            Some(Err(frame::FrameError::Checksum { .. }))
        ));
        assert_eq!(
            send(&mut sam, SamCommand::Status).sw3,
            0x90,
            "second reply is intact"
        );

        let mut sam = SimulatedSam::new(Scenario::with_fault(Fault::SlowReplies));
        let slow = sam.handle(Duration::ZERO, &[0x11, 0xFF]);
        assert_eq!(
            slow.delay,
            Duration::from_millis(200) + wire_time(slow.bytes.len(), 115_200)
        );

        assert_eq!(
            SimulatedSam::new(Scenario::default())
                .handle(Duration::ZERO, &[0x99, 0x00])
                .bytes[9],
            0x21
        );
    }

    #[test]
    fn line_noise_never_contains_a_preamble_and_the_frame_still_decodes() {
        let mut sam = SimulatedSam::new(Scenario::with_fault(Fault::LineNoise));
        for _ in 0..500 {
            let out = sam.handle(Duration::ZERO, &[0x11, 0xFF]);
            let frames = out
                .bytes
                .windows(5)
                .filter(|w| *w == frame::PREAMBLE)
                .count();
            assert_eq!(frames, 1);
            let mut d = FrameDecoder::new();
            d.push(&out.bytes);
            let mut got = None;
            while let Some(f) = d.next_frame() {
                if let Ok(body) = f {
                    got = Some(body);
                }
            }
            assert_eq!(got, Some(vec![0, 0, 0x90]));
        }
    }
}
