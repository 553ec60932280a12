//! Running the self-test: building a [`Kit`] from the configuration (standalone, or on the
//! running agent's devices), and [`SelfTestService`], which runs one self-test at a time inside
//! the agent for the technician page, the CLI (when an agent runs) and the daily schedule,
//! publishes its progress as a [`RunView`], and files each result at the relay.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use device_profiles::Catalog;
use protocol::inspection::{Bilingual, CheckResult, InspectionReport};
use serde::Serialize;
use tokio::sync::watch;
use tokio_tungstenite::Connector;
use tracing::{info, warn};

use super::audio::{AudioRig, CpalRig, SimulatedRig};
use super::camera::CameraSource;
use super::network::NetworkKit;
use super::report::UploadOutcome;
use super::{Kit, MediaProbe, Network, Options, Progress};
use crate::config::{AgentConfig, Credential};
use crate::devices::setup::DeviceHandles;
use crate::link::control::{KioskState, Link};
use crate::link::rtc::PeerConfig;
use crate::media::{AudioSource, MediaSources, VideoSource};

/// Builds the kit for `config` on already opened `devices`.
pub fn kit(config: &AgentConfig, devices: DeviceHandles, network: Network) -> Result<Kit, String> {
    let d = &config.devices;
    let catalog = match &d.profiles_dir {
        Some(dir) => Catalog::load_dir(dir),
        None => Catalog::embedded(),
    }
    .map_err(|e| format!("设备配置无法加载 / device profiles do not load: {e}"))?;
    let kiosk = catalog.kiosk(d.kiosk_profile()).cloned().ok_or_else(|| {
        format!(
            "未知的终端配置 / unknown kiosk profile {:?}",
            d.kiosk_profile()
        )
    })?;
    let simulated_media = config.media.is_simulated(d);
    let sources = config.media.sources(d)?;
    let faults = &d.simulated_faults;
    let camera = match (&sources.camera, simulated_media) {
        (VideoSource::V4l2 { device, .. }, false) => CameraSource::V4l2(device.clone()),
        _ => CameraSource::Simulated(faults.camera),
    };
    let audio: Arc<dyn AudioRig> = if simulated_media {
        Arc::new(SimulatedRig {
            microphone: match sources.microphone {
                s @ AudioSource::Test { .. } => s,
                _ => MediaSources::simulated().microphone,
            },
            microphone_fault: faults.microphone,
            speaker_fault: faults.speaker,
        })
    } else {
        let alsa = |s: &str| {
            s.strip_prefix("alsa:")
                .filter(|p| *p != "default")
                .map(str::to_owned)
        };
        Arc::new(CpalRig {
            microphone: alsa(&config.media.microphone),
            speaker: alsa(&config.media.speaker),
        })
    };
    Ok(Kit {
        kiosk,
        catalog,
        devices,
        camera,
        audio,
        network,
        data_dir: config.store.data_dir.clone(),
        test_code: config.selftest.test_code.clone(),
        card_wait: Duration::from_secs(config.selftest.card_wait_secs),
    })
}

/// What the network checks need from the configuration.
pub fn network_kit(
    config: &AgentConfig,
    credential: &Credential,
    connector: &Connector,
) -> NetworkKit {
    NetworkKit {
        relay: config.relay.clone(),
        credential: credential.clone(),
        connector: connector.clone(),
        peer: PeerConfig {
            bind_addresses: vec![config.media.udp_bind],
            include_loopback: config.media.loopback_candidates,
            ..PeerConfig::default()
        },
    }
}

// --- the service inside the agent ---------------------------------------------------------------

/// A run as the technician page and the CLI see it.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct RunView {
    /// Increases with every run; 0 before the first.
    pub run_id: u64,
    pub running: bool,
    pub automatic: bool,
    pub technician: String,
    pub started_ms: i64,
    /// Checks finished so far (all of them once done).
    pub checks: Vec<CheckResult>,
    /// What the technician should do now (place the card, scan the code).
    pub prompt: Option<Bilingual>,
    pub report: Option<InspectionReport>,
    pub upload: Option<UploadOutcome>,
}

/// Why a run did not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    #[error("正在自检，请等待本次结束 / a self-test is already running")]
    Running,
    #[error(
        "终端上有居民的号 {number}（{state_zh}）：请在该号办结或取消后再自检 / a resident's ticket {number} is live on this kiosk ({state_en}); run the self-test once it is served or cancelled"
    )]
    Serving {
        number: String,
        /// The ticket's state, from `TicketState::label`.
        state_zh: &'static str,
        state_en: &'static str,
    },
    #[error(
        "终端的设备尚未就绪，请稍后再试 / the kiosk's devices are not open yet; try again shortly"
    )]
    DevicesNotReady,
    #[error("{0}")]
    Invalid(String),
}

