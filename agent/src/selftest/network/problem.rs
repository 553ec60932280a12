//! What the network checks share: a check's id, why a connection failed in terms a technician
//! can act on ([`NetProblem`], from the error's sources), and the advice for a refused
//! credential.

use protocol::inspection::CheckResult;

use crate::selftest::check::{Check, bi};

pub(super) fn net(id: &'static str) -> Check {
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
    pub(super) fn text(&self) -> (String, String) {
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

    pub(super) fn fail(&self, check: Check) -> CheckResult {
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

pub(super) fn credential_refused(check: Check) -> CheckResult {
    check.fail(
        bi("中继拒绝了本终端的设备凭据（unauthenticated）", "the relay refused this kiosk's device credential"),
        bi(
            "确认 relay.credential_file 中的凭据与登记时一致；若设备已重新登记或被停用，请在中继重新执行 enroll-device 并更新凭据文件",
            "check that relay.credential_file holds the credential from enrollment; if the device was re-enrolled or disabled, run enroll-device on the relay again and update the file",
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_connections_are_recognised() {
        let e = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(classify(&e), NetProblem::Refused);
        let tls = std::io::Error::other(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Expired,
        ));
        assert!(matches!(classify(&tls), NetProblem::Certificate(r) if r.contains("Expired")));
    }
}
