//! The device service against the protocol-level simulators: the SAM reader and the serial
//! scanner on pseudo-terminals (opened by the real drivers), simulated still cameras, the
//! kiosk screen; uploads go to an in-memory uploader. Covers acknowledge → events →
//! completion, busy, cancel, timeout, status changes and each completion path.

use std::sync::Arc;
use std::time::Duration;

use agent::clock::SystemClock;
use agent::devices::activity::KioskScreen;
use agent::devices::idcard::simulator::{Fault, SamSimulator, Scenario};
use agent::devices::idcard::{SamConfig, SamSerialReader};
use agent::devices::scanner;
use agent::devices::scanner::serial::{SerialScanner, SimulatedSerialScanner};
use agent::devices::service::{DeviceService, ServiceConfig, Worker};
use agent::devices::still::{SimulatedStillCamera, Subject, jpeg_size};
use agent::devices::upload::{MemoryUploader, UploadKind};
use agent::devices::workers::{
    IdCardWorker, ScannerWorker, ScreenWorker, SimulatedScans, StillWorker,
};
use protocol::device::*;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);
const SMALL: ImageSize = ImageSize {
    width: 640,
    height: 480,
};

struct Kiosk {
    commands: mpsc::Sender<ToDevice>,
    answers: mpsc::Receiver<FromDevice>,
    screen: Arc<KioskScreen>,
    uploads: Arc<MemoryUploader>,
    _sam: SamSimulator,
    shutdown: CancellationToken,
}

impl Drop for Kiosk {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn kiosk(scenario: Scenario) -> Kiosk {
    let sam = SamSimulator::start(scenario).expect("SAM simulator");
    let reader = SamSerialReader::open(sam.path(), SamConfig::default(), Arc::new(SystemClock))
        .expect("reader opens the pty");
    let sim_scanner = SimulatedSerialScanner::start().expect("scanner simulator");
    let serial = SerialScanner::open(sim_scanner.path(), 9600, 256, None).expect("scanner");
    let (task, scans) = scanner::spawn(Box::new(serial), 8).expect("scanner thread");
    let workers: Vec<Arc<dyn Worker>> = vec![
        Arc::new(ScreenWorker),
        Arc::new(IdCardWorker::new(Box::new(reader))),
        Arc::new(ScannerWorker::new(
            task,
            scans,
            Some(Box::new(SimulatedScans::new(sim_scanner))),
        )),
        Arc::new(StillWorker::new(
            DeviceKind::DocumentCamera,
            Arc::new(SimulatedStillCamera::new(Subject::Page, vec![SMALL])),
        )),
    ];
    let (commands, command_rx) = mpsc::channel(16);
    let (answer_tx, answers) = mpsc::channel(64);
    let screen = Arc::new(KioskScreen::new());
    let uploads = Arc::new(MemoryUploader::default());
    let service = DeviceService::new(
        workers,
        Arc::new(answer_tx),
        screen.clone(),
        uploads.clone(),
        ServiceConfig {
            max_command: Duration::from_secs(30),
        },
    );
    let shutdown = CancellationToken::new();
    tokio::spawn(service.run(command_rx, shutdown.clone()));
    Kiosk {
        commands,
        answers,
        screen,
        uploads,
        _sam: sam,
        shutdown,
    }
}

impl Kiosk {
    async fn send(&self, id: u64, device: DeviceKind, timeout_ms: u32, body: CommandBody) {
        self.commands
            .send(ToDevice::Command(DeviceCommand {
                request_id: RequestId(id),
                device,
                timeout_ms,
                body,
            }))
            .await
            .expect("service running");
    }

    async fn next(&mut self) -> FromDevice {
        tokio::time::timeout(WAIT, self.answers.recv())
            .await
            .expect("an answer in time")
            .expect("service running")
    }

    /// Messages up to and including the completion of `id` (others' messages are kept out).
    async fn until_completion(&mut self, id: u64) -> (Vec<FromDevice>, Completion) {
        let mut seen = Vec::new();
        loop {
            match self.next().await {
                FromDevice::Completion(c) if c.request_id == RequestId(id) => return (seen, c),
                other => seen.push(other),
            }
        }
    }

