"""Index autotuning through `/v1` and the CLI: a pymilvus collection with an HNSW index, the
search parameter swept against exact search, build-level sweeps over index types as a job with
progress, apply (built beside the serving index, verified against exact search, switched only
when the target holds), the Pareto frontier and recommendations, and the refusals."""

import json
import random
import subprocess
import time
import uuid

from pymilvus import DataType, MilvusClient

from conftest import quiver_bin
from test_evaluation import post
from test_registry import call, ok


def test_autotune_search_level(own_server):
    s = own_server
    c = MilvusClient(uri=s.uri)
    coll = "tune_" + uuid.uuid4().hex[:8]
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=16)
    schema.add_field("other", DataType.FLOAT_VECTOR, dim=4)
    idx = c.prepare_index_params()
    idx.add_index("vec", index_type="HNSW", metric_type="L2", params={"M": 8, "efConstruction": 40})
    c.create_collection(coll, schema=schema, index_params=idx)
    rng = random.Random(3)
    centres = [[rng.uniform(-1, 1) for _ in range(16)] for _ in range(30)]
    rows = [
        {"id": i, "vec": [x + rng.gauss(0, 0.2) for x in centres[i % 30]], "other": [rng.random() for _ in range(4)]}
        for i in range(3000)
    ]
    for start in range(0, 3000, 1000):
        c.insert(coll, rows[start : start + 1000])
    c.flush(coll)

    path = f"/v1/collections/{coll}/fields/vec/autotune"
    deadline = time.time() + 120
    while True:
        status, job = post(s, path, {"target_recall": 0.95, "k": 10, "sample": 100, "budget_s": 60})
        if status != 409 or time.time() > deadline:  # 409 while the index is still building
            break
        time.sleep(0.2)
    assert status == 200, job
    # A search-level job answers when it is done.
    assert job["state"] == "done" and job["kind"] == "tune" and job["report"]["build"] is None, job
    assert ok(s, "GET", f"{path}/{job['id']}")["state"] == "done"
    rep = job["report"]["search"]
    assert rep["index_type"] == "HNSW" and rep["queries"] == 100
    points = rep["points"]
    assert len(points) >= 3 and all("ef" in p["params"] for p in points)
    assert points[-1]["recall"] >= points[0]["recall"]
    best = points[rep["recommendation"]]
    assert best["pareto"]
    if rep["target_reached"]:
        assert best["recall"] >= 0.95
        assert all(p["qps"] <= best["qps"] for p in points if p["recall"] >= 0.95)

    assert job["report"]["query_source"] == "data"  # nothing searched yet
    # Tuning on live traffic: the vectors pymilvus searched with (not rows of the collection).
    status, out = post(s, path, {"queries": "traffic"})
    assert status == 409 and "logged queries" in out["message"], out
    for i in range(60):
        q = [x + rng.gauss(0, 0.3) for x in centres[i % 30]]
        c.search(coll, data=[q], anns_field="vec", limit=10)
    job = ok(s, "POST", path, {"queries": "traffic", "sample": 40, "budget_s": 30})
    assert job["report"]["query_source"] == "traffic" and job["report"]["search"]["queries"] == 40, job
    auto = ok(s, "POST", path, {"sample": 100, "budget_s": 30})
    assert auto["report"]["query_source"] == "traffic" and auto["report"]["search"]["queries"] == 60
    status, out = post(s, path, {"queries": "yesterday"})
    assert status == 400, out

    # The CLI prints the same sweep as a table.
    out = subprocess.run(
        [str(quiver_bin()), "autotune", coll, "vec", "--server", f"http://127.0.0.1:{s.port}",
         "--sample", "50", "--budget-s", "30"],
        check=True, capture_output=True, text=True,
    ).stdout
    assert "HNSW on vec" in out and "ef=" in out and "*" in out, out
    js = json.loads(subprocess.run(
        [str(quiver_bin()), "autotune", coll, "vec", "--server", f"http://127.0.0.1:{s.port}", "--sample", "20", "--json"],
        check=True, capture_output=True, text=True,
    ).stdout)
    assert js["tune"]["report"]["search"]["queries"] == 20

    # Refusals.
    status, out = post(s, f"/v1/collections/{coll}/fields/other/autotune", {})
    assert status == 409 and "no index" in out["message"], out
    status, out = post(s, path, {"levels": ["search", "shape"]})
    assert status == 400 and "shape" in out["message"], out
    status, out = post(s, path, {"objective": "memory"})
    assert status == 400 and "build" in out["message"], out
    status, out = post(s, path, {"levels": ["build"], "index_types": ["DISKANN"]})
    assert status == 400 and "DISKANN" in out["message"], out
    assert call(s, "GET", f"{path}/tune-999")[0] == 404
    status, out = post(s, path, {"target_recall": 2})
    assert status == 400 and "target_recall" in out["message"], out
    status, out = post(s, "/v1/collections/nope/fields/vec/autotune", {})
    assert status == 404, out


