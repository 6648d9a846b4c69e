//! `y = x W^T` for the linear layers on x86-64 CPUs with AVX2 and FMA (detected at run time).
//!
//! matrixmultiply's AVX2 kernel is 8 x 8 with in-register permutes and re-packs both operands
//! on every call. Here the weights (`[out, in]`, PyTorch's layout) are packed once at load into
//! 16-output panels, `panel[p][k][j] = W[16 p + j][k]`, and a 6 x 16 kernel keeps 12
//! accumulators in registers: per step of `k` it loads 16 weights (two vectors), broadcasts 6
//! activations and issues 12 FMAs. Loops: `k` in blocks of `KC` (the whole inner dimension of
//! MiniLM's layers, so each output is one in-order FMA chain); rows of `x` in blocks of `MC`,
//! copied into 6-row slivers (`k`-major, one sequential stream for the kernel) that stay in
//! L1 / L2 while every weight panel (streamed from L2 / L3) passes over them.
//!
//! Without AVX2 + FMA (or on other architectures) `available` is false and the caller keeps the
//! plain layout and matrixmultiply.

/// Outputs per panel (two AVX vectors).
pub const NR: usize = 16;
/// Rows of `x` per kernel call.
#[cfg(target_arch = "x86_64")]
const MR: usize = 6;
/// Inner-dimension block (a 6-row sliver of it is 36 KB).
#[cfg(target_arch = "x86_64")]
const KC: usize = 1536;
/// Rows of `x` per block (a multiple of `MR`).
#[cfg(target_arch = "x86_64")]
const MC: usize = 48;

/// Whether this CPU runs the packed kernel.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Pack `w` (`n x k`, row-major, `n` a multiple of `NR`) into panels for `matmul`.
pub fn pack(w: &[f32], n: usize, k: usize) -> Vec<f32> {
    assert!(n.is_multiple_of(NR) && w.len() == n * k, "pack: bad shape");
    let mut out = vec![0.0f32; n * k];
    for p in 0..n / NR {
        for kk in 0..k {
            for j in 0..NR {
                out[(p * k + kk) * NR + j] = w[(p * NR + j) * k + kk];
            }
        }
    }
    out
}

