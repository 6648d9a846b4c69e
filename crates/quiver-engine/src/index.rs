//! Vector indexes inside the engine: definitions, background builds per sealed segment, and
//! build progress.
//!
//! An index definition (`IndexMeta` in the catalog, parsed into an [`IndexDef`]) names a vector
//! field, an index type with its build parameters (quiver-index parses Milvus's names) and the
//! metric. Every sealed segment with at least `EngineOptions::min_index_rows` rows gets its own
//! built index ([`SegIndex`]); smaller segments and growing data are searched exactly, which is
//! what an index over them would return anyway.
//!
//! Invariants:
//! - Builds run on one background thread per engine ([`IndexBuilder`]; the rayon pool does the
//!   parallel work) over a sealed segment's immutable rows, holding no lock: writes and searches
//!   go on. A build is cancelled when its segment disappears (compaction), its definition is
//!   dropped, or the engine closes.
//! - A built index is attached to its segment under the collection's flush lock, in this order:
//!   write `segments/<segment>.<index id>.idx` (atomic), attach in memory, commit a manifest that
//!   names the file. A manifest therefore never names a file that was not completely written, and
//!   GC (also under the flush lock) never deletes a file that is about to be named.
//! - A search uses a segment's index only when its index id is the field's current definition
//!   (drop + create makes a new id), or the staged version the request names
//!   (`SearchRequest::index_id`); indexes of definitions neither current nor staged are
//!   detached and their files collected. A staged version (`Engine::stage_index`) is built like
//!   a current one beside it; promoting it replaces the catalog definition under the staged id,
//!   so its built files serve at once.
//! - Index files are derived data: one that is missing or fails to load is logged and rebuilt,
//!   never fatal. A build that fails is not retried until the definition changes or the engine
//!   restarts; the reason is reported as the index's fail reason.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};
use quiver_core::{CollectionSchema, DataType, Error, Result};
use quiver_index::{parse_build_params, AnnIndex, IndexError, IndexSpec};

use crate::catalog::IndexMeta;
use crate::collection::Collection;
use crate::search::VMetric;

/// A validated index definition of one vector field.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexDef {
    /// Catalog id of the index; part of the index file name.
    pub id: u64,
    pub name: String,
    /// Column position of the field in the schema.
    pub field: usize,
    pub field_id: i64,
    pub spec: IndexSpec,
    pub metric: VMetric,
}

impl IndexDef {
    /// Parse a catalog definition; `None` for an index on a scalar field (not built: filters scan).
    pub fn from_meta(schema: &CollectionSchema, m: &IndexMeta) -> Result<Option<IndexDef>> {
        let field = schema
            .field_index(&m.field)
            .ok_or_else(|| Error::FieldNotFound(m.field.clone()))?;
        let fs = &schema.fields[field];
        if !fs.data_type.is_vector() {
            return Ok(None);
        }
        let binary = fs.data_type == DataType::BinaryVector;
        let index_type = m.params.get("index_type").map_or("AUTOINDEX", |s| s.trim());
        if fs.data_type == DataType::SparseFloatVector {
            // Sparse fields are searched through in-memory inverted indexes (sparse.rs); the
            // definition carries the metric and the BM25 / pruning parameters.
            let t = index_type.to_ascii_uppercase();
            if !matches!(
                t.as_str(),
                "SPARSE_INVERTED_INDEX" | "SPARSE_WAND" | "AUTOINDEX"
            ) {
                return Err(Error::InvalidArgument(format!(
                    "index type {index_type} is not supported for sparse vectors (use SPARSE_INVERTED_INDEX, SPARSE_WAND or AUTOINDEX)"
                )));
            }
            crate::sparse::SparseParams::from_index(&m.params)?;
            let bm25 = crate::text::bm25_of_output(schema, field)?.is_some();
            let metric_name = m.metric().unwrap_or(if bm25 { "BM25" } else { "IP" });
            let metric = VMetric::parse(metric_name, fs.data_type)?;
            crate::read::check_sparse_metric(&fs.name, metric, bm25)?;
            return Ok(Some(IndexDef {
                id: m.id,
                name: m.name.clone(),
                field,
                field_id: fs.field_id,
                spec: IndexSpec::Flat,
                metric,
            }));
        }
        let spec = match index_type.to_ascii_uppercase().as_str() {
            "BIN_FLAT" if binary => IndexSpec::Flat,
            t if binary && (t.starts_with("IVF") || t.starts_with("BIN_IVF")) => {
                return Err(Error::InvalidArgument(format!(
                    "index type {index_type} is not supported for binary vectors (use HNSW, AUTOINDEX or BIN_FLAT)"
                )))
            }
            _ => parse_build_params(index_type, &m.params).map_err(index_error)?,
        };
        spec.check_dim(fs.dim()).map_err(index_error)?;
        let metric_name = m
            .metric()
            .unwrap_or_else(|| VMetric::default_name(fs.data_type));
        let metric = VMetric::parse(metric_name, fs.data_type)?;
        Ok(Some(IndexDef {
            id: m.id,
            name: m.name.clone(),
            field,
            field_id: fs.field_id,
            spec,
            metric,
        }))
    }

