//! Manifests: which immutable files make up a collection version.
//!
//! `collections/<id>/manifest/<version, 20 digits>.man`, written with `put_if_absent` (a version is
//! never overwritten) inside the checksummed envelope (magic `QVMAN\0\0\x01`, version 1) with a
//! JSON body:
//!
//! | key              | meaning |
//! |------------------|---------|
//! | `version`        | this manifest's number, +1 per commit |
//! | `collection_id`  | the owning collection |
//! | `checkpoint_lsn` | every WAL record with LSN <= this is reflected in the files below; recovery replays the rest |
//! | `max_ts`         | largest hybrid timestamp covered (floors the timestamp oracle) |
//! | `next_segment_id`| the next segment id to hand out |
//! | `segments[]`     | `{id, partition, rows, file, deletes, deleted, indexes}`: a sealed segment, its delete file (or null), tombstone count, and built indexes |
//! | `epoch`          | the writer epoch that committed it: 0 in embedded mode; in shared mode a writer never commits over a higher epoch (it is fenced) |
//! | `segments[].indexes[]` | `{field_id, index_id, file}`: an index file `<segment>.<index id>.idx` (quiver-index's envelope) over the field's rows; absent in manifests written before indexes existed |
//!
//! Recovery opens the highest version. Older versions are kept (the previous one at least) and
//! garbage-collected with the files only they name.

use std::path::Path;

use quiver_core::storage::{open_envelope, seal_envelope};
use quiver_core::{Error, Result};
use serde::{Deserialize, Serialize};

pub const MANIFEST_MAGIC: &[u8; 8] = b"QVMAN\0\0\x01";
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u64,
    pub collection_id: u64,
    pub checkpoint_lsn: u64,
    pub max_ts: u64,
    pub next_segment_id: u64,
    pub segments: Vec<SegmentEntry>,
    /// The writer epoch that committed this version (0: embedded mode).
    #[serde(default)]
    pub epoch: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentEntry {
    pub id: u64,
    pub partition: u64,
    pub rows: u64,
    pub file: String,
    pub deletes: Option<String>,
    pub deleted: u64,
    #[serde(default)]
    pub indexes: Vec<IndexEntry>,
}

/// A built index of one vector field of a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub field_id: i64,
    pub index_id: u64,
    pub file: String,
}

impl Manifest {
    pub fn encode(&self) -> Vec<u8> {
        let body = serde_json::to_vec_pretty(self).unwrap_or_default();
        seal_envelope(MANIFEST_MAGIC, MANIFEST_VERSION, &body)
    }

    pub fn decode(path: &Path, bytes: &[u8]) -> Result<Manifest> {
        let (_, body) = open_envelope(MANIFEST_MAGIC, MANIFEST_VERSION, path, bytes)?;
        serde_json::from_slice(body)
            .map_err(|e| Error::corrupt(path, 24, format!("bad manifest JSON: {e}")))
    }
}

/// Storage key of manifest `version` of collection `cid`.
pub fn manifest_key(cid: u64, version: u64) -> String {
    format!("collections/{cid}/manifest/{version:020}.man")
}

/// Parse the version out of a manifest key.
pub fn manifest_version(key: &str) -> Option<u64> {
    key.rsplit('/').next()?.strip_suffix(".man")?.parse().ok()
}
