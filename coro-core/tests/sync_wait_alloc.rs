//! `sync_wait` allocates nothing per poll: a counting global allocator checks it.
//! One test per binary; only the test's own thread is counted (the test
//! harness's main thread may still be allocating for its bookkeeping when
//! the test starts, which on a loaded machine made this fail now and then).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

thread_local! {
    // `const` and `Copy`: reading it allocates nothing and registers no
    // destructor, so the allocator may look at it.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

fn counting(on: bool) {
    COUNTING.with(|c| c.set(on));
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.try_with(Cell::get).unwrap_or(false) {
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
    counting(true);
    let out = coro_core::sync_wait(fut);
    counting(false);
    assert_eq!(out, 7);
    assert_eq!(ALLOCS.load(Ordering::SeqCst), 0, "sync_wait allocated");
    // The counter itself works.
    counting(true);
    drop(std::hint::black_box(Box::new(1u64)));
    counting(false);
    assert_eq!(ALLOCS.load(Ordering::SeqCst), 1);
}
