//! The write-ahead log of shared (object-storage) mode: one immutable object per group commit,
//! each created only if absent, so the log is a chain of compare-and-set positions and a writer
//! that lost its position can never acknowledge again.
//!
//! Keys: `collections/<id>/log/<first LSN, 20 digits>.qlog`. An object holding LSNs
//! `first..first+count` is followed by the object at `first + count`; there are no gaps and no
//! objects off the chain (every writer appends at the position after the last object it read or
//! wrote). Object layout, inside quiver-core's checksummed envelope (magic `QVLOG\0\0\x01`,
//! version 1), all integers little-endian:
//!
//! | offset | size | field | meaning |
//! |-------:|-----:|-------|---------|
//! | 0 | 8 | epoch | the writer epoch that created the object |
//! | 8 | 8 | writer | a random id of the writer process |
//! | 16 | 8 | seq | the writer's batch counter: (writer, seq) is the transaction id |
//! | 24 | 8 | first | the first LSN, equal to the key's number |
//! | 32 | 4 | count | records that follow, >= 1 |
//! | 36 | .. | records | `count` times: `u32` length, then the payload |
//!
//! A record with an empty payload is a *fence*: a writer opening the log claims the next
//! position with one, so any older writer's next append finds the position taken.
//!
//! Invariants and how they are kept:
//! - **No acknowledged record is lost to a takeover.** A new writer reads the chain from the
//!   manifest checkpoint to its end, then creates the fence at the next position. An older
//!   writer's append either landed before that position (and was read) or fails at it.
//! - **A fenced writer acknowledges nothing.** Its next append meets the fence (or anything after
//!   it), reads it, sees a higher epoch and fails with [`WalError::Fenced`] from then on.
//! - **An ambiguous PUT is resolved by the transaction id.** A timeout after the object was
//!   stored looks like "exists" on the retry; the writer reads the object and succeeds if it
//!   holds its own (writer, seq). If retries run out, nothing is acknowledged and the position
//!   is remembered: should that batch turn out stored after all, the log is poisoned (its
//!   records are durable but were reported failed and never applied: reopen to recover them).

use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use quiver_core::storage::{open_envelope, seal_envelope, Storage};
use quiver_wal::{Log, WalError, WalStats};
use rayon::prelude::*;

pub const LOG_MAGIC: &[u8; 8] = b"QVLOG\0\0\x01";
pub const LOG_VERSION: u32 = 1;
const FIXED: usize = 36;

/// Records to replay: (LSN, payload); an empty payload is a fence.
pub type Records = Vec<(u64, Vec<u8>)>;

/// One decoded log object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogObject {
    pub epoch: u64,
    pub writer: u64,
    pub seq: u64,
    pub first: u64,
    pub records: Vec<Vec<u8>>,
}

impl LogObject {
    pub fn last(&self) -> u64 {
        self.first + self.records.len() as u64 - 1
    }

    fn next(&self) -> u64 {
        self.first + self.records.len() as u64
    }
}

pub fn log_prefix(collection_prefix: &str) -> String {
    format!("{collection_prefix}/log/")
}

fn log_key(prefix: &str, first: u64) -> String {
    format!("{prefix}{first:020}.qlog")
}

fn key_first(key: &str) -> Option<u64> {
    key.rsplit('/').next()?.strip_suffix(".qlog")?.parse().ok()
}

pub fn encode(epoch: u64, writer: u64, seq: u64, first: u64, payloads: &[&[u8]]) -> Vec<u8> {
    let len: usize = payloads.iter().map(|p| 4 + p.len()).sum();
    let mut body = Vec::with_capacity(FIXED + len);
    for v in [epoch, writer, seq, first] {
        body.extend_from_slice(&v.to_le_bytes());
    }
    body.extend_from_slice(&(payloads.len() as u32).to_le_bytes());
    for p in payloads {
        body.extend_from_slice(&(p.len() as u32).to_le_bytes());
        body.extend_from_slice(p);
    }
    seal_envelope(LOG_MAGIC, LOG_VERSION, &body)
}

