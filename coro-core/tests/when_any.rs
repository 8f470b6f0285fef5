//! `when_any` and `when_any!`.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::task::Poll;

use common::{CountingWaker, DropCounter, Gate, poll_once};
use coro_core::{Task, sync_wait, when_any};

#[test]
fn first_ready_in_input_order_wins_and_later_children_never_start() {
    let gates: Vec<Gate> = (0..4).map(|_| Gate::new()).collect();
    gates[1].open();
    gates[2].open();
    let out = sync_wait(when_any(
        gates.iter().enumerate().map(|(i, g)| g.wait(i as i64)),
    ));
    assert_eq!(out, (1, 1));
    assert_eq!(
        gates[3].polls(),
        0,
        "children after the winner are not started"
    );
    assert_eq!(gates[2].polls(), 0);
}

#[test]
fn the_woken_child_wins() {
    let gates: Vec<Gate> = (0..5).map(|_| Gate::new()).collect();
    let mut fut = when_any(gates.iter().enumerate().map(|(i, g)| g.wait(i * 10)));
    let parent = CountingWaker::new();
    assert!(poll_once(&mut fut, &parent).is_pending());
    gates[3].open();
    assert_eq!(poll_once(&mut fut, &parent), Poll::Ready((3, 30)));
    assert_eq!(gates[0].polls(), 1, "losers are not polled again");
}

#[test]
fn every_loser_is_dropped_exactly_once_before_the_result_is_returned() {
    const N: usize = 8;
    let counters: Vec<DropCounter> = (0..N).map(|_| DropCounter::new()).collect();
    let gates: Vec<Gate> = (0..N).map(|_| Gate::new()).collect();
    let mut fut = when_any(gates.iter().zip(&counters).map(|(g, c)| {
        let token = c.token();
        let wait = g.wait(());
        async move {
            let _token = token;
            wait.await;
        }
    }));
    let parent = CountingWaker::new();
    assert!(poll_once(&mut fut, &parent).is_pending());
    gates[5].open();
    gates[2].open(); // woken second: loses
    assert_eq!(poll_once(&mut fut, &parent), Poll::Ready((5, ())));
    for (i, c) in counters.iter().enumerate() {
        assert_eq!(
            c.count(),
            1,
            "child {i} dropped once, before WhenAny itself"
        );
    }
    drop(fut);
    for c in &counters {
        assert_eq!(c.count(), 1, "no double drop");
    }
}

#[test]
fn dropping_a_pending_when_any_drops_every_child_once() {
    let drops = DropCounter::new();
    let fut = when_any((0..4).map(|_| {
        let token = drops.token();
        Task::new(async move {
            let _token = token;
            std::future::pending::<()>().await;
        })
    }));
    let mut fut = fut;
    let parent = CountingWaker::new();
    assert!(poll_once(&mut fut, &parent).is_pending());
    drop(fut);
    assert_eq!(drops.count(), 4);
}

#[test]
fn empty_input_panics_with_a_clear_message() {
    let err = catch_unwind(|| when_any(Vec::<Task<u8>>::new())).unwrap_err();
    let msg = err.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(msg.contains("when_any called with no futures"), "{msg}");
}

#[test]
fn panic_in_a_child_propagates_and_drops_the_others() {
    let drops = DropCounter::new();
    let futs: Vec<Task<u8>> = (0..3)
        .map(|i| {
            let token = drops.token();
            Task::new(async move {
                let _token = token;
                coro_core::yield_now().await;
                if i == 1 {
                    panic!("boom in child 1");
                }
                std::future::pending::<()>().await;
                i
            })
        })
        .collect();
    let err = catch_unwind(AssertUnwindSafe(|| sync_wait(when_any(futs)))).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"boom in child 1"));
    assert_eq!(drops.count(), 3);
}

