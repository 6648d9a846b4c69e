//! quiver-engine: the embeddable database that the server, the CLI and Rust programs all use.
//!
//! ```text
//! <data dir>/
//!   LOCK                          flock'ed by the one process that has the directory open
//!   catalog.qvc                   databases, collections, partitions, aliases, indexes (catalog.rs)
//!   collections/<id>/wal/         the collection's write-ahead log (quiver-wal)
//!   collections/<id>/segments/    sealed segment files, delete bitmaps (segment.rs), index files (index.rs)
//!   collections/<id>/manifest/    manifest versions naming the files (manifest.rs)
//! ```
//!
//! Durability: a write is acknowledged after its WAL record is fsynced, and is visible from
//! then on (see `collection.rs`). DDL is acknowledged after the catalog file is atomically
//! replaced. Recovery opens the catalog, then each collection (manifest + WAL replay); a
//! collection that fails to open is reported and isolated, and the others keep working.
//!
//! Consistency: every read sees every acknowledged write (read-your-writes for every Milvus
//! consistency level, which is a compatible superset of what Milvus promises).

mod autotune;
mod catalog;
mod collection;
mod ddl;
mod evolve;
mod filter;
mod hybrid;
mod index;
mod manifest;
pub mod objlog;
mod output;
mod pk;
mod read;
mod record;
mod search;
mod segment;
pub mod shared;
mod sparse;
mod write;

pub mod text;

pub mod inspect;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use quiver_core::storage::{LocalStorage, Storage};
use quiver_core::ts::Tso;
use quiver_core::{CollectionSchema, Error, Result};
use rayon::prelude::*;
use serde_json::Value as Json;
pub use shared::SharedOptions;

pub use autotune::{
    BuildPoint, BuildReport, BuildTuneRequest, Objective, TunePoint, TuneReport, TuneRequest,
};
pub use catalog::{
    Catalog, CollectionMeta, DatabaseMeta, IndexMeta, PartitionMeta, UserMeta, DEFAULT_DB,
    DEFAULT_PARTITION,
};
pub use collection::Collection;
pub use hybrid::{HybridRequest, Ranker};
pub use index::{IndexBuildState, IndexProgress};
pub use output::{OutColumn, OutputSpec};
pub use pk::Pk;
pub use search::{SearchRequest, SearchResult, MAX_TOPK};
pub use sparse::{bm25_idf, bm25_tf};
pub use write::WriteBatch;

use record::{Op, ALL_PARTITIONS};

/// Tuning knobs of the engine.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Seal a growing segment once it holds this many rows.
    pub seal_rows: usize,
    /// ... or this many bytes.
    pub seal_bytes: usize,
    /// WAL segment file size.
    pub wal_segment_bytes: u64,
    /// fsync on commit. Turning this off is for benchmarks of the non-durable path only.
    pub sync: bool,
    /// Rewrite a sealed segment once this fraction of its rows is deleted.
    pub compact_deleted_ratio: f64,
    /// Seal and compact in a background thread when thresholds are reached.
    pub background_flush: bool,
    /// Build vector indexes in a background thread (off: every search is exact).
    pub build_indexes: bool,
    /// Sealed segments with fewer rows are searched exactly and get no index.
    pub min_index_rows: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            seal_rows: 200_000,
            seal_bytes: 256 << 20,
            wal_segment_bytes: 64 << 20,
            sync: true,
            compact_deleted_ratio: 0.2,
            background_flush: true,
            build_indexes: true,
            min_index_rows: 1024,
        }
    }
}

/// What a collection is created with.
#[derive(Debug, Clone)]
pub struct CreateCollection {
    pub schema: CollectionSchema,
    pub properties: BTreeMap<String, String>,
    pub shards_num: i32,
    pub consistency_level: i32,
    pub num_partitions: i64,
}

impl CreateCollection {
    pub fn new(schema: CollectionSchema) -> Self {
        CreateCollection {
            schema,
            properties: BTreeMap::new(),
            shards_num: 1,
            consistency_level: 2,
            num_partitions: 0,
        }
    }
}

