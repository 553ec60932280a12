//! The control link in virtual time: the clock is an `Instant` the tests move by hand, and
//! the relay is the messages the tests feed in.

use super::*;
use protocol::control::{CentreInfo, ErrorBody, ExtensionPointInfo, RelayToKiosk};

const SEED: u64 = 7;

fn config() -> CoreConfig {
    CoreConfig {
        connect_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(10),
        max_backoff: Duration::from_secs(30),
        heartbeat_every: Duration::from_secs(15),
        silence_limit: Duration::from_secs(45),
        stable_after: Duration::from_secs(10),
    }
}

fn credential() -> Credential {
    Credential::parse("kiosk-1:secret").expect("credential")
}

fn welcome(ticket: Option<KioskTicketStatus>) -> RelayToKiosk {
    RelayToKiosk::Welcome {
        protocol_version: PROTOCOL_VERSION,
        device_id: "kiosk-1".into(),
        extension_point: ExtensionPointInfo {
            id: "ep-1".into(),
            name: "示例延伸点".into(),
            phone: String::new(),
            service_hours: String::new(),
            hours: None,
        },
        centre: CentreInfo {
            id: "c-1".into(),
            name: "示例中心".into(),
        },
        categories: Vec::new(),
        ticket,
        server_time_ms: 1_000_500,
        heartbeat_interval_ms: 15_000,
        ice_servers: Vec::new(),
    }
}

fn ticket(id: &str, state: TicketState) -> KioskTicketStatus {
    KioskTicketStatus {
        ticket_id: id.into(),
        number: "A001".into(),
        category_name: "社保".into(),
        state,
        ahead: Some(2),
        eta_seconds: Some(120),
        window_name: None,
        recalls: 0,
        availability: None,
        serving_clerk: None,
        appointment: None,
    }
}

fn transmits(core: &mut ControlCore) -> Vec<Transmit> {
    std::iter::from_fn(|| core.poll_transmit()).collect()
}

fn events(core: &mut ControlCore) -> Vec<Event> {
    std::iter::from_fn(|| core.poll_event()).collect()
}

/// Runs the core's timer up to `until`, as a driver would: every due timeout in order.
/// Bounded, so a timer that never moves on fails instead of hanging.
fn advance(core: &mut ControlCore, now: &mut Instant, until: Instant) {
    for _ in 0..10_000 {
        match core.poll_timeout() {
            Some(at) if at <= until => {
                *now = (*now).max(at);
                core.handle_timeout(*now);
            }
            _ => {
                *now = until;
                return;
            }
        }
    }
    panic!("the core's timer does not advance");
}

/// A core that is online at the returned time, its outputs drained.
fn online() -> (ControlCore, Instant) {
    let t0 = Instant::now();
    let mut core = ControlCore::new(config(), &credential(), t0, SEED);
    core.handle_timeout(t0);
    core.handle_connected(t0);
    core.handle_message(t0, 1_000_000, welcome(None));
    transmits(&mut core);
    events(&mut core);
    core.take_state_changed();
    (core, t0)
}

#[test]
fn handshake_sends_hello_then_goes_online_on_the_welcome() {
    let t0 = Instant::now();
    let mut core = ControlCore::new(config(), &credential(), t0, SEED);
    assert_eq!(core.state().link, LinkState::Connecting);
    assert_eq!(
        core.poll_timeout(),
        Some(t0),
        "the first attempt is due at once"
    );

    core.handle_timeout(t0);
    assert_eq!(transmits(&mut core), vec![Transmit::Connect]);

    core.handle_connected(t0);
    match transmits(&mut core).as_slice() {
        [
            Transmit::Send(KioskToRelay::Hello {
                protocol_versions,
                device_id,
                secret,
                ..
            }),
        ] => {
            assert_eq!(protocol_versions, &vec![PROTOCOL_VERSION]);
            assert_eq!(device_id, "kiosk-1");
            assert_eq!(secret, "secret");
        }
        other => panic!("expected a hello, got {other:?}"),
    }
    assert!(!core.is_online());

    let t1 = t0 + Duration::from_millis(40);
    core.handle_message(
        t1,
        1_000_000,
        welcome(Some(ticket("t-1", TicketState::Waiting))),
    );
    assert!(core.is_online());
    assert!(core.take_state_changed());
    let state = core.state();
    assert_eq!(state.link, LinkState::Online);
    assert_eq!(state.problem, None);
    assert_eq!(
        state.extension_point.as_ref().map(|p| p.id.as_str()),
        Some("ep-1")
    );
    assert_eq!(
        state.ticket.as_ref().map(|t| t.ticket_id.as_str()),
        Some("t-1")
    );
    assert_eq!(state.clock_offset_ms, 500);
    assert_eq!(
        events(&mut core),
        vec![Event::Media(MediaSignal::Online {
            ice_servers: Vec::new()
        })]
    );
    assert_eq!(
        transmits(&mut core),
        vec![Transmit::Send(KioskToRelay::Heartbeat { seq: 1 })],
        "the first heartbeat goes at once"
    );
}

