//! The unbounded channel: [`unbounded_channel`], [`UnboundedSender`],
//! [`UnboundedReceiver`].

use crate::loom::Arc;
use core::fmt;
use core::pin::Pin;
use core::task::{Context, Poll};

use futures_core::Stream;

use super::chan::{Chan, MpscClosed, MpscRecv, MpscRecvMany, RxCore};
use super::error::{SendError, TryRecvError};

/// Creates an unbounded channel: [`UnboundedSender::send`] never waits, and
/// the buffer grows as needed (so a receiver that falls behind costs memory,
/// not back-pressure; prefer [`channel`](super::channel) when producers can
/// outrun the consumer).
///
/// # Examples
///
/// ```
/// use coro_sync::mpsc;
///
/// # futures::executor::block_on(async {
/// let (tx, mut rx) = mpsc::unbounded_channel();
/// tx.send(1).unwrap();
/// tx.send(2).unwrap();
/// drop(tx);
/// assert_eq!(rx.recv().await, Some(1));
/// assert_eq!(rx.recv().await, Some(2));
/// assert_eq!(rx.recv().await, None);
/// # });
/// ```
pub fn unbounded_channel<T>() -> (UnboundedSender<T>, UnboundedReceiver<T>) {
    let chan = Chan::new(None);
    (
        UnboundedSender { chan: chan.clone() },
        UnboundedReceiver {
            rx: RxCore::new(chan),
        },
    )
}

/// The sending half of an unbounded channel; clone it for more producers.
///
/// The channel closes for the receiver once every `UnboundedSender` is
/// dropped.
pub struct UnboundedSender<T> {
    chan: Arc<Chan<T>>,
}

impl<T> UnboundedSender<T> {
    /// Sends `value` without waiting.
    ///
    /// # Errors
    ///
    /// [`SendError`] with the value once the receiver is closed or dropped.
    ///
    /// ```
    /// let (tx, mut rx) = coro_sync::mpsc::unbounded_channel();
    /// tx.send(1).unwrap();
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// ```
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.chan.push(value).map_err(SendError)
    }

    /// Returns `true` once the receiver is closed or dropped.
    ///
    /// ```
    /// let (tx, mut rx) = coro_sync::mpsc::unbounded_channel::<u8>();
    /// rx.close();
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
    /// let (tx, rx) = coro_sync::mpsc::unbounded_channel::<u8>();
    /// std::thread::spawn(move || drop(rx));
    /// tx.closed().await;
    /// assert!(tx.send(1).is_err());
    /// # });
    /// ```
    pub fn closed(&self) -> MpscClosed<'_> {
        MpscClosed {
            wait: self.chan.rx_closed.wait(),
        }
    }

    /// Returns `true` if both senders feed the same channel.
    ///
    /// ```
    /// let (tx, _rx) = coro_sync::mpsc::unbounded_channel::<u8>();
    /// assert!(tx.same_channel(&tx.clone()));
    /// ```
    pub fn same_channel(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }
}

impl<T> Clone for UnboundedSender<T> {
    fn clone(&self) -> Self {
        self.chan.add_sender();
        Self {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for UnboundedSender<T> {
    fn drop(&mut self) {
        self.chan.drop_sender();
    }
}

impl<T> fmt::Debug for UnboundedSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnboundedSender")
            .field("chan", &self.chan)
            .finish()
    }
}

/// The receiving half of an unbounded channel.
///
/// Also a [`Stream`] of the values, ending where
/// [`recv`](UnboundedReceiver::recv) returns `None`.
pub struct UnboundedReceiver<T> {
    rx: RxCore<T>,
}

impl<T> UnboundedReceiver<T> {
    /// Receives the next value, waiting while none is buffered. Returns
    /// `None` once every sender is dropped (or the receiver is
    /// [`close`](UnboundedReceiver::close)d) and the buffer is drained.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a value is only taken by the poll that returns it, so a
    /// dropped `recv` loses none.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let (tx, mut rx) = coro_sync::mpsc::unbounded_channel();
    /// std::thread::spawn(move || tx.send("from a thread").unwrap());
    /// assert_eq!(rx.recv().await, Some("from a thread"));
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
    /// let (tx, mut rx) = mpsc::unbounded_channel::<u8>();
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    /// drop(tx);
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
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
    /// let (tx, mut rx) = coro_sync::mpsc::unbounded_channel();
    /// tx.send(1).unwrap();
    /// tx.send(2).unwrap();
    /// let mut buf = vec![0];
    /// assert_eq!(rx.recv_many(&mut buf, 10).await, 2);
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

    /// Polls for the next value: [`recv`](UnboundedReceiver::recv) for
    /// hand-written futures and streams. Only the waker of the latest call is
    /// woken.
    ///
    /// ```
    /// use std::future::poll_fn;
    /// # futures::executor::block_on(async {
    /// let (tx, mut rx) = coro_sync::mpsc::unbounded_channel();
    /// tx.send(7).unwrap();
    /// assert_eq!(poll_fn(|cx| rx.poll_recv(cx)).await, Some(7));
    /// # });
    /// ```
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.rx.poll_recv(cx)
    }

    /// Closes the channel for the senders without dropping the receiver:
    /// sends fail from now on, values already buffered can still be received.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let (tx, mut rx) = coro_sync::mpsc::unbounded_channel();
    /// tx.send(1).unwrap();
    /// rx.close();
    /// assert_eq!(tx.send(2).unwrap_err().into_inner(), 2);
    /// assert_eq!(rx.recv().await, Some(1));
    /// assert_eq!(rx.recv().await, None);
    /// # });
    /// ```
    pub fn close(&mut self) {
        self.rx.close();
    }

    /// Returns `true` once [`close`](UnboundedReceiver::close) was called or
    /// every sender is gone (values may still be buffered).
    ///
    /// ```
    /// let (tx, rx) = coro_sync::mpsc::unbounded_channel::<u8>();
    /// drop(tx);
    /// assert!(rx.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.rx.is_closed()
    }

    /// Values buffered now.
    ///
    /// ```
    /// let (tx, rx) = coro_sync::mpsc::unbounded_channel();
    /// tx.send(1).unwrap();
    /// assert_eq!(rx.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Returns `true` if no value is buffered now.
    ///
    /// ```
    /// let (_tx, rx) = coro_sync::mpsc::unbounded_channel::<u8>();
    /// assert!(rx.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Stream for UnboundedReceiver<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.rx.poll_recv(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len(), None)
    }
}

impl<T> fmt::Debug for UnboundedReceiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnboundedReceiver")
            .field("chan", &self.rx)
            .finish()
    }
}
