//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

/// A waker that counts its wake-ups.
#[derive(Default)]
pub struct CountWaker(AtomicUsize);

impl Wake for CountWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A future under manual control: poll it and see whether it was woken.
pub struct Probe<F> {
    pub fut: Pin<Box<F>>,
    count: Arc<CountWaker>,
    waker: Waker,
    seen: usize,
}

impl<F: Future> Probe<F> {
    pub fn new(fut: F) -> Self {
        let count = Arc::new(CountWaker::default());
        let waker = Waker::from(count.clone());
        Self {
            fut: Box::pin(fut),
            count,
            waker,
            seen: 0,
        }
    }

    /// Woken since the last poll (or never polled).
    pub fn needs_poll(&self) -> bool {
        self.seen == 0 || self.wakes() >= self.seen
    }

    pub fn poll(&mut self) -> Poll<F::Output> {
        self.seen = self.wakes() + 1;
        let mut cx = Context::from_waker(&self.waker);
        self.fut.as_mut().poll(&mut cx)
    }

    /// Wake-ups received so far.
    pub fn wakes(&self) -> usize {
        self.count.0.load(Ordering::SeqCst)
    }

    pub fn woken(&self) -> bool {
        self.wakes() > 0
    }

    pub fn ready(&mut self) -> F::Output {
        match self.poll() {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("expected the future to be ready"),
        }
    }

    pub fn pending(&mut self) {
        assert!(
            self.poll().is_pending(),
            "expected the future to be pending"
        );
    }
}

pub fn assert_send_sync<T: Send + Sync>() {}
pub fn assert_send<T: Send>() {}

/// Executor-agnostic cooperative yield: pending once, waking itself.
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(move |cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// A tiny deterministic PRNG (xorshift) for seeded loops.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