fn corrupt(key: &str, reason: impl Into<String>) -> WalError {
    WalError::Corrupt {
        file: key.into(),
        offset: 0,
        reason: reason.into(),
    }
}

pub fn decode(key: &str, bytes: &[u8]) -> Result<LogObject, WalError> {
    let (_, body) = open_envelope(LOG_MAGIC, LOG_VERSION, Path::new(key), bytes)
        .map_err(|e| corrupt(key, e.to_string()))?;
    if body.len() < FIXED {
        return Err(corrupt(key, "log object shorter than its header"));
    }
    let u64_at = |o: usize| u64::from_le_bytes(body[o..o + 8].try_into().unwrap_or_default());
    let count = u32::from_le_bytes(body[32..36].try_into().unwrap_or_default()) as usize;
    let mut records = Vec::with_capacity(count.min(1 << 16));
    let mut at = FIXED;
    for i in 0..count {
        if body.len() < at + 4 {
            return Err(corrupt(key, format!("record {i} of {count} is cut off")));
        }
        let n = u32::from_le_bytes(body[at..at + 4].try_into().unwrap_or_default()) as usize;
        at += 4;
        if body.len() < at + n {
            return Err(corrupt(key, format!("record {i} of {count} is cut off")));
        }
        records.push(body[at..at + n].to_vec());
        at += n;
    }
    if count == 0 || at != body.len() {
        return Err(corrupt(key, "log object has no records or trailing bytes"));
    }
    let obj = LogObject {
        epoch: u64_at(0),
        writer: u64_at(8),
        seq: u64_at(16),
        first: u64_at(24),
        records,
    };
    if key_first(key).is_some_and(|f| f != obj.first) {
        return Err(corrupt(key, format!("object starts at LSN {}", obj.first)));
    }
    Ok(obj)
}

/// How a log store call is retried.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 8,
            first_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl Retry {
    fn sleep(&self, attempt: u32) {
        let d = self.first_backoff.saturating_mul(1 << attempt.min(16));
        std::thread::sleep(d.min(self.max_backoff));
    }
}

fn store_err(what: &str, e: impl std::fmt::Display) -> WalError {
    WalError::Store {
        reason: format!("{what}: {e}"),
    }
}

/// The chain read from a checkpoint to its end.
#[derive(Debug, Default)]
pub struct Chain {
    /// `(first, last)` of every object from the one holding `checkpoint + 1`, oldest first.
    pub objects: VecDeque<(u64, u64)>,
    /// Records after the checkpoint, fences included (empty payloads).
    pub records: Vec<(u64, Vec<u8>)>,
    /// The position after the last object.
    pub next: u64,
    /// The highest epoch seen on the chain.
    pub max_epoch: u64,
}

impl Chain {
    fn take(&mut self, obj: &LogObject, after: u64) {
        self.objects.push_back((obj.first, obj.last()));
        self.max_epoch = self.max_epoch.max(obj.epoch);
        for (i, r) in obj.records.iter().enumerate() {
            let lsn = obj.first + i as u64;
            if lsn > after {
                self.records.push((lsn, r.clone()));
            }
        }
        self.next = obj.next();
    }
}

