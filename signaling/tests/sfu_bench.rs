//! Relay CPU per forwarded packet, measured inside the sans-IO core (receive → SRTP decrypt →
//! rewrite → SRTP encrypt → datagram out; no socket cost). Not a pass/fail test:
//! `cargo test -p signaling --test sfu_bench -- --ignored --nocapture` (add `--release` for
//! figures comparable with other servers; the dev profile already optimises dependencies).
#![allow(clippy::unwrap_used)]

mod sfu_support;

use std::time::Duration;

use sfu_support::Net;
use signaling::sfu::{PeerId, Role};

#[test]
#[ignore = "benchmark; run explicitly"]
fn cpu_per_forwarded_packet() {
    let pairs = 4u64;
    let mut net = Net::new();
    for p in 0..pairs {
        net.add_client(1 + p, Role::Kiosk);
        net.add_client(101 + p, Role::Clerk);
    }
    net.connect_all();
    for p in 0..pairs {
        net.sfu
            .connect(PeerId(1 + p), PeerId(101 + p), false, net.now)
            .unwrap();
    }
    net.flush_sfu();
    let ids: Vec<u64> = (0..pairs).flat_map(|p| [1 + p, 101 + p]).collect();
    net.media_for(&ids, Duration::from_secs(1));
    let before = net.metrics.snapshot();
    net.relay_busy = Duration::ZERO;
    let seconds = 10;
    net.media_for(&ids, Duration::from_secs(seconds));
    let after = net.metrics.snapshot();
    let forwarded = after.rtp_forwarded - before.rtp_forwarded;
    let datagrams = after.datagrams_in - before.datagrams_in;
    let per_packet = net.relay_busy.as_secs_f64() * 1e6 / forwarded as f64;
    println!(
        "{pairs} pairs, {seconds} s virtual: {forwarded} packets forwarded ({datagrams} datagrams in), \
         relay core busy {:.1} ms → {per_packet:.2} µs per forwarded packet \
         (≈ {:.0} k packets/s per core)",
        net.relay_busy.as_secs_f64() * 1e3,
        1e3 / per_packet
    );
    assert!(forwarded > 0);
}
