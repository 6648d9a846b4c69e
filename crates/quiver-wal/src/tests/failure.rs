//! Write/fsync/truncate/create failures via injected errors.

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use super::{file_len, open, payloads};
use crate::{Committer, IoOp, Wal, WalError, WalOptions};

fn data() -> WalOptions {
    WalOptions::default()
}

fn seeded(dir: &std::path::Path, opts: WalOptions) -> Wal {
    let mut wal = open(dir, opts);
    wal.append_batch(&[b"one", b"two", b"three"]).unwrap();
    wal
}

#[test]
fn write_error_truncates_and_later_appends_work() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = seeded(dir.path(), data());
    let path = wal.segments().last().unwrap().path.clone();
    let len = file_len(&path);
    wal.failpoints().fail_next(IoOp::Write, libc::ENOSPC);
    let err = wal.append_batch(&[&[1; 300], &[2; 300]]).unwrap_err();
    assert!(matches!(&err, WalError::Io { op: IoOp::Write, path: p, .. } if *p == path));
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
    let msg = err.to_string();
    assert!(msg.contains("No space left on device"), "{msg}");
    assert_eq!(
        file_len(&path),
        len,
        "the half-written group was truncated away"
    );
    assert_eq!(wal.last_lsn(), 3, "no LSN consumed");
    assert!(wal.poisoned().is_none());
    assert_eq!(wal.append(b"four").unwrap(), 4);
    drop(wal);
    let (wal, report) = Wal::open(dir.path(), data()).unwrap();
    assert!(report.torn_tail.is_none());
    assert_eq!(payloads(&wal), [&b"one"[..], b"two", b"three", b"four"]);
}

#[test]
fn fsync_error_poisons_but_reads_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = seeded(dir.path(), data().segment_bytes(200));
    let path = wal.segments().last().unwrap().path.clone();
    let len = file_len(&path);
    wal.failpoints().fail_next(IoOp::Sync, libc::EIO);
    let err = wal.append(b"lost").unwrap_err();
    assert!(matches!(err, WalError::Io { op: IoOp::Sync, .. }), "{err}");
    assert!(err.to_string().contains("Input/output error"), "{err}");
    assert_eq!(file_len(&path), len, "the group was truncated away");
    assert!(wal.poisoned().unwrap().contains("fsync"));
    // Fail fast, without touching the file.
    let err = wal.append(b"x").unwrap_err();
    assert!(matches!(&err, WalError::Poisoned { reason } if reason.contains("Input/output")));
    assert!(err.to_string().contains("reopen"), "{err}");
    assert!(matches!(wal.rotate(), Err(WalError::Poisoned { .. })));
    assert_eq!(file_len(&path), len);
    assert_eq!(payloads(&wal), [&b"one"[..], b"two", b"three"]);
    assert_eq!(wal.truncate_prefix(3).unwrap(), 0);
    drop(wal);
    let mut wal = open(dir.path(), data());
    assert_eq!(wal.append(b"four").unwrap(), 4);
    assert_eq!(payloads(&wal), [&b"one"[..], b"two", b"three", b"four"]);
}

#[test]
fn failed_undo_truncate_poisons_and_recovery_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = seeded(dir.path(), data());
    let fp = wal.failpoints();
    fp.fail_next(IoOp::Write, libc::EIO);
    fp.fail_next(IoOp::Truncate, libc::EROFS);
    let err = wal.append(&[9; 500]).unwrap_err();
    assert!(matches!(
        err,
        WalError::Io {
            op: IoOp::Write,
            ..
        }
    ));
    let reason = wal.poisoned().unwrap().to_string();
    assert!(
        reason.contains("Read-only file system") && reason.contains("truncating"),
        "{reason}"
    );
    assert!(matches!(wal.append(b"x"), Err(WalError::Poisoned { .. })));
    drop(wal);
    // The half-written single record is a torn tail for recovery.
    let (mut wal, report) = Wal::open(dir.path(), data()).unwrap();
    assert!(report.torn_tail.is_some());
    assert_eq!(wal.append(b"four").unwrap(), 4);
    assert_eq!(payloads(&wal), [&b"one"[..], b"two", b"three", b"four"]);
}

