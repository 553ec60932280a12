//! The network checks: the relay over HTTPS with a valid certificate, the device login on the
//! control WebSocket, UDP to the relay's media port (an ICE connection to its SFU), a TURN
//! allocation with the relay-issued REST credentials, round-trip time, an uplink estimate and
//! the clock offset to the relay.
//!
//! Two ways to run: standalone (`agent selftest` with no agent running) logs in on a control
//! connection of its own and offers media on it; inside the running agent (technician page,
//! daily run) a second login would replace the agent's own connection at the relay, so login
//! and media UDP are read from the running link and media session instead. The HTTPS checks
//! (`protocol::selftest` probes) are the same either way.
//!
//! Every step has its own bound; nothing here reads the credential into a log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use protocol::Pii;
use protocol::control::{
    ErrorCode, IceServer, KioskToRelay, PROTOCOL_VERSION, RelayToKiosk, negotiate_version,
};
use protocol::inspection::CheckResult;
use protocol::selftest::{
    ICE_SERVERS_PATH, IceServersProbe, TIME_PATH, TimeProbe, UPLOAD_PATH, UploadProbe,
};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::check::{Check, bi};
use crate::clock::now_ms_f64;
use crate::config::{Credential, RelayConfig};
use crate::link::rtc::{ConnectionState, KioskPeer, PeerConfig};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Round-trip time above which calls suffer (warn), and above which they hardly work (fail).
pub const RTT_WARN_MS: f64 = 200.0;
pub const RTT_FAIL_MS: f64 = 1000.0;
/// The kiosk sends about 1.7 Mbit/s in a call (camera, document preview, audio).
pub const UPLINK_WARN_MBPS: f64 = 2.0;
pub const UPLINK_FAIL_MBPS: f64 = 0.5;
/// Clock offsets: logs and records get confusing (warn); TURN credentials and certificates
/// stop working (fail).
pub const CLOCK_WARN_MS: f64 = 2_000.0;
pub const CLOCK_FAIL_MS: f64 = 300_000.0;

const REQUEST_LIMIT: Duration = Duration::from_secs(8);
const TIME_SAMPLES: usize = 5;
const TURN_LIMIT: Duration = Duration::from_secs(6);
const ICE_LIMIT: Duration = Duration::from_secs(8);
/// The uplink probe sends growing bodies until one takes this long (or the sizes run out).
const UPLINK_ENOUGH: Duration = Duration::from_millis(800);
const UPLINK_SIZES: [usize; 3] = [256 * 1024, 2 * 1024 * 1024, 8 * 1024 * 1024];

fn net(id: &'static str) -> Check {
    Check::new(id, None)
}

/// Why a connection to the relay failed, in terms a technician can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetProblem {
    /// The certificate did not verify (reason from rustls).
    Certificate(String),
    Refused,
    Dns,
    Timeout,
    Other(String),
}

impl NetProblem {
    fn text(&self) -> (String, String) {
        match self {
            NetProblem::Certificate(r) => (
                format!("中继的证书无效（{r}）"),
                format!("the relay's certificate is not valid ({r})"),
            ),
            NetProblem::Refused => (
                "中继拒绝连接（端口未开放或服务未运行）".into(),
                "the relay refused the connection (port closed or service down)".into(),
            ),
            NetProblem::Dns => (
                "无法解析中继的域名".into(),
                "the relay's name does not resolve".into(),
            ),
            NetProblem::Timeout => (
                "连接中继超时".into(),
                "connecting to the relay timed out".into(),
            ),
            NetProblem::Other(e) => (
                format!("无法连接中继：{e}"),
                format!("cannot reach the relay: {e}"),
            ),
        }
    }

