//! A safetensors reader for F32 tensors.
//!
//! Format: 8 bytes little-endian header length `n`, then `n` bytes of JSON mapping tensor names
//! to `{dtype, shape, data_offsets: [begin, end]}` (offsets relative to the byte after the
//! header; `__metadata__` is free-form), then the data. Every offset and size is checked against
//! the file, so a truncated or inconsistent file is an error, not a panic.

use std::collections::HashMap;
use std::path::Path;

use crate::{EmbedError, Result};

/// A tensor: shape and row-major values.
#[derive(Debug, Clone)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Every F32 tensor of the file, by name (other dtypes are skipped: BERT's `position_ids`).
pub fn read(path: &Path) -> Result<HashMap<String, Tensor>> {
    let bytes = std::fs::read(path).map_err(|e| EmbedError::model(path, e))?;
    let bad = |m: String| EmbedError::model(path, m);
    let n = u64::from_le_bytes(
        bytes
            .get(..8)
            .ok_or_else(|| bad("shorter than a safetensors header".into()))?
            .try_into()
            .unwrap_or_default(),
    ) as usize;
    let header = bytes
        .get(8..8usize.saturating_add(n))
        .ok_or_else(|| bad(format!("header of {n} bytes runs past the end")))?;
    let meta: HashMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| bad(format!("header is not JSON: {e}")))?;
    let data = &bytes[8 + n..];
    let mut out = HashMap::new();
    for (name, v) in meta {
        if name == "__metadata__" {
            continue;
        }
        let dtype = v.get("dtype").and_then(|d| d.as_str()).unwrap_or_default();
        if dtype != "F32" {
            continue;
        }
        let shape: Vec<usize> = v
            .get("shape")
            .and_then(|s| s.as_array())
            .ok_or_else(|| bad(format!("{name}: no shape")))?
            .iter()
            .map(|d| d.as_u64().map(|d| d as usize))
            .collect::<Option<_>>()
            .ok_or_else(|| bad(format!("{name}: bad shape")))?;
        let offs: Vec<usize> = v
            .get("data_offsets")
            .and_then(|s| s.as_array())
            .ok_or_else(|| bad(format!("{name}: no data_offsets")))?
            .iter()
            .map(|d| d.as_u64().map(|d| d as usize))
            .collect::<Option<_>>()
            .ok_or_else(|| bad(format!("{name}: bad data_offsets")))?;
        let (begin, end) = match offs.as_slice() {
            [b, e] if b <= e => (*b, *e),
            _ => return Err(bad(format!("{name}: bad data_offsets"))),
        };
        let count: usize = shape.iter().product();
        if end - begin != count * 4 {
            return Err(bad(format!(
                "{name}: {} bytes for shape {shape:?}",
                end - begin
            )));
        }
        let raw = data
            .get(begin..end)
            .ok_or_else(|| bad(format!("{name}: data runs past the end")))?;
        let values = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.insert(
            name,
            Tensor {
                shape,
                data: values,
            },
        );
    }
    Ok(out)
}
