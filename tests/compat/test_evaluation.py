"""Offline evaluation through `/v1`: judged query sets (BEIR layout, versioned by content hash)
and evaluations that rank them with each candidate (a registered model version, BM25), score
every query and compare the candidates with a paired test.

The reproduction from issue 7 runs here on lee-beir: all-MiniLM-L6-v2 against BM25 on the judged
pool of 50 articles. The per-query nDCG@10 in the report is recomputed in this file from the
report's top-10 ids and the qrels, so the metric is checked, not just the comparison."""

import json
import math
import urllib.error
import urllib.request
import uuid

import pytest

from conftest import datasets_dir
from test_functions import register
from test_registry import ok


def post(server, path, body, timeout=600):
    req = urllib.request.Request(
        f"http://127.0.0.1:{server.port}{path}", data=json.dumps(body).encode(), method="POST"
    )
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def lee():
    return str(datasets_dir() / "lee-beir")


def qrels_of_lee():
    out = {}
    for line in (datasets_dir() / "lee-beir" / "qrels" / "test.tsv").open().readlines()[1:]:
        q, d, g = line.split()
        out.setdefault(q, {})[d] = int(g)
    return out


def ndcg10(top, judged):
    """trec_eval's nDCG@10: linear gain, log2 discount."""
    dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, d in enumerate(top[:10]))
    ideal = sorted(judged.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg


def test_eval_sets_are_versioned_by_content(own_server):
    s = own_server
    name = "lee_" + uuid.uuid4().hex[:6]
    v1 = ok(s, "POST", "/v1/eval-sets", {"name": name, "source_path": lee()})
    assert (v1["version"], v1["documents"], v1["queries"], v1["judgments"]) == (1, 350, 48, 286)
    assert len(v1["sha256"]) == 64
    # The same content again is the same version.
    assert ok(s, "POST", "/v1/eval-sets", {"name": name, "source_path": lee()})["version"] == 1

    tiny = "tiny_" + uuid.uuid4().hex[:6]
    body = {
        "name": tiny,
        "corpus": [{"_id": "d1", "text": "red apples"}, {"_id": "d2", "text": "green pears"}],
        "queries": [{"_id": "q1", "text": "apples"}],
        "qrels": {"q1": {"d1": 1}},
    }
    assert ok(s, "POST", "/v1/eval-sets", body)["version"] == 1
    body["qrels"] = "query-id\tcorpus-id\tscore\nq1\td2\t1\n"
    t2 = ok(s, "POST", "/v1/eval-sets", body)
    assert t2["version"] == 2 and t2["source"] == "upload"
    assert ok(s, "GET", f"/v1/eval-sets/{tiny}")["version"] == 2
    assert ok(s, "GET", f"/v1/eval-sets/{tiny}?version=1")["judgments"] == 1
    listed = ok(s, "GET", "/v1/eval-sets")["eval_sets"]
    assert {(e["name"], e["version"]) for e in listed} >= {(name, 1), (tiny, 1), (tiny, 2)}

    # Bad sets are refused with the reason.
    for bad, why in [
        ({**body, "qrels": {"q1": {"nope": 1}}}, "unknown document"),
        ({**body, "qrels": {"q9": {"d1": 1}}}, "unknown query"),
        ({**body, "qrels": {"q1": {"d1": 0}}}, "relevant"),
        ({"name": tiny, "source_path": "/no/such/dir"}, "/no/such/dir"),
        ({**body, "corpus": [{"_id": "d1", "text": "a"}, {"_id": "d1", "text": "b"}]}, "duplicate"),
        ({"name": tiny}, "corpus is required"),
    ]:
        status, out = post(s, "/v1/eval-sets", bad)
        assert status in (400, 500) and why in out["message"], (bad, out)
    status, out = post(s, "/v1/eval-sets", {**body, "name": "bad name!"})
    assert status == 400
    status, out = post(s, "/v1/evaluations", {"eval_set": "nope", "candidates": ["bm25"]})
    assert status == 404


def test_minilm_beats_bm25_on_lee(own_server, minilm_dir):
    s = own_server
    model = register(s, minilm_dir)
    name = "lee_" + uuid.uuid4().hex[:6]
    ok(s, "POST", "/v1/eval-sets", {"name": name, "source_path": lee()})
    bm25 = {"name": "bm25", "bm25": {"analyzer_params": {"type": "english"}, "k1": 1.2, "b": 0.75}}
    metrics = ["ndcg@10", "recall@10", "mrr@10", "recall_vs_exact@10", "unjudged@10"]
    status, rep = post(s, "/v1/evaluations", {
        "eval_set": name,
        "candidates": [bm25, f"{model}@1"],
        "metrics": metrics,
        "corpus": "judged",
        "paired_test": {"kind": "randomization", "n": 5000, "seed": 7},
    })
    assert status == 200, rep
    assert rep["queries_evaluated"] == 48 and rep["documents_ranked"] == 50
    dense, lexical = rep["metrics"]["ndcg@10"][f"{model}@1"], rep["metrics"]["ndcg@10"]["bm25"]
    print(f"lee-beir judged pool, nDCG@10: MiniLM {dense:.3f}, BM25 {lexical:.3f}")
    cmp = rep["comparisons"][0]
    assert (cmp["baseline"], cmp["challenger"]) == ("bm25", f"{model}@1")
    nd = cmp["metrics"]["ndcg@10"]
    # The published figures: MiniLM 0.741, TF-IDF 0.640; the dense model wins with p < 0.05.
    assert dense > lexical and nd["difference"] == pytest.approx(dense - lexical)
    assert nd["p_value"] < 0.05 and nd["ci95"][0] > 0, nd
    assert 0.68 < dense < 0.80 and 0.55 < lexical < 0.72
    # Every ranked document of the judged pool is judged; the rankings are exact.
    assert rep["metrics"]["unjudged@10"] == {"bm25": 0.0, f"{model}@1": 0.0}
    assert rep["metrics"]["recall_vs_exact@10"][f"{model}@1"] == 1.0

    # Per query: the report's nDCG@10 equals one recomputed here from its top 10 and the qrels,
    # and the query's own article is never ranked.
    qrels = qrels_of_lee()
    for pq in rep["per_query"]:
        q = pq["query_id"]
        for cand, top in pq["top10"].items():
            assert q.replace("q-", "lee-") not in top
            assert pq["scores"]["ndcg@10"][cand] == pytest.approx(ndcg10(top, qrels[q]), abs=1e-9)
    # Worst regressions are the queries where MiniLM loses to BM25 most, worst first.
    worst = cmp["worst_regressions"]
    assert all(w["difference"] < 0 for w in worst)
    assert [w["difference"] for w in worst] == sorted(w["difference"] for w in worst)

    # The report is stored: GET returns it, the audit log records it and still verifies.
    again = ok(s, "GET", f"/v1/evaluations/{rep['id']}")
    assert again["metrics"] == rep["metrics"] and again["per_query"] == rep["per_query"]
    assert any(e["id"] == rep["id"] for e in ok(s, "GET", "/v1/evaluations")["evaluations"])
    events = ok(s, "GET", "/v1/audit")["events"]
    assert any(e["kind"] == "evaluation_recorded" and e["subject"] == f"evaluation:{rep['id']}" for e in events)
    assert ok(s, "GET", "/v1/audit/verify")["ok"] is True

    # With the 300 unjudged background articles in the pool most of each top 10 is unjudged:
    # report it next to the metric.
    status, rep_all = post(s, "/v1/evaluations", {"eval_set": name, "candidates": [bm25], "metrics": ["ndcg@10", "unjudged@10"]})
    assert status == 200, rep_all
    assert rep_all["documents_ranked"] == 350
    assert rep_all["metrics"]["unjudged@10"]["bm25"] > 0.5

    # Bad requests name the problem.
    for bad, why in [
        ({"eval_set": name, "candidates": []}, "candidates"),
        ({"eval_set": name, "candidates": ["bm25"], "metrics": ["ndcg@0"]}, "k must be"),
        ({"eval_set": name, "candidates": ["bm25"], "metrics": ["precision@10"]}, "unknown metric"),
        ({"eval_set": name, "candidates": ["nomodel@1"]}, "nomodel"),
        ({"eval_set": name, "candidates": ["bm25"], "paired_test": {"kind": "t-test"}}, "bootstrap or randomization"),
        ({"eval_set": name, "candidates": [{"name": "x", "bm25": {"analyzer_params": {"type": "klingon"}}}]}, "klingon"),
    ]:
        status, out = post(s, "/v1/evaluations", bad)
        assert status in (400, 404) and why in out["message"], (bad, out)


def test_bundles_and_serving_aliases_as_candidates(own_server, minilm_dir):
    """A collection holding the judged articles, searched through the engine, scores what the
    same model and BM25 score in process; a serving alias evaluates its current bundle."""
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    s = own_server
    model = register(s, minilm_dir)
    name = "lee_" + uuid.uuid4().hex[:6]
    ok(s, "POST", "/v1/eval-sets", {"name": name, "source_path": lee()})
    docs = [json.loads(line) for line in (datasets_dir() / "lee-beir" / "corpus.jsonl").open()]
    judged = [d for d in docs if d.get("judged", True)]

    c = MilvusClient(uri=s.uri)
    coll = "leej_" + uuid.uuid4().hex[:6]
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=32)
    schema.add_field("text", DataType.VARCHAR, max_length=8192, enable_analyzer=True, analyzer_params={"type": "english"})
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=384)
    schema.add_field("bm", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(Function("embed", FunctionType.TEXTEMBEDDING, ["text"], ["vec"],
                                 params={"provider": "quiver", "model_name": f"{model}@1"}))
    schema.add_function(Function("bm25", FunctionType.BM25, ["text"], ["bm"]))
    idx = c.prepare_index_params()
    idx.add_index("vec", index_type="HNSW", metric_type="COSINE")
    idx.add_index("bm", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    c.create_collection(coll, schema=schema, index_params=idx)
    c.insert(coll, [{"id": d["_id"], "text": d["text"]} for d in judged])
    alias = "leeprod_" + uuid.uuid4().hex[:6]
    ok(s, "POST", "/v1/serving-aliases", {"name": alias, "bundle": {"collection": coll, "field": "vec", "search_params": {"ef": 64}}})

    bm25 = {"name": "bm25", "bm25": {"analyzer_params": {"type": "english"}}}
    status, rep = post(s, "/v1/evaluations", {
        "eval_set": name,
        "corpus": "judged",
        "metrics": ["ndcg@10", "recall_vs_exact@10", "unjudged@10"],
        "candidates": [
            f"{model}@1",
            {"name": "coll-dense", "bundle": {"collection": coll, "field": "vec", "search_params": {"ef": 64}}},
            {"name": "prod", "serving_alias": alias},
            bm25,
            {"name": "coll-bm25", "bundle": {"collection": coll, "field": "bm"}},
        ],
        "paired_test": {"kind": "bootstrap", "n": 1000},
    })
    assert status == 200, rep
    nd = rep["metrics"]["ndcg@10"]
    assert nd["coll-dense"] == pytest.approx(nd[f"{model}@1"], abs=1e-3), nd
    assert nd["prod"] == pytest.approx(nd["coll-dense"], abs=1e-9), nd
    assert nd["coll-bm25"] == pytest.approx(nd["bm25"], abs=1e-3), nd
    assert all(v == 1.0 for v in rep["metrics"]["recall_vs_exact@10"].values())
    assert rep["metrics"]["unjudged@10"]["coll-dense"] == 0.0
    prod = next(cd for cd in rep["candidates"] if cd["name"] == "prod")
    assert prod["serving_alias"] == alias and prod["bundle"]["collection"] == coll

    # A field without a model binding or BM25 cannot embed the queries.
    coll2 = "plain_" + uuid.uuid4().hex[:6]
    c.create_collection(coll2, dimension=384)
    status, out = post(s, "/v1/evaluations", {"eval_set": name, "candidates": [{"bundle": {"collection": coll2, "field": "vector"}}]})
    assert status == 400 and "bound to no model" in out["message"], out
