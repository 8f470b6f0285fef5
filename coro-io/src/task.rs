//! Tasks: the [`JoinHandle`] returned by every `spawn`, and [`JoinError`].
//!
//! Every executor in this crate (the [`ThreadPool`](crate::thread_pool::ThreadPool),
//! the I/O scheduler, the blocking pool) creates its tasks through [`task`] or
//! [`task_local`]: an `async-task` task whose future is wrapped so that a panic
//! is caught and handed to the [`JoinHandle`] instead of unwinding into the
//! thread that runs the task.

use crate::lock;
use std::any::Any;
use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::thread::ThreadId;

use async_task::{FallibleTask, Runnable, Schedule};

/// What a task's future produces once wrapped: its output or its panic payload.
type Outcome<T> = Result<T, Box<dyn Any + Send + 'static>>;

/// A task's outcome as async-task keeps it: dropped without unwinding.
/// async-task drops the output of a task nobody awaits (its handle dropped
/// or aborted) where a panic aborts the process; an output whose
/// destructor panics must not take the process down with it.
struct Quiet<T>(Option<T>);

impl<T> Drop for Quiet<T> {
    fn drop(&mut self) {
        if let Some(v) = self.0.take() {
            // Nobody to report it to: the panic hook printed it.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(v)));
        }
    }
}

pin_project_lite::pin_project! {
    /// The future, or nothing once it finished and was dropped.
    #[project = StageProj]
    #[project_replace = StageReplace]
    enum Stage<F> {
        Running { #[pin] fut: F },
        Dropped,
    }
}

pin_project_lite::pin_project! {
    /// Polls the inner future and turns a panic into `Err(payload)`, both in
    /// `poll` and in the future's destructor (async-task aborts the process
    /// when dropping a future panics, so we never let that unwind to it).
    struct CatchUnwind<F> {
        #[pin]
        stage: Stage<F>,
    }

    impl<F> PinnedDrop for CatchUnwind<F> {
        fn drop(this: Pin<&mut Self>) {
            // Cancelled while running: drop the future here; a panic in its
            // destructor has nowhere to go and is ignored (the hook printed it).
            let stage = this.project().stage;
            let _ = catch_unwind(AssertUnwindSafe(|| stage.project_replace(Stage::Dropped)));
        }
    }
}

impl<F> CatchUnwind<F> {
    fn new(fut: F) -> Self {
        CatchUnwind {
            stage: Stage::Running { fut },
        }
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Quiet<Outcome<F::Output>>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut stage = self.project().stage;
        let polled = match stage.as_mut().project() {
            StageProj::Running { fut } => {
                catch_unwind(AssertUnwindSafe(|| crate::coop::budgeted(|| fut.poll(cx))))
            }
            // async-task never polls a task again after `Ready`.
            StageProj::Dropped => unreachable!("task polled after completion"),
        };
        let out = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(v)) => Ok(v),
            Err(payload) => Err(payload),
        };
        // Drop the future now, where a panicking destructor can be reported.
        match catch_unwind(AssertUnwindSafe(|| stage.project_replace(Stage::Dropped))) {
            Ok(_) => Poll::Ready(Quiet(Some(out))),
            Err(payload) => Poll::Ready(Quiet(Some(Err(payload)))),
        }
    }
}

