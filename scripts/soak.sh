#!/usr/bin/env bash
# The long tier of ironwal's crash-safety suite: shares N minutes among the
# harnesses power-loss, kill9, damage, fuzz-decode and fuzz-open, and prints
# one line per harness on stdout:
#
#   <harness>: runs=<count> acked=<count> lost_acked=<count> wrong=<count> seed=<seed>
#
# (for the fuzz targets, runs = inputs executed). Exits non-zero if any
# harness lost an acknowledged entry, accepted a wrong one, crashed or
# failed. Builds what it needs first (not counted in the N minutes) and
# installs cargo-fuzz when it is missing. Progress and failures go to stderr.
#
# Usage: scripts/soak.sh --minutes N [--seed S]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() {
    echo "usage: scripts/soak.sh --minutes N [--seed S]"
}

minutes=""
seed=""
while [ $# -gt 0 ]; do
    case "$1" in
    --minutes) minutes="${2:-}"; shift 2 || { usage >&2; exit 2; } ;;
    --minutes=*) minutes="${1#*=}"; shift ;;
    --seed) seed="${2:-}"; shift 2 || { usage >&2; exit 2; } ;;
    --seed=*) seed="${1#*=}"; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done
if ! [[ "$minutes" =~ ^[0-9]+$ ]] || [ "$minutes" -lt 1 ]; then
    usage >&2
    exit 2
fi
if [ -z "$seed" ]; then
    seed=$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')
elif ! [[ "$seed" =~ ^[0-9]+$ ]]; then
    usage >&2
    exit 2
fi

say() { echo "soak: $*" >&2; }

# libFuzzer wants a 32-bit seed (0 means "pick one"): derive one from ours.
low=${seed: -9}
fuzz_seed=$(( 10#${low:-$seed} + 1 ))

say "seed $seed; building the harness and the fuzz targets"
cargo build --release -p ironwal-crash >&2
if ! cargo fuzz --version >/dev/null 2>&1; then
    say "installing cargo-fuzz"
    cargo install cargo-fuzz --locked >&2
fi
# cargo-fuzz builds with a sanitizer, which needs nightly features: the
# stable toolchain allows them under RUSTC_BOOTSTRAP. AddressSanitizer is
# what makes -malloc_limit_mb catch a single oversized allocation.
export RUSTC_BOOTSTRAP=1
(cd fuzz && cargo fuzz build >&2)

harness=target/release/ironwal-crash
names=(power-loss kill9 damage fuzz-decode fuzz-open)
end=$(( $(date +%s) + minutes * 60 ))
failed=0

# Seconds for the next harness: its equal share of the N minutes, or more
# when earlier harnesses finished early (damage is exhaustive and may), but
# never less, even when one overran.
share=$(( minutes * 60 / ${#names[@]} ))
slice() {
    local left=$(( end - $(date +%s) ))
    local s=$(( left / $1 ))
    [ "$s" -ge "$share" ] && echo "$s" || echo "$share"
}

# Prints a harness's line and judges it: its exit code and its counts.
judge() {
    local name=$1 rc=$2 line=$3
    if [ -z "$line" ]; then
        line="$name: runs=0 acked=0 lost_acked=0 wrong=0 seed=$seed"
        say "$name printed no summary"
        rc=1
    fi
    echo "$line"
    local lost wrong
    lost=$(sed -n 's/.* lost_acked=\([0-9]*\).*/\1/p' <<<"$line")
    wrong=$(sed -n 's/.* wrong=\([0-9]*\).*/\1/p' <<<"$line")
    if [ "$rc" -ne 0 ] || [ "${lost:-1}" -ne 0 ] || [ "${wrong:-1}" -ne 0 ]; then
        say "$name FAILED (exit $rc)"
        failed=1
    fi
}

# A harness this long past its share counts as hung.
grace() { echo $(( 60 + $1 / 10 )); }

run_harness() {
    local name=$1 secs=$2 rc=0 line
    say "$name for ${secs}s"
    line=$(timeout --kill-after=10 $(( secs + $(grace "$secs") )) \
        "$harness" "$name" --seconds "$secs" --seed "$seed") || rc=$?
    [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || say "$name hung: killed $(grace "$secs")s after its share"
    judge "$name" "$rc" "$line"
}

run_fuzz() {
    local name=$1 target=$2 secs=$3 rc=0 runs log
    say "$name for ${secs}s"
    # New inputs go to a scratch corpus (kept between soaks, never
    # committed); the committed seeds are read only.
    mkdir -p "fuzz/target/soak-corpus/$target"
    log=$(mktemp)
    (cd fuzz && timeout --kill-after=10 $(( secs + $(grace "$secs") )) \
        cargo fuzz run "$target" "target/soak-corpus/$target" "corpus/$target" -- \
        -malloc_limit_mb=64 -max_total_time="$secs" -max_len=8192 -timeout=30 \
        -seed="$fuzz_seed" -print_final_stats=1) >"$log" 2>&1 || rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
    [ -n "$runs" ] || runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
    [ -n "$runs" ] || runs=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
    if [ "$rc" -ne 0 ]; then
        say "$name: the fuzzer stopped with exit $rc:"
        grep -E -A 3 "panicked at|ERROR: libFuzzer|^SUMMARY" "$log" | head -n 30 >&2 || true
        grep -E "artifacts/$target/" "$log" | head -n 1 >&2 || tail -n 20 "$log" >&2
    fi
    rm -f "$log"
    judge "$name" "$rc" "$name: runs=${runs:-0} acked=0 lost_acked=0 wrong=0 seed=$seed"
}

for i in "${!names[@]}"; do
    name=${names[$i]}
    secs=$(slice $(( ${#names[@]} - i )))
    case "$name" in
    fuzz-*) run_fuzz "$name" "${name#fuzz-}" "$secs" ;;
    *) run_harness "$name" "$secs" ;;
    esac
done

if [ "$failed" -ne 0 ]; then
    say "FAILED (rerun with --seed $seed)"
    exit 1
fi
say "all harnesses passed"
