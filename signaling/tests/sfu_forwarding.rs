//! SFU scenarios in virtual time: str0m client peers (kiosk, clerk) connect to the relay core
//! over an in-memory network.
#![allow(clippy::unwrap_used)]

mod sfu_support;

use std::time::Duration;

use protocol::media::Slot;
use sfu_support::{Net, assert_contiguous, lossy, tag_of};
use signaling::sfu::{PeerId, Role, SfuError, SfuEvent};

const K1: u64 = 1;
const K2: u64 = 2;
const C1: u64 = 11;
const C2: u64 = 12;

#[test]
fn nothing_is_forwarded_before_connect_then_media_flows_on_the_right_mids() {
    let mut net = Net::new();
    net.add_client(K1, Role::Kiosk);
    net.add_client(C1, Role::Clerk);
    net.connect_all();
    assert!(
        net.events
            .contains(&SfuEvent::PeerConnected { peer: PeerId(K1) })
    );
    assert!(
        net.events
            .contains(&SfuEvent::PeerConnected { peer: PeerId(C1) })
    );

    // Ready on call: both send, nobody receives.
    net.media_for(&[K1, C1], Duration::from_secs(1));
    assert!(
        net.client(C1).received.is_empty(),
        "clerk got media before connect"
    );
    assert!(
        net.client(K1).received.is_empty(),
        "kiosk got media before connect"
    );
    let m = net.metrics.snapshot();
    assert!(m.rtp_in > 50 && m.rtp_dropped_unconnected == m.rtp_in && m.rtp_forwarded == 0);

    net.sfu
        .connect(PeerId(K1), PeerId(C1), false, net.now)
        .unwrap();
    net.flush_sfu();
    net.run_for(Duration::from_millis(50));
    // Keyframe requests reached both video sources.
    let k_req: Vec<Slot> = net
        .client(K1)
        .keyframe_requests
        .iter()
        .map(|r| r.0)
        .collect();
    assert!(k_req.contains(&Slot::KioskCamera) && k_req.contains(&Slot::KioskDocument));
    assert!(
        net.client(C1)
            .keyframe_requests
            .iter()
            .any(|r| r.0 == Slot::ClerkCamera)
    );

    net.media_for(&[K1, C1], Duration::from_secs(2));
    let clerk = net.client(C1);
    for slot in [
        Slot::KioskCamera,
        Slot::KioskDocument,
        Slot::KioskMicrophone,
    ] {
        let got = clerk.got(slot);
        assert!(got.len() > 40, "{slot:?}: only {} packets", got.len());
        assert_contiguous(&got, &format!("clerk {slot:?}"));
        assert!(got.iter().all(|g| tag_of(g) == K1 as u8));
    }
    // The first forwarded video packet starts a keyframe.
    let first = clerk.got(Slot::KioskCamera)[0].payload.clone();
    assert!(
        first[0] & 0x10 != 0 && first[4] & 1 == 0,
        "first frame is not a keyframe"
    );
    assert!(clerk.got(Slot::ClerkCamera).is_empty());
    let kiosk = net.client(K1);
    for slot in [Slot::ClerkCamera, Slot::ClerkMicrophone] {
        let got = kiosk.got(slot);
        assert!(got.len() > 40, "{slot:?}: only {} packets", got.len());
        assert_contiguous(&got, &format!("kiosk {slot:?}"));
        assert!(got.iter().all(|g| tag_of(g) == C1 as u8));
    }
    let m = net.metrics.snapshot();
    assert!(m.rtp_forwarded > 200, "{m:?}");
    assert!(m.keyframe_requests >= 3, "{m:?}");
}

