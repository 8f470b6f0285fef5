//! Lost wake-ups, hand-polled: for every primitive, several releases (pushes,
//! unlocks, notifications) happen before the first woken waiter is polled
//! again, and every waiter that can then make progress must have been woken.
//! And the "notified, then dropped" variant: a waiter is woken, its future is
//! dropped without being polled, and the wake-up must reach another waiter.
//!
//! The waiter list's plain `notify(n)` (event-listener's semantics) counts
//! listeners that were notified but have not been polled yet towards `n`,
//! so a second `notify(1)` before the first woken listener runs wakes
//! nobody. Each primitive must either wake
//! *additional* listeners or be built so that one pending wake-up suffices.
#![cfg(not(loom))]
#![allow(missing_docs)]

mod common;

use common::Probe;
use coro_sync::{Barrier, Condvar, Event, Latch, Mutex, Queue, RingBuffer, Semaphore, SharedMutex};

// ---------------------------------------------------------------- Semaphore

#[test]
fn semaphore_two_add_permits_before_first_woken_waiter_runs() {
    let s = Semaphore::new(0);
    let mut a = Probe::new(s.acquire());
    let mut b = Probe::new(s.acquire());
    a.pending();
    b.pending();
    s.add_permits(1);
    s.add_permits(1);
    assert_eq!(a.wakes(), 1);
    assert_eq!(
        b.wakes(),
        1,
        "second release did not wake the second waiter"
    );
    a.ready().unwrap().forget();
    b.ready().unwrap().forget();
    assert_eq!(s.available_permits(), 0);
}

#[test]
fn semaphore_two_permit_drops_before_first_woken_waiter_runs() {
    let s = Semaphore::new(2);
    let p1 = s.try_acquire().unwrap();
    let p2 = s.try_acquire().unwrap();
    let mut a = Probe::new(s.acquire());
    let mut b = Probe::new(s.acquire());
    a.pending();
    b.pending();
    drop(p1);
    drop(p2);
    assert!(a.woken());
    assert!(b.woken(), "second release did not wake the second waiter");
    drop(a.ready().unwrap());
    drop(b.ready().unwrap());
    assert_eq!(s.available_permits(), 2);
}

#[test]
fn semaphore_notified_then_dropped_after_two_releases() {
    let s = Semaphore::new(0);
    let mut a = Probe::new(s.acquire());
    let mut b = Probe::new(s.acquire());
    let mut c = Probe::new(s.acquire());
    a.pending();
    b.pending();
    c.pending();
    s.add_permits(1);
    s.add_permits(1);
    assert!(a.woken());
    drop(a);
    // Two permits, two live waiters: both must be woken.
    assert!(b.woken(), "b not woken");
    assert!(c.woken(), "the dropped waiter's wake-up was lost");
    b.ready().unwrap().forget();
    c.ready().unwrap().forget();
    assert_eq!(s.available_permits(), 0);
}

#[test]
fn semaphore_barger_between_releases_strands_nobody() {
    let s = Semaphore::new(0);
    let mut a = Probe::new(s.acquire());
    let mut b = Probe::new(s.acquire());
    a.pending();
    b.pending();
    s.add_permits(1);
    // A newcomer takes the permit meant for the woken waiter...
    let barger = s.try_acquire().unwrap();
    s.add_permits(1);
    assert!(a.woken());
    // ...the first woken waiter takes what is there, the other one waits for
    // the barger's permit and is woken when it comes back.
    let pa = a.ready().unwrap();
    let before = b.wakes();
    if b.woken() {
        b.pending(); // a spurious wake-up: nothing left for it
    }
    drop(barger);
    assert!(b.wakes() > before, "returned permit woke nobody");
    drop(b.ready().unwrap());
    drop(pa);
    assert_eq!(s.available_permits(), 2);
}

// --------------------------------------------------------------- RingBuffer

#[test]
fn ring_buffer_two_pushes_before_first_woken_consumer_runs() {
    let rb = RingBuffer::<u32, 4>::new();
    let mut a = Probe::new(rb.pop());
    let mut b = Probe::new(rb.pop());
    a.pending();
    b.pending();
    rb.try_push(1).unwrap();
    rb.try_push(2).unwrap();
    assert!(a.woken() && b.woken());
    assert_eq!(a.ready(), Ok(1));
    assert_eq!(b.ready(), Ok(2));
}

