//! Offline evaluation: candidates (model versions, BM25 configurations) ranked on a judged eval
//! set, scored per query, compared with a paired test.
//!
//! `POST /v1/evaluations`:
//!
//! ```json
//! {"eval_set": "lee" | "lee@2",
//!  "candidates": ["minilm@1", {"name": "bm25", "bm25": {"analyzer_params": {"type": "english"}, "k1": 1.2, "b": 0.75}}],
//!  "metrics": ["ndcg@10", "recall@10", "recall@100", "mrr@10", "recall_vs_exact@10", "unjudged@10"],
//!  "paired_test": {"kind": "bootstrap" | "randomization", "n": 10000, "seed": 42},
//!  "corpus": "all" | "judged", "ignore_identical_ids": true, "ignore_identical_text": true}
//! ```
//!
//! A model candidate (`name@version`, or `{"name", "model"}`) embeds the corpus (title and text)
//! in the document role and the queries in the query role with that registry version, run in
//! process, and ranks by its space's metric, exactly. A BM25 candidate analyses both with the
//! given analyzer and ranks with Quiver's BM25 (the scoring of `metric_type: BM25`). These
//! rankings are exact, so their `recall_vs_exact@k` is 1. A bundle candidate (`{"name",
//! "bundle": {db, collection, field, search_params, model?, version?}, "id_field"?}`, or
//! `{"name", "serving_alias": "..."}` for the alias's current bundle) searches a collection that
//! holds the corpus: its queries are embedded with the field's bound model version (or given as
//! text to a BM25 field) and searched through the engine with the bundle's search params, and
//! again exactly, which is what `recall_vs_exact@k` compares. Its document ids are the primary
//! keys (or the `id_field` values); `corpus: "judged"` does not apply to it.
//!
//! Metrics per query, averaged over the queries that have at least one relevant document:
//! `ndcg@k` (trec_eval's: linear gain, log2 discount), `recall@k`, `mrr@k`, `unjudged@k`
//! (the share of the top k that carry no judgment, see the registry's eval sets). Documents with
//! the query's own id, or its exact text, are left out of its ranking (BEIR's convention;
//! lee-beir's queries are its articles). `corpus: "judged"` ranks only documents not marked
//! `judged: false`.
//!
//! Comparisons: every candidate against the first (the baseline): the mean difference per
//! metric, a 95% confidence interval (paired bootstrap over queries, percentile), and a
//! two-sided p-value from the chosen test: `bootstrap` (the share of resampled mean differences
//! on the other side of zero, doubled) or `randomization` (sign flips of the paired
//! differences, with the +1 correction). Seeded, so a report is reproducible. The report also
//! lists, per comparison, the queries where the challenger loses most on the first metric, and
//! per query each candidate's scores and top 10 document ids.

use std::collections::{BTreeMap, HashMap};

use quiver_engine::text::Analyzer;
use quiver_registry::{EvalData, Registry, RegistryError};
use serde_json::{json, Value as Json};

use crate::functions::{Embedders, Role};

type R<T> = Result<T, RegistryError>;

fn bad(m: impl Into<String>) -> RegistryError {
    RegistryError::BadRequest(m.into())
}

/// A metric name parsed: kind and cut-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Ndcg,
    Recall,
    Mrr,
    RecallVsExact,
    Unjudged,
}

pub fn parse_metric(s: &str) -> R<(MetricKind, usize)> {
    let (name, k) = s
        .split_once('@')
        .ok_or_else(|| bad(format!("metric {s:?}: expected name@k, e.g. ndcg@10")))?;
    let k: usize = k
        .parse()
        .ok()
        .filter(|k| (1..=1000).contains(k))
        .ok_or_else(|| bad(format!("metric {s:?}: k must be an integer in [1, 1000]")))?;
    let kind = match name.to_ascii_lowercase().as_str() {
        "ndcg" => MetricKind::Ndcg,
        "recall" => MetricKind::Recall,
        "mrr" => MetricKind::Mrr,
        "recall_vs_exact" => MetricKind::RecallVsExact,
        "unjudged" => MetricKind::Unjudged,
        other => {
            return Err(bad(format!(
                "unknown metric {other} (ndcg, recall, mrr, recall_vs_exact, unjudged)"
            )))
        }
    };
    Ok((kind, k))
}

