//! Compiles Quiver's own Milvus .proto subset with protox (no protoc needed) and generates the
//! tonic server (no client: Milvus's RPC `Connect` clashes with tonic's client `connect()`).
//! The descriptor set is also written to OUT_DIR so the binary can print it
//! (`quiver debug proto-descriptors`) for the descriptor comparison test.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/common.proto",
        "proto/schema.proto",
        "proto/milvus.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("milvus_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
