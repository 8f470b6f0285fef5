//! A one-shot channel: one value, sent once, from one task to another.
//!
//! [`channel()`] gives a [`Sender`] and a [`Receiver`]. [`Sender::send`]
//! consumes the sender and never waits; the receiver is itself a future
//! resolving to `Ok(value)`, or to `Err(RecvError)` when the sender is
//! dropped without sending. Dropping (or [`close`](Receiver::close)-ing) the
//! receiver makes the send fail and hand the value back; the sender can wait
//! for that with [`closed`](Sender::closed) to abandon work nobody wants.
//!
//! Names and semantics follow `tokio::sync::oneshot`. Where coro differs:
//!
//! - Polling the receiver again after it returned the value resolves to
//!   `Err(RecvError)` instead of panicking.
//! - [`Sender::closed`] takes `&self` (any number of tasks may wait on it);
//!   [`Sender::poll_closed`] is there for hand-written futures.
//!
//! # Examples
//!
//! ```
//! use coro_sync::oneshot;
//!
//! # futures::executor::block_on(async {
//! let (tx, rx) = oneshot::channel();
//! std::thread::spawn(move || tx.send(6 * 7).unwrap());
//! assert_eq!(rx.await, Ok(42));
//!
//! let (tx, rx) = oneshot::channel::<u8>();
//! drop(tx);
//! assert!(rx.await.is_err()); // dropped without sending
//! # });
//! ```

use crate::loom::{Arc, StdMutex, lock};
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use crate::waiters::{Waiter, Waiters};

use crate::loom::atomic::{AtomicUsize, Ordering};

/// Errors of the [`oneshot`](self) channel.
pub mod error {
    use core::fmt;

    /// The sender was dropped without sending (or the value was already
    /// received, or the receiver was closed before anything was sent).
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let (tx, rx) = coro_sync::oneshot::channel::<u8>();
    /// drop(tx);
    /// assert_eq!(rx.await.unwrap_err().to_string(), "channel closed");
    /// # });
    /// ```
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct RecvError(pub(crate) ());

    impl fmt::Display for RecvError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("channel closed")
        }
    }

    impl std::error::Error for RecvError {}

    /// Why [`Receiver::try_recv`](super::Receiver::try_recv) returned nothing.
    ///
    /// ```
    /// use coro_sync::oneshot::{self, error::TryRecvError};
    ///
    /// let (tx, mut rx) = oneshot::channel::<u8>();
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    /// drop(tx);
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    /// ```
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum TryRecvError {
        /// Nothing sent yet, and the sender is still there.
        Empty,
        /// Nothing will come: the sender was dropped without sending, the
        /// value was already received, or the receiver was closed first.
        Closed,
    }

    impl fmt::Display for TryRecvError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Self::Empty => f.write_str("channel empty"),
                Self::Closed => f.write_str("channel closed"),
            }
        }
    }

    impl std::error::Error for TryRecvError {}
}

use error::{RecvError, TryRecvError};

/// The value is in `value` and the receiver may take it.
const SENT: usize = 1;
/// The receiver was closed or dropped: a send from now on fails.
const RX_CLOSED: usize = 1 << 1;
/// The sender is gone (after sending, or without).
const TX_GONE: usize = 1 << 2;
/// The receiver has listened on `rx_ops` (set after `listen`, never
/// cleared): the sender notifies only then. Without it, a send or a close
/// would fence and look at the list just to find nobody in it.
const RX_LISTENS: usize = 1 << 3;
/// A `closed()` wait has listened on `tx_ops`, likewise.
const TX_LISTENS: usize = 1 << 4;

struct Inner<T> {
    state: AtomicUsize,
    /// One slot. The sender fills it before it publishes `SENT`; the
    /// receiver takes it only after it saw `SENT`, so the lock is never
    /// contended, and a send refused by `RX_CLOSED` takes its own value back
    /// out. (A plain uncontended lock: a `ConcurrentQueue` here made the
    /// shared state 512 bytes aligned to 128, and a oneshot 6x slower.)
    value: StdMutex<Option<T>>,
    /// The receiver waits here for `SENT` or `TX_GONE`.
    rx_ops: Waiters,
    /// `closed()` futures wait here for `RX_CLOSED`.
    tx_ops: Waiters,
}

