//! The storage contract on a real S3 server (SeaweedFS, started by scripts/test.sh; the endpoint
//! is $QUIVER_S3_ENDPOINT, credentials $AWS_ACCESS_KEY_ID / $AWS_SECRET_ACCESS_KEY, bucket
//! `test`). Without the variable the tests say so and pass, unless $QUIVER_REQUIRE_S3=1.

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};

use quiver_core::storage::Storage;
use quiver_objstore::{ObjectStorage, S3Options};

fn store(prefix: &str) -> Option<ObjectStorage> {
    let Ok(endpoint) = std::env::var("QUIVER_S3_ENDPOINT") else {
        assert!(
            std::env::var("QUIVER_REQUIRE_S3").as_deref() != Ok("1"),
            "QUIVER_REQUIRE_S3=1 but QUIVER_S3_ENDPOINT is not set"
        );
        eprintln!("QUIVER_S3_ENDPOINT not set: no S3 server to test against");
        return None;
    };
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let opts = S3Options {
        endpoint: Some(endpoint),
        allow_http: true,
        ..Default::default()
    };
    Some(ObjectStorage::open(&format!("s3://test/{prefix}-{nonce}"), &opts).unwrap())
}

/// The storage contract, as any object store must keep it.
fn contract(s: &ObjectStorage) {
    s.probe_conditional_put().unwrap();
    s.put("collections/1/segments/1.seg", b"one").unwrap();
    s.put("collections/1/segments/1.seg", b"two").unwrap();
    assert_eq!(
        s.get("collections/1/segments/1.seg").unwrap().as_deref(),
        Some(&b"two"[..])
    );
    assert!(s
        .put_if_absent("collections/1/manifest/1.man", b"a")
        .unwrap());
    assert!(!s
        .put_if_absent("collections/1/manifest/1.man", b"b")
        .unwrap());
    assert_eq!(
        s.get("collections/1/manifest/1.man").unwrap().as_deref(),
        Some(&b"a"[..])
    );
    s.put("collections/2/x", b"x").unwrap();
    assert_eq!(
        s.list("collections/").unwrap(),
        ["collections/1", "collections/2"]
    );
    assert_eq!(
        s.list("collections/1/manifest/").unwrap(),
        ["collections/1/manifest/1.man"]
    );
    assert_eq!(s.get("missing/key").unwrap(), None);
    s.delete("missing/key").unwrap();
    s.delete_prefix("collections/1").unwrap();
    assert!(s.list("collections/1/manifest/").unwrap().is_empty());
    assert_eq!(s.get("collections/1/manifest/1.man").unwrap(), None);
    assert_eq!(
        s.get("collections/2/x").unwrap().as_deref(),
        Some(&b"x"[..])
    );
}

#[test]
fn the_contract_holds_on_s3() {
    let Some(s) = store("contract") else { return };
    contract(&s);
    s.delete_prefix("").ok();
}

#[test]
fn the_contract_holds_in_memory() {
    let s = ObjectStorage::with_store(
        Arc::new(object_store::memory::InMemory::new()),
        "db/one".into(),
        "memory://db/one".into(),
    )
    .unwrap();
    contract(&s);
    s.put("catalog/1.qvc", b"c").unwrap();
    assert_eq!(s.list("").unwrap(), ["catalog", "collections"]);
    // No emptied "directory" lingers here.
    assert_eq!(s.list("collections/").unwrap(), ["collections/2"]);
}

/// 16 committers race for each manifest version: exactly one wins each, and the stored object
/// is the winner's. SeaweedFS makes the losers of a conditional PUT on one key wait on a lock in
/// whole seconds (1-7 s per round with 16), so CI runs 10 rounds; `QUIVER_S3_RACE_ROUNDS=300`
/// runs the full race (about 20 minutes).
#[test]
fn sixteen_committers_race_for_each_version_with_one_winner_each() {
    let Some(s) = store("race") else { return };
    let s = Arc::new(s);
    const THREADS: usize = 16;
    let rounds: u64 = std::env::var("QUIVER_S3_RACE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (s, barrier) = (Arc::clone(&s), Arc::clone(&barrier));
            std::thread::spawn(move || {
                let (mut won, mut errors) = (Vec::new(), Vec::new());
                for v in 0..rounds {
                    barrier.wait();
                    let key = format!("collections/9/manifest/{v:020}.man");
                    match s.put_if_absent(&key, format!("{t}").as_bytes()) {
                        Ok(true) => won.push(v),
                        Ok(false) => {}
                        Err(e) => errors.push(format!("{v}: {e}")),
                    }
                }
                assert!(errors.is_empty(), "thread {t}: {errors:?}");
                won
            })
        })
        .collect();
    let mut winners: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (t, h) in handles.into_iter().enumerate() {
        for v in h.join().unwrap() {
            winners.entry(v).or_default().push(t);
        }
    }
    assert_eq!(winners.len() as u64, rounds);
    for (v, ts) in &winners {
        assert_eq!(ts.len(), 1, "version {v} won by {ts:?}");
        let key = format!("collections/9/manifest/{v:020}.man");
        assert_eq!(s.get(&key).unwrap(), Some(ts[0].to_string().into_bytes()));
    }
    s.delete_prefix("").ok();
}
