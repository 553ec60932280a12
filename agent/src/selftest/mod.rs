//! The technician's self-test (终端自检): one set of checks per device in the kiosk's profile,
//! plus the network and the kiosk itself, each pass / warn / fail with what was found and what
//! to do, in Chinese and English. The result is filed at the centre as an inspection record
//! (巡检记录, `protocol::inspection`).
//!
//! What it does:
//! - [`run`] runs the checks of a [`Kit`] (the devices, sound, network and profile to check)
//!   and returns an `InspectionReport`. Independent groups run side by side (cameras; sound;
//!   the readers with their interactive steps; the network; the kiosk), every check under its
//!   own time limit, so a healthy kiosk finishes in well under a minute.
//! - [`Kit::standalone`] opens the devices itself (`agent selftest` when no agent runs);
//!   [`service`] runs the self-test inside the running agent on the devices it serves with, for
//!   the technician page ([`http`], behind a PIN) and the daily automatic run ([`schedule`],
//!   sans-IO, and [`daily`]).
//! - [`cli`] is `agent selftest`: a table (Chinese first) or `--json`, exit status 1 on any
//!   failure, the record uploaded with the technician's name ([`upload`]).
//!
//! The analysis is shared by real and simulated devices: frames and recordings go through
//! [`video_analysis`] and [`audio_analysis`] whether they came from hardware or from the
//! simulators the rest of the agent uses (with the faults of `[devices.simulated_faults]`).
//!
//! What it does not do: repair anything, or keep results beyond the last one (the relay keeps
//! the records). Nothing read from a test card or a test code is logged.

pub mod audio;
pub mod audio_analysis;
pub mod camera;
pub mod check;
pub mod cli;
pub mod config;
pub mod daily;
pub mod document_camera;
pub mod http;
pub mod network;
pub mod pin;
pub mod readers;
pub mod report;
pub mod schedule;
pub mod service;
pub mod system;
pub mod upload;
pub mod video_analysis;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use device_profiles::{Catalog, DeviceProfile, KioskProfile};
use protocol::device::DeviceKind;
use protocol::inspection::{Bilingual, CheckOutcome, CheckResult, InspectionReport};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use self::audio::AudioRig;
use self::camera::CameraSource;
use self::check::{Check, bi, blocking, limited, limited_many};
use self::network::NetworkKit;
use crate::clock::now_ms;
use crate::devices::setup::DeviceHandles;

/// The technician named on automatic records.
pub const AUTOMATIC_TECHNICIAN: &str = "自动巡检";

/// How one run goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub technician: String,
    /// The daily run: no interactive steps.
    pub automatic: bool,
    /// Read a test ID card (the technician places it when asked).
    pub with_card: bool,
    /// Scan a test code.
    pub with_code: bool,
}

impl Options {
    pub fn automatic() -> Options {
        Options {
            technician: AUTOMATIC_TECHNICIAN.into(),
            automatic: true,
            with_card: false,
            with_code: false,
        }
    }
}

/// Where the network checks get the relay's side of things.
pub enum Network {
    /// A control connection of the self-test's own (no agent running).
    Standalone(Arc<NetworkKit>),
    /// Inside the running agent: its link and media session.
    Agent {
        kit: Arc<NetworkKit>,
        link: watch::Receiver<crate::link::control::KioskState>,
        /// The media session, `None` when media is off.
        media: MediaProbe,
    },
}

/// Reads the running media session (`None` when media is off on this kiosk).
pub type MediaProbe = Arc<dyn Fn() -> Option<network::MediaSnapshot> + Send + Sync>;

/// Everything a run checks.
pub struct Kit {
    pub kiosk: KioskProfile,
    pub catalog: Catalog,
    pub devices: DeviceHandles,
    pub camera: CameraSource,
    pub audio: Arc<dyn AudioRig>,
    pub network: Network,
    pub data_dir: PathBuf,
    /// The content the test code carries, if the site has one (`[selftest] test_code`).
    pub test_code: Option<String>,
    /// How long a technician has to place the test card.
    pub card_wait: Duration,
}

/// What a run tells its caller while it goes: finished checks and prompts for the
/// technician (place the card, scan the code).
pub trait Progress: Send + Sync {
    fn check_done(&self, result: &CheckResult);
    fn prompt(&self, prompt: Option<Bilingual>);
}

/// Progress nobody watches.
pub struct Quiet;

impl Progress for Quiet {
    fn check_done(&self, _: &CheckResult) {}
    fn prompt(&self, _: Option<Bilingual>) {}
}

