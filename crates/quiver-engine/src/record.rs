//! WAL records of a collection: the operations that change its rows.
//!
//! DDL (databases, collections, partitions, aliases, indexes) lives in the catalog; only the
//! operations below go through a collection's WAL. Each is applied to the in-memory state only
//! after it is durable, in LSN order, by exactly one thread (the group-commit leader), so the state
//! after recovery is the state before the crash, minus nothing acknowledged.
//!
//! Payload layout (little-endian; columns use `quiver_core::codec`):
//!
//! | bytes   | field                                                                  |
//! |---------|------------------------------------------------------------------------|
//! | 1       | kind: 1 Insert, 2 Delete, 3 DropPartition, 4 Truncate, 5 Fill          |
//! | 8       | hybrid timestamp of the operation                                      |
//! | Insert  | partition id u64, column count u32, per column: field id i64 (-1 for `$meta`) then the column |
//! | Delete  | partition id u64 (u64::MAX = every partition), key kind u8 (0 int, 1 string), count u64, keys (i64, or u32 length + UTF-8) |
//! | DropPartition | partition id u64                                                 |
//! | Truncate | nothing                                                               |
//! | Fill    | field id i64, key kind u8, count u64, keys (as in Delete), then one column of `count` rows (the values) |
//!
//! Insert also carries upserts: applying an insert replaces any live row with the same primary
//! key (at most one live row per key is an invariant of the collection). Fill sets one field of
//! existing rows only where it is NULL (a re-embedding backfill: see `State::apply_fill`).
//!
//! Schema changes: a record is decoded against the schema the collection has *now*. Fields
//! added since the record was written (always nullable, see `Engine::add_field`) are absent
//! from it and decode as all-NULL columns; any other missing column is corruption.

use quiver_core::codec::{decode_column, encode_column, DecodeError, Reader, Writer};
use quiver_core::{CollectionSchema, Column};

use crate::pk::Pk;

/// Field id used for the dynamic `$meta` column in records and segments.
pub const DYNAMIC_FIELD_ID: i64 = -1;
/// Partition id meaning "every partition" in a delete.
pub const ALL_PARTITIONS: u64 = u64::MAX;

/// One row-changing operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Rows in schema order; the dynamic column last when the schema has one.
    Insert {
        ts: u64,
        partition: u64,
        columns: Vec<Column>,
    },
    Delete {
        ts: u64,
        partition: u64,
        pks: Vec<Pk>,
    },
    DropPartition {
        ts: u64,
        partition: u64,
    },
    Truncate {
        ts: u64,
    },
    /// Set `field_id` of the live rows `pks` where it is NULL, to the rows of `column`.
    Fill {
        ts: u64,
        field_id: i64,
        pks: Vec<Pk>,
        column: Column,
    },
}

impl Op {
    pub fn ts(&self) -> u64 {
        match self {
            Op::Insert { ts, .. }
            | Op::Delete { ts, .. }
            | Op::DropPartition { ts, .. }
            | Op::Truncate { ts }
            | Op::Fill { ts, .. } => *ts,
        }
    }
}

/// Field ids of the columns of a row set, in order (schema fields, then `$meta` if dynamic).
pub fn column_ids(schema: &CollectionSchema) -> Vec<i64> {
    let mut ids: Vec<i64> = schema.fields.iter().map(|f| f.field_id).collect();
    if schema.enable_dynamic_field {
        ids.push(DYNAMIC_FIELD_ID);
    }
    ids
}

/// Encode columns with their field ids.
pub fn encode_columns(w: &mut Writer, schema: &CollectionSchema, columns: &[Column]) {
    let ids = column_ids(schema);
    w.u32(columns.len() as u32);
    for (id, col) in ids.iter().zip(columns) {
        w.i64(*id);
        encode_column(w, col);
    }
}

