//! quiver-core: the vocabulary every Quiver crate shares.
//!
//! - [`schema`]: data types (Milvus wire numbers), fields, collection schemas and their validation;
//! - [`value`]: columns and cells, the in-memory form of rows;
//! - [`codec`]: the little-endian binary encoding of columns used by WAL records and segments;
//! - [`storage`]: the one storage interface for immutable files, and its local-directory backend;
//! - [`ts`]: hybrid timestamps;
//! - [`error`]: the engine's error type.
//!
//! This crate has no I/O beyond `storage` and no knowledge of protocols.

pub mod codec;
pub mod error;
pub mod schema;
pub mod storage;
pub mod ts;
pub mod value;

pub use error::{Error, Result};
pub use schema::{CollectionSchema, DataType, FieldSchema};
pub use value::{Cell, Column, ColumnData, SparseColumn, VectorColumn, VectorData};
