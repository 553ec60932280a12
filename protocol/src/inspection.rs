//! Inspection records (巡检记录): the result of a kiosk self-test, filed at the centre.
//!
//! The agent's self-test (`agent selftest`, run by a field technician or daily without the
//! interactive steps) uploads one [`InspectionReport`] to the relay with
//! `POST /api/v1/inspections`, authenticated with the kiosk's own device credential
//! (`Authorization: Bearer <device_id>:<secret>`). The relay answers with an
//! [`InspectionReceipt`]. The relay works out the overall result from the checks itself.
//!
//! Results use the vocabulary of the self-test (pass / warn / fail / skipped); device states in
//! the text follow XFS4IoT (`online`, `no_device`, `hardware_error`, …).
//!
//! Unknown-field policy: unknown fields are ignored. Limits ([`MAX_CHECKS`], [`MAX_TEXT_CHARS`],
//! [`MAX_TECHNICIAN_CHARS`]) are checked by the relay, which refuses a report that breaks them.
//!
//! Never put residents' data here: a self-test uses test cards and test codes only.

use serde::{Deserialize, Serialize};

use crate::device::DeviceKind;

/// Most checks in one report.
pub const MAX_CHECKS: usize = 100;
/// Longest free text (detail, remedy, names of checks), in characters.
pub const MAX_TEXT_CHARS: usize = 500;
/// Longest technician name, in characters.
pub const MAX_TECHNICIAN_CHARS: usize = 32;
/// Most measurements per check.
pub const MAX_MEASUREMENTS: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    /// Not run (e.g. an interactive step in the automatic daily run). Never worse than pass.
    Skipped,
    Pass,
    /// Works, but needs attention soon (e.g. a dim document camera).
    Warn,
    /// Does not work.
    Fail,
}

impl CheckOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckOutcome::Skipped => "skipped",
            CheckOutcome::Pass => "pass",
            CheckOutcome::Warn => "warn",
            CheckOutcome::Fail => "fail",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "skipped" => CheckOutcome::Skipped,
            "pass" => CheckOutcome::Pass,
            "warn" => CheckOutcome::Warn,
            "fail" => CheckOutcome::Fail,
            _ => return None,
        })
    }

    /// 通过 / 警告 / 失败 / 未执行
    pub fn name_zh(self) -> &'static str {
        match self {
            CheckOutcome::Skipped => "未执行",
            CheckOutcome::Pass => "通过",
            CheckOutcome::Warn => "警告",
            CheckOutcome::Fail => "失败",
        }
    }
}

/// The name of a self-test check, Chinese and English, for tables and pages (the kiosk's
/// report and the operations console's inspection records); `None` for an id this version
/// does not know.
pub fn check_name(id: &str) -> Option<(&'static str, &'static str)> {
    Some(match id {
        "camera.mode" => ("摄像头 模式", "camera mode"),
        "camera.frames" => ("摄像头 画面", "camera picture"),
        "document_camera.still" => ("高拍仪 拍照", "document camera still"),
        "document_camera.image" => ("高拍仪 清晰度与曝光", "document camera focus and exposure"),
        "microphone.level" => ("麦克风 音量", "microphone level"),
        "speaker.loop" => ("扬声器→麦克风 回路", "speaker to microphone loop"),
        "id_card_reader.sam" => ("身份证阅读器 安全模块", "ID card reader SAM"),
        "id_card_reader.read" => ("身份证阅读器 读卡", "ID card reader test card"),
        "qr_scanner.present" => ("扫码器 连接", "QR scanner present"),
        "qr_scanner.decode" => ("扫码器 扫码", "QR scanner test code"),
        "network.https" => ("网络 HTTPS 与证书", "network HTTPS and certificate"),
        "network.login" => ("网络 设备登录", "network device login"),
        "network.media_udp" => ("网络 媒体 UDP", "network media UDP"),
        "network.turn" => ("网络 TURN 中继", "network TURN relay"),
        "network.rtt" => ("网络 往返时延", "network round-trip time"),
        "network.uplink" => ("网络 上行带宽", "network uplink"),
        "network.clock" => ("时钟 与中继的偏差", "clock offset to the relay"),
        "system.disk" => ("系统 磁盘空间", "system free disk"),
        "system.media" => ("系统 音视频组件", "system media plugins"),
        "system.versions" => ("系统 版本", "system versions"),
        _ => return None,
    })
}

/// Text for people, Chinese first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bilingual {
    pub zh: String,
    #[serde(default)]
    pub en: String,
}

