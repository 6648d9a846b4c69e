//! Bounded top-k collector with deterministic tie-breaking.

use std::cmp::Ordering;

/// Collects the `k` best `(score, id)` pairs pushed into it.
///
/// "Best" is the highest score when `higher_is_better`, else the lowest;
/// equal scores are ordered by the smaller id first, so the result does not
/// depend on push order. NaN scores are never kept. `-0.0` and `0.0` compare
/// equal (IEEE), so between them the id decides.
///
/// Internally a binary heap of at most `k` entries with the worst at the
/// root: a push that does not make the cut costs one comparison, one that
/// does costs `O(log k)`, and no push allocates (the buffer is reserved up
/// front, see [`TopK::with_capacity`]).
#[derive(Clone, Debug)]
pub struct TopK<I = u64> {
    k: usize,
    higher_is_better: bool,
    heap: Vec<(f32, I)>,
}

impl<I: Copy + Ord> TopK<I> {
    /// A collector for the `k` best entries. Reserves `min(k, 65536)` slots;
    /// use [`TopK::with_capacity`] to bound the reservation by the number of
    /// candidates instead.
    pub fn new(k: usize, higher_is_better: bool) -> Self {
        Self::with_capacity(k, higher_is_better, k.min(1 << 16))
    }

    /// Like [`TopK::new`] but reserves `min(k, capacity)` slots (pass the
    /// number of candidates to avoid a large reservation for a huge `k`).
    pub fn with_capacity(k: usize, higher_is_better: bool, capacity: usize) -> Self {
        TopK {
            k,
            higher_is_better,
            heap: Vec::with_capacity(k.min(capacity)),
        }
    }

    /// The bound `k`.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Whether higher scores are better.
    pub fn higher_is_better(&self) -> bool {
        self.higher_is_better
    }

    /// Number of entries held (at most `k`).
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Whether `k` entries are held (so a push must beat [`TopK::worst`]).
    pub fn is_full(&self) -> bool {
        self.heap.len() >= self.k
    }

    /// The worst entry held once full (the bar a new entry must beat), else `None`.
    pub fn worst(&self) -> Option<(f32, I)> {
        if self.is_full() {
            self.heap.first().copied()
        } else {
            None
        }
    }

    /// The entries held, in no particular order.
    pub fn iter_unsorted(&self) -> std::slice::Iter<'_, (f32, I)> {
        self.heap.iter()
    }

    /// Empties the collector, keeping its buffer.
    pub fn clear(&mut self) {
        self.heap.clear();
    }

    /// Whether `a` ranks strictly before `b`.
    #[inline(always)]
    fn better(&self, a: (f32, I), b: (f32, I)) -> bool {
        let by_score = if self.higher_is_better {
            a.0 > b.0
        } else {
            a.0 < b.0
        };
        by_score || (a.0 == b.0 && a.1 < b.1)
    }

    /// Offers an entry; returns whether it was kept.
    #[inline]
    pub fn push(&mut self, score: f32, id: I) -> bool {
        if score.is_nan() || self.k == 0 {
            return false;
        }
        let e = (score, id);
        if self.heap.len() < self.k {
            self.heap.push(e);
            self.sift_up(self.heap.len() - 1);
            true
        } else if self.better(e, self.heap[0]) {
            self.heap[0] = e;
            self.sift_down(0);
            true
        } else {
            false
        }
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let p = (i - 1) / 2;
            // The root holds the worst: a parent must not rank before its child.
            if self.better(self.heap[p], self.heap[i]) {
                self.heap.swap(p, i);
                i = p;
            } else {
                break;
            }
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let l = 2 * i + 1;
            if l >= n {
                break;
            }
            let r = l + 1;
            // The worse child moves up.
            let c = if r < n && self.better(self.heap[l], self.heap[r]) {
                r
            } else {
                l
            };
            if self.better(self.heap[i], self.heap[c]) {
                self.heap.swap(i, c);
                i = c;
            } else {
                break;
            }
        }
    }

    /// Orders two entries best-first (the order of [`TopK::into_sorted_vec`]).
    pub fn compare(higher_is_better: bool, a: &(f32, I), b: &(f32, I)) -> Ordering {
        let by_score = if higher_is_better {
            b.0.partial_cmp(&a.0)
        } else {
            a.0.partial_cmp(&b.0)
        };
        by_score.unwrap_or(Ordering::Equal).then(a.1.cmp(&b.1))
    }

    /// The kept entries, best first.
    pub fn into_sorted_vec(self) -> Vec<(f32, I)> {
        let mut v = self.heap;
        let hib = self.higher_is_better;
        v.sort_unstable_by(|a, b| Self::compare(hib, a, b));
        v
    }

    /// Like [`TopK::into_sorted_vec`] but keeps the collector (emptied) for reuse.
    pub fn drain_sorted(&mut self) -> Vec<(f32, I)> {
        let hib = self.higher_is_better;
        let mut v: Vec<(f32, I)> = self.heap.drain(..).collect();
        v.sort_unstable_by(|a, b| Self::compare(hib, a, b));
        v
    }
}

impl<I: Copy + Ord> Extend<(f32, I)> for TopK<I> {
    fn extend<T: IntoIterator<Item = (f32, I)>>(&mut self, iter: T) {
        for (s, id) in iter {
            self.push(s, id);
        }
    }
}
