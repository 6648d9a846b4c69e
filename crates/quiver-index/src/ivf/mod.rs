//! IVF_FLAT, IVF_SQ8 and IVF_PQ over one segment's vectors.
//!
//! # Structure and invariants
//!
//! * `nlist` centroids (`nlist x dim`), trained by k-means (module
//!   `kmeans`: k-means++ on a sample of at most `256 nlist` rows, then
//!   Lloyd iterations). COSINE trains on normalised rows and normalises the
//!   centroids (spherical k-means); IP trains with L2 k-means like faiss.
//! * Every row is in exactly one list: the centroid that is best by the
//!   index metric (L2 distance, inner product, cosine). Lists are stored
//!   CSR-style: `offsets` (`nlist + 1`, non-decreasing, from 0 to `n`) and
//!   `ids` (`n` row ids, increasing within a list). Codes, when any, are in
//!   the same (list-major) order as `ids`, so a probe scans contiguous
//!   memory.
//! * IVF_FLAT keeps no vectors: it scores the segment's `f32` rows (the
//!   engine owns them) exactly.
//! * IVF_SQ8 keeps one SQ8 code per row (module `sq`; of the normalised row
//!   for COSINE) and, for L2, `|x^|^2`. IVF_PQ keeps residual PQ codes
//!   (`x - centroid`, normalised `x` for COSINE) with `m` sub-quantisers of
//!   `2^nbits` centroids; ADC tables per query (IP, COSINE) or per probed
//!   list (L2).
//! * Search probes the `nprobe` best lists (clamped to `[1, nlist]`), skips
//!   rows not in `allow` before any distance, and for SQ8/PQ keeps the
//!   `ceil(k * refine_k)` best by approximate distance, then re-scores those
//!   with the `f32` rows: returned scores are exact Milvus scores, best
//!   first, ties by smaller row.

mod format;
mod pq;

use quiver_simd::{Metric, TopK};
use rayon::prelude::*;

use crate::hnsw::allowed;
use crate::kernels::{dot_u8_fn, prefetch_range};
use crate::rng::Rng;
use crate::scratch::with_scratch;
use crate::sq::{normalized, Codes, Sq8};
use crate::{kmeans, IndexError, IvfParams, IvfStorage};

pub(crate) use pq::Pq;

/// What the lists hold besides row ids.
#[derive(Clone)]
pub(crate) enum Store {
    Flat,
    Sq8 {
        sq: Sq8,
        codes: Codes,
        /// `|x^|^2` per position (L2 only).
        norms: Vec<f32>,
    },
    Pq {
        pq: Pq,
        /// `n x code_bytes`, list-major.
        codes: Vec<u8>,
    },
}

/// An IVF index over rows `0..n` of a segment. See the module docs.
#[derive(Clone)]
pub struct IvfIndex {
    pub(crate) metric: Metric,
    pub(crate) dim: usize,
    pub(crate) n: usize,
    pub(crate) nlist: usize,
    pub(crate) seed: u64,
    pub(crate) centroids: Vec<f32>,
    pub(crate) offsets: Vec<u32>,
    pub(crate) ids: Vec<u32>,
    pub(crate) store: Store,
}

impl std::fmt::Debug for IvfIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IvfIndex")
            .field("type", &self.index_type())
            .field("metric", &self.metric)
            .field("dim", &self.dim)
            .field("n", &self.n)
            .field("nlist", &self.nlist)
            .finish()
    }
}

fn validate(dim: usize, data: &[f32], p: &IvfParams) -> Result<usize, IndexError> {
    if !(1..=65536).contains(&p.nlist) {
        return Err(IndexError::invalid(
            "nlist",
            p.nlist,
            "integer in [1, 65536]",
        ));
    }
    if dim == 0 {
        return Err(IndexError::Shape("dim must be at least 1".into()));
    }
    if let IvfStorage::Pq { m, nbits } = p.storage {
        if m == 0 || !dim.is_multiple_of(m) {
            return Err(IndexError::invalid(
                "m",
                m,
                format!("a divisor of dim {dim}"),
            ));
        }
        if !(1..=16).contains(&nbits) {
            return Err(IndexError::invalid("nbits", nbits, "integer in [1, 16]"));
        }
    }
    if !data.len().is_multiple_of(dim) {
        return Err(IndexError::Shape(format!(
            "{} values is not a multiple of dim {dim}",
            data.len()
        )));
    }
    let n = data.len() / dim;
    if n >= u32::MAX as usize {
        return Err(IndexError::Shape(format!(
            "{n} rows exceed the u32 id space"
        )));
    }
    Ok(n)
}

