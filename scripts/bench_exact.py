#!/usr/bin/env python3
"""Exact search and durable ingest: Quiver's engine vs faiss-cpu IndexFlatIP, same data, same
thread count, same run. Prints a Markdown table for BENCHMARKS.md.

    scripts/bench_exact.sh            # builds, sets up the venv, runs this
"""
import json
import os
import subprocess
import sys
import time

import numpy as np

DATA = os.environ.get("QUIVER_DATASET", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets", "wn-gloss"))
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
NQ = int(os.environ.get("BENCH_QUERIES", "5000"))
ROOT = os.path.join(os.path.dirname(__file__), "..")


def load():
    base = np.fromfile(os.path.join(DATA, "base.f16"), dtype="<f2").reshape(-1, 384).astype(np.float32)
    query = np.fromfile(os.path.join(DATA, "query.f16"), dtype="<f2").reshape(-1, 384).astype(np.float32)[:NQ]
    gt = np.fromfile(os.path.join(DATA, "gt.i32"), dtype="<i4").reshape(-1, 100)[:NQ]
    return base, query, gt


def faiss_flat(base, query, gt):
    import faiss

    faiss.omp_set_num_threads(THREADS)
    index = faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    index.search(query[:10], 10)  # warm up
    t = time.perf_counter()
    _, ids = index.search(query, 10)
    batch_s = time.perf_counter() - t
    n1 = min(500, len(query))
    t = time.perf_counter()
    for i in range(n1):
        index.search(query[i : i + 1], 10)
    single_s = time.perf_counter() - t
    recall = np.mean([len(set(ids[i]) & set(gt[i, :10])) / 10 for i in range(len(query))])
    return {"batch_qps": len(query) / batch_s, "single_qps": n1 / single_s, "recall_at_10": recall}


def quiver():
    exe = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "examples", "bench_exact")
    env = dict(os.environ, RAYON_NUM_THREADS=str(THREADS))
    out = subprocess.run([exe, DATA, "--queries", str(NQ)], env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    base, query, gt = load()
    f = faiss_flat(base, query, gt)
    q = quiver()
    print(f"wn-gloss: {base.shape[0]} x {base.shape[1]}, {len(query)} queries, top-10, {THREADS} threads, SIMD level {q['simd']}\n")
    print("| measure | Quiver | faiss IndexFlatIP | Quiver / faiss |")
    print("|---|---|---|---|")
    for key, label in [("batch_qps", "QPS, all queries in one call"), ("single_qps", "QPS, one query per call"), ("recall_at_10", "recall@10")]:
        print(f"| {label} | {q[key]:.1f} | {f[key]:.1f} | {q[key] / f[key]:.2f}x |" if key != "recall_at_10" else f"| {label} | {q[key]:.4f} | {f[key]:.4f} | |")
    print(f"| durable ingest, rows/s (batches of 1,000, fsync per batch) | {q['ingest_rows_per_s']:.0f} | n/a (in memory) | |")
    print(f"| ingest batch latency p50 / p99 (ms) | {q['ingest_batch_p50_ms']:.1f} / {q['ingest_batch_p99_ms']:.1f} | | |")
    print(f"| flush (seal + write segment) of {base.shape[0]} rows, s | {q['flush_s']:.2f} | | |")


if __name__ == "__main__":
    sys.exit(main())
