//! The media session's decisions, sans IO: signals from the control link, results of the
//! link's operations and the passage of time go in; the operations to run come out.
//!
//! It never reads a clock (every input carries `now`) and never touches the media link
//! itself; [`super::driver`] runs what it asks for and feeds the results back. One operation
//! is outstanding at a time, which is how the driver runs them.
//!
//! The rules, and why:
//! - The first `Online` starts the media link (pipelines and a first peer, nothing sending),
//!   then offers. Every later offer comes from a **new peer connection**: the relay answers
//!   every offer with a fresh SFU peer and drops the kiosk's peer whenever its control
//!   connection ends, so an ICE restart on the old connection (same DTLS session) would
//!   never connect to it. A new connection costs one DTLS handshake; the pipelines, devices
//!   and encoders stay as they are.
//! - An answer counts only if it carries the request id of the offer in flight; anything else
//!   is stale (an earlier offer, a replaced connection) and is ignored, counted.
//! - `Sending` is applied as it comes; `Offline` stops sending (the relay has dropped the peer
//!   and will say again when to send).
//! - Recovery: no answer within `answer_timeout`, no connection within `connect_timeout`
//!   after the answer, `failed`/`closed`, or `disconnected` for longer than
//!   `disconnected_grace` → a new connection and offer, at once the first time and then after
//!   a doubling pause capped at `max_backoff`; a connection that comes up resets the pause.
//!   Nothing is retried while the control link is offline; its return triggers the offer.

use std::time::{Duration, Instant};

use crate::link::rtc::{ConnectionState, TurnServer};

/// Media request ids start here so they never meet the control link's own request ids
/// (which count up from 1): the relay's `error` to an offer carries the offer's id.
pub const FIRST_REQUEST_ID: u64 = 1 << 40;

/// Timings of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreConfig {
    pub answer_timeout: Duration,
    pub connect_timeout: Duration,
    pub disconnected_grace: Duration,
    /// Pause after the second failure in a row; it doubles up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for CoreConfig {
    fn default() -> CoreConfig {
        CoreConfig {
            answer_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            disconnected_grace: Duration::from_secs(3),
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The control link is up, with this TURN server (if the relay offers one).
    Online {
        turn: Option<TurnServer>,
    },
    Offline,
    Answer {
        request_id: u64,
        sdp: String,
    },
    Sending(bool),
    /// The media link's connection state changed.
    Connection(ConnectionState),
    /// Results of the operations asked for.
    Started(Result<(), String>),
    OfferCreated(Result<String, String>),
    /// `false`: the control link could not take the offer.
    OfferQueued {
        request_id: u64,
        queued: bool,
    },
    AnswerApplied {
        request_id: u64,
        result: Result<(), String>,
    },
}

/// What to do. Each of `Start`, `CreateOffer` and `ApplyAnswer` is answered by an input.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Build the media link, with this TURN server, nothing sending → `Started`.
    Start { turn: Option<TurnServer> },
    /// Use this TURN server from the next connection on.
    SetTurn(Option<TurnServer>),
    /// An offer from the current peer (`new_connection: false`, only its very first) or from
    /// a new peer connection → `OfferCreated`.
    CreateOffer { new_connection: bool },
    /// Hand the offer to the control link → `OfferQueued`.
    SendOffer { request_id: u64, sdp: String },
    /// → `AnswerApplied`.
    ApplyAnswer { request_id: u64, sdp: String },
    /// Camera, document preview and microphone on (video starting with a keyframe) or off.
    SetSending(bool),
}

/// Where the session is, for the kiosk screen and technicians.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The control link is offline (or has never been online).
    Offline,
    Starting,
    Offering,
    AwaitingAnswer,
    Applying,
    Connecting,
    Connected,
    /// Connectivity lost; ICE may still recover within the grace period.
    Disconnected,
    /// Pausing before the next attempt.
    Waiting,
}

/// Counters, for status and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CoreCounters {
    pub offers_sent: u64,
    pub answers_applied: u64,
    pub stale_answers: u64,
    /// New connections after the first (recoveries and re-offers after the relay returned).
    pub new_connections: u64,
    pub failures: u64,
    pub connected: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    None,
    Start,
    Offer,
    Apply(u64),
}

