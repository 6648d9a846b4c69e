//! The BERT encoder forward pass (inference only, one text at a time, no padding).
//!
//! embeddings (word + position + token type 0) -> LayerNorm -> N x [self-attention (Q, K, V
//! projections, per-head softmax(Q K^T / sqrt(d)) V, output projection, residual, LayerNorm) ->
//! feed-forward (dense, exact-erf GELU, dense, residual, LayerNorm)]. Linear layers keep
//! PyTorch's `[out, in]` weights and multiply by their transpose through strides.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::gemm;
use crate::safetensors::Tensor;
use crate::{EmbedError, Result};

/// The fields of `config.json` the forward pass needs.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    pub vocab_size: usize,
}

fn default_max_pos() -> usize {
    512
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}

struct Linear {
    /// `[out, in]` as loaded, or `gemm::pack`ed when `packed`.
    w: Vec<f32>,
    b: Vec<f32>,
    out: usize,
    inp: usize,
    packed: bool,
}

struct Norm {
    g: Vec<f32>,
    b: Vec<f32>,
}

struct Layer {
    /// Q, K and V stacked into one `[3 hidden, hidden]` projection: one product per layer.
    qkv: Linear,
    o: Linear,
    ln1: Norm,
    up: Linear,
    down: Linear,
    ln2: Norm,
}

pub struct Bert {
    pub config: BertConfig,
    word: Vec<f32>,
    pos: Vec<f32>,
    typ: Vec<f32>,
    ln: Norm,
    layers: Vec<Layer>,
}

/// `C (m x n) = alpha A (m x k) * B (k x n)` with explicit row / column strides,
/// bounds-checked.
#[allow(clippy::too_many_arguments)]
fn gemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    c: &mut [f32],
    (rsc, csc): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(
        k == 0 || last(m, k, rsa, csa) < a.len(),
        "gemm: A out of bounds"
    );
    assert!(
        k == 0 || last(k, n, rsb, csb) < b.len(),
        "gemm: B out of bounds"
    );
    assert!(last(m, n, rsc, csc) < c.len(), "gemm: C out of bounds");
    // SAFETY: the asserts above keep every element the strides address inside the three slices,
    // and `c` is borrowed mutably while `a` and `b` are shared, so they do not alias.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            0.0,
            c.as_mut_ptr(),
            rsc as isize,
            csc as isize,
        );
    }
}

/// Defines an element-wise kernel compiled twice: for AVX2 (picked at run time when the CPU has
/// it) and for the baseline target. The bodies use no fused multiply-add and no reassociation,
/// so both builds give bit-identical results; AVX2 only lets LLVM use 8-wide vectors.
macro_rules! kernel {
    ($(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn inner($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) {
                    inner($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: `avx2` needs only the AVX2 instruction set, which the CPU was just
                    // checked to have.
                    return unsafe { avx2($($arg),*) };
                }
            }
            inner($($arg),*)
        }
    };
}

/// Lanes of the explicit reductions below (8 x f32 = one AVX2 register).
const LANES: usize = 8;

/// Largest value of `x` (`-inf` when empty), in `LANES` independent lanes.
#[inline(always)]
fn max_of(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = if v > *a { v } else { *a };
        }
    }
    for (a, &v) in acc.iter_mut().zip(rest) {
        *a = if v > *a { v } else { *a };
    }
    acc.into_iter().fold(f32::NEG_INFINITY, f32::max)
}

/// Sum of `x`, in `LANES` independent lanes.
#[inline(always)]
fn sum_of(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    for (a, &v) in acc.iter_mut().zip(rest) {
        *a += v;
    }
    acc.into_iter().sum()
}

/// `sum (x - mean)^p` (`p` 1 or 2) in f64, in `LANES` independent lanes.
#[inline(always)]
fn moment_f64(x: &[f32], mean: f64, square: bool) -> f64 {
    let mut acc = [0.0f64; LANES];
    let term = |v: f32| {
        let d = v as f64 - mean;
        if square {
            d * d
        } else {
            d
        }
    };
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += term(v);
        }
    }
    for (a, &v) in acc.iter_mut().zip(rest) {
        *a += term(v);
    }
    acc.into_iter().sum()
}

