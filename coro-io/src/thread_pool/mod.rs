//! A work-stealing pool of worker threads that runs futures.
//!
//! [`ThreadPool`] is libcoro's `thread_pool`: N worker threads (by default one
//! per available core), each with a local FIFO queue that the others steal from,
//! a global injector for work that comes from outside the pool, and a LIFO slot
//! so that a task woken by the task running on the same worker (message
//! passing) runs next, while its data is still in cache.
//!
//! Idle workers park (no spinning). A worker that found work while "searching"
//! wakes at most one more sleeper, so a burst of spawns spreads over the pool
//! without waking every thread for every task.
//!
//! Trade-offs to know:
//! - A task spawned (or woken) by a task running on a worker goes to that
//!   worker's LIFO slot, which other workers cannot steal from: a task that
//!   spawns one child and then computes for a long time without awaiting
//!   delays that child until it yields. A second spawn moves the first child
//!   to the stealable queue. At most 3 tasks in a row run from the LIFO slot.
//!   A task that blocks its worker in [`coro_core::sync_wait`] hands the
//!   slot's task to the stealable queue first (and wakes a free worker), so
//!   waiting there for a child it just spawned works when another worker
//!   is free. Blocking the worker any other way (another crate's
//!   `block_on`, a std channel's `recv`) on a child it just spawned never
//!   returns: the child stays in the blocked worker's slot.
//! - The pool remembers every task that has suspended, so that when it shuts
//!   down the ones still suspended are cancelled (their futures dropped)
//!   rather than leaked.
//!
//! # Examples
//!
//! ```
//! use coro_io::thread_pool::{ThreadPool, ThreadPoolOptions};
//!
//! let pool = ThreadPool::new(ThreadPoolOptions { thread_count: 2, ..Default::default() });
//! let handles: Vec<_> = (0..10u64).map(|i| pool.spawn(async move { i * i })).collect();
//! let sum: u64 = coro_core::sync_wait(async {
//!     let mut sum = 0;
//!     for h in handles {
//!         sum += h.await.unwrap();
//!     }
//!     sum
//! });
//! assert_eq!(sum, 285);
//! pool.shutdown();
//! ```

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::task::{Context, Poll, Waker};
use std::thread::{self, Thread};

use crate::lifecycle::Registry;
use async_task::{Runnable, ScheduleInfo, WithInfo};
use crossbeam_deque::{Injector, Steal, Stealer, Worker};

use crate::lock;
use crate::task::{JoinHandle, task_with};

mod futures;
mod idle;
mod worker;

use crate::sync;

use futures::{Schedule, Tracked};
use idle::Idle;
use worker::worker_main;

/// A thread start/stop callback; receives the worker's index in `0..thread_count`.
pub type ThreadCallback = Arc<dyn Fn(usize) + Send + Sync + 'static>;

/// The most worker threads a pool may have (`#[coro::main(threads = N)]`
/// refuses more at compile time: keep the two in step).
const MAX_THREADS: usize = 4096;

/// Options for [`ThreadPool::new`].
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use coro_io::thread_pool::{ThreadPool, ThreadPoolOptions};
///
/// let pool = ThreadPool::new(ThreadPoolOptions {
///     thread_count: 2,
///     on_thread_start: Some(Arc::new(|i| println!("worker {i} up"))),
///     thread_name: "my-pool".to_owned(),
///     ..Default::default()
/// });
/// assert_eq!(pool.thread_count(), 2);
/// ```
#[derive(Clone)]
pub struct ThreadPoolOptions {
    /// Number of worker threads, at most 4096. `0` (and the default) means
    /// [`std::thread::available_parallelism`] (1 if that is unknown).
    pub thread_count: usize,
    /// Called on each worker thread, with its index, before it runs any task.
    /// A panic in the callback is caught and ignored.
    pub on_thread_start: Option<ThreadCallback>,
    /// Called on each worker thread, with its index, after its last task.
    /// A panic in the callback is caught and ignored. The futures of tasks
    /// still suspended at shutdown are dropped elsewhere: on the last
    /// worker to exit after its callback, or on a thread of the blocking
    /// pool (woken after that, or cancelled while a worker waited in
    /// `sync_wait`: see [`ThreadPool::shutdown`]); their destructors must
    /// not need the state this callback tears down.
    pub on_thread_stop: Option<ThreadCallback>,
    /// Worker threads are named `"{thread_name}-{index}"` (no NUL bytes).
    /// Default `"coro-pool"`.
    pub thread_name: String,
}

impl Default for ThreadPoolOptions {
    fn default() -> Self {
        ThreadPoolOptions {
            thread_count: 0,
            on_thread_start: None,
            on_thread_stop: None,
            thread_name: "coro-pool".to_owned(),
        }
    }
}

impl fmt::Debug for ThreadPoolOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPoolOptions")
            .field("thread_count", &self.thread_count)
            .field("on_thread_start", &self.on_thread_start.is_some())
            .field("on_thread_stop", &self.on_thread_stop.is_some())
            .field("thread_name", &self.thread_name)
            .finish()
    }
}

