//! Error types.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// The file-system operation that failed, carried by [`WalError::Io`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IoOp {
    /// Creating the WAL directory.
    CreateDir,
    /// Listing the WAL directory.
    ReadDir,
    /// Opening an existing file.
    Open,
    /// Creating a new segment file.
    Create,
    /// Taking the directory lock.
    Lock,
    /// Reading a segment.
    Read,
    /// Writing records or a header.
    Write,
    /// `fdatasync`/`fsync` of a segment file.
    Sync,
    /// `fsync` of the WAL directory.
    SyncDir,
    /// Truncating a segment (recovery, or undoing a failed group).
    Truncate,
    /// Deleting a segment (`truncate_prefix`).
    Remove,
}

impl fmt::Display for IoOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IoOp::CreateDir => "create directory",
            IoOp::ReadDir => "list directory",
            IoOp::Open => "open",
            IoOp::Create => "create segment",
            IoOp::Lock => "lock directory",
            IoOp::Read => "read",
            IoOp::Write => "write",
            IoOp::Sync => "fsync",
            IoOp::SyncDir => "fsync directory",
            IoOp::Truncate => "truncate",
            IoOp::Remove => "remove segment",
        })
    }
}

/// Every error the WAL returns. `Clone` so that one failed group-commit write
/// can be reported to every caller in the group.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WalError {
    /// An operating-system I/O error; `source` carries the errno
    /// (`source.raw_os_error()`), e.g. ENOSPC = "No space left on device".
    #[error("WAL {op} failed on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        op: IoOp,
        #[source]
        source: Arc<io::Error>,
    },
    /// The log is damaged somewhere other than a torn tail. Never skipped
    /// silently: an operator has to look (see `inspect`).
    #[error("WAL corrupt in {} at offset {offset}: {reason}", file.display())]
    Corrupt {
        file: PathBuf,
        offset: u64,
        reason: String,
    },
    /// A segment was written by a format version this build cannot read.
    #[error(
        "unsupported WAL format version {version} in {} (this build reads version {})",
        file.display(),
        crate::format::FORMAT_VERSION
    )]
    UnsupportedVersion { file: PathBuf, version: u32 },
    /// A payload exceeds `WalOptions::max_payload_bytes`.
    #[error("WAL payload of {len} bytes exceeds the limit of {max} bytes")]
    PayloadTooLarge { len: usize, max: usize },
    /// An earlier I/O failure left the on-disk state uncertain; appends fail
    /// fast until the WAL is reopened (which re-runs recovery).
    #[error("WAL is poisoned by an earlier failure and refuses writes until reopened: {reason}")]
    Poisoned { reason: String },
    /// Another `Wal` (in this or another process) holds the directory.
    #[error("WAL directory {} is locked by another open WAL", dir.display())]
    Locked { dir: PathBuf },
    /// Invalid `WalOptions`.
    #[error("invalid WAL options: {0}")]
    InvalidOptions(String),
    /// A newer writer took over the log (a higher epoch holds the next position): this
    /// writer may never append again.
    #[error("this writer was fenced: {reason}")]
    Fenced { reason: String },
    /// The store behind the log failed; nothing was acknowledged and no LSN was consumed.
    #[error("WAL store unavailable: {reason}")]
    Store { reason: String },
}

impl WalError {
    pub(crate) fn io(path: impl Into<PathBuf>, op: IoOp, source: io::Error) -> WalError {
        WalError::Io {
            path: path.into(),
            op,
            source: Arc::new(source),
        }
    }

    pub(crate) fn corrupt(
        file: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        WalError::Corrupt {
            file: file.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// The errno of an [`WalError::Io`] error, if any.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            WalError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// Error of [`crate::Wal::replay`]: either the log could not be read, or the
/// caller's callback failed (and replay stopped there).
#[derive(Debug)]
pub enum ReplayError<E> {
    Wal(WalError),
    Callback(E),
}

impl<E: fmt::Display> fmt::Display for ReplayError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayError::Wal(e) => write!(f, "WAL replay failed: {e}"),
            ReplayError::Callback(e) => write!(f, "WAL replay callback failed: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for ReplayError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReplayError::Wal(e) => Some(e),
            ReplayError::Callback(e) => Some(e),
        }
    }
}

impl<E> From<WalError> for ReplayError<E> {
    fn from(e: WalError) -> Self {
        ReplayError::Wal(e)
    }
}
