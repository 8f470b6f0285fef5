//! [`spawn_blocking`]: run blocking code on a separate, elastic pool of threads.
//!
//! Blocking calls (file system, `getaddrinfo`, CPU-heavy work, a synchronous
//! library) would stall a [`ThreadPool`](crate::thread_pool::ThreadPool) worker
//! or the I/O thread and every task queued behind it. `spawn_blocking` runs
//! them on one process-wide pool instead: a thread is started when a job
//! arrives and none is idle (up to [`MAX_THREADS`]), and a thread that stays
//! idle for [`KEEP_ALIVE`] exits. Jobs beyond the cap wait in a FIFO queue.
//!
//! The pool is shared with the library's own jobs: file I/O on epoll and
//! the file operations io_uring has no opcode for (`coro_io::fs`,
//! `File::set_len`), standard input and output, child processes'
//! fallbacks, coro-net's DNS lookups, the thread pool's clean-up. With
//! [`MAX_THREADS`] long jobs of yours running, those wait in the same
//! queue behind them, as tokio's do: bound the long jobs you start (a
//! semaphore) if the I/O must not wait. (Some of the library's jobs are
//! long too: a read of standard input waits for input.)

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::Duration;

use async_task::Runnable;

use crate::task::{JoinHandle, task_with};

/// Most threads the blocking pool runs at once.
pub const MAX_THREADS: usize = 512;

/// How long a blocking-pool thread waits for a new job before it exits.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// Run `f` on the blocking pool and return a handle to its result.
///
/// The handle is an ordinary [`JoinHandle`]: await it from any executor (or
/// block on it). Called from a task of an [`IoScheduler`](crate::IoScheduler)
/// (or its loop), `f` runs with that scheduler current, as a tokio
/// blocking task runs in its runtime's context: it can `coro_io::spawn`,
/// use the `coro_io::fs` functions, or `sync_wait` on the scheduler's I/O.
/// It does not count as a handle (the scheduler still shuts down when its
/// last handle goes, and refuses what `f` asks of it then), but it keeps
/// the scheduler's memory and its driver's fds until `f` returns. A
/// `shutdown()` made in `f` (also the drop of the scheduler's last
/// handle there) starts the shutdown and returns without waiting for the
/// scheduler's threads, which a task may be blocking on `f`: they end on
/// their own, and a later `shutdown()` from outside waits for them.
/// A panic in `f` is caught and reported as a
/// [`JoinError`](crate::task::JoinError) with `is_panic()`. Aborting the handle
/// before `f` started prevents it from running; once started, `f` runs to the
/// end (blocking code cannot be interrupted) and its result is dropped.
///
/// # Examples
///
/// ```
/// use coro_io::blocking::spawn_blocking;
///
/// let h = spawn_blocking(|| std::fs::metadata("/").is_ok());
/// assert!(coro_core::sync_wait(h).unwrap());
/// ```
pub fn spawn_blocking<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    spawn_in(crate::scheduler::CurrentScope::capture(), f)
}

/// [`spawn_blocking`] with no scheduler current in the job, whatever the
/// caller's: for the library's own jobs that need none, so that they do
/// not keep a scheduler (its memory and fds) alive while they run.
pub(crate) fn spawn_blocking_unscoped<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    spawn_in(crate::scheduler::CurrentScope::none(), f)
}

fn spawn_in<F, T>(scope: crate::scheduler::CurrentScope, f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    static GLOBAL: OnceLock<Arc<BlockingPool>> = OnceLock::new();
    GLOBAL
        .get_or_init(|| BlockingPool::new(MAX_THREADS, KEEP_ALIVE, "coro-blocking"))
        .spawn(move || scope.run(f))
}

/// An elastic pool; the process-wide one lives in `spawn_blocking`, tests make
/// their own with small limits.
pub(crate) struct BlockingPool {
    state: Mutex<State>,
    /// Idle threads wait here for jobs.
    job: Condvar,
    /// Signalled when a thread exits (tests wait on it).
    exited: Condvar,
    max_threads: usize,
    keep_alive: Duration,
    name: &'static str,
}

struct State {
    queue: VecDeque<Runnable>,
    threads: usize,
    idle: usize,
    /// Wake-ups handed to idle threads and not yet consumed (so one `notify`
    /// per job, and a timed-out thread cannot steal another's wake-up).
    notified: usize,
}

