//! For the resident during a real media call: a real relay with its SFU, a real agent on
//! GStreamer test sources, the clerk's console in headless Chromium with fake camera and
//! microphone, the kiosk page in another Chromium.
//!
//! - the clerk types to the resident: the kiosk shows the newest message large (1.5 × again
//!   with 大字), the earlier ones as a short history, and the resident can put it away; the
//!   relay refuses a clerk not serving the ticket, a text over 200 characters and a flood,
//!   counts each, keeps every message in the ticket's case and logs none of their text;
//! - the kiosk's volume −/＋ changes the `volume` element of the agent's playback pipeline;
//! - the in-session screen is taken with the clerk's live video, portrait and landscape, and
//!   the "工作人员" label keeps its one line over the picture;
//! - axe-core finds no serious problem on the screens not covered elsewhere: categories, the cancel and
//!   presence dialogs, the prompt dialog, the session with messages, 好差评 and its reasons,
//!   thank-you, offline, and (second test) the closed screen.
//!
//! Screens go to `docs/screens/kiosk-20…` .

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use e2e::a11y::axe;
use e2e::clerk::Clerk;
use e2e::{Agent, Browser, DemoData, Page, Relay};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(30);

const AGENT_MEDIA: &str = "\n[media]\nsimulated = true\nudp_bind = \"127.0.0.1:0\"\nloopback_candidates = true\n\n[kiosk]\npresence_check_secs = 10\npresence_grace_secs = 120\n";
const METRICS_TOKEN: &str = "metrics-token-for-the-typed-message-test";
const RELAY_MEDIA: [&str; 6] = [
    "--set",
    "media.enabled=true",
    "--set",
    "media.udp_listen=127.0.0.1:0",
    "--set",
    "server.metrics_token=metrics-token-for-the-typed-message-test",
];

fn screens_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screens")
}

async fn shot(page: &Page<'_>, name: &str) -> Result<()> {
    page.eval("document.fonts.ready.then(() => true)").await?;
    page.screenshot(&screens_dir().join(format!("{name}.png")))
        .await
}

