//! `sync_wait`: blocking, cross-thread wakes, nesting.

mod common;

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};

use common::Gate;
use coro_core::{Task, sync_wait, when_all};

#[test]
fn ready_future_returns_its_output() {
    assert_eq!(sync_wait(async { 5u64 + 5 }), 10);
    assert_eq!(sync_wait(std::future::ready("x")), "x");
}

#[test]
fn accepts_into_future() {
    struct Later;
    impl std::future::IntoFuture for Later {
        type Output = u8;
        type IntoFuture = std::future::Ready<u8>;
        fn into_future(self) -> Self::IntoFuture {
            std::future::ready(3)
        }
    }
    assert_eq!(sync_wait(Later), 3);
}

#[test]
fn parks_until_another_thread_wakes() {
    for i in 0..200 {
        let gate = Gate::new();
        let opener = gate.clone();
        let t = std::thread::spawn(move || {
            while !opener.has_waiter() {
                std::thread::yield_now();
            }
            opener.open();
        });
        assert_eq!(sync_wait(gate.wait(i)), i);
        t.join().unwrap();
        assert_eq!(gate.polls(), 2, "no extra polls without a wake");
    }
}

#[test]
fn many_wakes_from_many_threads() {
    let gates: Vec<Gate> = (0..64).map(|_| Gate::new()).collect();
    let threads: Vec<_> = gates
        .iter()
        .cloned()
        .map(|g| {
            std::thread::spawn(move || {
                while !g.has_waiter() {
                    std::thread::yield_now();
                }
                g.wake_spuriously();
                g.open();
            })
        })
        .collect();
    let out = sync_wait(when_all(gates.iter().map(|g| g.wait(1u32))));
    assert_eq!(out.iter().sum::<u32>(), 64);
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn nested_sync_wait_panics_clearly_instead_of_deadlocking() {
    let err = catch_unwind(AssertUnwindSafe(|| {
        sync_wait(async {
            // This inner call would park the only thread that drives the outer future.
            sync_wait(async { 1 })
        })
    }))
    .unwrap_err();
    let msg = err.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(
        msg.contains("sync_wait called from inside a future"),
        "{msg}"
    );
    // The thread is usable again afterwards.
    assert_eq!(sync_wait(async { 2 }), 2);
}

#[test]
fn sync_wait_on_another_thread_from_inside_a_future_is_fine() {
    let out = sync_wait(async {
        std::thread::spawn(|| sync_wait(async { 21 * 2 }))
            .join()
            .unwrap()
    });
    assert_eq!(out, 42);
}

#[test]
fn panic_in_the_future_propagates_and_leaves_the_thread_usable() {
    let err = catch_unwind(|| sync_wait(async { panic!("inner failure") })).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"inner failure"));
    assert_eq!(sync_wait(Task::new(async { 9 })), 9);
}

#[test]
fn stale_waker_from_an_earlier_call_does_not_break_the_next_one() {
    let gate = Gate::new();
    let g = gate.clone();
    // First call leaves a clone of this thread's waker in `g` via a pending child.
    let mut pending = Some(Box::pin(g.wait(())));
    sync_wait(std::future::poll_fn(|cx| {
        let _ = pending.as_mut().unwrap().as_mut().poll(cx);
        std::task::Poll::Ready(())
    }));
    gate.open(); // wakes the stale waker: just sets the flag
    assert_eq!(sync_wait(async { 1 }), 1);
    let other = Gate::new();
    let o = other.clone();
    let t = std::thread::spawn(move || {
        while !o.has_waiter() {
            std::thread::yield_now();
        }
        o.open();
    });
    sync_wait(other.wait(()));
    t.join().unwrap();
}

const TLS_CHILD_ENV: &str = "CORO_SYNC_WAIT_TLS_CHILD";

/// `sync_wait` in a thread-local's destructor that runs after
/// `sync_wait`'s own thread-local was destroyed (it was made later, so it
/// goes first): it panicked there, which aborts the process. A value that
/// flushes on drop with `sync_wait` is a plausible thread-local. Run in a
/// child process (an abort would take the test binary down).
#[test]
fn sync_wait_works_in_a_thread_local_destructor() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "sync_wait_in_a_thread_local_child",
            "--nocapture",
        ])
        .env(TLS_CHILD_ENV, "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the child failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("flushed 7"));
}

#[test]
#[ignore = "run by sync_wait_works_in_a_thread_local_destructor"]
fn sync_wait_in_a_thread_local_child() {
    if std::env::var_os(TLS_CHILD_ENV).is_none() {
        return;
    }
    struct Flush;
    impl Drop for Flush {
        fn drop(&mut self) {
            // A wait that really parks: woken from another thread.
            let (tx, rx) = futures::channel::oneshot::channel();
            let t = std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                tx.send(7).unwrap();
            });
            let v = sync_wait(rx).unwrap();
            t.join().unwrap();
            println!("flushed {v}");
        }
    }
    thread_local! {
        static F: Flush = const { Flush };
    }
    std::thread::spawn(|| {
        F.with(|_| {}); // registered first, destroyed last
        sync_wait(async {}); // sync_wait's own, destroyed first
    })
    .join()
    .unwrap();
}