/// `e^x` for `x <= 0` (as in softmax; larger inputs also work up to about 88), within 2 ulp:
/// Cody-Waite reduction `x = n ln 2 + r`, `|r| <= ln 2 / 2`, and Cephes' degree-7 polynomial.
/// Branch-free so that loops over it vectorise; inputs below -87 give `e^-87` (about 1.6e-38,
/// which the softmax sum cannot tell from 0).
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let x = if x > -87.0 { x } else { -87.0 };
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    // `t`'s low mantissa bits hold n (two's complement), so its bits minus ROUND's are n.
    let ni = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    y * f32::from_bits(((ni + 127) << 23) as u32)
}

/// erf with |error| < 7e-8, in f64: `x P(x^2) / Q(x^2)` on `[-4, 4]` (erf is 1 to within 2e-8
/// beyond), the rational minimax fit Eigen and XLA use. Branch-free so that loops vectorise.
#[inline(always)]
fn erf(x: f64) -> f64 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_258_013_06e-10;
    p = p * x2 + 2.770_681_424_959_02e-8;
    p = p * x2 + -2.101_024_020_825_08e-6;
    p = p * x2 + -5.692_506_394_623_46e-5;
    p = p * x2 + -7.349_906_303_268_55e-4;
    p = p * x2 + -2.954_599_808_540_25e-3;
    p = p * x2 + -1.609_603_332_624_15e-2;
    let mut q = -1.456_607_184_649_96e-5;
    q = q * x2 + -2.133_740_552_789_05e-4;
    q = q * x2 + -1.682_826_974_382_03e-3;
    q = q * x2 + -7.373_329_167_204_68e-3;
    q = q * x2 + -1.426_473_905_141_89e-2;
    x * p / q
}

/// Exact (erf) GELU, evaluated in f64.
#[inline(always)]
fn gelu(x: f32) -> f32 {
    let x = x as f64;
    (0.5 * x * (1.0 + erf(x * std::f64::consts::FRAC_1_SQRT_2))) as f32
}

kernel! {
    /// `y[r][j] = gelu(y[r][j] + b[j])` for every `b.len()`-wide row `r`.
    fn add_bias_gelu(y: &mut [f32], b: &[f32]) {
        for row in y.chunks_exact_mut(b.len()) {
            for (v, &b) in row.iter_mut().zip(b) {
                *v = gelu(*v + b);
            }
        }
    }
}

kernel! {
    /// `y[r][j] = (y[r][j] + b[j]) + res[r][j]` for every `b.len()`-wide row `r`.
    fn add_bias_residual(y: &mut [f32], b: &[f32], res: &[f32]) {
        let w = b.len();
        for (row, res) in y.chunks_exact_mut(w).zip(res.chunks_exact(w)) {
            for ((v, &b), &r) in row.iter_mut().zip(b).zip(res) {
                *v = (*v + b) + r;
            }
        }
    }
}

kernel! {
    /// `y[r][j] += b[j]` for every `b.len()`-wide row `r`.
    fn add_bias(y: &mut [f32], b: &[f32]) {
        for row in y.chunks_exact_mut(b.len()) {
            for (v, &b) in row.iter_mut().zip(b) {
                *v += b;
            }
        }
    }
}

kernel! {
    /// Softmax of every `len`-wide row of `s`, in place.
    fn softmax_rows(s: &mut [f32], len: usize) {
        for row in s.chunks_exact_mut(len) {
            let max = max_of(row);
            for v in row.iter_mut() {
                *v = exp_f32(*v - max);
            }
            let sum = sum_of(row);
            for v in row.iter_mut() {
                *v /= sum;
            }
        }
    }
}

kernel! {
    /// LayerNorm of every `g.len()`-wide row of `x`, in place (statistics in f64).
    fn layer_norm(x: &mut [f32], g: &[f32], b: &[f32], eps: f64) {
        let dim = g.len();
        for r in x.chunks_exact_mut(dim) {
            let mean = moment_f64(r, 0.0, false) / dim as f64;
            let var = moment_f64(r, mean, true) / dim as f64;
            let inv = 1.0 / (var + eps).sqrt();
            for ((v, &g), &b) in r.iter_mut().zip(g).zip(b) {
                *v = ((*v as f64 - mean) * inv) as f32 * g + b;
            }
        }
    }
}