/// Create a task. `schedule` is called with the [`Runnable`] each time the task
/// must run. A panic in `future` is caught and reported through the
/// [`JoinHandle`] (it never unwinds into the thread running the `Runnable`).
#[cfg(test)]
pub(crate) fn task<F, S>(future: F, schedule: S) -> (Runnable, JoinHandle<F::Output>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Fn(Runnable) + Send + Sync + 'static,
{
    task_with(future, schedule)
}

/// [`task`] for any `async-task` schedule function, including
/// [`async_task::WithInfo`] (which tells whether the task woke itself).
pub(crate) fn task_with<F, S>(future: F, schedule: S) -> (Runnable, JoinHandle<F::Output>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule + Send + Sync + 'static,
{
    let (runnable, task) =
        async_task::Builder::new().spawn(move |()| CatchUnwind::new(future), schedule);
    (runnable, JoinHandle::new(task.fallible()))
}

/// Same as [`task_with`] for a local task (`spawn_local`): its future is
/// [`OwnThread`]-wrapped inside, so it is `Send`, but its output may not
/// be.
///
/// # Safety
///
/// The output may be `!Send`: it must be made on the calling thread (the
/// caller's future is in an [`OwnThread`] made on this thread, which
/// polls it nowhere else), where the returned handle is made too.
#[allow(dead_code)] // used by the I/O scheduler
#[allow(unsafe_code)] // `spawn_unchecked`, see below
pub(crate) unsafe fn task_local<F, S>(future: F, schedule: S) -> (Runnable, JoinHandle<F::Output>)
where
    F: Future + Send + 'static,
    F::Output: 'static,
    S: Schedule + Send + Sync + 'static,
{
    // SAFETY: the future is `Send` and `'static`, and so is `schedule`:
    // none of `spawn_unchecked`'s conditions applies. It is the unchecked
    // variant only because the output may be `!Send` (async-task's own
    // `spawn_local` makes the same call).
    let (runnable, task) = unsafe {
        async_task::Builder::new().spawn_unchecked(move |()| CatchUnwind::new(future), schedule)
    };
    (runnable, JoinHandle::new(task.fallible()))
}

/// A `!Send` future kept to the thread that made it: polled only there
/// (elsewhere the poll panics before touching it, and the task's handle
/// reports the panic), dropped there, and leaked, memory and all, when
/// dropped anywhere else (a scheduler shut down from another thread), so
/// a pinned future is never freed without its destructor. async-task's
/// own `spawn_local` panics in that destructor instead, which aborts the
/// process.
pub(crate) struct OwnThread<F> {
    owner: ThreadId,
    fut: ManuallyDrop<Pin<Box<F>>>,
}

// SAFETY: the `F` inside is only ever touched (polled, dropped) on the
// `owner` thread; another thread holding an `OwnThread` only moves the box
// pointer around or leaks it.
#[allow(unsafe_code)]
unsafe impl<F> Send for OwnThread<F> {}

impl<F> OwnThread<F> {
    pub(crate) fn new(fut: F) -> OwnThread<F> {
        OwnThread {
            owner: this_thread(),
            fut: ManuallyDrop::new(Box::pin(fut)),
        }
    }
}

/// This thread's id, cached (`thread::current()` clones an `Arc`).
fn this_thread() -> ThreadId {
    thread_local! {
        static ID: ThreadId = std::thread::current().id();
    }
    ID.try_with(|id| *id)
        .unwrap_or_else(|_| std::thread::current().id())
}

impl<F: Future> Future for OwnThread<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        assert!(
            this_thread() == self.owner,
            "a local task (spawn_local) was polled on a thread that did not spawn it"
        );
        self.fut.as_mut().poll(cx)
    }
}

impl<F> Drop for OwnThread<F> {
    #[allow(unsafe_code)] // `ManuallyDrop::drop`
    fn drop(&mut self) {
        if this_thread() == self.owner {
            // SAFETY: dropped once, here, and never used after.
            unsafe { ManuallyDrop::drop(&mut self.fut) }
        } else {
            crate::warn(format_args!(
                "a local task (spawn_local) was dropped on a thread that did not spawn it; \
                 its future is leaked"
            ));
        }
    }
}

/// An owned permission to await a spawned task's result.
///
/// `JoinHandle<T>` is a future of `Result<T, JoinError>`:
/// - `Ok(value)` when the task ran to completion;
/// - `Err(e)` with [`e.is_panic()`](JoinError::is_panic) when the task panicked
///   (the payload is kept: [`JoinError::into_panic`]);
/// - `Err(e)` with [`e.is_cancelled()`](JoinError::is_cancelled) when the task
///   was [aborted](JoinHandle::abort) or its executor dropped it without
///   finishing it (for example a spawn refused after shutdown).
///
/// Dropping a `JoinHandle` *detaches* the task: it keeps running and its output
/// is dropped. It is `Send` and `Sync` when `T: Send`.
///
/// # Examples
///
/// ```
/// use coro_io::thread_pool::{ThreadPool, ThreadPoolOptions};
///
/// let pool = ThreadPool::new(ThreadPoolOptions { thread_count: 1, ..Default::default() });
/// let handle = pool.spawn(async { 6 * 7 });
/// assert_eq!(coro_core::sync_wait(handle).unwrap(), 42);
/// ```
#[must_use = "dropping a JoinHandle detaches the task; call `.detach()` to make that explicit"]
pub struct JoinHandle<T> {
    /// The mutex is only taken by the `&self` methods; `poll` reaches the
    /// task through `get_mut`.
    task: Mutex<Slot<T>>,
}

/// What an aborted handle waits for: async-task's `cancel`, which ends
/// once the task's future is dropped (or had finished).
type Cancelling<T> = Pin<Box<dyn Future<Output = Option<Quiet<Outcome<T>>>>>>;

