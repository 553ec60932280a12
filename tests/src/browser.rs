//! Headless Chromium over the Chrome DevTools Protocol (CDP), enough for end-to-end tests:
//! open a page, evaluate JavaScript (awaiting promises), wait for a condition, take screenshots.
//!
//! Chromium runs with fake camera and microphone devices and with its background networking
//! off (this machine has no network beyond loopback).

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

pub const CHROMIUM: &str = "/usr/bin/chromium";
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value>>>>>;

/// A running headless Chromium.
pub struct Browser {
    child: Child,
    outgoing: mpsc::Sender<String>,
    pending: Pending,
    next_id: Arc<AtomicU64>,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium with a fresh profile. Extra command-line flags may be given.
    pub async fn launch(extra_flags: &[&str]) -> Result<Self> {
        let profile = tempfile::tempdir()?;
        let mut command =
            Command::new(std::env::var("RVW_CHROMIUM").unwrap_or_else(|_| CHROMIUM.into()));
        command
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--mute-audio",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                "--ignore-certificate-errors",
                "--remote-debugging-port=0",
                "--window-size=1400,1000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra_flags)
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| "starting Chromium (apt-get install chromium)")?;
        let stderr = child.stderr.take().context("chromium stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let endpoint = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return Ok(url.trim().to_owned());
                }
            }
            Err(anyhow!(
                "Chromium exited before opening its DevTools endpoint"
            ))
        })
        .await
        .context("Chromium did not start within 30 s")??;
        // Keep draining Chromium's stderr so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let (ws, _) = tokio_tungstenite::connect_async(endpoint.as_str()).await?;
        let (mut sink, mut stream) = ws.split();
        let (outgoing, mut outgoing_rx) = mpsc::channel::<String>(64);
        tokio::spawn(async move {
            while let Some(text) = outgoing_rx.recv().await {
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
        });
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let reader_pending = pending.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let Ok(v) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                let Some(id) = v.get("id").and_then(Value::as_u64) else {
                    continue;
                };
                let Some(tx) = reader_pending.lock().ok().and_then(|mut p| p.remove(&id)) else {
                    continue;
                };
                let result = match v.get("error") {
                    Some(e) => Err(anyhow!("CDP error: {e}")),
                    None => Ok(v.get("result").cloned().unwrap_or(Value::Null)),
                };
                let _ = tx.send(result);
            }
        });
        Ok(Self {
            child,
            outgoing,
            pending,
            next_id: Arc::new(AtomicU64::new(1)),
            _profile: profile,
        })
    }

    async fn call(&self, session: Option<&str>, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            message["sessionId"] = json!(s);
        }
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .map_err(|_| anyhow!("poisoned"))?
            .insert(id, tx);
        self.outgoing
            .send(message.to_string())
            .await
            .map_err(|_| anyhow!("Chromium connection closed"))?;
        tokio::time::timeout(COMMAND_TIMEOUT, rx)
            .await
            .with_context(|| format!("CDP {method} timed out"))?
            .map_err(|_| anyhow!("Chromium connection closed"))?
    }

    /// Opens a new tab at `url` and waits for it to load.
    pub async fn open(&self, url: &str) -> Result<Page<'_>> {
        let target = self
            .call(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await?;
        let target_id = target["targetId"].as_str().context("targetId")?.to_owned();
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target_id, "flatten": true }),
            )
            .await?;
        let session = attached["sessionId"]
            .as_str()
            .context("sessionId")?
            .to_owned();
        let page = Page {
            browser: self,
            session,
        };
        page.call("Page.enable", json!({})).await?;
        page.call("Runtime.enable", json!({})).await?;
        page.goto(url).await?;
        Ok(page)
    }

    pub async fn close(mut self) {
        let _ = self.child.kill().await;
    }
}

/// One tab.
pub struct Page<'b> {
    browser: &'b Browser,
    session: String,
}

impl Page<'_> {
    async fn call(&self, method: &str, params: Value) -> Result<Value> {
        self.browser.call(Some(&self.session), method, params).await
    }

    /// Sends one DevTools command to this tab (e.g. `Network.emulateNetworkConditions`).
    pub async fn command(&self, method: &str, params: Value) -> Result<Value> {
        self.call(method, params).await
    }

    pub async fn goto(&self, url: &str) -> Result<()> {
        let r = self.call("Page.navigate", json!({ "url": url })).await?;
        if let Some(e) = r.get("errorText").and_then(Value::as_str) {
            bail!("navigation to {url} failed: {e}");
        }
        self.wait_for(
            "document.readyState === 'complete'",
            Duration::from_secs(20),
        )
        .await
    }

    /// Evaluates `expression` (awaiting a promise) and returns its JSON value.
    pub async fn eval(&self, expression: &str) -> Result<Value> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }),
            )
            .await?;
        if let Some(e) = r.get("exceptionDetails") {
            let text = e["exception"]["description"]
                .as_str()
                .or_else(|| e["text"].as_str())
                .unwrap_or("exception");
            bail!("JavaScript failed: {text}\n  in: {expression}");
        }
        Ok(r["result"].get("value").cloned().unwrap_or(Value::Null))
    }

    /// Polls `condition` (a JavaScript expression) until it is truthy.
    pub async fn wait_for(&self, condition: &str, limit: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let v = self
                .eval(&format!("!!({condition})"))
                .await
                .unwrap_or(Value::Bool(false));
            if v == Value::Bool(true) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                let body = self
                    .eval("document.body ? document.body.innerText.slice(0, 2000) : ''")
                    .await
                    .unwrap_or_default();
                bail!("waited {limit:?} for `{condition}`; page text:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the element matching `selector`.
    pub async fn click(&self, selector: &str) -> Result<()> {
        let sel = serde_json::to_string(selector)?;
        let ok = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({sel}); if (!e || e.disabled) return false; e.click(); return true; }})()"
            ))
            .await?;
        if ok != Value::Bool(true) {
            bail!("no enabled element matches {selector}");
        }
        Ok(())
    }

    /// Sets an input's value as if typed.
    pub async fn fill(&self, selector: &str, value: &str) -> Result<()> {
        let sel = serde_json::to_string(selector)?;
        let val = serde_json::to_string(value)?;
        let ok = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({sel}); if (!e) return false; e.value = {val}; e.dispatchEvent(new Event('input', {{bubbles: true}})); return true; }})()"
            ))
            .await?;
        if ok != Value::Bool(true) {
            bail!("no element matches {selector}");
        }
        Ok(())
    }

    /// Saves a PNG screenshot of the viewport.
    pub async fn screenshot(&self, path: &Path) -> Result<()> {
        let r = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await?;
        let data = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().context("screenshot data")?)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, data)?;
        Ok(())
    }

    /// Sets the viewport size (CSS pixels).
    pub async fn viewport(&self, width: u32, height: u32) -> Result<()> {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await?;
        Ok(())
    }

    /// Runs `source` in every document this tab loads from now on, before the page's own
    /// scripts (e.g. to observe the page's RTCPeerConnections); reload to apply it.
    pub async fn add_init_script(&self, source: &str) -> Result<()> {
        self.call(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": source }),
        )
        .await?;
        Ok(())
    }
}
