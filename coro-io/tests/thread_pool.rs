//! ThreadPool, JoinHandle and spawn_blocking behaviour.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use coro_io::blocking::spawn_blocking;
use coro_io::thread_pool::{ThreadPool, ThreadPoolOptions};

/// Generous bound for "this must not hang"; only reached on a bug.
const HANG: Duration = Duration::from_secs(60);

fn pool(n: usize) -> ThreadPool {
    ThreadPool::new(ThreadPoolOptions {
        thread_count: n,
        ..Default::default()
    })
}

/// `block_on` on a helper thread, failing the test instead of hanging forever.
fn block_on_bounded<F>(fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(futures::executor::block_on(fut));
    });
    rx.recv_timeout(HANG)
        .expect("future did not complete: hang")
}

/// Run a closure on a helper thread, failing the test if it does not return.
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(HANG).expect("did not return: deadlock")
}

/// `shutdown()` started on a thread of its own, given 50 ms to begin.
fn shutdown_in_background(p: &ThreadPool) -> std::thread::JoinHandle<()> {
    let p = p.clone();
    let t = std::thread::spawn(move || p.shutdown());
    std::thread::sleep(Duration::from_millis(50));
    t
}

/// Finish the shutdown (`early`: one begun by [`shutdown_in_background`],
/// else one begun now), bounded; then each parent, blocked in `sync_wait`
/// on a child that never ends, must finish with "cancelled".
fn shut_down_expecting_cancelled_waits(
    p: &ThreadPool,
    early: Option<std::thread::JoinHandle<()>>,
    parents: Vec<coro_io::JoinHandle<Result<u32, coro_io::JoinError>>>,
    what: &str,
) {
    let p = p.clone();
    match early {
        Some(t) => bounded(move || t.join().unwrap()),
        None => bounded(move || p.shutdown()),
    }
    for parent in parents {
        let r = block_on_bounded(parent).expect("the parent itself finishes");
        assert!(r.unwrap_err().is_cancelled(), "{what}");
    }
}

#[test]
fn handle_types_are_send_and_sync() {
    fn check<T: Send + Sync>(_: &T) {}
    let p = pool(1);
    check(&p);
    let h = p.spawn(async { 1u8 });
    check(&h);
    let err = block_on_bounded(p.spawn(async { panic!("x") })).unwrap_err();
    check(&err);
    // JoinError converts into the usual error boxes.
    let _: Box<dyn std::error::Error + Send + Sync> = Box::new(err);
    assert_eq!(block_on_bounded(h).unwrap(), 1);
}

#[test]
fn spawn_and_join_from_outside_and_inside() {
    let p = pool(2);
    let inner = p.clone();
    let h = p.spawn(async move {
        let hs: Vec<_> = (0..100u64).map(|i| inner.spawn(async move { i })).collect();
        let mut sum = 0;
        for h in hs {
            sum += h.await.unwrap();
        }
        // Joined from inside: we run on a worker.
        assert!(
            std::thread::current()
                .name()
                .unwrap()
                .starts_with("coro-pool-")
        );
        sum
    });
    assert_eq!(block_on_bounded(h).unwrap(), 4950);
}

#[test]
fn a_million_tiny_tasks_all_complete() {
    const OUTER: usize = 1_000;
    const INNER: usize = 1_000;
    let p = pool(0); // available parallelism
    let count = Arc::new(AtomicUsize::new(0));
    // Half spawned from outside the pool, half from inside tasks.
    let mut outside = Vec::with_capacity(OUTER * INNER / 2);
    for _ in 0..OUTER * INNER / 2 {
        let c = count.clone();
        outside.push(p.spawn(async move {
            c.fetch_add(1, Ordering::Relaxed);
        }));
    }
    let spawners: Vec<_> = (0..OUTER / 2)
        .map(|_| {
            let c = count.clone();
            let inner = p.clone();
            p.spawn(async move {
                let hs: Vec<_> = (0..INNER)
                    .map(|_| {
                        let c = c.clone();
                        inner.spawn(async move {
                            c.fetch_add(1, Ordering::Relaxed);
                        })
                    })
                    .collect();
                for h in hs {
                    h.await.unwrap();
                }
            })
        })
        .collect();
    block_on_bounded(async move {
        for h in outside {
            h.await.unwrap();
        }
        for h in spawners {
            h.await.unwrap();
        }
    });
    assert_eq!(count.load(Ordering::Relaxed), OUTER * INNER);
    assert_eq!(p.queue_len(), 0);
}

#[test]
fn panics_are_isolated_and_reported() {
    let p = pool(1);
    let worker =
        |p: &ThreadPool| block_on_bounded(p.spawn(async { std::thread::current().id() })).unwrap();
    let before = worker(&p);
    for i in 0..10 {
        let msg = format!("boom {i}");
        let err = block_on_bounded(p.spawn(async move { panic!("{msg}") })).unwrap_err();
        assert!(err.is_panic());
        assert!(!err.is_cancelled());
        assert_eq!(err.to_string(), format!("task panicked: boom {i}"));
        assert_eq!(
            *err.into_panic().downcast::<String>().unwrap(),
            format!("boom {i}")
        );
    }
    // The same (single) worker thread is still alive and serving.
    assert_eq!(worker(&p), before);
}

#[test]
fn panic_in_a_futures_destructor_does_not_kill_the_worker() {
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("drop boom");
        }
    }
    let p = pool(1);
    let h = p.spawn(async {
        let _d = PanicOnDrop;
        std::future::pending::<()>().await;
    });
    let id = block_on_bounded(p.spawn(async { std::thread::current().id() })).unwrap();
    h.abort(); // the worker drops the future, whose destructor panics
    assert!(block_on_bounded(h).unwrap_err().is_cancelled());
    let id2 = block_on_bounded(p.spawn(async { std::thread::current().id() })).unwrap();
    assert_eq!(id, id2);
}

