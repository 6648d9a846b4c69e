"""The model registry over HTTP (/v1 on the server port): models, versions (JSON, multipart and
server-path uploads), verified artifact downloads, aliases with compare-and-swap and history,
deletion rules, the hash-chained audit log (an edited event is caught), restart persistence,
auth, and the OpenAPI document."""

import base64
import hashlib
import json
import re
import urllib.error
import urllib.request
import uuid

import pytest


def call(server, method, path, body=None, headers=None, raw=None, content_type=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", data=data, method=method)
    req.add_header("Content-Type", content_type or "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            payload = r.read()
            ctype = r.headers.get("Content-Type", "")
            return r.status, (json.loads(payload) if "json" in ctype and "ndjson" not in ctype else payload)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def ok(server, method, path, body=None, **kw):
    status, out = call(server, method, path, body, **kw)
    assert status == 200, (status, out)
    return out


SPACE = {"dim": 384, "metric": "COSINE", "normalize": True, "pooling": "mean", "dtype": "float32"}


def files(*pairs):
    return [{"path": p, "content_base64": base64.b64encode(c).decode()} for p, c in pairs]


@pytest.fixture
def model(server):
    name = "m_" + uuid.uuid4().hex[:10]
    ok(server, "POST", "/v1/models", {"name": name, "description": "encoder"})
    return name


def test_models_versions_and_artifacts(server, model, tmp_path):
    status, err = call(server, "POST", "/v1/models", {"name": model})
    assert status == 409 and err["code"] == "conflict"
    status, err = call(server, "POST", "/v1/models", {"name": "bad name!"})
    assert status == 400 and "invalid model name" in err["message"]
    status, err = call(server, "POST", "/v1/models", {"description": "no name"})
    assert status == 400 and "name is required" in err["message"]
    assert model in [m["name"] for m in ok(server, "GET", "/v1/models")["models"]]

    v1 = ok(server, "POST", f"/v1/models/{model}/versions",
            {"files": files(("config.json", b"{}"), ("w/model.bin", b"\x01" * 100)), "space": SPACE,
             "lineage": {"source_uri": "hf://x", "run_id": "r1"}, "tags": {"stage": "dev"}})
    assert v1["version"] == 1 and v1["status"] == "READY" and v1["space_id"].startswith("sp_")
    sha = {f["path"]: f["sha256"] for f in v1["files"]}
    assert sha["w/model.bin"] == hashlib.sha256(b"\x01" * 100).hexdigest()
    assert ok(server, "GET", f"/v1/models/{model}/versions/1/files/w/model.bin") == b"\x01" * 100

    # Multipart upload (files named by their paths, plus a metadata part).
    boundary = "qvb" + uuid.uuid4().hex
    parts = []
    for fname, content in [("config.json", b'{"v":2}'), ("tokenizer.json", b"{}")]:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{fname}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
    meta = json.dumps({"space": SPACE, "lineage": {"parent_version": 1}}).encode()
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n'.encode() + meta + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    v2 = ok(server, "POST", f"/v1/models/{model}/versions", raw=body,
            content_type=f"multipart/form-data; boundary={boundary}")
    assert v2["version"] == 2 and v2["lineage"]["parent_version"] == 1
    assert [f["path"] for f in v2["files"]] == ["config.json", "tokenizer.json"]
    assert v2["space_id"] == v1["space_id"]

    # From a directory on the server.
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_bytes(b'{"mean": true}')
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 64)
    v3 = ok(server, "POST", f"/v1/models/{model}/versions",
            {"source_path": str(tmp_path), "space": dict(SPACE, dim=768)})
    assert [f["path"] for f in v3["files"]] == ["1_Pooling/config.json", "model.safetensors"]
    assert v3["space_id"] != v1["space_id"]

    info = ok(server, "GET", f"/v1/models/{model}")
    assert info["versions"] == [1, 2, 3] and info["latest_version"] == 3
    assert ok(server, "GET", f"/v1/models/{model}/versions/2")["sha256"] == v2["sha256"]

    for path, body, code in [
        (f"/v1/models/{model}/versions", {"files": files(("a", b"x")), "space": dict(SPACE, metric="L1")}, 400),
        (f"/v1/models/{model}/versions", {"files": files(("../x", b"x")), "space": SPACE}, 400),
        (f"/v1/models/{model}/versions", {"space": SPACE}, 400),
        (f"/v1/models/{model}/versions", {"source_path": "/no/such/path", "space": SPACE}, 400),
        ("/v1/models/nope/versions", {"files": files(("a", b"x")), "space": SPACE}, 404),
    ]:
        status, err = call(server, "POST", path, body)
        assert status == code and err["message"], (path, body, status, err)
    assert call(server, "GET", f"/v1/models/{model}/versions/9")[0] == 404
    assert call(server, "GET", f"/v1/models/{model}/versions/x")[0] == 400
    assert call(server, "GET", f"/v1/models/{model}/versions/1/files/missing")[0] == 404