/// The order checks are listed in.
pub const ORDER: [&str; 20] = [
    "camera.mode",
    "camera.frames",
    "document_camera.still",
    "document_camera.image",
    "microphone.level",
    "speaker.loop",
    "id_card_reader.sam",
    "id_card_reader.read",
    "qr_scanner.present",
    "qr_scanner.decode",
    "network.https",
    "network.login",
    "network.media_udp",
    "network.turn",
    "network.rtt",
    "network.uplink",
    "network.clock",
    "system.disk",
    "system.media",
    "system.versions",
];

impl Kit {
    fn slot(&self, kind: DeviceKind) -> Option<(bool, &DeviceProfile)> {
        let slot = self.kiosk.slots.iter().find(|s| s.kind == kind)?;
        Some((slot.required, self.catalog.device(&slot.profile)?))
    }

    /// A short fingerprint of the kiosk profile and its device profiles, so the record shows
    /// which profile data the checks used.
    pub fn profile_fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(toml::to_string(&self.kiosk).unwrap_or_default());
        for slot in &self.kiosk.slots {
            if let Some(p) = self.catalog.device(&slot.profile) {
                hasher.update(toml::to_string(p).unwrap_or_default());
            }
        }
        hex::encode(&hasher.finalize()[..4])
    }
}

fn profile_missing(id: &'static str, kind: DeviceKind, what: &str) -> CheckResult {
    Check::new(id, Some(kind)).fail(
        bi(
            format!("设备配置缺少{what}参数"),
            format!("the device profile has no {what} settings"),
        ),
        bi(
            "检查设备配置文件（device-profiles）",
            "check the device profile files (device-profiles)",
        ),
    )
}

/// Runs every check of `kit`.
pub async fn run(kit: Arc<Kit>, options: Options, progress: Arc<dyn Progress>) -> InspectionReport {
    let started_ms = now_ms();
    let report = |results: Vec<CheckResult>| {
        for r in &results {
            progress.check_done(r);
        }
        results
    };
    let (cameras, sound, readers, network, system) = tokio::join!(
        async { report(cameras(kit.clone()).await) },
        async { report(sound(kit.clone()).await) },
        async { report(readers(kit.clone(), &options, progress.clone()).await) },
        async { report(network_checks(&kit).await) },
        async { report(system_checks(kit.clone()).await) },
    );
    progress.prompt(None);
    let mut checks: Vec<CheckResult> = [cameras, sound, readers, network, system].concat();
    checks.sort_by_key(|c| {
        ORDER
            .iter()
            .position(|id| *id == c.id)
            .unwrap_or(ORDER.len())
    });
    InspectionReport {
        technician: options.technician.clone(),
        automatic: options.automatic,
        started_ms,
        finished_ms: now_ms().max(started_ms),
        agent_version: env!("CARGO_PKG_VERSION").into(),
        profile: Some(kit.kiosk.id.clone()),
        checks,
    }
}

async fn cameras(kit: Arc<Kit>) -> Vec<CheckResult> {
    let mut out = Vec::new();
    if let Some((_, profile)) = kit.slot(DeviceKind::Camera) {
        match profile.video.clone() {
            None => out.push(profile_missing("camera.mode", DeviceKind::Camera, "视频")),
            Some(spec) => {
                let source = kit.camera.clone();
                out.extend(
                    limited_many(
                        &["camera.mode", "camera.frames"],
                        Some(DeviceKind::Camera),
                        Duration::from_secs(15),
                        async {
                            blocking("camera.frames", Some(DeviceKind::Camera), move || {
                                camera::check_camera(&source, &spec)
                            })
                            .await
                            .unwrap_or_else(|r| vec![r])
                        },
                    )
                    .await,
                );
            }
        }
    }
    if let Some((_, profile)) = kit.slot(DeviceKind::DocumentCamera) {
        let ids = ["document_camera.still", "document_camera.image"];
        let dc = Some(DeviceKind::DocumentCamera);
        match (profile.video.clone(), kit.devices.document_camera.clone()) {
            (None, _) => out.push(profile_missing(
                "document_camera.still",
                DeviceKind::DocumentCamera,
                "视频",
            )),
            (Some(_), None) => out.push(missing_device(
                &kit,
                DeviceKind::DocumentCamera,
                "document_camera.still",
            )),
            (Some(spec), Some(cam)) => out.extend(
                limited_many(&ids, dc, Duration::from_secs(30), async move {
                    blocking("document_camera.still", dc, move || {
                        document_camera::check_document_camera(cam.as_ref(), &spec)
                    })
                    .await
                    .unwrap_or_else(|r| vec![r])
                })
                .await,
            ),
        }
    }
    out
}

fn missing_device(kit: &Kit, kind: DeviceKind, id: &'static str) -> CheckResult {
    let reason = kit
        .devices
        .missing
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or("not opened", |(_, r)| r.as_str());
    Check::new(id, Some(kind)).fail(
        bi(
            format!("设备不可用（noDevice）：{}", readers::reason_zh(reason)),
            format!("noDevice: {reason}"),
        ),
        bi(
            "检查设备连接与 [devices] 配置",
            "check the device's connection and [devices] configuration",
        ),
    )
}

