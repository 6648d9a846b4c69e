//! Parallel HNSW construction (see the module docs of `hnsw`).
//!
//! The graph algorithm ([`build_layers`]) is generic over a [`BuildSpace`]:
//! the exact distance between two rows (which chooses and prunes every
//! edge) and the distance the insertion beam walks on (approximate SQ8
//! codes for `f32` rows, the exact kernel for binary rows). Both are
//! "lower is better". The `f32` index ([`build`]) and the binary index
//! (`binary.rs`) each supply a space; the insertion order, level draws and
//! locking are the same code, monomorphised per space.

use std::sync::atomic::{AtomicU32, Ordering};

use parking_lot::Mutex;
use quiver_simd::Metric;
use rayon::prelude::*;

use super::{greedy, search_layer, Graph, HnswIndex, Layers, QueryDist, SqStore, NONE};
use crate::kernels::prefetch_range;
use crate::mem::PodBuf;
use crate::rng::Rng;
use crate::scratch::{key, key_dist, key_id, with_scratch, Scratch};
use crate::sq::{Codes, Sq8};
use crate::{HnswParams, IndexError, Traversal};

/// Highest level drawn (the draw is capped; with M >= 2 reaching it needs
/// about 2^31 rows).
const MAX_LEVEL: usize = 31;

/// Neighbour lists under construction.
struct BuildGraph {
    m: usize,
    m0: usize,
    l0: Vec<AtomicU32>,
    upper: Vec<AtomicU32>,
    upper_off: Vec<u32>,
    locks: Vec<Mutex<()>>,
}

impl BuildGraph {
    #[inline(always)]
    fn slots(&self, node: u32, level: usize) -> &[AtomicU32] {
        if level == 0 {
            let b = node as usize * (self.m0 + 1);
            &self.l0[b..b + self.m0 + 1]
        } else {
            let b = self.upper_off[node as usize] as usize + (level - 1) * (self.m + 1);
            &self.upper[b..b + self.m + 1]
        }
    }
}

impl BuildGraph {
    /// The search layout: `M0` (or `M`) slots per list, `NONE`-padded, no counts.
    fn freeze(self, levels: &[u8]) -> (PodBuf<u32>, Vec<u32>, Vec<u32>) {
        let n = levels.len();
        let (m, m0) = (self.m, self.m0);
        let mut links0 = PodBuf::zeroed(n * m0);
        links0
            .par_chunks_mut(m0 * 1024)
            .enumerate()
            .for_each(|(c, out)| {
                for (j, rec) in out.chunks_exact_mut(m0).enumerate() {
                    copy_list(self.slots((c * 1024 + j) as u32, 0), rec);
                }
            });
        let mut upper_off = vec![NONE; n];
        let mut upper = Vec::new();
        for (i, &l) in levels.iter().enumerate() {
            if l > 0 {
                upper_off[i] = upper.len() as u32;
                for level in 1..=l as usize {
                    let start = upper.len();
                    upper.resize(start + m, NONE);
                    copy_list(self.slots(i as u32, level), &mut upper[start..]);
                }
            }
        }
        upper.shrink_to_fit();
        (links0, upper, upper_off)
    }
}

/// Copies a count-prefixed atomic list into `NONE`-padded slots.
fn copy_list(slots: &[AtomicU32], out: &mut [u32]) {
    let c = (slots[0].load(Ordering::Relaxed) as usize).min(slots.len() - 1);
    for (o, a) in out.iter_mut().zip(&slots[1..1 + c]) {
        *o = a.load(Ordering::Relaxed);
    }
    out[c..].fill(NONE);
}

impl Graph for BuildGraph {
    #[inline(always)]
    fn neighbors<'a>(&'a self, node: u32, level: usize, buf: &'a mut Vec<u32>) -> &'a [u32] {
        let slots = self.slots(node, level);
        let c = (slots[0].load(Ordering::Acquire) as usize).min(slots.len() - 1);
        buf.clear();
        buf.extend(slots[1..1 + c].iter().map(|a| a.load(Ordering::Relaxed)));
        buf
    }
}

