"""Approximate indexes through pymilvus: a real background build on a sealed segment, the
client's wait for it, recall against numpy brute force, filtered search, Milvus's errors for
out-of-range parameters, and the index surviving a restart."""

import numpy as np
import pytest
from pymilvus import DataType, MilvusClient, MilvusException

DIM = 32
N = 4000


def clustered(n, seed):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(7).uniform(-1, 1, (40, DIM))
    return (centres[rng.integers(0, 40, n)] + 0.25 * rng.uniform(-1, 1, (n, DIM))).astype(np.float32)


def brute_l2(base, ids, q, k):
    d = ((base - q) ** 2).sum(axis=1)
    order = np.lexsort((ids, d))[:k]
    return [int(ids[i]) for i in order]


def make_collection(client, name, index_type, metric, params):
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("bucket", DataType.INT64)
    client.create_collection(name, schema=schema)
    base = clustered(N, 1)
    rows = [{"id": i, "vec": base[i].tolist(), "bucket": i % 10} for i in range(N)]
    for s in range(0, N, 1000):
        client.insert(name, rows[s : s + 1000])
    client.flush(name)  # seals the segment the index is built on
    ip = client.prepare_index_params()
    ip.add_index("vec", index_type=index_type, metric_type=metric, params=params)
    client.create_index(name, ip)  # pymilvus waits until the state is Finished
    client.load_collection(name)
    return base


def recall(client, name, base, filter_fn, expr, search_params, nq=30):
    ids = np.arange(N)
    keep = np.array([filter_fn(i) for i in ids])
    qs = clustered(nq, 99)
    res = client.search(
        name,
        data=qs.tolist(),
        limit=10,
        filter=expr,
        output_fields=["bucket"],
        search_params={"metric_type": "L2", "params": search_params},
    )
    total = 0.0
    for q, hits in zip(qs, res):
        got = [h["id"] for h in hits]
        assert all(filter_fn(h["id"]) and h["entity"]["bucket"] == h["id"] % 10 for h in hits)
        want = brute_l2(base[keep], ids[keep], q, 10)
        total += len(set(got) & set(want)) / len(want)
    return total / nq


def test_hnsw_build_wait_recall_and_filters(client, name):
    base = make_collection(client, name, "HNSW", "L2", {"M": 16, "efConstruction": 100})
    info = client.describe_index(name, "vec")
    assert info["index_type"] == "HNSW" and info["state"] == "Finished"
    assert info["indexed_rows"] == N and info["total_rows"] == N and info["pending_index_rows"] == 0
    assert recall(client, name, base, lambda i: True, "", {}) >= 0.95
    assert recall(client, name, base, lambda i: True, "", {"ef": 200}) >= 0.98
    for expr, fn in [
        ("id < 40", lambda i: i < 40),  # 1%
        ("bucket == 3", lambda i: i % 10 == 3),  # 10%
        ("bucket < 5", lambda i: i % 10 < 5),  # 50%
    ]:
        assert recall(client, name, base, fn, expr, {}) >= 0.95, expr


@pytest.mark.parametrize(
    "index_type,params,search_params",
    [
        ("IVF_FLAT", {"nlist": 32}, {"nprobe": 16}),
        ("IVF_SQ8", {"nlist": 32}, {"nprobe": 16, "refine_k": 2}),
        ("IVF_PQ", {"nlist": 32, "m": 8, "nbits": 8}, {"nprobe": 16, "refine_k": 4}),
    ],
)
def test_ivf_indexes(client, name, index_type, params, search_params):
    base = make_collection(client, name, index_type, "L2", params)
    assert client.describe_index(name, "vec")["index_type"] == index_type
    assert recall(client, name, base, lambda i: True, "", search_params) >= 0.9


def test_out_of_range_parameters_get_milvus_errors(client, name):
    make_collection(client, name, "IVF_FLAT", "L2", {"nlist": 16})
    q = [[0.0] * DIM]
    for bad in [{"nprobe": 0}, {"nprobe": 17}, {"nprobe": "x"}]:
        with pytest.raises(MilvusException) as e:
            client.search(name, data=q, limit=3, search_params={"metric_type": "L2", "params": bad})
        assert e.value.code == 1100 and "nprobe" in e.value.message, (bad, e.value)
    with pytest.raises(MilvusException) as e:
        client.search(name, data=q, limit=3, search_params={"metric_type": "IP"})
    assert "metric type not match" in e.value.message
    other = name + "_b"
    client.create_collection(other, dimension=DIM)
    client.release_collection(other)
    client.drop_index(other, "vector")
    # (pymilvus drops falsy values such as 0 before sending them.)
    for params, word in [({"M": 1}, "M"), ({"efConstruction": -1}, "efConstruction")]:
        ip = client.prepare_index_params()
        ip.add_index("vector", index_type="HNSW", metric_type="L2", params=params)
        with pytest.raises(MilvusException) as e:
            client.create_index(other, ip)
        assert e.value.code == 1100 and word in e.value.message, e.value
    ip = client.prepare_index_params()
    ip.add_index("vector", index_type="IVF_PQ", metric_type="L2", params={"m": 7})
    with pytest.raises(MilvusException) as e:
        client.create_index(other, ip)
    assert "divisor of dim" in e.value.message


def test_index_survives_restart(own_server):
    from pymilvus import MilvusClient as C

    c = C(uri=own_server.uri)
    base = make_collection(c, "kept", "HNSW", "L2", {"M": 16, "efConstruction": 100})
    qs = clustered(30, 99).tolist()
    sp = {"metric_type": "L2", "params": {"ef": 64}}

    def hits(client):
        return [[h["id"] for h in r] for r in client.search("kept", data=qs, limit=10, search_params=sp)]

    before = hits(c)
    assert recall(c, "kept", base, lambda i: True, "", {"ef": 128}) >= 0.95
    c.close()
    own_server.restart()
    c = C(uri=own_server.uri)
    info = c.describe_index("kept", "vec")
    assert info["state"] == "Finished" and info["indexed_rows"] == N
    assert "index build started" not in own_server.log().split("shutting down")[-1]
    # The graph read back is the graph that was built: the same approximate answers, hit for hit
    # (a rebuilt graph would differ, since the build inserts in parallel).
    assert hits(c) == before
    assert recall(c, "kept", base, lambda i: True, "", {"ef": 128}) >= 0.95
    c.close()
