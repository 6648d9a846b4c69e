"""Connection-level RPCs: version, health, timestamps, and UNIMPLEMENTED for undeclared RPCs."""

import time

import grpc
import pytest
from pymilvus import connections, utility
from pymilvus.grpc_gen import milvus_pb2


def test_version(client, server):
    assert client.get_server_version() == "v2.5.0"
    alias = "handshake"
    connections.connect(alias, uri=server.uri)
    try:
        assert utility.get_server_version(using=alias) == "v2.5.0"
    finally:
        connections.disconnect(alias)


def test_raw_rpcs(server):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        call = lambda method, req, resp: channel.unary_unary(  # noqa: E731
            f"/milvus.proto.milvus.MilvusService/{method}",
            request_serializer=req.SerializeToString,
            response_deserializer=resp.FromString,
        )(req, timeout=5)
        health = call("CheckHealth", milvus_pb2.CheckHealthRequest(), milvus_pb2.CheckHealthResponse)
        assert health.isHealthy and health.status.code == 0
        ts = call("AllocTimestamp", milvus_pb2.AllocTimestampRequest(), milvus_pb2.AllocTimestampResponse)
        physical_ms = ts.timestamp >> 18
        assert abs(physical_ms - time.time() * 1000) < 60_000
        conn = call("Connect", milvus_pb2.ConnectRequest(), milvus_pb2.ConnectResponse)
        assert conn.identifier != 0 and conn.server_info.build_tags.startswith("quiver")
        with pytest.raises(grpc.RpcError) as e:
            call("SelectRole", milvus_pb2.SelectRoleRequest(), milvus_pb2.SelectRoleResponse)
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        channel.close()
