//! Judged query sets for offline evaluation, versioned and content-hashed.
//!
//! An eval set is a BEIR-layout collection of judged queries: a corpus (`_id`, `title`, `text`,
//! optionally `judged`), queries (`_id`, `text`) and graded relevance judgments
//! (`query-id -> corpus-id -> grade`). [`EvalData`] parses the BEIR files (`corpus.jsonl`,
//! `queries.jsonl`, `qrels/*.tsv` with a `query-id corpus-id score` header) from a directory or
//! from uploaded text.
//!
//! Storage: the set's canonical JSON (documents and queries in file order, judgments sorted) is
//! one content-addressed blob; the registry records `eval_set_created` events naming the blob's
//! SHA-256. Versions are numbered per name: registering content identical to the latest version
//! returns that version instead of making a new one. Eval-set blobs are kept when model versions
//! are deleted (blob GC counts them as live).
//!
//! Judged-ness (for `unjudged@k`): a document is judged for a query when the query's judgments
//! name it; when the corpus marks documents with a `judged` flag, every document not marked
//! `judged: false` counts as judged for every query (sets like lee-beir, where all pairs of the
//! judged articles were rated and only the relevant ones are listed).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

use crate::{now_ms, validate_name, Registry, RegistryError, Result};

/// One corpus document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalDoc {
    pub id: String,
    #[serde(default)]
    pub title: String,
    pub text: String,
    /// `None` when the corpus gives no flag.
    #[serde(default)]
    pub judged: Option<bool>,
}

/// One judged query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalQuery {
    pub id: String,
    pub text: String,
}

/// The content of an eval set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalData {
    pub corpus: Vec<EvalDoc>,
    pub queries: Vec<EvalQuery>,
    /// query id -> document id -> grade (> 0 relevant).
    pub qrels: BTreeMap<String, BTreeMap<String, i64>>,
}

/// An eval set version's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSet {
    pub name: String,
    pub version: u32,
    pub sha256: String,
    pub size: u64,
    pub documents: usize,
    pub queries: usize,
    pub judgments: usize,
    #[serde(default)]
    pub source: String,
    pub created_ms: u64,
    pub created_by: String,
}

fn bad(m: impl Into<String>) -> RegistryError {
    RegistryError::BadRequest(m.into())
}

fn jsonl(text: &str, what: &str) -> Result<Vec<serde_json::Map<String, Json>>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Json>(line) {
            Ok(Json::Object(m)) => out.push(m),
            Ok(_) => return Err(bad(format!("{what} line {}: not a JSON object", i + 1))),
            Err(e) => return Err(bad(format!("{what} line {}: {e}", i + 1))),
        }
    }
    Ok(out)
}

fn id_of(m: &serde_json::Map<String, Json>, what: &str, line: usize) -> Result<String> {
    match m.get("_id") {
        Some(Json::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Json::Number(n)) => Ok(n.to_string()),
        _ => Err(bad(format!("{what} entry {line}: _id is missing"))),
    }
}

fn text_of(m: &serde_json::Map<String, Json>, key: &str) -> String {
    m.get(key)
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string()
}

