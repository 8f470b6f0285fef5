//! `when_all`, `try_when_all` and `when_all!`.

mod common;

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use common::{CountingWaker, DropCounter, Gate, poll_once};
use coro_core::{Task, sync_wait, try_when_all, when_all};
use proptest::prelude::*;

#[test]
fn results_in_input_order() {
    let futs = (0..10u32).map(|i| async move { i * i });
    assert_eq!(
        sync_wait(when_all(futs)),
        (0..10).map(|i| i * i).collect::<Vec<_>>()
    );
}

#[test]
fn empty_input_is_ready_with_no_outputs() {
    let mut fut = when_all(Vec::<Task<u8>>::new());
    let waker = CountingWaker::new();
    assert_eq!(poll_once(&mut fut, &waker), Poll::Ready(vec![]));
}

#[test]
fn is_send_when_children_are() {
    fn assert_send<T: Send>(_: &T) {}
    let fut = when_all((0..3).map(|i| async move { i }));
    assert_send(&fut);
    assert_send(&coro_core::when_all!(async { 1 }, async { "x" }));
}

/// 100,000 children become ready one at a time in reverse order; between two
/// wake-ups the parent is polled. Each poll of the parent must poll exactly the
/// woken child: a poll-everything implementation fails at the first step.
#[test]
fn hundred_thousand_children_ready_in_reverse_poll_each_twice() {
    const N: usize = 100_000;
    let gates: Vec<Gate> = (0..N).map(|_| Gate::new()).collect();
    let total = Arc::new(AtomicUsize::new(0));
    let mut fut = when_all(gates.iter().enumerate().map(|(i, g)| {
        let mut wait = g.wait(i);
        let total = total.clone();
        std::future::poll_fn(move |cx| {
            total.fetch_add(1, Ordering::Relaxed);
            Pin::new(&mut wait).poll(cx)
        })
    }));
    let parent = CountingWaker::new();
    assert!(poll_once(&mut fut, &parent).is_pending());
    assert_eq!(
        total.load(Ordering::Relaxed),
        N,
        "the first poll starts every child once"
    );

    for (step, i) in (0..N).rev().enumerate() {
        let before = total.load(Ordering::Relaxed);
        gates[i].open();
        assert_eq!(
            parent.wakes(),
            step + 1,
            "one parent wake per wake-up batch"
        );
        let r = poll_once(&mut fut, &parent);
        assert_eq!(
            total.load(Ordering::Relaxed) - before,
            1,
            "only child {i} is polled"
        );
        assert_eq!(gates[i].polls(), 2);
        match r {
            Poll::Ready(out) => {
                assert_eq!(i, 0, "ready before every child finished");
                assert_eq!(out, (0..N).collect::<Vec<_>>());
            }
            Poll::Pending => assert_ne!(i, 0, "every child done but when_all pending"),
        }
    }
    assert_eq!(total.load(Ordering::Relaxed), 2 * N);
}

/// The same 100,000 children in one run to completion, counting every child
/// poll: each child is polled exactly twice, and the whole run is linear.
#[test]
fn hundred_thousand_children_total_polls_are_linear() {
    const N: usize = 100_000;
    let gates: Vec<Gate> = (0..N).map(|_| Gate::new()).collect();
    let mut fut = when_all(gates.iter().enumerate().map(|(i, g)| g.wait(i)));
    let parent = CountingWaker::new();
    assert!(poll_once(&mut fut, &parent).is_pending());
    let mut result = None;
    for i in (0..N).rev() {
        gates[i].open();
        // Interleave parent polls with wake-ups in batches of 7.
        if i % 7 == 0 {
            if let Poll::Ready(out) = poll_once(&mut fut, &parent) {
                result = Some(out);
            }
        }
    }
    let out = result.expect("ready after the last batch");
    assert_eq!(out, (0..N).collect::<Vec<_>>());
    let total: usize = gates.iter().map(Gate::polls).sum();
    assert_eq!(total, 2 * N, "every child polled exactly twice");
    // One parent wake per batch, never one per child.
    assert!(
        parent.wakes() <= N / 7 + 1,
        "parent woken {} times",
        parent.wakes()
    );
}