def test_aliases_cas_history_and_delete_rules(server, model):
    for i in range(3):
        ok(server, "POST", f"/v1/models/{model}/versions", {"files": files(("f", str(i).encode())), "space": SPACE})
    base = f"/v1/models/{model}/aliases/champion"
    ok(server, "PUT", base, {"version": 1, "expected_version": None, "reason": "first"})
    status, err = call(server, "PUT", base, {"version": 2, "expected_version": None})
    assert status == 409 and "expected" in err["message"]
    status, err = call(server, "PUT", base, {"version": 2, "expected_version": 3})
    assert status == 409
    assert ok(server, "GET", base)["version"] == 1
    ok(server, "PUT", base, {"version": 2, "expected_version": 1, "reason": "ndcg +0.02"})
    assert call(server, "PUT", base, {"version": 7})[0] == 404
    assert call(server, "PUT", base, {})[0] == 400
    hist = ok(server, "GET", base + "/history")["history"]
    assert [(h["from"], h["to"]) for h in hist] == [(None, 1), (1, 2)]
    assert hist[1]["reason"] == "ndcg +0.02" and hist[1]["actor"] == "anonymous"
    # A version an alias uses cannot be deleted.
    status, err = call(server, "DELETE", f"/v1/models/{model}/versions/2")
    assert status == 409 and "champion" in err["message"]
    ok(server, "DELETE", f"/v1/models/{model}/versions/1")
    assert ok(server, "GET", f"/v1/models/{model}")["versions"] == [2, 3]
    ok(server, "DELETE", base)
    assert call(server, "GET", base)[0] == 404
    assert len(ok(server, "GET", base + "/history")["history"]) == 3


def test_audit_log_and_openapi(server, model):
    ok(server, "POST", f"/v1/models/{model}/versions", {"files": files(("f", b"x")), "space": SPACE})
    events = ok(server, "GET", "/v1/audit")["events"]
    assert events and all(e["seq"] == i + 1 for i, e in enumerate(events))
    mine = [e for e in events if e["subject"].startswith(model)]
    assert [e["kind"] for e in mine] == ["model_created", "version_registered"]
    last = events[-1]["seq"]
    assert ok(server, "GET", f"/v1/audit?since={last - 1}")["events"][0]["seq"] == last
    assert call(server, "GET", "/v1/audit?since=x")[0] == 400
    rep = ok(server, "GET", "/v1/audit/verify")
    assert rep["ok"] and rep["events"] == len(events) and rep["head_hash"] == events[-1]["hash"]
    lines = ok(server, "GET", "/v1/audit/export").decode().splitlines()
    assert [json.loads(l)["hash"] for l in lines] == [e["hash"] for e in events]
    doc = ok(server, "GET", "/v1/openapi.json")
    assert doc["openapi"].startswith("3.") and "/v1/models/{name}/aliases/{alias}" in doc["paths"]
    for p in ["/v1/serving-aliases/{name}/promote", "/v1/serving-aliases/{name}/experiments", "/v1/feedback"]:
        assert p in doc["paths"], p
    # Every schema a path or schema refers to is defined.
    refs = set(re.findall(r"#/components/schemas/(\w+)", json.dumps(doc)))
    assert refs <= set(doc["components"]["schemas"]), refs - set(doc["components"]["schemas"])
    assert "/v1/audit/verify" in doc["paths"]


