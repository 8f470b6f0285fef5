//! What a user chooses when making an [`IoScheduler`](super::IoScheduler)
//! ([`IoSchedulerOptions`] and its strategies) and what it reports
//! ([`Metrics`], [`PollOp`], [`PollStatus`]).

use std::fmt;
use std::sync::Arc;

#[cfg(doc)]
use super::IoScheduler;
use crate::driver::{DriverKind, UringOptions};
use crate::thread_pool::ThreadPoolOptions;

/// A callback run on the event-loop thread (`Spawn` strategy) when it starts or stops.
pub type IoThreadCallback = Arc<dyn Fn() + Send + Sync>;

/// Who runs the event loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ThreadStrategy {
    /// A dedicated thread runs the event loop (libcoro's `spawn`).
    #[default]
    Spawn,
    /// The caller drives it with [`IoScheduler::process_events`] (libcoro's `manual`).
    Manual,
}

/// Where tasks run.
///
/// Not `Copy` (its pool options hold a name and callbacks). Two are equal
/// when they run tasks alike: the same variant, and for pools the same
/// thread count, name and callbacks (the same `Arc`s).
///
/// ```
/// use coro_io::{ExecutionStrategy, IoSchedulerOptions};
///
/// assert_eq!(IoSchedulerOptions::default().execution, ExecutionStrategy::Inline);
/// ```
#[derive(Debug, Clone, Default)]
pub enum ExecutionStrategy {
    /// On the event-loop thread (libcoro's `process_tasks_inline`).
    #[default]
    Inline,
    /// On a thread pool made with these options (libcoro's `process_tasks_on_thread_pool`).
    ThreadPool(ThreadPoolOptions),
}

impl PartialEq for ExecutionStrategy {
    fn eq(&self, other: &Self) -> bool {
        let same = |a: &Option<crate::thread_pool::ThreadCallback>,
                    b: &Option<crate::thread_pool::ThreadCallback>| match (a, b)
        {
            (None, None) => true,
            (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b),
            _ => false,
        };
        match (self, other) {
            (ExecutionStrategy::Inline, ExecutionStrategy::Inline) => true,
            (ExecutionStrategy::ThreadPool(a), ExecutionStrategy::ThreadPool(b)) => {
                // Every field named: a new one must be compared too.
                let ThreadPoolOptions {
                    thread_count,
                    on_thread_start,
                    on_thread_stop,
                    thread_name,
                } = a;
                *thread_count == b.thread_count
                    && *thread_name == b.thread_name
                    && same(on_thread_start, &b.on_thread_start)
                    && same(on_thread_stop, &b.on_thread_stop)
            }
            _ => false,
        }
    }
}

impl Eq for ExecutionStrategy {}

/// Options of [`IoScheduler::new`]; every field has a default.
///
/// # Examples
///
/// ```
/// use coro_io::{DriverKind, IoScheduler, IoSchedulerOptions, ThreadStrategy};
///
/// let sched = IoScheduler::new(IoSchedulerOptions {
///     driver: DriverKind::Epoll,
///     thread_strategy: ThreadStrategy::Manual,
///     ..Default::default()
/// })?;
/// assert_eq!(sched.driver_kind(), DriverKind::Epoll);
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone, Default)]
pub struct IoSchedulerOptions {
    /// Which driver (default `Auto`; `CORO_DRIVER=epoll|uring` overrides `Auto`).
    pub driver: DriverKind,
    /// Spawn an event-loop thread or drive it by hand.
    pub thread_strategy: ThreadStrategy,
    /// Run tasks inline or on a thread pool.
    pub execution: ExecutionStrategy,
    /// io_uring settings.
    pub uring: UringOptions,
    /// Called on the event-loop thread when it starts (`Spawn` only). A
    /// panic in it is caught and reported; the loop runs on.
    pub on_io_thread_start: Option<IoThreadCallback>,
    /// Called on the event-loop thread before it exits (`Spawn` only). A
    /// panic in it is caught and reported.
    pub on_io_thread_stop: Option<IoThreadCallback>,
    /// Use a virtual clock that only moves with [`IoScheduler::advance`] (tests).
    pub start_paused: bool,
}

impl fmt::Debug for IoSchedulerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoSchedulerOptions")
            .field("driver", &self.driver)
            .field("thread_strategy", &self.thread_strategy)
            .field("execution", &self.execution)
            .field("uring", &self.uring)
            .field("on_io_thread_start", &self.on_io_thread_start.is_some())
            .field("on_io_thread_stop", &self.on_io_thread_stop.is_some())
            .field("start_paused", &self.start_paused)
            .finish()
    }
}

/// A snapshot of an [`IoScheduler`], from [`IoScheduler::metrics`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// The backend in use.
    pub driver: DriverKind,
    /// Tasks spawned and not finished (running, queued or suspended).
    pub live_tasks: usize,
    /// Tasks queued to run now (on the pool's queues with pool execution).
    pub queued_tasks: usize,
    /// Tasks that suspended at least once and are still alive.
    pub suspended_tasks: usize,
    /// Pending timers.
    pub timers: usize,
    /// Ops whose memory the driver owns or waits on, including those of
    /// dropped futures whose completion is still due (io_uring).
    pub ops_in_flight: usize,
    /// Op futures waiting on the driver, per kind (non-zero counts only).
    /// Reads and sends of coro-net's TCP and Unix streams on epoll are not
    /// ops (they make their syscalls themselves: see
    /// [`RegisteredFd::poll_read_direct`](crate::driver::RegisteredFd::poll_read_direct))
    /// and are not counted; nor are reads through io_uring's receive queue.
    pub pending_ops: Vec<(crate::op::OpKind, usize)>,
    /// fds with a readiness registration (epoll; 0 on io_uring).
    pub registered_fds: usize,
    /// Ops the driver has run on the blocking pool since it started
    /// ([`Handle::blocking_ops`](crate::driver::Handle::blocking_ops)).
    pub blocking_ops: u64,
}

/// What [`IoScheduler::poll`] waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollOp {
    /// Readable.
    Read,
    /// Writable.
    Write,
    /// Either.
    ReadWrite,
}

/// The outcome of [`IoScheduler::poll`] (libcoro's `poll_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollStatus {
    /// The fd is ready for the requested operation.
    Event,
    /// The timeout elapsed first.
    Timeout,
    /// The fd reported an error (`POLLERR`, `POLLNVAL`, or the wait failed).
    Error,
    /// The peer hung up (`POLLHUP`/`POLLRDHUP` with nothing to read or write).
    Closed,
}
