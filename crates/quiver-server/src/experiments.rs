//! Online champion–challenger experiments on a serving alias: live searches on the alias name
//! (pymilvus, REST v2, anything) are the traffic; nothing changes on the client.
//!
//! * **shadow**: the champion answers every search; a `traffic` share of them is also sent,
//!   off the critical path, to the challenger (one worker thread, a bounded queue, and a CPU
//!   budget: a token bucket refilled at `cpu_budget` seconds of work per second; a search that
//!   finds the bucket empty or the queue full is dropped and counted). Each shadowed search
//!   records overlap@k and rank-biased overlap (p = 0.9, extrapolated) between the arms, the
//!   challenger's latency and errors, and the searches where the arms disagree most.
//! * **ab**: the challenger answers a `traffic` share, chosen by hashing the assignment key
//!   with the experiment id (sticky: the same key always gets the same arm). The key is a
//!   request header (`{"header": "client-request-id"}`, the default; pymilvus sends it with
//!   `client_request_id=...`; give each search its own id, since feedback finds searches by it,
//!   and use another header for user-sticky assignment) or a filter template parameter (`{"field": "user_id"}` with
//!   `filter_params={"user_id": ..}`). A challenger error falls back to the champion (the
//!   client still gets an answer; the error is counted). `shadow_sample` also runs the other
//!   arm in shadow to measure overlap.
//! * A challenger bound to another vector space than the champion (a model upgrade) can only
//!   answer text queries (embedded per arm by the field's TextEmbedding function); vector
//!   queries stay with the champion and are counted as `incompatible`.
//! * **Feedback** (`POST /v1/feedback {request_id, doc_id, event, value}`): request ids are the
//!   client's `client-request-id` header, or generated and returned in the `quiver-request-id`
//!   response header. The last [`REQUEST_LOG`] searches of running experiments are kept for it.
//!   A request converts when it gets a positive event (click, dwell > 0, thumb > 0).
//! * **Guardrails** are checked on the challenger arm whenever its counters move and act on
//!   their own: `pause` (resumable) or `rollback` (the champion takes all traffic, for good).
//! * **Decision**: mSPRT (Johari et al., "Always valid inference", normal mixture with
//!   standard deviation tau) on the difference of the arms' means of `feedback_rate`,
//!   `mean_feedback`, `latency_ms` or `error_rate`; a verdict once both arms have
//!   `min_samples` and the mixture likelihood ratio reaches 1/alpha. The always-valid p-value
//!   is the running minimum of 1/ratio, and the verdict comes when it reaches alpha. (Feedback
//!   that arrives late revises earlier observations, so the guarantee is approximate.) A
//!   challenger win with `on_success: promote` goes
//!   through the serving-alias promote path ([`crate::rest::v1::promote_serving`]) with the
//!   experiment id as evidence, so it is audited like a manual promotion.
//!
//! Invariants: the registry record is the state (a state change is an audit event before the
//! live copy follows); the champion's answer never waits for the shadow (a state change that a
//! search triggers, a guardrail or a verdict, is made once, on that search's thread); a
//! promotion that reached the registry is recorded as one even if the Milvus alias could not
//! follow; a search that finds the alias moved past the champion revision ends the
//! experiment; the live counters are
//! checkpointed to `<registry>/experiments/<id>.json` every few seconds and restored at start,
//! and copied into the record at every state change.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use quiver_core::Result;
use quiver_registry::experiments::{CONCLUDED, PAUSED, PROMOTED, ROLLED_BACK, RUNNING, STOPPED};
use quiver_registry::{Bundle, Experiment, Registry, RegistryError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use crate::params::{query_vectors, Params, QueryVectors};
use crate::proto::common::KeyValuePair;
use crate::proto::milvus::{SearchRequest, SearchResults};
use crate::service::Ctx;

/// Searches of running experiments remembered for feedback.
pub const REQUEST_LOG: usize = 100_000;
/// Shadow searches waiting for the worker before new ones are dropped.
const SHADOW_QUEUE: usize = 64;
/// Searches with the lowest overlap kept per experiment.
const DISAGREEMENTS: usize = 20;
/// The answer when two threads change one experiment at once.
const BUSY: &str = "the experiment is changing state; try again";
/// Rank-biased overlap's persistence.
const RBO_P: f64 = 0.9;

// ------------------------------------------------------------------------------ statistics

/// Latency histogram: bucket `i` holds values in [2^(i/8), 2^((i+1)/8)) microseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Histogram {
    counts: Vec<u64>,
}

impl Histogram {
    fn record(&mut self, d: Duration) {
        let us = d.as_secs_f64() * 1e6;
        let i = ((us.max(1.0)).log2() * 8.0).floor().clamp(0.0, 255.0) as usize;
        if self.counts.len() <= i {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
    }

    /// The `q` quantile in milliseconds (the bucket's upper bound), `None` when empty.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let n: u64 = self.counts.iter().sum();
        if n == 0 {
            return None;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(2f64.powf((i + 1) as f64 / 8.0) / 1000.0);
            }
        }
        None
    }
}

/// Count, sum and sum of squares of one per-request quantity.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Moments {
    pub n: u64,
    pub sum: f64,
    pub sum_sq: f64,
}

impl Moments {
    fn add(&mut self, x: f64) {
        self.n += 1;
        self.sum += x;
        self.sum_sq += x * x;
    }
    pub fn mean(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum / self.n as f64
        }
    }
    /// Sample variance (0 below two observations).
    pub fn var(&self) -> f64 {
        if self.n < 2 {
            return 0.0;
        }
        let n = self.n as f64;
        ((self.sum_sq - self.sum * self.sum / n) / (n - 1.0)).max(0.0)
    }
}

/// One arm's live counters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ArmStats {
    /// Searches this arm answered (shadow mode's challenger: shadow searches run).
    pub requests: u64,
    pub errors: u64,
    pub latency: Histogram,
    pub latency_ms: Moments,
    /// Feedback events on searches this arm answered.
    pub feedback_events: u64,
    /// Searches with at least one positive event.
    pub converted: u64,
    /// Sum over searches of their feedback values, and of their squares.
    pub value_sum: f64,
    pub value_sum_sq: f64,
}

