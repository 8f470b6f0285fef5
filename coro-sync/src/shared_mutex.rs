//! [`SharedMutex`]: an async readers-writer lock in which neither readers nor writers starve.

use core::fmt;
use core::future::Future;
use core::ops::{Deref, DerefMut};
use core::pin::Pin;
use core::task::{Context, Poll, ready};

use crate::waiters::{Waiter, Waiters};

use crate::cell::SharedCell;
use crate::loom::atomic::{AtomicUsize, Ordering};
use crate::loom::{StdMutex, lock};
use crate::raw_mutex::{RawLock, RawMutex};
use crate::wait_queue::poll_listen;

const WRITER: usize = 1;
const READER: usize = 2;

/// An async readers-writer lock: many readers at once, or one writer.
///
/// # Fairness
///
/// Writers queue on an internal [`Mutex`](crate::Mutex) (so they share its
/// fairness bound). The writer at the head of that queue announces itself at
/// once: from then on new readers wait, and the writer only waits for the
/// readers already inside. A stream of readers therefore cannot starve a
/// writer. Nor can a stream of writers starve a reader: the readers waiting
/// when a writer leaves are let in with its leaving, all together, before
/// the next writer (who then waits for them like for any reader inside).
/// Readers and writers therefore take turns while both wait.
/// libcoro: `coro::shared_mutex` (`lock_shared` is [`read`](SharedMutex::read),
/// `lock` is [`write`](SharedMutex::write)).
///
/// # Panics while locked
///
/// A read or write guard dropped by a panic unlocks, and there is no
/// poisoning (as with tokio's `RwLock`): later holders see the data as
/// the panicking code left it.
///
/// # Examples
///
/// ```
/// use coro_sync::SharedMutex;
///
/// # futures::executor::block_on(async {
/// let m = SharedMutex::new(1);
/// {
///     let (a, b) = (m.read().await, m.read().await); // two readers at once
///     assert_eq!(*a + *b, 2);
/// }
/// *m.write().await += 1;
/// assert_eq!(*m.read().await, 2);
/// # });
/// ```
#[doc(alias = "RwLock")]
#[doc(alias = "shared_mutex")]
pub struct SharedMutex<T: ?Sized> {
    writers: RawMutex,
    /// Readers inside (`READER` each) and `WRITER` once a writer has announced itself.
    state: AtomicUsize,
    no_writer: Waiters,
    no_readers: Waiters,
    /// `read()` futures counted as waiting for a writer to leave and not
    /// let in yet. Changed only under `admitted`'s lock; read without it
    /// by a leaving writer, which takes that lock only when it is not 0.
    waiting: AtomicUsize,
    /// Readers a leaving writer let in (each already counted in `state`)
    /// whose `read()` futures have not taken their guard yet.
    admitted: StdMutex<usize>,
    data: SharedCell<T>,
}

impl<T> SharedMutex<T> {
    /// Creates an unlocked lock holding `value`.
    ///
    /// ```
    /// let m = coro_sync::SharedMutex::new(0);
    /// # drop(m);
    /// ```
    pub fn new(value: T) -> Self {
        Self {
            writers: RawMutex::new(),
            state: AtomicUsize::new(0),
            no_writer: Waiters::new(),
            no_readers: Waiters::new(),
            waiting: AtomicUsize::new(0),
            admitted: StdMutex::new(0),
            data: SharedCell::new(value),
        }
    }

