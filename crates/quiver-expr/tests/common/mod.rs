//! Shared helpers for the integration tests.
#![allow(dead_code)]

use quiver_expr::{Row, ValueRef};
use serde_json::Value;

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
