//! A UDP path the test controls, between media clients and the relay's SFU port: what a NAT
//! or a network between kiosk and relay does, on loopback.
//!
//! The relay advertises another loopback address (`media.advertised_ip`, e.g. 127.0.0.2) as
//! its candidate; [`UdpPath`] listens there on the relay's media port and forwards each
//! client's datagrams from a socket of its own (one per client address, as a NAT mapping
//! would), and the relay's replies back. [`UdpPath::cut`] drops, for good, every datagram of
//! the flows a client address has so far, in both directions — a network change that strands
//! the kiosk's current connection while new flows (a new connection binds new ports) pass.
//!
//! It is also an impairment path (this machine's kernel has no netem): per client IP,
//! [`UdpPath::impair`] sets an [`Impairment`] applied to each direction independently —
//! random loss, one-way delay, jitter, reordering, a bandwidth cap with a drop-tail queue —
//! and [`UdpPath::outage`] drops everything for a while. Random choices come from a seeded
//! generator per flow and direction ([`UdpPath::start_seeded`]), so a profile is the same
//! sequence of coin flips on every run (the timing of real processes still varies). Delayed
//! datagrams wait in a timer heap per flow and direction; the path never sleeps per packet.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// What the path does to one direction of a flow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairment {
    /// Share of datagrams dropped at random, 0–1.
    pub loss: f64,
    /// One-way delay added to every datagram (half the round trip it adds).
    pub delay: Duration,
    /// Each datagram's delay varies uniformly by up to ± this (never below zero); datagrams
    /// closer together than the jitter can overtake each other.
    pub jitter: Duration,
    /// Share of datagrams sent on at once, ahead of those still delayed (netem's reordering).
    pub reorder: f64,
    /// Bandwidth cap in bits per second; datagrams queue behind it.
    pub rate_bps: Option<u64>,
    /// The cap's queue: a datagram that would wait longer than this is dropped (drop-tail).
    pub queue: Duration,
}

impl Default for Impairment {
    fn default() -> Impairment {
        Impairment::NONE
    }
}

impl Impairment {
    /// A clean path.
    pub const NONE: Impairment = Impairment {
        loss: 0.0,
        delay: Duration::ZERO,
        jitter: Duration::ZERO,
        reorder: 0.0,
        rate_bps: None,
        queue: Duration::from_millis(200),
    };

    /// Random `loss` each way and `rtt` round trip (half of it each way).
    pub fn lossy(loss: f64, rtt: Duration) -> Impairment {
        Impairment {
            loss,
            delay: rtt / 2,
            ..Impairment::NONE
        }
    }

    pub fn with_jitter(self, jitter: Duration) -> Impairment {
        Impairment { jitter, ..self }
    }

    pub fn with_cap(self, rate_bps: u64) -> Impairment {
        Impairment {
            rate_bps: Some(rate_bps),
            ..self
        }
    }

    fn is_none(&self) -> bool {
        *self == Impairment::NONE
    }
}

/// Which way a datagram travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client → relay.
    Up,
    /// Relay → client.
    Down,
}

/// What the path did, per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathCounters {
    pub forwarded: u64,
    pub lost: u64,
    pub queue_dropped: u64,
    pub outage_dropped: u64,
}

/// A deterministic generator (SplitMix64): a fixed seed gives the same coin flips.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The decision for one direction of one flow: drop, or when to deliver. Pure: the time is
/// handed in.
#[derive(Debug, Clone)]
pub struct Shaper {
    rng: SplitMix,
    /// When the capped link is free again.
    link_free: Option<Instant>,
}

/// Why a datagram did not get through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    Lost,
    QueueFull,
}

impl Shaper {
    pub fn new(seed: u64) -> Shaper {
        Shaper {
            rng: SplitMix::new(seed),
            link_free: None,
        }
    }

