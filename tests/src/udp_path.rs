//! A UDP path the test controls, between media clients and the relay's SFU port: what a NAT
//! or a network between kiosk and relay does, on loopback.
//!
//! The relay advertises another loopback address (`media.advertised_ip`, e.g. 127.0.0.2) as
//! its candidate; [`UdpPath`] listens there on the relay's media port and forwards each
//! client's datagrams from a socket of its own (one per client address, as a NAT mapping
//! would), and the relay's replies back. [`UdpPath::cut`] drops, for good, every datagram of
//! the flows a client address has so far, in both directions — a network change that strands
//! the kiosk's current connection while new flows (a new connection binds new ports) pass.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, Result};
use tokio::net::UdpSocket;
use tokio::task::{JoinHandle, JoinSet};

#[derive(Default)]
struct Flows {
    /// Client address → the socket its datagrams leave from towards the relay.
    upstream: HashMap<SocketAddr, Arc<UdpSocket>>,
    cut: HashSet<SocketAddr>,
    dropped: u64,
}

/// See the module docs. Dropping it stops forwarding.
pub struct UdpPath {
    flows: Arc<Mutex<Flows>>,
    task: JoinHandle<()>,
}

impl UdpPath {
    /// Listens on `listen` and forwards to the relay's socket at `relay`.
    pub async fn start(listen: SocketAddr, relay: SocketAddr) -> Result<UdpPath> {
        let front = Arc::new(
            UdpSocket::bind(listen)
                .await
                .with_context(|| format!("binding the UDP path at {listen}"))?,
        );
        let flows = Arc::new(Mutex::new(Flows::default()));
        let task = tokio::spawn(forward(front, relay, Arc::clone(&flows)));
        Ok(UdpPath { flows, task })
    }

    /// Strands every flow seen so far from `ip`: their datagrams are dropped both ways from
    /// now on. Returns how many flows were cut.
    pub fn cut(&self, ip: IpAddr) -> usize {
        let mut flows = self.flows.lock().unwrap_or_else(PoisonError::into_inner);
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
        let flows = self.flows.lock().unwrap_or_else(PoisonError::into_inner);
        flows
            .upstream
            .keys()
            .filter(|a| a.ip() == ip)
            .copied()
            .collect()
    }

    /// Datagrams dropped on cut flows.
    pub fn dropped(&self) -> u64 {
        self.flows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .dropped
    }
}

impl Drop for UdpPath {
    fn drop(&mut self) {
        // The forwarding task owns the per-client tasks (a `JoinSet`): they end with it.
        self.task.abort();
    }
}

async fn forward(front: Arc<UdpSocket>, relay: SocketAddr, flows: Arc<Mutex<Flows>>) {
    let mut buf = vec![0u8; 65_536];
    let mut back = JoinSet::new();
    loop {
        let Ok((n, client)) = front.recv_from(&mut buf).await else {
            continue;
        };
        let upstream = {
            let mut f = flows.lock().unwrap_or_else(PoisonError::into_inner);
            if f.cut.contains(&client) {
                f.dropped += 1;
                continue;
            }
            f.upstream.get(&client).cloned()
        };
        let upstream = match upstream {
            Some(u) => u,
            None => {
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
                back.spawn(backward(
                    Arc::clone(&socket),
                    Arc::clone(&front),
                    client,
                    Arc::clone(&flows),
                ));
                socket
            }
        };
        let _ = upstream.send(&buf[..n]).await;
    }
}

/// The relay's datagrams to one client, sent from the address the client sent to.
async fn backward(
    upstream: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    client: SocketAddr,
    flows: Arc<Mutex<Flows>>,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok(n) = upstream.recv(&mut buf).await else {
            continue;
        };
        {
            let mut f = flows.lock().unwrap_or_else(PoisonError::into_inner);
            if f.cut.contains(&client) {
                f.dropped += 1;
                continue;
            }
        }
        let _ = front.send_to(&buf[..n], client).await;
    }
}