    /// Consumes the lock, returning the value.
    ///
    /// ```
    /// assert_eq!(coro_sync::SharedMutex::new(3).into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> SharedMutex<T> {
    /// Takes a shared (read) lock if no writer holds the lock or has
    /// announced itself for it (a writer woken but not yet run has not).
    ///
    /// # Panics
    ///
    /// If the number of readers would overflow `usize::MAX / 2`.
    ///
    /// ```
    /// let m = coro_sync::SharedMutex::new(1);
    /// let r = m.try_read().unwrap();
    /// assert!(m.try_write().is_none());
    /// assert!(m.try_read().is_some());
    /// # drop(r);
    /// ```
    pub fn try_read(&self) -> Option<SharedMutexReadGuard<'_, T>> {
        // `then`, not `then_some`: a guard made (and dropped) on failure
        // would release a read lock never taken.
        self.add_reader()
            .then(|| SharedMutexReadGuard { lock: self })
    }

    /// Counts one more reader inside unless a writer holds or announced
    /// the lock.
    fn add_reader(&self) -> bool {
        let mut s = self.state.load(Ordering::SeqCst);
        loop {
            if s & WRITER != 0 {
                return false;
            }
            let new = s.checked_add(READER).expect("too many SharedMutex readers");
            match self
                .state
                .compare_exchange_weak(s, new, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return true,
                Err(x) => s = x,
            }
        }
    }

    /// Takes the exclusive (write) lock if it is free.
    ///
    /// ```
    /// let m = coro_sync::SharedMutex::new(1);
    /// let w = m.try_write().unwrap();
    /// assert!(m.try_read().is_none());
    /// # drop(w);
    /// ```
    pub fn try_write(&self) -> Option<SharedMutexWriteGuard<'_, T>> {
        if !self.writers.try_lock() {
            return None;
        }
        if self
            .state
            .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            Some(SharedMutexWriteGuard { lock: self })
        } else {
            self.writers.unlock();
            None
        }
    }

    /// Waits for a shared (read) lock. libcoro: `lock_shared()`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped `read()` future holds nothing (a read lock it
    /// was let in with is released).
    ///
    /// A pending `read()` future is a place in line, as in tokio's
    /// `RwLock`: let in when a writer leaves, it holds the read lock from
    /// then on, until it is polled (and returns the guard) or dropped. So
    /// poll or drop it promptly; a task that keeps one pending (a
    /// `select!` branch on `&mut read`) and then awaits `write()` itself
    /// waits for its own read lock forever.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let m = coro_sync::SharedMutex::new(5);
    /// assert_eq!(*m.read().await, 5);
    /// # });
    /// ```
    pub fn read(&self) -> Read<'_, T> {
        Read {
            lock: self,
            listener: None,
            counted: false,
        }
    }

    /// Waits for the exclusive (write) lock. libcoro: `lock()`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if dropped while waiting for readers to leave, the writer
    /// withdraws its announcement and wakes the readers it held back; a
    /// hand-off it was given passes to the next writer.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let m = coro_sync::SharedMutex::new(5);
    /// *m.write().await = 6;
    /// assert_eq!(*m.read().await, 6);
    /// # });
    /// ```
    pub fn write(&self) -> Write<'_, T> {
        Write {
            lock: self,
            phase: WritePhase::Queued(RawLock::default()),
        }
    }

    /// A mutable reference to the value; `&mut self` proves exclusive access.
    ///
    /// ```
    /// let mut m = coro_sync::SharedMutex::new(1);
    /// *m.get_mut() += 1;
    /// assert_eq!(m.into_inner(), 2);
    /// ```
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    fn read_unlock(&self) {
        if self.state.fetch_sub(READER, Ordering::SeqCst) == WRITER | READER {
            // The last reader leaves while a writer waits for it.
            self.no_readers.notify(1);
        }
    }

    fn write_unlock(&self) {
        if self.waiting.load(Ordering::SeqCst) == 0 {
            // A reader counting itself after this load finds `WRITER`
            // cleared when it checks (or is woken below and checks again).
            self.state.fetch_and(!WRITER, Ordering::SeqCst);
        } else {
            // Let the waiting readers in with our leaving, in one step: a
            // writer announcing itself next waits for them.
            let mut admitted = lock(&self.admitted);
            let n = self.waiting.swap(0, Ordering::SeqCst);
            let mut s = self.state.load(Ordering::Relaxed);
            loop {
                let new = n
                    .checked_mul(READER)
                    .and_then(|r| (s & !WRITER).checked_add(r))
                    .expect("too many SharedMutex readers");
                match self
                    .state
                    .compare_exchange_weak(s, new, Ordering::SeqCst, Ordering::Relaxed)
                {
                    Ok(_) => break,
                    Err(x) => s = x,
                }
            }
            *admitted += n;
        }
        // Unlocked before the wake-ups, which may panic (a foreign
        // waker): the admitted readers are in `state` already, so a next
        // writer still waits for them.
        // The unlock may wake a waiting writer, whose waker may panic too:
        // the readers are woken all the same, then the panic goes on.
        let unlocked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.writers.unlock();
        }));
        self.no_writer.notify(usize::MAX);
        if let Err(p) = unlocked {
            std::panic::resume_unwind(p);
        }
    }

    /// A counted `read()` future counts itself as waiting.
    fn count_waiting(&self) {
        let _admitted = lock(&self.admitted);
        self.waiting.fetch_add(1, Ordering::SeqCst);
    }

    /// A counted `read()` future takes the read lock: one a leaving writer
    /// let it in with, or a free one. (The count is of futures, not of
    /// particular ones: any counted future may take any admission.)
    fn take_counted(&self) -> bool {
        let mut admitted = lock(&self.admitted);
        if *admitted > 0 {
            *admitted -= 1;
            return true;
        }
        if !self.add_reader() {
            return false;
        }
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        true
    }

    /// A counted `read()` future goes away without its guard.
    fn uncount(&self) {
        let mut admitted = lock(&self.admitted);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        } else {
            // Every counted future was let in: give one admission back.
            *admitted -= 1;
            drop(admitted);
            self.read_unlock();
        }
    }
}

