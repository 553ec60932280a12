//! Value checks that the file format's types cannot express: which sections a kind needs,
//! ranges, and references between kiosk and device profiles. Each failure names the field.

use std::collections::{BTreeMap, BTreeSet};

use protocol::device::DeviceKind;

use crate::model::*;

/// A problem with one field, before the file name is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub field: String,
    pub reason: String,
}

fn bad(field: impl Into<String>, reason: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

fn check(ok: bool, field: &str, reason: impl FnOnce() -> String) -> Result<(), Invalid> {
    if ok {
        Ok(())
    } else {
        Err(bad(field, reason()))
    }
}

const STANDARD_BAUDS: [u32; 10] = [
    1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800,
];

pub(crate) fn device(p: &DeviceProfile, stem: &str) -> Result<(), Invalid> {
    check(p.id == stem, "id", || {
        format!("{:?} must equal the file name {stem:?}", p.id)
    })?;
    check(!p.description.trim().is_empty(), "description", || {
        "must not be empty".into()
    })?;
    check(!p.rules.is_empty(), "match", || {
        "needs at least one [[match]] rule".into()
    })?;
    check(p.kind != DeviceKind::Screen, "kind", || {
        "the kiosk's own screen is not a profiled device".into()
    })?;

    let wants = |section: &str| -> bool {
        match p.kind {
            DeviceKind::Camera | DeviceKind::DocumentCamera => section == "video",
            DeviceKind::Microphone | DeviceKind::Speaker => section == "audio",
            DeviceKind::IdCardReader => section == "id_card" || section == "serial",
            DeviceKind::QrScanner => {
                section == "scanner"
                    || (section == "serial"
                        && p.scanner
                            .as_ref()
                            .is_some_and(|s| s.transport == ScannerTransport::Serial))
            }
            DeviceKind::Screen => false,
        }
    };
    let present = [
        ("video", p.video.is_some()),
        ("audio", p.audio.is_some()),
        ("serial", p.serial.is_some()),
        ("id_card", p.id_card.is_some()),
        ("scanner", p.scanner.is_some()),
    ];
    for (section, is_present) in present {
        if wants(section) && !is_present {
            return Err(bad(
                section,
                format!("a {} profile needs a [{section}] table", p.kind),
            ));
        }
        if !wants(section) && is_present {
            return Err(bad(
                section,
                format!("a {} profile must not have a [{section}] table", p.kind),
            ));
        }
    }
    for (i, rule) in p.rules.iter().enumerate() {
        match_rule(p, rule).map_err(|e| bad(format!("match[{i}].{}", e.field), e.reason))?;
    }
    if let Some(v) = &p.video {
        video(v).map_err(|e| bad(format!("video.{}", e.field), e.reason))?;
    }
    if let Some(a) = &p.audio {
        audio(a, p.kind).map_err(|e| bad(format!("audio.{}", e.field), e.reason))?;
    }
    if let Some(s) = &p.serial {
        serial(s).map_err(|e| bad(format!("serial.{}", e.field), e.reason))?;
    }
    if let Some(c) = &p.id_card {
        id_card(c).map_err(|e| bad(format!("id_card.{}", e.field), e.reason))?;
    }
    if let Some(s) = &p.scanner {
        scanner(s).map_err(|e| bad(format!("scanner.{}", e.field), e.reason))?;
    }
    Ok(())
}

fn match_rule(p: &DeviceProfile, rule: &MatchRule) -> Result<(), Invalid> {
    let expected_bus = if p.simulated {
        Bus::Simulated
    } else {
        match p.kind {
            DeviceKind::Camera | DeviceKind::DocumentCamera => Bus::V4l2,
            DeviceKind::Microphone => Bus::AlsaCapture,
            DeviceKind::Speaker => Bus::AlsaPlayback,
            DeviceKind::IdCardReader => Bus::Serial,
            DeviceKind::QrScanner => match p.scanner.as_ref().map(|s| s.transport) {
                Some(ScannerTransport::KeyboardWedge) => Bus::Evdev,
                _ => Bus::Serial,
            },
            // Refused above; no bus carries it.
            DeviceKind::Screen => Bus::Simulated,
        }
    };
    check(rule.bus == expected_bus, "bus", || {
        format!(
            "{:?} cannot carry this device; expected {expected_bus:?}",
            rule.bus
        )
    })?;
    for (field, pattern) in [("name", &rule.name), ("path", &rule.path)] {
        if let Some(pattern) = pattern {
            check(!pattern.trim().is_empty(), field, || {
                "pattern must not be empty".into()
            })?;
        }
    }
    if let Some(path) = &rule.path {
        check(path.starts_with('/'), "path", || {
            format!("{path:?} must be an absolute path pattern")
        })?;
    }
    Ok(())
}

fn video(v: &VideoSpec) -> Result<(), Invalid> {
    check(!v.formats.is_empty(), "formats", || {
        "must list at least one format".into()
    })?;
    check(unique(&v.formats), "formats", || {
        "lists a format twice".into()
    })?;
    check(unique(&v.resolutions), "resolutions", || {
        "lists a resolution twice".into()
    })?;
    check(!v.frame_rates.is_empty(), "frame_rates", || {
        "must list at least one rate".into()
    })?;
    for &r in &v.frame_rates {
        check((1..=120).contains(&r), "frame_rates", || {
            format!("{r} is outside 1–120 fps")
        })?;
    }
    let t = &v.self_test;
    check(
        (1..=120).contains(&t.min_frame_rate),
        "self_test.min_frame_rate",
        || format!("{} is outside 1–120 fps", t.min_frame_rate),
    )?;
    check(
        (0.0..=1.0).contains(&t.min_sharpness),
        "self_test.min_sharpness",
        || format!("{} is outside 0–1", t.min_sharpness),
    )?;
    check(
        t.mean_luma[0] < t.mean_luma[1],
        "self_test.mean_luma",
        || {
            format!(
                "[{}, {}] must be [low, high] with low < high",
                t.mean_luma[0], t.mean_luma[1]
            )
        },
    )?;
    if !v.resolutions.is_empty() {
        check(
            v.resolutions.iter().any(|r| r.covers(t.min_resolution)),
            "self_test.min_resolution",
            || {
                format!(
                    "{} is larger than every listed resolution",
                    t.min_resolution
                )
            },
        )?;
    }
    Ok(())
}

fn audio(a: &AudioSpec, kind: DeviceKind) -> Result<(), Invalid> {
    check(!a.sample_rates.is_empty(), "sample_rates", || {
        "must list at least one rate".into()
    })?;
    for &r in &a.sample_rates {
        check((8000..=192_000).contains(&r), "sample_rates", || {
            format!("{r} Hz is outside 8000–192000")
        })?;
    }
    check(!a.channels.is_empty(), "channels", || {
        "must list at least one count".into()
    })?;
    for &c in &a.channels {
        check((1..=8).contains(&c), "channels", || {
            format!("{c} is outside 1–8")
        })?;
    }
    let t = &a.self_test;
    check(
        (100..=8000).contains(&t.tone_hz),
        "self_test.tone_hz",
        || format!("{} is outside 100–8000 Hz", t.tone_hz),
    )?;
    check(
        (100..=10_000).contains(&t.tone_ms),
        "self_test.tone_ms",
        || format!("{} is outside 100–10000 ms", t.tone_ms),
    )?;
    match (kind, t.min_level_dbfs) {
        (DeviceKind::Microphone, Some(db)) => check(
            (-96.0..0.0).contains(&db),
            "self_test.min_level_dbfs",
            || format!("{db} is outside -96–0 dBFS"),
        ),
        (DeviceKind::Microphone, None) => Err(bad(
            "self_test.min_level_dbfs",
            "a microphone needs a level threshold",
        )),
        (_, Some(_)) => Err(bad(
            "self_test.min_level_dbfs",
            "only microphones have a level threshold",
        )),
        (_, None) => Ok(()),
    }
}

fn serial(s: &SerialSpec) -> Result<(), Invalid> {
    check(STANDARD_BAUDS.contains(&s.baud), "baud", || {
        format!("{} is not a standard rate ({STANDARD_BAUDS:?})", s.baud)
    })?;
    check((5..=8).contains(&s.data_bits), "data_bits", || {
        format!("{} is outside 5–8", s.data_bits)
    })?;
    check(matches!(s.stop_bits, 1 | 2), "stop_bits", || {
        format!("{} is neither 1 nor 2", s.stop_bits)
    })
}

fn id_card(c: &IdCardSpec) -> Result<(), Invalid> {
    check(c.poll_interval_ms >= 300, "poll_interval_ms", || {
        format!(
            "{} ms polls faster than the readers allow (300 ms minimum)",
            c.poll_interval_ms
        )
    })?;
    check(c.poll_interval_ms <= 5000, "poll_interval_ms", || {
        format!("{} ms is above 5000", c.poll_interval_ms)
    })?;
    check(
        (100..=10_000).contains(&c.reply_timeout_ms),
        "reply_timeout_ms",
        || format!("{} is outside 100–10000 ms", c.reply_timeout_ms),
    )
}

fn scanner(s: &ScannerSpec) -> Result<(), Invalid> {
    check((1..=65_536).contains(&s.max_length), "max_length", || {
        format!("{} is outside 1–65536", s.max_length)
    })?;
    check((20..=2000).contains(&s.idle_gap_ms), "idle_gap_ms", || {
        format!("{} is outside 20–2000 ms", s.idle_gap_ms)
    })?;
    match s.transport {
        ScannerTransport::KeyboardWedge => {
            check(s.keyboard_layout.is_some(), "keyboard_layout", || {
                "a keyboard wedge needs a layout".into()
            })?;
            check(s.terminator != Terminator::Newline, "terminator", || {
                "a keyboard wedge ends scans with \"enter\" or \"none\"".into()
            })?;
        }
        ScannerTransport::Serial => {
            check(s.keyboard_layout.is_none(), "keyboard_layout", || {
                "only keyboard wedges have a layout".into()
            })?;
            check(!s.grab, "grab", || {
                "only keyboard wedges can be grabbed".into()
            })?;
            check(s.terminator != Terminator::Enter, "terminator", || {
                "a serial scanner ends scans with \"newline\" or \"none\"".into()
            })?;
        }
    }
    check(
        (1000..=600_000).contains(&s.self_test.scan_timeout_ms),
        "self_test.scan_timeout_ms",
        || format!("{} is outside 1000–600000 ms", s.self_test.scan_timeout_ms),
    )
}

pub(crate) fn kiosk(
    k: &KioskProfile,
    stem: &str,
    devices: &BTreeMap<String, DeviceProfile>,
) -> Result<(), Invalid> {
    check(k.id == stem, "id", || {
        format!("{:?} must equal the file name {stem:?}", k.id)
    })?;
    check(!k.description.trim().is_empty(), "description", || {
        "must not be empty".into()
    })?;
    check(!k.slots.is_empty(), "device", || {
        "needs at least one [[device]]".into()
    })?;
    let mut kinds = BTreeSet::new();
    for (i, slot) in k.slots.iter().enumerate() {
        let field = |f: &str| format!("device[{i}].{f}");
        let Some(profile) = devices.get(&slot.profile) else {
            return Err(bad(
                field("profile"),
                format!("no device profile {:?}", slot.profile),
            ));
        };
        check(profile.kind == slot.kind, &field("profile"), || {
            format!(
                "{:?} is a {} profile, not {}",
                slot.profile, profile.kind, slot.kind
            )
        })?;
        check(kinds.insert(slot.kind), &field("kind"), || {
            format!("{} appears twice", slot.kind)
        })?;
        if let Some(path) = &slot.path {
            check(path.starts_with('/'), &field("path"), || {
                format!("{path:?} must be an absolute path pattern")
            })?;
        }
    }
    Ok(())
}

fn unique<T: PartialEq>(items: &[T]) -> bool {
    items
        .iter()
        .enumerate()
        .all(|(i, a)| !items[..i].contains(a))
}
