//! A multi-producer, multi-consumer broadcast channel: every receiver sees
//! every value sent after it subscribed, as long as it keeps up.
//!
//! [`channel(cap)`](channel) gives a [`Sender`] and a [`Receiver`]. The
//! channel keeps the last `cap` values in a ring; [`Sender::send`] never
//! waits: it overwrites the oldest value. A receiver that fell more than
//! `cap` values behind gets [`RecvError::Lagged(n)`](error::RecvError::Lagged)
//! once, telling it exactly how many values it missed, and then resumes at
//! the oldest value the ring still holds. More receivers come from
//! [`Sender::subscribe`] or [`Receiver::resubscribe`]; they start with the
//! next value sent. When every sender is dropped, receivers get what is left
//! and then [`RecvError::Closed`].
//!
//! Names and semantics follow `tokio::sync::broadcast`. Where coro differs:
//!
//! - The ring holds exactly `cap` values (tokio rounds `cap` up to a power
//!   of two), so lag counts follow the `cap` you asked for.
//! - A value stays in its slot until it is overwritten or the channel is
//!   dropped (tokio drops it as soon as every receiver has seen it); the
//!   memory bound is the same `cap` values. So a value's destructor runs
//!   later than under tokio: a value that holds a `Sender` of its own
//!   channel keeps the channel open (receivers never see `Closed`), and
//!   one that holds a `oneshot::Sender` tells its receiver nothing when it
//!   has been read. Send such handles through an [`mpsc`](crate::mpsc)
//!   channel, which gives each value up as it is received.
//! - Not provided (yet): `WeakSender`, `Sender::closed`, `Sender::len`.
//!
//! # Examples
//!
//! ```
//! use coro_sync::broadcast::{self, error::RecvError};
//!
//! # futures::executor::block_on(async {
//! let (tx, mut a) = broadcast::channel(2);
//! let mut b = tx.subscribe();
//! assert_eq!(tx.send("x").unwrap(), 2); // two receivers saw it sent
//! assert_eq!(a.recv().await, Ok("x"));
//! assert_eq!(b.recv().await, Ok("x"));
//!
//! // `b` does not keep up: three more values into a ring of two.
//! for v in ["1", "2", "3"] {
//!     tx.send(v).unwrap();
//! }
//! assert_eq!(b.recv().await, Err(RecvError::Lagged(1)));
//! assert_eq!(b.recv().await, Ok("2"));
//! drop(tx);
//! assert_eq!(b.recv().await, Ok("3"));
//! assert_eq!(b.recv().await, Err(RecvError::Closed));
//! # });
//! ```

use crate::loom::Arc;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};

use crate::loom::atomic::{AtomicUsize, Ordering};
use crate::loom::{StdMutex, lock};
use crate::wait_queue::{Listener, WaitQueue, poll_listen};

/// Errors of the [`broadcast`](self) channel.
pub mod error {
    use core::fmt;

    /// No receiver is left: the value was not sent and comes back.
    ///
    /// ```
    /// let (tx, rx) = coro_sync::broadcast::channel(1);
    /// drop(rx);
    /// let err = tx.send(5).unwrap_err();
    /// assert_eq!(err.to_string(), "channel closed");
    /// assert_eq!(err.into_inner(), 5);
    /// ```
    #[derive(Clone, Copy, PartialEq, Eq, Hash)]
    pub struct SendError<T>(pub T);

    impl<T> SendError<T> {
        /// Returns the value that was not sent.
        ///
        /// ```
        /// assert_eq!(coro_sync::broadcast::error::SendError(1).into_inner(), 1);
        /// ```
        pub fn into_inner(self) -> T {
            self.0
        }
    }

