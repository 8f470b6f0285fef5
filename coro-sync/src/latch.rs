//! [`Latch`]: a single-use countdown.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};

use crate::waiters::{Waiter, Waiters};

use crate::loom::atomic::{AtomicUsize, Ordering};
use crate::wait_queue::poll_listen;

/// A countdown that releases its waiters when it reaches zero.
///
/// [`count_down`](Latch::count_down) saturates at zero (counting down past zero
/// neither panics nor wraps); once at zero the latch stays ready. libcoro:
/// `coro::latch`.
///
/// # Examples
///
/// ```
/// use coro_sync::Latch;
///
/// # futures::executor::block_on(async {
/// let latch = Latch::new(2);
/// let waiter = async { latch.wait().await; latch.remaining() };
/// let workers = async { latch.count_down(1); latch.count_down(1); };
/// let (left, ()) = futures::join!(waiter, workers);
/// assert_eq!(left, 0);
/// # });
/// ```
pub struct Latch {
    count: AtomicUsize,
    waiters: Waiters,
}

impl Latch {
    /// Creates a latch that needs `n` count-downs; `Latch::new(0)` is ready at once.
    ///
    /// ```
    /// assert!(coro_sync::Latch::new(0).is_ready());
    /// ```
    pub fn new(n: usize) -> Self {
        Self {
            count: AtomicUsize::new(n),
            waiters: Waiters::new(),
        }
    }

    /// Counts down by `k`, saturating at zero; the call that reaches zero wakes
    /// every waiter.
    ///
    /// ```
    /// let l = coro_sync::Latch::new(1);
    /// l.count_down(5); // saturates, no panic
    /// assert_eq!(l.remaining(), 0);
    /// ```
    pub fn count_down(&self, k: usize) {
        if k == 0 {
            return;
        }
        let prev = self
            .count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                if c == 0 {
                    None
                } else {
                    Some(c.saturating_sub(k))
                }
            });
        if let Ok(prev) = prev {
            if prev <= k {
                self.waiters.notify(usize::MAX);
            }
        }
    }

    /// Count-downs still needed.
    ///
    /// ```
    /// assert_eq!(coro_sync::Latch::new(3).remaining(), 3);
    /// ```
    pub fn remaining(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Returns `true` once the count reached zero.
    ///
    /// ```
    /// let l = coro_sync::Latch::new(1);
    /// l.count_down(1);
    /// assert!(l.is_ready());
    /// ```
    pub fn is_ready(&self) -> bool {
        self.remaining() == 0
    }

    /// Waits until the count reaches zero; returns at once if it already has.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future only unregisters this waiter.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let l = coro_sync::Latch::new(0);
    /// l.wait().await;
    /// # });
    /// ```
    pub fn wait(&self) -> LatchWait<'_> {
        LatchWait {
            latch: self,
            listener: None,
        }
    }
}

impl fmt::Debug for Latch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Latch")
            .field("remaining", &self.remaining())
            .finish()
    }
}

/// Future of [`Latch::wait`].
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct LatchWait<'a> {
    latch: &'a Latch,
    listener: Option<Waiter>,
}

impl Future for LatchWait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        loop {
            if this.latch.is_ready() {
                this.listener = None;
                return Poll::Ready(());
            }
            ready!(poll_listen(&this.latch.waiters, &mut this.listener, cx));
        }
    }
}

impl fmt::Debug for LatchWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatchWait").finish_non_exhaustive()
    }
}
