//! Shared helpers: seeded synthetic data, brute force, recall.
#![allow(dead_code)]

use quiver_simd::{search_one, Filter, Metric};

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn unit(&mut self) -> f32 {
        ((self.next() >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }
    pub fn gauss(&mut self) -> f32 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

/// `n x dim` gaussian mixture: `clusters` centres in [-1, 1]^dim, sigma 0.6.
pub fn clustered(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng(seed);
    let centres: Vec<f32> = (0..clusters * dim).map(|_| r.unit() * 2.0 - 1.0).collect();
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let c = (r.next() % clusters as u64) as usize;
        for d in 0..dim {
            out.push(centres[c * dim + d] + 0.6 * r.gauss());
        }
    }
    out
}

/// Base rows and queries from the same mixture (queries are not base rows).
pub fn dataset(n: usize, nq: usize, dim: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let all = clustered(n + nq, dim, 50, seed);
    let (b, q) = all.split_at(n * dim);
    (b.to_vec(), q.to_vec())
}

pub fn brute(
    metric: Metric,
    data: &[f32],
    dim: usize,
    q: &[f32],
    k: usize,
    allow: Option<&[u64]>,
) -> Vec<(f32, u32)> {
    let f = allow.map_or(Filter::All, Filter::Bitmap);
    search_one(metric, q, data, dim, f, k)
}

/// Fraction of `truth`'s ids found in `got`.
pub fn recall(got: &[(f32, u32)], truth: &[(f32, u32)]) -> f64 {
    if truth.is_empty() {
        return 1.0;
    }
    let hit = truth
        .iter()
        .filter(|t| got.iter().any(|g| g.1 == t.1))
        .count();
    hit as f64 / truth.len() as f64
}

/// A bitmap of `n` rows where each row is set with probability `p`.
pub fn bitmap(n: usize, p: f64, seed: u64) -> Vec<u64> {
    let mut r = Rng(seed);
    let mut w = vec![0u64; n.div_ceil(64)];
    for i in 0..n {
        if (r.unit() as f64) < p {
            w[i / 64] |= 1 << (i % 64);
        }
    }
    w
}

pub fn is_set(w: &[u64], i: u32) -> bool {
    w[i as usize / 64] >> (i % 64) & 1 == 1
}

/// Results are sorted best first with ties by smaller id, and scores are
/// the exact Milvus scores.
pub fn check_sorted_exact(metric: Metric, data: &[f32], dim: usize, q: &[f32], res: &[(f32, u32)]) {
    for w in res.windows(2) {
        let ok = if metric.higher_is_better() {
            w[0].0 > w[1].0
        } else {
            w[0].0 < w[1].0
        };
        assert!(
            ok || (w[0].0 == w[1].0 && w[0].1 < w[1].1),
            "not sorted: {w:?}"
        );
    }
    for &(s, id) in res {
        let row = &data[id as usize * dim..(id as usize + 1) * dim];
        assert_eq!(s, metric.distance(q, row), "score of row {id}");
    }
}
