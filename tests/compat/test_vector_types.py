"""FLOAT16, BFLOAT16, INT8 and BINARY vector fields through pymilvus: inserts in the client's
native encodings, values returned exactly, exact search (no index or FLAT / BIN_FLAT) and HNSW
search against numpy brute force, the binary metrics HAMMING and JACCARD, and wrong input."""

import numpy as np
import pytest
from pymilvus import DataType, MilvusClient, MilvusException

N = 3000  # above the 1,024-row threshold, so HNSW is really built on the sealed segment
DIM = 32


def bf16_bytes(a):
    """float32 -> bfloat16 bit patterns (round to nearest even), little-endian bytes per row."""
    u = a.astype(np.float32).view(np.uint32)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return [row.tobytes() for row in r], (r.astype(np.uint32) << 16).view(np.float32)


def clustered(n, seed):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(5).uniform(-1, 1, (30, DIM))
    return (centres[rng.integers(0, 30, n)] + 0.2 * rng.uniform(-1, 1, (n, DIM))).astype(np.float32)


def make(client, name, dtype, dim, rows, index=None):
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", dtype, dim=dim)
    client.create_collection(name, schema=schema)
    for s in range(0, len(rows), 1000):
        client.insert(name, [{"id": s + i, "v": r} for i, r in enumerate(rows[s : s + 1000])])
    client.flush(name)
    if index:
        ip = client.prepare_index_params()
        ip.add_index("v", **index)
        client.create_index(name, ip)
    client.load_collection(name)


def topk_l2(base, q, k=10):
    d = ((base - q) ** 2).sum(axis=1)
    return list(np.lexsort((np.arange(len(base)), d))[:k])


def hamming(a, b):
    return int(np.unpackbits(np.bitwise_xor(a, b)).sum())


def jaccard(a, b):
    inter = int(np.unpackbits(np.bitwise_and(a, b)).sum())
    union = int(np.unpackbits(np.bitwise_or(a, b)).sum())
    return 0.0 if union == 0 else 1.0 - inter / union


@pytest.mark.parametrize("index", [None, {"index_type": "HNSW", "metric_type": "L2"}])
def test_float16_vectors(client, name, index):
    base = clustered(N, 1).astype(np.float16)
    make(client, name, DataType.FLOAT16_VECTOR, DIM, list(base), index)
    # Stored as float16: the bytes come back as sent.
    got = client.get(name, ids=[7], output_fields=["v"])[0]["v"]
    assert got[0] == base[7].tobytes()
    qs = clustered(20, 9).astype(np.float16)
    res = client.search(name, data=list(qs), limit=10, search_params={"metric_type": "L2"})
    b32 = base.astype(np.float32)
    recall = np.mean([len(set(h["id"] for h in hits) & set(topk_l2(b32, q.astype(np.float32)))) / 10 for q, hits in zip(qs, res)])
    assert recall >= (0.95 if index else 1.0), recall
    hit = res[0][0]
    want = float(((b32[hit["id"]] - qs[0].astype(np.float32)) ** 2).sum())
    assert abs(hit["distance"] - want) <= 1e-3 * max(want, 1.0)
    assert client.describe_collection(name)["fields"][1]["type"] == DataType.FLOAT16_VECTOR


def test_bfloat16_vectors(client, name):
    raw = clustered(N, 2)
    rows, exact = bf16_bytes(raw)
    make(client, name, DataType.BFLOAT16_VECTOR, DIM, rows, {"index_type": "HNSW", "metric_type": "IP"})
    assert client.get(name, ids=[11], output_fields=["v"])[0]["v"][0] == rows[11]
    qs = clustered(20, 8)
    res = client.search(name, data=qs.tolist(), limit=10, search_params={"metric_type": "IP"})
    recall = []
    for q, hits in zip(qs, res):
        truth = list(np.lexsort((np.arange(N), -(exact @ q)))[:10])
        recall.append(len(set(h["id"] for h in hits) & set(truth)) / 10)
        assert abs(hits[0]["distance"] - float(exact[hits[0]["id"]] @ q)) < 1e-3
    assert np.mean(recall) >= 0.95


