//! Exact (brute-force) top-k search over a row-major `f32` matrix.

use rayon::prelude::*;

use crate::dispatch::Kernels;
use crate::topk::TopK;
use crate::Metric;

/// Which base rows may be returned.
#[derive(Clone, Copy, Default)]
pub enum Filter<'a> {
    /// Every row.
    #[default]
    All,
    /// Row `i` is a candidate iff `f(i)`. [`search_batch`] calls it once per
    /// row (on the calling thread) and works from the resulting bitmap.
    Fn(&'a dyn Fn(usize) -> bool),
    /// Row `i` is a candidate iff bit `i % 64` of word `i / 64` is set. The
    /// slice must have at least `nb.div_ceil(64)` words.
    Bitmap(&'a [u64]),
}

impl std::fmt::Debug for Filter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Filter::All => f.write_str("All"),
            Filter::Fn(_) => f.write_str("Fn(..)"),
            Filter::Bitmap(w) => write!(f, "Bitmap({} words)", w.len()),
        }
    }
}

impl<'a> From<Option<&'a dyn Fn(usize) -> bool>> for Filter<'a> {
    fn from(f: Option<&'a dyn Fn(usize) -> bool>) -> Self {
        f.map_or(Filter::All, Filter::Fn)
    }
}

impl Filter<'_> {
    /// Whether row `i` is a candidate.
    #[inline]
    pub fn allows(&self, i: usize) -> bool {
        match self {
            Filter::All => true,
            Filter::Fn(f) => f(i),
            Filter::Bitmap(w) => w.get(i / 64).is_some_and(|x| x >> (i % 64) & 1 == 1),
        }
    }

    /// The filter over rows `0..n` as a bitmap (`None` for [`Filter::All`]).
    pub fn to_bitmap(&self, n: usize) -> Option<Vec<u64>> {
        match self {
            Filter::All => None,
            Filter::Bitmap(w) => {
                let mut v = w[..n.div_ceil(64)].to_vec();
                let rem = n & 63;
                if rem > 0 {
                    if let Some(last) = v.last_mut() {
                        *last &= (1u64 << rem) - 1;
                    }
                }
                Some(v)
            }
            Filter::Fn(f) => {
                let mut v = vec![0u64; n.div_ceil(64)];
                for i in 0..n {
                    if f(i) {
                        v[i / 64] |= 1 << (i % 64);
                    }
                }
                Some(v)
            }
        }
    }
}

/// Squared L2 norm of every row of a row-major `n x dim` matrix (the
/// `base_norms` argument of [`search_batch`]). Parallel for large inputs.
pub fn row_norms_sq(data: &[f32], dim: usize) -> Vec<f32> {
    row_norms_sq_with(Kernels::active(), data, dim)
}

pub(crate) fn row_norms_sq_with(kernels: &Kernels, data: &[f32], dim: usize) -> Vec<f32> {
    if dim == 0 {
        return Vec::new();
    }
    assert_eq!(data.len() % dim, 0, "data length is not a multiple of dim");
    let mut out = vec![0.0f32; data.len() / dim];
    out.par_chunks_mut(4096)
        .zip(data.par_chunks(4096 * dim))
        .for_each(|(o, d)| {
            for (x, row) in o.iter_mut().zip(d.chunks_exact(dim)) {
                *x = kernels.norm_sq(row);
            }
        });
    out
}

fn check_shape(what: &str, data: &[f32], n: usize, dim: usize) {
    assert_eq!(
        Some(data.len()),
        n.checked_mul(dim),
        "{what}: length must be n * dim"
    );
}

/// Exact top-k of one query against `base` (`nb x dim`, row-major,
/// `nb = base.len() / dim`), scanning every allowed row with the dispatched
/// kernel of `metric` ([`Metric::distance`]). Single-threaded: the caller
/// parallelises across queries or segments. Returns `(score, row)` best
/// first, ties by smaller row; at most `k` entries (fewer if fewer rows pass
/// the filter). NaN scores are never returned.
///
/// Panics if `query.len() != dim`, `base.len()` is not a multiple of `dim`,
/// or there are more than `u32::MAX + 1` rows.
pub fn search_one(
    metric: Metric,
    query: &[f32],
    base: &[f32],
    dim: usize,
    filter: Filter<'_>,
    k: usize,
) -> Vec<(f32, u32)> {
    search_one_with(Kernels::active(), metric, query, base, dim, filter, k)
}

