//! The state the two halves of an [`mpsc`](super) channel share, and the
//! receiving end both receivers wrap.

use crate::loom::Arc;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use concurrent_queue::ConcurrentQueue;

use crate::event::{Event, EventWait};
use crate::loom::atomic::{AtomicUsize, Ordering};
use crate::semaphore::Semaphore;
use crate::wait_queue::{WaitQueue, WaitSlot};

use super::error::TryRecvError;

/// Bounded channels up to this capacity get a preallocated ring; larger ones
/// a queue that grows in small blocks, so that `channel(1 << 20)` used as a
/// "practically unbounded" channel does not allocate a megaslot up front.
const PREALLOCATE_MAX: usize = 1024;

/// The state both halves share.
pub(super) struct Chan<T> {
    pub(super) queue: ConcurrentQueue<T>,
    /// The receiver waits here for a value or for the end of the channel.
    pub(super) recv_ops: WaitQueue,
    pub(super) senders: AtomicUsize,
    /// Set once the receiver closed or was dropped; senders' `closed()`
    /// waits on it.
    pub(super) rx_closed: Event,
    /// Bounded channels: one permit per free slot, taken by a send or a
    /// [`Permit`](super::Permit) and given back when the receiver takes the value out.
    /// Closed by the receiver. `None`: unbounded.
    pub(super) slots: Option<Semaphore>,
    /// The bound (`0` when unbounded).
    pub(super) capacity: usize,
}

impl<T> Chan<T> {
    pub(super) fn new(bound: Option<usize>) -> Arc<Self> {
        let (queue, slots, capacity) = match bound {
            Some(cap) if cap <= PREALLOCATE_MAX => (
                ConcurrentQueue::bounded(cap),
                Some(Semaphore::new(cap)),
                cap,
            ),
            Some(cap) => (ConcurrentQueue::unbounded(), Some(Semaphore::new(cap)), cap),
            None => (ConcurrentQueue::unbounded(), None, 0),
        };
        Arc::new(Self {
            queue,
            recv_ops: WaitQueue::new(),
            senders: AtomicUsize::new(1),
            rx_closed: Event::new(false),
            slots,
            capacity,
        })
    }

    /// The slots of a bounded channel (only bounded handles call this).
    pub(super) fn slots(&self) -> &Semaphore {
        self.slots.as_ref().expect("a bounded channel")
    }

    /// Buffers `value` and wakes the receiver; gives the value back once the
    /// receiver is gone (or, unbounded, closed). A bounded caller holds a
    /// slot for it, so the queue cannot be full.
    #[inline]
    pub(super) fn push(&self, value: T) -> Result<(), T> {
        match self.queue.push(value) {
            Ok(()) => {
                self.recv_ops.notify_additional(1);
                Ok(())
            }
            Err(concurrent_queue::PushError::Closed(v)) => Err(v),
            Err(concurrent_queue::PushError::Full(_)) => {
                unreachable!("a bounded channel's queue has a slot for every held permit")
            }
        }
    }

    /// Gives a slot back without a value (a permit dropped unused, or a value
    /// refused because the receiver is gone).
    pub(super) fn release_unused_slot(&self) {
        let slots = self.slots();
        // (The release may wake a sender, whose waker may panic: the
        // receiver is told all the same.)
        crate::then_anyway(
            || slots.release(1),
            || {
                if slots.is_closed() {
                    // A closed receiver waits until no permit is left before
                    // it reports the end of the channel: this may have been
                    // the last.
                    self.recv_ops.notify_all();
                }
            },
        );
    }

    /// Sends are refused from now on: the receiver closed or went away.
    pub(super) fn is_rx_closed(&self) -> bool {
        match &self.slots {
            Some(slots) => slots.is_closed(),
            None => self.queue.is_closed(),
        }
    }

