//! Signals: deliveries reach every listener, coalesce, are not lost while
//! nobody polls, end with the scheduler; bad signals are clear errors. On
//! every configuration. Signals are process-wide, so each test uses its
//! own signal where it can and only counts on "at least one delivery after
//! the listener was made".

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use coro_core::sync_wait;
use coro_io::signal::{self, Signal, SignalKind};
use coro_io::testing::Config;

coro_io::driver_tests!(
    every_listener_sees_a_delivery,
    deliveries_coalesce_and_wait_for_the_next_poll,
    ctrl_c_and_any_of_complete,
    ctrl_c_made_outside_a_task_listens_in_the_task_that_awaits_it,
    listener_ends_with_its_scheduler,
);

const BOUND: Duration = Duration::from_secs(10);

fn raise(kind: SignalKind) {
    rustix::process::kill_process(
        rustix::process::getpid(),
        rustix::process::Signal::from_named_raw(kind.as_raw_value()).unwrap(),
    )
    .unwrap();
}

/// Raise `kind` from another thread after `after`.
fn raise_later(kind: SignalKind, after: Duration) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        thread::sleep(after);
        raise(kind);
    })
}

/// A delivery always waiting (a flood) does not keep the receiving task
/// from yielding: receives count against its budget, as ops do. (It never
/// yielded: an Inline loop froze for as long as the flood lasted.)
#[test]
fn a_flood_of_signals_lets_the_receiving_task_yield() {
    let s = Config::EPOLL.sched();
    let h = s.spawn(async {
        let mut sig = signal::signal(SignalKind::user_defined2()).unwrap();
        let mut flood = std::pin::pin!(async move {
            for _ in 0..300 {
                // To this thread: the handler has counted it when `raise`
                // returns, so the next receive is ready at once.
                // SAFETY: `raise` has no memory-safety preconditions.
                assert_eq!(unsafe { libc::raise(libc::SIGUSR2) }, 0);
                assert_eq!(sig.recv().await, Some(()));
            }
        });
        let mut polls = 0;
        std::future::poll_fn(|cx| {
            polls += 1;
            flood.as_mut().poll(cx)
        })
        .await;
        polls
    });
    let polls = sync_wait(h).unwrap();
    assert!(polls >= 3, "300 receives in {polls} poll(s)");
    s.shutdown();
}

fn every_listener_sees_a_delivery(cfg: Config) {
    let s = cfg.sched();
    let h = s.spawn(async {
        let mut a = signal::signal(SignalKind::user_defined1()).unwrap();
        let mut b = signal::signal(SignalKind::user_defined1()).unwrap();
        let t = raise_later(SignalKind::user_defined1(), Duration::from_millis(20));
        let got = coro_io::timeout(BOUND, async { (a.recv().await, b.recv().await) }).await;
        t.join().unwrap();
        got
    });
    let got = sync_wait(h).unwrap().expect("a listener never saw SIGUSR1");
    assert_eq!(got, (Some(()), Some(())));
    s.shutdown();
}

fn deliveries_coalesce_and_wait_for_the_next_poll(cfg: Config) {
    let s = cfg.sched();
    let h = s.spawn(async {
        let mut sig = signal::signal(SignalKind::user_defined2()).unwrap();
        // Delivered while nobody polls: kept, and two become one.
        raise(SignalKind::user_defined2());
        raise(SignalKind::user_defined2());
        let first = coro_io::timeout(BOUND, sig.recv()).await;
        assert_eq!(
            first,
            Ok(Some(())),
            "a delivery made before the poll was lost"
        );
        // Another test of this process may raise SIGUSR2 too; a new one
        // from us must be seen.
        let t = raise_later(SignalKind::user_defined2(), Duration::from_millis(10));
        let next = coro_io::timeout(BOUND, sig.recv()).await;
        t.join().unwrap();
        assert_eq!(next, Ok(Some(())));
    });
    sync_wait(h).unwrap();
    s.shutdown();
}

fn ctrl_c_and_any_of_complete(cfg: Config) {
    let s = cfg.sched();
    let h = s.spawn(async {
        // Installed when called, so the SIGINT below cannot kill us.
        let c = signal::ctrl_c();
        let t = raise_later(SignalKind::interrupt(), Duration::from_millis(10));
        coro_io::timeout(BOUND, c)
            .await
            .expect("ctrl_c never completed")
            .unwrap();
        t.join().unwrap();
        let either = signal::any_of(&[SignalKind::interrupt(), SignalKind::terminate()]);
        let t = raise_later(SignalKind::terminate(), Duration::from_millis(10));
        let got = coro_io::timeout(BOUND, either)
            .await
            .expect("any_of never completed");
        t.join().unwrap();
        // SIGINT from a parallel test of this process may win the race.
        assert!(matches!(
            got.unwrap(),
            k if k == SignalKind::terminate() || k == SignalKind::interrupt()
        ));
    });
    sync_wait(h).unwrap();
    s.shutdown();
}

/// `ctrl_c()` called outside any task and awaited in one, as tokio's
/// `async fn` allows: it listens on the awaiting task's scheduler. It
/// panicked, saying it "must be awaited in a task", which it was.
fn ctrl_c_made_outside_a_task_listens_in_the_task_that_awaits_it(cfg: Config) {
    let s = cfg.sched();
    // The handler first, so that no SIGINT below can end the process.
    let _installed = Signal::new(&s, SignalKind::interrupt()).unwrap();
    let stop = signal::ctrl_c();
    let h = s.spawn(async move { coro_io::timeout(BOUND, stop).await });
    // It listens from its first poll on: raise until it is seen (bounded).
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d = done.clone();
    let t = thread::spawn(move || {
        for _ in 0..200 {
            if d.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            raise(SignalKind::interrupt());
            thread::sleep(Duration::from_millis(50));
        }
    });
    let got = sync_wait(h);
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    t.join().unwrap();
    match got {
        Ok(Ok(Ok(()))) => {}
        Ok(other) => panic!("{cfg}: {other:?}"),
        Err(e) => panic!("{cfg}: the task failed: {e}"),
    }
    s.shutdown();
}

#[test]
fn bad_signals_are_clear_errors() {
    let s = Config::EPOLL.sched();
    for bad in [0, -1, 99, libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV] {
        let e = Signal::new(&s, SignalKind::from_raw(bad)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{bad}: {e}");
    }
    s.shutdown();
}

/// A listener whose scheduler shut down ends (`None`) instead of waiting
/// forever (on every configuration: a pool's and a `Manual` scheduler's
/// shutdowns take other paths).
fn listener_ends_with_its_scheduler(cfg: Config) {
    {
        let s = cfg.sched();
        let mut sig = Signal::new(&s, SignalKind::window_change()).unwrap();
        s.shutdown();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            // Twice: an ended stream stays ended (a `select!` loop polls
            // it again), it does not poll its spent wait again and panic.
            let first = sync_wait(sig.recv());
            let _ = tx.send((first, sync_wait(sig.recv())));
        });
        assert_eq!(rx.recv_timeout(BOUND), Ok((None, None)), "{cfg}");
    }
}

#[test]
#[should_panic(expected = "must be called from a task of an IoScheduler")]
fn signal_outside_a_scheduler_panics_clearly() {
    let _ = signal::signal(SignalKind::hangup());
}
