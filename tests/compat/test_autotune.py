"""Index autotuning through `/v1` and the CLI: a pymilvus collection with an HNSW index, the
search parameter swept against exact search, the Pareto frontier and a recommendation; the
refusals (no index, build level, unknown collection)."""

import json
import random
import subprocess
import time
import uuid

from pymilvus import DataType, MilvusClient

from conftest import quiver_bin
from test_evaluation import post


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
        status, rep = post(s, path, {"target_recall": 0.95, "k": 10, "sample": 100, "budget_s": 60})
        if status != 409 or time.time() > deadline:  # 409 while the index is still building
            break
        time.sleep(0.2)
    assert status == 200, rep
    assert rep["index_type"] == "HNSW" and rep["queries"] == 100
    points = rep["points"]
    assert len(points) >= 3 and all("ef" in p["params"] for p in points)
    assert points[-1]["recall"] >= points[0]["recall"]
    best = points[rep["recommendation"]]
    assert best["pareto"]
    if rep["target_reached"]:
        assert best["recall"] >= 0.95
        assert all(p["qps"] <= best["qps"] for p in points if p["recall"] >= 0.95)

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
    assert js["queries"] == 20

    # Refusals.
    status, out = post(s, f"/v1/collections/{coll}/fields/other/autotune", {})
    assert status == 409 and "no index" in out["message"], out
    status, out = post(s, path, {"levels": ["search", "build"]})
    assert status == 400 and "build" in out["message"], out
    status, out = post(s, path, {"target_recall": 2})
    assert status == 400 and "target_recall" in out["message"], out
    status, out = post(s, "/v1/collections/nope/fields/vec/autotune", {})
    assert status == 404, out
