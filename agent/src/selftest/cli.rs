//! `agent selftest` and `agent hash-pin`.
//!
//! When an agent runs on this kiosk (its token file exists and its local API answers), the
//! self-test runs inside it, on the devices it serves with; otherwise (or with `--standalone`)
//! this process opens the devices and logs in to the relay itself. Either way the result is
//! printed as a table (Chinese first) or with `--json`, filed at the relay with the
//! technician's name, and the exit status is 1 when a check failed or the record could not be
//! filed (2 for bad usage).

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use protocol::inspection::{Bilingual, CheckOutcome, CheckResult, InspectionReport};

use super::report::{Printed, UploadOutcome, table};
use super::service::{RunView, kit, local_access, local_access_denied, network_kit};
use super::{Network, Options, Progress, check::name};
use crate::config::{AgentConfig, Credential};
use crate::devices::setup::DeviceHandles;
use protocol::device::DeviceKind;

#[derive(Debug, Clone, clap::Args)]
pub struct SelfTestArgs {
    /// 巡检人员姓名 / the technician's name, filed with the record (required unless --no-upload).
    #[arg(long)]
    pub technician: Option<String>,
    /// Print the result as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also read a test ID card (place it on the reader when asked).
    #[arg(long)]
    pub with_card: bool,
    /// Also scan a test QR code (hold it to the scanner when asked).
    #[arg(long)]
    pub with_code: bool,
    /// Do not file the result at the relay.
    #[arg(long)]
    pub no_upload: bool,
    /// Run in this process even when an agent runs (its relay connection is replaced for the
    /// duration of the login check, and it must not hold the devices).
    #[arg(long)]
    pub standalone: bool,
}

/// The longest opening the devices may take before the checks start without them.
const OPEN_LIMIT: Duration = Duration::from_secs(20);

/// The devices when opening them did not finish within [`OPEN_LIMIT`].
fn open_timed_out() -> DeviceHandles {
    let reason = format!(
        "打开设备超过 {} 秒未完成 / opening the devices did not finish within {} s",
        OPEN_LIMIT.as_secs(),
        OPEN_LIMIT.as_secs()
    );
    DeviceHandles {
        missing: [
            DeviceKind::IdCardReader,
            DeviceKind::QrScanner,
            DeviceKind::DocumentCamera,
        ]
        .into_iter()
        .map(|kind| (kind, reason.clone()))
        .collect(),
        ..DeviceHandles::default()
    }
}

/// The longest a delegated run is followed.
const FOLLOW_LIMIT: Duration = Duration::from_secs(300);

