"""Fixtures for the pymilvus compatibility suite.

Each server is a real `quiver serve` process (target/debug/quiver, or $QUIVER_BIN) on a free
127.0.0.1 port with a temporary data directory. It is ready when /healthz answers on its
metrics port (which the server binds after the gRPC port), and is stopped by PID with SIGTERM
(SIGKILL only if it does not exit in time).
"""

import os
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def quiver_bin() -> Path:
    env = os.environ.get("QUIVER_BIN")
    if env:
        return Path(env)
    for profile in ("debug", "release"):
        p = ROOT / "target" / profile / "quiver"
        if p.exists():
            return p
    raise RuntimeError("no quiver binary: run `cargo build -p quiver` or set QUIVER_BIN")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class QuiverServer:
    """One `quiver serve` process; `restart()` keeps the data directory and the port.

    `args` are extra flags (`--auth`, `--tls-cert F`, ...), `env` extra environment variables;
    with `base_flags=False` the server gets only `args` (a config file then names the data
    directory and the ports, which must be `self.port` / `self.metrics_port`).
    """

    def __init__(self, data_dir: Path, log_path: Path, args=(), env=None, base_flags=True):
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = free_port()
        self.metrics_port = free_port()
        self.args = list(args)
        self.env = dict(env or {})
        self.base_flags = base_flags
        self.scheme = "http"
        self.proc = None

    @property
    def uri(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 30.0) -> None:
        log = open(self.log_path, "ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUIVER_")}
        env.setdefault("RUST_LOG", "info")
        env.update(self.env)
        base = [
            "--data-dir",
            str(self.data_dir),
            "--listen",
            f"127.0.0.1:{self.port}",
            "--metrics-listen",
            f"127.0.0.1:{self.metrics_port}",
        ]
        self.proc = subprocess.Popen(
            [str(quiver_bin()), "serve", *(base if self.base_flags else []), *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"quiver exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.metrics_port}/healthz", timeout=1
                ) as r:
                    if r.status == 200 and r.read() == b"ok":
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"quiver did not become ready in {timeout}s; see {self.log_path}")

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout=timeout)

    def restart(self) -> None:
        code = self.stop()
        assert code == 0, f"quiver exited with {code} on SIGTERM; see {self.log_path}"
        self.start()


def _new_server(tmp_path_factory, name: str) -> QuiverServer:
    base = tmp_path_factory.mktemp(name)
    server = QuiverServer(base / "data", base / "quiver.log")
    server.start()
    return server


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """A server shared by the whole session (tests use unique collection names)."""
    s = _new_server(tmp_path_factory, "shared")
    yield s
    code = s.stop()
    assert code == 0, f"quiver exited with {code} on SIGTERM; see {s.log_path}"


@pytest.fixture
def own_server(tmp_path_factory):
    """A private server, for tests that restart it."""
    s = _new_server(tmp_path_factory, "own")
    yield s
    s.stop()


@pytest.fixture
def make_server(tmp_path_factory):
    """A factory of private servers with extra flags and environment, all stopped at the end:
    `make_server("--auth", env={"QUIVER_ROOT_PASSWORD": "..."})`. `start=False` returns the
    server unstarted (to write a config file for it first, or to expect a failed start)."""
    servers = []

    def make(*args, env=None, base_flags=True, start=True, name="custom"):
        base = tmp_path_factory.mktemp(name)
        s = QuiverServer(base / "data", base / "quiver.log", args, env, base_flags)
        servers.append(s)
        if start:
            s.start()
        return s

    yield make
    for s in servers:
        s.stop()


@pytest.fixture
def client(server):
    from pymilvus import MilvusClient

    c = MilvusClient(uri=server.uri)
    yield c
    c.close()


@pytest.fixture
def name():
    """A unique collection name."""
    return "c_" + uuid.uuid4().hex[:12]


def rpc_error_behind(exc):
    """The grpc.RpcError that `exc` is or was raised from (pymilvus 2.5 lets the RpcError of a
    failed connect escape; 3.x wraps it in a MilvusException whose __cause__ it is)."""
    import grpc

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, grpc.RpcError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def unauthenticated(fn, details=None):
    """`fn()` must fail with the server's gRPC status UNAUTHENTICATED (and `details`, if given).

    When `fn` returns a client (pymilvus 3.x may construct one on a pooled connection without
    any RPC), it is used once, so that the server gets to say no."""
    import grpc
    from pymilvus import MilvusException

    with pytest.raises((grpc.RpcError, MilvusException)) as e:
        c = fn()
        if hasattr(c, "list_collections"):
            try:
                c.list_collections()
            finally:
                c.close()
    err = rpc_error_behind(e.value)
    assert err is not None, f"no gRPC status behind {e.value!r}"
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED, err
    if details is not None:
        assert err.details() == details
    return err


@pytest.fixture
def orm(server):
    """An ORM connection alias (`connections.connect`) to the shared server, for tests whose
    point is an ORM API (`Collection`, `utility`); MilvusClient's private `_using` is not an ORM
    alias in pymilvus 3.x."""
    from pymilvus import connections

    alias = "orm_" + uuid.uuid4().hex[:8]
    connections.connect(alias=alias, uri=server.uri)
    yield alias
    connections.remove_connection(alias)


@pytest.fixture(scope="session")
def minilm_dir():
    """The all-MiniLM-L6-v2 directory (scripts/fetch_model.sh); skips without it unless
    QUIVER_REQUIRE_MODEL is set, where its absence fails."""
    d = os.environ.get("QUIVER_MINILM_DIR")
    if not d or not (Path(d) / "model.safetensors").exists():
        assert not os.environ.get("QUIVER_REQUIRE_MODEL"), "QUIVER_REQUIRE_MODEL set but no model"
        pytest.skip("set QUIVER_MINILM_DIR (scripts/fetch_model.sh)")
    return d


def datasets_dir():
    """shared/datasets, when it is here (None otherwise)."""
    here = Path(__file__).resolve()
    for root in [os.environ.get("QUIVER_DATASETS"), here.parents[3] / "shared/datasets", "/work/shared/datasets"]:
        if root and (Path(root) / "wn-gloss/texts_base.txt").exists():
            return Path(root)
    return None