/// A pool of worker threads running futures; a cheap, cloneable handle.
///
/// Dropping the last handle shuts the pool down gracefully and joins its
/// threads — except when that drop happens on one of the pool's own workers
/// (a task that owned the last handle): then the threads are detached and
/// finish the queued work on their own, instead of a worker joining itself.
/// A clone held by a suspended task counts as a handle: such a task keeps
/// the pool and its threads alive, so call [`shutdown`](Self::shutdown)
/// to stop it for sure.
///
/// # Examples
///
/// ```
/// use coro_io::thread_pool::{ThreadPool, ThreadPoolOptions};
///
/// let pool = ThreadPool::new(ThreadPoolOptions::default());
/// let inner = pool.clone();
/// let h = pool.spawn(async move {
///     // Spawn from inside the pool, then wait for it.
///     inner.spawn(async { "hello" }).await.unwrap()
/// });
/// assert_eq!(coro_core::sync_wait(h).unwrap(), "hello");
/// ```
#[derive(Clone)]
pub struct ThreadPool {
    owner: Arc<Owner>,
}

/// Owned by the user's handles only (never by tasks or workers): its drop is
/// "the last handle went away".
struct Owner {
    shared: Arc<Shared>,
    threads: Mutex<Vec<thread::JoinHandle<()>>>,
}

/// How often (in tasks) a worker looks at the global queue before its own, so
/// that a busy local queue cannot starve injected work.
const GLOBAL_QUEUE_INTERVAL: u32 = 61;
/// How many tasks in a row a worker may take from its LIFO slot before it
/// gives the local queue a turn (two tasks waking each other would otherwise
/// monopolise the worker).
const MAX_LIFO_STREAK: u32 = 3;

struct Shared {
    /// Identifies the pool in the workers' thread-local state.
    id: usize,
    injector: Injector<Runnable>,
    workers: Box<[WorkerShared]>,
    /// Who searches, who sleeps, who is woken (see `idle`).
    idle: Idle,
    /// Set by `shutdown`: spawns are refused, workers exit once out of work.
    shutdown: AtomicBool,
    /// Workers still running.
    live: AtomicUsize,
    /// Shutting down, every live worker ran out of work at once: they
    /// all leave (see `park`).
    leaving: AtomicBool,
    /// Workers between the block hooks of a `sync_wait` (each also marks
    /// itself in `WorkerShared::blocked`): 0 skips `idle::stuck` at once.
    blocked: AtomicUsize,
    /// Shutting down, every live worker was asleep or waiting in
    /// `sync_wait` (see `idle::stuck`): the suspended tasks were woken to be
    /// cancelled, and from then on every task scheduled is cancelled
    /// (dropped on another thread, or by the worker that finds it)
    /// instead of run.
    cancelling: AtomicBool,
    /// Tasks cancelled while workers live, to be dropped on a thread of
    /// their own (see `doom`).
    reaper: Mutex<Reaper>,
    /// Signalled when the reaper has dropped everything given to it.
    reaper_done: Condvar,
    /// This pool, for the reaper's job.
    me: Weak<Shared>,
    /// Set by the last worker to exit: anything scheduled after that is
    /// cancelled (dropped) instead of waiting forever in the injector.
    terminated: AtomicBool,
    /// Set once `terminate` has cancelled the tasks it found: from then on a
    /// late arrival is dropped where it is scheduled.
    reaped: AtomicBool,
    /// Wakers of the tasks that have suspended and not finished, one shard per
    /// worker (a task registers when it first returns `Pending`, on that
    /// worker's shard).
    /// At termination they are all woken, so suspended tasks are cancelled
    /// and their futures dropped instead of leaked: async-task frees a task
    /// that nothing can wake any more without running its destructor.
    registry: Registry,
    on_thread_start: Option<ThreadCallback>,
    on_thread_stop: Option<ThreadCallback>,
}

struct WorkerShared {
    stealer: Stealer<Runnable>,
    thread: OnceLock<Thread>,
    /// Inside a `sync_wait` of a task, between its block and unblock
    /// hooks (see `idle::stuck`).
    blocked: AtomicBool,
    /// Times it blocked so (raised before `blocked` is set).
    blocks: AtomicU64,
    /// The worker thread's `sync_wait` wake-ups.
    wait: OnceLock<coro_core::WaitState>,
}

/// A worker's private state, in its thread-local.
struct Local {
    pool_id: usize,
    index: usize,
    /// For tasks registering themselves (`Tracked`) without holding the pool.
    shared: Arc<Shared>,
    queue: Worker<Runnable>,
    lifo: Cell<Option<Runnable>>,
    /// This worker counts itself in `Shared::blocked` (between the two
    /// block hooks of a `sync_wait`).
    blocked: Cell<bool>,
}

thread_local! {
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
    /// The id of the pool whose cancelled tasks this thread is dropping
    /// (its reaper), else 0.
    static REAPING: Cell<usize> = const { Cell::new(0) };
}

/// Tasks a stuck pool cancelled (see `Shared::doom`).
#[derive(Default)]
struct Reaper {
    doomed: Vec<Runnable>,
    /// A job is dropping them.
    running: bool,
}

