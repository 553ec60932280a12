//! A call over an impaired path, as the media tests on a village line share it: the real
//! relay, the real agent on its simulated sources and a clerk in headless Chromium, with
//! [`UdpPath`] between the relay's advertised media address and its socket. The agent's media
//! leaves from 127.0.0.3, the clerk's Chromium from 127.0.0.1, so each leg can be impaired on
//! its own. [`Call::measure`] samples the clerk's getStats, the capture stamps of the frames it
//! shows (glass-to-glass) and the agent's own estimate over a window.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use e2e::udp_path::Impairment;
use e2e::{Agent, Browser, DemoData, Page, Relay, UdpPath};
use serde_json::Value;

use super::call::{
    LIMIT, SPY, TIMECODE, agent_media, clerk_stats, grows, num, sign_in, take_ticket,
    wait_agent_media,
};

pub const AGENT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
pub const CLERK_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const PATH_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const AGENT_MEDIA: &str =
    "\n[media]\nsimulated = true\nudp_bind = \"127.0.0.3:0\"\nloopback_candidates = true\n";
const RELAY_MEDIA: [&str; 6] = [
    "--set",
    "media.enabled=true",
    "--set",
    "media.udp_listen=127.0.0.1:0",
    "--set",
    "media.advertised_ip=\"127.0.0.2\"",
];

/// The clerk's inbound streams, per transceiver index (0 kiosk camera, 2 kiosk microphone).
const INBOUND: &str = r#"(async () => {
  const pc = window.__pcs[window.__pcs.length - 1];
  if (!pc) return null;
  const r = await pc.getStats();
  const mids = pc.getTransceivers().map((t) => t.mid);
  const out = {};
  r.forEach((s) => {
    if (s.type !== "inbound-rtp") return;
    out[mids.indexOf(s.mid)] = {
      frames: s.framesDecoded ?? 0, width: s.frameWidth ?? 0, height: s.frameHeight ?? 0,
      lost: s.packetsLost ?? 0, received: s.packetsReceived ?? 0, nacks: s.nackCount ?? 0,
      plis: s.pliCount ?? 0, concealed: s.concealedSamples ?? 0,
      samples: s.totalSamplesReceived ?? 0, energy: s.totalAudioEnergy ?? 0,
      bytes: s.bytesReceived ?? 0,
    };
  });
  r.forEach((s) => {
    if (s.type === "outbound-rtp" && s.kind === "video") {
      out.sent = {
        target: s.targetBitrate ?? 0, frames: s.framesEncoded ?? 0, height: s.frameHeight ?? 0,
        bytes: s.bytesSent ?? 0, retransmitted: s.retransmittedBytesSent ?? 0,
      };
    }
  });
  return out;
})()"#;

/// Something done to the path during a measurement.
pub struct PathEvent {
    /// How far into the window.
    pub at: Duration,
    pub act: Box<dyn Fn(&UdpPath) + Send + Sync>,
    /// When, after acting, the path is whole again.
    pub path_back_after: Duration,
}

/// A call in progress over the path.
pub struct Call {
    pub data: DemoData,
    pub relay: Relay,
    pub path: UdpPath,
    pub agent: Agent,
    pub clerk_browser: Browser,
}

