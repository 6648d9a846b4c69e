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
//! Build-level tuning ([`Engine::autotune_build`]) builds candidate indexes (HNSW over M /
//! efConstruction, IVF_FLAT and IVF_SQ8 over nlist, IVF_PQ over m) on a sample of the field's
//! live rows, sweeps each one's search parameter, and measures recall@k against exact search
//! of held-out rows over the same sample, QPS (one query per call, one thread), index memory
//! and build time, both on the sample and scaled linearly to the collection's live rows. The
//! sample keeps it within a budget of seconds to minutes; the figures rank the candidates, and
//! [`Engine::stage_index`] + a verification search on the whole collection decide (the
//! server's `apply`).

use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use quiver_core::{DataType, Error, Result};
use quiver_index::{parse_build_params, parse_search_params, AnnIndex, IndexSpec, Metric};
use serde::Serialize;
use serde_json::json;

use crate::{Engine, Pk, SearchRequest};

/// What to tune for.
#[derive(Debug, Clone)]
pub struct TuneRequest {
    /// Results per query (recall@k).
    pub k: usize,
    pub target_recall: f64,
    /// Queries sampled from the collection's rows (when `queries` is empty).
    pub sample: usize,
    /// Stop sweeping after this long.
    pub budget: Duration,
    /// Query vectors to tune on (recent live traffic); empty: sample the rows.
    pub queries: Vec<Vec<f32>>,
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

/// Which points no other point dominates (`dominates(o, p)`: o at least as good everywhere,
/// strictly better somewhere).
fn frontier<P>(points: &[P], dominates: impl Fn(&P, &P) -> bool) -> Vec<bool> {
    points
        .iter()
        .map(|p| !points.iter().any(|o| dominates(o, p)))
        .collect()
}

/// The best point (by `best`: the greatest wins) among those reaching `target`; when none
/// does, the one with the best recall. Also whether the target was reached.
fn recommend(
    recalls: &[f64],
    target: f64,
    best: impl Fn(usize, usize) -> std::cmp::Ordering,
) -> (Option<usize>, bool) {
    let reaching: Vec<usize> = (0..recalls.len())
        .filter(|&i| recalls[i] >= target)
        .collect();
    if reaching.is_empty() {
        let r = (0..recalls.len()).max_by(|&a, &b| recalls[a].total_cmp(&recalls[b]));
        return (r, false);
    }
    (reaching.into_iter().max_by(|&a, &b| best(a, b)), true)
}

/// Tuning queries: the given ones (live traffic; their dimension checked), else every n-th
/// live row's vector of field `fi`, at most `sample` either way.
fn tuning_queries(
    c: &crate::collection::Collection,
    coll: &str,
    fi: usize,
    dim: usize,
    sample: usize,
    given: &[Vec<f32>],
) -> Result<Vec<Vec<f32>>> {
    if let Some(q) = given.iter().find(|q| q.len() != dim) {
        return Err(Error::InvalidArgument(format!(
            "a tuning query has {} dimensions, the field {dim}",
            q.len()
        )));
    }
    let sample = sample.clamp(1, 10_000);
    if !given.is_empty() {
        return Ok(given.iter().take(sample).cloned().collect());
    }
    let st = c.state.read();
    let live: usize = st.segments.values().map(|s| s.live_rows()).sum();
    if live == 0 {
        return Err(Error::FailedPrecondition(format!(
            "collection {coll} is empty"
        )));
    }
    let step = (live / sample).max(1);
    let mut out = Vec::new();
    let mut seen = 0usize;
    for seg in st.segments.values() {
        let Some(rows) = seg.f32_rows(fi) else {
            return Err(Error::InvalidArgument(
                "autotune supports float-like vector fields".into(),
            ));
        };
        for r in (0..seg.rows()).filter(|&r| seg.is_live(r)) {
            if seen.is_multiple_of(step) && out.len() < sample {
                out.push(rows[r * dim..(r + 1) * dim].to_vec());
            }
            seen += 1;
        }
    }
    Ok(out)
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
        let dim = meta.schema.fields[fi].dim();
        let queries = tuning_queries(&c, coll, fi, dim, sample, &req.queries)?;
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
        // Pareto over recall and QPS (both up).
        let flags = frontier(&points, |o, p| {
            o.recall >= p.recall && o.qps >= p.qps && (o.recall > p.recall || o.qps > p.qps)
        });
        for (p, f) in points.iter_mut().zip(flags) {
            p.pareto = f;
        }
        let recalls: Vec<f64> = points.iter().map(|p| p.recall).collect();
        let (recommendation, target_reached) = recommend(&recalls, target_recall, |a, b| {
            points[a].qps.total_cmp(&points[b].qps)
        });
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

/// What to optimise among the settings that reach the recall target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    Qps,
    Memory,
}

/// A build-level sweep.
#[derive(Debug, Clone)]
pub struct BuildTuneRequest {
    pub k: usize,
    pub target_recall: f64,
    pub objective: Objective,
    /// Rows the candidates are built on.
    pub sample_rows: usize,
    /// Held-out rows used as queries (when `query_vectors` is empty).
    pub queries: usize,
    /// Query vectors to tune on (recent live traffic); empty: hold out rows.
    pub query_vectors: Vec<Vec<f32>>,
    pub budget: Duration,
    /// Restrict to these index types (`HNSW`, `IVF_FLAT`, `IVF_SQ8`, `IVF_PQ`); empty: all.
    pub index_types: Vec<String>,
    /// The metric when the field has no index yet (else the index's).
    pub metric: Option<String>,
}

/// One candidate index with one search setting.
#[derive(Debug, Clone, Serialize)]
pub struct BuildPoint {
    pub index_type: String,
    /// Milvus build parameters (`index_type`, `M`, `efConstruction`, `nlist`, `m`, `nbits`).
    pub build_params: BTreeMap<String, String>,
    pub search_params: serde_json::Map<String, serde_json::Value>,
    pub recall: f64,
    pub qps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Index bytes on the sample (the rows themselves are held anyway and not counted).
    pub index_bytes: usize,
    /// Scaled to the collection's live rows.
    pub est_index_bytes: u64,
    pub build_s: f64,
    pub est_build_s: f64,
    /// On the (recall, QPS, memory, build time) Pareto frontier.
    pub pareto: bool,
}

/// The result of a build-level sweep.
#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    pub field: String,
    pub metric: String,
    pub k: usize,
    pub target_recall: f64,
    pub objective: Objective,
    pub live_rows: usize,
    pub sample_rows: usize,
    pub queries: usize,
    pub candidates: usize,
    pub candidates_built: usize,
    pub points: Vec<BuildPoint>,
    pub recommendation: Option<usize>,
    pub target_reached: bool,
    pub stopped_by_budget: bool,
}

