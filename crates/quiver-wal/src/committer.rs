//! Group commit on top of [`Wal`].

use std::collections::HashMap;
use std::ops::RangeInclusive;

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::error::WalError;
use crate::options::WalStats;
use crate::wal::Wal;

/// What a [`Committer`] writes to: an append-only log of records with dense LSNs. [`Wal`]
/// (local segment files) is one; the engine's object-store log is another. The contract is
/// [`Wal::append_batch`]'s: `Ok` means durable, and an error consumes no LSN.
pub trait Log: Send {
    fn append_batch(&mut self, payloads: &[&[u8]]) -> Result<RangeInclusive<u64>, WalError>;
    /// Start a new file/object at the next record (a no-op where that means nothing).
    fn rotate(&mut self) -> Result<(), WalError>;
    /// Drop what holds only records `<= upto_lsn`; returns how many files/objects went.
    fn truncate_prefix(&mut self, upto_lsn: u64) -> Result<usize, WalError>;
    fn first_lsn(&self) -> u64;
    fn last_lsn(&self) -> u64;
    fn stats(&self) -> WalStats;
    /// Why appends are refused for good, if they are.
    fn poisoned(&self) -> Option<String>;
    /// The largest payload accepted.
    fn max_payload_bytes(&self) -> usize;
}

impl Log for Wal {
    fn append_batch(&mut self, payloads: &[&[u8]]) -> Result<RangeInclusive<u64>, WalError> {
        Wal::append_batch(self, payloads)
    }
    fn rotate(&mut self) -> Result<(), WalError> {
        Wal::rotate(self)
    }
    fn truncate_prefix(&mut self, upto_lsn: u64) -> Result<usize, WalError> {
        Wal::truncate_prefix(self, upto_lsn)
    }
    fn first_lsn(&self) -> u64 {
        Wal::first_lsn(self)
    }
    fn last_lsn(&self) -> u64 {
        Wal::last_lsn(self)
    }
    fn stats(&self) -> WalStats {
        Wal::stats(self)
    }
    fn poisoned(&self) -> Option<String> {
        Wal::poisoned(self).map(str::to_owned)
    }
    fn max_payload_bytes(&self) -> usize {
        self.options().max_payload_bytes
    }
}

impl Log for Box<dyn Log> {
    fn append_batch(&mut self, payloads: &[&[u8]]) -> Result<RangeInclusive<u64>, WalError> {
        (**self).append_batch(payloads)
    }
    fn rotate(&mut self) -> Result<(), WalError> {
        (**self).rotate()
    }
    fn truncate_prefix(&mut self, upto_lsn: u64) -> Result<usize, WalError> {
        (**self).truncate_prefix(upto_lsn)
    }
    fn first_lsn(&self) -> u64 {
        (**self).first_lsn()
    }
    fn last_lsn(&self) -> u64 {
        (**self).last_lsn()
    }
    fn stats(&self) -> WalStats {
        (**self).stats()
    }
    fn poisoned(&self) -> Option<String> {
        (**self).poisoned()
    }
    fn max_payload_bytes(&self) -> usize {
        (**self).max_payload_bytes()
    }
}

/// The apply callback: receives each durable group's `(lsn, item)` pairs in
/// LSN order; groups arrive in LSN order, one at a time.
pub type ApplyFn<T> = Box<dyn Fn(&[(u64, T)]) + Send + Sync>;

struct Pending<T> {
    ticket: u64,
    payload: Vec<u8>,
    item: T,
}

struct State<T> {
    queue: Vec<Pending<T>>,
    leader_active: bool,
    next_ticket: u64,
    done: HashMap<u64, Result<u64, WalError>>,
    poisoned: Option<String>,
}

/// Group commit: many threads call [`Committer::commit`]; each call returns
/// once its record is durable and applied.
///
/// Protocol: a caller enqueues its record; if no leader is active it becomes
/// the leader, takes **every** queued record, appends them as one batch
/// (consecutive LSNs, one `write`, one `fdatasync`), then — still the only
/// leader, so groups are applied in LSN order — calls `apply` with the
/// group's `(lsn, item)` pairs, and finally publishes each caller's result
/// and wakes everyone. Callers that arrived meanwhile form the next group.
///
/// On a write/fsync failure every caller of the group gets the same
/// [`WalError::Io`], `apply` is not called and no LSN is consumed (see
/// [`Wal::append_batch`] for poisoning). If `apply` panics, the callers of
/// that group get [`WalError::Poisoned`] and so do all later commits (their
/// records are durable, but the applied state is unknown: reopen).
pub struct Committer<T: Send, L: Log = Wal> {
    wal: Mutex<L>,
    state: Mutex<State<T>>,
    cv: Condvar,
    apply: ApplyFn<T>,
    max_payload: usize,
}

impl<T: Send, L: Log> Committer<T, L> {
    pub fn new(wal: L, apply: impl Fn(&[(u64, T)]) + Send + Sync + 'static) -> Self {
        let max_payload = wal.max_payload_bytes();
        Committer {
            wal: Mutex::new(wal),
            state: Mutex::new(State {
                queue: Vec::new(),
                leader_active: false,
                next_ticket: 0,
                done: HashMap::new(),
                poisoned: None,
            }),
            cv: Condvar::new(),
            apply: Box::new(apply),
            max_payload,
        }
    }

