//! The clerk console's WebSocket: queue snapshot and live updates in, queue operations out.

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use protocol::control::{
    CentreInfo, ClerkToRelay, ErrorBody, ErrorCode, RelayToClerk, RelayToKiosk, negotiate_version,
};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tracing::{info, info_span};

use super::auth::{AuthClerk, clerk_info, idle_ms, login_token};
use super::error::ApiError;
use super::state::AppState;
use super::ws::{Conn, Incoming, close_code, parse};
use crate::auth::token_hash;
use crate::domain::{Clerk, Role};
use crate::metrics::ClientKind;
use crate::queue::driver::{OpError, QueueView};
use crate::queue::{Command, QueueHandle};
use crate::session::{ConnId, Presence};

pub async fn upgrade(
    State(state): State<AppState>,
    AuthClerk(clerk): AuthClerk,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    check_same_origin(&headers)?;
    // AuthClerk found the token, so it is there; the console re-checks it while open.
    let login = login_token(&headers)
        .map(|t| token_hash(&t))
        .ok_or(ApiError::Unauthenticated)?;
    let conn_id = state.switchboard.next_conn_id();
    let span = info_span!("clerk", conn = %conn_id, clerk = %clerk.id);
    let serving = state.clone();
    super::ws::accept(&state, ws, span, move |socket| {
        run_connection(serving, clerk, login, conn_id, socket)
    })
}

/// A browser sends `Origin` on WebSocket upgrades; refusing foreign origins stops another site
/// from riding the clerk's cookie (cross-site WebSocket hijacking).
pub fn check_same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get("origin").and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    if origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

fn op_error(e: &OpError) -> ErrorBody {
    match e {
        OpError::Refused(q) => q.body(),
        OpError::Store => ErrorBody {
            code: ErrorCode::Internal,
            message: "未能保存，请重试 / could not store the change, please retry".into(),
        },
        OpError::Timeout | OpError::Unavailable => ErrorBody {
            code: ErrorCode::Timeout,
            message: "叫号系统繁忙，请重试 / the queue is busy, please retry".into(),
        },
    }
}

fn forbidden() -> ErrorBody {
    ErrorBody {
        code: ErrorCode::Forbidden,
        message: "您的账号不能在窗口办理 / your account may not serve at a window".into(),
    }
}

fn snapshot(view: QueueView, request_id: Option<u64>) -> RelayToClerk {
    RelayToClerk::Snapshot {
        request_id,
        version: view.version,
        tickets: view.tickets,
        windows: view.windows,
        stats: view.stats,
        server_time_ms: view.now_ms,
    }
}

async fn run_connection(
    state: AppState,
    clerk: Clerk,
    login: String,
    conn_id: ConnId,
    socket: WebSocket,
) {
    let limits = &state.config.limits;
    let mut conn = Conn::new(
        socket,
        ClientKind::Clerk,
        state.metrics.clone(),
        Duration::from_secs(limits.idle_timeout_secs),
        limits.max_bad_messages_per_minute,
    );
    state.metrics.connection_opened(ClientKind::Clerk);
    info!("console connected");
    if let Some(queue) = handshake(&state, &clerk, &mut conn).await {
        let mut line = state
            .switchboard
            .open_console(conn_id, &clerk.centre_id, &clerk.id);
        tell_presence(&queue, &line.presence).await;
        let console = Console {
            state: &state,
            clerk: &clerk,
            login: &login,
            queue: &queue,
            conn_id,
        };
        console.serve(&mut conn, &mut line.outbox).await;
        let presence = state.switchboard.close_console(conn_id);
        state.media.connection_closed(conn_id);
        tell_presence(&queue, &presence).await;
    }
    state.metrics.connection_closed(ClientKind::Clerk);
    info!("console disconnected");
}

