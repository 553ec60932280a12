//! Kiosk devices: one trait per device kind, with real and simulated implementations, and the
//! [`service`] that carries out the clerk's device commands on them.
//!
//! - [`idcard`], [`scanner`], [`still`]: drivers and simulators;
//! - [`service`] + [`workers`]: XFS4IoT-style command handling, one worker per device kind;
//! - [`activity`]: what the kiosk screen shows (device activity, prompts) and the resident's
//!   answers;
//! - [`upload`]: HTTPS uploads of stills and the ID photo to the relay;
//! - [`setup`]: opening the devices named by `[devices]` in the configuration;
//! - [`faults`]: faults a simulated kiosk can be given (`[devices.simulated_faults]`).

pub mod activity;
pub mod config;
pub mod faults;
pub mod idcard;
pub mod scanner;
pub mod service;
pub mod setup;
pub mod still;
pub mod upload;
pub mod workers;
