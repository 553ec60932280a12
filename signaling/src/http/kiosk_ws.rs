//! The kiosk agent's WebSocket: device authentication, tickets, live ticket status.

use std::time::{Duration, Instant};

use std::net::SocketAddr;

use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use protocol::control::{
    CentreInfo, ErrorBody, ErrorCode, ExtensionPointInfo, KioskTicketStatus, KioskToRelay,
    RelayToKiosk, ServingClerk, negotiate_version,
};
use protocol::queue::TicketChannel;
use tokio::sync::watch;
use tracing::{info, info_span, warn};

use super::auth::authenticate_device;
use super::error::ApiError;
use super::kiosk_appointments::{self, KioskBookingForm};
use super::state::AppState;
use super::ws::{Conn, Incoming, close_code, parse};
use crate::domain::{Device, DeviceKind, ExtensionPoint};
use crate::metrics::ClientKind;
use crate::queue::driver::OpError;
use crate::queue::{Command, QueueHandle};
use crate::session::{CloseReason, ConnId, KioskLine};

/// How often a kiosk is asked to send a heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);
/// How often a heartbeat updates the device's last-seen time in the store.
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// Close code telling an agent that a newer connection of the same device took over.
const REPLACED: u16 = 4000;
/// Close code telling an agent that its device was closed or revoked in the registry.
const REVOKED: u16 = 4001;

pub async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let conn_id = state.switchboard.next_conn_id();
    let span = info_span!("kiosk", conn = %conn_id, device = tracing::field::Empty);
    let serving = state.clone();
    super::ws::accept_unauthenticated(&state, ws, peer.ip(), span, move |socket, slot| {
        run_connection(serving, conn_id, socket, slot)
    })
}

fn error(code: ErrorCode, message: &str) -> ErrorBody {
    ErrorBody {
        code,
        message: message.to_owned(),
    }
}

fn op_error(e: &OpError) -> ErrorBody {
    match e {
        OpError::Refused(q) => q.body(),
        OpError::Store => error(
            ErrorCode::Internal,
            "暂时无法取号，请稍后再试 / could not take a ticket, please retry",
        ),
        OpError::Timeout | OpError::Unavailable => error(
            ErrorCode::Timeout,
            "叫号系统繁忙，请稍后再试 / the queue is busy, please retry",
        ),
    }
}

struct Kiosk {
    /// Its outbox (device commands, media control) and close signal on the switchboard.
    line: KioskLine,
    device: Device,
    point: ExtensionPoint,
    queue: QueueHandle,
    status: watch::Receiver<Option<KioskTicketStatus>>,
    /// Which categories a remote window could serve now; sent after `welcome` and on change.
    staffing: watch::Receiver<std::sync::Arc<Vec<protocol::control::CategoryStaffing>>>,
    /// The serving clerk's card as last read from the staff record.
    clerk_card: Option<ServingClerk>,
    last_touch: Instant,
}

/// Adds the serving clerk's post, staff number and photo from their staff record, read once
/// per clerk. A store failure leaves the name only (and is read again next time).
async fn with_clerk_card(
    state: &AppState,
    cache: &mut Option<ServingClerk>,
    mut ticket: KioskTicketStatus,
) -> KioskTicketStatus {
    let Some(clerk) = ticket.serving_clerk.take() else {
        return ticket;
    };
    if let Some(card) = cache
        .as_ref()
        .filter(|c| c.id == clerk.id && c.name == clerk.name)
    {
        ticket.serving_clerk = Some(Box::new(card.clone()));
        return ticket;
    }
    let mut card = *clerk;
    match state.staff.staff_profile(&card.id).await {
        Ok(profile) => {
            if let Some(p) = profile {
                use base64::Engine as _;
                card.post = p.post;
                card.staff_number = p.staff_number;
                card.photo = p.photo.map(|(kind, bytes)| {
                    let data = base64::engine::general_purpose::STANDARD.encode(bytes);
                    format!("data:{};base64,{data}", kind.mime())
                });
            }
            *cache = Some(card.clone());
        }
        Err(e) => {
            warn!(error = %e, "staff profile not read; the kiosk shows the clerk's name only")
        }
    }
    ticket.serving_clerk = Some(Box::new(card));
    ticket
}

