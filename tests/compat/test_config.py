"""`quiver serve --config F` (or QUIVER_CONFIG): precedence is flags > environment > file >
defaults; relative paths in the file are relative to its directory; unknown keys are refused."""

import pytest
from pymilvus import MilvusClient

from conftest import free_port, unauthenticated


def write_config(server, **extra):
    lines = {
        "data_dir": '"data"',
        "listen": f'"127.0.0.1:{server.port}"',
        "metrics_listen": f'"127.0.0.1:{server.metrics_port}"',
    }
    lines.update(extra)
    path = server.data_dir.parent / "quiver.toml"
    path.write_text("".join(f"{k} = {v}\n" for k, v in lines.items()))
    return path


def needs_credentials(server):
    unauthenticated(lambda: MilvusClient(uri=server.uri), "missing authorization in header")


def test_file_alone(make_server, name):
    s = make_server(base_flags=False, start=False)
    path = write_config(s, auth="true", root_password='"file-pw-1"')
    s.args = ["--config", str(path)]
    s.start()
    needs_credentials(s)
    c = MilvusClient(uri=s.uri, token="root:file-pw-1")
    c.create_collection(name, dimension=2)
    c.close()
    # the relative data_dir is next to the file
    assert (path.parent / "data" / "catalog.qvc").exists()


def test_environment_beats_file_and_flags_beat_environment(make_server):
    s = make_server(base_flags=False, start=False, env={"QUIVER_AUTH": "0"})
    path = write_config(s, auth="true")
    s.env["QUIVER_CONFIG"] = str(path)
    s.start()
    c = MilvusClient(uri=s.uri)  # QUIVER_AUTH=0 turned the file's auth off
    assert c.list_collections() == []
    c.close()
    s.args = ["--auth"]
    s.restart()
    needs_credentials(s)  # --auth beats QUIVER_AUTH=0
    c = MilvusClient(uri=s.uri, token="root:Milvus")
    c.close()


def test_flag_listen_beats_file(make_server):
    s = make_server(base_flags=False, start=False)
    path = write_config(s, listen=f'"127.0.0.1:{free_port()}"')
    s.args = ["--config", str(path), "--listen", f"127.0.0.1:{s.port}"]
    s.start()
    c = MilvusClient(uri=s.uri)
    assert isinstance(c.list_collections(), list)
    c.close()


def test_bad_files_fail_the_start(make_server):
    s = make_server(base_flags=False, start=False)
    path = write_config(s, listen_address='"127.0.0.1:1"')
    s.args = ["--config", str(path)]
    with pytest.raises(RuntimeError, match="exited with 1"):
        s.start()
    assert "unknown field `listen_address`" in s.log()
    s.args = ["--config", str(path.parent / "missing.toml")]
    with pytest.raises(RuntimeError, match="exited with 1"):
        s.start()
    assert "reading the config file" in s.log()