#[test]
fn a_refusal_in_place_of_the_welcome_is_refused_and_retried_slowly() {
    let t0 = Instant::now();
    let mut core = ControlCore::new(config(), &credential(), t0, SEED);
    core.handle_timeout(t0);
    core.handle_connected(t0);
    transmits(&mut core);
    core.handle_message(
        t0,
        0,
        RelayToKiosk::Error {
            request_id: None,
            error: ErrorBody {
                code: ErrorCode::Unauthenticated,
                message: "bad credential".into(),
            },
        },
    );
    assert_eq!(core.state().link, LinkState::Refused);
    assert!(
        core.state()
            .problem
            .as_deref()
            .is_some_and(|p| p.contains("Unauthenticated") && p.contains("bad credential"))
    );
    assert_eq!(transmits(&mut core), vec![Transmit::Close]);
    assert!(matches!(
        events(&mut core).as_slice(),
        [Event::Down(Failure::Refused {
            code: ErrorCode::Unauthenticated,
            ..
        })]
    ));
    // Attempt 8 or later: at least half of min(0.5 s · 2^8, 30 s).
    let wait = core.poll_timeout().expect("retry scheduled") - t0;
    assert!(wait >= Duration::from_secs(15), "{wait:?}");
}

#[test]
fn the_welcome_must_come_in_time() {
    let t0 = Instant::now();
    let mut core = ControlCore::new(config(), &credential(), t0, SEED);
    core.handle_timeout(t0);
    core.handle_connected(t0);
    transmits(&mut core);
    let mut now = t0;
    advance(&mut core, &mut now, t0 + Duration::from_secs(10));
    assert_eq!(core.state().link, LinkState::Offline);
    assert_eq!(
        core.state().problem.as_deref(),
        Some("no welcome from the relay")
    );
    assert_eq!(transmits(&mut core), vec![Transmit::Close]);
}

#[test]
fn requests_get_ids_and_their_answers() {
    let (mut core, t0) = online();
    let take = core.handle_request(
        t0,
        Request::TakeTicket {
            category_id: "cat-1".into(),
        },
    );
    let evaluation = core.handle_request(
        t0,
        Request::Evaluation(KioskEvaluation {
            evaluation_id: "ev-1".into(),
            ticket_id: "t-1".into(),
            level: None,
            reasons: Vec::new(),
            evaluated_ms: 0,
        }),
    );
    assert_ne!(take, evaluation);
    assert_eq!(
        transmits(&mut core),
        vec![
            Transmit::Send(KioskToRelay::TakeTicket {
                request_id: take,
                category_id: "cat-1".into()
            }),
            Transmit::Send(KioskToRelay::Evaluation {
                request_id: evaluation,
                evaluation: KioskEvaluation {
                    evaluation_id: "ev-1".into(),
                    ticket_id: "t-1".into(),
                    level: None,
                    reasons: Vec::new(),
                    evaluated_ms: 0,
                }
            }),
        ]
    );
    // Answers may come in any order.
    core.handle_message(
        t0,
        0,
        RelayToKiosk::EvaluationStored {
            request_id: evaluation,
            evaluation_id: "ev-1".into(),
            duplicate: true,
        },
    );
    let taken = ticket("t-2", TicketState::Waiting);
    core.handle_message(
        t0,
        0,
        RelayToKiosk::TicketTaken {
            request_id: take,
            ticket: taken.clone(),
        },
    );
    assert_eq!(
        events(&mut core),
        vec![
            Event::Answer {
                request_id: evaluation,
                result: Ok(Answer::EvaluationStored { duplicate: true })
            },
            Event::Answer {
                request_id: take,
                result: Ok(Answer::Ticket(taken.clone()))
            },
        ]
    );
    assert_eq!(core.state().ticket, Some(taken));

    // Cancelling ends the ticket at the relay's confirmation.
    let cancel = core.handle_request(t0, Request::CancelTicket);
    assert_eq!(
        transmits(&mut core),
        vec![Transmit::Send(KioskToRelay::CancelTicket {
            request_id: cancel,
            ticket_id: "t-2".into()
        })]
    );
    core.handle_message(
        t0,
        0,
        RelayToKiosk::TicketCancelled {
            request_id: cancel,
            ticket_id: "t-2".into(),
        },
    );
    assert_eq!(
        events(&mut core),
        vec![Event::Answer {
            request_id: cancel,
            result: Ok(Answer::Cancelled)
        }]
    );
    let ended = core.state().ticket.clone().expect("ticket kept");
    assert_eq!((ended.state, ended.ahead), (TicketState::Cancelled, None));

    // With no live ticket there is nothing to send.
    let again = core.handle_request(t0, Request::CancelTicket);
    assert!(transmits(&mut core).is_empty());
    assert!(matches!(
        events(&mut core).as_slice(),
        [Event::Answer { request_id, result: Err(LinkError::NoTicket) }] if *request_id == again
    ));
}

