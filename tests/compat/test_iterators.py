"""Query and search iterators, end to end through pymilvus 2.5.18.

- `query_iterator` pages by primary key (`pk > last` filters): every row once, in key order.
- `MilvusClient.search_iterator` uses search iterator v2 (the server answers with a token and
  the last bound): the pages, put together, must equal one big search, hit for hit, including
  hits with equal scores (ordered by key).
- pymilvus's ORM `Collection.search_iterator` is the v1 iterator (range search + `pk not in`
  filters): same expectation.
"""

import numpy as np
import pytest
from pymilvus import Collection, MilvusClient
from pymilvus.client.search_iterator import SearchIteratorV2
from pymilvus.grpc_gen import common_pb2, milvus_pb2

DIM = 4


def drain(it, max_pages=1000):
    pages = []
    for _ in range(max_pages):
        page = it.next()
        if page is None or len(page) == 0:  # v2 answers None once its limit is reached
            it.close()
            return pages
        pages.append(list(page))
    raise AssertionError("the iterator did not end")


def hits(pages):
    return [(h.id, h.distance) for p in pages for h in p]


@pytest.fixture(scope="module")
def vectors(server):
    """150 rows with random vectors (distinct distances) and a dynamic `tag`, and the module's
    one client (clients of one URI share a connection: closing any closes all)."""
    client = MilvusClient(uri=server.uri)
    name = "iter_" + str(server.port)
    client.create_collection(name, dimension=DIM, metric_type="L2")
    rng = np.random.default_rng(11)
    vecs = rng.random((150, DIM), dtype=np.float32)
    client.insert(
        name,
        [{"id": i, "vector": vecs[i].tolist(), "tag": "xy"[i % 3 == 0]} for i in range(150)],
    )
    yield client, name, vecs
    client.drop_collection(name)
    client.close()


Q = [0.3, 0.6, 0.1, 0.8]


def full_search(client, name, limit, **kw):
    res = client.search(name, [Q], limit=limit, search_params={"metric_type": "L2"}, **kw)
    return [(h["id"], h["distance"]) for h in res[0]]


def test_search_iterator_v2_pages_equal_one_search(vectors):
    client, name, vecs = vectors
    want = full_search(client, name, 150)
    # the reference itself is right: squared L2, ascending
    d = ((vecs.astype(np.float64) - np.array(Q)) ** 2).sum(axis=1)
    assert [pk for pk, _ in want] == sorted(range(150), key=lambda i: (d[i], i))
    it = client.search_iterator(name, [Q], batch_size=16, search_params={"metric_type": "L2"})
    assert isinstance(it, SearchIteratorV2)
    pages = drain(it)
    assert [len(p) for p in pages] == [16] * 9 + [6]
    got = hits(pages)
    assert [pk for pk, _ in got] == [pk for pk, _ in want]
    assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-6)


def test_search_iterator_v2_filter_limit_output(vectors):
    client, name, _ = vectors
    want = full_search(client, name, 100, filter='tag == "y"')
    assert len(want) == 50
    it = client.search_iterator(
        name,
        [Q],
        batch_size=10,
        filter='tag == "y"',
        limit=23,
        output_fields=["tag"],
        search_params={"metric_type": "L2"},
    )
    pages = drain(it)
    assert [len(p) for p in pages] == [10, 10, 3]
    assert [pk for pk, _ in hits(pages)] == [pk for pk, _ in want[:23]]
    assert all(h["entity"]["tag"] == "y" for p in pages for h in p)


def test_search_iterator_v2_within_a_range(vectors):
    client, name, _ = vectors
    want = full_search(client, name, 150)
    radius = want[40][1]  # keep d < radius: exactly the first 40 hits
    it = client.search_iterator(
        name, [Q], batch_size=7, search_params={"metric_type": "L2", "params": {"radius": radius}}
    )
    got = hits(drain(it))
    assert [pk for pk, _ in got] == [pk for pk, _ in want[:40]]


@pytest.mark.parametrize("sealed", [False, True])
def test_search_iterator_v2_ties_are_neither_lost_nor_repeated(vectors, name, sealed):
    client = vectors[0]
    client.create_collection(name, dimension=3)  # COSINE
    rng = np.random.default_rng(3)
    distinct = rng.random((5, 3), dtype=np.float32)
    ids = rng.permutation(np.arange(100, 135)).tolist()  # 35 rows: 5 vectors, 7 copies each
    client.insert(name, [{"id": pk, "vector": distinct[j % 5].tolist()} for j, pk in enumerate(ids)])
    if sealed:
        client.flush(name)
    res = client.search(name, [[0.5, 0.2, 0.9]], limit=35)
    want = [h["id"] for h in res[0]]
    scores = [h["distance"] for h in res[0]]
    assert sorted(want) == sorted(ids) and len(set(scores)) == 5
    # equal scores come in key order
    assert want == sorted(want, key=lambda pk: (-scores[want.index(pk)], pk))
    it = client.search_iterator(name, [[0.5, 0.2, 0.9]], batch_size=4)
    assert isinstance(it, SearchIteratorV2)
    got = [pk for pk, _ in hits(drain(it))]
    assert got == want
    client.drop_collection(name)