impl ArmStats {
    /// One search this arm ran: its latency when it answered, an error when it failed.
    fn record<T, E>(&mut self, outcome: &std::result::Result<T, E>, elapsed: Duration) {
        self.requests += 1;
        match outcome {
            Ok(_) => {
                self.latency.record(elapsed);
                self.latency_ms.add(elapsed.as_secs_f64() * 1e3);
            }
            Err(_) => self.errors += 1,
        }
    }

    fn error_rate(&self) -> f64 {
        ratio(self.errors, self.requests)
    }

    fn json(&self) -> Json {
        json!({
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.error_rate(),
            "p50_ms": self.latency.quantile_ms(0.5),
            "p99_ms": self.latency.quantile_ms(0.99),
            "mean_latency_ms": self.latency_ms.mean(),
            "feedback_events": self.feedback_events,
            "feedback_rate": ratio(self.converted, self.requests),
            "mean_feedback": if self.requests == 0 { 0.0 } else { self.value_sum / self.requests as f64 },
        })
    }

    /// The per-request moments of a decision metric.
    fn moments(&self, metric: &str) -> Moments {
        match metric {
            "feedback_rate" => bernoulli(self.converted, self.requests),
            "error_rate" => bernoulli(self.errors, self.requests),
            "mean_feedback" => Moments {
                n: self.requests,
                sum: self.value_sum,
                sum_sq: self.value_sum_sq,
            },
            _ => self.latency_ms,
        }
    }
}

fn bernoulli(k: u64, n: u64) -> Moments {
    Moments {
        n,
        sum: k as f64,
        sum_sq: k as f64,
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// A shadowed search where the arms disagreed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Disagreement {
    pub request_id: String,
    pub query: String,
    pub overlap: f64,
    pub rbo: f64,
    pub champion: Vec<String>,
    pub challenger: Vec<String>,
}

/// Everything an experiment measures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    pub champion: ArmStats,
    pub challenger: ArmStats,
    /// Searches picked for a shadow run, run, and dropped (budget, queue full).
    pub shadow_sampled: u64,
    pub shadow_run: u64,
    pub shadow_dropped_budget: u64,
    pub shadow_dropped_queue: u64,
    pub shadow_errors: u64,
    /// Vector searches a challenger of another space cannot answer.
    pub incompatible: u64,
    /// Queries compared, and their summed overlap@k and RBO.
    pub compared: u64,
    pub overlap_sum: f64,
    pub rbo_sum: f64,
    pub disagreements: Vec<Disagreement>,
    /// The smallest 1/ratio seen so far (the always-valid p-value).
    pub p_value: Option<f64>,
}

impl Stats {
    fn arm_mut(&mut self, arm: Arm) -> &mut ArmStats {
        match arm {
            Arm::Champion => &mut self.champion,
            Arm::Challenger => &mut self.challenger,
        }
    }

    fn overlap(&self) -> f64 {
        if self.compared == 0 {
            0.0
        } else {
            self.overlap_sum / self.compared as f64
        }
    }

    fn rbo(&self) -> f64 {
        if self.compared == 0 {
            0.0
        } else {
            self.rbo_sum / self.compared as f64
        }
    }

    /// A guardrail metric of the challenger arm and its number of observations.
    fn guard_value(&self, metric: &str) -> (f64, u64) {
        let c = &self.challenger;
        match metric {
            "error_rate" => (c.error_rate(), c.requests),
            "p50_ms" => (c.latency.quantile_ms(0.5).unwrap_or(0.0), c.requests),
            "p99_ms" => (c.latency.quantile_ms(0.99).unwrap_or(0.0), c.requests),
            "overlap" => (self.overlap(), self.compared),
            "rbo" => (self.rbo(), self.compared),
            "feedback_rate" => (ratio(c.converted, c.requests), c.requests),
            _ => (
                if c.requests == 0 {
                    0.0
                } else {
                    c.value_sum / c.requests as f64
                },
                c.requests,
            ),
        }
    }
}

/// overlap@k: shared ids among the first k of each list, over k (over the longer list when
/// both are shorter; two empty lists agree).
pub fn overlap_at(a: &[String], b: &[String], k: usize) -> f64 {
    let (a, b) = (&a[..a.len().min(k)], &b[..b.len().min(k)]);
    let d = a.len().max(b.len());
    if d == 0 {
        return 1.0;
    }
    a.iter().filter(|x| b.contains(x)).count() as f64 / d as f64
}

/// Rank-biased overlap of the first k of each list, extrapolated (Webber, Moffat and Zobel
/// 2010, eq. 32): identical lists score 1, disjoint ones 0.
pub fn rbo(a: &[String], b: &[String], k: usize, p: f64) -> f64 {
    let k = k.min(a.len().max(b.len()));
    if k == 0 {
        return 1.0;
    }
    let (mut seen_a, mut seen_b) = (
        std::collections::HashSet::new(),
        std::collections::HashSet::new(),
    );
    let (mut x, mut sum) = (0usize, 0.0);
    for d in 1..=k {
        let (av, bv) = (a.get(d - 1), b.get(d - 1));
        match (av, bv) {
            (Some(u), Some(w)) if u == w => x += 1,
            _ => {
                x += usize::from(av.is_some_and(|v| seen_b.contains(v)));
                x += usize::from(bv.is_some_and(|v| seen_a.contains(v)));
            }
        }
        seen_a.extend(av);
        seen_b.extend(bv);
        sum += (x as f64 / d as f64) * p.powi(d as i32);
    }
    (x as f64 / k as f64) * p.powi(k as i32) + (1.0 - p) / p * sum
}

