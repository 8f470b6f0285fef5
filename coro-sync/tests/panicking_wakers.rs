//! A foreign executor's waker may panic when woken. coro-sync's own state
//! must stay consistent through that (the lock released, a barrier's
//! arrival counted once), the other waiters of the same wake-up must be
//! woken, and the waiter lists must stay counted.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use coro_sync::{Barrier, Event, Mutex, SharedMutex};

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
    // Dropping every waiter, the panicking one too, leaves the lists
    // counted: the lock is free, and a waiter of the next round is woken.
    drop(next);
    let w = m.try_write().expect("the write lock was left held");
    let mut r2 = Box::pin(m.read());
    let woken = Arc::new(Counts::default());
    assert!(poll_with(r2.as_mut(), woken.clone()).is_pending());
    drop(w);
    assert_eq!(
        woken.0.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "a reader of the next round was not woken"
    );
    assert!(poll_with(r2.as_mut(), Arc::new(Noop)).is_ready());
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
    drop(other);
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

/// A close wakes two lists (producers, then consumers). A producer's
/// waker panics: the consumers must still learn of the close, or one that
/// was not woken waits for ever on a closed buffer.
#[test]
fn a_ring_buffer_close_still_wakes_the_consumers_after_a_panicking_producer() {
    let rb = coro_sync::RingBuffer::<u32, 1>::new();
    // Two consumers wait on the empty buffer; one push wakes only the first.
    let mut c1 = Box::pin(rb.pop());
    assert!(poll_with(c1.as_mut(), Arc::new(Noop)).is_pending());
    let mut c2 = Box::pin(rb.pop());
    let c2_woken = Arc::new(Counts::default());
    assert!(poll_with(c2.as_mut(), c2_woken.clone()).is_pending());
    rb.try_push(1).unwrap();
    // A producer waits on the full buffer, with a waker that panics.
    let mut p = Box::pin(rb.push(2));
    assert!(poll_with(p.as_mut(), Arc::new(Panics)).is_pending());
    assert!(
        catch_unwind(AssertUnwindSafe(|| rb.close())).is_err(),
        "the producer's waker was woken"
    );
    assert_eq!(
        c2_woken.0.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the second consumer was not told of the close"
    );
    assert_eq!(poll_with(c1.as_mut(), Arc::new(Noop)), Poll::Ready(Ok(1)));
    assert!(matches!(
        poll_with(c2.as_mut(), Arc::new(Noop)),
        Poll::Ready(Err(_))
    ));
    drop(p);
}

/// A queue's close wakes the pops, then the streams; a pop's waker panics.
/// The streams must still see the end.
#[test]
fn a_queue_close_still_ends_the_streams_after_a_panicking_pop() {
    use futures::Stream;
    let q = coro_sync::Queue::<u32>::new();
    let mut pop = Box::pin(q.pop());
    assert!(poll_with(pop.as_mut(), Arc::new(Panics)).is_pending());
    let mut stream = Box::pin(q.stream());
    let woken = Arc::new(Counts::default());
    let w = Waker::from(woken.clone());
    assert!(
        stream
            .as_mut()
            .poll_next(&mut Context::from_waker(&w))
            .is_pending()
    );
    assert!(catch_unwind(AssertUnwindSafe(|| q.close())).is_err());
    assert_eq!(
        woken.0.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the stream was not told of the close"
    );
    assert!(matches!(
        stream.as_mut().poll_next(&mut Context::from_waker(&w)),
        Poll::Ready(None)
    ));
    drop(pop);
}

/// A bounded receiver's close wakes the waiting senders, then tells
/// `closed()`. A sender's waker panics: `closed()` must still end (it was
/// never told: `is_closed()` said true while `closed()` waited for ever).
#[test]
fn a_receiver_close_still_ends_closed_after_a_panicking_sender() {
    let (tx, mut rx) = coro_sync::mpsc::channel::<u32>(1);
    tx.try_send(1).unwrap();
    let mut send = Box::pin(tx.send(2));
    assert!(poll_with(send.as_mut(), Arc::new(Panics)).is_pending());
    let mut closed = Box::pin(tx.closed());
    let woken = Arc::new(Counts::default());
    assert!(poll_with(closed.as_mut(), woken.clone()).is_pending());
    assert!(catch_unwind(AssertUnwindSafe(|| rx.close())).is_err());
    assert!(tx.is_closed());
    assert_eq!(
        woken.0.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "closed() was not told"
    );
    assert!(poll_with(closed.as_mut(), Arc::new(Noop)).is_ready());
    // The value sent before the close is still received.
    assert_eq!(rx.try_recv(), Ok(1));
    drop(send);
}