def test_tampering_is_caught_and_state_survives_restart(own_server):
    s = own_server
    ok(s, "POST", "/v1/models", {"name": "enc"})
    v = ok(s, "POST", "/v1/models/enc/versions", {"files": files(("w.bin", b"weights" * 10)), "space": SPACE})
    ok(s, "PUT", "/v1/models/enc/aliases/prod", {"version": 1})
    s.restart()
    assert ok(s, "GET", "/v1/models/enc/aliases/prod")["version"] == 1
    assert ok(s, "GET", "/v1/models/enc/versions/1")["sha256"] == v["sha256"]
    # A changed artifact is reported, never served.
    blob = s.data_dir / "registry" / "blobs" / "sha256" / v["files"][0]["sha256"][:2] / v["files"][0]["sha256"]
    blob.write_bytes(b"evil" * 10)
    status, err = call(s, "GET", "/v1/models/enc/versions/1/files/w.bin")
    assert status == 500 and err["code"] == "artifact_corrupt"
    # An edited audit event breaks the chain at that event.
    s.stop()
    log = s.data_dir / "registry" / "audit.log"
    lines = log.read_text().splitlines()
    lines[2] = lines[2].replace('"to":1', '"to":2')
    log.write_text("\n".join(lines) + "\n")
    s.start()
    rep = ok(s, "GET", "/v1/audit/verify")
    assert not rep["ok"] and rep["first_bad"]["seq"] == 3 and rep["events"] == 2
    # The edited event is not acted on, and changes are refused until repaired.
    assert call(s, "GET", "/v1/models/enc/aliases/prod")[0] == 404
    status, err = call(s, "POST", "/v1/models", {"name": "other"})
    assert status == 409 and "audit log is broken" in err["message"]


def test_auth_is_required_and_names_the_actor(make_server):
    s = make_server("--auth", env={"QUIVER_ROOT_PASSWORD": "Secret-123"})
    status, err = call(s, "GET", "/v1/models")
    assert status == 401 and err["code"] == "unauthenticated"
    status, _ = call(s, "GET", "/v1/models", headers={"Authorization": "Bearer root:wrong"})
    assert status == 401
    auth = {"Authorization": "Bearer root:Secret-123"}
    ok(s, "POST", "/v1/models", {"name": "enc"}, headers=auth)
    assert ok(s, "GET", "/v1/audit", headers=auth)["events"][0]["actor"] == "root"


def test_field_binding_refuses_other_spaces(own_server):
    from pymilvus import MilvusClient

    s = own_server
    c = MilvusClient(uri=s.uri)
    c.create_collection("docs", dimension=8)  # AUTOINDEX, COSINE
    ok(s, "POST", "/v1/models", {"name": "enc"})
    sp = dict(SPACE, dim=8)
    v1 = ok(s, "POST", "/v1/models/enc/versions", {"files": files(("w", b"1")), "space": sp})
    ok(s, "POST", "/v1/models/enc/versions", {"files": files(("w", b"2")), "space": dict(sp, dim=16)})
    v3 = ok(s, "POST", "/v1/models/enc/versions", {"files": files(("w", b"3")), "space": dict(sp, pooling="cls")})
    ok(s, "POST", "/v1/models/enc/versions", {"files": files(("w", b"4")), "space": dict(sp, metric="L2")})
    path = "/v1/collections/docs/fields/vector/model"
    assert call(s, "GET", path)[0] == 404
    status, err = call(s, "PUT", path, {"model": "enc", "version": 2})
    assert status == 400 and "dim" in err["message"]
    status, err = call(s, "PUT", path, {"model": "enc", "version": 4})
    assert status == 400 and "COSINE" in err["message"]
    assert call(s, "PUT", "/v1/collections/nope/fields/vector/model", {"model": "enc", "version": 1})[0] == 404
    assert call(s, "PUT", "/v1/collections/docs/fields/id/model", {"model": "enc", "version": 1})[0] == 400
    b = ok(s, "PUT", path, {"model": "enc", "version": 1, "reason": "launch"})
    assert b["space_id"] == v1["space_id"] and ok(s, "GET", path)["version"] == 1

    def v2(action, body):
        return ok(s, "POST", f"/v2/vectordb/entities/{action}", dict(body, collectionName="docs"))

    rows = [{"id": i, "vector": [float(i + 1)] + [1.0] * 7} for i in range(20)]
    wrong = v2("insert", {"data": rows, "spaceId": v3["space_id"]})
    assert wrong["code"] == 1100 and "space mismatch" in wrong["message"], wrong
    assert v2("insert", {"data": rows, "spaceId": v1["space_id"]})["code"] == 0
    assert v2("insert", {"data": rows[:1]})["code"] == 0  # no declaration: nothing to check
    q = {"data": [[1.0] * 8], "limit": 3}
    wrong = v2("search", dict(q, spaceId=v3["space_id"]))
    assert wrong["code"] == 1100 and "enc@1" in wrong["message"], wrong
    assert len(v2("search", dict(q, spaceId=v1["space_id"]))["data"]) == 3
    assert v2("search", dict(q, space_id=v3["space_id"]))["code"] == 1100  # snake_case works too
    # The bound version is protected; the field holds data now, so another space needs a migration.
    status, err = call(s, "DELETE", "/v1/models/enc/versions/1")
    assert status == 409 and "docs" in err["message"]
    status, err = call(s, "PUT", path, {"model": "enc", "version": 3})
    assert status == 409 and "migration" in err["message"]
    kinds = [e["kind"] for e in ok(s, "GET", "/v1/audit")["events"]]
    assert kinds.count("binding_set") == 1
    c.close()
    s.restart()
    assert ok(s, "GET", path)["space_id"] == v1["space_id"]
    assert call(s, "POST", "/v2/vectordb/entities/search", dict(q, collectionName="docs", spaceId="sp_0000000000000000"))[1]["code"] == 1100


