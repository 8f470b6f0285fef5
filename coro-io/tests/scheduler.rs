//! IoScheduler: spawn strategies, manual mode, current(), shutdown, poll().

use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use coro_core::sync_wait;
use coro_io::testing::Config;
use coro_io::{
    ExecutionStrategy, IoScheduler, IoSchedulerOptions, PollOp, PollStatus, ThreadPoolOptions,
    ThreadStrategy, spawn_blocking,
};

/// A manual scheduler on `cfg`'s driver, driven by the test itself.
fn manual(cfg: Config) -> IoScheduler {
    IoScheduler::new(IoSchedulerOptions {
        driver: cfg.kind(),
        uring: cfg.uring(),
        thread_strategy: ThreadStrategy::Manual,
        ..Default::default()
    })
    .unwrap()
}

/// [`manual`], with its clock paused (moved only by `advance`).
fn manual_paused(cfg: Config) -> IoScheduler {
    IoScheduler::new(IoSchedulerOptions {
        driver: cfg.kind(),
        uring: cfg.uring(),
        thread_strategy: ThreadStrategy::Manual,
        start_paused: true,
        ..Default::default()
    })
    .unwrap()
}

fn pooled(cfg: Config) -> IoScheduler {
    pooled_with(cfg, 2)
}

/// Thread-pool execution with `workers` worker threads.
fn pooled_with(cfg: Config, workers: usize) -> IoScheduler {
    IoScheduler::new(IoSchedulerOptions {
        driver: cfg.kind(),
        uring: cfg.uring(),
        execution: ExecutionStrategy::ThreadPool(ThreadPoolOptions {
            thread_count: workers,
            ..Default::default()
        }),
        ..Default::default()
    })
    .unwrap()
}

fn pipe() -> (OwnedFd, OwnedFd) {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::NONBLOCK | rustix::pipe::PipeFlags::CLOEXEC)
        .unwrap()
}

/// Drive a manual scheduler until `done` (bounded).
fn drive_until(s: &IoScheduler, mut done: impl FnMut() -> bool) {
    for _ in 0..100_000 {
        if done() {
            return;
        }
        s.process_events(Some(Duration::from_millis(100)));
    }
    panic!("condition not reached");
}

coro_io::driver_tests!(
    spawn_from_outside_and_inside,
    many_tasks_all_complete,
    shutdown_cancels_pending_tasks_and_timers,
    dropping_last_handle_shuts_down,
    shutdown_cancels_tasks_that_nothing_will_wake,
    metrics_show_waiting_tasks_and_ops,
    poll_pipe_read_write_hangup_timeout,
    a_zero_timeout_poll_answers_for_now,
    blocking_pool_does_not_starve_io,
    panicking_task_is_reported_and_loop_survives,
    ambient_helpers_use_the_current_scheduler,
    timers_that_outlive_their_scheduler_end_instead_of_hanging,
    sync_wait_in_a_blocking_job_is_not_held_back_by_a_spent_budget,
    a_blocking_job_runs_without_a_budget,
    a_timeout_waits_for_its_future_to_have_a_budget,
    a_timeout_fires_over_a_future_that_spends_every_budget,
    a_task_counts_in_size_until_its_future_is_dropped,
    an_aborted_task_is_dropped_with_its_scheduler_current,
    a_blocking_job_runs_with_its_scheduler_current,
    an_aborted_handle_resolves_after_the_future_is_dropped,
    is_finished_on_an_aborted_handle_keeps_its_waiter_awake,
    aborting_a_finished_task_keeps_its_outcome,
    a_task_shutting_down_its_scheduler_is_not_held_by_lingering_tasks,
);

/// A task that starts a lingering task (a dropped stream's flush) and
/// then shuts its scheduler down. On a pool worker, `shutdown()` blocks
/// until the clean-up is done, while the lingering task may be queued
/// behind it (the worker's own slot): the loop waited the whole 5 s for
/// it. On the loop's thread the call returns at once, as before.
fn a_task_shutting_down_its_scheduler_is_not_held_by_lingering_tasks(cfg: Config) {
    let s = cfg.sched();
    let s2 = s.clone();
    let took = sync_wait(s.spawn(async move {
        let s3 = s2.clone();
        assert!(s2.spawn_lingering(async move {
            s3.sleep(Duration::from_millis(10)).await;
        }));
        let t = Instant::now();
        s2.shutdown();
        t.elapsed()
    }));
    if let Ok(took) = took {
        assert!(
            took < Duration::from_secs(2),
            "{cfg}: shutdown took {took:?}"
        );
    }
    let t = Instant::now();
    s.shutdown();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "{cfg}: {:?}",
        t.elapsed()
    );
}

