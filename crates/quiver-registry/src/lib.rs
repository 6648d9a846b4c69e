//! quiver-registry: the models behind the vectors.
//!
//! * Registered models with numbered versions (1, 2, ...). A version holds artifact files
//!   stored content-addressed ([`blobs`]: SHA-256 per file, and one for the whole version), a
//!   vector space description ([`Space`]) from which a stable `space_id` is derived, lineage
//!   (source URI, run id, parent version, created by), free tags and a status.
//! * Aliases (`champion`, `challenger`, any name) point at versions, move with compare-and-swap
//!   (`expected_version`) and keep their full history.
//! * Re-embedding migrations ([`migrations`]): which text field of which collection is being
//!   re-embedded into which new field by which version, and the job's state.
//! * Judged query sets for offline evaluation ([`evalsets`]), versioned by content hash, and
//!   the reports of the evaluations run on them.
//! * Online experiments on serving aliases ([`experiments`]): champion and challenger bundles,
//!   traffic split, guardrails, the sequential decision rule, and each state change.
//! * Everything is an event in the hash-chained audit log ([`audit`]); the in-memory state is
//!   the fold of the log, rebuilt at open. A change is acknowledged after its event is fsynced.
//!
//! ```text
//! <data dir>/registry/
//!   audit.log                     the events (audit.rs has the format)
//!   blobs/sha256/<aa>/<hex>       artifact files by content hash (blobs.rs)
//!   cache/<version sha256>/       a version's files as a directory, for model runtimes (derived)
//! ```
//!
//! Invariants: a version's files are all stored (and fsynced) before the event that registers
//! them; an artifact is verified (hash recomputed) every time it is read, and a mismatch is an
//! error, never data; a version an alias points at (or that a field is bound to, see the engine)
//! cannot be deleted; blobs no remaining version names are deleted after the deleting event.

pub mod audit;
pub mod blobs;
pub mod evalsets;
pub mod experiments;
pub mod migrations;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};

pub use audit::{BadLink, Event, VerifyReport};
pub use evalsets::{EvalData, EvalDoc, EvalQuery, EvalSet};
pub use experiments::{Decision, Experiment, Guardrail};
pub use migrations::Migration;

/// Errors, each with the HTTP status the REST layer answers with.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// An artifact's bytes no longer match its recorded hash.
    #[error("artifact {path} of {model} version {version} is corrupt: {reason}")]
    Tampered {
        model: String,
        version: u32,
        path: String,
        reason: String,
    },
    #[error("I/O error during {op} on {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl RegistryError {
    pub fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        RegistryError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    /// The HTTP status for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            RegistryError::BadRequest(_) => 400,
            RegistryError::NotFound(_) => 404,
            RegistryError::Conflict(_) => 409,
            RegistryError::Tampered { .. }
            | RegistryError::Io { .. }
            | RegistryError::Internal(_) => 500,
        }
    }

    /// A short machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            RegistryError::BadRequest(_) => "bad_request",
            RegistryError::NotFound(_) => "not_found",
            RegistryError::Conflict(_) => "conflict",
            RegistryError::Tampered { .. } => "artifact_corrupt",
            RegistryError::Io { .. } => "io_error",
            RegistryError::Internal(_) => "internal",
        }
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// The vector space a model version produces. Two versions with the same description produce
/// comparable vectors; `space_id` names that.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Space {
    pub dim: u32,
    /// L2, IP, COSINE, HAMMING or JACCARD (stored upper case).
    pub metric: String,
    #[serde(default)]
    pub normalize: bool,
    /// mean, cls, max, last or none.
    #[serde(default = "default_pooling")]
    pub pooling: String,
    #[serde(default)]
    pub query_prefix: String,
    #[serde(default)]
    pub document_prefix: String,
    /// float32, float16, bfloat16, int8 or binary.
    #[serde(default = "default_dtype")]
    pub dtype: String,
}

fn default_pooling() -> String {
    "mean".into()
}

fn default_dtype() -> String {
    "float32".into()
}

