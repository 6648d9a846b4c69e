#!/usr/bin/env bash
# Node SDK smoke test: installs the pinned @zilliz/milvus2-sdk-node (npm ci, offline cache first),
# builds quiver (debug, unless QUIVER_BIN is set), starts `quiver serve` on free 127.0.0.1 ports
# with a temporary data directory, runs smoke.mjs against it and stops the server by PID.
#
#   tests/node/run.sh                      # from anywhere
#   QUIVER_BIN=target/release/quiver tests/node/run.sh
#   QUIVER_PROFILE=release tests/node/run.sh   # build and use the release binary
#   QUIVER_NO_BUILD=1 tests/node/run.sh        # use an existing debug (or release) binary as is
#
# Needs node >= 20 (the SDK's dependencies require it) and npm. Exit status: 0 when the smoke test passed.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac

command -v node >/dev/null || { echo "tests/node: node is not installed" >&2; exit 1; }
command -v npm >/dev/null || { echo "tests/node: npm is not installed" >&2; exit 1; }

# 1. Dependencies: npm ci only when package-lock.json changed since the last install.
lock_sum="$(sha256sum "$HERE/package-lock.json" | cut -d' ' -f1)"
stamp="$HERE/node_modules/.quiver-lock-sha256"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_sum" ]; then
  echo "== npm ci (tests/node)"
  (cd "$HERE" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)
  echo "$lock_sum" > "$stamp"
fi

# 2. The server binary.
if [ -n "${QUIVER_BIN:-}" ]; then
  BIN="$QUIVER_BIN"
else
  profile="${QUIVER_PROFILE:-debug}"
  if [ -z "${QUIVER_NO_BUILD:-}" ]; then
    echo "== cargo build -p quiver ($profile)"
    if [ "$profile" = release ]; then
      (cd "$ROOT" && cargo build --quiet --release -p quiver)
    else
      (cd "$ROOT" && cargo build --quiet -p quiver)
    fi
    BIN="$TARGET/$profile/quiver"
  else
    BIN=""
    for p in "$profile" debug release; do
      if [ -x "$TARGET/$p/quiver" ]; then BIN="$TARGET/$p/quiver"; break; fi
    done
  fi
fi
[ -n "$BIN" ] && [ -x "$BIN" ] || { echo "tests/node: no quiver binary (looked for ${BIN:-$TARGET/{debug,release}/quiver})" >&2; exit 1; }

# 3. Start the server on free ports with a throwaway data directory; always stop it by PID.
TMP="$(mktemp -d "${TMPDIR:-/tmp}/quiver-node.XXXXXX")"
PID=""
cleanup() {
  local rc=$? log_tail=""
  trap '' PIPE  # stdout may be a closed pipe by now: let writes fail instead of killing us
  set +e
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$PID" 2>/dev/null; then
      echo "tests/node: quiver (pid $PID) ignored SIGTERM for 10 s; sending SIGKILL" >&2
      kill -KILL "$PID" 2>/dev/null
    fi
    wait "$PID" 2>/dev/null
  fi
  if [ "$rc" -ne 0 ] && [ -f "$TMP/quiver.log" ]; then
    log_tail="$(tail -n 40 "$TMP/quiver.log")"
  fi
  rm -rf "$TMP"
  if [ -n "$log_tail" ]; then
    printf '%s\n%s\n' "---- last 40 lines of the quiver log ----" "$log_tail" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
trap 'exit 141' PIPE

read -r PORT METRICS_PORT < <(node -e '
const net = require("net");
const one = () => new Promise((res, rej) => { const s = net.createServer(); s.unref(); s.on("error", rej);
  s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => res(p)); }); });
(async () => { const a = await one(); let b = await one(); while (b === a) b = await one(); console.log(a, b); })();')

RUST_LOG="${RUST_LOG:-info}" "$BIN" serve \
  --data-dir "$TMP/data" \
  --listen "127.0.0.1:$PORT" \
  --metrics-listen "127.0.0.1:$METRICS_PORT" \
  >"$TMP/quiver.log" 2>&1 &
PID=$!

# Ready when /healthz answers "ok" on the metrics port (bound after the gRPC port).
ready=""
for _ in $(seq 1 300); do
  if ! kill -0 "$PID" 2>/dev/null; then
    echo "tests/node: quiver exited before becoming ready" >&2
    exit 1
  fi
  if [ "$(curl -fsS --max-time 1 "http://127.0.0.1:$METRICS_PORT/healthz" 2>/dev/null)" = ok ]; then
    ready=1
    break
  fi
  sleep 0.1
done
[ -n "$ready" ] || { echo "tests/node: quiver did not become ready in 30 s" >&2; exit 1; }

# 4. The smoke test.
echo "== node smoke test against quiver on 127.0.0.1:$PORT ($BIN)"
QUIVER_ADDR="127.0.0.1:$PORT" node "$HERE/smoke.mjs"

# 5. A clean shutdown is part of the test.
kill -TERM "$PID"
code=0
for _ in $(seq 1 200); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$PID" 2>/dev/null; then
  echo "tests/node: quiver did not exit within 20 s of SIGTERM" >&2
  exit 1
fi
wait "$PID" || code=$?
PID=""
if [ "$code" -ne 0 ]; then
  echo "tests/node: quiver exited with status $code on SIGTERM" >&2
  exit 1
fi
