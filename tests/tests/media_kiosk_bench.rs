//! Benchmark of the kiosk's media as the clerk meets it (ignored; run on its own):
//!
//! ```text
//! cargo build --workspace --bins
//! cargo test -p e2e --test media_kiosk_bench -- --ignored --nocapture
//! ```
//!
//! Real relay, real agent on its simulated sources (720p30 VP8, stamped with the capture
//! time), the agent's kiosk page open in one headless Chromium, the clerk console in another,
//! all on loopback. For each of `RUNS` calls:
//!
//! - **call next → first kiosk frame decoded**: measured inside the clerk's page, from the
//!   click on 叫号 to the first increase of the kiosk camera's `framesDecoded` (getStats polled
//!   every 5 ms), and to the first frame presented (`requestVideoFrameCallback`);
//! - **glass-to-glass agent → clerk**: every presented frame's capture stamp, read back by
//!   `media/timecode.js`, against the time the frame is shown; frames of the first second of
//!   each call are left out (the encoder's start);
//! - **agent CPU** during the calls (the whole agent process: capture, encode ×2, Opus with
//!   echo cancellation, playback, the relay leg and the screen leg), as a fraction of a core.
//!
//! Prints a table and writes JSON to `$RVW_BENCH_OUT` (default
//! `target/bench/media-kiosk.json`). Figures depend on the machine and its load: the load
//! average is recorded with them.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use e2e::{Agent, Browser, DemoData, Page, Relay};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(30);
const RUNS: usize = 12;
/// How long each call runs after its first frame (glass-to-glass samples, CPU).
const HOLD: Duration = Duration::from_secs(4);
const SPY: &str = include_str!("media/spy.js");
const TIMECODE: &str = include_str!("media/timecode.js");
const AGENT_MEDIA: &str =
    "\n[media]\nsimulated = true\nudp_bind = \"127.0.0.1:0\"\nloopback_candidates = true\n";
const RELAY_MEDIA: [&str; 4] = [
    "--set",
    "media.enabled=true",
    "--set",
    "media.udp_listen=127.0.0.1:0",
];

/// Clicks 叫号 and resolves with the milliseconds to the kiosk camera's first decoded frame
/// (getStats) and first presented frame (rVFC), measured in the page.
const CALL_AND_TIME: &str = r#"(async () => {
  const pc = window.__pcs[window.__pcs.length - 1];
  const video = document.getElementById('media-kiosk');
  const mid = pc.getTransceivers()[0].mid;
  const decoded = async () => {
    let n = 0;
    (await pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.mid === mid) n = s.framesDecoded || 0; });
    return n;
  };
  const base = await decoded();
  let presented = null;
  const t0 = performance.now();
  video.requestVideoFrameCallback((now) => { presented = now - t0; });
  document.getElementById('btn-next').click();
  const deadline = t0 + 20000;
  while (performance.now() < deadline) {
    if (await decoded() > base) {
      const decodedMs = performance.now() - t0;
      while (presented === null && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      return { decodedMs, presentedMs: presented };
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  return null;
})()"#;

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[rank.min(v.len() - 1)]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The agent process's pid, found by its configuration file on the command line.
fn agent_pid(agent: &Agent) -> Result<u32> {
    let wanted = agent.config.to_string_lossy().to_string();
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).to_string())
            .collect();
        if args.contains(&wanted) && args.iter().any(|a| a == "run") {
            return Ok(pid);
        }
    }
    bail!("agent process not found")
}

/// User + system CPU seconds of a process so far.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').context("stat format")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11).context("utime")?.parse()?;
    let stime: f64 = fields.get(12).context("stime")?.parse()?;
    Ok((utime + stime) / ticks_per_second())
}

fn ticks_per_second() -> f64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok());
    out.unwrap_or(100.0)
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
        .await?;
    page.wait_for(
        "document.getElementById('media-area').dataset.media === 'connected'",
        LIMIT,
    )
    .await
}

async fn finish(clerk: &Page<'_>) -> Result<()> {
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

async fn agent_media(agent: &Agent) -> Result<Value> {
    Ok(reqwest::get(agent.url("/api/media")).await?.json().await?)
}

fn out_path() -> PathBuf {
    std::env::var_os("RVW_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench/media-kiosk.json")
        })
}

