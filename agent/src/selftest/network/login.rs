//! `network.login` and `network.media_udp` standalone: the self-test logs in on a control
//! connection of its own and offers media on it.
//!
//! The login is the control link's own: the same socket ([`Wire`]) and the same core
//! ([`ControlCore`]) for the hello, the welcome, request ids and the relay's answers; only the
//! loop that moves messages between them is this file's, since it stops at the first answer
//! instead of serving the kiosk.

use std::time::{Duration, Instant};

use protocol::control::ErrorCode;
use protocol::inspection::CheckResult;

use super::problem::{NetProblem, classify, credential_refused, net};
use crate::clock::now_ms;
use crate::link::config::{Credential, RelayConfig};
use crate::link::control::MediaSignal;
use crate::link::control::core::{ControlCore, CoreConfig, Event, Failure, Transmit};
use crate::link::control::wire::{Wire, WireError};
use crate::link::rtc::{ConnectionState, KioskPeer, PeerConfig};
use crate::selftest::check::{Check, bi};

const ICE_LIMIT: Duration = Duration::from_secs(8);

/// A logged-in control connection of the self-test's own.
pub struct Login {
    core: ControlCore,
    wire: Wire,
}

/// Why the exchange with the relay stopped.
#[derive(Debug)]
enum Down {
    /// The core gave the connection up.
    Core(Failure),
    /// The socket failed (with the relay's close code, when it closed).
    Wire(WireError),
}

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Down::Core(failure) => f.write_str(&failure.problem()),
            Down::Wire(e) => e.fmt(f),
        }
    }
}

/// `network.login`: the device logs in on the control WebSocket.
pub async fn login(
    relay: &RelayConfig,
    credential: &Credential,
    connector: &tokio_tungstenite::Connector,
) -> (CheckResult, Option<Login>) {
    let check = net("network.login");
    let limit = Duration::from_secs(relay.connect_timeout_secs.clamp(1, 10));
    let started = Instant::now();
    let config = CoreConfig {
        connect_timeout: limit,
        ..CoreConfig::new(relay)
    };
    let mut core = ControlCore::new(config, credential, started, rand::random());
    core.handle_timeout(started);
    let wire = match Wire::dial(&relay.url, connector, limit).await {
        Ok(wire) => wire,
        Err(WireError::ConnectTimeout) => return (NetProblem::Timeout.fail(check), None),
        Err(WireError::Connect(e)) => return (classify(&e).fail(check), None),
        Err(e) => return (NetProblem::Other(e.to_string()).fail(check), None),
    };
    core.handle_connected(Instant::now());
    let mut login = Login { core, wire };
    let welcomed = login
        .drive(|event| matches!(event, Event::Media(MediaSignal::Online { .. })).then_some(()))
        .await;
    let took = started.elapsed().as_secs_f64() * 1000.0;
    match welcomed {
        Ok(()) => {
            let (name, id) = login
                .core
                .state()
                .extension_point
                .as_ref()
                .map(|p| (p.name.clone(), p.id.clone()))
                .unwrap_or_default();
            (
                check.measure("time", took, "ms").pass(bi(
                    format!(
                        "设备 {} 登录成功（延伸点 {name}），用时 {took:.0} 毫秒",
                        credential.device_id
                    ),
                    format!(
                        "device {} logged in (extension point {id}) in {took:.0} ms",
                        credential.device_id
                    ),
                )),
                Some(login),
            )
        }
        Err(Down::Core(Failure::NoWelcome)) => (NetProblem::Timeout.fail(check), None),
        Err(Down::Core(Failure::Refused { code, message })) => refused_login(check, code, &message),
        Err(Down::Core(Failure::NotWelcome)) => (
            check.fail(
                bi(
                    "中继的应答不符合协议",
                    "the relay's first answer is not a welcome",
                ),
                bi(
                    "确认 relay.url 指向受理中心中继的 /ws/kiosk",
                    "check that relay.url points at the relay's /ws/kiosk",
                ),
            ),
            None,
        ),
        Err(other) => (NetProblem::Other(other.to_string()).fail(check), None),
    }
}

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// The relay refused the login.
fn refused_login(check: Check, code: ErrorCode, message: &str) -> (CheckResult, Option<Login>) {
    let result = match code {
        ErrorCode::Unauthenticated => credential_refused(check),
        ErrorCode::UnsupportedVersion => check.fail(
            bi(
                "中继不支持本终端程序的协议版本",
                "the relay does not speak this agent's protocol version",
            ),
            bi(
                "将终端程序与中继升级到配套的版本",
                "upgrade the agent and the relay to matching versions",
            ),
        ),
        _ => check.fail(
            bi(
                format!("中继拒绝登录：{message}"),
                format!("the relay refused the login: {message}"),
            ),
            bi(
                "在受理中心确认该设备已登记到延伸点并处于启用状态",
                "at the centre, check that the device is enrolled at an extension point and active",
            ),
        ),
    };
    (result, None)
}

