//! Prometheus metrics: a small hand-rolled registry and its text exposition (format 0.0.4).
//!
//! Families (all process-wide; `render` writes them in this order, series sorted by label):
//!
//! | name | type | labels | meaning |
//! |------|------|--------|---------|
//! | `quiver_requests_total` | counter | protocol, method, code | requests answered |
//! | `quiver_request_duration_seconds` | histogram | protocol, method, code | time to answer |
//! | `quiver_rows_inserted_total` / `_upserted_total` / `_deleted_total` | counter | | rows written |
//! | `quiver_databases`, `quiver_collections` | gauge | | catalog sizes, read at scrape time |
//!
//! `protocol` is `grpc` (method: the RPC, e.g. `search`) or `rest` (method: the endpoint, e.g.
//! `entities/search`); `code` is the Milvus status code of the answer (0 on success). A REST
//! request is counted once, under its endpoint: the RPCs it is translated into carry the
//! [`Internal`] extension and are not counted again (their rows are, wherever they came from).
//!
//! Why hand-rolled rather than `metrics` + `metrics-exporter-prometheus`: the exporter (even
//! without default features) brings ~18 crates (evmap, quanta, a second `rand`, sketches, ...)
//! for what is four families with static label values; this is ~200 lines, allocation-free on
//! the request path (a read-locked map lookup and a few relaxed atomic adds).

use std::any::Any;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use quiver_engine::Engine;

use crate::proto::milvus::MutationResult;

/// Marker extension on the gRPC requests that a REST endpoint makes internally: the request is
/// already counted under its REST endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Internal;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One (protocol, method, code) series: a counter and a latency histogram.
#[derive(Default)]
struct Series {
    count: AtomicU64,
    sum_ns: AtomicU64,
    /// Non-cumulative: `buckets[i]` counts observations in `(BUCKETS[i-1], BUCKETS[i]]`.
    buckets: [AtomicU64; BUCKETS.len()],
}

type Key = (&'static str, &'static str, i32);

#[derive(Default)]
struct Registry {
    requests: RwLock<HashMap<Key, Arc<Series>>>,
    inserted: AtomicU64,
    upserted: AtomicU64,
    deleted: AtomicU64,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::default);

impl Registry {
    fn series(&self, key: Key) -> Arc<Series> {
        if let Some(s) = self
            .requests
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Arc::clone(s);
        }
        let mut map = self.requests.write().unwrap_or_else(|e| e.into_inner());
        Arc::clone(map.entry(key).or_default())
    }
}

