//! Hybrid (multi-vector) search: several searches over the same collection, fused per query by
//! a ranker, as Milvus's HybridSearch does.
//!
//! - RRF: `score(key) = sum over sub-searches of 1 / (k + rank)`, rank starting at 1 (k = 60 by
//!   default).
//! - Weighted: `score(key) = sum of weight_i * norm_i(score_i)`. With normalisation (the default,
//!   like Milvus's `norm_score`), scores are first mapped to [0, 1] so that larger is better for
//!   every metric: IP `0.5 + atan(s)/pi`, L2 `1 - 2*atan(s)/pi`, COSINE `(1 + s)/2`.
//!
//! Fused results are ordered by fused score (descending), ties by primary key; offset and limit
//! apply after fusion. Every sub-search must search the same number of queries.

use std::collections::HashMap;

use quiver_core::{Error, Result};
use quiver_simd::Metric;

use crate::output::OutputSpec;
use crate::pk::Pk;
use crate::{Engine, SearchRequest, SearchResult, MAX_TOPK};

/// How sub-search results are fused.
#[derive(Debug, Clone, PartialEq)]
pub enum Ranker {
    Rrf { k: f64 },
    Weighted { weights: Vec<f64>, normalize: bool },
}

fn normalize(metric: Metric, s: f32) -> f64 {
    let s = s as f64;
    match metric {
        Metric::Ip => 0.5 + s.atan() / std::f64::consts::PI,
        Metric::L2 => 1.0 - 2.0 * s.atan() / std::f64::consts::PI,
        Metric::Cosine => (1.0 + s) / 2.0,
    }
}

/// A hybrid search: sub-searches, a ranker, and what to return after fusion.
#[derive(Debug, Clone)]
pub struct HybridRequest {
    /// Each with its own vectors, field, filter and limit.
    pub requests: Vec<SearchRequest>,
    pub ranker: Ranker,
    pub limit: usize,
    pub offset: usize,
    pub output_fields: Vec<String>,
}

impl Engine {
    /// Run the sub-searches, fuse them, and return `limit` hits per query after `offset`.
    pub fn hybrid_search(&self, db: &str, coll: &str, req: &HybridRequest) -> Result<SearchResult> {
        let HybridRequest {
            requests: reqs,
            ranker,
            limit,
            offset,
            output_fields,
        } = req;
        let (limit, offset) = (*limit, *offset);
        if reqs.is_empty() {
            return Err(Error::InvalidArgument(
                "hybrid search needs at least one search request".into(),
            ));
        }
        if reqs.len() > 1024 {
            return Err(Error::InvalidArgument(
                "at most 1024 search requests in a hybrid search".into(),
            ));
        }
        crate::search::check_limits(limit, offset)?;
        let nq = reqs[0].nq();
        if reqs.iter().any(|r| r.nq() != nq) {
            return Err(Error::InvalidArgument(
                "every request of a hybrid search must have the same number of query vectors"
                    .into(),
            ));
        }
        if let Ranker::Weighted { weights, .. } = ranker {
            if weights.len() != reqs.len() {
                return Err(Error::InvalidArgument(format!(
                    "the weighted ranker has {} weights but there are {} search requests",
                    weights.len(),
                    reqs.len()
                )));
            }
        }
        if let Ranker::Rrf { k } = ranker {
            if !(*k > 0.0 && *k < 16384.0) {
                return Err(Error::InvalidArgument(format!(
                    "the RRF parameter k must be in (0, 16384), got {k}"
                )));
            }
        }
        let mut subs = Vec::with_capacity(reqs.len());
        for r in reqs {
            let mut r = r.clone();
            r.output_fields = vec![];
            r.offset = 0;
            r.limit = r.limit.clamp(1, MAX_TOPK);
            subs.push(self.search(db, coll, &r)?);
        }
        let mut fused_per_query: Vec<Vec<(f64, Pk)>> = Vec::with_capacity(nq);
        for qi in 0..nq {
            let mut acc: HashMap<Pk, f64> = HashMap::new();
            for (si, res) in subs.iter().enumerate() {
                let start: usize = res.topks[..qi].iter().sum();
                // Binary metrics are distances (lower is better), normalised like L2.
                let metric = res.metric.unwrap_or(if res.binary_metric.is_some() {
                    Metric::L2
                } else {
                    Metric::Cosine
                });
                for (rank, j) in (start..start + res.topks[qi]).enumerate() {
                    let add = match ranker {
                        Ranker::Rrf { k } => 1.0 / (k + rank as f64 + 1.0),
                        Ranker::Weighted {
                            weights,
                            normalize: norm,
                        } => {
                            let s = if *norm {
                                normalize(metric, res.scores[j])
                            } else {
                                res.scores[j] as f64
                            };
                            weights[si] * s
                        }
                    };
                    *acc.entry(res.pks[j].clone()).or_insert(0.0) += add;
                }
            }
            let mut fused: Vec<(f64, Pk)> = acc.into_iter().map(|(pk, s)| (s, pk)).collect();
            fused.sort_by(|a, b| {
                b.0.partial_cmp(&a.0)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then_with(|| a.1.cmp(&b.1))
            });
            fused_per_query.push(fused.into_iter().skip(offset).take(limit).collect());
        }
        // Gather output fields for the fused keys under one read lock.
        let (_, c) = self.collection(db, coll)?;
        let st = c.state.read();
        let spec = OutputSpec::resolve(&st.schema, output_fields, false)?;
        let mut result = SearchResult {
            metric: None,
            output_names: spec.names.clone(),
            ..Default::default()
        };
        let mut locs = Vec::new();
        for fused in fused_per_query {
            let mut n = 0;
            for (score, pk) in fused {
                // A row deleted since its sub-search is dropped.
                if let Some(loc) = st.pk_index.get(&pk) {
                    locs.push((loc.seg, loc.row));
                    result.pks.push(pk);
                    result.scores.push(score as f32);
                    n += 1;
                }
            }
            result.topks.push(n);
        }
        result.fields = spec.gather(&st.schema, &st, &locs);
        Ok(result)
    }
}
