//! The current scheduler's everyday calls without a handle in hand:
//! [`spawn`], [`sleep`], [`sleep_until`], [`timeout`]
//! ([`spawn_blocking`](crate::spawn_blocking) needs no scheduler at all, and
//! `coro_core::yield_now` works in any executor).
//!
//! Each one is the [`IoScheduler`] method of the same name on
//! [`IoScheduler::current`]: the scheduler whose task (or whose event-loop
//! turn) is running on this thread. Called anywhere else they panic with a
//! message that says so, as tokio's do outside a runtime; keep an
//! [`IoScheduler`] handle and call its methods to work from other threads.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//!
//! let sched = coro_io::IoScheduler::new(Default::default())?;
//! let h = sched.spawn(async {
//!     let child = coro_io::spawn(async { 6 * 7 });
//!     coro_io::sleep(Duration::from_millis(1)).await;
//!     let late = coro_io::timeout(Duration::from_millis(1), std::future::pending::<()>()).await;
//!     assert!(late.is_err());
//!     child.await.unwrap()
//! });
//! assert_eq!(coro_core::sync_wait(h)?, 42);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::future::Future;
use std::time::{Duration, Instant};

use crate::time::{Sleep, Timeout};
use crate::{IoScheduler, JoinHandle};

/// The current scheduler, or a panic naming `what` and the way out.
#[track_caller]
fn current(what: &str) -> IoScheduler {
    current_or(
        what,
        "call the method of the same name on an IoScheduler handle instead",
    )
}

/// The current scheduler, or a panic naming `what` and `instead`, what to
/// do elsewhere.
#[track_caller]
pub(crate) fn current_or(what: &str, instead: &str) -> IoScheduler {
    match IoScheduler::current() {
        Some(s) => s,
        None => panic!(
            "{what} must be called from a task of an IoScheduler (none is running on this \
             thread); {instead}"
        ),
    }
}

/// [`IoScheduler::spawn`] on the current scheduler.
///
/// # Panics
///
/// Outside a task (or event-loop turn) of an [`IoScheduler`].
#[track_caller]
pub fn spawn<F>(fut: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    current("coro::spawn").spawn(fut)
}

/// [`IoScheduler::sleep`] on the current scheduler.
///
/// # Cancel safety
///
/// Cancel safe: dropping it removes the timer.
///
/// # Panics
///
/// Outside a task (or event-loop turn) of an [`IoScheduler`]: when called,
/// not when awaited.
#[track_caller]
pub fn sleep(d: Duration) -> Sleep {
    current("coro::sleep").sleep(d)
}

/// [`IoScheduler::sleep_until`] on the current scheduler.
///
/// # Cancel safety
///
/// Cancel safe.
///
/// # Panics
///
/// As [`sleep`].
#[track_caller]
pub fn sleep_until(t: Instant) -> Sleep {
    current("coro::sleep_until").sleep_until(t)
}

/// [`IoScheduler::timeout`] on the current scheduler: `Err(Elapsed)` if `d`
/// passes before `fut` completes (then `fut` is dropped).
///
/// # Cancel safety
///
/// As cancel safe as `fut`. Racing an owned-buffer read against a timeout
/// can lose data on io_uring (a read the kernel completed is dropped with
/// its buffer): use the reads with a deadline of their own, which keep
/// what they received (coro-net's `TcpStream::read_timeout`,
/// `UnixStream::read_timeout`, `UdpSocket::recv_timeout` and
/// `recv_from_timeout`, `UnixDatagram::recv_timeout` and
/// `recv_from_timeout`), or time out reads that keep what they received
/// (the `futures_io` adapters of coro-net's streams, `TlsStream::read`).
///
/// # Panics
///
/// As [`sleep`].
#[track_caller]
pub fn timeout<F: Future>(d: Duration, fut: F) -> Timeout<F> {
    current("coro::timeout").timeout(d, fut)
}