struct Inner {
    config: AgentConfig,
    network: Arc<NetworkKit>,
    link: Link,
    devices: watch::Receiver<Option<DeviceHandles>>,
    media: MediaProbe,
    view: watch::Sender<RunView>,
    next_run: AtomicU64,
    /// The CLI's key to the running agent (`<data_dir>/selftest.token`, 0600).
    local_token: String,
}

/// The self-test inside the running agent.
#[derive(Clone)]
pub struct SelfTestService {
    inner: Arc<Inner>,
}

/// The file holding the CLI's key to the running agent's self-test.
pub fn token_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("selftest.token")
}

/// Where the last result is kept across restarts (no personal data in it).
fn last_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("selftest-last.json")
}

impl SelfTestService {
    pub fn new(
        config: &AgentConfig,
        credential: &Credential,
        connector: &Connector,
        link: Link,
        devices: watch::Receiver<Option<DeviceHandles>>,
        media: MediaProbe,
    ) -> SelfTestService {
        let local_token = hex::encode(rand::random::<[u8; 32]>());
        let dir = &config.store.data_dir;
        let last: Option<RunView> = std::fs::read(last_path(dir))
            .ok()
            .and_then(|b| serde_json::from_slice::<StoredRun>(&b).ok())
            .map(|s| RunView {
                run_id: 0,
                running: false,
                automatic: s.report.automatic,
                technician: s.report.technician.clone(),
                started_ms: s.report.started_ms,
                checks: s.report.checks.clone(),
                prompt: None,
                report: Some(s.report),
                upload: Some(s.upload),
            });
        let (view, _) = watch::channel(last.unwrap_or_default());
        SelfTestService {
            inner: Arc::new(Inner {
                config: config.clone(),
                network: Arc::new(network_kit(config, credential, connector)),
                link,
                devices,
                media,
                view,
                next_run: AtomicU64::new(1),
                local_token,
            }),
        }
    }

