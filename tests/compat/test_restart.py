"""Data survives a restart (SIGTERM, which flushes) and the server comes back on the same port."""

import numpy as np
from pymilvus import DataType, MilvusClient


def test_restart_keeps_everything(own_server):
    c = MilvusClient(uri=own_server.uri)
    c.create_database("keep")
    c.create_collection("quick", dimension=3)
    c.insert("quick", [{"id": i, "vector": [float(i), 1.0, 0.0], "tag": f"t{i}"} for i in range(50)])
    c.delete("quick", ids=[10, 11])
    c.create_partition("quick", "p")
    c.insert("quick", [{"id": 100, "vector": [0.0, 0.0, 1.0]}], partition_name="p")
    c.create_alias("quick", "quick_alias")
    s = c.create_schema(auto_id=False)
    s.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=8)
    s.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    s.add_field("n", DataType.INT32, nullable=True)
    c.create_collection("typed", schema=s)
    c.insert("typed", [{"pk": "a", "v": [1.0, 0.0], "n": None}, {"pk": "b", "v": [0.0, 1.0], "n": 4}])
    c.flush("typed")
    before = c.search("quick", data=[[5.0, 1.0, 0.0]], limit=5, output_fields=["tag"])[0]
    c.close()

    own_server.restart()

    c = MilvusClient(uri=own_server.uri)
    assert "keep" in c.list_databases()
    assert sorted(c.list_collections()) == ["quick", "typed"]
    assert c.query("quick", filter="", output_fields=["count(*)"])[0]["count(*)"] == 49
    assert c.get("quick", ids=[10, 11]) == []
    assert c.list_partitions("quick") == ["_default", "p"]
    assert c.get_partition_stats("quick", "p")["row_count"] == 1
    assert c.describe_alias("quick_alias")["collection_name"] == "quick"
    after = c.search("quick_alias", data=[[5.0, 1.0, 0.0]], limit=5, output_fields=["tag"])[0]
    assert [h["id"] for h in after] == [h["id"] for h in before]
    assert np.allclose([h["distance"] for h in after], [h["distance"] for h in before])
    assert [h["entity"]["tag"] for h in after] == [f"t{h['id']}" for h in after]
    rows = {r["pk"]: r for r in c.query("typed", filter='pk in ["a", "b"]', output_fields=["n"])}
    assert rows["a"]["n"] is None and rows["b"]["n"] == 4
    desc = c.describe_collection("typed")
    assert [f["name"] for f in desc["fields"]] == ["pk", "v", "n"]
    assert c.list_indexes("quick") == ["vector"]

    # A second restart right after writes that were never flushed (the WAL has them).
    c.insert("quick", [{"id": 200, "vector": [1.0, 2.0, 3.0]}])
    c.close()
    own_server.restart()
    c = MilvusClient(uri=own_server.uri)
    assert [r["id"] for r in c.get("quick", ids=[200])] == [200]

    # kill -9: no graceful flush; acknowledged writes come back from the WAL.
    c.upsert("quick", [{"id": 200, "vector": [3.0, 2.0, 1.0], "tag": "after"}])
    c.delete("quick", filter="id < 5")
    c.close()
    own_server.proc.kill()
    own_server.proc.wait(timeout=10)
    own_server.start()
    c = MilvusClient(uri=own_server.uri)
    assert [dict(r) for r in c.get("quick", ids=[200], output_fields=["tag"])] == [{"id": 200, "tag": "after"}]
    assert c.query("quick", filter="", output_fields=["count(*)"])[0]["count(*)"] == 45
    c.close()
