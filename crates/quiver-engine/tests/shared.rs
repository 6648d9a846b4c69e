//! Shared mode (the database in a store several processes open): recovery from log objects,
//! takeover by a new writer epoch with the old one fenced, and store faults (timeouts after a
//! PUT that landed, 503s, spurious 412s) that must never fork the log or lose an acknowledged
//! row. The object-store backend runs the same paths against a real S3 server in the compat
//! suite (tests/compat/test_object_storage.py).

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use parking_lot::Mutex;
use quiver_core::storage::{MemoryStorage, Storage};
use quiver_core::{Error, Result};
use quiver_engine::objlog::{self, read_chain};
use quiver_engine::{Engine, QueryRequest, SharedOptions};

fn shared(store: &Arc<dyn Storage>, force: bool) -> SharedOptions {
    let mut o = SharedOptions::new(Arc::clone(store), "memory://test");
    o.lease_ttl = Duration::from_millis(300);
    o.takeover_wait = Duration::from_secs(10);
    o.force_takeover = force;
    o
}

fn all_ids(e: &Engine, coll: &str) -> BTreeSet<i64> {
    let r = e
        .query(
            "default",
            coll,
            &QueryRequest {
                filter: "id >= 0".into(),
                output_fields: vec!["id".into()],
                ..Default::default()
            },
        )
        .unwrap();
    ints(&r.fields, "id").into_iter().collect()
}

#[test]
fn rows_survive_reopen_from_log_objects_and_after_flush() {
    let store: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let (d1, d2, d3) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    {
        let e = Engine::open_shared(d1.path(), small_opts(), shared(&store, false)).unwrap();
        assert_eq!(e.writer_epoch(), Some(1));
        create(&e, "c", 4);
        let ids: Vec<i64> = (0..300).collect();
        e.insert("default", "c", None, batch(&ids, 4, |i| rvec(i, 4)))
            .unwrap();
        e.delete("default", "c", None, "id < 10", &Default::default())
            .unwrap();
        // No flush: the rows are only in log objects.
        assert!(!store.list("collections/").unwrap().is_empty());
    }
    {
        // The clean stop released the lease: no wait, epoch 2, everything replayed.
        let t = std::time::Instant::now();
        let e = Engine::open_shared(d2.path(), small_opts(), shared(&store, false)).unwrap();
        assert!(
            t.elapsed() < Duration::from_millis(250),
            "waited {:?}",
            t.elapsed()
        );
        assert_eq!(e.writer_epoch(), Some(2));
        assert_eq!(all_ids(&e, "c"), (10..300).collect());
        e.flush_all().unwrap();
        let ids: Vec<i64> = (300..400).collect();
        e.insert("default", "c", None, batch(&ids, 4, |i| rvec(i, 4)))
            .unwrap();
    }
    let e = Engine::open_shared(d3.path(), small_opts(), shared(&store, false)).unwrap();
    assert_eq!(e.writer_epoch(), Some(3));
    assert_eq!(all_ids(&e, "c"), (10..400).collect());
    // Files written in shared mode carry the epoch in their names.
    let cid = e.describe_collection("default", "c").unwrap().id;
    let segs = store.list(&format!("collections/{cid}/segments/")).unwrap();
    assert!(
        !segs.is_empty() && segs.iter().all(|k| k.contains(".e2.")),
        "{segs:?}"
    );
}

#[test]
fn a_live_writer_is_waited_for_and_a_forced_takeover_fences_it() {
    let store: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Engine::open_shared(d1.path(), small_opts(), shared(&store, false)).unwrap();
    create(&a, "c", 4);
    let mut o = shared(&store, false);
    o.takeover_wait = Duration::from_millis(800);
    let err = Engine::open_shared(d2.path(), small_opts(), o).unwrap_err();
    assert!(
        matches!(&err, Error::Unavailable(m) if m.contains("holds the lease")),
        "{err}"
    );
    // A forced takeover (what an operator does when the old writer's machine is gone) fences
    // the live writer at once; a lapsed lease after kill -9 is the compat suite's test.
    let b = Engine::open_shared(d2.path(), small_opts(), shared(&store, true)).unwrap();
    assert_eq!(b.writer_epoch(), Some(2));
    let err = a
        .insert("default", "c", None, batch(&[1], 4, |i| rvec(i, 4)))
        .unwrap_err();
    assert!(err.to_string().contains("fenced"), "{err}");
    std::thread::sleep(Duration::from_millis(250));
    assert!(a.fenced().is_some());
}

