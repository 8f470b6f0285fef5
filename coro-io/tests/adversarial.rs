//! The scheduler under schedules an author would not write: tasks that never
//! stop yielding, wake-ups from other threads, shutdown while tasks hold
//! locks or are queued, dropped polls, and `process_events` blocked on
//! another thread. Each test is a regression test for a hang or lost wake-up
//! that once reached users; all of them run on every configuration.

use std::future::Future;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use coro_core::sync_wait;
use coro_io::testing::Config;
use coro_io::{
    IoScheduler, IoSchedulerOptions, JoinError, JoinHandle, PollOp, PollStatus, ThreadStrategy,
};

coro_io::driver_tests!(
    io_is_not_starved_by_a_task_that_keeps_yielding,
    io_is_not_starved_by_a_loop_over_due_sleeps,
    io_is_not_starved_by_tasks_that_wake_each_other,
    io_is_not_starved_by_a_busy_when_all,
    io_completes_while_the_submitting_thread_computes,
    shutdown_returns_while_a_task_holds_a_lock_another_waits_for,
    shutdown_returns_while_another_thread_keeps_pushing,
    dropped_poll_leaves_no_registration_for_a_reused_fd,
    a_leaked_poll_does_not_break_its_fd_number,
    overlapping_polls_of_one_fd_leave_no_registration,
    task_queued_during_shutdown_does_not_survive_it,
    wakes_from_other_threads_are_never_lost,
);

mod manual {
    use super::*;
    coro_io::driver_tests!(drivers: shutdown_from_another_thread_wakes_process_events);
}

/// How long a wait may take before the test calls it a hang.
const BOUND: Duration = Duration::from_secs(10);
/// How long the starvation tests' busy tasks run at most (they stop once
/// the poll completed): a poll that completes in a third of it was not
/// starved. Long, so that a loaded machine's scheduling delays (hundreds of
/// ms) stay well inside the bound.
const BUSY: Duration = Duration::from_secs(9);

/// Wait for `h` on another thread, at most `bound` (`None`: it did not
/// resolve in time).
fn join_within<T: Send + 'static>(
    h: JoinHandle<T>,
    bound: Duration,
) -> Option<Result<T, JoinError>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(sync_wait(h));
    });
    rx.recv_timeout(bound).ok()
}

/// [`join_within`] for a task that must finish normally.
fn output_within<T: Send + 'static>(h: JoinHandle<T>, bound: Duration) -> Option<T> {
    join_within(h, bound).map(|r| {
        r.unwrap_or_else(|e| match e.try_into_panic() {
            Ok(p) => std::panic::resume_unwind(p),
            Err(e) => panic!("task failed: {e}"),
        })
    })
}

/// Run `f` on another thread; `None` if it did not return within `bound`.
fn within<T: Send + 'static>(bound: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(bound).ok()
}

fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

/// While `busy` keeps the scheduler busy (for at most `BUSY`, or until the
/// wait is over), a task polls a socket that another thread writes 50 ms
/// later: the poll must see the data at once, not when `busy` stops.
fn assert_io_not_starved<B, F>(cfg: Config, busy: B)
where
    B: FnOnce(IoScheduler, Arc<AtomicBool>) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let s = cfg.sched();
    let (a, b) = pair();
    let stop = Arc::new(AtomicBool::new(false));
    let spinner = s.spawn(busy(s.clone(), stop.clone()));
    let s2 = s.clone();
    let waiter = s.spawn(async move {
        let st = s2
            .poll(&a, PollOp::Read, Some(Duration::from_secs(5)))
            .await;
        (st, Instant::now())
    });
    thread::sleep(Duration::from_millis(50));
    let wrote = Instant::now();
    (&b).write_all_now(b"x");
    let got = output_within(waiter, BOUND);
    stop.store(true, Ordering::SeqCst);
    let (st, at) = got.expect("the poll never completed");
    assert_eq!(st, PollStatus::Event);
    let late = at.saturating_duration_since(wrote);
    assert!(
        late < BUSY / 3,
        "{cfg}: the poll completed {late:?} after the data arrived (starved by busy tasks)"
    );
    output_within(spinner, BOUND).expect("the busy task did not stop");
    s.shutdown();
}

trait WriteNow {
    fn write_all_now(self, b: &[u8]);
}
impl WriteNow for &UnixStream {
    fn write_all_now(self, b: &[u8]) {
        use std::io::Write;
        let mut s = self;
        s.write_all(b).unwrap();
    }
}

