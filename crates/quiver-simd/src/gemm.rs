//! Blocked "matrix product + top-k" engine behind [`crate::search_batch`].
//!
//! Scores of a query block against a base block are computed by a
//! register-tiled micro-kernel ([`Micro`]): `RB` base rows are read in place
//! (row-major, one scalar broadcast per row and k, so the base is never
//! packed or copied), `QL` queries are packed once up front as
//! `qp[k * QL + lane]` and loaded as full vectors. The kernel finishes with
//! `score = acc * scale[row] + bias[row]` and compares each lane against that
//! query's current top-k bar, so only scores that would enter a top-k ever
//! leave the registers: the product matrix is never written to memory.
//!
//! Loop nest of one task (a chunk of query panels against a range of base
//! rows): base sub-block of about 384 KiB (stays in L2) → query panel of `QL`
//! queries → `RB`-row micro-panel → kernel. Tasks run on rayon; with few query
//! panels the base range is split as well, and the per-range candidates are
//! merged during the exact re-rank.

use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::dispatch::Kernels;
use crate::search::Filter;
use crate::topk::TopK;
use crate::Metric;

/// Queries that failed the rounding check and were rescanned (diagnostics).
static RESCANS: AtomicU64 = AtomicU64::new(0);

/// Number of queries [`crate::search_batch`] has rescanned exactly because
/// the fused pass could not certify its candidates (process-wide counter).
pub fn exact_rescans() -> u64 {
    RESCANS.load(Ordering::Relaxed)
}

/// Largest `RB`/`QL` of any level (sizes the on-stack score buffer).
const MAX_RB: usize = 12;
const MAX_QL: usize = 32;
/// Target size of the L2-resident base sub-block.
const SUB_BLOCK_BYTES: usize = 384 * 1024;

/// One micro-kernel call: `RB` base rows times `QL` packed queries.
pub(crate) struct Micro<'a> {
    /// Vector length.
    pub dim: usize,
    /// `RB` base rows, row-major (`len >= RB * dim`).
    pub rows: &'a [f32],
    /// `QL` packed queries, `qp[k * QL + lane]` (`len >= QL * dim`).
    pub qp: &'a [f32],
    /// Per-lane bar: a score enters the mask only if `score > thr[lane]`.
    pub thr: &'a [f32],
    /// Per-row factor and offset applied to the dot product.
    pub scale: &'a [f32],
    pub bias: &'a [f32],
    /// Bit `j` set: row `j` may be reported.
    pub allow: u64,
    /// Scores, `out[j * QL + lane]`; written only for rows with a non-zero mask.
    pub out: &'a mut [f32],
    /// Per row `j`: bit `lane` set if that query accepts the row.
    pub masks: &'a mut [u64],
}

impl Micro<'_> {
    /// Asserts every length a kernel with this geometry relies on.
    #[inline]
    pub(crate) fn check(&self, rb: usize, ql: usize) {
        assert!(
            self.rows.len() >= rb * self.dim
                && self.qp.len() >= ql * self.dim
                && self.thr.len() >= ql
                && self.scale.len() >= rb
                && self.bias.len() >= rb
                && self.out.len() >= rb * ql
                && self.masks.len() >= rb,
            "micro-kernel argument too short"
        );
    }
}

