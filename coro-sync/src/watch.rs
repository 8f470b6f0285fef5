//! A single-value channel that keeps only the latest value: receivers wait
//! for it to change and then look at the newest one.
//!
//! [`channel(init)`](channel) gives a [`Sender`] and a [`Receiver`]. Every
//! [`send`](Sender::send) replaces the value and bumps a version counter;
//! each receiver remembers the version it last saw, so
//! [`changed`](Receiver::changed) completes once per batch of sends however
//! many came in between (sends coalesce: a receiver never sees the values it
//! was too slow for, only the latest). Values are not cloned: receivers
//! [`borrow`](Receiver::borrow) them under a read lock.
//!
//! When every sender is dropped, `changed()` reports a last change if there
//! is an unseen one and then fails with [`RecvError`]; the
//! last value stays readable. When every receiver is dropped, `send` fails
//! (the `send_*` variants still update the value).
//!
//! Names and semantics follow `tokio::sync::watch`. Where coro differs:
//!
//! - `Debug` for the handles never needs `T: Debug` (it shows versions).
//! - Not provided (yet): `wait_for`, `Sender::new`, `Sender::sender_count`.
//!
//! Do not hold a [`Ref`] across an `.await`: it is a read lock, and senders
//! block on it (it is also not `Send`, which most executors enforce).
//!
//! # Examples
//!
//! ```
//! use coro_sync::watch;
//!
//! # futures::executor::block_on(async {
//! let (tx, mut rx) = watch::channel("starting");
//! tx.send("ready").unwrap();
//! tx.send("running").unwrap(); // coalesces with "ready"
//! rx.changed().await.unwrap();
//! assert_eq!(*rx.borrow_and_update(), "running");
//! assert!(!rx.has_changed().unwrap());
//! drop(tx);
//! assert!(rx.changed().await.is_err());
//! assert_eq!(*rx.borrow(), "running"); // the last value stays
//! # });
//! ```

use crate::loom::Arc;
use core::fmt;
use core::future::Future;
use core::ops::Deref;
use core::pin::Pin;
use core::task::{Context, Poll, ready};

use crate::loom::atomic::{AtomicU64, AtomicUsize, Ordering};
use crate::loom::{StdRwLock, StdRwLockReadGuard, read, write};
use crate::wait_queue::{Listener, WaitQueue, poll_listen};

/// Errors of the [`watch`](self) channel.
pub mod error {
    use core::fmt;

    /// No receiver is left: the value was not stored and comes back.
    ///
    /// ```
    /// let (tx, rx) = coro_sync::watch::channel(0);
    /// drop(rx);
    /// let err = tx.send(1).unwrap_err();
    /// assert_eq!(err.to_string(), "channel closed");
    /// assert_eq!(err.into_inner(), 1);
    /// ```
    #[derive(Clone, Copy, PartialEq, Eq, Hash)]
    pub struct SendError<T>(pub T);

    impl<T> SendError<T> {
        /// Returns the value that was not sent.
        ///
        /// ```
        /// assert_eq!(coro_sync::watch::error::SendError(2).into_inner(), 2);
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

    /// Every sender is gone (and, for
    /// [`changed`](super::Receiver::changed), the last value was seen).
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let (tx, mut rx) = coro_sync::watch::channel(0);
    /// drop(tx);
    /// assert_eq!(rx.changed().await.unwrap_err().to_string(), "channel closed");
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
}

use error::{RecvError, SendError};

/// Every sender is gone.
const CLOSED: u64 = 1;
/// The version lives above the closed bit: a send adds this.
const STEP: u64 = 2;

fn version(state: u64) -> u64 {
    state >> 1
}

struct Shared<T> {
    value: StdRwLock<T>,
    /// `version << 1 | CLOSED`. Bumped while the value is write-locked, so a
    /// reader holding the read lock sees the version that goes with it.
    state: AtomicU64,
    receivers: AtomicUsize,
    senders: AtomicUsize,
    /// Receivers waiting for a new version (or the close).
    changed_ops: WaitQueue,
    /// Senders' `closed()` waiting for the last receiver to go.
    closed_ops: WaitQueue,
}

impl<T> Shared<T> {
    /// Publishes a new version and wakes every waiting receiver; the caller
    /// holds the write lock.
    fn bump(&self) {
        self.state.fetch_add(STEP, Ordering::SeqCst);
    }

    fn notify_changed(&self) {
        self.changed_ops.notify_additional(usize::MAX);
    }

