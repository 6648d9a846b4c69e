//! Request parameters: search/query key-value params, filter template values, query vectors.
//!
//! Milvus passes most knobs as string key/value pairs (`topk`, `offset`, `anns_field`,
//! `metric_type`, `params` as a JSON string, `group_by_field`, ... for Search; `limit` and
//! `offset` for Query); the query vectors of a Search arrive as a serialized
//! `common.PlaceholderGroup` whose values are raw little-endian f32 bytes, one entry per query.
//! Anything unparsable is an `InvalidArgument` naming the parameter.

use std::collections::{BTreeMap, HashMap};

use prost::Message;
use quiver_core::{Error, Result};
use serde_json::Value as Json;

use crate::proto::common::{KeyValuePair, PlaceholderGroup, PlaceholderType};
use crate::proto::schema::template_array_value::Data as Ta;
use crate::proto::schema::template_value::Val;
use crate::proto::schema::{TemplateArrayValue, TemplateValue};

/// String key/value parameters with typed getters.
pub struct Params(pub BTreeMap<String, String>);

impl Params {
    pub fn new(kvs: &[KeyValuePair]) -> Params {
        Params(crate::schema::kv_map(kvs))
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|s| s.trim()).filter(|s| !s.is_empty())
    }

    /// A non-negative integer parameter.
    pub fn usize(&self, key: &str) -> Result<Option<usize>> {
        self.str(key)
            .map(|s| {
                s.parse::<usize>().map_err(|_| {
                    Error::InvalidArgument(format!(
                        "{key} must be a non-negative integer, got {s:?}"
                    ))
                })
            })
            .transpose()
    }

    pub fn i64(&self, key: &str) -> Result<Option<i64>> {
        self.str(key)
            .map(|s| {
                s.parse::<i64>().map_err(|_| {
                    Error::InvalidArgument(format!("{key} must be an integer, got {s:?}"))
                })
            })
            .transpose()
    }

    pub fn bool(&self, key: &str) -> bool {
        self.str(key)
            .is_some_and(|s| s.eq_ignore_ascii_case("true"))
    }

    /// The JSON object in `key` (e.g. search `params`); empty when absent.
    pub fn json_object(&self, key: &str) -> Result<serde_json::Map<String, Json>> {
        match self.str(key) {
            None => Ok(Default::default()),
            Some(s) => match serde_json::from_str::<Json>(s) {
                Ok(Json::Object(m)) => Ok(m),
                Ok(Json::Null) => Ok(Default::default()),
                _ => Err(Error::InvalidArgument(format!(
                    "{key} must be a JSON object, got {s:?}"
                ))),
            },
        }
    }
}

fn array_value(a: &TemplateArrayValue) -> Result<Json> {
    Ok(match &a.data {
        None => Json::Array(vec![]),
        Some(Ta::BoolData(v)) => v.data.iter().map(|&b| Json::Bool(b)).collect(),
        Some(Ta::LongData(v)) => v.data.iter().map(|&i| Json::from(i)).collect(),
        Some(Ta::DoubleData(v)) => v
            .data
            .iter()
            .map(|&f| serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number))
            .collect(),
        Some(Ta::StringData(v)) => v.data.iter().map(|s| Json::String(s.clone())).collect(),
        Some(Ta::ArrayData(v)) => {
            Json::Array(v.data.iter().map(array_value).collect::<Result<_>>()?)
        }
        Some(Ta::JsonData(v)) => Json::Array(
            v.data
                .iter()
                .map(|b| {
                    serde_json::from_slice(b).map_err(|e| {
                        Error::InvalidArgument(format!("invalid JSON template value: {e}"))
                    })
                })
                .collect::<Result<_>>()?,
        ),
    })
}

