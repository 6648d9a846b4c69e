//! Index autotuning jobs behind `/v1/collections/{c}/fields/{f}/autotune`.
//!
//! A tuning job runs the requested levels on a thread of its own: `search` sweeps the current
//! index's `ef` / `nprobe` on the collection ([`quiver_engine::Engine::autotune_search`]),
//! `build` builds candidate indexes on a sample ([`quiver_engine::Engine::autotune_build`]).
//! An apply job builds the chosen index version beside the serving one
//! ([`quiver_engine::Engine::stage_index`]), waits for it on every sealed segment, measures
//! its recall@k against exact search on the whole collection with the chosen search
//! parameters, and only if the target holds switches the field to it
//! ([`quiver_engine::Engine::promote_staged_index`]); otherwise the staged version is dropped
//! and the serving index never changed.
//!
//! Queries come from live traffic or the data (`queries: "auto" | "traffic" | "data"`):
//! [`QueryLog`] keeps the last [`QUERY_LOG`] float query vectors searched on each field
//! (text queries after embedding), and `auto` tunes on them once there are at least
//! [`MIN_TRAFFIC`], else on the collection's own rows.
//!
//! Jobs live in memory (a restart forgets them; a staged version of an interrupted apply is
//! collected as stale). States: `running`, then `done` or `failed` (tune), `applied`,
//! `rejected` or `failed` (apply). `progress` is `{done, total, phase}`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use quiver_engine::{Engine, IndexBuildState};
use quiver_registry::RegistryError;
use serde_json::{json, Value as Json};

use crate::rest::v1::engine_error;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Query vectors remembered per field.
pub const QUERY_LOG: usize = 1024;
/// Logged queries `queries: "auto"` needs before it prefers them to the rows.
pub const MIN_TRAFFIC: usize = 50;

/// (collection id, field) -> its recent query vectors, oldest first.
type Logged = HashMap<(u64, String), VecDeque<Vec<f32>>>;

/// The recent query vectors of each (collection id, field).
#[derive(Debug, Default)]
pub struct QueryLog {
    map: Mutex<Logged>,
}

impl QueryLog {
    pub fn record(&self, collection_id: u64, field: &str, vectors: &[Vec<f32>]) {
        if vectors.is_empty() {
            return;
        }
        let mut m = self.map.lock();
        let q = m.entry((collection_id, field.to_string())).or_default();
        for v in vectors.iter().take(QUERY_LOG) {
            if q.len() == QUERY_LOG {
                q.pop_front();
            }
            q.push_back(v.clone());
        }
    }

