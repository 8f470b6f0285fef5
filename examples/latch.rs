//! `coro::sync::Latch`: one task waits until all worker tasks counted down
//! (libcoro's `coro_latch` example). The workers run on a one-thread pool.
//!
//! Expected output (the workers' lines may interleave differently; the first
//! and the last line are fixed):
//! ```text
//! latch task is now waiting on all children tasks...
//! worker task 1 is working...
//! worker task 2 is working...
//! worker task 3 is working...
//! worker task 4 is working...
//! worker task 5 is working...
//! worker task 1 is done, counting down on the latch
//! worker task 2 is done, counting down on the latch
//! worker task 3 is done, counting down on the latch
//! worker task 4 is done, counting down on the latch
//! worker task 5 is done, counting down on the latch
//! latch task dependency tasks completed, resuming.
//! ```

use std::sync::Arc;

use coro::io::{ThreadPool, ThreadPoolOptions};
use coro::sync::Latch;

// README-BEGIN: the code README shows (tests/readme.rs checks it)
fn main() {
    // A single worker thread, to show the tasks taking turns.
    let tp = ThreadPool::new(ThreadPoolOptions {
        thread_count: 1,
        ..Default::default()
    });

    const NUM_TASKS: usize = 5;
    let latch = Arc::new(Latch::new(NUM_TASKS));

    // This task waits until every worker has counted down.
    let make_latch_task = |tp: ThreadPool, l: Arc<Latch>| {
        tp.spawn(async move {
            println!("latch task is now waiting on all children tasks...");
            l.wait().await;
            println!("latch task dependency tasks completed, resuming.");
        })
    };

    // Each worker does its 'work' on the pool, then counts down.
    let make_worker_task = |tp: ThreadPool, l: Arc<Latch>, i: usize| {
        tp.clone().spawn(async move {
            println!("worker task {i} is working...");
            // Give the other workers a turn, as if this were long work.
            for _ in 0..i {
                tp.yield_now().await;
            }
            println!("worker task {i} is done, counting down on the latch");
            l.count_down(1);
        })
    };

    // The latch task goes first (the one worker takes tasks in order), so it
    // is waiting before any worker finishes.
    let mut tasks = vec![make_latch_task(tp.clone(), latch.clone())];
    for i in 1..=NUM_TASKS {
        tasks.push(make_worker_task(tp.clone(), latch.clone(), i));
    }
    for done in coro::sync_wait(coro::when_all(tasks)) {
        done.expect("a task panicked");
    }
}
// README-END
