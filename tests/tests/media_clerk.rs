//! End to end with media: a real relay (SFU and recorder on), a clerk in headless Chromium
//! with fake camera and microphone, and a synthetic kiosk in a second Chromium tab that speaks
//! the kiosk protocol with the demo kiosk's credential (tests/tests/media/kiosk.js) — a
//! WebRTC kiosk with real VP8 and Opus, standing in for the agent.
//!
//! The console connects its media as soon as it is signed in to a window and sends nothing
//! while idle; calling the ticket makes both sides send: frames are decoded and audio energy
//! arrives in both directions; finishing stops it, and the recording (fetched by a supervisor
//! through the relay, decrypted on the fly) decodes with all five tracks and the session's
//! duration. A second test forces the console's ICE through a local coturn (relay-only) with
//! the relay's short-lived REST credentials.

mod media {
    pub mod call;
}

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use e2e::{Browser, DemoData, Page, Relay};
use media::call::{FinishedRecording, LIMIT, finished_recording};
use serde_json::Value;

const SPY: &str = include_str!("media/spy.js");
const KIOSK: &str = include_str!("media/kiosk.js");
/// How long the served session runs before it is finished.
const SESSION: Duration = Duration::from_secs(8);

fn kiosk_script(data: &DemoData) -> Result<String> {
    let credential = std::fs::read_to_string(data.kiosk_credential_file())?;
    Ok(KIOSK
        .replace("CREDENTIAL", credential.trim())
        .replace("CATEGORY", "social-security"))
}

async fn stats(page: &Page<'_>, pc: &str) -> Result<Value> {
    page.eval(&format!("window.__rvwStats({pc})")).await
}

fn num(v: &Value, path: &[&str]) -> f64 {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_f64().unwrap_or(0.0)
}

/// Waits until the number at `path` of `pc`'s stats exceeds its current value by `more`.
async fn grows(page: &Page<'_>, pc: &str, path: &[&str], more: f64, what: &str) -> Result<f64> {
    let start = num(&stats(page, pc).await?, path);
    let deadline = Instant::now() + LIMIT;
    loop {
        let s = stats(page, pc).await?;
        let now = num(&s, path);
        if now >= start + more {
            return Ok(now);
        }
        if Instant::now() >= deadline {
            bail!("{what}: stayed at {now} (from {start}); stats {s}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sign_in(page: &Page<'_>, data: &DemoData) -> Result<()> {
    page.wait_for("!document.getElementById('login-view').hidden", LIMIT)
        .await?;
    page.fill("#login-user", "clerk1").await?;
    page.fill("#login-pass", &data.staff_password()?).await?;
    page.click("#login-form button[type=submit]").await?;
    page.wait_for("!document.getElementById('window-view').hidden", LIMIT)
        .await?;
    page.eval(
        "[...document.querySelectorAll('#window-list button')].find(b => b.textContent.includes('8号远程虚拟窗口')).click()",
    )
    .await?;
    page.wait_for("!document.getElementById('desk-view').hidden", LIMIT)
        .await
}

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

/// Logs in as the demo supervisor and downloads the newest complete recording (checking range
/// requests on the way). Returns its metadata.
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
    let part = http
        .get(&url)
        .bearer_auth(&token)
        .header("range", "bytes=100-199")
        .send()
        .await?;
    if part.status() != 206 || part.bytes().await?.len() != 100 {
        bail!("range request not honoured");
    }
    let full = http.get(&url).bearer_auth(&token).send().await?;
    if !full.status().is_success() {
        bail!("playing the recording: {}", full.status());
    }
    std::fs::write(to, full.bytes().await?)?;
    // A clerk without the supervisor role is refused.
    let clerk = relay_kit::staff::login(&http, &base, "clerk1", &data.staff_password()?).await?;
    let denied = http.get(&url).bearer_auth(&clerk).send().await?;
    if denied.status() != 403 {
        bail!("a clerk was not refused the recording: {}", denied.status());
    }
    Ok(rec)
}

struct Session<'b> {
    kiosk: Page<'b>,
    clerk: Page<'b>,
}

/// A kiosk tab with a ticket and its media up, and a console signed in to the remote window
/// with its media connected (ahead of any call).
async fn ready<'b>(
    browser: &'b Browser,
    relay: &Relay,
    data: &DemoData,
    relay_only: bool,
) -> Result<Session<'b>> {
    // The clerk signs in first: the relay gives walk-in tickets only while a window is open.
    let clerk = browser.open(&relay.https_url("/")).await?;
    clerk
        .add_init_script(&SPY.replace(
            "const RELAY_ONLY = false;",
            &format!("const RELAY_ONLY = {relay_only};"),
        ))
        .await?;
    clerk.goto(&relay.https_url("/")).await?;
    sign_in(&clerk, data).await?;

    let kiosk = browser.open(&relay.https_url("/healthz")).await?;
    kiosk.add_init_script(SPY).await?;
    kiosk.goto(&relay.https_url("/healthz")).await?;
    let number = kiosk.eval(&kiosk_script(data)?).await?;
    if number != "YA001" {
        bail!("kiosk ticket {number}");
    }
    kiosk.wait_for("window.kiosk.connected", LIMIT).await?;
    clerk
        .wait_for(
            "document.getElementById('media-area').dataset.media === 'connected'",
            LIMIT,
        )
        .await?;
    Ok(Session { kiosk, clerk })
}