/// What the graph builder needs from the rows being indexed. Distances are
/// "lower is better" and symmetric.
pub(crate) trait BuildSpace: Sync {
    /// The insertion beam's distance from one node to the others.
    type Beam<'s>: QueryDist
    where
        Self: 's;
    /// Whether the beam's distances are exactly [`BuildSpace::dist`]: then
    /// the beam's results are used as they are instead of being re-scored.
    const EXACT_BEAM: bool;
    /// Exact distance between rows `a` and `b`.
    fn dist(&self, a: u32, b: u32) -> f32;
    /// Hints that row `i` is needed soon.
    fn prefetch(&self, i: u32);
    /// The beam distance from row `node` (may borrow buffers from `s`).
    fn beam<'s>(&'s self, node: u32, s: &mut Scratch) -> Self::Beam<'s>;
    /// Gives back what [`BuildSpace::beam`] borrowed from `s`.
    fn recycle(&self, beam: Self::Beam<'_>, s: &mut Scratch);
}

/// Distances between `f32` rows during the build (lower is better).
struct Space<'a> {
    data: &'a [f32],
    dim: usize,
    metric: Metric,
    /// `1 / |row|` for COSINE, else empty.
    inv: Vec<f32>,
    /// SQ8 codes the insertion beam walks on (see [`BeamCodes`]).
    beam: BeamCodes,
}

/// Temporary SQ8 codes of the rows for the insertion beam: it computes
/// about 80% of a build's distances (2,500 per row at efConstruction 200
/// on wn-gloss), and a quarter of the bytes per distance roughly halves
/// the build's time. The beam's `efConstruction` results are then
/// re-scored with `f32` rows, and neighbour selection and pruning use
/// exact distances only, so the graph is chosen on exact distances among
/// the candidates the approximate beam found.
struct BeamCodes {
    sq: Sq8,
    codes: Codes,
    /// `|x^|^2` per row (L2 only).
    norms: Vec<f32>,
}

impl Space<'_> {
    #[inline(always)]
    fn row(&self, i: u32) -> &[f32] {
        let i = i as usize;
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

impl<'a> BuildSpace for Space<'a> {
    type Beam<'s>
        = FromNode<'a, 's>
    where
        Self: 's;
    const EXACT_BEAM: bool = false;

    #[inline(always)]
    fn dist(&self, a: u32, b: u32) -> f32 {
        match self.metric {
            Metric::L2 => quiver_simd::l2_sq(self.row(a), self.row(b)),
            Metric::Ip => -quiver_simd::dot(self.row(a), self.row(b)),
            Metric::Cosine => {
                -quiver_simd::dot(self.row(a), self.row(b))
                    * self.inv[a as usize]
                    * self.inv[b as usize]
            }
        }
    }

    #[inline(always)]
    fn prefetch(&self, i: u32) {
        let p = self.data.as_ptr().wrapping_add(i as usize * self.dim) as *const u8;
        prefetch_range(p, self.dim * 4);
    }

    fn beam<'s>(&'s self, node: u32, s: &mut Scratch) -> FromNode<'a, 's> {
        let mut qp = std::mem::take(&mut s.q);
        let row = self.row(node);
        let c = if self.metric == Metric::Cosine {
            let mut qn = std::mem::take(&mut s.qn);
            qn.resize(row.len(), 0.0);
            crate::sq::normalized(row, &mut qn);
            let c = self.beam.sq.prepare(&qn, &mut qp);
            s.qn = qn;
            c
        } else {
            self.beam.sq.prepare(row, &mut qp)
        };
        FromNode {
            space: self,
            qp,
            c,
            dot: crate::kernels::dot_fn(8),
        }
    }

    fn recycle(&self, beam: FromNode<'_, '_>, s: &mut Scratch) {
        s.q = beam.qp;
    }
}