def test_autotune_build_level_and_apply(own_server):
    s = own_server
    c = MilvusClient(uri=s.uri)
    coll = "tuneb_" + uuid.uuid4().hex[:8]
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=16)
    idx = c.prepare_index_params()
    idx.add_index("vec", index_type="IVF_FLAT", metric_type="L2", params={"nlist": 16})
    c.create_collection(coll, schema=schema, index_params=idx)
    rng = random.Random(5)
    centres = [[rng.uniform(-1, 1) for _ in range(16)] for _ in range(30)]
    rows = [{"id": i, "vec": [x + rng.gauss(0, 0.2) for x in centres[i % 30]]} for i in range(4000)]
    for start in range(0, 4000, 1000):
        c.insert(coll, rows[start : start + 1000])
    c.flush(coll)
    path = f"/v1/collections/{coll}/fields/vec/autotune"

    # The build level is a job: it answers at once, running, and reports progress.
    status, job = post(s, path, {"levels": ["search", "build"], "target_recall": 0.95, "sample": 100,
                                 "sample_rows": 3000, "budget_s": 120})
    assert status == 200 and job["state"] == "running" and job["kind"] == "tune", job
    deadline = time.time() + 300
    while job["state"] == "running":
        assert time.time() < deadline, job
        time.sleep(0.05)
        job = ok(s, "GET", f"{path}/{job['id']}")
    assert job["state"] == "done", job
    # Progress ends with every candidate counted.
    prog = job["progress"]
    assert prog["done"] == prog["total"] == job["report"]["build"]["candidates"] > 0, prog
    b = job["report"]["build"]
    assert b["metric"] == "L2" and b["sample_rows"] == 3000 and b["live_rows"] == 4000
    types = {p["index_type"] for p in b["points"]}
    assert types == {"HNSW", "IVF_FLAT", "IVF_SQ8", "IVF_PQ"}, types
    best = b["points"][b["recommendation"]]
    assert b["target_reached"] and best["recall"] >= 0.95 and best["pareto"]
    assert all(p["qps"] <= best["qps"] for p in b["points"] if p["recall"] >= 0.95)
    for p in b["points"]:
        assert p["index_bytes"] > 0 and p["est_index_bytes"] >= p["index_bytes"] and p["build_s"] > 0

    before = c.describe_index(coll, "vec")
    # Apply the recommendation: built beside IVF_FLAT, verified on the collection, switched.
    status, ap = post(s, f"{path}/apply", {"job": job["id"], "k": 10, "sample": 100, "wait": True})
    assert status == 200 and ap["kind"] == "apply" and ap["state"] == "applied", ap
    r = ap["report"]
    assert r["switched"] and r["recall"] >= 0.95 and r["params"]["index_type"] == best["index_type"]
    assert r["query_source"] == "data"  # nothing was searched: rows are the queries
    # Verified on the whole collection: with the sample's setting, or a wider one if that fell
    # short (each try is listed).
    assert r["tried"][0]["search_params"] == best["search_params"] and r["tried"][-1]["recall"] == r["recall"]
    best = dict(best, search_params=r["search_params"])
    after = c.describe_index(coll, "vec")
    assert after["index_type"] == best["index_type"] and after["metric_type"] == "L2", after
    hits = c.search(coll, data=[rows[7]["vec"]], limit=3, search_params={"params": best["search_params"]})[0]
    assert hits[0]["id"] == 7

    # A version that cannot reach the target is built, measured and dropped: nothing changes.
    status, rj = post(s, f"{path}/apply", {"params": {"index_type": "IVF_PQ", "nlist": 64, "m": 2, "nbits": 4},
                                          "search_params": {"nprobe": 1}, "target_recall": 0.99, "wait": True})
    assert status == 200 and rj["state"] == "rejected", rj
    assert rj["report"]["recall"] < 0.99 and rj["report"]["switched"] is False
    # Every nprobe up to nlist was tried before giving up.
    assert [t["search_params"]["nprobe"] for t in rj["report"]["tried"]] == [1, 2, 4, 8, 16, 32, 64]
    assert c.describe_index(coll, "vec")["index_type"] == after["index_type"]
    # The metric stays the field's.
    status, out = post(s, f"{path}/apply", {"params": {"index_type": "HNSW", "metric_type": "IP"}})
    assert status == 400 and "metric" in out["message"], out
    status, out = post(s, f"{path}/apply", {"params": {"index_type": "HNSW", "M": 1}})
    assert status == 400, out
    status, out = post(s, f"{path}/apply", {"job": "tune-999"})
    assert status == 404, out

    # The CLI: the build frontier as a table, then apply, in one command.
    out = subprocess.run(
        [str(quiver_bin()), "autotune", coll, "vec", "--server", f"http://127.0.0.1:{s.port}", "--build",
         "--sample", "50", "--sample-rows", "2000", "--budget-s", "60", "--objective", "memory", "--apply",
         "--target-recall", "0.9"],
        check=True, capture_output=True, text=True,
    )
    assert "build level on vec" in out.stdout and "IVF_SQ8" in out.stdout and "*" in out.stdout, out.stdout
    assert "applied:" in out.stdout or "rejected:" in out.stdout, out.stdout
