//! The thin tokio driver: one task, on a thread of its own, owns the UDP socket and the
//! [`Sfu`] core, takes commands over a bounded channel (each with a oneshot reply) and hands
//! forwarded packets of recorded pairs to their [`RecordSink`].

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::core::{RecordedRtp, Sfu, SfuConfig, SfuEvent};
use super::metrics::{self, SfuMetrics};
use super::peer::PeerStats;
use super::{PeerId, Role, SfuError};

/// Where the driver hands every forwarded packet of a recorded pair. The recorder implements
/// it (`recorder::RecordingTap`); the SFU knows nothing of files.
pub trait RecordSink: Send + Sync + 'static {
    /// Takes one forwarded packet; must never block the driver's thread. Returns false when
    /// the packet was dropped (counted by the driver as `record_dropped`).
    fn record(&self, packet: &RecordedRtp) -> bool;
}

/// How to run the driver.
#[derive(Debug, Clone)]
pub struct SfuDriverConfig {
    /// Where to bind the UDP socket (`0.0.0.0:3478`-style in production, `127.0.0.1:0` in tests).
    pub bind: SocketAddr,
    /// The address clients reach the socket at, without port (the socket's port is used).
    /// Required when `bind` is an unspecified address.
    pub advertised_ip: Option<IpAddr>,
    pub max_peers: usize,
    pub connect_timeout: Duration,
    pub command_queue: usize,
    pub event_queue: usize,
    /// How long a command caller waits for the driver's answer.
    pub command_timeout: Duration,
}

impl Default for SfuDriverConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertised_ip: None,
            max_peers: 512,
            connect_timeout: Duration::from_secs(30),
            command_queue: 256,
            event_queue: 1024,
            command_timeout: Duration::from_secs(5),
        }
    }
}

enum Command {
    AddPeer {
        id: PeerId,
        role: Role,
        offer: String,
        reply: oneshot::Sender<Result<String, SfuError>>,
    },
    RemovePeer {
        id: PeerId,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Connect {
        kiosk: PeerId,
        clerk: PeerId,
        tap: Option<Arc<dyn RecordSink>>,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Disconnect {
        kiosk: PeerId,
        clerk: PeerId,
        reply: oneshot::Sender<Result<(), SfuError>>,
    },
    Stats {
        id: PeerId,
        reply: oneshot::Sender<Option<PeerStats>>,
    },
}

/// Cloneable handle to the running driver. Dropping every handle stops the driver.
#[derive(Clone)]
pub struct SfuHandle {
    tx: mpsc::Sender<Command>,
    metrics: Arc<SfuMetrics>,
    local_addr: SocketAddr,
    candidate: SocketAddr,
    command_timeout: Duration,
}

impl SfuHandle {
    /// Bind the UDP socket and start the driver (on its own thread). Returns the
    /// handle and the event stream (bounded; events are dropped and counted when nobody reads).
    pub async fn bind(
        config: SfuDriverConfig,
    ) -> Result<(SfuHandle, mpsc::Receiver<SfuEvent>), SfuError> {
        let socket = UdpSocket::bind(config.bind).await?;
        Self::spawn(socket, config)
    }

    /// Start the driver on a socket the caller bound.
    pub fn spawn(
        socket: UdpSocket,
        config: SfuDriverConfig,
    ) -> Result<(SfuHandle, mpsc::Receiver<SfuEvent>), SfuError> {
        let local_addr = socket.local_addr()?;
        enlarge_buffers(&socket);
        let ip = match config.advertised_ip {
            Some(ip) => ip,
            None if !local_addr.ip().is_unspecified() => local_addr.ip(),
            None => {
                return Err(SfuError::Io(std::io::Error::new(
                    ErrorKind::InvalidInput,
                    "advertised_ip is required when binding an unspecified address",
                )));
            }
        };
        let candidate = SocketAddr::new(ip, local_addr.port());
        let mut core_config = SfuConfig::new(candidate);
        core_config.max_peers = config.max_peers;
        core_config.connect_timeout = config.connect_timeout;
        let metrics = Arc::new(SfuMetrics::default());
        let core = Sfu::new(core_config, Arc::clone(&metrics));
        let (tx, rx) = mpsc::channel(config.command_queue.max(1));
        let (ev_tx, ev_rx) = mpsc::channel(config.event_queue.max(1));
        // The driver gets a thread and a single-threaded runtime of its own: every datagram
        // wakes it, and on the shared multi-threaded runtime each wake-up also woke an idle
        // sibling worker to look for work (a futex and a context switch per wake-up, ≈13 % of
        // the relay's CPU under load). Commands, events and recording taps are tokio channels,
        // which work across runtimes.
        let std_socket = socket.into_std()?;
        std::thread::Builder::new()
            .name("relay-sfu".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(error = %e, "sfu driver: no runtime");
                        return;
                    }
                };
                runtime.block_on(async move {
                    match UdpSocket::from_std(std_socket) {
                        Ok(socket) => run(core, socket, candidate, rx, ev_tx).await,
                        Err(e) => tracing::error!(error = %e, "sfu driver: socket not registered"),
                    }
                });
            })?;
        Ok((
            SfuHandle {
                tx,
                metrics,
                local_addr,
                candidate,
                command_timeout: config.command_timeout,
            },
            ev_rx,
        ))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The host candidate advertised in every answer.
    pub fn candidate(&self) -> SocketAddr {
        self.candidate
    }