async fn text(page: &Page<'_>, id: &str) -> Result<String> {
    Ok(page
        .eval(&format!("document.getElementById('{id}').textContent"))
        .await?
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

async fn px(page: &Page<'_>, id: &str) -> Result<f64> {
    page.eval(&format!(
        "parseFloat(getComputedStyle(document.getElementById('{id}')).fontSize)"
    ))
    .await?
    .as_f64()
    .context("font size")
}

async fn agent_media(agent: &Agent) -> Result<Value> {
    Ok(reqwest::get(agent.url("/api/media")).await?.json().await?)
}

/// Waits until the agent's playback pipeline reports `gain` on its `volume` element.
async fn speaker_volume_is(agent: &Agent, gain: f64) -> Result<()> {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let v = agent_media(agent).await?;
        if v["speaker_volume"]
            .as_f64()
            .is_some_and(|g| (g - gain).abs() < 1e-6)
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the speaker volume stayed {}", v["speaker_volume"]);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The in-session screen with the clerk's live video in it: frames decoded and the picture
/// on screen; the "工作人员" label in one line over it, not squeezed into a strip.
async fn live_session(kiosk: &Page<'_>) -> Result<()> {
    kiosk
        .wait_for(
            "(() => { const c = document.getElementById('clerk-video'); const v = c.querySelector('video'); \
               const r = v && v.getBoundingClientRect(); \
               return v && !v.hidden && v.videoWidth > 0 && r.width > 0 && r.height > 0 && c.dataset.live === 'true'; })()",
            LIMIT,
        )
        .await?;
    let label = kiosk
        .eval("(() => { const r = document.querySelector('#clerk-video > .video-label').getBoundingClientRect(); return [r.width, r.height]; })()")
        .await?;
    let (w, h) = (
        label[0].as_f64().context("width")?,
        label[1].as_f64().context("height")?,
    );
    if !(w > 2.0 * h && h < 80.0) {
        bail!("the clerk's label is squeezed: {w}×{h}");
    }
    Ok(())
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

/// Types `message` in the console and waits until the kiosk shows it as the newest.
async fn type_to_resident(console: &Page<'_>, kiosk: &Page<'_>, message: &str) -> Result<()> {
    console.fill("#typing-text", message).await?;
    console
        .eval("(() => { document.getElementById('typing-text').dispatchEvent(new Event('input')); return true; })()")
        .await?;
    console.click("#typing-send").await?;
    console
        .wait_for(
            "document.getElementById('typing-status').textContent.includes('已显示')",
            LIMIT,
        )
        .await?;
    kiosk
        .wait_for(
            &format!(
                "!document.getElementById('typed-latest').hidden && document.getElementById('typed-current').textContent === {}",
                json!(message)
            ),
            LIMIT,
        )
        .await
}

async fn metric(relay: &Relay, name: &str) -> Result<f64> {
    let body = reqwest::Client::new()
        .get(format!("http://{}/metrics", relay.http))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await?
        .text()
        .await?;
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let key = key.split('{').next()?;
            let key = key.strip_suffix("_total").unwrap_or(key);
            key.ends_with(name).then(|| value.parse().ok())?
        })
        .with_context(|| format!("metric {name} not found"))
}

#[tokio::test]
async fn the_clerk_types_to_the_resident_during_a_live_call_and_the_kiosk_reads_it_large()
-> Result<()> {
    let data = DemoData::create().await?;
    let relay = Relay::start(&data, &RELAY_MEDIA).await?;
    let agent = Agent::start_with(&data, &relay, AGENT_MEDIA).await?;
    agent.wait_status(LIMIT, |s| s["link"] == "online").await?;

    let kiosk_browser = Browser::launch(&[]).await?;
    let kiosk = kiosk_browser.open(&agent.url("/kiosk")).await?;
    kiosk.viewport(1080, 1920).await?;
    kiosk
        .wait_for(
            "window.kioskMedia && window.kioskMedia.stats().connection === 'connected'",
            LIMIT,
        )
        .await?;

    // The volume −/＋ reach the clerk's voice: the playback pipeline's volume element.
    speaker_volume_is(&agent, 1.0).await?;
    kiosk.click("#volume-down").await?;
    kiosk.click("#volume-down").await?;
    speaker_volume_is(&agent, 0.55).await?;
    for _ in 0..4 {
        kiosk.click("#volume-up").await?;
    }
    speaker_volume_is(&agent, 1.4).await?;
    let client = reqwest::Client::new();
    for bad in [
        json!({ "level": 0 }),
        json!({ "level": 6 }),
        json!({ "gain": 9 }),
    ] {
        let r = client
            .put(agent.url("/api/media/volume"))
            .json(&bad)
            .send()
            .await?;
        assert_eq!(r.status(), 400, "{bad}");
    }
    let foreign = client
        .put(agent.url("/api/media/volume"))
        .header("host", "kiosk.example:80")
        .json(&json!({ "level": 1 }))
        .send()
        .await?;
    assert!(
        foreign.status().is_client_error(),
        "a foreign Host is refused"
    );
    speaker_volume_is(&agent, 1.4).await?;

    // The console signs in; the resident takes a ticket on the screen.
    let console_browser = Browser::launch(&[]).await?;
    let console = console_browser.open(&relay.https_url("/")).await?;
    sign_in(&console, &data).await?;
    kiosk
        .wait_for(
            "document.getElementById('btn-start').offsetParent !== null",
            LIMIT,
        )
        .await?;
    kiosk.click("#btn-start").await?;
    kiosk
        .wait_for(
            "document.querySelector('[data-category=\"social-security\"]')",
            LIMIT,
        )
        .await?;
    axe(&kiosk, "categories").await?;
    kiosk.click("[data-category=\"social-security\"]").await?;
    kiosk
        .wait_for("document.body.dataset.screen === 'waiting'", LIMIT)
        .await?;

    // The dialogs of the waiting screen.
    kiosk.click("#btn-cancel").await?;
    kiosk
        .wait_for("!document.getElementById('dialog-cancel').hidden", LIMIT)
        .await?;
    axe(&kiosk, "cancel dialog").await?;
    kiosk.click("#btn-cancel-no").await?;
    kiosk
        .wait_for("!document.getElementById('dialog-presence').hidden", LIMIT)
        .await?;
    axe(&kiosk, "presence dialog").await?;
    kiosk.click("#btn-presence-keep").await?;

    // Called and served, with live video both ways.
    console.click("#btn-next").await?;
    kiosk
        .wait_for("document.body.dataset.screen === 'called'", LIMIT)
        .await?;
    shot(&kiosk, "kiosk-20-called-live").await?;
    console
        .wait_for(
            "document.getElementById('media-area').dataset.serving === 'yes'",
            LIMIT,
        )
        .await?;
    console.click("#btn-start").await?;
    kiosk
        .wait_for("document.body.dataset.screen === 'session'", LIMIT)
        .await?;
    live_session(&kiosk).await?;
    shot(&kiosk, "kiosk-21-session-live").await?;
    kiosk.viewport(1920, 1080).await?;
    live_session(&kiosk).await?;
    shot(&kiosk, "kiosk-21-session-live-landscape").await?;
    kiosk.viewport(1080, 1920).await?;
    let ticket_id = agent.status().await?["ticket"]["ticket_id"]
        .as_str()
        .context("ticket id")?
        .to_owned();

    // The clerk writes what the resident did not catch.
    console
        .wait_for("!document.getElementById('typing-panel').hidden", LIMIT)
        .await?;
    let first = "请带户口本原件和身份证";
    type_to_resident(&console, &kiosk, first).await?;
    let normal = px(&kiosk, "typed-current").await?;
    assert!(
        normal >= 1.7 * 32.0,
        "the message is large: {normal}px against 32px body text"
    );
    let second = "徐汇区漕溪北路 88 号 3 楼";
    type_to_resident(&console, &kiosk, second).await?;
    assert_eq!(
        kiosk
            .eval("[...document.querySelectorAll('#typed-history li')].map((li) => li.textContent)")
            .await?,
        json!([first]),
        "the earlier message stays below as history"
    );
    live_session(&kiosk).await?;
    shot(&kiosk, "kiosk-22-typed-message").await?;
    kiosk.viewport(1920, 1080).await?;
    live_session(&kiosk).await?;
    shot(&kiosk, "kiosk-22-typed-message-landscape").await?;
    kiosk.viewport(1080, 1920).await?;
    axe(&kiosk, "in session with typed messages").await?;
    let small = kiosk
        .eval("[...document.querySelectorAll('button')].filter((b) => b.offsetParent !== null).map((b) => [b.id || b.textContent, b.getBoundingClientRect()]).filter(([, r]) => r.width < 56.6 || r.height < 56.6).map(([n, r]) => `${n} ${r.width}x${r.height}`)")
        .await?;
    assert_eq!(
        small,
        json!([]),
        "touch targets of at least 15 mm in session"
    );

    // 大字 makes it 1.5 × larger again; with 高对比 it stays readable.
    kiosk.click("#text-toggle").await?;
    kiosk.click("#contrast-toggle").await?;
    let large = px(&kiosk, "typed-current").await?;
    assert!(large >= 1.5 * normal, "large text {large}px vs {normal}px");
    live_session(&kiosk).await?;
    shot(&kiosk, "kiosk-23-typed-message-large-contrast").await?;
    axe(
        &kiosk,
        "in session, typed message, large text and high contrast",
    )
    .await?;
    kiosk.click("#text-toggle").await?;
    kiosk.click("#contrast-toggle").await?;

    // The resident puts it away: both remain in the history.
    kiosk.click("#btn-typed-dismiss").await?;
    kiosk
        .wait_for("document.getElementById('typed-latest').hidden", LIMIT)
        .await?;
    assert_eq!(
        kiosk
            .eval("[...document.querySelectorAll('#typed-history li')].map((li) => li.textContent)")
            .await?,
        json!([second, first])
    );

    // The console does not send what the relay would refuse as too long…
    console.fill("#typing-text", &"字".repeat(201)).await?;
    console
        .eval("(() => { document.getElementById('typing-text').dispatchEvent(new Event('input')); return true; })()")
        .await?;
    assert_eq!(
        console
            .eval("[document.getElementById('typing-send').disabled, document.getElementById('typing-count').textContent]")
            .await?,
        json!([true, "201 / 200"])
    );
    // …and the relay refuses it anyway, a colleague not serving the ticket, and a flood.
    let password = data.staff_password()?;
    let mut same_clerk = Clerk::connect(&relay, "clerk1", &password).await?;
    let long = same_clerk
        .request(
            json!({ "type": "type_to_resident", "ticket_id": ticket_id, "text": "字".repeat(201) }),
        )
        .await;
    assert!(
        long.as_ref()
            .is_err_and(|e| e.to_string().contains("消息太长")),
        "{long:?}"
    );
    let mut colleague = Clerk::connect(&relay, "clerk2", &password).await?;
    let foreign = colleague
        .request(json!({ "type": "type_to_resident", "ticket_id": ticket_id, "text": "你好" }))
        .await;
    assert!(
        foreign
            .as_ref()
            .is_err_and(|e| e.to_string().contains("正在办理的居民")),
        "{foreign:?}"
    );
    let mut refused = None;
    for i in 0..6 {
        if let Err(e) = same_clerk
            .request(json!({ "type": "type_to_resident", "ticket_id": ticket_id, "text": format!("第{i}条") }))
            .await
        {
            refused = Some(e.to_string());
            break;
        }
    }
    let refused = refused.context("five messages in ten seconds is the limit")?;
    assert!(refused.contains("太快"), "{refused}");
    assert!(metric(&relay, "typed_messages_refused_rate").await? >= 1.0);
    assert!(metric(&relay, "typed_messages_refused_text").await? >= 1.0);
    assert!(metric(&relay, "typed_messages_refused_not_serving").await? >= 1.0);
    assert!(metric(&relay, "typed_messages_sent").await? >= 2.0);

    // Every message sent is in the ticket's case, readable by the serving clerk.
    let token = e2e::clerk::login(&relay, "clerk1", &password).await?;
    let case: Value = client
        .get(format!("http://{}/api/v1/cases/{ticket_id}", relay.http))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let items: Vec<&Value> = case["items"]
        .as_array()
        .context("case items")?
        .iter()
        .filter(|i| i["kind"] == "typed_message")
        .collect();
    assert!(items.len() >= 2, "{case}");
    let mut texts = Vec::new();
    for item in &items {
        let id = item["id"].as_str().context("item id")?;
        let body = client
            .get(format!(
                "http://{}/api/v1/cases/{ticket_id}/items/{id}",
                relay.http
            ))
            .bearer_auth(&token)
            .send()
            .await?
            .text()
            .await?;
        texts.push(body);
    }
    assert!(texts.iter().any(|t| t == first) && texts.iter().any(|t| t == second));

    // A prompt from the clerk over the session.
    same_clerk
        .device_command(
            &ticket_id,
            json!({
                "request_id": 91, "device": "screen", "timeout_ms": 60000,
                "name": "Screen.Prompt",
                "payload": { "kind": "confirm", "text": "请确认：您要办理的是社会保障卡补办" }
            }),
        )
        .await?;
    kiosk
        .wait_for("!document.getElementById('dialog-prompt').hidden", LIMIT)
        .await?;
    axe(&kiosk, "prompt dialog").await?;
    kiosk.click("#btn-prompt-confirm").await?;

    // Finished: 好差评, its reasons, thank-you.
    same_clerk
        .op(json!({ "op": "finish", "ticket_id": ticket_id }))
        .await?;
    kiosk
        .wait_for("document.body.dataset.screen === 'evaluation'", LIMIT)
        .await?;
    axe(&kiosk, "evaluation").await?;
    kiosk.click("[data-level=\"dissatisfied\"]").await?;
    kiosk
        .wait_for("!document.getElementById('reason-panel').hidden", LIMIT)
        .await?;
    axe(&kiosk, "reasons").await?;
    kiosk.click("[data-reason=\"unclear\"]").await?;
    kiosk.click("#btn-reasons-submit").await?;
    kiosk
        .wait_for("document.body.dataset.screen === 'thanks'", LIMIT)
        .await?;
    axe(&kiosk, "thank-you").await?;

    // No message text in the relay's or the agent's log.
    for (who, log) in [("relay", relay.log_text()), ("agent", agent.log_text())] {
        for secret in ["户口本", "漕溪北路"] {
            assert!(!log.contains(secret), "the {who} logged a typed message");
        }
    }

    // The relay gone: the offline screen.
    relay.kill().await?;
    kiosk
        .wait_for("document.body.dataset.screen === 'offline'", LIMIT)
        .await?;
    axe(&kiosk, "offline").await?;

    console_browser.close().await;
    kiosk_browser.close().await;
    agent.kill().await?;
    Ok(())
}

fn shanghai_today() -> String {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    protocol::hours::shanghai(now_ms).0.to_string()
}

#[tokio::test]
async fn the_closed_screen_passes_the_accessibility_check() -> Result<()> {
    let data = DemoData::create().await?;
    // Closed today (a holiday), whatever the time of the run.
    let hours = json!({
        "weekly": [{ "weekdays": [1, 2, 3, 4, 5], "periods": [{ "open": "09:00", "close": "17:00" }] }],
        "exceptions": [{ "date": shanghai_today(), "periods": [], "note": "测试闭馆" }],
    });
    let sql = format!(
        "UPDATE extension_points SET hours_json = '{hours}', service_hours = '周一至周五 9:00-17:00' WHERE id = 'demo-point-01';"
    );
    let out = tokio::process::Command::new("sqlite3")
        .arg(data.relay_dir().join("relay.sqlite"))
        .arg(&sql)
        .output()
        .await?;
    if !out.status.success() {
        bail!("sqlite3 failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let relay = Relay::start(&data, &[]).await?;
    let agent = Agent::start(&data, &relay).await?;
    agent.wait_status(LIMIT, |s| s["link"] == "online").await?;
    let browser = Browser::launch(&[]).await?;
    let page = browser.open(&agent.url("/kiosk")).await?;
    page.viewport(1080, 1920).await?;
    page.wait_for("document.body.dataset.screen === 'closed'", LIMIT)
        .await?;
    assert!(text(&page, "closed-next").await?.contains("9:00"));
    axe(&page, "closed").await?;
    page.click("#text-toggle").await?;
    page.click("#contrast-toggle").await?;
    axe(&page, "closed, large text and high contrast").await?;

    browser.close().await;
    agent.kill().await?;
    relay.kill().await?;
    Ok(())
}

/// A real 12×16 PNG (a blue-grey block).
const PORTRAIT_PNG: [u8; 78] = [
    137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 12, 0, 0, 0, 16, 8, 2,
    0, 0, 0, 173, 3, 9, 80, 0, 0, 0, 21, 73, 68, 65, 84, 120, 156, 99, 208, 136, 90, 64, 16, 49,
    140, 42, 26, 85, 68, 156, 34, 0, 51, 5, 217, 129, 108, 20, 193, 243, 0, 0, 0, 0, 73, 69, 78,
    68, 174, 66, 96, 130,
];

/// Puts a file into the page's photo input as if chosen in the file dialog.
async fn choose_file(page: &Page<'_>, bytes: &[u8], name: &str, mime: &str) -> Result<()> {
    let script = format!(
        "(() => {{ const dt = new DataTransfer(); dt.items.add(new File([new Uint8Array({})], {}, {{ type: {} }})); \
           const input = document.getElementById('profile-file'); input.files = dt.files; \
           input.dispatchEvent(new Event('change')); return true; }})()",
        json!(bytes),
        json!(name),
        json!(mime)
    );
    page.eval(&script).await?;
    Ok(())
}

/// Logs `user` in on the console page; a user with a second factor (enrolled over HTTP by
/// `relay_kit::staff`, as every supervisor must) then types the current 6-digit code.
async fn console_login(page: &Page<'_>, relay: &Relay, data: &DemoData, user: &str) -> Result<()> {
    let base = format!("http://{}", relay.http);
    page.wait_for("!document.getElementById('login-view').hidden", LIMIT)
        .await?;
    page.fill("#login-user", user).await?;
    page.fill("#login-pass", &data.staff_password()?).await?;
    page.click("#login-form button[type=submit]").await?;
    page.wait_for(
        "!document.getElementById('profile-open').hidden || !document.getElementById('code-view').hidden",
        LIMIT,
    )
    .await?;
    if relay_kit::staff::known_factor(&base, user).is_some()
        && page
            .eval("!document.getElementById('code-view').hidden")
            .await?
            .as_bool()
            == Some(true)
    {
        page.fill("#code-input", &relay_kit::staff::next_code(&base, user)?)
            .await?;
        page.click("#code-form button[type=submit]").await?;
    }
    page.wait_for("!document.getElementById('profile-open').hidden", LIMIT)
        .await
}

async fn profile_of(relay: &Relay, token: &str, clerk: &str) -> Result<Value> {
    Ok(reqwest::Client::new()
        .get(format!(
            "http://{}/api/v1/staff/{clerk}/profile",
            relay.http
        ))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?)
}

#[tokio::test]
async fn clerks_upload_their_photo_and_a_supervisor_sets_a_clerks_post_in_the_console() -> Result<()>
{
    let data = DemoData::create().await?;
    let relay = Relay::start(&data, &[]).await?;
    let token = e2e::clerk::login(&relay, "supervisor1", &data.staff_password()?).await?;

    // The clerk: 我的资料, wrong type and too large refused with the reason, then a real photo.
    let browser = Browser::launch(&[]).await?;
    let page = browser.open(&relay.https_url("/")).await?;
    page.viewport(1400, 1000).await?;
    console_login(&page, &relay, &data, "clerk1").await?;
    page.click("#profile-open").await?;
    page.wait_for(
        "!document.getElementById('profile-view').hidden && document.getElementById('profile-name').textContent !== ''",
        LIMIT,
    )
    .await?;
    assert_eq!(
        page.eval("document.getElementById('profile-clerk').closest('.profile-row').hidden")
            .await?,
        json!(true),
        "a clerk sets only their own"
    );
    choose_file(&page, b"GIF89a\x01\x00\x01\x00", "photo.gif", "image/gif").await?;
    assert!(
        text(&page, "profile-photo-status")
            .await?
            .contains("只能上传 JPEG 或 PNG")
    );
    let mut big = PORTRAIT_PNG.to_vec();
    big.resize(70 * 1024, 0);
    choose_file(&page, &big, "big.png", "image/png").await?;
    assert!(
        text(&page, "profile-photo-status")
            .await?
            .contains("照片太大（70 KB）")
    );
    assert_eq!(
        page.eval("document.getElementById('profile-upload').disabled")
            .await?,
        json!(true)
    );
    // A file that claims to be PNG but is not: the relay looks at the bytes and says why.
    choose_file(&page, b"GIF89a\x01\x00\x01\x00", "fake.png", "image/png").await?;
    page.click("#profile-upload").await?;
    page.wait_for(
        "document.getElementById('profile-photo-status').textContent.includes('照片没有上传')",
        LIMIT,
    )
    .await?;
    assert!(
        text(&page, "profile-photo-status")
            .await?
            .contains("JPEG 或 PNG"),
        "{}",
        text(&page, "profile-photo-status").await?
    );
    assert_eq!(
        profile_of(&relay, &token, "clerk-clerk1").await?["has_photo"],
        false
    );
    choose_file(&page, &PORTRAIT_PNG, "me.png", "image/png").await?;
    page.wait_for(
        "(() => { const i = document.getElementById('profile-preview'); return !i.hidden && i.complete && i.naturalWidth === 12; })()",
        LIMIT,
    )
    .await?;
    page.click("#profile-upload").await?;
    page.wait_for(
        "document.getElementById('profile-photo-status').textContent.includes('照片已上传')",
        LIMIT,
    )
    .await?;
    page.wait_for(
        "(() => { const i = document.getElementById('profile-preview'); return !i.hidden && i.complete && i.naturalWidth === 12 && document.getElementById('profile-preview-note').textContent === '当前照片'; })()",
        LIMIT,
    )
    .await?;
    assert_eq!(
        profile_of(&relay, &token, "clerk-clerk1").await?["has_photo"],
        true
    );
    // A bad staff number is refused with the relay's reason.
    page.fill("#profile-post", "综合窗口受理员").await?;
    page.fill("#profile-number", "SH 0815").await?;
    page.eval("(() => { document.getElementById('profile-number').removeAttribute('pattern'); return true; })()")
        .await?;
    page.click("#profile-card button[type=submit]").await?;
    page.wait_for(
        "document.getElementById('profile-card-status').textContent.includes('工号应为')",
        LIMIT,
    )
    .await?;
    page.screenshot(&screens_dir().join("console-24-profile.png"))
        .await?;
    browser.close().await;

    // The supervisor sets the post and staff number of a clerk at a window.
    let mut clerk = Clerk::connect(&relay, "clerk1", &data.staff_password()?).await?;
    clerk.open_window("window-08").await?;
    let browser = Browser::launch(&[]).await?;
    let page = browser.open(&relay.https_url("/")).await?;
    page.viewport(1400, 1000).await?;
    console_login(&page, &relay, &data, "supervisor1").await?;
    page.click("#profile-open").await?;
    page.wait_for(
        "[...document.querySelectorAll('#profile-clerk option')].some((o) => o.value === 'clerk-clerk1')",
        LIMIT,
    )
    .await?;
    page.eval("(() => { const s = document.getElementById('profile-clerk'); s.value = 'clerk-clerk1'; s.dispatchEvent(new Event('change')); return true; })()")
        .await?;
    page.wait_for(
        "document.getElementById('profile-name').textContent === '王敏（示范）'",
        LIMIT,
    )
    .await?;
    page.fill("#profile-post", "综合窗口受理员").await?;
    page.fill("#profile-number", "SH-0815").await?;
    page.click("#profile-card button[type=submit]").await?;
    page.wait_for(
        "document.getElementById('profile-card-status').textContent.includes('已保存')",
        LIMIT,
    )
    .await?;
    let p = profile_of(&relay, &token, "clerk-clerk1").await?;
    assert_eq!(
        (p["post"].as_str(), p["staff_number"].as_str()),
        (Some("综合窗口受理员"), Some("SH-0815"))
    );
    // Another centre's or an unknown record is not found, said plainly.
    page.fill("#profile-other", "clerk-nobody").await?;
    page.eval("(() => { document.getElementById('profile-other').dispatchEvent(new Event('change')); return true; })()")
        .await?;
    page.wait_for(
        "document.getElementById('profile-card-status').textContent.includes('找不到这位工作人员')",
        LIMIT,
    )
    .await?;

    browser.close().await;
    relay.kill().await?;
    Ok(())
}
