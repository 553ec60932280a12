#!/usr/bin/env bash
# Set up a fresh Debian 12 machine and run the system, or its tests.
#
#   bash deploy/setup.sh demo   install, build, and run the relay with a simulated kiosk
#   bash deploy/setup.sh test   install what the tests need and run every test
#
# Both are idempotent and work as root (or as a user with sudo). System packages come from
# Debian (the lists are deploy/packages-run.txt and deploy/packages-test.txt), crates from
# crates.io. Rust itself must be installed with rustup (https://rustup.rs): Debian 12's rustc
# is too old for this workspace.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
MODE=${1:-}
MIN_RUST=1.94

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { printf '\nsetup: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "installing system packages needs root (run as root or install sudo)"; fi
}

packages() { cat "$@" | grep -v '^\s*#' | grep -v '^\s*$' | sort -u; }

install_packages() {
    say "Installing Debian packages: $*"
    local wanted missing=()
    wanted=$(packages "$@")
    for p in $wanted; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "all present"
        return
    fi
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

install_packages_named() {
    say "Installing Debian packages: $*"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

check_lint_tools() {
    if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
        if command -v rustup >/dev/null; then
            rustup component add rustfmt clippy || die "could not add rustfmt and clippy (rustup component add rustfmt clippy)"
        else
            die "rustfmt and clippy are needed for the tests (rustup component add rustfmt clippy)"
        fi
    fi
}

check_rust() {
    if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if ! command -v cargo >/dev/null; then
        say "Installing Rust with rustup"
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal \
            || die "cargo not found and rustup could not be installed; install Rust >= $MIN_RUST from https://rustup.rs"
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    local have
    have=$(rustc --version | awk '{print $2}')
    if [ "$(printf '%s\n%s\n' "$MIN_RUST" "$have" | sort -V | head -1)" != "$MIN_RUST" ]; then
        die "Rust $have is too old; this workspace needs $MIN_RUST or newer (rustup update)"
    fi
    echo "rustc $have"
}

case "$MODE" in
demo)
    install_packages deploy/packages-run.txt
    check_rust
    say "Building (release)"
    cargo build --release --workspace --bins
    exec bash deploy/demo.sh "$ROOT/target/release"
    ;;
test)
    install_packages deploy/packages-run.txt deploy/packages-test.txt
    check_rust
    check_lint_tools
    if ! command -v npm >/dev/null 2>&1; then
        # A machine without Node.js: Debian's npm brings it. A machine with a Node.js of its
        # own already has npm, and Debian's package would conflict with it.
        install_packages_named npm
    fi
    say "Installing axe-core for the kiosk accessibility check (tests/a11y)"
    npm ci --prefix tests/a11y --no-audit --no-fund \
        || die "could not install axe-core from the npm registry (npm ci --prefix tests/a11y)"
    say "Checking formatting and lints"
    cargo fmt --all --check \
        || die "code is not rustfmt-clean: run 'cargo fmt --all'"
    cargo clippy --workspace --all-targets -- -D warnings \
        || die "clippy found problems (cargo clippy --workspace --all-targets -- -D warnings)"
    say "Building the binaries the end-to-end tests run"
    cargo build --workspace --bins
    say "Running every test"
    cargo test --workspace --no-fail-fast
    ;;
*)
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
