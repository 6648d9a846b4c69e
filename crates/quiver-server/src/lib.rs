//! quiver-server: Quiver's Milvus-compatible gRPC front over [`quiver_engine::Engine`].
//!
//! - [`proto`]: code generated from our own .proto subset (`proto/*.proto`, packages
//!   `milvus.proto.{common,schema,milvus}` with Milvus's names and field numbers);
//! - [`service`]: the tonic `MilvusService` implementation and its request plumbing;
//! - `admin`, `collections`, `data`: one synchronous handler per RPC;
//! - [`schema`], [`columns`], [`params`]: wire <-> engine conversions;
//! - [`status`]: the one mapping from engine errors to Milvus `common.Status`.
//!
//! Invariants: no protobuf type crosses into the engine; application errors are answered in
//! `status` (never as gRPC errors); engine calls run on blocking threads.

pub mod admin;
pub mod collections;
pub mod columns;
pub mod data;
pub mod params;
pub mod schema;
pub mod service;
pub mod status;

/// Generated protobuf and tonic code.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod proto {
    pub mod common {
        tonic::include_proto!("milvus.proto.common");
    }
    pub mod schema {
        tonic::include_proto!("milvus.proto.schema");
    }
    pub mod milvus {
        tonic::include_proto!("milvus.proto.milvus");
    }
}

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

pub use service::MilvusApi;

/// The serialized `google.protobuf.FileDescriptorSet` of our .proto files (as compiled by
/// protox in build.rs): `quiver debug proto-descriptors` prints it for the descriptor test.
pub fn descriptor_set() -> &'static [u8] {
    include_bytes!(concat!(env!("OUT_DIR"), "/milvus_descriptor.bin"))
}

/// Serve the Milvus gRPC API for `engine` on `listener` until `shutdown` completes.
pub async fn serve(
    engine: Arc<quiver_engine::Engine>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(MilvusApi::new(engine).into_service())
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// Bind `addr` and serve (see [`serve`]).
pub async fn bind_and_serve(
    engine: Arc<quiver_engine::Engine>,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve(engine, listener, shutdown)
        .await
        .map_err(std::io::Error::other)
}
