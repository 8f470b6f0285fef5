//! `TaskGroup` on every driver configuration: a group dropped while its
//! members run, a panicking member, `abort_all` next to a finished
//! member, and `join_next` raced against timeouts.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use coro_io::TaskGroup;
use coro_io::testing::Config;

/// Generous bound for "this must not hang"; only reached on a bug.
const HANG: Duration = Duration::from_secs(60);

/// Counts its drops.
struct Dropped(Arc<AtomicUsize>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// `sync_wait` on a helper thread, failing the test instead of hanging.
fn wait_bounded<F>(fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(coro_core::sync_wait(fut));
    });
    rx.recv_timeout(HANG).expect("did not finish: hang")
}

/// Wait until `n` reaches `want`, failing the test after [`HANG`].
fn wait_for_count(n: &AtomicUsize, want: usize, what: &str) {
    let t0 = Instant::now();
    while n.load(Ordering::SeqCst) != want {
        assert!(
            t0.elapsed() < HANG,
            "{what}: {} of {want}",
            n.load(Ordering::SeqCst)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Dropping the group cancels every member still running: each member's
/// future is dropped (its destructors run), without waiting for the
/// scheduler's shutdown.
fn dropping_the_group_cancels_every_member(cfg: Config) {
    let s = cfg.sched();
    let started = Arc::new(AtomicUsize::new(0));
    let drops = Arc::new(AtomicUsize::new(0));
    let mut g = TaskGroup::new(&s);
    for _ in 0..8 {
        let d = Dropped(drops.clone());
        let started = started.clone();
        g.spawn(async move {
            let _d = d;
            started.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<()>().await
        });
    }
    wait_for_count(&started, 8, "members started");
    drop(g);
    wait_for_count(&drops, 8, "members dropped after the group");
    s.shutdown();
}

/// A member that panics joins as a panic (with its payload); the others
/// are not disturbed and join with their values.
fn a_panicking_member_joins_as_a_panic_and_the_others_still_finish(cfg: Config) {
    let s = cfg.sched();
    let mut g = TaskGroup::new(&s);
    for i in 0..6u32 {
        g.spawn(async move {
            coro_io::sleep(Duration::from_millis(u64::from(i))).await;
            if i == 3 {
                panic!("member {i} panics");
            }
            i
        });
    }
    let results = wait_bounded(g.join_all());
    assert_eq!(results.len(), 6);
    let mut values = Vec::new();
    let mut panics = 0;
    for r in results {
        match r {
            Ok(v) => values.push(v),
            Err(e) => {
                assert!(e.is_panic(), "{e:?}");
                let payload = e.into_panic();
                assert_eq!(
                    payload.downcast_ref::<String>().map(String::as_str),
                    Some("member 3 panics")
                );
                panics += 1;
            }
        }
    }
    values.sort_unstable();
    assert_eq!(values, [0, 1, 2, 4, 5]);
    assert_eq!(panics, 1);
    s.shutdown();
}

/// `abort_all` cancels what still runs; a member that had finished keeps
/// its output (as `JoinHandle::abort` on a finished task does).
fn abort_all_cancels_the_running_and_keeps_the_finished(cfg: Config) {
    let s = cfg.sched();
    let mut g = TaskGroup::new(&s);
    let finished = Arc::new(AtomicUsize::new(0));
    let f = finished.clone();
    g.spawn(async move {
        f.fetch_add(1, Ordering::SeqCst);
        1u32
    });
    let drops = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let d = Dropped(drops.clone());
        g.spawn(async move {
            let _d = d;
            std::future::pending::<u32>().await
        });
    }
    wait_for_count(&finished, 1, "the quick member");
    // Its output is stored a moment (microseconds) after its body
    // returned; an abort inside that moment reports it cancelled.
    std::thread::sleep(Duration::from_millis(300));
    g.abort_all();
    let results = wait_bounded(g.join_all());
    let ok: Vec<u32> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    assert_eq!(ok, [1], "{results:?}");
    assert_eq!(
        results
            .iter()
            .filter(|r| r.as_ref().is_err_and(|e| e.is_cancelled()))
            .count(),
        3,
        "{results:?}"
    );
    assert_eq!(drops.load(Ordering::SeqCst), 3);
    s.shutdown();
}

/// `join_next` is cancel safe: raced against short timeouts over and over
/// (many of its polls dropped while members finish on other threads),
/// every member's result still arrives exactly once.
fn join_next_raced_against_timeouts_loses_no_result(cfg: Config) {
    let s = cfg.sched();
    let mut g = TaskGroup::new(&s);
    const N: u64 = 64;
    for i in 0..N {
        g.spawn(async move {
            coro_io::sleep(Duration::from_micros((i * 37) % 3000)).await;
            i
        });
    }
    let collector = s.spawn(async move {
        let mut got = Vec::new();
        let mut timeouts = 0u32;
        loop {
            match coro_io::timeout(Duration::from_micros(200), g.join_next()).await {
                Ok(Some(r)) => got.push(r.unwrap()),
                Ok(None) => break,
                Err(_) => timeouts += 1,
            }
        }
        (got, timeouts)
    });
    let (mut got, _timeouts) = wait_bounded(collector).unwrap();
    got.sort_unstable();
    assert_eq!(got, (0..N).collect::<Vec<_>>());
    s.shutdown();
}

coro_io::driver_tests!(
    dropping_the_group_cancels_every_member,
    a_panicking_member_joins_as_a_panic_and_the_others_still_finish,
    abort_all_cancels_the_running_and_keeps_the_finished,
    join_next_raced_against_timeouts_loses_no_result,
);
