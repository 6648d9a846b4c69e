"""pymilvus MilvusClient quick start against Quiver: create, insert (with dynamic fields),
search, query, get, delete, upsert, count(*), stats, indexes and the load lifecycle."""

import numpy as np
import pytest

DIM = 8


def vectors(n, seed=7):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, DIM)).astype(np.float32)


def cosine_topk(data, ids, q, k):
    d = data / np.linalg.norm(data, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q)
    scores = d @ qn
    order = sorted(range(len(ids)), key=lambda i: (-scores[i], ids[i]))[:k]
    return [ids[i] for i in order], [float(scores[i]) for i in order]


COLORS = ["red", "green", "blue"]


@pytest.fixture
def quick(client, name):
    client.create_collection(name, dimension=DIM)
    data = vectors(30)
    rows = [
        {"id": i, "vector": data[i].tolist(), "color": COLORS[i % 3], "n": i * 10}
        for i in range(30)
    ]
    res = client.insert(name, rows)
    assert res["insert_count"] == 30
    assert list(res["ids"]) == list(range(30))
    yield name, data
    client.drop_collection(name)


def test_create_describe_and_lifecycle(client, name):
    client.create_collection(name, dimension=DIM)
    assert client.has_collection(name)
    assert name in client.list_collections()
    desc = client.describe_collection(name)
    assert desc["collection_name"] == name
    assert desc["enable_dynamic_field"] is True
    fields = {f["name"]: f for f in desc["fields"]}
    assert set(fields) == {"id", "vector"}
    assert fields["id"]["is_primary"] is True
    assert fields["vector"]["params"]["dim"] == DIM
    assert client.get_load_state(name)["state"].name == "Loaded"
    idx = client.list_indexes(name)
    assert idx == ["vector"]
    info = client.describe_index(name, "vector")
    assert info["index_type"] == "AUTOINDEX"
    assert info["metric_type"] == "COSINE"
    assert info["state"] == "Finished"
    client.release_collection(name)
    assert client.get_load_state(name)["state"].name == "NotLoad"
    client.load_collection(name)
    assert client.get_load_state(name)["state"].name == "Loaded"
    client.drop_collection(name)
    assert not client.has_collection(name)


def test_search_matches_brute_force(client, quick):
    name, data = quick
    q = vectors(2, seed=99)
    res = client.search(name, data=q.tolist(), limit=5, output_fields=["color", "n"])
    assert len(res) == 2
    ids = list(range(30))
    for qi in range(2):
        want_ids, want_scores = cosine_topk(data, ids, q[qi], 5)
        got = res[qi]
        assert [h["id"] for h in got] == want_ids
        assert np.allclose([h["distance"] for h in got], want_scores, atol=1e-5)
        for h in got:
            assert h["entity"]["color"] == COLORS[h["id"] % 3]
            assert h["entity"]["n"] == h["id"] * 10


def test_search_with_filter_on_dynamic_field(client, quick):
    name, data = quick
    q = vectors(1, seed=5)[0]
    res = client.search(
        name, data=[q.tolist()], limit=4, filter='color == "red"', output_fields=["color"]
    )
    red = [i for i in range(30) if i % 3 == 0]
    want_ids, want_scores = cosine_topk(data[red], red, q, 4)
    assert [h["id"] for h in res[0]] == want_ids
    assert np.allclose([h["distance"] for h in res[0]], want_scores, atol=1e-5)
    assert all(h["entity"] == {"color": "red"} for h in res[0])


def test_query_get_and_count(client, quick):
    name, data = quick
    rows = client.query(name, filter="id in [3, 1, 2]", output_fields=["id", "color", "vector"])
    assert [r["id"] for r in sorted(rows, key=lambda r: r["id"])] == [1, 2, 3]
    by_id = {r["id"]: r for r in rows}
    assert by_id[2]["color"] == "blue"
    assert np.allclose(by_id[2]["vector"], data[2], atol=1e-6)

    got = client.get(name, ids=[4, 5, 999])
    assert sorted(r["id"] for r in got) == [4, 5]
    assert {r["id"]: r["n"] for r in got} == {4: 40, 5: 50}

    assert client.query(name, filter="", output_fields=["count(*)"]) == [{"count(*)": 30}]
    assert client.query(name, filter="n >= 100", output_fields=["count(*)"])[0]["count(*)"] == 20

    rows = client.query(name, filter="n < 50", output_fields=["id"], limit=2, offset=1)
    assert [r["id"] for r in rows] == [1, 2]
    assert client.query(name, filter="id > 1000", output_fields=["color"]) == []

    everything = client.query(name, filter="id == 7", output_fields=["*"])
    assert len(everything) == 1
    assert everything[0]["color"] == "green" and everything[0]["n"] == 70
    assert set(everything[0]) == {"id", "vector", "color", "n"}


def test_delete_upsert_and_stats(client, quick):
    name, _ = quick
    res = client.delete(name, ids=[0, 1, 2])
    assert res["delete_count"] == 3
    res = client.delete(name, filter='color == "blue"')
    # blue: 5, 8, ..., 29 (2 was already deleted)
    assert res["delete_count"] == 9
    assert client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"] == 18
    assert client.get(name, ids=[0, 1, 2, 5]) == []

    v = [1.0] + [0.0] * (DIM - 1)
    res = client.upsert(name, [{"id": 3, "vector": v, "color": "pink"}, {"id": 100, "vector": v}])
    assert res["upsert_count"] == 2
    rows = client.get(name, ids=[3, 100], output_fields=["color", "vector"])
    by_id = {r["id"]: r for r in rows}
    assert by_id[3]["color"] == "pink"
    assert "n" not in by_id[3]  # upsert replaces the whole row
    assert np.allclose(by_id[100]["vector"], v)
    client.flush(name)
    assert client.get_collection_stats(name)["row_count"] == 19
    hit = client.search(name, data=[v], limit=2)[0]
    assert sorted(h["id"] for h in hit) == [3, 100]
    assert all(abs(h["distance"] - 1.0) < 1e-6 for h in hit)


def test_range_search_and_offset(client, quick):
    name, data = quick
    q = data[0]
    full = client.search(name, data=[q.tolist()], limit=10)[0]
    paged = client.search(name, data=[q.tolist()], limit=5, offset=5)[0]
    assert [h["id"] for h in paged] == [h["id"] for h in full[5:10]]
    assert full[0]["id"] == 0 and abs(full[0]["distance"] - 1.0) < 1e-5
    lo, hi = full[6]["distance"], full[1]["distance"]
    ranged = client.search(
        name, data=[q.tolist()], limit=10, search_params={"params": {"radius": lo, "range_filter": hi}}
    )[0]
    # COSINE keeps radius < d <= range_filter
    assert [h["id"] for h in ranged] == [h["id"] for h in full[1:6]]


def test_index_drop_and_recreate(client, quick):
    name, _ = quick
    client.release_collection(name)
    client.drop_index(name, "vector")
    assert client.list_indexes(name) == []
    params = client.prepare_index_params()
    params.add_index("vector", index_type="HNSW", metric_type="L2", params={"M": 16, "efConstruction": 64})
    client.create_index(name, params)
    info = client.describe_index(name, "vector")
    assert info["index_type"] == "HNSW" and info["metric_type"] == "L2"
    assert info["params"] == {"M": 16, "efConstruction": 64}
    assert info["total_rows"] == 30 and info["indexed_rows"] == 30
    client.load_collection(name)
    res = client.search(name, data=[[0.0] * DIM], limit=1, search_params={"metric_type": "L2"})
    assert len(res[0]) == 1
