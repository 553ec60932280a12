//! Starting a real `relay` process and seeding its store, for the end-to-end tests, signaling's
//! own process tests and benchmarks, and `loadgen`. It is a crate of its own because those are
//! four consumers in three packages that each had a copy; it is not part of the product.
//!
//! [`RelayCommand`] spawns `relay serve` on loopback and waits, bounded, for its ready file;
//! [`seed`] writes centres, windows, clerks and kiosks straight into a data directory through
//! the store before the relay starts.

mod process;
pub mod seed;
pub mod staff;

/// The relay's TOTP functions, for tests that type codes into a page.
pub use signaling::totp;

pub use process::{Ready, RelayCommand, RelayProcess, wait_ready};
