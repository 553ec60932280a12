//! A staff member logging in on one of the relay's staff pages in the browser, second factor
//! included, as a person does: the password on the page they opened (`/ops`, `/supervisor`),
//! which sends them to the console's login page for two-step verification; there the password
//! again and the 6-digit code, then back to the page. The second factor is enrolled beforehand
//! over the relay's HTTP API (`relay_kit::staff`), which also computes the code typed here.

use std::time::Duration;

use anyhow::Result;

use crate::browser::Page;
use crate::procs::Relay;

/// Logs `username` in on `page`, which shows the login form of a staff page whose path is
/// `app` (`"/ops"`, `"/supervisor"`); returns once that page has loaded again logged in.
pub async fn page_login(
    page: &Page<'_>,
    relay: &Relay,
    app: &str,
    username: &str,
    password: &str,
    limit: Duration,
) -> Result<()> {
    let base = format!("http://{}", relay.http);
    if relay_kit::staff::known_factor(&base, username).is_none() {
        relay_kit::staff::login(&reqwest::Client::new(), &base, username, password).await?;
    }
    page.fill("#login-user", username).await?;
    page.fill("#login-pass", password).await?;
    page.click("#login-form button[type=submit]").await?;
    page.wait_for(
        "location.pathname === '/' && document.getElementById('login-view') && !document.getElementById('login-view').hidden",
        limit,
    )
    .await?;
    page.fill("#login-user", username).await?;
    page.fill("#login-pass", password).await?;
    page.click("#login-form button[type=submit]").await?;
    page.wait_for("!document.getElementById('code-view').hidden", limit)
        .await?;
    page.fill(
        "#code-input",
        &relay_kit::staff::next_code(&base, username)?,
    )
    .await?;
    page.click("#code-form button[type=submit]").await?;
    page.wait_for(
        &format!(
            "location.pathname === {} && document.readyState === 'complete'",
            serde_json::to_string(app)?
        ),
        limit,
    )
    .await
}
