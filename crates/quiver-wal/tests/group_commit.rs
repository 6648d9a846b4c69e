//! Group commit under contention.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use common::*;
use quiver_wal::{ApplyFn, Committer, Wal, WalError, WalOptions};

/// (lsn, (thread, index)) pairs.
type Log = Arc<Mutex<Vec<(u64, (u64, u64))>>>;

#[test]
fn eight_threads_times_500_commits() {
    const THREADS: u64 = 8;
    const PER: u64 = 500;
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), WalOptions::default().segment_bytes(64 << 10));
    let applied: Log = Arc::default();
    let groups = Arc::new(Mutex::new(0u64));
    let (a, g) = (applied.clone(), groups.clone());
    let committer = Arc::new(Committer::new(wal, move |group: &[(u64, (u64, u64))]| {
        *g.lock().unwrap() += 1;
        a.lock().unwrap().extend_from_slice(group);
    }));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let c = committer.clone();
            std::thread::spawn(move || {
                (0..PER)
                    .map(|i| {
                        let lsn = c.commit(payload(t * PER + i, 10), (t, i)).unwrap();
                        (lsn, (t, i))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut acked: Vec<(u64, (u64, u64))> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let total = THREADS * PER;
    // LSNs unique and dense.
    acked.sort();
    let lsns: Vec<u64> = acked.iter().map(|a| a.0).collect();
    assert_eq!(lsns, (1..=total).collect::<Vec<_>>());
    // Per thread, LSNs increase with the call order.
    for t in 0..THREADS {
        let mine: Vec<u64> = acked.iter().filter(|a| a.1 .0 == t).map(|a| a.0).collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]));
    }
    // apply saw every item exactly once, in LSN order, with the right LSN.
    let applied = applied.lock().unwrap().clone();
    assert_eq!(applied, acked);
    let items: HashSet<(u64, u64)> = applied.iter().map(|a| a.1).collect();
    assert_eq!(items.len() as u64, total);
    // Grouping actually happened.
    let stats = committer.stats();
    assert_eq!(stats.records, total);
    assert_eq!(stats.data_syncs, stats.batches);
    assert_eq!(stats.batches, *groups.lock().unwrap());
    assert!(stats.data_syncs < total, "{stats:?}");
    eprintln!("{total} commits in {} groups", stats.batches);
    // Durable content matches what each LSN was acknowledged for.
    let committer = Arc::into_inner(committer).unwrap();
    drop(committer.into_inner());
    let wal = open(dir.path(), WalOptions::default());
    let all = read_all(&wal);
    assert_eq!(all.len() as u64, total);
    for ((lsn, p), (alsn, (t, i))) in all.iter().zip(&acked) {
        assert_eq!(lsn, alsn);
        assert_eq!(p, &payload(t * PER + i, 10));
    }
}

#[test]
fn committer_checkpoint_while_committing() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), fast().segment_bytes(1024));
    let c = Arc::new(Committer::new(wal, |_: &[(u64, ())]| {}));
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                for i in 0..300 {
                    c.commit(payload(t * 1000 + i, 30), ()).unwrap();
                }
            })
        })
        .collect();
    // Checkpoint for as long as the writers run (at least 50 times), then once more after them:
    // a fixed number of rounds could all happen before the writers start on a loaded machine.
    let mut removed = 0;
    let mut rounds = 0;
    loop {
        let done = writers.iter().all(|w| w.is_finished());
        let upto = c.last_lsn();
        c.rotate().unwrap();
        removed += c.truncate_prefix(upto).unwrap();
        rounds += 1;
        if done && rounds >= 50 {
            break;
        }
        std::thread::yield_now();
    }
    for w in writers {
        w.join().unwrap();
    }
    assert!(removed > 0);
    let first = c.first_lsn();
    let last = c.last_lsn();
    assert_eq!(last, 1200);
    let n = c.with_wal(|w| w.read_all(0).unwrap().len() as u64);
    assert_eq!(n, last + 1 - first);
    let wal = Arc::into_inner(c).unwrap().into_inner();
    drop(wal);
    let (wal, r) = Wal::open(dir.path(), fast()).unwrap();
    assert_eq!((r.first_lsn, r.last_lsn), (first, last));
    assert_eq!(wal.read_all(0).unwrap().len() as u64, n);
}

#[test]
fn oversized_payload_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), fast().max_payload_bytes(8));
    let apply: ApplyFn<u8> = Box::new(|_| {});
    let c = Committer::new(wal, apply);
    assert!(matches!(
        c.commit(vec![0; 9], 0),
        Err(WalError::PayloadTooLarge { len: 9, max: 8 })
    ));
    assert_eq!(c.commit(vec![0; 8], 1).unwrap(), 1);
}

#[test]
fn panicking_apply_poisons_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open(dir.path(), fast());
    let c = Arc::new(Committer::new(wal, |g: &[(u64, bool)]| {
        if g.iter().any(|(_, boom)| *boom) {
            panic!("apply failed");
        }
    }));
    assert_eq!(c.commit(b"a".to_vec(), false).unwrap(), 1);
    let c2 = c.clone();
    let r = std::thread::spawn(move || c2.commit(b"b".to_vec(), true)).join();
    assert!(
        r.is_err(),
        "the leader's panic propagates to its own caller"
    );
    let err = c.commit(b"c".to_vec(), false).unwrap_err();
    assert!(matches!(err, WalError::Poisoned { .. }), "{err}");
    assert!(c.poisoned().unwrap().contains("apply callback panicked"));
}
