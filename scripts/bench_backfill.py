#!/usr/bin/env python3
"""Re-embedding backfill rate: a release `quiver serve` on a fresh data directory, a collection of
--rows wn-gloss rows (text + their stored all-MiniLM-L6-v2 vector) inserted through pymilvus, then
POST /v1/collections/{c}/migrations to all-MiniLM-L6-v2 registered from --model into a new field.
Reports rows/s from the start call to READY, the encoder's own rate on the same texts in the same
run (quiver-embed's bench_embed, same thread count), and a parity check of the backfilled vectors
against the dataset's vectors. Prints Markdown for BENCHMARKS.md.

    scripts/bench_backfill.sh [--rows 100000] [--batch-size 256]
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DATA = os.path.join(ROOT, "..", "shared", "datasets", "wn-gloss")
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port, method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--model", default=os.environ.get("QUIVER_MINILM_DIR"))
    a = ap.parse_args()
    from pymilvus import DataType, MilvusClient

    texts = open(os.path.join(DATA, "texts_base.txt")).read().splitlines()[: a.rows]
    vecs = np.fromfile(os.path.join(DATA, "base.f16"), dtype="<f2", count=384 * len(texts)).reshape(-1, 384).astype(np.float32)
    port, mport = free_port(), free_port()
    data = tempfile.mkdtemp(prefix="quiver-backfill-")
    log = open(os.path.join(data, "server.log"), "wb")
    proc = subprocess.Popen([os.path.join(TARGET, "release", "quiver"), "serve", "--data-dir", os.path.join(data, "d"),
                             "--listen", f"127.0.0.1:{port}", "--metrics-listen", f"127.0.0.1:{mport}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{mport}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        c = MilvusClient(uri=f"http://127.0.0.1:{port}")
        schema = MilvusClient.create_schema()
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("text", DataType.VARCHAR, max_length=2000)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=384)
        c.create_collection("gloss", schema=schema)
        for i in range(0, len(texts), 2000):
            c.insert("gloss", [{"id": j, "text": texts[j], "vec": vecs[j].tolist()} for j in range(i, min(len(texts), i + 2000))])
        c.flush("gloss")
        http(port, "POST", "/v1/models", {"name": "minilm"})
        http(port, "POST", "/v1/models/minilm/versions", {"source_path": a.model, "space": {"dim": 384, "metric": "COSINE", "normalize": True}})
        t0 = time.perf_counter()
        m = http(port, "POST", "/v1/collections/gloss/migrations",
                 {"to_model": "minilm@1", "target_field": "vec_new", "source_text_field": "text", "batch_size": a.batch_size})
        last = 0
        while True:
            st = http(port, "GET", f"/v1/collections/gloss/migrations/{m['id']}")
            if st["state"] in ("READY", "FAILED", "ABORTED"):
                break
            if time.perf_counter() - last > 30:
                print(f"  {st['state']} {st['done']}/{st['total']} {st['rows_per_s']} rows/s eta {st['eta_s']} s", file=sys.stderr, flush=True)
                last = time.perf_counter()
            time.sleep(0.5)
        secs = time.perf_counter() - t0
        assert st["state"] == "READY", st
        sample = list(range(0, len(texts), max(1, len(texts) // 500)))
        got = c.get("gloss", ids=sample, output_fields=["vec_new"])
        new = np.array([r["vec_new"] for r in sorted(got, key=lambda r: r["id"])], dtype=np.float32)
        ref = vecs[sample]
        cos = np.sum(new * ref, axis=1) / np.linalg.norm(ref, axis=1)
        c.close()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    # The encoder alone on the first texts, same threads (the upper bound of a backfill).
    n = min(4096, len(texts))
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(texts[:n]) + "\n")
    enc = json.loads(subprocess.run([os.path.join(TARGET, "release", "examples", "bench_embed"), a.model, f.name, "--texts", str(n),
                                     "--batch", str(a.batch_size), "--rounds", "1"], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    os.unlink(f.name)
    print(f"wn-gloss, {len(texts)} rows (texts_base.txt), batch {a.batch_size}, {os.cpu_count()} CPUs, release build\n")
    print("| measure | value |")
    print("|---|---|")
    print(f"| backfill, start to READY | {secs:.1f} s |")
    print(f"| backfill rate | {len(texts) / secs:.0f} rows/s |")
    print(f"| encoder alone (bench_embed, first {n} texts) | {enc['texts_per_s']:.0f} texts/s |")
    print(f"| backfill / encoder | {len(texts) / secs / enc['texts_per_s']:.2f} |")
    print(f"| cosine to the dataset's vectors ({len(sample)} rows) | min {cos.min():.6f} |")


if __name__ == "__main__":
    main()
