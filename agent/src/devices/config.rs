//! `[devices]` in the agent configuration: which devices the kiosk has, where, and the bounds
//! of their commands and uploads.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::faults::SimulatedFaults;
use super::service::ServiceConfig;

/// `[devices]` in the agent configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevicesConfig {
    /// Run every device as an in-process simulator (CI, demo, trials without hardware).
    pub simulated: bool,
    /// Kiosk profile id (`device-profiles/profiles/kiosks`); defaults to `kiosk-simulated`
    /// when `simulated`, else `kiosk-generic`.
    pub profile: Option<String>,
    /// A directory of extra profile files to use instead of the built-in ones.
    pub profiles_dir: Option<PathBuf>,
    /// Serial port of the SAM ID card reader, e.g. `/dev/ttyUSB0`.
    pub id_card_port: Option<String>,
    /// Serial port (USB-CDC) or `/dev/input/…` event device of the QR scanner. With
    /// `simulated = true` a port given here replaces the built-in scanner simulator (e.g. a
    /// pseudo-terminal whose other end a test or a trial "scans" into).
    pub scanner_port: Option<String>,
    /// V4L2 device of the document camera (高拍仪), e.g. `/dev/video2`.
    pub document_camera: Option<String>,
    /// V4L2 device of the kiosk camera, for identity snapshots.
    pub camera: Option<String>,
    /// The longest any device command may run (seconds).
    pub max_command_secs: u64,
    /// Bound of one upload attempt to the relay (seconds).
    pub upload_timeout_secs: u64,
    /// Faults of the simulated devices (only with `simulated = true`).
    pub simulated_faults: SimulatedFaults,
}

impl Default for DevicesConfig {
    fn default() -> Self {
        DevicesConfig {
            simulated: false,
            profile: None,
            profiles_dir: None,
            id_card_port: None,
            scanner_port: None,
            document_camera: None,
            camera: None,
            max_command_secs: 120,
            upload_timeout_secs: 60,
            simulated_faults: SimulatedFaults::default(),
        }
    }
}

impl DevicesConfig {
    pub fn kiosk_profile(&self) -> &str {
        self.profile.as_deref().unwrap_or(if self.simulated {
            "kiosk-simulated"
        } else {
            "kiosk-generic"
        })
    }

    pub fn service(&self) -> ServiceConfig {
        ServiceConfig {
            max_command: Duration::from_secs(self.max_command_secs),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.max_command_secs == 0 || self.max_command_secs > 3600 {
            return Err("devices.max_command_secs must be between 1 and 3600".into());
        }
        if self.upload_timeout_secs == 0 || self.upload_timeout_secs > 3600 {
            return Err("devices.upload_timeout_secs must be between 1 and 3600".into());
        }
        if !self.simulated && !self.simulated_faults.is_empty() {
            return Err("devices.simulated_faults need devices.simulated = true".into());
        }
        Ok(())
    }
}