async fn run_connection(
    state: AppState,
    conn_id: ConnId,
    socket: WebSocket,
    pending: super::pending::PendingSlot,
) {
    let limits = &state.config.limits;
    let mut conn = Conn::new(
        socket,
        ClientKind::Kiosk,
        state.metrics.clone(),
        Duration::from_secs(limits.idle_timeout_secs),
        limits.max_bad_messages_per_minute,
    );
    state.metrics.connection_opened(ClientKind::Kiosk);
    let kiosk = handshake(&state, &mut conn, conn_id).await;
    // Authenticated (or refused): the source address's pending slot is free again.
    drop(pending);
    if let Some(mut kiosk) = kiosk {
        tracing::Span::current().record("device", kiosk.device.id.as_str());
        info!(point = %kiosk.point.id, "kiosk connected");
        serve(&state, &mut kiosk, &mut conn).await;
        // The switchboard first, then media: an offer racing this end is refused or its
        // peer removed (see `MediaService::connection_closed`).
        state.switchboard.close_kiosk(&kiosk.device.id, conn_id);
        state.media.connection_closed(conn_id);
        // The last sign of life, for the operations console's health view.
        let _ = state
            .store
            .touch_device(&kiosk.device.id, state.clock.now_ms())
            .await;
        info!("kiosk disconnected");
    }
    state.metrics.connection_closed(ClientKind::Kiosk);
}

