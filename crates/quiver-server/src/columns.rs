//! Columnar data between Milvus's `schema.FieldData` and the engine's [`Column`].
//!
//! Incoming (Insert/Upsert): every FieldData becomes one named column; the dynamic column
//! (`is_dynamic`, or the name `$meta`) is one JSON object per row. Nullable fields arrive with
//! `valid_data` (one flag per row) and their values either dense (one slot per row) or, as
//! pymilvus sends them, compact (values for the valid rows only); both are accepted and turned
//! into the engine's dense form (a zero placeholder under each NULL). Type and range checks are
//! the engine's job (`WriteBatch` normalisation); this module only refuses what cannot be
//! represented (undecodable JSON, ragged vectors, unsupported vector kinds).
//!
//! Outgoing (Query/Search): columns are dense with `valid_data` when the field is nullable, the
//! way pymilvus reads them; `$meta` is a JSON column with `is_dynamic = true`.

use quiver_core::{Cell, Column, ColumnData, DataType, Error, Result, VectorColumn, VectorData};
use quiver_engine::{OutColumn, Pk};
use serde_json::Value as Json;

use crate::proto::schema as pb;
use crate::proto::schema::field_data::Field;
use crate::proto::schema::scalar_field::Data as Sd;
use crate::proto::schema::vector_field::Data as Vd;

/// Name of the dynamic column.
pub const META: &str = "$meta";

fn parse_json(field: &str, bytes: &[u8]) -> Result<Json> {
    serde_json::from_slice(bytes).map_err(|e| Error::field(field, format!("invalid JSON: {e}")))
}

fn num(f: f64) -> Json {
    serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)
}

/// One ARRAY cell (a ScalarField holding the row's elements) as a JSON array.
fn array_cell(field: &str, s: &pb::ScalarField) -> Result<Json> {
    Ok(Json::Array(match &s.data {
        None => vec![],
        Some(Sd::BoolData(a)) => a.data.iter().map(|&b| Json::Bool(b)).collect(),
        Some(Sd::IntData(a)) => a.data.iter().map(|&i| Json::from(i)).collect(),
        Some(Sd::LongData(a)) => a.data.iter().map(|&i| Json::from(i)).collect(),
        Some(Sd::FloatData(a)) => a.data.iter().map(|&f| num(f as f64)).collect(),
        Some(Sd::DoubleData(a)) => a.data.iter().map(|&f| num(f)).collect(),
        Some(Sd::StringData(a)) => a.data.iter().map(|s| Json::String(s.clone())).collect(),
        Some(_) => {
            return Err(Error::field(field, "array elements must be scalars"));
        }
    }))
}

fn scalar_column(field: &str, s: &pb::ScalarField) -> Result<ColumnData> {
    Ok(match &s.data {
        None => return Err(Error::field(field, "the column carries no data")),
        Some(Sd::BoolData(a)) => ColumnData::Bool(a.data.clone()),
        Some(Sd::IntData(a)) => ColumnData::Int32(a.data.clone()),
        Some(Sd::LongData(a)) => ColumnData::Int64(a.data.clone()),
        Some(Sd::FloatData(a)) => ColumnData::Float(a.data.clone()),
        Some(Sd::DoubleData(a)) => ColumnData::Double(a.data.clone()),
        Some(Sd::StringData(a)) => ColumnData::VarChar(a.data.clone()),
        Some(Sd::JsonData(a)) => ColumnData::Json(
            a.data
                .iter()
                .map(|b| parse_json(field, b))
                .collect::<Result<_>>()?,
        ),
        Some(Sd::ArrayData(a)) => ColumnData::Array(
            a.data
                .iter()
                .map(|c| array_cell(field, c))
                .collect::<Result<_>>()?,
        ),
        Some(Sd::BytesData(_)) => {
            return Err(Error::Unsupported(format!("bytes data (field {field})")))
        }
    })
}