@pytest.mark.parametrize("metric", ["HAMMING", "JACCARD"])
@pytest.mark.parametrize("index_type", ["BIN_FLAT", "HNSW"])
def test_binary_vectors(client, name, metric, index_type):
    bits = 128
    rng = np.random.default_rng(3)
    centres = rng.integers(0, 2, (30, bits), dtype=np.uint8)
    flips = (rng.random((N, bits)) < 0.08).astype(np.uint8)
    base_bits = centres[rng.integers(0, 30, N)] ^ flips
    base = np.packbits(base_bits, axis=1)
    make(client, name, DataType.BINARY_VECTOR, bits, [r.tobytes() for r in base],
         {"index_type": index_type, "metric_type": metric})
    assert client.get(name, ids=[5], output_fields=["v"])[0]["v"][0] == base[5].tobytes()
    qbits = centres[rng.integers(0, 30, 15)] ^ (rng.random((15, bits)) < 0.08).astype(np.uint8)
    qs = np.packbits(qbits, axis=1)
    res = client.search(name, data=[q.tobytes() for q in qs], limit=10, search_params={"metric_type": metric})
    dist = hamming if metric == "HAMMING" else jaccard
    recall = []
    for q, hits in zip(qs, res):
        d = np.array([dist(q, b) for b in base])
        truth = list(np.lexsort((np.arange(N), d))[:10])
        recall.append(len(set(h["id"] for h in hits) & set(truth)) / 10)
        for h in hits:
            assert abs(h["distance"] - d[h["id"]]) < 1e-5
        # Ties on Hamming distance are common: compare distances, not only ids.
        assert sorted(d[h["id"]] for h in hits) == sorted(d[truth])[: len(hits)] or index_type == "HNSW"
    assert np.mean(recall) >= (0.9 if index_type == "HNSW" else 0.999), recall
    with pytest.raises(MilvusException) as e:
        client.search(name, data=[qs[0].tobytes()], limit=3, search_params={"metric_type": "L2"})
    assert "metric type" in e.value.message


def test_int8_vectors_when_the_client_has_them(client, name):
    if not hasattr(DataType, "INT8_VECTOR"):
        pytest.skip("this pymilvus has no INT8_VECTOR (it came with 2.6 / 3.x)")
    rng = np.random.default_rng(4)
    base = rng.integers(-128, 128, (N, DIM), dtype=np.int8)
    make(client, name, DataType.INT8_VECTOR, DIM, list(base), {"index_type": "HNSW", "metric_type": "L2"})
    got = client.get(name, ids=[3], output_fields=["v"])[0]["v"]
    assert np.array_equal(np.frombuffer(got[0], dtype=np.int8) if isinstance(got[0], bytes) else np.array(got, dtype=np.int8).ravel(), base[3])
    qs = rng.integers(-128, 128, (10, DIM), dtype=np.int8)
    res = client.search(name, data=list(qs), limit=10, search_params={"metric_type": "L2"})
    b32 = base.astype(np.float32)
    recall = np.mean([len(set(h["id"] for h in hits) & set(topk_l2(b32, q.astype(np.float32)))) / 10 for q, hits in zip(qs, res)])
    assert recall >= 0.9


def test_wrong_vector_input_is_refused(client, name):
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.BINARY_VECTOR, dim=16)
    client.create_collection(name, schema=schema)
    with pytest.raises(MilvusException) as e:
        client.insert(name, [{"id": 1, "v": b"\x01\x02\x03"}])  # 24 bits into a 16-bit field
    assert "dim" in e.value.message.lower()
    other = name + "_h"
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("v", DataType.FLOAT16_VECTOR, dim=4)
    client.create_collection(other, schema=schema)
    with pytest.raises(MilvusException):
        client.insert(other, [{"id": 1, "v": np.array([1, 2, np.inf, 4], dtype=np.float16)}])
    client.insert(other, [{"id": 1, "v": np.array([1, 2, 3, 4], dtype=np.float16)}])
    assert client.query(other, filter="id == 1", output_fields=["id"]) == [{"id": 1}]
    schema = MilvusClient.create_schema(auto_id=False)
    with pytest.raises(MilvusException):
        bad = MilvusClient.create_schema(auto_id=False)
        bad.add_field("id", DataType.INT64, is_primary=True)
        bad.add_field("v", DataType.BINARY_VECTOR, dim=12)  # not a multiple of 8
        client.create_collection(name + "_b", schema=bad)