async fn handshake(state: &AppState, conn: &mut Conn, conn_id: ConnId) -> Option<Kiosk> {
    let wait = Duration::from_secs(state.config.limits.handshake_timeout_secs);
    let Ok(Incoming::Text(text)) = tokio::time::timeout(wait, conn.recv()).await else {
        conn.close(close_code::POLICY, "hello expected").await;
        return None;
    };
    let Ok(KioskToRelay::Hello {
        protocol_versions,
        device_id,
        secret,
        agent_version,
    }) = parse::<KioskToRelay>(&text)
    else {
        state
            .metrics
            .protocol_error(ClientKind::Kiosk, ErrorCode::BadMessage);
        conn.send_error(
            None,
            error(ErrorCode::BadMessage, "first message must be hello"),
        )
        .await;
        conn.close(close_code::POLICY, "hello expected").await;
        return None;
    };
    let Some(version) = negotiate_version(&protocol_versions) else {
        state
            .metrics
            .protocol_error(ClientKind::Kiosk, ErrorCode::UnsupportedVersion);
        conn.send_error(
            None,
            error(
                ErrorCode::UnsupportedVersion,
                "unsupported protocol version; update the agent",
            ),
        )
        .await;
        conn.close(close_code::POLICY, "unsupported version").await;
        return None;
    };
    let device = match authenticate_device(state, &device_id, &secret, DeviceKind::Kiosk).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            // Debug formatting escapes line breaks: a device id cannot plant fake log lines.
            warn!(device = ?device_id, "kiosk authentication failed");
            state.metrics.auth_failure(ClientKind::Kiosk);
            conn.send_error(
                None,
                error(
                    ErrorCode::Unauthenticated,
                    "设备认证失败 / device authentication failed",
                ),
            )
            .await;
            conn.close(close_code::POLICY, "authentication failed")
                .await;
            return None;
        }
        Err(e) => {
            warn!(error = %e, "device lookup failed");
            conn.close(close_code::TRY_AGAIN_LATER, "try again later")
                .await;
            return None;
        }
    };
    let point = match &device.extension_point_id {
        Some(id) => state.store.extension_point(id).await.ok().flatten(),
        None => None,
    };
    let Some(point) = point.filter(|p| p.centre_id == device.centre_id) else {
        conn.send_error(
            None,
            error(
                ErrorCode::Forbidden,
                "设备未登记到延伸点 / the device is not registered to an extension point",
            ),
        )
        .await;
        conn.close(close_code::POLICY, "not registered").await;
        return None;
    };
    if !crate::registry::admits_kiosks(&point) {
        state
            .metrics
            .protocol_error(ClientKind::Kiosk, ErrorCode::Forbidden);
        conn.send_error(
            None,
            error(
                ErrorCode::Forbidden,
                "延伸点已关闭 / the extension point is closed",
            ),
        )
        .await;
        conn.close(close_code::POLICY, "extension point closed")
            .await;
        return None;
    }
    let centre = state.store.centre(&device.centre_id).await.ok().flatten();
    let queue = state.hub.centre(&device.centre_id).await.ok();
    let (Some(centre), Some(queue)) = (centre, queue) else {
        conn.close(close_code::TRY_AGAIN_LATER, "queue unavailable")
            .await;
        return None;
    };
    let Ok(mut status) = queue.watch_device(&device.id).await else {
        conn.close(close_code::TRY_AGAIN_LATER, "queue unavailable")
            .await;
        return None;
    };
    let Ok(view) = queue.view().await else {
        conn.close(close_code::TRY_AGAIN_LATER, "queue unavailable")
            .await;
        return None;
    };
    let Ok(mut staffing) = queue.watch_staffing().await else {
        conn.close(close_code::TRY_AGAIN_LATER, "queue unavailable")
            .await;
        return None;
    };
    // One live connection per device: the newest wins (the switchboard closes the older), so
    // a kiosk that reconnects after a network change is not locked out by its own half-dead
    // old connection.
    let line = state.switchboard.open_kiosk(&device.id, conn_id);
    let _ = state
        .store
        .touch_device(&device.id, state.clock.now_ms())
        .await;
    let welcome_ticket = status.borrow_and_update().clone();
    let mut clerk_card = None;
    let ticket = match welcome_ticket {
        Some(t) => Some(with_clerk_card(state, &mut clerk_card, t).await),
        None => None,
    };
    let welcome = RelayToKiosk::Welcome {
        protocol_version: version,
        device_id: device.id.clone(),
        extension_point: ExtensionPointInfo {
            id: point.id.clone(),
            name: point.name.clone(),
            phone: point.phone.clone(),
            service_hours: point.service_hours.clone(),
            hours: point.hours.clone(),
        },
        centre: CentreInfo {
            id: centre.id,
            name: centre.name,
        },
        categories: view.categories,
        ticket,
        server_time_ms: state.clock.now_ms(),
        heartbeat_interval_ms: u64::try_from(HEARTBEAT_INTERVAL.as_millis()).unwrap_or(15_000),
        ice_servers: state.media.ice_servers(&device.id, state.clock.now_ms()),
    };
    info!(agent_version = ?agent_version, "kiosk hello");
    let categories = staffing.borrow_and_update().as_ref().clone();
    let categories = kiosk_appointments::with_next_openings(
        &state.kiosk_desk,
        &point.centre_id,
        categories,
        state.clock.now_ms(),
    )
    .await;
    if !conn.send(&welcome).await || !conn.send(&RelayToKiosk::Staffing { categories }).await {
        state.switchboard.close_kiosk(&device.id, conn_id);
        return None;
    }
    Some(Kiosk {
        line,
        device,
        point,
        queue,
        status,
        staffing,
        clerk_card,
        last_touch: Instant::now(),
    })
}