#[test]
fn a_refused_request_is_answered_with_the_relays_error() {
    let (mut core, t0) = online();
    let take = core.handle_request(
        t0,
        Request::TakeTicket {
            category_id: "closed".into(),
        },
    );
    transmits(&mut core);
    core.handle_message(
        t0,
        0,
        RelayToKiosk::Error {
            request_id: Some(take),
            error: ErrorBody {
                code: ErrorCode::InvalidState,
                message: "closed".into(),
            },
        },
    );
    // An error for an id that is no request of ours goes to the log.
    core.handle_message(
        t0,
        0,
        RelayToKiosk::Error {
            request_id: Some(999),
            error: ErrorBody {
                code: ErrorCode::BadMessage,
                message: "offer".into(),
            },
        },
    );
    let got = events(&mut core);
    assert!(
        matches!(
            got.as_slice(),
            [
                Event::Answer {
                    result: Err(LinkError::Refused {
                        code: ErrorCode::InvalidState,
                        ..
                    }),
                    ..
                },
                Event::RelayError {
                    request_id: Some(999),
                    ..
                }
            ]
        ),
        "{got:?}"
    );
    assert!(
        core.is_online(),
        "an error answer does not end the connection"
    );
}

#[test]
fn an_unanswered_request_times_out() {
    let (mut core, t0) = online();
    let take = core.handle_request(
        t0,
        Request::TakeTicket {
            category_id: "cat-1".into(),
        },
    );
    transmits(&mut core);
    let mut now = t0;
    advance(&mut core, &mut now, t0 + Duration::from_millis(9_999));
    assert!(
        !events(&mut core)
            .iter()
            .any(|e| matches!(e, Event::Answer { .. })),
        "not before its time"
    );
    advance(&mut core, &mut now, t0 + Duration::from_secs(10));
    assert_eq!(
        events(&mut core),
        vec![Event::Answer {
            request_id: take,
            result: Err(LinkError::Timeout)
        }]
    );
    // A late answer changes nothing.
    core.handle_message(
        now,
        0,
        RelayToKiosk::TicketTaken {
            request_id: take,
            ticket: ticket("t-9", TicketState::Waiting),
        },
    );
    assert!(
        !events(&mut core)
            .iter()
            .any(|e| matches!(e, Event::Answer { .. }))
    );
    assert!(core.is_online());
}

