//! The kiosk follows the centre's staffing, end to end: a real relay and a real agent on
//! loopback, the kiosk page in headless Chromium, a clerk speaking the console protocol.
//!
//! - with no remote window open, the start screen offers no ticket and says so plainly, with
//!   the point's phone number;
//! - with the only window paused (会议, 30 minutes) the start screen shows "窗口暂停服务" and
//!   when it is expected back;
//! - a resident already waiting sees the pause sign with the expected return, and an estimate
//!   that counts the pause; after the clerk resumes the sign goes and the estimate is the
//!   ordinary one; when the clerk signs out, the resident is told the window closed.
//!
//! Screens for each state go to `docs/screens/` (portrait, and landscape for the waiting ones).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use e2e::clerk::Clerk;
use e2e::{Agent, Browser, DemoData, Page, Relay};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(30);

fn screens_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screens")
}

async fn shot(page: &Page<'_>, name: &str) -> Result<()> {
    page.eval("document.fonts.ready.then(() => true)").await?;
    page.screenshot(&screens_dir().join(format!("{name}.png")))
        .await
}

async fn both(page: &Page<'_>, name: &str) -> Result<()> {
    shot(page, name).await?;
    page.viewport(1920, 1080).await?;
    shot(page, &format!("{name}-landscape")).await?;
    page.viewport(1080, 1920).await
}

async fn text(page: &Page<'_>, id: &str) -> Result<String> {
    Ok(page
        .eval(&format!("document.getElementById('{id}').textContent"))
        .await?
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// Shanghai wall-clock "HH:MM" of a Unix ms instant (UTC+8, no daylight saving).
fn shanghai_hhmm(ms: i64) -> String {
    let secs = (ms / 1000 + 8 * 3600).rem_euclid(86_400);
    format!("{:02}:{:02}", secs / 3600, secs % 3600 / 60)
}

/// Runs axe-core (npm, installed into `tests/a11y` by `deploy/setup.sh test`) on the screen
/// shown now and fails on any serious or critical violation.
async fn axe(page: &Page<'_>, screen: &str) -> Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("a11y/node_modules/axe-core/axe.min.js");
    let source = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "axe-core is missing at {}: run `npm ci --prefix tests/a11y` (deploy/setup.sh test does)",
            path.display()
        )
    })?;
    if page.eval("typeof window.axe === 'object'").await? != json!(true) {
        page.eval(&source).await?;
    }
    let found = page
        .eval("axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`))")
        .await?;
    anyhow::ensure!(
        found == json!([]),
        "serious accessibility problems on the {screen} screen: {found}"
    );
    Ok(())
}

async fn kiosk_view(agent: &Agent) -> Result<Value> {
    Ok(reqwest::get(agent.url("/kiosk/api/view"))
        .await?
        .json()
        .await?)
}

