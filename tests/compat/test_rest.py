"""Milvus REST v2 on the gRPC port, with plain HTTP (urllib), against a real `quiver serve`.

Every endpoint is exercised with exact assertions on Milvus's JSON shapes; errors are HTTP 200
with a Milvus code (100 unknown collection, 1100 bad input, 1801/1802 bad body). Server-level
checks (gRPC and REST together, /metrics, --auth, TLS) are in test_rest_server.py.
"""

import json
import urllib.error
import urllib.request

import pytest

COLLECTION_NOT_FOUND = 100
PARAMETER_INVALID = 1100
ALIAS_NOT_FOUND = 1600
BAD_FORMAT = 1801
MISSING_PARAM = 1802


class Rest:
    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}/v2/vectordb/"

    def raw(self, path: str, body, headers=None, method="POST"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def __call__(self, path: str, headers=None, **body):
        status, out = self.raw(path, body, headers)
        assert status == 200, (status, out)
        return out

    def ok(self, path: str, headers=None, **body):
        out = self(path, headers, **body)
        assert out["code"] == 0, out
        return out.get("data")

    def err(self, path: str, code: int, headers=None, **body) -> str:
        out = self(path, headers, **body)
        assert out["code"] == code, out
        assert "data" not in out
        return out["message"]


INT64 = {"Accept-Type-Allow-Int64": "true"}


@pytest.fixture
def rest(server):
    return Rest(server.port)


def drop(rest, name):
    rest.ok("collections/drop", collectionName=name)


# ---------------------------------------------------------------- collections


def test_quick_create_describe_load_rename_drop(rest, name):
    assert rest.ok("collections/create", collectionName=name, dimension=4, metricType="L2") == {}
    assert rest.ok("collections/has", collectionName=name) == {"has": True}
    assert name in rest.ok("collections/list")
    d = rest.ok("collections/describe", collectionName=name)
    assert d["collectionName"] == name
    assert isinstance(d["collectionID"], int) and d["collectionID"] > 0
    assert d["autoId"] is False
    assert d["enableDynamicField"] is True
    assert d["consistencyLevel"] == "Bounded"
    assert d["load"] == "LoadStateLoaded"
    assert d["shardsNum"] == 1
    assert d["aliases"] == []
    assert d["indexes"] == [{"indexName": "vector", "fieldName": "vector", "metricType": "L2"}]
    assert [(f["name"], f["type"], f["primaryKey"], f["id"]) for f in d["fields"]] == [
        ("id", "Int64", True, 100),
        ("vector", "FloatVector", False, 101),
    ]
    assert d["fields"][1]["params"] == [{"key": "dim", "value": "4"}]
    assert rest.ok("collections/get_load_state", collectionName=name) == {
        "loadState": "LoadStateLoaded",
        "loadProgress": 100,
    }
    assert rest.ok("collections/release", collectionName=name) == {}
    assert rest.ok("collections/get_load_state", collectionName=name) == {
        "loadState": "LoadStateNotLoad"
    }
    assert rest.ok("collections/load", collectionName=name) == {}
    assert rest.ok("collections/refresh_load", collectionName=name) == {}
    assert rest.ok("collections/get_stats", collectionName=name) == {"rowCount": 0}

    rest.ok(
        "collections/alter_properties",
        collectionName=name,
        properties={"collection.ttl.seconds": 60},
    )
    props = rest.ok("collections/describe", collectionName=name)["properties"]
    assert {"key": "collection.ttl.seconds", "value": "60"} in props
    rest.ok(
        "collections/drop_properties",
        collectionName=name,
        propertyKeys=["collection.ttl.seconds"],
    )
    props = rest.ok("collections/describe", collectionName=name)["properties"]
    assert all(p["key"] != "collection.ttl.seconds" for p in props)

    new = name + "_r"
    assert rest.ok("collections/rename", collectionName=name, newCollectionName=new) == {}
    assert rest.ok("collections/has", collectionName=name) == {"has": False}
    assert rest.ok("collections/has", collectionName=new) == {"has": True}
    drop(rest, new)
    assert rest.ok("collections/has", collectionName=new) == {"has": False}
    assert new not in rest.ok("collections/list")


def test_quick_create_varchar_and_auto_id(rest, name):
    rest.ok(
        "collections/create",
        collectionName=name,
        dimension=2,
        idType="VarChar",
        primaryFieldName="pk",
        vectorFieldName="emb",
        params={"max_length": 16, "enableDynamicField": False, "consistencyLevel": "Strong"},
    )
    d = rest.ok("collections/describe", collectionName=name)
    assert [(f["name"], f["type"]) for f in d["fields"]] == [("pk", "VarChar"), ("emb", "FloatVector")]
    assert d["fields"][0]["params"] == [{"key": "max_length", "value": "16"}]
    assert d["enableDynamicField"] is False
    assert d["consistencyLevel"] == "Strong"
    ins = rest.ok(
        "entities/insert",
        collectionName=name,
        data=[{"pk": 'a"b', "emb": [1, 2]}, {"pk": "c", "emb": [3, 4]}],
    )
    assert ins == {"insertCount": 2, "insertIds": ['a"b', "c"]}
    assert rest.ok("entities/get", collectionName=name, id='a"b', outputFields=["emb"]) == [
        {"pk": 'a"b', "emb": [1.0, 2.0]}
    ]
    # Unknown keys are refused without a dynamic field.
    msg = rest.err(
        "entities/insert", PARAMETER_INVALID, collectionName=name, data=[{"pk": "x", "emb": [1, 2], "z": 1}]
    )
    assert "z" in msg
    drop(rest, name)

    auto = name + "_auto"
    rest.ok("collections/create", collectionName=auto, dimension=2, autoID=True)
    assert rest.ok("collections/describe", collectionName=auto)["autoId"] is True
    ins = rest.ok("entities/insert", collectionName=auto, data=[{"vector": [1, 2]}, {"vector": [3, 4]}])
    assert ins["insertCount"] == 2
    assert all(isinstance(i, str) and i.isdigit() for i in ins["insertIds"])
    ins = rest.ok("entities/insert", headers=INT64, collectionName=auto, data=[{"vector": [5, 6]}])
    assert isinstance(ins["insertIds"][0], int)
    assert rest.ok("collections/get_stats", collectionName=auto) == {"rowCount": 3}
    drop(rest, auto)


# ---------------------------------------------------------------- entities

ROWS = [
    {"id": 1, "vec": [1, 0], "title": "a", "tags": [1], "info": {"k": 1}, "score": 0.5, "color": "red"},
    {"id": 2, "vec": [0, 1], "title": "b", "tags": [2, 3], "info": {"k": 2}, "score": 1.0, "color": "blue"},
    {"id": 3, "vec": [1, 1], "title": "c", "tags": [], "info": {"k": 3}, "score": 1.5, "n": 3},
    {"id": 4, "vec": [2, 0], "title": "d", "tags": [4], "info": {"k": 4}, "score": 2.0},
    {"id": 5, "vec": [0, 2], "title": "e", "tags": [5], "info": {"k": 5}, "score": None},
]


@pytest.fixture
def docs(rest, name):
    rest.ok(
        "collections/create",
        collectionName=name,
        schema={
            "autoID": False,
            "enableDynamicField": True,
            "fields": [
                {"fieldName": "id", "dataType": "Int64", "isPrimary": True},
                {"fieldName": "vec", "dataType": "FloatVector", "elementTypeParams": {"dim": 2}},
                {"fieldName": "title", "dataType": "VarChar", "elementTypeParams": {"max_length": 16}},
                {"fieldName": "n", "dataType": "Int32", "defaultValue": 7},
                {"fieldName": "score", "dataType": "Float", "nullable": True},
                {
                    "fieldName": "tags",
                    "dataType": "Array",
                    "elementDataType": "Int64",
                    "elementTypeParams": {"max_capacity": 4},
                },
                {"fieldName": "info", "dataType": "JSON"},
            ],
        },
        indexParams=[{"fieldName": "vec", "indexName": "vec_idx", "metricType": "L2", "indexType": "AUTOINDEX"}],
    )
    ins = rest.ok("entities/insert", collectionName=name, data=ROWS)
    assert ins == {"insertCount": 5, "insertIds": ["1", "2", "3", "4", "5"]}
    yield name
    drop(rest, name)


def test_custom_schema_describe(rest, docs):
    d = rest.ok("collections/describe", collectionName=docs)
    f = {x["name"]: x for x in d["fields"]}
    assert f["n"]["type"] == "Int32" and f["n"]["defaultValue"] == 7
    assert f["score"]["nullable"] is True
    assert f["tags"]["type"] == "Array" and f["tags"]["elementType"] == "Int64"
    assert f["tags"]["params"] == [{"key": "max_capacity", "value": "4"}]
    assert f["info"]["type"] == "JSON"
    assert d["indexes"] == [{"indexName": "vec_idx", "fieldName": "vec", "metricType": "L2"}]
    assert d["load"] == "LoadStateLoaded"
    assert rest.ok("collections/get_stats", collectionName=docs) == {"rowCount": 5}


def test_get_query_and_int64_header(rest, docs):
    got = rest.ok("entities/get", collectionName=docs, id=[1, "2"], outputFields=["title", "n", "tags", "info", "score"])
    assert got == [
        {"id": "1", "title": "a", "n": 7, "tags": [1], "info": '{"k":1}', "score": 0.5},
        {"id": "2", "title": "b", "n": 7, "tags": [2, 3], "info": '{"k":2}', "score": 1.0},
    ]
    got = rest.ok("entities/get", headers=INT64, collectionName=docs, id=5, outputFields=["score", "color"])
    assert got == [{"id": 5, "score": None}]
    q = rest.ok("entities/query", collectionName=docs, filter="id > 2", outputFields=["title", "n", "color"])
    assert q == [
        {"id": "3", "title": "c", "n": 3},
        {"id": "4", "title": "d", "n": 7},
        {"id": "5", "title": "e", "n": 7},
    ]
    q = rest.ok("entities/query", collectionName=docs, filter="color == 'blue'", outputFields=["color"])
    assert q == [{"id": "2", "color": "blue"}]
    q = rest.ok("entities/query", collectionName=docs, filter="id > 0", outputFields=["id"], limit=2, offset=1)
    assert q == [{"id": "2"}, {"id": "3"}]
    q = rest.ok(
        "entities/query",
        collectionName=docs,
        filter="id in {ids}",
        exprParams={"ids": [4, 5]},
        outputFields=["title"],
    )
    assert q == [{"id": "4", "title": "d"}, {"id": "5", "title": "e"}]
    assert rest.ok("entities/query", collectionName=docs, filter="", outputFields=["count(*)"]) == [{"count(*)": "5"}]
    assert rest.ok("entities/query", headers=INT64, collectionName=docs, outputFields=["count(*)"]) == [{"count(*)": 5}]
    everything = rest.ok("entities/query", collectionName=docs, filter="id == 1")
    assert everything == [
        {"id": "1", "vec": [1.0, 0.0], "title": "a", "n": 7, "score": 0.5, "tags": [1], "info": '{"k":1}', "color": "red"}
    ]
    full = rest("entities/query", collectionName=docs, filter="id == 1")
    assert full["cost"] == 0


def test_search_shapes(rest, docs):
    out = rest("entities/search", collectionName=docs, data=[[1, 0]], annsField="vec", limit=3, outputFields=["title"])
    assert out["code"] == 0
    assert out["topks"] == [3]
    assert out["data"] == [
        {"id": "1", "distance": 0.0, "title": "a"},
        {"id": "3", "distance": 1.0, "title": "c"},
        {"id": "4", "distance": 1.0, "title": "d"},
    ]
    out = rest("entities/search", headers=INT64, collectionName=docs, data=[[1, 0], [0, 2]], limit=3)
    assert out["topks"] == [3, 3]
    assert [(h["id"], h["distance"]) for h in out["data"]] == [
        (1, 0.0), (3, 1.0), (4, 1.0), (5, 0.0), (2, 1.0), (3, 2.0)
    ]
    hits = rest.ok("entities/search", collectionName=docs, data=[[1, 0]], limit=10, offset=1, filter="title in ['c', 'd', 'e']")
    assert [h["id"] for h in hits] == ["4", "5"]
    hits = rest.ok(
        "entities/search",
        collectionName=docs,
        data=[[1, 0]],
        limit=10,
        searchParams={"metricType": "L2", "params": {"radius": 2.5, "range_filter": 0.5}},
    )
    assert [(h["id"], h["distance"]) for h in hits] == [("3", 1.0), ("4", 1.0), ("2", 2.0)]
    hits = rest.ok("entities/search", collectionName=docs, data=[[1, 0]], limit=2, groupingField="n", outputFields=["n"])
    assert [(h["id"], h["n"]) for h in hits] == [("1", 7), ("3", 3)]
    hits = rest.ok("entities/search", collectionName=docs, data=[[9, 9]], limit=3, filter="id > 100")
    assert hits == []


def test_upsert_and_delete(rest, docs):
    up = rest.ok("entities/upsert", collectionName=docs, data=[{"id": 1, "vec": [1, 0], "title": "A", "tags": [], "info": {}}])
    assert up == {"upsertCount": 1, "upsertIds": ["1"]}
    up = rest.ok("entities/upsert", headers=INT64, collectionName=docs, data={"id": 6, "vec": [3, 3], "title": "f", "tags": [], "info": {}})
    assert up == {"upsertCount": 1, "upsertIds": [6]}
    assert rest.ok("entities/get", collectionName=docs, id=[1, 6], outputFields=["title", "n", "score"]) == [
        {"id": "1", "title": "A", "n": 7, "score": None},
        {"id": "6", "title": "f", "n": 7, "score": None},
    ]
    assert rest.ok("entities/delete", collectionName=docs, filter="id in [4, 5]") == {"deleteCount": 2}
    assert rest.ok("entities/delete", collectionName=docs, id=[6]) == {"deleteCount": 1}
    assert rest.ok("entities/delete", collectionName=docs, filter="title == {t}", exprParams={"t": "c"}) == {"deleteCount": 1}
    assert rest.ok("collections/get_stats", collectionName=docs) == {"rowCount": 2}
    assert [r["id"] for r in rest.ok("entities/query", collectionName=docs, outputFields=["id"])] == ["1", "2"]


def test_hybrid_search(rest, name):
    rest.ok(
        "collections/create",
        collectionName=name,
        schema={
            "fields": [
                {"fieldName": "id", "dataType": "Int64", "isPrimary": True},
                {"fieldName": "a", "dataType": "FloatVector", "elementTypeParams": {"dim": 2}},
                {"fieldName": "b", "dataType": "FloatVector", "elementTypeParams": {"dim": 2}},
            ]
        },
        indexParams=[{"fieldName": "a", "metricType": "L2"}, {"fieldName": "b", "metricType": "L2"}],
    )
    rest.ok(
        "entities/insert",
        collectionName=name,
        data=[{"id": 1, "a": [1, 0], "b": [0, 1]}, {"id": 2, "a": [0, 1], "b": [1, 0]}, {"id": 3, "a": [1, 1], "b": [1, 1]}],
    )
    out = rest(
        "entities/hybrid_search",
        collectionName=name,
        search=[{"data": [[1, 0]], "annsField": "a", "limit": 3}, {"data": [[0, 1]], "annsField": "b", "limit": 3}],
        rerank={"strategy": "rrf", "params": {"k": 60}},
        limit=3,
    )
    assert out["code"] == 0, out
    assert [h["id"] for h in out["data"]] == ["1", "3", "2"]
    assert [h["distance"] for h in out["data"]] == pytest.approx([2 / 61, 2 / 62, 2 / 63], rel=1e-5)
    assert out["topks"] == [3]
    old = rest.ok(
        "entities/advanced_search",
        collectionName=name,
        search=[{"data": [[1, 0]], "annsField": "a", "limit": 1}],
        limit=1,
    )
    assert [h["id"] for h in old] == ["1"]
    drop(rest, name)


# ---------------------------------------------------------------- errors


def test_errors(rest, docs):
    msg = rest.err("collections/describe", COLLECTION_NOT_FOUND, collectionName="no_such_coll")
    assert "collection not found" in msg
    for path, body in [
        ("entities/query", {"filter": "id > 0"}),
        ("entities/insert", {"data": [{"id": 1}]}),
        ("entities/search", {"data": [[1.0, 0.0]]}),
        ("collections/get_stats", {}),
        ("collections/get_load_state", {}),
        ("collections/drop", {}),
    ]:
        rest.err(path, COLLECTION_NOT_FOUND, collectionName="no_such_coll", **body)
    msg = rest.err("entities/insert", PARAMETER_INVALID, collectionName=docs, data=[{"id": 9, "vec": [1, 2, 3], "title": "x", "tags": [], "info": {}}])
    assert "dimension" in msg
    msg = rest.err("entities/search", PARAMETER_INVALID, collectionName=docs, data=[[1, 2, 3]])
    assert "dimension" in msg
    for bad in ("id >>> 3", "id in [1, 2", "nope(1)"):
        rest.err("entities/query", PARAMETER_INVALID, collectionName=docs, filter=bad)
    rest.err("entities/search", PARAMETER_INVALID, collectionName=docs, data=[[1, 0]], filter="id ==")
    rest.err("entities/delete", PARAMETER_INVALID, collectionName=docs, filter="id >>> 1")
    rest.err("entities/insert", PARAMETER_INVALID, collectionName=docs, data=[{"id": "x", "vec": [1, 2]}])
    # Body errors: not JSON (1801), wrong types (1801), required keys (1802).
    status, out = rest.raw("collections/describe", b"{not json")
    assert status == 200 and out["code"] == BAD_FORMAT
    status, out = rest.raw("collections/list", b"")
    assert status == 200 and out["code"] == BAD_FORMAT
    rest.err("collections/describe", BAD_FORMAT, collectionName=5)
    rest.err("collections/describe", MISSING_PARAM)
    rest.err("entities/insert", MISSING_PARAM, collectionName=docs, data=[])
    rest.err("entities/get", MISSING_PARAM, collectionName=docs)
    rest.err("entities/delete", MISSING_PARAM, collectionName=docs)
    rest.err("entities/get", 1806, collectionName=docs, id="abc")
    rest.err("collections/create", PARAMETER_INVALID, collectionName=docs + "_x")  # no dimension
    rest.err("collections/create", PARAMETER_INVALID, collectionName=docs + "_x", schema={"fields": [{"fieldName": "id", "dataType": "Nope"}]})
    # Unknown endpoints are HTTP 404; wrong methods 405.
    status, out = rest.raw("collections/frobnicate", {})
    assert status == 404 and out["code"] == 404
    status, _ = rest.raw("collections/list", b"", method="GET")
    assert status == 405


# ---------------------------------------------------------------- partitions, indexes, aliases, databases


def test_partitions(rest, docs):
    assert rest.ok("partitions/list", collectionName=docs) == ["_default"]
    assert rest.ok("partitions/create", collectionName=docs, partitionName="p1") == {}
    assert rest.ok("partitions/list", collectionName=docs) == ["_default", "p1"]
    assert rest.ok("partitions/has", collectionName=docs, partitionName="p1") == {"has": True}
    assert rest.ok("partitions/has", collectionName=docs, partitionName="p2") == {"has": False}
    ins = rest.ok(
        "entities/insert",
        collectionName=docs,
        partitionName="p1",
        data=[{"id": 10, "vec": [5, 5], "title": "p", "tags": [], "info": {}}],
    )
    assert ins["insertIds"] == ["10"]
    assert rest.ok("partitions/get_stats", collectionName=docs, partitionName="p1") == {"rowCount": 1}
    assert rest.ok("partitions/get_stats", collectionName=docs, partitionName="_default") == {"rowCount": 5}
    q = rest.ok("entities/query", collectionName=docs, partitionNames=["p1"], outputFields=["title"])
    assert q == [{"id": "10", "title": "p"}]
    hits = rest.ok("entities/search", collectionName=docs, partitionNames=["p1"], data=[[0, 0]], limit=5)
    assert [h["id"] for h in hits] == ["10"]
    assert rest.ok("partitions/load", collectionName=docs, partitionNames=["p1"]) == {}
    assert rest.ok("partitions/release", collectionName=docs, partitionNames=["p1"]) == {}
    rest.err("partitions/load", MISSING_PARAM, collectionName=docs)
    rest.err("partitions/load", 200, collectionName=docs, partitionNames=["nope"])
    assert rest.ok("partitions/drop", collectionName=docs, partitionName="p1") == {}
    assert rest.ok("partitions/list", collectionName=docs) == ["_default"]


def test_indexes(rest, docs):
    assert rest.ok("indexes/list", collectionName=docs) == ["vec_idx"]
    d = rest.ok("indexes/describe", collectionName=docs, indexName="vec_idx")
    assert d == [
        {
            "indexName": "vec_idx",
            "fieldName": "vec",
            "indexType": "AUTOINDEX",
            "metricType": "L2",
            "params": {},
            "totalRows": 5,
            "pendingRows": 0,
            "indexedRows": 5,
            "indexState": "Finished",
            "failReason": "",
        }
    ]
    assert rest.ok("indexes/drop", collectionName=docs, indexName="vec_idx") == {}
    assert rest.ok("indexes/list", collectionName=docs) == []
    rest.err("indexes/describe", 700, collectionName=docs, indexName="vec_idx")
    params = [{"fieldName": "vec", "indexName": "hnsw", "indexType": "HNSW", "metricType": "IP", "params": {"M": 16, "efConstruction": 64}}]
    assert rest.ok("indexes/create", collectionName=docs, indexParams=params) == {}
    d = rest.ok("indexes/describe", collectionName=docs, indexName="hnsw")[0]
    assert (d["indexType"], d["metricType"], d["params"]) == ("HNSW", "IP", {"M": 16, "efConstruction": 64})
    rest.err("indexes/create", MISSING_PARAM, collectionName=docs)


def test_aliases(rest, docs, name):
    other = name + "_o"
    rest.ok("collections/create", collectionName=other, dimension=2)
    alias = name + "_al"
    assert rest.ok("aliases/create", aliasName=alias, collectionName=docs) == {}
    assert rest.ok("aliases/list", collectionName=docs) == [alias]
    assert alias in rest.ok("aliases/list")
    assert rest.ok("aliases/describe", aliasName=alias) == {
        "dbName": "default",
        "collectionName": docs,
        "aliasName": alias,
    }
    assert rest.ok("collections/describe", collectionName=docs)["aliases"] == [alias]
    # An alias works wherever a collection name does.
    assert rest.ok("collections/get_stats", collectionName=alias) == {"rowCount": 5}
    assert rest.ok("aliases/alter", aliasName=alias, collectionName=other) == {}
    assert rest.ok("aliases/describe", aliasName=alias)["collectionName"] == other
    assert rest.ok("aliases/list", collectionName=docs) == []
    assert rest.ok("aliases/drop", aliasName=alias) == {}
    rest.err("aliases/describe", ALIAS_NOT_FOUND, aliasName=alias)
    drop(rest, other)


def test_databases(rest, name):
    db = "db_" + name
    assert rest.ok("databases/create", dbName=db, properties={"database.max.collections": 10}) == {}
    assert db in rest.ok("databases/list")
    d = rest.ok("databases/describe", dbName=db)
    assert d["dbName"] == db and isinstance(d["dbID"], int)
    assert {"key": "database.max.collections", "value": "10"} in d["properties"]
    rest.ok("collections/create", dbName=db, collectionName=name, dimension=2)
    assert rest.ok("collections/list", dbName=db) == [name]
    assert name not in rest.ok("collections/list")
    # The DB-Name header selects the database too.
    assert rest.ok("collections/has", headers={"DB-Name": db}, collectionName=name) == {"has": True}
    rest.ok("entities/insert", dbName=db, collectionName=name, data=[{"id": 1, "vector": [1, 2]}])
    assert rest.ok("entities/get", dbName=db, collectionName=name, id=1, outputFields=["vector"]) == [
        {"id": "1", "vector": [1.0, 2.0]}
    ]
    rest.err("collections/list", 800, dbName="no_such_db")
    rest.ok("collections/drop", dbName=db, collectionName=name)
    assert rest.ok("databases/drop", dbName=db) == {}
    assert db not in rest.ok("databases/list")
