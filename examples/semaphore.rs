//! `coro::sync::Semaphore`: at most 2 of 100 tasks on an 8-thread pool are
//! inside the rate-limited section at once (libcoro's `coro_semaphore` example).
//!
//! Expected output: the numbers 1 to 100, each once, in a varying order, e.g.
//! ```text
//! 1, 23, 25, 24, 22, 27, 28, 29, 21, 20, 19, 18, 17, 14, 31, 30, 33, 32, ...
//! ```

use std::sync::Arc;

use coro::Task;
use coro::io::{ThreadPool, ThreadPoolOptions};
use coro::sync::Semaphore;

// README-BEGIN: the code README shows (tests/readme.rs checks it)
fn main() {
    // More threads and tasks than the semaphore lets through at a time.
    let tp = ThreadPool::new(ThreadPoolOptions {
        thread_count: 8,
        ..Default::default()
    });
    let semaphore = Arc::new(Semaphore::new(2));

    let make_rate_limited_task = |tp: ThreadPool, semaphore: Arc<Semaphore>, task_num: u64| {
        Task::new(async move {
            tp.schedule().await;
            // Only 2 tasks get past this point at a time; the others wait here.
            match semaphore.acquire().await {
                Ok(_permit) => print!("{task_num}, "), // the permit is returned on drop
                Err(e) => print!("{task_num} failed to acquire semaphore [{e}],"),
            }
        })
    };

    const NUM_TASKS: u64 = 100;
    let tasks: Vec<_> = (1..=NUM_TASKS)
        .map(|i| make_rate_limited_task(tp.clone(), semaphore.clone(), i))
        .collect();
    coro::sync_wait(coro::when_all(tasks));
    println!();
}
// README-END
