//! Model-based property test: random appends, injected failures, crashes
//! that leave torn writes behind, rotations, checkpoints and reopens. The
//! model is the list of acknowledged payloads; after every step the WAL must
//! replay exactly the acknowledged payloads that were not checkpointed away.

use std::path::Path;

use proptest::prelude::*;

use super::open;
use crate::format::{encode_header, encode_record, segment_path};
use crate::{Committer, IoOp, Wal, WalError, WalOptions, HEADER_LEN, RECORD_HEADER_LEN};

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<Vec<u8>>),
    /// Concurrent `Committer::commit`s, one thread per payload.
    Commit(Vec<Vec<u8>>),
    /// Cut the final segment `n` bytes (mod its record bytes) short of its
    /// end, as if the newest records had never reached the disk; the model
    /// drops every record not entirely before the cut.
    CutTail(u32),
    /// Append that hits an injected write (`false`) or fsync (`true`) error.
    FailingAppend(Vec<Vec<u8>>, bool),
    /// Crash with a partial next record (first `n` bytes) left behind.
    CrashTornRecord(Vec<u8>, usize),
    /// Crash with junk after the last record (zeros if `zeros`).
    CrashJunk(Vec<u8>, bool),
    /// Crash while creating the next segment (first `n` header bytes).
    CrashTornHeader(usize),
    Reopen,
    Rotate,
    /// Checkpoint at a fraction (0..=100 %) of the live LSN range.
    Checkpoint(u8),
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..200)
}

fn op() -> impl Strategy<Value = Op> {
    let batch = || prop::collection::vec(payload(), 1..4);
    prop_oneof![
        4 => batch().prop_map(Op::Append),
        3 => batch().prop_map(Op::Commit),
        1 => any::<u32>().prop_map(Op::CutTail),
        1 => (batch(), any::<bool>()).prop_map(|(b, s)| Op::FailingAppend(b, s)),
        1 => (payload(), any::<usize>()).prop_map(|(p, n)| Op::CrashTornRecord(p, n)),
        1 => (prop::collection::vec(any::<u8>(), 1..100), any::<bool>())
            .prop_map(|(j, z)| Op::CrashJunk(j, z)),
        1 => (0usize..24).prop_map(Op::CrashTornHeader),
        1 => Just(Op::Reopen),
        1 => Just(Op::Rotate),
        1 => (0u8..=100).prop_map(Op::Checkpoint),
    ]
}

fn opts() -> WalOptions {
    WalOptions::default().segment_bytes(512)
}

fn append_raw(dir: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut segs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segs.sort();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(segs.last().unwrap())
        .unwrap();
    f.write_all(bytes).unwrap();
}

/// Drops the WAL (a "crash": nothing is flushed that was not already
/// written), lets `damage` modify the directory, and reopens.
fn crash(wal: &mut Option<Wal>, dir: &Path, damage: impl FnOnce(&Path, u64)) {
    let next = wal.as_ref().unwrap().next_lsn();
    *wal = None;
    damage(dir, next);
    *wal = Some(open(dir, opts()));
}