/// One metric of one ranking. `ranked`: document ids best first; `judged(doc)`: whether the
/// document is judged for this query.
pub fn metric(
    kind: MetricKind,
    k: usize,
    ranked: &[&str],
    exact: &[&str],
    qrels: &BTreeMap<String, i64>,
    judged: &dyn Fn(&str) -> bool,
) -> f64 {
    let top = &ranked[..ranked.len().min(k)];
    let grade = |d: &str| qrels.get(d).copied().unwrap_or(0).max(0) as f64;
    match kind {
        MetricKind::Ndcg => {
            let dcg: f64 = top
                .iter()
                .enumerate()
                .map(|(i, d)| grade(d) / ((i + 2) as f64).log2())
                .sum();
            let mut ideal: Vec<f64> = qrels.values().map(|g| (*g).max(0) as f64).collect();
            ideal.sort_by(|a, b| b.total_cmp(a));
            let idcg: f64 = ideal
                .iter()
                .take(k)
                .enumerate()
                .map(|(i, g)| g / ((i + 2) as f64).log2())
                .sum();
            if idcg > 0.0 {
                dcg / idcg
            } else {
                0.0
            }
        }
        MetricKind::Recall => {
            let rel = qrels.values().filter(|g| **g > 0).count();
            if rel == 0 {
                return 0.0;
            }
            top.iter().filter(|d| grade(d) > 0.0).count() as f64 / rel as f64
        }
        MetricKind::Mrr => top
            .iter()
            .position(|d| grade(d) > 0.0)
            .map_or(0.0, |i| 1.0 / (i + 1) as f64),
        MetricKind::RecallVsExact => {
            let want = &exact[..exact.len().min(k)];
            if want.is_empty() {
                return 1.0;
            }
            top.iter().filter(|d| want.contains(d)).count() as f64 / want.len() as f64
        }
        MetricKind::Unjudged => {
            if top.is_empty() {
                return 0.0;
            }
            top.iter().filter(|d| !judged(d)).count() as f64 / top.len() as f64
        }
    }
}

/// A small seeded generator (SplitMix64) for resampling.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Paired comparison of per-query values `b - a`: (mean difference, 95% bootstrap CI, p-value).
pub fn paired_test(a: &[f64], b: &[f64], kind: &str, n: usize, seed: u64) -> (f64, [f64; 2], f64) {
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| y - x).collect();
    let m = d.len();
    if m == 0 {
        return (0.0, [0.0, 0.0], 1.0);
    }
    let mean = d.iter().sum::<f64>() / m as f64;
    let mut rng = Rng(seed);
    let mut boots: Vec<f64> = (0..n)
        .map(|_| (0..m).map(|_| d[rng.below(m)]).sum::<f64>() / m as f64)
        .collect();
    boots.sort_by(|x, y| x.total_cmp(y));
    let at = |q: f64| boots[((q * (n - 1) as f64).round() as usize).min(n - 1)];
    let ci = [at(0.025), at(0.975)];
    let p = if kind == "randomization" {
        let obs = mean.abs();
        let mut hits = 0usize;
        for _ in 0..n {
            let s: f64 = d
                .iter()
                .map(|x| if rng.next() & 1 == 0 { *x } else { -*x })
                .sum::<f64>()
                / m as f64;
            if s.abs() >= obs - 1e-12 {
                hits += 1;
            }
        }
        (hits + 1) as f64 / (n + 1) as f64
    } else {
        let below = boots.iter().filter(|x| **x <= 0.0).count() as f64 / n as f64;
        let above = boots.iter().filter(|x| **x >= 0.0).count() as f64 / n as f64;
        (2.0 * below.min(above)).min(1.0)
    };
    (mean, ci, p)
}