/// The outcome of a write.
#[derive(Debug, Clone, Default)]
pub struct MutationResult {
    /// Keys written (insert/upsert); empty for deletes.
    pub pks: Vec<Pk>,
    /// Rows inserted/upserted/deleted.
    pub count: u64,
    /// Hybrid timestamp of the write.
    pub ts: u64,
}

/// A query (filter + projection).
#[derive(Debug, Clone, Default)]
pub struct QueryRequest {
    pub filter: String,
    pub filter_params: HashMap<String, Json>,
    pub output_fields: Vec<String>,
    pub partitions: Vec<String>,
    pub limit: Option<usize>,
    pub offset: usize,
}

/// Query results: columns aligned by row, rows ordered by primary key.
#[derive(Debug, Clone, Default)]
pub struct QueryResult {
    pub fields: Vec<OutColumn>,
    pub output_names: Vec<String>,
    /// Set when `count(*)` was asked for (then `fields` is empty).
    pub count: Option<u64>,
}

/// One segment as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub id: u64,
    pub partition: u64,
    pub rows: u64,
    pub deleted: u64,
    /// Sealed (immutable, sorted by key) or growing.
    pub sealed: bool,
    /// Named by the current manifest.
    pub persisted: bool,
    /// Ids of the indexes built on the segment.
    pub index_ids: Vec<u64>,
}

/// The database.
pub struct Engine {
    root: PathBuf,
    storage: Arc<dyn Storage>,
    mode: Mode,
    catalog: RwLock<Arc<Catalog>>,
    ddl: Mutex<()>,
    collections: Arc<RwLock<HashMap<u64, Arc<Collection>>>>,
    /// Collections that failed to open, with the reason.
    broken: RwLock<HashMap<u64, String>>,
    tso: Tso,
    opts: EngineOptions,
    /// Background flush threads; joined on drop so no thread outlives the engine's lock.
    background: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Wakes the index builder (flushes, index DDL).
    index_wake: Arc<index::Wakeup>,
    index_builder: Mutex<Option<index::IndexBuilder>>,
    _lock: File,
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(mut b) = self.index_builder.lock().take() {
            b.shutdown();
        }
        for h in self.background.lock().drain(..) {
            let _ = h.join();
        }
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("root", &self.root).finish()
    }
}

/// How this process holds the database.
enum Mode {
    /// One local directory, one process.
    Embedded,
    /// Shared mode, the writer: holds the lease of its epoch.
    Writer(shared::Lease),
    /// Shared mode, a reader: follows the store (`follow_once`), refuses writes and DDL.
    Reader,
}

/// Create `root` and lock it for this process.
fn open_local_dir(root: &Path) -> Result<File> {
    std::fs::create_dir_all(root).map_err(|e| Error::io("create directory", root, e))?;
    lock_dir(root)
}

/// The newest catalog version of a shared database, if it has one.
fn load_shared_catalog(store: &dyn Storage) -> Result<Option<Catalog>> {
    let latest = store
        .list(shared::CATALOG_PREFIX)?
        .iter()
        .filter_map(|k| shared::catalog_version(k))
        .max();
    let Some(v) = latest else { return Ok(None) };
    let key = shared::catalog_key(v);
    let bytes = store
        .get(&key)?
        .ok_or_else(|| Error::corrupt(&key, 0, "catalog version vanished while opening"))?;
    Catalog::decode(Path::new(&key), &bytes).map(Some)
}

fn lock_dir(root: &Path) -> Result<File> {
    let path = root.join("LOCK");
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(Error::FailedPrecondition(format!(
                "the data directory {} is in use by another process",
                root.display()
            )));
        }
    }
    Ok(f)
}