impl Space {
    /// Validate and normalise (upper-case metric, lower-case pooling and dtype).
    pub fn validated(mut self) -> Result<Space> {
        self.metric = self.metric.trim().to_ascii_uppercase();
        self.pooling = self.pooling.trim().to_ascii_lowercase();
        self.dtype = self.dtype.trim().to_ascii_lowercase();
        let bad = |m: String| Err(RegistryError::BadRequest(m));
        if !(1..=32768).contains(&self.dim) {
            return bad(format!("space.dim must be in [1, 32768], got {}", self.dim));
        }
        if !["L2", "IP", "COSINE", "HAMMING", "JACCARD"].contains(&self.metric.as_str()) {
            return bad(format!(
                "space.metric must be L2, IP, COSINE, HAMMING or JACCARD, got {:?}",
                self.metric
            ));
        }
        if !["mean", "cls", "max", "last", "none"].contains(&self.pooling.as_str()) {
            return bad(format!(
                "space.pooling must be mean, cls, max, last or none, got {:?}",
                self.pooling
            ));
        }
        if !["float32", "float16", "bfloat16", "int8", "binary"].contains(&self.dtype.as_str()) {
            return bad(format!(
                "space.dtype must be float32, float16, bfloat16, int8 or binary, got {:?}",
                self.dtype
            ));
        }
        if self.dtype == "binary"
            && (!self.dim.is_multiple_of(8)
                || !["HAMMING", "JACCARD"].contains(&self.metric.as_str()))
        {
            return bad(
                "a binary space needs dim a multiple of 8 and metric HAMMING or JACCARD".into(),
            );
        }
        Ok(self)
    }

    /// `sp_` + the first 16 hex digits of the SHA-256 of the canonical JSON description.
    pub fn space_id(&self) -> String {
        let canonical = serde_json::to_string(&json!({
            "dim": self.dim,
            "metric": self.metric,
            "normalize": self.normalize,
            "pooling": self.pooling,
            "query_prefix": self.query_prefix,
            "document_prefix": self.document_prefix,
            "dtype": self.dtype,
        }))
        .unwrap_or_default();
        let digest = Sha256::digest(canonical.as_bytes());
        format!("sp_{}", &audit::hex(&digest)[..16])
    }
}

/// Where a version came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    #[serde(default)]
    pub source_uri: String,
    #[serde(default)]
    pub run_id: String,
    #[serde(default)]
    pub parent_version: Option<u32>,
    #[serde(default)]
    pub created_by: String,
}

/// One stored file of a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub model: String,
    pub version: u32,
    pub files: Vec<FileEntry>,
    /// SHA-256 over the sorted `path\0sha256\n` lines of the files.
    pub sha256: String,
    pub space: Space,
    pub space_id: String,
    pub lineage: Lineage,
    pub tags: BTreeMap<String, String>,
    pub status: String,
    pub created_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasMove {
    pub seq: u64,
    pub ts_ms: u64,
    pub actor: String,
    pub from: Option<u32>,
    /// `None` when the alias was deleted.
    pub to: Option<u32>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasInfo {
    pub model: String,
    pub alias: String,
    pub version: u32,
    pub updated_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub description: String,
    pub created_ms: u64,
    pub created_by: String,
    pub versions: Vec<u32>,
    pub latest_version: Option<u32>,
    /// alias -> version
    pub aliases: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, Default)]
struct Model {
    name: String,
    description: String,
    created_ms: u64,
    created_by: String,
    versions: BTreeMap<u32, VersionInfo>,
    next_version: u32,
    aliases: BTreeMap<String, AliasInfo>,
    history: BTreeMap<String, Vec<AliasMove>>,
}

/// A vector field bound to the model version that produces its vectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    pub db: String,
    pub collection: String,
    /// The engine's collection id (names can be renamed; ids cannot).
    pub collection_id: u64,
    pub field: String,
    pub model: String,
    pub version: u32,
    pub space_id: String,
    pub bound_ms: u64,
    pub actor: String,
}

/// What binding a field needs (the caller has checked the field against the version's space).
#[derive(Debug, Clone)]
pub struct BindField {
    pub db: String,
    pub collection: String,
    pub collection_id: u64,
    pub field: String,
    pub model: String,
    pub version: u32,
}

/// What a serving alias serves: a collection's vector field, the model version behind it, the
/// index and the search parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    #[serde(default = "default_db")]
    pub db: String,
    pub collection: String,
    pub field: String,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub version: Option<u32>,
    /// Index name (informational: the field has at most one index).
    #[serde(default)]
    pub index: Option<String>,
    #[serde(default)]
    pub search_params: Json,
}

fn default_db() -> String {
    "default".into()
}

/// One revision of a serving alias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServingRevision {
    pub revision: u32,
    /// `created`, `promoted` or `rolled_back`.
    pub kind: String,
    pub bundle: Bundle,
    pub ts_ms: u64,
    pub actor: String,
    pub reason: String,
    /// Ids of the evaluations / experiments that justify the change.
    pub evidence: Vec<String>,
    /// For a rollback: the revision whose bundle was restored.
    pub restored: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServingAlias {
    pub name: String,
    pub revision: u32,
    pub bundle: Bundle,
    pub updated_ms: u64,
}

