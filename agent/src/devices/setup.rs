//! Opening the kiosk's devices from the configuration (`[devices]`) and the device profiles.
//!
//! `simulated = true` starts the protocol-level simulators in-process — the SAM reader and the
//! serial QR scanner each on a pseudo-terminal, opened by the real drivers — and simulated
//! still cameras. Otherwise each device is opened at its configured path with the settings of
//! its profile in the kiosk profile; a device that cannot be opened is reported (without
//! personal data) and left out, and its commands complete with `device_not_ready`.

use std::sync::Arc;

use device_profiles::{Catalog, DeviceProfile, ScannerTransport};
use protocol::device::DeviceKind;
use tracing::{info, warn};

use super::config::DevicesConfig;
use super::faults::{ABSENT_PORT, IdCardFault, ScannerFault};
use super::idcard::simulator::{Fault, SamSimulator, Scenario};
use super::idcard::{SamConfig, SamSerialReader};
use super::scanner::serial::{SerialScanner, SimulatedSerialScanner};
use super::scanner::wedge::EvdevScanner;
use super::scanner::{self, Scanner};
use super::service::Worker;
use super::still::gst::V4l2StillCamera;
use super::still::{SimulatedStillCamera, StillCamera, Subject, profile_resolutions};
use super::workers::{IdCardWorker, ScannerWorker, ScreenWorker, SimulatedScans, StillWorker};
use crate::clock::SystemClock;

/// The opened devices: workers for the service, and the simulators they talk to (kept alive
/// as long as this value).
pub struct OpenedDevices {
    pub workers: Vec<Arc<dyn Worker>>,
    /// Devices the profile wants that could not be opened: (kind, reason).
    pub missing: Vec<(DeviceKind, String)>,
    /// The same devices by kind, for the self-test.
    pub handles: DeviceHandles,
    _sam: Option<SamSimulator>,
}

/// The opened devices by kind: the very objects the workers use, so the self-test checks the
/// devices the kiosk serves with (and waits its turn on them).
#[derive(Clone, Default)]
pub struct DeviceHandles {
    pub id_card: Option<Arc<IdCardWorker>>,
    pub scanner: Option<Arc<ScannerWorker>>,
    pub document_camera: Option<Arc<dyn StillCamera>>,
    pub camera_stills: Option<Arc<dyn StillCamera>>,
    /// Devices the profile wants that could not be opened: (kind, reason).
    pub missing: Vec<(DeviceKind, String)>,
}

/// Opens the devices `config` names. Never fails as a whole: what cannot be opened is listed
/// in `missing`.
pub fn open(config: &DevicesConfig) -> OpenedDevices {
    let mut opened = OpenedDevices {
        workers: vec![Arc::new(ScreenWorker)],
        missing: Vec::new(),
        handles: DeviceHandles::default(),
        _sam: None,
    };
    let catalog = match &config.profiles_dir {
        Some(dir) => Catalog::load_dir(dir),
        None => Catalog::embedded(),
    };
    let catalog = match catalog {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "device profiles did not load; no devices");
            return opened;
        }
    };
    let Some(kiosk) = catalog.kiosk(config.kiosk_profile()) else {
        warn!(
            profile = config.kiosk_profile(),
            "unknown kiosk profile; no devices"
        );
        return opened;
    };
    for slot in &kiosk.slots {
        let profile = catalog.device(&slot.profile);
        let simulated = config.simulated || profile.is_some_and(|p| p.simulated);
        let result: Result<Arc<dyn Worker>, String> = match slot.kind {
            DeviceKind::IdCardReader => {
                open_id_card(config, profile, simulated, &mut opened).map(|w| {
                    opened.handles.id_card = Some(w.clone());
                    w as Arc<dyn Worker>
                })
            }
            DeviceKind::QrScanner => open_scanner(config, profile, simulated).map(|w| {
                opened.handles.scanner = Some(w.clone());
                w as Arc<dyn Worker>
            }),
            DeviceKind::DocumentCamera => {
                let camera = still_camera(
                    slot.kind,
                    profile,
                    simulated,
                    config.document_camera.as_deref(),
                );
                opened.handles.document_camera = Some(camera.clone());
                Ok(Arc::new(StillWorker::new(slot.kind, camera)))
            }
            DeviceKind::Camera => {
                let camera = still_camera(slot.kind, profile, simulated, config.camera.as_deref());
                opened.handles.camera_stills = Some(camera.clone());
                Ok(Arc::new(StillWorker::new(slot.kind, camera)))
            }
            // Live audio belongs to the media pipelines.
            DeviceKind::Microphone | DeviceKind::Speaker | DeviceKind::Screen => continue,
        };
        match result {
            Ok(worker) => {
                info!(device = %slot.kind, profile = slot.profile, simulated, "device ready");
                opened.workers.push(worker);
            }
            Err(reason) => {
                warn!(device = %slot.kind, profile = slot.profile, %reason, "device not available");
                opened.missing.push((slot.kind, reason));
            }
        }
    }
    opened.handles.missing = opened.missing.clone();
    opened
}