/// Decode columns and put them in schema order; every schema column must be present.
pub fn decode_columns(
    r: &mut Reader<'_>,
    schema: &CollectionSchema,
) -> Result<Vec<Column>, DecodeError> {
    let ids = column_ids(schema);
    let n = r.u32("column count")? as usize;
    let mut slots: Vec<Option<Column>> = vec![None; ids.len()];
    let mut rows = None;
    for _ in 0..n {
        let id = r.i64("field id")?;
        let col = decode_column(r)?;
        let Some(pos) = ids.iter().position(|&x| x == id) else {
            return Err(DecodeError(format!("column for unknown field id {id}")));
        };
        if *rows.get_or_insert(col.len()) != col.len() {
            return Err(DecodeError(format!(
                "column of field {id} has a different row count"
            )));
        }
        slots[pos] = Some(col);
    }
    let rows = rows.unwrap_or(0);
    slots
        .into_iter()
        .zip(&ids)
        .map(|(c, id)| match c {
            Some(c) => Ok(c),
            // A nullable field added after this was written.
            None => schema
                .fields
                .iter()
                .find(|f| f.field_id == *id && f.nullable)
                .map(|f| crate::segment::null_column(f, rows))
                .ok_or_else(|| DecodeError(format!("missing column for field id {id}"))),
        })
        .collect()
}

fn encode_pks(w: &mut Writer, pks: &[Pk]) {
    let is_str = matches!(pks.first(), Some(Pk::Str(_)));
    w.u8(is_str as u8);
    w.u64(pks.len() as u64);
    for pk in pks {
        match pk {
            Pk::Int(i) => w.i64(*i),
            Pk::Str(s) => w.str(s),
        }
    }
}

fn decode_pks(r: &mut Reader<'_>) -> Result<Vec<Pk>, DecodeError> {
    let is_str = r.u8("key kind")? == 1;
    let n = r.u64("key count")? as usize;
    if n > r.remaining() {
        return Err(DecodeError(format!(
            "record claims {n} keys in {} bytes",
            r.remaining()
        )));
    }
    let mut pks = Vec::with_capacity(n);
    for _ in 0..n {
        pks.push(if is_str {
            Pk::Str(r.str("string key")?.to_string())
        } else {
            Pk::Int(r.i64("int key")?)
        });
    }
    Ok(pks)
}

pub fn encode(op: &Op, schema: &CollectionSchema) -> Vec<u8> {
    let mut w = Writer::new();
    match op {
        Op::Insert {
            ts,
            partition,
            columns,
        } => {
            w.u8(1);
            w.u64(*ts);
            w.u64(*partition);
            encode_columns(&mut w, schema, columns);
        }
        Op::Delete { ts, partition, pks } => {
            w.u8(2);
            w.u64(*ts);
            w.u64(*partition);
            encode_pks(&mut w, pks);
        }
        Op::DropPartition { ts, partition } => {
            w.u8(3);
            w.u64(*ts);
            w.u64(*partition);
        }
        Op::Truncate { ts } => {
            w.u8(4);
            w.u64(*ts);
        }
        Op::Fill {
            ts,
            field_id,
            pks,
            column,
        } => {
            w.u8(5);
            w.u64(*ts);
            w.i64(*field_id);
            encode_pks(&mut w, pks);
            encode_column(&mut w, column);
        }
    }
    w.buf
}

