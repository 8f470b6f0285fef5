//! `coro::sync::SharedMutex`: shared and exclusive locking (libcoro's
//! `coro_shared_mutex` example). All tasks run on this thread, taking turns
//! at each `yield_now`, which shows the interleaving step by step.
//!
//! Expected output: shared tasks 4 to 6 ask for the lock after the exclusive
//! task does, so they wait behind it even though the lock is held in shared
//! mode; the writer is not starved:
//! ```text
//! shared task 1 lock_shared()
//! shared task 1 lock_shared() acquired
//! shared task 2 lock_shared()
//! shared task 2 lock_shared() acquired
//! shared task 3 lock_shared()
//! shared task 3 lock_shared() acquired
//! exclusive task lock()
//! shared task 4 lock_shared()
//! shared task 5 lock_shared()
//! shared task 6 lock_shared()
//! shared task 1 unlock_shared()
//! shared task 2 unlock_shared()
//! shared task 3 unlock_shared()
//! exclusive task lock() acquired
//! exclusive task unlock()
//! shared task 4 lock_shared() acquired
//! shared task 5 lock_shared() acquired
//! shared task 6 lock_shared() acquired
//! shared task 4 unlock_shared()
//! shared task 5 unlock_shared()
//! shared task 6 unlock_shared()
//! ```

use std::future::Future;
use std::pin::Pin;

use coro::sync::SharedMutex;

type LocalTask<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

// README-BEGIN: the code README shows (tests/readme.rs checks it)
fn main() {
    let mutex = SharedMutex::new(());

    let make_shared_task = |i: usize| -> LocalTask<'_> {
        let mutex = &mutex;
        Box::pin(async move {
            println!("shared task {i} lock_shared()");
            let _guard = mutex.read().await;
            println!("shared task {i} lock_shared() acquired");
            // Yield at once, so the other shared tasks also get the lock while
            // this one still holds it.
            coro::yield_now().await;
            println!("shared task {i} unlock_shared()");
        })
    };

    let make_exclusive_task = || -> LocalTask<'_> {
        let mutex = &mutex;
        Box::pin(async move {
            println!("exclusive task lock()");
            let _guard = mutex.write().await;
            println!("exclusive task lock() acquired");
            // Do the exclusive work...
            println!("exclusive task unlock()");
        })
    };

    // 3 shared tasks, then an exclusive one, then 3 more shared tasks that
    // will wait until the exclusive task is done.
    let mut tasks: Vec<LocalTask<'_>> = (1..=3).map(make_shared_task).collect();
    tasks.push(make_exclusive_task());
    tasks.extend((4..=6).map(make_shared_task));

    coro::sync_wait(coro::when_all(tasks));
}
// README-END
