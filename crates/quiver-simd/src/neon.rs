//! NEON kernels (aarch64). NEON is part of the aarch64 baseline, so this
//! module is compiled whenever `target_feature = "neon"` is on (the default
//! for aarch64 Linux/macOS targets) and the intrinsics need no run-time check.
//! The batch-search micro-kernel is the portable one (6 x 16), which the
//! compiler vectorises to NEON `fmla`.

use core::arch::aarch64::*;

use crate::dispatch::{Kernels, Level};
use crate::gemm::{Gemm, Micro};

const RB: usize = 6;
const QL: usize = 16;

static TABLE: Kernels = Kernels {
    level: Level::Neon,
    dot,
    l2_sq,
    norm_sq,
    cosine,
    hamming: crate::binary::hamming_portable,
    jaccard: crate::binary::jaccard_portable,
    hamming_f32: crate::binary::hamming_f32_portable,
    gemm: Gemm {
        rb: RB,
        ql: QL,
        kernel: micro,
    },
};

pub(crate) fn table() -> Option<&'static Kernels> {
    Some(&TABLE)
}

fn micro(m: &mut Micro<'_>) {
    m.check(RB, QL);
    crate::scalar::micro::<RB, QL>(m)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut i = 0;
    // SAFETY: every load reads [i, i + 4) with i + 4 <= n; neon is enabled
    // for the whole crate (module-level cfg).
    let s = unsafe {
        let mut s = [vdupq_n_f32(0.0); 4];
        while i + 16 <= n {
            for (u, acc) in s.iter_mut().enumerate() {
                *acc = vfmaq_f32(
                    *acc,
                    vld1q_f32(pa.add(i + 4 * u)),
                    vld1q_f32(pb.add(i + 4 * u)),
                );
            }
            i += 16;
        }
        while i + 4 <= n {
            s[0] = vfmaq_f32(s[0], vld1q_f32(pa.add(i)), vld1q_f32(pb.add(i)));
            i += 4;
        }
        vaddvq_f32(vaddq_f32(vaddq_f32(s[0], s[1]), vaddq_f32(s[2], s[3])))
    };
    s + crate::scalar::dot(&a[i..n], &b[i..n])
}

fn l2_sq(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut i = 0;
    // SAFETY: as in `dot`.
    let s = unsafe {
        let mut s = [vdupq_n_f32(0.0); 4];
        while i + 16 <= n {
            for (u, acc) in s.iter_mut().enumerate() {
                let d = vsubq_f32(vld1q_f32(pa.add(i + 4 * u)), vld1q_f32(pb.add(i + 4 * u)));
                *acc = vfmaq_f32(*acc, d, d);
            }
            i += 16;
        }
        while i + 4 <= n {
            let d = vsubq_f32(vld1q_f32(pa.add(i)), vld1q_f32(pb.add(i)));
            s[0] = vfmaq_f32(s[0], d, d);
            i += 4;
        }
        vaddvq_f32(vaddq_f32(vaddq_f32(s[0], s[1]), vaddq_f32(s[2], s[3])))
    };
    s + crate::scalar::l2_sq(&a[i..n], &b[i..n])
}

fn norm_sq(a: &[f32]) -> f32 {
    let n = a.len();
    let pa = a.as_ptr();
    let mut i = 0;
    // SAFETY: as in `dot`.
    let s = unsafe {
        let mut s = [vdupq_n_f32(0.0); 4];
        while i + 16 <= n {
            for (u, acc) in s.iter_mut().enumerate() {
                let x = vld1q_f32(pa.add(i + 4 * u));
                *acc = vfmaq_f32(*acc, x, x);
            }
            i += 16;
        }
        while i + 4 <= n {
            let x = vld1q_f32(pa.add(i));
            s[0] = vfmaq_f32(s[0], x, x);
            i += 4;
        }
        vaddvq_f32(vaddq_f32(vaddq_f32(s[0], s[1]), vaddq_f32(s[2], s[3])))
    };
    s + crate::scalar::norm_sq(&a[i..n])
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut i = 0;
    // SAFETY: as in `dot`.
    let (mut d, mut na, mut nb) = unsafe {
        let z = vdupq_n_f32(0.0);
        let (mut d, mut na, mut nb) = ([z; 2], [z; 2], [z; 2]);
        while i + 8 <= n {
            for u in 0..2 {
                let x = vld1q_f32(pa.add(i + 4 * u));
                let y = vld1q_f32(pb.add(i + 4 * u));
                d[u] = vfmaq_f32(d[u], x, y);
                na[u] = vfmaq_f32(na[u], x, x);
                nb[u] = vfmaq_f32(nb[u], y, y);
            }
            i += 8;
        }
        (
            vaddvq_f32(vaddq_f32(d[0], d[1])),
            vaddvq_f32(vaddq_f32(na[0], na[1])),
            vaddvq_f32(vaddq_f32(nb[0], nb[1])),
        )
    };
    for (x, y) in a[i..n].iter().zip(&b[i..n]) {
        d += x * y;
        na += x * x;
        nb += y * y;
    }
    crate::scalar::finish_cosine(d, na, nb)
}
