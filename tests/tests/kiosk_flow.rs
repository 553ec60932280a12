//! The resident's kiosk screen end to end: a real relay and a real agent on loopback, the
//! agent's kiosk page in headless Chromium, a clerk speaking the console protocol, and a local
//! stand-in for the 好差评 system.
//!
//! - the whole flow, idle → category → waiting → called → in session → evaluation (a bad review
//!   with reasons) → thank-you → idle, and the evaluation arriving at the 好差评 receiver exactly
//!   once, bound to ticket, window, clerk, point and device, with a follow-up item opened;
//! - an evaluation survives SIGKILL of the agent between the tap and its delivery, and the
//!   relay stores it once although the agent delivers it again;
//! - no answer within the time is recorded as unrated;
//! - outside service hours the screen shows the hours and offers no ticket;
//! - with the relay unreachable the screen is calm and shows the point's phone number;
//! - an untouched choice screen returns to the start, and a waiting ticket nobody answers the
//!   "are you still here?" question for is given up.
//!
//! Each step's screen is saved to `docs/screens/` (portrait 1080×1920, and landscape
//! 1920×1080 for a few) for the README.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use e2e::clerk::{Clerk, login};
use e2e::hcp::HcpReceiver;
use e2e::{Agent, Browser, DemoData, Page, Relay};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(30);

fn screens_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screens")
}

async fn shot(page: &Page<'_>, name: &str) -> Result<()> {
    // Let the fonts settle before the picture (they are local files, so this is quick).
    page.eval("document.fonts.ready.then(() => true)").await?;
    page.screenshot(&screens_dir().join(format!("{name}.png")))
        .await
}

async fn on_screen(page: &Page<'_>, name: &str) -> Result<()> {
    page.wait_for(&format!("document.body.dataset.screen === '{name}'"), LIMIT)
        .await
}

fn forwarding(url: &str) -> Vec<String> {
    vec![
        "--set".into(),
        format!("evaluation.forward_url=\"{url}\""),
        "--set".into(),
        "evaluation.retry_base_secs=1".into(),
    ]
}

async fn start_relay(data: &DemoData, hcp: &HcpReceiver) -> Result<Relay> {
    let args = forwarding(&hcp.url);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Relay::start(data, &args).await
}

/// The supervisor's view of the centre's evaluations over the development listener.
async fn supervisor_get(relay: &Relay, data: &DemoData, path: &str) -> Result<Value> {
    let token = login(relay, "supervisor1", &data.staff_password()?).await?;
    let r = reqwest::Client::new()
        .get(format!("http://{}{path}", relay.http))
        .bearer_auth(token)
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("GET {path}: {}", r.status());
    }
    Ok(r.json().await?)
}

async fn kiosk_view(agent: &Agent) -> Result<Value> {
    Ok(reqwest::get(agent.url("/kiosk/api/view"))
        .await?
        .json()
        .await?)
}