/// Approximate (SQ8) distance from one row (being inserted) to the others.
struct FromNode<'a, 'b> {
    space: &'b Space<'a>,
    /// The row's prepared SQ8 query (module `sq`), a scratch buffer lent
    /// by [`BuildSpace::beam`] until [`BuildSpace::recycle`].
    qp: Vec<f32>,
    /// The prepared query's constant.
    c: f32,
    dot: crate::kernels::DotU8,
}

impl QueryDist for FromNode<'_, '_> {
    #[inline(always)]
    fn dist(&self, id: u32) -> f32 {
        let b = &self.space.beam;
        let ip = self.c + (self.dot)(&self.qp, b.codes.row(id as usize));
        if self.space.metric == Metric::L2 {
            b.norms[id as usize] - 2.0 * ip
        } else {
            -ip
        }
    }

    #[inline(always)]
    fn prefetch(&self, id: u32) {
        let b = &self.space.beam;
        prefetch_range(b.codes.row_ptr(id as usize), b.codes.stride());
    }
}

/// HNSW's neighbour-selection heuristic over `cands` (sorted nearest
/// first): keep a candidate if it is closer to the base node than to every
/// one kept so far, up to `m`.
fn select<S: BuildSpace>(space: &S, cands: &[(f32, u32)], m: usize, out: &mut Vec<u32>) {
    out.clear();
    if cands.len() <= m {
        out.extend(cands.iter().map(|c| c.1));
        return;
    }
    for &(d, e) in cands {
        if out.len() >= m {
            break;
        }
        if out.iter().all(|&r| space.dist(e, r) >= d) {
            out.push(e);
        }
    }
}

/// Checks `M` and `efConstruction` (shared by every HNSW build).
pub(crate) fn check_params(params: &HnswParams) -> Result<(), IndexError> {
    if !(2..=2048).contains(&params.m) {
        return Err(IndexError::invalid("M", params.m, "integer in [2, 2048]"));
    }
    if !(1..=i32::MAX as usize).contains(&params.ef_construction) {
        return Err(IndexError::invalid(
            "efConstruction",
            params.ef_construction,
            "integer in [1, 2147483647]",
        ));
    }
    Ok(())
}

pub(super) fn build(
    metric: Metric,
    dim: usize,
    data: &[f32],
    params: &HnswParams,
    progress: &dyn Fn(usize, usize) -> bool,
) -> Result<HnswIndex, IndexError> {
    check_params(params)?;
    if dim == 0 {
        return Err(IndexError::Shape("dim must be at least 1".into()));
    }
    if !data.len().is_multiple_of(dim) {
        return Err(IndexError::Shape(format!(
            "{} values is not a multiple of dim {dim}",
            data.len()
        )));
    }
    let n = data.len() / dim;
    if n >= NONE as usize {
        return Err(IndexError::Shape(format!(
            "{n} rows exceed the u32 id space"
        )));
    }
    let inv = if metric == Metric::Cosine {
        quiver_simd::row_norms_sq(data, dim)
            .into_iter()
            .map(|s| if s > 0.0 { 1.0 / s.sqrt() } else { 0.0 })
            .collect()
    } else {
        Vec::new()
    };
    let normalize = metric == Metric::Cosine;
    let beam = {
        let sq = Sq8::train(data, dim, 8, normalize);
        let codes = sq.encode_all(data, normalize);
        let norms = if metric == Metric::L2 {
            (0..n)
                .into_par_iter()
                .map(|i| sq.decoded_norm_sq(codes.row(i)))
                .collect()
        } else {
            Vec::new()
        };
        BeamCodes { sq, codes, norms }
    };
    let space = Space {
        data,
        dim,
        metric,
        inv,
        beam,
    };

    let graph = build_layers(&space, n, params, progress)?;
    let inv_norms = if params.traversal == Traversal::F32 {
        space.inv
    } else {
        Vec::new()
    };
    let bits = match params.traversal {
        Traversal::F32 => 0,
        Traversal::Sq8 => 8,
        Traversal::Sq4 => 4,
    };
    let sq = (bits > 0).then(|| {
        let sq = Sq8::train(data, dim, bits, normalize);
        let codes = sq.encode_all(data, normalize);
        let norms = if metric == Metric::L2 {
            (0..n)
                .into_par_iter()
                .map(|i| sq.decoded_norm_sq(codes.row(i)))
                .collect()
        } else {
            Vec::new()
        };
        SqStore { sq, codes, norms }
    });
    Ok(HnswIndex {
        metric,
        dim,
        n,
        ef_construction: params.ef_construction,
        seed: params.seed,
        graph,
        inv_norms,
        sq,
    })
}