/// Creates a one-shot channel.
///
/// ```
/// # futures::executor::block_on(async {
/// let (tx, rx) = coro_sync::oneshot::channel();
/// tx.send("done").unwrap();
/// assert_eq!(rx.await, Ok("done"));
/// # });
/// ```
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let inner = Arc::new(Inner {
        state: AtomicUsize::new(0),
        value: StdMutex::new(None),
        rx_ops: Waiters::new(),
        tx_ops: Waiters::new(),
    });
    (
        Sender {
            inner: inner.clone(),
            listener: None,
        },
        Receiver {
            inner,
            listener: None,
        },
    )
}

/// Sends the one value of a [`oneshot`](self) channel.
pub struct Sender<T> {
    inner: Arc<Inner<T>>,
    /// The registration of [`poll_closed`](Sender::poll_closed).
    listener: Option<Waiter>,
}

impl<T> Sender<T> {
    /// Sends `value`, consuming the sender; never waits.
    ///
    /// # Errors
    ///
    /// `Err(value)` if the receiver was dropped or closed first. An `Ok` does
    /// not mean the value was received: the receiver may still be dropped
    /// with it.
    ///
    /// ```
    /// let (tx, rx) = coro_sync::oneshot::channel();
    /// drop(rx);
    /// assert_eq!(tx.send(3), Err(3));
    /// ```
    pub fn send(self, value: T) -> Result<(), T> {
        let inner = &self.inner;
        if inner.state.load(Ordering::SeqCst) & RX_CLOSED != 0 {
            return Err(value);
        }
        *lock(&inner.value) = Some(value);
        let published = inner
            .state
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| {
                (s & RX_CLOSED == 0).then_some(s | SENT | TX_GONE)
            });
        match published {
            Ok(prev) => {
                // The flag is set after the receiver listened, on this same
                // word: set before our update, it has a listener to wake;
                // set after, the receiver's update saw `SENT`.
                if prev & RX_LISTENS != 0 {
                    inner.rx_ops.notify(usize::MAX);
                }
                Ok(())
            }
            // The receiver closed between the check and the publication: it
            // never looks at the slot without `SENT`, so the value is ours.
            Err(_) => Err(lock(&inner.value)
                .take()
                .expect("an unpublished oneshot value stays in its slot")),
        }
    }

    /// Returns `true` once the receiver is dropped or closed: a send would
    /// fail.
    ///
    /// ```
    /// let (tx, rx) = coro_sync::oneshot::channel::<u8>();
    /// assert!(!tx.is_closed());
    /// drop(rx);
    /// assert!(tx.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.inner.state.load(Ordering::SeqCst) & RX_CLOSED != 0
    }

    /// Waits until the receiver is dropped or closed, e.g. to stop computing
    /// a value nobody will read.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the future only waits.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let (tx, rx) = coro_sync::oneshot::channel::<u8>();
    /// std::thread::spawn(move || drop(rx));
    /// tx.closed().await;
    /// assert!(tx.send(1).is_err());
    /// # });
    /// ```
    pub fn closed(&self) -> futures::OneshotClosed<'_, T> {
        futures::OneshotClosed {
            inner: &self.inner,
            listener: None,
        }
    }

    /// Polls for the receiver's drop or close: [`closed`](Sender::closed) for
    /// hand-written futures. Only the waker of the latest call is woken.
    ///
    /// ```
    /// use std::future::poll_fn;
    /// # futures::executor::block_on(async {
    /// let (mut tx, rx) = coro_sync::oneshot::channel::<u8>();
    /// drop(rx);
    /// poll_fn(|cx| tx.poll_closed(cx)).await;
    /// # });
    /// ```
    pub fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        poll_closed(&self.inner, &mut self.listener, cx)
    }
}