/// A level's micro-kernel and its tile shape.
#[derive(Clone, Copy)]
pub(crate) struct Gemm {
    pub rb: usize,
    pub ql: usize,
    pub kernel: fn(&mut Micro<'_>),
}

/// Bits `[start, start + count)` of a little-endian bitmap, as the low bits
/// of the result (`count <= 64`); missing words read as zero.
#[inline]
pub(crate) fn bits_at(words: &[u64], start: usize, count: usize) -> u64 {
    let (w, s) = (start / 64, start % 64);
    let lo = words.get(w).copied().unwrap_or(0) >> s;
    let hi = if s == 0 {
        0
    } else {
        words.get(w + 1).copied().unwrap_or(0) << (64 - s)
    };
    (lo | hi) & low_bits(count)
}

#[inline]
fn low_bits(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// Everything one task reads.
struct Plan<'a> {
    g: Gemm,
    dim: usize,
    nb: usize,
    base: &'a [f32],
    /// Packed queries, `n_panels * ql * dim`.
    qp: &'a [f32],
    /// Per-row scale/bias, padded with zeros to a multiple of `rb`.
    scale: &'a [f32],
    bias: &'a [f32],
    allow: Option<&'a [u64]>,
    /// Rows per L2 sub-block (a multiple of `rb`).
    sub_rows: usize,
    /// Candidates kept per query.
    kc: usize,
}

impl Plan<'_> {
    fn allow_bits(&self, row: usize, count: usize) -> u64 {
        match self.allow {
            Some(words) => bits_at(words, row, count),
            None => low_bits(count),
        }
    }

    /// Runs query panels `panels` against base rows `rows`; returns one
    /// candidate collector (internal scores, higher is better) per query.
    fn run(
        &self,
        nq: usize,
        panels: std::ops::Range<usize>,
        rows: std::ops::Range<usize>,
    ) -> Vec<TopK<u32>> {
        let Gemm { rb, ql, kernel } = self.g;
        let dim = self.dim;
        let q0 = panels.start * ql;
        let q1 = (panels.end * ql).min(nq);
        let mut heaps: Vec<TopK<u32>> = (q0..q1)
            .map(|_| TopK::with_capacity(self.kc, true, self.kc))
            .collect();
        let mut thr = vec![f32::NEG_INFINITY; panels.len() * ql];
        for t in &mut thr[q1 - q0..] {
            *t = f32::INFINITY; // padding lanes never report
        }
        let mut out = [0.0f32; MAX_RB * MAX_QL];
        let mut masks = [0u64; MAX_RB];
        // The last micro-panel of the base may be short: copy it, zero-padded.
        let mut tail = Vec::new();
        let mut sub = rows.start;
        while sub < rows.end {
            let sub_end = (sub + self.sub_rows).min(rows.end);
            for (pi, p) in panels.clone().enumerate() {
                let qp = &self.qp[p * ql * dim..(p + 1) * ql * dim];
                let lanes = pi * ql..(pi + 1) * ql;
                let mut r = sub;
                while r < sub_end {
                    let valid = (self.nb - r).min(rb);
                    let allow = self.allow_bits(r, valid);
                    if allow != 0 {
                        let block: &[f32] = if valid == rb {
                            &self.base[r * dim..(r + rb) * dim]
                        } else {
                            if tail.is_empty() {
                                tail = vec![0.0f32; rb * dim];
                                tail[..valid * dim].copy_from_slice(&self.base[r * dim..]);
                            }
                            &tail
                        };
                        let mut m = Micro {
                            dim,
                            rows: block,
                            qp,
                            thr: &thr[lanes.clone()],
                            scale: &self.scale[r..r + rb],
                            bias: &self.bias[r..r + rb],
                            allow,
                            out: &mut out[..rb * ql],
                            masks: &mut masks[..rb],
                        };
                        kernel(&mut m);
                        for (j, &mask) in masks[..rb].iter().enumerate() {
                            let mut mask = mask;
                            while mask != 0 {
                                let l = mask.trailing_zeros() as usize;
                                mask &= mask - 1;
                                let h = &mut heaps[pi * ql + l];
                                if h.push(out[j * ql + l], (r + j) as u32) {
                                    if let Some((w, _)) = h.worst() {
                                        thr[pi * ql + l] = w;
                                    }
                                }
                            }
                        }
                    }
                    r += rb;
                }
            }
            sub = sub_end;
        }
        heaps
    }
}

