//! The automated accessibility check of the kiosk's screens: axe-core (npm, pinned in
//! `tests/a11y/package.json`, installed by `deploy/setup.sh test`) injected over DevTools into
//! the live page.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;

use crate::Page;

/// Runs axe-core on the screen shown now and fails on any serious or critical violation,
/// naming each rule and the elements it found.
pub async fn axe(page: &Page<'_>, screen: &str) -> Result<()> {
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