async fn wait_view(agent: &Agent, check: impl Fn(&Value) -> bool) -> Result<Value> {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let v = kiosk_view(agent).await?;
        if check(&v) {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("the kiosk's view did not reach the expected state: {v}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn outbox(agent: &Agent) -> Result<Value> {
    Ok(reqwest::get(agent.url("/kiosk/api/outbox"))
        .await?
        .json()
        .await?)
}

#[tokio::test]
async fn a_resident_takes_a_ticket_is_served_and_rates_the_service() -> Result<()> {
    let data = DemoData::create().await?;
    let hcp = HcpReceiver::start().await?;
    let relay = start_relay(&data, &hcp).await?;
    let agent = Agent::start(&data, &relay).await?;
    agent.wait_status(LIMIT, |s| s["link"] == "online").await?;
    // The remote window is open: the kiosk offers tickets only while one is.
    let mut clerk = Clerk::connect(&relay, "clerk1", &data.staff_password()?).await?;
    clerk.open_window("window-08").await?;

    let browser = Browser::launch(&["--autoplay-policy=no-user-gesture-required"]).await?;
    let page = browser.open(&agent.url("/kiosk")).await?;
    page.viewport(1080, 1920).await?;
    on_screen(&page, "idle").await?;
    page.wait_for(
        "document.getElementById('point-name').textContent.includes('延伸服务点')",
        LIMIT,
    )
    .await?;
    page.wait_for("!document.getElementById('btn-start').hidden", LIMIT)
        .await?;
    let body_px: f64 = page
        .eval("parseFloat(getComputedStyle(document.body).fontSize)")
        .await?
        .as_f64()
        .context("font size")?;
    assert!(body_px >= 28.0, "body text is {body_px}px");
    let idle_text = page.eval("document.body.innerText").await?;
    assert!(
        idle_text
            .as_str()
            .unwrap_or("")
            .contains("本次服务全程录音录像")
    );
    shot(&page, "kiosk-01-idle").await?;
    page.viewport(1920, 1080).await?;
    shot(&page, "kiosk-01-idle-landscape").await?;
    // English on request; back to Chinese.
    page.click("#lang-toggle").await?;
    page.wait_for(
        "document.getElementById('btn-start').textContent === 'Take a number'",
        LIMIT,
    )
    .await?;
    shot(&page, "kiosk-01-idle-english-landscape").await?;
    page.click("#lang-toggle").await?;
    page.viewport(1080, 1920).await?;

    // Two taps: 取号办事, then the service.
    page.click("#btn-start").await?;
    on_screen(&page, "categories").await?;
    page.wait_for(
        "document.querySelector('[data-category=\"social-security\"]')",
        LIMIT,
    )
    .await?;
    shot(&page, "kiosk-02-categories").await?;
    page.click("[data-category=\"social-security\"]").await?;
    on_screen(&page, "waiting").await?;
    page.wait_for(
        "document.getElementById('waiting-number').textContent === 'YA001'",
        LIMIT,
    )
    .await?;
    shot(&page, "kiosk-03-waiting").await?;
    page.viewport(1920, 1080).await?;
    shot(&page, "kiosk-03-waiting-landscape").await?;
    page.viewport(1080, 1920).await?;

    // The clerk calls the ticket.
    let called = clerk.op(json!({ "op": "call_next" })).await?;
    let ticket_id = called["id"].as_str().context("ticket id")?.to_owned();
    assert_eq!(called["number"], "YA001");
    on_screen(&page, "called").await?;
    page.wait_for(
        "document.getElementById('called-window').textContent === '8号远程虚拟窗口'",
        LIMIT,
    )
    .await?;
    shot(&page, "kiosk-04-called").await?;

    clerk
        .op(json!({ "op": "start", "ticket_id": ticket_id }))
        .await?;
    on_screen(&page, "session").await?;
    page.wait_for(
        "document.getElementById('clerk-video') && document.getElementById('self-view')",
        LIMIT,
    )
    .await?;
    shot(&page, "kiosk-05-session").await?;
    // The clerk asks the resident to confirm something on the screen.
    clerk
        .device_command(
            &ticket_id,
            json!({
                "request_id": 77, "device": "screen", "timeout_ms": 60000,
                "name": "Screen.Prompt",
                "payload": { "kind": "confirm", "text": "请确认：您要办理的是社会保障卡补办" }
            }),
        )
        .await?;
    page.wait_for("!document.getElementById('dialog-prompt').hidden", LIMIT)
        .await?;
    page.wait_for(
        "document.getElementById('prompt-text').textContent.includes('社会保障卡补办')",
        LIMIT,
    )
    .await?;
    shot(&page, "kiosk-05-session-prompt").await?;
    page.click("#btn-prompt-confirm").await?;
    let completion = clerk.device_completion(77).await?;
    assert_eq!(completion["completion_code"], "success", "{completion}");
    assert_eq!(completion["payload"]["answer"], "confirmed", "{completion}");
    page.wait_for("document.getElementById('dialog-prompt').hidden", LIMIT)
        .await?;
    page.viewport(1920, 1080).await?;
    shot(&page, "kiosk-05-session-landscape").await?;
    page.viewport(1080, 1920).await?;

    clerk
        .op(json!({ "op": "finish", "ticket_id": ticket_id }))
        .await?;
    on_screen(&page, "evaluation").await?;
    shot(&page, "kiosk-06-evaluation").await?;
    page.viewport(1920, 1080).await?;
    shot(&page, "kiosk-06-evaluation-landscape").await?;
    page.viewport(1080, 1920).await?;

    // 不满意 asks for reasons before it can be sent.
    page.click("[data-level=\"dissatisfied\"]").await?;
    page.wait_for("!document.getElementById('reason-panel').hidden", LIMIT)
        .await?;
    page.wait_for(
        "document.getElementById('btn-reasons-submit').disabled",
        LIMIT,
    )
    .await?;
    page.click("[data-reason=\"too_slow\"]").await?;
    page.click("[data-reason=\"unclear\"]").await?;
    page.wait_for(
        "!document.getElementById('btn-reasons-submit').disabled",
        LIMIT,
    )
    .await?;
    shot(&page, "kiosk-07-reasons").await?;
    page.click("#btn-reasons-submit").await?;
    on_screen(&page, "thanks").await?;
    shot(&page, "kiosk-08-thanks").await?;
    on_screen(&page, "idle").await?;

    // Exactly one evaluation reaches the 好差评 system, bound to the whole service.
    let got = hcp.wait_for(1, LIMIT).await?;
    let e = &got[0].body;
    assert_eq!(e["case_number"], ticket_id.as_str());
    assert_eq!(e["ticket_number"], "YA001");
    assert_eq!(e["level"], 2);
    assert_eq!(e["bad_review"], true);
    assert_eq!(e["window"]["code"], "window-08");
    assert_eq!(e["staff"]["code"], "clerk-clerk1");
    assert_eq!(e["extension_point"]["code"], "demo-point-01");
    assert_eq!(e["device_id"], "kiosk-demo-01");
    assert_eq!(e["service"]["code"], "social-security");
    let reasons: Vec<&str> = e["reasons"]
        .as_array()
        .context("reasons")?
        .iter()
        .filter_map(|r| r["code"].as_str())
        .collect();
    assert_eq!(reasons, ["too_slow", "unclear"]);
    assert_eq!(
        got[0].idempotency_key,
        e["evaluation_id"].as_str().unwrap_or_default()
    );

    // The relay marks it delivered only after the receiver's answer, so once it says so, a
    // second copy would already have arrived.
    let list = wait_relay(&relay, &data, |v| {
        v.as_array()
            .is_some_and(|a| a.len() == 1 && a[0]["forwarding"]["state"] == "delivered")
    })
    .await?;
    assert_eq!(list[0]["clerk_name"], "王敏（示范）");
    assert_eq!(hcp.received().len(), 1, "forwarded exactly once");
    let followups = supervisor_get(&relay, &data, "/api/v1/supervisor/followups").await?;
    assert_eq!(followups.as_array().map(Vec::len), Some(1), "{followups}");
    assert_eq!(followups[0]["state"], "open");
    assert_eq!(followups[0]["overdue"], false);

    // The supervisor page shows the figures and the follow-up.
    let sup = browser.open(&relay.https_url("/supervisor")).await?;
    sup.viewport(1400, 1000).await?;
    sup.wait_for("!document.getElementById('login-view').hidden", LIMIT)
        .await?;
    e2e::staff::page_login(
        &sup,
        &relay,
        "/supervisor",
        "supervisor1",
        &data.staff_password()?,
        LIMIT,
    )
    .await?;
    sup.wait_for("document.getElementById('stats-total') && document.getElementById('stats-total').textContent.includes('差评 1 条')", LIMIT)
        .await?;
    sup.screenshot(&screens_dir().join("supervisor-stats.png"))
        .await?;
    sup.click("#tab-followups").await?;
    sup.wait_for("document.querySelector('#followup-rows tr')", LIMIT)
        .await?;
    sup.click("#followup-rows button").await?;
    sup.wait_for("document.getElementById('fu-verification')", LIMIT)
        .await?;
    sup.eval("document.getElementById('fu-visited').value = new Date(Date.now() + 8*3600*1000 - 60000).toISOString().slice(0,16)").await?;
    sup.fill("#fu-verification", "已电话回访居民，等候时间确实较长")
        .await?;
    sup.fill("#fu-rectification", "高峰时段增开远程窗口")
        .await?;
    sup.fill("#fu-feedback", "已向居民说明改进措施，居民表示理解")
        .await?;
    sup.screenshot(&screens_dir().join("supervisor-followup.png"))
        .await?;
    sup.click("#fu-close").await?;
    sup.wait_for("document.querySelector('#followup-list .empty')", LIMIT)
        .await?;
    let all = supervisor_get(&relay, &data, "/api/v1/supervisor/followups?state=all").await?;
    assert_eq!(all[0]["state"], "closed");
    assert_eq!(all[0]["rectification"], "高峰时段增开远程窗口");

    browser.close().await;
    agent.kill().await?;
    relay.kill().await?;
    Ok(())
}

async fn wait_relay(
    relay: &Relay,
    data: &DemoData,
    check: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let v = supervisor_get(relay, data, "/api/v1/supervisor/evaluations").await?;
        if check(&v) {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("the relay's evaluations did not reach the expected state: {v}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Takes a ticket at the kiosk, has the clerk serve it, and waits for the evaluation request.
async fn served_ticket(agent: &Agent, relay: &Relay, data: &DemoData) -> Result<String> {
    let mut clerk = Clerk::connect(relay, "clerk1", &data.staff_password()?).await?;
    clerk.open_window("window-08").await?;
    let r = reqwest::Client::new()
        .post(agent.url("/api/ticket"))
        .json(&json!({ "category_id": "social-security" }))
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("taking a ticket failed: {}", r.status());
    }
    let ticket_id = clerk.serve_next().await?;
    wait_view(agent, |v| {
        v["evaluation"]["ticket_id"] == ticket_id.as_str()
    })
    .await?;
    Ok(ticket_id)
}

#[tokio::test]
async fn an_evaluation_survives_sigkill_of_the_agent_and_is_stored_once() -> Result<()> {
    let data = DemoData::create().await?;
    let hcp = HcpReceiver::start().await?;
    let relay = start_relay(&data, &hcp).await?;
    let agent = Agent::start(&data, &relay).await?;
    agent.wait_status(LIMIT, |s| s["link"] == "online").await?;
    let ticket_id = served_ticket(&agent, &relay, &data).await?;

    // The relay stops answering; the resident taps; the kiosk has it on disk at once.
    relay.pause()?;
    let r = reqwest::Client::new()
        .post(agent.url("/kiosk/api/evaluation"))
        .json(&json!({ "ticket_id": ticket_id, "level": "satisfied" }))
        .send()
        .await?;
    assert_eq!(r.status(), 201, "recorded before thank-you");
    assert_eq!(outbox(&agent).await?["pending"], 1);
    // Power is cut before delivery (the agent may have written the frame to the relay's socket
    // already: the relay then stores it on resuming, and the new agent delivers it again).
    agent.kill().await?;
    relay.resume()?;

    let agent = Agent::start(&data, &relay).await?;
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let o = outbox(&agent).await?;
        if o["pending"] == 0 && o["delivered"] == 1 {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("the restarted agent did not deliver the evaluation: {o}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let list = wait_relay(&relay, &data, |v| {
        v.as_array().is_some_and(|a| {
            !a.is_empty() && a.iter().all(|e| e["forwarding"]["state"] == "delivered")
        })
    })
    .await?;
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(1),
        "stored exactly once: {list}"
    );
    assert_eq!(list[0]["ticket_id"], ticket_id.as_str());
    assert_eq!(list[0]["level"], "satisfied");
    let got = hcp.received();
    assert_eq!(got.len(), 1, "forwarded exactly once");
    assert_eq!(got[0].body["level_name"], "满意");
    // No follow-up for a good review.
    let followups = supervisor_get(&relay, &data, "/api/v1/supervisor/followups?state=all").await?;
    assert_eq!(followups.as_array().map(Vec::len), Some(0));

    agent.kill().await?;
    relay.kill().await?;
    Ok(())
}

#[tokio::test]
async fn no_answer_in_time_is_recorded_as_unrated_and_forwarding_retries() -> Result<()> {
    let data = DemoData::create().await?;
    let hcp = HcpReceiver::start().await?;
    // The 好差评 system is down at first: the relay retries until it answers.
    hcp.set_failing(true);
    let relay = start_relay(&data, &hcp).await?;
    let agent = Agent::start_with(&data, &relay, "[kiosk]\nevaluation_timeout_secs = 5\n").await?;
    agent.wait_status(LIMIT, |s| s["link"] == "online").await?;
    let ticket_id = served_ticket(&agent, &relay, &data).await?;
    // Nobody taps.
    wait_view(&agent, |v| v["evaluation"].is_null()).await?;
    let pending = wait_relay(&relay, &data, |v| {
        v.as_array()
            .is_some_and(|a| a.len() == 1 && a[0]["forwarding"]["attempts"].as_u64() >= Some(1))
    })
    .await?;
    assert_eq!(pending[0]["forwarding"]["state"], "pending");
    hcp.set_failing(false);
    let got = hcp.wait_for(1, LIMIT).await?;
    assert_eq!(got[0].body["case_number"], ticket_id.as_str());
    assert_eq!(got[0].body["rated"], false);
    assert_eq!(got[0].body["level"], Value::Null);
    assert_eq!(got[0].body["level_name"], "未评价");
    let stats = supervisor_get(&relay, &data, "/api/v1/supervisor/evaluations/stats").await?;
    assert_eq!(stats["total"]["evaluations"], 1);
    assert_eq!(stats["total"]["rated"], 0);

    agent.kill().await?;
    relay.kill().await?;
    Ok(())
}

/// Today's date in Shanghai, YYYY-MM-DD.
fn shanghai_today() -> String {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(0))
        .unwrap_or(0);
    protocol::hours::shanghai(now_ms).0.to_string()
}

#[tokio::test]
async fn outside_service_hours_the_kiosk_shows_the_hours_and_offers_no_ticket() -> Result<()> {
    let data = DemoData::create().await?;
    // Weekdays 9:00–17:00, and today closed (a holiday), whatever the time of the run.
    let hours = json!({
        "weekly": [{ "weekdays": [1, 2, 3, 4, 5], "periods": [{ "open": "09:00", "close": "17:00" }] }],
        "exceptions": [{ "date": shanghai_today(), "periods": [], "note": "测试闭馆" }],
    });
    let db = data.relay_dir().join("relay.sqlite");
    let sql = format!(
        "UPDATE extension_points SET hours_json = '{hours}', service_hours = '周一至周五 9:00-17:00' WHERE id = 'demo-point-01';"
    );
    let out = tokio::process::Command::new("sqlite3")
        .arg(&db)
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
    on_screen(&page, "closed").await?;
    page.wait_for(
        "document.getElementById('closed-next').textContent.includes('9:00')",
        LIMIT,
    )
    .await?;
    page.wait_for(
        "document.getElementById('closed-hours').textContent.includes('周一至周五')",
        LIMIT,
    )
    .await?;
    assert_eq!(
        page.eval("document.getElementById('btn-start').offsetParent === null")
            .await?,
        true
    );
    shot(&page, "kiosk-09-closed").await?;
    // The relay refuses a ticket too, whatever the screen shows.
    let r = reqwest::Client::new()
        .post(agent.url("/api/ticket"))
        .json(&json!({ "category_id": "social-security" }))
        .send()
        .await?;
    assert_eq!(r.status(), 409);

    browser.close().await;
    agent.kill().await?;
    relay.kill().await?;
    Ok(())
}

#[tokio::test]
async fn with_the_relay_unreachable_the_kiosk_shows_the_points_phone() -> Result<()> {
    let data = DemoData::create().await?;
    let relay = Relay::start(&data, &[]).await?;
    let agent = Agent::start(&data, &relay).await?;
    agent.wait_status(LIMIT, |s| s["link"] == "online").await?;
    let browser = Browser::launch(&[]).await?;
    let page = browser.open(&agent.url("/kiosk")).await?;
    page.viewport(1080, 1920).await?;
    on_screen(&page, "idle").await?;
    relay.kill().await?;
    on_screen(&page, "offline").await?;
    page.wait_for(
        "document.getElementById('offline-phone').textContent === '021-12345678'",
        LIMIT,
    )
    .await?;
    shot(&page, "kiosk-10-offline").await?;

    agent.kill().await?;
    browser.close().await;
    Ok(())
}

#[tokio::test]
async fn inactivity_returns_to_the_start_and_abandoned_tickets_are_cancelled() -> Result<()> {
    let data = DemoData::create().await?;
    let relay = Relay::start(&data, &[]).await?;
    let agent = Agent::start_with(
        &data,
        &relay,
        "[kiosk]\nidle_return_secs = 5\npresence_check_secs = 10\npresence_grace_secs = 5\n",
    )
    .await?;
    agent.wait_status(LIMIT, |s| s["link"] == "online").await?;
    let mut clerk = Clerk::connect(&relay, "clerk1", &data.staff_password()?).await?;
    clerk.open_window("window-08").await?;
    let browser = Browser::launch(&[]).await?;
    let page = browser.open(&agent.url("/kiosk")).await?;
    page.viewport(1080, 1920).await?;
    on_screen(&page, "idle").await?;
    page.wait_for("!document.getElementById('btn-start').hidden", LIMIT)
        .await?;

    // Someone opens the services and walks away: back to the start.
    page.click("#btn-start").await?;
    on_screen(&page, "categories").await?;
    on_screen(&page, "idle").await?;

    // Someone takes a ticket and walks away: asked, then the ticket is given up.
    page.click("#btn-start").await?;
    page.wait_for(
        "document.querySelector('[data-category=\"general\"]')",
        LIMIT,
    )
    .await?;
    page.click("[data-category=\"general\"]").await?;
    on_screen(&page, "waiting").await?;
    page.wait_for("!document.getElementById('dialog-presence').hidden", LIMIT)
        .await?;
    shot(&page, "kiosk-11-still-there").await?;
    let status = agent
        .wait_status(LIMIT, |s| s["ticket"]["state"] == "cancelled")
        .await?;
    assert_eq!(status["ticket"]["category_name"], "综合事务");
    on_screen(&page, "idle").await?;

    browser.close().await;
    agent.kill().await?;
    relay.kill().await?;
    Ok(())
}

/// DNS rebinding: a page on the kiosk's browser whose name now resolves to 127.0.0.1 sends its
/// own name as `Host`. Every route of the agent's local API answers it 421, the resident's
/// ticket and prompts included; the kiosk's own page (a loopback host) still works.
#[tokio::test]
async fn the_local_api_refuses_foreign_host_names() -> Result<()> {
    let data = DemoData::create().await?;
    let relay = Relay::start(&data, &[]).await?;
    let agent = Agent::start(&data, &relay).await?;
    agent.wait_status(LIMIT, |s| s["link"] == "online").await?;
    let client = reqwest::Client::new();
    let foreign = format!(
        "evil.example:{}",
        agent.local.rsplit(':').next().unwrap_or("")
    );
    let requests = [
        client.get(agent.url("/api/status")),
        client
            .post(agent.url("/api/ticket"))
            .json(&json!({"category_id": "social"})),
        client.delete(agent.url("/api/ticket")),
        client.get(agent.url("/api/devices/activity")),
        client
            .post(agent.url("/api/prompt/answer"))
            .json(&json!({"answer": "confirm"})),
    ];
    for request in requests {
        let r = request.header("host", &foreign).send().await?;
        assert_eq!(r.status(), 421, "{:?}", r.url());
    }
    assert_eq!(
        client.get(agent.url("/api/status")).send().await?.status(),
        200
    );
    assert_eq!(
        agent.status().await?["ticket"],
        Value::Null,
        "no ticket was taken"
    );
    agent.kill().await?;
    relay.kill().await?;
    Ok(())
}