#[test]
fn spurious_and_repeated_wakes_poll_the_child_again_but_only_once() {
    let gates: Vec<Gate> = (0..4).map(|_| Gate::new()).collect();
    let mut fut = when_all(gates.iter().map(|g| g.wait(())));
    let parent = CountingWaker::new();
    assert!(poll_once(&mut fut, &parent).is_pending());
    // Woken three times before the parent runs: polled once.
    gates[2].wake_spuriously();
    gates[2].wake_spuriously();
    gates[2].wake_spuriously();
    assert!(poll_once(&mut fut, &parent).is_pending());
    assert_eq!(gates[2].polls(), 2);
    assert_eq!(gates[0].polls(), 1);
    // A parent poll with no wake-up polls nobody.
    assert!(poll_once(&mut fut, &parent).is_pending());
    assert_eq!(gates.iter().map(Gate::polls).sum::<usize>(), 5);
    for g in &gates {
        g.open();
    }
    assert_eq!(poll_once(&mut fut, &parent), Poll::Ready(vec![(); 4]));
}

#[test]
fn child_waking_itself_during_poll_is_polled_again_next_time() {
    let mut fut = when_all(vec![Task::new(async {
        coro_core::yield_now().await;
        coro_core::yield_now().await;
        7
    })]);
    let parent = CountingWaker::new();
    assert!(poll_once(&mut fut, &parent).is_pending());
    assert_eq!(parent.wakes(), 1);
    assert!(poll_once(&mut fut, &parent).is_pending());
    assert_eq!(parent.wakes(), 2);
    assert_eq!(poll_once(&mut fut, &parent), Poll::Ready(vec![7]));
}

#[test]
fn wakes_from_other_threads_under_sync_wait() {
    // Children woken from another thread while sync_wait parks: a wake-up
    // that lands between the parent's drain and its park must not be lost
    // (sync_wait(when_all(..)) hung this way in libcoro#270).
    for round in 0..200 {
        let gates: Vec<Gate> = (0..16).map(|_| Gate::new()).collect();
        let openers: Vec<Gate> = gates.clone();
        let handle = std::thread::spawn(move || {
            for (k, g) in openers.iter().enumerate().rev() {
                while !g.has_waiter() {
                    std::thread::yield_now();
                }
                if k % 3 == 0 {
                    g.wake_spuriously();
                }
                g.open();
            }
        });
        let out = sync_wait(when_all(
            gates.iter().enumerate().map(|(i, g)| g.wait(i + round)),
        ));
        assert_eq!(out, (round..round + 16).collect::<Vec<_>>());
        handle.join().unwrap();
    }
}

#[test]
fn panic_in_a_child_propagates_and_drops_the_others() {
    let drops = DropCounter::new();
    let futs: Vec<Task<u32>> = (0..5)
        .map(|i| {
            let token = drops.token();
            Task::new(async move {
                let _token = token;
                if i == 3 {
                    panic!("child 3 failed");
                }
                std::future::pending::<()>().await;
                i
            })
        })
        .collect();
    let err = catch_unwind(AssertUnwindSafe(|| sync_wait(when_all(futs)))).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"child 3 failed"));
    assert_eq!(drops.count(), 5, "every child dropped exactly once");
}

/// A child that keeps its latest waker in `slot`, panics on poll number
/// `panic_on`, is pending before that and ready with `value` after it (so a
/// parent that survives the panic can still finish it).
struct PanicsOnce {
    polls: usize,
    panic_on: usize,
    value: u32,
    slot: Arc<std::sync::Mutex<Option<std::task::Waker>>>,
}

impl Future for PanicsOnce {
    type Output = u32;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<u32> {
        self.polls += 1;
        *self.slot.lock().unwrap() = Some(cx.waker().clone());
        if self.polls == self.panic_on {
            panic!("child panics once");
        }
        if self.polls > self.panic_on {
            Poll::Ready(self.value)
        } else {
            Poll::Pending
        }
    }
}

fn panics_once(
    panic_on: usize,
    value: u32,
) -> (Task<u32>, Arc<std::sync::Mutex<Option<std::task::Waker>>>) {
    let slot = Arc::new(std::sync::Mutex::new(None));
    let child = PanicsOnce {
        polls: 0,
        panic_on,
        value,
        slot: slot.clone(),
    };
    (Task::new(child), slot)
}