#[test]
fn abort_drops_a_pending_task() {
    struct Flag(Arc<AtomicUsize>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let p = pool(2);
    let drops = Arc::new(AtomicUsize::new(0));
    let (started_tx, started_rx) = mpsc::channel();
    let f = Flag(drops.clone());
    let h = p.spawn(async move {
        let _f = f;
        started_tx.send(()).unwrap();
        std::future::pending::<()>().await;
    });
    started_rx.recv_timeout(HANG).unwrap();
    assert!(!h.is_finished());
    h.abort();
    // The future is dropped by a worker; the handle resolves after that.
    assert!(block_on_bounded(h).unwrap_err().is_cancelled());
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    p.shutdown();
}

#[test]
fn dropping_the_handle_detaches() {
    let p = pool(2);
    let (tx, rx) = mpsc::channel();
    drop(p.spawn(async move {
        tx.send(7).unwrap();
    }));
    assert_eq!(rx.recv_timeout(HANG).unwrap(), 7);
}

#[test]
fn shutdown_finishes_queued_tasks_and_refuses_new_ones() {
    let p = pool(2);
    let done = Arc::new(AtomicUsize::new(0));
    let mut hs = Vec::new();
    for _ in 0..10_000 {
        let d = done.clone();
        let y = p.clone();
        hs.push(p.spawn(async move {
            // In flight: each task goes round the queue a few times.
            for _ in 0..3 {
                y.yield_now().await;
            }
            d.fetch_add(1, Ordering::SeqCst);
        }));
    }
    let p2 = p.clone();
    bounded(move || p2.shutdown());
    assert_eq!(done.load(Ordering::SeqCst), 10_000);
    assert!(p.is_shutdown());
    block_on_bounded(async move {
        for h in hs {
            h.await.unwrap();
        }
    });
    // New work is refused with a cancelled JoinError.
    let err = block_on_bounded(p.spawn(async { 1 })).unwrap_err();
    assert!(err.is_cancelled());
    // Shutting down twice is fine.
    p.shutdown();
}

#[test]
fn task_woken_after_the_workers_exited_is_cancelled() {
    let p = pool(1);
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    let h = p.spawn(async move {
        let _ = rx.await;
        1
    });
    // Make sure it ran once and is suspended on the channel.
    block_on_bounded(p.spawn(async {})).unwrap();
    p.shutdown();
    // Already cancelled by the shutdown (its receiver is gone); a late
    // wake-up must not revive it.
    assert!(tx.send(()).is_err());
    assert!(block_on_bounded(h).unwrap_err().is_cancelled());
}

#[test]
fn last_handle_dropped_outside_joins_after_draining() {
    let p = pool(2);
    let done = Arc::new(AtomicUsize::new(0));
    for _ in 0..1_000 {
        let d = done.clone();
        p.spawn(async move {
            d.fetch_add(1, Ordering::SeqCst);
        })
        .detach();
    }
    bounded(move || drop(p));
    assert_eq!(done.load(Ordering::SeqCst), 1_000);
}

#[test]
fn callbacks_run_once_per_worker_with_index_and_names() {
    let starts = Arc::new(Mutex::new(vec![0usize; 4]));
    let stops = Arc::new(Mutex::new(vec![0usize; 4]));
    let names = Arc::new(Mutex::new(Vec::new()));
    let (s, t, nm) = (starts.clone(), stops.clone(), names.clone());
    let p = ThreadPool::new(ThreadPoolOptions {
        thread_count: 4,
        on_thread_start: Some(Arc::new(move |i| {
            s.lock().unwrap()[i] += 1;
            nm.lock()
                .unwrap()
                .push(std::thread::current().name().unwrap().to_owned());
        })),
        on_thread_stop: Some(Arc::new(move |i| t.lock().unwrap()[i] += 1)),
        thread_name: "cb-test".to_owned(),
    });
    assert_eq!(p.thread_count(), 4);
    for _ in 0..100 {
        block_on_bounded(p.spawn(async {})).unwrap();
    }
    bounded(move || p.shutdown());
    assert_eq!(*starts.lock().unwrap(), vec![1, 1, 1, 1]);
    assert_eq!(*stops.lock().unwrap(), vec![1, 1, 1, 1]);
    let mut names = names.lock().unwrap().clone();
    names.sort();
    assert_eq!(names, ["cb-test-0", "cb-test-1", "cb-test-2", "cb-test-3"]);
}

#[test]
fn panicking_callback_does_not_break_the_pool() {
    let p = ThreadPool::new(ThreadPoolOptions {
        thread_count: 1,
        on_thread_start: Some(Arc::new(|_| panic!("start boom"))),
        ..Default::default()
    });
    assert_eq!(block_on_bounded(p.spawn(async { 5 })).unwrap(), 5);
}

#[test]
fn drop_of_last_handle_on_a_worker_detaches_instead_of_deadlocking() {
    // libcoro#420: the pool's last handle lives in one of its own tasks.
    let (stopped_tx, stopped_rx) = mpsc::channel();
    let stopped_tx = Mutex::new(stopped_tx);
    let p = ThreadPool::new(ThreadPoolOptions {
        thread_count: 2,
        on_thread_stop: Some(Arc::new(move |i| {
            let _ = stopped_tx.lock().unwrap().send(i);
        })),
        ..Default::default()
    });
    let (done_tx, done_rx) = mpsc::channel();
    let own = p.clone();
    p.spawn(async move {
        // Races with the outside drop: whichever handle goes last shuts down.
        drop(own);
        done_tx.send(()).unwrap();
    })
    .detach();
    drop(p);
    // Either ordering must finish: the task completes and both workers stop.
    done_rx
        .recv_timeout(HANG)
        .expect("task deadlocked dropping its pool");
    let mut stopped = vec![
        stopped_rx.recv_timeout(HANG).unwrap(),
        stopped_rx.recv_timeout(HANG).unwrap(),
    ];
    stopped.sort();
    assert_eq!(stopped, [0, 1]);
}

#[test]
fn drop_on_worker_when_it_really_is_the_last_handle() {
    let (stopped_tx, stopped_rx) = mpsc::channel();
    let stopped_tx = Mutex::new(stopped_tx);
    let p = ThreadPool::new(ThreadPoolOptions {
        thread_count: 2,
        on_thread_stop: Some(Arc::new(move |i| {
            let _ = stopped_tx.lock().unwrap().send(i);
        })),
        ..Default::default()
    });
    let (go_tx, go_rx) = futures::channel::oneshot::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel();
    let own = p.clone();
    p.spawn(async move {
        go_rx.await.unwrap();
        // By now the outside handle has been dropped: this is the last one.
        drop(own);
        done_tx.send(()).unwrap();
    })
    .detach();
    // Dropping the outside handle does not shut down: the task holds a clone.
    drop(p);
    go_tx.send(()).unwrap();
    done_rx
        .recv_timeout(HANG)
        .expect("task deadlocked dropping its pool");
    for _ in 0..2 {
        stopped_rx.recv_timeout(HANG).expect("worker did not exit");
    }
}

#[test]
fn queue_len_counts_waiting_tasks() {
    let p = pool(1);
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (busy_tx, busy_rx) = mpsc::channel();
    // Occupy the only worker.
    let blocker = p.spawn(async move {
        busy_tx.send(()).unwrap();
        release_rx.recv().unwrap();
    });
    busy_rx.recv_timeout(HANG).unwrap();
    assert_eq!(p.queue_len(), 0);
    let hs: Vec<_> = (0..10).map(|_| p.spawn(async {})).collect();
    assert_eq!(p.queue_len(), 10);
    release_tx.send(()).unwrap();
    block_on_bounded(async move {
        blocker.await.unwrap();
        for h in hs {
            h.await.unwrap();
        }
    });
    assert_eq!(p.queue_len(), 0);
}

#[test]
fn no_lost_wakeups_when_workers_park_and_unpark() {
    // Each round the workers go idle and park; the next spawn must wake one.
    for n in [1, 2, 4] {
        let p = pool(n);
        block_on_bounded(async move {
            for i in 0..5_000u32 {
                assert_eq!(p.spawn(async move { i }).await.unwrap(), i);
            }
        });
    }
}

#[test]
fn message_passing_ping_pong() {
    use futures::{SinkExt, StreamExt};
    let p = pool(2);
    let (mut a_tx, mut a_rx) = futures::channel::mpsc::channel::<u32>(1);
    let (mut b_tx, mut b_rx) = futures::channel::mpsc::channel::<u32>(1);
    let pinger = p.spawn(async move {
        for i in 0..10_000 {
            a_tx.send(i).await.unwrap();
            assert_eq!(b_rx.next().await, Some(i + 1));
        }
    });
    let ponger = p.spawn(async move {
        while let Some(i) = a_rx.next().await {
            b_tx.send(i + 1).await.unwrap();
        }
    });
    block_on_bounded(async move {
        pinger.await.unwrap();
        ponger.await.unwrap();
    });
}

#[test]
fn schedule_and_yield_now() {
    let p = pool(2);
    let inner = p.clone();
    let h = p.spawn(async move {
        inner.schedule().await;
        let on_worker = std::thread::current()
            .name()
            .unwrap()
            .starts_with("coro-pool-");
        inner.yield_now().await;
        on_worker
    });
    assert!(block_on_bounded(h).unwrap());
    // Awaited outside the pool, schedule() is woken by a worker and completes.
    let outside = p.clone();
    block_on_bounded(async move { outside.schedule().await });
    // After shutdown it completes at once.
    p.shutdown();
    block_on_bounded(async move { p.schedule().await });
}

#[test]
fn yield_now_lets_other_tasks_run_on_a_single_worker() {
    let p = pool(1);
    let flag = Arc::new(AtomicUsize::new(0));
    let (f1, f2) = (flag.clone(), flag.clone());
    let y = p.clone();
    let spinner = p.spawn(async move {
        // Without a fair yield this would spin forever on one worker.
        let mut rounds = 0u64;
        while f1.load(Ordering::SeqCst) == 0 {
            y.yield_now().await;
            rounds += 1;
            assert!(rounds < 10_000_000, "other task never ran");
        }
    });
    let setter = p.spawn(async move {
        f2.store(1, Ordering::SeqCst);
    });
    block_on_bounded(async move {
        setter.await.unwrap();
        spinner.await.unwrap();
    });
}

#[test]
fn spawn_blocking_does_not_starve_pool_tasks() {
    // One worker; four pool tasks each wait on a blocking job, and the four
    // jobs can only finish together. This completes only if the blocking work
    // runs elsewhere (on >= 4 blocking threads) while the worker stays free.
    let p = pool(1);
    let barrier = Arc::new(Barrier::new(4));
    let hs: Vec<_> = (0..4)
        .map(|i| {
            let b = barrier.clone();
            p.spawn(async move {
                spawn_blocking(move || {
                    b.wait();
                    i
                })
                .await
                .unwrap()
            })
        })
        .collect();
    // While those block, ordinary pool tasks keep running.
    for k in 0..100 {
        assert_eq!(block_on_bounded(p.spawn(async move { k })).unwrap(), k);
    }
    let total: i32 = block_on_bounded(async move {
        let mut t = 0;
        for h in hs {
            t += h.await.unwrap();
        }
        t
    });
    assert_eq!(total, 6);
}

#[test]
fn spawn_blocking_reports_panics() {
    let err = block_on_bounded(spawn_blocking(|| -> u8 { panic!("blocking") })).unwrap_err();
    assert!(err.is_panic());
    assert_eq!(block_on_bounded(spawn_blocking(|| 9)).unwrap(), 9);
}

#[test]
fn pools_do_not_mix_their_workers() {
    // A task on pool A spawning on pool B goes to B's global queue and runs on B.
    let a = pool(1);
    let b = ThreadPool::new(ThreadPoolOptions {
        thread_count: 1,
        thread_name: "other".to_owned(),
        ..Default::default()
    });
    let b2 = b.clone();
    let name = block_on_bounded(a.spawn(async move {
        b2.spawn(async { std::thread::current().name().unwrap().to_owned() })
            .await
            .unwrap()
    }))
    .unwrap();
    assert_eq!(name, "other-0");
}

/// utime + stime (clock ticks) of this process's threads named `prefix*`.
fn cpu_ticks_of_threads(prefix: &str) -> (usize, u64) {
    let mut threads = 0;
    let mut ticks = 0;
    for entry in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let dir = entry.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !comm.trim_end().starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        // Fields after the ")" that closes the name: state is the 1st, utime
        // the 12th and stime the 13th.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        ticks += f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        threads += 1;
    }
    (threads, ticks)
}