    /// When a datagram of `len` bytes arriving at `now` leaves the path, or why it does not.
    pub fn admit(
        &mut self,
        now: Instant,
        len: usize,
        impairment: &Impairment,
    ) -> Result<Instant, Dropped> {
        if impairment.loss > 0.0 && self.rng.next_f64() < impairment.loss {
            return Err(Dropped::Lost);
        }
        let mut leaves = now;
        if let Some(rate) = impairment.rate_bps.filter(|&r| r > 0) {
            let start = self.link_free.map_or(now, |free| free.max(now));
            if start.duration_since(now) > impairment.queue {
                return Err(Dropped::QueueFull);
            }
            let serialise = Duration::from_secs_f64((len as f64 + 28.0) * 8.0 / rate as f64);
            self.link_free = Some(start + serialise);
            leaves = start + serialise;
        }
        if impairment.reorder > 0.0 && self.rng.next_f64() < impairment.reorder {
            return Ok(leaves);
        }
        let mut delay = impairment.delay.as_secs_f64();
        if !impairment.jitter.is_zero() {
            let j = impairment.jitter.as_secs_f64();
            delay += (self.rng.next_f64() * 2.0 - 1.0) * j;
        }
        Ok(leaves + Duration::from_secs_f64(delay.max(0.0)))
    }
}

#[derive(Default)]
struct Flows {
    /// Client address → the socket its datagrams leave from towards the relay.
    upstream: HashMap<SocketAddr, Arc<UdpSocket>>,
    cut: HashSet<SocketAddr>,
    dropped: u64,
    impairments: HashMap<IpAddr, Impairment>,
    outages: HashMap<IpAddr, Instant>,
    shapers: HashMap<(SocketAddr, Direction), Shaper>,
    counters: HashMap<(IpAddr, Direction), PathCounters>,
    seed: u64,
    flows_made: u64,
}

enum Verdict {
    Drop,
    At(Instant),
}

impl Flows {
    /// Decides one datagram of `client`'s flow travelling `direction`, and counts it.
    fn decide(&mut self, client: SocketAddr, direction: Direction, len: usize) -> Verdict {
        if self.cut.contains(&client) {
            self.dropped += 1;
            return Verdict::Drop;
        }
        let now = Instant::now();
        let ip = client.ip();
        let down = self.outages.get(&ip).is_some_and(|&until| now < until);
        let impairment = self.impairments.get(&ip).copied().unwrap_or_default();
        let seed = self.seed;
        let made = &mut self.flows_made;
        let shaper = self.shapers.entry((client, direction)).or_insert_with(|| {
            *made += 1;
            let dir = match direction {
                Direction::Up => 1,
                Direction::Down => 2,
            };
            Shaper::new(seed ^ (*made << 8) ^ dir)
        });
        let counters = self.counters.entry((ip, direction)).or_default();
        if down {
            counters.outage_dropped += 1;
            return Verdict::Drop;
        }
        if impairment.is_none() {
            counters.forwarded += 1;
            return Verdict::At(now);
        }
        match shaper.admit(now, len, &impairment) {
            Ok(at) => {
                counters.forwarded += 1;
                Verdict::At(at)
            }
            Err(Dropped::Lost) => {
                counters.lost += 1;
                Verdict::Drop
            }
            Err(Dropped::QueueFull) => {
                counters.queue_dropped += 1;
                Verdict::Drop
            }
        }
    }
}

/// See the module docs. Dropping it stops forwarding.
pub struct UdpPath {
    flows: Arc<Mutex<Flows>>,
    task: JoinHandle<()>,
}

impl UdpPath {
    /// Listens on `listen` and forwards to the relay's socket at `relay`.
    pub async fn start(listen: SocketAddr, relay: SocketAddr) -> Result<UdpPath> {
        UdpPath::start_seeded(listen, relay, 1).await
    }

    /// As [`UdpPath::start`], with the seed of the path's random choices.
    pub async fn start_seeded(listen: SocketAddr, relay: SocketAddr, seed: u64) -> Result<UdpPath> {
        let front = Arc::new(
            UdpSocket::bind(listen)
                .await
                .with_context(|| format!("binding the UDP path at {listen}"))?,
        );
        let flows = Arc::new(Mutex::new(Flows {
            seed,
            ..Flows::default()
        }));
        let task = tokio::spawn(forward(front, relay, Arc::clone(&flows)));
        Ok(UdpPath { flows, task })
    }

    fn flows(&self) -> std::sync::MutexGuard<'_, Flows> {
        self.flows.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// From now on, every flow from `ip` (current and new) is impaired so, each direction.
    pub fn impair(&self, ip: IpAddr, impairment: Impairment) {
        self.flows().impairments.insert(ip, impairment);
    }

    /// Drops every datagram of flows from `ip`, both ways, for `duration` from now.
    pub fn outage(&self, ip: IpAddr, duration: Duration) {
        self.flows().outages.insert(ip, Instant::now() + duration);
    }

