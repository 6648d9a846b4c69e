//! The single-threaded WAL: open/recovery, batch append, rotation,
//! checkpoint truncation and replay.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::ops::RangeInclusive;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{IoOp, ReplayError, WalError};
use crate::failpoint::FailPoints;
use crate::format::{
    decode_header, encode_header, encode_record, record_crc, segment_path, RecordHeader,
    HEADER_LEN, RECORD_HEADER_LEN,
};
use crate::fsutil::{create_segment, lock_dir, sync_dir};
use crate::inspect::ProblemKind;
use crate::options::{RecoveryReport, SyncMode, TornTail, WalOptions, WalStats};
use crate::scan::scan_dir;

/// Encode buffers above this capacity are freed after use.
const KEEP_BUF: usize = 8 << 20;

/// One segment file as known to an open WAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentMeta {
    pub path: PathBuf,
    /// LSN of the segment's first record (the LSN its first record has or
    /// will have, if it is empty).
    pub first_lsn: u64,
    /// Length of the valid, durable part of the file.
    pub bytes: u64,
}

/// A segmented write-ahead log in one directory. See the crate docs for the
/// format and invariants. Single-writer (`&mut self`); wrap it in a
/// [`crate::Committer`] for concurrent group commit.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    opts: WalOptions,
    /// Oldest first; the last one is the active segment. Never empty.
    segments: Vec<SegmentMeta>,
    active: File,
    next_lsn: u64,
    poisoned: Option<String>,
    stats: WalStats,
    buf: Vec<u8>,
    fail: FailPoints,
    _lock: File,
}

