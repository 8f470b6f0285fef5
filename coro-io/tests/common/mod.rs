//! Helpers shared by the integration tests that run bodies as tasks.

use std::future::Future;
use std::time::Duration;

use coro_core::sync_wait;
use coro_io::IoScheduler;

/// Run `body` as a task of `s` and wait for it, at most 20 s (a hang fails
/// the test instead of stalling the suite).
pub(crate) fn run<T: Send + 'static>(
    s: &IoScheduler,
    body: impl Future<Output = T> + Send + 'static,
) -> T {
    let h = s.spawn(body);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(sync_wait(h));
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("test body did not finish within 20s")
        .expect("test body panicked")
}
