//! Sparse vector search: inner product over SPARSE_FLOAT_VECTOR fields, and BM25 over the
//! output of a BM25 function.
//!
//! Every segment's sparse column is searched through an inverted index (term -> postings of
//! (row, value), rows increasing), scored term at a time into a per-segment accumulator:
//! - sealed segments build it on first use and keep it (the rows never change); it is derived
//!   data and never written to disk, since building it is one pass over the column;
//! - growing segments keep one too and extend it with the rows appended since the last search
//!   (a growing segment only ever appends: upserts and fills append a new row and delete the
//!   old one; sealing makes a new segment with fresh caches), so a search never re-indexes more
//!   than the new rows.
//!
//! `drop_ratio_build` (index param, IP fields) leaves the smallest fraction of a sealed
//! segment's values out of its postings (growing segments stay exact), and `drop_ratio_search` (search param) the smallest
//! fraction of each query's values, as Milvus's SPARSE_INVERTED_INDEX does; both make search
//! approximate and both default to 0 (exact). BM25 fields ignore `drop_ratio_build`: their
//! statistics need every posting.
//!
//! Only rows that share at least one index with the query are hits (a row with no overlap has
//! no score to rank, as in Milvus).
//!
//! BM25 (Milvus's / Lucene's variant): for query term counts `q_t` and document term counts
//! `f_t`, `score = sum_t q_t * idf_t * f_t * (k1 + 1) / (f_t + k1 * (1 - b + b * dl / avgdl))`
//! with `idf_t = ln(1 + (N - n_t + 0.5) / (n_t + 0.5))`. `N`, `n_t` (rows containing t) and
//! `avgdl` (mean row length; a row's length is the sum of its values) are computed at search
//! time over every live row of the collection, in all partitions, whatever the filter: scores do
//! not depend on the filter, and deleted rows stop counting as soon as they are deleted.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use quiver_core::{ColumnData, Error, Result};

use crate::collection::{Segment, State};

/// BM25's inverse document frequency of a term in `df` of `n` rows (Lucene's, never negative).
pub fn bm25_idf(n: usize, df: usize) -> f32 {
    let (n, df) = (n as f64, df as f64);
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln() as f32
}

/// BM25's term-frequency part for a term counted `tf` times in a row of length `dl`.
pub fn bm25_tf(tf: f32, dl: f32, avgdl: f32, k1: f32, b: f32) -> f32 {
    let norm = if avgdl > 0.0 { dl / avgdl } else { 1.0 };
    tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * norm))
}

/// How a sparse field is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SparseMetric {
    Ip,
    Bm25,
}

impl SparseMetric {
    pub fn name(self) -> &'static str {
        match self {
            SparseMetric::Ip => "IP",
            SparseMetric::Bm25 => "BM25",
        }
    }
}

/// Build and search parameters of a sparse field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SparseParams {
    pub k1: f32,
    pub b: f32,
    pub drop_ratio_build: f32,
    pub drop_ratio_search: f32,
}

impl Default for SparseParams {
    fn default() -> Self {
        SparseParams {
            k1: 1.2,
            b: 0.75,
            drop_ratio_build: 0.0,
            drop_ratio_search: 0.0,
        }
    }
}

fn param(params: &BTreeMap<String, String>, key: &str) -> Result<Option<f32>> {
    match params.get(key) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<f32>()
            .map(Some)
            .map_err(|_| Error::InvalidArgument(format!("{key} must be a number, got {v:?}"))),
    }
}

fn in_range(key: &str, v: f32, lo: f32, hi: f32, hi_open: bool) -> Result<f32> {
    let ok = v >= lo && if hi_open { v < hi } else { v <= hi };
    if ok {
        Ok(v)
    } else {
        let close = if hi_open { ")" } else { "]" };
        Err(Error::InvalidArgument(format!(
            "{key}={v} is not allowed (must be in [{lo}, {hi}{close})"
        )))
    }
}