    pub fn metrics(&self) -> Arc<SfuMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Add a peer from its offer; returns the relay's answer SDP.
    pub async fn add_peer(
        &self,
        id: PeerId,
        role: Role,
        offer_sdp: String,
    ) -> Result<String, SfuError> {
        self.call(|reply| Command::AddPeer {
            id,
            role,
            offer: offer_sdp,
            reply,
        })
        .await?
    }

    pub async fn remove_peer(&self, id: PeerId) -> Result<(), SfuError> {
        self.call(|reply| Command::RemovePeer { id, reply }).await?
    }

    /// Switch forwarding on between `kiosk` and `clerk`; with a sink, every forwarded packet
    /// of the pair is also handed to it (the recorder).
    pub async fn connect(
        &self,
        kiosk: PeerId,
        clerk: PeerId,
        recording: Option<Arc<dyn RecordSink>>,
    ) -> Result<(), SfuError> {
        self.call(|reply| Command::Connect {
            kiosk,
            clerk,
            tap: recording,
            reply,
        })
        .await?
    }

    /// Switch forwarding off. Once this returns, no further packet of the pair reaches its
    /// recording tap, so the recording can be finished.
    pub async fn disconnect(&self, kiosk: PeerId, clerk: PeerId) -> Result<(), SfuError> {
        self.call(|reply| Command::Disconnect {
            kiosk,
            clerk,
            reply,
        })
        .await?
    }