/// The reaper's job: drops what `Shared::doom` gave it until none is left.
struct ReaperJob(Arc<Shared>);

/// The closure `Shared::doom` hands to the blocking pool: it owns the
/// reaper, so that dropping it unrun reaps too.
fn reaper_job(me: Arc<Shared>) -> impl FnOnce() + Send + 'static {
    let job = ReaperJob(me);
    move || drop(job)
}

impl Drop for ReaperJob {
    fn drop(&mut self) {
        let shared = &self.0;
        let prev = REAPING.try_with(|r| r.replace(shared.id)).unwrap_or(0);
        loop {
            let batch = {
                let mut g = lock(&shared.reaper);
                if g.doomed.is_empty() {
                    g.running = false;
                    shared.reaper_done.notify_all();
                    break;
                }
                std::mem::take(&mut g.doomed)
            };
            for r in batch {
                crate::survive("dropping a task at pool shutdown", || drop(r));
            }
        }
        let _ = REAPING.try_with(|r| r.set(prev));
    }
}

static NEXT_POOL_ID: AtomicUsize = AtomicUsize::new(1);

impl ThreadPool {
    /// Start a pool.
    ///
    /// # Panics
    ///
    /// Panics if the options are impossible (see
    /// [`try_new`](ThreadPool::try_new)) or the operating system refuses to
    /// create a thread; `try_new` returns those errors instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_io::thread_pool::{ThreadPool, ThreadPoolOptions};
    ///
    /// let pool = ThreadPool::new(ThreadPoolOptions { thread_count: 3, ..Default::default() });
    /// assert_eq!(pool.thread_count(), 3);
    /// ```
    pub fn new(opts: ThreadPoolOptions) -> ThreadPool {
        Self::try_new(opts).expect("coro-io: cannot start the thread pool")
    }

