//! The technician page's PIN: stored as an argon2id hash in `[selftest] pin` (made by
//! `agent hash-pin`), never logged; wrong attempts lock the page for a growing time
//! ([`PinGuard`], sans-IO), and a right one opens a login that lapses when idle
//! ([`Logins`]).

use std::collections::HashMap;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};

/// A PIN is 4 to 12 digits.
pub fn valid_pin(pin: &str) -> bool {
    (4..=12).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit())
}

/// The argon2id hash of a PIN for `[selftest] pin`.
pub fn hash_pin(pin: &str) -> Result<String, String> {
    if !valid_pin(pin) {
        return Err("PIN 须为 4 至 12 位数字 / a PIN is 4 to 12 digits".into());
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(pin.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `hash` looks like what [`hash_pin`] makes.
pub fn is_hash(hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| h.algorithm.as_str().starts_with("argon2"))
}

/// Checks a PIN against the stored hash; a malformed hash never matches.
pub fn verify_pin(pin: &str, hash: &str) -> bool {
    valid_pin(pin)
        && PasswordHash::new(hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(pin.as_bytes(), &parsed)
                .is_ok()
        })
}

/// Wrong attempts allowed before the first lockout.
pub const FREE_ATTEMPTS: u32 = 3;
/// The first lockout; each further wrong PIN doubles it, up to [`MAX_LOCK_MS`].
pub const FIRST_LOCK_MS: i64 = 30_000;
pub const MAX_LOCK_MS: i64 = 15 * 60_000;

/// Rate limit of PIN attempts, for the one kiosk screen (sans-IO: time is passed in).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PinGuard {
    failures: u32,
    locked_until_ms: i64,
}

impl PinGuard {
    /// `Err(ms)` while locked: how long until the next attempt is allowed.
    pub fn check(&self, now_ms: i64) -> Result<(), i64> {
        if now_ms < self.locked_until_ms {
            Err(self.locked_until_ms - now_ms)
        } else {
            Ok(())
        }
    }

    /// Starts an attempt: refused (`Err(ms)`) while locked, otherwise counted as a wrong PIN
    /// right away — before the slow check — so guesses sent together cannot all pass the
    /// check while earlier ones are still hashing. `Ok` carries the lockout this attempt
    /// started if it turns out wrong; [`PinGuard::succeeded`] clears everything.
    pub fn attempt(&mut self, now_ms: i64) -> Result<Option<i64>, i64> {
        self.check(now_ms)?;
        Ok(self.failed(now_ms))
    }

    /// A wrong PIN; returns the lockout it started, if any.
    pub fn failed(&mut self, now_ms: i64) -> Option<i64> {
        self.failures = self.failures.saturating_add(1);
        let over = self.failures.checked_sub(FREE_ATTEMPTS)?;
        let lock = FIRST_LOCK_MS
            .saturating_mul(1i64 << over.min(10))
            .min(MAX_LOCK_MS);
        self.locked_until_ms = now_ms + lock;
        Some(lock)
    }

    pub fn succeeded(&mut self) {
        *self = PinGuard::default();
    }
}

/// A login lapses after this long without a request.
pub const SESSION_IDLE_MS: i64 = 15 * 60_000;
/// At most this many logins at once (a kiosk has one screen).
pub const MAX_SESSIONS: usize = 4;

/// Open technician logins: the SHA-256 of each token with its expiry (sans-IO).
#[derive(Debug, Default)]
pub struct Logins {
    by_hash: HashMap<[u8; 32], i64>,
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Logins {
    /// Opens a login for a new random token and returns the token.
    pub fn open(&mut self, now_ms: i64) -> String {
        self.by_hash.retain(|_, expires| *expires > now_ms);
        if self.by_hash.len() >= MAX_SESSIONS
            && let Some(oldest) = self
                .by_hash
                .iter()
                .min_by_key(|(_, e)| **e)
                .map(|(k, _)| *k)
        {
            self.by_hash.remove(&oldest);
        }
        let token = hex::encode(rand::random::<[u8; 32]>());
        self.by_hash
            .insert(token_hash(&token), now_ms + SESSION_IDLE_MS);
        token
    }

    /// Whether `token` is an open login; a valid one is extended.
    pub fn touch(&mut self, token: &str, now_ms: i64) -> bool {
        match self.by_hash.get_mut(&token_hash(token)) {
            Some(expires) if *expires > now_ms => {
                *expires = now_ms + SESSION_IDLE_MS;
                true
            }
            Some(_) => {
                self.by_hash.remove(&token_hash(token));
                false
            }
            None => false,
        }
    }

    pub fn close(&mut self, token: &str) {
        self.by_hash.remove(&token_hash(token));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_hash_and_verify() {
        let hash = hash_pin("246810").expect("hash");
        assert!(is_hash(&hash) && !hash.contains("246810"));
        assert!(verify_pin("246810", &hash));
        assert!(!verify_pin("246811", &hash));
        assert!(!verify_pin("246810", "not a hash"));
        assert!(hash_pin("12a4").is_err() && hash_pin("123").is_err());
        assert!(!is_hash("1234"));
    }

    #[test]
    fn attempts_in_flight_count_before_their_check() {
        let mut g = PinGuard::default();
        for _ in 0..FREE_ATTEMPTS - 1 {
            assert_eq!(g.attempt(0), Ok(None));
        }
        assert_eq!(g.attempt(0), Ok(Some(FIRST_LOCK_MS)));
        assert_eq!(g.attempt(1), Err(FIRST_LOCK_MS - 1));
        g.succeeded();
        assert_eq!(g.attempt(2), Ok(None));
    }

    #[test]
    fn wrong_pins_lock_for_growing_times() {
        let mut g = PinGuard::default();
        let mut now = 1_000_000;
        for _ in 0..FREE_ATTEMPTS - 1 {
            assert_eq!(g.failed(now), None);
            assert!(g.check(now).is_ok());
        }
        assert_eq!(g.failed(now), Some(FIRST_LOCK_MS));
        assert_eq!(g.check(now + 1), Err(FIRST_LOCK_MS - 1));
        now += FIRST_LOCK_MS;
        assert!(g.check(now).is_ok());
        assert_eq!(g.failed(now), Some(2 * FIRST_LOCK_MS));
        for _ in 0..20 {
            now += MAX_LOCK_MS;
            assert!(g.failed(now).is_some_and(|l| l <= MAX_LOCK_MS));
        }
        g.succeeded();
        assert!(g.check(now).is_ok());
        assert_eq!(g.failed(now), None);
    }

    #[test]
    fn logins_lapse_when_idle_and_are_bounded() {
        let mut s = Logins::default();
        let t = s.open(0);
        assert!(s.touch(&t, SESSION_IDLE_MS - 1));
        // Touching extended it.
        assert!(s.touch(&t, 2 * SESSION_IDLE_MS - 2));
        assert!(!s.touch(&t, 4 * SESSION_IDLE_MS));
        assert!(!s.touch("forged", 0));
        let tokens: Vec<String> = (0..MAX_SESSIONS + 2).map(|i| s.open(i as i64)).collect();
        assert!(s.by_hash.len() <= MAX_SESSIONS);
        assert!(s.touch(tokens.last().expect("token"), 10));
        s.close(tokens.last().expect("token"));
        assert!(!s.touch(tokens.last().expect("token"), 11));
    }
}
