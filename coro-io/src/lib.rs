//! coro-io: a thread pool and an I/O scheduler with pluggable drivers.
//!
//! * [`ThreadPool`]: work-stealing pool; [`spawn_blocking`] for blocking code.
//! * [`IoScheduler`]: an event loop (driver + timers) that runs tasks inline
//!   or on a pool, in its own thread or driven by hand
//!   ([`IoScheduler::process_events`]); [`IoScheduler::poll`] for your own fds.
//! * [`driver`]: the epoll and io_uring backends; [`op`]: the I/O
//!   operations (owned buffers, [`buf`]); [`time`]: sleeps, timeouts,
//!   intervals; [`fs::File`]; [`TaskGroup`].
//! * [`coop`] (coro-core's): the budget of ops a task completes per poll
//!   before it yields, so that a task whose I/O never waits cannot starve
//!   the others on its thread; every executor here gives its tasks one.
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
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(rustdoc::broken_intra_doc_links)]
// Unsafe code is allowed only where it is required: owned buffers the
// kernel writes into (`buf`), building io_uring entries and making the
// syscalls of ops (`op`), the drivers' queues and waits, reading the
// provided buffer a receive lease holds (`driver::lease`), registering
// a signal handler, and keeping a local task's `!Send` future to its
// thread (`task`, three items). Every block there says why it is sound.
#![deny(unsafe_code)]

// One clear sentence instead of a wall of errors from the syscalls below.
#[cfg(not(target_os = "linux"))]
compile_error!("coro runs on Linux only: its I/O drivers are epoll and io_uring");

mod ambient;
pub mod blocking;
#[allow(unsafe_code)]
pub mod buf;
pub use coro_core::coop;
pub mod copy;
pub mod driver;
// Test-only knobs: outside the documented, semver-bound API.
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub mod fault;
pub mod fs;
mod lifecycle;
#[allow(unsafe_code)]
pub mod op;
pub mod process;
mod scheduler;
#[allow(unsafe_code)] // signal_hook_registry::register
pub mod signal;
pub mod stdio;
mod task;
mod task_group;
#[doc(hidden)]
pub mod testing;
pub mod thread_pool;
pub mod time;
pub mod wake_list;

pub use ambient::{sleep, sleep_until, spawn, timeout};
pub use blocking::spawn_blocking;
pub use copy::{copy, copy_bidirectional};
pub use driver::DriverKind;
pub use scheduler::{
    ExecutionStrategy, IoScheduler, IoSchedulerOptions, IoThreadCallback, Metrics, PollOp,
    PollStatus, RingMode, ThreadStrategy, UringOptions, YieldNow,
};
pub use stdio::{Stderr, Stdin, Stdout, stderr, stdin, stdout};
pub use task::{JoinError, JoinHandle};
pub use task_group::TaskGroup;
pub use thread_pool::{ThreadPool, ThreadPoolOptions};
pub use time::Elapsed;

/// Instantiate I/O tests once per configuration a user can pick.
///
/// For every `name` given, a function `fn name(cfg: Config)` must exist at
/// the call site ([`Config`](crate::testing::Config)); the macro emits one
/// test per configuration that calls it: `epoll::{inline, pool, manual,
/// manual_pool}::name` and `uring::{defer, coop, coop_pool, plain,
/// plain_pool, sqpoll, sqpoll_pool, manual, manual_pool}::name` (driver,
/// io_uring ring mode, inline or pool execution, spawned or hand-driven
/// loop). A test builds its scheduler with `cfg.sched()`. Every I/O test of
/// the workspace goes through it, so no configuration can drift from the
/// others; `cargo test uring::` or `cargo test epoll::` runs one driver.
///
/// Tests of the bare driver (no scheduler: `cfg.handle()`) use the
/// `drivers:` form, which runs them once per distinct driver:
/// `epoll::inline` and `uring::{defer, coop, plain, sqpoll}`.
///
/// # Examples
///
/// ```no_run
/// # #![allow(dead_code)] // doctests are not built with --test
/// use coro_io::testing::Config;
///
/// fn starts(cfg: Config) {
///     let s = cfg.sched();
///     assert_eq!(s.driver_kind(), cfg.kind());
///     s.shutdown();
/// }
///
/// fn parks(cfg: Config) {
///     let h = cfg.handle();
///     h.park(Some(std::time::Duration::ZERO)).unwrap();
/// }
///
/// coro_io::driver_tests!(starts);
/// mod bare {
///     use super::*;
///     coro_io::driver_tests!(drivers: parks);
/// }
/// # fn main() {}
/// ```
#[doc(hidden)]
#[macro_export]
macro_rules! driver_tests {
    (drivers: $($name:ident),* $(,)?) => {
        mod epoll {
            mod inline { $crate::__driver_tests_for!(EPOLL; $($name),*); }
        }
        mod uring {
            mod defer { $crate::__driver_tests_for!(URING_DEFER; $($name),*); }
            mod coop { $crate::__driver_tests_for!(URING_COOP; $($name),*); }
            mod plain { $crate::__driver_tests_for!(URING_PLAIN; $($name),*); }
            mod sqpoll { $crate::__driver_tests_for!(URING_SQPOLL; $($name),*); }
        }
    };
    ($($name:ident),* $(,)?) => {
        mod epoll {
            mod inline { $crate::__driver_tests_for!(EPOLL; $($name),*); }
            mod pool { $crate::__driver_tests_for!(EPOLL_POOL; $($name),*); }
            mod manual { $crate::__driver_tests_for!(EPOLL_MANUAL; $($name),*); }
            mod manual_pool { $crate::__driver_tests_for!(EPOLL_MANUAL_POOL; $($name),*); }
        }
        mod uring {
            mod defer { $crate::__driver_tests_for!(URING_DEFER; $($name),*); }
            mod coop { $crate::__driver_tests_for!(URING_COOP; $($name),*); }
            mod coop_pool { $crate::__driver_tests_for!(URING_COOP_POOL; $($name),*); }
            mod plain { $crate::__driver_tests_for!(URING_PLAIN; $($name),*); }
            mod plain_pool { $crate::__driver_tests_for!(URING_PLAIN_POOL; $($name),*); }
            mod sqpoll { $crate::__driver_tests_for!(URING_SQPOLL; $($name),*); }
            mod sqpoll_pool { $crate::__driver_tests_for!(URING_SQPOLL_POOL; $($name),*); }
            mod manual { $crate::__driver_tests_for!(URING_MANUAL; $($name),*); }
            mod manual_pool { $crate::__driver_tests_for!(URING_MANUAL_POOL; $($name),*); }
            mod manual_sqpoll { $crate::__driver_tests_for!(URING_MANUAL_SQPOLL; $($name),*); }
        }
    };
}