    /// What the path did to the flows from `ip` so far, per direction.
    pub fn counters(&self, ip: IpAddr, direction: Direction) -> PathCounters {
        self.flows()
            .counters
            .get(&(ip, direction))
            .copied()
            .unwrap_or_default()
    }

    /// Strands every flow seen so far from `ip`: their datagrams are dropped both ways from
    /// now on. Returns how many flows were cut.
    pub fn cut(&self, ip: IpAddr) -> usize {
        let mut flows = self.flows();
        let from_ip: Vec<SocketAddr> = flows
            .upstream
            .keys()
            .filter(|a| a.ip() == ip)
            .copied()
            .collect();
        flows.cut.extend(from_ip.iter().copied());
        from_ip.len()
    }

    /// Client addresses from `ip` seen so far (cut or not).
    pub fn flows_from(&self, ip: IpAddr) -> Vec<SocketAddr> {
        self.flows()
            .upstream
            .keys()
            .filter(|a| a.ip() == ip)
            .copied()
            .collect()
    }

    /// Datagrams dropped on cut flows.
    pub fn dropped(&self) -> u64 {
        self.flows().dropped
    }
}

impl Drop for UdpPath {
    fn drop(&mut self) {
        // The forwarding task owns the per-client tasks (a `JoinSet`): they end with it.
        self.task.abort();
    }
}

/// Where a delay line sends: the flow's upstream socket, or the front socket to the client.
enum Out {
    Connected(Arc<UdpSocket>),
    To(Arc<UdpSocket>, SocketAddr),
}

impl Out {
    async fn send(&self, bytes: &[u8]) {
        let _ = match self {
            Out::Connected(socket) => socket.send(bytes).await,
            Out::To(socket, to) => socket.send_to(bytes, *to).await,
        };
    }
}

/// Datagrams of one flow and direction, each sent at its time (ties in arrival order).
async fn delay_line(out: Out, mut rx: mpsc::UnboundedReceiver<(Instant, Vec<u8>)>) {
    let mut heap: BinaryHeap<Reverse<(Instant, u64, Vec<u8>)>> = BinaryHeap::new();
    let mut order = 0u64;
    loop {
        let next = heap.peek().map(|Reverse((at, _, _))| *at);
        tokio::select! {
            received = rx.recv() => {
                let Some((at, bytes)) = received else { return };
                if at <= Instant::now() && heap.is_empty() {
                    out.send(&bytes).await;
                } else {
                    order += 1;
                    heap.push(Reverse((at, order, bytes)));
                }
            }
            () = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                let now = Instant::now();
                while heap.peek().is_some_and(|Reverse((at, _, _))| *at <= now) {
                    if let Some(Reverse((_, _, bytes))) = heap.pop() {
                        out.send(&bytes).await;
                    }
                }
            }
        }
    }
}

type LineSender = mpsc::UnboundedSender<(Instant, Vec<u8>)>;

async fn forward(front: Arc<UdpSocket>, relay: SocketAddr, flows: Arc<Mutex<Flows>>) {
    let mut buf = vec![0u8; 65_536];
    let mut tasks = JoinSet::new();
    let mut lines: HashMap<SocketAddr, LineSender> = HashMap::new();
    loop {
        let Ok((n, client)) = front.recv_from(&mut buf).await else {
            continue;
        };
        let (verdict, known) = {
            let mut f = flows.lock().unwrap_or_else(PoisonError::into_inner);
            let verdict = f.decide(client, Direction::Up, n);
            (verdict, f.upstream.contains_key(&client))
        };
        if !known {
            let Ok(socket) = UdpSocket::bind(SocketAddr::new(relay.ip(), 0)).await else {
                continue;
            };
            if socket.connect(relay).await.is_err() {
                continue;
            }
            let socket = Arc::new(socket);
            flows
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .upstream
                .insert(client, Arc::clone(&socket));
            let (up_tx, up_rx) = mpsc::unbounded_channel();
            tasks.spawn(delay_line(Out::Connected(Arc::clone(&socket)), up_rx));
            lines.insert(client, up_tx);
            let (down_tx, down_rx) = mpsc::unbounded_channel();
            tasks.spawn(delay_line(Out::To(Arc::clone(&front), client), down_rx));
            tasks.spawn(backward(socket, client, Arc::clone(&flows), down_tx));
        }
        if let (Verdict::At(at), Some(line)) = (verdict, lines.get(&client)) {
            let _ = line.send((at, buf[..n].to_vec()));
        }
    }
}