/// How many recent revisions of a serving alias keep their collection from being dropped.
pub const KEEP_REVISIONS: usize = 5;

#[derive(Debug, Default)]
struct State {
    models: BTreeMap<String, Model>,
    /// (collection id, field) -> binding
    bindings: BTreeMap<(u64, String), Binding>,
    /// serving alias -> its revisions, oldest first
    serving: BTreeMap<String, Vec<ServingRevision>>,
    /// migration id -> its record
    migrations: BTreeMap<String, Migration>,
    /// eval set name -> version -> record
    eval_sets: BTreeMap<String, BTreeMap<u32, EvalSet>>,
    /// evaluation id -> its record (`id`, `sha256`, `size`, `summary`)
    evaluations: BTreeMap<String, Json>,
    /// experiment id -> its record
    experiments: BTreeMap<String, Experiment>,
}

/// Where a new version's files come from.
pub enum ArtifactSource {
    /// `(relative path, bytes)` pairs (an upload).
    Bytes(Vec<(String, Vec<u8>)>),
    /// A file or a directory (walked recursively) on the server.
    Path(PathBuf),
}

/// What registering a version needs besides its files.
#[derive(Debug, Clone, Deserialize)]
pub struct NewVersion {
    pub space: Space,
    #[serde(default)]
    pub lineage: Lineage,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// The registry: state behind one lock, changes serialised through the audit log.
pub struct Registry {
    dir: PathBuf,
    blobs: blobs::BlobStore,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("dir", &self.dir).finish()
    }
}

struct Inner {
    state: State,
    log: audit::AuditLog,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Names of models and aliases: Milvus's rules (a letter or `_` first, then letters, digits,
/// `_` and `-`), 1..=255 bytes.
pub fn validate_name(name: &str, what: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(RegistryError::BadRequest(format!(
            "invalid {what} name {name:?}: use letters, digits, '_', '-' and '.', starting with a letter or '_' (at most 255)"
        )))
    }
}

impl State {
    fn model(&self, name: &str) -> Result<&Model> {
        self.models
            .get(name)
            .ok_or_else(|| RegistryError::NotFound(format!("model {name} not found")))
    }

    fn version(&self, name: &str, v: u32) -> Result<&VersionInfo> {
        self.model(name)?
            .versions
            .get(&v)
            .ok_or_else(|| RegistryError::NotFound(format!("model {name} has no version {v}")))
    }

