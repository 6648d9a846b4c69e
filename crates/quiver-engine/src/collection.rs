//! One collection at run time: its rows in memory, its WAL, and its files.
//!
//! Write path: validate -> encode a record -> `Committer::commit` (group commit: one write + one
//! fdatasync for every record that arrived meanwhile) -> the group-commit leader applies the
//! group to the state under the write lock, in LSN order -> the writer is acknowledged. So:
//! - a reader never sees a row that is not durable (apply happens after fsync);
//! - a reader never sees half a batch (a record is applied under one lock);
//! - recovery = manifest's files + WAL records with LSN > `checkpoint_lsn`, applied the same way.
//!
//! Flush (seal + persist) runs in three steps so writers are blocked only for the in-memory part:
//! 1. under the write lock: seal growing segments (sorted by primary key, deleted rows dropped),
//!    compact sealed segments that qualify, and snapshot the delete bitmaps; the checkpoint is
//!    the LSN applied so far;
//! 2. without the lock: write new segment files, changed delete files, and manifest `v+1`
//!    (`put_if_absent`), each atomically;
//! 3. mark what was persisted, drop WAL files wholly below the checkpoint, delete files no
//!    longer named by the current or previous manifest.
//!
//! A failure in step 2 (disk full) leaves the state as it was in memory, the WAL untouched and the
//! previous manifest current: the next flush retries. Invariant kept throughout: at most one
//! live row per primary key, and `pk_index` points at it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use quiver_core::storage::Storage;
use quiver_core::{CollectionSchema, Error, Result};
use quiver_wal::{Committer, Log, Wal, WalError, WalOptions};
use roaring::RoaringBitmap;

use crate::index::{BuildStatus, IndexBuildState, IndexDef, IndexProgress, SegIndex, Wakeup};
use crate::manifest::{manifest_key, manifest_version, IndexEntry, Manifest, SegmentEntry};
use crate::pk::Pk;
use crate::record::{self, Op, ALL_PARTITIONS};
use crate::segment::{self, SegmentData};
use crate::EngineOptions;

/// Where a live row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    pub seg: u64,
    pub row: u32,
}

/// A segment in memory.
#[derive(Debug, Clone)]
pub struct Segment {
    pub id: u64,
    pub partition: u64,
    pub data: Arc<SegmentData>,
    pub deleted: RoaringBitmap,
    /// Sealed segments are immutable and sorted by primary key.
    pub sealed: bool,
    /// The segment file exists (named by a manifest or about to be).
    pub persisted: bool,
    /// Deletes changed since the delete file named by the manifest.
    pub dirty_deletes: bool,
    pub del_file: Option<String>,
    /// The segment file named by a manifest (None until persisted).
    pub file: Option<String>,
    /// Approximate heap bytes of the data (maintained on append).
    pub approx_bytes: usize,
    /// Squared row norms per vector column of a sealed segment, computed on first use.
    pub norms: Arc<Mutex<HashMap<usize, Arc<Vec<f32>>>>>,
    /// Built indexes (sealed segments only), each with its file written.
    pub indexes: Vec<Arc<SegIndex>>,
    /// FLOAT16 / BFLOAT16 / INT8 vector columns of a sealed segment decoded to f32, on first use.
    pub decoded: Arc<Mutex<HashMap<usize, Arc<Vec<f32>>>>>,
    /// Inverted indexes of sparse columns of a sealed segment, by (column, drop ratio bits),
    /// built on first use (sparse.rs).
    pub sparse: SparseCache,
}

/// See [`Segment::sparse`].
pub type SparseCache = Arc<Mutex<HashMap<(usize, u32), Arc<crate::sparse::InvertedIndex>>>>;

/// A vector column's rows as f32: borrowed (FLOAT_VECTOR) or decoded (other float-like types).
pub enum F32Rows<'a> {
    Borrowed(&'a [f32]),
    Shared(Arc<Vec<f32>>),
}

impl std::ops::Deref for F32Rows<'_> {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            F32Rows::Borrowed(s) => s,
            F32Rows::Shared(v) => v,
        }
    }
}

impl Segment {
    /// A segment of `data` without deletes, indexes or caches, not persisted yet.
    fn new(id: u64, partition: u64, data: SegmentData, sealed: bool) -> Segment {
        Segment {
            id,
            partition,
            data: Arc::new(data),
            deleted: RoaringBitmap::new(),
            sealed,
            persisted: false,
            dirty_deletes: false,
            del_file: None,
            file: None,
            approx_bytes: 0,
            norms: Default::default(),
            decoded: Default::default(),
            sparse: Default::default(),
            indexes: Vec::new(),
        }
    }

    pub fn rows(&self) -> usize {
        self.data.rows()
    }

    pub fn live_rows(&self) -> usize {
        self.rows() - self.deleted.len() as usize
    }

    /// True when some row of column `field` is NULL (an added field not yet filled in).
    pub fn has_nulls(&self, field: usize) -> bool {
        self.data
            .columns
            .get(field)
            .and_then(|c| c.valid.as_ref())
            .is_some_and(|v| v.iter().any(|ok| !ok))
    }

    pub fn is_live(&self, row: usize) -> bool {
        !self.deleted.contains(row as u32)
    }

    /// The built index with this id, if attached.
    pub fn index(&self, index_id: u64) -> Option<&SegIndex> {
        self.indexes
            .iter()
            .find(|i| i.index_id == index_id)
            .map(|i| i.as_ref())
    }

    /// The manifest entries of the attached indexes.
    fn index_entries(&self) -> Vec<IndexEntry> {
        let mut v: Vec<IndexEntry> = self
            .indexes
            .iter()
            .map(|i| IndexEntry {
                field_id: i.field_id,
                index_id: i.index_id,
                file: i.file.clone(),
            })
            .collect();
        v.sort_by_key(|e| e.index_id);
        v
    }

    /// Squared norms of the rows of vector column `field` (sealed segments only: they never change).
    pub fn norms(&self, field: usize) -> Option<Arc<Vec<f32>>> {
        if !self.sealed {
            return None;
        }
        let quiver_core::ColumnData::Vector(vc) = &self.data.columns.get(field)?.data else {
            return None;
        };
        let dim = vc.dim;
        let data = self.f32_rows(field)?;
        let mut cache = self.norms.lock();
        Some(Arc::clone(cache.entry(field).or_insert_with(|| {
            Arc::new(quiver_simd::row_norms_sq(&data, dim))
        })))
    }

    /// The rows of a float-like vector column as f32 (`None` for binary and non-vector columns).
    /// Sealed segments decode once and keep the result; growing ones decode per call.
    pub fn f32_rows(&self, field: usize) -> Option<F32Rows<'_>> {
        let quiver_core::ColumnData::Vector(vc) = &self.data.columns.get(field)?.data else {
            return None;
        };
        if let Some(d) = vc.as_f32() {
            return Some(F32Rows::Borrowed(d));
        }
        if !self.sealed {
            return vc
                .to_f32()
                .map(|c| F32Rows::Shared(Arc::new(c.into_owned())));
        }
        let mut cache = self.decoded.lock();
        if let Some(v) = cache.get(&field) {
            return Some(F32Rows::Shared(Arc::clone(v)));
        }
        let v = Arc::new(vc.to_f32()?.into_owned());
        cache.insert(field, Arc::clone(&v));
        Some(F32Rows::Shared(v))
    }
}