    pub(super) fn add_sender(&self) {
        // A new sender is made from an existing one, so the count cannot be
        // zero here, and nothing is published with it.
        self.senders.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn drop_sender(&self) {
        if self.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // No sender (and so no permit, which borrows one) is left: the
            // receiver drains what is buffered, then sees the queue closed.
            self.queue.close();
            self.recv_ops.notify_all();
        }
    }

    /// The receiver refuses further sends. A bounded channel keeps its queue
    /// open for the permits already handed out: their values are still
    /// delivered.
    pub(super) fn close_rx(&self) {
        // Closing the slots wakes waiting senders, whose wakers may panic:
        // `closed()` is told all the same.
        crate::then_anyway(
            || match &self.slots {
                Some(slots) => slots.close(),
                None => {
                    self.queue.close();
                }
            },
            || self.rx_closed.set(),
        );
    }

    pub(super) fn try_recv(&self) -> Result<T, TryRecvError> {
        match self.queue.pop() {
            Ok(v) => {
                if let Some(slots) = &self.slots {
                    slots.release(1);
                }
                Ok(v)
            }
            Err(concurrent_queue::PopError::Closed) => Err(TryRecvError::Disconnected),
            Err(concurrent_queue::PopError::Empty) => match &self.slots {
                // Closed by the receiver, and every slot is back: no permit
                // or send in progress can deliver anything any more. (A value
                // is pushed while its slot is held, and the slot is only given
                // back once the value is taken out, so "all slots free" read
                // after "queue empty" means nothing is on its way.)
                Some(slots) if slots.is_closed() && slots.available_permits() == self.capacity => {
                    Err(TryRecvError::Disconnected)
                }
                _ => Err(TryRecvError::Empty),
            },
        }
    }
}

impl<T> fmt::Debug for Chan<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Chan");
        d.field("len", &self.queue.len());
        if let Some(slots) = &self.slots {
            d.field("capacity", &slots.available_permits())
                .field("max_capacity", &self.capacity);
        }
        d.field("senders", &self.senders.load(Ordering::Relaxed))
            .field("rx_closed", &self.is_rx_closed())
            .finish()
    }
}

/// The receiving end both receivers wrap: the channel plus the receiver's
/// registration, kept between polls so that `poll_recv` and the `Stream`
/// impl can wait without a future of their own.
pub(super) struct RxCore<T> {
    pub(super) chan: Arc<Chan<T>>,
    pub(super) wait: WaitSlot,
}

impl<T> RxCore<T> {
    pub(super) fn new(chan: Arc<Chan<T>>) -> Self {
        Self {
            chan,
            wait: WaitSlot::default(),
        }
    }

    pub(super) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        // Counted against the task's budget, as `Queue::pop` (nothing is
        // taken when it yields).
        coro_core::coop::poll_counted(cx, |cx| self.poll_recv_budgeted(cx))
    }

    fn poll_recv_budgeted(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        loop {
            match self.chan.try_recv() {
                Ok(v) => {
                    self.chan.recv_ops.unregister(&mut self.wait);
                    return Poll::Ready(Some(v));
                }
                Err(TryRecvError::Disconnected) => {
                    self.chan.recv_ops.unregister(&mut self.wait);
                    return Poll::Ready(None);
                }
                Err(TryRecvError::Empty) => {}
            }
            // Registers and re-checks, or waits for a push / the close.
            if self
                .chan
                .recv_ops
                .poll_slot(&mut self.wait, cx)
                .is_pending()
            {
                return Poll::Pending;
            }
        }
    }

    pub(super) fn poll_recv_many(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut Vec<T>,
        limit: usize,
    ) -> Poll<usize> {
        if limit == 0 {
            return Poll::Ready(0);
        }
        let Poll::Ready(first) = self.poll_recv(cx) else {
            return Poll::Pending;
        };
        let Some(first) = first else {
            return Poll::Ready(0);
        };
        buf.reserve(limit.min(self.chan.queue.len() + 1));
        buf.push(first);
        let mut n = 1;
        while n < limit {
            match self.chan.try_recv() {
                Ok(v) => {
                    buf.push(v);
                    n += 1;
                }
                Err(_) => break,
            }
        }
        Poll::Ready(n)
    }

    pub(super) fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.chan.try_recv()
    }

    pub(super) fn close(&mut self) {
        let registered = self.wait.is_registered();
        crate::then_anyway(
            || self.chan.close_rx(),
            || {
                if registered {
                    // A task can register through `poll_recv`, close, and go
                    // to sleep on that registration: the close may have made
                    // this the end of the channel, so wake it to look again.
                    self.chan.recv_ops.notify_all();
                }
            },
        );
    }

    pub(super) fn is_closed(&self) -> bool {
        self.chan.is_rx_closed() || self.chan.queue.is_closed()
    }

    pub(super) fn len(&self) -> usize {
        self.chan.queue.len()
    }
}

