//! Bit-vector distances (Hamming, Jaccard) over packed `u8` slices, the
//! [`BinaryMetric`] that names them, and exact top-k over packed rows
//! ([`binary_search_one`]).
//!
//! # Layout
//!
//! A binary vector of `dim` bits (Milvus `BINARY_VECTOR`, `dim` a multiple
//! of 8) is `dim / 8` bytes; element `j` is bit `7 - j % 8` of byte `j / 8`
//! (numpy `packbits` order). Hamming and Jaccard count bits position by
//! position, so the bit order never changes a score.
//!
//! # Kernels
//!
//! The loops read 8 bytes at a time as `u64` and use `count_ones`. On
//! x86_64 the AVX2/AVX-512 levels run the same loops compiled with the
//! `popcnt` target feature, so `count_ones` becomes one instruction; the
//! AVX-512 level uses `VPOPCNTDQ` instead (64 bytes per step) when the CPU
//! has it (module `vpopcnt`, chosen at run time like every kernel). Every
//! level computes the same integers (bit counts), so every level returns
//! the same score bit for bit: Hamming is the count as `f32` (exact up to
//! 2^24 bits), Jaccard is `1 - inter / union` in `f32`, `0.0` when the
//! union is empty (two all-zero vectors). Two-slice kernels reached through
//! [`BinaryMetric::kernel`] compare the common prefix when the lengths
//! differ; the checked entry points panic instead.

use crate::dispatch::Kernels;
use crate::search::Filter;
use crate::topk::TopK;

#[inline(always)]
fn word(c: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(c);
    u64::from_le_bytes(w)
}

#[inline(always)]
fn hamming_body(a: &[u8], b: &[u8]) -> u32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    let mut acc = 0u32;
    for (x, y) in ca.by_ref().zip(cb.by_ref()) {
        acc += (word(x) ^ word(y)).count_ones();
    }
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        acc += (x ^ y).count_ones();
    }
    acc
}

#[inline(always)]
fn jaccard_body(a: &[u8], b: &[u8]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    let (mut inter, mut union) = (0u32, 0u32);
    for (x, y) in ca.by_ref().zip(cb.by_ref()) {
        let (x, y) = (word(x), word(y));
        inter += (x & y).count_ones();
        union += (x | y).count_ones();
    }
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        inter += (x & y).count_ones();
        union += (x | y).count_ones();
    }
    if union == 0 {
        0.0
    } else {
        1.0 - inter as f32 / union as f32
    }
}

pub(crate) fn hamming_portable(a: &[u8], b: &[u8]) -> u32 {
    hamming_body(a, b)
}

pub(crate) fn jaccard_portable(a: &[u8], b: &[u8]) -> f32 {
    jaccard_body(a, b)
}