/// Everything a reader needs, behind one lock.
#[derive(Debug)]
pub struct State {
    /// The schema the segments' columns follow (one column per field, `$meta` last). It lives
    /// under the same lock as the data so a reader never pairs a schema with data of another
    /// layout; [`Collection::add_field`] changes both at once.
    pub schema: Arc<CollectionSchema>,
    pub segments: BTreeMap<u64, Segment>,
    /// partition -> its growing segment
    pub growing: HashMap<u64, u64>,
    pub pk_index: HashMap<Pk, Loc>,
    pub applied_lsn: u64,
    pub max_ts: u64,
    pub next_segment_id: u64,
    pub manifest: Manifest,
    /// Rows each Fill record (by LSN) actually set, for the writer that is waiting on it.
    fill_counts: HashMap<u64, u64>,
}

impl State {
    fn mark_deleted(&mut self, loc: Loc) {
        if let Some(seg) = self.segments.get_mut(&loc.seg) {
            if seg.deleted.insert(loc.row) {
                seg.dirty_deletes = true;
            }
        }
    }

    fn apply(&mut self, lsn: u64, op: &Op) {
        let schema = Arc::clone(&self.schema);
        let schema = &*schema;
        match op {
            Op::Insert {
                partition, columns, ..
            } => self.append_rows(schema, *partition, columns),
            Op::Delete { partition, pks, .. } => {
                for pk in pks {
                    let Some(&loc) = self.pk_index.get(pk) else {
                        continue;
                    };
                    let in_scope = *partition == ALL_PARTITIONS
                        || self
                            .segments
                            .get(&loc.seg)
                            .is_some_and(|s| s.partition == *partition);
                    if in_scope {
                        self.pk_index.remove(pk);
                        self.mark_deleted(loc);
                    }
                }
            }
            Op::DropPartition { partition, .. } => {
                let ids: Vec<u64> = self
                    .segments
                    .values()
                    .filter(|s| s.partition == *partition)
                    .map(|s| s.id)
                    .collect();
                for id in ids {
                    self.segments.remove(&id);
                }
                self.growing.remove(partition);
                self.pk_index
                    .retain(|_, loc| self_has(&self.segments, loc.seg));
            }
            Op::Truncate { .. } => {
                self.segments.clear();
                self.growing.clear();
                self.pk_index.clear();
            }
            Op::Fill {
                field_id,
                pks,
                column,
                ..
            } => {
                let filled = self.apply_fill(schema, *field_id, pks, column);
                self.fill_counts.insert(lsn, filled);
            }
        }
        self.applied_lsn = lsn;
        self.max_ts = self.max_ts.max(op.ts());
    }

    /// Append rows (one column per field of `schema`, `$meta` last) to `partition`'s growing
    /// segment; a row whose key is live elsewhere replaces it.
    fn append_rows(
        &mut self,
        schema: &CollectionSchema,
        partition: u64,
        columns: &[quiver_core::Column],
    ) {
        let pk_col = schema.pk_index();
        let seg_id = match self.growing.get(&partition) {
            Some(&id) => id,
            None => {
                let id = self.next_segment_id;
                self.next_segment_id += 1;
                self.segments.insert(
                    id,
                    Segment::new(id, partition, SegmentData::empty(schema), false),
                );
                self.growing.insert(partition, id);
                id
            }
        };
        let base = self.segments[&seg_id].rows();
        let n = columns.first().map_or(0, |c| c.len());
        for r in 0..n {
            let pk = Pk::at(&columns[pk_col], r);
            let loc = Loc {
                seg: seg_id,
                row: (base + r) as u32,
            };
            if let Some(old) = self.pk_index.insert(pk, loc) {
                self.mark_deleted(old);
            }
        }
        if let Some(seg) = self.segments.get_mut(&seg_id) {
            Arc::make_mut(&mut seg.data).append(columns);
            seg.approx_bytes += segment::approx_bytes(columns);
        }
    }

    /// Set `field` of each live row in `pks` whose value is NULL to the matching row of
    /// `column`: the row is rewritten, with every other value as it is now, into its partition's
    /// growing segment (like an upsert). Rows gone or already set are left alone, so replaying
    /// or repeating a fill never overwrites a value a write put there. Returns the rows set.
    fn apply_fill(
        &mut self,
        schema: &CollectionSchema,
        field_id: i64,
        pks: &[Pk],
        column: &quiver_core::Column,
    ) -> u64 {
        let Some(fi) = schema.fields.iter().position(|f| f.field_id == field_id) else {
            return 0;
        };
        let mut filled = 0;
        for (i, pk) in pks.iter().enumerate() {
            let Some(&loc) = self.pk_index.get(pk) else {
                continue;
            };
            let Some(seg) = self.segments.get(&loc.seg) else {
                continue;
            };
            let row = loc.row as usize;
            if !seg.data.columns[fi].is_null(row) {
                continue;
            }
            let partition = seg.partition;
            let mut cols: Vec<quiver_core::Column> =
                seg.data.columns.iter().map(|c| c.empty_like()).collect();
            for (c, src) in cols.iter_mut().zip(&seg.data.columns) {
                c.push_from(src, row);
            }
            let mut value = column.empty_like();
            value.push_from(column, i);
            if cols[fi].valid.is_none() {
                value.valid = None;
            } else if value.valid.is_none() {
                value.valid = Some(vec![true]);
            }
            cols[fi] = value;
            self.append_rows(schema, partition, &cols);
            filled += 1;
        }
        filled
    }

    /// Rows that are live, over all segments.
    pub fn live_rows(&self) -> usize {
        self.pk_index.len()
    }

    fn growing_rows_and_bytes(&self) -> (usize, usize) {
        self.growing
            .values()
            .filter_map(|id| self.segments.get(id))
            .fold((0, 0), |(r, b), s| (r + s.rows(), b + s.approx_bytes))
    }
}

fn self_has(segments: &BTreeMap<u64, Segment>, id: u64) -> bool {
    segments.contains_key(&id)
}

/// What step 2 of a flush needs to know about one segment.
struct SegSnapshot {
    id: u64,
    partition: u64,
    rows: u64,
    /// Data to write when the segment has no file yet.
    unpersisted: Option<Arc<SegmentData>>,
    /// The bitmap to write when deletes changed.
    dirty_deletes: Option<RoaringBitmap>,
    deleted: u64,
    del_file: Option<String>,
    file: Option<String>,
    indexes: Vec<IndexEntry>,
}

/// One index build: a definition over a sealed segment's rows.
pub struct BuildTask {
    segment: u64,
    data: Arc<SegmentData>,
    def: IndexDef,
}

