//! [`IoScheduler`]: an event loop (driver + timers) that runs tasks.
//!
//! Two independent choices, as in libcoro:
//!
//! * [`ThreadStrategy`]: `Spawn` runs the event loop on its own thread;
//!   `Manual` lets the caller drive it with [`IoScheduler::process_events`].
//! * [`ExecutionStrategy`]: `Inline` runs tasks on the event-loop thread
//!   (lowest latency; [`IoScheduler::spawn_local`] for `!Send` futures);
//!   `ThreadPool` hands them to a [`ThreadPool`] and the event loop only
//!   waits for I/O and timers.

/// Future of [`IoScheduler::yield_now`] / [`IoScheduler::schedule`]: the
/// one of `coro_core`.
pub use coro_core::YieldNow;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use async_task::{Runnable, ScheduleInfo, WithInfo};
use concurrent_queue::ConcurrentQueue;

use crate::driver::{DriverKind, Handle, Interest};
use crate::lifecycle::{Lifecycle, Verdict};
use crate::lock;
use crate::task::{JoinHandle, task_local, task_with};
use crate::thread_pool::{ThreadPool, ThreadPoolOptions};
use crate::time::{self, Clock, Interval, NEVER, Sleep, Timeout, Timers};

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
#[derive(Debug, Clone, Default)]
pub enum ExecutionStrategy {
    /// On the event-loop thread (libcoro's `process_tasks_inline`).
    #[default]
    Inline,
    /// On a thread pool made with these options (libcoro's `process_tasks_on_thread_pool`).
    ThreadPool(ThreadPoolOptions),
}

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
    /// memory. The completion queue gets four times as many. Default 1024.
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
        }
    }
}

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
    /// Called on the event-loop thread when it starts (`Spawn` only).
    pub on_io_thread_start: Option<IoThreadCallback>,
    /// Called on the event-loop thread before it exits (`Spawn` only).
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

/// How long shutdown waits for the kernel to release cancelled ops.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(5);

pub(crate) struct Inner {
    pub(crate) driver: Handle,
    pub(crate) clock: Clock,
    pub(crate) timers: Timers,
    queue: ConcurrentQueue<Runnable>,
    pool: Option<ThreadPool>,
    manual: bool,
    /// Set by `shutdown`; new spawns are refused.
    shutdown: AtomicBool,
    /// Suspended tasks and the shutdown flags (see `lifecycle`).
    life: Lifecycle,
    /// `Manual`: held by whoever drives a turn or cleans up, so that
    /// `shutdown()` from another thread waits for a turn in progress
    /// instead of racing it.
    drive: Mutex<()>,
    /// Public handles alive (the last one dropped shuts down).
    handles: AtomicUsize,
    /// Tasks spawned and not yet finished.
    alive: AtomicUsize,
    thread: Mutex<Option<thread::JoinHandle<()>>>,
    loop_thread: Mutex<Option<ThreadId>>,
    owner_thread: ThreadId,
    on_stop: Option<IoThreadCallback>,
}

thread_local! {
    /// The scheduler whose event loop runs on this thread (identity only).
    static LOOP: Cell<*const Inner> = const { Cell::new(std::ptr::null()) };
    /// The scheduler `IoScheduler::current()` returns.
    static CURRENT: RefCell<Option<Arc<Inner>>> = const { RefCell::new(None) };
    /// The run queue of the loop running on this thread (`LOOP`) for the
    /// tasks woken on this thread: a completion the loop reaped, a timer
    /// it fired, one task waking another. Most wakes of an `Inline`
    /// scheduler are these, and a plain deque spares them the shared
    /// queue's atomics (two per task run, in the profile of a busy
    /// server). Wakes from other threads use `Inner::queue`.
    static LOCAL: RefCell<VecDeque<Runnable>> = const { RefCell::new(VecDeque::new()) };
}

fn pop_local() -> Option<Runnable> {
    LOCAL.with(|l| l.borrow_mut().pop_front())
}

