//! The io_uring driver's settings, chosen by the user through
//! [`IoSchedulerOptions::uring`](crate::IoSchedulerOptions::uring) (or
//! [`Handle::with_options`](crate::driver::Handle::with_options)). They
//! live with the driver that reads them; the scheduler only passes them on.

use std::time::Duration;

/// io_uring settings (used by the io_uring driver; ignored by epoll).
///
/// # Examples
///
/// ```
/// use coro_io::UringOptions;
/// let o = UringOptions { entries: 256, ..Default::default() };
/// assert_eq!(o.sqpoll_idle, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UringOptions {
    /// Submission queue entries (rounded up to a power of two, at most
    /// 32,768). More ops than this may be in flight: the rest wait in
    /// memory. The completion queue gets four times as many (at most
    /// 65,536, the kernel's limit). Default 1024.
    pub entries: u32,
    /// Enable SQPOLL (a kernel thread polls the submission queue, so
    /// submitting needs no syscall) that sleeps after this idle time.
    /// Default `None`.
    pub sqpoll_idle: Option<Duration>,
    /// Fault injection for tests: make `io_uring_setup` fail with this errno
    /// (e.g. `libc::EPERM`, as seccomp does), so that the epoll fallback of
    /// `DriverKind::Auto` and the error of `DriverKind::IoUring` can be
    /// exercised on any kernel. Default `None`.
    #[doc(hidden)]
    pub inject_setup_error: Option<i32>,
    /// Fault injection for tests: treat the kernel as one without the
    /// file-system opcodes (`OPENAT`, `STATX`, `RENAMEAT`, `UNLINKAT`,
    /// `MKDIRAT`), so that those ops take the blocking pool as they do on
    /// older kernels. Default `false`.
    #[doc(hidden)]
    pub inject_missing_fs_ops: bool,
    /// How the ring runs completion work; `Auto` picks the best one the
    /// scheduler's strategies allow (see [`RingMode`]). Default `Auto`.
    pub ring_mode: RingMode,
    /// The same as `ring_mode: RingMode::Plain` (kept for older callers).
    #[doc(hidden)]
    pub plain_ring: bool,
    /// Stream sockets (TCP, Unix) receive through one multishot receive
    /// each into a ring of provided buffers, where the kernel has them
    /// (Linux 6.0+): the kernel arms a socket's poll once instead of once
    /// per read, and a read whose future is dropped loses nothing (the
    /// bytes wait in the socket's queue). `false`: one receive op per read,
    /// as on older kernels. Default `true`.
    pub multishot_recv: bool,
    /// Provided buffers of 16 KiB each for those receives, shared by all
    /// sockets of the driver (rounded up to a power of two, 2 to 32,768);
    /// when they run out, a socket is read readiness-style (a poll, then a
    /// non-blocking `recv` into the reader's buffer) until buffers are
    /// free again. Default 512 (8 MiB of address space,
    /// committed as buffers are first used): enough that 512 connections
    /// whose requests arrive in one loop turn each get one.
    pub recv_buffers: u16,
}

/// How an io_uring ring runs the kernel's completion work (its "task
/// work"): the one setting that decides how a completion reaches the event
/// loop. Every mode is correct; they differ in cost.
///
/// * `DeferTaskrun` (`IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN`, Linux
///   6.1+): completions are processed only when the loop asks for them,
///   in its own wait, never by interrupting a thread. The cheapest, and
///   possible only where one thread does all the submitting and waiting:
///   a `Spawn` + `Inline` scheduler.
/// * `CoopTaskrun` (`IORING_SETUP_COOP_TASKRUN`, 5.19+): completion work
///   waits for the submitting thread's next kernel entry instead of
///   interrupting it.
/// * `Plain`: the kernel interrupts the submitting thread to run it.
///
/// `Auto` chooses `DeferTaskrun` for `Spawn` + `Inline` schedulers,
/// `Plain` for `ThreadPool` execution (the workers submit, and a worker
/// busy computing would hold `CoopTaskrun` completions back until its next
/// timer tick, about a millisecond) and `CoopTaskrun` for the rest (a
/// `Manual` inline scheduler, a bare driver); on a kernel without the
/// chosen mode the driver falls back along `DeferTaskrun`, `CoopTaskrun`,
/// `Plain`
/// ([`Features`](crate::driver::probe::Features) tells what it got). SQPOLL
/// rings are always `Plain` (the kernel accepts no task-run flag with it).
///
/// A `Manual` scheduler on a `CoopTaskrun` ring keeps each op's completion
/// work with the thread that submitted it, and the poll that carries
/// wake-ups from other threads (a spawn, a waker, `shutdown`) with the
/// first thread that drove it. A program that hands the driving over to
/// another thread while the first stays alive and computes waits for that
/// first thread's next kernel entry (a timer tick, a millisecond or so)
/// for each of them: choose `Plain` for it.
///
/// # Examples
///
/// ```
/// use coro_io::{IoScheduler, IoSchedulerOptions, RingMode, UringOptions};
///
/// let opts = IoSchedulerOptions {
///     uring: UringOptions { ring_mode: RingMode::CoopTaskrun, ..Default::default() },
///     ..Default::default()
/// };
/// let sched = IoScheduler::new(opts)?;
/// // io_uring (unless the kernel or CORO_DRIVER chose epoll): not deferred.
/// let features = sched.driver().uring_features();
/// assert!(features.is_none_or(|f| !f.defer_taskrun));
/// # std::io::Result::Ok(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RingMode {
    /// The best mode the scheduler's strategies and the kernel allow.
    #[default]
    Auto,
    /// Single issuer, completion work deferred to the loop's waits
    /// (`Spawn` + `Inline` schedulers only: elsewhere `IoScheduler::new`
    /// fails with `InvalidInput`).
    DeferTaskrun,
    /// Completion work waits for the submitter's next kernel entry.
    CoopTaskrun,
    /// No task-run flags: what kernels before 5.19 do.
    Plain,
}

impl Default for UringOptions {
    fn default() -> Self {
        UringOptions {
            entries: 1024,
            sqpoll_idle: None,
            inject_setup_error: None,
            inject_missing_fs_ops: false,
            ring_mode: RingMode::Auto,
            plain_ring: false,
            multishot_recv: true,
            recv_buffers: 512,
        }
    }
}
