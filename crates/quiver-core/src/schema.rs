//! Collection schemas: data types (numbered as Milvus numbers them), fields and their validation.
//!
//! Invariants a validated [`CollectionSchema`] guarantees (see [`CollectionSchema::validate`]):
//! - exactly one primary key, of type INT64 or VARCHAR (VARCHAR has a `max_length`), not nullable;
//! - at least one vector field; every FLOAT_VECTOR has `1 <= dim <= 32768`;
//! - field names are unique, non-empty identifiers (`[A-Za-z_][A-Za-z0-9_]*`, at most 255 bytes)
//!   and never `$meta`;
//! - every field has a unique `field_id >= 100` (assigned in order when the caller gave none);
//! - VARCHAR has `1 <= max_length <= 65535`; ARRAY has a scalar `element_type` and
//!   `1 <= max_capacity <= 4096` (and `max_length` when the element is VARCHAR);
//! - a default value has the field's type; vector fields and the primary key have none.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Field data types, with Milvus's wire numbers (`schema.DataType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataType {
    Bool,
    Int8,
    Int16,
    Int32,
    Int64,
    Float,
    Double,
    VarChar,
    Array,
    Json,
    BinaryVector,
    FloatVector,
    Float16Vector,
    BFloat16Vector,
    SparseFloatVector,
    Int8Vector,
}

impl DataType {
    /// Milvus's `schema.DataType` number.
    pub fn wire(self) -> i32 {
        match self {
            DataType::Bool => 1,
            DataType::Int8 => 2,
            DataType::Int16 => 3,
            DataType::Int32 => 4,
            DataType::Int64 => 5,
            DataType::Float => 10,
            DataType::Double => 11,
            DataType::VarChar => 21,
            DataType::Array => 22,
            DataType::Json => 23,
            DataType::BinaryVector => 100,
            DataType::FloatVector => 101,
            DataType::Float16Vector => 102,
            DataType::BFloat16Vector => 103,
            DataType::SparseFloatVector => 104,
            DataType::Int8Vector => 105,
        }
    }

    /// Inverse of [`DataType::wire`]; `None` for numbers Quiver does not know.
    pub fn from_wire(n: i32) -> Option<DataType> {
        Some(match n {
            1 => DataType::Bool,
            2 => DataType::Int8,
            3 => DataType::Int16,
            4 => DataType::Int32,
            5 => DataType::Int64,
            10 => DataType::Float,
            11 => DataType::Double,
            20 | 21 => DataType::VarChar,
            22 => DataType::Array,
            23 => DataType::Json,
            100 => DataType::BinaryVector,
            101 => DataType::FloatVector,
            102 => DataType::Float16Vector,
            103 => DataType::BFloat16Vector,
            104 => DataType::SparseFloatVector,
            105 => DataType::Int8Vector,
            _ => return None,
        })
    }

    /// Milvus's display name (`FloatVector`, `VarChar`, ...), as REST v2 spells it.
    pub fn name(self) -> &'static str {
        match self {
            DataType::Bool => "Bool",
            DataType::Int8 => "Int8",
            DataType::Int16 => "Int16",
            DataType::Int32 => "Int32",
            DataType::Int64 => "Int64",
            DataType::Float => "Float",
            DataType::Double => "Double",
            DataType::VarChar => "VarChar",
            DataType::Array => "Array",
            DataType::Json => "JSON",
            DataType::BinaryVector => "BinaryVector",
            DataType::FloatVector => "FloatVector",
            DataType::Float16Vector => "Float16Vector",
            DataType::BFloat16Vector => "BFloat16Vector",
            DataType::SparseFloatVector => "SparseFloatVector",
            DataType::Int8Vector => "Int8Vector",
        }
    }

    /// Parse a REST-style name, case-insensitively.
    pub fn parse(s: &str) -> Option<DataType> {
        let all = [
            DataType::Bool,
            DataType::Int8,
            DataType::Int16,
            DataType::Int32,
            DataType::Int64,
            DataType::Float,
            DataType::Double,
            DataType::VarChar,
            DataType::Array,
            DataType::Json,
            DataType::BinaryVector,
            DataType::FloatVector,
            DataType::Float16Vector,
            DataType::BFloat16Vector,
            DataType::SparseFloatVector,
            DataType::Int8Vector,
        ];
        all.into_iter().find(|t| t.name().eq_ignore_ascii_case(s))
    }

    pub fn is_vector(self) -> bool {
        self.wire() >= 100
    }

    pub fn is_integer(self) -> bool {
        matches!(
            self,
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64
        )
    }

    /// Types allowed as ARRAY elements.
    pub fn is_array_element(self) -> bool {
        matches!(
            self,
            DataType::Bool
                | DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::Float
                | DataType::Double
                | DataType::VarChar
        )
    }
}

