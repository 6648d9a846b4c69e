//! The audit log: append-only, hash-chained, and the registry's source of truth.
//!
//! File `<registry dir>/audit.log`, one event per line (JSON, UTF-8, `\n`-terminated):
//!
//! | key       | meaning |
//! |-----------|---------|
//! | `seq`     | 1, 2, 3, ... without gaps |
//! | `ts_ms`   | wall-clock time of the change, milliseconds since the Unix epoch |
//! | `actor`   | who made the change (the authenticated user, or `anonymous`) |
//! | `kind`    | `model_created`, `version_registered`, `version_deleted`, `alias_set`, `alias_deleted`, `binding_set`, `binding_removed`, `serving_created`, `serving_promoted`, `serving_rolled_back`, `migration_created`, `migration_updated`, `eval_set_created`, `evaluation_recorded`, `experiment_started`, `experiment_updated` |
//! | `subject` | what changed (`model`, `model@version`, `model#alias`, `collection.field`, `serving:name`, `migration:id`, `experiment:id`) |
//! | `data`    | the change itself (enough to replay it) |
//! | `prev`    | `hash` of the previous event (64 zeros for the first) |
//! | `hash`    | hex SHA-256 of `prev`, a newline, and the canonical JSON of `{seq, ts_ms, actor, kind, subject, data}` (keys sorted, no spaces) |
//!
//! Invariants:
//! - Numbers in `data` hash as they print after parsing: serde_json is built with
//!   `float_roundtrip` (workspace Cargo.toml), so every f64 parses back to the same bits and
//!   prints the same digits; without it some floats (a metrics snapshot's) broke the chain.
//! - An event is acknowledged only after its line is written and `fdatasync`ed; the registry's
//!   state is the fold of the acknowledged events, so a change and its audit record can never
//!   disagree, and a crash loses at most the unacknowledged event being written.
//! - Opening truncates a torn last line (no newline, or not JSON) — it was never acknowledged.
//! - Any other line that does not parse, or whose `seq`, `prev` or `hash` does not chain,
//!   stops replay there: the state is the events before it, the registry refuses changes, and
//!   [`verify`] reports that first broken link (so an edited event is never acted on).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::{RegistryError, Result};

/// The `prev` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub ts_ms: u64,
    pub actor: String,
    pub kind: String,
    pub subject: String,
    pub data: Json,
    pub prev: String,
    pub hash: String,
}

