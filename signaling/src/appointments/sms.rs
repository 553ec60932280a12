//! Sending verification codes. [`SmsSender`] is the seam an SMS gateway plugs into; the
//! relay ships only [`DevSms`], for development and tests: it logs that a code went out with
//! the number masked (never the full number) and appends `{"to": "138****5678", "code": …}`
//! to an outbox file (mode 0600) that tests read. It sends nothing.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use tracing::info;

use super::codes::mask_mobile;

#[derive(Debug, thiserror::Error)]
#[error("the verification code could not be sent: {0}")]
pub struct SmsError(pub String);

#[async_trait]
pub trait SmsSender: Send + Sync + 'static {
    /// Sends `code` to `mobile` (11 digits, checked). Must not log the number in full.
    async fn send_code(&self, mobile: &str, code: &str) -> Result<(), SmsError>;
}

/// The development sender (see the module documentation).
pub struct DevSms {
    outbox: Option<PathBuf>,
    lock: Mutex<()>,
}

impl DevSms {
    /// `outbox`: the file codes are appended to (none: log only).
    pub fn new(outbox: Option<PathBuf>) -> Self {
        Self {
            outbox,
            lock: Mutex::new(()),
        }
    }

    fn append(&self, line: &str) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let Some(path) = &self.outbox else {
            return Ok(());
        };
        // One writer at a time so lines never interleave; the lock is not held across an await.
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        writeln!(file, "{line}")
    }
}

#[async_trait]
impl SmsSender for DevSms {
    async fn send_code(&self, mobile: &str, code: &str) -> Result<(), SmsError> {
        let to = mask_mobile(mobile);
        info!(to = %to, code = %code, "development SMS: verification code (not sent)");
        let line = serde_json::json!({ "to": to, "code": code }).to_string();
        self.append(&line).map_err(|e| SmsError(e.to_string()))
    }
}

/// The last code the development outbox holds for a masked number (tests).
pub fn read_dev_outbox(path: &std::path::Path, masked: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().rev().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        (v["to"] == masked).then(|| v["code"].as_str().map(str::to_owned))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_dev_sender_keeps_the_number_masked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sms.jsonl");
        let sms = DevSms::new(Some(path.clone()));
        sms.send_code("13812345678", "123456").await.expect("sent");
        sms.send_code("13812345678", "654321").await.expect("sent");
        let text = std::fs::read_to_string(&path).expect("outbox");
        assert!(!text.contains("13812345678"), "{text}");
        assert_eq!(
            read_dev_outbox(&path, "138****5678").as_deref(),
            Some("654321")
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o077, 0);
    }
}
