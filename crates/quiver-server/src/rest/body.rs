//! Typed access to a REST request body (one JSON object with camelCase keys).
//!
//! Errors follow Milvus's REST layer: a body that is not a JSON object, or a key holding a
//! value of the wrong JSON type, is 1801 ("can only accept json format request"); a required
//! key that is absent, null or empty is 1802 ("missing required parameters"). Numbers are
//! also accepted as decimal strings, and Go-style `%v` formatting ([`param_string`]) turns
//! free-form parameter values into the strings Milvus puts in key/value pairs.

use serde_json::{Map, Value as Json};

use super::RestError;

/// A parsed request body.
#[derive(Debug, Clone, Default)]
pub struct Body(pub Map<String, Json>);

fn type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn wrong(key: &str, want: &str, got: &Json) -> RestError {
    RestError::format(format!("{key} must be {want}, got {}", type_name(got)))
}

/// A JSON value as Go's `fmt.Sprintf("%v")` would print it for Milvus's key/value params:
/// strings unquoted, everything else as JSON.
pub fn param_string(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Body {
    /// Parse a request body; it must be one JSON object.
    pub fn parse(bytes: &[u8]) -> Result<Body, RestError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(RestError::format(
                "the request body should be nil, however {} is valid",
            ));
        }
        match serde_json::from_slice::<Json>(bytes) {
            Ok(Json::Object(m)) => Ok(Body(m)),
            Ok(other) => Err(RestError::format(format!(
                "the body must be a JSON object, got {}",
                type_name(&other)
            ))),
            Err(e) => Err(RestError::format(e)),
        }
    }

    /// The value under `key`, `None` when absent or null.
    pub fn get(&self, key: &str) -> Option<&Json> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// An optional string ("" when absent).
    pub fn opt_str(&self, key: &str) -> Result<String, RestError> {
        match self.get(key) {
            None => Ok(String::new()),
            Some(Json::String(s)) => Ok(s.trim().to_string()),
            Some(v) => Err(wrong(key, "a string", v)),
        }
    }

    /// A required, non-empty string.
    pub fn str(&self, key: &str) -> Result<String, RestError> {
        let s = self.opt_str(key)?;
        if s.is_empty() {
            return Err(RestError::missing(key));
        }
        Ok(s)
    }

    /// An optional integer (a JSON number or a decimal string).
    pub fn opt_i64(&self, key: &str) -> Result<Option<i64>, RestError> {
        match self.get(key) {
            None => Ok(None),
            Some(Json::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| wrong(key, "an integer", &Json::Number(n.clone()))),
            Some(Json::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| wrong(key, "an integer", &Json::String(s.clone()))),
            Some(v) => Err(wrong(key, "an integer", v)),
        }
    }

    /// An optional non-negative integer.
    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>, RestError> {
        match self.opt_i64(key)? {
            Some(n) if n < 0 => Err(RestError::invalid(format!(
                "{key} must not be negative, got {n}"
            ))),
            n => Ok(n.map(|n| n as usize)),
        }
    }

    /// An optional boolean (also "true"/"false" strings).
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, RestError> {
        match self.get(key) {
            None => Ok(None),
            Some(Json::Bool(b)) => Ok(Some(*b)),
            Some(Json::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Json::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(wrong(key, "a boolean", v)),
        }
    }

    /// An optional list of strings (a single string counts as a list of one).
    pub fn strings(&self, key: &str) -> Result<Vec<String>, RestError> {
        match self.get(key) {
            None => Ok(vec![]),
            Some(Json::String(s)) => Ok(vec![s.clone()]),
            Some(Json::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Json::String(s) => Ok(s.clone()),
                    other => Err(wrong(key, "an array of strings", other)),
                })
                .collect(),
            Some(v) => Err(wrong(key, "an array of strings", v)),
        }
    }

    /// An optional JSON object (empty when absent).
    pub fn object(&self, key: &str) -> Result<Map<String, Json>, RestError> {
        match self.get(key) {
            None => Ok(Map::new()),
            Some(Json::Object(m)) => Ok(m.clone()),
            Some(v) => Err(wrong(key, "an object", v)),
        }
    }

    /// An optional array of objects, each as a [`Body`].
    pub fn objects(&self, key: &str) -> Result<Vec<Body>, RestError> {
        match self.get(key) {
            None => Ok(vec![]),
            Some(Json::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Json::Object(m) => Ok(Body(m.clone())),
                    other => Err(wrong(key, "an array of objects", other)),
                })
                .collect(),
            Some(v) => Err(wrong(key, "an array of objects", v)),
        }
    }

    /// A nested object as a [`Body`] (empty when absent).
    pub fn nested(&self, key: &str) -> Result<Body, RestError> {
        self.object(key).map(Body)
    }

    /// The first present key among `keys` (Milvus spells some keys two ways, e.g. `autoID`
    /// and `autoId`).
    pub fn first_of<'a>(&self, keys: &[&'a str]) -> &'a str {
        keys.iter()
            .copied()
            .find(|k| self.get(k).is_some())
            .unwrap_or(keys[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rest::rest_code;

    #[test]
    fn parse_and_typed_access() {
        let b = Body::parse(
            br#"{"collectionName":"c","limit":"10","n":3,"flag":true,"names":["a"],"o":{"k":1}}"#,
        )
        .unwrap();
        assert_eq!(b.str("collectionName").unwrap(), "c");
        assert_eq!(b.opt_usize("limit").unwrap(), Some(10));
        assert_eq!(b.opt_i64("n").unwrap(), Some(3));
        assert_eq!(b.opt_bool("flag").unwrap(), Some(true));
        assert_eq!(b.strings("names").unwrap(), vec!["a".to_string()]);
        assert_eq!(b.object("o").unwrap()["k"], 1);
        assert_eq!(
            b.str("missing").unwrap_err().code,
            rest_code::MISSING_REQUIRED_PARAMETERS
        );
        assert_eq!(
            b.opt_str("n").unwrap_err().code,
            rest_code::INCORRECT_PARAMETER_FORMAT
        );
        for bad in [&b""[..], b"  ", b"[1]", b"{"] {
            assert_eq!(
                Body::parse(bad).unwrap_err().code,
                rest_code::INCORRECT_PARAMETER_FORMAT
            );
        }
        assert_eq!(param_string(&serde_json::json!("x")), "x");
        assert_eq!(param_string(&serde_json::json!(16)), "16");
    }
}