#[tokio::test]
async fn the_kiosk_offers_tickets_only_while_a_window_is_open_and_shows_its_pause() -> Result<()> {
    let data = DemoData::create().await?;
    let relay = Relay::start(&data, &[]).await?;
    let agent = Agent::start(&data, &relay).await?;
    agent.wait_status(LIMIT, |s| s["link"] == "online").await?;
    let browser = Browser::launch(&[]).await?;
    let page = browser.open(&agent.url("/kiosk")).await?;
    page.viewport(1080, 1920).await?;
    page.wait_for("document.body.dataset.screen === 'idle'", LIMIT)
        .await?;

    // Nobody at a remote window: no ticket button, a plain sentence and the phone number.
    page.wait_for("!document.getElementById('idle-unstaffed').hidden", LIMIT)
        .await?;
    assert_eq!(
        page.eval("document.getElementById('btn-start').offsetParent === null")
            .await?,
        json!(true),
        "no ticket is offered"
    );
    assert_eq!(
        text(&page, "idle-unstaffed-title").await?,
        "现在没有开放的远程窗口"
    );
    let phone = kiosk_view(&agent).await?["extension_point"]["phone"]
        .as_str()
        .context("phone")?
        .to_owned();
    assert!(!phone.is_empty());
    assert_eq!(text(&page, "idle-unstaffed-phone").await?, phone);
    both(&page, "kiosk-12-no-window").await?;
    axe(&page, "no open window").await?;

    // The clerk signs in: tickets are offered.
    let mut clerk = Clerk::connect(&relay, "clerk1", &data.staff_password()?).await?;
    clerk.open_window("window-08").await?;
    page.wait_for(
        "document.getElementById('btn-start').offsetParent !== null",
        LIMIT,
    )
    .await?;

    // The clerk goes to a meeting for 30 minutes: the start screen shows the pause sign.
    clerk
        .op(json!({ "op": "pause_window", "reason": "meeting", "minutes": 30 }))
        .await?;
    page.wait_for(
        "document.getElementById('idle-unstaffed-title').textContent === '窗口暂停服务'",
        LIMIT,
    )
    .await?;
    let view = kiosk_view(&agent).await?;
    let staffing = view["staffing"].as_array().context("staffing")?;
    assert!(staffing.iter().all(|s| s["open"] == 0));
    let until = staffing[0]["paused"]["until_ms"]
        .as_i64()
        .context("expected return")?;
    let now = view["now_ms"].as_i64().context("now")?;
    assert!(
        (29 * 60_000..=30 * 60_000).contains(&(until - now)),
        "expected back in 30 minutes, got {} ms",
        until - now
    );
    assert_eq!(
        text(&page, "idle-unstaffed-back").await?,
        format!("预计恢复时间 {}", shanghai_hhmm(until))
    );
    shot(&page, "kiosk-13-paused").await?;
    axe(&page, "paused (start)").await?;

    // A paused window calls nothing.
    let refused = clerk.op(json!({ "op": "call_next" })).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("窗口暂停服务中")),
        "{refused:?}"
    );

    // Back from the meeting; a resident takes a ticket.
    clerk.op(json!({ "op": "resume_window" })).await?;
    page.wait_for(
        "document.getElementById('btn-start').offsetParent !== null",
        LIMIT,
    )
    .await?;
    page.click("#btn-start").await?;
    page.wait_for(
        "document.querySelector('[data-category=\"social-security\"]')",
        LIMIT,
    )
    .await?;
    page.click("[data-category=\"social-security\"]").await?;
    page.wait_for("document.body.dataset.screen === 'waiting'", LIMIT)
        .await?;
    page.wait_for("document.getElementById('waiting-pause').hidden", LIMIT)
        .await?;
    let ordinary_eta = text(&page, "waiting-eta").await?;

    // The clerk pauses again while the resident waits: the sign, the return, a longer wait.
    clerk
        .op(json!({ "op": "pause_window", "reason": "away", "minutes": 15 }))
        .await?;
    page.wait_for("!document.getElementById('waiting-pause').hidden", LIMIT)
        .await?;
    let status = agent
        .wait_status(LIMIT, |s| s["ticket"]["availability"]["open"] == 0)
        .await?;
    let paused = &status["ticket"]["availability"]["paused"];
    assert_eq!(paused["reason"], "away");
    let until = paused["until_ms"].as_i64().context("until")?;
    assert_eq!(text(&page, "waiting-pause-title").await?, "窗口暂停服务");
    assert_eq!(
        text(&page, "waiting-pause-body").await?,
        format!("预计恢复时间 {}", shanghai_hhmm(until))
    );
    let eta = status["ticket"]["eta_seconds"].as_u64().context("eta")?;
    assert!(
        (14 * 60..=15 * 60).contains(&eta),
        "the first in line waits for the return: {eta} s"
    );
    assert_eq!(text(&page, "waiting-eta").await?, "预计等候约 15 分钟");
    both(&page, "kiosk-14-waiting-paused").await?;
    axe(&page, "waiting, window paused").await?;

    // Resumed: the sign goes, the estimate is the ordinary one again.
    clerk.op(json!({ "op": "resume_window" })).await?;
    page.wait_for("document.getElementById('waiting-pause').hidden", LIMIT)
        .await?;
    assert_eq!(text(&page, "waiting-eta").await?, ordinary_eta);

    // The clerk signs out: the resident is told, keeps the number, and may give up.
    clerk.request(json!({ "type": "close_window" })).await?;
    page.wait_for(
        "document.getElementById('waiting-pause-title').textContent === '为您办理的窗口已关闭'",
        LIMIT,
    )
    .await?;
    assert_eq!(
        page.eval("document.getElementById('waiting-pause').hidden")
            .await?,
        json!(false)
    );
    let status = agent
        .wait_status(LIMIT, |s| s["ticket"]["availability"]["open"] == 0)
        .await?;
    assert_eq!(status["ticket"]["eta_seconds"], Value::Null);
    assert_eq!(status["ticket"]["state"], "waiting");
    both(&page, "kiosk-15-waiting-closed").await?;
    axe(&page, "waiting, window closed").await?;

    browser.close().await;
    agent.kill().await?;
    relay.kill().await?;
    Ok(())
}

