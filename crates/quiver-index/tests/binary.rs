//! Binary HNSW (HAMMING, JACCARD): recall vs brute force, filters, exact
//! scores, persistence, corruption, shapes, cancellation, `AnnIndex` API.

mod common;

use std::collections::BTreeMap;

use common::{bitmap, is_set, Rng};
use quiver_index::{
    parse_build_params, AnnIndex, BinaryHnswIndex, BinaryMetric, HnswIndex, HnswParams, IndexError,
    IndexKind, IndexSpec, Metric, SearchParams, DEFAULT_EF,
};
use quiver_simd::{binary_search_one, Filter};

const N: usize = 5000;
const NQ: usize = 200;
const BITS: usize = 256;
const BYTES: usize = BITS / 8;
const K: usize = 10;
const METRICS: [BinaryMetric; 2] = [BinaryMetric::Hamming, BinaryMetric::Jaccard];

/// `n` rows around `clusters` random centres (bits set with probability
/// 1/2), each row its centre with every bit flipped with probability
/// `flip`. Deterministic for a seed.
fn clustered_bits(n: usize, clusters: usize, flip: f32, seed: u64) -> Vec<u8> {
    let mut r = Rng(seed);
    let centres: Vec<u8> = (0..clusters * BYTES).map(|_| r.next() as u8).collect();
    let mut out = Vec::with_capacity(n * BYTES);
    for _ in 0..n {
        let c = (r.next() % clusters as u64) as usize;
        for &byte in &centres[c * BYTES..(c + 1) * BYTES] {
            let mut b = byte;
            for j in 0..8 {
                if r.unit() < flip {
                    b ^= 1 << j;
                }
            }
            out.push(b);
        }
    }
    out
}

/// Base rows and queries from the same 40 centres (queries are not base rows).
fn dataset(seed: u64) -> (Vec<u8>, Vec<u8>) {
    let all = clustered_bits(N + NQ, 40, 0.08, seed);
    let (b, q) = all.split_at(N * BYTES);
    (b.to_vec(), q.to_vec())
}

fn one_thread() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
}

/// Built on one thread: a parallel build's graph depends on thread timing,
/// and recall thresholds must not flake.
fn build(metric: BinaryMetric, data: &[u8]) -> BinaryHnswIndex {
    one_thread().install(|| {
        BinaryHnswIndex::build(metric, BITS, data, &HnswParams::default(), &|_, _| true).unwrap()
    })
}

fn brute(
    metric: BinaryMetric,
    data: &[u8],
    q: &[u8],
    k: usize,
    allow: Option<&[u64]>,
) -> Vec<(f32, u32)> {
    let f = allow.map_or(Filter::All, Filter::Bitmap);
    binary_search_one(metric, q, data, BYTES, f, k)
}

/// Tie-aware recall: Hamming scores are small integers, so many rows share
/// the `k`-th best score and brute force keeps the smallest ids among
/// them, while any of them is an equally correct answer. A returned row
/// counts as a hit when its (exact) score is no worse than the `k`-th best.
fn tie_recall(got: &[(f32, u32)], truth: &[(f32, u32)]) -> f64 {
    let Some(&(kth, _)) = truth.last() else {
        return 1.0;
    };
    let hits = got.iter().filter(|g| g.0 <= kth).count().min(truth.len());
    hits as f64 / truth.len() as f64
}

/// Sorted best (lowest) first, ties by smaller row, and every score is the
/// exact Milvus score of its row.
fn check_sorted_exact(metric: BinaryMetric, data: &[u8], q: &[u8], res: &[(f32, u32)]) {
    for w in res.windows(2) {
        assert!(
            w[0].0 < w[1].0 || (w[0].0 == w[1].0 && w[0].1 < w[1].1),
            "not sorted: {w:?}"
        );
    }
    for &(s, id) in res {
        let row = &data[id as usize * BYTES..(id as usize + 1) * BYTES];
        assert_eq!(
            s.to_bits(),
            metric.distance(q, row).to_bits(),
            "score of row {id}"
        );
    }
}