async fn handshake(state: &AppState, clerk: &Clerk, conn: &mut Conn) -> Option<QueueHandle> {
    let wait = Duration::from_secs(state.config.limits.handshake_timeout_secs);
    let Ok(Incoming::Text(text)) = tokio::time::timeout(wait, conn.recv()).await else {
        conn.close(close_code::POLICY, "hello expected").await;
        return None;
    };
    let version = match parse::<ClerkToRelay>(&text) {
        Ok(ClerkToRelay::Hello { protocol_versions }) => negotiate_version(&protocol_versions),
        _ => {
            state
                .metrics
                .protocol_error(ClientKind::Clerk, ErrorCode::BadMessage);
            conn.send_error(
                None,
                ErrorBody {
                    code: ErrorCode::BadMessage,
                    message: "第一条消息必须是 hello / the first message must be hello".into(),
                },
            )
            .await;
            conn.close(close_code::POLICY, "hello expected").await;
            return None;
        }
    };
    let Some(version) = version else {
        state
            .metrics
            .protocol_error(ClientKind::Clerk, ErrorCode::UnsupportedVersion);
        conn.send_error(
            None,
            ErrorBody {
                code: ErrorCode::UnsupportedVersion,
                message:
                    "协议版本不受支持，请刷新页面 / unsupported protocol version, please reload"
                        .into(),
            },
        )
        .await;
        conn.close(close_code::POLICY, "unsupported version").await;
        return None;
    };
    let centre = state.store.centre(&clerk.centre_id).await.ok().flatten();
    let queue = state.hub.centre(&clerk.centre_id).await.ok();
    let (Some(centre), Some(queue)) = (centre, queue) else {
        conn.send_error(
            None,
            ErrorBody {
                code: ErrorCode::Internal,
                message: "暂时无法连接叫号系统 / the queue is unavailable".into(),
            },
        )
        .await;
        conn.close(close_code::TRY_AGAIN_LATER, "queue unavailable")
            .await;
        return None;
    };
    let view = queue.view().await.ok()?;
    let welcome = RelayToClerk::Welcome {
        protocol_version: version,
        clerk: clerk_info(clerk),
        centre: CentreInfo {
            id: centre.id,
            name: centre.name,
        },
        windows: view.windows,
        categories: view.categories,
        server_time_ms: state.clock.now_ms(),
        ice_servers: state.media.ice_servers(&clerk.id, state.clock.now_ms()),
    };
    conn.send(&welcome).await.then_some(queue)
}

/// Tells the queue that a clerk's first console opened or their last one closed (the
/// switchboard counts them).
async fn tell_presence(queue: &QueueHandle, changes: &[Presence]) {
    for p in changes {
        let _ = queue
            .run(Command::ClerkPresence {
                clerk_id: p.clerk_id.clone(),
                connected: p.connected,
            })
            .await;
    }
}

/// One console connection of a clerk.
struct Console<'a> {
    state: &'a AppState,
    clerk: &'a Clerk,
    /// The digest of the login token the console opened with.
    login: &'a str,
    queue: &'a QueueHandle,
    conn_id: ConnId,
}

/// Close code for a console whose login has ended (logout, password change, account
/// disabled, expiry); the console shows the reason and its login form instead of reconnecting.
pub const LOGIN_ENDED: u16 = 4001;
const LOGIN_ENDED_REASON: &str = "登录已结束（已退出、改密、停用、重置验证器或超时），请重新登录";