    /// The logged queries, newest last.
    pub fn recent(&self, collection_id: u64, field: &str) -> Vec<Vec<f32>> {
        self.map
            .lock()
            .get(&(collection_id, field.to_string()))
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// One job's state, as `GET .../autotune/{id}` shows it.
#[derive(Debug)]
pub struct Job {
    view: Mutex<Json>,
}

impl Job {
    fn set(&self, key: &str, v: Json) {
        self.view.lock()[key] = v;
    }
    fn finish(&self, state: &str, report: Option<Json>, error: Option<String>) {
        let mut v = self.view.lock();
        v["state"] = json!(state);
        v["report"] = report.unwrap_or(Json::Null);
        v["error"] = json!(error);
        v["finished_ms"] = json!(now_ms());
    }
    pub fn view(&self) -> Json {
        self.view.lock().clone()
    }
    fn running(&self) -> bool {
        self.view.lock()["state"] == "running"
    }
}

/// Every tuning and apply job of this server.
#[derive(Debug)]
pub struct Tuning {
    jobs: Mutex<BTreeMap<String, Arc<Job>>>,
    next: AtomicU64,
    /// Recent queries per field (shared with the search path).
    pub log: Arc<QueryLog>,
    /// Held from the check for a running apply to its job's creation.
    starting: Mutex<()>,
}

/// A checked tuning request.
#[derive(Debug, Clone)]
pub struct TuneSpec {
    pub db: String,
    pub search: bool,
    pub build: bool,
    pub k: usize,
    pub target_recall: f64,
    pub sample: usize,
    pub budget: Duration,
    pub objective: quiver_engine::Objective,
    pub sample_rows: usize,
    pub index_types: Vec<String>,
    pub wait: bool,
    /// `auto`, `traffic` or `data`.
    pub queries: String,
}

fn bad(m: String) -> RegistryError {
    RegistryError::BadRequest(m)
}

fn num(b: &Json, k: &str, d: f64) -> Result<f64, RegistryError> {
    match b.get(k) {
        None | Some(Json::Null) => Ok(d),
        Some(v) => v
            .as_f64()
            .ok_or_else(|| bad(format!("{k} must be a number, got {v}"))),
    }
}

fn db_of(b: &Json) -> String {
    b.get("db")
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(quiver_engine::DEFAULT_DB)
        .to_string()
}

/// `{target_recall, k, budget_s, sample, sample_rows, levels, objective, index_types, wait, db}`.
pub fn tune_spec(b: &Json) -> Result<TuneSpec, RegistryError> {
    let levels: Vec<String> = match b.get("levels") {
        None | Some(Json::Null) => vec!["search".into()],
        Some(Json::Array(a)) if a.iter().all(Json::is_string) => a
            .iter()
            .filter_map(Json::as_str)
            .map(str::to_string)
            .collect(),
        Some(other) => {
            return Err(bad(format!(
                "levels must be a list of strings, got {other}"
            )))
        }
    };
    if let Some(l) = levels.iter().find(|l| *l != "search" && *l != "build") {
        return Err(bad(format!("unknown level {l:?} (search or build)")));
    }
    if levels.is_empty() {
        return Err(bad("levels must name search, build or both".into()));
    }
    let (search, build) = (
        levels.iter().any(|l| l == "search"),
        levels.iter().any(|l| l == "build"),
    );
    let objective =
        match b.get("objective").and_then(Json::as_str).unwrap_or("qps") {
            "qps" => quiver_engine::Objective::Qps,
            "memory" if build => quiver_engine::Objective::Memory,
            "memory" => return Err(bad(
                "objective memory needs the build level: search parameters do not change memory"
                    .into(),
            )),
            other => return Err(bad(format!("objective {other:?}: qps or memory"))),
        };
    let k = num(b, "k", 10.0)?;
    let sample = num(b, "sample", 200.0)?;
    let budget = num(b, "budget_s", 60.0)?;
    let sample_rows = num(b, "sample_rows", 20_000.0)?;
    let target_recall = num(b, "target_recall", 0.95)?;
    if !(0.0..=1.0).contains(&target_recall) {
        return Err(bad(format!(
            "target_recall must be in [0, 1], got {target_recall}"
        )));
    }
    if k < 1.0 || sample < 1.0 || budget <= 0.0 || sample_rows < 100.0 {
        return Err(bad(
            "k and sample must be at least 1, sample_rows at least 100, budget_s positive".into(),
        ));
    }
    let index_types = match b.get("index_types") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(a)) => {
            let v: Vec<String> = a
                .iter()
                .filter_map(Json::as_str)
                .map(str::to_ascii_uppercase)
                .collect();
            if let Some(t) = v
                .iter()
                .find(|t| !["HNSW", "IVF_FLAT", "IVF_SQ8", "IVF_PQ"].contains(&t.as_str()))
            {
                return Err(bad(format!(
                    "index type {t} is not tuned (HNSW, IVF_FLAT, IVF_SQ8, IVF_PQ)"
                )));
            }
            v
        }
        Some(other) => return Err(bad(format!("index_types must be a list, got {other}"))),
    };
    Ok(TuneSpec {
        db: db_of(b),
        search,
        build,
        k: k as usize,
        target_recall,
        sample: sample as usize,
        budget: Duration::from_secs_f64(budget.min(3600.0)),
        objective,
        sample_rows: sample_rows as usize,
        index_types,
        wait: b.get("wait").and_then(Json::as_bool).unwrap_or(!build),
        queries: queries_mode(b)?,
    })
}

/// `queries`: `auto` (default), `traffic` or `data`.
fn queries_mode(b: &Json) -> Result<String, RegistryError> {
    match b.get("queries").and_then(Json::as_str).unwrap_or("auto") {
        q @ ("auto" | "traffic" | "data") => Ok(q.to_string()),
        other => Err(bad(format!(
            "queries must be auto, traffic or data, got {other:?}"
        ))),
    }
}