pub(crate) fn search_one_with(
    kernels: &Kernels,
    metric: Metric,
    query: &[f32],
    base: &[f32],
    dim: usize,
    filter: Filter<'_>,
    k: usize,
) -> Vec<(f32, u32)> {
    assert_eq!(query.len(), dim, "query length must equal dim");
    let nb = base.len().checked_div(dim).unwrap_or(0);
    check_shape("base", base, nb, dim);
    assert!(nb as u64 <= 1 << 32, "too many rows for u32 ids");
    if dim == 0 {
        return Vec::new();
    }
    let mut top = TopK::with_capacity(k, metric.higher_is_better(), nb);
    let dist = metric.kernel(kernels);
    for (i, row) in base.chunks_exact(dim).enumerate() {
        if filter.allows(i) {
            top.push(dist(query, row), i as u32);
        }
    }
    top.into_sorted_vec()
}

/// With at most `QL / PER_QUERY_DIV` queries (`QL`: the micro-kernel's query
/// width) the fused path would mostly multiply padding: scan per query.
const PER_QUERY_DIV: usize = 8;

/// Exact top-k of `nq` queries (`queries`: `nq x dim`, row-major) against
/// `nb` base rows (`base`: `nb x dim`). Same results as calling
/// [`search_one`] per query (same scores bit for bit, same order), computed
/// as a blocked matrix product fused with per-query top-k selection; see the
/// crate docs for the numeric scheme.
///
/// `base_norms`: squared L2 norm of each base row ([`row_norms_sq`]); used by
/// L2 and COSINE, computed here when `None`. Parallel (rayon) across query
/// blocks, and across base ranges when there are few queries.
///
/// Panics on inconsistent shapes, a too-short bitmap or `base_norms`, or
/// more than `u32::MAX + 1` base rows.
#[allow(clippy::too_many_arguments)]
pub fn search_batch(
    metric: Metric,
    queries: &[f32],
    nq: usize,
    base: &[f32],
    nb: usize,
    dim: usize,
    base_norms: Option<&[f32]>,
    k: usize,
    filter: Filter<'_>,
) -> Vec<Vec<(f32, u32)>> {
    search_batch_with(
        Kernels::active(),
        metric,
        queries,
        nq,
        base,
        nb,
        dim,
        base_norms,
        k,
        filter,
    )
}

/// [`search_batch`] on the kernels of a given level (tests and benchmarks).
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn search_batch_with(
    kernels: &Kernels,
    metric: Metric,
    queries: &[f32],
    nq: usize,
    base: &[f32],
    nb: usize,
    dim: usize,
    base_norms: Option<&[f32]>,
    k: usize,
    filter: Filter<'_>,
) -> Vec<Vec<(f32, u32)>> {
    check_shape("queries", queries, nq, dim);
    check_shape("base", base, nb, dim);
    assert!(nb as u64 <= 1 << 32, "too many rows for u32 ids");
    if let Filter::Bitmap(w) = filter {
        assert!(
            w.len() >= nb.div_ceil(64),
            "filter bitmap shorter than nb bits"
        );
    }
    if k == 0 || nb == 0 || dim == 0 {
        return vec![Vec::new(); nq];
    }
    let bitmap = filter.to_bitmap(nb);
    if nq * PER_QUERY_DIV <= kernels.gemm.ql {
        let bm = bitmap.as_deref();
        return queries
            .par_chunks(dim)
            .map(|q| {
                let f = bm.map_or(Filter::All, Filter::Bitmap);
                search_one_with(kernels, metric, q, base, dim, f, k)
            })
            .collect();
    }
    crate::gemm::search(
        kernels,
        metric,
        queries,
        nq,
        base,
        nb,
        dim,
        base_norms,
        k,
        bitmap.as_deref(),
    )
}
