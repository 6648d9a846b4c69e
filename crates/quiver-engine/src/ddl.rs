//! DDL: databases, collections, partitions, aliases and index definitions. Every change goes
//! through `Engine::change_catalog` (copy, modify, persist atomically, swap), serialized by the
//! DDL lock, so the catalog on disk is always one consistent version.

use std::collections::BTreeMap;
use std::sync::Arc;

use quiver_core::{Error, Result};

use crate::catalog::UserMeta;
use crate::catalog::{
    CollectionMeta, DatabaseMeta, IndexMeta, PartitionMeta, DEFAULT_DB, DEFAULT_PARTITION,
};
use crate::collection::Collection;
use crate::record::Op;
use crate::{CreateCollection, Engine};

impl Engine {
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
        crate::text::check_schema(&schema)?;
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
        // The collection is gone from the catalog; files left by a failed delete are removed at
        // the next start (orphan cleanup), so this is not the caller's error.
        if let Err(e) = self.storage.delete_prefix(&format!("collections/{id}")) {
            tracing::warn!(
                collection = id,
                "could not delete the files of a dropped collection: {e}"
            );
        }
        Ok(())
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
        coll.commit(Op::Truncate { ts: self.tso.now() }, &coll.schema())?;
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
        c.commit(
            Op::DropPartition {
                ts: self.tso.now(),
                partition: pid,
            },
            &c.schema(),
        )?;
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

