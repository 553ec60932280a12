#!/usr/bin/env bash
# The demonstration: a relay on its embedded SQLite store, one simulated extension-point kiosk
# agent connected to it, a few tickets in the queue, and a clerk console ready in a browser.
# Stop it with Ctrl-C. Data lives in ./data/demo (delete it to start afresh).
#
#   bash deploy/demo.sh [BIN_DIR]      (BIN_DIR defaults to target/release)
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=${1:-target/release}
DATA=${RVW_DEMO_DATA:-data/demo}
HTTPS_PORT=${RVW_DEMO_HTTPS_PORT:-8443}
HTTP_PORT=${RVW_DEMO_HTTP_PORT:-8080}
AGENT_PORT=${RVW_DEMO_AGENT_PORT:-7380}
# Live video goes through the relay's one UDP port. On loopback by default, for a browser on
# this machine; for browsers elsewhere set RVW_DEMO_MEDIA_LISTEN=0.0.0.0:8443 and
# RVW_DEMO_MEDIA_IP to this machine's address as they reach it.
MEDIA_LISTEN=${RVW_DEMO_MEDIA_LISTEN:-127.0.0.1:8443}
MEDIA_IP=${RVW_DEMO_MEDIA_IP:-}
RELAY="$BIN/relay"
AGENT="$BIN/agent"
[ -x "$RELAY" ] && [ -x "$AGENT" ] || { echo "demo: build first (cargo build --release --workspace --bins)" >&2; exit 1; }

mkdir -p "$DATA"
# Demo only: clerks may log in with their password alone. Supervisors, registry operators and
# technicians set up an authenticator app at their first login (the console shows a QR code);
# in production (the default) clerks do too. demo=true: the demonstration keeps its master keys
# inside its data directory (made on the first start). A real relay takes them from outside it:
# see docs/SECURITY.md, "Keys".
RELAY_ARGS=(--data-dir "$DATA/relay" --set demo=true --set server.tls.self_signed=true
    --set media.enabled=true --set "media.udp_listen=$MEDIA_LISTEN"
    --set auth.clerk_two_factor=optional)
[ -n "$MEDIA_IP" ] && RELAY_ARGS+=(--set "media.advertised_ip=$MEDIA_IP")
"$RELAY" "${RELAY_ARGS[@]}" seed-demo >/dev/null

pids=()
# Background helpers of the demo itself (not watched by the final wait).
helpers=()
cleanup() {
    trap - EXIT INT TERM
    for p in "${pids[@]}" "${helpers[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo; echo "demo stopped"
}
trap cleanup EXIT INT TERM

wait_file() {
    for _ in $(seq 1 150); do [ -s "$1" ] && return 0; sleep 0.2; done
    echo "demo: $2 did not start; see $3" >&2
    tail -n 20 "$3" >&2 || true
    exit 1
}

rm -f "$DATA/relay-ready.json" "$DATA/agent-ready.json"
"$RELAY" "${RELAY_ARGS[@]}" serve --listen "0.0.0.0:$HTTPS_PORT" --dev-http "127.0.0.1:$HTTP_PORT" \
    --ready-file "$DATA/relay-ready.json" 2>"$DATA/relay.log" &
pids+=($!)
wait_file "$DATA/relay-ready.json" relay "$DATA/relay.log"

cat > "$DATA/agent.toml" <<TOML
# Written by deploy/demo.sh: the simulated kiosk of the demonstration extension point.
[relay]
url = "wss://127.0.0.1:$HTTPS_PORT/ws/kiosk"
credential_file = "$DATA/relay/demo/kiosk.credential"
ca_file = "$DATA/relay/tls/relay-self-signed.crt"
[local]
listen = "127.0.0.1:$AGENT_PORT"
[store]
data_dir = "$DATA/agent"
[devices]
# Every device simulated: ID card reader and scanner on pseudo-terminals, test pictures for the
# cameras, a test tone for the microphone.
simulated = true
[media]
udp_bind = "127.0.0.1:0"
loopback_candidates = true
TOML
"$AGENT" run --config "$DATA/agent.toml" --ready-file "$DATA/agent-ready.json" 2>"$DATA/agent.log" &
pids+=($!)
wait_file "$DATA/agent-ready.json" agent "$DATA/agent.log"

for _ in $(seq 1 100); do
    "$AGENT" ticket --config "$DATA/agent.toml" status 2>/dev/null | grep -q '"link":"online"' && break
    sleep 0.2
done

# A resident waits at the kiosk. The relay gives walk-in tickets only while a window that serves
# the category is open, so the simulated resident takes a remote ticket within two seconds of a
# clerk opening a window (trying for up to an hour; nothing if the kiosk already holds one).
(
    for _ in $(seq 1 1800); do
        "$AGENT" ticket --config "$DATA/agent.toml" status 2>/dev/null | grep -q '"ticket":{' && break
        "$AGENT" ticket --config "$DATA/agent.toml" take --category social-security >/dev/null 2>&1 && break
        sleep 2
    done
) &
helpers+=($!)
# The centre's own ticket machine issues two on-site tickets, so the unified queue shows both kinds.
MACHINE=$(cat "$DATA/relay/demo/ticket-machine.credential")
for category in social-security medical-insurance; do
    curl -sk -o /dev/null -X POST "https://127.0.0.1:$HTTPS_PORT/api/v1/tickets" \
        -H "authorization: Bearer $MACHINE" -H 'content-type: application/json' \
        -d "{\"category_id\":\"$category\"}" || true
done

PASSWORD=$(cat "$DATA/relay/demo/staff-password.txt")
cat <<INFO

  远程虚拟窗口 demo is running.

  Clerk console:   http://127.0.0.1:$HTTP_PORT/        (INSECURE development listener, this machine only)
                   https://<this-host>:$HTTPS_PORT/    (self-signed certificate: accept the warning)
  Login:           clerk1  /  $PASSWORD     (also clerk2, supervisor1; same password;
                   demo accounts are not asked to change it; five wrong tries lock an account for 15 min)
                   supervisor1 first binds an authenticator app on a phone (QR code on screen),
                   then types its 6-digit code at each login; demo clerks need no code.
  Window:          choose "8号远程虚拟窗口"; the simulated resident at the kiosk then takes a
                   社会保障 ticket within a few seconds; press 叫下一位 to call it.

  Kiosk screen:    http://127.0.0.1:$AGENT_PORT/kiosk   (what the resident sees)
  Kiosk status:    $BIN/agent ticket --config $DATA/agent.toml status
  Logs:            $DATA/relay.log, $DATA/agent.log

  Press Ctrl-C to stop.
INFO
wait -n "${pids[@]}"
