//! Options, statistics and the recovery report.

use std::path::PathBuf;

use crate::error::WalError;

/// When appended records are forced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// `fdatasync` after every batch/group, `fsync` of new segment files and
    /// of the directory. An acknowledged append survives kill -9 and power
    /// loss. The default.
    #[default]
    Data,
    /// No `fsync` at all (recovery still syncs its repairs). **Not durable**:
    /// after a power loss or OS crash acknowledged records may be lost and a
    /// non-final segment may be left torn, which `open` then reports as
    /// `Corrupt`. Survives a process kill (the page cache survives). Only for
    /// tests and benchmarks that explicitly opt out of durability.
    None,
}

/// Options of [`crate::Wal::open`]. Public fields plus builder methods:
/// `WalOptions::default().segment_bytes(1 << 20).sync_mode(SyncMode::None)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalOptions {
    /// A new segment file is started before a batch that would make the
    /// current segment exceed this many bytes (unless the current segment
    /// holds no record yet, so a single oversized batch still fits).
    /// Default 64 MiB.
    pub segment_bytes: u64,
    /// Largest accepted payload; larger ones get
    /// [`WalError::PayloadTooLarge`]. At most `u32::MAX`. Default 256 MiB.
    /// Recovery and replay read records of any size regardless.
    pub max_payload_bytes: usize,
    /// Default [`SyncMode::Data`].
    pub sync_mode: SyncMode,
    /// LSN of the first record when the directory holds no segment yet (a new log). The engine
    /// sets it to its checkpoint + 1, so a log recreated after its files were lost never hands
    /// out LSNs that the checkpoint already covers. Default 1.
    pub start_lsn: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes: 64 << 20,
            max_payload_bytes: 256 << 20,
            sync_mode: SyncMode::Data,
            start_lsn: 1,
        }
    }
}

impl WalOptions {
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.max_payload_bytes = bytes;
        self
    }

    pub fn sync_mode(mut self, mode: SyncMode) -> Self {
        self.sync_mode = mode;
        self
    }

    pub fn start_lsn(mut self, lsn: u64) -> Self {
        self.start_lsn = lsn.max(1);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), WalError> {
        if self.segment_bytes == 0 {
            return Err(WalError::InvalidOptions("segment_bytes must be > 0".into()));
        }
        if self.max_payload_bytes as u64 > u64::from(u32::MAX) {
            return Err(WalError::InvalidOptions(format!(
                "max_payload_bytes {} exceeds the format limit of {} (u32 length field)",
                self.max_payload_bytes,
                u32::MAX
            )));
        }
        Ok(())
    }
}

/// Counters since open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Records made durable (acknowledged).
    pub records: u64,
    /// Successful batch writes (one `write` call each; a commit group is one).
    pub batches: u64,
    /// `fdatasync` calls on segment data (one per batch in `SyncMode::Data`).
    pub data_syncs: u64,
    /// Segment files created (rotations, plus the first segment of a new WAL).
    pub segments_created: u64,
    /// Segment files deleted by `truncate_prefix`.
    pub segments_removed: u64,
}

/// A torn tail removed by recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub file: PathBuf,
    /// The file was truncated to this length (start of the torn record).
    pub offset: u64,
    pub bytes_dropped: u64,
    pub reason: String,
}

/// What [`crate::Wal::open`] found and repaired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// True if the directory held no segment and a new WAL was created.
    pub created: bool,
    /// Segment files after recovery.
    pub segments: usize,
    /// Valid records found (all of them replayable).
    pub records: u64,
    /// `Wal::first_lsn()` after recovery.
    pub first_lsn: u64,
    /// `Wal::last_lsn()` after recovery (`first_lsn - 1` if empty).
    pub last_lsn: u64,
    /// The torn final record that was truncated away, if any.
    pub torn_tail: Option<TornTail>,
    /// The final segment whose torn header was rewritten, if any.
    pub repaired_header: Option<PathBuf>,
}