    fn remedy(&self) -> (&'static str, &'static str) {
        match self {
            NetProblem::Certificate(_) => (
                "检查终端时间是否正确；检查中继证书是否过期、域名是否与 relay.url 一致；中继使用自签证书时在 relay.ca_file 中配置该证书",
                "check the kiosk's clock; check that the relay's certificate has not expired and names the host in relay.url; for a self-signed relay, set relay.ca_file",
            ),
            NetProblem::Refused => (
                "确认 relay.url 的地址和端口正确、中继服务正在运行、防火墙放行该端口",
                "check relay.url's host and port, that the relay is running, and that firewalls let the port through",
            ),
            NetProblem::Dns => (
                "检查网络的 DNS 设置与 relay.url 中的域名",
                "check the network's DNS settings and the host name in relay.url",
            ),
            NetProblem::Timeout | NetProblem::Other(_) => (
                "检查网线或无线连接、路由器与防火墙；确认能访问互联网或政务网",
                "check the cable or Wi-Fi, the router and firewalls; check that the internet (or government network) is reachable",
            ),
        }
    }

    fn fail(&self, check: Check) -> CheckResult {
        let (zh, en) = self.text();
        let (rzh, ren) = self.remedy();
        check.fail(bi(zh, en), bi(rzh, ren))
    }
}

/// Classifies an error by walking its sources: rustls certificate errors, refused
/// connections, name resolution, time-outs.
pub fn classify(error: &(dyn std::error::Error + 'static)) -> NetProblem {
    let mut text = error.to_string();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return match tls {
                rustls::Error::InvalidCertificate(reason) => {
                    NetProblem::Certificate(format!("{reason:?}"))
                }
                other => NetProblem::Certificate(other.to_string()),
            };
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return NetProblem::Refused,
                std::io::ErrorKind::TimedOut => return NetProblem::Timeout,
                _ => {}
            }
            if let Some(inner) = io.get_ref()
                && let Some(tls) = inner.downcast_ref::<rustls::Error>()
            {
                return NetProblem::Certificate(match tls {
                    rustls::Error::InvalidCertificate(reason) => format!("{reason:?}"),
                    other => other.to_string(),
                });
            }
        }
        let s = e.to_string();
        if s.contains("dns error")
            || s.contains("failed to lookup address")
            || s.contains("Name or service not known")
        {
            return NetProblem::Dns;
        }
        if s.contains("Connection refused") {
            return NetProblem::Refused;
        }
        if s.contains("certificate") || s.contains("UnknownIssuer") {
            return NetProblem::Certificate(s);
        }
        text = s;
        current = e.source();
    }
    NetProblem::Other(text)
}

/// The relay's HTTPS side, with the control link's TLS roots and the device credential.
pub struct RelayHttp {
    base: url::Url,
    plain: bool,
    client: reqwest::Client,
    authorization: Pii<String>,
}

impl RelayHttp {
    pub fn new(
        relay: &RelayConfig,
        credential: &Credential,
        connector: &Connector,
    ) -> Result<RelayHttp, String> {
        let mut base = url::Url::parse(&relay.url).map_err(|e| e.to_string())?;
        let plain = match base.scheme() {
            "wss" => false,
            "ws" => true,
            other => return Err(format!("relay.url has scheme {other}")),
        };
        base.set_scheme(if plain { "http" } else { "https" })
            .map_err(|()| "relay.url".to_owned())?;
        base.set_path("/");
        base.set_query(None);
        let mut builder = reqwest::Client::builder()
            .timeout(REQUEST_LIMIT)
            .connect_timeout(Duration::from_secs(relay.connect_timeout_secs.min(8)))
            .pool_max_idle_per_host(1);
        if let Connector::Rustls(tls) = connector {
            builder = builder.tls_backend_preconfigured((**tls).clone());
        }
        Ok(RelayHttp {
            base,
            plain,
            client: builder.build().map_err(|e| e.to_string())?,
            authorization: Pii::new(format!(
                "Bearer {}:{}",
                credential.device_id,
                credential.secret.expose()
            )),
        })
    }

    fn url(&self, path: &str) -> String {
        let mut u = self.base.clone();
        u.set_path(path);
        u.to_string()
    }

    pub fn host(&self) -> String {
        self.base.host_str().unwrap_or_default().to_owned()
    }