    /// Apply one (already validated, or replayed) event.
    fn apply(&mut self, e: &Event) -> Result<()> {
        let d = &e.data;
        let s = |k: &str| {
            d.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        let u = |k: &str| d.get(k).and_then(|v| v.as_u64()).unwrap_or_default() as u32;
        match e.kind.as_str() {
            "model_created" => {
                let name = s("name");
                self.models.insert(
                    name.clone(),
                    Model {
                        name,
                        description: s("description"),
                        created_ms: e.ts_ms,
                        created_by: e.actor.clone(),
                        next_version: 1,
                        ..Default::default()
                    },
                );
            }
            "version_registered" => {
                let v: VersionInfo = serde_json::from_value(d.clone())
                    .map_err(|err| RegistryError::Internal(format!("event {}: {err}", e.seq)))?;
                let m = self.models.get_mut(&v.model).ok_or_else(|| {
                    RegistryError::Internal(format!("event {}: unknown model", e.seq))
                })?;
                m.next_version = m.next_version.max(v.version + 1);
                m.versions.insert(v.version, v);
            }
            "version_deleted" => {
                if let Some(m) = self.models.get_mut(&s("model")) {
                    m.versions.remove(&u("version"));
                }
            }
            "binding_set" => {
                let b: Binding = serde_json::from_value(
                    d.get("binding").cloned().unwrap_or_default(),
                )
                .map_err(|err| RegistryError::Internal(format!("event {}: {err}", e.seq)))?;
                self.bindings.insert((b.collection_id, b.field.clone()), b);
            }
            "serving_created" | "serving_promoted" | "serving_rolled_back" => {
                let r: ServingRevision =
                    serde_json::from_value(d.get("revision").cloned().unwrap_or_default())
                        .map_err(|err| {
                            RegistryError::Internal(format!("event {}: {err}", e.seq))
                        })?;
                self.serving.entry(s("name")).or_default().push(r);
            }
            "binding_removed" => {
                let id = d
                    .get("collection_id")
                    .and_then(|v| v.as_u64())
                    .unwrap_or_default();
                self.bindings.remove(&(id, s("field")));
            }
            "alias_set" | "alias_deleted" => {
                let (model, alias) = (s("model"), s("alias"));
                let to = d.get("to").and_then(|v| v.as_u64()).map(|v| v as u32);
                let from = d.get("from").and_then(|v| v.as_u64()).map(|v| v as u32);
                if let Some(m) = self.models.get_mut(&model) {
                    match to {
                        Some(v) => {
                            m.aliases.insert(
                                alias.clone(),
                                AliasInfo {
                                    model: model.clone(),
                                    alias: alias.clone(),
                                    version: v,
                                    updated_ms: e.ts_ms,
                                },
                            );
                        }
                        None => {
                            m.aliases.remove(&alias);
                        }
                    }
                    m.history.entry(alias).or_default().push(AliasMove {
                        seq: e.seq,
                        ts_ms: e.ts_ms,
                        actor: e.actor.clone(),
                        from,
                        to,
                        reason: s("reason"),
                    });
                }
            }
            "migration_created" | "migration_updated" => {
                self.apply_migration(&e.kind, d, e.ts_ms);
            }
            "eval_set_created" => self.apply_eval_set(d)?,
            "experiment_started" | "experiment_updated" => {
                self.apply_experiment(&e.kind, d, e.ts_ms);
            }
            "evaluation_recorded" => {
                let id = s("id");
                self.evaluations.insert(id, d.clone());
            }
            other => {
                return Err(RegistryError::Internal(format!(
                    "event {}: unknown kind {other}",
                    e.seq
                )))
            }
        }
        Ok(())
    }
}

impl Registry {
    /// Open (creating) the registry in `dir` and replay its audit log.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Registry> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)
            .map_err(|e| RegistryError::io("create directory", &dir, e))?;
        let blobs = blobs::BlobStore::open(dir.join("blobs"))?;
        let (log, events, _) = audit::AuditLog::open(&dir.join("audit.log"))?;
        let mut state = State::default();
        for e in &events {
            state.apply(e)?;
        }
        Ok(Registry {
            dir,
            blobs,
            inner: Mutex::new(Inner { state, log }),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn commit(
        inner: &mut Inner,
        actor: &str,
        kind: &str,
        subject: &str,
        data: Json,
    ) -> Result<Event> {
        let e = inner.log.append(actor, kind, subject, data, now_ms())?;
        inner.state.apply(&e)?;
        Ok(e)
    }

    fn info(m: &Model) -> ModelInfo {
        ModelInfo {
            name: m.name.clone(),
            description: m.description.clone(),
            created_ms: m.created_ms,
            created_by: m.created_by.clone(),
            versions: m.versions.keys().copied().collect(),
            latest_version: m.versions.keys().next_back().copied(),
            aliases: m
                .aliases
                .iter()
                .map(|(a, i)| (a.clone(), i.version))
                .collect(),
        }
    }

    // ------------------------------------------------------------------ models

    pub fn create_model(&self, name: &str, description: &str, actor: &str) -> Result<ModelInfo> {
        validate_name(name, "model")?;
        let mut g = self.inner.lock();
        if g.state.models.contains_key(name) {
            return Err(RegistryError::Conflict(format!(
                "model {name} already exists"
            )));
        }
        Self::commit(
            &mut g,
            actor,
            "model_created",
            name,
            json!({"name": name, "description": description}),
        )?;
        Ok(Self::info(g.state.model(name)?))
    }

    pub fn list_models(&self) -> Vec<ModelInfo> {
        self.inner
            .lock()
            .state
            .models
            .values()
            .map(Self::info)
            .collect()
    }

    pub fn model(&self, name: &str) -> Result<ModelInfo> {
        Ok(Self::info(self.inner.lock().state.model(name)?))
    }

    // ------------------------------------------------------------------ versions

    /// Store the files, then record the version (number = the model's next).
    pub fn register_version(
        &self,
        name: &str,
        source: ArtifactSource,
        new: NewVersion,
        actor: &str,
    ) -> Result<VersionInfo> {
        let space = new.space.validated()?;
        self.inner.lock().state.model(name)?;
        if let Some(p) = new.lineage.parent_version {
            self.inner.lock().state.version(name, p).map_err(|_| {
                RegistryError::BadRequest(format!(
                    "lineage.parent_version {p} is not a version of {name}"
                ))
            })?;
        }
        let mut files = match source {
            ArtifactSource::Bytes(list) => {
                let mut out = Vec::new();
                for (path, bytes) in list {
                    let path = blobs::clean_path(&path)?;
                    let (sha256, size) = self.blobs.put_bytes(&bytes)?;
                    out.push(FileEntry { path, sha256, size });
                }
                out
            }
            ArtifactSource::Path(p) => self.blobs.put_tree(&p)?,
        };
        if files.is_empty() {
            return Err(RegistryError::BadRequest(
                "a version needs at least one file".into(),
            ));
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        if let Some(w) = files.windows(2).find(|w| w[0].path == w[1].path) {
            return Err(RegistryError::BadRequest(format!(
                "file {} is given twice",
                w[0].path
            )));
        }
        let mut whole = Sha256::new();
        for f in &files {
            whole.update(f.path.as_bytes());
            whole.update(b"\0");
            whole.update(f.sha256.as_bytes());
            whole.update(b"\n");
        }
        let mut g = self.inner.lock();
        let m = g.state.model(name)?;
        let version = m.next_version.max(1);
        let mut lineage = new.lineage;
        lineage.created_by = actor.to_string();
        let info = VersionInfo {
            model: name.to_string(),
            version,
            sha256: audit::hex(&whole.finalize()),
            space_id: space.space_id(),
            space,
            files,
            lineage,
            tags: new.tags,
            status: "READY".into(),
            created_ms: now_ms(),
        };
        let data =
            serde_json::to_value(&info).map_err(|e| RegistryError::Internal(e.to_string()))?;
        Self::commit(
            &mut g,
            actor,
            "version_registered",
            &format!("{name}@{version}"),
            data,
        )?;
        Ok(g.state.version(name, version)?.clone())
    }

    pub fn version(&self, name: &str, v: u32) -> Result<VersionInfo> {
        Ok(self.inner.lock().state.version(name, v)?.clone())
    }

    /// A file of a version, verified against its recorded hash.
    pub fn read_file(&self, name: &str, v: u32, path: &str) -> Result<Vec<u8>> {
        let f = {
            let g = self.inner.lock();
            let ver = g.state.version(name, v)?;
            ver.files
                .iter()
                .find(|f| f.path == path)
                .cloned()
                .ok_or_else(|| {
                    RegistryError::NotFound(format!("{name} version {v} has no file {path}"))
                })?
        };
        self.blobs
            .get_verified(&f.sha256, f.size)
            .map_err(|reason| RegistryError::Tampered {
                model: name.into(),
                version: v,
                path: path.into(),
                reason,
            })
    }

    /// The version's files as a directory (`<registry>/cache/<version sha256>/`), each verified
    /// on the way out; made once, atomically (a `.part` directory renamed when complete), and
    /// reused. For runtimes that load a model from a directory.
    pub fn materialize(&self, name: &str, v: u32) -> Result<PathBuf> {
        let ver = self.version(name, v)?;
        let dir = self.dir.join("cache").join(&ver.sha256);
        if dir.join(".complete").exists() {
            return Ok(dir);
        }
        let part = self.dir.join("cache").join(format!("{}.part", ver.sha256));
        let _ = std::fs::remove_dir_all(&part);
        for f in &ver.files {
            let bytes = self.read_file(name, v, &f.path)?;
            let dest = part.join(&f.path);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| RegistryError::io("create directory", parent, e))?;
            }
            std::fs::write(&dest, &bytes).map_err(|e| RegistryError::io("write", &dest, e))?;
        }
        let marker = part.join(".complete");
        std::fs::write(&marker, &ver.sha256).map_err(|e| RegistryError::io("write", &marker, e))?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&part, &dir).map_err(|e| RegistryError::io("rename", &dir, e))?;
        Ok(dir)
    }