impl Login {
    /// Runs the exchange with the relay through the core until `wanted` picks something out of
    /// the core's events, or the connection is down. The core's own deadlines (welcome,
    /// silence) bound it.
    async fn drive<T>(&mut self, mut wanted: impl FnMut(&Event) -> Option<T>) -> Result<T, Down> {
        loop {
            while let Some(transmit) = self.core.poll_transmit() {
                if let Transmit::Send(message) = transmit {
                    self.wire.send(&message).await.map_err(Down::Wire)?;
                }
            }
            while let Some(event) = self.core.poll_event() {
                if let Event::Down(failure) = event {
                    return Err(Down::Core(failure));
                }
                if let Some(found) = wanted(&event) {
                    return Ok(found);
                }
            }
            let wake = self.core.poll_timeout();
            tokio::select! {
                received = self.wire.recv() => match received {
                    Ok(message) => self.core.handle_message(Instant::now(), now_ms(), message),
                    Err(e) => return Err(Down::Wire(e)),
                },
                () = sleep_until(wake) => self.core.handle_timeout(Instant::now()),
            }
        }
    }
}

impl Login {
    /// `network.media_udp`: a media offer on this connection and an ICE + DTLS connection to
    /// the relay's SFU over UDP, without TURN.
    pub async fn check_media_udp(mut self, mut peer_config: PeerConfig) -> CheckResult {
        let check = net("network.media_udp");
        peer_config.turn = None;
        peer_config.relay_only = false;
        peer_config.gather_timeout = Duration::from_secs(2);
        let mut outcome = tokio::time::timeout(
            ICE_LIMIT + Duration::from_secs(4),
            self.connect_media(peer_config),
        )
        .await;
        // A failure because the running agent logged in again (and so took the relay's media
        // session) says nothing about the network.
        if !matches!(outcome, Ok(Ok(_))) && self.was_replaced().await {
            outcome = Ok(Err(MediaProblem::Replaced));
        }
        self.wire.close().await;
        match outcome {
            Ok(Ok((relay_candidate, took))) => check.measure("time", took, "ms").pass(bi(
                format!("与中继媒体端口 {relay_candidate} 的 UDP 连接成功，用时 {took:.0} 毫秒"),
                format!("UDP to the relay's media port {relay_candidate} works (ICE and DTLS in {took:.0} ms)"),
            )),
            Ok(Err(MediaProblem::Refused(e))) => check.fail(
                bi(format!("中继拒绝了媒体协商：{e}"), format!("the relay refused the media offer: {e}")),
                bi("检查中继的 [media] 配置与日志", "check the relay's [media] configuration and log"),
            ),
            Ok(Err(MediaProblem::NoConnection(endpoint))) => no_udp(check, &endpoint),
            Ok(Err(MediaProblem::Replaced)) => check.warn(
                bi(
                    "未能检查：同一设备又在别处登录了中继（终端服务仍在运行？），本次自检的连接被替换",
                    "not checked: the same device logged in to the relay again (is the agent service still running?), replacing the self-test's connection",
                ),
                bi(
                    "先停止终端服务（systemctl stop rvw-agent）再用 --standalone 检查，或不加 --standalone 在运行中的终端程序内检查",
                    "stop the agent service (systemctl stop rvw-agent) before checking with --standalone, or check without --standalone inside the running agent",
                ),
            ),
            Err(_) => no_udp(check, ""),
            Ok(Err(MediaProblem::Local(e))) => check.fail(
                bi(format!("本机媒体组件出错：{e}"), format!("the kiosk's media stack failed: {e}")),
                bi("检查 [media] udp_bind 配置；重启终端程序", "check [media] udp_bind; restart the agent"),
            ),
        }
    }