/// Filter template values (`{name}` placeholders) as JSON.
pub fn template_values(values: &HashMap<String, TemplateValue>) -> Result<HashMap<String, Json>> {
    values
        .iter()
        .map(|(k, v)| {
            let j = match &v.val {
                None => Json::Null,
                Some(Val::BoolVal(b)) => Json::Bool(*b),
                Some(Val::Int64Val(i)) => Json::from(*i),
                Some(Val::FloatVal(f)) => {
                    serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number)
                }
                Some(Val::StringVal(s)) => Json::String(s.clone()),
                Some(Val::ArrayVal(a)) => array_value(a)?,
            };
            Ok((k.clone(), j))
        })
        .collect()
}

/// Query vectors of a search, by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryVectors {
    /// FloatVector, Float16Vector, BFloat16Vector and Int8Vector placeholders, decoded to f32.
    F32(Vec<Vec<f32>>),
    /// BinaryVector placeholders: packed bytes.
    Binary(Vec<Vec<u8>>),
    /// VarChar placeholders: query texts for a function's output field (`data=["..."]`).
    Text(Vec<String>),
    /// SparseFloatVector placeholders: sorted indices and their values.
    Sparse(Vec<(Vec<u32>, Vec<f32>)>),
}

pub fn query_vectors(placeholder_group: &[u8]) -> Result<QueryVectors> {
    let group = PlaceholderGroup::decode(placeholder_group).map_err(|e| {
        Error::InvalidArgument(format!("the placeholder group does not decode: {e}"))
    })?;
    let Some(ph) = group.placeholders.first() else {
        return Err(Error::InvalidArgument("no query vectors".into()));
    };
    let t = PlaceholderType::try_from(ph.r#type).unwrap_or(PlaceholderType::None);
    let width = match t {
        PlaceholderType::FloatVector => 4,
        PlaceholderType::Float16Vector | PlaceholderType::BFloat16Vector => 2,
        PlaceholderType::Int8Vector => 1,
        PlaceholderType::BinaryVector => {
            return Ok(QueryVectors::Binary(ph.values.to_vec()));
        }
        PlaceholderType::SparseFloatVector => {
            return ph
                .values
                .iter()
                .map(|b| crate::columns::sparse_row("query", b))
                .collect::<Result<Vec<_>>>()
                .map(QueryVectors::Sparse);
        }
        PlaceholderType::VarChar => {
            return ph
                .values
                .iter()
                .map(|b| {
                    String::from_utf8(b.to_vec()).map_err(|_| {
                        Error::InvalidArgument("a text query is not valid UTF-8".into())
                    })
                })
                .collect::<Result<Vec<_>>>()
                .map(QueryVectors::Text);
        }
        other => {
            return Err(Error::Unsupported(format!(
                "search with {} query vectors",
                other.as_str_name()
            )))
        }
    };
    ph.values
        .iter()
        .map(|bytes| {
            if bytes.len() % width != 0 {
                return Err(Error::InvalidArgument(format!(
                    "a {} placeholder has {} bytes, not a multiple of {width}",
                    t.as_str_name(),
                    bytes.len()
                )));
            }
            Ok(match t {
                PlaceholderType::FloatVector => bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                PlaceholderType::Float16Vector => bytes
                    .chunks_exact(2)
                    .map(|c| quiver_core::value::f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                    .collect(),
                PlaceholderType::BFloat16Vector => bytes
                    .chunks_exact(2)
                    .map(|c| quiver_core::value::bf16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                    .collect(),
                _ => bytes.iter().map(|&b| b as i8 as f32).collect(),
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(QueryVectors::F32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::common::PlaceholderValue;

    #[test]
    fn float_placeholders_decode() {
        let v: Vec<u8> = [1.0f32, -2.5]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        let g = PlaceholderGroup {
            placeholders: vec![PlaceholderValue {
                tag: "$0".into(),
                r#type: PlaceholderType::FloatVector as i32,
                values: vec![v.clone(), v],
            }],
        };
        let q = query_vectors(&g.encode_to_vec()).unwrap();
        assert_eq!(q, QueryVectors::F32(vec![vec![1.0, -2.5], vec![1.0, -2.5]]));
        let mut bad = g.clone();
        bad.placeholders[0].values[0].pop();
        assert!(query_vectors(&bad.encode_to_vec()).is_err());
    }

    #[test]
    fn other_vector_placeholders_decode() {
        let one = |t: PlaceholderType, v: Vec<u8>| {
            let g = PlaceholderGroup {
                placeholders: vec![PlaceholderValue {
                    tag: "$0".into(),
                    r#type: t as i32,
                    values: vec![v],
                }],
            };
            query_vectors(&g.encode_to_vec())
        };
        // 1.0 and -2.0 as float16 and bfloat16, little-endian.
        let f16 = one(PlaceholderType::Float16Vector, vec![0x00, 0x3c, 0x00, 0xc0]);
        assert_eq!(f16.unwrap(), QueryVectors::F32(vec![vec![1.0, -2.0]]));
        let bf16 = one(
            PlaceholderType::BFloat16Vector,
            vec![0x80, 0x3f, 0x00, 0xc0],
        );
        assert_eq!(bf16.unwrap(), QueryVectors::F32(vec![vec![1.0, -2.0]]));
        let i8v = one(PlaceholderType::Int8Vector, vec![0xff, 0x7f]);
        assert_eq!(i8v.unwrap(), QueryVectors::F32(vec![vec![-1.0, 127.0]]));
        let bin = one(PlaceholderType::BinaryVector, vec![0b1010_0000]);
        assert_eq!(bin.unwrap(), QueryVectors::Binary(vec![vec![0b1010_0000]]));
        assert!(one(PlaceholderType::Float16Vector, vec![1, 2, 3]).is_err());
        let sparse = [
            3u32.to_le_bytes(),
            0.5f32.to_le_bytes(),
            9u32.to_le_bytes(),
            2f32.to_le_bytes(),
        ]
        .concat();
        assert_eq!(
            one(PlaceholderType::SparseFloatVector, sparse).unwrap(),
            QueryVectors::Sparse(vec![(vec![3, 9], vec![0.5, 2.0])])
        );
        let unsorted = [
            9u32.to_le_bytes(),
            0.5f32.to_le_bytes(),
            3u32.to_le_bytes(),
            2f32.to_le_bytes(),
        ]
        .concat();
        assert!(one(PlaceholderType::SparseFloatVector, unsorted).is_err());
        assert!(one(PlaceholderType::SparseFloatVector, vec![1, 2, 3]).is_err());
        let text = one(PlaceholderType::VarChar, "héllo".as_bytes().to_vec());
        assert_eq!(text.unwrap(), QueryVectors::Text(vec!["héllo".into()]));
        assert!(one(PlaceholderType::VarChar, vec![0xff, 0xfe]).is_err());
    }

    #[test]
    fn params_parse() {
        let p = Params::new(&[
            KeyValuePair {
                key: "topk".into(),
                value: "10".into(),
            },
            KeyValuePair {
                key: "params".into(),
                value: r#"{"radius": 0.5}"#.into(),
            },
            KeyValuePair {
                key: "offset".into(),
                value: "x".into(),
            },
        ]);
        assert_eq!(p.usize("topk").unwrap(), Some(10));
        assert!(p.usize("offset").is_err());
        assert_eq!(
            p.json_object("params").unwrap()["radius"],
            serde_json::json!(0.5)
        );
        let mut t = HashMap::new();
        t.insert(
            "ids".to_string(),
            TemplateValue {
                val: Some(Val::ArrayVal(TemplateArrayValue {
                    data: Some(Ta::LongData(crate::proto::schema::LongArray {
                        data: vec![1, 2],
                    })),
                })),
            },
        );
        assert_eq!(
            template_values(&t).unwrap()["ids"],
            serde_json::json!([1, 2])
        );
    }
}