    /// Start a pool, returning the error if a worker thread cannot be spawned
    /// (the workers already started are then shut down and joined).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for options no pool can have (more than 4096
    /// threads, a NUL byte in the name); the [`io::Error`] of
    /// [`std::thread::Builder::spawn`].
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_io::thread_pool::{ThreadPool, ThreadPoolOptions};
    ///
    /// let pool = ThreadPool::try_new(ThreadPoolOptions::default())?;
    /// assert!(pool.thread_count() >= 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn try_new(opts: ThreadPoolOptions) -> io::Result<ThreadPool> {
        // Checked here, not left to std: its thread spawn panics on a NUL
        // in the name, and a huge count fails allocating the per-worker
        // state with a panic too.
        if opts.thread_count > MAX_THREADS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "thread pool of {} threads (at most {MAX_THREADS})",
                    opts.thread_count
                ),
            ));
        }
        if opts.thread_name.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "thread pool name contains a NUL byte",
            ));
        }
        let n = if opts.thread_count == 0 {
            thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            opts.thread_count
        };
        let queues: Vec<Worker<Runnable>> = (0..n).map(|_| Worker::new_fifo()).collect();
        let workers = queues
            .iter()
            .map(|q| WorkerShared {
                stealer: q.stealer(),
                thread: OnceLock::new(),
                blocked: AtomicBool::new(false),
                blocks: AtomicU64::new(0),
                wait: OnceLock::new(),
            })
            .collect();
        let shared = Arc::new_cyclic(|me| Shared {
            me: me.clone(),
            reaper: Mutex::new(Reaper::default()),
            reaper_done: Condvar::new(),
            id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
            injector: Injector::new(),
            workers,
            idle: Idle::new(n),
            shutdown: AtomicBool::new(false),
            live: AtomicUsize::new(n),
            leaving: AtomicBool::new(false),
            blocked: AtomicUsize::new(0),
            cancelling: AtomicBool::new(false),
            terminated: AtomicBool::new(false),
            reaped: AtomicBool::new(false),
            registry: Registry::new(n),
            on_thread_start: opts.on_thread_start,
            on_thread_stop: opts.on_thread_stop,
        });
        let owner = Owner {
            shared: shared.clone(),
            threads: Mutex::new(Vec::with_capacity(n)),
        };
        for (index, queue) in queues.into_iter().enumerate() {
            let for_worker = shared.clone();
            let spawned = crate::spawn_thread(
                thread::Builder::new().name(format!("{}-{index}", opts.thread_name)),
                move || worker_main(for_worker, index, queue),
            );
            match spawned {
                Ok(h) => lock(&owner.threads).push(h),
                Err(e) => {
                    // Workers that never started still count as live: account for them.
                    let missing = n - index;
                    if shared.live.fetch_sub(missing, Ordering::SeqCst) == missing {
                        shared.terminate();
                    }
                    owner.shutdown_and_join();
                    return Err(e);
                }
            }
        }
        Ok(ThreadPool {
            owner: Arc::new(owner),
        })
    }

    /// Run `fut` on the pool and return a handle to its output.
    ///
    /// From a worker of this pool the task takes that worker's LIFO slot and
    /// runs next there (a task already in the slot moves to the local queue,
    /// where idle workers may steal it); from anywhere else it goes to the
    /// global queue.
    ///
    /// After [`shutdown`](ThreadPool::shutdown) the spawn is refused: `fut` is
    /// dropped and the handle resolves to a [`JoinError`](crate::task::JoinError)
    /// for which `is_cancelled()` is true.
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_io::thread_pool::{ThreadPool, ThreadPoolOptions};
    ///
    /// let pool = ThreadPool::new(ThreadPoolOptions { thread_count: 1, ..Default::default() });
    /// let h = pool.spawn(async { std::thread::current().name().map(str::to_owned) });
    /// let name = coro_core::sync_wait(h).unwrap();
    /// assert_eq!(name.as_deref(), Some("coro-pool-0"));
    /// ```
    pub fn spawn<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let shared = &self.owner.shared;
        let s = shared.clone();
        let tracked = Tracked::new(fut);
        let (runnable, handle) = task_with(
            tracked,
            WithInfo(move |r: Runnable, info: ScheduleInfo| {
                s.schedule(r, info.woken_while_running)
            }),
        );
        if shared.shutdown.load(Ordering::Acquire) {
            // Refused: dropping the runnable drops the future and cancels the task.
            drop(runnable);
        } else {
            shared.push_new(runnable);
        }
        handle
    }

    /// Like [`spawn`](ThreadPool::spawn), but a refused spawn (the pool is
    /// shut down) hands the future back instead of returning a cancelled
    /// handle.
    ///
    /// # Errors
    ///
    /// [`SpawnError`] holding `fut` when [`shutdown`](ThreadPool::shutdown)
    /// has been called.
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_io::thread_pool::{ThreadPool, ThreadPoolOptions};
    ///
    /// let pool = ThreadPool::new(ThreadPoolOptions { thread_count: 1, ..Default::default() });
    /// let h = pool.try_spawn(async { 1 }).unwrap();
    /// assert_eq!(coro_core::sync_wait(h).unwrap(), 1);
    /// pool.shutdown();
    /// let err = pool.try_spawn(async { 2 }).unwrap_err();
    /// assert_eq!(err.to_string(), "thread pool is shut down");
    /// assert_eq!(coro_core::sync_wait(err.into_inner()), 2);
    /// ```
    pub fn try_spawn<F>(&self, fut: F) -> Result<JoinHandle<F::Output>, SpawnError<F>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if self.is_shutdown() {
            return Err(SpawnError(fut));
        }
        // A shutdown racing with us past this check still cancels the task.
        Ok(self.spawn(fut))
    }

    /// Continue on the pool (libcoro's `co_await tp.schedule()`).
    ///
    /// For a task of this pool it yields once: the task goes to the back of
    /// its worker's local queue, where idle workers can steal it, and resumes
    /// after the work already queued there.
    ///
    /// A future runs wherever its executor polls it, so this moves work onto
    /// the pool only for tasks that already belong to it (spawned with
    /// [`spawn`](ThreadPool::spawn)); to run code on the pool from outside,
    /// `spawn` it. Awaited elsewhere, the wake-up is simply delivered from a
    /// worker thread. After shutdown it completes at once.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping it before completion has no effect.
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_io::thread_pool::{ThreadPool, ThreadPoolOptions};
    ///
    /// let pool = ThreadPool::new(ThreadPoolOptions { thread_count: 2, ..Default::default() });
    /// let p = pool.clone();
    /// let h = pool.spawn(async move {
    ///     p.schedule().await;
    ///     1
    /// });
    /// assert_eq!(coro_core::sync_wait(h).unwrap(), 1);
    /// ```
    pub fn schedule(&self) -> impl Future<Output = ()> + Send + 'static {
        Schedule::new(self.owner.shared.clone())
    }

    /// Yield once: the calling task goes to the back of its worker's local
    /// queue, letting the tasks queued there run first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping it before completion has no effect.
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_io::thread_pool::{ThreadPool, ThreadPoolOptions};
    ///
    /// let pool = ThreadPool::new(ThreadPoolOptions { thread_count: 1, ..Default::default() });
    /// let p = pool.clone();
    /// let h = pool.spawn(async move {
    ///     for _ in 0..3 {
    ///         p.yield_now().await;
    ///     }
    /// });
    /// coro_core::sync_wait(h).unwrap();
    /// ```
    pub fn yield_now(&self) -> impl Future<Output = ()> + Send + 'static {
        coro_core::yield_now()
    }

    /// Number of worker threads.
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_io::thread_pool::{ThreadPool, ThreadPoolOptions};
    ///
    /// let pool = ThreadPool::new(ThreadPoolOptions { thread_count: 2, ..Default::default() });
    /// assert_eq!(pool.thread_count(), 2);
    /// ```
    pub fn thread_count(&self) -> usize {
        self.owner.shared.workers.len()
    }

    /// Number of tasks waiting to run: the global queue plus every worker's
    /// local queue. A snapshot (it changes as workers run), and it leaves out
    /// the at most one task per worker held in its LIFO slot.
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_io::thread_pool::{ThreadPool, ThreadPoolOptions};
    ///
    /// let pool = ThreadPool::new(ThreadPoolOptions { thread_count: 1, ..Default::default() });
    /// coro_core::sync_wait(pool.spawn(async {})).unwrap();
    /// assert_eq!(pool.queue_len(), 0);
    /// ```
    pub fn queue_len(&self) -> usize {
        let s = &self.owner.shared;
        s.injector.len() + s.workers.iter().map(|w| w.stealer.len()).sum::<usize>()
    }

    /// Whether [`shutdown`](ThreadPool::shutdown) was called.
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_io::thread_pool::{ThreadPool, ThreadPoolOptions};
    ///
    /// let pool = ThreadPool::new(ThreadPoolOptions { thread_count: 1, ..Default::default() });
    /// assert!(!pool.is_shutdown());
    /// pool.shutdown();
    /// assert!(pool.is_shutdown());
    /// ```
    pub fn is_shutdown(&self) -> bool {
        self.owner.shared.shutdown.load(Ordering::Acquire)
    }

    /// Shut down gracefully: refuse new spawns, let the workers finish every
    /// queued task, then join them.
    ///
    /// Tasks that are suspended (waiting on something else) when the queues run
    /// dry are not waited for: once the last worker has exited they are
    /// cancelled (their futures dropped, their handles report
    /// `is_cancelled()`). A worker blocked in [`coro_core::sync_wait`] whose
    /// wake-up has not come counts as out of work for this, whatever it
    /// waits for (a task, a timer, I/O): once every worker is out of work
    /// so (none left to run anything, nothing queued), the suspended tasks
    /// are cancelled while it still waits, which ends a wait for one of
    /// them (its handle reports `is_cancelled()`), and from then on every
    /// task woken is cancelled, not run. Either way their futures are
    /// dropped before this returns (one after another, on a thread of the
    /// blocking pool: a destructor there that waits for another cancelled
    /// task of this pool waits for ever). A worker blocked any other way
    /// (a std channel, another crate's `block_on`) is busy: this waits for
    /// it. Called from one of the pool's own workers it only
    /// signals and returns, without joining (a worker cannot join itself).
    /// Calling it again does nothing more.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use coro_io::thread_pool::{ThreadPool, ThreadPoolOptions};
    ///
    /// let pool = ThreadPool::new(ThreadPoolOptions { thread_count: 2, ..Default::default() });
    /// let done = Arc::new(AtomicUsize::new(0));
    /// for _ in 0..100 {
    ///     let done = done.clone();
    ///     pool.spawn(async move { done.fetch_add(1, Ordering::Relaxed); }).detach();
    /// }
    /// pool.shutdown();
    /// assert_eq!(done.load(Ordering::Relaxed), 100);
    /// ```
    pub fn shutdown(&self) {
        self.owner.shutdown_and_join();
    }

    /// For the I/O scheduler's thread-pool execution strategy: run this
    /// `Runnable` on a worker (treated as a wake-up, not a new spawn).
    /// `yielded`: the task woke itself (`yield_now`), so it goes behind
    /// the worker's queued tasks instead of running next.
    #[allow(dead_code)] // used by the I/O scheduler
    pub(crate) fn schedule_runnable(&self, r: Runnable, yielded: bool) {
        self.owner.shared.schedule(r, yielded);
    }

    /// Whether the calling thread is one of this pool's workers.
    #[allow(dead_code)] // used by the I/O scheduler
    pub(crate) fn is_worker_thread(&self) -> bool {
        self.owner.shared.is_current_worker()
    }
}