async fn sound(kit: Arc<Kit>) -> Vec<CheckResult> {
    let mut out = Vec::new();
    if let Some((_, mic)) = kit.slot(DeviceKind::Microphone) {
        let rig = kit.audio.clone();
        let id = "microphone.level";
        let dev = Some(DeviceKind::Microphone);
        out.push(
            limited(id, dev, Duration::from_secs(8), async move {
                blocking(id, dev, move || audio::check_microphone(rig.as_ref()))
                    .await
                    .unwrap_or_else(|r| r)
            })
            .await,
        );
        if let Some((_, speaker)) = kit.slot(DeviceKind::Speaker) {
            let st = speaker.audio.as_ref().map(|a| a.self_test.clone());
            let min = mic
                .audio
                .as_ref()
                .and_then(|a| a.self_test.min_level_dbfs)
                .unwrap_or(-50.0);
            let (id, dev) = ("speaker.loop", Some(DeviceKind::Speaker));
            match st {
                None => out.push(profile_missing(id, DeviceKind::Speaker, "音频")),
                Some(st) => {
                    let rig = kit.audio.clone();
                    out.push(
                        limited(id, dev, Duration::from_secs(10), async move {
                            blocking(id, dev, move || audio::check_loop(rig.as_ref(), &st, min))
                                .await
                                .unwrap_or_else(|r| r)
                        })
                        .await,
                    );
                }
            }
        }
    }
    out
}

async fn readers(
    kit: Arc<Kit>,
    options: &Options,
    progress: Arc<dyn Progress>,
) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let interactive = !options.automatic;
    if kit.slot(DeviceKind::IdCardReader).is_some() {
        let dev = Some(DeviceKind::IdCardReader);
        match kit.devices.id_card.as_ref().map(|w| w.reader()) {
            None => {
                let reason = kit
                    .devices
                    .missing
                    .iter()
                    .find(|(k, _)| *k == DeviceKind::IdCardReader)
                    .map_or("not opened".to_owned(), |(_, r)| r.clone());
                out.push(readers::reader_missing(&reason));
                if options.with_card && interactive {
                    out.push(
                        Check::new("id_card_reader.read", dev)
                            .skipped(bi("阅读器不可用，未读卡", "not read: no reader")),
                    );
                }
            }
            Some(reader) => {
                let r = reader.clone();
                let sam = limited(
                    "id_card_reader.sam",
                    dev,
                    Duration::from_secs(8),
                    async move {
                        blocking("id_card_reader.sam", dev, move || readers::check_sam(&r))
                            .await
                            .unwrap_or_else(|r| r)
                    },
                )
                .await;
                let sam_ok = sam.outcome == CheckOutcome::Pass;
                out.push(sam);
                if options.with_card && interactive {
                    if sam_ok {
                        progress.prompt(Some(bi(
                            "请将测试身份证平放在阅读区",
                            "place the test ID card flat on the reader",
                        )));
                        let wait = kit.card_wait;
                        let read = limited(
                            "id_card_reader.read",
                            dev,
                            wait + Duration::from_secs(10),
                            async move {
                                blocking("id_card_reader.read", dev, move || {
                                    readers::check_card(&reader, wait)
                                })
                                .await
                                .unwrap_or_else(|r| r)
                            },
                        )
                        .await;
                        progress.prompt(None);
                        out.push(read);
                    } else {
                        out.push(Check::new("id_card_reader.read", dev).skipped(bi(
                            "安全模块检查未通过，未读卡",
                            "not read: the SAM check did not pass",
                        )));
                    }
                }
            }
        }
    }
    if let Some((required, profile)) = kit.slot(DeviceKind::QrScanner) {
        let dev = Some(DeviceKind::QrScanner);
        let missing = kit
            .devices
            .missing
            .iter()
            .find(|(k, _)| *k == DeviceKind::QrScanner)
            .map(|(_, r)| r.as_str());
        let scanner = kit.devices.scanner.clone();
        let present = readers::check_scanner_present(scanner.as_deref(), missing, required);
        let present_ok = present.outcome == CheckOutcome::Pass;
        out.push(present);
        if options.with_code && interactive {
            match scanner.filter(|_| present_ok) {
                Some(scanner) => {
                    let wait = Duration::from_millis(u64::from(
                        profile
                            .scanner
                            .as_ref()
                            .map_or(30_000, |s| s.self_test.scan_timeout_ms),
                    ));
                    progress.prompt(Some(bi(
                        "请将测试二维码对准扫码口",
                        "hold the test code in front of the scanner",
                    )));
                    let expected = kit.test_code.clone();
                    let r =
                        limited(
                            "qr_scanner.decode",
                            dev,
                            wait + Duration::from_secs(5),
                            async move {
                                readers::check_scan(&scanner, wait, expected.as_deref()).await
                            },
                        )
                        .await;
                    progress.prompt(None);
                    out.push(r);
                }
                None => out.push(
                    Check::new("qr_scanner.decode", dev)
                        .skipped(bi("扫码器不可用，未扫码", "not scanned: no scanner")),
                ),
            }
        }
    }
    out
}