#[test]
fn a_viewer_keyframe_request_reaches_the_source() {
    let mut net = Net::new();
    net.add_client(K1, Role::Kiosk);
    net.add_client(C1, Role::Clerk);
    net.connect_all();
    net.sfu
        .connect(PeerId(K1), PeerId(C1), false, net.now)
        .unwrap();
    net.flush_sfu();
    net.media_for(&[K1], Duration::from_millis(500));
    let before = net.client(K1).keyframe_requests.len();
    // The clerk asks for a keyframe on its kiosk-camera receive stream.
    let mid = net.client(C1).mids[Slot::KioskCamera.index()];
    {
        let c = net.client(C1);
        let mut api = c.rtc.direct_api();
        api.stream_rx_by_mid(mid, None)
            .unwrap()
            .request_keyframe(str0m::media::KeyframeRequestKind::Pli);
    }
    let i = net.idx(C1);
    net.drain_client(i);
    net.run_for(Duration::from_millis(300));
    let reqs = &net.client(K1).keyframe_requests[before..];
    assert!(
        reqs.iter().any(|r| r.0 == Slot::KioskCamera),
        "kiosk saw {reqs:?}"
    );
    assert!(net.events.contains(&SfuEvent::KeyframeRequested {
        source: PeerId(K1),
        slot: Slot::KioskCamera
    }));
}

#[test]
fn the_clerk_stream_stays_continuous_across_kiosks() {
    let mut net = Net::new();
    net.add_client(K1, Role::Kiosk);
    net.add_client(K2, Role::Kiosk);
    net.add_client(C1, Role::Clerk);
    net.connect_all();

    net.sfu
        .connect(PeerId(K1), PeerId(C1), false, net.now)
        .unwrap();
    net.flush_sfu();
    net.media_for(&[K1, K2, C1], Duration::from_secs(2));
    let first_session = net.client(C1).got(Slot::KioskCamera).len();
    net.sfu.disconnect(PeerId(K1), PeerId(C1)).unwrap();
    net.media_for(&[K1, K2, C1], Duration::from_millis(700));
    assert_eq!(
        net.client(C1).got(Slot::KioskCamera).len(),
        first_session,
        "media arrived while disconnected"
    );
    net.sfu
        .connect(PeerId(K2), PeerId(C1), false, net.now)
        .unwrap();
    net.flush_sfu();
    net.media_for(&[K1, K2, C1], Duration::from_secs(2));

    let clerk = net.client(C1);
    for slot in [
        Slot::KioskCamera,
        Slot::KioskDocument,
        Slot::KioskMicrophone,
    ] {
        let got = clerk.got(slot);
        assert_contiguous(&got, &format!("{slot:?} across two kiosks"));
        let ssrcs: std::collections::HashSet<u32> = got.iter().map(|g| g.ssrc).collect();
        assert_eq!(ssrcs.len(), 1, "{slot:?}: the clerk's track changed SSRC");
        let tags: Vec<u8> = got.iter().map(|g| tag_of(g)).collect();
        let switch = tags.iter().position(|t| *t == K2 as u8).unwrap();
        assert!(tags[..switch].iter().all(|t| *t == K1 as u8));
        assert!(tags[switch..].iter().all(|t| *t == K2 as u8));
        // Timestamps advance across the switch roughly by the wall time that passed.
        let (a, b) = (got[switch - 1], got[switch]);
        let clock = if slot == Slot::KioskMicrophone {
            48_000.0
        } else {
            90_000.0
        };
        let dt = b.ts.wrapping_sub(a.ts) as f64 / clock;
        let wall = (b.at - a.at).as_secs_f64();
        assert!(
            (dt - wall).abs() < 0.2,
            "{slot:?}: timestamp step {dt:.3}s over {wall:.3}s of wall time"
        );
        // The second kiosk's first video packet is a keyframe.
        if slot != Slot::KioskMicrophone {
            assert!(b.payload[0] & 0x10 != 0 && b.payload[4] & 1 == 0);
        }
    }
    // K1 (now unpaired) still sends; its packets are dropped, not forwarded.
    assert!(net.metrics.snapshot().rtp_dropped_unconnected > 0);
}

