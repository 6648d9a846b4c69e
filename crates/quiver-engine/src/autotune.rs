//! Search-parameter autotuning: sweep a field's index search parameter (HNSW `ef`, IVF
//! `nprobe`) against exact search on sampled queries, and report recall@k, QPS and the Pareto
//! frontier with a recommendation for a recall target.
//!
//! Queries are vectors of the collection's own live rows, spread evenly over its segments (a
//! deterministic sample); the reference is exact search (`SearchRequest::exact`) over the same
//! live rows. QPS is measured one query per call, on the calling thread's engine search (so it
//! includes planning and the parallel fan-out over segments). The sweep stops early when the
//! budget runs out; points measured so far are reported.
//!
//! Build parameters (index type, M / efConstruction, nlist, PQ m, SQ) are not swept here yet.

use std::time::{Duration, Instant};

use quiver_core::{Error, Result};
use quiver_index::IndexSpec;
use serde::Serialize;
use serde_json::json;

use crate::{Engine, Pk, SearchRequest};

/// What to tune for.
#[derive(Debug, Clone)]
pub struct TuneRequest {
    /// Results per query (recall@k).
    pub k: usize,
    pub target_recall: f64,
    /// Queries sampled from the collection's rows.
    pub sample: usize,
    /// Stop sweeping after this long.
    pub budget: Duration,
}

/// One measured setting.
#[derive(Debug, Clone, Serialize)]
pub struct TunePoint {
    pub params: serde_json::Map<String, serde_json::Value>,
    pub recall: f64,
    pub qps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// On the recall / QPS Pareto frontier.
    pub pareto: bool,
}

/// The result of a sweep.
#[derive(Debug, Clone, Serialize)]
pub struct TuneReport {
    pub field: String,
    pub index_type: String,
    pub k: usize,
    pub target_recall: f64,
    pub queries: usize,
    pub exact_qps: f64,
    pub points: Vec<TunePoint>,
    /// Index into `points`: the fastest setting reaching the target (or, when none does, the
    /// one with the best recall).
    pub recommendation: Option<usize>,
    pub target_reached: bool,
    pub stopped_by_budget: bool,
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((q * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1)]
}