impl Inner {
    fn on_loop_thread(&self) -> bool {
        LOOP.with(|l| std::ptr::eq(l.get(), self))
    }

    /// Make a sleeping event loop re-check its queue and timers.
    pub(crate) fn wake_loop(&self) {
        if !self.on_loop_thread() {
            self.driver.unpark();
        }
    }

    /// The schedule function of every task (`local`: made by
    /// `spawn_local`).
    fn schedule(&self, r: Runnable, info: ScheduleInfo, local: bool) {
        match self.life.verdict(info.woken_while_running) {
            Verdict::Run => {}
            Verdict::CancelNow => return drop(r),
            // `finish` drops it, outside the wake (see `lifecycle`).
            Verdict::CancelLater => {
                if let Err(e) = self.queue.push(r) {
                    drop(e.into_inner());
                }
                if self.life.missed_by_shutdown() {
                    // Others' tasks too, whose kind we do not know: a local
                    // one among them (a foreign wake racing the end of
                    // shutdown) panics on the blocking pool, which reports
                    // it and leaks the task.
                    while let Ok(r) = self.queue.pop() {
                        cancel_elsewhere(r, false);
                    }
                }
                return;
            }
            Verdict::CancelElsewhere => return cancel_elsewhere(r, local),
        }
        if let Some(pool) = &self.pool {
            pool.schedule_runnable(r);
            return;
        }
        if self.on_loop_thread() {
            // Run by this thread's turn, or handed to `queue` when the
            // turn ends (`LoopGuard`); shutdown drops it (`drop_queued`).
            return LOCAL.with(|l| l.borrow_mut().push_back(r));
        }
        // The queue is unbounded and only closed by us after shutdown.
        if let Err(e) = self.queue.push(r) {
            drop(e.into_inner());
            return;
        }
        self.wake_loop();
    }

    /// Wake the timers due at `now`.
    fn fire_timers(&self, now: u64) -> usize {
        if now < self.timers.due() {
            return 0;
        }
        let mut wake = Vec::new();
        self.timers.expire(now, &mut wake);
        let n = wake.len();
        for w in wake {
            w.wake();
        }
        n
    }

    /// Run what is queued now (not what those tasks queue: I/O gets a
    /// turn). On the loop thread (inside a `LoopGuard`).
    fn run_queued(&self) -> usize {
        debug_assert!(self.on_loop_thread());
        let mut ran = 0;
        let local = LOCAL.with(|l| l.borrow().len());
        let shared = self.queue.len();
        for _ in 0..local {
            let Some(r) = pop_local() else { break };
            r.run();
            ran += 1;
        }
        for _ in 0..shared {
            let Ok(r) = self.queue.pop() else { break };
            r.run();
            ran += 1;
        }
        ran
    }

    /// Tasks queued to run (the loop thread's own queue counts only when
    /// asked from that thread).
    fn queued(&self) -> usize {
        let local = if self.on_loop_thread() {
            LOCAL.with(|l| l.borrow().len())
        } else {
            0
        };
        local + self.queue.len()
    }