    /// Record an index definition for a field; the background builder then builds it on every
    /// sealed segment large enough (see index.rs). The
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
            m.schema.field(field).ok_or_else(|| Error::FieldNotFound(field.into()))?;
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
            let meta = IndexMeta { id: iid, name, field: field.into(), params, created_ts: ts };
            // Reject what cannot be built (type, ranges, `m` vs dim) before it is recorded.
            crate::index::IndexDef::from_meta(&m.schema, &meta)?;
            m.indexes.push(meta);
            Ok(())
        })?;
        self.refresh_index_defs(db, coll)
    }

    /// Hand the catalog's index definitions to the open collection (wakes the builder).
    fn refresh_index_defs(&self, db: &str, coll: &str) -> Result<()> {
        let (meta, c) = self.collection(db, coll)?;
        c.set_index_defs(crate::index_defs(&meta));
        Ok(())
    }

    /// Build progress of the index named `index_name` (or the one on `field`; either may be empty
    /// when the collection has one index).
    pub fn index_progress(
        &self,
        db: &str,
        coll: &str,
        field: &str,
        index_name: &str,
    ) -> Result<(IndexMeta, crate::IndexProgress)> {
        let (meta, c) = self.collection(db, coll)?;
        let found: Vec<&IndexMeta> = meta
            .indexes
            .iter()
            .filter(|i| index_name.is_empty() || i.name == index_name)
            .filter(|i| field.is_empty() || i.field == field)
            .collect();
        match found.as_slice() {
            [one] => Ok(((*one).clone(), c.index_progress(one.id))),
            [] => Err(Error::IndexNotFound {
                collection: coll.into(),
                index: index_name.into(),
            }),
            _ => Err(Error::InvalidArgument(format!(
                "collection {coll} has several indexes: give index_name"
            ))),
        }
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
        })?;
        self.refresh_index_defs(db, coll)?;
        // Detach now so the files go at once (the builder would also do it).
        self.collection(db, coll)?.1.detach_stale_indexes()
    }

    /// Start building a new version of `field`'s index (type and build parameters in
    /// `params`, as for [`Engine::create_index`]) beside the current one, which keeps serving.
    /// Its id is allocated in the catalog (so it never collides), but the version itself lives
    /// in memory until [`Engine::promote_staged_index`]; follow it with
    /// [`Engine::index_progress_of`] and search it with `SearchRequest::index_id`.
    pub fn stage_index(
        &self,
        db: &str,
        coll: &str,
        field: &str,
        params: BTreeMap<String, String>,
    ) -> Result<u64> {
        let (meta, c) = self.collection(db, coll)?;
        let fi = meta
            .schema
            .field_index(field)
            .ok_or_else(|| Error::FieldNotFound(field.into()))?;
        if !meta.schema.fields[fi].data_type.is_vector() {
            return Err(Error::InvalidArgument(format!(
                "field {field} is not a vector field"
            )));
        }
        let mut iid = 0;
        self.change_catalog(|c, _| {
            iid = c.alloc_id();
            Ok(())
        })?;
        let name = meta
            .indexes
            .iter()
            .find(|i| i.field == field)
            .map_or_else(|| field.to_string(), |i| i.name.clone());
        let staged = IndexMeta {
            id: iid,
            name,
            field: field.into(),
            params,
            created_ts: 0,
        };
        let def = crate::index::IndexDef::from_meta(&meta.schema, &staged)?.ok_or_else(|| {
            Error::InvalidArgument(format!("field {field} cannot have a staged index"))
        })?;
        c.stage_index_def(def);
        Ok(iid)
    }

    /// Make staged index version `index_id` the field's index: the catalog's definition is
    /// replaced (same index name, the staged id and parameters), so the segments' staged
    /// builds serve at once and the previous version's files are collected.
    /// `replaces`: the id of the index the version was staged to replace (`None`: the field
    /// had none); refused when the field's index changed meanwhile (dropped, recreated).
    pub fn promote_staged_index(
        &self,
        db: &str,
        coll: &str,
        index_id: u64,
        replaces: Option<u64>,
        params: BTreeMap<String, String>,
    ) -> Result<()> {
        let (meta, c) = self.collection(db, coll)?;
        let def = c
            .known_index_def(index_id)
            .ok_or_else(|| Error::FailedPrecondition(format!("no staged index {index_id}")))?;
        let cid = meta.id;
        self.change_catalog(|cat, ts| {
            let m = cat
                .collections
                .get_mut(&cid)
                .ok_or_else(|| Error::CollectionNotFound(coll.into()))?;
            let field = m
                .schema
                .fields
                .get(def.field)
                .map(|f| f.name.clone())
                .ok_or_else(|| Error::FailedPrecondition(format!("the field of index {index_id} is gone")))?;
            let now = m.indexes.iter().find(|i| i.field == field).map(|i| i.id);
            if now != replaces {
                return Err(Error::FailedPrecondition(format!(
                    "the index of field {field} changed while index {index_id} was built (now {now:?}, expected {replaces:?})"
                )));
            }
            m.indexes.retain(|i| i.field != field);
            m.indexes.push(IndexMeta {
                id: index_id,
                name: def.name.clone(),
                field,
                params: params.clone(),
                created_ts: ts,
            });
            Ok(())
        })?;
        self.refresh_index_defs(db, coll)?;
        c.detach_stale_indexes()
    }

    /// Drop a staged index version (its files are collected).
    pub fn discard_staged_index(&self, db: &str, coll: &str, index_id: u64) -> Result<()> {
        let (_, c) = self.collection(db, coll)?;
        c.discard_staged(index_id);
        c.detach_stale_indexes()
    }

    /// Build progress of a current or staged index by id.
    pub fn index_progress_of(
        &self,
        db: &str,
        coll: &str,
        index_id: u64,
    ) -> Result<crate::IndexProgress> {
        let (_, c) = self.collection(db, coll)?;
        if c.known_index_def(index_id).is_none() {
            return Err(Error::InvalidArgument(format!(
                "no index with id {index_id}"
            )));
        }
        Ok(c.index_progress(index_id))
    }

    // ---------------------------------------------------------------- users

    /// Add a user with an already-hashed password.
    pub fn create_user(&self, name: &str, password_hash: &str) -> Result<()> {
        quiver_core::schema::validate_name(name, "user")?;
        self.change_catalog(|c, ts| {
            if c.users.contains_key(name) {
                return Err(Error::AlreadyExists {
                    kind: "user",
                    name: name.into(),
                });
            }
            c.users.insert(
                name.into(),
                UserMeta {
                    name: name.into(),
                    password_hash: password_hash.into(),
                    created_ts: ts,
                    updated_ts: ts,
                },
            );
            Ok(())
        })
    }

    /// Replace a user's password hash.
    pub fn update_user(&self, name: &str, password_hash: &str) -> Result<()> {
        self.change_catalog(|c, ts| {
            let u = c
                .users
                .get_mut(name)
                .ok_or_else(|| Error::FailedPrecondition(format!("user {name} does not exist")))?;
            u.password_hash = password_hash.into();
            u.updated_ts = ts;
            Ok(())
        })
    }

    pub fn delete_user(&self, name: &str) -> Result<()> {
        self.change_catalog(|c, _| {
            c.users
                .remove(name)
                .map(|_| ())
                .ok_or_else(|| Error::FailedPrecondition(format!("user {name} does not exist")))
        })
    }

    pub fn list_users(&self) -> Vec<String> {
        self.catalog().users.keys().cloned().collect()
    }

    /// The stored password hash of a user.
    pub fn user_password_hash(&self, name: &str) -> Option<String> {
        self.catalog()
            .users
            .get(name)
            .map(|u| u.password_hash.clone())
    }
}
