//! The persisted form of [`BinaryHnswIndex`], inside the envelope of
//! [`crate::io`] (kind 5). Payload, in order (integers little-endian;
//! "array" = `u64` count + elements):
//!
//! | field            | type                | notes                                         |
//! |------------------|---------------------|-----------------------------------------------|
//! | metric           | u8                  | 0 HAMMING, 1 JACCARD                          |
//! | max_level        | u8                  | top level of the graph                        |
//! | reserved         | u8, u8              | 0, 0                                          |
//! | dim_bits         | u32                 | a positive multiple of 8                      |
//! | n                | u64                 | rows; < 2^32 - 1                              |
//! | M                | u32                 | 2..=2048; level 0 holds `M0 = 2 M`            |
//! | efConstruction   | u32                 | informational                                 |
//! | seed             | u64                 | informational                                 |
//! | entry            | u32                 | `levels[entry] == max_level`; `u32::MAX` if n = 0 |
//! | levels           | array of u8 \[n\]   | top level per node, `<= max_level`            |
//! | links0           | array of u32 \[n M0\] | per node `M0` slots: ids, then `u32::MAX` padding |
//! | upper            | array of u32        | per node with level `L >= 1`, in row order: `L` lists of `M` slots (same padding) |
//!
//! The graph fields mean what they mean in the `f32` HNSW format
//! (`format.rs`); loading checks them with the same code
//! ([`Layers::from_parts`]), so search can rely on every id.

use quiver_simd::BinaryMetric;

use super::binary::check_dim_bits;
use super::{BinaryHnswIndex, Layers, NONE};
use crate::io::{IndexKind, Reader, Writer};
use crate::mem::PodBuf;
use crate::IndexError;

fn metric_code(m: BinaryMetric) -> u8 {
    match m {
        BinaryMetric::Hamming => 0,
        BinaryMetric::Jaccard => 1,
    }
}

fn metric_from_code(c: u8) -> Result<BinaryMetric, IndexError> {
    Ok(match c {
        0 => BinaryMetric::Hamming,
        1 => BinaryMetric::Jaccard,
        _ => {
            return Err(IndexError::corrupt(format!(
                "unknown binary metric code {c}"
            )))
        }
    })
}

impl BinaryHnswIndex {
    /// The persisted form (see the table in the module docs of
    /// `format_binary`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let g = &self.graph;
        let mut w = Writer::new(IndexKind::BinaryHnsw, self.memory_bytes());
        w.u8(metric_code(self.metric));
        w.u8(g.max_level as u8);
        w.u8(0);
        w.u8(0);
        w.u32(self.dim_bits as u32);
        w.u64(self.n as u64);
        w.u32(g.m as u32);
        w.u32(self.ef_construction.min(u32::MAX as usize) as u32);
        w.u64(self.seed);
        w.u32(g.entry);
        w.u8s(&g.levels);
        w.u32s(&g.links0);
        w.u32s(&g.upper);
        w.finish()
    }

    /// Loads an index written by [`BinaryHnswIndex::to_bytes`] without
    /// rebuilding it. A truncated, corrupted or inconsistent file is an
    /// error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<BinaryHnswIndex, IndexError> {
        let (_, mut r) = Reader::open(bytes, &[IndexKind::BinaryHnsw])?;
        let metric = metric_from_code(r.u8("metric")?)?;
        let max_level = r.u8("max_level")? as usize;
        let reserved = [r.u8("reserved")?, r.u8("reserved")?];
        if reserved != [0, 0] {
            return Err(IndexError::corrupt("reserved bytes are not zero"));
        }
        let dim_bits = r.u32("dim_bits")? as usize;
        let n64 = r.u64("n")?;
        let m = r.u32("M")? as usize;
        let ef_construction = r.u32("efConstruction")? as usize;
        let seed = r.u64("seed")?;
        let entry = r.u32("entry")?;
        if check_dim_bits(dim_bits).is_err() || n64 >= NONE as u64 || !(2..=2048).contains(&m) {
            return Err(IndexError::corrupt(format!(
                "bad header: dim_bits {dim_bits}, n {n64}, M {m}"
            )));
        }
        let n = n64 as usize;
        let levels = r.u8s(Some(n), "levels")?.to_vec();
        let links0 = PodBuf::from_slice(&r.u32s(n.checked_mul(2 * m), "links0")?);
        let upper = r.u32s(None, "upper")?;
        r.finish()?;
        let graph = Layers::from_parts(m, entry, max_level, levels, links0, upper)?;
        Ok(BinaryHnswIndex {
            metric,
            dim_bits,
            n,
            ef_construction,
            seed,
            graph,
        })
    }
}
