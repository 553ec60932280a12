//! Scenario tests of the queue core in virtual time.

use protocol::queue::{AppointmentSlot, QueueOp, TicketChannel, TicketState, WindowMode};

use super::*;

const T0: i64 = 1_795_000_000_000; // a weekday morning, Unix ms
const MIN: i64 = 60_000;

fn category(id: &str, prefix: &str) -> Category {
    Category {
        id: id.into(),
        prefix: prefix.into(),
        name: format!("事项{prefix}"),
    }
}

fn window(id: &str, mode: WindowMode, cats: &[&str]) -> Window {
    Window {
        id: id.into(),
        name: format!("{id}号窗口"),
        mode,
        category_ids: cats.iter().map(|c| (*c).to_owned()).collect(),
        clerk_id: None,
        clerk_name: None,
        clerk_connected: false,
        current: None,
        pause: None,
    }
}

/// A centre with an on-site window, a remote virtual window and a combined window.
fn centre() -> QueueCore {
    let mut q = QueueCore::new(
        "c1",
        QueueConfig::default(),
        vec![category("civil", "A"), category("social", "B")],
        vec![
            window("w1", WindowMode::OnSite, &["civil", "social"]),
            window("w2", WindowMode::Remote, &["civil", "social"]),
            window("w3", WindowMode::Combined, &["civil"]),
        ],
    );
    for (clerk, w) in [("k1", "w1"), ("k2", "w2"), ("k3", "w3")] {
        run(&mut q, T0, open(clerk, w)).expect("open window");
    }
    q
}

fn open(clerk: &str, window: &str) -> Command {
    Command::OpenWindow {
        clerk_id: clerk.into(),
        clerk_name: format!("clerk {clerk}"),
        window_id: window.into(),
    }
}

/// decide + apply, as the driver does (minus the store).
fn run(q: &mut QueueCore, now: i64, cmd: Command) -> Result<Vec<Event>, QueueError> {
    let events = q.decide(now, &cmd)?;
    q.apply(&events);
    Ok(events)
}

fn issue(q: &mut QueueCore, now: i64, channel: TicketChannel, cat: &str) -> Ticket {
    issue_full(q, now, channel, cat, None, None)
}

fn issue_full(
    q: &mut QueueCore,
    now: i64,
    channel: TicketChannel,
    cat: &str,
    appointment: Option<AppointmentSlot>,
    device: Option<&str>,
) -> Ticket {
    let events = run(
        q,
        now,
        Command::Issue {
            channel,
            category_id: cat.into(),
            appointment,
            device_id: device.map(Into::into),
            extension_point_id: device.map(|_| "ep1".into()),
        },
    )
    .expect("issue");
    first_ticket(&events)
}

fn first_ticket(events: &[Event]) -> Ticket {
    events
        .iter()
        .find_map(|e| match e {
            Event::Ticket { ticket, .. } => Some(ticket.clone()),
            Event::Window { .. } => None,
        })
        .expect("a ticket event")
}

fn op(q: &mut QueueCore, now: i64, clerk: &str, op: QueueOp) -> Result<Ticket, QueueError> {
    run(
        q,
        now,
        Command::Op {
            clerk_id: clerk.into(),
            op,
        },
    )
    .map(|e| first_ticket(&e))
}

fn call_next(q: &mut QueueCore, now: i64, clerk: &str) -> Result<Ticket, QueueError> {
    op(q, now, clerk, QueueOp::CallNext)
}

fn id(t: &Ticket) -> String {
    t.id.clone()
}

#[test]
fn numbers_tell_on_site_and_remote_apart_and_count_per_prefix() {
    let mut q = centre();
    let a1 = issue(&mut q, T0, TicketChannel::OnSite, "civil");
    let a2 = issue(&mut q, T0 + 1, TicketChannel::OnSite, "civil");
    let y1 = issue(&mut q, T0 + 2, TicketChannel::Remote, "civil");
    let b1 = issue(&mut q, T0 + 3, TicketChannel::OnSite, "social");
    assert_eq!(
        [a1.number, a2.number, y1.number, b1.number],
        ["A001", "A002", "YA001", "B001"]
    );
}

#[test]
fn numbering_restarts_each_service_day() {
    let mut q = centre();
    issue(&mut q, T0, TicketChannel::OnSite, "civil");
    let next_day = issue(&mut q, T0 + 24 * 60 * MIN, TicketChannel::OnSite, "civil");
    assert_eq!(next_day.number, "A001");
}

