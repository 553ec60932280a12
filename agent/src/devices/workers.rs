//! The device service's workers: ID card reader, QR scanner, document camera and kiosk
//! camera stills, and kiosk-screen prompts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use protocol::Pii;
use protocol::device::{
    CommandBody, CompletionBody, CompletionCode, DeviceErrorCode, DeviceKind, DeviceStatus, Empty,
    EventBody, ImageResult, ImageSize, PromptResult, StatusReport,
};
use tokio::sync::mpsc;

use super::idcard::{IdCardError, IdCardReader, ReadOptions, ReadProgress};
use super::scanner::{Scan, ScannerError, ScannerTask};
use super::service::{Failure, Job, Outcome, Worker};
use super::still::{CaptureError, StillCamera, StillRequest};
use super::upload::{UploadItem, UploadKind};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn joined() -> Failure {
    Failure::new(
        CompletionCode::InternalError,
        None,
        "终端内部错误",
        "the device thread failed",
    )
}

fn common(body: &CommandBody) -> bool {
    matches!(body, CommandBody::Status(_) | CommandBody::Reset(_))
}

fn report(device: DeviceStatus, model: Option<String>) -> StatusReport {
    StatusReport {
        device,
        model,
        serial_number: None,
        resolutions: Vec::new(),
    }
}

// --- ID card reader ------------------------------------------------------------------------

pub struct IdCardWorker {
    reader: Arc<Mutex<Box<dyn IdCardReader>>>,
}

impl IdCardWorker {
    pub fn new(reader: Box<dyn IdCardReader>) -> Self {
        IdCardWorker {
            reader: Arc::new(Mutex::new(reader)),
        }
    }

    /// The reader the worker serves commands with, for the technician's self-test (which
    /// takes it only when no command holds it).
    pub fn reader(&self) -> Arc<Mutex<Box<dyn IdCardReader>>> {
        self.reader.clone()
    }
}

fn card_failure(e: &IdCardError) -> Failure {
    Failure {
        code: e.completion_code(),
        error: e.error_code(),
        zh: e.zh().to_owned(),
        en: e.en().to_owned(),
    }
}

#[async_trait]
impl Worker for IdCardWorker {
    fn kind(&self) -> DeviceKind {
        DeviceKind::IdCardReader
    }

    fn accepts(&self, body: &CommandBody) -> bool {
        common(body) || matches!(body, CommandBody::IdCardRead(_))
    }

    async fn status(&self) -> Result<StatusReport, Failure> {
        let reader = self.reader.clone();
        let info = tokio::task::spawn_blocking(move || lock(&reader).self_test())
            .await
            .map_err(|_| joined())?;
        Ok(match info {
            Ok(info) => StatusReport {
                serial_number: Some(info.sam_id),
                ..report(DeviceStatus::Online, Some("sam-serial".into()))
            },
            Err(e) => report(
                match e {
                    IdCardError::Open { .. } => DeviceStatus::NoDevice,
                    _ => DeviceStatus::HardwareError,
                },
                Some("sam-serial".into()),
            ),
        })
    }

    async fn run(&self, job: &Job) -> Outcome {
        match &job.command.body {
            CommandBody::Reset(_) => {
                let reader = self.reader.clone();
                tokio::task::spawn_blocking(move || lock(&reader).reset())
                    .await
                    .map_err(|_| joined())?
                    .map_err(|e| card_failure(&e))?;
                Ok(CompletionBody::Reset(Some(Empty {})))
            }
            CommandBody::IdCardRead(params) => {
                let screen = job.screen.clone();
                screen.set_activity(DeviceKind::IdCardReader, "请将身份证放在阅读区");
                let (flag, watcher) = job.stop_flag();
                let options = ReadOptions {
                    wait: job.remaining(),
                    with_fingerprint_check: params.with_fingerprint_check,
                    cancel: Some(flag),
                };
                let reader = self.reader.clone();
                let (sink, request_id) = (job.sink.clone(), job.command.request_id);
                let progress_screen = screen.clone();
                let result = tokio::task::spawn_blocking(move || {
                    let mut progress = |p: ReadProgress| {
                        let text = match p {
                            ReadProgress::WaitingForCard => "请将身份证放在阅读区",
                            ReadProgress::RemoveCard => "请先取走上一张证件",
                            ReadProgress::CardDetected => "正在读取身份证…",
                        };
                        progress_screen.set_activity(DeviceKind::IdCardReader, text);
                        sink.send(protocol::device::FromDevice::Event(
                            protocol::device::DeviceEvent {
                                request_id,
                                device: DeviceKind::IdCardReader,
                                body: p.event(),
                            },
                        ));
                    };
                    lock(&reader).read_card(&options, &mut progress)
                })
                .await;
                watcher.abort();
                screen.clear_activity(DeviceKind::IdCardReader);
                let read = match result.map_err(|_| joined())? {
                    Ok(read) => read,
                    Err(IdCardError::Canceled) => return Err(job.stop_reason()),
                    Err(e) => return Err(card_failure(&e)),
                };
                // The photo travels over HTTPS; the card text in the completion.
                let photo = UploadItem {
                    kind: UploadKind::IdPhoto,
                    mime: "application/octet-stream",
                    bytes: Pii::new(read.photo_wlt.expose().clone()),
                    size: None,
                };
                let photo_upload_id = match job.uploader.upload(photo).await {
                    Ok(receipt) => Some(receipt.upload_id),
                    Err(e) => {
                        tracing::warn!(error = %e, "ID card photo upload failed; completing without it");
                        None
                    }
                };
                Ok(CompletionBody::IdCardRead(Some(
                    read.to_result(photo_upload_id),
                )))
            }
            _ => Err(unsupported()),
        }
    }
}