/// A semaphore's close wakes the ordinary waiters, then the one holding
/// the priority slot (a starved waiter). An ordinary waiter's waker
/// panics: the priority holder must still see the close.
#[test]
fn a_semaphore_close_still_wakes_the_priority_waiter_after_a_panicking_waiter() {
    let s = coro_sync::Semaphore::new(0);
    let mut w = Box::pin(s.acquire());
    let w_woken = Arc::new(Counts::default());
    assert!(poll_with(w.as_mut(), w_woken.clone()).is_pending());
    // W waits long enough to count as starved; a permit comes, and a
    // newcomer takes it first: W, polled again, takes the priority slot.
    std::thread::sleep(std::time::Duration::from_millis(50));
    s.add_permits(1);
    // (Held, not forgotten: a request for more permits than exist would
    // not take the slot.)
    let _barged = s.try_acquire().expect("the newcomer takes the free permit");
    assert!(poll_with(w.as_mut(), w_woken.clone()).is_pending());
    let before = w_woken.0.load(std::sync::atomic::Ordering::SeqCst);
    // An ordinary waiter, with a waker that panics.
    let mut x = Box::pin(s.acquire());
    assert!(poll_with(x.as_mut(), Arc::new(Panics)).is_pending());
    assert!(catch_unwind(AssertUnwindSafe(|| s.close())).is_err());
    assert!(
        w_woken.0.load(std::sync::atomic::Ordering::SeqCst) > before,
        "the priority waiter was not told of the close"
    );
    assert!(matches!(
        poll_with(w.as_mut(), Arc::new(Noop)),
        Poll::Ready(Err(_))
    ));
    drop(x);
}

/// A dropped bounded receiver drops what is buffered, each value's slot
/// given back before the value is dropped: a value whose destructor
/// panics keeps the slots of the values before it given back (they were
/// all given back at the end, after every drop, so the panic lost them).
#[test]
fn a_receiver_dropping_a_value_that_panics_keeps_the_earlier_slots_free() {
    struct Bomb(bool);
    impl Drop for Bomb {
        fn drop(&mut self) {
            if self.0 {
                panic!("this value's destructor fails");
            }
        }
    }
    let (tx, rx) = coro_sync::mpsc::channel::<Bomb>(4);
    for bomb in [false, true, false] {
        assert!(tx.try_send(Bomb(bomb)).is_ok());
    }
    assert_eq!(tx.capacity(), 1);
    assert!(catch_unwind(AssertUnwindSafe(|| drop(rx))).is_err());
    // The first two slots are free again; the third value waits for the
    // last sender's drop.
    assert_eq!(tx.capacity(), 3);
}

/// A `set` wakes three waiters, the first of which panics. The other two
/// must be woken all the same (the wake-ups stopped at the panic), and the
/// list must stay counted: the panicking waiter's wait dropped, or polled
/// again, must not underflow the count of notified waiters (it panicked
/// on overflow in a debug build, and wrapped in a release one, after which
/// the event's wake-ups reached nobody).
#[test]
fn a_panicking_waker_leaves_the_other_waiters_woken_and_the_list_counted() {
    let e = Event::new(false);
    let mut first = Box::pin(e.wait());
    assert!(poll_with(first.as_mut(), Arc::new(Panics)).is_pending());
    let counts: Vec<_> = (0..2).map(|_| Arc::new(Counts::default())).collect();
    let mut rest: Vec<_> = counts
        .iter()
        .map(|c| {
            let mut w = Box::pin(e.wait());
            assert!(poll_with(w.as_mut(), c.clone()).is_pending());
            w
        })
        .collect();
    assert!(
        catch_unwind(AssertUnwindSafe(|| e.set())).is_err(),
        "the panicking waker was woken"
    );
    for c in &counts {
        assert_eq!(c.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
    assert!(poll_with(first.as_mut(), Arc::new(Noop)).is_ready());
    for w in &mut rest {
        assert!(poll_with(w.as_mut(), Arc::new(Noop)).is_ready());
    }
    // The list still works: a new round of waiters is woken.
    e.reset();
    let again = Arc::new(Counts::default());
    let mut w = Box::pin(e.wait());
    assert!(poll_with(w.as_mut(), again.clone()).is_pending());
    e.set();
    assert_eq!(again.0.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// An unlock wakes one waiter, whose waker panics. Dropping that waiter
/// (its wake-up unused) passes the wake-up on to the next, which then gets
/// the lock; the unused wake-up had been lost to the miscount.
#[test]
fn a_mutex_wake_up_that_panicked_passes_on_when_its_waiter_goes() {
    let m = Mutex::new(0);
    let g = m.try_lock().unwrap();
    let mut first = Box::pin(m.lock());
    assert!(poll_with(first.as_mut(), Arc::new(Panics)).is_pending());
    let second_woken = Arc::new(Counts::default());
    let mut second = Box::pin(m.lock());
    assert!(poll_with(second.as_mut(), second_woken.clone()).is_pending());
    assert!(catch_unwind(AssertUnwindSafe(|| drop(g))).is_err());
    assert!(
        catch_unwind(AssertUnwindSafe(|| drop(first))).is_ok(),
        "dropping the woken waiter panicked"
    );
    assert_eq!(second_woken.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(poll_with(second.as_mut(), Arc::new(Noop)).is_ready());
}