#[test]
fn idle_workers_park_instead_of_spinning() {
    let p = ThreadPool::new(ThreadPoolOptions {
        thread_count: 2,
        thread_name: "idlechk".to_owned(),
        ..Default::default()
    });
    // Some work first, so the workers have been busy and then went idle.
    for i in 0..1_000 {
        block_on_bounded(p.spawn(async move { i })).unwrap();
    }
    let (threads, before) = cpu_ticks_of_threads("idlechk");
    assert_eq!(threads, 2);
    // A measurement window, not a wait for something to happen: two spinning
    // workers would burn ~200 ticks (at 100 Hz) in it. The bound leaves room
    // for a worker that a loaded machine descheduled mid-spin before it parked.
    std::thread::sleep(Duration::from_secs(1));
    let (_, after) = cpu_ticks_of_threads("idlechk");
    assert!(
        after - before <= 20,
        "idle workers used {} ticks",
        after - before
    );
    // And they still wake up for new work.
    assert_eq!(block_on_bounded(p.spawn(async { 1 })).unwrap(), 1);
}

#[test]
fn spawns_from_many_outside_threads_while_workers_park() {
    let p = pool(2);
    let total = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let p = p.clone();
            let total = total.clone();
            std::thread::spawn(move || {
                for i in 0..2_000usize {
                    let t = total.clone();
                    let h = p.spawn(async move {
                        t.fetch_add(1, Ordering::Relaxed);
                        i
                    });
                    assert_eq!(futures::executor::block_on(h).unwrap(), i);
                }
            })
        })
        .collect();
    bounded(move || {
        for t in threads {
            t.join().unwrap();
        }
    });
    assert_eq!(total.load(Ordering::Relaxed), 8_000);
}

