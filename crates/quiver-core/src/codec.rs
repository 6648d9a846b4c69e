//! Little-endian binary encoding of primitives and columns, shared by WAL records and segment files.
//!
//! Column encoding (all integers little-endian):
//!
//! | bytes                | field                                                              |
//! |----------------------|--------------------------------------------------------------------|
//! | 1                    | tag: 1 Bool, 2 Int8, 3 Int16, 4 Int32, 5 Int64, 10 Float, 11 Double, 21 VarChar, 22 Array, 23 Json, 100 BinaryVector, 101 FloatVector, 102 Float16Vector, 103 BFloat16Vector, 105 Int8Vector (Milvus's type numbers) |
//! | 8                    | rows (u64)                                                         |
//! | 1                    | has_validity (0 or 1)                                              |
//! | ceil(rows/8)         | validity bitmap, bit i of byte i/8 = row i is valid (if has_validity) |
//! | 4                    | vectors only: dim (u32)                                            |
//! | rows * width         | fixed-width types: values; Bool is one byte per row (0/1)          |
//! | per row: 4 + len     | VarChar / Json / Array: u32 byte length then UTF-8 (JSON text)      |
//! | rows * dim * 4       | FloatVector: f32 values, row-major                                 |
//! | rows * dim * 2       | Float16Vector / BFloat16Vector: u16 bit patterns, row-major        |
//! | rows * dim           | Int8Vector: i8 values, row-major                                   |
//! | rows * dim / 8       | BinaryVector: packed bytes, row-major                              |
//! | 8 + rows * 4         | SparseFloatVector (tag 104, no dim): total entries (u64), then each row's entry count (u32) |
//! | nnz * 4 + nnz * 4    | SparseFloatVector: every index (u32), then every value (f32), rows in order |
//!
//! Decoding never panics: every length is checked against the remaining bytes, and errors say
//! what was being read.

use serde_json::Value as Json;

use crate::value::{check_sparse, Column, ColumnData, SparseColumn, VectorColumn, VectorData};

/// Why bytes could not be decoded. The caller adds the file and offset.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

/// Append-only byte writer.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer { buf: Vec::new() }
    }
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.buf.extend_from_slice(b);
    }
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
}

/// Cursor over a byte slice.
pub struct Reader<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError(format!(
                "truncated {what}: need {n} bytes at offset {}, {} left",
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        Ok(self.take(1, what)?[0])
    }
    pub fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self, what: &str) -> Result<u64, DecodeError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    pub fn i64(&mut self, what: &str) -> Result<i64, DecodeError> {
        Ok(self.u64(what)? as i64)
    }
    pub fn bytes(&mut self, what: &str) -> Result<&'a [u8], DecodeError> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }
    pub fn str(&mut self, what: &str) -> Result<&'a str, DecodeError> {
        let b = self.bytes(what)?;
        std::str::from_utf8(b).map_err(|_| DecodeError(format!("{what} is not valid UTF-8")))
    }
}

const TAG_BOOL: u8 = 1;
const TAG_I8: u8 = 2;
const TAG_I16: u8 = 3;
const TAG_I32: u8 = 4;
const TAG_I64: u8 = 5;
const TAG_F32: u8 = 10;
const TAG_F64: u8 = 11;
const TAG_BVEC: u8 = 100;
const TAG_FVEC: u8 = 101;
const TAG_F16VEC: u8 = 102;
const TAG_BF16VEC: u8 = 103;
const TAG_SPARSE: u8 = 104;
const TAG_I8VEC: u8 = 105;
const TAG_VARCHAR: u8 = 21;
const TAG_ARRAY: u8 = 22;
const TAG_JSON: u8 = 23;

macro_rules! put_fixed {
    ($w:expr, $v:expr) => {
        for x in $v {
            $w.buf.extend_from_slice(&x.to_le_bytes());
        }
    };
}

