//! The frozen HNSW graph, shared by every index that walks one
//! ([`super::HnswIndex`] over `f32` rows, [`super::BinaryHnswIndex`] over
//! packed bits): neighbour lists in the search layout, the entry point, and
//! the walk (greedy descent + level-0 beam) over any [`QueryDist`].
//!
//! # Invariants (see the `hnsw` module docs for the layout)
//!
//! * `levels.len() == n`, every `levels[i] <= max_level`; `entry < n` with
//!   `levels[entry] == max_level`, or `entry == NONE` and `max_level == 0`
//!   when `n == 0`.
//! * `links0.len() == n * m0`, `m0 == 2 m`; `upper_off` is the prefix sum of
//!   `levels * m` (`NONE` for a level-0 node) and `upper.len()` its total.
//! * Every list is ids then `NONE` padding, each id `< n` and, at level `l`,
//!   of a node with `levels[id] >= l`.
//!
//! [`Layers::from_parts`] checks all of it (loaders call it on untrusted
//! files); the builder establishes it by construction.

use super::{greedy, search_layer, Graph, QueryDist, NONE};
use crate::kernels::prefetch_range;
use crate::mem::PodBuf;
use crate::scratch::Scratch;
use crate::IndexError;

/// A frozen HNSW graph over nodes `0..n`. See the module docs.
#[derive(Clone)]
pub(crate) struct Layers {
    pub(crate) m: usize,
    pub(crate) m0: usize,
    pub(crate) entry: u32,
    pub(crate) max_level: usize,
    pub(crate) levels: Vec<u8>,
    pub(crate) links0: PodBuf<u32>,
    pub(crate) upper_off: Vec<u32>,
    pub(crate) upper: Vec<u32>,
}

impl Graph for Layers {
    #[inline(always)]
    fn neighbors<'a>(&'a self, node: u32, level: usize, _buf: &'a mut Vec<u32>) -> &'a [u32] {
        self.links(node, level)
    }

    #[inline(always)]
    fn prefetch_links(&self, node: u32, level: usize) {
        if level == 0 {
            let p = self.links0.as_ptr().wrapping_add(node as usize * self.m0);
            prefetch_range(p as *const u8, self.m0 * 4);
        }
    }
}

impl Layers {
    /// Neighbour slots of `node` at `level` (which must be `<= levels[node]`):
    /// ids, then `NONE` padding.
    #[inline(always)]
    pub(crate) fn links(&self, node: u32, level: usize) -> &[u32] {
        if level == 0 {
            let base = node as usize * self.m0;
            &self.links0[base..base + self.m0]
        } else {
            let off = self.upper_off[node as usize] as usize + (level - 1) * self.m;
            &self.upper[off..off + self.m]
        }
    }

    /// Greedy descent from the entry point to level 1, then a beam of width
    /// `ef` on level 0; leaves the (at most `ef`) best allowed nodes in
    /// `s.res`. The caller resets `s.visited` and guarantees `n > 0`.
    pub(crate) fn walk<D: QueryDist, A: Fn(u32) -> bool>(
        &self,
        d: &D,
        s: &mut Scratch,
        ef: usize,
        ok: &A,
    ) {
        let mut cur = self.entry;
        let mut cur_d = d.dist(cur);
        for level in (1..=self.max_level).rev() {
            (cur, cur_d) = greedy(self, d, &mut s.lbuf, cur, cur_d, level);
        }
        search_layer(self, d, s, cur, cur_d, ef, 0, ok);
    }

    /// Heap bytes held (levels, lists, offsets).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.levels.capacity()
            + self.links0.bytes()
            + 4 * (self.upper_off.capacity() + self.upper.capacity())
    }

    /// Assembles a graph read from a file, checking every invariant of the
    /// module docs (so search can index by the ids without further checks).
    /// `links0` must already hold `n * 2 m` slots (the reader checked the
    /// count); `m` must be in `2..=2048`.
    pub(crate) fn from_parts(
        m: usize,
        entry: u32,
        max_level: usize,
        levels: Vec<u8>,
        links0: PodBuf<u32>,
        upper: Vec<u32>,
    ) -> Result<Layers, IndexError> {
        let n = levels.len();
        let m0 = 2 * m;
        if links0.len() != n * m0 {
            return Err(IndexError::corrupt("links0 length"));
        }
        if levels.iter().any(|&l| l as usize > max_level) {
            return Err(IndexError::corrupt("a node's level exceeds max_level"));
        }
        if n == 0 {
            if entry != NONE || max_level != 0 {
                return Err(IndexError::corrupt("empty index with an entry point"));
            }
        } else if entry as usize >= n || levels[entry as usize] as usize != max_level {
            return Err(IndexError::corrupt("bad entry point"));
        }
        let mut upper_off = vec![NONE; n];
        let mut total: u64 = 0;
        for (i, &l) in levels.iter().enumerate() {
            if l > 0 {
                upper_off[i] = total as u32;
                total += l as u64 * m as u64;
                if total > u32::MAX as u64 {
                    return Err(IndexError::corrupt("upper levels too large"));
                }
            }
        }
        if upper.len() as u64 != total {
            return Err(IndexError::corrupt(format!(
                "upper holds {} slots, levels need {total}",
                upper.len()
            )));
        }
        let check = |list: &[u32], level: usize| -> Result<(), IndexError> {
            let c = list.iter().position(|&x| x == NONE).unwrap_or(list.len());
            if list[c..].iter().any(|&x| x != NONE) {
                return Err(IndexError::corrupt(format!(
                    "bad neighbour padding at level {level}"
                )));
            }
            for &id in &list[..c] {
                if id as usize >= n || (levels[id as usize] as usize) < level {
                    return Err(IndexError::corrupt(format!(
                        "bad neighbour {id} at level {level}"
                    )));
                }
            }
            Ok(())
        };
        for list in links0.chunks_exact(m0) {
            check(list, 0)?;
        }
        for (i, &l) in levels.iter().enumerate() {
            for level in 1..=l as usize {
                let off = upper_off[i] as usize + (level - 1) * m;
                check(&upper[off..off + m], level)?;
            }
        }
        Ok(Layers {
            m,
            m0,
            entry,
            max_level,
            levels,
            links0,
            upper_off,
            upper,
        })
    }
}