impl Tuning {
    /// The query vectors a job tunes or verifies on, newest first: the field's logged
    /// traffic (`traffic`; `auto` once there are [`MIN_TRAFFIC`]), or none (sample the rows).
    fn queries(
        &self,
        collection_id: u64,
        coll: &str,
        field: &str,
        mode: &str,
    ) -> Result<Vec<Vec<f32>>, RegistryError> {
        let logged = self.log.recent(collection_id, field);
        let use_it = match mode {
            "traffic" if logged.len() < 10 => {
                return Err(RegistryError::Conflict(format!(
                    "field {field} of {coll} has {} logged queries; search it first, or use queries: data",
                    logged.len()
                )))
            }
            "traffic" => true,
            "auto" => logged.len() >= MIN_TRAFFIC,
            _ => false,
        };
        Ok(if use_it {
            logged.into_iter().rev().collect()
        } else {
            Vec::new()
        })
    }

    pub fn new(log: Arc<QueryLog>) -> Tuning {
        Tuning {
            jobs: Default::default(),
            next: AtomicU64::new(0),
            log,
            starting: Mutex::new(()),
        }
    }

    fn new_job(&self, kind: &str, coll: &str, field: &str, db: &str) -> Arc<Job> {
        let id = format!("tune-{}", self.next.fetch_add(1, Ordering::Relaxed) + 1);
        let job = Arc::new(Job {
            view: Mutex::new(json!({
                "id": id, "kind": kind, "db": db, "collection": coll, "field": field,
                "state": "running", "progress": {"done": 0, "total": 0, "phase": "starting"},
                "report": null, "error": null, "started_ms": now_ms(), "finished_ms": null,
            })),
        });
        self.jobs.lock().insert(id, Arc::clone(&job));
        job
    }

    pub fn get(&self, coll: &str, field: &str, id: &str) -> Result<Json, RegistryError> {
        let job = self.jobs.lock().get(id).cloned();
        match job.map(|j| j.view()) {
            Some(v) if v["collection"] == coll && v["field"] == field => Ok(v),
            _ => Err(RegistryError::NotFound(format!(
                "field {field} of {coll} has no autotune job {id}"
            ))),
        }
    }

    fn wait(job: &Job) -> Json {
        while job.running() {
            std::thread::sleep(Duration::from_millis(20));
        }
        job.view()
    }

    /// Start a tuning job (blocking until it ends when `spec.wait`).
    pub fn tune(
        self: &Arc<Self>,
        engine: &Arc<Engine>,
        coll: &str,
        field: &str,
        spec: TuneSpec,
    ) -> Result<Json, RegistryError> {
        // What can be refused now is refused now: unknown collection or field, search level
        // without a finished index.
        let (meta, _) = engine.collection(&spec.db, coll).map_err(engine_error)?;
        meta.schema.field(field).ok_or_else(|| {
            RegistryError::NotFound(format!("collection {coll} has no field {field}"))
        })?;
        let traffic = self.queries(meta.id, coll, field, &spec.queries)?;
        let source = if traffic.is_empty() {
            "data"
        } else {
            "traffic"
        };
        if spec.search && !spec.build {
            // The synchronous search sweep keeps its own errors (409 without an index).
            let job = self.new_job("tune", coll, field, &spec.db);
            let r = engine
                .autotune_search(&spec.db, coll, field, &search_request(&spec, &traffic))
                .map_err(engine_error);
            return match r {
                Ok(rep) => {
                    job.finish(
                        "done",
                        Some(json!({"search": rep, "build": null, "query_source": source})),
                        None,
                    );
                    Ok(job.view())
                }
                Err(e) => {
                    job.finish("failed", None, Some(e.to_string()));
                    Err(e)
                }
            };
        }
        let job = self.new_job("tune", coll, field, &spec.db);
        let (engine, coll, field, j) = (
            Arc::clone(engine),
            coll.to_string(),
            field.to_string(),
            Arc::clone(&job),
        );
        let wait = spec.wait;
        std::thread::Builder::new()
            .name("quiver-autotune".into())
            .spawn(move || guarded(&j, || run_tune(&engine, &coll, &field, &spec, &traffic, &j)))
            .map_err(|e| RegistryError::Internal(format!("could not start the job: {e}")))?;
        Ok(if wait { Self::wait(&job) } else { job.view() })
    }

