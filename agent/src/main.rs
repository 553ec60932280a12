//! The `agent` binary: a thin command-line shell over the `agent` library.

use std::path::PathBuf;
use std::process::ExitCode;

use agent::config::{AgentConfig, Sources};
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "agent",
    version,
    about = "延伸点终端代理 / kiosk agent for extension points"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct ConfigArgs {
    /// TOML configuration file (see deploy/agent.sample.toml).
    #[arg(long, short, env = "AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// Override a setting: section.key=value (repeatable; applied last).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// 运行终端代理 / run the kiosk agent
    Run {
        #[command(flatten)]
        config: ConfigArgs,
        /// Write the bound local address as JSON to this file once listening.
        #[arg(long)]
        ready_file: Option<PathBuf>,
    },
    /// 取号、取消、查看 / take, cancel or show the kiosk's ticket (through the running agent)
    Ticket {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(subcommand)]
        action: TicketAction,
    },
    /// 身份证阅读器 / ID card reader tools
    #[command(subcommand)]
    CardReader(agent::devices::idcard::cli::CardReaderCommand),
    /// 终端自检 / check every device, the network and the kiosk; file the result at the centre
    Selftest {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(flatten)]
        args: agent::selftest::cli::SelfTestArgs,
    },
    /// 生成技术人员密码的哈希 / read a PIN on stdin, print its hash for [selftest] pin
    HashPin,
}

#[derive(Debug, Subcommand)]
enum TicketAction {
    /// Take a remote ticket for a service category.
    Take {
        #[arg(long)]
        category: String,
    },
    /// Give up the kiosk's ticket.
    Cancel,
    /// Show the kiosk's link and ticket.
    Status,
}

fn load(args: &ConfigArgs) -> Result<AgentConfig, String> {
    AgentConfig::load(&Sources {
        file: args.config.as_deref(),
        env: std::env::vars().collect(),
        overrides: args.set.clone(),
    })
    .map_err(|e| e.to_string())
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

fn main() -> ExitCode {
    agent::install_crypto_provider();
    match Cli::parse().command {
        Command::CardReader(command) => agent::devices::idcard::cli::run(command),
        Command::HashPin => agent::selftest::cli::hash_pin(),
        Command::Selftest { config, args } => match load(&config) {
            Ok(config) => agent::selftest::cli::run(config, args),
            Err(e) => {
                eprintln!("agent: {e}");
                ExitCode::from(2)
            }
        },
        Command::Run { config, ready_file } => {
            let result = load(&config).and_then(|config| {
                init_logging(&config);
                runtime()?
                    .block_on(agent::run::run(config, ready_file))
                    .map_err(|e| format!("{e:#}"))
            });
            finish(result)
        }
        Command::Ticket { config, action } => {
            let result =
                load(&config).and_then(|config| runtime()?.block_on(ticket(&config, action)));
            finish(result)
        }
    }
}

fn finish(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agent: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &AgentConfig) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log.json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn ticket(config: &AgentConfig, action: TicketAction) -> Result<(), String> {
    let base = format!("http://{}", config.local.listen);
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(
            config.relay.request_timeout_secs + 5,
        ))
        .build()
        .map_err(|e| e.to_string())?;
    let request = match action {
        TicketAction::Take { category } => client
            .post(format!("{base}/api/ticket"))
            .json(&serde_json::json!({ "category_id": category })),
        TicketAction::Cancel => client.delete(format!("{base}/api/ticket")),
        TicketAction::Status => client.get(format!("{base}/api/status")),
    };
    let response = request.send().await.map_err(|e| {
        format!("the agent is not reachable at {base} (is `agent run` running?): {e}")
    })?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status.is_success() {
        if !body.is_empty() {
            println!("{body}");
        }
        Ok(())
    } else {
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or(body);
        Err(message)
    }
}