/// A candidate to rank with.
enum Kind {
    Model {
        model: String,
        version: u32,
    },
    Bm25 {
        analyzer: Json,
        k1: f32,
        b: f32,
    },
    /// A collection's field searched through the engine (its index and search params); the
    /// document id is the primary key or `id_field`.
    Bundle {
        bundle: quiver_registry::Bundle,
        id_field: Option<String>,
    },
}

struct Candidate {
    name: String,
    kind: Kind,
    spec: Json,
}

fn model_ref(s: &str) -> R<(String, String)> {
    match s.split_once('@') {
        Some((m, v)) if !m.is_empty() && !v.is_empty() => Ok((m.into(), v.into())),
        _ => Err(bad(format!(
            "model reference {s:?}: expected name@version or name@alias"
        ))),
    }
}

fn candidate(reg: &Registry, c: &Json) -> R<Candidate> {
    let resolve = |r: &str| -> R<(String, u32)> {
        let (m, which) = model_ref(r)?;
        let v = match which.parse::<u32>() {
            Ok(v) => reg.version(&m, v)?.version,
            Err(_) => reg.alias(&m, &which)?.version,
        };
        Ok((m, v))
    };
    let bm25 = |name: String, p: &Json| -> R<Candidate> {
        let analyzer = p
            .get("analyzer_params")
            .cloned()
            .unwrap_or(json!({"type": "standard"}));
        Analyzer::from_params(&analyzer).map_err(|e| bad(format!("candidate {name}: {e}")))?;
        let num = |k: &str, d: f64| p.get(k).and_then(Json::as_f64).unwrap_or(d) as f32;
        let (k1, b) = (num("k1", 1.2), num("b", 0.75));
        if !(0.0..=3.0).contains(&k1) || !(0.0..=1.0).contains(&b) {
            return Err(bad(format!(
                "candidate {name}: k1 must be in [0, 3] and b in [0, 1]"
            )));
        }
        Ok(Candidate {
            spec: json!({"name": name, "bm25": {"analyzer_params": analyzer, "k1": k1, "b": b}}),
            name,
            kind: Kind::Bm25 { analyzer, k1, b },
        })
    };
    match c {
        Json::String(s) if s.eq_ignore_ascii_case("bm25") => bm25("bm25".into(), &json!({})),
        Json::String(s) => {
            let (model, version) = resolve(s)?;
            Ok(Candidate {
                name: s.clone(),
                spec: json!({"name": s, "model": model, "version": version}),
                kind: Kind::Model { model, version },
            })
        }
        Json::Object(o) => {
            let name = o.get("name").and_then(Json::as_str);
            if let Some(p) = o.get("bm25") {
                return bm25(name.unwrap_or("bm25").to_string(), p);
            }
            let id_field = o.get("id_field").and_then(Json::as_str).map(str::to_string);
            if let Some(alias) = o.get("serving_alias").and_then(Json::as_str) {
                let sa = reg.serving(alias)?;
                let name = name.unwrap_or(alias).to_string();
                return Ok(Candidate {
                    spec: json!({"name": name, "serving_alias": alias, "revision": sa.revision,
                                 "bundle": sa.bundle, "id_field": id_field}),
                    name,
                    kind: Kind::Bundle {
                        bundle: sa.bundle,
                        id_field,
                    },
                });
            }
            if let Some(b) = o.get("bundle") {
                let bundle: quiver_registry::Bundle = serde_json::from_value(b.clone())
                    .map_err(|e| bad(format!("candidate bundle: {e}")))?;
                let name = name
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{}.{}", bundle.collection, bundle.field));
                return Ok(Candidate {
                    spec: json!({"name": name, "bundle": bundle, "id_field": id_field}),
                    name,
                    kind: Kind::Bundle { bundle, id_field },
                });
            }
            let r = o
                .get("model")
                .and_then(Json::as_str)
                .ok_or_else(|| {
                    bad("a candidate names a model (name@version), bm25 params, a bundle or a serving_alias")
                })?;
            let (model, version) = resolve(r)?;
            let name = name.unwrap_or(r).to_string();
            Ok(Candidate {
                spec: json!({"name": name, "model": model, "version": version}),
                name,
                kind: Kind::Model { model, version },
            })
        }
        other => Err(bad(format!(
            "a candidate is a model reference or an object, got {other}"
        ))),
    }
}