#[test]
fn work_spawned_on_one_worker_is_stolen_by_the_idle_one() {
    // Two children that can only finish while running at the same time: the
    // second worker must pick one up from the first worker's queue.
    let p = pool(2);
    let inner = p.clone();
    let h = p.spawn(async move {
        let barrier = Arc::new(Barrier::new(2));
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let b = barrier.clone();
                inner.spawn(async move {
                    b.wait();
                    std::thread::current().id()
                })
            })
            .collect();
        let mut ids = Vec::new();
        for h in hs {
            ids.push(h.await.unwrap());
        }
        ids
    });
    let ids = block_on_bounded(h).unwrap();
    assert_ne!(ids[0], ids[1]);
}

/// Each task spawns the next and awaits it: completions unwind 100,000 levels
/// through wake-ups, never through the stack.
fn nested(p: ThreadPool, depth: usize) -> impl Future<Output = usize> + Send + 'static {
    let inner = p.clone();
    let h = p.spawn(async move {
        if depth == 0 {
            0
        } else {
            nested(inner, depth - 1).await + 1
        }
    });
    async move { h.await.unwrap() }
}

#[test]
fn deeply_nested_joins_do_not_overflow_the_stack() {
    let p = pool(2);
    assert_eq!(block_on_bounded(nested(p, 100_000)), 100_000);
}

#[test]
fn shutdown_called_from_a_task_signals_without_self_join() {
    let (stopped_tx, stopped_rx) = mpsc::channel();
    let stopped_tx = Mutex::new(stopped_tx);
    let p = ThreadPool::new(ThreadPoolOptions {
        thread_count: 2,
        on_thread_stop: Some(Arc::new(move |i| {
            let _ = stopped_tx.lock().unwrap().send(i);
        })),
        ..Default::default()
    });
    let inner = p.clone();
    let h = p.spawn(async move {
        inner.shutdown();
        // New spawns are refused from inside too.
        inner.spawn(async {}).await.unwrap_err().is_cancelled()
    });
    assert!(block_on_bounded(h).unwrap());
    for _ in 0..2 {
        stopped_rx.recv_timeout(HANG).expect("worker did not exit");
    }
    // Joining from outside afterwards is fine.
    bounded(move || p.shutdown());
}

