#!/usr/bin/env bash
# Embedding throughput: quiver-embed vs sentence-transformers on torch CPU (see bench_embed.py).
# Needs a venv with sentence-transformers (bench/requirements-embed.txt; torch from PyPI is large:
# the CUDA build and its libraries, several GB) and all-MiniLM-L6-v2 (scripts/fetch_model.sh).
# Usage: scripts/bench_embed.sh [bench_embed.py options]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p quiver-embed --example bench_embed
VENV=${VENV:-.venv-embed-bench}
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -r bench/requirements-embed.txt
fi
QUIVER_MINILM_DIR="${QUIVER_MINILM_DIR:-$(bash scripts/fetch_model.sh "$VENV/bin/python")}"
export QUIVER_MINILM_DIR
exec "$VENV/bin/python" scripts/bench_embed.py "$@"