#[test]
fn wake_from_another_thread() {
    for _ in 0..100 {
        let gates: Vec<Gate> = (0..8).map(|_| Gate::new()).collect();
        let g = gates[6].clone();
        let opener = std::thread::spawn(move || {
            while !g.has_waiter() {
                std::thread::yield_now();
            }
            g.open();
        });
        assert_eq!(
            sync_wait(when_any(gates.iter().map(|g| g.wait(7u8)))),
            (6, 7)
        );
        opener.join().unwrap();
    }
}

#[test]
fn tuple_form_returns_index_and_drops_losers_with_the_future() {
    let drops = DropCounter::new();
    let token = drops.token();
    let g = Gate::new();
    let loser = async move {
        let _token = token;
        std::future::pending::<i64>().await
    };
    let mut fut = Box::pin(coro_core::when_any!(loser, g.wait(-1i64), async { 5i64 }));
    let parent = CountingWaker::new();
    // The third child is ready at once; it is polled after the pending two.
    assert_eq!(poll_once(&mut fut, &parent), Poll::Ready((2, 5)));
    assert_eq!(drops.count(), 0);
    drop(fut);
    assert_eq!(drops.count(), 1);
}

#[test]
fn tuple_form_earlier_child_wins_a_tie() {
    let out = sync_wait(coro_core::when_any!(async { 'a' }, async { 'b' }));
    assert_eq!(out, (0, 'a'));
}

#[test]
fn a_child_that_always_wakes_itself_does_not_starve_the_others() {
    let gate = Gate::new();
    let opener = gate.clone();
    let t = std::thread::spawn(move || {
        while !opener.has_waiter() {
            std::thread::yield_now();
        }
        opener.open();
    });
    let busy = Task::new(async {
        loop {
            coro_core::yield_now().await;
        }
    });
    let waiting = Task::new(gate.wait(1u8));
    assert_eq!(sync_wait(when_any(vec![busy, waiting])), (1, 1));
    t.join().unwrap();
}

/// `when_any!`: a first child that spends the whole budget every poll and
/// never finishes does not keep a later one that needs a unit from winning;
/// with budget to spare, argument order decides a tie.
#[test]
fn when_any_lets_a_later_child_win_past_one_spending_every_budget() {
    use coro_core::coop;
    use std::future::Future;
    use std::task::{Context, Waker};

    async fn busy() -> u32 {
        loop {
            coop::consume_budget().await;
        }
    }
    async fn one_unit() -> u32 {
        coop::consume_budget().await;
        7
    }
    let mut race = std::pin::pin!(coro_core::when_any!(busy(), one_unit()));
    let mut cx = Context::from_waker(Waker::noop());
    let mut won = None;
    for _ in 0..100 {
        if let Poll::Ready(w) = coop::budgeted(|| race.as_mut().poll(&mut cx)) {
            won = Some(w);
            break;
        }
    }
    assert_eq!(won, Some((1, 7)));
    let tie = coop::budgeted(|| sync_wait(coro_core::when_any!(one_unit(), async { 9 })));
    assert_eq!(tie, (0, 7), "argument order");
}

/// A loser whose destructor panics does not keep the losers after it
/// alive: every loser is dropped before the panic goes on.
#[test]
fn a_loser_whose_destructor_panics_does_not_keep_the_others_alive() {
    struct PanicsOnDrop;
    impl std::future::Future for PanicsOnDrop {
        type Output = u8;
        fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> Poll<u8> {
            Poll::Pending
        }
    }
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                panic!("loser destructor panics");
            }
        }
    }
    let drops = DropCounter::new();
    let t = drops.token();
    let gate = Gate::new();
    let mut fut = when_any(vec![
        Task::new(gate.wait(1u8)),
        Task::new(PanicsOnDrop),
        Task::new(async move {
            let _t = t;
            std::future::pending::<u8>().await
        }),
    ]);
    let parent = CountingWaker::new();
    assert!(poll_once(&mut fut, &parent).is_pending());
    gate.open();
    let r = catch_unwind(AssertUnwindSafe(|| poll_once(&mut fut, &parent)));
    assert!(r.is_err(), "the destructor's panic goes on");
    assert_eq!(
        drops.count(),
        1,
        "the loser after the panicking one was not dropped"
    );
}
