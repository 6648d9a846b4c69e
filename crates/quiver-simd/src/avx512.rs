//! AVX-512F kernels (x86_64), selected only when
//! `is_x86_feature_detected!("avx512f")`.
//!
//! Every `unsafe fn` here carries `#[target_feature(enable = "avx512f")]`;
//! the safe wrappers are private and reachable only through [`table`], which
//! checks the CPU first.

use core::arch::x86_64::*;

use crate::dispatch::{Kernels, Level};
use crate::gemm::{Gemm, Micro};

/// Micro-tile: 12 base rows (broadcast) x 32 queries (two zmm registers).
/// 24 accumulators + 2 query vectors + 1 broadcast fit the 32 zmm registers.
/// (Measured on Zen 5: 8x48, 6x64 and 14x32 are within a few percent; 12x32
/// keeps the query padding and the small-batch waste low.)
const RB: usize = 12;
const QL: usize = 32;

const BASE: Kernels = Kernels {
    level: Level::Avx512,
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

/// The AVX-512 level with the scalar-`popcnt` binary kernels.
static TABLE: Kernels = BASE;

/// The AVX-512 level with the `VPOPCNTDQ` binary kernels (64 bytes per
/// instruction). Measured here (AMD EPYC, one thread) against `popcnt` per
/// 64-bit word, per row scored in a sequential scan / at random rows of a
/// 64 MiB matrix: 256 bits about the same (3.4 vs 3.6 ns, 33 vs 38 ns),
/// 512 bits 1.4x / 1.6x, 1024 bits 1.6x / 2.1x, 2048 bits 1.6x / 3x. End
/// to end on 100k x 1024-bit rows: exact search 1.57x, HNSW 1.2-1.35x QPS
/// (`examples/bench_binary.rs` in quiver-index, `QUIVER_SIMD=avx2` vs default).
static TABLE_VPOPCNT: Kernels = Kernels {
    hamming: crate::binary::vpopcnt::hamming,
    jaccard: crate::binary::vpopcnt::jaccard,
    hamming_f32: crate::binary::vpopcnt::hamming_f32,
    ..BASE
};

/// The AVX-512 table, or `None` if this CPU lacks AVX-512F (or AVX2/FMA/POPCNT,
/// which the shared helpers use). Its binary kernels use `VPOPCNTDQ` when
/// the CPU also has AVX512_VPOPCNTDQ and AVX512BW (masked byte loads for the
/// tail); the scores are the same integers either way.
pub(crate) fn table() -> Option<&'static Kernels> {
    let ok = is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("popcnt");
    if !ok {
        return None;
    }
    if is_x86_feature_detected!("avx512vpopcntdq") && is_x86_feature_detected!("avx512bw") {
        Some(&TABLE_VPOPCNT)
    } else {
        Some(&TABLE)
    }
}

/// Mask with the low `r` (< 16) lanes set.
#[inline(always)]
fn tail_mask(r: usize) -> __mmask16 {
    ((1u32 << r) - 1) as __mmask16
}

