//! [`WaitQueue`]: the [`Waiters`] list of the queues and channels, with
//! the registration helpers they share (a slot kept next to an `Arc` of
//! the state, [`poll_listen`]).
//!
//! The protocol is the list's own (see `waiters`): a waiter registers,
//! then re-checks the queue before sleeping; a notifier changes the queue,
//! then notifies, which skips the list's lock when nobody waits. Either
//! the notifier sees the registration or the waiter's re-check sees the
//! change. Modelled in `tests/loom.rs` (ring buffer and queue models).

use core::future::Future;
use core::marker::PhantomData;
use core::pin::Pin;
use core::task::{Context, Poll};

use crate::waiters::{Waiter, Waiters};

pub(crate) struct WaitQueue {
    event: Waiters,
}

impl WaitQueue {
    pub(crate) fn new() -> Self {
        Self {
            event: Waiters::new(),
        }
    }

    /// Registers a waiter; the caller must re-check its condition afterwards.
    pub(crate) fn listen(&self) -> Listener<'_> {
        Listener {
            inner: self.event.listen(),
            queue: PhantomData,
        }
    }

    /// Wakes `n` more waiters, if any are registered. Call after the change
    /// they wait for.
    #[inline]
    pub(crate) fn notify_additional(&self, n: usize) {
        self.event.notify_additional(n);
    }

    /// Wakes every registered waiter.
    pub(crate) fn notify_all(&self) {
        self.event.notify(usize::MAX);
    }

    /// Registers `slot` if it is empty, or polls its registration.
    ///
    /// `Ready(())` means "check your condition again": either the slot was
    /// just registered (the re-check the protocol needs) or it was notified
    /// (the registration is then used up and the slot empty again). A
    /// slot dropped while registered unregisters itself.
    pub(crate) fn poll_slot(&self, slot: &mut WaitSlot, cx: &mut Context<'_>) -> Poll<()> {
        match &mut slot.0 {
            None => {
                slot.0 = Some(self.event.listen());
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
        slot.0 = None;
    }
}

/// What a waiter listens to: a [`Waiters`] list, or a [`WaitQueue`].
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
/// receiver's `poll_recv`). Emptied through the queue
/// ([`WaitQueue::unregister`]) or dropped, it leaves the list.
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
    queue: PhantomData<&'a WaitQueue>,
}

impl Future for Listener<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.inner).poll(cx)
    }
}