/// A collection's data: state, WAL, files.
pub struct Collection {
    pub id: u64,
    pub state: Arc<RwLock<State>>,
    /// Held (shared) by every write from validation until it is applied, and exclusively by
    /// [`Collection::add_field`]: a batch is never validated against one schema and applied
    /// under another.
    pub write_gate: RwLock<()>,
    committer: Committer<Arc<Op>, Box<dyn Log>>,
    storage: Arc<dyn Storage>,
    /// The writer epoch (0: embedded mode, local WAL).
    epoch: u64,
    /// A reader of a shared database: it follows the store and refuses writes and flushes.
    read_only: bool,
    flush_lock: Mutex<()>,
    flush_pending: AtomicBool,
    dropped: AtomicBool,
    opts: EngineOptions,
    prefix: String,
    /// Parsed index definitions of the vector fields (from the catalog).
    index_defs: RwLock<Vec<IndexDef>>,
    /// Index versions being built beside a field's current index (autotune apply): built on
    /// every sealed segment like a current one, searched only when a request names them
    /// (`SearchRequest::index_id`), until promoted into the catalog or discarded. In memory
    /// only: after a restart their files are stale and collected.
    staged: RwLock<Vec<IndexDef>>,
    /// The build in progress, if any.
    building: Mutex<Option<BuildStatus>>,
    /// Builds that failed: (segment, index id) -> reason. Not retried until the definition changes.
    failed: Mutex<HashMap<(u64, u64), String>>,
    /// Wakes the index builder after a flush.
    wake: Arc<Wakeup>,
}

impl std::fmt::Debug for Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection").field("id", &self.id).finish()
    }
}

/// Map WAL errors onto engine errors (I/O stays I/O, with the file).
pub fn wal_error(e: WalError) -> Error {
    match e {
        WalError::Corrupt {
            file,
            offset,
            reason,
        } => Error::corrupt(file, offset, reason),
        WalError::Io { path, op, source } => Error::Io {
            op: "write-ahead log",
            path,
            source: std::io::Error::new(source.kind(), format!("{op}: {source}")),
        },
        other => Error::Unavailable(other.to_string()),
    }
}

impl Collection {
    /// Open (or create) the collection's files under `collections/<id>/` and recover.
    pub fn open(
        id: u64,
        schema: CollectionSchema,
        storage: Arc<dyn Storage>,
        log: LogSpec,
        opts: EngineOptions,
        wake: Arc<Wakeup>,
    ) -> Result<Collection> {
        // In shared mode another writer may commit while this one opens (it is being fenced):
        // a log gap or a manifest that appears before ours means "read again from the top".
        let mut attempt = 0;
        loop {
            match Self::open_once(id, &schema, &storage, &log, &opts, &wake)? {
                Some(c) => return Ok(c),
                None if attempt < 8 => attempt += 1,
                None => {
                    return Err(Error::Unavailable(format!(
                    "collection {id} kept changing while it was opened; another writer is active"
                )))
                }
            }
        }
    }

    fn open_once(
        id: u64,
        schema: &CollectionSchema,
        storage: &Arc<dyn Storage>,
        log: &LogSpec,
        opts: &EngineOptions,
        wake: &Arc<Wakeup>,
    ) -> Result<Option<Collection>> {
        let (storage, opts, wake) = (Arc::clone(storage), opts.clone(), Arc::clone(wake));
        let schema = Arc::new(schema.clone());
        let prefix = format!("collections/{id}");
        let manifest = load_latest_manifest(storage.as_ref(), id)?;
        let mut st = State {
            schema: Arc::clone(&schema),
            fill_counts: HashMap::new(),
            segments: BTreeMap::new(),
            growing: HashMap::new(),
            pk_index: HashMap::new(),
            applied_lsn: manifest.checkpoint_lsn,
            max_ts: manifest.max_ts,
            next_segment_id: manifest.next_segment_id.max(1),
            manifest: manifest.clone(),
        };
        let pk_col = schema.pk_index();
        for e in &manifest.segments {
            let key = format!("{prefix}/segments/{}", e.file);
            let path = storage
                .local_path(&key)
                .unwrap_or_else(|| PathBuf::from(&key));
            let bytes = storage.get(&key)?.ok_or_else(|| {
                Error::corrupt(&path, 0, "segment file named by the manifest is missing")
            })?;
            let (sid, part, data) = segment::decode_segment(&path, &bytes, &schema)?;
            if sid != e.id || part != e.partition {
                return Err(Error::corrupt(
                    &path,
                    24,
                    format!(
                        "segment file holds segment {sid}/partition {part}, manifest says {}/{}",
                        e.id, e.partition
                    ),
                ));
            }
            let deleted = match &e.deletes {
                None => RoaringBitmap::new(),
                Some(f) => {
                    let key = format!("{prefix}/segments/{f}");
                    let path = storage
                        .local_path(&key)
                        .unwrap_or_else(|| PathBuf::from(&key));
                    let bytes = storage.get(&key)?.ok_or_else(|| {
                        Error::corrupt(&path, 0, "delete file named by the manifest is missing")
                    })?;
                    segment::decode_deletes(&path, &bytes, e.id)?
                }
            };
            let indexes = load_indexes(storage.as_ref(), &prefix, &schema, e, &data);
            let seg = Segment {
                id: e.id,
                partition: e.partition,
                data: Arc::new(data),
                deleted,
                sealed: true,
                persisted: true,
                dirty_deletes: false,
                del_file: e.deletes.clone(),
                file: Some(e.file.clone()),
                approx_bytes: 0,
                norms: Default::default(),
                decoded: Default::default(),
                sparse: Default::default(),
                indexes,
            };
            for (row, pk) in segment::pks_of(&seg.data, pk_col)?.into_iter().enumerate() {
                if seg.is_live(row) {
                    if let Some(old) = st.pk_index.insert(
                        pk,
                        Loc {
                            seg: e.id,
                            row: row as u32,
                        },
                    ) {
                        // Cannot happen unless files were edited: keep the newer segment's row.
                        st.mark_deleted(old);
                    }
                }
            }
            st.segments.insert(e.id, seg);
        }
        let checkpoint = manifest.checkpoint_lsn;
        let mut replayed = 0u64;
        let mut replay = |st: &mut State, lsn: u64, payload: &[u8]| -> Result<()> {
            match decode_log_record(&prefix, lsn, payload, &schema)? {
                Some(op) => {
                    st.apply(lsn, &op);
                    replayed += 1;
                }
                None => st.applied_lsn = lsn,
            }
            Ok(())
        };

        let read_only = matches!(log, LogSpec::Follow);
        let (log, epoch): (Box<dyn Log>, u64) = match log {
            LogSpec::Local(wal_dir) => {
                let wal = open_local_wal(id, wal_dir, checkpoint, &opts)?;
                wal.replay(checkpoint, |lsn, payload| replay(&mut st, lsn, payload))
                    .map_err(|e| match e {
                        quiver_wal::ReplayError::Wal(w) => wal_error(w),
                        quiver_wal::ReplayError::Callback(e) => e,
                    })?;
                (Box::new(wal), 0)
            }
            LogSpec::Object { epoch, writer } => {
                if manifest.epoch > *epoch {
                    return Err(fenced_error(id, manifest.epoch, *epoch));
                }
                // On a gap (a flush dropped log objects meanwhile) read again from the top.
                let opened = crate::objlog::ObjectLog::open_writer(
                    Arc::clone(&storage),
                    crate::objlog::log_prefix(&prefix),
                    checkpoint,
                    *epoch,
                    *writer,
                    WalOptions::default().max_payload_bytes,
                    crate::objlog::Retry::default(),
                );
                let Some((log, records)) = opened.map_err(wal_error)? else {
                    return log_gap(storage.as_ref(), id, manifest.version);
                };
                for (lsn, payload) in &records {
                    replay(&mut st, *lsn, payload)?;
                }
                (Box::new(log), *epoch)
            }
            LogSpec::Follow => {
                let chain = crate::objlog::read_chain(
                    storage.as_ref(),
                    &crate::objlog::log_prefix(&prefix),
                    checkpoint,
                )
                .map_err(wal_error)?;
                let Some(chain) = chain else {
                    return log_gap(storage.as_ref(), id, manifest.version);
                };
                for (lsn, payload) in &chain.records {
                    replay(&mut st, *lsn, payload)?;
                }
                let log: Box<dyn Log> = Box::new(ReadOnlyLog { next: chain.next });
                (log, manifest.epoch)
            }
        };
        if replayed > 0 {
            tracing::info!(collection = id, replayed, "replayed WAL records");
        }
        st.fill_counts.clear();
        if epoch > manifest.epoch {
            // Take the manifest chain over: from this version on, an older writer's commit fails.
            let mut m = manifest.clone();
            m.version += 1;
            m.epoch = epoch;
            if !storage.put_if_absent(&manifest_key(id, m.version), &m.encode())? {
                return Ok(None);
            }
            st.manifest = m;
        }
        let state = Arc::new(RwLock::new(st));
        let apply_state = Arc::clone(&state);
        let committer = Committer::new(log, move |group: &[(u64, Arc<Op>)]| {
            let mut st = apply_state.write();
            for (lsn, op) in group {
                st.apply(*lsn, op);
            }
        });
        Ok(Some(Collection {
            id,
            state,
            write_gate: RwLock::new(()),
            committer,
            storage,
            epoch,
            read_only,
            flush_lock: Mutex::new(()),
            flush_pending: AtomicBool::new(false),
            dropped: AtomicBool::new(false),
            opts,
            prefix,
            index_defs: RwLock::new(Vec::new()),
            staged: RwLock::new(Vec::new()),
            building: Mutex::new(None),
            failed: Mutex::new(HashMap::new()),
            wake,
        }))
    }

