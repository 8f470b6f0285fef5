//! Hand-polled behaviour of each primitive: pending, then woken, then ready;
//! cancellation passes wake-ups on; `Send`/`Sync` where promised.
#![cfg(not(loom))]
#![allow(missing_docs)]

mod common;

use std::sync::Arc;
use std::task::Poll;

use common::{Probe, assert_send, assert_send_sync};
use coro_sync::{
    Barrier, Closed, Condvar, Event, Latch, Mutex, PushError, Queue, RingBuffer, Semaphore,
    SharedMutex, TryAcquireError, TryPopError,
};

#[test]
fn send_sync() {
    assert_send_sync::<Event>();
    assert_send_sync::<Latch>();
    assert_send_sync::<Mutex<Vec<u8>>>();
    assert_send_sync::<SharedMutex<Vec<u8>>>();
    assert_send_sync::<Semaphore>();
    assert_send_sync::<RingBuffer<String, 4>>();
    assert_send_sync::<Queue<String>>();
    assert_send_sync::<Condvar>();
    assert_send_sync::<Barrier>();
    // Mutex<T> only needs T: Send, like std.
    assert_send_sync::<Mutex<std::cell::Cell<u8>>>();
    let m = Mutex::new(0u8);
    let s = Semaphore::new(1);
    let rb = RingBuffer::<u8, 1>::new();
    let q = Queue::<u8>::new();
    let sm = SharedMutex::new(0u8);
    fn send<T: Send>(_: &T) {}
    send(&m.lock());
    send(&s.acquire());
    send(&rb.push(1));
    send(&rb.pop());
    send(&q.pop());
    send(&sm.read());
    send(&sm.write());
    assert_send::<coro_sync::MutexGuardArc<u8>>();
}

#[test]
fn event_wait_set_reset() {
    let e = Event::new(false);
    let mut w1 = Probe::new(e.wait());
    let mut w2 = Probe::new(e.wait());
    w1.pending();
    w2.pending();
    e.set();
    assert!(w1.woken() && w2.woken());
    w1.ready();
    w2.ready();
    // Set: does not suspend.
    Probe::new(e.wait()).ready();
    e.reset();
    let mut w3 = Probe::new(e.wait());
    w3.pending();
    assert!(!w3.woken());
    e.set();
    w3.ready();
}

#[test]
fn event_set_then_reset_still_releases_registered_waiter() {
    let e = Event::new(false);
    let mut w = Probe::new(e.wait());
    w.pending();
    e.set();
    e.reset();
    w.ready();
}

#[test]
fn latch_saturates_and_releases() {
    let l = Latch::new(3);
    let mut w = Probe::new(l.wait());
    w.pending();
    l.count_down(1);
    assert!(!w.woken());
    w.pending();
    l.count_down(10);
    assert_eq!(l.remaining(), 0);
    assert!(w.woken());
    w.ready();
    l.count_down(usize::MAX); // no panic, no wrap
    assert_eq!(l.remaining(), 0);
    Probe::new(l.wait()).ready();
}

#[test]
fn mutex_waiter_woken_on_unlock() {
    let m = Mutex::new(1);
    let g = m.try_lock().unwrap();
    let mut w = Probe::new(m.lock());
    w.pending();
    assert!(m.try_lock().is_none());
    drop(g);
    assert!(w.woken());
    let mut g = w.ready();
    *g += 1;
    drop(g);
    drop(w);
    assert_eq!(m.into_inner(), 2);
}

#[test]
fn mutex_dropped_notified_waiter_passes_wakeup_on() {
    // Notified, then dropped unpolled: the wake-up must pass to another
    // waiter, or it waits with the lock free (the tokio#4618 class of bug).
    let m = Mutex::new(());
    let g = m.try_lock().unwrap();
    let mut a = Probe::new(m.lock());
    let mut b = Probe::new(m.lock());
    a.pending();
    b.pending();
    drop(g);
    assert!(a.woken());
    drop(a);
    assert!(b.woken(), "the wake-up was swallowed by the dropped waiter");
    drop(b.ready());
}