impl BlockingPool {
    pub(crate) fn new(max_threads: usize, keep_alive: Duration, name: &'static str) -> Arc<Self> {
        Arc::new(BlockingPool {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                threads: 0,
                idle: 0,
                notified: 0,
            }),
            job: Condvar::new(),
            exited: Condvar::new(),
            max_threads: max_threads.max(1),
            keep_alive,
            name,
        })
    }

    pub(crate) fn spawn<F, T>(self: &Arc<Self>, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.clone();
        // The future completes on its first poll, so the schedule function
        // runs once, for the initial submission.
        // The job runs to its end in this one poll: it gets no budget (a
        // budget spent inside it would never come back, and an executor's
        // `block_on` in it would spin on ops that yield for it).
        let (runnable, handle) =
            task_with(async move { crate::coop::without_budget(f) }, move |r| {
                pool.submit(r)
            });
        runnable.schedule();
        handle
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        crate::lock(&self.state)
    }

    fn submit(self: &Arc<Self>, r: Runnable) {
        let mut st = self.lock();
        st.queue.push_back(r);
        if st.idle > st.notified {
            st.notified += 1;
            drop(st);
            self.job.notify_one();
        } else if st.threads < self.max_threads {
            st.threads += 1;
            drop(st);
            let pool = self.clone();
            let spawned = crate::spawn_thread(
                thread::Builder::new().name(self.name.to_owned()),
                move || pool.thread_main(),
            );
            if spawned.is_err() {
                // Could not grow: the job stays queued for the threads we have;
                // with none at all, nobody will run it, so cancel it.
                let mut st = self.lock();
                st.threads -= 1;
                if st.threads == 0 {
                    let dropped: Vec<_> = st.queue.drain(..).collect();
                    drop(st);
                    drop(dropped);
                }
            }
        }
        // Otherwise at the cap: a busy thread takes the job when it is free.
    }

    fn thread_main(self: Arc<Self>) {
        let mut st = self.lock();
        loop {
            if let Some(r) = st.queue.pop_front() {
                drop(st);
                // The task wrapper catches panics of `f`.
                r.run();
                st = self.lock();
                continue;
            }
            st.idle += 1;
            let (guard, timeout) = self
                .job
                .wait_timeout_while(st, self.keep_alive, |s| s.notified == 0)
                .unwrap_or_else(|e| e.into_inner());
            st = guard;
            st.idle -= 1;
            if st.notified > 0 {
                st.notified -= 1;
            } else if timeout.timed_out() && st.queue.is_empty() {
                st.threads -= 1;
                drop(st);
                self.exited.notify_all();
                return;
            }
        }
    }

    #[cfg(test)]
    fn threads(&self) -> usize {
        self.lock().threads
    }

    /// Wait (up to `bound`) until at most `n` threads are left.
    #[cfg(test)]
    fn wait_threads_at_most(&self, n: usize, bound: Duration) -> usize {
        let st = self.lock();
        let (st, _) = self
            .exited
            .wait_timeout_while(st, bound, |s| s.threads > n)
            .unwrap_or_else(|e| e.into_inner());
        st.threads
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn runs_and_returns() {
        let h = spawn_blocking(|| 40 + 2);
        assert_eq!(futures::executor::block_on(h).unwrap(), 42);
    }

    #[test]
    fn panic_is_reported_and_thread_survives() {
        let pool = BlockingPool::new(1, Duration::from_secs(30), "t-blocking");
        let h = pool.spawn(|| panic!("blocking boom"));
        let err = futures::executor::block_on(h).unwrap_err();
        assert!(err.is_panic());
        // The single thread is still there and still works.
        assert_eq!(futures::executor::block_on(pool.spawn(|| 1)).unwrap(), 1);
        assert_eq!(pool.threads(), 1);
    }

    #[test]
    fn grows_on_demand_and_shrinks_when_idle() {
        // The keep-alive is long enough that no thread leaves before the
        // count below, even when this thread is descheduled for a while
        // after the jobs end (50 ms was not, on a loaded machine).
        let pool = BlockingPool::new(64, Duration::from_secs(2), "t-blocking");
        // Four jobs that can only finish together: they need four threads.
        let barrier = Arc::new(Barrier::new(4));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let b = barrier.clone();
                pool.spawn(move || {
                    b.wait();
                })
            })
            .collect();
        for h in hs {
            futures::executor::block_on(h).unwrap();
        }
        assert_eq!(pool.threads(), 4);
        // Idle threads leave after the keep-alive.
        assert_eq!(pool.wait_threads_at_most(0, Duration::from_secs(10)), 0);
        // And the pool grows again afterwards.
        assert_eq!(futures::executor::block_on(pool.spawn(|| 3)).unwrap(), 3);
    }

    #[test]
    fn respects_the_cap_and_queues_the_rest() {
        let pool = BlockingPool::new(2, Duration::from_secs(30), "t-blocking");
        let running = Arc::new(AtomicUsize::new(0));
        let max_seen = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..50)
            .map(|_| {
                let running = running.clone();
                let max_seen = max_seen.clone();
                pool.spawn(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    max_seen.fetch_max(now, Ordering::SeqCst);
                    std::hint::black_box((0..1000).sum::<u64>());
                    running.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for h in hs {
            futures::executor::block_on(h).unwrap();
        }
        assert!(max_seen.load(Ordering::SeqCst) <= 2);
        assert!(pool.threads() <= 2);
    }

    #[test]
    fn aborted_before_start_never_runs() {
        let pool = BlockingPool::new(1, Duration::from_secs(30), "t-blocking");
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        // Occupy the only thread.
        let first = pool.spawn(move || {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        });
        started_rx.recv_timeout(Duration::from_secs(60)).unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let second = pool.spawn(move || {
            r.fetch_add(1, Ordering::SeqCst);
        });
        second.abort();
        release_tx.send(()).unwrap();
        futures::executor::block_on(first).unwrap();
        assert!(
            futures::executor::block_on(second)
                .unwrap_err()
                .is_cancelled()
        );
        // A later job runs after the aborted one was skipped.
        futures::executor::block_on(pool.spawn(|| ())).unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }
}
