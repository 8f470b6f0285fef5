//! `coro::when_all`: await many futures at once, outputs in input order
//! (libcoro's `coro_when_all` example).
//!
//! Expected output:
//! ```text
//! 2
//! 4
//! 6
//! 8
//! 10
//! first: 1.21 second: 20
//! ```

use coro::Task;
use coro::io::thread_pool::{ThreadPool, ThreadPoolOptions};

// README-BEGIN: the code README shows (tests/readme.rs checks it)
// Runs `x + x` on the thread pool, so the tasks execute in parallel.
fn twice(tp: &ThreadPool, x: u64) -> Task<u64> {
    let handle = tp.spawn(async move { x + x });
    Task::new(async move { handle.await.expect("twice does not panic") })
}

fn square(tp: &ThreadPool, x: f64) -> Task<f64> {
    let handle = tp.spawn(async move { x * x });
    Task::new(async move { handle.await.expect("square does not panic") })
}

/// Formats like C++'s default `std::cout << double`: 6 significant digits,
/// trailing zeros dropped (1.1 * 1.1 prints as 1.21).
fn like_cout(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return x.to_string();
    }
    let magnitude = x.abs().log10().floor() as i32;
    let decimals = (5 - magnitude).max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn main() {
    // A pool to execute all the tasks in parallel.
    let tp = ThreadPool::new(ThreadPoolOptions {
        thread_count: 4,
        ..Default::default()
    });

    // Futures of one type can be passed as any iterator (here a Vec).
    let tasks: Vec<Task<u64>> = (0..5).map(|i| twice(&tp, i + 1)).collect();

    // Synchronously wait on this thread for the pool to finish every task.
    let results = coro::sync_wait(coro::when_all(tasks));
    for result in results {
        println!("{result}");
    }

    // The macro form takes futures of different types and returns a tuple.
    let (first, second) = coro::sync_wait(coro::when_all!(square(&tp, 1.1), twice(&tp, 10)));
    println!("first: {} second: {second}", like_cout(first));
}
// README-END
