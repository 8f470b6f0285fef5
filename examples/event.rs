//! `coro::sync::Event`: waiters suspend until the event is set (libcoro's
//! `coro_event` example). Everything runs on this thread: `when_all` drives the
//! tasks concurrently and `sync_wait` blocks until they are all done.
//!
//! Expected output (waiters resume in the order they started waiting; libcoro
//! resumes them in reverse):
//! ```text
//! task 1 is waiting on the event...
//! task 2 is waiting on the event...
//! task 3 is waiting on the event...
//! set task is triggering the event
//! task 1 event triggered, now resuming.
//! task 2 event triggered, now resuming.
//! task 3 event triggered, now resuming.
//! ```

use coro::sync::Event;

// README-BEGIN: the code README shows (tests/readme.rs checks it)
fn main() {
    let e = Event::new(false);

    // These tasks wait until the event has been set before advancing.
    let make_wait_task = |i: u64| {
        let e = &e;
        async move {
            println!("task {i} is waiting on the event...");
            e.wait().await;
            println!("task {i} event triggered, now resuming.");
        }
    };

    // This task triggers the event, letting every waiting task proceed.
    let make_set_task = || {
        let e = &e;
        async move {
            println!("set task is triggering the event");
            e.set();
        }
    };

    // Run the four tasks concurrently on this thread and wait for them all.
    coro::sync_wait(coro::when_all!(
        make_wait_task(1),
        make_wait_task(2),
        make_wait_task(3),
        make_set_task()
    ));
}
// README-END
