"""Explicit schemas: INT64 and VARCHAR primary keys, every scalar type, JSON, ARRAY, nullable
and default values, auto_id; DescribeCollection must echo the schema exactly."""

import numpy as np
import pytest
from pymilvus import DataType, MilvusClient

DIM = 4


def full_schema(client: MilvusClient):
    s = client.create_schema(auto_id=False, enable_dynamic_field=False, description="all types")
    s.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=32)
    s.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
    s.add_field("b", DataType.BOOL)
    s.add_field("i8", DataType.INT8)
    s.add_field("i16", DataType.INT16)
    s.add_field("i32", DataType.INT32)
    s.add_field("i64", DataType.INT64)
    s.add_field("f", DataType.FLOAT)
    s.add_field("d", DataType.DOUBLE)
    s.add_field("title", DataType.VARCHAR, max_length=16)
    s.add_field("meta", DataType.JSON)
    s.add_field("tags", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=4, max_length=8)
    s.add_field("nums", DataType.ARRAY, element_type=DataType.INT32, max_capacity=3)
    s.add_field("maybe", DataType.INT64, nullable=True)
    s.add_field("note", DataType.VARCHAR, max_length=20, nullable=True)
    s.add_field("level", DataType.INT32, default_value=5)
    s.add_field("label", DataType.VARCHAR, max_length=10, default_value="none")
    return s


def row(i):
    return {
        "pk": f"k{i:03d}",
        "vec": [float(i), 1.0, 0.0, 0.5],
        "b": i % 2 == 0,
        "i8": i - 5,
        "i16": i * 100,
        "i32": i * 10000,
        "i64": i * 10**12,
        "f": i + 0.5,
        "d": i / 3,
        "title": f"title {i}",
        "meta": {"i": i, "nested": {"even": i % 2 == 0}, "list": [i, i + 1]},
        "tags": [f"t{i}", "all"],
        "nums": [i, i * 2],
        "maybe": i if i % 3 else None,
        "note": None if i % 2 else f"note {i}",
        "level": None if i < 3 else i,
        "label": None if i < 5 else f"L{i}",
    }


def test_describe_echoes_schema(client, name):
    index = client.prepare_index_params()
    index.add_index("vec", metric_type="L2")
    client.create_collection(name, schema=full_schema(client), index_params=index)
    desc = client.describe_collection(name)
    assert desc["description"] == "all types"
    assert desc["enable_dynamic_field"] is False
    fields = {f["name"]: f for f in desc["fields"]}
    assert [f["name"] for f in desc["fields"]] == [
        "pk", "vec", "b", "i8", "i16", "i32", "i64", "f", "d", "title", "meta", "tags", "nums",
        "maybe", "note", "level", "label",
    ]
    assert [f["field_id"] for f in desc["fields"]] == list(range(100, 117))
    assert fields["pk"]["is_primary"] is True
    assert fields["pk"]["type"] == DataType.VARCHAR
    assert fields["pk"]["params"]["max_length"] == 32
    assert fields["vec"]["params"]["dim"] == DIM
    assert fields["tags"]["element_type"] == DataType.VARCHAR
    assert fields["tags"]["params"]["max_capacity"] == 4
    assert fields["tags"]["params"]["max_length"] == 8
    assert fields["nums"]["element_type"] == DataType.INT32
    assert fields["maybe"]["nullable"] is True
    assert fields["level"]["default_value"].int_data == 5
    assert fields["label"]["default_value"].string_data == "none"
    assert fields["i8"]["type"] == DataType.INT8
    assert fields["meta"]["type"] == DataType.JSON
    client.drop_collection(name)


def test_all_types_round_trip(client, name):
    index = client.prepare_index_params()
    index.add_index("vec", metric_type="L2")
    client.create_collection(name, schema=full_schema(client), index_params=index)
    rows = [row(i) for i in range(10)]
    res = client.insert(name, rows)
    assert res["insert_count"] == 10
    assert list(res["ids"]) == [f"k{i:03d}" for i in range(10)]

    got = client.query(name, filter='pk in ["k001", "k004", "k006"]', output_fields=["*"])
    got = {r["pk"]: r for r in got}
    assert sorted(got) == ["k001", "k004", "k006"]
    for i in (1, 4, 6):
        r, want = got[f"k{i:03d}"], row(i)
        for k in ("b", "i8", "i16", "i32", "i64", "title", "meta", "tags", "nums", "maybe", "note"):
            assert r[k] == want[k], (k, r[k], want[k])
        assert abs(r["f"] - want["f"]) < 1e-6 and abs(r["d"] - want["d"]) < 1e-12
        assert np.allclose(r["vec"], want["vec"])
    # defaults fill the NULLs of non-nullable fields with a default value
    assert got["k001"]["level"] == 5 and got["k004"]["level"] == 4
    assert got["k001"]["label"] == "none" and got["k006"]["label"] == "L6"

    def ids(expr):
        return sorted(r["pk"] for r in client.query(name, filter=expr, output_fields=["pk"]))

    assert ids("maybe is null") == ["k000", "k003", "k006", "k009"]
    assert ids('meta["nested"]["even"] == true and i16 >= 400') == ["k004", "k006", "k008"]
    assert ids('array_contains(tags, "t7")') == ["k007"]
    assert ids("json_contains(meta[\"list\"], 3)") == ["k002", "k003"]
    assert ids('title like "title 1%"') == ["k001"]
    assert ids("i8 < -3 or d > 2.9") == ["k000", "k001", "k009"]

    hits = client.search(name, data=[[3.0, 1.0, 0.0, 0.5]], limit=3, output_fields=["title", "note"])[0]
    assert [h["pk"] for h in hits] == ["k003", "k002", "k004"]
    assert [round(h["distance"], 4) for h in hits] == [0.0, 1.0, 1.0]
    assert hits[0]["entity"] == {"title": "title 3", "note": None}
    assert hits[1]["entity"] == {"title": "title 2", "note": "note 2"}
    client.delete(name, ids=["k003"])
    assert client.get(name, ids=["k003"]) == []
    client.drop_collection(name)


