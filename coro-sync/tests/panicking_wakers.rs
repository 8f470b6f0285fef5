//! A foreign executor's waker may panic when woken. coro-sync's own state
//! must stay consistent through that: the lock released, a barrier's
//! arrival counted once. (The waiter lists themselves are event-listener's,
//! which a panicking waker leaves miscounted; see the crate docs. These
//! tests keep clear of that: the futures that held such a waker are
//! forgotten or dropped under `catch_unwind`.)

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use coro_sync::{Barrier, SharedMutex};

struct Panics;

impl Wake for Panics {
    fn wake(self: Arc<Self>) {
        panic!("this waker fails");
    }
}

struct Noop;

/// Counts its wake-ups.
#[derive(Default)]
struct Counts(std::sync::atomic::AtomicUsize);

impl Wake for Counts {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

fn poll_with<F: Future>(
    f: Pin<&mut F>,
    w: Arc<impl Wake + Send + Sync + 'static>,
) -> Poll<F::Output> {
    let w = Waker::from(w);
    f.poll(&mut Context::from_waker(&w))
}

/// A writer's unlock wakes the waiting readers; one of their wakers
/// panics. The writers' lock must be free all the same: it was left
/// locked, and every later `write()` waited for ever.
#[test]
fn a_panicking_reader_waker_leaves_the_write_lock_free() {
    let m = SharedMutex::new(0u32);
    let w = m.try_write().unwrap();
    let mut r = Box::pin(m.read());
    assert!(poll_with(r.as_mut(), Arc::new(Panics)).is_pending());
    assert!(
        catch_unwind(AssertUnwindSafe(|| drop(w))).is_err(),
        "the reader's waker was woken"
    );
    // The reader was let in with the writer's leaving; it goes now.
    let _ = catch_unwind(AssertUnwindSafe(|| drop(r)));
    assert!(m.try_write().is_some(), "the write lock was left held");
}

/// A writer's unlock hands the writers' lock on to a waiting writer whose
/// waker panics. The readers waiting meanwhile were admitted with the
/// leaving: they must still be woken (else they wait for ever, and so does
/// the next writer, which waits for them), and they get in.
#[test]
fn a_panicking_writer_waker_still_lets_the_readers_in() {
    let m = SharedMutex::new(0u32);
    let w = m.try_write().unwrap();
    let mut next = Box::pin(m.write());
    assert!(poll_with(next.as_mut(), Arc::new(Panics)).is_pending());
    let mut r = Box::pin(m.read());
    let woken = Arc::new(Counts::default());
    assert!(poll_with(r.as_mut(), woken.clone()).is_pending());
    assert!(
        catch_unwind(AssertUnwindSafe(|| drop(w))).is_err(),
        "the next writer's waker was woken"
    );
    assert_eq!(
        woken.0.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the admitted reader was not woken"
    );
    match poll_with(r.as_mut(), Arc::new(Noop)) {
        Poll::Ready(g) => assert_eq!(*g, 0),
        Poll::Pending => panic!("the admitted reader does not get in"),
    }
    // `next`'s listener was miscounted by event-listener (crate docs).
    std::mem::forget(next);
}

/// The leader's arrival wakes the others; one waker panics. Polled again,
/// the leader must not arrive a second time (which would count it into
/// the next round).
#[test]
fn a_leader_whose_wake_up_panicked_does_not_arrive_twice() {
    let b = Barrier::new(2);
    let mut other = Box::pin(b.wait());
    assert!(poll_with(other.as_mut(), Arc::new(Panics)).is_pending());
    let mut leader = Box::pin(b.wait());
    assert!(
        catch_unwind(AssertUnwindSafe(|| poll_with(
            leader.as_mut(),
            Arc::new(Noop)
        )))
        .is_err()
    );
    let again = catch_unwind(AssertUnwindSafe(|| {
        poll_with(leader.as_mut(), Arc::new(Noop)).is_pending()
    }));
    assert!(
        !matches!(again, Ok(true)),
        "the leader waits again: it arrived a second time"
    );
    std::mem::forget(other);
    // The next round needs two fresh arrivals.
    let mut c = Box::pin(b.wait());
    assert!(
        poll_with(c.as_mut(), Arc::new(Noop)).is_pending(),
        "a round of one: a stale arrival was counted"
    );
    let mut d = Box::pin(b.wait());
    assert!(matches!(poll_with(d.as_mut(), Arc::new(Noop)), Poll::Ready(r) if r.is_leader()));
    assert!(poll_with(c.as_mut(), Arc::new(Noop)).is_ready());
}