/// Maximum dimension of a dense vector field.
pub const MAX_DIM: usize = 32768;
/// Maximum `max_length` of a VARCHAR field.
pub const MAX_VARCHAR_LENGTH: usize = 65535;
/// Maximum `max_capacity` of an ARRAY field.
pub const MAX_ARRAY_CAPACITY: usize = 4096;
/// Name of the hidden JSON column that holds the dynamic fields.
pub const DYNAMIC_FIELD: &str = "$meta";

/// One field of a collection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldSchema {
    /// Milvus field id; `0` before validation assigns one.
    pub field_id: i64,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub data_type: DataType,
    #[serde(default)]
    pub is_primary_key: bool,
    #[serde(default)]
    pub auto_id: bool,
    #[serde(default)]
    pub nullable: bool,
    /// Default value as JSON (a number, string, bool, array or object).
    #[serde(default)]
    pub default_value: Option<serde_json::Value>,
    /// Element type of an ARRAY field.
    #[serde(default)]
    pub element_type: Option<DataType>,
    #[serde(default)]
    pub is_partition_key: bool,
    #[serde(default)]
    pub is_clustering_key: bool,
    /// `dim`, `max_length`, `max_capacity`, and any other parameter the user gave (kept verbatim).
    #[serde(default)]
    pub type_params: BTreeMap<String, String>,
}

impl FieldSchema {
    /// A field with the given name and type and nothing else set.
    pub fn new(name: impl Into<String>, data_type: DataType) -> Self {
        FieldSchema {
            field_id: 0,
            name: name.into(),
            description: String::new(),
            data_type,
            is_primary_key: false,
            auto_id: false,
            nullable: false,
            default_value: None,
            element_type: None,
            is_partition_key: false,
            is_clustering_key: false,
            type_params: BTreeMap::new(),
        }
    }

    /// Builder: set a type parameter.
    pub fn with_param(mut self, key: &str, value: impl ToString) -> Self {
        self.type_params.insert(key.to_string(), value.to_string());
        self
    }

    /// Builder: make this the primary key.
    pub fn primary(mut self, auto_id: bool) -> Self {
        self.is_primary_key = true;
        self.auto_id = auto_id;
        self
    }

    fn usize_param(&self, key: &str) -> Result<Option<usize>> {
        match self.type_params.get(key) {
            None => Ok(None),
            Some(v) => v.trim().parse::<usize>().map(Some).map_err(|_| {
                Error::InvalidSchema(format!(
                    "field {}: type param {key} must be a non-negative integer, got {v:?}",
                    self.name
                ))
            }),
        }
    }

    /// Dimension of a vector field (0 for other fields or before validation).
    pub fn dim(&self) -> usize {
        self.usize_param("dim").ok().flatten().unwrap_or(0)
    }

    /// `max_length` of a VARCHAR field or of VARCHAR array elements.
    pub fn max_length(&self) -> usize {
        self.usize_param("max_length").ok().flatten().unwrap_or(0)
    }