    fn subscribe(this: &Arc<Self>, seen: u64) -> Receiver<T> {
        this.receivers.fetch_add(1, Ordering::SeqCst);
        Receiver {
            shared: this.clone(),
            seen,
        }
    }
}

/// Creates a watch channel holding `init`. The receiver starts having seen
/// it.
///
/// ```
/// let (tx, rx) = coro_sync::watch::channel(1);
/// assert_eq!(*rx.borrow(), 1);
/// assert!(!rx.has_changed().unwrap());
/// # drop(tx);
/// ```
pub fn channel<T>(init: T) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        value: StdRwLock::new(init),
        state: AtomicU64::new(0),
        receivers: AtomicUsize::new(0),
        senders: AtomicUsize::new(1),
        changed_ops: WaitQueue::new(),
        closed_ops: WaitQueue::new(),
    });
    let rx = Shared::subscribe(&shared, 0);
    (Sender { shared }, rx)
}

/// A borrow of the value in a [`watch`](self) channel: a read lock, released
/// on drop. Keep it short, and never across an `.await`.
pub struct Ref<'a, T> {
    guard: StdRwLockReadGuard<'a, T>,
    has_changed: bool,
}

impl<T> Ref<'_, T> {
    /// Whether this value was unseen by the receiver when it borrowed it
    /// (always `false` for [`Sender::borrow`] and [`Receiver::borrow`] of a
    /// seen value).
    ///
    /// ```
    /// let (tx, mut rx) = coro_sync::watch::channel(0);
    /// tx.send(1).unwrap();
    /// assert!(rx.borrow_and_update().has_changed());
    /// assert!(!rx.borrow_and_update().has_changed());
    /// ```
    pub fn has_changed(&self) -> bool {
        self.has_changed
    }
}

impl<T> Deref for Ref<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: fmt::Debug> fmt::Debug for Ref<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

/// Updates the value of a [`watch`](self) channel; clone it for more
/// producers.
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Replaces the value and notifies every receiver.
    ///
    /// # Errors
    ///
    /// [`SendError`] with the value if no receiver is left (the value is then
    /// not stored; [`send_replace`](Sender::send_replace) stores it anyway).
    ///
    /// ```
    /// let (tx, rx) = coro_sync::watch::channel(0);
    /// tx.send(1).unwrap();
    /// assert_eq!(*rx.borrow(), 1);
    /// ```
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        if self.shared.receivers.load(Ordering::SeqCst) == 0 {
            return Err(SendError(value));
        }
        drop(self.send_replace(value));
        Ok(())
    }

    /// Replaces the value, whether or not there are receivers, notifies them
    /// and returns the old value.
    ///
    /// ```
    /// let (tx, _rx) = coro_sync::watch::channel(0);
    /// assert_eq!(tx.send_replace(1), 0);
    /// assert_eq!(*tx.borrow(), 1);
    /// ```
    pub fn send_replace(&self, value: T) -> T {
        let old = {
            let mut v = write(&self.shared.value);
            let old = core::mem::replace(&mut *v, value);
            self.shared.bump();
            old
        };
        self.shared.notify_changed();
        old
    }

    /// Modifies the value in place, whether or not there are receivers, and
    /// notifies them.
    ///
    /// If `modify` panics, the value stays as the panic left it and no
    /// receiver is notified.
    ///
    /// ```
    /// let (tx, rx) = coro_sync::watch::channel(vec![1]);
    /// tx.send_modify(|v| v.push(2));
    /// assert_eq!(*rx.borrow(), [1, 2]);
    /// assert!(rx.has_changed().unwrap());
    /// ```
    pub fn send_modify(&self, modify: impl FnOnce(&mut T)) {
        self.send_if_modified(|v| {
            modify(v);
            true
        });
    }

    /// Modifies the value in place; notifies the receivers only if `modify`
    /// returns `true`. Returns what `modify` returned.
    ///
    /// ```
    /// let (tx, rx) = coro_sync::watch::channel(5);
    /// assert!(!tx.send_if_modified(|v| std::mem::replace(v, 5) != 5));
    /// assert!(!rx.has_changed().unwrap());
    /// assert!(tx.send_if_modified(|v| std::mem::replace(v, 6) != 6));
    /// assert!(rx.has_changed().unwrap());
    /// ```
    pub fn send_if_modified(&self, modify: impl FnOnce(&mut T) -> bool) -> bool {
        {
            let mut v = write(&self.shared.value);
            if !modify(&mut v) {
                return false;
            }
            self.shared.bump();
        }
        self.shared.notify_changed();
        true
    }

    /// Borrows the current value (a read lock: keep it short).
    ///
    /// ```
    /// let (tx, _rx) = coro_sync::watch::channel("a");
    /// assert_eq!(*tx.borrow(), "a");
    /// ```
    pub fn borrow(&self) -> Ref<'_, T> {
        Ref {
            guard: read(&self.shared.value),
            has_changed: false,
        }
    }

    /// A new receiver that has seen the current value.
    ///
    /// ```
    /// let (tx, rx) = coro_sync::watch::channel(0);
    /// drop(rx);
    /// let rx = tx.subscribe();
    /// assert!(!rx.has_changed().unwrap());
    /// assert!(tx.send(1).is_ok());
    /// ```
    pub fn subscribe(&self) -> Receiver<T> {
        let seen = version(self.shared.state.load(Ordering::SeqCst));
        Shared::subscribe(&self.shared, seen)
    }

    /// Receivers now.
    ///
    /// ```
    /// let (tx, rx) = coro_sync::watch::channel(0);
    /// let _rx2 = rx.clone();
    /// assert_eq!(tx.receiver_count(), 2);
    /// ```
    pub fn receiver_count(&self) -> usize {
        self.shared.receivers.load(Ordering::SeqCst)
    }

    /// Returns `true` when no receiver is left: [`send`](Sender::send) fails.
    ///
    /// ```
    /// let (tx, rx) = coro_sync::watch::channel(0);
    /// drop(rx);
    /// assert!(tx.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.receiver_count() == 0
    }

    /// Waits until no receiver is left.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the future only waits.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let (tx, rx) = coro_sync::watch::channel(0);
    /// std::thread::spawn(move || drop(rx));
    /// tx.closed().await;
    /// assert!(tx.send(1).is_err());
    /// # });
    /// ```
    pub fn closed(&self) -> futures::WatchClosed<'_, T> {
        futures::WatchClosed {
            shared: &self.shared,
            listener: None,
        }
    }

    /// Returns `true` if both senders update the same channel.
    ///
    /// ```
    /// let (tx, _rx) = coro_sync::watch::channel(0);
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
            self.shared.state.fetch_or(CLOSED, Ordering::SeqCst);
            self.shared.changed_ops.notify_all();
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("watch::Sender")
            .field(
                "version",
                &version(self.shared.state.load(Ordering::SeqCst)),
            )
            .field("receivers", &self.receiver_count())
            .finish()
    }
}

