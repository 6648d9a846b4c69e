//! Column-oriented data: what inserts carry, what segments store, what results return.
//!
//! A [`Column`] holds the values of one field for many rows. Nullable fields carry a validity
//! vector (`valid[i] == false` means NULL; the data slot then holds the type's zero value, so
//! every column stays dense and row `i` is at index `i` in every column).
//!
//! Vector columns are a [`VectorColumn`]: a dimension plus one flat buffer whose element type is
//! the [`VectorData`] variant. FLOAT16, BFLOAT16, INT8 and BINARY vectors are further variants of
//! that enum, so adding them does not reshape rows, segments or the codec.
//!
//! SPARSE_FLOAT_VECTOR columns are a [`SparseColumn`] in compressed-row form: per row a run of
//! strictly increasing `u32` indices with their `f32` values (an empty row is allowed, as in
//! Milvus). They have no fixed dimension.
//!
//! ARRAY cells are kept as JSON arrays of their elements (validated against the element type and
//! capacity on the way in); JSON cells are parsed `serde_json::Value`s.

use serde_json::Value as Json;

use crate::error::{Error, Result};
use crate::schema::{DataType, FieldSchema};

/// The flat element buffer of a vector column. Every element type is stored as it arrives on
/// the wire (no widening), so WAL records and segment files keep the declared size; searches
/// decode FLOAT16 / BFLOAT16 / INT8 rows to f32 ([`VectorColumn::to_f32`]).
#[derive(Clone, Debug, PartialEq)]
pub enum VectorData {
    /// FLOAT_VECTOR: `rows * dim` f32.
    F32(Vec<f32>),
    /// FLOAT16_VECTOR: `rows * dim` IEEE 754 binary16 bit patterns.
    F16(Vec<u16>),
    /// BFLOAT16_VECTOR: `rows * dim` bfloat16 bit patterns.
    Bf16(Vec<u16>),
    /// INT8_VECTOR: `rows * dim` signed bytes.
    I8(Vec<i8>),
    /// BINARY_VECTOR: `rows * dim / 8` bytes, `dim` bits a row packed as Milvus packs them
    /// (numpy `packbits` order: the first element is the high bit of the first byte).
    Binary(Vec<u8>),
}

/// `rows` vectors of `dim` elements each.
#[derive(Clone, Debug, PartialEq)]
pub struct VectorColumn {
    pub dim: usize,
    pub data: VectorData,
}

impl VectorColumn {
    pub fn f32(dim: usize, data: Vec<f32>) -> Self {
        VectorColumn {
            dim,
            data: VectorData::F32(data),
        }
    }

    /// An empty column of vector type `t` (FloatVector when `t` is not a vector type).
    pub fn empty(t: DataType, dim: usize) -> Self {
        let data = match t {
            DataType::Float16Vector => VectorData::F16(Vec::new()),
            DataType::BFloat16Vector => VectorData::Bf16(Vec::new()),
            DataType::Int8Vector => VectorData::I8(Vec::new()),
            DataType::BinaryVector => VectorData::Binary(Vec::new()),
            _ => VectorData::F32(Vec::new()),
        };
        VectorColumn { dim, data }
    }

    /// The Milvus data type of the elements.
    pub fn data_type(&self) -> DataType {
        match &self.data {
            VectorData::F32(_) => DataType::FloatVector,
            VectorData::F16(_) => DataType::Float16Vector,
            VectorData::Bf16(_) => DataType::BFloat16Vector,
            VectorData::I8(_) => DataType::Int8Vector,
            VectorData::Binary(_) => DataType::BinaryVector,
        }
    }

    /// Buffer elements per row: `dim`, or `dim / 8` bytes for binary vectors.
    pub fn row_width(&self) -> usize {
        match &self.data {
            VectorData::Binary(_) => self.dim / 8,
            _ => self.dim,
        }
    }

    /// Elements in the buffer (bytes for binary vectors).
    pub fn buffer_len(&self) -> usize {
        match &self.data {
            VectorData::F32(v) => v.len(),
            VectorData::F16(v) | VectorData::Bf16(v) => v.len(),
            VectorData::I8(v) => v.len(),
            VectorData::Binary(v) => v.len(),
        }
    }

    pub fn len(&self) -> usize {
        self.buffer_len().checked_div(self.row_width()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The f32 buffer of a FLOAT_VECTOR column.
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            VectorData::F32(v) => Some(v),
            _ => None,
        }
    }

    /// The packed bytes of a BINARY_VECTOR column.
    pub fn as_binary(&self) -> Option<&[u8]> {
        match &self.data {
            VectorData::Binary(v) => Some(v),
            _ => None,
        }
    }