#[test]
fn requests_while_offline_fail_at_once_and_while_connecting_wait_for_the_welcome() {
    let t0 = Instant::now();
    let mut core = ControlCore::new(config(), &credential(), t0, SEED);
    // Before the first attempt: offline.
    let early = core.handle_request(t0, Request::CancelTicket);
    assert_eq!(
        events(&mut core),
        vec![Event::Answer {
            request_id: early,
            result: Err(LinkError::Offline)
        }]
    );
    core.handle_timeout(t0);
    transmits(&mut core);
    let take = core.handle_request(
        t0,
        Request::TakeTicket {
            category_id: "cat-1".into(),
        },
    );
    assert!(
        transmits(&mut core).is_empty(),
        "not sent before the welcome"
    );
    core.handle_connected(t0);
    core.handle_message(t0, 0, welcome(None));
    let sent = transmits(&mut core);
    assert!(
        sent.contains(&Transmit::Send(KioskToRelay::TakeTicket {
            request_id: take,
            category_id: "cat-1".into()
        })),
        "{sent:?}"
    );
    // The connection drops: the request in flight is answered "offline".
    events(&mut core);
    core.handle_closed(t0, "connection error: reset");
    let got = events(&mut core);
    assert!(got.contains(&Event::Answer {
        request_id: take,
        result: Err(LinkError::Offline)
    }));
    assert!(got.contains(&Event::Media(MediaSignal::Offline)));
    // Device messages and offers are dropped while offline.
    assert!(!core.handle_media_offer(1, "v=0".into()));
}

#[test]
fn heartbeats_keep_going_and_a_silent_relay_means_reconnect() {
    let (mut core, t0) = online();
    let mut now = t0;
    // Answered heartbeats: the connection stays.
    for seq in 2..=5u64 {
        advance(
            &mut core,
            &mut now,
            t0 + Duration::from_secs(15 * (seq - 1)),
        );
        assert_eq!(
            transmits(&mut core),
            vec![Transmit::Send(KioskToRelay::Heartbeat { seq })]
        );
        core.handle_message(
            now,
            2_000_000,
            RelayToKiosk::HeartbeatAck {
                seq,
                server_time_ms: 2_000_250,
            },
        );
        assert!(core.is_online());
    }
    assert_eq!(core.state().clock_offset_ms, 250);
    let last_heard = now;

    // Now the relay says nothing: heartbeats go out until the silence limit.
    let take = core.handle_request(
        now,
        Request::TakeTicket {
            category_id: "cat-1".into(),
        },
    );
    // The request itself times out first (10 s), the connection later (45 s).
    advance(
        &mut core,
        &mut now,
        last_heard + Duration::from_millis(44_999),
    );
    assert!(core.is_online());
    let sent = transmits(&mut core);
    assert!(
        sent.iter()
            .filter(|t| matches!(t, Transmit::Send(KioskToRelay::Heartbeat { .. })))
            .count()
            >= 2,
        "{sent:?}"
    );
    assert!(events(&mut core).contains(&Event::Answer {
        request_id: take,
        result: Err(LinkError::Timeout)
    }));
    advance(&mut core, &mut now, last_heard + Duration::from_secs(45));
    assert!(!core.is_online());
    assert_eq!(core.state().link, LinkState::Offline);
    assert_eq!(
        core.state().problem.as_deref(),
        Some("the relay went silent")
    );
    assert_eq!(transmits(&mut core), vec![Transmit::Close]);
    assert_eq!(
        events(&mut core),
        vec![
            Event::Media(MediaSignal::Offline),
            Event::Down(Failure::Silent)
        ]
    );

    // After the backoff, a new attempt.
    let retry = core.poll_timeout().expect("retry scheduled");
    // The connection lasted longer than `stable_after`: the backoff starts again at 0.5 s.
    assert!(
        retry - now <= Duration::from_millis(500),
        "{:?}",
        retry - now
    );
    advance(&mut core, &mut now, retry);
    assert_eq!(transmits(&mut core), vec![Transmit::Connect]);
    assert_eq!(core.state().link, LinkState::Connecting);
    assert_eq!(
        core.state().problem.as_deref(),
        Some("the relay went silent"),
        "the last problem stays until online again"
    );
}

/// The delays of `failures` failed attempts in a row, each failing right away.
fn failing_delays(core: &mut ControlCore, now: &mut Instant, failures: usize) -> Vec<Duration> {
    let mut delays = Vec::new();
    for _ in 0..failures {
        let due = core.poll_timeout().expect("attempt scheduled");
        advance(core, now, due);
        assert_eq!(transmits(core), vec![Transmit::Connect]);
        core.handle_connect_failed(*now, "refused");
        assert_eq!(transmits(core), vec![Transmit::Close]);
        delays.push(core.poll_timeout().expect("retry scheduled") - *now);
    }
    delays
}