/// Mean tie-aware recall@K over the queries (and the id-overlap recall, for
/// the log), checking order, scores and the filter on every result.
fn mean_recall(
    idx: &BinaryHnswIndex,
    data: &[u8],
    qs: &[u8],
    ef: usize,
    allow: Option<&[u64]>,
) -> (f64, f64) {
    let metric = idx.metric();
    let (mut sum, mut ids) = (0.0, 0.0);
    for q in qs.chunks_exact(BYTES) {
        let got = idx.search(data, q, K, ef, allow);
        let truth = brute(metric, data, q, K, allow);
        assert_eq!(got.len(), truth.len());
        check_sorted_exact(metric, data, q, &got);
        if let Some(w) = allow {
            assert!(
                got.iter().all(|g| is_set(w, g.1)),
                "returned a row outside allow"
            );
        }
        sum += tie_recall(&got, &truth);
        ids += common::recall(&got, &truth);
    }
    let nq = (qs.len() / BYTES) as f64;
    (sum / nq, ids / nq)
}

#[test]
fn recall_at_default_ef_both_metrics() {
    let (data, qs) = dataset(1);
    for metric in METRICS {
        let idx = build(metric, &data);
        assert_eq!(idx.len(), N);
        assert_eq!(idx.dim_bits(), BITS);
        assert_eq!(idx.metric(), metric);
        let (r, r_ids) = mean_recall(&idx, &data, &qs, DEFAULT_EF, None);
        eprintln!("{metric}: recall@10 = {r:.4} (by id: {r_ids:.4})");
        assert!(r >= 0.95, "{metric}: recall {r}");
    }
}

#[test]
fn filtered_search_keeps_recall_and_never_returns_disallowed_rows() {
    let (data, qs) = dataset(2);
    for metric in METRICS {
        let idx = build(metric, &data);
        for (sel, seed) in [(0.5, 11), (0.1, 12)] {
            let allow = bitmap(N, sel, seed);
            let (r, r_ids) = mean_recall(&idx, &data, &qs, DEFAULT_EF, Some(&allow));
            eprintln!("{metric} selectivity {sel}: recall@10 = {r:.4} (by id: {r_ids:.4})");
            assert!(r >= 0.95, "{metric} at {sel}: recall {r}");
        }
        // At most ef allowed rows: scored directly, so exactly brute force.
        let mut few = vec![0u64; N.div_ceil(64)];
        for i in (0..N).step_by(97) {
            few[i / 64] |= 1 << (i % 64);
        }
        for q in qs.chunks_exact(BYTES).take(20) {
            let got = idx.search(&data, q, K, DEFAULT_EF, Some(&few));
            assert_eq!(got, brute(metric, &data, q, K, Some(&few)));
        }
        // Nothing allowed, or a bitmap shorter than n rows (missing words
        // are not allowed).
        let none = vec![0u64; N.div_ceil(64)];
        assert!(idx
            .search(&data, &qs[..BYTES], K, 64, Some(&none))
            .is_empty());
        let short = vec![u64::MAX; 2];
        let got = idx.search(&data, &qs[..BYTES], 200, 64, Some(&short));
        assert_eq!(got.len(), 128);
        assert!(got.iter().all(|g| g.1 < 128));
    }
}

#[test]
fn deleted_rows_never_returned_with_walk() {
    // 99% allowed: the walk (not the direct scan) must still skip the rest.
    let (data, qs) = dataset(3);
    let idx = build(BinaryMetric::Hamming, &data);
    let mut allow = vec![u64::MAX; N.div_ceil(64)];
    for q in qs.chunks_exact(BYTES).take(50) {
        // Delete this query's exact top 5, then search again.
        for &(_, id) in &brute(BinaryMetric::Hamming, &data, q, 5, None) {
            allow[id as usize / 64] &= !(1 << (id % 64));
        }
        let got = idx.search(&data, q, K, DEFAULT_EF, Some(&allow));
        assert_eq!(got.len(), K);
        assert!(got.iter().all(|g| is_set(&allow, g.1)));
    }
}

