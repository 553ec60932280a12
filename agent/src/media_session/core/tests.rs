use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

fn turn(user: &str) -> Option<TurnServer> {
    Some(TurnServer {
        urls: vec!["turn:127.0.0.1:3478?transport=udp".into()],
        username: user.into(),
        credential: "secret".into(),
    })
}

struct Harness {
    core: SessionCore,
    now: Instant,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            core: SessionCore::new(CoreConfig::default()),
            now: Instant::now(),
        }
    }

    fn input(&mut self, input: Input) -> Vec<Action> {
        self.core.handle(self.now, input);
        self.drain()
    }

    fn advance(&mut self, by: Duration) -> Vec<Action> {
        self.now += by;
        self.core.handle_timeout(self.now);
        self.drain()
    }

    fn drain(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.core.poll_action()).collect()
    }

    /// Online → started → first offer sent; returns its request id.
    fn first_offer(&mut self) -> u64 {
        let actions = self.input(Input::Online { turn: turn("a") });
        assert_eq!(actions, vec![Action::Start { turn: turn("a") }]);
        let actions = self.input(Input::Started(Ok(())));
        assert_eq!(
            actions,
            vec![Action::CreateOffer {
                new_connection: false
            }]
        );
        self.offer_created()
    }

    fn offer_created(&mut self) -> u64 {
        let actions = self.input(Input::OfferCreated(Ok("offer".into())));
        match actions.as_slice() {
            [Action::SendOffer { request_id, sdp }] if sdp == "offer" => *request_id,
            other => panic!("expected one SendOffer, got {other:?}"),
        }
    }

    fn connect(&mut self, request_id: u64) {
        let actions = self.input(Input::Answer {
            request_id,
            sdp: "answer".into(),
        });
        assert_eq!(
            actions,
            vec![Action::ApplyAnswer {
                request_id,
                sdp: "answer".into()
            }]
        );
        assert!(
            self.input(Input::AnswerApplied {
                request_id,
                result: Ok(())
            })
            .is_empty()
        );
        assert_eq!(self.core.phase(), Phase::Connecting);
        assert!(
            self.input(Input::Connection(ConnectionState::Connected))
                .is_empty()
        );
        assert_eq!(self.core.phase(), Phase::Connected);
    }
}

#[test]
fn first_online_starts_offers_and_connects() {
    let mut h = Harness::new();
    assert_eq!(h.core.phase(), Phase::Offline);
    let id = h.first_offer();
    assert_eq!(id, FIRST_REQUEST_ID);
    assert_eq!(h.core.phase(), Phase::AwaitingAnswer);
    h.connect(id);
    assert_eq!(h.core.counters().offers_sent, 1);
    assert_eq!(h.core.counters().new_connections, 0);
    assert_eq!(h.core.poll_timeout(), None);
}

#[test]
fn answers_with_another_request_id_are_ignored() {
    let mut h = Harness::new();
    let id = h.first_offer();
    for stale in [id - 1, id + 1, 7] {
        let actions = h.input(Input::Answer {
            request_id: stale,
            sdp: "old".into(),
        });
        assert!(actions.is_empty());
    }
    assert_eq!(h.core.counters().stale_answers, 3);
    assert_eq!(h.core.phase(), Phase::AwaitingAnswer);
    h.connect(id);
    // A repeat of the answer already applied is stale too.
    let actions = h.input(Input::Answer {
        request_id: id,
        sdp: "answer".into(),
    });
    assert!(actions.is_empty());
    assert_eq!(h.core.counters().stale_answers, 4);
    assert_eq!(h.core.phase(), Phase::Connected);
}

#[test]
fn sending_follows_the_relay_and_waits_for_the_link() {
    let mut h = Harness::new();
    // Before the link exists the wish is kept, and applied once it has started.
    assert!(h.input(Input::Sending(true)).is_empty());
    h.input(Input::Online { turn: None });
    let actions = h.input(Input::Started(Ok(())));
    assert_eq!(
        actions,
        vec![
            Action::SetSending(true),
            Action::CreateOffer {
                new_connection: false
            }
        ]
    );
    let id = h.offer_created();
    h.connect(id);
    assert_eq!(
        h.input(Input::Sending(false)),
        vec![Action::SetSending(false)]
    );
    assert!(h.input(Input::Sending(false)).is_empty(), "no repeat");
    assert_eq!(
        h.input(Input::Sending(true)),
        vec![Action::SetSending(true)]
    );
    assert!(h.core.sending());
    // Offline: the relay dropped the peer; stop sending until it says otherwise.
    assert_eq!(h.input(Input::Offline), vec![Action::SetSending(false)]);
    assert!(!h.core.sending());
}