/// A real 12×16 PNG (a blue-grey block), small enough to embed.
const PORTRAIT_PNG: [u8; 78] = [
    137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 12, 0, 0, 0, 16, 8, 2,
    0, 0, 0, 173, 3, 9, 80, 0, 0, 0, 21, 73, 68, 65, 84, 120, 156, 99, 208, 136, 90, 64, 16, 49,
    140, 42, 26, 85, 68, 156, 34, 0, 51, 5, 217, 129, 108, 20, 193, 243, 0, 0, 0, 0, 73, 69, 78,
    68, 174, 66, 96, 130,
];

async fn put(
    relay: &Relay,
    token: &str,
    path: &str,
    body: reqwest::Body,
    json: bool,
) -> Result<reqwest::Response> {
    let r = reqwest::Client::new()
        .put(format!("http://{}{path}", relay.http))
        .bearer_auth(token)
        .body(body);
    // The relay refuses writes without a content type (cross-site forgery), and tells a photo
    // by its bytes, not by the type the uploader claims.
    let content_type = if json {
        "application/json"
    } else {
        "application/octet-stream"
    };
    Ok(r.header("content-type", content_type).send().await?)
}

#[tokio::test]
async fn the_resident_sees_the_name_post_staff_number_and_photo_of_the_clerk() -> Result<()> {
    let data = DemoData::create().await?;
    let relay = Relay::start(&data, &[]).await?;
    let agent = Agent::start(&data, &relay).await?;
    agent.wait_status(LIMIT, |s| s["link"] == "online").await?;
    let password = data.staff_password()?;
    let me = e2e::clerk::login(&relay, "clerk1", &password).await?;
    let colleague = e2e::clerk::login(&relay, "clerk2", &password).await?;
    let supervisor = e2e::clerk::login(&relay, "supervisor1", &password).await?;
    let card = |post: &str, number: &str| {
        reqwest::Body::from(json!({ "post": post, "staff_number": number }).to_string())
    };

    // Bad uploads are refused with a reason; nobody changes a colleague's card.
    let gif = put(
        &relay,
        &me,
        "/api/v1/staff/clerk-clerk1/photo",
        b"GIF89a....".to_vec().into(),
        false,
    )
    .await?;
    assert_eq!(gif.status(), 400);
    assert!(gif.text().await?.contains("JPEG 或 PNG"));
    let mut big = PORTRAIT_PNG.to_vec();
    big.resize(65 * 1024, 0);
    let too_big = put(
        &relay,
        &me,
        "/api/v1/staff/clerk-clerk1/photo",
        big.into(),
        false,
    )
    .await?;
    assert_eq!(too_big.status(), 413);
    let other = put(
        &relay,
        &colleague,
        "/api/v1/staff/clerk-clerk1/card",
        card("x", "1"),
        true,
    )
    .await?;
    assert_eq!(other.status(), 403);
    let bad_number = put(
        &relay,
        &me,
        "/api/v1/staff/clerk-clerk1/card",
        card("受理员", "工号 1"),
        true,
    )
    .await?;
    assert_eq!(bad_number.status(), 400);

    // The clerk uploads a photo; the supervisor sets post and staff number.
    let ok = put(
        &relay,
        &me,
        "/api/v1/staff/clerk-clerk1/photo",
        PORTRAIT_PNG.to_vec().into(),
        false,
    )
    .await?;
    assert_eq!(ok.status(), 200, "{}", ok.text().await?);
    let ok = put(
        &relay,
        &supervisor,
        "/api/v1/staff/clerk-clerk1/card",
        card("综合窗口受理员", "SH-0815"),
        true,
    )
    .await?;
    assert_eq!(ok.status(), 200);

    // A resident's ticket is called: the kiosk shows who serves them.
    let mut clerk = Clerk::connect(&relay, "clerk1", &password).await?;
    clerk.open_window("window-08").await?;
    let browser = Browser::launch(&[]).await?;
    let page = browser.open(&agent.url("/kiosk")).await?;
    page.viewport(1080, 1920).await?;
    page.wait_for(
        "document.getElementById('btn-start').offsetParent !== null",
        LIMIT,
    )
    .await?;
    page.click("#btn-start").await?;
    page.wait_for(
        "document.querySelector('[data-category=\"general\"]')",
        LIMIT,
    )
    .await?;
    page.click("[data-category=\"general\"]").await?;
    page.wait_for("document.body.dataset.screen === 'waiting'", LIMIT)
        .await?;
    let called = clerk.op(json!({ "op": "call_next" })).await?;
    page.wait_for("document.body.dataset.screen === 'called'", LIMIT)
        .await?;
    page.wait_for("!document.getElementById('called-clerk').hidden", LIMIT)
        .await?;
    let shown = page
        .eval("(() => { const c = document.getElementById('called-clerk'); const img = c.querySelector('img'); return [c.querySelector('.clerk-name').textContent, c.querySelector('.clerk-post').textContent, c.querySelector('.clerk-number').textContent, !img.hidden && img.complete && img.naturalWidth]; })()")
        .await?;
    assert_eq!(
        shown,
        json!(["王敏（示范）", "综合窗口受理员", "工号 SH-0815", 12])
    );
    shot(&page, "kiosk-16-called-clerk").await?;
    axe(&page, "called").await?;

    // In session the card stays beside the video.
    let ticket_id = called["id"].as_str().context("ticket id")?;
    clerk
        .op(json!({ "op": "start", "ticket_id": ticket_id }))
        .await?;
    page.wait_for("document.body.dataset.screen === 'session'", LIMIT)
        .await?;
    page.wait_for("!document.getElementById('session-clerk').hidden && document.querySelector('#session-clerk .clerk-number').textContent === '工号 SH-0815'", LIMIT)
        .await?;
    // The "工作人员" label lies over the clerk's picture in one line, not in a vertical strip.
    let label = page
        .eval("(() => { const r = document.querySelector('#clerk-video > .video-label').getBoundingClientRect(); return r.width > r.height * 2; })()")
        .await?;
    assert_eq!(label, json!(true), "the clerk's label is squeezed");
    axe(&page, "in session").await?;

    browser.close().await;
    agent.kill().await?;
    relay.kill().await?;
    Ok(())
}