enum Slot<T> {
    /// With the waker of the last poll of the handle that found it
    /// pending: `abort` wakes it (see there).
    Running(FallibleTask<Quiet<Outcome<T>>>, Option<std::task::Waker>),
    /// Aborted, its future not known to be dropped yet; with the waker of
    /// the last poll of the handle, which `is_finished` polls the cancel
    /// with (async-task keeps one waker: a no-op one would replace it).
    Cancelling(Cancelling<T>, Option<std::task::Waker>),
    /// Being aborted on another call's stack, which polls the cancel
    /// outside the lock (see `abort`): not finished yet. Only the `&self`
    /// methods can see it (`poll` and `drop` cannot run meanwhile).
    Aborting,
    /// Aborted after it had finished: its outcome, which awaiting the
    /// handle returns (as tokio's does).
    Finished(Quiet<Outcome<T>>),
    /// Aborted and its future dropped, with no outcome: awaiting the
    /// handle returns "cancelled".
    Gone,
    /// Resolved: its outcome was handed out. Polled again, the handle
    /// panics (as tokio's does) rather than make up an outcome: a loop
    /// that forgot it had finished would read "cancelled" for a task that
    /// succeeded, and spin on it without yielding.
    Taken,
}

// SAFETY: the only part of a handle that is not `Send` by its type is the
// boxed `Cancelling` future (a trait object names no auto trait). It is
// async-task's `FallibleTask::cancel` future, which holds only the
// `FallibleTask` it was made from: `Send` when `T` is, as the task is
// (async-task's `Task<T>: Send` for `T: Send`).
#[allow(unsafe_code)]
unsafe impl<T: Send> Send for JoinHandle<T> {}
// SAFETY: `&JoinHandle` reaches the slot only through its mutex, which
// makes a `Send` value `Sync` (see `Send` above for why it is `Send`).
#[allow(unsafe_code)]
unsafe impl<T: Send> Sync for JoinHandle<T> {}

// The handle never pins the output it may hold (`Slot::Finished`): it is
// moved out by value, so the handle can move whatever `T` is.
impl<T> Unpin for JoinHandle<T> {}

impl<T> JoinHandle<T> {
    fn new(task: FallibleTask<Quiet<Outcome<T>>>) -> Self {
        JoinHandle {
            task: Mutex::new(Slot::Running(task, None)),
        }
    }

    /// Cancel the task.
    ///
    /// (Called while another thread's `abort` of the same shared handle is
    /// under way, it returns at once: that call closes the task.)
    ///
    /// The executor drops the task's future when it next runs it (soon if
    /// the task is idle, after the current `poll` if it is running; a
    /// `Manual` scheduler's at its next turn). Awaiting this handle
    /// resolves once that happened, as tokio's does, so what the task
    /// held (a listener, a lock, an `Arc`) is released by then; it returns
    /// a [`JoinError`] for which [`is_cancelled`](JoinError::is_cancelled)
    /// is true. A task that had already finished keeps its outcome, as
    /// tokio's does: the handle returns its output (or its panic). One
    /// that finishes in the very poll the abort lands in (aborted from
    /// another thread while it runs, or from inside itself) is reported
    /// cancelled and its output dropped, where tokio returns the output:
    /// do not read "cancelled" as "its work was not done". A blocking job
    /// already running runs to its end first. Aborting twice, or after the
    /// handle resolved, does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_io::thread_pool::{ThreadPool, ThreadPoolOptions};
    ///
    /// let pool = ThreadPool::new(ThreadPoolOptions { thread_count: 1, ..Default::default() });
    /// let handle = pool.spawn(std::future::pending::<()>());
    /// handle.abort();
    /// let err = coro_core::sync_wait(handle).unwrap_err();
    /// assert!(err.is_cancelled());
    /// ```
    pub fn abort(&self)
    where
        T: 'static,
    {
        let mut slot = lock(&self.task);
        let (task, awaiter) = match std::mem::replace(&mut *slot, Slot::Gone) {
            // Finished or closed already: closed by its executor (dropped
            // at shutdown, perhaps right now), which wakes whoever awaits
            // the handle once the future is gone. Cancelling it here would
            // poll async-task's cancel with a no-op waker, which would
            // replace that awaiter's: it would never wake. Awaiting the
            // handle gives the outcome, or "cancelled", as an abort would.
            Slot::Running(task, awaiter) if task.is_finished() => {
                *slot = Slot::Running(task, awaiter);
                return;
            }
            Slot::Running(task, awaiter) => (task, awaiter),
            other => {
                *slot = other;
                return;
            }
        };
        // async-task's `cancel` marks the task closed (the executor drops
        // its future the next time it would run it) on its first poll, and
        // resolves once the future is gone. That poll wakes the waker the
        // handle was last polled with, which may be another executor's
        // code (one that polls its task right there, which may ask this
        // handle `is_finished`): made after the lock.
        *slot = Slot::Aborting;
        drop(slot);
        let unwound = Unwound(Some(&self.task));
        let mut cancel: Cancelling<T> = Box::pin(task.cancel());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let polled = cancel.as_mut().poll(&mut cx);
        unwound.disarm();
        let mut slot = lock(&self.task);
        *slot = match polled {
            Poll::Pending => Slot::Cancelling(cancel, awaiter.clone()),
            Poll::Ready(out) => Slot::cancelled(out),
        };
        drop(slot);
        // That poll left async-task a no-op waker in place of the
        // awaiter's. Closing the task woke the awaiter, unless its executor
        // closed it first (a shutdown since the check above, on another
        // thread): then nothing would. Woken here, it polls again and waits
        // with its own waker (a second wake-up otherwise, which costs a
        // poll).
        if let Some(w) = awaiter {
            w.wake();
        }
    }

