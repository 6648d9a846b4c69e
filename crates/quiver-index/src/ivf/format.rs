//! The persisted form of [`IvfIndex`], inside the envelope of [`crate::io`]
//! (kind 2 IVF_FLAT, 3 IVF_SQ8, 4 IVF_PQ). Payload, in order (integers
//! little-endian; "array" = `u64` count + elements):
//!
//! | field            | type                     | notes                                        |
//! |------------------|--------------------------|----------------------------------------------|
//! | metric           | u8                       | 0 L2, 1 IP, 2 COSINE                         |
//! | reserved         | 3 x u8                   | 0                                            |
//! | dim              | u32                      | >= 1                                         |
//! | n                | u64                      | rows; < 2^32 - 1                             |
//! | nlist            | u32                      | 1..=65536                                    |
//! | seed             | u64                      | informational                                |
//! | centroids        | array of f32 [nlist dim] |                                              |
//! | offsets          | array of u32 [nlist + 1] | 0, non-decreasing, ends at n                 |
//! | ids              | array of u32 [n]         | row ids `< n`, list-major                    |
//! | *IVF_SQ8:* sq_min, sq_scale | arrays of f32 [dim] |                                     |
//! | *IVF_SQ8:* codes | array of u8 [n stride]   | `stride = ceil(dim / 16) * 16`, list-major   |
//! | *IVF_SQ8:* code_norms | array of f32 [n or 0] | `|x^|^2`, L2 only                          |
//! | *IVF_PQ:* m, nbits | u32, u32               | `m` divides dim, nbits 1..=16                |
//! | *IVF_PQ:* codebooks | array of f32 [m 2^nbits dim/m] |                                  |
//! | *IVF_PQ:* codes  | array of u8 [n m (1 or 2)] | one byte per sub-code if nbits <= 8, else u16 LE |

use quiver_simd::Metric;

use super::{IvfIndex, Pq, Store};
use crate::io::{metric_code, metric_from_code, IndexKind, Reader, Writer};
use crate::sq::{stride_for, Codes, Sq8};
use crate::IndexError;

impl IvfIndex {
    /// The persisted form (see the table in the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let kind = match self.store {
            Store::Flat => IndexKind::IvfFlat,
            Store::Sq8 { .. } => IndexKind::IvfSq8,
            Store::Pq { .. } => IndexKind::IvfPq,
        };
        let mut w = Writer::new(kind, self.memory_bytes());
        w.u8(metric_code(self.metric));
        w.u8(0);
        w.u8(0);
        w.u8(0);
        w.u32(self.dim as u32);
        w.u64(self.n as u64);
        w.u32(self.nlist as u32);
        w.u64(self.seed);
        w.f32s(&self.centroids);
        w.u32s(&self.offsets);
        w.u32s(&self.ids);
        match &self.store {
            Store::Flat => {}
            Store::Sq8 { sq, codes, norms } => {
                w.f32s(&sq.min);
                w.f32s(&sq.scale);
                w.u8s(codes.as_bytes());
                w.f32s(norms);
            }
            Store::Pq { pq, codes } => {
                w.u32(pq.m as u32);
                w.u32(pq.nbits);
                w.f32s(&pq.books);
                w.u8s(codes);
            }
        }
        w.finish()
    }

    /// Loads an index written by [`IvfIndex::to_bytes`]; a truncated,
    /// corrupted or inconsistent file is an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<IvfIndex, IndexError> {
        let (kind, mut r) = Reader::open(
            bytes,
            &[IndexKind::IvfFlat, IndexKind::IvfSq8, IndexKind::IvfPq],
        )?;
        let metric = metric_from_code(r.u8("metric")?)?;
        for _ in 0..3 {
            r.u8("reserved")?;
        }
        let dim = r.u32("dim")? as usize;
        let n64 = r.u64("n")?;
        let nlist = r.u32("nlist")? as usize;
        let seed = r.u64("seed")?;
        if dim == 0 || n64 >= u32::MAX as u64 || !(1..=65536).contains(&nlist) {
            return Err(IndexError::corrupt(format!(
                "bad header: dim {dim}, n {n64}, nlist {nlist}"
            )));
        }
        let n = n64 as usize;
        let centroids = r.f32s(nlist.checked_mul(dim), "centroids")?;
        let offsets = r.u32s(Some(nlist + 1), "offsets")?;
        let ids = r.u32s(Some(n), "ids")?;
        let store = match kind {
            IndexKind::IvfSq8 => {
                let min = r.f32s(Some(dim), "sq_min")?;
                let scale = r.f32s(Some(dim), "sq_scale")?;
                let stride = stride_for(dim, 8);
                let raw = r.u8s(n.checked_mul(stride), "codes")?;
                let norms = r.f32s(Some(if metric == Metric::L2 { n } else { 0 }), "code_norms")?;
                Store::Sq8 {
                    sq: Sq8 {
                        dim,
                        bits: 8,
                        min,
                        scale,
                    },
                    codes: Codes::from_bytes(raw, stride),
                    norms,
                }
            }
            IndexKind::IvfPq => {
                let m = r.u32("m")? as usize;
                let nbits = r.u32("nbits")?;
                if m == 0 || !dim.is_multiple_of(m) || !(1..=16).contains(&nbits) {
                    return Err(IndexError::corrupt(format!("bad PQ m {m} / nbits {nbits}")));
                }
                let books = r.f32s(Some((1usize << nbits) * dim), "codebooks")?;
                let pq = Pq {
                    dim,
                    m,
                    nbits,
                    books,
                };
                let codes = r.u8s(n.checked_mul(pq.code_bytes()), "codes")?.to_vec();
                Store::Pq { pq, codes }
            }
            _ => Store::Flat,
        };
        r.finish()?;
        if offsets[0] != 0
            || offsets[nlist] as usize != n
            || offsets.windows(2).any(|w| w[0] > w[1])
        {
            return Err(IndexError::corrupt(
                "list offsets are not 0..=n non-decreasing",
            ));
        }
        if ids.iter().any(|&i| i as usize >= n) {
            return Err(IndexError::corrupt("row id out of range"));
        }
        Ok(IvfIndex {
            metric,
            dim,
            n,
            nlist,
            seed,
            centroids,
            offsets,
            ids,
            store,
        })
    }
}
