//! Vector search over a collection's segments.
//!
//! For every segment the filter is evaluated first (with deletes and the partition scope) into a
//! candidate bitmap; distances are computed only for candidates.
//!
//! Planner, per segment: a sealed segment with a built index of the field (index.rs) is searched
//! through the index, which admits only candidate rows, unless the candidates are few enough that
//! scanning them exactly is cheaper (`quiver_index::should_brute_force`, a cost model fitted on
//! wn-gloss: very selective filters scan). Range search and group-by need every candidate in
//! range, not a top-k, so they always scan. Index scores are exact (re-scored with the f32
//! rows), so results from indexed and exact segments merge by score. Sealed segments are sorted by
//! primary key, so the SIMD batch kernel's "ties by smaller row" is "ties by smaller key"; growing
//! segments are scanned per query with an explicit (score, key) order. Per-segment top lists are
//! merged by (score, key): results equal a brute-force reference, ties broken by primary key.
//!
//! Scores are Milvus's: L2 = squared distance (smaller first), IP = inner product, COSINE =
//! cosine similarity (larger first). Range search keeps `range_filter <= d < radius` for L2 and
//! `radius < d <= range_filter` for IP/COSINE. Group-by returns up to `limit` groups (by their
//! best hit), each with up to `group_size` hits.

use std::cmp::Ordering;
use std::collections::HashMap;

use quiver_core::{CollectionSchema, ColumnData, Error, Result};
use quiver_expr::Filter;
use quiver_simd::{BinaryMetric, Metric};
use rayon::prelude::*;
use serde_json::Value as Json;

use crate::collection::{Segment, State};
use crate::output::{OutColumn, OutputSpec};
use crate::pk::Pk;
pub use crate::sparse::{SparseMetric, SparseParams};

/// Largest `offset + limit` of a search or query, as in Milvus.
pub const MAX_TOPK: usize = 16384;

/// A search over one vector field.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    /// The vector field; may be omitted when the collection has exactly one.
    pub anns_field: Option<String>,
    /// `nq` query vectors (float-like vector fields: FLOAT, FLOAT16, BFLOAT16, INT8).
    pub vectors: Vec<Vec<f32>>,
    /// `nq` packed query vectors (BINARY_VECTOR fields; `dim / 8` bytes each).
    pub binary_vectors: Vec<Vec<u8>>,
    /// `nq` sparse query vectors (SPARSE_FLOAT_VECTOR fields): sorted indices and values.
    pub sparse_vectors: Vec<(Vec<u32>, Vec<f32>)>,
    /// `nq` query texts, for the output field of a BM25 function (analysed with its input
    /// field's analyzer).
    pub texts: Vec<String>,
    /// Must agree with the field's index metric when given.
    pub metric: Option<String>,
    pub limit: usize,
    pub offset: usize,
    pub filter: String,
    pub filter_params: HashMap<String, Json>,
    pub output_fields: Vec<String>,
    pub partitions: Vec<String>,
    pub radius: Option<f64>,
    pub range_filter: Option<f64>,
    pub group_by: Option<String>,
    pub group_size: Option<usize>,
    pub strict_group_size: bool,
    /// Index search parameters (`ef`, `nprobe`, ...).
    pub params: serde_json::Map<String, Json>,
    /// Search exactly even where an index is built (the reference for recall measurements).
    pub exact: bool,
    /// Search with this index of the field (its current one, or a version staged beside it by
    /// `Engine::stage_index`) instead of the current one: how a staged version is verified
    /// before it is promoted.
    pub index_id: Option<u64>,
}

impl SearchRequest {
    /// The number of queries, whatever their kind.
    pub fn nq(&self) -> usize {
        self.vectors
            .len()
            .max(self.binary_vectors.len())
            .max(self.sparse_vectors.len())
            .max(self.texts.len())
    }
}

/// Results for `nq` queries, flattened in query order.
#[derive(Debug, Clone, Default)]
pub struct SearchResult {
    /// The metric of float-like fields (None for binary fields; see `binary_metric`).
    pub metric: Option<Metric>,
    pub binary_metric: Option<BinaryMetric>,
    /// The metric of sparse fields (`metric` is then IP, for fusion).
    pub sparse_metric: Option<SparseMetric>,
    /// Hits per query.
    pub topks: Vec<usize>,
    pub pks: Vec<Pk>,
    pub scores: Vec<f32>,
    /// One column per output field, aligned with `pks`.
    pub fields: Vec<OutColumn>,
    /// The group-by field's value of every hit (group-by searches only).
    pub group_values: Option<OutColumn>,
    pub output_names: Vec<String>,
}