    /// Start an apply job: `{job, point}` (a point of a tuning job's build report) or
    /// `{params: {index_type, ...}, search_params}`, with `target_recall`, `k`, `sample`.
    pub fn apply(
        self: &Arc<Self>,
        engine: &Arc<Engine>,
        coll: &str,
        field: &str,
        b: &Json,
    ) -> Result<Json, RegistryError> {
        let db = db_of(b);
        let (meta, c) = engine.collection(&db, coll).map_err(engine_error)?;
        let fi = meta.schema.field_index(field).ok_or_else(|| {
            RegistryError::NotFound(format!("collection {coll} has no field {field}"))
        })?;
        let (mut params, search_params, from_target) = match b.get("job").and_then(Json::as_str) {
            Some(id) => {
                let v = self.get(coll, field, id)?;
                let rep = &v["report"]["build"];
                if rep.is_null() {
                    return Err(bad(format!("job {id} has no build report to apply")));
                }
                let i = match b.get("point") {
                    None | Some(Json::Null) => rep["recommendation"].as_u64(),
                    Some(p) => p.as_u64(),
                }
                .ok_or_else(|| bad("point must be a point number of the report".into()))?
                    as usize;
                let p = rep["points"]
                    .get(i)
                    .ok_or_else(|| bad(format!("job {id} has no point {i}")))?;
                let params: BTreeMap<String, String> =
                    serde_json::from_value(p["build_params"].clone())
                        .map_err(|e| RegistryError::Internal(e.to_string()))?;
                (
                    params,
                    p["search_params"].clone(),
                    rep["target_recall"].as_f64(),
                )
            }
            None => {
                let raw = b.get("params").and_then(Json::as_object).ok_or_else(|| {
                    bad("give job (and point) or params {index_type, ...}".into())
                })?;
                let params: BTreeMap<String, String> = raw
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str().map_or_else(|| v.to_string(), str::to_string),
                        )
                    })
                    .collect();
                (
                    params,
                    b.get("search_params").cloned().unwrap_or(json!({})),
                    None,
                )
            }
        };
        let search_params = search_params
            .as_object()
            .cloned()
            .ok_or_else(|| bad("search_params must be an object".into()))?;
        let target_recall = match b.get("target_recall") {
            None | Some(Json::Null) => from_target.unwrap_or(0.95),
            Some(v) => v
                .as_f64()
                .filter(|t| (0.0..=1.0).contains(t))
                .ok_or_else(|| bad(format!("target_recall must be in [0, 1], got {v}")))?,
        };
        let k = num(b, "k", 10.0)?.max(1.0) as usize;
        let sample = num(b, "sample", 200.0)?.max(1.0) as usize;
        // Verify on live traffic where there is enough of it (as a tuning job samples).
        let mode = queries_mode(b)?;
        let queries = self.queries(meta.id, coll, field, &mode)?;
        // The metric stays the field's (a serving bundle and a model binding depend on it).
        let previous = meta.indexes.iter().find(|i| i.field == field).cloned();
        let metric = previous
            .as_ref()
            .and_then(|i| i.metric().map(str::to_string))
            .or_else(|| c.index_def(fi).map(|d| d.metric.name().to_string()));
        match (params.get("metric_type"), &metric) {
            (Some(m), Some(cur)) if !m.eq_ignore_ascii_case(cur) => {
                return Err(bad(format!(
                    "the field's metric is {cur}; an applied index keeps it (got {m})"
                )))
            }
            (None, Some(cur)) => {
                params.insert("metric_type".into(), cur.clone());
            }
            _ => {}
        }
        // One apply per field at a time: two staged versions racing to replace each other
        // would leave the winner to chance.
        let _starting = self.starting.lock();
        if let Some(other) = self.jobs.lock().values().map(|j| j.view()).find(|v| {
            v["kind"] == "apply"
                && v["state"] == "running"
                && v["db"] == db.as_str()
                && v["collection"] == coll
                && v["field"] == field
        }) {
            return Err(RegistryError::Conflict(format!(
                "apply job {} is still running on field {field}",
                other["id"].as_str().unwrap_or("?")
            )));
        }
        // The collection itself, not an alias that could move while the job runs.
        let coll = meta.name.as_str();
        let staged = engine
            .stage_index(&db, coll, field, params.clone())
            .map_err(engine_error)?;
        let job = self.new_job("apply", coll, field, &db);
        job.set(
            "plan",
            json!({"index_id": staged, "params": params, "search_params": search_params,
                   "target_recall": target_recall, "k": k, "sample": sample,
                   "previous": previous.as_ref().map(|p| json!({"id": p.id, "params": p.params}))}),
        );
        let (engine, coll, field, j) = (
            Arc::clone(engine),
            coll.to_string(),
            field.to_string(),
            Arc::clone(&job),
        );
        let wait = b.get("wait").and_then(Json::as_bool).unwrap_or(false);
        let plan = ApplyPlan {
            db,
            queries,
            staged,
            replaces: previous.as_ref().map(|p| p.id),
            params,
            search_params,
            target_recall,
            k,
            sample,
        };
        std::thread::Builder::new()
            .name("quiver-apply".into())
            .spawn(move || guarded(&j, || run_apply(&engine, &coll, &field, &plan, &j)))
            .map_err(|e| RegistryError::Internal(format!("could not start the job: {e}")))?;
        Ok(if wait { Self::wait(&job) } else { job.view() })
    }
}