/// Per query, the ranked document ids (best first, at most `depth`) and the exact ranking
/// they are measured against (`recall_vs_exact`).
type Ranked = (Vec<Vec<String>>, Vec<Vec<String>>);

/// A bundle's rankings: the queries embedded with the field's model (or given as text to a
/// BM25 field), searched through the engine as configured, and again exactly.
/// What ranking through the engine needs.
struct Env<'a> {
    engine: &'a quiver_engine::Engine,
    emb: &'a Embedders,
    reg: &'a Registry,
}

fn rank_bundle(
    env: &Env<'_>,
    bundle: &quiver_registry::Bundle,
    id_field: Option<&str>,
    data: &EvalData,
    queries: &[usize],
    depth: usize,
    excluded: &dyn Fn(usize, &str) -> bool,
) -> R<Ranked> {
    use crate::rest::v1::engine_error;
    let Env { engine, emb, reg } = *env;
    let (m, _) = engine
        .collection(&bundle.db, &bundle.collection)
        .map_err(engine_error)?;
    let fs = m.schema.field(&bundle.field).ok_or_else(|| {
        bad(format!(
            "collection {} has no field {}",
            m.name, bundle.field
        ))
    })?;
    let texts: Vec<String> = queries
        .iter()
        .map(|&q| data.queries[q].text.clone())
        .collect();
    let bm25 = m.schema.functions.iter().any(|f| {
        f.function_type == crate::functions::BM25 && f.output_field_names.first() == Some(&fs.name)
    });
    let mut base = quiver_engine::SearchRequest {
        anns_field: Some(fs.name.clone()),
        limit: (depth + 1).min(quiver_engine::MAX_TOPK),
        params: bundle
            .search_params
            .as_object()
            .cloned()
            .unwrap_or_default(),
        output_fields: id_field.map(|f| vec![f.to_string()]).unwrap_or_default(),
        ..Default::default()
    };
    if bm25 {
        base.texts = texts;
    } else {
        let (model, version) = match (&bundle.model, bundle.version) {
            (Some(mo), Some(v)) => (mo.clone(), v),
            _ => {
                let b = reg.binding(m.id, &fs.name).ok_or_else(|| {
                    bad(format!(
                        "field {} of {} is bound to no model version: the queries cannot be embedded",
                        fs.name, m.name
                    ))
                })?;
                (b.model, b.version)
            }
        };
        base.vectors = emb.embed(&model, version, &texts, Role::Query)?.0;
    }
    let run = |exact: bool| -> R<Vec<Vec<String>>> {
        let mut req = base.clone();
        req.exact = exact;
        let res = engine
            .search(&bundle.db, &bundle.collection, &req)
            .map_err(engine_error)?;
        let ids: Vec<String> = match id_field {
            Some(f) => {
                let col = res
                    .fields
                    .iter()
                    .find(|c| c.name == f)
                    .ok_or_else(|| bad(format!("id_field {f} is not a field of {}", m.name)))?;
                (0..col.column.len())
                    .map(|i| match col.column.cell(i) {
                        quiver_core::Cell::Str(s) => s,
                        other => other.to_json().to_string(),
                    })
                    .collect()
            }
            None => res
                .pks
                .iter()
                .map(|p| match p {
                    quiver_engine::Pk::Str(s) => s.clone(),
                    quiver_engine::Pk::Int(i) => i.to_string(),
                })
                .collect(),
        };
        let mut out = Vec::with_capacity(queries.len());
        let mut at = 0;
        for (qi, &k) in res.topks.iter().enumerate() {
            let mut r: Vec<String> = ids[at..at + k]
                .iter()
                .filter(|d| !excluded(queries[qi], d))
                .cloned()
                .collect();
            r.truncate(depth);
            out.push(r);
            at += k;
        }
        Ok(out)
    };
    Ok((run(false)?, run(true)?))
}