#[target_feature(enable = "avx512f")]
unsafe fn dot_impl(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    // SAFETY: every full load reads [i, i + 16) with i + 16 <= n, and the tail
    // load is masked to the lanes below n (masked-off lanes are not accessed).
    unsafe {
        let mut s0 = _mm512_setzero_ps();
        let mut s1 = _mm512_setzero_ps();
        let mut s2 = _mm512_setzero_ps();
        let mut s3 = _mm512_setzero_ps();
        let mut i = 0;
        while i + 64 <= n {
            s0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), s0);
            s1 = _mm512_fmadd_ps(
                _mm512_loadu_ps(pa.add(i + 16)),
                _mm512_loadu_ps(pb.add(i + 16)),
                s1,
            );
            s2 = _mm512_fmadd_ps(
                _mm512_loadu_ps(pa.add(i + 32)),
                _mm512_loadu_ps(pb.add(i + 32)),
                s2,
            );
            s3 = _mm512_fmadd_ps(
                _mm512_loadu_ps(pa.add(i + 48)),
                _mm512_loadu_ps(pb.add(i + 48)),
                s3,
            );
            i += 64;
        }
        while i + 16 <= n {
            s0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), s0);
            i += 16;
        }
        if i < n {
            let m = tail_mask(n - i);
            let x = _mm512_maskz_loadu_ps(m, pa.add(i));
            let y = _mm512_maskz_loadu_ps(m, pb.add(i));
            s1 = _mm512_fmadd_ps(x, y, s1);
        }
        let s = _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3));
        _mm512_reduce_add_ps(s)
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn l2_sq_impl(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    // SAFETY: as in `dot_impl`: full loads stay below n, the tail is masked.
    unsafe {
        let mut s = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        while i + 64 <= n {
            for (u, acc) in s.iter_mut().enumerate() {
                let d = _mm512_sub_ps(
                    _mm512_loadu_ps(pa.add(i + 16 * u)),
                    _mm512_loadu_ps(pb.add(i + 16 * u)),
                );
                *acc = _mm512_fmadd_ps(d, d, *acc);
            }
            i += 64;
        }
        while i + 16 <= n {
            let d = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
            s[0] = _mm512_fmadd_ps(d, d, s[0]);
            i += 16;
        }
        if i < n {
            let m = tail_mask(n - i);
            let d = _mm512_sub_ps(
                _mm512_maskz_loadu_ps(m, pa.add(i)),
                _mm512_maskz_loadu_ps(m, pb.add(i)),
            );
            s[1] = _mm512_fmadd_ps(d, d, s[1]);
        }
        let t = _mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3]));
        _mm512_reduce_add_ps(t)
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn norm_sq_impl(a: &[f32]) -> f32 {
    let n = a.len();
    let pa = a.as_ptr();
    // SAFETY: as in `dot_impl`: full loads stay below n, the tail is masked.
    unsafe {
        let mut s = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        while i + 64 <= n {
            for (u, acc) in s.iter_mut().enumerate() {
                let x = _mm512_loadu_ps(pa.add(i + 16 * u));
                *acc = _mm512_fmadd_ps(x, x, *acc);
            }
            i += 64;
        }
        while i + 16 <= n {
            let x = _mm512_loadu_ps(pa.add(i));
            s[0] = _mm512_fmadd_ps(x, x, s[0]);
            i += 16;
        }
        if i < n {
            let x = _mm512_maskz_loadu_ps(tail_mask(n - i), pa.add(i));
            s[1] = _mm512_fmadd_ps(x, x, s[1]);
        }
        let t = _mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3]));
        _mm512_reduce_add_ps(t)
    }
}

#[target_feature(enable = "avx512f")]
unsafe fn cosine_impl(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    // SAFETY: as in `dot_impl`: full loads stay below n, the tail is masked.
    let (d, na, nb) = unsafe {
        let z = _mm512_setzero_ps();
        let (mut d, mut na, mut nb) = ([z; 2], [z; 2], [z; 2]);
        let mut i = 0;
        while i + 32 <= n {
            for u in 0..2 {
                let x = _mm512_loadu_ps(pa.add(i + 16 * u));
                let y = _mm512_loadu_ps(pb.add(i + 16 * u));
                d[u] = _mm512_fmadd_ps(x, y, d[u]);
                na[u] = _mm512_fmadd_ps(x, x, na[u]);
                nb[u] = _mm512_fmadd_ps(y, y, nb[u]);
            }
            i += 32;
        }
        while i < n {
            let m = if i + 16 <= n {
                0xFFFF
            } else {
                tail_mask(n - i)
            };
            let x = _mm512_maskz_loadu_ps(m, pa.add(i));
            let y = _mm512_maskz_loadu_ps(m, pb.add(i));
            d[0] = _mm512_fmadd_ps(x, y, d[0]);
            na[0] = _mm512_fmadd_ps(x, x, na[0]);
            nb[0] = _mm512_fmadd_ps(y, y, nb[0]);
            i += 16;
        }
        (
            _mm512_reduce_add_ps(_mm512_add_ps(d[0], d[1])),
            _mm512_reduce_add_ps(_mm512_add_ps(na[0], na[1])),
            _mm512_reduce_add_ps(_mm512_add_ps(nb[0], nb[1])),
        )
    };
    crate::scalar::finish_cosine(d, na, nb)
}