/// A spawn refused because the pool is shut down; holds the future.
///
/// # Examples
///
/// ```
/// use coro_io::thread_pool::{ThreadPool, ThreadPoolOptions};
///
/// let pool = ThreadPool::new(ThreadPoolOptions { thread_count: 1, ..Default::default() });
/// pool.shutdown();
/// let fut = pool.try_spawn(async { "kept" }).unwrap_err().into_inner();
/// assert_eq!(coro_core::sync_wait(fut), "kept");
/// ```
pub struct SpawnError<F>(F);

impl<F> SpawnError<F> {
    /// The future that was not spawned.
    pub fn into_inner(self) -> F {
        self.0
    }
}

impl<F> fmt::Debug for SpawnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SpawnError(..)")
    }
}

impl<F> fmt::Display for SpawnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("thread pool is shut down")
    }
}

impl<F> std::error::Error for SpawnError<F> {}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("thread_count", &self.thread_count())
            .field("queue_len", &self.queue_len())
            .field("shutdown", &self.is_shutdown())
            .finish()
    }
}

impl Owner {
    fn shutdown_and_join(&self) {
        self.shared.begin_shutdown();
        // By thread, not by the worker's thread-local: that is gone before
        // a worker's last clean-up, which may drop the last handle.
        if self.shared.is_worker_thread_id() || self.shared.is_reaper_thread() {
            // libcoro#420: never join from one of our own threads. The workers
            // exit by themselves once the queues are empty; their handles are
            // dropped (detached) with the `Owner`. No lock here: a caller
            // outside may hold it while joining this very thread.
            return;
        }
        // Joining under the lock: a concurrent `shutdown()` from another
        // thread returns only once the workers are really gone.
        let mut threads = lock(&self.threads);
        for t in threads.drain(..) {
            // A worker only "panics" if a callback's panic escaped, which we
            // catch; ignore the impossible error rather than propagate it.
            let _ = t.join();
        }
        drop(threads);
        // Tasks cancelled while workers lived are dropped by the reaper:
        // the documented end is once their destructors ran.
        let mut r = lock(&self.shared.reaper);
        while r.running {
            r = self
                .shared
                .reaper_done
                .wait(r)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shutdown_and_join();
    }
}

impl Shared {
    #[inline]
    fn with_local<R>(&self, f: impl FnOnce(Option<&Local>) -> R) -> R {
        let mut f = Some(f);
        let r = LOCAL.try_with(|l| {
            // `try_borrow`: a task dropped while the thread-local is being torn
            // down must not panic; treat it as "not a worker".
            let l = l.try_borrow().ok();
            let local = l
                .as_ref()
                .and_then(|l| l.as_ref())
                .filter(|l| l.pool_id == self.id);
            (f.take().expect("called once"))(local)
        });
        match r {
            Ok(r) => r,
            Err(_) => (f.take().expect("called once"))(None),
        }
    }

