//! `agent card-reader …`: the technician's commands for the ID card reader.
//!
//! `read` checks the SAM, waits for a card and prints it, masked unless `--show-personal`;
//! every failure exits non-zero with a Chinese and English message on stderr. `simulate` runs
//! the protocol-level simulator on a pseudo-terminal and prints its path, so `read` can be tried
//! without hardware; it runs until its standard input closes (Ctrl-D) or it is interrupted.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use super::simulator::{Fault, SamSimulator, Scenario};
use super::{
    IdCardReader, ReadOptions, ReadProgress, SamConfig, SamSerialReader, SystemClock, fixtures,
    mask,
};

#[derive(Debug, clap::Subcommand)]
pub enum CardReaderCommand {
    /// 读取一张身份证并显示（默认脱敏）/ read one card and print it (masked by default)
    Read(ReadArgs),
    /// 在伪终端上运行模拟阅读器并显示其路径 / run a simulated reader on a pseudo-terminal and print its path
    Simulate(SimulateArgs),
}

#[derive(Debug, clap::Args)]
pub struct ReadArgs {
    /// Serial port of the reader, e.g. /dev/ttyUSB0
    #[arg(long)]
    pub port: String,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
    /// Print personal fields unmasked (only where the viewer needs them)
    #[arg(long)]
    pub show_personal: bool,
    /// Seconds to wait for a card
    #[arg(long, default_value_t = 30)]
    pub wait_secs: u64,
    #[arg(long, default_value_t = 115_200)]
    pub baud: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FixtureCard {
    Resident,
    ResidentLongTerm,
    Permit,
    Foreigner,
}

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Fault to simulate (repeatable)
    #[arg(long, value_enum)]
    pub fault: Vec<Fault>,
    /// Present only this card (default: all fixture cards in turn)
    #[arg(long, value_enum)]
    pub card: Option<FixtureCard>,
    /// Failed presence checks before the card is placed
    #[arg(long, default_value_t = 0)]
    pub polls_before_card: u32,
    /// Reply delay for --fault slow-replies, in milliseconds
    #[arg(long, default_value_t = 200)]
    pub slow_reply_ms: u64,
}

pub fn run(command: CardReaderCommand) -> ExitCode {
    match command {
        CardReaderCommand::Read(args) => read(&args),
        CardReaderCommand::Simulate(args) => simulate(&args),
    }
}

fn read(args: &ReadArgs) -> ExitCode {
    let config = SamConfig {
        baud: args.baud,
        ..SamConfig::default()
    };
    let result =
        SamSerialReader::open(&args.port, config, Arc::new(SystemClock)).and_then(|mut reader| {
            let info = reader.self_test()?;
            let options = ReadOptions::wait(Duration::from_secs(args.wait_secs));
            let read = reader.read_card(&options, &mut |p| {
                let message = match p {
                    ReadProgress::WaitingForCard => {
                        "请将证件放在阅读区 / place the card on the reader"
                    }
                    ReadProgress::RemoveCard => {
                        "请取走上一张证件 / lift the previous card off the reader"
                    }
                    ReadProgress::CardDetected => {
                        "正在读卡，请勿移动证件 / reading, do not move the card"
                    }
                };
                eprintln!("{message}");
            })?;
            Ok((info, read))
        });
    let (info, read) = match result {
        Ok(ok) => ok,
        Err(e) => {
            eprintln!("读卡失败 / card read failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        let value = serde_json::json!({
            "sam_id": info.sam_id,
            "card": mask::card_json(&read.card, args.show_personal),
            "photo_wlt_bytes": read.photo_wlt.expose().len(),
        });
        writeln!(out, "{value}")
    } else {
        let mut text = format!("安全模块号 / SAM id: {}\n", info.sam_id);
        for (label, value) in mask::card_lines(&read.card, args.show_personal) {
            text.push_str(&format!("{label}: {value}\n"));
        }
        text.push_str(&format!(
            "照片 / photo: WLT, {} bytes (not decoded)\n",
            read.photo_wlt.expose().len()
        ));
        out.write_all(text.as_bytes())
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("输出失败 / cannot write output: {e}");
            ExitCode::FAILURE
        }
    }
}

fn simulate(args: &SimulateArgs) -> ExitCode {
    let cards = match args.card {
        None => fixtures::cards(),
        Some(FixtureCard::Resident) => vec![fixtures::resident()],
        Some(FixtureCard::ResidentLongTerm) => vec![fixtures::resident_long_term()],
        Some(FixtureCard::Permit) => vec![fixtures::permit()],
        Some(FixtureCard::Foreigner) => vec![fixtures::foreigner()],
    };
    let scenario = Scenario {
        cards,
        faults: args.fault.clone(),
        slow_reply_delay: Duration::from_millis(args.slow_reply_ms),
        polls_before_card: args.polls_before_card,
        ..Scenario::default()
    };
    let simulator = match SamSimulator::start(scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("模拟器启动失败 / simulator failed to start: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", simulator.path());
    eprintln!(
        "模拟身份证阅读器已就绪 / simulated reader ready: agent card-reader read --port {}\n按 Ctrl-D 或 Ctrl-C 结束 / Ctrl-D or Ctrl-C stops it",
        simulator.path()
    );
    let _ = std::io::stdout().flush();
    // Runs until standard input ends; the simulator's own thread does the work.
    let mut sink = String::new();
    let stdin = std::io::stdin();
    let mut lock = stdin.lock();
    while lock.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
        sink.clear();
        if !simulator.is_running() {
            eprintln!("模拟器已停止 / the simulator stopped");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
