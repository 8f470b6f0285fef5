//! [`WaitQueue`]: an `event_listener::Event` plus a count of registered
//! waiters, so the hot paths of [`RingBuffer`](crate::RingBuffer) and
//! [`Queue`](crate::Queue) skip `notify` (which takes the event's list lock
//! even when nobody listens) when nobody waits.
//!
//! The protocol is the store-buffer pattern with a `SeqCst` fence on each side:
//! - a waiter listens, increments the count, fences, then re-checks the
//!   queue before sleeping;
//! - a notifier changes the queue, fences, then reads the count and notifies
//!   only if it is non-zero.
//!
//! Either the notifier sees the count (and the listener, registered before the
//! increment, gets the wake-up) or the waiter's re-check sees the change.
//! Modelled in `tests/loom.rs` (ring buffer and queue models).

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use event_listener::{Event, EventListener, IntoNotification};

use crate::loom::atomic::{self, AtomicUsize, Ordering};

pub(crate) struct WaitQueue {
    waiters: AtomicUsize,
    event: Event,
}

impl WaitQueue {
    pub(crate) fn new() -> Self {
        Self {
            waiters: AtomicUsize::new(0),
            event: Event::new(),
        }
    }

    /// Registers a waiter; the caller must re-check its condition afterwards.
    pub(crate) fn listen(&self) -> Listener<'_> {
        let inner = self.event.listen();
        self.waiters.fetch_add(1, Ordering::SeqCst);
        atomic::fence(Ordering::SeqCst);
        Listener { inner, queue: self }
    }

    /// Wakes `n` more waiters, if any are registered. Call after the change
    /// they wait for.
    #[inline]
    pub(crate) fn notify_additional(&self, n: usize) {
        atomic::fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::Acquire) != 0 {
            // The fence above is the one `notify` would emit.
            self.event.notify(n.additional().relaxed());
        }
    }

    /// Wakes every registered waiter (rare paths: no skipping).
    pub(crate) fn notify_all(&self) {
        self.event.notify(usize::MAX);
    }
}

/// A registered waiter; unregisters on drop (a wake-up it got but did not use
/// passes to the next listener).
pub(crate) struct Listener<'a> {
    inner: EventListener,
    queue: &'a WaitQueue,
}

impl Future for Listener<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.inner).poll(cx)
    }
}

impl Drop for Listener<'_> {
    fn drop(&mut self) {
        self.queue.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}
