//! The few kernels this crate adds to `quiver-simd`: the asymmetric SQ8 and
//! SQ4 dot products (`f32` query x `u8` / packed 4-bit codes, layouts in
//! `sq`), chosen once per process by CPU feature (AVX-512F, AVX2+FMA,
//! scalar), and cache prefetching.
//!
//! `QUIVER_SIMD=scalar` (read by `quiver-simd`) also forces the scalar code
//! here, so one switch gives a fully scalar run for comparisons.

use std::sync::OnceLock;

/// `sum q[i] * c[i]` over `min(q.len(), c.len())` elements.
pub(crate) type DotU8 = fn(&[f32], &[u8]) -> f32;

static DOT_U8: OnceLock<(DotU8, DotU8)> = OnceLock::new();

/// The dispatched SQ8 dot product.
#[inline]
pub(crate) fn dot_u8_fn() -> DotU8 {
    DOT_U8.get_or_init(choose).0
}

/// The dispatched dot product for `bits` (8, or 4: `q` holds `2 * c.len()`
/// values, the SQ4 layout of `sq`).
#[inline]
pub(crate) fn dot_fn(bits: u32) -> DotU8 {
    let f = DOT_U8.get_or_init(choose);
    if bits == 4 {
        f.1
    } else {
        f.0
    }
}

fn choose() -> (DotU8, DotU8) {
    if quiver_simd::active_level() == "scalar" {
        return (dot_u8_scalar, dot_u4_scalar);
    }
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        return (x86::dot_u8_avx512, x86::dot_u4_avx512);
    }
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        return (x86::dot_u8_avx2, x86::dot_u4_avx2);
    }
    (dot_u8_scalar, dot_u4_scalar)
}

/// Reference SQ4 dot product: byte `j` of `c` holds the values of `q[j]`
/// (low nibble) and `q[j + c.len()]` (high nibble).
pub(crate) fn dot_u4_scalar(q: &[f32], c: &[u8]) -> f32 {
    let half = c.len().min(q.len() / 2);
    let (lo, hi) = (&q[..half], &q[c.len()..c.len() + half]);
    let mut s = [0.0f32; 2];
    for j in 0..half {
        s[0] += lo[j] * (c[j] & 0x0F) as f32;
        s[1] += hi[j] * (c[j] >> 4) as f32;
    }
    s[0] + s[1]
}

/// Reference implementation (also the tail of the SIMD versions).
pub(crate) fn dot_u8_scalar(q: &[f32], c: &[u8]) -> f32 {
    let mut s = [0.0f32; 4];
    let n = q.len().min(c.len());
    let (q4, c4) = (q[..n].chunks_exact(4), c[..n].chunks_exact(4));
    let (qr, cr) = (q4.remainder(), c4.remainder());
    for (a, b) in q4.zip(c4) {
        for j in 0..4 {
            s[j] += a[j] * b[j] as f32;
        }
    }
    let mut t = (s[0] + s[1]) + (s[2] + s[3]);
    for (a, b) in qr.iter().zip(cr) {
        t += a * *b as f32;
    }
    t
}

