//! The relay's configuration, in layers: defaults → TOML file → environment → command line.
//!
//! The layering rules live in the `layered-config` crate (shared with the agent): unknown keys
//! are rejected in every layer, and values are checked by [`Config::validate`] once, at the end.
//!
//! Environment variables have the form `RELAY__<SECTION>__<KEY>` (double underscores), e.g.
//! `RELAY__SERVER__LISTEN=0.0.0.0:8443`. The command line takes `--set section.key=value` and a
//! few named flags.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::queue::QueueConfig;
/// The store defines it (it opens the database with it); the configuration names it in `[store]`.
pub use crate::store::Durability;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Layers(#[from] layered_config::LayerError),
    #[error("invalid setting {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

/// The case service's part of the configuration: `[privacy]` and where the store is.
impl From<&Config> for crate::cases::CasesConfig {
    fn from(config: &Config) -> Self {
        Self {
            privacy: config.privacy.clone(),
            data_dir: config.store.data_dir.clone(),
            durability: config.store.durability,
            url: config.store.url.clone(),
        }
    }
}

impl From<std::sync::Arc<Config>> for crate::cases::CasesConfig {
    fn from(config: std::sync::Arc<Config>) -> Self {
        Self::from(config.as_ref())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub queue: QueueSection,
    pub limits: LimitsConfig,
    pub auth: AuthConfig,
    pub log: LogConfig,
    pub media: MediaSection,
    pub recording: RecordingSection,
    pub turn: TurnSection,
    pub privacy: crate::cases::PrivacyConfig,
    pub evaluation: crate::evaluation::config::EvaluationSection,
    pub registry: crate::registry::config::RegistrySection,
    pub alerts: crate::registry::config::AlertsSection,
    pub audit: crate::audit::syslog::AuditSection,
    /// Remote appointments: the remote windows' hours and slots per centre, and the limits.
    pub appointments: crate::appointments::AppointmentsSection,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The HTTPS/WSS listener for kiosks and clerk consoles. Empty to disable.
    pub listen: Option<SocketAddr>,
    /// The address people and kiosks use to reach the relay, for printed links.
    pub public_url: Option<String>,
    pub tls: TlsConfig,
    /// INSECURE: an additional plain-HTTP listener for development; loopback addresses only.
    pub dev_http_listen: Option<SocketAddr>,
    /// Seconds to let open connections finish on shutdown.
    pub shutdown_grace_secs: u64,
    /// A separate plain-HTTP listener that serves only `/metrics`, for a scraper on the relay
    /// host (e.g. `127.0.0.1:9464`). Unset: no such listener.
    pub metrics_listen: Option<SocketAddr>,
    /// A bearer token that lets a scraper read `/metrics` on the main listener
    /// (`Authorization: Bearer …`, at least 16 characters). Unset: `/metrics` there answers 404.
    pub metrics_token: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: Some(SocketAddr::from(([0, 0, 0, 0], 8443))),
            public_url: None,
            tls: TlsConfig::default(),
            dev_http_listen: None,
            shutdown_grace_secs: 10,
            metrics_listen: None,
            metrics_token: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert_file: Option<PathBuf>,
    /// PEM private key.
    pub key_file: Option<PathBuf>,
    /// Generate a self-signed certificate in the data directory (for trials; kiosks must then
    /// be given that certificate to trust).
    pub self_signed: bool,
    /// Extra DNS names or IP addresses for the self-signed certificate.
    pub self_signed_names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Where the database and the relay's other files live.
    pub data_dir: PathBuf,
    /// When a committed change is on stable storage.
    pub durability: Durability,
    /// The database holding the relay's state. Unset: the embedded SQLite file in `data_dir`
    /// (one centre or a trial). `postgres://user:password@host:port/database`: a PostgreSQL
    /// database, which several relay nodes can share. `data_dir` still holds the TLS
    /// certificate, the master key and the recordings.
    pub url: Option<String>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("/var/lib/rvw-relay"),
            durability: Durability::PowerLoss,
            url: None,
        }
    }
}

