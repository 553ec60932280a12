//! `loadgen`: N synthetic served sessions against the relay and, in the same run, against
//! Janus (VideoRoom), with the figures side by side. See docs/PERFORMANCE.md.
//!
//! Each session is a kiosk peer sending VP8 video (≈1.5 Mbit/s, pre-encoded frames looped,
//! a keyframe on every request) and Opus, and a clerk peer sending VP8 (≈0.8 Mbit/s) and Opus
//! back. Peers are str0m instances in RTP mode, one UDP socket each, all in this process; no
//! peer encodes or decodes. Every payload ends in a stamp (stream, counter, send time), so the
//! receiving peer counts loss and forwarding delay per packet.
//!
//! Steps of N run in order; within a step the servers run one after the other, interleaved
//! (relay, Janus; recording off, then on), so a ratio compares two runs minutes apart on the
//! same machine. Everything goes to 127.0.0.1; every wait is bounded; the tool stops by itself.

mod control;
mod janus;
mod media;
mod peer;
mod procstat;
mod relay;
mod report;
mod run;
mod server;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use serde_json::json;

use crate::run::{StepConfig, StepResult, Target};
use crate::server::Clips;

#[derive(Parser)]
#[command(about = "Relay load generator with a side-by-side Janus run")]
struct Args {
    /// Numbers of served sessions, in order.
    #[arg(long, value_delimiter = ',', default_value = "5,10,20,40,60,80")]
    steps: Vec<usize>,
    /// Measurement window per step (seconds).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Warm-up after the last join, before measuring (seconds).
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Servers to run: relay, janus.
    #[arg(long, value_delimiter = ',', default_value = "relay,janus")]
    targets: Vec<String>,
    /// Recording modes: off, on.
    #[arg(long, value_delimiter = ',', default_value = "off,on")]
    recording: Vec<String>,
    /// The relay binary (default: `relay` beside this binary).
    #[arg(long)]
    relay_bin: Option<PathBuf>,
    #[arg(long, default_value = "/usr/bin/janus")]
    janus_bin: PathBuf,
    /// Worker threads of the generator's runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Kiosk and clerk video rates (kbit/s) and the keyframe interval (seconds).
    #[arg(long, default_value_t = 1500)]
    kiosk_kbps: u32,
    #[arg(long, default_value_t = 800)]
    clerk_kbps: u32,
    #[arg(long, default_value_t = 4)]
    keyframe_interval: u32,
    /// Attempts per step: a step that fails is run again (a fresh server) up to this many
    /// times in all, since a 2-core machine shared with other work stalls now and then; every
    /// attempt is reported, and a server's capacity counts a step passed in any attempt.
    #[arg(long, default_value_t = 2)]
    attempts: u32,
    /// Keep running a server at larger N after it failed a step.
    #[arg(long)]
    keep_going: bool,
    /// Encoded clips are cached here.
    #[arg(long, default_value = "target/loadgen-cache")]
    cache_dir: PathBuf,
    /// JSON and markdown are written here (`loadgen.json`, `loadgen.md`).
    #[arg(long, default_value = "target/bench")]
    out_dir: PathBuf,
    /// The address servers and peers use. Janus never gathers loopback candidates, so the
    /// default is the machine's own address on its default route (the kernel still carries
    /// the datagrams over `lo`); 127.0.0.1 when there is none.
    #[arg(long)]
    ip: Option<IpAddr>,
    /// Free text recorded with the results (e.g. what else ran on the machine).
    #[arg(long, default_value = "")]
    note: String,
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} × {model}, Linux {}", kernel.trim())
}

