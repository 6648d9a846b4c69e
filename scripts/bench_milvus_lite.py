#!/usr/bin/env python3
"""The same pymilvus workload against `quiver serve` and against the Milvus Lite gRPC server, in
one run, on ../shared/datasets/wn-gloss. Prints a Markdown table (both systems and the ratios).

    scripts/bench_milvus_lite.sh [--queries 1000]     # venv + release build + this script

Each server is started on free 127.0.0.1 ports with its own temporary data directory and stopped
by PID at the end. Steps 1-3 run for one system after the other (the other server, if started,
is idle); the search runs of step 4 are interleaved (Quiver 1 client, Lite 1 client, Quiver N
clients, Lite N clients; --rounds times), so that a change in the machine's load hits both.
Per system:

  1. MilvusClient.create_collection with an explicit schema (Int64 pk `id`, FloatVector(384)
     `vector`, no dynamic field) and one index at default settings: AUTOINDEX, metric IP
     (create_collection also loads the collection).
  2. Insert all base vectors in batches of --batch rows (default 1,000), then flush. Rows/s is
     measured on the wall clock from the first insert to the end of the flush (pymilvus's own
     row -> column conversion included; building the row dicts is not).
  3. One search right after the flush (timed alone), then wait until the server process is idle
     (< 5% of a core over 2 s): Milvus Lite builds its HNSW indexes and compacts in a background
     thread after a flush while DescribeIndex already says Finished. The wait is reported, and
     searches are measured only after it. Then --warmup searches.
  4. Search top-10, one query vector per call, output_fields=["id"], search_params
     {"metric_type": "IP"} (no index params, so each system's defaults): with 1 client, then
     with --clients concurrent clients (threads, one MilvusClient each with its own connection,
     queries split round robin). QPS = queries / wall time; p50 / p99 of per-call latency;
     recall@10 against the dataset's exact top-100 (gt.i32).

Both servers run on this machine next to the client; note the CPU count in the output.
"""

import argparse
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DEFAULT_DATA = os.environ.get("QUIVER_DATASET", os.path.join(ROOT, "..", "shared", "datasets", "wn-gloss"))
COLLECTION = "bench_wn_gloss"
DIM = 384


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# data


def load_dataset(path, n_queries, n_base):
    base = np.fromfile(os.path.join(path, "base.f16"), dtype="<f2").reshape(-1, DIM)
    query = np.fromfile(os.path.join(path, "query.f16"), dtype="<f2").reshape(-1, DIM)
    gt = np.fromfile(os.path.join(path, "gt.i32"), dtype="<i4").reshape(-1, 100)
    if n_base:
        # Only for quick trial runs: the ground truth is for the full base set, so recall is
        # recomputed by brute force over the truncated set.
        base = base[:n_base]
    base = base.astype(np.float32)
    query = query[:n_queries].astype(np.float32)
    if n_base:
        scores = query @ base.T
        gt = np.argsort(-scores, axis=1, kind="stable")[:, :100].astype(np.int32)
    else:
        gt = gt[:n_queries]
    return base, query, gt


def recall_at_10(ids, gt):
    hits = 0
    for row, truth in zip(ids, gt):
        hits += len(set(row[:10]) & set(truth[:10].tolist()))
    return hits / (10 * len(gt))


