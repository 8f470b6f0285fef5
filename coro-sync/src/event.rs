//! [`Event`]: a manual-reset event.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use crate::waiters::{Waiter, Waiters};

use crate::loom::atomic::{AtomicU64, Ordering};

/// `Event::state`: bit 0 set, the bits above it count the sets (those
/// that found the event not set).
const SET: u64 = 1;
const ONE_SET: u64 = 2;

/// A manual-reset event: tasks wait until it is set; [`set`](Event::set) wakes
/// every waiter at once and the event stays set until [`reset`](Event::reset).
///
/// Waiting on an event that is already set completes without suspending.
/// libcoro: `coro::event`.
///
/// # Examples
///
/// ```
/// use coro_sync::Event;
///
/// # futures::executor::block_on(async {
/// let e = Event::new(false);
/// let waiter = async { e.wait().await; "woken" };
/// let setter = async { e.set(); };
/// let (w, ()) = futures::join!(waiter, setter);
/// assert_eq!(w, "woken");
/// # });
/// ```
pub struct Event {
    /// Whether set, and how many times it was set: a waiter completes on a
    /// set made after it began waiting, not on a wake-up passed on to it
    /// from a dropped waiter of an earlier set.
    state: AtomicU64,
    waiters: Waiters,
}

impl Event {
    /// Creates an event, set or not.
    ///
    /// ```
    /// assert!(coro_sync::Event::new(true).is_set());
    /// ```
    pub fn new(set: bool) -> Self {
        Self {
            state: AtomicU64::new(if set { SET } else { 0 }),
            waiters: Waiters::new(),
        }
    }

    /// Sets the event and wakes every task waiting on it.
    ///
    /// ```
    /// let e = coro_sync::Event::new(false);
    /// e.set();
    /// assert!(e.is_set());
    /// ```
    pub fn set(&self) {
        let mut s = self.state.load(Ordering::SeqCst);
        while s & SET == 0 {
            match self.state.compare_exchange_weak(
                s,
                (s | SET).wrapping_add(ONE_SET),
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => {
                    self.waiters.notify(usize::MAX);
                    return;
                }
                Err(now) => s = now,
            }
        }
    }

    /// Clears the event: later calls to [`wait`](Event::wait) suspend until the next
    /// [`set`](Event::set). Waiters already woken by a `set` are not affected.
    ///
    /// ```
    /// let e = coro_sync::Event::new(true);
    /// e.reset();
    /// assert!(!e.is_set());
    /// ```
    pub fn reset(&self) {
        self.state.fetch_and(!SET, Ordering::SeqCst);
    }

    /// Returns `true` if the event is set.
    ///
    /// ```
    /// assert!(!coro_sync::Event::new(false).is_set());
    /// ```
    pub fn is_set(&self) -> bool {
        self.state.load(Ordering::SeqCst) & SET != 0
    }

    /// Waits until the event is set; returns at once if it already is.
    ///
    /// A waiter resumes if the event was set at some point after it started
    /// waiting, even if it was reset again before the waiter ran.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future only unregisters it; every other waiter is
    /// still woken by `set`.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let e = coro_sync::Event::new(true);
    /// e.wait().await; // already set: does not suspend
    /// # });
    /// ```
    pub fn wait(&self) -> EventWait<'_> {
        EventWait {
            event: self,
            listener: None,
            sets: 0,
        }
    }
}

impl Default for Event {
    /// An event that is not set.
    fn default() -> Self {
        Self::new(false)
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("is_set", &self.is_set())
            .finish()
    }
}

/// Future of [`Event::wait`].
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct EventWait<'a> {
    event: &'a Event,
    listener: Option<Waiter>,
    /// The event's set count when this began to wait.
    sets: u64,
}

impl Future for EventWait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        loop {
            match &mut this.listener {
                None => {
                    let s = this.event.state.load(Ordering::SeqCst);
                    if s & SET != 0 {
                        return Poll::Ready(());
                    }
                    // Sets from here on count for this waiter.
                    this.sets = s >> 1;
                    this.listener = Some(this.event.waiters.listen());
                    // Re-check: a `set` between the load and `listen`
                    // notified nobody (and may have been reset since).
                    let s = this.event.state.load(Ordering::SeqCst);
                    if s & SET != 0 || s >> 1 != this.sets {
                        this.listener = None;
                        return Poll::Ready(());
                    }
                }
                Some(l) => {
                    if Pin::new(l).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.listener = None;
                    // Set since this began to wait: done, even if reset
                    // meanwhile. Otherwise the wake-up was passed on from
                    // a waiter of an earlier set that was dropped unpolled
                    // (the event may have been reset since): wait on.
                    let s = this.event.state.load(Ordering::SeqCst);
                    if s & SET != 0 || s >> 1 != this.sets {
                        return Poll::Ready(());
                    }
                    this.listener = Some(this.event.waiters.listen());
                    let s = this.event.state.load(Ordering::SeqCst);
                    if s & SET != 0 || s >> 1 != this.sets {
                        this.listener = None;
                        return Poll::Ready(());
                    }
                }
            }
        }
    }
}

impl fmt::Debug for EventWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventWait")
            .field("waiting", &self.listener.is_some())
            .finish()
    }
}
