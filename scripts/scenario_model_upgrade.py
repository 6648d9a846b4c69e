#!/usr/bin/env python3
"""The model-upgrade scenario, end to end against a real `quiver serve` (issue 7):

  register v2 -> evaluate on lee-beir -> migrate -> shadow -> promote -> rollback

with assertions at every step and the audit chain verified at the end. A news search service
holds lee-beir's 350 articles, embedded in the database by all-MiniLM-L6-v2 (version 1) and
served to pymilvus through the serving alias `news`. Version 2 is the same weights with E5-style
instruction prefixes ("query: " / "passage: "): no second sentence encoder can be installed here,
and a prefix change already gives other vectors and other rankings, which is what the path has to
handle. The script prints what it measured at each step.

Usage: scripts/scenario_model_upgrade.sh (builds the server, sets up the venv and the model), or
  QUIVER_BIN=target/debug/quiver QUIVER_MINILM_DIR=... .venv/bin/python scripts/scenario_model_upgrade.py
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from pymilvus import DataType, Function, FunctionType, MilvusClient

ROOT = Path(__file__).resolve().parent.parent

def lee_dir():
    """shared/datasets/lee-beir: $QUIVER_DATASETS, beside the checkout, or /work/shared."""
    for root in [os.environ.get("QUIVER_DATASETS"), ROOT.parent / "shared" / "datasets", "/work/shared/datasets"]:
        if root and (Path(root) / "lee-beir" / "corpus.jsonl").exists():
            return Path(root) / "lee-beir"
    raise SystemExit("lee-beir not found: set QUIVER_DATASETS to shared/datasets")


LEE = lee_dir()
V1_SPACE = {"dim": 384, "metric": "COSINE", "normalize": True, "pooling": "mean"}
V2_SPACE = dict(V1_SPACE, query_prefix="query: ", document_prefix="passage: ")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, data):
        self.port, self.metrics = free_port(), free_port()
        self.log = open(Path(data).parent / "quiver.log", "ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUIVER_")}
        env.setdefault("RUST_LOG", "info")
        self.proc = subprocess.Popen(
            [binary, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{self.port}",
             "--metrics-listen", f"127.0.0.1:{self.metrics}"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 30
        while time.time() < deadline:
            assert self.proc.poll() is None, f"quiver exited with {self.proc.returncode}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/healthz", timeout=1) as r:
                    if r.read() == b"ok":
                        return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("quiver did not start")

    def stop(self):
        os.kill(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def call(self, method, path, body=None, timeout=600):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def ok(self, method, path, body=None):
        status, out = self.call(method, path, body)
        assert status == 200, (method, path, status, out)
        return out


def step(title):
    print(f"\n== {title}", flush=True)


def ids(hits):
    return [h["id"] for h in hits]


def main():
    binary = os.environ.get("QUIVER_BIN") or str(ROOT / "target" / "debug" / "quiver")
    model_dir = os.environ["QUIVER_MINILM_DIR"]
    docs = [json.loads(line) for line in (LEE / "corpus.jsonl").open()]
    queries = [json.loads(line) for line in (LEE / "queries.jsonl").open()]
    tmp = tempfile.mkdtemp(prefix="quiver-scenario-")
    s = Server(binary, str(Path(tmp) / "data"))
    try:
        run(s, model_dir, docs, queries)
    finally:
        code = s.stop()
    assert code == 0, f"quiver exited with {code} on SIGTERM (log: {tmp}/quiver.log)"
    shutil.rmtree(tmp, ignore_errors=True)  # kept when a step failed, for its log
    print("\nscenario passed")


def run(s, model_dir, docs, queries):
    c = MilvusClient(uri=f"http://127.0.0.1:{s.port}")

    step("version 1 in production: lee-beir's articles embedded in the database, served as `news`")
    s.ok("POST", "/v1/models", {"name": "news-encoder", "description": "all-MiniLM-L6-v2"})
    v1 = s.ok("POST", "/v1/models/news-encoder/versions", {"source_path": model_dir, "space": V1_SPACE})
    s.ok("PUT", "/v1/models/news-encoder/aliases/champion", {"version": 1, "expected_version": None})
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=32)
    schema.add_field("text", DataType.VARCHAR, max_length=8192)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=384)
    schema.add_function(Function("embed", FunctionType.TEXTEMBEDDING, ["text"], ["vec"],
                                 params={"provider": "quiver", "model_name": "news-encoder@champion"}))
    index = c.prepare_index_params()
    index.add_index("vec", index_type="HNSW", metric_type="COSINE")
    c.create_collection("articles", schema=schema, index_params=index)
    for i in range(0, len(docs), 50):
        c.insert("articles", [{"id": d["_id"], "text": d["text"]} for d in docs[i:i + 50]])
    c.flush("articles")
    prod = {"collection": "articles", "field": "vec", "model": "news-encoder", "version": 1}
    sa = s.ok("POST", "/v1/serving-aliases", {"name": "news", "bundle": prod, "reason": "launch"})
    assert sa["revision"] == 1
    top = c.search("news", data=[queries[0]["text"]], limit=3)[0]
    assert top[0]["id"] == "lee-0", top  # the query is article 0's own text
    print(f"  {len(docs)} articles, version 1 space {v1['space_id'][:12]}..., `news` at revision 1")

    step("register version 2 (same weights, E5-style prefixes) as the challenger")
    v2 = s.ok("POST", "/v1/models/news-encoder/versions",
              {"source_path": model_dir, "space": V2_SPACE, "lineage": {"parent_version": 1}})
    assert v2["version"] == 2 and v2["space_id"] != v1["space_id"]
    assert v2["sha256"] == v1["sha256"], "same files, stored once"
    s.ok("PUT", "/v1/models/news-encoder/aliases/challenger", {"version": 2, "expected_version": None})
    print(f"  version 2 space {v2['space_id'][:12]}... (files shared with version 1: {v2['sha256'][:12]}...)")

    step("evaluate both on lee-beir (all 350 articles ranked), and production's bundle")
    es = s.ok("POST", "/v1/eval-sets", {"name": "lee", "source_path": str(LEE)})
    rep = s.ok("POST", "/v1/evaluations", {
        "eval_set": "lee",
        # Every article, as the collection holds them (the judged pool alone is what the
        # published 0.741 is measured on; tests/compat/test_evaluation.py checks that one).
        "corpus": "all",
        "metrics": ["ndcg@10", "recall@10", "mrr@10", "unjudged@10"],
        "candidates": ["news-encoder@1", "news-encoder@2", {"name": "prod", "serving_alias": "news"}],
        "paired_test": {"kind": "randomization", "n": 2000, "seed": 7},
    })
    nd = rep["metrics"]["ndcg@10"]
    print(f"  eval set version {es['version']} ({es['queries']} queries, {es['judgments']} judgments)")
    for cand, v in nd.items():
        print(f"  nDCG@10 {cand:>16}: {v:.4f}")
    # Production's bundle (the engine's search of the collection) scores what version 1 scores
    # in process.
    assert abs(nd["prod"] - nd["news-encoder@1"]) < 5e-3, nd
    cmp = next(x for x in rep["comparisons"] if x["challenger"] == "news-encoder@2")
    assert cmp["baseline"] == "news-encoder@1"
    t = cmp["metrics"]["ndcg@10"]
    print(f"  v2 - v1: {t['difference']:+.4f}, 95% CI [{t['ci95'][0]:+.4f}, {t['ci95'][1]:+.4f}], p = {t['p_value']:.3f}")
    assert abs(t["difference"] - (nd["news-encoder@2"] - nd["news-encoder@1"])) < 1e-9
    # The gate: version 2 goes on to live traffic only if it is not clearly worse offline.
    diff_v2 = nd["news-encoder@2"] - nd["news-encoder@1"]
    assert diff_v2 > -0.05, f"version 2 is worse offline by {-diff_v2:.3f}: stop here"
    assert len(rep["per_query"]) == rep["queries_evaluated"] > 0
    evaluation = rep["id"]

    step("migrate: re-embed every article with version 2 into a new field while serving goes on")
    m = s.ok("POST", "/v1/collections/articles/migrations",
             {"to_model": "news-encoder@challenger", "target_field": "vec2", "source_text_field": "text", "batch_size": 64})
    # A serving alias cannot move to a field that is still being filled.
    early = s.call("POST", "/v1/serving-aliases/news/promote", {
        "bundle": {"collection": "articles", "field": "vec2", "model": "news-encoder", "version": 2},
        "expected_revision": 1})
    assert early[0] in (200, 409), early
    assert early[0] == 409 or s.ok("GET", f"/v1/collections/articles/migrations/{m['id']}")["state"] == "READY"
    if early[0] == 200:  # the migration finished before the promote: undo it for the scenario
        s.ok("POST", "/v1/serving-aliases/news/rollback", {"to": 1, "reason": "scenario: too early"})
    c.insert("articles", [{"id": "late-1", "text": "Written during the migration: a storm hits Sydney."}])
    deadline = time.time() + 600
    while True:
        st = s.ok("GET", f"/v1/collections/articles/migrations/{m['id']}")
        if st["state"] == "READY":
            break
        assert st["state"] != "FAILED" and time.time() < deadline, st
        time.sleep(0.2)
    assert st["done"] == st["total"] == len(docs) + 1, st
    got = c.query("articles", filter='id == "late-1"', output_fields=["vec", "vec2"])[0]
    assert len(got["vec"]) == len(got["vec2"]) == 384 and got["vec"] != got["vec2"]
    print(f"  {st['done']}/{st['total']} rows have version 2 vectors (the row written meanwhile too)")

    step("shadow: live pymilvus searches on `news` also run on version 2, off the critical path")
    rev = s.ok("GET", "/v1/serving-aliases/news")["revision"]
    challenger = {"collection": "articles", "field": "vec2", "model": "news-encoder", "version": 2}
    x = s.ok("POST", "/v1/serving-aliases/news/experiments", {
        "mode": "shadow", "challenger": challenger, "traffic": 1.0, "k": 10, "cpu_budget": 1.0,
        "guardrails": [{"metric": "error_rate", "max": 0.01, "action": "rollback"},
                       {"metric": "p99_ms", "max": 5000, "action": "pause"}],
        "reason": f"offline: {evaluation}"})
    exp = x["id"]
    for i, q in enumerate(queries):
        hits = c.search("news", data=[q["text"]], limit=10, client_request_id=f"live-{i}")[0]
        assert len(hits) == 10
    deadline = time.time() + 120
    while True:
        x = s.ok("GET", f"/v1/serving-aliases/news/experiments/{exp}")
        sh = x["metrics"]["shadow"]
        if sh["run"] + sh["dropped_budget"] + sh["dropped_queue"] == len(queries):
            break
        assert time.time() < deadline, x
        time.sleep(0.1)
    mt = x["metrics"]
    assert x["status"] == "running", x["outcome"]
    assert mt["arms"]["champion"]["requests"] == len(queries) and mt["shadow"]["errors"] == 0
    assert sh["run"] >= len(queries) // 2, sh
    assert 0.0 < mt["overlap"] <= 1.0 and 0.0 < mt["rbo"] <= 1.0
    worst = mt["disagreements"][0] if mt["disagreements"] else None
    print(f"  {sh['run']} shadowed ({sh['dropped_budget']} over budget), overlap@10 {mt['overlap']:.3f}, "
          f"RBO {mt['rbo']:.3f}, p99 champion {mt['arms']['champion']['p99_ms']:.1f} ms / "
          f"challenger {mt['arms']['challenger']['p99_ms']:.1f} ms")
    if worst:
        print(f"  most different: {worst['request_id']} (overlap {worst['overlap']:.2f}): {worst['query'][:60]!r}...")

    step("promote version 2 through the experiment (evidence: the experiment and the evaluation)")
    x = s.ok("POST", f"/v1/serving-aliases/news/experiments/{exp}/promote",
             {"reason": "shadow healthy", "evidence": [evaluation]})
    assert x["status"] == "promoted"
    sa = s.ok("GET", "/v1/serving-aliases/news")
    assert sa["revision"] == rev + 1 and sa["bundle"]["field"] == "vec2" and sa["bundle"]["version"] == 2
    q = queries[5]["text"]
    direct = ids(c.search("articles", data=[q], anns_field="vec2", limit=10)[0])
    assert ids(c.search("news", data=[q], limit=10)[0]) == direct
    print(f"  `news` at revision {sa['revision']}: version 2 serves")

    step("roll back in one call: version 1 serves again")
    back = s.ok("POST", "/v1/serving-aliases/news/rollback", {"to": "previous", "reason": "scenario rollback"})
    assert back["bundle"]["field"] == "vec" and back["bundle"]["version"] == 1
    direct = ids(c.search("articles", data=[q], anns_field="vec", limit=10)[0])
    assert ids(c.search("news", data=[q], limit=10)[0]) == direct
    hist = s.ok("GET", "/v1/serving-aliases/news/history")["history"]
    assert [h["kind"] for h in hist][-2:] == ["promoted", "rolled_back"]
    assert hist[-2]["evidence"] == [exp, evaluation] and hist[-1]["restored"] == rev
    print(f"  `news` at revision {back['revision']} (restored revision {rev})")

    step("the audit chain holds every step, in order, and verifies")
    events = s.ok("GET", "/v1/audit?since=0")["events"]
    kinds = [e["kind"] for e in events]
    want = ["model_created", "version_registered", "alias_set", "binding_set", "serving_created",
            "version_registered", "alias_set", "eval_set_created", "evaluation_recorded",
            "migration_created", "binding_set", "migration_updated", "experiment_started",
            "serving_promoted", "experiment_updated", "serving_rolled_back"]
    at = 0
    for k in kinds:
        if at < len(want) and k == want[at]:
            at += 1
    assert at == len(want), f"missing {want[at:]} in {kinds}"
    v = s.ok("GET", "/v1/audit/verify")
    assert v["ok"] and v["events"] == len(events) and v["head_hash"] == events[-1]["hash"], v
    print(f"  {v['events']} events, head {v['head_hash'][:16]}..., chain ok")


if __name__ == "__main__":
    sys.exit(main())
