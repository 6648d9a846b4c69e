//! `search_batch` / `search_one` against a brute-force reference.

use proptest::prelude::*;
use quiver_simd::{
    search_batch, search_batch_with, search_one, Filter, Kernels, Level, Metric, TopK,
};

fn levels() -> Vec<&'static Kernels> {
    Level::ALL
        .into_iter()
        .filter_map(Kernels::for_level)
        .collect()
}

/// Scores every allowed row with `Metric::distance_with`, sorts, truncates.
fn brute(
    kern: &Kernels,
    metric: Metric,
    q: &[f32],
    base: &[f32],
    dim: usize,
    allow: &dyn Fn(usize) -> bool,
    k: usize,
) -> Vec<(f32, u32)> {
    let mut v: Vec<(f32, u32)> = base
        .chunks_exact(dim)
        .enumerate()
        .filter(|(i, _)| allow(*i))
        .map(|(i, b)| (metric.distance_with(kern, q, b), i as u32))
        .filter(|(s, _)| !s.is_nan())
        .collect();
    v.sort_by(|a, b| TopK::<u32>::compare(metric.higher_is_better(), a, b));
    v.truncate(k);
    v
}

const METRICS: [Metric; 3] = [Metric::L2, Metric::Ip, Metric::Cosine];

fn check(
    queries: &[f32],
    nq: usize,
    base: &[f32],
    nb: usize,
    dim: usize,
    k: usize,
    mask: Option<&[bool]>,
) {
    let allow_fn = |i: usize| mask.is_none_or(|m| m[i]);
    let bitmap: Vec<u64> = {
        let mut w = vec![0u64; nb.div_ceil(64)];
        for i in 0..nb {
            if allow_fn(i) {
                w[i / 64] |= 1 << (i % 64);
            }
        }
        w
    };
    for kern in levels() {
        for metric in METRICS {
            let norms = quiver_simd::row_norms_sq(base, dim);
            let by_fn = search_batch_with(
                kern,
                metric,
                queries,
                nq,
                base,
                nb,
                dim,
                None,
                k,
                Filter::Fn(&allow_fn),
            );
            let by_bits = search_batch_with(
                kern,
                metric,
                queries,
                nq,
                base,
                nb,
                dim,
                Some(&norms),
                k,
                Filter::Bitmap(&bitmap),
            );
            assert_eq!(by_fn.len(), nq);
            for qi in 0..nq {
                let q = &queries[qi * dim..(qi + 1) * dim];
                let want = brute(kern, metric, q, base, dim, &allow_fn, k);
                assert_eq!(
                    by_fn[qi],
                    want,
                    "{:?} {metric:?} q{qi} nq={nq} nb={nb} dim={dim} k={k}",
                    kern.level()
                );
                assert_eq!(
                    by_bits[qi],
                    want,
                    "{:?} {metric:?} (bitmap) q{qi}",
                    kern.level()
                );
            }
        }
    }
    // The public entry points on the active level.
    for metric in METRICS {
        let all = search_batch(
            metric,
            queries,
            nq,
            base,
            nb,
            dim,
            None,
            k,
            Filter::Fn(&allow_fn),
        );
        for qi in 0..nq {
            let q = &queries[qi * dim..(qi + 1) * dim];
            let one = search_one(metric, q, base, dim, Filter::Fn(&allow_fn), k);
            assert_eq!(all[qi], one, "{metric:?} search_one vs search_batch q{qi}");
        }
    }
}

/// (nq, nb, dim, k, queries, base, optional row mask)
type Problem = (
    usize,
    usize,
    usize,
    usize,
    Vec<f32>,
    Vec<f32>,
    Option<Vec<bool>>,
);