async fn serve(state: &AppState, kiosk: &mut Kiosk, conn: &mut Conn) {
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => {
                conn.close(close_code::GOING_AWAY, "relay restarting").await;
                return;
            }
            changed = kiosk.line.close.changed() => {
                let reason = *kiosk.line.close.borrow_and_update();
                match (changed, reason) {
                    (Ok(()), Some(CloseReason::Replaced)) => {
                        conn.close(REPLACED, "replaced by a newer connection").await;
                    }
                    (Ok(()), Some(CloseReason::Revoked)) => {
                        conn.close(REVOKED, "device closed in the registry").await;
                    }
                    _ => conn.close(close_code::GOING_AWAY, "relay restarting").await,
                }
                return;
            }
            incoming = conn.recv() => match incoming {
                Incoming::Gone => return,
                Incoming::Text(text) => {
                    if !handle(state, kiosk, conn, &text).await {
                        return;
                    }
                }
            },
            Some(message) = kiosk.line.outbox.recv() => {
                if !conn.send(&message).await {
                    return;
                }
            }
            changed = kiosk.staffing.changed() => {
                if changed.is_err() {
                    return;
                }
                let categories = kiosk.staffing.borrow_and_update().as_ref().clone();
                let categories = kiosk_appointments::with_next_openings(
                    &state.kiosk_desk,
                    &kiosk.point.centre_id,
                    categories,
                    state.clock.now_ms(),
                )
                .await;
                if !conn.send(&RelayToKiosk::Staffing { categories }).await {
                    return;
                }
            }
            changed = kiosk.status.changed() => {
                if changed.is_err() {
                    return;
                }
                let status = kiosk.status.borrow_and_update().clone();
                if let Some(ticket) = status {
                    let ticket = with_clerk_card(state, &mut kiosk.clerk_card, ticket).await;
                    if !conn.send(&RelayToKiosk::TicketStatus { ticket }).await {
                        return;
                    }
                }
            }
        }
    }
}

