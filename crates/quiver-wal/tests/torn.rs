//! Torn tails and torn headers are repaired by `open`; nothing before them
//! is lost and appending continues at the right LSN.

mod common;

use std::path::Path;

use common::*;
use quiver_wal::{Wal, WalOptions, HEADER_LEN, RECORD_HEADER_LEN};

/// Builds a WAL of `n` records over several segments; returns the model.
fn build(dir: &Path, n: u64) -> Vec<Vec<u8>> {
    let mut wal = open(dir, fast().segment_bytes(600));
    let model: Vec<Vec<u8>> = (0..n).map(|i| payload(i, (i * 7 % 50) as usize)).collect();
    for p in &model {
        wal.append(p).unwrap();
    }
    model
}

/// Opens `dir`, checks that exactly `model` survived, appends one more
/// record, reopens and checks again.
fn check_recovers_to(dir: &Path, model: &[Vec<u8>]) -> quiver_wal::RecoveryReport {
    let (mut wal, report) = Wal::open(dir, fast()).unwrap();
    let got: Vec<Vec<u8>> = read_all(&wal).into_iter().map(|(_, p)| p).collect();
    assert_eq!(got.len(), model.len());
    assert_eq!(got, model);
    assert_eq!(wal.last_lsn(), model.len() as u64);
    let next = wal.append(b"after-recovery").unwrap();
    assert_eq!(next, model.len() as u64 + 1);
    drop(wal);
    let (wal, report2) = Wal::open(dir, fast()).unwrap();
    assert!(report2.torn_tail.is_none() && report2.repaired_header.is_none());
    let all = read_all(&wal);
    assert_eq!(all.len(), model.len() + 1);
    assert_eq!(all.last().unwrap(), &(next, b"after-recovery".to_vec()));
    report
}

#[test]
fn torn_last_record_at_every_offset_with_and_without_trailing_junk() {
    let orig = tempfile::tempdir().unwrap();
    let model = build(orig.path(), 40);
    let files = segment_files(orig.path());
    assert!(files.len() >= 3, "want several segments");
    let last = files.last().unwrap().file_name().unwrap().to_owned();
    let file_len = std::fs::metadata(files.last().unwrap()).unwrap().len();
    let rec_len = RECORD_HEADER_LEN + model.last().unwrap().len() as u64;
    let rec_start = file_len - rec_len;
    let kept = &model[..model.len() - 1];
    let mut rng = Rng(7);
    for cut in rec_start..file_len {
        for junk in 0..3 {
            let d = copy_dir(orig.path());
            let path = d.path().join(&last);
            set_len(&path, cut);
            match junk {
                1 => append_bytes(&path, &[0u8; 4096]),
                2 => append_bytes(&path, &rng.bytes(300)),
                _ => {}
            }
            let torn_len = std::fs::metadata(&path).unwrap().len();
            let report = check_recovers_to(d.path(), kept);
            if torn_len == rec_start {
                assert!(report.torn_tail.is_none());
                continue;
            }
            let t = report
                .torn_tail
                .unwrap_or_else(|| panic!("cut {cut} junk {junk}"));
            assert_eq!(t.file, path);
            assert_eq!(t.offset, rec_start, "cut {cut} junk {junk}");
            assert_eq!(t.bytes_dropped, torn_len - rec_start);
        }
    }
}

#[test]
fn torn_group_of_several_records() {
    let orig = tempfile::tempdir().unwrap();
    let model = build(orig.path(), 40);
    let path = segment_files(orig.path()).pop().unwrap();
    let wal = open(orig.path(), fast());
    let seg = wal.segments().last().unwrap().clone();
    drop(wal);
    let in_seg = (model.len() as u64 + 1 - seg.first_lsn) as usize;
    assert!(in_seg >= 3);
    // Cut in the middle of the third-to-last record: the last three go.
    let start_of = |k: usize| -> u64 {
        HEADER_LEN
            + model[seg.first_lsn as usize - 1..seg.first_lsn as usize - 1 + k]
                .iter()
                .map(|p| RECORD_HEADER_LEN + p.len() as u64)
                .sum::<u64>()
    };
    let rec = start_of(in_seg - 3);
    set_len(&path, rec + 5);
    let report = check_recovers_to(orig.path(), &model[..model.len() - 3]);
    assert_eq!(report.torn_tail.unwrap().offset, rec);
}

#[test]
fn zeros_or_garbage_after_the_last_valid_record() {
    for junk in [
        vec![0u8; 1],
        vec![0u8; 15],
        vec![0u8; 16],
        vec![0u8; 65536],
        Rng(3).bytes(1000),
    ] {
        let d = tempfile::tempdir().unwrap();
        let model = build(d.path(), 25);
        let path = segment_files(d.path()).pop().unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        append_bytes(&path, &junk);
        let report = check_recovers_to(d.path(), &model);
        let t = report.torn_tail.unwrap();
        assert_eq!((t.offset, t.bytes_dropped), (len, junk.len() as u64));
    }
}

#[test]
fn torn_header_of_empty_final_segment_is_rewritten() {
    let orig = tempfile::tempdir().unwrap();
    let model = build(orig.path(), 30);
    {
        let mut wal = open(orig.path(), fast());
        wal.rotate().unwrap();
    }
    let files = segment_files(orig.path());
    let empty = files.last().unwrap().file_name().unwrap().to_owned();
    let header = std::fs::read(files.last().unwrap()).unwrap();
    assert_eq!(header.len() as u64, HEADER_LEN);
    let mut cases: Vec<Vec<u8>> = (0..HEADER_LEN as usize)
        .map(|n| header[..n].to_vec())
        .collect();
    cases.push(vec![0; 24]);
    cases.push(vec![0; 8192]);
    let mut prefix_then_zeros = header[..10].to_vec();
    prefix_then_zeros.resize(4096, 0);
    cases.push(prefix_then_zeros);
    for content in cases {
        let d = copy_dir(orig.path());
        let path = d.path().join(&empty);
        std::fs::write(&path, &content).unwrap();
        let report = check_recovers_to(d.path(), &model);
        assert_eq!(report.repaired_header.as_deref(), Some(path.as_path()));
        assert_eq!(std::fs::read(&path).unwrap()[..24], header[..]);
    }
}

#[test]
fn torn_header_of_the_only_segment() {
    for n in [0usize, 5, 23] {
        let d = tempfile::tempdir().unwrap();
        drop(open(d.path(), WalOptions::default()));
        let path = segment_files(d.path()).pop().unwrap();
        set_len(&path, n as u64);
        let report = check_recovers_to(d.path(), &[]);
        assert!(report.repaired_header.is_some());
        assert!(!report.created);
    }
}
