//! Schema evolution and backfill: adding a nullable field to a collection that holds data, and
//! filling it in row by row (what a re-embedding migration does).
//!
//! Invariants:
//! - An added field is nullable and comes last among the fields (so existing field positions,
//!   and therefore existing column indexes, filters and index definitions, do not move). Rows
//!   written before it read back NULL; files and WAL records are never rewritten for it.
//! - The catalog is changed first (durable), then the open collection, under its write gate: a
//!   crash in between reopens with the new schema, which reads the old data as NULL.
//! - A fill only sets values that are NULL at the moment it is applied, so it never overwrites
//!   what a concurrent write stored, and replaying or repeating it changes nothing twice.
//! - Rows whose vector is NULL are never search candidates, and a segment holding NULL vectors
//!   in a field is searched exactly rather than indexed for it.

use std::sync::Arc;

use quiver_core::schema::FunctionSchema;
use quiver_core::{Cell, CollectionSchema, Column, Error, FieldSchema, Result};

use crate::catalog::CollectionMeta;
use crate::collection::Collection;
use crate::pk::Pk;
use crate::record::Op;
use crate::Engine;

impl Engine {
    /// Add `field` to a collection (Milvus AddCollectionField): it must be nullable, neither the
    /// primary key nor a partition or clustering key, and have a new name. Vector fields may be
    /// added (nullable vectors exist only this way). `function`, when given, is added to the
    /// schema in the same change (a migration's TextEmbedding into the new field). Returns the
    /// new metadata.
    pub fn add_field(
        &self,
        db: &str,
        coll: &str,
        mut field: FieldSchema,
        function: Option<FunctionSchema>,
    ) -> Result<CollectionMeta> {
        let (meta, c) = self.collection(db, coll)?;
        let bad = |m: String| Err(Error::InvalidSchema(format!("field {}: {m}", field.name)));
        if !field.nullable {
            return bad("an added field must be nullable (existing rows have no value)".into());
        }
        if field.is_primary_key || field.is_partition_key || field.is_clustering_key {
            return bad("an added field cannot be a primary, partition or clustering key".into());
        }
        if field.auto_id {
            return bad("an added field cannot be auto_id".into());
        }
        if meta.schema.field(&field.name).is_some() {
            return Err(Error::AlreadyExists {
                kind: "field",
                name: field.name.clone(),
            });
        }
        // The usual checks, except that a vector may be nullable here.
        let mut check = field.clone();
        if check.data_type.is_vector() {
            check.nullable = false;
        }
        check.validate()?;
        if let Some(f) = &function {
            if f.function_type == crate::text::BM25_FUNCTION {
                return Err(Error::Unsupported(
                    "a BM25 function cannot be added to an existing collection (declare it at creation)".into(),
                ));
            }
            if meta.schema.functions.iter().any(|o| o.name == f.name) {
                return Err(Error::AlreadyExists {
                    kind: "function",
                    name: f.name.clone(),
                });
            }
        }
        field.field_id = 0;
        self.change_schema(&meta, &c, true, |schema| {
            field.field_id = schema
                .fields
                .iter()
                .map(|f| f.field_id)
                .max()
                .unwrap_or(99)
                .max(99)
                + 1;
            schema.fields.push(field.clone());
            schema.functions.extend(function.clone());
        })
    }

    /// Remove the schema function called `name` (its output field stays, with its values).
    pub fn drop_function(&self, db: &str, coll: &str, name: &str) -> Result<CollectionMeta> {
        let (meta, c) = self.collection(db, coll)?;
        if !meta.schema.functions.iter().any(|f| f.name == name) {
            return Err(Error::InvalidArgument(format!(
                "collection {coll} has no function {name}"
            )));
        }
        self.change_schema(&meta, &c, false, |schema| {
            schema.functions.retain(|f| f.name != name)
        })
    }