fn unsupported() -> Failure {
    Failure::new(
        CompletionCode::UnsupportedCommand,
        None,
        "该设备不支持此操作",
        "the device does not support this command",
    )
}

// --- QR / barcode scanner --------------------------------------------------------------------

/// Makes the simulated scanner "scan" when a read starts (the demo's resident).
pub trait ScanTrigger: Send + Sync {
    fn scan(&self);
}

/// The simulated serial scanner on its pty, scanning fixture codes in turn.
pub struct SimulatedScans {
    pub scanner: Mutex<super::scanner::serial::SimulatedSerialScanner>,
    pub codes: Vec<Vec<u8>>,
    next: AtomicUsize,
}

impl SimulatedScans {
    pub fn new(scanner: super::scanner::serial::SimulatedSerialScanner) -> Self {
        SimulatedScans {
            scanner: Mutex::new(scanner),
            codes: vec![
                b"https://example.invalid/ssm?demo=1".to_vec(),
                "电子证照演示码 DEMO-0002".as_bytes().to_vec(),
            ],
            next: AtomicUsize::new(0),
        }
    }
}

impl ScanTrigger for SimulatedScans {
    fn scan(&self) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.codes.len().max(1);
        if let Some(code) = self.codes.get(i)
            && lock(&self.scanner).send(code).is_err()
        {
            tracing::warn!("simulated scanner: pty write failed");
        }
    }
}

/// What a technician's test scan found.
#[derive(Debug)]
pub enum TestScan {
    Scanned(Scan),
    /// Nothing was scanned in time.
    NoScan,
    Failed(ScannerError),
    /// The scanner's reading thread has ended (unplugged or failed).
    Gone,
    /// A clerk's read holds the scanner.
    Busy,
}

pub struct ScannerWorker {
    scans: tokio::sync::Mutex<mpsc::Receiver<Result<Scan, ScannerError>>>,
    task: ScannerTask,
    trigger: Option<Box<dyn ScanTrigger>>,
}

impl ScannerWorker {
    pub fn new(
        task: ScannerTask,
        scans: mpsc::Receiver<Result<Scan, ScannerError>>,
        trigger: Option<Box<dyn ScanTrigger>>,
    ) -> Self {
        ScannerWorker {
            scans: tokio::sync::Mutex::new(scans),
            task,
            trigger,
        }
    }

    /// Whether the scanner's reading thread is alive (the port opened and has not failed).
    pub fn is_running(&self) -> bool {
        self.task.is_running()
    }

    /// The technician's test scan: the next scan within `wait`. Scans from before are
    /// discarded; a clerk's read in progress makes it [`TestScan::Busy`].
    pub async fn test_scan(&self, wait: std::time::Duration) -> TestScan {
        let Ok(mut scans) = self.scans.try_lock() else {
            return TestScan::Busy;
        };
        while scans.try_recv().is_ok() {}
        if let Some(t) = &self.trigger {
            t.scan();
        }
        match tokio::time::timeout(wait, scans.recv()).await {
            Err(_) => TestScan::NoScan,
            Ok(None) => TestScan::Gone,
            Ok(Some(Ok(scan))) => TestScan::Scanned(scan),
            Ok(Some(Err(e))) => TestScan::Failed(e),
        }
    }

    /// 预约签到: the next scan of a resident's booking QR within `wait`, while the screen
    /// says "请将预约二维码对准扫码口". Scans from before are discarded; the simulated scanner
    /// is not triggered (its fixture codes are no bookings); a clerk's read makes it
    /// [`TestScan::Busy`].
    pub async fn resident_scan(
        &self,
        screen: &super::activity::KioskScreen,
        wait: std::time::Duration,
    ) -> TestScan {
        let Ok(mut scans) = self.scans.try_lock() else {
            return TestScan::Busy;
        };
        while scans.try_recv().is_ok() {}
        screen.set_activity(DeviceKind::QrScanner, "请将预约二维码对准扫码口");
        let item = tokio::time::timeout(wait, scans.recv()).await;
        screen.clear_activity(DeviceKind::QrScanner);
        match item {
            Err(_) => TestScan::NoScan,
            Ok(None) => TestScan::Gone,
            Ok(Some(Ok(scan))) => TestScan::Scanned(scan),
            Ok(Some(Err(e))) => TestScan::Failed(e),
        }
    }
}

