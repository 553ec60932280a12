//! Served sessions: what happens between a clerk and a kiosk while a remote ticket is being
//! served, from the moment a window calls it until it leaves that window. In this crate
//! "session" means that and only that; a WebSocket is a *connection*, a staff sign-in a
//! *login*.
//!
//! [`core::SwitchboardCore`] is the one owner of who is connected (kiosks by device, newest
//! connection wins; consoles by connection), which sessions are served and by whom (derived
//! from the queue's ticket changes), where device commands and their answers go, and between
//! which connections a session's media flows. It is I/O-free and tested in virtual time.
//! [`driver::Switchboard`] is its thin shell: the connections' outboxes and close signals,
//! the deadline task, and the [`SessionObserver`]s (media, 好差评) it tells of every session
//! start and end, synchronously and in order. Observers must not block: they update their own
//! state and hand slow work to their own tasks.

pub mod core;
pub mod driver;
pub mod typed;

use std::sync::Arc;

pub use self::core::{CloseReason, ConnId, MediaRoute, TypedAccepted};
pub use self::driver::{ConsoleLine, KioskLine, OUTBOX, Presence, Switchboard};
use crate::queue::SessionChange;

/// Told about every remote session start and end (resumed sessions after a restart are
/// starts), and when a session's media route may have changed.
pub trait SessionObserver: Send + Sync + 'static {
    fn session_changed(&self, change: &SessionChange);
    /// A connection, a console's media or a session changed where some session's media
    /// should flow; read [`Switchboard::media_routes`] for the new picture.
    fn media_routes_changed(&self) {}
}

/// Several observers, told in order.
#[derive(Default, Clone)]
pub struct Observers(Vec<Arc<dyn SessionObserver>>);

impl Observers {
    pub fn new(list: Vec<Arc<dyn SessionObserver>>) -> Self {
        Self(list)
    }
}

impl SessionObserver for Observers {
    fn session_changed(&self, change: &SessionChange) {
        for o in &self.0 {
            o.session_changed(change);
        }
    }

    fn media_routes_changed(&self) {
        for o in &self.0 {
            o.media_routes_changed();
        }
    }
}