#[test]
fn window_mode_decides_which_tickets_it_may_call() {
    let mut q = centre();
    let remote = issue(&mut q, T0, TicketChannel::Remote, "civil");
    let on_site = issue(&mut q, T0 + 1, TicketChannel::OnSite, "civil");
    // The on-site window skips the older remote ticket.
    assert_eq!(
        id(&call_next(&mut q, T0 + 2, "k1").expect("w1")),
        id(&on_site)
    );
    // The remote window takes the remote ticket.
    assert_eq!(
        id(&call_next(&mut q, T0 + 3, "k2").expect("w2")),
        id(&remote)
    );
}

#[test]
fn combined_window_takes_both_channels_in_arrival_order() {
    let mut q = centre();
    let remote = issue(&mut q, T0, TicketChannel::Remote, "civil");
    let on_site = issue(&mut q, T0 + 1, TicketChannel::OnSite, "civil");
    let first = call_next(&mut q, T0 + 2, "k3").expect("call");
    assert_eq!(id(&first), id(&remote));
    op(
        &mut q,
        T0 + 3,
        "k3",
        QueueOp::Start {
            ticket_id: id(&first),
        },
    )
    .expect("start");
    op(
        &mut q,
        T0 + 4,
        "k3",
        QueueOp::Finish {
            ticket_id: id(&first),
        },
    )
    .expect("finish");
    assert_eq!(
        id(&call_next(&mut q, T0 + 5, "k3").expect("call")),
        id(&on_site)
    );
}

#[test]
fn a_remote_only_window_may_not_call_an_on_site_ticket_out_of_order() {
    let mut q = centre();
    let on_site = issue(&mut q, T0, TicketChannel::OnSite, "civil");
    let before = q.ticket(&on_site.id).cloned();
    let err = op(
        &mut q,
        T0 + 1,
        "k2",
        QueueOp::Call {
            ticket_id: id(&on_site),
        },
    );
    assert_eq!(err, Err(QueueError::NotEligible));
    assert_eq!(
        q.ticket(&on_site.id).cloned(),
        before,
        "refusal changes nothing"
    );
}

#[test]
fn category_outside_the_window_profile_is_not_eligible() {
    let mut q = centre();
    issue(&mut q, T0, TicketChannel::OnSite, "social");
    // w3 serves only "civil".
    assert_eq!(call_next(&mut q, T0 + 1, "k3"), Err(QueueError::QueueEmpty));
}

#[test]
fn appointments_in_their_slot_go_first_then_waiting_time() {
    let mut q = centre();
    let walk_in = issue(&mut q, T0, TicketChannel::OnSite, "civil");
    let slot = AppointmentSlot {
        start_ms: T0 + 10 * MIN,
        end_ms: T0 + 40 * MIN,
    };
    let booked = issue_full(
        &mut q,
        T0 + MIN,
        TicketChannel::OnSite,
        "civil",
        Some(slot),
        None,
    );
    let late_walk_in = issue(&mut q, T0 + 2 * MIN, TicketChannel::OnSite, "civil");

    // Before the slot the appointment is ordered by arrival like everyone else.
    let mut early = centre_clone_of(&q);
    assert_eq!(
        id(&call_next(&mut early, T0 + 5 * MIN, "k1").expect("call")),
        id(&walk_in)
    );

    // Within its slot it goes first, even before an older walk-in.
    assert_eq!(
        id(&call_next(&mut q, T0 + 15 * MIN, "k1").expect("call")),
        id(&booked)
    );
    finish_current(&mut q, T0 + 16 * MIN, "k1");
    assert_eq!(
        id(&call_next(&mut q, T0 + 17 * MIN, "k1").expect("call")),
        id(&walk_in)
    );
    finish_current(&mut q, T0 + 18 * MIN, "k1");
    assert_eq!(
        id(&call_next(&mut q, T0 + 19 * MIN, "k1").expect("call")),
        id(&late_walk_in)
    );
}

