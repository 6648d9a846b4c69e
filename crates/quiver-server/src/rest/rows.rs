//! JSON rows <-> Milvus columnar `FieldData`, and the other JSON <-> protobuf conversions the
//! REST endpoints need (query vectors, filter template values, primary-key filters).
//!
//! Incoming rows (insert/upsert) become one `FieldData` per schema field that at least one row
//! mentions, exactly as pymilvus would build them: dense values plus `valid_data` where a row
//! has no value or `null` (the engine then applies the field's default, or refuses the NULL),
//! and one `$meta` JSON column (`is_dynamic`) with the keys outside the schema. Fields no row
//! mentions are left out, so the engine's defaults / "missing field" errors apply unchanged.
//! Each value is checked against its field type here (integers in range, vectors of the
//! schema's dimension) because a ragged vector cannot be represented in a flattened column;
//! everything else (lengths, capacities, nullability) stays the engine's job. Errors are
//! engine errors, so they map to the same Milvus codes as over gRPC (1100).
//!
//! Outgoing rows follow Milvus's REST `buildQueryResp`: one object per row with every returned
//! column by name; the `$meta` object's keys are spread into the row; Int64 values (and ids)
//! are strings unless int64 is allowed; JSON fields are returned as their JSON text, as Milvus
//! does; NULLs are `null`; floats are printed at their f32 precision.

use std::collections::HashMap;

use prost::Message;
use quiver_core::{Error, Result};
use serde_json::{Map, Number, Value as Json};

use crate::proto::common::{PlaceholderGroup, PlaceholderType, PlaceholderValue};
use crate::proto::schema::field_data::Field;
use crate::proto::schema::i_ds::IdField;
use crate::proto::schema::scalar_field::Data as Sd;
use crate::proto::schema::template_array_value::Data as Ta;
use crate::proto::schema::template_value::Val;
use crate::proto::schema::vector_field::Data as Vd;
use crate::proto::schema::{self as pb, DataType as Dt};

const META: &str = "$meta";

fn dtype(n: i32) -> Dt {
    Dt::try_from(n).unwrap_or(Dt::None)
}

/// A field's integer type parameter (`dim`, `max_length`, ...).
pub fn type_param(f: &pb::FieldSchema, key: &str) -> Option<i64> {
    f.type_params
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.trim().parse().ok())
}

fn int(field: &str, v: &Json) -> Result<i64> {
    match v {
        Json::Number(n) => n.as_i64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| Error::field(field, format!("expected an integer, got {v}")))
}

fn float(field: &str, v: &Json) -> Result<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| Error::field(field, format!("expected a number, got {v}")))
}

fn boolean(field: &str, v: &Json) -> Result<bool> {
    v.as_bool()
        .ok_or_else(|| Error::field(field, format!("expected a boolean, got {v}")))
}

fn string(field: &str, v: &Json) -> Result<String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| Error::field(field, format!("expected a string, got {v}")))
}

fn bounded(field: &str, v: &Json, lo: i64, hi: i64) -> Result<i32> {
    let i = int(field, v)?;
    if i < lo || i > hi {
        return Err(Error::field(
            field,
            format!("{i} is out of range [{lo}, {hi}]"),
        ));
    }
    Ok(i as i32)
}

fn int_bounds(t: Dt) -> (i64, i64) {
    match t {
        Dt::Int8 => (i8::MIN as i64, i8::MAX as i64),
        Dt::Int16 => (i16::MIN as i64, i16::MAX as i64),
        _ => (i32::MIN as i64, i32::MAX as i64),
    }
}

