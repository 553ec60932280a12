//! 暂停服务: a paused window calls nothing, the residents waiting for it are told when it is
//! expected back, and their estimates follow its pause, its return and its closing.

use protocol::queue::{PauseReason, WindowPause};

use crate::queue::core::Staffing;

use super::*;

fn pause(q: &mut QueueCore, now: i64, clerk: &str, minutes: u32) -> Result<(), QueueError> {
    run(
        q,
        now,
        Command::Op {
            clerk_id: clerk.into(),
            op: QueueOp::PauseWindow {
                reason: PauseReason::Meeting,
                minutes,
            },
        },
    )
    .map(drop)
}

fn resume(q: &mut QueueCore, now: i64, clerk: &str) -> Result<(), QueueError> {
    run(
        q,
        now,
        Command::Op {
            clerk_id: clerk.into(),
            op: QueueOp::ResumeWindow,
        },
    )
    .map(drop)
}

fn staffing_of(q: &QueueCore, category: &str) -> Staffing {
    q.remote_staffing()
        .into_iter()
        .find(|(c, _)| *c == category)
        .map(|(_, s)| s)
        .expect("category")
}

#[test]
fn a_paused_window_calls_nothing_until_it_resumes() {
    let mut q = centre();
    let t = issue(&mut q, T0, TicketChannel::Remote, "social");
    pause(&mut q, T0 + MIN, "k2", 15).expect("pause");
    let w = q.window("w2").expect("w2");
    assert_eq!(
        w.pause,
        Some(WindowPause {
            reason: PauseReason::Meeting,
            since_ms: T0 + MIN,
            until_ms: T0 + 16 * MIN,
        })
    );
    assert!(!w.is_open());
    assert_eq!(
        call_next(&mut q, T0 + 2 * MIN, "k2"),
        Err(QueueError::WindowPaused)
    );
    assert_eq!(
        op(
            &mut q,
            T0 + 2 * MIN,
            "k2",
            QueueOp::Call { ticket_id: id(&t) }
        ),
        Err(QueueError::WindowPaused)
    );
    // The on-site window is not affected, and still may not take the remote ticket.
    assert_eq!(
        call_next(&mut q, T0 + 2 * MIN, "k1"),
        Err(QueueError::QueueEmpty)
    );
    resume(&mut q, T0 + 3 * MIN, "k2").expect("resume");
    assert_eq!(q.window("w2").expect("w2").pause, None);
    assert_eq!(
        id(&call_next(&mut q, T0 + 3 * MIN, "k2").expect("call")),
        id(&t)
    );
}

#[test]
fn a_parked_ticket_is_not_taken_back_at_a_paused_window() {
    let mut q = centre();
    let t = issue(&mut q, T0, TicketChannel::Remote, "social");
    call_next(&mut q, T0, "k2").expect("call");
    op(&mut q, T0, "k2", QueueOp::Park { ticket_id: id(&t) }).expect("park");
    pause(&mut q, T0, "k2", 5).expect("pause with only a parked ticket");
    assert_eq!(
        op(&mut q, T0, "k2", QueueOp::Resume { ticket_id: id(&t) }),
        Err(QueueError::WindowPaused)
    );
}

#[test]
fn pausing_is_refused_with_a_resident_at_the_window_or_a_bad_duration() {
    let mut q = centre();
    issue(&mut q, T0, TicketChannel::Remote, "social");
    call_next(&mut q, T0, "k2").expect("call");
    assert_eq!(pause(&mut q, T0, "k2", 10), Err(QueueError::TicketInHand));
    assert_eq!(pause(&mut q, T0, "k3", 0), Err(QueueError::BadPause));
    assert_eq!(pause(&mut q, T0, "k3", 241), Err(QueueError::BadPause));
    assert_eq!(resume(&mut q, T0, "k3"), Err(QueueError::NotPaused));
    assert_eq!(pause(&mut q, T0, "nobody", 10), Err(QueueError::NoWindow));
    let version = q.version();
    assert!(
        q.decide(
            T0,
            &Command::Op {
                clerk_id: "k3".into(),
                op: QueueOp::PauseWindow {
                    reason: PauseReason::Away,
                    minutes: 300
                },
            }
        )
        .is_err()
    );
    assert_eq!(q.version(), version, "a refused pause changes nothing");
    // Extending a pause keeps when it began.
    pause(&mut q, T0 + MIN, "k3", 10).expect("pause");
    pause(&mut q, T0 + 5 * MIN, "k3", 30).expect("longer");
    let p = q.window("w3").and_then(|w| w.pause).expect("paused");
    assert_eq!((p.since_ms, p.until_ms), (T0 + MIN, T0 + 35 * MIN));
}