/// Per query, the ranked document indexes (best first, at most `depth`).
fn rank(
    emb: &Embedders,
    c: &Candidate,
    docs: &[usize],
    data: &EvalData,
    queries: &[usize],
    depth: usize,
    excluded: &dyn Fn(usize, usize) -> bool,
) -> R<Vec<Vec<usize>>> {
    let doc_text = |i: usize| {
        let d = &data.corpus[i];
        if d.title.is_empty() {
            d.text.clone()
        } else {
            format!("{} {}", d.title, d.text)
        }
    };
    let scores: Vec<Vec<f32>> = match &c.kind {
        Kind::Bundle { .. } => {
            return Err(RegistryError::Internal(
                "bundles rank through the engine".into(),
            ))
        }
        Kind::Model { model, version } => {
            let texts: Vec<String> = docs.iter().map(|&i| doc_text(i)).collect();
            let (dv, info) = emb.embed(model, *version, &texts, Role::Document)?;
            let qt: Vec<String> = queries
                .iter()
                .map(|&q| data.queries[q].text.clone())
                .collect();
            let (qv, _) = emb.embed(model, *version, &qt, Role::Query)?;
            let metric = info.space.metric.as_str();
            let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            let dn: Vec<f32> = dv.iter().map(|v| norm(v)).collect();
            qv.iter()
                .map(|q| {
                    let qn = norm(q);
                    dv.iter()
                        .zip(&dn)
                        .map(|(d, n)| match metric {
                            "L2" => -q.iter().zip(d).map(|(a, b)| (a - b) * (a - b)).sum::<f32>(),
                            "COSINE" => q.iter().zip(d).map(|(a, b)| a * b).sum::<f32>() / (qn * n),
                            _ => q.iter().zip(d).map(|(a, b)| a * b).sum::<f32>(),
                        })
                        .collect()
                })
                .collect()
        }
        Kind::Bm25 { analyzer, k1, b } => {
            let a = Analyzer::from_params(analyzer).map_err(|e| bad(e.to_string()))?;
            let tf: Vec<HashMap<String, f32>> = docs
                .iter()
                .map(|&i| {
                    let mut m = HashMap::new();
                    for t in a.tokens(&doc_text(i)) {
                        *m.entry(t).or_insert(0.0) += 1.0;
                    }
                    m
                })
                .collect();
            let dl: Vec<f32> = tf.iter().map(|m| m.values().sum()).collect();
            let n = docs.len();
            let avgdl = dl.iter().sum::<f32>() / n.max(1) as f32;
            let mut df: HashMap<&str, usize> = HashMap::new();
            for m in &tf {
                for t in m.keys() {
                    *df.entry(t.as_str()).or_default() += 1;
                }
            }
            queries
                .iter()
                .map(|&q| {
                    let mut qtf: HashMap<String, f32> = HashMap::new();
                    for t in a.tokens(&data.queries[q].text) {
                        *qtf.entry(t).or_insert(0.0) += 1.0;
                    }
                    tf.iter()
                        .zip(&dl)
                        .map(|(m, &l)| {
                            let mut s = 0f32;
                            let mut hit = false;
                            for (t, &w) in &qtf {
                                if let Some(&f) = m.get(t) {
                                    hit = true;
                                    let idf = quiver_engine::bm25_idf(n, df[t.as_str()]);
                                    s += w * idf * quiver_engine::bm25_tf(f, l, avgdl, *k1, *b);
                                }
                            }
                            if hit {
                                s
                            } else {
                                f32::NEG_INFINITY
                            }
                        })
                        .collect()
                })
                .collect()
        }
    };
    Ok(scores
        .iter()
        .zip(queries)
        .map(|(row, &q)| {
            let mut order: Vec<usize> = (0..docs.len())
                .filter(|&j| row[j] > f32::NEG_INFINITY && !excluded(q, docs[j]))
                .collect();
            order.sort_by(|&x, &y| row[y].total_cmp(&row[x]).then(x.cmp(&y)));
            order.truncate(depth);
            order.into_iter().map(|j| docs[j]).collect()
        })
        .collect())
}

