//! Random operation sequences on coro-sync primitives, with pending futures
//! polled by hand and dropped at random: a Semaphore never loses or invents
//! a permit, a Queue never loses, duplicates or reorders an item, a
//! RingBuffer keeps FIFO order and its capacity. A pending future is polled
//! again only once its waker was woken, as an executor would, and a step
//! that leaves permits free (or items queued) with every registered waiter
//! un-woken is a lost wake-up.
#![no_main]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use coro::sync::{Queue, RingBuffer, Semaphore};
use libfuzzer_sys::fuzz_target;

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Set when its waker is woken.
#[derive(Default)]
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A pending future with its own waker: polled first at once, later only
/// when woken.
struct Waiter<'a, T> {
    fut: Boxed<'a, T>,
    flag: Arc<Flag>,
    polled: bool,
}

impl<'a, T> Waiter<'a, T> {
    fn new(fut: impl Future<Output = T> + 'a) -> Self {
        Waiter {
            fut: Box::pin(fut),
            flag: Arc::default(),
            polled: false,
        }
    }

    /// `None`: not woken since its last poll, so not polled.
    fn poll(&mut self) -> Option<Poll<T>> {
        if self.polled && !self.flag.0.swap(false, Ordering::SeqCst) {
            return None;
        }
        self.polled = true;
        let waker = Waker::from(self.flag.clone());
        Some(self.fut.as_mut().poll(&mut Context::from_waker(&waker)))
    }

    /// Registered (polled, pending) and not woken since.
    fn asleep(&self) -> bool {
        self.polled && !self.flag.0.load(Ordering::SeqCst)
    }
}

/// With something to take (`available`), some waiter must be awake: a
/// fresh one (it polls next) or one woken since its last poll.
fn no_lost_wakeup<T>(pending: &[Waiter<'_, T>], available: bool, what: &str) {
    if available && !pending.is_empty() {
        assert!(
            pending.iter().any(|w| !w.asleep()),
            "lost wake-up: {what} with {} waiter(s) all asleep",
            pending.len()
        );
    }
}

fn semaphore(ops: &[u8]) {
    const N: usize = 4;
    let s = Semaphore::new(N);
    let mut held = Vec::new();
    let mut pending: Vec<Waiter<'_, _>> = Vec::new();
    for &op in ops {
        match op % 6 {
            0 => pending.push(Waiter::new(s.acquire())),
            1 => {
                if let Ok(p) = s.try_acquire() {
                    held.push(p);
                }
            }
            2 => {
                held.pop();
            }
            3 => {
                // Drop a pending acquire (maybe one that was handed a permit).
                if !pending.is_empty() {
                    let i = op as usize / 6 % pending.len();
                    drop(pending.remove(i));
                }
            }
            _ => {
                let mut i = 0;
                while i < pending.len() {
                    match pending[i].poll() {
                        Some(Poll::Ready(Ok(p))) => {
                            held.push(p);
                            drop(pending.remove(i));
                        }
                        Some(Poll::Ready(Err(_))) => panic!("semaphore closed unexpectedly"),
                        Some(Poll::Pending) | None => i += 1,
                    }
                }
            }
        }
        no_lost_wakeup(&pending, s.available_permits() > 0, "free permits");
        assert!(held.len() <= N, "more permits held than exist");
        assert!(held.len() + s.available_permits() <= N);
    }
    drop(pending);
    drop(held);
    assert_eq!(s.available_permits(), N, "a permit was lost");
}

fn queue(ops: &[u8]) {
    let q = Queue::new();
    let mut next_in = 0u32;
    let mut next_out = 0u32;
    let mut pending: Vec<Waiter<'_, _>> = Vec::new();
    for &op in ops {
        match op % 4 {
            0 | 1 => {
                q.push(next_in).unwrap();
                next_in += 1;
            }
            2 => pending.push(Waiter::new(q.pop())),
            _ => {
                if op & 0x80 != 0 && !pending.is_empty() {
                    drop(pending.remove(0)); // a dropped pop takes nothing
                }
                let mut i = 0;
                while i < pending.len() {
                    match pending[i].poll() {
                        Some(Poll::Ready(Ok(v))) => {
                            assert_eq!(v, next_out, "lost, duplicated or reordered");
                            next_out += 1;
                            drop(pending.remove(i));
                        }
                        Some(Poll::Ready(Err(_))) => panic!("queue closed unexpectedly"),
                        Some(Poll::Pending) | None => i += 1,
                    }
                }
            }
        }
        no_lost_wakeup(&pending, !q.is_empty(), "queued items");
    }
    drop(pending);
    while let Ok(v) = q.try_pop() {
        assert_eq!(v, next_out);
        next_out += 1;
    }
    assert_eq!(next_out, next_in, "items lost");
}

fn ring(ops: &[u8]) {
    let rb: RingBuffer<u32, 4> = RingBuffer::new();
    let mut next_in = 0u32;
    let mut next_out = 0u32;
    for &op in ops {
        if op % 2 == 0 {
            if rb.try_push(next_in).is_ok() {
                next_in += 1;
            }
        } else if let Ok(v) = rb.try_pop() {
            assert_eq!(v, next_out);
            next_out += 1;
        }
        assert!(rb.len() <= rb.capacity());
        assert_eq!(rb.len() as u32, next_in - next_out);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, ops)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => semaphore(ops),
        1 => queue(ops),
        _ => ring(ops),
    }
});