    /// Tells `agent selftest` where this agent's local API is and the token it takes, in
    /// `<data_dir>/selftest.token` (0600). Call once the local API listens.
    pub fn publish(&self, local: std::net::SocketAddr) {
        let file = LocalAccess {
            local,
            token: self.inner.local_token.clone(),
        };
        let written = serde_json::to_vec(&file)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                write_private(&token_path(&self.inner.config.store.data_dir), &bytes)
            });
        if let Err(e) = written {
            warn!(error = %e, "the self-test token file could not be written; `agent selftest` will run on its own");
        }
    }

    /// Removes the access file (the agent is stopping).
    pub fn withdraw(&self) {
        let _ = std::fs::remove_file(token_path(&self.inner.config.store.data_dir));
    }

    pub fn view(&self) -> watch::Receiver<RunView> {
        self.inner.view.subscribe()
    }

    pub fn config(&self) -> &AgentConfig {
        &self.inner.config
    }

    pub fn link_state(&self) -> KioskState {
        self.inner.link.state().borrow().clone()
    }

    /// Whether `token` is the CLI's key.
    pub fn is_local_token(&self, token: &str) -> bool {
        use sha2::{Digest, Sha256};
        // Compared as hashes: equal length, no early exit on the secret's bytes.
        Sha256::digest(token.as_bytes()) == Sha256::digest(self.inner.local_token.as_bytes())
    }

    /// Whether a resident's ticket is live on this kiosk.
    pub fn serving(&self) -> bool {
        self.live_ticket().is_some()
    }

    /// The resident's live ticket, as the refusal to start names it.
    fn live_ticket(&self) -> Option<StartError> {
        let state = self.inner.link.state();
        let state = state.borrow();
        let ticket = state.ticket.as_ref().filter(|t| !t.state.is_terminal())?;
        let label = ticket.state.label();
        let (state_zh, state_en) = label.split_once(" / ").unwrap_or((label, label));
        Some(StartError::Serving {
            number: ticket.number.clone(),
            state_zh,
            state_en,
        })
    }

    /// Starts a run; returns its id at once. The result, and whether it was filed, appear in
    /// the view.
    pub fn start(&self, options: Options) -> Result<u64, StartError> {
        if !options.automatic {
            let name = options.technician.trim();
            if name.is_empty()
                || name.chars().count() > protocol::inspection::MAX_TECHNICIAN_CHARS
                || name.chars().any(char::is_control)
            {
                return Err(StartError::Invalid(format!(
                    "请填写巡检人员姓名（1至{}字）/ the technician's name (1 to {} characters) is required",
                    protocol::inspection::MAX_TECHNICIAN_CHARS,
                    protocol::inspection::MAX_TECHNICIAN_CHARS
                )));
            }
        }
        if let Some(live) = self.live_ticket() {
            return Err(live);
        }
        let Some(devices) = self.inner.devices.borrow().clone() else {
            return Err(StartError::DevicesNotReady);
        };
        let run_id = self.inner.next_run.fetch_add(1, Ordering::Relaxed);
        let mut started = false;
        self.inner.view.send_if_modified(|v| {
            if v.running {
                return false;
            }
            *v = RunView {
                run_id,
                running: true,
                automatic: options.automatic,
                technician: options.technician.trim().to_owned(),
                started_ms: crate::clock::now_ms(),
                ..RunView::default()
            };
            started = true;
            true
        });
        if !started {
            return Err(StartError::Running);
        }
        let network = Network::Agent {
            kit: self.inner.network.clone(),
            link: self.inner.link.state(),
            media: self.inner.media.clone(),
        };
        let kit = match kit(&self.inner.config, devices, network) {
            Ok(k) => Arc::new(k),
            Err(e) => {
                self.inner.view.send_modify(|v| v.running = false);
                return Err(StartError::Invalid(e));
            }
        };
        let inner = self.inner.clone();
        let mut options = options;
        options.technician = options.technician.trim().to_owned();
        let view = self.inner.view.clone();
        let work = tokio::spawn(async move {
            info!(
                run = run_id,
                automatic = options.automatic,
                "self-test started"
            );
            let progress: Arc<dyn Progress> = Arc::new(ViewProgress(inner.view.clone()));
            let report = super::run(kit, options.clone(), progress).await;
            info!(
                run = run_id,
                overall = report.overall().as_str(),
                "self-test finished"
            );
            // `checks` stays as the checks finished, in the order they finished (followers
            // count what they have shown); the report holds them in the table's order.
            inner.view.send_modify(|v| {
                v.report = Some(report.clone());
                v.prompt = None;
            });
            // Automatic runs may meet a relay that is briefly away: retry for longer.
            let (attempts, backoff) = if options.automatic {
                (7, Duration::from_secs(30))
            } else {
                (3, Duration::from_secs(2))
            };
            let upload = match inner.network.http() {
                Err(e) => UploadOutcome::Failed { message: e },
                Ok(http) => match super::upload::upload(&http, &report, attempts, backoff).await {
                    Ok(receipt) => {
                        info!(run = run_id, record = receipt.id, "inspection record filed");
                        UploadOutcome::Filed { receipt }
                    }
                    Err(e) => {
                        warn!(run = run_id, error = %e, "inspection record not filed");
                        UploadOutcome::Failed {
                            message: e.to_string(),
                        }
                    }
                },
            };
            let stored = StoredRun {
                report,
                upload: upload.clone(),
            };
            if let Ok(bytes) = serde_json::to_vec(&stored)
                && let Err(e) = write_private(&last_path(&inner.config.store.data_dir), &bytes)
            {
                warn!(error = %e, "the last self-test result could not be kept on disk");
            }
            inner.view.send_modify(|v| {
                v.upload = Some(upload);
                v.running = false;
            });
        });
        // A run that panicked (a bug) must not leave the service "running" for good, refusing
        // every later run until the agent restarts.
        tokio::spawn(async move {
            if let Err(e) = work.await {
                warn!(
                    run = run_id,
                    panicked = e.is_panic(),
                    "self-test run ended abnormally"
                );
                view.send_modify(|v| {
                    if v.run_id == run_id && v.running {
                        v.running = false;
                        v.prompt = None;
                        v.upload = Some(UploadOutcome::Failed {
                            message: "自检程序内部错误，本次结果未上传；请把终端日志交给维护人员 / the self-test failed internally and nothing was filed; send the agent's log to maintenance".into(),
                        });
                    }
                });
            }
        });
        Ok(run_id)
    }
}

/// `<data_dir>/selftest.token`: how `agent selftest` reaches the running agent.
#[derive(Serialize, serde::Deserialize)]
pub struct LocalAccess {
    pub local: std::net::SocketAddr,
    pub token: String,
}

/// Reads the running agent's access file, if there is one.
pub fn local_access(data_dir: &std::path::Path) -> Option<LocalAccess> {
    serde_json::from_slice(&std::fs::read(token_path(data_dir)).ok()?).ok()
}

/// Whether a running agent's access file is there but this user may not read it (the CLI run
/// by another user than the service's): running on our own would then fight the agent for
/// its devices and its relay connection.
pub fn local_access_denied(data_dir: &std::path::Path) -> bool {
    std::fs::File::open(token_path(data_dir))
        .is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
}

#[derive(Serialize, serde::Deserialize)]
struct StoredRun {
    report: InspectionReport,
    upload: UploadOutcome,
}

struct ViewProgress(watch::Sender<RunView>);

impl Progress for ViewProgress {
    fn check_done(&self, result: &CheckResult) {
        self.0.send_modify(|v| v.checks.push(result.clone()));
    }

    fn prompt(&self, prompt: Option<Bilingual>) {
        self.0.send_modify(|v| v.prompt = prompt);
    }
}

/// Writes a file readable by its owner only, replacing it atomically.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
