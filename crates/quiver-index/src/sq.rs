//! SQ8 / SQ4: per-dimension scalar quantisation to 8 or 4 bits, with an
//! asymmetric (`f32` query x integer code) distance.
//!
//! Dimension `i` maps `[min_i, max_i]` (over the training rows) linearly to
//! `0..=L` (`L` = 255 or 15): `code = round((x - min_i) / scale_i)` clamped,
//! `scale_i = (max_i - min_i) / L` (0 for a constant dimension, code 0).
//! Decoding is `x^_i = min_i + scale_i * code_i`, so for a query `q`
//!
//! ```text
//! q . x^  = q . min + sum_i (q_i * scale_i) * code_i = c + q' . code
//! |q - x^|^2 = |q|^2 + |x^|^2 - 2 q . x^
//! ```
//!
//! [`Sq8::prepare`] computes `q'` (zero-padded to [`Sq8::padded`] values)
//! and `c` once per query; each code then costs one [`crate::kernels`]
//! `dot_u8` or `dot_u4`. For L2 the caller keeps `|x^|^2` per row
//! ([`Sq8::decoded_norm_sq`]).
//!
//! Layout of one code (zero padding):
//! * 8 bits: `padded = dim` rounded up to 16; byte `j` is dimension `j`.
//! * 4 bits: `padded = dim` rounded up to 32, `half = padded / 2` bytes;
//!   byte `j` holds dimension `j` in its low nibble and `j + half` in its
//!   high nibble, so a SIMD kernel reads `q'` in two contiguous halves.
//!
//! Codes sit `stride` bytes apart in one aligned buffer ([`Codes`], huge
//! pages when large): a 384-d row is exactly 6 (SQ8) or 3 (SQ4) cache lines.

use rayon::prelude::*;

use crate::mem::PodBuf;

/// The per-dimension affine map of SQ8 (or SQ4, `bits == 4`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Sq8 {
    pub(crate) dim: usize,
    pub(crate) bits: u32,
    pub(crate) min: Vec<f32>,
    pub(crate) scale: Vec<f32>,
}

/// Code stride (bytes) for `dim` dimensions at `bits` (8 or 4) per value.
pub(crate) fn stride_for(dim: usize, bits: u32) -> usize {
    if bits == 4 {
        dim.div_ceil(32) * 16
    } else {
        dim.div_ceil(16) * 16
    }
}

/// Scales `x` to unit length into `out` (zeros stay zeros).
pub(crate) fn normalized(x: &[f32], out: &mut [f32]) {
    let n = quiver_simd::norm_sq(x).sqrt();
    let inv = if n > 0.0 { 1.0 / n } else { 0.0 };
    for (o, v) in out.iter_mut().zip(x) {
        *o = v * inv;
    }
}

impl Sq8 {
    /// Per-dimension min/max over the rows of `data` (`n x dim`), after
    /// normalising each row when `normalize`.
    pub(crate) fn train(data: &[f32], dim: usize, bits: u32, normalize: bool) -> Sq8 {
        let levels = ((1u32 << bits) - 1) as f32;
        let init = || {
            (
                vec![f32::INFINITY; dim],
                vec![f32::NEG_INFINITY; dim],
                vec![0.0f32; dim],
            )
        };
        let (mut min, max, _) = data
            .par_chunks(dim * 1024)
            .fold(init, |(mut lo, mut hi, mut buf), chunk| {
                for row in chunk.chunks_exact(dim) {
                    let row = if normalize {
                        normalized(row, &mut buf);
                        &buf[..]
                    } else {
                        row
                    };
                    for ((l, h), &v) in lo.iter_mut().zip(hi.iter_mut()).zip(row) {
                        if v < *l {
                            *l = v;
                        }
                        if v > *h {
                            *h = v;
                        }
                    }
                }
                (lo, hi, buf)
            })
            .reduce(init, |(mut lo, mut hi, b), (lo2, hi2, _)| {
                for i in 0..dim {
                    lo[i] = lo[i].min(lo2[i]);
                    hi[i] = hi[i].max(hi2[i]);
                }
                (lo, hi, b)
            });
        let mut scale = vec![0.0f32; dim];
        for i in 0..dim {
            if !min[i].is_finite() || !max[i].is_finite() || max[i] <= min[i] {
                if !min[i].is_finite() {
                    min[i] = 0.0;
                }
                scale[i] = 0.0;
            } else {
                scale[i] = (max[i] - min[i]) / levels;
            }
        }
        Sq8 {
            dim,
            bits,
            min,
            scale,
        }
    }

    pub(crate) fn stride(&self) -> usize {
        stride_for(self.dim, self.bits)
    }

    /// Length of the prepared query `q'` (dimensions with padding).
    pub(crate) fn padded(&self) -> usize {
        if self.bits == 4 {
            2 * self.stride()
        } else {
            self.stride()
        }
    }

    /// The code of dimension `i` of `x`.
    #[inline]
    fn quantize(&self, x: &[f32], i: usize) -> u8 {
        let s = self.scale[i];
        let top = ((1u32 << self.bits) - 1) as f32;
        if s > 0.0 {
            ((x[i] - self.min[i]) / s).round().clamp(0.0, top) as u8
        } else {
            0
        }
    }

