"""Re-embedding migrations against a real server with the real model: a collection whose text is
embedded by model version 1 moves to version 2 (same weights, other prefixes, so other vectors)
with POST /v1/collections/{c}/migrations: the target field is added and bound, inserts and upserts
written during the backfill land in both fields, deletes apply to both, pause / resume / abort,
kill -9 in the middle resumes from the checkpoint, serving aliases wait for READY, and the CLI."""

import os
import signal
import subprocess
import time
import uuid

import numpy as np
import pytest
from pymilvus import DataType, Function, FunctionType, MilvusClient

from test_registry import call, ok

SPACE = {"dim": 384, "metric": "COSINE", "normalize": True, "pooling": "mean"}
V2_SPACE = dict(SPACE, document_prefix="passage: ", query_prefix="query: ")
WORDS = "river bank money loan music violin storm rain goal match cell sugar light city road stone".split()


def texts(n, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=6)) + f" number {i}" for i in range(n)]


def setup_collection(s, d, rows):
    model = "mig_" + uuid.uuid4().hex[:8]
    ok(s, "POST", "/v1/models", {"name": model})
    ok(s, "POST", f"/v1/models/{model}/versions", {"source_path": d, "space": SPACE})
    ok(s, "POST", f"/v1/models/{model}/versions", {"source_path": d, "space": V2_SPACE})
    coll = "mc_" + uuid.uuid4().hex[:8]
    c = MilvusClient(uri=s.uri)
    schema = MilvusClient.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("text", DataType.VARCHAR, max_length=500)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=384)
    schema.add_function(Function("emb", FunctionType.TEXTEMBEDDING, ["text"], ["vec"], params={"model_name": f"{model}@1"}))
    index = c.prepare_index_params()
    index.add_index("vec", index_type="HNSW", metric_type="COSINE")
    c.create_collection(coll, schema=schema, index_params=index)
    data = texts(rows)
    for i in range(0, rows, 100):
        c.insert(coll, [{"id": j, "text": data[j]} for j in range(i, min(rows, i + 100))])
    c.flush(coll)
    return model, coll, c, data


def start(s, coll, model, **kw):
    body = {"to_model": f"{model}@2", "target_field": "vec2", "source_text_field": "text", "batch_size": 32}
    body.update(kw)
    return ok(s, "POST", f"/v1/collections/{coll}/migrations", body)


def status(s, coll, mid):
    return ok(s, "GET", f"/v1/collections/{coll}/migrations/{mid}")


