//! Read-only scanning and damage classification, shared by `Wal::open`
//! (recovery) and `inspect` so that both always agree.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{IoOp, WalError};
use crate::format::{
    decode_header, encode_header, parse_segment_name, record_crc, HeaderError, RecordHeader,
    FORMAT_VERSION, HEADER_LEN, RECORD_HEADER_LEN,
};
use crate::inspect::{Problem, ProblemKind, RecordInfo};

const WINDOW: usize = 1 << 20;

/// A read-ahead window over a file of known length, served by `pread`.
pub(crate) struct Window<'a> {
    file: &'a File,
    path: &'a Path,
    len: u64,
    start: u64,
    buf: Vec<u8>,
}

impl<'a> Window<'a> {
    pub(crate) fn new(file: &'a File, path: &'a Path, len: u64) -> Self {
        Window {
            file,
            path,
            len,
            start: 0,
            buf: Vec::new(),
        }
    }

    /// Bytes `[off, off + n)`; the caller guarantees `off + n <= len`.
    pub(crate) fn get(&mut self, off: u64, n: usize) -> Result<&[u8], WalError> {
        debug_assert!(off + n as u64 <= self.len);
        let end = off + n as u64;
        if off < self.start || end > self.start + self.buf.len() as u64 {
            let want = (n.max(WINDOW) as u64).min(self.len - off) as usize;
            self.buf.resize(want, 0);
            self.start = off;
            if let Err(e) = self.file.read_exact_at(&mut self.buf, off) {
                self.buf.clear();
                return Err(WalError::io(self.path, IoOp::Read, e));
            }
        }
        let s = (off - self.start) as usize;
        Ok(&self.buf[s..s + n])
    }

