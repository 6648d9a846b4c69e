//! k-means (L2) for IVF coarse quantisers and PQ codebooks.
//!
//! * Training rows: a seeded sample of at most `max_train` rows.
//! * Initialisation: k-means++ (D^2 sampling) over at most `32 k` of them
//!   when that costs at most ~2^34 multiply-adds (`32 k^2 dim`; e.g. k <=
//!   ~1,800 at dim 384); beyond that, k distinct random rows (k-means++ is
//!   sequential in k and would dominate the build).
//! * Lloyd iterations: assignment by `quiver_simd::search_batch` (exact,
//!   blocked matrix product, parallel), then means. An empty cluster takes
//!   over half of a large one (the centroid of a large cluster is copied
//!   with a small symmetric perturbation), as faiss does.
//! * With fewer training rows than `k`, every row is a centroid and the
//!   remaining centroids repeat them (their lists stay empty).

use quiver_simd::{search_batch, Filter, Metric};
use rayon::prelude::*;

use crate::rng::Rng;

/// Nearest centroid (by `metric`, exact) of each row of `rows` (`nq x dim`).
pub(crate) fn assign(metric: Metric, rows: &[f32], dim: usize, centroids: &[f32]) -> Vec<u32> {
    let nq = rows.len() / dim;
    let k = centroids.len() / dim;
    if nq == 0 || k == 0 {
        return vec![0; nq];
    }
    // Bounded batches keep the per-query result vectors small in number.
    let mut out = Vec::with_capacity(nq);
    for chunk in rows.chunks(dim * 65536) {
        let r = search_batch(
            metric,
            chunk,
            chunk.len() / dim,
            centroids,
            k,
            dim,
            None,
            1,
            Filter::All,
        );
        out.extend(r.into_iter().map(|v| v.first().map_or(0, |p| p.1)));
    }
    out
}

/// Trains `k` centroids (`k x dim`, row-major) on rows of `data`.
pub(crate) fn train(
    data: &[f32],
    dim: usize,
    k: usize,
    iters: usize,
    max_train: usize,
    seed: u64,
) -> Vec<f32> {
    let n = data.len() / dim;
    let mut rng = Rng::new(seed);
    let idx = rng.sample(n, max_train.max(k));
    let train: Vec<f32> = idx
        .iter()
        .flat_map(|&i| data[i * dim..(i + 1) * dim].iter().copied())
        .collect();
    let nt = idx.len();
    let mut cent = vec![0.0f32; k * dim];
    if nt == 0 {
        return cent;
    }
    if nt <= k {
        for c in 0..k {
            let r = c % nt;
            cent[c * dim..(c + 1) * dim].copy_from_slice(&train[r * dim..(r + 1) * dim]);
        }
        return cent;
    }
    init(&train, dim, k, &mut rng, &mut cent);
    let mut sums = vec![0.0f64; k * dim];
    let mut counts = vec![0usize; k];
    for _ in 0..iters {
        let a = assign(Metric::L2, &train, dim, &cent);
        sums.fill(0.0);
        counts.fill(0);
        for (r, &c) in a.iter().enumerate() {
            let c = c as usize;
            counts[c] += 1;
            for (s, &x) in sums[c * dim..(c + 1) * dim]
                .iter_mut()
                .zip(&train[r * dim..(r + 1) * dim])
            {
                *s += x as f64;
            }
        }
        for c in 0..k {
            if counts[c] > 0 {
                let inv = 1.0 / counts[c] as f64;
                for (o, s) in cent[c * dim..(c + 1) * dim]
                    .iter_mut()
                    .zip(&sums[c * dim..(c + 1) * dim])
                {
                    *o = (s * inv) as f32;
                }
            }
        }
        split_empty(&mut cent, &mut counts, dim, nt, &mut rng);
    }
    cent
}