#[test]
fn backoff_grows_to_its_cap_and_resets_after_a_stable_connection() {
    let t0 = Instant::now();
    let mut core = ControlCore::new(config(), &credential(), t0, SEED);
    let mut now = t0;
    let delays = failing_delays(&mut core, &mut now, 10);
    assert_eq!(
        core.state().problem.as_deref(),
        Some("cannot connect: refused")
    );
    for (attempt, delay) in delays.iter().enumerate() {
        let ceiling = Duration::from_millis(500 << attempt).min(Duration::from_secs(30));
        assert!(
            *delay >= ceiling / 2 && *delay <= ceiling,
            "attempt {attempt}: {delay:?} outside [{:?}, {ceiling:?}]",
            ceiling / 2
        );
    }
    assert!(delays[6] > delays[0] * 8, "it grows: {delays:?}");

    // A connection that holds for longer than `stable_after` resets the backoff.
    let due = core.poll_timeout().expect("attempt scheduled");
    advance(&mut core, &mut now, due);
    core.handle_connected(now);
    core.handle_message(now, 0, welcome(None));
    transmits(&mut core);
    let up = now;
    advance(&mut core, &mut now, up + Duration::from_secs(12));
    core.handle_message(now, 0, RelayToKiosk::MediaSending { sending: false });
    core.handle_closed(now, "the relay closed the connection");
    assert_eq!(transmits(&mut core), vec![Transmit::Close]);
    let delay = core.poll_timeout().expect("retry scheduled") - now;
    assert!(delay <= Duration::from_millis(500), "{delay:?}");

    // A connection that fails quickly does not.
    let delays = failing_delays(&mut core, &mut now, 3);
    assert!(delays[2] >= Duration::from_secs(1), "{delays:?}");
}

#[test]
fn the_same_seed_gives_the_same_delays() {
    let t0 = Instant::now();
    let run = || {
        let mut core = ControlCore::new(config(), &credential(), t0, SEED);
        let mut now = t0;
        failing_delays(&mut core, &mut now, 6)
    };
    assert_eq!(run(), run());
    let samples: std::collections::HashSet<Duration> = (0..20u64)
        .map(|seed| {
            backoff(
                10,
                Duration::from_secs(30),
                &mut SmallRng::seed_from_u64(seed),
            )
        })
        .collect();
    assert!(samples.len() > 1, "jitter varies the delay");
}

#[test]
fn device_messages_and_media_flow_both_ways_only_while_online() {
    let t0 = Instant::now();
    let mut core = ControlCore::new(config(), &credential(), t0, SEED);
    let status = FromDevice::Unsolicited(protocol::device::Unsolicited::StatusChanged(
        protocol::device::StatusChanged {
            device: protocol::device::DeviceKind::QrScanner,
            status: protocol::device::DeviceStatus::Online,
        },
    ));
    assert!(!core.handle_device(status.clone()), "dropped before online");
    let (mut core, t0) = online();
    assert!(core.handle_device(status.clone()));
    assert!(core.handle_media_offer(3, "v=0".into()));
    assert_eq!(
        transmits(&mut core),
        vec![
            Transmit::Send(KioskToRelay::Device { message: status }),
            Transmit::Send(KioskToRelay::MediaOffer {
                request_id: 3,
                sdp: "v=0".into()
            }),
        ]
    );
    core.handle_message(
        t0,
        0,
        RelayToKiosk::MediaAnswer {
            request_id: 3,
            sdp: "v=0 answer".into(),
        },
    );
    core.handle_message(t0, 0, RelayToKiosk::MediaSending { sending: true });
    assert_eq!(
        events(&mut core),
        vec![
            Event::Media(MediaSignal::Answer {
                request_id: 3,
                sdp: "v=0 answer".into()
            }),
            Event::Media(MediaSignal::Sending(true)),
        ]
    );
}