pub(crate) fn hamming_f32_portable(a: &[u8], b: &[u8]) -> f32 {
    hamming_body(a, b) as f32
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod popcnt {
    #[target_feature(enable = "popcnt")]
    unsafe fn hamming_impl(a: &[u8], b: &[u8]) -> u32 {
        super::hamming_body(a, b)
    }

    #[target_feature(enable = "popcnt")]
    unsafe fn jaccard_impl(a: &[u8], b: &[u8]) -> f32 {
        super::jaccard_body(a, b)
    }

    /// Only reachable through a level table that checked `popcnt`.
    pub(crate) fn hamming(a: &[u8], b: &[u8]) -> u32 {
        // SAFETY: installed only in the AVX2/AVX-512 tables, which are handed
        // out after `is_x86_feature_detected!("popcnt")` returned true.
        unsafe { hamming_impl(a, b) }
    }

    /// Only reachable through a level table that checked `popcnt`.
    pub(crate) fn hamming_f32(a: &[u8], b: &[u8]) -> f32 {
        // SAFETY: as for `hamming`: the table that holds this was built
        // after `popcnt` was detected.
        unsafe { hamming_impl(a, b) as f32 }
    }

    /// Only reachable through a level table that checked `popcnt`.
    pub(crate) fn jaccard(a: &[u8], b: &[u8]) -> f32 {
        // SAFETY: as for `hamming`: the table that holds this was built
        // after `popcnt` was detected.
        unsafe { jaccard_impl(a, b) }
    }
}

/// AVX-512 `VPOPCNTDQ` kernels: 64 bytes per step, the tail (< 64 bytes,
/// the whole row below 512 bits) by one masked load pair.
#[cfg(target_arch = "x86_64")]
pub(crate) mod vpopcnt {
    use core::arch::x86_64::*;

    /// `popcount(a ^ b)` and, for Jaccard, `popcount(a & b)` /
    /// `popcount(a | b)`, over the common prefix.
    macro_rules! fold {
        ($a:expr, $b:expr, |$x:ident, $y:ident| $($acc:ident = $e:expr),+) => {{
            let (a, b): (&[u8], &[u8]) = ($a, $b);
            let n = a.len().min(b.len());
            let (pa, pb) = (a.as_ptr(), b.as_ptr());
            $(let mut $acc = _mm512_setzero_si512();)+
            let mut i = 0;
            // SAFETY: full loads read [i, i + 64) with i + 64 <= n, within
            // both slices; the tail loads are masked to the n - i < 64 bytes
            // left (masked-off bytes are not accessed, so they cannot fault).
            unsafe {
                while i + 64 <= n {
                    let $x = _mm512_loadu_si512(pa.add(i) as *const _);
                    let $y = _mm512_loadu_si512(pb.add(i) as *const _);
                    $($acc = _mm512_add_epi64($acc, _mm512_popcnt_epi64($e));)+
                    i += 64;
                }
                if i < n {
                    let m: __mmask64 = (1u64 << (n - i)) - 1;
                    let $x = _mm512_maskz_loadu_epi8(m, pa.add(i) as *const i8);
                    let $y = _mm512_maskz_loadu_epi8(m, pb.add(i) as *const i8);
                    $($acc = _mm512_add_epi64($acc, _mm512_popcnt_epi64($e));)+
                }
            }
            ($(_mm512_reduce_add_epi64($acc) as u32),+)
        }};
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq")]
    unsafe fn hamming_impl(a: &[u8], b: &[u8]) -> u32 {
        fold!(a, b, |x, y| d = _mm512_xor_si512(x, y))
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq")]
    unsafe fn jaccard_impl(a: &[u8], b: &[u8]) -> f32 {
        let (inter, union) = fold!(
            a,
            b,
            |x, y| and = _mm512_and_si512(x, y),
            or = _mm512_or_si512(x, y)
        );
        if union == 0 {
            0.0
        } else {
            1.0 - inter as f32 / union as f32
        }
    }

    /// Only reachable through the AVX-512 table that checked the features.
    pub(crate) fn hamming(a: &[u8], b: &[u8]) -> u32 {
        // SAFETY: installed only in the AVX-512 table handed out after
        // `is_x86_feature_detected!` returned true for avx512f, avx512bw and
        // avx512vpopcntdq.
        unsafe { hamming_impl(a, b) }
    }

    /// Only reachable through the AVX-512 table that checked the features.
    pub(crate) fn hamming_f32(a: &[u8], b: &[u8]) -> f32 {
        // SAFETY: as for `hamming`.
        unsafe { hamming_impl(a, b) as f32 }
    }

    /// Only reachable through the AVX-512 table that checked the features.
    pub(crate) fn jaccard(a: &[u8], b: &[u8]) -> f32 {
        // SAFETY: as for `hamming`.
        unsafe { jaccard_impl(a, b) }
    }
}

/// A binary-vector metric, with Milvus semantics. Both are distances:
/// lower is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryMetric {
    /// Number of differing bits (as `f32`).
    Hamming,
    /// `1 - |a AND b| / |a OR b|`; `0.0` when both vectors are all zeros.
    Jaccard,
}

impl BinaryMetric {
    /// Both metrics, in the order of their persisted codes.
    pub const ALL: [BinaryMetric; 2] = [BinaryMetric::Hamming, BinaryMetric::Jaccard];

    /// Parses `"HAMMING"` or `"JACCARD"`, case-insensitively (surrounding
    /// whitespace ignored).
    pub fn parse(s: &str) -> Option<BinaryMetric> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s))
    }

    /// The Milvus name: `"HAMMING"` or `"JACCARD"`.
    pub fn name(&self) -> &'static str {
        match self {
            BinaryMetric::Hamming => "HAMMING",
            BinaryMetric::Jaccard => "JACCARD",
        }
    }

    /// Always `false`: both metrics are distances.
    pub fn higher_is_better(&self) -> bool {
        false
    }

    /// The Milvus score of `a` against `b` (packed bits) with the active
    /// kernels. Panics if the lengths differ.
    #[inline]
    pub fn distance(&self, a: &[u8], b: &[u8]) -> f32 {
        self.distance_with(Kernels::active(), a, b)
    }

    /// [`BinaryMetric::distance`] with a given level's kernels.
    #[inline]
    pub fn distance_with(&self, kernels: &Kernels, a: &[u8], b: &[u8]) -> f32 {
        assert_eq!(a.len(), b.len(), "{}: length mismatch", self.name());
        (self.kernel_with(kernels))(a, b)
    }

    /// The active level's raw kernel for hot loops over equal-length rows:
    /// no length check (slices of different lengths are compared over their
    /// common prefix). Returns exactly what [`BinaryMetric::distance`] does.
    #[inline]
    pub fn kernel(&self) -> fn(&[u8], &[u8]) -> f32 {
        self.kernel_with(Kernels::active())
    }

    #[inline]
    fn kernel_with(&self, kernels: &Kernels) -> fn(&[u8], &[u8]) -> f32 {
        match self {
            BinaryMetric::Hamming => kernels.hamming_f32,
            BinaryMetric::Jaccard => kernels.jaccard,
        }
    }
}

