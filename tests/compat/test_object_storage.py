"""Shared mode against a real S3 server (SeaweedFS): pymilvus writes through a writer whose
database lives in the bucket; kill -9 mid-ingest and a new writer has every acknowledged row;
a writer SIGSTOPped past its lease and then resumed is fenced and acknowledges nothing more."""

import os
import signal
import threading
import time
import urllib.error
import urllib.request

import pytest
from pymilvus import MilvusClient, MilvusException

from conftest import QuiverServer
from seaweed import SeaweedFS

DIM = 8
TTL = "1"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    if not os.environ.get("QUIVER_WEED"):
        if os.environ.get("QUIVER_REQUIRE_WEED") == "1":
            pytest.fail("QUIVER_WEED is not set: scripts/setup_seaweedfs.sh installs SeaweedFS")
        pytest.skip("SeaweedFS not installed (scripts/setup_seaweedfs.sh; scripts/test.sh does it)")
    w = SeaweedFS(tmp_path_factory.mktemp("seaweed")).start()
    yield w
    w.stop()


def writer(s3, tmp_path, name, prefix, extra=()):
    d = tmp_path / name
    d.mkdir()
    return QuiverServer(
        d / "local",
        d / "quiver.log",
        args=[
            "--storage", f"s3://test/{prefix}",
            "--s3-endpoint", s3.endpoint,
            "--s3-allow-http",
            "--lease-ttl-s", TTL,
            *extra,
        ],
        env=s3.env,
    )


def rows(ids):
    return [{"id": i, "vector": [float(i % 97)] + [0.5] * (DIM - 1)} for i in ids]


def present(client, coll, ids):
    got = set()
    ids = sorted(ids)
    for s in range(0, len(ids), 500):
        chunk = ids[s : s + 500]
        res = client.query(coll, filter=f"id in {chunk}", output_fields=["id"])
        got |= {r["id"] for r in res}
    return got


def test_kill9_mid_ingest_then_a_new_writer_has_every_acknowledged_row(s3, tmp_path):
    a = writer(s3, tmp_path, "a", "kill9")
    a.start()
    c = MilvusClient(uri=a.uri)
    c.create_collection("ingest", dimension=DIM, auto_id=False)
    acked, stop = [], threading.Event()

    def ingest():
        cl = MilvusClient(uri=a.uri, timeout=3)
        n = 0
        while not stop.is_set():
            batch = list(range(n, n + 50))
            n += 50
            try:
                cl.insert("ingest", rows(batch), timeout=3)
                acked.extend(batch)
            except Exception:
                return  # the writer died under us: this batch's outcome is unknown

    t = threading.Thread(target=ingest, daemon=True)
    t.start()
    time.sleep(1.5)
    c.flush("ingest")  # some rows in sealed segments, the rest only in log objects
    time.sleep(1.0)
    os.kill(a.proc.pid, signal.SIGKILL)
    a.proc.wait()
    stop.set()
    t.join(timeout=30)
    assert not t.is_alive()
    assert len(acked) >= 200, len(acked)

    b = writer(s3, tmp_path, "b", "kill9")
    started = time.time()
    b.start()  # waits for a's lease to lapse (1 s without a heartbeat)
    assert "claimed the writer lease epoch=2" in b.log()
    c = MilvusClient(uri=b.uri)
    assert present(c, "ingest", acked) == set(acked)
    count = c.query("ingest", filter="", output_fields=["count(*)"])[0]["count(*)"]
    assert len(acked) <= count <= len(acked) + 50  # at most the one batch in flight
    # The new writer goes on writing and searching.
    c.insert("ingest", rows([10_000_000]))
    hits = c.search("ingest", data=[[5.0] + [0.5] * (DIM - 1)], limit=3)
    assert len(hits[0]) == 3
    b.stop()
    assert time.time() - started < 60


