//! The receive side of the queues and channels counts against the
//! running task's budget (`coro_core::coop`): a consumer whose items are
//! always there still yields to the other tasks of its thread, and an
//! item is never taken by a poll that yields.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use coro_core::coop;
use coro_sync::{Queue, RingBuffer, mpsc};

/// Poll `next` until it yields, inside one task poll; how many were ready.
fn ready_in_one_poll(mut next: impl FnMut(&mut Context<'_>) -> Poll<()>) -> usize {
    let mut cx = Context::from_waker(Waker::noop());
    coop::budgeted(|| {
        let mut n = 0;
        while next(&mut cx).is_ready() {
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
