//! Kiosk hardware models as data, and a pure resolver from detected hardware to profiles.
//!
//! Each hardware model is a TOML file ([`DeviceProfile`]): its kind, match rules (USB VID:PID,
//! V4L2/ALSA/evdev name, device path pattern), capabilities (formats, resolutions, frame rates,
//! baud, line settings) and what a technician's self-test should expect. A [`KioskProfile`]
//! composes device profiles into one kiosk (which kinds it has, which model fills each slot,
//! optionally pinned to a device path at that site).
//!
//! What it does not do: it never opens a device, enumerates hardware or reads the clock. The
//! agent enumerates what is plugged in, describes each device as a [`DetectedDevice`], and
//! calls [`resolve`], which is a pure function. Loading files is separate from resolving:
//! [`Catalog::embedded`] uses the files compiled into the crate (so binaries work without the
//! source tree) and [`Catalog::load_dir`] reads a directory laid out like `profiles/`
//! (`devices/*.toml`, `kiosks/*.toml`). Both reject unknown keys and validate every value, and
//! a test loads every shipped file.
//!
//! Model facts are stated only where they are sourced; the generic profiles describe what the
//! agent should prefer and expect, and real modes are enumerated at run time.

mod catalog;
mod glob;
mod model;
mod resolve;
mod validate;

pub use catalog::{Catalog, EMBEDDED_DEVICE_FILES, EMBEDDED_KIOSK_FILES, ProfileError};
pub use glob::glob_match;
pub use model::*;
pub use protocol::device::DeviceKind;
pub use resolve::{DetectedDevice, Resolution, ResolvedSlot, resolve};
