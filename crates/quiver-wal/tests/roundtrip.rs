//! Round trips, rotation, checkpoint truncation and API edge cases.

mod common;

use common::*;
use quiver_wal::{ReplayError, SyncMode, Wal, WalError, WalOptions, HEADER_LEN};

#[test]
fn round_trip_random_sizes_across_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let opts = WalOptions::default().segment_bytes(4096);
    let mut rng = Rng(1);
    let mut model: Vec<Vec<u8>> = Vec::new();
    {
        let (mut wal, report) = Wal::open(dir.path(), opts.clone()).unwrap();
        assert!(report.created);
        assert_eq!((wal.first_lsn(), wal.last_lsn()), (1, 0));
        while model.len() < 1500 {
            let n = 1 + rng.below(8) as usize;
            let batch: Vec<Vec<u8>> = (0..n)
                .map(|_| {
                    let len = rng.below(400) as usize;
                    rng.bytes(len)
                })
                .collect();
            let refs: Vec<&[u8]> = batch.iter().map(|b| b.as_slice()).collect();
            let range = wal.append_batch(&refs).unwrap();
            assert_eq!(*range.start(), model.len() as u64 + 1);
            assert_eq!(*range.end(), (model.len() + n) as u64);
            model.extend(batch);
        }
        let stats = wal.stats();
        assert_eq!(stats.records, model.len() as u64);
        assert_eq!(stats.data_syncs, stats.batches);
        assert!(stats.segments_created > 10, "{stats:?}");
        let got = read_all(&wal);
        assert_eq!(got.len(), model.len());
        for (i, (lsn, p)) in got.iter().enumerate() {
            assert_eq!(*lsn, i as u64 + 1);
            assert_eq!(p, &model[i]);
        }
    }
    let files = segment_files(dir.path());
    assert!(files.len() > 10);
    for f in &files {
        let len = std::fs::metadata(f).unwrap().len();
        assert!(len <= 4096, "{} has {len} bytes", f.display());
    }
    let (wal, report) = Wal::open(dir.path(), opts).unwrap();
    assert_eq!(report.records, model.len() as u64);
    assert_eq!(report.segments, files.len());
    assert!(report.torn_tail.is_none() && report.repaired_header.is_none());
    assert_eq!(wal.last_lsn(), model.len() as u64);
    let got = read_all(&wal);
    let expect: Vec<(u64, Vec<u8>)> = model
        .iter()
        .enumerate()
        .map(|(i, p)| (i as u64 + 1, p.clone()))
        .collect();
    assert_eq!(got, expect);
    for after in [0, 1, 777, 1499, 1500, 5000] {
        let got = wal.read_all(after).unwrap();
        assert_eq!(got, expect[(after as usize).min(expect.len())..].to_vec());
    }
}

#[test]
fn reopen_continues_lsns_and_empty_batch_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = open(dir.path(), fast());
    assert!(wal.is_empty());
    let r = wal.append_batch(&[]).unwrap();
    assert!(r.is_empty());
    assert_eq!(*r.start(), 1);
    assert_eq!(wal.append(b"a").unwrap(), 1);
    assert_eq!(wal.append_batch(&[b"b", b"", b"c"]).unwrap(), 2..=4);
    drop(wal);
    let mut wal = open(dir.path(), fast());
    assert_eq!(wal.append(b"d").unwrap(), 5);
    let got: Vec<Vec<u8>> = read_all(&wal).into_iter().map(|(_, p)| p).collect();
    assert_eq!(got, [&b"a"[..], b"b", b"", b"c", b"d"]);
}