/// Children woken in the same batch as a child that panics are not lost: a
/// parent that catches the panic and polls again still polls them (and is
/// woken to do so), and their later wake-ups still count.
#[test]
fn a_child_panicking_mid_pass_loses_no_other_woken_child() {
    let (panicky, slot) = panics_once(2, 10);
    let gate = Gate::new();
    let mut fut = when_all(vec![panicky, Task::new(gate.wait(20))]);
    let parent = CountingWaker::new();
    assert!(poll_once(&mut fut, &parent).is_pending());
    // Both woken before the parent runs: child 0 first, so it is polled first.
    slot.lock().unwrap().clone().unwrap().wake();
    gate.open();
    assert_eq!(parent.wakes(), 1);
    let err = catch_unwind(AssertUnwindSafe(|| poll_once(&mut fut, &parent))).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"child panics once"));
    assert_eq!(
        gate.polls(),
        1,
        "child 1 was not polled in the panicking pass"
    );
    assert_eq!(
        parent.wakes(),
        2,
        "child 1 still needs a poll, the parent must be told"
    );
    assert!(poll_once(&mut fut, &parent).is_pending());
    assert_eq!(gate.polls(), 2, "child 1 was lost with the panicking pass");
    slot.lock().unwrap().clone().unwrap().wake();
    assert_eq!(poll_once(&mut fut, &parent), Poll::Ready(vec![10, 20]));
}

/// A child that panics during the first pass does not keep the children after
/// it from ever starting.
#[test]
fn a_child_panicking_in_the_first_pass_leaves_the_others_to_start() {
    let (panicky, slot) = panics_once(1, 1);
    let gate = Gate::new();
    let mut fut = when_all(vec![panicky, Task::new(gate.wait(2))]);
    let parent = CountingWaker::new();
    catch_unwind(AssertUnwindSafe(|| poll_once(&mut fut, &parent))).unwrap_err();
    assert_eq!(
        parent.wakes(),
        1,
        "child 1 never started, the parent must be told"
    );
    assert!(poll_once(&mut fut, &parent).is_pending());
    assert_eq!(gate.polls(), 1, "child 1 was never started");
    gate.open();
    slot.lock().unwrap().clone().unwrap().wake();
    assert_eq!(poll_once(&mut fut, &parent), Poll::Ready(vec![1, 2]));
}

#[test]
fn dropping_a_pending_when_all_drops_each_child_once() {
    let drops = DropCounter::new();
    let gates: Vec<Gate> = (0..6).map(|_| Gate::new()).collect();
    let mut fut = when_all(gates.iter().map(|g| {
        let token = drops.token();
        let wait = g.wait(());
        async move {
            let _token = token;
            wait.await;
        }
    }));
    let parent = CountingWaker::new();
    assert!(poll_once(&mut fut, &parent).is_pending());
    gates[1].open();
    assert!(poll_once(&mut fut, &parent).is_pending());
    assert_eq!(drops.count(), 1, "a finished child is dropped at once");
    drop(fut);
    assert_eq!(drops.count(), 6);
}

#[test]
#[should_panic(expected = "polled after it completed")]
fn polling_after_completion_panics() {
    let mut fut = when_all(vec![std::future::ready(1)]);
    let waker = CountingWaker::new();
    assert!(poll_once(&mut fut, &waker).is_ready());
    let _ = poll_once(&mut fut, &waker);
}

#[test]
fn try_when_all_ok_and_first_err_drops_the_rest_at_once() {
    let ok = sync_wait(try_when_all(
        (0..4).map(|i| async move { Ok::<_, String>(i) }),
    ));
    assert_eq!(ok, Ok(vec![0, 1, 2, 3]));

    let drops = DropCounter::new();
    let gates: Vec<Gate> = (0..4).map(|_| Gate::new()).collect();
    let mut fut = try_when_all(gates.iter().enumerate().map(|(i, g)| {
        let token = drops.token();
        let wait = g.wait(());
        async move {
            let _token = token;
            wait.await;
            if i == 2 {
                Err(format!("child {i}"))
            } else {
                Ok(i)
            }
        }
    }));
    let parent = CountingWaker::new();
    assert!(poll_once(&mut fut, &parent).is_pending());
    gates[0].open();
    assert!(poll_once(&mut fut, &parent).is_pending());
    gates[2].open();
    assert_eq!(
        poll_once(&mut fut, &parent),
        Poll::Ready(Err("child 2".to_string()))
    );
    // Before the TryWhenAll itself is dropped: the losers are gone already.
    assert_eq!(drops.count(), 4);
    drop(fut);
    assert_eq!(drops.count(), 4);
}

#[test]
fn tuple_form_joins_heterogeneous_outputs() {
    let (a, b, c) = sync_wait(async {
        coro_core::when_all!(async { 1.5f64 * 1.5 }, async { 10u64 + 10 }, async {
            "three"
        })
        .await
    });
    assert_eq!((a, b, c), (2.25, 20, "three"));
}