#[test]
fn detached_task_that_nobody_can_wake_is_freed() {
    // No waker kept anywhere and no handle: the task is unreachable and must
    // be freed (dropping its future), not leaked.
    struct Forgotten(mpsc::Sender<&'static str>);
    impl Future for Forgotten {
        type Output = ();
        fn poll(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<()> {
            let _ = self.0.send("polled");
            std::task::Poll::Pending
        }
    }
    impl Drop for Forgotten {
        fn drop(&mut self) {
            let _ = self.0.send("dropped");
        }
    }
    let p = pool(1);
    let (tx, rx) = mpsc::channel();
    p.spawn(Forgotten(tx)).detach();
    assert_eq!(rx.recv_timeout(HANG).unwrap(), "polled");
    // async-task alone would free it without running its destructor; the pool
    // keeps it registered and cancels it at shutdown.
    bounded(move || p.shutdown());
    assert_eq!(rx.recv_timeout(HANG).unwrap(), "dropped");
}

#[test]
fn shutdown_cancels_suspended_tasks() {
    struct Flag(Arc<AtomicUsize>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let p = pool(2);
    let drops = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..100)
        .map(|_| {
            let f = Flag(drops.clone());
            p.spawn(async move {
                let _f = f;
                std::future::pending::<()>().await;
            })
        })
        .collect();
    // Whether or not they all ran yet: shutdown drains the queues first, and
    // every task that suspended is registered and then cancelled.
    block_on_bounded(p.spawn(async {})).unwrap();
    let p2 = p.clone();
    bounded(move || p2.shutdown());
    assert_eq!(drops.load(Ordering::SeqCst), 100);
    block_on_bounded(async move {
        for h in hs {
            assert!(h.await.unwrap_err().is_cancelled());
        }
    });
}

#[test]
fn concurrent_shutdowns_all_wait_for_the_workers() {
    let stopped = Arc::new(AtomicUsize::new(0));
    let s = stopped.clone();
    let p = ThreadPool::new(ThreadPoolOptions {
        thread_count: 2,
        on_thread_stop: Some(Arc::new(move |_| {
            s.fetch_add(1, Ordering::SeqCst);
        })),
        ..Default::default()
    });
    for _ in 0..100 {
        let y = p.clone();
        p.spawn(async move { y.yield_now().await }).detach();
    }
    let callers: Vec<_> = (0..3)
        .map(|_| {
            let p = p.clone();
            let stopped = stopped.clone();
            std::thread::spawn(move || {
                p.shutdown();
                // Whoever returns first or last, the workers are gone.
                stopped.load(Ordering::SeqCst)
            })
        })
        .collect();
    let seen: Vec<usize> =
        bounded(move || callers.into_iter().map(|c| c.join().unwrap()).collect());
    assert_eq!(seen, [2, 2, 2]);
}

/// A task that spawns a child and blocks its worker on it (`sync_wait`)
/// waits for a task the pool put in that worker's LIFO slot, which no
/// other worker takes: the blocked worker must hand it on first.
#[test]
fn a_worker_blocked_on_the_child_it_spawned_is_helped_by_another() {
    let p = pool(2);
    let p2 = p.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for round in 0..20 {
            let p3 = p2.clone();
            let parent = p2.spawn(async move {
                let child = p3.spawn(async { 7 });
                coro_core::sync_wait(child).unwrap()
            });
            let _ = tx.send((round, futures::executor::block_on(parent).unwrap()));
        }
    });
    for round in 0..20 {
        let got = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("round {round}: the child never ran (hang)"));
        assert_eq!(got, (round, 7));
    }
    drop(p);
}

/// Options no pool can have are errors, not panics: std's thread spawn
/// panicked on a NUL in the name, and a huge count panicked allocating the
/// per-worker state (also through `IoScheduler::new`).
#[test]
fn impossible_options_are_errors_not_panics() {
    let bad = [
        ThreadPoolOptions {
            thread_name: "pool\0x".into(),
            thread_count: 1,
            ..Default::default()
        },
        ThreadPoolOptions {
            thread_count: usize::MAX,
            ..Default::default()
        },
    ];
    for opts in bad {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ThreadPool::try_new(opts.clone()).map(drop)
        }));
        let e = r.expect("a panic").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            coro_io::IoScheduler::new(coro_io::IoSchedulerOptions {
                execution: coro_io::ExecutionStrategy::ThreadPool(opts),
                ..Default::default()
            })
            .map(drop)
        }));
        let e = r.expect("a panic").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
    }
}

/// A task spawns a child (into its worker's own slot), works a while, and
/// then blocks in `sync_wait` on it, while the pool shuts down. The other
/// worker, out of work, used to leave at once: the child, handed over by
/// the blocked worker, had nobody to run it, and `shutdown()` waited for
/// ever to join the blocked worker.
#[test]
fn shutdown_while_a_worker_waits_in_sync_wait_for_the_child_it_spawned() {
    let p = pool(2);
    let p2 = p.clone();
    let (spawned_tx, spawned_rx) = mpsc::channel();
    let parent = p.spawn(async move {
        let child = p2.spawn(async { 7 });
        drop(p2);
        spawned_tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(300)); // work before waiting
        coro_core::sync_wait(child)
    });
    spawned_rx.recv().unwrap();
    let p3 = p.clone();
    bounded(move || p3.shutdown());
    assert_eq!(block_on_bounded(parent).unwrap().unwrap(), 7);
}