    /// The current schema (for a consistent pair of schema and data, read `state.schema` under
    /// the state lock instead).
    pub fn schema(&self) -> Arc<CollectionSchema> {
        Arc::clone(&self.state.read().schema)
    }

    /// Make `op` durable and visible; returns its LSN. Insert columns follow `schema`, which
    /// must be current: the caller holds `write_gate` (shared) since it read it.
    pub fn commit(&self, op: Op, schema: &CollectionSchema) -> Result<u64> {
        if self.read_only {
            return Err(read_only_error());
        }
        let payload = record::encode(&op, schema);
        self.committer
            .commit(payload, Arc::new(op))
            .map_err(wal_error)
    }

    /// Commit a Fill and return how many rows it set.
    pub fn commit_fill(&self, op: Op, schema: &CollectionSchema) -> Result<u64> {
        let lsn = self.commit(op, schema)?;
        Ok(self.state.write().fill_counts.remove(&lsn).unwrap_or(0))
    }

    /// Replace the schema by one with the same fields (functions changed); the caller holds
    /// `write_gate` exclusively.
    pub fn set_schema_locked(&self, schema: Arc<CollectionSchema>) {
        self.state.write().schema = schema;
    }

    /// Add a field (the last of `schema.fields`, which is otherwise the current schema): every
    /// segment in memory gets an all-NULL column for it, under the write gate and the state
    /// lock, so no write or read sees a mix. Files and WAL records written before lack the
    /// column and read back as NULL (see `record::decode_columns`). The caller holds
    /// `write_gate` exclusively (see `Engine::add_field`).
    pub fn add_field_locked(&self, schema: Arc<CollectionSchema>) {
        let mut st = self.state.write();
        let at = schema.fields.len() - 1;
        let field = &schema.fields[at];
        for seg in st.segments.values_mut() {
            let rows = seg.rows();
            let data = Arc::make_mut(&mut seg.data);
            data.columns.insert(at, segment::null_column(field, rows));
        }
        st.schema = schema;
    }

    /// True when the growing data has reached the seal threshold (the caller schedules a flush).
    pub fn wants_flush(&self) -> bool {
        let (rows, bytes) = self.state.read().growing_rows_and_bytes();
        rows >= self.opts.seal_rows || bytes >= self.opts.seal_bytes || self.wants_compaction()
    }

    fn wants_compaction(&self) -> bool {
        let st = self.state.read();
        st.segments.values().any(|s| {
            s.sealed
                && s.rows() > 0
                && (s.deleted.len() as f64) >= self.opts.compact_deleted_ratio * s.rows() as f64
        })
    }

    /// Claim the right to schedule a background flush (at most one pending).
    pub fn claim_background_flush(&self) -> bool {
        !self.flush_pending.swap(true, Ordering::SeqCst)
    }

    pub fn release_background_flush(&self) {
        self.flush_pending.store(false, Ordering::SeqCst);
    }