    /// Every row as f32 (borrowed for FLOAT_VECTOR, decoded exactly for FLOAT16, BFLOAT16 and
    /// INT8); `None` for binary vectors.
    pub fn to_f32(&self) -> Option<std::borrow::Cow<'_, [f32]>> {
        use std::borrow::Cow;
        Some(match &self.data {
            VectorData::F32(v) => Cow::Borrowed(v.as_slice()),
            VectorData::F16(v) => Cow::Owned(v.iter().map(|&b| f16_to_f32(b)).collect()),
            VectorData::Bf16(v) => Cow::Owned(v.iter().map(|&b| bf16_to_f32(b)).collect()),
            VectorData::I8(v) => Cow::Owned(v.iter().map(|&x| x as f32).collect()),
            VectorData::Binary(_) => return None,
        })
    }

    /// Row `i` as a cell: float-like rows as f32 values, binary rows as bytes.
    pub fn row_cell(&self, i: usize) -> Cell {
        let (d, w) = (self.dim, self.row_width());
        match &self.data {
            VectorData::F32(v) => Cell::Vector(v[i * d..(i + 1) * d].to_vec()),
            VectorData::F16(v) => Cell::Vector(
                v[i * d..(i + 1) * d]
                    .iter()
                    .map(|&b| f16_to_f32(b))
                    .collect(),
            ),
            VectorData::Bf16(v) => Cell::Vector(
                v[i * d..(i + 1) * d]
                    .iter()
                    .map(|&b| bf16_to_f32(b))
                    .collect(),
            ),
            VectorData::I8(v) => {
                Cell::Vector(v[i * d..(i + 1) * d].iter().map(|&x| x as f32).collect())
            }
            VectorData::Binary(v) => Cell::Binary(v[i * w..(i + 1) * w].to_vec()),
        }
    }

    fn empty_like(&self) -> Self {
        VectorColumn::empty(self.data_type(), self.dim)
    }

    fn push_from(&mut self, other: &VectorColumn, row: usize) {
        let w = other.row_width();
        let r = row * w..(row + 1) * w;
        match (&mut self.data, &other.data) {
            (VectorData::F32(a), VectorData::F32(b)) => a.extend_from_slice(&b[r]),
            (VectorData::F16(a), VectorData::F16(b))
            | (VectorData::Bf16(a), VectorData::Bf16(b)) => a.extend_from_slice(&b[r]),
            (VectorData::I8(a), VectorData::I8(b)) => a.extend_from_slice(&b[r]),
            (VectorData::Binary(a), VectorData::Binary(b)) => a.extend_from_slice(&b[r]),
            (a, b) => debug_assert!(false, "push_from between {a:?} and {b:?}"),
        }
    }

    /// Append one row given as f32 (float-like types; validated by [`check_cell`] first).
    pub fn push_f32_row(&mut self, row: &[f32]) {
        match &mut self.data {
            VectorData::F32(a) => a.extend_from_slice(row),
            VectorData::F16(a) => a.extend(row.iter().map(|&x| f32_to_f16(x))),
            VectorData::Bf16(a) => a.extend(row.iter().map(|&x| f32_to_bf16(x))),
            VectorData::I8(a) => a.extend(row.iter().map(|&x| x as i8)),
            VectorData::Binary(_) => debug_assert!(false, "f32 row into a binary column"),
        }
    }

    fn push_zero(&mut self) {
        let (d, w) = (self.dim, self.row_width());
        match &mut self.data {
            VectorData::F32(a) => a.extend(std::iter::repeat_n(0.0, d)),
            VectorData::F16(a) | VectorData::Bf16(a) => a.extend(std::iter::repeat_n(0, d)),
            VectorData::I8(a) => a.extend(std::iter::repeat_n(0, d)),
            VectorData::Binary(a) => a.extend(std::iter::repeat_n(0, w)),
        }
    }
}

/// IEEE binary16 bits to f32 (exact).
pub fn f16_to_f32(b: u16) -> f32 {
    half::f16::from_bits(b).to_f32()
}

