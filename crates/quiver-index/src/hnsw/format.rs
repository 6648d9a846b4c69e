//! The persisted form of [`HnswIndex`], inside the envelope of [`crate::io`]
//! (kind 1). Payload, in order (integers little-endian; "array" = `u64`
//! count + elements):
//!
//! | field            | type                | notes                                         |
//! |------------------|---------------------|-----------------------------------------------|
//! | metric           | u8                  | 0 L2, 1 IP, 2 COSINE                          |
//! | traversal        | u8                  | 0 F32, 1 SQ8, 2 SQ4                           |
//! | max_level        | u8                  | top level of the graph                        |
//! | reserved         | u8                  | 0                                             |
//! | dim              | u32                 | >= 1                                          |
//! | n                | u64                 | rows; < 2^32 - 1                              |
//! | M                | u32                 | 2..=2048; level 0 holds `M0 = 2 M`            |
//! | efConstruction   | u32                 | informational                                 |
//! | seed             | u64                 | informational                                 |
//! | entry            | u32                 | `levels[entry] == max_level`; `u32::MAX` if n = 0 |
//! | levels           | array of u8 [n]     | top level per node, `<= max_level`            |
//! | links0           | array of u32 [n M0] | per node `M0` slots: ids, then `u32::MAX` padding |
//! | upper            | array of u32        | per node with level `L >= 1`, in row order: `L` lists of `M` slots (same padding) |
//! | inv_norms        | array of f32 [n or 0] | `1/|row|`, COSINE with F32 traversal only    |
//! | sq_min, sq_scale | arrays of f32 [dim] | SQ8 / SQ4 only                                |
//! | codes            | array of u8 [n stride] | SQ8: `stride = ceil(dim / 16) * 16`; SQ4: `ceil(dim / 32) * 16` (layout in `sq`) |
//! | code_norms       | array of f32 [n or 0] | SQ8 / SQ4 and L2 only: `|x^|^2`             |
//!
//! `upper_off` is not stored: it is the prefix sum of `levels * M`.
//! Loading checks every count and id (ids `< n`, neighbours at level `l`
//! have level `>= l`), so search can rely on them.

use crate::io::{metric_code, metric_from_code, IndexKind, Reader, Writer};
use crate::mem::PodBuf;
use crate::sq::{stride_for, Codes, Sq8};
use crate::{IndexError, Traversal};
use quiver_simd::Metric;

use super::{HnswIndex, Layers, SqStore, NONE};

impl HnswIndex {
    /// The persisted form (see the `format` table in the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(IndexKind::Hnsw, self.memory_bytes());
        w.u8(metric_code(self.metric));
        w.u8(match self.traversal() {
            Traversal::F32 => 0,
            Traversal::Sq8 => 1,
            Traversal::Sq4 => 2,
        });
        let g = &self.graph;
        w.u8(g.max_level as u8);
        w.u8(0);
        w.u32(self.dim as u32);
        w.u64(self.n as u64);
        w.u32(g.m as u32);
        w.u32(self.ef_construction.min(u32::MAX as usize) as u32);
        w.u64(self.seed);
        w.u32(g.entry);
        w.u8s(&g.levels);
        w.u32s(&g.links0);
        w.u32s(&g.upper);
        w.f32s(&self.inv_norms);
        if let Some(s) = &self.sq {
            w.f32s(&s.sq.min);
            w.f32s(&s.sq.scale);
            w.u8s(s.codes.as_bytes());
            w.f32s(&s.norms);
        }
        w.finish()
    }

    /// Loads an index written by [`HnswIndex::to_bytes`] without rebuilding
    /// it. A truncated, corrupted or inconsistent file is an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<HnswIndex, IndexError> {
        let (_, mut r) = Reader::open(bytes, &[IndexKind::Hnsw])?;
        let metric = metric_from_code(r.u8("metric")?)?;
        let traversal = r.u8("traversal")?;
        if traversal > 2 {
            return Err(IndexError::corrupt(format!(
                "unknown traversal {traversal}"
            )));
        }
        let max_level = r.u8("max_level")? as usize;
        r.u8("reserved")?;
        let dim = r.u32("dim")? as usize;
        let n64 = r.u64("n")?;
        let m = r.u32("M")? as usize;
        let ef_construction = r.u32("efConstruction")? as usize;
        let seed = r.u64("seed")?;
        let entry = r.u32("entry")?;
        if dim == 0 || n64 >= NONE as u64 || !(2..=2048).contains(&m) {
            return Err(IndexError::corrupt(format!(
                "bad header: dim {dim}, n {n64}, M {m}"
            )));
        }
        let n = n64 as usize;
        let levels = r.u8s(Some(n), "levels")?.to_vec();
        let links0 = PodBuf::from_slice(&r.u32s(n.checked_mul(2 * m), "links0")?);
        let upper = r.u32s(None, "upper")?;
        let inv_norms = r.f32s(None, "inv_norms")?;
        let expect_inv = if metric == Metric::Cosine && traversal == 0 {
            n
        } else {
            0
        };
        if inv_norms.len() != expect_inv {
            return Err(IndexError::corrupt("inv_norms length"));
        }
        let sq = if traversal > 0 {
            let bits = if traversal == 1 { 8 } else { 4 };
            let min = r.f32s(Some(dim), "sq_min")?;
            let scale = r.f32s(Some(dim), "sq_scale")?;
            let stride = stride_for(dim, bits);
            let raw = r.u8s(n.checked_mul(stride), "codes")?;
            let norms = r.f32s(Some(if metric == Metric::L2 { n } else { 0 }), "code_norms")?;
            Some(SqStore {
                sq: Sq8 {
                    dim,
                    bits,
                    min,
                    scale,
                },
                codes: Codes::from_bytes(raw, stride),
                norms,
            })
        } else {
            None
        };
        r.finish()?;

        // Structure.
        let graph = Layers::from_parts(m, entry, max_level, levels, links0, upper)?;
        Ok(HnswIndex {
            metric,
            dim,
            n,
            ef_construction,
            seed,
            graph,
            inv_norms,
            sq,
        })
    }
}
