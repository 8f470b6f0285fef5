//! `coro::when_any`: the first future to finish wins, the others are dropped
//! (libcoro's `coro_when_any` example).
//!
//! Expected output:
//! ```text
//! result = 1
//! result = -1
//! ```

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use coro::Task;

/// What a sleep shares with the timer thread: fired yet, and whom to wake.
type SleepState = Arc<Mutex<(bool, Option<Waker>)>>;

/// A timer for this example: one thread fires every sleep in deadline order,
/// so the 50 ms sleep always wakes its task before the 100 ms one, however
/// loaded the machine is. (The I/O scheduler's `sleep` is the real thing; this
/// keeps the example about `when_any` alone.)
fn timer() -> &'static Mutex<Sender<(Instant, SleepState)>> {
    static TIMER: OnceLock<Mutex<Sender<(Instant, SleepState)>>> = OnceLock::new();
    TIMER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<(Instant, SleepState)>();
        std::thread::spawn(move || {
            let mut pending: Vec<(Instant, SleepState)> = Vec::new();
            loop {
                let next = pending.iter().map(|(at, _)| *at).min();
                let received = match next {
                    Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
                    None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                };
                match received {
                    Ok(entry) => pending.push(entry),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                pending.sort_by_key(|(at, _)| *at);
                let now = Instant::now();
                let due = pending.iter().take_while(|(at, _)| *at <= now).count();
                for (_, state) in pending.drain(..due) {
                    let waker = {
                        let mut s = state.lock().unwrap();
                        s.0 = true;
                        s.1.take()
                    };
                    if let Some(w) = waker {
                        w.wake();
                    }
                }
            }
        });
        Mutex::new(tx)
    })
}

fn sleep(d: Duration) -> impl Future<Output = ()> + Send {
    let state: SleepState = Arc::default();
    let mut registered = false;
    std::future::poll_fn(move |cx| {
        let mut s = state.lock().unwrap();
        if s.0 {
            return Poll::Ready(());
        }
        s.1 = Some(cx.waker().clone());
        if !registered {
            registered = true;
            let deadline = Instant::now() + d;
            timer()
                .lock()
                .unwrap()
                .send((deadline, state.clone()))
                .expect("timer thread");
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

// README-BEGIN: the code README shows (tests/readme.rs checks it)
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
// README-END