#[test]
fn a_fenced_writer_acknowledges_nothing_and_loses_no_acknowledged_row() {
    let store: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Arc::new(Engine::open_shared(d1.path(), small_opts(), shared(&store, false)).unwrap());
    create(&a, "c", 4);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (a, acked, next) = (Arc::clone(&a), Arc::clone(&acked), Arc::clone(&next));
            std::thread::spawn(move || {
                let mut refused = 0;
                while refused < 20 {
                    let id = next.fetch_add(1, Ordering::SeqCst) as i64;
                    match a.insert("default", "c", None, batch(&[id], 4, |i| rvec(i, 4))) {
                        Ok(_) => acked.lock().push(id),
                        Err(_) => refused += 1,
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    // A flush by the old writer races the takeover too.
    let flusher = {
        let a = Arc::clone(&a);
        std::thread::spawn(move || {
            for _ in 0..5 {
                let _ = a.flush_all();
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let b = Engine::open_shared(d2.path(), small_opts(), shared(&store, true)).unwrap();
    for w in writers {
        w.join().unwrap();
    }
    flusher.join().unwrap();
    let acked: BTreeSet<i64> = acked.lock().iter().copied().collect();
    assert!(!acked.is_empty());
    // Everything the old writer acknowledged before the fence is in the new one; nothing it
    // acknowledged after (there is nothing: every later append failed).
    let seen = all_ids(&b, "c");
    assert!(
        acked.is_subset(&seen),
        "lost {:?}",
        acked.difference(&seen).collect::<Vec<_>>()
    );
    assert_eq!(seen, acked, "rows the old writer refused must not appear");
    // The old writer cannot commit DDL or manifests any more either.
    assert!(a.flush_all().is_err() || a.fenced().is_some());
    let err = a
        .create_collection(
            "default",
            quiver_engine::CreateCollection::new(schema("d", 4)),
        )
        .unwrap_err();
    assert!(err.to_string().contains("fenced"), "{err}");
    // The new writer goes on.
    b.insert("default", "c", None, batch(&[1_000_000], 4, |i| rvec(i, 4)))
        .unwrap();
    b.flush_all().unwrap();
}

/// A store that fails on purpose: a share of conditional PUTs land and then report a timeout,
/// a share fail with 503 before doing anything, and a share answer "exists" (412) for a key
/// that does not exist.
#[derive(Debug)]
struct Faulty {
    inner: MemoryStorage,
    state: Mutex<u64>,
    faults: AtomicU64,
}

impl Faulty {
    fn roll(&self) -> u64 {
        let mut x = self.state.lock();
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x % 100
    }
}

impl Storage for Faulty {
    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        self.inner.put(key, data)
    }
    fn put_if_absent(&self, key: &str, data: &[u8]) -> Result<bool> {
        let r = self.roll();
        if key.starts_with("_writer/") {
            return self.inner.put_if_absent(key, data);
        }
        match r {
            0..=9 => {
                self.faults.fetch_add(1, Ordering::Relaxed);
                let _ = self.inner.put_if_absent(key, data)?;
                Err(Error::Unavailable("timeout after the PUT was sent".into()))
            }
            10..=17 => {
                self.faults.fetch_add(1, Ordering::Relaxed);
                Err(Error::Unavailable("503 Slow Down".into()))
            }
            18..=22 if self.inner.get(key)?.is_none() => {
                self.faults.fetch_add(1, Ordering::Relaxed);
                Ok(false)
            }
            _ => self.inner.put_if_absent(key, data),
        }
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner.get(key)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key)
    }
    fn delete_prefix(&self, prefix: &str) -> Result<()> {
        self.inner.delete_prefix(prefix)
    }
    fn local_path(&self, _: &str) -> Option<std::path::PathBuf> {
        None
    }
}

#[test]
fn store_faults_never_fork_the_log_or_lose_an_acknowledged_row() {
    let faulty = Arc::new(Faulty {
        inner: MemoryStorage::new(),
        state: Mutex::new(0x2545_f491_4f6c_dd1d),
        faults: AtomicU64::new(0),
    });
    let store: Arc<dyn Storage> = faulty.clone();
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut acked = BTreeSet::new();
    let mut refused = BTreeSet::new();
    let mut cid = 0;
    let mut id = 0i64;
    // Four writer generations; each writes while faults hit, then the next takes over by force
    // while the previous one is still open (and is fenced).
    let mut prev: Option<Engine> = None;
    for (g, d) in dirs.iter().enumerate() {
        let e = loop {
            match Engine::open_shared(d.path(), small_opts(), shared(&store, true)) {
                Ok(e) => break e,
                Err(err) => assert!(matches!(err, Error::Unavailable(_)), "{err}"),
            }
        };
        if g == 0 {
            while e
                .create_collection(
                    "default",
                    quiver_engine::CreateCollection::new(schema("c", 4)),
                )
                .is_err()
            {}
            cid = e.describe_collection("default", "c").unwrap().id;
        }
        if let Some(old) = prev.take() {
            // The old writer is fenced: nothing it acknowledges from here on.
            let err = old
                .insert("default", "c", None, batch(&[-1], 4, |i| rvec(i, 4)))
                .unwrap_err();
            assert!(err.to_string().contains("fenced"), "{err}");
        }
        for _ in 0..150 {
            match e.insert("default", "c", None, batch(&[id], 4, |i| rvec(i, 4))) {
                Ok(_) => acked.insert(id),
                Err(_) => refused.insert(id),
            };
            id += 1;
        }
        let _ = e.flush_all();
        prev = Some(e);
    }
    let last = prev.unwrap();
    assert!(faulty.faults.load(Ordering::Relaxed) > 50);
    assert!(acked.len() > 300, "{} acknowledged", acked.len());
    let seen = all_ids(&last, "c");
    assert!(
        acked.is_subset(&seen),
        "lost {:?}",
        acked.difference(&seen).collect::<Vec<_>>()
    );
    // A refused row may be in (its PUT landed, then the call timed out: the outcome of a failed
    // call is unknown, as with any database), but only then.
    assert!(seen.difference(&acked).all(|i| refused.contains(i)));
    // The chain from the checkpoint on is one line of objects with non-decreasing epochs.
    let prefix = objlog::log_prefix(&format!("collections/{cid}"));
    let keys = store.list(&prefix).unwrap();
    let oldest: u64 = keys[0].rsplit('/').next().unwrap()[..20].parse().unwrap();
    let chain = read_chain(store.as_ref(), &prefix, oldest - 1)
        .unwrap()
        .expect("no gap");
    assert_eq!(
        chain.objects.len(),
        keys.len(),
        "objects off the chain: {keys:?}"
    );
    let mut prev_last = None;
    for &(first, last) in &chain.objects {
        if let Some(p) = prev_last {
            assert_eq!(first, p + 1);
        }
        prev_last = Some(last);
    }
}

#[test]
fn a_reader_follows_writes_flushes_and_ddl_and_refuses_to_write() {
    let store: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let (dw, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let w = Engine::open_shared(dw.path(), small_opts(), shared(&store, false)).unwrap();
    let r = Engine::open_reader(dr.path(), small_opts(), shared(&store, false), 1 << 30).unwrap();
    assert!(r.is_reader() && r.writer_epoch().is_none());
    create(&w, "c", 4);
    let ids: Vec<i64> = (0..100).collect();
    w.insert("default", "c", None, batch(&ids, 4, |i| rvec(i, 4)))
        .unwrap();
    assert!(r.describe_collection("default", "c").is_err());
    r.follow_once().unwrap();
    assert_eq!(all_ids(&r, "c"), (0..100).collect());
    // New log records are applied in place.
    w.delete("default", "c", None, "id < 10", &Default::default())
        .unwrap();
    let ids: Vec<i64> = (100..150).collect();
    w.insert("default", "c", None, batch(&ids, 4, |i| rvec(i, 4)))
        .unwrap();
    assert_eq!(r.follow_once().unwrap(), 2);
    assert_eq!(all_ids(&r, "c"), (10..150).collect());
    // A flush (new manifest, log truncated) makes the reader open the collection again.
    w.flush_all().unwrap();
    w.insert("default", "c", None, batch(&[150], 4, |i| rvec(i, 4)))
        .unwrap();
    r.follow_once().unwrap();
    assert_eq!(all_ids(&r, "c"), (10..151).collect());
    // Searches see the same rows as the writer's.
    let req = quiver_engine::SearchRequest {
        vectors: vec![rvec(5, 4)],
        limit: 5,
        ..Default::default()
    };
    let a = w.search("default", "c", &req).unwrap();
    let b = r.search("default", "c", &req).unwrap();
    assert_eq!(a.pks, b.pks);
    assert_eq!(a.pks.len(), 5);
    // Writes and DDL are refused with a clear error.
    let err = r
        .insert("default", "c", None, batch(&[999], 4, |i| rvec(i, 4)))
        .unwrap_err();
    assert!(err.to_string().contains("reader"), "{err}");
    let err = r
        .create_collection(
            "default",
            quiver_engine::CreateCollection::new(schema("d", 4)),
        )
        .unwrap_err();
    assert!(err.to_string().contains("reader"), "{err}");
    // DDL on the writer reaches the reader: a new collection, then a drop.
    create(&w, "d", 4);
    r.follow_once().unwrap();
    assert_eq!(r.row_count("default", "d", &[]).unwrap(), 0);
    w.drop_collection("default", "c").unwrap();
    r.follow_once().unwrap();
    assert!(r.describe_collection("default", "c").is_err());
    drop(r);
    // A reader restarted on the same directory opens from its disk cache.
    let r = Engine::open_reader(dr.path(), small_opts(), shared(&store, false), 1 << 30).unwrap();
    assert_eq!(r.row_count("default", "d", &[]).unwrap(), 0);
}