impl Engine {
    /// Sweep the search parameter of `field`'s index; see the module docs.
    pub fn autotune_search(
        &self,
        db: &str,
        coll: &str,
        field: &str,
        req: &TuneRequest,
    ) -> Result<TuneReport> {
        let (k, target_recall, sample, budget) = (req.k, req.target_recall, req.sample, req.budget);
        crate::search::check_limits(k, 0)?;
        if !(0.0..=1.0).contains(&target_recall) {
            return Err(Error::InvalidArgument(format!(
                "target_recall must be in [0, 1], got {target_recall}"
            )));
        }
        let (meta, c) = self.collection(db, coll)?;
        let fi = meta
            .schema
            .field_index(field)
            .ok_or_else(|| Error::FieldNotFound(field.into()))?;
        let def = c.index_def(fi).ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "field {field} has no index: its searches are exact, there is nothing to tune"
            ))
        })?;
        let progress = c.index_progress(def.id);
        if progress.pending_rows > 0 {
            return Err(Error::FailedPrecondition(format!(
                "the index of {field} is still building ({} of {} rows indexed); tune once it is finished",
                progress.indexed_rows, progress.total_rows
            )));
        }
        let (name, values): (&str, Vec<usize>) = match &def.spec {
            IndexSpec::Hnsw(_) => (
                "ef",
                [8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512]
                    .into_iter()
                    .filter(|&e| e >= k.min(512))
                    .collect(),
            ),
            IndexSpec::Ivf(p) => (
                "nprobe",
                [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
                    .into_iter()
                    .filter(|&n| n <= p.nlist)
                    .collect(),
            ),
            IndexSpec::Flat => {
                return Err(Error::FailedPrecondition(format!(
                "field {field} has a FLAT index: its searches are exact, there is nothing to tune"
            )))
            }
        };
        // Sample queries: every n-th live row's vector.
        let queries: Vec<Vec<f32>> = {
            let st = c.state.read();
            let live: usize = st.segments.values().map(|s| s.live_rows()).sum();
            if live == 0 {
                return Err(Error::FailedPrecondition(format!(
                    "collection {coll} is empty"
                )));
            }
            let step = (live / sample.clamp(1, 10_000)).max(1);
            let dim = meta.schema.fields[fi].dim();
            let mut out = Vec::new();
            let mut seen = 0usize;
            for seg in st.segments.values() {
                let Some(rows) = seg.f32_rows(fi) else {
                    return Err(Error::InvalidArgument(format!(
                        "autotune supports float-like vector fields; {field} is not one"
                    )));
                };
                for r in 0..seg.rows() {
                    if !seg.is_live(r) {
                        continue;
                    }
                    if seen.is_multiple_of(step) && out.len() < sample {
                        out.push(rows[r * dim..(r + 1) * dim].to_vec());
                    }
                    seen += 1;
                }
            }
            out
        };
        let started = Instant::now();
        let metric = Some(def.metric.name().to_string());
        let search =
            |q: &Vec<f32>, params: serde_json::Map<String, serde_json::Value>, exact: bool| {
                self.search(
                    db,
                    coll,
                    &SearchRequest {
                        anns_field: Some(field.to_string()),
                        vectors: vec![q.clone()],
                        metric: metric.clone(),
                        limit: k,
                        params,
                        exact,
                        ..Default::default()
                    },
                )
                .map(|r| r.pks)
            };
        let t = Instant::now();
        let truth: Vec<Vec<Pk>> = queries
            .iter()
            .map(|q| search(q, Default::default(), true))
            .collect::<Result<_>>()?;
        let exact_qps = queries.len() as f64 / t.elapsed().as_secs_f64().max(1e-9);
        let mut points = Vec::new();
        let mut stopped_by_budget = false;
        for v in values {
            if started.elapsed() > budget && !points.is_empty() {
                stopped_by_budget = true;
                break;
            }
            let mut params = serde_json::Map::new();
            params.insert(name.to_string(), json!(v));
            let mut lat = Vec::with_capacity(queries.len());
            let mut hits = 0usize;
            let mut want = 0usize;
            let t = Instant::now();
            for (q, exact) in queries.iter().zip(&truth) {
                let tq = Instant::now();
                let got = search(q, params.clone(), false)?;
                lat.push(tq.elapsed().as_secs_f64() * 1e3);
                hits += got.iter().filter(|p| exact.contains(p)).count();
                want += exact.len();
            }
            let secs = t.elapsed().as_secs_f64().max(1e-9);
            lat.sort_by(|a, b| a.total_cmp(b));
            points.push(TunePoint {
                params,
                recall: if want == 0 {
                    1.0
                } else {
                    hits as f64 / want as f64
                },
                qps: queries.len() as f64 / secs,
                p50_ms: pct(&lat, 0.5),
                p99_ms: pct(&lat, 0.99),
                pareto: false,
            });
        }
        // Pareto: no other point has recall and QPS both at least as good, one strictly.
        let flags: Vec<bool> = points
            .iter()
            .map(|p| {
                !points.iter().any(|o| {
                    o.recall >= p.recall && o.qps >= p.qps && (o.recall > p.recall || o.qps > p.qps)
                })
            })
            .collect();
        for (p, f) in points.iter_mut().zip(flags) {
            p.pareto = f;
        }
        let reaching: Vec<usize> = (0..points.len())
            .filter(|&i| points[i].recall >= target_recall)
            .collect();
        let target_reached = !reaching.is_empty();
        let recommendation = if target_reached {
            reaching
                .into_iter()
                .max_by(|&a, &b| points[a].qps.total_cmp(&points[b].qps))
        } else {
            (0..points.len()).max_by(|&a, &b| points[a].recall.total_cmp(&points[b].recall))
        };
        Ok(TuneReport {
            field: field.to_string(),
            index_type: def.spec.index_type().to_string(),
            k,
            target_recall,
            queries: queries.len(),
            exact_qps,
            points,
            recommendation,
            target_reached,
            stopped_by_budget,
        })
    }
}
