//! `quiver debug ...`: developer tools. `proto-descriptors` writes the serialized
//! `google.protobuf.FileDescriptorSet` of the Milvus .proto subset the server was built from
//! (binary, to stdout), which tests/compat/test_proto_descriptors.py compares with pymilvus.

use std::io::Write;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum DebugCommand {
    /// Write the server's protobuf FileDescriptorSet (binary) to stdout.
    ProtoDescriptors,
}

pub fn run(cmd: DebugCommand) -> anyhow::Result<()> {
    match cmd {
        DebugCommand::ProtoDescriptors => {
            let mut out = std::io::stdout().lock();
            out.write_all(quiver_server::descriptor_set())?;
            out.flush()?;
        }
    }
    Ok(())
}