impl Engine {
    /// Open (creating if needed) the database in `root`.
    pub fn open(root: impl Into<PathBuf>, opts: EngineOptions) -> Result<Engine> {
        let root = root.into();
        let local = Arc::new(LocalStorage::new(&root)?);
        let lock = lock_dir(&root)?;
        let removed = local.remove_temp_files()?;
        if removed > 0 {
            tracing::info!(removed, "removed temporary files left by a crash");
        }
        let tso = Tso::new(0);
        let catalog = match local.get(catalog::CATALOG_KEY)? {
            Some(bytes) => Catalog::decode(&root.join(catalog::CATALOG_KEY), &bytes)?,
            None => {
                let c = Catalog::new(tso.now());
                local.put(catalog::CATALOG_KEY, &c.encode())?;
                c
            }
        };
        Self::start(root, local, Mode::Embedded, lock, tso, catalog, opts)
    }

    /// Open (creating if needed) a shared database in `shared.store` as its writer: claim the
    /// next writer epoch (waiting for a live writer's lease to lapse), then take the catalog and
    /// every collection over at that epoch. `root` is a local directory for this process's own
    /// files (the model registry); the database itself lives in the store. See shared.rs.
    pub fn open_shared(
        root: impl Into<PathBuf>,
        opts: EngineOptions,
        shared: SharedOptions,
    ) -> Result<Engine> {
        let root = root.into();
        let lock = open_local_dir(&root)?;
        let store = Arc::clone(&shared.store);
        let lease = shared::Lease::claim(
            Arc::clone(&store),
            shared.lease_ttl,
            shared.takeover_wait,
            shared.force_takeover,
        )?;
        let tso = Tso::new(0);
        // Take the catalog chain over: a catalog version at this epoch, so that an older
        // writer's DDL fails from here on.
        let catalog = loop {
            let (latest, mut c) = match load_shared_catalog(store.as_ref())? {
                Some(c) => (c.version, c),
                None => (0, Catalog::new(tso.now())),
            };
            if c.epoch > lease.epoch {
                return Err(Error::FailedPrecondition(format!(
                    "writer epoch {} took over {} while this one started",
                    c.epoch, shared.location
                )));
            }
            c.version = latest + 1;
            c.epoch = lease.epoch;
            if store.put_if_absent(&shared::catalog_key(c.version), &c.encode())? {
                break c;
            }
        };
        tracing::info!(
            epoch = lease.epoch,
            location = shared.location,
            catalog = catalog.version,
            "opened the shared database as its writer"
        );
        Self::start(root, store, Mode::Writer(lease), lock, tso, catalog, opts)
    }

    /// Open a shared database as a reader: no lease, no writes; the catalog, manifests and log
    /// as the store holds them now, brought up to date by [`Engine::follow_once`]. Reads of
    /// immutable files go through a local-disk cache of `cache_bytes` under `root/cache`.
    pub fn open_reader(
        root: impl Into<PathBuf>,
        mut opts: EngineOptions,
        shared: SharedOptions,
        cache_bytes: u64,
    ) -> Result<Engine> {
        let root = root.into();
        let lock = open_local_dir(&root)?;
        let store: Arc<dyn Storage> = Arc::new(quiver_core::storage::CachedStorage::new(
            Arc::clone(&shared.store),
            root.join("cache"),
            cache_bytes,
        )?);
        let tso = Tso::new(0);
        let catalog = load_shared_catalog(store.as_ref())?.unwrap_or_else(|| Catalog::new(0));
        opts.build_indexes = false;
        opts.background_flush = false;
        tracing::info!(
            location = shared.location,
            catalog = catalog.version,
            "opened the shared database as a reader"
        );
        Self::start(root, store, Mode::Reader, lock, tso, catalog, opts)
    }

    /// Whether this process is a reader of a shared database.
    pub fn is_reader(&self) -> bool {
        matches!(self.mode, Mode::Reader)
    }