    impl<T> fmt::Debug for SendError<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("SendError(..)")
        }
    }

    impl<T> fmt::Display for SendError<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("channel closed")
        }
    }

    impl<T> std::error::Error for SendError<T> {}

    /// Why [`Receiver::recv`](super::Receiver::recv) returned no value.
    ///
    /// ```
    /// use coro_sync::broadcast::error::RecvError;
    /// assert_eq!(RecvError::Lagged(3).to_string(), "channel lagged by 3");
    /// ```
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum RecvError {
        /// Every sender is gone and this receiver has seen every value left.
        Closed,
        /// This receiver fell behind: that many values were overwritten
        /// before it read them. The next receive returns the oldest value
        /// the channel still holds.
        Lagged(u64),
    }

    impl fmt::Display for RecvError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Self::Closed => f.write_str("channel closed"),
                Self::Lagged(n) => write!(f, "channel lagged by {n}"),
            }
        }
    }

    impl std::error::Error for RecvError {}

    /// Why [`Receiver::try_recv`](super::Receiver::try_recv) returned no
    /// value.
    ///
    /// ```
    /// use coro_sync::broadcast::{self, error::TryRecvError};
    ///
    /// let (tx, mut rx) = broadcast::channel::<u8>(1);
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    /// drop(tx);
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    /// ```
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum TryRecvError {
        /// No new value right now.
        Empty,
        /// Every sender is gone and this receiver has seen every value left.
        Closed,
        /// This receiver fell behind by that many values (see
        /// [`RecvError::Lagged`]).
        Lagged(u64),
    }

    impl fmt::Display for TryRecvError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Self::Empty => f.write_str("channel empty"),
                Self::Closed => f.write_str("channel closed"),
                Self::Lagged(n) => write!(f, "channel lagged by {n}"),
            }
        }
    }

    impl std::error::Error for TryRecvError {}
}

use error::{RecvError, SendError, TryRecvError};

/// One place of the ring.
struct Slot<T> {
    /// The position of the value held (`u64::MAX`: never written).
    pos: u64,
    val: Option<T>,
}

/// What a send changes, under one lock: senders are serialised by it, and a
/// receiver that finds nothing new decides "empty", "lagged" or "closed"
/// under it too.
struct Tail {
    /// The position the next value gets.
    pos: u64,
    receivers: usize,
    closed: bool,
}

struct Shared<T> {
    /// Slot `p % cap` holds position `p`. A mutex per slot, not a reader
    /// lock: receivers clone through it, and cloning on several threads at
    /// once would need `T: Sync`.
    slots: Box<[StdMutex<Slot<T>>]>,
    tail: StdMutex<Tail>,
    senders: AtomicUsize,
    /// Receivers waiting for the next value (or the close).
    recv_ops: WaitQueue,
}

impl<T> Shared<T> {
    fn cap(&self) -> u64 {
        self.slots.len() as u64
    }

    fn subscribe(this: &Arc<Self>) -> Receiver<T> {
        let mut tail = lock(&this.tail);
        tail.receivers += 1;
        Receiver {
            shared: this.clone(),
            next: tail.pos,
        }
    }
}

impl<T: Clone> Shared<T> {
    fn try_recv(&self, next: &mut u64) -> Result<T, TryRecvError> {
        let slot = &self.slots[(*next % self.cap()) as usize];
        {
            let s = lock(slot);
            if s.pos == *next {
                if let Some(v) = &s.val {
                    let v = v.clone();
                    *next += 1;
                    return Ok(v);
                }
            }
        }
        // Not our value: not written yet, or overwritten. Sends happen under
        // the tail lock, so under it the answer is stable.
        let tail = lock(&self.tail);
        let s = lock(slot);
        if s.pos == *next {
            if let Some(v) = &s.val {
                let v = v.clone();
                *next += 1;
                return Ok(v);
            }
        }
        drop(s);
        if *next < tail.pos {
            // Position `next` was written and then overwritten: resume at
            // the oldest value still held.
            let oldest = tail.pos - self.cap();
            let missed = oldest - *next;
            *next = oldest;
            Err(TryRecvError::Lagged(missed))
        } else if tail.closed {
            Err(TryRecvError::Closed)
        } else {
            Err(TryRecvError::Empty)
        }
    }
}

