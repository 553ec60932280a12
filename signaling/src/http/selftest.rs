//! The relay's side of a kiosk's self-test network probes (see `protocol::selftest`): its
//! clock, fresh TURN credentials, and an upload sink for the uplink estimate. The inspection
//! record itself is filed through `registry` (`POST /api/v1/inspections`).

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use protocol::selftest::{
    ICE_SERVERS_PATH, IceServersProbe, MAX_UPLOAD_PROBE_BYTES, TIME_PATH, TimeProbe, UPLOAD_PATH,
    UploadProbe,
};

use super::auth::AuthKiosk;
use super::error::ApiError;
use super::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(TIME_PATH, get(time))
        .route(ICE_SERVERS_PATH, get(ice_servers))
        .route(UPLOAD_PATH, post(upload))
}

async fn time(State(state): State<AppState>) -> Json<TimeProbe> {
    Json(TimeProbe {
        server_time_ms: state.clock.now_ms(),
    })
}

async fn ice_servers(
    State(state): State<AppState>,
    AuthKiosk(device): AuthKiosk,
) -> Json<IceServersProbe> {
    Json(IceServersProbe {
        ice_servers: state.media.ice_servers(&device.id, state.clock.now_ms()),
        media_enabled: Some(state.media.is_enabled()),
    })
}

/// Reads the body to its end and throws it away, timing the bytes as they arrive.
/// The kiosk is authenticated (by [`AuthKiosk`]) before the body is read.
async fn upload(_kiosk: AuthKiosk, body: Body) -> Result<Response, ApiError> {
    let mut stream = body.into_data_stream();
    let (mut bytes, mut first): (u64, Option<Instant>) = (0, None);
    let mut last = Instant::now();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::BadRequest(format!("上传中断 / upload broken off: {e}")))?;
        let now = Instant::now();
        first.get_or_insert(now);
        last = now;
        bytes += chunk.len() as u64;
        if bytes > MAX_UPLOAD_PROBE_BYTES {
            return Ok((
                StatusCode::PAYLOAD_TOO_LARGE,
                Json(serde_json::json!({
                    "code": "too_large",
                    "message": format!("测速数据过大 / probe body over {MAX_UPLOAD_PROBE_BYTES} bytes"),
                })),
            )
                .into_response());
        }
    }
    let elapsed_us = first.map_or(0, |f| {
        u64::try_from(last.duration_since(f).as_micros()).unwrap_or(u64::MAX)
    });
    Ok(Json(UploadProbe { bytes, elapsed_us }).into_response())
}