    /// One event-loop turn. Returns the number of tasks run.
    ///
    /// `eager` (manual mode): if tasks ran, do not block for I/O afterwards
    /// (the caller gets control back). The loop thread passes `false`: the
    /// ops its tasks just queued are submitted by the same wait that sleeps,
    /// one syscall per turn instead of a non-blocking one plus a blocking one.
    fn turn(&self, timeout: Option<Duration>, eager: bool) -> io::Result<usize> {
        let mut ran = self.run_queued();
        // One clock read before the wait and one after it.
        let now = self.clock.now_ns();
        self.fire_timers(now);
        let busy = (eager && ran > 0) || self.queued() > 0;
        let wait = if busy || self.shutdown.load(Ordering::Acquire) {
            Some(Duration::ZERO)
        } else {
            let due = self.timers.due();
            let timer = (due != NEVER && !self.clock.is_paused())
                .then(|| Duration::from_nanos(due.saturating_sub(now)));
            match (timeout, timer) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        // Re-check: a wake between the queue check and the park is seen by
        // the driver's notify flag, so this cannot sleep through it.
        self.driver.park(wait)?;
        self.fire_timers(self.clock.now_ns());
        ran += self.run_queued();
        Ok(ran)
    }

    /// [`IoScheduler::process_events`].
    fn process_events(self: &Arc<Inner>, timeout: Option<Duration>) -> usize {
        // From a task of this very turn: nothing to drive (and the lock
        // below is ours already).
        if self.life.is_closed() || self.on_loop_thread() {
            return 0;
        }
        let _d = lock(&self.drive);
        if self.life.is_closed() {
            return 0;
        }
        let _g = LoopGuard::enter(self);
        let ran = self.turn(timeout, true).unwrap_or(0);
        // `shutdown()` called by a task of this turn could not clean up
        // (we hold the turn): do it now, on this thread.
        if self.shutdown.load(Ordering::Acquire) {
            self.finish();
        }
        ran
    }

    /// Shutdown clean-up, once: on the loop thread (`Spawn`) or under the
    /// drive lock (`Manual`).
    fn finish(&self) {
        // From here on tasks are cancelled instead of run: every pending
        // task's future (and with it its ops) is dropped once its timer or
        // I/O waiter is woken below.
        let Some(mut wake) = self.life.close() else {
            return;
        };
        self.drop_queued();
        // Every suspended task, whatever it waits on.
        self.timers.drain(&mut wake);
        for w in wake {
            w.wake();
        }
        // The woken tasks are in the queue: cancel them here, where no
        // lock is held (see `schedule`).
        self.drop_queued();
        self.driver.cancel_all(SHUTDOWN_BOUND);
        self.drop_queued();
        self.life.set_finished();
        self.drop_queued();
    }

    /// A second `shutdown()` caller: wait until the first one's clean-up
    /// is over, unless this thread is the one that must do it (a task of
    /// the loop or of the turn in progress).
    fn wait_finished(&self) {
        if !self.on_loop_thread() {
            self.life.wait_finished();
        }
    }

    /// Cancel every queued task, including those that the cancellations
    /// wake in turn (a dropped lock guard wakes the next waiter).
    fn drop_queued(&self) {
        loop {
            if self.on_loop_thread() {
                while let Some(r) = pop_local() {
                    drop(r);
                }
            }
            let Ok(r) = self.queue.pop() else { break };
            drop(r);
        }
    }
}

/// Sets the thread-locals for the duration of an event-loop turn.
struct LoopGuard {
    prev_loop: *const Inner,
    prev_current: Option<Arc<Inner>>,
    prev_local: VecDeque<Runnable>,
}

impl LoopGuard {
    fn enter(inner: &Arc<Inner>) -> LoopGuard {
        let prev_loop = LOOP.with(|l| l.replace(Arc::as_ptr(inner)));
        let prev_current = CURRENT.with(|c| c.replace(Some(inner.clone())));
        // A loop driven from inside another one's task (`Manual`) has its
        // own local queue; the outer one gets its queue back on exit.
        let prev_local = LOCAL.with(|l| l.take());
        LoopGuard {
            prev_loop,
            prev_current,
            prev_local,
        }
    }
}

impl Drop for LoopGuard {
    fn drop(&mut self) {
        LOOP.with(|l| l.set(self.prev_loop));
        let prev = self.prev_current.take();
        let mine = CURRENT.with(|c| c.replace(prev));
        let left = LOCAL.with(|l| l.replace(std::mem::take(&mut self.prev_local)));
        // Tasks woken at the end of a `Manual` turn: the next turn, from
        // whichever thread, runs them.
        if let Some(inner) = mine {
            for r in left {
                if let Err(e) = inner.queue.push(r) {
                    drop(e.into_inner());
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// Pool execution: make `IoScheduler::current()` work on worker threads.
    struct WithCurrent<F> {
        inner: Arc<Inner>,
        #[pin]
        fut: F,
    }
}

impl<F: Future> Future for WithCurrent<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let prev = CURRENT.with(|c| c.replace(Some(this.inner.clone())));
        struct Restore(Option<Arc<Inner>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let prev = self.0.take();
                CURRENT.with(|c| *c.borrow_mut() = prev);
            }
        }
        let _restore = Restore(prev);
        this.fut.poll(cx)
    }
}

pin_project_lite::pin_project! {
    /// Every task's outer future: counts live tasks (libcoro's `size()`)
    /// and, once the task first suspends, keeps its waker in the
    /// scheduler's registry, so that shutdown can cancel a task that waits
    /// on something that will never wake it (`pending()`, a channel whose
    /// sender leaked): woken, it is scheduled, seen closed and dropped.
    struct Tracked<F> {
        inner: Arc<Inner>,
        key: Option<usize>,
        // Task id for tracing (0 without the `tracing` feature).
        id: u64,
        #[pin]
        fut: F,
    }

    impl<F> PinnedDrop for Tracked<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            this.inner.life.on_drop(this.key.take());
            this.inner.alive.fetch_sub(1, Ordering::AcqRel);
            #[cfg(feature = "tracing")]
            tracing::trace!(task = *this.id, "task dropped");
        }
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        // Shutdown began while we were queued (on a pool, queued tasks still
        // run): do not poll again, cancel ourselves through a self-wake.
        if this.inner.life.is_closed() {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        #[cfg(feature = "tracing")]
        let _span = tracing::trace_span!("task", id = *this.id).entered();
        let poll = this.fut.poll(cx);
        #[cfg(feature = "tracing")]
        if poll.is_ready() {
            tracing::trace!("task complete");
        }
        // Suspending after shutdown emptied the registry (registered just
        // now, or run from a queue after shutdown woke everyone): nothing
        // would ever wake us, so cancel ourselves. The wake comes back as
        // a self-wake, which `schedule` drops at once.
        if poll.is_pending() && this.inner.life.on_pending(this.key, cx.waker()) {
            cx.waker().wake_by_ref();
        }
        poll
    }
}

/// The I/O scheduler: an event loop with a driver (epoll or io_uring) and
/// timers, running tasks inline or on a thread pool.
///
/// Cheap to clone. Dropping the last clone shuts it down. Every clone
/// counts, those that tasks hold and those [`current`](IoScheduler::current)
/// returns included: a task that keeps one alive keeps the scheduler
/// running, so call [`shutdown`](IoScheduler::shutdown) to stop it for sure.
///
/// # Examples
///
/// ```
/// use coro_io::IoScheduler;
/// use std::time::Duration;
///
/// let sched = IoScheduler::new(Default::default())?;
/// let h = sched.spawn(async {
///     let s = IoScheduler::current().expect("inside a task");
///     s.sleep(Duration::from_millis(1)).await;
///     21 * 2
/// });
/// assert_eq!(coro_core::sync_wait(h).unwrap(), 42);
/// sched.shutdown();
/// # std::io::Result::Ok(())
/// ```
pub struct IoScheduler {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for IoScheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoScheduler")
            .field("driver", &self.driver_kind())
            .field("manual", &self.inner.manual)
            .field("pool", &self.inner.pool.is_some())
            .field("tasks", &self.size())
            .finish()
    }
}

