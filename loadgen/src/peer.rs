//! One synthetic WebRTC peer: a str0m instance in RTP mode on its own loopback UDP socket,
//! driven by its own tokio task. It sends its tracks on schedule (looping a pre-encoded clip,
//! a keyframe whenever one is requested), and records what it receives: per-stream counts,
//! delay from each packet's stamp, and the first keyframe after its session's join.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::media::{Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;

use crate::media::{Clip, FLAG_KEY_START, STAMP_LEN, Stamp, vp8_payloads};

/// Shared by every peer of one run: the epoch of every stamp, the measurement window, joins.
pub struct Ctl {
    pub epoch: Instant,
    /// The address every peer binds (and the servers listen on).
    pub ip: IpAddr,
    window_start: AtomicU64,
    window_end: AtomicU64,
    pub stop: AtomicBool,
    /// Peers whose ICE and DTLS are up.
    connected: AtomicU64,
    /// Per session: when forwarding was switched on for it (µs since epoch; 0 = not yet).
    joins: Vec<AtomicU64>,
}

impl Ctl {
    pub fn new(sessions: usize, ip: IpAddr) -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            ip,
            window_start: AtomicU64::new(u64::MAX),
            window_end: AtomicU64::new(u64::MAX),
            stop: AtomicBool::new(false),
            connected: AtomicU64::new(0),
            joins: (0..sessions).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    pub fn set_window(&self, start_us: u64, end_us: u64) {
        self.window_end.store(end_us, Ordering::Relaxed);
        self.window_start.store(start_us, Ordering::Relaxed);
    }

    fn in_window(&self, t_us: u64) -> bool {
        t_us >= self.window_start.load(Ordering::Relaxed)
            && t_us < self.window_end.load(Ordering::Relaxed)
    }