def test_serving_alias_promote_and_rollback_move_pymilvus_searches(own_server):
    from pymilvus import MilvusClient, MilvusException

    s = own_server
    c = MilvusClient(uri=s.uri)
    # Two collections with disjoint ids: what a search on the alias returns says which one serves.
    for name, base in [("docs_a", 0), ("docs_b", 1000)]:
        c.create_collection(name, dimension=4)
        c.insert(name, [{"id": base + i, "vector": [1.0, float(i), 0.5, 0.25]} for i in range(10)])
    ok(s, "POST", "/v1/models", {"name": "enc"})
    sp = dict(SPACE, dim=4)
    ok(s, "POST", "/v1/models/enc/versions", {"files": files(("w", b"1")), "space": sp})
    ok(s, "POST", "/v1/models/enc/versions", {"files": files(("w", b"2")), "space": dict(sp, pooling="cls")})
    ok(s, "PUT", "/v1/collections/docs_a/fields/vector/model", {"model": "enc", "version": 1})
    ok(s, "PUT", "/v1/collections/docs_b/fields/vector/model", {"model": "enc", "version": 2})

    def bundle(coll, v):
        return {"collection": coll, "field": "vector", "model": "enc", "version": v, "search_params": {"ef": 64}}

    def served():
        hits = c.search("prod", data=[[1.0, 3.0, 0.5, 0.25]], limit=3)[0]
        return {h["id"] // 1000 for h in hits}

    status, err = call(s, "POST", "/v1/serving-aliases", {"name": "prod", "bundle": bundle("docs_a", 2)})
    assert status == 400 and "bound to enc@1" in err["message"]
    status, err = call(s, "POST", "/v1/serving-aliases", {"name": "prod", "bundle": bundle("nope", 1)})
    assert status == 404
    sa = ok(s, "POST", "/v1/serving-aliases", {"name": "prod", "bundle": bundle("docs_a", 1), "reason": "launch"})
    assert sa["revision"] == 1 and served() == {0}
    # The bundle's search params are the defaults of searches through the alias: an invalid one
    # shows it is applied; the request's own value wins.
    bad = dict(bundle("docs_a", 1), search_params={"ef": 0})
    sa = ok(s, "POST", "/v1/serving-aliases/prod/promote", {"bundle": bad, "expected_revision": 1})
    with pytest.raises(MilvusException) as e:
        c.search("prod", data=[[1.0, 3.0, 0.5, 0.25]], limit=3)
    assert "ef" in e.value.message
    assert len(c.search("prod", data=[[1.0, 3.0, 0.5, 0.25]], limit=3, search_params={"params": {"ef": 32}})[0]) == 3
    sa = ok(s, "POST", "/v1/serving-aliases/prod/rollback", {"to": 1, "expected_revision": 2})
    assert sa["revision"] == 3 and served() == {0}
    assert c.describe_alias("prod")["collection_name"] == "docs_a"
    # Promote with a stale revision: refused, nothing moves.
    status, err = call(s, "POST", "/v1/serving-aliases/prod/promote",
                       {"bundle": bundle("docs_b", 2), "expected_revision": 1, "reason": "x"})
    assert status == 409 and served() == {0}
    sa = ok(s, "POST", "/v1/serving-aliases/prod/promote",
            {"bundle": bundle("docs_b", 2), "expected_revision": 3, "reason": "ndcg +3%", "evidence": ["eval-7"]})
    assert sa["revision"] == 4 and served() == {1}
    # The previous bundle's collection is kept while it is in the recent history.
    with pytest.raises(MilvusException) as e:
        c.drop_collection("docs_a")
    assert "serving alias" in e.value.message
    status, err = call(s, "POST", "/v1/serving-aliases/prod/rollback", {"to": "previous", "expected_revision": 1})
    assert status == 409 and served() == {1}
    sa = ok(s, "POST", "/v1/serving-aliases/prod/rollback",
            {"to": "previous", "reason": "p99 regression", "expected_revision": 4, "evidence": ["alert-3"]})
    assert sa["revision"] == 5 and sa["bundle"]["collection"] == "docs_a" and served() == {0}
    sa = ok(s, "POST", "/v1/serving-aliases/prod/rollback", {"to": 4, "reason": "fixed"})
    assert sa["revision"] == 6 and served() == {1}
    hist = ok(s, "GET", "/v1/serving-aliases/prod/history")["history"]
    assert [(h["kind"], h["restored"]) for h in hist] == [
        ("created", None), ("promoted", None), ("rolled_back", 1), ("promoted", None),
        ("rolled_back", 3), ("rolled_back", 4)]
    assert hist[3]["evidence"] == ["eval-7"] and hist[4]["reason"] == "p99 regression"
    assert hist[4]["evidence"] == ["alert-3"]
    kinds = [e["kind"] for e in ok(s, "GET", "/v1/audit")["events"]]
    assert kinds.count("serving_promoted") == 2 and kinds.count("serving_rolled_back") == 3
    assert ok(s, "GET", "/v1/audit/verify")["ok"]
    c.close()
    # After a restart the alias still serves revision 6's collection.
    s.restart()
    c = MilvusClient(uri=s.uri)
    assert ok(s, "GET", "/v1/serving-aliases/prod")["revision"] == 6 and served() == {1}
    listed = ok(s, "GET", "/v1/serving-aliases")["serving_aliases"]
    assert [(a["name"], a["revision"], a["bundle"]["collection"]) for a in listed] == [("prod", 6, "docs_b")]
    assert call(s, "GET", "/v1/serving-aliases/nope")[0] == 404
    c.close()


def test_cli_mirrors_the_api(own_server, tmp_path):
    import subprocess

    from conftest import quiver_bin

    s = own_server

    def cli(*args, ok_exit=True):
        p = subprocess.run([str(quiver_bin()), *args, "--server", f"http://127.0.0.1:{s.port}"],
                           capture_output=True, text=True, timeout=60)
        assert (p.returncode == 0) == ok_exit, (args, p.returncode, p.stdout, p.stderr)
        return p

    (tmp_path / "config.json").write_text("{}")
    out = json.loads(cli("model", "register", "enc", "--description", "an encoder").stdout)
    assert out["name"] == "enc"
    v = json.loads(cli("model", "register", "enc", "--from", str(tmp_path),
                       "--space", json.dumps({"dim": 4, "metric": "COSINE"}), "--run-id", "r9").stdout)
    assert v["version"] == 1 and v["lineage"]["run_id"] == "r9"
    assert [m["name"] for m in json.loads(cli("model", "list").stdout)["models"]] == ["enc"]
    assert json.loads(cli("model", "show", "enc", "--version", "1").stdout)["sha256"] == v["sha256"]
    cli("alias", "set", "enc", "champion", "1", "--expected", "0", "--reason", "first")
    p = cli("alias", "set", "enc", "champion", "1", "--expected", "0", ok_exit=False)
    assert "conflict (409)" in p.stderr
    hist = json.loads(cli("alias", "history", "enc", "champion").stdout)["history"]
    assert [h["to"] for h in hist] == [1]
    # Serving alias: created over HTTP, promoted and rolled back with the CLI.
    from pymilvus import MilvusClient

    c = MilvusClient(uri=s.uri)
    for coll in ("a", "b"):
        c.create_collection(coll, dimension=4)
    c.close()
    b = lambda coll: {"collection": coll, "field": "vector"}
    ok(s, "POST", "/v1/serving-aliases", {"name": "prod", "bundle": b("a")})
    out = json.loads(cli("alias", "promote", "prod", "--bundle", json.dumps(b("b")),
                         "--expected-revision", "1", "--reason", "better", "--evidence", "eval-1").stdout)
    assert out["revision"] == 2 and out["bundle"]["collection"] == "b"
    out = json.loads(cli("alias", "rollback", "prod", "--reason", "oops").stdout)
    assert out["revision"] == 3 and out["bundle"]["collection"] == "a"
    assert len(json.loads(cli("alias", "history", "prod").stdout)["history"]) == 3
    assert json.loads(cli("audit", "verify").stdout)["ok"]
    lines = cli("audit", "export").stdout.splitlines()
    assert [json.loads(l)["seq"] for l in lines] == list(range(1, len(lines) + 1))
    p = cli("model", "show", "nope", ok_exit=False)
    assert "not_found (404)" in p.stderr


def test_binding_through_pymilvus_collection_properties(own_server):
    from pymilvus import MilvusClient, MilvusException

    s = own_server
    c = MilvusClient(uri=s.uri)
    ok(s, "POST", "/v1/models", {"name": "enc"})
    v1 = ok(s, "POST", "/v1/models/enc/versions", {"files": files(("w", b"1")), "space": dict(SPACE, dim=4)})
    c.create_collection("bound", dimension=4, properties={"quiver.model.vector": "enc@1"})
    b = ok(s, "GET", "/v1/collections/bound/fields/vector/model")
    assert (b["model"], b["version"], b["space_id"]) == ("enc", 1, v1["space_id"])
    with pytest.raises(MilvusException) as e:
        c.create_collection("unbound", dimension=4, properties={"quiver.model": "enc@9"})
    assert "no version 9" in e.value.message
    assert not c.has_collection("unbound")
    with pytest.raises(MilvusException):
        c.create_collection("wrongdim", dimension=8, properties={"quiver.model": "enc@1"})
    assert not c.has_collection("wrongdim")
    c.create_collection("later", dimension=4)
    c.alter_collection_properties("later", {"quiver.model": "enc@1"})
    assert ok(s, "GET", "/v1/collections/later/fields/vector/model")["version"] == 1
    with pytest.raises(MilvusException) as e:
        c.alter_collection_properties("later", {"quiver.model": "enc"})
    assert "name@version" in e.value.message
    actors = {e["actor"] for e in ok(s, "GET", "/v1/audit")["events"] if e["kind"] == "binding_set"}
    assert actors == {"anonymous"}
    ok(s, "DELETE", "/v1/collections/later/fields/vector/model")
    assert call(s, "GET", "/v1/collections/later/fields/vector/model")[0] == 404
    assert call(s, "DELETE", "/v1/collections/later/fields/vector/model")[0] == 404
    c.close()


def test_acknowledged_registry_changes_survive_kill_9(own_server):
    import os
    import signal
    import threading
    import time

    s = own_server
    acked, stop = [], threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            name = f"k{i}"
            try:
                status, _ = call(s, "POST", "/v1/models", {"name": name})
                if status == 200:
                    acked.append(name)
                status, _ = call(s, "POST", f"/v1/models/{name}/versions",
                                 {"files": files(("w.bin", os.urandom(2048))), "space": SPACE})
                if status == 200:
                    acked.append(name + "@1")
            except (OSError, urllib.error.URLError):
                return
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(1.5)
    os.kill(s.proc.pid, signal.SIGKILL)
    s.proc.wait()
    stop.set()
    t.join(timeout=30)
    assert len(acked) > 5
    s.start()
    rep = ok(s, "GET", "/v1/audit/verify")
    assert rep["ok"], rep
    for a in acked:
        if "@" in a:
            name = a.split("@")[0]
            v = ok(s, "GET", f"/v1/models/{name}/versions/1")
            assert ok(s, "GET", f"/v1/models/{name}/versions/1/files/w.bin") and v["files"][0]["size"] == 2048
        else:
            ok(s, "GET", f"/v1/models/{a}")
    # The log goes on after the crash.
    ok(s, "POST", "/v1/models", {"name": "after_crash"})
    assert ok(s, "GET", "/v1/audit/verify")["ok"]


def test_embed_with_a_registered_model(server):
    import math
    import os
    from pathlib import Path

    d = os.environ.get("QUIVER_MINILM_DIR")
    if not d or not (Path(d) / "model.safetensors").exists():
        assert not os.environ.get("QUIVER_REQUIRE_MODEL"), "QUIVER_REQUIRE_MODEL set but no model"
        pytest.skip("set QUIVER_MINILM_DIR (scripts/fetch_model.sh)")
    name = "minilm_" + uuid.uuid4().hex[:8]
    ok(server, "POST", "/v1/models", {"name": name})
    space = {"dim": 384, "metric": "COSINE", "normalize": True, "pooling": "mean"}
    v = ok(server, "POST", f"/v1/models/{name}/versions", {"source_path": d, "space": space})
    texts = ["a small dog barks", "the puppy is barking", "interest rates rose again"]
    out = ok(server, "POST", f"/v1/models/{name}/versions/1/embed", {"inputs": texts, "role": "document"})
    vecs = out["vectors"]
    assert out["space_id"] == v["space_id"] and len(vecs) == 3 and all(len(x) == 384 for x in vecs)
    assert all(abs(math.sqrt(sum(a * a for a in x)) - 1) < 1e-4 for x in vecs)
    cos = lambda a, b: sum(x * y for x, y in zip(a, b))
    assert cos(vecs[0], vecs[1]) > cos(vecs[0], vecs[2]) + 0.2
    # Parity with the sentence-transformers vector of the first wn-gloss text, when the data is here.
    for root in [os.environ.get("QUIVER_DATASETS"), Path(__file__).resolve().parents[3] / "shared/datasets", "/work/shared/datasets"]:
        if root and (Path(root) / "wn-gloss/texts_base.txt").exists():
            import numpy as np

            first = (Path(root) / "wn-gloss/texts_base.txt").read_text().splitlines()[0]
            stored = np.fromfile(Path(root) / "wn-gloss/base.f16", dtype="<f2", count=384).astype(np.float32)
            got = np.array(ok(server, "POST", f"/v1/models/{name}/versions/1/embed", {"inputs": [first]})["vectors"][0])
            assert float(got @ stored / np.linalg.norm(stored)) >= 0.999
            break
    # Through a model alias, and the errors.
    ok(server, "PUT", f"/v1/models/{name}/aliases/prod", {"version": 1})
    same = ok(server, "POST", f"/v1/models/{name}/aliases/prod/embed", {"inputs": texts[:1], "role": "query"})
    assert max(abs(a - b) for a, b in zip(same["vectors"][0], vecs[0])) < 1e-5
    for body, code in [({"inputs": []}, 400), ({"inputs": ["x"], "role": "other"}, 400), ({"inputs": "x"}, 400)]:
        assert call(server, "POST", f"/v1/models/{name}/versions/1/embed", body)[0] == code, body
    assert call(server, "POST", f"/v1/models/{name}/versions/9/embed", {"inputs": ["x"]})[0] == 404
    ok(server, "POST", f"/v1/models/{name}/versions", {"source_path": d, "space": dict(space, dim=768)})
    status, err = call(server, "POST", f"/v1/models/{name}/versions/2/embed", {"inputs": ["x"]})
    assert status == 409 and "768" in err["message"]
    # A space whose pooling contradicts the model's own is refused rather than half-honoured.
    v = ok(server, "POST", f"/v1/models/{name}/versions", {"source_path": d, "space": dict(space, pooling="cls")})["version"]
    status, err = call(server, "POST", f"/v1/models/{name}/versions/{v}/embed", {"inputs": ["x"]})
    assert status == 409 and "pooling" in err["message"], err
    ok(server, "POST", f"/v1/models/{name}/versions", {"files": files(("notes.txt", b"not a model")), "space": space})
    status, err = call(server, "POST", f"/v1/models/{name}/versions/4/embed", {"inputs": ["x"]})
    assert status == 400 and "encoder" in err["message"]
