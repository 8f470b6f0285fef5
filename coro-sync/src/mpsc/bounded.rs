//! The bounded channel: [`channel`], [`Sender`], [`Receiver`], [`Permit`].

use crate::loom::Arc;
use core::fmt;
use core::future::Future;
use core::mem::ManuallyDrop;
use core::pin::Pin;
use core::task::{Context, Poll};

use futures_core::Stream;

use super::chan::{Chan, MpscClosed, MpscRecv, MpscRecvMany, RxCore};
use super::error::{SendError, TryRecvError, TrySendError};
use crate::error::TryAcquireError;
use crate::semaphore::{Acquire, Semaphore};

/// Creates a bounded channel that buffers at most `capacity` values.
///
/// A slot is taken by each buffered value and by each outstanding
/// [`Permit`]; it comes back when the receiver takes the value out (or the
/// permit is dropped unused). [`Sender::send`] waits while every slot is
/// taken.
///
/// # Panics
///
/// If `capacity` is 0 or above [`Semaphore::MAX_PERMITS`].
///
/// # Examples
///
/// ```
/// use coro_sync::mpsc;
///
/// # futures::executor::block_on(async {
/// let (tx, mut rx) = mpsc::channel(2);
/// tx.send(1).await.unwrap();
/// tx.send(2).await.unwrap();
/// assert!(tx.try_send(3).is_err()); // full
/// assert_eq!(rx.recv().await, Some(1));
/// tx.send(3).await.unwrap(); // a slot is free again
/// drop(tx);
/// assert_eq!(rx.recv().await, Some(2));
/// assert_eq!(rx.recv().await, Some(3));
/// assert_eq!(rx.recv().await, None);
/// # });
/// ```
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(capacity > 0, "mpsc bounded channel requires capacity > 0");
    assert!(
        capacity <= Semaphore::MAX_PERMITS,
        "mpsc bounded channel capacity above {}",
        Semaphore::MAX_PERMITS
    );
    let chan = Chan::new(Some(capacity));
    (
        Sender { chan: chan.clone() },
        Receiver {
            rx: RxCore::new(chan),
        },
    )
}

