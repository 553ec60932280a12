//! The control link's decisions, without I/O: the handshake, request ids and their timeouts,
//! the heartbeat and the silence limit, reconnection with backoff, and what the kiosk knows
//! ([`KioskState`]).
//!
//! Driven like quinn-proto or str0m: `handle_*` feeds it what happened (with the time it
//! happened), `poll_transmit` says what to send or whether to dial or drop the connection,
//! `poll_event` what to tell the rest of the agent, `poll_timeout` when to call
//! [`ControlCore::handle_timeout`] next. It never reads a clock and never waits; the jitter of
//! the backoff comes from a seeded generator. The tokio driver (`super::driver`) and the
//! self-test's login both run it.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use protocol::control::{
    Arrival, BookableSlot, CheckInKey, ErrorCode, KioskBooking, KioskEvaluation, KioskTicketStatus,
    KioskToRelay, PROTOCOL_VERSION, RelayToKiosk, TypedMessage, negotiate_version,
};
use protocol::device::{FromDevice, ToDevice};
use protocol::queue::TicketState;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tracing::{debug, info, warn};

use super::state::TYPED_MESSAGES_KEPT;
pub use super::state::{KioskState, LinkError, LinkState, MediaSignal};
use crate::link::config::{Credential, RelayConfig};

/// A request of the kiosk to the relay, answered by an [`Event::Answer`] with its id.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    TakeTicket {
        category_id: String,
    },
    /// Cancels the kiosk's live ticket.
    CancelTicket,
    /// A 好差评 evaluation.
    Evaluation(KioskEvaluation),
    /// 预约: check in with a booking, or book a slot.
    Appointment(AppointmentRequest),
}

/// The kiosk's appointment requests (预约签到 and 预约办理), answered by an
/// [`AppointmentAnswer`] of the matching kind.
#[derive(Debug, Clone, PartialEq)]
pub enum AppointmentRequest {
    CheckIn(CheckInKey),
    ListSlots {
        category_id: String,
    },
    RequestVerification {
        phone: String,
    },
    Book {
        category_id: String,
        slot_start_ms: i64,
        phone: String,
        verification_code: String,
        name: String,
    },
}

/// The relay's answer to an [`AppointmentRequest`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum AppointmentAnswer {
    CheckedIn {
        arrival: Arrival,
        ticket: KioskTicketStatus,
    },
    Slots {
        slots: Vec<BookableSlot>,
    },
    VerificationSent,
    Booked {
        booking: KioskBooking,
    },
}

/// The relay's answer to a [`Request`].
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Ticket(KioskTicketStatus),
    Cancelled,
    /// The evaluation is stored; `true` when it had been stored before under the same id.
    EvaluationStored {
        duplicate: bool,
    },
    Appointment(AppointmentAnswer),
}

/// Why a connection ended or never came up. All but [`Failure::Refused`] are retried with the
/// normal backoff; a refused device retries slowly.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The connection did not open within the connect timeout.
    ConnectTimeout,
    /// The connection could not be opened, or broke (as the socket tells it).
    Connection(String),
    /// The relay did not answer the hello in time.
    NoWelcome,
    /// The relay's first message was not a welcome in a version this agent speaks.
    NotWelcome,
    /// Nothing from the relay for the silence limit.
    Silent,
    /// The relay refused this device (credential or version).
    Refused { code: ErrorCode, message: String },
}

impl Failure {
    /// For technicians, without personal information.
    pub fn problem(&self) -> String {
        match self {
            Failure::ConnectTimeout => "connection timed out".into(),
            Failure::Connection(p) => p.clone(),
            Failure::NoWelcome => "no welcome from the relay".into(),
            Failure::NotWelcome => "unexpected first message from the relay".into(),
            Failure::Silent => "the relay went silent".into(),
            Failure::Refused { code, message } => {
                format!("relay refused the device ({code:?}): {message}")
            }
        }
    }
}

/// What the driver is to do with the connection.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "nearly every transmit is a message; Connect and Close are once per connection"
)]
pub enum Transmit {
    /// Open a connection to the relay; report it with `handle_connected` or
    /// `handle_connect_failed`.
    Connect,
    Send(KioskToRelay),
    /// Drop the connection (or the attempt in progress).
    Close,
}

