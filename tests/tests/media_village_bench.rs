//! The bad-network benchmark: per profile of issue 16, a call between the real agent (on its
//! simulated sources) and a clerk in headless Chromium through the relay, with the profile
//! applied by `e2e::UdpPath` to both media legs (agent ⇄ relay and relay ⇄ clerk), each
//! direction. Figures per profile: frames decoded per second at the clerk, freeze time per
//! minute (gaps > 500 ms), glass-to-glass p50/p95 (capture stamp read back in the clerk's
//! page), the share of the kiosk's audio Chromium concealed, the agent's estimate over time
//! and the camera's size, recovery after the outage; and Chromium as a sender on the same
//! path (its estimate and encoded frame rate) as the anchor.
//!
//! Run: `cargo test -p e2e --test media_village_bench -- --ignored --nocapture`
//! (`VILLAGE_PROFILES=clean,loss5` picks profiles, `VILLAGE_SECONDS=30` the window).
//! Never in the default run: about a minute per profile.

mod media {
    pub mod call;
    pub mod village;
}

use std::time::Duration;

use anyhow::Result;
use e2e::udp_path::Impairment;
use media::village::{AGENT_IP, CLERK_IP, Call, PathEvent};

struct Profile {
    name: &'static str,
    what: &'static str,
    leg: Impairment,
    outage: Option<Duration>,
}

fn profiles() -> Vec<Profile> {
    let ms = Duration::from_millis;
    vec![
        Profile {
            name: "clean",
            what: "clean",
            leg: Impairment::NONE,
            outage: None,
        },
        Profile {
            name: "loss2",
            what: "2 % loss, 50 ms RTT",
            leg: Impairment::lossy(0.02, ms(50)),
            outage: None,
        },
        Profile {
            name: "loss5",
            what: "5 % loss, 100 ms RTT, 30 ms jitter",
            leg: Impairment::lossy(0.05, ms(100)).with_jitter(ms(30)),
            outage: None,
        },
        Profile {
            name: "loss10",
            what: "10 % loss",
            leg: Impairment::lossy(0.10, Duration::ZERO),
            outage: None,
        },
        Profile {
            name: "cap1m",
            what: "1 Mbit/s cap",
            leg: Impairment::NONE.with_cap(1_000_000),
            outage: None,
        },
        Profile {
            name: "cap500k",
            what: "500 kbit/s cap, 200 ms RTT",
            leg: Impairment::lossy(0.0, ms(200)).with_cap(500_000),
            outage: None,
        },
        Profile {
            name: "outage3s",
            what: "3 s outage",
            leg: Impairment::NONE,
            outage: Some(Duration::from_secs(3)),
        },
    ]
}

#[tokio::test]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn the_call_on_bad_networks() -> Result<()> {
    let wanted: Option<Vec<String>> = std::env::var("VILLAGE_PROFILES")
        .ok()
        .map(|v| v.split(',').map(str::to_owned).collect());
    let seconds: u64 = std::env::var("VILLAGE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let mut rows = Vec::new();
    for profile in profiles() {
        if wanted
            .as_ref()
            .is_some_and(|w| !w.iter().any(|n| n == profile.name))
        {
            continue;
        }
        let call = Call::start(16, profile.leg, profile.leg).await?;
        let clerk = call.clerk_calls().await?;
        let event = profile.outage.map(|outage| PathEvent {
            at: Duration::from_secs(seconds / 2),
            act: Box::new(move |path: &e2e::UdpPath| {
                path.outage(AGENT_IP, outage);
                path.outage(CLERK_IP, outage);
            }),
            path_back_after: outage,
        });
        let figures = call
            .measure(&clerk, Duration::from_secs(seconds), event)
            .await?;
        println!("{}: {figures}", profile.what);
        rows.push((profile.what, figures));
        drop(clerk);
        call.close().await?;
    }
    println!();
    println!(
        "| profile | clerk fps | freeze s/min | glass p50/p95 ms | audio concealed | video loss after repair | agent estimate kbit/s (min–max, end) | camera lines (end) | recovery | Chromium estimate kbit/s (end) | Chromium fps |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (what, f) in rows {
        let range = |v: &[f64]| {
            let min = v.iter().copied().fold(f64::INFINITY, f64::min);
            let max = v.iter().copied().fold(0.0, f64::max);
            format!(
                "{:.0}–{:.0}, {:.0}",
                min,
                max,
                v.last().copied().unwrap_or(0.0)
            )
        };
        let opt = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.0}"));
        println!(
            "| {what} | {:.1} | {:.1} | {}/{} | {:.1} % | {:.1} % | {} | {} | {} | {:.0} | {:.1} |",
            f.fps,
            f.freeze_s_per_min,
            opt(f.glass_p50_ms),
            opt(f.glass_p95_ms),
            f.audio_concealed * 100.0,
            f.video_loss * 100.0,
            range(&f.estimate_kbps),
            f.camera_heights.last().copied().unwrap_or(0),
            f.recovered_after_s
                .map_or("–".to_owned(), |s| format!("{s:.2} s")),
            f.chromium_target_kbps.last().copied().unwrap_or(0.0),
            f.chromium_fps,
        );
    }
    Ok(())
}
