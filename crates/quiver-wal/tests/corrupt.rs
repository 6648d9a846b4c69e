//! Damage that is not a torn tail must stop `open` with a precise error and
//! must not modify anything; `inspect` reports the same without modifying.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use quiver_wal::{inspect, ProblemKind, Wal, WalError, WalOptions, HEADER_LEN, RECORD_HEADER_LEN};

/// An independent parser: record start offsets of a clean segment file.
fn record_offsets(path: &Path) -> Vec<u64> {
    let b = std::fs::read(path).unwrap();
    let mut off = HEADER_LEN as usize;
    let mut out = Vec::new();
    while off < b.len() {
        out.push(off as u64);
        let len = u32::from_le_bytes(b[off..off + 4].try_into().unwrap()) as usize;
        off += RECORD_HEADER_LEN as usize + len;
    }
    assert_eq!(off, b.len());
    out
}

fn build(dir: &Path) -> Vec<PathBuf> {
    let mut wal = open(dir, fast().segment_bytes(800));
    for i in 0..60u64 {
        wal.append(&payload(i, 20 + (i % 13) as usize)).unwrap();
    }
    drop(wal);
    let files = segment_files(dir);
    assert!(files.len() >= 4);
    files
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    segment_files(dir)
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect()
}

/// `open` fails with `Corrupt` at exactly (file, offset), modifies nothing,
/// and `inspect` reports the same problem.
fn expect_corrupt(dir: &Path, file: &Path, offset: u64) -> String {
    let before = snapshot(dir);
    let err = Wal::open(dir, WalOptions::default()).unwrap_err();
    let WalError::Corrupt {
        file: f,
        offset: o,
        reason,
    } = &err
    else {
        panic!("expected Corrupt, got {err}");
    };
    assert_eq!((f.as_path(), *o), (file, offset), "{err}");
    assert_eq!(
        snapshot(dir),
        before,
        "a failed open must not modify the log"
    );
    let msg = err.to_string();
    assert!(msg.contains(&file.display().to_string()) && msg.contains(&offset.to_string()));
    let report = inspect(dir).unwrap();
    let p = report.problem.expect("inspect finds it");
    assert_eq!((p.file.as_path(), p.offset), (file, offset));
    assert!(matches!(p.kind, ProblemKind::Corrupt { .. }) && !p.is_repairable());
    reason.clone()
}

#[test]
fn flipped_byte_in_a_middle_record_of_a_middle_segment() {
    let orig = tempfile::tempdir().unwrap();
    let files = build(orig.path());
    let seg = &files[1];
    let offs = record_offsets(seg);
    let rec = offs[offs.len() / 2];
    // len, crc, lsn and payload bytes.
    for delta in [0u64, 2, 5, 9, 15, 16, 20] {
        let d = copy_dir(orig.path());
        let path = d.path().join(seg.file_name().unwrap());
        flip_byte(&path, rec + delta);
        expect_corrupt(d.path(), &path, rec);
    }
}

#[test]
fn flipped_byte_in_a_non_final_record_of_the_final_segment() {
    let d = tempfile::tempdir().unwrap();
    let files = build(d.path());
    let last = files.last().unwrap();
    let offs = record_offsets(last);
    assert!(offs.len() >= 2);
    let rec = offs[offs.len() - 2];
    flip_byte(last, rec + RECORD_HEADER_LEN + 1);
    let reason = expect_corrupt(d.path(), last, rec);
    assert!(reason.contains("valid record"), "{reason}");
}

#[test]
fn huge_length_field_in_the_middle_is_corruption_not_a_torn_tail() {
    let d = tempfile::tempdir().unwrap();
    let files = build(d.path());
    let last = files.last().unwrap();
    let rec = record_offsets(last)[0];
    let mut b = std::fs::read(last).unwrap();
    b[rec as usize + 3] = 0x7f;
    std::fs::write(last, b).unwrap();
    expect_corrupt(d.path(), last, rec);
}

#[test]
fn damage_at_the_end_of_a_non_final_segment() {
    let orig = tempfile::tempdir().unwrap();
    let files = build(orig.path());
    let name = files[2].file_name().unwrap();
    let offs = record_offsets(&files[2]);
    let last_rec = *offs.last().unwrap();
    let len = std::fs::metadata(&files[2]).unwrap().len();
    // Torn (truncated) inside its last record.
    let d = copy_dir(orig.path());
    let p = d.path().join(name);
    set_len(&p, len - 3);
    let reason = expect_corrupt(d.path(), &p, last_rec);
    assert!(reason.contains("non-final"), "{reason}");
    // Checksum failure in its last record.
    let d = copy_dir(orig.path());
    let p = d.path().join(name);
    flip_byte(&p, len - 1);
    expect_corrupt(d.path(), &p, last_rec);
    // Zeros appended to it.
    let d = copy_dir(orig.path());
    let p = d.path().join(name);
    append_bytes(&p, &[0; 100]);
    expect_corrupt(d.path(), &p, len);
    // Cut down to a torn header.
    let d = copy_dir(orig.path());
    let p = d.path().join(name);
    set_len(&p, 10);
    expect_corrupt(d.path(), &p, 0);
}

#[test]
fn bad_segment_headers() {
    let orig = tempfile::tempdir().unwrap();
    let files = build(orig.path());
    let name = files[1].file_name().unwrap();
    for (at, what) in [(0u64, "magic"), (14, "checksum"), (21, "checksum")] {
        let d = copy_dir(orig.path());
        let p = d.path().join(name);
        flip_byte(&p, at);
        let reason = expect_corrupt(d.path(), &p, 0);
        assert!(reason.contains(what), "{reason}");
    }
    // A valid header whose LSN disagrees with the file name.
    let d = copy_dir(orig.path());
    let p = d.path().join(name);
    let other = d.path().join("00000000000000099999.wal");
    std::fs::rename(&p, &other).unwrap();
    let err = Wal::open(d.path(), WalOptions::default()).unwrap_err();
    assert!(matches!(err, WalError::Corrupt { .. }), "{err}");
}

