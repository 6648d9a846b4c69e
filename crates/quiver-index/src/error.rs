//! The crate's one error type.

/// Why an index could not be built, loaded or parameterised.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IndexError {
    /// A parameter is outside its allowed range or not a number.
    #[error("invalid parameter {name}: {value:?} (allowed: {allowed})")]
    InvalidParam {
        /// Milvus parameter name (`M`, `efConstruction`, `ef`, `nlist`, ...).
        name: String,
        /// The value as given.
        value: String,
        /// The allowed range or set, in words.
        allowed: String,
    },
    /// A required parameter is absent.
    #[error("missing parameter {name} (allowed: {allowed})")]
    MissingParam {
        /// Milvus parameter name.
        name: String,
        /// The allowed range, in words.
        allowed: String,
    },
    /// The index type is not one this crate builds.
    #[error("unsupported index type {0:?} (supported: FLAT, HNSW, IVF_FLAT, IVF_SQ8, IVF_PQ, AUTOINDEX)")]
    UnsupportedIndexType(String),
    /// The vectors do not fit the index (length not `n * dim`, too many rows, zero dim).
    #[error("bad vector data: {0}")]
    Shape(String),
    /// A persisted index is truncated, fails its checksum, or is inconsistent.
    #[error("corrupt index file: {0}")]
    Corrupt(String),
    /// A persisted index was written by an unknown format version.
    #[error("unsupported index format version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// Version in the file.
        found: u16,
        /// Version this build writes and reads.
        supported: u16,
    },
    /// The progress callback asked the build to stop.
    #[error("index build cancelled")]
    Cancelled,
}

impl IndexError {
    pub(crate) fn invalid(name: &str, value: impl ToString, allowed: impl ToString) -> Self {
        IndexError::InvalidParam {
            name: name.to_string(),
            value: value.to_string(),
            allowed: allowed.to_string(),
        }
    }

    pub(crate) fn corrupt(what: impl ToString) -> Self {
        IndexError::Corrupt(what.to_string())
    }
}