/// A candidate hit.
#[derive(Debug, Clone)]
struct Hit {
    score: f32,
    pk: Pk,
    seg: u64,
    row: u32,
}

/// How scores are computed and ordered: a float metric, or a binary one (lower is better).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VMetric {
    Float(Metric),
    Binary(BinaryMetric),
    Sparse(SparseMetric),
}

impl VMetric {
    pub fn higher_is_better(self) -> bool {
        match self {
            VMetric::Float(m) => m.higher_is_better(),
            VMetric::Binary(m) => m.higher_is_better(),
            VMetric::Sparse(_) => true,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            VMetric::Float(m) => m.as_str(),
            VMetric::Binary(m) => m.name(),
            VMetric::Sparse(m) => m.name(),
        }
    }

    /// The metric named `name` for a vector field of type `t` (Milvus's error otherwise).
    pub fn parse(name: &str, t: quiver_core::DataType) -> Result<VMetric> {
        if t == quiver_core::DataType::SparseFloatVector {
            return match name.trim().to_ascii_uppercase().as_str() {
                "IP" => Ok(VMetric::Sparse(SparseMetric::Ip)),
                "BM25" => Ok(VMetric::Sparse(SparseMetric::Bm25)),
                _ => Err(Error::InvalidArgument(format!(
                    "metric type {name} is not supported for sparse vectors (use IP, or BM25 on the output of a BM25 function)"
                ))),
            };
        }
        if t == quiver_core::DataType::BinaryVector {
            BinaryMetric::parse(name).map(VMetric::Binary).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "metric type {name} is not supported for binary vectors (use HAMMING or JACCARD)"
                ))
            })
        } else {
            Metric::parse(name).map(VMetric::Float).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "metric type {name} is not supported for {} (use L2, IP or COSINE)",
                    t.name()
                ))
            })
        }
    }

    /// Milvus's default metric for a vector field type.
    pub fn default_name(t: quiver_core::DataType) -> &'static str {
        match t {
            quiver_core::DataType::BinaryVector => "HAMMING",
            quiver_core::DataType::SparseFloatVector => "IP",
            _ => "COSINE",
        }
    }
}

/// The query vectors of a search, by kind.
#[derive(Debug, Clone, Copy)]
pub enum Queries<'a> {
    F32(&'a [Vec<f32>]),
    Binary(&'a [Vec<u8>]),
    Sparse(&'a [(Vec<u32>, Vec<f32>)]),
}

impl Queries<'_> {
    pub fn len(&self) -> usize {
        match self {
            Queries::F32(q) => q.len(),
            Queries::Binary(q) => q.len(),
            Queries::Sparse(q) => q.len(),
        }
    }
}

fn cmp_hits(metric: VMetric, a: &Hit, b: &Hit) -> Ordering {
    let by_score = if metric.higher_is_better() {
        b.score.partial_cmp(&a.score)
    } else {
        a.score.partial_cmp(&b.score)
    };
    by_score
        .unwrap_or(Ordering::Equal)
        .then_with(|| a.pk.cmp(&b.pk))
}

/// The parameters after validation.
pub struct Plan<'a> {
    pub field: usize,
    pub dim: usize,
    pub metric: VMetric,
    pub filter: &'a Filter,
    pub partitions: Option<Vec<u64>>,
    pub k: usize,
    pub range: Option<(f32, f32)>,
    pub group_by: Option<usize>,
    pub group_size: usize,
    /// The field's index (id) and the validated search parameters, when it has one to build.
    pub index: Option<(u64, quiver_index::SearchParams)>,
    /// Sparse fields: BM25 and pruning parameters.
    pub sparse: SparseParams,
}

impl Plan<'_> {
    fn in_range(&self, score: f32) -> bool {
        match self.range {
            None => true,
            Some((radius, range_filter)) => {
                if self.metric.higher_is_better() {
                    score > radius && score <= range_filter
                } else {
                    score < radius && score >= range_filter
                }
            }
        }
    }
}