/// One configuration's tests of [`driver_tests!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __driver_tests_for {
    ($cfg:ident; $($name:ident),*) => {
        $(
            #[test]
            fn $name() {
                super::super::$name($crate::testing::Config::$cfg)
            }
        )*
    };
}

/// The synchronisation types of the modules loom checks
/// (`thread_pool/idle.rs`, `lifecycle.rs`, `driver/read_cell.rs`,
/// `scheduler/linger.rs`): std's here, loom's in the loom tests that
/// compile those files on their own.
mod sync {
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
    pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};
}

/// Lock a mutex whose data stays valid even if a holder panicked (every
/// critical section in this crate leaves it consistent), so poisoning is
/// ignored rather than spread as a panic.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Wake every waker of a batch, each even if one before it panics (see
/// [`coro_core::wake_all`], re-exported here where it started).
pub use coro_core::wake_all;

/// Run one step of a clean-up whose later steps must run whatever happens
/// in this one (it wakes foreign wakers, drops tasks): a panic is reported,
/// not passed on.
pub(crate) fn survive(what: &str, f: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        warn(format_args!("{what} panicked; the clean-up goes on"));
    }
}

/// `thread::Builder::spawn` for every thread coro-io starts, so that
/// tests can make it fail (`fault::Syscall::SpawnThread`) as a process at
/// its thread limit would.
pub(crate) fn spawn_thread<F, T>(
    b: std::thread::Builder,
    f: F,
) -> std::io::Result<std::thread::JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    #[cfg(feature = "fault-injection")]
    if let Some(e) = fault::syscall(fault::Syscall::SpawnThread) {
        return Err(e);
    }
    b.spawn(f)
}

/// Report something the library cannot return as an error (a background
/// step that failed).
pub(crate) fn warn(msg: std::fmt::Arguments<'_>) {
    report("coro-io", msg);
}

/// The one reporting path of the project's crates (coro-net uses it too):
/// with the `tracing` feature and a subscriber listening, a `tracing`
/// warning (target `coro_io`, whichever crate reports); otherwise a line
/// on stderr, so that turning the feature on without installing a
/// subscriber does not silence it. Either way the message starts with
/// `who`; a line stderr cannot take is dropped (never a panic).
#[doc(hidden)]
pub fn report(who: &str, msg: std::fmt::Arguments<'_>) {
    #[cfg(feature = "tracing")]
    {
        let listening =
            tracing::dispatcher::get_default(|d| !d.is::<tracing::subscriber::NoSubscriber>());
        if listening {
            tracing::warn!("{who}: {msg}");
            return;
        }
    }
    // Not `eprintln!`, which panics when stderr cannot be written (a
    // closed pipe, a full disk): a warning that cannot be shown is lost,
    // and the step that warned goes on.
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{who}: {msg}");
}

/// Run `f` on the blocking pool (file I/O on readiness drivers); detached.
pub(crate) fn blocking_run(f: Box<dyn FnOnce() + Send + 'static>) {
    drop(spawn_blocking(f));
}
