//! [`WaitQueue`]: a [`Waiters`] list plus a count of registered waiters,
//! so the hot paths of [`RingBuffer`](crate::RingBuffer) and
//! [`Queue`](crate::Queue) skip `notify` when nobody waits (with one fence
//! for both: `notify_additional_fenced`).
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

use crate::waiters::{Waiter, Waiters};

use crate::loom::atomic::{self, AtomicUsize, Ordering};

pub(crate) struct WaitQueue {
    waiters: AtomicUsize,
    event: Waiters,
}

impl WaitQueue {
    pub(crate) fn new() -> Self {
        Self {
            waiters: AtomicUsize::new(0),
            event: Waiters::new(),
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
            self.event.notify_additional_fenced(n);
        }
    }

    /// Wakes every registered waiter (rare paths: no skipping).
    pub(crate) fn notify_all(&self) {
        self.event.notify(usize::MAX);
    }

    /// Registers `slot` if it is empty, or polls its registration.
    ///
    /// `Ready(())` means "check your condition again": either the slot was
    /// just registered (the re-check the protocol needs) or it was notified
    /// (the registration is then used up and the slot empty again). Every
    /// owner of a non-empty slot must pass it to [`unregister`](Self::unregister)
    /// before dropping it.
    pub(crate) fn poll_slot(&self, slot: &mut WaitSlot, cx: &mut Context<'_>) -> Poll<()> {
        match &mut slot.0 {
            None => {
                let inner = self.event.listen();
                self.waiters.fetch_add(1, Ordering::SeqCst);
                atomic::fence(Ordering::SeqCst);
                slot.0 = Some(inner);
                Poll::Ready(())
            }
            Some(l) => {
                if Pin::new(l).poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.unregister(slot);
                Poll::Ready(())
            }
        }
    }

    /// Empties `slot`, undoing its registration; a wake-up it got but did not
    /// use passes to the next listener. Does nothing if it is empty.
    pub(crate) fn unregister(&self, slot: &mut WaitSlot) {
        if slot.0.take().is_some() {
            self.waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// What a waiter listens to: an [`Event`], or a [`WaitQueue`] (which counts
/// its listeners).
pub(crate) trait Listen<'a> {
    /// The registration; dropping it unregisters.
    type Listener: Future<Output = ()> + Unpin;
    fn listen(&'a self) -> Self::Listener;
}

impl<'a> Listen<'a> for Waiters {
    type Listener = Waiter;
    fn listen(&'a self) -> Waiter {
        Waiters::listen(self)
    }
}

impl<'a> Listen<'a> for WaitQueue {
    type Listener = Listener<'a>;
    fn listen(&'a self) -> Listener<'a> {
        WaitQueue::listen(self)
    }
}

/// One step of the loop every waiting future here runs: check the
/// condition, and when it fails, `ready!(poll_listen(..))` and loop.
///
/// With `slot` empty it listens and returns `Ready(())`: check again, as a
/// change between the failed check and the registration notified nobody.
/// With a registration in `slot` it polls it: `Pending` to sleep, or, once
/// notified, `Ready(())` with the slot emptied: check again.
pub(crate) fn poll_listen<'a, Q: Listen<'a>>(
    q: &'a Q,
    slot: &mut Option<Q::Listener>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    match slot {
        None => *slot = Some(q.listen()),
        Some(l) => {
            core::task::ready!(Pin::new(l).poll(cx));
            *slot = None;
        }
    }
    Poll::Ready(())
}

/// A registration that does not borrow its [`WaitQueue`], for a handle that
/// keeps it between polls while owning the queue through an `Arc` (a channel
/// receiver's `poll_recv`). Its owner unregisters it through the queue.
#[derive(Default)]
pub(crate) struct WaitSlot(Option<Waiter>);

impl WaitSlot {
    /// Returns `true` while registered.
    pub(crate) fn is_registered(&self) -> bool {
        self.0.is_some()
    }
}

/// A registered waiter; unregisters on drop (a wake-up it got but did not use
/// passes to the next listener).
pub(crate) struct Listener<'a> {
    inner: Waiter,
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
