//! End to end, peripherals: a real relay, a real agent with the simulated device profile (the
//! SAM simulator on a pseudo-terminal behind the real driver, simulated scanner and cameras),
//! and a clerk in headless Chromium who reads the resident's ID card (masked, then revealed),
//! captures a full-resolution document page, and asks the resident a question that is
//! answered through the agent's local API. Then every log line of both processes is scanned
//! for the fixture cards' names and ID numbers.

use std::time::Duration;

use e2e::{Agent, Browser, DemoData, Relay};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(30);

/// Names, numbers and addresses of the simulator's fixture cards: none may appear in a log.
const FIXTURE_SECRETS: &[&str] = &[
    "王小明",
    "李秀英",
    "陈大文",
    "亚历克斯",
    "SAMPLE, ALEX",
    "31010119900307123",
    "31011519501120002",
    "81000019850615003",
    "XXX310000000001",
    "H00000000",
    "示例路100弄",
    "样板村8号",
    "演示路9号",
];

async fn agent_json(agent: &Agent, path: &str) -> anyhow::Result<Value> {
    Ok(reqwest::get(agent.url(path)).await?.json().await?)
}

#[tokio::test]
async fn the_clerk_operates_the_kiosks_devices_from_the_browser() -> anyhow::Result<()> {
    let data = DemoData::create().await?;
    let relay = Relay::start(&data, &[]).await?;
    let agent = Agent::start_with(&data, &relay, "[devices]\nsimulated = true\n").await?;
    agent.wait_status(LIMIT, |s| s["link"] == "online").await?;

    let browser = Browser::launch(&[]).await?;
    let page = browser.open(&relay.https_url("/")).await?;
    page.viewport(1400, 1800).await?;
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
    // The clerk is at the remote window: now the resident may take a ticket.
    let taken: Value = reqwest::Client::new()
        .post(agent.url("/api/ticket"))
        .json(&json!({ "category_id": "social-security" }))
        .send()
        .await?
        .json()
        .await?;
    let number = taken["number"].as_str().expect("ticket number").to_owned();

    page.click("#btn-next").await?;
    page.wait_for(
        &format!("document.getElementById('cur-number').textContent === '{number}'"),
        LIMIT,
    )
    .await?;

    // The device panel appears for the remote ticket; the document camera's resolutions load.
    page.wait_for(
        "document.getElementById('dev-read') && !document.querySelector('.dev-panel').hidden \
         && [...document.querySelectorAll('#dev-resolution option')].some(o => o.value === '3264x2448')",
        LIMIT,
    )
    .await?;

    // 读身份证: the card arrives masked; the reveal shows it in full.
    page.click("#dev-read").await?;
    page.wait_for(
        "document.querySelector('#dev-card dl') && document.getElementById('dev-card').textContent.includes('310***********')",
        LIMIT,
    )
    .await?;
    let masked = page
        .eval("document.getElementById('dev-card').textContent")
        .await?;
    assert!(!masked.to_string().contains("王小明"), "{masked}");
    page.eval("[...document.querySelectorAll('#dev-card button')].find(b => b.textContent.includes('显示完整信息')).click()")
        .await?;
    page.wait_for(
        "document.getElementById('dev-card').textContent.includes('王小明')",
        LIMIT,
    )
    .await?;
    page.wait_for(
        "document.getElementById('dev-identity').textContent.includes('身份证')",
        LIMIT,
    )
    .await?;

    // 高拍仪拍照: the kiosk shows the prompt while capturing; the full-resolution page is shown.
    page.click("#dev-capture").await?;
    page.wait_for(
        "document.getElementById('dev-image').naturalWidth === 3264 && document.getElementById('dev-image').naturalHeight === 2448",
        LIMIT,
    )
    .await?;
    page.click("#dev-rotate").await?;
    page.click("#dev-zoom-in").await?;
    page.wait_for(
        "document.getElementById('dev-image').classList.contains('rot90') && document.getElementById('dev-image').classList.contains('z2')",
        LIMIT,
    )
    .await?;
    page.wait_for("!document.getElementById('dev-pdf').disabled", LIMIT)
        .await?;

    // 确认提问: the resident answers on the kiosk (through the agent's local API).
    page.fill("#dev-prompt-text", "请确认您办理的是社保卡补办业务")
        .await?;
    page.click("#dev-prompt-ask").await?;
    let deadline = tokio::time::Instant::now() + LIMIT;
    let prompt_id = loop {
        let activity = agent_json(&agent, "/api/devices/activity").await?;
        if let Some(id) = activity["prompt"]["id"].as_u64() {
            assert_eq!(activity["prompt"]["kind"], "confirm");
            break id;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no prompt on the kiosk: {activity}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let answered = reqwest::Client::new()
        .post(agent.url("/api/prompt/answer"))
        .json(&json!({ "prompt_id": prompt_id, "answer": "confirmed" }))
        .send()
        .await?;
    assert_eq!(answered.status(), 204);
    page.wait_for(
        "document.getElementById('dev-status').textContent.includes('确认')",
        LIMIT,
    )
    .await?;
    page.screenshot(&std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-devices.png"))
        .await?;

    browser.close().await;
    // No personal data in any log line of either process.
    let logs = format!("{}\n{}", relay.log_text(), agent.log_text());
    agent.kill().await?;
    relay.kill().await?;
    assert!(
        logs.contains("device service running"),
        "the agent log was read"
    );
    for secret in FIXTURE_SECRETS {
        assert!(!logs.contains(secret), "{secret} appears in a log");
    }
    Ok(())
}