/// Builds the graph over rows `0..n` of `space` on the current rayon pool
/// (parameters already checked with [`check_params`]). `progress(done, n)`
/// is called on the calling thread about every 1% of rows (at least every
/// 1,024); returning `false` cancels with [`IndexError::Cancelled`]. With
/// one rayon thread the result is a function of the space and the seed.
pub(crate) fn build_layers<S: BuildSpace>(
    space: &S,
    n: usize,
    params: &HnswParams,
    progress: &dyn Fn(usize, usize) -> bool,
) -> Result<Layers, IndexError> {
    let (m, m0) = (params.m, 2 * params.m);

    // Levels, drawn up front.
    let mut rng = Rng::new(params.seed);
    let ml = 1.0 / (m as f64).ln();
    let levels: Vec<u8> = (0..n)
        .map(|_| ((-rng.unit_open0().ln() * ml) as usize).min(MAX_LEVEL) as u8)
        .collect();
    let mut upper_off = vec![NONE; n];
    let mut total: u64 = 0;
    for (i, &l) in levels.iter().enumerate() {
        if l > 0 {
            upper_off[i] = u32::try_from(total)
                .map_err(|_| IndexError::Shape("upper levels exceed u32 offsets".into()))?;
            total += l as u64 * (m as u64 + 1);
        }
    }
    if total > u32::MAX as u64 {
        return Err(IndexError::Shape("upper levels exceed u32 offsets".into()));
    }
    let atomics = |len: usize| (0..len).map(|_| AtomicU32::new(0)).collect::<Vec<_>>();
    let graph = BuildGraph {
        m,
        m0,
        l0: atomics(n * (m0 + 1)),
        upper: atomics(total as usize),
        upper_off,
        locks: (0..n).map(|_| Mutex::new(())).collect(),
    };
    let mut entry = NONE;
    let mut max_level = 0;
    if n > 0 {
        entry = 0;
        max_level = levels[0] as usize;
        let ep = Mutex::new((entry, max_level));
        let ins = Inserter {
            graph: &graph,
            space,
            levels: &levels,
            ef: params.ef_construction,
            ep: &ep,
        };
        if !progress(1, n) {
            return Err(IndexError::Cancelled);
        }
        let step = (n / 100).max(1024);
        let mut done = 1;
        while done < n {
            let end = (done + step).min(n);
            (done..end)
                .into_par_iter()
                .for_each(|i| ins.insert(i as u32));
            done = end;
            if !progress(done, n) {
                return Err(IndexError::Cancelled);
            }
        }
        (entry, max_level) = *ep.lock();
    }

    let (links0, upper, upper_off) = graph.freeze(&levels);
    Ok(Layers {
        m,
        m0,
        entry,
        max_level,
        levels,
        links0,
        upper_off,
        upper,
    })
}

struct Inserter<'b, S> {
    graph: &'b BuildGraph,
    space: &'b S,
    levels: &'b [u8],
    ef: usize,
    ep: &'b Mutex<(u32, usize)>,
}