/// `y (m x n) = x (m x k) W^T`, with `packed = pack(W, n, k)`. Panics unless `available()` and
/// the lengths match.
pub fn matmul(x: &[f32], m: usize, k: usize, packed: &[f32], n: usize, y: &mut [f32]) {
    assert!(available(), "gemm::matmul needs AVX2 and FMA");
    assert!(
        x.len() == m * k && packed.len() == n * k && y.len() == m * n && n.is_multiple_of(NR),
        "gemm::matmul: bad shapes"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has AVX2 and FMA and the lengths are the ones `x86::matmul` requires (both
    // asserted above).
    unsafe {
        x86::matmul(x, m, k, packed, n, y)
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{KC, MC, MR, NR};

    /// # Safety
    /// The CPU must have AVX2 and FMA; `x.len() == m * k`, `packed.len() == n * k`,
    /// `y.len() == m * n` and `n % NR == 0`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn matmul(x: &[f32], m: usize, k: usize, packed: &[f32], n: usize, y: &mut [f32]) {
        // The current block of x, `MC x KC`, as `MR`-row slivers: `apack[s][kk][i]` is
        // x[ic + s MR + i][pc + kk] (zero past the last row).
        let mut apack = vec![0.0f32; MC * KC.min(k)];
        let (bp, yp) = (packed.as_ptr(), y.as_mut_ptr());
        let mut pc = 0;
        while pc < k {
            let kc = KC.min(k - pc);
            let first = pc == 0;
            let mut ic = 0;
            while ic < m {
                let mc = MC.min(m - ic);
                let slivers = mc.div_ceil(MR);
                for s in 0..slivers {
                    let sliver = &mut apack[s * MR * kc..(s + 1) * MR * kc];
                    for i in 0..MR {
                        let r = ic + s * MR + i;
                        if r < ic + mc {
                            let row = &x[r * k + pc..r * k + pc + kc];
                            for (kk, &v) in row.iter().enumerate() {
                                sliver[kk * MR + i] = v;
                            }
                        } else {
                            for kk in 0..kc {
                                sliver[kk * MR + i] = 0.0;
                            }
                        }
                    }
                }
                for p in 0..n / NR {
                    // SAFETY: panel p, rows pc .. pc + kc: elements (p k + pc) NR .. (p k + pc +
                    // kc) NR <= n k (p < n / NR, pc + kc <= k).
                    let b = unsafe { bp.add((p * k + pc) * NR) };
                    for s in 0..slivers {
                        let ir = ic + s * MR;
                        let rows = MR.min(ic + mc - ir);
                        let a = apack[s * MR * kc..].as_ptr();
                        // SAFETY: sliver s holds kc x MR values; rows ir .. ir + rows <= m of y,
                        // columns p NR .. (p + 1) NR <= n: in bounds. y is borrowed mutably, so
                        // it does not alias packed or apack.
                        unsafe {
                            let c = yp.add(ir * n + p * NR);
                            kernel(kc, a, b, c, n, rows, first);
                        }
                    }
                }
                ic += mc;
            }
            pc += kc;
        }
    }

    /// `C[i][j] (=|+=) sum_kk A[kk][i] B[kk][j]` for `i < rows <= MR`, `j < NR`, `kk < kc`.
    ///
    /// # Safety
    /// AVX2 and FMA; `a` addresses `kc x MR` values, `b` `kc x NR` values, `c` `rows` rows of
    /// `NR` values `ldc` apart, not overlapping `a` or `b`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn kernel(
        kc: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
        rows: usize,
        overwrite: bool,
    ) {
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        for kk in 0..kc {
            // SAFETY: kk < kc and i < MR keep every address inside the ranges the caller vouches
            // for.
            unsafe {
                let b0 = _mm256_loadu_ps(b.add(kk * NR));
                let b1 = _mm256_loadu_ps(b.add(kk * NR + 8));
                for (i, acc) in acc.iter_mut().enumerate() {
                    let av = _mm256_broadcast_ss(&*a.add(kk * MR + i));
                    acc[0] = _mm256_fmadd_ps(av, b0, acc[0]);
                    acc[1] = _mm256_fmadd_ps(av, b1, acc[1]);
                }
            }
        }
        for (i, acc) in acc.iter().enumerate().take(rows) {
            // SAFETY: row i < rows of c, NR values: inside the range the caller vouches for.
            unsafe {
                let c = c.add(i * ldc);
                if overwrite {
                    _mm256_storeu_ps(c, acc[0]);
                    _mm256_storeu_ps(c.add(8), acc[1]);
                } else {
                    _mm256_storeu_ps(c, _mm256_add_ps(_mm256_loadu_ps(c), acc[0]));
                    _mm256_storeu_ps(c.add(8), _mm256_add_ps(_mm256_loadu_ps(c.add(8)), acc[1]));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_matmul_matches_naive() {
        if !available() {
            eprintln!("skipped: no AVX2 + FMA");
            return;
        }
        // k crosses a KC block, m covers every edge kernel and crosses an MC block.
        let (k, n) = (300, 32);
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 13) % 17) as f32 * 0.1 - 0.8)
            .collect();
        let packed = pack(&w, n, k);
        for m in [1, 2, 3, 4, 5, 6, 7, 13, 80] {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7) % 11) as f32 * 0.2 - 1.0)
                .collect();
            let mut y = vec![f32::NAN; m * n];
            matmul(&x, m, k, &packed, n, &mut y);
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k)
                        .map(|t| x[i * k + t] as f64 * w[j * k + t] as f64)
                        .sum();
                    assert!(
                        (y[i * n + j] as f64 - want).abs() < 1e-3,
                        "m {m} ({i}, {j})"
                    );
                }
            }
        }
    }
}
