//! The switchboard in virtual time: connections, sessions from ticket changes, device-command
//! routing and deadlines, media routes, and a property test over random sequences.

use protocol::device::{
    AckStatus, Acknowledge, CommandBody, CompletionBody, DeviceKind, DeviceStatus, Empty,
    StatusChanged, Unsolicited,
};

use super::*;

fn session(ticket: &str, device: &str, window: &str, clerk: &str) -> Session {
    Session {
        ticket_id: ticket.into(),
        ticket_number: "YA001".into(),
        centre_id: "c1".into(),
        device_id: device.into(),
        extension_point_id: None,
        window_id: window.into(),
        clerk_id: clerk.into(),
        category_id: "civil".into(),
        started_ms: 0,
    }
}

fn command(id: u64) -> DeviceCommand {
    DeviceCommand {
        request_id: RequestId(id),
        device: DeviceKind::QrScanner,
        timeout_ms: 1000,
        body: CommandBody::ScannerRead(Empty {}),
    }
}

fn drain(b: &mut SwitchboardCore) -> Vec<Output> {
    std::iter::from_fn(|| b.poll_output()).collect()
}

const K1: ConnId = ConnId(10);
const A1: ConnId = ConnId(1);
const B1: ConnId = ConnId(2);

/// Kiosk k1 (connection 10) serves ticket t1 to clerk "a" (console 1); clerk "b" has console 2.
fn board() -> SwitchboardCore {
    let mut b = SwitchboardCore::new();
    b.kiosk_opened("k1", K1);
    b.console_opened(A1, "c1", "a");
    b.console_opened(B1, "c1", "b");
    b.tickets_changed(0, [("t1".into(), Some(session("t1", "k1", "w1", "a")))]);
    drain(&mut b);
    b
}

fn kiosk_command(outputs: &[Output]) -> DeviceCommand {
    outputs
        .iter()
        .find_map(|o| match o {
            Output::ToKiosk {
                message:
                    RelayToKiosk::Device {
                        message: ToDevice::Command(c),
                    },
                ..
            } => Some(c.clone()),
            _ => None,
        })
        .expect("a command to the kiosk")
}

fn to_console(outputs: &[Output], who: ConnId) -> Vec<&RelayToClerk> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::ToConsole { conn, message } if *conn == who => Some(message),
            _ => None,
        })
        .collect()
}

fn completion_code(message: &RelayToClerk) -> Option<CompletionCode> {
    match message {
        RelayToClerk::Device {
            message: FromDevice::Completion(c),
            ..
        } => Some(c.completion_code),
        _ => None,
    }
}