#[test]
fn the_estimate_follows_the_pause_its_end_and_the_window_closing() {
    let mut q = centre();
    let per = i64::from(QueueConfig::default().default_service_secs);
    // Only w2 (remote) serves remote "social" tickets.
    let first = issue(&mut q, T0, TicketChannel::Remote, "social");
    let second = issue(&mut q, T0 + 1, TicketChannel::Remote, "social");
    let e = q.estimates(T0 + 2)[second.id.as_str()];
    assert_eq!(
        (e.open, e.paused, e.eta_seconds),
        (1, None, u32::try_from(per).ok())
    );

    pause(&mut q, T0 + 2, "k2", 20).expect("pause");
    let est = q.estimates(T0 + 2);
    let (a, b) = (est[first.id.as_str()], est[second.id.as_str()]);
    let back = WindowPause {
        reason: PauseReason::Meeting,
        since_ms: T0 + 2,
        until_ms: T0 + 2 + 20 * MIN,
    };
    assert_eq!((a.open, a.paused), (0, Some(back)));
    assert_eq!(
        a.eta_seconds,
        Some(20 * 60),
        "the first waits for the clerk's return"
    );
    assert_eq!(
        i64::from(b.eta_seconds.expect("estimate")),
        20 * 60 + per,
        "the second also for one service"
    );
    // Ten minutes later the return is ten minutes closer.
    assert_eq!(
        q.estimates(T0 + 2 + 10 * MIN)[first.id.as_str()].eta_seconds,
        Some(10 * 60)
    );
    // Overdue: the clerk is expected any moment, not in negative time.
    assert_eq!(
        q.estimates(T0 + 2 + 30 * MIN)[first.id.as_str()].eta_seconds,
        Some(0)
    );

    // The combined window w3 does not serve "social": the ticket stays waiting for w2.
    assert_eq!(staffing_of(&q, "social").open, 0);
    assert_eq!(staffing_of(&q, "social").paused, Some(back));
    assert_eq!(
        staffing_of(&q, "civil").open,
        1,
        "w3 still takes remote civil tickets"
    );

    resume(&mut q, T0 + 5 * MIN, "k2").expect("resume");
    let e = q.estimates(T0 + 5 * MIN)[second.id.as_str()];
    assert_eq!(
        (e.open, e.paused, e.eta_seconds),
        (1, None, u32::try_from(per).ok())
    );

    // The last suitable window closes: no estimate, nothing paused to wait for.
    run(
        &mut q,
        T0 + 6 * MIN,
        Command::CloseWindow {
            clerk_id: "k2".into(),
        },
    )
    .expect("close");
    let e = q.estimates(T0 + 6 * MIN)[second.id.as_str()];
    assert_eq!((e.open, e.paused, e.eta_seconds), (0, None, None));
    assert_eq!(
        staffing_of(&q, "social"),
        Staffing {
            open: 0,
            paused: None
        }
    );
}

#[test]
fn an_open_window_makes_another_ones_pause_irrelevant() {
    let mut q = centre();
    // Remote civil tickets go to w2 and w3.
    let t = issue(&mut q, T0, TicketChannel::Remote, "civil");
    pause(&mut q, T0, "k2", 30).expect("pause");
    let e = q.estimates(T0)[t.id.as_str()];
    assert_eq!((e.open, e.paused, e.eta_seconds), (1, None, Some(0)));
    assert_eq!(id(&call_next(&mut q, T0, "k3").expect("w3 calls")), id(&t));
}

#[test]
fn a_window_whose_clerk_is_away_or_signed_out_is_not_paused_but_closed() {
    let mut q = centre();
    pause(&mut q, T0, "k2", 30).expect("pause");
    run(
        &mut q,
        T0,
        Command::ClerkPresence {
            clerk_id: "k2".into(),
            connected: false,
        },
    )
    .expect("presence");
    // A disconnected console's pause is no promise: nobody is there to come back.
    assert_eq!(
        staffing_of(&q, "social"),
        Staffing {
            open: 0,
            paused: None
        }
    );
    run(
        &mut q,
        T0,
        Command::ClerkPresence {
            clerk_id: "k2".into(),
            connected: true,
        },
    )
    .expect("presence");
    assert!(
        staffing_of(&q, "social").paused.is_some(),
        "the pause outlives a reconnect"
    );
    // Signing in again (or out) ends the pause.
    run(&mut q, T0, open("k2", "w2")).expect("reopen");
    assert_eq!(staffing_of(&q, "social").open, 1);
}

#[test]
fn a_pause_read_back_from_the_store_applies_only_to_a_signed_in_window() {
    let mut q = QueueCore::new(
        "c1",
        QueueConfig::default(),
        vec![category("social", "B")],
        vec![
            window("w1", WindowMode::Remote, &["social"]),
            window("w2", WindowMode::Remote, &["social"]),
        ],
    );
    let p = WindowPause {
        reason: PauseReason::Training,
        since_ms: T0,
        until_ms: T0 + 60 * MIN,
    };
    q.restore_window_clerk("w1", "k1", "clerk k1");
    q.restore_window_pause("w1", p);
    q.restore_window_pause("w2", p);
    assert_eq!(q.window("w1").and_then(|w| w.pause), Some(p));
    assert_eq!(q.window("w2").and_then(|w| w.pause), None);
}
