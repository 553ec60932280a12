//! The relay's two master keys — one for case materials, one for recordings — and where they
//! come from.
//!
//! A master key is 32 random bytes written as 64 hex digits in a file of its own, mode 0600.
//! It never lives beside the data it protects: a stolen data directory or its backup must not
//! carry the key that opens it. At start the relay takes each key from
//!
//! 1. the configured path (`privacy.master_key_file`, `recording.key_file`), else
//! 2. a systemd credential (`$CREDENTIALS_DIRECTORY/cases.key`, `…/recordings.key`, given by
//!    `LoadCredential=` in the unit), else
//! 3. in demonstration mode only (`demo = true`, as `deploy/demo.sh` runs it), the old default
//!    inside the data directory, created there when missing.
//!
//! and refuses to start (an error naming the file and what to do) when a key is missing, sits
//! inside the data directory outside the demonstration, or may be read by group or others. The
//! relay never creates a key except in the demonstration; `relay init-keys --dir DIR` does, in
//! a 0700 directory.
//!
//! Beside each key file `P`, a rotation (`relay rotate-key`, [`rotate`]) keeps `P.next` (the
//! new key while objects are re-wrapped) and `P.previous` (the old key until the run is
//! complete). The relay opens objects under any of the three and seals under `P`, so a rotation
//! stopped at any point leaves everything readable.

pub mod rotate;

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::Config;

/// The systemd credential name of the case-materials key, and its file name in `init-keys`.
pub const CASES_FILE: &str = "cases.key";
/// The systemd credential name of the recordings key, and its file name in `init-keys`.
pub const RECORDINGS_FILE: &str = "recordings.key";
/// Where `systemd` puts the unit's credentials (`LoadCredential=`).
pub const CREDENTIALS_ENV: &str = "CREDENTIALS_DIRECTORY";

/// Which of the two master keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Cases,
    Recordings,
}

impl Which {
    pub fn what(self) -> &'static str {
        match self {
            Which::Cases => "case materials",
            Which::Recordings => "recordings",
        }
    }

    pub fn setting(self) -> &'static str {
        match self {
            Which::Cases => "privacy.master_key_file",
            Which::Recordings => "recording.key_file",
        }
    }

    pub fn file_name(self) -> &'static str {
        match self {
            Which::Cases => CASES_FILE,
            Which::Recordings => RECORDINGS_FILE,
        }
    }

    /// The demonstration's default, inside the data directory (as before keys moved out).
    fn demo_path(self, data_dir: &Path) -> PathBuf {
        match self {
            Which::Cases => data_dir.join("privacy").join("master.key"),
            Which::Recordings => data_dir.join("recording.key"),
        }
    }

    fn configured(self, config: &Config) -> Option<&Path> {
        match self {
            Which::Cases => config.privacy.master_key_file.as_deref(),
            Which::Recordings => config.recording.key_file.as_deref(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "no master key for {what}: create the keys with `relay init-keys --dir /etc/rvw/keys` and set {setting} = \"/etc/rvw/keys/{file}\" (or pass it as the systemd credential {file} with LoadCredential=)"
    )]
    NotConfigured {
        what: &'static str,
        setting: &'static str,
        file: &'static str,
    },
    #[error(
        "the master key for {what} ({path}) does not exist: create it with `relay init-keys --dir {dir}` (or point {setting} at the existing key)"
    )]
    Missing {
        what: &'static str,
        path: String,
        dir: String,
        setting: &'static str,
    },
    #[error(
        "the master key for {what} ({path}) is inside the data directory {data_dir}: a copy of the data directory would carry the key that opens it. Move it outside (e.g. /etc/rvw/keys/{file}, mode 0600) and set {setting} to the new path"
    )]
    InsideDataDir {
        what: &'static str,
        path: String,
        data_dir: String,
        file: &'static str,
        setting: &'static str,
    },
    #[error("the master key file {path}: {detail}")]
    File { path: String, detail: String },
    #[error("the master key file {0} does not hold 32 bytes as 64 hex digits")]
    BadKey(String),
}

impl KeyError {
    fn file(path: &Path, detail: impl std::fmt::Display) -> Self {
        KeyError::File {
            path: path.display().to_string(),
            detail: detail.to_string(),
        }
    }
}

/// A master key's bytes with its fingerprint (the first 8 bytes of its SHA-256), which objects
/// record so the right key is found without trying each. Debug output never shows the bytes.
#[derive(Clone)]
pub struct KeyBytes {
    bytes: [u8; 32],
}

impl std::fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyBytes({})", self.id_hex())
    }
}

impl KeyBytes {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self { bytes }
    }

    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        Self { bytes }
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    pub fn id(&self) -> [u8; 8] {
        fingerprint(&self.bytes)
    }

    pub fn id_hex(&self) -> String {
        hex::encode(self.id())
    }
}

/// The first 8 bytes of the key's SHA-256: names a key without revealing it.
pub fn fingerprint(bytes: &[u8; 32]) -> [u8; 8] {
    let digest = Sha256::digest(bytes);
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    id
}