    /// Dimension `i` of a code.
    #[inline]
    pub(crate) fn code_at(&self, code: &[u8], i: usize) -> u8 {
        if self.bits == 4 {
            let half = self.stride();
            if i < half {
                code[i] & 0x0F
            } else {
                code[i - half] >> 4
            }
        } else {
            code[i]
        }
    }

    /// Encodes `x` (`dim` values) into `out` (`stride` bytes, padding zeroed).
    pub(crate) fn encode(&self, x: &[f32], out: &mut [u8]) {
        out.fill(0);
        if self.bits == 4 {
            let half = self.stride();
            for i in 0..self.dim {
                let c = self.quantize(x, i);
                if i < half {
                    out[i] |= c;
                } else {
                    out[i - half] |= c << 4;
                }
            }
        } else {
            for (i, o) in out.iter_mut().enumerate().take(self.dim) {
                *o = self.quantize(x, i);
            }
        }
    }

    /// Encodes every row of `data` (normalised first when `normalize`).
    pub(crate) fn encode_all(&self, data: &[f32], normalize: bool) -> Codes {
        let dim = self.dim;
        let n = data.len() / dim;
        let stride = self.stride();
        let mut codes = Codes::zeroed(n, stride);
        codes
            .as_mut_bytes()
            .par_chunks_mut(stride * 256)
            .zip(data.par_chunks(dim * 256))
            .for_each(|(out, rows)| {
                let mut buf = vec![0.0f32; dim];
                for (o, row) in out.chunks_exact_mut(stride).zip(rows.chunks_exact(dim)) {
                    if normalize {
                        normalized(row, &mut buf);
                        self.encode(&buf, o);
                    } else {
                        self.encode(row, o);
                    }
                }
            });
        codes
    }

    /// `|x^|^2` of a code.
    pub(crate) fn decoded_norm_sq(&self, code: &[u8]) -> f32 {
        let mut s = 0.0f32;
        for i in 0..self.dim {
            let v = self.min[i] + self.scale[i] * self.code_at(code, i) as f32;
            s += v * v;
        }
        s
    }

    /// Fills `out` with `q'` (length [`Sq8::padded`], zero padded) and
    /// returns `c`.
    pub(crate) fn prepare(&self, q: &[f32], out: &mut Vec<f32>) -> f32 {
        out.clear();
        out.resize(self.padded(), 0.0);
        let mut c = 0.0f32;
        for i in 0..self.dim {
            out[i] = q[i] * self.scale[i];
            c += q[i] * self.min[i];
        }
        c
    }
}

/// `n` codes of `stride` bytes in one aligned buffer ([`PodBuf`]).
#[derive(Clone)]
pub(crate) struct Codes {
    buf: PodBuf<u8>,
    stride: usize,
}

impl Codes {
    pub(crate) fn zeroed(n: usize, stride: usize) -> Codes {
        Codes {
            buf: PodBuf::zeroed(n * stride),
            stride,
        }
    }

    pub(crate) fn from_bytes(bytes: &[u8], stride: usize) -> Codes {
        Codes {
            buf: PodBuf::from_slice(bytes),
            stride,
        }
    }

    #[inline(always)]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    pub(crate) fn as_mut_bytes(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    #[inline(always)]
    pub(crate) fn row(&self, i: usize) -> &[u8] {
        &self.buf[i * self.stride..(i + 1) * self.stride]
    }

    /// Address of row `i` (for prefetching; may be out of range for a bad `i`).
    #[inline(always)]
    pub(crate) fn row_ptr(&self, i: usize) -> *const u8 {
        self.buf.as_ptr().wrapping_add(i * self.stride)
    }

    pub(crate) fn stride(&self) -> usize {
        self.stride
    }

    pub(crate) fn bytes(&self) -> usize {
        self.buf.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sq8_round_trip_and_distance() {
        let dim = 20;
        let data: Vec<f32> = (0..dim * 50)
            .map(|i| ((i * 7919) % 1000) as f32 / 100.0 - 5.0)
            .collect();
        for (bits, stride) in [(8, 32), (4, 16)] {
            let sq = Sq8::train(&data, dim, bits, false);
            let codes = sq.encode_all(&data, false);
            assert_eq!(codes.stride(), stride);
            let q: Vec<f32> = (0..dim).map(|i| i as f32 * 0.1).collect();
            let mut qp = Vec::new();
            let c = sq.prepare(&q, &mut qp);
            let dot = crate::kernels::dot_fn(bits);
            for r in 0..50 {
                let row = &data[r * dim..(r + 1) * dim];
                let approx = c + dot(&qp, codes.row(r));
                let exact: f32 = q.iter().zip(row).map(|(a, b)| a * b).sum();
                let err_bound: f32 = q
                    .iter()
                    .zip(&sq.scale)
                    .map(|(a, s)| (a * s).abs() * 0.5)
                    .sum();
                assert!((approx - exact).abs() <= err_bound * 1.01 + 1e-4, "row {r}");
                let decoded: f32 = (0..dim)
                    .map(|i| (sq.min[i] + sq.scale[i] * sq.code_at(codes.row(r), i) as f32) * q[i])
                    .sum();
                assert!((approx - decoded).abs() <= 1e-3, "row {r}");
            }
        }
    }
}
