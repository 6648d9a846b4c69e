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
use quiver_simd::Metric;
use rayon::prelude::*;
use serde_json::Value as Json;

use crate::collection::{Segment, State};
use crate::filter::SegRow;
use crate::output::{OutColumn, OutputSpec};
use crate::pk::Pk;

/// Largest `offset + limit` of a search or query, as in Milvus.
pub const MAX_TOPK: usize = 16384;

/// A search over one vector field.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    /// The vector field; may be omitted when the collection has exactly one.
    pub anns_field: Option<String>,
    /// `nq` query vectors, row-major.
    pub vectors: Vec<Vec<f32>>,
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
}

/// Results for `nq` queries, flattened in query order.
#[derive(Debug, Clone, Default)]
pub struct SearchResult {
    pub metric: Option<Metric>,
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

fn cmp_hits(metric: Metric, a: &Hit, b: &Hit) -> Ordering {
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
    pub metric: Metric,
    pub filter: &'a Filter,
    pub partitions: Option<Vec<u64>>,
    pub k: usize,
    pub range: Option<(f32, f32)>,
    pub group_by: Option<usize>,
    pub group_size: usize,
    /// The field's index (id) and the validated search parameters, when it has one to build.
    pub index: Option<(u64, quiver_index::SearchParams)>,
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
    if plan.filter.is_always_true() {
        // Every live row: set all bits, then clear the deleted ones.
        let mut words = vec![u64::MAX; n.div_ceil(64)];
        if n % 64 != 0 {
            if let Some(last) = words.last_mut() {
                *last = (1u64 << (n % 64)) - 1;
            }
        }
        for r in seg.deleted.iter() {
            if let Some(w) = words.get_mut(r as usize / 64) {
                *w &= !(1u64 << (r % 64));
            }
        }
        return (n > seg.deleted.len() as usize).then_some(words);
    }
    let mut words = vec![0u64; n.div_ceil(64)];
    let all = false;
    let mut any = false;
    for r in 0..n {
        if !seg.is_live(r) {
            continue;
        }
        if all
            || plan.filter.eval(&SegRow {
                data: &seg.data,
                row: r,
            })
        {
            words[r / 64] |= 1 << (r % 64);
            any = true;
        }
    }
    any.then_some(words)
}

fn pk_of(seg: &Segment, pk_col: usize, row: usize) -> Pk {
    Pk::at(&seg.data.columns[pk_col], row)
}

/// Search the segments; returns per query the best hits (after offset), and the output columns.
pub fn execute(
    schema: &CollectionSchema,
    st: &State,
    plan: &Plan<'_>,
    queries: &[Vec<f32>],
    offset: usize,
    out: &OutputSpec,
) -> SearchResult {
    let pk_col = schema.pk_index();
    let nq = queries.len();
    let segs: Vec<&Segment> = st.segments.values().collect();
    // Filter first, in parallel across segments.
    let cands: Vec<Option<Vec<u64>>> = segs.par_iter().map(|s| candidates(s, plan)).collect();
    let flat: Vec<f32> = queries.iter().flatten().copied().collect();
    let exhaustive = plan.range.is_some() || plan.group_by.is_some();
    // Per segment, per query: candidate hits.
    let per_seg: Vec<Vec<Vec<Hit>>> = segs
        .par_iter()
        .zip(cands.par_iter())
        .map(|(seg, bits)| {
            let Some(bits) = bits else {
                return vec![Vec::new(); nq];
            };
            let ColumnData::Vector(vc) = &seg.data.columns[plan.field].data else {
                return vec![Vec::new(); nq];
            };
            let Some(base) = vc.as_f32() else {
                return vec![Vec::new(); nq];
            };
            if let (false, Some((iid, params))) = (exhaustive, &plan.index) {
                if let Some(ix) = seg.index(*iid) {
                    let allowed: usize = bits.iter().map(|w| w.count_ones() as usize).sum();
                    if !quiver_index::should_brute_force(allowed, seg.rows(), plan.k) {
                        let allow = (allowed < seg.rows()).then_some(bits.as_slice());
                        return queries
                            .par_iter()
                            .map(|q| {
                                ix.ann
                                    .search(base, q, plan.k, params, allow)
                                    .into_iter()
                                    .map(|(score, row)| Hit {
                                        score,
                                        pk: pk_of(seg, pk_col, row as usize),
                                        seg: seg.id,
                                        row,
                                    })
                                    .collect()
                            })
                            .collect();
                    }
                }
            }
            if seg.sealed && !exhaustive {
                let norms = if plan.metric == Metric::Ip {
                    None
                } else {
                    seg.norms(plan.field)
                };
                let res = quiver_simd::search_batch(
                    plan.metric,
                    &flat,
                    nq,
                    base,
                    seg.rows(),
                    plan.dim,
                    norms.as_deref().map(|v| v.as_slice()),
                    plan.k,
                    quiver_simd::Filter::Bitmap(bits),
                );
                res.into_iter()
                    .map(|hits| {
                        hits.into_iter()
                            .map(|(score, row)| Hit {
                                score,
                                pk: pk_of(seg, pk_col, row as usize),
                                seg: seg.id,
                                row,
                            })
                            .collect()
                    })
                    .collect()
            } else {
                queries
                    .par_iter()
                    .map(|q| scan(seg, plan, q, base, bits, pk_col, exhaustive))
                    .collect()
            }
        })
        .collect();
    let mut result = SearchResult {
        metric: Some(plan.metric),
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

/// Per-query scan of one segment with (score, key) ordering; keeps at most `k` unless exhaustive.
fn scan(
    seg: &Segment,
    plan: &Plan<'_>,
    q: &[f32],
    base: &[f32],
    bits: &[u64],
    pk_col: usize,
    exhaustive: bool,
) -> Vec<Hit> {
    let mut hits: Vec<Hit> = Vec::new();
    let dim = plan.dim;
    let metric = plan.metric;
    let cap = plan.k;
    for (wi, &w) in bits.iter().enumerate() {
        let mut w = w;
        while w != 0 {
            let r = wi * 64 + w.trailing_zeros() as usize;
            w &= w - 1;
            let score = metric.distance(q, &base[r * dim..(r + 1) * dim]);
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