    pub fn base(&self) -> &url::Url {
        &self.base
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn authorization(&self) -> &str {
        self.authorization.expose()
    }
}

/// `network.https`: the relay answers over HTTPS, its certificate verified.
pub async fn check_https(http: &RelayHttp) -> CheckResult {
    let started = Instant::now();
    let result = http.client.get(http.url("/healthz")).send().await;
    let took = started.elapsed().as_secs_f64() * 1000.0;
    let check = net("network.https");
    match result {
        Ok(r) if r.status().is_success() => {
            let check = check.measure("time", took, "ms");
            if http.plain {
                check.warn(
                    bi(
                        format!("中继可达，但使用未加密的 HTTP（开发模式）：{}", http.host()),
                        format!(
                            "the relay answers, but over plain HTTP (development mode): {}",
                            http.host()
                        ),
                    ),
                    bi(
                        "正式部署请使用 wss:// 地址与有效证书",
                        "use a wss:// address with a valid certificate in production",
                    ),
                )
            } else {
                check.pass(bi(
                    format!(
                        "中继 {} 可通过 HTTPS 访问，证书有效，用时 {took:.0} 毫秒",
                        http.host()
                    ),
                    format!(
                        "the relay {} answers over HTTPS with a valid certificate in {took:.0} ms",
                        http.host()
                    ),
                ))
            }
        }
        Ok(r) => check.fail(
            bi(
                format!("中继应答异常（HTTP {}）", r.status().as_u16()),
                format!("the relay answered HTTP {}", r.status().as_u16()),
            ),
            bi(
                "确认 relay.url 指向受理中心的中继服务，而不是其他网站或代理",
                "check that relay.url points at the centre's relay, not another site or a proxy",
            ),
        ),
        Err(e) => classify(&e).fail(check),
    }
}

/// Figures from the relay's time probe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub rtt_ms: f64,
    /// Relay clock minus kiosk clock.
    pub offset_ms: f64,
}

/// Round-trip time (median of the samples) and the clock offset (from the fastest sample, as
/// NTP does) from timed `GET /api/v1/selftest/time` requests on one kept-alive connection.
pub async fn measure_time(http: &RelayHttp) -> Result<Timing, NetProblem> {
    let url = http.url(TIME_PATH);
    // The first request pays for the TLS handshake: not a sample.
    let _ = http
        .client
        .get(&url)
        .send()
        .await
        .map_err(|e| classify(&e))?;
    let mut samples = Vec::new();
    for _ in 0..TIME_SAMPLES {
        let sent = now_ms_f64();
        let started = Instant::now();
        let response = http
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let probe: TimeProbe = response
            .json()
            .await
            .map_err(|e| NetProblem::Other(e.to_string()))?;
        let rtt = started.elapsed().as_secs_f64() * 1000.0;
        samples.push((rtt, probe.server_time_ms as f64 - (sent + rtt / 2.0)));
    }
    Ok(timing_from(&samples))
}

/// Median round-trip time; offset of the fastest sample.
pub fn timing_from(samples: &[(f64, f64)]) -> Timing {
    let mut rtts: Vec<f64> = samples.iter().map(|s| s.0).collect();
    rtts.sort_by(f64::total_cmp);
    let rtt_ms = rtts.get(rtts.len() / 2).copied().unwrap_or(f64::NAN);
    let offset_ms = samples
        .iter()
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map_or(f64::NAN, |s| s.1);
    Timing { rtt_ms, offset_ms }
}