fn poll_closed<T>(
    inner: &Inner<T>,
    listener: &mut Option<Waiter>,
    cx: &mut Context<'_>,
) -> Poll<()> {
    loop {
        if inner.state.load(Ordering::SeqCst) & RX_CLOSED != 0 {
            *listener = None;
            return Poll::Ready(());
        }
        match listener {
            // Listen, then check again: a close in between is seen either
            // by the check or by the notification.
            None => {
                *listener = Some(inner.tx_ops.listen());
                inner.state.fetch_or(TX_LISTENS, Ordering::SeqCst);
            }
            Some(l) => {
                if Pin::new(l).poll(cx).is_pending() {
                    return Poll::Pending;
                }
                *listener = None;
            }
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let prev = self.inner.state.fetch_or(TX_GONE, Ordering::SeqCst);
        // Dropped without sending (a send set `TX_GONE` with `SENT`), with
        // a receiver listening.
        if prev & (TX_GONE | RX_LISTENS) == RX_LISTENS {
            self.inner.rx_ops.notify(usize::MAX);
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Receives the one value of a [`oneshot`](self) channel: `.await` it.
///
/// Resolves to `Ok(value)`, or to `Err(RecvError)` if the sender was dropped
/// without sending.
///
/// # Cancel safety
///
/// Cancel safe: the value is only taken by the poll that returns it. A
/// receiver that is dropped takes the value, if one was sent, with it.
pub struct Receiver<T> {
    inner: Arc<Inner<T>>,
    listener: Option<Waiter>,
}

impl<T> Receiver<T> {
    /// Takes the value if it was sent, without waiting.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] while the sender is there and has not sent,
    /// [`TryRecvError::Closed`] if nothing will come (sender dropped without
    /// sending, value already taken, or closed before a send).
    ///
    /// ```
    /// let (tx, mut rx) = coro_sync::oneshot::channel();
    /// tx.send(1).unwrap();
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// assert!(rx.try_recv().is_err()); // already taken
    /// ```
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let s = self.inner.state.load(Ordering::SeqCst);
        if s & SENT != 0 {
            lock(&self.inner.value).take().ok_or(TryRecvError::Closed)
        } else if s & (TX_GONE | RX_CLOSED) != 0 {
            Err(TryRecvError::Closed)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    /// Closes the channel without dropping the receiver: a send from now on
    /// fails and hands its value back. A value sent before the close can
    /// still be taken with [`try_recv`](Receiver::try_recv) (or by awaiting).
    ///
    /// ```
    /// let (tx, mut rx) = coro_sync::oneshot::channel();
    /// rx.close();
    /// assert_eq!(tx.send(1), Err(1));
    /// assert!(rx.try_recv().is_err());
    /// ```
    pub fn close(&mut self) {
        let prev = self.inner.state.fetch_or(RX_CLOSED, Ordering::SeqCst);
        if prev & (RX_CLOSED | TX_LISTENS) == TX_LISTENS {
            self.inner.tx_ops.notify(usize::MAX);
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = Result<T, RecvError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            match this.try_recv() {
                Ok(v) => {
                    this.listener = None;
                    return Poll::Ready(Ok(v));
                }
                Err(TryRecvError::Closed) => {
                    this.listener = None;
                    return Poll::Ready(Err(RecvError(())));
                }
                Err(TryRecvError::Empty) => {}
            }
            match &mut this.listener {
                // Listen, then check again: a send in between is seen either
                // by the check or by the notification.
                None => {
                    this.listener = Some(this.inner.rx_ops.listen());
                    this.inner.state.fetch_or(RX_LISTENS, Ordering::SeqCst);
                }
                Some(l) => {
                    if Pin::new(l).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.listener = None;
                }
            }
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let prev = self.inner.state.fetch_or(RX_CLOSED, Ordering::SeqCst);
        if prev & (RX_CLOSED | TX_LISTENS) == TX_LISTENS {
            self.inner.tx_ops.notify(usize::MAX);
        }
        // A value sent and not received is dropped here, on the receiver's
        // side (as tokio's): left to the allocation, it could be dropped by
        // the sender's last reference, inside a `send` that returned `Ok`.
        // The sender stored it before publishing and never touches it
        // after: the lock is free.
        if prev & SENT != 0 {
            let value = lock(&self.inner.value).take();
            drop(value); // after the lock
        }
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.inner.state.load(Ordering::SeqCst);
        f.debug_struct("Receiver")
            .field("sent", &(s & SENT != 0))
            .field("closed", &(s & RX_CLOSED != 0))
            .finish()
    }
}

/// The named futures, re-exported in [`crate::futures`].
pub(crate) mod futures {
    use super::*;

    /// Future of [`Sender::closed`](super::Sender::closed).
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct OneshotClosed<'a, T> {
        pub(super) inner: &'a Inner<T>,
        pub(super) listener: Option<Waiter>,
    }

    impl<T> Future for OneshotClosed<'_, T> {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let this = &mut *self;
            poll_closed(this.inner, &mut this.listener, cx)
        }
    }

    impl<T> fmt::Debug for OneshotClosed<'_, T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("OneshotClosed")
                .field("waiting", &self.listener.is_some())
                .finish()
        }
    }
}
