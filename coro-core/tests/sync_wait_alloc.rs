//! `sync_wait` allocates nothing per poll: a counting global allocator checks it.
//! One test per binary, so nothing else allocates meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn no_allocation_per_poll() {
    // Warm up this thread's parker.
    coro_core::sync_wait(async {});
    let fut = async {
        for _ in 0..10_000 {
            coro_core::yield_now().await; // pending once: 10,000 park/poll rounds
        }
        7
    };
    COUNTING.store(true, Ordering::SeqCst);
    let out = coro_core::sync_wait(fut);
    COUNTING.store(false, Ordering::SeqCst);
    assert_eq!(out, 7);
    assert_eq!(ALLOCS.load(Ordering::SeqCst), 0, "sync_wait allocated");
    // The counter itself works.
    COUNTING.store(true, Ordering::SeqCst);
    drop(std::hint::black_box(Box::new(1u64)));
    COUNTING.store(false, Ordering::SeqCst);
    assert_eq!(ALLOCS.load(Ordering::SeqCst), 1);
}
