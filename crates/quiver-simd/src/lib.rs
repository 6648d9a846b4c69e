//! Distance kernels with run-time SIMD dispatch, and exact top-k search.
//!
//! # Dispatch
//!
//! Each kernel exists at several [`Level`]s: [`scalar`] (plain Rust, the
//! numeric reference), AVX2+FMA and AVX-512F on x86_64 (`std::arch`
//! intrinsics inside `#[target_feature]` functions, so the crate is built for
//! the baseline target and runs on any x86_64 CPU), and NEON on aarch64.
//! The level is chosen once per process, on first use: the best level the
//! CPU supports (`is_x86_feature_detected!`), cached as a table of function
//! pointers ([`Kernels`]) in a `OnceLock`. Each call then costs one
//! indirect call. The environment variable `QUIVER_SIMD` (`scalar`, `avx2`,
//! `avx512`, `neon`; read once) forces a level; an unknown or unsupported
//! value falls back to the automatic choice. [`active_level`] names the level
//! in use. The AVX-512 intrinsics need rustc 1.89+, the workspace's
//! `rust-version`.
//!
//! # Numeric conventions
//!
//! * All kernels accumulate in `f32`. SIMD levels sum in a different order
//!   than the scalar reference (several vector accumulators, then a
//!   horizontal sum) and use fused multiply-add, so results differ from it by
//!   rounding only: the tests bound `|simd - scalar|` by `1e-4 * sum|a_i b_i|`.
//! * [`l2_sq`] is the squared Euclidean distance (Milvus "L2"); [`cosine`]
//!   is `dot / (|a| |b|)`, and `0.0` when either vector is all zeros. Nothing
//!   is clamped to `[-1, 1]`.
//! * Two-slice kernels panic if the lengths differ. Any length works (tails
//!   are handled with masked loads on AVX-512, scalar code elsewhere).
//!
//! # Search
//!
//! [`Metric::distance`] is the Milvus score: L2 (lower is better), IP and
//! COSINE (higher is better). [`search_one`] scans a row-major matrix with
//! that kernel. [`search_batch`] computes the same top-k for many queries as
//! a register-tiled matrix product (queries x base) fused with the top-k
//! selection, ranking by an internal score that is higher-is-better:
//!
//! * IP: `q.b`.
//! * L2: `q.b - |b|^2 / 2`, which orders rows like `|q|^2 + |b|^2 - 2 q.b`
//!   with the base norms precomputed. This expanded form loses precision by
//!   cancellation when the vectors are far from the origin relative to their
//!   distances (absolute error around `eps * (|q|^2 + |b|^2)` instead of
//!   `eps * |q - b|^2`).
//! * COSINE: `(q / |q|) . b * (1 / |b|)` (queries normalised once; a zero
//!   vector scores 0).
//!
//! To keep results exact, the fused pass keeps `k + max(k, 8)` candidates per
//! query (by internal score) and re-ranks them with [`Metric::distance`].
//! It then checks, with a worst-case bound on the rounding error of both
//! computations (about `8 * (dim + 16) * 2^-24` relative to `|q| * max|b|`,
//! or to 1 for COSINE), that no row outside the candidates can reach the k-th
//! exact score. A query that fails the check (a near-tie at the cut, e.g.
//! many rows with the same score, or the cancellation above) is rescanned
//! with [`search_one`]. So for finite inputs the returned scores and order are
//! exactly those of [`search_one`]; only the time varies.
//!
//! Why a hand-written micro-kernel rather than `matrixmultiply::sgemm`: both
//! run at the FMA limit of the core (about 100 GFLOP/s per Zen 5 core here),
//! but sgemm must write the whole `queries x base` product to memory and a
//! second pass must read it back for the top-k; fusing the selection into the
//! kernel's epilogue (a vector compare against each query's current k-th
//! score, so almost no score ever leaves the registers) removes that pass
//! and the scratch matrix, and no packing of the base is needed (its rows are
//! broadcast in place). Measured on the same data and threads it is about
//! 1.3-1.4x the throughput of sgemm + top-k (see `examples/kernels.rs`), and
//! it keeps the crate free of a GEMM dependency (`matrixmultiply` is only a
//! dev-dependency of the benchmark).
//!
//! Costs to know: `search_batch` computes squared base norms when
//! `base_norms` is `None` (one extra pass over the base, needed by every
//! metric for the error bound): cache [`row_norms_sq`] per sealed segment and
//! pass it in. A filter is applied per micro-panel of base rows (12 on
//! AVX-512): panels with no allowed row are skipped, others are computed in
//! full. Degenerate data where many rows tie at the cut (e.g. an all-zero
//! query under COSINE) makes queries fall back to the exact scan.
//!
//! Results are `(score, row)` pairs, best first; equal scores are ordered by
//! the smaller row. NaN scores are never returned.
//!
//! # Binary vectors
//!
//! [`BinaryMetric`] (Milvus HAMMING and JACCARD, both lower-is-better) scores
//! packed bit vectors (`dim / 8` bytes a row) with the [`hamming`] and
//! [`jaccard`] kernels, which count bits 64 at a time (`popcnt` on x86_64
//! levels); every level returns identical scores. [`binary_search_one`] is
//! the exact top-k over packed rows, with the same [`Filter`] and ordering
//! conventions as [`search_one`]. See module `binary` for the layout.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod binary;
mod convert;
mod dispatch;
mod gemm;
#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
mod neon;
pub mod scalar;
mod search;
mod topk;

