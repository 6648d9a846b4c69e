#!/usr/bin/env bash
# Builds the benchmark, installs numpy + faiss-cpu in .venv-bench, runs both on wn-gloss.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p quiver-engine --example bench_exact
[ -x .venv-bench/bin/python ] || python3 -m venv .venv-bench
.venv-bench/bin/pip install -q -r bench/requirements.txt
exec .venv-bench/bin/python scripts/bench_exact.py "$@"