    /// A reader catching up with the store: a newer catalog (collections created, dropped or
    /// changed are opened again), then each collection's new log records, or the collection
    /// opened again from a newer manifest. Returns the records applied. No-op elsewhere.
    pub fn follow_once(&self) -> Result<usize> {
        if !self.is_reader() {
            return Ok(0);
        }
        let mut reopen: BTreeMap<u64, CollectionMeta> = BTreeMap::new();
        let old = self.catalog();
        if let Some(c) = load_shared_catalog(self.storage.as_ref())? {
            if c.version > old.version {
                let gone: Vec<u64> = self
                    .collections
                    .read()
                    .keys()
                    .filter(|id| !c.collections.contains_key(id))
                    .copied()
                    .collect();
                for id in gone {
                    if let Some(x) = self.collections.write().remove(&id) {
                        x.retire();
                    }
                    self.broken.write().remove(&id);
                }
                for m in c.collections.values() {
                    let same = old.collections.get(&m.id).is_some_and(|o| {
                        serde_json::to_string(o).ok() == serde_json::to_string(m).ok()
                    });
                    if !same {
                        reopen.insert(m.id, m.clone());
                    }
                }
                *self.catalog.write() = Arc::new(c);
            }
        }
        let cat = self.catalog();
        for id in self.broken.read().keys() {
            if let Some(m) = cat.collections.get(id) {
                reopen.insert(*id, m.clone());
            }
        }
        let open: Vec<(u64, Arc<Collection>)> = self
            .collections
            .read()
            .iter()
            .map(|(k, v)| (*k, Arc::clone(v)))
            .collect();
        let mut applied = 0;
        for (id, coll) in open {
            if reopen.contains_key(&id) {
                continue;
            }
            match coll.follow() {
                Ok(collection::Followed::Applied(n)) => {
                    applied += n;
                    self.tso.observe(coll.state.read().max_ts);
                }
                Ok(collection::Followed::Reopen) => {
                    if let Some(m) = cat.collections.get(&id) {
                        reopen.insert(id, m.clone());
                    }
                }
                Err(e) => tracing::warn!(collection = id, "following the store failed: {e}"),
            }
        }
        for (id, m) in reopen {
            match self.open_collection(&m) {
                Ok(c) => {
                    self.tso.observe(c.state.read().max_ts);
                    self.broken.write().remove(&id);
                    if let Some(x) = self.collections.write().insert(id, Arc::new(c)) {
                        x.retire();
                    }
                }
                Err(e) => {
                    tracing::warn!(
                        collection = id,
                        "a reader could not open the collection: {e}"
                    );
                    self.broken.write().insert(id, e.to_string());
                }
            }
        }
        Ok(applied)
    }