impl<S: BuildSpace> Inserter<'_, S> {
    fn insert(&self, q: u32) {
        let lq = self.levels[q as usize] as usize;
        let guard = self.ep.lock();
        let (ep, top) = *guard;
        // A node that raises the top level holds the entry lock throughout
        // (rare: about n / M^top nodes), as hnswlib does.
        let mut hold = if lq > top {
            Some(guard)
        } else {
            drop(guard);
            None
        };
        with_scratch(|s| {
            let n = self.levels.len();
            let d = self.space.beam(q, s);
            let mut cur = ep;
            let mut cur_d = d.dist(ep);
            for level in (lq + 1..=top).rev() {
                (cur, cur_d) = greedy(self.graph, &d, &mut s.lbuf, cur, cur_d, level);
            }
            let mut pairs = std::mem::take(&mut s.pairs);
            let mut chosen = Vec::new();
            for level in (0..=lq.min(top)).rev() {
                s.visited.reset(n);
                s.visited.insert(q);
                search_layer(self.graph, &d, s, cur, cur_d, self.ef, level, |_| true);
                // Exact distances for the beam's results.
                pairs.clear();
                if S::EXACT_BEAM {
                    pairs.extend(s.res.iter().map(|&k| (key_dist(k), key_id(k))));
                } else {
                    pairs.extend(s.res.iter().map(|&k| (0.0, key_id(k))));
                    for i in 0..pairs.len() {
                        if let Some(&(_, ahead)) = pairs.get(i + 1) {
                            self.space.prefetch(ahead);
                        }
                        pairs[i].0 = self.space.dist(q, pairs[i].1);
                    }
                }
                pairs.sort_unstable_by_key(|&(dd, id)| key(dd, id));
                if let Some(&(_, id)) = pairs.first() {
                    (cur_d, cur) = (d.dist(id), id);
                }
                select(self.space, &pairs, self.graph.m, &mut chosen);
                self.set_links(q, level, &chosen);
                for &nb in &chosen {
                    self.add_link(nb, q, level, s);
                }
            }
            s.pairs = pairs;
            self.space.recycle(d, s);
        });
        if let Some(g) = hold.as_mut() {
            **g = (q, lq);
        }
    }

    fn set_links(&self, node: u32, level: usize, ids: &[u32]) {
        let _g = self.graph.locks[node as usize].lock();
        let slots = self.graph.slots(node, level);
        for (slot, &id) in slots[1..].iter().zip(ids) {
            slot.store(id, Ordering::Relaxed);
        }
        slots[0].store(ids.len() as u32, Ordering::Release);
    }

    /// Adds `q` to `nb`'s list at `level`, pruning with the heuristic when full.
    fn add_link(&self, nb: u32, q: u32, level: usize, s: &mut Scratch) {
        let cap = if level == 0 {
            self.graph.m0
        } else {
            self.graph.m
        };
        let _g = self.graph.locks[nb as usize].lock();
        let slots = self.graph.slots(nb, level);
        let c = slots[0].load(Ordering::Relaxed) as usize;
        if slots[1..1 + c]
            .iter()
            .any(|a| a.load(Ordering::Relaxed) == q)
        {
            return;
        }
        if c < cap {
            slots[1 + c].store(q, Ordering::Relaxed);
            slots[0].store(c as u32 + 1, Ordering::Release);
            return;
        }
        let cands = &mut s.cands;
        cands.clear();
        cands.push((self.space.dist(nb, q), q));
        for a in &slots[1..1 + c] {
            let x = a.load(Ordering::Relaxed);
            self.space.prefetch(x);
            cands.push((0.0, x));
        }
        for e in cands.iter_mut().skip(1) {
            e.0 = self.space.dist(nb, e.1);
        }
        cands.sort_unstable_by_key(|&(dd, id)| key(dd, id));
        select(self.space, cands, cap, &mut s.lbuf);
        for (slot, &id) in slots[1..].iter().zip(&s.lbuf) {
            slot.store(id, Ordering::Relaxed);
        }
        slots[0].store(s.lbuf.len() as u32, Ordering::Release);
    }
}