/// What the rest of the agent is to hear.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Answer {
        request_id: u64,
        result: Result<Answer, LinkError>,
    },
    Media(MediaSignal),
    /// A device command or cancel from the clerk.
    Device(ToDevice),
    /// The relay reported an error that answers no ticket request (e.g. for a media offer).
    RelayError {
        request_id: Option<u64>,
        code: ErrorCode,
        message: String,
    },
    /// The connection ended or did not come up; the next attempt is scheduled.
    Down(Failure),
}

fn appointment_message(request_id: u64, request: AppointmentRequest) -> KioskToRelay {
    match request {
        AppointmentRequest::CheckIn(key) => KioskToRelay::CheckIn { request_id, key },
        AppointmentRequest::ListSlots { category_id } => KioskToRelay::ListSlots {
            request_id,
            category_id,
        },
        AppointmentRequest::RequestVerification { phone } => {
            KioskToRelay::RequestVerification { request_id, phone }
        }
        AppointmentRequest::Book {
            category_id,
            slot_start_ms,
            phone,
            verification_code,
            name,
        } => KioskToRelay::Book {
            request_id,
            category_id,
            slot_start_ms,
            phone,
            verification_code,
            name,
        },
    }
}

/// Timings of the link.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreConfig {
    /// Bound of a connection attempt, and then of the wait for the welcome.
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Longest pause between attempts.
    pub max_backoff: Duration,
    pub heartbeat_every: Duration,
    /// How long the link may hear nothing from the relay before it reconnects.
    pub silence_limit: Duration,
    /// A connection that lasted this long resets the backoff.
    pub stable_after: Duration,
}

impl CoreConfig {
    pub fn new(relay: &RelayConfig) -> CoreConfig {
        CoreConfig {
            connect_timeout: Duration::from_secs(relay.connect_timeout_secs),
            request_timeout: Duration::from_secs(relay.request_timeout_secs),
            max_backoff: Duration::from_secs(relay.max_backoff_secs),
            heartbeat_every: Duration::from_secs(15),
            silence_limit: Duration::from_secs(45),
            stable_after: Duration::from_secs(10),
        }
    }
}

/// The attempt a refused device goes on from at least: its retries are slow.
const REFUSED_ATTEMPT: u32 = 8;

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting before the next attempt.
    Waiting {
        until: Instant,
    },
    Dialling {
        deadline: Instant,
    },
    Welcoming {
        deadline: Instant,
    },
    Online {
        last_heard: Instant,
        next_heartbeat: Instant,
        seq: u64,
    },
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Take,
    Cancel,
    Evaluation,
    Appointment,
}

/// The control link's state machine.
pub struct ControlCore {
    config: CoreConfig,
    hello: KioskToRelay,
    phase: Phase,
    /// When the current attempt started (for the backoff reset).
    attempt_started: Instant,
    attempt: u32,
    next_request: u64,
    /// Sent requests: kind and deadline.
    pending: HashMap<u64, (Kind, Instant)>,
    /// Requests made while connecting, sent once online.
    queued: Vec<(u64, Request, Instant)>,
    state: KioskState,
    state_changed: bool,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    rng: SmallRng,
}

