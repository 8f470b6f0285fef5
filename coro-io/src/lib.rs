//! coro-io: a thread pool and an I/O scheduler with pluggable drivers.
//!
//! * [`ThreadPool`]: work-stealing pool; [`spawn_blocking`] for blocking code.
//! * [`IoScheduler`]: an event loop (driver + timers) that runs tasks inline
//!   or on a pool, in its own thread or driven by hand
//!   ([`IoScheduler::process_events`]); [`IoScheduler::poll`] for your own fds.
//! * [`driver`]: the [`Driver`](driver::Driver) trait; [`op`]: the I/O
//!   operations (owned buffers, [`buf`]); [`time`]: sleeps, timeouts,
//!   intervals; [`fs::File`]; [`TaskGroup`].
//!
//! # Which driver runs
//!
//! `DriverKind::Auto` (the default) picks io_uring when the kernel allows it
//! (Linux 5.11+, not blocked by seccomp or `kernel.io_uring_disabled`), else
//! epoll; [`driver::Handle::fallback_reason`] says why it fell back (and
//! `CORO_DEBUG=1` prints it). `CORO_DRIVER=epoll|uring|auto` overrides `Auto`;
//! [`IoScheduler::driver_kind`] reports the choice. An explicit
//! `DriverKind::IoUring` fails with an error naming the cause instead.
//!
//! # Examples
//!
//! ```
//! use coro_io::IoScheduler;
//! use std::time::Duration;
//!
//! let sched = IoScheduler::new(Default::default())?;
//! let s = sched.clone();
//! let h = sched.spawn(async move {
//!     s.sleep(Duration::from_millis(1)).await;
//!     "done"
//! });
//! assert_eq!(coro_core::sync_wait(h).unwrap(), "done");
//! # std::io::Result::Ok(())
//! ```
#![doc(test(attr(deny(warnings))))]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod blocking;
pub mod buf;
pub mod driver;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod fs;
pub mod op;
mod scheduler;
mod task;
mod task_group;
pub mod thread_pool;
pub mod time;

pub use blocking::spawn_blocking;
pub use driver::DriverKind;
pub use scheduler::{
    ExecutionStrategy, IoScheduler, IoSchedulerOptions, IoThreadCallback, Metrics, PollOp,
    PollStatus, ThreadStrategy, UringOptions, YieldNow,
};
pub use task::{JoinError, JoinHandle};
pub use task_group::TaskGroup;
pub use thread_pool::{ThreadPool, ThreadPoolOptions};
pub use time::Elapsed;

/// Instantiate driver-generic tests once per driver.
///
/// For every `name` given, a function `fn name(kind: DriverKind)` must exist
/// at the call site; the macro emits `epoll::name` and `uring::name` tests
/// that call it with [`DriverKind::Epoll`] and [`DriverKind::IoUring`]. Every
/// I/O test of the workspace goes through it, so the two drivers can never
/// drift apart; `cargo test uring::` or `cargo test epoll::` runs one side.
///
/// # Examples
///
/// ```no_run
/// # #![allow(dead_code)] // doctests are not built with --test
/// use coro_io::{DriverKind, IoScheduler, IoSchedulerOptions};
///
/// fn starts(kind: DriverKind) {
///     let s = IoScheduler::new(IoSchedulerOptions { driver: kind, ..Default::default() }).unwrap();
///     assert_eq!(s.driver_kind(), kind);
/// }
///
/// coro_io::driver_tests!(starts);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! driver_tests {
    ($($name:ident),* $(,)?) => {
        mod epoll {
            $( #[test] fn $name() { super::$name($crate::DriverKind::Epoll) } )*
        }
        mod uring {
            $( #[test] fn $name() { super::$name($crate::DriverKind::IoUring) } )*
        }
    };
}

/// Run `f` on the blocking pool (file I/O on readiness drivers); detached.
pub(crate) fn blocking_run(f: Box<dyn FnOnce() + Send + 'static>) {
    drop(spawn_blocking(f));
}
