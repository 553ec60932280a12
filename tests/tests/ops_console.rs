//! End to end: the operations console (/ops) in headless Chromium against a real relay and a
//! real kiosk agent. A registry operator sees the demo kiosk online, files an application
//! through the form (a wrong phone number is answered beside its field, in Chinese), activates
//! it and is shown the new device credential once; when the agent is killed, the console shows
//! the kiosk offline.

use std::path::Path;
use std::time::Duration;

use e2e::{Agent, Browser, DemoData, Relay};

const LIMIT: Duration = Duration::from_secs(20);
/// The health view refreshes itself every 10 s.
const REFRESH_LIMIT: Duration = Duration::from_secs(40);
const KIOSK: &str = "kiosk-demo-01";

fn shot(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

#[tokio::test]
async fn the_operations_console_follows_the_kiosk_and_files_an_application() -> anyhow::Result<()> {
    let data = DemoData::create().await?;
    let relay = Relay::start(&data, &[]).await?;
    let agent = Agent::start(&data, &relay).await?;
    agent.wait_status(LIMIT, |s| s["link"] == "online").await?;

    let browser = Browser::launch(&[]).await?;
    let page = browser.open(&relay.https_url("/ops")).await?;
    page.wait_for("!document.getElementById('login-view').hidden", LIMIT)
        .await?;
    // A registry operator always uses a second factor: the code step on the console's page.
    e2e::staff::page_login(
        &page,
        &relay,
        "/ops",
        "operator1",
        &data.staff_password()?,
        LIMIT,
    )
    .await?;
    page.wait_for("!document.getElementById('app-view').hidden", LIMIT)
        .await?;

    let row = format!("document.querySelector('tr[data-device=\"{KIOSK}\"]')");
    page.wait_for(&format!("{row} && {row}.dataset.online === 'true'"), LIMIT)
        .await?;
    let status = page
        .eval(&format!("{row}.querySelector('td.online').textContent"))
        .await?;
    assert_eq!(status, "在线");
    page.screenshot(&shot("ops-online.png")).await?;

    // 远程受理柜台维护: a new application through the form.
    page.click("#tab-registry").await?;
    page.click("#new-counter").await?;
    page.wait_for("!document.getElementById('counter-form').hidden", LIMIT)
        .await?;
    page.eval(
        "(() => { const d = document.getElementById('f-district'); d.value = '徐汇区'; d.dispatchEvent(new Event('change'));
                  document.getElementById('f-street').value = '天平路街道'; })()",
    )
    .await?;
    page.fill("#f-institution", "天平路街道永嘉路居委会延伸服务点")
        .await?;
    page.fill("#f-address", "永嘉路100号").await?;
    page.fill("#f-phone", "010-64041234").await?;
    page.fill("#f-device-id", "kiosk-tp-01").await?;
    page.fill("#f-device-url", "http://10.11.160.170").await?;
    page.click("#counter-submit").await?;
    page.wait_for(
        "document.getElementById('err-phone').textContent.includes('上海固定电话')",
        LIMIT,
    )
    .await?;
    let invalid = page
        .eval("document.getElementById('f-phone').getAttribute('aria-invalid')")
        .await?;
    assert_eq!(invalid, "true");
    page.screenshot(&shot("ops-form-error.png")).await?;
    page.fill("#f-phone", "021-64041234").await?;
    page.click("#counter-submit").await?;
    let counter = "document.querySelector('tr[data-counter] th')";
    page.wait_for(
        &format!("{counter} && {counter}.textContent === '天平路街道永嘉路居委会 延伸服务点'"),
        LIMIT,
    )
    .await?;

    // 开通: the credential is shown once.
    page.eval("[...document.querySelectorAll('tr[data-counter] button')].find(b => b.textContent === '开通').click()")
        .await?;
    page.wait_for("!document.getElementById('step-form').hidden", LIMIT)
        .await?;
    page.fill("#step-reason", "市运管中心已审核").await?;
    page.click("#step-submit").await?;
    page.wait_for("!document.getElementById('credential-box').hidden", LIMIT)
        .await?;
    let credential = page
        .eval("document.getElementById('credential-text').value")
        .await?;
    assert!(
        credential
            .as_str()
            .is_some_and(|c| c.starts_with("kiosk-tp-01:") && c.len() > 40),
        "{credential}"
    );
    page.wait_for(
        "document.querySelector('tr[data-counter]').dataset.state === 'active'",
        LIMIT,
    )
    .await?;
    page.screenshot(&shot("ops-registry.png")).await?;
    page.click("#credential-close").await?;

    // The kiosk drops off: the health view shows it offline.
    page.click("#tab-health").await?;
    agent.kill().await?;
    page.wait_for(
        &format!("{row} && {row}.dataset.online === 'false'"),
        REFRESH_LIMIT,
    )
    .await?;
    let status = page
        .eval(&format!("{row}.querySelector('td.online').textContent"))
        .await?;
    assert_eq!(status, "离线");
    page.screenshot(&shot("ops-offline.png")).await?;

    browser.close().await;
    relay.kill().await?;
    Ok(())
}