impl<T> Drop for RxCore<T> {
    fn drop(&mut self) {
        self.chan.recv_ops.unregister(&mut self.wait);
        let chan = &self.chan;
        // (Closing wakes senders, whose wakers may panic: the buffer is
        // still closed and emptied.)
        crate::then_anyway(
            || chan.close_rx(),
            || {
                // Refuse the values of permits still out, and drop what is
                // buffered now rather than when the last sender goes: each
                // value's slot first, and the value also if that wakes a
                // sender whose waker panics (a value's own destructor that
                // panics leaves the rest to the last sender's drop).
                chan.queue.close();
                while let Ok(v) = chan.queue.pop() {
                    crate::then_anyway(
                        || {
                            if let Some(slots) = &chan.slots {
                                slots.release(1);
                            }
                        },
                        || drop(v),
                    );
                }
            },
        );
    }
}

impl<T> fmt::Debug for RxCore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.chan.fmt(f)
    }
}

/// Future of [`Receiver::recv`](super::Receiver::recv) and
/// [`UnboundedReceiver::recv`](super::UnboundedReceiver::recv).
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct MpscRecv<'a, T> {
    pub(super) rx: &'a mut RxCore<T>,
}

impl<T> Future for MpscRecv<'_, T> {
    type Output = Option<T>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.rx.poll_recv(cx)
    }
}

impl<T> Drop for MpscRecv<'_, T> {
    fn drop(&mut self) {
        // Nothing waits for the senders' wake-ups any more: let them skip it.
        self.rx.chan.recv_ops.unregister(&mut self.rx.wait);
    }
}

impl<T> fmt::Debug for MpscRecv<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpscRecv")
            .field("waiting", &self.rx.wait.is_registered())
            .finish()
    }
}

/// Future of [`Receiver::recv_many`](super::Receiver::recv_many) and [`UnboundedReceiver::recv_many`](super::UnboundedReceiver::recv_many).
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct MpscRecvMany<'a, T> {
    pub(super) rx: &'a mut RxCore<T>,
    pub(super) buf: &'a mut Vec<T>,
    pub(super) limit: usize,
}

impl<T> Future for MpscRecvMany<'_, T> {
    type Output = usize;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        let this = &mut *self;
        this.rx.poll_recv_many(cx, this.buf, this.limit)
    }
}

impl<T> Drop for MpscRecvMany<'_, T> {
    fn drop(&mut self) {
        self.rx.chan.recv_ops.unregister(&mut self.rx.wait);
    }
}

impl<T> fmt::Debug for MpscRecvMany<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpscRecvMany")
            .field("limit", &self.limit)
            .field("waiting", &self.rx.wait.is_registered())
            .finish()
    }
}

/// Future of [`Sender::closed`](super::Sender::closed) and [`UnboundedSender::closed`](super::UnboundedSender::closed).
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct MpscClosed<'a> {
    pub(super) wait: EventWait<'a>,
}

impl Future for MpscClosed<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.wait).poll(cx)
    }
}

impl fmt::Debug for MpscClosed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpscClosed").finish_non_exhaustive()
    }
}