    pub async fn peer_stats(&self, id: PeerId) -> Result<Option<PeerStats>, SfuError> {
        self.call(|reply| Command::Stats { id, reply }).await
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, SfuError> {
        let (reply, answer) = oneshot::channel();
        tokio::time::timeout(self.command_timeout, async {
            self.tx
                .send(make(reply))
                .await
                .map_err(|_| SfuError::DriverGone)?;
            answer.await.map_err(|_| SfuError::DriverGone)
        })
        .await
        .map_err(|_| SfuError::DriverTimeout)?
    }
}

/// Datagrams read per wake-up before outputs are flushed.
const RECV_BATCH: usize = 64;

/// Kernel buffers asked for the shared media socket (the kernel caps them at
/// `net.core.rmem_max`/`wmem_max`). Every peer's media arrives on this one socket, so the
/// default (≈208 KiB ≈ 15 ms of 40 sessions) overflows whenever the driver is not scheduled
/// for a moment; one socket per peer, as Janus has, spreads the same burst over many buffers.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

fn enlarge_buffers(socket: &UdpSocket) {
    let sock = socket2::SockRef::from(socket);
    if let Err(e) = sock.set_recv_buffer_size(SOCKET_BUFFER_BYTES) {
        tracing::warn!(error = %e, "sfu socket: receive buffer not enlarged");
    }
    if let Err(e) = sock.set_send_buffer_size(SOCKET_BUFFER_BYTES) {
        tracing::warn!(error = %e, "sfu socket: send buffer not enlarged");
    }
    tracing::debug!(
        recv = ?sock.recv_buffer_size().ok(),
        send = ?sock.send_buffer_size().ok(),
        "sfu socket buffers"
    );
}

async fn run(
    mut core: Sfu,
    socket: UdpSocket,
    candidate: SocketAddr,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<SfuEvent>,
) {
    let mut buf = vec![0u8; 2048];
    let mut taps: HashMap<PeerId, Arc<dyn RecordSink>> = HashMap::new();
    loop {
        flush(&mut core, &socket, &events, &taps).await;
        let now = Instant::now();
        let deadline = core
            .poll_timeout()
            .map(Instant::from_std)
            .unwrap_or(now + Duration::from_secs(1))
            .min(now + Duration::from_secs(1));
        tokio::select! {
            biased;
            cmd = commands.recv() => {
                let Some(cmd) = cmd else { break };
                apply(&mut core, cmd, &mut taps);
            }
            ready = socket.readable() => {
                if let Err(e) = ready {
                    tracing::warn!(error = %e, "sfu socket not readable");
                    continue;
                }
                for _ in 0..RECV_BATCH {
                    match socket.try_recv_from(&mut buf) {
                        Ok((n, source)) => {
                            let now = Instant::now().into_std();
                            // Errors are counted in the core's metrics; nothing to answer.
                            let _ = core.handle_datagram(now, source, candidate, &buf[..n]);
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => {
                            tracing::debug!(error = %e, "sfu recv error");
                            break;
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline) => {}
        }
        let now = Instant::now().into_std();
        if core.poll_timeout().is_some_and(|t| t <= now) {
            core.handle_timeout(now);
        }
    }
    tracing::info!("sfu driver stopped");
}

fn apply(core: &mut Sfu, cmd: Command, taps: &mut HashMap<PeerId, Arc<dyn RecordSink>>) {
    let now = Instant::now().into_std();
    match cmd {
        Command::AddPeer {
            id,
            role,
            offer,
            reply,
        } => {
            let _ = reply.send(core.add_peer(id, role, &offer, now));
        }
        Command::RemovePeer { id, reply } => {
            let partner = core.partner(id);
            taps.remove(&id);
            if let Some(p) = partner {
                taps.remove(&p);
            }
            let _ = reply.send(core.remove_peer(id, now));
        }
        Command::Connect {
            kiosk,
            clerk,
            tap,
            reply,
        } => {
            let record = tap.is_some();
            let result = core.connect(kiosk, clerk, record, now);
            if result.is_ok() {
                match tap {
                    Some(tap) => {
                        taps.insert(kiosk, tap);
                    }
                    None => {
                        taps.remove(&kiosk);
                    }
                }
            }
            let _ = reply.send(result);
        }
        Command::Disconnect {
            kiosk,
            clerk,
            reply,
        } => {
            let result = core.disconnect(kiosk, clerk);
            if result.is_ok() {
                taps.remove(&kiosk);
            }
            let _ = reply.send(result);
        }
        Command::Stats { id, reply } => {
            let _ = reply.send(core.peer_stats(id));
        }
    }
}

async fn flush(
    core: &mut Sfu,
    socket: &UdpSocket,
    events: &mpsc::Sender<SfuEvent>,
    taps: &HashMap<PeerId, Arc<dyn RecordSink>>,
) {
    let m = Arc::clone(core.metrics());
    while let Some(t) = core.poll_transmit() {
        match socket.try_send_to(&t.contents, t.destination) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                // The kernel buffer is full: wait for it, bounded so a stuck socket cannot
                // stall the loop.
                let sent = tokio::time::timeout(
                    Duration::from_millis(50),
                    socket.send_to(&t.contents, t.destination),
                )
                .await;
                if !matches!(sent, Ok(Ok(_))) {
                    metrics::inc(&m.send_errors);
                }
            }
            Err(_) => metrics::inc(&m.send_errors),
        }
    }
    while let Some(e) = core.poll_event() {
        if events.try_send(e).is_err() {
            metrics::inc(&m.events_dropped);
        }
    }
    while let Some(r) = core.poll_recorded() {
        match taps.get(&r.kiosk) {
            Some(tap) => {
                if !tap.record(&r) {
                    metrics::inc(&m.record_dropped);
                }
            }
            None => metrics::inc(&m.record_dropped),
        }
    }
}
