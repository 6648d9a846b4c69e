//! quiver-objstore: Quiver's storage interface ([`quiver_core::storage::Storage`]) over object
//! stores — any S3-compatible service, Google Cloud Storage and Azure Blob Storage — through the
//! `object_store` crate.
//!
//! A store is named by a URL: `s3://bucket/prefix` (with [`S3Options`] for the endpoint, region,
//! credentials and plain HTTP), `gs://bucket/prefix` or `az://container/prefix` (credentials from
//! the environment, as `object_store` reads them). Every key of the interface becomes the object
//! `<prefix>/<key>`.
//!
//! How the contract of the interface is kept:
//! - `put` is one PUT (atomic on every object store: a reader sees the old object or the new).
//! - `put_if_absent` is a PUT with `If-None-Match: *` (`PutMode::Create`): 412 or "already
//!   exists" means `Ok(false)`. Not every S3 implementation honours it (some overwrite in
//!   silence), so [`ObjectStorage::probe_conditional_put`] checks it at start-up and the server
//!   refuses the store if it fails.
//! - A timeout after a PUT that reached the store is an error here even though the object may
//!   exist; callers that must know (manifest and log commits) read the key back and look for
//!   their own transaction id.
//! - `list` returns the immediate children of a prefix (objects and common prefixes), sorted.
//!
//! The interface is synchronous; calls run on this crate's own small tokio runtime and the
//! calling thread waits on a channel, so it may be called from any thread, including another
//! runtime's worker.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ClientOptions, ObjectStore, PutMode, PutOptions, PutPayload, RetryConfig};
use quiver_core::storage::{check_key, Storage};
use quiver_core::{Error, Result};

/// Settings of an S3-compatible store that are not in its URL.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// `http://127.0.0.1:8333` for a local server; None for AWS.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// From `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` when None.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Allow plain HTTP (local test servers).
    pub allow_http: bool,
}

/// The storage interface over an object store.
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    location: String,
    rt: tokio::runtime::Runtime,
}

impl std::fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStorage")
            .field("location", &self.location)
            .finish()
    }
}

fn unavailable(what: &str, location: &str, e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("object store {location}: {what}: {e}"))
}

/// Split `scheme://bucket/prefix` into its parts.
fn split_url(url: &str) -> Result<(&str, &str, String)> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| Error::InvalidArgument(format!("{url:?} is not a storage URL")))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(Error::InvalidArgument(format!("{url:?} names no bucket")));
    }
    let prefix = prefix.trim_matches('/').to_string();
    if !prefix.is_empty() {
        check_key(&prefix)
            .map_err(|_| Error::InvalidArgument(format!("{url:?} has an invalid prefix")))?;
    }
    Ok((scheme, bucket, prefix))
}

impl ObjectStorage {
    /// Open the store a URL names (`s3://`, `gs://`, `az://`). Nothing is contacted yet.
    pub fn open(url: &str, s3: &S3Options) -> Result<ObjectStorage> {
        let (scheme, bucket, prefix) = split_url(url)?;
        let client = ClientOptions::new()
            .with_timeout(Duration::from_secs(30))
            .with_connect_timeout(Duration::from_secs(5))
            .with_allow_http(s3.allow_http);
        let retry = RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(15),
            ..Default::default()
        };
        let bad = |e: object_store::Error| Error::InvalidArgument(format!("{url}: {e}"));
        let store: Arc<dyn ObjectStore> = match scheme {
            "s3" => {
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_client_options(client)
                    .with_retry(retry)
                    .with_allow_http(s3.allow_http)
                    .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch);
                if let Some(e) = &s3.endpoint {
                    if !(e.starts_with("http://") || e.starts_with("https://")) {
                        return Err(Error::InvalidArgument(format!(
                            "the S3 endpoint {e:?} is not an http:// or https:// URL"
                        )));
                    }
                    b = b.with_endpoint(e);
                }
                b = b.with_region(s3.region.clone().unwrap_or_else(|| {
                    std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into())
                }));
                if let Some(k) = &s3.access_key_id {
                    b = b.with_access_key_id(k);
                }
                if let Some(k) = &s3.secret_access_key {
                    b = b.with_secret_access_key(k);
                }
                Arc::new(b.build().map_err(bad)?)
            }
            "gs" => Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket)
                    .with_client_options(client)
                    .with_retry(retry)
                    .build()
                    .map_err(bad)?,
            ),
            "az" | "azure" => Arc::new(
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_container_name(bucket)
                    .with_client_options(client)
                    .with_retry(retry)
                    .build()
                    .map_err(bad)?,
            ),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "unknown storage scheme {other:?} (s3://, gs://, az:// or a local path)"
                )))
            }
        };
        Self::with_store(store, prefix, url.to_string())
    }

    /// Wrap any `object_store` store (tests use `InMemory`).
    pub fn with_store(
        store: Arc<dyn ObjectStore>,
        prefix: String,
        location: String,
    ) -> Result<ObjectStorage> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("quiver-objstore")
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("starting the object-store runtime: {e}")))?;
        Ok(ObjectStorage {
            store,
            prefix,
            location,
            rt,
        })
    }

    pub fn location(&self) -> &str {
        &self.location
    }

    fn path(&self, key: &str) -> Result<ObjPath> {
        check_key(key)?;
        Ok(if self.prefix.is_empty() {
            ObjPath::from(key)
        } else {
            ObjPath::from(format!("{}/{key}", self.prefix))
        })
    }

    /// The key of an object path under the prefix.
    fn key_of(&self, p: &ObjPath) -> String {
        let s = p.as_ref();
        if self.prefix.is_empty() {
            s.to_string()
        } else {
            s.strip_prefix(&self.prefix)
                .map(|r| r.trim_start_matches('/'))
                .unwrap_or(s)
                .to_string()
        }
    }

    /// Run a future on this store's runtime and wait for it on the calling thread. A request
    /// that panicked inside the client library is an error, not a panic here.
    fn run<T: Send + 'static, E: Send + 'static>(
        &self,
        what: &str,
        f: impl Future<Output = std::result::Result<T, E>> + Send + 'static,
    ) -> Result<std::result::Result<T, E>> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.rt.spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv().map_err(|_| {
            Error::Internal(format!(
                "object store {}: the {what} request failed inside the client",
                self.location
            ))
        })
    }

    /// Check that the store refuses to overwrite on a conditional put, and that what was
    /// written reads back. Object-store mode is refused where this fails.
    pub fn probe_conditional_put(&self) -> Result<()> {
        let nonce = format!(
            "{:x}{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        );
        let key = format!("_probe/{nonce}");
        let refuse = |why: String| {
            Error::FailedPrecondition(format!(
                "object store {} cannot hold a Quiver database: {why}. Quiver needs \
                 conditional PUT (If-None-Match: *), which AWS S3, MinIO, SeaweedFS, R2, GCS \
                 and Azure support",
                self.location
            ))
        };
        let first = self.put_if_absent(&key, b"first")?;
        let second = self.put_if_absent(&key, b"second")?;
        let back = self.get(&key)?;
        let _ = self.delete(&key);
        if !first {
            return Err(refuse(
                "a conditional PUT of a new object was refused".into(),
            ));
        }
        if second {
            return Err(refuse(
                "a conditional PUT over an existing object succeeded".into(),
            ));
        }
        if back.as_deref() != Some(&b"first"[..]) {
            return Err(refuse(format!(
                "the object read back is {:?}, not what was written first",
                back.map(|b| String::from_utf8_lossy(&b).into_owned())
            )));
        }
        Ok(())
    }
}

