//! `coro::sync::Mutex`: 100 tasks on a 4-thread pool append to one vector
//! under the mutex (libcoro's `coro_mutex` example).
//!
//! Expected output: the numbers 1 to 100, each once, in an order that varies
//! from run to run with the pool's scheduling, e.g.
//! ```text
//! 1, 2, 3, 5, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, ...
//! ```

use std::sync::Arc;

use coro::io::{ThreadPool, ThreadPoolOptions};
use coro::sync::Mutex;

// README-BEGIN: the code README shows (tests/readme.rs checks it)
fn main() {
    let tp = ThreadPool::new(ThreadPoolOptions {
        thread_count: 4,
        ..Default::default()
    });
    let output = Arc::new(Mutex::new(Vec::<u64>::new()));

    let make_critical_section_task = |tp: ThreadPool, output: Arc<Mutex<Vec<u64>>>, i: u64| {
        tp.spawn(async move {
            // `lock()` returns a guard that unlocks the mutex when dropped, like
            // libcoro's `scoped_lock`.
            {
                let mut guard = output.lock().await;
                guard.push(i);
            } // <-- the guard unlocks the mutex here.
        })
    };

    const NUM_TASKS: u64 = 100;
    let tasks: Vec<_> = (1..=NUM_TASKS)
        .map(|i| make_critical_section_task(tp.clone(), output.clone(), i))
        .collect();
    for done in coro::sync_wait(coro::when_all(tasks)) {
        done.expect("a task panicked");
    }

    // The order depends on how the pool's workers picked the tasks up.
    let output = coro::sync_wait(output.lock());
    let line: String = output.iter().map(|v| format!("{v}, ")).collect();
    println!("{line}");
}
// README-END