#[test]
fn an_appointment_after_its_slot_waits_by_arrival_time() {
    let mut q = centre();
    let slot = AppointmentSlot {
        start_ms: T0,
        end_ms: T0 + 10 * MIN,
    };
    let walk_in = issue(&mut q, T0 - 5 * MIN, TicketChannel::OnSite, "civil");
    let booked = issue_full(
        &mut q,
        T0 + MIN,
        TicketChannel::OnSite,
        "civil",
        Some(slot),
        None,
    );
    assert_eq!(
        id(&call_next(&mut q, T0 + 30 * MIN, "k1").expect("call")),
        id(&walk_in)
    );
    finish_current(&mut q, T0 + 31 * MIN, "k1");
    assert_eq!(
        id(&call_next(&mut q, T0 + 32 * MIN, "k1").expect("call")),
        id(&booked)
    );
}

fn centre_clone_of(q: &QueueCore) -> QueueCore {
    let mut c = centre();
    for t in q.live_tickets() {
        c.restore_ticket(t.clone());
    }
    c
}

fn finish_current(q: &mut QueueCore, now: i64, clerk: &str) {
    let current = q
        .window_of_clerk(clerk)
        .and_then(|w| w.current.clone())
        .expect("a current ticket");
    op(
        q,
        now,
        clerk,
        QueueOp::Start {
            ticket_id: current.clone(),
        },
    )
    .expect("start");
    op(q, now, clerk, QueueOp::Finish { ticket_id: current }).expect("finish");
}

#[test]
fn call_next_with_a_ticket_in_hand_is_refused() {
    let mut q = centre();
    issue(&mut q, T0, TicketChannel::OnSite, "civil");
    issue(&mut q, T0 + 1, TicketChannel::OnSite, "civil");
    call_next(&mut q, T0 + 2, "k1").expect("first call");
    let version = q.version();
    assert_eq!(
        call_next(&mut q, T0 + 3, "k1"),
        Err(QueueError::TicketInHand)
    );
    assert_eq!(q.version(), version);
}

#[test]
fn call_next_on_an_empty_queue_says_so() {
    let mut q = centre();
    assert_eq!(call_next(&mut q, T0, "k1"), Err(QueueError::QueueEmpty));
}

#[test]
fn operations_need_a_window() {
    let mut q = centre();
    assert_eq!(call_next(&mut q, T0, "nobody"), Err(QueueError::NoWindow));
}

#[test]
fn call_out_of_order() {
    let mut q = centre();
    issue(&mut q, T0, TicketChannel::OnSite, "civil");
    let second = issue(&mut q, T0 + 1, TicketChannel::OnSite, "civil");
    let called = op(
        &mut q,
        T0 + 2,
        "k1",
        QueueOp::Call {
            ticket_id: id(&second),
        },
    )
    .expect("call");
    assert_eq!(called.state, TicketState::Called);
    assert_eq!(called.window_id.as_deref(), Some("w1"));
}

#[test]
fn recall_counts_and_too_many_recalls_make_a_no_show() {
    let mut q = centre();
    let t = issue(&mut q, T0, TicketChannel::OnSite, "civil");
    call_next(&mut q, T0 + 1, "k1").expect("call");
    for n in 1..=3 {
        let r = op(
            &mut q,
            T0 + 1 + n,
            "k1",
            QueueOp::Recall { ticket_id: id(&t) },
        )
        .expect("recall");
        assert_eq!(r.recalls, u32::try_from(n).expect("small"));
        assert_eq!(r.state, TicketState::Called);
    }
    let r = op(&mut q, T0 + 10, "k1", QueueOp::Recall { ticket_id: id(&t) }).expect("recall");
    assert_eq!(r.state, TicketState::NoShow);
    assert_eq!(r.end_reason, Some(EndReason::NoShowRecalls));
    assert!(q.window_of_clerk("k1").expect("window").current.is_none());
}

#[test]
fn no_show_after_the_call_timeout() {
    let mut q = centre();
    let t = issue(&mut q, T0, TicketChannel::OnSite, "civil");
    call_next(&mut q, T0 + MIN, "k1").expect("call");
    assert_eq!(q.next_timeout(T0 + MIN), T0 + MIN + 5 * MIN);
    assert!(q.decide_timeouts(T0 + 5 * MIN).is_empty());
    let events = q.decide_timeouts(T0 + 6 * MIN);
    q.apply(&events);
    let ended = first_ticket(&events);
    assert_eq!(ended.id, t.id);
    assert_eq!(ended.state, TicketState::NoShow);
    assert_eq!(ended.end_reason, Some(EndReason::NoShowTimeout));
}

