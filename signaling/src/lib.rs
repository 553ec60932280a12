//! The centre's relay (crate `signaling`, binary `relay`).
//!
//! It runs the unified call queue of each centre, authenticates kiosks and clerks, carries the
//! control protocol between them, forwards media (SFU) and records served sessions.
//! Each concern is a module whose core is sans-IO where it has state worth testing in virtual
//! time (`queue`, `sfu`), wrapped by a thin tokio driver; `http` is the axum surface.

pub mod admin;
pub mod appointments;
pub mod audit;
pub mod auth;
pub mod cases;
pub mod clock;
pub mod config;
pub mod domain;
pub mod evaluation;
pub mod http;
pub mod login_guard;
pub mod media;
pub mod metrics;
pub mod password_policy;
pub mod queue;
pub mod recorder;
pub mod registry;
pub mod relay;
pub mod session;
pub mod sfu;
pub mod store;
pub mod tls;

/// Makes aws-lc-rs the process-wide TLS crypto provider. Some dependencies enable rustls' ring
/// backend as well, and with two backends compiled in rustls cannot pick one by itself. Call it
/// first thing in `main` (and in tests that open TLS connections); calling it again is harmless.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
