//! Configuration of the kiosk's peer connection.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::media::VideoCodec;

use super::RtcError;
use super::bitrate::BitrateLimits;

/// A STUN server, by URL (`stun:host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceServer {
    pub urls: Vec<String>,
}

/// A TURN server with the ephemeral credentials the relay issued.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnServer {
    /// `turn:host:port?transport=udp`, `turns:host:5349?transport=tcp`, …
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

impl fmt::Debug for TurnServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The credential is a secret and the username embeds the kiosk's identity.
        f.debug_struct("TurnServer")
            .field("urls", &self.urls)
            .field("username", &"{REDACTED}")
            .field("credential", &"{REDACTED}")
            .finish()
    }
}

impl TurnServer {
    pub(crate) fn validate(&self) -> Result<(), RtcError> {
        if self.urls.is_empty() {
            return Err(RtcError::Config("TURN server without a URL".into()));
        }
        for url in &self.urls {
            if !(url.starts_with("turn:") || url.starts_with("turns:")) {
                return Err(RtcError::Config(format!(
                    "TURN URL must start with turn: or turns: (got `{url}`)"
                )));
            }
        }
        if self.username.is_empty() || self.credential.is_empty() {
            return Err(RtcError::Config(
                "TURN server needs a username and a credential".into(),
            ));
        }
        Ok(())
    }
}

/// How the kiosk's peer connection is set up.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Local UDP addresses to bind; port 0 picks a free port. A kiosk binds `0.0.0.0:0`.
    pub bind_addresses: Vec<SocketAddr>,
    /// Offer loopback host candidates (tests, where everything runs on 127.0.0.1).
    pub include_loopback: bool,
    pub stun_servers: Vec<IceServer>,
    pub turn: Option<TurnServer>,
    /// Force media through TURN (for testing a blocked-UDP site).
    pub relay_only: bool,
    /// Listed first in the camera and document offers; the other is offered as alternative.
    pub preferred_video_codec: VideoCodec,
    pub bitrate: BitrateLimits,
    /// Longest wait for candidate gathering before an offer is given out.
    pub gather_timeout: Duration,
}

impl Default for PeerConfig {
    fn default() -> PeerConfig {
        PeerConfig {
            bind_addresses: vec![SocketAddr::from(([0, 0, 0, 0], 0))],
            include_loopback: false,
            stun_servers: Vec::new(),
            turn: None,
            relay_only: false,
            preferred_video_codec: VideoCodec::Vp8,
            bitrate: BitrateLimits::default(),
            gather_timeout: Duration::from_secs(5),
        }
    }
}

impl PeerConfig {
    /// Everything on 127.0.0.1 with an ephemeral port: for tests and same-host runs.
    pub fn loopback() -> PeerConfig {
        PeerConfig {
            bind_addresses: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            include_loopback: true,
            ..PeerConfig::default()
        }
    }

    pub(crate) fn validate(&self) -> Result<(), RtcError> {
        if self.bind_addresses.is_empty() {
            return Err(RtcError::Config("no local address to bind".into()));
        }
        if let Some(turn) = &self.turn {
            turn.validate()?;
        }
        if self.relay_only && self.turn.is_none() {
            return Err(RtcError::Config("relay-only needs a TURN server".into()));
        }
        self.bitrate.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_debug_hides_credentials() {
        let turn = TurnServer {
            urls: vec!["turn:relay.example:3478".into()],
            username: "1700000000:kiosk-17".into(),
            credential: "s3cret".into(),
        };
        let shown = format!("{turn:?}");
        assert!(!shown.contains("s3cret"));
        assert!(!shown.contains("kiosk-17"));
        assert!(shown.contains("relay.example"));
    }

    #[test]
    fn turn_needs_turn_urls_and_credentials() {
        let mut turn = TurnServer {
            urls: vec!["stun:x:3478".into()],
            username: "u".into(),
            credential: "c".into(),
        };
        assert!(turn.validate().is_err());
        turn.urls = vec!["turn:x:3478".into()];
        assert!(turn.validate().is_ok());
        turn.credential.clear();
        assert!(turn.validate().is_err());
    }

    #[test]
    fn relay_only_without_turn_is_rejected() {
        let config = PeerConfig {
            relay_only: true,
            ..PeerConfig::default()
        };
        assert!(config.validate().is_err());
        assert!(PeerConfig::loopback().validate().is_ok());
    }
}
