//! [`Barrier`]: `n` tasks meet, then all continue.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};

use crate::waiters::{Waiter, Waiters};

use crate::loom::atomic::{AtomicUsize, Ordering};
use crate::loom::{StdMutex, lock};
use crate::wait_queue::poll_listen;

/// A reusable barrier: each [`wait`](Barrier::wait) suspends until `n` tasks
/// are waiting, then all of them resume and exactly one is told it is the
/// leader. The barrier then starts over for the next `n`.
///
/// # Examples
///
/// ```
/// use coro_sync::Barrier;
///
/// # futures::executor::block_on(async {
/// let b = Barrier::new(3);
/// let (x, y, z) = futures::join!(b.wait(), b.wait(), b.wait());
/// let leaders = [x, y, z].iter().filter(|r| r.is_leader()).count();
/// assert_eq!(leaders, 1);
/// # });
/// ```
pub struct Barrier {
    n: usize,
    /// Tasks waiting in the current generation.
    count: StdMutex<usize>,
    /// Bumped (under `count`'s lock) each time the barrier trips.
    generation: AtomicUsize,
    event: Waiters,
}

impl Barrier {
    /// Creates a barrier for `n` tasks (`0` behaves like `1`).
    ///
    /// ```
    /// let b = coro_sync::Barrier::new(2);
    /// # drop(b);
    /// ```
    pub fn new(n: usize) -> Self {
        Self {
            n: n.max(1),
            count: StdMutex::new(0),
            generation: AtomicUsize::new(0),
            event: Waiters::new(),
        }
    }

    /// Waits until `n` tasks wait; one of them gets
    /// [`is_leader`](BarrierWaitResult::is_leader) `true`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped waiter that has not been released yet withdraws
    /// its arrival, so the barrier still waits for `n` live tasks.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let b = coro_sync::Barrier::new(1);
    /// assert!(b.wait().await.is_leader());
    /// # });
    /// ```
    pub fn wait(&self) -> BarrierWait<'_> {
        BarrierWait {
            barrier: self,
            generation: None,
            listener: None,
            done: false,
        }
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

/// What [`Barrier::wait`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult {
    leader: bool,
}

impl BarrierWaitResult {
    /// `true` for exactly one task of each generation: the last to arrive.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// assert!(coro_sync::Barrier::new(1).wait().await.is_leader());
    /// # });
    /// ```
    pub fn is_leader(&self) -> bool {
        self.leader
    }
}

/// Future of [`Barrier::wait`].
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct BarrierWait<'a> {
    barrier: &'a Barrier,
    /// The generation we arrived in, once arrived.
    generation: Option<usize>,
    listener: Option<Waiter>,
    /// Returned `Ready`: polled again, it must not arrive a second time.
    done: bool,
}

impl Future for BarrierWait<'_> {
    type Output = BarrierWaitResult;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<BarrierWaitResult> {
        let this = &mut *self;
        let b = this.barrier;
        assert!(!this.done, "`wait()` future polled after completion");
        let generation = match this.generation {
            Some(g) => g,
            None => {
                let mut count = lock(&b.count);
                *count += 1;
                let g = b.generation.load(Ordering::Acquire);
                if *count == b.n {
                    *count = 0;
                    b.generation.store(g.wrapping_add(1), Ordering::Release);
                    drop(count);
                    // Done before the wake-ups: a waker that panics leaves
                    // this future arrived, not ready to arrive again.
                    this.done = true;
                    b.event.notify(usize::MAX);
                    return Poll::Ready(BarrierWaitResult { leader: true });
                }
                this.listener = Some(b.event.listen());
                this.generation = Some(g);
                g
            }
        };
        loop {
            if b.generation.load(Ordering::Acquire) != generation {
                this.generation = None;
                this.listener = None;
                this.done = true;
                return Poll::Ready(BarrierWaitResult { leader: false });
            }
            ready!(poll_listen(&b.event, &mut this.listener, cx));
        }
    }
}

impl Drop for BarrierWait<'_> {
    fn drop(&mut self) {
        if let Some(g) = self.generation {
            let mut count = lock(&self.barrier.count);
            if self.barrier.generation.load(Ordering::Acquire) == g {
                *count -= 1;
            }
        }
    }
}

impl fmt::Debug for BarrierWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BarrierWait").finish_non_exhaustive()
    }
}
