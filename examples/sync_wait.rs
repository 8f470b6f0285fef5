//! `coro::sync_wait`: block the calling thread until a future completes
//! (libcoro's `coro_sync_wait` example).
//!
//! Expected output:
//! ```text
//! Inline Result = 10
//! Offload Result = 20
//! ```

use coro::Task;
use coro::io::thread_pool::{ThreadPool, ThreadPoolOptions};

// README-BEGIN: the code README shows (tests/readme.rs checks it)
// A task that returns a u64. It can be made many times with different arguments.
fn make_task_inline(x: u64) -> Task<u64> {
    Task::new(async move { x + x })
}

// The same work, run on a thread pool: the pool executes the future on one of
// its workers and `sync_wait` parks the calling thread until the worker's
// result arrives.
fn make_task_offload(tp: &ThreadPool, x: u64) -> Task<u64> {
    let handle = tp.spawn(async move { x + x }); // executes on the thread pool
    Task::new(async move { handle.await.expect("the offloaded task does not panic") })
}

fn main() {
    // This blocks the calling thread until the task completes. The task is not
    // given to any pool, so it runs directly on the calling thread.
    let result = coro::sync_wait(make_task_inline(5));
    println!("Inline Result = {result}");

    // A one-thread pool to show offloading the work to another thread.
    let tp = ThreadPool::new(ThreadPoolOptions {
        thread_count: 1,
        ..Default::default()
    });

    // Still blocks the calling thread, but the addition runs on the pool.
    let result = coro::sync_wait(make_task_offload(&tp, 10));
    println!("Offload Result = {result}");
}
// README-END
