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

use protocol::card_view;
use protocol::device::IdCard;

use super::simulator::{Fault, SamSimulator, Scenario};
use super::{IdCardReader, ReadOptions, ReadProgress, SamConfig, SamSerialReader, fixtures};
use crate::clock::SystemClock;

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
            "card": card_view::card_json(&read.card, !args.show_personal),
            "photo_wlt_bytes": read.photo_wlt.expose().len(),
        });
        writeln!(out, "{value}")
    } else {
        let mut text = format!("安全模块号 / SAM id: {}\n", info.sam_id);
        for (label, value) in card_lines(&read.card, args.show_personal) {
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

/// The card as "中文 / English" labelled lines for the terminal: the clerk's view from
/// [`protocol::card_view`] (which does the masking), with English beside each label.
fn card_lines(card: &IdCard, show_personal: bool) -> Vec<(String, String)> {
    let view = card_view::card_view(card, !show_personal);
    let card_type = match card {
        IdCard::Resident(_) => "resident ID card",
        IdCard::HkMacaoTaiwanPermit(_) => "HK, Macao, Taiwan residence permit",
        IdCard::ForeignPermanentResident(_) => "foreign permanent resident ID card",
    };
    let mut lines = vec![(
        "证件类型 / card type".to_owned(),
        format!("{} / {card_type}", view.card_type),
    )];
    lines.extend(view.lines.into_iter().map(|line| {
        let english = match line.label.as_str() {
            "姓名" | "英文姓名" => "name",
            "中文姓名" => "Chinese name",
            "性别" => "sex",
            "民族" => "ethnic group",
            "国籍" => "nationality",
            "出生" => "born",
            "住址" => "address",
            "公民身份号码" => "ID number",
            "证件号码" => "card number",
            "通行证号码" => "pass number",
            "签发机关" => "issued by",
            "签发次数" => "issue count",
            "有效期限" => "valid",
            _ => "",
        };
        let label = if english.is_empty() {
            line.label
        } else {
            format!("{} / {english}", line.label)
        };
        (label, line.value)
    }));
    lines
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_output_hides_every_personal_value() {
        for card in fixtures::cards() {
            let text = format!(
                "{:?} {}",
                card_lines(&card, false),
                card_view::card_json(&card, true)
            );
            for secret in [
                "310101199003071230",
                "王小明",
                "示例路",
                "19900307",
                "1990-03-07",
                "H00000000",
                "SAMPLE",
                "亚历克斯",
                "XXX310000000001",
            ] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
            let plain = format!("{:?}", card_lines(&card, true));
            assert!(!plain.contains("***"), "{plain}");
            assert!(
                card_lines(&card, true)
                    .iter()
                    .all(|(label, _)| label.contains(" / ")),
                "every label has its English: {plain}"
            );
        }
    }
}
