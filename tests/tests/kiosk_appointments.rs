//! 预约 at the kiosk, end to end: a real relay and a real agent on loopback, the kiosk page in
//! headless Chromium, a clerk speaking the console protocol.
//!
//! - with no remote window open the relay refuses a walk-in ticket itself (`no_open_window`,
//!   whatever the page shows), and the start screen offers 预约签到 and 预约办理 instead;
//! - the check-in screen: big keys, the last four digits of the mobile number and the booking
//!   code typed on the keypad, a wrong code refused in plain Chinese.
//!
//! Screens for each new state go to `docs/screens/kiosk-3N-*.png` (portrait and landscape), and
//! axe-core checks each of them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use e2e::{Agent, Browser, DemoData, Page, Relay};
use serde_json::{Value, json};
use serialport::SerialPort as _;

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

/// axe-core (npm, in `tests/a11y`) on the screen shown now: no serious or critical violation.
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

/// Every visible button of the current screen is at least 15 mm both ways (96 px per inch).
async fn keys_are_big(page: &Page<'_>) -> Result<()> {
    let small = page
        .eval("[...document.querySelectorAll('main .screen:not([hidden]) button')].filter((b) => b.offsetParent !== null).map((b) => b.getBoundingClientRect()).filter((r) => r.width < 15 / 25.4 * 96 - 0.5 || r.height < 15 / 25.4 * 96 - 0.5).length")
        .await?;
    anyhow::ensure!(small == json!(0), "{small} buttons smaller than 15 mm");
    Ok(())
}

/// Types `digits` on the visible keypad.
async fn type_keys(page: &Page<'_>, digits: &str) -> Result<()> {
    for d in digits.chars() {
        page.eval(&format!(
            "[...document.querySelectorAll('main .screen:not([hidden]) .keypad button')].find((b) => b.dataset.key === '{d}').click()"
        ))
        .await?;
    }
    Ok(())
}

/// Waits until the kiosk's scanner is waiting for the resident's QR (the screen says so).
async fn wait_scanning(agent: &Agent) -> Result<()> {
    let until = std::time::Instant::now() + LIMIT;
    loop {
        let activity: Value = reqwest::get(agent.url("/api/devices/activity"))
            .await?
            .json()
            .await?;
        if activity.to_string().contains("请将预约二维码对准扫码口") {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < until,
            "the scanner never waited: {activity}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn with_no_window_open_walk_ins_are_refused_and_check_in_is_offered() -> Result<()> {
    let data = DemoData::create().await?;
    let relay = Relay::start(&data, &[]).await?;
    // The kiosk's QR scanner: the agent's serial driver on a pseudo-terminal this test scans into.
    let (mut scanner, scanner_port) = serialport::TTYPort::pair().context("pty")?;
    let port = scanner_port.name().context("pty name")?;
    let agent = Agent::start_with(
        &data,
        &relay,
        &format!("[devices]\nsimulated = true\nscanner_port = {port:?}\n"),
    )
    .await?;
    agent.wait_status(LIMIT, |s| s["link"] == "online").await?;

    // The relay itself refuses a walk-in ticket: no remote window is open.
    let r = reqwest::Client::new()
        .post(agent.url("/api/ticket"))
        .json(&json!({ "category_id": "social-security" }))
        .send()
        .await?;
    assert_eq!(r.status(), 409);
    let body: Value = r.json().await?;
    assert_eq!(body["error"]["code"], "no_open_window", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("现在没有能办理该事项的远程窗口"),
        "{body}"
    );

    let browser = Browser::launch(&[]).await?;
    let page = browser.open(&agent.url("/kiosk")).await?;
    page.viewport(1080, 1920).await?;
    page.wait_for("document.body.dataset.screen === 'idle'", LIMIT)
        .await?;
    page.wait_for("!document.getElementById('idle-unstaffed').hidden", LIMIT)
        .await?;
    // No ticket button, but check-in and booking.
    assert_eq!(
        page.eval("document.getElementById('btn-start').offsetParent === null")
            .await?,
        json!(true)
    );
    for id in ["btn-checkin", "btn-book"] {
        assert_eq!(
            page.eval(&format!(
                "document.getElementById('{id}').offsetParent !== null"
            ))
            .await?,
            json!(true),
            "{id} is offered"
        );
    }

    // The check-in screen: keypad with big keys; a wrong code is refused in plain Chinese.
    page.click("#btn-checkin").await?;
    page.wait_for("document.body.dataset.screen === 'checkin'", LIMIT)
        .await?;
    keys_are_big(&page).await?;
    type_keys(&page, "5678").await?;
    page.wait_for(
        "document.getElementById('checkin-field-code').getAttribute('aria-pressed') === 'true'",
        LIMIT,
    )
    .await?;
    type_keys(&page, "K7P2Q9AB").await?;
    assert_eq!(text(&page, "checkin-tail").await?, "5678");
    assert_eq!(text(&page, "checkin-code").await?, "K7P2Q9AB");
    both(&page, "kiosk-30-checkin").await?;
    axe(&page, "check-in").await?;
    page.click("#btn-checkin-submit").await?;
    page.wait_for(
        "document.getElementById('checkin-status').textContent.length > 6 \
         && !document.getElementById('checkin-status').textContent.includes('正在签到')",
        LIMIT,
    )
    .await?;
    let refused = text(&page, "checkin-status").await?;
    assert!(
        refused.contains("预约"),
        "the refusal says what is wrong: {refused}"
    );
    assert_eq!(
        page.eval("document.body.dataset.screen").await?,
        json!("checkin"),
        "no ticket after a refused check-in"
    );
    let view: Value = reqwest::get(agent.url("/kiosk/api/view"))
        .await?
        .json()
        .await?;
    assert!(view["ticket"].is_null(), "{view}");
    both(&page, "kiosk-31-checkin-refused").await?;
    axe(&page, "check-in refused").await?;

    // A scanned QR goes the same way: the screen waits on the scanner, the agent reads the
    // code through its serial driver and checks in with it.
    page.eval("document.getElementById('checkin-status').textContent = ''")
        .await?;
    wait_scanning(&agent).await?;
    {
        use std::io::Write;
        scanner.write_all(b"APPT-NOT-A-BOOKING\r")?;
        scanner.flush()?;
    }
    page.wait_for(
        "document.getElementById('checkin-status').textContent.includes('预约')",
        LIMIT,
    )
    .await?;
    drop(scanner_port);

    // Back to the start.
    page.click("#btn-appt-back").await?;
    page.wait_for("document.body.dataset.screen === 'idle'", LIMIT)
        .await?;

    browser.close().await;
    agent.kill().await?;
    relay.kill().await?;
    Ok(())
}