def test_a_writer_stopped_past_its_lease_is_fenced_when_it_resumes(s3, tmp_path):
    a = writer(s3, tmp_path, "a", "fence")
    a.start()
    ca = MilvusClient(uri=a.uri, timeout=60)
    ca.create_collection("f", dimension=DIM, auto_id=False)
    ca.insert("f", rows(range(100)))

    os.kill(a.proc.pid, signal.SIGSTOP)
    late = {}

    def late_insert():  # sent while a is stopped: it is answered only after SIGCONT
        try:
            late["r"] = MilvusClient(uri=a.uri, timeout=60).insert("f", rows([5000]))
        except MilvusException as e:
            late["e"] = e

    t = threading.Thread(target=late_insert)
    t.start()
    b = writer(s3, tmp_path, "b", "fence")
    try:
        b.start()  # a's lease lapses while it is stopped
        assert "claimed the writer lease epoch=2" in b.log()
        cb = MilvusClient(uri=b.uri)
        cb.insert("f", rows(range(100, 200)))
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)
    t.join(timeout=60)
    assert "e" in late and "fenced" in late["e"].message, late
    # Nothing more is acknowledged by the old writer.
    for i in range(3):
        with pytest.raises(MilvusException) as e:
            ca.insert("f", rows([6000 + i]))
        assert "fenced" in e.value.message
    with pytest.raises(MilvusException):
        ca.create_collection("g", dimension=DIM)
    assert present(cb, "f", list(range(200)) + [5000, 6000, 6001, 6002]) == set(range(200))
    # The old writer's lease thread noticed too, and says so.
    deadline = time.time() + 5
    while "is fenced" not in a.log() and time.time() < deadline:
        time.sleep(0.1)
    assert "is fenced" in a.log()
    # ... and reports itself unhealthy, so an orchestrator replaces it.
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{a.metrics_port}/healthz", timeout=5)
    assert e.value.code == 503 and b"fenced" in e.value.read()
    a.stop()
    b.stop()


def test_bad_credentials_are_refused_at_start_with_a_clear_error(s3, tmp_path):
    d = tmp_path / "badkey"
    d.mkdir()
    bad = QuiverServer(
        d / "local",
        d / "quiver.log",
        args=["--storage", "s3://test/x", "--s3-endpoint", s3.endpoint, "--s3-allow-http"],
        env={**s3.env, "AWS_SECRET_ACCESS_KEY": "wrong"},
    )
    with pytest.raises(RuntimeError):
        bad.start(timeout=60)
    log = bad.log()
    assert "opening the shared database s3://test/x" in log, log
    assert "conditional put" in log, log


def reader(s3, tmp_path, name, prefix):
    return writer(s3, tmp_path, name, prefix, extra=["--role", "reader", "--follow-ms", "100"])


def eventually(fn, timeout=10.0):
    deadline = time.time() + timeout
    while True:
        try:
            got = fn()
            if got:
                return got
        except MilvusException:
            pass
        if time.time() > deadline:
            return fn()
        time.sleep(0.1)


def test_two_readers_follow_the_writer_and_refuse_writes(s3, tmp_path):
    w = writer(s3, tmp_path, "w", "readers")
    w.start()
    cw = MilvusClient(uri=w.uri)
    cw.create_collection("r", dimension=DIM, auto_id=False)
    cw.insert("r", rows(range(300)))
    readers = [reader(s3, tmp_path, f"r{i}", "readers") for i in range(2)]
    for r in readers:
        r.start()
    clients = [MilvusClient(uri=r.uri) for r in readers]
    q = [[7.0] + [0.5] * (DIM - 1)]
    want = [h["id"] for h in cw.search("r", data=q, limit=10)[0]]
    for c in clients:
        assert eventually(lambda: present(c, "r", range(300)) == set(range(300)))
        assert [h["id"] for h in c.search("r", data=q, limit=10)[0]] == want
    # New writes, deletes and a flush reach both readers.
    cw.insert("r", rows(range(300, 400)))
    cw.delete("r", filter="id < 50")
    cw.flush("r")
    cw.insert("r", rows([400]))
    expected = set(range(50, 401))
    for c in clients:
        assert eventually(lambda: present(c, "r", range(401)) == expected)
        n = c.query("r", filter="", output_fields=["count(*)"])[0]["count(*)"]
        assert n == len(expected)
    # A reader refuses writes and DDL with an error that says where to send them.
    for c in clients:
        with pytest.raises(MilvusException) as e:
            c.insert("r", rows([9999]))
        assert "reader" in e.value.message
        with pytest.raises(MilvusException) as e:
            c.create_collection("nope", dimension=DIM)
        assert "reader" in e.value.message
    # DDL on the writer: a new collection appears on the readers.
    cw.create_collection("r2", dimension=DIM, auto_id=False)
    cw.insert("r2", rows(range(5)))
    for c in clients:
        assert eventually(lambda: c.has_collection("r2") and len(present(c, "r2", range(5))) == 5)
    # The readers keep answering when the writer is gone.
    os.kill(w.proc.pid, signal.SIGKILL)
    w.proc.wait()
    for c in clients:
        assert len(present(c, "r", range(401))) == len(expected)
    for r in readers:
        r.stop()
