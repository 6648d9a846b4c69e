//! Segments: runs of rows of one partition, stored column by column.
//!
//! A *growing* segment takes new rows in arrival order; sealing turns it into an immutable
//! *sealed* segment whose rows are sorted by primary key (so row order is key order: ties in
//! search are broken by key for free, and key lookups can binary search). Deletes never touch
//! segment data: they are tombstones in a roaring bitmap of row numbers, persisted beside the
//! segment in a delete file named by the manifest.
//!
//! Segment file (`segments/<id>.seg`), inside the checksummed envelope of
//! `quiver_core::storage::seal_envelope` (magic `QVSEG\0\0\x01`, version 1, body length, CRC32C):
//!
//! | bytes | field |
//! |-------|-------|
//! | 8     | segment id (u64) |
//! | 8     | partition id (u64) |
//! | 8     | row count (u64) |
//! | ...   | columns: count u32, then per column field id i64 (-1 = `$meta`) and the column (quiver_core::codec) |
//!
//! Delete file (`segments/<id>.<manifest version>.del`): envelope with magic `QVDEL\0\0\x01`,
//! version 1, body = segment id u64, then the roaring bitmap in its portable serialization.

use std::path::Path;

use quiver_core::codec::{Reader, Writer};
use quiver_core::storage::{open_envelope, seal_envelope};
use quiver_core::{CollectionSchema, Column, Error, Result};
use roaring::RoaringBitmap;

use crate::pk::Pk;
use crate::record::{decode_columns, encode_columns};

pub const SEGMENT_MAGIC: &[u8; 8] = b"QVSEG\0\0\x01";
pub const SEGMENT_VERSION: u32 = 1;
pub const DELETE_MAGIC: &[u8; 8] = b"QVDEL\0\0\x01";
pub const DELETE_VERSION: u32 = 1;

/// The rows of a segment: one column per schema field (schema order), plus `$meta` last when the
/// collection has dynamic fields. Column index = field id for filters (`quiver_expr::Row`).
#[derive(Debug, Clone)]
pub struct SegmentData {
    pub columns: Vec<Column>,
}

impl SegmentData {
    pub fn empty(schema: &CollectionSchema) -> Self {
        let mut columns: Vec<Column> = schema.fields.iter().map(Column::empty_for).collect();
        if schema.enable_dynamic_field {
            columns.push(Column::new(quiver_core::ColumnData::Json(vec![])));
        }
        SegmentData { columns }
    }

    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, |c| c.len())
    }

    /// Append all rows of `cols` (same layout).
    pub fn append(&mut self, cols: &[Column]) {
        for (dst, src) in self.columns.iter_mut().zip(cols) {
            for r in 0..src.len() {
                dst.push_from(src, r);
            }
        }
    }

    /// The rows at `rows`, in that order.
    pub fn gather(&self, rows: &[usize]) -> SegmentData {
        SegmentData {
            columns: self.columns.iter().map(|c| c.gather(rows)).collect(),
        }
    }
}

/// Approximate heap bytes of columns (for seal thresholds; computed once per write).
/// A column of `rows` NULLs for `field` (a field added after the data was written).
pub fn null_column(field: &quiver_core::FieldSchema, rows: usize) -> Column {
    let mut c = Column::empty_for(field);
    for _ in 0..rows {
        c.push_cell(quiver_core::Cell::Null);
    }
    c
}

pub fn approx_bytes(columns: &[Column]) -> usize {
    use quiver_core::ColumnData as D;
    columns
        .iter()
        .map(|c| match &c.data {
            D::Bool(v) => v.len(),
            D::Int8(v) => v.len(),
            D::Int16(v) => v.len() * 2,
            D::Int32(v) => v.len() * 4,
            D::Float(v) => v.len() * 4,
            D::Int64(v) => v.len() * 8,
            D::Double(v) => v.len() * 8,
            D::VarChar(v) => v.iter().map(|s| s.len() + 24).sum(),
            D::Json(v) | D::Array(v) => v.len() * 64,
            D::Vector(v) => v.as_f32().map_or(0, |d| d.len() * 4),
            D::Sparse(v) => v.indices.len() * 8 + v.offsets.len() * 8,
        })
        .sum()
}

/// Sort rows by primary key (sealing), returning the new data and, for each new row, its old row.
pub fn sort_by_pk(
    data: &SegmentData,
    pk_col: usize,
    keep: impl Fn(usize) -> bool,
) -> (SegmentData, Vec<usize>) {
    let pks = &data.columns[pk_col];
    let mut order: Vec<usize> = (0..data.rows()).filter(|&r| keep(r)).collect();
    match &pks.data {
        quiver_core::ColumnData::Int64(v) => order.sort_by_key(|&r| v[r]),
        quiver_core::ColumnData::VarChar(v) => order.sort_by(|&a, &b| v[a].cmp(&v[b])),
        _ => {}
    }
    (data.gather(&order), order)
}

