//! media-bench: how much CPU the agent spends to capture, encode and send its camera.
//!
//! Runs the real `MediaLink` with the simulated camera (720p30 `videotestsrc`, VP8 with the
//! kiosk's realtime settings, time-code stamping on) sending over WebRTC on 127.0.0.1 to a
//! receiver in a *separate process* (this binary re-run with `--answerer`, which only drains
//! RTP), so the figure is the agent's alone. Microphone and document preview are paused. The
//! camera's bitrate is pinned so the work matches a fixed-rate `gst-launch-1.0` run.
//!
//! ```text
//! cargo build --release -p agent --bin media-bench
//! target/release/media-bench --seconds 20 --warmup 5
//! target/release/media-bench --no-frame-drop   # encode every frame, whatever the rate
//! ```
//!
//! `agent/scripts/media-cpu.sh` runs this and the same GStreamer pipeline under
//! `gst-launch-1.0`, and prints both figures and their ratio. Output is one line of
//! `key=value` pairs; `cpu_cores` is CPU time over wall time (1.0 = one core busy).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::link::rtc::{BitrateLimits, ConnectionState, MediaLink, MediaLinkConfig, PeerConfig};
use agent::media::MediaSources;
use anyhow::{Context, bail};
use protocol::media::Slot;

struct Options {
    seconds: u64,
    warmup: u64,
    width: u32,
    height: u32,
    fps: u32,
    bitrate: u32,
    frame_drop: bool,
}

fn parse_options() -> anyhow::Result<(bool, Options)> {
    let mut options = Options {
        seconds: 20,
        warmup: 5,
        width: 1280,
        height: 720,
        fps: 30,
        bitrate: 1_200_000,
        frame_drop: true,
    };
    let mut answerer = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> anyhow::Result<u64> {
            args.next()
                .with_context(|| format!("{name} needs a value"))?
                .parse::<u64>()
                .with_context(|| format!("{name} takes a number"))
        };
        match arg.as_str() {
            "--answerer" => answerer = true,
            "--no-frame-drop" => options.frame_drop = false,
            "--seconds" => options.seconds = value("--seconds")?,
            "--warmup" => options.warmup = value("--warmup")?,
            "--width" => options.width = u32::try_from(value("--width")?)?,
            "--height" => options.height = u32::try_from(value("--height")?)?,
            "--fps" => options.fps = u32::try_from(value("--fps")?)?,
            "--bitrate" => options.bitrate = u32::try_from(value("--bitrate")?)?,
            other => bail!("unknown argument {other}; see the doc comment in media-bench.rs"),
        }
    }
    Ok((answerer, options))
}

fn main() -> anyhow::Result<()> {
    let (answerer, options) = parse_options()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if answerer {
        runtime.block_on(answer::run())
    } else {
        runtime.block_on(bench(options))
    }
}

/// CPU time (user + system, all threads) of this process.
fn process_cpu(ticks_per_second: f64) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The command name may contain spaces; fields resume after its closing parenthesis.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unexpected /proc/self/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: f64 = fields.get(11).context("utime")?.parse()?;
    let stime: f64 = fields.get(12).context("stime")?.parse()?;
    Ok(Duration::from_secs_f64((utime + stime) / ticks_per_second))
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn write_sdp(out: &mut impl Write, sdp: &str) -> anyhow::Result<()> {
    writeln!(out, "{}", sdp.len())?;
    out.write_all(sdp.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn read_sdp(input: &mut impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    input.read_line(&mut line)?;
    let len: usize = line.trim().parse().context("SDP length")?;
    if len > 64 * 1024 {
        bail!("SDP of {len} bytes is not plausible");
    }
    let mut buf = vec![0u8; len];
    input.read_exact(&mut buf)?;
    Ok(String::from_utf8(buf)?)
}

async fn bench(options: Options) -> anyhow::Result<()> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--answerer")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the answerer process")?;
    let mut to_child = child.stdin.take().context("answerer stdin")?;
    let mut from_child = BufReader::new(child.stdout.take().context("answerer stdout")?);

    let mut peer = PeerConfig::loopback();
    // Pinned: the encoder gets the same bitrate whatever the estimate does.
    peer.bitrate = BitrateLimits {
        camera_min_bps: options.bitrate,
        camera_max_bps: options.bitrate,
        max_bps: options
            .bitrate
            .saturating_mul(2)
            .max(peer.bitrate.start_bps),
        ..peer.bitrate
    };
    let mut config = MediaLinkConfig::new(MediaSources::simulated(), peer);
    config.camera.width = options.width;
    config.camera.height = options.height;
    config.camera.fps = options.fps;
    config.camera.bitrate_bps = options.bitrate;
    config.camera.drop_frames_to_hold_rate = options.frame_drop;
    config.document_sending = false;
    config.microphone_sending = false;

    let (link, _clerk) = MediaLink::start(config).await?;
    let offer = link.offer().await?;
    write_sdp(&mut to_child, &offer)?;
    let answer = tokio::task::spawn_blocking(move || {
        let answer = read_sdp(&mut from_child);
        (answer, from_child)
    })
    .await?;
    let (answer, _from_child) = (answer.0?, answer.1);
    link.apply_answer(&answer).await?;
    let mut state = link.state();
    tokio::time::timeout(
        Duration::from_secs(20),
        state.wait_for(|s| *s == ConnectionState::Connected),
    )
    .await
    .context("connecting to the answerer")??;

    tokio::time::sleep(Duration::from_secs(options.warmup)).await;
    let ticks = clock_ticks();
    let before = link.stats().await;
    let (cpu0, wall0) = (process_cpu(ticks)?, Instant::now());
    tokio::time::sleep(Duration::from_secs(options.seconds)).await;
    let (cpu1, wall) = (process_cpu(ticks)?, wall0.elapsed());
    let after = link.stats().await;

    let frames = after.camera.frames_encoded - before.camera.frames_encoded;
    let dropped = after.camera.raw_frames_dropped - before.camera.raw_frames_dropped;
    let bytes = after.camera.bytes_encoded - before.camera.bytes_encoded;
    let sent = after
        .peer
        .outbound
        .iter()
        .find(|o| o.slot == Slot::KioskCamera)
        .map(|o| o.packets_sent)
        .unwrap_or_default();
    println!(
        "agent cpu_cores={:.3} seconds={:.1} frames={frames} fps={:.1} raw_dropped={dropped} \
         kbit_per_s={:.0} packets_sent_total={sent} size={}x{}@{}",
        (cpu1 - cpu0).as_secs_f64() / wall.as_secs_f64(),
        wall.as_secs_f64(),
        frames as f64 / wall.as_secs_f64(),
        bytes as f64 * 8.0 / wall.as_secs_f64() / 1000.0,
        options.width,
        options.height,
        options.fps,
    );
    link.close().await;
    drop(to_child);
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}