impl ControlCore {
    /// A link that makes its first attempt at `now`. `seed` drives the backoff's jitter.
    pub fn new(config: CoreConfig, credential: &Credential, now: Instant, seed: u64) -> Self {
        ControlCore {
            config,
            hello: KioskToRelay::Hello {
                protocol_versions: vec![PROTOCOL_VERSION],
                device_id: credential.device_id.clone(),
                secret: credential.secret.expose().clone(),
                agent_version: env!("CARGO_PKG_VERSION").into(),
            },
            phase: Phase::Waiting { until: now },
            attempt_started: now,
            attempt: 0,
            next_request: 1,
            pending: HashMap::new(),
            queued: Vec::new(),
            state: KioskState {
                link: LinkState::Connecting,
                problem: None,
                device_id: credential.device_id.clone(),
                centre: None,
                extension_point: None,
                categories: Vec::new(),
                staffing: None,
                ticket: None,
                typed_messages: Vec::new(),
                clock_offset_ms: 0,
            },
            state_changed: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    pub fn state(&self) -> &KioskState {
        &self.state
    }

    /// Whether [`state`](Self::state) changed since the last call.
    pub fn take_state_changed(&mut self) -> bool {
        std::mem::take(&mut self.state_changed)
    }

    pub fn is_online(&self) -> bool {
        matches!(self.phase, Phase::Online { .. })
    }

    pub fn is_stopped(&self) -> bool {
        matches!(self.phase, Phase::Stopped)
    }

    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let phase = match self.phase {
            Phase::Waiting { until } => Some(until),
            Phase::Dialling { deadline } | Phase::Welcoming { deadline } => Some(deadline),
            Phase::Online {
                last_heard,
                next_heartbeat,
                ..
            } => Some(next_heartbeat.min(last_heard + self.config.silence_limit)),
            Phase::Stopped => None,
        };
        let requests = self
            .pending
            .values()
            .map(|(_, deadline)| *deadline)
            .chain(self.queued.iter().map(|(_, _, deadline)| *deadline))
            .min();
        match (phase, requests) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::Waiting { until } if now >= until => {
                self.phase = Phase::Dialling {
                    deadline: now + self.config.connect_timeout,
                };
                self.attempt_started = now;
                self.set_link(LinkState::Connecting);
                self.transmits.push_back(Transmit::Connect);
            }
            Phase::Dialling { deadline } if now >= deadline => {
                self.fail(now, Failure::ConnectTimeout);
            }
            Phase::Welcoming { deadline } if now >= deadline => {
                self.fail(now, Failure::NoWelcome);
            }
            Phase::Online { last_heard, .. } if now >= last_heard + self.config.silence_limit => {
                self.fail(now, Failure::Silent);
            }
            Phase::Online {
                last_heard,
                next_heartbeat,
                seq,
            } if now >= next_heartbeat => {
                let seq = seq + 1;
                self.phase = Phase::Online {
                    last_heard,
                    next_heartbeat: now + self.config.heartbeat_every,
                    seq,
                };
                self.transmits
                    .push_back(Transmit::Send(KioskToRelay::Heartbeat { seq }));
            }
            _ => {}
        }
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, (_, deadline))| now >= *deadline)
            .map(|(id, _)| *id)
            .collect();
        for request_id in expired {
            self.pending.remove(&request_id);
            self.answer(request_id, Err(LinkError::Timeout));
        }
        let (expired, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.queued)
            .into_iter()
            .partition(|(_, _, deadline)| now >= *deadline);
        self.queued = kept;
        for (request_id, _, _) in expired {
            self.answer(request_id, Err(LinkError::Timeout));
        }
    }

    /// The connection asked for by [`Transmit::Connect`] is open.
    pub fn handle_connected(&mut self, now: Instant) {
        if let Phase::Dialling { .. } = self.phase {
            self.transmits.push_back(Transmit::Send(self.hello.clone()));
            self.phase = Phase::Welcoming {
                deadline: now + self.config.connect_timeout,
            };
        }
    }

    /// The connection asked for by [`Transmit::Connect`] could not be opened.
    pub fn handle_connect_failed(&mut self, now: Instant, reason: &str) {
        if let Phase::Dialling { .. } = self.phase {
            self.fail(
                now,
                Failure::Connection(format!("cannot connect: {reason}")),
            );
        }
    }

    /// The connection failed or the relay closed it.
    pub fn handle_closed(&mut self, now: Instant, reason: &str) {
        if matches!(
            self.phase,
            Phase::Dialling { .. } | Phase::Welcoming { .. } | Phase::Online { .. }
        ) {
            self.fail(now, Failure::Connection(reason.to_owned()));
        }
    }

    /// A message from the relay; `wall_ms` is the local wall clock (Unix ms), for the offset
    /// to the relay's clock.
    pub fn handle_message(&mut self, now: Instant, wall_ms: i64, message: RelayToKiosk) {
        match self.phase {
            Phase::Welcoming { .. } => self.on_first_message(now, wall_ms, message),
            Phase::Online {
                next_heartbeat,
                seq,
                ..
            } => {
                self.phase = Phase::Online {
                    last_heard: now,
                    next_heartbeat,
                    seq,
                };
                self.on_message(wall_ms, message);
            }
            _ => debug!("message from the relay outside a connection ignored"),
        }
    }

    /// A request from the kiosk; its answer comes as [`Event::Answer`] with the returned id.
    pub fn handle_request(&mut self, now: Instant, request: Request) -> u64 {
        let request_id = self.next_request;
        self.next_request += 1;
        match self.phase {
            Phase::Online { .. } => self.send_request(now, request_id, request),
            Phase::Dialling { .. } | Phase::Welcoming { .. } => {
                self.queued
                    .push((request_id, request, now + self.config.request_timeout));
            }
            Phase::Waiting { .. } | Phase::Stopped => {
                self.answer(request_id, Err(LinkError::Offline));
            }
        }
        request_id
    }

    /// A device answer or event for the relay; false when it is dropped because the link is
    /// not online (the relay ends a command that is not completed in time).
    pub fn handle_device(&mut self, message: FromDevice) -> bool {
        self.send_if_online(KioskToRelay::Device { message })
    }

    /// A media offer for the relay; false when it is dropped because the link is not online
    /// (the media connection offers again once it is).
    pub fn handle_media_offer(&mut self, request_id: u64, sdp: String) -> bool {
        self.send_if_online(KioskToRelay::MediaOffer { request_id, sdp })
    }

    /// The agent stops: requests are answered "offline", the connection is closed.
    pub fn handle_shutdown(&mut self) {
        let was_online = self.is_online();
        self.drop_requests();
        if was_online {
            self.events.push_back(Event::Media(MediaSignal::Offline));
        }
        if !matches!(self.phase, Phase::Waiting { .. } | Phase::Stopped) {
            self.transmits.push_back(Transmit::Close);
        }
        self.phase = Phase::Stopped;
    }

    fn send_if_online(&mut self, message: KioskToRelay) -> bool {
        let online = self.is_online();
        if online {
            self.transmits.push_back(Transmit::Send(message));
        }
        online
    }

    fn send_request(&mut self, now: Instant, request_id: u64, request: Request) {
        let (message, kind) = match request {
            Request::TakeTicket { category_id } => (
                KioskToRelay::TakeTicket {
                    request_id,
                    category_id,
                },
                Kind::Take,
            ),
            Request::CancelTicket => {
                let live = self
                    .state
                    .ticket
                    .as_ref()
                    .filter(|t| !t.state.is_terminal())
                    .map(|t| t.ticket_id.clone());
                let Some(ticket_id) = live else {
                    self.answer(request_id, Err(LinkError::NoTicket));
                    return;
                };
                (
                    KioskToRelay::CancelTicket {
                        request_id,
                        ticket_id,
                    },
                    Kind::Cancel,
                )
            }
            Request::Evaluation(evaluation) => (
                KioskToRelay::Evaluation {
                    request_id,
                    evaluation,
                },
                Kind::Evaluation,
            ),
            Request::Appointment(request) => {
                (appointment_message(request_id, request), Kind::Appointment)
            }
        };
        self.pending
            .insert(request_id, (kind, now + self.config.request_timeout));
        self.transmits.push_back(Transmit::Send(message));
    }

    fn on_first_message(&mut self, now: Instant, wall_ms: i64, message: RelayToKiosk) {
        match message {
            RelayToKiosk::Welcome {
                protocol_version,
                extension_point,
                centre,
                categories,
                ticket,
                server_time_ms,
                ice_servers,
                ..
            } if negotiate_version(&[protocol_version]).is_some() => {
                info!(centre = %centre.id, point = %extension_point.id, "connected to the relay");
                self.events
                    .push_back(Event::Media(MediaSignal::Online { ice_servers }));
                let s = &mut self.state;
                s.link = LinkState::Online;
                s.problem = None;
                s.centre = Some(centre);
                s.extension_point = Some(extension_point);
                s.categories = categories;
                // A reconnect must not wipe a finished ticket the screen still shows.
                if ticket.is_some() {
                    s.ticket = ticket;
                }
                s.clock_offset_ms = server_time_ms - wall_ms;
                self.state_changed = true;
                // The first heartbeat goes at once: it measures the clock offset again.
                self.phase = Phase::Online {
                    last_heard: now,
                    next_heartbeat: now,
                    seq: 0,
                };
                self.handle_timeout(now);
                for (request_id, request, _) in std::mem::take(&mut self.queued) {
                    self.send_request(now, request_id, request);
                }
            }
            RelayToKiosk::Error { error, .. } => self.fail(
                now,
                Failure::Refused {
                    code: error.code,
                    message: error.message,
                },
            ),
            _ => self.fail(now, Failure::NotWelcome),
        }
    }

    fn on_message(&mut self, wall_ms: i64, message: RelayToKiosk) {
        match message {
            RelayToKiosk::TicketStatus { ticket } => {
                if let Some(window) = &ticket.window_name {
                    debug!(ticket = %ticket.number, state = ?ticket.state, window = %window, "ticket status");
                }
                self.set_ticket(ticket);
            }
            RelayToKiosk::Staffing { categories } => {
                self.state.staffing = Some(categories);
                self.state_changed = true;
            }
            RelayToKiosk::TicketTaken { request_id, ticket } => {
                self.set_ticket(ticket.clone());
                self.answer_pending(request_id, Kind::Take, Answer::Ticket(ticket));
            }
            RelayToKiosk::TicketCancelled {
                request_id,
                ticket_id,
            } => {
                // The relay confirms the cancel in its answer (it does not push the final
                // status as well): the kiosk's ticket ends here.
                if let Some(t) = &mut self.state.ticket
                    && t.ticket_id == ticket_id
                    && !t.state.is_terminal()
                {
                    t.state = TicketState::Cancelled;
                    t.ahead = None;
                    t.eta_seconds = None;
                    self.state_changed = true;
                }
                self.answer_pending(request_id, Kind::Cancel, Answer::Cancelled);
            }
            RelayToKiosk::EvaluationStored {
                request_id,
                duplicate,
                ..
            } => {
                self.answer_pending(
                    request_id,
                    Kind::Evaluation,
                    Answer::EvaluationStored { duplicate },
                );
            }
            RelayToKiosk::CheckedIn {
                request_id,
                arrival,
                ticket,
            } => {
                self.set_ticket(ticket.clone());
                let answer = AppointmentAnswer::CheckedIn { arrival, ticket };
                self.answer_pending(request_id, Kind::Appointment, Answer::Appointment(answer));
            }
            RelayToKiosk::BookingSlots {
                request_id, slots, ..
            } => {
                let answer = AppointmentAnswer::Slots { slots };
                self.answer_pending(request_id, Kind::Appointment, Answer::Appointment(answer));
            }
            RelayToKiosk::VerificationSent { request_id } => {
                let answer = AppointmentAnswer::VerificationSent;
                self.answer_pending(request_id, Kind::Appointment, Answer::Appointment(answer));
            }
            RelayToKiosk::Booked {
                request_id,
                booking,
            } => {
                let answer = AppointmentAnswer::Booked { booking };
                self.answer_pending(request_id, Kind::Appointment, Answer::Appointment(answer));
            }
            RelayToKiosk::HeartbeatAck { server_time_ms, .. } => {
                self.state.clock_offset_ms = server_time_ms - wall_ms;
                self.state_changed = true;
            }
            RelayToKiosk::Error { request_id, error } => {
                match request_id.filter(|id| self.pending.contains_key(id)) {
                    Some(id) => {
                        self.pending.remove(&id);
                        self.answer(
                            id,
                            Err(LinkError::Refused {
                                code: error.code,
                                message: error.message,
                            }),
                        );
                    }
                    None => self.events.push_back(Event::RelayError {
                        request_id,
                        code: error.code,
                        message: error.message,
                    }),
                }
            }
            RelayToKiosk::MediaAnswer { request_id, sdp } => {
                self.events
                    .push_back(Event::Media(MediaSignal::Answer { request_id, sdp }));
            }
            RelayToKiosk::MediaSending { sending } => {
                self.events
                    .push_back(Event::Media(MediaSignal::Sending(sending)));
            }
            RelayToKiosk::Device { message } => self.events.push_back(Event::Device(message)),
            RelayToKiosk::TypedMessage { message } => self.typed_message(message),
            RelayToKiosk::Welcome { .. } => warn!("unexpected second welcome"),
        }
    }

    /// A message the clerk typed for the resident: kept (the last few) while it belongs to the
    /// kiosk's current ticket. The text is never logged.
    fn typed_message(&mut self, message: TypedMessage) {
        let current = self.state.ticket.as_ref().map(|t| t.ticket_id.as_str());
        if current != Some(message.ticket_id.as_str()) {
            debug!(
                message = message.message_id,
                "typed message for another ticket ignored"
            );
            return;
        }
        let list = &mut self.state.typed_messages;
        if list.iter().any(|m| m.message_id == message.message_id) {
            return;
        }
        list.push(message);
        if list.len() > TYPED_MESSAGES_KEPT {
            list.remove(0);
        }
        self.state_changed = true;
    }

    fn set_ticket(&mut self, ticket: KioskTicketStatus) {
        // Another ticket is another resident: the previous one's messages go.
        if self
            .state
            .ticket
            .as_ref()
            .is_none_or(|t| t.ticket_id != ticket.ticket_id)
        {
            self.state.typed_messages.clear();
        }
        if ticket.state == TicketState::Called {
            info!(
                ticket = %ticket.number,
                window = ticket.window_name.as_deref().unwrap_or(""),
                "ticket called"
            );
        }
        self.state.ticket = Some(ticket);
        self.state_changed = true;
    }

    /// Answers a sent request, if the answer is of its kind; an answer of another kind ends
    /// the request as "offline", as a broken exchange would.
    fn answer_pending(&mut self, request_id: u64, kind: Kind, answer: Answer) {
        if let Some((sent, _)) = self.pending.remove(&request_id) {
            let result = if sent == kind {
                Ok(answer)
            } else {
                Err(LinkError::Offline)
            };
            self.answer(request_id, result);
        }
    }

    fn answer(&mut self, request_id: u64, result: Result<Answer, LinkError>) {
        self.events.push_back(Event::Answer { request_id, result });
    }

    fn drop_requests(&mut self) {
        let mut ids: Vec<u64> = self.pending.drain().map(|(id, _)| id).collect();
        ids.extend(self.queued.drain(..).map(|(id, _, _)| id));
        ids.sort_unstable();
        for request_id in ids {
            self.answer(request_id, Err(LinkError::Offline));
        }
    }

    fn set_link(&mut self, link: LinkState) {
        if self.state.link != link {
            self.state.link = link;
            self.state_changed = true;
        }
    }

    fn fail(&mut self, now: Instant, failure: Failure) {
        let was_online = self.is_online();
        self.drop_requests();
        if was_online {
            self.events.push_back(Event::Media(MediaSignal::Offline));
        }
        if now.saturating_duration_since(self.attempt_started) >= self.config.stable_after {
            self.attempt = 0;
        }
        let link = if let Failure::Refused { .. } = failure {
            self.attempt = self.attempt.max(REFUSED_ATTEMPT);
            LinkState::Refused
        } else {
            LinkState::Offline
        };
        let problem = failure.problem();
        warn!(problem = %problem, "relay link down; retrying");
        self.state.link = link;
        self.state.problem = Some(problem);
        self.state_changed = true;
        let delay = backoff(self.attempt, self.config.max_backoff, &mut self.rng);
        self.attempt = self.attempt.saturating_add(1);
        self.phase = Phase::Waiting { until: now + delay };
        self.transmits.push_back(Transmit::Close);
        self.events.push_back(Event::Down(failure));
    }
}

/// Exponential backoff from 0.5 s, capped, with jitter: between half and all of the step.
pub fn backoff(attempt: u32, max: Duration, rng: &mut impl Rng) -> Duration {
    let base_ms: u64 = 500;
    let cap = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    let ceiling = base_ms.saturating_mul(1u64 << attempt.min(20)).min(cap);
    Duration::from_millis(rng.random_range(ceiling / 2..=ceiling.max(1)))
}

#[cfg(test)]
mod tests;
