//! The agent's configuration, in layers: defaults → TOML file → environment (`AGENT__…`) →
//! command line (`--set section.key=value`). Unknown keys are errors.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use layered_config::Sources;

pub const ENV_PREFIX: &str = "AGENT__";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Layers(#[from] layered_config::LayerError),
    #[error("invalid setting {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    pub relay: RelayConfig,
    pub local: LocalConfig,
    pub store: StoreConfig,
    pub log: LogConfig,
    pub devices: crate::devices::setup::DevicesConfig,
    pub kiosk: crate::kiosk::KioskConfig,
    pub media: crate::media_session::MediaConfig,
    pub selftest: crate::selftest::config::SelfTestConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// The relay's kiosk endpoint, e.g. `wss://relay.example.gov.cn:8443/ws/kiosk`.
    pub url: String,
    /// File holding this device's credential `device_id:secret`, as printed at enrollment.
    pub credential_file: PathBuf,
    /// An extra certificate (PEM) to trust for the relay, e.g. its self-signed certificate.
    pub ca_file: Option<PathBuf>,
    /// INSECURE: allow `ws://` to a loopback relay (development only).
    pub dev_allow_plain_loopback: bool,
    pub connect_timeout_secs: u64,
    pub request_timeout_secs: u64,
    /// Longest pause between reconnection attempts.
    pub max_backoff_secs: u64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            url: "wss://127.0.0.1:8443/ws/kiosk".into(),
            credential_file: PathBuf::from("/etc/rvw/kiosk.credential"),
            ca_file: None,
            dev_allow_plain_loopback: false,
            connect_timeout_secs: 10,
            request_timeout_secs: 10,
            max_backoff_secs: 30,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalConfig {
    /// The local API and kiosk screen; loopback only.
    pub listen: SocketAddr,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7380)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("/var/lib/rvw-agent"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub filter: String,
    pub json: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            filter: "info".into(),
            json: false,
        }
    }
}

impl AgentConfig {
    pub fn load(sources: &Sources<'_>) -> Result<Self, ConfigError> {
        let config: Self = layered_config::load(&Self::default(), ENV_PREFIX, sources)?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = url::Url::parse(&self.relay.url).map_err(|e| ConfigError::Invalid {
            key: "relay.url",
            message: e.to_string(),
        })?;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        match url.scheme() {
            "wss" => {}
            "ws" if self.relay.dev_allow_plain_loopback && loopback => {}
            "ws" => {
                return Err(ConfigError::Invalid {
                    key: "relay.url",
                    message: "must use wss:// (TLS); ws:// is only allowed to a loopback relay with relay.dev_allow_plain_loopback = true".into(),
                })
            }
            other => {
                return Err(ConfigError::Invalid {
                    key: "relay.url",
                    message: format!("unsupported scheme {other:?}; expected wss://"),
                })
            }
        }
        self.devices
            .validate()
            .map_err(|message| ConfigError::Invalid {
                key: "devices",
                message,
            })?;
        self.kiosk.validate().map_err(|message| ConfigError::Invalid {
            key: "kiosk",
            message,
        })?;
        self.media.validate().map_err(|message| ConfigError::Invalid {
            key: "media",
            message,
        })?;
        self.selftest.validate().map_err(|message| ConfigError::Invalid {
            key: "selftest",
            message,
        })?;
        if !self.local.listen.ip().is_loopback() {
            return Err(ConfigError::Invalid {
                key: "local.listen",
                message: "the kiosk's local API must listen on a loopback address".into(),
            });
        }
        for (key, v) in [
            ("relay.connect_timeout_secs", self.relay.connect_timeout_secs),
            ("relay.request_timeout_secs", self.relay.request_timeout_secs),
            ("relay.max_backoff_secs", self.relay.max_backoff_secs),
        ] {
            if v == 0 || v > 3600 {
                return Err(ConfigError::Invalid {
                    key,
                    message: "must be between 1 and 3600".into(),
                });
            }
        }
        Ok(())
    }
}

/// A device credential `device_id:secret` as printed by `relay enroll-device`.
#[derive(Clone)]
pub struct Credential {
    pub device_id: String,
    pub secret: protocol::Pii<String>,
}

impl Credential {
    pub fn parse(text: &str) -> Option<Self> {
        let (id, secret) = text.trim().split_once(':')?;
        (!id.is_empty() && !secret.is_empty()).then(|| Self {
            device_id: id.to_owned(),
            secret: protocol::Pii::new(secret.to_owned()),
        })
    }

    pub fn read(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the device credential {}: {e}", path.display()))?;
        Self::parse(&text).ok_or_else(|| {
            format!(
                "{} does not hold a credential of the form device_id:secret",
                path.display()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_commented_sample_in_deploy_parses_and_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/agent.sample.toml");
        let config = AgentConfig::load(&Sources {
            file: Some(&path),
            ..Sources::default()
        })
        .expect("deploy/agent.sample.toml is valid");
        assert!(config.relay.url.starts_with("wss://"));
    }

    #[test]
    fn plain_websocket_only_to_loopback_in_dev_mode() {
        let load = |url: &str, dev: bool| {
            AgentConfig::load(&Sources {
                overrides: vec![
                    format!("relay.url={}", layered_config::quote(url)),
                    format!("relay.dev_allow_plain_loopback={dev}"),
                ],
                ..Sources::default()
            })
        };
        assert!(load("ws://127.0.0.1:8080/ws/kiosk", true).is_ok());
        assert!(load("ws://127.0.0.1:8080/ws/kiosk", false).is_err());
        assert!(load("ws://relay.example:8080/ws/kiosk", true).is_err());
        assert!(load("https://relay.example/ws/kiosk", false).is_err());
    }

    #[test]
    fn local_api_is_loopback_only() {
        let err = AgentConfig::load(&Sources {
            overrides: vec!["local.listen=\"0.0.0.0:7380\"".into()],
            ..Sources::default()
        })
        .expect_err("refused");
        assert!(err.to_string().contains("loopback"));
    }

    #[test]
    fn credentials_parse_and_hide_the_secret() {
        let c = Credential::parse("kiosk-1:abc\n").expect("valid");
        assert_eq!(c.device_id, "kiosk-1");
        assert_eq!(format!("{:?}", c.secret), "{REDACTED}");
        assert!(Credential::parse("no-colon").is_none());
        assert!(Credential::parse(":x").is_none());
    }
}
