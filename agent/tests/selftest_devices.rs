//! The self-test against simulated devices, healthy and broken. Faults are configuration
//! (`[devices.simulated_faults]`) and change only what the simulators produce: each broken
//! device is caught by the same analysis a kiosk runs, with the right remedy.
//!
//! The relay here is unreachable (a closed loopback port), so these tests look at the device
//! checks; the network checks have their own end-to-end tests (`selftest_relay.rs`).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use agent::config::{AgentConfig, Sources};
use agent::selftest::service::{kit, network_kit};
use agent::selftest::{Network, Options, Quiet};
use protocol::inspection::{CheckOutcome, CheckResult, InspectionReport};

fn config(dir: &Path, faults: &[(&str, &str)]) -> AgentConfig {
    let credential = dir.join("kiosk.credential");
    std::fs::write(&credential, "kiosk-dev-test:secret\n").unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let mut overrides = vec![
        format!("relay.url=\"wss://127.0.0.1:{closed}/ws/kiosk\""),
        format!(
            "relay.credential_file={:?}",
            credential.display().to_string()
        ),
        format!(
            "store.data_dir={:?}",
            dir.join("data").display().to_string()
        ),
        "devices.simulated=true".to_owned(),
        // The shortest wait for a test card the configuration allows: the "no card" test
        // waits it out.
        "selftest.card_wait_secs=5".to_owned(),
    ];
    for (device, fault) in faults {
        overrides.push(format!("devices.simulated_faults.{device}=\"{fault}\""));
    }
    AgentConfig::load(&Sources {
        overrides,
        ..Sources::default()
    })
    .expect("test configuration")
}

/// Opens the configured (simulated) devices and runs the self-test, with the interactive
/// steps.
async fn run(faults: &[(&str, &str)]) -> InspectionReport {
    agent::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), faults);
    let devices = config.devices.clone();
    let opened = tokio::task::spawn_blocking(move || agent::devices::setup::open(&devices))
        .await
        .unwrap();
    let credential = agent::config::Credential::read(&config.relay.credential_file).unwrap();
    let connector = agent::link::control::tls_connector(&config.relay).unwrap();
    let network = Network::Standalone(Arc::new(network_kit(&config, &credential, &connector)));
    let kit = Arc::new(kit(&config, opened.handles.clone(), network).unwrap());
    let options = Options {
        technician: "测试技师".into(),
        automatic: false,
        with_card: true,
        with_code: true,
    };
    let report = agent::selftest::run(kit, options, Arc::new(Quiet)).await;
    drop(opened);
    report
}

fn check<'a>(report: &'a InspectionReport, id: &str) -> &'a CheckResult {
    report
        .checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no check {id}"))
}

const DEVICE_CHECKS: [&str; 10] = [
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
];