impl StoreConfig {
    /// Checks `url` without connecting; the message never repeats a password.
    pub fn check(&self) -> Result<(), String> {
        let Some(url) = &self.url else { return Ok(()) };
        if !crate::store::postgres::is_postgres_url(url) {
            let scheme = url.split("://").next().unwrap_or_default();
            return Err(format!(
                "only PostgreSQL is supported here (postgres://user:password@host:port/database), \
                 not {scheme:?}; leave store.url unset for the embedded SQLite database"
            ));
        }
        <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(url)
            .map(|_| ())
            .map_err(|e| {
                let what = e.to_string();
                match url::Url::parse(url) {
                    Ok(u) if u.password().is_some() => {
                        format!(
                            "not a valid PostgreSQL address: {}",
                            what.replace(u.password().unwrap_or_default(), "***")
                        )
                    }
                    _ => format!("not a valid PostgreSQL address: {what}"),
                }
            })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSection {
    pub max_recalls: u32,
    pub no_show_after_secs: u64,
    pub default_service_secs: u32,
    pub max_waiting: usize,
}

impl Default for QueueSection {
    fn default() -> Self {
        let q = QueueConfig::default();
        Self {
            max_recalls: q.max_recalls,
            no_show_after_secs: u64::try_from(q.no_show_after_ms / 1000).unwrap_or(300),
            default_service_secs: q.default_service_secs,
            max_waiting: q.max_waiting,
        }
    }
}

impl QueueSection {
    pub fn to_core(&self) -> QueueConfig {
        QueueConfig {
            max_recalls: self.max_recalls,
            no_show_after_ms: i64::try_from(self.no_show_after_secs.saturating_mul(1000))
                .unwrap_or(i64::MAX),
            default_service_secs: self.default_service_secs,
            max_waiting: self.max_waiting,
            ..QueueConfig::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest control frame accepted from a client, in bytes.
    pub max_frame_bytes: usize,
    /// Most simultaneous WebSocket connections.
    pub max_connections: usize,
    /// Seconds a client has to complete `hello`.
    pub handshake_timeout_secs: u64,
    /// Connections not yet authenticated (a kiosk before its `hello`) one source address may
    /// hold at once (IPv6: per /64). Kiosks behind one NAT share it.
    pub max_pending_per_source: u32,
    /// Connections not yet authenticated, from all addresses together.
    pub max_pending_connections: usize,
    /// Seconds without any frame after which a connection is considered dead.
    pub idle_timeout_secs: u64,
    /// Bad messages tolerated per minute before the connection is closed.
    pub max_bad_messages_per_minute: u32,
    /// Largest HTTP request body, in bytes.
    pub max_body_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: protocol::control::MAX_FRAME_BYTES,
            max_connections: 5000,
            handshake_timeout_secs: 3,
            max_pending_per_source: 32,
            max_pending_connections: 512,
            idle_timeout_secs: 60,
            max_bad_messages_per_minute: 20,
            max_body_bytes: 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// A login's absolute lifetime, in hours, however busy it is.
    pub session_ttl_hours: u64,
    /// A login ends after this many minutes without a request or an open console.
    pub session_idle_minutes: u64,
    /// Failed logins of one username within `failure_window_secs` before it is locked out.
    pub max_failures_per_username: u32,
    /// Failed logins from one source address (an IPv6 /64) within the window before it is
    /// locked out.
    pub max_failures_per_address: u32,
    pub failure_window_secs: u64,
    /// How long a lockout lasts.
    pub lockout_secs: u64,
    /// Password checks (argon2, about 19 MiB each) that may run at once.
    pub max_concurrent_password_checks: usize,
    /// Logins that may wait for a password check; more are answered "busy" at once.
    pub max_waiting_password_checks: usize,
    /// How often an open console checks that its login is still valid, in milliseconds.
    pub console_session_check_ms: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            session_ttl_hours: 12,
            session_idle_minutes: 30,
            max_failures_per_username: 5,
            max_failures_per_address: 20,
            failure_window_secs: 15 * 60,
            lockout_secs: 15 * 60,
            max_concurrent_password_checks: 2,
            max_waiting_password_checks: 32,
            console_session_check_ms: 1000,
        }
    }
}

impl AuthConfig {
    pub fn throttle_limits(&self) -> crate::login_guard::ThrottleLimits {
        crate::login_guard::ThrottleLimits {
            per_username: self.max_failures_per_username,
            per_address: self.max_failures_per_address,
            window: std::time::Duration::from_secs(self.failure_window_secs),
            lockout: std::time::Duration::from_secs(self.lockout_secs),
            max_entries: 50_000,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.into(),
            })
        };
        if self.session_ttl_hours == 0 || self.session_ttl_hours > 24 * 7 {
            return invalid("auth.session_ttl_hours", "must be between 1 and 168");
        }
        if self.session_idle_minutes == 0 || self.session_idle_minutes > self.session_ttl_hours * 60
        {
            return invalid(
                "auth.session_idle_minutes",
                "must be at least 1 and at most the session lifetime",
            );
        }
        if self.max_failures_per_username == 0 || self.max_failures_per_address == 0 {
            return invalid(
                "auth.max_failures_per_username",
                "limits must be at least 1",
            );
        }
        if self.failure_window_secs == 0 || self.lockout_secs == 0 {
            return invalid(
                "auth.lockout_secs",
                "the window and the lockout must be at least 1 s",
            );
        }
        if self.max_concurrent_password_checks == 0 || self.max_concurrent_password_checks > 64 {
            return invalid(
                "auth.max_concurrent_password_checks",
                "must be between 1 and 64",
            );
        }
        if !(100..=60_000).contains(&self.console_session_check_ms) {
            return invalid(
                "auth.console_session_check_ms",
                "must be between 100 and 60000",
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` for people, `json` for log collectors.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `info,signaling::queue=debug`.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

/// Live audio and video through the relay's SFU (one UDP port for every peer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaSection {
    /// Off by default: the UDP port and the address clients reach it at must be set for the
    /// site (see the sample).
    pub enabled: bool,
    /// The SFU's UDP socket.
    pub udp_listen: SocketAddr,
    /// The address kiosks and consoles send media to (the relay's public or NAT address).
    /// Required when `udp_listen` is an unspecified address such as 0.0.0.0.
    pub advertised_ip: Option<IpAddr>,
    /// Most peer connections (kiosks plus consoles) at once.
    pub max_peers: usize,
}

impl Default for MediaSection {
    fn default() -> Self {
        Self {
            enabled: false,
            udp_listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            advertised_ip: None,
            max_peers: 512,
        }
    }
}

/// The shortest retention the 2022 evaluation standard allows for window audio/video (≥ 3 months).
pub const MIN_RETENTION_DAYS: u32 = 90;

/// Recording of served sessions (both directions, muxed without transcoding).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingSection {
    /// Record every served remote session while media is enabled.
    pub enabled: bool,
    /// Where recordings live; `<data_dir>/recordings` when unset.
    pub dir: Option<PathBuf>,
    /// Days a recording is kept before the purge job deletes it (at least 90).
    pub retention_days: u32,
    /// Encrypt finished recordings at rest (AES-256-GCM, a key per file).
    pub encrypt: bool,
    /// The master key that wraps each file's key (32 random bytes, created on first start when
    /// missing); `<data_dir>/recording.key` when unset. Keep a copy: without it no recording
    /// can be played.
    pub key_file: Option<PathBuf>,
}

impl Default for RecordingSection {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: None,
            retention_days: 180,
            encrypt: true,
            key_file: None,
        }
    }
}

impl RecordingSection {
    pub fn dir_in(&self, data_dir: &Path) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| data_dir.join("recordings"))
    }

    pub fn key_file_in(&self, data_dir: &Path) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| data_dir.join("recording.key"))
    }
}

/// TURN (coturn with `use-auth-secret`) for clients that cannot reach the SFU's UDP port
/// directly. The relay hands out short-lived REST credentials in its welcome messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TurnSection {
    /// e.g. `turn:turn.example.gov.cn:3478?transport=udp`; empty: no TURN server.
    pub urls: Vec<String>,
    /// A file holding coturn's `static-auth-secret`.
    pub secret_file: Option<PathBuf>,
    /// How long a credential stays valid, in seconds.
    pub credential_ttl_secs: u64,
}

impl Default for TurnSection {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            secret_file: None,
            credential_ttl_secs: 24 * 3600,
        }
    }
}

pub use layered_config::Sources;

/// The environment variable prefix.
pub const ENV_PREFIX: &str = "RELAY__";

impl Config {
    /// Builds the configuration from its layers and validates it.
    pub fn load(sources: &Sources<'_>) -> Result<Self, ConfigError> {
        let config = layered_config::load(&Config::default(), ENV_PREFIX, sources)?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.store.check().map_err(|message| ConfigError::Invalid {
            key: "store.url",
            message,
        })?;
        self.evaluation
            .check()
            .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        self.privacy
            .validate()
            .map_err(|message| ConfigError::Invalid {
                key: "privacy",
                message,
            })?;
        self.alerts
            .check()
            .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        self.appointments
            .validate()
            .map_err(|message| ConfigError::Invalid {
                key: "appointments",
                message,
            })?;
        self.audit
            .check()
            .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        let s = &self.server;
        if s.listen.is_none() && s.dev_http_listen.is_none() {
            return Err(ConfigError::Invalid {
                key: "server.listen",
                message: "no listener: set server.listen (HTTPS) or server.dev_http_listen".into(),
            });
        }
        if s.listen.is_some() {
            let has_files = s.tls.cert_file.is_some() && s.tls.key_file.is_some();
            if s.tls.self_signed == has_files {
                return Err(ConfigError::Invalid {
                    key: "server.tls",
                    message: "set either cert_file and key_file, or self_signed = true".into(),
                });
            }
        }
        if s.metrics_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(ConfigError::Invalid {
                key: "server.metrics_token",
                message: "use at least 16 random characters".into(),
            });
        }
        if let Some(addr) = s.dev_http_listen
            && !addr.ip().is_loopback()
        {
            return Err(ConfigError::Invalid {
                key: "server.dev_http_listen",
                message: format!(
                    "{addr} is not a loopback address; plain HTTP is only allowed on 127.0.0.1 or ::1"
                ),
            });
        }
        if self.limits.max_frame_bytes < 1024 || self.limits.max_frame_bytes > 16 * 1024 * 1024 {
            return Err(ConfigError::Invalid {
                key: "limits.max_frame_bytes",
                message: "must be between 1 KiB and 16 MiB".into(),
            });
        }
        if self.limits.max_pending_per_source == 0 || self.limits.max_pending_connections == 0 {
            return Err(ConfigError::Invalid {
                key: "limits.max_pending_connections",
                message: "pending-connection limits must be at least 1".into(),
            });
        }
        if self.limits.handshake_timeout_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "limits.handshake_timeout_secs",
                message: "must be at least 1".into(),
            });
        }
        if self.limits.max_connections == 0 {
            return Err(ConfigError::Invalid {
                key: "limits.max_connections",
                message: "must be at least 1".into(),
            });
        }
        self.auth.validate()?;
        if self.queue.no_show_after_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "queue.no_show_after_secs",
                message: "must be at least 1".into(),
            });
        }
        self.validate_media()
    }

    fn validate_media(&self) -> Result<(), ConfigError> {
        let m = &self.media;
        if m.enabled && m.udp_listen.ip().is_unspecified() && m.advertised_ip.is_none() {
            return Err(ConfigError::Invalid {
                key: "media.advertised_ip",
                message: format!(
                    "media.udp_listen is {}; set the address clients reach it at",
                    m.udp_listen
                ),
            });
        }
        if m.advertised_ip.is_some_and(|ip| ip.is_unspecified()) {
            return Err(ConfigError::Invalid {
                key: "media.advertised_ip",
                message: "must be a concrete address, not 0.0.0.0 or ::".into(),
            });
        }
        if m.max_peers == 0 {
            return Err(ConfigError::Invalid {
                key: "media.max_peers",
                message: "must be at least 1".into(),
            });
        }
        let r = &self.recording;
        if r.retention_days < MIN_RETENTION_DAYS {
            return Err(ConfigError::Invalid {
                key: "recording.retention_days",
                message: format!(
                    "{} days is too short: recordings must be kept at least {MIN_RETENTION_DAYS} days (3 months, 2022 evaluation standard 5.1.2)",
                    r.retention_days
                ),
            });
        }
        if r.retention_days > 3650 {
            return Err(ConfigError::Invalid {
                key: "recording.retention_days",
                message: "must be at most 3650 (ten years)".into(),
            });
        }
        let t = &self.turn;
        if let Some(bad) = t.urls.iter().find(|u| {
            !(u.starts_with("turn:") || u.starts_with("turns:") || u.starts_with("stun:"))
        }) {
            return Err(ConfigError::Invalid {
                key: "turn.urls",
                message: format!("{bad:?} is not a turn:, turns: or stun: URL"),
            });
        }
        if t.urls.iter().any(|u| !u.starts_with("stun:")) && t.secret_file.is_none() {
            return Err(ConfigError::Invalid {
                key: "turn.secret_file",
                message: "TURN URLs need the shared secret (coturn's static-auth-secret)".into(),
            });
        }
        if !(60..=7 * 24 * 3600).contains(&t.credential_ttl_secs) {
            return Err(ConfigError::Invalid {
                key: "turn.credential_ttl_secs",
                message: "must be between 60 seconds and 7 days".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn sample_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/relay.sample.toml")
    }

    #[test]
    fn the_commented_sample_in_deploy_parses_and_validates() {
        let config = Config::load(&Sources {
            file: Some(&sample_path()),
            ..Sources::default()
        })
        .expect("deploy/relay.sample.toml is valid");
        assert!(config.server.tls.cert_file.is_some());
        assert!(config.media.enabled && config.recording.enabled);
        assert!(!config.turn.urls.is_empty());
    }

    #[test]
    fn unknown_keys_are_rejected_in_every_layer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("relay.toml");
        std::fs::write(&file, "[server]\nlisen = \"0.0.0.0:1\"\n").expect("write");
        let err = Config::load(&Sources {
            file: Some(&file),
            ..Sources::default()
        })
        .expect_err("typo rejected");
        assert!(err.to_string().contains("lisen"), "{err}");

        let err = Config::load(&Sources {
            env: vec![("RELAY__STORE__DATADIR".into(), "/x".into())],
            overrides: vec!["server.tls.self_signed=true".into()],
            ..Sources::default()
        })
        .expect_err("unknown env key rejected");
        assert!(err.to_string().contains("datadir"), "{err}");
    }

    #[test]
    fn the_store_url_selects_postgres_and_anything_else_is_refused_clearly() {
        let load = |url: &str| {
            Config::load(&Sources {
                overrides: vec![
                    "server.tls.self_signed=true".into(),
                    format!("store.url={}", layered_config::quote(url)),
                ],
                ..Sources::default()
            })
        };
        let config = load("postgres://relay:s3cret@db.internal:5433/rvw").expect("postgres");
        assert_eq!(
            crate::relay::Stores::describe(&config.store),
            "PostgreSQL database rvw on db.internal:5433"
        );
        load("postgresql://relay@localhost/rvw").expect("postgresql scheme");
        assert!(
            Config::default().store.url.is_none(),
            "SQLite stays the default"
        );
        for (bad, why) in [
            ("mysql://relay:s3cret@db/rvw", "only PostgreSQL"),
            ("sqlite:///var/lib/rvw/relay.sqlite", "only PostgreSQL"),
            (
                "postgres://relay:s3cret@db:notaport/rvw",
                "not a valid PostgreSQL address",
            ),
        ] {
            let err = load(bad).expect_err(bad).to_string();
            assert!(
                err.contains("store.url") && err.contains(why),
                "{bad}: {err}"
            );
            assert!(!err.contains("s3cret"), "the password leaked: {err}");
        }
    }

    #[test]
    fn later_layers_win() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("relay.toml");
        std::fs::write(
            &file,
            "[server.tls]\nself_signed = true\n[queue]\nmax_recalls = 5\n[store]\ndata_dir = \"/from/file\"\n",
        )
        .expect("write");
        let config = Config::load(&Sources {
            file: Some(&file),
            env: vec![
                ("RELAY__QUEUE__MAX_RECALLS".into(), "7".into()),
                ("RELAY__STORE__DATA_DIR".into(), "/from/env".into()),
                ("UNRELATED".into(), "x".into()),
            ],
            overrides: vec!["store.data_dir=/from/cli".into()],
        })
        .expect("valid");
        assert_eq!(config.queue.max_recalls, 7);
        assert_eq!(config.store.data_dir, PathBuf::from("/from/cli"));
    }

    #[test]
    fn plain_http_only_on_loopback() {
        let load = |addr: &str| {
            Config::load(&Sources {
                overrides: vec![
                    "server.tls.self_signed=true".into(),
                    format!("server.dev_http_listen={addr}"),
                ],
                ..Sources::default()
            })
        };
        assert!(load("127.0.0.1:8080").is_ok());
        let err = load("0.0.0.0:8080").expect_err("refused");
        assert!(err.to_string().contains("loopback"), "{err}");
    }

    #[test]
    fn tls_must_be_configured_one_way() {
        let err = Config::load(&Sources::default()).expect_err("no TLS material");
        assert!(err.to_string().contains("server.tls"), "{err}");
    }

    #[test]
    fn recordings_are_kept_at_least_three_months() {
        let load = |days: u32| {
            Config::load(&Sources {
                overrides: vec![
                    "server.tls.self_signed=true".into(),
                    format!("recording.retention_days={days}"),
                ],
                ..Sources::default()
            })
        };
        assert_eq!(Config::default().recording.retention_days, 180);
        assert!(load(90).is_ok());
        let err = load(89).expect_err("refused");
        assert!(
            err.to_string().contains("recording.retention_days"),
            "{err}"
        );
    }

    #[test]
    fn media_on_an_unspecified_address_needs_the_advertised_one() {
        let load = |extra: &[&str]| {
            let mut overrides = vec![
                "server.tls.self_signed=true".to_owned(),
                "media.enabled=true".to_owned(),
            ];
            overrides.extend(extra.iter().map(|s| (*s).to_owned()));
            Config::load(&Sources {
                overrides,
                ..Sources::default()
            })
        };
        let err = load(&[]).expect_err("refused");
        assert!(err.to_string().contains("media.advertised_ip"), "{err}");
        assert!(load(&["media.advertised_ip=\"203.0.113.7\""]).is_ok());
        assert!(load(&["media.udp_listen=\"127.0.0.1:0\""]).is_ok());
        let err = load(&[
            "media.udp_listen=\"127.0.0.1:0\"",
            "turn.urls=[\"turn:127.0.0.1:3478\"]",
        ])
        .expect_err("TURN without a secret");
        assert!(err.to_string().contains("turn.secret_file"), "{err}");
    }

    #[test]
    fn wrong_types_are_reported() {
        let err = Config::load(&Sources {
            overrides: vec![
                "server.tls.self_signed=true".into(),
                "queue.max_recalls=many".into(),
            ],
            ..Sources::default()
        })
        .expect_err("type error");
        assert!(err.to_string().contains("max_recalls"), "{err}");
    }
}
