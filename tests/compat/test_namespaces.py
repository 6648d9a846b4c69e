"""Partitions, aliases and databases through pymilvus."""

import uuid

import pytest
from pymilvus import MilvusClient, MilvusException

DIM = 2


def test_partitions(client, name):
    client.create_collection(name, dimension=DIM)
    client.create_partition(name, "p1")
    client.create_partition(name, "p2")
    assert client.list_partitions(name) == ["_default", "p1", "p2"]
    assert client.has_partition(name, "p1") and not client.has_partition(name, "nope")
    client.insert(name, [{"id": 1, "vector": [1.0, 0.0]}], partition_name="p1")
    client.insert(name, [{"id": 2, "vector": [0.9, 0.1]}, {"id": 3, "vector": [0.0, 1.0]}], partition_name="p2")
    client.insert(name, [{"id": 4, "vector": [1.0, 0.1]}])
    assert client.get_partition_stats(name, "p2")["row_count"] == 2
    q = [[1.0, 0.0]]
    assert [h["id"] for h in client.search(name, q, limit=5, partition_names=["p2"])[0]] == [2, 3]
    assert [h["id"] for h in client.search(name, q, limit=5)[0]] == [1, 4, 2, 3]
    rows = client.query(name, filter="id > 0", partition_names=["p1", "_default"], output_fields=["id"])
    assert sorted(r["id"] for r in rows) == [1, 4]
    client.load_partitions(name, ["p1"])
    client.release_partitions(name, ["p1"])
    client.delete(name, filter="id >= 0", partition_name="p2")
    assert client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"] == 2
    client.drop_partition(name, "p2")
    assert client.list_partitions(name) == ["_default", "p1"]
    with pytest.raises(MilvusException) as e:
        client.insert(name, [{"id": 9, "vector": [1.0, 0.0]}], partition_name="p2")
    assert e.value.code == 200
    client.drop_collection(name)


def test_aliases(client, name):
    other = name + "_b"
    alias = "a_" + uuid.uuid4().hex[:8]
    client.create_collection(name, dimension=DIM)
    client.create_collection(other, dimension=DIM)
    client.insert(name, [{"id": 1, "vector": [1.0, 0.0]}])
    client.insert(other, [{"id": 2, "vector": [1.0, 0.0]}])
    client.create_alias(name, alias)
    assert client.describe_alias(alias)["collection_name"] == name
    assert alias in client.list_aliases(name)["aliases"]
    assert client.describe_collection(alias)["collection_name"] == name
    assert alias in client.describe_collection(name)["aliases"]
    assert [r["id"] for r in client.query(alias, filter="id > 0")] == [1]
    client.alter_alias(other, alias)
    assert [h["id"] for h in client.search(alias, [[1.0, 0.0]], limit=3)[0]] == [2]
    client.insert(alias, [{"id": 3, "vector": [0.0, 1.0]}])
    assert client.get_collection_stats(other)["row_count"] == 2
    client.drop_alias(alias)
    assert alias not in client.list_aliases(other)["aliases"]
    with pytest.raises(MilvusException) as e:
        client.query(alias, filter="id > 0")
    assert e.value.code == 100
    client.drop_collection(name)
    client.drop_collection(other)


def test_databases(server, name):
    db = "db_" + uuid.uuid4().hex[:8]
    root = MilvusClient(uri=server.uri)
    root.create_database(db)
    assert db in root.list_databases() and "default" in root.list_databases()
    root.create_collection(name, dimension=DIM)
    root.insert(name, [{"id": 1, "vector": [1.0, 0.0]}])

    inner = MilvusClient(uri=server.uri, db_name=db)
    assert inner.list_collections() == []
    inner.create_collection(name, dimension=DIM)
    inner.insert(name, [{"id": 7, "vector": [0.0, 1.0]}, {"id": 8, "vector": [1.0, 1.0]}])
    assert sorted(r["id"] for r in inner.query(name, filter="id > 0")) == [7, 8]
    assert [r["id"] for r in root.query(name, filter="id > 0")] == [1]

    root.using_database(db)
    assert root.list_collections() == [name]
    assert root.get_collection_stats(name)["row_count"] == 2
    root.using_database("default")

    with pytest.raises(MilvusException):
        root.drop_database(db)  # not empty
    inner.drop_collection(name)
    inner.close()
    root.drop_database(db)
    assert db not in root.list_databases()
    root.drop_collection(name)
    root.close()
