#!/usr/bin/env bash
# The relay under load beside Janus on this machine, in one run (see docs/PERFORMANCE.md).
#
#   bash deploy/bench.sh [loadgen options]
#
# Installs Janus (Debian package `janus`, VideoRoom plugin) and GStreamer's command-line tools
# (the generator encodes its clips once with gst-launch-1.0) when missing, builds the relay and
# the load generator in release mode, and runs the comparison: for every N, recording off then
# on, the relay and then Janus, each on a fresh server. Janus's configuration is generated into
# a temporary directory for each run; nothing of Janus's is kept.
#
# Defaults: steps 5,10,20,30,40,60 sessions, 10 s measured after 3 s of warm-up, a failed step
# tried once more. Anything after the script's name goes to loadgen, e.g.
#   bash deploy/bench.sh --steps 10,20 --seconds 20 --recording off
# Results: target/bench/loadgen.md (the table) and target/bench/loadgen.json.
set -euo pipefail

cd "$(dirname "$0")/.."

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { printf '\nbench: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "installing packages needs root (run as root or install sudo)"; fi
}

missing=()
[ -x /usr/bin/janus ] || missing+=(janus)
command -v gst-launch-1.0 >/dev/null || missing+=(gstreamer1.0-tools)
# vp8enc and opusenc for the clips.
gst-inspect-1.0 vp8enc >/dev/null 2>&1 || missing+=(gstreamer1.0-plugins-good)
gst-inspect-1.0 opusenc >/dev/null 2>&1 || missing+=(gstreamer1.0-plugins-base)
if [ ${#missing[@]} -gt 0 ]; then
    say "Installing ${missing[*]}"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
# The package starts a system-wide Janus on its default ports; the benchmark runs its own.
if command -v systemctl >/dev/null && systemctl is-active --quiet janus 2>/dev/null; then
    echo "note: the janus system service is running; it idles, but stop it for clean figures"
fi
command -v cargo >/dev/null || die "cargo not found (install Rust with rustup, see deploy/setup.sh)"

say "Building the relay and the load generator (release)"
cargo build --release -p signaling -p loadgen

say "Machine"
nproc
grep -m1 'model name' /proc/cpuinfo || true
uptime

say "Running loadgen"
args=("$@")
if [ ${#args[@]} -eq 0 ]; then
    args=(--steps 5,10,20,30,40,60)
fi
exec target/release/loadgen --out-dir target/bench "${args[@]}"
