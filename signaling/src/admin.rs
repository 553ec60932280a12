//! Administration commands of the `relay` binary: set up centres, windows, staff and devices,
//! enroll devices, and load the demonstration data.

use std::io::BufRead;
use std::path::Path;

use anyhow::{Context, bail};
use clap::Args;
use protocol::queue::WindowMode;

use crate::auth::{hash_device_secret, hash_secret, new_token};
use crate::config::Config;
use crate::domain::{
    CategoryRecord, Centre, Clerk, Device, DeviceKind, ExtensionPoint, WindowRecord, parse_roles,
    parse_window_mode,
};
use crate::store::Store;

#[derive(Args)]
pub struct CentreArgs {
    #[arg(long)]
    pub id: String,
    #[arg(long)]
    pub name: String,
    #[arg(long, default_value = "")]
    pub district: String,
    #[arg(long, default_value = "")]
    pub street: String,
}

#[derive(Args)]
pub struct CategoryArgs {
    #[arg(long)]
    pub centre: String,
    #[arg(long)]
    pub id: String,
    /// Letter(s) that start its ticket numbers, e.g. A.
    #[arg(long)]
    pub prefix: String,
    #[arg(long)]
    pub name: String,
    #[arg(long, default_value_t = 0)]
    pub sort: i64,
}

#[derive(Args)]
pub struct WindowArgs {
    #[arg(long)]
    pub centre: String,
    #[arg(long)]
    pub id: String,
    #[arg(long)]
    pub name: String,
    /// on_site, remote or combined.
    #[arg(long)]
    pub mode: String,
    /// Service categories it serves (repeatable, or comma-separated).
    #[arg(long = "category", value_delimiter = ',')]
    pub categories: Vec<String>,
}

#[derive(Args)]
pub struct ClerkArgs {
    #[arg(long)]
    pub centre: String,
    #[arg(long)]
    pub username: String,
    #[arg(long)]
    pub name: String,
    /// Comma-separated: clerk, supervisor, registry_operator, technician.
    #[arg(long, default_value = "clerk")]
    pub roles: String,
    /// Disable the account instead.
    #[arg(long)]
    pub disable: bool,
    /// Read the new password from this file (first line) instead of asking for it. Keep the
    /// file private and delete it afterwards. The staff member must change it at first login.
    #[arg(long)]
    pub password_file: Option<std::path::PathBuf>,
}

#[derive(Args)]
pub struct ExtensionPointArgs {
    #[arg(long)]
    pub centre: String,
    #[arg(long)]
    pub id: String,
    /// 设备摆放机构名称
    #[arg(long)]
    pub name: String,
    #[arg(long, default_value = "")]
    pub address: String,
    #[arg(long, default_value = "")]
    pub phone: String,
    #[arg(long, default_value = "")]
    pub hours: String,
}

#[derive(Args)]
pub struct DeviceArgs {
    #[arg(long)]
    pub centre: String,
    #[arg(long)]
    pub id: String,
    /// kiosk or ticket_machine.
    #[arg(long, default_value = "kiosk")]
    pub kind: String,
    /// The extension point a kiosk stands at.
    #[arg(long)]
    pub extension_point: Option<String>,
    #[arg(long, default_value = "")]
    pub name: String,
    /// Write the credential to this file (mode 0600) instead of printing it.
    #[arg(long)]
    pub credential_file: Option<std::path::PathBuf>,
}

#[derive(Args)]
pub struct DemoArgs {
    /// Where to write the demo credentials (defaults to the data directory).
    #[arg(long)]
    pub out_dir: Option<std::path::PathBuf>,
}

fn non_empty(what: &str, value: &str) -> anyhow::Result<()> {
    if value.trim().is_empty() {
        bail!("{what} must not be empty");
    }
    Ok(())
}

pub async fn add_centre(store: &dyn Store, a: CentreArgs, now: i64) -> anyhow::Result<()> {
    non_empty("--id", &a.id)?;
    non_empty("--name", &a.name)?;
    store
        .upsert_centre(
            &Centre {
                id: a.id.clone(),
                name: a.name,
                district: a.district,
                street: a.street,
            },
            now,
        )
        .await?;
    println!("centre {} saved", a.id);
    Ok(())
}

