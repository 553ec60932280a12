//! The centre's relay (crate `signaling`, binary `relay`).

pub mod recorder;
pub mod sfu;