/// Blocked exact search; see [`crate::search_batch`] for the contract.
/// `allow`, if given, has at least `nb.div_ceil(64)` words.
#[allow(clippy::too_many_arguments)]
pub(crate) fn search(
    kernels: &Kernels,
    metric: Metric,
    queries: &[f32],
    nq: usize,
    base: &[f32],
    nb: usize,
    dim: usize,
    base_norms: Option<&[f32]>,
    k: usize,
    allow: Option<&[u64]>,
) -> Vec<Vec<(f32, u32)>> {
    if nq == 0 || nb == 0 || dim == 0 || k == 0 {
        return vec![Vec::new(); nq];
    }
    let g = kernels.gemm;
    let (rb, ql) = (g.rb, g.ql);
    assert!(rb <= MAX_RB && ql <= MAX_QL && rb <= 64);
    // Keep extra candidates so the exact re-rank can repair the rounding of
    // the expanded L2 form and of the normalised cosine.
    let kc = (k + k.max(8)).min(nb);

    let n_panels = nq.div_ceil(ql);
    let mut qp = vec![0.0f32; n_panels * ql * dim];
    qp.par_chunks_mut(ql * dim)
        .enumerate()
        .for_each(|(p, dst)| {
            for l in 0..ql {
                let qi = p * ql + l;
                if qi >= nq {
                    break;
                }
                let q = &queries[qi * dim..(qi + 1) * dim];
                let f = if metric == Metric::Cosine {
                    let n = kernels.norm_sq(q);
                    if n > 0.0 {
                        1.0 / n.sqrt()
                    } else {
                        0.0
                    }
                } else {
                    1.0
                };
                for (kk, &x) in q.iter().enumerate() {
                    dst[kk * ql + l] = x * f;
                }
            }
        });

    let nb_pad = nb.div_ceil(rb) * rb;
    let mut scale = vec![0.0f32; nb_pad];
    let mut bias = vec![0.0f32; nb_pad];
    // Squared row norms: the L2/COSINE scale and bias, and for every metric
    // the largest norm, which bounds the rounding error (see `certified`).
    let owned;
    let norms = match base_norms {
        Some(n) => {
            assert_eq!(n.len(), nb, "base_norms must have one entry per base row");
            n
        }
        None => {
            owned = crate::search::row_norms_sq_with(kernels, base, dim);
            &owned
        }
    };
    let bmax = norms.iter().fold(0.0f32, |m, &n| m.max(n)).sqrt();
    for ((s, b), &n) in scale.iter_mut().zip(bias.iter_mut()).zip(norms) {
        match metric {
            Metric::Ip => *s = 1.0,
            // |q|^2 + |b|^2 - 2 q.b ranks like -(q.b - |b|^2 / 2).
            Metric::L2 => {
                *s = 1.0;
                *b = -0.5 * n;
            }
            Metric::Cosine => *s = if n > 0.0 { 1.0 / n.sqrt() } else { 0.0 },
        }
    }

    let sub_rows = ((SUB_BLOCK_BYTES / (dim * 4).max(1)) / rb).max(1) * rb;
    let plan = Plan {
        g,
        dim,
        nb,
        base,
        qp: &qp,
        scale: &scale,
        bias: &bias,
        allow,
        sub_rows,
        kc,
    };

    // Work split: chunks of query panels; if there are too few of them to
    // feed the pool, also split the base rows.
    let threads = rayon::current_num_threads().max(1);
    let per_chunk = n_panels.div_ceil(4 * threads).clamp(1, 8);
    let n_chunks = n_panels.div_ceil(per_chunk);
    let n_sub = nb.div_ceil(sub_rows);
    let splits = (2 * threads).div_ceil(n_chunks).clamp(1, n_sub.max(1));
    let split_rows = n_sub.div_ceil(splits) * sub_rows;

    let parts: Vec<Vec<TopK<u32>>> = (0..n_chunks * splits)
        .into_par_iter()
        .map(|t| {
            let (c, s) = (t / splits, t % splits);
            let panels = c * per_chunk..((c + 1) * per_chunk).min(n_panels);
            let rows = (s * split_rows).min(nb)..((s + 1) * split_rows).min(nb);
            plan.run(nq, panels, rows)
        })
        .collect();

    // Exact re-rank of the candidates with the plain kernel, then a check
    // that no row outside them can beat the k-th result despite rounding;
    // a query that fails it (near-ties at the cut) is rescanned exactly.
    let n_allowed = allow.map_or(nb, |w| w.iter().map(|x| x.count_ones() as usize).sum());
    let err = ErrorBound::new(metric, dim, bmax);
    (0..nq)
        .into_par_iter()
        .map(|qi| {
            let c = qi / (per_chunk * ql);
            let local = qi - c * per_chunk * ql;
            let q = &queries[qi * dim..(qi + 1) * dim];
            let mut cand = TopK::with_capacity(kc, true, kc);
            for s in 0..splits {
                cand.extend(parts[c * splits + s][local].iter_unsorted().copied());
            }
            let mut top = TopK::with_capacity(k, metric.higher_is_better(), k.min(kc));
            for &(_, row) in cand.iter_unsorted() {
                let b = &base[row as usize * dim..(row as usize + 1) * dim];
                top.push(metric.distance_with(kernels, q, b), row);
            }
            let ok = cand.len() == n_allowed
                || match (cand.worst(), top.worst()) {
                    (Some((a, _)), Some((s, _))) => err.certified(kernels.norm_sq(q), a, s),
                    _ => false,
                };
            if ok {
                top.into_sorted_vec()
            } else {
                RESCANS.fetch_add(1, Ordering::Relaxed);
                let f = allow.map_or(Filter::All, Filter::Bitmap);
                crate::search::search_one_with(kernels, metric, q, base, dim, f, k)
            }
        })
        .collect()
}