/// Run an evaluation request; the full report (the caller records it).
pub fn evaluate(
    engine: &quiver_engine::Engine,
    emb: &Embedders,
    reg: &Registry,
    req: &Json,
) -> R<Json> {
    let set_ref = req
        .get("eval_set")
        .and_then(Json::as_str)
        .ok_or_else(|| bad("eval_set (name or name@version) is required"))?;
    let (set_name, set_version) = match set_ref.split_once('@') {
        Some((n, v)) => (
            n,
            Some(
                v.parse::<u32>()
                    .map_err(|_| bad(format!("eval set version {v:?} is not a number")))?,
            ),
        ),
        None => (set_ref, None),
    };
    let set = reg.eval_set(set_name, set_version)?;
    let data = reg.eval_data(&set)?;
    let cands: Vec<Candidate> = req
        .get("candidates")
        .and_then(Json::as_array)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| bad("candidates (a non-empty list) is required"))?
        .iter()
        .map(|c| candidate(reg, c))
        .collect::<R<_>>()?;
    if cands.len() > 8 {
        return Err(bad("at most 8 candidates"));
    }
    let metric_names: Vec<String> = match req.get("metrics") {
        None => [
            "ndcg@10",
            "recall@10",
            "recall@100",
            "mrr@10",
            "recall_vs_exact@10",
            "unjudged@10",
        ]
        .map(String::from)
        .to_vec(),
        Some(Json::Array(a)) if !a.is_empty() => a
            .iter()
            .map(|m| {
                m.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad("metrics are strings"))
            })
            .collect::<R<_>>()?,
        _ => return Err(bad("metrics must be a non-empty list")),
    };
    let metrics: Vec<(MetricKind, usize)> = metric_names
        .iter()
        .map(|m| parse_metric(m))
        .collect::<R<_>>()?;
    let depth = metrics.iter().map(|m| m.1).max().unwrap_or(10);
    let test = req.get("paired_test").cloned().unwrap_or(json!({}));
    let test_kind = test
        .get("kind")
        .and_then(Json::as_str)
        .unwrap_or("bootstrap")
        .to_string();
    if test_kind != "bootstrap" && test_kind != "randomization" {
        return Err(bad("paired_test.kind is bootstrap or randomization"));
    }
    let n = test.get("n").and_then(Json::as_u64).unwrap_or(10_000) as usize;
    if !(100..=1_000_000).contains(&n) {
        return Err(bad("paired_test.n must be in [100, 1000000]"));
    }
    let seed = test.get("seed").and_then(Json::as_u64).unwrap_or(42);
    let judged_only = match req.get("corpus").and_then(Json::as_str).unwrap_or("all") {
        "all" => false,
        "judged" => true,
        other => return Err(bad(format!("corpus is all or judged, got {other:?}"))),
    };
    let flag = |k: &str| req.get(k).and_then(Json::as_bool).unwrap_or(true);
    let (skip_ids, skip_text) = (flag("ignore_identical_ids"), flag("ignore_identical_text"));

    let docs: Vec<usize> = (0..data.corpus.len())
        .filter(|&i| !judged_only || data.corpus[i].judged != Some(false))
        .collect();
    let empty = BTreeMap::new();
    // Queries with at least one relevant document count; the others have nothing to find.
    let queries: Vec<usize> = (0..data.queries.len())
        .filter(|&q| {
            data.qrels
                .get(&data.queries[q].id)
                .is_some_and(|j| j.values().any(|g| *g > 0))
        })
        .collect();
    let excluded = |q: usize, d: usize| {
        let (qq, dd) = (&data.queries[q], &data.corpus[d]);
        (skip_ids && qq.id == dd.id) || (skip_text && qq.text.trim() == dd.text.trim())
    };
    let flags = data.has_judged_flags();
    let by_id: HashMap<&str, usize> = data
        .corpus
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id.as_str(), i))
        .collect();

    // values[c][m][qi]
    let mut values: Vec<Vec<Vec<f64>>> = Vec::new();
    let mut tops: Vec<Vec<Vec<String>>> = Vec::new();
    let excluded_id = |q: usize, d: &str| by_id.get(d).is_some_and(|&i| excluded(q, i));
    for c in &cands {
        let (ranked, exact) = match &c.kind {
            Kind::Bundle { bundle, id_field } => rank_bundle(
                &Env { engine, emb, reg },
                bundle,
                id_field.as_deref(),
                &data,
                &queries,
                depth,
                &excluded_id,
            )?,
            _ => {
                let r: Vec<Vec<String>> = rank(emb, c, &docs, &data, &queries, depth, &excluded)?
                    .into_iter()
                    .map(|r| r.into_iter().map(|d| data.corpus[d].id.clone()).collect())
                    .collect();
                // Exact rankings are their own reference.
                (r.clone(), r)
            }
        };
        let mut per_metric = vec![Vec::with_capacity(queries.len()); metrics.len()];
        for (qi, &q) in queries.iter().enumerate() {
            let qrels = data.qrels.get(&data.queries[q].id).unwrap_or(&empty);
            let ids: Vec<&str> = ranked[qi].iter().map(String::as_str).collect();
            let exact_ids: Vec<&str> = exact[qi].iter().map(String::as_str).collect();
            let judged = |d: &str| {
                qrels.contains_key(d)
                    || (flags
                        && by_id
                            .get(d)
                            .is_some_and(|&i| data.corpus[i].judged != Some(false)))
            };
            for (mi, &(kind, k)) in metrics.iter().enumerate() {
                per_metric[mi].push(metric(kind, k, &ids, &exact_ids, qrels, &judged));
            }
        }
        values.push(per_metric);
        tops.push(
            ranked
                .into_iter()
                .map(|mut r| {
                    r.truncate(10);
                    r
                })
                .collect(),
        );
    }
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let mut metric_report = serde_json::Map::new();
    for (mi, name) in metric_names.iter().enumerate() {
        let per: serde_json::Map<String, Json> = cands
            .iter()
            .zip(&values)
            .map(|(c, v)| (c.name.clone(), json!(mean(&v[mi]))))
            .collect();
        metric_report.insert(name.clone(), Json::Object(per));
    }
    let mut comparisons = Vec::new();
    for ci in 1..cands.len() {
        let mut per_metric = serde_json::Map::new();
        for (mi, name) in metric_names.iter().enumerate() {
            let (diff, ci95, p) = paired_test(&values[0][mi], &values[ci][mi], &test_kind, n, seed);
            per_metric.insert(
                name.clone(),
                json!({"difference": diff, "ci95": ci95, "p_value": p}),
            );
        }
        let mut worst: Vec<(f64, usize)> = queries
            .iter()
            .enumerate()
            .map(|(qi, _)| (values[ci][0][qi] - values[0][0][qi], qi))
            .collect();
        worst.sort_by(|a, b| a.0.total_cmp(&b.0));
        let worst: Vec<Json> = worst
            .iter()
            .take(10)
            .filter(|w| w.0 < 0.0)
            .map(|&(d, qi)| {
                json!({"query_id": data.queries[queries[qi]].id, "difference": d,
                       "baseline": values[0][0][qi], "challenger": values[ci][0][qi]})
            })
            .collect();
        comparisons.push(json!({
            "baseline": cands[0].name, "challenger": cands[ci].name,
            "metrics": per_metric, "worst_regressions": worst, "worst_by": metric_names[0],
        }));
    }
    let per_query: Vec<Json> = queries
        .iter()
        .enumerate()
        .map(|(qi, &q)| {
            let scores: serde_json::Map<String, Json> = metric_names
                .iter()
                .enumerate()
                .map(|(mi, name)| {
                    let per: serde_json::Map<String, Json> = cands
                        .iter()
                        .zip(&values)
                        .map(|(c, v)| (c.name.clone(), json!(v[mi][qi])))
                        .collect();
                    (name.clone(), Json::Object(per))
                })
                .collect();
            let top: serde_json::Map<String, Json> = cands
                .iter()
                .zip(&tops)
                .map(|(c, t)| (c.name.clone(), json!(t[qi])))
                .collect();
            json!({"query_id": data.queries[q].id, "scores": scores, "top10": top})
        })
        .collect();
    Ok(json!({
        "eval_set": {"name": set.name, "version": set.version, "sha256": set.sha256},
        "candidates": cands.iter().map(|c| c.spec.clone()).collect::<Vec<_>>(),
        "queries_evaluated": queries.len(),
        "documents_ranked": docs.len(),
        "corpus": if judged_only { "judged" } else { "all" },
        "paired_test": {"kind": test_kind, "n": n, "seed": seed},
        "metrics": metric_report,
        "comparisons": comparisons,
        "per_query": per_query,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_match_hand_computed_values() {
        let qrels: BTreeMap<String, i64> = [("a".to_string(), 2), ("c".to_string(), 1)].into();
        let ranked = ["b", "a", "c", "d"];
        let all = |_: &str| true;
        let ndcg = metric(MetricKind::Ndcg, 3, &ranked, &ranked, &qrels, &all);
        let dcg = 2.0 / 3f64.log2() + 1.0 / 4f64.log2();
        let idcg = 2.0 + 1.0 / 3f64.log2();
        assert!((ndcg - dcg / idcg).abs() < 1e-12);
        assert_eq!(
            metric(MetricKind::Recall, 2, &ranked, &ranked, &qrels, &all),
            0.5
        );
        assert_eq!(
            metric(MetricKind::Mrr, 10, &ranked, &ranked, &qrels, &all),
            0.5
        );
        let judged = |d: &str| qrels.contains_key(d);
        assert_eq!(
            metric(MetricKind::Unjudged, 4, &ranked, &ranked, &qrels, &judged),
            0.5
        );
        assert_eq!(
            metric(
                MetricKind::RecallVsExact,
                2,
                &ranked,
                &["a", "x"],
                &qrels,
                &all
            ),
            0.5
        );
        assert!(parse_metric("ndcg@0").is_err() && parse_metric("foo@10").is_err());
        assert_eq!(parse_metric("MRR@5").unwrap(), (MetricKind::Mrr, 5));
    }

    #[test]
    fn paired_tests_see_a_real_difference_and_not_a_null_one() {
        let a: Vec<f64> = (0..50).map(|i| (i % 7) as f64 / 10.0).collect();
        let better: Vec<f64> = a
            .iter()
            .enumerate()
            .map(|(i, x)| x + 0.1 + (i % 3) as f64 * 0.01)
            .collect();
        for kind in ["bootstrap", "randomization"] {
            let (d, ci, p) = paired_test(&a, &better, kind, 2000, 1);
            assert!(d > 0.1 && ci[0] > 0.0 && p < 0.01, "{kind}: {d} {ci:?} {p}");
        }
        // Differences symmetric around zero: no evidence.
        let noisy: Vec<f64> = a
            .iter()
            .enumerate()
            .map(|(i, x)| x + if i % 2 == 0 { 0.05 } else { -0.05 })
            .collect();
        for kind in ["bootstrap", "randomization"] {
            let (_, ci, p) = paired_test(&a, &noisy, kind, 2000, 1);
            assert!(ci[0] < 0.0 && ci[1] > 0.0 && p > 0.2, "{kind}: {ci:?} {p}");
        }
    }
}
