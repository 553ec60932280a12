//! Kiosk devices: one trait per device kind, with real and simulated implementations.

pub mod idcard;
pub mod scanner;
