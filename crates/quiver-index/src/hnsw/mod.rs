//! HNSW over one sealed segment's vectors (which the engine owns and passes
//! to every call), filter-aware, with traversal on SQ4/SQ8 codes and exact
//! `f32` re-ranking.
//!
//! # Layout and invariants
//!
//! * Node `i` is row `i` of the segment (`0 <= i < n < u32::MAX`;
//!   `u32::MAX` marks an empty slot).
//! * `levels[i]` is the node's top level (geometric draw with `mL = 1 /
//!   ln M`, seeded). `entry` is a node with `levels[entry] == max_level`.
//! * Level 0: `links0` holds `n * M0` `u32`s, `M0 = 2 M`: node `i`'s
//!   neighbours are in slots `[i * M0, (i + 1) * M0)`, ids first, then
//!   `u32::MAX` in the unused slots. One flat, aligned array with no counts
//!   or pointers: with `M = 16` a node's list is exactly two cache lines.
//! * Upper levels are sparse: `upper_off[i]` is `u32::MAX` for a level-0
//!   node, else the offset in `upper` of its level-1 list; levels `1..=L`
//!   follow, `M` slots each (same convention).
//! * Every neighbour id is `< n` and a neighbour at level `l` has
//!   `levels[nb] >= l` (checked when loading a file, since search indexes
//!   by them).
//! * Scores: the walk minimises an internal distance (L2: squared distance,
//!   IP: `-dot`, COSINE: `-cos`, or their code approximations); results are
//!   re-scored with [`Metric::distance`] on the `f32` rows, so they carry
//!   Milvus's score, best first, ties by smaller row id, exactly as brute
//!   force would score them.
//!
//! # Traversal representations ([`Traversal`])
//!
//! * `Sq4` (default) / `Sq8`: the index keeps 4- or 8-bit scalar codes of
//!   the rows (of the normalised rows for COSINE; module `sq`) and walks
//!   the graph on them, then re-scores the best `max(3 k, k + 16)` of the
//!   beam (by code distance) with the `f32` rows. A code is 1/8 (1/4) of a
//!   row's bytes, and graph search is bound by memory traffic (DESIGN.md):
//!   this is what makes it several times faster than plain HNSW at equal
//!   recall. Cost: `dim / 2` (`dim`) bytes per row.
//! * `F32`: walks on the segment's rows directly; no extra memory.
//!
//! Hot arrays (level-0 lists, codes) live in huge-page-backed buffers
//! (module `mem`), which removes most TLB misses of the random accesses.
//!
//! # Build
//!
//! Parallel insertion on the rayon pool (hnswlib's algorithm, with the
//! insertion beam on temporary SQ8 codes and exact `f32` distances for
//! everything that chooses edges, see `build.rs`): neighbour
//! lists are `AtomicU32` slots written under a per-node lock and read
//! lock-free (a reader may see a list mid-update, but only valid ids).
//! Levels are drawn up front, so the upper storage is allocated before the
//! parallel phase. Neighbour selection is the HNSW heuristic (keep a
//! candidate only if it is closer to the new node than to every neighbour
//! already kept). With one rayon thread a build is deterministic for a
//! seed; with more, the graph depends on scheduling (its quality does not).
//!
//! # Search
//!
//! Greedy descent on the upper levels, then a beam of width `ef` on level
//! 0. With an `allow` bitmap the beam walks through every node but only
//! allowed nodes enter the result set, and the walk continues until `ef`
//! allowed nodes are found and no frontier node can improve them (or the
//! frontier is exhausted). If no more than `ef` rows are allowed at all,
//! they are scored directly (exact, and cheaper than a walk of the whole
//! graph). Scratch (visited stamps, heaps) is per thread and reused: a
//! thread keeps 2 bytes per row of the largest index it has searched.
//!
//! # Code layout, and binary vectors
//!
//! The graph itself (lists, levels, entry point, the walk) is a [`Layers`]
//! (`layers.rs`), built by `build.rs`'s `build_layers`, which is generic
//! over a `BuildSpace` (exact row-to-row distance + the insertion beam's
//! distance). [`HnswIndex`] pairs a graph with `f32` rows and SQ codes;
//! [`BinaryHnswIndex`] (`binary.rs`, persisted by `format_binary.rs`)
//! pairs one with packed binary rows and HAMMING / JACCARD, walking the
//! exact scores. Both use the same `greedy` / `search_layer` below.
//!
//! A limitation of HNSW in general, not of this code: a group of more than
//! `2 M` identical rows fills its members' lists with one another (every
//! duplicate is at distance 0, and the heuristic keeps ties), so other rows
//! may be unreachable from inside the group and vice versa. Binary data
//! with many exact duplicates is the likely case.

