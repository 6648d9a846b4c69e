//! AVX2 + FMA kernels (x86_64), selected when the CPU has AVX2, FMA and
//! POPCNT but not AVX-512F (or when `QUIVER_SIMD=avx2`).
//!
//! Every `unsafe fn` here carries `#[target_feature(enable = "avx2,fma")]`;
//! the safe wrappers are private and reachable only through [`table`], which
//! checks the CPU first.

use core::arch::x86_64::*;

use crate::dispatch::{Kernels, Level};
use crate::gemm::{Gemm, Micro};

/// Micro-tile: 6 base rows (broadcast) x 16 queries (two ymm registers).
/// 12 accumulators + 2 query vectors + 1 broadcast fit the 16 ymm registers.
const RB: usize = 6;
const QL: usize = 16;

static TABLE: Kernels = Kernels {
    level: Level::Avx2,
    dot,
    l2_sq,
    norm_sq,
    cosine,
    hamming: crate::binary::popcnt::hamming,
    jaccard: crate::binary::popcnt::jaccard,
    hamming_f32: crate::binary::popcnt::hamming_f32,
    gemm: Gemm {
        rb: RB,
        ql: QL,
        kernel: micro,
    },
};

/// The AVX2 table, or `None` if this CPU lacks AVX2, FMA or POPCNT.
pub(crate) fn table() -> Option<&'static Kernels> {
    let ok = is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("popcnt");
    ok.then_some(&TABLE)
}

