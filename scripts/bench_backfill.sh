#!/usr/bin/env bash
# Re-embedding backfill rate on wn-gloss (see bench_backfill.py): release server + bench_embed,
# pymilvus from the test venv (scripts/setup_python.sh), all-MiniLM-L6-v2 (scripts/fetch_model.sh).
# Usage: scripts/bench_backfill.sh [--rows N] [--batch-size B]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p quiver
cargo build --release -p quiver-embed --example bench_embed
bash scripts/setup_python.sh >/dev/null
QUIVER_MINILM_DIR="${QUIVER_MINILM_DIR:-$(bash scripts/fetch_model.sh .venv/bin/python)}"
export QUIVER_MINILM_DIR
exec .venv/bin/python scripts/bench_backfill.py "$@"