#[test]
fn save_load_round_trip_gives_identical_results() {
    let (data, qs) = dataset(4);
    for metric in METRICS {
        let idx = build(metric, &data);
        let bytes = idx.to_bytes();
        assert_eq!(quiver_index::peek_kind(&bytes), Ok(IndexKind::BinaryHnsw));
        let back = BinaryHnswIndex::from_bytes(&bytes).unwrap();
        assert_eq!(back.to_bytes(), bytes);
        assert_eq!(back.len(), idx.len());
        assert_eq!(back.dim_bits(), BITS);
        assert_eq!(back.metric(), metric);
        assert_eq!(back.m(), idx.m());
        assert_eq!(back.max_level(), idx.max_level());
        assert_eq!(back.ef_construction(), idx.ef_construction());
        let any = AnnIndex::from_bytes(&bytes).unwrap();
        assert!(matches!(any, AnnIndex::BinHnsw(_)));
        let allow = bitmap(N, 0.3, 5);
        let sp = SearchParams::Hnsw { ef: 48 };
        for q in qs.chunks_exact(BYTES).take(50) {
            for a in [None, Some(&allow[..])] {
                let want = idx.search(&data, q, K, 48, a);
                assert_eq!(back.search(&data, q, K, 48, a), want);
                assert_eq!(any.search_binary(&data, q, K, &sp, a), want);
            }
        }
    }
}