fn problem() -> impl Strategy<Value = Problem> {
    (
        0usize..45,
        0usize..150,
        1usize..40,
        0usize..25,
        any::<bool>(),
    )
        .prop_flat_map(|(nq, nb, dim, k, filtered)| {
            (
                Just(nq),
                Just(nb),
                Just(dim),
                Just(k),
                prop::collection::vec(-1.0f32..1.0, nq * dim),
                prop::collection::vec(-1.0f32..1.0, nb * dim),
                if filtered {
                    prop::collection::vec(prop::bool::weighted(0.6), nb)
                        .prop_map(Some)
                        .boxed()
                } else {
                    Just(None).boxed()
                },
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn batch_equals_brute_force((nq, nb, dim, k, queries, base, mask) in problem()) {
        check(&queries, nq, &base, nb, dim, k, mask.as_deref());
    }
}

/// Duplicated rows (exact ties), zero vectors, and a base far from the origin
/// (where the expanded L2 form loses precision and the re-rank must repair it).
#[test]
fn ties_zero_vectors_and_offset_base() {
    let dim = 19;
    let nb = 300;
    let nq = 40;
    let mut base: Vec<f32> = (0..nb * dim)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    for r in (0..nb).step_by(7) {
        // every 7th row duplicates row 3; every 11th is zero
        let src: Vec<f32> = base[3 * dim..4 * dim].to_vec();
        base[r * dim..(r + 1) * dim].copy_from_slice(&src);
    }
    for r in (0..nb).step_by(11) {
        base[r * dim..(r + 1) * dim].fill(0.0);
    }
    let mut queries: Vec<f32> = (0..nq * dim)
        .map(|i| ((i * 53 % 97) as f32 / 48.0) - 1.0)
        .collect();
    queries[..dim].fill(0.0); // zero query: cosine 0 everywhere, order by id
    queries[dim..2 * dim].copy_from_slice(&base[3 * dim..4 * dim]);
    for k in [1, 5, 10, 64] {
        check(&queries, nq, &base, nb, dim, k, None);
        let mask: Vec<bool> = (0..nb).map(|i| i % 3 != 1).collect();
        check(&queries, nq, &base, nb, dim, k, Some(&mask));
    }
    let zero = search_batch(
        Metric::Cosine,
        &queries,
        nq,
        &base,
        nb,
        dim,
        None,
        4,
        Filter::All,
    );
    let ids: Vec<u32> = zero[0].iter().map(|e| e.1).collect();
    assert_eq!(ids, vec![0, 1, 2, 3]);
    assert!(zero[0].iter().all(|e| e.0 == 0.0));

    let shifted: Vec<f32> = base.iter().map(|x| x + 100.0).collect();
    let qs: Vec<f32> = queries.iter().map(|x| x + 100.0).collect();
    check(&qs, nq, &shifted, nb, dim, 10, None);
}

#[test]
fn degenerate_shapes() {
    let base = vec![1.0f32; 12];
    assert!(search_batch(Metric::L2, &[], 0, &base, 3, 4, None, 5, Filter::All).is_empty());
    assert_eq!(
        search_batch(Metric::L2, &[0.0; 8], 2, &base, 3, 4, None, 0, Filter::All),
        vec![vec![]; 2]
    );
    assert_eq!(
        search_batch(Metric::Ip, &[0.0; 8], 2, &[], 0, 4, None, 3, Filter::All),
        vec![vec![]; 2]
    );
    let none = vec![0u64; 1];
    let r = search_batch(
        Metric::Ip,
        &[1.0; 40],
        10,
        &base,
        3,
        4,
        None,
        3,
        Filter::Bitmap(&none),
    );
    assert!(r.iter().all(|v| v.is_empty()));
    // k larger than nb returns every row.
    let r = search_one(Metric::L2, &[0.0; 4], &base, 4, Filter::All, 100);
    assert_eq!(r.len(), 3);
}

#[test]
fn metric_api() {
    assert_eq!(Metric::parse("l2"), Some(Metric::L2));
    assert_eq!(Metric::parse("Ip"), Some(Metric::Ip));
    assert_eq!(Metric::parse("COSINE"), Some(Metric::Cosine));
    assert_eq!(Metric::parse("hamming"), None);
    assert!(!Metric::L2.higher_is_better());
    assert!(Metric::Ip.higher_is_better() && Metric::Cosine.higher_is_better());
    let (a, b) = ([1.0f32, 2.0, 2.0], [2.0f32, 0.0, 0.0]);
    assert_eq!(Metric::L2.distance(&a, &b), 9.0);
    assert_eq!(Metric::Ip.distance(&a, &b), 2.0);
    assert!((Metric::Cosine.distance(&a, &b) - 1.0 / 3.0).abs() < 1e-6);
    assert_eq!("cosine".parse::<Metric>(), Ok(Metric::Cosine));
}

/// Several L2 sub-blocks, several query chunks, and base splits (few query
/// panels on a wide pool): same answer as brute force for any pool size.
#[test]
fn blocks_chunks_and_splits() {
    let (nb, dim) = (6000, 40);
    let mut x = 0xDEAD_BEEF_u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let base: Vec<f32> = (0..nb * dim).map(|_| next()).collect();
    let queries: Vec<f32> = (0..100 * dim).map(|_| next()).collect();
    let mask: Vec<bool> = (0..nb).map(|i| i % 7 != 3).collect();
    let allow = |i: usize| mask[i];
    for nq in [5, 40, 100] {
        let qs = &queries[..nq * dim];
        for threads in [1, 4] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| check(qs, nq, &base, nb, dim, 10, Some(&mask)));
        }
        for metric in METRICS {
            let r1 = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .unwrap()
                .install(|| {
                    search_batch(metric, qs, nq, &base, nb, dim, None, 7, Filter::Fn(&allow))
                });
            let r4 = rayon::ThreadPoolBuilder::new()
                .num_threads(4)
                .build()
                .unwrap()
                .install(|| {
                    search_batch(metric, qs, nq, &base, nb, dim, None, 7, Filter::Fn(&allow))
                });
            assert_eq!(r1, r4);
        }
    }
}
