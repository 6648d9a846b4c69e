"""Shared-mode benchmark (scripts/bench_object_storage.sh): release quiver, pymilvus clients,
SeaweedFS as the S3 server, everything on this machine.

1. Ingest: 4 client threads insert batches of --batch rows for --seconds into (a) an embedded
   server (WAL fsync on local disk) and (b) a shared-mode writer on S3 (one log object PUT per
   group commit). Rows/s and the per-insert acknowledgement latency (p50/p99).
2. Reader start: --rows vectors in the writer, flushed and indexed (HNSW); then a reader process
   is started and timed until /healthz and until its first search answers; once with an empty
   cache (cold) and once again on the same cache directory (warm).
3. Search QPS with 1, 2 and 4 reader processes, 2 client threads per reader, --seconds each.
"""

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
from pymilvus import DataType, MilvusClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "compat"))
os.environ.setdefault(
    "QUIVER_BIN",
    str(Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "quiver"),
)
from conftest import QuiverServer  # noqa: E402
from seaweed import SeaweedFS  # noqa: E402


def pct(xs, p):
    return float(np.percentile(np.array(xs) * 1000, p)) if xs else float("nan")


def make(client, name, dim):
    s = MilvusClient.create_schema(auto_id=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
    client.create_collection(name, schema=s)


def ingest(uri, name, dim, batch, seconds, threads=4):
    c = MilvusClient(uri=uri)
    make(c, name, dim)
    lat, count, stop = [], [0], threading.Event()
    lock = threading.Lock()

    def worker(t):
        cl = MilvusClient(uri=uri)
        rng = np.random.default_rng(t)
        n = t * 10_000_000
        while not stop.is_set():
            v = rng.standard_normal((batch, dim)).astype(np.float32)
            rows = [{"id": n + i, "vec": v[i].tolist()} for i in range(batch)]
            n += batch
            t0 = time.perf_counter()
            cl.insert(name, rows)
            dt = time.perf_counter() - t0
            with lock:
                lat.append(dt)
                count[0] += batch

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in ts:
        t.join()
    el = time.perf_counter() - t0
    return {"rows_per_s": count[0] / el, "ack_p50_ms": pct(lat, 50), "ack_p99_ms": pct(lat, 99),
            "inserts": len(lat)}


def wait_indexed(c, name, rows, timeout=900):
    deadline = time.time() + timeout
    while time.time() < deadline:
        info = c.describe_index(name, "vec")
        if info.get("indexed_rows", 0) >= rows and info.get("pending_index_rows", 1) == 0:
            return
        time.sleep(1)
    raise RuntimeError("index build did not finish")


def timed_start(srv, query, name):
    t0 = time.perf_counter()
    srv.start(timeout=600)
    ready = time.perf_counter() - t0
    c = MilvusClient(uri=srv.uri)
    while True:
        try:
            if c.has_collection(name):
                c.search(name, data=query, limit=10, search_params={"params": {"ef": 64}})
                break
        except Exception:
            pass
        time.sleep(0.02)
    first = time.perf_counter() - t0
    return ready, first


def qps(uris, name, queries, seconds, per=2):
    done, stop = [0], threading.Event()
    lock = threading.Lock()

    def worker(uri, k):
        c = MilvusClient(uri=uri)
        i = k
        while not stop.is_set():
            c.search(name, data=[queries[i % len(queries)]], limit=10,
                     search_params={"params": {"ef": 64}})
            i += per * len(uris)
            with lock:
                done[0] += 1

    ts = [threading.Thread(target=worker, args=(u, j * len(uris) + n))
          for n, u in enumerate(uris) for j in range(per)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in ts:
        t.join()
    return done[0] / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=15)
    a = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="quiver-bench-s3-"))
    (base / "s3").mkdir()
    s3 = SeaweedFS(base / "s3").start()
    out = {"rows": a.rows, "dim": a.dim, "batch": a.batch}
    servers = []

    def server(name, args=(), env=None):
        d = base / name
        d.mkdir()
        s = QuiverServer(d / "local", d / "quiver.log", args=list(args), env=env)
        servers.append(s)
        return s

    shared = ["--storage", "s3://test/bench", "--s3-endpoint", s3.endpoint, "--s3-allow-http"]
    try:
        emb = server("embedded")
        emb.start()
        out["ingest_embedded"] = ingest(emb.uri, "ing", a.dim, a.batch, a.seconds)
        emb.stop()
        w = server("writer", shared, s3.env)
        w.start()
        out["ingest_object"] = ingest(w.uri, "ing", a.dim, a.batch, a.seconds)
        print(json.dumps(out, indent=1), flush=True)

        # A 100k collection, flushed and indexed, for the readers.
        c = MilvusClient(uri=w.uri)
        make(c, "big", a.dim)
        rng = np.random.default_rng(7)
        data = rng.standard_normal((a.rows, a.dim)).astype(np.float32)
        t0 = time.perf_counter()
        for s in range(0, a.rows, 2000):
            c.insert("big", [{"id": s + i, "vec": data[s + i].tolist()} for i in range(min(2000, a.rows - s))])
        c.flush("big")
        ip = c.prepare_index_params()
        ip.add_index("vec", index_type="HNSW", metric_type="L2", params={"M": 16, "efConstruction": 100})
        c.create_index("big", ip)
        wait_indexed(c, "big", a.rows)
        out["load_and_index_s"] = time.perf_counter() - t0
        queries = (data[:500] + 0.05 * rng.standard_normal((500, a.dim))).astype(np.float32).tolist()

        rargs = shared + ["--role", "reader"]
        r0 = server("reader0", rargs, s3.env)
        ready, first = timed_start(r0, [queries[0]], "big")
        out["reader_cold"] = {"healthz_s": ready, "first_search_s": first}
        r0.stop()
        ready, first = timed_start(r0, [queries[0]], "big")
        out["reader_warm"] = {"healthz_s": ready, "first_search_s": first}
        print(json.dumps(out, indent=1), flush=True)

        readers = [r0] + [server(f"reader{i}", rargs, s3.env) for i in range(1, 4)]
        for r in readers[1:]:
            timed_start(r, [queries[0]], "big")
        out["writer_qps"] = qps([w.uri], "big", queries, a.seconds)
        out["reader_qps"] = {}
        for n in (1, 2, 4):
            out["reader_qps"][n] = qps([r.uri for r in readers[:n]], "big", queries, a.seconds)
        print(json.dumps(out, indent=1), flush=True)
    finally:
        for s in servers:
            s.stop()
        s3.stop()
    print(f"logs under {base}")


if __name__ == "__main__":
    main()
