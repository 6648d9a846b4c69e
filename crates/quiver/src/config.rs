//! `quiver serve` settings: command-line flags, `QUIVER_*` environment variables, a TOML file
//! (`--config F` / `QUIVER_CONFIG`), and defaults, in that order of precedence (clap already
//! folds each variable into its flag; this module puts the file under both).
//!
//! The file takes the flags' names with underscores; every key is optional and unknown keys are
//! refused (a typo should not silently fall back to a default). Relative paths in the file are
//! relative to the file's directory.
//!
//! ```toml
//! data_dir = "/var/lib/quiver"
//! listen = "0.0.0.0:19530"
//! metrics_listen = "127.0.0.1:9091"
//! auth = true
//! root_password = "change-me"   # used only when the root user is first created
//! tls_cert = "server.pem"
//! tls_key = "server.key"
//! # Shared mode: the database in an object store (credentials from AWS_ACCESS_KEY_ID /
//! # AWS_SECRET_ACCESS_KEY, never from this file); data_dir then holds only local state.
//! storage = "s3://bucket/prefix"
//! s3_endpoint = "http://127.0.0.1:8333"
//! s3_region = "us-east-1"
//! s3_allow_http = true
//! role = "writer"          # or "reader": follows the writer, answers searches and queries
//! cache_mb = 4096          # a reader's local cache of segment files
//! follow_ms = 200          # how often a reader looks for new writes
//! lease_ttl_s = 10
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

pub const DEFAULT_DATA_DIR: &str = "./quiver-data";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:19530";
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9091";
pub const DEFAULT_ROOT_PASSWORD: &str = quiver_server::auth::DEFAULT_ROOT_PASSWORD;

/// Settings as given by one source (flags+environment, or the file); `None` = not given.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partial {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub metrics_listen: Option<SocketAddr>,
    pub auth: Option<bool>,
    pub root_password: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub storage: Option<String>,
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    pub s3_allow_http: Option<bool>,
    pub role: Option<String>,
    pub lease_ttl_s: Option<f64>,
    pub takeover: Option<bool>,
    pub cache_mb: Option<u64>,
    pub follow_ms: Option<u64>,
}

/// Shared mode: where the database lives and how this process takes part.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    /// `s3://bucket/prefix`, `gs://…`, `az://…`, or `file:///path` (a shared local directory).
    pub url: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub allow_http: bool,
    pub lease_ttl: std::time::Duration,
    /// Take the writer lease over without waiting for it to lapse.
    pub takeover: bool,
    /// A reader (true) or the writer.
    pub reader: bool,
    /// A reader's local cache of segment files, in bytes.
    pub cache_bytes: u64,
    /// How often a reader looks for new writes.
    pub follow_interval: std::time::Duration,
}

/// The settings `quiver serve` runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub auth: bool,
    pub root_password: String,
    /// Whether a root password was given (rather than Milvus's default).
    pub root_password_given: bool,
    /// Certificate chain and key files, when TLS is on.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Shared mode (None: embedded, the database in `data_dir`).
    pub storage: Option<StorageConfig>,
}

