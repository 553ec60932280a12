//! End to end with the real kiosk agent's media: a real relay (SFU and recorder on), the real
//! agent on its simulated sources (a moving test picture stamped with its capture time, a
//! tone), the agent's own kiosk page in headless Chromium, and a clerk in a second headless
//! Chromium with fake camera and microphone.
//!
//! The agent sets its media connection up as soon as it is online, and the page its screen
//! connection to the agent as soon as it loads; calling the ticket makes both sides send.
//! Frames are decoded in both directions (the clerk's getStats; the kiosk page's own decoder,
//! fed by the agent without transcoding), audio energy arrives at both ends (the clerk's
//! getStats; the agent's playback level), the kiosk page shows the clerk's video, the clerk's
//! browser reads the kiosk camera's capture stamps, and the recording decodes with all five
//! tracks and the session's length. A second test kills and restarts the relay in the middle
//! of a call: the agent reconnects its media and the call continues.

mod media {
    pub mod call;
}

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use e2e::{Agent, Browser, DemoData, Page, Relay};
use media::call::{
    FinishedRecording, LIMIT, SPY, TIMECODE, agent_media, clerk_stats, finished_recording, grows,
    kiosk_page_stats, num, sign_in, take_ticket, wait_agent_media,
};
use serde_json::Value;

/// How long the served session runs before it is finished.
const SESSION: Duration = Duration::from_secs(8);
/// The agent on test sources, its media on loopback.
const AGENT_MEDIA: &str =
    "\n[media]\nsimulated = true\nudp_bind = \"127.0.0.1:0\"\nloopback_candidates = true\n";
const RELAY_MEDIA: [&str; 4] = [
    "--set",
    "media.enabled=true",
    "--set",
    "media.udp_listen=127.0.0.1:0",
];

struct Discovered {
    duration: Duration,
    video: usize,
    audio: usize,
    text: String,
}

fn discover(path: &Path) -> Result<Discovered> {
    let out = std::process::Command::new("gst-discoverer-1.0")
        .arg(path)
        .output()
        .context("gst-discoverer-1.0 (gstreamer1.0-plugins-base-apps)")?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!("gst-discoverer-1.0 failed: {text}");
    }
    let duration = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Duration: "))
        .and_then(|d| {
            let mut it = d.trim().split(':');
            let h: f64 = it.next()?.parse().ok()?;
            let m: f64 = it.next()?.parse().ok()?;
            let s: f64 = it.next()?.parse().ok()?;
            Some(Duration::from_secs_f64(h * 3600.0 + m * 60.0 + s))
        })
        .context("duration in discoverer output")?;
    let count = |kind: &str| {
        text.lines()
            .filter(|l| l.trim_start().starts_with(kind))
            .count()
    };
    Ok(Discovered {
        duration,
        video: count("video #"),
        audio: count("audio #"),
        text,
    })
}