#[test]
fn a_relay_restart_gets_a_new_connection_and_a_new_request_id() {
    let mut h = Harness::new();
    let first = h.first_offer();
    h.connect(first);
    h.input(Input::Sending(true));

    assert_eq!(h.input(Input::Offline), vec![Action::SetSending(false)]);
    assert_eq!(h.core.phase(), Phase::Offline);
    // The old connection failing while offline changes nothing.
    assert!(
        h.input(Input::Connection(ConnectionState::Failed))
            .is_empty()
    );
    assert!(h.advance(Duration::from_secs(60)).is_empty());
    // An answer to the old offer arriving late is stale.
    assert!(
        h.input(Input::Answer {
            request_id: first,
            sdp: "late".into()
        })
        .is_empty()
    );

    // Back online with fresh TURN credentials.
    let actions = h.input(Input::Online { turn: turn("b") });
    assert_eq!(
        actions,
        vec![
            Action::SetTurn(turn("b")),
            Action::CreateOffer {
                new_connection: true
            }
        ]
    );
    let second = h.offer_created();
    assert!(second > first);
    h.connect(second);
    assert_eq!(
        h.input(Input::Sending(true)),
        vec![Action::SetSending(true)]
    );
    assert_eq!(h.core.counters().new_connections, 1);
}

#[test]
fn a_dropped_offline_signal_still_leads_to_a_new_offer() {
    let mut h = Harness::new();
    let first = h.first_offer();
    h.connect(first);
    // The control link reconnected but its `Offline` was lost: `Online` alone re-offers.
    let actions = h.input(Input::Online { turn: turn("a") });
    assert_eq!(
        actions,
        vec![Action::CreateOffer {
            new_connection: true
        }]
    );
}

#[test]
fn no_answer_in_time_offers_again_with_growing_pauses() {
    let mut h = Harness::new();
    let config = CoreConfig::default();
    h.first_offer();
    // First failure: at once.
    let actions = h.advance(config.answer_timeout);
    assert_eq!(
        actions,
        vec![Action::CreateOffer {
            new_connection: true
        }]
    );
    let mut last = h.offer_created();
    // Second: after the minimum pause, then doubling, capped.
    let mut pause = config.min_backoff;
    for _ in 0..8 {
        assert!(h.advance(config.answer_timeout).is_empty());
        assert_eq!(h.core.phase(), Phase::Waiting);
        assert!(h.advance(pause - Duration::from_millis(1)).is_empty());
        let actions = h.advance(Duration::from_millis(1));
        assert_eq!(
            actions,
            vec![Action::CreateOffer {
                new_connection: true
            }]
        );
        last = h.offer_created();
        pause = (pause * 2).min(config.max_backoff);
    }
    assert_eq!(pause, config.max_backoff);
    // A connection resets the pause.
    h.connect(last);
    h.input(Input::Connection(ConnectionState::Failed));
    assert_eq!(
        h.core.phase(),
        Phase::Offering,
        "first failure after a connection: at once"
    );
}

#[test]
fn disconnected_is_given_a_grace_period() {
    let mut h = Harness::new();
    let config = CoreConfig::default();
    let id = h.first_offer();
    h.connect(id);
    assert!(
        h.input(Input::Connection(ConnectionState::Disconnected))
            .is_empty()
    );
    assert_eq!(h.core.phase(), Phase::Disconnected);
    assert!(h.advance(config.disconnected_grace / 2).is_empty());
    assert!(
        h.input(Input::Connection(ConnectionState::Connected))
            .is_empty()
    );
    assert_eq!(h.core.phase(), Phase::Connected);
    assert!(h.advance(config.disconnected_grace).is_empty());

    // This time it does not recover: a new connection.
    h.input(Input::Connection(ConnectionState::Disconnected));
    let actions = h.advance(config.disconnected_grace);
    assert_eq!(
        actions,
        vec![Action::CreateOffer {
            new_connection: true
        }]
    );
}

#[test]
fn failed_reconnects_at_once_and_unanswered_connects_time_out() {
    let mut h = Harness::new();
    let config = CoreConfig::default();
    let id = h.first_offer();
    h.connect(id);
    let actions = h.input(Input::Connection(ConnectionState::Failed));
    assert_eq!(
        actions,
        vec![Action::CreateOffer {
            new_connection: true
        }]
    );
    let id = h.offer_created();
    h.input(Input::Answer {
        request_id: id,
        sdp: "a".into(),
    });
    h.input(Input::AnswerApplied {
        request_id: id,
        result: Ok(()),
    });
    // Never connects.
    assert!(
        h.advance(config.connect_timeout - Duration::from_millis(1))
            .is_empty()
    );
    assert_eq!(h.core.phase(), Phase::Connecting);
    let actions = h.advance(Duration::from_millis(1));
    // Second failure in a row: after the minimum pause.
    assert!(actions.is_empty());
    assert_eq!(h.core.phase(), Phase::Waiting);
    let actions = h.advance(config.min_backoff);
    assert_eq!(
        actions,
        vec![Action::CreateOffer {
            new_connection: true
        }]
    );
}

#[test]
fn states_of_a_replaced_connection_are_ignored() {
    let mut h = Harness::new();
    let id = h.first_offer();
    // While the offer waits for its answer, the previous peer's states mean nothing.
    for state in [
        ConnectionState::Failed,
        ConnectionState::Closed,
        ConnectionState::Connected,
        ConnectionState::Disconnected,
    ] {
        assert!(h.input(Input::Connection(state)).is_empty());
        assert_eq!(h.core.phase(), Phase::AwaitingAnswer);
    }
    h.connect(id);
}

