//! Test helpers: gates (futures completed from outside), drop counters and
//! counting wakers.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

#[derive(Default)]
struct GateState {
    open: bool,
    waker: Option<Waker>,
}

/// A switch that completes the futures waiting on it when opened.
#[derive(Clone, Default)]
pub struct Gate {
    state: Arc<Mutex<GateState>>,
    polls: Arc<AtomicUsize>,
}

impl Gate {
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens the gate and wakes the waiting future.
    pub fn open(&self) {
        let waker = {
            let mut s = self.state.lock().unwrap();
            s.open = true;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Wakes the waiting future without opening the gate.
    pub fn wake_spuriously(&self) {
        let waker = self.state.lock().unwrap().waker.clone();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Whether a future has registered a waker (it was polled and is pending).
    pub fn has_waiter(&self) -> bool {
        self.state.lock().unwrap().waker.is_some()
    }

    /// Number of polls of every `wait` future of this gate.
    pub fn polls(&self) -> usize {
        self.polls.load(Ordering::SeqCst)
    }

    /// A future that returns `value` once the gate is open.
    pub fn wait<T: Unpin>(&self, value: T) -> GateFuture<T> {
        GateFuture {
            gate: self.clone(),
            value: Some(value),
        }
    }
}

pub struct GateFuture<T> {
    gate: Gate,
    value: Option<T>,
}

impl<T: Unpin> Future for GateFuture<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        self.gate.polls.fetch_add(1, Ordering::SeqCst);
        let mut s = self.gate.state.lock().unwrap();
        if s.open {
            drop(s);
            Poll::Ready(self.value.take().expect("polled after completion"))
        } else {
            s.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

/// Counts how many times the values it hands out are dropped.
#[derive(Clone, Default)]
pub struct DropCounter(Arc<AtomicUsize>);

impl DropCounter {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn token(&self) -> DropToken {
        DropToken(self.0.clone())
    }
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

pub struct DropToken(Arc<AtomicUsize>);

impl Drop for DropToken {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A waker that counts its wake-ups.
#[derive(Default)]
pub struct CountingWaker(AtomicUsize);

impl CountingWaker {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    pub fn wakes(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls `fut` once with `waker`.
pub fn poll_once<F: Future + Unpin>(fut: &mut F, waker: &Arc<CountingWaker>) -> Poll<F::Output> {
    let waker = Waker::from(waker.clone());
    Pin::new(fut).poll(&mut Context::from_waker(&waker))
}