#[test]
fn started_tickets_do_not_time_out() {
    let mut q = centre();
    let t = issue(&mut q, T0, TicketChannel::OnSite, "civil");
    call_next(&mut q, T0, "k1").expect("call");
    op(&mut q, T0, "k1", QueueOp::Start { ticket_id: id(&t) }).expect("start");
    assert!(q.decide_timeouts(T0 + 60 * MIN).is_empty());
}

#[test]
fn leftover_tickets_close_at_the_next_service_day() {
    let mut q = centre();
    let t = issue(&mut q, T0, TicketChannel::OnSite, "civil");
    let tomorrow = T0 + 24 * 60 * MIN;
    let events = q.decide_timeouts(tomorrow);
    assert_eq!(first_ticket(&events).id, t.id);
    assert_eq!(first_ticket(&events).end_reason, Some(EndReason::DayClosed));
    q.apply(&events);
    assert_eq!(q.waiting_len(), 0);
}

#[test]
fn finish_a_ticket_that_is_not_being_served_is_refused() {
    let mut q = centre();
    let t = issue(&mut q, T0, TicketChannel::OnSite, "civil");
    call_next(&mut q, T0, "k1").expect("call");
    assert_eq!(
        op(&mut q, T0, "k1", QueueOp::Finish { ticket_id: id(&t) }),
        Err(QueueError::InvalidState(TicketState::Called))
    );
}

#[test]
fn another_window_cannot_act_on_my_ticket() {
    let mut q = centre();
    let t = issue(&mut q, T0, TicketChannel::OnSite, "civil");
    call_next(&mut q, T0, "k1").expect("call");
    assert_eq!(
        op(&mut q, T0, "k3", QueueOp::Start { ticket_id: id(&t) }),
        Err(QueueError::NotAtThisWindow)
    );
}

#[test]
fn serve_records_statistics_and_feeds_the_estimate() {
    let mut q = centre();
    let t = issue(&mut q, T0, TicketChannel::OnSite, "civil");
    call_next(&mut q, T0 + 2 * MIN, "k1").expect("call");
    op(
        &mut q,
        T0 + 3 * MIN,
        "k1",
        QueueOp::Start { ticket_id: id(&t) },
    )
    .expect("start");
    op(
        &mut q,
        T0 + 7 * MIN,
        "k1",
        QueueOp::Finish { ticket_id: id(&t) },
    )
    .expect("finish");
    let stats = q.stats();
    let w1 = stats
        .windows
        .iter()
        .find(|s| s.id == "w1")
        .expect("w1 stats");
    assert_eq!(w1.served, 1);
    assert_eq!(w1.avg_wait_seconds, Some(120));
    assert_eq!(w1.avg_service_seconds, Some(240));
    let k1 = stats
        .clerks
        .iter()
        .find(|s| s.id == "k1")
        .expect("k1 stats");
    assert_eq!(k1.served, 1);
    assert_eq!(k1.name, "clerk k1");
    assert_eq!(q.service_estimate("civil"), 240);
    assert_eq!(
        q.service_estimate("social"),
        QueueConfig::default().default_service_secs
    );
}

#[test]
fn estimates_count_tickets_ahead_and_divide_by_open_windows() {
    let mut q = centre();
    let tickets: Vec<Ticket> = (0..4)
        .map(|i| issue(&mut q, T0 + i, TicketChannel::Remote, "civil"))
        .collect();
    let est = q.estimates(T0 + 10);
    let per = i64::from(QueueConfig::default().default_service_secs);
    // Remote civil tickets can go to w2 (remote) and w3 (combined): two open windows.
    for (i, t) in tickets.iter().enumerate() {
        let e = est[t.id.as_str()];
        assert_eq!(e.ahead, u32::try_from(i).expect("small"));
        let want = per * i64::try_from(i).expect("small") / 2;
        assert_eq!(i64::from(e.eta_seconds.expect("open windows")), want);
    }
}

#[test]
fn no_estimate_when_no_window_can_serve() {
    let mut q = centre();
    let t = issue(&mut q, T0, TicketChannel::Remote, "social");
    // Only w2 takes remote "social" tickets; its clerk closes.
    run(
        &mut q,
        T0,
        Command::ClerkPresence {
            clerk_id: "k2".into(),
            connected: false,
        },
    )
    .expect("presence");
    assert_eq!(q.estimates(T0)[t.id.as_str()].eta_seconds, None);
}