/// Refuses a key file that anyone but its owner may read or write (mode bits beyond 0600).
pub fn check_private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| e.to_string())?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "its mode is {:o}: group or others may read it; run chmod 600 on it (and keep a copy elsewhere)",
            mode & 0o777
        ));
    }
    Ok(())
}

/// Reads a key file: private (no group/other bits) and 64 hex digits.
pub fn read_key_file(path: &Path) -> Result<KeyBytes, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|e| KeyError::file(path, e))?;
    check_private(path).map_err(|d| KeyError::file(path, d))?;
    let bytes = hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| KeyError::BadKey(path.display().to_string()))?;
    Ok(KeyBytes::new(bytes))
}

/// Creates a directory for keys (and its parents) with mode 0700; an existing one that group
/// or others may enter is refused.
pub fn create_key_dir(dir: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| KeyError::file(dir, e))?;
    let mode = std::fs::metadata(dir)
        .map_err(|e| KeyError::file(dir, e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(KeyError::file(
            dir,
            format!(
                "the directory's mode is {:o}: group or others may enter it; run chmod 700 on it",
                mode & 0o777
            ),
        ));
    }
    Ok(())
}

/// Writes `key` to a new file `path` (mode 0600, never replacing one), synced with its
/// directory, so a crash leaves either no file or the whole key.
pub fn write_key_file(path: &Path, key: &KeyBytes) -> Result<(), KeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| KeyError::file(path, e))?;
    writeln!(file, "{}", hex::encode(key.bytes())).map_err(|e| KeyError::file(path, e))?;
    file.sync_all().map_err(|e| KeyError::file(path, e))?;
    sync_dir_of(path);
    Ok(())
}

/// Makes a rename or a new file in `path`'s directory durable (best effort: a failure to open
/// the directory leaves the operating system's usual ordering).
pub(crate) fn sync_dir_of(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
    {
        let _ = d.sync_all();
    }
}

/// `P.next` and `P.previous` beside the key file `P`.
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// A key file's path as the file system resolves it (the file itself may not exist yet).
fn resolved(path: &Path) -> PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) if !dir.as_os_str().is_empty() => resolved(dir).join(name),
        _ => std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf()),
    }
}

/// Whether `path` lies inside `data_dir` (after resolving symbolic links and `..`).
pub fn inside(path: &Path, data_dir: &Path) -> bool {
    resolved(path).starts_with(resolved(data_dir))
}

/// Where the relay's keys are, as [`resolve`] found them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPaths {
    pub cases: PathBuf,
    /// None when the relay neither records encrypted nor was given a recordings key.
    pub recordings: Option<PathBuf>,
}

impl KeyPaths {
    /// Puts the paths into the configuration, so every service reads the same files.
    pub fn apply(&self, config: &mut Config) {
        config.privacy.master_key_file = Some(self.cases.clone());
        config.recording.key_file = self.recordings.clone();
    }
}

/// What the relay needs a recordings key for: sealing new recordings.
fn records_encrypted(config: &Config) -> bool {
    config.media.enabled && config.recording.enabled && config.recording.encrypt
}

/// Finds both keys for `relay serve` (see the module note for the order) and checks each:
/// outside the data directory unless in the demonstration, present, private, well formed.
/// In the demonstration a missing key is created in the data directory. `credentials` is
/// `$CREDENTIALS_DIRECTORY`.
pub fn resolve(config: &Config, credentials: Option<&Path>) -> Result<KeyPaths, KeyError> {
    let cases =
        resolve_one(config, credentials, Which::Cases, true)?.ok_or(KeyError::NotConfigured {
            what: Which::Cases.what(),
            setting: Which::Cases.setting(),
            file: CASES_FILE,
        })?;
    let recordings = resolve_one(
        config,
        credentials,
        Which::Recordings,
        records_encrypted(config),
    )?;
    Ok(KeyPaths { cases, recordings })
}