    /// Re-hash every file of a version.
    pub fn verify_version(&self, name: &str, v: u32) -> Result<()> {
        for f in self.version(name, v)?.files {
            self.read_file(name, v, &f.path)?;
        }
        Ok(())
    }

    /// Delete a version no alias points at; its files go when no other version names them.
    /// `in_use(model, version)` lets the caller (the engine) veto with a reason.
    pub fn delete_version(
        &self,
        name: &str,
        v: u32,
        actor: &str,
        in_use: &dyn Fn(&str, u32) -> Option<String>,
    ) -> Result<()> {
        let mut g = self.inner.lock();
        let m = g.state.model(name)?;
        g.state.version(name, v)?;
        if let Some((alias, _)) = m.aliases.iter().find(|(_, a)| a.version == v) {
            return Err(RegistryError::Conflict(format!(
                "version {v} of {name} is in use: alias {alias} points at it"
            )));
        }
        if let Some(b) = g
            .state
            .bindings
            .values()
            .find(|b| b.model == name && b.version == v)
        {
            return Err(RegistryError::Conflict(format!(
                "version {v} of {name} is in use: field {} of collection {} is bound to it",
                b.field, b.collection
            )));
        }
        if let Some(reason) = in_use(name, v) {
            return Err(RegistryError::Conflict(format!(
                "version {v} of {name} is in use: {reason}"
            )));
        }
        Self::commit(
            &mut g,
            actor,
            "version_deleted",
            &format!("{name}@{v}"),
            json!({"model": name, "version": v}),
        )?;
        let mut live: BTreeSet<String> = g
            .state
            .models
            .values()
            .flat_map(|m| m.versions.values())
            .flat_map(|v| v.files.iter().map(|f| f.sha256.clone()))
            .collect();
        // Eval sets and evaluation reports share the blob store.
        live.extend(
            g.state
                .eval_sets
                .values()
                .flat_map(|v| v.values().map(|s| s.sha256.clone())),
        );
        live.extend(
            g.state
                .evaluations
                .values()
                .filter_map(|e| e.get("sha256").and_then(Json::as_str).map(str::to_string)),
        );
        drop(g);
        self.blobs.retain(&live);
        Ok(())
    }

