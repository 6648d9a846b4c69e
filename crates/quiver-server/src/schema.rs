//! Collection schemas between Milvus's `schema.CollectionSchema` and the engine's
//! [`quiver_core::CollectionSchema`].
//!
//! Incoming (CreateCollection): data types are checked against the wire numbers Quiver knows,
//! type params are kept verbatim, `default_value` becomes JSON, and any `is_dynamic` field a
//! client sends (the hidden `$meta`) is dropped in favour of `enable_dynamic_field`.
//! Outgoing (DescribeCollection): the schema is echoed exactly as stored: field ids, type params
//! (`dim`, `max_length`, `max_capacity`, ...), element type, nullable, default value, primary key
//! and auto id. The dynamic `$meta` field is not listed, as Milvus's proxy does not list it:
//! pymilvus builds insert columns from this schema, so it must be exact.

use std::collections::BTreeMap;

use quiver_core::schema::FunctionSchema;
use quiver_core::{CollectionSchema, DataType, Error, FieldSchema, Result};
use serde_json::Value as Json;

use crate::proto::common::KeyValuePair;
use crate::proto::schema as pb;
use crate::proto::schema::value_field::Data as Vf;

/// Key/value pairs into a map (later keys win).
pub fn kv_map(kvs: &[KeyValuePair]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect()
}

/// A map into key/value pairs.
pub fn kv_list<'a>(m: impl IntoIterator<Item = (&'a String, &'a String)>) -> Vec<KeyValuePair> {
    m.into_iter()
        .map(|(k, v)| KeyValuePair {
            key: k.clone(),
            value: v.clone(),
        })
        .collect()
}

fn data_type(n: i32, field: &str) -> Result<DataType> {
    DataType::from_wire(n).ok_or_else(|| {
        Error::InvalidSchema(format!("field {field}: data type {n} is not supported"))
    })
}

fn default_to_json(v: &pb::ValueField) -> Result<Option<Json>> {
    Ok(match &v.data {
        None => None,
        Some(Vf::BoolData(b)) => Some(Json::Bool(*b)),
        Some(Vf::IntData(i)) => Some(Json::from(*i)),
        Some(Vf::LongData(i)) => Some(Json::from(*i)),
        Some(Vf::FloatData(f)) => serde_json::Number::from_f64(*f as f64).map(Json::Number),
        Some(Vf::DoubleData(f)) => serde_json::Number::from_f64(*f).map(Json::Number),
        Some(Vf::StringData(s)) => Some(Json::String(s.clone())),
        Some(Vf::BytesData(b)) => {
            Some(serde_json::from_slice(b).map_err(|e| {
                Error::InvalidSchema(format!("default value is not valid JSON: {e}"))
            })?)
        }
    })
}

fn default_from_json(t: DataType, v: &Json) -> Option<pb::ValueField> {
    let data = match t {
        DataType::Bool => Vf::BoolData(v.as_bool()?),
        DataType::Int8 | DataType::Int16 | DataType::Int32 => Vf::IntData(v.as_i64()? as i32),
        DataType::Int64 => Vf::LongData(v.as_i64()?),
        DataType::Float => Vf::FloatData(v.as_f64()? as f32),
        DataType::Double => Vf::DoubleData(v.as_f64()?),
        DataType::VarChar => Vf::StringData(v.as_str()?.to_string()),
        _ => Vf::BytesData(serde_json::to_vec(v).ok()?),
    };
    Some(pb::ValueField { data: Some(data) })
}

/// Convert one wire field into an engine field.
pub fn field_from_proto(f: &pb::FieldSchema) -> Result<FieldSchema> {
    let dt = data_type(f.data_type, &f.name)?;
    let element_type = if dt == DataType::Array {
        Some(data_type(f.element_type, &f.name)?)
    } else {
        None
    };
    Ok(FieldSchema {
        field_id: f.field_id,
        name: f.name.clone(),
        description: f.description.clone(),
        data_type: dt,
        is_primary_key: f.is_primary_key,
        auto_id: f.auto_id,
        nullable: f.nullable,
        default_value: f
            .default_value
            .as_ref()
            .map(default_to_json)
            .transpose()?
            .flatten(),
        element_type,
        is_partition_key: f.is_partition_key,
        is_clustering_key: f.is_clustering_key,
        type_params: kv_map(&f.type_params),
    })
}