impl std::fmt::Display for BinaryMetric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BinaryMetric {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BinaryMetric::parse(s)
            .ok_or_else(|| format!("unknown binary metric {s:?} (expected HAMMING or JACCARD)"))
    }
}

/// Exact top-k of one packed query against `data` (`nb` rows of
/// `bytes_per_row` bytes each, `nb = data.len() / bytes_per_row`), scanning
/// every row `filter` allows with [`BinaryMetric::distance`].
/// Single-threaded: the caller parallelises across queries or segments.
/// Returns `(score, row)` best (lowest) first, ties by smaller row; at most
/// `k` entries (fewer if fewer rows pass the filter). Empty when
/// `bytes_per_row` is 0.
///
/// Panics if `q.len() != bytes_per_row`, `data.len()` is not a multiple of
/// `bytes_per_row`, or there are more than `u32::MAX + 1` rows.
pub fn binary_search_one(
    metric: BinaryMetric,
    q: &[u8],
    data: &[u8],
    bytes_per_row: usize,
    filter: Filter<'_>,
    k: usize,
) -> Vec<(f32, u32)> {
    binary_search_one_with(Kernels::active(), metric, q, data, bytes_per_row, filter, k)
}

/// [`binary_search_one`] on the kernels of a given level (tests and benchmarks).
#[doc(hidden)]
pub fn binary_search_one_with(
    kernels: &Kernels,
    metric: BinaryMetric,
    q: &[u8],
    data: &[u8],
    bytes_per_row: usize,
    filter: Filter<'_>,
    k: usize,
) -> Vec<(f32, u32)> {
    assert_eq!(
        q.len(),
        bytes_per_row,
        "binary_search_one: query length must equal bytes_per_row"
    );
    if bytes_per_row == 0 {
        assert!(data.is_empty(), "binary_search_one: data with 0-byte rows");
        return Vec::new();
    }
    assert!(
        data.len().is_multiple_of(bytes_per_row),
        "binary_search_one: data length is not a multiple of bytes_per_row"
    );
    let nb = data.len() / bytes_per_row;
    assert!(nb as u64 <= 1 << 32, "too many rows for u32 ids");
    if k == 0 {
        return Vec::new();
    }
    let mut top = TopK::with_capacity(k, false, nb);
    let dist = metric.kernel_with(kernels);
    let rows = data.chunks_exact(bytes_per_row);
    match filter {
        Filter::All => {
            for (i, row) in rows.enumerate() {
                top.push(dist(q, row), i as u32);
            }
        }
        Filter::Bitmap(words) => {
            // Visit set bits only: cheap at low selectivity.
            for (w, &bits) in words.iter().enumerate().take(nb.div_ceil(64)) {
                let mut b = bits;
                while b != 0 {
                    let i = w * 64 + b.trailing_zeros() as usize;
                    b &= b - 1;
                    if i < nb {
                        let row = &data[i * bytes_per_row..(i + 1) * bytes_per_row];
                        top.push(dist(q, row), i as u32);
                    }
                }
            }
        }
        Filter::Fn(f) => {
            for (i, row) in rows.enumerate() {
                if f(i) {
                    top.push(dist(q, row), i as u32);
                }
            }
        }
    }
    top.into_sorted_vec()
}
