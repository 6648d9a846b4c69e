//! Shared mode: the database lives in an object store (or any [`Storage`]) that several
//! processes open, and one of them at a time is the writer.
//!
//! Keys beside the embedded layout (see the crate docs):
//!
//! | key | content |
//! |-----|---------|
//! | `_writer/<epoch, 20 digits>.lease` | JSON `{epoch, writer, host, pid, beat, ttl_ms, released}`: the writer lease of one epoch, created only if absent (that is the claim), then rewritten by its holder every `ttl/3` with `beat + 1` |
//! | `catalog/<version, 20 digits>.qvc` | catalog versions (the embedded `catalog.qvc` envelope), created only if absent, each carrying the writer epoch |
//! | `collections/<id>/log/<first LSN>.qlog` | the write-ahead log as objects (objlog.rs) instead of `wal/` files |
//!
//! Taking over: a new writer reads the highest epoch's lease; unless it is released it waits until
//! the holder's `beat` has not changed for the holder's `ttl` (measured on the new writer's own
//! clock, so clock skew does not matter), then creates the lease of `epoch + 1`. Losing that
//! create means another process claimed it: the claim starts over. The lease only keeps two live
//! writers from taking turns; safety never depends on it. Every commit point is a create-if-absent
//! position (log objects, manifest versions, catalog versions), and a writer that finds a position
//! taken by a higher epoch is fenced: it stops acknowledging for good.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use quiver_core::storage::Storage;
use quiver_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// How the engine opens a shared database.
#[derive(Clone)]
pub struct SharedOptions {
    pub store: Arc<dyn Storage>,
    /// The store's name for messages (`s3://bucket/prefix`).
    pub location: String,
    /// How long a writer's lease lasts without a heartbeat.
    pub lease_ttl: Duration,
    /// How long to wait for a live writer to go away before refusing to start.
    pub takeover_wait: Duration,
    /// Take over without waiting for the current lease to lapse (the operator knows the old
    /// writer is gone, or wants it fenced now). Safe either way: the old writer is fenced.
    pub force_takeover: bool,
}

impl SharedOptions {
    pub fn new(store: Arc<dyn Storage>, location: impl Into<String>) -> SharedOptions {
        SharedOptions {
            store,
            location: location.into(),
            lease_ttl: Duration::from_secs(10),
            takeover_wait: Duration::from_secs(60),
            force_takeover: false,
        }
    }
}

impl std::fmt::Debug for SharedOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedOptions")
            .field("location", &self.location)
            .field("lease_ttl", &self.lease_ttl)
            .finish()
    }
}

pub const WRITER_PREFIX: &str = "_writer/";
pub const CATALOG_PREFIX: &str = "catalog/";

/// The error of a writer that found a commit position held by a newer writer epoch.
pub fn fenced_error(what: &str, theirs: u64, ours: u64) -> Error {
    Error::FailedPrecondition(format!(
        "this writer was fenced: writer epoch {theirs} took over {what} (this writer is epoch \
         {ours})"
    ))
}

pub fn lease_key(epoch: u64) -> String {
    format!("{WRITER_PREFIX}{epoch:020}.lease")
}

pub fn catalog_key(version: u64) -> String {
    format!("{CATALOG_PREFIX}{version:020}.qvc")
}

pub fn catalog_version(key: &str) -> Option<u64> {
    key.rsplit('/').next()?.strip_suffix(".qvc")?.parse().ok()
}

fn lease_epoch(key: &str) -> Option<u64> {
    key.rsplit('/').next()?.strip_suffix(".lease")?.parse().ok()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LeaseBody {
    epoch: u64,
    writer: u64,
    host: String,
    pid: u32,
    beat: u64,
    ttl_ms: u64,
    #[serde(default)]
    released: bool,
}

/// A random id for this writer process (transaction ids of its commits start with it).
pub fn writer_id() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let mut x = t ^ ((std::process::id() as u64) << 32) ^ 0x9e37_79b9_7f4a_7c15;
    // splitmix64
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 31)) | 1
}

fn read_lease(store: &dyn Storage, epoch: u64) -> Result<Option<LeaseBody>> {
    let key = lease_key(epoch);
    match store.get(&key)? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::corrupt(&key, 0, format!("bad writer lease: {e}"))),
    }
}

fn highest_epoch(store: &dyn Storage) -> Result<u64> {
    Ok(store
        .list(WRITER_PREFIX)?
        .iter()
        .filter_map(|k| lease_epoch(k))
        .max()
        .unwrap_or(0))
}

/// The writer lease of one epoch, kept alive by a heartbeat thread until dropped.
pub struct Lease {
    pub epoch: u64,
    pub writer: u64,
    store: Arc<dyn Storage>,
    fenced: Arc<Mutex<Option<String>>>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
    body: Arc<Mutex<LeaseBody>>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("epoch", &self.epoch).finish()
    }
}

