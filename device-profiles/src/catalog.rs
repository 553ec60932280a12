//! Loading and validating profile files: from the copies compiled into the crate, from a
//! directory, or from text the caller already has.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::model::{DeviceProfile, KioskProfile};
use crate::validate;

macro_rules! embed {
    ($dir:literal, $file:literal) => {
        (
            $file,
            include_str!(concat!("../profiles/", $dir, "/", $file)),
        )
    };
}

/// Device profile files compiled into the crate, as (file name, text).
pub const EMBEDDED_DEVICE_FILES: &[(&str, &str)] = &[
    embed!("devices", "generic-alsa-microphone.toml"),
    embed!("devices", "generic-alsa-speaker.toml"),
    embed!("devices", "generic-hid-qr-scanner.toml"),
    embed!("devices", "generic-sam-serial-reader.toml"),
    embed!("devices", "generic-serial-qr-scanner.toml"),
    embed!("devices", "generic-uvc-camera.toml"),
    embed!("devices", "generic-uvc-document-camera.toml"),
    embed!("devices", "simulated-camera.toml"),
    embed!("devices", "simulated-document-camera.toml"),
    embed!("devices", "simulated-id-card-reader.toml"),
    embed!("devices", "simulated-microphone.toml"),
    embed!("devices", "simulated-qr-scanner.toml"),
    embed!("devices", "simulated-speaker.toml"),
];

/// Kiosk profile files compiled into the crate, as (file name, text).
pub const EMBEDDED_KIOSK_FILES: &[(&str, &str)] = &[
    embed!("kiosks", "kiosk-generic.toml"),
    embed!("kiosks", "kiosk-simulated.toml"),
];

/// Why a profile set did not load. Messages name the file and the field.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{file}: {source}")]
    Parse {
        file: String,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("{file}: {field}: {reason}")]
    Invalid {
        file: String,
        field: String,
        reason: String,
    },
    #[error("{file}: id {id:?} is already defined in {first}")]
    DuplicateId {
        file: String,
        id: String,
        first: String,
    },
    #[error("{file}: profile files are named <id>.toml")]
    BadFileName { file: String },
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A validated set of device and kiosk profiles, keyed by id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    devices: BTreeMap<String, DeviceProfile>,
    kiosks: BTreeMap<String, KioskProfile>,
}

impl Catalog {
    /// The profiles shipped with this build.
    pub fn embedded() -> Result<Catalog, ProfileError> {
        Catalog::from_sources(
            EMBEDDED_DEVICE_FILES.iter().copied(),
            EMBEDDED_KIOSK_FILES.iter().copied(),
        )
    }

    /// Parses and validates profile texts given as (file name, text). Pure: no I/O.
    pub fn from_sources<'a>(
        device_files: impl IntoIterator<Item = (&'a str, &'a str)>,
        kiosk_files: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Catalog, ProfileError> {
        let mut catalog = Catalog::default();
        let mut origin: BTreeMap<String, String> = BTreeMap::new();
        for (file, text) in device_files {
            let stem = stem(file)?;
            let profile: DeviceProfile = parse(file, text)?;
            validate::device(&profile, stem).map_err(|e| invalid(file, e))?;
            if let Some(first) = origin.insert(profile.id.clone(), file.to_string()) {
                return Err(ProfileError::DuplicateId {
                    file: file.into(),
                    id: profile.id,
                    first,
                });
            }
            catalog.devices.insert(profile.id.clone(), profile);
        }
        for (file, text) in kiosk_files {
            let stem = stem(file)?;
            let kiosk: KioskProfile = parse(file, text)?;
            validate::kiosk(&kiosk, stem, &catalog.devices).map_err(|e| invalid(file, e))?;
            if let Some(first) = origin.insert(kiosk.id.clone(), file.to_string()) {
                return Err(ProfileError::DuplicateId {
                    file: file.into(),
                    id: kiosk.id,
                    first,
                });
            }
            catalog.kiosks.insert(kiosk.id.clone(), kiosk);
        }
        Ok(catalog)
    }

    /// Reads `dir/devices/*.toml` and `dir/kiosks/*.toml` (either may be absent), in file-name
    /// order.
    pub fn load_dir(dir: &Path) -> Result<Catalog, ProfileError> {
        let devices = read_toml_files(&dir.join("devices"))?;
        let kiosks = read_toml_files(&dir.join("kiosks"))?;
        Catalog::from_sources(
            devices.iter().map(|(n, t)| (n.as_str(), t.as_str())),
            kiosks.iter().map(|(n, t)| (n.as_str(), t.as_str())),
        )
    }

    pub fn device(&self, id: &str) -> Option<&DeviceProfile> {
        self.devices.get(id)
    }

    pub fn kiosk(&self, id: &str) -> Option<&KioskProfile> {
        self.kiosks.get(id)
    }

    pub fn devices(&self) -> impl Iterator<Item = &DeviceProfile> {
        self.devices.values()
    }

    pub fn kiosks(&self) -> impl Iterator<Item = &KioskProfile> {
        self.kiosks.values()
    }
}

fn parse<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, ProfileError> {
    toml::from_str(text).map_err(|e| ProfileError::Parse {
        file: file.into(),
        source: Box::new(e),
    })
}

fn invalid(file: &str, e: validate::Invalid) -> ProfileError {
    ProfileError::Invalid {
        file: file.into(),
        field: e.field,
        reason: e.reason,
    }
}

fn stem(file: &str) -> Result<&str, ProfileError> {
    let name = file.rsplit('/').next().unwrap_or(file);
    name.strip_suffix(".toml")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ProfileError::BadFileName { file: file.into() })
}

fn read_toml_files(dir: &Path) -> Result<Vec<(String, String)>, ProfileError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ProfileError::Io { path, source }
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(io(dir))?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.push((name, text));
        }
    }
    files.sort();
    Ok(files)
}