/// Rewrites a segment header with another version and a valid header CRC.
fn set_version(path: &Path, version: u32, fix_crc: bool) {
    let mut b = std::fs::read(path).unwrap();
    b[8..12].copy_from_slice(&version.to_le_bytes());
    if fix_crc {
        let crc = crc32c::crc32c(&b[0..20]);
        let masked = crc.rotate_right(15).wrapping_add(0xa282_ead8);
        b[20..24].copy_from_slice(&masked.to_le_bytes());
    }
    std::fs::write(path, b).unwrap();
}

#[test]
fn unknown_version_is_a_clear_error() {
    let orig = tempfile::tempdir().unwrap();
    let files = build(orig.path());
    for (idx, fix_crc) in [(0usize, true), (files.len() - 1, true), (1, false)] {
        let d = copy_dir(orig.path());
        let p = d.path().join(files[idx].file_name().unwrap());
        set_version(&p, 2, fix_crc);
        let before = snapshot(d.path());
        let err = Wal::open(d.path(), WalOptions::default()).unwrap_err();
        match &err {
            WalError::UnsupportedVersion { file, version: 2 } => assert_eq!(file, &p),
            other => panic!("expected UnsupportedVersion, got {other}"),
        }
        assert!(
            err.to_string().contains("unsupported WAL format version 2"),
            "{err}"
        );
        assert_eq!(snapshot(d.path()), before);
        let report = inspect(d.path()).unwrap();
        assert_eq!(
            report.problem.unwrap().kind,
            ProblemKind::UnsupportedVersion { version: 2 }
        );
    }
}

#[test]
fn missing_middle_segment_is_an_lsn_gap() {
    let d = tempfile::tempdir().unwrap();
    let files = build(d.path());
    std::fs::remove_file(&files[1]).unwrap();
    let reason = expect_corrupt(d.path(), &files[2], 0);
    assert!(reason.contains("LSN gap"), "{reason}");
}

#[test]
fn checksum_valid_record_with_wrong_lsn() {
    let d = tempfile::tempdir().unwrap();
    let files = build(d.path());
    let p = &files[1];
    let offs = record_offsets(p);
    let rec = offs[1] as usize;
    let mut b = std::fs::read(p).unwrap();
    let len = u32::from_le_bytes(b[rec..rec + 4].try_into().unwrap()) as usize;
    let lsn = u64::from_le_bytes(b[rec + 8..rec + 16].try_into().unwrap()) + 1000;
    b[rec + 8..rec + 16].copy_from_slice(&lsn.to_le_bytes());
    let crc = crc32c::crc32c_append(
        crc32c::crc32c(&lsn.to_le_bytes()),
        &b[rec + 16..rec + 16 + len],
    );
    b[rec + 4..rec + 8]
        .copy_from_slice(&crc.rotate_right(15).wrapping_add(0xa282_ead8).to_le_bytes());
    std::fs::write(p, b).unwrap();
    let reason = expect_corrupt(d.path(), p, rec as u64);
    assert!(reason.contains("LSN gap: expected"), "{reason}");
}

#[test]
fn inspect_is_read_only_and_detailed() {
    let d = tempfile::tempdir().unwrap();
    let files = build(d.path());
    let clean = inspect(d.path()).unwrap();
    assert!(clean.problem.is_none());
    assert_eq!(clean.segments.len(), files.len());
    let mut next = 1;
    for (s, f) in clean.segments.iter().zip(&files) {
        assert_eq!(&s.path, f);
        assert_eq!(s.version, Some(1));
        assert_eq!(s.first_lsn, next);
        let offs: Vec<u64> = s.records.iter().map(|r| r.offset).collect();
        assert_eq!(offs, record_offsets(f));
        assert!(s.records.iter().all(|r| r.crc_ok));
        assert_eq!(s.record_count, s.records.len() as u64);
        next += s.record_count;
        assert_eq!(s.last_lsn, Some(next - 1));
        assert_eq!(s.bytes, s.valid_bytes);
    }
    assert_eq!(next, 61);
    // Torn tail: reported as repairable, nothing modified.
    let last = files.last().unwrap();
    let len = std::fs::metadata(last).unwrap().len();
    set_len(last, len - 2);
    let before = snapshot(d.path());
    let report = inspect(d.path()).unwrap();
    assert_eq!(snapshot(d.path()), before);
    let p = report.problem.unwrap();
    let last_rec = *record_offsets_prefix(last).last().unwrap();
    assert_eq!((&p.file, p.offset), (last, last_rec));
    assert!(matches!(p.kind, ProblemKind::TornTail { bytes, .. } if bytes == len - 2 - last_rec));
    assert!(p.is_repairable());
    assert!(p.to_string().contains("torn tail"));
    // And open agrees.
    let (_, r) = Wal::open(d.path(), WalOptions::default()).unwrap();
    assert_eq!(r.torn_tail.unwrap().offset, last_rec);
}

/// Record offsets of a segment whose last record may be torn.
fn record_offsets_prefix(path: &Path) -> Vec<u64> {
    let b = std::fs::read(path).unwrap();
    let mut off = HEADER_LEN as usize;
    let mut out = Vec::new();
    while off + 16 <= b.len() {
        out.push(off as u64);
        off += 16 + u32::from_le_bytes(b[off..off + 4].try_into().unwrap()) as usize;
    }
    out
}
