//! Loom models of the stop state (`src/stop.rs`, compiled here against
//! loom's atomics and lock): a waiting `stopped()` against `request_stop`
//! and against the last source's drop, from other threads. A lost wake-up
//! shows as a deadlock of loom's `block_on`; a waker kept after no stop can
//! come shows in its reference count. They run in a plain `cargo test`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use loom::thread;

#[path = "../src/stop.rs"]
#[allow(dead_code, unreachable_pub)]
mod stop;

use stop::StopSource;

/// What `stop.rs` is written against, here loom's.
mod sync {
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    pub(crate) use loom::sync::{Mutex, MutexGuard};
}

/// `coro_core::wake_all` (its panic guard is not modelled).
fn wake_all(wakers: impl IntoIterator<Item = Waker>) {
    wakers.into_iter().for_each(Waker::wake);
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

/// A waker that does nothing but can be counted.
struct Quiet;

impl Wake for Quiet {
    fn wake(self: Arc<Self>) {}
}

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
        let quiet = Arc::new(Quiet);
        let waker = Waker::from(quiet.clone());
        let dropper = thread::spawn(move || drop(source));
        let first = stopped.as_mut().poll(&mut Context::from_waker(&waker));
        assert_eq!(first, Poll::Pending, "no stop was requested");
        dropper.join().unwrap();
        drop(waker);
        // No stop can come: neither the poll (after the drop) nor the drop
        // (after the poll) may leave the waker registered.
        assert_eq!(Arc::strong_count(&quiet), 1, "the waker is still held");
        assert!(!token.stop_possible());
        // Polled again: still pending, and still nothing kept.
        let waker = Waker::from(quiet.clone());
        let again = Pin::new(&mut stopped).poll(&mut Context::from_waker(&waker));
        assert_eq!(again, Poll::Pending);
        drop(waker);
        assert_eq!(Arc::strong_count(&quiet), 1);
    });
}
