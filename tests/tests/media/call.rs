//! What the media tests with the real agent share: reading the clerk's and the kiosk page's
//! getStats and the agent's `/api/media`, waiting for counters to grow, signing the clerk in to
//! the remote window and taking a ticket at the kiosk. Every wait is bounded by [`LIMIT`].
#![allow(dead_code)]

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use e2e::{Agent, DemoData, Page, Relay};
use serde_json::{Value, json};

pub const LIMIT: Duration = Duration::from_secs(30);
pub const SPY: &str = include_str!("spy.js");
pub const TIMECODE: &str = include_str!("timecode.js");

pub fn num(v: &Value, path: &[&str]) -> f64 {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_f64().unwrap_or(0.0)
}

/// Polls `read` until the number at `path` exceeds its first value by `more`.
pub async fn grows<F, Fut>(read: F, path: &[&str], more: f64, what: &str) -> Result<f64>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Value>>,
{
    let start = num(&read().await?, path);
    let deadline = Instant::now() + LIMIT;
    loop {
        let v = read().await?;
        let now = num(&v, path);
        if now >= start + more {
            return Ok(now);
        }
        if Instant::now() >= deadline {
            bail!("{what}: stayed at {now} (from {start}); {v}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn clerk_stats(page: &Page<'_>) -> Result<Value> {
    page.eval("window.__rvwStats()").await
}

pub async fn kiosk_page_stats(page: &Page<'_>) -> Result<Value> {
    page.eval("window.kioskMedia.stats()").await
}

pub async fn agent_media(agent: &Agent) -> Result<Value> {
    Ok(reqwest::get(agent.url("/api/media")).await?.json().await?)
}

pub async fn wait_agent_media(
    agent: &Agent,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = Instant::now() + LIMIT;
    loop {
        let v = agent_media(agent).await?;
        if check(&v) {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!(
                "agent media never {what}: {v}\nagent log:\n{}",
                agent.log_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Signs in as the demo clerk at the remote window and waits for the console's media
/// connection (set up ahead of any call).
pub async fn sign_in(page: &Page<'_>, data: &DemoData) -> Result<()> {
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

/// Takes a ticket at the kiosk through the agent's local API; returns its number.
pub async fn take_ticket(agent: &Agent) -> Result<String> {
    let taken: Value = reqwest::Client::new()
        .post(agent.url("/api/ticket"))
        .json(&json!({ "category_id": "social-security" }))
        .send()
        .await?
        .json()
        .await?;
    Ok(taken["number"]
        .as_str()
        .context("ticket number")?
        .to_owned())
}

/// A finished recording as the demo supervisor sees it, with the client, the relay's base URL
/// and the supervisor's token for fetching it.
pub struct FinishedRecording {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
    pub rec: Value,
}

/// Logs in as the demo supervisor and waits for the newest recording to be finished; an error
/// if it failed.
pub async fn finished_recording(relay: &Relay, data: &DemoData) -> Result<FinishedRecording> {
    let http = reqwest::Client::new();
    let base = format!("http://{}", relay.http);
    let token =
        relay_kit::staff::login(&http, &base, "supervisor1", &data.staff_password()?).await?;
    let deadline = Instant::now() + LIMIT;
    let rec = loop {
        let list: Value = http
            .get(format!("{base}/api/v1/recordings"))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        if let Some(r) = list["recordings"].as_array().and_then(|a| a.first())
            && r["state"] != "recording"
        {
            break r.clone();
        }
        if Instant::now() >= deadline {
            bail!("no finished recording: {list}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if rec["state"] != "complete" {
        bail!("recording failed: {rec}");
    }
    Ok(FinishedRecording {
        http,
        base,
        token,
        rec,
    })
}
