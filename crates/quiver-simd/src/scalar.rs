//! Scalar reference kernels.
//!
//! These are the numeric reference for every SIMD level: plain sequential
//! `f32` accumulation, written the obvious way. The SIMD kernels are checked
//! against them (within a relative tolerance, since they sum in a different
//! order). They are also the implementation of [`Level::Scalar`](crate::Level),
//! the level forced by `QUIVER_SIMD=scalar`.

/// Dot product `sum(a[i] * b[i])` over the common prefix of `a` and `b`.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Squared Euclidean distance `sum((a[i] - b[i])^2)`.
pub fn l2_sq(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = x - y;
            d * d
        })
        .sum()
}

/// Squared Euclidean norm `sum(a[i]^2)`.
pub fn norm_sq(a: &[f32]) -> f32 {
    a.iter().map(|x| x * x).sum()
}

/// Cosine similarity `dot / (|a| * |b|)`; `0.0` when either norm is zero.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut d, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        d += x * y;
        na += x * x;
        nb += y * y;
    }
    finish_cosine(d, na, nb)
}

/// Shared cosine epilogue: `dot / (sqrt(na) * sqrt(nb))`, `0.0` for a zero norm.
#[inline]
pub(crate) fn finish_cosine(dot: f32, na: f32, nb: f32) -> f32 {
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

/// Hamming distance: number of differing bits over the common prefix.
pub fn hamming(a: &[u8], b: &[u8]) -> u32 {
    crate::binary::hamming_portable(a, b)
}

/// Jaccard distance `1 - |a & b| / |a | b|`; `0.0` when both are all-zero.
pub fn jaccard(a: &[u8], b: &[u8]) -> f32 {
    crate::binary::jaccard_portable(a, b)
}

/// Portable micro-kernel for the blocked batch search (see `gemm::Micro`):
/// plain loops that the compiler may auto-vectorise for the baseline target.
pub(crate) fn micro<const RB: usize, const QL: usize>(m: &mut crate::gemm::Micro<'_>) {
    let dim = m.dim;
    let rows = &m.rows[..RB * dim];
    let qp = &m.qp[..QL * dim];
    let mut acc = [[0.0f32; QL]; RB];
    for (k, q) in qp.chunks_exact(QL).enumerate() {
        for (j, row) in acc.iter_mut().enumerate() {
            let x = rows[j * dim + k];
            for (a, &y) in row.iter_mut().zip(q) {
                *a = madd(x, y, *a);
            }
        }
    }
    let thr = &m.thr[..QL];
    for (j, row) in acc.iter().enumerate() {
        if m.allow & (1 << j) == 0 {
            m.masks[j] = 0;
            continue;
        }
        let (sc, bi) = (m.scale[j], m.bias[j]);
        let out = &mut m.out[j * QL..(j + 1) * QL];
        let mut mask = 0u64;
        for (l, (&a, o)) in row.iter().zip(out.iter_mut()).enumerate() {
            let s = madd(a, sc, bi);
            *o = s;
            if s > thr[l] {
                mask |= 1 << l;
            }
        }
        m.masks[j] = mask;
    }
}

#[cfg(target_arch = "aarch64")]
#[inline(always)]
fn madd(a: f32, b: f32, c: f32) -> f32 {
    a.mul_add(b, c)
}

#[cfg(not(target_arch = "aarch64"))]
#[inline(always)]
fn madd(a: f32, b: f32, c: f32) -> f32 {
    a * b + c
}