fn search_request(spec: &TuneSpec, traffic: &[Vec<f32>]) -> quiver_engine::TuneRequest {
    quiver_engine::TuneRequest {
        k: spec.k,
        target_recall: spec.target_recall,
        sample: spec.sample,
        budget: spec.budget,
        queries: traffic.to_vec(),
    }
}

fn run_tune(
    engine: &Engine,
    coll: &str,
    field: &str,
    spec: &TuneSpec,
    traffic: &[Vec<f32>],
    job: &Job,
) {
    let started = Instant::now();
    let mut search = Json::Null;
    let mut search_skipped = Json::Null;
    if spec.search {
        job.set(
            "progress",
            json!({"done": 0, "total": 1, "phase": "search"}),
        );
        match engine.autotune_search(&spec.db, coll, field, &search_request(spec, traffic)) {
            Ok(r) => search = json!(r),
            // No index (or one still building): the build level still runs.
            Err(e) => search_skipped = json!(e.to_string()),
        }
    }
    let left = spec.budget.saturating_sub(started.elapsed());
    let req = quiver_engine::BuildTuneRequest {
        k: spec.k,
        target_recall: spec.target_recall,
        objective: spec.objective,
        sample_rows: spec.sample_rows,
        queries: spec.sample,
        budget: left.max(Duration::from_secs(1)),
        index_types: spec.index_types.clone(),
        metric: None,
        query_vectors: traffic.to_vec(),
    };
    let progress = |done: usize, total: usize, what: &str| {
        job.set(
            "progress",
            json!({"done": done, "total": total, "phase": format!("build {what}")}),
        );
        true
    };
    match engine.autotune_build(&spec.db, coll, field, &req, &progress) {
        Ok(b) => job.finish(
            "done",
            Some(
                json!({"search": search, "search_skipped": search_skipped, "build": b,
                        "query_source": if traffic.is_empty() { "data" } else { "traffic" }}),
            ),
            None,
        ),
        Err(e) => job.finish("failed", None, Some(engine_error(e).to_string())),
    }
}

/// Wider settings of the index's search parameter than `current`, doubling: `ef` up to 2048
/// (HNSW), `nprobe` up to `nlist` (IVF).
fn widen(
    params: &BTreeMap<String, String>,
    current: &serde_json::Map<String, Json>,
) -> Vec<serde_json::Map<String, Json>> {
    let t = params
        .get("index_type")
        .map(|t| t.to_ascii_uppercase())
        .unwrap_or_default();
    let (name, max, default) = if t.starts_with("IVF") {
        let nlist = params
            .get("nlist")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(128);
        ("nprobe", nlist, 8)
    } else if t == "HNSW" || t == "AUTOINDEX" {
        ("ef", 2048, 64)
    } else {
        return Vec::new();
    };
    let mut v = current
        .get(name)
        .and_then(Json::as_u64)
        .unwrap_or(default)
        .max(1);
    let mut out = Vec::new();
    while v < max {
        v = (v * 2).min(max);
        let mut m = current.clone();
        m.insert(name.to_string(), json!(v));
        out.push(m);
    }
    out
}

/// Run a job's body; a panic fails the job instead of leaving it running.
fn guarded(job: &Job, f: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        job.finish(
            "failed",
            None,
            Some("internal error: the job panicked".into()),
        );
    }
}

/// How long an apply waits for its build before giving up.
const APPLY_DEADLINE: Duration = Duration::from_secs(6 * 3600);

struct ApplyPlan {
    db: String,
    /// Verification queries from live traffic (empty: sampled rows).
    queries: Vec<Vec<f32>>,
    staged: u64,
    /// The index it was staged to replace.
    replaces: Option<u64>,
    params: BTreeMap<String, String>,
    search_params: serde_json::Map<String, Json>,
    target_recall: f64,
    k: usize,
    sample: usize,
}

