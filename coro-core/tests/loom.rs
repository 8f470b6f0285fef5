//! Loom models of coro-core's two lock-free state machines, compiled here
//! against loom's atomics and lock (the same files the library runs, through
//! its crate-private `sync` module):
//!
//! * the ready list that `when_all`, `try_when_all` and `when_any` share
//!   (`src/when_all.rs`, `src/when_any.rs`): children woken from other
//!   threads while the parent polls, drains the ready list, or is dropped;
//! * the stop state (`src/stop.rs`): a waiting `stopped()` against
//!   `request_stop` and against the last source's drop, from other threads.
//!
//! Waiters run under loom's `block_on`, which parks until woken: a lost
//! wake-up shows as a deadlock, which loom reports; a waker kept after
//! nothing can wake it shows in its reference count. The task budget takes
//! no part (see `coop` below). They run in a plain `cargo test` (seconds);
//! raise the bound with `LOOM_MAX_PREEMPTIONS=3`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use loom::sync::{Arc, Mutex};
use loom::thread;

#[path = "../src/stop.rs"]
#[allow(dead_code, unreachable_pub)]
mod stop;
#[path = "../src/when_all.rs"]
#[allow(dead_code, unreachable_pub)]
mod when_all;
#[path = "../src/when_any.rs"]
#[allow(dead_code, unreachable_pub)]
mod when_any;

use stop::StopSource;

/// What the included files are written against, here loom's.
mod sync {
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    pub(crate) use loom::sync::{Mutex, MutexGuard};
}

/// The task budget: always there, never spent (not modelled).
mod coop {
    pub(crate) fn polled_elsewhere() -> bool {
        false
    }
    pub(crate) fn budget_spent() -> bool {
        false
    }
}

/// `coro_core::wake_all` (its panic guard is not modelled).
fn wake_all(wakers: impl IntoIterator<Item = Waker>) {
    wakers.into_iter().for_each(Waker::wake);
}

/// A one-shot gate another thread opens; waiting keeps the latest waker.
#[derive(Clone)]
struct Gate(Arc<Mutex<(bool, Option<Waker>)>>);

impl Gate {
    fn new() -> Gate {
        Gate(Arc::new(Mutex::new((false, None))))
    }

    fn open(&self) {
        let waker = {
            let mut g = self.0.lock().unwrap();
            g.0 = true;
            g.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// A spurious wake-up: the waiter is woken, the gate stays shut.
    fn nudge(&self) {
        let waker = self.0.lock().unwrap().1.clone();
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn wait(&self) -> Wait {
        Wait(self.clone())
    }
}

struct Wait(Gate);

impl Future for Wait {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut g = (self.0).0.lock().unwrap();
        if g.0 {
            Poll::Ready(())
        } else {
            g.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

#[test]
fn children_woken_from_two_threads_finish_the_parent() {
    model(|| {
        let gates = [Gate::new(), Gate::new()];
        let openers: Vec<_> = gates
            .iter()
            .cloned()
            .map(|g| thread::spawn(move || g.open()))
            .collect();
        let out = loom::future::block_on(when_all::when_all(gates.iter().map(Gate::wait)));
        assert_eq!(out, [(), ()]);
        for t in openers {
            t.join().unwrap();
        }
    });
}

#[test]
fn a_spurious_wake_racing_the_real_one_loses_nothing() {
    model(|| {
        let (a, b) = (Gate::new(), Gate::new());
        let waker = {
            let (a, b) = (a.clone(), b.clone());
            thread::spawn(move || {
                a.nudge();
                b.open();
                a.open();
            })
        };
        let out = loom::future::block_on(when_all::when_all([a.wait(), b.wait()]));
        assert_eq!(out, [(), ()]);
        waker.join().unwrap();
    });
}

#[test]
fn when_any_takes_a_winner_woken_from_another_thread() {
    model(|| {
        let gates = [Gate::new(), Gate::new()];
        let opener = {
            let g = gates[1].clone();
            thread::spawn(move || g.open())
        };
        let (i, ()) = loom::future::block_on(when_any::when_any(gates.iter().map(Gate::wait)));
        assert_eq!(i, 1, "only the second was opened");
        opener.join().unwrap();
    });
}

/// A waker that does nothing but can be counted.
struct Quiet;

impl std::task::Wake for Quiet {
    fn wake(self: std::sync::Arc<Self>) {}
}

#[test]
fn a_wake_racing_the_drop_of_a_pending_parent_leaves_no_parent_waker() {
    model(|| {
        let gate = Gate::new();
        let parent = std::sync::Arc::new(Quiet);
        let waker = Waker::from(parent.clone());
        let mut all = Box::pin(when_all::when_all([gate.wait(), Gate::new().wait()]));
        assert!(
            all.as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        drop(waker);
        // The gate keeps the child's waker (it is never opened); another
        // thread wakes through it while the combinator is dropped here.
        let nudger = {
            let g = gate.clone();
            thread::spawn(move || g.nudge())
        };
        drop(all);
        nudger.join().unwrap();
        assert!(
            gate.0.lock().unwrap().1.is_some(),
            "the child waker is still out"
        );
        assert_eq!(
            std::sync::Arc::strong_count(&parent),
            1,
            "the dropped combinator kept its parent's waker"
        );
    });
}

// --- the stop state ----------------------------------------------------------

#[test]
fn a_stop_from_another_thread_wakes_the_waiter() {
    model(|| {
        let source = StopSource::new();
        let token = source.token();
        let stopper = thread::spawn(move || {
            source.request_stop();
        });
        loom::future::block_on(token.stopped());
        assert!(token.stop_requested());
        stopper.join().unwrap();
    });
}

#[test]
fn a_stop_and_the_last_drop_of_another_source_still_wake_the_waiter() {
    model(|| {
        let source = StopSource::new();
        let other = source.clone();
        let token = source.token();
        let stopper = thread::spawn(move || {
            source.request_stop();
        });
        let dropper = thread::spawn(move || drop(other));
        loom::future::block_on(token.stopped());
        stopper.join().unwrap();
        dropper.join().unwrap();
    });
}

#[test]
fn the_last_source_dropped_during_a_poll_keeps_no_waker() {
    model(|| {
        let source = StopSource::new();
        let token = source.token();
        let mut stopped = Box::pin(token.stopped());
        let quiet = std::sync::Arc::new(Quiet);
        let waker = Waker::from(quiet.clone());
        let dropper = thread::spawn(move || drop(source));
        let first = stopped.as_mut().poll(&mut Context::from_waker(&waker));
        assert_eq!(first, Poll::Pending, "no stop was requested");
        dropper.join().unwrap();
        drop(waker);
        // No stop can come: neither the poll (after the drop) nor the drop
        // (after the poll) may leave the waker registered.
        assert_eq!(
            std::sync::Arc::strong_count(&quiet),
            1,
            "the waker is still held"
        );
        assert!(!token.stop_possible());
        // Polled again: still pending, and still nothing kept.
        let waker = Waker::from(quiet.clone());
        let again = Pin::new(&mut stopped).poll(&mut Context::from_waker(&waker));
        assert_eq!(again, Poll::Pending);
        drop(waker);
        assert_eq!(std::sync::Arc::strong_count(&quiet), 1);
    });
}