/// A measured value, e.g. `{"name": "rtt", "value": 23.0, "unit": "ms"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub name: String,
    pub value: f64,
    #[serde(default)]
    pub unit: String,
}

/// One check of the self-test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Stable id, e.g. `camera.frames`, `network.turn`.
    pub id: String,
    /// The device checked; none for network, disk and version checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceKind>,
    pub outcome: CheckOutcome,
    /// What was found.
    #[serde(default)]
    pub detail: Bilingual,
    /// What to do about a warning or failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remedy: Option<Bilingual>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<Measurement>,
}

/// A self-test result as the agent uploads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InspectionReport {
    /// The technician who ran it (巡检人员). May be empty only when `automatic`.
    #[serde(default)]
    pub technician: String,
    /// The daily self-test without interactive steps.
    #[serde(default)]
    pub automatic: bool,
    pub started_ms: i64,
    pub finished_ms: i64,
    #[serde(default)]
    pub agent_version: String,
    /// The resolved device profile, e.g. `simulated-kiosk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    pub checks: Vec<CheckResult>,
}

impl InspectionReport {
    /// The worst outcome of any check (`skipped` counts as nothing); `pass` for no checks.
    pub fn overall(&self) -> CheckOutcome {
        self.checks
            .iter()
            .map(|c| c.outcome)
            .max()
            .map_or(CheckOutcome::Pass, |o| o.max(CheckOutcome::Pass))
    }
}

/// The relay's answer to an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InspectionReceipt {
    pub id: i64,
    pub overall: CheckOutcome,
    pub received_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(outcome: CheckOutcome) -> CheckResult {
        CheckResult {
            id: "camera.frames".into(),
            device: Some(DeviceKind::Camera),
            outcome,
            detail: Bilingual::default(),
            remedy: None,
            measurements: vec![],
        }
    }

    #[test]
    fn overall_is_the_worst_check() {
        let mut r = InspectionReport {
            technician: "赵磊".into(),
            automatic: false,
            started_ms: 1,
            finished_ms: 2,
            agent_version: "0.1.0".into(),
            profile: None,
            checks: vec![],
        };
        assert_eq!(r.overall(), CheckOutcome::Pass);
        r.checks.push(check(CheckOutcome::Skipped));
        assert_eq!(r.overall(), CheckOutcome::Pass);
        r.checks.push(check(CheckOutcome::Warn));
        assert_eq!(r.overall(), CheckOutcome::Warn);
        r.checks.push(check(CheckOutcome::Fail));
        r.checks.push(check(CheckOutcome::Pass));
        assert_eq!(r.overall(), CheckOutcome::Fail);
    }

    #[test]
    fn golden_json() {
        let r = InspectionReport {
            technician: "赵磊".into(),
            automatic: false,
            started_ms: 1_700_000_000_000,
            finished_ms: 1_700_000_030_000,
            agent_version: "0.1.0".into(),
            profile: Some("simulated-kiosk".into()),
            checks: vec![CheckResult {
                id: "network.rtt".into(),
                device: None,
                outcome: CheckOutcome::Warn,
                detail: Bilingual {
                    zh: "往返时延偏高".into(),
                    en: "high round-trip time".into(),
                },
                remedy: Some(Bilingual {
                    zh: "检查网络".into(),
                    en: "check the network".into(),
                }),
                measurements: vec![Measurement {
                    name: "rtt".into(),
                    value: 350.0,
                    unit: "ms".into(),
                }],
            }],
        };
        let json = serde_json::to_string(&r).expect("serialise");
        assert_eq!(
            json,
            r#"{"technician":"赵磊","automatic":false,"started_ms":1700000000000,"finished_ms":1700000030000,"agent_version":"0.1.0","profile":"simulated-kiosk","checks":[{"id":"network.rtt","outcome":"warn","detail":{"zh":"往返时延偏高","en":"high round-trip time"},"remedy":{"zh":"检查网络","en":"check the network"},"measurements":[{"name":"rtt","value":350.0,"unit":"ms"}]}]}"#
        );
        let back: InspectionReport = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, r);
        // Unknown fields are ignored; optional ones may be missing.
        let minimal: InspectionReport = serde_json::from_str(
            r#"{"started_ms":1,"finished_ms":2,"checks":[{"id":"disk","outcome":"pass","x":1}],"y":2}"#,
        )
        .expect("minimal report");
        assert!(minimal.technician.is_empty() && !minimal.automatic);
    }
}