#[test]
fn corrupted_files_are_errors_never_panics() {
    let data = clustered_bits(400, 8, 0.1, 6);
    let idx = build(BinaryMetric::Jaccard, &data);
    let bytes = idx.to_bytes();
    // Any single flipped bit fails the checksum (or the envelope checks).
    for pos in (0..bytes.len()).step_by(bytes.len() / 97 + 1) {
        let mut b = bytes.clone();
        b[pos] ^= 0x10;
        assert!(BinaryHnswIndex::from_bytes(&b).is_err(), "flip at {pos}");
        assert!(AnnIndex::from_bytes(&b).is_err(), "flip at {pos}");
    }
    // Truncated or extended.
    for len in [0, 10, 19, 20, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            BinaryHnswIndex::from_bytes(&bytes[..len]).is_err(),
            "len {len}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(BinaryHnswIndex::from_bytes(&longer).is_err());

    // Structurally bad payloads under a valid checksum.
    // Payload starts at 16: metric(1) maxl(1) res(2) dim_bits(4) n(8) M(4)
    // efc(4) seed(8) entry(4) = 36 bytes; then levels: count(8) + n bytes;
    // links0: count(8) then node 0's slots.
    let n = 400;
    let links0 = 16 + 36 + 8 + n + 8;
    let patch = |at: usize, val: &[u8]| -> Result<BinaryHnswIndex, IndexError> {
        let mut b = bytes.clone();
        b[at..at + val.len()].copy_from_slice(val);
        let len = b.len();
        let crc = crc32c::crc32c(&b[..len - 4]);
        b[len - 4..].copy_from_slice(&crc.to_le_bytes());
        BinaryHnswIndex::from_bytes(&b)
    };
    let corrupt = |r: Result<BinaryHnswIndex, IndexError>, what: &str| match r {
        Err(IndexError::Corrupt(m)) => assert!(m.contains(what), "{m} (wanted {what})"),
        other => panic!("expected a Corrupt error about {what}, got {other:?}"),
    };
    corrupt(patch(links0, &999_999u32.to_le_bytes()), "neighbour");
    corrupt(patch(16, &[7]), "metric");
    corrupt(patch(16 + 2, &[1]), "reserved");
    corrupt(patch(16 + 4, &12u32.to_le_bytes()), "dim_bits");
    corrupt(patch(16 + 4, &0u32.to_le_bytes()), "dim_bits");
    corrupt(patch(16 + 16, &1u32.to_le_bytes()), "M");
    corrupt(patch(16 + 32, &(n as u32).to_le_bytes()), "entry");
    corrupt(patch(16 + 8, &(n as u64 + 1).to_le_bytes()), "levels");
    // A level above max_level.
    let lv = 16 + 36 + 8;
    corrupt(patch(lv, &[40]), "level");
    // Another kind's file is rejected, and vice versa.
    let float = HnswIndex::build(
        Metric::L2,
        4,
        &[0.0, 1.0, 2.0, 3.0, 1.0, 1.0, 1.0, 1.0],
        &HnswParams::default(),
        &|_, _| true,
    )
    .unwrap()
    .to_bytes();
    assert!(matches!(
        BinaryHnswIndex::from_bytes(&float),
        Err(IndexError::Corrupt(_))
    ));
    assert!(matches!(
        HnswIndex::from_bytes(&bytes),
        Err(IndexError::Corrupt(_))
    ));
    assert!(matches!(
        AnnIndex::from_bytes(&float),
        Ok(AnnIndex::Hnsw(_))
    ));
}

#[test]
fn bad_dims_and_shapes_are_errors() {
    let p = HnswParams::default();
    let ok = |_: usize, _: usize| true;
    for bits in [0usize, 1, 7, 12, 255, 257] {
        let r = BinaryHnswIndex::build(BinaryMetric::Hamming, bits, &[0u8; 64], &p, &ok);
        assert!(
            matches!(r, Err(IndexError::Shape(ref m)) if m.contains("multiple of 8")),
            "{bits}: {r:?}"
        );
        for spec in [IndexSpec::Flat, IndexSpec::Hnsw(p.clone())] {
            let r = AnnIndex::build_binary(&spec, BinaryMetric::Jaccard, bits, &[0u8; 64], &ok);
            assert!(matches!(r, Err(IndexError::Shape(_))), "{bits}");
        }
    }
    // Not whole rows.
    let r = BinaryHnswIndex::build(BinaryMetric::Hamming, 16, &[0u8; 5], &p, &ok);
    assert!(matches!(r, Err(IndexError::Shape(_))));
    // Bad parameters.
    let bad = HnswParams { m: 1, ..p.clone() };
    let r = BinaryHnswIndex::build(BinaryMetric::Hamming, 16, &[0u8; 4], &bad, &ok);
    assert!(matches!(r, Err(IndexError::InvalidParam { ref name, .. }) if name == "M"));
    let bad = HnswParams {
        ef_construction: 0,
        ..p
    };
    let r = BinaryHnswIndex::build(BinaryMetric::Hamming, 16, &[0u8; 4], &bad, &ok);
    assert!(
        matches!(r, Err(IndexError::InvalidParam { ref name, .. }) if name == "efConstruction")
    );
}

#[test]
fn cancellation_and_progress() {
    let data = clustered_bits(3000, 10, 0.1, 7);
    let pool = one_thread();
    let calls = std::sync::Mutex::new(Vec::new());
    let a = pool.install(|| {
        BinaryHnswIndex::build(
            BinaryMetric::Hamming,
            BITS,
            &data,
            &HnswParams::default(),
            &|d, t| {
                calls.lock().unwrap().push((d, t));
                true
            },
        )
        .unwrap()
    });
    let calls = calls.into_inner().unwrap();
    assert_eq!(calls.first(), Some(&(1, 3000)));
    assert_eq!(calls.last(), Some(&(3000, 3000)));
    assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0));
    // A one-thread build is deterministic.
    let b = build(BinaryMetric::Hamming, &data);
    assert_eq!(a.to_bytes(), b.to_bytes());
    // Returning false stops the build, at the first call or later.
    for stop_at in [1, 1500] {
        let r = BinaryHnswIndex::build(
            BinaryMetric::Hamming,
            BITS,
            &data,
            &HnswParams::default(),
            &|d, _| d < stop_at,
        );
        assert!(matches!(r, Err(IndexError::Cancelled)), "{stop_at}");
        let spec = IndexSpec::Hnsw(HnswParams::default());
        let r = AnnIndex::build_binary(&spec, BinaryMetric::Jaccard, BITS, &data, &|d, _| {
            d < stop_at
        });
        assert!(matches!(r, Err(IndexError::Cancelled)), "{stop_at}");
    }
}

