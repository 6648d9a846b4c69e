//! Per-thread search scratch: an epoch-stamped visited array and the two
//! heaps of a beam search, reused across queries so a query allocates
//! nothing once its thread has seen an index at least as large.
//!
//! Heap entries are `u64` keys: the distance mapped to an order-preserving
//! `u32` in the high half and the node id in the low half, so integer order
//! is (distance, id) order: smaller distance first, ties by smaller id. NaN
//! distances map to +infinity (never preferred).

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Order-preserving map of a distance and id to one `u64`.
#[inline(always)]
pub(crate) fn key(d: f32, id: u32) -> u64 {
    let d = if d.is_nan() { f32::INFINITY } else { d };
    let b = d.to_bits();
    let o = if b >> 31 == 1 { !b } else { b | 0x8000_0000 };
    ((o as u64) << 32) | id as u64
}

/// The distance of a [`key`].
#[inline(always)]
pub(crate) fn key_dist(k: u64) -> f32 {
    let o = (k >> 32) as u32;
    let b = if o >> 31 == 1 { o & 0x7FFF_FFFF } else { !o };
    f32::from_bits(b)
}

/// The id of a [`key`].
#[inline(always)]
pub(crate) fn key_id(k: u64) -> u32 {
    k as u32
}

#[derive(Default)]
pub(crate) struct Visited {
    marks: Vec<u16>,
    epoch: u16,
}

impl Visited {
    /// Starts a new search over ids `0..n`: O(1) except on growth and once
    /// every 65,535 searches (when the epoch wraps and the array is cleared).
    pub(crate) fn reset(&mut self, n: usize) {
        if self.marks.len() < n {
            self.marks.resize(n, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.marks.fill(0);
            self.epoch = 1;
        }
    }

    /// Marks `id`; returns whether it was not yet marked in this search.
    /// Panics if `id` is out of the range given to [`Visited::reset`].
    #[inline(always)]
    pub(crate) fn insert(&mut self, id: u32) -> bool {
        let m = &mut self.marks[id as usize];
        let fresh = *m != self.epoch;
        *m = self.epoch;
        fresh
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, id: u32) -> bool {
        self.marks[id as usize] == self.epoch
    }
}

#[derive(Default)]
pub(crate) struct Scratch {
    pub(crate) visited: Visited,
    /// Frontier: nearest first.
    pub(crate) cand: BinaryHeap<Reverse<u64>>,
    /// Results: worst on top.
    pub(crate) res: BinaryHeap<u64>,
    /// Unvisited neighbours of the node being expanded.
    pub(crate) nbuf: Vec<u32>,
    /// Distances of `nbuf`.
    pub(crate) dbuf: Vec<f32>,
    /// Neighbour-list copy (build) or selection buffer.
    pub(crate) lbuf: Vec<u32>,
    /// Prepared query (normalised / scaled), padded.
    pub(crate) q: Vec<f32>,
    /// Normalised query (COSINE).
    pub(crate) qn: Vec<f32>,
    /// Another f32 buffer (IVF_PQ residual).
    pub(crate) lbuf_f32: Vec<f32>,
    /// Sorted candidates (distance, id).
    pub(crate) pairs: Vec<(f32, u32)>,
    /// Keys being re-ranked.
    pub(crate) keys: Vec<u64>,
    /// Candidates while pruning a neighbour list.
    pub(crate) cands: Vec<(f32, u32)>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's scratch (a fresh one if it is already in use).
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        Err(_) => f(&mut Scratch::default()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_like_distances() {
        let ds = [-3.5f32, -0.0, 0.0, 1e-30, 2.0, f32::INFINITY];
        for w in ds.windows(2) {
            assert!(key(w[0], 9) <= key(w[1], 9), "{w:?}");
        }
        assert!(key(1.0, 1) < key(1.0, 2));
        assert!(key(f32::NAN, 0) >= key(f32::INFINITY, 0));
        for d in ds {
            assert_eq!(
                key_dist(key(d, 3)).to_bits() & 0x7FFF_FFFF,
                d.to_bits() & 0x7FFF_FFFF
            );
            assert_eq!(key_id(key(d, 3)), 3);
        }
    }

    #[test]
    fn visited_epochs() {
        let mut v = Visited::default();
        v.reset(10);
        assert!(v.insert(3));
        assert!(!v.insert(3));
        for _ in 0..70_000 {
            v.reset(10);
            assert!(!v.contains(3));
        }
    }
}
