//! The device service: carries out the clerk's device commands on this kiosk's devices.
//!
//! Commands arrive from the control link ([`crate::link::control::DeviceBridge`]); answers go
//! back through a [`DeviceSink`] (the link). XFS4IoT semantics (`reference/peripherals.md` §2):
//! every command is acknowledged at once, may produce events, and ends with exactly one
//! completion. Each device kind has one worker that serves **one command at a time**: a second
//! command for a busy device completes with `device_busy`. `Cancel` ends the named commands
//! (or all) with `canceled`. A command's timeout is capped by the configuration (0 = the cap,
//! still cancellable). Health is tracked per device and changes are pushed as unsolicited
//! `Common.StatusChangedEvent`s.
//!
//! Nothing here blocks the link: answers are queued with `try_send` on the link's bounded
//! channel (a full channel drops and counts), blocking hardware calls run on
//! `spawn_blocking`, and the dispatcher only starts and cancels jobs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use protocol::device::{
    AckStatus, Acknowledge, Cancel, Completion, CompletionBody, CompletionCode, DeviceCommand,
    DeviceErrorCode, DeviceEvent, DeviceKind, DeviceStatus, ErrorDescription, EventBody,
    FromDevice, RequestId, StatusChanged, StatusReport, ToDevice, Unsolicited,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::activity::KioskScreen;
use super::upload::Uploader;

/// Where device answers go (the control link in the agent, a channel in tests).
pub trait DeviceSink: Send + Sync + 'static {
    /// Queues a message; false when it had to be dropped.
    fn send(&self, message: FromDevice) -> bool;
}

impl DeviceSink for mpsc::Sender<FromDevice> {
    fn send(&self, message: FromDevice) -> bool {
        self.try_send(message).is_ok()
    }
}

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The longest any command may run, whatever its timeout says.
    pub max_command: Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            max_command: Duration::from_secs(120),
        }
    }
}

/// Why a command failed, for its completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: CompletionCode,
    pub error: Option<DeviceErrorCode>,
    pub zh: String,
    pub en: String,
}

impl Failure {
    pub fn new(code: CompletionCode, error: Option<DeviceErrorCode>, zh: &str, en: &str) -> Self {
        Failure {
            code,
            error,
            zh: zh.to_owned(),
            en: en.to_owned(),
        }
    }

    pub fn canceled() -> Self {
        Self::new(CompletionCode::Canceled, None, "操作已取消", "canceled")
    }

    pub fn timeout() -> Self {
        Self::new(
            CompletionCode::Timeout,
            None,
            "操作超时",
            "the command timed out",
        )
    }
}

pub type Outcome = Result<CompletionBody, Failure>;

/// What a worker gets for one command.
pub struct Job {
    pub command: DeviceCommand,
    pub cancel: CancellationToken,
    pub deadline: Instant,
    pub sink: Arc<dyn DeviceSink>,
    pub screen: Arc<KioskScreen>,
    pub uploader: Arc<dyn Uploader>,
}

impl Job {
    pub fn event(&self, body: EventBody) {
        let sent = self.sink.send(FromDevice::Event(DeviceEvent {
            request_id: self.command.request_id,
            device: self.command.device,
            body,
        }));
        if !sent {
            debug!("device event dropped: the link is full");
        }
    }

    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// A flag that turns true when the job is cancelled or its deadline passes, for blocking
    /// calls that poll a flag. Dropping the guard stops the watcher.
    pub fn stop_flag(&self) -> (Arc<AtomicBool>, tokio::task::JoinHandle<()>) {
        let flag = Arc::new(AtomicBool::new(false));
        let (f, cancel, deadline) = (flag.clone(), self.cancel.clone(), self.deadline);
        let watcher = tokio::spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
            f.store(true, Ordering::Relaxed);
        });
        (flag, watcher)
    }

    /// Whether the job ended by cancel (true) or by its deadline (false); for mapping a
    /// "stopped" result of a blocking call.
    pub fn stop_reason(&self) -> Failure {
        if self.cancel.is_cancelled() {
            Failure::canceled()
        } else {
            Failure::timeout()
        }
    }
}

/// One device kind's driver, serving one command at a time.
#[async_trait]
pub trait Worker: Send + Sync + 'static {
    fn kind(&self) -> DeviceKind;
    /// Whether this device understands the command (`Common.*` and its own interface).
    fn accepts(&self, body: &protocol::device::CommandBody) -> bool;
    /// Carries out the command; must return by the job's deadline or soon after a cancel.
    async fn run(&self, job: &Job) -> Outcome;
    /// Current status for `Common.Status`.
    async fn status(&self) -> Result<StatusReport, Failure>;
}

