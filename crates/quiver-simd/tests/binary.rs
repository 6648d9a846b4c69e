//! Binary metrics and exact binary search against a bit-by-bit reference.

use proptest::prelude::*;
use quiver_simd::{
    binary_search_one, binary_search_one_with, BinaryMetric, Filter, Kernels, Level,
};

fn levels() -> Vec<&'static Kernels> {
    Level::ALL
        .into_iter()
        .filter_map(Kernels::for_level)
        .collect()
}

/// Milvus scores computed one bit at a time, numpy `packbits` order (MSB
/// first) to show the order does not matter.
fn naive(metric: BinaryMetric, a: &[u8], b: &[u8]) -> f32 {
    assert_eq!(a.len(), b.len());
    let (mut diff, mut inter, mut union) = (0u32, 0u32, 0u32);
    for (x, y) in a.iter().zip(b) {
        for j in 0..8 {
            let (p, q) = ((x >> (7 - j)) & 1, (y >> (7 - j)) & 1);
            diff += (p != q) as u32;
            inter += (p & q) as u32;
            union += (p | q) as u32;
        }
    }
    match metric {
        BinaryMetric::Hamming => diff as f32,
        BinaryMetric::Jaccard => {
            if union == 0 {
                0.0
            } else {
                1.0 - inter as f32 / union as f32
            }
        }
    }
}

/// Every allowed row scored naively, sorted by (score, row), first `k`.
fn naive_top(
    metric: BinaryMetric,
    q: &[u8],
    data: &[u8],
    bpr: usize,
    allow: &dyn Fn(usize) -> bool,
    k: usize,
) -> Vec<(f32, u32)> {
    let mut all: Vec<(f32, u32)> = data
        .chunks_exact(bpr)
        .enumerate()
        .filter(|(i, _)| allow(*i))
        .map(|(i, r)| (naive(metric, q, r), i as u32))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.truncate(k);
    all
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn bytes(&mut self, n: usize, density: u32) -> Vec<u8> {
        (0..n)
            .map(|_| {
                let mut b = 0u8;
                for j in 0..8 {
                    if (self.next() % 100) < density as u64 {
                        b |= 1 << j;
                    }
                }
                b
            })
            .collect()
    }
}

#[test]
fn metric_api() {
    assert_eq!(BinaryMetric::parse("hamming"), Some(BinaryMetric::Hamming));
    assert_eq!(
        BinaryMetric::parse(" JACCARD "),
        Some(BinaryMetric::Jaccard)
    );
    assert_eq!(BinaryMetric::parse("Jaccard"), Some(BinaryMetric::Jaccard));
    assert_eq!(BinaryMetric::parse("L2"), None);
    assert_eq!(BinaryMetric::parse("TANIMOTO"), None);
    assert_eq!(BinaryMetric::Hamming.name(), "HAMMING");
    assert_eq!(BinaryMetric::Jaccard.to_string(), "JACCARD");
    assert_eq!("hamming".parse::<BinaryMetric>(), Ok(BinaryMetric::Hamming));
    assert!("cosine".parse::<BinaryMetric>().is_err());
    assert!(!BinaryMetric::Hamming.higher_is_better());
    assert!(!BinaryMetric::Jaccard.higher_is_better());
    assert_eq!(quiver_simd::Metric::parse("jaccard"), None);
}

#[test]
fn known_scores() {
    let a = [0b1111_0000u8, 0xFF];
    let b = [0b1010_0000u8, 0x0F];
    // differing: 2 + 4; inter: 2 + 4; union: 4 + 8.
    assert_eq!(BinaryMetric::Hamming.distance(&a, &b), 6.0);
    assert_eq!(BinaryMetric::Jaccard.distance(&a, &b), 1.0 - 6.0 / 12.0);
    let z = [0u8; 32];
    assert_eq!(BinaryMetric::Jaccard.distance(&z, &z), 0.0);
    assert_eq!(BinaryMetric::Hamming.distance(&z, &z), 0.0);
    let ones = [0xFFu8; 32];
    assert_eq!(BinaryMetric::Jaccard.distance(&z, &ones), 1.0);
    assert_eq!(BinaryMetric::Hamming.distance(&z, &ones), 256.0);
    assert_eq!(BinaryMetric::Jaccard.distance(&ones, &ones), 0.0);
}

