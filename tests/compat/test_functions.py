"""In-database embedding through pymilvus: a schema with a TextEmbedding function naming a registered
model (all-MiniLM-L6-v2, run in process), rows inserted with text only, searches with
`data=["query text"]`, the output field bound to the model version, and the errors a user meets."""

import uuid

import numpy as np
import pytest
from pymilvus import DataType, Function, FunctionType, MilvusClient, MilvusException

from conftest import datasets_dir
from test_admin import raw
from test_registry import call, ok

DOCS = [
    "a small dog barks at the mailman",
    "interest rates rose again this quarter",
    "the violin is a bowed string instrument",
    "heavy rain flooded the valley roads",
    "the striker scored twice in the final",
    "photosynthesis turns sunlight into sugar",
]
QUERIES = [
    ("which instrument has strings and a bow", 2),
    ("the central bank raised borrowing costs", 1),
    ("a puppy barking", 0),
    ("football match goals", 4),
]
SPACE = {"dim": 384, "metric": "COSINE", "normalize": True, "pooling": "mean"}


def register(server, d, space=SPACE):
    name = "minilm_" + uuid.uuid4().hex[:8]
    ok(server, "POST", "/v1/models", {"name": name})
    ok(server, "POST", f"/v1/models/{name}/versions", {"source_path": d, "space": space})
    return name


def schema_with_function(model_ref, provider="quiver"):
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("text", DataType.VARCHAR, max_length=1000)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=384)
    params = {"model_name": model_ref}
    if provider:
        params["provider"] = provider
    schema.add_function(
        Function(
            name="embed_text",
            function_type=FunctionType.TEXTEMBEDDING,
            input_field_names=["text"],
            output_field_names=["vec"],
            params=params,
        )
    )
    return schema


def embed(server, model, version, texts, role):
    out = ok(server, "POST", f"/v1/models/{model}/versions/{version}/embed", {"inputs": texts, "role": role})
    return np.array(out["vectors"], dtype=np.float32)