/// Hints the CPU to load the cache line holding `p` (no-op off x86_64).
/// Never faults, whatever the address.
#[inline(always)]
pub(crate) fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` is SSE (baseline on x86_64) and a prefetch of
    // any address, valid or not, has no architectural effect.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Prefetches every cache line overlapping `[p, p + bytes)`.
#[inline(always)]
pub(crate) fn prefetch_range(p: *const u8, bytes: usize) {
    if bytes == 0 {
        return;
    }
    let first = (p as usize) & !63;
    let end = (p as usize).wrapping_add(bytes);
    let mut a = first;
    while a < end {
        prefetch(p.wrapping_add(a.wrapping_sub(p as usize)));
        a += 64;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::*;

    #[cfg(target_arch = "x86_64")]
    pub(super) fn dot_u8_avx512(q: &[f32], c: &[u8]) -> f32 {
        // SAFETY: selected only after `is_x86_feature_detected!("avx512f")`.
        unsafe { dot_u8_avx512_impl(q, c) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn dot_u8_avx512_impl(q: &[f32], c: &[u8]) -> f32 {
        let n = q.len().min(c.len());
        let (pq, pc) = (q.as_ptr(), c.as_ptr());
        let mut i = 0;
        // SAFETY: every load reads [i, i + 16) (or + 64) with that end <= n,
        // within both slices.
        let mut t = unsafe {
            let mut a0 = _mm512_setzero_ps();
            let mut a1 = _mm512_setzero_ps();
            let mut a2 = _mm512_setzero_ps();
            let mut a3 = _mm512_setzero_ps();
            macro_rules! step {
                ($acc:ident, $off:expr) => {{
                    let b = _mm_loadu_si128(pc.add(i + $off) as *const __m128i);
                    let f = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b));
                    $acc = _mm512_fmadd_ps(_mm512_loadu_ps(pq.add(i + $off)), f, $acc);
                }};
            }
            while i + 64 <= n {
                step!(a0, 0);
                step!(a1, 16);
                step!(a2, 32);
                step!(a3, 48);
                i += 64;
            }
            while i + 16 <= n {
                step!(a0, 0);
                i += 16;
            }
            _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)))
        };
        if i < n {
            t += super::dot_u8_scalar(&q[i..n], &c[i..n]);
        }
        t
    }

    #[cfg(target_arch = "x86_64")]
    pub(super) fn dot_u4_avx512(q: &[f32], c: &[u8]) -> f32 {
        // SAFETY: selected only after `is_x86_feature_detected!("avx512f")`.
        unsafe { dot_u4_avx512_impl(q, c) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn dot_u4_avx512_impl(q: &[f32], c: &[u8]) -> f32 {
        let half = c.len();
        if q.len() < 2 * half {
            return super::dot_u4_scalar(q, c);
        }
        let (pq, pc) = (q.as_ptr(), c.as_ptr());
        let mut j = 0;
        // SAFETY: each step reads bytes [j, j + 16) of `c` and values
        // [j, j + 16) and [half + j, half + j + 16) of `q`, with j + 16 <= half
        // and q.len() >= 2 * half.
        let mut t = unsafe {
            let mask = _mm512_set1_epi32(0x0F);
            let mut a0 = _mm512_setzero_ps();
            let mut a1 = _mm512_setzero_ps();
            let mut a2 = _mm512_setzero_ps();
            let mut a3 = _mm512_setzero_ps();
            while j + 32 <= half {
                let w = _mm512_cvtepu8_epi32(_mm_loadu_si128(pc.add(j) as *const __m128i));
                let lo = _mm512_cvtepi32_ps(_mm512_and_si512(w, mask));
                let hi = _mm512_cvtepi32_ps(_mm512_srli_epi32::<4>(w));
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(pq.add(j)), lo, a0);
                a1 = _mm512_fmadd_ps(_mm512_loadu_ps(pq.add(half + j)), hi, a1);
                let w = _mm512_cvtepu8_epi32(_mm_loadu_si128(pc.add(j + 16) as *const __m128i));
                let lo = _mm512_cvtepi32_ps(_mm512_and_si512(w, mask));
                let hi = _mm512_cvtepi32_ps(_mm512_srli_epi32::<4>(w));
                a2 = _mm512_fmadd_ps(_mm512_loadu_ps(pq.add(j + 16)), lo, a2);
                a3 = _mm512_fmadd_ps(_mm512_loadu_ps(pq.add(half + j + 16)), hi, a3);
                j += 32;
            }
            while j + 16 <= half {
                let w = _mm512_cvtepu8_epi32(_mm_loadu_si128(pc.add(j) as *const __m128i));
                let lo = _mm512_cvtepi32_ps(_mm512_and_si512(w, mask));
                let hi = _mm512_cvtepi32_ps(_mm512_srli_epi32::<4>(w));
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(pq.add(j)), lo, a0);
                a1 = _mm512_fmadd_ps(_mm512_loadu_ps(pq.add(half + j)), hi, a1);
                j += 16;
            }
            _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)))
        };
        for i in j..half {
            t += q[i] * (c[i] & 0x0F) as f32 + q[half + i] * (c[i] >> 4) as f32;
        }
        t
    }

    pub(super) fn dot_u4_avx2(q: &[f32], c: &[u8]) -> f32 {
        // SAFETY: selected only after checking AVX2 and FMA.
        unsafe { dot_u4_avx2_impl(q, c) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_u4_avx2_impl(q: &[f32], c: &[u8]) -> f32 {
        let half = c.len();
        if q.len() < 2 * half {
            return super::dot_u4_scalar(q, c);
        }
        let (pq, pc) = (q.as_ptr(), c.as_ptr());
        let mut j = 0;
        // SAFETY: each step reads bytes [j, j + 8) of `c` and values [j, j + 8)
        // and [half + j, half + j + 8) of `q`, with j + 8 <= half.
        let mut t = unsafe {
            let mask = _mm256_set1_epi32(0x0F);
            let mut a0 = _mm256_setzero_ps();
            let mut a1 = _mm256_setzero_ps();
            while j + 8 <= half {
                let w = _mm256_cvtepu8_epi32(_mm_loadl_epi64(pc.add(j) as *const __m128i));
                let lo = _mm256_cvtepi32_ps(_mm256_and_si256(w, mask));
                let hi = _mm256_cvtepi32_ps(_mm256_srli_epi32::<4>(w));
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(pq.add(j)), lo, a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(pq.add(half + j)), hi, a1);
                j += 8;
            }
            let s = _mm256_add_ps(a0, a1);
            let h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps::<1>(s));
            let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
            let h = _mm_add_ss(h, _mm_shuffle_ps::<1>(h, h));
            _mm_cvtss_f32(h)
        };
        for i in j..half {
            t += q[i] * (c[i] & 0x0F) as f32 + q[half + i] * (c[i] >> 4) as f32;
        }
        t
    }

    pub(super) fn dot_u8_avx2(q: &[f32], c: &[u8]) -> f32 {
        // SAFETY: selected only after checking AVX2 and FMA.
        unsafe { dot_u8_avx2_impl(q, c) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_u8_avx2_impl(q: &[f32], c: &[u8]) -> f32 {
        let n = q.len().min(c.len());
        let (pq, pc) = (q.as_ptr(), c.as_ptr());
        let mut i = 0;
        // SAFETY: every load reads [i, i + 8) (or + 32) with that end <= n,
        // within both slices (`_mm_loadl_epi64` reads 8 bytes).
        let mut t = unsafe {
            let mut a0 = _mm256_setzero_ps();
            let mut a1 = _mm256_setzero_ps();
            let mut a2 = _mm256_setzero_ps();
            let mut a3 = _mm256_setzero_ps();
            macro_rules! step {
                ($acc:ident, $off:expr) => {{
                    let b = _mm_loadl_epi64(pc.add(i + $off) as *const __m128i);
                    let f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b));
                    $acc = _mm256_fmadd_ps(_mm256_loadu_ps(pq.add(i + $off)), f, $acc);
                }};
            }
            while i + 32 <= n {
                step!(a0, 0);
                step!(a1, 8);
                step!(a2, 16);
                step!(a3, 24);
                i += 32;
            }
            while i + 8 <= n {
                step!(a0, 0);
                i += 8;
            }
            let s = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
            let h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps::<1>(s));
            let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
            let h = _mm_add_ss(h, _mm_shuffle_ps::<1>(h, h));
            _mm_cvtss_f32(h)
        };
        if i < n {
            t += super::dot_u8_scalar(&q[i..n], &c[i..n]);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_u8_levels_agree() {
        let mut fns: Vec<DotU8> = vec![dot_u8_fn()];
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            fns.push(x86::dot_u8_avx2);
        }
        for n in [0usize, 1, 7, 8, 15, 16, 17, 63, 64, 65, 100, 384, 385] {
            let q: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let c: Vec<u8> = (0..n).map(|i| (i * 97 % 256) as u8).collect();
            let r = dot_u8_scalar(&q, &c);
            let bound = 1e-4
                * q.iter()
                    .zip(&c)
                    .map(|(a, b)| (a * *b as f32).abs())
                    .sum::<f32>()
                + 1e-6;
            for f in &fns {
                assert!((f(&q, &c) - r).abs() <= bound, "n={n}");
            }
        }
        let mut fns: Vec<DotU8> = vec![dot_fn(4)];
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            fns.push(x86::dot_u4_avx2);
        }
        for half in [0usize, 1, 7, 8, 15, 16, 17, 31, 32, 33, 192, 200] {
            let q: Vec<f32> = (0..2 * half).map(|i| (i as f32 * 0.37).sin()).collect();
            let c: Vec<u8> = (0..half).map(|i| (i * 97 % 256) as u8).collect();
            let r = dot_u4_scalar(&q, &c);
            let bound = 1e-4 * q.iter().map(|a| a.abs() * 15.0).sum::<f32>() + 1e-6;
            for f in &fns {
                assert!((f(&q, &c) - r).abs() <= bound, "half={half}");
            }
        }
    }
}
