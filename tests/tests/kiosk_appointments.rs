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

/// Types `digits` on the visible keypad (each key waited for: the pad is rebuilt when the
/// field changes between digits and the booking code's letters).
async fn type_keys(page: &Page<'_>, digits: &str) -> Result<()> {
    for d in digits.chars() {
        let key = format!(
            "[...document.querySelectorAll('main .screen:not([hidden]) .keypad button')].find((b) => b.dataset.key === '{d}')"
        );
        page.wait_for(&format!("!!{key}"), LIMIT)
            .await
            .with_context(|| format!("key {d} of {digits}"))?;
        page.eval(&format!("{key}.click()"))
            .await
            .with_context(|| format!("key {d} of {digits}"))?;
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

// --- a real booking, end to end -------------------------------------------------------------

const POINT: &str = "demo-point-01";
const CATEGORY: &str = "social-security";

fn now_ms() -> Result<i64> {
    Ok(i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis(),
    )?)
}

/// Today's Shanghai date, and "M月D日" of tomorrow's (as the kiosk writes dates).
fn shanghai_today_and_tomorrow() -> Result<(String, String)> {
    let (today, _) = protocol::hours::shanghai(now_ms()?);
    let tomorrow =
        protocol::hours::Date::from_days_since_epoch(today.days_since_epoch() + 1).to_string();
    let (m, d) = (&tomorrow[5..7], &tomorrow[8..10]);
    let md = format!(
        "{}月{}日",
        m.trim_start_matches('0'),
        d.trim_start_matches('0')
    );
    Ok((today.to_string(), md))
}

/// The demonstration centre's remote windows: normally 08:30–17:00 every day, and all of
/// today (a dated exception), so that a run at any hour has slots now and the next opening
/// after today is tomorrow 08:30. Five-minute slots: the first one offered starts within five
/// minutes, inside the 15-minute early check-in.
fn schedule(today: &str) -> String {
    format!(
        r#"
[appointments]
code_resend_secs = 0

[[appointments.centres]]
centre_id = "demo-centre"
slot_minutes = 5
capacity = 2

[appointments.centres.hours]
weekly = [{{ weekdays = [1, 2, 3, 4, 5, 6, 7], periods = [{{ open = "08:30", close = "17:00" }}] }}]
exceptions = [{{ date = "{today}", periods = [{{ open = "00:00", close = "24:00" }}] }}]
"#
    )
}

/// The newest code the development sender wrote for a masked number, after `seen` codes.
async fn sms_code(data: &DemoData, masked: &str, seen: usize) -> Result<String> {
    let path = data.relay_dir().join("dev-sms.jsonl");
    let until = std::time::Instant::now() + LIMIT;
    loop {
        let codes: Vec<String> = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["to"] == masked)
            .filter_map(|v| v["code"].as_str().map(str::to_owned))
            .collect();
        if codes.len() > seen {
            return Ok(codes[codes.len() - 1].clone());
        }
        anyhow::ensure!(
            std::time::Instant::now() < until,
            "no verification code for {masked} in {}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Books the first free slot of the category on the public API, as the booking page does;
/// returns (booking code, QR payload).
async fn book_public(relay: &Relay, data: &DemoData, mobile: &str) -> Result<(String, String)> {
    let base = format!("http://{}", relay.http);
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/api/v1/public/appointments/code"))
        .json(&json!({ "mobile": mobile }))
        .send()
        .await?;
    anyhow::ensure!(r.status() == 200, "code: {}", r.text().await?);
    let code = sms_code(data, &format!("{}****{}", &mobile[..3], &mobile[7..]), 0).await?;
    let slots: Value = client
        .get(format!(
            "{base}/api/v1/public/appointment-points/{POINT}/slots?category={CATEGORY}"
        ))
        .send()
        .await?
        .json()
        .await?;
    let start = slots["slots"][0]["start_ms"].as_i64().context("a slot")?;
    let r = client
        .post(format!("{base}/api/v1/public/appointments"))
        .json(
            &json!({ "point_id": POINT, "category_id": CATEGORY, "slot_start_ms": start,
                       "name": "王小明", "mobile": mobile, "code": code }),
        )
        .send()
        .await?;
    anyhow::ensure!(r.status() == 200, "booking: {}", r.text().await?);
    let booked: Value = r.json().await?;
    Ok((
        booked["code"].as_str().context("booking code")?.to_owned(),
        booked["qr_payload"].as_str().context("qr")?.to_owned(),
    ))
}

/// Moves a booking to another slot of today in the relay's database: the public API books
/// only slots that start after now, and a test cannot wait for one to begin or to end.
async fn move_booking(data: &DemoData, code: &str, start_ms: i64, end_ms: i64) -> Result<()> {
    let sql = format!(
        "UPDATE appointments SET slot_start_ms = {start_ms}, slot_end_ms = {end_ms} WHERE code = '{code}';"
    );
    let out = tokio::process::Command::new("sqlite3")
        .args(["-cmd", ".timeout 5000"])
        .arg(data.relay_dir().join("relay.sqlite"))
        .arg(&sql)
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "sqlite3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A walk-in ticket taken at another kiosk of the point; returns its number.
async fn walk_in(agent: &Agent) -> Result<String> {
    let r = reqwest::Client::new()
        .post(agent.url("/api/ticket"))
        .json(&json!({ "category_id": CATEGORY }))
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "walk-in: {}", r.text().await?);
    let body: Value = r.json().await?;
    Ok(body["number"].as_str().context("number")?.to_owned())
}

async fn kiosk_ticket(agent: &Agent) -> Result<Value> {
    let view: Value = reqwest::get(agent.url("/kiosk/api/view"))
        .await?
        .json()
        .await?;
    Ok(view["ticket"].clone())
}

/// Checks in on the keypad: the last four digits, then the booking code.
async fn check_in_on_keypad(page: &Page<'_>, tail: &str, code: &str) -> Result<()> {
    page.click("#btn-checkin").await?;
    page.wait_for("document.body.dataset.screen === 'checkin'", LIMIT)
        .await?;
    type_keys(page, tail).await?;
    page.wait_for(
        "document.getElementById('checkin-field-code').getAttribute('aria-pressed') === 'true'",
        LIMIT,
    )
    .await?;
    type_keys(page, code).await?;
    page.click("#btn-checkin-submit").await?;
    page.wait_for("document.body.dataset.screen === 'waiting'", LIMIT)
        .await
}

#[tokio::test]
async fn booked_residents_check_in_and_are_served_first_within_their_slot() -> Result<()> {
    let (today, tomorrow) = shanghai_today_and_tomorrow()?;
    let data = DemoData::create().await?;
    // A second kiosk at the same point, where a walk-in takes a ticket.
    let other_kiosk = data.enroll_kiosk("kiosk-demo-02").await?;
    let config = data.dir.path().join("appointments.toml");
    std::fs::write(&config, schedule(&today))?;
    let config = config.display().to_string();
    let relay = Relay::start(&data, &["--config", &config]).await?;
    let (mut scanner, scanner_port) = serialport::TTYPort::pair().context("pty")?;
    let port = scanner_port.name().context("pty name")?;
    let agent = Agent::start_with(
        &data,
        &relay,
        &format!("[devices]\nsimulated = true\nscanner_port = {port:?}\n"),
    )
    .await?;
    agent.wait_status(LIMIT, |s| s["link"] == "online").await?;
    let browser = Browser::launch(&[]).await?;
    let page = browser.open(&agent.url("/kiosk")).await?;
    page.viewport(1080, 1920).await?;

    // No remote window is open: the start screen says when the windows open next (tomorrow
    // 08:30 by the schedule) and offers booking.
    page.wait_for("!document.getElementById('idle-unstaffed').hidden", LIMIT)
        .await?;
    page.wait_for(
        "!document.getElementById('idle-next-opening').hidden",
        LIMIT,
    )
    .await?;
    let next = text(&page, "idle-next-opening").await?;
    assert!(
        next.starts_with("下次开放时间：") && next.contains(&tomorrow) && next.contains("08:30"),
        "next opening {next:?}, expected {tomorrow} 08:30"
    );
    both(&page, "kiosk-32-no-window-next-opening").await?;
    axe(&page, "no window, next opening").await?;

    // Booking at the kiosk: category → time → mobile number → SMS code → the booking code.
    page.click("#btn-book").await?;
    page.wait_for("document.body.dataset.screen === 'book'", LIMIT)
        .await?;
    page.wait_for(
        &format!("document.querySelector('[data-appt=\"c:{CATEGORY}\"]')"),
        LIMIT,
    )
    .await?;
    keys_are_big(&page).await?;
    both(&page, "kiosk-33-book-category").await?;
    axe(&page, "booking: category").await?;
    page.click(&format!("[data-appt=\"c:{CATEGORY}\"]")).await?;
    page.wait_for(
        "document.querySelector('#book-choices [data-appt=\"s:0\"]:not([disabled])')",
        LIMIT,
    )
    .await?;
    keys_are_big(&page).await?;
    both(&page, "kiosk-34-book-time").await?;
    axe(&page, "booking: time").await?;
    page.click("[data-appt=\"s:0\"]").await?;
    page.wait_for("!document.getElementById('book-entry').hidden", LIMIT)
        .await?;
    type_keys(&page, "13600003333").await?;
    assert_eq!(text(&page, "book-entry-value").await?, "13600003333");
    keys_are_big(&page).await?;
    both(&page, "kiosk-35-book-mobile").await?;
    axe(&page, "booking: mobile number").await?;
    page.click("#btn-book-next").await?;
    let sms = sms_code(&data, "136****3333", 0).await?;
    page.wait_for(
        "document.getElementById('book-entry-label').textContent.includes('验证码')",
        LIMIT,
    )
    .await?;
    type_keys(&page, &sms).await?;
    both(&page, "kiosk-36-book-code").await?;
    axe(&page, "booking: code").await?;
    page.click("#btn-book-next").await?;
    page.wait_for("document.body.dataset.screen === 'booked'", LIMIT)
        .await?;
    page.wait_for(
        "!document.getElementById('booked-qr').hidden && document.getElementById('booked-qr').complete && document.getElementById('booked-qr').naturalWidth > 0",
        LIMIT,
    )
    .await?;
    let kiosk_code = text(&page, "booked-code").await?;
    assert_eq!(kiosk_code.len(), 8, "{kiosk_code:?}");
    let big = page
        .eval("parseFloat(getComputedStyle(document.getElementById('booked-code')).fontSize)")
        .await?
        .as_f64()
        .context("size")?;
    assert!(big >= 48.0, "the booking code is shown large: {big}px");
    both(&page, "kiosk-37-booked").await?;
    axe(&page, "booked").await?;
    page.click("#btn-booked-done").await?;
    page.wait_for("document.body.dataset.screen === 'idle'", LIMIT)
        .await?;

    // A clerk opens the remote window; a walk-in takes a ticket at the point's other kiosk.
    let mut clerk = e2e::clerk::Clerk::connect(&relay, "clerk1", &data.staff_password()?).await?;
    clerk.open_window("window-08").await?;
    page.wait_for(
        "document.getElementById('btn-start').offsetParent !== null",
        LIMIT,
    )
    .await?;
    let other = Agent::start_as(&data, &relay, "agent-02", &other_kiosk, "").await?;
    other.wait_status(LIMIT, |s| s["link"] == "online").await?;
    let walk_in_number = walk_in(&other).await?;

    // Booked on the public API; the slot running now (booked earlier, as residents do).
    let (_, qr) = book_public(&relay, &data, "13812345678").await?;
    let now = now_ms()?;
    let code = qr.trim_start_matches("RVWB1:").to_owned();
    move_booking(&data, &code, now - 60_000, now + 4 * 60_000).await?;

    // Check-in by QR on the kiosk's scanner (its serial driver reads the pseudo-terminal).
    page.click("#btn-checkin").await?;
    page.wait_for("document.body.dataset.screen === 'checkin'", LIMIT)
        .await?;
    wait_scanning(&agent).await?;
    {
        use std::io::Write;
        scanner.write_all(format!("{qr}\r").as_bytes())?;
        scanner.flush()?;
    }
    page.wait_for("document.body.dataset.screen === 'waiting'", LIMIT)
        .await?;
    page.wait_for(
        "!document.getElementById('waiting-appt').hidden && document.getElementById('waiting-appt').textContent.startsWith('预约')",
        LIMIT,
    )
    .await?;
    let ticket = kiosk_ticket(&agent).await?;
    assert!(ticket["appointment"].is_object(), "{ticket}");
    both(&page, "kiosk-38-checked-in").await?;
    axe(&page, "checked in with an appointment").await?;

    // Call next: the appointment within its slot comes before the walk-ins who came earlier.
    let called = clerk.op(json!({ "op": "call_next" })).await?;
    assert_eq!(called["id"], ticket["ticket_id"], "{called} vs {ticket}");
    let id = called["id"].as_str().context("id")?.to_owned();
    page.wait_for("document.body.dataset.screen === 'called'", LIMIT)
        .await?;
    assert_eq!(
        page.eval("document.getElementById('called-appt').hidden")
            .await?,
        json!(false)
    );
    clerk.op(json!({ "op": "start", "ticket_id": id })).await?;
    clerk.op(json!({ "op": "finish", "ticket_id": id })).await?;
    page.wait_for("document.body.dataset.screen === 'evaluation'", LIMIT)
        .await?;
    page.click("[data-level=\"very_satisfied\"]").await?;
    page.wait_for("document.body.dataset.screen === 'idle'", LIMIT)
        .await?;

    // The booking made at the kiosk, checked in on the keypad: on time (its slot starts within
    // the early check-in), the ticket says 预约 with the slot.
    check_in_on_keypad(&page, "3333", &kiosk_code).await?;
    page.wait_for(
        "!document.getElementById('waiting-appt').hidden && document.getElementById('waiting-appt').textContent.startsWith('预约')",
        LIMIT,
    )
    .await?;
    assert!(kiosk_ticket(&agent).await?["appointment"].is_object());
    // The resident leaves again (cancels on the kiosk).
    let r = reqwest::Client::new()
        .delete(agent.url("/api/ticket"))
        .send()
        .await?;
    assert_eq!(r.status(), 204);
    page.wait_for("document.body.dataset.screen === 'idle'", LIMIT)
        .await?;

    // A late check-in: the slot ended a minute ago. An ordinary ticket, served by arrival.
    let (late_code, _) = book_public(&relay, &data, "13700002222").await?;
    let now = now_ms()?;
    move_booking(&data, &late_code, now - 6 * 60_000, now - 60_000).await?;
    check_in_on_keypad(&page, "2222", &late_code).await?;
    page.wait_for("!document.getElementById('waiting-late').hidden", LIMIT)
        .await?;
    assert_eq!(
        text(&page, "waiting-late").await?,
        "您已超过预约时段，按到场顺序办理"
    );
    assert_eq!(
        page.eval("document.getElementById('waiting-appt').hidden")
            .await?,
        json!(true)
    );
    let late = kiosk_ticket(&agent).await?;
    assert!(late["appointment"].is_null(), "{late}");
    both(&page, "kiosk-39-late-check-in").await?;
    axe(&page, "late check-in").await?;
    // The walk-in came first, so it is called first; then the late arrival.
    let called = clerk.op(json!({ "op": "call_next" })).await?;
    assert_eq!(called["number"], walk_in_number.as_str(), "{called}");
    let id = called["id"].as_str().context("id")?.to_owned();
    clerk
        .op(json!({ "op": "no_show", "ticket_id": id }))
        .await?;
    let called = clerk.op(json!({ "op": "call_next" })).await?;
    assert_eq!(called["id"], late["ticket_id"], "{called}");

    // Nothing personal in either log.
    for log in [relay.log_text(), agent.log_text()] {
        for secret in ["13812345678", "13700002222", "13600003333", "王小明"] {
            assert!(!log.contains(secret), "{secret} in a log");
        }
    }
    drop(scanner_port);
    browser.close().await;
    other.kill().await?;
    agent.kill().await?;
    relay.kill().await?;
    Ok(())
}
