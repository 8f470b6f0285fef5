//! `sync_wait`: block the calling thread on a future.

use std::cell::Cell;
use std::future::{Future, IntoFuture};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

/// Wakes a parked thread. One per thread, made on first use and reused by
/// every later `sync_wait` on that thread.
struct Parker {
    thread: Thread,
    /// A wake-up came that the thread has not taken yet.
    notified: AtomicBool,
}

impl Wake for Parker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Only unpark when the flag goes false -> true: many wakes between two
        // polls cost one unpark.
        if !self.notified.swap(true, Ordering::SeqCst) {
            self.thread.unpark();
        }
    }
}

/// One thread's [`sync_wait`] wake-up, as other threads see it: for an
/// executor that counts its threads blocked in `sync_wait` (between the
/// [`set_block_hook`] and [`set_unblock_hook`] calls) and must tell a
/// thread that really waits from one whose wake-up has come.
///
/// [`is_woken`](WaitState::is_woken) is set by the wake-up and stays set
/// until the thread, past its unblock hook, takes it: so a thread seen
/// between its hooks with it clear had not been woken, and a thread that
/// was woken shows so until its unblock hook has run. Read it before the
/// executor's own "blocked" mark: read after, a wake-up taken in between
/// (the thread past its unblock hook, running) would go unseen.
///
/// # Examples
///
/// ```
/// let me = coro_core::WaitState::current().unwrap();
/// coro_core::sync_wait(coro_core::yield_now()); // wakes itself, then takes it
/// assert!(!me.is_woken());
/// ```
#[derive(Clone)]
pub struct WaitState(Arc<Parker>);

impl WaitState {
    /// The calling thread's (`None` while its thread-locals are torn down).
    pub fn current() -> Option<WaitState> {
        LOCAL.try_with(|l| WaitState(l.parker.clone())).ok()
    }

    /// A wake-up came that the thread's `sync_wait` has not taken yet.
    pub fn is_woken(&self) -> bool {
        self.0.notified.load(Ordering::SeqCst)
    }
}

impl std::fmt::Debug for WaitState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitState")
            .field("woken", &self.is_woken())
            .finish()
    }
}

/// Everything `sync_wait` keeps per thread, behind one thread-local access.
struct Local {
    /// This thread is inside `sync_wait` (nested use is refused).
    entered: Cell<bool>,
    parker: Arc<Parker>,
    waker: Waker,
    /// The executor's [`set_block_hook`], run before each park.
    before_block: Cell<Option<fn()>>,
    /// The executor's [`set_unblock_hook`], run after each park.
    after_block: Cell<Option<fn()>>,
}

impl Local {
    fn new() -> Local {
        let parker = Arc::new(Parker {
            thread: thread::current(),
            notified: AtomicBool::new(false),
        });
        let waker = Waker::from(parker.clone());
        Local {
            entered: Cell::new(false),
            parker,
            waker,
            before_block: Cell::new(None),
            after_block: Cell::new(None),
        }
    }
}

thread_local! {
    static LOCAL: Local = Local::new();
}

/// For executors whose threads may run [`sync_wait`]: `hook` runs on the
/// calling thread each time `sync_wait` is about to park it, so that work
/// the executor keeps for this thread alone (a slot for the task to run
/// next, which no other thread takes) goes where free threads find it.
/// Without that, a task on a worker that spawns a child and blocks on it
/// with `sync_wait` waits for a child only the blocked worker would run.
/// `None` removes the hook; each thread has its own.
///
/// coro's thread pool sets it on its workers (replacing it there brings
/// that hang back, and with [`set_unblock_hook`] counts its blocked
/// workers, through [`WaitState`]).
///
/// # Examples
///
/// ```
/// fn hand_off() { /* move this thread's private work to a shared queue */ }
/// coro_core::set_block_hook(Some(hand_off));
/// assert_eq!(coro_core::sync_wait(async { 1 }), 1); // ready: never parks
/// coro_core::set_block_hook(None);
/// ```
pub fn set_block_hook(hook: Option<fn()>) {
    // A thread being torn down parks no more: nothing to set.
    let _ = LOCAL.try_with(|l| l.before_block.set(hook));
}