/// Encode one column (see the table in the module docs).
pub fn encode_column(w: &mut Writer, col: &Column) {
    let tag = match &col.data {
        ColumnData::Bool(_) => TAG_BOOL,
        ColumnData::Int8(_) => TAG_I8,
        ColumnData::Int16(_) => TAG_I16,
        ColumnData::Int32(_) => TAG_I32,
        ColumnData::Int64(_) => TAG_I64,
        ColumnData::Float(_) => TAG_F32,
        ColumnData::Double(_) => TAG_F64,
        ColumnData::VarChar(_) => TAG_VARCHAR,
        ColumnData::Array(_) => TAG_ARRAY,
        ColumnData::Json(_) => TAG_JSON,
        ColumnData::Vector(vc) => match vc.data {
            VectorData::F32(_) => TAG_FVEC,
            VectorData::F16(_) => TAG_F16VEC,
            VectorData::Bf16(_) => TAG_BF16VEC,
            VectorData::I8(_) => TAG_I8VEC,
            VectorData::Binary(_) => TAG_BVEC,
        },
        ColumnData::Sparse(_) => TAG_SPARSE,
    };
    let rows = col.len();
    w.u8(tag);
    w.u64(rows as u64);
    match &col.valid {
        None => w.u8(0),
        Some(valid) => {
            w.u8(1);
            let mut bits = vec![0u8; rows.div_ceil(8)];
            for (i, &ok) in valid.iter().enumerate() {
                if ok {
                    bits[i / 8] |= 1 << (i % 8);
                }
            }
            w.buf.extend_from_slice(&bits);
        }
    }
    match &col.data {
        ColumnData::Bool(v) => w.buf.extend(v.iter().map(|&b| b as u8)),
        ColumnData::Int8(v) => put_fixed!(w, v),
        ColumnData::Int16(v) => put_fixed!(w, v),
        ColumnData::Int32(v) => put_fixed!(w, v),
        ColumnData::Int64(v) => put_fixed!(w, v),
        ColumnData::Float(v) => put_fixed!(w, v),
        ColumnData::Double(v) => put_fixed!(w, v),
        ColumnData::VarChar(v) => v.iter().for_each(|s| w.str(s)),
        ColumnData::Json(v) | ColumnData::Array(v) => {
            for j in v {
                let text = serde_json::to_vec(j).unwrap_or_else(|_| b"null".to_vec());
                w.bytes(&text);
            }
        }
        ColumnData::Vector(vc) => {
            w.u32(vc.dim as u32);
            match &vc.data {
                VectorData::F32(d) => {
                    w.buf.reserve(d.len() * 4);
                    put_fixed!(w, d);
                }
                VectorData::F16(d) | VectorData::Bf16(d) => put_fixed!(w, d),
                VectorData::I8(d) => put_fixed!(w, d),
                VectorData::Binary(d) => w.buf.extend_from_slice(d),
            }
        }
        ColumnData::Sparse(sc) => {
            w.u64(sc.indices.len() as u64);
            for r in sc.offsets.windows(2) {
                w.u32((r[1] - r[0]) as u32);
            }
            put_fixed!(w, &sc.indices);
            put_fixed!(w, &sc.values);
        }
    }
}

macro_rules! get_fixed {
    ($r:expr, $rows:expr, $t:ty, $what:expr) => {{
        const W: usize = std::mem::size_of::<$t>();
        let bytes = $r.take(checked_mul($rows, W, $what)?, $what)?;
        bytes
            .chunks_exact(W)
            .map(|c| <$t>::from_le_bytes(c.try_into().unwrap_or([0; W])))
            .collect::<Vec<$t>>()
    }};
}

fn checked_mul(a: usize, b: usize, what: &str) -> Result<usize, DecodeError> {
    a.checked_mul(b)
        .ok_or_else(|| DecodeError(format!("{what}: size overflow ({a} x {b})")))
}