/// Serialize a sealed segment.
pub fn encode_segment(
    id: u64,
    partition: u64,
    data: &SegmentData,
    schema: &CollectionSchema,
) -> Vec<u8> {
    let mut w = Writer::new();
    w.u64(id);
    w.u64(partition);
    w.u64(data.rows() as u64);
    encode_columns(&mut w, schema, &data.columns);
    seal_envelope(SEGMENT_MAGIC, SEGMENT_VERSION, &w.buf)
}

/// Parse and verify a segment file; returns (id, partition, data).
pub fn decode_segment(
    path: &Path,
    bytes: &[u8],
    schema: &CollectionSchema,
) -> Result<(u64, u64, SegmentData)> {
    let (_, body) = open_envelope(SEGMENT_MAGIC, SEGMENT_VERSION, path, bytes)?;
    let mut r = Reader::new(body);
    let bad = |e: quiver_core::codec::DecodeError, r: &Reader<'_>| {
        Error::corrupt(path, 24 + r.pos as u64, e.0)
    };
    let id = r.u64("segment id").map_err(|e| bad(e, &r))?;
    let partition = r.u64("partition id").map_err(|e| bad(e, &r))?;
    let rows = r.u64("row count").map_err(|e| bad(e, &r))? as usize;
    let columns = decode_columns(&mut r, schema).map_err(|e| bad(e, &r))?;
    let data = SegmentData { columns };
    if data.rows() != rows {
        return Err(Error::corrupt(
            path,
            24,
            format!("header says {rows} rows, columns hold {}", data.rows()),
        ));
    }
    Ok((id, partition, data))
}

pub fn encode_deletes(segment: u64, bitmap: &RoaringBitmap) -> Vec<u8> {
    let mut body = segment.to_le_bytes().to_vec();
    // Writing into a Vec cannot fail.
    let _ = bitmap.serialize_into(&mut body);
    seal_envelope(DELETE_MAGIC, DELETE_VERSION, &body)
}

pub fn decode_deletes(path: &Path, bytes: &[u8], segment: u64) -> Result<RoaringBitmap> {
    let (_, body) = open_envelope(DELETE_MAGIC, DELETE_VERSION, path, bytes)?;
    if body.len() < 8 || body[..8] != segment.to_le_bytes() {
        return Err(Error::corrupt(
            path,
            24,
            format!("delete file does not belong to segment {segment}"),
        ));
    }
    RoaringBitmap::deserialize_from(&body[8..])
        .map_err(|e| Error::corrupt(path, 32, format!("bad bitmap: {e}")))
}

/// Primary keys of every row.
pub fn pks_of(data: &SegmentData, pk_col: usize) -> Result<Vec<Pk>> {
    Pk::all(&data.columns[pk_col])
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_core::{ColumnData, DataType, FieldSchema, VectorColumn};

    #[test]
    fn segment_and_delete_files_round_trip_and_detect_damage() {
        let mut s = CollectionSchema {
            name: "c".into(),
            description: String::new(),
            fields: vec![
                FieldSchema::new("id", DataType::Int64).primary(false),
                FieldSchema::new("v", DataType::FloatVector).with_param("dim", 2),
            ],
            enable_dynamic_field: false,
            functions: vec![],
        };
        s.validate().unwrap();
        let data = SegmentData {
            columns: vec![
                Column::new(ColumnData::Int64(vec![3, 1, 2])),
                Column::new(ColumnData::Vector(VectorColumn::f32(
                    2,
                    vec![3., 3., 1., 1., 2., 2.],
                ))),
            ],
        };
        let (sorted, order) = sort_by_pk(&data, 0, |_| true);
        assert_eq!(order, vec![1, 2, 0]);
        assert_eq!(
            sorted.columns[1].cell(0),
            quiver_core::Cell::Vector(vec![1., 1.])
        );
        let p = Path::new("x.seg");
        let bytes = encode_segment(9, 4, &sorted, &s);
        let (id, part, back) = decode_segment(p, &bytes, &s).unwrap();
        assert_eq!((id, part), (9, 4));
        assert_eq!(back.columns, sorted.columns);
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 1] ^= 1;
        assert!(decode_segment(p, &bad, &s)
            .unwrap_err()
            .to_string()
            .contains("checksum"));

        let mut bm = RoaringBitmap::new();
        bm.insert(2);
        let d = encode_deletes(9, &bm);
        assert_eq!(decode_deletes(p, &d, 9).unwrap(), bm);
        assert!(decode_deletes(p, &d, 8).is_err());
    }
}