#[test]
#[should_panic(expected = "length mismatch")]
fn length_mismatch_panics() {
    BinaryMetric::Hamming.distance(&[0u8; 4], &[0u8; 5]);
}

#[test]
fn every_level_same_bits() {
    let mut r = Rng(0x5EED);
    for len in [
        0usize, 1, 7, 8, 9, 16, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 200, 1024, 1031,
    ] {
        for density in [0u32, 5, 50, 95, 100] {
            let a = r.bytes(len, density);
            let b = r.bytes(len, 50);
            for m in BinaryMetric::ALL {
                let want = naive(m, &a, &b);
                for k in levels() {
                    let got = m.distance_with(k, &a, &b);
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{m} {:?} len {len}",
                        k.level()
                    );
                }
                assert_eq!(m.kernel()(&a, &b).to_bits(), want.to_bits());
                assert_eq!(m.distance(&a, &b).to_bits(), want.to_bits());
            }
        }
    }
}

#[test]
fn search_edge_cases() {
    let data = [0u8, 1, 3, 7, 15, 31];
    let q = [0u8];
    for m in BinaryMetric::ALL {
        assert!(binary_search_one(m, &q, &data, 1, Filter::All, 0).is_empty());
        let all = binary_search_one(m, &q, &data, 1, Filter::All, 100);
        assert_eq!(all.len(), 6);
        assert_eq!(all, naive_top(m, &q, &data, 1, &|_| true, 100));
        // A short bitmap: missing words mean not allowed.
        assert!(binary_search_one(m, &q, &data, 1, Filter::Bitmap(&[]), 3).is_empty());
        let r = binary_search_one(m, &q, &data, 1, Filter::Bitmap(&[0b101010]), 10);
        assert_eq!(r.iter().map(|x| x.1).collect::<Vec<_>>(), vec![1, 3, 5]);
        // Zero-byte rows: nothing to score.
        assert!(binary_search_one(m, &[], &[], 0, Filter::All, 3).is_empty());
    }
    // Ties are ordered by row.
    let data = [1u8, 2, 4, 8, 0];
    let r = binary_search_one(BinaryMetric::Hamming, &[0], &data, 1, Filter::All, 3);
    assert_eq!(r, vec![(0.0, 4), (1.0, 0), (1.0, 1)]);
}

#[test]
#[should_panic(expected = "query length")]
fn search_query_length_panics() {
    binary_search_one(
        BinaryMetric::Hamming,
        &[0u8; 3],
        &[0u8; 8],
        4,
        Filter::All,
        1,
    );
}

#[test]
#[should_panic(expected = "multiple of bytes_per_row")]
fn search_data_shape_panics() {
    binary_search_one(
        BinaryMetric::Hamming,
        &[0u8; 4],
        &[0u8; 9],
        4,
        Filter::All,
        1,
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn search_matches_naive(
        bpr in 1usize..=40,
        n in 0usize..=300,
        k in 0usize..=40,
        density in 0u32..=100,
        sel in 0u32..=100,
        seed in any::<u64>(),
    ) {
        let mut r = Rng(seed | 1);
        let data = r.bytes(n * bpr, density);
        let q = r.bytes(bpr, density);
        let mut words = vec![0u64; n.div_ceil(64)];
        for i in 0..n {
            if (r.next() % 100) < sel as u64 {
                words[i / 64] |= 1 << (i % 64);
            }
        }
        let allowed = |i: usize| words[i / 64] >> (i % 64) & 1 == 1;
        for m in BinaryMetric::ALL {
            let want_all = naive_top(m, &q, &data, bpr, &|_| true, k);
            let want_some = naive_top(m, &q, &data, bpr, &allowed, k);
            for lv in levels() {
                let got = binary_search_one_with(lv, m, &q, &data, bpr, Filter::All, k);
                prop_assert_eq!(&got, &want_all);
                let got = binary_search_one_with(lv, m, &q, &data, bpr, Filter::Bitmap(&words), k);
                prop_assert_eq!(&got, &want_some);
                let got = binary_search_one_with(lv, m, &q, &data, bpr, Filter::Fn(&allowed), k);
                prop_assert_eq!(&got, &want_some);
            }
        }
    }
}
