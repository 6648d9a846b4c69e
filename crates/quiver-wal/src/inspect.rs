//! Read-only inspection of a WAL directory (for `quiver inspect wal PATH`).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::WalError;
use crate::scan::scan_dir;

/// One record as found on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordInfo {
    /// Byte offset of the record header in its segment file.
    pub offset: u64,
    /// LSN stored in the record (not trustworthy when `crc_ok` is false).
    pub lsn: u64,
    /// Payload length stored in the record.
    pub len: u32,
    /// Whether the checksum verified. Scanning a segment stops at the first
    /// record that fails, so only the last entry of a segment can be false.
    pub crc_ok: bool,
}

/// What is wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// Byte offset of the first bad byte (a record or header start).
    pub offset: u64,
    pub kind: ProblemKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// The final segment ends in an incomplete or unverifiable record with
    /// nothing valid after it: an interrupted write. `Wal::open` truncates
    /// these `bytes` away.
    TornTail { bytes: u64, reason: String },
    /// The final segment's header is incomplete or zero-filled (a crash while
    /// creating it) and it holds no records. `Wal::open` rewrites it.
    TornHeader,
    /// Damage that `Wal::open` refuses to repair.
    Corrupt { reason: String },
    /// A segment of a format version this build cannot read.
    UnsupportedVersion { version: u32 },
}

impl Problem {
    /// True if `Wal::open` repairs this problem by itself.
    pub fn is_repairable(&self) -> bool {
        matches!(
            self.kind,
            ProblemKind::TornTail { .. } | ProblemKind::TornHeader
        )
    }

    pub(crate) fn corrupt(file: &Path, offset: u64, reason: impl Into<String>) -> Problem {
        Problem {
            file: file.to_path_buf(),
            offset,
            kind: ProblemKind::Corrupt {
                reason: reason.into(),
            },
        }
    }

    /// The error `Wal::open` returns for an unrepairable problem.
    pub(crate) fn to_error(&self) -> WalError {
        match &self.kind {
            ProblemKind::UnsupportedVersion { version } => WalError::UnsupportedVersion {
                file: self.file.clone(),
                version: *version,
            },
            ProblemKind::Corrupt { reason } => {
                WalError::corrupt(self.file.clone(), self.offset, reason.clone())
            }
            ProblemKind::TornTail { reason, .. } => {
                WalError::corrupt(self.file.clone(), self.offset, reason.clone())
            }
            ProblemKind::TornHeader => {
                WalError::corrupt(self.file.clone(), self.offset, "torn segment header")
            }
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        let off = self.offset;
        match &self.kind {
            ProblemKind::TornTail { bytes, reason } => write!(
                f,
                "torn tail in {file} at offset {off}: {bytes} bytes would be dropped on open ({reason})"
            ),
            ProblemKind::TornHeader => write!(
                f,
                "torn header in {file}: empty final segment, rewritten on open"
            ),
            ProblemKind::Corrupt { reason } => {
                write!(f, "CORRUPT: {file} at offset {off}: {reason}")
            }
            ProblemKind::UnsupportedVersion { version } => {
                write!(f, "unsupported format version {version} in {file}")
            }
        }
    }
}

/// Per-segment summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub path: PathBuf,
    /// Header format version; `None` if the header is torn or unreadable.
    pub version: Option<u32>,
    /// First LSN from the header (from the file name if the header is bad).
    pub first_lsn: u64,
    /// Number of valid records.
    pub record_count: u64,
    /// LSN of the last valid record; `None` if there is none.
    pub last_lsn: Option<u64>,
    /// File length in bytes.
    pub bytes: u64,
    /// End offset of the last valid record (what `open` would keep).
    pub valid_bytes: u64,
    /// Every record scanned, in file order (the last one may have
    /// `crc_ok == false`).
    pub records: Vec<RecordInfo>,
    /// The problem found in this segment, if any.
    pub problem: Option<Problem>,
}

/// Result of [`inspect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InspectReport {
    pub dir: PathBuf,
    /// Segments in LSN order.
    pub segments: Vec<SegmentInfo>,
    /// The first problem in LSN order; `None` for a clean log. If it is
    /// [repairable](Problem::is_repairable), `Wal::open` will succeed.
    pub problem: Option<Problem>,
}

/// Scans every segment of the WAL in `dir` without modifying anything (no
/// lock is taken, nothing is truncated or created), classifying damage
/// exactly as [`crate::Wal::open`] would. Only I/O errors are returned as
/// `Err`; damage is reported in [`InspectReport::problem`].
///
/// Holds one [`RecordInfo`] (24 bytes) per record in memory.
pub fn inspect(dir: &Path) -> Result<InspectReport, WalError> {
    let scan = scan_dir(dir, true)?;
    let problem = scan.segments.iter().find_map(|s| s.problem.clone());
    let segments = scan
        .segments
        .into_iter()
        .map(|s| SegmentInfo {
            version: s.scan.version(),
            first_lsn: s.scan.first_lsn,
            record_count: s.scan.records,
            last_lsn: (s.scan.records > 0).then(|| s.scan.next_lsn - 1),
            bytes: s.scan.file_len,
            valid_bytes: s.scan.valid_len,
            records: s.records,
            problem: s.problem,
            path: s.path,
        })
        .collect();
    Ok(InspectReport {
        dir: dir.to_path_buf(),
        segments,
        problem,
    })
}