    /// [`abort`](Self::abort) for a handle nobody will await (no `'static`
    /// bound): the task is cancelled, and nothing waits for its future to
    /// be dropped.
    pub(crate) fn abort_unwaited(&self) {
        let task = std::mem::replace(&mut *lock(&self.task), Slot::Gone);
        drop(task);
    }

    /// Let the task run on without waiting for it; its output is dropped.
    /// The same as dropping the handle, said explicitly.
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_io::thread_pool::{ThreadPool, ThreadPoolOptions};
    ///
    /// let pool = ThreadPool::new(ThreadPoolOptions { thread_count: 1, ..Default::default() });
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// pool.spawn(async move { tx.send(1).unwrap() }).detach();
    /// assert_eq!(rx.recv().unwrap(), 1);
    /// ```
    pub fn detach(self) {
        drop(self);
    }

    /// Whether the task has finished: completed, panicked, or been
    /// cancelled ([aborted](JoinHandle::abort) through this handle: once
    /// its future was dropped). A task its executor cancels (at shutdown)
    /// counts as finished from the moment it does, while its future's
    /// destructor may still be running there: to know that what the task
    /// held is released, await the handle.
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_io::thread_pool::{ThreadPool, ThreadPoolOptions};
    ///
    /// let pool = ThreadPool::new(ThreadPoolOptions { thread_count: 1, ..Default::default() });
    /// let handle = pool.spawn(std::future::pending::<()>());
    /// assert!(!handle.is_finished());
    /// handle.abort();
    /// while !handle.is_finished() {
    ///     std::thread::yield_now(); // the worker drops the future
    /// }
    /// ```
    pub fn is_finished(&self) -> bool {
        let mut slot = lock(&self.task);
        let (mut cancel, waker) = match std::mem::replace(&mut *slot, Slot::Aborting) {
            Slot::Cancelling(cancel, waker) => (cancel, waker),
            other => {
                let finished = match &other {
                    Slot::Running(t, _) => t.is_finished(),
                    Slot::Aborting => false,
                    Slot::Finished(_) | Slot::Gone | Slot::Taken => true,
                    Slot::Cancelling(..) => unreachable!("matched above"),
                };
                *slot = other;
                return finished;
            }
        };
        // Polled after the lock, as in `abort`: async-task may wake the
        // awaiter's waker in this poll (and drops the one it replaces).
        drop(slot);
        let unwound = Unwound(Some(&self.task));
        let w = waker.as_ref().unwrap_or(std::task::Waker::noop());
        let polled = cancel.as_mut().poll(&mut Context::from_waker(w));
        unwound.disarm();
        let mut slot = lock(&self.task);
        match polled {
            Poll::Pending => {
                *slot = Slot::Cancelling(cancel, waker);
                false
            }
            Poll::Ready(out) => {
                *slot = Slot::cancelled(out);
                drop(slot);
                drop(waker);
                true
            }
        }
    }
}

/// Marks a handle's slot `Gone` if dropped armed: an `abort` or
/// `is_finished` that unwound while the slot said `Aborting` (async-task
/// runs the executor's schedule function in the cancel's first poll,
/// which may panic). The unwinding dropped the handle's part of the task,
/// which cancels it: the handle is finished, cancelled, not unfinished for
/// ever.
struct Unwound<'a, T>(Option<&'a Mutex<Slot<T>>>);

impl<T> Unwound<'_, T> {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl<T> Drop for Unwound<'_, T> {
    fn drop(&mut self) {
        if let Some(m) = self.0 {
            *lock(m) = Slot::Gone;
        }
    }
}