/// `network.rtt` and `network.clock` from a measurement.
pub fn judge_timing(timing: Result<Timing, NetProblem>) -> Vec<CheckResult> {
    let t = match timing {
        Ok(t) => t,
        Err(p) => {
            let (zh, en) = p.text();
            return vec![
                p.fail(net("network.rtt")),
                net("network.clock")
                    .skipped(bi(format!("未检查：{zh}"), format!("not checked: {en}"))),
            ];
        }
    };
    let rtt = net("network.rtt").measure("rtt", t.rtt_ms, "ms");
    let rtt = if t.rtt_ms > RTT_FAIL_MS {
        rtt.fail(
            bi(format!("往返时延 {:.0} 毫秒，视频通话无法正常进行", t.rtt_ms), format!("round-trip time {:.0} ms: calls will not work", t.rtt_ms)),
            bi("检查网络拥塞与线路质量；必要时改用有线网络或更换运营商线路", "check the line's congestion and quality; use a wired connection or another line if needed"),
        )
    } else if t.rtt_ms > RTT_WARN_MS {
        rtt.warn(
            bi(
                format!("往返时延偏高：{:.0} 毫秒", t.rtt_ms),
                format!("high round-trip time: {:.0} ms", t.rtt_ms),
            ),
            bi(
                "检查网络拥塞；视频通话期间避免大文件下载",
                "check for congestion; avoid big downloads during calls",
            ),
        )
    } else {
        rtt.pass(bi(
            format!("往返时延 {:.1} 毫秒", t.rtt_ms),
            format!("round-trip time {:.1} ms", t.rtt_ms),
        ))
    };
    let clock = net("network.clock").measure("offset", t.offset_ms, "ms");
    let off = t.offset_ms.abs();
    let clock_remedy = bi(
        "开启终端的网络时间同步（如 systemd-timesyncd，NTP 服务器指向受理中心或运营商的时间服务器）",
        "turn on network time sync on the kiosk (e.g. systemd-timesyncd, pointed at the centre's or the carrier's NTP server)",
    );
    let clock = if off > CLOCK_FAIL_MS {
        clock.fail(
            bi(format!("终端时钟与中继相差 {:.0} 秒，证书与中继凭据会失效", t.offset_ms / 1000.0), format!("the kiosk's clock is {:.0} s off the relay's: certificates and TURN credentials will fail", t.offset_ms / 1000.0)),
            clock_remedy,
        )
    } else if off > CLOCK_WARN_MS {
        clock.warn(
            bi(
                format!("终端时钟与中继相差 {:.1} 秒", t.offset_ms / 1000.0),
                format!(
                    "the kiosk's clock is {:.1} s off the relay's",
                    t.offset_ms / 1000.0
                ),
            ),
            clock_remedy,
        )
    } else {
        // Whole milliseconds, without a "-0".
        let ms = t.offset_ms.round() + 0.0;
        clock.pass(bi(
            format!("终端时钟与中继相差 {ms:.0} 毫秒"),
            format!("clock offset to the relay {ms:.0} ms"),
        ))
    };
    vec![rtt, clock]
}

/// `network.uplink`: growing bodies to the relay's upload probe, timed where they arrive.
pub async fn check_uplink(http: &RelayHttp) -> CheckResult {
    let url = http.url(UPLOAD_PATH);
    let mut best: Option<(u64, f64)> = None;
    for size in UPLINK_SIZES {
        let body = vec![0x5Au8; size];
        let started = Instant::now();
        let response = http
            .client
            .post(&url)
            .header("authorization", http.authorization())
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await;
        let client_elapsed = started.elapsed();
        let probe = match response {
            Ok(r) if r.status().is_success() => match r.json::<UploadProbe>().await {
                Ok(p) => p,
                Err(e) => {
                    return net("network.uplink").fail(
                        bi(
                            format!("测速应答无法识别：{e}"),
                            format!("the relay's answer did not parse: {e}"),
                        ),
                        bi(
                            "确认中继版本支持终端自检",
                            "check that the relay's version supports the kiosk self-test",
                        ),
                    );
                }
            },
            Ok(r) if r.status().as_u16() == 401 => {
                return credential_refused(net("network.uplink"));
            }
            Ok(r) => {
                if best.is_some() {
                    break;
                }
                return net("network.uplink").fail(
                    bi(
                        format!("中继拒绝测速数据（HTTP {}）", r.status().as_u16()),
                        format!("the relay refused the probe (HTTP {})", r.status().as_u16()),
                    ),
                    bi(
                        "确认中继版本支持终端自检",
                        "check that the relay's version supports the kiosk self-test",
                    ),
                );
            }
            Err(e) if best.is_some() && e.is_timeout() => break,
            Err(e) => return classify(&e).fail(net("network.uplink")),
        };
        // The relay's own timing excludes its authentication; a tiny body can arrive in one
        // read, so the client's time bounds it from below.
        let secs = (probe.elapsed_us as f64 / 1e6)
            .max(client_elapsed.as_secs_f64() / 4.0)
            .max(1e-4);
        best = Some((probe.bytes, probe.bytes as f64 * 8.0 / secs / 1e6));
        if client_elapsed >= UPLINK_ENOUGH {
            break;
        }
    }
    let Some((bytes, mbps)) = best else {
        return net("network.uplink").fail(
            bi("未能测速", "no uplink measurement"),
            bi("检查网络", "check the network"),
        );
    };
    let check = net("network.uplink")
        .measure("uplink", mbps, "Mbit/s")
        .measure("bytes", bytes as f64, "B");
    if mbps < UPLINK_FAIL_MBPS {
        check.fail(
            bi(format!("上行带宽约 {mbps:.1} Mbit/s，不足以进行视频通话"), format!("uplink about {mbps:.1} Mbit/s: too little for a video call")),
            bi("视频通话需要至少 2 Mbit/s 上行：检查线路带宽，或关闭占用上行的其他设备", "a call needs at least 2 Mbit/s up: check the line, or stop other devices using the uplink"),
        )
    } else if mbps < UPLINK_WARN_MBPS {
        check.warn(
            bi(
                format!("上行带宽偏低：约 {mbps:.1} Mbit/s"),
                format!("low uplink: about {mbps:.1} Mbit/s"),
            ),
            bi(
                "视频通话需要至少 2 Mbit/s 上行：检查线路带宽",
                "a call needs at least 2 Mbit/s up: check the line",
            ),
        )
    } else {
        check.pass(bi(
            format!("上行带宽约 {mbps:.1} Mbit/s"),
            format!("uplink about {mbps:.1} Mbit/s"),
        ))
    }
}

