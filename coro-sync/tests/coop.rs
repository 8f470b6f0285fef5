//! Primitives that may never wait count against the running task's
//! budget (`coro_core::coop`): receiving from the queues and channels,
//! pushing to the ring buffer, sending on a bounded channel, acquiring a
//! lock or a permit. A loop over them whose items, room, lock or permits
//! are always there still yields to the other tasks of its thread, and a
//! poll that yields takes nothing (no item, no slot, no permit, no lock).

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use coro_core::coop;
use coro_sync::{Mutex, Queue, RingBuffer, Semaphore, SharedMutex, broadcast, mpsc, watch};

/// Poll `next` until it yields, inside one task poll; how many were ready
/// (at most 4 budgets' worth: a loop that never yields is the bug).
fn ready_in_one_poll(mut next: impl FnMut(&mut Context<'_>) -> Poll<()>) -> usize {
    let mut cx = Context::from_waker(Waker::noop());
    let most = 4 * usize::from(coop::BUDGET);
    coop::budgeted(|| {
        let mut n = 0;
        while n < most && next(&mut cx).is_ready() {
            n += 1;
        }
        n
    })
}

#[test]
fn queue_pops_yield_after_the_budget_and_lose_nothing() {
    let q = Queue::new();
    for i in 0..200 {
        q.push(i).unwrap();
    }
    let n = ready_in_one_poll(|cx| pin!(q.pop()).poll(cx).map(|r| assert!(r.is_ok())));
    assert_eq!(n, usize::from(coop::BUDGET));
    assert_eq!(q.len(), 200 - n);
    // Outside a task: no budget.
    let mut cx = Context::from_waker(Waker::noop());
    assert_eq!(pin!(q.pop()).poll(&mut cx), Poll::Ready(Ok(128)));
}

#[test]
fn channel_receives_yield_after_the_budget_and_lose_nothing() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    for i in 0..200 {
        tx.send(i).unwrap();
    }
    let n = ready_in_one_poll(|cx| rx.poll_recv(cx).map(|v| assert!(v.is_some())));
    assert_eq!(n, usize::from(coop::BUDGET));
    let mut cx = Context::from_waker(Waker::noop());
    assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(128)));
}

#[test]
fn ring_buffer_pops_yield_after_the_budget_and_lose_nothing() {
    let rb = RingBuffer::<u32, 256>::new();
    for i in 0..200 {
        rb.try_push(i).unwrap();
    }
    let n = ready_in_one_poll(|cx| pin!(rb.pop()).poll(cx).map(|r| assert!(r.is_ok())));
    assert_eq!(n, usize::from(coop::BUDGET));
    let mut cx = Context::from_waker(Waker::noop());
    assert_eq!(pin!(rb.pop()).poll(&mut cx), Poll::Ready(Ok(128)));
}

#[test]
fn ring_buffer_pushes_yield_after_the_budget_and_keep_the_value() {
    let rb = RingBuffer::<u32, 256>::new();
    let mut i = 0;
    let n = ready_in_one_poll(|cx| {
        let r = pin!(rb.push(i)).poll(cx).map(|r| assert!(r.is_ok()));
        i += 1;
        r
    });
    assert_eq!(n, usize::from(coop::BUDGET));
    assert_eq!(rb.len(), n);
    assert_eq!(rb.try_pop(), Ok(0));
}

#[test]
fn bounded_sends_yield_after_the_budget_and_take_no_slot() {
    let (tx, mut rx) = mpsc::channel(256);
    let mut i = 0;
    let n = ready_in_one_poll(|cx| {
        let r = pin!(tx.send(i)).poll(cx).map(|r| assert!(r.is_ok()));
        i += 1;
        r
    });
    assert_eq!(n, usize::from(coop::BUDGET));
    assert_eq!(rx.len(), n);
    // The yielding poll held no slot: the rest of the capacity is free.
    assert_eq!(tx.capacity(), 256 - n);
    let n = ready_in_one_poll(|cx| pin!(tx.reserve()).poll(cx).map(|p| drop(p.unwrap())));
    assert_eq!(n, usize::from(coop::BUDGET));
    assert_eq!(tx.capacity(), 256 - 128);
    assert_eq!(rx.try_recv(), Ok(0));
}

#[test]
fn lock_loops_yield_after_the_budget_and_hold_nothing() {
    let m = Mutex::new(0u32);
    let n = ready_in_one_poll(|cx| pin!(m.lock()).poll(cx).map(|mut g| *g += 1));
    assert_eq!(n, usize::from(coop::BUDGET));
    assert_eq!(
        *m.try_lock().expect("the yielding poll left it unlocked"),
        128
    );

    let rw = SharedMutex::new(0u32);
    let n = ready_in_one_poll(|cx| pin!(rw.write()).poll(cx).map(|mut g| *g += 1));
    assert_eq!(n, usize::from(coop::BUDGET));
    let n = ready_in_one_poll(|cx| pin!(rw.read()).poll(cx).map(|g| assert_eq!(*g, 128)));
    assert_eq!(n, usize::from(coop::BUDGET));
    assert!(rw.try_write().is_some(), "the yielding polls left it free");
}

#[test]
fn permit_loops_yield_after_the_budget_and_take_no_permit() {
    let s = Semaphore::new(3);
    let n = ready_in_one_poll(|cx| pin!(s.acquire()).poll(cx).map(|p| drop(p.unwrap())));
    assert_eq!(n, usize::from(coop::BUDGET));
    assert_eq!(s.available_permits(), 3);
}

#[test]
fn broadcast_receives_yield_after_the_budget_and_lose_nothing() {
    let (tx, mut rx) = broadcast::channel(256);
    for i in 0..200 {
        tx.send(i).unwrap();
    }
    let n = ready_in_one_poll(|cx| pin!(rx.recv()).poll(cx).map(|r| assert!(r.is_ok())));
    assert_eq!(n, usize::from(coop::BUDGET));
    assert_eq!(rx.try_recv(), Ok(128));
}

#[test]
fn watch_changes_yield_after_the_budget_and_stay_unseen() {
    let (tx, mut rx) = watch::channel(0u32);
    let mut i = 0;
    let n = ready_in_one_poll(|cx| {
        i += 1;
        tx.send(i).unwrap();
        pin!(rx.changed()).poll(cx).map(|r| assert!(r.is_ok()))
    });
    assert_eq!(n, usize::from(coop::BUDGET));
    // The change the yielding poll saw is still unseen.
    assert_eq!(rx.has_changed(), Ok(true));
}
