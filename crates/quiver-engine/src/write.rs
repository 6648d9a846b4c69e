//! Validation and normalisation of incoming rows.
//!
//! Whatever a client sends (columns from gRPC, rows from REST), the engine turns it into one
//! column per schema field in schema order (+ `$meta`), or refuses it with an error that names
//! the field and the reason. After this step a batch can no longer fail when applied.

use std::collections::HashSet;

use quiver_core::value::{
    check_array, check_cell, check_finite, check_varchar, check_vector_range,
};
use quiver_core::{
    Cell, CollectionSchema, Column, ColumnData, DataType, Error, FieldSchema, Result, VectorColumn,
};
use serde_json::Value as Json;

use crate::pk::Pk;

/// Rows to insert or upsert, as named columns. `$meta` names the dynamic-field JSON column.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    pub columns: Vec<(String, Column)>,
    pub num_rows: usize,
}

impl WriteBatch {
    /// Build a batch from JSON row objects (REST): keys not in the schema go to `$meta` when the
    /// collection has dynamic fields.
    pub fn from_rows(schema: &CollectionSchema, rows: &[Json]) -> Result<WriteBatch> {
        let mut cols: Vec<Option<Column>> = vec![None; schema.fields.len()];
        let present: Vec<bool> = schema
            .fields
            .iter()
            .map(|f| rows.iter().any(|r| r.get(&f.name).is_some()))
            .collect();
        let mut dynamic = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let Some(obj) = row.as_object() else {
                return Err(Error::InvalidArgument(format!(
                    "row {i} is not a JSON object"
                )));
            };
            for (fi, f) in schema.fields.iter().enumerate() {
                if !present[fi] {
                    continue;
                }
                let cell = match obj.get(&f.name) {
                    None => Cell::Null,
                    Some(v) => Cell::from_json(f, v)?,
                };
                cols[fi]
                    .get_or_insert_with(|| Column::empty_for(f))
                    .push_cell(cell);
            }
            let mut extra = serde_json::Map::new();
            for (k, v) in obj {
                if schema.field(k).is_none() {
                    if !schema.enable_dynamic_field {
                        return Err(Error::FieldNotFound(format!(
                            "{k} (the collection has no dynamic field, so unknown keys are refused)"
                        )));
                    }
                    extra.insert(k.clone(), v.clone());
                }
            }
            dynamic.push(Json::Object(extra));
        }
        let mut columns: Vec<(String, Column)> = schema
            .fields
            .iter()
            .zip(cols)
            .filter_map(|(f, c)| c.map(|c| (f.name.clone(), c)))
            .collect();
        if schema.enable_dynamic_field {
            columns.push(("$meta".into(), Column::new(ColumnData::Json(dynamic))));
        }
        Ok(WriteBatch {
            columns,
            num_rows: rows.len(),
        })
    }
}

fn ints(data: &ColumnData) -> Option<Vec<i64>> {
    Some(match data {
        ColumnData::Int8(v) => v.iter().map(|&x| x as i64).collect(),
        ColumnData::Int16(v) => v.iter().map(|&x| x as i64).collect(),
        ColumnData::Int32(v) => v.iter().map(|&x| x as i64).collect(),
        ColumnData::Int64(v) => v.clone(),
        _ => return None,
    })
}

fn floats(data: &ColumnData) -> Option<Vec<f64>> {
    Some(match data {
        ColumnData::Float(v) => v.iter().map(|&x| x as f64).collect(),
        ColumnData::Double(v) => v.clone(),
        _ => return None,
    })
}