#[test]
fn tuple_form_waits_for_every_child_and_drops_finished_ones() {
    let g1 = Gate::new();
    let g2 = Gate::new();
    let drops = DropCounter::new();
    let t1 = drops.token();
    let w1 = g1.wait(1u8);
    let mut fut = Box::pin(coro_core::when_all!(
        async move {
            let _t = t1;
            w1.await
        },
        g2.wait("two"),
        async { 'c' },
    ));
    let parent = CountingWaker::new();
    assert!(poll_once(&mut fut, &parent).is_pending());
    g1.open();
    assert!(poll_once(&mut fut, &parent).is_pending());
    assert_eq!(
        drops.count(),
        1,
        "a finished child's future is dropped at once"
    );
    g2.open();
    assert_eq!(poll_once(&mut fut, &parent), Poll::Ready((1, "two", 'c')));
}

#[test]
fn tuple_form_twelve_children() {
    let out = sync_wait(coro_core::when_all!(
        async { 1 },
        async { 2 },
        async { 3 },
        async { 4 },
        async { 5 },
        async { 6 },
        async { 7 },
        async { 8 },
        async { 9 },
        async { 10 },
        async { 11 },
        async { 12 },
    ));
    assert_eq!(out, (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12));
}

#[test]
fn linear_time_at_100k_completes_quickly() {
    // Not a timing assertion: a deadline far above the linear cost (tens of ms)
    // that a quadratic implementation (10^10 polls) cannot meet.
    let start = std::time::Instant::now();
    let out = sync_wait(when_all((0..100_000u32).map(|i| async move {
        coro_core::yield_now().await;
        i
    })));
    assert_eq!(out.len(), 100_000);
    assert!(start.elapsed() < Duration::from_secs(30));
}

fn is_pending<F: Future + Unpin>(fut: &mut F, w: &std::sync::Arc<CountingWaker>) -> bool {
    poll_once(fut, w).is_pending()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random ready orders, random spurious wakes, random batching of parent
    /// polls: outputs are complete and in input order, no child is polled
    /// unless it was woken.
    #[test]
    fn completes_in_input_order_whatever_the_wake_order(
        order in (1usize..60).prop_flat_map(|n| Just((0..n).collect::<Vec<_>>()).prop_shuffle()),
        spurious in proptest::collection::vec(any::<bool>(), 60),
        batch in proptest::collection::vec(any::<bool>(), 60),
    ) {
        let n = order.len();
        let gates: Vec<Gate> = (0..n).map(|_| Gate::new()).collect();
        let mut fut = when_all(gates.iter().enumerate().map(|(i, g)| g.wait(i * 3)));
        let parent = CountingWaker::new();
        prop_assert!(is_pending(&mut fut, &parent));
        let mut out = None;
        let mut expected_polls = n;
        for (step, &i) in order.iter().enumerate() {
            if spurious[step] {
                gates[i].wake_spuriously();
                prop_assert!(is_pending(&mut fut, &parent));
                expected_polls += 1;
            }
            gates[i].open();
            expected_polls += 1;
            if batch[step] || step + 1 == n {
                if let Poll::Ready(v) = poll_once(&mut fut, &parent) {
                    out = Some(v);
                }
            }
        }
        let out = out.expect("ready after every gate opened");
        prop_assert_eq!(out, (0..n).map(|i| i * 3).collect::<Vec<_>>());
        prop_assert_eq!(gates.iter().map(Gate::polls).sum::<usize>(), expected_polls);
    }

    /// The same with wakes coming from another thread while sync_wait parks.
    #[test]
    fn threaded_wakers_in_random_order(
        order in (1usize..40).prop_flat_map(|n| Just((0..n).collect::<Vec<_>>()).prop_shuffle()),
    ) {
        let n = order.len();
        let gates: Vec<Gate> = (0..n).map(|_| Gate::new()).collect();
        let openers = gates.clone();
        let opener = std::thread::spawn(move || {
            for i in order {
                while !openers[i].has_waiter() {
                    std::thread::yield_now();
                }
                openers[i].open();
            }
        });
        let out = sync_wait(when_all(gates.iter().enumerate().map(|(i, g)| g.wait(i))));
        opener.join().unwrap();
        prop_assert_eq!(out, (0..n).collect::<Vec<_>>());
    }
}