    async fn wait_prompt(&self) -> u64 {
        let mut rx = self.screen.subscribe();
        let state = tokio::time::timeout(WAIT, rx.wait_for(|s| s.prompt.is_some()))
            .await
            .expect("prompt shown in time")
            .expect("screen alive");
        state.prompt.as_ref().map(|p| p.id).expect("prompt")
    }
}

fn accepted(messages: &[FromDevice], id: u64) -> bool {
    messages.iter().any(|m| {
        matches!(m, FromDevice::Acknowledge(a) if a.request_id == RequestId(id) && a.status == AckStatus::Accepted)
    })
}

fn prompt(kind: PromptKind) -> CommandBody {
    CommandBody::ScreenPrompt(PromptParams {
        kind,
        text: "请确认您的手机号码是否正确".into(),
    })
}

#[tokio::test]
async fn reading_an_id_card_acknowledges_reports_progress_and_completes_with_the_card() {
    let mut k = kiosk(Scenario::default());
    k.send(
        1,
        DeviceKind::IdCardReader,
        10_000,
        CommandBody::IdCardRead(IdCardReadParams::default()),
    )
    .await;
    let (seen, c) = k.until_completion(1).await;
    assert!(accepted(&seen, 1));
    assert!(seen.iter().any(
        |m| matches!(m, FromDevice::Event(e) if e.body == EventBody::IdCardMediaDetected(Empty {}))
    ));
    assert_eq!(c.completion_code, CompletionCode::Success);
    let CompletionBody::IdCardRead(Some(result)) = c.body else {
        panic!("no card")
    };
    assert!(matches!(result.card, Some(IdCard::Resident(_))));
    assert_eq!(result.photo_upload_id.as_deref(), Some("mem-1"));
    let stored = k.uploads.stored.lock().expect("uploads");
    assert_eq!(stored[0].0, UploadKind::IdPhoto);
    assert_eq!(stored[0].1.len(), 1024);
    assert!(k.screen.current().activities.is_empty(), "activity cleared");
}

#[tokio::test]
async fn a_sam_fault_is_a_hardware_error_and_changes_the_status() {
    let mut k = kiosk(Scenario::with_fault(Fault::SamSelfTestFailure));
    k.send(
        1,
        DeviceKind::IdCardReader,
        5_000,
        CommandBody::IdCardRead(IdCardReadParams::default()),
    )
    .await;
    let (_, c) = k.until_completion(1).await;
    assert_eq!(c.completion_code, CompletionCode::HardwareError);
    assert_eq!(c.error_code, Some(DeviceErrorCode::SamFault));
    assert!(c.error_description.is_some_and(|d| !d.zh.is_empty()));
    let status = k.next().await;
    assert_eq!(
        status,
        FromDevice::Unsolicited(Unsolicited::StatusChanged(StatusChanged {
            device: DeviceKind::IdCardReader,
            status: DeviceStatus::HardwareError,
        }))
    );
}

#[tokio::test]
async fn no_card_before_the_timeout_completes_with_timeout() {
    let mut k = kiosk(Scenario::with_fault(Fault::NoCard));
    k.send(
        1,
        DeviceKind::IdCardReader,
        1_000,
        CommandBody::IdCardRead(IdCardReadParams::default()),
    )
    .await;
    let (seen, c) = k.until_completion(1).await;
    assert!(seen.iter().any(
        |m| matches!(m, FromDevice::Event(e) if e.body == EventBody::IdCardInsertCard(Empty {}))
    ));
    assert_eq!(c.completion_code, CompletionCode::Timeout);
    assert_eq!(c.error_code, Some(DeviceErrorCode::NoCard));
}

#[tokio::test]
async fn a_second_command_for_a_busy_device_completes_with_device_busy() {
    let mut k = kiosk(Scenario::default());
    k.send(1, DeviceKind::Screen, 30_000, prompt(PromptKind::Confirm))
        .await;
    k.wait_prompt().await;
    k.send(2, DeviceKind::Screen, 30_000, prompt(PromptKind::Message))
        .await;
    let (_, c) = k.until_completion(2).await;
    assert_eq!(c.completion_code, CompletionCode::DeviceBusy);
    // Another device is not blocked by the busy screen.
    k.send(
        3,
        DeviceKind::QrScanner,
        10_000,
        CommandBody::ScannerRead(Empty {}),
    )
    .await;
    let (_, c) = k.until_completion(3).await;
    assert_eq!(c.completion_code, CompletionCode::Success);
    let CompletionBody::ScannerRead(Some(scan)) = c.body else {
        panic!("no scan")
    };
    assert_eq!(scan.text.expose(), "https://example.invalid/ssm?demo=1");
    // The resident answers the first prompt.
    k.screen
        .answer(None, PromptAnswer::Confirmed)
        .expect("a prompt waits");
    let (_, c) = k.until_completion(1).await;
    assert_eq!(c.completion_code, CompletionCode::Success);
    assert_eq!(
        c.body,
        CompletionBody::ScreenPrompt(Some(PromptResult {
            answer: PromptAnswer::Confirmed
        }))
    );
}

#[tokio::test]
async fn cancel_ends_the_command_and_clears_the_prompt() {
    let mut k = kiosk(Scenario::default());
    k.send(7, DeviceKind::Screen, 0, prompt(PromptKind::Confirm))
        .await;
    k.wait_prompt().await;
    k.commands
        .send(ToDevice::Cancel(Cancel {
            request_ids: vec![RequestId(7)],
        }))
        .await
        .expect("sent");
    let (_, c) = k.until_completion(7).await;
    assert_eq!(c.completion_code, CompletionCode::Canceled);
    assert_eq!(k.screen.current().prompt, None);
    // Cancelling a card read that waits for a card.
    let mut k = kiosk(Scenario::with_fault(Fault::NoCard));
    k.send(
        8,
        DeviceKind::IdCardReader,
        60_000,
        CommandBody::IdCardRead(IdCardReadParams::default()),
    )
    .await;
    loop {
        if let FromDevice::Event(_) = k.next().await {
            break;
        }
    }
    k.commands
        .send(ToDevice::Cancel(Cancel {
            request_ids: vec![],
        }))
        .await
        .expect("sent");
    let (_, c) = k.until_completion(8).await;
    assert_eq!(c.completion_code, CompletionCode::Canceled);
}

#[tokio::test]
async fn an_unanswered_prompt_times_out() {
    let mut k = kiosk(Scenario::default());
    k.send(1, DeviceKind::Screen, 200, prompt(PromptKind::Message))
        .await;
    let (seen, c) = k.until_completion(1).await;
    assert!(
        seen.iter().any(
            |m| matches!(m, FromDevice::Event(e) if e.body == EventBody::PromptShown(Empty {}))
        )
    );
    assert_eq!(c.completion_code, CompletionCode::Timeout);
    assert_eq!(k.screen.current().prompt, None);
}

#[tokio::test]
async fn document_capture_uploads_a_jpeg_of_the_asked_size() {
    let mut k = kiosk(Scenario::default());
    k.send(
        1,
        DeviceKind::DocumentCamera,
        20_000,
        CommandBody::DocumentCameraCapture(CaptureParams {
            colour: ColourMode::Grey,
            resolution: Some(SMALL),
        }),
    )
    .await;
    let (seen, c) = k.until_completion(1).await;
    assert!(seen.iter().any(|m| matches!(m, FromDevice::Event(e) if e.body == EventBody::DocumentCameraPlaceDocument(Empty {}))));
    assert!(
        seen.iter()
            .any(|m| matches!(m, FromDevice::Event(e) if e.body == EventBody::Captured(SMALL)))
    );
    assert_eq!(c.completion_code, CompletionCode::Success, "{c:?}");
    let CompletionBody::DocumentCameraCapture(Some(image)) = c.body else {
        panic!("no image")
    };
    assert_eq!((image.width, image.height), (640, 480));
    let stored = k.uploads.stored.lock().expect("uploads").clone();
    assert_eq!(stored[0].0, UploadKind::Document);
    assert_eq!(jpeg_size(&stored[0].1), Some(SMALL));
    assert_eq!(image.bytes, stored[0].1.len() as u64);

    // A resolution the camera does not offer, and a failing upload.
    k.send(
        2,
        DeviceKind::DocumentCamera,
        20_000,
        CommandBody::DocumentCameraCapture(CaptureParams {
            colour: ColourMode::Colour,
            resolution: Some(ImageSize {
                width: 1,
                height: 1,
            }),
        }),
    )
    .await;
    assert_eq!(
        k.until_completion(2).await.1.completion_code,
        CompletionCode::InvalidData
    );
    *k.uploads.fail.lock().expect("lock") = Some("relay down".into());
    k.send(
        3,
        DeviceKind::DocumentCamera,
        20_000,
        CommandBody::DocumentCameraCapture(CaptureParams::default()),
    )
    .await;
    let (_, c) = k.until_completion(3).await;
    assert_eq!(c.completion_code, CompletionCode::CommandErrorCode);
    assert_eq!(c.error_code, Some(DeviceErrorCode::UploadFailed));
}

#[tokio::test]
async fn status_missing_devices_unsupported_commands_and_bad_ids() {
    let mut k = kiosk(Scenario::default());
    k.send(
        1,
        DeviceKind::DocumentCamera,
        5_000,
        CommandBody::Status(Empty {}),
    )
    .await;
    let (_, c) = k.until_completion(1).await;
    let CompletionBody::Status(Some(report)) = c.body else {
        panic!("no status")
    };
    assert_eq!(report.resolutions, vec![SMALL]);
    k.send(
        2,
        DeviceKind::IdCardReader,
        5_000,
        CommandBody::Status(Empty {}),
    )
    .await;
    let (_, c) = k.until_completion(2).await;
    let CompletionBody::Status(Some(report)) = c.body else {
        panic!("no status")
    };
    assert_eq!(report.device, DeviceStatus::Online);
    assert!(report.serial_number.is_some(), "the SAM id");

    k.send(
        3,
        DeviceKind::Camera,
        5_000,
        CommandBody::CameraSnapshot(Empty {}),
    )
    .await;
    let (_, c) = k.until_completion(3).await;
    assert_eq!(c.completion_code, CompletionCode::DeviceNotReady);
    assert_eq!(c.error_code, Some(DeviceErrorCode::NoDevice));

    k.send(
        4,
        DeviceKind::QrScanner,
        5_000,
        CommandBody::IdCardRead(IdCardReadParams::default()),
    )
    .await;
    assert_eq!(
        k.until_completion(4).await.1.completion_code,
        CompletionCode::UnsupportedCommand
    );

    k.send(0, DeviceKind::Screen, 5_000, CommandBody::Status(Empty {}))
        .await;
    assert_eq!(
        k.next().await,
        FromDevice::Acknowledge(Acknowledge {
            request_id: RequestId(0),
            status: AckStatus::InvalidRequestId
        })
    );
}