fn check(wal: &Wal, model: &[Vec<u8>]) -> Result<(), TestCaseError> {
    prop_assert_eq!(wal.last_lsn(), model.len() as u64);
    let first = wal.first_lsn();
    prop_assert!(first >= 1 && first <= model.len() as u64 + 1);
    let got = wal.read_all(0).unwrap();
    prop_assert_eq!(got.len(), model.len() + 1 - first as usize);
    for (lsn, p) in &got {
        prop_assert_eq!(p, &model[*lsn as usize - 1]);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn acknowledged_records_survive_everything(ops in prop::collection::vec(op(), 1..40)) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let mut model: Vec<Vec<u8>> = Vec::new();
        let mut wal = Some(open(dir, opts()));
        for op in ops {
            let w = wal.as_mut().unwrap();
            if w.poisoned().is_some() {
                // A poisoned WAL refuses writes until reopened.
                let refused = matches!(w.append(b"x"), Err(WalError::Poisoned { .. }));
                prop_assert!(refused);
                drop(wal.take());
                wal = Some(open(dir, opts()));
            }
            let w = wal.as_mut().unwrap();
            match op {
                Op::Append(batch) => {
                    let refs: Vec<&[u8]> = batch.iter().map(|b| b.as_slice()).collect();
                    let r = w.append_batch(&refs).unwrap();
                    prop_assert_eq!(*r.start(), model.len() as u64 + 1);
                    model.extend(batch);
                }
                Op::Commit(batch) => {
                    let c = Committer::new(wal.take().unwrap(), |_: &[(u64, usize)]| {});
                    let mut acked: Vec<(u64, usize)> = std::thread::scope(|s| {
                        let hs: Vec<_> = batch
                            .iter()
                            .enumerate()
                            .map(|(i, p)| {
                                let c = &c;
                                s.spawn(move || (c.commit(p.clone(), i).unwrap(), i))
                            })
                            .collect();
                        hs.into_iter().map(|h| h.join().unwrap()).collect()
                    });
                    acked.sort();
                    for (k, (lsn, i)) in acked.into_iter().enumerate() {
                        prop_assert_eq!(lsn, model.len() as u64 + 1, "dense at {}", k);
                        model.push(batch[i].clone());
                    }
                    wal = Some(c.into_inner());
                }
                Op::CutTail(n) => {
                    let seg = w.segments().last().unwrap().clone();
                    let live = &model[seg.first_lsn as usize - 1..];
                    let rec_bytes = seg.bytes - HEADER_LEN;
                    let cut = seg.bytes - u64::from(n) % (rec_bytes + 1);
                    let mut end = HEADER_LEN;
                    let mut keep = seg.first_lsn as usize - 1;
                    for p in live {
                        end += RECORD_HEADER_LEN + p.len() as u64;
                        if end > cut {
                            break;
                        }
                        keep += 1;
                    }
                    crash(&mut wal, dir, |_, _| {
                        std::fs::OpenOptions::new()
                            .write(true)
                            .open(&seg.path)
                            .unwrap()
                            .set_len(cut)
                            .unwrap();
                    });
                    model.truncate(keep);
                }
                Op::FailingAppend(batch, sync) => {
                    let refs: Vec<&[u8]> = batch.iter().map(|b| b.as_slice()).collect();
                    let site = if sync { IoOp::Sync } else { IoOp::Write };
                    w.failpoints().fail_next(site, libc::ENOSPC);
                    let err = w.append_batch(&refs).unwrap_err();
                    prop_assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
                    // Injected failures before the site is reached (e.g. a
                    // rotation's header write) may leave one pending.
                    w.failpoints().clear();
                    prop_assert_eq!(w.poisoned().is_some(), sync);
                }
                Op::CrashTornRecord(p, n) => crash(&mut wal, dir, |d, next| {
                    let mut rec = Vec::new();
                    encode_record(&mut rec, next, &p);
                    append_raw(d, &rec[..n % rec.len()]);
                }),
                Op::CrashJunk(junk, zeros) => crash(&mut wal, dir, |d, _| {
                    if zeros { append_raw(d, &vec![0; junk.len()]) } else { append_raw(d, &junk) }
                }),
                Op::CrashTornHeader(n) => crash(&mut wal, dir, |d, next| {
                    std::fs::write(segment_path(d, next), &encode_header(next)[..n]).unwrap();
                }),
                Op::Reopen => {
                    drop(wal.take());
                    let (w, report) = Wal::open(dir, opts()).unwrap();
                    prop_assert!(report.torn_tail.is_none() && report.repaired_header.is_none());
                    wal = Some(w);
                }
                Op::Rotate => w.rotate().unwrap(),
                Op::Checkpoint(pct) => {
                    let (first, last) = (w.first_lsn(), w.last_lsn());
                    let upto = first - 1 + (last + 1 - first) * u64::from(pct) / 100;
                    w.rotate().unwrap();
                    w.truncate_prefix(upto).unwrap();
                    prop_assert!(w.first_lsn() <= upto + 1);
                }
            }
            check(wal.as_ref().unwrap(), &model)?;
        }
        drop(wal.take());
        let w = open(dir, opts());
        check(&w, &model)?;
    }
}
