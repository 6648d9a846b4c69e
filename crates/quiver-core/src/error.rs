//! The one error type of the engine.
//!
//! Every failure a user can cause is a typed variant that names the object (database, collection,
//! field, ...) and the reason; the server maps variants onto Milvus status codes in one place
//! (`quiver-server`), so nothing below the server knows about protobuf. Nothing in the engine panics
//! on user input: validation returns one of these.

use std::path::PathBuf;

/// Result alias used across Quiver's libraries.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine, by cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database not found[database={0}]")]
    DatabaseNotFound(String),
    #[error("collection not found[collection={0}]")]
    CollectionNotFound(String),
    #[error("partition not found[partition={0}]")]
    PartitionNotFound(String),
    #[error("alias not found[alias={0}]")]
    AliasNotFound(String),
    #[error("index not found[collection={collection}, index={index}]")]
    IndexNotFound { collection: String, index: String },
    #[error("{kind} already exists: {name}")]
    AlreadyExists { kind: &'static str, name: String },
    /// The schema given to create a collection is not valid.
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    /// A value in a write or a request does not fit its field.
    #[error("invalid value for field {field}: {reason}")]
    InvalidField { field: String, reason: String },
    /// A vector of the wrong dimension.
    #[error(
        "the dimension of vector field {field} is {expected}, but the data has dimension {got}"
    )]
    DimMismatch {
        field: String,
        expected: usize,
        got: usize,
    },
    /// A field named in a request does not exist.
    #[error("field {0} does not exist")]
    FieldNotFound(String),
    /// A filter expression failed to parse or type check.
    #[error("failed to create query plan: cannot parse expression: {expr}, error: {reason}")]
    InvalidExpr { expr: String, reason: String },
    /// Any other malformed request parameter.
    #[error("invalid parameter: {0}")]
    InvalidArgument(String),
    /// The operation is refused in the current state (e.g. dropping the default database).
    #[error("{0}")]
    FailedPrecondition(String),
    /// A memory or size budget would be exceeded; refused before allocating.
    #[error("resource exhausted: {0}")]
    ResourceExhausted(String),
    /// The operation is not supported (yet).
    #[error("not supported: {0}")]
    Unsupported(String),
    /// An I/O failure, with the file and the operation.
    #[error("I/O error during {op} on {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Bytes on disk that are not what they should be. Never skipped silently.
    #[error("corrupt data in {} at offset {offset}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// The engine was stopped, or a component is poisoned after an unrecoverable I/O error.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug: an invariant did not hold. Reported, never a panic.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Shorthand for [`Error::InvalidField`].
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidField {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A field error placed at row `row` of a batch (other errors unchanged).
    pub fn at_row(self, row: usize) -> Self {
        match self {
            Error::InvalidField { field, reason } => Error::InvalidField {
                field,
                reason: format!("row {row}: {reason}"),
            },
            e => e,
        }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Shorthand for [`Error::Corrupt`].
    pub fn corrupt(path: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// True when the failure is the caller's input (as opposed to the system's state).
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            Error::InvalidSchema(_)
                | Error::InvalidField { .. }
                | Error::DimMismatch { .. }
                | Error::FieldNotFound(_)
                | Error::InvalidExpr { .. }
                | Error::InvalidArgument(_)
        )
    }
}
