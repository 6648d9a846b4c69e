"""`quiver serve --auth`: credentials on every RPC, users through pymilvus, Milvus's error codes.

Like Milvus, a request without valid credentials fails with the gRPC status UNAUTHENTICATED
(pymilvus 2.5 raises that grpc.RpcError from a failed connect, pymilvus 3.x a MilvusException
raised from it; `conftest.unauthenticated` accepts both and checks the gRPC status and details); credential RPCs fail with Milvus
codes in their status (1100 invalid name/password, 1400 wrong old password, 1401 dropping root,
65535 user exists).
"""

import base64

import grpc
import pytest
from pymilvus import MilvusClient, MilvusException
from pymilvus.grpc_gen import milvus_pb2

from conftest import unauthenticated

BAD_CREDENTIALS = "auth check failure, please check username and password are correct"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    from conftest import QuiverServer

    base = tmp_path_factory.mktemp("auth")
    s = QuiverServer(base / "data", base / "quiver.log", ["--auth"])
    s.start()
    yield s
    assert s.stop() == 0


@pytest.fixture
def root(auth_server):
    c = MilvusClient(uri=auth_server.uri, token="root:Milvus")
    yield c
    c.close()


def raw_call(uri, method, req, resp, authorization=None):
    channel = grpc.insecure_channel(uri.split("://")[1])
    try:
        md = [] if authorization is None else [("authorization", authorization)]
        return channel.unary_unary(
            f"/milvus.proto.milvus.MilvusService/{method}",
            request_serializer=req.SerializeToString,
            response_deserializer=resp.FromString,
        )(req, timeout=10, metadata=md)
    finally:
        channel.close()


def b64(s):
    return base64.b64encode(s.encode()).decode()


def test_root_with_default_password(auth_server, root, name):
    assert name not in root.list_collections()
    root.create_collection(name, dimension=2)
    root.insert(name, [{"id": 1, "vector": [1.0, 0.0]}])
    assert root.get(name, ids=[1])[0]["id"] == 1
    # user + password, the other way pymilvus sends credentials
    c = MilvusClient(uri=auth_server.uri, user="root", password="Milvus")
    assert name in c.list_collections()
    c.close()


def test_wrong_or_missing_credentials(auth_server):
    unauthenticated(lambda: MilvusClient(uri=auth_server.uri, token="root:milvus"), BAD_CREDENTIALS)
    unauthenticated(
        lambda: MilvusClient(uri=auth_server.uri, user="nobody", password="Milvus"),
        BAD_CREDENTIALS,
    )
    unauthenticated(
        lambda: MilvusClient(uri=auth_server.uri), "missing authorization in header"
    )


def test_every_rpc_is_checked(auth_server):
    uri = auth_server.uri
    calls = [
        ("Connect", milvus_pb2.ConnectRequest(), milvus_pb2.ConnectResponse),
        ("ListDatabases", milvus_pb2.ListDatabasesRequest(), milvus_pb2.ListDatabasesResponse),
        ("ShowCollections", milvus_pb2.ShowCollectionsRequest(), milvus_pb2.ShowCollectionsResponse),
        ("ListCredUsers", milvus_pb2.ListCredUsersRequest(), milvus_pb2.ListCredUsersResponse),
        ("GetVersion", milvus_pb2.GetVersionRequest(), milvus_pb2.GetVersionResponse),
    ]
    for method, req, resp in calls:
        unauthenticated(lambda: raw_call(uri, method, req, resp), "missing authorization in header")
        unauthenticated(
            lambda: raw_call(uri, method, req, resp, b64("root:nope")), BAD_CREDENTIALS
        )
        unauthenticated(lambda: raw_call(uri, method, req, resp, "%%%"), "invalid token format")
        # a token without ':' would be an API key in Milvus; Quiver has none
        unauthenticated(lambda: raw_call(uri, method, req, resp, b64("apikey")), BAD_CREDENTIALS)
        ok = raw_call(uri, method, req, resp, b64("root:Milvus"))
        assert not ok.HasField("status") or ok.status.code == 0, method
    # a raw `user:password` header is accepted too
    users = raw_call(
        uri,
        "ListCredUsers",
        milvus_pb2.ListCredUsersRequest(),
        milvus_pb2.ListCredUsersResponse,
        "root:Milvus",
    )
    assert "root" in users.usernames


