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
use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use async_task::WithInfo;
use concurrent_queue::ConcurrentQueue;

use crate::driver::{DriverKind, Handle, Interest};
use crate::lifecycle::Lifecycle;
use crate::lock;
use crate::task::{JoinHandle, OwnThread, task_local, task_with};
use crate::thread_pool::ThreadPool;
use crate::time::{Interval, Sleep, Time, Timeout};

mod event_loop;
mod linger;
mod options;

pub use crate::driver::{RingMode, UringOptions};
use event_loop::{CURRENT, LoopGuard, LoopThread, Tracked, WithCurrent};
pub(crate) use event_loop::{CurrentScope, Inner, runs_loop};
pub use options::{
    ExecutionStrategy, IoSchedulerOptions, IoThreadCallback, Metrics, PollOp, PollStatus,
    ThreadStrategy,
};

/// The I/O scheduler: an event loop with a driver (epoll or io_uring) and
/// timers, running tasks inline or on a thread pool.
///
/// Cheap to clone. Dropping the last clone shuts it down. Every clone
/// counts, those that tasks hold and those [`current`](IoScheduler::current)
/// returns included: a task that keeps one alive keeps the scheduler
/// running, so call [`shutdown`](IoScheduler::shutdown) to stop it for sure.
/// So do the I/O objects made on it: coro-net's sockets and listeners,
/// [`fs::File`](crate::fs::File), [`process::Child`](crate::process::Child)
/// and its pipes, [`TaskGroup`](crate::TaskGroup) each hold a clone (timers
/// do not). A detached task looping on a listener's `accept` keeps the
/// scheduler alive after every other handle is gone; and whichever thread
/// drops the last of these objects runs the shutdown. So does a stream or
/// `File` dropped with a write still in flight, until the task that
/// finishes it ends (a stream's gives up after 10 s; a `File`'s waits for
/// its write): dropping your last clone right after returns without a
/// shutdown, and a program that then ends cuts that write short; a
/// `Manual` scheduler nobody drives any more never runs that task, and
/// keeps the socket open. Call `shutdown()`: it lets such writes end first
/// (at most 5 s; not when called from a task on the scheduler's pool).
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
    /// The driver could not be created (see [`DriverKind`]), a thread
    /// could not be spawned, or the thread-pool options are impossible
    /// (`InvalidInput`, see [`ThreadPool::try_new`](crate::thread_pool::ThreadPool::try_new)).
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
            ExecutionStrategy::ThreadPool(o) => {
                // The workers submit the ops of the tasks they run (see
                // `Handle::serve_here`); the caller's start callback after.
                let mut o = o.clone();
                let user = o.on_thread_start.take();
                let server = driver.server();
                o.on_thread_start = Some(Arc::new(move |i| {
                    server.serve_here();
                    if let Some(f) = &user {
                        f(i);
                    }
                }));
                Some(ThreadPool::try_new(o)?)
            }
        };
        // The time handle names its loop by the scheduler's address, known
        // before the scheduler is made.
        let inner = Arc::new_cyclic(|me| Inner {
            time: Arc::new(Time::new(
                opts.start_paused,
                driver.clone(),
                me.as_ptr() as usize,
            )),
            driver,
            queue: ConcurrentQueue::unbounded(),
            pool,
            manual,
            shutdown: AtomicBool::new(false),
            life: Lifecycle::new(),
            drive: Mutex::new(()),
            handles: AtomicUsize::new(0),
            alive: AtomicUsize::new(0),
            lingering: linger::LingerCount::new(),
            no_linger: AtomicBool::new(false),
            local_threads: Mutex::new(Vec::new()),
            thread: Mutex::new(LoopThread::Gone),
            joined: Condvar::new(),
            owner_thread: thread::current().id(),
            on_stop: opts.on_io_thread_stop.clone(),
        });
        let sched = IoScheduler::from_inner(inner.clone());
        if !manual {
            let start = opts.on_io_thread_start.clone();
            let t =
                crate::spawn_thread(thread::Builder::new().name("coro-io".into()), move || {
                    if let Err(e) = inner.driver.enable_here() {
                        // Cannot happen on a ring we just made; say so loudly.
                        crate::warn(format_args!("enabling the io_uring ring failed: {e}"));
                    }
                    inner.driver.serve_here();
                    {
                        // From here on this is the loop's thread (the start
                        // callback may `spawn_local`).
                        let _g = LoopGuard::enter(&inner);
                        if let Some(f) = &start {
                            if catch_unwind(AssertUnwindSafe(&**f)).is_err() {
                                crate::warn(format_args!(
                                    "on_io_thread_start panicked; the event loop runs on"
                                ));
                            }
                        }
                        // A panic in the loop (a foreign waker that panics
                        // when a timer fires, a driver bug) ends the loop but
                        // not the clean-up: tasks are cancelled (later spawns
                        // too), and a later `shutdown()` returns instead of
                        // waiting for a clean-up nobody would run. (The
                        // `shutdown` flag stays for `shutdown()` to set: it
                        // still joins this thread and stops a pool.)
                        let looped = catch_unwind(AssertUnwindSafe(|| {
                            while !inner.shutdown.load(Ordering::Acquire) {
                                if let Err(e) = inner.turn(None, false) {
                                    // Nothing sensible to do but not spin.
                                    crate::warn(format_args!("event loop wait failed: {e}"));
                                    thread::sleep(event_loop::ERROR_PAUSE);
                                }
                            }
                        }));
                        if looped.is_err() {
                            crate::warn(format_args!(
                                "the event loop panicked; its tasks are cancelled"
                            ));
                        } else {
                            crate::survive("the shutdown's lingering tasks", || inner.linger());
                        }
                        if catch_unwind(AssertUnwindSafe(|| inner.finish())).is_err() {
                            crate::warn(format_args!("shutdown clean-up panicked"));
                            inner.life.set_finished();
                            // What the clean-up left queued (here and in this
                            // thread's own queue) is dropped here: no loop
                            // runs it any more.
                            let _ = catch_unwind(AssertUnwindSafe(|| inner.drop_queued()));
                        }
                    }
                    if let Some(f) = &inner.on_stop {
                        if catch_unwind(AssertUnwindSafe(&**f)).is_err() {
                            crate::warn(format_args!("on_io_thread_stop panicked"));
                        }
                    }
                })?;
            *lock(&sched.inner.thread) = LoopThread::Running(t);
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
        // `None` too while this thread's locals are being destroyed.
        CURRENT
            .try_with(|c| c.borrow().clone())
            .ok()
            .flatten()
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
        self.inner.time.timers.len()
    }

    /// Whether the scheduler is shut down or shutting down:
    /// [`shutdown`](IoScheduler::shutdown) was called (or its last handle
    /// dropped), or its clean-up began (also after its loop thread died).
    /// New tasks are refused then.
    pub fn is_shutdown(&self) -> bool {
        self.inner.shutdown.load(Ordering::Acquire) || self.inner.life.is_closed()
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
            fut: Some(fut),
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
        self.spawn_unless(fut, IoScheduler::is_shutdown).0
    }

    /// [`spawn`](IoScheduler::spawn), the task dropped unrun if `refuse`
    /// says so once it is made; and whether it was scheduled.
    fn spawn_unless<F>(
        &self,
        fut: F,
        refuse: fn(&IoScheduler) -> bool,
    ) -> (JoinHandle<F::Output>, bool)
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
            task_with(fut, WithInfo(move |r, i| inner.schedule(r, i)))
        } else {
            task_with(fut, WithInfo(move |r, i| inner.schedule(r, i)))
        };
        if refuse(self) {
            drop(r);
            (h, false)
        } else {
            r.schedule();
            (h, true)
        }
    }

    /// Spawn a detached task that [`shutdown`](IoScheduler::shutdown)
    /// lets finish: for clean-up that must not be cut short, such as the
    /// last bytes a dropped stream still sends (the peer of a tokio
    /// program gets them, as the kernel has them by then). Shutdown runs
    /// the scheduler on until every such task ended, for at most 5 s,
    /// before it cancels what is left; bound the task's own work too
    /// (with [`timeout`](IoScheduler::timeout)). Taken while the shutdown
    /// lingers too (a task that ends then and drops a stream with a send
    /// in flight: that send joins the ones it waits for, within the same
    /// 5 s); returns `false`, and drops `fut` unpolled, once the shutdown
    /// stopped waiting for lingering tasks, just before its clean-up (see
    /// [`takes_lingering`](IoScheduler::takes_lingering)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::time::Duration;
    ///
    /// let sched = coro_io::IoScheduler::new(Default::default())?;
    /// let done = Arc::new(AtomicBool::new(false));
    /// let (s, d) = (sched.clone(), done.clone());
    /// assert!(sched.spawn_lingering(async move {
    ///     s.sleep(Duration::from_millis(20)).await;
    ///     d.store(true, Ordering::SeqCst);
    /// }));
    /// sched.shutdown(); // waits for it
    /// assert!(done.load(Ordering::SeqCst));
    /// # std::io::Result::Ok(())
    /// ```
    pub fn spawn_lingering<F>(&self, fut: F) -> bool
    where
        F: Future<Output = ()> + Send + 'static,
    {
        // Counted, unless the shutdown takes no more: it closes only when
        // the count is 0, in the same word (see `Inner::linger`).
        let Some(count) = event_loop::Lingering::new(&self.inner) else {
            return false;
        };
        let (h, taken) = self.spawn_unless(
            async move {
                let _count = count;
                fut.await
            },
            |s| !s.takes_lingering(),
        );
        h.detach();
        taken
    }

    /// Whether [`spawn_lingering`](IoScheduler::spawn_lingering) takes a
    /// task now: true until the shutdown stops waiting for lingering
    /// tasks (none is left, or its 5 s are up) and its clean-up begins,
    /// also while the shutdown lingers (when
    /// [`is_shutdown`](IoScheduler::is_shutdown) is already true). A value whose drop hands what it owns to such a
    /// task checks it first: refused, the task's future is dropped, and
    /// with it what it owns, whose drop would try again.
    ///
    /// # Examples
    ///
    /// ```
    /// let sched = coro_io::IoScheduler::new(Default::default())?;
    /// assert!(sched.takes_lingering());
    /// sched.shutdown();
    /// assert!(!sched.takes_lingering());
    /// assert!(!sched.spawn_lingering(async {}));
    /// # std::io::Result::Ok(())
    /// ```
    pub fn takes_lingering(&self) -> bool {
        !self.inner.lingering.is_closed() && !self.inner.life.is_closed()
    }

    /// Spawn a `!Send` future on the event-loop thread (Inline execution only).
    ///
    /// # Panics
    ///
    /// With `ExecutionStrategy::ThreadPool`, or when called from a thread
    /// that does not run this scheduler's event loop (a task of it, or for
    /// `Manual` the thread that created it). A local task must also be run
    /// and dropped on that thread: drive a `Manual` scheduler from one
    /// thread. (Run on another, the task fails: its handle reports a
    /// panic. Dropped on another, as when the scheduler is shut down from
    /// there, its future is leaked with a warning and its handle reports
    /// it cancelled.)
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
        let on_loop = self.inner.on_loop_thread()
            || (self.inner.manual && thread::current().id() == self.inner.owner_thread);
        assert!(
            on_loop,
            "spawn_local must be called on the scheduler's event-loop thread"
        );
        // Where local tasks live (shutdown's lingering runs them): counted
        // until the task goes, wherever (outside the `OwnThread`, which
        // leaks what it holds on a foreign thread: the count holds the
        // scheduler).
        let live = event_loop::LocalTask::new(&self.inner);
        let inner = self.inner.clone();
        // Only the caller's future is kept to this thread: the scheduler's
        // bookkeeping around it is dropped wherever the task is.
        let own = OwnThread::new(fut);
        let fut = self.wrap(async move {
            let _live = live;
            own.await
        });
        // SAFETY: the future's `!Send` part is in an `OwnThread` made on
        // this thread, and the handle is made here.
        #[allow(unsafe_code)]
        let (r, h) = unsafe { task_local(fut, WithInfo(move |r, i| inner.schedule(r, i))) };
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
    /// # Shutdown
    ///
    /// A sleep polled from outside the scheduler after its
    /// [`shutdown`](IoScheduler::shutdown) completes early (at its next
    /// poll) instead of waiting for a clock nobody drives. A pacing or retry
    /// loop on another thread that sleeps between attempts must check
    /// [`is_shutdown`](IoScheduler::is_shutdown), or it spins.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping it removes the timer.
    pub fn sleep(&self, d: Duration) -> Sleep {
        self.inner
            .time
            .sleep(self.inner.time.clock.deadline_after(d))
    }

    /// Sleep until `t` (an instant in the past completes at once).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub fn sleep_until(&self, t: Instant) -> Sleep {
        self.inner.time.sleep(self.inner.time.clock.deadline_at(t))
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
    /// # Shutdown
    ///
    /// Polled from outside the scheduler after its
    /// [`shutdown`](IoScheduler::shutdown), the deadline ends early, as a
    /// [`sleep`](IoScheduler::sleep)'s does: `Err(Elapsed)` (as an
    /// `io::Error`, `TimedOut`) before `d` passed. Check
    /// [`is_shutdown`](IoScheduler::is_shutdown) to tell the two apart.
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
        Interval::new(&self.inner.time, period)
    }

    /// Whether the scheduler's clock is virtual (`start_paused`): it
    /// moves only with [`advance`](IoScheduler::advance).
    pub fn is_paused(&self) -> bool {
        self.inner.time.clock.is_paused()
    }

    /// The scheduler's current time (virtual when `start_paused`).
    pub fn now(&self) -> Instant {
        self.inner.time.clock.now()
    }

    /// Virtual clock only: move time forward by `d` and fire due timers.
    ///
    /// # Panics
    ///
    /// If the scheduler was not created with `start_paused: true`.
    pub fn advance(&self, d: Duration) {
        assert!(
            self.inner.time.clock.is_paused(),
            "advance() needs IoSchedulerOptions::start_paused"
        );
        self.inner.time.clock.advance(d);
        self.inner.time.fire(self.inner.time.clock.now_ns());
        self.inner.driver.unpark();
    }

    /// Wait until `fd` is ready for `op`, at most `timeout` (libcoro's `poll`).
    /// `None` waits as long as it takes (libcoro's zero timeout);
    /// `Some(Duration::ZERO)` answers for now, without waiting.
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
        if timeout.is_some_and(|d| d.is_zero()) {
            // "Ready now?": one `poll(2)`, the same answer on both drivers
            // (io_uring would submit the poll and find the zero timer due
            // first: `Timeout` for a ready fd). Counted against the task's
            // budget as the op it replaces, so a loop of probes yields.
            let now = std::future::poll_fn(|cx| {
                coro_core::coop::poll_counted(cx, |_| {
                    std::task::Poll::Ready(crate::op::poll_now(raw, interest))
                })
            });
            return match now.await {
                Ok(Some(rev)) => revents_status(rev),
                Ok(None) => PollStatus::Timeout,
                Err(_) => PollStatus::Error,
            };
        }
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
    /// woke. Returns how many tasks ran (0 also when the wait failed: a
    /// warning says why, and the call pauses 10 ms, so that a loop around
    /// a wait that keeps failing does not spin).
    ///
    /// One thread drives at a time: a call while another thread's turn is
    /// in progress waits for it to end, at most `timeout` (then returns
    /// 0). A call from a task of a turn of this scheduler in progress on
    /// this thread (also from a task of another `Manual` scheduler whose
    /// turn runs inside it) returns 0 at once: that turn is the caller's
    /// own, and it goes on when the task yields. Nothing completes while
    /// nobody drives the scheduler. Once the shutdown's clean-up has
    /// begun (from any thread) it returns 0 without waiting for events:
    /// end a driving loop on [`is_shutdown`](IoScheduler::is_shutdown), or
    /// it spins. Between `shutdown()` and that point a call may still run
    /// a turn, which then runs the clean-up itself: up to 5 s while
    /// lingering tasks (a dropped stream's last send) finish, or as long
    /// waiting for the thread that runs it.
    ///
    /// With [`ExecutionStrategy::ThreadPool`] the tasks run on the pool's
    /// workers, so the count is always 0 (a loop "until it returns 0"
    /// stops after one call), and a task finishing there is not an event
    /// here: a loop
    /// `while !handle.is_finished() { process_events(None) }` over a task
    /// that does no I/O waits for something else to happen. Give such a
    /// loop a timeout, or wait on the handle itself.
    ///
    /// A thread that drives a scheduler this way should not exit while
    /// ops are in flight: io_uring cancels the requests a thread
    /// submitted when that thread exits (the ops then fail with
    /// `ECANCELED`; not on an SQPOLL ring, whose kernel thread submits
    /// them), also those the shutdown's clean-up still waits for
    /// (a dropped file's write, a lingering send), and the driving thread
    /// submits the ops other threads start too (a user's thread writing
    /// through a stream's `AsyncWrite`: a passing thread, which may end
    /// any time, leaves its ops to the driving one). `is_shutdown()` turns
    /// true when `shutdown()` is called, before that clean-up: so after
    /// the loop, call `shutdown()` on the driving thread too, which
    /// returns once the clean-up is over, whichever thread runs it.
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_io::{IoScheduler, IoSchedulerOptions, ThreadStrategy};
    ///
    /// let s = IoScheduler::new(IoSchedulerOptions {
    ///     thread_strategy: ThreadStrategy::Manual,
    ///     ..Default::default()
    /// })?;
    /// let driver = {
    ///     let s = s.clone();
    ///     std::thread::spawn(move || {
    ///         while !s.is_shutdown() {
    ///             s.process_events(Some(std::time::Duration::from_millis(10)));
    ///         }
    ///         s.shutdown(); // waits for the clean-up before this thread ends
    ///     })
    /// };
    /// let h = s.spawn(async { 6 * 7 });
    /// assert_eq!(coro_core::sync_wait(h).unwrap(), 42);
    /// s.shutdown();
    /// driver.join().unwrap();
    /// # std::io::Result::Ok(())
    /// ```
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
        let mut g = lock(&self.inner.thread);
        assert!(
            matches!(*g, LoopThread::Gone),
            "a manual scheduler is driven by one background thread"
        );
        let inner = self.inner.clone();
        let t = thread::Builder::new()
            .name("coro-manual".into())
            .spawn(move || {
                // Until the clean-up is over, not just until the shutdown
                // began: io_uring cancels the requests a thread submitted
                // when that thread exits, so leaving early cancelled the
                // sends the shutdown's lingering tasks were waiting for
                // (whoever cleans up drives them on).
                while !inner.life.is_closed() {
                    inner.process_events(None);
                }
            })
            .expect("spawn the thread that drives a manual scheduler");
        *g = LoopThread::Running(t);
    }

    /// Stop: refuse new tasks, cancel the tasks still pending (their futures
    /// are dropped, their in-flight ops cancelled, waiting at most a few
    /// seconds for the kernel to release buffers), stop the event-loop
    /// thread and, unless called from it, join it. Idempotent: a call while
    /// another thread is shutting the scheduler down returns once the
    /// tasks are cleaned up and the loop's thread has ended.
    ///
    /// Called from one of the scheduler's own tasks on the loop's thread
    /// it cannot wait for itself: it starts the shutdown and returns, and
    /// the loop (or the turn of a `Manual` scheduler in progress) finishes
    /// it. A later call from outside then waits for that, and joins the
    /// loop's thread and the pool's workers. The same from a blocking job
    /// of the scheduler's ([`spawn_blocking`](crate::spawn_blocking) in one
    /// of its tasks, whose task may be waiting for the job), and from a
    /// waker or destructor the loop runs on its thread.
    ///
    /// Tasks spawned with [`spawn_lingering`](IoScheduler::spawn_lingering)
    /// (a dropped stream's last send) run on first, with every other task,
    /// for at most 5 s; not when a task on one of the scheduler's pool
    /// workers calls this: it would wait for tasks that may be queued
    /// behind itself.
    ///
    /// Await the [`JoinHandle`]s you care about before calling it.
    pub fn shutdown(&self) {
        if self
            .inner
            .pool
            .as_ref()
            .is_some_and(ThreadPool::is_worker_thread)
        {
            // This worker blocks below (joining the loop's thread, or
            // cleaning up itself): a lingering task queued on it (its own
            // slot, or a pool of one) would hold the loop for the whole
            // bound, and then be cancelled anyway.
            self.inner.no_linger.store(true, Ordering::Release);
            self.inner.wake_loop();
        }
        if self.inner.in_a_job_here() {
            // A blocking job of this scheduler's: a task (on a worker, on
            // the loop's thread, in a `Manual` turn) may be blocked until
            // the job returns, so no wait below may be a wait for a task:
            // not for another caller's clean-up, nor a join. Start the
            // shutdown; the loop cleans up, and a later call from outside
            // joins.
            if self.inner.shutdown.swap(true, Ordering::SeqCst) {
                return;
            }
            self.inner.driver.unpark();
            if self.inner.manual {
                // No turn in progress: clean up here. Else the turn does
                // when it ends (and its task may be the one waiting); the
                // fence pairs with the one a turn makes after it lets go
                // of the lock (see `TurnHold`), so one of the two cleans up.
                std::sync::atomic::fence(Ordering::SeqCst);
                let drive = match self.inner.drive.try_lock() {
                    Ok(d) => Some(d),
                    Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
                    Err(std::sync::TryLockError::WouldBlock) => None,
                };
                if let Some(_d) = drive {
                    let _g = LoopGuard::enter(&self.inner);
                    crate::survive("the shutdown's lingering tasks", || self.inner.linger());
                    self.inner.finish();
                }
            }
            return;
        }
        // SeqCst: see `Lingering::drop`.
        if self.inner.shutdown.swap(true, Ordering::SeqCst) {
            self.inner.wait_finished();
            // Started from a task on the loop's thread, which could not
            // join itself: whoever comes next from outside does; or
            // another caller joins it now: wait for that.
            if self.inner.turn_in_progress_here() {
                // A destructor run by the clean-up itself (a cancelled
                // task's, taking and dropping a handle): the clean-up goes
                // on when this returns. Joining the pool here would wait
                // for a worker that may be waiting for this very thread
                // (one whose task dropped the last handle).
                return;
            }
            self.join_thread();
            // The first caller may have been a pool task, which cannot
            // join the pool it runs on: join it here, so that no task code
            // runs once this returns (idempotent; skipped on a worker).
            if let Some(pool) = &self.inner.pool {
                pool.shutdown();
            }
            return;
        }
        if self.inner.manual {
            // From a task of a turn in progress on this thread (also one
            // nested in it), the turn cleans up when it ends
            // (`process_events`). Otherwise: wake a thread blocked in
            // `process_events`, wait for its turn to end, clean up here.
            if !self.inner.turn_in_progress_here() {
                self.inner.driver.unpark();
                if event_loop::loop_locals_alive() {
                    let _d = lock(&self.inner.drive);
                    let _g = LoopGuard::enter(&self.inner);
                    crate::survive("the shutdown's lingering tasks", || self.inner.linger());
                    self.inner.finish();
                } else {
                    // The last handle went with this thread's locals (it
                    // lived in a `thread_local!`), and the loop's ones are
                    // gone too: touching them would panic in a
                    // thread-local's destructor, which aborts. Clean up
                    // here without them: tasks woken by the clean-up go to
                    // the shared queue and are dropped on this thread (a
                    // local task on its own), and destructors that ask for
                    // `IoScheduler::current()` get `None`.
                    let _d = lock(&self.inner.drive);
                    self.inner.finish();
                }
                // A thread of ours that drives it (tests' background driver).
                self.join_thread();
            }
        } else {
            self.inner.driver.unpark();
            self.join_thread();
        }
        if self.inner.turn_in_progress_here() {
            // On the loop's thread (a waker or destructor it ran called
            // this), or in a `Manual` turn: the clean-up runs after this
            // returns, and a worker may be waiting for it (a task in
            // `sync_wait` on a timer or an op of this scheduler). Joining
            // the pool here would wait for that worker for ever; a later
            // call from outside joins it (as above).
            return;
        }
        if let Some(pool) = &self.inner.pool {
            pool.shutdown();
        }
    }
}