/// Read a config file.
pub fn read_file(path: &Path) -> anyhow::Result<Partial> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the config file {}", path.display()))?;
    let mut p: Partial = toml::from_str(&text)
        .with_context(|| format!("parsing the config file {}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new(""));
    for f in [&mut p.data_dir, &mut p.tls_cert, &mut p.tls_key]
        .into_iter()
        .flatten()
    {
        if f.is_relative() {
            *f = base.join(&*f);
        }
    }
    Ok(p)
}

/// Merge: `given` (flags, then environment) over `file` over the defaults.
pub fn resolve(given: Partial, file: Partial) -> anyhow::Result<ServeConfig> {
    let root_password = given.root_password.or(file.root_password);
    let tls = match (
        given.tls_cert.or(file.tls_cert),
        given.tls_key.or(file.tls_key),
    ) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        (Some(_), None) => bail!("--tls-cert needs --tls-key (or tls_key in the config file)"),
        (None, Some(_)) => bail!("--tls-key needs --tls-cert (or tls_cert in the config file)"),
    };
    let role = given.role.or(file.role);
    let storage = match given.storage.or(file.storage) {
        None => {
            if role.as_deref().is_some_and(|r| r != "all") {
                bail!("--role needs --storage (an embedded database has one process, role all)");
            }
            None
        }
        Some(url) => {
            let reader = match role.as_deref().unwrap_or("writer") {
                "writer" | "all" => false,
                "reader" => true,
                "worker" => bail!(
                    "--role worker is not available yet: the writer builds indexes, compacts and \
                     collects garbage itself"
                ),
                other => bail!("unknown --role {other:?} (writer, reader or all)"),
            };
            let follow_ms = given.follow_ms.or(file.follow_ms).unwrap_or(200);
            if !(10..=60_000).contains(&follow_ms) {
                bail!("--follow-ms must be between 10 and 60000, got {follow_ms}");
            }
            let ttl = given.lease_ttl_s.or(file.lease_ttl_s).unwrap_or(10.0);
            if !(ttl.is_finite() && (0.1..=3600.0).contains(&ttl)) {
                bail!("--lease-ttl-s must be between 0.1 and 3600 seconds, got {ttl}");
            }
            Some(StorageConfig {
                url,
                endpoint: given.s3_endpoint.or(file.s3_endpoint),
                region: given.s3_region.or(file.s3_region),
                allow_http: given.s3_allow_http.or(file.s3_allow_http).unwrap_or(false),
                lease_ttl: std::time::Duration::from_secs_f64(ttl),
                takeover: given.takeover.or(file.takeover).unwrap_or(false),
                reader,
                cache_bytes: given.cache_mb.or(file.cache_mb).unwrap_or(4096) << 20,
                follow_interval: std::time::Duration::from_millis(follow_ms),
            })
        }
    };
    Ok(ServeConfig {
        storage,
        data_dir: given
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        listen: given
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("a valid default")),
        metrics_listen: given
            .metrics_listen
            .or(file.metrics_listen)
            .unwrap_or_else(|| DEFAULT_METRICS_LISTEN.parse().expect("a valid default")),
        auth: given.auth.or(file.auth).unwrap_or(false),
        root_password_given: root_password.is_some(),
        root_password: root_password.unwrap_or_else(|| DEFAULT_ROOT_PASSWORD.to_string()),
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = resolve(Partial::default(), Partial::default()).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("./quiver-data"));
        assert_eq!(c.listen.to_string(), "127.0.0.1:19530");
        assert_eq!(c.metrics_listen.to_string(), "127.0.0.1:9091");
        assert!(!c.auth);
        assert_eq!(c.root_password, "Milvus");
        assert!(!c.root_password_given);
        assert_eq!(c.tls, None);
    }

    #[test]
    fn given_beats_file_beats_defaults() {
        let file = Partial {
            data_dir: Some("/f".into()),
            listen: Some("127.0.0.1:1".parse().unwrap()),
            auth: Some(true),
            root_password: Some("fromfile".into()),
            tls_cert: Some("c.pem".into()),
            tls_key: Some("k.pem".into()),
            ..Default::default()
        };
        let given = Partial {
            listen: Some("127.0.0.1:2".parse().unwrap()),
            auth: Some(false),
            ..Default::default()
        };
        let c = resolve(given, file).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/f"));
        assert_eq!(c.listen.to_string(), "127.0.0.1:2");
        assert_eq!(c.metrics_listen.to_string(), "127.0.0.1:9091");
        assert!(!c.auth);
        assert_eq!(
            (c.root_password.as_str(), c.root_password_given),
            ("fromfile", true)
        );
        assert_eq!(c.tls, Some(("c.pem".into(), "k.pem".into())));
    }

    #[test]
    fn tls_needs_both_files() {
        let half = Partial {
            tls_cert: Some("c.pem".into()),
            ..Default::default()
        };
        assert!(resolve(half.clone(), Partial::default()).is_err());
        let other = Partial {
            tls_key: Some("k.pem".into()),
            ..Default::default()
        };
        assert!(resolve(half, other).is_ok());
    }

    #[test]
    fn file_keys_paths_and_typos() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quiver.toml");
        std::fs::write(
            &path,
            "data_dir = \"data\"\nlisten = \"127.0.0.1:7\"\nmetrics_listen = \"127.0.0.1:8\"\n\
             auth = true\nroot_password = \"secret1\"\ntls_cert = \"/abs/c.pem\"\n\
             tls_key = \"k.pem\"\n",
        )
        .unwrap();
        let p = read_file(&path).unwrap();
        assert_eq!(p.data_dir, Some(dir.path().join("data")));
        assert_eq!(p.listen, Some("127.0.0.1:7".parse().unwrap()));
        assert_eq!(p.metrics_listen, Some("127.0.0.1:8".parse().unwrap()));
        assert_eq!(p.auth, Some(true));
        assert_eq!(p.root_password.as_deref(), Some("secret1"));
        assert_eq!(p.tls_cert, Some(PathBuf::from("/abs/c.pem")));
        assert_eq!(p.tls_key, Some(dir.path().join("k.pem")));
        std::fs::write(&path, "listen_addr = \"127.0.0.1:7\"\n").unwrap();
        let e = format!("{:#}", read_file(&path).unwrap_err());
        assert!(e.contains("unknown field `listen_addr`"), "{e}");
        std::fs::write(&path, "listen = \"nowhere\"\n").unwrap();
        assert!(read_file(&path).is_err());
        assert!(read_file(&dir.path().join("missing.toml")).is_err());
    }
}