/// Decode one column written by [`encode_column`].
pub fn decode_column(r: &mut Reader<'_>) -> Result<Column, DecodeError> {
    let tag = r.u8("column tag")?;
    let rows = r.u64("column row count")? as usize;
    // Every row needs at least one byte in every encoding: reject absurd counts before allocating.
    if rows > r.remaining() {
        return Err(DecodeError(format!(
            "column claims {rows} rows but only {} bytes remain",
            r.remaining()
        )));
    }
    let valid: Option<Vec<bool>> = match r.u8("validity flag")? {
        0 => None,
        1 => {
            let bits = r.take(rows.div_ceil(8), "validity bitmap")?;
            Some(
                (0..rows)
                    .map(|i| bits[i / 8] & (1 << (i % 8)) != 0)
                    .collect(),
            )
        }
        f => return Err(DecodeError(format!("bad validity flag {f}"))),
    };
    let data = match tag {
        TAG_BOOL => ColumnData::Bool(
            r.take(rows, "bool values")?
                .iter()
                .map(|&b| b != 0)
                .collect(),
        ),
        TAG_I8 => ColumnData::Int8(get_fixed!(r, rows, i8, "int8 values")),
        TAG_I16 => ColumnData::Int16(get_fixed!(r, rows, i16, "int16 values")),
        TAG_I32 => ColumnData::Int32(get_fixed!(r, rows, i32, "int32 values")),
        TAG_I64 => ColumnData::Int64(get_fixed!(r, rows, i64, "int64 values")),
        TAG_F32 => ColumnData::Float(get_fixed!(r, rows, f32, "float values")),
        TAG_F64 => ColumnData::Double(get_fixed!(r, rows, f64, "double values")),
        TAG_VARCHAR => {
            let mut v = Vec::with_capacity(rows);
            for _ in 0..rows {
                v.push(r.str("varchar value")?.to_string());
            }
            ColumnData::VarChar(v)
        }
        TAG_JSON | TAG_ARRAY => {
            let mut v = Vec::with_capacity(rows);
            for _ in 0..rows {
                let b = r.bytes("json value")?;
                let j: Json = serde_json::from_slice(b)
                    .map_err(|e| DecodeError(format!("invalid JSON value: {e}")))?;
                v.push(j);
            }
            if tag == TAG_JSON {
                ColumnData::Json(v)
            } else {
                ColumnData::Array(v)
            }
        }
        TAG_FVEC | TAG_F16VEC | TAG_BF16VEC | TAG_I8VEC | TAG_BVEC => {
            let dim = r.u32("vector dim")? as usize;
            if tag == TAG_BVEC && !dim.is_multiple_of(8) {
                return Err(DecodeError(format!(
                    "binary vector dim {dim} is not a multiple of 8"
                )));
            }
            let n = checked_mul(rows, dim, "vector values")?;
            let data = match tag {
                TAG_FVEC => VectorData::F32(get_fixed!(r, n, f32, "vector values")),
                TAG_F16VEC => VectorData::F16(get_fixed!(r, n, u16, "float16 vector values")),
                TAG_BF16VEC => VectorData::Bf16(get_fixed!(r, n, u16, "bfloat16 vector values")),
                TAG_I8VEC => VectorData::I8(get_fixed!(r, n, i8, "int8 vector values")),
                _ => VectorData::Binary(r.take(n / 8, "binary vector values")?.to_vec()),
            };
            ColumnData::Vector(VectorColumn { dim, data })
        }
        TAG_SPARSE => {
            let nnz = r.u64("sparse entry count")? as usize;
            if nnz > r.remaining() {
                return Err(DecodeError(format!(
                    "sparse column claims {nnz} entries but only {} bytes remain",
                    r.remaining()
                )));
            }
            let counts = get_fixed!(r, rows, u32, "sparse row lengths");
            let mut offsets = Vec::with_capacity(rows + 1);
            offsets.push(0usize);
            for c in counts {
                let next = offsets[offsets.len() - 1] + c as usize;
                if next > nnz {
                    return Err(DecodeError(
                        "sparse row lengths exceed the entry count".into(),
                    ));
                }
                offsets.push(next);
            }
            if offsets[rows] != nnz {
                return Err(DecodeError(
                    "sparse row lengths differ from the entry count".into(),
                ));
            }
            let indices = get_fixed!(r, nnz, u32, "sparse indices");
            let values = get_fixed!(r, nnz, f32, "sparse values");
            let sc = SparseColumn {
                offsets,
                indices,
                values,
            };
            for i in 0..rows {
                let (ix, vs) = sc.row(i);
                check_sparse("sparse column", ix, vs)
                    .map_err(|e| DecodeError(format!("sparse row {i}: {e}")))?;
            }
            ColumnData::Sparse(sc)
        }
        t => return Err(DecodeError(format!("unknown column tag {t}"))),
    };
    if let Some(v) = &valid {
        if v.len() != data.len() {
            return Err(DecodeError("validity length differs from row count".into()));
        }
    }
    Ok(Column { data, valid })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Cell;
    use serde_json::json;

    #[test]
    fn every_vector_type_round_trips() {
        let cols = [
            VectorColumn {
                dim: 2,
                data: VectorData::F16(vec![0x3c00, 0xc000, 0x7bff, 0]),
            },
            VectorColumn {
                dim: 2,
                data: VectorData::Bf16(vec![0x3f80, 0xbf80, 1, 2]),
            },
            VectorColumn {
                dim: 3,
                data: VectorData::I8(vec![-128, 0, 127, 1, 2, 3]),
            },
            VectorColumn {
                dim: 16,
                data: VectorData::Binary(vec![0xff, 0x01, 0x80, 0x00]),
            },
        ];
        for vc in cols {
            let col = Column::new(ColumnData::Vector(vc.clone()));
            assert_eq!(col.len(), 2);
            let mut w = Writer::default();
            encode_column(&mut w, &col);
            let back = decode_column(&mut Reader::new(&w.buf)).unwrap();
            assert_eq!(back, col);
            // Truncated input is an error, never a panic.
            for cut in 0..w.buf.len() {
                assert!(decode_column(&mut Reader::new(&w.buf[..cut])).is_err());
            }
        }
        // f16 / bf16 / int8 decode exactly to f32.
        let vc = VectorColumn {
            dim: 2,
            data: VectorData::F16(vec![0x3c00, 0xc000]),
        };
        assert_eq!(vc.to_f32().unwrap().as_ref(), &[1.0, -2.0]);
        assert_eq!(vc.row_cell(0), Cell::Vector(vec![1.0, -2.0]));
    }

    #[test]
    fn columns_round_trip() {
        let mut nullable = Column::new(ColumnData::Double(vec![]));
        nullable.push_cell(Cell::Double(1.5));
        nullable.push_cell(Cell::Null);
        let cols = vec![
            Column::new(ColumnData::Bool(vec![true, false])),
            Column::new(ColumnData::Int8(vec![-1, 2])),
            Column::new(ColumnData::Int16(vec![-300, 2])),
            Column::new(ColumnData::Int32(vec![i32::MIN, 7])),
            Column::new(ColumnData::Int64(vec![i64::MAX, -7])),
            Column::new(ColumnData::Float(vec![1.25, -0.0])),
            nullable,
            Column::new(ColumnData::VarChar(vec!["héllo".into(), String::new()])),
            Column::new(ColumnData::Json(vec![json!({"a": [1, 2]}), json!(null)])),
            Column::new(ColumnData::Array(vec![json!([1, 2]), json!([])])),
            Column::new(ColumnData::Vector(VectorColumn::f32(
                3,
                vec![1., 2., 3., 4., 5., 6.],
            ))),
            Column::new(ColumnData::Sparse(SparseColumn {
                offsets: vec![0, 2, 2, 3],
                indices: vec![3, 70000, 0],
                values: vec![0.5, 1.25, -2.0],
            })),
        ];
        let mut w = Writer::new();
        for c in &cols {
            encode_column(&mut w, c);
        }
        let mut r = Reader::new(&w.buf);
        for c in &cols {
            assert_eq!(&decode_column(&mut r).unwrap(), c);
        }
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn sparse_columns_refuse_bad_rows_and_truncation() {
        let col = Column::new(ColumnData::Sparse(SparseColumn {
            offsets: vec![0, 2, 3],
            indices: vec![1, 9, 4],
            values: vec![0.5, 1.0, 2.0],
        }));
        let mut w = Writer::new();
        encode_column(&mut w, &col);
        for cut in 0..w.buf.len() {
            assert!(decode_column(&mut Reader::new(&w.buf[..cut])).is_err());
        }
        // Unsorted indices within a row are corruption, not data.
        let bad = Column::new(ColumnData::Sparse(SparseColumn {
            offsets: vec![0, 2],
            indices: vec![9, 1],
            values: vec![0.5, 1.0],
        }));
        let mut w = Writer::new();
        encode_column(&mut w, &bad);
        let e = decode_column(&mut Reader::new(&w.buf)).unwrap_err();
        assert!(e.to_string().contains("sorted"), "{e}");
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let mut w = Writer::new();
        encode_column(
            &mut w,
            &Column::new(ColumnData::VarChar(vec!["abc".into(); 10])),
        );
        for cut in 0..w.buf.len() {
            assert!(decode_column(&mut Reader::new(&w.buf[..cut])).is_err());
        }
        // Absurd row counts are refused before allocating.
        let mut bad = vec![TAG_I64];
        bad.extend_from_slice(&u64::MAX.to_le_bytes());
        bad.push(0);
        assert!(decode_column(&mut Reader::new(&bad)).is_err());
    }
}
