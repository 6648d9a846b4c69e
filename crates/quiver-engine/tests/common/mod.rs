//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use quiver_core::{CollectionSchema, Column, ColumnData, DataType, FieldSchema, VectorColumn};
use quiver_engine::{CreateCollection, Engine, EngineOptions, WriteBatch};

/// A collection with an INT64 key, a 4-d vector, a few scalars and dynamic fields.
pub fn schema(name: &str, dim: usize) -> CollectionSchema {
    let mut tag = FieldSchema::new("tag", DataType::VarChar).with_param("max_length", 16);
    tag.nullable = true;
    let mut arr = FieldSchema::new("arr", DataType::Array).with_param("max_capacity", 4);
    arr.element_type = Some(DataType::Int32);
    CollectionSchema {
        name: name.into(),
        description: String::new(),
        fields: vec![
            FieldSchema::new("id", DataType::Int64).primary(false),
            FieldSchema::new("vec", DataType::FloatVector).with_param("dim", dim),
            FieldSchema::new("n", DataType::Int32),
            tag,
            arr,
        ],
        enable_dynamic_field: true,
        functions: vec![],
    }
}

pub fn small_opts() -> EngineOptions {
    EngineOptions {
        seal_rows: 1000,
        background_flush: false,
        ..Default::default()
    }
}

pub fn create(engine: &Engine, name: &str, dim: usize) {
    engine
        .create_collection("default", CreateCollection::new(schema(name, dim)))
        .unwrap();
}

/// Rows with ids `ids`, vectors `vec_of(id)`, n = id % 10, tag = "t{id%3}" (null when id % 7 == 0).
pub fn batch(ids: &[i64], dim: usize, vec_of: impl Fn(i64) -> Vec<f32>) -> WriteBatch {
    let mut tag = Column::new(ColumnData::VarChar(vec![]));
    for &i in ids {
        if i % 7 == 0 {
            tag.push_cell(quiver_core::Cell::Null);
        } else {
            tag.push_cell(quiver_core::Cell::Str(format!("t{}", i % 3)));
        }
    }
    WriteBatch {
        columns: vec![
            ("id".into(), Column::new(ColumnData::Int64(ids.to_vec()))),
            ("vec".into(), Column::new(ColumnData::Vector(VectorColumn::f32(dim, ids.iter().flat_map(|&i| vec_of(i)).collect())))),
            ("n".into(), Column::new(ColumnData::Int32(ids.iter().map(|&i| (i % 10) as i32).collect()))),
            ("tag".into(), tag),
            ("arr".into(), Column::new(ColumnData::Array(ids.iter().map(|&i| serde_json::json!([i % 4, 7])).collect()))),
            ("$meta".into(), Column::new(ColumnData::Json(ids.iter().map(|&i| serde_json::json!({"color": if i % 2 == 0 { "red" } else { "blue" }, "rank": i})).collect()))),
        ],
        num_rows: ids.len(),
    }
}

/// A deterministic pseudo-random vector.
pub fn rvec(seed: i64, dim: usize) -> Vec<f32> {
    let mut x = (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..dim)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x % 2001) as f32 / 1000.0) - 1.0
        })
        .collect()
}

/// The INT64 column of a result, by name.
pub fn ints(cols: &[quiver_engine::OutColumn], name: &str) -> Vec<i64> {
    let c = cols
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no column {name}"));
    (0..c.column.len())
        .map(|i| match c.column.cell(i) {
            quiver_core::Cell::Int(v) => v,
            other => panic!("not an int: {other:?}"),
        })
        .collect()
}