#[tokio::test]
async fn the_console_sends_and_decodes_media_only_while_serving() -> Result<()> {
    let data = DemoData::create().await?;
    let relay = Relay::start(
        &data,
        &[
            "--set",
            "media.enabled=true",
            "--set",
            "media.udp_listen=127.0.0.1:0",
        ],
    )
    .await?;
    let browser = Browser::launch(&[]).await?;
    let Session { kiosk, clerk } = ready(&browser, &relay, &data, false).await?;

    // Waiting: both peer connections are up and neither sends anything.
    let before = (
        stats(&clerk, "").await?,
        stats(&kiosk, "window.__kioskPc").await?,
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = (
        stats(&clerk, "").await?,
        stats(&kiosk, "window.__kioskPc").await?,
    );
    for i in ["3", "4"] {
        if num(&after.0, &["outbound", i, "bytes"]) != num(&before.0, &["outbound", i, "bytes"]) {
            bail!(
                "the idle console sent on transceiver {i}: {} → {}",
                before.0,
                after.0
            );
        }
    }
    for i in ["0", "1", "2"] {
        if num(&after.1, &["outbound", i, "bytes"]) != num(&before.1, &["outbound", i, "bytes"]) {
            bail!("the waiting kiosk sent on transceiver {i}");
        }
    }

    // Calling the ticket: the console hears the session and both directions flow.
    clerk.click("#btn-next").await?;
    let called = Instant::now();
    clerk
        .wait_for(
            "document.getElementById('media-area').dataset.serving === 'yes'",
            LIMIT,
        )
        .await?;
    grows(
        &clerk,
        "",
        &["outbound", "3", "bytes"],
        10_000.0,
        "console camera sent",
    )
    .await?;
    grows(
        &clerk,
        "",
        &["outbound", "4", "bytes"],
        1_000.0,
        "console microphone sent",
    )
    .await?;
    grows(
        &clerk,
        "",
        &["inbound", "0", "framesDecoded"],
        10.0,
        "kiosk camera decoded at the console",
    )
    .await?;
    grows(
        &clerk,
        "",
        &["inbound", "1", "framesDecoded"],
        5.0,
        "document preview decoded at the console",
    )
    .await?;
    grows(
        &clerk,
        "",
        &["inbound", "2", "energy"],
        0.0001,
        "kiosk audio energy at the console",
    )
    .await?;
    grows(
        &kiosk,
        "window.__kioskPc",
        &["inbound", "3", "framesDecoded"],
        10.0,
        "clerk camera decoded at the kiosk",
    )
    .await?;
    grows(
        &kiosk,
        "window.__kioskPc",
        &["inbound", "4", "energy"],
        0.0001,
        "clerk audio energy at the kiosk",
    )
    .await?;
    clerk
        .wait_for(
            "document.getElementById('media-kiosk').videoWidth > 0",
            LIMIT,
        )
        .await?;
    clerk
        .wait_for(
            "/往返/.test(document.getElementById('media-quality').textContent)",
            LIMIT,
        )
        .await?;
    clerk
        .screenshot(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-media.png"))
        .await?;

    // Let the session run, then finish it: sending stops on both sides.
    tokio::time::sleep(SESSION.saturating_sub(called.elapsed())).await;
    clerk.click("#btn-start").await?;
    clerk
        .wait_for("!document.getElementById('btn-finish').disabled", LIMIT)
        .await?;
    clerk.click("#btn-finish").await?;
    // No ID card was read in this session: the console asks for an identity snapshot first;
    // finish without one (recorded as unverified).
    clerk
        .wait_for(
            "!document.getElementById('dev-identity-dialog')?.hidden",
            LIMIT,
        )
        .await?;
    clerk.click("#dev-dialog-finish").await?;
    let finished = Instant::now();
    if let Err(e) = clerk
        .wait_for(
            "document.getElementById('media-area').dataset.serving === 'no'",
            LIMIT,
        )
        .await
    {
        bail!("{e}\nrelay log:\n{}", relay.log_text());
    }
    kiosk
        .wait_for("window.kiosk.sending === false", LIMIT)
        .await?;

    // The recording: every track, the session's length (±10 %), fetched by a supervisor.
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
    if rec["encrypted"] != true || rec["sha256"].as_str().map(str::len) != Some(64) {
        bail!("recording metadata: {rec}");
    }
    browser.close().await;
    relay.kill().await?;
    Ok(())
}

/// coturn on 127.0.0.1 for one test, in REST-credential mode (`use-auth-secret`), killed on
/// drop. Loopback peers are allowed (the relay's SFU is on 127.0.0.1).
struct Coturn {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Coturn {
    fn start(secret: &str) -> Result<Coturn> {
        let dir = tempfile::tempdir()?;
        let port = std::net::UdpSocket::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let relay_min = 20_000 + (u16::try_from(std::process::id() % 50).unwrap_or(0)) * 200;
        let config = dir.path().join("turnserver.conf");
        std::fs::write(
            &config,
            format!(
                "listening-ip=127.0.0.1\nrelay-ip=127.0.0.1\nlistening-port={port}\n\
                 min-port={relay_min}\nmax-port={}\nuse-auth-secret\nstatic-auth-secret={secret}\n\
                 realm=rvw.test\nallow-loopback-peers\nno-tls\nno-dtls\nno-cli\nfingerprint\n\
                 pidfile={}\nuserdb={}\nsimple-log\nlog-file=stdout\n",
                relay_min + 199,
                dir.path().join("pid").display(),
                dir.path().join("turndb").display(),
            ),
        )?;
        let child = std::process::Command::new("turnserver")
            .arg("-c")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("turnserver (Debian package coturn, deploy/packages-test.txt)")?;
        let coturn = Coturn {
            child,
            port,
            _dir: dir,
        };
        coturn.wait_ready()?;
        Ok(coturn)
    }

    /// Ready once it answers a STUN binding request.
    fn wait_ready(&self) -> Result<()> {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        request.extend((0..12u8).map(|i| i.wrapping_mul(37)));
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut reply = [0u8; 512];
        while Instant::now() < deadline {
            socket.send_to(&request, ("127.0.0.1", self.port))?;
            if let Ok((n, _)) = socket.recv_from(&mut reply)
                && n >= 20
                && reply[8..20] == request[8..20]
            {
                return Ok(());
            }
        }
        bail!("turnserver did not answer STUN on port {}", self.port)
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_console_forced_through_turn_gets_the_kiosks_media() -> Result<()> {
    let secret = "e2e-turn-shared-secret-0123456789";
    let turn = Coturn::start(secret)?;
    let data = DemoData::create().await?;
    let secret_file = data.dir.path().join("turn.secret");
    std::fs::write(&secret_file, secret)?;
    let urls = format!("turn.urls=[\"turn:127.0.0.1:{}?transport=udp\"]", turn.port);
    let secret_setting = format!("turn.secret_file={:?}", secret_file.display().to_string());
    let relay = Relay::start(
        &data,
        &[
            "--set",
            "media.enabled=true",
            "--set",
            "media.udp_listen=127.0.0.1:0",
            "--set",
            &urls,
            "--set",
            &secret_setting,
            "--set",
            "turn.credential_ttl_secs=600",
        ],
    )
    .await?;
    let browser = Browser::launch(&[]).await?;
    let Session {
        kiosk: _kiosk,
        clerk,
    } = ready(&browser, &relay, &data, true).await?;
    let s = stats(&clerk, "").await?;
    if s["pair"]["local"] != "relay" {
        bail!("the console's selected candidate is not a TURN relay one: {s}");
    }
    clerk.click("#btn-next").await?;
    grows(
        &clerk,
        "",
        &["inbound", "0", "framesDecoded"],
        10.0,
        "kiosk camera through TURN",
    )
    .await?;
    grows(
        &clerk,
        "",
        &["outbound", "3", "bytes"],
        10_000.0,
        "console camera through TURN",
    )
    .await?;
    let s = stats(&clerk, "").await?;
    if s["pair"]["local"] != "relay" {
        bail!("media left the TURN relay: {s}");
    }
    browser.close().await;
    relay.kill().await?;
    Ok(())
}