def test_insert_text_and_search_with_text(own_server, minilm_dir):
    s = own_server
    model = register(s, minilm_dir)
    ok(s, "PUT", f"/v1/models/{model}/aliases/prod", {"version": 1})
    c = MilvusClient(uri=s.uri)
    coll = "docs_" + uuid.uuid4().hex[:8]
    index = c.prepare_index_params()
    index.add_index("vec", index_type="HNSW", metric_type="COSINE")
    c.create_collection(coll, schema=schema_with_function(f"{model}@prod"), index_params=index)

    # The collection describes the function, and pymilvus sees the output field as computed.
    desc = c.describe_collection(coll)
    fn = desc["functions"][0]
    assert fn["type"] == FunctionType.TEXTEMBEDDING and fn["output_field_names"] == ["vec"]
    # Creating it bound the output field to the version the alias named.
    binding = ok(s, "GET", f"/v1/collections/{coll}/fields/vec/model")
    assert (binding["model"], binding["version"]) == (model, 1)

    rows = [{"id": i, "text": t, "topic": i % 2} for i, t in enumerate(DOCS)]
    assert c.insert(coll, rows)["insert_count"] == len(DOCS)

    # Stored vectors are the model's document embeddings of the text.
    got = c.get(coll, ids=list(range(len(DOCS))), output_fields=["vec", "text"])
    stored = np.array([r["vec"] for r in sorted(got, key=lambda r: r["id"])], dtype=np.float32)
    want = embed(s, model, 1, DOCS, "document")
    assert np.min(np.sum(stored * want, axis=1)) > 0.9999

    res = c.search(coll, data=[q for q, _ in QUERIES], anns_field="vec", limit=3, output_fields=["text"])
    assert [hits[0]["id"] for hits in res] == [want_id for _, want_id in QUERIES]
    assert res[0][0]["entity"]["text"] == DOCS[2]
    # A text query scores like its own embedding as a vector query.
    qv = embed(s, model, 1, [QUERIES[0][0]], "query")
    by_vec = c.search(coll, data=qv.tolist(), anns_field="vec", limit=3)
    assert [h["id"] for h in by_vec[0]] == [h["id"] for h in res[0]]
    assert abs(by_vec[0][0]["distance"] - res[0][0]["distance"]) < 1e-4
    # With a filter, and without naming the field (the function's output is the default).
    res = c.search(coll, data=["a puppy barking"], filter="topic == 1", limit=2)
    assert all(h["id"] % 2 == 1 for h in res[0])

    # A hybrid search mixes a text sub-request with a vector one.
    from pymilvus import AnnSearchRequest, RRFRanker

    reqs = [
        AnnSearchRequest(data=["football match goals"], anns_field="vec", param={}, limit=3),
        AnnSearchRequest(data=embed(s, model, 1, ["football match goals"], "query").tolist(), anns_field="vec", param={}, limit=3),
    ]
    res = c.hybrid_search(coll, reqs, RRFRanker(), limit=1)
    assert res[0][0]["id"] == 4

    # Upsert re-embeds the new text.
    c.upsert(coll, [{"id": 1, "text": "a cat sleeps on the warm windowsill"}])
    res = c.search(coll, data=["sleeping kitten"], limit=1)
    assert res[0][0]["id"] == 1

    # Moving the model alias later does not change what the field's function runs: the binding
    # holds version 1, so a new row is still embedded by version 1.
    ok(s, "POST", f"/v1/models/{model}/versions", {"source_path": minilm_dir, "space": dict(SPACE, document_prefix="passage: ")})
    ok(s, "PUT", f"/v1/models/{model}/aliases/prod", {"version": 2})
    c.insert(coll, [{"id": 100, "text": "a new row after the alias moved"}])
    v100 = np.array(c.get(coll, ids=[100], output_fields=["vec"])[0]["vec"], dtype=np.float32)
    v1 = embed(s, model, 1, ["a new row after the alias moved"], "document")[0]
    v2 = embed(s, model, 2, ["a new row after the alias moved"], "document")[0]
    assert float(v100 @ v1) > 0.9999 and float(v100 @ v2) < 0.999

    # Survives a restart: the WAL holds the vectors and the encoder reloads from the registry.
    c.close()
    s.restart()
    c = MilvusClient(uri=s.uri)
    res = c.search(coll, data=["which instrument has strings and a bow"], limit=1)
    assert res[0][0]["id"] == 2
    c.close()