#[test]
fn nack_recovers_loss_on_both_legs() {
    let mut net = Net::new();
    net.add_client(K1, Role::Kiosk);
    net.add_client(C1, Role::Clerk);
    net.connect_all();
    net.sfu
        .connect(PeerId(K1), PeerId(C1), false, net.now)
        .unwrap();
    net.flush_sfu();
    net.media_for(&[K1], Duration::from_millis(300));

    let kiosk = net.client(K1).addr;
    let clerk = net.client(C1).addr;
    let relay = net.relay;
    net.loss = Some(lossy(7, 5, vec![(kiosk, relay), (relay, clerk)]));
    net.media_for(&[K1], Duration::from_secs(4));
    net.loss = None;
    net.media_for(&[K1], Duration::from_millis(500));
    net.run_for(Duration::from_millis(500));
    assert!(net.lost > 20, "loss injection did not bite: {}", net.lost);

    let got = net.client(C1).got(Slot::KioskCamera);
    let mut seqs: Vec<u64> = got.iter().map(|g| g.seq).collect();
    seqs.sort_unstable();
    seqs.dedup();
    let span = seqs[seqs.len() - 1] - seqs[0] + 1;
    assert_eq!(
        span,
        seqs.len() as u64,
        "clerk is missing {} of {span} video packets after NACK",
        span - seqs.len() as u64
    );
    let m = net.metrics.snapshot();
    let clerk_stats = net.sfu.peer_stats(PeerId(C1)).unwrap();
    let kiosk_stats = net.sfu.peer_stats(PeerId(K1)).unwrap();
    assert!(
        clerk_stats.nacks_from_peer > 0,
        "viewer leg: {clerk_stats:?}"
    );
    assert!(kiosk_stats.nacks_to_peer > 0, "source leg: {kiosk_stats:?}");
    assert!(m.nacks_from_viewers > 0 && m.nacks_to_sources > 0, "{m:?}");
}

#[test]
fn a_clerk_never_receives_another_kiosks_media() {
    let mut net = Net::new();
    for (id, role) in [
        (K1, Role::Kiosk),
        (K2, Role::Kiosk),
        (C1, Role::Clerk),
        (C2, Role::Clerk),
    ] {
        net.add_client(id, role);
    }
    net.connect_all();
    net.sfu
        .connect(PeerId(K1), PeerId(C1), false, net.now)
        .unwrap();
    net.flush_sfu();
    net.media_for(&[K1, K2, C1, C2], Duration::from_secs(1));
    assert!(net.client(C2).received.is_empty());
    assert!(net.client(K2).received.is_empty());
    net.sfu
        .connect(PeerId(K2), PeerId(C2), false, net.now)
        .unwrap();
    net.flush_sfu();
    // A kiosk or clerk already in a pair cannot be taken by another.
    assert!(matches!(
        net.sfu.connect(PeerId(K1), PeerId(C2), false, net.now),
        Err(SfuError::AlreadyConnected(_, _))
    ));
    assert!(matches!(
        net.sfu.connect(PeerId(C1), PeerId(K1), false, net.now),
        Err(SfuError::WrongRole { .. })
    ));
    net.media_for(&[K1, K2, C1, C2], Duration::from_secs(2));
    for (clerk, kiosk) in [(C1, K1), (C2, K2)] {
        let c = net.client(clerk);
        assert!(c.received.len() > 100);
        assert!(
            c.received.iter().all(|g| tag_of(g) == kiosk as u8),
            "clerk {clerk} received media that is not from kiosk {kiosk}"
        );
        let k = net.client(kiosk);
        assert!(k.received.iter().all(|g| tag_of(g) == clerk as u8));
    }
}

