//! Building check results: outcome, what was found and what to do, in Chinese and English, and
//! the measurements behind them. Also the names the table shows for each check id.

use std::future::Future;
use std::time::Duration;

use protocol::device::DeviceKind;
use protocol::inspection::{Bilingual, CheckOutcome, CheckResult, Measurement};

pub fn bi(zh: impl Into<String>, en: impl Into<String>) -> Bilingual {
    Bilingual {
        zh: zh.into(),
        en: en.into(),
    }
}

/// One check's result under construction.
pub struct Check {
    id: &'static str,
    device: Option<DeviceKind>,
    measurements: Vec<Measurement>,
}

impl Check {
    pub fn new(id: &'static str, device: Option<DeviceKind>) -> Check {
        Check {
            id,
            device,
            measurements: Vec::new(),
        }
    }

    /// Adds a measured value; non-finite values are left out (the relay refuses them).
    pub fn measure(mut self, name: &str, value: f64, unit: &str) -> Check {
        if value.is_finite() {
            self.measurements.push(Measurement {
                name: name.to_owned(),
                value: (value * 1000.0).round() / 1000.0,
                unit: unit.to_owned(),
            });
        }
        self
    }

    fn done(
        self,
        outcome: CheckOutcome,
        detail: Bilingual,
        remedy: Option<Bilingual>,
    ) -> CheckResult {
        CheckResult {
            id: self.id.to_owned(),
            device: self.device,
            outcome,
            detail: clean(detail),
            remedy: remedy.map(clean),
            measurements: self.measurements,
        }
    }

    pub fn pass(self, detail: Bilingual) -> CheckResult {
        self.done(CheckOutcome::Pass, detail, None)
    }

    pub fn warn(self, detail: Bilingual, remedy: Bilingual) -> CheckResult {
        self.done(CheckOutcome::Warn, detail, Some(remedy))
    }

    pub fn fail(self, detail: Bilingual, remedy: Bilingual) -> CheckResult {
        self.done(CheckOutcome::Fail, detail, Some(remedy))
    }

    pub fn skipped(self, detail: Bilingual) -> CheckResult {
        self.done(CheckOutcome::Skipped, detail, None)
    }

    /// Pass, warn or fail by `outcome`; a remedy only where something is wrong.
    pub fn outcome(
        self,
        outcome: CheckOutcome,
        detail: Bilingual,
        remedy: Bilingual,
    ) -> CheckResult {
        match outcome {
            CheckOutcome::Pass | CheckOutcome::Skipped => self.done(outcome, detail, None),
            _ => self.done(outcome, detail, Some(remedy)),
        }
    }
}

/// The relay refuses control characters and texts over 500 characters: keep to one line and
/// cut long driver messages.
fn clean(mut b: Bilingual) -> Bilingual {
    let tidy = |s: &str| -> String {
        let one_line: String = s
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        one_line.chars().take(400).collect()
    };
    b.zh = tidy(&b.zh);
    b.en = tidy(&b.en);
    b
}

/// Runs a check with a time limit; when it runs out, the check fails as timed out.
pub async fn limited<F>(
    id: &'static str,
    device: Option<DeviceKind>,
    limit: Duration,
    check: F,
) -> CheckResult
where
    F: Future<Output = CheckResult>,
{
    match tokio::time::timeout(limit, check).await {
        Ok(result) => result,
        Err(_) => timed_out(id, device, limit),
    }
}

/// Like [`limited`] for a step that yields several checks; on timeout, `ids` all fail.
pub async fn limited_many<F>(
    ids: &[&'static str],
    device: Option<DeviceKind>,
    limit: Duration,
    checks: F,
) -> Vec<CheckResult>
where
    F: Future<Output = Vec<CheckResult>>,
{
    match tokio::time::timeout(limit, checks).await {
        Ok(results) => results,
        Err(_) => ids.iter().map(|id| timed_out(id, device, limit)).collect(),
    }
}

pub fn timed_out(id: &'static str, device: Option<DeviceKind>, limit: Duration) -> CheckResult {
    Check::new(id, device).fail(
        bi(
            format!("检查未在 {} 秒内完成", limit.as_secs().max(1)),
            format!(
                "the check did not finish within {} s",
                limit.as_secs().max(1)
            ),
        ),
        bi(
            "设备可能无响应：重新插拔设备或重启终端后再检查",
            "the device may be hung: replug it or restart the kiosk, then check again",
        ),
    )
}

/// A blocking step on a worker thread; a panic in it is a failed check, not a crashed run.
pub async fn blocking<T: Send + 'static>(
    id: &'static str,
    device: Option<DeviceKind>,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, CheckResult> {
    tokio::task::spawn_blocking(f).await.map_err(|_| {
        Check::new(id, device).fail(
            bi("检查程序内部错误", "the check failed internally"),
            bi(
                "请把终端日志交给维护人员",
                "send the agent's log to maintenance",
            ),
        )
    })
}

/// Names of the checks, Chinese and English, for tables and pages.
pub fn name(id: &str) -> (&'static str, &'static str) {
    protocol::inspection::check_name(id).unwrap_or(("其他检查", "other check"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_one_line_and_bounded() {
        let r = Check::new("system.disk", None)
            .measure("free", 1.23456, "GB")
            .measure("nan", f64::NAN, "")
            .warn(bi("第一行\n第二行", "x".repeat(600)), bi("a\tb", "c"));
        assert_eq!(r.detail.zh, "第一行 第二行");
        assert_eq!(r.detail.en.chars().count(), 400);
        assert_eq!(r.remedy.as_ref().map(|b| b.zh.as_str()), Some("a b"));
        assert_eq!(r.measurements.len(), 1);
        assert_eq!(r.measurements[0].value, 1.235);
    }

    #[tokio::test]
    async fn a_check_that_runs_too_long_fails() {
        let r = limited(
            "camera.frames",
            Some(DeviceKind::Camera),
            Duration::from_millis(50),
            async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Check::new("camera.frames", None).pass(bi("", ""))
            },
        )
        .await;
        assert_eq!(r.outcome, CheckOutcome::Fail);
        assert!(r.detail.en.contains("within 1 s"), "{:?}", r.detail);
    }

    #[test]
    fn every_check_has_a_name() {
        for id in super::super::ORDER {
            assert_ne!(name(id).0, "其他检查", "{id}");
        }
    }
}
