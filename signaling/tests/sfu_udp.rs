//! The real driver on a real UDP socket (127.0.0.1, port 0): a kiosk and a clerk (str0m client
//! peers on their own sockets) connect, get paired, and the clerk receives the kiosk's video.
#![allow(clippy::unwrap_used)]

mod sfu_support;

use std::time::{Duration, Instant};

use protocol::media::Slot;
use sfu_support::{Client, assert_contiguous};
use signaling::sfu::{PeerId, Role, SfuDriverConfig, SfuEvent, SfuHandle};
use str0m::Input;
use str0m::net::{Protocol, Receive};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

struct UdpClient {
    c: Client,
    socket: UdpSocket,
}

impl UdpClient {
    async fn new(id: u64, role: Role, sfu: &SfuHandle) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let mut c = Client::new(id, role, addr, Instant::now());
        let (offer, pending) = c.offer();
        let answer = sfu.add_peer(c.id, role, offer).await.unwrap();
        assert!(answer.contains(&format!("{}", sfu.candidate().port())));
        c.accept_answer(pending, &answer);
        let mut me = Self { c, socket };
        me.flush().await;
        me
    }

    async fn flush(&mut self) {
        for d in self.c.drain(Instant::now()) {
            self.socket.send_to(&d.bytes, d.to).await.unwrap();
        }
    }

    /// Handle whatever is due (datagrams, timers) without waiting.
    async fn pump(&mut self, buf: &mut [u8]) {
        while let Ok((n, from)) = self.socket.try_recv_from(buf) {
            let input = Input::Receive(
                Instant::now(),
                Receive {
                    proto: Protocol::Udp,
                    source: from,
                    destination: self.c.addr,
                    contents: buf[..n].try_into().unwrap(),
                },
            );
            self.c.rtc.handle_input(input).unwrap();
            self.flush().await;
        }
        if self.c.next_timeout <= Instant::now() {
            self.c
                .rtc
                .handle_input(Input::Timeout(Instant::now()))
                .unwrap();
            self.flush().await;
        }
    }
}

/// Drive both clients in real time until `done` holds or `limit` passes.
async fn drive(
    clients: &mut [&mut UdpClient],
    limit: Duration,
    mut every_tick: impl FnMut(&mut [&mut UdpClient], Instant),
    done: impl Fn(&[&mut UdpClient]) -> bool,
) -> bool {
    let end = Instant::now() + limit;
    let mut buf = vec![0u8; 2048];
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    while Instant::now() < end {
        tick.tick().await;
        every_tick(clients, Instant::now());
        for c in clients.iter_mut() {
            c.flush().await;
            c.pump(&mut buf).await;
        }
        if done(clients) {
            return true;
        }
    }
    false
}

async fn wait_event(events: &mut mpsc::Receiver<SfuEvent>, want: &SfuEvent) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(e) = events.recv().await {
            if &e == want {
                return;
            }
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kiosk_to_clerk_over_real_udp() {
    let (sfu, mut events) = SfuHandle::bind(SfuDriverConfig::default()).await.unwrap();
    assert_ne!(sfu.local_addr().port(), 0);
    let mut kiosk = UdpClient::new(1, Role::Kiosk, &sfu).await;
    let mut clerk = UdpClient::new(11, Role::Clerk, &sfu).await;

    let up = drive(
        &mut [&mut kiosk, &mut clerk],
        Duration::from_secs(10),
        |_, _| {},
        |cs| cs.iter().all(|c| c.c.connected),
    )
    .await;
    assert!(up, "clients did not connect");
    wait_event(&mut events, &SfuEvent::PeerConnected { peer: PeerId(1) }).await;

    sfu.connect(PeerId(1), PeerId(11), None).await.unwrap();
    let mut next_frame = Instant::now();
    let got_enough = drive(
        &mut [&mut kiosk, &mut clerk],
        Duration::from_secs(10),
        |cs, now| {
            if now >= next_frame {
                cs[0].c.send_vp8_frame(Slot::KioskCamera, 1, now);
                cs[0].c.send_opus_frame(Slot::KioskMicrophone, 1, now);
                next_frame = now + Duration::from_millis(33);
            }
        },
        |cs| cs[1].c.got(Slot::KioskCamera).len() >= 30,
    )
    .await;
    assert!(
        got_enough,
        "clerk received {} video packets",
        clerk.c.got(Slot::KioskCamera).len()
    );
    assert_contiguous(&clerk.c.got(Slot::KioskCamera), "clerk camera over UDP");
    assert!(
        kiosk
            .c
            .keyframe_requests
            .iter()
            .any(|(s, _)| *s == Slot::KioskCamera)
    );

    let stats = sfu.peer_stats(PeerId(11)).await.unwrap().unwrap();
    assert!(stats.connected && stats.rtp_out >= 30 && stats.partner == Some(PeerId(1)));
    let m = sfu.metrics().snapshot();
    assert!(
        m.rtp_forwarded >= 30 && m.datagrams_in > 0 && m.datagrams_out > 0,
        "{m:?}"
    );
    assert_eq!((m.peers, m.peers_connected, m.pairs), (2, 2, 1));

    sfu.disconnect(PeerId(1), PeerId(11)).await.unwrap();
    assert!(sfu.disconnect(PeerId(1), PeerId(11)).await.is_err());
    sfu.remove_peer(PeerId(1)).await.unwrap();
    sfu.remove_peer(PeerId(11)).await.unwrap();
    assert_eq!(sfu.metrics().snapshot().peers, 0);
}
