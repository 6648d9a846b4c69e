#!/usr/bin/env bash
# The long crash test: 1,000 SIGKILL cycles (the normal suite runs 50).
#   scripts/crash_test.sh [CYCLES]
set -euo pipefail
cd "$(dirname "$0")/.."
export QUIVER_CRASH_CYCLES="${1:-1000}"
cargo test -p quiver-engine --test crash crash_kill_cycles -- --nocapture