impl<T: Default> Default for SharedMutex<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for SharedMutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SharedMutex");
        match self.try_read() {
            Some(g) => d.field("data", &&*g),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish()
    }
}

/// Future of [`SharedMutex::read`].
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct Read<'a, T: ?Sized> {
    lock: &'a SharedMutex<T>,
    listener: Option<Waiter>,
    /// Counted in `waiting` (or admitted): a leaving writer lets it in.
    counted: bool,
}

impl<'a, T: ?Sized> Future for Read<'a, T> {
    type Output = SharedMutexReadGuard<'a, T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Counted against the task's budget (`coro_core::coop`), as
        // `write()`'s queueing and `Mutex::lock`.
        let this = &mut *self;
        coro_core::coop::poll_counted(cx, |cx| {
            loop {
                let lock = this.lock;
                if this.counted {
                    if lock.take_counted() {
                        this.counted = false;
                        this.listener = None;
                        return Poll::Ready(SharedMutexReadGuard { lock });
                    }
                } else if let Some(g) = lock.try_read() {
                    this.listener = None;
                    return Poll::Ready(g);
                } else if this.listener.is_some() {
                    // Listening, and a writer is still there: count
                    // ourselves for its leaving (then check again).
                    lock.count_waiting();
                    this.counted = true;
                    continue;
                }
                ready!(poll_listen(&lock.no_writer, &mut this.listener, cx));
            }
        })
    }
}

impl<T: ?Sized> Drop for Read<'_, T> {
    fn drop(&mut self) {
        if self.counted {
            self.lock.uncount();
        }
    }
}

impl<T: ?Sized> fmt::Debug for Read<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Read").finish_non_exhaustive()
    }
}

enum WritePhase {
    /// Queued behind other writers.
    Queued(RawLock),
    /// Head writer, announced: waiting for the readers inside to leave.
    Draining(Option<Waiter>),
    Done,
}

/// Future of [`SharedMutex::write`].
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct Write<'a, T: ?Sized> {
    lock: &'a SharedMutex<T>,
    phase: WritePhase,
}

impl<'a, T: ?Sized> Future for Write<'a, T> {
    type Output = SharedMutexWriteGuard<'a, T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let lock = this.lock;
        loop {
            match &mut this.phase {
                WritePhase::Queued(raw) => {
                    if raw.poll_lock(&lock.writers, cx).is_pending() {
                        return Poll::Pending;
                    }
                    lock.state.fetch_or(WRITER, Ordering::SeqCst);
                    this.phase = WritePhase::Draining(None);
                }
                WritePhase::Draining(listener) => {
                    if lock.state.load(Ordering::SeqCst) == WRITER {
                        this.phase = WritePhase::Done;
                        return Poll::Ready(SharedMutexWriteGuard { lock });
                    }
                    ready!(poll_listen(&lock.no_readers, listener, cx));
                }
                WritePhase::Done => panic!("`write()` future polled after completion"),
            }
        }
    }
}

impl<T: ?Sized> Drop for Write<'_, T> {
    fn drop(&mut self) {
        match &mut self.phase {
            WritePhase::Queued(raw) => raw.cancel(&self.lock.writers),
            WritePhase::Draining(_) => self.lock.write_unlock(),
            WritePhase::Done => {}
        }
    }
}

impl<T: ?Sized> fmt::Debug for Write<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Write").finish_non_exhaustive()
    }
}

/// A shared (read) lock on a [`SharedMutex`]; released on drop.
#[must_use = "if unused the SharedMutex will immediately unlock"]
pub struct SharedMutexReadGuard<'a, T: ?Sized> {
    lock: &'a SharedMutex<T>,
}

impl<T: ?Sized> Drop for SharedMutexReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.read_unlock();
    }
}

impl<T: ?Sized> Deref for SharedMutexReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a read lock is held: no writer exists meanwhile.
        #[allow(unsafe_code)]
        unsafe {
            self.lock.data.get()
        }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for SharedMutexReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// The exclusive (write) lock on a [`SharedMutex`]; released on drop.
#[must_use = "if unused the SharedMutex will immediately unlock"]
pub struct SharedMutexWriteGuard<'a, T: ?Sized> {
    lock: &'a SharedMutex<T>,
}

impl<T: ?Sized> Drop for SharedMutexWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.write_unlock();
    }
}

impl<T: ?Sized> Deref for SharedMutexWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the write lock is held exclusively.
        #[allow(unsafe_code)]
        unsafe {
            self.lock.data.get()
        }
    }
}

impl<T: ?Sized> DerefMut for SharedMutexWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the write lock is held exclusively; `&mut self` keeps it unique.
        #[allow(unsafe_code)]
        unsafe {
            self.lock.data.get_mut_unchecked()
        }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for SharedMutexWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