/// mSPRT with a normal mixture N(0, tau^2) over the difference of two means: the mixture
/// likelihood ratio `sqrt(V / (V + tau^2)) * exp(d^2 tau^2 / (2 V (V + tau^2)))`, where `d`
/// is the observed difference (challenger - champion) and `V` its variance. `None` until the
/// variance is positive.
pub fn msprt(champion: &Moments, challenger: &Moments, tau: f64) -> Option<(f64, f64)> {
    if champion.n < 2 || challenger.n < 2 {
        return None;
    }
    let v = champion.var() / champion.n as f64 + challenger.var() / challenger.n as f64;
    if v <= 0.0 || !v.is_finite() {
        return None;
    }
    let d = challenger.mean() - champion.mean();
    let t2 = tau * tau;
    let log_ratio = 0.5 * (v / (v + t2)).ln() + d * d * t2 / (2.0 * v * (v + t2));
    Some((log_ratio.exp(), d))
}

/// Metrics where a smaller value is better.
fn lower_is_better(metric: &str) -> bool {
    matches!(metric, "latency_ms" | "error_rate")
}

fn default_tau(metric: &str) -> f64 {
    match metric {
        "feedback_rate" | "error_rate" => 0.1,
        "mean_feedback" => 0.5,
        _ => 1.0,
    }
}

// ------------------------------------------------------------------------------ live state

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    Champion,
    Challenger,
}

impl Arm {
    fn other(self) -> Arm {
        match self {
            Arm::Champion => Arm::Challenger,
            Arm::Challenger => Arm::Champion,
        }
    }
}

/// A running (or paused) experiment in memory.
pub struct Live {
    /// The record as of the last state change.
    record: Mutex<Experiment>,
    stats: Mutex<Stats>,
    /// Vector queries may go to the challenger (both fields in one space).
    vectors_compatible: bool,
    /// A state change is being made (only one thread acts).
    acting: AtomicBool,
    dirty: AtomicBool,
    /// The shadow CPU budget.
    bucket: Mutex<Bucket>,
}

impl Live {
    fn id(&self) -> String {
        self.record.lock().id.clone()
    }
    fn running(&self) -> bool {
        self.record.lock().status == RUNNING
    }
}

/// A search remembered for feedback.
struct Served {
    live: Arc<Live>,
    arm: Arm,
    /// Hit ids per query.
    hits: Vec<Vec<String>>,
    converted: bool,
    value: f64,
}

#[derive(Default)]
struct RequestLog {
    map: HashMap<String, Served>,
    order: VecDeque<String>,
}

impl RequestLog {
    fn insert(&mut self, id: String, s: Served) {
        if self.map.insert(id.clone(), s).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > REQUEST_LOG {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }
}

/// Seconds of shadow work allowed, refilled at `rate` per second up to one second's worth.
/// Admission reserves the average cost of recent shadow searches; completion settles the
/// difference, so a burst cannot queue more work than the budget covers.
struct Bucket {
    tokens: f64,
    at: Instant,
    /// Moving average of a shadow search's seconds.
    avg_cost: f64,
}

struct ShadowJob {
    ctx: Ctx,
    live: Arc<Live>,
    arm: Arm,
    req: SearchRequest,
    /// The answering arm's hits per query.
    served: Vec<Vec<String>>,
    request_id: String,
}

/// Every experiment the server runs.
pub struct Experiments {
    registry: Arc<Registry>,
    engine: Arc<quiver_engine::Engine>,
    /// (db, alias) -> the active experiment.
    live: RwLock<HashMap<(String, String), Arc<Live>>>,
    requests: Mutex<RequestLog>,
    shadow: SyncSender<ShadowJob>,
    dir: PathBuf,
}

impl std::fmt::Debug for Experiments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Experiments").finish_non_exhaustive()
    }
}

fn hash01(a: &str, b: &str) -> f64 {
    // FNV-1a, then a SplitMix64 finaliser: stable across runs and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in a.bytes().chain([0u8]).chain(b.bytes()) {
        h ^= byte as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

static UNKEYED: AtomicU64 = AtomicU64::new(0);
static REQUESTS: AtomicU64 = AtomicU64::new(0);

/// A request id for a search whose client sent none: the process's start time and a counter.
pub fn new_request_id() -> String {
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    });
    format!("q{start:x}-{:x}", REQUESTS.fetch_add(1, Ordering::Relaxed))
}

