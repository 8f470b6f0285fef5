//! `Generator` and `AsyncGenerator`.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use common::{CountingWaker, DropCounter, Gate};
use coro_core::{AsyncGenerator, Generator, Yielder, sync_wait};
use futures_core::Stream;

fn naturals() -> Generator<u64> {
    Generator::new(|y: Yielder<u64>| async move {
        let mut i = 0;
        loop {
            y.yield_(i).await;
            i += 1;
        }
    })
}

#[test]
fn yields_in_order_and_stops_with_the_body() {
    let g = Generator::new(|y| async move {
        for i in 0..5 {
            y.yield_(i).await;
        }
    });
    assert_eq!(g.collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    assert_eq!(naturals().take_while(|&v| v <= 100).count(), 101);
}

#[test]
fn empty_body_yields_nothing_and_stays_finished() {
    let mut g = Generator::<u8>::new(|_y| async move {});
    assert_eq!(g.next(), None);
    assert_eq!(g.next(), None);
}

#[test]
fn body_is_lazy() {
    let started = Arc::new(AtomicBool::new(false));
    let s = started.clone();
    let mut g = Generator::new(move |y| async move {
        s.store(true, Ordering::SeqCst);
        y.yield_(1).await;
    });
    assert!(!started.load(Ordering::SeqCst));
    assert_eq!(g.next(), Some(1));
    assert!(started.load(Ordering::SeqCst));
}

#[test]
fn awaiting_something_else_panics_with_a_clear_message() {
    let mut g = Generator::new(|y| async move {
        y.yield_(1).await;
        coro_core::yield_now().await; // misuse: not a yield_
        y.yield_(2).await;
    });
    assert_eq!(g.next(), Some(1));
    let err = catch_unwind(AssertUnwindSafe(|| g.next())).unwrap_err();
    let msg = err.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(
        msg.contains("awaited a future other than `Yielder::yield_`"),
        "{msg}"
    );
    assert_eq!(g.next(), None, "finished after the misuse");
}

#[test]
fn awaiting_a_never_ready_future_panics_instead_of_hanging() {
    let mut g = Generator::<u8>::new(|_y| async move {
        std::future::pending::<()>().await;
    });
    assert!(catch_unwind(AssertUnwindSafe(|| g.next())).is_err());
}

#[test]
fn two_pending_yields_at_once_panic() {
    let mut g = Generator::new(|y| async move {
        coro_core::when_all!(y.yield_(1), y.yield_(2)).await;
    });
    let err = catch_unwind(AssertUnwindSafe(|| g.next())).unwrap_err();
    let msg = err.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(msg.contains("pending at once"), "{msg}");
}

#[test]
fn body_panic_propagates_then_generator_is_finished() {
    let mut g = Generator::new(|y| async move {
        y.yield_(1).await;
        panic!("body failed");
    });
    assert_eq!(g.next(), Some(1));
    let err = catch_unwind(AssertUnwindSafe(|| g.next())).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"body failed"));
    assert_eq!(g.next(), None);
}

#[test]
fn dropping_a_suspended_generator_drops_the_body_and_unconsumed_values() {
    let drops = DropCounter::new();
    let token = drops.token();
    let mut g = Generator::new(move |y| async move {
        let _token = token;
        y.yield_(1).await;
        y.yield_(2).await;
    });
    assert_eq!(g.next(), Some(1));
    drop(g);
    assert_eq!(drops.count(), 1);
}

#[test]
fn generator_is_send() {
    fn assert_send<T: Send>(_: T) {}
    assert_send(naturals());
    let g = naturals();
    let sum: u64 = std::thread::spawn(move || g.take(10).sum()).join().unwrap();
    assert_eq!(sum, 45);
}

#[test]
fn async_generator_awaits_other_futures() {
    let gate = Gate::new();
    let wait = gate.wait(100u32);
    let mut g = AsyncGenerator::new(move |y| async move {
        y.yield_(1).await;
        let v = wait.await;
        y.yield_(v).await;
    });
    let waker = CountingWaker::new();
    let w = std::task::Waker::from(waker.clone());
    let mut cx = std::task::Context::from_waker(&w);
    assert_eq!(Pin::new(&mut g).poll_next(&mut cx), Poll::Ready(Some(1)));
    assert_eq!(Pin::new(&mut g).poll_next(&mut cx), Poll::Pending);
    let before = waker.wakes();
    gate.open();
    assert_eq!(
        waker.wakes(),
        before + 1,
        "the body's future woke the consumer"
    );
    assert_eq!(Pin::new(&mut g).poll_next(&mut cx), Poll::Ready(Some(100)));
    assert_eq!(Pin::new(&mut g).poll_next(&mut cx), Poll::Ready(None));
    assert_eq!(Pin::new(&mut g).poll_next(&mut cx), Poll::Ready(None));
}

#[test]
fn async_generator_under_futures_executor_with_cross_thread_wakes() {
    let gates: Vec<Gate> = (0..20).map(|_| Gate::new()).collect();
    let waits: Vec<_> = gates.iter().enumerate().map(|(i, g)| g.wait(i)).collect();
    let g = AsyncGenerator::new(move |y| async move {
        for w in waits {
            let v = w.await;
            y.yield_(v).await;
        }
    });
    let opener = std::thread::spawn(move || {
        for g in gates {
            while !g.has_waiter() {
                std::thread::yield_now();
            }
            g.open();
        }
    });
    let items: Vec<usize> = futures::executor::block_on_stream(g).collect();
    opener.join().unwrap();
    assert_eq!(items, (0..20).collect::<Vec<_>>());
}

