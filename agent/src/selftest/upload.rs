//! Filing the self-test result at the centre: `POST /api/v1/inspections` with the kiosk's
//! device credential (`protocol::inspection`). Retried a few times on network errors and 5xx;
//! a 4xx is final (the message says why).

use std::time::Duration;

use protocol::inspection::{InspectionReceipt, InspectionReport};

use super::network::RelayHttp;

#[derive(Debug, Clone, thiserror::Error)]
pub enum UploadError {
    #[error(
        "中继拒绝了巡检记录（HTTP {status}）/ the relay refused the record (HTTP {status}): {message}"
    )]
    Refused { status: u16, message: String },
    #[error("巡检记录上传失败 / the record could not be uploaded: {0}")]
    Failed(String),
}

/// Uploads `report`, trying up to `attempts` times with a doubling pause from `backoff`.
pub async fn upload(
    http: &RelayHttp,
    report: &InspectionReport,
    attempts: u32,
    backoff: Duration,
) -> Result<InspectionReceipt, UploadError> {
    let mut url = http.base().clone();
    url.set_path("/api/v1/inspections");
    let mut pause = backoff;
    let mut last = String::new();
    for attempt in 1..=attempts.max(1) {
        let response = http
            .client()
            .post(url.as_str())
            .header("authorization", http.authorization())
            .json(report)
            .send()
            .await;
        match response {
            Ok(r) if r.status().is_success() => {
                return r
                    .json::<InspectionReceipt>()
                    .await
                    .map_err(|e| UploadError::Failed(e.to_string()));
            }
            Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => {
                let status = r.status().as_u16();
                let body: serde_json::Value = r.json().await.unwrap_or_default();
                let message = body["message"].as_str().unwrap_or_default().to_owned();
                return Err(UploadError::Refused { status, message });
            }
            Ok(r) => last = format!("HTTP {}", r.status().as_u16()),
            Err(e) => last = e.to_string(),
        }
        if attempt < attempts {
            tokio::time::sleep(pause).await;
            pause = pause.saturating_mul(2);
        }
    }
    Err(UploadError::Failed(last))
}
