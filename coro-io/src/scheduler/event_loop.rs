//! The event loop of an [`IoScheduler`](super::IoScheduler): its shared
//! state ([`Inner`]), the run queues, one turn (run what is queued, fire
//! timers, wait in the driver), the thread-locals that say which loop runs
//! on this thread, the wrapper every task runs in, and shutdown's
//! clean-up.
//!
//! One thread-identity mechanism: `LOOP`, set by [`LoopGuard`] for as long
//! as a thread runs a loop's turns (a `Spawn` loop's whole thread, a
//! `Manual` scheduler's `process_events` call). A wake on that thread may
//! use the thread's local run queue; any other wake uses the shared one.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll};
use std::thread::{self, ThreadId};
use std::time::Duration;

use async_task::{Runnable, ScheduleInfo};
use concurrent_queue::ConcurrentQueue;

use super::IoThreadCallback;
use super::linger::LingerCount;
use crate::driver::Handle;
use crate::lifecycle::{Lifecycle, Verdict};
use crate::lock;
use crate::thread_pool::ThreadPool;
use crate::time::{NEVER, Time};

/// How long shutdown waits for the kernel to release cancelled ops.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(5);

/// How long shutdown runs the scheduler on for its lingering tasks
/// ([`IoScheduler::spawn_lingering`](super::IoScheduler::spawn_lingering)).
const LINGER_BOUND: Duration = Duration::from_secs(5);

/// A scheduler's shared state: what every handle, task and waker of it
/// points to.
pub(crate) struct Inner {
    pub(crate) driver: Handle,
    /// The clock and timers, shared with every sleep of this scheduler.
    pub(crate) time: Arc<Time>,
    /// Tasks woken from other threads (see `LOCAL` for the loop's own).
    pub(super) queue: ConcurrentQueue<Runnable>,
    pub(super) pool: Option<ThreadPool>,
    pub(super) manual: bool,
    /// Set by `shutdown`; new spawns are refused.
    pub(super) shutdown: AtomicBool,
    /// Suspended tasks and the shutdown flags (see `lifecycle`).
    pub(super) life: Lifecycle,
    /// `Manual`: held by whoever drives a turn or cleans up, so that
    /// `shutdown()` from another thread waits for a turn in progress
    /// instead of racing it.
    pub(super) drive: Mutex<()>,
    /// Public handles alive (the last one dropped shuts down).
    pub(super) handles: AtomicUsize,
    /// Tasks spawned and not yet finished.
    pub(super) alive: AtomicUsize,
    /// Lingering tasks not yet finished, and whether the shutdown takes
    /// no more (see [`Inner::linger`]).
    pub(super) lingering: LingerCount,
    /// Set by a `shutdown()` on one of the pool's workers: no lingering.
    pub(super) no_linger: AtomicBool,
    /// The threads with live local tasks (`spawn_local`), which may only
    /// run there, and how many each has.
    pub(super) local_threads: Mutex<Vec<(ThreadId, usize)>>,
    /// `Spawn`: the loop's thread (`Manual`: a test's background driver),
    /// until a `shutdown()` joins it; `joined` wakes the callers that wait
    /// for that join.
    pub(super) thread: Mutex<LoopThread>,
    pub(super) joined: Condvar,
    /// `Manual`: the thread that made it (`spawn_local` may queue from it).
    pub(super) owner_thread: ThreadId,
    pub(super) on_stop: Option<IoThreadCallback>,
}