async fn handle(state: &AppState, kiosk: &mut Kiosk, conn: &mut Conn, text: &str) -> bool {
    let message = match parse::<KioskToRelay>(text) {
        Ok(m) => m,
        Err(bad) => return conn.reject_bad(&bad).await,
    };
    match message {
        KioskToRelay::Hello { .. } => {
            conn.send_error(
                None,
                error(ErrorCode::InvalidState, "already authenticated"),
            )
            .await
        }
        KioskToRelay::MediaOffer { request_id, sdp } => {
            match state
                .media
                .kiosk_offer(&kiosk.device.id, kiosk.line.conn, sdp)
                .await
            {
                Ok(sdp) => {
                    conn.send(&RelayToKiosk::MediaAnswer { request_id, sdp })
                        .await
                }
                Err(e) => {
                    warn!(error = %e, "media offer refused");
                    let body = e.body();
                    state.metrics.protocol_error(ClientKind::Kiosk, body.code);
                    conn.send_error(Some(request_id), body).await
                }
            }
        }
        KioskToRelay::Evaluation {
            request_id,
            evaluation,
        } => {
            let evaluation_id = evaluation.evaluation_id.clone();
            match state.evaluations.receive(&kiosk.device, evaluation).await {
                Ok(duplicate) => {
                    conn.send(&RelayToKiosk::EvaluationStored {
                        request_id,
                        evaluation_id,
                        duplicate,
                    })
                    .await
                }
                Err(body) => refused_body(state, conn, request_id, body).await,
            }
        }
        KioskToRelay::Device { message } => {
            let now = state.clock.now_ms();
            crate::registry::health::observe(&state.registry, &kiosk.device.id, &message, now)
                .await;
            state
                .switchboard
                .from_kiosk(&kiosk.device.id, kiosk.line.conn, message);
            true
        }
        KioskToRelay::Heartbeat { seq } => {
            if kiosk.last_touch.elapsed() >= TOUCH_EVERY {
                kiosk.last_touch = Instant::now();
                let _ = state
                    .store
                    .touch_device(&kiosk.device.id, state.clock.now_ms())
                    .await;
            }
            conn.send(&RelayToKiosk::HeartbeatAck {
                seq,
                server_time_ms: state.clock.now_ms(),
            })
            .await
        }
        KioskToRelay::TakeTicket {
            request_id,
            category_id,
        } => {
            if let Some(hours) = &kiosk.point.hours
                && !hours.is_open_at(state.clock.now_ms())
            {
                let body = error(
                    ErrorCode::OutOfHours,
                    &format!(
                        "当前不在服务时间（{}）/ outside service hours",
                        hours.describe_zh()
                    ),
                );
                return refused_body(state, conn, request_id, body).await;
            }
            let refusal = {
                let staffing = kiosk.staffing.borrow();
                kiosk_appointments::walk_in_refusal(&staffing, &category_id)
            };
            if let Some(mut body) = refusal {
                // The next opening comes from the appointment service, not the queue.
                if let Some(desk) = &state.kiosk_desk
                    && let Some(at) = desk
                        .next_opening(&kiosk.point.centre_id, &category_id, state.clock.now_ms())
                        .await
                    && !body.message.contains('（')
                {
                    body.message = body.message.replacen(
                        " / ",
                        &format!(
                            "（下次开放：{}） / ",
                            kiosk_appointments::describe_time_zh(at)
                        ),
                        1,
                    );
                }
                return refused_body(state, conn, request_id, body).await;
            }
            let command = Command::Issue {
                channel: TicketChannel::Remote,
                category_id,
                appointment: None,
                device_id: Some(kiosk.device.id.clone()),
                extension_point_id: Some(kiosk.point.id.clone()),
            };
            match kiosk.queue.run(command).await {
                Ok(view) => {
                    // The queue answers before it pushes statuses: wait (briefly) for this
                    // ticket's, rather than reading whatever the watch holds yet.
                    let status = issued_status(&mut kiosk.status, view.map(|v| v.id)).await;
                    match status {
                        Some(ticket) => {
                            info!(ticket = %ticket.number, "remote ticket taken");
                            conn.send(&RelayToKiosk::TicketTaken { request_id, ticket })
                                .await
                        }
                        None => {
                            conn.send_error(Some(request_id), op_error(&OpError::Unavailable))
                                .await
                        }
                    }
                }
                Err(e) => refused(state, conn, request_id, &e).await,
            }
        }
        KioskToRelay::CheckIn { request_id, key } => {
            check_in(state, kiosk, conn, request_id, key).await
        }
        KioskToRelay::ListSlots {
            request_id,
            category_id,
        } => {
            let Some(desk) = state.kiosk_desk.clone() else {
                return refused_body(state, conn, request_id, kiosk_appointments::no_service())
                    .await;
            };
            match desk
                .slots(&kiosk.point, &category_id, state.clock.now_ms())
                .await
            {
                Ok(slots) => {
                    conn.send(&RelayToKiosk::BookingSlots {
                        request_id,
                        category_id,
                        slots,
                    })
                    .await
                }
                Err(body) => refused_body(state, conn, request_id, body).await,
            }
        }
        KioskToRelay::RequestVerification { request_id, phone } => {
            let Some(desk) = state.kiosk_desk.clone() else {
                return refused_body(state, conn, request_id, kiosk_appointments::no_service())
                    .await;
            };
            match desk
                .request_verification(&kiosk.point, &phone, state.clock.now_ms())
                .await
            {
                Ok(()) => {
                    conn.send(&RelayToKiosk::VerificationSent { request_id })
                        .await
                }
                Err(body) => refused_body(state, conn, request_id, body).await,
            }
        }
        KioskToRelay::Book {
            request_id,
            category_id,
            slot_start_ms,
            phone,
            verification_code,
            name,
        } => {
            let Some(desk) = state.kiosk_desk.clone() else {
                return refused_body(state, conn, request_id, kiosk_appointments::no_service())
                    .await;
            };
            let form = KioskBookingForm {
                category_id,
                slot_start_ms,
                phone,
                verification_code,
                name,
            };
            match desk.book(&kiosk.point, form, state.clock.now_ms()).await {
                Ok(booking) => {
                    info!("appointment booked at the kiosk");
                    conn.send(&RelayToKiosk::Booked {
                        request_id,
                        booking,
                    })
                    .await
                }
                Err(body) => refused_body(state, conn, request_id, body).await,
            }
        }
        KioskToRelay::CancelTicket {
            request_id,
            ticket_id,
        } => {
            let command = Command::ResidentCancel {
                device_id: kiosk.device.id.clone(),
                ticket_id: ticket_id.clone(),
            };
            match kiosk.queue.run(command).await {
                Ok(_) => {
                    kiosk.status.borrow_and_update();
                    conn.send(&RelayToKiosk::TicketCancelled {
                        request_id,
                        ticket_id,
                    })
                    .await
                }
                Err(e) => refused(state, conn, request_id, &e).await,
            }
        }
    }
}

