//! `relay`: the centre's relay server and its administration commands.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use signaling::admin;
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
    /// Create or update a staff account; the password is read from RELAY_PASSWORD or stdin.
    AddClerk(admin::ClerkArgs),
    /// Create or update an extension point (延伸点).
    AddExtensionPoint(admin::ExtensionPointArgs),
    /// Enroll a kiosk or ticket machine and print its credential once.
    EnrollDevice(admin::DeviceArgs),
    /// Load the demonstration centre, accounts and kiosk (idempotent).
    SeedDemo(admin::DemoArgs),
    /// Let a staff account act for a whole district in the registry (or clear it).
    RegistryScope(signaling::registry::cli::ScopeArgs),
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

async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(open_stores(config).await?.main)
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
        Command::RegistryScope(a) => {
            let config = load_config(&cli.config, Vec::new())?;
            signaling::registry::cli::scope(&config, a, SystemClock.now_ms()).await
        }
        other => {
            let config = load_config(&cli.config, Vec::new())?;
            let store = open_store(&config).await?;
            let now = SystemClock.now_ms();
            match other {
                Command::AddCentre(a) => admin::add_centre(&*store, a, now).await,
                Command::AddCategory(a) => admin::add_category(&*store, a).await,
                Command::AddWindow(a) => admin::add_window(&*store, a).await,
                Command::AddClerk(a) => admin::add_clerk(&*store, a, now).await,
                Command::AddExtensionPoint(a) => admin::add_extension_point(&*store, a, now).await,
                Command::EnrollDevice(a) => admin::enroll_device(&*store, a, now).await,
                Command::SeedDemo(a) => admin::seed_demo(&*store, &config, a, now).await,
                Command::Serve { .. } | Command::CheckConfig | Command::RegistryScope(_) => Ok(()),
            }
        }
    }
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
    if let Some(path) = ready_file {
        let ready = serde_json::json!({
            "https": a.https.map(|a| a.to_string()),
            "http": a.http.map(|a| a.to_string()),
            "media_udp": a.media_udp.map(|a| a.to_string()),
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
