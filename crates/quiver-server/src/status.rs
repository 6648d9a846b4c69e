//! The one place where engine errors become Milvus `common.Status` values.
//!
//! Every application error travels inside the response's `status`, never as a gRPC error
//! (gRPC errors are reserved for transport problems and UNIMPLEMENTED RPCs). Each status fills
//! both the new-style `code` (Milvus `merr` numbers) and the deprecated `error_code` enum, because
//! pymilvus treats a response as failed when either is non-zero and recognises some conditions
//! by one or the other (`has_collection` looks for `code == 100` or `error_code ==
//! CollectionNotExists`). `reason` is the engine's message; input errors also carry
//! `extra_info["is_input_error"] = "true"`, as Milvus does.
//!
//! | engine error                                    | code  | error_code              |
//! |-------------------------------------------------|-------|-------------------------|
//! | CollectionNotFound                              | 100   | CollectionNotExists (4) |
//! | PartitionNotFound                               | 200   | MetaFailed (15)         |
//! | IndexNotFound                                   | 700   | IndexNotExist (25)      |
//! | DatabaseNotFound                                | 800   | UnexpectedError (1)     |
//! | AliasNotFound                                   | 1600  | UnexpectedError (1)     |
//! | AlreadyExists (alias)                           | 1602  | UnexpectedError (1)     |
//! | AlreadyExists (other), invalid input, FailedPrecondition, Unsupported | 1100 | IllegalArgument (5) |
//! | ResourceExhausted                               | 9     | ForceDeny (48)          |
//! | Unavailable                                     | 2     | UnexpectedError (1)     |
//! | Io, Corrupt, Internal (and panics)              | 65535 | UnexpectedError (1)     |
//!
//! Credential handlers answer some conditions with [`failed`] directly (1400, 1401, 65535; see
//! `users`). Authentication failures are not statuses at all: like Milvus, they are the gRPC
//! status UNAUTHENTICATED (see `auth`).

use quiver_core::Error;

use crate::proto::common::{ErrorCode, Status};

/// Milvus `merr` codes used by Quiver.
pub mod code {
    pub const SUCCESS: i32 = 0;
    pub const SERVICE_UNAVAILABLE: i32 = 2;
    pub const QUOTA_EXCEEDED: i32 = 9;
    pub const COLLECTION_NOT_FOUND: i32 = 100;
    pub const PARTITION_NOT_FOUND: i32 = 200;
    pub const INDEX_NOT_FOUND: i32 = 700;
    pub const DATABASE_NOT_FOUND: i32 = 800;
    pub const PARAMETER_INVALID: i32 = 1100;
    pub const PRIVILEGE_NOT_AUTHENTICATED: i32 = 1400;
    pub const PRIVILEGE_NOT_PERMITTED: i32 = 1401;
    pub const ALIAS_NOT_FOUND: i32 = 1600;
    pub const ALIAS_ALREADY_EXISTS: i32 = 1602;
    pub const UNEXPECTED: i32 = 65535;
}

/// The success status.
pub fn ok() -> Status {
    Status::default()
}

fn status(code: i32, error_code: ErrorCode, reason: String, input_error: bool) -> Status {
    let mut s = Status {
        code,
        reason,
        ..Default::default()
    };
    #[allow(deprecated)]
    {
        s.error_code = error_code as i32;
    }
    if input_error {
        s.extra_info.insert("is_input_error".into(), "true".into());
    }
    s
}

/// A failed status with explicit codes, for conditions that are not engine errors (credential
/// checks: 1400 not authenticated, 1401 not permitted, ...).
pub fn failed(code: i32, error_code: ErrorCode, reason: String, input_error: bool) -> Status {
    status(code, error_code, reason, input_error)
}

/// The `(code, error_code)` pair for an engine error.
pub fn codes(e: &Error) -> (i32, ErrorCode) {
    match e {
        Error::CollectionNotFound(_) => {
            (code::COLLECTION_NOT_FOUND, ErrorCode::CollectionNotExists)
        }
        Error::PartitionNotFound(_) => (code::PARTITION_NOT_FOUND, ErrorCode::MetaFailed),
        Error::IndexNotFound { .. } => (code::INDEX_NOT_FOUND, ErrorCode::IndexNotExist),
        Error::DatabaseNotFound(_) => (code::DATABASE_NOT_FOUND, ErrorCode::UnexpectedError),
        Error::AliasNotFound(_) => (code::ALIAS_NOT_FOUND, ErrorCode::UnexpectedError),
        Error::AlreadyExists { kind: "alias", .. } => {
            (code::ALIAS_ALREADY_EXISTS, ErrorCode::UnexpectedError)
        }
        Error::AlreadyExists { .. }
        | Error::InvalidSchema(_)
        | Error::InvalidField { .. }
        | Error::DimMismatch { .. }
        | Error::FieldNotFound(_)
        | Error::InvalidExpr { .. }
        | Error::InvalidArgument(_)
        | Error::FailedPrecondition(_)
        | Error::Unsupported(_) => (code::PARAMETER_INVALID, ErrorCode::IllegalArgument),
        Error::ResourceExhausted(_) => (code::QUOTA_EXCEEDED, ErrorCode::ForceDeny),
        Error::Unavailable(_) => (code::SERVICE_UNAVAILABLE, ErrorCode::UnexpectedError),
        Error::Io { .. } | Error::Corrupt { .. } | Error::Internal(_) => {
            (code::UNEXPECTED, ErrorCode::UnexpectedError)
        }
        // New engine variants fall back to "unexpected" until they get a mapping here.
        #[allow(unreachable_patterns)]
        _ => (code::UNEXPECTED, ErrorCode::UnexpectedError),
    }
}

/// The Milvus status for an engine error.
pub fn from_error(e: &Error) -> Status {
    let (code, error_code) = codes(e);
    status(code, error_code, e.to_string(), e.is_input_error())
}

/// An "unexpected error" status for failures outside the engine (a panicked handler).
pub fn unexpected(reason: impl Into<String>) -> Status {
    status(
        code::UNEXPECTED,
        ErrorCode::UnexpectedError,
        reason.into(),
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(deprecated)]
    fn collection_not_found_fills_both_codes() {
        let s = from_error(&Error::CollectionNotFound("c".into()));
        assert_eq!(s.code, 100);
        assert_eq!(s.error_code, ErrorCode::CollectionNotExists as i32);
        assert_eq!(s.reason, "collection not found[collection=c]");
        assert!(s.extra_info.is_empty());
    }

    #[test]
    #[allow(deprecated)]
    fn input_errors_are_parameter_invalid() {
        let e = Error::DimMismatch {
            field: "v".into(),
            expected: 4,
            got: 3,
        };
        let s = from_error(&e);
        assert_eq!(
            (s.code, s.error_code),
            (1100, ErrorCode::IllegalArgument as i32)
        );
        assert_eq!(
            s.extra_info.get("is_input_error").map(String::as_str),
            Some("true")
        );
        let s = from_error(&Error::IndexNotFound {
            collection: "c".into(),
            index: "i".into(),
        });
        assert_eq!(
            (s.code, s.error_code),
            (700, ErrorCode::IndexNotExist as i32)
        );
        let s = from_error(&Error::Internal("boom".into()));
        assert_eq!(
            (s.code, s.error_code),
            (65535, ErrorCode::UnexpectedError as i32)
        );
    }

    #[test]
    fn ok_is_all_zero() {
        assert_eq!(ok(), Status::default());
    }
}