/// Counters for the self-test page and metrics.
#[derive(Debug, Default)]
pub struct ServiceCounters {
    pub commands: AtomicU64,
    pub busy: AtomicU64,
    pub canceled: AtomicU64,
    pub dropped_answers: AtomicU64,
    pub invalid: AtomicU64,
}

struct Slot {
    worker: Arc<dyn Worker>,
    current: Arc<Mutex<Option<(RequestId, CancellationToken)>>>,
    status: Arc<Mutex<DeviceStatus>>,
}

struct Shared {
    sink: Arc<dyn DeviceSink>,
    screen: Arc<KioskScreen>,
    uploader: Arc<dyn Uploader>,
    config: ServiceConfig,
    counters: Arc<ServiceCounters>,
}

impl Shared {
    fn send(&self, message: FromDevice) {
        if !self.sink.send(message) {
            self.counters
                .dropped_answers
                .fetch_add(1, Ordering::Relaxed);
            warn!("device answer dropped: the link is full");
        }
    }
}

/// The running service.
pub struct DeviceService {
    slots: HashMap<DeviceKind, Slot>,
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Poisoning means a panic elsewhere (a bug); the value is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl DeviceService {
    pub fn new(
        workers: Vec<Arc<dyn Worker>>,
        sink: Arc<dyn DeviceSink>,
        screen: Arc<KioskScreen>,
        uploader: Arc<dyn Uploader>,
        config: ServiceConfig,
    ) -> Self {
        let slots = workers
            .into_iter()
            .map(|worker| {
                (
                    worker.kind(),
                    Slot {
                        worker,
                        current: Arc::new(Mutex::new(None)),
                        status: Arc::new(Mutex::new(DeviceStatus::Online)),
                    },
                )
            })
            .collect();
        DeviceService {
            slots,
            shared: Arc::new(Shared {
                sink,
                screen,
                uploader,
                config,
                counters: Arc::new(ServiceCounters::default()),
            }),
        }
    }

    pub fn counters(&self) -> Arc<ServiceCounters> {
        self.shared.counters.clone()
    }

    /// Serves commands until the channel closes or `shutdown` is cancelled; pending commands
    /// are then cancelled.
    pub async fn run(self, mut commands: mpsc::Receiver<ToDevice>, shutdown: CancellationToken) {
        info!(devices = ?self.slots.keys().collect::<Vec<_>>(), "device service running");
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => break,
                m = commands.recv() => match m {
                    Some(m) => m,
                    None => break,
                },
            };
            match message {
                ToDevice::Command(command) => self.start(command),
                ToDevice::Cancel(cancel) => self.cancel(&cancel),
            }
        }
        self.cancel(&Cancel {
            request_ids: Vec::new(),
        });
    }

    fn pending(&self, id: RequestId) -> bool {
        self.slots
            .values()
            .any(|s| lock(&s.current).as_ref().is_some_and(|(r, _)| *r == id))
    }

    fn complete_now(&self, command: &DeviceCommand, failure: Failure) {
        let mut c = Completion::failed(command, failure.code, &failure.zh, &failure.en);
        c.error_code = failure.error;
        self.shared.send(FromDevice::Completion(c));
    }

    fn start(&self, command: DeviceCommand) {
        let counters = &self.shared.counters;
        counters.commands.fetch_add(1, Ordering::Relaxed);
        if command.request_id.0 == 0 || self.pending(command.request_id) {
            counters.invalid.fetch_add(1, Ordering::Relaxed);
            self.shared.send(FromDevice::Acknowledge(Acknowledge {
                request_id: command.request_id,
                status: AckStatus::InvalidRequestId,
            }));
            return;
        }
        self.shared.send(FromDevice::Acknowledge(Acknowledge {
            request_id: command.request_id,
            status: AckStatus::Accepted,
        }));
        let Some(slot) = self.slots.get(&command.device) else {
            return self.complete_now(
                &command,
                Failure::new(
                    CompletionCode::DeviceNotReady,
                    Some(DeviceErrorCode::NoDevice),
                    "此终端未配置该设备",
                    "this kiosk has no such device",
                ),
            );
        };
        if !slot.worker.accepts(&command.body) {
            return self.complete_now(
                &command,
                Failure::new(
                    CompletionCode::UnsupportedCommand,
                    None,
                    "该设备不支持此操作",
                    "the device does not support this command",
                ),
            );
        }
        let cancel = CancellationToken::new();
        {
            let mut current = lock(&slot.current);
            if current.is_some() {
                drop(current);
                counters.busy.fetch_add(1, Ordering::Relaxed);
                return self.complete_now(
                    &command,
                    Failure::new(
                        CompletionCode::DeviceBusy,
                        None,
                        "设备正忙，请稍后再试",
                        "the device is serving another command",
                    ),
                );
            }
            *current = Some((command.request_id, cancel.clone()));
        }
        let cap = self.shared.config.max_command;
        let timeout = match command.timeout_ms {
            0 => cap,
            ms => Duration::from_millis(u64::from(ms)).min(cap),
        };
        let shared = self.shared.clone();
        let job = Job {
            command,
            cancel,
            deadline: Instant::now() + timeout,
            sink: shared.sink.clone(),
            screen: shared.screen.clone(),
            uploader: shared.uploader.clone(),
        };
        let (worker, current, status) = (
            slot.worker.clone(),
            slot.current.clone(),
            slot.status.clone(),
        );
        tokio::spawn(async move {
            // Workers observe the deadline themselves; this bound only catches one that
            // does not (a driver stuck past its own limits).
            let limit = job.deadline + Duration::from_secs(5);
            let outcome = tokio::select! {
                o = run_job(&*worker, &job) => o,
                () = tokio::time::sleep_until(limit) => Err(Failure::timeout()),
            };
            {
                let mut c = lock(&current);
                if c.as_ref()
                    .is_some_and(|(r, _)| *r == job.command.request_id)
                {
                    *c = None;
                }
            }
            if matches!(&outcome, Err(f) if f.code == CompletionCode::Canceled) {
                shared.counters.canceled.fetch_add(1, Ordering::Relaxed);
            }
            let health = new_status(&outcome);
            let completion = match outcome {
                Ok(body) => Completion {
                    request_id: job.command.request_id,
                    device: job.command.device,
                    completion_code: CompletionCode::Success,
                    error_code: None,
                    error_description: None,
                    body,
                },
                Err(f) => Completion {
                    request_id: job.command.request_id,
                    device: job.command.device,
                    completion_code: f.code,
                    error_code: f.error,
                    error_description: Some(ErrorDescription { zh: f.zh, en: f.en }),
                    body: CompletionBody::empty_for(&job.command.body),
                },
            };
            debug!(
                device = %completion.device,
                name = job.command.body.name(),
                code = ?completion.completion_code,
                "device command completed"
            );
            shared.send(FromDevice::Completion(completion));
            if let Some(health) = health {
                track_status(&shared, worker.kind(), &status, health);
            }
        });
    }

    fn cancel(&self, cancel: &Cancel) {
        for slot in self.slots.values() {
            if let Some((id, token)) = lock(&slot.current).as_ref()
                && (cancel.request_ids.is_empty() || cancel.request_ids.contains(id))
            {
                token.cancel();
            }
        }
    }
}