#[test]
fn transfer_to_another_category_keeps_the_place_in_line() {
    let mut q = centre();
    let first = issue(&mut q, T0, TicketChannel::OnSite, "civil");
    let social_later = issue(&mut q, T0 + MIN, TicketChannel::OnSite, "social");
    call_next(&mut q, T0 + 2 * MIN, "k1").expect("call first");
    let moved = op(
        &mut q,
        T0 + 3 * MIN,
        "k1",
        QueueOp::Transfer {
            ticket_id: id(&first),
            category_id: Some("social".into()),
            window_id: None,
        },
    )
    .expect("transfer");
    assert_eq!(moved.state, TicketState::Waiting);
    assert_eq!(moved.category_id, "social");
    // It arrived before the other social ticket, so it is called first.
    assert_eq!(
        id(&call_next(&mut q, T0 + 4 * MIN, "k1").expect("call")),
        id(&first)
    );
    let _ = social_later;
}

#[test]
fn transfer_to_a_window_only_that_window_calls_it() {
    let mut q = centre();
    let t = issue(&mut q, T0, TicketChannel::OnSite, "civil");
    call_next(&mut q, T0, "k1").expect("call");
    op(
        &mut q,
        T0 + 1,
        "k1",
        QueueOp::Transfer {
            ticket_id: id(&t),
            category_id: None,
            window_id: Some("w3".into()),
        },
    )
    .expect("transfer");
    assert_eq!(call_next(&mut q, T0 + 2, "k1"), Err(QueueError::QueueEmpty));
    assert_eq!(
        id(&call_next(&mut q, T0 + 3, "k3").expect("w3 calls")),
        id(&t)
    );
}

#[test]
fn transfer_of_a_remote_ticket_to_an_on_site_window_is_refused() {
    let mut q = centre();
    let t = issue(&mut q, T0, TicketChannel::Remote, "civil");
    call_next(&mut q, T0, "k2").expect("call");
    let refused = op(
        &mut q,
        T0,
        "k2",
        QueueOp::Transfer {
            ticket_id: id(&t),
            category_id: None,
            window_id: Some("w1".into()),
        },
    );
    assert_eq!(refused, Err(QueueError::NotEligible));
}

#[test]
fn park_resume_and_return_to_queue() {
    let mut q = centre();
    let t = issue(&mut q, T0, TicketChannel::OnSite, "civil");
    let other = issue(&mut q, T0 + 1, TicketChannel::OnSite, "civil");
    call_next(&mut q, T0 + 2, "k1").expect("call");
    op(&mut q, T0 + 3, "k1", QueueOp::Start { ticket_id: id(&t) }).expect("start");
    let parked = op(&mut q, T0 + 4, "k1", QueueOp::Park { ticket_id: id(&t) }).expect("park");
    assert_eq!(parked.state, TicketState::Parked);
    // The window is free for the next resident meanwhile.
    assert_eq!(
        id(&call_next(&mut q, T0 + 5, "k1").expect("call")),
        id(&other)
    );
    assert_eq!(
        op(&mut q, T0 + 6, "k1", QueueOp::Resume { ticket_id: id(&t) }),
        Err(QueueError::TicketInHand)
    );
    finish_current(&mut q, T0 + 7, "k1");
    let resumed = op(&mut q, T0 + 8, "k1", QueueOp::Resume { ticket_id: id(&t) }).expect("resume");
    assert_eq!(resumed.state, TicketState::Called);
    op(&mut q, T0 + 9, "k1", QueueOp::Park { ticket_id: id(&t) }).expect("park again");
    let back = op(
        &mut q,
        T0 + 10,
        "k1",
        QueueOp::ReturnToQueue { ticket_id: id(&t) },
    )
    .expect("return");
    assert_eq!(back.state, TicketState::Waiting);
    assert_eq!(back.queue_ms, T0, "keeps its original place");
}