pub fn run(config: AgentConfig, args: SelfTestArgs) -> ExitCode {
    let technician = args
        .technician
        .clone()
        .unwrap_or_default()
        .trim()
        .to_owned();
    if technician.is_empty() && !args.no_upload {
        eprintln!(
            "agent selftest: 请用 --technician 填写巡检人员姓名 / --technician NAME is required (or --no-upload)"
        );
        return ExitCode::from(2);
    }
    if technician.chars().count() > protocol::inspection::MAX_TECHNICIAN_CHARS {
        eprintln!(
            "agent selftest: --technician is longer than {} characters",
            protocol::inspection::MAX_TECHNICIAN_CHARS
        );
        return ExitCode::from(2);
    }
    crate::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("agent selftest: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = Options {
        technician: technician.clone(),
        automatic: false,
        with_card: args.with_card,
        with_code: args.with_code,
    };
    let result = runtime.block_on(async {
        if !args.standalone
            && let Some(outcome) = delegate(&config, &options, &args).await
        {
            return outcome;
        }
        standalone(&config, options, &args).await
    });
    match result {
        Ok((report, upload)) => print(&config, &report, upload, &args),
        Err(e) => {
            eprintln!("agent selftest: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print(
    config: &AgentConfig,
    report: &InspectionReport,
    upload: UploadOutcome,
    args: &SelfTestArgs,
) -> ExitCode {
    let overall = report.overall();
    let upload_failed = matches!(upload, UploadOutcome::Failed { .. });
    let mut out = std::io::stdout().lock();
    if args.json {
        let printed = Printed {
            overall,
            report,
            upload: upload.clone(),
        };
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&printed).unwrap_or_default()
        );
    } else {
        let device = Credential::read(&config.relay.credential_file)
            .map(|c| c.device_id)
            .unwrap_or_default();
        let header = format!(
            "终端自检 Kiosk self-test · 设备 {device} · 配置 {} · 巡检人员 {}",
            report.profile.as_deref().unwrap_or("-"),
            if report.technician.is_empty() {
                "-"
            } else {
                &report.technician
            }
        );
        let _ = write!(out, "{}", table(report, &header));
        let _ = match &upload {
            UploadOutcome::Filed { receipt } => writeln!(
                out,
                "巡检记录已上传 / inspection record filed: #{}",
                receipt.id
            ),
            UploadOutcome::Failed { message } => writeln!(out, "{message}"),
            UploadOutcome::NotRequested => {
                writeln!(out, "未上传巡检记录 / not filed (--no-upload)")
            }
        };
    }
    let _ = out.flush();
    if overall == CheckOutcome::Fail || upload_failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Progress on stderr for people (nothing with `--json`, whose stdout must stay clean).
struct Terminal {
    quiet: bool,
}

impl Progress for Terminal {
    fn check_done(&self, r: &CheckResult) {
        if !self.quiet {
            eprintln!(
                "  {} {} / {}",
                r.outcome.name_zh(),
                name(&r.id).0,
                name(&r.id).1
            );
        }
    }

    fn prompt(&self, prompt: Option<Bilingual>) {
        // Prompts are shown even with --json: the technician has to act on them.
        if let Some(p) = prompt {
            eprintln!(">>> {} / {}", p.zh, p.en);
        }
    }
}

async fn standalone(
    config: &AgentConfig,
    options: Options,
    args: &SelfTestArgs,
) -> Result<(InspectionReport, UploadOutcome), String> {
    let credential = Credential::read(&config.relay.credential_file)?;
    let connector =
        crate::link::control::tls_connector(&config.relay).map_err(|e| e.to_string())?;
    let devices_config = config.devices.clone();
    // Opening serial ports and starting simulators blocks briefly — or, on a hung USB serial
    // adapter, for good: past the limit the devices count as not opened.
    let opening = tokio::task::spawn_blocking(move || crate::devices::setup::open(&devices_config));
    let opened = match tokio::time::timeout(OPEN_LIMIT, opening).await {
        Ok(opened) => Some(opened.map_err(|e| e.to_string())?),
        Err(_) => None,
    };
    let handles = opened
        .as_ref()
        .map_or_else(open_timed_out, |o| o.handles.clone());
    let network = Arc::new(network_kit(config, &credential, &connector));
    let kit = Arc::new(kit(config, handles, Network::Standalone(network.clone()))?);
    if !args.json {
        eprintln!("终端自检开始 / self-test started …");
    }
    let report = super::run(kit, options, Arc::new(Terminal { quiet: args.json })).await;
    drop(opened);
    let upload = if args.no_upload {
        UploadOutcome::NotRequested
    } else {
        match network.http() {
            Err(e) => UploadOutcome::Failed { message: e },
            Ok(http) => {
                match super::upload::upload(&http, &report, 3, Duration::from_secs(1)).await {
                    Ok(receipt) => UploadOutcome::Filed { receipt },
                    Err(e) => UploadOutcome::Failed {
                        message: e.to_string(),
                    },
                }
            }
        }
    };
    Ok((report, upload))
}

/// Runs the self-test in the running agent, if there is one; `None` when there is none.
async fn delegate(
    config: &AgentConfig,
    options: &Options,
    args: &SelfTestArgs,
) -> Option<Result<(InspectionReport, UploadOutcome), String>> {
    if local_access_denied(&config.store.data_dir) {
        return Some(Err(format!(
            "终端程序正在运行，但当前用户无法读取 {path}：请以终端服务的用户运行（sudo -u rvw-agent agent selftest …），或先停止服务（systemctl stop rvw-agent）再用 --standalone / the agent is running but this user cannot read {path}: run as the service's user (sudo -u rvw-agent agent selftest …), or stop the service (systemctl stop rvw-agent) and use --standalone",
            path = super::service::token_path(&config.store.data_dir).display()
        )));
    }
    let access = local_access(&config.store.data_dir)?;
    if options.technician.is_empty() {
        return Some(Err(
            "终端程序正在运行，它会上传每次自检的记录：请用 --technician 填写巡检人员姓名 / the running agent files every self-test: give --technician NAME".into(),
        ));
    }
    let base = format!("http://{}", access.local);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .ok()?;
    let auth = format!("Bearer {}", access.token);
    let response = client
        .post(format!("{base}/api/technician/run"))
        .header("authorization", &auth)
        .json(&serde_json::json!({
            "technician": options.technician,
            "with_card": options.with_card,
            "with_code": options.with_code,
        }))
        .send()
        .await;
    // Nobody listening (the token file is from an agent that has stopped): run here.
    let response = response.ok()?;
    let status = response.status();
    if status.as_u16() == 401 {
        return None;
    }
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        return Some(Err(body["message"]
            .as_str()
            .unwrap_or("the running agent refused")
            .to_owned()));
    }
    let run_id = body["run_id"].as_u64()?;
    if !args.json {
        eprintln!(
            "终端自检在运行中的终端程序内进行 / running inside the kiosk agent (run {run_id}) …"
        );
    }
    let progress = Terminal { quiet: args.json };
    let deadline = tokio::time::Instant::now() + FOLLOW_LIMIT;
    let (mut shown, mut prompt) = (0usize, None::<Bilingual>);
    loop {
        if tokio::time::Instant::now() >= deadline {
            return Some(Err(
                "the self-test in the agent did not finish in time".into()
            ));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let view: RunView = match client
            .get(format!("{base}/api/technician/run"))
            .header("authorization", &auth)
            .send()
            .await
        {
            Ok(r) => match r.json().await {
                Ok(v) => v,
                Err(e) => return Some(Err(e.to_string())),
            },
            Err(e) => return Some(Err(format!("the agent stopped answering: {e}"))),
        };
        if view.run_id != run_id {
            return Some(Err("another self-test replaced this one".into()));
        }
        for c in view.checks.iter().skip(shown) {
            progress.check_done(c);
        }
        shown = view.checks.len();
        if view.prompt != prompt {
            prompt = view.prompt.clone();
            progress.prompt(prompt.clone());
        }
        if !view.running && view.report.is_none() {
            // The run ended without a result (it failed internally).
            return Some(Err(match view.upload {
                Some(UploadOutcome::Failed { message }) => message,
                _ => "the self-test in the agent ended without a result".into(),
            }));
        }
        if !view.running
            && let Some(report) = view.report
        {
            let upload = if args.no_upload {
                // The agent files every run it makes; say so rather than pretend it did not.
                view.upload.unwrap_or(UploadOutcome::NotRequested)
            } else {
                view.upload.unwrap_or(UploadOutcome::Failed {
                    message: "no upload result".into(),
                })
            };
            return Some(Ok((report, upload)));
        }
    }
}

/// `agent hash-pin`: reads a PIN from standard input, prints its hash for `[selftest] pin`.
pub fn hash_pin() -> ExitCode {
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        eprintln!("agent hash-pin: cannot read standard input");
        return ExitCode::from(2);
    }
    match super::pin::hash_pin(line.trim()) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("agent hash-pin: {e}");
            ExitCode::from(2)
        }
    }
}