#[test]
fn mutex_starved_waiter_gets_handoff() {
    let m = Mutex::new(0);
    let g = m.try_lock().unwrap();
    let mut w = Probe::new(m.lock());
    w.pending();
    // Wait out the barging bound (a time condition, not an event).
    std::thread::sleep(std::time::Duration::from_millis(2));
    drop(g);
    // A newcomer barges in before the woken waiter runs...
    let barger = m
        .try_lock()
        .expect("barging is allowed while nobody is starved");
    w.pending(); // ...so the waiter loses, and turns starved.
    drop(barger);
    // Now newcomers cannot take the lock: it is handed to the starved waiter.
    assert!(
        m.try_lock().is_none(),
        "newcomer took the lock from a starved waiter"
    );
    let mut g = w.ready();
    *g += 1;
    drop(g);
    assert!(m.try_lock().is_some());
}

/// Time a waiter spends behind starved waiters does not count towards its
/// own barging bound: once they are served, it competes with newcomers
/// afresh instead of turning starved at its first lost race (which kept
/// the lock in hand-off mode under contention: a convoy).
#[test]
fn mutex_a_wait_behind_starved_waiters_is_not_starvation() {
    let m = Mutex::new(());
    let g0 = m.try_lock().unwrap();
    let mut w1 = Probe::new(m.lock());
    w1.pending();
    std::thread::sleep(std::time::Duration::from_millis(2));
    drop(g0);
    let barger = m.try_lock().unwrap();
    w1.pending(); // lost after 2 ms: starved
    // W2 waits only behind the starved W1.
    let mut w2 = Probe::new(m.lock());
    w2.pending();
    std::thread::sleep(std::time::Duration::from_millis(2));
    drop(barger); // handed to W1
    drop(w1.ready()); // W1 served; nobody starved; W2 told
    let barger = m.try_lock().expect("nobody is starved: barging is allowed");
    w2.pending(); // W2 loses its first race since the hand-offs ended
    drop(barger);
    assert!(
        m.try_lock().is_some(),
        "W2's wait behind the starved W1 was counted: the lock was handed off again"
    );
}

/// A waiter that keeps losing to newcomers starves within its bound even
/// when another waiter starves and is served between its wake-ups (a
/// task that takes the lock in a loop): those hand-offs must not make it
/// forget the races it lost before them.
#[test]
fn mutex_a_waiter_losing_to_newcomers_starves_despite_others_hand_offs() {
    let m = Mutex::new(());
    let mut b = m.try_lock().unwrap();
    let mut w = Probe::new(m.lock());
    w.pending();
    let mut h = Probe::new(m.lock());
    h.pending();
    drop(b); // W told
    b = m.try_lock().unwrap(); // a newcomer wins
    w.pending(); // W lost; listens behind H
    std::thread::sleep(std::time::Duration::from_millis(2));
    drop(b); // H told
    b = m.try_lock().unwrap(); // a newcomer wins again
    h.pending(); // H waited 2 ms and lost: starved
    drop(b); // handed to H
    let g = h.ready();
    h = Probe::new(m.lock()); // H at it again, behind W
    h.pending();
    drop(g); // nobody starved: W told
    b = m.try_lock().expect("nobody is starved: barging is allowed");
    w.pending(); // W loses again, after more than 2 ms of losing: starved
    drop(b);
    assert!(
        m.try_lock().is_none(),
        "W lost to newcomers for over 2 ms and was still not starved"
    );
    drop(w.ready());
    drop(h);
}

#[test]
fn mutex_starved_waiter_dropped_after_handoff_releases() {
    let m = Mutex::new(());
    let g = m.try_lock().unwrap();
    let mut w = Probe::new(m.lock());
    let mut other = Probe::new(m.lock());
    w.pending();
    other.pending();
    std::thread::sleep(std::time::Duration::from_millis(2));
    drop(g);
    let barger = m.try_lock().unwrap();
    w.pending(); // starved now
    drop(barger); // handed to w
    drop(w); // ...which goes away
    // Released, and the normal waiter was told.
    assert!(other.woken());
    drop(other.ready());
}

#[test]
fn mutex_lock_arc_is_static() {
    let m = Arc::new(Mutex::new(String::new()));
    let fut = m.lock_arc();
    fn is_static<T: 'static + Send>(_: &T) {}
    is_static(&fut);
    let mut g = futures::executor::block_on(fut);
    g.push('x');
    drop(g);
    assert_eq!(*futures::executor::block_on(m.lock()), "x");
}

#[test]
fn shared_mutex_writer_blocks_new_readers() {
    let m = SharedMutex::new(0);
    let r1 = m.try_read().unwrap();
    let mut w = Probe::new(m.write());
    w.pending();
    // The writer has announced itself: new readers wait.
    assert!(m.try_read().is_none());
    let mut r2 = Probe::new(m.read());
    r2.pending();
    drop(r1);
    assert!(w.woken());
    let mut g = w.ready();
    *g = 5;
    assert!(!r2.woken());
    drop(g);
    assert!(r2.woken());
    assert_eq!(*r2.ready(), 5);
}