/// The same with a child that ran on the other worker, suspended, and is
/// woken after the shutdown began: it lands in the shared queue, which
/// only a worker still there looks at.
#[test]
fn shutdown_while_a_worker_waits_in_sync_wait_for_a_child_woken_later() {
    let p = pool(2);
    let p2 = p.clone();
    let (tx, rx) = futures::channel::oneshot::channel::<u32>();
    let (ran_tx, ran_rx) = mpsc::channel();
    let parent = p.spawn(async move {
        let child = p2.spawn(async move {
            ran_tx.send(()).unwrap();
            rx.await.unwrap()
        });
        drop(p2);
        coro_core::sync_wait(child)
    });
    ran_rx.recv().unwrap(); // the child runs on the other worker
    std::thread::sleep(Duration::from_millis(50)); // ...and suspends
    let p3 = p.clone();
    let shut = std::thread::spawn(move || p3.shutdown());
    std::thread::sleep(Duration::from_millis(100)); // the free worker is idle
    // Refused if the shutdown cancelled the child already: with the free
    // worker asleep and the other blocked, nothing but this send could
    // wake it.
    let _ = tx.send(7);
    bounded(move || shut.join().unwrap());
    let _ = block_on_bounded(parent); // 7, or cancelled: but it resolves
}

/// A worker blocked in `sync_wait` on a child that stays suspended (it
/// waits for something only a shutdown ends) while the pool shuts down:
/// every other worker is idle, and the pool used to wait for the blocked
/// one for ever, since suspended tasks were cancelled only once every
/// worker had left. It cancels them once nobody is left to run anything
/// but the blocked workers: the child is dropped, the parent's wait
/// ends with "cancelled", and the shutdown returns. Also with several
/// workers blocked at once, and with the shutdown begun before they
/// block.
#[test]
fn shutdown_while_workers_wait_in_sync_wait_for_children_that_never_wake() {
    for (threads, blocked, shut_first) in
        [(2, 1, false), (3, 2, false), (4, 3, false), (2, 1, true)]
    {
        let p = pool(threads);
        let (ran_tx, ran_rx) = mpsc::channel();
        let (spawned_tx, spawned_rx) = mpsc::channel();
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let gate_rx = Arc::new(Mutex::new(gate_rx));
        let parents: Vec<_> = (0..blocked)
            .map(|_| {
                let p2 = p.clone();
                let ran = ran_tx.clone();
                let spawned = spawned_tx.clone();
                let gate_rx = gate_rx.clone();
                p.spawn(async move {
                    let child = p2.spawn(async move {
                        ran.send(()).unwrap();
                        std::future::pending::<u32>().await
                    });
                    drop(p2);
                    spawned.send(()).unwrap();
                    // Hold the worker until the test says: the others must
                    // be parked or running children, not this one's child.
                    let _ = gate_rx.lock().unwrap().recv();
                    coro_core::sync_wait(child)
                })
            })
            .collect();
        for _ in 0..blocked {
            spawned_rx.recv_timeout(HANG).expect("a parent never ran");
        }
        let early = shut_first.then(|| shutdown_in_background(&p));
        for _ in 0..blocked {
            gate_tx.send(()).unwrap();
        }
        // Every child ran (and suspended) before its parent blocked or after.
        for _ in 0..blocked {
            ran_rx.recv_timeout(HANG).expect("a child never ran");
        }
        let what = format!("{threads} threads, {blocked} blocked");
        shut_down_expecting_cancelled_waits(&p, early, parents, &what);
    }
}

/// As above with no free worker at all (a pool of one; every worker
/// blocked): nobody parks to take the decision, and nobody is left to
/// drop the woken children. The shutdown itself decides (the workers
/// blocked before it began) or the last worker to block does (after),
/// and the children are dropped on another thread.
#[test]
fn shutdown_when_every_worker_waits_in_sync_wait_for_a_suspended_task() {
    for (threads, shut_first) in [(1, false), (1, true), (2, false), (2, true)] {
        let p = pool(threads);
        let (ran_tx, ran_rx) = mpsc::channel();
        // Children spawned from outside: they run first and suspend for good.
        let children: Vec<_> = (0..threads)
            .map(|_| {
                let ran = ran_tx.clone();
                p.spawn(async move {
                    ran.send(()).unwrap();
                    std::future::pending::<u32>().await
                })
            })
            .collect();
        for _ in 0..threads {
            ran_rx.recv_timeout(HANG).expect("a child never ran");
        }
        std::thread::sleep(Duration::from_millis(50)); // ...and suspended
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let gate_rx = Arc::new(Mutex::new(gate_rx));
        let (in_tx, in_rx) = mpsc::channel();
        let parents: Vec<_> = children
            .into_iter()
            .map(|child| {
                let gate = gate_rx.clone();
                let inside = in_tx.clone();
                p.spawn(async move {
                    inside.send(()).unwrap();
                    let _ = gate.lock().unwrap().recv();
                    coro_core::sync_wait(child)
                })
            })
            .collect();
        // One parent holds each worker (the second waits for the gate's lock).
        for _ in 0..threads {
            in_rx.recv_timeout(HANG).expect("a parent never ran");
        }
        let early = shut_first.then(|| shutdown_in_background(&p));
        for _ in 0..threads {
            gate_tx.send(()).unwrap();
        }
        std::thread::sleep(Duration::from_millis(50)); // every worker in sync_wait
        let what = format!("{threads} threads, shutdown first: {shut_first}");
        shut_down_expecting_cancelled_waits(&p, early, parents, &what);
    }
}