/// Watches the value of a [`watch`](self) channel; clone it for more
/// watchers (a clone has seen what the original has seen).
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
    /// The version this receiver last saw.
    seen: u64,
}

impl<T> Receiver<T> {
    /// Waits until there is a version this receiver has not seen, then marks
    /// it seen. Completes at once if there already is one.
    ///
    /// # Errors
    ///
    /// [`RecvError`] once every sender is gone and the latest version was
    /// seen.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the version is only marked seen by the poll that
    /// returns, and every send wakes every waiting receiver, so nobody
    /// depends on a dropped one's wake-up.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let (tx, mut rx) = coro_sync::watch::channel(0);
    /// std::thread::spawn(move || tx.send(1).unwrap());
    /// rx.changed().await.unwrap();
    /// assert_eq!(*rx.borrow(), 1);
    /// # });
    /// ```
    pub fn changed(&mut self) -> futures::WatchChanged<'_, T> {
        let Self { shared, seen } = self;
        let shared: &Arc<Shared<T>> = shared;
        futures::WatchChanged {
            shared,
            seen,
            listener: None,
        }
    }

    /// Borrows the latest value without marking it seen (a read lock: keep
    /// it short).
    ///
    /// ```
    /// let (tx, rx) = coro_sync::watch::channel(0);
    /// tx.send(1).unwrap();
    /// assert_eq!(*rx.borrow(), 1);
    /// assert!(rx.has_changed().unwrap());
    /// ```
    pub fn borrow(&self) -> Ref<'_, T> {
        let guard = read(&self.shared.value);
        let current = version(self.shared.state.load(Ordering::SeqCst));
        Ref {
            guard,
            has_changed: current != self.seen,
        }
    }

    /// Borrows the latest value and marks it seen.
    ///
    /// ```
    /// let (tx, mut rx) = coro_sync::watch::channel(0);
    /// tx.send(1).unwrap();
    /// assert_eq!(*rx.borrow_and_update(), 1);
    /// assert!(!rx.has_changed().unwrap());
    /// ```
    pub fn borrow_and_update(&mut self) -> Ref<'_, T> {
        let guard = read(&self.shared.value);
        // Versions move under the write lock: this one goes with `guard`.
        let current = version(self.shared.state.load(Ordering::SeqCst));
        let has_changed = current != self.seen;
        self.seen = current;
        Ref { guard, has_changed }
    }

    /// Returns `true` if there is a version this receiver has not seen.
    ///
    /// # Errors
    ///
    /// [`RecvError`] once every sender is gone (even with an unseen value,
    /// which stays readable).
    ///
    /// ```
    /// let (tx, rx) = coro_sync::watch::channel(0);
    /// assert!(!rx.has_changed().unwrap());
    /// tx.send(1).unwrap();
    /// assert!(rx.has_changed().unwrap());
    /// drop(tx);
    /// assert!(rx.has_changed().is_err());
    /// ```
    pub fn has_changed(&self) -> Result<bool, RecvError> {
        let s = self.shared.state.load(Ordering::SeqCst);
        if s & CLOSED != 0 {
            return Err(RecvError(()));
        }
        Ok(version(s) != self.seen)
    }

    /// Marks the latest value unseen: the next [`changed`](Receiver::changed)
    /// completes at once.
    ///
    /// ```
    /// let (_tx, mut rx) = coro_sync::watch::channel(0);
    /// rx.mark_changed();
    /// assert!(rx.has_changed().unwrap());
    /// ```
    pub fn mark_changed(&mut self) {
        // Versions are 63-bit: this never equals one.
        self.seen = u64::MAX;
    }

    /// Marks the latest value seen without borrowing it.
    ///
    /// ```
    /// let (tx, mut rx) = coro_sync::watch::channel(0);
    /// tx.send(1).unwrap();
    /// rx.mark_unchanged();
    /// assert!(!rx.has_changed().unwrap());
    /// ```
    pub fn mark_unchanged(&mut self) {
        self.seen = version(self.shared.state.load(Ordering::SeqCst));
    }

    /// Returns `true` if both receivers watch the same channel.
    ///
    /// ```
    /// let (_tx, rx) = coro_sync::watch::channel(0);
    /// assert!(rx.same_channel(&rx.clone()));
    /// ```
    pub fn same_channel(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        Shared::subscribe(&self.shared, self.seen)
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        if self.shared.receivers.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.shared.closed_ops.notify_all();
        }
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("watch::Receiver")
            .field("seen", &self.seen)
            .field(
                "version",
                &version(self.shared.state.load(Ordering::SeqCst)),
            )
            .finish()
    }
}