/// Every visible button on the page is at least 15 mm (56.7 CSS px) both ways.
async fn small_targets(page: &Page<'_>) -> Result<Value> {
    page.eval("[...document.querySelectorAll('button')].filter((b) => b.offsetParent !== null).map((b) => [b.id || b.textContent, b.getBoundingClientRect()]).filter(([, r]) => r.width < 56.6 || r.height < 56.6).map(([n, r]) => `${n} ${r.width}x${r.height}`)")
        .await
}

#[tokio::test]
async fn large_text_high_contrast_and_volume_last_for_one_ticket() -> Result<()> {
    let data = DemoData::create().await?;
    let relay = Relay::start(&data, &[]).await?;
    let agent = Agent::start(&data, &relay).await?;
    agent.wait_status(LIMIT, |s| s["link"] == "online").await?;
    let mut clerk = Clerk::connect(&relay, "clerk1", &data.staff_password()?).await?;
    clerk.open_window("window-08").await?;
    let browser = Browser::launch(&[]).await?;
    let page = browser.open(&agent.url("/kiosk")).await?;
    page.viewport(1080, 1920).await?;
    page.wait_for(
        "document.getElementById('btn-start').offsetParent !== null",
        LIMIT,
    )
    .await?;
    assert_eq!(
        small_targets(&page).await?,
        json!([]),
        "touch targets on the start screen"
    );
    axe(&page, "start").await?;
    // The check does find problems: a button without a name is a critical one.
    page.eval("(() => { const b = document.createElement('button'); b.id = 'probe'; document.querySelector('main').append(b); return true; })()")
        .await?;
    let probe = axe(&page, "start with a nameless button").await;
    assert!(
        probe
            .as_ref()
            .is_err_and(|e| e.to_string().contains("button-name")),
        "{probe:?}"
    );
    page.eval("(() => { document.getElementById('probe').remove(); return true; })()")
        .await?;
    let root = "parseFloat(getComputedStyle(document.documentElement).fontSize)";
    let normal = page.eval(root).await?.as_f64().context("root size")?;
    let ticket_px = "parseFloat(getComputedStyle(document.getElementById('btn-start')).fontSize)";
    let normal_button = page.eval(ticket_px).await?.as_f64().context("button")?;

    page.click("#text-toggle").await?;
    page.click("#contrast-toggle").await?;
    let large = page.eval(root).await?.as_f64().context("root size")?;
    assert!(large >= 1.5 * normal, "large text {large}px vs {normal}px");
    let large_button = page.eval(ticket_px).await?.as_f64().context("button")?;
    assert!(large_button >= 1.5 * normal_button, "buttons scale too");
    assert_eq!(
        page.eval("getComputedStyle(document.body).backgroundColor")
            .await?,
        json!("rgb(0, 0, 0)")
    );
    assert_eq!(text(&page, "volume-level").await?, "音量 4");
    page.click("#volume-up").await?;
    assert_eq!(text(&page, "volume-level").await?, "音量 5");
    page.click("#volume-up").await?;
    assert_eq!(
        text(&page, "volume-level").await?,
        "音量 5",
        "at most full volume"
    );
    for _ in 0..6 {
        page.click("#volume-down").await?;
    }
    assert_eq!(text(&page, "volume-level").await?, "音量 1", "never silent");
    assert_eq!(
        small_targets(&page).await?,
        json!([]),
        "touch targets in large text"
    );
    shot(&page, "kiosk-17-large-contrast").await?;
    axe(&page, "start, large text and high contrast").await?;

    // The settings stay with the resident while they wait…
    page.click("#btn-start").await?;
    page.wait_for(
        "document.querySelector('[data-category=\"general\"]')",
        LIMIT,
    )
    .await?;
    page.click("[data-category=\"general\"]").await?;
    page.wait_for("document.body.dataset.screen === 'waiting'", LIMIT)
        .await?;
    assert!(page.eval(root).await?.as_f64().context("root")? >= 1.5 * normal);
    assert_eq!(
        small_targets(&page).await?,
        json!([]),
        "touch targets while waiting"
    );
    both(&page, "kiosk-18-waiting-large-contrast").await?;
    axe(&page, "waiting, large text and high contrast").await?;
    // …and end with their ticket.
    page.click("#btn-cancel").await?;
    page.wait_for("!document.getElementById('dialog-cancel').hidden", LIMIT)
        .await?;
    page.click("#btn-cancel-yes").await?;
    page.wait_for("document.body.dataset.screen === 'idle'", LIMIT)
        .await?;
    page.wait_for("!document.documentElement.classList.contains('text-large') && !document.documentElement.classList.contains('contrast')", LIMIT)
        .await?;
    assert_eq!(text(&page, "volume-level").await?, "音量 4");

    browser.close().await;
    agent.kill().await?;
    relay.kill().await?;
    Ok(())
}