/// Convert a provided column to the field's exact variant, checking ranges and limits.
fn coerce(field: &FieldSchema, col: Column) -> Result<Column> {
    let name = &field.name;
    let mismatch = |got: &ColumnData| {
        Error::field(
            name.clone(),
            format!(
                "expected {} data, got {}",
                field.data_type.name(),
                variant_name(got)
            ),
        )
    };
    let valid = col.valid;
    let data = match field.data_type {
        DataType::Bool => match col.data {
            d @ ColumnData::Bool(_) => d,
            d => return Err(mismatch(&d)),
        },
        t @ (DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64) => {
            let v = ints(&col.data).ok_or_else(|| mismatch(&col.data))?;
            let (lo, hi) = match t {
                DataType::Int8 => (i8::MIN as i64, i8::MAX as i64),
                DataType::Int16 => (i16::MIN as i64, i16::MAX as i64),
                DataType::Int32 => (i32::MIN as i64, i32::MAX as i64),
                _ => (i64::MIN, i64::MAX),
            };
            if let Some(bad) = v
                .iter()
                .enumerate()
                .find(|(i, x)| (**x < lo || **x > hi) && valid.as_ref().is_none_or(|vv| vv[*i]))
            {
                return Err(Error::field(
                    name.clone(),
                    format!("value {} is out of range for {}", bad.1, t.name()),
                ));
            }
            match t {
                DataType::Int8 => ColumnData::Int8(v.iter().map(|&x| x as i8).collect()),
                DataType::Int16 => ColumnData::Int16(v.iter().map(|&x| x as i16).collect()),
                DataType::Int32 => ColumnData::Int32(v.iter().map(|&x| x as i32).collect()),
                _ => ColumnData::Int64(v),
            }
        }
        DataType::Float => ColumnData::Float(
            floats(&col.data)
                .ok_or_else(|| mismatch(&col.data))?
                .iter()
                .map(|&x| x as f32)
                .collect(),
        ),
        DataType::Double => {
            ColumnData::Double(floats(&col.data).ok_or_else(|| mismatch(&col.data))?)
        }
        DataType::VarChar => match col.data {
            ColumnData::VarChar(v) => {
                for s in &v {
                    check_varchar(field, s)?;
                }
                ColumnData::VarChar(v)
            }
            d => return Err(mismatch(&d)),
        },
        DataType::Json => match col.data {
            d @ ColumnData::Json(_) => d,
            d => return Err(mismatch(&d)),
        },
        DataType::Array => match col.data {
            ColumnData::Array(v) | ColumnData::Json(v) => {
                for (i, item) in v.iter().enumerate() {
                    match item {
                        Json::Array(items) => check_array(field, items)?,
                        Json::Null if valid.as_ref().is_some_and(|vv| !vv[i]) => {}
                        other => {
                            return Err(Error::field(
                                name.clone(),
                                format!("expected an array, got {other}"),
                            ))
                        }
                    }
                }
                ColumnData::Array(v)
            }
            d => return Err(mismatch(&d)),
        },
        t @ (DataType::FloatVector
        | DataType::Float16Vector
        | DataType::BFloat16Vector
        | DataType::Int8Vector
        | DataType::BinaryVector) => match col.data {
            ColumnData::Vector(vc) => {
                if vc.dim != field.dim() {
                    return Err(Error::DimMismatch {
                        field: name.clone(),
                        expected: field.dim(),
                        got: vc.dim,
                    });
                }
                ColumnData::Vector(vector_as(field, t, vc)?)
            }
            d => return Err(mismatch(&d)),
        },
        DataType::SparseFloatVector => match col.data {
            ColumnData::Sparse(sc) => {
                for i in 0..sc.len() {
                    let (ix, vs) = sc.row(i);
                    quiver_core::value::check_sparse(name, ix, vs).map_err(|e| e.at_row(i))?;
                }
                ColumnData::Sparse(sc)
            }
            d => return Err(mismatch(&d)),
        },
    };
    Ok(Column { data, valid })
}

/// A vector column as field type `t`: values checked (finite, in the type's range); float-like
/// columns of another element type are converted (REST rows and JSON arrive as f32).
fn vector_as(field: &FieldSchema, t: DataType, vc: VectorColumn) -> Result<VectorColumn> {
    let name = &field.name;
    if t == DataType::BinaryVector || vc.data_type() == DataType::BinaryVector {
        if vc.data_type() != t {
            return Err(Error::field(
                name.clone(),
                format!("expected {} data, got {}", t.name(), vc.data_type().name()),
            ));
        }
        return Ok(vc);
    }
    let values = vc.to_f32().unwrap_or_default();
    check_finite(name, &values)?;
    check_vector_range(name, t, &values)?;
    if vc.data_type() == t {
        return Ok(vc);
    }
    let mut out = ColumnData::empty_for(field);
    if let ColumnData::Vector(o) = &mut out {
        for row in values.chunks_exact(vc.dim.max(1)) {
            o.push_f32_row(row);
        }
    }
    match out {
        ColumnData::Vector(o) => Ok(o),
        _ => Err(Error::Internal("vector column expected".into())),
    }
}