#[test]
fn removing_a_peer_ends_its_pair() {
    let mut net = Net::new();
    net.add_client(K1, Role::Kiosk);
    net.add_client(C1, Role::Clerk);
    net.connect_all();
    net.sfu
        .connect(PeerId(K1), PeerId(C1), false, net.now)
        .unwrap();
    net.sfu.remove_peer(PeerId(K1), net.now).unwrap();
    net.flush_sfu();
    assert_eq!(net.sfu.partner(PeerId(C1)), None);
    assert!(net.sfu.peer_stats(PeerId(K1)).is_none());
    assert!(matches!(
        net.sfu.remove_peer(PeerId(K1), net.now),
        Err(SfuError::UnknownPeer(_))
    ));
    assert_eq!(net.metrics.snapshot().peers, 1);
}

#[test]
fn bad_input_is_an_error_and_counted_never_a_panic() {
    let mut net = Net::new();
    let now = net.now;
    let src = "10.9.9.9:9".parse().unwrap();
    let relay = net.relay;
    for junk in [
        &[][..],
        &[0u8; 3][..],
        &[0xff; 100][..],
        &[0x80, 0x60, 0, 1][..],
    ] {
        assert!(net.sfu.handle_datagram(now, src, relay, junk).is_err());
    }
    let offer_errors = [
        "",
        "not sdp at all",
        "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n",
    ];
    for (i, sdp) in offer_errors.iter().enumerate() {
        let e = net
            .sfu
            .add_peer(PeerId(100 + i as u64), Role::Kiosk, sdp, now)
            .unwrap_err();
        assert!(
            matches!(e, SfuError::BadSdp(_) | SfuError::LayoutMismatch(_)),
            "{e:?}"
        );
    }
    // A well-formed offer with the clerk's directions, presented as a kiosk.
    let mut c = sfu_support::Client::new(50, Role::Clerk, "10.1.0.50:1".parse().unwrap(), now);
    let (offer, _) = c.offer();
    assert!(matches!(
        net.sfu.add_peer(PeerId(50), Role::Kiosk, &offer, now),
        Err(SfuError::LayoutMismatch(_))
    ));
    let m = net.metrics.snapshot();
    assert_eq!(m.datagrams_rejected, 4);
    assert_eq!(m.offers_refused, 4);
    assert_eq!(net.sfu.peer_count(), 0);
}

#[test]
fn a_peer_that_never_connects_times_out() {
    let mut net = Net::new();
    let mut c = sfu_support::Client::new(9, Role::Kiosk, "10.1.0.9:9".parse().unwrap(), net.now);
    let (offer, _) = c.offer();
    net.sfu
        .add_peer(PeerId(9), Role::Kiosk, &offer, net.now)
        .unwrap();
    net.run_for(Duration::from_secs(31));
    assert!(net.events.contains(&SfuEvent::PeerDisconnected {
        peer: PeerId(9),
        reason: signaling::sfu::DisconnectReason::ConnectTimeout
    }));
    assert_eq!(net.sfu.peer_count(), 0);
}

#[test]
fn an_h264_kiosk_reaches_a_vp8_first_clerk_with_the_clerks_payload_type() {
    let mut net = Net::new();
    let addr = "10.1.0.1:40001".parse().unwrap();
    net.add(sfu_support::Client::new_h264_only(
        K1,
        Role::Kiosk,
        addr,
        net.now,
    ));
    net.add_client(C1, Role::Clerk);
    net.connect_all();
    net.sfu
        .connect(PeerId(K1), PeerId(C1), false, net.now)
        .unwrap();
    net.flush_sfu();
    net.run_for(Duration::from_millis(50));
    // Two delta frames first: held back until the IDR the relay asked for.
    let k = net.idx(K1);
    let now = net.now;
    net.clients[k].want_keyframe[0] = false;
    net.clients[k].send_h264_frame(Slot::KioskCamera, K1 as u8, now);
    net.clients[k].send_h264_frame(Slot::KioskCamera, K1 as u8, now);
    net.clients[k].want_keyframe[0] = true;
    for _ in 0..30 {
        let now = net.now;
        net.clients[k].send_h264_frame(Slot::KioskCamera, K1 as u8, now);
        net.drain_client(k);
        net.run_for(Duration::from_millis(33));
    }
    let clerk_h264 = net.client(C1).pt_of(str0m::format::Codec::H264);
    let got = net.client(C1).got(Slot::KioskCamera);
    assert_eq!(
        got.len(),
        30,
        "the two leading delta frames must not be forwarded"
    );
    assert_eq!(
        got[0].payload[0] & 0x1f,
        5,
        "first forwarded NAL is an IDR slice"
    );
    assert!(
        got.iter()
            .all(|g| g.pt == clerk_h264 && g.payload[1] == K1 as u8)
    );
    assert_contiguous(&got, "H.264 camera");
    assert_eq!(net.metrics.snapshot().rtp_dropped_waiting_keyframe, 2);
}

