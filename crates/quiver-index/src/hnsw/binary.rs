//! HNSW over packed binary rows (Milvus `BINARY_VECTOR`) with HAMMING or
//! JACCARD ([`BinaryMetric`]).
//!
//! # Layout and invariants
//!
//! * The engine owns the rows: `n` rows of `dim_bits / 8` bytes each,
//!   row-major (`dim_bits` a positive multiple of 8; bit order as numpy
//!   `packbits`, which no score depends on). Node `i` is row `i`.
//! * The graph is a [`Layers`] with the same layout, invariants and
//!   construction as the `f32` index (module docs of `hnsw`, `layers.rs`,
//!   `build.rs`), built by the same generic builder over a binary space.
//! * Unlike the `f32` index there are no codes: a binary row is already
//!   compact (256 bits = 32 bytes, a sixth of an SQ4 code of a 384-d row),
//!   and both metrics are a few `popcnt`s per 64 bits, so the build beam,
//!   the edge selection and the search walk all use the exact score
//!   ([`BinaryMetric::distance`]). The walk's distance *is* the Milvus score
//!   (lower is better), so results need no re-scoring: every returned score
//!   is bit for bit what brute force ([`quiver_simd::binary_search_one`])
//!   gives that row.
//! * Results: `(score, row)`, best (lowest) first, ties by smaller row.
//!
//! Hamming scores are small integers, so many rows tie; the beam orders
//! equal distances by id (module `scratch`), which keeps a one-thread build
//! and every search deterministic. When rows tie at the `k`-th score, the
//! walk may return a different (equally scored) subset than brute force.
//!
//! # Search
//!
//! As for the `f32` index: greedy descent, then a beam of width
//! `max(ef, k)` on level 0 that only admits allowed rows into the result
//! set; with an `allow` bitmap of at most `ef` rows, those rows are scored
//! directly. Scratch is per thread (module `scratch`).

use quiver_simd::{BinaryMetric, TopK};

use super::build::{build_layers, check_params, BuildSpace};
use super::{allowed, count_allowed, Layers, QueryDist};
use crate::kernels::prefetch_range;
use crate::scratch::{key_dist, key_id, with_scratch, Scratch};
use crate::{HnswParams, IndexError};

/// The exact binary score from one packed vector to the rows.
pub(crate) struct BinQuery<'a> {
    data: &'a [u8],
    bytes: usize,
    q: &'a [u8],
    kernel: fn(&[u8], &[u8]) -> f32,
}

impl QueryDist for BinQuery<'_> {
    #[inline(always)]
    fn dist(&self, id: u32) -> f32 {
        let i = id as usize;
        (self.kernel)(self.q, &self.data[i * self.bytes..(i + 1) * self.bytes])
    }

    #[inline(always)]
    fn prefetch(&self, id: u32) {
        let p = self.data.as_ptr().wrapping_add(id as usize * self.bytes);
        prefetch_range(p, self.bytes);
    }
}

/// Packed rows seen by the generic builder: the beam is exact.
struct BinSpace<'a> {
    data: &'a [u8],
    bytes: usize,
    kernel: fn(&[u8], &[u8]) -> f32,
}

impl BinSpace<'_> {
    #[inline(always)]
    fn row(&self, i: u32) -> &[u8] {
        let i = i as usize;
        &self.data[i * self.bytes..(i + 1) * self.bytes]
    }
}

impl<'a> BuildSpace for BinSpace<'a> {
    type Beam<'s>
        = BinQuery<'s>
    where
        Self: 's;
    const EXACT_BEAM: bool = true;

    #[inline(always)]
    fn dist(&self, a: u32, b: u32) -> f32 {
        (self.kernel)(self.row(a), self.row(b))
    }

    #[inline(always)]
    fn prefetch(&self, i: u32) {
        let p = self.data.as_ptr().wrapping_add(i as usize * self.bytes);
        prefetch_range(p, self.bytes);
    }

    fn beam<'s>(&'s self, node: u32, _s: &mut Scratch) -> BinQuery<'s> {
        BinQuery {
            data: self.data,
            bytes: self.bytes,
            q: self.row(node),
            kernel: self.kernel,
        }
    }

    fn recycle(&self, _beam: BinQuery<'_>, _s: &mut Scratch) {}
}

/// An HNSW graph over `n` packed binary rows of a segment. See the module
/// docs.
#[derive(Clone)]
pub struct BinaryHnswIndex {
    pub(crate) metric: BinaryMetric,
    pub(crate) dim_bits: usize,
    pub(crate) n: usize,
    pub(crate) ef_construction: usize,
    pub(crate) seed: u64,
    pub(crate) graph: Layers,
}

impl std::fmt::Debug for BinaryHnswIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinaryHnswIndex")
            .field("metric", &self.metric)
            .field("dim_bits", &self.dim_bits)
            .field("n", &self.n)
            .field("m", &self.graph.m)
            .field("ef_construction", &self.ef_construction)
            .field("max_level", &self.graph.max_level)
            .finish()
    }
}

/// Checks a binary vector dimension: a positive multiple of 8 that fits the
/// persisted `u32`. Returns the bytes per row.
pub(crate) fn check_dim_bits(dim_bits: usize) -> Result<usize, IndexError> {
    if dim_bits == 0 || !dim_bits.is_multiple_of(8) || dim_bits > u32::MAX as usize {
        return Err(IndexError::Shape(format!(
            "binary vector dim {dim_bits} must be a positive multiple of 8"
        )));
    }
    Ok(dim_bits / 8)
}