#[test]
fn coming_back_online_while_an_answer_is_applied_offers_again_after_it() {
    let mut h = Harness::new();
    let id = h.first_offer();
    h.input(Input::Answer {
        request_id: id,
        sdp: "a".into(),
    });
    // The control link dropped and came back while the answer was being applied.
    h.input(Input::Offline);
    assert!(h.input(Input::Online { turn: turn("a") }).is_empty());
    let actions = h.input(Input::AnswerApplied {
        request_id: id,
        result: Ok(()),
    });
    assert_eq!(
        actions,
        vec![Action::CreateOffer {
            new_connection: true
        }]
    );
}

#[test]
fn a_start_failure_is_retried_after_a_pause() {
    let mut h = Harness::new();
    let config = CoreConfig::default();
    h.input(Input::Online { turn: None });
    // First failure: at once.
    assert_eq!(
        h.input(Input::Started(Err("no camera".into()))),
        vec![Action::Start { turn: None }]
    );
    assert!(h.input(Input::Started(Err("no camera".into()))).is_empty());
    assert_eq!(h.core.phase(), Phase::Waiting);
    assert_eq!(
        h.advance(config.min_backoff),
        vec![Action::Start { turn: None }]
    );
    // Offline while waiting: nothing until online again.
    assert!(h.input(Input::Started(Err("no camera".into()))).is_empty());
    h.input(Input::Offline);
    assert!(h.advance(Duration::from_secs(60)).is_empty());
    assert_eq!(
        h.input(Input::Online { turn: None }),
        vec![Action::Start { turn: None }]
    );
}

#[test]
fn an_offer_the_control_link_refuses_is_retried() {
    let mut h = Harness::new();
    let id = h.first_offer();
    let actions = h.input(Input::OfferQueued {
        request_id: id,
        queued: false,
    });
    assert_eq!(
        actions,
        vec![Action::CreateOffer {
            new_connection: true
        }]
    );
    // A refusal of an older offer is not a new failure.
    let failures = h.core.counters().failures;
    let id2 = h.offer_created();
    assert!(
        h.input(Input::OfferQueued {
            request_id: id,
            queued: false
        })
        .is_empty()
    );
    assert_eq!(h.core.counters().failures, failures);
    h.connect(id2);
}

fn arbitrary_input() -> impl Strategy<Value = Input> {
    prop_oneof![
        Just(Input::Online { turn: None }),
        Just(Input::Online { turn: turn("x") }),
        Just(Input::Offline),
        any::<bool>().prop_map(Input::Sending),
        (FIRST_REQUEST_ID..FIRST_REQUEST_ID + 6).prop_map(|request_id| Input::Answer {
            request_id,
            sdp: "a".into()
        }),
        prop_oneof![
            Just(ConnectionState::New),
            Just(ConnectionState::Connecting),
            Just(ConnectionState::Connected),
            Just(ConnectionState::Disconnected),
            Just(ConnectionState::Failed),
            Just(ConnectionState::Closed),
        ]
        .prop_map(Input::Connection),
        any::<bool>().prop_map(|ok| Input::Started(if ok { Ok(()) } else { Err("e".into()) })),
        any::<bool>().prop_map(|ok| Input::OfferCreated(if ok {
            Ok("o".into())
        } else {
            Err("e".into())
        })),
        (FIRST_REQUEST_ID..FIRST_REQUEST_ID + 6, any::<bool>()).prop_map(|(request_id, ok)| {
            Input::AnswerApplied {
                request_id,
                result: if ok { Ok(()) } else { Err("e".into()) },
            }
        }),
    ]
}

proptest! {
    /// Whatever arrives, in any order: no panic, at most one operation outstanding, offers
    /// numbered strictly upwards, and an answer is applied only for the offer awaited.
    #[test]
    fn any_sequence_keeps_the_invariants(
        steps in proptest::collection::vec((arbitrary_input(), 0u64..20_000), 1..120)
    ) {
        let mut core = SessionCore::new(CoreConfig::default());
        let mut now = Instant::now();
        let mut last_request = 0u64;
        for (input, advance_ms) in steps {
            // Results arrive whether or not their operation is in flight; the core must
            // shrug off the ones it did not ask for.
            core.handle(now, input);
            now += Duration::from_millis(advance_ms);
            core.handle_timeout(now);
            let mut operations = 0;
            while let Some(action) = core.poll_action() {
                match action {
                    Action::Start { .. } | Action::CreateOffer { .. } | Action::ApplyAnswer { .. } => {
                        operations += 1;
                    }
                    Action::SendOffer { request_id, .. } => {
                        prop_assert!(request_id > last_request);
                        prop_assert!(request_id >= FIRST_REQUEST_ID);
                        last_request = request_id;
                    }
                    _ => {}
                }
            }
            prop_assert!(operations <= 1);
            prop_assert!(operations == 0 || core.op != Op::None);
        }
    }
}