def test_user_lifecycle(auth_server, root):
    uri = auth_server.uri
    assert root.list_users() == ["root"]
    root.create_user("alice", "alice-pw1")
    assert root.list_users() == ["alice", "root"]
    alice = MilvusClient(uri=uri, user="alice", password="alice-pw1")
    assert isinstance(alice.list_collections(), list)
    token_alice = MilvusClient(uri=uri, token="alice:alice-pw1")
    token_alice.close()

    with pytest.raises(MilvusException) as e:
        root.update_password("alice", "not-her-pw", "alice-pw2")
    assert (e.value.code, e.value.message) == (
        1400,
        "old password not correct for alice: not authenticated",
    )
    with pytest.raises(MilvusException) as e:
        root.update_password("ghost", "whatever1", "whatever2")
    assert e.value.code == 1400
    with pytest.raises(MilvusException) as e:
        root.update_password("alice", "alice-pw1", "short")
    assert e.value.code == 1100 and "invalid password" in e.value.message

    root.update_password("alice", "alice-pw1", "alice-pw2")
    # the old password stops working at once (the verification cache is dropped)
    unauthenticated(alice.list_collections, BAD_CREDENTIALS)
    alice.close()
    alice = MilvusClient(uri=uri, user="alice", password="alice-pw2")
    assert isinstance(alice.list_collections(), list)

    root.drop_user("alice")
    unauthenticated(alice.list_collections, BAD_CREDENTIALS)
    alice.close()
    assert root.list_users() == ["root"]
    root.drop_user("never-existed")  # succeeds, as in Milvus


def test_credential_errors(root):
    with pytest.raises(MilvusException) as e:
        root.drop_user("root")
    assert (e.value.code, e.value.message) == (
        1401,
        "root user cannot be deleted: privilege not permitted",
    )
    with pytest.raises(MilvusException) as e:
        root.create_user("root", "another-pw")
    assert (e.value.code, e.value.message) == (65535, "user already exists: root")
    for bad in ["0", "n@me", "h h", "x" * 33]:
        with pytest.raises(MilvusException) as e:
            root.create_user(bad, "valid-pw1")
        assert e.value.code == 1100 and "invalid parameter" in e.value.message, bad
    for bad in ["0", "p@ss", "1+1=2", "x" * 257]:
        with pytest.raises(MilvusException) as e:
            root.create_user("bob", bad)
        assert e.value.code == 1100 and "invalid password" in e.value.message, bad
    assert "bob" not in root.list_users()


def test_users_survive_restart_and_root_password_flag(make_server):
    s = make_server("--auth", "--root-password", "first-pw")
    unauthenticated(lambda: MilvusClient(uri=s.uri, token="root:Milvus"), BAD_CREDENTIALS)
    root = MilvusClient(uri=s.uri, token="root:first-pw")
    root.create_user("carol", "carol-pw1")
    root.update_password("root", "first-pw", "second-pw")
    root.close()
    # --root-password applies only when root is created: a restart with another one changes
    # nothing, and the server says so
    s.args = ["--auth", "--root-password", "third-pw"]
    s.restart()
    assert "root user already exists with another password" in s.log()
    unauthenticated(lambda: MilvusClient(uri=s.uri, token="root:third-pw"), BAD_CREDENTIALS)
    root = MilvusClient(uri=s.uri, token="root:second-pw")
    assert root.list_users() == ["carol", "root"]
    carol = MilvusClient(uri=s.uri, token="carol:carol-pw1")
    assert isinstance(carol.list_collections(), list)
    carol.close()
    root.close()
    # without --auth the same data directory lets anyone in
    s.args = []
    s.restart()
    anyone = MilvusClient(uri=s.uri)
    assert anyone.list_users() == ["carol", "root"]
    anyone.close()


def test_auth_from_the_environment(make_server):
    s = make_server(env={"QUIVER_AUTH": "1", "QUIVER_ROOT_PASSWORD": "env-pw-1"})
    unauthenticated(lambda: MilvusClient(uri=s.uri), "missing authorization in header")
    unauthenticated(lambda: MilvusClient(uri=s.uri, token="root:Milvus"), BAD_CREDENTIALS)
    c = MilvusClient(uri=s.uri, token="root:env-pw-1")
    assert c.list_users() == ["root"]
    c.close()


def test_off_by_default(server, client):
    # the shared server runs without --auth: credentials are neither needed nor checked, and
    # users can still be managed
    c = MilvusClient(uri=server.uri, token="root:not-checked")
    assert isinstance(c.list_collections(), list)
    c.close()
    client.create_user("dave", "dave-pw-1")
    assert "dave" in client.list_users()
    client.drop_user("dave")
    assert "dave" not in client.list_users()
