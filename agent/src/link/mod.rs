//! The agent's links to the relay: the control WebSocket and the media peer connection.

pub mod config;
pub mod control;
pub mod rtc;