/// [`resolve`] with `$CREDENTIALS_DIRECTORY` from the environment.
pub fn resolve_from_env(config: &Config) -> Result<KeyPaths, KeyError> {
    let credentials = std::env::var_os(CREDENTIALS_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    resolve(config, credentials.as_deref())
}

fn resolve_one(
    config: &Config,
    credentials: Option<&Path>,
    which: Which,
    needed: bool,
) -> Result<Option<PathBuf>, KeyError> {
    let data_dir = &config.store.data_dir;
    let path = if let Some(p) = which.configured(config) {
        p.to_path_buf()
    } else if let Some(p) = credentials
        .map(|dir| dir.join(which.file_name()))
        .filter(|p| p.exists())
    {
        p
    } else if config.demo {
        let p = which.demo_path(data_dir);
        if !p.exists() {
            if !needed {
                return Ok(None);
            }
            // A directory of its own is made 0700; the data directory itself is left as it is.
            if let Some(dir) = p.parent()
                && !dir.exists()
            {
                create_key_dir(dir)?;
            }
            write_key_file(&p, &KeyBytes::random())?;
            tracing::info!(
                key = which.what(),
                "demonstration: created a master key in the data directory"
            );
        }
        p
    } else if needed {
        return Err(KeyError::NotConfigured {
            what: which.what(),
            setting: which.setting(),
            file: which.file_name(),
        });
    } else {
        return Ok(None);
    };
    if !config.demo && inside(&path, data_dir) {
        return Err(KeyError::InsideDataDir {
            what: which.what(),
            path: path.display().to_string(),
            data_dir: data_dir.display().to_string(),
            file: which.file_name(),
            setting: which.setting(),
        });
    }
    if !path.exists() {
        return Err(KeyError::Missing {
            what: which.what(),
            path: path.display().to_string(),
            dir: path
                .parent()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|| ".".into()),
            setting: which.setting(),
        });
    }
    for p in [
        path.clone(),
        sibling(&path, "next"),
        sibling(&path, "previous"),
    ] {
        if p == path || p.exists() {
            read_key_file(&p)?;
        }
    }
    Ok(Some(path))
}

/// A key file and, during a rotation, its `next` and `previous` siblings: the first key seals,
/// every one opens.
pub fn load_ring(path: &Path) -> Result<Vec<KeyBytes>, KeyError> {
    let mut keys = vec![read_key_file(path)?];
    for suffix in ["next", "previous"] {
        let p = sibling(path, suffix);
        if p.exists() {
            keys.push(read_key_file(&p)?);
        }
    }
    Ok(keys)
}

/// What `relay init-keys` made.
#[derive(Debug)]
pub struct InitReport {
    pub cases: PathBuf,
    pub recordings: PathBuf,
    /// Files that already existed and were left as they are.
    pub kept: Vec<PathBuf>,
}

/// Creates both master keys in `dir` (0700; files 0600), keeping any that already exist.
/// Refuses a directory inside the data directory unless in the demonstration.
pub fn init_keys(config: &Config, dir: &Path) -> Result<InitReport, KeyError> {
    if !config.demo && inside(dir, &config.store.data_dir) {
        return Err(KeyError::InsideDataDir {
            what: "both keys",
            path: dir.display().to_string(),
            data_dir: config.store.data_dir.display().to_string(),
            file: CASES_FILE,
            setting: "--dir",
        });
    }
    create_key_dir(dir)?;
    let mut kept = Vec::new();
    for name in [CASES_FILE, RECORDINGS_FILE] {
        let path = dir.join(name);
        if path.exists() {
            read_key_file(&path)?;
            kept.push(path);
        } else {
            write_key_file(&path, &KeyBytes::random())?;
        }
    }
    Ok(InitReport {
        cases: dir.join(CASES_FILE),
        recordings: dir.join(RECORDINGS_FILE),
        kept,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn config_in(data: &Path) -> Config {
        let mut c = Config::default();
        c.store.data_dir = data.to_path_buf();
        c
    }

    #[test]
    fn init_keys_makes_private_files_and_keeps_existing_ones() {
        let root = tempfile::tempdir().expect("tempdir");
        let config = config_in(&root.path().join("data"));
        let dir = root.path().join("keys");
        let first = init_keys(&config, &dir).expect("created");
        assert!(first.kept.is_empty());
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&first.cases), 0o600);
        assert_eq!(mode(&first.recordings), 0o600);
        let a = read_key_file(&first.cases).expect("read");
        let b = read_key_file(&first.recordings).expect("read");
        assert_ne!(a.id(), b.id(), "two different keys");
        let again = init_keys(&config, &dir).expect("again");
        assert_eq!(again.kept.len(), 2);
        assert_eq!(read_key_file(&first.cases).expect("read").id(), a.id());
    }

    #[test]
    fn init_keys_refuses_the_data_directory_and_open_directories() {
        let root = tempfile::tempdir().expect("tempdir");
        let data = root.path().join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        let config = config_in(&data);
        let err = init_keys(&config, &data.join("keys")).expect_err("refused");
        assert!(matches!(err, KeyError::InsideDataDir { .. }), "{err}");
        let open = root.path().join("open");
        std::fs::create_dir(&open).expect("mkdir");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let err = init_keys(&config, &open).expect_err("refused");
        assert!(err.to_string().contains("chmod 700"), "{err}");
    }

    #[test]
    fn inside_sees_through_dot_dot_and_symbolic_links() {
        let root = tempfile::tempdir().expect("tempdir");
        let data = root.path().join("data");
        std::fs::create_dir_all(data.join("sub")).expect("mkdir");
        std::os::unix::fs::symlink(&data, root.path().join("link")).expect("symlink");
        assert!(inside(&data.join("sub/../k.key"), &data));
        assert!(inside(&root.path().join("link/new/k.key"), &data));
        assert!(!inside(&root.path().join("keys/k.key"), &data));
        assert!(!inside(&root.path().join("data2/k.key"), &data));
    }
}
