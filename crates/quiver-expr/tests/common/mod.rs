//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::collections::HashMap;

use quiver_expr::{compile, ExprError, FieldType, Filter, Row, StaticSchema, ValueRef};
use serde_json::{json, Value};

/// An owned cell; `OwnedRow` lends them out as [`ValueRef`]s.
#[derive(Debug, Clone)]
pub enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Json(Value),
}

#[derive(Debug, Clone, Default)]
pub struct OwnedRow(pub Vec<Cell>);

impl OwnedRow {
    pub fn set(mut self, id: usize, cell: Cell) -> Self {
        if self.0.len() <= id {
            self.0.resize(id + 1, Cell::Null);
        }
        self.0[id] = cell;
        self
    }
}

impl Row for OwnedRow {
    fn get(&self, field_id: usize) -> ValueRef<'_> {
        match self.0.get(field_id) {
            None | Some(Cell::Null) => ValueRef::Null,
            Some(Cell::Bool(b)) => ValueRef::Bool(*b),
            Some(Cell::Int(i)) => ValueRef::Int(*i),
            Some(Cell::Float(f)) => ValueRef::Float(*f),
            Some(Cell::Str(s)) => ValueRef::Str(s),
            Some(Cell::Json(v)) => ValueRef::Json(v),
        }
    }
}

// ---------------------------------------------------------------- fixtures
// A schema covering every field type, one row with known values, and
// template parameters, shared by the construct-by-construct tests.

pub const ID: usize = 0;
pub const AGE: usize = 1;
pub const NAME: usize = 3;
pub const J: usize = 6;
pub const META: usize = 10;

pub fn schema() -> StaticSchema {
    StaticSchema::new()
        .field("id", ID, FieldType::Int64)
        .field("age", AGE, FieldType::Int32)
        .field("price", 2, FieldType::Double)
        .field("name", NAME, FieldType::VarChar)
        .field("flag", 4, FieldType::Bool)
        .nullable_field("score", 5, FieldType::Int64)
        .field("j", J, FieldType::Json)
        .field("arr", 7, FieldType::Array(Box::new(FieldType::Int64)))
        .field("tags", 8, FieldType::Array(Box::new(FieldType::VarChar)))
        .field("small", 9, FieldType::Int8)
        .nullable_field("nj", 11, FieldType::Json)
        .field("ratio", 12, FieldType::Float)
        .unfilterable("vec", "vector fields cannot be filtered")
        .dynamic(META)
}

pub fn row() -> OwnedRow {
    OwnedRow::default()
        .set(ID, Cell::Int(7))
        .set(AGE, Cell::Int(30))
        .set(2, Cell::Float(19.5))
        .set(NAME, Cell::Str("apple pie".into()))
        .set(4, Cell::Bool(true))
        .set(5, Cell::Null)
        .set(
            J,
            Cell::Json(json!({
                "a": 5, "b": "x", "arr": [1, 2.0, "three"], "nested": {"k": [10, 20]},
                "n": null, "t": true, "big": 1e300
            })),
        )
        .set(7, Cell::Json(json!([1, 2, 3])))
        .set(8, Cell::Json(json!(["red", "green"])))
        .set(9, Cell::Int(-5))
        .set(
            META,
            Cell::Json(json!({"color": "blue", "size": 3, "list": [1, 2]})),
        )
        .set(11, Cell::Null)
        .set(12, Cell::Float(0.25))
}

pub fn params() -> HashMap<String, Value> {
    HashMap::from([
        ("ids".to_string(), json!([7, 8])),
        ("min".to_string(), json!(20)),
        ("n".to_string(), json!("apple pie")),
        ("fmin".to_string(), json!(19.25)),
        ("pat".to_string(), json!("app%")),
        ("yes".to_string(), json!(true)),
    ])
}

pub fn filter(src: &str) -> Filter {
    compile(src, &schema(), &params()).unwrap_or_else(|e| panic!("compile {src:?}: {e}"))
}

pub fn tri(src: &str) -> Option<bool> {
    filter(src).eval_tri(&row())
}

pub fn err(src: &str) -> ExprError {
    match compile(src, &schema(), &params()) {
        Ok(f) => panic!("{src:?} compiled to {f:?}"),
        Err(e) => e,
    }
}