impl Lease {
    /// Claim the next writer epoch, waiting up to `wait` for a live holder's lease to lapse.
    pub fn claim(
        store: Arc<dyn Storage>,
        ttl: Duration,
        wait: Duration,
        force: bool,
    ) -> Result<Lease> {
        let deadline = Instant::now() + wait;
        let writer = writer_id();
        loop {
            let cur = highest_epoch(store.as_ref())?;
            if cur > 0 {
                if let Some(held) = read_lease(store.as_ref(), cur)? {
                    if !held.released && !force && !wait_for_lapse(store.as_ref(), &held, deadline)?
                    {
                        continue; // a newer epoch appeared meanwhile
                    }
                }
            }
            let body = LeaseBody {
                epoch: cur + 1,
                writer,
                host: std::env::var("HOSTNAME").unwrap_or_default(),
                pid: std::process::id(),
                beat: 0,
                ttl_ms: ttl.as_millis() as u64,
                released: false,
            };
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            if store.put_if_absent(&lease_key(cur + 1), &bytes)? {
                tracing::info!(epoch = cur + 1, "claimed the writer lease");
                return Ok(Lease::start(store, body, ttl));
            }
        }
    }

    fn start(store: Arc<dyn Storage>, body: LeaseBody, ttl: Duration) -> Lease {
        let fenced = Arc::new(Mutex::new(None));
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let body = Arc::new(Mutex::new(body));
        let (epoch, writer) = {
            let b = body.lock();
            (b.epoch, b.writer)
        };
        let thread = {
            let (store, fenced, stop, body) = (
                Arc::clone(&store),
                Arc::clone(&fenced),
                Arc::clone(&stop),
                Arc::clone(&body),
            );
            std::thread::Builder::new()
                .name("quiver-lease".into())
                .spawn(move || heartbeat(store, fenced, stop, body, ttl / 3))
                .ok()
        };
        Lease {
            epoch,
            writer,
            store,
            fenced,
            stop,
            thread,
            body,
        }
    }

    /// Why this writer is fenced, once a newer epoch's lease exists.
    pub fn fenced(&self) -> Option<String> {
        self.fenced.lock().clone()
    }
}

/// Wait until `held` lapses: its beat unchanged for its ttl. `Ok(false)`: a newer epoch appeared.
fn wait_for_lapse(store: &dyn Storage, held: &LeaseBody, deadline: Instant) -> Result<bool> {
    let ttl = Duration::from_millis(held.ttl_ms.max(1));
    let mut beat = held.beat;
    let mut since = Instant::now();
    tracing::info!(
        epoch = held.epoch,
        pid = held.pid,
        "waiting for the current writer's lease to lapse"
    );
    loop {
        std::thread::sleep((ttl / 4).clamp(Duration::from_millis(20), Duration::from_secs(1)));
        if highest_epoch(store)? > held.epoch {
            return Ok(false);
        }
        match read_lease(store, held.epoch)? {
            Some(b) if b.released => return Ok(true),
            Some(b) if b.beat != beat => {
                beat = b.beat;
                since = Instant::now();
            }
            _ if since.elapsed() >= ttl => return Ok(true),
            _ => {}
        }
        if Instant::now() >= deadline {
            return Err(Error::Unavailable(format!(
                "writer epoch {} (host {:?}, pid {}) holds the lease and is alive; stop it, or wait \
                 until its lease ({} ms) lapses",
                held.epoch, held.host, held.pid, held.ttl_ms
            )));
        }
    }
}

fn heartbeat(
    store: Arc<dyn Storage>,
    fenced: Arc<Mutex<Option<String>>>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    body: Arc<Mutex<LeaseBody>>,
    every: Duration,
) {
    let (lock, cv) = &*stop;
    loop {
        {
            let mut stopped = lock.lock();
            if !*stopped {
                cv.wait_for(&mut stopped, every);
            }
            if *stopped {
                return;
            }
        }
        let epoch = body.lock().epoch;
        match store.get(&lease_key(epoch + 1)) {
            Ok(Some(_)) => {
                let why = format!("writer epoch {} claimed the lease", epoch + 1);
                tracing::warn!("this writer (epoch {epoch}) is fenced: {why}");
                *fenced.lock() = Some(why);
                return;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!("writer lease check failed: {e}");
                continue;
            }
        }
        let bytes = {
            let mut b = body.lock();
            b.beat += 1;
            serde_json::to_vec(&*b).unwrap_or_default()
        };
        if let Err(e) = store.put(&lease_key(epoch), &bytes) {
            tracing::warn!("writer lease renewal failed: {e}");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Hand over at once on a clean stop (a successor need not wait for the lease to lapse),
        // unless a newer writer exists already.
        if self.fenced.lock().is_none()
            && matches!(self.store.get(&lease_key(self.epoch + 1)), Ok(None))
        {
            let bytes = {
                let mut b = self.body.lock();
                b.released = true;
                serde_json::to_vec(&*b).unwrap_or_default()
            };
            let _ = self.store.put(&lease_key(self.epoch), &bytes);
        }
    }
}
