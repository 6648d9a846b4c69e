"""Sparse vectors and BM25 full-text search through pymilvus.

- SPARSE_FLOAT_VECTOR fields: insert dict rows, search with dict queries (metric IP), read the
  vectors back; results equal a brute-force inner product computed here.
- A BM25 function over a VARCHAR field with an analyzer: rows are inserted with text only, the
  output field holds term counts, `search(data=["query text"])` ranks by BM25. The scores are
  checked against a BM25 computed here from the analyzer's tokens (RunAnalyzer), on the lee-beir
  articles, with the index's k1 / b.
- RunAnalyzer with analyzer params and with a collection field's analyzer.
- The errors a user meets (writing the output field, IP on a BM25 field, bad analyzer params,
  unsorted sparse rows over REST)."""

import json
import math
import random
import uuid
from collections import Counter

import pytest
from pymilvus import DataType, Function, FunctionType, MilvusClient, MilvusException

from conftest import datasets_dir
from test_rest import Rest


def sparse_schema():
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("tag", DataType.VARCHAR, max_length=16)
    s.add_field("sp", DataType.SPARSE_FLOAT_VECTOR)
    return s


def rand_sparse(rng, dim=200, nnz=8):
    idx = rng.sample(range(dim), rng.randint(1, nnz))
    return {i: round(rng.uniform(0.1, 2.0), 3) for i in idx}


def ip(a, b):
    return sum(v * b[k] for k, v in a.items() if k in b)


def test_sparse_ip_search_equals_brute_force(server):
    c = MilvusClient(uri=server.uri)
    coll = "sp_" + uuid.uuid4().hex[:8]
    idx = c.prepare_index_params()
    idx.add_index("sp", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
    c.create_collection(coll, schema=sparse_schema(), index_params=idx)
    rng = random.Random(7)
    rows = [{"id": i, "tag": f"t{i % 3}", "sp": rand_sparse(rng)} for i in range(600)]
    c.insert(coll, rows[:400])
    c.flush(coll)
    c.insert(coll, rows[400:])

    # Read back: the dict as written (float32 values).
    got = c.get(coll, ids=[5], output_fields=["sp"])[0]["sp"]
    assert set(got) == set(rows[5]["sp"])
    assert all(abs(got[k] - v) < 1e-6 for k, v in rows[5]["sp"].items())

    queries = [rand_sparse(rng, nnz=12) for _ in range(5)]
    res = c.search(coll, data=queries, anns_field="sp", limit=10, output_fields=["tag"])
    for q, hits in zip(queries, res):
        scored = [(ip(q, r["sp"]), r["id"]) for r in rows if set(q) & set(r["sp"])]
        want = sorted(scored, key=lambda x: (-x[0], x[1]))[:10]
        assert [h["id"] for h in hits] == [w[1] for w in want]
        for h, w in zip(hits, want):
            assert h["distance"] == pytest.approx(w[0], rel=1e-5)
        assert all(h["entity"]["tag"] == f"t{h['id'] % 3}" for h in hits)

    # A filter narrows the candidates.
    res = c.search(coll, data=[queries[0]], anns_field="sp", limit=5, filter="tag == 't1'")
    assert res[0] and all(h["id"] % 3 == 1 for h in res[0])
    # drop_ratio_search is accepted (and prunes the query), out-of-range values are not.
    c.search(coll, data=[queries[0]], anns_field="sp", limit=5, search_params={"params": {"drop_ratio_search": 0.2}})
    with pytest.raises(MilvusException, match="drop_ratio_search"):
        c.search(coll, data=[queries[0]], anns_field="sp", limit=5, search_params={"params": {"drop_ratio_search": 1.5}})
    # BM25 is for BM25 function outputs only.
    with pytest.raises(MilvusException, match="BM25"):
        c.search(coll, data=[queries[0]], anns_field="sp", limit=5, search_params={"metric_type": "BM25"})
    desc = c.describe_index(coll, "sp")
    assert desc["index_type"] == "SPARSE_INVERTED_INDEX" and desc["metric_type"] == "IP"


def toks_of(r):
    """The tokens of one RunAnalyzer result (an AnalyzeResult in pymilvus), as dicts; pymilvus
    gives plain strings when neither details nor hashes were asked for."""
    toks = r.tokens if hasattr(r, "tokens") else r["tokens"]
    return [{"token": t} if isinstance(t, str) else t for t in toks]


def bm25_schema(analyzer=None):
    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("id", DataType.VARCHAR, is_primary=True, max_length=32)
    kw = {"enable_analyzer": True}
    if analyzer is not None:
        kw["analyzer_params"] = analyzer
    s.add_field("text", DataType.VARCHAR, max_length=8192, **kw)
    s.add_field("bm", DataType.SPARSE_FLOAT_VECTOR)
    s.add_function(
        Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["text"], output_field_names=["bm"])
    )
    return s