/// Convert an engine field into its wire form.
pub fn field_to_proto(f: &FieldSchema) -> pb::FieldSchema {
    pb::FieldSchema {
        field_id: f.field_id,
        name: f.name.clone(),
        is_primary_key: f.is_primary_key,
        description: f.description.clone(),
        data_type: f.data_type.wire(),
        type_params: kv_list(&f.type_params),
        auto_id: f.auto_id,
        element_type: f.element_type.map_or(0, DataType::wire),
        default_value: f
            .default_value
            .as_ref()
            .and_then(|v| default_from_json(f.data_type, v)),
        is_partition_key: f.is_partition_key,
        is_clustering_key: f.is_clustering_key,
        nullable: f.nullable,
        ..Default::default()
    }
}

/// Decode the schema bytes of a CreateCollection request. `name` is the request's
/// collection name, which wins over the schema's (Milvus requires them to agree or the
/// schema's to be empty).
pub fn schema_from_bytes(
    bytes: &[u8],
    name: &str,
) -> Result<(CollectionSchema, BTreeMap<String, String>)> {
    use prost::Message;
    let s = pb::CollectionSchema::decode(bytes)
        .map_err(|e| Error::InvalidSchema(format!("the schema bytes do not decode: {e}")))?;
    if !s.name.is_empty() && !name.is_empty() && s.name != name {
        return Err(Error::InvalidSchema(format!(
            "collection name {name:?} does not match the schema's name {:?}",
            s.name
        )));
    }
    let mut dynamic = s.enable_dynamic_field;
    let mut fields = Vec::with_capacity(s.fields.len());
    for f in &s.fields {
        if f.is_dynamic {
            dynamic = true;
            continue;
        }
        fields.push(field_from_proto(f)?);
    }
    // The deprecated collection-level autoID applies to the primary key.
    #[allow(deprecated)]
    let collection_auto_id = s.auto_id;
    if collection_auto_id {
        for f in fields.iter_mut().filter(|f| f.is_primary_key) {
            f.auto_id = true;
        }
    }
    let functions = s
        .functions
        .iter()
        .map(|f| FunctionSchema {
            name: f.name.clone(),
            description: f.description.clone(),
            function_type: f.r#type,
            input_field_names: f.input_field_names.clone(),
            output_field_names: f.output_field_names.clone(),
            params: kv_map(&f.params),
        })
        .collect();
    let schema = CollectionSchema {
        name: if name.is_empty() {
            s.name.clone()
        } else {
            name.to_string()
        },
        description: s.description.clone(),
        fields,
        enable_dynamic_field: dynamic,
        functions,
    };
    Ok((schema, kv_map(&s.properties)))
}

/// The wire form of a stored schema (for DescribeCollection).
pub fn schema_to_proto(s: &CollectionSchema, db: &str) -> pb::CollectionSchema {
    let outputs: Vec<&String> = s
        .functions
        .iter()
        .flat_map(|f| &f.output_field_names)
        .collect();
    let fields: Vec<pb::FieldSchema> = s
        .fields
        .iter()
        .map(|f| pb::FieldSchema {
            is_function_output: outputs.contains(&&f.name),
            ..field_to_proto(f)
        })
        .collect();
    let functions = s
        .functions
        .iter()
        .map(|f| pb::FunctionSchema {
            name: f.name.clone(),
            description: f.description.clone(),
            r#type: f.function_type,
            input_field_names: f.input_field_names.clone(),
            input_field_ids: ids_of(s, &f.input_field_names),
            output_field_names: f.output_field_names.clone(),
            output_field_ids: ids_of(s, &f.output_field_names),
            params: kv_list(&f.params),
            ..Default::default()
        })
        .collect();
    #[allow(deprecated)]
    pb::CollectionSchema {
        name: s.name.clone(),
        description: s.description.clone(),
        auto_id: s.fields.iter().any(|f| f.is_primary_key && f.auto_id),
        fields,
        enable_dynamic_field: s.enable_dynamic_field,
        properties: vec![],
        functions,
        db_name: db.to_string(),
    }
}