/// Rows `idx` of `data`, normalised when `norm`.
fn gather(data: &[f32], dim: usize, idx: impl Iterator<Item = usize>, norm: bool) -> Vec<f32> {
    let mut out = Vec::new();
    let mut buf = vec![0.0f32; dim];
    for i in idx {
        let row = &data[i * dim..(i + 1) * dim];
        if norm {
            normalized(row, &mut buf);
            out.extend_from_slice(&buf);
        } else {
            out.extend_from_slice(row);
        }
    }
    out
}

impl IvfIndex {
    /// Trains the coarse quantiser (and SQ8 / PQ) and fills the lists, on
    /// the current rayon pool. `progress(done, total)` reports rows assigned
    /// and encoded, on the calling thread; returning `false` cancels the build
    /// ([`IndexError::Cancelled`]).
    pub fn build(
        metric: Metric,
        dim: usize,
        data: &[f32],
        params: &IvfParams,
        progress: &dyn Fn(usize, usize) -> bool,
    ) -> Result<IvfIndex, IndexError> {
        let n = validate(dim, data, params)?;
        let nlist = params.nlist;
        let norm = metric == Metric::Cosine;
        let mut rng = Rng::new(params.seed);
        let sample = rng.sample(n, 256 * nlist);
        let train = gather(data, dim, sample.iter().copied(), norm);
        let mut centroids =
            kmeans::train(&train, dim, nlist, params.iters, usize::MAX, params.seed);
        if norm {
            for c in centroids.chunks_exact_mut(dim) {
                let v = c.to_vec();
                normalized(&v, c);
            }
        }
        // Assign every row, in chunks (progress between them).
        let mut list_of = Vec::with_capacity(n);
        let chunk = 32768;
        let total = 2 * n;
        for (ci, rows) in data.chunks(chunk * dim).enumerate() {
            list_of.extend(kmeans::assign(metric, rows, dim, &centroids));
            if !progress((ci * chunk + rows.len() / dim).min(n), total) {
                return Err(IndexError::Cancelled);
            }
        }
        let mut offsets = vec![0u32; nlist + 1];
        for &l in &list_of {
            offsets[l as usize + 1] += 1;
        }
        for i in 0..nlist {
            offsets[i + 1] += offsets[i];
        }
        let mut fill = offsets.clone();
        let mut ids = vec![0u32; n];
        for (row, &l) in list_of.iter().enumerate() {
            ids[fill[l as usize] as usize] = row as u32;
            fill[l as usize] += 1;
        }
        let store = match params.storage {
            IvfStorage::Flat => Store::Flat,
            IvfStorage::Sq8 => {
                let sq = Sq8::train(data, dim, 8, norm);
                let stride = sq.stride();
                let mut codes = Codes::zeroed(n, stride);
                codes
                    .as_mut_bytes()
                    .par_chunks_mut(stride * 1024)
                    .zip(ids.par_chunks(1024))
                    .for_each(|(out, rows)| {
                        let mut buf = vec![0.0f32; dim];
                        for (o, &r) in out.chunks_exact_mut(stride).zip(rows) {
                            let row = &data[r as usize * dim..(r as usize + 1) * dim];
                            if norm {
                                normalized(row, &mut buf);
                                sq.encode(&buf, o);
                            } else {
                                sq.encode(row, o);
                            }
                        }
                    });
                let norms = if metric == Metric::L2 {
                    (0..n)
                        .into_par_iter()
                        .map(|p| sq.decoded_norm_sq(codes.row(p)))
                        .collect()
                } else {
                    Vec::new()
                };
                Store::Sq8 { sq, codes, norms }
            }
            IvfStorage::Pq { m, nbits } => {
                let a = kmeans::assign(metric, &train, dim, &centroids);
                let mut resid = train;
                for (r, &c) in resid.chunks_exact_mut(dim).zip(&a) {
                    for (x, cv) in r
                        .iter_mut()
                        .zip(&centroids[c as usize * dim..(c as usize + 1) * dim])
                    {
                        *x -= cv;
                    }
                }
                let pq = Pq::train(&resid, dim, m, nbits, params.seed);
                let cb = pq.code_bytes();
                let mut codes = vec![0u8; n * cb];
                for (ci, (out, pos)) in codes
                    .chunks_mut(chunk * cb)
                    .zip(ids.chunks(chunk))
                    .enumerate()
                {
                    let mut r = gather(data, dim, pos.iter().map(|&p| p as usize), norm);
                    for (row, &p) in r.chunks_exact_mut(dim).zip(pos) {
                        let c = list_of[p as usize] as usize;
                        for (x, cv) in row.iter_mut().zip(&centroids[c * dim..(c + 1) * dim]) {
                            *x -= cv;
                        }
                    }
                    pq.encode(&r, out);
                    if !progress(n + (ci * chunk + pos.len()).min(n), total) {
                        return Err(IndexError::Cancelled);
                    }
                }
                Store::Pq { pq, codes }
            }
        };
        if !progress(total, total) {
            return Err(IndexError::Cancelled);
        }
        Ok(IvfIndex {
            metric,
            dim,
            n,
            nlist,
            seed: params.seed,
            centroids,
            offsets,
            ids,
            store,
        })
    }

