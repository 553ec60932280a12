//! TLS material for the relay's HTTPS listener.

use std::path::{Path, PathBuf};

use axum_server::tls_rustls::RustlsConfig;

use crate::config::TlsConfig;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid certificate or key: {0}")]
    Invalid(String),
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
}

/// Where a generated self-signed certificate is kept.
pub fn self_signed_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("tls");
    (
        dir.join("relay-self-signed.crt"),
        dir.join("relay-self-signed.key"),
    )
}

/// Loads (or, when configured, creates) the relay's certificate.
pub async fn rustls_config(tls: &TlsConfig, data_dir: &Path) -> Result<RustlsConfig, TlsError> {
    let (cert, key) = match (&tls.cert_file, &tls.key_file) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => ensure_self_signed(data_dir, &tls.self_signed_names)?,
    };
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.display().to_string(),
            source,
        })
    };
    RustlsConfig::from_pem(read(&cert)?, read(&key)?)
        .await
        .map_err(|e| TlsError::Invalid(e.to_string()))
}

/// Creates the self-signed certificate once; later starts reuse it so kiosks keep trusting it.
pub fn ensure_self_signed(
    data_dir: &Path,
    names: &[String],
) -> Result<(PathBuf, PathBuf), TlsError> {
    let (cert_path, key_path) = self_signed_paths(data_dir);
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    let mut all: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    all.extend(names.iter().cloned());
    let certified =
        rcgen::generate_simple_self_signed(all).map_err(|e| TlsError::Generate(e.to_string()))?;
    let write = |p: &Path, data: String| {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
                path: dir.display().to_string(),
                source,
            })?;
        }
        std::fs::write(p, data).map_err(|source| TlsError::Write {
            path: p.display().to_string(),
            source,
        })
    };
    write(&key_path, certified.signing_key.serialize_pem())?;
    restrict(&key_path);
    write(&cert_path, certified.cert.pem())?;
    Ok((cert_path, key_path))
}

#[cfg(unix)]
fn restrict(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    // Best effort: the directory is the relay's own; a failure leaves the umask's mode.
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

#[cfg(not(unix))]
fn restrict(_path: &Path) {}
