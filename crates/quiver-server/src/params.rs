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

/// Decode the query vectors of a Search (FloatVector placeholders only).
pub fn query_vectors(placeholder_group: &[u8]) -> Result<Vec<Vec<f32>>> {
    let group = PlaceholderGroup::decode(placeholder_group).map_err(|e| {
        Error::InvalidArgument(format!("the placeholder group does not decode: {e}"))
    })?;
    let Some(ph) = group.placeholders.first() else {
        return Err(Error::InvalidArgument("no query vectors".into()));
    };
    if ph.r#type != PlaceholderType::FloatVector as i32 {
        let name = PlaceholderType::try_from(ph.r#type).map_or("unknown", |t| t.as_str_name());
        return Err(Error::Unsupported(format!(
            "search with {name} query vectors (only FloatVector is supported)"
        )));
    }
    ph.values
        .iter()
        .map(|bytes| {
            if bytes.len() % 4 != 0 {
                return Err(Error::InvalidArgument(format!(
                    "a float vector placeholder has {} bytes, not a multiple of 4",
                    bytes.len()
                )));
            }
            Ok(bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        })
        .collect()
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
        assert_eq!(q, vec![vec![1.0, -2.5], vec![1.0, -2.5]]);
        let mut bad = g.clone();
        bad.placeholders[0].values[0].pop();
        assert!(query_vectors(&bad.encode_to_vec()).is_err());
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