def wait_for(s, coll, mid, pred, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = status(s, coll, mid)
        if pred(st):
            return st
        assert st["state"] != "FAILED", st
        time.sleep(0.2)
    raise AssertionError(f"timed out: {status(s, coll, mid)}")


def embed(s, model, version, items, role="document"):
    out = []
    for i in range(0, len(items), 128):
        out += ok(s, "POST", f"/v1/models/{model}/versions/{version}/embed", {"inputs": items[i : i + 128], "role": role})["vectors"]
    return np.array(out, dtype=np.float32)


def check_all_rows(s, c, coll, model):
    """Every live row's vec2 is version 2's embedding of its current text, and vec version 1's."""
    rows = c.query(coll, filter="id >= 0", output_fields=["text", "vec", "vec2"], limit=5000)
    rows.sort(key=lambda r: r["id"])
    t = [r["text"] for r in rows]
    v2 = np.array([r["vec2"] for r in rows], dtype=np.float32)
    v1 = np.array([r["vec"] for r in rows], dtype=np.float32)
    assert np.min(np.sum(v2 * embed(s, model, 2, t), axis=1)) > 0.9999
    assert np.min(np.sum(v1 * embed(s, model, 1, t), axis=1)) > 0.9999
    return rows


def test_migration_dual_writes_backfills_and_gates_serving(own_server, minilm_dir):
    s = own_server
    model, coll, c, data = setup_collection(s, minilm_dir, 300)
    # A serving alias on the old field.
    alias = "sa_" + uuid.uuid4().hex[:6]
    ok(s, "POST", "/v1/serving-aliases", {"name": alias, "bundle": {"collection": coll, "field": "vec", "model": model, "version": 1}})

    m = start(s, coll, model, max_rows_per_s=150)
    mid = m["id"]
    assert m["state"] in ("BACKFILLING", "CATCHING_UP") and m["total"] == 300
    # Paused, the backfill holds while everything below is checked (dual writes go on).
    assert ok(s, "POST", f"/v1/collections/{coll}/migrations/{mid}/pause")["paused"] is True
    # The target field exists, is bound to version 2 and is written by the function.
    fields = {f["name"]: f for f in c.describe_collection(coll)["fields"]}
    assert fields["vec2"]["type"] == DataType.FLOAT_VECTOR and fields["vec2"]["params"]["dim"] == 384
    b = ok(s, "GET", f"/v1/collections/{coll}/fields/vec2/model")
    assert (b["model"], b["version"]) == (model, 2)
    # A second migration of the same collection, an existing field, a non-text source: refused.
    assert call(s, "POST", f"/v1/collections/{coll}/migrations", {"to_model": f"{model}@2", "target_field": "vec3", "source_text_field": "text"})[0] == 409
    other = setup_collection(s, minilm_dir, 10)
    for body, code in [
        ({"to_model": f"{model}@2", "target_field": "vec", "source_text_field": "text"}, 409),
        ({"to_model": f"{model}@2", "target_field": "v9", "source_text_field": "id"}, 400),
        ({"to_model": f"{model}@9", "target_field": "v9", "source_text_field": "text"}, 404),
        ({"to_model": model, "target_field": "v9", "source_text_field": "text"}, 400),
        ({"target_field": "v9", "source_text_field": "text"}, 400),
    ]:
        status_code, err = call(s, "POST", f"/v1/collections/{other[1]}/migrations", body)
        assert status_code == code, (body, status_code, err)

    # Writes during the backfill: new rows, an upsert with new text, a delete.
    c.insert(coll, [{"id": 1000 + i, "text": f"fresh row about violin music {i}"} for i in range(20)])
    c.upsert(coll, [{"id": 299, "text": "a completely rewritten text about storms"}])
    c.delete(coll, ids=[298])
    got = c.get(coll, ids=[1000, 299], output_fields=["vec2", "text"])
    assert all(r["vec2"] is not None and len(r["vec2"]) == 384 for r in got)

    # Promoting the serving alias to the unfinished field is refused.
    cur = ok(s, "GET", f"/v1/serving-aliases/{alias}")
    bundle = {"collection": coll, "field": "vec2", "model": model, "version": 2}
    code, err = call(s, "POST", f"/v1/serving-aliases/{alias}/promote", {"bundle": bundle, "expected_revision": cur["revision"], "reason": "early"})
    assert code == 409 and "READY" in err["message"], err

    # Paused holds: nothing is backfilled, also across a restart (SIGTERM; the server exits 0).
    time.sleep(0.5)
    held = status(s, coll, mid)
    time.sleep(1.0)
    st = status(s, coll, mid)
    assert st["done"] == held["done"] and st["running"] is False and st["remaining"] > 0
    c.close()
    s.restart()
    c = MilvusClient(uri=s.uri)
    st = status(s, coll, mid)
    assert st["paused"] is True and st["running"] is False and st["done"] == held["done"]
    # Resume, and restart again while the worker runs: it stops after its batch and resumes.
    assert ok(s, "POST", f"/v1/collections/{coll}/migrations/{mid}/resume")["paused"] is False
    assert status(s, coll, mid)["state"] != "READY"
    c.close()
    s.restart()
    c = MilvusClient(uri=s.uri)
    st = wait_for(s, coll, mid, lambda x: x["state"] == "READY")
    assert st["done"] == st["total"] == 319 and st["remaining"] == 0 and st["errors"] == []
    rows = check_all_rows(s, c, coll, model)
    assert len(rows) == 319 and 298 not in [r["id"] for r in rows]
    # The rewritten row has version 2's vector of its new text.
    by_id = {r["id"]: r for r in rows}
    assert by_id[299]["text"] == "a completely rewritten text about storms"

    # Text search on the new field uses version 2's query prefix.
    res = c.search(coll, data=["rewritten text about storms"], anns_field="vec2", limit=1)
    assert res[0][0]["id"] == 299
    # Now the alias can move to the new field, and pymilvus searches through it follow.
    ok(s, "POST", f"/v1/serving-aliases/{alias}/promote", {"bundle": bundle, "expected_revision": cur["revision"], "reason": "migration READY", "evidence": [mid]})
    q = embed(s, model, 2, [data[5]], "query")
    res = c.search(alias, data=q.tolist(), limit=1)
    assert res[0][0]["id"] == 5
    # Inserts after READY keep writing both fields.
    c.insert(coll, [{"id": 5000, "text": "after the migration"}])
    assert c.get(coll, ids=[5000], output_fields=["vec2"])[0]["vec2"] is not None
    # A READY migration cannot be aborted; the audit log has its story.
    assert call(s, "POST", f"/v1/collections/{coll}/migrations/{mid}/abort")[0] == 409
    kinds = [e["kind"] for e in ok(s, "GET", "/v1/audit")["events"] if e["subject"] == f"migration:{mid}"]
    assert kinds[0] == "migration_created" and kinds.count("migration_updated") >= 4
    assert ok(s, "GET", "/v1/audit/verify")["ok"]
    c.close()


def test_migration_survives_kill_9_and_abort_stops_dual_writes(own_server, minilm_dir):
    s = own_server
    model, coll, c, data = setup_collection(s, minilm_dir, 400)
    mid = start(s, coll, model, max_rows_per_s=100)["id"]
    st = wait_for(s, coll, mid, lambda x: 64 <= x["done"] < 300)
    c.close()
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait()
    s.start()
    after = status(s, coll, mid)
    assert after["state"] in ("BACKFILLING", "CATCHING_UP") and after["done"] >= st["done"]
    assert after["running"] is True
    ok(s, "POST", f"/v1/collections/{coll}/migrations/{mid}/pause")
    ok(s, "POST", f"/v1/collections/{coll}/migrations/{mid}/resume")
    st = wait_for(s, coll, mid, lambda x: x["state"] == "READY", timeout=240)
    assert st["done"] == st["total"] == 400
    c = MilvusClient(uri=s.uri)
    rows = check_all_rows(s, c, coll, model)
    assert [r["id"] for r in rows] == list(range(400))

    # Abort: a second migration of another collection stops, and new rows no longer get its field.
    model2, coll2, c2, _ = setup_collection(s, minilm_dir, 200)
    mid2 = start(s, coll2, model2, max_rows_per_s=20)["id"]
    ab = ok(s, "POST", f"/v1/collections/{coll2}/migrations/{mid2}/abort")
    assert ab["state"] == "ABORTED"
    assert not any(f["name"].startswith("quiver_migration") for f in c2.describe_collection(coll2)["functions"])
    before = status(s, coll2, mid2)["remaining"]
    c2.insert(coll2, [{"id": 900, "text": "after abort"}])
    assert status(s, coll2, mid2)["remaining"] == before + 1, "the new row has no vec2"
    assert call(s, "POST", f"/v1/collections/{coll2}/migrations/{mid2}/resume")[0] == 409
    listed = ok(s, "GET", f"/v1/collections/{coll2}/migrations")["migrations"]
    assert [x["id"] for x in listed] == [mid2]
    c.close()
    c2.close()


def test_migrate_cli_runs_to_ready_with_a_progress_bar(own_server, minilm_dir):
    s = own_server
    model, coll, c, _ = setup_collection(s, minilm_dir, 120)
    c.close()
    env = dict(os.environ, QUIVER_SERVER=f"http://127.0.0.1:{s.port}")
    exe = os.environ["QUIVER_BIN"]
    r = subprocess.run(
        [exe, "migrate", "start", coll, "--to", f"{model}@2", "--target", "vec2", "--source", "text", "--batch-size", "40", "--watch"],
        env=env, capture_output=True, text=True, timeout=240,
    )
    assert r.returncode == 0, r.stderr
    assert "100.0%" in r.stderr and "READY" in r.stderr and "rows/s" in r.stderr
    import json

    out = json.loads(r.stdout)
    assert out["state"] == "READY" and out["done"] == 120
    r = subprocess.run([exe, "migrate", "status", coll, out["id"]], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "120/120 rows" in r.stderr
    r = subprocess.run([exe, "migrate", "pause", coll, "mig-999"], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "mig-999" in r.stderr