/// The candidate bitmap of a segment: live, in scope, passing the filter.
fn candidates(seg: &Segment, plan: &Plan<'_>) -> Option<Vec<u64>> {
    if let Some(parts) = &plan.partitions {
        if !parts.contains(&seg.partition) {
            return None;
        }
    }
    let n = seg.rows();
    // Every live row: set all bits, then clear the deleted ones.
    let mut live = vec![u64::MAX; n.div_ceil(64)];
    if !n.is_multiple_of(64) {
        if let Some(last) = live.last_mut() {
            *last = (1u64 << (n % 64)) - 1;
        }
    }
    for r in seg.deleted.iter() {
        if let Some(w) = live.get_mut(r as usize / 64) {
            *w &= !(1u64 << (r % 64));
        }
    }
    // Rows without a vector (an added field not filled in yet) are never candidates.
    let mut nulls = false;
    if let Some(valid) = seg
        .data
        .columns
        .get(plan.field)
        .and_then(|c| c.valid.as_ref())
    {
        for (r, ok) in valid.iter().enumerate() {
            if !ok {
                live[r / 64] &= !(1u64 << (r % 64));
                nulls = true;
            }
        }
    }
    if plan.filter.is_always_true() {
        return if nulls {
            live.iter().any(|w| *w != 0).then_some(live)
        } else {
            (n > seg.deleted.len() as usize).then_some(live)
        };
    }
    // Column at a time over typed slices (per row only for JSON / array conditions).
    let words = plan
        .filter
        .eval_bitmap(&crate::filter::SegColumns(&seg.data), &live);
    words.iter().any(|w| *w != 0).then_some(words)
}

fn pk_of(seg: &Segment, pk_col: usize, row: usize) -> Pk {
    Pk::at(&seg.data.columns[pk_col], row)
}

/// Search the segments; returns per query the best hits (after offset), and the output columns.
pub fn execute(
    schema: &CollectionSchema,
    st: &State,
    plan: &Plan<'_>,
    queries: Queries<'_>,
    offset: usize,
    out: &OutputSpec,
) -> SearchResult {
    let pk_col = schema.pk_index();
    let nq = queries.len();
    let segs: Vec<&Segment> = st.segments.values().collect();
    // Filter first, in parallel across segments.
    let cands: Vec<Option<Vec<u64>>> = segs.par_iter().map(|s| candidates(s, plan)).collect();
    let exhaustive = plan.range.is_some() || plan.group_by.is_some();
    let sparse = match (queries, plan.metric) {
        (Queries::Sparse(qs), VMetric::Sparse(m)) => {
            Some(crate::sparse::prepare(st, plan.field, m, plan.sparse, qs))
        }
        _ => None,
    };
    // Per segment, per query: candidate hits.
    let per_seg: Vec<Vec<Vec<Hit>>> = segs
        .par_iter()
        .zip(cands.par_iter())
        .map(|(seg, bits)| match (bits, &sparse) {
            (None, _) => vec![Vec::new(); nq],
            (Some(bits), Some(prep)) => (0..nq)
                .into_par_iter()
                .map(|qi| {
                    let scored = prep.score(seg, qi, bits);
                    top_hits(seg, plan, pk_col, exhaustive, scored)
                })
                .collect(),
            (Some(bits), None) => search_segment(seg, plan, queries, bits, pk_col, exhaustive),
        })
        .collect();
    let mut result = SearchResult {
        metric: match plan.metric {
            VMetric::Float(m) => Some(m),
            // Sparse scores are similarities, fused like inner products in hybrid search.
            VMetric::Sparse(_) => Some(Metric::Ip),
            VMetric::Binary(_) => None,
        },
        binary_metric: match plan.metric {
            VMetric::Binary(m) => Some(m),
            VMetric::Float(_) | VMetric::Sparse(_) => None,
        },
        sparse_metric: match plan.metric {
            VMetric::Sparse(m) => Some(m),
            _ => None,
        },
        output_names: out.names.clone(),
        ..Default::default()
    };
    let mut hit_locs: Vec<(u64, u32)> = Vec::new();
    let mut group_locs: Vec<(u64, u32)> = Vec::new();
    for qi in 0..nq {
        let mut all: Vec<Hit> = per_seg.iter().flat_map(|s| s[qi].iter().cloned()).collect();
        all.sort_by(|a, b| cmp_hits(plan.metric, a, b));
        let chosen: Vec<Hit> = match plan.group_by {
            None => all
                .into_iter()
                .skip(offset)
                .take(plan.k.saturating_sub(offset))
                .collect(),
            Some(g) => group(st, g, plan, all, offset),
        };
        result.topks.push(chosen.len());
        for h in chosen {
            result.pks.push(h.pk);
            result.scores.push(h.score);
            hit_locs.push((h.seg, h.row));
            if plan.group_by.is_some() {
                group_locs.push((h.seg, h.row));
            }
        }
    }
    result.fields = out.gather(schema, st, &hit_locs);
    if let Some(g) = plan.group_by {
        let spec = OutputSpec {
            fields: vec![g],
            dynamic: None,
            names: vec![],
        };
        result.group_values = spec.gather(schema, st, &group_locs).into_iter().next();
    }
    result
}

