#!/usr/bin/env bash
# Shared mode on a real S3 server (SeaweedFS on 127.0.0.1): ingest rate and acknowledgement
# latency, embedded vs. the object store; a reader's cold and warm start on a 100k-vector
# collection; search QPS with 1, 2 and 4 reader processes (see bench_object_storage.py).
# Usage: scripts/bench_object_storage.sh [--rows N] [--dim D] [--seconds S]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p quiver
bash scripts/setup_python.sh >/dev/null
QUIVER_WEED="$(bash scripts/setup_seaweedfs.sh 2>/dev/null)"
export QUIVER_WEED
exec .venv/bin/python scripts/bench_object_storage.py "$@"