impl Clone for IoScheduler {
    fn clone(&self) -> Self {
        IoScheduler::from_inner(self.inner.clone())
    }
}

impl Drop for IoScheduler {
    fn drop(&mut self) {
        if self.inner.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shutdown();
        }
    }
}

impl IoScheduler {
    fn from_inner(inner: Arc<Inner>) -> IoScheduler {
        inner.handles.fetch_add(1, Ordering::AcqRel);
        IoScheduler { inner }
    }

    /// Create a scheduler; with `ThreadStrategy::Spawn` its thread starts now.
    ///
    /// # Errors
    ///
    /// The driver could not be created (see [`DriverKind`]), or a thread
    /// could not be spawned.
    pub fn new(opts: IoSchedulerOptions) -> io::Result<IoScheduler> {
        let manual = opts.thread_strategy == ThreadStrategy::Manual;
        let inline = matches!(opts.execution, ExecutionStrategy::Inline);
        // A Spawn + Inline loop is the only thread that ever waits on or
        // submits to its ring: let io_uring defer completion work to it.
        let driver = if !inline {
            Handle::for_workers(opts.driver, &opts.uring)?
        } else if !manual {
            Handle::for_loop_thread(opts.driver, &opts.uring)?
        } else {
            Handle::with_options(opts.driver, &opts.uring)?
        };
        let pool = match &opts.execution {
            ExecutionStrategy::Inline => None,
            ExecutionStrategy::ThreadPool(o) => Some(ThreadPool::try_new(o.clone())?),
        };
        let inner = Arc::new(Inner {
            driver,
            clock: Clock::new(opts.start_paused),
            timers: Timers::new(),
            queue: ConcurrentQueue::unbounded(),
            pool,
            manual,
            shutdown: AtomicBool::new(false),
            life: Lifecycle::new(),
            drive: Mutex::new(()),
            handles: AtomicUsize::new(0),
            alive: AtomicUsize::new(0),
            thread: Mutex::new(None),
            loop_thread: Mutex::new(None),
            owner_thread: thread::current().id(),
            on_stop: opts.on_io_thread_stop.clone(),
        });
        let sched = IoScheduler::from_inner(inner.clone());
        if !manual {
            let start = opts.on_io_thread_start.clone();
            let t = thread::Builder::new()
                .name("coro-io".into())
                .spawn(move || {
                    *lock(&inner.loop_thread) = Some(thread::current().id());
                    if let Err(e) = inner.driver.enable_here() {
                        // Cannot happen on a ring we just made; say so loudly.
                        crate::warn(format_args!("enabling the io_uring ring failed: {e}"));
                    }
                    if let Some(f) = &start {
                        f();
                    }
                    {
                        let _g = LoopGuard::enter(&inner);
                        while !inner.shutdown.load(Ordering::Acquire) {
                            if let Err(e) = inner.turn(None, false) {
                                // Nothing sensible to do but not spin.
                                crate::warn(format_args!("event loop wait failed: {e}"));
                                thread::sleep(Duration::from_millis(10));
                            }
                        }
                        inner.finish();
                    }
                    if let Some(f) = &inner.on_stop {
                        f();
                    }
                })?;
            *lock(&sched.inner.thread) = Some(t);
        }
        Ok(sched)
    }