#[test]
fn shared_mutex_dropped_writer_releases_readers() {
    let m = SharedMutex::new(0);
    let r1 = m.try_read().unwrap();
    let mut w = Probe::new(m.write());
    w.pending();
    let mut r2 = Probe::new(m.read());
    r2.pending();
    drop(w); // withdraws its announcement
    assert!(r2.woken());
    drop(r2.ready());
    drop(r1);
    assert!(m.try_write().is_some());
}

#[test]
fn semaphore_acquire_release_close() {
    let s = Semaphore::new(1);
    let p = s.try_acquire().unwrap();
    let mut w = Probe::new(s.acquire());
    w.pending();
    drop(p);
    assert!(w.woken());
    let p = w.ready().unwrap();
    let mut w2 = Probe::new(s.acquire());
    w2.pending();
    s.close();
    assert!(w2.woken());
    assert_eq!(w2.ready().unwrap_err(), Closed(()));
    assert_eq!(s.try_acquire().unwrap_err(), TryAcquireError::Closed);
    drop(p);
    assert_eq!(s.available_permits(), 1);
}

#[test]
fn semaphore_acquire_many_is_all_or_none() {
    let s = Semaphore::new(2);
    let mut big = Probe::new(s.acquire_many(3));
    big.pending();
    assert_eq!(
        s.available_permits(),
        2,
        "a pending request must not hold permits"
    );
    s.add_permits(1);
    let p = big.ready().unwrap();
    assert_eq!(p.permits(), 3);
    assert_eq!(s.available_permits(), 0);
    drop(p);
    assert_eq!(s.available_permits(), 3);
}

/// A request for more permits than the semaphore holds, waiting past
/// the fairness bound, must not take the priority slot: it can never be
/// met, and holding the slot it locked every other acquirer out for good.
#[test]
fn an_impossible_acquire_many_does_not_lock_out_the_others() {
    for k in [3, Semaphore::MAX_PERMITS + 1, usize::MAX] {
        let s = Semaphore::new(2);
        let mut big = Probe::new(s.acquire_many(k));
        big.pending();
        std::thread::sleep(std::time::Duration::from_millis(5));
        drop(s.try_acquire().unwrap()); // a release wakes the big request
        big.pending();
        assert!(s.try_acquire().is_ok(), "k = {k}: 2 permits free, refused");
        let held = s.try_acquire_many(2).unwrap();
        let mut small = Probe::new(s.acquire());
        small.pending();
        std::thread::sleep(std::time::Duration::from_millis(5));
        drop(held);
        big.pending();
        assert!(small.woken(), "k = {k}: the small waiter was not woken");
        assert!(small.ready().is_ok());
    }
}

/// A priority waiter whose request `forget` made impossible gives the
/// slot back.
#[test]
fn a_priority_waiter_steps_back_when_forget_makes_it_impossible() {
    let s = Semaphore::new(3);
    let a = s.try_acquire_many(2).unwrap();
    let b = s.try_acquire().unwrap();
    let mut big = Probe::new(s.acquire_many(3));
    big.pending();
    std::thread::sleep(std::time::Duration::from_millis(5));
    drop(b); // wakes it, past the bound: it takes the priority slot
    big.pending();
    assert!(
        s.try_acquire().is_err(),
        "the priority waiter holds the slot"
    );
    a.forget(); // only 1 permit exists now
    assert!(big.woken());
    big.pending();
    assert!(
        s.try_acquire().is_ok(),
        "an impossible request kept the priority slot"
    );
    s.add_permits(2);
    assert_eq!(big.ready().unwrap().permits(), 3);
}

#[test]
fn semaphore_notified_then_dropped_passes_permit_on() {
    let s = Semaphore::new(0);
    let mut a = Probe::new(s.acquire());
    let mut b = Probe::new(s.acquire());
    a.pending();
    b.pending();
    s.add_permits(1);
    assert!(a.woken());
    drop(a);
    assert!(b.woken());
    b.ready().unwrap().forget();
    assert_eq!(s.available_permits(), 0);
}

