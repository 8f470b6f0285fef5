//! `coro::when_any`: the first future to finish wins, the others are dropped
//! (libcoro's `coro_when_any` example).
//!
//! Expected output:
//! ```text
//! result = 1
//! result = -1
//! ```

use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use coro::Task;

/// A timer for this example: a helper thread sleeps, then wakes the awaiting
/// task. (The I/O scheduler's `sleep` is the real thing; this keeps the example
/// about `when_any` alone.)
fn sleep(d: Duration) -> impl Future<Output = ()> + Send {
    let state: Arc<Mutex<(bool, Option<Waker>)>> = Arc::default();
    let mut started = false;
    std::future::poll_fn(move |cx| {
        let mut s = state.lock().unwrap();
        if s.0 {
            return Poll::Ready(());
        }
        s.1 = Some(cx.waker().clone());
        if !started {
            started = true;
            let state = state.clone();
            std::thread::spawn(move || {
                std::thread::sleep(d);
                let waker = {
                    let mut s = state.lock().unwrap();
                    s.0 = true;
                    s.1.take()
                };
                if let Some(w) = waker {
                    w.wake();
                }
            });
        }
        Poll::Pending
    })
}

// Behaves like a long-running task that produces a valid result.
fn make_long_running_task(execution_time: Duration) -> Task<i64> {
    Task::new(async move {
        sleep(execution_time).await; // fake doing some work...
        1
    })
}

// Fires after 100 ms so we know the other task timed out.
fn make_timeout_task() -> Task<i64> {
    Task::new(async {
        sleep(Duration::from_millis(100)).await;
        -1
    })
}

fn main() {
    // The long-running task completes first.
    let tasks = vec![
        make_long_running_task(Duration::from_millis(50)),
        make_timeout_task(),
    ];
    let (_index, result) = coro::sync_wait(coro::when_any(tasks));
    println!("result = {result}");

    // The long-running task times out: the timeout wins and the long task is dropped.
    let tasks = vec![
        make_long_running_task(Duration::from_millis(500)),
        make_timeout_task(),
    ];
    let (_index, result) = coro::sync_wait(coro::when_any(tasks));
    println!("result = {result}");
}
