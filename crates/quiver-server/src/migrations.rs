//! Re-embedding migrations: move a collection to a new model version without a script.
//!
//! `start` records the migration in the registry (audited), then sets it up: the target field
//! is added to the collection (nullable FLOAT_VECTOR of the version's dim) together with a
//! TextEmbedding function from the source text field, and bound to the version. From then on
//! every insert and upsert writes both fields (the function runs on each write), deletes apply
//! to both (they are one row), and a worker thread backfills the rows that existed before:
//!
//! 1. BACKFILLING: take the next `batch_size` live rows whose target is NULL, in key order after
//!    the checkpoint cursor; embed their texts (document role); `Engine::fill_field` sets the
//!    target only where it is still NULL (so a row a user rewrote meanwhile keeps the vector of
//!    its new text); then the cursor is saved (temp file, fsync, rename). At most
//!    `max_rows_per_s` rows a second when given.
//! 2. CATCHING_UP: the scan reached the end; passes from the start pick up rows whose write
//!    raced the setup, until a pass finds none.
//! 3. READY: every live row has a target vector; a serving alias may now be promoted to the
//!    field (before that, `check_bundle` refuses it).
//!
//! Crash safety: a fill is durable before its cursor is saved, and a row is picked only while
//! its target is NULL, so after kill -9 the worker resumes at the saved cursor and neither
//! embeds a row into the result twice nor skips one (the catch-up pass would find it). Progress
//! is derived from the data: `total` = live rows, `done` = rows that have a target vector.
//! Pause, resume and abort are registry events; pause and abort return once the worker's
//! current batch is done (no fill lands after them); abort removes the function (dual writes
//! stop) and leaves the partly filled field in place.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use quiver_core::schema::FunctionSchema;
use quiver_core::{Cell, Column, ColumnData, DataType, FieldSchema, VectorColumn};
use quiver_engine::{Engine, Pk};
use quiver_registry::migrations::{ABORTED, BACKFILLING, CATCHING_UP, FAILED, PENDING, READY};
use quiver_registry::{Migration, Registry, RegistryError};
use serde_json::{json, Value as Json};

use crate::functions::{Embedders, Role, TEXT_EMBEDDING};
use crate::rest::v1::engine_error;

/// What `POST /v1/collections/{c}/migrations` asks for.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct StartRequest {
    #[serde(default)]
    pub db: Option<String>,
    /// `name@version` or `name@alias` (resolved now).
    pub to_model: String,
    pub target_field: String,
    pub source_text_field: String,
    #[serde(default)]
    pub batch_size: Option<u32>,
    #[serde(default)]
    pub max_rows_per_s: Option<f64>,
}

/// Rates measured while a worker runs (not persisted).
#[derive(Debug, Default, Clone)]
struct Progress {
    /// (when, rows set) of recent batches.
    window: Vec<(Instant, u64)>,
    backfilled: u64,
}

impl Progress {
    fn rate(&self) -> f64 {
        let (Some(first), Some(last)) = (self.window.first(), self.window.last()) else {
            return 0.0;
        };
        let secs = last.0.duration_since(first.0).as_secs_f64();
        if self.window.len() < 2 || secs <= 0.0 {
            return 0.0;
        }
        // Rows set after the first batch of the window, over the time since it.
        let rows: u64 = self.window[1..].iter().map(|w| w.1).sum();
        rows as f64 / secs
    }
}

/// The migrations of a server: their workers and rates.
pub struct Migrations {
    engine: Arc<Engine>,
    embedders: Arc<Embedders>,
    registry: Arc<Registry>,
    dir: PathBuf,
    workers: Mutex<HashMap<String, Arc<AtomicBool>>>,
    /// Worker threads, joined by [`Migrations::stop_all`].
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    progress: Mutex<HashMap<String, Progress>>,
}

fn bad(m: impl Into<String>) -> RegistryError {
    RegistryError::BadRequest(m.into())
}

fn pk_json(pk: &Pk) -> Json {
    match pk {
        Pk::Int(i) => json!({"int": i}),
        Pk::Str(s) => json!({"str": s}),
    }
}

fn pk_from(j: &Json) -> Option<Pk> {
    if let Some(i) = j.get("int").and_then(Json::as_i64) {
        return Some(Pk::Int(i));
    }
    j.get("str")
        .and_then(Json::as_str)
        .map(|s| Pk::Str(s.into()))
}