/// Rounding-error bound that decides whether the candidate set provably
/// holds the exact top-k.
///
/// Both the fused product and the plain kernels sum `dim` products in `f32`,
/// so each is within `gamma_dim * sum|q_i b_i| <= gamma_dim * |q| |b|` of the
/// true dot product (`gamma_n ~ n * 2^-24`, any summation order). `g` is a
/// generous multiple of that, covering the extra roundings of norms, scales
/// and biases. A row outside the candidates has an approximate internal
/// score of at most `a` (the worst candidate's); the exact k-th score is `s`.
struct ErrorBound {
    metric: Metric,
    g: f32,
    bmax: f32,
}

impl ErrorBound {
    fn new(metric: Metric, dim: usize, bmax: f32) -> Self {
        let g = 8.0 * (dim as f32 + 16.0) * f32::EPSILON / 2.0;
        ErrorBound { metric, g, bmax }
    }

    /// Whether every non-candidate row ranks strictly after the k-th result.
    fn certified(&self, qn: f32, a: f32, s: f32) -> bool {
        let (g, b) = (self.g, self.bmax);
        let ok = match self.metric {
            // Exact dot of an outsider <= a + error of both computations.
            Metric::Ip => s > a + g * qn.sqrt() * b,
            // Scores are cosines (|.| <= 1 up to rounding).
            Metric::Cosine => s > a + 2.0 * g,
            // Outsider: true q.b - |b|^2/2 <= a + e, so its squared distance
            // |q|^2 - 2 (q.b - |b|^2/2) >= |q|^2 (1 - g) - 2 a - 2 e, and the
            // kernel returns at least (1 - g) times that.
            Metric::L2 => {
                let e = g * (qn.sqrt() * b + b * b);
                (qn * (1.0 - g) - 2.0 * a - 2.0 * e) * (1.0 - g) > s
            }
        };
        // Non-finite values (overflow, NaN inputs): no claim.
        ok && a.is_finite() && s.is_finite()
    }
}
