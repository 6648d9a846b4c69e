//! The bridge between the filter language (`quiver-expr`) and segments.

use std::collections::HashMap;

use quiver_core::{CollectionSchema, ColumnData, DataType, Error, Result};
use quiver_expr::{FieldInfo, FieldType, Filter, Row, Schema, ValueRef};

use crate::segment::SegmentData;

/// A collection schema as the filter compiler sees it. Column ids are schema positions; the
/// dynamic `$meta` column is the one after the last field.
pub struct FilterSchema<'a>(pub &'a CollectionSchema);

fn expr_type(t: DataType) -> Option<FieldType> {
    Some(match t {
        DataType::Bool => FieldType::Bool,
        DataType::Int8 => FieldType::Int8,
        DataType::Int16 => FieldType::Int16,
        DataType::Int32 => FieldType::Int32,
        DataType::Int64 => FieldType::Int64,
        DataType::Float => FieldType::Float,
        DataType::Double => FieldType::Double,
        DataType::VarChar => FieldType::VarChar,
        DataType::Json => FieldType::Json,
        _ => return None,
    })
}

impl Schema for FilterSchema<'_> {
    fn field(&self, name: &str) -> std::result::Result<Option<FieldInfo>, String> {
        let Some(id) = self.0.field_index(name) else {
            return Ok(None);
        };
        let f = &self.0.fields[id];
        let ty = if f.data_type == DataType::Array {
            let elem = f
                .element_type
                .and_then(expr_type)
                .ok_or_else(|| format!("array field {name} has no element type"))?;
            FieldType::Array(Box::new(elem))
        } else {
            expr_type(f.data_type).ok_or_else(|| {
                format!(
                    "field {name} of type {} cannot be used in a filter",
                    f.data_type.name()
                )
            })?
        };
        Ok(Some(FieldInfo {
            id,
            ty,
            nullable: f.nullable,
        }))
    }

    fn dynamic_field(&self) -> Option<usize> {
        self.0.enable_dynamic_field.then_some(self.0.fields.len())
    }
}

/// Compile a filter for a collection, mapping errors to [`Error::InvalidExpr`].
pub fn compile(
    schema: &CollectionSchema,
    expr: &str,
    params: &HashMap<String, serde_json::Value>,
) -> Result<Filter> {
    quiver_expr::compile(expr, &FilterSchema(schema), params).map_err(|e| Error::InvalidExpr {
        expr: expr.to_string(),
        reason: e.to_string(),
    })
}

/// One row of a segment, for filter evaluation.
pub struct SegRow<'a> {
    pub data: &'a SegmentData,
    pub row: usize,
}

impl Row for SegRow<'_> {
    fn get(&self, field_id: usize) -> ValueRef<'_> {
        let Some(col) = self.data.columns.get(field_id) else {
            return ValueRef::Null;
        };
        if col.is_null(self.row) {
            return ValueRef::Null;
        }
        let r = self.row;
        match &col.data {
            ColumnData::Bool(v) => ValueRef::Bool(v[r]),
            ColumnData::Int8(v) => ValueRef::Int(v[r] as i64),
            ColumnData::Int16(v) => ValueRef::Int(v[r] as i64),
            ColumnData::Int32(v) => ValueRef::Int(v[r] as i64),
            ColumnData::Int64(v) => ValueRef::Int(v[r]),
            ColumnData::Float(v) => ValueRef::Float(v[r] as f64),
            ColumnData::Double(v) => ValueRef::Float(v[r]),
            ColumnData::VarChar(v) => ValueRef::Str(&v[r]),
            ColumnData::Json(v) | ColumnData::Array(v) => ValueRef::Json(&v[r]),
            ColumnData::Vector(_) | ColumnData::Sparse(_) => ValueRef::Null,
        }
    }
}

/// A segment's columns for column-at-a-time filter evaluation (`Filter::eval_bitmap`).
pub struct SegColumns<'a>(pub &'a SegmentData);

impl quiver_expr::Columns for SegColumns<'_> {
    fn len(&self) -> usize {
        self.0.rows()
    }

    fn column(&self, field: usize) -> Option<quiver_expr::ColumnView<'_>> {
        use quiver_expr::ColumnSlice as S;
        let col = self.0.columns.get(field)?;
        let data = match &col.data {
            ColumnData::Bool(v) => S::Bool(v),
            ColumnData::Int8(v) => S::I8(v),
            ColumnData::Int16(v) => S::I16(v),
            ColumnData::Int32(v) => S::I32(v),
            ColumnData::Int64(v) => S::I64(v),
            ColumnData::Float(v) => S::F32(v),
            ColumnData::Double(v) => S::F64(v),
            ColumnData::VarChar(v) => S::Str(v),
            ColumnData::Json(_)
            | ColumnData::Array(_)
            | ColumnData::Vector(_)
            | ColumnData::Sparse(_) => return None,
        };
        Some(quiver_expr::ColumnView {
            data,
            valid: col.valid.as_deref(),
        })
    }

    fn with_row(&self, r: usize, f: &mut dyn FnMut(&dyn Row)) {
        f(&SegRow {
            data: self.0,
            row: r,
        })
    }
}