/// One ARRAY cell as the ScalarField of its element type.
fn array_cell(field: &str, elem: Dt, v: &Json) -> Result<pb::ScalarField> {
    let items = v
        .as_array()
        .ok_or_else(|| Error::field(field, format!("expected an array, got {v}")))?;
    let data = match elem {
        Dt::Bool => Sd::BoolData(pb::BoolArray {
            data: items
                .iter()
                .map(|x| boolean(field, x))
                .collect::<Result<_>>()?,
        }),
        Dt::Int8 | Dt::Int16 | Dt::Int32 => {
            let (lo, hi) = int_bounds(elem);
            Sd::IntData(pb::IntArray {
                data: items
                    .iter()
                    .map(|x| bounded(field, x, lo, hi))
                    .collect::<Result<_>>()?,
            })
        }
        Dt::Int64 => Sd::LongData(pb::LongArray {
            data: items.iter().map(|x| int(field, x)).collect::<Result<_>>()?,
        }),
        Dt::Float => Sd::FloatData(pb::FloatArray {
            data: items
                .iter()
                .map(|x| float(field, x).map(|f| f as f32))
                .collect::<Result<_>>()?,
        }),
        Dt::Double => Sd::DoubleData(pb::DoubleArray {
            data: items
                .iter()
                .map(|x| float(field, x))
                .collect::<Result<_>>()?,
        }),
        Dt::VarChar | Dt::String => Sd::StringData(pb::StringArray {
            data: items
                .iter()
                .map(|x| string(field, x))
                .collect::<Result<_>>()?,
        }),
        other => {
            return Err(Error::Unsupported(format!(
                "array field {field} with {} elements",
                other.as_str_name()
            )))
        }
    };
    Ok(pb::ScalarField { data: Some(data) })
}

/// The column of one schema field over `rows` (`None` when no row mentions it).
fn field_column(f: &pb::FieldSchema, rows: &[&Map<String, Json>]) -> Result<Option<pb::FieldData>> {
    if !rows.iter().any(|r| r.contains_key(&f.name)) {
        return Ok(None);
    }
    let t = dtype(f.data_type);
    let name = f.name.as_str();
    let values: Vec<Option<&Json>> = rows
        .iter()
        .map(|r| r.get(name).filter(|v| !v.is_null()))
        .collect();
    let valid: Vec<bool> = values.iter().map(Option::is_some).collect();
    // Under a NULL goes the type's zero value (dense columns, as pymilvus sends them).
    let scalars = |d: Sd| Some(Field::Scalars(pb::ScalarField { data: Some(d) }));
    let field = match t {
        Dt::Bool => scalars(Sd::BoolData(pb::BoolArray {
            data: values
                .iter()
                .map(|v| v.map_or(Ok(false), |v| boolean(name, v)))
                .collect::<Result<_>>()?,
        })),
        Dt::Int8 | Dt::Int16 | Dt::Int32 => {
            let (lo, hi) = int_bounds(t);
            scalars(Sd::IntData(pb::IntArray {
                data: values
                    .iter()
                    .map(|v| v.map_or(Ok(0), |v| bounded(name, v, lo, hi)))
                    .collect::<Result<_>>()?,
            }))
        }
        Dt::Int64 => scalars(Sd::LongData(pb::LongArray {
            data: values
                .iter()
                .map(|v| v.map_or(Ok(0), |v| int(name, v)))
                .collect::<Result<_>>()?,
        })),
        Dt::Float => scalars(Sd::FloatData(pb::FloatArray {
            data: values
                .iter()
                .map(|v| v.map_or(Ok(0.0), |v| float(name, v).map(|f| f as f32)))
                .collect::<Result<_>>()?,
        })),
        Dt::Double => scalars(Sd::DoubleData(pb::DoubleArray {
            data: values
                .iter()
                .map(|v| v.map_or(Ok(0.0), |v| float(name, v)))
                .collect::<Result<_>>()?,
        })),
        Dt::VarChar | Dt::String => scalars(Sd::StringData(pb::StringArray {
            data: values
                .iter()
                .map(|v| v.map_or(Ok(String::new()), |v| string(name, v)))
                .collect::<Result<_>>()?,
        })),
        Dt::Json => scalars(Sd::JsonData(pb::JsonArray {
            data: values
                .iter()
                .map(|v| serde_json::to_vec(v.unwrap_or(&Json::Null)).unwrap_or_default())
                .collect(),
        })),
        Dt::Array => {
            let elem = dtype(f.element_type);
            scalars(Sd::ArrayData(pb::ArrayArray {
                data: values
                    .iter()
                    .map(|v| match v {
                        Some(v) => array_cell(name, elem, v),
                        None => Ok(pb::ScalarField::default()),
                    })
                    .collect::<Result<_>>()?,
                element_type: f.element_type,
            }))
        }
        Dt::FloatVector => {
            let dim = type_param(f, "dim").unwrap_or(0).max(0) as usize;
            let mut flat = Vec::with_capacity(dim * rows.len());
            for (i, v) in values.iter().enumerate() {
                let Some(v) = v else {
                    return Err(Error::field(name, format!("row {i} has no vector")));
                };
                let arr = v.as_array().ok_or_else(|| {
                    Error::field(name, format!("expected an array of numbers, got {v}"))
                })?;
                if arr.len() != dim {
                    return Err(Error::DimMismatch {
                        field: name.to_string(),
                        expected: dim,
                        got: arr.len(),
                    });
                }
                for x in arr {
                    flat.push(float(name, x)? as f32);
                }
            }
            Some(Field::Vectors(pb::VectorField {
                dim: dim as i64,
                data: Some(Vd::FloatVector(pb::FloatArray { data: flat })),
            }))
        }
        Dt::SparseFloatVector => {
            let mut contents = Vec::with_capacity(rows.len());
            for (i, v) in values.iter().enumerate() {
                let Some(v) = v else {
                    return Err(Error::field(name, format!("row {i} has no vector")));
                };
                contents.push(sparse_json(name, v)?);
            }
            Some(Field::Vectors(pb::VectorField {
                dim: 0,
                data: Some(Vd::SparseFloatVector(pb::SparseFloatArray {
                    contents,
                    dim: 0,
                })),
            }))
        }
        other => {
            return Err(Error::Unsupported(format!(
                "REST insert into field {name} of type {}",
                other.as_str_name()
            )))
        }
    };
    Ok(Some(pb::FieldData {
        r#type: f.data_type,
        field_name: f.name.clone(),
        field,
        field_id: f.field_id,
        is_dynamic: false,
        valid_data: if valid.iter().all(|v| *v) {
            vec![]
        } else {
            valid
        },
    }))
}

