//! End to end: a real relay and a real kiosk agent on loopback, and a clerk in headless
//! Chromium who logs in, picks the remote virtual window, sees the kiosk's ticket in the
//! unified queue and calls it; the agent hears that it was called, and by which window.

use std::time::Duration;

use e2e::{Agent, Browser, DemoData, Relay};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_clerk_in_the_browser_calls_the_kiosks_ticket() -> anyhow::Result<()> {
    let data = DemoData::create().await?;
    let relay = Relay::start(&data, &[]).await?;
    let agent = Agent::start(&data, &relay).await?;
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
    page.eval(
        "[...document.querySelectorAll('#window-list button')].find(b => b.textContent.includes('8号远程虚拟窗口')).click()",
    )
    .await?;
    page.wait_for("!document.getElementById('desk-view').hidden", LIMIT)
        .await?;

    // The clerk is at the remote window: now residents may take tickets.
    // The resident takes a remote ticket at the kiosk.
    let taken: serde_json::Value = reqwest::Client::new()
        .post(agent.url("/api/ticket"))
        .json(&json!({ "category_id": "social-security" }))
        .send()
        .await?
        .json()
        .await?;
    let number = taken["number"].as_str().expect("ticket number").to_owned();
    assert_eq!(number, "YA001");

    // An on-site ticket from the centre's ticket machine joins the same queue.
    let on_site = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()?
        .post(relay.https_url("/api/v1/tickets"))
        .bearer_auth(data.ticket_machine_credential()?)
        .json(&json!({ "category_id": "social-security" }))
        .send()
        .await?;
    assert_eq!(on_site.status(), 201);

    // The unified queue shows both tickets; this window's filter hides nothing it may call.
    page.eval("document.getElementById('only-mine').click()")
        .await?;
    page.wait_for(
        &format!("document.querySelector('tr[data-number=\"{number}\"]') && document.querySelector('tr[data-number=\"A001\"]')"),
        LIMIT,
    )
    .await?;
    page.screenshot(&std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-queue.png"))
        .await?;

    // The clerk steps into a meeting: the window shows it is paused, calls nothing, and the
    // waiting kiosk hears why; back, the window calls again.
    page.click("#pause-window").await?;
    page.eval(
        "(() => { document.getElementById('pause-reason').value = 'meeting'; return true; })()",
    )
    .await?;
    page.click("#pause-form button[type=submit]").await?;
    page.wait_for(
        "!document.getElementById('pause-banner').hidden && document.getElementById('pause-text').textContent.includes('会议') && document.getElementById('btn-next').disabled",
        LIMIT,
    )
    .await?;
    let status = agent
        .wait_status(LIMIT, |s| {
            s["ticket"]["availability"]["paused"]["reason"] == "meeting"
        })
        .await?;
    assert_eq!(status["ticket"]["availability"]["open"], 0);
    page.click("#resume-window").await?;
    page.wait_for(
        "document.getElementById('pause-banner').hidden && !document.getElementById('btn-next').disabled",
        LIMIT,
    )
    .await?;

    page.click("#btn-next").await?;
    page.wait_for(
        &format!("document.getElementById('cur-number').textContent === '{number}'"),
        LIMIT,
    )
    .await?;

    let status = agent
        .wait_status(LIMIT, |s| s["ticket"]["state"] == "called")
        .await?;
    assert_eq!(status["ticket"]["number"], number.as_str());
    assert_eq!(status["ticket"]["window_name"], "8号远程虚拟窗口");
    page.screenshot(&std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-called.png"))
        .await?;

    browser.close().await;
    agent.kill().await?;
    relay.kill().await?;
    Ok(())
}