    fn is_current_worker(&self) -> bool {
        self.with_local(|l| l.is_some())
    }

    /// Whether this thread is one of the pool's workers, however far its
    /// exit has got.
    fn is_worker_thread_id(&self) -> bool {
        let me = thread::current().id();
        self.workers
            .iter()
            .any(|w| w.thread.get().is_some_and(|t| t.id() == me))
    }

    /// A newly spawned task. From a worker it takes the LIFO slot, like a
    /// woken task: the common "spawn, then await it" runs the child next on
    /// this worker without waking another thread; a second spawn pushes the
    /// first child to the stealable queue and wakes a helper if one is idle.
    fn push_new(&self, r: Runnable) {
        self.schedule(r, false);
    }

    /// The schedule function of every pool task (a wake-up).
    fn schedule(&self, r: Runnable, woken_while_running: bool) {
        if self.cancelling.load(Ordering::Relaxed) {
            // Not here: this wake may come from inside a lock the task's
            // destructor takes again (see `inject`).
            self.doom(r);
            return;
        }
        self.with_local(|local| match local {
            Some(l) if woken_while_running => {
                // The task yielded: behind the others.
                l.queue.push(r);
                self.notify();
            }
            Some(l) => {
                // Message passing: run the woken task next, on this worker.
                if let Some(prev) = l.lifo.replace(Some(r)) {
                    l.queue.push(prev);
                    self.notify();
                }
            }
            None => self.inject(r),
        });
    }

    fn inject(&self, r: Runnable) {
        self.injector.push(r);
        self.notify();
        // The workers are gone: cancel what nobody will run. Not while
        // `terminate` is still at work (it drops what it finds itself),
        // and not here: this wake may come from inside a lock the task's
        // destructor takes again (event-listener and other libraries'
        // waiter lists wake with their lock held; a wake that began before
        // the shutdown and ends after it), so the blocking pool drops them.
        if self.reaped.load(Ordering::SeqCst) {
            loop {
                match self.injector.steal() {
                    Steal::Success(r) => crate::blocking_run(Box::new(move || drop(r))),
                    Steal::Empty => break,
                    Steal::Retry => {}
                }
            }
        } else if self.cancelling.load(Ordering::SeqCst) {
            self.doom_injected();
        }
    }

    fn drain_injector(&self) {
        loop {
            match self.injector.steal() {
                Steal::Success(r) => drop(r),
                Steal::Empty => break,
                Steal::Retry => {}
            }
        }
    }

    /// Called after making work visible: wake a sleeper unless a worker is
    /// already searching (it will find the work, or wake another in turn).
    #[inline]
    fn notify(&self) {
        if let Some(i) = self.idle.notify() {
            self.unpark(i);
        }
    }

    /// Unpark worker `i` (its token is already set).
    fn unpark(&self, i: usize) {
        if let Some(t) = self.workers[i].thread.get() {
            t.unpark();
        }
    }

    fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        for i in self.idle.wake_all() {
            self.unpark(i);
        }
        // Every worker may be waiting in `sync_wait` already: none would
        // park or block again to take the decision.
        self.cancel_suspended_if_stuck();
    }

    fn terminate(&self) {
        self.terminated.store(true, Ordering::SeqCst);
        // Each step runs even if one before panicked (a foreign waker, a
        // task's destructor), so that later spawns are still dropped.
        crate::survive("dropping a task at pool shutdown", || self.drain_injector());
        // Cancel the suspended tasks: woken now, each is scheduled, sees the
        // pool terminated and is dropped. Collect first: dropping a task
        // unregisters it, which takes the shard's lock.
        crate::survive("a waker woken at pool shutdown", || {
            crate::wake_all(self.registry.take())
        });
        // Cancel them here, outside any lock; a cancelled task that held a
        // lock guard wakes the next waiter, which lands in the injector and
        // is drained in the same loop.
        crate::survive("dropping a task at pool shutdown", || self.drain_injector());
        self.reaped.store(true, Ordering::SeqCst);
        // `inject` pushes, then (in `notify`) fences, then looks at
        // `reaped`; here the mark, a fence, then the drain: one of the two
        // sees the other. The pattern (each side writes one location, then
        // reads the other's) is not ordered by the SeqCst mark alone: a
        // task pushed as the pool was reaped could stay queued, neither
        // run nor dropped (loom_pool's shutdown models find it without
        // this fence; crossbeam's own fences may hide it today, which
        // this does not count on).
        sync::fence(Ordering::SeqCst);
        crate::survive("dropping a task at pool shutdown", || self.drain_injector());
    }