#[test]
fn commands_reach_the_kiosk_and_answers_return_with_the_consoles_id() {
    let mut b = board();
    b.device_command(0, A1, "t1", command(77));
    let out = drain(&mut b);
    let sent = kiosk_command(&out);
    assert_ne!(
        sent.request_id,
        RequestId(77),
        "the kiosk leg has the relay's own ids"
    );
    b.from_kiosk(
        "k1",
        K1,
        FromDevice::Acknowledge(Acknowledge {
            request_id: sent.request_id,
            status: AckStatus::Accepted,
        }),
    );
    let out = drain(&mut b);
    match to_console(&out, A1).as_slice() {
        [
            RelayToClerk::Device {
                ticket_id,
                message: FromDevice::Acknowledge(a),
            },
        ] => {
            assert_eq!(ticket_id, "t1");
            assert_eq!(a.request_id, RequestId(77));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        to_console(&out, B1).is_empty(),
        "other consoles hear nothing"
    );
}

#[test]
fn only_the_serving_clerk_may_send_commands() {
    let mut b = board();
    b.device_command(0, B1, "t1", command(1));
    let out = drain(&mut b);
    assert!(matches!(
        to_console(&out, B1).as_slice(),
        [RelayToClerk::Error { request_id: Some(1), error }] if error.code == ErrorCode::Forbidden
    ));
    // A ticket that is not (or no longer) served.
    b.device_command(0, A1, "t0", command(2));
    let out = drain(&mut b);
    assert!(matches!(
        to_console(&out, A1).as_slice(),
        [RelayToClerk::Error {
            request_id: Some(2),
            ..
        }]
    ));
    assert!(!out.iter().any(|o| matches!(o, Output::ToKiosk { .. })));
    assert_eq!(b.counters().commands_refused, 2);
}

#[test]
fn a_kiosk_cannot_answer_another_kiosks_command() {
    let mut b = board();
    b.kiosk_opened("k2", ConnId(20));
    b.device_command(0, A1, "t1", command(5));
    let sent = kiosk_command(&drain(&mut b));
    let forged = Completion::failed(&sent, CompletionCode::Success, "", "");
    b.from_kiosk("k2", ConnId(20), FromDevice::Completion(forged));
    assert!(drain(&mut b).is_empty());
    assert_eq!(b.counters().foreign_answers, 1);
}

#[test]
fn an_unconnected_kiosk_is_answered_for() {
    let mut b = board();
    b.kiosk_closed("k1", K1);
    b.device_command(0, A1, "t1", command(9));
    let out = drain(&mut b);
    assert!(!out.iter().any(|o| matches!(o, Output::ToKiosk { .. })));
    match to_console(&out, A1).as_slice() {
        [
            RelayToClerk::Device {
                message: FromDevice::Completion(c),
                ..
            },
        ] => {
            assert_eq!(c.completion_code, CompletionCode::DeviceNotReady);
            assert_eq!(c.body, CompletionBody::ScannerRead(None));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn commands_time_out_and_the_kiosk_is_told_to_cancel() {
    let mut b = board();
    b.device_command(0, A1, "t1", command(3));
    let sent = kiosk_command(&drain(&mut b));
    assert_eq!(b.poll_timeout(), Some(1000 + DEADLINE_GRACE_MS));
    b.handle_timeout(1000 + DEADLINE_GRACE_MS - 1);
    assert!(drain(&mut b).is_empty(), "not yet");
    b.handle_timeout(1000 + DEADLINE_GRACE_MS);
    let out = drain(&mut b);
    assert_eq!(
        to_console(&out, A1)
            .into_iter()
            .filter_map(completion_code)
            .collect::<Vec<_>>(),
        vec![CompletionCode::Timeout]
    );
    assert!(out.contains(&Output::ToKiosk {
        conn: K1,
        message: RelayToKiosk::Device {
            message: ToDevice::Cancel(Cancel {
                request_ids: vec![sent.request_id]
            })
        }
    }));
    assert_eq!(b.poll_timeout(), None);
    assert_eq!(b.counters().commands_timed_out, 1);
}

#[test]
fn ending_the_session_cancels_its_commands() {
    let mut b = board();
    b.device_command(0, A1, "t1", command(4));
    drain(&mut b);
    b.tickets_changed(10, [("t1".into(), None)]);
    let out = drain(&mut b);
    assert_eq!(
        to_console(&out, A1)
            .into_iter()
            .filter_map(completion_code)
            .collect::<Vec<_>>(),
        vec![CompletionCode::Canceled]
    );
    assert!(out.iter().any(|o| matches!(
        o,
        Output::ToKiosk {
            message: RelayToKiosk::Device {
                message: ToDevice::Cancel(_)
            },
            ..
        }
    )));
    assert!(out.contains(&Output::Session(SessionChange::Ended {
        session: session("t1", "k1", "w1", "a"),
        ended_ms: 10
    })));
    b.device_command(20, A1, "t1", command(6));
    assert!(matches!(
        to_console(&drain(&mut b), A1).as_slice(),
        [RelayToClerk::Error { .. }]
    ));
}

#[test]
fn a_takeover_ends_one_session_and_starts_another() {
    let mut b = board();
    b.tickets_changed(5, [("t1".into(), Some(session("t1", "k1", "w2", "b")))]);
    let changes: Vec<SessionChange> = drain(&mut b)
        .into_iter()
        .filter_map(|o| match o {
            Output::Session(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            SessionChange::Ended {
                session: session("t1", "k1", "w1", "a"),
                ended_ms: 5
            },
            SessionChange::Started(session("t1", "k1", "w2", "b")),
        ]
    );
    // The same state again changes nothing.
    b.tickets_changed(6, [("t1".into(), Some(session("t1", "k1", "w2", "b")))]);
    assert!(drain(&mut b).is_empty());
}

#[test]
fn the_newest_kiosk_connection_wins() {
    let mut b = board();
    b.device_command(0, A1, "t1", command(8));
    drain(&mut b);
    b.kiosk_opened("k1", ConnId(11));
    let out = drain(&mut b);
    assert!(out.contains(&Output::Close {
        conn: K1,
        reason: CloseReason::Replaced
    }));
    assert_eq!(
        to_console(&out, A1)
            .into_iter()
            .filter_map(completion_code)
            .collect::<Vec<_>>(),
        vec![CompletionCode::DeviceNotReady],
        "commands sent over the old connection are answered for it"
    );
    // The old connection's late end leaves the new one in place.
    b.kiosk_closed("k1", K1);
    assert_eq!(b.kiosk_conn("k1"), Some(ConnId(11)));
    // Answers over the old connection are not delivered.
    b.from_kiosk(
        "k1",
        K1,
        FromDevice::Unsolicited(Unsolicited::StatusChanged(StatusChanged {
            device: DeviceKind::QrScanner,
            status: DeviceStatus::NoDevice,
        })),
    );
    assert!(
        drain(&mut b)
            .iter()
            .all(|o| !matches!(o, Output::ToConsole { .. }))
    );
}

#[test]
fn unsolicited_device_news_reaches_every_console_of_the_serving_clerk() {
    let mut b = board();
    b.console_opened(ConnId(3), "c1", "a");
    drain(&mut b);
    b.from_kiosk(
        "k1",
        K1,
        FromDevice::Unsolicited(Unsolicited::StatusChanged(StatusChanged {
            device: DeviceKind::QrScanner,
            status: DeviceStatus::NoDevice,
        })),
    );
    let out = drain(&mut b);
    assert_eq!(to_console(&out, A1).len(), 1);
    assert_eq!(to_console(&out, ConnId(3)).len(), 1);
    assert!(to_console(&out, B1).is_empty());
}

#[test]
fn presence_follows_the_first_and_last_console() {
    let mut b = SwitchboardCore::new();
    b.console_opened(ConnId(1), "c1", "a");
    b.console_opened(ConnId(2), "c1", "a");
    let presence = |out: Vec<Output>| -> Vec<bool> {
        out.into_iter()
            .filter_map(|o| match o {
                Output::Presence { connected, .. } => Some(connected),
                _ => None,
            })
            .collect()
    };
    assert_eq!(presence(drain(&mut b)), vec![true]);
    b.console_closed(ConnId(1));
    assert_eq!(presence(drain(&mut b)), Vec::<bool>::new());
    b.console_closed(ConnId(2));
    assert_eq!(presence(drain(&mut b)), vec![false]);
    b.console_closed(ConnId(2));
    assert!(drain(&mut b).is_empty(), "a second close is nothing");
}

#[test]
fn media_goes_to_the_serving_clerks_console_that_offered_last() {
    let mut b = board();
    let route = |b: &SwitchboardCore| b.media_route("t1").map(|r| (r.kiosk, r.console));
    assert_eq!(route(&b), Some((Some(K1), None)), "no console media yet");
    b.console_opened(ConnId(3), "c1", "a");
    b.console_media_up(ConnId(3));
    b.console_media_up(A1);
    b.console_media_up(B1);
    assert_eq!(route(&b), Some((Some(K1), Some(A1))));
    assert!(drain(&mut b).contains(&Output::MediaRouteChanged {
        ticket_id: "t1".into()
    }));
    b.console_media_down(A1);
    assert_eq!(route(&b), Some((Some(K1), Some(ConnId(3)))));
    b.console_closed(ConnId(3));
    assert_eq!(route(&b), Some((Some(K1), None)));
    b.kiosk_closed("k1", K1);
    assert_eq!(route(&b), Some((None, None)));
    b.tickets_changed(1, [("t1".into(), None)]);
    assert_eq!(route(&b), None);
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    const DEVICES: [&str; 2] = ["k1", "k2"];
    const CLERKS: [&str; 3] = ["a", "b", "c"];

    #[derive(Debug, Clone)]
    enum Step {
        KioskOpen(usize, u64),
        KioskClose(usize, u64),
        ConsoleOpen(u64, usize),
        ConsoleClose(u64),
        MediaUp(u64),
        MediaDown(u64),
        Serve(usize, usize, usize),
        Unserve(usize),
        Command(u64, usize),
        Answer(usize, u64, u64),
        Tick(i64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0..2usize, 1..6u64).prop_map(|(d, c)| Step::KioskOpen(d, c)),
            (0..2usize, 1..6u64).prop_map(|(d, c)| Step::KioskClose(d, c)),
            (10..16u64, 0..3usize).prop_map(|(c, k)| Step::ConsoleOpen(c, k)),
            (10..16u64).prop_map(Step::ConsoleClose),
            (10..16u64).prop_map(Step::MediaUp),
            (10..16u64).prop_map(Step::MediaDown),
            (0..3usize, 0..2usize, 0..3usize).prop_map(|(t, d, k)| Step::Serve(t, d, k)),
            (0..3usize).prop_map(Step::Unserve),
            (10..16u64, 0..3usize).prop_map(|(c, t)| Step::Command(c, t)),
            (0..2usize, 1..6u64, 1..12u64).prop_map(|(d, c, r)| Step::Answer(d, c, r)),
            (0..4000i64).prop_map(Step::Tick),
        ]
    }

    proptest! {
        /// Whatever happens, a command reaches only the kiosk connection of a session served
        /// by the sender's clerk, an answer only the console that sent the command, and media
        /// is routed only between a session's kiosk and its serving clerk's console.
        #[test]
        fn commands_answers_and_media_reach_only_the_serving_parties(
            steps in proptest::collection::vec(step(), 1..80)
        ) {
            let mut b = SwitchboardCore::new();
            let mut now = 0i64;
            let mut next_console_id = 1u64;
            // The console's own request id (unique in this model) → the console that sent it.
            let mut issued_by: HashMap<u64, ConnId> = HashMap::new();
            let mut kiosk_of: HashMap<ConnId, &str> = HashMap::new();
            let mut clerk_of: HashMap<ConnId, &str> = HashMap::new();
            for step in steps {
                match step {
                    Step::KioskOpen(d, c) => {
                        // Connection ids are unique to a device, as the relay's are.
                        let conn = ConnId(100 * (d as u64 + 1) + c);
                        kiosk_of.insert(conn, DEVICES[d]);
                        b.kiosk_opened(DEVICES[d], conn);
                    }
                    Step::KioskClose(d, c) => b.kiosk_closed(DEVICES[d], ConnId(100 * (d as u64 + 1) + c)),
                    Step::ConsoleOpen(c, k) => {
                        if !b.is_console_open(ConnId(c)) {
                            clerk_of.insert(ConnId(c), CLERKS[k]);
                            b.console_opened(ConnId(c), "c1", CLERKS[k]);
                        }
                    }
                    Step::ConsoleClose(c) => b.console_closed(ConnId(c)),
                    Step::MediaUp(c) => b.console_media_up(ConnId(c)),
                    Step::MediaDown(c) => b.console_media_down(ConnId(c)),
                    Step::Serve(t, d, k) => b.tickets_changed(now, [(
                        format!("t{t}"),
                        Some(session(&format!("t{t}"), DEVICES[d], &format!("w{k}"), CLERKS[k])),
                    )]),
                    Step::Unserve(t) => b.tickets_changed(now, [(format!("t{t}"), None)]),
                    Step::Command(c, t) => {
                        issued_by.insert(next_console_id, ConnId(c));
                        b.device_command(now, ConnId(c), &format!("t{t}"), command(next_console_id));
                        next_console_id += 1;
                    }
                    Step::Answer(d, c, r) => {
                        let c = 100 * (d as u64 + 1) + c;
                        let ack = FromDevice::Acknowledge(Acknowledge {
                            request_id: RequestId(r),
                            status: AckStatus::Accepted,
                        });
                        b.from_kiosk(DEVICES[d], ConnId(c), ack);
                    }
                    Step::Tick(dt) => {
                        now += dt;
                        b.handle_timeout(now);
                    }
                }
                // Sessions can be two per device in this model (two tickets); the rules hold
                // per ticket.
                while let Some(output) = b.poll_output() {
                    match output {
                        Output::ToKiosk { conn, message: RelayToKiosk::Device { message: ToDevice::Command(c) } } => {
                            let device = kiosk_of.get(&conn).copied();
                            prop_assert_eq!(device.and_then(|d| b.kiosk_conn(d)), Some(conn),
                                "commands go to the device's current connection");
                            let served_here = b.sessions().any(|s| Some(s.device_id.as_str()) == device);
                            prop_assert!(served_here, "commands go only to a served kiosk");
                            let pending = b.pending.get(&c.request_id.0);
                            prop_assert!(pending.is_some(), "every command sent is pending");
                            if let Some(p) = pending {
                                let clerk = clerk_of.get(&p.console).copied();
                                let serving = b.session(&p.ticket_id).map(|s| s.clerk_id.as_str());
                                prop_assert_eq!(clerk, serving,
                                    "only the serving clerk's console sends commands");
                            }
                        }
                        Output::ToConsole { conn, message: RelayToClerk::Device { ticket_id, message } } => {
                            prop_assert!(b.is_console_open(conn), "only open consoles hear");
                            match &message {
                                FromDevice::Unsolicited(_) => {
                                    let s = b.session(&ticket_id);
                                    prop_assert_eq!(s.map(|s| s.clerk_id.as_str()), clerk_of.get(&conn).copied());
                                }
                                FromDevice::Acknowledge(Acknowledge { request_id, .. })
                                | FromDevice::Event(protocol::device::DeviceEvent { request_id, .. })
                                | FromDevice::Completion(Completion { request_id, .. }) => {
                                    // Answers carry the console's own id: that console sent it.
                                    prop_assert_eq!(issued_by.get(&request_id.0), Some(&conn),
                                        "an answer reaches only the console that asked");
                                }
                            }
                        }
                        _ => {}
                    }
                }
                for route in b.media_routes() {
                    if let Some(k) = route.kiosk {
                        prop_assert_eq!(kiosk_of.get(&k).copied(), Some(route.session.device_id.as_str()));
                        prop_assert_eq!(b.kiosk_conn(&route.session.device_id), Some(k));
                    }
                    if let Some(c) = route.console {
                        prop_assert!(b.is_console_open(c));
                        prop_assert_eq!(clerk_of.get(&c).copied(), Some(route.session.clerk_id.as_str()),
                            "media goes only to the serving clerk's console");
                    }
                }
            }
        }
    }
}

#[test]
fn only_the_serving_clerk_may_type_to_the_resident_and_only_while_the_kiosk_is_connected() {
    let mut b = board();
    // Clerk b does not serve t1; an unknown ticket is refused the same way.
    let e = b.typed_message(0, B1, "t1", "你好").expect_err("refused");
    assert_eq!(e.code, ErrorCode::Forbidden);
    let e = b.typed_message(0, A1, "t9", "你好").expect_err("refused");
    assert_eq!(e.code, ErrorCode::Forbidden);
    // The serving clerk's message is accepted for the session, with nothing sent yet: the
    // caller records it first.
    let ok = b
        .typed_message(5, A1, "t1", " 徐汇区漕溪北路 ")
        .expect("accepted");
    assert_eq!(ok.message.text, "徐汇区漕溪北路");
    assert_eq!(ok.message.ticket_id, "t1");
    assert_eq!(ok.message.sent_ms, 5);
    assert_eq!(ok.session.device_id, "k1");
    assert!(drain(&mut b).is_empty());
    // A text over 200 characters is refused as too long.
    let e = b
        .typed_message(6, A1, "t1", &"长".repeat(201))
        .expect_err("refused");
    assert_eq!(e.code, ErrorCode::LimitExceeded);
    // The kiosk gone: refused, nothing accepted.
    b.kiosk_closed("k1", K1);
    drain(&mut b);
    let e = b.typed_message(7, A1, "t1", "你好").expect_err("refused");
    assert_eq!(e.code, ErrorCode::InvalidState);
    let c = b.typed_counters();
    assert_eq!(
        (
            c.accepted,
            c.refused_not_serving,
            c.refused_text,
            c.refused_offline
        ),
        (1, 2, 1, 1)
    );
    // The clerk's last console closing drops their rate history.
    b.console_closed(A1);
    drain(&mut b);
    assert_eq!(b.typed.tracked_clerks(), 0);
}
