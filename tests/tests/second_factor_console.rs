//! End to end in headless Chromium: a supervisor's first login on the clerk console binds an
//! authenticator (the QR code drawn, the secret shown in groups of four, the first code typed
//! from that secret), is shown ten recovery codes once and reaches the console; the next login
//! asks for a code, refuses a wrong one with a message, and takes the right one.

use std::time::Duration;

use e2e::{Browser, DemoData, Relay};
use relay_kit::totp;

const LIMIT: Duration = Duration::from_secs(20);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[tokio::test]
async fn a_supervisor_binds_an_authenticator_and_then_logs_in_with_its_code() -> anyhow::Result<()>
{
    let data = DemoData::create().await?;
    let relay = Relay::start(&data, &[]).await?;
    let password = data.staff_password()?;
    let browser = Browser::launch(&[]).await?;
    let page = browser.open(&relay.https_url("/")).await?;
    page.wait_for("!document.getElementById('login-view').hidden", LIMIT)
        .await?;
    page.fill("#login-user", "supervisor1").await?;
    page.fill("#login-pass", &password).await?;
    page.click("#login-form button[type=submit]").await?;

    // The enrollment: the QR code is an image the browser could draw, the secret is grouped.
    page.wait_for("!document.getElementById('enroll-view').hidden", LIMIT)
        .await?;
    page.wait_for(
        "document.getElementById('enroll-qr').complete && document.getElementById('enroll-qr').naturalWidth >= 200",
        LIMIT,
    )
    .await?;
    let grouped = page
        .eval("document.getElementById('enroll-secret').textContent")
        .await?;
    let grouped = grouped.as_str().unwrap_or_default().to_owned();
    assert_eq!(grouped.len(), 39, "eight groups of four: {grouped:?}");
    assert!(grouped.split(' ').all(|g| g.len() == 4), "{grouped:?}");
    let secret = totp::from_base32(&grouped).expect("base32");
    let step = totp::step_at(now_ms());
    page.fill("#enroll-code", &totp::code_for_step(&secret, step))
        .await?;
    page.click("#enroll-form button[type=submit]").await?;
    page.wait_for("!document.getElementById('recovery-view').hidden", LIMIT)
        .await?;
    let codes = page
        .eval("[...document.querySelectorAll('#recovery-list li')].map(li => li.textContent)")
        .await?;
    let codes = codes.as_array().cloned().unwrap_or_default();
    assert_eq!(codes.len(), 10, "{codes:?}");
    page.click("#recovery-done").await?;
    page.wait_for("!document.getElementById('window-view').hidden", LIMIT)
        .await?;
    assert_eq!(
        page.eval("document.querySelectorAll('#recovery-list li').length")
            .await?,
        0,
        "the recovery codes are not left on the page"
    );

    // The next login: the password, then the code.
    page.click("#logout").await?;
    page.wait_for(
        "document.readyState === 'complete' && document.getElementById('login-view') && !document.getElementById('login-view').hidden",
        LIMIT,
    )
    .await?;
    page.fill("#login-user", "supervisor1").await?;
    page.fill("#login-pass", &password).await?;
    page.click("#login-form button[type=submit]").await?;
    page.wait_for("!document.getElementById('code-view').hidden", LIMIT)
        .await?;
    // The code used to enroll is not accepted again.
    page.fill("#code-input", &totp::code_for_step(&secret, step))
        .await?;
    page.click("#code-form button[type=submit]").await?;
    page.wait_for(
        "document.getElementById('code-error').textContent.includes('验证码')",
        LIMIT,
    )
    .await?;
    page.fill("#code-input", &totp::code_for_step(&secret, step + 1))
        .await?;
    page.click("#code-form button[type=submit]").await?;
    page.wait_for("!document.getElementById('window-view').hidden", LIMIT)
        .await?;
    browser.close().await;
    Ok(())
}
