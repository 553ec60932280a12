//! Keyframe requests after a pairing, in virtual time: one request in flight per source
//! stream whoever asks, repeated until a keyframe arrives, and nothing more once one did.
#![allow(clippy::unwrap_used)]

mod sfu_support;

use std::time::{Duration, Instant};

use protocol::media::Slot;
use sfu_support::Net;
use signaling::sfu::{PeerId, Role};
use str0m::media::KeyframeRequestKind;

const K1: u64 = 1;
const C1: u64 = 11;

/// A kiosk and a clerk, connected, both sending for a while (so the relay has their receive
/// streams), not yet paired.
fn ready_pair() -> Net {
    let mut net = Net::new();
    net.add_client(K1, Role::Kiosk);
    net.add_client(C1, Role::Clerk);
    net.connect_all();
    net.media_for(&[K1, C1], Duration::from_millis(500));
    net
}

fn request_times(net: &mut Net, id: u64, slot: Slot, since: Instant) -> Vec<Instant> {
    net.client(id)
        .keyframe_request_times
        .iter()
        .filter(|(s, t)| *s == slot && *t >= since)
        .map(|(_, t)| *t)
        .collect()
}

/// Frames of the kiosk's first keyframe that reached the clerk's camera track after `since`.
fn first_keyframe_at(net: &mut Net, since: Instant) -> Option<Instant> {
    net.client(C1)
        .got(Slot::KioskCamera)
        .into_iter()
        .find(|g| g.at >= since && g.payload[0] & 0x10 != 0 && g.payload[4] & 1 == 0)
        .map(|g| g.at)
}

#[test]
fn an_unanswered_keyframe_request_is_repeated_until_a_keyframe_arrives() {
    let mut net = ready_pair();
    // The kiosk's camera ignores the first two requests (a sender's own keyframe throttle).
    let k = net.idx(K1);
    net.clients[k].swallow_keyframe_requests[Slot::KioskCamera.index()] = 2;
    let joined = net.now;
    net.sfu
        .connect(PeerId(K1), PeerId(C1), false, joined)
        .unwrap();
    net.flush_sfu();
    net.media_for(&[K1, C1], Duration::from_secs(3));

    let asks = request_times(&mut net, K1, Slot::KioskCamera, joined);
    assert_eq!(asks.len(), 3, "requests at {asks:?}");
    // Latency is 10 ms each way, so the repeat interval is its 200 ms floor; requests leave
    // on the relay's timer, not on a frame.
    for pair in asks.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(200) && gap < Duration::from_millis(250),
            "repeat after {gap:?}"
        );
    }
    let key = first_keyframe_at(&mut net, joined).expect("the clerk got a keyframe");
    assert!(
        key > asks[2] && key - asks[2] < Duration::from_millis(100),
        "keyframe {:?} after the third request",
        key - asks[2]
    );
    let m = net.metrics.snapshot();
    assert_eq!(m.keyframe_retries, 2, "{m:?}");
    // The clerk's camera and the document camera answered at once: asked once each.
    assert_eq!(
        request_times(&mut net, C1, Slot::ClerkCamera, joined).len(),
        1
    );
    assert_eq!(
        request_times(&mut net, K1, Slot::KioskDocument, joined).len(),
        1
    );
}