    /// Seal growing segments, compact, and persist a new manifest. See the module docs.
    pub fn flush(&self) -> Result<()> {
        if self.read_only {
            return Ok(()); // a reader's files are the writer's
        }
        let _guard = self.flush_lock.lock();
        if self.dropped.load(Ordering::SeqCst) {
            return Ok(());
        }
        // Step 1: in memory, under the write lock. The schema is taken with the snapshot: the
        // snapshot's data follows it even if a field is added before step 2.
        let (checkpoint, max_ts, next_id, entries_src, schema) = {
            let mut st = self.state.write();
            let schema = Arc::clone(&st.schema);
            let pk_col = schema.pk_index();
            let growing: Vec<u64> = st.growing.drain().map(|(_, id)| id).collect();
            for id in growing {
                if let Some(seg) = st.segments.remove(&id) {
                    self.install_sealed(&mut st, vec![seg], pk_col)?;
                }
            }
            self.compact_locked(&mut st, pk_col)?;
            let snap: Vec<SegSnapshot> = st
                .segments
                .values()
                .map(|s| SegSnapshot {
                    id: s.id,
                    partition: s.partition,
                    rows: s.rows() as u64,
                    unpersisted: (!s.persisted).then(|| Arc::clone(&s.data)),
                    dirty_deletes: s.dirty_deletes.then(|| s.deleted.clone()),
                    deleted: s.deleted.len(),
                    del_file: s.del_file.clone(),
                    file: s.file.clone(),
                    indexes: s.index_entries(),
                })
                .collect();
            (st.applied_lsn, st.max_ts, st.next_segment_id, snap, schema)
        };
        let prev = self.state.read().manifest.clone();
        if checkpoint == prev.checkpoint_lsn
            && entries_src
                .iter()
                .all(|e| e.unpersisted.is_none() && e.dirty_deletes.is_none())
            && prev.segments.len() == entries_src.len()
            && prev
                .segments
                .iter()
                .zip(&entries_src)
                .all(|(p, e)| p.id == e.id && p.indexes == e.indexes)
        {
            return Ok(()); // nothing changed since the last manifest
        }
        let _ = self.committer.rotate();
        // Step 2: files, without the lock.
        let version = prev.version + 1;
        let mut segments = Vec::with_capacity(entries_src.len());
        for e in &entries_src {
            let file = match &e.file {
                Some(f) if e.unpersisted.is_none() => f.clone(),
                _ => self.file_name(e.id, "seg"),
            };
            if let Some(data) = &e.unpersisted {
                let bytes = segment::encode_segment(e.id, e.partition, data, &schema);
                self.storage
                    .put(&format!("{}/segments/{file}", self.prefix), &bytes)?;
            }
            let deletes = match &e.dirty_deletes {
                Some(bm) if !bm.is_empty() => {
                    let f = self.file_name(format!("{}.{version}", e.id), "del");
                    self.storage.put(
                        &format!("{}/segments/{f}", self.prefix),
                        &segment::encode_deletes(e.id, bm),
                    )?;
                    Some(f)
                }
                Some(_) => None,
                None => e.del_file.clone(),
            };
            segments.push(SegmentEntry {
                id: e.id,
                partition: e.partition,
                rows: e.rows,
                file,
                deleted: if deletes.is_some() { e.deleted } else { 0 },
                deletes,
                indexes: e.indexes.clone(),
            });
        }
        let manifest = Manifest {
            version,
            collection_id: self.id,
            checkpoint_lsn: checkpoint,
            max_ts,
            next_segment_id: next_id,
            segments,
            epoch: self.epoch,
        };
        self.commit_manifest(&manifest)?;
        // Step 3: record what is persisted, then clean up.
        {
            let mut st = self.state.write();
            for (e, src) in manifest.segments.iter().zip(&entries_src) {
                if let Some(seg) = st.segments.get_mut(&e.id) {
                    seg.persisted = true;
                    seg.file = Some(e.file.clone());
                    if src.dirty_deletes.is_some() {
                        seg.del_file = e.deletes.clone();
                        // Deletes only add bits: an unchanged count means an unchanged bitmap.
                        seg.dirty_deletes = seg.deleted.len() != src.deleted;
                    }
                }
            }
            st.manifest = manifest.clone();
        }
        if let Err(e) = self.committer.truncate_prefix(checkpoint) {
            tracing::warn!(collection = self.id, "could not drop old WAL files: {e}");
        }
        self.gc(&prev, &manifest);
        // New sealed segments may need indexes.
        if entries_src.iter().any(|e| e.unpersisted.is_some()) {
            self.wake.notify();
        }
        Ok(())
    }

    /// Turn segments into one sealed, pk-sorted segment without deleted rows, and repoint the
    /// primary-key index at it.
    fn install_sealed(&self, st: &mut State, parts: Vec<Segment>, pk_col: usize) -> Result<()> {
        let partition = parts[0].partition;
        let mut merged = SegmentData::empty(&st.schema);
        for p in &parts {
            let live: Vec<usize> = (0..p.rows()).filter(|&r| p.is_live(r)).collect();
            merged.append(&p.data.gather(&live).columns);
        }
        let (sorted, _) = segment::sort_by_pk(&merged, pk_col, |_| true);
        let id = if parts.len() == 1 && !parts[0].sealed {
            parts[0].id
        } else {
            let id = st.next_segment_id;
            st.next_segment_id += 1;
            id
        };
        for (row, pk) in segment::pks_of(&sorted, pk_col)?.into_iter().enumerate() {
            st.pk_index.insert(
                pk,
                Loc {
                    seg: id,
                    row: row as u32,
                },
            );
        }
        if sorted.rows() > 0 {
            st.segments
                .insert(id, Segment::new(id, partition, sorted, true));
        }
        Ok(())
    }

    /// Rewrite sealed segments with many deletes, and merge small sealed segments of a partition.
    fn compact_locked(&self, st: &mut State, pk_col: usize) -> Result<()> {
        let ratio = self.opts.compact_deleted_ratio;
        let small = self.opts.seal_rows / 2;
        let mut by_partition: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for s in st.segments.values().filter(|s| s.sealed) {
            let heavy_deletes = s.rows() > 0 && s.deleted.len() as f64 >= ratio * s.rows() as f64;
            if heavy_deletes || s.live_rows() < small {
                by_partition.entry(s.partition).or_default().push(s.id);
            }
        }
        for (_, ids) in by_partition {
            let worth_it =
                ids.len() > 1 || ids.iter().any(|id| !st.segments[id].deleted.is_empty());
            if !worth_it {
                continue;
            }
            let parts: Vec<Segment> = ids.iter().filter_map(|id| st.segments.remove(id)).collect();
            tracing::info!(collection = self.id, segments = parts.len(), "compacting");
            self.install_sealed(st, parts, pk_col)?;
        }
        Ok(())
    }

    /// Delete files named by neither `prev` nor `cur`, and manifests older than `prev`.
    fn gc(&self, prev: &Manifest, cur: &Manifest) {
        let mut keep = std::collections::HashSet::new();
        for m in [prev, cur] {
            for e in &m.segments {
                keep.insert(e.file.clone());
                if let Some(d) = &e.deletes {
                    keep.insert(d.clone());
                }
                for i in &e.indexes {
                    keep.insert(i.file.clone());
                }
            }
        }
        // Segments sealed in memory but not yet in a manifest must stay too (with their indexes).
        for s in self.state.read().segments.values() {
            keep.insert(
                s.file
                    .clone()
                    .unwrap_or_else(|| self.file_name(s.id, "seg")),
            );
            for i in &s.indexes {
                keep.insert(i.file.clone());
            }
        }
        if let Ok(keys) = self.storage.list(&format!("{}/segments/", self.prefix)) {
            for k in keys {
                let name = k.rsplit('/').next().unwrap_or_default().to_string();
                if !keep.contains(&name) {
                    let _ = self.storage.delete(&k);
                }
            }
        }
        if let Ok(keys) = self.storage.list(&format!("{}/manifest/", self.prefix)) {
            for k in keys {
                if manifest_version(&k).is_some_and(|v| v < prev.version) {
                    let _ = self.storage.delete(&k);
                }
            }
        }
    }

    // ---------------------------------------------------------------- indexes (see index.rs)

