#!/usr/bin/env bash
# A short fuzzing run of every parser of untrusted input: the relay's targets
# (`signaling/fuzz`) and the kiosk agent's (`agent/fuzz`). Not part of the tests.
#
#   bash deploy/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS per target (default 30); TARGET names limit the run to those targets. Installs
# cargo-fuzz into ~/.cargo/bin when it is missing, builds every target once (release, debug
# assertions and overflow checks on, AddressSanitizer with a nightly toolchain), then runs each
# target on a copy of its seed corpus (`<crate>/fuzz/corpus/<target>`, never written to) and
# prints per target: executions, executions per second, coverage (libFuzzer's final `cov` and
# `ft`) and crashes. A crashing input is kept under the work directory and its path printed;
# reproduce it with `cargo fuzz run <target> <file>` in the crate's fuzz directory.
#
# Environment: FUZZ_TOOLCHAIN (default `nightly` when rustup has one, else `stable`),
# FUZZ_SANITIZER (default `address` on nightly, `none` on stable), FUZZ_WORK (work directory,
# default a new one under target/fuzz-runs); CARGO_BUILD_JOBS limits the build's jobs.
# Exit status: 0 when no target crashed, 1 when one did, 2 when a build failed.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)

seconds=${1:-30}
case "$seconds" in
    '' | *[!0-9]*) echo "fuzz: SECONDS must be a whole number, got '$seconds'" >&2; exit 2 ;;
esac
shift || true
only=("$@")

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
    say "Installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

if [ -z "${FUZZ_TOOLCHAIN:-}" ]; then
    if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
        FUZZ_TOOLCHAIN=nightly
    else
        FUZZ_TOOLCHAIN=stable
    fi
fi
if [ -z "${FUZZ_SANITIZER:-}" ]; then
    if [ "$FUZZ_TOOLCHAIN" = stable ]; then FUZZ_SANITIZER=none; else FUZZ_SANITIZER=address; fi
fi
# Both fuzz workspaces share one target directory, so the dependencies they share build once.
target_dir="$root/target/fuzz"
work=${FUZZ_WORK:-"$root/target/fuzz-runs/$(date -u +%Y%m%dT%H%M%SZ)"}
mkdir -p "$work"

# crate directory and its targets, in the order they run.
crates=(signaling/fuzz agent/fuzz)
targets_of() { sed -n 's/^name = "\(.*\)"$/\1/p' "$1/Cargo.toml" | grep -v -- '-fuzz$'; }

wanted() {
    [ ${#only[@]} -eq 0 ] && return 0
    local t
    for t in "${only[@]}"; do [ "$t" = "$1" ] && return 0; done
    return 1
}

fuzz() {
    local dir=$1
    shift
    (cd "$root/$dir" && cargo "+$FUZZ_TOOLCHAIN" fuzz "$1" -s "$FUZZ_SANITIZER" \
        --target-dir "$target_dir" "${@:2}")
}

# Only the crates with a target to run are built.
selected=()
for dir in "${crates[@]}"; do
    for target in $(targets_of "$dir"); do
        if wanted "$target"; then
            selected+=("$dir")
            break
        fi
    done
done
[ ${#selected[@]} -gt 0 ] || { echo "fuzz: no target named ${only[*]}" >&2; exit 2; }
crates=("${selected[@]}")

for dir in "${crates[@]}"; do
    say "Building $dir ($FUZZ_TOOLCHAIN, sanitizer $FUZZ_SANITIZER)"
    if ! fuzz "$dir" build; then
        echo "fuzz: building $dir failed" >&2
        exit 2
    fi
done

rows=()
crashed=0
for dir in "${crates[@]}"; do
    for target in $(targets_of "$dir"); do
        wanted "$target" || continue
        say "$target: ${seconds} s"
        corpus="$work/corpus/$target"
        artifacts="$work/artifacts/$target/"
        log="$work/$target.log"
        mkdir -p "$corpus" "$artifacts"
        seeds=()
        [ -d "$root/$dir/corpus/$target" ] && seeds=("$root/$dir/corpus/$target")
        # libFuzzer stops itself after max_total_time; the outer timeout only guards a hang in
        # the harness. Crashes, leaks, timeouts (10 s an input) and out-of-memory (one
        # allocation over 512 MiB, or 2 GiB in all) all leave an artifact.
        set +e
        timeout --kill-after=10 $((seconds + 120)) \
            bash -c 'cd "$1" && shift && exec "$@"' _ "$root/$dir" \
            cargo "+$FUZZ_TOOLCHAIN" fuzz run -s "$FUZZ_SANITIZER" --target-dir "$target_dir" \
            "$target" "$corpus" "${seeds[@]}" -- \
            -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
            -rss_limit_mb=2048 -malloc_limit_mb=512 -artifact_prefix="$artifacts" \
            >"$log" 2>&1
        status=$?
        set -e
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
        last=$(grep -E '^#[0-9]+.*cov: [0-9]+' "$log" | tail -1 || true)
        cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
        ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
        found=$(find "$artifacts" -type f | wc -l)
        if [ "$found" -gt 0 ] || [ "$status" -ne 0 ]; then
            crashed=1
            [ "$found" -eq 0 ] && found="exit $status"
            grep -E 'panicked|ERROR: |SUMMARY' "$log" | head -5 || true
            find "$artifacts" -type f -exec echo "  kept: {}" \;
        fi
        rows+=("$(printf '%-22s %7s %12s %9s %7s %7s %8s' "$target" "$seconds" \
            "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$found")")
        printf '%s\n' "${rows[-1]}"
    done
done

say "Fuzzing: ${seconds} s per target, $FUZZ_TOOLCHAIN, sanitizer $FUZZ_SANITIZER"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
printf '%-22s %7s %12s %9s %7s %7s %8s\n' target seconds executions exec/s cov ft crashes
printf '%s\n' "${rows[@]}"
echo "logs, corpora and crash inputs: $work"
exit "$crashed"
