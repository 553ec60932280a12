//! Uploads of device results (document stills, snapshots, the ID card photo) to the relay over
//! HTTPS: `POST /api/v1/uploads?kind=…` authenticated as this kiosk
//! (`Authorization: Bearer device_id:secret`), with the SHA-256 in `x-content-sha256`. The relay
//! verifies the hash, stores the object encrypted in the case of the ticket this kiosk is being
//! served for, and answers with its id and the hash it computed.
//!
//! Failed attempts (network errors, 5xx, 429) are retried with exponential backoff; a 4xx
//! other than 429 is final. The bytes exist only in memory here and are zeroed once the relay
//! confirmed the upload (or the upload finally failed): the kiosk keeps no copy.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use protocol::Pii;
use protocol::device::ImageSize;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::link::config::{Credential, RelayConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadKind {
    Document,
    Snapshot,
    IdPhoto,
}

impl UploadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadKind::Document => "document",
            UploadKind::Snapshot => "snapshot",
            UploadKind::IdPhoto => "id_photo",
        }
    }
}

/// One object to upload. The bytes are personal data.
pub struct UploadItem {
    pub kind: UploadKind,
    pub mime: &'static str,
    pub bytes: Pii<Vec<u8>>,
    pub size: Option<ImageSize>,
}

impl UploadItem {
    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(self.bytes.expose()))
    }
}

impl Drop for UploadItem {
    fn drop(&mut self) {
        // The kiosk's copy goes once the relay has it (or the upload gave up).
        let mut bytes = std::mem::take(&mut self.bytes).into_inner();
        bytes.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&bytes);
    }
}

/// The relay's confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UploadReceipt {
    pub upload_id: String,
    pub sha256: String,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("上传被中继拒绝（{status}）/ the relay refused the upload ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("上传失败 / upload failed after {attempts} attempts: {last}")]
    Failed { attempts: u32, last: String },
    #[error("中继确认的校验值不符 / the relay confirmed a different SHA-256")]
    HashMismatch,
    #[error("上传未配置 / uploads are not configured: {0}")]
    Setup(String),
}

#[async_trait]
pub trait Uploader: Send + Sync {
    async fn upload(&self, item: UploadItem) -> Result<UploadReceipt, UploadError>;
}

/// Uploads to the relay over HTTPS.
pub struct HttpsUploader {
    client: reqwest::Client,
    endpoint: String,
    authorization: Pii<String>,
    attempts: u32,
    first_backoff: Duration,
}

impl HttpsUploader {
    /// `tls` is the control link's TLS configuration (same roots, same relay certificate).
    pub fn new(
        relay: &RelayConfig,
        credential: &Credential,
        tls: Option<Arc<rustls::ClientConfig>>,
        timeout: Duration,
    ) -> Result<Self, UploadError> {
        let mut url = url::Url::parse(&relay.url).map_err(|e| UploadError::Setup(e.to_string()))?;
        let scheme = match url.scheme() {
            "wss" => "https",
            "ws" => "http",
            other => return Err(UploadError::Setup(format!("scheme {other}"))),
        };
        url.set_scheme(scheme)
            .map_err(|()| UploadError::Setup("scheme".into()))?;
        url.set_path("/api/v1/uploads");
        url.set_query(None);
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(relay.connect_timeout_secs));
        if let Some(tls) = tls {
            builder = builder.tls_backend_preconfigured((*tls).clone());
        }
        let client = builder
            .build()
            .map_err(|e| UploadError::Setup(e.to_string()))?;
        Ok(HttpsUploader {
            client,
            endpoint: url.to_string(),
            authorization: Pii::new(format!(
                "Bearer {}:{}",
                credential.device_id,
                credential.secret.expose()
            )),
            attempts: 4,
            first_backoff: Duration::from_millis(250),
        })
    }

    async fn attempt(&self, item: &UploadItem, sha: &str) -> Result<UploadReceipt, (bool, String)> {
        let mut request = self
            .client
            .post(format!("{}?kind={}", self.endpoint, item.kind.as_str()))
            .header("authorization", self.authorization.expose().as_str())
            .header("content-type", item.mime)
            .header("x-content-sha256", sha)
            .body(item.bytes.expose().clone());
        if let Some(size) = item.size {
            request = request
                .header("x-image-width", size.width)
                .header("x-image-height", size.height);
        }
        let response = request.send().await.map_err(|e| (true, e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            return response
                .json::<UploadReceipt>()
                .await
                .map_err(|e| (true, e.to_string()));
        }
        let retry = status.is_server_error() || status.as_u16() == 429;
        let message = response
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_default();
        Err((retry, format!("{}: {message}", status.as_u16())))
    }
}