thread_local! {
    /// The scheduler whose event loop runs on this thread (identity only).
    static LOOP: Cell<*const Inner> = const { Cell::new(std::ptr::null()) };
    /// The scheduler whose blocking job runs on this thread (identity
    /// only; see [`CurrentScope::run`]).
    static JOB_OF: Cell<*const Inner> = const { Cell::new(std::ptr::null()) };
    /// The scheduler `IoScheduler::current()` returns.
    pub(super) static CURRENT: RefCell<Option<Arc<Inner>>> = const { RefCell::new(None) };
    /// The run queue of the loop running on this thread (`LOOP`) for the
    /// tasks woken on this thread: a completion the loop reaped, a timer
    /// it fired, one task waking another. Most wakes of an `Inline`
    /// scheduler are these, and a plain deque spares them the shared
    /// queue's atomics (two per task run, in the profile of a busy
    /// server). Wakes from other threads use `Inner::queue`.
    static LOCAL: RefCell<VecDeque<Runnable>> = const { RefCell::new(VecDeque::new()) };
    /// The schedulers whose loop (or `Manual` turn) this thread is in,
    /// innermost last (`LoopGuard`): `LOOP` names only the innermost, and a
    /// task of a nested turn may call back into an outer one.
    static DRIVING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Whether this thread runs the event loop of the scheduler whose
/// [`Inner::loop_id`] is `loop_id` (what a sleep asks without holding
/// the scheduler).
pub(crate) fn runs_loop(loop_id: usize) -> bool {
    LOOP.with(|l| l.get() as usize == loop_id)
}

fn pop_local() -> Option<Runnable> {
    LOCAL.with(|l| l.borrow_mut().pop_front())
}

impl Inner {
    pub(super) fn on_loop_thread(&self) -> bool {
        runs_loop(self.loop_id())
    }

    /// Whether a turn of this scheduler is in progress on this thread: its
    /// loop thread or a task of it, also a task of another scheduler's
    /// `Manual` turn nested inside one of this one's. The drive lock
    /// (`Manual`) is then this thread's already.
    pub(super) fn turn_in_progress_here(&self) -> bool {
        self.on_loop_thread()
            || DRIVING
                .try_with(|d| d.borrow().contains(&self.loop_id()))
                .unwrap_or(false)
    }

    /// This scheduler's identity for [`runs_loop`]: its address.
    pub(super) fn loop_id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Make a sleeping event loop re-check its queue and timers.
    pub(crate) fn wake_loop(&self) {
        if !self.on_loop_thread() {
            self.driver.unpark();
        }
    }

    /// The schedule function of every task.
    pub(super) fn schedule(&self, r: Runnable, info: ScheduleInfo) {
        match self.life.verdict(info.woken_while_running) {
            Verdict::Run => {}
            Verdict::CancelNow => return drop(r),
            // `finish` drops it, outside the wake (see `lifecycle`).
            Verdict::CancelLater => {
                if let Err(e) = self.queue.push(r) {
                    drop(e.into_inner());
                }
                if self.life.missed_by_shutdown() {
                    self.drain_elsewhere();
                }
                return;
            }
            Verdict::CancelElsewhere => return cancel_elsewhere(r),
        }
        if let Some(pool) = &self.pool {
            pool.schedule_runnable(r, info.woken_while_running);
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
        // The verdict above was read before the push: shutdown may have
        // run to its end in between (this thread paused after the check),
        // so that no loop will ever look at the queue again. Re-check as a
        // `CancelLater` wake does.
        if self.life.missed_by_shutdown() {
            self.drain_elsewhere();
            return;
        }
        self.wake_loop();
    }

    /// Shutdown is over and tasks may still be queued (a wake that raced
    /// its end): drop them on another thread, as any wake after shutdown.
    fn drain_elsewhere(&self) {
        while let Ok(r) = self.queue.pop() {
            cancel_elsewhere(r);
        }
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
    pub(super) fn queued(&self) -> usize {
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
    pub(super) fn turn(&self, timeout: Option<Duration>, eager: bool) -> io::Result<usize> {
        let mut ran = self.run_queued();
        // One clock read before the wait and one after it.
        let now = self.time.clock.now_ns();
        self.time.fire(now);
        let busy = (eager && ran > 0) || self.queued() > 0;
        // Shutting down, the loop only looks around, unless it runs on for
        // lingering tasks (`linger`): then it waits as usual.
        // SeqCst, as `Lingering::drop`'s (see there).
        let ending = self.shutdown.load(Ordering::SeqCst) && !self.lingering.any_left();
        let wait = if busy || ending {
            Some(Duration::ZERO)
        } else {
            let due = self.time.timers.due();
            let timer = (due != NEVER && !self.time.clock.is_paused())
                .then(|| Duration::from_nanos(due.saturating_sub(now)));
            match (timeout, timer) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        // Re-check: a wake between the queue check and the park is seen by
        // the driver's notify flag, so this cannot sleep through it.
        self.driver.park(wait)?;
        self.time.fire(self.time.clock.now_ns());
        ran += self.run_queued();
        Ok(ran)
    }

    /// [`IoScheduler::process_events`].
    pub(super) fn process_events(self: &Arc<Inner>, timeout: Option<Duration>) -> usize {
        // From a task of a turn of this scheduler in progress on this
        // thread: nothing to drive (and the lock below is ours already).
        if self.life.is_closed() || self.turn_in_progress_here() {
            return 0;
        }
        if !loop_locals_alive() {
            // A thread-local's destructor, after this thread's loop state
            // went: a turn would panic setting it, which aborts there.
            crate::warn(format_args!(
                "process_events called while this thread's locals are being destroyed \
                 (a thread-local's destructor): nothing was driven"
            ));
            return 0;
        }
        // Another thread's turn: wait for it to end, but no longer than
        // `timeout` (it may be waiting for an event without a bound).
        let start = std::time::Instant::now();
        let Some(d) = self.lock_drive(timeout) else {
            return 0;
        };
        let _d = TurnHold {
            inner: self,
            drive: Some(d),
        };
        if self.life.is_closed() {
            return 0;
        }
        let timeout = timeout.map(|t| t.saturating_sub(start.elapsed()));
        let _g = LoopGuard::enter(self);
        // `shutdown()` called by a task of this turn could not clean up
        // (we hold the turn): do it when the turn ends, on this thread;
        // also if it ends in a panic (a foreign waker's), or every later
        // `shutdown()` would wait for the clean-up for good.
        let _finish = FinishIfShutDown(self);
        match self.turn(timeout, true) {
            Ok(n) => n,
            Err(e) => {
                // Said, and paced as the `Spawn` loop's: a caller's loop
                // around a wait that keeps failing must not spin silently.
                crate::warn(format_args!("event loop wait failed: {e}"));
                thread::sleep(timeout.map_or(ERROR_PAUSE, |t| t.min(ERROR_PAUSE)));
                0
            }
        }
    }

    /// The drive lock, waiting for it at most `timeout` (`None`: as long
    /// as it takes). A turn holds it while it waits for events, so the
    /// wait is polled: it only happens while two threads drive one
    /// `Manual` scheduler at once.
    fn lock_drive(&self, timeout: Option<Duration>) -> Option<std::sync::MutexGuard<'_, ()>> {
        let Some(timeout) = timeout else {
            return Some(lock(&self.drive));
        };
        let deadline = std::time::Instant::now() + timeout.min(Duration::from_secs(1 << 32));
        loop {
            match self.drive.try_lock() {
                Ok(g) => return Some(g),
                Err(std::sync::TryLockError::Poisoned(e)) => return Some(e.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return None;
            }
            thread::sleep((deadline - now).min(Duration::from_micros(200)));
        }
    }

    /// Shutdown's first step, before [`finish`](Self::finish) cancels
    /// tasks: run turns while lingering tasks are left, for at most
    /// [`LINGER_BOUND`]. On the loop's thread (or a `Manual` turn's) only,
    /// and not while unwinding. Every task runs on meanwhile; spawns are
    /// refused already.
    ///
    /// It ends by refusing new lingering tasks, and only when none is
    /// left ([`LingerCount::close_if_none`]: a task counted meanwhile
    /// makes it fail, and the linger goes on, still taking new ones, such
    /// as the send of a stream a lingering task drops). A forced end (the
    /// bound, a failed wait, `no_linger`) closes whatever the count.
    pub(super) fn linger(&self) {
        if !self.on_loop_thread()
            || !self.may_run_local_tasks_here()
            || thread::panicking()
            || self.life.is_closed()
        {
            self.lingering.close();
            return;
        }
        let deadline = std::time::Instant::now() + LINGER_BOUND;
        loop {
            while self.lingering.any_left() {
                if self.no_linger.load(Ordering::Acquire) {
                    self.lingering.close();
                    return;
                }
                let now = std::time::Instant::now();
                if now >= deadline {
                    crate::warn(format_args!(
                        "shutdown: lingering tasks still running after {LINGER_BOUND:?}; cancelled"
                    ));
                    self.lingering.close();
                    return;
                }
                if let Err(e) = self.turn(
                    Some((deadline - now).min(Duration::from_millis(100))),
                    false,
                ) {
                    crate::warn(format_args!("event loop wait failed: {e}"));
                    self.lingering.close();
                    return;
                }
            }
            // Tests: widen the window between the count seen at 0 and
            // the close.
            #[cfg(feature = "fault-injection")]
            crate::fault::after_linger();
            // Closed now, or by another path already: nothing more to
            // wait for either way. Else a task was counted meanwhile:
            // linger on.
            if self.lingering.close_if_none() {
                return;
            }
        }
    }

    /// Whether this thread may run the scheduler's local tasks: those of
    /// a `Spawn` one live on its loop's thread, where it lingers; those of
    /// a `Manual` one on the threads that spawned them (any thread in a
    /// turn may). Run elsewhere they fail a thread check, where the
    /// clean-up cancels them.
    fn may_run_local_tasks_here(&self) -> bool {
        if !self.manual {
            return true;
        }
        let me = thread::current().id();
        lock(&self.local_threads).iter().all(|&(t, _)| t == me)
    }

    /// Shutdown clean-up, once: on the loop thread (`Spawn`) or under the
    /// drive lock (`Manual`).
    pub(super) fn finish(&self) {
        // From here on tasks are cancelled instead of run: every pending
        // task's future (and with it its ops) is dropped once its timer or
        // I/O waiter is woken below.
        let Some(mut wake) = self.life.close() else {
            return;
        };
        // Each step runs even if one before panicked (a foreign waker, a
        // task's destructor): otherwise ops stay in flight and a later
        // `shutdown()` waits for `set_finished` forever.
        crate::survive("dropping a queued task", || self.drop_queued());
        // Every suspended task, whatever it waits on.
        self.time.timers.drain(&mut wake);
        crate::survive("a waker woken at shutdown", || crate::wake_all(wake));
        // The woken tasks are in the queue: cancel them here, where no
        // lock is held (see `schedule`).
        crate::survive("dropping a queued task", || self.drop_queued());
        crate::survive("cancelling the driver's ops", || {
            self.driver.cancel_all(SHUTDOWN_BOUND)
        });
        crate::survive("dropping a queued task", || self.drop_queued());
        self.life.set_finished();
        crate::survive("dropping a queued task", || self.drop_queued());
    }

    /// A second `shutdown()` caller: wait until the first one's clean-up
    /// is over, unless this thread is the one that must do it (a task of
    /// the loop or of the turn in progress).
    pub(super) fn wait_finished(&self) {
        if !self.turn_in_progress_here() {
            self.life.wait_finished();
        }
    }

    /// Cancel every queued task, including those that the cancellations
    /// wake in turn (a dropped lock guard wakes the next waiter).
    pub(super) fn drop_queued(&self) {
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

/// Whether this thread's loop thread-locals can still be set: not once
/// the thread's locals are being destroyed (a scheduler whose last handle
/// lived in another thread-local goes then, maybe after them).
pub(super) fn loop_locals_alive() -> bool {
    CURRENT.try_with(|_| ()).is_ok() && LOCAL.try_with(|_| ()).is_ok()
}

/// Sets the thread-locals for the duration of an event-loop turn.
pub(super) struct LoopGuard {
    loop_id: usize,
    prev_loop: *const Inner,
    prev_current: Option<Arc<Inner>>,
    prev_local: VecDeque<Runnable>,
}

impl LoopGuard {
    pub(super) fn enter(inner: &Arc<Inner>) -> LoopGuard {
        let prev_loop = LOOP.with(|l| l.replace(Arc::as_ptr(inner)));
        let _ = DRIVING.try_with(|d| d.borrow_mut().push(inner.loop_id()));
        let prev_current = CURRENT.with(|c| c.replace(Some(inner.clone())));
        // A loop driven from inside another one's task (`Manual`) has its
        // own local queue; the outer one gets its queue back on exit.
        let prev_local = LOCAL.with(|l| l.take());
        LoopGuard {
            loop_id: inner.loop_id(),
            prev_loop,
            prev_current,
            prev_local,
        }
    }
}

impl Drop for LoopGuard {
    fn drop(&mut self) {
        LOOP.with(|l| l.set(self.prev_loop));
        let _ = DRIVING.try_with(|d| {
            let mut d = d.borrow_mut();
            if let Some(i) = d.iter().rposition(|&l| l == self.loop_id) {
                d.remove(i);
            }
        });
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
    pub(super) struct WithCurrent<F> {
        pub(super) inner: Arc<Inner>,
        #[pin]
        pub(super) fut: F,
    }
}

impl<F: Future> Future for WithCurrent<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let fut = this.fut;
        with_current(this.inner, || fut.poll(cx))
    }
}

/// Run `f` with `inner` as the current scheduler (restored after, also
/// if it panics), unless it is already, or this thread's locals are being
/// destroyed (then as it is).
fn with_current<R>(inner: &Arc<Inner>, f: impl FnOnce() -> R) -> R {
    let set = CURRENT.try_with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().is_some_and(|cur| Arc::ptr_eq(cur, inner)) {
            return None;
        }
        Some(c.replace(inner.clone()))
    });
    let Ok(Some(prev)) = set else {
        return f();
    };
    struct Restore(Option<Arc<Inner>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            let _ = CURRENT.try_with(|c| *c.borrow_mut() = prev);
        }
    }
    let _restore = Restore(prev);
    f()
}

/// The current scheduler of the thread that captured it, made current
/// again around a closure run elsewhere: a blocking job (as tokio's
/// blocking tasks run in their runtime's context), so that it can spawn,
/// sleep or open files on it. Holds no counted handle: the scheduler still
/// shuts down when its last handle goes (what the job asks of it then is
/// refused, as after any shutdown).
pub(crate) struct CurrentScope(Option<Arc<Inner>>);

impl CurrentScope {
    /// This thread's current scheduler, if any.
    pub(crate) fn capture() -> CurrentScope {
        CurrentScope(CURRENT.try_with(|c| c.borrow().clone()).ok().flatten())
    }

    /// No scheduler.
    pub(crate) fn none() -> CurrentScope {
        CurrentScope(None)
    }

    /// Run `f` with the captured scheduler current, this thread marked as
    /// running one of its blocking jobs (see [`Inner::in_a_job_here`]).
    pub(crate) fn run<R>(self, f: impl FnOnce() -> R) -> R {
        let Some(inner) = &self.0 else {
            return f();
        };
        let prev = JOB_OF.try_with(|j| j.replace(Arc::as_ptr(inner))).ok();
        struct Restore(Option<*const Inner>);
        impl Drop for Restore {
            fn drop(&mut self) {
                if let Some(p) = self.0 {
                    let _ = JOB_OF.try_with(|j| j.set(p));
                }
            }
        }
        let _restore = Restore(prev);
        with_current(inner, f)
    }
}

impl Inner {
    /// Whether this thread runs a blocking job started from this
    /// scheduler (`spawn_blocking` in one of its tasks): a task of it may
    /// be waiting for the job (`sync_wait` on a worker), so a `shutdown()`
    /// here must not wait for the scheduler's threads.
    pub(super) fn in_a_job_here(&self) -> bool {
        JOB_OF
            .try_with(|j| std::ptr::eq(j.get(), self))
            .unwrap_or(false)
    }
}

/// Where the loop's thread is in its life, for `shutdown()`'s join.
pub(super) enum LoopThread {
    /// None of ours (`Manual`), or joined already.
    Gone,
    Running(thread::JoinHandle<()>),
    /// A `shutdown()` is joining it; the id is the joined thread's.
    Joining(ThreadId),
}

pin_project_lite::pin_project! {
    /// Every task's outer future: counts live tasks (libcoro's `size()`)
    /// and, once the task first suspends, keeps its waker in the
    /// scheduler's registry, so that shutdown can cancel a task that waits
    /// on something that will never wake it (`pending()`, a channel whose
    /// sender leaked): woken, it is scheduled, seen closed and dropped.
    pub(super) struct Tracked<F> {
        pub(super) inner: Arc<Inner>,
        pub(super) key: Option<usize>,
        // Task id for tracing (0 without the `tracing` feature).
        pub(super) id: u64,
        // `None` only inside `drop`: the future goes first, so that what
        // it holds is released by the time `size()` stops counting it.
        #[pin]
        pub(super) fut: Option<F>,
    }

    impl<F> PinnedDrop for Tracked<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // Dropped in place, as pinned data must be; a panicking
            // destructor still leaves the count right (`Uncount`).
            let _uncount = Uncount(&this.inner.alive);
            this.inner.life.on_drop(this.key.take());
            // The future's destructors see their scheduler as current,
            // wherever the task is dropped: also a pool worker running an
            // aborted task's closed runnable, outside any poll (where
            // `WithCurrent` sets it), so that clean-up spawning a task or
            // asking for `IoScheduler::current()` works as in a poll.
            let mut fut = this.fut;
            with_current(this.inner, || fut.set(None));
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
        let Some(fut) = this.fut.as_pin_mut() else {
            unreachable!("a task's future is gone only while the task drops")
        };
        let poll = fut.poll(cx);
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

/// Lowers the live-task count when dropped (see `Tracked`'s `drop`).
struct Uncount<'a>(&'a AtomicUsize);

impl Drop for Uncount<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Cancel a task woken after its scheduler shut down, from a wake that may
/// hold a lock its destructor takes: drop it on the blocking pool instead.
/// (A local task's future is leaked there with a warning, see
/// `task::task_local`; its handle resolves as cancelled.)
fn cancel_elsewhere(r: Runnable) {
    crate::blocking_run(Box::new(move || drop(r)));
}

/// A `Manual` turn's hold of the drive lock. Let go of, it cleans up a
/// shutdown that began too late for the turn's [`FinishIfShutDown`] to
/// see: one from a blocking job (which does not wait for the drive lock,
/// as this turn's task may be waiting for the job), whose own attempt
/// found the lock held.
struct TurnHold<'a> {
    inner: &'a Arc<Inner>,
    drive: Option<std::sync::MutexGuard<'a, ()>>,
}

impl Drop for TurnHold<'_> {
    fn drop(&mut self) {
        drop(self.drive.take());
        // Pairs with the fence in the blocking job's `shutdown()`: either
        // it sees the lock free and cleans up, or this sees its flag.
        std::sync::atomic::fence(Ordering::SeqCst);
        if !self.inner.shutdown.load(Ordering::SeqCst) || self.inner.life.is_closed() {
            return;
        }
        let drive = match self.inner.drive.try_lock() {
            Ok(d) => d,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            // Another turn: its own checks see the flag.
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        let _g = LoopGuard::enter(self.inner);
        crate::survive("the shutdown's lingering tasks", || self.inner.linger());
        crate::survive("the shutdown clean-up", || self.inner.finish());
        drop(drive);
    }
}

/// Ends a `Manual` turn: runs the shutdown clean-up if a task of the turn
/// asked for it (see [`Inner::process_events`]). Dropped before the turn's
/// `LoopGuard` and drive lock.
struct FinishIfShutDown<'a>(&'a Inner);

impl Drop for FinishIfShutDown<'_> {
    fn drop(&mut self) {
        if self.0.shutdown.load(Ordering::Acquire) {
            // Maybe while unwinding: a second panic here would abort.
            crate::survive("the shutdown's lingering tasks", || self.0.linger());
            crate::survive("the shutdown clean-up", || self.0.finish());
        }
    }
}