    /// Appends `payload`, blocks until it is durable and `apply` has been
    /// called with `item`, and returns its LSN.
    pub fn commit(&self, payload: Vec<u8>, item: T) -> Result<u64, WalError> {
        if payload.len() > self.max_payload {
            // Checked here so that one oversized payload cannot fail a group.
            return Err(WalError::PayloadTooLarge {
                len: payload.len(),
                max: self.max_payload,
            });
        }
        let mut st = self.state.lock();
        if let Some(reason) = &st.poisoned {
            return Err(WalError::Poisoned {
                reason: reason.clone(),
            });
        }
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.queue.push(Pending {
            ticket,
            payload,
            item,
        });
        loop {
            if let Some(result) = st.done.remove(&ticket) {
                return result;
            }
            if st.leader_active {
                self.cv.wait(&mut st);
                continue;
            }
            if let Some(reason) = st.poisoned.clone() {
                // A leader panicked in `apply` while we were queued.
                for p in std::mem::take(&mut st.queue) {
                    let err = WalError::Poisoned {
                        reason: reason.clone(),
                    };
                    st.done.insert(p.ticket, Err(err));
                }
                self.cv.notify_all();
                continue;
            }
            // Our record is still queued (a leader publishes results before
            // it steps down), so we lead a group that contains it.
            st.leader_active = true;
            let batch = std::mem::take(&mut st.queue);
            let results = MutexGuard::unlocked(&mut st, || self.lead(batch, ticket));
            st.done.extend(results);
            st.leader_active = false;
            self.cv.notify_all();
        }
    }

    fn lead(&self, batch: Vec<Pending<T>>, own: u64) -> Vec<(u64, Result<u64, WalError>)> {
        let tickets: Vec<u64> = batch.iter().map(|p| p.ticket).collect();
        let mut guard = LeaderGuard {
            committer: self,
            tickets: &tickets,
            own,
            armed: true,
        };
        let appended = {
            let refs: Vec<&[u8]> = batch.iter().map(|p| p.payload.as_slice()).collect();
            self.wal.lock().append_batch(&refs)
        };
        let results = match appended {
            Ok(range) => {
                let first = *range.start();
                let pairs: Vec<(u64, T)> = batch
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| (first + i as u64, p.item))
                    .collect();
                (self.apply)(&pairs);
                drop(pairs);
                tickets
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (*t, Ok(first + i as u64)))
                    .collect()
            }
            Err(e) => tickets.iter().map(|t| (*t, Err(e.clone()))).collect(),
        };
        guard.armed = false;
        results
    }

    /// [`Wal::rotate`], serialized with the leader's writes.
    pub fn rotate(&self) -> Result<(), WalError> {
        self.wal.lock().rotate()
    }

    /// [`Wal::truncate_prefix`], serialized with the leader's writes.
    pub fn truncate_prefix(&self, upto_lsn: u64) -> Result<usize, WalError> {
        self.wal.lock().truncate_prefix(upto_lsn)
    }

    pub fn first_lsn(&self) -> u64 {
        self.wal.lock().first_lsn()
    }

    pub fn last_lsn(&self) -> u64 {
        self.wal.lock().last_lsn()
    }

    pub fn stats(&self) -> WalStats {
        self.wal.lock().stats()
    }

    /// Why commits are refused, if poisoned (by the WAL or a panicking
    /// `apply`).
    pub fn poisoned(&self) -> Option<String> {
        if let Some(r) = &self.state.lock().poisoned {
            return Some(r.clone());
        }
        self.wal.lock().poisoned()
    }

    /// Returns the log (e.g. to close it: dropping a [`Wal`] releases its lock).
    pub fn into_inner(self) -> L {
        self.wal.into_inner()
    }

    /// Runs `f` on the log, serialized with the leader's writes.
    pub fn with_log<R>(&self, f: impl FnOnce(&mut L) -> R) -> R {
        f(&mut self.wal.lock())
    }
}

impl<T: Send> Committer<T, Wal> {
    /// Runs `f` with the WAL locked (blocking commits meanwhile), e.g. to
    /// replay while the committer exists.
    pub fn with_wal<R>(&self, f: impl FnOnce(&Wal) -> R) -> R {
        f(&self.wal.lock())
    }

    /// Failure injection handle of the wrapped WAL (tests only).
    #[cfg(any(test, feature = "failpoints"))]
    pub fn failpoints(&self) -> crate::FailPoints {
        self.wal.lock().failpoints()
    }
}

/// Unblocks the group's followers if the leader unwinds (a panicking
/// `apply`), instead of leaving them waiting forever.
struct LeaderGuard<'a, T: Send, L: Log> {
    committer: &'a Committer<T, L>,
    tickets: &'a [u64],
    own: u64,
    armed: bool,
}

impl<T: Send, L: Log> Drop for LeaderGuard<'_, T, L> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let reason = "the apply callback panicked; the WAL must be reopened".to_string();
        let mut st = self.committer.state.lock();
        st.poisoned = Some(reason.clone());
        for t in self.tickets.iter().filter(|t| **t != self.own) {
            let err = WalError::Poisoned {
                reason: reason.clone(),
            };
            st.done.insert(*t, Err(err));
        }
        st.leader_active = false;
        self.committer.cv.notify_all();
    }
}