/// What one window of a call looked like at the clerk and in the agent.
#[derive(Debug, Clone)]
pub struct Figures {
    pub seconds: f64,
    pub fps: f64,
    /// Sum of the gaps longer than 500 ms between decoded frames, per minute.
    pub freeze_s_per_min: f64,
    pub longest_gap_s: f64,
    pub glass_p50_ms: Option<f64>,
    pub glass_p95_ms: Option<f64>,
    /// Share of the kiosk's audio samples the clerk's Chromium concealed.
    pub audio_concealed: f64,
    pub audio_energy: f64,
    pub video_loss: f64,
    pub nacks: f64,
    pub plis: f64,
    pub kbps: f64,
    pub last_size: (u64, u64),
    /// The agent's estimate (kbit/s), one sample a second.
    pub estimate_kbps: Vec<f64>,
    /// The camera's encoded height, one sample a second.
    pub camera_heights: Vec<u64>,
    /// Frames the clerk decoded in each second of the window.
    pub clerk_frames_each_second: Vec<f64>,
    /// Frames the agent's camera encoded in each second of the window.
    pub agent_frames_each_second: Vec<f64>,
    /// The clerk's Chromium as a sender on its own leg: its estimate (kbit/s, a sample a
    /// second), the frames it encoded per second and at what height at the end.
    pub chromium_target_kbps: Vec<f64>,
    pub chromium_fps: f64,
    pub chromium_height: u64,
    /// When video first came back after a moment (see [`Call::measure`]), seconds after it.
    pub recovered_after_s: Option<f64>,
    /// NACKs the agent received and packets it sent again, over the window.
    pub agent_nacks: f64,
    pub agent_retransmitted: f64,
    /// Packets those NACKs asked for.
    pub agent_packets_nacked: f64,
    /// The camera's frames and keyframes encoded, keyframe requests (PLI + FIR) the agent
    /// received, and encoded frames its send queue dropped, over the window.
    pub agent_frames_encoded: f64,
    pub agent_keyframes: f64,
    pub agent_keyframe_requests: f64,
    pub agent_frames_dropped: f64,
    /// Raw frames dropped in front of the camera's encoder (it was behind: CPU).
    pub agent_raw_frames_dropped: f64,
    /// Times the agent saw feedback return after an outage (and forced keyframes).
    pub agent_path_returns: f64,
    /// Longest wait of a packet in the agent's pacer since the call's connection began (ms).
    pub agent_pacer_max_wait_ms: f64,
}

impl Call {
    /// Starts relay, path, agent and clerk, impairs the agent's leg and the clerk's leg, and
    /// begins a call; returns once the clerk has decoded some of the kiosk's frames.
    pub async fn start(seed: u64, agent_leg: Impairment, clerk_leg: Impairment) -> Result<Call> {
        let data = DemoData::create().await?;
        let relay = Relay::start(&data, &RELAY_MEDIA).await?;
        let sfu = relay.media_udp.context("the relay's media socket")?;
        let path = UdpPath::start_seeded(SocketAddr::new(PATH_IP, sfu.port()), sfu, seed).await?;
        path.impair(AGENT_IP, agent_leg);
        path.impair(CLERK_IP, clerk_leg);
        let agent = Agent::start_with(&data, &relay, AGENT_MEDIA).await?;
        agent.wait_status(LIMIT, |s| s["link"] == "online").await?;
        wait_agent_media(&agent, "connected", |v| {
            v["session"]["phase"] == "connected"
        })
        .await?;
        let clerk_browser = Browser::launch(&[]).await?;
        Ok(Call {
            data,
            relay,
            path,
            agent,
            clerk_browser,
        })
    }