#[test]
fn rotation_failures() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = seeded(dir.path(), data().segment_bytes(100));
    let fp = wal.failpoints();
    // Creating the new segment fails: plain error, nothing consumed.
    fp.fail_next(IoOp::Create, libc::ENOSPC);
    let err = wal.append(&[1; 80]).unwrap_err();
    assert!(
        matches!(
            err,
            WalError::Io {
                op: IoOp::Create,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(wal.segments().len(), 1);
    // Writing its header fails: the file is removed again.
    fp.fail_next(IoOp::Write, libc::ENOSPC);
    assert!(wal.append(&[1; 80]).is_err());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "segment + LOCK"
    );
    assert!(wal.poisoned().is_none());
    assert_eq!(wal.append(&[1; 80]).unwrap(), 4);
    assert_eq!(wal.segments().len(), 2);
    // Directory fsync of a new segment fails: poisoned.
    fp.fail_next(IoOp::SyncDir, libc::EIO);
    assert!(matches!(
        wal.append(&[2; 80]),
        Err(WalError::Io {
            op: IoOp::SyncDir,
            ..
        })
    ));
    assert!(wal.poisoned().is_some());
    drop(wal);
    let mut wal = open(dir.path(), data());
    assert_eq!(wal.append(&[2; 80]).unwrap(), 5);
    assert_eq!(payloads(&wal).len(), 5);
}

#[test]
fn truncate_prefix_remove_failure_keeps_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = open(dir.path(), data().segment_bytes(100));
    for i in 0..10u8 {
        wal.append(&[i; 60]).unwrap();
    }
    let n = wal.segments().len();
    wal.failpoints().fail_next(IoOp::Remove, libc::EACCES);
    assert!(matches!(
        wal.truncate_prefix(5),
        Err(WalError::Io {
            op: IoOp::Remove,
            ..
        })
    ));
    assert_eq!(wal.segments().len(), n);
    assert_eq!(wal.truncate_prefix(5).unwrap(), 5);
    assert_eq!(wal.first_lsn(), 6);
}

#[test]
fn committer_group_write_failure() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), data());
    let fp = wal.failpoints();
    let applied: Arc<Mutex<Vec<(u64, u32)>>> = Arc::default();
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let a = applied.clone();
    let c = Arc::new(Committer::new(wal, move |g: &[(u64, u32)]| {
        if g[0].0 == 1 {
            // While the first group is applied, the next group queues up;
            // make its write fail.
            fp.fail_next(IoOp::Write, libc::ENOSPC);
            tx.lock().unwrap().send(()).unwrap();
            std::thread::sleep(Duration::from_millis(200));
        }
        a.lock().unwrap().extend_from_slice(g);
    }));
    let first = {
        let c = c.clone();
        std::thread::spawn(move || c.commit(b"first".to_vec(), 0))
    };
    rx.recv().unwrap();
    let others: Vec<_> = (1..8u32)
        .map(|i| {
            let c = c.clone();
            std::thread::spawn(move || (i, c.commit(vec![i as u8; 100], i)))
        })
        .collect();
    assert_eq!(first.join().unwrap().unwrap(), 1);
    let results: Vec<(u32, Result<u64, WalError>)> =
        others.into_iter().map(|h| h.join().unwrap()).collect();
    let failed: Vec<u32> = results
        .iter()
        .filter(|r| r.1.is_err())
        .map(|r| r.0)
        .collect();
    assert!(!failed.is_empty());
    for (_, r) in &results {
        if let Err(e) = r {
            assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
        }
    }
    let mut ok: Vec<(u64, u32)> = results
        .iter()
        .filter_map(|(i, r)| r.as_ref().ok().map(|l| (*l, *i)))
        .collect();
    ok.insert(0, (1, 0));
    ok.sort();
    assert_eq!(
        ok.iter().map(|o| o.0).collect::<Vec<_>>(),
        (1..=ok.len() as u64).collect::<Vec<_>>()
    );
    assert_eq!(
        *applied.lock().unwrap(),
        ok,
        "apply saw exactly the acknowledged items"
    );
    eprintln!("{} of 7 failed in one group", failed.len());
    drop(Arc::into_inner(c).unwrap().into_inner());
    let wal = open(dir.path(), data());
    let got = wal.read_all(0).unwrap();
    assert_eq!(got.len(), ok.len());
    for ((lsn, p), (olsn, i)) in got.iter().zip(&ok) {
        assert_eq!(lsn, olsn);
        if *i > 0 {
            assert_eq!(p, &vec![*i as u8; 100]);
        }
    }
}