fn hits_of(seg: &Segment, pk_col: usize, res: Vec<(f32, u32)>) -> Vec<Hit> {
    res.into_iter()
        .map(|(score, row)| Hit {
            score,
            pk: pk_of(seg, pk_col, row as usize),
            seg: seg.id,
            row,
        })
        .collect()
}

/// One segment, every query: through its index (unless the filter leaves few candidates), by the
/// batched exact kernel (sealed), or by a scan (growing data, range search, group-by).
fn search_segment(
    seg: &Segment,
    plan: &Plan<'_>,
    queries: Queries<'_>,
    bits: &[u64],
    pk_col: usize,
    exhaustive: bool,
) -> Vec<Vec<Hit>> {
    let nq = queries.len();
    let ColumnData::Vector(vc) = &seg.data.columns[plan.field].data else {
        return vec![Vec::new(); nq];
    };
    let index = match (exhaustive, &plan.index) {
        (false, Some((iid, params))) => seg.index(*iid).and_then(|ix| {
            let allowed: usize = bits.iter().map(|w| w.count_ones() as usize).sum();
            (!quiver_index::should_brute_force(allowed, seg.rows(), plan.k))
                .then(|| (ix, params, (allowed < seg.rows()).then_some(bits)))
        }),
        _ => None,
    };
    match (queries, plan.metric) {
        (Queries::Binary(qs), VMetric::Binary(bm)) => {
            let Some(base) = vc.as_binary() else {
                return vec![Vec::new(); nq];
            };
            let width = vc.row_width();
            if let Some((ix, params, allow)) = index {
                return qs
                    .par_iter()
                    .map(|q| {
                        hits_of(
                            seg,
                            pk_col,
                            ix.ann.search_binary(base, q, plan.k, params, allow),
                        )
                    })
                    .collect();
            }
            qs.par_iter()
                .map(|q| {
                    if exhaustive {
                        scan(seg, plan, bits, pk_col, exhaustive, |r| {
                            bm.distance(q, &base[r * width..(r + 1) * width])
                        })
                    } else {
                        let res = quiver_simd::binary_search_one(
                            bm,
                            q,
                            base,
                            width,
                            quiver_simd::Filter::Bitmap(bits),
                            plan.k,
                        );
                        hits_of(seg, pk_col, res)
                    }
                })
                .collect()
        }
        (Queries::F32(qs), VMetric::Float(metric)) => {
            let Some(base) = seg.f32_rows(plan.field) else {
                return vec![Vec::new(); nq];
            };
            let base: &[f32] = &base;
            if let Some((ix, params, allow)) = index {
                return qs
                    .par_iter()
                    .map(|q| hits_of(seg, pk_col, ix.ann.search(base, q, plan.k, params, allow)))
                    .collect();
            }
            if seg.sealed && !exhaustive {
                let norms = if metric == Metric::Ip {
                    None
                } else {
                    seg.norms(plan.field)
                };
                let flat: Vec<f32> = qs.iter().flatten().copied().collect();
                let res = quiver_simd::search_batch(
                    metric,
                    &flat,
                    nq,
                    base,
                    seg.rows(),
                    plan.dim,
                    norms.as_deref().map(|v| v.as_slice()),
                    plan.k,
                    quiver_simd::Filter::Bitmap(bits),
                );
                res.into_iter().map(|h| hits_of(seg, pk_col, h)).collect()
            } else {
                let dim = plan.dim;
                qs.par_iter()
                    .map(|q| {
                        scan(seg, plan, bits, pk_col, exhaustive, |r| {
                            metric.distance(q, &base[r * dim..(r + 1) * dim])
                        })
                    })
                    .collect()
            }
        }
        // The caller pairs binary queries with binary metrics.
        _ => vec![Vec::new(); nq],
    }
}