impl Console<'_> {
    async fn serve(&self, conn: &mut Conn, outbox: &mut mpsc::Receiver<RelayToClerk>) {
        let (state, queue) = (self.state, self.queue);
        let Ok((view, mut updates)) = queue.subscribe().await else {
            return;
        };
        let mut version = view.version;
        if !conn.send(&snapshot(view, None)).await {
            return;
        }
        let mut login_check = tokio::time::interval(Duration::from_millis(
            state.config.auth.console_session_check_ms,
        ));
        login_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = state.shutdown.cancelled() => {
                    conn.close(close_code::GOING_AWAY, "relay restarting").await;
                    return;
                }
                _ = login_check.tick() => {
                    if !self.login_valid().await {
                        info!("login ended: closing the console");
                        conn.send_error(
                            None,
                            ErrorBody {
                                code: ErrorCode::Unauthenticated,
                                message: format!("{LOGIN_ENDED_REASON} / your login has ended, please log in again"),
                            },
                        )
                        .await;
                        conn.close(LOGIN_ENDED, LOGIN_ENDED_REASON).await;
                        return;
                    }
                }
                incoming = conn.recv() => match incoming {
                    Incoming::Gone => return,
                    Incoming::Text(text) => {
                        if !self.handle(conn, &text).await {
                            return;
                        }
                    }
                },
                Some(message) = outbox.recv() => {
                    if let RelayToClerk::Error { error, .. } = &message {
                        state.metrics.protocol_error(ClientKind::Clerk, error.code);
                    }
                    let message = state
                        .cases
                        .to_console(self.clerk, &state.switchboard, message)
                        .await;
                    if !conn.send(&message).await {
                        return;
                    }
                }
                update = updates.recv() => match update {
                    Ok(u) => {
                        if u.version <= version {
                            continue;
                        }
                        version = u.version;
                        let message = RelayToClerk::Update {
                            version: u.version,
                            tickets: u.tickets.clone(),
                            windows: u.windows.clone(),
                            stats: u.stats.clone(),
                            server_time_ms: u.now_ms,
                        };
                        if !conn.send(&message).await {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        // Fell behind: start again from a fresh snapshot.
                        let Ok((view, rx)) = queue.subscribe().await else { return };
                        updates = rx;
                        version = view.version;
                        if !conn.send(&snapshot(view, None)).await {
                            return;
                        }
                    }
                    Err(RecvError::Closed) => return,
                },
            }
        }
    }

    /// Whether the console's login still holds (not logged out, expired, idle, or the clerk
    /// disabled or their password changed). A store failure keeps the console open: the next
    /// check decides.
    async fn login_valid(&self) -> bool {
        let state = self.state;
        match state
            .store
            .login_clerk(
                self.login,
                state.clock.now_ms(),
                idle_ms(&state.config.auth),
            )
            .await
        {
            Ok(found) => found.is_some_and(|c| c.id == self.clerk.id),
            Err(e) => {
                tracing::warn!(error = %e, "could not re-check a console's login");
                true
            }
        }
    }

    /// Handles one message; false when the connection should end.
    async fn handle(&self, conn: &mut Conn, text: &str) -> bool {
        let (state, clerk, queue) = (self.state, self.clerk, self.queue);
        let message = match parse::<ClerkToRelay>(text) {
            Ok(m) => m,
            Err(bad) => return conn.reject_bad(&bad).await,
        };
        let may_serve = clerk.has(Role::Clerk) || clerk.has(Role::Supervisor);
        match message {
            ClerkToRelay::Hello { .. } => {
                conn.send_error(
                    None,
                    ErrorBody {
                        code: ErrorCode::InvalidState,
                        message: "已经连接 / already connected".into(),
                    },
                )
                .await
            }
            ClerkToRelay::Ping { seq } => {
                conn.send(&RelayToClerk::Pong {
                    seq,
                    server_time_ms: state.clock.now_ms(),
                })
                .await
            }
            ClerkToRelay::Snapshot { request_id } => match queue.view().await {
                Ok(view) => conn.send(&snapshot(view, Some(request_id))).await,
                Err(e) => conn.send_error(Some(request_id), op_error(&e)).await,
            },
            ClerkToRelay::OpenWindow {
                request_id,
                window_id,
            } => {
                if !may_serve {
                    state
                        .metrics
                        .protocol_error(ClientKind::Clerk, ErrorCode::Forbidden);
                    return conn.send_error(Some(request_id), forbidden()).await;
                }
                let command = Command::OpenWindow {
                    clerk_id: clerk.id.clone(),
                    clerk_name: clerk.display_name.clone(),
                    window_id: window_id.clone(),
                };
                match queue.run(command).await {
                    Ok(_) => match queue.window(&window_id).await {
                        Ok(Some(window)) => {
                            info!(window = %window_id, "signed in to window");
                            conn.send(&RelayToClerk::WindowOpened { request_id, window })
                                .await
                        }
                        Ok(None) | Err(_) => {
                            conn.send_error(Some(request_id), op_error(&OpError::Unavailable))
                                .await
                        }
                    },
                    Err(e) => refused(state, conn, request_id, &e).await,
                }
            }
            ClerkToRelay::CloseWindow { request_id } => {
                let command = Command::CloseWindow {
                    clerk_id: clerk.id.clone(),
                };
                match queue.run(command).await {
                    Ok(_) => conn.send(&RelayToClerk::WindowClosed { request_id }).await,
                    Err(e) => refused(state, conn, request_id, &e).await,
                }
            }
            ClerkToRelay::Queue { request_id, op } => {
                if !may_serve {
                    state
                        .metrics
                        .protocol_error(ClientKind::Clerk, ErrorCode::Forbidden);
                    return conn.send_error(Some(request_id), forbidden()).await;
                }
                let name = op.name();
                let command = Command::Op {
                    clerk_id: clerk.id.clone(),
                    op,
                };
                match queue.run(command).await {
                    Ok(ticket) => {
                        if let Some(t) = &ticket {
                            info!(op = name, ticket = %t.number, "queue operation");
                        }
                        conn.send(&RelayToClerk::Done { request_id, ticket }).await
                    }
                    Err(e) => refused(state, conn, request_id, &e).await,
                }
            }
            ClerkToRelay::DeviceCommand { ticket_id, command } => {
                // The switchboard checks that this console's clerk serves the ticket, and
                // answers through the outbox (a refusal is an error with the request id).
                state
                    .switchboard
                    .device_command(self.conn_id, &ticket_id, command);
                true
            }
            ClerkToRelay::MediaOffer { request_id, sdp } => {
                if !may_serve {
                    state
                        .metrics
                        .protocol_error(ClientKind::Clerk, ErrorCode::Forbidden);
                    return conn.send_error(Some(request_id), forbidden()).await;
                }
                match state.media.console_offer(self.conn_id, sdp).await {
                    Ok(sdp) => {
                        conn.send(&RelayToClerk::MediaAnswer { request_id, sdp })
                            .await
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "media offer refused");
                        let body = e.body();
                        state.metrics.protocol_error(ClientKind::Clerk, body.code);
                        conn.send_error(Some(request_id), body).await
                    }
                }
            }
            ClerkToRelay::TypeToResident {
                request_id,
                ticket_id,
                text,
            } => {
                self.type_to_resident(conn, request_id, &ticket_id, &text)
                    .await
            }
            ClerkToRelay::DeviceCancel { ticket_id, cancel } => {
                state
                    .switchboard
                    .device_cancel(self.conn_id, &ticket_id, &cancel);
                true
            }
        }
    }
}