impl IoScheduler {
    /// Join the loop's thread (or a `Manual` scheduler's background
    /// driver), unless this is that thread: then the handle stays for a
    /// later `shutdown()` from outside. A caller that finds another one
    /// joining it waits until that join is over, so every `shutdown()`
    /// that can wait for the thread returns after it ended. Not joined
    /// under the lock, so that a `shutdown()` on that thread meanwhile
    /// does not wait for us.
    fn join_thread(&self) {
        let me = thread::current().id();
        let mut g = lock(&self.inner.thread);
        loop {
            let target = match &*g {
                LoopThread::Running(t) => t.thread().id(),
                LoopThread::Joining(id) => *id,
                LoopThread::Gone => return,
            };
            if target == me {
                return;
            }
            if let LoopThread::Running(_) = &*g {
                let LoopThread::Running(t) =
                    std::mem::replace(&mut *g, LoopThread::Joining(target))
                else {
                    unreachable!("matched just above")
                };
                drop(g);
                // Gone and the waiters told however the join ends (it
                // panics only if `pthread_join` fails): a state left at
                // `Joining` would make every later caller wait for good.
                struct Joined<'a>(&'a Inner);
                impl Drop for Joined<'_> {
                    fn drop(&mut self) {
                        *lock(&self.0.thread) = LoopThread::Gone;
                        self.0.joined.notify_all();
                    }
                }
                let _joined = Joined(&self.inner);
                let _ = t.join();
                return;
            }
            g = self.inner.joined.wait(g).unwrap_or_else(|e| e.into_inner());
        }
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
