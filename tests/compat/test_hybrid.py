"""HybridSearch through pymilvus: RRF and weighted fusion checked against a numpy reference.

The collection has two vector fields, `a` (L2) and `b` (IP). Each sub-search is ranked in
float64 by numpy; fusion follows Milvus: RRF sums 1/(k + rank) (rank from 1), the weighted
ranker sums weight * score, with scores first normalised to [0, 1] (norm_score, the default):
L2 -> 1 - 2*atan(d)/pi, IP -> 0.5 + atan(s)/pi. Ties (none here) would go to the smaller key.
"""

import math

import numpy as np
import pytest
from pymilvus import AnnSearchRequest, DataType, MilvusClient, MilvusException, RRFRanker, WeightedRanker

N = 60


@pytest.fixture(scope="module")
def coll(server):
    client = MilvusClient(uri=server.uri)
    name = "hybrid_" + str(server.port)
    rng = np.random.default_rng(7)
    a = rng.random((N, 3), dtype=np.float32)
    b = rng.random((N, 3), dtype=np.float32) - 0.5
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("a", DataType.FLOAT_VECTOR, dim=3)
    schema.add_field("b", DataType.FLOAT_VECTOR, dim=3)
    schema.add_field("tag", DataType.VARCHAR, max_length=8)
    schema.add_field("n", DataType.INT64)
    idx = client.prepare_index_params()
    idx.add_index("a", metric_type="L2")
    idx.add_index("b", metric_type="IP")
    client.create_collection(name, schema=schema, index_params=idx)
    client.create_partition(name, "p1")
    rows = [
        {"id": i, "a": a[i].tolist(), "b": b[i].tolist(), "tag": "ab"[i % 2], "n": i * 10}
        for i in range(N)
    ]
    client.insert(name, rows[: N // 2])
    client.insert(name, rows[N // 2 :], partition_name="p1")
    yield client, name, a.astype(np.float64), b.astype(np.float64)
    client.drop_collection(name)
    client.close()


Q_A = [[0.2, 0.4, 0.6], [0.9, 0.1, 0.3]]
Q_B = [[0.3, -0.2, 0.1], [-0.4, 0.4, 0.2]]


def ranked(scores, ids, larger_first, limit):
    order = sorted(ids, key=lambda i: (-scores[i] if larger_first else scores[i], i))
    return [(i, scores[i]) for i in order[:limit]]


def sub_results(a, b, qa, qb, limit_a, limit_b, ids=range(N)):
    la = ((a - np.array(qa)) ** 2).sum(axis=1)
    ib = b @ np.array(qb)
    return ranked(la, list(ids), False, limit_a), ranked(ib, list(ids), True, limit_b)


def fuse(lists, per_hit, limit, offset=0):
    acc = {}
    for si, hits in enumerate(lists):
        for rank, (pk, score) in enumerate(hits):
            acc[pk] = acc.get(pk, 0.0) + per_hit(si, rank, score)
    order = sorted(acc, key=lambda pk: (-acc[pk], pk))
    return [(pk, acc[pk]) for pk in order[offset : offset + limit]]


def check(got, want):
    assert [h["id"] for h in got] == [pk for pk, _ in want]
    for h, (_, score) in zip(got, want):
        assert h["distance"] == pytest.approx(score, abs=1e-5)


def test_rrf(coll):
    client, name, a, b = coll
    reqs = [
        AnnSearchRequest(data=Q_A, anns_field="a", param={"metric_type": "L2"}, limit=8),
        AnnSearchRequest(data=Q_B, anns_field="b", param={"metric_type": "IP"}, limit=5),
    ]
    res = client.hybrid_search(name, reqs, RRFRanker(10), limit=6, output_fields=["tag", "n"])
    assert len(res) == 2
    for q in range(2):
        la, lb = sub_results(a, b, Q_A[q], Q_B[q], 8, 5)
        want = fuse([la, lb], lambda si, rank, s: 1.0 / (10 + rank + 1), 6)
        check(res[q], want)
        for h in res[q]:
            assert h["entity"] == {"tag": "ab"[h["id"] % 2], "n": h["id"] * 10}
    # k defaults to 60
    res = client.hybrid_search(name, reqs, RRFRanker(), limit=4)
    la, lb = sub_results(a, b, Q_A[0], Q_B[0], 8, 5)
    check(res[0], fuse([la, lb], lambda si, rank, s: 1.0 / (60 + rank + 1), 4))


def test_weighted_normalised_and_raw(coll):
    client, name, a, b = coll
    reqs = [
        AnnSearchRequest(data=Q_A[:1], anns_field="a", param={}, limit=10),
        AnnSearchRequest(data=Q_B[:1], anns_field="b", param={}, limit=10),
    ]
    la, lb = sub_results(a, b, Q_A[0], Q_B[0], 10, 10)
    weights = [0.7, 0.3]

    def norm(si, rank, s):
        n = 1 - 2 * math.atan(s) / math.pi if si == 0 else 0.5 + math.atan(s) / math.pi
        return weights[si] * n

    res = client.hybrid_search(name, reqs, WeightedRanker(0.7, 0.3), limit=7)
    check(res[0], fuse([la, lb], norm, 7))
    res = client.hybrid_search(name, reqs, WeightedRanker(0.7, 0.3, norm_score=False), limit=7)
    check(res[0], fuse([la, lb], lambda si, rank, s: weights[si] * s, 7))


def test_offset_round_decimal_filters_and_partitions(coll):
    client, name, a, b = coll
    reqs = [
        AnnSearchRequest(data=Q_A[:1], anns_field="a", param={}, limit=10, expr="tag == 'a'"),
        AnnSearchRequest(data=Q_B[:1], anns_field="b", param={}, limit=10, expr="n >= 100"),
    ]
    ids_a = [i for i in range(N) if i % 2 == 0]
    ids_b = [i for i in range(N) if i * 10 >= 100]
    la, _ = sub_results(a, b, Q_A[0], Q_B[0], 10, 10, ids_a)
    _, lb = sub_results(a, b, Q_A[0], Q_B[0], 10, 10, ids_b)
    rrf = lambda si, rank, s: 1.0 / (60 + rank + 1)  # noqa: E731
    full = fuse([la, lb], rrf, 20)
    res = client.hybrid_search(name, reqs, RRFRanker(), limit=5, offset=3, round_decimal=3)
    assert [h["id"] for h in res[0]] == [pk for pk, _ in full[3:8]]
    assert [h["distance"] for h in res[0]] == pytest.approx([round(s, 3) for _, s in full[3:8]])
    # partitions of the hybrid search apply to every sub-search
    in_p1 = range(N // 2, N)
    la, lb = sub_results(a, b, Q_A[0], Q_B[0], 10, 10, in_p1)
    plain = [
        AnnSearchRequest(data=Q_A[:1], anns_field="a", param={}, limit=10),
        AnnSearchRequest(data=Q_B[:1], anns_field="b", param={}, limit=10),
    ]
    res = client.hybrid_search(name, plain, RRFRanker(), limit=6, partition_names=["p1"])
    check(res[0], fuse([la, lb], rrf, 6))
    assert all(h["id"] >= N // 2 for h in res[0])


def test_hybrid_errors(coll):
    client, name, _, _ = coll
    reqs = [
        AnnSearchRequest(data=Q_A[:1], anns_field="a", param={}, limit=3),
        AnnSearchRequest(data=Q_B[:1], anns_field="b", param={}, limit=3),
    ]
    with pytest.raises(MilvusException) as e:
        client.hybrid_search(name, reqs, WeightedRanker(0.5), limit=3)
    assert e.value.code == 1100 and "weights" in e.value.message
    with pytest.raises(MilvusException) as e:
        client.hybrid_search(name, reqs, WeightedRanker(1.5, 0.2), limit=3)
    assert e.value.code == 1100 and "[0, 1]" in e.value.message
    with pytest.raises(MilvusException) as e:
        client.hybrid_search(
            name,
            [AnnSearchRequest(data=Q_A[:1], anns_field="nope", param={}, limit=3)],
            RRFRanker(),
            limit=3,
        )
    assert e.value.code == 1100
    with pytest.raises(MilvusException) as e:
        client.hybrid_search("no_such_collection", reqs, RRFRanker(), limit=3)
    assert e.value.code == 100