/// f32 to IEEE binary16 bits (round to nearest even; overflow gives infinity).
pub fn f32_to_f16(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

/// bfloat16 bits to f32 (exact).
pub fn bf16_to_f32(b: u16) -> f32 {
    half::bf16::from_bits(b).to_f32()
}

/// f32 to bfloat16 bits (round to nearest even).
pub fn f32_to_bf16(x: f32) -> u16 {
    half::bf16::from_f32(x).to_bits()
}

/// SPARSE_FLOAT_VECTOR rows in compressed-row form.
///
/// Invariants: `offsets[0] == 0`, `offsets` is non-decreasing with `rows + 1` entries and ends at
/// `indices.len() == values.len()`; within a row the indices strictly increase and none is
/// `u32::MAX`; values are finite.
#[derive(Clone, Debug, PartialEq)]
pub struct SparseColumn {
    pub offsets: Vec<usize>,
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

impl Default for SparseColumn {
    fn default() -> Self {
        SparseColumn {
            offsets: vec![0],
            indices: Vec::new(),
            values: Vec::new(),
        }
    }
}

impl SparseColumn {
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `i` as (indices, values).
    pub fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let r = self.offsets[i]..self.offsets[i + 1];
        (&self.indices[r.clone()], &self.values[r])
    }

    /// Append one row (already validated: see [`check_sparse`]).
    pub fn push_row(&mut self, indices: &[u32], values: &[f32]) {
        self.indices.extend_from_slice(indices);
        self.values.extend_from_slice(values);
        self.offsets.push(self.indices.len());
    }

    /// One more than the largest index of any row (what Milvus reports as a sparse `dim`).
    pub fn dim(&self) -> usize {
        (0..self.len())
            .filter_map(|i| self.row(i).0.last())
            .map(|&x| x as usize + 1)
            .max()
            .unwrap_or(0)
    }
}

/// Check one sparse row: strictly increasing indices below `u32::MAX`, finite values.
pub fn check_sparse(field: &str, indices: &[u32], values: &[f32]) -> Result<()> {
    if indices.len() != values.len() {
        return Err(Error::field(
            field,
            "a sparse vector needs as many values as indices",
        ));
    }
    for (i, &ix) in indices.iter().enumerate() {
        if ix == u32::MAX {
            return Err(Error::field(
                field,
                "sparse vector index must be less than 2^32-1",
            ));
        }
        if i > 0 && ix <= indices[i - 1] {
            return Err(Error::field(
                field,
                format!("sparse vector indices must be unique and sorted (index {ix} repeats or is out of order)"),
            ));
        }
    }
    check_finite(field, values)
}

/// A sparse cell from (index, value) pairs in any order: sorted, with duplicates refused.
pub fn sparse_from_pairs(field: &str, mut pairs: Vec<(u32, f32)>) -> Result<Cell> {
    pairs.sort_by_key(|p| p.0);
    let (indices, values): (Vec<u32>, Vec<f32>) = pairs.into_iter().unzip();
    check_sparse(field, &indices, &values)?;
    Ok(Cell::Sparse(indices, values))
}

/// The values of one field for a run of rows.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnData {
    Bool(Vec<bool>),
    Int8(Vec<i8>),
    Int16(Vec<i16>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Float(Vec<f32>),
    Double(Vec<f64>),
    VarChar(Vec<String>),
    /// JSON fields and the dynamic `$meta` field.
    Json(Vec<Json>),
    /// ARRAY fields: each cell a JSON array of elements of the field's element type.
    Array(Vec<Json>),
    Vector(VectorColumn),
    /// SPARSE_FLOAT_VECTOR fields.
    Sparse(SparseColumn),
}

/// A column with optional validity (for nullable fields).
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub data: ColumnData,
    /// `None`: every row is valid. `Some(v)`: `v[i] == false` means row i is NULL.
    pub valid: Option<Vec<bool>>,
}

/// One value of one row, row-at-a-time (defaults, REST rows, results).
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(f32),
    Double(f64),
    Str(String),
    /// JSON, dynamic and ARRAY values.
    Json(Json),
    /// A float-like vector (FLOAT, FLOAT16, BFLOAT16 and INT8 vectors, as f32 values).
    Vector(Vec<f32>),
    /// A binary vector's packed bytes.
    Binary(Vec<u8>),
    /// A sparse vector: strictly increasing indices and their values.
    Sparse(Vec<u32>, Vec<f32>),
}