    /// Change a collection's schema in the catalog (durable), then in the open collection, while
    /// its writes wait at the gate. `field_added`: the change appended one field.
    fn change_schema(
        &self,
        meta: &CollectionMeta,
        c: &Collection,
        field_added: bool,
        change: impl FnOnce(&mut CollectionSchema),
    ) -> Result<CollectionMeta> {
        let _gate = c.write_gate.write();
        let meta = self.change_catalog(|cat, _| {
            let m = cat
                .collections
                .get_mut(&meta.id)
                .ok_or_else(|| Error::CollectionNotFound(meta.name.clone()))?;
            change(&mut m.schema);
            Ok(m.clone())
        })?;
        let schema = Arc::new(meta.schema.clone());
        if field_added {
            c.add_field_locked(schema);
        } else {
            c.set_schema_locked(schema);
        }
        Ok(meta)
    }

    /// Set `field` of the rows `pks` to the rows of `values` where the field is NULL now (rows
    /// that are gone or already have a value are skipped). Durable like any write. Returns the
    /// number of rows set.
    pub fn fill_field(
        &self,
        db: &str,
        coll: &str,
        field: &str,
        pks: Vec<Pk>,
        values: Column,
    ) -> Result<u64> {
        let (_, c) = self.collection(db, coll)?;
        if pks.len() != values.len() {
            return Err(Error::InvalidArgument(format!(
                "fill of {} keys with {} values",
                pks.len(),
                values.len()
            )));
        }
        if pks.is_empty() {
            return Ok(0);
        }
        let gate = c.write_gate.read();
        let schema = c.schema();
        let f = schema
            .field(field)
            .ok_or_else(|| Error::FieldNotFound(field.into()))?;
        if !f.nullable {
            return Err(Error::InvalidArgument(format!(
                "field {field} is not nullable: only NULL values can be filled in"
            )));
        }
        // The values must be valid cells of the field (dims, ranges, finite vectors).
        let mut checked = Column::empty_for(f);
        for r in 0..values.len() {
            let cell = values.cell(r);
            if matches!(cell, Cell::Null) {
                return Err(Error::InvalidArgument(format!(
                    "fill of field {field} with a NULL value"
                )));
            }
            quiver_core::value::check_cell(f, &cell)?;
            checked.push_cell(cell);
        }
        let op = Op::Fill {
            ts: self.tso.now(),
            field_id: f.field_id,
            pks,
            column: checked,
        };
        let n = c.commit_fill(op, &schema)?;
        drop(gate);
        self.maybe_flush(&c);
        Ok(n)
    }

    /// Live rows whose `field` is NULL, in primary key order after `after`, at most `limit`,
    /// each with the value of `with` (e.g. the text to embed). Also returns how many such rows
    /// there are in all.
    pub fn rows_missing(
        &self,
        db: &str,
        coll: &str,
        field: &str,
        with: &str,
        after: Option<&Pk>,
        limit: usize,
    ) -> Result<(Vec<(Pk, Cell)>, u64)> {
        let (_, c) = self.collection(db, coll)?;
        let st = c.state.read();
        let fi = st
            .schema
            .field_index(field)
            .ok_or_else(|| Error::FieldNotFound(field.into()))?;
        let wi = st
            .schema
            .field_index(with)
            .ok_or_else(|| Error::FieldNotFound(with.into()))?;
        let mut missing: Vec<(&Pk, crate::collection::Loc)> = st
            .pk_index
            .iter()
            .filter(|(_, loc)| {
                st.segments
                    .get(&loc.seg)
                    .is_some_and(|s| s.data.columns[fi].is_null(loc.row as usize))
            })
            .map(|(pk, loc)| (pk, *loc))
            .collect();
        let total = missing.len() as u64;
        missing.retain(|(pk, _)| after.is_none_or(|a| *pk > a));
        // The `limit` smallest keys, sorted: linear selection, then a sort of those alone.
        if missing.len() > limit {
            if limit == 0 {
                missing.clear();
            } else {
                missing.select_nth_unstable_by(limit - 1, |a, b| a.0.cmp(b.0));
                missing.truncate(limit);
            }
        }
        missing.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let rows = missing
            .into_iter()
            .map(|(pk, loc)| {
                let seg = &st.segments[&loc.seg];
                (pk.clone(), seg.data.columns[wi].cell(loc.row as usize))
            })
            .collect();
        Ok((rows, total))
    }
}
