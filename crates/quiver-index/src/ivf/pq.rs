//! Product quantisation of IVF residuals: `m` sub-quantisers of `ksub =
//! 2^nbits` centroids over consecutive `dsub = dim / m` dimensions. Codes
//! are one byte per sub-vector when `nbits <= 8`, else two (little-endian
//! `u16`); they are not bit-packed.

use quiver_simd::Metric;
use rayon::prelude::*;

use crate::kmeans;

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Pq {
    pub(crate) dim: usize,
    pub(crate) m: usize,
    pub(crate) nbits: u32,
    /// `m x ksub x dsub`.
    pub(crate) books: Vec<f32>,
}

impl Pq {
    pub(crate) fn ksub(&self) -> usize {
        1 << self.nbits
    }

    pub(crate) fn dsub(&self) -> usize {
        self.dim / self.m
    }

    /// Bytes per code.
    pub(crate) fn code_bytes(&self) -> usize {
        self.m * if self.nbits <= 8 { 1 } else { 2 }
    }

    #[inline(always)]
    pub(crate) fn sub_code(&self, code: &[u8], j: usize) -> usize {
        if self.nbits <= 8 {
            code[j] as usize
        } else {
            u16::from_le_bytes([code[2 * j], code[2 * j + 1]]) as usize
        }
    }

    fn book(&self, j: usize) -> &[f32] {
        let (ksub, dsub) = (self.ksub(), self.dsub());
        &self.books[j * ksub * dsub..(j + 1) * ksub * dsub]
    }

    /// Trains the codebooks on `rows` (`nt x dim` residuals).
    pub(crate) fn train(rows: &[f32], dim: usize, m: usize, nbits: u32, seed: u64) -> Pq {
        let dsub = dim / m;
        let ksub = 1usize << nbits;
        let nt = rows.len() / dim;
        let books: Vec<Vec<f32>> = (0..m)
            .into_par_iter()
            .map(|j| {
                let sub: Vec<f32> = (0..nt)
                    .flat_map(|r| {
                        rows[r * dim + j * dsub..r * dim + (j + 1) * dsub]
                            .iter()
                            .copied()
                    })
                    .collect();
                kmeans::train(
                    &sub,
                    dsub,
                    ksub,
                    10,
                    256 * ksub,
                    seed.wrapping_add(j as u64),
                )
            })
            .collect();
        Pq {
            dim,
            m,
            nbits,
            books: books.concat(),
        }
    }

    /// Encodes `rows` (`nq x dim`) into `out` (`nq x code_bytes`).
    pub(crate) fn encode(&self, rows: &[f32], out: &mut [u8]) {
        let (dsub, cb) = (self.dsub(), self.code_bytes());
        let nq = rows.len() / self.dim;
        for j in 0..self.m {
            let sub: Vec<f32> = (0..nq)
                .flat_map(|r| {
                    rows[r * self.dim + j * dsub..r * self.dim + (j + 1) * dsub]
                        .iter()
                        .copied()
                })
                .collect();
            let a = kmeans::assign(Metric::L2, &sub, dsub, self.book(j));
            for (r, &c) in a.iter().enumerate() {
                let o = &mut out[r * cb..(r + 1) * cb];
                if self.nbits <= 8 {
                    o[j] = c as u8;
                } else {
                    o[2 * j..2 * j + 2].copy_from_slice(&(c as u16).to_le_bytes());
                }
            }
        }
    }

    /// ADC table for IP: `t[j * ksub + c] = q_j . book_j[c]`.
    pub(crate) fn ip_table(&self, q: &[f32], t: &mut Vec<f32>) {
        let (ksub, dsub) = (self.ksub(), self.dsub());
        t.clear();
        t.reserve(self.m * ksub);
        for j in 0..self.m {
            let qj = &q[j * dsub..(j + 1) * dsub];
            for c in self.book(j).chunks_exact(dsub) {
                t.push(qj.iter().zip(c).map(|(a, b)| a * b).sum());
            }
        }
    }

    /// ADC table for L2 of residual `r = q - centroid`:
    /// `t[j * ksub + c] = |r_j - book_j[c]|^2`.
    pub(crate) fn l2_table(&self, r: &[f32], t: &mut Vec<f32>) {
        let (ksub, dsub) = (self.ksub(), self.dsub());
        t.clear();
        t.reserve(self.m * ksub);
        for j in 0..self.m {
            let rj = &r[j * dsub..(j + 1) * dsub];
            for c in self.book(j).chunks_exact(dsub) {
                t.push(rj.iter().zip(c).map(|(a, b)| (a - b) * (a - b)).sum());
            }
        }
    }

    /// Sum of a code's table entries.
    #[inline(always)]
    pub(crate) fn adc(&self, t: &[f32], code: &[u8]) -> f32 {
        let ksub = self.ksub();
        let mut s = 0.0f32;
        if self.nbits <= 8 {
            for (j, &c) in code.iter().enumerate() {
                s += t[j * ksub + c as usize];
            }
        } else {
            for j in 0..self.m {
                s += t[j * ksub + self.sub_code(code, j)];
            }
        }
        s
    }
}
