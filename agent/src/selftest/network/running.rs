//! `network.login` and `network.media_udp` inside the running agent: read from its control
//! link and media session, since a login of the self-test's own would replace the agent's
//! connection at the relay.

use protocol::inspection::CheckResult;

use super::problem::{credential_refused, net};
use crate::selftest::check::bi;

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

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::inspection::CheckOutcome;

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