#[tokio::test]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn kiosk_media_as_the_clerk_meets_it() -> Result<()> {
    let load_before = load_average();
    let data = DemoData::create().await?;
    let relay = Relay::start(&data, &RELAY_MEDIA).await?;
    let agent = Agent::start_with(&data, &relay, AGENT_MEDIA).await?;
    agent.wait_status(LIMIT, |s| s["link"] == "online").await?;
    let pid = agent_pid(&agent)?;

    let kiosk_browser = Browser::launch(&[]).await?;
    let kiosk = kiosk_browser.open(&agent.url("/kiosk")).await?;
    kiosk
        .wait_for(
            "window.kioskMedia && window.kioskMedia.stats().connection === 'connected'",
            LIMIT,
        )
        .await?;
    let clerk_browser = Browser::launch(&[]).await?;
    let clerk = clerk_browser.open(&relay.https_url("/healthz")).await?;
    clerk.add_init_script(SPY).await?;
    clerk.add_init_script(TIMECODE).await?;
    clerk.goto(&relay.https_url("/")).await?;
    sign_in(&clerk, &data).await?;
    clerk
        .eval("window.rvwTimecode.watch(document.getElementById('media-kiosk')), true")
        .await?;

    let mut decoded_ms = Vec::new();
    let mut presented_ms = Vec::new();
    let mut glass_ms = Vec::new();
    let mut unreadable = 0u64;
    let mut cpu_busy = 0.0;
    let mut cpu_wall = 0.0;
    for run in 0..RUNS {
        let taken: Value = reqwest::Client::new()
            .post(agent.url("/api/ticket"))
            .json(&json!({ "category_id": "social-security" }))
            .send()
            .await?
            .json()
            .await?;
        let number = taken["number"]
            .as_str()
            .context("ticket number")?
            .to_owned();
        clerk
            .wait_for(
                &format!("document.querySelector('tr[data-number=\"{number}\"]')"),
                LIMIT,
            )
            .await?;
        // The kiosk is idle again (previous call over): nothing is being sent.
        let deadline = Instant::now() + LIMIT;
        while agent_media(&agent).await?["session"]["sending"] != false {
            if Instant::now() >= deadline {
                bail!("the kiosk kept sending between calls");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        clerk.eval("window.rvwTimecode.clear(), true").await?;
        let timing = clerk.eval(CALL_AND_TIME).await?;
        if timing.is_null() {
            bail!("run {run}: no kiosk frame decoded after the call");
        }
        decoded_ms.push(timing["decodedMs"].as_f64().context("decodedMs")?);
        if let Some(p) = timing["presentedMs"].as_f64() {
            presented_ms.push(p);
        }
        let first_frame = Instant::now();
        let (cpu0, wall0) = (cpu_seconds(pid)?, Instant::now());
        tokio::time::sleep(HOLD).await;
        cpu_busy += cpu_seconds(pid)? - cpu0;
        cpu_wall += wall0.elapsed().as_secs_f64();
        let samples = clerk.eval("window.rvwTimecode.samples()").await?;
        let skip_before = clerk
            .eval("performance.timeOrigin + performance.now()")
            .await?;
        let skip_before = skip_before.as_f64().unwrap_or(0.0)
            - first_frame.elapsed().as_secs_f64() * 1000.0
            + 1000.0;
        for s in samples.as_array().into_iter().flatten() {
            if s["shownMs"].as_f64().unwrap_or(0.0) >= skip_before
                && let Some(age) = s["ageMs"].as_f64()
            {
                glass_ms.push(age);
            }
        }
        unreadable += clerk
            .eval("window.rvwTimecode.unreadable")
            .await?
            .as_u64()
            .unwrap_or(0);
        finish(&clerk).await?;
        println!(
            "run {run:>2}: first frame decoded {:>6.1} ms, presented {:>6.1} ms",
            decoded_ms[run],
            timing["presentedMs"].as_f64().unwrap_or(f64::NAN)
        );
    }
    let media = agent_media(&agent).await?;
    let load_after = load_average();

    let result = json!({
        "runs": RUNS,
        "call_to_first_frame_decoded_ms": {
            "p50": percentile(&decoded_ms, 50.0), "p95": percentile(&decoded_ms, 95.0),
            "min": percentile(&decoded_ms, 0.0), "max": percentile(&decoded_ms, 100.0),
            "samples": decoded_ms, "target_p50": 300, "target_p95": 600,
        },
        "call_to_first_frame_presented_ms": {
            "p50": percentile(&presented_ms, 50.0), "p95": percentile(&presented_ms, 95.0),
            "samples": presented_ms,
        },
        "glass_to_glass_agent_to_clerk_ms": {
            "p50": percentile(&glass_ms, 50.0), "p95": percentile(&glass_ms, 95.0),
            "min": percentile(&glass_ms, 0.0), "max": percentile(&glass_ms, 100.0),
            "frames": glass_ms.len(), "unreadable_frames": unreadable, "target_p50": 150,
        },
        "agent_cpu_cores_during_calls": cpu_busy / cpu_wall.max(f64::EPSILON),
        "agent_media_after": media,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "machine": { "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0) },
    });
    let path = out_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, serde_json::to_string_pretty(&result)?)?;

    println!();
    println!("| measure (loopback, {RUNS} calls) | p50 | p95 | target |");
    println!("|---|---|---|---|");
    println!(
        "| call next → first kiosk frame decoded (clerk getStats) | {:.0} ms | {:.0} ms | 300 / 600 ms |",
        percentile(&decoded_ms, 50.0),
        percentile(&decoded_ms, 95.0)
    );
    println!(
        "| call next → first kiosk frame presented (rVFC) | {:.0} ms | {:.0} ms | |",
        percentile(&presented_ms, 50.0),
        percentile(&presented_ms, 95.0)
    );
    println!(
        "| glass-to-glass agent → clerk ({} frames) | {:.0} ms | {:.0} ms | p50 ≤ 150 ms |",
        glass_ms.len(),
        percentile(&glass_ms, 50.0),
        percentile(&glass_ms, 95.0)
    );
    println!(
        "| agent CPU during calls (whole process) | {:.2} cores | | |",
        cpu_busy / cpu_wall.max(f64::EPSILON)
    );
    println!(
        "load average before {load_before}, after {load_after}; JSON: {}",
        path.display()
    );

    clerk_browser.close().await;
    kiosk_browser.close().await;
    agent.kill().await?;
    relay.kill().await?;
    Ok(())
}
