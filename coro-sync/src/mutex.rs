//! [`Mutex`]: an async mutual-exclusion lock.

use core::fmt;
use core::future::Future;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::Arc;

use crate::cell::ExclusiveCell;
use crate::raw_mutex::{RawLock, RawMutex};

/// An async mutex: one holder at a time, waiters suspend instead of blocking.
///
/// Uncontended, [`lock`](Mutex::lock) is a single compare-exchange and
/// unlocking another one, like `std::sync::Mutex`. libcoro: `coro::mutex`.
///
/// # Fairness
///
/// A waiter may lose the lock to newcomers (which keeps throughput high) for
/// at most about **1 ms** of waiting; after that it is *starved*: nobody new
/// may take the lock, and every unlock hands the lock straight to a starved
/// waiter, oldest first. So no waiter waits forever while others keep locking.
/// (1 ms, as Go's `sync.Mutex`: while anyone is starved every lock is a
/// wake-up of the next waiter, which costs throughput, so the bound is kept
/// long enough that short bursts of contention stay in the fast mode.)
///
/// # Panics while locked
///
/// A guard dropped by a panic unlocks, and there is no poisoning (as with
/// tokio's mutex, unlike `std::sync::Mutex`): the next holder sees the
/// data as the panicking code left it.
///
/// # Examples
///
/// ```
/// use coro_sync::Mutex;
///
/// # futures::executor::block_on(async {
/// let m = Mutex::new(Vec::new());
/// m.lock().await.push(1);
/// assert_eq!(*m.lock().await, [1]);
/// # });
/// ```
pub struct Mutex<T: ?Sized> {
    pub(crate) raw: RawMutex,
    data: ExclusiveCell<T>,
}

impl<T> Mutex<T> {
    /// Creates an unlocked mutex holding `value`.
    ///
    /// ```
    /// let m = coro_sync::Mutex::new(5);
    /// # drop(m);
    /// ```
    pub fn new(value: T) -> Self {
        Self {
            raw: RawMutex::new(),
            data: ExclusiveCell::new(value),
        }
    }

    /// A mutex whose waiters never starve, for loom models of the
    /// ordinary wait (under loom every waiter otherwise starves after one
    /// lost race, time not passing there).
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn without_starvation_for_loom(value: T) -> Self {
        let mut m = Self::new(value);
        m.raw.never_starve = true;
        m
    }

    /// Consumes the mutex, returning the value.
    ///
    /// ```
    /// assert_eq!(coro_sync::Mutex::new(5).into_inner(), 5);
    /// ```
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Locks the mutex, waiting while another task holds it.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped `lock()` future never holds the lock, and if it had
    /// been woken to take the lock, that wake-up passes to the next waiter.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let m = coro_sync::Mutex::new(1);
    /// *m.lock().await += 1;
    /// assert_eq!(*m.lock().await, 2);
    /// # });
    /// ```
    pub fn lock(&self) -> Lock<'_, T> {
        Lock {
            mutex: self,
            raw: RawLock::default(),
        }
    }

    /// Locks the mutex if it is free, without waiting.
    ///
    /// ```
    /// let m = coro_sync::Mutex::new(1);
    /// let g = m.try_lock().unwrap();
    /// assert!(m.try_lock().is_none());
    /// drop(g);
    /// assert!(m.try_lock().is_some());
    /// ```
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.raw.try_lock().then(|| MutexGuard::new(self))
    }

    /// Locks the mutex behind an `Arc`, returning a guard that owns a clone of
    /// the `Arc` (no lifetime: it can move into `'static` tasks).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`lock`](Mutex::lock).
    ///
    /// ```
    /// use std::sync::Arc;
    /// # futures::executor::block_on(async {
    /// let m = Arc::new(coro_sync::Mutex::new(0));
    /// let mut g = m.lock_arc().await;
    /// *g += 1;
    /// drop(g);
    /// assert_eq!(*m.lock().await, 1);
    /// # });
    /// ```
    pub fn lock_arc(self: &Arc<Self>) -> LockArc<T> {
        LockArc {
            mutex: Some(self.clone()),
            raw: RawLock::default(),
        }
    }

    /// [`try_lock`](Mutex::try_lock) returning an owned guard.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let m = Arc::new(coro_sync::Mutex::new(0));
    /// assert!(m.try_lock_arc().is_some());
    /// ```
    pub fn try_lock_arc(self: &Arc<Self>) -> Option<MutexGuardArc<T>> {
        self.raw.try_lock().then(|| MutexGuardArc {
            mutex: self.clone(),
            _marker: PhantomData,
        })
    }

    /// A mutable reference to the value; no locking needed since `&mut self`
    /// proves exclusive access.
    ///
    /// ```
    /// let mut m = coro_sync::Mutex::new(1);
    /// *m.get_mut() = 2;
    /// assert_eq!(m.into_inner(), 2);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// Returns `true` if the mutex is locked right now (a hint: it may change at once).
    ///
    /// ```
    /// let m = coro_sync::Mutex::new(());
    /// let _g = m.try_lock();
    /// assert!(m.is_locked());
    /// ```
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Some(g) => d.field("data", &&*g),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish()
    }
}