    /// Milvus index type: `IVF_FLAT`, `IVF_SQ8` or `IVF_PQ`.
    pub fn index_type(&self) -> &'static str {
        match self.store {
            Store::Flat => "IVF_FLAT",
            Store::Sq8 { .. } => "IVF_SQ8",
            Store::Pq { .. } => "IVF_PQ",
        }
    }

    /// Number of rows indexed.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether no rows are indexed.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of lists.
    pub fn nlist(&self) -> usize {
        self.nlist
    }

    /// The metric it was built for.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Bytes of heap memory held (centroids, lists, codes), excluding the
    /// segment's `f32` rows.
    pub fn memory_bytes(&self) -> usize {
        let store = match &self.store {
            Store::Flat => 0,
            Store::Sq8 { sq, codes, norms } => codes.bytes() + 4 * (norms.capacity() + 2 * sq.dim),
            Store::Pq { pq, codes } => codes.capacity() + 4 * pq.books.capacity(),
        };
        4 * (self.centroids.capacity() + self.offsets.capacity() + self.ids.capacity())
            + store
            + std::mem::size_of::<Self>()
    }

    /// [`IvfIndex::search_refine`] with `refine_k = 1` (SQ8 / PQ re-score
    /// exactly the `k` best by approximate distance).
    pub fn search(
        &self,
        data: &[f32],
        query: &[f32],
        k: usize,
        nprobe: usize,
        allow: Option<&[u64]>,
    ) -> Vec<(f32, u32)> {
        self.search_refine(data, query, k, nprobe, 1.0, allow)
    }

    /// The `k` best rows among the `nprobe` best lists (see the module
    /// docs); `refine_k >= 1` widens the SQ8 / PQ candidate set re-scored
    /// with the `f32` rows to `ceil(k * refine_k)`.
    ///
    /// Panics if `data.len() != n * dim` or `query.len() != dim`.
    pub fn search_refine(
        &self,
        data: &[f32],
        query: &[f32],
        k: usize,
        nprobe: usize,
        refine_k: f32,
        allow: Option<&[u64]>,
    ) -> Vec<(f32, u32)> {
        assert_eq!(
            data.len(),
            self.n * self.dim,
            "IvfIndex::search: data is not n x dim"
        );
        assert_eq!(
            query.len(),
            self.dim,
            "IvfIndex::search: query length != dim"
        );
        if self.n == 0 || k == 0 {
            return Vec::new();
        }
        let k = k.min(self.n);
        let dim = self.dim;
        let ok = |id: u32| allow.is_none_or(|w| allowed(w, id));
        let hib = self.metric.higher_is_better();
        with_scratch(|s| {
            let mut qn = std::mem::take(&mut s.qn);
            qn.clear();
            qn.resize(dim, 0.0);
            if self.metric == Metric::Cosine {
                normalized(query, &mut qn);
            } else {
                qn.copy_from_slice(query);
            }
            // Probe.
            let nprobe = nprobe.clamp(1, self.nlist);
            let mut probe = TopK::with_capacity(nprobe, hib, nprobe);
            for (c, cent) in self.centroids.chunks_exact(dim).enumerate() {
                let sc = match self.metric {
                    Metric::L2 => quiver_simd::l2_sq(&qn, cent),
                    _ => quiver_simd::dot(&qn, cent),
                };
                probe.push(sc, c as u32);
            }
            let lists = probe.into_sorted_vec();
            let row = |i: u32| &data[i as usize * dim..(i as usize + 1) * dim];
            let list =
                |l: u32| self.offsets[l as usize] as usize..self.offsets[l as usize + 1] as usize;
            let mut top = TopK::with_capacity(k, hib, k);
            match &self.store {
                Store::Flat => {
                    for &(_, l) in &lists {
                        let r = list(l);
                        let ids = &self.ids[r];
                        for (j, &id) in ids.iter().enumerate() {
                            if let Some(&next) = ids.get(j + 2) {
                                prefetch_range(row(next).as_ptr() as *const u8, dim * 4);
                            }
                            if ok(id) {
                                top.push(self.metric.distance(query, row(id)), id);
                            }
                        }
                    }
                }
                Store::Sq8 { sq, codes, norms } => {
                    let r = ((k as f32 * refine_k).ceil() as usize).clamp(k, self.n);
                    let mut cand = TopK::with_capacity(r, false, r);
                    let mut qp = std::mem::take(&mut s.q);
                    let c = sq.prepare(&qn, &mut qp);
                    let dot = dot_u8_fn();
                    let l2 = self.metric == Metric::L2;
                    for &(_, l) in &lists {
                        for p in list(l) {
                            let id = self.ids[p];
                            if ok(id) {
                                let ip = c + dot(&qp, codes.row(p));
                                cand.push(if l2 { norms[p] - 2.0 * ip } else { -ip }, id);
                            }
                        }
                    }
                    s.q = qp;
                    for &(_, id) in cand.iter_unsorted() {
                        top.push(self.metric.distance(query, row(id)), id);
                    }
                }
                Store::Pq { pq, codes } => {
                    let r = ((k as f32 * refine_k).ceil() as usize).clamp(k, self.n);
                    let mut cand = TopK::with_capacity(r, false, r);
                    let cb = pq.code_bytes();
                    let mut table = std::mem::take(&mut s.q);
                    let mut resid = std::mem::take(&mut s.lbuf_f32);
                    if self.metric != Metric::L2 {
                        pq.ip_table(&qn, &mut table);
                    }
                    for &(_, l) in &lists {
                        let cent = &self.centroids[l as usize * dim..(l as usize + 1) * dim];
                        let base = if self.metric == Metric::L2 {
                            resid.clear();
                            resid.extend(qn.iter().zip(cent).map(|(a, b)| a - b));
                            pq.l2_table(&resid, &mut table);
                            0.0
                        } else {
                            quiver_simd::dot(&qn, cent)
                        };
                        for p in list(l) {
                            let id = self.ids[p];
                            if ok(id) {
                                let a = pq.adc(&table, &codes[p * cb..(p + 1) * cb]);
                                cand.push(
                                    if self.metric == Metric::L2 {
                                        a
                                    } else {
                                        -(base + a)
                                    },
                                    id,
                                );
                            }
                        }
                    }
                    s.q = table;
                    s.lbuf_f32 = resid;
                    for &(_, id) in cand.iter_unsorted() {
                        top.push(self.metric.distance(query, row(id)), id);
                    }
                }
            }
            s.qn = qn;
            top.into_sorted_vec()
        })
    }
}
