//! Run-time selection of the kernel level, done once per process.

use std::sync::OnceLock;

use crate::gemm::{Gemm, Micro};

/// Name of the environment variable that overrides the automatic choice.
pub const ENV_VAR: &str = "QUIVER_SIMD";

/// An instruction-set level with its own set of kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// Plain Rust reference code ([`crate::scalar`]).
    Scalar,
    /// x86_64 AVX2 + FMA (+ POPCNT).
    Avx2,
    /// x86_64 AVX-512F.
    Avx512,
    /// aarch64 NEON.
    Neon,
}

impl Level {
    /// Every level, best first.
    pub const ALL: [Level; 4] = [Level::Avx512, Level::Avx2, Level::Neon, Level::Scalar];

    /// Lower-case name, as accepted by `QUIVER_SIMD` and returned by
    /// [`crate::active_level`]: `"avx512"`, `"avx2"`, `"neon"`, `"scalar"`.
    pub fn name(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
            Level::Neon => "neon",
        }
    }

    /// Parses a level name (case-insensitive).
    pub fn parse(s: &str) -> Option<Level> {
        Level::ALL
            .into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(s.trim()))
    }

    /// Whether this binary has the level compiled in and this CPU can run it.
    pub fn is_supported(self) -> bool {
        Kernels::for_level(self).is_some()
    }
}

/// One level's kernels. Obtain it with [`Kernels::active`] (the process-wide
/// choice) or [`Kernels::for_level`] (e.g. to benchmark or test a level).
///
/// Length convention: the methods panic when the two slices differ in length,
/// like the free functions of the crate root.
#[derive(Clone, Copy)]
pub struct Kernels {
    pub(crate) level: Level,
    pub(crate) dot: fn(&[f32], &[f32]) -> f32,
    pub(crate) l2_sq: fn(&[f32], &[f32]) -> f32,
    pub(crate) norm_sq: fn(&[f32]) -> f32,
    pub(crate) cosine: fn(&[f32], &[f32]) -> f32,
    pub(crate) hamming: fn(&[u8], &[u8]) -> u32,
    pub(crate) jaccard: fn(&[u8], &[u8]) -> f32,
    /// `hamming` as `f32` (the [`crate::BinaryMetric::Hamming`] score).
    pub(crate) hamming_f32: fn(&[u8], &[u8]) -> f32,
    pub(crate) gemm: Gemm,
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernels")
            .field("level", &self.level)
            .finish()
    }
}

static SCALAR: Kernels = Kernels {
    level: Level::Scalar,
    dot: crate::scalar::dot,
    l2_sq: crate::scalar::l2_sq,
    norm_sq: crate::scalar::norm_sq,
    cosine: crate::scalar::cosine,
    hamming: crate::scalar::hamming,
    jaccard: crate::scalar::jaccard,
    hamming_f32: crate::binary::hamming_f32_portable,
    gemm: Gemm {
        rb: 4,
        ql: 8,
        kernel: scalar_micro,
    },
};

fn scalar_micro(m: &mut Micro<'_>) {
    m.check(4, 8);
    crate::scalar::micro::<4, 8>(m)
}

static ACTIVE: OnceLock<&'static Kernels> = OnceLock::new();

impl Kernels {
    /// The kernels chosen for this process: the best supported level, or the
    /// one named by `QUIVER_SIMD` if that level is supported here. Decided on
    /// first use and cached.
    #[inline]
    pub fn active() -> &'static Kernels {
        ACTIVE.get_or_init(choose)
    }

    /// The kernels of `level`, or `None` if it is not compiled in or the CPU
    /// lacks a required feature.
    pub fn for_level(level: Level) -> Option<&'static Kernels> {
        match level {
            Level::Scalar => Some(&SCALAR),
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => crate::avx512::table(),
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => crate::avx2::table(),
            #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
            Level::Neon => crate::neon::table(),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// This table's level.
    pub fn level(&self) -> Level {
        self.level
    }

    /// See [`crate::dot`].
    #[inline]
    pub fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "dot: length mismatch");
        (self.dot)(a, b)
    }

    /// See [`crate::l2_sq`].
    #[inline]
    pub fn l2_sq(&self, a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "l2_sq: length mismatch");
        (self.l2_sq)(a, b)
    }

    /// See [`crate::norm_sq`].
    #[inline]
    pub fn norm_sq(&self, a: &[f32]) -> f32 {
        (self.norm_sq)(a)
    }

    /// See [`crate::cosine`].
    #[inline]
    pub fn cosine(&self, a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "cosine: length mismatch");
        (self.cosine)(a, b)
    }

    /// See [`crate::hamming`].
    #[inline]
    pub fn hamming(&self, a: &[u8], b: &[u8]) -> u32 {
        assert_eq!(a.len(), b.len(), "hamming: length mismatch");
        (self.hamming)(a, b)
    }

    /// See [`crate::jaccard`].
    #[inline]
    pub fn jaccard(&self, a: &[u8], b: &[u8]) -> f32 {
        assert_eq!(a.len(), b.len(), "jaccard: length mismatch");
        (self.jaccard)(a, b)
    }
}

fn best() -> &'static Kernels {
    Level::ALL
        .into_iter()
        .find_map(Kernels::for_level)
        .unwrap_or(&SCALAR)
}

fn choose() -> &'static Kernels {
    match std::env::var(ENV_VAR) {
        Ok(v) => match Level::parse(&v) {
            Some(level) => Kernels::for_level(level).unwrap_or_else(best),
            None => best(),
        },
        Err(_) => best(),
    }
}