#[test]
fn ring_buffer_two_pops_before_first_woken_producer_runs() {
    let rb = RingBuffer::<u32, 2>::new();
    rb.try_push(1).unwrap();
    rb.try_push(2).unwrap();
    let mut a = Probe::new(rb.push(3));
    let mut b = Probe::new(rb.push(4));
    a.pending();
    b.pending();
    assert_eq!(rb.try_pop(), Ok(1));
    assert_eq!(rb.try_pop(), Ok(2));
    assert!(a.woken() && b.woken());
    a.ready().unwrap();
    b.ready().unwrap();
    assert_eq!(rb.try_pop(), Ok(3));
    assert_eq!(rb.try_pop(), Ok(4));
}

#[test]
fn ring_buffer_notified_consumer_dropped_after_two_pushes() {
    let rb = RingBuffer::<u32, 4>::new();
    let mut a = Probe::new(rb.pop());
    let mut b = Probe::new(rb.pop());
    let mut c = Probe::new(rb.pop());
    a.pending();
    b.pending();
    c.pending();
    rb.try_push(1).unwrap();
    rb.try_push(2).unwrap();
    assert!(a.woken());
    drop(a);
    assert!(
        b.woken() && c.woken(),
        "the dropped consumer's wake-up was lost"
    );
    assert_eq!(b.ready(), Ok(1));
    assert_eq!(c.ready(), Ok(2));
}

#[test]
fn ring_buffer_notified_producer_dropped_passes_slot_on() {
    let rb = RingBuffer::<u32, 1>::new();
    rb.try_push(0).unwrap();
    let mut a = Probe::new(rb.push(1));
    let mut b = Probe::new(rb.push(2));
    a.pending();
    b.pending();
    assert_eq!(rb.try_pop(), Ok(0));
    assert!(a.woken());
    drop(a);
    assert!(b.woken(), "the dropped producer's wake-up was lost");
    b.ready().unwrap();
    assert_eq!(rb.try_pop(), Ok(2));
}

// -------------------------------------------------------------------- Queue

#[test]
fn queue_two_pushes_before_first_woken_consumer_runs() {
    let q = Queue::new();
    let mut a = Probe::new(q.pop());
    let mut b = Probe::new(q.pop());
    a.pending();
    b.pending();
    q.push(1).unwrap();
    q.push(2).unwrap();
    assert!(a.woken() && b.woken());
    assert_eq!(a.ready(), Ok(1));
    assert_eq!(b.ready(), Ok(2));
}

#[test]
fn queue_notified_consumer_dropped_after_two_pushes() {
    let q = Queue::new();
    let mut a = Probe::new(q.pop());
    let mut b = Probe::new(q.pop());
    let mut c = Probe::new(q.pop());
    a.pending();
    b.pending();
    c.pending();
    q.push(1).unwrap();
    q.push(2).unwrap();
    assert!(a.woken());
    drop(a);
    assert!(
        b.woken() && c.woken(),
        "the dropped consumer's wake-up was lost"
    );
    assert_eq!(b.ready(), Ok(1));
    assert_eq!(c.ready(), Ok(2));
}

/// A stream keeps its place between polls (it has no future to drop): one
/// whose `next()` lost a `select!` and is not polled again must not take
/// a push's wake-up from a consumer waiting in `pop`.
#[test]
fn queue_push_wakes_a_pop_queued_behind_an_idle_stream() {
    use futures::StreamExt;
    let q = Queue::new();
    let mut s = q.stream();
    {
        let mut next = Probe::new(s.next());
        next.pending();
    }
    let mut pop = Probe::new(q.pop());
    pop.pending();
    q.push(1).unwrap();
    assert!(
        pop.woken(),
        "the only consumer woken is a stream nobody polls"
    );
    assert_eq!(pop.ready(), Ok(1));
    // The stream was woken too, and finds nothing: it waits again.
    let mut next = Probe::new(s.next());
    next.pending();
    q.push(2).unwrap();
    assert!(next.woken());
    assert_eq!(next.ready(), Some(2));
}

// -------------------------------------------------------------------- Latch

#[test]
fn latch_count_downs_before_woken_waiters_run() {
    let l = Latch::new(2);
    let mut a = Probe::new(l.wait());
    let mut b = Probe::new(l.wait());
    a.pending();
    b.pending();
    l.count_down(1);
    l.count_down(1);
    assert!(a.woken() && b.woken());
    a.ready();
    b.ready();
}