async fn run_job(worker: &dyn Worker, job: &Job) -> Outcome {
    if let protocol::device::CommandBody::Status(_) = job.command.body {
        return worker
            .status()
            .await
            .map(|s| CompletionBody::Status(Some(s)));
    }
    worker.run(job).await
}

/// Health from outcomes: hardware failures mark the device faulty, a success marks it online;
/// other failures (timeouts, user errors) say nothing about health.
fn new_status(outcome: &Outcome) -> Option<DeviceStatus> {
    match outcome {
        Ok(CompletionBody::Status(Some(report))) => Some(report.device),
        Ok(_) => Some(DeviceStatus::Online),
        Err(f) => match f.code {
            CompletionCode::HardwareError => Some(DeviceStatus::HardwareError),
            CompletionCode::DeviceNotReady => Some(DeviceStatus::NoDevice),
            _ => None,
        },
    }
}

/// Records the device's status and announces a change (after the completion that caused it).
fn track_status(
    shared: &Shared,
    kind: DeviceKind,
    status: &Mutex<DeviceStatus>,
    new: DeviceStatus,
) {
    let changed = {
        let mut s = lock(status);
        let changed = *s != new;
        *s = new;
        changed
    };
    if changed {
        info!(device = %kind, status = ?new, "device status changed");
        shared.send(FromDevice::Unsolicited(Unsolicited::StatusChanged(
            StatusChanged {
                device: kind,
                status: new,
            },
        )));
    }
}
