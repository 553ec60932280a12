//! `[privacy]`: how case materials are protected and how long they are kept; and
//! [`CasesConfig`], all the case service reads of the relay's configuration.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::store::Durability;

/// What the case service needs: its own `[privacy]` section and where the relay's store is.
/// The relay's configuration gives it (`From<&Config>` in `crate::config`), so this module
/// never sees the whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct CasesConfig {
    pub privacy: PrivacyConfig,
    /// `[store] data_dir`: the database and the default master key file live there.
    pub data_dir: PathBuf,
    /// `[store] durability`, for the service's own connection pool.
    pub durability: Durability,
    /// `[store] url`: the PostgreSQL database when set, else the SQLite file in `data_dir`.
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// The master key that wraps each case object's key (32 random bytes as hex, mode 0600,
    /// outside the data directory; `relay init-keys` makes one). Unset: the systemd credential
    /// `cases.key`, or in the demonstration `<data_dir>/privacy/master.key`. Keep a copy:
    /// without it no stored case material can be read.
    pub master_key_file: Option<PathBuf>,
    /// Days case materials (card, photo, documents, snapshots, scans) are kept before the
    /// retention job deletes them.
    pub retention_days: u32,
    /// How often the retention job runs (seconds).
    pub retention_sweep_secs: u64,
    /// Largest upload (a document still or the ID photo) the relay accepts, in bytes.
    pub max_upload_bytes: usize,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            master_key_file: None,
            retention_days: 180,
            retention_sweep_secs: 3600,
            max_upload_bytes: 16 * 1024 * 1024,
        }
    }
}

impl PrivacyConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.retention_days == 0 {
            return Err("privacy.retention_days must be at least 1".into());
        }
        if self.retention_sweep_secs == 0 {
            return Err("privacy.retention_sweep_secs must be at least 1".into());
        }
        if self.max_upload_bytes < 1024 || self.max_upload_bytes > 256 * 1024 * 1024 {
            return Err("privacy.max_upload_bytes must be between 1 KiB and 256 MiB".into());
        }
        Ok(())
    }
}