#[async_trait]
impl Worker for ScannerWorker {
    fn kind(&self) -> DeviceKind {
        DeviceKind::QrScanner
    }

    fn accepts(&self, body: &CommandBody) -> bool {
        common(body) || matches!(body, CommandBody::ScannerRead(_))
    }

    async fn status(&self) -> Result<StatusReport, Failure> {
        let status = if self.task.is_running() {
            DeviceStatus::Online
        } else {
            DeviceStatus::NoDevice
        };
        Ok(report(status, None))
    }

    async fn run(&self, job: &Job) -> Outcome {
        match &job.command.body {
            CommandBody::Reset(_) => Ok(CompletionBody::Reset(Some(Empty {}))),
            CommandBody::ScannerRead(_) => {
                let mut scans = self.scans.lock().await;
                // Scans from before the command are not answers to it.
                while scans.try_recv().is_ok() {}
                job.screen
                    .set_activity(DeviceKind::QrScanner, "请将二维码对准扫码口");
                if let Some(t) = &self.trigger {
                    t.scan();
                }
                let item = tokio::select! {
                    item = scans.recv() => item,
                    () = job.cancel.cancelled() => {
                        job.screen.clear_activity(DeviceKind::QrScanner);
                        return Err(Failure::canceled());
                    }
                    () = tokio::time::sleep_until(job.deadline) => {
                        job.screen.clear_activity(DeviceKind::QrScanner);
                        return Err(Failure::timeout());
                    }
                };
                job.screen.clear_activity(DeviceKind::QrScanner);
                match item {
                    Some(Ok(scan)) => Ok(CompletionBody::ScannerRead(Some(scan.to_result()))),
                    Some(Err(ScannerError::TooLong { .. })) => Err(Failure::new(
                        CompletionCode::CommandErrorCode,
                        Some(DeviceErrorCode::ScanTooLong),
                        "扫码内容过长",
                        "the scan was longer than the limit",
                    )),
                    Some(Err(e)) => Err(Failure::new(
                        CompletionCode::HardwareError,
                        Some(DeviceErrorCode::LinkError),
                        "扫码器读写失败",
                        &e.to_string(),
                    )),
                    None => Err(Failure::new(
                        CompletionCode::DeviceNotReady,
                        Some(DeviceErrorCode::NoDevice),
                        "扫码器已断开",
                        "the scanner is gone",
                    )),
                }
            }
            _ => Err(unsupported()),
        }
    }
}

// --- cameras -----------------------------------------------------------------------------------

/// Document camera (`DocumentCamera.Capture`) or kiosk camera (`Camera.Snapshot`) stills.
pub struct StillWorker {
    kind: DeviceKind,
    camera: Arc<dyn StillCamera>,
}

impl StillWorker {
    pub fn new(kind: DeviceKind, camera: Arc<dyn StillCamera>) -> Self {
        StillWorker { kind, camera }
    }
}

#[async_trait]
impl Worker for StillWorker {
    fn kind(&self) -> DeviceKind {
        self.kind
    }

    fn accepts(&self, body: &CommandBody) -> bool {
        common(body)
            || match self.kind {
                DeviceKind::DocumentCamera => matches!(body, CommandBody::DocumentCameraCapture(_)),
                DeviceKind::Camera => matches!(body, CommandBody::CameraSnapshot(_)),
                _ => false,
            }
    }

    async fn status(&self) -> Result<StatusReport, Failure> {
        Ok(StatusReport {
            resolutions: self.camera.resolutions(),
            ..report(DeviceStatus::Online, Some(self.camera.model()))
        })
    }