    fn all_zero(&mut self, from: u64, to: u64) -> Result<bool, WalError> {
        let mut off = from;
        while off < to {
            let n = (to - off).min(WINDOW as u64) as usize;
            if self.get(off, n)?.iter().any(|b| *b != 0) {
                return Ok(false);
            }
            off += n as u64;
        }
        Ok(true)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderStatus {
    Valid,
    /// Short, zero-filled or a prefix of the expected header, and nothing but
    /// zeros after it: a crash while creating the segment.
    Torn,
    Unsupported(u32),
    Invalid(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tail {
    Clean,
    /// The bytes from `offset` to EOF hold no verifiable record.
    Torn {
        offset: u64,
        reason: String,
    },
    Corrupt {
        offset: u64,
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct SegmentScan {
    /// From the header if valid, else from the file name.
    pub first_lsn: u64,
    pub file_len: u64,
    pub header: HeaderStatus,
    /// Number of valid records.
    pub records: u64,
    /// LSN after the last valid record.
    pub next_lsn: u64,
    /// End offset of the last valid record (0 if the header is not valid).
    pub valid_len: u64,
    pub tail: Tail,
}

impl SegmentScan {
    pub(crate) fn version(&self) -> Option<u32> {
        match self.header {
            HeaderStatus::Valid => Some(FORMAT_VERSION),
            HeaderStatus::Unsupported(v) => Some(v),
            _ => None,
        }
    }
}

/// Scans one segment file. Returns `Err` only for I/O errors.
pub(crate) fn scan_segment(
    path: &Path,
    name_lsn: u64,
    mut records_out: Option<&mut Vec<RecordInfo>>,
) -> Result<SegmentScan, WalError> {
    let file = File::open(path).map_err(|e| WalError::io(path, IoOp::Open, e))?;
    let file_len = file
        .metadata()
        .map_err(|e| WalError::io(path, IoOp::Read, e))?
        .len();
    let mut w = Window::new(&file, path, file_len);
    let mut scan = SegmentScan {
        first_lsn: name_lsn,
        file_len,
        header: HeaderStatus::Valid,
        records: 0,
        next_lsn: name_lsn,
        valid_len: 0,
        tail: Tail::Clean,
    };

    // --- header ---
    let hlen = file_len.min(HEADER_LEN) as usize;
    let head = w.get(0, hlen)?.to_vec();
    let decoded = if hlen == HEADER_LEN as usize {
        decode_header(head.as_slice().try_into().expect("24 bytes"))
    } else {
        Err(HeaderError::BadMagic)
    };
    match decoded {
        Ok(lsn) if lsn != name_lsn => {
            scan.header = HeaderStatus::Invalid(format!(
                "header says first LSN {lsn} but the file name says {name_lsn}"
            ));
            return Ok(scan);
        }
        Ok(0) => {
            scan.header = HeaderStatus::Invalid("first LSN 0 (LSNs start at 1)".into());
            return Ok(scan);
        }
        Ok(_) => {}
        Err(HeaderError::UnsupportedVersion(v)) => {
            scan.header = HeaderStatus::Unsupported(v);
            return Ok(scan);
        }
        Err(e) => {
            let expected = encode_header(name_lsn);
            let same = head
                .iter()
                .zip(&expected)
                .take_while(|(a, b)| a == b)
                .count();
            let torn = head[same..].iter().all(|b| *b == 0) && w.all_zero(HEADER_LEN, file_len)?;
            scan.header = if torn {
                HeaderStatus::Torn
            } else if hlen < HEADER_LEN as usize {
                HeaderStatus::Invalid(format!(
                    "short header ({hlen} bytes) with unexpected content"
                ))
            } else if e == HeaderError::BadMagic {
                HeaderStatus::Invalid("bad magic (not a Quiver WAL segment)".into())
            } else {
                HeaderStatus::Invalid("header checksum mismatch".into())
            };
            return Ok(scan);
        }
    }

    // --- records ---
    let mut off = HEADER_LEN;
    scan.valid_len = HEADER_LEN;
    let expected_lsn = |scan: &SegmentScan| scan.first_lsn + scan.records;
    loop {
        if off == file_len {
            break;
        }
        let rem = file_len - off;
        let expected = expected_lsn(&scan);
        let bad_reason;
        if rem < RECORD_HEADER_LEN {
            bad_reason = format!("truncated record header ({rem} of {RECORD_HEADER_LEN} bytes)");
        } else {
            let h = RecordHeader::decode(w.get(off, RECORD_HEADER_LEN as usize)?);
            let avail = rem - RECORD_HEADER_LEN;
            if u64::from(h.len) > avail {
                bad_reason = format!(
                    "record length {} exceeds the {avail} bytes left in the file",
                    h.len
                );
            } else {
                let payload = w.get(off + RECORD_HEADER_LEN, h.len as usize)?;
                let crc_ok = record_crc(h.lsn, payload) == h.crc;
                if let Some(out) = records_out.as_deref_mut() {
                    out.push(RecordInfo {
                        offset: off,
                        lsn: h.lsn,
                        len: h.len,
                        crc_ok,
                    });
                }
                if !crc_ok {
                    bad_reason = format!("checksum mismatch in record (expected LSN {expected})");
                } else if h.lsn != expected {
                    scan.tail = Tail::Corrupt {
                        offset: off,
                        reason: format!("LSN gap: expected LSN {expected}, found {}", h.lsn),
                    };
                    return Ok(scan);
                } else {
                    scan.records += 1;
                    off += RECORD_HEADER_LEN + u64::from(h.len);
                    scan.valid_len = off;
                    continue;
                }
            }
        }
        // A bad record: torn tail only if nothing valid follows it.
        scan.tail = match find_valid_record_after(&mut w, off, expected)? {
            Some((at, lsn)) => Tail::Corrupt {
                offset: off,
                reason: format!(
                    "{bad_reason}, but a valid record (LSN {lsn}) follows at offset {at}"
                ),
            },
            None => Tail::Torn {
                offset: off,
                reason: bad_reason,
            },
        };
        break;
    }
    scan.next_lsn = expected_lsn(&scan);
    Ok(scan)
}

/// Looks at every byte offset after `bad` for a record that verifies and has
/// a plausible LSN (`>= expected`; anything lower can only be stale bytes of
/// an older, already-deleted segment exposed by a crash). Finding one means
/// the damage at `bad` is not a torn tail but corruption in the middle.
fn find_valid_record_after(
    w: &mut Window<'_>,
    bad: u64,
    expected: u64,
) -> Result<Option<(u64, u64)>, WalError> {
    let end = w.len;
    let max_lsn = expected.saturating_add((end - bad) / RECORD_HEADER_LEN + 1);
    let mut p = bad + 1;
    while p + RECORD_HEADER_LEN <= end {
        let h = RecordHeader::decode(w.get(p, RECORD_HEADER_LEN as usize)?);
        if h.lsn >= expected
            && h.lsn <= max_lsn
            && u64::from(h.len) <= end - p - RECORD_HEADER_LEN
            && record_crc(h.lsn, w.get(p + RECORD_HEADER_LEN, h.len as usize)?) == h.crc
        {
            return Ok(Some((p, h.lsn)));
        }
        p += 1;
    }
    Ok(None)
}

pub(crate) struct ScannedSegment {
    pub path: PathBuf,
    pub scan: SegmentScan,
    pub records: Vec<RecordInfo>,
    pub problem: Option<Problem>,
}

pub(crate) struct DirScan {
    pub segments: Vec<ScannedSegment>,
}

impl DirScan {
    pub(crate) fn first_problem(&self) -> Option<&Problem> {
        self.segments.iter().find_map(|s| s.problem.as_ref())
    }
}

/// Segment files in `dir`, sorted by first LSN.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, WalError> {
    let rd = std::fs::read_dir(dir).map_err(|e| WalError::io(dir, IoOp::ReadDir, e))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| WalError::io(dir, IoOp::ReadDir, e))?;
        let name = entry.file_name();
        if let Some(lsn) = name.to_str().and_then(parse_segment_name) {
            out.push((lsn, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Scans and classifies every segment. With `inspect == false` (recovery) it
/// stops at the first problem and does not collect per-record info.
pub(crate) fn scan_dir(dir: &Path, inspect: bool) -> Result<DirScan, WalError> {
    let list = list_segments(dir)?;
    let n = list.len();
    let mut segments = Vec::with_capacity(n);
    let mut prev_next: Option<u64> = None;
    for (i, (name_lsn, path)) in list.into_iter().enumerate() {
        let is_last = i + 1 == n;
        let mut records = Vec::new();
        let scan = scan_segment(&path, name_lsn, inspect.then_some(&mut records))?;
        let problem = classify(&path, &scan, is_last, prev_next);
        prev_next = Some(scan.next_lsn);
        let stop = problem.is_some() && !inspect;
        segments.push(ScannedSegment {
            path,
            scan,
            records,
            problem,
        });
        if stop {
            break;
        }
    }
    Ok(DirScan { segments })
}

fn classify(
    path: &Path,
    s: &SegmentScan,
    is_last: bool,
    prev_next: Option<u64>,
) -> Option<Problem> {
    let p = |offset, kind| {
        Some(Problem {
            file: path.to_path_buf(),
            offset,
            kind,
        })
    };
    match &s.header {
        HeaderStatus::Unsupported(version) => {
            return p(0, ProblemKind::UnsupportedVersion { version: *version })
        }
        HeaderStatus::Invalid(reason) => return Some(Problem::corrupt(path, 0, reason.clone())),
        HeaderStatus::Valid | HeaderStatus::Torn => {}
    }
    if let Some(prev) = prev_next {
        if s.first_lsn != prev {
            return Some(Problem::corrupt(
                path,
                0,
                format!(
                    "LSN gap between segments: the previous segment ends before LSN {prev} \
                     but this one starts at LSN {}",
                    s.first_lsn
                ),
            ));
        }
    }
    if s.header == HeaderStatus::Torn {
        return if is_last {
            p(0, ProblemKind::TornHeader)
        } else {
            Some(Problem::corrupt(
                path,
                0,
                "torn header in a non-final segment",
            ))
        };
    }
    match &s.tail {
        Tail::Clean => None,
        Tail::Corrupt { offset, reason } => Some(Problem::corrupt(path, *offset, reason.clone())),
        Tail::Torn { offset, reason } if is_last => p(
            *offset,
            ProblemKind::TornTail {
                bytes: s.file_len - offset,
                reason: reason.clone(),
            },
        ),
        Tail::Torn { offset, reason } => Some(Problem::corrupt(
            path,
            *offset,
            format!("non-final segment ends in a torn record ({reason})"),
        )),
    }
}
