//! `StopSource`, `StopToken` and `stopped()`.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use common::CountingWaker;
use coro_core::{StopSource, sync_wait, when_all};

#[test]
fn request_stop_is_seen_by_every_token_and_returns_true_once() {
    let source = StopSource::new();
    let tokens: Vec<_> = (0..3).map(|_| source.token()).collect();
    assert!(tokens.iter().all(|t| !t.stop_requested()));
    assert!(source.clone().request_stop());
    assert!(!source.request_stop());
    assert!(tokens.iter().all(|t| t.stop_requested()));
    assert!(source.stop_requested());
}

#[test]
fn exactly_one_of_many_concurrent_requests_wins() {
    for _ in 0..50 {
        let source = StopSource::new();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = source.clone();
                std::thread::spawn(move || s.request_stop())
            })
            .collect();
        let wins = threads
            .into_iter()
            .filter(|_| true)
            .map(|t| t.join().unwrap())
            .filter(|&w| w);
        assert_eq!(wins.count(), 1);
    }
}

#[test]
fn stopped_future_wakes_every_waiter() {
    let source = StopSource::new();
    let token = source.token();
    let waiters: Vec<_> = (0..5).map(|_| Box::pin(token.stopped())).collect();
    let wakers: Vec<_> = (0..5).map(|_| CountingWaker::new()).collect();
    let mut waiters = waiters;
    for (w, k) in waiters.iter_mut().zip(&wakers) {
        let waker = Waker::from(k.clone());
        assert!(
            w.as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
    }
    source.request_stop();
    for (w, k) in waiters.iter_mut().zip(&wakers) {
        assert_eq!(k.wakes(), 1);
        let waker = Waker::from(k.clone());
        assert!(w.as_mut().poll(&mut Context::from_waker(&waker)).is_ready());
    }
}

#[test]
fn already_stopped_is_ready_at_once() {
    let source = StopSource::new();
    source.request_stop();
    let waker = CountingWaker::new();
    let w = Waker::from(waker.clone());
    let mut fut = source.token().stopped();
    assert_eq!(
        Pin::new(&mut fut).poll(&mut Context::from_waker(&w)),
        Poll::Ready(())
    );
}

#[test]
fn dropping_a_pending_stopped_future_releases_its_waker() {
    let source = StopSource::new();
    let waker = CountingWaker::new();
    let w = Waker::from(waker.clone());
    let mut fut = Box::pin(source.token().stopped());
    assert!(fut.as_mut().poll(&mut Context::from_waker(&w)).is_pending());
    drop(w);
    assert_eq!(Arc::strong_count(&waker), 2, "registered");
    drop(fut);
    assert_eq!(Arc::strong_count(&waker), 1, "registration removed on drop");
    source.request_stop();
    assert_eq!(waker.wakes(), 0);
}

#[test]
fn repolling_with_a_new_waker_replaces_the_old_one() {
    let source = StopSource::new();
    let first = CountingWaker::new();
    let second = CountingWaker::new();
    let mut fut = Box::pin(source.token().stopped());
    let w1 = Waker::from(first.clone());
    let w2 = Waker::from(second.clone());
    assert!(
        fut.as_mut()
            .poll(&mut Context::from_waker(&w1))
            .is_pending()
    );
    assert!(
        fut.as_mut()
            .poll(&mut Context::from_waker(&w2))
            .is_pending()
    );
    source.request_stop();
    assert_eq!((first.wakes(), second.wakes()), (0, 1));
}

#[test]
fn stop_from_another_thread_under_sync_wait() {
    for _ in 0..100 {
        let source = StopSource::new();
        let tokens: Vec<_> = (0..4).map(|_| source.token()).collect();
        let t = std::thread::spawn(move || source.request_stop());
        sync_wait(when_all(tokens.iter().map(|t| t.stopped())));
        assert!(t.join().unwrap());
    }
}

#[test]
fn types_are_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<StopSource>();
    check::<coro_core::StopToken>();
    check::<coro_core::Stopped>();
}

/// A waker that owns another registered wait of the same source: the
/// last drop of the waker drops that wait, which takes the source's lock.
struct OwnsAWait(std::sync::Mutex<Option<Pin<Box<coro_core::Stopped>>>>);

impl std::task::Wake for OwnsAWait {
    fn wake(self: Arc<Self>) {}
}

