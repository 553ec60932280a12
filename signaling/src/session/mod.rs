//! Served sessions: what happens between a clerk and a kiosk while a remote ticket is being
//! served, from the moment a window calls it until it leaves that window.
//!
//! The queue decides when a session starts and ends ([`crate::queue::SessionChange`]) and tells
//! every [`SessionObserver`] synchronously, in order, from its own task. Observers must not
//! block: they update their own state and hand slow work to their own tasks.
//!
//! [`links::Links`] is the registry of live kiosk and console connections and routes device
//! commands between them: a console may operate the devices of a kiosk only while it serves that
//! kiosk's ticket, and a kiosk's answers reach only the console that asked.

pub mod links;

use std::sync::Arc;

use crate::queue::{Session, SessionChange};

/// Told about every remote session start and end, and the sessions resumed after a restart.
pub trait SessionObserver: Send + Sync + 'static {
    fn session_changed(&self, change: &SessionChange);
    /// Sessions that were in progress when the relay stopped and resume now.
    fn sessions_resumed(&self, sessions: &[Session]) {
        for s in sessions {
            self.session_changed(&SessionChange::Started(s.clone()));
        }
    }
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

    fn sessions_resumed(&self, sessions: &[Session]) {
        for o in &self.0 {
            o.sessions_resumed(sessions);
        }
    }
}
