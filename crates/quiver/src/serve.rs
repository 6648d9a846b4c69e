//! `quiver serve`: open the engine, serve the Milvus gRPC API and REST v2 on one port, answer
//! `GET /healthz` and `GET /metrics` (Prometheus) on the metrics address, and shut down
//! gracefully.
//!
//! Settings come from flags, `QUIVER_*` variables and `--config` (see `config`). With `--auth`
//! the root user is created on first start and every request must carry credentials; with
//! `--tls-cert`/`--tls-key` the API port speaks TLS (both are loaded before any port is bound,
//! so a bad certificate fails the start).
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

use crate::config::{self, ServeConfig};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (keys: data_dir, listen, metrics_listen, auth,
    /// root_password, tls_cert, tls_key); flags and QUIVER_* variables override it.
    #[arg(long, env = "QUIVER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory, created on first start [default: ./quiver-data]
    #[arg(long, env = "QUIVER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the Milvus API [default: 127.0.0.1:19530]
    #[arg(long, env = "QUIVER_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Address of the health and metrics HTTP endpoint [default: 127.0.0.1:9091]
    #[arg(long, env = "QUIVER_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Require user:password credentials on every request [default: off]
    #[arg(long, env = "QUIVER_AUTH", num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub auth: Option<bool>,
    /// Password of the root user, used when --auth first creates it [default: Milvus]
    #[arg(long, env = "QUIVER_ROOT_PASSWORD", hide_env_values = true)]
    pub root_password: Option<String>,
    /// Serve TLS with this PEM certificate chain (needs --tls-key)
    #[arg(long, env = "QUIVER_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long, env = "QUIVER_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Shared mode: keep the database in an object store, `s3://bucket/prefix` (also gs://,
    /// az://, or file:///dir), instead of --data-dir (which then holds only local state).
    /// Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
    #[arg(long, env = "QUIVER_STORAGE")]
    pub storage: Option<String>,
    /// Endpoint of an S3-compatible store, e.g. http://127.0.0.1:8333 [default: AWS]
    #[arg(long, env = "QUIVER_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region [default: $AWS_REGION or us-east-1]
    #[arg(long, env = "QUIVER_S3_REGION")]
    pub s3_region: Option<String>,
    /// Allow plain HTTP to the store (local test servers)
    #[arg(long, env = "QUIVER_S3_ALLOW_HTTP", num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub s3_allow_http: Option<bool>,
    /// Part this process plays in a shared database: writer (the one process that writes,
    /// fenced by an epoch) or reader (stateless: follows the store, answers searches and
    /// queries, refuses writes) [default: writer]
    #[arg(long, env = "QUIVER_ROLE")]
    pub role: Option<String>,
    /// A reader's local cache of segment files, in MiB [default: 4096]
    #[arg(long, env = "QUIVER_CACHE_MB")]
    pub cache_mb: Option<u64>,
    /// How often a reader looks for new writes, in milliseconds [default: 200]
    #[arg(long, env = "QUIVER_FOLLOW_MS")]
    pub follow_ms: Option<u64>,
    /// Seconds the writer lease lasts without a heartbeat [default: 10]
    #[arg(long, env = "QUIVER_LEASE_TTL_S")]
    pub lease_ttl_s: Option<f64>,
    /// Take the writer lease over at once instead of waiting for it to lapse (the old writer
    /// is fenced either way)
    #[arg(long, env = "QUIVER_TAKEOVER", num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub takeover: Option<bool>,
}