#[async_trait]
impl Uploader for HttpsUploader {
    async fn upload(&self, item: UploadItem) -> Result<UploadReceipt, UploadError> {
        let sha = item.sha256();
        let mut backoff = self.first_backoff;
        let mut last = String::new();
        let started = std::time::Instant::now();
        for attempt in 1..=self.attempts {
            match self.attempt(&item, &sha).await {
                Ok(receipt) if receipt.sha256 == sha => {
                    tracing::info!(
                        kind = item.kind.as_str(),
                        bytes = receipt.bytes,
                        attempts = attempt,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "upload confirmed"
                    );
                    return Ok(receipt);
                }
                Ok(_) => return Err(UploadError::HashMismatch),
                Err((false, message)) => {
                    let status = message
                        .split(':')
                        .next()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    return Err(UploadError::Refused { status, message });
                }
                Err((true, message)) => {
                    tracing::warn!(attempt, kind = item.kind.as_str(), error = %message, "upload attempt failed");
                    last = message;
                    if attempt < self.attempts {
                        tokio::time::sleep(backoff).await;
                        backoff *= 2;
                    }
                }
            }
        }
        Err(UploadError::Failed {
            attempts: self.attempts,
            last,
        })
    }
}

/// The kiosk's uploader: HTTPS to the relay with the control link's TLS settings; when that
/// cannot be set up, one that fails every upload with the reason, so device commands complete
/// with an error instead of the agent refusing to start.
pub fn relay_uploader(
    relay: &RelayConfig,
    credential: &Credential,
    connector: &tokio_tungstenite::Connector,
    timeout: Duration,
) -> Arc<dyn Uploader> {
    let tls = match connector {
        tokio_tungstenite::Connector::Rustls(c) => Some(c.clone()),
        _ => None,
    };
    match HttpsUploader::new(relay, credential, tls, timeout) {
        Ok(u) => Arc::new(u),
        Err(e) => {
            tracing::warn!(error = %e, "uploads are off");
            Arc::new(MemoryUploader {
                fail: std::sync::Mutex::new(Some(e.to_string())),
                ..Default::default()
            })
        }
    }
}

/// Keeps uploads in memory, for tests and for a kiosk running without a relay.
#[derive(Default)]
pub struct MemoryUploader {
    pub stored: std::sync::Mutex<Vec<(UploadKind, Vec<u8>)>>,
    /// When set, every upload fails with this message.
    pub fail: std::sync::Mutex<Option<String>>,
}

#[async_trait]
impl Uploader for MemoryUploader {
    async fn upload(&self, item: UploadItem) -> Result<UploadReceipt, UploadError> {
        if let Some(last) = self.fail.lock().ok().and_then(|f| f.clone()) {
            return Err(UploadError::Failed { attempts: 1, last });
        }
        let sha256 = item.sha256();
        let bytes = item.bytes.expose().len() as u64;
        let mut stored = self
            .stored
            .lock()
            .map_err(|_| UploadError::Setup("poisoned".into()))?;
        stored.push((item.kind, item.bytes.expose().clone()));
        Ok(UploadReceipt {
            upload_id: format!("mem-{}", stored.len()),
            sha256,
            bytes,
        })
    }
}