#[test]
fn latch_notified_waiter_dropped_strands_nobody() {
    let l = Latch::new(1);
    let mut a = Probe::new(l.wait());
    let mut b = Probe::new(l.wait());
    a.pending();
    b.pending();
    l.count_down(1);
    assert!(a.woken());
    drop(a);
    assert!(b.woken());
    b.ready();
}

// -------------------------------------------------------------------- Event

#[test]
fn event_set_reset_set_before_woken_waiters_run() {
    let e = Event::new(false);
    let mut a = Probe::new(e.wait());
    let mut b = Probe::new(e.wait());
    a.pending();
    b.pending();
    e.set();
    e.reset();
    // A waiter that registers between the two sets is woken by the second.
    let mut c = Probe::new(e.wait());
    c.pending();
    e.set();
    assert!(a.woken() && b.woken() && c.woken());
    a.ready();
    b.ready();
    c.ready();
}

#[test]
fn event_notified_waiter_dropped_strands_nobody() {
    let e = Event::new(false);
    let mut a = Probe::new(e.wait());
    let mut b = Probe::new(e.wait());
    a.pending();
    b.pending();
    e.set();
    assert!(a.woken());
    drop(a);
    e.reset();
    assert!(b.woken());
    b.ready();
}

// ------------------------------------------------------------------ Barrier

#[test]
fn barrier_two_trips_before_first_woken_waiter_runs() {
    let b = Barrier::new(2);
    let mut x = Probe::new(b.wait());
    x.pending();
    assert!(Probe::new(b.wait()).ready().is_leader());
    // The next generation trips before `x` is polled again.
    let mut y = Probe::new(b.wait());
    y.pending();
    assert!(Probe::new(b.wait()).ready().is_leader());
    assert!(x.woken() && y.woken());
    assert!(!x.ready().is_leader());
    assert!(!y.ready().is_leader());
}

#[test]
fn barrier_notified_waiter_dropped_keeps_the_count() {
    let b = Barrier::new(3);
    let mut x = Probe::new(b.wait());
    let mut y = Probe::new(b.wait());
    x.pending();
    y.pending();
    assert!(Probe::new(b.wait()).ready().is_leader());
    assert!(x.woken());
    // Released already: dropping it must not withdraw from the next generation.
    drop(x);
    assert!(y.woken());
    assert!(!y.ready().is_leader());
    let mut p = Probe::new(b.wait());
    let mut q = Probe::new(b.wait());
    p.pending();
    q.pending();
    assert!(Probe::new(b.wait()).ready().is_leader());
    assert!(p.woken() && q.woken());
    p.ready();
    q.ready();
}

// ------------------------------------------------------------------ Condvar

#[test]
fn condvar_two_notify_one_before_first_woken_waiter_runs() {
    let m = Mutex::new(0);
    let cv = Condvar::new();
    let mut a = Probe::new(cv.wait(m.try_lock().unwrap()));
    a.pending();
    let mut b = Probe::new(cv.wait(m.try_lock().unwrap()));
    b.pending();
    cv.notify_one();
    cv.notify_one();
    assert_eq!(a.wakes(), 1);
    assert_eq!(b.wakes(), 1, "second notify_one woke nobody");
    drop(a.ready());
    drop(b.ready());
}

#[test]
fn condvar_notified_then_dropped_before_any_poll_after_two_notifies() {
    let m = Mutex::new(());
    let cv = Condvar::new();
    let mut a = Probe::new(cv.wait(m.try_lock().unwrap()));
    a.pending();
    let mut b = Probe::new(cv.wait(m.try_lock().unwrap()));
    b.pending();
    let mut c = Probe::new(cv.wait(m.try_lock().unwrap()));
    c.pending();
    cv.notify_one();
    cv.notify_one();
    assert!(a.woken());
    // Dropped with its notification unconsumed (never polled since).
    drop(a);
    assert!(
        b.woken() && c.woken(),
        "the dropped waiter's notification was lost"
    );
    drop(b.ready());
    drop(c.ready());
}

// -------------------------------------------------------------------- Mutex

#[test]
fn mutex_two_unlocks_before_first_woken_waiter_runs() {
    let m = Mutex::new(0);
    let g = m.try_lock().unwrap();
    let mut a = Probe::new(m.lock());
    let mut b = Probe::new(m.lock());
    a.pending();
    b.pending();
    drop(g);
    // A newcomer barges in and unlocks again before `a` runs.
    drop(
        m.try_lock()
            .expect("barging is allowed while nobody is starved"),
    );
    // Only one of them can hold the lock: one wake-up suffices.
    assert!(a.woken());
    let mut ga = a.ready();
    *ga += 1;
    drop(ga);
    assert!(b.woken(), "unlock after the first waiter woke nobody");
    assert_eq!(*b.ready(), 1);
}