    /// The scheduler running the current task, if any.
    ///
    /// The handle counts like any clone (see [`IoScheduler`]): keeping it
    /// beyond the task keeps the scheduler from shutting down when its
    /// other handles are dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_io::IoScheduler;
    /// assert!(IoScheduler::current().is_none());
    /// let sched = IoScheduler::new(Default::default())?;
    /// let h = sched.spawn(async { IoScheduler::current().is_some() });
    /// assert!(coro_core::sync_wait(h).unwrap());
    /// # std::io::Result::Ok(())
    /// ```
    pub fn current() -> Option<IoScheduler> {
        CURRENT
            .with(|c| c.borrow().clone())
            .map(IoScheduler::from_inner)
    }

    /// The driver handle, for [`crate::op`] functions.
    pub fn driver(&self) -> &Handle {
        &self.inner.driver
    }

    /// Which backend runs (never `Auto`).
    pub fn driver_kind(&self) -> DriverKind {
        self.inner.driver.kind()
    }

    /// Tasks spawned and not finished yet (libcoro's `size()`).
    pub fn size(&self) -> usize {
        self.inner.alive.load(Ordering::Acquire)
    }

    /// A snapshot of what the scheduler holds: tasks, timers, ops. What to
    /// look at when something leaks or hangs.
    ///
    /// # Examples
    ///
    /// ```
    /// let sched = coro_io::IoScheduler::new(Default::default())?;
    /// let m = sched.metrics();
    /// assert_eq!((m.live_tasks, m.timers, m.ops_in_flight), (0, 0, 0));
    /// assert_eq!(m.driver, sched.driver_kind());
    /// # std::io::Result::Ok(())
    /// ```
    pub fn metrics(&self) -> Metrics {
        let d = &self.inner.driver;
        Metrics {
            driver: d.kind(),
            live_tasks: self.size(),
            queued_tasks: match &self.inner.pool {
                Some(p) => p.queue_len(),
                None => self.inner.queued(),
            },
            suspended_tasks: self.inner.life.suspended(),
            timers: self.timer_count(),
            ops_in_flight: d.in_flight(),
            pending_ops: d.pending_ops(),
            registered_fds: d.registered_fds(),
            blocking_ops: d.blocking_ops(),
        }
    }