/// The best `k` (all, when exhaustive) of a segment's scored rows that are in range, ordered by
/// (score, key).
fn top_hits(
    seg: &Segment,
    plan: &Plan<'_>,
    pk_col: usize,
    exhaustive: bool,
    scored: Vec<(f32, u32)>,
) -> Vec<Hit> {
    let mut scored: Vec<(f32, u32)> = scored
        .into_iter()
        .filter(|(s, _)| plan.in_range(*s))
        .collect();
    if !exhaustive && scored.len() > plan.k && plan.k > 0 {
        // Rows of a sealed segment are in key order, so (score desc, row asc) is (score, key)
        // there; growing rows are not, so keep every tie of the k-th score and order by key.
        let kth = {
            let (_, x, _) = scored.select_nth_unstable_by(plan.k - 1, |a, b| b.0.total_cmp(&a.0));
            x.0
        };
        scored.retain(|(s, _)| *s >= kth);
    }
    let mut hits = hits_of(seg, pk_col, scored);
    hits.sort_by(|a, b| cmp_hits(plan.metric, a, b));
    if !exhaustive {
        hits.truncate(plan.k);
    }
    hits
}

/// Per-query scan of one segment's candidates with (score, key) ordering; keeps at most `k`
/// unless exhaustive. `score(row)` computes the metric.
fn scan(
    seg: &Segment,
    plan: &Plan<'_>,
    bits: &[u64],
    pk_col: usize,
    exhaustive: bool,
    score: impl Fn(usize) -> f32,
) -> Vec<Hit> {
    let mut hits: Vec<Hit> = Vec::new();
    let metric = plan.metric;
    let cap = plan.k;
    for (wi, &w) in bits.iter().enumerate() {
        let mut w = w;
        while w != 0 {
            let r = wi * 64 + w.trailing_zeros() as usize;
            w &= w - 1;
            let score = score(r);
            if !plan.in_range(score) {
                continue;
            }
            let h = Hit {
                score,
                pk: pk_of(seg, pk_col, r),
                seg: seg.id,
                row: r as u32,
            };
            hits.push(h);
            // Keep memory bounded: prune to the best `cap` from time to time.
            if !exhaustive && hits.len() >= cap.max(16) * 4 {
                hits.sort_by(|a, b| cmp_hits(metric, a, b));
                hits.truncate(cap);
            }
        }
    }
    if !exhaustive {
        hits.sort_by(|a, b| cmp_hits(metric, a, b));
        hits.truncate(cap);
    }
    hits
}

/// Group-by: walk hits best-first, collect up to `limit` groups (skipping `offset` groups),
/// each with up to `group_size` hits; return the hits group by group.
fn group(st: &State, field: usize, plan: &Plan<'_>, sorted: Vec<Hit>, offset: usize) -> Vec<Hit> {
    let limit = plan.k.saturating_sub(offset);
    let mut groups: Vec<(String, Vec<Hit>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for h in sorted {
        let Some(seg) = st.segments.get(&h.seg) else {
            continue;
        };
        let key = serde_json::to_string(&seg.data.columns[field].cell(h.row as usize).to_json())
            .unwrap_or_default();
        match index.get(&key) {
            Some(&gi) => {
                if groups[gi].1.len() < plan.group_size {
                    groups[gi].1.push(h);
                }
            }
            None => {
                if groups.len() >= offset + limit {
                    // Enough groups; keep filling the chosen ones.
                    continue;
                }
                index.insert(key.clone(), groups.len());
                groups.push((key, vec![h]));
            }
        }
        if groups.len() >= offset + limit && groups.iter().all(|g| g.1.len() >= plan.group_size) {
            break;
        }
    }
    groups.into_iter().skip(offset).flat_map(|g| g.1).collect()
}

/// Validate the search parameters (Milvus's limits and messages).
pub fn check_limits(limit: usize, offset: usize) -> Result<()> {
    if limit == 0 {
        return Err(Error::InvalidArgument(
            "topk (limit) must be at least 1".into(),
        ));
    }
    if limit.saturating_add(offset) > MAX_TOPK {
        return Err(Error::InvalidArgument(format!(
            "topk + offset should be in range [1, {MAX_TOPK}], but got {}",
            limit.saturating_add(offset)
        )));
    }
    Ok(())
}