impl ServeArgs {
    /// The settings after flags > environment > config file > defaults.
    pub fn resolve(self) -> anyhow::Result<ServeConfig> {
        let file = match &self.config {
            Some(path) => config::read_file(path)?,
            None => config::Partial::default(),
        };
        let given = config::Partial {
            data_dir: self.data_dir,
            listen: self.listen,
            metrics_listen: self.metrics_listen,
            auth: self.auth,
            root_password: self.root_password,
            tls_cert: self.tls_cert,
            tls_key: self.tls_key,
            storage: self.storage,
            s3_endpoint: self.s3_endpoint,
            s3_region: self.s3_region,
            s3_allow_http: self.s3_allow_http,
            role: self.role,
            lease_ttl_s: self.lease_ttl_s,
            takeover: self.takeover,
            cache_mb: self.cache_mb,
            follow_ms: self.follow_ms,
        };
        config::resolve(given, file)
    }
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
    let cfg = args.resolve()?;
    runtime.block_on(serve(cfg))
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

/// `--auth`: create root on first start and build the credential checker.
async fn setup_auth(
    engine: &Arc<Engine>,
    cfg: &ServeConfig,
) -> anyhow::Result<Option<Arc<quiver_server::auth::Auth>>> {
    use quiver_server::auth;
    if !cfg.auth {
        return Ok(None);
    }
    let (e, password) = (Arc::clone(engine), cfg.root_password.clone());
    let check = cfg.root_password_given;
    let (created, stale) = tokio::task::spawn_blocking(move || -> anyhow::Result<(bool, bool)> {
        let created = auth::ensure_root(&e, &password).context("creating the root user")?;
        // A given password that no longer opens root deserves a warning (argon2 costs a bit).
        let stale = !created
            && check
            && !e
                .user_password_hash(auth::ROOT_USER)
                .is_some_and(|phc| auth::verify_password(&password, &phc));
        Ok((created, stale))
    })
    .await??;
    if created {
        tracing::info!("authentication on: created the root user");
    } else if stale {
        tracing::warn!(
            "authentication on: the root user already exists with another password; \
             --root-password only applies when root is first created (use UpdateCredential)"
        );
    } else {
        tracing::info!("authentication on");
    }
    Ok(Some(Arc::new(auth::Auth::new(Arc::clone(engine)))))
}

/// Shared mode: open the store, check its conditional PUT, claim the writer lease.
fn open_shared(dir: PathBuf, sc: &config::StorageConfig) -> anyhow::Result<Engine> {
    use quiver_core::storage::Storage;
    let store: Arc<dyn Storage> = match sc.url.strip_prefix("file://") {
        Some(path) => Arc::new(quiver_core::storage::LocalStorage::new(path)?),
        None => {
            let s3 = quiver_objstore::S3Options {
                endpoint: sc.endpoint.clone(),
                region: sc.region.clone(),
                access_key_id: None,
                secret_access_key: None,
                allow_http: sc.allow_http,
            };
            let store = quiver_objstore::ObjectStorage::open(&sc.url, &s3)?;
            store.probe_conditional_put()?;
            Arc::new(store)
        }
    };
    let mut shared = quiver_engine::SharedOptions::new(store, sc.url.clone());
    shared.lease_ttl = sc.lease_ttl;
    shared.takeover_wait = (sc.lease_ttl * 3).max(std::time::Duration::from_secs(30));
    shared.force_takeover = sc.takeover;
    if sc.reader {
        return Ok(Engine::open_reader(
            dir,
            EngineOptions::default(),
            shared,
            sc.cache_bytes,
        )?);
    }
    Ok(Engine::open_shared(dir, EngineOptions::default(), shared)?)
}

/// A reader's follower: catch up with the store every `every` until the engine is dropped.
fn spawn_follower(engine: &Arc<Engine>, every: std::time::Duration) {
    let weak = Arc::downgrade(engine);
    let spawned = std::thread::Builder::new()
        .name("quiver-follow".into())
        .spawn(move || loop {
            let Some(e) = weak.upgrade() else { return };
            if let Err(err) = e.follow_once() {
                tracing::warn!("following the shared database failed: {err}");
            }
            drop(e);
            std::thread::sleep(every);
        });
    if let Err(e) = spawned {
        tracing::error!("could not start the reader's follower thread: {e}");
    }
}

async fn serve(args: ServeConfig) -> anyhow::Result<()> {
    let tls = match &args.tls {
        Some((cert, key)) => Some(quiver_server::tls::acceptor(cert, key)?),
        None => None,
    };
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating the data directory {}", args.data_dir.display()))?;
    let dir = args.data_dir.clone();
    let engine = match args.storage.clone() {
        None => tokio::task::spawn_blocking(move || Engine::open(dir, EngineOptions::default()))
            .await?
            .with_context(|| format!("opening the data directory {}", args.data_dir.display()))?,
        Some(sc) => {
            let url = sc.url.clone();
            tokio::task::spawn_blocking(move || open_shared(dir, &sc))
                .await?
                .with_context(|| format!("opening the shared database {url}"))?
        }
    };
    let engine = Arc::new(engine);
    if let Some(sc) = args.storage.as_ref().filter(|s| s.reader) {
        spawn_follower(&engine, sc.follow_interval);
    }
    tracing::info!(data_dir = %args.data_dir.display(), "engine opened");
    let reg_dir = args.data_dir.join("registry");
    let registry = tokio::task::spawn_blocking(move || quiver_registry::Registry::open(reg_dir))
        .await?
        .with_context(|| format!("opening the model registry in {}", args.data_dir.display()))?;
    let options = quiver_server::ServeOptions {
        auth: setup_auth(&engine, &args).await?,
        tls,
        registry: Some(Arc::new(registry)),
    };

    let grpc = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding the gRPC address {}", args.listen))?;
    let metrics = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| format!("binding the metrics address {}", args.metrics_listen))?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let scraped = Arc::clone(&engine);
    let checked = Arc::clone(&engine);
    let health = axum::Router::new()
        // A fenced writer is unhealthy: it can never acknowledge a write again.
        .route(
            "/healthz",
            axum::routing::get(move || {
                let fenced = checked.fenced();
                async move {
                    match fenced {
                        None => (axum::http::StatusCode::OK, "ok".to_string()),
                        Some(why) => (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            format!("fenced: {why}"),
                        ),
                    }
                }
            }),
        )
        .route(
            "/metrics",
            axum::routing::get(move || {
                let text = quiver_server::metrics::render(&scraped);
                async move {
                    (
                        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                        text,
                    )
                }
            }),
        );
    let http = tokio::spawn({
        let rx = stop_rx.clone();
        async move {
            axum::serve(metrics, health)
                .with_graceful_shutdown(wait_for(rx))
                .await
        }
    });
    let api = tokio::spawn(quiver_server::serve_with(
        Arc::clone(&engine),
        grpc,
        options,
        wait_for(stop_rx),
    ));
    tracing::info!(
        listen = %args.listen,
        metrics = %args.metrics_listen,
        auth = args.auth,
        tls = args.tls.is_some(),
        "quiver is serving"
    );

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
