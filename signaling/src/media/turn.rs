//! Short-lived TURN credentials for coturn's REST mode (`use-auth-secret`).
//!
//! coturn and the relay share one secret. The relay hands each client a username
//! `<expiry unix seconds>:<device or clerk id>` and the password
//! `base64(HMAC-SHA1(secret, username))`; coturn recomputes the password and refuses the
//! username once its expiry has passed. Nothing is stored on either side.

use std::path::Path;

use aws_lc_rs::hmac;
use base64::Engine;
use protocol::control::IceServer;

use super::MediaError;
use crate::config::TurnSection;

/// TURN/STUN servers and the secret their credentials are derived from.
#[derive(Clone)]
pub struct TurnCredentials {
    urls: Vec<String>,
    key: Option<hmac::Key>,
    ttl_secs: u64,
}

impl std::fmt::Debug for TurnCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnCredentials")
            .field("urls", &self.urls)
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

/// The password coturn expects for `username` (`use-auth-secret`).
pub fn rest_password(secret: &[u8], username: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    base64::engine::general_purpose::STANDARD.encode(hmac::sign(&key, username.as_bytes()))
}

impl TurnCredentials {
    /// From the `[turn]` section; `None` when no server is configured.
    pub fn load(section: &TurnSection) -> Result<Option<Self>, MediaError> {
        if section.urls.is_empty() {
            return Ok(None);
        }
        let key = match &section.secret_file {
            Some(path) => Some(read_secret(path)?),
            None => None,
        };
        Ok(Some(Self::new(
            section.urls.clone(),
            key.as_deref(),
            section.credential_ttl_secs,
        )))
    }

    pub fn new(urls: Vec<String>, secret: Option<&[u8]>, ttl_secs: u64) -> Self {
        Self {
            urls,
            key: secret.map(|s| hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, s)),
            ttl_secs,
        }
    }

    /// The ICE servers for `user` (a device or clerk id), valid for the configured time from
    /// `now_unix_secs`. STUN URLs go without credentials; TURN URLs share one credential.
    pub fn ice_servers(&self, user: &str, now_unix_secs: u64) -> Vec<IceServer> {
        let (stun, turn): (Vec<String>, Vec<String>) = self
            .urls
            .iter()
            .cloned()
            .partition(|u| u.starts_with("stun:"));
        let mut servers = Vec::new();
        if !stun.is_empty() {
            servers.push(IceServer {
                urls: stun,
                username: None,
                credential: None,
            });
        }
        if let Some(key) = &self.key
            && !turn.is_empty()
        {
            let username = format!("{}:{user}", now_unix_secs.saturating_add(self.ttl_secs));
            let tag = hmac::sign(key, username.as_bytes());
            servers.push(IceServer {
                urls: turn,
                username: Some(username),
                credential: Some(base64::engine::general_purpose::STANDARD.encode(tag)),
            });
        }
        servers
    }
}

fn read_secret(path: &Path) -> Result<Vec<u8>, MediaError> {
    let text = std::fs::read_to_string(path).map_err(|e| MediaError::Setup {
        what: "reading the TURN secret file",
        detail: format!("{}: {e}", path.display()),
    })?;
    let secret = text.trim();
    if secret.len() < 16 {
        return Err(MediaError::Setup {
            what: "reading the TURN secret file",
            detail: format!(
                "{}: the secret must be at least 16 characters",
                path.display()
            ),
        });
    }
    Ok(secret.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_coturns_hmac_sha1_in_base64() {
        // Computed independently: base64(hmac.new(secret, username, sha1).digest()).
        assert_eq!(
            rest_password(b"north-gate-secret", "1700086400:kiosk-tp-01"),
            "c6eJ3/8hcwqFKek+t/Gg0EjzV8o="
        );
    }

    #[test]
    fn turn_urls_get_an_expiring_username_and_stun_urls_none() {
        let creds = TurnCredentials::new(
            vec![
                "stun:stun.example:3478".into(),
                "turn:turn.example:3478?transport=udp".into(),
                "turns:turn.example:5349?transport=tcp".into(),
            ],
            Some(b"north-gate-secret"),
            86_400,
        );
        let servers = creds.ice_servers("kiosk-tp-01", 1_700_000_000);
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].urls, vec!["stun:stun.example:3478".to_owned()]);
        assert!(servers[0].username.is_none());
        assert_eq!(servers[1].urls.len(), 2);
        assert_eq!(
            servers[1].username.as_deref(),
            Some("1700086400:kiosk-tp-01")
        );
        assert_eq!(
            servers[1].credential.as_deref(),
            Some("c6eJ3/8hcwqFKek+t/Gg0EjzV8o=")
        );
    }

    #[test]
    fn short_secrets_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("turn.secret");
        std::fs::write(&file, "short\n").expect("write");
        let section = TurnSection {
            urls: vec!["turn:127.0.0.1:3478".into()],
            secret_file: Some(file),
            credential_ttl_secs: 600,
        };
        assert!(TurnCredentials::load(&section).is_err());
    }
}