impl Linear {
    fn new(w: Vec<f32>, b: Vec<f32>, out: usize, inp: usize) -> Linear {
        if gemm::available() && out.is_multiple_of(gemm::NR) {
            Linear {
                w: gemm::pack(&w, out, inp),
                b,
                out,
                inp,
                packed: true,
            }
        } else {
            Linear {
                w,
                b,
                out,
                inp,
                packed: false,
            }
        }
    }

    /// `x (rows x in) -> x W^T (rows x out)`, without the bias.
    fn matmul(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut y = vec![0.0f32; rows * self.out];
        if self.packed {
            gemm::matmul(x, rows, self.inp, &self.w, self.out, &mut y);
            return y;
        }
        // B = W^T: B[k][j] = W[j][k] -> row stride 1, column stride `in`.
        gemm(
            rows,
            self.inp,
            self.out,
            1.0,
            x,
            (self.inp, 1),
            &self.w,
            (1, self.inp),
            &mut y,
            (self.out, 1),
        );
        y
    }
}

impl Norm {
    fn apply(&self, x: &mut [f32], eps: f64) {
        layer_norm(x, &self.g, &self.b, eps);
    }
}

impl Bert {
    pub fn new(config: BertConfig, mut w: HashMap<String, Tensor>, path: &Path) -> Result<Bert> {
        if config.hidden_act != "gelu" {
            return Err(EmbedError::model(
                path,
                format!("unsupported activation {}", config.hidden_act),
            ));
        }
        let h = config.hidden_size;
        if config.num_attention_heads == 0 || !h.is_multiple_of(config.num_attention_heads) {
            return Err(EmbedError::model(
                path,
                "hidden_size is not a multiple of the head count",
            ));
        }
        // Some checkpoints prefix every name with "bert.".
        let prefixed = w.keys().any(|k| k.starts_with("bert."));
        let mut take = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let key = if prefixed {
                format!("bert.{name}")
            } else {
                name.to_string()
            };
            let t = w
                .remove(&key)
                .ok_or_else(|| EmbedError::model(path, format!("missing F32 tensor {key}")))?;
            if t.shape != shape {
                return Err(EmbedError::model(
                    path,
                    format!("{key} has shape {:?}, expected {shape:?}", t.shape),
                ));
            }
            Ok(t.data)
        };
        let i = config.intermediate_size;
        let word = take("embeddings.word_embeddings.weight", &[config.vocab_size, h])?;
        let pos = take(
            "embeddings.position_embeddings.weight",
            &[config.max_position_embeddings, h],
        )?;
        let typ_all = take("embeddings.token_type_embeddings.weight", &[2, h])
            .or_else(|_| take("embeddings.token_type_embeddings.weight", &[1, h]))?;
        let typ = typ_all[..h].to_vec();
        let ln = Norm {
            g: take("embeddings.LayerNorm.weight", &[h])?,
            b: take("embeddings.LayerNorm.bias", &[h])?,
        };
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for l in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            let mut lin = |name: &str, out: usize, inp: usize| -> Result<(Vec<f32>, Vec<f32>)> {
                Ok((
                    take(&format!("{p}.{name}.weight"), &[out, inp])?,
                    take(&format!("{p}.{name}.bias"), &[out])?,
                ))
            };
            let (q, k, v) = (
                lin("attention.self.query", h, h)?,
                lin("attention.self.key", h, h)?,
                lin("attention.self.value", h, h)?,
            );
            let qkv = Linear::new([q.0, k.0, v.0].concat(), [q.1, k.1, v.1].concat(), 3 * h, h);
            let dense = |(w, b): (Vec<f32>, Vec<f32>), out, inp| Linear::new(w, b, out, inp);
            let o = dense(lin("attention.output.dense", h, h)?, h, h);
            let up = dense(lin("intermediate.dense", i, h)?, i, h);
            let down = dense(lin("output.dense", h, i)?, h, i);
            let ln1 = Norm {
                g: take(&format!("{p}.attention.output.LayerNorm.weight"), &[h])?,
                b: take(&format!("{p}.attention.output.LayerNorm.bias"), &[h])?,
            };
            let ln2 = Norm {
                g: take(&format!("{p}.output.LayerNorm.weight"), &[h])?,
                b: take(&format!("{p}.output.LayerNorm.bias"), &[h])?,
            };
            layers.push(Layer {
                qkv,
                o,
                ln1,
                up,
                down,
                ln2,
            });
        }
        Ok(Bert {
            config,
            word,
            pos,
            typ,
            ln,
            layers,
        })
    }

    /// Token states of tokenised texts: for each text, `len x hidden` values. The tokens of all
    /// texts are packed into one matrix for the linear layers (large products, no padding);
    /// attention runs per text and head.
    pub fn forward_batch(&self, texts: &[&[u32]]) -> Vec<Vec<f32>> {
        let h = self.config.hidden_size;
        let eps = self.config.layer_norm_eps;
        let lens: Vec<usize> = texts
            .iter()
            .map(|t| t.len().min(self.config.max_position_embeddings))
            .collect();
        let total: usize = lens.iter().sum();
        let mut x = vec![0.0f32; total * h];
        let mut at = 0;
        for (ids, &len) in texts.iter().zip(&lens) {
            for (t, &id) in ids[..len].iter().enumerate() {
                let id = (id as usize).min(self.config.vocab_size - 1);
                let row = &mut x[(at + t) * h..(at + t + 1) * h];
                let (w, p) = (
                    &self.word[id * h..(id + 1) * h],
                    &self.pos[t * h..(t + 1) * h],
                );
                for j in 0..h {
                    row[j] = w[j] + p[j] + self.typ[j];
                }
            }
            at += len;
        }
        self.ln.apply(&mut x, eps);
        let heads = self.config.num_attention_heads;
        let d = h / heads;
        let scale = 1.0 / (d as f32).sqrt();
        let max_len = lens.iter().copied().max().unwrap_or(0);
        let mut scores = vec![0.0f32; max_len * max_len];
        let h3 = 3 * h;
        for layer in &self.layers {
            // Row t of `qkv` is [q_t | k_t | v_t]; head `hd` is columns hd*d .. (hd+1)*d of each.
            let mut qkv = layer.qkv.matmul(&x, total);
            add_bias(&mut qkv, &layer.qkv.b);
            let mut ctx = vec![0.0f32; total * h];
            let mut start = 0;
            for &len in &lens {
                let sc = &mut scores[..len * len];
                for hd in 0..heads {
                    let off = start * h3 + hd * d;
                    // scores = Q_h K_h^T / sqrt(d)
                    gemm(
                        len,
                        d,
                        len,
                        scale,
                        &qkv[off..],
                        (h3, 1),
                        &qkv[off + h..],
                        (1, h3),
                        sc,
                        (len, 1),
                    );
                    softmax_rows(sc, len);
                    // ctx_h = P V_h
                    gemm(
                        len,
                        len,
                        d,
                        1.0,
                        sc,
                        (len, 1),
                        &qkv[off + 2 * h..],
                        (h3, 1),
                        &mut ctx[start * h + hd * d..],
                        (h, 1),
                    );
                }
                start += len;
            }
            let mut attn = layer.o.matmul(&ctx, total);
            add_bias_residual(&mut attn, &layer.o.b, &x);
            layer.ln1.apply(&mut attn, eps);
            let mut mid = layer.up.matmul(&attn, total);
            add_bias_gelu(&mut mid, &layer.up.b);
            let mut out = layer.down.matmul(&mid, total);
            add_bias_residual(&mut out, &layer.down.b, &attn);
            layer.ln2.apply(&mut out, eps);
            x = out;
        }
        let mut out = Vec::with_capacity(texts.len());
        let mut start = 0;
        for &len in &lens {
            out.push(x[start * h..(start + len) * h].to_vec());
            start += len;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf by its Taylor series in f64 (accurate to ~1e-9 for |x| <= 4).
    fn erf_ref(x: f64) -> f64 {
        let (mut term, mut sum, mut n) = (x, x, 0.0);
        while term.abs() > 1e-17 * sum.abs().max(1e-300) {
            n += 1.0;
            term *= -x * x / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_and_gelu_match_known_values() {
        for (x, want) in [
            (0.0, 0.0),
            (0.5, 0.520_499_877_8),
            (1.0, 0.842_700_792_9),
            (-2.0, -0.995_322_265),
        ] {
            assert!((erf(x) - want).abs() < 1e-7, "erf({x})");
        }
        let mut worst = 0.0f64;
        for i in -6000..=6000 {
            let x = i as f64 / 1000.0;
            // Beyond 4 the series loses precision, and erf is 1 to within 1.6e-8.
            let want = if x.abs() <= 4.0 {
                erf_ref(x)
            } else {
                x.signum()
            };
            worst = worst.max((erf(x) - want).abs());
        }
        assert!(worst < 7e-8, "erf error {worst}");
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((gelu(-1.0) + 0.158_655_25).abs() < 1e-6);
    }

    #[test]
    fn exp_is_within_two_ulp() {
        for i in 0..=200_000 {
            let x = -(i as f32) / 2000.0; // 0 .. -100
            let (got, want) = (exp_f32(x) as f64, (x as f64).exp());
            if x > -87.0 {
                assert!(
                    (got - want).abs() <= 2.5 * f32::EPSILON as f64 * want,
                    "exp({x}) = {got}, want {want}"
                );
            } else {
                assert!(got < 1e-37, "exp({x}) = {got}");
            }
        }
        assert_eq!(exp_f32(0.0), 1.0);
    }

    #[test]
    fn kernels_match_scalar_formulas() {
        // Odd widths exercise the reductions' remainders.
        let (rows, w) = (3, 13);
        let x: Vec<f32> = (0..rows * w)
            .map(|i| ((i * 7) % 11) as f32 * 0.3 - 1.4)
            .collect();
        let mut s = x.clone();
        softmax_rows(&mut s, w);
        for (row, xs) in s.chunks_exact(w).zip(x.chunks_exact(w)) {
            let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f64 = xs.iter().map(|&v| ((v - max) as f64).exp()).sum();
            for (&p, &v) in row.iter().zip(xs) {
                assert!((p as f64 - ((v - max) as f64).exp() / sum).abs() < 1e-6);
            }
        }
        let (g, b): (Vec<f32>, Vec<f32>) = (0..w).map(|j| (1.0 + j as f32 * 0.1, j as f32)).unzip();
        let mut n = x.clone();
        layer_norm(&mut n, &g, &b, 1e-12);
        for (row, xs) in n.chunks_exact(w).zip(x.chunks_exact(w)) {
            let mean = xs.iter().map(|&v| v as f64).sum::<f64>() / w as f64;
            let var = xs.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / w as f64;
            for j in 0..w {
                let want = (xs[j] as f64 - mean) / (var + 1e-12).sqrt() * g[j] as f64 + b[j] as f64;
                assert!((row[j] as f64 - want).abs() < 1e-5);
            }
        }
        let mut y = x.clone();
        add_bias_gelu(&mut y, &b);
        for (i, (&got, &v)) in y.iter().zip(&x).enumerate() {
            assert_eq!(got, gelu(v + b[i % w]));
        }
    }

    #[test]
    fn gemm_with_strides_matches_naive() {
        let (m, k, n) = (3, 4, 5);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 2.0).collect();
        let w: Vec<f32> = (0..n * k).map(|i| (i % 7) as f32 - 3.0).collect(); // [n, k]
        let mut c = vec![0.0f32; m * n];
        gemm(m, k, n, 0.5, &a, (k, 1), &w, (1, k), &mut c, (n, 1));
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|t| a[i * k + t] * w[j * k + t]).sum();
                assert!((c[i * n + j] - 0.5 * want).abs() < 1e-4);
            }
        }
    }
}
