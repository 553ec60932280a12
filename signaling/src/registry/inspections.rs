//! Inspection records (巡检记录): checks on a self-test result a kiosk uploads, before it is
//! filed. The relay computes the overall result itself from the checks.

use protocol::inspection::{
    InspectionReport, MAX_CHECKS, MAX_MEASUREMENTS, MAX_TECHNICIAN_CHARS, MAX_TEXT_CHARS,
};

use super::rules;

/// How far the report's times may lie ahead of the relay's clock (a kiosk clock running fast).
const MAX_CLOCK_AHEAD_MS: i64 = 10 * 60 * 1000;

/// Checks a report against the limits of `protocol::inspection`; returns the report with the
/// technician's name trimmed, or why it is refused (Chinese first).
pub fn check(mut report: InspectionReport, now_ms: i64) -> Result<InspectionReport, String> {
    report.technician = rules::text(&report.technician, MAX_TECHNICIAN_CHARS, !report.automatic)
        .map_err(|e| format!("巡检人员姓名 / technician: {e}"))?;
    if report.checks.is_empty() || report.checks.len() > MAX_CHECKS {
        return Err(format!(
            "检查项须为1至{MAX_CHECKS}项 / a report has 1 to {MAX_CHECKS} checks"
        ));
    }
    if report.started_ms <= 0
        || report.finished_ms < report.started_ms
        || report.finished_ms > now_ms + MAX_CLOCK_AHEAD_MS
    {
        return Err("开始、结束时间不合理 / implausible start or finish time".into());
    }
    let long = |s: &str| s.chars().count() > MAX_TEXT_CHARS || s.chars().any(char::is_control);
    for c in &report.checks {
        let texts = [
            Some(c.id.as_str()),
            Some(c.detail.zh.as_str()),
            Some(c.detail.en.as_str()),
            c.remedy.as_ref().map(|r| r.zh.as_str()),
            c.remedy.as_ref().map(|r| r.en.as_str()),
        ];
        if c.id.trim().is_empty() || texts.into_iter().flatten().any(long) {
            return Err(format!(
                "检查项文字为空或过长（最多{MAX_TEXT_CHARS}字）/ a check's text is empty or too long"
            ));
        }
        if c.measurements.len() > MAX_MEASUREMENTS
            || c.measurements
                .iter()
                .any(|m| !m.value.is_finite() || long(&m.name) || long(&m.unit))
        {
            return Err("测量值无效 / invalid measurements".into());
        }
    }
    if long(&report.agent_version) || report.profile.as_deref().is_some_and(long) {
        return Err("版本信息过长 / version text too long".into());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use protocol::inspection::{Bilingual, CheckOutcome, CheckResult, Measurement};

    use super::*;

    fn report() -> InspectionReport {
        InspectionReport {
            technician: " 赵磊 ".into(),
            automatic: false,
            started_ms: 1_000,
            finished_ms: 2_000,
            agent_version: "0.1.0".into(),
            profile: None,
            checks: vec![CheckResult {
                id: "camera.frames".into(),
                device: None,
                outcome: CheckOutcome::Pass,
                detail: Bilingual::default(),
                remedy: None,
                measurements: vec![],
            }],
        }
    }

    #[test]
    fn a_good_report_is_filed_with_the_name_trimmed() {
        assert_eq!(
            check(report(), 3_000).map(|r| r.technician),
            Ok("赵磊".into())
        );
    }

    #[test]
    fn refusals() {
        type Breakage = Box<dyn Fn(&mut InspectionReport)>;
        let bad: Vec<(&str, Breakage)> = vec![
            ("no technician", Box::new(|r| r.technician = " ".into())),
            (
                "long technician",
                Box::new(|r| r.technician = "赵".repeat(33)),
            ),
            ("no checks", Box::new(|r| r.checks.clear())),
            (
                "too many checks",
                Box::new(|r| r.checks = vec![r.checks[0].clone(); 101]),
            ),
            ("finish before start", Box::new(|r| r.finished_ms = 500)),
            (
                "from the future",
                Box::new(|r| r.finished_ms = 3_000 + 11 * 60 * 1000),
            ),
            ("empty id", Box::new(|r| r.checks[0].id = " ".into())),
            (
                "long detail",
                Box::new(|r| r.checks[0].detail.zh = "字".repeat(501)),
            ),
            (
                "line break",
                Box::new(|r| r.checks[0].detail.en = "a\nb".into()),
            ),
            (
                "NaN",
                Box::new(|r| {
                    r.checks[0].measurements.push(Measurement {
                        name: "rtt".into(),
                        value: f64::NAN,
                        unit: "ms".into(),
                    })
                }),
            ),
        ];
        for (what, change) in bad {
            let mut r = report();
            change(&mut r);
            assert!(check(r, 3_000).is_err(), "accepted: {what}");
        }
        let mut automatic = report();
        automatic.automatic = true;
        automatic.technician.clear();
        assert!(
            check(automatic, 3_000).is_ok(),
            "the daily run has no technician"
        );
    }
}