/// Every device check passes except `broken`, which must fail.
fn only_broken(report: &InspectionReport, broken: &[&str]) {
    for id in DEVICE_CHECKS {
        let c = check(report, id);
        if broken.contains(&id) {
            assert_eq!(c.outcome, CheckOutcome::Fail, "{id}: {c:?}");
            assert!(c.remedy.is_some(), "{id} has a remedy");
        } else {
            assert_eq!(c.outcome, CheckOutcome::Pass, "{id}: {c:?}");
        }
    }
    assert_eq!(report.overall(), CheckOutcome::Fail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_simulated_devices_pass_with_their_measurements() {
    let report = run(&[]).await;
    only_broken(&report, &[]);
    let frames = check(&report, "camera.frames");
    let value = |c: &CheckResult, name: &str| {
        c.measurements
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
            .unwrap_or_else(|| panic!("{name} measured"))
    };
    assert!(value(frames, "motion") > 0.05);
    assert!((value(frames, "frame_rate") - 30.0).abs() < 3.0);
    let still = check(&report, "document_camera.still");
    assert_eq!(value(still, "width"), 3264.0);
    let image = check(&report, "document_camera.image");
    assert!(value(image, "sharpness") >= 0.1);
    let looped = check(&report, "speaker.loop");
    assert!(value(looped, "tone_level") >= -30.0, "{looped:?}");
    assert!(
        check(&report, "id_card_reader.sam")
            .detail
            .zh
            .contains("SAM 编号 05.01-")
    );
    // Nothing from the test card reaches the record.
    let card = check(&report, "id_card_reader.read");
    let fixture = agent::devices::idcard::fixtures::resident();
    let text = serde_json::to_string(&report).unwrap();
    if let protocol::device::IdCard::Resident(r) = fixture {
        assert!(!text.contains(r.id_number.expose().as_str()));
        assert!(!text.contains(r.name.expose().as_str()));
    }
    assert!(card.detail.zh.contains("校验通过"));
    // The network is unreachable here, and says so.
    assert_eq!(check(&report, "network.https").outcome, CheckOutcome::Fail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_camera_is_caught_by_the_black_frame_check() {
    let report = run(&[("camera", "black")]).await;
    only_broken(&report, &["camera.frames"]);
    let c = check(&report, "camera.frames");
    assert!(c.detail.zh.contains("画面全黑"), "{c:?}");
    assert!(c.remedy.as_ref().unwrap().zh.contains("镜头"));
    // The camera itself opened: only the picture is wrong.
    assert_eq!(check(&report, "camera.mode").outcome, CheckOutcome::Pass);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_camera_is_caught_by_the_frame_difference() {
    let report = run(&[("camera", "frozen")]).await;
    only_broken(&report, &["camera.frames"]);
    let c = check(&report, "camera.frames");
    assert!(c.detail.en.contains("frozen"), "{c:?}");
    assert!(
        c.measurements
            .iter()
            .any(|m| m.name == "motion" && m.value < 0.05)
    );
    assert!(c.remedy.as_ref().unwrap().zh.contains("重新插拔摄像头"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_microphone_fails_the_level_and_the_loop() {
    let report = run(&[("microphone", "silent")]).await;
    only_broken(&report, &["microphone.level", "speaker.loop"]);
    let c = check(&report, "microphone.level");
    assert!(c.detail.en.contains("silence"), "{c:?}");
    assert!(c.remedy.as_ref().unwrap().zh.contains("静音"));
    // The loop's remedy points at the microphone first.
    assert!(
        check(&report, "speaker.loop")
            .remedy
            .as_ref()
            .unwrap()
            .zh
            .contains("先处理麦克风")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_speaker_fails_only_the_loop() {
    let report = run(&[("speaker", "silent")]).await;
    only_broken(&report, &["speaker.loop"]);
    assert!(
        check(&report, "speaker.loop")
            .remedy
            .as_ref()
            .unwrap()
            .zh
            .contains("扬声器")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sam_that_failed_its_self_test_is_reported_with_0x60() {
    let report = run(&[("id_card_reader", "sam_self_test_failure")]).await;
    let c = check(&report, "id_card_reader.sam");
    assert_eq!(c.outcome, CheckOutcome::Fail);
    assert!(c.detail.zh.contains("SAM自检失败"), "{c:?}");
    assert!(c.detail.en.contains("hardwareError"), "{c:?}");
    assert!(c.remedy.as_ref().unwrap().zh.contains("更换安全模块"));
    // No card read is attempted on a failed SAM.
    assert_eq!(
        check(&report, "id_card_reader.read").outcome,
        CheckOutcome::Skipped
    );
    for id in ["camera.frames", "microphone.level", "qr_scanner.decode"] {
        assert_eq!(check(&report, id).outcome, CheckOutcome::Pass, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_reader_is_no_device_with_the_port_to_check() {
    let report = run(&[("id_card_reader", "absent")]).await;
    let c = check(&report, "id_card_reader.sam");
    assert_eq!(c.outcome, CheckOutcome::Fail);
    assert!(c.detail.en.contains("noDevice"), "{c:?}");
    assert!(
        c.remedy
            .as_ref()
            .unwrap()
            .zh
            .contains("devices.id_card_port")
    );
    assert_eq!(
        check(&report, "id_card_reader.read").outcome,
        CheckOutcome::Skipped
    );
    assert_eq!(check(&report, "camera.frames").outcome, CheckOutcome::Pass);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_test_card_within_the_wait_is_a_user_error_with_what_to_do() {
    let report = run(&[("id_card_reader", "no_card")]).await;
    // The reader itself is fine.
    assert_eq!(
        check(&report, "id_card_reader.sam").outcome,
        CheckOutcome::Pass
    );
    let c = check(&report, "id_card_reader.read");
    assert_eq!(c.outcome, CheckOutcome::Fail, "{c:?}");
    assert!(c.detail.en.starts_with("userError"), "{c:?}");
    assert!(c.detail.zh.contains("5 秒内未检测到测试证件"), "{c:?}");
    assert!(c.remedy.as_ref().unwrap().zh.contains("平放"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_that_does_not_read_fails_the_read_with_the_sam_status() {
    let report = run(&[("id_card_reader", "read_failure")]).await;
    only_broken(&report, &["id_card_reader.read"]);
    let c = check(&report, "id_card_reader.read");
    assert!(c.detail.en.starts_with("userError"), "{c:?}");
    assert!(c.remedy.as_ref().unwrap().zh.contains("重新放置"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_still_passes_within_its_limits() {
    let report = run(&[("id_card_reader", "slow_replies")]).await;
    only_broken(&report, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_scanner_fails_present_and_skips_the_scan() {
    let report = run(&[("qr_scanner", "absent")]).await;
    let c = check(&report, "qr_scanner.present");
    // The simulated profile marks the scanner required.
    assert_eq!(c.outcome, CheckOutcome::Fail, "{c:?}");
    assert!(
        c.remedy
            .as_ref()
            .unwrap()
            .zh
            .contains("devices.scanner_port")
    );
    assert_eq!(
        check(&report, "qr_scanner.decode").outcome,
        CheckOutcome::Skipped
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_automatic_run_skips_the_interactive_steps() {
    agent::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &[]);
    let devices = config.devices.clone();
    let opened = tokio::task::spawn_blocking(move || agent::devices::setup::open(&devices))
        .await
        .unwrap();
    let credential = agent::config::Credential::read(&config.relay.credential_file).unwrap();
    let connector = agent::link::control::tls_connector(&config.relay).unwrap();
    let network = Network::Standalone(Arc::new(network_kit(&config, &credential, &connector)));
    let kit = Arc::new(kit(&config, opened.handles.clone(), network).unwrap());
    let report = agent::selftest::run(kit, Options::automatic(), Arc::new(Quiet)).await;
    assert!(report.automatic);
    assert_eq!(report.technician, "自动巡检");
    let ids: Vec<&str> = report.checks.iter().map(|c| c.id.as_str()).collect();
    assert!(!ids.contains(&"id_card_reader.read") && !ids.contains(&"qr_scanner.decode"));
    assert!(ids.contains(&"id_card_reader.sam") && ids.contains(&"speaker.loop"));
}