/// The blocked-search micro-kernel: the `R x 16V` dot products of `R` base
/// rows (read in place, one broadcast per row and k) with `16V` packed
/// queries (`V` zmm per k), then `score = acc * scale[j] + bias[j]` and the
/// per-lane mask `score > thr[lane]` for each allowed row `j`.
#[target_feature(enable = "avx512f")]
unsafe fn micro_impl<const R: usize, const V: usize>(m: &mut Micro<'_>) {
    let dim = m.dim;
    let r = m.rows.as_ptr();
    let mut q = m.qp.as_ptr();
    // SAFETY: the safe wrapper checked rows.len() >= R*dim, qp.len() >= 16V*dim,
    // thr.len() >= 16V, scale/bias/masks.len() >= R and out.len() >= R*16V;
    // row j is read at j*dim + k with k < dim, q advances by 16V `dim` times.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        for k in 0..dim {
            let mut qv = [_mm512_setzero_ps(); V];
            for (v, x) in qv.iter_mut().enumerate() {
                *x = _mm512_loadu_ps(q.add(16 * v));
            }
            for (j, row) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_ps(*r.add(j * dim + k));
                for (a, &y) in row.iter_mut().zip(&qv) {
                    *a = _mm512_fmadd_ps(x, y, *a);
                }
            }
            q = q.add(16 * V);
        }
        let mut t = [_mm512_setzero_ps(); V];
        for (v, x) in t.iter_mut().enumerate() {
            *x = _mm512_loadu_ps(m.thr.as_ptr().add(16 * v));
        }
        let out = m.out.as_mut_ptr();
        for (j, row) in acc.iter().enumerate() {
            // All lanes if row j is allowed, none otherwise.
            let am = ((m.allow >> j) & 1).wrapping_neg() as __mmask16;
            let sc = _mm512_set1_ps(*m.scale.get_unchecked(j));
            let bi = _mm512_set1_ps(*m.bias.get_unchecked(j));
            let mut mask = 0u64;
            let mut s = [_mm512_setzero_ps(); V];
            for v in 0..V {
                s[v] = _mm512_fmadd_ps(row[v], sc, bi);
                let kv = _mm512_mask_cmp_ps_mask::<_CMP_GT_OQ>(am, s[v], t[v]);
                mask |= (kv as u64) << (16 * v);
            }
            *m.masks.get_unchecked_mut(j) = mask;
            if mask != 0 {
                for (v, x) in s.iter().enumerate() {
                    _mm512_storeu_ps(out.add(j * 16 * V + 16 * v), *x);
                }
            }
        }
    }
}

fn micro(m: &mut Micro<'_>) {
    m.check(RB, QL);
    // SAFETY: reachable only through `table()`, which checked avx512f; `check`
    // asserted every slice length the kernel relies on.
    unsafe { micro_impl::<RB, { QL / 16 }>(m) }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: reachable only through `table()`, which checked avx512f.
    unsafe { dot_impl(a, b) }
}

fn l2_sq(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: reachable only through `table()`, which checked avx512f.
    unsafe { l2_sq_impl(a, b) }
}

fn norm_sq(a: &[f32]) -> f32 {
    // SAFETY: reachable only through `table()`, which checked avx512f.
    unsafe { norm_sq_impl(a) }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: reachable only through `table()`, which checked avx512f.
    unsafe { cosine_impl(a, b) }
}
