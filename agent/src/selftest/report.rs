//! The self-test result for people: a table, Chinese first, and the JSON form `--json` prints.

use protocol::inspection::{CheckOutcome, InspectionReceipt, InspectionReport};
use serde::Serialize;

use super::check::name;

/// What `agent selftest --json` prints: the report, its overall result, and where it was filed.
#[derive(Debug, Clone, Serialize)]
pub struct Printed<'a> {
    pub overall: CheckOutcome,
    pub report: &'a InspectionReport,
    pub upload: UploadOutcome,
}

/// Whether the record reached the relay.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum UploadOutcome {
    Filed { receipt: InspectionReceipt },
    Failed { message: String },
    NotRequested,
}

/// Display width of `s` in a terminal: CJK and full-width characters take two columns.
pub fn width(s: &str) -> usize {
    s.chars().map(|c| if wide(c) { 2 } else { 1 }).sum()
}

fn wide(c: char) -> bool {
    matches!(u32::from(c),
        0x1100..=0x115F | 0x2E80..=0x303E | 0x3041..=0x33FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6 | 0x20000..=0x3FFFD)
}

fn pad(s: &str, to: usize) -> String {
    format!("{s}{}", " ".repeat(to.saturating_sub(width(s))))
}

fn outcome_cell(o: CheckOutcome) -> String {
    let en = match o {
        CheckOutcome::Pass => "PASS",
        CheckOutcome::Warn => "WARN",
        CheckOutcome::Fail => "FAIL",
        CheckOutcome::Skipped => "SKIP",
    };
    format!("{} {en}", o.name_zh())
}

/// The table: one row per check (Chinese name and finding, then the English), and under each
/// warning or failure what to do.
pub fn table(report: &InspectionReport, header: &str) -> String {
    let mut out = String::new();
    out.push_str(header);
    out.push('\n');
    let name_w = report
        .checks
        .iter()
        .map(|c| width(name(&c.id).0).max(width(name(&c.id).1)))
        .max()
        .unwrap_or(10)
        .max(width("检查项 Check"));
    let result_w = 11;
    out.push_str(&format!(
        "{}  {}  详情 Detail\n",
        pad("检查项 Check", name_w),
        pad("结果 Result", result_w)
    ));
    out.push_str(&format!(
        "{}  {}  {}\n",
        "─".repeat(name_w),
        "─".repeat(result_w),
        "─".repeat(40)
    ));
    for c in &report.checks {
        let (zh, en) = name(&c.id);
        out.push_str(&format!(
            "{}  {}  {}\n",
            pad(zh, name_w),
            pad(&outcome_cell(c.outcome), result_w),
            c.detail.zh
        ));
        out.push_str(&format!(
            "{}  {}  {}\n",
            pad(en, name_w),
            pad("", result_w),
            c.detail.en
        ));
        if let Some(r) = &c.remedy {
            let indent = " ".repeat(name_w + result_w + 4);
            out.push_str(&format!(
                "{indent}处理：{}\n{indent}Remedy: {}\n",
                r.zh, r.en
            ));
        }
    }
    let count = |o: CheckOutcome| report.checks.iter().filter(|c| c.outcome == o).count();
    let overall = report.overall();
    out.push_str(&format!(
        "\n总体结果 Overall: {} {}   （通过 {} · 警告 {} · 失败 {} · 未执行 {}）  用时 {:.1} 秒\n",
        overall.name_zh(),
        overall.as_str(),
        count(CheckOutcome::Pass),
        count(CheckOutcome::Warn),
        count(CheckOutcome::Fail),
        count(CheckOutcome::Skipped),
        (report.finished_ms - report.started_ms) as f64 / 1000.0,
    ));
    // The table is longer than a terminal: what needs doing, once more at the end.
    let to_fix: Vec<String> = report
        .checks
        .iter()
        .filter(|c| matches!(c.outcome, CheckOutcome::Fail | CheckOutcome::Warn))
        .map(|c| format!("{}（{}）", name(&c.id).0, c.outcome.name_zh()))
        .collect();
    if !to_fix.is_empty() {
        out.push_str(&format!(
            "需处理 To fix: {}（处理方法见上表 / remedies above）\n",
            to_fix.join("、")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selftest::check::{Check, bi};

    #[test]
    fn widths_and_table() {
        assert_eq!(width("摄像头 ab"), 9);
        let report = InspectionReport {
            technician: "张工".into(),
            automatic: false,
            started_ms: 1_000,
            finished_ms: 13_500,
            agent_version: "0.1.0".into(),
            profile: Some("kiosk-simulated".into()),
            checks: vec![
                Check::new("camera.frames", None)
                    .fail(bi("画面全黑", "black"), bi("检查镜头", "check the lens")),
                Check::new("system.disk", None).pass(bi("磁盘剩余 20 GiB", "20 GiB free")),
            ],
        };
        let t = table(&report, "终端自检");
        assert!(
            t.contains("摄像头 画面") && t.contains("失败 FAIL") && t.contains("处理：检查镜头")
        );
        assert!(t.contains("总体结果 Overall: 失败 fail") && t.contains("用时 12.5 秒"));
        assert!(t.contains("需处理 To fix: 摄像头 画面（失败）（"), "{t}");
        assert!(
            !t.contains("系统 磁盘空间（"),
            "passed checks are not listed"
        );
        // Chinese comes first on each row pair.
        assert!(t.find("画面全黑").expect("zh") < t.find("black").expect("en"));
        let printed = Printed {
            overall: report.overall(),
            report: &report,
            upload: UploadOutcome::NotRequested,
        };
        let json = serde_json::to_value(&printed).expect("json");
        assert_eq!(json["overall"], "fail");
        assert_eq!(json["upload"]["state"], "not_requested");
    }
}
