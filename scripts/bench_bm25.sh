#!/usr/bin/env bash
# BM25 full-text search: Quiver's engine vs bm25s on wn-gloss's texts (see bench_bm25.py).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p quiver-engine --example bench_bm25
VENV=${VENV:-.venv-bm25-bench}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q -r bench/requirements-bm25.txt
exec "$VENV/bin/python" scripts/bench_bm25.py "$@"