#[test]
fn semaphore_large_request_not_starved_by_small_ones() {
    let s = Semaphore::new(2);
    // One permit is held out the whole time: the request fits what
    // exists, not what is free.
    let held = s.try_acquire().unwrap();
    let mut big = Probe::new(s.acquire_many(2));
    big.pending();
    std::thread::sleep(std::time::Duration::from_millis(2));
    // Small requests keep taking the single permit...
    let small = s.try_acquire().unwrap();
    drop(small); // wakes the big one, which still cannot fit (1 < 2)
    let small = s.try_acquire().unwrap();
    big.pending(); // loses; waited past the bound: takes the priority slot
    drop(small);
    // From now on small requests wait, permits accumulate for the big one.
    assert_eq!(s.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    let mut small_waiter = Probe::new(s.acquire());
    small_waiter.pending();
    drop(held);
    let p = big.ready().unwrap();
    assert_eq!(p.permits(), 2);
    drop(p);
    assert!(small_waiter.woken());
    drop(small_waiter.ready().unwrap());
}

#[test]
fn ring_buffer_waits_full_and_empty_then_close_drains() {
    let rb = RingBuffer::<u32, 2>::new();
    assert_eq!(rb.capacity(), 2);
    let mut pop = Probe::new(rb.pop());
    pop.pending();
    rb.try_push(1).unwrap();
    assert!(pop.woken());
    assert_eq!(pop.ready(), Ok(1));
    rb.try_push(2).unwrap();
    rb.try_push(3).unwrap();
    assert_eq!(rb.try_push(4), Err(PushError::Full(4)));
    let mut push = Probe::new(rb.push(4));
    push.pending();
    assert_eq!(rb.try_pop(), Ok(2));
    assert!(push.woken());
    push.ready().unwrap();
    let mut push5 = Probe::new(rb.push(5));
    push5.pending();
    rb.close();
    assert!(push5.woken());
    assert_eq!(push5.ready().unwrap_err().into_inner(), 5);
    assert_eq!(rb.try_push(6), Err(PushError::Closed(6)));
    assert_eq!(rb.try_pop(), Ok(3));
    assert_eq!(futures::executor::block_on(rb.pop()), Ok(4));
    assert_eq!(futures::executor::block_on(rb.pop()), Err(Closed(())));
    assert_eq!(rb.try_pop(), Err(TryPopError::Closed));
}

#[test]
fn ring_buffer_dropped_notified_consumer_passes_item_on() {
    let rb = RingBuffer::<u32, 2>::new();
    let mut a = Probe::new(rb.pop());
    let mut b = Probe::new(rb.pop());
    a.pending();
    b.pending();
    rb.try_push(9).unwrap();
    assert!(a.woken());
    drop(a);
    assert!(b.woken());
    assert_eq!(b.ready(), Ok(9));
}

#[test]
fn ring_buffer_drops_items_left_inside() {
    let item = Arc::new(());
    let rb = RingBuffer::<Arc<()>, 4>::new();
    rb.try_push(item.clone()).unwrap();
    rb.try_push(item.clone()).unwrap();
    assert_eq!(Arc::strong_count(&item), 3);
    drop(rb);
    assert_eq!(Arc::strong_count(&item), 1);
}

#[test]
fn queue_pop_stream_close() {
    use futures::StreamExt;
    let q = Queue::new();
    let mut pop = Probe::new(q.pop());
    pop.pending();
    q.push(1).unwrap();
    assert!(pop.woken());
    assert_eq!(pop.ready(), Ok(1));
    q.push(2).unwrap();
    q.push(3).unwrap();
    let mut s = q.stream();
    assert_eq!(futures::executor::block_on(s.next()), Some(2));
    let mut next = Probe::new(async move {
        let a = s.next().await;
        let b = s.next().await;
        (a, b)
    });
    assert!(matches!(next.poll(), Poll::Pending));
    q.close();
    assert_eq!(q.push(4), Err(Closed(4)));
    assert_eq!(next.ready(), (Some(3), None));
    assert_eq!(futures::executor::block_on(q.pop()), Err(Closed(())));
}

#[test]
fn condvar_wait_notify() {
    let m = Mutex::new(false);
    let cv = Condvar::new();
    let g = m.try_lock().unwrap();
    let mut w = Probe::new(cv.wait(g));
    w.pending();
    // The wait released the mutex.
    let mut g = m.try_lock().expect("wait must release the mutex");
    *g = true;
    cv.notify_one();
    assert!(w.woken());
    w.pending(); // woken, but the mutex is still held
    drop(g);
    assert!(*w.ready());
}

#[test]
fn condvar_notify_one_wakes_one_each() {
    let m = Mutex::new(());
    let cv = Condvar::new();
    let mut a = Probe::new(cv.wait(m.try_lock().unwrap()));
    a.pending();
    let mut b = Probe::new(cv.wait(m.try_lock().unwrap()));
    b.pending();
    cv.notify_one();
    assert!(a.woken() && !b.woken());
    cv.notify_one();
    assert!(b.woken());
    drop(a.ready());
    drop(b.ready());
}

#[test]
fn condvar_dropped_woken_waiter_passes_notification() {
    let m = Mutex::new(());
    let cv = Condvar::new();
    let mut a = Probe::new(cv.wait(m.try_lock().unwrap()));
    a.pending();
    let mut b = Probe::new(cv.wait(m.try_lock().unwrap()));
    b.pending();
    let g = m.try_lock().unwrap();
    cv.notify_one();
    a.pending(); // woken, waiting for the mutex
    drop(a);
    assert!(b.woken());
    drop(g);
    drop(b.ready());
}

#[test]
fn barrier_leader_and_reuse() {
    let b = Barrier::new(2);
    for _ in 0..3 {
        let mut x = Probe::new(b.wait());
        x.pending();
        let mut y = Probe::new(b.wait());
        let ry = y.ready();
        assert!(ry.is_leader());
        assert!(x.woken());
        assert!(!x.ready().is_leader());
    }
}

#[test]
fn barrier_dropped_waiter_withdraws() {
    let b = Barrier::new(2);
    let mut x = Probe::new(b.wait());
    x.pending();
    drop(x);
    let mut y = Probe::new(b.wait());
    y.pending(); // still needs a second live task
    let mut z = Probe::new(b.wait());
    assert!(z.ready().is_leader());
    assert!(!y.ready().is_leader());
}

/// A finished `wait()` polled again must not arrive a second time (it
/// would trip the next generation with one task missing): it panics, as
/// the other primitives' finished futures do, and the barrier still
/// needs `n` live tasks.
#[test]
fn barrier_wait_polled_after_completion_does_not_arrive_again() {
    let b = Barrier::new(2);
    let mut x = Probe::new(b.wait());
    x.pending();
    let mut y = Probe::new(b.wait());
    assert!(y.ready().is_leader());
    assert!(!x.ready().is_leader());
    for f in [&mut x, &mut y] {
        let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.poll()));
        assert!(again.is_err(), "a finished wait() polled again");
    }
    let mut z = Probe::new(b.wait());
    z.pending(); // the next generation still waits for two
    assert!(Probe::new(b.wait()).ready().is_leader());
    assert!(!z.ready().is_leader());
}