#[test]
fn async_generator_in_tokio_task() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let out = rt.block_on(async {
        tokio::spawn(async {
            use futures::StreamExt;
            let g = AsyncGenerator::new(|y| async move {
                for i in 0..10u32 {
                    tokio::task::yield_now().await;
                    y.yield_(i).await;
                }
            });
            g.collect::<Vec<_>>().await
        })
        .await
        .unwrap()
    });
    assert_eq!(out, (0..10).collect::<Vec<_>>());
}

#[test]
fn generator_inside_sync_wait_like_libcoro_example() {
    let printed = sync_wait(async {
        let mut out = Vec::new();
        for v in naturals() {
            out.push(v);
            if v >= 100 {
                break;
            }
        }
        out
    });
    assert_eq!(printed, (0..=100).collect::<Vec<_>>());
}

#[test]
fn nested_generators_keep_their_values_apart() {
    let outer = Generator::new(|y: Yielder<String>| async move {
        let inner = Generator::new(|z: Yielder<u32>| async move {
            for i in 0..3 {
                z.yield_(i).await;
            }
        });
        for v in inner {
            y.yield_(format!("v{v}")).await;
            // A fresh generator iterated while the outer one is suspended mid-body.
            let again: Vec<u32> =
                Generator::new(|w| async move { w.yield_(v * 10).await }).collect();
            y.yield_(format!("{again:?}")).await;
        }
    });
    assert_eq!(
        outer.collect::<Vec<_>>(),
        ["v0", "[0]", "v1", "[10]", "v2", "[20]"]
    );
}

#[test]
fn yielding_through_another_generators_yielder_panics() {
    let mut outer = Generator::new(|y: Yielder<u32>| async move {
        let y = std::sync::Arc::new(y);
        let y2 = y.clone();
        // The inner body awaits the OUTER yielder: a misuse.
        let mut inner = Generator::new(move |_z: Yielder<u32>| async move {
            y2.yield_(1).await;
        });
        let _ = inner.next();
        y.yield_(2).await;
    });
    let err = catch_unwind(AssertUnwindSafe(|| outer.next())).unwrap_err();
    let msg = err.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(msg.contains("outside its own generator's body"), "{msg}");
}

#[test]
fn yield_polled_outside_any_generator_panics() {
    let g = Generator::new(|y: Yielder<u8>| async move {
        y.yield_(0).await;
    });
    drop(g);
    let (tx, rx) = std::sync::mpsc::channel();
    let mut g = Generator::new(move |y: Yielder<u8>| async move {
        tx.send(y).unwrap();
    });
    assert_eq!(g.next(), None);
    let y = rx.recv().unwrap();
    let err = catch_unwind(AssertUnwindSafe(|| sync_wait(y.yield_(5)))).unwrap_err();
    let msg = err.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(msg.contains("outside its own generator's body"), "{msg}");
}

#[test]
fn a_yield_inside_a_combinator_of_the_body_is_resumed() {
    // `when_all` polls a child again only once it woke: a pending `yield_`
    // must wake, or the next `next()` finds the body waiting on nothing.
    let mut g = Generator::new(|y: Yielder<u32>| async move {
        coro_core::when_all(std::iter::once(y.yield_(1))).await;
        y.yield_(2).await;
    });
    assert_eq!(g.next(), Some(1));
    assert_eq!(g.next(), Some(2));
    assert_eq!(g.next(), None);
    let mut g = AsyncGenerator::new(|y: Yielder<u32>| async move {
        coro_core::when_all(std::iter::once(y.yield_(1))).await;
        y.yield_(2).await;
    });
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert_eq!(Pin::new(&mut g).poll_next(&mut cx), Poll::Ready(Some(1)));
    assert_eq!(Pin::new(&mut g).poll_next(&mut cx), Poll::Ready(Some(2)));
    assert_eq!(Pin::new(&mut g).poll_next(&mut cx), Poll::Ready(None));
}

#[test]
fn next_is_not_cut_short_by_the_callers_spent_budget() {
    use coro_core::coop;
    coop::budgeted(|| {
        for _ in 0..coop::BUDGET {
            coop::consume();
        }
        // A body whose always-ready step counts against a budget (as a
        // lock or a queued value does): `next` waits for the body, like
        // `sync_wait`, so the caller's spent budget does not apply.
        let mut g = Generator::new(|y: Yielder<u8>| async move {
            coop::consume_budget().await;
            y.yield_(1).await;
        });
        assert_eq!(g.next(), Some(1));
        assert_eq!(g.next(), None);
    });
}

#[test]
fn a_value_yielded_as_the_body_ends_is_not_lost() {
    let mut g = Generator::new(|y: Yielder<u32>| async move {
        // The `yield_` stores its value; the other branch ends the race
        // and with it the body, in the same poll.
        coro_core::when_any!(y.yield_(1), async {}).await;
    });
    assert_eq!(g.by_ref().collect::<Vec<_>>(), [1]);
    assert_eq!(g.next(), None);
    let mut g = AsyncGenerator::new(|y: Yielder<u32>| async move {
        coro_core::when_any!(y.yield_(1), async {}).await;
    });
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert_eq!(Pin::new(&mut g).poll_next(&mut cx), Poll::Ready(Some(1)));
    assert_eq!(Pin::new(&mut g).poll_next(&mut cx), Poll::Ready(None));
}
