#!/usr/bin/env bash
# Create .venv (if missing) and install the Python test dependencies (tests/compat).
# Usage: scripts/setup_python.sh            (from anywhere; paths are relative to the repo)
#        QUIVER_VENV=DIR QUIVER_REQUIREMENTS=FILE scripts/setup_python.sh   (another client pin)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${QUIVER_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV"
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
"$VENV/bin/python" -m pip install --quiet -r "${QUIVER_REQUIREMENTS:-$ROOT/tests/compat/requirements.txt}"
"$VENV/bin/python" -c 'import pymilvus, pytest; print("pymilvus", pymilvus.__version__, "pytest", pytest.__version__)'