    /// Pending timers (sleeps, timeouts, intervals) of this scheduler.
    pub fn timer_count(&self) -> usize {
        self.inner.timers.len()
    }

    /// Whether [`shutdown`](IoScheduler::shutdown) was called.
    pub fn is_shutdown(&self) -> bool {
        self.inner.shutdown.load(Ordering::Acquire)
    }

    fn wrap<F>(&self, fut: F) -> impl Future<Output = F::Output> + use<F>
    where
        F: Future,
    {
        self.inner.alive.fetch_add(1, Ordering::AcqRel);
        #[cfg(feature = "tracing")]
        let id = {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
            let id = NEXT.fetch_add(1, Ordering::Relaxed);
            tracing::trace!(task = id, driver = ?self.driver_kind(), "task spawned");
            id
        };
        #[cfg(not(feature = "tracing"))]
        let id = 0;
        Tracked {
            inner: self.inner.clone(),
            key: None,
            id,
            fut,
        }
    }

    /// Spawn a task. Inline: it runs on the event-loop thread; ThreadPool:
    /// on a worker.
    ///
    /// After [`shutdown`](IoScheduler::shutdown) the returned handle
    /// resolves to a cancelled [`JoinError`](crate::JoinError).
    ///
    /// # Examples
    ///
    /// ```
    /// let sched = coro_io::IoScheduler::new(Default::default())?;
    /// let h = sched.spawn(async { 1 + 1 });
    /// assert_eq!(coro_core::sync_wait(h).unwrap(), 2);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn spawn<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let inner = self.inner.clone();
        let fut = self.wrap(fut);
        let (r, h) = if self.inner.pool.is_some() {
            let fut = WithCurrent {
                inner: self.inner.clone(),
                fut,
            };
            task_with(fut, WithInfo(move |r, i| inner.schedule(r, i, false)))
        } else {
            task_with(fut, WithInfo(move |r, i| inner.schedule(r, i, false)))
        };
        if self.is_shutdown() {
            drop(r);
        } else {
            r.schedule();
        }
        h
    }

    /// Spawn a `!Send` future on the event-loop thread (Inline execution only).
    ///
    /// # Panics
    ///
    /// With `ExecutionStrategy::ThreadPool`, or when called from a thread
    /// that does not run this scheduler's event loop (a task of it, or for
    /// `Manual` the thread that created it). A local task must also be run
    /// and dropped on that thread: drive a `Manual` scheduler from one thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_io::{IoScheduler, IoSchedulerOptions, ThreadStrategy};
    /// use std::rc::Rc;
    ///
    /// let sched = IoScheduler::new(IoSchedulerOptions {
    ///     thread_strategy: ThreadStrategy::Manual,
    ///     ..Default::default()
    /// })?;
    /// let rc = Rc::new(5);
    /// let h = sched.spawn_local(async move { *rc + 1 });
    /// while !h.is_finished() {
    ///     sched.process_events(Some(std::time::Duration::ZERO));
    /// }
    /// # std::io::Result::Ok(())
    /// ```
    pub fn spawn_local<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        assert!(
            self.inner.pool.is_none(),
            "spawn_local needs ExecutionStrategy::Inline"
        );
        let me = thread::current().id();
        let on_loop = self.inner.on_loop_thread()
            || (self.inner.manual && me == self.inner.owner_thread)
            || *self
                .inner
                .loop_thread
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                == Some(me);
        assert!(
            on_loop,
            "spawn_local must be called on the scheduler's event-loop thread"
        );
        let inner = self.inner.clone();
        let fut = self.wrap(fut);
        let (r, h) = task_local(fut, WithInfo(move |r, i| inner.schedule(r, i, true)));
        if self.is_shutdown() {
            drop(r);
        } else {
            r.schedule();
        }
        h
    }

    /// Yield once: the current task goes to the back of the run queue.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub fn yield_now(&self) -> YieldNow {
        coro_core::yield_now()
    }

    /// libcoro's `schedule()`: reschedule the current task through this
    /// scheduler's queue (it resumes after the tasks queued before it).
    /// A Rust future cannot migrate by itself: to move work onto the
    /// scheduler, [`spawn`](IoScheduler::spawn) it.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub fn schedule(&self) -> YieldNow {
        coro_core::yield_now()
    }

    /// Sleep for `d` (`Duration::MAX`: forever; zero: completes at once).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping it removes the timer.
    pub fn sleep(&self, d: Duration) -> Sleep {
        time::sleep_ns(self, self.inner.clock.deadline_after(d))
    }

    /// Sleep until `t` (an instant in the past completes at once).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub fn sleep_until(&self, t: Instant) -> Sleep {
        time::sleep_ns(self, self.inner.clock.deadline_at(t))
    }

    /// libcoro's `schedule_after(d)`: resume the current task after `d`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub fn schedule_after(&self, d: Duration) -> Sleep {
        self.sleep(d)
    }

    /// Run `fut` with a deadline: `Err(Elapsed)` if `d` passes first (then
    /// `fut` is dropped).
    ///
    /// # Cancel safety
    ///
    /// As cancel safe as `fut`.
    pub fn timeout<F: Future>(&self, d: Duration, fut: F) -> Timeout<F> {
        Timeout::new(fut, self.sleep(d))
    }

    /// A [`Stream`](futures_core::Stream) of ticks every `period` (missed
    /// ticks are skipped; see [`Interval`]).
    ///
    /// # Panics
    ///
    /// If `period` is zero.
    pub fn interval(&self, period: Duration) -> Interval {
        Interval::new(self.inner.clone(), period)
    }

    /// The scheduler's current time (virtual when `start_paused`).
    pub fn now(&self) -> Instant {
        self.inner.clock.now()
    }

    /// Virtual clock only: move time forward by `d` and fire due timers.
    ///
    /// # Panics
    ///
    /// If the scheduler was not created with `start_paused: true`.
    pub fn advance(&self, d: Duration) {
        assert!(
            self.inner.clock.is_paused(),
            "advance() needs IoSchedulerOptions::start_paused"
        );
        self.inner.clock.advance(d);
        self.inner.fire_timers(self.inner.clock.now_ns());
        self.inner.driver.unpark();
    }

    /// Wait until `fd` is ready for `op`, at most `timeout` (libcoro's `poll`).
    ///
    /// A registration the driver makes for this call is dropped when the
    /// last poll of the fd ends (completes or is dropped), so the fd can be
    /// closed by its owner afterwards.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe (waiting consumes nothing).
    pub async fn poll(&self, fd: impl AsFd, op: PollOp, timeout: Option<Duration>) -> PollStatus {
        let raw = fd.as_fd().as_raw_fd();
        let interest = match op {
            PollOp::Read => Interest::Read,
            PollOp::Write => Interest::Write,
            PollOp::ReadWrite => Interest::ReadWrite,
        };
        let _registration = self.inner.driver.poll_guard(raw);
        let fut = crate::op::poll_fd(&self.inner.driver, raw, interest);
        let res = match timeout {
            None => Ok(fut.await),
            Some(d) => self.timeout(d, fut).await,
        };
        match res {
            Err(_) => PollStatus::Timeout,
            Ok(Err(_)) => PollStatus::Error,
            Ok(Ok(rev)) => revents_status(rev),
        }
    }

    /// Drive a `Manual` scheduler: run ready tasks, wait at most `timeout`
    /// for I/O and timers (`None`: until something happens), run what that
    /// woke. Returns how many tasks ran.
    ///
    /// # Panics
    ///
    /// On a `Spawn` scheduler (its own thread drives it).
    pub fn process_events(&self, timeout: Option<Duration>) -> usize {
        assert!(
            self.inner.manual,
            "process_events is for ThreadStrategy::Manual schedulers"
        );
        self.inner.process_events(timeout)
    }

    /// Tests: drive a `Manual` scheduler from a background thread, as a
    /// user's own thread would, without counting as a handle (so dropping
    /// the last one still shuts it down, which ends the thread).
    /// `shutdown()` joins the thread, so that the driver is released
    /// when it returns.
    pub(crate) fn drive_in_background(&self) {
        let inner = self.inner.clone();
        let t = thread::Builder::new()
            .name("coro-manual".into())
            .spawn(move || {
                while !inner.shutdown.load(Ordering::Acquire) {
                    inner.process_events(None);
                }
            })
            .expect("spawn the thread that drives a manual scheduler");
        *lock(&self.inner.thread) = Some(t);
    }

    /// Stop: refuse new tasks, cancel the tasks still pending (their futures
    /// are dropped, their in-flight ops cancelled, waiting at most a few
    /// seconds for the kernel to release buffers), stop the event-loop
    /// thread and, unless called from it, join it. Idempotent: a call while
    /// another thread is shutting the scheduler down returns once the
    /// tasks are cleaned up.
    ///
    /// Called from one of the scheduler's own tasks it cannot wait for
    /// itself: it starts the shutdown and returns, and the loop (or the
    /// turn of a `Manual` scheduler in progress) finishes it.
    ///
    /// Await the [`JoinHandle`]s you care about before calling it.
    pub fn shutdown(&self) {
        if self.inner.shutdown.swap(true, Ordering::AcqRel) {
            self.inner.wait_finished();
            return;
        }
        if self.inner.manual {
            // From a task of a turn in progress, the turn cleans up when it
            // ends (`process_events`). Otherwise: wake a thread blocked in
            // `process_events`, wait for its turn to end, clean up here.
            if !self.inner.on_loop_thread() {
                self.inner.driver.unpark();
                {
                    let _d = lock(&self.inner.drive);
                    let _g = LoopGuard::enter(&self.inner);
                    self.inner.finish();
                }
                // A thread of ours that drives it (tests' background driver).
                let t = lock(&self.inner.thread).take();
                if let Some(t) = t {
                    if t.thread().id() != thread::current().id() {
                        let _ = t.join();
                    }
                }
            }
        } else {
            self.inner.driver.unpark();
            let t = self
                .inner
                .thread
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(t) = t {
                if t.thread().id() != thread::current().id() {
                    let _ = t.join();
                }
            }
        }
        if let Some(pool) = &self.inner.pool {
            pool.shutdown();
        }
    }
}

/// Cancel a task woken after its scheduler shut down, from a wake that may
/// hold a lock its destructor takes: drop it on the blocking pool instead.
/// A `!Send` (local) task may only be dropped on its own thread, which has
/// left: it is leaked (its handle never resolves), which takes a foreign
/// wake of a local task racing the very end of shutdown.
fn cancel_elsewhere(r: Runnable, local: bool) {
    if local {
        crate::warn(format_args!(
            "a local task woken after its scheduler shut down was leaked"
        ));
        std::mem::forget(r);
    } else {
        crate::blocking_run(Box::new(move || drop(r)));
    }
}

fn revents_status(rev: u32) -> PollStatus {
    let rev = rev as libc::c_short;
    if rev & (libc::POLLIN | libc::POLLOUT | libc::POLLPRI) != 0 {
        PollStatus::Event
    } else if rev & (libc::POLLERR | libc::POLLNVAL) != 0 {
        PollStatus::Error
    } else if rev & (libc::POLLHUP | libc::POLLRDHUP) != 0 {
        PollStatus::Closed
    } else {
        PollStatus::Event
    }
}