#[test]
fn resident_cancels_only_their_own_ticket() {
    let mut q = centre();
    let t = issue_full(
        &mut q,
        T0,
        TicketChannel::Remote,
        "civil",
        None,
        Some("dev1"),
    );
    let theirs = Command::ResidentCancel {
        device_id: "dev2".into(),
        ticket_id: id(&t),
    };
    assert_eq!(q.decide(T0, &theirs), Err(QueueError::NotYourTicket));
    let mine = Command::ResidentCancel {
        device_id: "dev1".into(),
        ticket_id: id(&t),
    };
    let events = run(&mut q, T0, mine).expect("cancel");
    assert_eq!(first_ticket(&events).state, TicketState::Cancelled);
    assert!(q.device_ticket("dev1").is_none());
}

#[test]
fn a_kiosk_holds_one_ticket_at_a_time() {
    let mut q = centre();
    issue_full(
        &mut q,
        T0,
        TicketChannel::Remote,
        "civil",
        None,
        Some("dev1"),
    );
    let again = Command::Issue {
        channel: TicketChannel::Remote,
        category_id: "civil".into(),
        appointment: None,
        device_id: Some("dev1".into()),
        extension_point_id: Some("ep1".into()),
    };
    assert_eq!(q.decide(T0 + 1, &again), Err(QueueError::DeviceHasTicket));
}

#[test]
fn clerk_cancels_a_waiting_ticket_but_not_one_being_served() {
    let mut q = centre();
    let waiting = issue(&mut q, T0, TicketChannel::OnSite, "social");
    let cancelled = op(
        &mut q,
        T0,
        "k1",
        QueueOp::Cancel {
            ticket_id: id(&waiting),
        },
    )
    .expect("cancel");
    assert_eq!(cancelled.end_reason, Some(EndReason::ClerkCancelled));
    let served = issue(&mut q, T0, TicketChannel::OnSite, "civil");
    call_next(&mut q, T0, "k1").expect("call");
    op(
        &mut q,
        T0,
        "k1",
        QueueOp::Start {
            ticket_id: id(&served),
        },
    )
    .expect("start");
    assert_eq!(
        op(
            &mut q,
            T0,
            "k1",
            QueueOp::Cancel {
                ticket_id: id(&served)
            }
        ),
        Err(QueueError::InvalidState(TicketState::Serving))
    );
}

#[test]
fn a_connected_clerk_keeps_their_window_a_disconnected_one_can_be_replaced() {
    let mut q = centre();
    assert_eq!(
        run(&mut q, T0, open("k9", "w1")),
        Err(QueueError::WindowTaken)
    );
    run(
        &mut q,
        T0,
        Command::ClerkPresence {
            clerk_id: "k1".into(),
            connected: false,
        },
    )
    .expect("presence");
    run(&mut q, T0, open("k9", "w1")).expect("take over");
    assert_eq!(q.window("w1").expect("w1").clerk_id.as_deref(), Some("k9"));
}

#[test]
fn moving_to_another_window_with_a_ticket_in_hand_is_refused() {
    let mut q = centre();
    issue(&mut q, T0, TicketChannel::OnSite, "civil");
    call_next(&mut q, T0, "k1").expect("call");
    run(
        &mut q,
        T0,
        Command::CloseWindow {
            clerk_id: "k3".into(),
        },
    )
    .expect("k3 leaves w3");
    assert_eq!(
        run(&mut q, T0, open("k1", "w3")),
        Err(QueueError::TicketInHand)
    );
    assert_eq!(
        run(
            &mut q,
            T0,
            Command::CloseWindow {
                clerk_id: "k1".into()
            }
        ),
        Err(QueueError::TicketInHand)
    );
}

#[test]
fn a_full_queue_refuses_new_tickets() {
    let mut q = QueueCore::new(
        "c1",
        QueueConfig {
            max_waiting: 2,
            ..QueueConfig::default()
        },
        vec![category("civil", "A")],
        vec![],
    );
    issue(&mut q, T0, TicketChannel::OnSite, "civil");
    issue(&mut q, T0, TicketChannel::OnSite, "civil");
    let more = Command::Issue {
        channel: TicketChannel::OnSite,
        category_id: "civil".into(),
        appointment: None,
        device_id: None,
        extension_point_id: None,
    };
    assert_eq!(q.decide(T0, &more), Err(QueueError::QueueFull));
}