impl ColumnData {
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Bool(v) => v.len(),
            ColumnData::Int8(v) => v.len(),
            ColumnData::Int16(v) => v.len(),
            ColumnData::Int32(v) => v.len(),
            ColumnData::Int64(v) => v.len(),
            ColumnData::Float(v) => v.len(),
            ColumnData::Double(v) => v.len(),
            ColumnData::VarChar(v) => v.len(),
            ColumnData::Json(v) | ColumnData::Array(v) => v.len(),
            ColumnData::Vector(v) => v.len(),
            ColumnData::Sparse(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An empty column of the same variant (and dimension).
    pub fn empty_like(&self) -> ColumnData {
        match self {
            ColumnData::Bool(_) => ColumnData::Bool(vec![]),
            ColumnData::Int8(_) => ColumnData::Int8(vec![]),
            ColumnData::Int16(_) => ColumnData::Int16(vec![]),
            ColumnData::Int32(_) => ColumnData::Int32(vec![]),
            ColumnData::Int64(_) => ColumnData::Int64(vec![]),
            ColumnData::Float(_) => ColumnData::Float(vec![]),
            ColumnData::Double(_) => ColumnData::Double(vec![]),
            ColumnData::VarChar(_) => ColumnData::VarChar(vec![]),
            ColumnData::Json(_) => ColumnData::Json(vec![]),
            ColumnData::Array(_) => ColumnData::Array(vec![]),
            ColumnData::Vector(v) => ColumnData::Vector(v.empty_like()),
            ColumnData::Sparse(_) => ColumnData::Sparse(SparseColumn::default()),
        }
    }

    /// An empty column for `field`.
    pub fn empty_for(field: &FieldSchema) -> ColumnData {
        match field.data_type {
            DataType::Bool => ColumnData::Bool(vec![]),
            DataType::Int8 => ColumnData::Int8(vec![]),
            DataType::Int16 => ColumnData::Int16(vec![]),
            DataType::Int32 => ColumnData::Int32(vec![]),
            DataType::Int64 => ColumnData::Int64(vec![]),
            DataType::Float => ColumnData::Float(vec![]),
            DataType::Double => ColumnData::Double(vec![]),
            DataType::VarChar => ColumnData::VarChar(vec![]),
            DataType::Json => ColumnData::Json(vec![]),
            DataType::Array => ColumnData::Array(vec![]),
            DataType::SparseFloatVector => ColumnData::Sparse(SparseColumn::default()),
            t => ColumnData::Vector(VectorColumn::empty(t, field.dim())),
        }
    }

    /// Append row `row` of `other` (same variant) to `self`.
    pub fn push_from(&mut self, other: &ColumnData, row: usize) {
        match (self, other) {
            (ColumnData::Bool(a), ColumnData::Bool(b)) => a.push(b[row]),
            (ColumnData::Int8(a), ColumnData::Int8(b)) => a.push(b[row]),
            (ColumnData::Int16(a), ColumnData::Int16(b)) => a.push(b[row]),
            (ColumnData::Int32(a), ColumnData::Int32(b)) => a.push(b[row]),
            (ColumnData::Int64(a), ColumnData::Int64(b)) => a.push(b[row]),
            (ColumnData::Float(a), ColumnData::Float(b)) => a.push(b[row]),
            (ColumnData::Double(a), ColumnData::Double(b)) => a.push(b[row]),
            (ColumnData::VarChar(a), ColumnData::VarChar(b)) => a.push(b[row].clone()),
            (ColumnData::Json(a), ColumnData::Json(b))
            | (ColumnData::Array(a), ColumnData::Array(b)) => a.push(b[row].clone()),
            (ColumnData::Vector(a), ColumnData::Vector(b)) => a.push_from(b, row),
            (ColumnData::Sparse(a), ColumnData::Sparse(b)) => {
                let (i, v) = b.row(row);
                a.push_row(i, v)
            }
            (a, b) => debug_assert!(false, "push_from between {a:?} and {b:?}"),
        }
    }

    /// The value at `row` (ignoring validity).
    pub fn cell(&self, row: usize) -> Cell {
        match self {
            ColumnData::Bool(v) => Cell::Bool(v[row]),
            ColumnData::Int8(v) => Cell::Int(v[row] as i64),
            ColumnData::Int16(v) => Cell::Int(v[row] as i64),
            ColumnData::Int32(v) => Cell::Int(v[row] as i64),
            ColumnData::Int64(v) => Cell::Int(v[row]),
            ColumnData::Float(v) => Cell::Float(v[row]),
            ColumnData::Double(v) => Cell::Double(v[row]),
            ColumnData::VarChar(v) => Cell::Str(v[row].clone()),
            ColumnData::Json(v) | ColumnData::Array(v) => Cell::Json(v[row].clone()),
            ColumnData::Vector(v) => v.row_cell(row),
            ColumnData::Sparse(v) => {
                let (i, x) = v.row(row);
                Cell::Sparse(i.to_vec(), x.to_vec())
            }
        }
    }

    /// Append one cell (of the right type; callers validate first).
    fn push_cell(&mut self, cell: Cell) {
        match (self, cell) {
            (ColumnData::Bool(a), Cell::Bool(b)) => a.push(b),
            (ColumnData::Int8(a), Cell::Int(b)) => a.push(b as i8),
            (ColumnData::Int16(a), Cell::Int(b)) => a.push(b as i16),
            (ColumnData::Int32(a), Cell::Int(b)) => a.push(b as i32),
            (ColumnData::Int64(a), Cell::Int(b)) => a.push(b),
            (ColumnData::Float(a), Cell::Float(b)) => a.push(b),
            (ColumnData::Double(a), Cell::Double(b)) => a.push(b),
            (ColumnData::VarChar(a), Cell::Str(b)) => a.push(b),
            (ColumnData::Json(a), Cell::Json(b)) | (ColumnData::Array(a), Cell::Json(b)) => {
                a.push(b)
            }
            (ColumnData::Vector(a), Cell::Vector(b)) => a.push_f32_row(&b),
            (ColumnData::Vector(a), Cell::Binary(b)) => match &mut a.data {
                VectorData::Binary(d) => d.extend_from_slice(&b),
                _ => debug_assert!(false, "binary cell into a float vector column"),
            },
            (ColumnData::Sparse(a), Cell::Sparse(i, v)) => a.push_row(&i, &v),
            (col, Cell::Null) => col.push_zero(),
            (a, b) => debug_assert!(false, "push_cell {b:?} into {a:?}"),
        }
    }

    /// Append the type's zero value (the placeholder under a NULL).
    fn push_zero(&mut self) {
        match self {
            ColumnData::Bool(a) => a.push(false),
            ColumnData::Int8(a) => a.push(0),
            ColumnData::Int16(a) => a.push(0),
            ColumnData::Int32(a) => a.push(0),
            ColumnData::Int64(a) => a.push(0),
            ColumnData::Float(a) => a.push(0.0),
            ColumnData::Double(a) => a.push(0.0),
            ColumnData::VarChar(a) => a.push(String::new()),
            ColumnData::Json(a) | ColumnData::Array(a) => a.push(Json::Null),
            ColumnData::Vector(v) => v.push_zero(),
            ColumnData::Sparse(v) => v.push_row(&[], &[]),
        }
    }
}

impl Column {
    pub fn new(data: ColumnData) -> Self {
        Column { data, valid: None }
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn empty_like(&self) -> Column {
        Column {
            data: self.data.empty_like(),
            valid: self.valid.as_ref().map(|_| Vec::new()),
        }
    }

    /// An empty column for `field` (with a validity vector when the field is nullable).
    pub fn empty_for(field: &FieldSchema) -> Column {
        Column {
            data: ColumnData::empty_for(field),
            valid: field.nullable.then(Vec::new),
        }
    }

    pub fn is_null(&self, row: usize) -> bool {
        self.valid.as_ref().is_some_and(|v| !v[row])
    }

    pub fn cell(&self, row: usize) -> Cell {
        if self.is_null(row) {
            Cell::Null
        } else {
            self.data.cell(row)
        }
    }

    /// Append row `row` of `other`, which has the same variant.
    pub fn push_from(&mut self, other: &Column, row: usize) {
        self.data.push_from(&other.data, row);
        match (&mut self.valid, &other.valid) {
            (Some(a), Some(b)) => a.push(b[row]),
            (Some(a), None) => a.push(true),
            (None, Some(b)) if !b[row] => {
                let mut v = vec![true; self.data.len() - 1];
                v.push(false);
                self.valid = Some(v);
            }
            _ => {}
        }
    }

    /// Append a cell; `Cell::Null` marks the row NULL.
    pub fn push_cell(&mut self, cell: Cell) {
        let null = matches!(cell, Cell::Null);
        self.data.push_cell(cell);
        match &mut self.valid {
            Some(v) => v.push(!null),
            None if null => {
                let mut v = vec![true; self.data.len() - 1];
                v.push(false);
                self.valid = Some(v);
            }
            None => {}
        }
    }

    /// The rows at `rows`, in that order.
    pub fn gather(&self, rows: &[usize]) -> Column {
        let mut out = self.empty_like();
        for &r in rows {
            out.push_from(self, r);
        }
        out
    }
}

impl Cell {
    /// Convert a JSON value (REST rows, default values) into a cell of `field`'s type, validating it.
    pub fn from_json(field: &FieldSchema, v: &Json) -> Result<Cell> {
        let name = &field.name;
        let wrong = |what: &str| {
            Error::field(
                name.clone(),
                format!(
                    "expected {what} for a {} field, got {v}",
                    field.data_type.name()
                ),
            )
        };
        if v.is_null() {
            return Ok(Cell::Null);
        }
        let cell = match field.data_type {
            DataType::Bool => Cell::Bool(v.as_bool().ok_or_else(|| wrong("a boolean"))?),
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                Cell::Int(v.as_i64().ok_or_else(|| wrong("an integer"))?)
            }
            DataType::Float => Cell::Float(v.as_f64().ok_or_else(|| wrong("a number"))? as f32),
            DataType::Double => Cell::Double(v.as_f64().ok_or_else(|| wrong("a number"))?),
            DataType::VarChar => {
                Cell::Str(v.as_str().ok_or_else(|| wrong("a string"))?.to_string())
            }
            DataType::Json => Cell::Json(v.clone()),
            DataType::Array => {
                if !v.is_array() {
                    return Err(wrong("an array"));
                }
                Cell::Json(v.clone())
            }
            DataType::FloatVector
            | DataType::Float16Vector
            | DataType::BFloat16Vector
            | DataType::Int8Vector => {
                let arr = v.as_array().ok_or_else(|| wrong("an array of numbers"))?;
                let mut out = Vec::with_capacity(arr.len());
                for x in arr {
                    out.push(x.as_f64().ok_or_else(|| wrong("an array of numbers"))? as f32);
                }
                Cell::Vector(out)
            }
            DataType::BinaryVector => {
                let arr = v
                    .as_array()
                    .ok_or_else(|| wrong("an array of bytes (integers 0..255)"))?;
                let mut out = Vec::with_capacity(arr.len());
                for x in arr {
                    let b = x
                        .as_u64()
                        .and_then(|b| u8::try_from(b).ok())
                        .ok_or_else(|| wrong("an array of bytes (integers 0..255)"))?;
                    out.push(b);
                }
                Cell::Binary(out)
            }
            DataType::SparseFloatVector => sparse_from_json(name, v)?,
        };
        check_cell(field, &cell)?;
        Ok(cell)
    }