#[doc(hidden)]
pub use binary::binary_search_one_with;
pub use binary::{binary_search_one, BinaryMetric};
pub use convert::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};
pub use dispatch::{Kernels, Level, ENV_VAR};
#[doc(hidden)]
pub use gemm::exact_rescans;
#[doc(hidden)]
pub use search::search_batch_with;
pub use search::{row_norms_sq, search_batch, search_one, Filter};
pub use topk::TopK;

/// Name of the kernel level in use: `"avx512"`, `"avx2"`, `"neon"` or `"scalar"`.
pub fn active_level() -> &'static str {
    Kernels::active().level().name()
}

/// Dot product. Panics if the lengths differ.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    Kernels::active().dot(a, b)
}

/// Squared Euclidean distance (Milvus L2). Panics if the lengths differ.
#[inline]
pub fn l2_sq(a: &[f32], b: &[f32]) -> f32 {
    Kernels::active().l2_sq(a, b)
}

/// Squared Euclidean norm.
#[inline]
pub fn norm_sq(a: &[f32]) -> f32 {
    Kernels::active().norm_sq(a)
}

/// Cosine similarity; `0.0` when either vector has zero norm. Panics if the
/// lengths differ.
#[inline]
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    Kernels::active().cosine(a, b)
}

/// Hamming distance between two packed bit vectors. Panics if the lengths differ.
#[inline]
pub fn hamming(a: &[u8], b: &[u8]) -> u32 {
    Kernels::active().hamming(a, b)
}

/// Jaccard distance `1 - |a AND b| / |a OR b|` between packed bit vectors;
/// `0.0` when both are all zeros. Panics if the lengths differ.
#[inline]
pub fn jaccard(a: &[u8], b: &[u8]) -> f32 {
    Kernels::active().jaccard(a, b)
}

/// A float-vector similarity metric, with Milvus semantics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Squared Euclidean distance; lower is better.
    L2,
    /// Inner product; higher is better.
    Ip,
    /// Cosine similarity; higher is better.
    Cosine,
}

impl Metric {
    /// Milvus semantics: L2 = squared distance, lower is better; IP = dot,
    /// higher is better; COSINE = cosine similarity, higher is better.
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::L2)
    }

    /// Parses `"L2"`, `"IP"` or `"COSINE"`, case-insensitively.
    pub fn parse(s: &str) -> Option<Metric> {
        let s = s.trim();
        [Metric::L2, Metric::Ip, Metric::Cosine]
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
    }

    /// The Milvus name: `"L2"`, `"IP"` or `"COSINE"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::L2 => "L2",
            Metric::Ip => "IP",
            Metric::Cosine => "COSINE",
        }
    }

    /// The Milvus score of `a` against `b` with the active kernels. Panics if
    /// the lengths differ.
    #[inline]
    pub fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        self.distance_with(Kernels::active(), a, b)
    }

    /// [`Metric::distance`] with a given level's kernels.
    #[inline]
    pub fn distance_with(self, kernels: &Kernels, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Metric::L2 => kernels.l2_sq(a, b),
            Metric::Ip => kernels.dot(a, b),
            Metric::Cosine => kernels.cosine(a, b),
        }
    }

    /// The raw kernel (no length check) for hot loops over equal-length rows.
    #[inline]
    pub(crate) fn kernel(self, kernels: &Kernels) -> fn(&[f32], &[f32]) -> f32 {
        match self {
            Metric::L2 => kernels.l2_sq,
            Metric::Ip => kernels.dot,
            Metric::Cosine => kernels.cosine,
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Metric {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Metric::parse(s).ok_or_else(|| format!("unknown metric {s:?} (expected L2, IP or COSINE)"))
    }
}