/// Count one answered request and its latency.
pub fn record_request(protocol: &'static str, method: &'static str, code: i32, took: Duration) {
    let s = REGISTRY.series((protocol, method, code));
    s.count.fetch_add(1, Ordering::Relaxed);
    s.sum_ns.fetch_add(
        took.as_nanos().min(u64::MAX as u128) as u64,
        Ordering::Relaxed,
    );
    let secs = took.as_secs_f64();
    if let Some(i) = BUCKETS.iter().position(|le| secs <= *le) {
        s.buckets[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// Count the rows a successful write RPC reports (Insert, Upsert, Delete); other responses are
/// ignored.
pub fn observe_rows<R: Any>(rpc: &str, resp: &R) {
    let Some(m) = (resp as &dyn Any).downcast_ref::<MutationResult>() else {
        return;
    };
    if m.status.as_ref().is_some_and(|s| s.code != 0) {
        return;
    }
    let (counter, n) = match rpc {
        "insert" => (&REGISTRY.inserted, m.insert_cnt),
        "upsert" => (&REGISTRY.upserted, m.upsert_cnt),
        "delete" => (&REGISTRY.deleted, m.delete_cnt),
        _ => return,
    };
    counter.fetch_add(n.max(0) as u64, Ordering::Relaxed);
}

/// The bookkeeping after a gRPC handler answered: rows always, the request itself unless REST
/// made it (`internal`).
pub fn after_rpc<R: Any>(rpc: &'static str, internal: bool, code: i32, took: Duration, resp: &R) {
    observe_rows(rpc, resp);
    if !internal {
        record_request("grpc", rpc, code, took);
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The Prometheus text exposition of every metric; catalog gauges are read from `engine` now.
pub fn render(engine: &Engine) -> String {
    let mut out = String::with_capacity(4096);
    let mut series: Vec<(Key, Arc<Series>)> = REGISTRY
        .requests
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(k, v)| (*k, Arc::clone(v)))
        .collect();
    series.sort_by(|a, b| a.0.cmp(&b.0));
    let labels = |(p, m, c): Key| format!("protocol=\"{p}\",method=\"{m}\",code=\"{c}\"");

    family(
        &mut out,
        "quiver_requests_total",
        "counter",
        "Requests answered, by protocol (grpc, rest), method (RPC or REST endpoint) and Milvus status code.",
    );
    for (k, s) in &series {
        let _ = writeln!(
            out,
            "quiver_requests_total{{{}}} {}",
            labels(*k),
            s.count.load(Ordering::Relaxed)
        );
    }
    family(
        &mut out,
        "quiver_request_duration_seconds",
        "histogram",
        "Time to answer a request, by protocol, method and Milvus status code.",
    );
    for (k, s) in &series {
        let l = labels(*k);
        let mut cumulative = 0;
        for (le, b) in BUCKETS.iter().zip(&s.buckets) {
            cumulative += b.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "quiver_request_duration_seconds_bucket{{{l},le=\"{le}\"}} {cumulative}"
            );
        }
        let count = s.count.load(Ordering::Relaxed);
        let sum = s.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(
            out,
            "quiver_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(out, "quiver_request_duration_seconds_sum{{{l}}} {sum}");
        let _ = writeln!(out, "quiver_request_duration_seconds_count{{{l}}} {count}");
    }
    for (name, counter, what) in [
        ("quiver_rows_inserted_total", &REGISTRY.inserted, "inserted"),
        ("quiver_rows_upserted_total", &REGISTRY.upserted, "upserted"),
        ("quiver_rows_deleted_total", &REGISTRY.deleted, "deleted"),
    ] {
        family(&mut out, name, "counter", &format!("Rows {what}."));
        let _ = writeln!(out, "{name} {}", counter.load(Ordering::Relaxed));
    }
    let dbs = engine.list_databases();
    let collections: usize = dbs
        .iter()
        .map(|d| engine.list_collections(&d.name).map_or(0, |c| c.len()))
        .sum();
    family(&mut out, "quiver_databases", "gauge", "Databases.");
    let _ = writeln!(out, "quiver_databases {}", dbs.len());
    family(
        &mut out,
        "quiver_collections",
        "gauge",
        "Collections, in all databases.",
    );
    let _ = writeln!(out, "quiver_collections {collections}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_rows_counted() {
        record_request("test", "m", 0, Duration::from_micros(300));
        record_request("test", "m", 0, Duration::from_millis(3));
        record_request("test", "m", 0, Duration::from_secs(20));
        let before = REGISTRY.inserted.load(Ordering::Relaxed);
        let m = MutationResult {
            insert_cnt: 3,
            ..Default::default()
        };
        after_rpc("insert", true, 0, Duration::ZERO, &m);
        after_rpc("insert", true, 0, Duration::ZERO, &"not a mutation");
        assert!(REGISTRY.inserted.load(Ordering::Relaxed) >= before + 3);
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), Default::default()).unwrap();
        let text = render(&engine);
        let l = "protocol=\"test\",method=\"m\",code=\"0\"";
        assert!(text.contains(&format!("quiver_requests_total{{{l}}} 3\n")));
        assert!(text.contains(&format!(
            "quiver_request_duration_seconds_bucket{{{l},le=\"0.0005\"}} 1\n"
        )));
        assert!(text.contains(&format!(
            "quiver_request_duration_seconds_bucket{{{l},le=\"0.005\"}} 2\n"
        )));
        assert!(text.contains(&format!(
            "quiver_request_duration_seconds_bucket{{{l},le=\"10\"}} 2\n"
        )));
        assert!(text.contains(&format!(
            "quiver_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} 3\n"
        )));
        assert!(text.contains("quiver_databases 1\n"));
        assert!(text.contains("quiver_collections 0\n"));
        assert!(text.contains("# TYPE quiver_request_duration_seconds histogram\n"));
    }
}