/// 预约签到: the service checks the booking; an on-time one takes a ticket with its slot
/// (even before a window opens: the clerk is due by then), a late one an ordinary ticket under
/// the walk-in rule.
async fn check_in(
    state: &AppState,
    kiosk: &mut Kiosk,
    conn: &mut Conn,
    request_id: u64,
    key: protocol::control::CheckInKey,
) -> bool {
    let Some(desk) = state.kiosk_desk.clone() else {
        return refused_body(state, conn, request_id, kiosk_appointments::no_service()).await;
    };
    if kiosk_appointments::holds_live_ticket(kiosk.status.borrow().as_ref()) {
        let body = kiosk_appointments::error(
            ErrorCode::InvalidState,
            "本机已有正在等候的号，请先办理或取消 / this kiosk already holds a ticket",
        );
        return refused_body(state, conn, request_id, body).await;
    }
    let now = state.clock.now_ms();
    let outcome = match desk.check_in(&kiosk.point, &key, now).await {
        Ok(o) => o,
        Err(body) => return refused_body(state, conn, request_id, body).await,
    };
    let arrival = kiosk_appointments::arrival_of(&outcome);
    let appointment = outcome.on_time;
    if appointment.is_none() {
        let refusal = {
            let staffing = kiosk.staffing.borrow();
            kiosk_appointments::walk_in_refusal(&staffing, &outcome.category_id)
        };
        if let Some(body) = refusal {
            return refused_body(state, conn, request_id, body).await;
        }
    }
    let command = Command::Issue {
        channel: TicketChannel::Remote,
        category_id: outcome.category_id,
        appointment,
        device_id: Some(kiosk.device.id.clone()),
        extension_point_id: Some(kiosk.point.id.clone()),
    };
    let view = match kiosk.queue.run(command).await {
        Ok(view) => view,
        Err(e) => return refused(state, conn, request_id, &e).await,
    };
    let Some(ticket_id) = view.map(|v| v.id) else {
        return conn
            .send_error(Some(request_id), op_error(&OpError::Unavailable))
            .await;
    };
    // The booking is used from here on; a failure to record it leaves the ticket (the
    // resident is served) and is logged for the clerks' list.
    if let Err(e) = desk
        .confirm_check_in(&outcome.booking_id, &ticket_id, appointment.is_none())
        .await
    {
        warn!(code = ?e.code, "check-in not recorded on the booking");
    }
    match issued_status(&mut kiosk.status, Some(ticket_id)).await {
        Some(ticket) => {
            info!(ticket = %ticket.number, arrival = ?arrival, "appointment checked in");
            conn.send(&RelayToKiosk::CheckedIn {
                request_id,
                arrival,
                ticket,
            })
            .await
        }
        None => {
            conn.send_error(Some(request_id), op_error(&OpError::Unavailable))
                .await
        }
    }
}

/// The status of the ticket just issued (`ticket_id`), once the queue has pushed it; `None`
/// if it does not arrive within a few seconds.
async fn issued_status(
    status: &mut watch::Receiver<Option<KioskTicketStatus>>,
    ticket_id: Option<String>,
) -> Option<KioskTicketStatus> {
    let ticket_id = ticket_id?;
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let current = status.borrow_and_update().clone();
            if current.as_ref().is_some_and(|t| t.ticket_id == ticket_id) {
                return current;
            }
            if status.changed().await.is_err() {
                return None;
            }
        }
    })
    .await
    .ok()
    .flatten()
}

async fn refused(state: &AppState, conn: &mut Conn, request_id: u64, e: &OpError) -> bool {
    refused_body(state, conn, request_id, op_error(e)).await
}

async fn refused_body(state: &AppState, conn: &mut Conn, request_id: u64, body: ErrorBody) -> bool {
    state.metrics.protocol_error(ClientKind::Kiosk, body.code);
    conn.send_error(Some(request_id), body).await
}
