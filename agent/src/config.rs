//! The agent's configuration, in layers: defaults → TOML file → environment (`AGENT__…`) →
//! command line (`--set section.key=value`). Unknown keys are errors.
//!
//! Each subsystem owns its section's type and its checks (`[relay]` the link, `[devices]` the
//! devices, `[kiosk]` the kiosk screen, `[media]` the media session, `[selftest]` the
//! self-test); this file only assembles them, so no subsystem needs the whole configuration.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use crate::link::config::{Credential, RelayConfig};
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
    pub devices: crate::devices::config::DevicesConfig,
    pub kiosk: crate::kiosk::config::KioskConfig,
    pub media: crate::media_session::config::MediaConfig,
    pub selftest: crate::selftest::config::SelfTestConfig,
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
        self.relay
            .validate()
            .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        self.devices
            .validate()
            .map_err(|message| ConfigError::Invalid {
                key: "devices",
                message,
            })?;
        self.kiosk
            .validate()
            .map_err(|message| ConfigError::Invalid {
                key: "kiosk",
                message,
            })?;
        self.media
            .validate()
            .map_err(|message| ConfigError::Invalid {
                key: "media",
                message,
            })?;
        self.selftest
            .validate()
            .map_err(|message| ConfigError::Invalid {
                key: "selftest",
                message,
            })?;
        if !self.local.listen.ip().is_loopback() {
            return Err(ConfigError::Invalid {
                key: "local.listen",
                message: "the kiosk's local API must listen on a loopback address".into(),
            });
        }
        Ok(())
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
}
