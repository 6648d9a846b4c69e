#!/usr/bin/env bash
# HNSW benchmark: Quiver vs hnswlib vs faiss-cpu on wn-gloss (see bench_ann.py).
# Needs the .venv-bench virtual environment (bench/requirements.txt).
# Usage: scripts/bench_ann.sh [bench_ann.py options]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p quiver-index --example bench_ann
VENV=${VENV:-.venv-bench}
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -r bench/requirements.txt
fi
exec "$VENV/bin/python" scripts/bench_ann.py "$@"