/// A pacing loop that fell behind: each `sleep_until` is already due, so
/// the task never waits. Due sleeps count against the budget (as tokio's
/// do), so the loop yields now and then; else, on inline execution,
/// nothing else ran on its thread again.
fn io_is_not_starved_by_a_loop_over_due_sleeps(cfg: Config) {
    assert_io_not_starved(cfg, |s, stop| async move {
        let t = Instant::now();
        while !stop.load(Ordering::SeqCst) && t.elapsed() < BUSY {
            s.sleep_until(t).await;
            s.sleep(Duration::ZERO).await;
        }
    });
}

fn io_is_not_starved_by_a_task_that_keeps_yielding(cfg: Config) {
    assert_io_not_starved(cfg, |s, stop| async move {
        let t = Instant::now();
        while !stop.load(Ordering::SeqCst) && t.elapsed() < BUSY {
            s.yield_now().await;
        }
    });
}

fn io_is_not_starved_by_tasks_that_wake_each_other(cfg: Config) {
    assert_io_not_starved(cfg, |s, stop| async move {
        // Two tasks hand a token back and forth through queues: the run
        // queue is never empty, and nobody yields explicitly.
        let ping = Arc::new(coro_sync::Queue::new());
        let pong = Arc::new(coro_sync::Queue::new());
        let (p1, q1) = (ping.clone(), pong.clone());
        let stop2 = stop.clone();
        let other = s.spawn(async move {
            while let Ok(n) = p1.pop().await {
                if q1.push(n + 1).is_err() {
                    break;
                }
            }
            let _ = stop2;
        });
        let t = Instant::now();
        ping.push(0u64).unwrap();
        while !stop.load(Ordering::SeqCst) && t.elapsed() < BUSY {
            let n = pong.pop().await.unwrap();
            ping.push(n + 1).unwrap();
        }
        ping.close();
        other.await.unwrap();
    });
}

fn io_is_not_starved_by_a_busy_when_all(cfg: Config) {
    assert_io_not_starved(cfg, |_s, stop| async move {
        let t = Instant::now();
        let kids = (0..8).map(|_| {
            let stop = stop.clone();
            async move {
                while !stop.load(Ordering::SeqCst) && t.elapsed() < BUSY {
                    coro_core::yield_now().await;
                }
            }
        });
        coro_core::when_all(kids).await;
    });
}

/// A task submits a recv, and a task that computes for two seconds without a
/// syscall runs right behind it on the same thread (a pool worker's LIFO
/// slot, or the loop). Data arrives 50 ms later: the recv must complete
/// before the spinner ends on a pool (where the other worker is free), and
/// on an inline loop at once when the spinner is done, not later (with `COOP_TASKRUN` the
/// kernel queues the completion work to the submitting thread).
fn io_completes_while_the_submitting_thread_computes(cfg: Config) {
    let s = cfg.sched();
    let (a, b) = pair();
    let s2 = s.clone();
    // Long, so that a worker kept off a core for a while on a loaded
    // machine still completes the recv before the spinner ends.
    let spin = Duration::from_millis(2000);
    let (polled, first_poll) = std::sync::mpsc::channel();
    let h = s.spawn(async move {
        let d = s2.driver().clone();
        let mut f = Box::pin(coro_io::op::recv(&d, a.as_raw_fd(), Vec::with_capacity(8)));
        // Submitted (or, on epoll, found nothing and waits).
        assert!(futures::poll!(f.as_mut()).is_pending());
        let _ = polled.send(());
        let spinner = s2.spawn(async move {
            let t = Instant::now();
            while t.elapsed() < spin {
                std::hint::spin_loop();
            }
            Instant::now()
        });
        let (r, _) = f.await;
        assert_eq!(r.unwrap(), 1);
        drop(a);
        (Instant::now(), spinner)
    });
    // After the recv's first poll (a sleep of 50 ms was not always: on a
    // loaded machine the task started later and found the data there).
    first_poll.recv_timeout(BOUND).expect("the task never ran");
    thread::sleep(Duration::from_millis(50));
    (&b).write_all_now(b"x");
    let (done, spinner) = output_within(h, BOUND).expect("the recv never completed");
    let spun = output_within(spinner, BOUND).expect("the spinner never ended");
    // Against the spinner's own end, not a fixed window: how late the
    // threads got a core on a loaded machine does not move the verdict.
    if cfg.pool {
        assert!(
            done < spun,
            "{cfg}: the recv completed {:?} after the spinner ended, not beside it",
            done - spun
        );
    } else {
        // The loop itself is busy until the spinner ends; then at once.
        let late = done.saturating_duration_since(spun);
        assert!(
            late < Duration::from_millis(500),
            "{cfg}: the recv completed {late:?} after the spinner ended"
        );
    }
    s.shutdown();
}