#[test]
fn restoring_tickets_rebuilds_counters_and_order() {
    let mut q = centre();
    let a = issue(&mut q, T0, TicketChannel::OnSite, "civil");
    let b = issue(&mut q, T0 + 1, TicketChannel::OnSite, "civil");
    let restored = centre_clone_of(&q);
    let mut restored = restored;
    let c = issue(&mut restored, T0 + 2, TicketChannel::OnSite, "civil");
    assert_eq!(c.number, "A003");
    assert_ne!(c.id, a.id);
    assert_ne!(c.id, b.id);
    assert_eq!(
        id(&call_next(&mut restored, T0 + 3, "k1").expect("call")),
        id(&a)
    );
}

mod pause;

mod properties {
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Step {
        Issue(bool, bool),
        Op(usize, u8, usize),
        Tick(i64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (any::<bool>(), any::<bool>()).prop_map(|(r, c)| Step::Issue(r, c)),
            (0..3usize, 0..13u8, 0..64usize).prop_map(|(w, o, t)| Step::Op(w, o, t)),
            (0..(10 * MIN)).prop_map(Step::Tick),
        ]
    }

    proptest! {
        /// Whatever clerks do, the indexes stay consistent with the tickets, refused commands
        /// change nothing, and a window holds at most one ticket.
        #[test]
        fn random_operations_keep_the_queue_consistent(steps in prop::collection::vec(step(), 1..120)) {
            let mut q = centre();
            let mut now = T0;
            let mut ids: Vec<String> = Vec::new();
            for s in steps {
                now += 1000;
                match s {
                    Step::Issue(remote, civil) => {
                        let ch = if remote { TicketChannel::Remote } else { TicketChannel::OnSite };
                        let t = issue(&mut q, now, ch, if civil { "civil" } else { "social" });
                        ids.push(t.id);
                    }
                    Step::Tick(dt) => {
                        now += dt;
                        let ev = q.decide_timeouts(now);
                        q.apply(&ev);
                    }
                    Step::Op(w, o, t) => {
                        let clerk = ["k1", "k2", "k3"][w];
                        let ticket_id = ids.get(t % ids.len().max(1)).cloned().unwrap_or_default();
                        let op = match o {
                            0 => QueueOp::CallNext,
                            1 => QueueOp::Call { ticket_id },
                            2 => QueueOp::Recall { ticket_id },
                            3 => QueueOp::NoShow { ticket_id },
                            4 => QueueOp::Start { ticket_id },
                            5 => QueueOp::Finish { ticket_id },
                            6 => QueueOp::Transfer { ticket_id, category_id: Some("social".into()), window_id: None },
                            7 => QueueOp::Park { ticket_id },
                            8 => QueueOp::Resume { ticket_id },
                            9 => QueueOp::ReturnToQueue { ticket_id },
                            10 => QueueOp::PauseWindow { reason: protocol::queue::PauseReason::Away, minutes: 10 },
                            11 => QueueOp::ResumeWindow,
                            _ => QueueOp::Cancel { ticket_id },
                        };
                        let cmd = Command::Op { clerk_id: clerk.into(), op };
                        let version = q.version();
                        let paused: Vec<String> = q.windows().into_iter()
                            .filter(|w| w.pause.is_some()).map(|w| w.id).collect();
                        match q.decide(now, &cmd) {
                            Ok(events) => {
                                // A paused window calls nothing.
                                for e in &events {
                                    if let Event::Ticket { action: Action::Called | Action::Resumed, window_id: Some(w), .. } = e {
                                        prop_assert!(!paused.contains(w), "paused window {} called", w);
                                    }
                                }
                                q.apply(&events);
                            }
                            Err(_) => prop_assert_eq!(q.version(), version),
                        }
                    }
                }
                // Invariants.
                let waiting = q.live_tickets().filter(|t| t.state == TicketState::Waiting).count();
                prop_assert_eq!(waiting, q.waiting_len());
                for w in q.windows() {
                    let in_hand = q.live_tickets().filter(|t| {
                        matches!(t.state, TicketState::Called | TicketState::Serving)
                            && t.window_id.as_deref() == Some(w.id.as_str())
                    }).count();
                    prop_assert!(in_hand <= 1, "window {} holds {} tickets", w.id, in_hand);
                    prop_assert_eq!(in_hand == 1, w.current_ticket_id.is_some());
                }
                for t in q.live_tickets() {
                    prop_assert!(!t.state.is_terminal());
                }
            }
        }
    }
}