impl Experiments {
    /// The manager, with the active experiments of the registry loaded (their counters from
    /// the last checkpoint) and the shadow worker started.
    pub fn new(registry: Arc<Registry>, engine: Arc<quiver_engine::Engine>) -> Arc<Experiments> {
        let (tx, rx) = mpsc::sync_channel(SHADOW_QUEUE);
        let dir = registry.dir().join("experiments");
        let x = Arc::new(Experiments {
            registry,
            engine,
            live: Default::default(),
            requests: Default::default(),
            shadow: tx,
            dir,
        });
        for rec in x.registry.experiments(None) {
            if rec.is_active() {
                let stats = std::fs::read(x.dir.join(format!("{}.json", rec.id)))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Stats>(&b).ok())
                    .unwrap_or_default();
                x.install(rec, stats);
            }
        }
        let weak = Arc::downgrade(&x);
        std::thread::Builder::new()
            .name("quiver-shadow".into())
            .spawn(move || shadow_worker(weak, rx))
            .ok();
        x
    }

    fn install(&self, rec: Experiment, stats: Stats) -> Arc<Live> {
        let compatible = self.same_space(&rec.champion, &rec.challenger);
        let key = (rec.champion.db.clone(), rec.alias.clone());
        let live = Arc::new(Live {
            record: Mutex::new(rec),
            stats: Mutex::new(stats),
            vectors_compatible: compatible,
            acting: AtomicBool::new(false),
            dirty: AtomicBool::new(false),
            bucket: Mutex::new(Bucket {
                tokens: 0.0,
                at: Instant::now(),
                avg_cost: 0.0,
            }),
        });
        self.live.write().insert(key, Arc::clone(&live));
        live
    }

    /// Both bundles' fields hold vectors of one space: bound to the same space, or both
    /// unbound with the same type and dimension.
    fn same_space(&self, a: &Bundle, b: &Bundle) -> bool {
        let field = |x: &Bundle| {
            let (m, _) = self.engine.collection(&x.db, &x.collection).ok()?;
            let f = m.schema.field(&x.field)?.clone();
            let space = self.registry.binding(m.id, &x.field).map(|b| b.space_id);
            Some((f.data_type, f.dim(), space))
        };
        match (field(a), field(b)) {
            (Some((ta, da, sa)), Some((tb, db, sb))) => match (sa, sb) {
                (Some(x), Some(y)) => x == y,
                (None, None) => ta == tb && da == db,
                _ => false,
            },
            _ => false,
        }
    }

    /// The running experiment of `alias` in `db`, if any.
    pub fn running(&self, db: &str, alias: &str) -> Option<Arc<Live>> {
        let map = self.live.read();
        if map.is_empty() {
            return None;
        }
        map.get(&(db.to_string(), alias.to_string()))
            .filter(|l| l.running())
            .cloned()
    }

    // ---------------------------------------------------------------------- the search path

    /// Answer one search on an alias with a running experiment.
    pub fn search(&self, ctx: &Ctx, live: &Arc<Live>, req: SearchRequest) -> Result<SearchResults> {
        let p = Params::new(&req.search_params);
        if p.bool("iterator") {
            return crate::search::plain_search(ctx, req);
        }
        let rec = live.record.lock().clone();
        // The alias moved outside the experiment (a manual promote or rollback whose stop did
        // not land): its champion is gone, so the experiment ends here.
        if self
            .registry
            .serving_revision(&rec.alias)
            .is_some_and(|r| r != rec.champion_revision)
        {
            self.alias_moved(&rec.champion.db, &rec.alias, "experiment");
            return crate::search::plain_search(ctx, req);
        }
        let u = match assignment_key(ctx, &req, &rec.assignment) {
            Some(key) => hash01(&rec.id, &key),
            None => hash01(
                &rec.id,
                &UNKEYED.fetch_add(1, Ordering::Relaxed).to_string(),
            ),
        };
        let compatible = live.vectors_compatible || is_text_query(&req);
        let ab = rec.mode == "ab";
        let picked = u < rec.traffic;
        let served_arm = if ab && picked && compatible {
            Arm::Challenger
        } else {
            Arm::Champion
        };
        let shadow = compatible
            && if ab {
                hash01(&rec.id, &format!("shadow:{}", ctx.request_id)) < rec.shadow_sample
            } else {
                picked
            };
        if !compatible && (picked || ab) {
            live.stats.lock().incompatible += 1;
        }
        let shadow_req = shadow.then(|| arm_request(&rec, served_arm.other(), &req));
        let started = Instant::now();
        let (resp, arm) = match served_arm {
            Arm::Champion => (crate::search::plain_search(ctx, req), Arm::Champion),
            Arm::Challenger => {
                match crate::search::plain_search(
                    &ctx.without_space(),
                    arm_request(&rec, Arm::Challenger, &req),
                ) {
                    Ok(r) => (Ok(r), Arm::Challenger),
                    Err(e) => {
                        tracing::debug!(experiment = rec.id, "challenger failed: {e}");
                        let failed: std::result::Result<(), _> = Err(&e);
                        live.stats.lock().challenger.record(&failed, Duration::ZERO);
                        (crate::search::plain_search(ctx, req), Arm::Champion)
                    }
                }
            }
        };
        let elapsed = started.elapsed();
        let hits = resp.as_ref().map(hits_of).unwrap_or_default();
        live.stats.lock().arm_mut(arm).record(&resp, elapsed);
        live.dirty.store(true, Ordering::Relaxed);
        if resp.is_ok() {
            self.requests.lock().insert(
                ctx.request_id.clone(),
                Served {
                    live: Arc::clone(live),
                    arm,
                    hits: hits.clone(),
                    converted: false,
                    value: 0.0,
                },
            );
        }
        // After a challenger failure the champion answered: a shadow of the champion would
        // compare it with itself.
        if let (Some(req), Ok(_), true) = (shadow_req, &resp, arm == served_arm) {
            self.enqueue_shadow(ctx, live, served_arm.other(), req, hits, &rec);
        }
        self.check(live);
        resp
    }

    fn enqueue_shadow(
        &self,
        ctx: &Ctx,
        live: &Arc<Live>,
        arm: Arm,
        req: SearchRequest,
        served: Vec<Vec<String>>,
        rec: &Experiment,
    ) {
        let mut st = live.stats.lock();
        st.shadow_sampled += 1;
        {
            let mut b = live.bucket.lock();
            let now = Instant::now();
            let rate = rec.cpu_budget;
            b.tokens =
                (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(rate.max(0.05));
            b.at = now;
            if b.tokens <= 0.0 {
                st.shadow_dropped_budget += 1;
                return;
            }
            b.tokens -= b.avg_cost;
        }
        let job = ShadowJob {
            ctx: ctx.without_space(),
            live: Arc::clone(live),
            arm,
            req,
            served,
            request_id: ctx.request_id.clone(),
        };
        match self.shadow.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                st.shadow_dropped_queue += 1
            }
        }
    }

    fn run_shadow(&self, job: ShadowJob) {
        if !job.live.running() {
            return;
        }
        let (k, ab) = {
            let r = job.live.record.lock();
            (r.k as usize, r.mode == "ab")
        };
        let query = query_label(&job.req);
        let started = Instant::now();
        let resp = crate::search::plain_search(&job.ctx, job.req);
        let elapsed = started.elapsed();
        {
            let mut b = job.live.bucket.lock();
            let cost = elapsed.as_secs_f64();
            // Settle the reservation made at admission, then update the average.
            b.tokens -= cost - b.avg_cost;
            b.avg_cost = if b.avg_cost == 0.0 {
                cost
            } else {
                0.8 * b.avg_cost + 0.2 * cost
            };
        }
        let mut st = job.live.stats.lock();
        st.shadow_run += 1;
        if !ab {
            st.arm_mut(job.arm).record(&resp, elapsed);
        }
        match resp {
            Err(e) => {
                st.shadow_errors += 1;
                tracing::debug!("shadow search failed: {e}");
            }
            Ok(r) => {
                let other = hits_of(&r);
                let (mut ov, mut rb, mut n) = (0.0, 0.0, 0usize);
                let (mut champ, mut chall) = (Vec::new(), Vec::new());
                for (i, served) in job.served.iter().enumerate() {
                    let empty = Vec::new();
                    let shadowed = other.get(i).unwrap_or(&empty);
                    let (c, h) = match job.arm {
                        Arm::Challenger => (served, shadowed),
                        Arm::Champion => (shadowed, served),
                    };
                    ov += overlap_at(c, h, k);
                    rb += rbo(c, h, k, RBO_P);
                    n += 1;
                    if i == 0 {
                        champ = c.iter().take(k).cloned().collect();
                        chall = h.iter().take(k).cloned().collect();
                    }
                }
                if n > 0 {
                    st.compared += n as u64;
                    st.overlap_sum += ov;
                    st.rbo_sum += rb;
                    let (ov, rb) = (ov / n as f64, rb / n as f64);
                    if ov < 1.0 {
                        st.disagreements.push(Disagreement {
                            request_id: job.request_id.clone(),
                            query,
                            overlap: ov,
                            rbo: rb,
                            champion: champ,
                            challenger: chall,
                        });
                        st.disagreements.sort_by(|a, b| {
                            a.rbo
                                .total_cmp(&b.rbo)
                                .then(a.overlap.total_cmp(&b.overlap))
                        });
                        st.disagreements.truncate(DISAGREEMENTS);
                    }
                }
            }
        }
        drop(st);
        job.live.dirty.store(true, Ordering::Relaxed);
        self.check(&job.live);
    }

    // ---------------------------------------------------------------------- feedback

    /// Record one feedback event on a remembered search.
    pub fn feedback(
        &self,
        request_id: &str,
        doc_id: &Json,
        event: &str,
        value: Option<f64>,
    ) -> std::result::Result<Json, RegistryError> {
        let value = match (event, value) {
            ("click", None) => 1.0,
            ("click", Some(v)) if v >= 0.0 && v.is_finite() => v,
            ("dwell", Some(v)) if v >= 0.0 && v.is_finite() => v,
            ("thumb", Some(v)) if (-1.0..=1.0).contains(&v) => v,
            ("click" | "dwell" | "thumb", v) => {
                return Err(RegistryError::BadRequest(format!(
                    "feedback {event} needs {}, got {v:?}",
                    match event {
                        "click" => "a value >= 0 (default 1)",
                        "dwell" => "a value: seconds >= 0",
                        _ => "a value in [-1, 1]",
                    }
                )))
            }
            (other, _) => {
                return Err(RegistryError::BadRequest(format!(
                    "unknown feedback event {other:?} (expected click, dwell or thumb)"
                )))
            }
        };
        let doc = match doc_id {
            Json::String(s) => s.clone(),
            Json::Number(n) => n.to_string(),
            _ => {
                return Err(RegistryError::BadRequest(
                    "doc_id must be a string or a number".into(),
                ))
            }
        };
        let mut log = self.requests.lock();
        let Some(s) = log.map.get_mut(request_id) else {
            return Err(RegistryError::NotFound(format!(
                "request {request_id} is not known: feedback is kept for the last {REQUEST_LOG} searches on serving aliases with a running experiment"
            )));
        };
        // Its rank in the first query's hits that hold it.
        let rank = s
            .hits
            .iter()
            .find_map(|q| q.iter().position(|h| *h == doc))
            .map(|r| r + 1);
        let live = Arc::clone(&s.live);
        let arm = s.arm;
        let newly = value > 0.0 && !s.converted;
        s.converted |= value > 0.0;
        let (before, after) = (s.value, s.value + value);
        s.value = after;
        drop(log);
        {
            let mut st = live.stats.lock();
            let a = st.arm_mut(arm);
            a.feedback_events += 1;
            if newly {
                a.converted += 1;
            }
            a.value_sum += value;
            a.value_sum_sq += after * after - before * before;
        }
        live.dirty.store(true, Ordering::Relaxed);
        self.check(&live);
        Ok(json!({"request_id": request_id, "experiment": live.id(), "arm": arm, "rank": rank}))
    }

    // ---------------------------------------------------------------------- guardrails, decision

    /// Check guardrails and the decision rule; act when one fires.
    fn check(&self, live: &Arc<Live>) {
        let rec = live.record.lock().clone();
        if rec.status != RUNNING {
            return;
        }
        let mut st = live.stats.lock();
        for g in &rec.guardrails {
            let (v, n) = st.guard_value(&g.metric);
            if n == 0 || n < g.min_samples {
                continue;
            }
            let broken = g.min.is_some_and(|m| v < m) || g.max.is_some_and(|m| v > m);
            if broken {
                let outcome = json!({"by": "guardrail", "guardrail": g, "value": v, "samples": n});
                let to = if g.action == "rollback" {
                    ROLLED_BACK
                } else {
                    PAUSED
                };
                drop(st);
                let _ = self.act(live, to, outcome, "experiment");
                return;
            }
        }
        let Some(d) = &rec.decision else {
            return;
        };
        let (a, b) = (
            st.champion.moments(&d.metric),
            st.challenger.moments(&d.metric),
        );
        if a.n < d.min_samples || b.n < d.min_samples {
            return;
        }
        let Some((ratio, diff)) = msprt(&a, &b, d.tau.unwrap_or_else(|| default_tau(&d.metric)))
        else {
            return;
        };
        let p = st
            .p_value
            .map_or(1.0 / ratio, |p| p.min(1.0 / ratio))
            .min(1.0);
        st.p_value = Some(p);
        // The always-valid p-value decides (the ratio itself may fall back below 1/alpha).
        if p > d.alpha {
            return;
        }
        let challenger_wins = if lower_is_better(&d.metric) {
            diff < 0.0
        } else {
            diff > 0.0
        };
        drop(st);
        let outcome = json!({
            "by": "decision", "metric": d.metric, "test": d.test, "alpha": d.alpha,
            "ratio": ratio, "p_value": p, "difference": diff,
            "winner": if challenger_wins { "challenger" } else { "champion" },
        });
        if challenger_wins && rec.on_success == "promote" {
            if let Err(e) = self.act(live, PROMOTED, outcome.clone(), "experiment") {
                if !matches!(&e, RegistryError::Conflict(m) if m == BUSY) {
                    // The promotion was refused (the alias moved, the bundle went away): the
                    // verdict stands, recorded with why it did not promote.
                    let mut outcome = outcome;
                    outcome["promotion_error"] = json!(e.to_string());
                    let _ = self.act(live, CONCLUDED, outcome, "experiment");
                }
            }
        } else {
            let _ = self.act(live, CONCLUDED, outcome, "experiment");
        }
    }

    /// Move an experiment to `to` (promoting first when `to` is `promoted`); one thread at a
    /// time, and only from a state that allows it.
    fn act(
        &self,
        live: &Arc<Live>,
        to: &str,
        outcome: Json,
        actor: &str,
    ) -> std::result::Result<Experiment, RegistryError> {
        if live
            .acting
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(RegistryError::Conflict(BUSY.into()));
        }
        let r = self.act_locked(live, to, outcome, actor);
        live.acting.store(false, Ordering::Release);
        if let Err(e) = &r {
            tracing::warn!("experiment {}: {e}", live.id());
        }
        r
    }

    fn act_locked(
        &self,
        live: &Arc<Live>,
        to: &str,
        mut outcome: Json,
        actor: &str,
    ) -> std::result::Result<Experiment, RegistryError> {
        let rec = live.record.lock().clone();
        let from: &[&str] = match to {
            PAUSED => &[RUNNING],
            RUNNING => &[PAUSED],
            _ => &[RUNNING, PAUSED],
        };
        if !from.contains(&rec.status.as_str()) {
            return Err(RegistryError::Conflict(format!(
                "experiment {} is {}, so it cannot become {to}",
                rec.id, rec.status
            )));
        }
        let snapshot = self.snapshot(live);
        if to == PROMOTED {
            let reason = format!(
                "experiment {} ({} mode): challenger promoted",
                rec.id, rec.mode
            );
            // The experiment first, then what the caller adds (an offline evaluation's id).
            let mut evidence = vec![rec.id.clone()];
            if let Some(more) = outcome.get("evidence").and_then(Json::as_array) {
                evidence.extend(more.iter().filter_map(Json::as_str).map(str::to_string));
            }
            let revision = match crate::rest::v1::promote_serving(
                &self.engine,
                &self.registry,
                &rec.alias,
                rec.challenger.clone(),
                rec.champion_revision,
                &reason,
                evidence,
                actor,
            ) {
                Ok(sa) => sa.revision,
                // The registry moved but the Milvus alias did not follow (reconciled at the
                // next start): promoted all the same, and recorded as such.
                Err(e) => match self.promoted_by(&rec) {
                    Some(r) => {
                        tracing::warn!("experiment {}: {e}", rec.id);
                        r
                    }
                    None => return Err(e),
                },
            };
            if let Some(o) = outcome.as_object_mut() {
                o.insert("revision".into(), json!(revision));
            }
        }
        let update = || {
            self.registry.update_experiment(
                &rec.id,
                from,
                to,
                Some(outcome.clone()),
                Some(snapshot.clone()),
                actor,
            )
        };
        // After a promotion the record must follow it: one retry on an I/O failure.
        let updated = match update() {
            Err(RegistryError::Io { .. } | RegistryError::Internal(_)) if to == PROMOTED => {
                update()?
            }
            r => r?,
        };
        *live.record.lock() = updated.clone();
        if !updated.is_active() {
            self.live.write().retain(|_, l| !Arc::ptr_eq(l, live));
            let _ = std::fs::remove_file(self.dir.join(format!("{}.json", updated.id)));
        }
        Ok(updated)
    }

    /// The serving revision this experiment's promotion made, if it was made.
    fn promoted_by(&self, rec: &Experiment) -> Option<u32> {
        let hist = self.registry.serving_history(&rec.alias).ok()?;
        hist.iter()
            .find(|r| {
                r.revision > rec.champion_revision
                    && r.kind == "promoted"
                    && r.evidence.first() == Some(&rec.id)
            })
            .map(|r| r.revision)
    }

    // ---------------------------------------------------------------------- the REST side

    /// Start an experiment (the REST handler validated the request into `rec`).
    pub fn start(&self, rec: Experiment, actor: &str) -> std::result::Result<Json, RegistryError> {
        let created = self.registry.create_experiment(rec, actor)?;
        let live = self.install(created, Stats::default());
        let rec = live.record.lock().clone();
        Ok(self.view(&rec, Some(&live)))
    }

    /// A user's state change: `pause`, `resume`, `stop` or `promote` (whose serving revision
    /// lists this experiment and then `evidence` as its evidence).
    pub fn control(
        &self,
        alias: &str,
        id: &str,
        action: &str,
        reason: &str,
        evidence: Vec<String>,
        actor: &str,
    ) -> std::result::Result<Json, RegistryError> {
        let rec = self.registry.experiment(id)?;
        if rec.alias != alias {
            return Err(RegistryError::NotFound(format!(
                "serving alias {alias} has no experiment {id}"
            )));
        }
        let live = self.live_of(id).ok_or_else(|| {
            RegistryError::Conflict(format!(
                "experiment {id} is {} and cannot change",
                rec.status
            ))
        })?;
        let to = match action {
            "pause" => PAUSED,
            "resume" => RUNNING,
            "stop" => STOPPED,
            "promote" => PROMOTED,
            other => {
                return Err(RegistryError::BadRequest(format!(
                    "unknown action {other} (pause, resume, stop or promote)"
                )))
            }
        };
        let mut outcome = json!({"by": actor, "action": action, "reason": reason});
        if !evidence.is_empty() {
            outcome["evidence"] = json!(evidence);
        }
        let updated = self.act(&live, to, outcome, actor)?;
        Ok(self.view(&updated, self.live_of(id).as_ref()))
    }

    /// End the active experiment of an alias that moved by hand (its champion is gone).
    pub fn alias_moved(&self, db: &str, alias: &str, actor: &str) {
        let live = self
            .live
            .read()
            .get(&(db.to_string(), alias.to_string()))
            .cloned();
        if let Some(live) = live {
            let outcome = json!({"by": actor, "action": "stop", "reason": "the serving alias moved outside the experiment"});
            let _ = self.act(&live, STOPPED, outcome, actor);
        }
    }

    fn live_of(&self, id: &str) -> Option<Arc<Live>> {
        self.live.read().values().find(|l| l.id() == id).cloned()
    }

    /// One experiment with its live metrics.
    pub fn get(&self, alias: &str, id: &str) -> std::result::Result<Json, RegistryError> {
        let rec = self.registry.experiment(id)?;
        if rec.alias != alias {
            return Err(RegistryError::NotFound(format!(
                "serving alias {alias} has no experiment {id}"
            )));
        }
        let live = self.live_of(id);
        let rec = live.as_ref().map_or(rec, |l| l.record.lock().clone());
        Ok(self.view(&rec, live.as_ref()))
    }

    /// Every experiment of an alias (with live metrics for the active one).
    pub fn list(&self, alias: &str) -> Json {
        let v: Vec<Json> = self
            .registry
            .experiments(Some(alias))
            .into_iter()
            .map(|r| {
                let live = self.live_of(&r.id);
                self.view(&r, live.as_ref())
            })
            .collect();
        json!({"experiments": v})
    }

    fn snapshot(&self, live: &Live) -> Json {
        let rec = live.record.lock().clone();
        let st = live.stats.lock().clone();
        metrics_json(&rec, &st)
    }

    fn view(&self, rec: &Experiment, live: Option<&Arc<Live>>) -> Json {
        let mut v = serde_json::to_value(rec).unwrap_or(Json::Null);
        let mut metrics = match live {
            Some(l) => self.snapshot(l),
            None => rec.snapshot.clone().unwrap_or(Json::Null),
        };
        // The snapshot is taken before the verdict is recorded: the record has it.
        if let Some(d) = metrics.get_mut("decision").filter(|d| d.is_object()) {
            d["verdict"] = verdict(rec);
        }
        if let Some(o) = v.as_object_mut() {
            o.remove("snapshot");
            o.insert("metrics".into(), metrics);
        }
        v
    }

    /// Save the counters of experiments that changed since the last call (every 2 s from the
    /// shadow worker, and when the server stops).
    pub fn checkpoint(&self) {
        let lives: Vec<Arc<Live>> = self.live.read().values().cloned().collect();
        for l in lives {
            if !l.dirty.swap(false, Ordering::Relaxed) {
                continue;
            }
            if !l.record.lock().is_active() {
                continue;
            }
            let st = l.stats.lock().clone();
            let id = l.id();
            if let Err(e) = write_atomic(&self.dir, &format!("{id}.json"), &st) {
                tracing::warn!("experiment {id}: checkpoint failed: {e}");
            }
        }
    }
}