/// The receiving side: answers the offer, then drains every track without decoding.
mod answer {
    use super::*;
    use tokio::sync::mpsc;
    use webrtc::media_stream::track_remote::TrackRemote;
    use webrtc::peer_connection::{
        MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
        RTCIceGatheringState, RTCSessionDescription, Registry, SettingEngineBuilder,
    };

    struct Handler {
        gathered: tokio::sync::watch::Sender<bool>,
        tracks: mpsc::Sender<Arc<dyn TrackRemote>>,
    }

    #[async_trait::async_trait]
    impl PeerConnectionEventHandler for Handler {
        async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
            if state == RTCIceGatheringState::Complete {
                self.gathered.send_replace(true);
            }
        }

        async fn on_track(&self, track: Arc<dyn TrackRemote>) {
            let _ = self.tracks.try_send(track);
        }
    }

    pub(super) async fn run() -> anyhow::Result<()> {
        let mut media_engine = MediaEngine::default();
        agent::link::rtc::codecs::register_codecs(&mut media_engine)?;
        let registry = rtc::peer_connection::configuration::interceptor_registry::configure_nack(
            Registry::new(),
            &mut media_engine,
        );
        let registry =
            rtc::peer_connection::configuration::interceptor_registry::configure_rtcp_reports(
                registry,
            );
        let registry =
            rtc::peer_connection::configuration::interceptor_registry::configure_twcc_receiver_only(
                registry,
                &mut media_engine,
            )?;
        let (gathered_tx, mut gathered) = tokio::sync::watch::channel(false);
        let (tracks_tx, mut tracks) = mpsc::channel(8);
        let pc = PeerConnectionBuilder::new()
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(
                SettingEngineBuilder::new()
                    .with_include_loopback_candidate(true)
                    .build(),
            )
            .with_handler(Arc::new(Handler {
                gathered: gathered_tx,
                tracks: tracks_tx,
            }))
            .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
            .build()
            .await?;

        let offer = tokio::task::spawn_blocking(|| {
            let mut stdin = std::io::stdin().lock();
            read_sdp(&mut stdin)
        })
        .await??;
        pc.set_remote_description(RTCSessionDescription::offer(offer)?)
            .await?;
        let answer = pc.create_answer(None).await?;
        pc.set_local_description(answer).await?;
        tokio::time::timeout(Duration::from_secs(10), gathered.wait_for(|g| *g)).await??;
        let answer = pc.local_description().await.context("answer")?.sdp;
        write_sdp(&mut std::io::stdout().lock(), &answer)?;

        // Drain tracks until the parent closes our stdin.
        tokio::spawn(async move {
            while let Some(track) = tracks.recv().await {
                tokio::spawn(async move { while track.poll().await.is_some() {} });
            }
        });
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().lock().read_to_end(&mut sink);
        })
        .await?;
        let _ = pc.close().await;
        Ok(())
    }
}
