//! The `agent` binary: a thin command-line shell over the `agent` library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "agent", version, about = "延伸点终端代理 / kiosk agent for extension points")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// 身份证阅读器 / ID card reader tools
    #[command(subcommand)]
    CardReader(agent::devices::idcard::cli::CardReaderCommand),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::CardReader(command) => agent::devices::idcard::cli::run(command),
    }
}