/// `abort` on a task that had already finished does not throw its
/// outcome away (tokio's handle returns it too): the output, or the
/// panic. It used to be dropped, and the handle said "cancelled": a port
/// that aborts every handle of a group on the way out lost results.
fn aborting_a_finished_task_keeps_its_outcome(cfg: Config) {
    let s = cfg.sched();
    let done = s.spawn(async { 6 * 7 });
    let panicked = s.spawn(async {
        panic!("on purpose");
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(done.is_finished() && panicked.is_finished()) {
        assert!(Instant::now() < deadline, "{cfg}: the tasks did not finish");
        std::thread::sleep(Duration::from_millis(1));
    }
    done.abort();
    panicked.abort();
    assert!(done.is_finished(), "{cfg}");
    assert_eq!(sync_wait(done).unwrap(), 42, "{cfg}");
    assert!(sync_wait(panicked).unwrap_err().is_panic(), "{cfg}");
    s.shutdown();
}

/// A task polls an aborted handle and asks `is_finished` before it
/// returns `Pending`: the question must not replace the task's waker (it
/// polled the cancellation with a no-op waker, which async-task keeps as
/// the only one: the task was never woken).
fn is_finished_on_an_aborted_handle_keeps_its_waiter_awake(cfg: Config) {
    struct SlowDrop;
    impl Drop for SlowDrop {
        fn drop(&mut self) {
            std::thread::sleep(Duration::from_millis(30));
        }
    }
    let s = cfg.sched();
    let started = Arc::new(coro_sync::Event::new(false));
    let st = started.clone();
    let victim = s.spawn(async move {
        let _slow = SlowDrop;
        st.set();
        std::future::pending::<()>().await
    });
    sync_wait(started.wait());
    let waiter = s.spawn(async move {
        let mut victim = victim;
        victim.abort();
        std::future::poll_fn(|cx| {
            let r = std::pin::Pin::new(&mut victim).poll(cx);
            if r.is_pending() {
                let _ = victim.is_finished();
            }
            r
        })
        .await
        .unwrap_err()
        .is_cancelled()
    });
    assert!(
        bounded(10, "the waiter of an aborted handle", move || sync_wait(
            waiter
        ))
        .unwrap()
    );
    s.shutdown();
}

/// `abort` then await: the handle resolves once the task's future was
/// dropped, as tokio's does, so what the task held is released by then (a
/// listener's port can be bound again). It used to resolve at once, with
/// the future still alive (on an inline scheduler always: the drop waited
/// for the loop's next turn); `is_finished` said true at once too.
fn an_aborted_handle_resolves_after_the_future_is_dropped(cfg: Config) {
    struct Flag(Arc<AtomicUsize>);
    impl Drop for Flag {
        fn drop(&mut self) {
            std::thread::sleep(Duration::from_millis(20));
            self.0.store(1, Ordering::SeqCst);
        }
    }
    let s = cfg.sched();
    let dropped = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(coro_sync::Event::new(false));
    let (flag, st) = (Flag(dropped.clone()), started.clone());
    let victim = s.spawn(async move {
        let _flag = flag;
        st.set();
        std::future::pending::<()>().await
    });
    sync_wait(started.wait());
    let d = dropped.clone();
    // Aborted and awaited from a task of the same scheduler (on inline
    // execution the future can only be dropped once this task yields).
    let waiter = s.spawn(async move {
        victim.abort();
        let finished_at_once = victim.is_finished();
        let res = victim.await;
        (
            finished_at_once,
            res.unwrap_err().is_cancelled(),
            d.load(Ordering::SeqCst),
        )
    });
    let (at_once, cancelled, seen) =
        bounded(10, "the aborted handle", move || sync_wait(waiter)).unwrap();
    assert!(cancelled, "{cfg}");
    assert_eq!(seen, 1, "{cfg}: resolved before the future was dropped");
    assert!(!at_once, "{cfg}: finished at once, its future still alive");
    s.shutdown();
}

/// A job given to `spawn_blocking` from a task runs with the task's
/// scheduler current, as a tokio blocking task runs in its runtime's
/// context: the ambient helpers work there, and `sync_wait` on them (the
/// port of `Handle::current().block_on(..)`). They panicked ("must be
/// called from a task of an IoScheduler").
fn a_blocking_job_runs_with_its_scheduler_current(cfg: Config) {
    let s = cfg.sched();
    let h = s.spawn(async {
        coro_io::spawn_blocking(|| {
            let kind = IoScheduler::current().map(|s| s.driver_kind());
            let child = coro_io::spawn(async { 6 * 7 });
            sync_wait(coro_io::sleep(Duration::from_millis(1)));
            (kind, sync_wait(child).unwrap())
        })
        .await
        .unwrap()
    });
    assert_eq!(sync_wait(h).unwrap(), (Some(cfg.kind()), 42), "{cfg}");
    // Outside a task there is none, as before.
    let outside = coro_io::spawn_blocking(|| IoScheduler::current().is_none());
    assert!(sync_wait(outside).unwrap());
    s.shutdown();
}

/// A task aborted while it waits is dropped where the executor runs its
/// closed runnable (a pool worker, outside any poll): its destructors must
/// still see their scheduler as current, as in a poll and as tokio's do,
/// so that clean-up that spawns a task runs (it panicked on pool
/// execution, and the panic was swallowed).
fn an_aborted_task_is_dropped_with_its_scheduler_current(cfg: Config) {
    struct Probe(Arc<Mutex<Option<bool>>>, Arc<AtomicUsize>);
    impl Drop for Probe {
        fn drop(&mut self) {
            let cur = IoScheduler::current();
            *self.0.lock().unwrap() = Some(cur.is_some());
            if let Some(s) = cur {
                let ran = self.1.clone();
                s.spawn(async move {
                    ran.fetch_add(1, Ordering::SeqCst);
                })
                .detach();
            }
        }
    }
    let s = cfg.sched();
    let seen = Arc::new(Mutex::new(None));
    let ran = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(coro_sync::Event::new(false));
    let (p, st) = (Probe(seen.clone(), ran.clone()), started.clone());
    let h = s.spawn(async move {
        let _p = p;
        st.set();
        std::future::pending::<()>().await
    });
    sync_wait(started.wait());
    h.abort();
    let (seen2, ran2) = (seen.clone(), ran.clone());
    bounded(10, "the aborted task's clean-up", move || {
        while seen2.lock().unwrap().is_none() || ran2.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    assert_eq!(*seen.lock().unwrap(), Some(true), "{cfg}");
    s.shutdown();
}

/// Tests of one strategy (they build their own scheduler): once per driver.
mod strategies {
    use super::*;
    coro_io::driver_tests!(
        drivers: manual_mode_driven_by_hand,
        manual_mode_timer_wakes_process_events,
        spawn_local_runs_not_send_futures,
        pool_tasks_see_current_and_timers,
        a_pool_task_blocked_on_its_child_does_not_hang,
        io_thread_callbacks_run,
        manual_loop_inside_a_task_keeps_both_run_queues,
        armed_sleep_wakes_the_latest_waker_and_completes,
    a_clock_advanced_to_its_end_fires_finite_sleeps_and_never_spins,
        dropping_the_earliest_timer_keeps_the_next,
        dropping_a_sleep_whose_waker_reads_the_timers_does_not_deadlock,
        a_panicking_start_callback_leaves_the_loop_running,
        a_dying_loop_thread_shuts_the_scheduler_down,
        a_panicking_waker_does_not_lose_the_rest_of_its_batch,
        a_waker_panicking_at_manual_shutdown_leaves_the_clean_up_done,
        a_manual_turn_that_panics_after_a_task_shut_down_still_cleans_up,
        pool_yield_now_lets_the_queued_task_run_first,
        local_tasks_shut_down_from_another_thread_are_leaked_not_fatal,
        a_manual_shutdown_from_another_thread_runs_no_local_task_there,
        a_local_task_run_on_another_thread_fails_not_the_process,
        a_shutdown_from_outside_after_one_from_a_task_joins_the_loop,
        a_destructor_reviving_the_handle_during_a_pool_shutdown_does_not_deadlock,
        a_first_shutdown_on_the_loop_thread_does_not_join_a_worker_that_waits_on_the_loop,
        a_shutdown_from_a_blocking_job_a_task_waits_for_returns,
        process_events_keeps_its_timeout_while_another_thread_drives,
        a_nested_turn_calling_back_into_the_outer_scheduler_does_not_deadlock,
        a_nested_turn_shutting_down_its_spawn_outer_scheduler_twice_returns,
    );
}

/// Two threads drive one `Manual` scheduler: one waits in
/// `process_events(None)` for an event that only comes 1.5 s later; the
/// other's `process_events` with a 10 ms timeout returns within it (it
/// waited for the first one's turn to end, without a bound).
fn process_events_keeps_its_timeout_while_another_thread_drives(cfg: Config) {
    let s = manual(cfg);
    let d = s.clone();
    let driver = std::thread::spawn(move || {
        while !d.is_shutdown() {
            d.process_events(None);
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    let late = s.clone();
    let poke = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        late.spawn(async {}).detach();
    });
    let s2 = s.clone();
    let waited = bounded(10, "process_events with a 10 ms timeout", move || {
        let t0 = Instant::now();
        s2.process_events(Some(Duration::from_millis(10)));
        t0.elapsed()
    });
    assert!(
        waited < Duration::from_millis(1000),
        "{cfg}: waited {waited:?} for the other thread's turn"
    );
    poke.join().unwrap();
    s.shutdown();
    driver.join().unwrap();
}

/// Scheduler A's task drives `Manual` scheduler B (a nested turn); B's
/// task calls back into A: `process_events` returns (A's turn is this
/// thread's already), and `shutdown` is finished by A's turn when it ends
/// (both used to lock the drive lock this thread held: a deadlock).
fn a_nested_turn_calling_back_into_the_outer_scheduler_does_not_deadlock(cfg: Config) {
    let (a, b) = (manual(cfg), manual(cfg));
    let (a2, b2) = (a.clone(), b.clone());
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    b.spawn(async move {
        a2.process_events(Some(Duration::ZERO));
        a2.shutdown();
        r.fetch_add(1, Ordering::SeqCst);
    })
    .detach();
    a.spawn(async move {
        b2.process_events(Some(Duration::ZERO));
    })
    .detach();
    let a3 = a.clone();
    bounded(10, "the outer turn", move || {
        a3.process_events(Some(Duration::ZERO));
    });
    assert_eq!(ran.load(Ordering::SeqCst), 1, "{cfg}: B's task ran");
    assert!(a.is_shutdown(), "{cfg}");
    // A's turn finished the shut-down when it ended: this returns.
    bounded(10, "shutdown after the turn", move || a.shutdown());
    b.shutdown();
}

/// The same with a `Spawn` outer scheduler: B's turn runs in a task on
/// A's loop thread, and B's task shuts A down twice (the second call
/// waited for A's clean-up, which that very thread runs when the turn
/// ends: for ever).
fn a_nested_turn_shutting_down_its_spawn_outer_scheduler_twice_returns(cfg: Config) {
    let a = IoScheduler::new(IoSchedulerOptions {
        driver: cfg.kind(),
        uring: cfg.uring(),
        ..Default::default()
    })
    .unwrap();
    let b = manual(cfg);
    let (a2, b2) = (a.clone(), b.clone());
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    b.spawn(async move {
        a2.shutdown();
        a2.shutdown();
        d.fetch_add(1, Ordering::SeqCst);
    })
    .detach();
    a.spawn(async move {
        b2.process_events(Some(Duration::ZERO));
    })
    .detach();
    let d = done.clone();
    bounded(10, "B's task shutting A down twice", move || {
        while d.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    bounded(10, "A's shutdown from outside", move || a.shutdown());
    b.shutdown();
}

/// Run `f` on another thread; fail (instead of hanging the suite) if it
/// takes longer than `secs`.
fn bounded<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("{what}: still blocked after {secs} s"))
}

/// A foreign executor's waker that panics when woken.
struct Panics;

impl std::task::Wake for Panics {
    fn wake(self: Arc<Self>) {
        panic!("this waker fails");
    }
}

/// Poll `fut` once with a [`Panics`] waker; it must wait (and so keep
/// that waker).
fn wait_with_a_panicking_waker<F: std::future::Future>(fut: std::pin::Pin<&mut F>) {
    let waker = std::task::Waker::from(Arc::new(Panics));
    assert!(
        fut.poll(&mut std::task::Context::from_waker(&waker))
            .is_pending()
    );
}

/// A user's start callback that panics is reported; the loop runs on
/// (as a thread pool's workers do with theirs).
fn a_panicking_start_callback_leaves_the_loop_running(cfg: Config) {
    let s = IoScheduler::new(IoSchedulerOptions {
        driver: cfg.kind(),
        uring: cfg.uring(),
        on_io_thread_start: Some(Arc::new(|| panic!("start callback fails"))),
        ..Default::default()
    })
    .unwrap();
    let h = s.spawn(async { 3 });
    assert_eq!(
        bounded(30, "a task after the callback", move || sync_wait(h)).unwrap(),
        3
    );
    bounded(30, "shutdown, twice, then drop", move || {
        s.shutdown();
        s.shutdown();
        drop(s);
    });
}

/// The event-loop thread unwinds (here: a foreign executor's waker that
/// panics when the loop fires its timer). The scheduler cleans up on the
/// way out: pending tasks are cancelled instead of waiting forever, later
/// spawns too; `shutdown()` joins the thread (its stop callback has run),
/// and a second one (as `drop` after `shutdown()` makes) returns.
fn a_dying_loop_thread_shuts_the_scheduler_down(cfg: Config) {
    let stopped = Arc::new(AtomicUsize::new(0));
    let st = stopped.clone();
    let s = IoScheduler::new(IoSchedulerOptions {
        driver: cfg.kind(),
        uring: cfg.uring(),
        on_io_thread_stop: Some(Arc::new(move || {
            st.fetch_add(1, Ordering::SeqCst);
        })),
        ..Default::default()
    })
    .unwrap();
    let pending = s.spawn(std::future::pending::<()>());
    let mut sleep = Box::pin(s.sleep(Duration::from_millis(200)));
    wait_with_a_panicking_waker(sleep.as_mut());
    let err = bounded(30, "the pending task", move || sync_wait(pending)).unwrap_err();
    assert!(err.is_cancelled());
    // Shut down as far as everyone can tell (a stream dropped during the
    // clean-up must not start a task to finish its send: nothing runs it).
    assert!(
        s.is_shutdown(),
        "{cfg}: the loop died, the scheduler is down"
    );
    let late = s.spawn(async { 1 });
    let err = bounded(30, "a task spawned after", move || sync_wait(late)).unwrap_err();
    assert!(err.is_cancelled());
    bounded(30, "shutdown, twice, then drop", move || {
        s.shutdown();
        assert_eq!(
            stopped.load(Ordering::SeqCst),
            1,
            "shutdown joined the thread"
        );
        s.shutdown();
        drop(s);
    });
    drop(sleep);
}

/// Two sleeps fire in one batch; the first one's waker (a foreign
/// executor's) panics. The second's waiter is still woken: the loop wakes
/// the rest of the batch before it unwinds (they were taken out of the
/// timers, so the clean-up would not find them again).
fn a_panicking_waker_does_not_lose_the_rest_of_its_batch(cfg: Config) {
    let s = IoScheduler::new(IoSchedulerOptions {
        driver: cfg.kind(),
        uring: cfg.uring(),
        ..Default::default()
    })
    .unwrap();
    let at = std::time::Instant::now() + Duration::from_millis(300);
    let mut first = Box::pin(s.sleep_until(at));
    wait_with_a_panicking_waker(first.as_mut());
    let second = s.sleep_until(at);
    bounded(30, "the sleep after the panicking waker", move || {
        sync_wait(second)
    });
    bounded(30, "shutdown, then drop", move || {
        s.shutdown();
        drop(s);
    });
    drop(first);
}

/// A `Manual` scheduler with a suspended local task is shut down from
/// another thread (its last handle moved there). The task cannot be
/// dropped there (its `Rc` belongs to this thread): it is leaked, its
/// handle reports it cancelled, and the process goes on (async-task's
/// own check aborted it).
fn local_tasks_shut_down_from_another_thread_are_leaked_not_fatal(cfg: Config) {
    let s = manual(cfg);
    let rc = Rc::new(1);
    let held = rc.clone();
    let h = s.spawn_local(async move {
        std::future::pending::<()>().await;
        drop(held);
    });
    s.process_events(Some(Duration::ZERO));
    assert!(!h.is_finished());
    bounded(30, "shutdown from another thread", move || {
        s.shutdown();
        drop(s);
    });
    let e = bounded(30, "the local task's handle", move || sync_wait(h)).unwrap_err();
    assert!(e.is_cancelled());
    // Leaked, not dropped: the clone it held is still counted.
    assert_eq!(Rc::strong_count(&rc), 2);
}

/// The same with a lingering task: the shutdown from another thread does
/// not run the scheduler on for it there, where it would run the local
/// task too (which then failed its thread check: a panic, where the
/// clean-up reports it cancelled).
fn a_manual_shutdown_from_another_thread_runs_no_local_task_there(cfg: Config) {
    let s = manual(cfg);
    let s2 = s.clone();
    let h = s.spawn_local(async move {
        s2.sleep(Duration::from_millis(20)).await;
        std::future::pending::<()>().await;
    });
    let s3 = s.clone();
    assert!(s.spawn_lingering(async move {
        s3.sleep(Duration::from_millis(200)).await;
    }));
    s.process_events(Some(Duration::ZERO));
    assert!(!h.is_finished());
    bounded(30, "shutdown from another thread", move || {
        s.shutdown();
        drop(s);
    });
    let e = bounded(30, "the local task's handle", move || sync_wait(h)).unwrap_err();
    assert!(e.is_cancelled(), "{cfg}: {e}");
}

/// A local task driven by a thread other than its own (a `Manual`
/// scheduler driven from elsewhere): the task fails with a panic its
/// handle reports, and the process goes on.
fn a_local_task_run_on_another_thread_fails_not_the_process(cfg: Config) {
    let s = manual(cfg);
    let rc = Rc::new(1);
    let h = s.spawn_local(async move { *rc });
    let s2 = s.clone();
    bounded(30, "a turn on another thread", move || {
        s2.process_events(Some(Duration::ZERO));
    });
    let e = bounded(30, "the local task's handle", move || sync_wait(h)).unwrap_err();
    assert!(e.is_panic());
    s.shutdown();
}

/// `yield_now` under thread-pool execution puts the task behind the
/// worker's queued tasks: with one worker, a task spawned just before the
/// yield runs before the yielding task resumes.
fn pool_yield_now_lets_the_queued_task_run_first(cfg: Config) {
    let s = pooled_with(cfg, 1);
    let s2 = s.clone();
    let h = s.spawn(async move {
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let other = s2.spawn(async move {
            r.store(1, Ordering::SeqCst);
        });
        s2.yield_now().await;
        let seen = ran.load(Ordering::SeqCst);
        other.await.unwrap();
        seen
    });
    assert_eq!(
        bounded(30, "the yielding task", move || sync_wait(h)).unwrap(),
        1,
        "the yielding task resumed before the task queued behind it ran"
    );
    s.shutdown();
}

/// A waker that counts its wakes.
fn counting_waker() -> (std::task::Waker, Arc<AtomicUsize>) {
    struct W(Arc<AtomicUsize>);
    impl std::task::Wake for W {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let n = Arc::new(AtomicUsize::new(0));
    (Arc::new(W(n.clone())).into(), n)
}

/// An `Inline` loop's tasks woken on its own thread wait in a queue of
/// that thread. A task that drives a `Manual` scheduler from inside it
/// (a nested turn on the same thread) must neither run the outer loop's
/// queued tasks in the inner turn (they would see the wrong scheduler as
/// `current()`) nor lose them.
fn manual_loop_inside_a_task_keeps_both_run_queues(cfg: Config) {
    let outer = IoScheduler::new(IoSchedulerOptions {
        driver: cfg.kind(),
        uring: cfg.uring(),
        ..Default::default()
    })
    .unwrap();
    let on = |s: &IoScheduler| {
        let cur = IoScheduler::current().expect("current scheduler");
        std::ptr::eq(cur.driver(), s.driver())
    };
    let o = outer.clone();
    // Re-queues itself on the outer loop's thread 200 times.
    let spinner = outer.spawn(async move {
        for _ in 0..200 {
            o.yield_now().await;
            assert!(on(&o), "an outer task ran in the inner scheduler's turn");
        }
    });
    let o = outer.clone();
    let driver = outer.spawn(async move {
        let inner = manual(cfg);
        let i = inner.clone();
        let h = inner.spawn(async move {
            for _ in 0..100 {
                i.yield_now().await;
                assert!(on(&i), "an inner task ran in the outer loop");
            }
        });
        while !h.is_finished() {
            inner.process_events(Some(Duration::ZERO));
            o.yield_now().await;
        }
        h.await.unwrap();
        inner.shutdown();
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = (sync_wait(spinner), sync_wait(driver));
        let _ = tx.send((r.0.is_ok(), r.1.is_ok()));
    });
    let r = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("tasks hung");
    assert_eq!(r, (true, true));
    outer.shutdown();
}

/// An armed sleep polled again with the same waker returns `Pending`
/// without looking at the queue; the checks that this skips must still
/// hold: a new waker replaces the old one, and a fired timer completes.
fn armed_sleep_wakes_the_latest_waker_and_completes(cfg: Config) {
    use std::future::Future;
    use std::task::{Context, Poll};
    let s = manual_paused(cfg);
    let (w1, n1) = counting_waker();
    let (w2, n2) = counting_waker();
    let mut sleep = Box::pin(s.sleep(Duration::from_millis(10)));
    let poll = |sl: &mut std::pin::Pin<Box<coro_io::time::Sleep>>, w: &std::task::Waker| {
        sl.as_mut().poll(&mut Context::from_waker(w))
    };
    assert!(poll(&mut sleep, &w1).is_pending());
    assert!(poll(&mut sleep, &w1).is_pending());
    assert_eq!(s.timer_count(), 1);
    // Moved to another waker: that one is woken, the first is not.
    assert!(poll(&mut sleep, &w2).is_pending());
    assert_eq!(s.timer_count(), 1);
    s.advance(Duration::from_millis(5));
    assert!(poll(&mut sleep, &w2).is_pending());
    assert_eq!(n2.load(Ordering::SeqCst), 0);
    s.advance(Duration::from_millis(5));
    assert_eq!(
        (n1.load(Ordering::SeqCst), n2.load(Ordering::SeqCst)),
        (0, 1)
    );
    assert_eq!(poll(&mut sleep, &w2), Poll::Ready(()));
    // Fired while armed with the same waker: the next poll completes.
    let mut sleep = Box::pin(s.sleep(Duration::from_millis(10)));
    assert!(poll(&mut sleep, &w1).is_pending());
    s.advance(Duration::from_millis(10));
    assert_eq!(n1.load(Ordering::SeqCst), 1);
    assert_eq!(poll(&mut sleep, &w1), Poll::Ready(()));
    assert_eq!(s.timer_count(), 0);
}

/// `advance(Duration::MAX)` takes a paused clock to its end: a sleep of
/// `Duration::MAX` (never) must still never come due, rather than fire,
/// find itself not due and re-arm on every turn; a finite sleep made
/// after it is past due at once, rather than never.
fn a_clock_advanced_to_its_end_fires_finite_sleeps_and_never_spins(cfg: Config) {
    use std::future::Future;
    use std::task::{Context, Poll};
    let s = manual_paused(cfg);
    let (w, n) = counting_waker();
    let poll = |sl: &mut std::pin::Pin<Box<coro_io::time::Sleep>>| {
        sl.as_mut().poll(&mut Context::from_waker(&w))
    };
    let mut never = Box::pin(s.sleep(Duration::MAX));
    assert!(poll(&mut never).is_pending());
    let mut iv = s.interval(Duration::from_millis(1));
    let tick = |iv: &mut coro_io::time::Interval| iv.poll_tick(&mut Context::from_waker(&w));
    assert!(
        tick(&mut iv).is_ready(),
        "{cfg}: the first tick comes at once"
    );
    s.advance(Duration::MAX);
    for _ in 0..10 {
        s.process_events(Some(Duration::ZERO));
        // As an executor would, after a wake-up.
        assert!(poll(&mut never).is_pending());
    }
    assert!(
        n.load(Ordering::SeqCst) <= 1,
        "{cfg}: the endless sleep was woken {} times",
        n.load(Ordering::SeqCst)
    );
    let mut short = Box::pin(s.sleep(Duration::from_millis(1)));
    assert_eq!(poll(&mut short), Poll::Ready(()), "{cfg}");
    // An interval's ticks and a sleep until an instant come there too
    // (they waited for ever: their deadline landed on `NEVER`).
    assert!(
        tick(&mut iv).is_ready(),
        "{cfg}: the tick due at the advance"
    );
    s.process_events(Some(Duration::ZERO));
    assert!(tick(&mut iv).is_ready(), "{cfg}: the next tick");
    for d in [1, 2, 1_000_000_000] {
        // `now() + d` is past the clock's count (but an `Instant` holds it).
        let mut until = Box::pin(s.sleep_until(s.now() + Duration::from_nanos(d)));
        assert_eq!(poll(&mut until), Poll::Ready(()), "{cfg}: now + {d} ns");
    }
}

/// The loop reads the earliest deadline without the timer lock; removing
/// the earliest timer must leave the next one in its place, or a loop
/// waiting without a timeout would sleep through it.
fn dropping_the_earliest_timer_keeps_the_next(cfg: Config) {
    let s = manual(cfg);
    let s2 = s.clone();
    let h = s.spawn(async move {
        let mut early = Box::pin(s2.sleep(Duration::from_millis(1)));
        let late = s2.sleep(Duration::from_millis(30));
        // Arm both, then drop the earlier one.
        std::future::poll_fn(|cx| {
            let _ = early.as_mut().poll(cx);
            std::task::Poll::Ready(())
        })
        .await;
        let mut late = std::pin::pin!(late);
        std::future::poll_fn(|cx| {
            let _ = late.as_mut().poll(cx);
            std::task::Poll::Ready(())
        })
        .await;
        drop(early);
        late.await;
    });
    let (tx, rx) = mpsc::channel();
    let s3 = s.clone();
    std::thread::spawn(move || {
        // No timeout: only the late timer can end these waits.
        while !h.is_finished() {
            s3.process_events(None);
        }
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the loop slept through the remaining timer");
    s.shutdown();
}

/// A foreign waker whose drop asks the scheduler for its timer count (a
/// waker that owns its task does as much when the task's future holds
/// another sleep of the scheduler: dropping it removes that timer).
struct ReadsTimersOnDrop(IoScheduler);

impl std::task::Wake for ReadsTimersOnDrop {
    fn wake(self: Arc<Self>) {}
}

impl Drop for ReadsTimersOnDrop {
    fn drop(&mut self) {
        let _ = self.0.timer_count();
    }
}

/// Dropping an armed sleep whose timer held the last clone of its waker
/// drops that waker after the timers' lock, not under it: a waker whose
/// drop takes the lock again must not deadlock the thread.
fn dropping_a_sleep_whose_waker_reads_the_timers_does_not_deadlock(cfg: Config) {
    use std::future::Future;
    let s = manual_paused(cfg);
    let s2 = s.clone();
    bounded(10, "dropping the sleep", move || {
        let waker = std::task::Waker::from(Arc::new(ReadsTimersOnDrop(s2.clone())));
        let mut sleep = Box::pin(s2.sleep(Duration::from_secs(3600)));
        assert!(
            sleep
                .as_mut()
                .poll(&mut std::task::Context::from_waker(&waker))
                .is_pending()
        );
        assert_eq!(s2.timer_count(), 1);
        // The sleep and the timers keep the other clones: the timers' is
        // the last one the sleep's drop lets go of.
        drop(waker);
        drop(sleep);
        assert_eq!(s2.timer_count(), 0);
    });
    s.shutdown();
}

fn spawn_from_outside_and_inside(cfg: Config) {
    {
        let s = cfg.sched();
        let h = s.spawn(async {
            let me = IoScheduler::current().expect("current() inside a task");
            let inner = me.spawn(async { 20 });
            inner.await.unwrap() + 1
        });
        assert_eq!(sync_wait(h).unwrap(), 21);
        s.shutdown();
    }
}

fn many_tasks_all_complete(cfg: Config) {
    {
        let s = cfg.sched();
        let n = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..10_000)
            .map(|_| {
                let n = n.clone();
                s.spawn(async move {
                    n.fetch_add(1, Ordering::Relaxed);
                })
            })
            .collect();
        for h in hs {
            sync_wait(h).unwrap();
        }
        assert_eq!(n.load(Ordering::Relaxed), 10_000);
        s.shutdown();
    }
}

fn manual_mode_driven_by_hand(cfg: Config) {
    let s = manual(cfg);
    let log = Arc::new(Mutex::new(Vec::new()));
    let (l1, l2) = (log.clone(), log.clone());
    let s2 = s.clone();
    let a = s.spawn(async move {
        l1.lock().unwrap().push("a1");
        s2.yield_now().await;
        l1.lock().unwrap().push("a2");
    });
    let b = s.spawn(async move {
        l2.lock().unwrap().push("b1");
    });
    // Nothing runs until the scheduler is driven.
    assert!(log.lock().unwrap().is_empty());
    assert_eq!(s.size(), 2);
    let ran = s.process_events(Some(Duration::ZERO));
    assert!(ran >= 2, "ran {ran}");
    drive_until(&s, || a.is_finished() && b.is_finished());
    assert_eq!(*log.lock().unwrap(), ["a1", "b1", "a2"]);
    assert_eq!(s.size(), 0);
    // Idle: nothing to run.
    assert_eq!(s.process_events(Some(Duration::ZERO)), 0);
}

fn manual_mode_timer_wakes_process_events(cfg: Config) {
    let s = manual(cfg);
    let s2 = s.clone();
    // Long enough that the turn below cannot fire it too: a 2 ms timer
    // was due again by the turn's own clock read on a loaded CI machine.
    let h = s.spawn(async move { s2.sleep(Duration::from_millis(300)).await });
    s.process_events(Some(Duration::ZERO)); // runs the task: it arms the timer
    assert_eq!(s.timer_count(), 1);
    // A long timeout: the timer, not the timeout, ends the wait.
    let start = std::time::Instant::now();
    drive_until(&s, || h.is_finished());
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(s.timer_count(), 0);
}

fn spawn_local_runs_not_send_futures(cfg: Config) {
    let s = manual(cfg);
    let rc = Rc::new(41);
    let h = s.spawn_local(async move { *rc + 1 });
    drive_until(&s, || h.is_finished());
    assert_eq!(sync_wait(h).unwrap(), 42);
}

#[test]
#[should_panic(expected = "ExecutionStrategy::Inline")]
fn spawn_local_on_pool_panics() {
    let s = pooled(Config::EPOLL);
    drop(s.spawn_local(async {}));
}

#[test]
fn current_is_none_outside() {
    assert!(IoScheduler::current().is_none());
}

fn pool_tasks_see_current_and_timers(cfg: Config) {
    let s = pooled(cfg);
    let h = s.spawn(async {
        let me = IoScheduler::current().unwrap();
        me.sleep(Duration::from_millis(1)).await;
        std::thread::current().name().map(str::to_owned)
    });
    let name = sync_wait(h).unwrap().unwrap();
    assert!(name.starts_with("coro-pool"), "{name}");
}

/// A pool task that spawns a child and blocks its worker on it: the child
/// was put where only the blocked worker would run it, and must reach the
/// other worker.
fn a_pool_task_blocked_on_its_child_does_not_hang(cfg: Config) {
    let s = pooled(cfg);
    for round in 0..10 {
        let s2 = s.clone();
        let parent = s.spawn(async move {
            let child = s2.spawn(async {
                coro_io::sleep(Duration::from_millis(1)).await;
                7
            });
            sync_wait(child).unwrap()
        });
        let got = bounded(10, &format!("round {round}: the parent"), move || {
            sync_wait(parent)
        });
        assert_eq!(got.unwrap(), 7);
    }
    s.shutdown();
}

fn shutdown_cancels_pending_tasks_and_timers(cfg: Config) {
    {
        let s = cfg.sched();
        let s2 = s.clone();
        let dropped = Arc::new(AtomicUsize::new(0));
        struct D(Arc<AtomicUsize>);
        impl Drop for D {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let d = D(dropped.clone());
        let (tx, rx) = mpsc::channel();
        let h = s.spawn(async move {
            let _d = d;
            tx.send(()).unwrap();
            s2.sleep(Duration::MAX).await;
        });
        if s.is_shutdown() {
            unreachable!()
        }
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        s.shutdown();
        let err = sync_wait(h).unwrap_err();
        assert!(err.is_cancelled());
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
        assert_eq!(s.timer_count(), 0);
        // Spawning after shutdown: refused with a cancelled JoinError.
        assert!(sync_wait(s.spawn(async { 1 })).unwrap_err().is_cancelled());
    }
}

/// Sleeps hold the scheduler's timers, not the scheduler: once its last
/// handle is gone, a sleep, a timeout and an interval polled from another
/// thread (armed before, or first polled after) complete instead of
/// waiting for a loop that no longer runs, and a waker they registered is
/// woken by the shutdown.
fn timers_that_outlive_their_scheduler_end_instead_of_hanging(cfg: Config) {
    let s = cfg.sched();
    let mut armed = s.sleep(Duration::from_secs(3600));
    let fresh = s.sleep(Duration::from_secs(3600));
    let timeout = s.timeout(Duration::from_secs(3600), std::future::pending::<()>());
    let mut interval = s.interval(Duration::from_secs(3600));
    // The first tick is at once; the second is an hour away.
    sync_wait(interval.tick());
    let (waker, woken) = counting_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(std::pin::Pin::new(&mut armed).poll(&mut cx).is_pending());
    drop(s);
    assert_eq!(
        woken.load(Ordering::SeqCst),
        1,
        "shutdown woke the armed sleep"
    );
    let t = std::thread::spawn(move || {
        sync_wait(armed);
        sync_wait(fresh);
        assert!(sync_wait(timeout).is_err(), "the timeout reports Elapsed");
        sync_wait(interval.tick());
        // Only that one: later ticks would complete at once (a loop over
        // them spun); the stream ends.
        let (waker, _) = counting_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        for _ in 0..3 {
            assert!(
                interval.poll_tick(&mut cx).is_pending(),
                "a tick after the last"
            );
        }
        let next = futures::StreamExt::poll_next_unpin(&mut interval, &mut cx);
        assert!(
            matches!(next, std::task::Poll::Ready(None)),
            "the stream ends"
        );
    });
    // A hang here is the bug: bound it.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !t.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "a timer of a dropped scheduler never completed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    t.join().unwrap();
}

fn dropping_last_handle_shuts_down(cfg: Config) {
    let s = cfg.sched();
    let h = s.spawn(std::future::pending::<()>());
    drop(s);
    assert!(sync_wait(h).unwrap_err().is_cancelled());
}

fn shutdown_cancels_tasks_that_nothing_will_wake(cfg: Config) {
    // A task that already ran and now waits on something that holds no
    // waker (`pending()`), on every execution strategy: shutdown must still
    // cancel it, or its JoinHandle waits forever.
    {
        let s = cfg.sched();
        let (tx, rx) = mpsc::channel();
        // Says "suspended" from inside its poll, then returns Pending and
        // keeps no waker.
        let h = s.spawn(std::future::poll_fn(move |_cx| {
            let _ = tx.send(());
            std::task::Poll::<()>::Pending
        }));
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        s.shutdown();
        assert!(sync_wait(h).unwrap_err().is_cancelled());
        assert_eq!(s.size(), 0);
    }
}

/// `poll` with a zero timeout asks "ready now?", and both drivers answer
/// alike: on io_uring the poll was submitted and the zero timer, due at
/// once, won (`Timeout` for a ready fd).
fn a_zero_timeout_poll_answers_for_now(cfg: Config) {
    let s = cfg.sched();
    let s2 = s.clone();
    sync_wait(s.spawn(async move {
        let zero = Some(Duration::ZERO);
        let (r, w) = pipe();
        assert_eq!(s2.poll(&r, PollOp::Read, zero).await, PollStatus::Timeout);
        assert_eq!(s2.poll(&w, PollOp::Write, zero).await, PollStatus::Event);
        rustix::io::write(&w, b"x").unwrap();
        assert_eq!(s2.poll(&r, PollOp::Read, zero).await, PollStatus::Event);
        assert_eq!(
            s2.poll(&r, PollOp::ReadWrite, zero).await,
            PollStatus::Event
        );
        let mut b = [0u8; 1];
        rustix::io::read(&r, &mut b).unwrap();
        drop(w);
        assert_eq!(s2.poll(&r, PollOp::Read, zero).await, PollStatus::Closed);
        assert_eq!(s2.driver().registered_fds(), 0);
    }))
    .unwrap();
    s.shutdown();
}

fn poll_pipe_read_write_hangup_timeout(cfg: Config) {
    let s = cfg.sched();
    let s2 = s.clone();
    let h = s.spawn(async move {
        let (r, w) = pipe();
        // Empty pipe: read times out; write is ready at once.
        assert_eq!(
            s2.poll(&r, PollOp::Read, Some(Duration::from_millis(5)))
                .await,
            PollStatus::Timeout
        );
        assert_eq!(s2.poll(&w, PollOp::Write, None).await, PollStatus::Event);
        rustix::io::write(&w, b"x").unwrap();
        assert_eq!(
            s2.poll(&r, PollOp::Read, Some(Duration::from_secs(5)))
                .await,
            PollStatus::Event
        );
        let mut b = [0u8; 1];
        rustix::io::read(&r, &mut b).unwrap();
        // Hang-up while waiting.
        let s3 = s2.clone();
        let rr = r.as_raw_fd();
        let waiter = s2.spawn(async move {
            // SAFETY: `r` outlives this task: it is awaited below before `r` drops.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(rr) };
            s3.poll(fd, PollOp::Read, Some(Duration::from_secs(10)))
                .await
        });
        s2.yield_now().await;
        drop(w);
        let st = waiter.await.unwrap();
        assert_eq!(st, PollStatus::Closed);
        // poll() leaves no registration behind (epoll; io_uring keeps none).
        assert_eq!(s2.driver().registered_fds(), 0);
        // The first poll lost its race with the 5 ms timeout and was dropped:
        // on io_uring its entry stays in flight until the kernel posts the
        // cancellation, which the loop thread may reap after this task (on a
        // pool worker) gets here. Nothing may stay in flight for good.
        let mut waited = 0;
        while s2.driver().in_flight() != 0 && waited < 2000 {
            s2.sleep(Duration::from_millis(1)).await;
            waited += 1;
        }
        assert_eq!(s2.driver().in_flight(), 0);
        drop(r);
    });
    sync_wait(h).unwrap();
}

fn blocking_pool_does_not_starve_io(cfg: Config) {
    let s = cfg.sched();
    // Occupy blocking threads until the I/O round-trip is done.
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Arc::new(Mutex::new(release_rx));
    let blockers: Vec<_> = (0..8)
        .map(|_| {
            let rx = release_rx.clone();
            spawn_blocking(move || {
                let _ = rx.lock().unwrap().recv();
            })
        })
        .collect();
    let s2 = s.clone();
    let h = s.spawn(async move {
        let (r, w) = pipe();
        let d = s2.driver().clone();
        let reader = s2.spawn({
            let d = d.clone();
            async move {
                let (res, buf) = coro_io::op::read(&d, r.as_raw_fd(), Vec::with_capacity(4)).await;
                (res.unwrap(), buf, r)
            }
        });
        s2.sleep(Duration::from_millis(1)).await;
        let (res, _) = coro_io::op::write(&d, w.as_raw_fd(), b"ok".as_slice()).await;
        res.unwrap();
        let (n, buf, _r) = reader.await.unwrap();
        (n, buf)
    });
    let (n, buf) = sync_wait(h).unwrap();
    assert_eq!((n, &buf[..]), (2, &b"ok"[..]));
    for _ in 0..8 {
        release_tx.send(()).unwrap();
    }
    for b in blockers {
        sync_wait(b).unwrap();
    }
}

fn panicking_task_is_reported_and_loop_survives(cfg: Config) {
    let s = cfg.sched();
    let h = s.spawn(async { panic!("boom") });
    let err = sync_wait(h).unwrap_err();
    assert!(err.is_panic());
    assert_eq!(sync_wait(s.spawn(async { 5 })).unwrap(), 5);
}

fn io_thread_callbacks_run(cfg: Config) {
    let started = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicUsize::new(0));
    let local_ran = Arc::new(AtomicUsize::new(0));
    let (a, b, l) = (started.clone(), stopped.clone(), local_ran.clone());
    let s = IoScheduler::new(IoSchedulerOptions {
        driver: cfg.kind(),
        uring: cfg.uring(),
        // On the loop's thread: `current()` is this scheduler, and a
        // `!Send` task may be spawned there.
        on_io_thread_start: Some(Arc::new(move || {
            a.fetch_add(1, Ordering::SeqCst);
            let cur = IoScheduler::current().expect("the start callback runs on the loop");
            let (rc, l) = (Rc::new(1), l.clone());
            drop(cur.spawn_local(async move {
                l.fetch_add(*rc, Ordering::SeqCst);
            }));
        })),
        on_io_thread_stop: Some(Arc::new(move || {
            b.fetch_add(1, Ordering::SeqCst);
        })),
        ..Default::default()
    })
    .unwrap();
    sync_wait(s.spawn(async {})).unwrap();
    assert_eq!(started.load(Ordering::SeqCst), 1);
    for _ in 0..1000 {
        if local_ran.load(Ordering::SeqCst) == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(local_ran.load(Ordering::SeqCst), 1);
    s.shutdown();
    assert_eq!(stopped.load(Ordering::SeqCst), 1);
}

fn metrics_show_waiting_tasks_and_ops(cfg: Config) {
    let s = cfg.sched();
    let (r, w) = pipe();
    let d = s.driver().clone();
    let rr = r.as_raw_fd();
    let (tx, rx) = mpsc::channel();
    let h = s.spawn(async move {
        let _ = tx.send(());
        let (res, _) = coro_io::op::read(&d, rr, Vec::with_capacity(4)).await;
        res.unwrap()
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    // Wait (bounded) until the read is waiting on the driver.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m = s.metrics();
        // The op counts as waiting inside the task's poll; the task as
        // suspended once that poll returned.
        if !m.pending_ops.is_empty() && m.suspended_tasks == 1 {
            break m;
        }
        assert!(std::time::Instant::now() < deadline, "{m:?}");
        std::thread::yield_now();
    };
    assert_eq!(m.driver, cfg.kind());
    assert_eq!(m.live_tasks, 1);
    assert_eq!(m.suspended_tasks, 1);
    assert_eq!(m.pending_ops, vec![(coro_io::op::OpKind::Recv, 1)]);
    assert!(m.ops_in_flight <= 1);
    rustix::io::write(&w, b"go").unwrap();
    assert_eq!(sync_wait(h).unwrap(), 2);
    let m = s.metrics();
    assert_eq!(
        (m.live_tasks, m.suspended_tasks, m.timers),
        (0, 0, 0),
        "{m:?}"
    );
    assert!(m.pending_ops.is_empty(), "{m:?}");
    assert_eq!(m.ops_in_flight, 0);
    drop(r);
}

/// `coro_io::{spawn, sleep, sleep_until, timeout}` act on the scheduler of
/// the task that calls them, on every configuration (pool workers too).
fn ambient_helpers_use_the_current_scheduler(cfg: Config) {
    let s = cfg.sched();
    let h = s.spawn(async {
        let child = coro_io::spawn(async { IoScheduler::current().map(|s| s.driver_kind()) });
        let t = std::time::Instant::now();
        coro_io::sleep(Duration::from_millis(2)).await;
        coro_io::sleep_until(t + Duration::from_millis(3)).await;
        assert!(t.elapsed() >= Duration::from_millis(3));
        let late = coro_io::timeout(Duration::from_millis(1), std::future::pending::<()>()).await;
        assert!(late.is_err());
        let early = coro_io::timeout(Duration::from_secs(5), async { 7 }).await;
        assert_eq!(early.unwrap(), 7);
        child.await.unwrap()
    });
    assert_eq!(sync_wait(h).unwrap(), Some(cfg.kind()));
    s.shutdown();
}

#[test]
#[should_panic(expected = "coro::spawn must be called from a task of an IoScheduler")]
fn ambient_spawn_outside_a_scheduler_panics_clearly() {
    drop(coro_io::spawn(async {}));
}

#[test]
#[should_panic(expected = "coro::sleep must be called from a task of an IoScheduler")]
fn ambient_sleep_outside_a_scheduler_panics_clearly() {
    drop(coro_io::sleep(Duration::from_millis(1)));
}

/// `sync_wait` with the budget of a task poll spent (as a task that did
/// 128 ops and then blocks has), waiting on an op: the op runs. With the
/// budget still spent it would yield forever, and `sync_wait` would poll
/// it again at once, spinning. (In a blocking job, where the op can
/// complete while the job blocks; the job itself has no budget, see
/// below, so the test gives it one.)
fn sync_wait_in_a_blocking_job_is_not_held_back_by_a_spent_budget(cfg: Config) {
    use coro_io::coop;
    let s = cfg.sched();
    let s2 = s.clone();
    let job = spawn_blocking(move || {
        coop::budgeted(|| {
            for _ in 0..coop::BUDGET {
                coop::consume();
            }
            assert_eq!(coop::remaining(), Some(0));
            let (r, w) = pipe();
            rustix::io::write(&w, b"x").unwrap();
            sync_wait(s2.poll(&r, PollOp::Read, Some(Duration::from_secs(20))))
        })
    });
    let got = bounded(30, "sync_wait inside the job", move || sync_wait(job));
    assert_eq!(got.unwrap(), PollStatus::Event);
    s.shutdown();
}

/// A blocking job has no budget: it runs to its end on its own thread, and
/// another executor's `block_on` in it (on coro-sync's primitives, coro's
/// ops) must not find a budget spent after 128 ops, which never comes back
/// (it would spin: each poll yields and wakes, `block_on` polls again).
fn a_blocking_job_runs_without_a_budget(cfg: Config) {
    use coro_io::coop;
    let s = cfg.sched();
    let job = spawn_blocking(|| {
        let before = coop::remaining();
        for _ in 0..2 * usize::from(coop::BUDGET) {
            futures::executor::block_on(coop::consume_budget());
        }
        before
    });
    let got = bounded(30, "the blocking job", move || sync_wait(job));
    assert_eq!(got.unwrap(), None);
    s.shutdown();
}

/// A timeout whose future yielded for the task's spent budget (without
/// trying) does not report the deadline passed: it waits for the next
/// poll, with a fresh budget, where the future completes.
fn a_timeout_waits_for_its_future_to_have_a_budget(cfg: Config) {
    use coro_io::coop;
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let s = cfg.sched();
    // Ready at once, if the budget lets it try (as an op with its result
    // there does).
    let ready = std::future::poll_fn(|cx| {
        std::task::ready!(coop::poll_proceed(cx));
        coop::consume();
        Poll::Ready(7)
    });
    let mut t = Box::pin(s.timeout(Duration::ZERO, ready));
    let mut cx = Context::from_waker(Waker::noop());
    let spent = coop::budgeted(|| {
        for _ in 0..coop::BUDGET {
            coop::consume();
        }
        t.as_mut().poll(&mut cx)
    });
    assert!(
        spent.is_pending(),
        "the deadline beat a future that could not try"
    );
    let fresh = coop::budgeted(|| t.as_mut().poll(&mut cx));
    assert!(matches!(fresh, Poll::Ready(Ok(7))));
    s.shutdown();
}

/// A future that is always ready spends the whole budget of every task
/// poll: its timeout still fires. (Looking at the deadline only with
/// budget left, as the first fix of the row above did, never did.)
fn a_timeout_fires_over_a_future_that_spends_every_budget(cfg: Config) {
    use coro_io::coop;
    let s = cfg.sched();
    let busy = async {
        loop {
            coop::consume_budget().await;
        }
    };
    let t = s.timeout(Duration::from_millis(50), busy);
    let r = bounded(30, "the timeout", move || {
        let r = sync_wait(s.spawn(t));
        s.shutdown();
        r
    });
    assert!(r.unwrap().is_err(), "the busy future ended?");
}

/// A `Manual` scheduler shut down while a foreign executor's waker that
/// panics waits on one of its timers: `shutdown()` finishes the clean-up
/// (the panic is reported, not passed on) and a second one returns.
fn a_waker_panicking_at_manual_shutdown_leaves_the_clean_up_done(cfg: Config) {
    let s = manual(cfg);
    let pending = s.spawn(std::future::pending::<()>());
    let mut sleep = Box::pin(s.sleep(Duration::from_secs(60)));
    wait_with_a_panicking_waker(sleep.as_mut());
    s.process_events(Some(Duration::ZERO));
    bounded(30, "shutdown, twice, then drop", move || {
        s.shutdown();
        s.shutdown();
        drop(s);
    });
    let err = bounded(30, "the pending task", move || sync_wait(pending)).unwrap_err();
    assert!(err.is_cancelled());
    drop(sleep);
}

/// A task of a `Manual` turn calls `shutdown()` (which leaves the clean-up
/// to the turn), then the turn ends in a panic (a due timer's foreign
/// waker): the clean-up still runs, so a later `shutdown()` and the last
/// handle's drop return.
fn a_manual_turn_that_panics_after_a_task_shut_down_still_cleans_up(cfg: Config) {
    let s = manual(cfg);
    let pending = s.spawn(std::future::pending::<()>());
    // Still pending at its first poll below even if this thread is held
    // up a while (a 1 ms timer was not, on a loaded machine).
    let mut sleep = Box::pin(s.sleep(Duration::from_millis(50)));
    wait_with_a_panicking_waker(sleep.as_mut());
    let s2 = s.clone();
    s.spawn(async move { s2.shutdown() }).detach();
    std::thread::sleep(Duration::from_millis(100));
    let turn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        s.process_events(Some(Duration::ZERO))
    }));
    assert!(
        turn.is_err(),
        "the waker's panic reaches process_events' caller"
    );
    bounded(30, "shutdown after the turn, then drop", move || {
        s.shutdown();
        drop(s);
    });
    let err = bounded(30, "the pending task", move || sync_wait(pending)).unwrap_err();
    assert!(err.is_cancelled());
    drop(sleep);
}

/// `size()` counts a task until its future is gone: what the future held
/// (a socket, a buffer, a guard) is released when `size()` reaches 0, not
/// some time after.
fn a_task_counts_in_size_until_its_future_is_dropped(cfg: Config) {
    struct SlowDrop(Arc<AtomicUsize>);
    impl Drop for SlowDrop {
        fn drop(&mut self) {
            std::thread::sleep(Duration::from_millis(100));
            self.0.store(1, Ordering::SeqCst);
        }
    }
    let s = cfg.sched();
    let dropped = Arc::new(AtomicUsize::new(0));
    let guard = SlowDrop(dropped.clone());
    // A future that owns the guard and completes at once: the guard goes
    // with the future (an async block would drop it as it returns).
    struct Holder(#[allow(dead_code)] SlowDrop);
    impl std::future::Future for Holder {
        type Output = ();
        fn poll(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<()> {
            std::task::Poll::Ready(())
        }
    }
    drop(s.spawn(Holder(guard)));
    bounded(30, "the task's end", {
        let s = s.clone();
        move || {
            while s.size() > 0 {
                std::thread::yield_now();
            }
        }
    });
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "size() was 0 while the task's future was still being dropped"
    );
    s.shutdown();
}

/// A task on the loop's thread that calls `shutdown()` cannot wait for its
/// own thread; a later `shutdown()` from outside does: when it returns,
/// the loop's thread has ended (its stop callback ran). With tasks on a
/// pool, the task's call joins the loop's thread itself, and the call from
/// outside waits for that join.
fn a_shutdown_from_outside_after_one_from_a_task_joins_the_loop(cfg: Config) {
    let workers_stopped = Arc::new(AtomicUsize::new(0));
    let w = workers_stopped.clone();
    for execution in [
        ExecutionStrategy::Inline,
        ExecutionStrategy::ThreadPool(ThreadPoolOptions {
            thread_count: 2,
            // Slow to stop: a shutdown that does not join the workers
            // returns before these ran.
            on_thread_stop: Some(Arc::new(move |_| {
                std::thread::sleep(Duration::from_millis(100));
                w.fetch_add(1, Ordering::SeqCst);
            })),
            ..Default::default()
        }),
    ] {
        let what = format!("{execution:?}");
        let stopped = Arc::new(AtomicUsize::new(0));
        let b = stopped.clone();
        let s = IoScheduler::new(IoSchedulerOptions {
            driver: cfg.kind(),
            uring: cfg.uring(),
            execution,
            on_io_thread_stop: Some(Arc::new(move || {
                std::thread::sleep(Duration::from_millis(100));
                b.fetch_add(1, Ordering::SeqCst);
            })),
            ..Default::default()
        })
        .unwrap();
        let s2 = s.clone();
        s.spawn(async move { s2.shutdown() }).detach();
        bounded(30, "the task's shutdown", {
            let s = s.clone();
            move || {
                while !s.is_shutdown() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        s.shutdown();
        assert_eq!(
            stopped.load(Ordering::SeqCst),
            1,
            "{what}: shutdown() returned before the loop's thread ended"
        );
    }
    assert_eq!(
        workers_stopped.load(Ordering::SeqCst),
        2,
        "shutdown() returned while pool workers still ran"
    );
}

/// A pool task drops the last handle (its worker then waits for the loop
/// thread to finish), and the loop thread, cancelling a suspended task,
/// runs a destructor that takes the scheduler's handle and lets it go: a
/// second `shutdown()`, on the loop thread, during the clean-up. It must
/// not join the pool's workers there (one of them waits for this very
/// thread): that deadlocked.
fn a_destructor_reviving_the_handle_during_a_pool_shutdown_does_not_deadlock(cfg: Config) {
    struct UsesCurrent;
    impl Drop for UsesCurrent {
        fn drop(&mut self) {
            drop(IoScheduler::current());
        }
    }
    let s = pooled(cfg);
    let parked = Arc::new(AtomicUsize::new(0));
    let p = parked.clone();
    s.spawn(async move {
        let _g = UsesCurrent;
        p.fetch_add(1, Ordering::SeqCst);
        std::future::pending::<()>().await
    })
    .detach();
    let last = s.clone();
    let (go_tx, go_rx) = coro_sync::oneshot::channel::<()>();
    let h = s.spawn(async move {
        let _ = go_rx.await;
        drop(last);
        7
    });
    bounded(10, "the guard's task to start", move || {
        while parked.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    drop(s);
    go_tx.send(()).unwrap();
    assert_eq!(
        bounded(30, "the pool task's drop of the last handle", move || {
            sync_wait(h)
        })
        .ok(),
        Some(7)
    );
}

/// The first `shutdown()` comes from the loop's thread: a foreign waker
/// that the loop wakes (a timer's) calls it. A pool task meanwhile blocks
/// its worker on a sleep, which only the loop fires. The shutdown joined
/// the pool's workers right there, before the loop's clean-up: the worker
/// waited for the loop, the loop for the worker, for ever.
fn a_first_shutdown_on_the_loop_thread_does_not_join_a_worker_that_waits_on_the_loop(cfg: Config) {
    use std::task::{Context, Wake, Waker};
    struct ShutsDown(IoScheduler, mpsc::Sender<()>);
    impl Wake for ShutsDown {
        fn wake(self: Arc<Self>) {
            let _ = self.1.send(());
            self.0.shutdown();
        }
    }
    let s = pooled(cfg);
    let (started_tx, started) = std::sync::mpsc::channel();
    let s2 = s.clone();
    s.spawn(async move {
        started_tx.send(()).unwrap();
        // Allowed on a pool worker: the loop's thread fires the timer.
        sync_wait(s2.sleep(Duration::from_millis(500)));
    })
    .detach();
    started.recv_timeout(Duration::from_secs(10)).unwrap();
    let (woken_tx, woken) = mpsc::channel();
    let waker = Waker::from(Arc::new(ShutsDown(s.clone(), woken_tx)));
    let mut sleep = Box::pin(s.sleep(Duration::from_millis(50)));
    assert!(
        std::future::Future::poll(sleep.as_mut(), &mut Context::from_waker(&waker)).is_pending()
    );
    woken
        .recv_timeout(Duration::from_secs(10))
        .expect("the timer's waker ran");
    bounded(
        30,
        "the shutdown after one from the loop's thread",
        move || {
            s.shutdown();
            drop(sleep);
        },
    );
}

/// A task blocks its thread until a blocking job returns (`sync_wait`:
/// allowed, the job runs elsewhere), and the job shuts the scheduler
/// down. That shutdown joined the pool's workers (or the loop's thread,
/// `Inline`), one of which waited for the job: for ever, and every later
/// `shutdown()` with it.
fn a_shutdown_from_a_blocking_job_a_task_waits_for_returns(cfg: Config) {
    let inline = IoScheduler::new(IoSchedulerOptions {
        driver: cfg.kind(),
        uring: cfg.uring(),
        ..Default::default()
    })
    .unwrap();
    for (s, driven_here) in [(pooled(cfg), false), (inline, false), (manual(cfg), true)] {
        let h = s.spawn(async {
            let c = IoScheduler::current().expect("a task has a current scheduler");
            let _ = sync_wait(coro_io::spawn_blocking(move || c.shutdown()));
            1
        });
        // A `Manual` one is driven here as its docs say: until it is shut
        // down (the turn whose task waits for the job cleans up).
        let driver = driven_here.then(|| {
            let d = s.clone();
            std::thread::spawn(move || {
                while !d.is_shutdown() {
                    d.process_events(Some(Duration::from_millis(10)));
                }
            })
        });
        bounded(30, "a shutdown from a blocking job", move || {
            let _ = sync_wait(h);
            if let Some(t) = driver {
                t.join().unwrap();
            }
            s.shutdown();
        });
    }
}

/// Run `cmd` (this test binary again, as a child) to its end, within a
/// bound: a child that hangs fails the test instead of CI's whole run.
fn child_output(cmd: &mut std::process::Command) -> std::process::Output {
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let read_all = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let (out, err) = (read_all(Box::new(stdout)), read_all(Box::new(stderr)));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the child test did not end within 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    std::process::Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

const LATE_DTOR_CHILD_ENV: &str = "CORO_TEST_DRIVE_IN_A_LATE_TLS_DESTRUCTOR";

/// `process_events` called from a thread-local's destructor that runs
/// after the scheduler's own thread-locals went (registered before them,
/// so destroyed after): a turn set them with `with`, which panics there,
/// and a panic in a thread-local's destructor aborts the process. It
/// returns 0 with a warning now. Run in a child process.
#[test]
fn process_events_in_a_late_thread_local_destructor_does_not_abort() {
    let out = child_output(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "process_events_in_a_late_thread_local_destructor_child",
                "--nocapture",
            ])
            .env(LATE_DTOR_CHILD_ENV, "1"),
    );
    assert!(
        out.status.success(),
        "the child failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("late destructor drove 0"),
        "the child test did not run: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
#[ignore = "run by process_events_in_a_late_thread_local_destructor_does_not_abort"]
fn process_events_in_a_late_thread_local_destructor_child() {
    if std::env::var_os(LATE_DTOR_CHILD_ENV).is_none() {
        return;
    }
    struct DriveOnDrop(Option<IoScheduler>);
    impl Drop for DriveOnDrop {
        fn drop(&mut self) {
            if let Some(s) = self.0.take() {
                let n = s.process_events(Some(Duration::ZERO));
                println!("late destructor drove {n}");
                s.shutdown();
            }
        }
    }
    thread_local! {
        static LATE: std::cell::RefCell<DriveOnDrop> =
            const { std::cell::RefCell::new(DriveOnDrop(None)) };
    }
    let s = IoScheduler::new(IoSchedulerOptions {
        thread_strategy: ThreadStrategy::Manual,
        ..Default::default()
    })
    .unwrap();
    std::thread::spawn(move || {
        // Registered first: destroyed after the scheduler's thread-locals,
        // which the turns below register.
        LATE.with(|l| l.borrow_mut().0 = Some(s.clone()));
        let h = s.spawn(async { 1 });
        drive_until(&s, || h.is_finished());
    })
    .join()
    .unwrap();
}

const TLS_CHILD_ENV: &str = "CORO_TEST_MANUAL_IN_A_THREAD_LOCAL";

/// A `Manual` scheduler kept in a `thread_local!` and driven on that
/// thread: its last handle goes when the thread's locals are destroyed,
/// after the scheduler's own (registered at its first turn). The shutdown
/// that runs then must not touch them: that panicked inside a
/// thread-local destructor, which aborts the process. Run in a child
/// process, once per driver.
#[test]
fn a_manual_scheduler_in_a_thread_local_shuts_down_at_thread_exit() {
    for driver in ["epoll", "auto"] {
        let out = child_output(
            std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--ignored",
                    "--exact",
                    "manual_scheduler_in_a_thread_local_child",
                    "--nocapture",
                ])
                .env(TLS_CHILD_ENV, "1")
                .env("CORO_DRIVER", driver),
        );
        assert!(
            out.status.success(),
            "{driver}: the child failed ({:?}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        // The child test ran (a renamed one would match nothing and pass).
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("thread-local scheduler shut down"),
            "{driver}: the child test did not run: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
#[ignore = "run by a_manual_scheduler_in_a_thread_local_shuts_down_at_thread_exit"]
fn manual_scheduler_in_a_thread_local_child() {
    if std::env::var_os(TLS_CHILD_ENV).is_none() {
        return;
    }
    thread_local! {
        static RT: IoScheduler = IoScheduler::new(IoSchedulerOptions {
            thread_strategy: ThreadStrategy::Manual,
            ..Default::default()
        })
        .unwrap();
    }
    static LOCAL_DROPPED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    // Not `Send`: only a local task can hold it.
    struct SetOnDrop {
        _local: Rc<()>,
    }
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            LOCAL_DROPPED.store(true, Ordering::SeqCst);
        }
    }
    let ran = std::thread::spawn(|| {
        RT.with(|s| {
            let h = s.spawn(async { 5 });
            drive_until(s, || h.is_finished());
            // A local task still waiting when the thread ends: the
            // clean-up drops it, on its own thread.
            let g = SetOnDrop {
                _local: Rc::new(()),
            };
            s.spawn_local(async move {
                let _g = g;
                std::future::pending::<()>().await
            })
            .detach();
            s.process_events(Some(Duration::ZERO));
            sync_wait(h).unwrap()
        })
    })
    .join()
    .expect("the thread (or its thread-locals' destructors) panicked");
    assert_eq!(ran, 5);
    assert!(
        LOCAL_DROPPED.load(Ordering::SeqCst),
        "the waiting local task was not dropped"
    );
    println!("thread-local scheduler shut down");
}

/// A local task dropped on a foreign thread is leaked (its future must not
/// be dropped there), but its scheduler is not: the live-local-task count
/// sat inside the leaked wrapper and held the scheduler's internals, with
/// the driver's fds, for good (about two fds per round here).
#[test]
fn a_leaked_local_task_does_not_leak_its_scheduler() {
    use coro_io::testing::{open_fds, open_fds_settled};
    const ROUNDS: usize = 50;
    for cfg in [Config::EPOLL, Config::URING_DEFER] {
        let before = open_fds();
        for _ in 0..ROUNDS {
            let s = manual(cfg);
            let _h = s.spawn_local(std::future::pending::<()>());
            s.process_events(Some(Duration::ZERO));
            // Shut down (and so dropped) on another thread: leaked there.
            let s2 = s.clone();
            std::thread::spawn(move || s2.shutdown()).join().unwrap();
            drop(s);
        }
        let after = open_fds_settled(before + 20);
        assert!(
            after <= before + 20,
            "{cfg}: {before} fds before {ROUNDS} rounds, {after} after"
        );
    }
}

const BAD_OPTIONS_CHILD_ENV: &str = "CORO_TEST_BAD_OPTIONS_CHILD";

/// `CORO_DRIVER` picks the driver of an `Auto` scheduler. Options that
/// contradict each other are refused whatever it picks (they were taken
/// under `CORO_DRIVER=epoll`, so a program could pass with it and fail
/// without it), and a value that is not UTF-8 is refused (it was read as
/// `auto`). Run in child processes: the variable is process-wide.
#[test]
fn the_coro_driver_override_still_refuses_bad_options() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let cases: [(&OsStr, &str); 3] = [
        (OsStr::new("epoll"), "contradictory"),
        (OsStr::from_bytes(b"ep\xffoll"), "plain"),
        (OsStr::new("epoll"), "plain"),
    ];
    for (driver, options) in cases {
        let out = child_output(
            std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--ignored", "--exact", "bad_options_child", "--nocapture"])
                .env(BAD_OPTIONS_CHILD_ENV, options)
                .env("CORO_DRIVER", driver),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{driver:?} {options}: {stdout}");
        let want = match (driver.to_str(), options) {
            (Some("epoll"), "plain") => "built",
            _ => "refused: InvalidInput",
        };
        assert!(
            stdout.contains(&format!("<{want}>")),
            "{driver:?} {options}: {stdout}"
        );
    }
}

#[test]
#[ignore = "run by the_coro_driver_override_still_refuses_bad_options"]
fn bad_options_child() {
    let Some(options) = std::env::var_os(BAD_OPTIONS_CHILD_ENV) else {
        return;
    };
    let mut opts = IoSchedulerOptions {
        thread_strategy: ThreadStrategy::Manual,
        ..Default::default()
    };
    if options == "contradictory" {
        // Deferred task running needs the loop thread to be the only
        // submitter; a Manual scheduler may be driven from any thread.
        opts.uring.ring_mode = coro_io::driver::RingMode::DeferTaskrun;
    }
    match IoScheduler::new(opts) {
        Ok(s) => {
            println!("<built>");
            s.shutdown();
        }
        Err(e) => println!("<refused: {:?}> {e}", e.kind()),
    }
}
