//! # quiver-wal — segmented write-ahead log
//!
//! One WAL per collection, in its own directory. Payloads are opaque bytes
//! (the engine encodes its records). Every record gets an LSN; LSNs are
//! dense: the first record ever is LSN 1 and each next record is +1.
//! Synchronous code, no async runtime.
//!
//! * [`Wal`]: single writer — [`Wal::open`] (recovery), [`Wal::append_batch`],
//!   [`Wal::replay`], [`Wal::rotate`], [`Wal::truncate_prefix`].
//! * [`Committer`]: group commit for many threads on top of a `Wal`.
//! * [`inspect()`]: read-only scan for operators (`quiver inspect wal PATH`).
//!
//! ## On-disk format (a contract: change only with a new format version)
//!
//! All integers little-endian. A directory holds:
//!
//! | file | content |
//! |------|---------|
//! | `<first_lsn as 20 decimal digits>.wal` | a segment: header, then records |
//! | `LOCK` | empty; `flock`ed exclusively while a [`Wal`] is open |
//!
//! Other file names are ignored. Segment header (24 bytes, offset 0):
//!
//! | offset | size | field | value |
//! |-------:|-----:|-------|-------|
//! | 0 | 8 | magic | `b"QVWAL\0\0\0"` |
//! | 8 | 4 | version | `u32` = 1 ([`FORMAT_VERSION`]) |
//! | 12 | 8 | first_lsn | `u64`, equal to the number in the file name, >= 1 |
//! | 20 | 4 | header crc | masked CRC32C of bytes 0..20 |
//!
//! Records follow back to back from offset 24, never spanning segments:
//!
//! | offset | size | field | value |
//! |-------:|-----:|-------|-------|
//! | 0 | 4 | len | `u32` payload length |
//! | 4 | 4 | crc | masked CRC32C over `lsn` (8 bytes LE) followed by `payload` |
//! | 8 | 8 | lsn | `u64` |
//! | 16 | len | payload | opaque bytes |
//!
//! CRC32C is Castagnoli (`crc32c` crate), *masked* as in LevelDB:
//! `mask(c) = c.rotate_right(15).wrapping_add(0xa282_ead8)`, so a CRC stored
//! inside a checksummed payload does not verify by accident. `len` is not
//! covered by the CRC directly, but a wrong `len` makes the CRC cover the
//! wrong bytes and fail. An all-zero record header never verifies.
//!
//! The `version` field's position is fixed for every future version and is
//! checked *before* the header CRC, so a segment of an unknown version
//! always yields [`WalError::UnsupportedVersion`], never a misread.
//!
//! ## Invariants
//!
//! 1. Record *i* of segment *S* has LSN `S.first_lsn + i`; segment *k+1*
//!    starts at the LSN after the last record of segment *k*. So the whole
//!    log holds exactly the LSNs `first_lsn()..=last_lsn()`.
//! 2. Only the last (active) segment is ever written; a segment is created
//!    (create, write header, fsync file, fsync directory) before any record
//!    is written to it. Segment files are never reused.
//! 3. A batch/commit group is one `write` at the end of the active segment
//!    followed by one `fdatasync`; it is acknowledged only after both
//!    succeed ([`SyncMode::Data`]). An acknowledged record survives kill -9
//!    and power loss.
//! 4. The length of the active segment equals the end of its last
//!    acknowledged record, except while a batch is being written; a failed
//!    batch is truncated away before its error is returned.
//! 5. Rotation happens at a record boundary before a batch that would make
//!    the active segment exceed [`WalOptions::segment_bytes`] (a segment
//!    holding no record takes the batch whatever its size).
//!
//! ## Recovery ([`Wal::open`])
//!
//! Segments are scanned in LSN order and every record is verified.
//!
//! | found | outcome |
//! |-------|---------|
//! | final segment ends in a short header, short payload, CRC mismatch or zeros, and **no valid record follows** | torn tail: truncated away + fsync, reported in [`RecoveryReport::torn_tail`] |
//! | final segment shorter than a header, or header zero-filled / a prefix of the expected one, and nothing but zeros after | torn header of an empty segment: rewritten, reported in [`RecoveryReport::repaired_header`] |
//! | a bad record followed (at any later byte offset) by a record that verifies with an LSN >= the expected one | [`WalError::Corrupt`] at the bad record's offset |
//! | a verifying record with the wrong LSN (gap, jump, repeat) | `Corrupt` |
//! | any damage in a non-final segment (incl. a torn tail or header) | `Corrupt` |
//! | segments whose LSNs do not continue each other; header LSN != file name | `Corrupt` |
//! | bad magic or header CRC (and not a torn header as above) | `Corrupt` |
//! | header version != 1 | [`WalError::UnsupportedVersion`] |
//!
//! On any error nothing is modified. [`inspect()`] classifies damage with the
//! same code, without modifying anything.
//!
//! Limits of what a per-record CRC can tell: damage to the very last record
//! of the final segment is indistinguishable from a torn write and is
//! truncated (it was the newest record, possibly unacknowledged). If a power
//! loss persisted a later page of an *unacknowledged* group but not an
//! earlier one, the garbage-then-valid pattern is reported as `Corrupt`
//! (conservative: an operator decides, using `inspect`), never skipped.
//!
//! ## Failures while appending
//!
//! * Write error (ENOSPC, EFBIG, EIO, ...): the segment is truncated back to
//!   its length before the batch (and fsynced); the caller(s) get
//!   [`WalError::Io`] (`op`, `path`, errno message such as "No space left on
//!   device"), no LSN is consumed, `apply` is not called, and later appends
//!   work again (e.g. once space is freed).
//! * fsync error: after a failed fsync the kernel may have dropped the dirty
//!   pages and a retried fsync can falsely succeed ("fsyncgate"), so the
//!   group is truncated away (best effort) and the WAL is **poisoned**.
//! * If the undo truncation fails, or a new segment's file/directory fsync
//!   fails, the WAL is poisoned too.
//! * Poisoned: appends, `rotate` and commits fail fast with
//!   [`WalError::Poisoned`] until the WAL is reopened (which re-runs
//!   recovery). Replay, `truncate_prefix` and accessors keep working.
//!
//! A commit that was in flight during a crash, or that failed with a
//! poisoning error, has an indeterminate outcome (it may or may not be
//! replayed after recovery); one that failed with a non-poisoning error is
//! definitely not in the log.
//!
//! ## Checkpoints
//!
//! After the engine persisted everything up to LSN X elsewhere it calls
//! [`Wal::rotate`] and [`Wal::truncate_prefix`]`(X)`, which deletes whole
//! segments whose records are all <= X (never the active one). On restart it
//! must check `wal.first_lsn() <= X + 1`; otherwise records are missing.
//! [`Wal::first_lsn`] survives truncation even when the log is empty,
//! because the active segment's header records it.

mod committer;
mod error;
mod failpoint;
mod format;
mod fsutil;
mod inspect;
mod options;
mod scan;
mod wal;

#[cfg(test)]
mod tests;

pub use committer::{ApplyFn, Committer, Log};
pub use error::{IoOp, ReplayError, WalError};
#[cfg(any(test, feature = "failpoints"))]
pub use failpoint::FailPoints;
pub use format::{FORMAT_VERSION, HEADER_LEN, MAGIC, RECORD_HEADER_LEN};
pub use inspect::{inspect, InspectReport, Problem, ProblemKind, RecordInfo, SegmentInfo};
pub use options::{RecoveryReport, SyncMode, TornTail, WalOptions, WalStats};
pub use wal::{SegmentMeta, Wal};
