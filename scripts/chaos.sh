#!/usr/bin/env bash
# The raft-kv cluster under chaos (crates/ironwal-raft/examples/chaos):
# builds the node and the harness in release mode, then runs the harness
# with the arguments given, for example
#
#   scripts/chaos.sh --nodes 5 --minutes 30
#
# It prints the operations, the faults injected and every anomaly, and
# exits 1 if it found one. `--help` lists the options.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet -p ironwal-raft --examples
exec target/release/examples/chaos "$@"