impl EvalData {
    /// Parse BEIR text: corpus and queries as JSON lines, qrels as TSV files (each with a
    /// header line; every split is merged).
    pub fn from_beir(corpus: &str, queries: &str, qrels: &[&str]) -> Result<EvalData> {
        let mut docs = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, m) in jsonl(corpus, "corpus")?.into_iter().enumerate() {
            let id = id_of(&m, "corpus", i + 1)?;
            if !seen.insert(id.clone()) {
                return Err(bad(format!("corpus: duplicate _id {id}")));
            }
            docs.push(EvalDoc {
                title: text_of(&m, "title"),
                text: text_of(&m, "text"),
                judged: m.get("judged").and_then(Json::as_bool),
                id,
            });
        }
        let mut qs = Vec::new();
        let mut qseen = std::collections::HashSet::new();
        for (i, m) in jsonl(queries, "queries")?.into_iter().enumerate() {
            let id = id_of(&m, "queries", i + 1)?;
            if !qseen.insert(id.clone()) {
                return Err(bad(format!("queries: duplicate _id {id}")));
            }
            qs.push(EvalQuery {
                text: text_of(&m, "text"),
                id,
            });
        }
        let mut judgments: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        for file in qrels {
            for (i, line) in file.lines().enumerate() {
                let cols: Vec<&str> = line.split('\t').map(str::trim).collect();
                if line.trim().is_empty() || (i == 0 && cols.first() == Some(&"query-id")) {
                    continue;
                }
                let [q, d, g] = cols.as_slice() else {
                    return Err(bad(format!(
                        "qrels line {}: expected query-id<TAB>corpus-id<TAB>score",
                        i + 1
                    )));
                };
                let grade: i64 = g.parse().map_err(|_| {
                    bad(format!(
                        "qrels line {}: score {g:?} is not an integer",
                        i + 1
                    ))
                })?;
                if !qseen.contains(*q) {
                    return Err(bad(format!("qrels line {}: unknown query {q}", i + 1)));
                }
                if !seen.contains(*d) {
                    return Err(bad(format!("qrels line {}: unknown document {d}", i + 1)));
                }
                judgments
                    .entry(q.to_string())
                    .or_default()
                    .insert(d.to_string(), grade);
            }
        }
        let data = EvalData {
            corpus: docs,
            queries: qs,
            qrels: judgments,
        };
        data.check()?;
        Ok(data)
    }

    /// Read a BEIR directory: `corpus.jsonl`, `queries.jsonl`, `qrels/*.tsv`.
    pub fn from_dir(dir: &Path) -> Result<EvalData> {
        let read =
            |p: &Path| std::fs::read_to_string(p).map_err(|e| RegistryError::io("read", p, e));
        let corpus = read(&dir.join("corpus.jsonl"))?;
        let queries = read(&dir.join("queries.jsonl"))?;
        let qdir = dir.join("qrels");
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&qdir)
            .map_err(|e| RegistryError::io("list", &qdir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "tsv"))
            .collect();
        files.sort();
        let texts = files.iter().map(|p| read(p)).collect::<Result<Vec<_>>>()?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        EvalData::from_beir(&corpus, &queries, &refs)
    }

    fn check(&self) -> Result<()> {
        if self.corpus.is_empty() {
            return Err(bad("the corpus is empty"));
        }
        if self.queries.is_empty() {
            return Err(bad("there are no queries"));
        }
        if self.qrels.values().all(|j| j.values().all(|g| *g <= 0)) {
            return Err(bad("no query has a relevant document (a grade above 0)"));
        }
        Ok(())
    }

    /// Whether the corpus marks its documents with `judged` flags.
    pub fn has_judged_flags(&self) -> bool {
        self.corpus.iter().any(|d| d.judged.is_some())
    }

    /// The canonical bytes the blob holds (and the hash names).
    fn canonical(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl crate::State {
    pub(crate) fn apply_eval_set(&mut self, data: &Json) -> Result<()> {
        let s: EvalSet = serde_json::from_value(data.clone())
            .map_err(|e| RegistryError::Internal(format!("eval_set_created: {e}")))?;
        self.eval_sets
            .entry(s.name.clone())
            .or_default()
            .insert(s.version, s);
        Ok(())
    }
}

impl Registry {
    /// Register `data` as the next version of eval set `name` (or return the latest version
    /// when its content is identical). `source` says where it came from (a path, "upload").
    pub fn create_eval_set(
        &self,
        name: &str,
        data: &EvalData,
        source: &str,
        actor: &str,
    ) -> Result<EvalSet> {
        validate_name(name, "eval set")?;
        data.check()?;
        let bytes = data.canonical();
        // Stored (and fsynced) before the event that names it.
        let (sha, size) = self.blobs.put_bytes(&bytes)?;
        let mut g = self.inner.lock();
        let versions = g.state.eval_sets.get(name);
        if let Some(latest) = versions.and_then(|v| v.values().next_back()) {
            if latest.sha256 == sha {
                return Ok(latest.clone());
            }
        }
        let version = versions
            .and_then(|v| v.keys().next_back())
            .map_or(1, |v| v + 1);
        let set = EvalSet {
            name: name.to_string(),
            version,
            sha256: sha,
            size,
            documents: data.corpus.len(),
            queries: data.queries.len(),
            judgments: data.qrels.values().map(BTreeMap::len).sum(),
            source: source.to_string(),
            created_ms: now_ms(),
            created_by: actor.to_string(),
        };
        let ev = serde_json::to_value(&set).map_err(|e| RegistryError::Internal(e.to_string()))?;
        Self::commit(
            &mut g,
            actor,
            "eval_set_created",
            &format!("eval-set:{name}@{version}"),
            ev,
        )?;
        Ok(set)
    }

    /// Version `version` of eval set `name`, or its latest.
    pub fn eval_set(&self, name: &str, version: Option<u32>) -> Result<EvalSet> {
        let g = self.inner.lock();
        let vs = g
            .state
            .eval_sets
            .get(name)
            .ok_or_else(|| RegistryError::NotFound(format!("no eval set {name}")))?;
        match version {
            Some(v) => vs.get(&v).cloned().ok_or_else(|| {
                RegistryError::NotFound(format!("eval set {name} has no version {v}"))
            }),
            None => vs
                .values()
                .next_back()
                .cloned()
                .ok_or_else(|| RegistryError::NotFound(format!("no eval set {name}"))),
        }
    }

    /// Every version of every eval set.
    pub fn eval_sets(&self) -> Vec<EvalSet> {
        let g = self.inner.lock();
        g.state
            .eval_sets
            .values()
            .flat_map(|v| v.values().cloned())
            .collect()
    }

    /// The content of an eval set version, verified against its hash.
    pub fn eval_data(&self, set: &EvalSet) -> Result<EvalData> {
        let bytes = self
            .blobs
            .get_verified(&set.sha256, set.size)
            .map_err(|reason| {
                RegistryError::Internal(format!(
                    "eval set {}@{} is corrupt: {reason}",
                    set.name, set.version
                ))
            })?;
        serde_json::from_slice(&bytes).map_err(|e| {
            RegistryError::Internal(format!("eval set {}@{}: {e}", set.name, set.version))
        })
    }

    /// Store an evaluation's full report (a blob) and record it (`evaluation_recorded`, with
    /// the summary). Returns the id (`eval-N`).
    pub fn record_evaluation(&self, summary: Json, report: &Json, actor: &str) -> Result<String> {
        let bytes =
            serde_json::to_vec(report).map_err(|e| RegistryError::Internal(e.to_string()))?;
        let (sha, size) = self.blobs.put_bytes(&bytes)?;
        let mut g = self.inner.lock();
        let id = format!("eval-{}", g.state.evaluations.len() + 1);
        let data = json!({"id": id, "sha256": sha, "size": size, "summary": summary});
        Self::commit(
            &mut g,
            actor,
            "evaluation_recorded",
            &format!("evaluation:{id}"),
            data,
        )?;
        Ok(id)
    }

    /// An evaluation's full report, verified.
    pub fn evaluation(&self, id: &str) -> Result<Json> {
        let (sha, size) = {
            let g = self.inner.lock();
            let e = g
                .state
                .evaluations
                .get(id)
                .ok_or_else(|| RegistryError::NotFound(format!("no evaluation {id}")))?;
            (
                e.get("sha256")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string(),
                e.get("size").and_then(Json::as_u64).unwrap_or_default(),
            )
        };
        let bytes = self.blobs.get_verified(&sha, size).map_err(|reason| {
            RegistryError::Internal(format!("evaluation {id} is corrupt: {reason}"))
        })?;
        serde_json::from_slice(&bytes).map_err(|e| RegistryError::Internal(e.to_string()))
    }

    /// Every evaluation's record (id and summary), oldest first.
    pub fn evaluations(&self) -> Vec<Json> {
        let g = self.inner.lock();
        let mut v: Vec<Json> = g.state.evaluations.values().cloned().collect();
        v.sort_by_key(|e| {
            e.get("id")
                .and_then(Json::as_str)
                .and_then(|s| s.strip_prefix("eval-"))
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        });
        v
    }
}