#[test]
fn semaphore_owned_permits_cross_threads() {
    fn is_static_send<T: Send + 'static>(_: &T) {}
    let s = Arc::new(Semaphore::new(1));
    let p = futures::executor::block_on(s.acquire_arc()).unwrap();
    let mut w = Probe::new(s.acquire_arc());
    is_static_send(&s.acquire_many_arc(1));
    w.pending();
    std::thread::spawn(move || drop(p)).join().unwrap();
    assert!(w.woken());
    let p2 = w.ready().unwrap();
    assert_eq!(s.available_permits(), 0);
    drop(p2);
    assert_eq!(s.available_permits(), 1);
}

#[test]
fn semaphore_add_permits_overflow_panics_and_changes_nothing() {
    let s = Semaphore::new(Semaphore::MAX_PERMITS - 1);
    // A registered waiter (its bits share the state word with the count).
    let mut all = Probe::new(s.acquire_many(Semaphore::MAX_PERMITS));
    all.pending();
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.add_permits(2)))
        .expect_err("overflowing add_permits must panic");
    assert_eq!(
        err.downcast_ref::<&str>(),
        Some(&"too many permits for a Semaphore")
    );
    assert_eq!(s.available_permits(), Semaphore::MAX_PERMITS - 1);
    assert!(!all.woken(), "a refused add woke a waiter");
    assert!(std::panic::catch_unwind(|| Semaphore::new(0).add_permits(usize::MAX)).is_err());
    // The waiter is still registered and gets the last permit's wake-up.
    s.add_permits(1);
    assert!(all.woken());
    let p = all.ready().unwrap();
    assert_eq!(p.permits(), Semaphore::MAX_PERMITS);
    assert_eq!(s.available_permits(), 0);
    drop(p);
    assert_eq!(s.available_permits(), Semaphore::MAX_PERMITS);
}

