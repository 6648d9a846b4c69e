"""`quiver serve --tls-cert F --tls-key F`: pymilvus over https with a self-signed certificate
made here (python `cryptography`), alone, with --auth, from a config file, and bad files."""

import datetime
import ipaddress

import grpc
import pytest
from pymilvus import MilvusClient, MilvusException

from conftest import unauthenticated


def make_cert(directory, common_name="localhost"):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(common_name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return make_cert(tmp_path_factory.mktemp("tls"))


def https_client(server, cert_path, **kw):
    server.scheme = "https"
    return MilvusClient(uri=server.uri, server_pem_path=str(cert_path), server_name="localhost", **kw)


def roundtrip(c, name):
    c.create_collection(name, dimension=2)
    c.insert(name, [{"id": i, "vector": [float(i), 1.0]} for i in range(10)])
    res = c.search(name, [[3.0, 1.0]], limit=2, search_params={"metric_type": "COSINE"})
    assert len(res[0]) == 2
    assert c.get(name, ids=[4])[0]["id"] == 4
    c.drop_collection(name)


def test_pymilvus_over_tls(make_server, cert, name):
    cert_path, key_path = cert
    s = make_server("--tls-cert", str(cert_path), "--tls-key", str(key_path))
    c = https_client(s, cert_path)
    roundtrip(c, name)
    c.close()
    # the REST-free raw gRPC path, with the certificate as the only trust root
    creds = grpc.ssl_channel_credentials(root_certificates=cert_path.read_bytes())
    channel = grpc.secure_channel(
        f"127.0.0.1:{s.port}", creds, options=[("grpc.ssl_target_name_override", "localhost")]
    )
    from pymilvus.grpc_gen import milvus_pb2

    v = channel.unary_unary(
        "/milvus.proto.milvus.MilvusService/GetVersion",
        request_serializer=milvus_pb2.GetVersionRequest.SerializeToString,
        response_deserializer=milvus_pb2.GetVersionResponse.FromString,
    )(milvus_pb2.GetVersionRequest(), timeout=10)
    assert v.version.startswith("v2.")
    channel.close()
    # a plaintext client gets nowhere
    channel = grpc.insecure_channel(f"127.0.0.1:{s.port}")
    with pytest.raises(grpc.RpcError) as e:
        channel.unary_unary(
            "/milvus.proto.milvus.MilvusService/GetVersion",
            request_serializer=milvus_pb2.GetVersionRequest.SerializeToString,
            response_deserializer=milvus_pb2.GetVersionResponse.FromString,
        )(milvus_pb2.GetVersionRequest(), timeout=5)
    assert e.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    channel.close()


def test_a_certificate_the_client_does_not_trust(make_server, cert, tmp_path):
    cert_path, key_path = cert
    other_cert, _ = make_cert(tmp_path)
    s = make_server("--tls-cert", str(cert_path), "--tls-key", str(key_path))
    with pytest.raises(MilvusException) as e:
        https_client(s, other_cert, timeout=3)
    assert e.value.code == 2  # CONNECT_FAILED: the handshake never completes


def test_tls_with_auth_and_config_file(make_server, cert, name):
    cert_path, key_path = cert
    s = make_server(base_flags=False, start=False)
    config = s.data_dir.parent / "quiver.toml"
    config.write_text(
        f'data_dir = "data"\nlisten = "127.0.0.1:{s.port}"\n'
        f'metrics_listen = "127.0.0.1:{s.metrics_port}"\nauth = true\n'
        f'root_password = "tls-root-pw"\ntls_cert = "{cert_path}"\ntls_key = "{key_path}"\n'
    )
    s.args = ["--config", str(config)]
    s.start()
    c = https_client(s, cert_path, token="root:tls-root-pw")
    roundtrip(c, name)
    c.close()
    unauthenticated(
        lambda: https_client(s, cert_path, token="root:Milvus"),
        "auth check failure, please check username and password are correct",
    )


def test_bad_tls_files_fail_the_start(make_server, cert, tmp_path):
    cert_path, key_path = cert
    missing = tmp_path / "missing.pem"
    s = make_server("--tls-cert", str(missing), "--tls-key", str(key_path), start=False)
    with pytest.raises(RuntimeError, match="exited with 1"):
        s.start()
    assert f"reading the TLS certificate {missing}" in s.log()
    garbage = tmp_path / "garbage.key"
    garbage.write_text("not a key\n")
    s = make_server("--tls-cert", str(cert_path), "--tls-key", str(garbage), start=False)
    with pytest.raises(RuntimeError, match="exited with 1"):
        s.start()
    assert f"reading the TLS key {garbage}" in s.log()
    s = make_server("--tls-cert", str(cert_path), start=False)
    with pytest.raises(RuntimeError, match="exited with 1"):
        s.start()
    assert "--tls-cert needs --tls-key" in s.log()
