//! [`Event`]: a manual-reset event.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use event_listener::EventListener;

use crate::loom::atomic::{AtomicBool, Ordering};

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
    set: AtomicBool,
    waiters: event_listener::Event,
}

impl Event {
    /// Creates an event, set or not.
    ///
    /// ```
    /// assert!(coro_sync::Event::new(true).is_set());
    /// ```
    pub fn new(set: bool) -> Self {
        Self {
            set: AtomicBool::new(set),
            waiters: event_listener::Event::new(),
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
        if !self.set.swap(true, Ordering::SeqCst) {
            self.waiters.notify(usize::MAX);
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
        self.set.store(false, Ordering::SeqCst);
    }

    /// Returns `true` if the event is set.
    ///
    /// ```
    /// assert!(!coro_sync::Event::new(false).is_set());
    /// ```
    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
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
    listener: Option<EventListener>,
}

impl Future for EventWait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        loop {
            match &mut this.listener {
                None => {
                    if this.event.is_set() {
                        return Poll::Ready(());
                    }
                    this.listener = Some(this.event.waiters.listen());
                    // Re-check: a `set` between the load and `listen` notified nobody.
                    if this.event.is_set() {
                        this.listener = None;
                        return Poll::Ready(());
                    }
                }
                Some(l) => {
                    if Pin::new(l).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    // Notified by a `set`: done even if reset meanwhile.
                    this.listener = None;
                    return Poll::Ready(());
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