mod binary;
mod build;
mod format;
mod format_binary;
mod layers;

use quiver_simd::{Metric, TopK};

use crate::kernels::{dot_fn, prefetch_range, DotU8};
use crate::scratch::{key, key_dist, key_id, with_scratch, Scratch};
use crate::sq::{Codes, Sq8};
use crate::{HnswParams, IndexError, Traversal};

pub(crate) use binary::check_dim_bits;
pub use binary::BinaryHnswIndex;
pub(crate) use layers::Layers;

pub(crate) const NONE: u32 = u32::MAX;

/// How many of the beam's best (by the quantised distance) are re-scored
/// with `f32` rows. On wn-gloss with SQ4, `2 k` lost 0.0005 recall@10 at
/// ef 64-128 against re-scoring all `ef`, `3 k` lost nothing; `k + 16`
/// keeps a margin for small `k`.
///
/// A wider beam (`ef`) also re-scores more (`ef / RERANK_EF_DIV`): on
/// low-dimensional data the 4-bit codes misorder close neighbours more
/// often, and without this a larger `ef` could not lift recall past that
/// ceiling (32-d clustered test set: 0.98 at any `ef` with `3 k`).
fn rerank_depth(k: usize) -> usize {
    k.saturating_mul(3).max(k.saturating_add(16))
}

/// See [`rerank_depth`].
const RERANK_EF_DIV: usize = 4;

/// Neighbours whose vectors are prefetched ahead of the one being scored.
const PREFETCH_AHEAD: usize = 4;

/// SQ4 / SQ8 codes for traversal.
#[derive(Clone)]
pub(crate) struct SqStore {
    pub(crate) sq: Sq8,
    pub(crate) codes: Codes,
    /// `|x^|^2` per row (L2 only, else empty).
    pub(crate) norms: Vec<f32>,
}

/// An HNSW graph over rows `0..n` of a segment. See the module docs.
#[derive(Clone)]
pub struct HnswIndex {
    pub(crate) metric: Metric,
    pub(crate) dim: usize,
    pub(crate) n: usize,
    pub(crate) ef_construction: usize,
    pub(crate) seed: u64,
    pub(crate) graph: Layers,
    /// `1 / |row|` (COSINE with `F32` traversal only, else empty).
    pub(crate) inv_norms: Vec<f32>,
    pub(crate) sq: Option<SqStore>,
}

impl std::fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswIndex")
            .field("metric", &self.metric)
            .field("dim", &self.dim)
            .field("n", &self.n)
            .field("m", &self.graph.m)
            .field("ef_construction", &self.ef_construction)
            .field("max_level", &self.graph.max_level)
            .field("traversal", &self.traversal())
            .finish()
    }
}

/// Read access to neighbour lists (frozen index, or the graph being built).
/// A list may end with `NONE` padding: readers stop at the first `NONE`.
pub(crate) trait Graph {
    fn neighbors<'a>(&'a self, node: u32, level: usize, buf: &'a mut Vec<u32>) -> &'a [u32];
    /// Hints that `node`'s list at `level` is needed soon.
    fn prefetch_links(&self, _node: u32, _level: usize) {}
}

/// Distance from the current query to a node (lower is better).
pub(crate) trait QueryDist {
    fn dist(&self, id: u32) -> f32;
    fn prefetch(&self, id: u32);
}

/// Greedy descent on one upper level.
#[inline]
pub(crate) fn greedy<G: Graph, D: QueryDist>(
    g: &G,
    d: &D,
    buf: &mut Vec<u32>,
    mut cur: u32,
    mut cur_d: f32,
    level: usize,
) -> (u32, f32) {
    loop {
        let mut changed = false;
        let list = g.neighbors(cur, level, buf);
        let list = &list[..list.iter().position(|&x| x == NONE).unwrap_or(list.len())];
        for &nb in list {
            d.prefetch(nb);
        }
        for &nb in list {
            let dd = d.dist(nb);
            if dd < cur_d {
                cur_d = dd;
                cur = nb;
                changed = true;
            }
        }
        if !changed {
            return (cur, cur_d);
        }
    }
}

