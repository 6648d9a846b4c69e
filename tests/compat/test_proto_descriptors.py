"""Our hand-written .proto subset must agree with the pymilvus wheel's descriptors.

`quiver debug proto-descriptors` prints the FileDescriptorSet that protox compiled from
crates/quiver-server/proto/*.proto; the reference is the serialized FileDescriptorProto that
pymilvus's generated *_pb2 modules register. Every message, field, enum value, service and RPC
we declare must exist in pymilvus with the same name, number, type, type name and label (we may
declare fewer: a subset is the point).

Oneof membership is compared only where both sides declare the field in a oneof (then the
oneofs' names must agree). A field's wire encoding depends only on its number and type, not on
whether it belongs to a oneof, so a client whose descriptors moved a field into a oneof still
exchanges the same bytes with us: pymilvus 3.x declares SearchRequest.placeholder_group (field 5,
bytes) in a new oneof `search_input`, where pymilvus 2.5 and our .proto have a plain field.
Likewise `deprecated` is an annotation, not wire format: a field we mark deprecated must be
deprecated in pymilvus too, but pymilvus 3.x newly deprecates SearchRequest.search_by_primary_keys
(field 16), which our .proto (matching 2.5) does not.

A few things we serve first appeared after pymilvus 2.5 (`NEWER`: TruncateCollection,
AddCollectionField, INT8 vectors). Against a 2.5 wheel they may be absent; against 2.6 / 3.x they must be there and agree
like everything else (scripts/test.sh runs this file with both pinned clients).
"""

import subprocess

import pytest
from google.protobuf import descriptor_pb2

from conftest import quiver_bin

NEWER = {
    ".milvus.proto.milvus.TruncateCollectionRequest",
    ".milvus.proto.milvus.TruncateCollectionResponse",
    ".milvus.proto.schema.VectorField.int8_vector",
    ".milvus.proto.common.PlaceholderType.Int8Vector",
    "rpc TruncateCollection",
    ".milvus.proto.milvus.AddCollectionFieldRequest",
    "rpc AddCollectionField",
}


def client_predates(item):
    """True when `item` is in NEWER and the installed pymilvus is older than 2.6."""
    import pymilvus

    major, minor = (int(x) for x in pymilvus.__version__.split(".")[:2])
    return item in NEWER and (major, minor) < (2, 6)


def ours():
    out = subprocess.run(
        [str(quiver_bin()), "debug", "proto-descriptors"], check=True, capture_output=True
    ).stdout
    fds = descriptor_pb2.FileDescriptorSet.FromString(out)
    return {f.name: f for f in fds.file}


def theirs():
    from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

    files = {}
    for mod in (common_pb2, schema_pb2, milvus_pb2):
        fdp = descriptor_pb2.FileDescriptorProto()
        mod.DESCRIPTOR.CopyToProto(fdp)
        files[fdp.name] = fdp
    return files


def index_messages(prefix, messages, out):
    for m in messages:
        full = f"{prefix}.{m.name}"
        out[full] = m
        index_messages(full, m.nested_type, out)


def index_enums(prefix, fdp_or_msg, out):
    for e in fdp_or_msg.enum_type:
        out[f"{prefix}.{e.name}"] = e
    for m in getattr(fdp_or_msg, "message_type", []) or getattr(fdp_or_msg, "nested_type", []):
        index_enums(f"{prefix}.{m.name}", m, out)


def catalog(files):
    messages, enums, services = {}, {}, {}
    for f in files.values():
        prefix = "." + f.package
        index_messages(prefix, f.message_type, messages)
        index_enums(prefix, f, enums)
        for s in f.service:
            services[f"{prefix}.{s.name}"] = s
    return messages, enums, services


@pytest.fixture(scope="module")
def both():
    return catalog(ours()), catalog(theirs())


def test_same_files_and_packages():
    o, t = ours(), theirs()
    assert set(o) == {"common.proto", "schema.proto", "milvus.proto"}
    for name, f in o.items():
        assert name in t
        assert f.package == t[name].package
        assert f.syntax == t[name].syntax == "proto3"


def test_every_message_and_field_matches(both):
    (ours_msgs, _, _), (their_msgs, _, _) = both
    assert len(ours_msgs) > 80
    checked = 0
    for full, m in ours_msgs.items():
        if full not in their_msgs and client_predates(full):
            continue
        assert full in their_msgs, f"message {full} is not in pymilvus"
        ref = {f.number: f for f in their_msgs[full].field}
        for f in m.field:
            if f.number not in ref and client_predates(f"{full}.{f.name}"):
                continue
            assert f.number in ref, f"{full}.{f.name} = {f.number} is not in pymilvus"
            r = ref[f.number]
            got = (f.name, f.type, f.type_name, f.label)
            want = (r.name, r.type, r.type_name, r.label)
            assert got == want, f"{full} field {f.number}: ours {got} != pymilvus {want}"
            # a newer pymilvus may deprecate a field we still declare plainly (see the docstring)
            assert not f.options.deprecated or r.options.deprecated, (
                f"{full}.{f.name} is deprecated only in ours"
            )
            # oneof membership is not on the wire (see the docstring): compare the oneof only
            # where both sides put the field in one
            if f.HasField("oneof_index") and r.HasField("oneof_index"):
                ours_oneof = m.oneof_decl[f.oneof_index].name
                their_oneof = their_msgs[full].oneof_decl[r.oneof_index].name
                assert ours_oneof == their_oneof, (
                    f"{full}.{f.name}: oneof {ours_oneof} in ours, {their_oneof} in pymilvus"
                )
            checked += 1
        assert m.options.map_entry == their_msgs[full].options.map_entry, full
    assert checked > 400


def test_every_enum_value_matches(both):
    (_, ours_enums, _), (_, their_enums, _) = both
    for full, e in ours_enums.items():
        assert full in their_enums, f"enum {full} is not in pymilvus"
        ref = {v.name: v.number for v in their_enums[full].value}
        for v in e.value:
            if v.name not in ref and client_predates(f"{full}.{v.name}"):
                continue
            assert ref.get(v.name) == v.number, f"{full}.{v.name} = {v.number}, pymilvus: {ref.get(v.name)}"


def test_every_rpc_matches(both):
    (_, _, ours_svc), (_, _, their_svc) = both
    assert set(ours_svc) == {".milvus.proto.milvus.MilvusService"}
    for full, s in ours_svc.items():
        ref = {m.name: m for m in their_svc[full].method}
        assert len(s.method) >= 40
        for m in s.method:
            if m.name not in ref and client_predates(f"rpc {m.name}"):
                continue
            assert m.name in ref, f"rpc {m.name} is not in pymilvus"
            r = ref[m.name]
            assert (m.input_type, m.output_type) == (r.input_type, r.output_type), m.name
            assert not m.client_streaming and not m.server_streaming