impl Wal {
    /// Opens (creating if needed) the WAL in `dir` and runs recovery: every
    /// segment is verified; a torn tail of the final segment is truncated
    /// away and a torn header of an empty final segment is rewritten (both
    /// fsynced, whatever the sync mode, and reported). Any other damage is an
    /// error and nothing is modified. Takes an exclusive lock on the
    /// directory (`<dir>/LOCK`) until the `Wal` is dropped.
    pub fn open(
        dir: impl AsRef<Path>,
        options: WalOptions,
    ) -> Result<(Wal, RecoveryReport), WalError> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        let fail = FailPoints::new();
        let sync = options.sync_mode == SyncMode::Data;
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).map_err(|e| WalError::io(&dir, IoOp::CreateDir, e))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                if sync {
                    sync_dir(parent, &fail)?;
                }
            }
        }
        let lock = lock_dir(&dir)?;
        let scan = scan_dir(&dir, false)?;
        let problem = scan.first_problem().cloned();
        if let Some(p) = &problem {
            if !p.is_repairable() {
                return Err(p.to_error());
            }
        }
        let mut report = RecoveryReport {
            created: false,
            segments: 0,
            records: scan.segments.iter().map(|s| s.scan.records).sum(),
            first_lsn: 0,
            last_lsn: 0,
            torn_tail: None,
            repaired_header: None,
        };
        let mut segments: Vec<SegmentMeta> = scan
            .segments
            .iter()
            .map(|s| SegmentMeta {
                path: s.path.clone(),
                first_lsn: s.scan.first_lsn,
                bytes: s.scan.valid_len,
            })
            .collect();
        let mut stats = WalStats::default();
        let (active, next_lsn) = match scan.segments.last() {
            None => {
                let start = options.start_lsn.max(1);
                let path = segment_path(&dir, start);
                let file = create_segment(&dir, &path, start, sync, &fail)?;
                segments.push(SegmentMeta {
                    path,
                    first_lsn: start,
                    bytes: HEADER_LEN,
                });
                report.created = true;
                stats.segments_created = 1;
                (file, start)
            }
            Some(last) => {
                let path = &last.path;
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(path)
                    .map_err(|e| WalError::io(path, IoOp::Open, e))?;
                let repair_err = |e| WalError::io(path, IoOp::Truncate, e);
                match problem.map(|p| (p.offset, p.kind)) {
                    Some((offset, ProblemKind::TornTail { bytes, reason })) => {
                        file.set_len(offset)
                            .and_then(|()| file.sync_all())
                            .map_err(repair_err)?;
                        report.torn_tail = Some(TornTail {
                            file: path.clone(),
                            offset,
                            bytes_dropped: bytes,
                            reason,
                        });
                    }
                    Some((_, ProblemKind::TornHeader)) => {
                        file.set_len(0)
                            .and_then(|()| {
                                file.write_all_at(&encode_header(last.scan.first_lsn), 0)
                            })
                            .and_then(|()| file.sync_all())
                            .map_err(repair_err)?;
                        sync_dir(&dir, &fail)?;
                        segments.last_mut().expect("non-empty").bytes = HEADER_LEN;
                        report.repaired_header = Some(path.clone());
                    }
                    _ => {}
                }
                (file, last.scan.next_lsn)
            }
        };
        let first_lsn = segments[0].first_lsn;
        report.segments = segments.len();
        report.first_lsn = first_lsn;
        report.last_lsn = next_lsn - 1;
        let wal = Wal {
            dir,
            opts: options,
            segments,
            active,
            next_lsn,
            poisoned: None,
            stats,
            buf: Vec::new(),
            fail,
            _lock: lock,
        };
        Ok((wal, report))
    }

    /// Appends `payloads` as consecutive records with one `write` and (in
    /// [`SyncMode::Data`]) one `fdatasync`, returning their LSNs. Durable
    /// when this returns `Ok`. An empty batch does no I/O and returns an
    /// empty range (`next..=next-1`).
    ///
    /// On an error nothing is consumed: no LSN is used and the file is
    /// truncated back to its previous length. See the crate docs for when
    /// the WAL is poisoned instead.
    pub fn append_batch(&mut self, payloads: &[&[u8]]) -> Result<RangeInclusive<u64>, WalError> {
        self.check_writable()?;
        let max = self.opts.max_payload_bytes;
        if let Some(p) = payloads.iter().find(|p| p.len() > max) {
            return Err(WalError::PayloadTooLarge { len: p.len(), max });
        }
        let first = self.next_lsn;
        if payloads.is_empty() {
            return Ok(first..=first - 1);
        }
        let bytes: u64 = payloads
            .iter()
            .map(|p| RECORD_HEADER_LEN + p.len() as u64)
            .sum();
        let cur = self.active_meta().bytes;
        if cur > HEADER_LEN && cur + bytes > self.opts.segment_bytes {
            self.rotate_inner()?;
        }
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        for (i, p) in payloads.iter().enumerate() {
            encode_record(&mut buf, first + i as u64, p);
        }
        let res = self.write_and_sync(&buf);
        if buf.capacity() <= KEEP_BUF {
            self.buf = buf;
        }
        res?;
        let n = payloads.len() as u64;
        self.next_lsn += n;
        self.stats.records += n;
        self.stats.batches += 1;
        Ok(first..=first + n - 1)
    }

    /// Appends one record; see [`Wal::append_batch`].
    pub fn append(&mut self, payload: &[u8]) -> Result<u64, WalError> {
        Ok(*self.append_batch(&[payload])?.start())
    }

    fn write_and_sync(&mut self, buf: &[u8]) -> Result<(), WalError> {
        let start = self.active_meta().bytes;
        let file = &self.active;
        let write = self
            .fail
            .check(IoOp::Write)
            .inspect_err(|_| {
                // Simulate a short write before the error.
                let _ = file.write_all_at(&buf[..buf.len() / 2], start);
            })
            .and_then(|()| file.write_all_at(buf, start));
        if let Err(e) = write {
            return Err(self.fail_group(start, IoOp::Write, e));
        }
        if self.opts.sync_mode == SyncMode::Data {
            let sync = self.fail.check(IoOp::Sync).and_then(|()| file.sync_data());
            if let Err(e) = sync {
                return Err(self.fail_group(start, IoOp::Sync, e));
            }
            self.stats.data_syncs += 1;
        }
        self.segments.last_mut().expect("non-empty").bytes = start + buf.len() as u64;
        Ok(())
    }

    /// Undoes a failed batch by truncating the active segment back to
    /// `start`; poisons the WAL if that fails or if the failure was an fsync.
    fn fail_group(&mut self, start: u64, op: IoOp, e: io::Error) -> WalError {
        let path = self.active_meta().path.clone();
        let err = WalError::io(&path, op, e);
        let sync = self.opts.sync_mode == SyncMode::Data;
        let file = &self.active;
        let undo = self
            .fail
            .check(IoOp::Truncate)
            .and_then(|()| file.set_len(start))
            .and_then(|()| if sync { file.sync_all() } else { Ok(()) });
        match undo {
            Err(te) => self.poison(format!(
                "{err}; truncating {} back to {start} bytes to undo it also failed: {te}",
                path.display()
            )),
            Ok(()) if op == IoOp::Sync => self.poison(format!(
                "{err} (after a failed fsync the page cache state is unknown)"
            )),
            Ok(()) => {}
        }
        err
    }

    fn poison(&mut self, reason: String) {
        if self.poisoned.is_none() {
            self.poisoned = Some(reason);
        }
    }

    fn check_writable(&self) -> Result<(), WalError> {
        match &self.poisoned {
            Some(reason) => Err(WalError::Poisoned {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Starts a new segment unless the active one holds no record yet (then
    /// this is a no-op). Called by the engine at checkpoints so that older
    /// segments become deletable by [`Wal::truncate_prefix`].
    pub fn rotate(&mut self) -> Result<(), WalError> {
        self.check_writable()?;
        if self.active_meta().bytes > HEADER_LEN {
            self.rotate_inner()?;
        }
        Ok(())
    }

    fn rotate_inner(&mut self) -> Result<(), WalError> {
        let first = self.next_lsn;
        let path = segment_path(&self.dir, first);
        let sync = self.opts.sync_mode == SyncMode::Data;
        match create_segment(&self.dir, &path, first, sync, &self.fail) {
            Ok(file) => {
                self.active = file;
                self.segments.push(SegmentMeta {
                    path,
                    first_lsn: first,
                    bytes: HEADER_LEN,
                });
                self.stats.segments_created += 1;
                Ok(())
            }
            Err(e) => {
                if matches!(
                    &e,
                    WalError::Io {
                        op: IoOp::Sync | IoOp::SyncDir,
                        ..
                    }
                ) {
                    self.poison(format!("{e} (while creating a new segment)"));
                } else if path.symlink_metadata().is_ok() {
                    // A leftover file named after `next_lsn` would clash with
                    // a later append to the current segment (an LSN gap on
                    // the next open), so refuse further appends.
                    self.poison(format!(
                        "{e}; the partially created segment could not be removed"
                    ));
                }
                Err(e)
            }
        }
    }

    /// Deletes, oldest first, every non-active segment all of whose records
    /// have LSN `<= upto_lsn`, fsyncing the directory after each deletion
    /// (so a crash leaves a contiguous suffix). Returns the number deleted.
    /// The active segment is never deleted; call [`Wal::rotate`] first.
    pub fn truncate_prefix(&mut self, upto_lsn: u64) -> Result<usize, WalError> {
        let sync = self.opts.sync_mode == SyncMode::Data;
        let mut removed = 0;
        while self.segments.len() > 1 && self.segments[1].first_lsn - 1 <= upto_lsn {
            let path = self.segments[0].path.clone();
            let rm = self
                .fail
                .check(IoOp::Remove)
                .and_then(|()| std::fs::remove_file(&path));
            match rm {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(WalError::io(&path, IoOp::Remove, e))
                }
                _ => {}
            }
            self.segments.remove(0);
            self.stats.segments_removed += 1;
            removed += 1;
            if sync {
                sync_dir(&self.dir, &self.fail)?;
            }
        }
        Ok(removed)
    }

    /// Streams every record with `lsn > after_lsn`, in LSN order, reading the
    /// segment files again (memory: one payload at a time). Records are
    /// re-verified; damage that appeared since open is `Corrupt`. Stops at
    /// the first callback error. If `after_lsn + 1 < first_lsn()` the records
    /// in between are gone; checking that is the caller's job.
    pub fn replay<E>(
        &self,
        after_lsn: u64,
        mut f: impl FnMut(u64, &[u8]) -> Result<(), E>,
    ) -> Result<(), ReplayError<E>> {
        let mut payload = Vec::new();
        for (i, seg) in self.segments.iter().enumerate() {
            let end_lsn = self
                .segments
                .get(i + 1)
                .map_or(self.next_lsn, |s| s.first_lsn);
            if end_lsn - 1 <= after_lsn {
                continue;
            }
            replay_segment(seg, end_lsn, after_lsn, &mut payload, &mut f)?;
        }
        Ok(())
    }

    /// Collects all payloads with `lsn > after_lsn` (convenience for tests
    /// and tools; use [`Wal::replay`] for large logs).
    pub fn read_all(&self, after_lsn: u64) -> Result<Vec<(u64, Vec<u8>)>, WalError> {
        let mut out = Vec::new();
        self.replay(after_lsn, |lsn, p| {
            out.push((lsn, p.to_vec()));
            Ok::<(), std::convert::Infallible>(())
        })
        .map_err(|e| match e {
            ReplayError::Wal(e) => e,
            ReplayError::Callback(never) => match never {},
        })?;
        Ok(out)
    }

    fn active_meta(&self) -> &SegmentMeta {
        self.segments
            .last()
            .expect("a WAL always has an active segment")
    }

    /// LSN of the oldest record still in the log (or that the next record
    /// will get, if the log is empty). After a checkpoint at LSN X the engine
    /// must see `first_lsn() <= X + 1`, else records are missing.
    pub fn first_lsn(&self) -> u64 {
        self.segments[0].first_lsn
    }

    /// LSN of the newest durable record; `first_lsn() - 1` if empty.
    pub fn last_lsn(&self) -> u64 {
        self.next_lsn - 1
    }

    /// The LSN the next appended record will get.
    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// True if the log holds no record.
    pub fn is_empty(&self) -> bool {
        self.next_lsn == self.first_lsn()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn options(&self) -> &WalOptions {
        &self.opts
    }

    pub fn sync_mode(&self) -> SyncMode {
        self.opts.sync_mode
    }

    /// Segment files, oldest first; the last is the active one.
    pub fn segments(&self) -> &[SegmentMeta] {
        &self.segments
    }

    pub fn stats(&self) -> WalStats {
        self.stats
    }

    /// Why appends are refused, if the WAL is poisoned.
    pub fn poisoned(&self) -> Option<&str> {
        self.poisoned.as_deref()
    }

    /// Failure injection handle for this WAL (tests only).
    #[cfg(any(test, feature = "failpoints"))]
    pub fn failpoints(&self) -> FailPoints {
        self.fail.clone()
    }
}

fn replay_segment<E>(
    seg: &SegmentMeta,
    end_lsn: u64,
    after_lsn: u64,
    payload: &mut Vec<u8>,
    f: &mut impl FnMut(u64, &[u8]) -> Result<(), E>,
) -> Result<(), ReplayError<E>> {
    let path = &seg.path;
    let file = File::open(path).map_err(|e| WalError::io(path, IoOp::Open, e))?;
    let mut r = BufReader::with_capacity(1 << 20, (&file).take(seg.bytes));
    let corrupt = |off: u64, reason: String| ReplayError::Wal(WalError::corrupt(path, off, reason));
    let read = |r: &mut BufReader<_>, buf: &mut [u8], off: u64| -> Result<(), ReplayError<E>> {
        r.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                corrupt(
                    off,
                    "segment is shorter than when the WAL was opened".into(),
                )
            } else {
                ReplayError::Wal(WalError::io(path, IoOp::Read, e))
            }
        })
    };
    let mut h = [0u8; HEADER_LEN as usize];
    read(&mut r, &mut h, 0)?;
    if decode_header(&h) != Ok(seg.first_lsn) {
        return Err(corrupt(
            0,
            "segment header changed since the WAL was opened".into(),
        ));
    }
    let mut off = HEADER_LEN;
    let mut lsn = seg.first_lsn;
    let mut rh = [0u8; RECORD_HEADER_LEN as usize];
    while off < seg.bytes {
        read(&mut r, &mut rh, off)?;
        let h = RecordHeader::decode(&rh);
        if off + RECORD_HEADER_LEN + u64::from(h.len) > seg.bytes {
            return Err(corrupt(
                off,
                "record length changed since the WAL was opened".into(),
            ));
        }
        payload.resize(h.len as usize, 0);
        read(&mut r, payload, off)?;
        if record_crc(h.lsn, payload) != h.crc || h.lsn != lsn {
            return Err(corrupt(
                off,
                format!("record (expected LSN {lsn}) changed since the WAL was opened"),
            ));
        }
        if lsn > after_lsn {
            f(lsn, payload).map_err(ReplayError::Callback)?;
        }
        off += RECORD_HEADER_LEN + u64::from(h.len);
        lsn += 1;
    }
    if lsn != end_lsn {
        return Err(corrupt(
            off,
            format!(
                "expected records up to LSN {}, found up to {}",
                end_lsn - 1,
                lsn - 1
            ),
        ));
    }
    Ok(())
}
