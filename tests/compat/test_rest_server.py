"""REST v2 as part of the server: one port for pymilvus (gRPC) and REST, Prometheus /metrics
on the metrics address, REST under `--auth` (the Bearer token is checked like pymilvus's
credentials) and REST over TLS (ALPN http/1.1 next to h2)."""

import json
import re
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest
from test_rest import COLLECTION_NOT_FOUND, Rest, drop

NEED_AUTHENTICATE = 1800


@pytest.fixture
def rest(server):
    return Rest(server.port)


# ---------------------------------------------------------------- gRPC and REST together


def test_grpc_and_rest_share_data_on_one_port(rest, client, name, server):
    client.create_collection(name, dimension=2, metric_type="L2")
    client.insert(name, [{"id": 1, "vector": [1.0, 0.0], "tag": "grpc"}])
    rest.ok("entities/insert", collectionName=name, data=[{"id": 2, "vector": [0, 1], "tag": "rest"}])
    assert rest.ok("entities/query", collectionName=name, outputFields=["tag"]) == [
        {"id": "1", "tag": "grpc"},
        {"id": "2", "tag": "rest"},
    ]
    assert [dict(r) for r in client.get(name, ids=[1, 2], output_fields=["tag"])] == [
        {"id": 1, "tag": "grpc"},
        {"id": 2, "tag": "rest"},
    ]
    hits = client.search(name, data=[[0.0, 1.0]], limit=1)[0]
    assert hits[0]["id"] == 2
    assert rest.ok("collections/describe", collectionName=name)["collectionID"] == client.describe_collection(name)["collection_id"]
    rest.ok("entities/delete", collectionName=name, id=1)
    assert client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"] == 1
    client.drop_collection(name)
    assert rest.ok("collections/has", collectionName=name) == {"has": False}


# ---------------------------------------------------------------- metrics


def scrape(server) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        return r.read().decode()


def sample(text: str, series: str) -> float:
    m = re.search("^" + re.escape(series) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_metrics_move(rest, client, server, name):
    insert_ok = 'quiver_requests_total{protocol="rest",method="entities/insert",code="0"}'
    describe_missing = 'quiver_requests_total{protocol="rest",method="collections/describe",code="100"}'
    grpc_query = 'quiver_requests_total{protocol="grpc",method="query",code="0"}'
    hist = 'quiver_request_duration_seconds_count{protocol="rest",method="entities/insert",code="0"}'
    before = scrape(server)
    rest.ok("collections/create", collectionName=name, dimension=2)
    rest.ok("entities/insert", collectionName=name, data=[{"id": i, "vector": [i, 0]} for i in range(7)])
    rest.ok("entities/delete", collectionName=name, filter="id < 3")
    rest.err("collections/describe", COLLECTION_NOT_FOUND, collectionName="no_such_coll")
    client.query(name, filter="id >= 0", output_fields=["id"])
    after = scrape(server)
    assert sample(after, insert_ok) == sample(before, insert_ok) + 1
    assert sample(after, hist) == sample(before, hist) + 1
    assert sample(after, describe_missing) == sample(before, describe_missing) + 1
    assert sample(after, grpc_query) >= sample(before, grpc_query) + 1
    assert sample(after, "quiver_rows_inserted_total") >= sample(before, "quiver_rows_inserted_total") + 7
    assert sample(after, "quiver_rows_deleted_total") >= sample(before, "quiver_rows_deleted_total") + 3
    assert sample(after, "quiver_collections") >= 1
    assert sample(after, "quiver_databases") >= 1
    # REST requests are counted under their endpoint, not again as the RPCs they became.
    rest_insert_rpc = 'quiver_requests_total{protocol="grpc",method="insert",code="0"}'
    assert sample(after, rest_insert_rpc) == sample(before, rest_insert_rpc)
    assert "# TYPE quiver_request_duration_seconds histogram" in after
    drop(rest, name)


# ---------------------------------------------------------------- --auth and TLS


def test_rest_with_auth(make_server, name):
    s = make_server("--auth", name="rest_auth")
    rest = Rest(s.port)
    status, out = rest.raw("collections/list", {})
    assert status == 401 and out["code"] == NEED_AUTHENTICATE, out
    status, out = rest.raw("collections/list", {}, headers={"Authorization": "Bearer root:wrong"})
    assert status == 401 and out["code"] == NEED_AUTHENTICATE, out
    assert "username and password" in out["message"]
    ok = {"Authorization": "Bearer root:Milvus"}
    assert rest.ok("collections/create", headers=ok, collectionName=name, dimension=2) == {}
    assert rest.ok("collections/list", headers=ok) == [name]
    ins = rest.ok("entities/insert", headers=ok, collectionName=name, data=[{"id": 1, "vector": [1, 2]}])
    assert ins == {"insertCount": 1, "insertIds": ["1"]}
    # pymilvus with the same credentials sees it.
    from pymilvus import MilvusClient

    c = MilvusClient(uri=s.uri, token="root:Milvus")
    assert [dict(r) for r in c.query(name, filter="", output_fields=["count(*)"])] == [{"count(*)": 1}]
    c.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_rest_over_tls(make_server, tmp_path, name):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    s = make_server("--tls-cert", str(cert), "--tls-key", str(key), name="rest_tls")
    ctx = ssl.create_default_context(cafile=str(cert))
    body = json.dumps({"collectionName": name, "dimension": 2}).encode()
    req = urllib.request.Request(f"https://127.0.0.1:{s.port}/v2/vectordb/collections/create", data=body, method="POST")
    with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
        assert json.loads(r.read()) == {"code": 0, "data": {}}
    req = urllib.request.Request(f"https://127.0.0.1:{s.port}/v2/vectordb/collections/list", data=b"{}", method="POST")
    with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
        assert json.loads(r.read()) == {"code": 0, "data": [name]}


def test_unknown_grpc_service_is_still_unimplemented(server):
    import grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        call = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as e:
            call(b"", timeout=10)
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        channel.close()
    # ...while a non-gRPC request to an unknown path is a JSON 404.
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}/nowhere", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 404
    assert json.loads(e.value.read())["code"] == 404