/// The source address the kernel picks for the default route (no datagram is sent).
fn default_route_ip() -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("198.51.100.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

fn main() -> anyhow::Result<()> {
    signaling::install_crypto_provider();
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let relay_bin = args
        .relay_bin
        .clone()
        .unwrap_or_else(|| run::sibling_binary("relay"));
    let targets: Vec<Target> = args
        .targets
        .iter()
        .map(|t| match t.as_str() {
            "relay" => Ok(Target::Relay),
            "janus" => Ok(Target::Janus),
            other => anyhow::bail!("unknown target {other}"),
        })
        .collect::<anyhow::Result<_>>()?;
    let modes: Vec<bool> = args
        .recording
        .iter()
        .map(|m| match m.as_str() {
            "off" => Ok(false),
            "on" => Ok(true),
            other => anyhow::bail!("unknown recording mode {other}"),
        })
        .collect::<anyhow::Result<_>>()?;
    if targets.contains(&Target::Relay) && !relay_bin.exists() {
        anyhow::bail!(
            "{} not found (cargo build --release -p signaling)",
            relay_bin.display()
        );
    }
    if targets.contains(&Target::Janus) && !args.janus_bin.exists() {
        anyhow::bail!(
            "{} not found (apt-get install janus)",
            args.janus_bin.display()
        );
    }
    std::fs::create_dir_all(&args.cache_dir)?;
    std::fs::create_dir_all(&args.out_dir)?;
    let gop = args.keyframe_interval * 30;
    eprintln!(
        "loadgen: preparing clips (encoded once, cached in {})",
        args.cache_dir.display()
    );
    let clips = Clips {
        kiosk_video: Arc::new(media::vp8_clip(
            &args.cache_dir,
            1024,
            576,
            args.kiosk_kbps,
            8,
            gop,
        )),
        clerk_video: Arc::new(media::vp8_clip(
            &args.cache_dir,
            640,
            480,
            args.clerk_kbps,
            8,
            gop,
        )),
        audio: Arc::new(media::opus_clip(&args.cache_dir, 32, 8)),
    };
    let clip_line = |c: &media::Clip| {
        format!(
            "{} ({:.0} kbit/s measured, keyframe every {} frames, keyframe {} B)",
            c.source,
            c.mean_kbps(),
            c.keyframe_interval_frames(),
            c.keyframe.data.len()
        )
    };
    let ip = args
        .ip
        .or_else(default_route_ip)
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let header = format!(
        "Machine: {}. Generator: {} tokio thread(s). Window {} s after {} s warm-up. Media on {ip}.\n\
         Kiosk video: {}. Clerk video: {}. Audio: {} each way.{}",
        machine(),
        args.threads,
        args.seconds,
        args.warmup,
        clip_line(&clips.kiosk_video),
        clip_line(&clips.clerk_video),
        clip_line(&clips.audio),
        if args.note.is_empty() {
            String::new()
        } else {
            format!("\nNote: {}", args.note)
        }
    );
    eprintln!("{header}");
    let cfg = StepConfig {
        relay_bin: &relay_bin,
        janus_bin: &args.janus_bin,
        clips: &clips,
        warmup: Duration::from_secs(args.warmup),
        seconds: Duration::from_secs(args.seconds),
        threads: args.threads.max(1),
        ip,
    };
    let mut results: Vec<StepResult> = Vec::new();
    let mut failed: Vec<(Target, bool)> = Vec::new();
    for &n in &args.steps {
        for &rec in &modes {
            for &target in &targets {
                if !args.keep_going && failed.contains(&(target, rec)) {
                    continue;
                }
                for attempt in 1..=args.attempts.max(1) {
                    eprintln!(
                        "loadgen: {} N={n} recording {} attempt {attempt} (load {:?})",
                        target.name(),
                        if rec { "on" } else { "off" },
                        procstat::loadavg()
                    );
                    let mut r = run::step(&cfg, target, n, rec).await;
                    r.attempt = attempt;
                    eprintln!("  → {}", r.summary());
                    let passed = r.passes;
                    results.push(r);
                    if passed {
                        break;
                    }
                    if attempt == args.attempts.max(1) {
                        failed.push((target, rec));
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                // Let sockets and the recorder's files settle before the next server.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        write(&args, &results, &header)?;
    }
    let md = write(&args, &results, &header)?;
    println!("{md}");
    Ok(())
}

fn write(args: &Args, results: &[StepResult], header: &str) -> anyhow::Result<String> {
    let md = report::markdown(results, header);
    let meta = json!({
        "machine": machine(),
        "header": header,
        "threads": args.threads,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "note": args.note,
        "finished_unix": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    });
    let j = report::json(results, meta);
    std::fs::write(args.out_dir.join("loadgen.md"), &md).context("writing loadgen.md")?;
    std::fs::write(
        args.out_dir.join("loadgen.json"),
        serde_json::to_string_pretty(&j)?,
    )
    .context("writing loadgen.json")?;
    Ok(md)
}