/// The named futures, re-exported in [`crate::futures`].
pub(crate) mod futures {
    use super::*;

    /// Future of [`Receiver::changed`](super::Receiver::changed).
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct WatchChanged<'a, T> {
        pub(super) shared: &'a Shared<T>,
        pub(super) seen: &'a mut u64,
        pub(super) listener: Option<Listener<'a>>,
    }

    impl<T> Future for WatchChanged<'_, T> {
        type Output = Result<(), RecvError>;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            // Counted against the task's budget (`coro_core::coop`): a
            // value changed faster than it is read never waits otherwise.
            // Nothing is marked seen when it yields.
            let this = &mut *self;
            coro_core::coop::poll_counted(cx, |cx| {
                loop {
                    let s = this.shared.state.load(Ordering::SeqCst);
                    if version(s) != *this.seen {
                        *this.seen = version(s);
                        return Poll::Ready(Ok(()));
                    }
                    if s & CLOSED != 0 {
                        return Poll::Ready(Err(RecvError(())));
                    }
                    ready!(poll_listen(
                        &this.shared.changed_ops,
                        &mut this.listener,
                        cx
                    ));
                }
            })
        }
    }

    impl<T> fmt::Debug for WatchChanged<'_, T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("WatchChanged")
                .field("seen", &*self.seen)
                .finish()
        }
    }

    /// Future of [`Sender::closed`](super::Sender::closed).
    #[must_use = "futures do nothing unless you .await or poll them"]
    pub struct WatchClosed<'a, T> {
        pub(super) shared: &'a Shared<T>,
        pub(super) listener: Option<Listener<'a>>,
    }

    impl<T> Future for WatchClosed<'_, T> {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let this = &mut *self;
            loop {
                if this.shared.receivers.load(Ordering::SeqCst) == 0 {
                    return Poll::Ready(());
                }
                ready!(poll_listen(&this.shared.closed_ops, &mut this.listener, cx));
            }
        }
    }

    impl<T> fmt::Debug for WatchClosed<'_, T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("WatchClosed").finish_non_exhaustive()
        }
    }
}