    /// Replace the index definitions (from the catalog). Failures recorded for definitions that
    /// changed are forgotten, so a fixed definition is built again.
    pub fn set_index_defs(&self, defs: Vec<IndexDef>) {
        let mut ids: std::collections::HashSet<u64> = defs.iter().map(|d| d.id).collect();
        // Current first, then unstage: a promoted version is known throughout (a detach in
        // between would otherwise drop its built files).
        *self.index_defs.write() = defs;
        // A staged version the catalog now holds (promoted) is no longer staged.
        self.staged.write().retain(|d| !ids.contains(&d.id));
        ids.extend(self.staged.read().iter().map(|d| d.id));
        self.failed.lock().retain(|(_, iid), _| ids.contains(iid));
        self.wake.notify();
    }

    /// Build `def` beside the field's current index (see `staged`).
    pub fn stage_index_def(&self, def: IndexDef) {
        self.staged.write().push(def);
        self.wake.notify();
    }

    /// Forget a staged index version; its built files are collected.
    pub fn discard_staged(&self, index_id: u64) -> bool {
        // Under the flush lock, so a build finishing now cannot attach it again afterwards.
        let _guard = self.flush_lock.lock();
        let mut st = self.staged.write();
        let before = st.len();
        st.retain(|d| d.id != index_id);
        let removed = st.len() != before;
        drop(st);
        self.failed.lock().retain(|(_, iid), _| *iid != index_id);
        self.wake.notify();
        removed
    }

    /// A current or staged index definition by id.
    pub fn known_index_def(&self, index_id: u64) -> Option<IndexDef> {
        self.index_defs
            .read()
            .iter()
            .chain(self.staged.read().iter())
            .find(|d| d.id == index_id)
            .cloned()
    }

    /// Ids of the current and staged index definitions.
    fn known_index_ids(&self) -> std::collections::HashSet<u64> {
        let mut ids: std::collections::HashSet<u64> =
            self.index_defs.read().iter().map(|d| d.id).collect();
        ids.extend(self.staged.read().iter().map(|d| d.id));
        ids
    }

    /// The current index definition of a vector field.
    pub fn index_def(&self, field: usize) -> Option<IndexDef> {
        self.index_defs
            .read()
            .iter()
            .find(|d| d.field == field)
            .cloned()
    }

    /// The definition is current or staged (builds of others are cancelled).
    fn index_is_current(&self, index_id: u64) -> bool {
        self.known_index_def(index_id).is_some()
    }

    /// The next sealed segment that lacks a built index, if any.
    pub fn next_build_task(&self) -> Option<BuildTask> {
        if self.dropped.load(Ordering::SeqCst) {
            return None;
        }
        let mut defs: Vec<IndexDef> = self.index_defs.read().clone();
        defs.extend(self.staged.read().iter().cloned());
        let failed = self.failed.lock();
        let st = self.state.read();
        for d in defs.iter().filter(|d| d.needs_build()) {
            for seg in st.segments.values() {
                if seg.sealed
                    && seg.rows() >= self.opts.min_index_rows
                    && seg.index(d.id).is_none()
                    && !seg.has_nulls(d.field)
                    && !failed.contains_key(&(seg.id, d.id))
                {
                    return Some(BuildTask {
                        segment: seg.id,
                        data: Arc::clone(&seg.data),
                        def: d.clone(),
                    });
                }
            }
        }
        None
    }

