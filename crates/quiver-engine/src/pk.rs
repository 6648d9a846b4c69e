//! Primary keys.

use std::fmt;

use quiver_core::{Column, ColumnData, Error, Result};

/// A primary-key value: INT64 or VARCHAR.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pk {
    Int(i64),
    Str(String),
}

impl fmt::Display for Pk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pk::Int(i) => write!(f, "{i}"),
            Pk::Str(s) => write!(f, "{s:?}"),
        }
    }
}

impl Pk {
    /// The primary key at `row` of a pk column (INT64 or VARCHAR).
    pub fn at(col: &Column, row: usize) -> Pk {
        match &col.data {
            ColumnData::Int64(v) => Pk::Int(v[row]),
            ColumnData::VarChar(v) => Pk::Str(v[row].clone()),
            _ => Pk::Int(row as i64),
        }
    }

    /// All keys of a pk column.
    pub fn all(col: &Column) -> Result<Vec<Pk>> {
        match &col.data {
            ColumnData::Int64(v) => Ok(v.iter().map(|&i| Pk::Int(i)).collect()),
            ColumnData::VarChar(v) => Ok(v.iter().map(|s| Pk::Str(s.clone())).collect()),
            _ => Err(Error::Internal(
                "primary key column is not INT64 or VARCHAR".into(),
            )),
        }
    }

    /// Build a pk column from keys (all of the same kind).
    pub fn column(pks: &[Pk], varchar: bool) -> Column {
        if varchar {
            Column::new(ColumnData::VarChar(
                pks.iter()
                    .map(|p| match p {
                        Pk::Str(s) => s.clone(),
                        Pk::Int(i) => i.to_string(),
                    })
                    .collect(),
            ))
        } else {
            Column::new(ColumnData::Int64(
                pks.iter()
                    .map(|p| match p {
                        Pk::Int(i) => *i,
                        Pk::Str(_) => 0,
                    })
                    .collect(),
            ))
        }
    }
}