impl Event {
    /// The hash this event must carry, given its fields and `prev`.
    pub fn compute_hash(&self) -> String {
        let body = serde_json::json!({
            "seq": self.seq,
            "ts_ms": self.ts_ms,
            "actor": self.actor,
            "kind": self.kind,
            "subject": self.subject,
            "data": self.data,
        });
        let mut h = Sha256::new();
        h.update(self.prev.as_bytes());
        h.update(b"\n");
        h.update(serde_json::to_string(&body).unwrap_or_default().as_bytes());
        hex(&h.finalize())
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    /// True when every line parses and chains.
    pub ok: bool,
    /// Events that chain correctly from the start.
    pub events: u64,
    /// Hash of the last good event (the genesis value when there is none).
    pub head_hash: String,
    /// The first broken link: its sequence number (the line's position) and why.
    pub first_bad: Option<BadLink>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BadLink {
    pub seq: u64,
    pub reason: String,
}

/// Check one line against the chain so far.
fn check(line: &str, expect_seq: u64, prev: &str) -> std::result::Result<Event, String> {
    let e: Event = serde_json::from_str(line).map_err(|e| format!("not a valid event: {e}"))?;
    if e.seq != expect_seq {
        return Err(format!(
            "sequence number {} where {expect_seq} was expected",
            e.seq
        ));
    }
    if e.prev != prev {
        return Err("prev does not match the previous event's hash".into());
    }
    if e.compute_hash() != e.hash {
        return Err("hash does not match the event's contents (edited?)".into());
    }
    Ok(e)
}

/// Walk the lines of a log: the good events, and the first broken link.
pub fn verify_lines(text: &str) -> (Vec<Event>, VerifyReport) {
    let mut events = Vec::new();
    let mut prev = GENESIS.to_string();
    let mut first_bad = None;
    for (i, line) in text.lines().enumerate() {
        let seq = i as u64 + 1;
        match check(line, seq, &prev) {
            Ok(e) => {
                prev = e.hash.clone();
                events.push(e);
            }
            Err(reason) => {
                first_bad = Some(BadLink { seq, reason });
                break;
            }
        }
    }
    let report = VerifyReport {
        ok: first_bad.is_none(),
        events: events.len() as u64,
        head_hash: prev,
        first_bad,
    };
    (events, report)
}

/// The open log file.
pub struct AuditLog {
    path: PathBuf,
    file: File,
    head: String,
    next_seq: u64,
    /// Set when the file has a broken link: no more appends.
    broken: Option<BadLink>,
}

impl AuditLog {
    /// Open (creating) the log, truncate a torn tail, and return it with the good events.
    pub fn open(path: &Path) -> Result<(AuditLog, Vec<Event>, VerifyReport)> {
        let io = |op: &'static str, e: std::io::Error| RegistryError::io(op, path, e);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .append(true)
            .open(path)
            .map_err(|e| io("open", e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| io("read", e))?;
        // Bytes after the last newline are a torn append (never acknowledged).
        let mut cut = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let text = String::from_utf8_lossy(&bytes[..cut]).into_owned();
        let (mut events, mut report) = verify_lines(&text);
        // A last line that is not JSON at all (zeros after a power cut) is torn too; a last line
        // that is JSON but does not chain is tampering, and is kept for `verify` to report.
        if let Some(bad) = &report.first_bad {
            let lines: Vec<&str> = text.lines().collect();
            if bad.seq == lines.len() as u64
                && serde_json::from_str::<Json>(lines[lines.len() - 1]).is_err()
            {
                cut = text.trim_end_matches('\n').rfind('\n').map_or(0, |p| p + 1);
                (events, report) = verify_lines(&text[..cut]);
            }
        }
        if cut < bytes.len() {
            file.set_len(cut as u64).map_err(|e| io("truncate", e))?;
            file.sync_data().map_err(|e| io("fsync", e))?;
            tracing::warn!(path = %path.display(), "audit log: dropped a torn last event (never acknowledged)");
        }
        file.seek(SeekFrom::End(0)).map_err(|e| io("seek", e))?;
        if let Some(bad) = &report.first_bad {
            tracing::error!(
                path = %path.display(),
                seq = bad.seq,
                "audit log chain is broken ({}): the registry is read-only until it is repaired",
                bad.reason
            );
        }
        let log = AuditLog {
            path: path.to_path_buf(),
            file,
            head: report.head_hash.clone(),
            next_seq: report.events + 1,
            broken: report.first_bad.clone(),
        };
        Ok((log, events, report))
    }

    /// Why changes are refused, if they are.
    pub fn broken(&self) -> Option<&BadLink> {
        self.broken.as_ref()
    }

    /// Append an event and make it durable; returns it with `seq`, `prev` and `hash` filled.
    pub fn append(
        &mut self,
        actor: &str,
        kind: &str,
        subject: &str,
        data: Json,
        ts_ms: u64,
    ) -> Result<Event> {
        if let Some(bad) = &self.broken {
            return Err(RegistryError::Conflict(format!(
                "the audit log is broken at event {} ({}); the registry accepts no changes until it is repaired",
                bad.seq, bad.reason
            )));
        }
        let mut e = Event {
            seq: self.next_seq,
            ts_ms,
            actor: actor.to_string(),
            kind: kind.to_string(),
            subject: subject.to_string(),
            data,
            prev: self.head.clone(),
            hash: String::new(),
        };
        e.hash = e.compute_hash();
        let mut line =
            serde_json::to_vec(&e).map_err(|err| RegistryError::Internal(err.to_string()))?;
        line.push(b'\n');
        let io = |op: &'static str, err: std::io::Error| RegistryError::io(op, &self.path, err);
        let len = self.file.metadata().map_err(|err| io("stat", err))?.len();
        if let Err(err) = self
            .file
            .write_all(&line)
            .and_then(|_| self.file.sync_data())
        {
            // Leave no partial line behind; if even that fails, stop accepting changes.
            if self
                .file
                .set_len(len)
                .and_then(|_| self.file.sync_data())
                .is_err()
            {
                self.broken = Some(BadLink {
                    seq: e.seq,
                    reason: format!("a failed append could not be undone: {err}"),
                });
            }
            return Err(io("append", err));
        }
        self.head = e.hash.clone();
        self.next_seq += 1;
        Ok(e)
    }

    /// Re-read and verify the whole file.
    pub fn verify(&self) -> Result<(Vec<Event>, VerifyReport)> {
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| RegistryError::io("read", &self.path, e))?;
        Ok(verify_lines(&text))
    }
}