#[test]
fn shutdown_answers_what_is_open_and_closes() {
    let (mut core, t0) = online();
    let take = core.handle_request(
        t0,
        Request::TakeTicket {
            category_id: "cat-1".into(),
        },
    );
    transmits(&mut core);
    core.handle_shutdown();
    assert!(core.is_stopped());
    assert_eq!(core.poll_timeout(), None);
    assert_eq!(transmits(&mut core), vec![Transmit::Close]);
    assert_eq!(
        events(&mut core),
        vec![
            Event::Answer {
                request_id: take,
                result: Err(LinkError::Offline)
            },
            Event::Media(MediaSignal::Offline),
        ]
    );
}

fn typed(id: u64, ticket_id: &str, text: &str) -> RelayToKiosk {
    RelayToKiosk::TypedMessage {
        message: protocol::control::TypedMessage {
            message_id: id,
            ticket_id: ticket_id.into(),
            text: text.into(),
            sent_ms: 1_000_000 + id as i64,
        },
    }
}

#[test]
fn typed_messages_keep_the_last_few_of_the_current_ticket_only() {
    let (mut core, t0) = online();
    // No ticket yet: a message cannot be for this resident.
    core.handle_message(t0, 1_000_000, typed(1, "t1", "早"));
    assert!(core.state().typed_messages.is_empty());
    assert!(!core.take_state_changed());

    core.handle_message(
        t0,
        1_000_000,
        RelayToKiosk::TicketStatus {
            ticket: ticket("t1", TicketState::Serving),
        },
    );
    for id in 2..=8 {
        core.handle_message(t0, 1_000_000, typed(id, "t1", &format!("第{id}条")));
    }
    // Another ticket's message and a repeat are ignored.
    core.handle_message(t0, 1_000_000, typed(9, "t2", "别人的"));
    core.handle_message(t0, 1_000_000, typed(8, "t1", "第8条"));
    let ids: Vec<u64> = core
        .state()
        .typed_messages
        .iter()
        .map(|m| m.message_id)
        .collect();
    assert_eq!(
        ids,
        vec![4, 5, 6, 7, 8],
        "the last {TYPED_MESSAGES_KEPT}, oldest first"
    );
    assert!(core.take_state_changed());

    // The same ticket moving on keeps them; the next ticket clears them.
    core.handle_message(
        t0,
        1_000_000,
        RelayToKiosk::TicketStatus {
            ticket: ticket("t1", TicketState::Served),
        },
    );
    assert_eq!(core.state().typed_messages.len(), 5);
    core.handle_message(
        t0,
        1_000_000,
        RelayToKiosk::TicketStatus {
            ticket: ticket("t2", TicketState::Waiting),
        },
    );
    assert!(core.state().typed_messages.is_empty());
}

#[test]
fn a_check_in_is_sent_and_its_ticket_becomes_the_kiosks() {
    let (mut core, t0) = online();
    let key = CheckInKey::Code {
        phone_tail: "5678".into(),
        code: "123456".into(),
    };
    let id = core.handle_request(
        t0,
        Request::Appointment(AppointmentRequest::CheckIn(key.clone())),
    );
    assert_eq!(
        transmits(&mut core),
        vec![Transmit::Send(KioskToRelay::CheckIn {
            request_id: id,
            key
        })]
    );
    let mut t = ticket("t-9", TicketState::Waiting);
    t.appointment = Some(protocol::queue::AppointmentSlot {
        start_ms: 1_000,
        end_ms: 2_000,
    });
    core.handle_message(
        t0,
        1_000_000,
        RelayToKiosk::CheckedIn {
            request_id: id,
            arrival: Arrival::OnTime,
            ticket: t.clone(),
        },
    );
    assert_eq!(core.state().ticket.as_ref(), Some(&t));
    assert_eq!(
        events(&mut core),
        vec![Event::Answer {
            request_id: id,
            result: Ok(Answer::Appointment(AppointmentAnswer::CheckedIn {
                arrival: Arrival::OnTime,
                ticket: t
            }))
        }]
    );
    // A booking answer of another request kind does not answer a ticket request.
    let take = core.handle_request(
        t0,
        Request::TakeTicket {
            category_id: "cat-1".into(),
        },
    );
    transmits(&mut core);
    core.handle_message(
        t0,
        1_000_000,
        RelayToKiosk::VerificationSent { request_id: take },
    );
    assert_eq!(
        events(&mut core),
        vec![Event::Answer {
            request_id: take,
            result: Err(LinkError::Offline)
        }]
    );
}
