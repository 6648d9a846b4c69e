"""Bad input gets a Milvus error with a sensible code (asserted on MilvusException.code)."""

import pytest
from pymilvus import DataType, MilvusException

DIM = 4
COLLECTION_NOT_FOUND = 100
PARAMETER_INVALID = 1100


@pytest.fixture
def coll(client, name):
    client.create_collection(name, dimension=DIM)
    client.insert(name, [{"id": 1, "vector": [1.0, 0.0, 0.0, 0.0]}])
    yield name
    client.drop_collection(name)


def test_unknown_collection(client):
    assert client.has_collection("no_such_collection") is False
    for call in (
        lambda: client.describe_collection("no_such_collection"),
        lambda: client.query("no_such_collection", filter="id > 0"),
        lambda: client.get_collection_stats("no_such_collection"),
        lambda: client.drop_collection("no_such_collection"),
    ):
        with pytest.raises(MilvusException) as e:
            call()
        assert e.value.code == COLLECTION_NOT_FOUND, e.value
        assert "collection not found" in e.value.message


def test_wrong_dimension(client, coll):
    with pytest.raises(MilvusException) as e:
        client.insert(coll, [{"id": 2, "vector": [1.0, 0.0]}])
    assert e.value.code == PARAMETER_INVALID
    assert "dimension" in e.value.message
    with pytest.raises(MilvusException) as e:
        client.search(coll, data=[[1.0, 0.0, 0.0]], limit=1)
    assert e.value.code == PARAMETER_INVALID
    assert "dimension" in e.value.message


def test_malformed_filter(client, coll):
    for expr in ("id >>> 3", "id in [1, 2", "nope(1)"):
        with pytest.raises(MilvusException) as e:
            client.query(coll, filter=expr)
        assert e.value.code == PARAMETER_INVALID, expr
    with pytest.raises(MilvusException) as e:
        client.search(coll, data=[[1.0, 0.0, 0.0, 0.0]], limit=1, filter="id ==")
    assert e.value.code == PARAMETER_INVALID


def test_oversized_varchar_and_bad_schema(client, name):
    s = client.create_schema(auto_id=False)
    s.add_field("id", DataType.INT64, is_primary=True)
    s.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    s.add_field("s", DataType.VARCHAR, max_length=5)
    client.create_collection(name, schema=s)
    with pytest.raises(MilvusException) as e:
        client.insert(name, [{"id": 1, "v": [1.0, 2.0], "s": "much too long"}])
    assert e.value.code == PARAMETER_INVALID
    assert "max_length" in e.value.message
    client.insert(name, [{"id": 1, "v": [1.0, 2.0], "s": "short"}])
    assert client.get(name, ids=[1], output_fields=["s"]) == [{"id": 1, "s": "short"}]
    with pytest.raises(MilvusException) as e:
        client.create_collection(name + "_x", dimension=0)
    assert e.value.code == PARAMETER_INVALID
    with pytest.raises(MilvusException) as e:
        client.create_collection(name, dimension=3)  # same name, different schema
    assert e.value.code == PARAMETER_INVALID
    client.drop_collection(name)


def test_limits_and_unknown_fields(client, coll):
    with pytest.raises(MilvusException) as e:
        client.search(coll, data=[[1.0, 0.0, 0.0, 0.0]], limit=20000)
    assert e.value.code == PARAMETER_INVALID
    with pytest.raises(MilvusException) as e:
        client.search(coll, data=[[1.0, 0.0, 0.0, 0.0]], limit=1, search_params={"metric_type": "L2"})
    assert e.value.code == PARAMETER_INVALID  # the index metric is COSINE
    with pytest.raises(MilvusException) as e:
        client.drop_partition(coll, "_default")
    assert e.value.code == PARAMETER_INVALID
    assert client.describe_index(coll, "no_such_index") is None
