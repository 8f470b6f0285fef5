//! `coro::sync::Semaphore`: at most 2 of 100 tasks on an 8-thread pool are
//! inside the rate-limited section at once (libcoro's `coro_semaphore` example).
//!
//! Expected output: the numbers 1 to 100, each once, in a varying order, e.g.
//! ```text
//! 1, 23, 25, 24, 22, 27, 28, 29, 21, 20, 19, 18, 17, 14, 31, 30, 33, 32, ...
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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
    // How many tasks are inside the rate-limited section (checked below).
    let inside = Arc::new(AtomicUsize::new(0));

    let make_rate_limited_task = |tp: ThreadPool, semaphore: Arc<Semaphore>, task_num: u64| {
        let inside = inside.clone();
        tp.clone().spawn(async move {
            // Only 2 tasks get past this point at a time; the others wait here.
            match semaphore.acquire().await {
                Ok(_permit) => {
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    assert!(now <= 2, "{now} tasks inside");
                    print!("{task_num}, ");
                    // Hold the permit a while: the other workers' tasks wait.
                    tp.yield_now().await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                } // the permit is returned on drop
                Err(e) => print!("{task_num} failed to acquire semaphore [{e}],"),
            }
        })
    };

    const NUM_TASKS: u64 = 100;
    let tasks: Vec<_> = (1..=NUM_TASKS)
        .map(|i| make_rate_limited_task(tp.clone(), semaphore.clone(), i))
        .collect();
    for done in coro::sync_wait(coro::when_all(tasks)) {
        done.expect("a task panicked");
    }
    println!();
}
// README-END