impl SparseParams {
    /// The build parameters of an index definition (Milvus's ranges).
    pub fn from_index(params: &BTreeMap<String, String>) -> Result<SparseParams> {
        let mut p = SparseParams::default();
        if let Some(v) = param(params, "bm25_k1")? {
            p.k1 = in_range("bm25_k1", v, 1.2, 2.0, false)?;
        }
        if let Some(v) = param(params, "bm25_b")? {
            p.b = in_range("bm25_b", v, 0.0, 1.0, false)?;
        }
        if let Some(v) = param(params, "drop_ratio_build")? {
            p.drop_ratio_build = in_range("drop_ratio_build", v, 0.0, 1.0, true)?;
        }
        if let Some(algo) = params.get("inverted_index_algo") {
            let a = algo.trim().to_ascii_uppercase();
            if !matches!(a.as_str(), "DAAT_MAXSCORE" | "DAAT_WAND" | "TAAT_NAIVE") {
                return Err(Error::InvalidArgument(format!(
                    "inverted_index_algo {algo} is not allowed (DAAT_MAXSCORE, DAAT_WAND or TAAT_NAIVE)"
                )));
            }
        }
        Ok(p)
    }

    /// Apply search parameters (`drop_ratio_search`).
    pub fn with_search(
        mut self,
        params: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self> {
        if let Some(v) = params.get("drop_ratio_search") {
            let x = v
                .as_f64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or_else(|| {
                    Error::InvalidArgument(format!("drop_ratio_search must be a number, got {v}"))
                })?;
            self.drop_ratio_search = in_range("drop_ratio_search", x as f32, 0.0, 1.0, true)?;
        }
        Ok(self)
    }
}

/// Term -> postings of one segment's sparse column.
#[derive(Debug, Default, Clone)]
pub struct InvertedIndex {
    postings: HashMap<u32, Vec<(u32, f32)>>,
    /// Per row: the sum of its values (BM25 row length), over all of its values.
    doc_len: Vec<f32>,
    total_len: f64,
}

impl InvertedIndex {
    /// Index column `field` of a segment's data, leaving out the smallest `drop_ratio` of its
    /// values (by magnitude).
    pub fn build(col: &quiver_core::Column, drop_ratio: f32) -> InvertedIndex {
        let ColumnData::Sparse(sc) = &col.data else {
            return InvertedIndex::default();
        };
        let threshold = if drop_ratio > 0.0 && !sc.values.is_empty() {
            let mut mags: Vec<f32> = sc.values.iter().map(|v| v.abs()).collect();
            let cut = ((mags.len() as f32 * drop_ratio) as usize).min(mags.len() - 1);
            let (_, t, _) = mags.select_nth_unstable_by(cut, |a, b| a.total_cmp(b));
            *t
        } else {
            f32::NEG_INFINITY
        };
        let mut ix = InvertedIndex::default();
        ix.extend(col, threshold);
        ix
    }

    /// Index the rows of `col` after the ones already indexed, keeping values of magnitude at
    /// least `threshold`.
    fn extend(&mut self, col: &quiver_core::Column, threshold: f32) {
        let ColumnData::Sparse(sc) = &col.data else {
            return;
        };
        for r in self.doc_len.len()..sc.len() {
            let (ix, vs) = sc.row(r);
            let len: f32 = vs.iter().sum();
            self.doc_len.push(len);
            if col.is_null(r) {
                continue;
            }
            self.total_len += len as f64;
            for (&i, &v) in ix.iter().zip(vs) {
                if v.abs() >= threshold {
                    self.postings.entry(i).or_default().push((r as u32, v));
                }
            }
        }
    }

    /// Rows of this segment that contain `term` and are live.
    fn live_df(&self, term: u32, seg: &Segment) -> usize {
        let Some(p) = self.postings.get(&term) else {
            return 0;
        };
        if seg.deleted.is_empty() {
            return p.len();
        }
        p.iter().filter(|(r, _)| !seg.deleted.contains(*r)).count()
    }

    /// (rows, total length) of the live, non-NULL rows.
    fn live_len(&self, seg: &Segment, col: &quiver_core::Column) -> (usize, f64) {
        let mut n = seg.live_rows();
        let mut total = self.total_len;
        if let Some(valid) = &col.valid {
            n -= valid
                .iter()
                .enumerate()
                .filter(|(r, ok)| !**ok && seg.is_live(*r))
                .count();
        }
        for r in seg.deleted.iter() {
            let r = r as usize;
            if !col.is_null(r) {
                total -= self.doc_len.get(r).copied().unwrap_or(0.0) as f64;
            }
        }
        (n, total)
    }

