//! The unified call queue (统一叫号排队系统) of each centre.
//!
//! [`core`] is sans-IO: a state machine fed commands and the current time, returning events.
//! [`driver`] is the thin tokio task around one centre's core: it persists events before
//! applying them, answers the caller, and pushes updates to clerk consoles and kiosks.
//!
//! What it does not do: authentication (the HTTP layer resolves who is calling and only passes
//! commands for that caller's own centre), and media or device control (sessions do that).

pub mod core;
pub mod driver;
pub mod error;
pub mod ticket;

#[cfg(test)]
mod tests;

pub use self::core::{Action, Category, Command, Estimate, Event, QueueConfig, QueueCore, Window};
pub use driver::{QueueHandle, QueueHub, Session, SessionChange};
pub use error::QueueError;
pub use ticket::{EndReason, Ticket, service_day};
