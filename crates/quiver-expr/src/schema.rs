//! What the compiler needs to know about a collection, and how rows are read.

use std::fmt;

/// Scalar types of schema fields the filter can reference. Element types of
/// arrays are never `Json`/`Array`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FieldType {
    Bool,
    Int8,
    Int16,
    Int32,
    Int64,
    Float,
    Double,
    VarChar,
    Json,
    Array(Box<FieldType>),
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldType::Bool => f.write_str("Bool"),
            FieldType::Int8 => f.write_str("Int8"),
            FieldType::Int16 => f.write_str("Int16"),
            FieldType::Int32 => f.write_str("Int32"),
            FieldType::Int64 => f.write_str("Int64"),
            FieldType::Float => f.write_str("Float"),
            FieldType::Double => f.write_str("Double"),
            FieldType::VarChar => f.write_str("VarChar"),
            FieldType::Json => f.write_str("JSON"),
            FieldType::Array(e) => write!(f, "Array<{e}>"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldInfo {
    /// The caller's column index; [`Row::get`] receives it.
    pub id: usize,
    pub ty: FieldType,
    pub nullable: bool,
}

/// What the compiler needs to know about the collection.
pub trait Schema {
    /// Look up a field by name. `Err(reason)` for fields that exist but
    /// cannot be filtered on (vector fields).
    fn field(&self, name: &str) -> Result<Option<FieldInfo>, String>;
    /// Column index of the dynamic `$meta` JSON field, if the collection has one.
    fn dynamic_field(&self) -> Option<usize>;
}

/// A cell as the engine hands it over. ARRAY field cells are handed over as
/// `Json(Value::Array(..))`; JSON cells as `Json(..)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    Json(&'a serde_json::Value),
}

/// One row, read by column index.
pub trait Row {
    fn get(&self, field_id: usize) -> ValueRef<'_>;
}

fn cell<'a>(cells: &[ValueRef<'a>], field_id: usize) -> ValueRef<'a> {
    cells.get(field_id).copied().unwrap_or(ValueRef::Null)
}

/// Cells indexed by column id (missing columns read as NULL).
impl Row for Vec<ValueRef<'_>> {
    fn get(&self, field_id: usize) -> ValueRef<'_> {
        cell(self, field_id)
    }
}

/// Cells indexed by column id (missing columns read as NULL).
impl<const N: usize> Row for [ValueRef<'_>; N] {
    fn get(&self, field_id: usize) -> ValueRef<'_> {
        cell(self, field_id)
    }
}

/// A simple in-memory [`Schema`], handy for tests and tools.
#[derive(Debug, Clone, Default)]
pub struct StaticSchema {
    fields: Vec<(String, Result<FieldInfo, String>)>,
    dynamic: Option<usize>,
}

impl StaticSchema {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a non-nullable field.
    pub fn field(self, name: &str, id: usize, ty: FieldType) -> Self {
        self.with(
            name,
            FieldInfo {
                id,
                ty,
                nullable: false,
            },
        )
    }

    /// Adds a nullable field.
    pub fn nullable_field(self, name: &str, id: usize, ty: FieldType) -> Self {
        self.with(
            name,
            FieldInfo {
                id,
                ty,
                nullable: true,
            },
        )
    }

    pub fn with(mut self, name: &str, info: FieldInfo) -> Self {
        self.fields.push((name.to_string(), Ok(info)));
        self
    }

    /// Adds a field that exists but cannot be filtered on (e.g. a vector).
    pub fn unfilterable(mut self, name: &str, reason: &str) -> Self {
        self.fields
            .push((name.to_string(), Err(reason.to_string())));
        self
    }

    /// Declares the dynamic `$meta` field's column.
    pub fn dynamic(mut self, id: usize) -> Self {
        self.dynamic = Some(id);
        self
    }
}

impl Schema for StaticSchema {
    fn field(&self, name: &str) -> Result<Option<FieldInfo>, String> {
        match self.fields.iter().find(|(n, _)| n == name) {
            None => Ok(None),
            Some((_, r)) => r.clone().map(Some),
        }
    }

    fn dynamic_field(&self) -> Option<usize> {
        self.dynamic
    }
}
