//! HNSW: recall vs brute force, filters, scores, persistence, edge cases.

mod common;

use common::*;
use quiver_index::{HnswIndex, HnswParams, IndexError, Metric, Traversal, DEFAULT_EF};

const N: usize = 5000;
const NQ: usize = 100;
const DIM: usize = 32;
const K: usize = 10;

/// Built on one thread: a parallel build's graph depends on thread timing, and recall
/// thresholds must not flake.
fn build(metric: Metric, data: &[f32], traversal: Traversal) -> HnswIndex {
    let p = HnswParams {
        traversal,
        ..HnswParams::default()
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| HnswIndex::build(metric, DIM, data, &p, &|_, _| true).unwrap())
}

fn mean_recall(
    idx: &HnswIndex,
    metric: Metric,
    data: &[f32],
    qs: &[f32],
    ef: usize,
    allow: Option<&[u64]>,
) -> f64 {
    let mut sum = 0.0;
    for q in qs.chunks_exact(DIM) {
        let got = idx.search(data, q, K, ef, allow);
        let truth = brute(metric, data, DIM, q, K, allow);
        assert_eq!(got.len(), truth.len());
        check_sorted_exact(metric, data, DIM, q, &got);
        if let Some(w) = allow {
            assert!(
                got.iter().all(|g| is_set(w, g.1)),
                "returned a row outside allow"
            );
        }
        sum += recall(&got, &truth);
    }
    sum / (qs.len() / DIM) as f64
}

#[test]
fn recall_at_default_ef_every_metric_and_traversal() {
    let (data, qs) = dataset(N, NQ, DIM, 1);
    for metric in [Metric::L2, Metric::Ip, Metric::Cosine] {
        for t in [Traversal::Sq4, Traversal::Sq8, Traversal::F32] {
            let idx = build(metric, &data, t);
            let r = mean_recall(&idx, metric, &data, &qs, DEFAULT_EF, None);
            eprintln!("{metric} {t:?}: recall@10 = {r:.4}");
            assert!(r >= 0.95, "{metric} {t:?}: recall {r}");
        }
    }
}

#[test]
fn filtered_search_keeps_recall() {
    let (data, qs) = dataset(N, NQ, DIM, 2);
    for metric in [Metric::L2, Metric::Cosine] {
        let idx = build(metric, &data, Traversal::Sq4);
        for (sel, seed) in [(0.01, 11), (0.1, 12), (0.5, 13)] {
            let allow = bitmap(N, sel, seed);
            let r = mean_recall(&idx, metric, &data, &qs, DEFAULT_EF, Some(&allow));
            eprintln!("{metric} selectivity {sel}: recall@10 = {r:.4}");
            assert!(r >= 0.95, "{metric} selectivity {sel}: recall {r}");
        }
        // At 1% (~50 allowed rows) the default ef scans them exactly; with
        // ef = 16 < allowed rows the filtered graph walk itself runs.
        let allow = bitmap(N, 0.01, 11);
        let r = mean_recall(&idx, metric, &data, &qs, 16, Some(&allow));
        eprintln!("{metric} selectivity 0.01, ef 16 (graph walk): recall@10 = {r:.4}");
        assert!(r >= 0.95, "{metric} 1% graph walk: recall {r}");
    }
}

#[test]
fn deleted_rows_never_returned() {
    let (data, qs) = dataset(2000, 20, DIM, 3);
    let idx =
        HnswIndex::build(Metric::L2, DIM, &data, &HnswParams::default(), &|_, _| true).unwrap();
    // Delete each query's exact top 5 (and every row divisible by 3).
    for q in qs.chunks_exact(DIM) {
        let mut allow = vec![u64::MAX; 2000usize.div_ceil(64)];
        for i in (0..2000).step_by(3) {
            allow[i / 64] &= !(1 << (i % 64));
        }
        for (_, id) in brute(Metric::L2, &data, DIM, q, 5, None) {
            allow[id as usize / 64] &= !(1 << (id % 64));
        }
        let got = idx.search(&data, q, 20, 64, Some(&allow));
        assert_eq!(got.len(), 20);
        assert!(got.iter().all(|g| is_set(&allow, g.1)));
    }
    // Nothing allowed: nothing returned; a short bitmap means "not allowed".
    let q = &qs[..DIM];
    assert!(idx.search(&data, q, 10, 64, Some(&[])).is_empty());
    let one = [1u64 << 7];
    assert_eq!(
        idx.search(&data, q, 10, 64, Some(&one))
            .iter()
            .map(|g| g.1)
            .collect::<Vec<_>>(),
        vec![7]
    );
}

