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

use super::{HnswIndex, SqStore, NONE};

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
        w.u8(self.max_level as u8);
        w.u8(0);
        w.u32(self.dim as u32);
        w.u64(self.n as u64);
        w.u32(self.m as u32);
        w.u32(self.ef_construction.min(u32::MAX as usize) as u32);
        w.u64(self.seed);
        w.u32(self.entry);
        w.u8s(&self.levels);
        w.u32s(&self.links0);
        w.u32s(&self.upper);
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
        let m0 = 2 * m;
        let levels = r.u8s(Some(n), "levels")?.to_vec();
        let links0 = PodBuf::from_slice(&r.u32s(n.checked_mul(m0), "links0")?);
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
        if levels.iter().any(|&l| l as usize > max_level) {
            return Err(IndexError::corrupt("a node's level exceeds max_level"));
        }
        if n == 0 {
            if entry != NONE || max_level != 0 {
                return Err(IndexError::corrupt("empty index with an entry point"));
            }
        } else if entry as usize >= n || levels[entry as usize] as usize != max_level {
            return Err(IndexError::corrupt("bad entry point"));
        }
        let mut upper_off = vec![NONE; n];
        let mut total: u64 = 0;
        for (i, &l) in levels.iter().enumerate() {
            if l > 0 {
                upper_off[i] = total as u32;
                total += l as u64 * m as u64;
                if total > u32::MAX as u64 {
                    return Err(IndexError::corrupt("upper levels too large"));
                }
            }
        }
        if upper.len() as u64 != total {
            return Err(IndexError::corrupt(format!(
                "upper holds {} slots, levels need {total}",
                upper.len()
            )));
        }
        let check = |list: &[u32], level: usize| -> Result<(), IndexError> {
            let c = list.iter().position(|&x| x == NONE).unwrap_or(list.len());
            if list[c..].iter().any(|&x| x != NONE) {
                return Err(IndexError::corrupt(format!(
                    "bad neighbour padding at level {level}"
                )));
            }
            for &id in &list[..c] {
                if id as usize >= n || (levels[id as usize] as usize) < level {
                    return Err(IndexError::corrupt(format!(
                        "bad neighbour {id} at level {level}"
                    )));
                }
            }
            Ok(())
        };
        for list in links0.chunks_exact(m0) {
            check(list, 0)?;
        }
        for (i, &l) in levels.iter().enumerate() {
            for level in 1..=l as usize {
                let off = upper_off[i] as usize + (level - 1) * m;
                check(&upper[off..off + m], level)?;
            }
        }
        Ok(HnswIndex {
            metric,
            dim,
            n,
            m,
            m0,
            ef_construction,
            seed,
            entry,
            max_level,
            levels,
            links0,
            upper_off,
            upper,
            inv_norms,
            sq,
        })
    }
}