/// The sending half of a bounded channel; clone it for more producers.
///
/// The channel closes for the receiver once every `Sender` is dropped.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Sends `value`, waiting for a free slot while the channel is full.
    ///
    /// # Errors
    ///
    /// [`SendError`] with the value if the receiver is or gets closed or
    /// dropped before the value is buffered.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in the sense that nothing is half done: a dropped `send`
    /// future either buffered the value (it completed) or did not, and then
    /// holds no slot; the value is dropped with it. A wake-up it received
    /// passes to the next waiting sender. To keep the value across
    /// cancellation, [`reserve`](Sender::reserve) a slot first.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let (tx, mut rx) = coro_sync::mpsc::channel(1);
    /// tx.send("hi").await.unwrap();
    /// assert_eq!(rx.recv().await, Some("hi"));
    /// # });
    /// ```
    pub fn send(&self, value: T) -> MpscSend<'_, T> {
        MpscSend {
            chan: &self.chan,
            value: Some(value),
            acquire: self.chan.slots().acquire(),
        }
    }

    /// Sends `value` if a slot is free now, without waiting.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] when every slot is taken (or a long-waiting
    /// sender has priority), [`TrySendError::Closed`] when the receiver is
    /// closed or gone; both hand the value back.
    ///
    /// ```
    /// use coro_sync::mpsc::{self, error::TrySendError};
    ///
    /// let (tx, _rx) = mpsc::channel(1);
    /// assert!(tx.try_send(1).is_ok());
    /// assert_eq!(tx.try_send(2), Err(TrySendError::Full(2)));
    /// ```
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        match self.chan.slots().try_acquire() {
            Ok(slot) => {
                slot.keep_held();
                self.chan.push(value).map_err(|v| {
                    self.chan.release_unused_slot();
                    TrySendError::Closed(v)
                })
            }
            Err(TryAcquireError::NoPermits) => Err(TrySendError::Full(value)),
            Err(TryAcquireError::Closed) => Err(TrySendError::Closed(value)),
        }
    }

    /// Waits for a free slot and reserves it: the returned [`Permit`] sends
    /// one value without waiting, or gives the slot back when dropped.
    ///
    /// # Errors
    ///
    /// [`SendError(())`](SendError) if the receiver is or gets closed or
    /// dropped first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped `reserve` future holds no slot, and a wake-up
    /// it received passes to the next waiting sender. This is the way to send
    /// from a `select!` loop without losing the value: reserve in the
    /// `select!`, send once the permit is there.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let (tx, mut rx) = coro_sync::mpsc::channel(1);
    /// let permit = tx.reserve().await.unwrap();
    /// assert_eq!(tx.capacity(), 0);
    /// permit.send(5);
    /// assert_eq!(rx.recv().await, Some(5));
    /// # });
    /// ```
    pub fn reserve(&self) -> MpscReserve<'_, T> {
        MpscReserve {
            chan: &self.chan,
            acquire: self.chan.slots().acquire(),
        }
    }

    /// Reserves a free slot if there is one now, without waiting.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full(())`](TrySendError::Full) or
    /// [`TrySendError::Closed(())`](TrySendError::Closed).
    ///
    /// ```
    /// let (tx, _rx) = coro_sync::mpsc::channel::<u8>(1);
    /// let permit = tx.try_reserve().unwrap();
    /// assert!(tx.try_reserve().unwrap_err().is_full());
    /// drop(permit); // the slot comes back
    /// assert_eq!(tx.capacity(), 1);
    /// ```
    pub fn try_reserve(&self) -> Result<Permit<'_, T>, TrySendError<()>> {
        match self.chan.slots().try_acquire() {
            Ok(slot) => {
                slot.keep_held();
                Ok(Permit { chan: &self.chan })
            }
            Err(TryAcquireError::NoPermits) => Err(TrySendError::Full(())),
            Err(TryAcquireError::Closed) => Err(TrySendError::Closed(())),
        }
    }

    /// Returns `true` once the receiver is closed or dropped: every send
    /// fails from then on.
    ///
    /// ```
    /// let (tx, rx) = coro_sync::mpsc::channel::<u8>(1);
    /// assert!(!tx.is_closed());
    /// drop(rx);
    /// assert!(tx.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.chan.is_rx_closed()
    }

    /// Waits until the receiver is closed or dropped.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the future only waits.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let (tx, mut rx) = coro_sync::mpsc::channel::<u8>(1);
    /// let closed = tx.closed();
    /// rx.close();
    /// closed.await;
    /// assert!(tx.is_closed());
    /// # });
    /// ```
    pub fn closed(&self) -> MpscClosed<'_> {
        MpscClosed {
            wait: self.chan.rx_closed.wait(),
        }
    }

    /// Free slots now: [`max_capacity`](Sender::max_capacity) minus buffered
    /// values and outstanding permits.
    ///
    /// ```
    /// let (tx, _rx) = coro_sync::mpsc::channel(3);
    /// tx.try_send(1).unwrap();
    /// assert_eq!(tx.capacity(), 2);
    /// ```
    pub fn capacity(&self) -> usize {
        self.chan.slots().available_permits()
    }

    /// The capacity the channel was created with.
    ///
    /// ```
    /// let (tx, _rx) = coro_sync::mpsc::channel::<u8>(3);
    /// assert_eq!(tx.max_capacity(), 3);
    /// ```
    pub fn max_capacity(&self) -> usize {
        self.chan.capacity
    }

    /// Returns `true` if both senders feed the same channel.
    ///
    /// ```
    /// let (tx, _rx) = coro_sync::mpsc::channel::<u8>(1);
    /// let (other, _rx2) = coro_sync::mpsc::channel::<u8>(1);
    /// assert!(tx.same_channel(&tx.clone()));
    /// assert!(!tx.same_channel(&other));
    /// ```
    pub fn same_channel(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.add_sender();
        Self {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.chan.drop_sender();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").field("chan", &self.chan).finish()
    }
}