    async fn connect_media(
        &mut self,
        peer_config: PeerConfig,
    ) -> Result<(String, f64), MediaProblem> {
        let started = Instant::now();
        let peer = KioskPeer::new(peer_config)
            .await
            .map_err(|e| MediaProblem::Local(e.to_string()))?;
        let result = async {
            let offer = peer
                .create_offer()
                .await
                .map_err(|e| MediaProblem::Local(e.to_string()))?;
            let request_id = 1;
            if !self.core.handle_media_offer(request_id, offer) {
                return Err(MediaProblem::Refused("not logged in".into()));
            }
            let answer = self
                .drive(|event| match event {
                    Event::Media(MediaSignal::Answer {
                        request_id: id,
                        sdp,
                    }) if *id == request_id => Some(Ok(sdp.clone())),
                    Event::RelayError {
                        request_id: Some(id),
                        message,
                        ..
                    } if *id == request_id => Some(Err(message.clone())),
                    _ => None,
                })
                .await
                .map_err(refused)?
                .map_err(MediaProblem::Refused)?;
            let endpoint = relay_candidate(&answer).unwrap_or_default();
            peer.apply_answer(&answer)
                .await
                .map_err(|e| MediaProblem::Refused(e.to_string()))?;
            let mut state = peer.state();
            let connected = tokio::time::timeout(ICE_LIMIT, async {
                loop {
                    match *state.borrow_and_update() {
                        ConnectionState::Connected => return true,
                        ConnectionState::Failed | ConnectionState::Closed => return false,
                        _ => {}
                    }
                    if state.changed().await.is_err() {
                        return false;
                    }
                }
            })
            .await
            .unwrap_or(false);
            if connected {
                Ok((endpoint, started.elapsed().as_secs_f64() * 1000.0))
            } else {
                Err(MediaProblem::NoConnection(endpoint))
            }
        }
        .await;
        let _ = peer.close().await;
        result
    }
}

#[derive(Debug)]
enum MediaProblem {
    Refused(String),
    /// ICE did not connect; the relay's candidate, when its answer named one.
    NoConnection(String),
    Local(String),
    /// The relay closed this login for a newer one of the same device.
    Replaced,
}

/// The close code the relay gives a kiosk connection a newer login of the same device
/// replaced.
const REPLACED_CLOSE: u16 = 4000;

fn refused(down: Down) -> MediaProblem {
    match down {
        Down::Wire(WireError::Closed {
            code: Some(REPLACED_CLOSE),
            ..
        }) => MediaProblem::Replaced,
        other => MediaProblem::Refused(other.to_string()),
    }
}

impl Login {
    /// Whether the relay has closed this connection for a newer one of the same device (looks
    /// at what is already there, for at most half a second).
    async fn was_replaced(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
        loop {
            match tokio::time::timeout_at(deadline, self.wire.recv()).await {
                Ok(Err(WireError::Closed {
                    code: Some(code), ..
                })) => return code == REPLACED_CLOSE,
                Ok(Err(_)) | Err(_) => return false,
                Ok(Ok(_)) => {}
            }
        }
    }
}

fn no_udp(check: Check, endpoint: &str) -> CheckResult {
    let endpoint = if endpoint.is_empty() {
        String::new()
    } else {
        format!(" {endpoint}")
    };
    check.fail(
        bi(format!("无法通过 UDP 连接中继媒体端口{endpoint}"), format!("no UDP connection to the relay's media port{endpoint}")),
        bi(
            "防火墙需放行到中继媒体端口的出站 UDP；不能放行时，通话只能经 TURN 中继（见 TURN 检查）",
            "firewalls must let outbound UDP to the relay's media port through; otherwise calls can only go through TURN (see the TURN check)",
        ),
    )
}

/// The relay's UDP host candidate in its answer, `ip:port`.
pub fn relay_candidate(sdp: &str) -> Option<String> {
    sdp.lines().find_map(|line| {
        let fields: Vec<&str> = line
            .strip_prefix("a=candidate:")?
            .split_whitespace()
            .collect();
        // foundation component transport priority address port "typ" type
        (fields.len() >= 8 && fields[2].eq_ignore_ascii_case("udp")).then(|| {
            if fields[4].contains(':') {
                format!("[{}]:{}", fields[4], fields[5])
            } else {
                format!("{}:{}", fields[4], fields[5])
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_candidate_is_found_in_an_answer() {
        let sdp = "v=0\r\na=candidate:1 1 udp 2130706431 203.0.113.7 50000 typ host\r\n";
        assert_eq!(relay_candidate(sdp).as_deref(), Some("203.0.113.7:50000"));
        assert_eq!(relay_candidate("v=0\r\n"), None);
    }
}