#[test]
fn mutex_notified_then_dropped_after_two_unlocks() {
    let m = Mutex::new(());
    let g = m.try_lock().unwrap();
    let mut a = Probe::new(m.lock());
    let mut b = Probe::new(m.lock());
    a.pending();
    b.pending();
    drop(g);
    drop(
        m.try_lock()
            .expect("barging is allowed while nobody is starved"),
    );
    assert!(a.woken());
    drop(a);
    assert!(b.woken(), "the dropped waiter's wake-up was lost");
    drop(b.ready());
}

// -------------------------------------------------------------- SharedMutex

#[test]
fn shared_mutex_write_unlock_wakes_reader_and_writer_then_reader_unlock_wakes_writer() {
    let m = SharedMutex::new(0);
    let w1 = m.try_write().unwrap();
    let mut r = Probe::new(m.read());
    let mut w2 = Probe::new(m.write());
    r.pending();
    w2.pending();
    drop(w1);
    assert!(r.woken() && w2.woken());
    let rg = r.ready();
    w2.pending(); // announced, waits for the reader inside
    drop(rg);
    assert!(w2.wakes() >= 2, "last reader did not wake the writer");
    drop(w2.ready());
}

/// Writers that keep coming (a queued `write()`, a `try_write` barging in
/// as the last one leaves) do not keep a waiting reader out: the readers
/// waiting when a writer leaves go in before the next writer.
#[test]
fn shared_mutex_a_stream_of_writers_does_not_starve_a_waiting_reader() {
    let m = SharedMutex::new(0);
    let mut held = m.try_write().unwrap();
    let mut r = Probe::new(m.read());
    r.pending();
    for round in 0..3 {
        // A queued writer and the holder leaving: the reader goes first.
        let mut w = Probe::new(m.write());
        w.pending();
        drop(held);
        assert!(
            m.try_write().is_none(),
            "round {round}: a writer barged in ahead of the waiting reader"
        );
        assert!(r.woken());
        let g = r.ready();
        w.pending(); // announced: waits for the reader it let in
        drop(g);
        held = w.ready();
        r = Probe::new(m.read());
        r.pending();
    }
    drop(held);
    drop(r.ready());
}

/// A reader let in as a writer left, dropped before it took its guard,
/// gives the read lock back: the next writer is not held up by it.
#[test]
fn shared_mutex_an_admitted_reader_dropped_unpolled_releases_its_lock() {
    let m = SharedMutex::new(0);
    let held = m.try_write().unwrap();
    let mut r1 = Probe::new(m.read());
    let mut r2 = Probe::new(m.read());
    r1.pending();
    r2.pending();
    drop(held); // both let in
    assert!(m.try_write().is_none(), "the readers hold it");
    drop(r1);
    let g = r2.ready();
    assert!(m.try_write().is_none());
    drop(g);
    *m.try_write().expect("both readers gone: free") = 1;
    assert_eq!(*m.try_read().unwrap(), 1);
}

#[test]
fn shared_mutex_two_reader_unlocks_before_writer_runs() {
    let m = SharedMutex::new(0);
    let r1 = m.try_read().unwrap();
    let r2 = m.try_read().unwrap();
    let mut w = Probe::new(m.write());
    w.pending();
    drop(r1);
    drop(r2);
    assert!(w.woken());
    *w.ready() = 1;
}

#[test]
fn shared_mutex_notified_writer_dropped_releases_readers_and_next_writer() {
    let m = SharedMutex::new(0);
    let r1 = m.try_read().unwrap();
    let mut w = Probe::new(m.write());
    w.pending(); // announced: new readers wait
    let mut r2 = Probe::new(m.read());
    let mut w3 = Probe::new(m.write());
    r2.pending();
    w3.pending();
    drop(r1);
    assert!(w.woken());
    drop(w); // notified, never polled again
    assert!(
        r2.woken(),
        "reader held back by the dropped writer not woken"
    );
    assert!(w3.woken(), "next writer not woken");
    let rg = r2.ready();
    w3.pending();
    drop(rg);
    *w3.ready() = 3;
    assert_eq!(*m.try_read().unwrap(), 3);
}
