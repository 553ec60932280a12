//! `relay registry-scope`: lets a staff account act for a whole district (区运管中心) in the
//! registry and operations console, instead of only its own centre. Explicit and revocable;
//! nobody has district scope unless granted here.

use anyhow::{Context, bail};
use clap::Args;

use super::divisions::Divisions;
use crate::config::Config;

#[derive(Args)]
pub struct ScopeArgs {
    /// The staff account.
    #[arg(long)]
    pub username: String,
    /// The district it acts for, e.g. 徐汇区 (must be in the division list).
    #[arg(long, conflicts_with = "clear")]
    pub district: Option<String>,
    /// Back to the account's own centre.
    #[arg(long)]
    pub clear: bool,
}

pub async fn scope(config: &Config, a: ScopeArgs, now_ms: i64) -> anyhow::Result<()> {
    let stores = crate::relay::Stores::open(&config.store).await?;
    let clerk = stores
        .main
        .clerk_by_username(&a.username)
        .await?
        .with_context(|| format!("no account {:?}", a.username))?;
    match (a.district, a.clear) {
        (Some(d), false) => {
            let divisions = Divisions::load(config.registry.divisions_file.as_deref())?;
            if !divisions.is_district(&d) {
                bail!("{d:?} is not a district in the division list");
            }
            stores
                .registry
                .set_district_scope(&clerk.id, Some(&d), now_ms)
                .await?;
            println!("{} now acts for {d}", a.username);
        }
        (None, true) => {
            stores
                .registry
                .set_district_scope(&clerk.id, None, now_ms)
                .await?;
            println!("{} acts for its own centre again", a.username);
        }
        _ => bail!("give --district or --clear"),
    }
    Ok(())
}