    /// The cell as JSON (for REST results and dynamic fields).
    pub fn to_json(&self) -> Json {
        match self {
            Cell::Null => Json::Null,
            Cell::Bool(b) => Json::Bool(*b),
            Cell::Int(i) => Json::from(*i),
            Cell::Float(f) => {
                serde_json::Number::from_f64(*f as f64).map_or(Json::Null, Json::Number)
            }
            Cell::Double(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
            Cell::Str(s) => Json::String(s.clone()),
            Cell::Json(j) => j.clone(),
            Cell::Vector(v) => Json::Array(
                v.iter()
                    .map(|f| {
                        serde_json::Number::from_f64(*f as f64).map_or(Json::Null, Json::Number)
                    })
                    .collect(),
            ),
            Cell::Binary(b) => Json::Array(b.iter().map(|&x| Json::from(x)).collect()),
            Cell::Sparse(i, v) => Json::Object(
                i.iter()
                    .zip(v)
                    .map(|(i, v)| {
                        let n = serde_json::Number::from_f64(*v as f64)
                            .map_or(Json::Null, Json::Number);
                        (i.to_string(), n)
                    })
                    .collect(),
            ),
        }
    }
}

/// A sparse vector from JSON, in the forms Milvus's REST API and pymilvus accept: an object of
/// `"index": value` pairs, a list of `[index, value]` pairs, or `{"indices": [..], "values": [..]}`.
fn sparse_from_json(name: &str, v: &Json) -> Result<Cell> {
    let wrong = || {
        Error::field(
            name,
            format!("expected a sparse vector ({{\"index\": value, ...}}), got {v}"),
        )
    };
    let index = |j: &Json| -> Result<u32> {
        let n = match j {
            Json::String(s) => s.trim().parse::<u64>().ok(),
            j => j.as_u64(),
        };
        n.and_then(|n| u32::try_from(n).ok()).ok_or_else(|| {
            Error::field(
                name,
                format!("sparse vector index {j} is not an integer in [0, 2^32-2]"),
            )
        })
    };
    let value = |j: &Json| -> Result<f32> {
        j.as_f64()
            .map(|x| x as f32)
            .ok_or_else(|| Error::field(name, format!("sparse vector value {j} is not a number")))
    };
    let mut pairs = Vec::new();
    match v {
        Json::Object(m) if m.contains_key("indices") && m.contains_key("values") => {
            let (Some(ix), Some(vs)) = (m["indices"].as_array(), m["values"].as_array()) else {
                return Err(wrong());
            };
            if ix.len() != vs.len() {
                return Err(wrong());
            }
            for (i, x) in ix.iter().zip(vs) {
                pairs.push((index(i)?, value(x)?));
            }
        }
        Json::Object(m) => {
            for (k, x) in m {
                pairs.push((index(&Json::String(k.clone()))?, value(x)?));
            }
        }
        Json::Array(items) => {
            for it in items {
                match it.as_array().map(|a| a.as_slice()) {
                    Some([i, x]) => pairs.push((index(i)?, value(x)?)),
                    _ => return Err(wrong()),
                }
            }
        }
        _ => return Err(wrong()),
    }
    sparse_from_pairs(name, pairs)
}

/// Check range, length, capacity and element types of one cell against its field.
pub fn check_cell(field: &FieldSchema, cell: &Cell) -> Result<()> {
    let name = &field.name;
    match (field.data_type, cell) {
        (_, Cell::Null) if !field.nullable && field.default_value.is_none() => {
            return Err(Error::field(
                name.clone(),
                "the field is not nullable but got null",
            ));
        }
        (_, Cell::Null) => {}
        (DataType::Int8, Cell::Int(i)) if i8::try_from(*i).is_err() => {
            return Err(Error::field(
                name.clone(),
                format!("value {i} is out of range for Int8"),
            ))
        }
        (DataType::Int16, Cell::Int(i)) if i16::try_from(*i).is_err() => {
            return Err(Error::field(
                name.clone(),
                format!("value {i} is out of range for Int16"),
            ))
        }
        (DataType::Int32, Cell::Int(i)) if i32::try_from(*i).is_err() => {
            return Err(Error::field(
                name.clone(),
                format!("value {i} is out of range for Int32"),
            ))
        }
        (DataType::VarChar, Cell::Str(s)) => check_varchar(field, s)?,
        (DataType::Array, Cell::Json(Json::Array(items))) => check_array(field, items)?,
        (
            t @ (DataType::FloatVector
            | DataType::Float16Vector
            | DataType::BFloat16Vector
            | DataType::Int8Vector),
            Cell::Vector(v),
        ) => {
            if v.len() != field.dim() {
                return Err(Error::DimMismatch {
                    field: name.clone(),
                    expected: field.dim(),
                    got: v.len(),
                });
            }
            check_finite(name, v)?;
            check_vector_range(name, t, v)?;
        }
        (DataType::SparseFloatVector, Cell::Sparse(i, v)) => check_sparse(name, i, v)?,
        (DataType::BinaryVector, Cell::Binary(b)) if b.len() * 8 != field.dim() => {
            return Err(Error::DimMismatch {
                field: name.clone(),
                expected: field.dim(),
                got: b.len() * 8,
            });
        }
        (t, Cell::Vector(_) | Cell::Binary(_) | Cell::Sparse(..)) if t.is_vector() => {
            return Err(Error::field(
                name.clone(),
                format!("wrong kind of vector for a {} field", t.name()),
            ))
        }
        _ => {}
    }
    Ok(())
}

/// VARCHAR length is counted in bytes, as Milvus does.
pub fn check_varchar(field: &FieldSchema, s: &str) -> Result<()> {
    let max = field.max_length();
    if s.len() > max {
        return Err(Error::field(
            field.name.clone(),
            format!(
                "the length ({}) of the string exceeds max_length ({max})",
                s.len()
            ),
        ));
    }
    Ok(())
}

/// Element type, capacity and element length of one ARRAY cell.
pub fn check_array(field: &FieldSchema, items: &[Json]) -> Result<()> {
    let cap = field.max_capacity();
    if items.len() > cap {
        return Err(Error::field(
            field.name.clone(),
            format!(
                "the array has {} elements, more than max_capacity ({cap})",
                items.len()
            ),
        ));
    }
    let elem = field.element_type.unwrap_or(DataType::Int64);
    for item in items {
        let ok = match elem {
            DataType::Bool => item.is_boolean(),
            DataType::Int8 => item.as_i64().is_some_and(|i| i8::try_from(i).is_ok()),
            DataType::Int16 => item.as_i64().is_some_and(|i| i16::try_from(i).is_ok()),
            DataType::Int32 => item.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
            DataType::Int64 => item.as_i64().is_some(),
            DataType::Float | DataType::Double => item.is_number(),
            DataType::VarChar => item.as_str().is_some_and(|s| s.len() <= field.max_length()),
            _ => false,
        };
        if !ok {
            return Err(Error::field(
                field.name.clone(),
                format!(
                    "array element {item} is not a valid {} (or is too long)",
                    elem.name()
                ),
            ));
        }
    }
    Ok(())
}

/// Elements must fit the declared type: FLOAT16 within +-65504 (larger values would become
/// infinity), INT8 whole numbers in [-128, 127]. BFLOAT16 has f32's range.
pub fn check_vector_range(field: &str, t: DataType, v: &[f32]) -> Result<()> {
    let bad = v.iter().position(|&x| match t {
        DataType::Float16Vector => x.abs() > 65504.0,
        DataType::Int8Vector => x.fract() != 0.0 || !(-128.0..=127.0).contains(&x),
        _ => false,
    });
    match bad {
        None => Ok(()),
        Some(pos) => Err(Error::field(
            field.to_string(),
            format!(
                "vector element {pos} is {}, out of range for {}",
                v[pos],
                t.name()
            ),
        )),
    }
}

/// NaN and infinity are refused in vectors: they poison distances.
pub fn check_finite(field: &str, v: &[f32]) -> Result<()> {
    if let Some(pos) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::field(
            field,
            format!(
                "vector element {pos} is {} (NaN and infinity are not allowed)",
                v[pos]
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nullable_push_and_gather() {
        let f = {
            let mut f = FieldSchema::new("n", DataType::Int32);
            f.nullable = true;
            f
        };
        let mut c = Column::new(ColumnData::Int32(vec![]));
        c.push_cell(Cell::Int(1));
        c.push_cell(Cell::Null);
        c.push_cell(Cell::Int(3));
        assert_eq!(c.len(), 3);
        assert!(c.is_null(1));
        let g = c.gather(&[2, 1]);
        assert_eq!(g.cell(0), Cell::Int(3));
        assert_eq!(g.cell(1), Cell::Null);
        assert!(Cell::from_json(&f, &json!(3_000_000_000i64)).is_err());
        assert_eq!(Cell::from_json(&f, &json!(null)).unwrap(), Cell::Null);
    }

    #[test]
    fn validation_names_the_field() {
        let f = FieldSchema::new("title", DataType::VarChar).with_param("max_length", 3);
        let e = Cell::from_json(&f, &json!("abcd")).unwrap_err().to_string();
        assert!(e.contains("title") && e.contains("max_length (3)"), "{e}");
        let v = FieldSchema::new("vec", DataType::FloatVector).with_param("dim", 2);
        let e = Cell::from_json(&v, &json!([1.0, 2.0, 3.0]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("dimension 3"), "{e}");
        let mut a = FieldSchema::new("tags", DataType::Array).with_param("max_capacity", 2);
        a.element_type = Some(DataType::Int8);
        assert!(Cell::from_json(&a, &json!([1, 2, 3])).is_err());
        assert!(Cell::from_json(&a, &json!([1, 300])).is_err());
        assert!(Cell::from_json(&a, &json!([1, 2])).is_ok());
    }

    #[test]
    fn sparse_cells_from_every_json_form() {
        let f = FieldSchema::new("sp", DataType::SparseFloatVector);
        let want = Cell::Sparse(vec![2, 10], vec![0.5, 1.5]);
        for v in [
            json!({"10": 1.5, "2": 0.5}),
            json!([[10, 1.5], [2, 0.5]]),
            json!({"indices": [2, 10], "values": [0.5, 1.5]}),
        ] {
            assert_eq!(Cell::from_json(&f, &v).unwrap(), want, "{v}");
        }
        assert_eq!(want.to_json(), json!({"2": 0.5, "10": 1.5}));
        assert_eq!(
            Cell::from_json(&f, &json!({})).unwrap(),
            Cell::Sparse(vec![], vec![])
        );
        for bad in [
            json!([[1, 0.5], [1, 0.7]]),
            json!({"x": 1.0}),
            json!({"4294967295": 1.0}),
            json!({"-1": 1.0}),
            json!([1.0, 2.0]),
            json!("text"),
        ] {
            let e = Cell::from_json(&f, &bad).unwrap_err().to_string();
            assert!(e.contains("sp"), "{bad}: {e}");
        }
        let mut col = Column::empty_for(&f);
        col.push_cell(want.clone());
        col.push_cell(Cell::Sparse(vec![7], vec![1.0]));
        assert_eq!(col.cell(0), want);
        let ColumnData::Sparse(sc) = &col.data else {
            panic!()
        };
        assert_eq!(sc.dim(), 11);
        assert_eq!(col.gather(&[1]).cell(0), Cell::Sparse(vec![7], vec![1.0]));
    }
}