fn variant_name(d: &ColumnData) -> &'static str {
    match d {
        ColumnData::Bool(_) => "Bool",
        ColumnData::Int8(_) => "Int8",
        ColumnData::Int16(_) => "Int16",
        ColumnData::Int32(_) => "Int32",
        ColumnData::Int64(_) => "Int64",
        ColumnData::Float(_) => "Float",
        ColumnData::Double(_) => "Double",
        ColumnData::VarChar(_) => "VarChar",
        ColumnData::Json(_) => "JSON",
        ColumnData::Array(_) => "Array",
        ColumnData::Vector(v) => v.data_type().name(),
        ColumnData::Sparse(_) => "SparseFloatVector",
    }
}

/// Replace NULLs by the field's default, refuse NULLs in non-nullable fields, and give nullable
/// fields a validity vector.
fn settle_nulls(field: &FieldSchema, mut col: Column, rows: usize) -> Result<Column> {
    let has_nulls = col.valid.as_ref().is_some_and(|v| v.iter().any(|ok| !ok));
    if has_nulls {
        if let Some(default) = &field.default_value {
            let cell = Cell::from_json(field, default)?;
            let valid = col.valid.take().unwrap_or_default();
            let mut out = Column::empty_for(field);
            for (r, ok) in valid.iter().enumerate() {
                if *ok {
                    out.push_from(&col, r);
                } else {
                    out.push_cell(cell.clone());
                }
            }
            col = out;
        } else if !field.nullable {
            return Err(Error::field(
                field.name.clone(),
                "the field is not nullable but got null",
            ));
        }
    }
    if field.nullable && col.valid.is_none() {
        col.valid = Some(vec![true; rows]);
    }
    if !field.nullable {
        col.valid = None;
    }
    Ok(col)
}

/// A column for a field the batch did not provide.
fn missing(field: &FieldSchema, rows: usize) -> Result<Column> {
    let cell = match &field.default_value {
        Some(d) => Cell::from_json(field, d)?,
        None if field.nullable => Cell::Null,
        None => return Err(Error::field(
            field.name.clone(),
            "the field is missing from the data (it is neither nullable nor has a default value)",
        )),
    };
    check_cell(field, &cell)?;
    let mut col = Column::empty_for(field);
    for _ in 0..rows {
        col.push_cell(cell.clone());
    }
    Ok(col)
}

