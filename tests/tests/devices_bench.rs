//! Benchmark (ignored; run on its own):
//!
//! ```text
//! cargo build --workspace --bins
//! cargo test -p e2e --test devices_bench -- --ignored --nocapture
//! ```
//!
//! - 读身份证 pressed → card fields shown in the console (simulated SAM reader at 115200 baud
//!   behind the real driver), per read;
//! - 高拍仪拍照 pressed → the 8-megapixel page displayed in the console;
//! - the agent's upload throughput (from its `upload confirmed` log line) against a plain
//!   HTTPS POST of the same bytes from this process to the same relay endpoint.
//!
//! Each read is pressed with a card on the reader: after a read the simulated resident lifts
//! the card and places the next about a second later (the simulator's swap time), and the
//! benchmark waits that long before pressing again, as a clerk waits for the card. The
//! simulated reader sends every reply at 115200-baud wire time.

use std::time::{Duration, Instant};

use e2e::{Agent, Browser, DemoData, Relay};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(30);
const RUNS: usize = 7;
/// The simulated reader's time between lifting a read card and placing the next.
const SWAP_TIME: Duration = Duration::from_secs(1);

fn p50(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Drops ANSI colour sequences (the agent's text log may carry them).
fn plain_text(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn agent_uploads(log: &str) -> Vec<(f64, f64)> {
    plain_text(log)
        .lines()
        .filter(|l| l.contains("upload confirmed") && l.contains("document"))
        .filter_map(|l| {
            let l = l.to_owned();
            let field = |name: &str| -> Option<f64> {
                let rest = l.split(&format!("{name}=")).nth(1)?;
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            };
            Some((field("bytes")?, field("elapsed_ms")?))
        })
        .collect()
}

#[tokio::test]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn device_latency_and_upload_throughput() -> anyhow::Result<()> {
    let data = DemoData::create().await?;
    let relay = Relay::start(&data, &[]).await?;
    let agent = Agent::start_with(&data, &relay, "[devices]\nsimulated = true\n").await?;
    agent.wait_status(LIMIT, |s| s["link"] == "online").await?;
    let browser = Browser::launch(&[]).await?;
    let page = browser.open(&relay.https_url("/")).await?;
    page.wait_for("!document.getElementById('login-view').hidden", LIMIT)
        .await?;
    page.fill("#login-user", "clerk1").await?;
    page.fill("#login-pass", &data.staff_password()?).await?;
    page.click("#login-form button[type=submit]").await?;
    page.wait_for("!document.getElementById('window-view').hidden", LIMIT)
        .await?;
    page.eval("[...document.querySelectorAll('#window-list button')].find(b => b.textContent.includes('8号远程虚拟窗口')).click()").await?;
    page.wait_for("!document.getElementById('desk-view').hidden", LIMIT)
        .await?;
    reqwest::Client::new()
        .post(agent.url("/api/ticket"))
        .json(&json!({ "category_id": "social-security" }))
        .send()
        .await?;
    page.click("#btn-next").await?;
    page.wait_for("document.getElementById('dev-read') && !document.querySelector('.dev-panel').hidden && document.querySelector('#dev-resolution option[value=\"3264x2448\"]')", LIMIT).await?;

    let mut reads = Vec::new();
    for _ in 0..RUNS {
        let ms = page
            .eval(
                "(async () => {
                   const card = document.getElementById('dev-card');
                   card.replaceChildren();
                   const t0 = performance.now();
                   document.getElementById('dev-read').click();
                   while (!card.querySelector('dl')) {
                     if (performance.now() - t0 > 30000) throw new Error('no card');
                     await new Promise(r => setTimeout(r, 2));
                   }
                   await new Promise(r => requestAnimationFrame(r));
                   return performance.now() - t0;
                 })()",
            )
            .await?
            .as_f64()
            .unwrap_or(f64::NAN);
        reads.push(ms);
        page.wait_for("!document.getElementById('dev-read').disabled", LIMIT)
            .await?;
        // The resident places the next card.
        tokio::time::sleep(SWAP_TIME + Duration::from_millis(200)).await;
    }

    let mut stills = Vec::new();
    for _ in 0..RUNS {
        let ms = page
            .eval(
                "(async () => {
                   const img = document.getElementById('dev-image');
                   const before = img.dataset.item || '';
                   const t0 = performance.now();
                   document.getElementById('dev-capture').click();
                   while (!(img.dataset.item && img.dataset.item !== before && img.complete && img.naturalWidth === 3264)) {
                     if (performance.now() - t0 > 30000) throw new Error('no still');
                     await new Promise(r => setTimeout(r, 2));
                   }
                   await img.decode();
                   await new Promise(r => requestAnimationFrame(r));
                   return performance.now() - t0;
                 })()",
            )
            .await?
            .as_f64()
            .unwrap_or(f64::NAN);
        stills.push(ms);
        page.wait_for("!document.getElementById('dev-capture').disabled", LIMIT)
            .await?;
    }

    // The same bytes, uploaded plainly from here to the same relay endpoint.
    let fetched = page
        .eval(
            "(async () => {
               const img = document.getElementById('dev-image');
               const number = document.getElementById('cur-number').textContent;
               const q = await (await fetch('/api/v1/queue', { credentials: 'same-origin' })).json();
               const ticket = q.tickets.find(t => t.number === number);
               const url = `/api/v1/cases/${ticket.id}/items/${img.dataset.item}`;
               const buf = await (await fetch(url, { credentials: 'same-origin' })).arrayBuffer();
               const sha = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', buf)))
                 .map(b => b.toString(16).padStart(2, '0')).join('');
               let bin = '';
               const u8 = new Uint8Array(buf);
               for (let i = 0; i < u8.length; i += 0x8000) bin += String.fromCharCode(...u8.subarray(i, i + 0x8000));
               return { b64: btoa(bin), sha };
             })()",
        )
        .await?;
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(fetched["b64"].as_str().unwrap_or_default())?;
    let sha = fetched["sha"].as_str().unwrap_or_default().to_owned();
    anyhow::ensure!(bytes.len() > 100_000, "the still was not fetched");
    let credential = std::fs::read_to_string(data.kiosk_credential_file())?
        .trim()
        .to_owned();
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()?;
    let mut plain = Vec::new();
    for _ in 0..RUNS {
        let t0 = Instant::now();
        let r = client
            .post(relay.https_url("/api/v1/uploads?kind=document"))
            .bearer_auth(&credential)
            .header("content-type", "image/jpeg")
            .header("x-content-sha256", &sha)
            .body(bytes.clone())
            .send()
            .await?;
        let status = r.status();
        let _: Value = r.json().await?;
        anyhow::ensure!(status == 201, "plain upload refused: {status}");
        plain.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    let agent_log = agent.log_text();
    let uploads = agent_uploads(&agent_log);
    anyhow::ensure!(!uploads.is_empty(), "no upload timings in the agent log");
    let agent_ms = p50(uploads.iter().map(|u| u.1).collect());
    let plain_ms = p50(plain.clone());
    let mb = bytes.len() as f64 / 1e6;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average before report: {}", load.trim());
    println!("ID card read → shown (ms): {reads:?}");
    println!(
        "  first read {:.0} ms; p50 of {} reads {:.0} ms (each pressed with the card on the reader)",
        reads[0],
        reads.len(),
        p50(reads.clone())
    );
    println!(
        "8 MP still requested → displayed (ms): {stills:?}; p50 {:.0} ms",
        p50(stills.clone())
    );
    println!("still size {:.2} MB", mb);
    println!(
        "agent upload p50 {agent_ms:.0} ms = {:.1} MB/s; plain HTTPS upload p50 {plain_ms:.0} ms = {:.1} MB/s; ratio {:.0}%",
        mb / (agent_ms / 1000.0),
        mb / (plain_ms / 1000.0),
        100.0 * plain_ms / agent_ms
    );
    browser.close().await;
    agent.kill().await?;
    relay.kill().await?;
    Ok(())
}