def test_auto_id_and_int64_pk(client, name):
    s = client.create_schema(auto_id=True, enable_dynamic_field=True)
    s.add_field("id", DataType.INT64, is_primary=True, auto_id=True)
    s.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    index = client.prepare_index_params()
    index.add_index("v", metric_type="IP")
    client.create_collection(name, schema=s, index_params=index)
    desc = client.describe_collection(name)
    assert desc["auto_id"] is True
    res = client.insert(name, [{"v": [1.0, 0.0], "extra": "a"}, {"v": [0.0, 1.0], "extra": "b"}])
    ids = list(res["ids"])
    assert len(ids) == 2 and len(set(ids)) == 2 and all(i > 0 for i in ids)
    hits = client.search(name, data=[[0.2, 1.0]], limit=2, output_fields=["extra"])[0]
    assert [h["id"] for h in hits] == [ids[1], ids[0]]
    assert np.allclose([h["distance"] for h in hits], [1.0, 0.2], atol=1e-6)
    assert [h["entity"]["extra"] for h in hits] == ["b", "a"]
    rows = client.query(name, filter='extra == "a"', output_fields=["$meta"])
    assert [dict(r) for r in rows] == [{"id": ids[0], "extra": "a"}]
    client.drop_collection(name)


def test_create_is_idempotent_for_same_schema(client, name):
    client.create_collection(name, dimension=DIM)
    client.create_collection(name, dimension=DIM)  # same schema: no error
    assert client.list_collections().count(name) == 1
    client.drop_collection(name)


def test_group_by_search(client, name):
    s = client.create_schema(auto_id=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    s.add_field("cat", DataType.VARCHAR, max_length=4)
    index = client.prepare_index_params()
    index.add_index("v", metric_type="L2")
    client.create_collection(name, schema=s, index_params=index)
    xs = {1: ("a", 1.0), 2: ("a", 2.0), 3: ("a", 3.0), 4: ("b", 1.5), 5: ("b", 4.0), 6: ("c", 5.0)}
    client.insert(name, [{"id": i, "v": [x, 0.0], "cat": c} for i, (c, x) in xs.items()])
    hits = client.search(
        name, data=[[0.0, 0.0]], limit=2, group_by_field="cat", group_size=2, output_fields=["cat"]
    )[0]
    assert [h["id"] for h in hits] == [1, 2, 4, 5]
    assert [h["entity"]["cat"] for h in hits] == ["a", "a", "b", "b"]
    assert np.allclose([h["distance"] for h in hits], [1.0, 4.0, 2.25, 16.0])
    one_each = client.search(name, data=[[0.0, 0.0]], limit=3, group_by_field="cat")[0]
    assert [h["id"] for h in one_each] == [1, 4, 6]
    client.drop_collection(name)


def test_add_collection_field_to_a_collection_with_data(client, name):
    """pymilvus >= 2.6 `add_collection_field` (AddCollectionField): old rows read NULL, new rows
    carry the field, a field that is not nullable is refused."""
    from pymilvus import DataType, MilvusException

    if not hasattr(client, "add_collection_field"):
        pytest.skip("this pymilvus has no add_collection_field (older than 2.6)")
    client.create_collection(name, dimension=4)
    client.insert(name, [{"id": i, "vector": [float(i), 1.0, 0.0, 0.0]} for i in range(5)])
    client.flush(name)
    client.add_collection_field(name, "score", DataType.INT64, nullable=True)
    fields = {f["name"]: f for f in client.describe_collection(name)["fields"]}
    assert fields["score"]["type"] == DataType.INT64 and fields["score"].get("nullable")
    client.insert(name, [{"id": 10, "vector": [1.0, 1.0, 0.0, 0.0], "score": 7}])
    rows = {r["id"]: r for r in client.query(name, filter="id >= 0", output_fields=["score"])}
    assert rows[0]["score"] is None and rows[10]["score"] == 7
    assert [r["id"] for r in client.query(name, filter="score == 7", output_fields=["id"])] == [10]
    with pytest.raises(MilvusException):
        client.add_collection_field(name, "strict", DataType.INT64)
    with pytest.raises(MilvusException):
        client.add_collection_field(name, "score", DataType.INT64, nullable=True)