#[test]
fn ann_index_api() {
    let (data, qs) = dataset(8);
    let data = &data[..1000 * BYTES];
    let ok = |_: usize, _: usize| true;
    let no_params = BTreeMap::new();
    // FLAT: nothing to build.
    let flat = parse_build_params("FLAT", &no_params).unwrap();
    assert!(
        AnnIndex::build_binary(&flat, BinaryMetric::Hamming, BITS, data, &ok)
            .unwrap()
            .is_none()
    );
    // IVF: float vectors only.
    for t in ["IVF_FLAT", "IVF_SQ8"] {
        let spec = parse_build_params(t, &no_params).unwrap();
        let err =
            AnnIndex::build_binary(&spec, BinaryMetric::Hamming, BITS, data, &ok).unwrap_err();
        assert!(
            matches!(err, IndexError::UnsupportedIndexType(ref m) if m.contains("float")),
            "{err}"
        );
    }
    // HNSW and AUTOINDEX build a binary HNSW.
    for t in ["HNSW", "AUTOINDEX"] {
        let spec = parse_build_params(t, &no_params).unwrap();
        let pool = one_thread();
        let idx = pool
            .install(|| AnnIndex::build_binary(&spec, BinaryMetric::Jaccard, BITS, data, &ok))
            .unwrap()
            .unwrap();
        let AnnIndex::BinHnsw(inner) = &idx else {
            panic!("{t}: not a binary HNSW")
        };
        assert!(idx.is_binary());
        assert_eq!(idx.len(), 1000);
        assert!(!idx.is_empty());
        assert_eq!(idx.dim(), BITS);
        assert_eq!(idx.metric(), None);
        assert_eq!(idx.binary_metric(), Some(BinaryMetric::Jaccard));
        assert_eq!(idx.metric_name(), "JACCARD");
        assert_eq!(idx.memory_bytes(), inner.memory_bytes());
        assert!(idx.memory_bytes() >= 1000 * 32 * 4);
        assert_eq!(idx.to_bytes(), inner.to_bytes());
        let q = &qs[..BYTES];
        let sp = quiver_index::parse_search_params(&spec, &serde_json::Map::new()).unwrap();
        let want = inner.search(data, q, K, DEFAULT_EF, None);
        assert_eq!(idx.search_binary(data, q, K, &sp, None), want);
        // A mismatched parameter kind falls back to the default ef.
        assert_eq!(
            idx.search_binary(data, q, K, &SearchParams::Flat, None),
            want
        );
        // The float search of a binary index is empty.
        assert!(idx
            .search(&[0.0; 8], &[0.0; 8], K, &SearchParams::Flat, None)
            .is_empty());
    }
    // The binary search of a float index is empty.
    let fdata: Vec<f32> = (0..64).map(|i| i as f32).collect();
    let spec = IndexSpec::Hnsw(HnswParams::default());
    let fidx = AnnIndex::build(&spec, Metric::L2, 8, &fdata, &ok)
        .unwrap()
        .unwrap();
    assert!(!fidx.is_binary());
    assert_eq!(fidx.metric(), Some(Metric::L2));
    assert_eq!(fidx.binary_metric(), None);
    assert_eq!(fidx.metric_name(), "L2");
    assert!(fidx
        .search_binary(data, &qs[..BYTES], K, &SearchParams::Hnsw { ef: 10 }, None)
        .is_empty());
}