    /// If the pool is [`stuck`](idle::stuck): mark it cancelling and
    /// wake every suspended task, each of which is then dropped by the
    /// reaper (no worker may be free to take it). Called by a worker going
    /// to sleep (`park`), by one about to block in `sync_wait` (its block
    /// hook) and by `shutdown()`, each after it counted itself (asleep;
    /// blocked; the flag), so that of two racing, at least one sees the
    /// other (both sides write, then read, with `SeqCst`). Called again
    /// later (a worker blocks anew), it cancels what suspended since.
    fn cancel_suspended_if_stuck(&self) {
        if !idle::stuck(self) {
            return;
        }
        self.cancelling.store(true, Ordering::SeqCst);
        // A task queued by a wake that read the flag before it was set
        // (`inject` reads it again after its push, behind a fence): one of
        // the two hands it to the reaper.
        sync::fence(Ordering::SeqCst);
        self.doom_injected();
        // Wakers cloned under the shards' locks, woken outside them; left
        // registered, so that no key is freed while its task lives.
        crate::survive("a waker woken at pool shutdown", || {
            crate::wake_all(self.registry.wakers())
        });
    }

    /// Hand everything in the shared queue to the reaper.
    fn doom_injected(&self) {
        loop {
            match self.injector.steal() {
                Steal::Success(r) => self.doom(r),
                Steal::Empty => break,
                Steal::Retry => {}
            }
        }
    }

    /// A task cancelled while workers live: dropped by the reaper, one
    /// blocking-pool job that drops them one after another (not here: this
    /// may be a wake from inside a lock the task's destructor takes again;
    /// not on a worker: every worker may be blocked). The reaper counts as
    /// one of the pool's threads: a destructor there that drops the last
    /// handle or calls `shutdown()` does not join the workers, one of
    /// which may be waiting for that very drop.
    fn doom(&self, r: Runnable) {
        let mut g = lock(&self.reaper);
        g.doomed.push(r);
        if g.running {
            return;
        }
        g.running = true;
        drop(g);
        let Some(me) = self.me.upgrade() else {
            return; // unreachable: `self` is alive in an `Arc`
        };
        // The job owns the reaper, whose drop reaps: also when the
        // blocking pool drops the job unrun (no thread could start), on
        // whichever thread drops it then, rather than never. No scheduler
        // scope: the reaper belongs to no scheduler's blocking jobs.
        drop(crate::blocking::spawn_blocking_unscoped(reaper_job(me)));
    }

    /// Whether this thread is dropping this pool's cancelled tasks.
    fn is_reaper_thread(&self) -> bool {
        REAPING.try_with(Cell::get).is_ok_and(|id| id == self.id)
    }

    fn untrack(&self, shard: usize, key: usize) {
        // After termination the shard was emptied: nothing to remove then.
        self.registry.remove(shard, key);
    }

    /// Whether any queue other than the caller's private slots has work.
    fn has_visible_work(&self) -> bool {
        !self.injector.is_empty() || self.workers.iter().any(|w| !w.stealer.is_empty())
    }
}

impl idle::Waiting for Shared {
    fn workers(&self) -> usize {
        self.workers.len()
    }
    fn any_blocked(&self) -> bool {
        self.blocked.load(Ordering::SeqCst) > 0
    }
    fn blocks(&self, i: usize) -> u64 {
        self.workers[i].blocks.load(Ordering::SeqCst)
    }
    fn is_blocked(&self, i: usize) -> bool {
        self.workers[i].blocked.load(Ordering::SeqCst)
    }
    fn is_woken(&self, i: usize) -> bool {
        self.workers[i].wait.get().is_none_or(|w| w.is_woken())
    }
}