/// A `sync_wait` whose future woke itself before the thread could park
/// (it never blocks) is a running worker, not a waiting one: with the
/// other worker asleep during the shutdown, the pool must not take itself
/// for stuck and cancel a suspended task that this one is about to wake.
#[test]
fn a_sync_wait_that_never_parks_does_not_cancel_the_pool() {
    let p = pool(2);
    let (tx, rx) = futures::channel::oneshot::channel::<u32>();
    let (ran_tx, ran_rx) = mpsc::channel();
    let q = p.spawn(async move {
        ran_tx.send(()).unwrap();
        rx.await.unwrap()
    });
    ran_rx.recv_timeout(HANG).unwrap();
    std::thread::sleep(Duration::from_millis(50)); // Q suspended (registered)
    let (gate_tx, gate_rx) = mpsc::channel::<()>();
    let (in_tx, in_rx) = mpsc::channel();
    let parent = p.spawn(async move {
        in_tx.send(()).unwrap();
        gate_rx.recv().unwrap(); // busy while the shutdown begins
        coro_core::sync_wait(coro_core::yield_now()); // woken before it blocks
        tx.send(5).is_ok()
    });
    in_rx.recv_timeout(HANG).unwrap();
    let p3 = p.clone();
    let shut = std::thread::spawn(move || p3.shutdown());
    std::thread::sleep(Duration::from_millis(50)); // the other worker asleep
    gate_tx.send(()).unwrap();
    bounded(move || shut.join().unwrap());
    assert!(
        block_on_bounded(parent).unwrap(),
        "Q was cancelled before P woke it"
    );
    assert_eq!(block_on_bounded(q).unwrap(), 5);
}

/// A child that completes on the free worker wakes its waiting parent;
/// the free worker then parks during the shutdown before the parent's
/// thread runs again. The parent is not waiting any more: a task it wakes
/// next must run, not be cancelled. Many rounds, since it is a race.
#[test]
fn a_parent_woken_by_its_child_is_not_taken_for_a_waiting_one() {
    for round in 0..200 {
        let p = pool(2);
        let (tx, rx) = futures::channel::oneshot::channel::<u32>();
        let (ran_tx, ran_rx) = mpsc::channel();
        let q = p.spawn(async move {
            ran_tx.send(()).unwrap();
            rx.await.unwrap()
        });
        ran_rx.recv_timeout(HANG).unwrap();
        std::thread::sleep(Duration::from_millis(2)); // Q suspended
        let p2 = p.clone();
        let (shut_tx, shut_rx) = mpsc::channel::<()>();
        let (child_tx, child_rx) = mpsc::channel();
        let parent = p.spawn(async move {
            let child = p2.spawn(async move {
                child_tx.send(()).unwrap();
                // Let the shutdown begin while the parent waits.
                let _ = shut_rx.recv_timeout(HANG);
                7u32
            });
            drop(p2);
            let v = coro_core::sync_wait(child).unwrap();
            tx.send(v).is_ok()
        });
        child_rx.recv_timeout(HANG).expect("the child never ran");
        let p3 = p.clone();
        let shut = std::thread::spawn(move || p3.shutdown());
        std::thread::sleep(Duration::from_micros(200));
        shut_tx.send(()).unwrap();
        bounded(move || shut.join().unwrap());
        assert!(
            block_on_bounded(parent).unwrap(),
            "round {round}: Q was cancelled before the parent woke it"
        );
        assert_eq!(block_on_bounded(q).unwrap(), 7, "round {round}");
    }
}

/// A cancelled task whose future holds the pool's last handle, dropped
/// while a worker waits in `sync_wait` for it: the drop must not join the
/// workers (one of them waits for that very drop), and a destructor
/// calling `shutdown()` likewise.
#[test]
fn a_cancelled_task_holding_the_pools_last_handle_does_not_deadlock() {
    struct StopOnDrop(ThreadPool);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.shutdown();
        }
    }
    for stop_on_drop in [false, true] {
        let p = pool(2);
        let (ran_tx, ran_rx) = mpsc::channel();
        let keep = StopOnDrop(p.clone());
        let child = p.spawn(async move {
            let keep = keep;
            ran_tx.send(()).unwrap();
            std::future::pending::<()>().await;
            drop(keep);
        });
        ran_rx.recv_timeout(HANG).unwrap();
        std::thread::sleep(Duration::from_millis(50)); // suspended (registered)
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let p3 = p.clone();
        let parent = p.spawn(async move {
            gate_rx.recv().unwrap();
            p3.shutdown(); // from a worker: signals only
            drop(p3);
            coro_core::sync_wait(child)
        });
        if stop_on_drop {
            gate_tx.send(()).unwrap();
            let p4 = p.clone();
            bounded(move || p4.shutdown());
        } else {
            drop(p); // only the child's clone is left
            gate_tx.send(()).unwrap();
        }
        let r = block_on_bounded(parent).expect("the parent itself finishes");
        assert!(
            r.unwrap_err().is_cancelled(),
            "stop on drop: {stop_on_drop}"
        );
    }
}