impl BinaryHnswIndex {
    /// Builds the graph over `data` (`n` rows of `dim_bits / 8` bytes) on the
    /// current rayon pool. `progress(done, total)` is called on the calling
    /// thread as insertion proceeds (about every 1% of rows); returning
    /// `false` cancels the build ([`IndexError::Cancelled`]). Errors when
    /// `dim_bits` is not a positive multiple of 8, `data` is not whole rows,
    /// or a parameter is out of range. `params.traversal` is ignored (the
    /// walk is always on the rows themselves). With one rayon thread the
    /// graph is a function of the data and `params.seed`.
    pub fn build(
        metric: BinaryMetric,
        dim_bits: usize,
        data: &[u8],
        params: &HnswParams,
        progress: &dyn Fn(usize, usize) -> bool,
    ) -> Result<BinaryHnswIndex, IndexError> {
        check_params(params)?;
        let bytes = check_dim_bits(dim_bits)?;
        if !data.len().is_multiple_of(bytes) {
            return Err(IndexError::Shape(format!(
                "{} bytes is not a multiple of {bytes} bytes per row (dim {dim_bits})",
                data.len()
            )));
        }
        let n = data.len() / bytes;
        if n >= super::NONE as usize {
            return Err(IndexError::Shape(format!(
                "{n} rows exceed the u32 id space"
            )));
        }
        let space = BinSpace {
            data,
            bytes,
            kernel: metric.kernel(),
        };
        let graph = build_layers(&space, n, params, progress)?;
        Ok(BinaryHnswIndex {
            metric,
            dim_bits,
            n,
            ef_construction: params.ef_construction,
            seed: params.seed,
            graph,
        })
    }

    /// Number of rows indexed.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether no rows are indexed.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Vector dimension in bits (a multiple of 8).
    pub fn dim_bits(&self) -> usize {
        self.dim_bits
    }

    /// Bytes per row: `dim_bits / 8`.
    pub fn bytes_per_row(&self) -> usize {
        self.dim_bits / 8
    }

    /// The metric it was built for.
    pub fn metric(&self) -> BinaryMetric {
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

    /// Top level of the graph.
    pub fn max_level(&self) -> usize {
        self.graph.max_level
    }

    /// Bytes of heap memory held (the graph), excluding the segment's rows,
    /// which the engine owns.
    pub fn memory_bytes(&self) -> usize {
        self.graph.memory_bytes() + std::mem::size_of::<Self>()
    }

    /// Checks that `data` has the shape of the rows this index was built on
    /// (`n` rows of `dim_bits / 8` bytes; the engine must pass the same rows).
    pub fn check_data(&self, data: &[u8]) -> Result<(), IndexError> {
        if data.len() != self.n * self.bytes_per_row() {
            return Err(IndexError::Shape(format!(
                "index over {} rows of {} bits, given {} bytes",
                self.n,
                self.dim_bits,
                data.len()
            )));
        }
        Ok(())
    }

    /// The `k` best rows for `query` (Milvus scores, lowest first, ties by
    /// smaller row), walking with beam width `max(ef, k)`. `data` must be the
    /// rows the index was built on. With `allow`, only rows whose bit is set
    /// (bit `i % 64` of word `i / 64`; missing words mean not allowed) are
    /// returned. Returns fewer than `k` when fewer rows are allowed or
    /// reachable.
    ///
    /// Panics if `data.len() != n * dim_bits / 8` or
    /// `query.len() != dim_bits / 8`.
    pub fn search(
        &self,
        data: &[u8],
        query: &[u8],
        k: usize,
        ef: usize,
        allow: Option<&[u64]>,
    ) -> Vec<(f32, u32)> {
        let bytes = self.bytes_per_row();
        assert_eq!(
            data.len(),
            self.n * bytes,
            "BinaryHnswIndex::search: data is not n rows of dim_bits / 8 bytes"
        );
        assert_eq!(
            query.len(),
            bytes,
            "BinaryHnswIndex::search: query length != dim_bits / 8"
        );
        if self.n == 0 || k == 0 {
            return Vec::new();
        }
        let k = k.min(self.n);
        let ef = ef.max(k);
        let d = BinQuery {
            data,
            bytes,
            q: query,
            kernel: self.metric.kernel(),
        };
        match allow {
            Some(words) if count_allowed(words, self.n) <= ef => {
                let mut top = TopK::with_capacity(k, false, k);
                for (w, &bits) in words.iter().enumerate().take(self.n.div_ceil(64)) {
                    let mut b = bits;
                    while b != 0 {
                        let i = w * 64 + b.trailing_zeros() as usize;
                        b &= b - 1;
                        if i < self.n {
                            top.push(d.dist(i as u32), i as u32);
                        }
                    }
                }
                top.into_sorted_vec()
            }
            Some(words) => self.search_with(&d, k, ef, |id| allowed(words, id)),
            None => self.search_with(&d, k, ef, |_| true),
        }
    }

    fn search_with<A: Fn(u32) -> bool>(
        &self,
        d: &BinQuery<'_>,
        k: usize,
        ef: usize,
        ok: A,
    ) -> Vec<(f32, u32)> {
        with_scratch(|s| {
            s.visited.reset(self.n);
            self.graph.walk(d, s, ef, &ok);
            // The walk's distances are the exact scores.
            let mut top = TopK::with_capacity(k, false, k);
            for &kk in s.res.iter() {
                top.push(key_dist(kk), key_id(kk));
            }
            top.into_sorted_vec()
        })
    }
}
