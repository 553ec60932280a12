//! Encryption at rest of case materials: each object gets its own random AES-256-GCM key; that
//! key is stored wrapped (AES-256-GCM) under the relay's master key. The item id is bound into
//! both as associated data, so a sealed blob cannot be moved to another item unnoticed.
//!
//! The master key is 32 random bytes in a file (hex) outside the data directory (see
//! [`crate::keys`]). Losing it makes every stored case material unreadable: keep a copy. During
//! a key rotation objects are under the old or the new key; a [`Keyring`] opens both.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

const NONCE: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("cannot read the master key {path}: {detail}")]
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

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let id = crate::keys::KeyBytes::new(bytes).id_hex();
        let mut derivation = Sha256::new();
        derivation.update(b"rvw-master-key-derivation\0");
        derivation.update(bytes);
        MasterKey {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)),
            id,
            derivation: derivation.finalize().into(),
        }
    }

    pub fn from_key(key: &crate::keys::KeyBytes) -> Self {
        Self::from_bytes(*key.bytes())
    }

    /// Loads the key file `path` (it must exist, be private and hold 64 hex digits).
    pub fn load(path: &Path) -> Result<Self, CryptoError> {
        crate::keys::read_key_file(path)
            .map(|k| Self::from_key(&k))
            .map_err(|e| CryptoError::KeyFile {
                path: path.display().to_string(),
                detail: e.to_string(),
            })
    }

    /// Unwraps an object's key under this master key and wraps it under `to`: the object's
    /// ciphertext stays as it is.
    pub fn rewrap(
        &self,
        item_id: &str,
        wrapped_key: &[u8],
        to: &MasterKey,
    ) -> Result<Vec<u8>, CryptoError> {
        let aad = wrap_aad(item_id);
        let data_key = open_with(&self.cipher, wrapped_key, aad.as_bytes())?;
        seal_with(&to.cipher, &data_key, aad.as_bytes())
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

    /// Decrypts an object sealed under this master key.
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

/// The master keys a relay holds: the first seals new objects; any of them opens an object
/// whose key id it has (during a rotation: the current, the next and the previous key).
pub struct Keyring {
    keys: Vec<MasterKey>,
}

impl From<MasterKey> for Keyring {
    fn from(key: MasterKey) -> Self {
        Keyring { keys: vec![key] }
    }
}

impl Keyring {
    /// The key file `path` and its rotation siblings (`path.next`, `path.previous`).
    pub fn load(path: &Path) -> Result<Self, CryptoError> {
        let keys = crate::keys::load_ring(path).map_err(|e| CryptoError::KeyFile {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        Ok(Keyring {
            keys: keys.iter().map(MasterKey::from_key).collect(),
        })
    }

    /// The id of the sealing key.
    pub fn id(&self) -> &str {
        self.keys.first().map(MasterKey::id).unwrap_or_default()
    }

    pub fn seal(&self, item_id: &str, plain: &[u8]) -> Result<Sealed, CryptoError> {
        self.keys
            .first()
            .ok_or(CryptoError::Seal)?
            .seal(item_id, plain)
    }

    pub fn open(&self, item_id: &str, sealed: &Sealed) -> Result<Vec<u8>, CryptoError> {
        self.keys
            .iter()
            .find(|k| k.id() == sealed.key_id)
            .ok_or_else(|| CryptoError::OtherKey(sealed.key_id.clone()))?
            .open(item_id, sealed)
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
    fn rewrapping_keeps_the_ciphertext_and_moves_the_key() {
        let old = MasterKey::from_bytes([1; 32]);
        let new = MasterKey::from_bytes([2; 32]);
        let sealed = old.seal("item-9", b"page").expect("seal");
        let wrapped = old
            .rewrap("item-9", &sealed.wrapped_key, &new)
            .expect("rewrap");
        let moved = Sealed {
            key_id: new.id().to_owned(),
            wrapped_key: wrapped,
            ciphertext: sealed.ciphertext.clone(),
        };
        assert_eq!(new.open("item-9", &moved).expect("open"), b"page");
        let ring = Keyring {
            keys: vec![new, old],
        };
        assert_eq!(ring.open("item-9", &moved).expect("new"), b"page");
        assert_eq!(ring.open("item-9", &sealed).expect("old"), b"page");
        assert!(
            MasterKey::from_bytes([1; 32])
                .rewrap(
                    "item-8",
                    &sealed.wrapped_key,
                    &MasterKey::from_bytes([2; 32])
                )
                .is_err(),
            "a wrapped key is bound to its item"
        );
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("master.key");
        crate::keys::write_key_file(&path, &crate::keys::KeyBytes::random()).expect("write");
        assert!(MasterKey::load(&path).is_ok());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let refused = MasterKey::load(&path).err().expect("refused");
        assert!(refused.to_string().contains("chmod 600"), "{refused}");
        std::fs::write(&path, "short").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(MasterKey::load(&path).is_err(), "not a key");
    }
}