    /// `max_capacity` of an ARRAY field.
    pub fn max_capacity(&self) -> usize {
        self.usize_param("max_capacity").ok().flatten().unwrap_or(0)
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| {
            Err(Error::InvalidSchema(format!(
                "field {}: {reason}",
                self.name
            )))
        };
        validate_name(&self.name, "field")?;
        if self.name == DYNAMIC_FIELD {
            return bad("the name $meta is reserved for dynamic fields".into());
        }
        if self.is_primary_key {
            if !matches!(self.data_type, DataType::Int64 | DataType::VarChar) {
                return bad(format!(
                    "the primary key must be Int64 or VarChar, not {}",
                    self.data_type.name()
                ));
            }
            if self.nullable {
                return bad("the primary key cannot be nullable".into());
            }
            if self.default_value.is_some() {
                return bad("the primary key cannot have a default value".into());
            }
        } else if self.auto_id {
            return bad("auto_id can only be set on the primary key".into());
        }
        match self.data_type {
            DataType::FloatVector
            | DataType::Float16Vector
            | DataType::BFloat16Vector
            | DataType::Int8Vector
            | DataType::BinaryVector => {
                let dim = self.usize_param("dim")?;
                let Some(dim) = dim else {
                    return bad("a vector field needs the type param dim".into());
                };
                if dim == 0 || dim > MAX_DIM {
                    return bad(format!("dim must be in [1, {MAX_DIM}], got {dim}"));
                }
                if self.data_type == DataType::BinaryVector && dim % 8 != 0 {
                    return bad(format!(
                        "the dim of a binary vector must be a multiple of 8, got {dim}"
                    ));
                }
                if self.nullable {
                    return bad("vector fields cannot be nullable".into());
                }
                if self.default_value.is_some() {
                    return bad("vector fields cannot have a default value".into());
                }
            }
            DataType::SparseFloatVector => {
                // No dim: a sparse row holds any indices below 2^32-1.
                if self.nullable {
                    return bad("vector fields cannot be nullable".into());
                }
                if self.default_value.is_some() {
                    return bad("vector fields cannot have a default value".into());
                }
            }
            DataType::VarChar => {
                let Some(len) = self.usize_param("max_length")? else {
                    return bad("a VarChar field needs the type param max_length".into());
                };
                if len == 0 || len > MAX_VARCHAR_LENGTH {
                    return bad(format!(
                        "max_length must be in [1, {MAX_VARCHAR_LENGTH}], got {len}"
                    ));
                }
            }
            DataType::Array => {
                let Some(elem) = self.element_type else {
                    return bad("an Array field needs an element_type".into());
                };
                if !elem.is_array_element() {
                    return bad(format!("{} cannot be an array element type", elem.name()));
                }
                let Some(cap) = self.usize_param("max_capacity")? else {
                    return bad("an Array field needs the type param max_capacity".into());
                };
                if cap == 0 || cap > MAX_ARRAY_CAPACITY {
                    return bad(format!(
                        "max_capacity must be in [1, {MAX_ARRAY_CAPACITY}], got {cap}"
                    ));
                }
                if elem == DataType::VarChar {
                    let Some(len) = self.usize_param("max_length")? else {
                        return bad("an Array of VarChar needs the type param max_length".into());
                    };
                    if len == 0 || len > MAX_VARCHAR_LENGTH {
                        return bad(format!(
                            "max_length must be in [1, {MAX_VARCHAR_LENGTH}], got {len}"
                        ));
                    }
                }
            }
            _ => {}
        }
        if let Some(default) = &self.default_value {
            crate::value::Cell::from_json(self, default).map_err(|e| {
                Error::InvalidSchema(format!("field {}: invalid default value: {e}", self.name))
            })?;
        }
        Ok(())
    }
}

/// Check that `name` is a valid identifier for a database, collection, partition, alias or field.
pub fn validate_name(name: &str, kind: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::InvalidArgument(format!(
            "invalid {kind} name {name:?}: {reason}"
        )))
    };
    if name.is_empty() {
        return bad("the name must not be empty");
    }
    if name.len() > 255 {
        return bad("the name must be at most 255 characters");
    }
    let mut chars = name.chars();
    let first = chars.next().unwrap_or('_');
    // Milvus allows `_default` and names starting with a letter or underscore.
    if !(first.is_ascii_alphabetic() || first == '_' || (kind == "field" && first == '$')) {
        return bad("the first character must be a letter or an underscore");
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return bad("only letters, digits and underscores are allowed");
    }
    Ok(())
}

/// A user-defined function of the schema (BM25, TextEmbedding, ...), kept as given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionSchema {
    pub name: String,
    pub description: String,
    /// Milvus `FunctionType` number (BM25=1, TextEmbedding=2, Rerank=3).
    pub function_type: i32,
    pub input_field_names: Vec<String>,
    pub output_field_names: Vec<String>,
    pub params: BTreeMap<String, String>,
}

/// The schema of one collection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CollectionSchema {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub fields: Vec<FieldSchema>,
    #[serde(default)]
    pub enable_dynamic_field: bool,
    #[serde(default)]
    pub functions: Vec<FunctionSchema>,
}