#[test]
fn save_load_round_trip_and_corruption() {
    let (data, qs) = dataset(1500, 10, DIM, 4);
    for (metric, t) in [
        (Metric::L2, Traversal::Sq8),
        (Metric::Cosine, Traversal::F32),
        (Metric::Ip, Traversal::Sq8),
        (Metric::L2, Traversal::Sq4),
    ] {
        let idx = build(metric, &data, t);
        let bytes = idx.to_bytes();
        let back = HnswIndex::from_bytes(&bytes).unwrap();
        assert_eq!(back.to_bytes(), bytes);
        assert_eq!(back.memory_bytes(), idx.memory_bytes());
        for q in qs.chunks_exact(DIM) {
            assert_eq!(
                idx.search(&data, q, K, 40, None),
                back.search(&data, q, K, 40, None)
            );
        }
        // Every truncation is an error.
        for cut in (0..bytes.len())
            .step_by(bytes.len() / 97 + 1)
            .chain([bytes.len() - 1])
        {
            assert!(
                matches!(
                    HnswIndex::from_bytes(&bytes[..cut]),
                    Err(IndexError::Corrupt(_))
                ),
                "cut {cut}"
            );
        }
        // Any flipped byte is an error (checksum or header).
        for pos in (0..bytes.len()).step_by(bytes.len() / 89 + 1) {
            let mut b = bytes.clone();
            b[pos] ^= 0x40;
            assert!(HnswIndex::from_bytes(&b).is_err(), "flip at {pos}");
        }
    }
}

#[test]
fn structurally_bad_file_with_valid_checksum_is_an_error() {
    let (data, _) = dataset(300, 1, DIM, 5);
    let idx = build(Metric::L2, &data, Traversal::F32);
    let bytes = idx.to_bytes();
    // Payload starts at 16: metric(1) trav(1) maxl(1) res(1) dim(4) n(8) M(4) efc(4) seed(8) entry(4)
    // levels: count(8) + n bytes; links0: count(8) then node 0's count, ids...
    let links0 = 16 + 36 + 8 + 300 + 8;
    let mut b = bytes.clone();
    b[links0 + 4..links0 + 8].copy_from_slice(&999_999u32.to_le_bytes()); // neighbour id out of range
    let len = b.len();
    let crc = crc32c_of(&b[..len - 4]);
    b[len - 4..].copy_from_slice(&crc.to_le_bytes());
    let err = HnswIndex::from_bytes(&b).unwrap_err();
    assert!(
        matches!(err, IndexError::Corrupt(ref m) if m.contains("neighbour")),
        "{err}"
    );
    // Wrong version.
    let mut b = bytes.clone();
    b[4] = 9;
    assert!(matches!(
        HnswIndex::from_bytes(&b),
        Err(IndexError::UnsupportedVersion { found: 9, .. })
    ));
}

fn crc32c_of(b: &[u8]) -> u32 {
    // Castagnoli, bitwise (tests only).
    let mut crc = !0u32;
    for &x in b {
        crc ^= x as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn single_thread_build_is_deterministic_and_reports_progress() {
    let (data, _) = dataset(1200, 1, DIM, 6);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let calls = std::sync::Mutex::new(Vec::new());
    let a = pool.install(|| {
        HnswIndex::build(Metric::L2, DIM, &data, &HnswParams::default(), &|d, t| {
            calls.lock().unwrap().push((d, t));
            true
        })
        .unwrap()
    });
    let b = pool.install(|| {
        HnswIndex::build(Metric::L2, DIM, &data, &HnswParams::default(), &|_, _| true).unwrap()
    });
    assert_eq!(a.to_bytes(), b.to_bytes());
    let calls = calls.into_inner().unwrap();
    assert_eq!(calls.last(), Some(&(1200, 1200)));
    assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0));
    // Returning false stops the build.
    let stop = HnswIndex::build(Metric::L2, DIM, &data, &HnswParams::default(), &|d, _| {
        d < 600
    });
    assert!(matches!(stop, Err(quiver_index::IndexError::Cancelled)));
}

