//! The SAM serial driver against the protocol-level simulator on a pseudo-terminal: the same
//! serial code that runs on a kiosk, every fault scenario. Card polling runs in virtual time.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent::clock::Clock;
use agent::devices::idcard::simulator::{Fault, SamSimulator, Scenario};
use agent::devices::idcard::status::Sw3;
use agent::devices::idcard::{
    IdCardError, IdCardReader, ReadOptions, ReadProgress, SamConfig, SamSerialReader, fixtures,
};
use protocol::device::{CompletionCode, DeviceErrorCode, IdCard};

/// Virtual time: `sleep` advances it instantly.
#[derive(Default)]
struct VirtualClock {
    base: Option<Instant>,
    elapsed: Mutex<Duration>,
}

impl VirtualClock {
    fn new() -> Arc<Self> {
        Arc::new(VirtualClock {
            base: Some(Instant::now()),
            elapsed: Mutex::new(Duration::ZERO),
        })
    }
    fn elapsed(&self) -> Duration {
        *self.elapsed.lock().expect("clock lock")
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Instant {
        self.base.unwrap_or_else(Instant::now) + self.elapsed()
    }
    fn sleep(&self, duration: Duration) {
        *self.elapsed.lock().expect("clock lock") += duration;
    }
}

/// The simulator with the resident's card swap counted in presence checks (three), not in
/// wall time, since the driver here polls in virtual time.
fn start(scenario: Scenario) -> SamSimulator {
    let scenario = Scenario {
        swap_time: Duration::ZERO,
        swap_polls: 3,
        ..scenario
    };
    SamSimulator::start(scenario).expect("simulator starts on a pty")
}

fn open(sim: &SamSimulator, clock: Arc<VirtualClock>) -> SamSerialReader {
    open_with(sim, clock, SamConfig::default())
}

fn open_with(sim: &SamSimulator, clock: Arc<VirtualClock>, config: SamConfig) -> SamSerialReader {
    SamSerialReader::open(sim.path(), config, clock).expect("pty opens")
}

fn read(
    reader: &mut SamSerialReader,
    wait_secs: u64,
) -> (
    Result<agent::devices::idcard::CardRead, IdCardError>,
    Vec<ReadProgress>,
) {
    let mut progress = Vec::new();
    let result = reader.read_card(
        &ReadOptions::wait(Duration::from_secs(wait_secs)),
        &mut |p| progress.push(p),
    );
    (result, progress)
}

#[test]
fn reads_cards_in_turn_and_requires_removal_between_reads() {
    let sim = start(Scenario::default());
    let clock = VirtualClock::new();
    let mut reader = open(&sim, clock.clone());
    let info = reader.self_test().expect("SAM is fine");
    assert_eq!(info.sam_id, "05.01-20100623-000012345-123456789");

    let (first, progress) = read(&mut reader, 10);
    let first = first.expect("first card reads");
    assert_eq!(first.card, fixtures::resident());
    assert_eq!(first.photo_wlt.expose(), &fixtures::photo());
    assert_eq!(first.has_fingerprint, None);
    assert_eq!(progress, vec![ReadProgress::CardDetected]);

    // The card is lifted (one failed check), then the next card is placed.
    let (second, progress) = read(&mut reader, 10);
    assert_eq!(
        second.expect("second card reads").card,
        fixtures::resident_long_term()
    );
    assert_eq!(
        progress,
        vec![ReadProgress::WaitingForCard, ReadProgress::CardDetected]
    );
    assert!(
        clock.elapsed() >= Duration::from_millis(1200),
        "polls are paced by the clock"
    );

    // Debug output of a read shows no personal value.
    let shown = format!("{first:?}");
    assert!(
        !shown.contains("310101199003071230") && !shown.contains("王小明"),
        "{shown}"
    );
    let stats = reader.link_stats();
    assert_eq!(
        (stats.corrupt_replies, stats.timeouts, stats.retries),
        (0, 0, 0)
    );
}

#[test]
fn every_card_type_parses() {
    for card in fixtures::cards() {
        let sim = start(Scenario {
            cards: vec![card.clone()],
            ..Scenario::default()
        });
        let mut reader = open(&sim, VirtualClock::new());
        let (read, _) = read(&mut reader, 5);
        assert_eq!(read.expect("reads").card, card);
    }
}

#[test]
fn fingerprint_read_reports_presence_and_drops_the_bytes() {
    let sim = start(Scenario::default());
    let mut reader = open(&sim, VirtualClock::new());
    let options = ReadOptions {
        with_fingerprint_check: true,
        ..ReadOptions::wait(Duration::from_secs(5))
    };
    let read = reader.read_card(&options, &mut |_| {}).expect("reads");
    assert_eq!(read.has_fingerprint, Some(true));
    assert!(matches!(read.card, IdCard::Resident(_)));
    assert_eq!(read.photo_wlt.expose().len(), 1024);
    assert!(
        !read
            .photo_wlt
            .expose()
            .windows(16)
            .any(|w| w.iter().all(|&b| b == 0xF1))
    );
}

#[test]
fn corrupt_checksums_are_retried() {
    let sim = start(Scenario::with_fault(Fault::BadChecksum));
    let mut reader = open(&sim, VirtualClock::new());
    reader.self_test().expect("retries past corrupt replies");
    let (read, _) = read(&mut reader, 5);
    assert_eq!(read.expect("reads").card, fixtures::resident());
    let stats = reader.link_stats();
    assert!(
        stats.corrupt_replies >= 3 && stats.retries == stats.corrupt_replies,
        "{stats:?}"
    );
}

#[test]
fn corrupt_checksums_without_retries_are_a_typed_error() {
    let sim = start(Scenario::with_fault(Fault::BadChecksum));
    let mut reader = open_with(
        &sim,
        VirtualClock::new(),
        SamConfig {
            retries: 0,
            ..SamConfig::default()
        },
    );
    let err = reader.sam_status().expect_err("first reply is corrupt");
    assert!(matches!(err, IdCardError::CorruptReply { .. }), "{err}");
    assert_eq!(err.completion_code(), CompletionCode::HardwareError);
    assert_eq!(err.error_code(), Some(DeviceErrorCode::LinkError));
    assert!(
        err.to_string()
            .contains("阅读器应答数据损坏 / corrupt reply"),
        "{err}"
    );
}

#[test]
fn line_noise_between_frames_is_skipped() {
    let sim = start(Scenario::with_fault(Fault::LineNoise));
    let mut reader = open(&sim, VirtualClock::new());
    reader.self_test().expect("SAM is fine");
    for expected in [
        fixtures::resident(),
        fixtures::resident_long_term(),
        fixtures::permit(),
    ] {
        let (read, _) = read(&mut reader, 5);
        assert_eq!(read.expect("reads through noise").card, expected);
    }
    let stats = reader.link_stats();
    assert!(stats.skipped_bytes > 0, "{stats:?}");
    assert_eq!(stats.corrupt_replies, 0, "{stats:?}");
}

#[test]
fn slow_replies_within_the_timeout_are_fine() {
    let sim = start(Scenario {
        slow_reply_delay: Duration::from_millis(50),
        ..Scenario::with_fault(Fault::SlowReplies)
    });
    let mut reader = open(&sim, VirtualClock::new());
    reader.self_test().expect("slow but in time");
    let (read, _) = read(&mut reader, 5);
    assert_eq!(read.expect("reads").card, fixtures::resident());
    assert_eq!(reader.link_stats().timeouts, 0);
}

#[test]
fn replies_slower_than_the_timeout_are_a_typed_error() {
    let sim = start(Scenario {
        slow_reply_delay: Duration::from_millis(1500),
        ..Scenario::with_fault(Fault::SlowReplies)
    });
    let config = SamConfig {
        reply_timeout: Duration::from_millis(100),
        retries: 1,
        ..SamConfig::default()
    };
    let mut reader = open_with(&sim, VirtualClock::new(), config);
    let err = reader.self_test().expect_err("too slow");
    assert!(
        matches!(
            err,
            IdCardError::Timeout {
                timeout_ms: 100,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("阅读器无应答 / no reply from the reader"),
        "{err}"
    );
    assert_eq!(reader.link_stats().timeouts, 2, "one attempt and one retry");
}

#[test]
fn sam_self_test_failure() {
    let sim = start(Scenario::with_fault(Fault::SamSelfTestFailure));
    let mut reader = open(&sim, VirtualClock::new());
    let err = reader.self_test().expect_err("SAM is broken");
    assert!(
        matches!(
            err,
            IdCardError::Sam {
                status: Sw3::SamSelfTestFailed,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.completion_code(), CompletionCode::HardwareError);
    assert_eq!(err.error_code(), Some(DeviceErrorCode::SamFault));
    let text = err.to_string();
    assert!(
        text.contains("SAM自检失败") && text.contains("SAM self-test failed"),
        "{text}"
    );
    let (read, _) = read(&mut reader, 2);
    assert!(matches!(
        read,
        Err(IdCardError::Sam {
            status: Sw3::SamSelfTestFailed,
            ..
        })
    ));
}

#[test]
fn no_card_times_out_and_polls_no_faster_than_300_ms() {
    let sim = start(Scenario::with_fault(Fault::NoCard));
    let clock = VirtualClock::new();
    let mut reader = open(&sim, clock.clone());
    let (read, progress) = read(&mut reader, 3);
    let err = read.expect_err("no card");
    assert!(matches!(err, IdCardError::NoCard), "{err}");
    assert_eq!(err.completion_code(), CompletionCode::Timeout);
    assert_eq!(progress, vec![ReadProgress::WaitingForCard]);
    let finds = sim.stats().find_commands;
    // 3 s of virtual time at one check per 300 ms: the first check at 0, then at most 10 more.
    assert!((2..=11).contains(&finds), "{finds} presence checks");
    assert!(clock.elapsed() >= Duration::from_millis(300) * (finds as u32 - 1));
    assert!(clock.elapsed() <= Duration::from_secs(3));
}

#[test]
fn a_card_placed_later_is_found_by_polling() {
    let sim = start(Scenario {
        polls_before_card: 4,
        ..Scenario::default()
    });
    let clock = VirtualClock::new();
    let mut reader = open(&sim, clock.clone());
    let (read, progress) = read(&mut reader, 10);
    assert_eq!(read.expect("reads").card, fixtures::resident());
    assert_eq!(
        progress,
        vec![ReadProgress::WaitingForCard, ReadProgress::CardDetected]
    );
    assert_eq!(sim.stats().find_commands, 5);
    assert_eq!(clock.elapsed(), Duration::from_millis(1200));
}

#[test]
fn read_failure_needs_the_card_replaced() {
    let sim = start(Scenario::with_fault(Fault::ReadFailure));
    let mut reader = open(&sim, VirtualClock::new());
    let (read, _) = read(&mut reader, 5);
    let err = read.expect_err("read fails");
    assert!(
        matches!(
            err,
            IdCardError::Sam {
                status: Sw3::ReadFailed,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.error_code(), Some(DeviceErrorCode::CardReadFailed));
    assert!(err.to_string().contains("读证/卡操作失败"), "{err}");
}

/// The resident swapped cards while nobody polled: the reader finds the new card at once, and
/// its serial number tells the driver it is not the card read before.
#[test]
fn a_card_swapped_between_reads_is_read_at_once() {
    let sim = SamSimulator::start(Scenario {
        swap_time: Duration::ZERO,
        swap_polls: 0,
        ..Scenario::default()
    })
    .expect("simulator starts on a pty");
    let mut reader = open(&sim, VirtualClock::new());
    let (first, _) = read(&mut reader, 5);
    assert_eq!(first.expect("first read").card, fixtures::resident());
    let (second, progress) = read(&mut reader, 5);
    assert_eq!(
        second.expect("second read").card,
        fixtures::resident_long_term()
    );
    assert_eq!(progress, vec![ReadProgress::CardDetected]);
    assert_eq!(sim.stats().find_commands, 2, "one presence check each");
}

#[test]
fn card_not_removed() {
    let sim = start(Scenario::with_fault(Fault::CardNotRemoved));
    let mut reader = open(&sim, VirtualClock::new());
    let (first, _) = read(&mut reader, 5);
    assert_eq!(first.expect("first read").card, fixtures::resident());
    let (second, progress) = read(&mut reader, 2);
    let err = second.expect_err("card still there");
    assert!(matches!(err, IdCardError::CardNotRemoved), "{err}");
    assert_eq!(err.error_code(), Some(DeviceErrorCode::CardNotRemoved));
    assert_eq!(progress, vec![ReadProgress::RemoveCard]);
    assert_eq!(sim.stats().read_commands, 1, "the card was not read twice");
}

#[test]
fn cancel_ends_the_wait() {
    let sim = start(Scenario::with_fault(Fault::NoCard));
    let mut reader = open(&sim, VirtualClock::new());
    let cancel = Arc::new(AtomicBool::new(true));
    let options = ReadOptions {
        cancel: Some(cancel),
        ..ReadOptions::wait(Duration::from_secs(60))
    };
    let err = reader
        .read_card(&options, &mut |_| {})
        .expect_err("canceled");
    assert!(matches!(err, IdCardError::Canceled));
    assert_eq!(err.completion_code(), CompletionCode::Canceled);
}

#[test]
fn a_missing_port_is_a_clear_error() {
    let err = SamSerialReader::open(
        "/dev/nonexistent-reader",
        SamConfig::default(),
        VirtualClock::new(),
    )
    .err()
    .expect("cannot open");
    assert!(
        err.to_string()
            .starts_with("无法打开阅读器串口 / cannot open the reader's serial port"),
        "{err}"
    );
    assert_eq!(err.completion_code(), CompletionCode::DeviceNotReady);
}

/// Collects formatted log lines.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn logs_and_errors_carry_no_personal_data() {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .finish();
    let mut shown = String::new();
    tracing::subscriber::with_default(subscriber, || {
        let scenario = Scenario {
            faults: vec![Fault::BadChecksum, Fault::LineNoise],
            ..Scenario::default()
        };
        let sim = start(scenario);
        let mut reader = open(&sim, VirtualClock::new());
        for _ in 0..4 {
            let (read, _) = read(&mut reader, 5);
            let read = read.expect("reads");
            tracing::info!(card = ?read.card, photo = ?read.photo_wlt, "card read");
            shown.push_str(&format!("{read:?}\n"));
        }
        let sim = start(Scenario::with_fault(Fault::CardNotRemoved));
        let mut reader = open(&sim, VirtualClock::new());
        let _ = read(&mut reader, 2);
        let (err, _) = read(&mut reader, 2);
        shown.push_str(&format!(
            "{:?} {}\n",
            err.as_ref().err(),
            err.as_ref()
                .err()
                .map(ToString::to_string)
                .unwrap_or_default()
        ));
    });
    let logs = String::from_utf8(logs.0.lock().expect("log lock").clone()).expect("utf-8 logs");
    assert!(
        logs.contains("retrying command"),
        "the faults were logged: {logs}"
    );
    let everything = format!("{logs}\n{shown}");
    // Any 18-character ID number, not just the fixtures'.
    let id_like = everything.as_bytes().windows(18).any(|w| {
        w[..17].iter().all(u8::is_ascii_digit) && (w[17].is_ascii_digit() || w[17] == b'X')
    });
    assert!(
        !id_like,
        "an ID number reached the logs or error text: {everything}"
    );
    for secret in [
        "王小明",
        "李秀英",
        "陈大文",
        "SAMPLE",
        "示例路",
        "H00000000",
        "XXX310000000001",
    ] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked: {everything}"
        );
    }
}

#[test]
fn a_late_reply_never_answers_the_next_command() {
    // Each reply comes 750 ms after its command; the driver waits 500 ms. The status reply
    // arrives while the next command is being prepared and must be discarded, not taken for
    // the find reply (which would read as SW3 0x90 to a find).
    let scenario = Scenario {
        slow_reply_delay: Duration::from_millis(750),
        ..Scenario::with_fault(Fault::SlowReplies)
    };
    let sim = start(scenario);
    let config = SamConfig {
        reply_timeout: Duration::from_millis(500),
        retries: 0,
        ..SamConfig::default()
    };
    let mut reader = open_with(&sim, VirtualClock::new(), config);
    let err = reader.sam_status().expect_err("too slow");
    assert!(matches!(err, IdCardError::Timeout { .. }), "{err}");
    let err = reader.find_card().expect_err("also too slow");
    assert!(matches!(err, IdCardError::Timeout { .. }), "{err}");
    assert_eq!(reader.link_stats().late_replies, 1);
}

#[test]
fn a_read_maps_onto_the_device_protocol() {
    use protocol::device::{
        Completion, CompletionBody, DeviceKind, EventBody, FromDevice, RequestId,
    };
    let sim = start(Scenario::default());
    let mut reader = open(&sim, VirtualClock::new());
    let mut events = Vec::new();
    let read = reader
        .read_card(&ReadOptions::wait(Duration::from_secs(5)), &mut |p| {
            events.push(p.event())
        })
        .expect("reads");
    assert_eq!(
        events,
        vec![EventBody::IdCardMediaDetected(protocol::device::Empty {})]
    );
    let completion = FromDevice::Completion(Completion {
        request_id: RequestId(7),
        device: DeviceKind::IdCardReader,
        completion_code: CompletionCode::Success,
        error_code: None,
        error_description: None,
        body: CompletionBody::IdCardRead(Some(read.to_result(Some("upload-1".into())))),
    });
    let json = serde_json::to_value(&completion).expect("serialises");
    assert_eq!(json["payload"]["card"]["id_number"], "310101199003071230");
    assert_eq!(json["payload"]["photo_upload_id"], "upload-1");

    let err = IdCardError::CardNotRemoved;
    let description = err.description();
    assert_eq!(description.zh, "请先取走上一张证件");
    assert!(description.en.contains("the previous card was not lifted"));
}
