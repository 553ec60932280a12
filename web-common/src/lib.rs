//! What the relay's and the agent's web servers share: the security-header middleware and the
//! web pages' common script (`common.js`: elements, Shanghai time, durations, JSON requests).
//!
//! A crate of its own because both deployables serve web pages (the relay its consoles, the
//! agent its kiosk and technician pages): STYLE keeps shared crates for when a second consumer
//! appears, and here there are two. It holds no policy of either server — each passes its own
//! content security policy and cache rule — and no routing: each server mounts the script
//! where its pages find it.

mod headers;

pub use headers::{CacheControl, SecurityHeaders, security_headers};

/// The pages' common script, served as it is by both servers.
pub const COMMON_JS: &str = include_str!("../web/common.js");

/// The content type the script is served with.
pub const JS_CONTENT_TYPE: &str = "text/javascript; charset=utf-8";
