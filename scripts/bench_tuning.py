#!/usr/bin/env python3
"""Experiments and autotuning on real data, through a release `quiver serve` and pymilvus.

wn-gloss's 107,033 x 384 vectors (IP) go into one collection with an HNSW index (M 16,
efConstruction 200), served through the serving alias `gloss` with ef 32. Then:

1. Overhead of an online experiment on the champion's searches: --searches sequential pymilvus
   searches of the dataset's queries on the alias, with no experiment, with a shadow experiment
   (challenger: the same field with ef 128, traffic 1.0, cpu_budget 0.5 core) and with an A/B
   split (traffic 0.5). Client-side p50 / p99 / QPS, and the shadow counters.
2. Build-level autotuning (levels search + build, 20,000-row sample, queries from the logged live
   traffic) and apply of the recommendation; then recall@10 of the applied index with the
   recommended search parameters against the dataset's exact ground truth (gt.i32), an
   independent check of what autotune measured.

Prints Markdown for BENCHMARKS.md.

    scripts/bench_tuning.sh [--searches 2000] [--budget-s 300]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

from bench_backfill import DATA, TARGET, free_port, http


def run_searches(c, name, queries, n):
    lat = []
    t0 = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        c.search(name, data=[queries[i % len(queries)].tolist()], limit=10, client_request_id=f"b{time.time_ns()}-{i}")
        lat.append((time.perf_counter() - t) * 1e3)
    secs = time.perf_counter() - t0
    lat.sort()
    return {"p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99)], "qps": n / secs}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--searches", type=int, default=2000)
    ap.add_argument("--budget-s", type=float, default=300)
    a = ap.parse_args()
    from pymilvus import DataType, MilvusClient

    base = np.fromfile(os.path.join(DATA, "base.f16"), dtype="<f2").reshape(-1, 384).astype(np.float32)
    queries = np.fromfile(os.path.join(DATA, "query.f16"), dtype="<f2").reshape(-1, 384).astype(np.float32)
    gt = np.fromfile(os.path.join(DATA, "gt.i32"), dtype="<i4").reshape(len(queries), -1)
    port, mport = free_port(), free_port()
    data = tempfile.mkdtemp(prefix="quiver-bench-tuning-")
    log = open(os.path.join(data, "server.log"), "wb")
    proc = subprocess.Popen([os.path.join(TARGET, "release", "quiver"), "serve", "--data-dir", os.path.join(data, "d"),
                             "--listen", f"127.0.0.1:{port}", "--metrics-listen", f"127.0.0.1:{mport}"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{mport}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        c = MilvusClient(uri=f"http://127.0.0.1:{port}")
        schema = MilvusClient.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=384)
        idx = c.prepare_index_params()
        idx.add_index("vec", index_type="HNSW", metric_type="IP", params={"M": 16, "efConstruction": 200})
        c.create_collection("gloss_data", schema=schema, index_params=idx)
        t = time.time()
        for i in range(0, len(base), 5000):
            c.insert("gloss_data", [{"id": j, "vec": base[j].tolist()} for j in range(i, min(len(base), i + 5000))])
        c.flush("gloss_data")
        while c.describe_index("gloss_data", "vec").get("pending_index_rows", 0) > 0:
            time.sleep(0.5)
        load_s = time.time() - t
        http(port, "POST", "/v1/serving-aliases", {"name": "gloss", "bundle": {
            "collection": "gloss_data", "field": "vec", "search_params": {"ef": 32}}})
        run_searches(c, "gloss", queries, 200)  # warm up

        print(f"## Experiments and autotuning (wn-gloss {len(base):,} x 384, IP; loaded and indexed in {load_s:.0f} s)\n")
        print(f"Client: pymilvus, one search at a time, {a.searches} searches of the dataset's queries on the alias.\n")
        print("| setting | p50 ms | p99 ms | QPS | shadow run / dropped (budget, queue) |")
        print("|---|---|---|---|---|")
        rows = []
        base_r = run_searches(c, "gloss", queries, a.searches)
        rows.append(("no experiment", base_r, ""))
        chall = {"collection": "gloss_data", "field": "vec", "search_params": {"ef": 128}}
        for mode, traffic in [("shadow", 1.0), ("ab", 0.5)]:
            x = http(port, "POST", "/v1/serving-aliases/gloss/experiments",
                     {"mode": mode, "challenger": chall, "traffic": traffic, "cpu_budget": 0.5})
            r = run_searches(c, "gloss", queries, a.searches)
            time.sleep(1.0)
            m = http(port, "GET", f"/v1/serving-aliases/gloss/experiments/{x['id']}")["metrics"]
            sh = m["shadow"]
            note = f"{sh['run']} / {sh['dropped_budget']}, {sh['dropped_queue']}" if mode == "shadow" else \
                f"challenger answered {m['arms']['challenger']['requests']}"
            if mode == "shadow":
                note += f"; overlap@10 {m['overlap']:.3f}, RBO {m['rbo']:.3f}"
            rows.append((f"{mode}, traffic {traffic}", r, note))
            http(port, "POST", f"/v1/serving-aliases/gloss/experiments/{x['id']}/stop", {})
        for name, r, note in rows:
            print(f"| {name} | {r['p50']:.2f} | {r['p99']:.2f} | {r['qps']:.0f} ({r['qps'] / base_r['qps']:.2f}x) | {note} |")

        t = time.time()
        job = http(port, "POST", "/v1/collections/gloss_data/fields/vec/autotune",
                   {"levels": ["search", "build"], "target_recall": 0.95, "k": 10, "sample": 200,
                    "sample_rows": 20000, "budget_s": a.budget_s, "queries": "traffic", "wait": True})
        tune_s = time.time() - t
        assert job["state"] == "done", job
        rep = job["report"]
        b = rep["build"]
        print(f"\nBuild-level autotune: {b['candidates_built']} of {b['candidates']} candidates built on a "
              f"{b['sample_rows']:,}-row sample, {b['queries']} queries from live traffic ({rep['query_source']}), "
              f"{tune_s:.0f} s in all (budget {a.budget_s:.0f} s). Frontier (Pareto points, recall@10 >= 0.90):\n")
        print("| index | build params | search | recall@10 | QPS (sample) | est. index MB | est. build s |")
        print("|---|---|---|---|---|---|---|")
        for i, p in enumerate(b["points"]):
            if p["pareto"] and p["recall"] >= 0.9:
                bp = ", ".join(f"{k}={v}" for k, v in p["build_params"].items() if k not in ("index_type", "metric_type"))
                sp = ", ".join(f"{k}={v}" for k, v in p["search_params"].items())
                star = " (recommended)" if i == b["recommendation"] else ""
                print(f"| {p['index_type']}{star} | {bp} | {sp} | {p['recall']:.4f} | {p['qps']:.0f} | "
                      f"{p['est_index_bytes'] / 1e6:.1f} | {p['est_build_s']:.1f} |")
        best = b["points"][b["recommendation"]]
        t = time.time()
        ap_job = http(port, "POST", "/v1/collections/gloss_data/fields/vec/autotune/apply",
                      {"job": job["id"], "k": 10, "sample": 200, "wait": True})
        apply_s = time.time() - t
        r = ap_job["report"]
        print(f"\nApply: {ap_job['state']} in {apply_s:.0f} s ({r['params']['index_type']} built beside the "
              f"serving HNSW on all {len(base):,} rows, verified recall@10 {r['recall']:.4f} on the collection "
              f"against exact search).")
        # Independent check: the applied index with the recommended search params, against the
        # dataset's exact top-10 of its 5,000 queries.
        hits = 0
        nq = 1000
        for i in range(nq):
            res = c.search("gloss_data", data=[queries[i].tolist()], limit=10,
                           search_params={"params": best["search_params"]})[0]
            hits += len({h["id"] for h in res} & set(gt[i, :10].tolist()))
        print(f"Recall@10 of the applied index on {nq} dataset queries against gt.i32: {hits / (nq * 10):.4f} "
              f"(autotune's sample estimate: {best['recall']:.4f}).")
    finally:
        proc.terminate()
        proc.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main())