/// Manual mode: one thread loops on `process_events(None)`, another calls
/// `shutdown()`. Both must return: shutdown wakes the blocked call.
fn shutdown_from_another_thread_wakes_process_events(cfg: Config) {
    let s = IoScheduler::new(IoSchedulerOptions {
        driver: cfg.kind(),
        uring: cfg.uring(),
        thread_strategy: ThreadStrategy::Manual,
        ..Default::default()
    })
    .unwrap();
    let s2 = s.clone();
    let (tx, rx) = mpsc::channel();
    let driver = thread::spawn(move || {
        let _ = tx.send(());
        while !s2.is_shutdown() {
            s2.process_events(None);
        }
    });
    rx.recv().unwrap();
    // Let it block in the wait.
    thread::sleep(Duration::from_millis(50));
    let s3 = s.clone();
    within(BOUND, move || s3.shutdown()).expect("shutdown() never returned");
    within(BOUND, move || driver.join().unwrap())
        .expect("process_events(None) stayed blocked after shutdown()");
}

/// Task A holds a `coro_sync::Mutex` guard across an await that never ends,
/// task B waits in `lock()`: shutdown cancels A, whose guard drop wakes B
/// from inside the mutex's notify. Shutdown must still return.
fn shutdown_returns_while_a_task_holds_a_lock_another_waits_for(cfg: Config) {
    for _ in 0..20 {
        let s = cfg.sched();
        let m = Arc::new(coro_sync::Mutex::new(0u32));
        let (tx, rx) = mpsc::channel();
        let (m1, s1, tx1) = (m.clone(), s.clone(), tx.clone());
        let a = s.spawn(async move {
            let _g = m1.lock().await;
            let _ = tx1.send(());
            s1.sleep(Duration::MAX).await;
        });
        rx.recv_timeout(BOUND).unwrap();
        let m2 = m.clone();
        let b = s.spawn(async move {
            let _ = tx.send(());
            *m2.lock().await += 1;
        });
        rx.recv_timeout(BOUND).unwrap();
        thread::sleep(Duration::from_millis(5));
        within(BOUND, move || s.shutdown()).expect("shutdown() deadlocked");
        let a = join_within(a, BOUND).expect("the lock holder's handle never resolved");
        assert!(a.unwrap_err().is_cancelled());
        // B either got the lock as A's cancellation released it, or was
        // cancelled itself; either way its handle resolves.
        let _ = join_within(b, BOUND).expect("the waiter's handle never resolved");
    }
}

/// Tasks wait on a `coro_sync::Queue` that another thread keeps pushing to
/// while the scheduler shuts down: a wake that arrives inside the queue's
/// notify must not cancel (drop) the task right there.
fn shutdown_returns_while_another_thread_keeps_pushing(cfg: Config) {
    for _ in 0..20 {
        let s = cfg.sched();
        let q = Arc::new(coro_sync::Queue::new());
        let waiting = Arc::new(AtomicUsize::new(0));
        for _ in 0..8 {
            let (q, waiting, s1) = (q.clone(), waiting.clone(), s.clone());
            s.spawn(async move {
                loop {
                    waiting.fetch_add(1, Ordering::SeqCst);
                    if q.pop().await.is_err() {
                        break;
                    }
                    // A task that never suspends cannot be cancelled by
                    // anyone; this one lets the others (and shutdown) in.
                    s1.yield_now().await;
                }
            })
            .detach();
        }
        let deadline = Instant::now() + BOUND;
        while waiting.load(Ordering::SeqCst) < 8 {
            assert!(Instant::now() < deadline);
            thread::yield_now();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (q2, stop2) = (q.clone(), stop.clone());
        let pusher = thread::spawn(move || {
            let mut i = 0u64;
            while !stop2.load(Ordering::SeqCst) {
                let _ = q2.push(i);
                i += 1;
                if i % 64 == 0 {
                    thread::yield_now();
                }
            }
        });
        thread::sleep(Duration::from_millis(2));
        within(BOUND, move || s.shutdown()).expect("shutdown() deadlocked");
        stop.store(true, Ordering::SeqCst);
        pusher.join().unwrap();
    }
}

/// Make `a`'s number name a new socket (dup3 swaps the file under it at
/// once, which also closes the old one and with it the kernel's epoll
/// registration), whose peer writes a byte 5 ms later, on a thread that
/// returns the peer.
fn reuse_with_a_byte(a: &mut OwnedFd) -> thread::JoinHandle<UnixStream> {
    let (c, d) = pair();
    rustix::io::dup3(&c, a, rustix::io::DupFlags::CLOEXEC).unwrap();
    drop(c);
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(5));
        (&d).write_all_now(b"x");
        d
    })
}