/// The futures a stuck pool cancels are dropped before `shutdown()`
/// returns, as the others are (on the last worker's way out).
#[test]
fn tasks_cancelled_while_a_worker_waits_are_dropped_before_shutdown_returns() {
    struct SlowDrop(Arc<AtomicUsize>);
    impl Drop for SlowDrop {
        fn drop(&mut self) {
            std::thread::sleep(Duration::from_millis(100));
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    // One worker: every task registers on its shard in the order it first
    // suspended, so the child is cancelled (and the parent's wait ended)
    // before the slow ones are dropped.
    let p = pool(1);
    let dropped = Arc::new(AtomicUsize::new(0));
    let (ran_tx, ran_rx) = mpsc::channel();
    let ran = ran_tx.clone();
    let child = p.spawn(async move {
        ran.send(()).unwrap();
        std::future::pending::<()>().await
    });
    ran_rx.recv_timeout(HANG).unwrap();
    for _ in 0..3 {
        let d = SlowDrop(dropped.clone());
        let ran = ran_tx.clone();
        p.spawn(async move {
            let _d = d;
            ran.send(()).unwrap();
            std::future::pending::<()>().await
        })
        .detach();
    }
    for _ in 0..3 {
        ran_rx.recv_timeout(HANG).unwrap();
    }
    let parent = p.spawn(async move { coro_core::sync_wait(child) });
    std::thread::sleep(Duration::from_millis(50)); // the parent waits
    let p2 = p.clone();
    bounded(move || p2.shutdown());
    assert_eq!(dropped.load(Ordering::SeqCst), 3);
    assert!(
        block_on_bounded(parent)
            .unwrap()
            .unwrap_err()
            .is_cancelled()
    );
}

/// The same race from every side: parents blocked in `sync_wait` on
/// children that are woken from outside at about the moment the pool
/// shuts down (before, during, after its decision to cancel them). Each
/// round the shutdown returns, every parent resolves (the child's value,
/// or cancelled) and every child's future is dropped exactly once.
#[test]
fn shutdown_racing_outside_wakes_of_children_that_workers_wait_for() {
    struct Dropped(Arc<AtomicUsize>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let mut seed = 0x2545_f491_u32;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    for round in 0..60 {
        let p = pool(3);
        let drops = Arc::new(AtomicUsize::new(0));
        let (spawned_tx, spawned_rx) = mpsc::channel();
        let mut senders = Vec::new();
        let parents: Vec<_> = (0..2)
            .map(|_| {
                let (tx, rx) = futures::channel::oneshot::channel::<u32>();
                senders.push(tx);
                let p2 = p.clone();
                let spawned = spawned_tx.clone();
                let d = Dropped(drops.clone());
                p.spawn(async move {
                    let child = p2.spawn(async move {
                        let _d = d;
                        rx.await.unwrap_or(0)
                    });
                    drop(p2);
                    spawned.send(()).unwrap();
                    coro_core::sync_wait(child)
                })
            })
            .collect();
        for _ in 0..2 {
            spawned_rx.recv_timeout(HANG).expect("a parent never ran");
        }
        let delays: Vec<u64> = (0..2).map(|_| u64::from(next() % 3000)).collect();
        let shut_delay = u64::from(next() % 3000);
        let waker = std::thread::spawn(move || {
            for (tx, d) in senders.into_iter().zip(delays) {
                std::thread::sleep(Duration::from_micros(d));
                let _ = tx.send(5);
            }
        });
        std::thread::sleep(Duration::from_micros(shut_delay));
        let p3 = p.clone();
        bounded(move || p3.shutdown());
        waker.join().unwrap();
        for parent in parents {
            match block_on_bounded(parent).expect("the parent itself finishes") {
                Ok(v) => assert_eq!(v, 5, "round {round}"),
                Err(e) => assert!(e.is_cancelled(), "round {round}: {e:?}"),
            }
        }
        assert_eq!(drops.load(Ordering::SeqCst), 2, "round {round}");
    }
}

/// The last handle of a pool dropped on one of its workers during that
/// worker's last clean-up (a suspended task held it; the clean-up cancels
/// it): the worker's thread-local is gone by then, and the pool took it
/// for an outside thread and joined it, itself (`EDEADLK`: a panic,
/// printed, and an abort under `panic = "abort"`). Run in a child process
/// with a panic hook that fails on it.
#[test]
fn the_last_handle_dropped_in_a_workers_clean_up_does_not_join_itself() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "last_handle_in_clean_up_child",
            "--nocapture",
        ])
        .env("CORO_POOL_SELF_JOIN_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the child failed ({:?}): {stderr}",
        out.status
    );
    assert!(!stderr.contains("failed to join thread"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("both workers stopped"));
}

#[test]
#[ignore = "run by the_last_handle_dropped_in_a_workers_clean_up_does_not_join_itself"]
fn last_handle_in_clean_up_child() {
    if std::env::var_os("CORO_POOL_SELF_JOIN_CHILD").is_none() {
        return;
    }
    let (stopped_tx, stopped_rx) = mpsc::channel();
    let stopped_tx = Mutex::new(stopped_tx);
    let p = ThreadPool::new(ThreadPoolOptions {
        thread_count: 2,
        on_thread_stop: Some(Arc::new(move |_| {
            let _ = stopped_tx.lock().unwrap().send(());
        })),
        ..Default::default()
    });
    let own = p.clone();
    p.spawn(async move {
        let _own = own;
        std::future::pending::<()>().await
    })
    .detach();
    let (go_tx, go_rx) = futures::channel::oneshot::channel::<()>();
    let p2 = p.clone();
    p.spawn(async move {
        let _ = go_rx.await;
        p2.shutdown(); // from a worker: it only signals
    })
    .detach();
    drop(p);
    go_tx.send(()).unwrap();
    for _ in 0..2 {
        stopped_rx
            .recv_timeout(HANG)
            .expect("a worker did not stop");
    }
    std::thread::sleep(Duration::from_millis(200));
    println!("both workers stopped");
}