    fn start(
        root: PathBuf,
        storage: Arc<dyn Storage>,
        mode: Mode,
        lock: File,
        tso: Tso,
        catalog: Catalog,
        opts: EngineOptions,
    ) -> Result<Engine> {
        // Remove the files of collections the catalog no longer has (dropped before a crash).
        // (A reader leaves that to the writer.)
        let listed = match mode {
            Mode::Reader => vec![],
            _ => storage.list("collections/")?,
        };
        for key in listed {
            let id = key.rsplit('/').next().and_then(|s| s.parse::<u64>().ok());
            if id.is_none_or(|id| !catalog.collections.contains_key(&id)) {
                tracing::info!(key, "removing files of a dropped collection");
                storage.delete_prefix(&key)?;
            }
        }
        let engine = Engine {
            root: root.clone(),
            storage,
            mode,
            catalog: RwLock::new(Arc::new(catalog.clone())),
            ddl: Mutex::new(()),
            collections: Arc::new(RwLock::new(HashMap::new())),
            broken: RwLock::new(HashMap::new()),
            tso,
            opts,
            background: Mutex::new(Vec::new()),
            index_wake: Arc::new(index::Wakeup::default()),
            index_builder: Mutex::new(None),
            _lock: lock,
        };
        let opened: Vec<(u64, Result<Collection>)> = catalog
            .collections
            .values()
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|m| (m.id, engine.open_collection(m)))
            .collect();
        for (id, res) in opened {
            match res {
                Ok(c) => {
                    engine.tso.observe(c.state.read().max_ts);
                    engine.collections.write().insert(id, Arc::new(c));
                }
                Err(e) => {
                    tracing::error!(
                        collection = id,
                        "collection could not be opened and is unavailable: {e}"
                    );
                    engine.broken.write().insert(id, e.to_string());
                }
            }
        }
        if engine.opts.build_indexes {
            *engine.index_builder.lock() = Some(index::IndexBuilder::spawn(
                Arc::clone(&engine.collections),
                Arc::clone(&engine.index_wake),
            ));
        }
        Ok(engine)
    }

    /// Shared mode: this writer's epoch (None in embedded mode).
    pub fn writer_epoch(&self) -> Option<u64> {
        match &self.mode {
            Mode::Writer(l) => Some(l.epoch),
            _ => None,
        }
    }

    /// Shared mode: why this writer is fenced, once a newer writer claimed the lease.
    pub fn fenced(&self) -> Option<String> {
        match &self.mode {
            Mode::Writer(l) => l.fenced(),
            _ => None,
        }
    }

    fn open_collection(&self, m: &CollectionMeta) -> Result<Collection> {
        let log = match &self.mode {
            Mode::Reader => collection::LogSpec::Follow,
            Mode::Embedded => {
                collection::LogSpec::Local(self.root.join(format!("collections/{}/wal", m.id)))
            }
            Mode::Writer(l) => collection::LogSpec::Object {
                epoch: l.epoch,
                writer: l.writer,
            },
        };
        let c = Collection::open(
            m.id,
            m.schema.clone(),
            Arc::clone(&self.storage),
            log,
            self.opts.clone(),
            Arc::clone(&self.index_wake),
        )?;
        c.set_index_defs(index_defs(m));
        Ok(c)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A fresh hybrid timestamp.
    pub fn now_ts(&self) -> u64 {
        self.tso.now()
    }

    /// The catalog as of now.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().clone()
    }

    /// Apply a DDL change: copy, modify, persist, swap. Serialized by the DDL lock.
    fn change_catalog<R>(&self, f: impl FnOnce(&mut Catalog, u64) -> Result<R>) -> Result<R> {
        if self.is_reader() {
            return Err(Error::FailedPrecondition(
                "this process is a reader of a shared database: send DDL to its writer".into(),
            ));
        }
        let _g = self.ddl.lock();
        let mut next = (**self.catalog.read()).clone();
        let ts = self.tso.now();
        let r = f(&mut next, ts)?;
        next.version += 1;
        match &self.mode {
            Mode::Embedded | Mode::Reader => {
                self.storage.put(catalog::CATALOG_KEY, &next.encode())?
            }
            Mode::Writer(lease) => {
                next.epoch = lease.epoch;
                let key = shared::catalog_key(next.version);
                if !self.storage.put_if_absent(&key, &next.encode())? {
                    let theirs = self
                        .storage
                        .get(&key)?
                        .map(|b| Catalog::decode(Path::new(&key), &b))
                        .transpose()?;
                    return Err(match theirs {
                        Some(c) if c.epoch > lease.epoch => {
                            shared::fenced_error("the catalog", c.epoch, lease.epoch)
                        }
                        _ => Error::Internal(format!("catalog version {} exists", next.version)),
                    });
                }
                // Keep the last 16 catalog versions.
                if next.version > 16 {
                    let _ = self.storage.delete(&shared::catalog_key(next.version - 16));
                }
            }
        }
        *self.catalog.write() = Arc::new(next);
        Ok(r)
    }

    // ---------------------------------------------------------------- writes

    fn partition_id(meta: &CollectionMeta, partition: Option<&str>) -> Result<u64> {
        match partition {
            None | Some("") => Ok(meta.default_partition()),
            Some(p) => meta
                .partition(p)
                .map(|p| p.id)
                .ok_or_else(|| Error::PartitionNotFound(p.into())),
        }
    }

    /// Insert rows. A row whose primary key already exists replaces it (no duplicate keys).
    pub fn insert(
        &self,
        db: &str,
        coll: &str,
        partition: Option<&str>,
        batch: WriteBatch,
    ) -> Result<MutationResult> {
        self.write(db, coll, partition, batch, false)
    }

    /// Insert or replace rows by primary key.
    pub fn upsert(
        &self,
        db: &str,
        coll: &str,
        partition: Option<&str>,
        batch: WriteBatch,
    ) -> Result<MutationResult> {
        self.write(db, coll, partition, batch, true)
    }

    fn write(
        &self,
        db: &str,
        coll: &str,
        partition: Option<&str>,
        batch: WriteBatch,
        upsert: bool,
    ) -> Result<MutationResult> {
        let (meta, c) = self.collection(db, coll)?;
        let pid = Self::partition_id(&meta, partition)?;
        let gate = c.write_gate.read();
        let schema = c.schema();
        let columns = write::normalize(&schema, batch, upsert, |n| self.tso.alloc(n))?;
        let pks = Pk::all(&columns[schema.pk_index()])?;
        let ts = self.tso.now();
        c.commit(
            Op::Insert {
                ts,
                partition: pid,
                columns,
            },
            &schema,
        )?;
        drop(gate);
        self.maybe_flush(&c);
        Ok(MutationResult {
            count: pks.len() as u64,
            pks,
            ts,
        })
    }

    /// Delete the rows matching `filter` (in one partition, or all).
    pub fn delete(
        &self,
        db: &str,
        coll: &str,
        partition: Option<&str>,
        filter: &str,
        params: &HashMap<String, Json>,
    ) -> Result<MutationResult> {
        let (meta, c) = self.collection(db, coll)?;
        if filter.trim().is_empty() {
            return Err(Error::InvalidArgument("delete needs a filter expression (an empty one would delete everything; use truncate)".into()));
        }
        let scope = match partition {
            None | Some("") => None,
            Some(_) => Some(Self::partition_id(&meta, partition)?),
        };
        let (pks, schema): (Vec<Pk>, _) = {
            let st = c.state.read();
            let plan = filter::compile(&st.schema, filter, params)?;
            let rows =
                read::matching_rows(&st.schema, &st, &plan, scope.map(|p| vec![p]).as_deref())?;
            (
                rows.into_iter().map(|(pk, _, _)| pk).collect(),
                Arc::clone(&st.schema),
            )
        };
        let ts = self.tso.now();
        if !pks.is_empty() {
            c.commit(
                Op::Delete {
                    ts,
                    partition: scope.unwrap_or(ALL_PARTITIONS),
                    pks: pks.clone(),
                },
                &schema,
            )?;
            self.maybe_flush(&c);
        }
        Ok(MutationResult {
            count: pks.len() as u64,
            pks: vec![],
            ts,
        })
    }

    fn maybe_flush(&self, c: &Arc<Collection>) {
        if self.opts.background_flush && c.wants_flush() && c.claim_background_flush() {
            let c = Arc::clone(c);
            let handle = std::thread::spawn(move || {
                if let Err(e) = c.flush() {
                    tracing::warn!(
                        collection = c.id,
                        "background flush failed (will retry): {e}"
                    );
                }
                c.release_background_flush();
            });
            let mut bg = self.background.lock();
            bg.retain(|h| !h.is_finished());
            bg.push(handle);
        }
    }

    /// Seal and persist everything written so far (the WAL already made it durable).
    pub fn flush(&self, db: &str, coll: &str) -> Result<()> {
        self.collection(db, coll)?.1.flush()
    }

    /// Flush every collection (graceful shutdown).
    pub fn flush_all(&self) -> Result<()> {
        let all: Vec<Arc<Collection>> = self.collections.read().values().cloned().collect();
        for c in all {
            c.flush()?;
        }
        Ok(())
    }
}

/// The parsed vector index definitions of a collection (definitions that no longer parse were
/// validated when created; they are logged and skipped).
fn index_defs(m: &CollectionMeta) -> Vec<index::IndexDef> {
    m.indexes
        .iter()
        .filter_map(|i| match index::IndexDef::from_meta(&m.schema, i) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(
                    collection = m.id,
                    index = i.name,
                    "index definition ignored: {e}"
                );
                None
            }
        })
        .collect()
}