    /// Build one index (no lock held while building), then attach it.
    pub fn run_build(&self, task: BuildTask, stop: &AtomicBool) {
        let BuildTask { segment, data, def } = task;
        let quiver_core::ColumnData::Vector(vc) = &data.columns[def.field].data else {
            return;
        };
        let rows = data.rows();
        let started = std::time::Instant::now();
        tracing::info!(
            collection = self.id,
            segment,
            index = def.name,
            index_type = def.spec.index_type(),
            rows,
            "index build started"
        );
        *self.building.lock() = Some(BuildStatus {
            segment,
            index_id: def.id,
            done: 0,
            total: rows,
        });
        let last_log = Mutex::new(started);
        let progress = |done: usize, total: usize| {
            *self.building.lock() = Some(BuildStatus {
                segment,
                index_id: def.id,
                done,
                total,
            });
            let mut last = last_log.lock();
            if last.elapsed() >= std::time::Duration::from_secs(10) {
                *last = std::time::Instant::now();
                tracing::info!(
                    collection = self.id,
                    segment,
                    index = def.name,
                    "index build {:.0}% ({done}/{total})",
                    100.0 * done as f64 / total.max(1) as f64
                );
            }
            !stop.load(Ordering::SeqCst)
                && !self.dropped.load(Ordering::SeqCst)
                && self.state.read().segments.contains_key(&segment)
                && self.index_is_current(def.id)
        };
        let built = match (def.metric, vc.as_binary()) {
            (crate::search::VMetric::Binary(bm), Some(bytes)) => {
                quiver_index::AnnIndex::build_binary(&def.spec, bm, vc.dim, bytes, &progress)
            }
            (crate::search::VMetric::Float(m), None) => match vc.to_f32() {
                Some(rows) => quiver_index::AnnIndex::build(&def.spec, m, vc.dim, &rows, &progress),
                None => return,
            },
            _ => return,
        };
        *self.building.lock() = None;
        match built {
            Ok(Some(ann)) => match self.attach_index(segment, &def, ann) {
                Ok(true) => tracing::info!(
                    collection = self.id,
                    segment,
                    index = def.name,
                    rows,
                    seconds = started.elapsed().as_secs_f64(),
                    "index build finished"
                ),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(collection = self.id, segment, "could not save index: {e}");
                    self.failed
                        .lock()
                        .insert((segment, def.id), format!("saving the index failed: {e}"));
                }
            },
            Ok(None) => {}
            Err(quiver_index::IndexError::Cancelled) => {
                tracing::info!(collection = self.id, segment, "index build cancelled");
            }
            Err(e) => {
                tracing::error!(collection = self.id, segment, "index build failed: {e}");
                self.failed.lock().insert((segment, def.id), e.to_string());
            }
        }
    }

    /// Write the index file, attach it, and name it in a new manifest (under the flush lock).
    /// `Ok(false)`: the segment or definition is gone, nothing attached.
    fn attach_index(
        &self,
        segment: u64,
        def: &IndexDef,
        ann: quiver_index::AnnIndex,
    ) -> Result<bool> {
        let _guard = self.flush_lock.lock();
        if self.dropped.load(Ordering::SeqCst)
            || !self.index_is_current(def.id)
            || !self.state.read().segments.contains_key(&segment)
        {
            return Ok(false);
        }
        let file = self.file_name(format!("{segment}.{}", def.id), "idx");
        self.storage
            .put(&format!("{}/segments/{file}", self.prefix), &ann.to_bytes())?;
        let known = self.known_index_ids();
        {
            let mut st = self.state.write();
            let Some(seg) = st.segments.get_mut(&segment) else {
                return Ok(false);
            };
            // Keep the field's other known index (current beside staged); drop the rest.
            seg.indexes
                .retain(|i| i.index_id != def.id && known.contains(&i.index_id));
            seg.indexes.push(Arc::new(SegIndex {
                index_id: def.id,
                field: def.field,
                field_id: def.field_id,
                file,
                ann,
            }));
        }
        self.commit_index_manifest()?;
        Ok(true)
    }

    /// Detach indexes whose definition was dropped, and commit a manifest without them.
    pub fn detach_stale_indexes(&self) -> Result<()> {
        {
            let ids = self.known_index_ids();
            let stale = |s: &Segment| s.indexes.iter().any(|i| !ids.contains(&i.index_id));
            if !self.state.read().segments.values().any(stale) {
                return Ok(());
            }
        }
        let _guard = self.flush_lock.lock();
        if self.dropped.load(Ordering::SeqCst) {
            return Ok(());
        }
        // Known ids read under the flush lock: an index attached meanwhile is kept.
        let ids = self.known_index_ids();
        {
            let mut st = self.state.write();
            for seg in st.segments.values_mut() {
                seg.indexes.retain(|i| ids.contains(&i.index_id));
            }
        }
        self.commit_index_manifest()
    }

    /// Commit the previous manifest with each segment's index list taken from memory. Caller
    /// holds the flush lock. Segments not yet in a manifest get theirs at the next flush.
    fn commit_index_manifest(&self) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        let (prev, next) = {
            let st = self.state.read();
            let prev = st.manifest.clone();
            let mut next = prev.clone();
            for e in &mut next.segments {
                if let Some(seg) = st.segments.get(&e.id) {
                    e.indexes = seg.index_entries();
                }
            }
            (prev, next)
        };
        if next == prev || prev.version == 0 {
            return Ok(());
        }
        let mut next = next;
        next.version = prev.version + 1;
        next.epoch = self.epoch;
        self.commit_manifest(&next)?;
        self.state.write().manifest = next.clone();
        self.gc(&prev, &next);
        Ok(())
    }

    /// The name of a new file: `<stem>.<ext>` in embedded mode (epoch 0), `<stem>.e<epoch>.<ext>`
    /// in shared mode, so a fenced writer's late files can never replace a newer writer's.
    fn file_name(&self, stem: impl std::fmt::Display, ext: &str) -> String {
        if self.epoch == 0 {
            format!("{stem}.{ext}")
        } else {
            format!("{stem}.e{}.{ext}", self.epoch)
        }
    }

    /// Create manifest `m.version`. Losing the position to a higher writer epoch fences this
    /// writer; losing it otherwise is a bug (one writer per epoch, commits serialized).
    fn commit_manifest(&self, m: &Manifest) -> Result<()> {
        let key = manifest_key(self.id, m.version);
        if self.storage.put_if_absent(&key, &m.encode())? {
            return Ok(());
        }
        let other = match self.storage.get(&key)? {
            Some(b) => Manifest::decode(Path::new(&key), &b)?,
            None => {
                return Err(Error::Unavailable(format!(
                    "the store refused {key} as existing but holds none"
                )))
            }
        };
        if other == *m {
            return Ok(()); // an earlier attempt landed
        }
        if other.epoch > self.epoch {
            return Err(fenced_error(self.id, other.epoch, self.epoch));
        }
        Err(Error::Internal(format!(
            "manifest version {} of collection {} already exists",
            m.version, self.id
        )))
    }

    /// Progress of index `index_id` over the collection's live rows.
    pub fn index_progress(&self, index_id: u64) -> IndexProgress {
        let def = self.known_index_def(index_id);
        let needs_build = def.as_ref().is_some_and(|d| d.needs_build());
        let building = *self.building.lock();
        let failed = self.failed.lock().clone();
        let st = self.state.read();
        let mut p = IndexProgress {
            state: IndexBuildState::Finished,
            indexed_rows: 0,
            total_rows: 0,
            pending_rows: 0,
            fail_reason: String::new(),
        };
        for seg in st.segments.values() {
            let live = seg.live_rows() as u64;
            p.total_rows += live;
            // Growing rows and small segments are served by exact search: nothing to wait for.
            // (A segment with NULLs in the field is never built: it is searched exactly.)
            if !seg.sealed
                || !needs_build
                || seg.rows() < self.opts.min_index_rows
                || seg.index(index_id).is_some()
                || def.as_ref().is_some_and(|d| seg.has_nulls(d.field))
            {
                p.indexed_rows += live;
                continue;
            }
            if let Some(reason) = failed.get(&(seg.id, index_id)) {
                p.fail_reason = reason.clone();
            }
            match building {
                Some(b) if b.segment == seg.id && b.index_id == index_id && b.total > 0 => {
                    let part = live * b.done.min(b.total) as u64 / b.total as u64;
                    p.indexed_rows += part;
                    p.pending_rows += live - part;
                }
                _ => p.pending_rows += live,
            }
        }
        p.state = if !p.fail_reason.is_empty() {
            IndexBuildState::Failed
        } else if st.segments.values().any(|s| {
            s.sealed
                && needs_build
                && s.rows() >= self.opts.min_index_rows
                && s.index(index_id).is_none()
                && !def.as_ref().is_some_and(|d| s.has_nulls(d.field))
        }) {
            IndexBuildState::InProgress
        } else {
            IndexBuildState::Finished
        };
        p
    }

    /// The collection was dropped: wait for a running flush, and never write files again.
    pub fn retire(&self) {
        let _guard = self.flush_lock.lock();
        self.dropped.store(true, Ordering::SeqCst);
    }

    /// A reader catching up with the store: apply the log records written since, or report
    /// that a newer manifest needs the collection opened again.
    pub fn follow(&self) -> Result<Followed> {
        let (version, applied) = {
            let st = self.state.read();
            (st.manifest.version, st.applied_lsn)
        };
        if latest_manifest_key(self.storage.as_ref(), self.id)?
            .and_then(|k| manifest_version(&k))
            .is_some_and(|v| v > version)
        {
            return Ok(Followed::Reopen);
        }
        let chain = crate::objlog::read_chain(
            self.storage.as_ref(),
            &crate::objlog::log_prefix(&self.prefix),
            applied,
        )
        .map_err(wal_error)?;
        let Some(chain) = chain else {
            return Ok(Followed::Reopen);
        };
        // Decoded before the write lock is taken, so readers wait only for the apply.
        let schema = self.schema();
        let ops = chain
            .records
            .iter()
            .map(|(lsn, p)| Ok((*lsn, decode_log_record(&self.prefix, *lsn, p, &schema)?)))
            .collect::<Result<Vec<_>>>()?;
        let mut st = self.state.write();
        let mut n = 0;
        for (lsn, op) in ops {
            if lsn <= st.applied_lsn {
                continue;
            }
            match op {
                Some(op) => {
                    st.apply(lsn, &op);
                    n += 1;
                }
                None => st.applied_lsn = lsn,
            }
        }
        st.fill_counts.clear();
        Ok(Followed::Applied(n))
    }

    /// WAL statistics (for metrics and tests).
    pub fn wal_stats(&self) -> quiver_wal::WalStats {
        self.committer.stats()
    }
}