#[test]
fn indexes_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<HnswIndex>();
    check::<quiver_index::IvfIndex>();
    check::<quiver_index::AnnIndex>();
}

#[test]
fn edge_cases() {
    let p = HnswParams::default();
    // Empty.
    let e = HnswIndex::build(Metric::L2, 4, &[], &p, &|_, _| true).unwrap();
    assert!(e.search(&[], &[0.0; 4], 5, 10, None).is_empty());
    let e2 = HnswIndex::from_bytes(&e.to_bytes()).unwrap();
    assert!(e2.is_empty());
    // One row, k > n (even usize::MAX), ef < k.
    let one_idx =
        HnswIndex::build(Metric::L2, 4, &[1.0f32, 2.0, 3.0, 4.0], &p, &|_, _| true).unwrap();
    assert_eq!(
        one_idx
            .search(
                &[1.0, 2.0, 3.0, 4.0],
                &[0.0; 4],
                usize::MAX,
                usize::MAX,
                None
            )
            .len(),
        1
    );
    let one = [1.0f32, 2.0, 3.0, 4.0];
    let idx = HnswIndex::build(Metric::Ip, 4, &one, &p, &|_, _| true).unwrap();
    assert_eq!(idx.search(&one, &one, 10, 1, None), vec![(30.0, 0)]);
    // Duplicates and zero vectors (COSINE of a zero vector is 0).
    let mut data = vec![0.0f32; 4 * 50];
    for (i, x) in data.iter_mut().enumerate().skip(40) {
        *x = (i % 7) as f32;
    }
    let idx = HnswIndex::build(Metric::Cosine, 4, &data, &p, &|_, _| true).unwrap();
    let got = idx.search(&data, &[1.0, 0.0, 0.0, 0.0], 50, 64, None);
    assert_eq!(got.len(), 50);
    // Bad shapes and parameters.
    assert!(matches!(
        HnswIndex::build(Metric::L2, 3, &one, &p, &|_, _| true),
        Err(IndexError::Shape(_))
    ));
    assert!(matches!(
        HnswIndex::build(Metric::L2, 0, &[], &p, &|_, _| true),
        Err(IndexError::Shape(_))
    ));
    let bad = HnswParams { m: 1, ..p.clone() };
    let err = HnswIndex::build(Metric::L2, 4, &one, &bad, &|_, _| true).unwrap_err();
    assert!(
        err.to_string().contains("M") && err.to_string().contains("[2, 2048]"),
        "{err}"
    );
    let bad = HnswParams {
        ef_construction: 0,
        ..p
    };
    assert!(matches!(
        HnswIndex::build(Metric::L2, 4, &one, &bad, &|_, _| true),
        Err(IndexError::InvalidParam { ref name, .. }) if name == "efConstruction"
    ));
}

#[test]
fn larger_ef_does_not_hurt_and_k_larger_than_ef() {
    let (data, qs) = dataset(N, 30, DIM, 7);
    let idx = build(Metric::L2, &data, Traversal::Sq4);
    let r16 = mean_recall(&idx, Metric::L2, &data, &qs, 16, None);
    let r200 = mean_recall(&idx, Metric::L2, &data, &qs, 200, None);
    assert!(r200 >= 0.99, "ef 200: {r200}");
    assert!(r200 >= r16);
    let got = idx.search(&data, &qs[..DIM], 100, 10, None);
    assert_eq!(got.len(), 100);
    assert!(recall(&got, &brute(Metric::L2, &data, DIM, &qs[..DIM], 100, None)) >= 0.9);
}