fn vector_column(field: &str, v: &pb::VectorField) -> Result<ColumnData> {
    match &v.data {
        Some(Vd::FloatVector(a)) => {
            let dim = usize::try_from(v.dim).unwrap_or(0);
            if dim == 0 || a.data.len() % dim != 0 {
                return Err(Error::field(
                    field,
                    format!(
                        "{} floats do not make whole vectors of dimension {}",
                        a.data.len(),
                        v.dim
                    ),
                ));
            }
            Ok(ColumnData::Vector(VectorColumn::f32(dim, a.data.clone())))
        }
        Some(Vd::Float16Vector(b)) | Some(Vd::Bfloat16Vector(b)) => {
            let dim = whole_rows(field, b.len(), v.dim, 2, "float16/bfloat16")?;
            let bits: Vec<u16> = b
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            let data = if matches!(v.data, Some(Vd::Float16Vector(_))) {
                VectorData::F16(bits)
            } else {
                VectorData::Bf16(bits)
            };
            Ok(ColumnData::Vector(VectorColumn { dim, data }))
        }
        Some(Vd::Int8Vector(b)) => {
            let dim = whole_rows(field, b.len(), v.dim, 1, "int8")?;
            let data = VectorData::I8(b.iter().map(|&x| x as i8).collect());
            Ok(ColumnData::Vector(VectorColumn { dim, data }))
        }
        Some(Vd::BinaryVector(b)) => {
            let dim = usize::try_from(v.dim).unwrap_or(0);
            if dim == 0 || !dim.is_multiple_of(8) || !b.len().is_multiple_of(dim / 8) {
                return Err(Error::field(
                    field,
                    format!(
                        "{} bytes do not make whole binary vectors of dimension {}",
                        b.len(),
                        v.dim
                    ),
                ));
            }
            let data = VectorData::Binary(b.to_vec());
            Ok(ColumnData::Vector(VectorColumn { dim, data }))
        }
        None => Err(Error::field(field, "the vector column carries no data")),
        Some(Vd::SparseFloatVector(a)) => {
            let mut sc = quiver_core::SparseColumn::default();
            for (r, row) in a.contents.iter().enumerate() {
                let (ix, vs) = sparse_row(field, row).map_err(|e| e.at_row(r))?;
                sc.push_row(&ix, &vs);
            }
            Ok(ColumnData::Sparse(sc))
        }
    }
}