#[test]
fn a_waker_dropped_by_the_source_may_drop_another_wait_of_it() {
    // Run on a thread: the bug was a self-deadlock (a hang), not a panic.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let source = StopSource::new();
        let token = source.token();
        let noop = Waker::noop();
        // `inner` waits, registered with a no-op waker...
        let mut inner = Box::pin(token.stopped());
        assert!(
            inner
                .as_mut()
                .poll(&mut Context::from_waker(noop))
                .is_pending()
        );
        // ...and is owned by the waker `outer` registers with.
        let owner = Arc::new(OwnsAWait(std::sync::Mutex::new(Some(inner))));
        let waker = Waker::from(owner.clone());
        let mut outer = Box::pin(token.stopped());
        assert!(
            outer
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        drop(waker);
        drop(owner);
        // The source holds the last reference: replacing it drops `inner`.
        assert!(
            outer
                .as_mut()
                .poll(&mut Context::from_waker(noop))
                .is_pending()
        );
        // And once more through removal: register it again, then drop.
        let owner = Arc::new(OwnsAWait(std::sync::Mutex::new(Some(Box::pin(
            token.stopped(),
        )))));
        {
            let mut g = owner.0.lock().unwrap();
            let w = g.as_mut().unwrap();
            assert!(w.as_mut().poll(&mut Context::from_waker(noop)).is_pending());
        }
        let waker = Waker::from(owner.clone());
        assert!(
            outer
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        drop(waker);
        drop(owner);
        drop(outer);
        tx.send(()).unwrap();
    });
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .expect("a waker's drop under the source's lock deadlocked");
}

struct Panics;

impl std::task::Wake for Panics {
    fn wake(self: Arc<Self>) {
        panic!("this waker fails");
    }
}

/// A waker that panics (a foreign executor's) must not leave the waiters
/// after it unwoken: the stop is requested by then, and nothing would wake
/// them later.
#[test]
fn a_panicking_waker_leaves_no_other_stopped_future_unwoken() {
    let source = StopSource::new();
    let token = source.token();
    let mut first = Box::pin(token.stopped());
    let bad = Waker::from(Arc::new(Panics));
    assert!(
        first
            .as_mut()
            .poll(&mut Context::from_waker(&bad))
            .is_pending()
    );
    let wakers: Vec<_> = (0..3).map(|_| CountingWaker::new()).collect();
    let mut rest: Vec<_> = wakers
        .iter()
        .map(|k| {
            let mut f = Box::pin(token.stopped());
            let w = Waker::from(k.clone());
            assert!(f.as_mut().poll(&mut Context::from_waker(&w)).is_pending());
            f
        })
        .collect();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| source.request_stop()));
    assert!(r.is_err(), "the panic goes on to the caller");
    for (f, k) in rest.iter_mut().zip(&wakers) {
        assert_eq!(
            k.wakes(),
            1,
            "a waiter after the panicking one was not woken"
        );
        let w = Waker::from(k.clone());
        assert!(f.as_mut().poll(&mut Context::from_waker(&w)).is_ready());
    }
}

/// Every source dropped without a stop: no stop can come, so a pending
/// `stopped()` lets go of its waker. It kept it, and a task holding the
/// future kept itself alive through its own waker (a leak under
/// executors whose tasks live only through their wakers). The future
/// still never completes, and `stop_possible` says why.
#[test]
fn dropping_every_source_releases_pending_waiters() {
    let source = StopSource::new();
    let other = source.clone();
    let token = source.token();
    let waker = CountingWaker::new();
    let w = Waker::from(waker.clone());
    let mut fut = Box::pin(token.stopped());
    assert!(fut.as_mut().poll(&mut Context::from_waker(&w)).is_pending());
    assert_eq!(Arc::strong_count(&waker), 3, "registered");
    drop(source);
    assert!(token.stop_possible(), "a clone of the source is left");
    assert_eq!(Arc::strong_count(&waker), 3, "still registered");
    drop(other);
    assert!(!token.stop_possible());
    assert_eq!(Arc::strong_count(&waker), 2, "the waker was kept");
    // Polled again: still pending, and keeps nothing.
    assert!(fut.as_mut().poll(&mut Context::from_waker(&w)).is_pending());
    assert_eq!(Arc::strong_count(&waker), 2);
    assert_eq!(waker.wakes(), 0);
    // A stop requested before the last source went stays possible (done).
    let s = StopSource::new();
    let t = s.token();
    s.request_stop();
    drop(s);
    assert!(t.stop_possible());
    sync_wait(t.stopped());
}