/// Read the log under `prefix` (from [`log_prefix`]) after LSN `after`. `Ok(None)` is a gap:
/// objects exist past a position that does not, because a newer checkpoint dropped the records
/// before them; the caller reads the manifest again.
pub fn read_chain(
    storage: &dyn Storage,
    prefix: &str,
    after: u64,
) -> Result<Option<Chain>, WalError> {
    let mut firsts: Vec<u64> = storage
        .list(prefix)
        .map_err(|e| store_err("list the log", e))?
        .iter()
        .filter_map(|k| key_first(k))
        .collect();
    firsts.sort_unstable();
    let want = after + 1;
    let start = firsts.iter().rev().find(|&&f| f <= want).copied();
    let mut chain = Chain {
        next: want,
        ..Default::default()
    };
    // The listed objects from the start are fetched in parallel, then followed one by one.
    let listed: Vec<u64> = match start {
        Some(s) => firsts.iter().copied().filter(|&f| f >= s).collect(),
        None => Vec::new(),
    };
    let fetched: Vec<(u64, Option<Vec<u8>>)> = listed
        .par_iter()
        .map(|&f| {
            storage
                .get(&log_key(prefix, f))
                .map(|b| (f, b))
                .map_err(|e| store_err("read the log", e))
        })
        .collect::<Result<_, _>>()?;
    let mut cur = start.unwrap_or(want);
    for (f, bytes) in fetched {
        if f != cur {
            break;
        }
        let Some(bytes) = bytes else { break };
        let obj = decode(&log_key(prefix, f), &bytes)?;
        chain.take(&obj, after);
        cur = obj.next();
    }
    loop {
        let key = log_key(prefix, cur);
        match storage
            .get(&key)
            .map_err(|e| store_err("read the log", e))?
        {
            Some(bytes) => {
                let obj = decode(&key, &bytes)?;
                chain.take(&obj, after);
                cur = obj.next();
            }
            None if cur < want => cur = want,
            None => break,
        }
    }
    chain.next = cur;
    if firsts.last().is_some_and(|&f| f > cur) {
        return Ok(None);
    }
    Ok(Some(chain))
}

/// The writer's end of the log.
pub struct ObjectLog {
    storage: Arc<dyn Storage>,
    prefix: String,
    epoch: u64,
    writer: u64,
    seq: u64,
    next: u64,
    objects: VecDeque<(u64, u64)>,
    stats: WalStats,
    poisoned: Option<WalError>,
    /// A batch whose outcome was unknown when its call failed: (position, seq).
    in_doubt: Option<(u64, u64)>,
    max_payload: usize,
    retry: Retry,
}

impl std::fmt::Debug for ObjectLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectLog")
            .field("prefix", &self.prefix)
            .field("epoch", &self.epoch)
            .field("next", &self.next)
            .finish()
    }
}

/// What creating an object at a position came to.
enum Claim {
    Won,
    /// Another transaction holds the position.
    Lost(LogObject),
}

