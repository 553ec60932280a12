//! `network.turn`: an allocation on the relay's TURN server with its REST credentials.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use protocol::control::IceServer;
use protocol::inspection::CheckResult;

use super::problem::net;
use crate::selftest::check::bi;

const TURN_LIMIT: Duration = Duration::from_secs(6);

/// A `turn:` URL over UDP: `(host:port)`; `None` for `turns:` or TCP transports.
pub fn turn_udp_address(url: &str) -> Option<String> {
    let rest = url.strip_prefix("turn:")?;
    let (hostport, query) = rest.split_once('?').unwrap_or((rest, ""));
    if query
        .split('&')
        .any(|kv| kv.eq_ignore_ascii_case("transport=tcp"))
    {
        return None;
    }
    if hostport.is_empty() {
        return None;
    }
    // A bracketed IPv6 address or a host, with the default port when none is given.
    let has_port = match hostport.rfind(']') {
        Some(end) => hostport[end..].contains(':'),
        None => hostport.contains(':'),
    };
    Some(if has_port {
        hostport.to_owned()
    } else {
        format!("{hostport}:3478")
    })
}

/// `network.turn`: an allocation on the relay's TURN server with its REST credentials.
pub async fn check_turn(servers: &[IceServer]) -> CheckResult {
    let candidate = servers.iter().find_map(|s| {
        let (user, pass) = (s.username.as_ref()?, s.credential.as_ref()?);
        s.urls
            .iter()
            .find_map(|u| turn_udp_address(u))
            .map(|a| (a, user.clone(), pass.clone()))
    });
    let Some((address, username, password)) = candidate else {
        return net("network.turn").skipped(bi(
            "中继未配置 TURN 服务器（UDP 受限的站点将无法视频）",
            "the relay offers no TURN server over UDP (sites with blocked UDP cannot make calls)",
        ));
    };
    let started = Instant::now();
    match tokio::time::timeout(TURN_LIMIT, allocate(&address, username, password)).await {
        Ok(Ok(relayed)) => net("network.turn")
            .measure("time", started.elapsed().as_secs_f64() * 1000.0, "ms")
            .pass(bi(
                format!("TURN 中继 {address} 分配成功（中继地址 {relayed}）"),
                format!("TURN allocation on {address} succeeded (relayed address {relayed})"),
            )),
        Ok(Err(TurnProblem::Refused(detail))) => net("network.turn").fail(
            bi(format!("TURN 服务器 {address} 拒绝了中继签发的凭据（{detail}）"), format!("the TURN server {address} refused the relay-issued credentials ({detail})")),
            bi(
                "中继 [turn] 的共享密钥须与 coturn 的 static-auth-secret 一致，且 realm 相符；检查终端与服务器的时钟",
                "the relay's [turn] shared secret must equal coturn's static-auth-secret and the realm must match; check the kiosk's and the server's clocks",
            ),
        ),
        Ok(Err(TurnProblem::Other(detail))) => net("network.turn").fail(
            bi(format!("TURN 分配失败：{detail}"), format!("the TURN allocation failed: {detail}")),
            bi("检查 coturn 的运行状态与日志", "check that coturn runs, and its log"),
        ),
        Ok(Err(TurnProblem::NoAnswer)) | Err(_) => net("network.turn").fail(
            bi(format!("TURN 服务器 {address} 无应答"), format!("the TURN server {address} does not answer")),
            bi(
                "确认 coturn 正在运行；防火墙需放行到 TURN 端口（默认 UDP 3478）的出站流量",
                "check that coturn runs; firewalls must let outbound UDP to the TURN port (3478 by default) through",
            ),
        ),
    }
}

#[derive(Debug)]
enum TurnProblem {
    Refused(String),
    NoAnswer,
    Other(String),
}

/// One TURN Allocate (with the long-term credential dance) through the sans-IO client of
/// `rtc`, on a UDP socket of our own. The allocation is left to expire on the server.
async fn allocate(
    address: &str,
    username: String,
    password: String,
) -> Result<SocketAddr, TurnProblem> {
    use rtc::sansio::Protocol;
    use rtc::shared::{TransportContext, TransportMessage, TransportProtocol};
    use rtc::turn::client::{Client, ClientConfig, Event};

    let server: SocketAddr = tokio::net::lookup_host(address)
        .await
        .map_err(|e| TurnProblem::Other(format!("cannot resolve {address}: {e}")))?
        .next()
        .ok_or_else(|| TurnProblem::Other(format!("{address} does not resolve")))?;
    let bind: SocketAddr = if server.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let socket = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| TurnProblem::Other(e.to_string()))?;
    let local_addr = socket
        .local_addr()
        .map_err(|e| TurnProblem::Other(e.to_string()))?;
    let crypto = rtc::crypto::default_provider().map_err(|e| TurnProblem::Other(e.to_string()))?;
    let mut client = Client::new(
        ClientConfig {
            turn_serv_addr: server.to_string(),
            local_addr,
            transport_protocol: TransportProtocol::UDP,
            username,
            password,
            software: "rvw-agent selftest".into(),
            rto_in_ms: 200,
            ..ClientConfig::default()
        },
        crypto,
    )
    .map_err(|e| TurnProblem::Other(e.to_string()))?;
    client
        .allocate(Instant::now())
        .map_err(|e| TurnProblem::Other(e.to_string()))?;
    let mut buf = vec![0u8; 2048];
    loop {
        while let Some(out) = client.poll_write() {
            socket
                .send_to(&out.message, out.transport.peer_addr)
                .await
                .map_err(|e| TurnProblem::Other(e.to_string()))?;
        }
        while let Some(event) = client.poll_event() {
            match event {
                Event::AllocateResponse(_, relayed) => return Ok(relayed),
                Event::AllocateError(_, e) => {
                    let text = e.to_string();
                    return Err(
                        if text.contains("401")
                            || text.contains("Unauthorized")
                            || text.contains("441")
                        {
                            TurnProblem::Refused(text)
                        } else {
                            TurnProblem::Other(text)
                        },
                    );
                }
                Event::TransactionTimeout(_) => return Err(TurnProblem::NoAnswer),
                _ => {}
            }
        }
        let wake = client
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_millis(200));
        let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(wake));
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let (n, from) = received.map_err(|e| TurnProblem::Other(e.to_string()))?;
                let message = TransportMessage {
                    now: Instant::now(),
                    transport: TransportContext {
                        local_addr,
                        peer_addr: from,
                        transport_protocol: TransportProtocol::UDP,
                        ecn: None,
                    },
                    message: bytes::BytesMut::from(&buf[..n]),
                };
                // A datagram the client cannot parse is not fatal: keep waiting.
                if let Err(e) = client.handle_read(message) {
                    tracing::debug!(error = %e, "self-test TURN client ignored a datagram");
                }
            }
            () = sleep => {
                let _ = client.handle_timeout(Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_urls() {
        assert_eq!(
            turn_udp_address("turn:relay.example:3478?transport=udp").as_deref(),
            Some("relay.example:3478")
        );
        assert_eq!(
            turn_udp_address("turn:relay.example").as_deref(),
            Some("relay.example:3478")
        );
        assert_eq!(
            turn_udp_address("turn:[::1]:5000").as_deref(),
            Some("[::1]:5000")
        );
        assert_eq!(
            turn_udp_address("turn:[::1]").as_deref(),
            Some("[::1]:3478")
        );
        assert_eq!(
            turn_udp_address("turn:relay.example:443?transport=tcp"),
            None
        );
        assert_eq!(turn_udp_address("turns:relay.example:5349"), None);
        assert_eq!(turn_udp_address("stun:relay.example"), None);
    }
}