    /// Wait (bounded) until `peers` peers in all are connected.
    pub async fn wait_connected(&self, peers: usize, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        while (self.connected.load(Ordering::Relaxed) as usize) < peers {
            if Instant::now() > deadline {
                anyhow::bail!(
                    "only {} of {peers} peers connected within {limit:?}",
                    self.connected.load(Ordering::Relaxed)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    pub fn join(&self, session: usize) {
        if let Some(j) = self.joins.get(session) {
            j.store(self.now_us().max(1), Ordering::Relaxed);
        }
    }

    fn joined_at(&self, session: usize) -> Option<u64> {
        let t = self.joins.get(session)?.load(Ordering::Relaxed);
        (t > 0).then_some(t)
    }
}

/// Media kinds a peer sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Video,
    Audio,
}

/// One outgoing track: which mid, which clip, which stream number it stamps.
pub struct SendTrack {
    pub mid: Mid,
    pub kind: Kind,
    pub clip: Arc<Clip>,
    pub stream: u32,
    pt: Option<Pt>,
    next_at: Option<Instant>,
    frame: usize,
    frames_sent: u64,
    seq: u64,
    counter: u32,
    picture_id: u16,
    ts_base: u32,
    want_key: bool,
}

impl SendTrack {
    pub fn new(mid: Mid, kind: Kind, clip: Arc<Clip>, stream: u32) -> Self {
        Self {
            mid,
            kind,
            clip,
            stream,
            pt: None,
            next_at: None,
            frame: 0,
            frames_sent: 0,
            seq: u64::from(stream) * 7919 % 30_000 + 1,
            counter: 0,
            picture_id: (stream * 31 % 0x7fff) as u16,
            ts_base: stream.wrapping_mul(0x9e37_79b9),
            want_key: true,
        }
    }

    fn interval(&self) -> Duration {
        Duration::from_micros(1_000_000 / u64::from(self.clip.fps.max(1)))
    }
}

/// What a peer saw, handed back when its task ends.
#[derive(Debug, Default)]
pub struct PeerReport {
    pub connected: bool,
    /// Packets stamped inside the window, per stream.
    pub sent: HashMap<u32, u64>,
    pub received: HashMap<u32, u64>,
    /// Delay of every packet received from the window (µs).
    pub delays_us: Vec<u32>,
    /// How late each frame inside the window was handed to str0m (µs).
    pub lag_us: Vec<u32>,
    /// First keyframe after the session's join, per received video stream (µs).
    pub keyframe_delays_us: Vec<u64>,
    pub keyframe_requests: u64,
    pub send_errors: u64,
    pub rtp_received: u64,
}

pub struct Peer {
    pub rtc: Rtc,
    pub socket: UdpSocket,
    pub addr: SocketAddr,
    pub tracks: Vec<SendTrack>,
    /// Which session's join counts for keyframe delay.
    pub session: usize,
    /// Streams received so far and whether their first keyframe after join was seen.
    key_seen: HashMap<u32, bool>,
    connected_at_us: Option<u64>,
    next_timeout: Instant,
    report: PeerReport,
}

/// A str0m configuration like a browser's for this comparison: VP8 and Opus only, RTP mode.
pub fn rtc(now: Instant) -> Rtc {
    Rtc::builder()
        .set_rtp_mode(true)
        .clear_codecs()
        .enable_vp8(true)
        .enable_opus(true, false)
        .build(now)
}

impl Peer {
    pub async fn bind(session: usize, ip: IpAddr) -> anyhow::Result<Self> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let addr = socket.local_addr()?;
        let now = Instant::now();
        let mut rtc = rtc(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp")?)
            .ok_or_else(|| anyhow::anyhow!("local candidate refused"))?;
        Ok(Self {
            rtc,
            socket,
            addr,
            tracks: Vec::new(),
            session,
            key_seen: HashMap::new(),
            connected_at_us: None,
            next_timeout: now,
            report: PeerReport::default(),
        })
    }

    /// After negotiation: look up payload types and keep a small retransmission cache.
    pub fn negotiated(&mut self) {
        for t in &mut self.tracks {
            let codec = match t.kind {
                Kind::Video => Codec::Vp8,
                Kind::Audio => Codec::Opus,
            };
            t.pt = self
                .rtc
                .codec_config()
                .iter()
                .find(|p| p.spec().codec == codec)
                .map(|p| p.pt());
            if t.kind == Kind::Video {
                let mut api = self.rtc.direct_api();
                if let Some(tx) = api.stream_tx_by_mid(t.mid, None) {
                    tx.set_rtx_cache(600, Duration::from_secs(2), None);
                }
            }
        }
    }

    /// Drive the peer until `ctl.stop`.
    pub async fn run(mut self, ctl: Arc<Ctl>) -> PeerReport {
        let mut buf = vec![0u8; 2048];
        loop {
            if ctl.stop.load(Ordering::Relaxed) {
                break;
            }
            let now = Instant::now();
            if now >= self.next_timeout {
                let _ = self.rtc.handle_input(Input::Timeout(now));
            }
            if self.report.connected {
                self.send_due(&ctl, now);
            }
            self.poll(&ctl, None);
            let mut wake = self.next_timeout.min(now + Duration::from_millis(50));
            if self.report.connected {
                for t in &self.tracks {
                    if let Some(at) = t.next_at {
                        wake = wake.min(at);
                    }
                }
            }
            tokio::select! {
                r = self.socket.readable() => {
                    if r.is_err() { continue; }
                    for _ in 0..32 {
                        match self.socket.try_recv_from(&mut buf) {
                            Ok((n, from)) => {
                                let t_us = ctl.now_us();
                                let Ok(contents) = buf[..n].try_into() else { continue };
                                let input = Input::Receive(Instant::now(), Receive {
                                    proto: Protocol::Udp, source: from, destination: self.addr, contents,
                                });
                                if self.rtc.handle_input(input).is_ok() {
                                    self.poll(&ctl, Some(t_us));
                                }
                            }
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                            Err(_) => break,
                        }
                    }
                }
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {}
            }
        }
        self.report
    }

    fn send_due(&mut self, ctl: &Ctl, now: Instant) {
        for i in 0..self.tracks.len() {
            let Some(pt) = self.tracks[i].pt else {
                continue;
            };
            let interval = self.tracks[i].interval();
            let due = *self.tracks[i].next_at.get_or_insert(now);
            if now < due {
                continue;
            }
            let sent_us = ctl.now_us();
            let in_window = ctl.in_window(sent_us);
            if in_window {
                self.report
                    .lag_us
                    .push((now - due).as_micros().min(u128::from(u32::MAX)) as u32);
            }
            let t = &mut self.tracks[i];
            // A generator that fell far behind restarts its schedule rather than bursting.
            t.next_at = Some(if now - due > Duration::from_millis(500) {
                now + interval
            } else {
                due + interval
            });
            let frame = if t.kind == Kind::Video && std::mem::take(&mut t.want_key) {
                t.clip.keyframe.clone()
            } else {
                let f = t.clip.frames[t.frame % t.clip.frames.len()].clone();
                t.frame += 1;
                f
            };
            let n = t.frames_sent;
            t.frames_sent += 1;
            let (ts, payloads) = match t.kind {
                Kind::Video => {
                    t.picture_id = (t.picture_id + 1) & 0x7fff;
                    (
                        t.ts_base.wrapping_add((n * 3000) as u32),
                        vp8_payloads(&frame.data, t.picture_id),
                    )
                }
                Kind::Audio => {
                    let mut p = Vec::with_capacity(frame.data.len() + STAMP_LEN);
                    p.extend_from_slice(&frame.data);
                    (t.ts_base.wrapping_add((n * 960) as u32), vec![p])
                }
            };
            let last = payloads.len() - 1;
            let (mid, kind, stream) = (t.mid, t.kind, t.stream);
            for (k, mut p) in payloads.into_iter().enumerate() {
                let t = &mut self.tracks[i];
                let flags = if kind == Kind::Video && k == 0 && frame.key {
                    FLAG_KEY_START
                } else {
                    0
                };
                Stamp {
                    stream,
                    counter: t.counter,
                    sent_us,
                    flags,
                }
                .write(&mut p);
                t.counter = t.counter.wrapping_add(1);
                let seq = t.seq;
                t.seq += 1;
                if in_window {
                    *self.report.sent.entry(stream).or_default() += 1;
                }
                let mut api = self.rtc.direct_api();
                let Some(tx) = api.stream_tx_by_mid(mid, None) else {
                    break;
                };
                tx.write_rtp(
                    RtpWrite::new(pt, seq.into(), ts, now, p)
                        .marker(k == last)
                        .nackable(kind == Kind::Video),
                );
            }
            self.poll(ctl, None);
        }
    }

    /// Poll str0m until it asks for a timeout: send datagrams, take events. `recv_us` is the
    /// arrival time of the datagram just handled, if any.
    fn poll(&mut self, ctl: &Ctl, recv_us: Option<u64>) {
        loop {
            let out = match self.rtc.poll_output() {
                Ok(o) => o,
                Err(_) => {
                    self.next_timeout = Instant::now() + Duration::from_millis(50);
                    return;
                }
            };
            match out {
                Output::Timeout(t) => {
                    self.next_timeout = t;
                    return;
                }
                Output::Transmit(t) => {
                    if self.socket.try_send_to(&t.contents, t.destination).is_err() {
                        self.report.send_errors += 1;
                    }
                }
                Output::Event(e) => self.on_event(ctl, e, recv_us),
            }
        }
    }

    fn on_event(&mut self, ctl: &Ctl, e: Event, recv_us: Option<u64>) {
        match e {
            Event::Connected => {
                if !self.report.connected {
                    ctl.connected.fetch_add(1, Ordering::Relaxed);
                }
                self.report.connected = true;
                self.connected_at_us = Some(ctl.now_us());
            }
            Event::KeyframeRequest(r) => {
                self.report.keyframe_requests += 1;
                for t in &mut self.tracks {
                    if t.mid == r.mid {
                        t.want_key = true;
                    }
                }
            }
            Event::RtpPacket(p) => {
                self.report.rtp_received += 1;
                let Some(stamp) = Stamp::read(&p.payload) else {
                    return;
                };
                let now_us = recv_us.unwrap_or_else(|| ctl.now_us());
                if ctl.in_window(stamp.sent_us) {
                    *self.report.received.entry(stamp.stream).or_default() += 1;
                    self.report.delays_us.push(
                        now_us
                            .saturating_sub(stamp.sent_us)
                            .min(u64::from(u32::MAX)) as u32,
                    );
                }
                if stamp.flags & FLAG_KEY_START != 0 {
                    let seen = self.key_seen.entry(stamp.stream).or_insert(false);
                    // The viewer could receive from the later of its session's join and its
                    // own connection.
                    if !*seen && let Some(join) = ctl.joined_at(self.session) {
                        let from = join.max(self.connected_at_us.unwrap_or(join));
                        if stamp.sent_us + 1 >= join {
                            *seen = true;
                            self.report
                                .keyframe_delays_us
                                .push(now_us.saturating_sub(from));
                        }
                    }
                }
            }
            _ => {}
        }
    }
}
