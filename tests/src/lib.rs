//! Harness for cross-process end-to-end tests: the real `relay` and `agent` binaries on
//! loopback ports chosen by the OS, and headless Chromium driven over the DevTools protocol.
//!
//! The binaries are looked up next to the test executable (`target/<profile>/`), so build them
//! first (`cargo build --workspace --bins`); `RVW_BIN_DIR` overrides the directory.

pub mod a11y;
pub mod browser;
pub mod clerk;
pub mod hcp;
pub mod procs;
pub mod staff;
pub mod udp_path;

pub use browser::{Browser, Page};
pub use procs::{Agent, DemoData, Relay};
pub use udp_path::UdpPath;
