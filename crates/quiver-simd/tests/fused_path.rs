//! On ordinary data the fused pass certifies its candidates: no query is
//! rescanned. (Own test binary: the rescan counter is process-wide.)

use quiver_simd::{exact_rescans, search_batch_with, search_one, Filter, Kernels, Level, Metric};

#[test]
fn random_data_needs_no_rescan() {
    let (nq, nb, dim, k) = (70, 2000, 48, 10);
    let mut x = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let base: Vec<f32> = (0..nb * dim).map(|_| next()).collect();
    let queries: Vec<f32> = (0..nq * dim).map(|_| next()).collect();
    let allow = |i: usize| (i + 1) % 5 > 1;
    for level in Level::ALL {
        let Some(kern) = Kernels::for_level(level) else {
            continue;
        };
        for metric in [Metric::L2, Metric::Ip, Metric::Cosine] {
            let before = exact_rescans();
            let res = search_batch_with(
                kern,
                metric,
                &queries,
                nq,
                &base,
                nb,
                dim,
                None,
                k,
                Filter::Fn(&allow),
            );
            assert_eq!(exact_rescans(), before, "{level:?} {metric:?} rescanned");
            if kern.level() == Kernels::active().level() {
                for (qi, r) in res.iter().enumerate() {
                    let q = &queries[qi * dim..(qi + 1) * dim];
                    assert_eq!(*r, search_one(metric, q, &base, dim, Filter::Fn(&allow), k));
                }
            }
        }
    }
    // A base far from the origin defeats the expanded L2 form: rescans keep
    // the answer exact.
    let far: Vec<f32> = base.iter().map(|v| v * 1e-3 + 1000.0).collect();
    let qs: Vec<f32> = queries.iter().map(|v| v * 1e-3 + 1000.0).collect();
    let before = exact_rescans();
    let res = quiver_simd::search_batch(Metric::L2, &qs, nq, &far, nb, dim, None, k, Filter::All);
    assert!(exact_rescans() > before);
    for (qi, r) in res.iter().enumerate() {
        assert_eq!(
            *r,
            search_one(
                Metric::L2,
                &qs[qi * dim..(qi + 1) * dim],
                &far,
                dim,
                Filter::All,
                k
            )
        );
    }
}