async fn network_checks(kit: &Kit) -> Vec<CheckResult> {
    let net = match &kit.network {
        Network::Standalone(k) | Network::Agent { kit: k, .. } => k.clone(),
    };
    let http = match net.http() {
        Ok(h) => h,
        Err(e) => {
            let bad = Check::new("network.https", None).fail(
                bi(
                    format!("中继地址配置有误：{e}"),
                    format!("relay.url is unusable: {e}"),
                ),
                bi("检查配置 relay.url", "check relay.url"),
            );
            let mut out = network::unreachable(
                &[
                    "network.login",
                    "network.media_udp",
                    "network.turn",
                    "network.rtt",
                    "network.uplink",
                    "network.clock",
                ],
                &bad,
            );
            out.insert(0, bad);
            return out;
        }
    };
    let secs = Duration::from_secs;
    let https = limited("network.https", None, secs(10), network::check_https(&http)).await;
    let https_ok = https.outcome != CheckOutcome::Fail;
    // The relay's ICE servers (and whether it serves media), for the TURN check and for
    // judging the running agent's media connection.
    let ice = if https_ok {
        Some(
            match tokio::time::timeout(secs(8), network::fetch_ice_servers(&http)).await {
                Ok(r) => r,
                Err(_) => Err(check::timed_out("network.turn", None, secs(8))),
            },
        )
    } else {
        None
    };
    let relay_media = ice
        .as_ref()
        .and_then(|r| r.as_ref().ok())
        .and_then(|p| p.media_enabled);
    // The control connection is tried even when HTTPS failed: its error says more.
    let (login, media) = match &kit.network {
        Network::Standalone(k) => {
            let (login, session) = limited_login(k).await;
            let media = match session {
                Some(_) if relay_media == Some(false) => network::relay_without_media(),
                Some(session) => {
                    limited(
                        "network.media_udp",
                        None,
                        secs(16),
                        session.check_media_udp(k.peer.clone()),
                    )
                    .await
                }
                None => network::unreachable(&["network.media_udp"], &login).remove(0),
            };
            (login, media)
        }
        Network::Agent { link, media, .. } => {
            let state = link.borrow().clone();
            (
                network::login_from_link(&state),
                network::media_from_session(media().as_ref(), relay_media),
            )
        }
    };
    let mut out = vec![https.clone(), login, media];
    let Some(ice) = ice else {
        out.extend(network::unreachable(
            &[
                "network.turn",
                "network.rtt",
                "network.uplink",
                "network.clock",
            ],
            &https,
        ));
        return out;
    };
    let turn = match ice {
        Ok(probe) => {
            limited(
                "network.turn",
                None,
                secs(10),
                network::check_turn(&probe.ice_servers),
            )
            .await
        }
        Err(failed) => failed,
    };
    out.push(turn);
    out.extend(
        limited_many(&["network.rtt", "network.clock"], None, secs(12), async {
            network::judge_timing(network::measure_time(&http).await)
        })
        .await,
    );
    out.push(
        limited(
            "network.uplink",
            None,
            secs(15),
            network::check_uplink(&http),
        )
        .await,
    );
    out
}

async fn limited_login(k: &NetworkKit) -> (CheckResult, Option<network::Login>) {
    match tokio::time::timeout(
        Duration::from_secs(12),
        network::login(&k.relay, &k.credential, &k.connector),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => (
            check::timed_out("network.login", None, Duration::from_secs(12)),
            None,
        ),
    }
}

async fn system_checks(kit: Arc<Kit>) -> Vec<CheckResult> {
    let dir = kit.data_dir.clone();
    // A hung storage device (or network mount) must not hold the run up.
    let disk = limited("system.disk", None, Duration::from_secs(5), async {
        blocking("system.disk", None, move || system::check_disk(&dir))
            .await
            .unwrap_or_else(|r| r)
    })
    .await;
    let media = limited("system.media", None, Duration::from_secs(10), async {
        blocking("system.media", None, system::check_media_elements)
            .await
            .unwrap_or_else(|r| r)
    })
    .await;
    vec![
        disk,
        media,
        system::check_versions(&kit.kiosk.id, &kit.profile_fingerprint()),
    ]
}
