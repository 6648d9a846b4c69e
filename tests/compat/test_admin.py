"""Administrative RPCs: database properties, index state and build progress, compaction,
TruncateCollection (pymilvus 2.6 / 3.x `truncate_collection`; with the 2.5 client the test sends
the request bytes itself: fields 2 db_name and 3 collection_name, as in Milvus's proto).
"""

import grpc
import pytest
from pymilvus import Collection, MilvusClient, MilvusException
from pymilvus.grpc_gen import milvus_pb2


def raw(server, method, req, resp):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        return channel.unary_unary(
            f"/milvus.proto.milvus.MilvusService/{method}",
            request_serializer=req.SerializeToString,
            response_deserializer=resp.FromString,
        )(req, timeout=10)
    finally:
        channel.close()


def test_database_properties(client, name):
    db = "db_" + name
    client.create_database(db, properties={"database.replica.number": "1"})
    try:
        assert client.describe_database(db) == {"name": db, "database.replica.number": "1"}
        client.alter_database_properties(db, {"database.max.collections": 10, "k": "v"})
        assert client.describe_database(db) == {
            "name": db,
            "database.replica.number": "1",
            "database.max.collections": "10",
            "k": "v",
        }
        client.drop_database_properties(db, ["k", "database.replica.number", "absent"])
        assert client.describe_database(db) == {"name": db, "database.max.collections": "10"}
        with pytest.raises(MilvusException) as e:
            client.alter_database_properties("no_such_db", {"a": "b"})
        assert e.value.code == 800
    finally:
        client.drop_database(db)


def test_index_state_and_build_progress(server, client, orm, name):
    client.create_collection(name, dimension=2)
    client.insert(name, [{"id": i, "vector": [float(i), 1.0]} for i in range(37)])
    req = dict(collection_name=name, index_name="vector")
    st = raw(
        server,
        "GetIndexState",
        milvus_pb2.GetIndexStateRequest(**req),
        milvus_pb2.GetIndexStateResponse,
    )
    assert (st.status.code, st.state, st.fail_reason) == (0, 3, "")  # Finished
    pr = raw(
        server,
        "GetIndexBuildProgress",
        milvus_pb2.GetIndexBuildProgressRequest(**req),
        milvus_pb2.GetIndexBuildProgressResponse,
    )
    assert (pr.status.code, pr.indexed_rows, pr.total_rows) == (0, 37, 37)
    # by field name, and a missing index
    pr = raw(
        server,
        "GetIndexBuildProgress",
        milvus_pb2.GetIndexBuildProgressRequest(collection_name=name, field_name="vector"),
        milvus_pb2.GetIndexBuildProgressResponse,
    )
    assert (pr.indexed_rows, pr.total_rows) == (37, 37)
    st = raw(
        server,
        "GetIndexState",
        milvus_pb2.GetIndexStateRequest(collection_name=name, index_name="nope"),
        milvus_pb2.GetIndexStateResponse,
    )
    assert st.status.code == 700
    # pymilvus's own helpers (they go through DescribeIndex)
    from pymilvus import utility

    assert utility.index_building_progress(name, "vector", using=orm) == {
        "total_rows": 37,
        "indexed_rows": 37,
        "pending_index_rows": 0,
        "state": "Finished",
    }
    client.drop_collection(name)


def test_compaction(client, orm, name):
    client.create_collection(name, dimension=2)
    client.insert(name, [{"id": i, "vector": [float(i), 1.0]} for i in range(100)])
    client.flush(name)
    client.delete(name, filter="id < 60")
    job = client.compact(name)
    assert job > 0
    assert client.get_compaction_state(job) == "Completed"
    assert client.get_compaction_state(job + 1) == "UndefiedState"
    coll = Collection(name, using=orm)
    coll.compact()
    coll.wait_for_compaction_completed(timeout=10)
    assert coll.get_compaction_state().state_name == "Completed"
    plans = coll.get_compaction_plans()
    assert plans.state == 2 and plans.plans == []
    # the data is the same after compaction
    assert client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"] == 40
    rows = client.query(name, filter="id >= 0", output_fields=["id"], limit=100)
    assert [r["id"] for r in rows] == list(range(60, 100))
    # by alias, and errors
    client.create_alias(name, name + "_a")
    assert client.get_compaction_state(client.compact(name + "_a")) == "Completed"
    client.drop_alias(name + "_a")
    with pytest.raises(MilvusException) as e:
        client.compact("no_such_collection")
    assert e.value.code == 100
    client.drop_collection(name)


def test_compaction_survives_restart(own_server, name):
    c = MilvusClient(uri=own_server.uri)
    c.create_collection(name, dimension=2)
    c.insert(name, [{"id": i, "vector": [float(i), 1.0]} for i in range(50)])
    c.delete(name, filter="id >= 10")
    c.compact(name)
    c.close()
    own_server.restart()
    c = MilvusClient(uri=own_server.uri)
    assert [r["id"] for r in c.query(name, filter="id >= 0", limit=100)] == list(range(10))
    c.close()


def truncate(server, client, name):
    """TruncateCollection through the client when it has it, else as raw request bytes; returns
    the response status (the client raises on an error status instead)."""
    from pymilvus.grpc_gen import common_pb2

    if hasattr(client, "truncate_collection"):
        try:
            client.truncate_collection(name)
            return common_pb2.Status()
        except MilvusException as e:
            return common_pb2.Status(code=e.code, reason=e.message)
    body = name.encode()
    req = bytes([0x1A, len(body)]) + body  # field 3 (collection_name), length-delimited
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        resp = channel.unary_unary(
            "/milvus.proto.milvus.MilvusService/TruncateCollection",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )(req, timeout=10)
    finally:
        channel.close()
    # TruncateCollectionResponse { common.Status status = 1 }: tag 0x0A, varint length, bytes
    if not resp:
        return common_pb2.Status()
    assert resp[0] == 0x0A, resp
    length, shift, pos = 0, 0, 1
    while True:
        b = resp[pos]
        length |= (b & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if b < 0x80:
            break
    return common_pb2.Status.FromString(resp[pos : pos + length])


def test_truncate_collection(server, client, name):
    client.create_collection(name, dimension=2)
    client.insert(name, [{"id": i, "vector": [float(i), 1.0]} for i in range(10)])
    client.flush(name)
    client.insert(name, [{"id": 20 + i, "vector": [float(i), 2.0]} for i in range(5)])
    assert truncate(server, client, name).code == 0

    def count():
        return client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"]

    assert count() == 0
    assert client.describe_index(name, "vector")["index_type"] == "AUTOINDEX"  # index kept
    client.insert(name, [{"id": 1, "vector": [1.0, 1.0]}])
    assert count() == 1
    st = truncate(server, client, name + "_missing")
    assert st.code == 100 and "not found" in st.reason, st
