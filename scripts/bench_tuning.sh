#!/usr/bin/env bash
# Online-experiment overhead and build-level autotuning on wn-gloss (see bench_tuning.py):
# release server, pymilvus from the test venv (scripts/setup_python.sh).
# Usage: scripts/bench_tuning.sh [--searches N] [--budget-s S]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p quiver
bash scripts/setup_python.sh >/dev/null
exec .venv/bin/python scripts/bench_tuning.py "$@"
