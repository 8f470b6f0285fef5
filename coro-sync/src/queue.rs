//! [`Queue`]: an unbounded MPMC queue; [`Queue::stream`] reads it as a `Stream`.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};

use concurrent_queue::ConcurrentQueue;
use futures_core::Stream;

use crate::error::{Closed, TryPopError};
use crate::wait_queue::{Listener, WaitQueue, poll_listen};

/// An unbounded multi-producer multi-consumer queue: [`push`](Queue::push)
/// never waits, [`pop`](Queue::pop) waits while the queue is empty.
///
/// After [`close`](Queue::close), pushes fail (handing the value back) and
/// pops drain what is left, then fail; [`stream`](Queue::stream) ends at that
/// point. libcoro: `coro::queue`.
///
/// # Fairness
///
/// Items come out in order, but consumers are not served in order: a
/// woken `pop` competes with newcomers (`try_pop`, a `pop` that finds an
/// item), and one that loses waits again at the back, without a bound.
/// Every item is still taken by someone.
///
/// # Examples
///
/// ```
/// use coro_sync::Queue;
/// use futures::StreamExt;
///
/// # futures::executor::block_on(async {
/// let q = Queue::new();
/// q.push(1).unwrap();
/// q.push(2).unwrap();
/// q.close();
/// let all: Vec<i32> = q.stream().collect().await;
/// assert_eq!(all, [1, 2]);
/// # });
/// ```
pub struct Queue<T> {
    queue: ConcurrentQueue<T>,
    pop_ops: WaitQueue,
    /// Streams waiting for an item. Kept apart and all woken on each push:
    /// a stream keeps its place in the line between polls (it has no
    /// future to drop), so one not polled again (its `next()` lost a
    /// `select!`) would take a push's one wake-up from a waiting `pop`.
    stream_ops: WaitQueue,
}

impl<T> Queue<T> {
    /// Creates an empty queue.
    ///
    /// ```
    /// let q = coro_sync::Queue::<u8>::new();
    /// assert!(q.is_empty());
    /// ```
    pub fn new() -> Self {
        Self {
            queue: ConcurrentQueue::unbounded(),
            pop_ops: WaitQueue::new(),
            stream_ops: WaitQueue::new(),
        }
    }

    /// Appends `value` and wakes one waiting consumer.
    ///
    /// # Errors
    ///
    /// [`Closed`] with the value once the queue is closed.
    ///
    /// ```
    /// let q = coro_sync::Queue::new();
    /// q.push(1).unwrap();
    /// assert_eq!(q.len(), 1);
    /// ```
    pub fn push(&self, value: T) -> Result<(), Closed<T>> {
        match self.queue.push(value) {
            Ok(()) => {
                crate::then_anyway(
                    || self.pop_ops.notify_additional(1),
                    || self.stream_ops.notify_additional(usize::MAX),
                );
                Ok(())
            }
            Err(e) => Err(Closed(e.into_inner())),
        }
    }

    /// Pops the oldest item if there is one, without waiting.
    ///
    /// # Errors
    ///
    /// [`TryPopError::Empty`], or [`TryPopError::Closed`] once closed and drained.
    ///
    /// ```
    /// let q = coro_sync::Queue::new();
    /// q.push(1).unwrap();
    /// assert_eq!(q.try_pop(), Ok(1));
    /// ```
    pub fn try_pop(&self) -> Result<T, TryPopError> {
        match self.queue.pop() {
            Ok(v) => Ok(v),
            Err(concurrent_queue::PopError::Empty) => Err(TryPopError::Empty),
            Err(concurrent_queue::PopError::Closed) => Err(TryPopError::Closed),
        }
    }