#[test]
fn parent_waker_is_released_when_done() {
    // A finished when_all must not keep its parent's waker (which may own the
    // parent task, which owns the when_all: a leak cycle).
    let gate = Gate::new();
    let mut fut = when_all(vec![gate.wait(1)]);
    let parent = CountingWaker::new();
    assert!(poll_once(&mut fut, &parent).is_pending());
    assert_eq!(Arc::strong_count(&parent), 2, "registered while pending");
    gate.open();
    assert!(poll_once(&mut fut, &parent).is_ready());
    assert_eq!(Arc::strong_count(&parent), 1, "released on completion");

    let gates: Vec<Gate> = (0..3).map(|_| Gate::new()).collect();
    let mut any = coro_core::when_any(gates.iter().map(|g| g.wait(())));
    let parent = CountingWaker::new();
    assert!(poll_once(&mut any, &parent).is_pending());
    gates[1].open();
    assert!(poll_once(&mut any, &parent).is_ready());
    assert_eq!(Arc::strong_count(&parent), 1, "when_any releases it too");
}

#[test]
fn children_may_borrow_locals_declared_after_the_combinator() {
    // Compiles only while dropping the combinator does not use what its
    // children borrow (no `Drop` on a type generic over the children).
    let mut all;
    let mut any;
    let x = 5;
    all = when_all(vec![async { x + 1 }]);
    any = coro_core::when_any(vec![async { x + 2 }]);
    let waker = CountingWaker::new();
    assert_eq!(poll_once(&mut all, &waker), Poll::Ready(vec![6]));
    assert_eq!(poll_once(&mut any, &waker), Poll::Ready((0, 7)));
}

/// A child that keeps a clone of its waker somewhere that does not forget
/// it when the child is dropped (an `AtomicWaker`, another thread).
struct Stashes(Arc<std::sync::Mutex<Option<std::task::Waker>>>);

impl Future for Stashes {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        *self.0.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[test]
fn parent_waker_is_released_when_dropped_while_pending() {
    // Dropped mid-flight (a timeout, a `select!`), the combinator must not
    // keep its parent's waker alive through a child waker left behind.
    let stash = Arc::new(std::sync::Mutex::new(None));
    let parent = CountingWaker::new();
    let mut all = when_all(vec![Stashes(stash.clone())]);
    assert!(poll_once(&mut all, &parent).is_pending());
    drop(all);
    assert!(
        stash.lock().unwrap().is_some(),
        "the child's waker is still out"
    );
    assert_eq!(Arc::strong_count(&parent), 1, "when_all kept it");

    let mut any = coro_core::when_any(vec![Stashes(stash.clone())]);
    assert!(poll_once(&mut any, &parent).is_pending());
    drop(any);
    assert_eq!(Arc::strong_count(&parent), 1, "when_any kept it");

    let mut fallible = coro_core::try_when_all(vec![async {
        Stashes(stash.clone()).await;
        Ok::<(), ()>(())
    }]);
    assert!(poll_once(&mut fallible, &parent).is_pending());
    drop(fallible);
    assert_eq!(Arc::strong_count(&parent), 1, "try_when_all kept it");
    // The late wake reaches nothing.
    stash.lock().unwrap().take().unwrap().wake();
    assert_eq!(parent.wakes(), 0);
}

#[test]
fn concurrent_wakers_on_many_threads_stress() {
    // Wakers racing each other and the parent's drain of the ready list.
    for round in 0..100 {
        let gates: Vec<Gate> = (0..64).map(|_| Gate::new()).collect();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mine: Vec<Gate> = gates.iter().skip(t).step_by(4).cloned().collect();
                std::thread::spawn(move || {
                    for g in &mine {
                        while !g.has_waiter() {
                            std::thread::yield_now();
                        }
                    }
                    for g in mine.iter().rev() {
                        g.wake_spuriously();
                        g.open();
                    }
                })
            })
            .collect();
        let out = sync_wait(when_all(
            gates.iter().enumerate().map(|(i, g)| g.wait(i + round)),
        ));
        assert_eq!(out, (round..round + 64).collect::<Vec<_>>());
        for t in threads {
            t.join().unwrap();
        }
    }
}