#[test]
fn checkpoint_rotate_and_truncate_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = open(dir.path(), fast().segment_bytes(1000));
    for i in 0..100u64 {
        wal.append(&payload(i, 50)).unwrap();
    }
    let segs = wal.segments().to_vec();
    assert!(segs.len() >= 8);
    // Everything up to the end of the 3rd segment is checkpointed.
    let upto = segs[3].first_lsn - 1;
    assert_eq!(wal.truncate_prefix(upto).unwrap(), 3);
    assert_eq!(wal.first_lsn(), upto + 1);
    // One LSN short of the next segment's end deletes nothing.
    assert_eq!(wal.truncate_prefix(segs[4].first_lsn - 2).unwrap(), 0);
    assert_eq!(segment_files(dir.path()).len(), segs.len() - 3);
    assert_eq!(wal.read_all(0).unwrap()[0].0, upto + 1);
    // Checkpoint at the very end: rotate, then everything but the new
    // (empty) active segment goes.
    wal.rotate().unwrap();
    wal.rotate().unwrap(); // no-op on an empty segment
    let n = wal.truncate_prefix(u64::MAX).unwrap();
    assert_eq!(n, segs.len() - 3);
    assert_eq!(segment_files(dir.path()).len(), 1);
    assert_eq!((wal.first_lsn(), wal.last_lsn()), (101, 100));
    assert!(wal.is_empty());
    drop(wal);
    // first_lsn survives reopen through the active segment's header, so the
    // engine can tell "checkpoint at 100" (ok) from a gap.
    let (mut wal, report) = Wal::open(dir.path(), fast()).unwrap();
    assert_eq!(
        (report.first_lsn, report.last_lsn, report.records),
        (101, 100, 0)
    );
    assert_eq!(wal.append(b"x").unwrap(), 101);
    assert_eq!(read_all(&wal), vec![(101, b"x".to_vec())]);
    // The active segment is never deleted.
    assert_eq!(wal.truncate_prefix(u64::MAX).unwrap(), 0);
    assert_eq!(read_all(&wal).len(), 1);
}

#[test]
fn payload_limit_and_invalid_options() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = open(dir.path(), fast().max_payload_bytes(100));
    wal.append(&[0; 100]).unwrap();
    let err = wal.append_batch(&[b"ok", &[0; 101]]).unwrap_err();
    assert!(matches!(
        err,
        WalError::PayloadTooLarge { len: 101, max: 100 }
    ));
    assert!(err.to_string().contains("exceeds the limit"), "{err}");
    assert_eq!(
        wal.last_lsn(),
        1,
        "nothing of the rejected batch was written"
    );
    drop(wal);
    let err = Wal::open(dir.path(), fast().segment_bytes(0)).unwrap_err();
    assert!(matches!(err, WalError::InvalidOptions(_)));
    let err = Wal::open(dir.path(), fast().max_payload_bytes(usize::MAX)).unwrap_err();
    assert!(matches!(err, WalError::InvalidOptions(_)));
}

#[test]
fn directory_is_locked_while_open() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), fast());
    let err = Wal::open(dir.path(), fast()).unwrap_err();
    assert!(matches!(err, WalError::Locked { .. }), "{err}");
    drop(wal);
    open(dir.path(), fast());
}

#[test]
fn creates_missing_directories_and_ignores_foreign_files() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("a/b/collection");
    let mut wal = open(&dir, WalOptions::default());
    wal.append(b"x").unwrap();
    drop(wal);
    std::fs::write(dir.join("notes.txt"), b"hello").unwrap();
    std::fs::write(dir.join("1.wal"), b"not a segment name").unwrap();
    let wal = open(&dir, WalOptions::default());
    assert_eq!(read_all(&wal), vec![(1, b"x".to_vec())]);
    assert_eq!(wal.segments()[0].bytes, HEADER_LEN + 16 + 1);
    assert_eq!(wal.sync_mode(), SyncMode::Data);
}

#[test]
fn replay_stops_at_callback_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = open(dir.path(), fast());
    for i in 0..10 {
        wal.append(&payload(i, 3)).unwrap();
    }
    let mut seen = Vec::new();
    let err = wal
        .replay(2, |lsn, _| {
            seen.push(lsn);
            if lsn == 5 {
                Err("stop")
            } else {
                Ok(())
            }
        })
        .unwrap_err();
    assert!(matches!(err, ReplayError::Callback("stop")));
    assert_eq!(seen, [3, 4, 5]);
}

#[test]
fn a_new_log_starts_at_start_lsn_and_an_existing_one_ignores_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = open(dir.path(), fast().start_lsn(42));
    assert_eq!(wal.append(b"a").unwrap(), 42);
    drop(wal);
    let mut wal = open(dir.path(), fast().start_lsn(7));
    assert_eq!(wal.first_lsn(), 42);
    assert_eq!(wal.append(b"b").unwrap(), 43);
    assert_eq!(
        read_all(&wal),
        vec![(42, b"a".to_vec()), (43, b"b".to_vec())]
    );
}
