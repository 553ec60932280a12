//! The network checks: the relay over HTTPS with a valid certificate, the device login on the
//! control WebSocket, UDP to the relay's media port (an ICE connection to its SFU), a TURN
//! allocation with the relay-issued REST credentials, round-trip time, an uplink estimate and
//! the clock offset to the relay.
//!
//! Two ways to run: standalone (`agent selftest` with no agent running) logs in on a control
//! connection of its own and offers media on it ([`login`]); inside the running agent
//! (technician page, daily run) a second login would replace the agent's own connection at the
//! relay, so login and media UDP are read from the running link and media session instead
//! ([`running`]). The HTTPS checks ([`http`], `protocol::selftest` probes) and the TURN
//! allocation ([`turn`]) are the same either way.
//!
//! Every step has its own bound; nothing here reads the credential into a log.

pub mod http;
pub mod login;
pub mod problem;
pub mod running;
pub mod turn;

use std::sync::Arc;

use protocol::inspection::CheckResult;
use tokio_tungstenite::Connector;

pub use self::http::{
    CLOCK_FAIL_MS, CLOCK_WARN_MS, RTT_FAIL_MS, RTT_WARN_MS, RelayHttp, Timing, UPLINK_FAIL_MBPS,
    UPLINK_WARN_MBPS, check_https, check_uplink, fetch_ice_servers, judge_timing, measure_time,
    timing_from,
};
pub use self::login::{Login, login, relay_candidate};
use self::problem::net;
pub use self::problem::{NetProblem, classify};
pub use self::running::{MediaSnapshot, login_from_link, media_from_session, relay_without_media};
pub use self::turn::{check_turn, turn_udp_address};
use super::check::bi;
use crate::link::config::{Credential, RelayConfig};
use crate::link::rtc::PeerConfig;

/// What a network check list looks like when the relay cannot be reached at all.
pub fn unreachable(ids: &[&'static str], why: &CheckResult) -> Vec<CheckResult> {
    ids.iter()
        .map(|id| {
            net(id).skipped(bi(
                format!("未检查：{}", why.detail.zh),
                format!("not checked: {}", why.detail.en),
            ))
        })
        .collect()
}

/// The shared pieces the network checks need.
pub struct NetworkKit {
    pub relay: RelayConfig,
    pub credential: Credential,
    pub connector: Connector,
    pub peer: PeerConfig,
}

impl NetworkKit {
    pub fn http(&self) -> Result<RelayHttp, String> {
        RelayHttp::new(&self.relay, &self.credential, &self.connector)
    }
}

/// Shared for the runner.
pub type SharedNetwork = Arc<NetworkKit>;
