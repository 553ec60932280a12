//! `relay`: the centre's relay server and its administration commands.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use signaling::admin;
use signaling::audit::Trail;
use signaling::clock::{Clock, SystemClock};
use signaling::config::{Config, LogFormat, Sources};
use signaling::http::Listeners;
use signaling::relay::{Relay, Stores};
use signaling::store::Store;
use tracing::{info, warn};

#[derive(Parser)]
#[command(
    name = "relay",
    version,
    about = "Remote virtual window relay (远程虚拟窗口中继)"
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct ConfigArgs {
    /// TOML configuration file (see deploy/relay.sample.toml).
    #[arg(long, short, global = true, env = "RELAY_CONFIG")]
    config: Option<PathBuf>,
    /// Override a setting: section.key=value (repeatable; applied last).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Shortcut for --set store.data_dir=DIR.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay.
    Serve {
        /// Shortcut for --set server.listen=ADDR (HTTPS).
        #[arg(long)]
        listen: Option<String>,
        /// INSECURE development mode: plain HTTP on this loopback address.
        #[arg(long, value_name = "ADDR")]
        dev_http: Option<String>,
        /// Write the bound addresses as JSON to this file once listening (for scripts and tests).
        #[arg(long)]
        ready_file: Option<PathBuf>,
    },
    /// Check the configuration and print it.
    CheckConfig,
    /// Create a centre (受理中心) or update its name.
    AddCentre(admin::CentreArgs),
    /// Create or update a service category (事项类别) of a centre.
    AddCategory(admin::CategoryArgs),
    /// Create or update a window (窗口) of a centre.
    AddWindow(admin::WindowArgs),
    /// Create or update a staff account; the password is read from --password-file or asked
    /// for on standard input, and must be changed at first login.
    AddClerk(admin::ClerkArgs),
    /// Remove a staff member's second factor (a lost phone); their logins end and they enroll
    /// again at the next login.
    ResetTwoFactor(admin::AccountArgs),
    /// Set a staff member's password (read from --password-file or standard input); their
    /// logins end and they must change it at the next login.
    SetPassword(admin::SetPasswordArgs),
    /// Create or update an extension point (延伸点).
    AddExtensionPoint(admin::ExtensionPointArgs),
    /// Enroll a kiosk or ticket machine and print its credential once.
    EnrollDevice(admin::DeviceArgs),
    /// Load the demonstration centre, accounts and kiosk (idempotent).
    SeedDemo(admin::DemoArgs),
    /// Let a staff account act for a whole district in the registry (or clear it).
    RegistryScope(signaling::registry::cli::ScopeArgs),
    /// Create both master keys (case materials, recordings) in DIR — 0700, files 0600 — outside
    /// the data directory; existing keys are kept.
    InitKeys {
        /// Where the keys go, e.g. /etc/rvw/keys.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Replace a master key (both, or --which cases|recordings): every object's key is wrapped
    /// again under the new one, the objects themselves are not rewritten. Stop the relay first.
    /// An interrupted run is finished by running the command again.
    RotateKey {
        #[arg(long, value_enum)]
        which: Option<KeyChoice>,
        /// The new key (64 hex digits, mode 0600) instead of a fresh random one; needs --which.
        #[arg(long)]
        new_key_file: Option<PathBuf>,
        /// The directory made by `init-keys` (when the relay gets its keys as systemd
        /// credentials); otherwise the configured key files are rotated.
        #[arg(long)]
        keys_dir: Option<PathBuf>,
        /// Stop after this many objects (run again to go on).
        #[arg(long)]
        limit: Option<u64>,
    },
    /// The audit trail: check its hash chain, or show its last rows.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum KeyChoice {
    Cases,
    Recordings,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the hash chain; report the first broken row (exit status 1 if there is one).
    Verify,
    /// Print the last rows as JSON lines.
    Show {
        #[arg(long, default_value_t = 50)]
        last: u32,
    },
}

/// How an administrative command is written to the audit trail: (kind, subject, detail).
/// Never the password or a device credential (they are not arguments).
fn admin_event(command: &Command) -> Option<(&'static str, String, String)> {
    Some(match command {
        Command::AddCentre(a) => (
            "admin.add_centre",
            format!("centre:{}", a.id),
            String::new(),
        ),
        Command::AddCategory(a) => (
            "admin.add_category",
            format!("centre:{}/category:{}", a.centre, a.id),
            String::new(),
        ),
        Command::AddWindow(a) => (
            "admin.add_window",
            format!("centre:{}/window:{}", a.centre, a.id),
            format!("mode={}", a.mode),
        ),
        Command::AddClerk(a) => (
            "admin.add_clerk",
            format!("clerk:{}", a.username),
            format!(
                "centre={} roles={} disable={}",
                a.centre, a.roles, a.disable
            ),
        ),
        Command::ResetTwoFactor(a) => (
            "admin.reset_two_factor",
            format!("clerk:{}", a.username),
            "second factor removed; sessions ended".to_string(),
        ),
        Command::SetPassword(a) => (
            "admin.set_password",
            format!("clerk:{}", a.username),
            "password set, to be changed at next login; sessions ended".to_string(),
        ),
        Command::AddExtensionPoint(a) => (
            "admin.add_extension_point",
            format!("centre:{}/extension_point:{}", a.centre, a.id),
            String::new(),
        ),
        Command::EnrollDevice(a) => (
            "admin.enroll_device",
            format!("centre:{}/device:{}", a.centre, a.id),
            format!("kind={}", a.kind),
        ),
        Command::SeedDemo(_) => ("admin.seed_demo", String::new(), String::new()),
        Command::RegistryScope(a) => (
            "admin.registry_scope",
            format!("clerk:{}", a.username),
            match (&a.district, a.clear) {
                (Some(d), _) => format!("district={d}"),
                (None, _) => "cleared".to_string(),
            },
        ),
        Command::Serve { .. }
        | Command::CheckConfig
        | Command::Audit(_)
        | Command::InitKeys { .. }
        | Command::RotateKey { .. } => return None,
    })
}

fn main() -> ExitCode {
    signaling::install_crypto_provider();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("relay: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(args: &ConfigArgs, extra: Vec<String>) -> anyhow::Result<Config> {
    let mut overrides = Vec::new();
    if let Some(dir) = &args.data_dir {
        overrides.push(format!(
            "store.data_dir={}",
            layered_config::quote(&dir.display().to_string())
        ));
    }
    overrides.extend(extra);
    overrides.extend(args.set.iter().cloned());
    let sources = Sources {
        file: args.config.as_deref(),
        env: std::env::vars().collect(),
        overrides,
    };
    Ok(Config::load(&sources)?)
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn open_stores(config: &Config) -> anyhow::Result<Stores> {
    Stores::open(&config.store)
        .await
        .with_context(|| format!("opening {}", Stores::describe(&config.store)))
}

/// The audit trail kept in the same database (SQLite or PostgreSQL) as the stores.
fn trail_of(stores: &Stores) -> Trail {
    stores.trail(Arc::new(SystemClock))
}

async fn audit(config: &Config, command: AuditCommand) -> anyhow::Result<()> {
    let trail = trail_of(&open_stores(config).await?);
    match command {
        AuditCommand::Verify => {
            let report = trail.verify().await?;
            if let Some((seq, why)) = &report.first_broken {
                println!(
                    "BROKEN at row {seq}: {why}\n{} rows before it are sound (head {})",
                    report.sound_rows, report.head
                );
                std::process::exit(1);
            }
            if let Some(shipped) = report.missing_shipped {
                println!(
                    "BROKEN: rows up to {shipped} were shipped to syslog but the trail ends after {} rows: rows were cut off the end",
                    report.sound_rows
                );
                std::process::exit(1);
            }
            println!(
                "audit trail sound: {} rows, head {}",
                report.sound_rows, report.head
            );
            Ok(())
        }
        AuditCommand::Show { last } => {
            for row in trail.last(last).await? {
                println!("{}", serde_json::to_string(&row)?);
            }
            Ok(())
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            listen,
            dev_http,
            ready_file,
        } => {
            let mut extra = Vec::new();
            if let Some(l) = listen {
                extra.push(format!("server.listen={}", layered_config::quote(&l)));
            }
            if let Some(d) = dev_http {
                extra.push(format!(
                    "server.dev_http_listen={}",
                    layered_config::quote(&d)
                ));
            }
            let config = load_config(&cli.config, extra)?;
            init_logging(&config);
            serve(config, ready_file).await
        }
        Command::CheckConfig => {
            let config = load_config(&cli.config, Vec::new())?;
            print!("{}", toml::to_string_pretty(&config)?);
            Ok(())
        }
        Command::Audit(c) => {
            let config = load_config(&cli.config, Vec::new())?;
            audit(&config, c).await
        }
        Command::RotateKey {
            which,
            new_key_file,
            keys_dir,
            limit,
        } => {
            let config = load_config(&cli.config, Vec::new())?;
            rotate_key(&config, which, new_key_file, keys_dir, limit).await
        }
        Command::InitKeys { dir } => {
            let config = load_config(&cli.config, Vec::new())?;
            let report = signaling::keys::init_keys(&config, &dir)?;
            for kept in &report.kept {
                println!("kept the existing key {}", kept.display());
            }
            println!(
                "master keys in {} (mode 0600; keep a copy apart from the data's backups). In the configuration:\n\n[privacy]\nmaster_key_file = {:?}\n\n[recording]\nkey_file = {:?}\n\nor, under systemd, LoadCredential=cases.key:{} and LoadCredential=recordings.key:{}",
                dir.display(),
                report.cases.display().to_string(),
                report.recordings.display().to_string(),
                report.cases.display(),
                report.recordings.display(),
            );
            // Recorded when the store exists already (keys are usually made before the first
            // start, and this command must not create a database as whoever runs it).
            let store_exists =
                config.store.url.is_some() || config.store.data_dir.join("relay.sqlite").exists();
            if store_exists && let Ok(stores) = open_stores(&config).await {
                trail_of(&stores)
                    .record(
                        "admin.init_keys",
                        &audit_actor(),
                        None,
                        &format!("dir:{}", dir.display()),
                        &format!("ok kept={}", report.kept.len()),
                    )
                    .await
                    .context("writing the audit trail")?;
            }
            Ok(())
        }
        other => {
            let config = load_config(&cli.config, Vec::new())?;
            let stores = open_stores(&config).await?;
            let trail = trail_of(&stores);
            let store: Arc<dyn Store> = stores.main.clone();
            let event = admin_event(&other);
            let now = SystemClock.now_ms();
            let result = match other {
                Command::AddCentre(a) => admin::add_centre(&*store, a, now).await,
                Command::AddCategory(a) => admin::add_category(&*store, a).await,
                Command::AddWindow(a) => admin::add_window(&*store, a).await,
                Command::AddClerk(a) => admin::add_clerk(&*store, a, now).await,
                Command::ResetTwoFactor(a) => admin::reset_two_factor(&*store, a).await,
                Command::SetPassword(a) => admin::set_password(&*store, a).await,
                Command::AddExtensionPoint(a) => admin::add_extension_point(&*store, a, now).await,
                Command::EnrollDevice(a) => admin::enroll_device(&*store, a, now).await,
                Command::SeedDemo(a) => admin::seed_demo(&*store, &config, a, now).await,
                Command::RegistryScope(a) => signaling::registry::cli::scope(&config, a, now).await,
                Command::Serve { .. }
                | Command::CheckConfig
                | Command::Audit(_)
                | Command::InitKeys { .. }
                | Command::RotateKey { .. } => Ok(()),
            };
            if let Some((kind, subject, detail)) = event {
                let outcome = if result.is_ok() { "ok" } else { "failed" };
                let detail = if detail.is_empty() {
                    outcome.to_string()
                } else {
                    format!("{outcome} {detail}")
                };
                trail
                    .record(kind, &audit_actor(), None, &subject, &detail)
                    .await
                    .context("writing the audit trail")?;
            }
            result
        }
    }
}

async fn rotate_key(
    config: &Config,
    which: Option<KeyChoice>,
    new_key_file: Option<PathBuf>,
    keys_dir: Option<PathBuf>,
    limit: Option<u64>,
) -> anyhow::Result<()> {
    use signaling::keys::{self, Which, rotate};
    let which: Vec<Which> = match which {
        Some(KeyChoice::Cases) => vec![Which::Cases],
        Some(KeyChoice::Recordings) => vec![Which::Recordings],
        None => vec![Which::Cases, Which::Recordings],
    };
    let given = match &new_key_file {
        Some(_) if which.len() > 1 => {
            anyhow::bail!("--new-key-file needs --which: the two master keys must differ")
        }
        Some(path) => Some(keys::read_key_file(path)?),
        None => None,
    };
    let stores = open_stores(config).await?;
    let trail = trail_of(&stores);
    let actor = audit_actor();
    let mut budget = rotate::Budget::new(limit);
    for w in which {
        let path = rotate::key_path(config, w, keys_dir.as_deref()).map_err(|_| {
            anyhow::anyhow!(
                "which {} key file to rotate? Set {} or pass --keys-dir (the directory LoadCredential= reads the keys from)",
                w.what(),
                w.setting()
            )
        })?;
        let outcome = match w {
            Which::Cases => {
                let store = rotate::case_store(config).await?;
                rotate::rotate_cases(&*store, &trail, &actor, &path, given.clone(), &mut budget)
                    .await?
            }
            Which::Recordings => {
                let dir = config.recording.dir_in(&config.store.data_dir);
                rotate::rotate_recordings(&dir, &trail, &actor, &path, given.clone(), &mut budget)
                    .await?
            }
        };
        println!(
            "{}: key {} → {}: {} re-wrapped ({} of them staff second-factor secrets, {} rewritten from the first recording format), {} old slots cleared, {} already under the new key — {}",
            w.what(),
            outcome.from,
            outcome.to,
            outcome.rewrapped,
            outcome.second_factors,
            outcome.resealed,
            outcome.cleared,
            outcome.already,
            if outcome.complete {
                "complete; keep the old key only with backups made before this rotation"
            } else {
                "stopped at the limit; run the command again to go on"
            }
        );
        if !outcome.complete {
            break;
        }
    }
    Ok(())
}

fn audit_actor() -> String {
    signaling::audit::cli_actor()
}

async fn serve(config: Config, ready_file: Option<PathBuf>) -> anyhow::Result<()> {
    let stores = open_stores(&config).await?;
    let tls_listener = match config.server.listen {
        Some(addr) => {
            let tls = signaling::tls::rustls_config(&config.server.tls, &config.store.data_dir)
                .await
                .context("loading the TLS certificate")?;
            let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
            Some((listener, tls))
        }
        None => None,
    };
    let dev_listener = match config.server.dev_http_listen {
        Some(addr) => Some(TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?),
        None => None,
    };
    let relay = Relay::start(
        config,
        stores,
        Arc::new(SystemClock),
        Listeners {
            tls: tls_listener,
            dev_http: dev_listener,
        },
    )
    .await?;
    let a = relay.addresses;
    if let Some(a) = a.https {
        info!(address = %a, "listening (HTTPS/WSS)");
    }
    if let Some(a) = a.http {
        warn!(address = %a, "listening (INSECURE plain HTTP, development only)");
    }
    if let Some(a) = a.metrics {
        info!(address = %a, "serving /metrics");
    }
    if let Some(path) = ready_file {
        let ready = serde_json::json!({
            "https": a.https.map(|a| a.to_string()),
            "http": a.http.map(|a| a.to_string()),
            "media_udp": a.media_udp.map(|a| a.to_string()),
            "metrics": a.metrics.map(|a| a.to_string()),
            "pid": std::process::id(),
        });
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, ready.to_string())?;
        std::fs::rename(&tmp, &path)?;
    }
    let shutdown = relay.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        shutdown.cancel();
    });
    relay.wait().await?;
    info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