fn credential_refused(check: Check) -> CheckResult {
    check.fail(
        bi("中继拒绝了本终端的设备凭据（unauthenticated）", "the relay refused this kiosk's device credential"),
        bi(
            "确认 relay.credential_file 中的凭据与登记时一致；若设备已重新登记或被停用，请在中继重新执行 enroll-device 并更新凭据文件",
            "check that relay.credential_file holds the credential from enrollment; if the device was re-enrolled or disabled, run enroll-device on the relay again and update the file",
        ),
    )
}

/// The relay-issued ICE servers, or the failed `network.turn` result.
pub async fn fetch_ice_servers(http: &RelayHttp) -> Result<IceServersProbe, CheckResult> {
    let response = http
        .client
        .get(http.url(ICE_SERVERS_PATH))
        .header("authorization", http.authorization())
        .send()
        .await
        .map_err(|e| classify(&e).fail(net("network.turn")))?;
    match response.status().as_u16() {
        200 => response.json::<IceServersProbe>().await.map_err(|e| {
            net("network.turn").fail(
                bi(
                    format!("中继应答无法识别：{e}"),
                    format!("the relay's answer did not parse: {e}"),
                ),
                bi(
                    "确认中继版本支持终端自检",
                    "check that the relay's version supports the kiosk self-test",
                ),
            )
        }),
        401 => Err(credential_refused(net("network.turn"))),
        status => Err(net("network.turn").fail(
            bi(
                format!("无法取得中继凭据（HTTP {status}）"),
                format!("no TURN credentials from the relay (HTTP {status})"),
            ),
            bi(
                "确认中继版本支持终端自检",
                "check that the relay's version supports the kiosk self-test",
            ),
        )),
    }
}

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

// --- control login and media UDP (standalone) ---------------------------------------------------

/// A logged-in control connection of the self-test's own.
pub struct Login {
    socket: Socket,
}