/// Beam search on `level` from `entry`; leaves the (at most `ef`) best
/// allowed nodes in `s.res` (as keys, worst on top). The caller resets
/// `s.visited`.
#[inline]
#[allow(clippy::too_many_arguments)]
pub(crate) fn search_layer<G: Graph, D: QueryDist, A: Fn(u32) -> bool>(
    g: &G,
    d: &D,
    s: &mut Scratch,
    entry: u32,
    entry_d: f32,
    ef: usize,
    level: usize,
    allowed: A,
) {
    let Scratch {
        visited,
        cand,
        res,
        nbuf,
        lbuf,
        dbuf,
        ..
    } = s;
    cand.clear();
    res.clear();
    visited.insert(entry);
    let ek = key(entry_d, entry);
    cand.push(std::cmp::Reverse(ek));
    if allowed(entry) {
        res.push(ek);
    }
    while let Some(std::cmp::Reverse(ck)) = cand.pop() {
        if res.len() >= ef && res.peek().is_some_and(|&w| ck > w) {
            break;
        }
        if let Some(&std::cmp::Reverse(next)) = cand.peek() {
            g.prefetch_links(key_id(next), level);
        }
        let list = g.neighbors(key_id(ck), level, lbuf);
        nbuf.clear();
        for &nb in list {
            if nb == NONE {
                break;
            }
            if visited.insert(nb) {
                nbuf.push(nb);
            }
        }
        // Distances first, in a loop with no data-dependent branches, so
        // the loads of several rows overlap; then the heap updates.
        let pa = PREFETCH_AHEAD;
        for &nb in nbuf.iter().take(pa) {
            d.prefetch(nb);
        }
        dbuf.clear();
        for i in 0..nbuf.len() {
            if let Some(&ahead) = nbuf.get(i + pa) {
                d.prefetch(ahead);
            }
            dbuf.push(d.dist(nbuf[i]));
        }
        for i in 0..nbuf.len() {
            let nb = nbuf[i];
            let k = key(dbuf[i], nb);
            if res.len() < ef || res.peek().is_some_and(|&w| k < w) {
                cand.push(std::cmp::Reverse(k));
                if allowed(nb) {
                    res.push(k);
                    if res.len() > ef {
                        res.pop();
                    }
                }
            }
        }
    }
}

struct Sq8Dist<'a> {
    codes: &'a Codes,
    q: &'a [f32],
    c: f32,
    norms: &'a [f32],
    l2: bool,
    dot: DotU8,
    /// Bytes per code.
    stride: usize,
}

impl QueryDist for Sq8Dist<'_> {
    #[inline(always)]
    fn dist(&self, id: u32) -> f32 {
        let ip = self.c + (self.dot)(self.q, self.codes.row(id as usize));
        if self.l2 {
            self.norms[id as usize] - 2.0 * ip
        } else {
            -ip
        }
    }

    #[inline(always)]
    fn prefetch(&self, id: u32) {
        prefetch_range(self.codes.row_ptr(id as usize), self.stride);
    }
}

pub(crate) struct F32Dist<'a> {
    pub(crate) data: &'a [f32],
    pub(crate) dim: usize,
    pub(crate) q: &'a [f32],
    pub(crate) kernel: fn(&[f32], &[f32]) -> f32,
    pub(crate) metric: Metric,
    pub(crate) inv_norms: &'a [f32],
}

impl QueryDist for F32Dist<'_> {
    #[inline(always)]
    fn dist(&self, id: u32) -> f32 {
        let i = id as usize;
        let x = (self.kernel)(self.q, &self.data[i * self.dim..(i + 1) * self.dim]);
        match self.metric {
            Metric::L2 => x,
            Metric::Ip => -x,
            Metric::Cosine => -x * self.inv_norms[i],
        }
    }

    #[inline(always)]
    fn prefetch(&self, id: u32) {
        let p = self.data.as_ptr().wrapping_add(id as usize * self.dim) as *const u8;
        prefetch_range(p, self.dim * 4);
    }
}