impl ObjectLog {
    /// Open the log as writer `epoch`: read the chain after `checkpoint` and claim the next
    /// position with a fence. Returns the log and the records to replay (fences included);
    /// `Ok(None)` on a gap (see [`read_chain`]).
    pub fn open_writer(
        storage: Arc<dyn Storage>,
        prefix: String,
        checkpoint: u64,
        epoch: u64,
        writer: u64,
        max_payload: usize,
        retry: Retry,
    ) -> Result<Option<(ObjectLog, Records)>, WalError> {
        let Some(mut chain) = read_chain(storage.as_ref(), &prefix, checkpoint)? else {
            return Ok(None);
        };
        let mut log = ObjectLog {
            storage,
            prefix,
            epoch,
            writer,
            seq: 0,
            next: chain.next,
            objects: std::mem::take(&mut chain.objects),
            stats: WalStats::default(),
            poisoned: None,
            in_doubt: None,
            max_payload,
            retry,
        };
        if chain.max_epoch > epoch {
            return Err(log.fence_error(chain.max_epoch, chain.next));
        }
        loop {
            let seq = log.take_seq();
            let fence = encode(epoch, writer, seq, log.next, &[&[]]);
            match log.claim(log.next, seq, &fence)? {
                Claim::Won => {
                    chain.records.push((log.next, Vec::new()));
                    log.objects.push_back((log.next, log.next));
                    log.next += 1;
                    return Ok(Some((log, chain.records)));
                }
                Claim::Lost(obj) if obj.epoch > epoch => {
                    return Err(log.fence_error(obj.epoch, obj.first))
                }
                Claim::Lost(obj) => {
                    // An older writer appended meanwhile: its records are acknowledged.
                    for (i, r) in obj.records.iter().enumerate() {
                        chain.records.push((obj.first + i as u64, r.clone()));
                    }
                    log.objects.push_back((obj.first, obj.last()));
                    log.next = obj.next();
                }
            }
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    fn take_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn fence_error(&mut self, epoch: u64, at: u64) -> WalError {
        let reason = format!(
            "writer epoch {epoch} took over {} at LSN {at} (this writer is epoch {})",
            self.prefix.trim_end_matches("/log/"),
            self.epoch
        );
        let e = WalError::Fenced { reason };
        self.poisoned = Some(e.clone());
        e
    }

    /// Create the object at `pos` unless it exists, retrying store errors; resolves an
    /// ambiguous earlier attempt by the transaction id.
    fn claim(&mut self, pos: u64, seq: u64, bytes: &[u8]) -> Result<Claim, WalError> {
        let key = log_key(&self.prefix, pos);
        let mut last_err = String::new();
        for attempt in 0..self.retry.attempts {
            if attempt > 0 {
                self.retry.sleep(attempt - 1);
            }
            match self.storage.put_if_absent(&key, bytes) {
                Ok(true) => return Ok(Claim::Won),
                Ok(false) => match self.storage.get(&key) {
                    Ok(Some(b)) => {
                        let obj = decode(&key, &b)?;
                        if obj.writer == self.writer && obj.seq == seq {
                            return Ok(Claim::Won); // an earlier attempt landed
                        }
                        if obj.writer == self.writer
                            && self.in_doubt.is_some_and(|(p, s)| p == pos && s == obj.seq)
                        {
                            let reason = format!(
                                "a batch at LSN {pos} that was reported failed was stored after \
                                 all; reopen the collection to recover it"
                            );
                            let e = WalError::Poisoned { reason };
                            self.poisoned = Some(e.clone());
                            return Err(e);
                        }
                        return Ok(Claim::Lost(obj));
                    }
                    // "Exists" but nothing there: a store fault; try again.
                    Ok(None) => last_err = "the store refused the object but holds none".into(),
                    Err(e) => last_err = e.to_string(),
                },
                Err(e) => last_err = e.to_string(),
            }
        }
        self.in_doubt = Some((pos, seq));
        Err(store_err(
            &format!(
                "writing {key} failed {} times, nothing acknowledged",
                self.retry.attempts
            ),
            last_err,
        ))
    }
}

impl Log for ObjectLog {
    fn append_batch(&mut self, payloads: &[&[u8]]) -> Result<RangeInclusive<u64>, WalError> {
        if let Some(e) = &self.poisoned {
            return Err(e.clone());
        }
        if let Some(p) = payloads.iter().find(|p| p.len() > self.max_payload) {
            return Err(WalError::PayloadTooLarge {
                len: p.len(),
                max: self.max_payload,
            });
        }
        let first = self.next;
        if payloads.is_empty() {
            return Ok(first..=first - 1);
        }
        let seq = self.take_seq();
        let bytes = encode(self.epoch, self.writer, seq, first, payloads);
        match self.claim(first, seq, &bytes)? {
            Claim::Won => {
                let n = payloads.len() as u64;
                self.in_doubt = None;
                self.next += n;
                self.objects.push_back((first, first + n - 1));
                self.stats.records += n;
                self.stats.batches += 1;
                self.stats.segments_created += 1;
                Ok(first..=first + n - 1)
            }
            Claim::Lost(obj) => Err(self.fence_error(obj.epoch, obj.first)),
        }
    }

    fn rotate(&mut self) -> Result<(), WalError> {
        Ok(())
    }

    fn truncate_prefix(&mut self, upto_lsn: u64) -> Result<usize, WalError> {
        let mut n = 0;
        while let Some(&(first, last)) = self.objects.front() {
            if last > upto_lsn {
                break;
            }
            self.storage
                .delete(&log_key(&self.prefix, first))
                .map_err(|e| store_err("delete a log object", e))?;
            self.objects.pop_front();
            self.stats.segments_removed += 1;
            n += 1;
        }
        Ok(n)
    }

    fn first_lsn(&self) -> u64 {
        self.objects.front().map_or(self.next, |o| o.0)
    }

    fn last_lsn(&self) -> u64 {
        self.next - 1
    }

    fn stats(&self) -> WalStats {
        self.stats
    }

    fn poisoned(&self) -> Option<String> {
        self.poisoned.as_ref().map(|e| e.to_string())
    }

    fn max_payload_bytes(&self) -> usize {
        self.max_payload
    }
}