/// The receiving half of a bounded channel.
///
/// Also a [`Stream`] of the values, ending where [`recv`](Receiver::recv)
/// returns `None`.
pub struct Receiver<T> {
    rx: RxCore<T>,
}

impl<T> Receiver<T> {
    /// Receives the next value, waiting while none is buffered. Returns
    /// `None` once the channel is closed (every sender dropped, or
    /// [`close`](Receiver::close) called and no permit left) and drained.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a value is only taken by the poll that returns it, so a
    /// dropped `recv` loses none.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let (tx, mut rx) = coro_sync::mpsc::channel(1);
    /// tx.send(1).await.unwrap();
    /// drop(tx);
    /// assert_eq!(rx.recv().await, Some(1));
    /// assert_eq!(rx.recv().await, None);
    /// # });
    /// ```
    pub fn recv(&mut self) -> MpscRecv<'_, T> {
        MpscRecv { rx: &mut self.rx }
    }

    /// Receives the next value if one is buffered, without waiting.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if nothing is buffered now,
    /// [`TryRecvError::Disconnected`] once closed and drained.
    ///
    /// ```
    /// use coro_sync::mpsc::{self, error::TryRecvError};
    ///
    /// let (tx, mut rx) = mpsc::channel(1);
    /// tx.try_send(1).unwrap();
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    /// ```
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.rx.try_recv()
    }

    /// Waits for at least one value, then appends to `buf` up to `limit`
    /// values that are buffered, without waiting again. Returns how many
    /// were appended: `0` only if `limit` is 0 or the channel is closed and
    /// drained.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: values are appended only by the poll that returns.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let (tx, mut rx) = coro_sync::mpsc::channel(4);
    /// for i in 0..3 {
    ///     tx.send(i).await.unwrap();
    /// }
    /// let mut buf = Vec::new();
    /// assert_eq!(rx.recv_many(&mut buf, 2).await, 2);
    /// assert_eq!(rx.recv_many(&mut buf, 2).await, 1);
    /// assert_eq!(buf, [0, 1, 2]);
    /// # });
    /// ```
    pub fn recv_many<'a>(&'a mut self, buf: &'a mut Vec<T>, limit: usize) -> MpscRecvMany<'a, T> {
        MpscRecvMany {
            rx: &mut self.rx,
            buf,
            limit,
        }
    }

    /// Polls for the next value: [`recv`](Receiver::recv) for hand-written
    /// futures and streams. The registration stays with the receiver between
    /// calls; only the waker of the latest call is woken.
    ///
    /// ```
    /// use std::future::poll_fn;
    /// # futures::executor::block_on(async {
    /// let (tx, mut rx) = coro_sync::mpsc::channel(1);
    /// tx.send(7).await.unwrap();
    /// assert_eq!(poll_fn(|cx| rx.poll_recv(cx)).await, Some(7));
    /// # });
    /// ```
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.rx.poll_recv(cx)
    }

    /// Closes the channel for the senders without dropping the receiver:
    /// sends fail from now on, values already buffered can still be received,
    /// and so can those of [`Permit`]s already handed out.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let (tx, mut rx) = coro_sync::mpsc::channel(2);
    /// tx.send(1).await.unwrap();
    /// rx.close();
    /// assert!(tx.send(2).await.is_err());
    /// assert_eq!(rx.recv().await, Some(1));
    /// assert_eq!(rx.recv().await, None);
    /// # });
    /// ```
    pub fn close(&mut self) {
        self.rx.close();
    }

    /// Returns `true` once [`close`](Receiver::close) was called or every
    /// sender is gone (values may still be buffered).
    ///
    /// ```
    /// let (tx, rx) = coro_sync::mpsc::channel::<u8>(1);
    /// drop(tx);
    /// assert!(rx.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.rx.is_closed()
    }

    /// Values buffered now.
    ///
    /// ```
    /// let (tx, rx) = coro_sync::mpsc::channel(2);
    /// tx.try_send(1).unwrap();
    /// assert_eq!(rx.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Returns `true` if no value is buffered now.
    ///
    /// ```
    /// let (_tx, rx) = coro_sync::mpsc::channel::<u8>(2);
    /// assert!(rx.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Free slots now (see [`Sender::capacity`]).
    ///
    /// ```
    /// let (_tx, rx) = coro_sync::mpsc::channel::<u8>(2);
    /// assert_eq!(rx.capacity(), 2);
    /// ```
    pub fn capacity(&self) -> usize {
        self.rx.chan.slots().available_permits()
    }

    /// The capacity the channel was created with.
    ///
    /// ```
    /// let (_tx, rx) = coro_sync::mpsc::channel::<u8>(2);
    /// assert_eq!(rx.max_capacity(), 2);
    /// ```
    pub fn max_capacity(&self) -> usize {
        self.rx.chan.capacity
    }
}