    // ------------------------------------------------------------------ aliases

    /// Point `alias` at `version`. `expected`: `Some(Some(v))` = it must point at `v` now,
    /// `Some(None)` = it must not exist yet, `None` = no check.
    pub fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: u32,
        expected: Option<Option<u32>>,
        reason: &str,
        actor: &str,
    ) -> Result<AliasInfo> {
        validate_name(alias, "alias")?;
        let mut g = self.inner.lock();
        g.state.version(name, version)?;
        let current = g.state.model(name)?.aliases.get(alias).map(|a| a.version);
        if let Some(want) = expected {
            if want != current {
                return Err(RegistryError::Conflict(format!(
                    "alias {alias} of {name} points at {}, not the expected {}",
                    current.map_or("nothing".to_string(), |v| format!("version {v}")),
                    want.map_or("nothing".to_string(), |v| format!("version {v}"))
                )));
            }
        }
        Self::commit(
            &mut g,
            actor,
            "alias_set",
            &format!("{name}#{alias}"),
            json!({"model": name, "alias": alias, "from": current, "to": version, "reason": reason}),
        )?;
        g.state
            .model(name)?
            .aliases
            .get(alias)
            .cloned()
            .ok_or_else(|| RegistryError::Internal("alias vanished".into()))
    }

    pub fn alias(&self, name: &str, alias: &str) -> Result<AliasInfo> {
        self.inner
            .lock()
            .state
            .model(name)?
            .aliases
            .get(alias)
            .cloned()
            .ok_or_else(|| RegistryError::NotFound(format!("model {name} has no alias {alias}")))
    }

    pub fn delete_alias(&self, name: &str, alias: &str, actor: &str) -> Result<()> {
        let mut g = self.inner.lock();
        let current = g
            .state
            .model(name)?
            .aliases
            .get(alias)
            .map(|a| a.version)
            .ok_or_else(|| RegistryError::NotFound(format!("model {name} has no alias {alias}")))?;
        Self::commit(
            &mut g,
            actor,
            "alias_deleted",
            &format!("{name}#{alias}"),
            json!({"model": name, "alias": alias, "from": current, "to": null}),
        )?;
        Ok(())
    }

    /// Every move of an alias, oldest first (kept after the alias is deleted).
    pub fn alias_history(&self, name: &str, alias: &str) -> Result<Vec<AliasMove>> {
        let g = self.inner.lock();
        let m = g.state.model(name)?;
        m.history
            .get(alias)
            .cloned()
            .ok_or_else(|| RegistryError::NotFound(format!("model {name} has no alias {alias}")))
    }

    // ------------------------------------------------------------------ field bindings

