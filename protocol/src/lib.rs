//! Wire types shared by the relay, the kiosk agent and the clerk console.
//!
//! This crate holds data only: serde types, ids and protocol constants. It does no I/O and
//! has no async code, so every side can depend on it.

pub mod card_view;
pub mod control;
pub mod device;
pub mod hours;
pub mod idcard;
pub mod inspection;
pub mod jpeg;
pub mod media;
pub mod pii;
pub mod queue;
pub mod selftest;

pub use pii::Pii;