fn open_id_card(
    config: &DevicesConfig,
    profile: Option<&DeviceProfile>,
    simulated: bool,
    opened: &mut OpenedDevices,
) -> Result<Arc<IdCardWorker>, String> {
    let sam_config = match profile.and_then(|p| p.serial.as_ref().zip(p.id_card.as_ref())) {
        Some((serial, id_card)) => SamConfig::from_profile(serial, id_card),
        None => SamConfig::default(),
    };
    let fault = config.simulated_faults.id_card_reader;
    let path = if simulated && fault == Some(IdCardFault::Absent) {
        ABSENT_PORT.to_owned()
    } else if simulated {
        let scenario = match fault {
            None | Some(IdCardFault::Absent) => Scenario::default(),
            Some(IdCardFault::SamSelfTestFailure) => {
                Scenario::with_fault(Fault::SamSelfTestFailure)
            }
            Some(IdCardFault::NoCard) => Scenario::with_fault(Fault::NoCard),
            Some(IdCardFault::ReadFailure) => Scenario::with_fault(Fault::ReadFailure),
            Some(IdCardFault::SlowReplies) => Scenario::with_fault(Fault::SlowReplies),
        };
        let sim = SamSimulator::start(scenario).map_err(|e| e.to_string())?;
        let path = sim.path().to_owned();
        opened._sam = Some(sim);
        path
    } else {
        config
            .id_card_port
            .clone()
            .ok_or("no devices.id_card_port configured")?
    };
    let reader = SamSerialReader::open(&path, sam_config, Arc::new(SystemClock))
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(IdCardWorker::new(Box::new(reader))))
}

fn open_scanner(
    config: &DevicesConfig,
    profile: Option<&DeviceProfile>,
    simulated: bool,
) -> Result<Arc<ScannerWorker>, String> {
    let (scanner, trigger): (
        Box<dyn Scanner>,
        Option<Box<dyn super::workers::ScanTrigger>>,
    ) = if simulated && config.simulated_faults.qr_scanner == Some(ScannerFault::Absent) {
        let scanner = match profile {
            Some(p) => SerialScanner::open_profile(ABSENT_PORT, p),
            None => SerialScanner::open(ABSENT_PORT, 9600, 4096, None),
        }
        .map_err(|e| e.to_string())?;
        (Box::new(scanner), None)
    } else if simulated && config.scanner_port.is_none() {
        let sim = SimulatedSerialScanner::start().map_err(|e| e.to_string())?;
        let scanner = match profile {
            Some(p) => SerialScanner::open_profile(sim.path(), p),
            None => SerialScanner::open(sim.path(), 9600, 4096, None),
        }
        .map_err(|e| e.to_string())?;
        (Box::new(scanner), Some(Box::new(SimulatedScans::new(sim))))
    } else {
        let path = config
            .scanner_port
            .as_deref()
            .ok_or("no devices.scanner_port configured")?;
        let profile = profile.ok_or("no scanner profile")?;
        let wedge = profile
            .scanner
            .as_ref()
            .is_some_and(|s| s.transport == ScannerTransport::KeyboardWedge);
        let scanner: Box<dyn Scanner> = if wedge {
            Box::new(EvdevScanner::open_profile(path, profile).map_err(|e| e.to_string())?)
        } else {
            Box::new(SerialScanner::open_profile(path, profile).map_err(|e| e.to_string())?)
        };
        (scanner, None)
    };
    let (task, scans) = scanner::spawn(scanner, 8).map_err(|e| e.to_string())?;
    Ok(Arc::new(ScannerWorker::new(task, scans, trigger)))
}

fn still_camera(
    kind: DeviceKind,
    profile: Option<&DeviceProfile>,
    simulated: bool,
    device: Option<&str>,
) -> Arc<dyn StillCamera> {
    let resolutions = profile_resolutions(profile);
    let camera: Arc<dyn StillCamera> = if simulated {
        let subject = if kind == DeviceKind::DocumentCamera {
            Subject::Page
        } else {
            Subject::Person
        };
        Arc::new(SimulatedStillCamera::new(subject, resolutions))
    } else {
        let default = if kind == DeviceKind::Camera {
            "/dev/video0"
        } else {
            "/dev/video2"
        };
        let model = profile.map_or("uvc", |p| p.id.as_str());
        Arc::new(V4l2StillCamera::new(
            device.unwrap_or(default),
            resolutions,
            model,
        ))
    };
    camera
}

/// Opens the configured devices and runs the device service on the clerk's `commands` until
/// `shutdown`, answering through `sink` (the control link in the agent). The simulators live as
/// long as the returned task. The second value carries the opened devices by kind once they
/// are open (for the self-test).
pub fn spawn_service(
    config: &DevicesConfig,
    uploader: Arc<dyn super::upload::Uploader>,
    commands: tokio::sync::mpsc::Receiver<protocol::device::ToDevice>,
    sink: Arc<dyn super::service::DeviceSink>,
    screen: Arc<super::activity::KioskScreen>,
    shutdown: tokio_util::sync::CancellationToken,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::watch::Receiver<Option<DeviceHandles>>,
) {
    let (handles_tx, handles_rx) = tokio::sync::watch::channel(None);
    let devices_config = config.clone();
    let service_config = config.service();
    let task = tokio::spawn(async move {
        // Opening serial ports and starting simulators blocks briefly.
        let opened = match tokio::task::spawn_blocking(move || open(&devices_config)).await {
            Ok(o) => o,
            Err(_) => return,
        };
        handles_tx.send_replace(Some(opened.handles.clone()));
        let service = super::service::DeviceService::new(
            opened.workers.clone(),
            sink,
            screen,
            uploader,
            service_config,
        );
        service.run(commands, shutdown).await;
        handles_tx.send_replace(None);
        drop(opened);
    });
    (task, handles_rx)
}