/// See the module docs.
#[derive(Debug)]
pub struct SessionCore {
    config: CoreConfig,
    online: bool,
    turn: Option<TurnServer>,
    /// The TURN server the link has (or was started with).
    applied_turn: Option<TurnServer>,
    started: bool,
    /// An offer has been made from the current peer, so the next must come from a new one.
    peer_used: bool,
    want_sending: bool,
    applied_sending: Option<bool>,
    phase: Phase,
    op: Op,
    awaiting: Option<u64>,
    deadline: Option<Instant>,
    next_request_id: u64,
    /// The control link came back while an operation was in flight: offer anew after it.
    reoffer: bool,
    /// Failures in a row since the last connection.
    failures_in_row: u32,
    actions: std::collections::VecDeque<Action>,
    counters: CoreCounters,
}

impl SessionCore {
    pub fn new(config: CoreConfig) -> SessionCore {
        SessionCore {
            config,
            online: false,
            turn: None,
            applied_turn: None,
            started: false,
            peer_used: false,
            want_sending: false,
            applied_sending: None,
            phase: Phase::Offline,
            op: Op::None,
            awaiting: None,
            deadline: None,
            next_request_id: FIRST_REQUEST_ID,
            reoffer: false,
            failures_in_row: 0,
            actions: std::collections::VecDeque::new(),
            counters: CoreCounters::default(),
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn counters(&self) -> CoreCounters {
        self.counters
    }

    /// Whether camera, document preview and microphone should be sending.
    pub fn sending(&self) -> bool {
        self.want_sending
    }

    /// The next action to run, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) wants to be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.deadline else {
            return;
        };
        if now < deadline || self.op != Op::None {
            return;
        }
        self.deadline = None;
        match self.phase {
            Phase::AwaitingAnswer => {
                tracing::info!("no media answer in time; offering again");
                self.fail(now);
            }
            Phase::Connecting => {
                tracing::info!("media did not connect in time; reconnecting");
                self.fail(now);
            }
            Phase::Disconnected => {
                tracing::info!("media stayed disconnected; reconnecting");
                self.fail(now);
            }
            Phase::Waiting => self.attempt(),
            _ => {}
        }
    }

    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Online { turn } => {
                self.online = true;
                self.turn = turn;
                self.failures_in_row = 0;
                self.awaiting = None;
                self.deadline = None;
                if self.op == Op::None {
                    self.attempt();
                } else {
                    // The operation in flight finishes first; then a new offer follows.
                    self.reoffer = true;
                }
            }
            Input::Offline => {
                self.online = false;
                self.reoffer = false;
                self.awaiting = None;
                self.deadline = None;
                self.phase = Phase::Offline;
                self.set_sending(false);
            }
            Input::Sending(sending) => self.set_sending(sending),
            Input::Answer { request_id, sdp } => {
                if self.awaiting == Some(request_id) && self.op == Op::None {
                    self.awaiting = None;
                    self.deadline = None;
                    self.phase = Phase::Applying;
                    self.op = Op::Apply(request_id);
                    self.actions
                        .push_back(Action::ApplyAnswer { request_id, sdp });
                } else {
                    self.counters.stale_answers += 1;
                    tracing::debug!(request_id, "stale media answer ignored");
                }
            }
            Input::Connection(state) => self.on_connection(now, state),
            Input::Started(result) => {
                if self.op != Op::Start {
                    return;
                }
                self.op = Op::None;
                self.reoffer = false;
                match result {
                    Ok(()) => {
                        self.started = true;
                        self.peer_used = false;
                        self.applied_turn = self.turn.clone();
                        let sending = self.want_sending;
                        self.applied_sending = Some(false);
                        self.set_sending(sending);
                        if self.online {
                            self.offer();
                        } else {
                            self.phase = Phase::Offline;
                        }
                    }
                    Err(err) => {
                        tracing::warn!(%err, "media could not start");
                        self.fail(now);
                    }
                }
            }
            Input::OfferCreated(result) => {
                if self.op != Op::Offer {
                    return;
                }
                self.op = Op::None;
                self.peer_used = true;
                // An offer from a new connection not yet sent suits the returned relay too.
                self.reoffer = false;
                match result {
                    Ok(sdp) if self.online => {
                        let request_id = self.next_request_id;
                        self.next_request_id += 1;
                        self.awaiting = Some(request_id);
                        self.phase = Phase::AwaitingAnswer;
                        self.deadline = Some(now + self.config.answer_timeout);
                        self.counters.offers_sent += 1;
                        self.actions
                            .push_back(Action::SendOffer { request_id, sdp });
                    }
                    // Went offline meanwhile: `Online` will offer again.
                    Ok(_) => self.phase = Phase::Offline,
                    Err(err) => {
                        tracing::warn!(%err, "media offer could not be created");
                        self.fail(now);
                    }
                }
            }
            Input::OfferQueued { request_id, queued } => {
                if !queued && self.awaiting == Some(request_id) {
                    tracing::warn!("the control link did not take the media offer");
                    self.awaiting = None;
                    self.fail(now);
                }
            }
            Input::AnswerApplied { request_id, result } => {
                if self.op != Op::Apply(request_id) {
                    return;
                }
                self.op = Op::None;
                if std::mem::take(&mut self.reoffer) {
                    // Applied to a connection the relay dropped when the control link went.
                    self.attempt();
                    return;
                }
                match result {
                    Ok(()) if self.online => {
                        self.counters.answers_applied += 1;
                        self.phase = Phase::Connecting;
                        self.deadline = Some(now + self.config.connect_timeout);
                    }
                    Ok(()) => self.phase = Phase::Offline,
                    Err(err) => {
                        tracing::warn!(%err, "the relay's media answer could not be applied");
                        self.fail(now);
                    }
                }
            }
        }
    }

    fn on_connection(&mut self, now: Instant, state: ConnectionState) {
        // Only the connection whose answer was applied is judged; a state from before
        // (a replaced peer closing) arrives while another phase is current and is ignored.
        match (self.phase, state) {
            (Phase::Connecting | Phase::Disconnected, ConnectionState::Connected) => {
                self.phase = Phase::Connected;
                self.deadline = None;
                self.failures_in_row = 0;
                self.counters.connected += 1;
            }
            (Phase::Connected, ConnectionState::Disconnected) => {
                self.phase = Phase::Disconnected;
                self.deadline = Some(now + self.config.disconnected_grace);
            }
            (
                Phase::Connecting | Phase::Connected | Phase::Disconnected,
                ConnectionState::Failed | ConnectionState::Closed,
            ) => {
                tracing::info!(?state, "media connection lost; reconnecting");
                self.fail(now);
            }
            _ => {}
        }
    }

    fn set_sending(&mut self, sending: bool) {
        self.want_sending = sending;
        if self.started && self.applied_sending != Some(sending) {
            self.applied_sending = Some(sending);
            self.actions.push_back(Action::SetSending(sending));
        }
    }

    /// Something failed: try again, at once the first time, then after a growing pause.
    fn fail(&mut self, now: Instant) {
        self.counters.failures += 1;
        self.awaiting = None;
        if !self.online {
            self.phase = Phase::Offline;
            self.deadline = None;
            return;
        }
        let pause = self.backoff();
        self.failures_in_row = self.failures_in_row.saturating_add(1);
        if pause.is_zero() {
            self.deadline = None;
            self.attempt();
        } else {
            self.phase = Phase::Waiting;
            self.deadline = Some(now + pause);
        }
    }

    fn backoff(&self) -> Duration {
        if self.failures_in_row == 0 {
            return Duration::ZERO;
        }
        let doublings = (self.failures_in_row - 1).min(16);
        self.config
            .min_backoff
            .saturating_mul(1 << doublings)
            .min(self.config.max_backoff)
    }

    /// Start the link, or offer from it, if online and nothing is in flight.
    fn attempt(&mut self) {
        if !self.online || self.op != Op::None {
            return;
        }
        if !self.started {
            self.phase = Phase::Starting;
            self.op = Op::Start;
            self.actions.push_back(Action::Start {
                turn: self.turn.clone(),
            });
        } else {
            self.offer();
        }
    }

    fn offer(&mut self) {
        if self.applied_turn != self.turn {
            self.applied_turn = self.turn.clone();
            self.actions.push_back(Action::SetTurn(self.turn.clone()));
        }
        let new_connection = self.peer_used;
        if new_connection {
            self.counters.new_connections += 1;
        }
        self.phase = Phase::Offering;
        self.op = Op::Offer;
        self.actions
            .push_back(Action::CreateOffer { new_connection });
    }
}

#[cfg(test)]
mod tests;
