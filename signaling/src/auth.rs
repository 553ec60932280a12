//! Credentials: clerk passwords and login sessions, device secrets.
//!
//! Staff passwords, chosen by people, are stored as argon2id hashes. Session tokens and device
//! secrets are 256-bit random values generated here and shown once; for those the store keeps a
//! SHA-256 digest: a slow hash adds nothing against guessing 256 random bits, and it would make
//! every kiosk login cost tens of milliseconds and megabytes of memory, which hurts exactly when
//! hundreds of kiosks reconnect after a relay restart.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("could not hash the secret: {0}")]
    Hash(String),
}

/// Hashes a password or device secret with argon2id and a random salt (PHC string).
pub fn hash_secret(secret: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Checks a secret against a stored hash. A malformed stored hash never matches.
pub fn verify_secret(secret: &str, stored_hash: &str) -> bool {
    PasswordHash::new(stored_hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(secret.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Stored form of a device secret: `sha256:<hex digest>`.
pub fn hash_device_secret(secret: &str) -> String {
    format!("sha256:{}", token_hash(secret))
}

/// Checks a device secret against its stored form in constant time. Anything that is not a
/// `sha256:` digest of the right length never matches.
pub fn verify_device_secret(secret: &str, stored: &str) -> bool {
    let Some(expected) = stored.strip_prefix("sha256:") else {
        return false;
    };
    let actual = token_hash(secret);
    if expected.len() != actual.len() {
        return false;
    }
    expected
        .bytes()
        .zip(actual.bytes())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// A fresh random token (256 bits, URL-safe base64).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// How a session token is looked up in the store.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A password hash that matches nothing, verified against when a username does not exist so
/// that a failed login takes the same time either way.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_secret(&new_token()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_the_right_secret() {
        let h = hash_secret("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_secret("correct horse", &h));
        assert!(!verify_secret("wrong", &h));
        assert!(!verify_secret("correct horse", "not a hash"));
    }

    #[test]
    fn device_secrets_verify_only_the_right_secret() {
        let secret = new_token();
        let stored = hash_device_secret(&secret);
        assert!(stored.starts_with("sha256:"));
        assert!(verify_device_secret(&secret, &stored));
        assert!(!verify_device_secret("wrong", &stored));
        assert!(!verify_device_secret(&secret, "sha256:abc"));
        assert!(!verify_device_secret(&secret, &token_hash(&secret)));
    }

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), token_hash(&b));
    }
}