fn write_atomic(dir: &std::path::Path, name: &str, st: &Stats) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(st).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))
}

/// The winner a decision named, if the experiment ended by one.
fn verdict(rec: &Experiment) -> Json {
    rec.outcome
        .as_ref()
        .filter(|o| o.get("by").and_then(Json::as_str) == Some("decision"))
        .and_then(|o| o.get("winner"))
        .cloned()
        .unwrap_or(Json::Null)
}

/// The live metrics of an experiment as JSON.
fn metrics_json(rec: &Experiment, st: &Stats) -> Json {
    let decision = rec.decision.as_ref().map(|d| {
        let (a, b) = (
            st.champion.moments(&d.metric),
            st.challenger.moments(&d.metric),
        );
        let tau = d.tau.unwrap_or_else(|| default_tau(&d.metric));
        let m = msprt(&a, &b, tau);
        json!({
            "metric": d.metric, "test": d.test, "alpha": d.alpha, "tau": tau,
            "threshold": 1.0 / d.alpha,
            "ratio": m.map(|x| x.0), "difference": m.map(|x| x.1),
            "champion_mean": a.mean(), "challenger_mean": b.mean(),
            "samples": [a.n, b.n], "min_samples": d.min_samples,
            "p_value": st.p_value,
            "verdict": verdict(rec),
        })
    });
    let mut worst = st.disagreements.clone();
    worst.truncate(10);
    json!({
        "arms": {"champion": st.champion.json(), "challenger": st.challenger.json()},
        "shadow": {
            "sampled": st.shadow_sampled, "run": st.shadow_run,
            "dropped_budget": st.shadow_dropped_budget, "dropped_queue": st.shadow_dropped_queue,
            "errors": st.shadow_errors,
        },
        "incompatible": st.incompatible,
        "compared": st.compared,
        "overlap": (st.compared > 0).then(|| st.overlap()),
        "rbo": (st.compared > 0).then(|| st.rbo()),
        "decision": decision,
        "disagreements": worst,
    })
}