fn read_only_error() -> Error {
    Error::FailedPrecondition(
        "this process is a reader of a shared database: send writes to its writer".into(),
    )
}

/// A reader's log: it never appends (the writer does; the reader follows the store).
struct ReadOnlyLog {
    next: u64,
}

impl Log for ReadOnlyLog {
    fn append_batch(
        &mut self,
        _: &[&[u8]],
    ) -> std::result::Result<std::ops::RangeInclusive<u64>, WalError> {
        Err(WalError::Store {
            reason: "a reader does not write".into(),
        })
    }
    fn rotate(&mut self) -> std::result::Result<(), WalError> {
        Ok(())
    }
    fn truncate_prefix(&mut self, _: u64) -> std::result::Result<usize, WalError> {
        Ok(0)
    }
    fn first_lsn(&self) -> u64 {
        self.next
    }
    fn last_lsn(&self) -> u64 {
        self.next - 1
    }
    fn stats(&self) -> quiver_wal::WalStats {
        Default::default()
    }
    fn poisoned(&self) -> Option<String> {
        None
    }
    fn max_payload_bytes(&self) -> usize {
        0
    }
}

/// What [`Collection::follow`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followed {
    /// Up to date; `n` new records applied.
    Applied(usize),
    /// A newer manifest (or a truncated log): open the collection again.
    Reopen,
}

/// Where a collection's write-ahead log lives.
#[derive(Debug, Clone)]
pub enum LogSpec {
    /// Embedded mode: quiver-wal segment files in this local directory.
    Local(PathBuf),
    /// Shared mode: log objects in the collection's storage, written as this writer epoch.
    Object { epoch: u64, writer: u64 },
    /// Shared mode, a reader: read the log objects, never write.
    Follow,
}

fn fenced_error(id: u64, theirs: u64, ours: u64) -> Error {
    crate::shared::fenced_error(&format!("collection {id}"), theirs, ours)
}

/// A log record as an operation; `None` for a writer's fence (an empty record, shared mode).
fn decode_log_record(
    prefix: &str,
    lsn: u64,
    payload: &[u8],
    schema: &CollectionSchema,
) -> Result<Option<Op>> {
    if payload.is_empty() {
        return Ok(None);
    }
    record::decode(payload, schema).map(Some).map_err(|e| {
        Error::corrupt(
            prefix,
            0,
            format!("log record LSN {lsn} does not decode: {e}"),
        )
    })
}

/// A log gap while opening from manifest `version`: read again from the top if a newer
/// manifest explains it (a flush dropped the objects meanwhile), or report the loss.
fn log_gap(storage: &dyn Storage, id: u64, version: u64) -> Result<Option<Collection>> {
    let latest = latest_manifest_key(storage, id)?.and_then(|k| manifest_version(&k));
    if latest.is_some_and(|v| v > version) {
        return Ok(None);
    }
    Err(Error::corrupt(
        format!("collections/{id}/log"),
        0,
        format!("log objects after the checkpoint of manifest {version} are missing"),
    ))
}

/// The key of a collection's highest manifest version, if it has one.
fn latest_manifest_key(storage: &dyn Storage, cid: u64) -> Result<Option<String>> {
    Ok(storage
        .list(&format!("collections/{cid}/manifest/"))?
        .into_iter()
        .filter(|k| manifest_version(k).is_some())
        .max_by_key(|k| manifest_version(k)))
}

/// Open the local WAL and check that it holds every record after `checkpoint`.
fn open_local_wal(id: u64, wal_dir: &Path, checkpoint: u64, opts: &EngineOptions) -> Result<Wal> {
    std::fs::create_dir_all(wal_dir).map_err(|e| Error::io("create directory", wal_dir, e))?;
    let wal_opts = WalOptions::default()
        .segment_bytes(opts.wal_segment_bytes)
        .sync_mode(if opts.sync {
            quiver_wal::SyncMode::Data
        } else {
            quiver_wal::SyncMode::None
        })
        .start_lsn(checkpoint + 1);
    let (wal, report) = Wal::open(wal_dir, wal_opts).map_err(wal_error)?;
    if let Some(t) = &report.torn_tail {
        tracing::warn!(collection = id, "WAL torn tail truncated: {t:?}");
    }
    if wal.next_lsn() <= checkpoint {
        return Err(Error::corrupt(wal_dir, 0, format!("the WAL ends at LSN {} but the manifest checkpoint is {checkpoint}: WAL files are missing", wal.next_lsn() - 1)));
    }
    if !wal.is_empty() && wal.first_lsn() > checkpoint + 1 {
        return Err(Error::corrupt(wal_dir, 0, format!("WAL starts at LSN {} but the manifest checkpoint is {checkpoint}: records are missing", wal.first_lsn())));
    }
    Ok(wal)
}

/// The highest manifest version of a collection, or an empty one.
pub fn load_latest_manifest(storage: &dyn Storage, cid: u64) -> Result<Manifest> {
    let Some(key) = latest_manifest_key(storage, cid)? else {
        return Ok(Manifest {
            collection_id: cid,
            next_segment_id: 1,
            ..Default::default()
        });
    };
    let path = storage
        .local_path(&key)
        .unwrap_or_else(|| PathBuf::from(&key));
    let bytes = storage
        .get(&key)?
        .ok_or_else(|| Error::corrupt(&path, 0, "manifest vanished while opening"))?;
    Manifest::decode(&path, &bytes)
}

/// Load the index files a manifest entry names. A missing or unreadable file is logged and
/// skipped: indexes are derived data, and the builder makes them again.
fn load_indexes(
    storage: &dyn Storage,
    prefix: &str,
    schema: &CollectionSchema,
    e: &SegmentEntry,
    data: &SegmentData,
) -> Vec<Arc<SegIndex>> {
    let mut out = Vec::new();
    for ie in &e.indexes {
        let Some(field) = schema.fields.iter().position(|f| f.field_id == ie.field_id) else {
            continue;
        };
        let key = format!("{prefix}/segments/{}", ie.file);
        let loaded = storage
            .get(&key)
            .map_err(|err| err.to_string())
            .and_then(|b| b.ok_or_else(|| "the file is missing".to_string()))
            .and_then(|b| quiver_index::AnnIndex::from_bytes(&b).map_err(|err| err.to_string()))
            .and_then(|ann| {
                let dim = schema.fields[field].dim();
                if ann.len() != data.rows() || ann.dim() != dim {
                    Err(format!(
                        "index holds {} rows of dim {}, the segment {} rows of dim {dim}",
                        ann.len(),
                        ann.dim(),
                        data.rows()
                    ))
                } else {
                    Ok(ann)
                }
            });
        match loaded {
            Ok(ann) => out.push(Arc::new(SegIndex {
                index_id: ie.index_id,
                field,
                field_id: ie.field_id,
                file: ie.file.clone(),
                ann,
            })),
            Err(reason) => tracing::warn!(
                segment = e.id,
                file = ie.file,
                "index file not loaded, it will be rebuilt: {reason}"
            ),
        }
    }
    out
}