    /// FLAT has nothing to build.
    pub fn needs_build(&self) -> bool {
        !matches!(self.spec, IndexSpec::Flat)
    }
}

/// Index errors are the caller's (bad parameters) unless the file is corrupt.
pub fn index_error(e: IndexError) -> Error {
    Error::InvalidArgument(match e {
        IndexError::InvalidParam {
            name,
            value,
            allowed,
        } => format!("{name}={value} is not allowed ({allowed})"),
        other => other.to_string(),
    })
}

/// A built index attached to a sealed segment.
#[derive(Debug)]
pub struct SegIndex {
    pub index_id: u64,
    /// Column position of the field.
    pub field: usize,
    pub field_id: i64,
    /// File name under `segments/`.
    pub file: String,
    pub ann: AnnIndex,
}

/// The build in progress in a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildStatus {
    pub segment: u64,
    pub index_id: u64,
    pub done: usize,
    pub total: usize,
}

/// Milvus's index states (common.IndexState numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexBuildState {
    InProgress = 2,
    Finished = 3,
    Failed = 4,
}

/// How far an index has come over a collection's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexProgress {
    pub state: IndexBuildState,
    /// Live rows served without waiting for a build: by the index, or by exact search where
    /// none is built (growing data, segments under `min_index_rows`, FLAT).
    /// `indexed_rows + pending_rows == total_rows`.
    pub indexed_rows: u64,
    /// Live rows of the collection, growing data included.
    pub total_rows: u64,
    /// Live rows of sealed segments still waiting for (or in) a build.
    pub pending_rows: u64,
    pub fail_reason: String,
}

/// A wake-up signal with a generation counter (no lost wake-ups between a scan and a wait).
#[derive(Debug, Default)]
pub struct Wakeup {
    generation: Mutex<u64>,
    cv: Condvar,
}

impl Wakeup {
    pub fn notify(&self) {
        *self.generation.lock() += 1;
        self.cv.notify_all();
    }

    fn current(&self) -> u64 {
        *self.generation.lock()
    }

    /// Wait until the generation moves past `seen` or `timeout` passes.
    fn wait(&self, seen: u64, timeout: Duration) {
        let mut g = self.generation.lock();
        if *g == seen {
            self.cv.wait_for(&mut g, timeout);
        }
    }
}

/// The engine's background index builder.
pub struct IndexBuilder {
    wake: Arc<Wakeup>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl IndexBuilder {
    /// Start the builder over the engine's open collections.
    pub fn spawn(
        collections: Arc<RwLock<HashMap<u64, Arc<Collection>>>>,
        wake: Arc<Wakeup>,
    ) -> IndexBuilder {
        let stop = Arc::new(AtomicBool::new(false));
        let (w, s) = (Arc::clone(&wake), Arc::clone(&stop));
        let handle = std::thread::Builder::new()
            .name("quiver-index-build".into())
            .spawn(move || run(collections, w, s))
            .ok();
        if handle.is_none() {
            tracing::error!("could not start the index build thread: searches stay exact");
        }
        IndexBuilder { wake, stop, handle }
    }

    /// Stop (cancelling a build in progress) and wait for the thread.
    pub fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for IndexBuilder {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run(
    collections: Arc<RwLock<HashMap<u64, Arc<Collection>>>>,
    wake: Arc<Wakeup>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::SeqCst) {
        let seen = wake.current();
        let mut all: Vec<Arc<Collection>> = collections.read().values().cloned().collect();
        all.sort_by_key(|c| c.id);
        let mut worked = false;
        for c in all {
            if let Err(e) = c.detach_stale_indexes() {
                tracing::warn!(collection = c.id, "could not detach dropped indexes: {e}");
            }
            while let Some(task) = c.next_build_task() {
                c.run_build(task, &stop);
                worked = true;
                if stop.load(Ordering::SeqCst) {
                    return;
                }
            }
        }
        if !worked {
            // Flushes, index DDL and shutdown notify; the timeout is a safety net.
            wake.wait(seen, Duration::from_secs(5));
        }
    }
}