/// Creates a broadcast channel that keeps the last `capacity` values.
///
/// # Panics
///
/// If `capacity` is 0 or above `usize::MAX / 2`.
///
/// ```
/// # futures::executor::block_on(async {
/// let (tx, mut rx) = coro_sync::broadcast::channel(16);
/// tx.send(1).unwrap();
/// assert_eq!(rx.recv().await, Ok(1));
/// # });
/// ```
pub fn channel<T: Clone>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(capacity > 0, "broadcast channel capacity cannot be zero");
    assert!(
        capacity <= usize::MAX >> 1,
        "broadcast channel capacity above usize::MAX / 2"
    );
    let shared = Arc::new(Shared {
        slots: (0..capacity)
            .map(|_| {
                StdMutex::new(Slot {
                    pos: u64::MAX,
                    val: None,
                })
            })
            .collect(),
        tail: StdMutex::new(Tail {
            pos: 0,
            receivers: 0,
            closed: false,
        }),
        senders: AtomicUsize::new(1),
        recv_ops: WaitQueue::new(),
    });
    let rx = Shared::subscribe(&shared);
    (Sender { shared }, rx)
}

/// Sends values to every [`Receiver`] of a [`broadcast`](self) channel;
/// clone it for more producers.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Sends `value` to every current receiver; never waits. If the ring is
    /// full, the oldest value is overwritten (receivers that had not read it
    /// will see [`RecvError::Lagged`]). Returns how many receivers there
    /// are.
    ///
    /// # Errors
    ///
    /// [`SendError`] with the value if there is no receiver.
    ///
    /// ```
    /// let (tx, rx) = coro_sync::broadcast::channel(1);
    /// let _rx2 = tx.subscribe();
    /// assert_eq!(tx.send(1).unwrap(), 2);
    /// # drop(rx);
    /// ```
    pub fn send(&self, value: T) -> Result<usize, SendError<T>> {
        let mut tail = lock(&self.shared.tail);
        if tail.receivers == 0 {
            return Err(SendError(value));
        }
        let pos = tail.pos;
        tail.pos += 1;
        let receivers = tail.receivers;
        let old = {
            let mut s = lock(&self.shared.slots[(pos % self.shared.cap()) as usize]);
            s.pos = pos;
            s.val.replace(value)
        };
        drop(tail);
        // Every waiting receiver wants this value: told before the
        // overwritten value's destructor runs (outside the locks), so one
        // that panics or blocks does not keep them asleep.
        self.shared.recv_ops.notify_additional(usize::MAX);
        drop(old);
        Ok(receivers)
    }

    /// A new receiver that gets the values sent from now on.
    ///
    /// ```
    /// let (tx, _rx) = coro_sync::broadcast::channel(1);
    /// let mut late = tx.subscribe();
    /// tx.send(2).unwrap();
    /// assert_eq!(late.try_recv(), Ok(2));
    /// ```
    pub fn subscribe(&self) -> Receiver<T> {
        Shared::subscribe(&self.shared)
    }

    /// Receivers now.
    ///
    /// ```
    /// let (tx, rx) = coro_sync::broadcast::channel::<u8>(1);
    /// assert_eq!(tx.receiver_count(), 1);
    /// drop(rx);
    /// assert_eq!(tx.receiver_count(), 0);
    /// ```
    pub fn receiver_count(&self) -> usize {
        lock(&self.shared.tail).receivers
    }

    /// Returns `true` if both senders feed the same channel.
    ///
    /// ```
    /// let (tx, _rx) = coro_sync::broadcast::channel::<u8>(1);
    /// assert!(tx.same_channel(&tx.clone()));
    /// ```
    pub fn same_channel(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        // Made from a live sender: the count is not zero and publishes nothing.
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            lock(&self.shared.tail).closed = true;
            self.shared.recv_ops.notify_all();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("broadcast::Sender")
            .field("receivers", &self.receiver_count())
            .finish()
    }
}

/// Receives every value of a [`broadcast`](self) channel sent after it was
/// made.
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// The position of the next value this receiver reads.
    next: u64,
}