def test_search_iterator_v1_orm(vectors, orm):
    client, name, _ = vectors
    want = full_search(client, name, 150)
    # the ORM Collection on its own ORM alias (`connections.connect(alias=..., uri=...)` gets its
    # own handler; MilvusClient's private `_using` is no ORM alias in pymilvus 3.x)
    coll = Collection(name, using=orm)
    it = coll.search_iterator(
        data=[Q],
        anns_field="vector",
        param={"metric_type": "L2", "params": {}},
        batch_size=9,
        limit=60,
        output_fields=["tag"],
    )
    assert type(it).__name__ == "SearchIterator"
    pages = drain(it)
    assert sum(len(p) for p in pages) == 60
    assert [pk for pk, _ in hits(pages)] == [pk for pk, _ in want[:60]]
    assert all(h.entity.get("tag") == "xy"[h.id % 3 == 0] for p in pages for h in p)


def test_search_iterator_v2_wire_fields(server, vectors):
    """The v2 fields themselves: a token, and the last score as the bound."""
    import grpc

    client, name, _ = vectors
    want = full_search(client, name, 10)
    ph = common_pb2.PlaceholderGroup(
        placeholders=[
            common_pb2.PlaceholderValue(
                tag="$0", type=101, values=[np.array(Q, dtype="<f4").tobytes()]
            )
        ]
    )

    def page(extra):
        params = {"topk": "5", "iterator": "True", "search_iter_v2": "True", **extra}
        req = milvus_pb2.SearchRequest(
            collection_name=name,
            placeholder_group=ph.SerializeToString(),
            dsl_type=1,
            nq=1,
            search_params=[common_pb2.KeyValuePair(key=k, value=v) for k, v in params.items()],
        )
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        try:
            r = channel.unary_unary(
                "/milvus.proto.milvus.MilvusService/Search",
                request_serializer=req.SerializeToString,
                response_deserializer=milvus_pb2.SearchResults.FromString,
            )(req, timeout=10)
        finally:
            channel.close()
        assert r.status.code == 0, r.status.reason
        return r.results

    first = page({})
    info = first.search_iterator_v2_results
    assert info.token != ""
    assert list(first.ids.int_id.data) == [pk for pk, _ in want[:5]]
    assert info.last_bound == first.scores[-1]
    second = page({"search_iter_id": info.token, "search_iter_last_bound": repr(info.last_bound)})
    assert second.search_iterator_v2_results.token == info.token
    assert list(second.ids.int_id.data) == [pk for pk, _ in want[5:10]]
    # no iterator params: a plain search, without v2 fields
    plain = client.search(name, [Q], limit=3)
    assert [h["id"] for h in plain[0]] == [pk for pk, _ in want[:3]]


def test_query_iterator_int_keys(vectors):
    client, name, _ = vectors
    it = client.query_iterator(name, batch_size=40, output_fields=["tag"])
    pages = drain(it)
    assert [len(p) for p in pages] == [40, 40, 40, 30]
    rows = [r for p in pages for r in p]
    assert [r["id"] for r in rows] == list(range(150))
    assert all(r["tag"] == "xy"[r["id"] % 3 == 0] for r in rows)
    it = client.query_iterator(name, batch_size=20, filter='tag == "y"', limit=45)
    pages = drain(it)
    assert [len(p) for p in pages] == [20, 20, 5]
    assert [r["id"] for p in pages for r in p] == [i for i in range(150) if i % 3 == 0][:45]
    it = client.query_iterator(name, batch_size=20, filter='tag == "y"')
    assert [len(p) for p in drain(it)] == [20, 20, 10]
    it = client.query_iterator(name, batch_size=25, offset=140)
    assert [r["id"] for p in drain(it) for r in p] == list(range(140, 150))


def test_query_iterator_varchar_keys(vectors, name):
    from pymilvus import DataType

    client = vectors[0]
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=16)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    idx = client.prepare_index_params()
    idx.add_index("v", metric_type="L2")
    client.create_collection(name, schema=schema, index_params=idx)
    keys = [f"k{i:03d}" for i in range(97)]
    client.insert(name, [{"pk": k, "v": [float(i), 1.0]} for i, k in enumerate(reversed(keys))])
    pages = drain(client.query_iterator(name, batch_size=30, output_fields=["pk"]))
    assert [len(p) for p in pages] == [30, 30, 30, 7]
    assert [r["pk"] for p in pages for r in p] == keys
    client.drop_collection(name)