/// The other half of [`set_block_hook`]: `hook` runs on the calling
/// thread each time a park of [`sync_wait`] ends, before the future is
/// polled again. Each call of the block hook is followed by one of this
/// one (also when the thread did not really park, its wake-up having come
/// first), so an executor can count its threads blocked in `sync_wait`:
/// coro's thread pool does, so that its shutdown can tell a pool whose
/// only busy workers are blocked (and would wait for ever for tasks that
/// nobody else can run or wake) from one still at work. `None` removes
/// the hook; each thread has its own. Replacing it on one of coro's pool
/// workers (from a task) makes the pool count the worker blocked while it
/// runs.
///
/// # Examples
///
/// ```
/// use std::cell::Cell;
/// thread_local! { static BLOCKED: Cell<u32> = const { Cell::new(0) }; }
/// fn blocking() { BLOCKED.with(|b| b.set(b.get() + 1)); }
/// fn unblocked() { BLOCKED.with(|b| b.set(b.get() - 1)); }
/// coro_core::set_block_hook(Some(blocking));
/// coro_core::set_unblock_hook(Some(unblocked));
/// let mut first = true;
/// let v = coro_core::sync_wait(std::future::poll_fn(|cx| {
///     if std::mem::take(&mut first) {
///         cx.waker().wake_by_ref();
///         return std::task::Poll::Pending;
///     }
///     std::task::Poll::Ready(BLOCKED.with(Cell::get))
/// }));
/// assert_eq!(v, 0); // the block and its end both ran before the 2nd poll
/// coro_core::set_block_hook(None);
/// coro_core::set_unblock_hook(None);
/// ```
pub fn set_unblock_hook(hook: Option<fn()>) {
    let _ = LOCAL.try_with(|l| l.after_block.set(hook));
}

/// Clears the "inside sync_wait" mark of this thread, also when the future panics.
struct Entered<'a>(&'a Cell<bool>);

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// Blocks the calling thread until `fut` completes and returns its output.
///
/// The future is polled on the calling thread. When it is pending the thread
/// parks, and the future's waker unparks it; the waker is made once per thread
/// and reused, so a poll allocates nothing. Wakers may be called from any thread.
///
/// # Nesting
/// Calling `sync_wait` from inside a future that is itself being driven by
/// `sync_wait` on the same thread panics (see `# Panics`): the inner call would
/// park the only thread able to drive the outer future, which deadlocks as soon
/// as the inner future depends on a sibling of the outer one. `.await` the
/// future instead. Calling `sync_wait` from a thread that is not inside
/// `sync_wait` (a fresh thread, a thread pool worker) is fine, as long as
/// what the future waits for can progress without this thread: on a
/// worker of coro's thread pool, a task of the same pool needs another
/// worker free (the pool hands the blocked worker's next task to the
/// others: see [`set_block_hook`]); on an `IoScheduler`'s own loop thread
/// (Inline execution) nothing of that scheduler runs until `sync_wait`
/// returns, so waiting there for its I/O or its tasks never ends.
///
/// On a tokio runtime's thread the same rule bites in three ways: a
/// current-thread runtime has only this thread, so anything of tokio's the
/// future waits for never runs; on a multi-thread runtime a task just
/// `tokio::spawn`ed from this worker sits in its slot for the next task,
/// which no other worker takes while this one blocks; and after a task
/// spent tokio's budget in this poll, tokio holds back the wake-ups it
/// defers until this worker parks, which it never does. Wrap the call in
/// `tokio::task::block_in_place` on a multi-thread runtime, or `.await`
/// the future.
///
/// # Examples
/// ```
/// let result = coro_core::sync_wait(async { 5u64 + 5 });
/// assert_eq!(result, 10);
/// ```
///
/// # Panics
/// - if called while this thread is already inside `sync_wait` (nested use);
/// - if `fut` panics (the panic propagates unchanged).
///
/// It works in a thread-local's destructor too, also once this thread's
/// own state of it is gone (a parker is then made for the call).
#[doc(alias = "block_on")]
pub fn sync_wait<F: IntoFuture>(fut: F) -> F::Output {
    let mut fut = pin!(fut.into_future());
    // `with` would panic once the thread-local is destroyed, which in a
    // thread-local's destructor aborts the process.
    if let Ok(out) = LOCAL.try_with(|local| drive(local, fut.as_mut())) {
        return out;
    }
    drive(&Local::new(), fut)
}

/// [`sync_wait`]'s loop on this thread's (or a fresh) parker.
fn drive<F: Future>(local: &Local, mut fut: Pin<&mut F>) -> F::Output {
    {
        if local.entered.replace(true) {
            panic!(
                "coro::sync_wait called from inside a future that this thread is already \
                 driving with sync_wait; blocking here would deadlock the outer future. \
                 Use `.await` instead"
            );
        }
        let _entered = Entered(&local.entered);
        let parker = &local.parker;
        // The flag is not reset here: a stale wake-up from a waker that an
        // earlier future left behind only costs one extra poll.
        let mut cx = Context::from_waker(&local.waker);
        loop {
            // No budget: a task's budget spent before this call would make
            // every op yield, and the task cannot run again until we return.
            if let Poll::Ready(out) = crate::coop::without_budget(|| fut.as_mut().poll(&mut cx)) {
                return out;
            }
            if let Some(hook) = local.before_block.get() {
                hook();
            }
            // `park` may return spuriously: wait for the flag. It is taken
            // only after the unblock hook, so that to another thread this
            // one shows woken (`WaitState`) until its hooks say it runs.
            while !parker.notified.load(Ordering::SeqCst) {
                thread::park();
            }
            if let Some(hook) = local.after_block.get() {
                hook();
            }
            parker.notified.swap(false, Ordering::SeqCst);
        }
    }
}
