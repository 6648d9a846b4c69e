//! The BERT encoder forward pass (inference only, one text at a time, no padding).
//!
//! embeddings (word + position + token type 0) -> LayerNorm -> N x [self-attention (Q, K, V
//! projections, per-head softmax(Q K^T / sqrt(d)) V, output projection, residual, LayerNorm) ->
//! feed-forward (dense, exact-erf GELU, dense, residual, LayerNorm)]. Linear layers keep
//! PyTorch's `[out, in]` weights and multiply by their transpose through strides.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

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
    w: Vec<f32>,
    b: Vec<f32>,
    out: usize,
    inp: usize,
}

struct Norm {
    g: Vec<f32>,
    b: Vec<f32>,
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
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

/// `C (m x n) = A (m x k) * B (k x n)` with explicit row / column strides, bounds-checked.
#[allow(clippy::too_many_arguments)]
fn gemm(
    m: usize,
    k: usize,
    n: usize,
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
            1.0,
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

impl Linear {
    /// `x (rows x in) -> rows x out`.
    fn apply(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut y = vec![0.0f32; rows * self.out];
        // B = W^T: B[k][j] = W[j][k] -> row stride 1, column stride `in`.
        gemm(
            rows,
            self.inp,
            self.out,
            x,
            (self.inp, 1),
            &self.w,
            (1, self.inp),
            &mut y,
            (self.out, 1),
        );
        for r in y.chunks_exact_mut(self.out) {
            r.iter_mut().zip(&self.b).for_each(|(v, b)| *v += b);
        }
        y
    }
}

impl Norm {
    fn apply(&self, x: &mut [f32], eps: f64) {
        let dim = self.g.len();
        for r in x.chunks_exact_mut(dim) {
            let mean = r.iter().map(|&v| v as f64).sum::<f64>() / dim as f64;
            let var = r.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / dim as f64;
            let inv = 1.0 / (var + eps).sqrt();
            for ((v, g), b) in r.iter_mut().zip(&self.g).zip(&self.b) {
                *v = ((*v as f64 - mean) * inv) as f32 * g + b;
            }
        }
    }
}

/// erf with |error| < 1.5e-7 (Abramowitz & Stegun 7.1.26), in f64.
fn erf(x: f64) -> f64 {
    let s = x.signum();
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    s * y
}

fn gelu(x: f32) -> f32 {
    let x = x as f64;
    (0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2))) as f32
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
            let mut lin = |name: &str, out: usize, inp: usize| -> Result<Linear> {
                Ok(Linear {
                    w: take(&format!("{p}.{name}.weight"), &[out, inp])?,
                    b: take(&format!("{p}.{name}.bias"), &[out])?,
                    out,
                    inp,
                })
            };
            let q = lin("attention.self.query", h, h)?;
            let k = lin("attention.self.key", h, h)?;
            let v = lin("attention.self.value", h, h)?;
            let o = lin("attention.output.dense", h, h)?;
            let up = lin("intermediate.dense", i, h)?;
            let down = lin("output.dense", h, i)?;
            let ln1 = Norm {
                g: take(&format!("{p}.attention.output.LayerNorm.weight"), &[h])?,
                b: take(&format!("{p}.attention.output.LayerNorm.bias"), &[h])?,
            };
            let ln2 = Norm {
                g: take(&format!("{p}.output.LayerNorm.weight"), &[h])?,
                b: take(&format!("{p}.output.LayerNorm.bias"), &[h])?,
            };
            layers.push(Layer {
                q,
                k,
                v,
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
        for layer in &self.layers {
            let q = layer.q.apply(&x, total);
            let k = layer.k.apply(&x, total);
            let v = layer.v.apply(&x, total);
            let mut ctx = vec![0.0f32; total * h];
            let mut start = 0;
            for &len in &lens {
                let base = start * h;
                let sc = &mut scores[..len * len];
                for hd in 0..heads {
                    let off = base + hd * d;
                    // scores = Q_h K_h^T
                    gemm(
                        len,
                        d,
                        len,
                        &q[off..],
                        (h, 1),
                        &k[off..],
                        (1, h),
                        sc,
                        (len, 1),
                    );
                    for row in sc.chunks_exact_mut(len) {
                        let mut max = f32::NEG_INFINITY;
                        for s in row.iter_mut() {
                            *s *= scale;
                            max = max.max(*s);
                        }
                        let mut sum = 0.0f32;
                        for s in row.iter_mut() {
                            *s = (*s - max).exp();
                            sum += *s;
                        }
                        row.iter_mut().for_each(|s| *s /= sum);
                    }
                    // ctx_h = P V_h
                    gemm(
                        len,
                        len,
                        d,
                        sc,
                        (len, 1),
                        &v[off..],
                        (h, 1),
                        &mut ctx[off..],
                        (h, 1),
                    );
                }
                start += len;
            }
            let mut attn = layer.o.apply(&ctx, total);
            attn.iter_mut().zip(&x).for_each(|(a, r)| *a += r);
            layer.ln1.apply(&mut attn, eps);
            let mut mid = layer.up.apply(&attn, total);
            mid.iter_mut().for_each(|v| *v = gelu(*v));
            let mut out = layer.down.apply(&mid, total);
            out.iter_mut().zip(&attn).for_each(|(o, r)| *o += r);
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

    #[test]
    fn erf_and_gelu_match_known_values() {
        for (x, want) in [
            (0.0, 0.0),
            (0.5, 0.520_499_877_8),
            (1.0, 0.842_700_792_9),
            (-2.0, -0.995_322_265),
        ] {
            assert!((erf(x) - want).abs() < 2e-7, "erf({x})");
        }
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((gelu(-1.0) + 0.158_655_25).abs() < 1e-6);
    }

    #[test]
    fn gemm_with_strides_matches_naive() {
        let (m, k, n) = (3, 4, 5);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 2.0).collect();
        let w: Vec<f32> = (0..n * k).map(|i| (i % 7) as f32 - 3.0).collect(); // [n, k]
        let mut c = vec![0.0f32; m * n];
        gemm(m, k, n, &a, (k, 1), &w, (1, k), &mut c, (n, 1));
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|t| a[i * k + t] * w[j * k + t]).sum();
                assert!((c[i * n + j] - want).abs() < 1e-4);
            }
        }
    }
}
