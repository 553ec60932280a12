#!/usr/bin/env bash
# Installs the kiosk session on a Debian 12 kiosk: the agent as a service and the kiosk screen
# (cage + Chromium) on tty1. Run as root from a checkout, after building the agent
# (cargo build --release -p agent) and writing /etc/rvw/agent.toml and the credential.
set -euo pipefail
cd "$(dirname "$0")/../.."
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    $(grep -v '^\s*#' deploy/packages-kiosk.txt | grep -v '^\s*$')
id -u rvw-agent >/dev/null 2>&1 || useradd --system --home /var/lib/rvw-agent --shell /usr/sbin/nologin rvw-agent
id -u kiosk >/dev/null 2>&1 || useradd --create-home --shell /usr/sbin/nologin --groups video,audio,input,render kiosk
install -d -o kiosk -g kiosk /var/lib/rvw-kiosk
install -m 755 target/release/agent /usr/local/bin/agent
install -m 644 deploy/kiosk/rvw-agent.service deploy/kiosk/rvw-kiosk.service /etc/systemd/system/
systemctl daemon-reload
systemctl enable --now rvw-agent.service
systemctl set-default graphical.target
systemctl enable rvw-kiosk.service
systemctl disable getty@tty1.service || true
echo "kiosk session installed; reboot or: systemctl start rvw-kiosk.service"
