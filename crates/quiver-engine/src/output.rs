//! Output fields: which columns a query or search returns, and gathering them for hit rows.
//!
//! Rules (Milvus's): an empty list returns only the primary key (query) or nothing besides ids
//! and scores (search); `*` means every schema field plus the dynamic `$meta`; a name that is not
//! a field is a dynamic key (returned inside `$meta`, reduced to the requested keys) when the
//! collection has dynamic fields, and an error otherwise.

use quiver_core::{CollectionSchema, Column, ColumnData, Error, FieldSchema, Result};
use serde_json::Value as Json;

use crate::collection::State;

/// One returned column.
#[derive(Debug, Clone, PartialEq)]
pub struct OutColumn {
    /// Field name (`$meta` for the dynamic column).
    pub name: String,
    /// The schema field, `None` for `$meta`.
    pub field: Option<FieldSchema>,
    pub column: Column,
}

impl OutColumn {
    pub fn is_dynamic(&self) -> bool {
        self.field.is_none()
    }
}

/// What to gather.
#[derive(Debug, Clone)]
pub struct OutputSpec {
    /// Schema field indexes.
    pub fields: Vec<usize>,
    /// `Some(None)`: the whole `$meta`; `Some(Some(keys))`: only these keys of it.
    pub dynamic: Option<Option<Vec<String>>>,
    /// The names as requested (echoed back as `output_fields`).
    pub names: Vec<String>,
}

impl OutputSpec {
    /// Resolve requested names. `with_pk` adds the primary key (query always returns it).
    pub fn resolve(
        schema: &CollectionSchema,
        requested: &[String],
        with_pk: bool,
    ) -> Result<OutputSpec> {
        let mut fields: Vec<usize> = Vec::new();
        let mut dynamic: Option<Option<Vec<String>>> = None;
        let mut names = Vec::new();
        let add = |i: usize, fields: &mut Vec<usize>| {
            if !fields.contains(&i) {
                fields.push(i);
            }
        };
        if with_pk {
            add(schema.pk_index(), &mut fields);
        }
        for raw in requested {
            let name = raw.trim();
            if name.is_empty() {
                continue;
            }
            names.push(name.to_string());
            if name == "*" {
                for i in 0..schema.fields.len() {
                    add(i, &mut fields);
                }
                if schema.enable_dynamic_field {
                    dynamic = Some(None);
                }
            } else if let Some(i) = schema.field_index(name) {
                add(i, &mut fields);
            } else if name == "$meta" && schema.enable_dynamic_field {
                dynamic = Some(None);
            } else if schema.enable_dynamic_field {
                match &mut dynamic {
                    Some(None) => {}
                    Some(Some(keys)) => keys.push(name.to_string()),
                    None => dynamic = Some(Some(vec![name.to_string()])),
                }
            } else {
                return Err(Error::FieldNotFound(name.to_string()));
            }
        }
        // Keep schema order, as Milvus does.
        fields.sort_unstable();
        Ok(OutputSpec {
            fields,
            dynamic,
            names,
        })
    }

    /// Gather the columns for `(segment id, row)` hits, in hit order.
    pub fn gather(
        &self,
        schema: &CollectionSchema,
        st: &State,
        hits: &[(u64, u32)],
    ) -> Vec<OutColumn> {
        let mut out: Vec<OutColumn> = self
            .fields
            .iter()
            .map(|&i| OutColumn {
                name: schema.fields[i].name.clone(),
                field: Some(schema.fields[i].clone()),
                column: Column::empty_for(&schema.fields[i]),
            })
            .collect();
        let dyn_idx = schema.fields.len();
        let mut dyn_vals: Vec<Json> = Vec::new();
        for &(seg, row) in hits {
            let Some(s) = st.segments.get(&seg) else {
                continue;
            };
            let row = row as usize;
            for (o, &i) in out.iter_mut().zip(&self.fields) {
                o.column.push_from(&s.data.columns[i], row);
            }
            if let Some(keys) = &self.dynamic {
                let v = match s.data.columns.get(dyn_idx).map(|c| &c.data) {
                    Some(ColumnData::Json(v)) => v[row].clone(),
                    _ => Json::Object(Default::default()),
                };
                dyn_vals.push(match (keys, v) {
                    (Some(keys), Json::Object(m)) => {
                        Json::Object(m.into_iter().filter(|(k, _)| keys.contains(k)).collect())
                    }
                    (_, v) => v,
                });
            }
        }
        if self.dynamic.is_some() {
            out.push(OutColumn {
                name: "$meta".into(),
                field: None,
                column: Column::new(ColumnData::Json(dyn_vals)),
            });
        }
        out
    }
}