def load_lee():
    d = datasets_dir() / "lee-beir"
    corpus = [json.loads(line) for line in (d / "corpus.jsonl").open()]
    queries = [json.loads(line) for line in (d / "queries.jsonl").open()]
    qrels = {}
    for line in (d / "qrels" / "test.tsv").open().readlines()[1:]:
        q, doc, grade = line.split()
        qrels.setdefault(q, {})[doc] = int(grade)
    return corpus, queries, qrels


def bm25_reference(doc_tokens, q_tokens, k1, b):
    """Milvus's BM25 over the given token lists: {doc id: score} for docs sharing a term."""
    n = len(doc_tokens)
    avgdl = sum(len(t) for t in doc_tokens.values()) / n
    df = Counter(t for toks in doc_tokens.values() for t in set(toks))
    q = Counter(q_tokens)
    out = {}
    for doc, toks in doc_tokens.items():
        tf = Counter(toks)
        s = 0.0
        hit = False
        for t, qtf in q.items():
            f = tf.get(t, 0)
            if not f:
                continue
            hit = True
            idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
            s += qtf * idf * f * (k1 + 1) / (f + k1 * (1 - b + b * len(toks) / avgdl))
        if hit:
            out[doc] = s
    return out


def ndcg10(ranked, judged):
    dcg = sum((2 ** judged.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(judged.values(), reverse=True)[:10]
    idcg = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def test_bm25_text_search_on_lee(server):
    corpus, queries, qrels = load_lee()
    c = MilvusClient(uri=server.uri)
    coll = "lee_" + uuid.uuid4().hex[:8]
    idx = c.prepare_index_params()
    idx.add_index(
        "bm",
        index_type="SPARSE_INVERTED_INDEX",
        metric_type="BM25",
        params={"inverted_index_algo": "DAAT_MAXSCORE", "bm25_k1": 1.5, "bm25_b": 0.7},
    )
    c.create_collection(coll, schema=bm25_schema({"type": "english"}), index_params=idx)
    desc = c.describe_collection(coll)
    assert desc["functions"][0]["type"] == FunctionType.BM25
    fields = {f["name"]: f for f in desc["fields"]}
    assert fields["bm"].get("is_function_output") is True

    rows = [{"id": d["_id"], "text": d["text"]} for d in corpus]
    c.insert(coll, rows[:200])
    c.flush(coll)  # half sealed, half growing
    c.insert(coll, rows[200:])

    # The output field holds the term counts of the analysed text (hash -> count).
    analysed = c.run_analyzer(
        [d["text"] for d in corpus], analyzer_params={"type": "english"}, with_hash=True
    )
    tokens = {}
    hashes = {}
    for d, r in zip(corpus, analysed):
        toks = toks_of(r)
        tokens[d["_id"]] = [t["token"] for t in toks]
        for t in toks:
            hashes[t["token"]] = t["hash"]
    bm = c.get(coll, ids=["lee-3"], output_fields=["bm"])[0]["bm"]
    want = Counter(hashes[t] for t in tokens["lee-3"])
    assert {int(k): v for k, v in bm.items()} == pytest.approx(dict(want))

    # Every query's top 10 equals the reference BM25 (k1 = 1.5, b = 0.7 from the index).
    analysed = c.run_analyzer([q["text"] for q in queries], analyzer_params={"type": "english"})
    q_tokens = {q["_id"]: [t["token"] for t in toks_of(r)] for q, r in zip(queries, analysed)}
    res = c.search(coll, data=[q["text"] for q in queries], anns_field="bm", limit=11, output_fields=["id"])
    scores = []
    for q, hits in zip(queries, res):
        ref = bm25_reference(tokens, q_tokens[q["_id"]], 1.5, 0.7)
        want = sorted(ref.items(), key=lambda x: (-x[1], x[0]))[:11]
        assert [h["distance"] for h in hits] == pytest.approx([w[1] for w in want], rel=1e-4)
        assert {h["id"] for h in hits if h["distance"] > want[-1][1] + 1e-3} <= {w[0] for w in want}
        # nDCG@10 on the judged pool (the 50 judged articles), dropping the query's own article.
        own = q["_id"].replace("q-", "lee-")
        judged_pool = {d["_id"] for d in corpus if d.get("judged", True)}
        pool_rank = sorted(
            ((s, d) for d, s in ref.items() if d in judged_pool and d != own), key=lambda x: (-x[0], x[1])
        )
        scores.append(ndcg10([d for _, d in pool_rank], qrels.get(q["_id"], {})))
    mean = sum(scores) / len(scores)
    print(f"BM25 (english analyzer) nDCG@10 on lee-beir's judged pool: {mean:.3f}")
    # Lexical baselines score about 0.64 here; a broken ranker scores far lower.
    assert mean > 0.5

    # Deletes leave the statistics at once.
    c.delete(coll, ids=[f"lee-{i}" for i in range(10)])
    for i in range(10):
        tokens.pop(f"lee-{i}")
    q = queries[20]
    ref = bm25_reference(tokens, q_tokens[q["_id"]], 1.5, 0.7)
    want = sorted(ref.values(), reverse=True)[:5]
    hits = c.search(coll, data=[q["text"]], anns_field="bm", limit=5)[0]
    assert [h["distance"] for h in hits] == pytest.approx(want, rel=1e-4)

    # The errors a user meets. pymilvus itself refuses rows that carry the output field; the
    # server refuses them too (over REST, which has no client-side check).
    with pytest.raises(MilvusException, match="function output field"):
        c.insert(coll, [{"id": "x", "text": "hello", "bm": {1: 1.0}}])
    msg = Rest(server.port).err("entities/insert", 1100, collectionName=coll, data=[{"id": "x", "text": "hi", "bm": {"1": 1.0}}])
    assert "output of BM25 function" in msg, msg
    with pytest.raises(MilvusException, match="BM25"):
        c.search(coll, data=["hello"], anns_field="bm", limit=3, search_params={"metric_type": "IP"})


def test_run_analyzer_and_bad_analyzers(server):
    c = MilvusClient(uri=server.uri)
    r = c.run_analyzer(["The Runners were RUNNING, quickly."], analyzer_params={"type": "english"}, with_detail=True)
    toks = toks_of(r[0])
    assert [t["token"] for t in toks] == ["runner", "were", "run", "quick"]
    assert (toks[0]["start_offset"], toks[0]["end_offset"], toks[0]["position"]) == (4, 11, 1)
    r = c.run_analyzer("Hello, World", analyzer_params={"tokenizer": "whitespace", "filter": ["lowercase"]})
    toks = toks_of(r)
    assert [t["token"] for t in toks] == ["hello,", "world"]
    with pytest.raises(MilvusException, match="analyzer"):
        c.run_analyzer(["x"], analyzer_params={"type": "klingon"})

    # A collection field's analyzer (standard: lowercase, no stemming).
    coll = "an_" + uuid.uuid4().hex[:8]
    c.create_collection(coll, schema=bm25_schema())
    r = c.run_analyzer(["Cats running"], collection_name=coll, field_name="text")
    toks = toks_of(r[0])
    assert [t["token"] for t in toks] == ["cats", "running"]

    bad = bm25_schema({"tokenizer": "standard", "filter": [{"type": "stemmer", "language": "elvish"}]})
    with pytest.raises(MilvusException, match="elvish"):
        c.create_collection("bad_" + uuid.uuid4().hex[:8], schema=bad)
    no_analyzer = bm25_schema()
    no_analyzer.fields[1].params.pop("enable_analyzer", None)
    with pytest.raises(MilvusException, match="enable_analyzer"):
        c.create_collection("bad_" + uuid.uuid4().hex[:8], schema=no_analyzer)


def test_sparse_over_rest(server):
    coll = "rs_" + uuid.uuid4().hex[:8]
    c = MilvusClient(uri=server.uri)
    c.create_collection(coll, schema=sparse_schema())
    rest = Rest(server.port)
    rows = [{"id": 1, "tag": "a", "sp": {"3": 0.5, "10": 2.0}}, {"id": 2, "tag": "b", "sp": {"3": 1.0}}]
    rest.ok("entities/insert", collectionName=coll, data=rows)
    hits = rest.ok(
        "entities/search", collectionName=coll, data=[{"3": 1.0, "10": 1.0}], annsField="sp", limit=5,
        outputFields=["sp"],
    )
    assert [int(h["id"]) for h in hits] == [1, 2]
    assert hits[0]["distance"] == pytest.approx(2.5)
    assert hits[0]["sp"] == {"3": 0.5, "10": 2.0}
    msg = rest.err("entities/insert", 1100, collectionName=coll, data=[{"id": 3, "tag": "c", "sp": [[4, 1.0], [4, 2.0]]}])
    assert "sorted" in msg, msg


def test_hybrid_dense_and_bm25(server):
    """RRF over a dense field and a BM25 field: a row found by either arm is found."""
    from pymilvus import AnnSearchRequest, RRFRanker

    s = bm25_schema()
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=2)
    c = MilvusClient(uri=server.uri)
    coll = "hy_" + uuid.uuid4().hex[:8]
    idx = c.prepare_index_params()
    idx.add_index("vec", index_type="FLAT", metric_type="L2")
    idx.add_index("bm", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    c.create_collection(coll, schema=s, index_params=idx)
    c.insert(coll, [
        {"id": "a", "text": "red apples and green pears", "vec": [0.0, 0.0]},
        {"id": "b", "text": "a fast red car", "vec": [5.0, 5.0]},
        {"id": "c", "text": "quiet libraries", "vec": [0.1, 0.1]},
    ])
    res = c.hybrid_search(
        coll,
        [
            AnnSearchRequest(data=["fast car"], anns_field="bm", param={}, limit=2),
            AnnSearchRequest(data=[[0.0, 0.0]], anns_field="vec", param={}, limit=1),
        ],
        RRFRanker(60),
        limit=3,
        output_fields=["text"],
    )
    ids = [h["id"] for h in res[0]]
    assert set(ids) == {"a", "b"}, ids


def test_bm25_over_rest(server):
    """REST v2: a custom schema with a BM25 function (Milvus's `functions` and
    `elementTypeParams.enable_analyzer`), text rows in, text queries out."""
    rest = Rest(server.port)
    coll = "rb_" + uuid.uuid4().hex[:8]
    rest.ok(
        "collections/create",
        collectionName=coll,
        schema={
            "fields": [
                {"fieldName": "id", "dataType": "Int64", "isPrimary": True},
                {"fieldName": "text", "dataType": "VarChar",
                 "elementTypeParams": {"max_length": 500, "enable_analyzer": True, "analyzer_params": {"type": "english"}}},
                {"fieldName": "bm", "dataType": "SparseFloatVector"},
            ],
            "functions": [
                {"name": "bm25", "type": "BM25", "inputFieldNames": ["text"], "outputFieldNames": ["bm"], "params": {}},
            ],
        },
        indexParams=[{"fieldName": "bm", "indexName": "bm", "metricType": "BM25", "indexType": "SPARSE_INVERTED_INDEX"}],
    )
    desc = rest.ok("collections/describe", collectionName=coll)
    assert desc["functions"][0]["type"] == "BM25"
    rest.ok("entities/insert", collectionName=coll, data=[
        {"id": 1, "text": "Cats are sleeping on the warm roof"},
        {"id": 2, "text": "A dog sleeps in the garden"},
        {"id": 3, "text": "Stock markets fell sharply"},
    ])
    hits = rest.ok("entities/search", collectionName=coll, data=["sleeping cat"], annsField="bm", limit=3)
    assert [int(h["id"]) for h in hits] == [1, 2]
    assert hits[0]["distance"] > hits[1]["distance"] > 0