/// The relay's datagrams to one client, through the flow's downward delay line.
async fn backward(
    upstream: Arc<UdpSocket>,
    client: SocketAddr,
    flows: Arc<Mutex<Flows>>,
    line: LineSender,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok(n) = upstream.recv(&mut buf).await else {
            continue;
        };
        let verdict =
            flows
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .decide(client, Direction::Down, n);
        if let Verdict::At(at) = verdict
            && line.send((at, buf[..n].to_vec())).is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(shaper: &mut Shaper, at: Instant, n: usize, imp: &Impairment) -> usize {
        (0..n)
            .filter(|_| shaper.admit(at, 1_000, imp).is_ok())
            .count()
    }

    #[tokio::test]
    async fn loss_drops_about_the_share_asked_and_is_repeatable() {
        let now = Instant::now();
        let imp = Impairment::lossy(0.05, Duration::ZERO);
        let a = admitted(&mut Shaper::new(7), now, 10_000, &imp);
        let b = admitted(&mut Shaper::new(7), now, 10_000, &imp);
        assert_eq!(a, b, "the same seed gives the same drops");
        assert!((9_400..=9_600).contains(&a), "{a} of 10 000 passed");
    }

    #[tokio::test]
    async fn delay_and_jitter_stay_within_their_bounds() {
        let now = Instant::now();
        let imp = Impairment::lossy(0.0, Duration::from_millis(100))
            .with_jitter(Duration::from_millis(30));
        let mut shaper = Shaper::new(3);
        for _ in 0..1_000 {
            let at = shaper.admit(now, 1_000, &imp).expect("no loss");
            let delay = at - now;
            assert!(delay >= Duration::from_millis(20) && delay <= Duration::from_millis(80));
        }
    }

    #[tokio::test]
    async fn a_cap_queues_then_drops_at_the_tail() {
        let now = Instant::now();
        // 1 Mbit/s: a 1 000-byte datagram (plus headers) takes 8.2 ms; the queue holds 200 ms.
        let imp = Impairment::NONE.with_cap(1_000_000);
        let mut shaper = Shaper::new(1);
        let mut last = now;
        let mut dropped = 0;
        for _ in 0..100 {
            match shaper.admit(now, 1_000, &imp) {
                Ok(at) => {
                    assert!(at >= last);
                    last = at;
                }
                Err(Dropped::QueueFull) => dropped += 1,
                Err(Dropped::Lost) => panic!("no random loss configured"),
            }
        }
        assert!(dropped > 70 && dropped < 80, "{dropped} dropped");
        assert!(last - now <= Duration::from_millis(210));
    }

    #[tokio::test]
    async fn reordering_sends_some_datagrams_at_once() {
        let now = Instant::now();
        let imp = Impairment {
            reorder: 0.25,
            ..Impairment::lossy(0.0, Duration::from_millis(50))
        };
        let mut shaper = Shaper::new(9);
        let early = (0..1_000)
            .filter(|_| shaper.admit(now, 100, &imp).expect("no loss") == now)
            .count();
        assert!((200..=300).contains(&early), "{early} of 1 000 early");
    }

    #[tokio::test]
    async fn the_path_forwards_and_an_outage_drops_everything() -> Result<()> {
        let relay = UdpSocket::bind("127.0.0.1:0").await?;
        let relay_addr = relay.local_addr()?;
        let listen = UdpSocket::bind("127.0.0.1:0").await?.local_addr()?;
        let path = UdpPath::start_seeded(listen, relay_addr, 5).await?;
        let client = UdpSocket::bind("127.0.0.1:0").await?;
        let ip = client.local_addr()?.ip();
        path.impair(ip, Impairment::lossy(0.0, Duration::from_millis(100)));
        client.send_to(b"one", listen).await?;
        let mut buf = [0u8; 16];
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), relay.recv_from(&mut buf))
            .await
            .context("the datagram never arrived")??;
        assert_eq!(&buf[..n], b"one");
        path.outage(ip, Duration::from_secs(60));
        client.send_to(b"two", listen).await?;
        assert!(
            tokio::time::timeout(Duration::from_millis(300), relay.recv_from(&mut buf))
                .await
                .is_err(),
            "a datagram got through an outage"
        );
        assert_eq!(path.counters(ip, Direction::Up).outage_dropped, 1);
        assert_eq!(path.counters(ip, Direction::Up).forwarded, 1);
        Ok(())
    }
}
