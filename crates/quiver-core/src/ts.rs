//! Hybrid timestamps, as Milvus uses them: `(physical_ms << 18) | logical`.
//!
//! The oracle is strictly monotonic within a process, and is floored at start-up by the largest
//! timestamp found in the data (WAL records and manifests carry theirs), so a clock that moves
//! backwards across a restart never makes timestamps, or auto ids derived from them, repeat.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Bits of the logical counter.
pub const LOGICAL_BITS: u32 = 18;

/// Compose a hybrid timestamp.
pub fn compose(physical_ms: u64, logical: u64) -> u64 {
    (physical_ms << LOGICAL_BITS) | (logical & ((1 << LOGICAL_BITS) - 1))
}

/// The wall-clock part of a hybrid timestamp, in milliseconds since the Unix epoch.
pub fn physical_ms(ts: u64) -> u64 {
    ts >> LOGICAL_BITS
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A strictly increasing source of hybrid timestamps.
#[derive(Debug, Default)]
pub struct Tso {
    last: AtomicU64,
}

impl Tso {
    /// An oracle whose next timestamp is greater than `floor`.
    pub fn new(floor: u64) -> Self {
        Tso {
            last: AtomicU64::new(floor),
        }
    }

    /// Raise the floor (recovery found a larger timestamp).
    pub fn observe(&self, ts: u64) {
        self.last.fetch_max(ts, Ordering::SeqCst);
    }

    /// Allocate `n >= 1` consecutive timestamps; returns the first.
    pub fn alloc(&self, n: u64) -> u64 {
        let n = n.max(1);
        let mut cur = self.last.load(Ordering::SeqCst);
        loop {
            let first = compose(wall_ms(), 0).max(cur + 1);
            match self
                .last
                .compare_exchange(cur, first + n - 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return first,
                Err(actual) => cur = actual,
            }
        }
    }

    /// One fresh timestamp.
    pub fn now(&self) -> u64 {
        self.alloc(1)
    }

    /// The largest timestamp handed out so far.
    pub fn last(&self) -> u64 {
        self.last.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_and_floored() {
        let far = compose(wall_ms() + 100_000, 5);
        let t = Tso::new(far);
        let a = t.alloc(10);
        assert_eq!(a, far + 1);
        assert_eq!(t.now(), far + 11);
        let t = Tso::new(0);
        let x = t.now();
        assert!(physical_ms(x) >= wall_ms() - 1000);
        assert!(t.now() > x);
    }
}