fn ids_of(s: &CollectionSchema, names: &[String]) -> Vec<i64> {
    names
        .iter()
        .filter_map(|n| s.field(n).map(|f| f.field_id))
        .collect()
}

/// True when two schemas describe the same collection (CreateCollection is idempotent for an
/// identical schema, as in Milvus). Field ids are compared only where the request gave them.
pub fn same_schema(existing: &CollectionSchema, requested: &CollectionSchema) -> bool {
    existing.enable_dynamic_field == requested.enable_dynamic_field
        && existing.functions == requested.functions
        && existing.fields.len() == requested.fields.len()
        && existing.fields.iter().zip(&requested.fields).all(|(a, b)| {
            let mut b = b.clone();
            if b.field_id == 0 {
                b.field_id = a.field_id;
            }
            *a == b
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn kv(k: &str, v: &str) -> KeyValuePair {
        KeyValuePair {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn schema_round_trips_through_the_wire_form() {
        let wire = pb::CollectionSchema {
            name: "docs".into(),
            enable_dynamic_field: true,
            fields: vec![
                pb::FieldSchema {
                    name: "pk".into(),
                    data_type: 21,
                    is_primary_key: true,
                    type_params: vec![kv("max_length", "64")],
                    ..Default::default()
                },
                pb::FieldSchema {
                    name: "v".into(),
                    data_type: 101,
                    type_params: vec![kv("dim", "4")],
                    ..Default::default()
                },
                pb::FieldSchema {
                    name: "tags".into(),
                    data_type: 22,
                    element_type: 5,
                    nullable: true,
                    type_params: vec![kv("max_capacity", "8")],
                    ..Default::default()
                },
                pb::FieldSchema {
                    name: "n".into(),
                    data_type: 4,
                    default_value: Some(pb::ValueField {
                        data: Some(Vf::IntData(7)),
                    }),
                    ..Default::default()
                },
                pb::FieldSchema {
                    name: "$meta".into(),
                    data_type: 23,
                    is_dynamic: true,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let (mut s, _) = schema_from_bytes(&wire.encode_to_vec(), "docs").unwrap();
        s.validate().unwrap();
        assert_eq!(s.fields.len(), 4);
        assert_eq!(s.fields[2].element_type, Some(DataType::Int64));
        assert_eq!(s.fields[3].default_value, Some(Json::from(7)));
        let back = schema_to_proto(&s, "default");
        assert_eq!(back.fields[0].field_id, 100);
        assert_eq!(back.fields[1].type_params, vec![kv("dim", "4")]);
        assert_eq!(back.fields[2].element_type, 5);
        assert!(back.fields[2].nullable);
        assert_eq!(
            back.fields[3].default_value,
            Some(pb::ValueField {
                data: Some(Vf::IntData(7))
            })
        );
        assert!(back.enable_dynamic_field);
        assert!(same_schema(
            &s,
            &schema_from_bytes(&wire.encode_to_vec(), "docs").unwrap().0
        ));
    }

    #[test]
    fn unknown_types_and_mismatched_names_are_refused() {
        let wire = pb::CollectionSchema {
            name: "a".into(),
            fields: vec![pb::FieldSchema {
                name: "x".into(),
                data_type: 999,
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(schema_from_bytes(&wire.encode_to_vec(), "a").is_err());
        assert!(schema_from_bytes(&wire.encode_to_vec(), "b").is_err());
        assert!(schema_from_bytes(b"\xff\xff", "a").is_err());
    }
}
