#!/usr/bin/env bash
# Quiver vs Milvus Lite, same pymilvus workload on wn-gloss: builds the release server, installs
# pymilvus + milvus-lite in .venv-bench, runs scripts/bench_milvus_lite.py (arguments pass through,
# e.g. --queries 1000; --help lists them). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p quiver
[ -x .venv-bench/bin/python ] || python3 -m venv .venv-bench
.venv-bench/bin/pip install -q -r bench/requirements.txt -r bench/requirements-lite.txt
exec .venv-bench/bin/python scripts/bench_milvus_lite.py "$@"