pub async fn add_category(store: &dyn Store, a: CategoryArgs) -> anyhow::Result<()> {
    if a.prefix.is_empty()
        || !a.prefix.chars().all(|c| c.is_ascii_uppercase())
        || a.prefix.len() > 2
    {
        bail!("--prefix must be one or two capital letters A-Z");
    }
    if a.prefix.starts_with(protocol::queue::REMOTE_PREFIX) {
        bail!(
            "--prefix must not start with {}: that letter marks remote tickets",
            protocol::queue::REMOTE_PREFIX
        );
    }
    ensure_centre(store, &a.centre).await?;
    store
        .upsert_category(&CategoryRecord {
            id: a.id.clone(),
            centre_id: a.centre,
            prefix: a.prefix,
            name: a.name,
            sort_order: a.sort,
        })
        .await?;
    println!("category {} saved", a.id);
    Ok(())
}

pub async fn add_window(store: &dyn Store, a: WindowArgs) -> anyhow::Result<()> {
    let mode = parse_window_mode(&a.mode)
        .with_context(|| format!("--mode {:?}: expected on_site, remote or combined", a.mode))?;
    ensure_centre(store, &a.centre).await?;
    let known: Vec<String> = store
        .categories(&a.centre)
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect();
    for c in &a.categories {
        if !known.contains(c) {
            bail!("--category {c:?} is not a category of centre {}", a.centre);
        }
    }
    store
        .upsert_window(&WindowRecord {
            id: a.id.clone(),
            centre_id: a.centre,
            name: a.name,
            mode,
            category_ids: a.categories,
            clerk_id: None,
            clerk_name: None,
        })
        .await?;
    println!("window {} saved", a.id);
    Ok(())
}

/// The password for an account: from `--password-file`, or one line on standard input (a
/// prompt on a terminal). Never from the environment, which other processes of the same user
/// and crash reports can read.
fn read_password(file: Option<&std::path::Path>) -> anyhow::Result<String> {
    if std::env::var_os("RELAY_PASSWORD").is_some() {
        bail!(
            "RELAY_PASSWORD is no longer read: pass --password-file FILE or type the password when asked"
        );
    }
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        return Ok(text.lines().next().unwrap_or_default().to_owned());
    }
    eprintln!("password (one line on standard input):");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

pub async fn add_clerk(store: &dyn Store, a: ClerkArgs, now: i64) -> anyhow::Result<()> {
    let roles = parse_roles(&a.roles)?;
    if roles.is_empty() {
        bail!("--roles must name at least one role");
    }
    ensure_centre(store, &a.centre).await?;
    let existing = store.clerk_by_username(&a.username).await?;
    let password_hash = if a.disable {
        existing
            .as_ref()
            .map(|c| c.password_hash.clone())
            .unwrap_or_default()
    } else {
        let password = read_password(a.password_file.as_deref())?;
        crate::password_policy::check(&password, &a.username)?;
        hash_secret(&password)?
    };
    let clerk = Clerk {
        id: existing.map_or_else(|| format!("clerk-{}", a.username), |c| c.id),
        centre_id: a.centre,
        username: a.username.clone(),
        display_name: a.name,
        password_hash,
        roles,
        active: !a.disable,
    };
    store.upsert_clerk(&clerk, now).await?;
    if !a.disable {
        // Someone other than the staff member chose this password.
        store.require_password_change(&clerk.id).await?;
    }
    println!("account {} saved", a.username);
    Ok(())
}

#[derive(Args)]
pub struct AccountArgs {
    #[arg(long)]
    pub username: String,
}

#[derive(Args)]
pub struct SetPasswordArgs {
    #[arg(long)]
    pub username: String,
    /// Read the new password from this file (first line) instead of asking for it. The staff
    /// member must change it at their next login.
    #[arg(long)]
    pub password_file: Option<std::path::PathBuf>,
}

/// Removes a staff member's second factor (a lost phone): their logins end and they enroll
/// again at the next login.
pub async fn reset_two_factor(store: &dyn Store, a: AccountArgs) -> anyhow::Result<()> {
    let Some(clerk) = store.clerk_by_username(&a.username).await? else {
        bail!("no staff account {:?}", a.username);
    };
    let ended = store.reset_two_factor(&clerk.id).await?;
    println!(
        "second factor of {} removed; {ended} sessions ended; they enroll again at their next login",
        a.username
    );
    Ok(())
}

