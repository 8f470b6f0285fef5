//! [`Condvar`]: a condition variable for [`Mutex`].

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use crate::waiters::{Waiter, Waiters};

use crate::mutex::{Mutex, MutexGuard};
use crate::raw_mutex::RawLock;

/// A condition variable: tasks wait, with a [`Mutex`] released, until another
/// task notifies them; they resume holding the mutex again.
///
/// As with every condition variable, wake-ups can be spurious: re-check the
/// condition, or use [`wait_while`](Condvar::wait_while). Timeouts come from
/// composing the wait with any timer (e.g. `select` with a sleep). libcoro:
/// `coro::condition_variable`.
///
/// # Examples
///
/// ```
/// use coro_sync::{Condvar, Mutex};
///
/// # futures::executor::block_on(async {
/// let ready = Mutex::new(false);
/// let cv = Condvar::new();
/// let waiter = async {
///     let g = cv.wait_while(ready.lock().await, |r| !*r).await;
///     assert!(*g);
/// };
/// let setter = async {
///     *ready.lock().await = true;
///     cv.notify_all();
/// };
/// futures::join!(waiter, setter);
/// # });
/// ```
#[doc(alias = "condition_variable")]
pub struct Condvar {
    event: Waiters,
}

impl Condvar {
    /// Creates a condition variable.
    ///
    /// ```
    /// let cv = coro_sync::Condvar::new();
    /// cv.notify_one(); // nobody waits: no effect
    /// ```
    pub fn new() -> Self {
        Self {
            event: Waiters::new(),
        }
    }

    /// Wakes one task waiting now (each call wakes a different one). A call
    /// with nobody waiting has no effect.
    ///
    /// ```
    /// coro_sync::Condvar::new().notify_one();
    /// ```
    pub fn notify_one(&self) {
        self.event.notify_additional(1);
    }

    /// Wakes every task waiting now.
    ///
    /// ```
    /// coro_sync::Condvar::new().notify_all();
    /// ```
    pub fn notify_all(&self) {
        self.event.notify(usize::MAX);
    }

    /// Releases `guard`'s mutex, waits for a notification, then locks the
    /// mutex again and returns the new guard.
    ///
    /// The task is registered as a waiter when `wait` is called, before the
    /// mutex is released, so a notification sent after the release (by a task
    /// that took the mutex) cannot be missed.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future releases the mutex if it still held it. A
    /// notification it received but could not act on is passed to another
    /// waiter (which may then see a spurious wake-up), so none is lost.
    ///
    /// ```
    /// use coro_sync::{Condvar, Mutex};
    /// # futures::executor::block_on(async {
    /// let (m, cv) = (Mutex::new(0), Condvar::new());
    /// let waiter = async {
    ///     let mut g = m.lock().await;
    ///     while *g == 0 {
    ///         g = cv.wait(g).await;
    ///     }
    ///     *g
    /// };
    /// let notifier = async {
    ///     *m.lock().await = 1;
    ///     cv.notify_one();
    /// };
    /// assert_eq!(futures::join!(waiter, notifier).0, 1);
    /// # });
    /// ```
    pub fn wait<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> CondvarWait<'a, '_, T> {
        let listener = self.event.listen();
        CondvarWait {
            condvar: self,
            mutex: MutexGuard::source(&guard),
            guard: Some(guard),
            listener: Some(listener),
            relock: RawLock::default(),
        }
    }

    /// Waits while `condition` holds: returns the guard once it is `false`
    /// (at once if it already is).
    ///
    /// # Cancel safety
    ///
    /// As [`wait`](Condvar::wait).
    ///
    /// ```
    /// use coro_sync::{Condvar, Mutex};
    /// # futures::executor::block_on(async {
    /// let (m, cv) = (Mutex::new(3), Condvar::new());
    /// let g = cv.wait_while(m.lock().await, |v| *v < 3).await; // already false
    /// assert_eq!(*g, 3);
    /// # });
    /// ```
    pub async fn wait_while<'a, T: ?Sized, F>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut condition: F,
    ) -> MutexGuard<'a, T>
    where
        F: FnMut(&mut T) -> bool,
    {
        while condition(&mut guard) {
            guard = self.wait(guard).await;
        }
        guard
    }
}

impl Default for Condvar {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Condvar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condvar").finish_non_exhaustive()
    }
}

/// Future of [`Condvar::wait`].
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct CondvarWait<'a, 'c, T: ?Sized> {
    condvar: &'c Condvar,
    mutex: &'a Mutex<T>,
    guard: Option<MutexGuard<'a, T>>,
    listener: Option<Waiter>,
    relock: RawLock,
}

impl<'a, T: ?Sized> Future for CondvarWait<'a, '_, T> {
    type Output = MutexGuard<'a, T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        // Release the mutex on the first poll; the listener is already registered.
        this.guard = None;
        if let Some(l) = &mut this.listener {
            if Pin::new(l).poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.listener = None;
        }
        match this.relock.poll_lock(&this.mutex.raw, cx) {
            Poll::Ready(()) => Poll::Ready(MutexGuard::new(this.mutex)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: ?Sized> Drop for CondvarWait<'_, '_, T> {
    fn drop(&mut self) {
        if self.listener.is_none() && !self.relock.is_done() {
            // Woken, but dropped before re-locking: hand the wake-up on
            // (also if the cancel, which may wake a lock waiter, panics).
            crate::then_anyway(
                || self.relock.cancel(&self.mutex.raw),
                || self.condvar.event.notify_additional(1),
            );
        }
    }
}

impl<T: ?Sized> fmt::Debug for CondvarWait<'_, '_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CondvarWait").finish_non_exhaustive()
    }
}
