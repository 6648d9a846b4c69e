//! Bit-vector distances (Hamming, Jaccard) over packed `u8` slices.
//!
//! The loops read 8 bytes at a time as `u64` and use `count_ones`. On
//! x86_64 the AVX2/AVX-512 levels run the same loops compiled with the
//! `popcnt` target feature, so `count_ones` becomes one instruction.

#[inline(always)]
fn word(c: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(c);
    u64::from_le_bytes(w)
}

#[inline(always)]
fn hamming_body(a: &[u8], b: &[u8]) -> u32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    let mut acc = 0u32;
    for (x, y) in ca.by_ref().zip(cb.by_ref()) {
        acc += (word(x) ^ word(y)).count_ones();
    }
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        acc += (x ^ y).count_ones();
    }
    acc
}

#[inline(always)]
fn jaccard_body(a: &[u8], b: &[u8]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    let (mut inter, mut union) = (0u32, 0u32);
    for (x, y) in ca.by_ref().zip(cb.by_ref()) {
        let (x, y) = (word(x), word(y));
        inter += (x & y).count_ones();
        union += (x | y).count_ones();
    }
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        inter += (x & y).count_ones();
        union += (x | y).count_ones();
    }
    if union == 0 {
        0.0
    } else {
        1.0 - inter as f32 / union as f32
    }
}

pub(crate) fn hamming_portable(a: &[u8], b: &[u8]) -> u32 {
    hamming_body(a, b)
}

pub(crate) fn jaccard_portable(a: &[u8], b: &[u8]) -> f32 {
    jaccard_body(a, b)
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod popcnt {
    #[target_feature(enable = "popcnt")]
    unsafe fn hamming_impl(a: &[u8], b: &[u8]) -> u32 {
        super::hamming_body(a, b)
    }

    #[target_feature(enable = "popcnt")]
    unsafe fn jaccard_impl(a: &[u8], b: &[u8]) -> f32 {
        super::jaccard_body(a, b)
    }

    /// Only reachable through a level table that checked `popcnt`.
    pub(crate) fn hamming(a: &[u8], b: &[u8]) -> u32 {
        // SAFETY: installed only in the AVX2/AVX-512 tables, which are handed
        // out after `is_x86_feature_detected!("popcnt")` returned true.
        unsafe { hamming_impl(a, b) }
    }

    /// Only reachable through a level table that checked `popcnt`.
    pub(crate) fn jaccard(a: &[u8], b: &[u8]) -> f32 {
        // SAFETY: as for `hamming`: the table that holds this was built
        // after `popcnt` was detected.
        unsafe { jaccard_impl(a, b) }
    }
}
