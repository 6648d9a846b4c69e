//! Half-precision conversions (IEEE binary16 and bfloat16 bit patterns
//! stored as `u16`), via the `half` crate's slice conversions, which use
//! F16C on x86_64 when the CPU has it (detected at run time).

use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
use half::{bf16, f16};

/// Widens IEEE binary16 bit patterns to `f32`. Panics if the lengths differ.
pub fn f16_to_f32(src: &[u16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "f16_to_f32: length mismatch");
    src.reinterpret_cast::<f16>().convert_to_f32_slice(dst);
}

/// Narrows `f32` to IEEE binary16 bit patterns (round to nearest even).
/// Panics if the lengths differ.
pub fn f32_to_f16(src: &[f32], dst: &mut [u16]) {
    assert_eq!(src.len(), dst.len(), "f32_to_f16: length mismatch");
    dst.reinterpret_cast_mut::<f16>()
        .convert_from_f32_slice(src);
}

/// Widens bfloat16 bit patterns to `f32` (exact). Panics if the lengths differ.
pub fn bf16_to_f32(src: &[u16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "bf16_to_f32: length mismatch");
    src.reinterpret_cast::<bf16>().convert_to_f32_slice(dst);
}

/// Narrows `f32` to bfloat16 bit patterns (round to nearest even).
/// Panics if the lengths differ.
pub fn f32_to_bf16(src: &[f32], dst: &mut [u16]) {
    assert_eq!(src.len(), dst.len(), "f32_to_bf16: length mismatch");
    dst.reinterpret_cast_mut::<bf16>()
        .convert_from_f32_slice(src);
}