fn init(train: &[f32], dim: usize, k: usize, rng: &mut Rng, cent: &mut [f32]) {
    let nt = train.len() / dim;
    let cost = 32.0 * (k as f64) * (k as f64) * dim as f64;
    if cost > (1u64 << 34) as f64 {
        for (c, &r) in rng.sample(nt, k).iter().enumerate() {
            cent[c * dim..(c + 1) * dim].copy_from_slice(&train[r * dim..(r + 1) * dim]);
        }
        return;
    }
    // k-means++ over a subsample of at most 32 k rows.
    let sub_idx = rng.sample(nt, 32 * k);
    let sub: Vec<f32> = sub_idx
        .iter()
        .flat_map(|&i| train[i * dim..(i + 1) * dim].iter().copied())
        .collect();
    let ns = sub_idx.len();
    let first = rng.below(ns);
    cent[..dim].copy_from_slice(&sub[first * dim..(first + 1) * dim]);
    let mut best = vec![f32::INFINITY; ns];
    for c in 1..k {
        let prev = &cent[(c - 1) * dim..c * dim];
        best.par_iter_mut()
            .zip(sub.par_chunks(dim))
            .for_each(|(b, row)| *b = b.min(quiver_simd::l2_sq(row, prev)));
        let total: f64 = best.iter().map(|&d| d as f64).sum();
        let pick = if total > 0.0 {
            let mut t = rng.unit() * total;
            let mut p = ns - 1;
            for (i, &d) in best.iter().enumerate() {
                t -= d as f64;
                if t < 0.0 {
                    p = i;
                    break;
                }
            }
            p
        } else {
            rng.below(ns)
        };
        cent[c * dim..(c + 1) * dim].copy_from_slice(&sub[pick * dim..(pick + 1) * dim]);
    }
}

fn split_empty(cent: &mut [f32], counts: &mut [usize], dim: usize, nt: usize, rng: &mut Rng) {
    let k = counts.len();
    for c in 0..k {
        if counts[c] > 0 {
            continue;
        }
        // Pick a cluster with probability proportional to (size - 1).
        let mut big = 0;
        loop {
            let j = rng.below(k);
            let p = (counts[j] as f64 - 1.0) / (nt as f64 - k as f64).max(1.0);
            if counts[j] > 1 && rng.unit() < p.max(1e-3) {
                big = j;
                break;
            }
            if counts.iter().all(|&x| x <= 1) {
                break;
            }
        }
        if counts[big] <= 1 {
            continue;
        }
        let eps = 1.0 / 1024.0;
        for d in 0..dim {
            let v = cent[big * dim + d];
            let sign = if d % 2 == 0 { 1.0 } else { -1.0 };
            cent[c * dim + d] = v * (1.0 + sign * eps);
            cent[big * dim + d] = v * (1.0 - sign * eps);
        }
        counts[c] = counts[big] / 2;
        counts[big] -= counts[c];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_separated_clusters() {
        let dim = 4;
        let centers = [
            [0.0f32, 0.0, 0.0, 0.0],
            [10.0, 10.0, 0.0, 0.0],
            [0.0, 10.0, 10.0, 10.0],
        ];
        let mut rng = Rng::new(1);
        let mut data = Vec::new();
        for i in 0..300 {
            for c in centers[i % 3] {
                data.push(c + rng.unit() as f32 - 0.5);
            }
        }
        let cent = train(&data, dim, 3, 10, 1000, 7);
        let a = assign(Metric::L2, &data, dim, &cent);
        for i in 3..300 {
            assert_eq!(a[i], a[i % 3], "row {i}");
        }
        assert_ne!(a[0], a[1]);
        assert_ne!(a[1], a[2]);
    }

    #[test]
    fn fewer_rows_than_k() {
        let data = vec![1.0f32, 2.0, 3.0, 4.0];
        let cent = train(&data, 2, 5, 3, 100, 1);
        assert_eq!(cent.len(), 10);
        assert_eq!(&cent[0..2], &[1.0, 2.0]);
        assert_eq!(&cent[8..10], &[1.0, 2.0]);
    }
}