impl HnswIndex {
    /// Builds the graph over `data` (`n x dim`, row-major) on the current
    /// rayon pool. `progress(done, total)` is called on the calling thread
    /// as insertion proceeds (about every 1% of rows); returning `false`
    /// cancels the build ([`IndexError::Cancelled`]). Errors on a bad shape
    /// or out-of-range parameters.
    pub fn build(
        metric: Metric,
        dim: usize,
        data: &[f32],
        params: &HnswParams,
        progress: &dyn Fn(usize, usize) -> bool,
    ) -> Result<HnswIndex, IndexError> {
        build::build(metric, dim, data, params, progress)
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

    /// The metric it was built for.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// `M` (level 0 holds `2 M`).
    pub fn m(&self) -> usize {
        self.graph.m
    }

    /// `efConstruction` used to build it.
    pub fn ef_construction(&self) -> usize {
        self.ef_construction
    }

    /// What the search walks on.
    pub fn traversal(&self) -> Traversal {
        match &self.sq {
            None => Traversal::F32,
            Some(s) if s.sq.bits == 4 => Traversal::Sq4,
            Some(_) => Traversal::Sq8,
        }
    }

    /// Top level of the graph.
    pub fn max_level(&self) -> usize {
        self.graph.max_level
    }

    /// Bytes of heap memory held (graph, codes, norms), excluding the
    /// segment's `f32` rows, which the engine owns.
    pub fn memory_bytes(&self) -> usize {
        let sq = self.sq.as_ref().map_or(0, |s| {
            s.codes.bytes() + 4 * (s.norms.capacity() + s.sq.min.capacity() + s.sq.scale.capacity())
        });
        self.graph.memory_bytes() + 4 * self.inv_norms.capacity() + sq + std::mem::size_of::<Self>()
    }

    /// Checks that `data` is the `n x dim` matrix this index was built on
    /// (its shape only: the engine must pass the same rows).
    pub fn check_data(&self, data: &[f32]) -> Result<(), IndexError> {
        if data.len() != self.n * self.dim {
            return Err(IndexError::Shape(format!(
                "index over {} x {} rows, given {} values",
                self.n,
                self.dim,
                data.len()
            )));
        }
        Ok(())
    }

    /// The `k` best rows for `query` (Milvus scores, best first, ties by
    /// smaller row), walking with beam width `max(ef, k)` (with code
    /// traversal, `max(ef, 3 k, k + 16)`: the re-scored set). `data` must be
    /// the rows the index was built on. With `allow`, only rows whose bit is
    /// set (bit `i % 64` of word `i / 64`; missing words mean not allowed)
    /// are returned. Returns fewer than `k` when fewer rows are allowed or
    /// reachable.
    ///
    /// Panics if `data.len() != n * dim` or `query.len() != dim`.
    pub fn search(
        &self,
        data: &[f32],
        query: &[f32],
        k: usize,
        ef: usize,
        allow: Option<&[u64]>,
    ) -> Vec<(f32, u32)> {
        assert_eq!(
            data.len(),
            self.n * self.dim,
            "HnswIndex::search: data is not n x dim"
        );
        assert_eq!(
            query.len(),
            self.dim,
            "HnswIndex::search: query length != dim"
        );
        if self.n == 0 || k == 0 {
            return Vec::new();
        }
        let k = k.min(self.n);
        // A walk on codes needs a beam wider than the re-scored set: with
        // `ef == k` it would return the code-distance top k, not the top k.
        let ef = if self.sq.is_some() {
            ef.max(rerank_depth(k))
        } else {
            ef.max(k)
        };
        if let Some(words) = allow {
            let n_allowed = count_allowed(words, self.n);
            if n_allowed <= ef {
                return self.scan_allowed(data, query, k, words);
            }
            let ok = |id: u32| allowed(words, id);
            self.search_with(data, query, k, ef, ok)
        } else {
            self.search_with(data, query, k, ef, |_| true)
        }
    }

    fn scan_allowed(
        &self,
        data: &[f32],
        query: &[f32],
        k: usize,
        words: &[u64],
    ) -> Vec<(f32, u32)> {
        let mut top = TopK::with_capacity(k, self.metric.higher_is_better(), k);
        for (w, &bits) in words.iter().enumerate().take(self.n.div_ceil(64)) {
            let mut b = bits;
            while b != 0 {
                let i = w * 64 + b.trailing_zeros() as usize;
                b &= b - 1;
                if i < self.n {
                    let row = &data[i * self.dim..(i + 1) * self.dim];
                    top.push(self.metric.distance(query, row), i as u32);
                }
            }
        }
        top.into_sorted_vec()
    }

    fn search_with<A: Fn(u32) -> bool>(
        &self,
        data: &[f32],
        query: &[f32],
        k: usize,
        ef: usize,
        ok: A,
    ) -> Vec<(f32, u32)> {
        with_scratch(|s| {
            s.visited.reset(self.n);
            let mut q = std::mem::take(&mut s.q);
            if let Some(store) = &self.sq {
                let c = if self.metric == Metric::Cosine {
                    let mut qn = std::mem::take(&mut s.qn);
                    qn.resize(self.dim, 0.0);
                    crate::sq::normalized(query, &mut qn);
                    let c = store.sq.prepare(&qn, &mut q);
                    s.qn = qn;
                    c
                } else {
                    store.sq.prepare(query, &mut q)
                };
                let d = Sq8Dist {
                    codes: &store.codes,
                    q: &q,
                    c,
                    norms: &store.norms,
                    l2: self.metric == Metric::L2,
                    dot: dot_fn(store.sq.bits),
                    stride: store.codes.stride(),
                };
                self.graph.walk(&d, s, ef, &ok);
            } else {
                q.clear();
                q.extend_from_slice(query);
                if self.metric == Metric::Cosine {
                    crate::sq::normalized(query, &mut q);
                }
                let d = F32Dist {
                    data,
                    dim: self.dim,
                    q: &q,
                    kernel: match self.metric {
                        Metric::L2 => quiver_simd::l2_sq,
                        _ => quiver_simd::dot,
                    },
                    metric: self.metric,
                    inv_norms: &self.inv_norms,
                };
                self.graph.walk(&d, s, ef, &ok);
            }
            s.q = q;
            self.finish(data, query, k, ef, s)
        })
    }

    /// Exact re-scoring of the beam's results into the top `k`.
    fn finish(
        &self,
        data: &[f32],
        query: &[f32],
        k: usize,
        ef: usize,
        s: &mut Scratch,
    ) -> Vec<(f32, u32)> {
        let mut top = TopK::with_capacity(k, self.metric.higher_is_better(), k);
        if self.sq.is_none() && self.metric != Metric::Cosine {
            for &kk in s.res.iter() {
                let dd = key_dist(kk);
                let score = if self.metric == Metric::Ip { -dd } else { dd };
                top.push(score, key_id(kk));
            }
            return top.into_sorted_vec();
        }
        s.keys.clear();
        s.keys.extend(s.res.iter().copied());
        let depth = rerank_depth(k).max(ef / RERANK_EF_DIV);
        if s.keys.len() > depth {
            s.keys.select_nth_unstable(depth);
            s.keys.truncate(depth);
        }
        s.nbuf.clear();
        s.nbuf.extend(s.keys.iter().map(|&kk| key_id(kk)));
        let dim = self.dim;
        let row_ptr = |i: u32| data.as_ptr().wrapping_add(i as usize * dim) as *const u8;
        if let Some(&first) = s.nbuf.first() {
            prefetch_range(row_ptr(first), dim * 4);
        }
        for j in 0..s.nbuf.len() {
            if let Some(&next) = s.nbuf.get(j + 1) {
                prefetch_range(row_ptr(next), dim * 4);
            }
            let i = s.nbuf[j] as usize;
            top.push(
                self.metric.distance(query, &data[i * dim..(i + 1) * dim]),
                i as u32,
            );
        }
        top.into_sorted_vec()
    }
}

#[inline(always)]
pub(crate) fn allowed(words: &[u64], id: u32) -> bool {
    words
        .get(id as usize >> 6)
        .is_some_and(|w| (w >> (id & 63)) & 1 == 1)
}

/// Set bits among the first `n` of the bitmap.
pub(crate) fn count_allowed(words: &[u64], n: usize) -> usize {
    let full = n / 64;
    let mut c: usize = words
        .iter()
        .take(full)
        .map(|w| w.count_ones() as usize)
        .sum();
    if !n.is_multiple_of(64) {
        if let Some(w) = words.get(full) {
            c += (w & ((1u64 << (n % 64)) - 1)).count_ones() as usize;
        }
    }
    c
}
