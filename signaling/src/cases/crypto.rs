//! Encryption at rest of case materials: each object gets its own random AES-256-GCM key; that
//! key is stored wrapped (AES-256-GCM) under the relay's master key. The item id is bound into
//! both as associated data, so a sealed blob cannot be moved to another item unnoticed.
//!
//! The master key is 32 random bytes in a file (hex), created with mode 0600 on first start
//! when missing. Losing it makes every stored case material unreadable: keep a copy.

use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

const NONCE: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("cannot read or create the master key {path}: {detail}")]
    KeyFile { path: String, detail: String },
    #[error("the master key file {0} does not hold 32 bytes of hex")]
    BadKey(String),
    #[error("decryption failed (wrong master key or altered data)")]
    Open,
    #[error("encryption failed")]
    Seal,
    #[error("the object was sealed under another master key ({0})")]
    OtherKey(String),
}

/// The relay's master key for case materials.
pub struct MasterKey {
    cipher: Aes256Gcm,
    id: String,
    /// Input for keys derived for other purposes ([`MasterKey::derive`]); never used to encrypt.
    derivation: [u8; 32],
}

/// A sealed object: its wrapped key and ciphertext (each nonce ‖ ciphertext ‖ tag).
pub struct Sealed {
    pub key_id: String,
    pub wrapped_key: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rng().fill_bytes(&mut b);
    b
}

fn seal_with(cipher: &Aes256Gcm, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let nonce = random::<NONCE>();
    let mut out = nonce.to_vec();
    out.extend(
        cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
            .map_err(|_| CryptoError::Seal)?,
    );
    Ok(out)
}

fn open_with(cipher: &Aes256Gcm, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < NONCE {
        return Err(CryptoError::Open);
    }
    let (nonce, body) = sealed.split_at(NONCE);
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad })
        .map_err(|_| CryptoError::Open)
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

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let id = hex::encode(&Sha256::digest(bytes)[..8]);
        let mut derivation = Sha256::new();
        derivation.update(b"rvw-master-key-derivation\0");
        derivation.update(bytes);
        MasterKey {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)),
            id,
            derivation: derivation.finalize().into(),
        }
    }

    /// Loads the key from `path`, creating it (mode 0600, parent directories 0700) when missing.
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
        let err = |detail: String| CryptoError::KeyFile {
            path: path.display().to_string(),
            detail,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                check_private(path).map_err(err)?;
                let bytes = hex::decode(text.trim())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| CryptoError::BadKey(path.display().to_string()))?;
                Ok(Self::from_bytes(bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
                if let Some(dir) = path.parent() {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(dir)
                        .map_err(|e| err(e.to_string()))?;
                }
                let bytes = random::<32>();
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| err(e.to_string()))?;
                writeln!(file, "{}", hex::encode(bytes)).map_err(|e| err(e.to_string()))?;
                file.sync_all().map_err(|e| err(e.to_string()))?;
                tracing::info!(path = %path.display(), "created the case-materials master key; keep a copy");
                Ok(Self::from_bytes(bytes))
            }
            Err(e) => Err(err(e.to_string())),
        }
    }

    /// A 32-byte key for one purpose (`label`), derived from the master key with HMAC-SHA256:
    /// e.g. the key of the keyed hash that finds a booking's mobile number again. Different
    /// labels give unrelated keys; the master key cannot be recovered from one.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        use aws_lc_rs::hmac;
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.derivation);
        let tag = hmac::sign(&key, label.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Short fingerprint stored beside each object.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Encrypts `plain` under a fresh key bound to `item_id`.
    pub fn seal(&self, item_id: &str, plain: &[u8]) -> Result<Sealed, CryptoError> {
        let data_key = random::<32>();
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&data_key));
        let ciphertext = seal_with(&cipher, plain, item_id.as_bytes())?;
        let wrapped_key = seal_with(&self.cipher, &data_key, wrap_aad(item_id).as_bytes())?;
        Ok(Sealed {
            key_id: self.id.clone(),
            wrapped_key,
            ciphertext,
        })
    }

    pub fn open(&self, item_id: &str, sealed: &Sealed) -> Result<Vec<u8>, CryptoError> {
        if sealed.key_id != self.id {
            return Err(CryptoError::OtherKey(sealed.key_id.clone()));
        }
        let data_key = open_with(
            &self.cipher,
            &sealed.wrapped_key,
            wrap_aad(item_id).as_bytes(),
        )?;
        let data_key: [u8; 32] = data_key.try_into().map_err(|_| CryptoError::Open)?;
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&data_key));
        open_with(&cipher, &sealed.ciphertext, item_id.as_bytes())
    }
}

fn wrap_aad(item_id: &str) -> String {
    format!("rvw-case-key:{item_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_and_detect_tampering() {
        let key = MasterKey::from_bytes([7; 32]);
        let sealed = key.seal("item-1", b"secret page").expect("seal");
        assert!(!sealed.ciphertext.windows(6).any(|w| w == b"secret"));
        assert_eq!(key.open("item-1", &sealed).expect("open"), b"secret page");
        assert!(key.open("item-2", &sealed).is_err(), "bound to its item");
        let mut bad = Sealed {
            key_id: sealed.key_id.clone(),
            wrapped_key: sealed.wrapped_key.clone(),
            ciphertext: sealed.ciphertext.clone(),
        };
        bad.ciphertext[20] ^= 1;
        assert!(key.open("item-1", &bad).is_err());
        let other = MasterKey::from_bytes([8; 32]);
        assert!(matches!(
            other.open("item-1", &sealed),
            Err(CryptoError::OtherKey(_))
        ));
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k").join("master.key");
        MasterKey::load_or_create(&path).expect("created");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let refused = MasterKey::load_or_create(&path).err().expect("refused");
        assert!(refused.to_string().contains("chmod 600"), "{refused}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(MasterKey::load_or_create(&path).is_ok());
    }

    #[test]
    fn the_key_file_is_created_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("privacy/master.key");
        let a = MasterKey::load_or_create(&path).expect("created");
        let mode = std::fs::metadata(&path)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = MasterKey::load_or_create(&path).expect("read");
        assert_eq!(a.id(), b.id());
        std::fs::write(&path, "short").expect("write");
        assert!(matches!(
            MasterKey::load_or_create(&path),
            Err(CryptoError::BadKey(_))
        ));
    }
}