/// A poll of a caller's fd that is dropped while waiting (it lost a
/// timeout race) must not leave a registration behind: the caller closes
/// the fd, a new socket gets the same number, and waiting on that one must
/// work.
fn dropped_poll_leaves_no_registration_for_a_reused_fd(cfg: Config) {
    let s = cfg.sched();
    let s2 = s.clone();
    let h = s.spawn(async move {
        for round in 0..20 {
            let (a, b) = pair();
            let mut a = OwnedFd::from(a);
            // Dropped while waiting: the timeout wins.
            let r = s2
                .timeout(Duration::from_millis(2), s2.poll(&a, PollOp::Read, None))
                .await;
            assert!(r.is_err(), "nothing was written");
            assert_eq!(s2.metrics().registered_fds, 0, "round {round}");
            drop(b);
            // The owner reuses the number for a new socket.
            let w = reuse_with_a_byte(&mut a);
            // A poll of the new socket must see its data.
            let st = s2
                .poll(&a, PollOp::Read, Some(Duration::from_secs(5)))
                .await;
            assert_eq!(
                st,
                PollStatus::Event,
                "round {round}: the reused fd was never seen"
            );
            drop(w.join().unwrap());
            assert_eq!(s2.metrics().registered_fds, 0, "round {round}");
        }
    });
    output_within(h, Duration::from_secs(60)).expect("a poll hung");
    s.shutdown();
}

/// A poll of a caller's fd leaked while it waits (forgotten; a task kept
/// alive by a reference cycle does the same) never ends, so it never
/// drops its registration. Once the caller closes the fd and a new
/// socket gets its number, waiting on the new one must still work: a
/// poll of it, a watch as the DNS resolver makes (`op::poll_fd`), and a
/// read of an owner's.
fn a_leaked_poll_does_not_break_its_fd_number(cfg: Config) {
    use coro_io::driver::{Interest, RegisteredFd};
    let s = cfg.sched();
    let s2 = s.clone();
    let h = s.spawn(async move {
        for (round, waiter) in ["poll", "watch", "owner"].into_iter().enumerate() {
            let (a, b) = pair();
            let mut a = OwnedFd::from(a);
            let mut leaked = Box::pin(s2.poll(a.as_fd(), PollOp::Read, None));
            std::future::poll_fn(|cx| {
                assert!(leaked.as_mut().poll(cx).is_pending(), "nothing was written");
                std::task::Poll::Ready(())
            })
            .await;
            std::mem::forget(leaked);
            drop(b);
            let w = reuse_with_a_byte(&mut a);
            // Bounded by a timer, whose expiry re-polls the wait (which
            // then finds the byte by a syscall): seen late is not seen.
            let bound = Duration::from_secs(4);
            let start = Instant::now();
            let seen = match waiter {
                "poll" => s2.poll(&a, PollOp::Read, Some(bound)).await == PollStatus::Event,
                "watch" => {
                    let watch = coro_io::op::poll_fd(s2.driver(), a.as_raw_fd(), Interest::Read);
                    s2.timeout(bound, watch).await.is_ok()
                }
                _ => {
                    let r = RegisteredFd::new(s2.driver(), a);
                    let read = coro_io::op::recv(s2.driver(), r.raw(), vec![0u8; 1]);
                    let ok = matches!(s2.timeout(bound, read).await, Ok((Ok(1), _)));
                    a = r.into_fd();
                    ok
                }
            };
            let took = start.elapsed();
            assert!(
                seen && took < Duration::from_secs(3),
                "round {round} ({waiter}): the reused number was not seen ({took:?})"
            );
            drop(w.join().unwrap());
            drop(a);
        }
    });
    output_within(h, Duration::from_secs(60)).expect("a wait hung");
    s.shutdown();
}