    async fn run(&self, job: &Job) -> Outcome {
        let (colour, wanted, upload_kind, prompt) = match &job.command.body {
            CommandBody::Reset(_) => return Ok(CompletionBody::Reset(Some(Empty {}))),
            CommandBody::DocumentCameraCapture(p) => (
                p.colour,
                p.resolution,
                UploadKind::Document,
                "请将材料放在高拍仪下",
            ),
            CommandBody::CameraSnapshot(_) => (
                protocol::device::ColourMode::Colour,
                None,
                UploadKind::Snapshot,
                "请正对摄像头，正在拍照",
            ),
            _ => return Err(unsupported()),
        };
        let sizes = self.camera.resolutions();
        let size = match wanted {
            Some(s) if sizes.contains(&s) => s,
            Some(s) => {
                return Err(Failure::new(
                    CompletionCode::InvalidData,
                    None,
                    "不支持该分辨率",
                    &format!("unsupported resolution {}x{}", s.width, s.height),
                ));
            }
            None => sizes.first().copied().unwrap_or(ImageSize {
                width: 1280,
                height: 720,
            }),
        };
        job.screen.set_activity(self.kind, prompt);
        if upload_kind == UploadKind::Document {
            job.event(EventBody::DocumentCameraPlaceDocument(Empty {}));
        }
        let (flag, watcher) = job.stop_flag();
        let camera = self.camera.clone();
        let request = StillRequest { colour, size };
        let captured = tokio::task::spawn_blocking(move || camera.capture(&request, &flag)).await;
        watcher.abort();
        let still = match captured.map_err(|_| joined()) {
            Ok(Ok(still)) => still,
            Ok(Err(CaptureError::Canceled | CaptureError::Timeout)) => {
                job.screen.clear_activity(self.kind);
                return Err(job.stop_reason());
            }
            Ok(Err(e)) => {
                job.screen.clear_activity(self.kind);
                return Err(Failure::new(
                    CompletionCode::HardwareError,
                    Some(DeviceErrorCode::CaptureFailed),
                    "拍照失败",
                    &e.to_string(),
                ));
            }
            Err(f) => {
                job.screen.clear_activity(self.kind);
                return Err(f);
            }
        };
        job.event(EventBody::Captured(still.size));
        job.screen.set_activity(self.kind, "拍照完成，正在上传…");
        let bytes = still.jpeg.len() as u64;
        let item = UploadItem {
            kind: upload_kind,
            mime: "image/jpeg",
            bytes: Pii::new(still.jpeg),
            size: Some(still.size),
        };
        let uploaded = tokio::select! {
            r = job.uploader.upload(item) => Some(r),
            () = job.cancel.cancelled() => None,
            () = tokio::time::sleep_until(job.deadline) => None,
        };
        job.screen.clear_activity(self.kind);
        match uploaded {
            None => Err(job.stop_reason()),
            Some(Ok(receipt)) => {
                let result = ImageResult {
                    upload_id: receipt.upload_id,
                    bytes,
                    width: still.size.width,
                    height: still.size.height,
                    sha256: receipt.sha256,
                    mime: "image/jpeg".into(),
                };
                Ok(match upload_kind {
                    UploadKind::Document => CompletionBody::DocumentCameraCapture(Some(result)),
                    _ => CompletionBody::CameraSnapshot(Some(result)),
                })
            }
            Some(Err(e)) => Err(Failure::new(
                CompletionCode::CommandErrorCode,
                Some(DeviceErrorCode::UploadFailed),
                "图片上传失败，请重试",
                &e.to_string(),
            )),
        }
    }
}

// --- kiosk screen prompts ------------------------------------------------------------------------

/// The longest prompt text the screen takes.
pub const MAX_PROMPT_CHARS: usize = 500;

pub struct ScreenWorker;

#[async_trait]
impl Worker for ScreenWorker {
    fn kind(&self) -> DeviceKind {
        DeviceKind::Screen
    }

    fn accepts(&self, body: &CommandBody) -> bool {
        common(body) || matches!(body, CommandBody::ScreenPrompt(_))
    }

    async fn status(&self) -> Result<StatusReport, Failure> {
        Ok(report(DeviceStatus::Online, None))
    }

    async fn run(&self, job: &Job) -> Outcome {
        let params = match &job.command.body {
            CommandBody::Reset(_) => return Ok(CompletionBody::Reset(Some(Empty {}))),
            CommandBody::ScreenPrompt(p) => p,
            _ => return Err(unsupported()),
        };
        let text = params.text.trim();
        if text.is_empty() || text.chars().count() > MAX_PROMPT_CHARS {
            return Err(Failure::new(
                CompletionCode::InvalidData,
                None,
                "提示内容为空或过长（上限 500 字）",
                "the prompt text is empty or longer than 500 characters",
            ));
        }
        let (id, answer) = job.screen.show_prompt(params.kind, text);
        job.event(EventBody::PromptShown(Empty {}));
        let outcome = tokio::select! {
            a = answer => match a {
                Ok(answer) => Ok(CompletionBody::ScreenPrompt(Some(PromptResult { answer }))),
                Err(_) => Err(Failure::canceled()),
            },
            () = job.cancel.cancelled() => Err(Failure::canceled()),
            () = tokio::time::sleep_until(job.deadline) => Err(Failure::new(
                CompletionCode::Timeout,
                None,
                "办事人未在时限内回答",
                "the resident did not answer in time",
            )),
        };
        job.screen.clear_prompt(id);
        outcome
    }
}
