//! What the relay answers a kiosk's self-test network probes (`agent selftest`, part of the
//! inspection records of [`crate::inspection`]):
//!
//! - `GET /api/v1/selftest/time` → [`TimeProbe`]: the relay's clock, for the round-trip time and
//!   the kiosk's clock offset. Unauthenticated (the time is no secret; the answer is cheap so it
//!   can be timed).
//! - `GET /api/v1/selftest/ice-servers` → [`IceServersProbe`]: fresh STUN/TURN servers with
//!   short-lived TURN REST credentials, the same the kiosk's welcome carries, so the self-test
//!   can try a TURN allocation without opening a second control connection, and whether the
//!   relay serves media at all.
//! - `POST /api/v1/selftest/upload` → [`UploadProbe`]: the relay reads and discards the body
//!   (at most [`MAX_UPLOAD_PROBE_BYTES`]) and says how long receiving it took: the uplink
//!   estimate.
//!
//! The last two take the kiosk's device credential (`Authorization: Bearer <device_id>:<secret>`).
//! Unknown fields are ignored.

use serde::{Deserialize, Serialize};

use crate::control::IceServer;

pub const TIME_PATH: &str = "/api/v1/selftest/time";
pub const ICE_SERVERS_PATH: &str = "/api/v1/selftest/ice-servers";
pub const UPLOAD_PATH: &str = "/api/v1/selftest/upload";

/// The largest body the upload probe reads; more is refused (413).
pub const MAX_UPLOAD_PROBE_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeProbe {
    pub server_time_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServersProbe {
    #[serde(default)]
    pub ice_servers: Vec<IceServer>,
    /// Whether the relay serves media at all (`[media] enabled`), so a kiosk whose media
    /// connection is not up can tell a relay without media from a blocked path. Absent from
    /// relays older than this field.
    #[serde(default)]
    pub media_enabled: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadProbe {
    pub bytes: u64,
    /// From the first body byte to the last, as the relay saw it.
    pub elapsed_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_json() {
        assert_eq!(
            serde_json::to_string(&UploadProbe {
                bytes: 1024,
                elapsed_us: 2000
            })
            .expect("json"),
            r#"{"bytes":1024,"elapsed_us":2000}"#
        );
        let ice: IceServersProbe = serde_json::from_str(
            r#"{"ice_servers":[{"urls":["turn:relay.example:3478?transport=udp"],"username":"1:k","credential":"c"}],"x":1}"#,
        )
        .expect("parse");
        assert_eq!(ice.ice_servers[0].username.as_deref(), Some("1:k"));
        assert_eq!(ice.media_enabled, None, "an older relay's answer");
        assert_eq!(
            serde_json::to_string(&IceServersProbe {
                ice_servers: Vec::new(),
                media_enabled: Some(false),
            })
            .expect("json"),
            r#"{"ice_servers":[],"media_enabled":false}"#
        );
        let t: TimeProbe = serde_json::from_str(r#"{"server_time_ms":5}"#).expect("parse");
        assert_eq!(t.server_time_ms, 5);
    }
}