impl Console<'_> {
    /// A message the clerk typed for the resident: checked by the switchboard (serving clerk,
    /// connected kiosk, length, rate), kept in the ticket's case (encrypted, as part of the
    /// service record), and only then sent to the kiosk. The text is never logged.
    async fn type_to_resident(
        &self,
        conn: &mut Conn,
        request_id: u64,
        ticket_id: &str,
        text: &str,
    ) -> bool {
        let state = self.state;
        let accepted = match state
            .switchboard
            .typed_message(self.conn_id, ticket_id, text)
        {
            Ok(a) => a,
            Err(body) => {
                state.metrics.protocol_error(ClientKind::Clerk, body.code);
                return conn.send_error(Some(request_id), body).await;
            }
        };
        let origin = crate::cases::CaseOrigin::of(&accepted.session);
        let stored = state
            .cases
            .store_bytes(
                &origin,
                crate::cases::kind::TYPED_MESSAGE,
                "text/plain; charset=utf-8",
                accepted.message.text.clone().into_bytes(),
                None,
                ("clerk", &self.clerk.id),
            )
            .await;
        if let Err(e) = stored {
            tracing::error!(error = %e, "a typed message could not be recorded; not sent");
            let body = ErrorBody {
                code: ErrorCode::Internal,
                message: "消息未能保存，没有发出，请重试 / the message could not be recorded and was not sent; please retry".into(),
            };
            state.metrics.protocol_error(ClientKind::Clerk, body.code);
            return conn.send_error(Some(request_id), body).await;
        }
        let delivered = state
            .switchboard
            .kiosk_conn(&accepted.session.device_id)
            .is_some_and(|kiosk| {
                state.switchboard.send_to_kiosk(
                    kiosk,
                    RelayToKiosk::TypedMessage {
                        message: accepted.message.clone(),
                    },
                )
            });
        if !delivered {
            let body = crate::session::typed::kiosk_offline();
            state.metrics.protocol_error(ClientKind::Clerk, body.code);
            return conn.send_error(Some(request_id), body).await;
        }
        info!(
            ticket = %accepted.session.ticket_number,
            message = accepted.message.message_id,
            chars = accepted.message.text.chars().count(),
            "typed message sent to the kiosk"
        );
        conn.send(&RelayToClerk::TypedMessageSent {
            request_id,
            message: accepted.message,
        })
        .await
    }
}

async fn refused(state: &AppState, conn: &mut Conn, request_id: u64, e: &OpError) -> bool {
    let body = op_error(e);
    state.metrics.protocol_error(ClientKind::Clerk, body.code);
    conn.send_error(Some(request_id), body).await
}