/// How long a loop pauses after its wait failed (nothing sensible to do
/// but not spin).
pub(super) const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// Counts a live local task on its thread ([`Inner::local_threads`]).
pub(super) struct LocalTask {
    inner: Arc<Inner>,
    thread: ThreadId,
}

impl LocalTask {
    pub(super) fn new(inner: &Arc<Inner>) -> LocalTask {
        let thread = thread::current().id();
        let mut threads = lock(&inner.local_threads);
        match threads.iter_mut().find(|(t, _)| *t == thread) {
            Some((_, n)) => *n += 1,
            None => threads.push((thread, 1)),
        }
        drop(threads);
        LocalTask {
            inner: inner.clone(),
            thread,
        }
    }
}

impl Drop for LocalTask {
    fn drop(&mut self) {
        let mut threads = lock(&self.inner.local_threads);
        if let Some(i) = threads.iter().position(|(t, _)| *t == self.thread) {
            threads[i].1 -= 1;
            if threads[i].1 == 0 {
                threads.swap_remove(i);
            }
        }
    }
}

/// Counts a lingering task ([`Inner::lingering`]) from its spawn until its
/// future is dropped (finished, or cancelled by the clean-up). The last
/// one wakes a loop that waits for them.
pub(super) struct Lingering(Arc<Inner>);

impl Lingering {
    /// Counts a task, unless the shutdown takes no more (`None`).
    pub(super) fn new(inner: &Arc<Inner>) -> Option<Lingering> {
        inner.lingering.enter().then(|| Lingering(inner.clone()))
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        // The count, then the flag; `shutdown()` sets the flag, then the
        // loop reads the count. Each side writes one and reads the other,
        // which only SeqCst orders (with AcqRel/Acquire both reads may
        // see the old value: the loop waited for a wake nobody sent, up
        // to its 100 ms re-check).
        if self.0.lingering.leave() && self.0.shutdown.load(Ordering::SeqCst) {
            self.0.wake_loop();
        }
    }
}