def test_function_errors(server, minilm_dir):
    s = server
    model = register(s, minilm_dir)
    c = MilvusClient(uri=s.uri)
    # External providers, unknown models and malformed references are refused at create time.
    for ref, provider, needle in [
        (f"{model}@1", "openai", "provider"),
        (f"{model}@7", "quiver", "7"),
        (f"{model}@nosuchalias", "quiver", "nosuchalias"),
        ("nosuchmodel@1", None, "nosuchmodel"),
        (model, "quiver", "name@version"),
    ]:
        coll = "bad_" + uuid.uuid4().hex[:8]
        with pytest.raises(MilvusException) as e:
            c.create_collection(coll, schema=schema_with_function(ref, provider))
        assert needle in str(e.value), (ref, str(e.value))
        assert not c.has_collection(coll)

    # A TextEmbedding and a BM25 function over the same text: one insert fills both fields.
    schema = MilvusClient.create_schema()
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("text", DataType.VARCHAR, max_length=1000, enable_analyzer=True)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=384)
    schema.add_function(Function("bm25", FunctionType.BM25, ["text"], ["sparse"]))
    schema.add_function(Function("embed", FunctionType.TEXTEMBEDDING, ["text"], ["vec"],
                                 params={"provider": "quiver", "model_name": f"{model}@1"}))
    both = "both_" + uuid.uuid4().hex[:8]
    c.create_collection(both, schema=schema)
    c.insert(both, [{"id": i, "text": t} for i, t in enumerate(DOCS)])
    lexical = c.search(both, data=["violin string instrument"], anns_field="sparse", limit=1)
    dense = c.search(both, data=["which instrument has strings and a bow"], anns_field="vec", limit=1)
    assert lexical[0][0]["id"] == 2 and dense[0][0]["id"] == 2

    coll = "ok_" + uuid.uuid4().hex[:8]
    c.create_collection(coll, schema=schema_with_function(f"{model}@1"))
    # Writing the computed field is refused with Milvus's invalid-parameter code.
    from pymilvus.grpc_gen import milvus_pb2, schema_pb2

    fields = [
        schema_pb2.FieldData(field_name="id", type=DataType.INT64, scalars=schema_pb2.ScalarField(long_data=schema_pb2.LongArray(data=[1]))),
        schema_pb2.FieldData(field_name="text", type=DataType.VARCHAR, scalars=schema_pb2.ScalarField(string_data=schema_pb2.StringArray(data=["x"]))),
        schema_pb2.FieldData(field_name="vec", type=DataType.FLOAT_VECTOR, vectors=schema_pb2.VectorField(dim=384, float_vector=schema_pb2.FloatArray(data=[0.1] * 384))),
    ]
    req = milvus_pb2.InsertRequest(collection_name=coll, fields_data=fields, num_rows=1)
    resp = raw(s, "Insert", req, milvus_pb2.MutationResult)
    assert resp.status.code == 1100 and "output of function" in resp.status.reason
    # Text without the input field, and text queries against a field without a function.
    with pytest.raises(MilvusException):
        c.insert(coll, [{"id": 2}])
    plain = "plain_" + uuid.uuid4().hex[:8]
    c.create_collection(plain, dimension=384)
    with pytest.raises(MilvusException) as e:
        c.search(plain, data=["some text"], limit=1)
    assert "TextEmbedding" in str(e.value)
    assert c.query(coll, filter="id >= 0", output_fields=["count(*)"])[0]["count(*)"] == 0
    c.close()


def test_rest_v2_text_rows_and_text_search(server, minilm_dir):
    s = server
    model = register(s, minilm_dir)
    coll = "rest_" + uuid.uuid4().hex[:8]
    c = MilvusClient(uri=s.uri)
    c.create_collection(coll, schema=schema_with_function(f"{model}@1"))
    c.close()

    def v2(action, body):
        status, out = call(s, "POST", f"/v2/vectordb/entities/{action}", dict(body, collectionName=coll))
        assert status == 200 and out.get("code", 0) == 0, out
        return out

    v2("insert", {"data": [{"id": i, "text": t} for i, t in enumerate(DOCS)]})
    out = v2("search", {"data": ["the central bank raised borrowing costs"], "annsField": "vec", "limit": 2, "outputFields": ["text"]})
    assert int(out["data"][0]["id"]) == 1 and out["data"][0]["text"] == DOCS[1]


def test_wn_gloss_texts_embed_to_the_published_vectors(server, minilm_dir):
    """Rows inserted as text hold the sentence-transformers vectors of those texts."""
    root = datasets_dir()
    if root is None:
        pytest.skip("shared/datasets is not here")
    texts = (root / "wn-gloss/texts_base.txt").read_text().splitlines()[:300:10]
    stored = np.fromfile(root / "wn-gloss/base.f16", dtype="<f2", count=384 * 300).astype(np.float32).reshape(300, 384)[::10]
    model = register(server, minilm_dir)
    coll = "gloss_" + uuid.uuid4().hex[:8]
    c = MilvusClient(uri=server.uri)
    c.create_collection(coll, schema=schema_with_function(f"{model}@1"))
    c.insert(coll, [{"id": i, "text": t} for i, t in enumerate(texts)])
    got = c.query(coll, filter="id >= 0", output_fields=["vec"], limit=100)
    vecs = np.array([r["vec"] for r in sorted(got, key=lambda r: r["id"])], dtype=np.float32)
    cos = np.sum(vecs * stored, axis=1) / np.linalg.norm(stored, axis=1)
    assert cos.min() >= 0.999, cos.min()
    c.close()