/// A sparse vector given as JSON (`{"index": value}`, `[[index, value], ..]` or
/// `{"indices": [..], "values": [..]}`) in Milvus's row encoding.
fn sparse_json(name: &str, v: &Json) -> Result<Vec<u8>> {
    let f = quiver_core::FieldSchema::new(name, quiver_core::DataType::SparseFloatVector);
    match quiver_core::Cell::from_json(&f, v)? {
        quiver_core::Cell::Sparse(ix, vs) => Ok(crate::columns::sparse_bytes(&ix, &vs)),
        _ => Err(Error::field(
            name,
            format!("expected a sparse vector, got {v}"),
        )),
    }
}

/// Convert insert/upsert rows into the columns of an InsertRequest / UpsertRequest.
pub fn rows_to_columns(schema: &pb::CollectionSchema, rows: &[Json]) -> Result<Vec<pb::FieldData>> {
    let objects: Vec<&Map<String, Json>> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.as_object()
                .ok_or_else(|| Error::InvalidArgument(format!("row {i} is not a JSON object")))
        })
        .collect::<Result<_>>()?;
    let fields: Vec<&pb::FieldSchema> = schema.fields.iter().filter(|f| !f.is_dynamic).collect();
    let mut out = Vec::with_capacity(fields.len() + 1);
    for f in &fields {
        if let Some(c) = field_column(f, &objects)? {
            out.push(c);
        }
    }
    let mut meta = Vec::with_capacity(objects.len());
    for row in &objects {
        let mut extra = Map::new();
        for (k, v) in row.iter() {
            if fields.iter().any(|f| &f.name == k) {
                continue;
            }
            if !schema.enable_dynamic_field {
                return Err(Error::FieldNotFound(format!(
                    "{k} (the collection has no dynamic field, so unknown keys are refused)"
                )));
            }
            extra.insert(k.clone(), v.clone());
        }
        meta.push(serde_json::to_vec(&Json::Object(extra)).unwrap_or_default());
    }
    if schema.enable_dynamic_field {
        out.push(pb::FieldData {
            r#type: Dt::Json as i32,
            field_name: META.into(),
            field: Some(Field::Scalars(pb::ScalarField {
                data: Some(Sd::JsonData(pb::JsonArray { data: meta })),
            })),
            is_dynamic: true,
            ..Default::default()
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------- results

/// An f32 as the shortest JSON number that reads back as the same f32.
pub fn f32_json(x: f32) -> Json {
    format!("{x}")
        .parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map_or(Json::Null, Json::Number)
}

fn i64_json(x: i64, int64: bool) -> Json {
    if int64 {
        Json::from(x)
    } else {
        Json::String(x.to_string())
    }
}

/// Primary keys as JSON (int64 as strings unless `int64`).
pub fn ids_json(ids: Option<&pb::IDs>, int64: bool) -> Vec<Json> {
    match ids.and_then(|i| i.id_field.as_ref()) {
        Some(IdField::IntId(a)) => a.data.iter().map(|&x| i64_json(x, int64)).collect(),
        Some(IdField::StrId(a)) => a.data.iter().map(|s| Json::String(s.clone())).collect(),
        None => vec![],
    }
}

fn scalar_values(s: &pb::ScalarField, int64: bool) -> Vec<Json> {
    match &s.data {
        None => vec![],
        Some(Sd::BoolData(a)) => a.data.iter().map(|&b| Json::Bool(b)).collect(),
        Some(Sd::IntData(a)) => a.data.iter().map(|&i| Json::from(i)).collect(),
        Some(Sd::LongData(a)) => a.data.iter().map(|&i| i64_json(i, int64)).collect(),
        Some(Sd::FloatData(a)) => a.data.iter().map(|&f| f32_json(f)).collect(),
        Some(Sd::DoubleData(a)) => a
            .data
            .iter()
            .map(|&f| Number::from_f64(f).map_or(Json::Null, Json::Number))
            .collect(),
        Some(Sd::StringData(a)) => a.data.iter().map(|s| Json::String(s.clone())).collect(),
        Some(Sd::JsonData(a)) => a
            .data
            .iter()
            .map(|b| Json::String(String::from_utf8_lossy(b).into_owned()))
            .collect(),
        // Array elements keep their JSON types (Milvus returns Int64 elements as numbers).
        Some(Sd::ArrayData(a)) => a
            .data
            .iter()
            .map(|cell| Json::Array(scalar_values(cell, true)))
            .collect(),
        Some(Sd::BytesData(a)) => a
            .data
            .iter()
            .map(|b| Json::Array(b.iter().map(|&x| Json::from(x)).collect()))
            .collect(),
    }
}

/// The values of one result column (one per row, before NULLs are applied).
fn column_values(fd: &pb::FieldData, int64: bool) -> Result<Vec<Json>> {
    Ok(match &fd.field {
        None => vec![],
        Some(Field::Scalars(s)) => scalar_values(s, int64),
        Some(Field::Vectors(v)) => match &v.data {
            Some(Vd::FloatVector(a)) if v.dim > 0 => a
                .data
                .chunks(v.dim as usize)
                .map(|c| Json::Array(c.iter().map(|&f| f32_json(f)).collect()))
                .collect(),
            Some(Vd::SparseFloatVector(a)) => a
                .contents
                .iter()
                .map(|b| {
                    let (ix, vs) = crate::columns::sparse_row(&fd.field_name, b)?;
                    Ok(quiver_core::Cell::Sparse(ix, vs).to_json())
                })
                .collect::<Result<_>>()?,
            _ => {
                return Err(Error::Unsupported(format!(
                    "returning vector field {} over REST (only FloatVector and SparseFloatVector)",
                    fd.field_name
                )))
            }
        },
    })
}

/// Result columns as `n` JSON row objects (Milvus's REST result shape).
pub fn result_rows(
    fields: &[pb::FieldData],
    n: usize,
    int64: bool,
) -> Result<Vec<Map<String, Json>>> {
    let mut rows = vec![Map::new(); n];
    for fd in fields {
        let dynamic = fd.is_dynamic || fd.field_name == META;
        if dynamic {
            let Some(Field::Scalars(pb::ScalarField {
                data: Some(Sd::JsonData(a)),
            })) = &fd.field
            else {
                continue;
            };
            for (row, bytes) in rows.iter_mut().zip(&a.data) {
                if let Ok(Json::Object(m)) = serde_json::from_slice::<Json>(bytes) {
                    for (k, v) in m {
                        row.entry(k).or_insert(v);
                    }
                }
            }
            continue;
        }
        let values = column_values(fd, int64)?;
        if values.len() < n {
            return Err(Error::Internal(format!(
                "result column {} has {} values for {n} rows",
                fd.field_name,
                values.len()
            )));
        }
        for (i, (row, v)) in rows.iter_mut().zip(values).enumerate() {
            let null = fd.valid_data.get(i).is_some_and(|ok| !ok);
            row.insert(fd.field_name.clone(), if null { Json::Null } else { v });
        }
    }
    Ok(rows)
}

// ---------------------------------------------------------------- requests

/// Search data as a serialized PlaceholderGroup: float vectors (`data: [[f32, ...], ...]`,
/// FloatVector), sparse vectors (`data: [{"index": value, ...}, ...]`, SparseFloatVector) or
/// query texts for a function's output field (`data: ["text", ...]`, VarChar).
pub fn placeholder_group(data: Option<&Json>) -> Result<Vec<u8>> {
    let bad = || {
        Error::InvalidArgument(
            "data must be a list of float vectors, of sparse vectors ({\"index\": value}) or of \
             query texts"
                .into(),
        )
    };
    let vectors = data.and_then(Json::as_array).ok_or_else(bad)?;
    if vectors.is_empty() {
        return Err(Error::InvalidArgument("data has no query vector".into()));
    }
    if vectors[0].is_object() {
        let values = vectors
            .iter()
            .map(|v| sparse_json("data", v))
            .collect::<Result<Vec<_>>>()?;
        return Ok(PlaceholderGroup {
            placeholders: vec![PlaceholderValue {
                tag: "$0".into(),
                r#type: PlaceholderType::SparseFloatVector as i32,
                values,
            }],
        }
        .encode_to_vec());
    }
    let text = vectors[0].is_string();
    let mut values = Vec::with_capacity(vectors.len());
    for v in vectors {
        if text {
            values.push(v.as_str().ok_or_else(bad)?.as_bytes().to_vec());
            continue;
        }
        let arr = v.as_array().ok_or_else(bad)?;
        let mut bytes = Vec::with_capacity(arr.len() * 4);
        for x in arr {
            let f = x.as_f64().ok_or_else(bad)? as f32;
            bytes.extend_from_slice(&f.to_le_bytes());
        }
        values.push(bytes);
    }
    let t = if text {
        PlaceholderType::VarChar
    } else {
        PlaceholderType::FloatVector
    };
    Ok(PlaceholderGroup {
        placeholders: vec![PlaceholderValue {
            tag: "$0".into(),
            r#type: t as i32,
            values,
        }],
    }
    .encode_to_vec())
}

fn template_array(items: &[Json]) -> Result<pb::TemplateArrayValue> {
    let data = if items.iter().all(Json::is_boolean) {
        Ta::BoolData(pb::BoolArray {
            data: items.iter().filter_map(Json::as_bool).collect(),
        })
    } else if items.iter().all(|x| x.as_i64().is_some()) {
        Ta::LongData(pb::LongArray {
            data: items.iter().filter_map(Json::as_i64).collect(),
        })
    } else if items.iter().all(Json::is_number) {
        Ta::DoubleData(pb::DoubleArray {
            data: items.iter().filter_map(Json::as_f64).collect(),
        })
    } else if items.iter().all(Json::is_string) {
        Ta::StringData(pb::StringArray {
            data: items
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
        })
    } else if items.iter().all(Json::is_array) {
        Ta::ArrayData(pb::TemplateArrayValueArray {
            data: items
                .iter()
                .map(|x| template_array(x.as_array().map_or(&[], Vec::as_slice)))
                .collect::<Result<_>>()?,
        })
    } else {
        Ta::JsonData(pb::JsonArray {
            data: items
                .iter()
                .map(|x| serde_json::to_vec(x).unwrap_or_default())
                .collect(),
        })
    };
    Ok(pb::TemplateArrayValue { data: Some(data) })
}

/// `exprParams` (filter template values) as the gRPC `expr_template_values` map.
pub fn template_values(params: &Map<String, Json>) -> Result<HashMap<String, pb::TemplateValue>> {
    params
        .iter()
        .map(|(k, v)| {
            let val = match v {
                Json::Bool(b) => Val::BoolVal(*b),
                Json::Number(n) => match n.as_i64() {
                    Some(i) => Val::Int64Val(i),
                    None => Val::FloatVal(n.as_f64().unwrap_or_default()),
                },
                Json::String(s) => Val::StringVal(s.clone()),
                Json::Array(a) => Val::ArrayVal(template_array(a)?),
                Json::Null | Json::Object(_) => {
                    return Err(Error::InvalidArgument(format!(
                        "exprParams.{k} must be a boolean, number, string or array"
                    )))
                }
            };
            Ok((k.clone(), pb::TemplateValue { val: Some(val) }))
        })
        .collect()
}

/// The filter `pk in [...]` for the ids of a get/delete (`id` is one key or a list of keys).
/// `Err` carries a message for Milvus's 1806 ("check the primary key").
pub fn pk_filter(schema: &pb::CollectionSchema, id: &Json) -> std::result::Result<String, String> {
    let pk = schema
        .fields
        .iter()
        .find(|f| f.is_primary_key)
        .ok_or("the collection has no primary key")?;
    let one = std::slice::from_ref(id);
    let ids = id.as_array().map_or(one, Vec::as_slice);
    let varchar = matches!(dtype(pk.data_type), Dt::VarChar | Dt::String);
    let mut lits = Vec::with_capacity(ids.len());
    for v in ids {
        if varchar {
            let s = v
                .as_str()
                .ok_or_else(|| format!("{} is a VarChar key, got {v}", pk.name))?;
            lits.push(Json::String(s.into()).to_string());
        } else {
            let i =
                int(&pk.name, v).map_err(|_| format!("{} is an Int64 key, got {v}", pk.name))?;
            lits.push(i.to_string());
        }
    }
    Ok(format!("{} in [{}]", pk.name, lits.join(",")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::common::KeyValuePair;
    use serde_json::json;

    fn schema() -> pb::CollectionSchema {
        let f = |name: &str, t: Dt, params: &[(&str, &str)]| pb::FieldSchema {
            name: name.into(),
            data_type: t as i32,
            type_params: params
                .iter()
                .map(|(k, v)| KeyValuePair {
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect(),
            ..Default::default()
        };
        let mut id = f("id", Dt::Int64, &[]);
        id.is_primary_key = true;
        let mut tags = f("tags", Dt::Array, &[("max_capacity", "4")]);
        tags.element_type = Dt::Int64 as i32;
        pb::CollectionSchema {
            fields: vec![
                id,
                f("v", Dt::FloatVector, &[("dim", "2")]),
                f("n", Dt::Int8, &[]),
                tags,
            ],
            enable_dynamic_field: true,
            ..Default::default()
        }
    }

    #[test]
    fn rows_become_columns_and_back() {
        let rows = [
            json!({"id": 1, "v": [0.5, 1.0], "n": 3, "tags": [1, 2], "color": "red"}),
            json!({"id": "2", "v": [0.1, 0.2], "n": null}),
        ];
        let cols = rows_to_columns(&schema(), &rows).unwrap();
        assert_eq!(cols.len(), 5);
        assert_eq!(cols[2].valid_data, vec![true, false]);
        assert!(cols[4].is_dynamic);
        let back = result_rows(&cols, 2, false).unwrap();
        assert_eq!(back[0]["id"], json!("1"));
        assert_eq!(back[1]["id"], json!("2"));
        assert_eq!(back[0]["v"], json!([0.5, 1.0]));
        assert_eq!(back[1]["v"], json!([0.1, 0.2]));
        assert_eq!(back[1]["n"], Json::Null);
        assert_eq!(back[0]["tags"], json!([1, 2]));
        assert_eq!(back[1]["tags"], Json::Null);
        assert_eq!(back[0]["color"], json!("red"));
        assert_eq!(result_rows(&cols, 2, true).unwrap()[0]["id"], json!(1));
    }

    #[test]
    fn bad_rows_are_refused() {
        let s = schema();
        let dim = rows_to_columns(&s, &[json!({"id": 1, "v": [1.0]})]).unwrap_err();
        assert!(matches!(
            dim,
            Error::DimMismatch {
                expected: 2,
                got: 1,
                ..
            }
        ));
        assert!(rows_to_columns(&s, &[json!({"id": 1, "v": [1, 2], "n": 300})]).is_err());
        assert!(rows_to_columns(&s, &[json!({"id": "x", "v": [1, 2]})]).is_err());
        assert!(rows_to_columns(&s, &[json!([1])]).is_err());
        let mut closed = s.clone();
        closed.enable_dynamic_field = false;
        assert!(rows_to_columns(&closed, &[json!({"id": 1, "v": [1, 2], "x": 1})]).is_err());
    }

    #[test]
    fn filters_templates_and_vectors() {
        let s = schema();
        assert_eq!(pk_filter(&s, &json!([1, "2"])).unwrap(), "id in [1,2]");
        assert_eq!(pk_filter(&s, &json!(7)).unwrap(), "id in [7]");
        assert!(pk_filter(&s, &json!("x")).is_err());
        let mut vs = s.clone();
        vs.fields[0].data_type = Dt::VarChar as i32;
        assert_eq!(
            pk_filter(&vs, &json!(["a\"b", "c"])).unwrap(),
            r#"id in ["a\"b","c"]"#
        );
        let t = template_values(json!({"a": [1, 2], "b": "x"}).as_object().unwrap()).unwrap();
        assert_eq!(
            crate::params::template_values(&t).unwrap()["a"],
            json!([1, 2])
        );
        let g = placeholder_group(Some(&json!([[1.0, 2.0], [3.0, 4.0]]))).unwrap();
        assert_eq!(
            crate::params::query_vectors(&g).unwrap(),
            crate::params::QueryVectors::F32(vec![vec![1.0, 2.0], vec![3.0, 4.0]])
        );
        assert!(placeholder_group(Some(&json!([1.0, 2.0]))).is_err());
        let t = placeholder_group(Some(&json!(["a query"]))).unwrap();
        assert_eq!(
            crate::params::query_vectors(&t).unwrap(),
            crate::params::QueryVectors::Text(vec!["a query".into()])
        );
        assert!(placeholder_group(Some(&json!(["a", [1.0]]))).is_err());
        assert_eq!(f32_json(0.1), json!(0.1));
    }
}
