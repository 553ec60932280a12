//! Every shipped profile loads and validates; bad files fail with errors naming the file and
//! field; the resolver assigns devices to slots.

use std::path::Path;

use device_profiles::*;

fn profiles_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/profiles"))
}

#[test]
fn every_file_in_the_directory_loads_and_matches_the_embedded_copy() {
    let from_dir = Catalog::load_dir(profiles_dir()).expect("profiles directory validates");
    let embedded = Catalog::embedded().expect("embedded profiles validate");
    assert_eq!(
        from_dir, embedded,
        "a file in profiles/ is missing from EMBEDDED_*_FILES"
    );
    assert_eq!(from_dir.devices().count(), 13);
    assert_eq!(from_dir.kiosks().count(), 2);
}

#[test]
fn the_simulated_set_covers_every_kind() {
    let catalog = Catalog::embedded().expect("embedded profiles validate");
    let kiosk = catalog
        .kiosk("kiosk-simulated")
        .expect("simulated kiosk exists");
    for kind in DeviceKind::HARDWARE {
        let slot = kiosk
            .slots
            .iter()
            .find(|s| s.kind == kind)
            .expect("kind present");
        let profile = catalog.device(&slot.profile).expect("profile exists");
        assert!(profile.simulated, "{} is not simulated", profile.id);
    }
}

#[test]
fn sam_reader_profile_states_the_line_settings() {
    let catalog = Catalog::embedded().expect("embedded profiles validate");
    let reader = catalog.device("generic-sam-serial-reader").expect("exists");
    let serial = reader.serial.as_ref().expect("serial section");
    assert_eq!(
        (
            serial.baud,
            serial.data_bits,
            serial.parity,
            serial.stop_bits
        ),
        (115200, 8, Parity::None, 1)
    );
    assert_eq!(
        reader.id_card.as_ref().map(|c| c.poll_interval_ms),
        Some(300)
    );
}

const GOOD_READER: &str = r#"
id = "r"
kind = "id_card_reader"
description = "x"
[[match]]
bus = "serial"
usb_id = "1a86:7523"
[serial]
baud = 115200
data_bits = 8
parity = "none"
stop_bits = 1
flow_control = "none"
[id_card]
protocol = "sam_serial"
poll_interval_ms = 300
reply_timeout_ms = 1000
[id_card.self_test]
check_sam_status = true
read_sam_id = false
"#;

fn load_one(text: &str) -> Result<Catalog, ProfileError> {
    Catalog::from_sources([("r.toml", text)], [])
}

fn error_of(text: &str) -> String {
    load_one(text).expect_err("must be rejected").to_string()
}

#[test]
fn a_good_file_loads() {
    let catalog = load_one(GOOD_READER).expect("valid");
    let rule = &catalog.device("r").expect("present").rules[0];
    assert_eq!(
        rule.usb_id,
        Some(UsbId {
            vendor: 0x1a86,
            product: 0x7523
        })
    );
}

#[test]
fn bad_values_give_clear_errors() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "baud = 115200",
            "baud = 115201",
            "serial.baud: 115201 is not a standard rate",
        ),
        (
            "poll_interval_ms = 300",
            "poll_interval_ms = 100",
            "id_card.poll_interval_ms: 100 ms polls faster",
        ),
        (
            "usb_id = \"1a86:7523\"",
            "usb_id = \"1a86-7523\"",
            "USB id \"1a86-7523\" is not VVVV:PPPP",
        ),
        (
            "bus = \"serial\"",
            "bus = \"v4l2\"",
            "match[0].bus: V4l2 cannot carry this device",
        ),
        (
            "stop_bits = 1",
            "stop_bits = 3",
            "serial.stop_bits: 3 is neither 1 nor 2",
        ),
        (
            "id = \"r\"",
            "id = \"other\"",
            "id: \"other\" must equal the file name \"r\"",
        ),
        (
            "kind = \"id_card_reader\"",
            "kind = \"camera\"",
            "a camera profile needs a [video] table",
        ),
        (
            "kind = \"id_card_reader\"",
            "kind = \"printer\"",
            "unknown variant `printer`",
        ),
        (
            "read_sam_id = false",
            "read_sam_id = false\nread_sam_pin = true",
            "unknown field `read_sam_pin`",
        ),
        (
            "data_bits = 8",
            "data_bits = 8\nbaudrate = 9600",
            "unknown field `baudrate`",
        ),
    ];
    for (from, to, expected) in cases {
        assert!(GOOD_READER.contains(from), "{from}");
        let message = error_of(&GOOD_READER.replacen(from, to, 1));
        assert!(message.starts_with("r.toml"), "{message}");
        assert!(
            message.contains(expected),
            "expected {expected:?} in {message:?}"
        );
    }
}

