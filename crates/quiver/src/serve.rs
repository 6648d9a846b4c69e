//! `quiver serve`: open the engine, serve the Milvus gRPC API, answer `GET /healthz` on the
//! metrics address, and shut down gracefully.
//!
//! Order of events: the engine is opened (recovery runs here), then the gRPC port is bound,
//! then the metrics port (so /healthz answers 200 only once gRPC accepts connections). On
//! SIGTERM or SIGINT both servers stop accepting, in-flight RPCs finish, and
//! `Engine::flush_all` seals everything before the process exits (the WAL already made every
//! acknowledged write durable; the flush only shortens the next start's replay).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use quiver_engine::{Engine, EngineOptions};
use tokio::sync::watch;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Data directory (created on first start).
    #[arg(long, env = "QUIVER_DATA_DIR", default_value = "./quiver-data")]
    pub data_dir: PathBuf,
    /// Address of the Milvus gRPC API.
    #[arg(long, env = "QUIVER_LISTEN", default_value = "127.0.0.1:19530")]
    pub listen: SocketAddr,
    /// Address of the health (and, later, metrics) HTTP endpoint.
    #[arg(long, env = "QUIVER_METRICS_LISTEN", default_value = "127.0.0.1:9091")]
    pub metrics_listen: SocketAddr,
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("quiver")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args))
}

/// Resolves when SIGTERM or SIGINT arrives.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn wait_for(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating the data directory {}", args.data_dir.display()))?;
    let dir = args.data_dir.clone();
    let engine = tokio::task::spawn_blocking(move || Engine::open(dir, EngineOptions::default()))
        .await?
        .with_context(|| format!("opening the data directory {}", args.data_dir.display()))?;
    let engine = Arc::new(engine);
    tracing::info!(data_dir = %args.data_dir.display(), "engine opened");

    let grpc = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding the gRPC address {}", args.listen))?;
    let metrics = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| format!("binding the metrics address {}", args.metrics_listen))?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let health = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
    let http = tokio::spawn({
        let rx = stop_rx.clone();
        async move {
            axum::serve(metrics, health)
                .with_graceful_shutdown(wait_for(rx))
                .await
        }
    });
    let api = tokio::spawn(quiver_server::serve(
        Arc::clone(&engine),
        grpc,
        wait_for(stop_rx),
    ));
    tracing::info!(listen = %args.listen, metrics = %args.metrics_listen, "quiver is serving");

    shutdown_signal().await;
    tracing::info!("shutting down: draining requests");
    let _ = stop_tx.send(true);
    match api.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!("the gRPC server failed: {e}"),
        Err(e) => tracing::error!("the gRPC server task failed: {e}"),
    }
    if let Ok(Err(e)) = http.await {
        tracing::error!("the health server failed: {e}");
    }
    tracing::info!("flushing collections");
    let flushed = {
        let engine = Arc::clone(&engine);
        tokio::task::spawn_blocking(move || engine.flush_all()).await?
    };
    flushed.context("flushing on shutdown")?;
    tracing::info!("stopped cleanly");
    Ok(())
}