impl Storage for ObjectStorage {
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        let (store, path) = (Arc::clone(&self.store), self.path(key)?);
        let payload = PutPayload::from(data.to_vec());
        self.run("put", async move { store.put(&path, payload).await })?
            .map(|_| ())
            .map_err(|e| unavailable("put", &self.location, e))
    }

    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
        let (store, path) = (Arc::clone(&self.store), self.path(key)?);
        let payload = PutPayload::from(data.to_vec());
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self.run("conditional put", async move {
            store.put_opts(&path, payload, opts).await
        })? {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(unavailable("conditional put", &self.location, e)),
        }
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let (store, path) = (Arc::clone(&self.store), self.path(key)?);
        let got = self.run("get", async move {
            match store.get(&path).await {
                Ok(r) => r.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        got.map(|b| b.map(|b| b.to_vec()))
            .map_err(|e| unavailable("get", &self.location, e))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let p = prefix.trim_end_matches('/');
        let store = Arc::clone(&self.store);
        let dir = match (self.prefix.is_empty(), p.is_empty()) {
            (true, true) => None,
            (true, false) => Some(ObjPath::from(p)),
            (false, true) => Some(ObjPath::from(self.prefix.as_str())),
            (false, false) => Some(ObjPath::from(format!("{}/{p}", self.prefix))),
        };
        let res = self
            .run("list", async move {
                store.list_with_delimiter(dir.as_ref()).await
            })?
            .map_err(|e| unavailable("list", &self.location, e))?;
        let mut out: Vec<String> = res
            .common_prefixes
            .iter()
            .chain(res.objects.iter().map(|o| &o.location))
            .map(|p| self.key_of(p))
            // (SeaweedFS lists an emptied "directory" as a common prefix of itself.)
            .filter(|k| k != p && !k.rsplit('/').next().unwrap_or("").starts_with('.'))
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let (store, path) = (Arc::clone(&self.store), self.path(key)?);
        match self.run("delete", async move { store.delete(&path).await })? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(unavailable("delete", &self.location, e)),
        }
    }

    fn delete_prefix(&self, prefix: &str) -> Result<()> {
        let p = prefix.trim_end_matches('/');
        let dir = self.path(p)?;
        let store = Arc::clone(&self.store);
        self.run("delete prefix", async move {
            let keys: Vec<ObjPath> = store
                .list(Some(&dir))
                .map_ok(|m| m.location)
                .try_collect()
                .await?;
            for k in keys {
                match store.delete(&k).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })?
        .map_err(|e| unavailable("delete prefix", &self.location, e))
    }

    fn local_path(&self, _key: &str) -> Option<std::path::PathBuf> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_bucket_and_prefix() {
        assert_eq!(
            split_url("s3://b/a/b/").unwrap(),
            ("s3", "b", "a/b".to_string())
        );
        assert_eq!(split_url("s3://b").unwrap(), ("s3", "b", String::new()));
        assert!(split_url("s3:///x").is_err());
        assert!(split_url("bucket/x").is_err());
        assert!(split_url("s3://b/../x").is_err());
        assert!(ObjectStorage::open("ftp://b/x", &S3Options::default()).is_err());
        let empty = S3Options {
            endpoint: Some(String::new()),
            ..Default::default()
        };
        assert!(ObjectStorage::open("s3://b/x", &empty).is_err());
    }
}
