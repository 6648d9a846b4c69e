#!/usr/bin/env python3
"""HNSW on wn-gloss: Quiver vs hnswlib vs faiss-cpu, same data, same run.

Builds each library's HNSW with the same M / efConstruction / build threads
on wn-gloss (107,033 x 384, inner product, unit vectors), then sweeps ef with
ONE search thread and reports recall@10 against gt.i32, QPS, build time and
memory. QPS at recall 0.95 / 0.99 is interpolated on each curve (log QPS
linear in recall between the two bracketing sweep points).

Memory: hnswlib / faiss hold their own copy of the vectors, so their figure
is the process RSS growth over the build. Quiver's index does not hold the
vectors (the engine's segment does): "index" is `memory_bytes()` and
"total" adds the f32 rows (n * dim * 4), the like-for-like figure.

Then, for each library, at the smallest swept ef that reaches recall 0.95 and
0.99 on its own curve, QPS with all --threads searching (queries spread over
the threads; wall time).

Usage: scripts/bench_ann.sh [--m 16] [--efc 200] [--threads 2] [--nq 5000]
       [--reps 2] [--libs quiver,hnswlib,faiss,quiver-sq8,quiver-f32]
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

EFS = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512]


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def load(data_dir, nq):
    base = np.fromfile(os.path.join(data_dir, "base.f16"), dtype="<f2").reshape(-1, 384).astype(np.float32)
    q = np.fromfile(os.path.join(data_dir, "query.f16"), dtype="<f2").reshape(-1, 384).astype(np.float32)
    gt = np.fromfile(os.path.join(data_dir, "gt.i32"), dtype="<i4").reshape(q.shape[0], -1)
    return base, np.ascontiguousarray(q[:nq]), gt[:nq, :10]


def recall10(labels, gt):
    hits = sum(len(set(map(int, a)) & set(map(int, b))) for a, b in zip(labels, gt))
    return hits / (gt.shape[0] * 10)


def sweep(search, q, gt, reps):
    out = []
    for ef in EFS:
        best, best_cpu, labels = math.inf, math.inf, None
        for _ in range(reps):
            t, c = time.perf_counter(), time.thread_time()
            labels = search(ef)
            best = min(best, time.perf_counter() - t)
            best_cpu = min(best_cpu, time.thread_time() - c)
        out.append({"ef": ef, "recall": recall10(labels, gt), "qps": q.shape[0] / best,
                    "qps_cpu": q.shape[0] / best_cpu})
    return out


def first_ef(curve, target):
    return next((c["ef"] for c in curve if c["recall"] >= target), None)


def mt_points(curve, search_mt, q, gt, reps):
    """All-threads QPS at the first ef reaching 0.95 and 0.99 (wall time, best of reps)."""
    out = {}
    for target in (0.95, 0.99):
        ef = first_ef(curve, target)
        if ef is None:
            continue
        best, labels = math.inf, None
        for _ in range(reps):
            t = time.perf_counter()
            labels = search_mt(ef)
            best = min(best, time.perf_counter() - t)
        out[str(target)] = {"ef": ef, "recall": recall10(labels, gt), "qps": q.shape[0] / best}
    return out


def bench_hnswlib(base, q, gt, a):
    import hnswlib

    r0 = rss_bytes()
    idx = hnswlib.Index(space="ip", dim=base.shape[1])
    idx.init_index(max_elements=base.shape[0], ef_construction=a.efc, M=a.m, random_seed=100)
    idx.set_num_threads(a.threads)
    t, c = time.perf_counter(), time.process_time()
    idx.add_items(base, np.arange(base.shape[0]))
    build, build_cpu = time.perf_counter() - t, time.process_time() - c
    mem = rss_bytes() - r0
    idx.set_num_threads(1)

    def search(ef):
        idx.set_ef(ef)
        return idx.knn_query(q, k=10, num_threads=1)[0]

    curve = sweep(search, q, gt, a.reps)

    def search_mt(ef):
        idx.set_ef(ef)
        return idx.knn_query(q, k=10, num_threads=a.threads)[0]

    res = {"lib": "hnswlib", "build_s": build, "build_cpu_s": build_cpu, "mem_total": mem, "mem_index": mem, "curve": curve,
           "mt": mt_points(curve, search_mt, q, gt, a.reps)}
    del idx
    return res


def bench_faiss(base, q, gt, a):
    import faiss

    faiss.omp_set_num_threads(a.threads)
    r0 = rss_bytes()
    idx = faiss.IndexHNSWFlat(base.shape[1], a.m, faiss.METRIC_INNER_PRODUCT)
    idx.hnsw.efConstruction = a.efc
    t, c = time.perf_counter(), time.process_time()
    idx.add(base)
    build, build_cpu = time.perf_counter() - t, time.process_time() - c
    mem = rss_bytes() - r0
    faiss.omp_set_num_threads(1)

    def search(ef):
        idx.hnsw.efSearch = ef
        return idx.search(q, 10)[1]

    curve = sweep(search, q, gt, a.reps)

    def search_mt(ef):
        faiss.omp_set_num_threads(a.threads)
        idx.hnsw.efSearch = ef
        labels = idx.search(q, 10)[1]
        faiss.omp_set_num_threads(1)
        return labels

    res = {"lib": "faiss", "build_s": build, "build_cpu_s": build_cpu, "mem_total": mem, "mem_index": mem, "curve": curve,
           "mt": mt_points(curve, search_mt, q, gt, a.reps)}
    del idx
    return res


def bench_quiver(a, traversal):
    cmd = [a.bin, "--data", a.data, "--m", str(a.m), "--efc", str(a.efc), "--threads", str(a.threads),
           "--nq", str(a.nq), "--reps", str(a.reps), "--efs", ",".join(map(str, EFS)), "--traversal", traversal,
           "--index", f"/tmp/quiver-bench-ann-{traversal}-{os.getpid()}.idx"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    b = next(r for r in rows if r["kind"] == "build")
    curve = [{k: r[k] for k in ("ef", "recall", "qps", "qps_cpu")} for r in rows if r["kind"] == "search"]
    # Second run on the saved index (no rebuild): all-threads QPS at the ef reaching 0.95 / 0.99.
    mt = {}
    efs = {t: first_ef(curve, t) for t in (0.95, 0.99)}
    wanted = sorted({e for e in efs.values() if e})
    if wanted:
        cmd2 = list(cmd)
        cmd2[cmd2.index("--efs") + 1] = ""  # no sweep this time
        out = subprocess.run(cmd2 + ["--mt-efs", ",".join(map(str, wanted))], check=True,
                             capture_output=True, text=True).stdout
        got = {r["ef"]: r for r in (json.loads(l) for l in out.splitlines() if l.startswith("{")) if r["kind"] == "search_mt"}
        mt = {str(t): {"ef": e, "recall": got[e]["recall"], "qps": got[e]["qps"]} for t, e in efs.items() if e in got}
    try:
        os.remove(cmd[-1])
    except OSError:
        pass
    return {"lib": f"quiver-{traversal}", "build_s": b["build_s"], "build_cpu_s": b["build_cpu_s"], "mem_index": b["index_bytes"],
            "mem_total": b["index_bytes"] + b["vector_bytes"], "curve": curve, "mt": mt}


def qps_at(curve, target, key):
    """QPS at `target` recall: the best of the sweep points that reach it and
    of the log-linear interpolations between consecutive points (in ef order)
    that bracket it; None if no point reaches it."""
    pts = [(c["recall"], c[key]) for c in curve]
    best = max((q for r, q in pts if r >= target), default=None)
    for (r0, q0), (r1, q1) in zip(pts, pts[1:]):
        lo, hi = sorted(((r0, q0), (r1, q1)))
        if lo[0] < target <= hi[0]:
            f = (target - lo[0]) / (hi[0] - lo[0])
            q = math.exp(math.log(lo[1]) + f * (math.log(hi[1]) - math.log(lo[1])))
            best = q if best is None else max(best, q)
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="/work/shared/datasets/wn-gloss")
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--efc", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--nq", type=int, default=5000)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--libs", default="quiver,hnswlib,faiss")
    p.add_argument("--bin", default="target/release/examples/bench_ann")
    p.add_argument("--json", help="also write all results here")
    a = p.parse_args()

    base, q, gt = load(a.data, a.nq)
    results = []
    for lib in a.libs.split(","):
        print(f"running {lib} ...", file=sys.stderr, flush=True)
        if lib == "quiver" or lib.startswith("quiver-"):
            results.append(bench_quiver(a, lib.split("-")[1] if "-" in lib else "sq4"))
        elif lib == "hnswlib":
            results.append(bench_hnswlib(base, q, gt, a))
        elif lib == "faiss":
            results.append(bench_faiss(base, q, gt, a))
        else:
            sys.exit(f"unknown lib {lib}")

    print(f"\nwn-gloss {base.shape[0]} x {base.shape[1]} IP, M={a.m} efConstruction={a.efc}, "
          f"build threads={a.threads}, search 1 thread, {q.shape[0]} queries, recall@10")
    print("\nef sweep (recall / QPS from CPU time):")
    print("  ef   " + "".join(f"{r['lib']:>24}" for r in results))
    for i, ef in enumerate(EFS):
        cells = []
        for r in results:
            c = r["curve"][i]
            cells.append(f"{c['recall']:.4f} / {c['qps_cpu']:8.0f}")
        print(f"  {ef:<5}" + "".join(f"{c:>24}" for c in cells))

    peers = [r for r in results if not r["lib"].startswith("quiver")]
    hl = next((r for r in peers if r["lib"] == "hnswlib"), None)
    fmt = lambda v: f"{v:10.0f}" if v else f"{'n/a':>10}"
    rat = lambda v, b: f"{v / b:10.2f}" if v and b else f"{'n/a':>10}"
    for key, what in (("qps_cpu", "QPS from search-thread CPU time (robust to a shared machine)"),
                      ("qps", "QPS from wall time")):
        print(f"\n{what}; ratios vs the better of hnswlib and faiss:")
        print(f"{'lib':<14}{'QPS@0.95':>10}{'QPS@0.99':>10}{'x@0.95':>10}{'x@0.99':>10}")
        best = {t: max((qps_at(r["curve"], t, key) or 0) for r in peers) if peers else None for t in (0.95, 0.99)}
        for r in results:
            q95, q99 = qps_at(r["curve"], 0.95, key), qps_at(r["curve"], 0.99, key)
            print(f"{r['lib']:<14}{fmt(q95)}{fmt(q99)}{rat(q95, best[0.95])}{rat(q99, best[0.99])}")
    print(f"\nQPS with {a.threads} search threads (wall time) at the first ef reaching the recall; ratios vs the better peer:")
    print(f"{'lib':<14}{'ef@0.95':>8}{'QPS@0.95':>10}{'ef@0.99':>8}{'QPS@0.99':>10}{'x@0.95':>8}{'x@0.99':>8}")
    best_mt = {t: max((r.get("mt", {}).get(t, {}).get("qps", 0) for r in peers), default=0) for t in ("0.95", "0.99")}
    for r in results:
        mt = r.get("mt", {})
        cells = ""
        for t in ("0.95", "0.99"):
            p = mt.get(t)
            cells += f"{p['ef']:>8}{p['qps']:10.0f}" if p else f"{'n/a':>8}{'n/a':>10}"
        ratios = "".join(
            f"{mt[t]['qps'] / best_mt[t]:8.2f}" if t in mt and best_mt[t] else f"{'n/a':>8}" for t in ("0.95", "0.99"))
        print(f"{r['lib']:<14}{cells}{ratios}")
    print(f"\nbuild ({a.threads} threads) and memory; ratios vs hnswlib:")
    print(f"{'lib':<14}{'build s':>9}{'cpu s':>9}{'x wall':>8}{'x cpu':>8}{'idx MiB':>9}{'tot MiB':>9}{'x tot':>7}")
    for r in results:
        line = (f"{r['lib']:<14}{r['build_s']:9.1f}{r['build_cpu_s']:9.1f}")
        if hl:
            line += f"{r['build_s'] / hl['build_s']:8.2f}{r['build_cpu_s'] / hl['build_cpu_s']:8.2f}"
        else:
            line += f"{'':>16}"
        line += f"{r['mem_index'] / 2**20:9.1f}{r['mem_total'] / 2**20:9.1f}"
        if hl:
            line += f"{r['mem_total'] / max(hl['mem_total'], 1):7.2f}"
        print(line)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"args": vars(a), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