    /// The clerk signs in, calls the kiosk's ticket and sees its camera: returns once the
    /// clerk's Chromium has decoded a few of the kiosk's frames.
    pub async fn clerk_calls(&self) -> Result<Page<'_>> {
        let clerk = self
            .clerk_browser
            .open(&self.relay.https_url("/healthz"))
            .await?;
        clerk.add_init_script(SPY).await?;
        clerk.add_init_script(TIMECODE).await?;
        clerk.goto(&self.relay.https_url("/")).await?;
        sign_in(&clerk, &self.data).await?;
        // The ticket after the sign-in: the relay gives walk-in tickets only to open windows.
        take_ticket(&self.agent).await?;
        clerk.click("#btn-next").await?;
        clerk
            .eval("window.rvwTimecode.watch(document.getElementById('media-kiosk')), true")
            .await?;
        let read = || clerk_stats(&clerk);
        grows(
            read,
            &["inbound", "0", "framesDecoded"],
            5.0,
            "kiosk camera at the clerk",
        )
        .await?;
        Ok(clerk)
    }

    /// Samples the call for `window`. An `event` acts on the path once, some way into the
    /// window (an outage, say); the recovery figure is the time from the path's return to
    /// the next frame the clerk decodes.
    pub async fn measure(
        &self,
        clerk: &Page<'_>,
        window: Duration,
        event: Option<PathEvent>,
    ) -> Result<Figures> {
        clerk.eval("window.rvwTimecode.clear(), true").await?;
        let agent_before = agent_media(&self.agent).await?;
        let start = Instant::now();
        let first = clerk.eval(INBOUND).await?;
        let mut last_frames = num(&first, &["0", "frames"]);
        let mut last_change = Instant::now();
        let mut freeze = 0.0f64;
        let mut longest = 0.0f64;
        let mut estimate = Vec::new();
        let mut heights = Vec::new();
        let mut each_second = Vec::new();
        let mut frames_at_last_sample = last_frames;
        let mut agent_each_second = Vec::new();
        let mut encoded_at_last_sample = num(&agent_before, &["link", "camera", "frames_encoded"]);
        let mut chromium_target = Vec::new();
        let mut next_agent_sample = Instant::now();
        let mut fired = false;
        let mut recover_from: Option<Instant> = None;
        let mut recovered_after = None;
        let mut latest = first.clone();
        while start.elapsed() < window {
            if let Some(event) = &event
                && !fired
                && start.elapsed() >= event.at
            {
                (event.act)(&self.path);
                fired = true;
                recover_from = Some(Instant::now() + event.path_back_after);
            }
            if Instant::now() >= next_agent_sample {
                let media = agent_media(&self.agent).await?;
                estimate.push(num(&media, &["link", "target_bitrate_bps"]) / 1000.0);
                chromium_target.push(num(&latest, &["sent", "target"]) / 1000.0);
                heights.push(num(&media, &["link", "camera", "height"]) as u64);
                let encoded = num(&media, &["link", "camera", "frames_encoded"]);
                if estimate.len() > 1 {
                    let frames = num(&latest, &["0", "frames"]);
                    each_second.push(frames - frames_at_last_sample);
                    frames_at_last_sample = frames;
                    agent_each_second.push(encoded - encoded_at_last_sample);
                }
                encoded_at_last_sample = encoded;
                next_agent_sample += Duration::from_secs(1);
            }
            let now_stats = clerk.eval(INBOUND).await?;
            let frames = num(&now_stats, &["0", "frames"]);
            let now = Instant::now();
            if frames > last_frames {
                let gap = now.duration_since(last_change).as_secs_f64();
                if gap > 0.5 {
                    freeze += gap;
                }
                longest = longest.max(gap);
                if let Some(from) = recover_from
                    && now >= from
                    && recovered_after.is_none()
                {
                    recovered_after = Some(now.duration_since(from).as_secs_f64());
                }
                last_frames = frames;
                last_change = now;
            }
            latest = now_stats;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let trailing = last_change.elapsed().as_secs_f64();
        if trailing > 0.5 {
            freeze += trailing;
        }
        longest = longest.max(trailing);
        let seconds = start.elapsed().as_secs_f64();
        let agent_after = agent_media(&self.agent).await?;
        let agent_delta =
            |key: &str| num(&agent_after, &["link", key]) - num(&agent_before, &["link", key]);
        let agent_path_delta = |path: &[&str]| num(&agent_after, path) - num(&agent_before, path);
        let delta = |path: &[&str]| num(&latest, path) - num(&first, path);
        let video_received = delta(&["0", "received"]);
        let video_lost = delta(&["0", "lost"]);
        let samples = delta(&["2", "samples"]);
        let glass: Vec<f64> = clerk
            .eval("window.rvwTimecode.samples().map((s) => s.ageMs)")
            .await?
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        Ok(Figures {
            seconds,
            fps: delta(&["0", "frames"]) / seconds,
            freeze_s_per_min: freeze * 60.0 / seconds,
            longest_gap_s: longest,
            glass_p50_ms: percentile(&glass, 50.0),
            glass_p95_ms: percentile(&glass, 95.0),
            audio_concealed: if samples > 0.0 {
                delta(&["2", "concealed"]) / samples
            } else {
                1.0
            },
            audio_energy: delta(&["2", "energy"]),
            video_loss: if video_received + video_lost > 0.0 {
                video_lost / (video_received + video_lost)
            } else {
                0.0
            },
            nacks: delta(&["0", "nacks"]),
            plis: delta(&["0", "plis"]),
            kbps: delta(&["0", "bytes"]) * 8.0 / seconds / 1000.0,
            last_size: (
                num(&latest, &["0", "width"]) as u64,
                num(&latest, &["0", "height"]) as u64,
            ),
            estimate_kbps: estimate,
            camera_heights: heights,
            clerk_frames_each_second: each_second,
            agent_frames_each_second: agent_each_second,
            chromium_target_kbps: chromium_target,
            chromium_fps: delta(&["sent", "frames"]) / seconds,
            chromium_height: num(&latest, &["sent", "height"]) as u64,
            recovered_after_s: recovered_after,
            agent_nacks: agent_delta("nacks_received"),
            agent_retransmitted: agent_delta("retransmitted_packets_sent"),
            agent_packets_nacked: agent_delta("packets_nacked"),
            agent_frames_encoded: agent_path_delta(&["link", "camera", "frames_encoded"]),
            agent_keyframes: agent_path_delta(&["link", "camera", "keyframes_encoded"]),
            agent_keyframe_requests: agent_delta("plis_received") + agent_delta("firs_received"),
            agent_frames_dropped: agent_path_delta(&["link", "camera", "frames_dropped"]),
            agent_raw_frames_dropped: agent_path_delta(&["link", "camera", "raw_frames_dropped"]),
            agent_path_returns: agent_delta("path_returns"),
            agent_pacer_max_wait_ms: num(&agent_after, &["link", "pacer", "max_wait_ms"]),
        })
    }

    pub async fn close(self) -> Result<()> {
        self.clerk_browser.close().await;
        self.agent.kill().await?;
        self.relay.kill().await?;
        Ok(())
    }
}

pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted.get(rank).copied()
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let opt = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.0}"));
        write!(
            f,
            "{:.1} fps, freeze {:.1} s/min (longest gap {:.2} s), glass p50/p95 {}/{} ms, \
             audio concealed {:.1} %, video loss after repair {:.1} %, {:.0} kbit/s at {}x{}, \
             NACKs {:.0}, PLIs {:.0}, frames each second {:?} (encoded {:?}), estimate {:?} kbit/s, \
             camera heights {:?}, recovery {}; \
             Chromium sending: {:.1} fps at {} lines, estimate {:?} kbit/s; \
             agent: {:.0} NACKs received for {:.0} packets, {:.0} packets sent again, \
             camera {:.0} frames ({:.0} keyframes, {:.0} dropped before sending, \
             {:.0} raw frames dropped before the encoder), \
             {:.0} keyframe requests received, {:.0} path returns, pacer wait max {:.0} ms",
            self.fps,
            self.freeze_s_per_min,
            self.longest_gap_s,
            opt(self.glass_p50_ms),
            opt(self.glass_p95_ms),
            self.audio_concealed * 100.0,
            self.video_loss * 100.0,
            self.kbps,
            self.last_size.0,
            self.last_size.1,
            self.nacks,
            self.plis,
            self.clerk_frames_each_second,
            self.agent_frames_each_second,
            self.estimate_kbps
                .iter()
                .map(|v| v.round())
                .collect::<Vec<_>>(),
            self.camera_heights,
            self.recovered_after_s
                .map_or("–".to_owned(), |s| format!("{:.2} s", s)),
            self.chromium_fps,
            self.chromium_height,
            self.chromium_target_kbps
                .iter()
                .map(|v| v.round())
                .collect::<Vec<_>>(),
            self.agent_nacks,
            self.agent_packets_nacked,
            self.agent_retransmitted,
            self.agent_frames_encoded,
            self.agent_keyframes,
            self.agent_frames_dropped,
            self.agent_raw_frames_dropped,
            self.agent_keyframe_requests,
            self.agent_path_returns,
            self.agent_pacer_max_wait_ms,
        )
    }
}
