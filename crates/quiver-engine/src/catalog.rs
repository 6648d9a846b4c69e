//! The catalog: databases, collections, partitions, aliases and index definitions.
//!
//! Stored as one file, `catalog.qvc`, replaced atomically on every DDL change (DDL is rare and
//! the catalog small): checksummed envelope (magic `QVCAT\0\0\x01`, version 1) around a JSON body
//! that is this module's [`Catalog`] serialized. Row data never goes here; each collection's rows
//! live under `collections/<id>/` (WAL, segments, manifests).
//!
//! Invariants: database `default` always exists; every collection has partition `_default`;
//! ids (collections, partitions) are never reused; an alias names exactly one collection of its
//! database and never shadows a collection name.

use std::collections::BTreeMap;
use std::path::Path;

use quiver_core::storage::{open_envelope, seal_envelope};
use quiver_core::{CollectionSchema, Error, Result};
use serde::{Deserialize, Serialize};

pub const CATALOG_KEY: &str = "catalog.qvc";
pub const CATALOG_MAGIC: &[u8; 8] = b"QVCAT\0\0\x01";
pub const CATALOG_VERSION: u32 = 1;
pub const DEFAULT_DB: &str = "default";
pub const DEFAULT_PARTITION: &str = "_default";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Catalog {
    /// Bumped on every change.
    pub version: u64,
    pub next_id: u64,
    pub databases: BTreeMap<String, DatabaseMeta>,
    pub collections: BTreeMap<u64, CollectionMeta>,
    /// Users and their password hashes (the server hashes; PHC strings such as argon2id).
    #[serde(default)]
    pub users: BTreeMap<String, UserMeta>,
    /// Shared mode: the writer epoch that committed this version (0 in embedded mode).
    #[serde(default)]
    pub epoch: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserMeta {
    pub name: String,
    /// A PHC-format password hash; never the password.
    pub password_hash: String,
    pub created_ts: u64,
    pub updated_ts: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatabaseMeta {
    pub id: u64,
    pub name: String,
    pub created_ts: u64,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// alias -> collection id
    #[serde(default)]
    pub aliases: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartitionMeta {
    pub id: u64,
    pub name: String,
    pub created_ts: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexMeta {
    pub id: u64,
    pub name: String,
    pub field: String,
    /// `index_type`, `metric_type` and the build parameters, as given (strings).
    pub params: BTreeMap<String, String>,
    pub created_ts: u64,
}

impl IndexMeta {
    pub fn metric(&self) -> Option<&str> {
        self.params.get("metric_type").map(|s| s.as_str())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CollectionMeta {
    pub id: u64,
    pub db: String,
    pub name: String,
    pub schema: CollectionSchema,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    pub shards_num: i32,
    /// Milvus ConsistencyLevel number (Strong=0, Session=1, Bounded=2, Eventually=3).
    pub consistency_level: i32,
    pub partitions: Vec<PartitionMeta>,
    #[serde(default)]
    pub indexes: Vec<IndexMeta>,
    pub created_ts: u64,
    pub updated_ts: u64,
    /// Only reported (GetLoadState): searches never require an explicit load.
    #[serde(default = "yes")]
    pub loaded: bool,
}

fn yes() -> bool {
    true
}

impl CollectionMeta {
    pub fn partition(&self, name: &str) -> Option<&PartitionMeta> {
        self.partitions.iter().find(|p| p.name == name)
    }

    pub fn default_partition(&self) -> u64 {
        self.partition(DEFAULT_PARTITION).map_or(0, |p| p.id)
    }

    /// The index on `field`, if one was created.
    pub fn index_on(&self, field: &str) -> Option<&IndexMeta> {
        self.indexes.iter().find(|i| i.field == field)
    }
}

impl Catalog {
    pub fn new(now: u64) -> Catalog {
        let mut databases = BTreeMap::new();
        databases.insert(
            DEFAULT_DB.to_string(),
            DatabaseMeta {
                id: 1,
                name: DEFAULT_DB.into(),
                created_ts: now,
                properties: BTreeMap::new(),
                aliases: BTreeMap::new(),
            },
        );
        Catalog {
            version: 0,
            next_id: 2,
            databases,
            collections: BTreeMap::new(),
            users: BTreeMap::new(),
            epoch: 0,
        }
    }

    pub fn alloc_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub fn encode(&self) -> Vec<u8> {
        let body = serde_json::to_vec_pretty(self).unwrap_or_default();
        seal_envelope(CATALOG_MAGIC, CATALOG_VERSION, &body)
    }

    pub fn decode(path: &Path, bytes: &[u8]) -> Result<Catalog> {
        let (_, body) = open_envelope(CATALOG_MAGIC, CATALOG_VERSION, path, bytes)?;
        serde_json::from_slice(body)
            .map_err(|e| Error::corrupt(path, 24, format!("bad catalog JSON: {e}")))
    }

    pub fn database(&self, db: &str) -> Result<&DatabaseMeta> {
        self.databases
            .get(db)
            .ok_or_else(|| Error::DatabaseNotFound(db.to_string()))
    }

    /// Resolve a collection name or alias in `db`.
    pub fn resolve(&self, db: &str, name: &str) -> Result<&CollectionMeta> {
        let dbm = self.database(db)?;
        if let Some(c) = self
            .collections
            .values()
            .find(|c| c.db == db && c.name == name)
        {
            return Ok(c);
        }
        if let Some(id) = dbm.aliases.get(name) {
            if let Some(c) = self.collections.get(id) {
                return Ok(c);
            }
        }
        Err(Error::CollectionNotFound(name.to_string()))
    }

    /// Resolve by name only (no aliases): for DDL that must name the real collection.
    pub fn by_name(&self, db: &str, name: &str) -> Result<&CollectionMeta> {
        self.database(db)?;
        self.collections
            .values()
            .find(|c| c.db == db && c.name == name)
            .ok_or_else(|| Error::CollectionNotFound(name.to_string()))
    }

    pub fn aliases_of(&self, cid: u64) -> Vec<String> {
        let Some(c) = self.collections.get(&cid) else {
            return vec![];
        };
        self.databases
            .get(&c.db)
            .map(|d| {
                d.aliases
                    .iter()
                    .filter(|(_, &v)| v == cid)
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}