/// Horizontal sum of the 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn hsum(v: __m256) -> f32 {
    // SAFETY: register-only intrinsics; the caller enabled avx2. (The block
    // is needed before Rust 1.87, where these intrinsics were `unsafe fn`s.)
    #[allow(unused_unsafe)]
    unsafe {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn dot_impl(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    // SAFETY: every load reads [i, i + 8) with i + 8 <= n; the tail below 8
    // elements goes through bounds-checked slice indexing.
    unsafe {
        let mut s = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (u, acc) in s.iter_mut().enumerate() {
                let x = _mm256_loadu_ps(pa.add(i + 8 * u));
                let y = _mm256_loadu_ps(pb.add(i + 8 * u));
                *acc = _mm256_fmadd_ps(x, y, *acc);
            }
            i += 32;
        }
        while i + 8 <= n {
            s[0] = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s[0]);
            i += 8;
        }
        let t = _mm256_add_ps(_mm256_add_ps(s[0], s[1]), _mm256_add_ps(s[2], s[3]));
        hsum(t) + crate::scalar::dot(&a[i..n], &b[i..n])
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn l2_sq_impl(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    // SAFETY: as in `dot_impl`.
    unsafe {
        let mut s = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (u, acc) in s.iter_mut().enumerate() {
                let d = _mm256_sub_ps(
                    _mm256_loadu_ps(pa.add(i + 8 * u)),
                    _mm256_loadu_ps(pb.add(i + 8 * u)),
                );
                *acc = _mm256_fmadd_ps(d, d, *acc);
            }
            i += 32;
        }
        while i + 8 <= n {
            let d = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
            s[0] = _mm256_fmadd_ps(d, d, s[0]);
            i += 8;
        }
        let t = _mm256_add_ps(_mm256_add_ps(s[0], s[1]), _mm256_add_ps(s[2], s[3]));
        hsum(t) + crate::scalar::l2_sq(&a[i..n], &b[i..n])
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn norm_sq_impl(a: &[f32]) -> f32 {
    let n = a.len();
    let pa = a.as_ptr();
    // SAFETY: as in `dot_impl`.
    unsafe {
        let mut s = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (u, acc) in s.iter_mut().enumerate() {
                let x = _mm256_loadu_ps(pa.add(i + 8 * u));
                *acc = _mm256_fmadd_ps(x, x, *acc);
            }
            i += 32;
        }
        while i + 8 <= n {
            let x = _mm256_loadu_ps(pa.add(i));
            s[0] = _mm256_fmadd_ps(x, x, s[0]);
            i += 8;
        }
        let t = _mm256_add_ps(_mm256_add_ps(s[0], s[1]), _mm256_add_ps(s[2], s[3]));
        hsum(t) + crate::scalar::norm_sq(&a[i..n])
    }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn cosine_impl(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    // SAFETY: as in `dot_impl`.
    let (mut d, mut na, mut nb, i) = unsafe {
        let z = _mm256_setzero_ps();
        let (mut d, mut na, mut nb) = ([z; 2], [z; 2], [z; 2]);
        let mut i = 0;
        while i + 16 <= n {
            for u in 0..2 {
                let x = _mm256_loadu_ps(pa.add(i + 8 * u));
                let y = _mm256_loadu_ps(pb.add(i + 8 * u));
                d[u] = _mm256_fmadd_ps(x, y, d[u]);
                na[u] = _mm256_fmadd_ps(x, x, na[u]);
                nb[u] = _mm256_fmadd_ps(y, y, nb[u]);
            }
            i += 16;
        }
        while i + 8 <= n {
            let x = _mm256_loadu_ps(pa.add(i));
            let y = _mm256_loadu_ps(pb.add(i));
            d[0] = _mm256_fmadd_ps(x, y, d[0]);
            na[0] = _mm256_fmadd_ps(x, x, na[0]);
            nb[0] = _mm256_fmadd_ps(y, y, nb[0]);
            i += 8;
        }
        (
            hsum(_mm256_add_ps(d[0], d[1])),
            hsum(_mm256_add_ps(na[0], na[1])),
            hsum(_mm256_add_ps(nb[0], nb[1])),
            i,
        )
    };
    for (x, y) in a[i..n].iter().zip(&b[i..n]) {
        d += x * y;
        na += x * x;
        nb += y * y;
    }
    crate::scalar::finish_cosine(d, na, nb)
}

/// The blocked-search micro-kernel (see `avx512::micro_impl` for the contract).
#[target_feature(enable = "avx2,fma")]
unsafe fn micro_impl(m: &mut Micro<'_>) {
    let dim = m.dim;
    let r = m.rows.as_ptr();
    let mut q = m.qp.as_ptr();
    // SAFETY: the safe wrapper checked rows.len() >= RB*dim, qp.len() >= QL*dim,
    // thr.len() >= QL, scale/bias/masks.len() >= RB and out.len() >= RB*QL;
    // row j is read at j*dim + k with k < dim, q advances by QL `dim` times.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 2]; RB];
        for k in 0..dim {
            let q0 = _mm256_loadu_ps(q);
            let q1 = _mm256_loadu_ps(q.add(8));
            for (j, row) in acc.iter_mut().enumerate() {
                let x = _mm256_broadcast_ss(&*r.add(j * dim + k));
                row[0] = _mm256_fmadd_ps(x, q0, row[0]);
                row[1] = _mm256_fmadd_ps(x, q1, row[1]);
            }
            q = q.add(QL);
        }
        let t0 = _mm256_loadu_ps(m.thr.as_ptr());
        let t1 = _mm256_loadu_ps(m.thr.as_ptr().add(8));
        let out = m.out.as_mut_ptr();
        for (j, row) in acc.iter().enumerate() {
            let am = ((m.allow >> j) & 1).wrapping_neg();
            let sc = _mm256_set1_ps(*m.scale.get_unchecked(j));
            let bi = _mm256_set1_ps(*m.bias.get_unchecked(j));
            let s0 = _mm256_fmadd_ps(row[0], sc, bi);
            let s1 = _mm256_fmadd_ps(row[1], sc, bi);
            let k0 = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(s0, t0)) as u32 as u64;
            let k1 = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(s1, t1)) as u32 as u64;
            let mask = (k0 | k1 << 8) & am;
            *m.masks.get_unchecked_mut(j) = mask;
            if mask != 0 {
                _mm256_storeu_ps(out.add(j * QL), s0);
                _mm256_storeu_ps(out.add(j * QL + 8), s1);
            }
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: reachable only through `table()`, which checked avx2 and fma.
    unsafe { dot_impl(a, b) }
}

fn l2_sq(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: reachable only through `table()`, which checked avx2 and fma.
    unsafe { l2_sq_impl(a, b) }
}

fn norm_sq(a: &[f32]) -> f32 {
    // SAFETY: reachable only through `table()`, which checked avx2 and fma.
    unsafe { norm_sq_impl(a) }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: reachable only through `table()`, which checked avx2 and fma.
    unsafe { cosine_impl(a, b) }
}

fn micro(m: &mut Micro<'_>) {
    m.check(RB, QL);
    // SAFETY: reachable only through `table()`, which checked avx2 and fma;
    // `check` asserted every slice length the kernel relies on.
    unsafe { micro_impl(m) }
}