# ---------------------------------------------------------------------------------------------
# servers


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Server:
    """One server process in its own temp dir; stop() sends SIGTERM (SIGKILL after 30 s) by PID."""

    name = "?"

    def __init__(self, keep):
        self.tmp = tempfile.mkdtemp(prefix=f"bench-{self.name.lower().replace(' ', '-')}-")
        self.keep = keep
        self.port = free_port()
        self.proc = None
        self.log_path = os.path.join(self.tmp, "server.log")

    @property
    def uri(self):
        return f"http://127.0.0.1:{self.port}"

    def command(self):
        raise NotImplementedError

    def ready(self):
        raise NotImplementedError

    def start(self, timeout=120.0):
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=self.logf, stderr=subprocess.STDOUT, cwd=self.tmp)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} on start:\n{self.log_tail()}")
            if self.ready():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} did not become ready in {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log(f"{self.name} (pid {self.proc.pid}) ignored SIGTERM for 30 s: SIGKILL")
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        code = self.proc.returncode if self.proc is not None else None
        if getattr(self, "logf", None):
            self.logf.close()
        if self.keep:
            log(f"{self.name}: kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return code

    def log_tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""

    def data_bytes(self):
        total = 0
        for d, _, files in os.walk(os.path.join(self.tmp, "data")):
            for f in files:
                try:
                    total += os.path.getsize(os.path.join(d, f))
                except OSError:
                    pass
        return total

    def cpu_seconds(self):
        """User + system CPU time of the server process so far (all its threads)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_idle(self, timeout, window=2.0, busy=0.05):
        """Wait until the server uses < `busy` of a core over `window` s (background index builds
        and compactions done). Returns the perf_counter() time at which the idle window began, or
        None after `timeout`."""
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            c0, w0 = self.cpu_seconds(), time.perf_counter()
            time.sleep(window)
            if (self.cpu_seconds() - c0) / (time.perf_counter() - w0) < busy:
                return w0
        return None

    def rss_bytes(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return None


class Quiver(Server):
    name = "Quiver"

    def __init__(self, keep, binary):
        super().__init__(keep)
        self.binary = binary
        self.metrics_port = free_port()
        while self.metrics_port == self.port:
            self.metrics_port = free_port()

    def command(self):
        return [self.binary, "serve", "--data-dir", os.path.join(self.tmp, "data"),
                "--listen", f"127.0.0.1:{self.port}", "--metrics-listen", f"127.0.0.1:{self.metrics_port}"]

    def ready(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/healthz", timeout=1) as r:
                return r.status == 200 and r.read().strip() == b"ok"
        except OSError:
            return False

    def version(self):
        try:
            out = subprocess.run([self.binary, "--version"], capture_output=True, text=True, timeout=10)
            text = out.stdout.strip() or out.stderr.strip()
            return text[len("quiver "):] if text.startswith("quiver ") else text
        except Exception as e:  # noqa: BLE001
            return f"? ({e})"


class MilvusLite(Server):
    name = "Milvus Lite"

    def __init__(self, keep, workers):
        super().__init__(keep)
        self.workers = workers

    def command(self):
        cmd = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", os.path.join(self.tmp, "data"),
               "--host", "127.0.0.1", "--port", str(self.port)]
        if self.workers:
            cmd += ["--max-workers", str(self.workers)]
        return cmd

    def ready(self):
        return port_open(self.port)

    def version(self):
        return importlib.metadata.version("milvus-lite")


# ---------------------------------------------------------------------------------------------
# workload


def new_client(uri):
    import pymilvus
    from pymilvus import MilvusClient

    # pymilvus >= 3 shares one gRPC connection among the MilvusClients of an address unless asked
    # for a dedicated one; each benchmark client gets its own connection, as with pymilvus 2.x.
    kwargs = {"dedicated": True} if int(pymilvus.__version__.split(".")[0]) >= 3 else {}
    deadline = time.time() + 60
    while True:
        try:
            return MilvusClient(uri=uri, **kwargs)
        except Exception:  # noqa: BLE001  (the port can be open before the service is)
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def search_one(client, q, limit=10):
    res = client.search(
        COLLECTION,
        data=[q],
        limit=limit,
        output_fields=["id"],
        search_params={"metric_type": "IP"},
        anns_field="vector",
    )
    return [int(h["id"]) for h in res[0]]


def percentile_ms(lat, p):
    return float(np.percentile(np.asarray(lat) * 1000.0, p))


def run_searches(uri, queries, n_clients):
    """Returns (ids per query, latencies, wall seconds)."""
    ids = [None] * len(queries)
    lat = [None] * len(queries)
    clients = [new_client(uri) for _ in range(n_clients)]
    errors = []
    barrier = threading.Barrier(n_clients + 1)

    def worker(k):
        c = clients[k]
        barrier.wait()
        try:
            for i in range(k, len(queries), n_clients):
                t = time.perf_counter()
                ids[i] = search_one(c, queries[i])
                lat[i] = time.perf_counter() - t
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(n_clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    for c in clients:
        c.close()
    if errors:
        raise errors[0]
    return ids, lat, wall


def workload(server, base, query, gt, args):
    from pymilvus import DataType, MilvusClient

    r = {"system": server.name}
    client = new_client(server.uri)
    try:
        r["server_version"] = client.get_server_version()
    except Exception as e:  # noqa: BLE001
        r["server_version"] = f"? ({type(e).__name__})"
    if client.has_collection(COLLECTION):
        client.drop_collection(COLLECTION)

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    index_params = client.prepare_index_params()
    index_params.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="IP")
    t = time.perf_counter()
    client.create_collection(COLLECTION, schema=schema, index_params=index_params)
    r["create_s"] = time.perf_counter() - t

    n = len(base)
    batches = []
    for s in range(0, n, args.batch):
        batches.append([{"id": i, "vector": base[i]} for i in range(s, min(n, s + args.batch))])
    log(f"{server.name}: inserting {n} rows in {len(batches)} batches")
    batch_lat = []
    t0 = time.perf_counter()
    for b in batches:
        t = time.perf_counter()
        res = client.insert(COLLECTION, b)
        batch_lat.append(time.perf_counter() - t)
        if res["insert_count"] != len(b):
            raise RuntimeError(f"{server.name}: insert_count {res['insert_count']} != {len(b)}")
    t1 = time.perf_counter()
    client.flush(COLLECTION)
    t2 = time.perf_counter()
    r["insert_s"] = t1 - t0
    r["flush_s"] = t2 - t1
    r["insert_rows_per_s"] = n / (t2 - t0)
    r["insert_only_rows_per_s"] = n / (t1 - t0)
    r["insert_batch_p50_ms"] = percentile_ms(batch_lat, 50)
    r["insert_batch_p99_ms"] = percentile_ms(batch_lat, 99)
    log(f"{server.name}: insert {r['insert_s']:.1f} s + flush {r['flush_s']:.1f} s")

    count = client.query(COLLECTION, filter="", output_fields=["count(*)"])[0]["count(*)"]
    if count != n:
        raise RuntimeError(f"{server.name}: count(*) = {count} after inserting {n} rows")

    t = time.perf_counter()
    first = search_one(client, query[0])
    r["first_search_ms"] = (time.perf_counter() - t) * 1000
    if len(first) != 10:
        raise RuntimeError(f"{server.name}: first search returned {len(first)} hits")

    # Milvus Lite builds its indexes (and compacts) in a background thread after a flush, and
    # answers DescribeIndex with "Finished" all along; so wait until the server is idle before
    # measuring searches, and report how long that took.
    client.close()  # an idle channel gets GOAWAY "too_many_pings" from Lite's grpcio server
    idle_at = server.wait_idle(args.idle_timeout)
    if idle_at is None:
        log(f"{server.name}: still busy after {args.idle_timeout} s; measuring anyway")
        idle_at = time.perf_counter()
        r["background_timed_out"] = True
    r["background_s"] = idle_at - t2
    r["ready_rows_per_s"] = n / (idle_at - t0)
    log(f"{server.name}: idle {r['background_s']:.1f} s after the flush")
    client = new_client(server.uri)

    for i in range(1, args.warmup):
        search_one(client, query[i % len(query)])
    client.close()

    return r


def search_phase(server, query, gt, n_clients):
    log(f"{server.name}: {len(query)} searches with {n_clients} client(s)")
    ids, lat, wall = run_searches(server.uri, query, n_clients)
    res = {"qps": len(query) / wall, "lat": lat, "recall": recall_at_10(ids, gt)}
    log(f"{server.name}: {n_clients} client(s): {res['qps']:.1f} QPS, recall@10 {res['recall']:.4f}")
    return res


def bench(servers, base, query, gt, args):
    """Load every system (one after the other), then run the search phases interleaved
    (round 1: A 1 client, B 1 client, A N clients, B N clients; round 2: ...), so that a change
    in the machine's load hits both systems alike. Stops every server by PID."""
    results = {}
    try:
        for server in servers:
            log(f"starting {server.name}: {' '.join(server.command())}")
            server.start()
            try:
                results[server.name] = workload(server, base, query, gt, args)
            except BaseException:
                log(f"{server.name} failed; last lines of its log ({server.log_path}):\n{server.log_tail()}")
                server.keep = True
                raise
        runs = {(srv.name, c): [] for srv in servers for c in (1, args.clients)}
        for rnd in range(args.rounds):
            for n_clients in (1, args.clients):
                for server in servers:
                    runs[(server.name, n_clients)].append(search_phase(server, query, gt, n_clients))
        for server in servers:
            r = results[server.name]
            for n_clients in (1, args.clients):
                rs = runs[(server.name, n_clients)]
                lat = [x for run in rs for x in run["lat"]]
                key = f"c{n_clients}"
                r[f"{key}_qps"] = float(np.median([run["qps"] for run in rs]))
                r[f"{key}_qps_runs"] = [run["qps"] for run in rs]
                r[f"{key}_p50_ms"] = percentile_ms(lat, 50)
                r[f"{key}_p99_ms"] = percentile_ms(lat, 99)
                r[f"{key}_recall"] = min(run["recall"] for run in rs)
            r["rss_mib"] = (server.rss_bytes() or 0) / 2**20
            r["data_mib"] = server.data_bytes() / 2**20
    finally:
        for server in servers:
            if server.proc is not None:
                code = server.stop()
                if server.name in results:
                    results[server.name]["exit_code"] = code
    return results


# ---------------------------------------------------------------------------------------------
# report


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def report(results, args, n_base, n_query, versions, load_start):
    q = results.get("Quiver")
    m = results.get("Milvus Lite")
    cols = [s for s in ("Quiver", "Milvus Lite") if s in results]
    out = []
    out.append(f"wn-gloss: {n_base:,} x {DIM} (float16 -> float32), {n_query:,} queries, top-10, metric IP, "
               f"index AUTOINDEX at defaults, insert batches of {args.batch:,}")
    out.append(f"machine: {os.cpu_count()} CPUs ({cpu_model()}); client and server on the same machine; "
               f"load average {load_start[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
    out.append("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    out.append("")
    header = "| measure | " + " | ".join(cols) + (" | Quiver / Milvus Lite |" if q and m else " |")
    out.append(header)
    out.append("|---" * (len(cols) + 1 + (1 if q and m else 0)) + "|")

    def row(label, key, fmt, ratio=None):
        cells = [fmt.format(results[s][key]) for s in cols]
        line = f"| {label} | " + " | ".join(cells)
        if q and m:
            if ratio == "higher":
                line += f" | {q[key] / m[key]:.2f}x"
            elif ratio == "lower":
                line += f" | {m[key] / q[key]:.2f}x faster" if q[key] > 0 else " | "
            else:
                line += " | "
        out.append(line + " |")

    row("insert rows/s (wall clock: inserts + flush)", "insert_rows_per_s", "{:,.0f}", "higher")
    row("  inserts alone, rows/s", "insert_only_rows_per_s", "{:,.0f}", "higher")
    row("  flush, s", "flush_s", "{:.2f}", "lower")
    out.append("| insert batch latency p50 / p99, ms | " + " | ".join(
        f"{results[s]['insert_batch_p50_ms']:.1f} / {results[s]['insert_batch_p99_ms']:.1f}" for s in cols
    ) + (" | |" if q and m else " |"))
    row("first search right after the flush, ms", "first_search_ms", "{:.1f}", "lower")
    row("background work after the flush (until the server is idle), s", "background_s", "{:.1f}")
    row("rows/s until idle (inserts + flush + background index build)", "ready_rows_per_s", "{:,.0f}", "higher")
    for c in (1, args.clients):
        k = f"c{c}"
        label = "1 client" if c == 1 else f"{c} concurrent clients"
        row(f"search QPS, {label}" + (f" (median of {args.rounds} rounds)" if args.rounds > 1 else ""),
            f"{k}_qps", "{:,.1f}", "higher")
        out.append(f"| search latency p50 / p99, {label}, ms | " + " | ".join(
            f"{results[s][f'{k}_p50_ms']:.2f} / {results[s][f'{k}_p99_ms']:.2f}" for s in cols
        ) + (f" | {m[f'{k}_p50_ms'] / q[f'{k}_p50_ms']:.2f}x lower p50 |" if q and m else " |"))
        row(f"recall@10, {label}" + (" (lowest round)" if args.rounds > 1 else ""), f"{k}_recall", "{:.4f}")
    row("server RSS after the run, MiB", "rss_mib", "{:,.0f}")
    row("data directory after the run, MiB", "data_mib", "{:,.0f}")
    if q and m:
        out.append("")
        qps1 = q["c1_qps"] / m["c1_qps"]
        qpsn = q[f"c{args.clients}_qps"] / m[f"c{args.clients}_qps"]
        ins = q["insert_rows_per_s"] / m["insert_rows_per_s"]
        rec = q["c1_recall"] >= m["c1_recall"] and q[f"c{args.clients}_recall"] >= m[f"c{args.clients}_recall"]
        out.append(f"goal (issue): search QPS >= 5x Milvus Lite at equal or better recall: "
                   f"{qps1:.2f}x (1 client), {qpsn:.2f}x ({args.clients} clients), recall "
                   f"{'equal or better' if rec else 'WORSE'} -> {'met' if min(qps1, qpsn) >= 5 and rec else 'NOT met'}; "
                   f"insert rate >= 2x: {ins:.2f}x -> {'met' if ins >= 2 else 'NOT met'}")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=DEFAULT_DATA, help="dataset directory (default ../shared/datasets/wn-gloss)")
    ap.add_argument("--queries", type=int, default=5000, help="number of query vectors (default: all 5,000)")
    ap.add_argument("--base", type=int, default=0, help="use only the first N base vectors (trial runs; recall vs. brute force)")
    ap.add_argument("--batch", type=int, default=1000, help="rows per insert call (default 1,000)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients for the second search run (default 8)")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved search rounds; QPS is the median, latency percentiles pool all rounds (default 1)")
    ap.add_argument("--warmup", type=int, default=20, help="searches before timing (default 20)")
    ap.add_argument("--systems", default="quiver,lite", help="comma-separated: quiver, lite (default both)")
    ap.add_argument("--quiver-bin", default=os.environ.get("QUIVER_BIN") or os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "quiver"))
    ap.add_argument("--lite-workers", type=int, default=0, help="milvus-lite server --max-workers (default: its own, 10)")
    ap.add_argument("--idle-timeout", type=float, default=900, help="max seconds to wait for background index builds after the flush (default 900)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary data directories and logs")
    ap.add_argument("--json", help="also write the raw results to this file")
    args = ap.parse_args()

    import pymilvus

    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    versions = {"pymilvus": pymilvus.__version__}
    if "lite" in systems:
        versions["milvus-lite"] = importlib.metadata.version("milvus-lite")
    versions["numpy"] = np.__version__
    versions["python"] = sys.version.split()[0]

    base, query, gt = load_dataset(args.data, args.queries, args.base)
    log(f"dataset: {base.shape[0]} base, {len(query)} queries")

    servers = []
    load_start = os.getloadavg()
    for s in systems:
        if s == "quiver":
            if not os.access(args.quiver_bin, os.X_OK):
                sys.exit(f"no quiver binary at {args.quiver_bin}: cargo build --release -p quiver")
            server = Quiver(args.keep, args.quiver_bin)
            versions["quiver"] = server.version()
        elif s == "lite":
            server = MilvusLite(args.keep, args.lite_workers)
        else:
            sys.exit(f"unknown system {s!r} (quiver, lite)")
        servers.append(server)
    results = bench(servers, base, query, gt, args)

    text = report(results, args, base.shape[0], len(query), versions, load_start)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"versions": versions, "cpus": os.cpu_count(), "loadavg_start": load_start, "loadavg_end": os.getloadavg(), "args": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