/// Sets a staff member's password (a forgotten one): their logins end and they must change it
/// at the next login.
pub async fn set_password(store: &dyn Store, a: SetPasswordArgs) -> anyhow::Result<()> {
    let Some(clerk) = store.clerk_by_username(&a.username).await? else {
        bail!("no staff account {:?}", a.username);
    };
    let password = read_password(a.password_file.as_deref())?;
    crate::password_policy::check(&password, &a.username)?;
    let ended = store
        .set_password_by_other(&clerk.id, &hash_secret(&password)?)
        .await?;
    println!(
        "password of {} set; {ended} sessions ended; it must be changed at the next login",
        a.username
    );
    Ok(())
}

pub async fn add_extension_point(
    store: &dyn Store,
    a: ExtensionPointArgs,
    now: i64,
) -> anyhow::Result<()> {
    ensure_centre(store, &a.centre).await?;
    store
        .upsert_extension_point(
            &ExtensionPoint {
                id: a.id.clone(),
                centre_id: a.centre,
                name: a.name,
                address: a.address,
                phone: a.phone,
                service_hours: a.hours,
                hours: None,
                status: "active".into(),
            },
            now,
        )
        .await?;
    println!("extension point {} saved", a.id);
    Ok(())
}

/// Creates a device (or gives an existing one a new credential) and returns the credential
/// `device_id:secret`. The relay keeps only its SHA-256 digest.
pub async fn enroll(store: &dyn Store, a: &DeviceArgs, now: i64) -> anyhow::Result<String> {
    let kind = DeviceKind::parse(&a.kind)
        .with_context(|| format!("--kind {:?}: expected kiosk or ticket_machine", a.kind))?;
    ensure_centre(store, &a.centre).await?;
    if kind == DeviceKind::Kiosk {
        let point = a
            .extension_point
            .as_deref()
            .context("a kiosk needs --extension-point")?;
        match store.extension_point(point).await? {
            Some(p) if p.centre_id == a.centre => {}
            _ => bail!(
                "extension point {point:?} does not belong to centre {}",
                a.centre
            ),
        }
    }
    if a.id.contains(':') || a.id.trim().is_empty() {
        bail!("--id must be non-empty and must not contain ':'");
    }
    let secret = new_token();
    store
        .upsert_device(
            &Device {
                id: a.id.clone(),
                centre_id: a.centre.clone(),
                extension_point_id: a.extension_point.clone(),
                kind,
                name: if a.name.is_empty() {
                    a.id.clone()
                } else {
                    a.name.clone()
                },
                secret_hash: hash_device_secret(&secret),
                active: true,
            },
            now,
        )
        .await?;
    Ok(format!("{}:{secret}", a.id))
}

pub async fn enroll_device(store: &dyn Store, a: DeviceArgs, now: i64) -> anyhow::Result<()> {
    let credential = enroll(store, &a, now).await?;
    match &a.credential_file {
        Some(path) => {
            write_private(path, &credential)?;
            println!(
                "device {} enrolled; credential written to {}",
                a.id,
                path.display()
            );
        }
        None => {
            println!(
                "device {} enrolled. Its credential is shown only this once:",
                a.id
            );
            println!("{credential}");
        }
    }
    Ok(())
}

fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, format!("{content}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

async fn ensure_centre(store: &dyn Store, id: &str) -> anyhow::Result<()> {
    if store.centre(id).await?.is_none() {
        bail!("no centre {id:?}; create it first with add-centre");
    }
    Ok(())
}

/// The demonstration centre's ids.
pub mod demo {
    pub const CENTRE: &str = "demo-centre";
    pub const POINT: &str = "demo-point-01";
    pub const KIOSK: &str = "kiosk-demo-01";
    pub const TICKET_MACHINE: &str = "ticket-machine-demo";
    pub const CLERK: &str = "clerk1";
    pub const SUPERVISOR: &str = "supervisor1";
}

/// Loads a demonstration centre with categories, windows, staff accounts, an extension point
/// with its kiosk, and a ticket machine. Safe to run again: existing records are updated, the
/// staff password stays the same, and device credentials are reissued.
pub async fn seed_demo(
    store: &dyn Store,
    config: &Config,
    a: DemoArgs,
    now: i64,
) -> anyhow::Result<()> {
    let out = a
        .out_dir
        .unwrap_or_else(|| config.store.data_dir.join("demo"));
    std::fs::create_dir_all(&out)?;
    store
        .upsert_centre(
            &Centre {
                id: demo::CENTRE.into(),
                name: "示范街道社区事务受理服务中心".into(),
                district: "示范区".into(),
                street: "示范街道".into(),
            },
            now,
        )
        .await?;
    let categories = [
        ("social-security", "A", "社会保障"),
        ("medical-insurance", "B", "医疗保险"),
        ("civil-affairs", "C", "民政救助"),
        ("health", "D", "卫生健康"),
        ("general", "E", "综合事务"),
    ];
    for (i, (id, prefix, name)) in categories.iter().enumerate() {
        store
            .upsert_category(&CategoryRecord {
                id: (*id).into(),
                centre_id: demo::CENTRE.into(),
                prefix: (*prefix).into(),
                name: (*name).into(),
                sort_order: i64::try_from(i).unwrap_or(0),
            })
            .await?;
    }
    let all: Vec<String> = categories.iter().map(|c| c.0.to_owned()).collect();
    for (id, name, mode) in [
        ("window-01", "1号综合窗口", WindowMode::OnSite),
        ("window-02", "2号综合窗口（兼远程）", WindowMode::Combined),
        ("window-08", "8号远程虚拟窗口", WindowMode::Remote),
    ] {
        store
            .upsert_window(&WindowRecord {
                id: id.into(),
                centre_id: demo::CENTRE.into(),
                name: name.into(),
                mode,
                category_ids: all.clone(),
                clerk_id: None,
                clerk_name: None,
            })
            .await?;
    }
    let password_file = out.join("staff-password.txt");
    let password = match std::fs::read_to_string(&password_file) {
        Ok(p) if p.trim().len() >= 8 => p.trim().to_owned(),
        _ => {
            let p = new_token()[..12].to_owned();
            write_private(&password_file, &p)?;
            p
        }
    };
    let hash = hash_secret(&password)?;
    for (username, name, roles) in [
        (demo::CLERK, "王敏（示范）", "clerk"),
        ("clerk2", "李强（示范）", "clerk"),
        (demo::SUPERVISOR, "陈静（值班长）", "clerk,supervisor"),
        ("operator1", "周涛（登记员）", "registry_operator"),
        ("technician1", "赵磊（运维）", "technician"),
    ] {
        store
            .upsert_clerk(
                &Clerk {
                    id: format!("clerk-{username}"),
                    centre_id: demo::CENTRE.into(),
                    username: username.into(),
                    display_name: name.into(),
                    password_hash: hash.clone(),
                    roles: parse_roles(roles)?,
                    active: true,
                },
                now,
            )
            .await?;
    }
    store
        .upsert_extension_point(
            &ExtensionPoint {
                id: demo::POINT.into(),
                centre_id: demo::CENTRE.into(),
                name: "示范街道示范居委会延伸服务点".into(),
                address: "示范路100号".into(),
                phone: "021-12345678".into(),
                // Open around the clock so the demonstration works whenever it is run.
                service_hours: "每天 0:00-24:00（演示）".into(),
                hours: Some(protocol::hours::ServiceHours::always()),
                status: "active".into(),
            },
            now,
        )
        .await?;
    let kiosk = enroll(
        store,
        &DeviceArgs {
            centre: demo::CENTRE.into(),
            id: demo::KIOSK.into(),
            kind: "kiosk".into(),
            extension_point: Some(demo::POINT.into()),
            name: "示范居委会自助终端".into(),
            credential_file: None,
        },
        now,
    )
    .await?;
    write_private(&out.join("kiosk.credential"), &kiosk)?;
    let machine = enroll(
        store,
        &DeviceArgs {
            centre: demo::CENTRE.into(),
            id: demo::TICKET_MACHINE.into(),
            kind: "ticket_machine".into(),
            extension_point: None,
            name: "大厅取号机".into(),
            credential_file: None,
        },
        now,
    )
    .await?;
    write_private(&out.join("ticket-machine.credential"), &machine)?;
    println!("demo data loaded into {}", config.store.data_dir.display());
    println!(
        "staff accounts: {}, clerk2, {}, operator1, technician1",
        demo::CLERK,
        demo::SUPERVISOR
    );
    println!("staff password: in {}", password_file.display());
    println!(
        "kiosk credential: {}",
        out.join("kiosk.credential").display()
    );
    println!(
        "ticket machine credential: {}",
        out.join("ticket-machine.credential").display()
    );
    Ok(())
}