#[test]
fn an_idle_document_camera_is_not_asked_for_keyframes_over_and_over() {
    let mut net = Net::new();
    net.add_client(K1, Role::Kiosk);
    net.add_client(C1, Role::Clerk);
    net.connect_all();
    net.sfu
        .connect(PeerId(K1), PeerId(C1), false, net.now)
        .unwrap();
    net.flush_sfu();
    // Only the kiosk camera sends; the document camera stays idle for 5 s.
    let k = net.idx(K1);
    for _ in 0..150 {
        let now = net.now;
        net.clients[k].send_vp8_frame(Slot::KioskCamera, K1 as u8, now);
        net.drain_client(k);
        net.run_for(Duration::from_millis(33));
    }
    let doc_requests = net
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                SfuEvent::KeyframeRequested {
                    slot: Slot::KioskDocument,
                    ..
                }
            )
        })
        .count();
    assert!(
        doc_requests <= 1,
        "{doc_requests} keyframe requests to an idle slot"
    );
    assert!(net.client(C1).got(Slot::KioskCamera).len() >= 140);
}

#[test]
fn a_source_without_rtx_is_still_nacked() {
    let mut net = Net::new();
    let addr = "10.1.0.1:40001".parse().unwrap();
    net.add(sfu_support::Client::new_vp8_without_rtx(
        K1,
        Role::Kiosk,
        addr,
        net.now,
    ));
    net.add_client(C1, Role::Clerk);
    net.connect_all();
    net.sfu
        .connect(PeerId(K1), PeerId(C1), false, net.now)
        .unwrap();
    net.flush_sfu();
    net.media_for(&[K1], Duration::from_millis(300));
    let (kiosk, relay) = (net.client(K1).addr, net.relay);
    net.loss = Some(lossy(3, 5, vec![(kiosk, relay)]));
    net.media_for(&[K1], Duration::from_secs(3));
    net.loss = None;
    net.run_for(Duration::from_millis(500));
    assert!(net.lost > 5);
    let stats = net.sfu.peer_stats(PeerId(K1)).unwrap();
    assert!(stats.nacks_to_peer > 0, "{stats:?}");
}

#[test]
fn garbage_from_a_connected_peer_address_does_not_break_its_connection() {
    let mut net = Net::new();
    net.add_client(K1, Role::Kiosk);
    net.add_client(C1, Role::Clerk);
    net.connect_all();
    net.sfu
        .connect(PeerId(K1), PeerId(C1), false, net.now)
        .unwrap();
    net.flush_sfu();
    let (kiosk, relay) = (net.client(K1).addr, net.relay);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..3000 {
        let len = (next() % 300) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Steer the first byte into each demux class: STUN, DTLS, RTP/RTCP.
        if let Some(b) = bytes.first_mut() {
            *b = [0x00, 0x01, 0x16, 0x17, 0x80, 0x90][i % 6];
        }
        let _ = net.sfu.handle_datagram(net.now, kiosk, relay, &bytes);
    }
    net.flush_sfu();
    net.media_for(&[K1], Duration::from_secs(1));
    assert!(net.client(C1).got(Slot::KioskCamera).len() > 20);
    assert!(net.sfu.peer_stats(PeerId(K1)).unwrap().connected);
}