/// Children share the awaiting task's budget (`coop`). One that is always
/// ready spends all of it and wakes itself first, so once a poll ran the
/// budget out the others must take turns going first: a child that needs
/// one unit gets it within a poll per child, not after the busy one ends
/// (a lock it was handed would wait that long too).
#[test]
fn a_child_always_ready_does_not_keep_the_others_from_the_budget() {
    use coro_core::coop;
    use std::cell::Cell;
    use std::task::{Context, Waker};

    async fn child(units: usize, done: &Cell<bool>) {
        for _ in 0..units {
            coop::consume_budget().await;
        }
        done.set(true);
    }
    fn polls_until(done: &Cell<bool>, mut fut: Pin<&mut impl Future>) -> usize {
        let mut cx = Context::from_waker(Waker::noop());
        let mut polls = 0;
        while !done.get() && polls < 100 {
            polls += 1;
            let _ = coop::budgeted(|| fut.as_mut().poll(&mut cx));
        }
        polls
    }

    let (busy, quick) = (Cell::new(false), Cell::new(false));
    let all = std::pin::pin!(when_all([child(100_000, &busy), child(1, &quick)]));
    assert!(polls_until(&quick, all) <= 2, "when_all");
    // Three: every place must come first in turn, not only some.
    let (busy, quick) = (Cell::new(false), Cell::new(false));
    let all = std::pin::pin!(when_all([
        child(100_000, &busy),
        child(100_000, &busy),
        child(1, &quick)
    ]));
    assert!(polls_until(&quick, all) <= 3, "when_all of three");

    let (busy, quick) = (Cell::new(false), Cell::new(false));
    let all = std::pin::pin!(coro_core::when_all!(
        child(100_000, &busy),
        child(1, &quick)
    ));
    assert!(polls_until(&quick, all) <= 2, "when_all!");
    let (busy, quick) = (Cell::new(false), Cell::new(false));
    let all = std::pin::pin!(coro_core::when_all!(
        child(100_000, &busy),
        child(100_000, &busy),
        child(1, &quick)
    ));
    assert!(polls_until(&quick, all) <= 3, "when_all! of three");
}

/// A waker whose last reference panics when dropped.
struct DropBomb;

impl std::task::Wake for DropBomb {
    fn wake(self: Arc<Self>) {}
}

impl Drop for DropBomb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("this waker's drop fails");
        }
    }
}

/// Polled with a new waker, `when_all` drops the old one; if that drop
/// panics, the children woken meanwhile must not be lost with the pass
/// (their `queued` flags set, they would ignore every later wake-up).
#[test]
fn an_old_parent_waker_panicking_on_drop_strands_no_woken_child() {
    let (g1, g2) = (Gate::new(), Gate::new());
    let mut fut = when_all(vec![Task::new(g1.wait(1)), Task::new(g2.wait(2))]);
    {
        let w = std::task::Waker::from(Arc::new(DropBomb));
        let mut cx = std::task::Context::from_waker(&w);
        assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
    } // `when_all` holds the waker's only reference now
    g1.open();
    g2.open();
    let parent = CountingWaker::new();
    let err = catch_unwind(AssertUnwindSafe(|| poll_once(&mut fut, &parent))).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"this waker's drop fails"));
    assert_eq!(
        parent.wakes(),
        1,
        "the children put back need a poll: the parent must be told"
    );
    assert_eq!(poll_once(&mut fut, &parent), Poll::Ready(vec![1, 2]));
}

/// A child whose destructor panics as it is dropped after finishing loses
/// its output, but a parent that catches the panic and polls again is not
/// left waiting for it: the child was counted done before its drop.
#[test]
fn a_child_panicking_in_its_destructor_after_ready_does_not_hang_a_repoll() {
    struct PanicsOnDrop(i32);
    impl Future for PanicsOnDrop {
        type Output = i32;
        fn poll(self: Pin<&mut Self>, _: &mut std::task::Context<'_>) -> Poll<i32> {
            Poll::Ready(self.0)
        }
    }
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                panic!("child destructor panics");
            }
        }
    }
    let gate = Gate::new();
    let mut fut = when_all(vec![Task::new(gate.wait(20)), Task::new(PanicsOnDrop(10))]);
    let parent = CountingWaker::new();
    let err = catch_unwind(AssertUnwindSafe(|| poll_once(&mut fut, &parent))).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"child destructor panics"));
    gate.open();
    assert!(parent.wakes() >= 1, "the parent was not told to poll again");
    let again = catch_unwind(AssertUnwindSafe(|| poll_once(&mut fut, &parent)));
    assert!(
        !matches!(again, Ok(Poll::Pending)),
        "a repoll waits for ever for the child whose destructor panicked"
    );
}