/// One sparse row as Milvus encodes it: (u32 index, f32 value) pairs, little-endian, indices
/// strictly increasing.
pub fn sparse_row(field: &str, bytes: &[u8]) -> Result<(Vec<u32>, Vec<f32>)> {
    if !bytes.len().is_multiple_of(8) {
        return Err(Error::field(
            field,
            format!(
                "a sparse row is (u32 index, f32 value) pairs, but it has {} bytes",
                bytes.len()
            ),
        ));
    }
    let (mut ix, mut vs) = (Vec::new(), Vec::new());
    for c in bytes.chunks_exact(8) {
        ix.push(u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        vs.push(f32::from_le_bytes([c[4], c[5], c[6], c[7]]));
    }
    quiver_core::value::check_sparse(field, &ix, &vs)?;
    Ok((ix, vs))
}

/// A sparse row in Milvus's encoding (see [`sparse_row`]).
pub fn sparse_bytes(ix: &[u32], vs: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ix.len() * 8);
    for (i, v) in ix.iter().zip(vs) {
        out.extend_from_slice(&i.to_le_bytes());
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// The dimension of a byte-encoded vector column whose rows are `dim * width` bytes.
fn whole_rows(field: &str, bytes: usize, dim: i64, width: usize, what: &str) -> Result<usize> {
    let d = usize::try_from(dim).unwrap_or(0);
    if d == 0 || !bytes.is_multiple_of(d * width) {
        return Err(Error::field(
            field,
            format!("{bytes} bytes do not make whole {what} vectors of dimension {dim}"),
        ));
    }
    Ok(d)
}

/// Apply `valid_data` to a column that is dense (one slot per row) or compact (valid rows only).
fn with_validity(field: &str, data: ColumnData, valid: &[bool], rows: usize) -> Result<Column> {
    if valid.is_empty() {
        return Ok(Column::new(data));
    }
    if valid.len() != rows {
        return Err(Error::field(
            field,
            format!("valid_data has {} flags for {rows} rows", valid.len()),
        ));
    }
    if data.len() == rows {
        return Ok(Column {
            data,
            valid: Some(valid.to_vec()),
        });
    }
    let present = valid.iter().filter(|v| **v).count();
    if data.len() != present {
        return Err(Error::field(
            field,
            format!(
                "the column has {} values for {present} non-null rows",
                data.len()
            ),
        ));
    }
    let src = Column::new(data);
    let mut out = Column::new(src.data.empty_like());
    let mut next = 0;
    for &ok in valid {
        if ok {
            out.push_cell(src.cell(next));
            next += 1;
        } else {
            out.push_cell(Cell::Null);
        }
    }
    if out.valid.is_none() {
        out.valid = Some(valid.to_vec());
    }
    Ok(out)
}

/// Convert the FieldData columns of an insert into named engine columns. `name_of_id` resolves
/// a column that names its field only by id.
pub fn columns_from_proto(
    fields: &[pb::FieldData],
    rows: usize,
    name_of_id: impl Fn(i64) -> Option<String>,
) -> Result<Vec<(String, Column)>> {
    let mut out = Vec::with_capacity(fields.len());
    for fd in fields {
        let name = if fd.is_dynamic || fd.field_name == META {
            META.to_string()
        } else if fd.field_name.is_empty() {
            name_of_id(fd.field_id)
                .ok_or_else(|| Error::FieldNotFound(format!("with id {}", fd.field_id)))?
        } else {
            fd.field_name.clone()
        };
        let data = match &fd.field {
            Some(Field::Scalars(s)) => scalar_column(&name, s)?,
            Some(Field::Vectors(v)) => vector_column(&name, v)?,
            None => return Err(Error::field(name, "the column carries no data")),
        };
        out.push((
            name.clone(),
            with_validity(&name, data, &fd.valid_data, rows)?,
        ));
    }
    Ok(out)
}

/// The number of rows one column holds (validity length for nullable columns).
pub fn field_len(fd: &pb::FieldData) -> usize {
    if !fd.valid_data.is_empty() {
        return fd.valid_data.len();
    }
    match &fd.field {
        Some(Field::Scalars(s)) => scalar_len(s),
        Some(Field::Vectors(v)) => match &v.data {
            Some(Vd::FloatVector(a)) if v.dim > 0 => a.data.len() / v.dim as usize,
            Some(Vd::Float16Vector(b)) | Some(Vd::Bfloat16Vector(b)) if v.dim > 0 => {
                b.len() / (2 * v.dim as usize)
            }
            Some(Vd::Int8Vector(b)) if v.dim > 0 => b.len() / v.dim as usize,
            Some(Vd::BinaryVector(b)) if v.dim >= 8 => b.len() / (v.dim as usize / 8),
            Some(Vd::SparseFloatVector(a)) => a.contents.len(),
            _ => 0,
        },
        None => 0,
    }
}

/// The number of rows a set of columns holds (the request's `num_rows` when it is set).
pub fn row_count(fields: &[pb::FieldData], num_rows: u32) -> usize {
    if num_rows > 0 {
        return num_rows as usize;
    }
    fields.iter().map(field_len).max().unwrap_or(0)
}

fn scalar_len(s: &pb::ScalarField) -> usize {
    match &s.data {
        None => 0,
        Some(Sd::BoolData(a)) => a.data.len(),
        Some(Sd::IntData(a)) => a.data.len(),
        Some(Sd::LongData(a)) => a.data.len(),
        Some(Sd::FloatData(a)) => a.data.len(),
        Some(Sd::DoubleData(a)) => a.data.len(),
        Some(Sd::StringData(a)) => a.data.len(),
        Some(Sd::BytesData(a)) => a.data.len(),
        Some(Sd::ArrayData(a)) => a.data.len(),
        Some(Sd::JsonData(a)) => a.data.len(),
    }
}

fn json_bytes(v: &Json) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_else(|_| b"null".to_vec())
}

/// One JSON array cell as the ScalarField of its element type.
fn array_to_scalar(elem: DataType, v: &Json) -> pb::ScalarField {
    let items: &[Json] = v.as_array().map_or(&[], |a| a.as_slice());
    let data = match elem {
        DataType::Bool => Sd::BoolData(pb::BoolArray {
            data: items.iter().map(|x| x.as_bool().unwrap_or(false)).collect(),
        }),
        DataType::Int8 | DataType::Int16 | DataType::Int32 => Sd::IntData(pb::IntArray {
            data: items
                .iter()
                .map(|x| x.as_i64().unwrap_or(0) as i32)
                .collect(),
        }),
        DataType::Int64 => Sd::LongData(pb::LongArray {
            data: items.iter().map(|x| x.as_i64().unwrap_or(0)).collect(),
        }),
        DataType::Float => Sd::FloatData(pb::FloatArray {
            data: items
                .iter()
                .map(|x| x.as_f64().unwrap_or(0.0) as f32)
                .collect(),
        }),
        DataType::Double => Sd::DoubleData(pb::DoubleArray {
            data: items.iter().map(|x| x.as_f64().unwrap_or(0.0)).collect(),
        }),
        _ => Sd::StringData(pb::StringArray {
            data: items
                .iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                .collect(),
        }),
    };
    pb::ScalarField { data: Some(data) }
}

/// Convert a result column into FieldData.
pub fn column_to_proto(c: &OutColumn) -> pb::FieldData {
    let (dtype, field_id, elem) = match &c.field {
        Some(f) => (
            f.data_type.wire(),
            f.field_id,
            f.element_type.unwrap_or(DataType::Int64),
        ),
        None => (DataType::Json.wire(), 0, DataType::Int64),
    };
    let scalars = |d: Sd| Some(Field::Scalars(pb::ScalarField { data: Some(d) }));
    let field = match &c.column.data {
        ColumnData::Bool(v) => scalars(Sd::BoolData(pb::BoolArray { data: v.clone() })),
        ColumnData::Int8(v) => scalars(Sd::IntData(pb::IntArray {
            data: v.iter().map(|&x| x as i32).collect(),
        })),
        ColumnData::Int16(v) => scalars(Sd::IntData(pb::IntArray {
            data: v.iter().map(|&x| x as i32).collect(),
        })),
        ColumnData::Int32(v) => scalars(Sd::IntData(pb::IntArray { data: v.clone() })),
        ColumnData::Int64(v) => scalars(Sd::LongData(pb::LongArray { data: v.clone() })),
        ColumnData::Float(v) => scalars(Sd::FloatData(pb::FloatArray { data: v.clone() })),
        ColumnData::Double(v) => scalars(Sd::DoubleData(pb::DoubleArray { data: v.clone() })),
        ColumnData::VarChar(v) => scalars(Sd::StringData(pb::StringArray { data: v.clone() })),
        ColumnData::Json(v) => scalars(Sd::JsonData(pb::JsonArray {
            data: v.iter().map(json_bytes).collect(),
        })),
        ColumnData::Array(v) => scalars(Sd::ArrayData(pb::ArrayArray {
            data: v.iter().map(|cell| array_to_scalar(elem, cell)).collect(),
            element_type: elem.wire(),
        })),
        ColumnData::Vector(vc) => Some(Field::Vectors(pb::VectorField {
            dim: vc.dim as i64,
            data: Some(match &vc.data {
                VectorData::F32(d) => Vd::FloatVector(pb::FloatArray { data: d.clone() }),
                VectorData::F16(d) => {
                    Vd::Float16Vector(d.iter().flat_map(|x| x.to_le_bytes()).collect())
                }
                VectorData::Bf16(d) => {
                    Vd::Bfloat16Vector(d.iter().flat_map(|x| x.to_le_bytes()).collect())
                }
                VectorData::I8(d) => Vd::Int8Vector(d.iter().map(|&x| x as u8).collect()),
                VectorData::Binary(d) => Vd::BinaryVector(d.clone()),
            }),
        })),
        ColumnData::Sparse(sc) => Some(Field::Vectors(pb::VectorField {
            dim: sc.dim() as i64,
            data: Some(Vd::SparseFloatVector(pb::SparseFloatArray {
                contents: (0..sc.len())
                    .map(|r| {
                        let (ix, vs) = sc.row(r);
                        sparse_bytes(ix, vs)
                    })
                    .collect(),
                dim: sc.dim() as i64,
            })),
        })),
    };
    pb::FieldData {
        r#type: dtype,
        field_name: c.name.clone(),
        field,
        field_id,
        is_dynamic: c.is_dynamic(),
        valid_data: c.column.valid.clone().unwrap_or_default(),
    }
}

/// Primary keys as Milvus IDs (`varchar` picks `str_id` when the list is empty).
pub fn ids(pks: &[Pk], varchar: bool) -> pb::IDs {
    use crate::proto::schema::i_ds::IdField;
    let field = if varchar {
        IdField::StrId(pb::StringArray {
            data: pks
                .iter()
                .map(|p| match p {
                    Pk::Str(s) => s.clone(),
                    Pk::Int(i) => i.to_string(),
                })
                .collect(),
        })
    } else {
        IdField::IntId(pb::LongArray {
            data: pks
                .iter()
                .map(|p| match p {
                    Pk::Int(i) => *i,
                    Pk::Str(s) => s.parse().unwrap_or_default(),
                })
                .collect(),
        })
    };
    pb::IDs {
        id_field: Some(field),
    }
}

/// An Int64 column with one value (`count(*)`).
pub fn count_column(count: u64) -> pb::FieldData {
    pb::FieldData {
        r#type: DataType::Int64.wire(),
        field_name: "count(*)".into(),
        field: Some(Field::Scalars(pb::ScalarField {
            data: Some(Sd::LongData(pb::LongArray {
                data: vec![count as i64],
            })),
        })),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn longs(v: Vec<i64>) -> Option<Field> {
        Some(Field::Scalars(pb::ScalarField {
            data: Some(Sd::LongData(pb::LongArray { data: v })),
        }))
    }

    #[test]
    fn compact_nullable_columns_are_expanded() {
        let fd = pb::FieldData {
            field_name: "n".into(),
            field: longs(vec![7, 9]),
            valid_data: vec![true, false, true],
            ..Default::default()
        };
        let cols = columns_from_proto(&[fd], 3, |_| None).unwrap();
        let c = &cols[0].1;
        assert_eq!(c.len(), 3);
        assert_eq!(c.cell(0), Cell::Int(7));
        assert_eq!(c.cell(1), Cell::Null);
        assert_eq!(c.cell(2), Cell::Int(9));
    }

    #[test]
    fn dense_nullable_columns_are_kept() {
        let fd = pb::FieldData {
            field_name: "n".into(),
            field: longs(vec![7, 0, 9]),
            valid_data: vec![true, false, true],
            ..Default::default()
        };
        let cols = columns_from_proto(&[fd], 3, |_| None).unwrap();
        assert_eq!(cols[0].1.valid, Some(vec![true, false, true]));
        let bad = pb::FieldData {
            field_name: "n".into(),
            field: longs(vec![7]),
            valid_data: vec![true, false, true],
            ..Default::default()
        };
        assert!(columns_from_proto(&[bad], 3, |_| None).is_err());
    }

    #[test]
    fn dynamic_json_and_vectors_decode() {
        let meta = pb::FieldData {
            field_name: "$meta".into(),
            is_dynamic: true,
            field: Some(Field::Scalars(pb::ScalarField {
                data: Some(Sd::JsonData(pb::JsonArray {
                    data: vec![br#"{"a":1}"#.to_vec()],
                })),
            })),
            ..Default::default()
        };
        let vec = pb::FieldData {
            field_name: "v".into(),
            field: Some(Field::Vectors(pb::VectorField {
                dim: 2,
                data: Some(Vd::FloatVector(pb::FloatArray {
                    data: vec![1.0, 2.0],
                })),
            })),
            ..Default::default()
        };
        let cols = columns_from_proto(&[meta, vec], 1, |_| None).unwrap();
        assert_eq!(cols[0].0, "$meta");
        assert_eq!(cols[0].1.cell(0), Cell::Json(serde_json::json!({"a": 1})));
        assert_eq!(cols[1].1.cell(0), Cell::Vector(vec![1.0, 2.0]));
        let ragged = pb::FieldData {
            field_name: "v".into(),
            field: Some(Field::Vectors(pb::VectorField {
                dim: 2,
                data: Some(Vd::FloatVector(pb::FloatArray {
                    data: vec![1.0, 2.0, 3.0],
                })),
            })),
            ..Default::default()
        };
        assert!(columns_from_proto(&[ragged], 1, |_| None).is_err());
    }

    #[test]
    fn arrays_round_trip() {
        let mut f =
            quiver_core::FieldSchema::new("tags", DataType::Array).with_param("max_capacity", 4);
        f.element_type = Some(DataType::VarChar);
        let col = OutColumn {
            name: "tags".into(),
            field: Some(f),
            column: Column::new(ColumnData::Array(vec![serde_json::json!(["a", "b"])])),
        };
        let fd = column_to_proto(&col);
        let back = columns_from_proto(&[fd], 1, |_| None).unwrap();
        assert_eq!(back[0].1.cell(0), Cell::Json(serde_json::json!(["a", "b"])));
    }
}