    /// Bind a vector field to a model version (the caller checked dim and type against the
    /// version's space). Rebinding a field that already holds data to another space is refused:
    /// that is what a migration is for. Rebinding to the same version is a no-op.
    pub fn bind_field(
        &self,
        req: BindField,
        has_data: bool,
        reason: &str,
        actor: &str,
    ) -> Result<Binding> {
        let mut g = self.inner.lock();
        let space_id = g.state.version(&req.model, req.version)?.space_id.clone();
        let key = (req.collection_id, req.field.clone());
        let previous = g.state.bindings.get(&key).cloned();
        if let Some(p) = &previous {
            if p.model == req.model && p.version == req.version {
                return Ok(p.clone());
            }
            if has_data && p.space_id != space_id {
                return Err(RegistryError::Conflict(format!(
                    "field {} of {} holds vectors of {}@{} ({}); binding it to {}@{} ({space_id}) needs a re-embedding migration",
                    req.field, req.collection, p.model, p.version, p.space_id, req.model, req.version
                )));
            }
        } else if has_data {
            tracing::info!(
                collection = req.collection,
                field = req.field,
                "binding a field that already holds data: its vectors are taken to come from {}@{}",
                req.model,
                req.version
            );
        }
        let binding = Binding {
            db: req.db,
            collection: req.collection,
            collection_id: req.collection_id,
            field: req.field,
            model: req.model,
            version: req.version,
            space_id,
            bound_ms: now_ms(),
            actor: actor.to_string(),
        };
        let from = previous
            .map(|p| json!({"model": p.model, "version": p.version, "space_id": p.space_id}));
        Self::commit(
            &mut g,
            actor,
            "binding_set",
            &format!("{}.{}", binding.collection, binding.field),
            json!({"binding": binding, "from": from, "reason": reason}),
        )?;
        Ok(binding)
    }

    /// The binding of a field, if any.
    pub fn binding(&self, collection_id: u64, field: &str) -> Option<Binding> {
        self.inner
            .lock()
            .state
            .bindings
            .get(&(collection_id, field.to_string()))
            .cloned()
    }

    /// Remove a field's binding (its collection was dropped, or an operator unbinds it).
    pub fn unbind_field(&self, collection_id: u64, field: &str, actor: &str) -> Result<()> {
        let mut g = self.inner.lock();
        let b = g
            .state
            .bindings
            .get(&(collection_id, field.to_string()))
            .cloned()
            .ok_or_else(|| {
                RegistryError::NotFound(format!("field {field} is not bound to a model"))
            })?;
        Self::commit(
            &mut g,
            actor,
            "binding_removed",
            &format!("{}.{}", b.collection, b.field),
            json!({"collection_id": collection_id, "field": field, "model": b.model, "version": b.version}),
        )?;
        Ok(())
    }

    // ------------------------------------------------------------------ serving aliases