/// # Cancel safety
///
/// Dropping the handle instead of awaiting it detaches the task (it keeps
/// running); no output is lost that could have been delivered elsewhere.
///
/// # Panics
///
/// Polled again after it returned `Ready` (as tokio's handle): in a
/// `select!` loop, guard the branch once it has finished.
impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let slot = this.task.get_mut().unwrap_or_else(|e| e.into_inner());
        let (task, awaiter) = match slot {
            Slot::Running(task, awaiter) => (task, awaiter),
            Slot::Cancelling(cancel, waker) => {
                let Poll::Ready(out) = cancel.as_mut().poll(cx) else {
                    if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        *waker = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                };
                *slot = Slot::Taken;
                return Poll::Ready(result(out));
            }
            Slot::Finished(out) => {
                let out = result(Some(Quiet(out.0.take())));
                *slot = Slot::Taken;
                return Poll::Ready(out);
            }
            Slot::Gone => {
                *slot = Slot::Taken;
                return Poll::Ready(Err(JoinError::cancelled()));
            }
            // Not seen here: `abort` and `is_finished` set it only while
            // they run (which a poll, taking the handle by `&mut`, cannot
            // overlap) and put `Gone` back if they unwind. Were it seen,
            // the task's handle part is gone, which cancels the task.
            Slot::Aborting => {
                *slot = Slot::Taken;
                return Poll::Ready(Err(JoinError::cancelled()));
            }
            Slot::Taken => panic!("JoinHandle polled after completion"),
        };
        let Poll::Ready(out) = Pin::new(task).poll(cx) else {
            if !awaiter.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *awaiter = Some(cx.waker().clone());
            }
            return Poll::Pending;
        };
        // Resolved: a later poll (which futures must not do) panics.
        *slot = Slot::Taken;
        Poll::Ready(result(out))
    }
}

impl<T> Slot<T> {
    /// What an aborted task's slot holds once async-task's cancel ended:
    /// the outcome of a task that had finished first, or nothing.
    fn cancelled(out: Option<Quiet<Outcome<T>>>) -> Slot<T> {
        match out {
            Some(out) => Slot::Finished(out),
            None => Slot::Gone,
        }
    }
}

