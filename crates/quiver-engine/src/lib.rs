//! quiver-engine: the embeddable database that the server, the CLI and Rust programs all use.
//!
//! ```text
//! <data dir>/
//!   LOCK                          flock'ed by the one process that has the directory open
//!   catalog.qvc                   databases, collections, partitions, aliases, indexes (catalog.rs)
//!   collections/<id>/wal/         the collection's write-ahead log (quiver-wal)
//!   collections/<id>/segments/    sealed segment files and delete bitmaps (segment.rs)
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

mod catalog;
mod collection;
mod filter;
mod manifest;
mod output;
mod pk;
mod record;
mod search;
mod segment;
mod write;

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

pub use catalog::{
    Catalog, CollectionMeta, DatabaseMeta, IndexMeta, PartitionMeta, DEFAULT_DB, DEFAULT_PARTITION,
};
pub use collection::Collection;
pub use output::{OutColumn, OutputSpec};
pub use pk::Pk;
pub use search::{SearchRequest, SearchResult, MAX_TOPK};
pub use write::WriteBatch;

use collection::State;
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
}

/// The database.
pub struct Engine {
    root: PathBuf,
    storage: Arc<LocalStorage>,
    catalog: RwLock<Arc<Catalog>>,
    ddl: Mutex<()>,
    collections: RwLock<HashMap<u64, Arc<Collection>>>,
    /// Collections that failed to open, with the reason.
    broken: RwLock<HashMap<u64, String>>,
    tso: Tso,
    opts: EngineOptions,
    _lock: File,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("root", &self.root).finish()
    }
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
        let storage = Arc::new(LocalStorage::new(&root)?);
        let lock = lock_dir(&root)?;
        let removed = storage.remove_temp_files()?;
        if removed > 0 {
            tracing::info!(removed, "removed temporary files left by a crash");
        }
        let tso = Tso::new(0);
        let catalog = match storage.get(catalog::CATALOG_KEY)? {
            Some(bytes) => Catalog::decode(&root.join(catalog::CATALOG_KEY), &bytes)?,
            None => {
                let c = Catalog::new(tso.now());
                storage.put(catalog::CATALOG_KEY, &c.encode())?;
                c
            }
        };
        // Remove the files of collections the catalog no longer has (dropped before a crash).
        for key in storage.list("collections/")? {
            let id = key.rsplit('/').next().and_then(|s| s.parse::<u64>().ok());
            if id.is_none_or(|id| !catalog.collections.contains_key(&id)) {
                tracing::info!(key, "removing files of a dropped collection");
                storage.delete_prefix(&key)?;
            }
        }
        let engine = Engine {
            root: root.clone(),
            storage,
            catalog: RwLock::new(Arc::new(catalog.clone())),
            ddl: Mutex::new(()),
            collections: RwLock::new(HashMap::new()),
            broken: RwLock::new(HashMap::new()),
            tso,
            opts,
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
        Ok(engine)
    }

    fn open_collection(&self, m: &CollectionMeta) -> Result<Collection> {
        let wal_dir = self.root.join(format!("collections/{}/wal", m.id));
        let storage: Arc<dyn Storage> = self.storage.clone();
        Collection::open(m.id, m.schema.clone(), storage, wal_dir, self.opts.clone())
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
        let _g = self.ddl.lock();
        let mut next = (**self.catalog.read()).clone();
        let ts = self.tso.now();
        let r = f(&mut next, ts)?;
        next.version += 1;
        self.storage.put(catalog::CATALOG_KEY, &next.encode())?;
        *self.catalog.write() = Arc::new(next);
        Ok(r)
    }

    // ---------------------------------------------------------------- databases

    pub fn create_database(&self, name: &str, properties: BTreeMap<String, String>) -> Result<()> {
        quiver_core::schema::validate_name(name, "database")?;
        self.change_catalog(|c, ts| {
            if c.databases.contains_key(name) {
                return Err(Error::AlreadyExists {
                    kind: "database",
                    name: name.into(),
                });
            }
            let id = c.alloc_id();
            c.databases.insert(
                name.into(),
                DatabaseMeta {
                    id,
                    name: name.into(),
                    created_ts: ts,
                    properties,
                    aliases: BTreeMap::new(),
                },
            );
            Ok(())
        })
    }

    pub fn drop_database(&self, name: &str) -> Result<()> {
        if name == DEFAULT_DB {
            return Err(Error::FailedPrecondition(
                "can not drop default database".into(),
            ));
        }
        self.change_catalog(|c, _| {
            c.database(name)?;
            if c.collections.values().any(|m| m.db == name) {
                return Err(Error::FailedPrecondition(format!(
                    "database:{name} not empty, must drop all collections before drop database"
                )));
            }
            c.databases.remove(name);
            Ok(())
        })
    }

    /// Rename a database; its collections and aliases move with it.
    pub fn rename_database(&self, old: &str, new: &str) -> Result<()> {
        quiver_core::schema::validate_name(new, "database")?;
        if old == DEFAULT_DB {
            return Err(Error::FailedPrecondition(
                "can not rename the default database".into(),
            ));
        }
        self.change_catalog(|c, _| {
            if c.databases.contains_key(new) {
                return Err(Error::AlreadyExists {
                    kind: "database",
                    name: new.into(),
                });
            }
            let mut d = c
                .databases
                .remove(old)
                .ok_or_else(|| Error::DatabaseNotFound(old.into()))?;
            d.name = new.into();
            c.databases.insert(new.into(), d);
            for m in c.collections.values_mut().filter(|m| m.db == old) {
                m.db = new.into();
            }
            Ok(())
        })
    }

    pub fn list_databases(&self) -> Vec<DatabaseMeta> {
        self.catalog().databases.values().cloned().collect()
    }

    pub fn describe_database(&self, name: &str) -> Result<DatabaseMeta> {
        self.catalog().database(name).cloned()
    }

    pub fn alter_database(
        &self,
        name: &str,
        set: BTreeMap<String, String>,
        delete: &[String],
    ) -> Result<()> {
        self.change_catalog(|c, _| {
            let db = c
                .databases
                .get_mut(name)
                .ok_or_else(|| Error::DatabaseNotFound(name.into()))?;
            db.properties.extend(set);
            for k in delete {
                db.properties.remove(k);
            }
            Ok(())
        })
    }

    // ---------------------------------------------------------------- collections

    pub fn create_collection(&self, db: &str, req: CreateCollection) -> Result<CollectionMeta> {
        let mut schema = req.schema;
        schema.validate()?;
        let meta = self.change_catalog(|c, ts| {
            let dbm = c.database(db)?;
            if c.collections
                .values()
                .any(|m| m.db == db && m.name == schema.name)
                || dbm.aliases.contains_key(&schema.name)
            {
                return Err(Error::AlreadyExists {
                    kind: "collection",
                    name: schema.name.clone(),
                });
            }
            let id = c.alloc_id();
            let pid = c.alloc_id();
            let meta = CollectionMeta {
                id,
                db: db.into(),
                name: schema.name.clone(),
                schema: schema.clone(),
                properties: req.properties,
                shards_num: req.shards_num.max(1),
                consistency_level: req.consistency_level,
                partitions: vec![PartitionMeta {
                    id: pid,
                    name: DEFAULT_PARTITION.into(),
                    created_ts: ts,
                }],
                indexes: vec![],
                created_ts: ts,
                updated_ts: ts,
                loaded: true,
            };
            c.collections.insert(id, meta.clone());
            Ok(meta)
        })?;
        let coll = self.open_collection(&meta)?;
        self.collections.write().insert(meta.id, Arc::new(coll));
        Ok(meta)
    }

    pub fn drop_collection(&self, db: &str, name: &str) -> Result<()> {
        let id = self.change_catalog(|c, _| {
            let id = c.by_name(db, name)?.id;
            c.collections.remove(&id);
            for d in c.databases.values_mut() {
                d.aliases.retain(|_, v| *v != id);
            }
            Ok(id)
        })?;
        self.broken.write().remove(&id);
        if let Some(coll) = self.collections.write().remove(&id) {
            coll.retire();
        }
        self.storage.delete_prefix(&format!("collections/{id}"))
    }

    pub fn has_collection(&self, db: &str, name: &str) -> Result<bool> {
        match self.catalog().resolve(db, name) {
            Ok(_) => Ok(true),
            Err(Error::CollectionNotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Describe a collection (by name or alias).
    pub fn describe_collection(&self, db: &str, name: &str) -> Result<CollectionMeta> {
        self.catalog().resolve(db, name).cloned()
    }

    /// Collection metadata by id.
    pub fn collection_meta_by_id(&self, id: u64) -> Option<CollectionMeta> {
        self.catalog().collections.get(&id).cloned()
    }

    pub fn aliases_of(&self, id: u64) -> Vec<String> {
        self.catalog().aliases_of(id)
    }

    pub fn list_collections(&self, db: &str) -> Result<Vec<CollectionMeta>> {
        let c = self.catalog();
        c.database(db)?;
        Ok(c.collections
            .values()
            .filter(|m| m.db == db)
            .cloned()
            .collect())
    }

    pub fn rename_collection(&self, db: &str, old: &str, new_db: &str, new: &str) -> Result<()> {
        quiver_core::schema::validate_name(new, "collection")?;
        self.change_catalog(|c, ts| {
            let id = c.by_name(db, old)?.id;
            let target = c.database(new_db)?;
            if c.collections
                .values()
                .any(|m| m.db == new_db && m.name == new)
                || target.aliases.contains_key(new)
            {
                return Err(Error::AlreadyExists {
                    kind: "collection",
                    name: new.into(),
                });
            }
            if new_db != db
                && c.databases
                    .get(db)
                    .is_some_and(|d| d.aliases.values().any(|&v| v == id))
            {
                return Err(Error::FailedPrecondition(
                    "drop the collection's aliases before moving it to another database".into(),
                ));
            }
            let m = c
                .collections
                .get_mut(&id)
                .ok_or_else(|| Error::CollectionNotFound(old.into()))?;
            m.name = new.into();
            m.schema.name = new.into();
            m.db = new_db.into();
            m.updated_ts = ts;
            Ok(())
        })
    }

    pub fn alter_collection_properties(
        &self,
        db: &str,
        name: &str,
        set: BTreeMap<String, String>,
        delete: &[String],
    ) -> Result<()> {
        self.change_catalog(|c, ts| {
            let id = c.resolve(db, name)?.id;
            let m = c
                .collections
                .get_mut(&id)
                .ok_or_else(|| Error::CollectionNotFound(name.into()))?;
            m.properties.extend(set);
            for k in delete {
                m.properties.remove(k);
            }
            m.updated_ts = ts;
            Ok(())
        })
    }

    /// Set the reported load state (searches never need it).
    pub fn set_loaded(&self, db: &str, name: &str, loaded: bool) -> Result<()> {
        self.change_catalog(|c, _| {
            let id = c.resolve(db, name)?.id;
            if let Some(m) = c.collections.get_mut(&id) {
                m.loaded = loaded;
            }
            Ok(())
        })
    }

    /// The open collection behind a name or alias, with its metadata.
    pub fn collection(&self, db: &str, name: &str) -> Result<(CollectionMeta, Arc<Collection>)> {
        let meta = self.catalog().resolve(db, name)?.clone();
        if let Some(reason) = self.broken.read().get(&meta.id) {
            return Err(Error::Unavailable(format!(
                "collection {name} could not be opened: {reason}"
            )));
        }
        let coll = self
            .collections
            .read()
            .get(&meta.id)
            .cloned()
            .ok_or_else(|| Error::CollectionNotFound(name.into()))?;
        Ok((meta, coll))
    }

    /// Remove every row, keeping schema, partitions and indexes.
    pub fn truncate_collection(&self, db: &str, name: &str) -> Result<()> {
        let (_, coll) = self.collection(db, name)?;
        coll.commit(Op::Truncate { ts: self.tso.now() })?;
        coll.flush()
    }

    // ---------------------------------------------------------------- partitions

    pub fn create_partition(&self, db: &str, coll: &str, partition: &str) -> Result<()> {
        quiver_core::schema::validate_name(partition, "partition")?;
        self.change_catalog(|c, ts| {
            let id = c.by_name(db, coll).or_else(|_| c.resolve(db, coll))?.id;
            let pid = c.alloc_id();
            let m = c
                .collections
                .get_mut(&id)
                .ok_or_else(|| Error::CollectionNotFound(coll.into()))?;
            if m.partition(partition).is_some() {
                return Err(Error::AlreadyExists {
                    kind: "partition",
                    name: partition.into(),
                });
            }
            if m.partitions.len() >= 1024 {
                return Err(Error::FailedPrecondition(
                    "a collection can have at most 1024 partitions".into(),
                ));
            }
            m.partitions.push(PartitionMeta {
                id: pid,
                name: partition.into(),
                created_ts: ts,
            });
            Ok(())
        })
    }

    pub fn drop_partition(&self, db: &str, coll: &str, partition: &str) -> Result<()> {
        if partition == DEFAULT_PARTITION {
            return Err(Error::FailedPrecondition(
                "default partition cannot be deleted".into(),
            ));
        }
        let (meta, c) = self.collection(db, coll)?;
        let pid = meta
            .partition(partition)
            .ok_or_else(|| Error::PartitionNotFound(partition.into()))?
            .id;
        // Rows first (durably), then the name.
        c.commit(Op::DropPartition {
            ts: self.tso.now(),
            partition: pid,
        })?;
        self.change_catalog(|cat, _| {
            if let Some(m) = cat.collections.get_mut(&meta.id) {
                m.partitions.retain(|p| p.id != pid);
            }
            Ok(())
        })
    }

    pub fn has_partition(&self, db: &str, coll: &str, partition: &str) -> Result<bool> {
        Ok(self
            .catalog()
            .resolve(db, coll)?
            .partition(partition)
            .is_some())
    }

    pub fn list_partitions(&self, db: &str, coll: &str) -> Result<Vec<PartitionMeta>> {
        Ok(self.catalog().resolve(db, coll)?.partitions.clone())
    }

    // ---------------------------------------------------------------- aliases

    pub fn create_alias(&self, db: &str, alias: &str, coll: &str) -> Result<()> {
        quiver_core::schema::validate_name(alias, "alias")?;
        self.change_catalog(|c, _| {
            let id = c.by_name(db, coll)?.id;
            if c.collections
                .values()
                .any(|m| m.db == db && m.name == alias)
            {
                return Err(Error::FailedPrecondition(format!(
                    "alias {alias} collides with a collection name"
                )));
            }
            let d = c
                .databases
                .get_mut(db)
                .ok_or_else(|| Error::DatabaseNotFound(db.into()))?;
            if let Some(&other) = d.aliases.get(alias) {
                if other != id {
                    return Err(Error::AlreadyExists {
                        kind: "alias",
                        name: alias.into(),
                    });
                }
            }
            d.aliases.insert(alias.into(), id);
            Ok(())
        })
    }

    pub fn drop_alias(&self, db: &str, alias: &str) -> Result<()> {
        self.change_catalog(|c, _| {
            let d = c
                .databases
                .get_mut(db)
                .ok_or_else(|| Error::DatabaseNotFound(db.into()))?;
            d.aliases
                .remove(alias)
                .map(|_| ())
                .ok_or_else(|| Error::AliasNotFound(alias.into()))
        })
    }

    /// Point an existing alias at another collection; takes effect for the next request.
    pub fn alter_alias(&self, db: &str, alias: &str, coll: &str) -> Result<()> {
        self.change_catalog(|c, _| {
            let id = c.by_name(db, coll)?.id;
            let d = c
                .databases
                .get_mut(db)
                .ok_or_else(|| Error::DatabaseNotFound(db.into()))?;
            let slot = d
                .aliases
                .get_mut(alias)
                .ok_or_else(|| Error::AliasNotFound(alias.into()))?;
            *slot = id;
            Ok(())
        })
    }

    /// The collection an alias points to.
    pub fn describe_alias(&self, db: &str, alias: &str) -> Result<String> {
        let c = self.catalog();
        let id = *c
            .database(db)?
            .aliases
            .get(alias)
            .ok_or_else(|| Error::AliasNotFound(alias.into()))?;
        Ok(c.collections
            .get(&id)
            .map(|m| m.name.clone())
            .unwrap_or_default())
    }

    /// Aliases of a database, optionally only those of one collection.
    pub fn list_aliases(&self, db: &str, coll: Option<&str>) -> Result<Vec<String>> {
        let c = self.catalog();
        let d = c.database(db)?;
        let only = match coll {
            Some(name) if !name.is_empty() => Some(c.by_name(db, name)?.id),
            _ => None,
        };
        Ok(d.aliases
            .iter()
            .filter(|(_, &id)| only.is_none_or(|o| o == id))
            .map(|(a, _)| a.clone())
            .collect())
    }

    // ---------------------------------------------------------------- indexes (definitions)

    /// Record an index definition for a field. Search is exact until index builds exist; the
    /// metric given here is the one searches must use.
    pub fn create_index(
        &self,
        db: &str,
        coll: &str,
        field: &str,
        index_name: &str,
        params: BTreeMap<String, String>,
    ) -> Result<()> {
        self.change_catalog(|c, ts| {
            let id = c.resolve(db, coll)?.id;
            let iid = c.alloc_id();
            let m = c.collections.get_mut(&id).ok_or_else(|| Error::CollectionNotFound(coll.into()))?;
            let f = m.schema.field(field).ok_or_else(|| Error::FieldNotFound(field.into()))?;
            if f.data_type.is_vector() {
                if let Some(metric) = params.get("metric_type") {
                    if quiver_simd::Metric::parse(metric).is_none() {
                        return Err(Error::InvalidArgument(format!("metric type {metric} is not supported for float vectors (use L2, IP or COSINE)")));
                    }
                }
            }
            let name = if index_name.is_empty() { field.to_string() } else { index_name.to_string() };
            if let Some(existing) = m.indexes.iter().find(|i| i.field == field || i.name == name) {
                if existing.params == params && existing.name == name {
                    return Ok(()); // idempotent, as in Milvus
                }
                return Err(Error::FailedPrecondition(format!(
                    "at most one distinct index is allowed per field: field {field} already has index {}",
                    existing.name
                )));
            }
            m.indexes.push(IndexMeta { id: iid, name, field: field.into(), params, created_ts: ts });
            Ok(())
        })
    }

    pub fn list_indexes(&self, db: &str, coll: &str) -> Result<Vec<IndexMeta>> {
        Ok(self.catalog().resolve(db, coll)?.indexes.clone())
    }

    pub fn drop_index(&self, db: &str, coll: &str, field: &str, index_name: &str) -> Result<()> {
        self.change_catalog(|c, _| {
            let id = c.resolve(db, coll)?.id;
            let m = c
                .collections
                .get_mut(&id)
                .ok_or_else(|| Error::CollectionNotFound(coll.into()))?;
            let before = m.indexes.len();
            m.indexes.retain(|i| {
                !((index_name.is_empty() || i.name == index_name)
                    && (field.is_empty() || i.field == field))
            });
            if m.indexes.len() == before {
                return Err(Error::IndexNotFound {
                    collection: coll.into(),
                    index: index_name.into(),
                });
            }
            Ok(())
        })
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
        let columns = write::normalize(&c.schema, batch, upsert, |n| self.tso.alloc(n))?;
        let pks = Pk::all(&columns[c.schema.pk_index()])?;
        let ts = self.tso.now();
        c.commit(Op::Insert {
            ts,
            partition: pid,
            columns,
        })?;
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
        let plan = filter::compile(&c.schema, filter, params)?;
        let pks: Vec<Pk> = {
            let st = c.state.read();
            matching_rows(&c.schema, &st, &plan, scope.map(|p| vec![p]).as_deref())?
                .into_iter()
                .map(|(pk, _, _)| pk)
                .collect()
        };
        let ts = self.tso.now();
        if !pks.is_empty() {
            c.commit(Op::Delete {
                ts,
                partition: scope.unwrap_or(ALL_PARTITIONS),
                pks: pks.clone(),
            })?;
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
            std::thread::spawn(move || {
                if let Err(e) = c.flush() {
                    tracing::warn!(
                        collection = c.id,
                        "background flush failed (will retry): {e}"
                    );
                }
                c.release_background_flush();
            });
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

    // ---------------------------------------------------------------- reads

    /// Rows matching a filter, ordered by primary key.
    pub fn query(&self, db: &str, coll: &str, req: &QueryRequest) -> Result<QueryResult> {
        let (meta, c) = self.collection(db, coll)?;
        let schema = &c.schema;
        let want_count = req
            .output_fields
            .iter()
            .any(|f| f.trim().eq_ignore_ascii_case("count(*)"));
        if want_count && req.output_fields.len() > 1 {
            return Err(Error::InvalidArgument(
                "count(*) cannot be combined with other output fields".into(),
            ));
        }
        if !want_count && req.filter.trim().is_empty() && req.limit.is_none() {
            return Err(Error::InvalidArgument(
                "empty expression should be used with limit".into(),
            ));
        }
        if let Some(limit) = req.limit {
            if limit.saturating_add(req.offset) > MAX_TOPK {
                return Err(Error::InvalidArgument(format!(
                    "invalid max query result window, (offset+limit) should be in range [1, {MAX_TOPK}], but got {}",
                    limit.saturating_add(req.offset)
                )));
            }
        }
        let parts = self.partition_scope(&meta, &req.partitions)?;
        let plan = filter::compile(schema, &req.filter, &req.filter_params)?;
        let spec = if want_count {
            None
        } else {
            Some(OutputSpec::resolve(schema, &req.output_fields, true)?)
        };
        let st = c.state.read();
        let rows = matching_rows(schema, &st, &plan, parts.as_deref())?;
        if want_count {
            return Ok(QueryResult {
                fields: vec![],
                output_names: vec!["count(*)".into()],
                count: Some(rows.len() as u64),
            });
        }
        let spec = spec.unwrap_or_else(|| OutputSpec {
            fields: vec![],
            dynamic: None,
            names: vec![],
        });
        let hits: Vec<(u64, u32)> = rows
            .into_iter()
            .skip(req.offset)
            .take(req.limit.unwrap_or(usize::MAX))
            .map(|(_, seg, row)| (seg, row))
            .collect();
        Ok(QueryResult {
            fields: spec.gather(schema, &st, &hits),
            output_names: spec.names.clone(),
            count: None,
        })
    }

    /// Rows by primary key (missing keys are skipped), ordered by key.
    pub fn get(
        &self,
        db: &str,
        coll: &str,
        pks: &[Pk],
        output_fields: &[String],
        partitions: &[String],
    ) -> Result<QueryResult> {
        let (meta, c) = self.collection(db, coll)?;
        let parts = self.partition_scope(&meta, partitions)?;
        let spec = OutputSpec::resolve(&c.schema, output_fields, true)?;
        let st = c.state.read();
        let mut keys: Vec<&Pk> = pks.iter().collect();
        keys.sort();
        keys.dedup();
        let hits: Vec<(u64, u32)> = keys
            .into_iter()
            .filter_map(|pk| st.pk_index.get(pk))
            .filter(|loc| {
                parts.as_ref().is_none_or(|p| {
                    st.segments
                        .get(&loc.seg)
                        .is_some_and(|s| p.contains(&s.partition))
                })
            })
            .map(|loc| (loc.seg, loc.row))
            .collect();
        Ok(QueryResult {
            fields: spec.gather(&c.schema, &st, &hits),
            output_names: spec.names.clone(),
            count: None,
        })
    }

    fn partition_scope(&self, meta: &CollectionMeta, names: &[String]) -> Result<Option<Vec<u64>>> {
        if names.is_empty() {
            return Ok(None);
        }
        names
            .iter()
            .map(|n| {
                meta.partition(n)
                    .map(|p| p.id)
                    .ok_or_else(|| Error::PartitionNotFound(n.clone()))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// Exact top-k search.
    pub fn search(&self, db: &str, coll: &str, req: &SearchRequest) -> Result<SearchResult> {
        let (meta, c) = self.collection(db, coll)?;
        let schema = &c.schema;
        let field = match &req.anns_field {
            Some(f) if !f.is_empty() => schema
                .field_index(f)
                .ok_or_else(|| Error::FieldNotFound(f.clone()))?,
            _ => {
                let v: Vec<usize> = schema.vector_fields().collect();
                if v.len() != 1 {
                    return Err(Error::InvalidArgument(
                        "multiple anns_fields exist, please specify a anns_field in search_params"
                            .into(),
                    ));
                }
                v[0]
            }
        };
        let fs = &schema.fields[field];
        if !fs.data_type.is_vector() {
            return Err(Error::InvalidArgument(format!(
                "field {} is not a vector field",
                fs.name
            )));
        }
        if req.vectors.is_empty() {
            return Err(Error::InvalidArgument("no query vectors".into()));
        }
        let dim = fs.dim();
        for v in &req.vectors {
            if v.len() != dim {
                return Err(Error::DimMismatch {
                    field: fs.name.clone(),
                    expected: dim,
                    got: v.len(),
                });
            }
            quiver_core::value::check_finite(&fs.name, v)?;
        }
        let index_metric = meta
            .index_on(&fs.name)
            .and_then(|i| i.metric())
            .map(str::to_string);
        let metric_name = match (&req.metric, &index_metric) {
            (Some(m), Some(im)) if !m.is_empty() && !m.eq_ignore_ascii_case(im) => {
                return Err(Error::InvalidArgument(format!(
                    "metric type not match: invalid parameter[expected={im}][actual={m}]"
                )));
            }
            (Some(m), _) if !m.is_empty() => m.clone(),
            (_, Some(im)) => im.clone(),
            _ => "COSINE".to_string(),
        };
        let metric = quiver_simd::Metric::parse(&metric_name).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "metric type {metric_name} is not supported for float vectors"
            ))
        })?;
        search::check_limits(req.limit, req.offset)?;
        let num = |k: &str| {
            req.params.get(k).and_then(|v| {
                v.as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
        };
        let radius = req.radius.or_else(|| num("radius"));
        let range_filter = req.range_filter.or_else(|| num("range_filter"));
        let range = match (radius, range_filter) {
            (None, None) => None,
            (Some(r), rf) => {
                let rf = rf.unwrap_or(if metric.higher_is_better() {
                    f64::INFINITY
                } else {
                    f64::NEG_INFINITY
                });
                let ok = if metric.higher_is_better() {
                    r < rf
                } else {
                    r > rf
                };
                if !ok {
                    return Err(Error::InvalidArgument(format!(
                        "range_filter {rf} and radius {r} are inconsistent for metric {metric_name} (need {})",
                        if metric.higher_is_better() { "radius < range_filter" } else { "range_filter < radius" }
                    )));
                }
                Some((r as f32, rf as f32))
            }
            (None, Some(_)) => {
                return Err(Error::InvalidArgument("range_filter needs radius".into()))
            }
        };
        let group_by = match &req.group_by {
            Some(g) if !g.is_empty() => {
                let gi = schema
                    .field_index(g)
                    .ok_or_else(|| Error::FieldNotFound(g.clone()))?;
                let t = schema.fields[gi].data_type;
                if t.is_vector()
                    || matches!(
                        t,
                        quiver_core::DataType::Json
                            | quiver_core::DataType::Array
                            | quiver_core::DataType::Float
                            | quiver_core::DataType::Double
                    )
                {
                    return Err(Error::InvalidArgument(format!(
                        "group by is not supported on field {g} of type {}",
                        t.name()
                    )));
                }
                Some(gi)
            }
            _ => None,
        };
        let group_size = req.group_size.unwrap_or(1).max(1);
        let parts = self.partition_scope(&meta, &req.partitions)?;
        let filter = filter::compile(schema, &req.filter, &req.filter_params)?;
        let out = OutputSpec::resolve(schema, &req.output_fields, false)?;
        let plan = search::Plan {
            field,
            dim,
            metric,
            filter: &filter,
            partitions: parts,
            k: req.offset + req.limit,
            range,
            group_by,
            group_size,
        };
        let st = c.state.read();
        Ok(search::execute(
            schema,
            &st,
            &plan,
            &req.vectors,
            req.offset,
            &out,
        ))
    }

    /// The segments of a collection (in id order).
    pub fn segments(&self, db: &str, coll: &str) -> Result<Vec<SegmentInfo>> {
        let (_, c) = self.collection(db, coll)?;
        let st = c.state.read();
        Ok(st
            .segments
            .values()
            .map(|s| SegmentInfo {
                id: s.id,
                partition: s.partition,
                rows: s.rows() as u64,
                deleted: s.deleted.len(),
                sealed: s.sealed,
                persisted: s.persisted,
            })
            .collect())
    }

    /// Live rows of a collection (or of some partitions).
    pub fn row_count(&self, db: &str, coll: &str, partitions: &[String]) -> Result<u64> {
        let (meta, c) = self.collection(db, coll)?;
        let parts = self.partition_scope(&meta, partitions)?;
        let st = c.state.read();
        Ok(match parts {
            None => st.live_rows() as u64,
            Some(p) => st
                .segments
                .values()
                .filter(|s| p.contains(&s.partition))
                .map(|s| s.live_rows() as u64)
                .sum(),
        })
    }
}

/// Every live row passing `filter` (and in `partitions`), as (key, segment, row), by key.
fn matching_rows(
    schema: &CollectionSchema,
    st: &State,
    plan: &quiver_expr::Filter,
    partitions: Option<&[u64]>,
) -> Result<Vec<(Pk, u64, u32)>> {
    let pk_col = schema.pk_index();
    let in_scope = |seg: u64| {
        partitions.is_none_or(|p| {
            st.segments
                .get(&seg)
                .is_some_and(|s| p.contains(&s.partition))
        })
    };
    let mut rows: Vec<(Pk, u64, u32)> = if let Some(keys) = plan.pk_lookup(pk_col) {
        let varchar = schema.fields[pk_col].data_type == quiver_core::DataType::VarChar;
        let mut out = Vec::new();
        for k in keys {
            let pk = match (k, varchar) {
                (quiver_expr::PkLiteral::Int(i), false) => Pk::Int(i),
                (quiver_expr::PkLiteral::Str(s), true) => Pk::Str(s),
                _ => continue,
            };
            if let Some(loc) = st.pk_index.get(&pk) {
                if in_scope(loc.seg) {
                    out.push((pk, loc.seg, loc.row));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.dedup_by(|a, b| a.0 == b.0);
        out
    } else {
        let all = plan.is_always_true();
        let segs: Vec<_> = st.segments.values().filter(|s| in_scope(s.id)).collect();
        segs.par_iter()
            .flat_map_iter(|s| {
                (0..s.rows()).filter_map(move |r| {
                    if s.is_live(r)
                        && (all
                            || plan.eval(&filter::SegRow {
                                data: &s.data,
                                row: r,
                            }))
                    {
                        Some((Pk::at(&s.data.columns[pk_col], r), s.id, r as u32))
                    } else {
                        None
                    }
                })
            })
            .collect()
    };
    rows.par_sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(rows)
}