/// Validate `batch` against `schema` and return one column per schema field (+ `$meta`).
/// `alloc_ids(n)` hands out the first of `n` fresh auto ids when the primary key is auto_id.
pub fn normalize(
    schema: &CollectionSchema,
    batch: WriteBatch,
    upsert: bool,
    alloc_ids: impl FnOnce(u64) -> u64,
) -> Result<Vec<Column>> {
    let rows = batch.num_rows;
    if rows == 0 {
        return Err(Error::InvalidArgument("no rows to write".into()));
    }
    let mut provided: Vec<Option<Column>> = vec![None; schema.fields.len()];
    let mut dynamic: Option<Column> = None;
    for (name, col) in batch.columns {
        if let (ColumnData::Vector(vc), Some(f)) = (&col.data, schema.field(&name)) {
            let width = if f.data_type == DataType::BinaryVector {
                f.dim() / 8
            } else {
                f.dim()
            };
            let n = vc.buffer_len();
            if n != rows * width {
                let got = n / rows;
                return Err(Error::DimMismatch {
                    field: name,
                    expected: f.dim(),
                    got: if f.data_type == DataType::BinaryVector {
                        got * 8
                    } else {
                        got
                    },
                });
            }
        }
        if col.len() != rows {
            return Err(Error::field(
                name,
                format!("the column has {} rows, expected {rows}", col.len()),
            ));
        }
        if name == "$meta" {
            if !schema.enable_dynamic_field {
                return Err(Error::InvalidArgument(
                    "the collection does not have dynamic fields enabled".into(),
                ));
            }
            dynamic = Some(col);
            continue;
        }
        let Some(idx) = schema.field_index(&name) else {
            return Err(Error::FieldNotFound(name));
        };
        if provided[idx].is_some() {
            return Err(Error::field(name, "the field is given twice"));
        }
        provided[idx] = Some(col);
    }
    let bm25 = crate::text::bm25_functions(schema)?;
    let mut alloc_ids = Some(alloc_ids);
    let mut out = Vec::with_capacity(schema.fields.len() + 1);
    for (fi, (f, col)) in schema.fields.iter().zip(provided).enumerate() {
        if let Some(b) = bm25.iter().find(|b| b.output == fi) {
            if col.is_some() {
                return Err(Error::field(
                    f.name.clone(),
                    format!(
                        "the field is the output of BM25 function {}: it is computed from {} and must not be given",
                        b.name, schema.fields[b.input].name
                    ),
                ));
            }
            // Filled in below, once the input column is settled.
            out.push(Column::empty_for(f));
            continue;
        }
        let col = match col {
            Some(c) => {
                if f.is_primary_key && f.auto_id && !upsert {
                    return Err(Error::field(f.name.clone(), "the primary key is auto_id: it is generated by the server and must not be given"));
                }
                let c = coerce(f, c)?;
                settle_nulls(f, c, rows)?
            }
            None if f.is_primary_key && f.auto_id && !upsert => {
                let first = alloc_ids.take().map_or(0, |a| a(rows as u64)) as i64;
                let ids: Vec<i64> = (0..rows as i64).map(|i| first + i).collect();
                Column::new(if f.data_type == DataType::VarChar {
                    ColumnData::VarChar(ids.iter().map(|i| i.to_string()).collect())
                } else {
                    ColumnData::Int64(ids)
                })
            }
            None if f.is_primary_key => {
                return Err(Error::field(
                    f.name.clone(),
                    "the primary key is missing from the data",
                ));
            }
            None => missing(f, rows)?,
        };
        out.push(col);
    }
    // BM25 outputs: the term counts of the input text (NULL text gives an empty row).
    for b in &bm25 {
        let input = &out[b.input];
        let mut sc = quiver_core::SparseColumn::default();
        if let ColumnData::VarChar(texts) = &input.data {
            for (r, t) in texts.iter().enumerate() {
                if input.is_null(r) {
                    sc.push_row(&[], &[]);
                } else {
                    let (i, v) = b.analyzer.term_frequencies(t);
                    sc.push_row(&i, &v);
                }
            }
        }
        out[b.output] = Column::new(ColumnData::Sparse(sc));
    }
    // At most one row per primary key in a batch.
    let pk_idx = schema.pk_index();
    let mut seen = HashSet::with_capacity(rows);
    for pk in Pk::all(&out[pk_idx])? {
        if !seen.contains(&pk) {
            seen.insert(pk);
        } else {
            return Err(Error::field(
                schema.fields[pk_idx].name.clone(),
                format!("duplicate primary key {pk} in one batch"),
            ));
        }
    }
    if schema.enable_dynamic_field {
        let dyncol = match dynamic {
            None => Column::new(ColumnData::Json(vec![
                Json::Object(Default::default());
                rows
            ])),
            Some(c) => {
                match c.data {
                    ColumnData::Json(v) => {
                        let mut fixed = Vec::with_capacity(rows);
                        for (i, j) in v.into_iter().enumerate() {
                            match j {
                            Json::Object(m) => {
                                if let Some(k) = m.keys().find(|k| schema.field(k).is_some()) {
                                    return Err(Error::field("$meta", format!("dynamic key {k} of row {i} shadows a schema field")));
                                }
                                fixed.push(Json::Object(m));
                            }
                            Json::Null => fixed.push(Json::Object(Default::default())),
                            other => return Err(Error::field("$meta", format!("row {i}: dynamic fields must be a JSON object, got {other}"))),
                        }
                        }
                        Column::new(ColumnData::Json(fixed))
                    }
                    _ => {
                        return Err(Error::field(
                            "$meta",
                            "the dynamic field column must be JSON",
                        ))
                    }
                }
            }
        };
        out.push(dyncol);
    }
    Ok(out)
}
