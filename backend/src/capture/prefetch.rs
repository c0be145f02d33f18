//! Hints to the processor: start loading a cache line that will be read soon. Reading a capture
//! waits on memory the caches do not hold twice a frame: its bytes, first read in the file, and
//! its place among the frames held back for time order (`order`), read again a few thousand
//! frames later. Asked for a few frames ahead, both loads overlap the work on the frames before
//! them: one thread's run of the bench pcapng spent 8% of its time on the first and 7% on the
//! second, 2.4% and 4.3% with the hints (BENCHMARKS.md, session 32).

/// How far ahead of a frame in the file its later bytes are asked for.
const FILE_AHEAD: usize = 2048;

/// Asks for the cache line holding `at` to be loaded. Reads nothing and cannot fault; does
/// nothing where there is no such instruction.
#[inline(always)]
pub fn prefetch<T: ?Sized>(at: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` only hints the cache: it reads no value, has no effect a program can
    // observe and does not fault even on an address that is not mapped; `at` is a live
    // reference besides. SSE, which it needs, is part of every x86_64 target.
    #[allow(unsafe_code)]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(std::ptr::from_ref(at).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

/// Asks for the `len` bytes that lie `FILE_AHEAD` past the start of `rest` (the file from the
/// frame just read on, `len` its span): the hints keep pace with the reading.
#[inline]
pub fn file_ahead(rest: &[u8], len: usize) {
    for at in (FILE_AHEAD..FILE_AHEAD + len).step_by(64) {
        if let Some(b) = rest.get(at) {
            prefetch(b);
        }
    }
}