fn pow2_near(x: f64) -> usize {
    (2f64.powf(x.max(1.0).log2().round()) as usize).max(1)
}

fn kv(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// The candidate grid for `n` sample rows of dimension `dim`, cheapest first within a type.
fn candidates(n: usize, dim: usize, only: &[String]) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    let want = |t: &str| only.is_empty() || only.iter().any(|o| o.eq_ignore_ascii_case(t));
    if want("HNSW") {
        for (m, efc) in [(8, 100), (16, 200), (32, 200)] {
            out.push(kv(&[
                ("index_type", "HNSW".into()),
                ("M", m.to_string()),
                ("efConstruction", efc.to_string()),
            ]));
        }
    }
    // k-means wants ~39 rows a list; Milvus suggests nlist ~ 4 sqrt(n).
    let cap = (n / 39).max(1);
    let base = pow2_near((n as f64).sqrt()).min(cap);
    let wide = pow2_near(4.0 * (n as f64).sqrt()).min(cap);
    for t in ["IVF_FLAT", "IVF_SQ8"] {
        if want(t) {
            for nl in [base, wide] {
                let p = kv(&[("index_type", t.into()), ("nlist", nl.to_string())]);
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
    }
    if want("IVF_PQ") {
        for sub in [8, 4] {
            if dim.is_multiple_of(sub) {
                out.push(kv(&[
                    ("index_type", "IVF_PQ".into()),
                    ("nlist", base.to_string()),
                    ("m", (dim / sub).to_string()),
                    ("nbits", "8".into()),
                ]));
            }
        }
    }
    out
}

impl Engine {
    /// Build candidate indexes on a sample of `field`'s rows and sweep them; see the module
    /// docs. `progress(done, total, what)` reports each candidate; returning false stops.
    pub fn autotune_build(
        &self,
        db: &str,
        coll: &str,
        field: &str,
        req: &BuildTuneRequest,
        progress: &dyn Fn(usize, usize, &str) -> bool,
    ) -> Result<BuildReport> {
        crate::search::check_limits(req.k, 0)?;
        if !(0.0..=1.0).contains(&req.target_recall) {
            return Err(Error::InvalidArgument(format!(
                "target_recall must be in [0, 1], got {}",
                req.target_recall
            )));
        }
        let (meta, c) = self.collection(db, coll)?;
        let fi = meta
            .schema
            .field_index(field)
            .ok_or_else(|| Error::FieldNotFound(field.into()))?;
        let fs = &meta.schema.fields[fi];
        if !matches!(
            fs.data_type,
            DataType::FloatVector
                | DataType::Float16Vector
                | DataType::BFloat16Vector
                | DataType::Int8Vector
        ) {
            return Err(Error::InvalidArgument(format!(
                "build-level autotune supports dense float-like vector fields; {field} is {:?}",
                fs.data_type
            )));
        }
        let dim = fs.dim();
        let metric_name = match (c.index_def(fi), &req.metric) {
            (Some(d), _) => d.metric.name().to_string(),
            (None, Some(m)) => m.to_ascii_uppercase(),
            (None, None) => "COSINE".to_string(),
        };
        let metric = Metric::parse(&metric_name).ok_or_else(|| {
            Error::InvalidArgument(format!("metric {metric_name} is not a float metric"))
        })?;
        // Sample: every n-th live row; the queries are rows left out of the sample.
        if let Some(q) = req.query_vectors.iter().find(|q| q.len() != dim) {
            return Err(Error::InvalidArgument(format!(
                "a tuning query has {} dimensions, the field {dim}",
                q.len()
            )));
        }
        let traffic = !req.query_vectors.is_empty();
        let want_q = if traffic {
            0
        } else {
            req.queries.clamp(1, 10_000)
        };
        let want_rows = req.sample_rows.clamp(100, 1_000_000);
        let (base, mut queries, live) = {
            let st = c.state.read();
            let live: usize = st.segments.values().map(|s| s.live_rows()).sum();
            if live < 2 * want_q || live < 200 {
                return Err(Error::FailedPrecondition(format!(
                    "collection {coll} has {live} live rows: too few to tune an index on"
                )));
            }
            // Every q_step-th row is a query (none when traffic gives the queries).
            let q_step = if traffic {
                usize::MAX
            } else {
                (live / want_q).max(2)
            };
            let rest = live - live / q_step;
            let b_step = (rest / want_rows).max(1);
            let (mut base, mut queries) = (Vec::new(), Vec::new());
            let (mut seen, mut kept) = (0usize, 0usize);
            for seg in st.segments.values() {
                let Some(rows) = seg.f32_rows(fi) else {
                    continue;
                };
                for r in 0..seg.rows() {
                    if !seg.is_live(r) {
                        continue;
                    }
                    let v = &rows[r * dim..(r + 1) * dim];
                    if seen % q_step == q_step - 1 {
                        if queries.len() < want_q * dim {
                            queries.extend_from_slice(v);
                        }
                    } else {
                        if kept % b_step == 0 && base.len() < want_rows * dim {
                            base.extend_from_slice(v);
                        }
                        kept += 1;
                    }
                    seen += 1;
                }
            }
            (base, queries, live)
        };
        if traffic {
            for q in req.query_vectors.iter().take(req.queries.clamp(1, 10_000)) {
                queries.extend_from_slice(q);
            }
        }
        let n = base.len() / dim;
        let nq = queries.len() / dim;
        let k = req.k.min(n);
        let truth: Vec<Vec<u32>> = queries
            .chunks_exact(dim)
            .map(|q| {
                quiver_simd::search_one(metric, q, &base, dim, quiver_simd::Filter::All, k)
                    .into_iter()
                    .map(|(_, r)| r)
                    .collect()
            })
            .collect();
        let grid = candidates(n, dim, &req.index_types);
        let total = grid.len();
        let started = Instant::now();
        let scale = live as f64 / n as f64;
        let mut points = Vec::new();
        let mut built = 0usize;
        let mut stopped_by_budget = false;
        for (ci, params) in grid.iter().enumerate() {
            let label = params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            if started.elapsed() > req.budget && built > 0 {
                stopped_by_budget = true;
                break;
            }
            if !progress(ci, total, &label) {
                stopped_by_budget = true;
                break;
            }
            let index_type = params["index_type"].clone();
            let spec =
                parse_build_params(&index_type, params).map_err(crate::index::index_error)?;
            if spec.check_dim(dim).is_err() {
                continue;
            }
            let t = Instant::now();
            let over = || started.elapsed() > req.budget.mul_f64(1.5);
            let ann = match AnnIndex::build(&spec, metric, dim, &base, &|_, _| !over()) {
                Ok(Some(a)) => a,
                Ok(None) => continue,
                Err(quiver_index::IndexError::Cancelled) => {
                    stopped_by_budget = true;
                    break;
                }
                Err(e) => return Err(crate::index::index_error(e)),
            };
            let build_s = t.elapsed().as_secs_f64();
            built += 1;
            let index_bytes = ann.memory_bytes();
            let sweep: Vec<(&str, usize)> = match &spec {
                IndexSpec::Hnsw(_) => [16, 32, 64, 128, 256, 512]
                    .into_iter()
                    .filter(|&e| e >= k)
                    .map(|e| ("ef", e))
                    .collect(),
                IndexSpec::Ivf(p) => [1, 2, 4, 8, 16, 32, 64, 128]
                    .into_iter()
                    .filter(|&x| x <= p.nlist)
                    .map(|x| ("nprobe", x))
                    .collect(),
                IndexSpec::Flat => Vec::new(),
            };
            for (name, value) in sweep {
                if started.elapsed() > req.budget.mul_f64(1.5) {
                    stopped_by_budget = true;
                    break;
                }
                let mut sp = serde_json::Map::new();
                sp.insert(name.to_string(), json!(value));
                let parsed = parse_search_params(&spec, &sp).map_err(crate::index::index_error)?;
                let mut lat = Vec::with_capacity(nq);
                let (mut hits, mut want) = (0usize, 0usize);
                let t = Instant::now();
                for (q, exact) in queries.chunks_exact(dim).zip(&truth) {
                    let tq = Instant::now();
                    let got = ann.search(&base, q, k, &parsed, None);
                    lat.push(tq.elapsed().as_secs_f64() * 1e3);
                    hits += got.iter().filter(|(_, r)| exact.contains(r)).count();
                    want += exact.len();
                }
                let secs = t.elapsed().as_secs_f64().max(1e-9);
                lat.sort_by(|a, b| a.total_cmp(b));
                let recall = if want == 0 {
                    1.0
                } else {
                    hits as f64 / want as f64
                };
                points.push(BuildPoint {
                    index_type: index_type.clone(),
                    build_params: params.clone(),
                    search_params: sp,
                    recall,
                    qps: nq as f64 / secs,
                    p50_ms: pct(&lat, 0.5),
                    p99_ms: pct(&lat, 0.99),
                    index_bytes,
                    est_index_bytes: (index_bytes as f64 * scale) as u64,
                    build_s,
                    est_build_s: build_s * scale,
                    pareto: false,
                });
                if recall >= 0.999 {
                    break; // a wider search gains nothing more
                }
            }
        }
        // Pareto over recall (up), QPS (up), memory (down) and build time (down).
        let flags = frontier(&points, |o, p| {
            o.recall >= p.recall
                && o.qps >= p.qps
                && o.index_bytes <= p.index_bytes
                && o.build_s <= p.build_s
                && (o.recall > p.recall
                    || o.qps > p.qps
                    || o.index_bytes < p.index_bytes
                    || o.build_s < p.build_s)
        });
        for (p, f) in points.iter_mut().zip(flags) {
            p.pareto = f;
        }
        let recalls: Vec<f64> = points.iter().map(|p| p.recall).collect();
        let (recommendation, target_reached) =
            recommend(&recalls, req.target_recall, |a, b| match req.objective {
                Objective::Qps => points[a].qps.total_cmp(&points[b].qps),
                // The smallest index wins, then the faster.
                Objective::Memory => points[b]
                    .index_bytes
                    .cmp(&points[a].index_bytes)
                    .then(points[a].qps.total_cmp(&points[b].qps)),
            });
        progress(total, total, "done");
        Ok(BuildReport {
            field: field.to_string(),
            metric: metric_name,
            k,
            target_recall: req.target_recall,
            objective: req.objective,
            live_rows: live,
            sample_rows: n,
            queries: nq,
            candidates: total,
            candidates_built: built,
            points,
            recommendation,
            target_reached,
            stopped_by_budget,
        })
    }

    /// Recall@k of `field`'s index `index_id` (current or staged) with `params`, against
    /// exact search, on `queries` (live traffic) or, when it is empty, on `sample` rows of the
    /// collection (every n-th live row; a row finds itself, which flatters recall a little).
    #[allow(clippy::too_many_arguments)]
    pub fn verify_index(
        &self,
        db: &str,
        coll: &str,
        field: &str,
        index_id: u64,
        params: &serde_json::Map<String, serde_json::Value>,
        k: usize,
        sample: usize,
        queries: &[Vec<f32>],
    ) -> Result<f64> {
        let (meta, c) = self.collection(db, coll)?;
        let fi = meta
            .schema
            .field_index(field)
            .ok_or_else(|| Error::FieldNotFound(field.into()))?;
        let def = c
            .known_index_def(index_id)
            .ok_or_else(|| Error::InvalidArgument(format!("no index with id {index_id}")))?;
        let dim = meta.schema.fields[fi].dim();
        let queries = tuning_queries(&c, coll, fi, dim, sample, queries)?;
        let metric = Some(def.metric.name().to_string());
        let (mut hits, mut want) = (0usize, 0usize);
        for q in &queries {
            let run = |exact: bool| {
                self.search(
                    db,
                    coll,
                    &SearchRequest {
                        anns_field: Some(field.to_string()),
                        vectors: vec![q.clone()],
                        metric: metric.clone(),
                        limit: k,
                        params: params.clone(),
                        exact,
                        index_id: Some(index_id),
                        ..Default::default()
                    },
                )
                .map(|r| r.pks)
            };
            let truth = run(true)?;
            let got = run(false)?;
            hits += got.iter().filter(|p| truth.contains(p)).count();
            want += truth.len();
        }
        Ok(if want == 0 {
            1.0
        } else {
            hits as f64 / want as f64
        })
    }
}
