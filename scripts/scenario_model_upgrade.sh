#!/usr/bin/env bash
# The model-upgrade scenario (register v2 -> evaluate on lee-beir -> migrate -> shadow -> promote
# -> rollback, audit verified) against a freshly built server; see scenario_model_upgrade.py.
# Installs what it needs: the Python venv (pymilvus) and all-MiniLM-L6-v2.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${QUIVER_NO_BUILD:-}" ]; then
  cargo build -p quiver --quiet
fi
bash scripts/setup_python.sh
export QUIVER_MINILM_DIR="${QUIVER_MINILM_DIR:-$(bash scripts/fetch_model.sh .venv/bin/python)}"
export QUIVER_BIN="${QUIVER_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/debug/quiver}"
exec .venv/bin/python scripts/scenario_model_upgrade.py