    /// Pops the oldest item, waiting while the queue is empty.
    ///
    /// # Errors
    ///
    /// [`Closed`] once the queue is closed and drained.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: an item is only taken by the poll that returns it, and a
    /// wake-up the dropped future received passes to the next consumer.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let q = coro_sync::Queue::new();
    /// q.push("a").unwrap();
    /// assert_eq!(q.pop().await, Ok("a"));
    /// # });
    /// ```
    pub fn pop(&self) -> QueuePop<'_, T> {
        QueuePop {
            queue: self,
            listener: None,
        }
    }

    /// A [`Stream`] of the items, ending once the queue is closed and drained.
    ///
    /// ```
    /// use futures::StreamExt;
    /// # futures::executor::block_on(async {
    /// let q = coro_sync::Queue::new();
    /// q.push(5).unwrap();
    /// q.close();
    /// let mut s = q.stream();
    /// assert_eq!(s.next().await, Some(5));
    /// assert_eq!(s.next().await, None);
    /// # });
    /// ```
    pub fn stream(&self) -> QueueStream<'_, T> {
        QueueStream {
            queue: self,
            listener: None,
        }
    }

    /// Closes the queue and wakes every consumer. Returns `true` if this call
    /// closed it. libcoro: `shutdown_notify_waiters`.
    ///
    /// ```
    /// let q = coro_sync::Queue::<u8>::new();
    /// assert!(q.close());
    /// assert!(q.push(1).is_err());
    /// ```
    #[doc(alias = "shutdown")]
    pub fn close(&self) -> bool {
        let closed = self.queue.close();
        if closed {
            crate::then_anyway(
                || self.pop_ops.notify_all(),
                || self.stream_ops.notify_all(),
            );
        }
        closed
    }

    /// Returns `true` once closed.
    ///
    /// ```
    /// assert!(!coro_sync::Queue::<u8>::new().is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// Items in the queue now.
    ///
    /// ```
    /// assert_eq!(coro_sync::Queue::<u8>::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Returns `true` if the queue holds no item now.
    ///
    /// ```
    /// assert!(coro_sync::Queue::<u8>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    fn poll_pop<'a>(
        &'a self,
        ops: &'a WaitQueue,
        listener: &mut Option<Listener<'a>>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<T, Closed>> {
        // A pop that always finds an item never waits: it counts against
        // the task's budget (`coro_core::coop`; none outside coro's
        // executors), so such a loop still lets its thread's other tasks
        // run. Nothing is taken when it yields.
        coro_core::coop::poll_counted(cx, |cx| self.poll_pop_budgeted(ops, listener, cx))
    }

    fn poll_pop_budgeted<'a>(
        &'a self,
        ops: &'a WaitQueue,
        listener: &mut Option<Listener<'a>>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<T, Closed>> {
        loop {
            match self.try_pop() {
                Ok(v) => {
                    *listener = None;
                    return Poll::Ready(Ok(v));
                }
                Err(TryPopError::Closed) => {
                    *listener = None;
                    return Poll::Ready(Err(Closed(())));
                }
                Err(TryPopError::Empty) => {}
            }
            ready!(poll_listen(ops, listener, cx));
        }
    }
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Future of [`Queue::pop`].
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct QueuePop<'a, T> {
    queue: &'a Queue<T>,
    listener: Option<Listener<'a>>,
}

impl<T> Future for QueuePop<'_, T> {
    type Output = Result<T, Closed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.queue
            .poll_pop(&this.queue.pop_ops, &mut this.listener, cx)
    }
}

impl<T> fmt::Debug for QueuePop<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueuePop").finish_non_exhaustive()
    }
}

/// The [`Stream`] of [`Queue::stream`].
///
/// # Cancel safety
///
/// Cancel safe, as [`Queue::pop`]: dropping a pending `next()` loses no item,
/// and a stream not polled again takes no other consumer's wake-up (every
/// waiting stream is woken by each push; `pop` waiters one per push).
#[must_use = "streams do nothing unless polled"]
pub struct QueueStream<'a, T> {
    queue: &'a Queue<T>,
    listener: Option<Listener<'a>>,
}

impl<T> Stream for QueueStream<'_, T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = &mut *self;
        let queue = this.queue;
        queue
            .poll_pop(&queue.stream_ops, &mut this.listener, cx)
            .map(Result::ok)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.queue.len(), None)
    }
}

impl<T> fmt::Debug for QueueStream<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueStream").finish_non_exhaustive()
    }
}