#[test]
fn video_values_are_checked() {
    let camera = r#"
id = "r"
kind = "camera"
description = "c"
[[match]]
bus = "v4l2"
name = "USB Camera*"
[video]
formats = ["mjpeg"]
resolutions = ["1280x720"]
frame_rates = [30]
[video.self_test]
min_resolution = "640x480"
min_frame_rate = 15
min_sharpness = 0.1
mean_luma = [40, 220]
"#;
    load_one(camera).expect("valid camera");
    let cases: &[(&str, &str, &str)] = &[
        (
            "\"1280x720\"]",
            "\"1280x0\"]",
            "resolution \"1280x0\" is not WIDTHxHEIGHT",
        ),
        (
            "min_sharpness = 0.1",
            "min_sharpness = 1.5",
            "video.self_test.min_sharpness: 1.5 is outside 0–1",
        ),
        (
            "mean_luma = [40, 220]",
            "mean_luma = [220, 40]",
            "video.self_test.mean_luma",
        ),
        (
            "mean_luma = [40, 220]",
            "mean_luma = [40, 300]",
            "invalid value",
        ),
        (
            "min_resolution = \"640x480\"",
            "min_resolution = \"1920x1080\"",
            "larger than every listed resolution",
        ),
        (
            "formats = [\"mjpeg\"]",
            "formats = [\"h264\"]",
            "unknown variant `h264`",
        ),
        (
            "frame_rates = [30]",
            "frame_rates = [0]",
            "video.frame_rates: 0 is outside 1–120 fps",
        ),
    ];
    for (from, to, expected) in cases {
        assert!(camera.contains(from), "{from}");
        let message = error_of(&camera.replacen(from, to, 1));
        assert!(
            message.contains(expected),
            "expected {expected:?} in {message:?}"
        );
    }
}

#[test]
fn kiosk_references_are_checked() {
    let kiosk = |profile: &str, kind: &str| {
        format!(
            "id = \"k\"\ndescription = \"k\"\n[[device]]\nkind = \"{kind}\"\nprofile = \"{profile}\"\n"
        )
    };
    let load = |text: &str| Catalog::from_sources([("r.toml", GOOD_READER)], [("k.toml", text)]);
    load(&kiosk("r", "id_card_reader")).expect("valid kiosk");
    let missing = load(&kiosk("nope", "id_card_reader"))
        .expect_err("missing profile")
        .to_string();
    assert!(
        missing.contains("k.toml: device[0].profile: no device profile \"nope\""),
        "{missing}"
    );
    let wrong = load(&kiosk("r", "camera"))
        .expect_err("wrong kind")
        .to_string();
    assert!(
        wrong.contains("is a id_card_reader profile, not camera"),
        "{wrong}"
    );
    let twice = format!(
        "{}[[device]]\nkind = \"id_card_reader\"\nprofile = \"r\"\n",
        kiosk("r", "id_card_reader")
    );
    let twice = load(&twice).expect_err("duplicate kind").to_string();
    assert!(
        twice.contains("device[1].kind: id_card_reader appears twice"),
        "{twice}"
    );
}

#[test]
fn load_dir_reports_the_file_that_is_wrong() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("devices")).expect("mkdir");
    std::fs::write(dir.path().join("devices/r.toml"), GOOD_READER).expect("write");
    let catalog = Catalog::load_dir(dir.path()).expect("loads");
    assert!(catalog.device("r").is_some());
    std::fs::write(dir.path().join("devices/s.toml"), "id = \"s\"\nkind = ").expect("write");
    let message = Catalog::load_dir(dir.path())
        .expect_err("broken file")
        .to_string();
    assert!(message.starts_with("s.toml"), "{message}");
}

fn dev(bus: Bus, path: &str, name: Option<&str>) -> DetectedDevice {
    DetectedDevice {
        bus,
        path: path.into(),
        name: name.map(Into::into),
        usb_id: None,
    }
}