#[test]
fn edge_cases() {
    let p = HnswParams::default();
    let ok = |_: usize, _: usize| true;
    for metric in METRICS {
        // Empty.
        let e = BinaryHnswIndex::build(metric, 64, &[], &p, &ok).unwrap();
        assert!(e.is_empty());
        assert!(e.search(&[], &[0u8; 8], 5, 10, None).is_empty());
        let e2 = BinaryHnswIndex::from_bytes(&e.to_bytes()).unwrap();
        assert!(e2.is_empty());
        assert_eq!(e2.dim_bits(), 64);
        // One row; k > n (even usize::MAX), ef < k.
        let one = [0b1011_0000u8];
        let idx = BinaryHnswIndex::build(metric, 8, &one, &p, &ok).unwrap();
        let got = idx.search(&one, &[0b1000_0000], usize::MAX, usize::MAX, None);
        let want = metric.distance(&[0b1000_0000], &one);
        assert_eq!(got, vec![(want, 0)]);
        assert!(idx.search(&one, &one, 0, 10, None).is_empty());
        // Duplicates and all-zero rows (JACCARD of two zero rows is 0, of
        // a zero row and any other 1). Groups of identical rows larger
        // than 2 M can be unreachable from each other, as in any HNSW (see
        // the module docs), so the groups here are small.
        let mut data = clustered_bits(300, 3, 0.3, 13);
        data[..20 * BYTES].fill(0);
        let idx = one_thread()
            .install(|| BinaryHnswIndex::build(metric, BITS, &data, &p, &ok))
            .unwrap();
        let zero = [0u8; BYTES];
        let got = idx.search(&data, &zero, 300, 300, None);
        assert_eq!(got.len(), 300);
        check_sorted_exact(metric, &data, &zero, &got);
        assert_eq!(got, brute(metric, &data, &zero, 300, None));
        let small = idx.search(&data, &zero, 10, 64, None);
        assert_eq!(small, (0..10).map(|i| (0.0, i)).collect::<Vec<_>>());
    }
    // Wide rows (several u64 words plus a tail) work as well.
    let data = clustered_bits(500, 5, 0.1, 9);
    let wide: Vec<u8> = data
        .chunks_exact(BYTES)
        .flat_map(|r| r.iter().chain(&r[..8]).copied())
        .collect();
    // Built on one thread (deterministic): a multi-threaded build's recall is what
    // `multi_threaded_build_has_good_recall` measures; this checks the row layout only.
    let idx = one_thread()
        .install(|| BinaryHnswIndex::build(BinaryMetric::Hamming, 320, &wide, &p, &ok))
        .unwrap();
    let q = &wide[40 * 40..41 * 40];
    let got = idx.search(&wide, q, 5, 64, None);
    assert_eq!(got[0], (0.0, 40));
}

#[test]
#[should_panic(expected = "query length")]
fn wrong_query_length_panics() {
    let data = vec![0u8; 4 * 10];
    let idx = BinaryHnswIndex::build(
        BinaryMetric::Hamming,
        32,
        &data,
        &HnswParams::default(),
        &|_, _| true,
    )
    .unwrap();
    idx.search(&data, &[0u8; 3], 1, 10, None);
}

#[test]
fn multi_threaded_build_has_good_recall() {
    let (data, qs) = dataset(10);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let idx = pool
        .install(|| {
            BinaryHnswIndex::build(
                BinaryMetric::Hamming,
                BITS,
                &data,
                &HnswParams::default(),
                &|_, _| true,
            )
        })
        .unwrap();
    let (r, _) = mean_recall(&idx, &data, &qs[..50 * BYTES], DEFAULT_EF, None);
    assert!(r >= 0.95, "recall {r}");
}

#[test]
fn indexes_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<BinaryHnswIndex>();
    check::<AnnIndex>();
}