    fn serving_of(g: &Inner, name: &str) -> Result<ServingAlias> {
        let revs =
            g.state.serving.get(name).ok_or_else(|| {
                RegistryError::NotFound(format!("serving alias {name} not found"))
            })?;
        let cur = revs
            .last()
            .ok_or_else(|| RegistryError::Internal("serving alias without revisions".into()))?;
        Ok(ServingAlias {
            name: name.to_string(),
            revision: cur.revision,
            bundle: cur.bundle.clone(),
            updated_ms: cur.ts_ms,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn serving_commit(
        g: &mut Inner,
        name: &str,
        kind: &str,
        bundle: Bundle,
        reason: &str,
        evidence: Vec<String>,
        restored: Option<u32>,
        actor: &str,
    ) -> Result<ServingAlias> {
        let revision = g.state.serving.get(name).map_or(1, |r| r.len() as u32 + 1);
        let from = g
            .state
            .serving
            .get(name)
            .and_then(|r| r.last())
            .map(|r| r.revision);
        let rev = ServingRevision {
            revision,
            kind: kind.to_string(),
            bundle,
            ts_ms: now_ms(),
            actor: actor.to_string(),
            reason: reason.to_string(),
            evidence,
            restored,
        };
        Self::commit(
            g,
            actor,
            &format!("serving_{kind}"),
            &format!("serving:{name}"),
            json!({"name": name, "from_revision": from, "revision": rev}),
        )?;
        Self::serving_of(g, name)
    }

    /// Create a serving alias at revision 1 (the caller validated the bundle).
    pub fn create_serving(
        &self,
        name: &str,
        bundle: Bundle,
        reason: &str,
        actor: &str,
    ) -> Result<ServingAlias> {
        validate_name(name, "serving alias")?;
        let mut g = self.inner.lock();
        if g.state.serving.contains_key(name) {
            return Err(RegistryError::Conflict(format!(
                "serving alias {name} already exists"
            )));
        }
        Self::serving_commit(
            &mut g,
            name,
            "created",
            bundle,
            reason,
            Vec::new(),
            None,
            actor,
        )
    }

    /// The current revision of a serving alias, without copying its bundle (the search path
    /// of a running experiment asks on every search).
    pub fn serving_revision(&self, name: &str) -> Option<u32> {
        self.inner
            .lock()
            .state
            .serving
            .get(name)
            .and_then(|r| r.last())
            .map(|r| r.revision)
    }

    pub fn serving(&self, name: &str) -> Result<ServingAlias> {
        Self::serving_of(&self.inner.lock(), name)
    }

    pub fn list_serving(&self) -> Vec<ServingAlias> {
        let g = self.inner.lock();
        g.state
            .serving
            .keys()
            .filter_map(|n| Self::serving_of(&g, n).ok())
            .collect()
    }

    /// Every revision, oldest first.
    pub fn serving_history(&self, name: &str) -> Result<Vec<ServingRevision>> {
        self.inner
            .lock()
            .state
            .serving
            .get(name)
            .cloned()
            .ok_or_else(|| RegistryError::NotFound(format!("serving alias {name} not found")))
    }

    /// Move a serving alias to `bundle` if it is still at `expected_revision` (compare-and-swap).
    pub fn promote_serving(
        &self,
        name: &str,
        bundle: Bundle,
        expected_revision: u32,
        reason: &str,
        evidence: Vec<String>,
        actor: &str,
    ) -> Result<ServingAlias> {
        let mut g = self.inner.lock();
        let cur = Self::serving_of(&g, name)?;
        if cur.revision != expected_revision {
            return Err(RegistryError::Conflict(format!(
                "serving alias {name} is at revision {}, not the expected {expected_revision}",
                cur.revision
            )));
        }
        Self::serving_commit(
            &mut g, name, "promoted", bundle, reason, evidence, None, actor,
        )
    }

    /// Serve again the bundle of revision `to` (`None`: the one before the current revision),
    /// as a new revision; with `expected_revision`, only if the alias is still there.
    #[allow(clippy::too_many_arguments)]
    pub fn rollback_serving(
        &self,
        name: &str,
        to: Option<u32>,
        expected_revision: Option<u32>,
        reason: &str,
        evidence: Vec<String>,
        actor: &str,
    ) -> Result<ServingAlias> {
        let mut g = self.inner.lock();
        if let Some(want) = expected_revision {
            let cur = Self::serving_of(&g, name)?.revision;
            if cur != want {
                return Err(RegistryError::Conflict(format!(
                    "serving alias {name} is at revision {cur}, not the expected {want}"
                )));
            }
        }
        let revs =
            g.state.serving.get(name).ok_or_else(|| {
                RegistryError::NotFound(format!("serving alias {name} not found"))
            })?;
        let target = match to {
            Some(r) => revs.iter().find(|x| x.revision == r).ok_or_else(|| {
                RegistryError::NotFound(format!("serving alias {name} has no revision {r}"))
            })?,
            None => revs.iter().rev().nth(1).ok_or_else(|| {
                RegistryError::Conflict(format!("serving alias {name} has no previous revision"))
            })?,
        };
        let (bundle, restored) = (target.bundle.clone(), target.revision);
        Self::serving_commit(
            &mut g,
            name,
            "rolled_back",
            bundle,
            reason,
            evidence,
            Some(restored),
            actor,
        )
    }

    /// `(db, collection)` pairs a serving alias serves or served in its last
    /// [`KEEP_REVISIONS`] revisions: their data must stay (rollback needs it).
    pub fn kept_collections(&self) -> BTreeSet<(String, String)> {
        let g = self.inner.lock();
        g.state
            .serving
            .values()
            .flat_map(|revs| revs.iter().rev().take(KEEP_REVISIONS))
            .map(|r| (r.bundle.db.clone(), r.bundle.collection.clone()))
            .collect()
    }

    // ------------------------------------------------------------------ audit

    /// Events with `seq > since`, oldest first (as the file holds them, verified).
    pub fn audit(&self, since: u64) -> Result<Vec<Event>> {
        let (events, _) = self.inner.lock().log.verify()?;
        Ok(events.into_iter().filter(|e| e.seq > since).collect())
    }

    /// Recompute the whole chain from the file.
    pub fn verify_audit(&self) -> Result<VerifyReport> {
        Ok(self.inner.lock().log.verify()?.1)
    }
}