/// Future of [`Mutex::lock`].
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct Lock<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    raw: RawLock,
}

impl<'a, T: ?Sized> Future for Lock<'a, T> {
    type Output = MutexGuard<'a, T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match this.raw.poll_lock(&this.mutex.raw, cx) {
            Poll::Ready(()) => Poll::Ready(MutexGuard::new(this.mutex)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: ?Sized> Drop for Lock<'_, T> {
    fn drop(&mut self) {
        self.raw.cancel(&self.mutex.raw);
    }
}

impl<T: ?Sized> fmt::Debug for Lock<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock").finish_non_exhaustive()
    }
}

/// Future of [`Mutex::lock_arc`].
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct LockArc<T: ?Sized> {
    mutex: Option<Arc<Mutex<T>>>,
    raw: RawLock,
}

impl<T: ?Sized> Future for LockArc<T> {
    type Output = MutexGuardArc<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mutex = this
            .mutex
            .as_ref()
            .expect("`lock_arc()` future polled after completion");
        match this.raw.poll_lock(&mutex.raw, cx) {
            Poll::Ready(()) => {
                let mutex = this.mutex.take().expect("checked above");
                Poll::Ready(MutexGuardArc {
                    mutex,
                    _marker: PhantomData,
                })
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: ?Sized> Drop for LockArc<T> {
    fn drop(&mut self) {
        if let Some(m) = &self.mutex {
            self.raw.cancel(&m.raw);
        }
    }
}

impl<T: ?Sized> fmt::Debug for LockArc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockArc").finish_non_exhaustive()
    }
}

/// Holds a [`Mutex`] locked; unlocks on drop. Derefs to the data.
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuard<'a, T: ?Sized> {
    pub(crate) mutex: &'a Mutex<T>,
    // `Sync` only when `T: Sync`: a shared guard hands out `&T`.
    _marker: PhantomData<T>,
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    pub(crate) fn new(mutex: &'a Mutex<T>) -> Self {
        Self {
            mutex,
            _marker: PhantomData,
        }
    }

    /// The mutex this guard holds (an associated function, so it does not
    /// shadow methods of `T`).
    ///
    /// ```
    /// let m = coro_sync::Mutex::new(1);
    /// let g = m.try_lock().unwrap();
    /// assert!(std::ptr::eq(coro_sync::MutexGuard::source(&g), &m));
    /// ```
    pub fn source(guard: &Self) -> &'a Mutex<T> {
        guard.mutex
    }
}

// The guard never pins `T` (the marker only steers `Send`/`Sync`).
impl<T: ?Sized> Unpin for MutexGuard<'_, T> {}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.raw.unlock();
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the lock exclusively.
        #[allow(unsafe_code)]
        unsafe {
            self.mutex.data.get()
        }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard holds the lock exclusively, and `&mut self` keeps
        // the result unique.
        #[allow(unsafe_code)]
        unsafe {
            self.mutex.data.get_mut_unchecked()
        }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// An owned guard of a [`Mutex`] in an `Arc`, from [`Mutex::lock_arc`].
#[must_use = "if unused the Mutex will immediately unlock"]
pub struct MutexGuardArc<T: ?Sized> {
    mutex: Arc<Mutex<T>>,
    _marker: PhantomData<T>,
}

impl<T: ?Sized> MutexGuardArc<T> {
    /// The mutex this guard holds.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let m = Arc::new(coro_sync::Mutex::new(1));
    /// let g = m.try_lock_arc().unwrap();
    /// assert!(Arc::ptr_eq(coro_sync::MutexGuardArc::source(&g), &m));
    /// ```
    pub fn source(guard: &Self) -> &Arc<Mutex<T>> {
        &guard.mutex
    }
}

impl<T: ?Sized> Unpin for MutexGuardArc<T> {}

impl<T: ?Sized> Drop for MutexGuardArc<T> {
    fn drop(&mut self) {
        self.mutex.raw.unlock();
    }
}

impl<T: ?Sized> Deref for MutexGuardArc<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the lock exclusively.
        #[allow(unsafe_code)]
        unsafe {
            self.mutex.data.get()
        }
    }
}

impl<T: ?Sized> DerefMut for MutexGuardArc<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard holds the lock exclusively; `&mut self` keeps it unique.
        #[allow(unsafe_code)]
        unsafe {
            self.mutex.data.get_mut_unchecked()
        }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuardArc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