fn run_apply(engine: &Engine, coll: &str, field: &str, plan: &ApplyPlan, job: &Job) {
    let started = Instant::now();
    let fail = |e: String| {
        let _ = engine.discard_staged_index(&plan.db, coll, plan.staged);
        job.finish("failed", None, Some(e));
    };
    // Build, verify, and verify again if segments sealed meanwhile still lack the version
    // (they were searched exactly, which would flatter the recall).
    let mut recall = 0.0;
    for _round in 0..5 {
        loop {
            match engine.index_progress_of(&plan.db, coll, plan.staged) {
                Ok(p) => {
                    job.set(
                        "progress",
                        json!({"done": p.indexed_rows, "total": p.total_rows, "phase": "building the new index version"}),
                    );
                    match p.state {
                        IndexBuildState::Finished => break,
                        IndexBuildState::Failed => {
                            return fail(format!("the build failed: {}", p.fail_reason))
                        }
                        IndexBuildState::InProgress => {}
                    }
                }
                Err(e) => return fail(e.to_string()),
            }
            if started.elapsed() > APPLY_DEADLINE {
                return fail(format!(
                    "the new index version was not built within {} s",
                    APPLY_DEADLINE.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        job.set(
            "progress",
            json!({"done": 0, "total": plan.sample, "phase": "verifying recall against exact search"}),
        );
        recall = match engine.verify_index(
            &plan.db,
            coll,
            field,
            plan.staged,
            &plan.search_params,
            plan.k,
            plan.sample,
            &plan.queries,
        ) {
            Ok(r) => r,
            Err(e) => return fail(e.to_string()),
        };
        match engine.index_progress_of(&plan.db, coll, plan.staged) {
            Ok(p) if p.state == IndexBuildState::Finished => break,
            Ok(_) => continue,
            Err(e) => return fail(e.to_string()),
        }
    }
    let build_s = started.elapsed().as_secs_f64();
    // A setting chosen on a sample can fall short on the whole collection (more rows per
    // list, a larger graph): widen the search parameter until the target holds, if it can.
    let mut search_params = plan.search_params.clone();
    let mut tried = vec![json!({"search_params": search_params.clone(), "recall": recall})];
    if recall + 1e-12 < plan.target_recall {
        for wider in widen(&plan.params, &search_params) {
            job.set(
                "progress",
                json!({"done": tried.len(), "total": tried.len() + 1, "phase": format!("widening the search: {}", Json::Object(wider.clone()))}),
            );
            let r = match engine.verify_index(
                &plan.db,
                coll,
                field,
                plan.staged,
                &wider,
                plan.k,
                plan.sample,
                &plan.queries,
            ) {
                Ok(r) => r,
                Err(e) => return fail(e.to_string()),
            };
            tried.push(json!({"search_params": wider.clone(), "recall": r}));
            if r + 1e-12 >= plan.target_recall {
                recall = r;
                search_params = wider;
                break;
            }
        }
    }
    let mut report = json!({
        "index_id": plan.staged, "params": plan.params, "search_params": search_params,
        "recall": recall, "target_recall": plan.target_recall, "k": plan.k,
        "queries": if plan.queries.is_empty() { plan.sample } else { plan.queries.len().min(plan.sample) },
        "query_source": if plan.queries.is_empty() { "data" } else { "traffic" },
        "build_s": build_s, "tried": tried,
    });
    if recall + 1e-12 < plan.target_recall {
        let _ = engine.discard_staged_index(&plan.db, coll, plan.staged);
        report["switched"] = json!(false);
        job.finish("rejected", Some(report), None);
        return;
    }
    match engine.promote_staged_index(
        &plan.db,
        coll,
        plan.staged,
        plan.replaces,
        plan.params.clone(),
    ) {
        Ok(()) => {
            report["switched"] = json!(true);
            job.finish("applied", Some(report), None);
        }
        // The catalog switched but collecting the old files failed: applied all the same.
        Err(e)
            if engine
                .index_progress(&plan.db, coll, field, "")
                .is_ok_and(|(m, _)| m.id == plan.staged) =>
        {
            report["switched"] = json!(true);
            report["warning"] = json!(e.to_string());
            job.finish("applied", Some(report), None);
        }
        Err(e) => fail(e.to_string()),
    }
}