impl CollectionSchema {
    /// Check the invariants in the module docs and assign field ids (from 100) where missing.
    pub fn validate(&mut self) -> Result<()> {
        validate_name(&self.name, "collection")?;
        if self.fields.is_empty() {
            return Err(Error::InvalidSchema(
                "a schema needs at least one field".into(),
            ));
        }
        let pks = self.fields.iter().filter(|f| f.is_primary_key).count();
        if pks != 1 {
            return Err(Error::InvalidSchema(format!(
                "a schema needs exactly one primary key field, found {pks}"
            )));
        }
        if !self.fields.iter().any(|f| f.data_type.is_vector()) {
            return Err(Error::InvalidSchema(
                "a schema needs at least one vector field".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for f in &self.fields {
            f.validate()?;
            if !seen.insert(f.name.as_str()) {
                return Err(Error::InvalidSchema(format!(
                    "duplicate field name {}",
                    f.name
                )));
            }
        }
        let pk_count = self.fields.iter().filter(|f| f.is_partition_key).count();
        if pk_count > 1 {
            return Err(Error::InvalidSchema(
                "at most one partition key field is allowed".into(),
            ));
        }
        let mut ids = std::collections::HashSet::new();
        let mut next = self
            .fields
            .iter()
            .map(|f| f.field_id)
            .max()
            .unwrap_or(0)
            .max(99)
            + 1;
        for f in &mut self.fields {
            if f.field_id == 0 {
                f.field_id = next;
                next += 1;
            }
            if f.field_id < 100 || !ids.insert(f.field_id) {
                return Err(Error::InvalidSchema(format!(
                    "field {} has an invalid or duplicate field id {}",
                    f.name, f.field_id
                )));
            }
        }
        Ok(())
    }

    /// Index of the primary key field. Valid after [`CollectionSchema::validate`].
    pub fn pk_index(&self) -> usize {
        self.fields
            .iter()
            .position(|f| f.is_primary_key)
            .unwrap_or(0)
    }

    pub fn pk_field(&self) -> &FieldSchema {
        &self.fields[self.pk_index()]
    }

    /// Index of the field called `name`.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    pub fn field(&self, name: &str) -> Option<&FieldSchema> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Indexes of the vector fields, in schema order.
    pub fn vector_fields(&self) -> impl Iterator<Item = usize> + '_ {
        self.fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.data_type.is_vector())
            .map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> CollectionSchema {
        CollectionSchema {
            name: "c".into(),
            description: String::new(),
            fields: vec![
                FieldSchema::new("id", DataType::Int64).primary(false),
                FieldSchema::new("v", DataType::FloatVector).with_param("dim", 4),
            ],
            enable_dynamic_field: true,
            functions: vec![],
        }
    }

    #[test]
    fn assigns_ids_from_100() {
        let mut s = base();
        s.validate().unwrap();
        assert_eq!(s.fields[0].field_id, 100);
        assert_eq!(s.fields[1].field_id, 101);
    }

    #[test]
    fn rejects_bad_schemas_with_reasons() {
        let mut s = base();
        s.fields[1].type_params.insert("dim".into(), "0".into());
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("dim must be in [1, 32768]"), "{e}");

        let mut s = base();
        s.fields[1].type_params.insert("dim".into(), "40000".into());
        assert!(s.validate().is_err());

        let mut s = base();
        s.fields.push(FieldSchema::new("id", DataType::Int32));
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("duplicate field name id"));

        let mut s = base();
        s.fields[0].is_primary_key = false;
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("exactly one primary key"));

        let mut s = base();
        s.fields.push(FieldSchema::new("s", DataType::VarChar));
        assert!(s.validate().unwrap_err().to_string().contains("max_length"));

        let mut s = base();
        let mut a = FieldSchema::new("a", DataType::Array).with_param("max_capacity", 4);
        a.element_type = Some(DataType::Json);
        s.fields.push(a);
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("array element"));

        let mut s = base();
        s.fields.push(FieldSchema::new("bad-name", DataType::Int32));
        assert!(s.validate().is_err());

        let mut s = base();
        let mut f = FieldSchema::new("n", DataType::Int32);
        f.default_value = Some(serde_json::json!("text"));
        s.fields.push(f);
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("default value"));
    }

    #[test]
    fn wire_numbers_round_trip() {
        for n in [
            1, 2, 3, 4, 5, 10, 11, 21, 22, 23, 100, 101, 102, 103, 104, 105,
        ] {
            assert_eq!(DataType::from_wire(n).unwrap().wire(), n);
        }
        assert_eq!(DataType::from_wire(999), None);
        assert_eq!(DataType::parse("floatvector"), Some(DataType::FloatVector));
    }
}