    /// Score every candidate row (bit set in `bits`) sharing a term with the query; returns
    /// (score, row) pairs in no particular order.
    fn score(
        &self,
        q: &WeightedQuery,
        bits: &[u64],
        bm25: Option<(f32, f32, f32)>,
    ) -> Vec<(f32, u32)> {
        let mut acc: HashMap<u32, f32> = HashMap::new();
        let mut dense: Vec<f32> = Vec::new();
        let use_dense = self.doc_len.len() <= 1 << 22;
        let mut touched: Vec<u32> = Vec::new();
        if use_dense {
            dense = vec![f32::NAN; self.doc_len.len()];
        }
        for &(term, w) in &q.terms {
            let Some(p) = self.postings.get(&term) else {
                continue;
            };
            for &(r, v) in p {
                let ri = r as usize;
                if bits
                    .get(ri / 64)
                    .is_none_or(|w| w & (1u64 << (ri % 64)) == 0)
                {
                    continue;
                }
                let s = match bm25 {
                    None => w * v,
                    Some((k1, b, avgdl)) => w * bm25_tf(v, self.doc_len[ri], avgdl, k1, b),
                };
                if use_dense {
                    let slot = &mut dense[ri];
                    if slot.is_nan() {
                        *slot = s;
                        touched.push(r);
                    } else {
                        *slot += s;
                    }
                } else {
                    *acc.entry(r).or_insert(0.0) += s;
                }
            }
        }
        if use_dense {
            touched
                .into_iter()
                .map(|r| (dense[r as usize], r))
                .collect()
        } else {
            acc.into_iter().map(|(r, s)| (s, r)).collect()
        }
    }
}

/// A query after `drop_ratio_search` and BM25 weighting: (term, weight) pairs.
#[derive(Debug, Clone, Default)]
pub struct WeightedQuery {
    terms: Vec<(u32, f32)>,
}

/// What a sparse search needs for every segment: the inverted indexes and the weighted queries.
pub struct Prepared {
    indexes: HashMap<u64, Arc<InvertedIndex>>,
    queries: Vec<WeightedQuery>,
    /// (k1, b, avgdl) for BM25.
    bm25: Option<(f32, f32, f32)>,
}

fn drop_small(indices: &[u32], values: &[f32], ratio: f32) -> Vec<(u32, f32)> {
    let mut pairs: Vec<(u32, f32)> = indices
        .iter()
        .copied()
        .zip(values.iter().copied())
        .collect();
    if ratio > 0.0 && pairs.len() > 1 {
        let drop = (pairs.len() as f32 * ratio) as usize;
        if drop > 0 {
            let mut mags: Vec<f32> = pairs.iter().map(|p| p.1.abs()).collect();
            mags.sort_by(|a, b| a.total_cmp(b));
            let t = mags[drop.min(mags.len() - 1)];
            pairs.retain(|p| p.1.abs() >= t);
        }
    }
    pairs
}

/// The inverted index of column `field` of `seg`, from the segment's cache: built once for a
/// sealed segment, extended with the new rows for a growing one (exact: no pruning).
fn index_of(seg: &Segment, field: usize, drop_ratio: f32) -> Arc<InvertedIndex> {
    let col = &seg.data.columns[field];
    let mut cache = seg.sparse.lock();
    if seg.sealed {
        let key = (field, drop_ratio.to_bits());
        return Arc::clone(
            cache
                .entry(key)
                .or_insert_with(|| Arc::new(InvertedIndex::build(col, drop_ratio))),
        );
    }
    let entry = cache.entry((field, 0)).or_default();
    if entry.doc_len.len() > col.len() {
        // Not an append-only history (cannot happen today): start over.
        *entry = Arc::default();
    }
    if entry.doc_len.len() < col.len() {
        // Copies only when a search still holds the previous version.
        Arc::make_mut(entry).extend(col, f32::NEG_INFINITY);
    }
    Arc::clone(entry)
}

/// Build (or fetch) every segment's index and weight the queries (BM25 statistics over every
/// live row of the collection).
pub fn prepare(
    st: &State,
    field: usize,
    metric: SparseMetric,
    params: SparseParams,
    queries: &[(Vec<u32>, Vec<f32>)],
) -> Prepared {
    let drop_build = match metric {
        SparseMetric::Ip => params.drop_ratio_build,
        SparseMetric::Bm25 => 0.0,
    };
    let indexes: HashMap<u64, Arc<InvertedIndex>> = st
        .segments
        .values()
        .map(|s| (s.id, index_of(s, field, drop_build)))
        .collect();
    let mut weighted: Vec<WeightedQuery> = queries
        .iter()
        .map(|(i, v)| WeightedQuery {
            terms: drop_small(i, v, params.drop_ratio_search),
        })
        .collect();
    let mut bm25 = None;
    if metric == SparseMetric::Bm25 {
        let (mut n, mut total) = (0usize, 0f64);
        for s in st.segments.values() {
            let (sn, st_len) = indexes[&s.id].live_len(s, &s.data.columns[field]);
            n += sn;
            total += st_len;
        }
        let avgdl = if n > 0 {
            (total / n as f64) as f32
        } else {
            0.0
        };
        let mut idf: HashMap<u32, f32> = HashMap::new();
        for q in &weighted {
            for &(t, _) in &q.terms {
                idf.entry(t).or_insert_with(|| {
                    let df: usize = st
                        .segments
                        .values()
                        .map(|s| indexes[&s.id].live_df(t, s))
                        .sum();
                    bm25_idf(n, df)
                });
            }
        }
        for q in &mut weighted {
            for (t, w) in &mut q.terms {
                *w *= idf[t];
            }
        }
        bm25 = Some((params.k1, params.b, avgdl));
    }
    Prepared {
        indexes,
        queries: weighted,
        bm25,
    }
}

impl Prepared {
    /// (score, row) of every candidate of `seg` that shares a term with query `qi`.
    pub fn score(&self, seg: &Segment, qi: usize, bits: &[u64]) -> Vec<(f32, u32)> {
        match self.indexes.get(&seg.id) {
            Some(ix) => ix.score(&self.queries[qi], bits, self.bm25),
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_core::{Column, SparseColumn};

    #[test]
    fn scores_equal_a_dot_product_and_drop_ratio_prunes() {
        let col = Column::new(ColumnData::Sparse(SparseColumn {
            offsets: vec![0, 2, 3, 3, 5],
            indices: vec![1, 5, 5, 1, 9],
            values: vec![1.0, 2.0, 0.5, 3.0, 0.1],
        }));
        let ix = InvertedIndex::build(&col, 0.0);
        let q = WeightedQuery {
            terms: vec![(1, 2.0), (5, 1.0)],
        };
        let all = vec![u64::MAX];
        let mut got = ix.score(&q, &all, None);
        got.sort_by_key(|x| x.1);
        assert_eq!(got, vec![(4.0, 0), (0.5, 1), (6.0, 3)]);
        // Filtered rows are not scored.
        let got = ix.score(&q, &[0b0010], None);
        assert_eq!(got, vec![(0.5, 1)]);
        // Dropping the smallest 40% of values removes 0.1 and 0.5 from the postings.
        let pruned = InvertedIndex::build(&col, 0.4);
        let mut got = pruned.score(&q, &all, None);
        got.sort_by_key(|x| x.1);
        assert_eq!(got, vec![(4.0, 0), (6.0, 3)]);
        assert_eq!(
            drop_small(&[1, 2, 3, 4], &[0.1, 4.0, 0.2, 3.0], 0.5),
            vec![(2, 4.0), (4, 3.0)]
        );
    }

    #[test]
    fn index_params_are_checked() {
        let p = |k: &str, v: &str| {
            SparseParams::from_index(&BTreeMap::from([(k.to_string(), v.to_string())]))
        };
        assert_eq!(p("bm25_k1", "1.5").unwrap().k1, 1.5);
        assert!(p("bm25_k1", "0.5").is_err());
        assert!(p("bm25_b", "1.5").is_err());
        assert!(p("drop_ratio_build", "1").is_err());
        assert!(p("inverted_index_algo", "FAST").is_err());
        assert!(p("inverted_index_algo", "daat_maxscore").is_ok());
    }
}