#[test]
fn semaphore_add_permits_counts_the_permits_held_out() {
    // Permits held come back with a plain add: an add_permits that fits
    // only because they are out would make their return wrap the count.
    let s = Semaphore::new(1);
    let p = s.try_acquire().unwrap();
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        s.add_permits(Semaphore::MAX_PERMITS)
    }))
    .expect_err("available + held above MAX_PERMITS must panic");
    assert_eq!(
        err.downcast_ref::<&str>(),
        Some(&"too many permits for a Semaphore")
    );
    drop(p);
    assert_eq!(s.available_permits(), 1);
    // Up to the limit counting the held ones works, and they come back.
    let p = s.try_acquire().unwrap();
    s.add_permits(Semaphore::MAX_PERMITS - 1);
    drop(p);
    assert_eq!(s.available_permits(), Semaphore::MAX_PERMITS);
    // Forgotten permits leave the count for good: room for new ones (a
    // token bucket that forgets each token and refills).
    let s = Semaphore::new(Semaphore::MAX_PERMITS);
    s.try_acquire_many(3).unwrap().forget();
    s.add_permits(3);
    assert_eq!(s.available_permits(), Semaphore::MAX_PERMITS);
}

#[test]
fn semaphore_acquire_of_zero_permits_ignores_the_priority_slot() {
    let s = Semaphore::new(1);
    let held = s.try_acquire().unwrap();
    let mut big = Probe::new(s.acquire());
    big.pending();
    std::thread::sleep(std::time::Duration::from_millis(2));
    drop(held); // wakes `big`...
    let barger = s.try_acquire().unwrap(); // ...but a newcomer takes the permit
    big.pending(); // waited past the bound: takes the priority slot
    assert_eq!(s.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    // Zero permits take nothing from the waiter with priority: at once.
    let mut zero = Probe::new(s.acquire_many(0));
    assert_eq!(zero.ready().unwrap().permits(), 0);
    assert_eq!(s.try_acquire_many(0).unwrap().permits(), 0);
    drop(barger);
    assert!(big.woken());
    drop(big.ready().unwrap());
    s.close();
    assert_eq!(s.try_acquire_many(0).unwrap_err(), TryAcquireError::Closed);
}

#[test]
fn event_wake_passed_on_from_before_a_reset_does_not_open_the_gate() {
    let e = Event::new(false);
    let mut a = Probe::new(e.wait());
    a.pending();
    e.set(); // notifies `a`...
    e.reset();
    let mut b = Probe::new(e.wait());
    b.pending();
    // ...which is dropped unpolled: its wake-up passes on to `b`, which
    // began waiting after the reset and must wait on.
    drop(a);
    assert!(
        b.poll().is_pending(),
        "a waiter that began after the reset got through"
    );
    e.set();
    assert!(b.needs_poll());
    b.ready();
    // A set made after a waiter began completes it even if reset before
    // the waiter runs (as documented).
    e.reset();
    let mut c = Probe::new(e.wait());
    c.pending();
    e.set();
    e.reset();
    c.ready();
}

#[test]
fn ring_buffer_finished_pop_and_push_leave_the_line() {
    let rb = RingBuffer::<u32, 1>::new();
    let mut b = Probe::new(rb.pop());
    let mut a = Probe::new(rb.pop());
    b.pending();
    a.pending();
    rb.try_push(1).unwrap(); // notifies `b`, first in line
    // `a` is polled anyway (a `select!` polls every branch), takes the
    // item, and is kept.
    assert!(matches!(a.poll(), Poll::Ready(Ok(1))));
    b.pending(); // nothing left: waits again
    rb.try_push(2).unwrap();
    assert!(
        b.needs_poll(),
        "the wake-up for the new item went to the finished pop"
    );
    assert_eq!(b.ready(), Ok(2));
    drop(a);
    // The same for pushes waiting for room.
    rb.try_push(3).unwrap();
    let mut d = Probe::new(rb.push(4));
    let mut c = Probe::new(rb.push(5));
    d.pending();
    c.pending();
    assert_eq!(rb.try_pop(), Ok(3)); // notifies `d`
    assert!(matches!(c.poll(), Poll::Ready(Ok(())))); // `c` takes the room, kept
    d.pending();
    assert_eq!(rb.try_pop(), Ok(5));
    assert!(
        d.needs_poll(),
        "the wake-up for the free slot went to the finished push"
    );
    assert!(matches!(d.poll(), Poll::Ready(Ok(()))));
    drop(c);
}
