//! The tokio task around [`ControlCore`]: it dials when the core asks, moves messages between
//! the socket and the core, the core's timer, and the agent's channels (requests, device
//! messages, media offers and signals, the published [`KioskState`]). It decides nothing.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use protocol::control::{KioskTicketStatus, RelayToKiosk};
use protocol::device::{FromDevice, ToDevice};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::Connector;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::core::{
    Answer, AppointmentAnswer, ControlCore, Event, KioskState, LinkError, MediaSignal, Request,
    Transmit,
};
use super::wire::{Wire, WireError};
use crate::clock::now_ms;

/// A request from a [`super::Link`] handle, with where its answer goes.
pub(super) struct Asked {
    pub request: Request,
    pub reply: Reply,
}

pub(super) enum Reply {
    Take(oneshot::Sender<Result<KioskTicketStatus, LinkError>>),
    Cancel(oneshot::Sender<Result<(), LinkError>>),
    Evaluation(oneshot::Sender<Result<bool, LinkError>>),
    Appointment(oneshot::Sender<Result<AppointmentAnswer, LinkError>>),
}

impl Reply {
    /// Hands the core's answer over. An answer of the wrong kind cannot come from the core;
    /// were it to, dropping the sender tells the caller "offline".
    fn send(self, result: Result<Answer, LinkError>) {
        match (self, result) {
            (Reply::Take(tx), Ok(Answer::Ticket(t))) => {
                let _ = tx.send(Ok(t));
            }
            (Reply::Cancel(tx), Ok(Answer::Cancelled)) => {
                let _ = tx.send(Ok(()));
            }
            (Reply::Evaluation(tx), Ok(Answer::EvaluationStored { duplicate })) => {
                let _ = tx.send(Ok(duplicate));
            }
            (Reply::Take(tx), Err(e)) => {
                let _ = tx.send(Err(e));
            }
            (Reply::Cancel(tx), Err(e)) => {
                let _ = tx.send(Err(e));
            }
            (Reply::Evaluation(tx), Err(e)) => {
                let _ = tx.send(Err(e));
            }
            (Reply::Appointment(tx), Ok(Answer::Appointment(a))) => {
                let _ = tx.send(Ok(a));
            }
            (Reply::Appointment(tx), Err(e)) => {
                let _ = tx.send(Err(e));
            }
            (_, Ok(_)) => {}
        }
    }
}

type Dialling = Pin<Box<dyn Future<Output = Result<Wire, WireError>> + Send>>;

pub(super) struct LinkTask {
    pub core: ControlCore,
    pub url: String,
    pub connector: Connector,
    /// The dial's own bound; the core's connect deadline normally comes first.
    pub dial_limit: Duration,
    pub state: watch::Sender<KioskState>,
    pub requests: mpsc::Receiver<Asked>,
    /// Device commands and cancels from the relay, for the devices.
    pub device_commands: mpsc::Sender<ToDevice>,
    /// Device answers and events for the relay.
    pub device_out: mpsc::Receiver<FromDevice>,
    pub media_signals: mpsc::Sender<MediaSignal>,
    /// Media offers for the relay: (request id, SDP).
    pub media_out: mpsc::Receiver<(u64, String)>,
    pub shutdown: CancellationToken,
}

/// The tokio clock as a std `Instant`, so a paused tokio clock pauses the core too.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl LinkTask {
    pub(super) async fn run(mut self) {
        let mut wire: Option<Wire> = None;
        let mut dialling: Option<Dialling> = None;
        let mut replies: HashMap<u64, Reply> = HashMap::new();
        loop {
            self.flush(&mut wire, &mut dialling).await;
            self.deliver(&mut replies);
            if self.core.is_stopped() {
                return;
            }
            let wake = self.core.poll_timeout();
            tokio::select! {
                () = self.shutdown.cancelled() => self.core.handle_shutdown(),
                dialled = dial_result(&mut dialling) => {
                    dialling = None;
                    match dialled {
                        Ok(w) => {
                            wire = Some(w);
                            self.core.handle_connected(now());
                        }
                        Err(e) => self.core.handle_connect_failed(now(), &e.to_string()),
                    }
                }
                received = next_message(&mut wire) => match received {
                    Ok(message) => self.core.handle_message(now(), now_ms(), message),
                    Err(e) => self.core.handle_closed(now(), &e.to_string()),
                },
                () = sleep_until(wake) => self.core.handle_timeout(now()),
                asked = self.requests.recv() => match asked {
                    // Every handle is gone: nobody is left to serve.
                    None => self.core.handle_shutdown(),
                    Some(Asked { request, reply }) => {
                        let request_id = self.core.handle_request(now(), request);
                        replies.insert(request_id, reply);
                    }
                },
                Some(message) = self.device_out.recv() => {
                    if !self.core.handle_device(message) {
                        debug!("device message dropped while the relay is unreachable");
                    }
                }
                Some((request_id, sdp)) = self.media_out.recv() => {
                    if !self.core.handle_media_offer(request_id, sdp) {
                        debug!("media offer dropped while the relay is unreachable; it is sent again once online");
                    }
                }
            }
        }
    }

    /// Carries out what the core wants done with the connection.
    async fn flush(&mut self, wire: &mut Option<Wire>, dialling: &mut Option<Dialling>) {
        while let Some(transmit) = self.core.poll_transmit() {
            match transmit {
                Transmit::Connect => {
                    let (url, connector, limit) =
                        (self.url.clone(), self.connector.clone(), self.dial_limit);
                    *dialling = Some(Box::pin(async move {
                        Wire::dial(&url, &connector, limit).await
                    }));
                }
                Transmit::Send(message) => {
                    let Some(w) = wire.as_mut() else { continue };
                    if let Err(e) = w.send(&message).await {
                        self.core.handle_closed(now(), &e.to_string());
                    }
                }
                Transmit::Close => {
                    *dialling = None;
                    if let Some(w) = wire.take() {
                        w.close().await;
                    }
                }
            }
        }
    }

    /// Hands the core's events and state to the agent.
    fn deliver(&mut self, replies: &mut HashMap<u64, Reply>) {
        while let Some(event) = self.core.poll_event() {
            match event {
                Event::Answer { request_id, result } => {
                    if let Some(reply) = replies.remove(&request_id) {
                        reply.send(result);
                    }
                }
                Event::Media(signal) => {
                    if self.media_signals.try_send(signal).is_err() {
                        warn!("media signal dropped: the media connection is not keeping up");
                    }
                }
                Event::Device(message) => {
                    if self.device_commands.try_send(message).is_err() {
                        // The relay completes the command with a timeout; the clerk may retry.
                        warn!("device command dropped: the devices are not keeping up");
                    }
                }
                Event::RelayError { code, message, .. } => {
                    warn!(code = ?code, message = %message, "relay reported an error");
                }
                // The core logged it and published the problem in the state.
                Event::Down(_) => {}
            }
        }
        if self.core.take_state_changed() {
            self.state.send_replace(self.core.state().clone());
        }
    }
}

async fn dial_result(dialling: &mut Option<Dialling>) -> Result<Wire, WireError> {
    match dialling {
        Some(dial) => dial.await,
        None => std::future::pending().await,
    }
}

async fn next_message(wire: &mut Option<Wire>) -> Result<RelayToKiosk, WireError> {
    match wire {
        Some(w) => w.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}