/// The handle's result from what async-task hands back (`None`: the
/// future was dropped unfinished).
fn result<T>(out: Option<Quiet<Outcome<T>>>) -> Result<T, JoinError> {
    match out.and_then(|mut out| out.0.take()) {
        Some(Ok(v)) => Ok(v),
        Some(Err(payload)) => Err(JoinError::panic(payload)),
        // `Some(Quiet(None))` never happens: each outcome is made with a
        // value and taken once.
        None => Err(JoinError::cancelled()),
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        // An async-task handle cancels its task when dropped; ours detaches
        // (an aborted one is cancelled already: dropping its wait is all).
        let slot = self.task.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Slot::Running(task, _) = std::mem::replace(slot, Slot::Gone) {
            task.detach();
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Why a task did not produce its output: it panicked or it was cancelled.
///
/// # Examples
///
/// ```
/// use coro_io::thread_pool::{ThreadPool, ThreadPoolOptions};
///
/// let pool = ThreadPool::new(ThreadPoolOptions { thread_count: 1, ..Default::default() });
/// let err = coro_core::sync_wait(pool.spawn(async { panic!("boom") })).unwrap_err();
/// assert!(err.is_panic());
/// assert_eq!(*err.into_panic().downcast::<&str>().unwrap(), "boom");
/// ```
pub struct JoinError {
    repr: Repr,
}

enum Repr {
    Cancelled,
    /// The mutex makes the error `Sync` (so it converts into `io::Error` and
    /// `Box<dyn Error + Send + Sync>`); it is never contended.
    Panic(Mutex<Box<dyn Any + Send + 'static>>),
}

impl JoinError {
    pub(crate) fn cancelled() -> Self {
        JoinError {
            repr: Repr::Cancelled,
        }
    }

    pub(crate) fn panic(payload: Box<dyn Any + Send + 'static>) -> Self {
        JoinError {
            repr: Repr::Panic(Mutex::new(payload)),
        }
    }

    /// Whether the task was cancelled (aborted, or dropped by its executor
    /// before it finished, e.g. spawned after shutdown).
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_io::thread_pool::{ThreadPool, ThreadPoolOptions};
    ///
    /// let pool = ThreadPool::new(ThreadPoolOptions { thread_count: 1, ..Default::default() });
    /// pool.shutdown();
    /// let err = coro_core::sync_wait(pool.spawn(async {})).unwrap_err();
    /// assert!(err.is_cancelled() && !err.is_panic());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// Whether the task panicked.
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_io::thread_pool::{ThreadPool, ThreadPoolOptions};
    ///
    /// let pool = ThreadPool::new(ThreadPoolOptions { thread_count: 1, ..Default::default() });
    /// let err = coro_core::sync_wait(pool.spawn(async { panic!("boom") })).unwrap_err();
    /// assert!(err.is_panic() && !err.is_cancelled());
    /// ```
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic(_))
    }

    /// The panic payload, to inspect or to re-raise with
    /// [`std::panic::resume_unwind`].
    ///
    /// # Panics
    ///
    /// Panics if the error is not a panic ([`is_panic`](JoinError::is_panic)
    /// is false); see [`try_into_panic`](JoinError::try_into_panic).
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_io::thread_pool::{ThreadPool, ThreadPoolOptions};
    ///
    /// let pool = ThreadPool::new(ThreadPoolOptions { thread_count: 1, ..Default::default() });
    /// let err = coro_core::sync_wait(pool.spawn(async { panic!("{}", 7) })).unwrap_err();
    /// assert_eq!(*err.into_panic().downcast::<String>().unwrap(), "7");
    /// ```
    #[track_caller]
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.try_into_panic()
            .expect("`JoinError::into_panic` called on a cancelled task's error")
    }

    /// The panic payload, or the error itself back when the task was cancelled.
    ///
    /// # Errors
    ///
    /// Returns `Err(self)` when the task did not panic.
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_io::thread_pool::{ThreadPool, ThreadPoolOptions};
    ///
    /// let pool = ThreadPool::new(ThreadPoolOptions { thread_count: 1, ..Default::default() });
    /// let h = pool.spawn(std::future::pending::<()>());
    /// h.abort();
    /// let err = coro_core::sync_wait(h).unwrap_err();
    /// assert!(err.try_into_panic().unwrap_err().is_cancelled());
    /// ```
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panic(p) => Ok(p.into_inner().unwrap_or_else(|e| e.into_inner())),
            Repr::Cancelled => Err(self),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => f.write_str("task was cancelled"),
            Repr::Panic(p) => {
                let p = lock(p);
                match panic_message(&**p) {
                    Some(msg) => write!(f, "task panicked: {msg}"),
                    None => f.write_str("task panicked"),
                }
            }
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => f.write_str("JoinError::Cancelled"),
            Repr::Panic(p) => {
                let p = lock(p);
                f.debug_tuple("JoinError::Panic")
                    .field(&panic_message(&**p).unwrap_or("..."))
                    .finish()
            }
        }
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for std::io::Error {
    fn from(e: JoinError) -> Self {
        std::io::Error::other(e)
    }
}

fn panic_message(p: &(dyn Any + Send)) -> Option<&str> {
    p.downcast_ref::<&'static str>()
        .copied()
        .or_else(|| p.downcast_ref::<String>().map(String::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn assert_send_sync<T: Send + Sync>() {}

    /// async-task runs the executor's schedule function inside the
    /// cancel's first poll, which `abort` makes outside the handle's lock
    /// with the slot marked aborting. A schedule function that panics
    /// there left the mark for good: `is_finished` said false for ever (a
    /// loop waiting for it spun). The task is cancelled all the same (its
    /// handle's part was dropped by the unwinding): finished, cancelled.
    #[test]
    fn an_abort_whose_schedule_panics_leaves_a_cancelled_handle() {
        use std::sync::atomic::AtomicBool;
        let fail = Arc::new(AtomicBool::new(false));
        let q = Arc::new(Mutex::new(Vec::new()));
        let (q2, fail2) = (q.clone(), fail.clone());
        let (r, mut h) = task(std::future::pending::<()>(), move |r| {
            assert!(
                !fail2.load(Ordering::SeqCst),
                "this schedule fails (on purpose)"
            );
            q2.lock().unwrap().push(r);
        });
        r.run();
        fail.store(true, Ordering::SeqCst);
        let aborted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.abort()));
        assert!(aborted.is_err(), "the schedule function was not called");
        assert!(
            h.is_finished(),
            "an abort that unwound left the handle unfinished"
        );
        let got = Pin::new(&mut h).poll(&mut Context::from_waker(std::task::Waker::noop()));
        assert!(
            matches!(got, Poll::Ready(Err(ref e)) if e.is_cancelled()),
            "{got:?}"
        );
        fail.store(false, Ordering::SeqCst);
        run_all(&q);
    }

    /// `abort` wakes the waker the handle was last polled with (async-task
    /// does, as the first poll of its cancel closes the task). That waker
    /// may be another executor's, polling its task right there, and that
    /// task may ask the same (shared) handle `is_finished`: the handle's
    /// lock was held across that wake, and the question deadlocked.
    #[test]
    fn an_awaiter_asking_is_finished_inside_the_aborts_wake_up() {
        struct Asks {
            handle: std::sync::OnceLock<Arc<JoinHandle<()>>>,
            answers: AtomicUsize,
        }
        impl std::task::Wake for Asks {
            fn wake(self: Arc<Self>) {
                if let Some(h) = self.handle.get() {
                    let _ = h.is_finished();
                    self.answers.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        let (q, mut h) = manual(std::future::pending::<()>());
        run_all(&q);
        let asks = Arc::new(Asks {
            handle: std::sync::OnceLock::new(),
            answers: AtomicUsize::new(0),
        });
        let w = std::task::Waker::from(asks.clone());
        assert!(
            Pin::new(&mut h)
                .poll(&mut Context::from_waker(&w))
                .is_pending()
        );
        let h = Arc::new(h);
        let _ = asks.handle.set(h.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            h.abort();
            let _ = tx.send(());
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_secs(10)).is_ok(),
            "abort deadlocked in its wake-up"
        );
        assert!(
            asks.answers.load(Ordering::SeqCst) >= 1,
            "the awaiter was not woken"
        );
        // The executor drops the aborted future. (The waker and the handle
        // hold each other and are never freed: fine in a test.)
        run_all(&q);
        assert!(asks.handle.get().is_some_and(|h| h.is_finished()));
    }

    #[test]
    fn handle_and_error_are_send_sync() {
        assert_send_sync::<JoinHandle<u32>>();
        assert_send_sync::<JoinError>();
    }

    /// A manual executor: a queue of runnables run on this thread.
    fn manual<F>(fut: F) -> (Arc<Mutex<Vec<Runnable>>>, JoinHandle<F::Output>)
    where
        F: Future + Send + 'static,
        F::Output: Send,
    {
        let q = Arc::new(Mutex::new(Vec::new()));
        let q2 = q.clone();
        let (r, h) = task(fut, move |r| q2.lock().unwrap().push(r));
        q.lock().unwrap().push(r);
        (q, h)
    }

    fn run_all(q: &Mutex<Vec<Runnable>>) -> usize {
        let mut n = 0;
        loop {
            let r = q.lock().unwrap().pop();
            match r {
                Some(r) => {
                    r.run();
                    n += 1;
                }
                None => return n,
            }
        }
    }

    /// The executor drops a task (its shutdown) while another task awaits
    /// its handle: an abort in that window (here from the future's own
    /// destructor) must not take the awaiter's wake-up.
    #[test]
    fn an_abort_while_the_executor_drops_the_task_keeps_the_awaiters_wake_up() {
        struct Wakes(AtomicUsize);
        impl std::task::Wake for Wakes {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        type Shared = Arc<Mutex<Option<JoinHandle<()>>>>;
        struct AbortOnDrop(Shared);
        impl Drop for AbortOnDrop {
            fn drop(&mut self) {
                if let Some(h) = &*self.0.lock().unwrap() {
                    h.abort();
                }
            }
        }
        let shared: Shared = Arc::new(Mutex::new(None));
        let guard = AbortOnDrop(shared.clone());
        let (q, h) = manual(async move {
            let _guard = guard;
            std::future::pending::<()>().await
        });
        *shared.lock().unwrap() = Some(h);
        let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let poll = |cx: &mut Context<'_>| {
            let mut h = shared.lock().unwrap().take().unwrap();
            let p = Pin::new(&mut h).poll(cx);
            *shared.lock().unwrap() = Some(h);
            p
        };
        assert!(poll(&mut cx).is_pending());
        // The executor drops the runnable without running it (as at shutdown).
        q.lock().unwrap().clear();
        assert!(
            wakes.0.load(Ordering::SeqCst) >= 1,
            "the awaiting task was never woken"
        );
        match poll(&mut cx) {
            Poll::Ready(Err(e)) => assert!(e.is_cancelled()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ok_output() {
        let (q, h) = manual(async { 5 });
        assert!(!h.is_finished());
        assert_eq!(run_all(&q), 1);
        assert!(h.is_finished());
        assert_eq!(futures::executor::block_on(h).unwrap(), 5);
    }

    /// A handle polled again after it resolved panics, as tokio's does:
    /// it returned "cancelled" at once, every time, so a `select!` loop
    /// that forgot the task had finished read a cancellation for a task
    /// that succeeded, and spun on it. A handle whose aborted task left no
    /// outcome still says "cancelled" the first time.
    #[test]
    fn a_handle_polled_after_it_resolved_panics() {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let (q, mut h) = manual(async { 5 });
        run_all(&q);
        assert!(matches!(Pin::new(&mut h).poll(&mut cx), Poll::Ready(Ok(5))));
        let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = Pin::new(&mut h).poll(&mut cx);
        }));
        let msg = again.expect_err("a second poll returned");
        assert!(
            msg.downcast_ref::<&str>()
                .is_some_and(|m| m.contains("after completion")),
            "{:?}",
            msg.downcast_ref::<&str>()
        );
        assert!(h.is_finished());

        let (q, mut h) = manual(std::future::pending::<()>());
        h.abort();
        run_all(&q);
        let Poll::Ready(Err(e)) = Pin::new(&mut h).poll(&mut cx) else {
            panic!("an aborted task's handle did not resolve")
        };
        assert!(e.is_cancelled());
    }

    #[test]
    fn panic_is_caught_and_kept() {
        let n = std::hint::black_box(1);
        let (q, h) = manual(async move { panic!("kept {n}") });
        // The runnable returns normally: the panic did not unwind through run().
        assert_eq!(run_all(&q), 1);
        let err = futures::executor::block_on(h).unwrap_err();
        assert!(err.is_panic());
        assert_eq!(err.to_string(), "task panicked: kept 1");
        assert_eq!(*err.into_panic().downcast::<String>().unwrap(), "kept 1");
    }

    /// The output of a task nobody awaits is dropped by async-task where a
    /// panic aborts the process: an output whose destructor panics (after
    /// the handle was dropped, or on an abort after completion) must not.
    #[test]
    fn an_unawaited_output_whose_drop_panics_does_not_abort_the_process() {
        struct PanicsOnDrop(Arc<AtomicUsize>);
        impl Drop for PanicsOnDrop {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
                panic!("an output's destructor fails");
            }
        }
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        let (q, h) = manual(async move { PanicsOnDrop(d) });
        drop(h); // detached: the output is dropped as the task completes
        assert_eq!(run_all(&q), 1);
        let d = drops.clone();
        let (q, h) = manual(async move { PanicsOnDrop(d) });
        assert_eq!(run_all(&q), 1);
        h.abort(); // completed, then aborted: the handle keeps the output
        assert!(h.is_finished());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        drop(h); // and drops it with itself
        assert_eq!(drops.load(Ordering::SeqCst), 2, "both outputs dropped");
    }

    #[test]
    fn abort_drops_the_future_and_reports_cancelled() {
        struct D(Arc<AtomicUsize>);
        impl Drop for D {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let drops = Arc::new(AtomicUsize::new(0));
        let d = D(drops.clone());
        let (q, h) = manual(async move {
            let _d = d;
            std::future::pending::<()>().await;
        });
        assert_eq!(run_all(&q), 1);
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        h.abort();
        // Finished only once its future is dropped: cancelling an idle
        // task schedules it once so the executor drops it.
        assert!(!h.is_finished());
        run_all(&q);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(h.is_finished());
        let err = futures::executor::block_on(h).unwrap_err();
        assert!(err.is_cancelled());
        assert_eq!(err.to_string(), "task was cancelled");
        assert!(err.try_into_panic().is_err());
    }

    #[test]
    fn panic_in_destructor_after_completion_is_reported() {
        struct Boom;
        impl Drop for Boom {
            fn drop(&mut self) {
                panic!("drop boom");
            }
        }
        let (q, h) = manual(async {
            let _b = Boom;
            1
        });
        assert_eq!(run_all(&q), 1);
        let err = futures::executor::block_on(h).unwrap_err();
        assert_eq!(*err.into_panic().downcast::<&str>().unwrap(), "drop boom");
    }

    #[test]
    fn dropping_the_runnable_cancels() {
        let (q, h) = manual(async { 1 });
        q.lock().unwrap().clear();
        assert!(futures::executor::block_on(h).unwrap_err().is_cancelled());
    }

    #[test]
    fn detached_task_still_runs() {
        let hits = Arc::new(AtomicUsize::new(0));
        let h2 = hits.clone();
        let (q, h) = manual(async move {
            h2.fetch_add(1, Ordering::SeqCst);
        });
        drop(h);
        run_all(&q);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[test]
    #[allow(unsafe_code)] // `task_local`
    fn local_task_runs_non_send_future() {
        let q = Arc::new(Mutex::new(Vec::new()));
        let q2 = q.clone();
        let rc = std::rc::Rc::new(3);
        // SAFETY: the future is in an `OwnThread` made here.
        let (r, h) = unsafe {
            task_local(OwnThread::new(async move { *rc + 1 }), move |r| {
                q2.lock().unwrap().push(r)
            })
        };
        r.run();
        assert_eq!(futures::executor::block_on(h).unwrap(), 4);
    }

    #[test]
    #[allow(unsafe_code)] // `task_local`
    fn local_task_dropped_on_another_thread_is_leaked_not_fatal() {
        let rc = std::rc::Rc::new(3);
        let held = rc.clone();
        // SAFETY: the future is in an `OwnThread` made here.
        let (r, h) = unsafe {
            task_local(
                OwnThread::new(async move {
                    std::future::pending::<()>().await;
                    drop(held);
                }),
                |_| {},
            )
        };
        std::thread::spawn(move || drop(r)).join().unwrap();
        assert!(futures::executor::block_on(h).unwrap_err().is_cancelled());
        assert_eq!(std::rc::Rc::strong_count(&rc), 2, "leaked, not dropped");
    }

    #[test]
    #[allow(unsafe_code)] // `task_local`
    fn local_task_run_on_another_thread_fails_with_a_panic() {
        let rc = std::rc::Rc::new(3);
        // SAFETY: the future is in an `OwnThread` made here.
        let (r, h) = unsafe { task_local(OwnThread::new(async move { *rc }), |_| {}) };
        std::thread::spawn(move || r.run()).join().unwrap();
        assert!(futures::executor::block_on(h).unwrap_err().is_panic());
    }
}