impl idle::Parking for Shared {
    fn idle(&self) -> &Idle {
        &self.idle
    }
    fn has_visible_work(&self) -> bool {
        Shared::has_visible_work(self)
    }
    fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }
    fn leaving(&self) -> &AtomicBool {
        &self.leaving
    }
    fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
    fn cancel_suspended_if_stuck(&self) {
        Shared::cancel_suspended_if_stuck(self);
    }
    fn unpark(&self, i: usize) {
        Shared::unpark(self, i);
    }
    fn wait_for_token(&self, index: usize) {
        while !self.idle.take_token(index) {
            thread::park();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn schedule_runnable_runs_foreign_tasks_on_workers() {
        // The I/O scheduler's thread-pool strategy: its own tasks, our workers.
        let pool = ThreadPool::new(ThreadPoolOptions {
            thread_count: 2,
            ..Default::default()
        });
        assert!(!pool.is_worker_thread());
        let p = pool.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let p2 = pool.clone();
        let (runnable, handle) = crate::task::task(
            async move {
                // Woken from elsewhere, rescheduled through the pool again.
                p2.yield_now().await;
                tx.send(p2.is_worker_thread()).unwrap();
                7
            },
            move |r| p.schedule_runnable(r, false),
        );
        pool.schedule_runnable(runnable, false);
        assert!(rx.recv_timeout(Duration::from_secs(60)).unwrap());
        assert_eq!(coro_core::sync_wait(handle).unwrap(), 7);
    }

    #[test]
    fn state_word_is_balanced_after_shutdown_of_an_idle_pool() {
        let pool = ThreadPool::new(ThreadPoolOptions {
            thread_count: 3,
            ..Default::default()
        });
        for _ in 0..100 {
            coro_core::sync_wait(pool.spawn(async {})).unwrap();
        }
        pool.shutdown();
        let shared = &pool.owner.shared;
        assert_eq!(shared.live.load(Ordering::SeqCst), 0);
        assert!(shared.terminated.load(Ordering::SeqCst));
        // Nobody left counted as searching either (an exiting worker kept
        // its count: later notifies woke nobody).
        assert_eq!(shared.idle.counts(), (0, 0, 0));
        assert_eq!(shared.registry.len(), 0);
    }

    /// The blocking pool drops a job it cannot start a thread for: the
    /// reaper's job must still drop what it was given and say it is done,
    /// or every later cancelled task would wait in the list and
    /// `shutdown()` would wait for the reaper for ever.
    #[test]
    fn a_reaper_job_dropped_unrun_still_reaps() {
        let pool = ThreadPool::new(ThreadPoolOptions {
            thread_count: 1,
            ..Default::default()
        });
        let shared = pool.owner.shared.clone();
        let (r, h) = task_with(std::future::pending::<()>(), |r: Runnable| drop(r));
        {
            let mut g = lock(&shared.reaper);
            g.doomed.push(r);
            g.running = true; // as `doom` leaves it
        }
        drop(reaper_job(shared.clone())); // what the blocking pool does then
        let mut g = lock(&shared.reaper);
        let reaped = !g.running && g.doomed.is_empty();
        // Failing, not hanging: the pool's drop waits for the reaper.
        g.running = false;
        let left = std::mem::take(&mut g.doomed);
        drop(g);
        drop(left);
        assert!(reaped, "the reaper left its list and its mark");
        assert!(h.is_finished(), "the doomed task was not dropped");
        pool.shutdown();
    }
}

/// `idle::park` on a replayed interleaving (here, not in `idle.rs`,
/// which the loom models compile with loom's types).
#[cfg(test)]
mod park_tests {
    use super::idle::{Idle, Parking, park};
    use std::sync::Mutex as StdMutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Another thread's steps, run at a chosen point.
    type Step = Box<dyn FnOnce(&Replay) + Send>;

    /// A pool whose `shutting_down` runs a step of another thread the
    /// moment it is asked (a fixed interleaving, replayed on one thread).
    struct Replay {
        idle: Idle,
        leaving: AtomicBool,
        shutdown: AtomicBool,
        work: AtomicBool,
        on_flag: StdMutex<Option<Step>>,
    }

    impl Parking for Replay {
        fn idle(&self) -> &Idle {
            &self.idle
        }
        fn has_visible_work(&self) -> bool {
            self.work.load(Ordering::SeqCst)
        }
        fn shutting_down(&self) -> bool {
            let step = self.on_flag.lock().unwrap().take();
            if let Some(step) = step {
                step(self);
            }
            self.shutdown.load(Ordering::SeqCst)
        }
        fn leaving(&self) -> &AtomicBool {
            &self.leaving
        }
        fn live(&self) -> usize {
            2
        }
        fn cancel_suspended_if_stuck(&self) {
            // Nobody blocks in `sync_wait` here.
        }
        fn unpark(&self, _: usize) {}
        fn wait_for_token(&self, index: usize) {
            assert!(self.idle.take_token(index), "would wait for ever");
        }
    }

    /// Worker 0 parks. Around its look at the flag, another thread spawns
    /// a task (nobody is woken: worker 1 searches), `shutdown()` sets the
    /// flag, and worker 1 goes to sleep having seen the task but not yet
    /// cancelled its sleep. Worker 0 must not decide that everyone sleeps
    /// with nothing to do: its look must see the task.
    #[test]
    fn no_leaving_on_a_look_older_than_the_shutdown() {
        let p = Replay {
            idle: Idle::new(2),
            leaving: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            work: AtomicBool::new(false),
            on_flag: StdMutex::new(Some(Box::new(|p: &Replay| {
                p.idle.start_searching();
                p.work.store(true, Ordering::SeqCst);
                p.shutdown.store(true, Ordering::SeqCst);
                p.idle.sleep(1, true);
            }))),
        };
        let mut searching = false;
        assert!(park(&p, 0, &mut searching), "worker 0 left");
        assert!(
            !p.leaving.load(Ordering::SeqCst),
            "everyone left with a task queued"
        );
        assert!(searching);
    }
}
