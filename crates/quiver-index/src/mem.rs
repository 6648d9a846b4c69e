//! Large flat buffers for the hot arrays of an index (neighbour lists,
//! codes): 64-byte aligned, and on Linux backed by transparent huge pages
//! when they are big enough.
//!
//! Graph search touches a few cache lines of many random rows; with 4 KiB
//! pages nearly every one is also a TLB miss (a 40 MiB code array spans
//! 10,000 pages, several times what the second-level TLB maps). Buffers of
//! at least [`HUGE_MIN`] bytes are aligned to 2 MiB and `madvise`d
//! `MADV_HUGEPAGE` before first touch, which the kernel honours when THP is
//! in `madvise` or `always` mode (a no-op otherwise).

use std::alloc::{alloc, alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;

/// Element types that are plain bytes (any bit pattern valid, no drop).
pub(crate) trait Pod: Copy + Default + 'static {}
impl Pod for u8 {}
impl Pod for u32 {}
impl Pod for f32 {}

const HUGE: usize = 2 << 20;
/// Buffers at least this large get huge-page alignment and advice.
pub(crate) const HUGE_MIN: usize = 4 << 20;

/// A fixed-length, zero-initialised, aligned buffer of `T`.
pub(crate) struct PodBuf<T: Pod> {
    ptr: NonNull<T>,
    len: usize,
    layout: Layout,
}

// SAFETY: `PodBuf` owns its allocation exclusively, like `Vec<T>`.
unsafe impl<T: Pod + Send> Send for PodBuf<T> {}
// SAFETY: shared access only reads, like `&[T]`.
unsafe impl<T: Pod + Sync> Sync for PodBuf<T> {}

impl<T: Pod> PodBuf<T> {
    pub(crate) fn zeroed(len: usize) -> Self {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .expect("buffer size overflow");
        let align = if bytes >= HUGE_MIN { HUGE } else { 64 };
        let layout = Layout::from_size_align(bytes.max(1), align.max(std::mem::align_of::<T>()))
            .expect("buffer layout");
        let huge = bytes >= HUGE_MIN;
        // SAFETY: the layout has a non-zero size. A huge buffer is allocated
        // uninitialised so that the advice comes before the first touch (an
        // aligned `alloc_zeroed` would memset it into 4 KiB pages first), and
        // is zeroed right below, before any read.
        let raw = unsafe {
            if huge {
                alloc(layout)
            } else {
                alloc_zeroed(layout)
            }
        };
        let Some(ptr) = NonNull::new(raw as *mut T) else {
            handle_alloc_error(layout)
        };
        if huge {
            advise_huge(raw, layout.size());
            // SAFETY: `raw` is valid for writes of `layout.size()` bytes.
            unsafe { std::ptr::write_bytes(raw, 0, layout.size()) };
        }
        PodBuf { ptr, len, layout }
    }

    pub(crate) fn from_slice(v: &[T]) -> Self {
        let mut b = Self::zeroed(v.len());
        b.copy_from_slice(v);
        b
    }

    /// Bytes allocated.
    pub(crate) fn bytes(&self) -> usize {
        self.layout.size()
    }
}

#[cfg(target_os = "linux")]
fn advise_huge(p: *mut u8, len: usize) {
    extern "C" {
        fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
    }
    const MADV_HUGEPAGE: i32 = 14;
    // SAFETY: `[p, p + len)` is one live allocation of ours, aligned to 2 MiB;
    // the advice changes only how the kernel backs it (the result is ignored:
    // without THP support it is simply not applied).
    unsafe {
        madvise(p as *mut std::ffi::c_void, len, MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_: *mut u8, _: usize) {}

impl<T: Pod> Drop for PodBuf<T> {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with exactly this layout.
        unsafe { dealloc(self.ptr.as_ptr() as *mut u8, self.layout) }
    }
}

impl<T: Pod> std::ops::Deref for PodBuf<T> {
    type Target = [T];

    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` holds `len` initialised (zeroed or written) `T`s,
        // valid for as long as `self` is borrowed.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Pod> std::ops::DerefMut for PodBuf<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, with the unique borrow of `self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Pod> Clone for PodBuf<T> {
    fn clone(&self) -> Self {
        Self::from_slice(self)
    }
}

impl<T: Pod + std::fmt::Debug> std::fmt::Debug for PodBuf<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PodBuf(len {})", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers() {
        let mut b = PodBuf::<u32>::zeroed(3);
        assert_eq!(&b[..], &[0, 0, 0]);
        b[1] = 7;
        let c = b.clone();
        assert_eq!(&c[..], &[0, 7, 0]);
        let big = PodBuf::<u8>::zeroed(HUGE_MIN + 1);
        assert_eq!(big.as_ptr() as usize % HUGE, 0);
        assert!(big.iter().all(|&x| x == 0));
        assert_eq!(PodBuf::<f32>::zeroed(0).len(), 0);
    }
}
