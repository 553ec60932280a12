//! The relay's HTTPS side: reachability with a verified certificate, round-trip time and
//! clock offset, the uplink, and the relay-issued ICE servers.

use std::time::{Duration, Instant};

use protocol::Pii;
use protocol::inspection::CheckResult;
use protocol::selftest::{
    ICE_SERVERS_PATH, IceServersProbe, TIME_PATH, TimeProbe, UPLOAD_PATH, UploadProbe,
};
use tokio_tungstenite::Connector;

use super::problem::{NetProblem, classify, credential_refused, net};
use crate::clock::now_ms_f64;
use crate::link::config::{Credential, RelayConfig};
use crate::selftest::check::bi;

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
/// The uplink probe sends growing bodies until one takes this long (or the sizes run out).
const UPLINK_ENOUGH: Duration = Duration::from_millis(800);
const UPLINK_SIZES: [usize; 3] = [256 * 1024, 2 * 1024 * 1024, 8 * 1024 * 1024];

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

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::inspection::CheckOutcome;

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
}