pub fn decode(bytes: &[u8], schema: &CollectionSchema) -> Result<Op, DecodeError> {
    let mut r = Reader::new(bytes);
    let kind = r.u8("record kind")?;
    let ts = r.u64("timestamp")?;
    let op = match kind {
        1 => {
            let partition = r.u64("partition id")?;
            let columns = decode_columns(&mut r, schema)?;
            Op::Insert {
                ts,
                partition,
                columns,
            }
        }
        2 => {
            let partition = r.u64("partition id")?;
            let pks = decode_pks(&mut r)?;
            Op::Delete { ts, partition, pks }
        }
        3 => Op::DropPartition {
            ts,
            partition: r.u64("partition id")?,
        },
        4 => Op::Truncate { ts },
        5 => {
            let field_id = r.i64("field id")?;
            let pks = decode_pks(&mut r)?;
            let column = decode_column(&mut r)?;
            if column.len() != pks.len() {
                return Err(DecodeError(format!(
                    "fill of {} keys carries {} values",
                    pks.len(),
                    column.len()
                )));
            }
            Op::Fill {
                ts,
                field_id,
                pks,
                column,
            }
        }
        k => return Err(DecodeError(format!("unknown record kind {k}"))),
    };
    if r.remaining() != 0 {
        return Err(DecodeError(format!(
            "{} trailing bytes after record",
            r.remaining()
        )));
    }
    Ok(op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_core::{ColumnData, DataType, FieldSchema, VectorColumn};

    fn schema() -> CollectionSchema {
        let mut s = CollectionSchema {
            name: "c".into(),
            description: String::new(),
            fields: vec![
                FieldSchema::new("id", DataType::VarChar)
                    .primary(false)
                    .with_param("max_length", 8),
                FieldSchema::new("v", DataType::FloatVector).with_param("dim", 2),
            ],
            enable_dynamic_field: true,
            functions: vec![],
        };
        s.validate().unwrap();
        s
    }

    #[test]
    fn every_op_round_trips_and_damage_is_an_error() {
        let s = schema();
        let ops = vec![
            Op::Insert {
                ts: 7,
                partition: 3,
                columns: vec![
                    Column::new(ColumnData::VarChar(vec!["a".into(), "b".into()])),
                    Column::new(ColumnData::Vector(VectorColumn::f32(
                        2,
                        vec![1., 2., 3., 4.],
                    ))),
                    Column::new(ColumnData::Json(vec![
                        serde_json::json!({"k": 1}),
                        serde_json::json!({}),
                    ])),
                ],
            },
            Op::Delete {
                ts: 8,
                partition: ALL_PARTITIONS,
                pks: vec![Pk::Str("a".into())],
            },
            Op::Delete {
                ts: 9,
                partition: 3,
                pks: vec![Pk::Int(-5), Pk::Int(6)],
            },
            Op::DropPartition {
                ts: 10,
                partition: 3,
            },
            Op::Truncate { ts: 11 },
            Op::Fill {
                ts: 12,
                field_id: 101,
                pks: vec![Pk::Str("a".into())],
                column: Column::new(ColumnData::Vector(VectorColumn::f32(2, vec![5., 6.]))),
            },
        ];
        for op in ops {
            let bytes = encode(&op, &s);
            assert_eq!(decode(&bytes, &s).unwrap(), op);
            for cut in 0..bytes.len() {
                assert!(decode(&bytes[..cut], &s).is_err(), "{op:?} cut at {cut}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(decode(&longer, &s).is_err());
        }
    }

    #[test]
    fn records_from_before_an_added_field_decode_with_nulls() {
        let old = schema();
        let op = Op::Insert {
            ts: 1,
            partition: 0,
            columns: vec![
                Column::new(ColumnData::VarChar(vec!["a".into()])),
                Column::new(ColumnData::Vector(VectorColumn::f32(2, vec![1., 2.]))),
                Column::new(ColumnData::Json(vec![serde_json::json!({})])),
            ],
        };
        let bytes = encode(&op, &old);
        let mut new = old.clone();
        let mut added = FieldSchema::new("v2", DataType::FloatVector).with_param("dim", 3);
        added.nullable = true;
        added.field_id = 102;
        new.fields.push(added.clone());
        let Op::Insert { columns, .. } = decode(&bytes, &new).unwrap() else {
            panic!("not an insert");
        };
        assert_eq!(columns.len(), 4);
        assert!(columns[2].is_null(0) && columns[2].len() == 1);
        assert!(matches!(columns[3].data, ColumnData::Json(_)));
        // A missing column of a field that is not nullable is still an error.
        added.nullable = false;
        new.fields[2] = added;
        assert!(decode(&bytes, &new).is_err());
    }
}