/// The function a migration adds (one name per migration).
fn function_name(m: &Migration) -> String {
    format!("quiver_migration_{}", m.id.replace('-', "_"))
}

impl Migrations {
    pub fn new(engine: Arc<Engine>, embedders: Arc<Embedders>, registry: Arc<Registry>) -> Self {
        let dir = registry.dir().join("migrations");
        Migrations {
            engine,
            embedders,
            registry,
            dir,
            workers: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
            progress: Mutex::new(HashMap::new()),
        }
    }

    /// At server start: finish setting up, and restart the workers of, active migrations that
    /// are neither paused nor failed.
    pub fn resume_all(self: &Arc<Self>) {
        for m in self.registry.migrations() {
            if m.is_active() && !m.paused && m.state != FAILED {
                if let Err(e) = self.setup_and_run(&m) {
                    tracing::error!(migration = m.id, "migration could not resume: {e}");
                }
            }
        }
    }

    /// Record and start a migration of `coll`.
    pub fn start(
        self: &Arc<Self>,
        coll: &str,
        req: StartRequest,
        actor: &str,
    ) -> Result<Json, RegistryError> {
        let db = req
            .db
            .clone()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| quiver_engine::DEFAULT_DB.to_string());
        let (meta, _) = self.engine.collection(&db, coll).map_err(engine_error)?;
        let src = meta.schema.field(&req.source_text_field).ok_or_else(|| {
            RegistryError::NotFound(format!(
                "collection {coll} has no field {}",
                req.source_text_field
            ))
        })?;
        if src.data_type != DataType::VarChar {
            return Err(bad(format!(
                "source_text_field {} must be a VARCHAR field",
                src.name
            )));
        }
        quiver_core::schema::validate_name(&req.target_field, "field").map_err(engine_error)?;
        if meta.schema.field(&req.target_field).is_some() {
            return Err(RegistryError::Conflict(format!(
                "collection {coll} already has a field {}: name a new target_field",
                req.target_field
            )));
        }
        let (model, which) = req
            .to_model
            .rsplit_once('@')
            .filter(|(m, w)| !m.is_empty() && !w.is_empty())
            .ok_or_else(|| {
                bad(format!(
                    "to_model must be name@version or name@alias, got {:?}",
                    req.to_model
                ))
            })?;
        let version = match which.parse::<u32>() {
            Ok(v) => v,
            Err(_) => self.registry.alias(model, which)?.version,
        };
        let ver = self.registry.version(model, version)?;
        if !matches!(ver.space.dtype.as_str(), "" | "float32") {
            return Err(bad(format!(
                "{model}@{version} produces {} vectors; migrations write FLOAT_VECTOR fields",
                ver.space.dtype
            )));
        }
        let batch_size = req.batch_size.unwrap_or(256);
        if !(1..=4096).contains(&batch_size) {
            return Err(bad(format!(
                "batch_size must be in [1, 4096], got {batch_size}"
            )));
        }
        if let Some(r) = req.max_rows_per_s {
            if r.is_nan() || r <= 0.0 {
                return Err(bad(format!("max_rows_per_s must be positive, got {r}")));
            }
        }
        let m = self.registry.create_migration(
            Migration {
                id: String::new(),
                db,
                collection: meta.name.clone(),
                collection_id: meta.id,
                source_field: req.source_text_field,
                target_field: req.target_field,
                model: model.to_string(),
                version,
                space_id: ver.space_id.clone(),
                batch_size,
                max_rows_per_s: req.max_rows_per_s,
                state: PENDING.into(),
                paused: false,
                error: None,
                created_ms: 0,
                updated_ms: 0,
                created_by: String::new(),
            },
            actor,
        )?;
        self.setup_and_run(&m)?;
        self.status(&m.id)
    }

    /// Add the field and function and bind it (each step only if not done yet: this also
    /// finishes a setup a crash interrupted), then run the worker.
    fn setup_and_run(self: &Arc<Self>, m: &Migration) -> Result<(), RegistryError> {
        if m.state == PENDING {
            if let Err(e) = self.setup(m) {
                let msg = format!("setting up the target field failed: {e}");
                self.registry
                    .update_migration(&m.id, FAILED, false, Some(&msg), "quiver")?;
                return Err(e);
            }
            self.registry
                .update_migration(&m.id, BACKFILLING, false, None, "quiver")?;
        }
        self.spawn(&m.id);
        Ok(())
    }

    fn setup(&self, m: &Migration) -> Result<(), RegistryError> {
        let meta = self.meta(m)?;
        if meta.schema.field(&m.target_field).is_none() {
            let ver = self.registry.version(&m.model, m.version)?;
            let mut field = FieldSchema::new(&m.target_field, DataType::FloatVector)
                .with_param("dim", ver.space.dim);
            field.nullable = true;
            field.description = format!("re-embedded by {}@{} ({})", m.model, m.version, m.id);
            let mut params = std::collections::BTreeMap::new();
            params.insert("provider".to_string(), "quiver".to_string());
            params.insert(
                "model_name".to_string(),
                format!("{}@{}", m.model, m.version),
            );
            let function = FunctionSchema {
                name: function_name(m),
                description: format!("migration {}", m.id),
                function_type: TEXT_EMBEDDING,
                input_field_names: vec![m.source_field.clone()],
                output_field_names: vec![m.target_field.clone()],
                params,
            };
            self.engine
                .add_field(&m.db, &meta.name, field, Some(function))
                .map_err(engine_error)?;
        }
        if self
            .registry
            .binding(m.collection_id, &m.target_field)
            .is_none()
        {
            crate::rest::v1::bind(
                &self.engine,
                &self.registry,
                &m.db,
                &meta.name,
                &m.target_field,
                &m.model,
                m.version,
                &format!("migration {}", m.id),
                &m.created_by,
            )?;
        }
        Ok(())
    }

    /// The collection as it is named now (it may have been renamed).
    fn meta(&self, m: &Migration) -> Result<quiver_engine::CollectionMeta, RegistryError> {
        self.engine
            .collection_meta_by_id(m.collection_id)
            .ok_or_else(|| {
                RegistryError::NotFound(format!(
                    "collection {} of migration {} no longer exists",
                    m.collection, m.id
                ))
            })
    }

    fn spawn(self: &Arc<Self>, id: &str) {
        let stop = Arc::new(AtomicBool::new(false));
        {
            let mut w = self.workers.lock();
            if w.contains_key(id) {
                return;
            }
            w.insert(id.to_string(), Arc::clone(&stop));
        }
        let this = Arc::clone(self);
        let key = id.to_string();
        let id = id.to_string();
        let spawned = std::thread::Builder::new()
            .name(format!("migration-{id}"))
            .spawn(move || {
                let r = this.run(&id, &stop);
                if let Err(e) = r {
                    let msg = e.to_string();
                    tracing::error!(migration = id, "migration failed: {msg}");
                    if !stop.load(Ordering::SeqCst) {
                        if let Ok(m) = this.registry.migration(&id) {
                            let _ = this.registry.update_migration(
                                &id,
                                FAILED,
                                m.paused,
                                Some(&msg),
                                "quiver",
                            );
                        }
                    }
                }
                this.workers.lock().remove(&id);
            });
        match spawned {
            Ok(h) => {
                let mut t = self.threads.lock();
                t.retain(|h| !h.is_finished());
                t.push(h);
            }
            Err(e) => {
                tracing::error!("could not start a migration worker: {e}");
                self.workers.lock().remove(&key);
            }
        }
    }

    /// Server shutdown: ask every worker to stop after its current batch and wait for them.
    /// Their migrations stay as they are in the registry and resume at the next start.
    pub fn stop_all(&self) {
        for stop in self.workers.lock().values() {
            stop.store(true, Ordering::SeqCst);
        }
        let threads: Vec<_> = self.threads.lock().drain(..).collect();
        for h in threads {
            let _ = h.join();
        }
    }

    fn ckpt_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn load_cursor(&self, id: &str) -> Option<Pk> {
        let bytes = std::fs::read(self.ckpt_path(id)).ok()?;
        let j: Json = serde_json::from_slice(&bytes).ok()?;
        j.get("cursor").and_then(pk_from)
    }

    /// Save the cursor atomically (temp file, fsync, rename, fsync of the directory).
    fn save_cursor(&self, id: &str, cursor: Option<&Pk>) -> Result<(), RegistryError> {
        use std::io::Write;
        let io = |op: &'static str, p: &std::path::Path| {
            let p = p.to_path_buf();
            move |e| RegistryError::io(op, &p, e)
        };
        std::fs::create_dir_all(&self.dir).map_err(io("create directory", &self.dir))?;
        let path = self.ckpt_path(id);
        let tmp = path.with_extension("json.tmp");
        let body = json!({"cursor": cursor.map(pk_json)}).to_string();
        let mut f = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(body.as_bytes()).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("fsync", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("rename", &path))?;
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// The worker: batches until READY, paused, failed, aborted or stopped.
    fn run(&self, id: &str, stop: &AtomicBool) -> Result<(), RegistryError> {
        // Read once; from here on this worker is the only writer of the checkpoint.
        let mut cursor = self.load_cursor(id);
        loop {
            if stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            let m = self.registry.migration(id)?;
            if !m.is_active() || m.paused || m.state == FAILED || m.state == PENDING {
                return Ok(());
            }
            let meta = self.meta(&m)?;
            let batch = m.batch_size as usize;
            let t0 = Instant::now();
            let (rows, remaining) = self
                .engine
                .rows_missing(
                    &m.db,
                    &meta.name,
                    &m.target_field,
                    &m.source_field,
                    cursor.as_ref(),
                    batch,
                )
                .map_err(engine_error)?;
            if rows.is_empty() {
                if m.state == CATCHING_UP && remaining == 0 {
                    self.registry
                        .update_migration(id, READY, false, None, "quiver")?;
                    tracing::info!(migration = id, "migration is READY");
                    return Ok(());
                }
                if m.state == BACKFILLING {
                    self.registry
                        .update_migration(id, CATCHING_UP, false, None, "quiver")?;
                }
                // Start the next pass from the first key.
                cursor = None;
                self.save_cursor(id, None)?;
                if remaining > 0 {
                    // Rows behind the cursor: a pass from the start picks them up.
                    std::thread::sleep(Duration::from_millis(20));
                }
                continue;
            }
            let mut texts = Vec::with_capacity(rows.len());
            for (pk, cell) in &rows {
                match cell {
                    Cell::Str(s) => texts.push(s.clone()),
                    _ => {
                        return Err(bad(format!(
                            "row {pk:?} has no text in {} to embed; give it one and resume",
                            m.source_field
                        )))
                    }
                }
            }
            let (vectors, _) = self
                .embedders
                .embed(&m.model, m.version, &texts, Role::Document)?;
            let dim = vectors.first().map_or(0, Vec::len);
            let values = Column::new(ColumnData::Vector(VectorColumn::f32(
                dim,
                vectors.into_iter().flatten().collect(),
            )));
            let last = rows.last().map(|(pk, _)| pk.clone());
            let pks: Vec<Pk> = rows.into_iter().map(|(pk, _)| pk).collect();
            let n = self
                .engine
                .fill_field(&m.db, &meta.name, &m.target_field, pks, values)
                .map_err(engine_error)?;
            self.save_cursor(id, last.as_ref())?;
            cursor = last;
            {
                let mut p = self.progress.lock();
                let p = p.entry(id.to_string()).or_default();
                p.backfilled += n;
                p.window.push((Instant::now(), n));
                let keep = p.window.len().saturating_sub(20);
                p.window.drain(..keep);
            }
            if let Some(max) = m.max_rows_per_s {
                let want = Duration::from_secs_f64(texts.len() as f64 / max);
                let took = t0.elapsed();
                if want > took {
                    // Sleep in slices so pause / abort take effect promptly.
                    let until = Instant::now() + (want - took);
                    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                        std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
                    }
                }
            }
        }
    }

    /// The record with live progress: `{id, state, paused, done, total, remaining, rows_per_s,
    /// eta_s, errors, ...}`.
    pub fn status(&self, id: &str) -> Result<Json, RegistryError> {
        let m = self.registry.migration(id)?;
        let mut j = serde_json::to_value(&m).map_err(|e| RegistryError::Internal(e.to_string()))?;
        let (total, remaining) = match self.meta(&m) {
            Ok(meta) if meta.schema.field(&m.target_field).is_some() => {
                let total = self
                    .engine
                    .row_count(&m.db, &meta.name, &[])
                    .map_err(engine_error)?;
                let (_, remaining) = self
                    .engine
                    .rows_missing(&m.db, &meta.name, &m.target_field, &m.source_field, None, 0)
                    .map_err(engine_error)?;
                (total, remaining)
            }
            _ => (0, 0),
        };
        let p = self.progress.lock().get(id).cloned().unwrap_or_default();
        let rate = p.rate();
        let running = self.workers.lock().contains_key(id);
        let eta = (rate > 0.0 && remaining > 0).then(|| remaining as f64 / rate);
        let o = j.as_object_mut().expect("a record is an object");
        o.insert("total".into(), json!(total));
        o.insert("done".into(), json!(total.saturating_sub(remaining)));
        o.insert("remaining".into(), json!(remaining));
        o.insert("backfilled".into(), json!(p.backfilled));
        o.insert("rows_per_s".into(), json!((rate * 10.0).round() / 10.0));
        o.insert(
            "eta_s".into(),
            eta.map_or(Json::Null, |e| json!((e * 10.0).round() / 10.0)),
        );
        o.insert("running".into(), json!(running));
        o.insert("errors".into(), json!(m.error.iter().collect::<Vec<_>>()));
        o.insert(
            "cursor".into(),
            self.load_cursor(id).as_ref().map_or(Json::Null, pk_json),
        );
        Ok(j)
    }

    /// Every migration of a collection (or all), with progress.
    pub fn list(&self, db: &str, coll: Option<&str>) -> Result<Json, RegistryError> {
        let id = match coll {
            Some(c) => Some(self.engine.collection(db, c).map_err(engine_error)?.0.id),
            None => None,
        };
        let mut out = Vec::new();
        for m in self.registry.migrations() {
            if id.is_none_or(|i| i == m.collection_id) {
                out.push(self.status(&m.id)?);
            }
        }
        Ok(json!({"migrations": out}))
    }

    /// The migration `id` of collection `coll` (a 404 when it belongs to another).
    pub fn check_owner(&self, db: &str, coll: &str, id: &str) -> Result<(), RegistryError> {
        let m = self.registry.migration(id)?;
        let (meta, _) = self.engine.collection(db, coll).map_err(engine_error)?;
        if meta.id != m.collection_id {
            return Err(RegistryError::NotFound(format!(
                "collection {coll} has no migration {id}"
            )));
        }
        Ok(())
    }

    /// Stop the worker of `id` (if one runs) and wait until its current batch is done, so no
    /// fill lands after the caller returns.
    fn stop_worker(&self, id: &str) {
        if let Some(stop) = self.workers.lock().get(id) {
            stop.store(true, Ordering::SeqCst);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.workers.lock().contains_key(id) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pause(&self, id: &str, actor: &str) -> Result<Json, RegistryError> {
        let m = self.registry.migration(id)?;
        self.registry
            .update_migration(id, &m.state, true, m.error.as_deref(), actor)?;
        self.stop_worker(id);
        self.status(id)
    }

    pub fn resume(self: &Arc<Self>, id: &str, actor: &str) -> Result<Json, RegistryError> {
        let m = self.registry.migration(id)?;
        // A failed migration retries from where it stopped (its setup too, if that failed).
        let state = if m.state == FAILED {
            if self.meta(&m)?.schema.field(&m.target_field).is_some()
                && self
                    .registry
                    .binding(m.collection_id, &m.target_field)
                    .is_some()
            {
                BACKFILLING
            } else {
                PENDING
            }
        } else {
            m.state.as_str()
        };
        let m = self
            .registry
            .update_migration(id, state, false, None, actor)?;
        // A worker being stopped by a pause exits on its own; wait for it briefly.
        for _ in 0..100 {
            if !self.workers.lock().contains_key(id) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.setup_and_run(&m)?;
        self.status(id)
    }

    pub fn abort(&self, id: &str, actor: &str) -> Result<Json, RegistryError> {
        let m = self.registry.migration(id)?;
        if m.state == READY {
            return Err(RegistryError::Conflict(format!(
                "migration {id} is READY; there is nothing to abort"
            )));
        }
        self.stop_worker(id);
        self.registry
            .update_migration(id, ABORTED, false, m.error.as_deref(), actor)?;
        // Dual writes stop; the partly filled field stays.
        if let Ok(meta) = self.meta(&m) {
            let f = function_name(&m);
            if meta.schema.functions.iter().any(|x| x.name == f) {
                self.engine
                    .drop_function(&m.db, &meta.name, &f)
                    .map_err(engine_error)?;
            }
        }
        self.status(id)
    }
}