impl<T: Clone> Receiver<T> {
    /// Receives the next value, waiting while there is none.
    ///
    /// # Errors
    ///
    /// [`RecvError::Lagged(n)`](RecvError::Lagged) if `n` values were
    /// overwritten before this receiver read them (it then resumes at the
    /// oldest one held), [`RecvError::Closed`] once every sender is gone and
    /// every value left was received.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the receiver only moves on in the poll that returns a
    /// value (or a lag), so a dropped `recv` loses nothing. Every send wakes
    /// every waiting receiver, so nobody depends on a dropped one's wake-up.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let (tx, mut rx) = coro_sync::broadcast::channel(4);
    /// std::thread::spawn(move || tx.send("hi").unwrap());
    /// assert_eq!(rx.recv().await, Ok("hi"));
    /// # });
    /// ```
    pub fn recv(&mut self) -> futures::BroadcastRecv<'_, T> {
        let Self { shared, next } = self;
        let shared: &Arc<Shared<T>> = shared;
        futures::BroadcastRecv {
            shared,
            next,
            listener: None,
        }
    }

    /// Receives the next value if there is one, without waiting.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if nothing new was sent, otherwise as
    /// [`recv`](Receiver::recv).
    ///
    /// ```
    /// use coro_sync::broadcast::{self, error::TryRecvError};
    ///
    /// let (tx, mut rx) = broadcast::channel(1);
    /// tx.send(1).unwrap();
    /// tx.send(2).unwrap();
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Lagged(1)));
    /// assert_eq!(rx.try_recv(), Ok(2));
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    /// ```
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.shared.try_recv(&mut self.next)
    }
}

impl<T> Receiver<T> {
    /// A new receiver of the same channel that gets the values sent from now
    /// on (not those this one has yet to read).
    ///
    /// ```
    /// let (tx, mut rx) = coro_sync::broadcast::channel(2);
    /// tx.send(1).unwrap();
    /// let mut rx2 = rx.resubscribe();
    /// tx.send(2).unwrap();
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// assert_eq!(rx2.try_recv(), Ok(2));
    /// ```
    pub fn resubscribe(&self) -> Self {
        Shared::subscribe(&self.shared)
    }

    /// Values sent that this receiver has yet to read (more than the
    /// capacity means it lags).
    ///
    /// ```
    /// let (tx, rx) = coro_sync::broadcast::channel(4);
    /// tx.send(1).unwrap();
    /// assert_eq!(rx.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        let tail = lock(&self.shared.tail).pos;
        usize::try_from(tail - self.next).unwrap_or(usize::MAX)
    }

    /// Returns `true` if this receiver has read every value sent.
    ///
    /// ```
    /// let (_tx, rx) = coro_sync::broadcast::channel::<u8>(4);
    /// assert!(rx.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Receivers of this channel now (this one included).
    ///
    /// ```
    /// let (_tx, rx) = coro_sync::broadcast::channel::<u8>(4);
    /// let _rx2 = rx.resubscribe();
    /// assert_eq!(rx.receiver_count(), 2);
    /// ```
    pub fn receiver_count(&self) -> usize {
        lock(&self.shared.tail).receivers
    }

    /// Returns `true` if both receivers read the same channel.
    ///
    /// ```
    /// let (_tx, rx) = coro_sync::broadcast::channel::<u8>(4);
    /// assert!(rx.same_channel(&rx.resubscribe()));
    /// ```
    pub fn same_channel(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        lock(&self.shared.tail).receivers -= 1;
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("broadcast::Receiver")
            .field("next", &self.next)
            .finish()
    }
}

/// The named futures, re-exported in [`crate::futures`].
pub(crate) mod futures {
    use super::*;

    /// Future of [`Receiver::recv`](super::Receiver::recv).
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct BroadcastRecv<'a, T> {
        pub(super) shared: &'a Shared<T>,
        pub(super) next: &'a mut u64,
        pub(super) listener: Option<Listener<'a>>,
    }

    impl<T: Clone> Future for BroadcastRecv<'_, T> {
        type Output = Result<T, RecvError>;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            // Counted against the task's budget (`coro_core::coop`), as the
            // mpsc receivers; nothing is taken when it yields.
            let this = &mut *self;
            coro_core::coop::poll_counted(cx, |cx| {
                loop {
                    match this.shared.try_recv(this.next) {
                        Ok(v) => return Poll::Ready(Ok(v)),
                        Err(TryRecvError::Lagged(n)) => {
                            return Poll::Ready(Err(RecvError::Lagged(n)));
                        }
                        Err(TryRecvError::Closed) => return Poll::Ready(Err(RecvError::Closed)),
                        Err(TryRecvError::Empty) => {}
                    }
                    ready!(poll_listen(&this.shared.recv_ops, &mut this.listener, cx));
                }
            })
        }
    }

    impl<T> fmt::Debug for BroadcastRecv<'_, T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("BroadcastRecv")
                .field("next", &*self.next)
                .finish()
        }
    }
}