impl<T> Stream for Receiver<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.rx.poll_recv(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), None)
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").field("chan", &self.rx).finish()
    }
}

/// A reserved slot of a bounded channel: [`send`](Permit::send) fills it
/// without waiting; dropping the permit unused gives the slot back.
///
/// Made by [`Sender::reserve`] and [`Sender::try_reserve`]. A permit stays
/// usable after the receiver is [`close`](Receiver::close)d: its value is
/// still delivered.
#[must_use = "a permit gives its slot back when dropped"]
pub struct Permit<'a, T> {
    chan: &'a Chan<T>,
}

impl<T> Permit<'_, T> {
    /// Sends `value` into the reserved slot. If the receiver was dropped
    /// meanwhile, the value is dropped.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let (tx, mut rx) = coro_sync::mpsc::channel(1);
    /// tx.reserve().await.unwrap().send("x");
    /// assert_eq!(rx.recv().await, Some("x"));
    /// # });
    /// ```
    pub fn send(self, value: T) {
        // The slot now belongs to the value: the receiver frees it.
        let this = ManuallyDrop::new(self);
        if this.chan.push(value).is_err() {
            this.chan.release_unused_slot();
        }
    }
}

impl<T> Drop for Permit<'_, T> {
    fn drop(&mut self) {
        self.chan.release_unused_slot();
    }
}

impl<T> fmt::Debug for Permit<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").finish_non_exhaustive()
    }
}

/// Future of [`Sender::send`].
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct MpscSend<'a, T> {
    chan: &'a Chan<T>,
    value: Option<T>,
    acquire: Acquire<'a>,
}

// The value is moved, never pinned; `Acquire` is `Unpin`.
impl<T> Unpin for MpscSend<'_, T> {}

impl<T> Future for MpscSend<'_, T> {
    type Output = Result<(), SendError<T>>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let acquired = match Pin::new(&mut this.acquire).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(r) => r,
        };
        let value = this
            .value
            .take()
            .expect("`send()` future polled after completion");
        Poll::Ready(match acquired {
            Ok(slot) => {
                // The slot goes with the value; the receiver gives it back.
                slot.keep_held();
                this.chan.push(value).map_err(|v| {
                    this.chan.release_unused_slot();
                    SendError(v)
                })
            }
            Err(_closed) => Err(SendError(value)),
        })
    }
}

impl<T> fmt::Debug for MpscSend<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpscSend").finish_non_exhaustive()
    }
}

/// Future of [`Sender::reserve`].
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct MpscReserve<'a, T> {
    chan: &'a Chan<T>,
    acquire: Acquire<'a>,
}

impl<'a, T> Future for MpscReserve<'a, T> {
    type Output = Result<Permit<'a, T>, SendError<()>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let chan = this.chan;
        Pin::new(&mut this.acquire).poll(cx).map(|r| match r {
            Ok(slot) => {
                slot.keep_held();
                Ok(Permit { chan })
            }
            Err(_closed) => Err(SendError(())),
        })
    }
}

impl<T> fmt::Debug for MpscReserve<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MpscReserve").finish_non_exhaustive()
    }
}
