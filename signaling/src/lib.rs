//! The centre's relay (crate `signaling`, binary `relay`).

pub mod sfu;
