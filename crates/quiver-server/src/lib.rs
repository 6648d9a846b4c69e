//! quiver-server: Quiver's Milvus-compatible gRPC front over [`quiver_engine::Engine`].
//!
//! - [`proto`]: code generated from our own .proto subset (`proto/*.proto`, packages
//!   `milvus.proto.{common,schema,milvus}` with Milvus's names and field numbers);
//! - [`service`]: the tonic `MilvusService` implementation and its request plumbing;
//! - `admin`, `collections`, `data`, `search`, `users`: one synchronous handler per RPC
//!   ([`iterator`]: search iterator v2 paging);
//! - [`auth`]: `--auth` credential checks; [`tls`]: TLS on the listener;
//! - [`rest`]: Milvus REST v2 on the same port (JSON in, the same RPC handlers, JSON out);
//! - [`tuning`]: index autotuning and apply jobs;
//! - [`experiments`]: online champion–challenger experiments on serving aliases;
//! - [`metrics`]: Prometheus counters and histograms (`/metrics` on the metrics address);
//! - [`schema`], [`columns`], [`params`]: wire <-> engine conversions;
//! - [`status`]: the one mapping from engine errors to Milvus `common.Status`.
//!
//! Invariants: no protobuf type crosses into the engine; application errors are answered in
//! `status` (never as gRPC errors); engine calls run on blocking threads.
// The OpenAPI document (rest/v1.rs) is one json! literal deeper than the default limit.
#![recursion_limit = "256"]

pub mod admin;
pub mod auth;
pub mod collections;
pub mod columns;
pub mod data;
pub mod evaluate;
pub mod experiments;
pub mod functions;
pub mod iterator;
pub mod metrics;
pub mod migrations;
pub mod params;
pub mod rest;
pub mod schema;
pub mod search;
pub mod service;
pub mod status;
pub mod tls;
pub mod tuning;
pub mod users;

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

/// How the API is served (see [`serve_with`]).
#[derive(Clone, Default)]
pub struct ServeOptions {
    /// Check every request's credentials (`--auth`).
    pub auth: Option<Arc<auth::Auth>>,
    /// Speak TLS on the port (`--tls-cert`, `--tls-key`): see [`tls::acceptor`].
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// The model registry served under `/v1` (opened from `<data dir>/registry` when `None`).
    pub registry: Option<Arc<quiver_registry::Registry>>,
}

/// Serve the Milvus gRPC API for `engine` on `listener` until `shutdown` completes.
pub async fn serve(
    engine: Arc<quiver_engine::Engine>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    serve_with(engine, listener, ServeOptions::default(), shutdown).await
}

/// [`serve`] with authentication and/or TLS.
pub async fn serve_with(
    engine: Arc<quiver_engine::Engine>,
    listener: tokio::net::TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let registry = match options.registry.clone() {
        Some(r) => Some(r),
        None => match quiver_registry::Registry::open(engine.root().join("registry")) {
            Ok(r) => Some(Arc::new(r)),
            Err(e) => {
                tracing::error!("the model registry could not be opened; /v1 is not served: {e}");
                None
            }
        },
    };
    if let Some(reg) = &registry {
        rest::v1::reconcile(&engine, reg);
    }
    let api = MilvusApi::with_registry(engine.clone(), options.auth.clone(), registry.clone());
    let v1 = registry
        .clone()
        .zip(api.embedders())
        .zip(api.experiments())
        .map(|((registry, embedders), experiments)| {
            let migrations = Arc::new(migrations::Migrations::new(
                Arc::clone(&engine),
                Arc::clone(&embedders),
                Arc::clone(&registry),
            ));
            migrations.resume_all();
            Arc::new(rest::v1::V1 {
                registry,
                auth: options.auth.clone(),
                engine: Arc::clone(&engine),
                embedders,
                migrations,
                experiments,
                tuning: Arc::new(crate::tuning::Tuning::new(api.query_log())),
            })
        });
    let migrations = v1.as_ref().map(|v| Arc::clone(&v.migrations));
    let experiments = v1.as_ref().map(|v| Arc::clone(&v.experiments));
    // HTTP/1.1 is accepted for REST; gRPC (h2) takes the same service route as before.
    let router = tonic::transport::Server::builder()
        .accept_http1(true)
        .add_routes(rest::routes(api, v1));
    let served = match options.tls {
        None => {
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        Some(acceptor) => {
            router
                .serve_with_incoming_shutdown(tls::incoming(listener, acceptor), shutdown)
                .await
        }
    };
    // Let running backfill batches finish (their fills are durable) before the caller flushes.
    if let Some(m) = migrations {
        let _ = tokio::task::spawn_blocking(move || m.stop_all()).await;
    }
    if let Some(x) = experiments {
        let _ = tokio::task::spawn_blocking(move || x.checkpoint()).await;
    }
    served
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