/// Decodes every stream of the file to the end (a stricter check than discovery).
fn decodes(path: &Path) -> Result<()> {
    let out = std::process::Command::new("gst-launch-1.0")
        .args(["-q", "filesrc"])
        .arg(format!("location={}", path.display()))
        .args([
            "!",
            "decodebin",
            "name=d",
            "d.",
            "!",
            "queue",
            "!",
            "fakesink",
            "d.",
            "!",
            "queue",
            "!",
            "fakesink",
            "d.",
            "!",
            "queue",
            "!",
            "fakesink",
            "d.",
            "!",
            "queue",
            "!",
            "fakesink",
            "d.",
            "!",
            "queue",
            "!",
            "fakesink",
        ])
        .output()
        .context("gst-launch-1.0")?;
    if !out.status.success() {
        bail!(
            "the recording does not decode: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Logs in as the demo supervisor and downloads the newest finished recording.
async fn fetch_recording(relay: &Relay, data: &DemoData, to: &Path) -> Result<Value> {
    let FinishedRecording {
        http,
        base,
        token,
        rec,
    } = finished_recording(relay, data).await?;
    let url = format!(
        "{base}/api/v1/recordings/{}/media",
        rec["id"].as_str().unwrap_or("")
    );
    let full = http.get(&url).bearer_auth(&token).send().await?;
    if !full.status().is_success() {
        bail!("playing the recording: {}", full.status());
    }
    std::fs::write(to, full.bytes().await?)?;
    Ok(rec)
}

/// Finishes the served ticket from the console (without an identity snapshot).
async fn finish(clerk: &Page<'_>) -> Result<()> {
    // Start serving first if the ticket is only called.
    clerk
        .eval("(() => { const b = document.getElementById('btn-start'); if (b && !b.disabled) b.click(); return true; })()")
        .await?;
    clerk
        .wait_for("!document.getElementById('btn-finish').disabled", LIMIT)
        .await?;
    clerk.click("#btn-finish").await?;
    clerk
        .wait_for(
            "!document.getElementById('dev-identity-dialog')?.hidden",
            LIMIT,
        )
        .await?;
    clerk.click("#dev-dialog-finish").await?;
    clerk
        .wait_for(
            "document.getElementById('media-area').dataset.serving === 'no'",
            LIMIT,
        )
        .await
}

#[tokio::test]
async fn a_kiosk_call_has_picture_and_sound_both_ways_and_is_recorded() -> Result<()> {
    let data = DemoData::create().await?;
    let relay = Relay::start(&data, &RELAY_MEDIA).await?;
    let agent = Agent::start_with(&data, &relay, AGENT_MEDIA).await?;
    agent.wait_status(LIMIT, |s| s["link"] == "online").await?;
    // Ready ahead of any call: the agent's media is connected and sends nothing.
    wait_agent_media(&agent, "connected", |v| {
        v["session"]["phase"] == "connected"
    })
    .await?;

    let kiosk_browser = Browser::launch(&[]).await?;
    let kiosk = kiosk_browser.open(&agent.url("/kiosk")).await?;
    kiosk
        .wait_for(
            "window.kioskMedia && window.kioskMedia.stats().connection === 'connected'",
            LIMIT,
        )
        .await?;

    // The clerk signs in first: the relay gives walk-in tickets only while a window is open.
    let clerk_browser = Browser::launch(&[]).await?;
    let clerk = clerk_browser.open(&relay.https_url("/healthz")).await?;
    clerk.add_init_script(SPY).await?;
    clerk.add_init_script(TIMECODE).await?;
    clerk.goto(&relay.https_url("/")).await?;
    sign_in(&clerk, &data).await?;
    let number = take_ticket(&agent).await?;
    let idle = agent_media(&agent).await?;
    if idle["session"]["sending"] != false
        || num(&idle, &["link", "camera", "frames_encoded"]) != 0.0
    {
        bail!("the waiting kiosk is sending: {idle}");
    }

    clerk.click("#btn-next").await?;
    let called = Instant::now();
    clerk
        .wait_for(
            &format!("document.getElementById('cur-number').textContent === '{number}'"),
            LIMIT,
        )
        .await?;
    clerk
        .wait_for(
            "document.getElementById('media-area').dataset.serving === 'yes'",
            LIMIT,
        )
        .await?;
    clerk
        .eval("window.rvwTimecode.watch(document.getElementById('media-kiosk')), true")
        .await?;

    // The clerk sees and hears the kiosk: camera, document preview, microphone.
    let read = || clerk_stats(&clerk);
    grows(
        read,
        &["inbound", "0", "framesDecoded"],
        10.0,
        "kiosk camera decoded by the clerk",
    )
    .await?;
    grows(
        read,
        &["inbound", "1", "framesDecoded"],
        5.0,
        "document preview decoded by the clerk",
    )
    .await?;
    grows(
        read,
        &["inbound", "2", "energy"],
        0.0001,
        "kiosk audio energy at the clerk",
    )
    .await?;
    // The resident sees the clerk (and themself) in the kiosk page, which decodes what the
    // agent forwards; the agent decodes no video itself, and plays the clerk's voice.
    let read = || kiosk_page_stats(&kiosk);
    grows(
        read,
        &["clerk", "framesDecoded"],
        10.0,
        "clerk video decoded in the kiosk page",
    )
    .await?;
    grows(
        read,
        &["self", "framesDecoded"],
        10.0,
        "self-view decoded in the kiosk page",
    )
    .await?;
    let read = || agent_media(&agent);
    grows(
        read,
        &["link", "clerk_audio", "audible_buffers"],
        1.0,
        "clerk audio played by the agent",
    )
    .await?;
    // The clerk starts serving: the kiosk shows its session screen, the clerk's video large
    // and the resident's own picture small, on screen.
    clerk.click("#btn-start").await?;
    kiosk
        .wait_for("document.body.dataset.screen === 'session'", LIMIT)
        .await?;
    for picture in ["clerk-video", "self-view"] {
        kiosk
            .wait_for(
                &format!(
                    "(() => {{ const c = document.getElementById('{picture}'); const v = c.querySelector('video'); \
                       const r = v && v.getBoundingClientRect(); \
                       return v && !v.hidden && v.videoWidth > 0 && r.width > 0 && r.height > 0 && c.dataset.live === 'true'; }})()"
                ),
                LIMIT,
            )
            .await?;
    }
    let media = agent_media(&agent).await?;
    if !media["link"]["clerk_video_decoded_in_agent"].is_null() {
        bail!("the agent decoded the clerk's video itself: {media}");
    }
    if num(&media, &["screen", "counters", "clerk_packets_forwarded"]) == 0.0 {
        bail!("nothing forwarded to the screen: {media}");
    }
    // The clerk's browser reads the kiosk camera's capture stamps back.
    clerk
        .wait_for("window.rvwTimecode.samples().length >= 10", LIMIT)
        .await?;
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"));
    kiosk
        .screenshot(&shots.join("kiosk-session-video.png"))
        .await?;
    clerk
        .screenshot(&shots.join("console-kiosk-video.png"))
        .await?;

    // Let the session run, then finish it: the kiosk stops sending.
    tokio::time::sleep(SESSION.saturating_sub(called.elapsed())).await;
    finish(&clerk).await?;
    let finished = Instant::now();
    wait_agent_media(&agent, "stopped sending", |v| {
        v["session"]["sending"] == false
    })
    .await?;

    // The recording: every track, the session's length (±10 %), and it decodes to the end.
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("recording.webm");
    let rec = fetch_recording(&relay, &data, &file).await?;
    let found = discover(&file)?;
    let expected = finished - called;
    let (lo, hi) = (expected.mul_f64(0.9), expected.mul_f64(1.1));
    if found.video != 3 || found.audio != 2 || found.duration < lo || found.duration > hi {
        bail!(
            "recording {rec}: expected 3 video + 2 audio tracks lasting {expected:?} ±10%, found:\n{}",
            found.text
        );
    }
    decodes(&file)?;

    clerk_browser.close().await;
    kiosk_browser.close().await;
    agent.kill().await?;
    relay.kill().await?;
    Ok(())
}

#[tokio::test]
async fn the_call_continues_after_the_relay_restarts() -> Result<()> {
    let data = DemoData::create().await?;
    let relay = Relay::start(&data, &RELAY_MEDIA).await?;
    let agent = Agent::start_with(&data, &relay, AGENT_MEDIA).await?;
    agent.wait_status(LIMIT, |s| s["link"] == "online").await?;
    wait_agent_media(&agent, "connected", |v| {
        v["session"]["phase"] == "connected"
    })
    .await?;
    let kiosk_browser = Browser::launch(&[]).await?;
    let kiosk = kiosk_browser.open(&agent.url("/kiosk")).await?;
    let clerk_browser = Browser::launch(&[]).await?;
    let clerk = clerk_browser.open(&relay.https_url("/healthz")).await?;
    clerk.add_init_script(SPY).await?;
    clerk.goto(&relay.https_url("/")).await?;
    sign_in(&clerk, &data).await?;
    take_ticket(&agent).await?;
    clerk.click("#btn-next").await?;
    let read = || clerk_stats(&clerk);
    grows(
        read,
        &["inbound", "0", "framesDecoded"],
        10.0,
        "kiosk camera before the restart",
    )
    .await?;

    // The relay dies and comes back on the same addresses; the session is resumed from its
    // store, the agent's control link and media reconnect, and the console offers again.
    let relay = relay.restart(&data, &RELAY_MEDIA).await?;
    let after = wait_agent_media(&agent, "reconnected", |v| {
        v["session"]["phase"] == "connected"
            && v["session"]["sending"] == true
            && num(v, &["session", "counters", "new_connections"]) >= 1.0
    })
    .await?;
    clerk
        .wait_for(
            "document.getElementById('media-area').dataset.serving === 'yes'",
            LIMIT,
        )
        .await?;
    // A new peer connection at the console (the relay replaced the old one): wait for it to
    // decode the kiosk again, and for the kiosk page to show the clerk again.
    let read = || clerk_stats(&clerk);
    grows(
        read,
        &["inbound", "0", "framesDecoded"],
        10.0,
        "kiosk camera after the restart",
    )
    .await?;
    let read = || kiosk_page_stats(&kiosk);
    grows(
        read,
        &["clerk", "framesDecoded"],
        10.0,
        "clerk video in the kiosk page after the restart",
    )
    .await?;
    if num(&after, &["screen", "counters", "connections"]) != 1.0 {
        bail!("the kiosk page needed a new connection: {after}");
    }

    clerk_browser.close().await;
    kiosk_browser.close().await;
    agent.kill().await?;
    relay.kill().await?;
    Ok(())
}