/// `network.login`: the device logs in on the control WebSocket.
pub async fn login(
    relay: &RelayConfig,
    credential: &Credential,
    connector: &Connector,
) -> (CheckResult, Option<Login>) {
    let check = net("network.login");
    let limit = Duration::from_secs(relay.connect_timeout_secs.clamp(1, 10));
    let started = Instant::now();
    let config = WebSocketConfig::default()
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20));
    let connect = tokio_tungstenite::connect_async_tls_with_config(
        relay.url.as_str(),
        Some(config),
        true,
        Some(connector.clone()),
    );
    let mut socket = match tokio::time::timeout(limit, connect).await {
        Err(_) => return (NetProblem::Timeout.fail(check), None),
        Ok(Err(e)) => return (classify(&e).fail(check), None),
        Ok(Ok((s, _))) => s,
    };
    let hello = KioskToRelay::Hello {
        protocol_versions: vec![PROTOCOL_VERSION],
        device_id: credential.device_id.clone(),
        secret: credential.secret.expose().clone(),
        agent_version: env!("CARGO_PKG_VERSION").into(),
    };
    if let Err(e) = send(&mut socket, &hello).await {
        return (NetProblem::Other(e).fail(check), None);
    }
    let welcome = match tokio::time::timeout(limit, next_message(&mut socket)).await {
        Err(_) => return (NetProblem::Timeout.fail(check), None),
        Ok(Err(e)) => return (NetProblem::Other(e).fail(check), None),
        Ok(Ok(m)) => m,
    };
    let took = started.elapsed().as_secs_f64() * 1000.0;
    match welcome {
        RelayToKiosk::Welcome {
            protocol_version,
            extension_point,
            ..
        } if negotiate_version(&[protocol_version]).is_some() => (
            check.measure("time", took, "ms").pass(bi(
                format!("设备 {} 登录成功（延伸点 {}），用时 {took:.0} 毫秒", credential.device_id, extension_point.name),
                format!("device {} logged in (extension point {}) in {took:.0} ms", credential.device_id, extension_point.id),
            )),
            Some(Login { socket }),
        ),
        RelayToKiosk::Error { error, .. } if error.code == ErrorCode::Unauthenticated => (credential_refused(check), None),
        RelayToKiosk::Error { error, .. } if error.code == ErrorCode::UnsupportedVersion => (
            check.fail(
                bi("中继不支持本终端程序的协议版本", "the relay does not speak this agent's protocol version"),
                bi("将终端程序与中继升级到配套的版本", "upgrade the agent and the relay to matching versions"),
            ),
            None,
        ),
        RelayToKiosk::Error { error, .. } => (
            check.fail(
                bi(format!("中继拒绝登录：{}", error.message), format!("the relay refused the login: {}", error.message)),
                bi("在受理中心确认该设备已登记到延伸点并处于启用状态", "at the centre, check that the device is enrolled at an extension point and active"),
            ),
            None,
        ),
        _ => (
            check.fail(
                bi("中继的应答不符合协议", "the relay's first answer is not a welcome"),
                bi("确认 relay.url 指向受理中心中继的 /ws/kiosk", "check that relay.url points at the relay's /ws/kiosk"),
            ),
            None,
        ),
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
        let _ = self.socket.close(None).await;
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
            send(
                &mut self.socket,
                &KioskToRelay::MediaOffer {
                    request_id,
                    sdp: offer,
                },
            )
            .await
            .map_err(refused)?;
            let answer = loop {
                match next_message(&mut self.socket).await.map_err(refused)? {
                    RelayToKiosk::MediaAnswer {
                        request_id: id,
                        sdp,
                    } if id == request_id => break sdp,
                    RelayToKiosk::Error {
                        request_id: Some(id),
                        error,
                    } if id == request_id => {
                        return Err(MediaProblem::Refused(error.message));
                    }
                    _ => {}
                }
            };
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
const REPLACED_TEXT: &str = "the relay closed the connection for a newer login of this device";

fn refused(e: String) -> MediaProblem {
    if e == REPLACED_TEXT {
        MediaProblem::Replaced
    } else {
        MediaProblem::Refused(e)
    }
}

impl Login {
    /// Whether the relay has closed this connection for a newer one of the same device (looks
    /// at what is already there, for at most half a second).
    async fn was_replaced(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
        loop {
            match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Ok(Some(Ok(Message::Close(Some(frame))))) => {
                    return u16::from(frame.code) == REPLACED_CLOSE;
                }
                Ok(Some(Ok(Message::Close(None)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => {
                    return false;
                }
                Ok(Some(Ok(_))) => {}
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

async fn send(socket: &mut Socket, message: &KioskToRelay) -> Result<(), String> {
    let text = serde_json::to_string(message).map_err(|e| e.to_string())?;
    tokio::time::timeout(Duration::from_secs(10), socket.send(Message::text(text)))
        .await
        .map_err(|_| "sending to the relay timed out".to_owned())?
        .map_err(|e| format!("sending to the relay failed: {e}"))
}

async fn next_message(socket: &mut Socket) -> Result<RelayToKiosk, String> {
    loop {
        match tokio::time::timeout(Duration::from_secs(15), socket.next()).await {
            Err(_) => return Err("the relay said nothing".into()),
            Ok(None) => return Err("the relay closed the connection".into()),
            Ok(Some(Err(e))) => return Err(format!("connection error: {e}")),
            Ok(Some(Ok(Message::Text(text)))) => {
                if let Ok(m) = serde_json::from_str::<RelayToKiosk>(&text) {
                    return Ok(m);
                }
            }
            Ok(Some(Ok(Message::Close(Some(frame)))))
                if u16::from(frame.code) == REPLACED_CLOSE =>
            {
                return Err(REPLACED_TEXT.into());
            }
            Ok(Some(Ok(Message::Close(_)))) => return Err("the relay closed the connection".into()),
            Ok(Some(Ok(_))) => {}
        }
    }
}

// --- the running agent's link -----------------------------------------------------------------

/// `network.login` from the running agent's control link.
pub fn login_from_link(state: &crate::link::control::KioskState) -> CheckResult {
    use crate::link::control::LinkState;
    let check = net("network.login");
    match state.link {
        LinkState::Online => check.pass(bi(
            format!(
                "设备 {} 已登录中继（延伸点 {}）",
                state.device_id,
                state
                    .extension_point
                    .as_ref()
                    .map_or("", |p| p.name.as_str())
            ),
            format!("device {} is logged in to the relay", state.device_id),
        )),
        LinkState::Refused => credential_refused(check),
        LinkState::Connecting | LinkState::Offline => check.fail(
            bi(
                format!(
                    "终端未连上中继：{}",
                    state.problem.as_deref().unwrap_or("正在连接")
                ),
                format!(
                    "the kiosk is not connected to the relay: {}",
                    state.problem.as_deref().unwrap_or("connecting")
                ),
            ),
            bi(
                "检查网络与 relay.url；查看 HTTPS 检查的结果",
                "check the network and relay.url; see the HTTPS check's result",
            ),
        ),
    }
}

/// The running media session as the self-test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSnapshot {
    /// The session's phase (`"connected"`, `"waiting"`, …).
    pub phase: String,
    /// Attempts that failed since the agent started.
    pub failures: u64,
}

/// `network.media_udp` from the running media session (`None`: media is off on this kiosk)
/// and whether the relay says it has media on (`None`: not known).
pub fn media_from_session(media: Option<&MediaSnapshot>, relay_media: Option<bool>) -> CheckResult {
    let check = net("network.media_udp");
    let Some(media) = media else {
        return check.skipped(bi(
            "未启用视频通话（[media] enabled = false）",
            "media is off ([media] enabled = false)",
        ));
    };
    if media.phase == "connected" {
        return check.pass(bi(
            "与中继的媒体连接已建立",
            "the media connection to the relay is up",
        ));
    }
    if relay_media == Some(false) {
        return relay_without_media();
    }
    let check = check.measure("failures", media.failures as f64, "");
    check.warn(
        bi(
            format!(
                "与中继的媒体连接未建立（{}，已失败 {} 次）",
                media.phase, media.failures
            ),
            format!(
                "the media connection to the relay is not up ({}, {} failed attempts)",
                media.phase, media.failures
            ),
        ),
        bi(
            "先处理上面失败的摄像头、麦克风、扬声器检查（它们打不开时媒体也连不上）；防火墙需放行到中继媒体端口的出站 UDP，不能放行时通话只能经 TURN（见 TURN 检查）；详情见终端日志中的 media 条目",
            "first fix any failed camera, microphone or speaker check (media cannot start without them); firewalls must let outbound UDP to the relay's media port through, otherwise calls only work through TURN (see the TURN check); the agent's log has the media details",
        ),
    )
}

/// `network.media_udp` when the relay says it serves no media: nothing to connect to, and
/// not a firewall's doing.
pub fn relay_without_media() -> CheckResult {
    net("network.media_udp").warn(
        bi(
            "中继未启用音视频，无法视频通话",
            "media is not enabled on the relay: no video calls",
        ),
        bi(
            "请中心管理员在中继配置中启用 [media]；只排队取号、不视频的站点可在终端设 [media] enabled = false",
            "ask the centre to enable [media] on the relay; a site that only queues can set [media] enabled = false on the kiosk",
        ),
    )
}

/// What a network check list looks like when the relay cannot be reached at all.
pub fn unreachable(ids: &[&'static str], why: &CheckResult) -> Vec<CheckResult> {
    ids.iter()
        .map(|id| {
            net(id).skipped(bi(
                format!("未检查：{}", why.detail.zh),
                format!("not checked: {}", why.detail.en),
            ))
        })
        .collect()
}

/// The shared pieces the network checks need.
pub struct NetworkKit {
    pub relay: RelayConfig,
    pub credential: Credential,
    pub connector: Connector,
    pub peer: PeerConfig,
}

impl NetworkKit {
    pub fn http(&self) -> Result<RelayHttp, String> {
        RelayHttp::new(&self.relay, &self.credential, &self.connector)
    }
}

/// Shared for the runner.
pub type SharedNetwork = Arc<NetworkKit>;

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::inspection::CheckOutcome;

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

    #[test]
    fn timing_takes_the_median_and_the_fastest_offset() {
        let t = timing_from(&[(30.0, 100.0), (10.0, 40.0), (20.0, 60.0)]);
        assert_eq!(t.rtt_ms, 20.0);
        assert_eq!(t.offset_ms, 40.0);
        let r = judge_timing(Ok(Timing {
            rtt_ms: 350.0,
            offset_ms: -5_000.0,
        }));
        assert_eq!(r[0].outcome, CheckOutcome::Warn);
        assert_eq!(r[1].outcome, CheckOutcome::Warn);
        let r = judge_timing(Ok(Timing {
            rtt_ms: 20.0,
            offset_ms: 400_000.0,
        }));
        assert_eq!(r[0].outcome, CheckOutcome::Pass);
        assert_eq!(r[1].outcome, CheckOutcome::Fail);
        let r = judge_timing(Err(NetProblem::Refused));
        assert_eq!(r[0].outcome, CheckOutcome::Fail);
        assert_eq!(r[1].outcome, CheckOutcome::Skipped);
    }

    #[test]
    fn the_relay_candidate_is_found_in_an_answer() {
        let sdp = "v=0\r\na=candidate:1 1 udp 2130706431 203.0.113.7 50000 typ host\r\n";
        assert_eq!(relay_candidate(sdp).as_deref(), Some("203.0.113.7:50000"));
        assert_eq!(relay_candidate("v=0\r\n"), None);
    }

    #[test]
    fn refused_connections_are_recognised() {
        let e = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(classify(&e), NetProblem::Refused);
        let tls = std::io::Error::other(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Expired,
        ));
        assert!(matches!(classify(&tls), NetProblem::Certificate(r) if r.contains("Expired")));
    }

    #[test]
    fn the_running_media_session_is_judged_with_what_the_relay_says() {
        let media = |phase: &str, failures| MediaSnapshot {
            phase: phase.into(),
            failures,
        };
        assert_eq!(
            media_from_session(None, Some(true)).outcome,
            CheckOutcome::Skipped
        );
        assert_eq!(
            media_from_session(Some(&media("connected", 0)), None).outcome,
            CheckOutcome::Pass
        );
        // A relay without media: no firewall advice, the relay's configuration instead.
        let off = media_from_session(Some(&media("waiting", 8)), Some(false));
        assert_eq!(off.outcome, CheckOutcome::Warn);
        assert!(off.detail.zh.contains("中继未启用音视频"), "{off:?}");
        assert!(
            off.remedy
                .as_ref()
                .is_some_and(|r| r.en.contains("[media]"))
        );
        // Media on at both ends but not up: devices first, then the firewall.
        let down = media_from_session(Some(&media("waiting", 3)), Some(true));
        assert_eq!(down.outcome, CheckOutcome::Warn);
        assert!(down.detail.zh.contains("已失败 3 次"), "{down:?}");
        let remedy = down.remedy.as_ref().expect("remedy");
        assert!(remedy.zh.contains("摄像头") && remedy.zh.contains("UDP"));
    }
}