#[test]
fn viewer_requests_join_the_request_in_flight() {
    let mut net = ready_pair();
    let k = net.idx(K1);
    // The kiosk ignores the pairing's request, so it stays in flight for 200 ms.
    net.clients[k].swallow_keyframe_requests[Slot::KioskCamera.index()] = 1;
    let joined = net.now;
    net.sfu
        .connect(PeerId(K1), PeerId(C1), false, joined)
        .unwrap();
    net.flush_sfu();
    // The clerk asks three times within those 200 ms (as a browser does while it waits).
    let mid = net.client(C1).mids[Slot::KioskCamera.index()];
    for _ in 0..3 {
        net.media_for(&[K1], Duration::from_millis(50));
        {
            let c = net.client(C1);
            let mut api = c.rtc.direct_api();
            api.stream_rx_by_mid(mid, None)
                .unwrap()
                .request_keyframe(KeyframeRequestKind::Pli);
        }
        let c = net.idx(C1);
        net.drain_client(c);
    }
    net.media_for(&[K1], Duration::from_millis(30));
    let before_repeat = net.now;
    assert!(before_repeat < joined + Duration::from_millis(200));
    let asks = request_times(&mut net, K1, Slot::KioskCamera, joined);
    assert_eq!(asks.len(), 1, "the viewer's PLIs were passed on: {asks:?}");
    let m = net.metrics.snapshot();
    assert!(
        m.keyframe_requests_coalesced >= 1,
        "no PLI reached the relay: {m:?}"
    );

    // The repeat gets the keyframe; afterwards, with the clerk decoding, nothing more is asked.
    net.media_for(&[K1], Duration::from_secs(2));
    let asks = request_times(&mut net, K1, Slot::KioskCamera, joined);
    assert_eq!(asks.len(), 2, "requests at {asks:?}");
    assert!(first_keyframe_at(&mut net, joined).is_some_and(|t| t > asks[1]));
}

#[test]
fn a_repeat_waits_twice_the_round_trip_on_a_slow_line() {
    let mut net = ready_pair();
    // 150 ms each way. The relay learns a peer's RTT from the receiver reports about what it
    // sends that peer, so only once the pair forwards: pair first, then ask again.
    net.latency = Duration::from_millis(150);
    net.sfu
        .connect(PeerId(K1), PeerId(C1), false, net.now)
        .unwrap();
    net.flush_sfu();
    net.media_for(&[K1, C1], Duration::from_secs(4));
    let rtt = net.sfu.peer_stats(PeerId(K1)).unwrap().rtt;
    assert!(
        rtt.is_some_and(|r| r >= Duration::from_millis(250)),
        "rtt {rtt:?}"
    );
    let k = net.idx(K1);
    net.clients[k].swallow_keyframe_requests[Slot::KioskCamera.index()] = 1;
    let asked = net.now;
    let mid = net.client(C1).mids[Slot::KioskCamera.index()];
    {
        let c = net.client(C1);
        let mut api = c.rtc.direct_api();
        api.stream_rx_by_mid(mid, None)
            .unwrap()
            .request_keyframe(KeyframeRequestKind::Pli);
    }
    let c = net.idx(C1);
    net.drain_client(c);
    net.media_for(&[K1, C1], Duration::from_secs(3));
    let asks = request_times(&mut net, K1, Slot::KioskCamera, asked);
    assert_eq!(asks.len(), 2, "requests at {asks:?}");
    let gap = asks[1] - asks[0];
    assert!(
        gap >= 2 * rtt.unwrap() && gap <= Duration::from_millis(1000),
        "repeat after {gap:?} with rtt {rtt:?}"
    );
}

#[test]
fn a_source_that_stops_sending_is_not_asked_again() {
    let mut net = ready_pair();
    let k = net.idx(K1);
    net.clients[k].swallow_keyframe_requests[Slot::KioskCamera.index()] = u32::MAX;
    let joined = net.now;
    net.sfu
        .connect(PeerId(K1), PeerId(C1), false, joined)
        .unwrap();
    net.flush_sfu();
    // The kiosk's camera ignores every request for 1 s, then goes quiet for 5 s.
    net.media_for(&[K1, C1], Duration::from_secs(1));
    let while_sending = request_times(&mut net, K1, Slot::KioskCamera, joined).len();
    assert!(while_sending >= 4, "{while_sending} requests in 1 s");
    net.media_for(&[C1], Duration::from_secs(5));
    let all = request_times(&mut net, K1, Slot::KioskCamera, joined).len();
    // Repeats stop within the idle limit (2 s after the last packet: at most 11 more at the
    // 200 ms floor).
    assert!(all - while_sending <= 11, "{} more", all - while_sending);
    let late = request_times(
        &mut net,
        K1,
        Slot::KioskCamera,
        joined + Duration::from_secs(4),
    );
    assert!(late.is_empty(), "still asking an idle camera: {late:?}");
}