#[test]
fn resolver_fills_the_simulated_kiosk() {
    let catalog = Catalog::embedded().expect("valid");
    let kiosk = catalog.kiosk("kiosk-simulated").expect("exists");
    let detected: Vec<_> = DeviceKind::HARDWARE
        .iter()
        .rev()
        .map(|k| dev(Bus::Simulated, &format!("/sim/{k}"), Some(k.as_str())))
        .collect();
    let resolution = resolve(&catalog, kiosk, &detected);
    assert_eq!(resolution.missing_required().count(), 0);
    for kind in DeviceKind::HARDWARE {
        let slot = resolution.slot(kind).expect("slot");
        assert_eq!(
            slot.device.as_ref().map(|d| d.path.clone()),
            Some(format!("/sim/{kind}"))
        );
        assert_eq!(slot.ambiguous_with, 0);
    }
}

#[test]
fn resolver_assigns_each_device_once_and_reports_guesses_and_gaps() {
    let catalog = Catalog::embedded().expect("valid");
    let kiosk = catalog.kiosk("kiosk-generic").expect("exists");
    let detected = vec![
        dev(Bus::V4l2, "/dev/video0", Some("USB Camera")),
        dev(Bus::V4l2, "/dev/video2", Some("Document Camera")),
        dev(Bus::Serial, "/dev/ttyUSB0", None),
        dev(Bus::AlsaCapture, "hw:1,0", Some("USB Audio")),
    ];
    let r = resolve(&catalog, kiosk, &detected);
    let path = |k| {
        r.slot(k)
            .and_then(|s| s.device.as_ref())
            .map(|d| d.path.as_str())
    };
    assert_eq!(path(DeviceKind::Camera), Some("/dev/video0"));
    assert_eq!(
        r.slot(DeviceKind::Camera).map(|s| s.ambiguous_with),
        Some(1)
    );
    assert_eq!(path(DeviceKind::DocumentCamera), Some("/dev/video2"));
    assert_eq!(path(DeviceKind::IdCardReader), Some("/dev/ttyUSB0"));
    assert_eq!(path(DeviceKind::Microphone), Some("hw:1,0"));
    let missing: Vec<_> = r.missing_required().map(|s| s.kind).collect();
    assert_eq!(missing, vec![DeviceKind::Speaker]);
    assert_eq!(path(DeviceKind::QrScanner), None);
}

#[test]
fn a_site_pin_and_a_usb_id_beat_order() {
    let catalog = load_one(GOOD_READER).expect("valid");
    let mut other = dev(Bus::Serial, "/dev/ttyUSB0", None);
    other.usb_id = Some(UsbId {
        vendor: 0x0403,
        product: 0x6001,
    });
    let mut ch340 = dev(Bus::Serial, "/dev/ttyUSB1", None);
    ch340.usb_id = Some(UsbId {
        vendor: 0x1a86,
        product: 0x7523,
    });
    let kiosk = KioskProfile {
        id: "k".into(),
        description: "k".into(),
        slots: vec![KioskSlot {
            kind: DeviceKind::IdCardReader,
            profile: "r".into(),
            required: true,
            path: None,
        }],
    };
    let r = resolve(&catalog, &kiosk, &[other.clone(), ch340.clone()]);
    assert_eq!(r.slots[0].device.as_ref(), Some(&ch340));
    assert_eq!(catalog.best_match(DeviceKind::IdCardReader, &other), None);

    let embedded = Catalog::embedded().expect("valid");
    let mut pinned = embedded.kiosk("kiosk-generic").expect("exists").clone();
    pinned.slots[0].path = Some("/dev/v4l/by-id/*Face*".into());
    let cams = [
        dev(Bus::V4l2, "/dev/v4l/by-id/usb-Doc-video-index0", None),
        dev(Bus::V4l2, "/dev/v4l/by-id/usb-Face-video-index0", None),
    ];
    let r = resolve(&embedded, &pinned, &cams);
    let path = |k| {
        r.slot(k)
            .and_then(|s| s.device.as_ref())
            .map(|d| d.path.clone())
    };
    assert_eq!(
        path(DeviceKind::Camera).as_deref(),
        Some("/dev/v4l/by-id/usb-Face-video-index0")
    );
    assert_eq!(
        path(DeviceKind::DocumentCamera).as_deref(),
        Some("/dev/v4l/by-id/usb-Doc-video-index0")
    );
}