/// Two polls of one fd that overlap in time, in both orders of finishing
/// (and one of them dropped): nothing stays registered.
fn overlapping_polls_of_one_fd_leave_no_registration(cfg: Config) {
    let s = cfg.sched();
    let s2 = s.clone();
    let h = s.spawn(async move {
        for drop_first in [false, true] {
            let (a, b) = pair();
            let fd = a.as_fd().try_clone_to_owned().unwrap();
            let s3 = s2.clone();
            let long = s2.spawn(async move {
                s3.poll(&fd, PollOp::Read, Some(Duration::from_secs(5)))
                    .await
            });
            s2.sleep(Duration::from_millis(2)).await;
            if drop_first {
                let r = s2
                    .timeout(Duration::from_millis(2), s2.poll(&a, PollOp::Read, None))
                    .await;
                assert!(r.is_err());
            } else {
                let st = s2
                    .poll(&a, PollOp::Read, Some(Duration::from_millis(2)))
                    .await;
                assert_eq!(st, PollStatus::Timeout);
            }
            (&b).write_all_now(b"x");
            assert_eq!(long.await.unwrap(), PollStatus::Event);
            assert_eq!(s2.metrics().registered_fds, 0, "drop_first={drop_first}");
        }
    });
    output_within(h, BOUND).expect("a poll hung");
    s.shutdown();
}

/// With tasks on a pool: a task that is queued (not suspended) when
/// shutdown cancels the suspended ones, and that suspends again afterwards,
/// must be cancelled too: its future dropped, its handle resolved.
fn task_queued_during_shutdown_does_not_survive_it(cfg: Config) {
    let s = cfg.sched();
    let dropped = Arc::new(AtomicBool::new(false));
    struct OnDrop(Arc<AtomicBool>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    // Occupy every worker (or the loop thread) until shutdown began, so
    // that the task woken by its timer sits in the queue meanwhile.
    let release = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicUsize::new(0));
    let busy = if cfg.pool { 2 } else { 1 };
    let guard = OnDrop(dropped.clone());
    // Woken from this thread (not by a timer, which the loop thread fires
    // itself: busy, it would fire none).
    let (wake, woken) = futures::channel::oneshot::channel::<()>();
    let victim = s.spawn(async move {
        let _g = guard;
        let _ = woken.await;
        // Suspends again on something that will never wake it (a sleep
        // would notice the shutdown by itself).
        std::future::pending::<()>().await;
    });
    thread::sleep(Duration::from_millis(5));
    for _ in 0..busy {
        let (release, started) = (release.clone(), started.clone());
        s.spawn(async move {
            started.fetch_add(1, Ordering::SeqCst);
            let t = Instant::now();
            while !release.load(Ordering::SeqCst) && t.elapsed() < BOUND {
                thread::sleep(Duration::from_millis(1));
            }
        })
        .detach();
    }
    let deadline = Instant::now() + BOUND;
    while started.load(Ordering::SeqCst) < busy {
        assert!(Instant::now() < deadline, "the busy tasks did not start");
        thread::yield_now();
    }
    // The victim is woken while every thread is busy: it waits in the
    // run queue when the shutdown begins.
    wake.send(()).unwrap();
    thread::sleep(Duration::from_millis(60));
    let s2 = s.clone();
    let stopper = thread::spawn(move || s2.shutdown());
    thread::sleep(Duration::from_millis(100));
    release.store(true, Ordering::SeqCst);
    within(BOUND, move || stopper.join().unwrap()).expect("shutdown() never returned");
    let r =
        join_within(victim, BOUND).expect("the task survived shutdown: its handle never resolved");
    assert!(r.unwrap_err().is_cancelled(), "{cfg}");
    assert!(
        dropped.load(Ordering::SeqCst),
        "{cfg}: its future was not dropped"
    );
    assert_eq!(s.metrics().live_tasks, 0, "{cfg}");
}

/// Spawns and wake-ups from threads other than the loop's, in bursts that
/// land while the loop is busy running the previous ones and while it is
/// idle, each awaited with a bound: none may be lost (an event loop that
/// blocks with no wake-up armed in the kernel hangs here).
fn wakes_from_other_threads_are_never_lost(cfg: Config) {
    let s = cfg.sched();
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let s = s.clone();
            thread::spawn(move || {
                for burst in 0..40u32 {
                    let hs: Vec<_> = (0..50u32)
                        .map(|i| {
                            let s2 = s.clone();
                            s.spawn(async move {
                                // Some of them hop through the queue once more.
                                if i % 3 == 0 {
                                    s2.yield_now().await;
                                }
                                i
                            })
                        })
                        .collect();
                    for (i, h) in hs.into_iter().enumerate() {
                        let got = output_within(h, BOUND);
                        assert_eq!(
                            got,
                            Some(i as u32),
                            "{cfg}: thread {t}, burst {burst}: task {i} was never run"
                        );
                    }
                    if burst % 8 == 0 {
                        // Let the loop go idle and block in its wait.
                        thread::sleep(Duration::from_millis(2));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s2 = s.clone();
    within(BOUND, move || s2.shutdown()).expect("shutdown() never returned");
}