fn shadow_worker(x: std::sync::Weak<Experiments>, rx: Receiver<ShadowJob>) {
    let mut last_save = Instant::now();
    loop {
        let job = rx.recv_timeout(Duration::from_secs(1));
        let Some(x) = x.upgrade() else { return };
        match job {
            Ok(job) => x.run_shadow(job),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        if last_save.elapsed() >= Duration::from_secs(2) {
            x.checkpoint();
            last_save = Instant::now();
        }
    }
}

// ------------------------------------------------------------------------------ requests

/// The sticky key of a search: the named header, or the named filter template parameter.
fn assignment_key(ctx: &Ctx, req: &SearchRequest, assignment: &Json) -> Option<String> {
    if let Some(h) = assignment.get("header").and_then(Json::as_str) {
        let h = h.to_ascii_lowercase();
        if h == "client-request-id" || h == "client_request_id" {
            return ctx.client_request_id.clone();
        }
        return ctx.header(&h);
    }
    let f = assignment.get("field").and_then(Json::as_str)?;
    let v = req.expr_template_values.get(f)?;
    Some(format!("{v:?}"))
}

fn is_text_query(req: &SearchRequest) -> bool {
    matches!(
        query_vectors(&req.placeholder_group),
        Ok(QueryVectors::Text(_))
    )
}

fn query_label(req: &SearchRequest) -> String {
    match query_vectors(&req.placeholder_group) {
        Ok(QueryVectors::Text(t)) => t.first().cloned().unwrap_or_default(),
        Ok(QueryVectors::F32(v)) => format!("<{} float vector(s)>", v.len()),
        Ok(QueryVectors::Binary(_)) => "<binary vector(s)>".into(),
        Ok(QueryVectors::Sparse(v)) => format!("<{} sparse vector(s)>", v.len()),
        Err(_) => String::new(),
    }
}

/// The search as the given arm runs it: the champion's is the request itself (the alias
/// resolves to its bundle); the challenger's names its collection and field, and its bundle's
/// search parameters win over the request's.
fn arm_request(rec: &Experiment, arm: Arm, req: &SearchRequest) -> SearchRequest {
    let mut r = req.clone();
    if arm == Arm::Champion {
        return r;
    }
    let b = &rec.challenger;
    r.collection_name = b.collection.clone();
    r.db_name = b.db.clone();
    let mut params = Params::new(&r.search_params)
        .json_object("params")
        .unwrap_or_default();
    if let Some(o) = b.search_params.as_object() {
        for (k, v) in o {
            params.insert(k.clone(), v.clone());
        }
    }
    r.search_params
        .retain(|kv| kv.key != "anns_field" && kv.key != "params");
    r.search_params.push(KeyValuePair {
        key: "anns_field".into(),
        value: b.field.clone(),
    });
    r.search_params.push(KeyValuePair {
        key: "params".into(),
        value: Json::Object(params).to_string(),
    });
    r
}

/// The primary keys of each query's hits, as strings.
pub fn hits_of(r: &SearchResults) -> Vec<Vec<String>> {
    use crate::proto::schema::i_ds::IdField;
    let Some(data) = &r.results else {
        return Vec::new();
    };
    let ids: Vec<String> = match data.ids.as_ref().and_then(|i| i.id_field.as_ref()) {
        Some(IdField::IntId(v)) => v.data.iter().map(|x| x.to_string()).collect(),
        Some(IdField::StrId(v)) => v.data.clone(),
        None => Vec::new(),
    };
    let mut out = Vec::with_capacity(data.topks.len());
    let mut at = 0usize;
    for &k in &data.topks {
        let k = k.max(0) as usize;
        let end = (at + k).min(ids.len());
        out.push(ids[at..end].to_vec());
        at = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u32]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn overlap_and_rbo() {
        let a = ids(&[1, 2, 3, 4]);
        assert_eq!(overlap_at(&a, &a, 4), 1.0);
        assert!((rbo(&a, &a, 4, 0.9) - 1.0).abs() < 1e-12);
        let b = ids(&[5, 6, 7, 8]);
        assert_eq!(overlap_at(&a, &b, 4), 0.0);
        assert_eq!(rbo(&a, &b, 4, 0.9), 0.0);
        // Same set, reversed: overlap 1, RBO below 1 (the top ranks differ).
        let r = ids(&[4, 3, 2, 1]);
        assert_eq!(overlap_at(&a, &r, 4), 1.0);
        let x = rbo(&a, &r, 4, 0.9);
        assert!(x < 1.0 && x > 0.5, "{x}");
        // A swap at the top costs more than a swap at the bottom.
        let top = ids(&[2, 1, 3, 4]);
        let bottom = ids(&[1, 2, 4, 3]);
        assert!(rbo(&a, &top, 4, 0.9) < rbo(&a, &bottom, 4, 0.9));
        assert_eq!(overlap_at(&a, &ids(&[1, 9]), 4), 0.25);
        assert_eq!(overlap_at(&[], &[], 10), 1.0);
    }

    #[test]
    fn msprt_grows_with_evidence_and_not_without() {
        let arm = |k: u64, n: u64| bernoulli(k, n);
        // No difference: the ratio stays small however many samples.
        let (r, _) = msprt(&arm(300, 1000), &arm(300, 1000), 0.1).unwrap();
        assert!(r < 1.0, "{r}");
        // A real difference: past 1/alpha with enough samples, not with few.
        let (small, _) = msprt(&arm(3, 10), &arm(5, 10), 0.1).unwrap();
        let (large, d) = msprt(&arm(300, 1000), &arm(500, 1000), 0.1).unwrap();
        assert!(small < 20.0 && large > 1e6, "{small} {large}");
        assert!((d - 0.2).abs() < 1e-12);
        assert!(msprt(&arm(0, 100), &arm(0, 100), 0.1).is_none());
    }

    #[test]
    fn sticky_hashing_splits_by_share() {
        let n = 20_000;
        let inside = (0..n)
            .filter(|i| hash01("exp-1", &format!("user{i}")) < 0.3)
            .count();
        let share = inside as f64 / n as f64;
        assert!((share - 0.3).abs() < 0.02, "{share}");
        assert_eq!(hash01("exp-1", "u"), hash01("exp-1", "u"));
        assert_ne!(hash01("exp-1", "u"), hash01("exp-2", "u"));
    }

    #[test]
    fn histogram_quantiles() {
        let mut h = Histogram::default();
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.quantile_ms(0.5).unwrap();
        let p99 = h.quantile_ms(0.99).unwrap();
        assert!((45.0..60.0).contains(&p50), "{p50}");
        assert!((95.0..115.0).contains(&p99), "{p99}");
        assert!(Histogram::default().quantile_ms(0.5).is_none());
    }
}
