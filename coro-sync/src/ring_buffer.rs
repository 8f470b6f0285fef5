//! [`RingBuffer`]: a bounded MPMC buffer of fixed capacity.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};

use concurrent_queue::ConcurrentQueue;

use crate::error::{Closed, PushError, TryPopError};
use crate::wait_queue::{Listener, WaitQueue, poll_listen};

/// A bounded multi-producer multi-consumer buffer holding at most `N` items,
/// allocated once at construction.
///
/// [`push`](RingBuffer::push) waits while the buffer is full, [`pop`](RingBuffer::pop)
/// while it is empty. After [`close`](RingBuffer::close), pushes fail and hand
/// the value back, pops drain what is left and then fail. Items come out in
/// the order they went in (FIFO); waiters are woken in FIFO order. libcoro:
/// `coro::ring_buffer` (`produce` is `push`, `consume` is `pop`, `shutdown` is `close`).
///
/// # Fairness
///
/// Not first-come-first-served, and unbounded: a woken waiter competes
/// with newcomers (a `try_push`, a `push` that finds room), and one that
/// loses waits again at the back of the line. Under steady contention
/// from new producers one waiting producer can wait for as long as it
/// lasts (likewise consumers). Where that matters, [`mpsc::channel`]
/// bounds a sender's wait: after about 1 ms of it, newcomers queue
/// behind it.
///
/// [`mpsc::channel`]: crate::mpsc::channel
///
/// # Examples
///
/// ```
/// use coro_sync::RingBuffer;
///
/// # futures::executor::block_on(async {
/// let rb = RingBuffer::<u32, 2>::new();
/// rb.push(1).await.unwrap();
/// rb.push(2).await.unwrap();
/// rb.close();
/// assert_eq!(rb.pop().await, Ok(1));
/// assert_eq!(rb.pop().await, Ok(2));
/// assert!(rb.pop().await.is_err());
/// # });
/// ```
pub struct RingBuffer<T, const N: usize> {
    queue: ConcurrentQueue<T>,
    push_ops: WaitQueue,
    pop_ops: WaitQueue,
}

impl<T, const N: usize> RingBuffer<T, N> {
    /// Creates an empty buffer with room for `N` items.
    ///
    /// # Panics
    ///
    /// If `N == 0`.
    ///
    /// ```
    /// assert_eq!(coro_sync::RingBuffer::<u8, 16>::new().capacity(), 16);
    /// ```
    pub fn new() -> Self {
        assert!(N > 0, "a RingBuffer needs a capacity of at least 1");
        Self {
            queue: ConcurrentQueue::bounded(N),
            push_ops: WaitQueue::new(),
            pop_ops: WaitQueue::new(),
        }
    }

    /// Pushes `value` if there is room, without waiting.
    ///
    /// # Errors
    ///
    /// [`PushError::Full`] or [`PushError::Closed`], with the value.
    ///
    /// ```
    /// let rb = coro_sync::RingBuffer::<u8, 1>::new();
    /// assert!(rb.try_push(1).is_ok());
    /// assert!(rb.try_push(2).is_err());
    /// ```
    pub fn try_push(&self, value: T) -> Result<(), PushError<T>> {
        match self.queue.push(value) {
            Ok(()) => {
                self.pop_ops.notify_additional(1);
                Ok(())
            }
            Err(concurrent_queue::PushError::Full(v)) => Err(PushError::Full(v)),
            Err(concurrent_queue::PushError::Closed(v)) => Err(PushError::Closed(v)),
        }
    }

    /// Pushes `value`, waiting while the buffer is full.
    ///
    /// # Errors
    ///
    /// [`Closed`] with the value if the buffer is or gets closed first.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped before completing, `value` was not pushed and
    /// is dropped with it; no slot is lost, and a wake-up it received passes
    /// to the next waiting producer.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let rb = coro_sync::RingBuffer::<u8, 1>::new();
    /// rb.push(1).await.unwrap();
    /// assert_eq!(rb.len(), 1);
    /// # });
    /// ```
    pub fn push(&self, value: T) -> Push<'_, T, N> {
        Push {
            rb: self,
            value: Some(value),
            listener: None,
        }
    }

    /// Pops the oldest item if there is one, without waiting.
    ///
    /// # Errors
    ///
    /// [`TryPopError::Empty`], or [`TryPopError::Closed`] once closed and drained.
    ///
    /// ```
    /// let rb = coro_sync::RingBuffer::<u8, 1>::new();
    /// rb.try_push(1).unwrap();
    /// assert_eq!(rb.try_pop(), Ok(1));
    /// assert!(rb.try_pop().is_err());
    /// ```
    pub fn try_pop(&self) -> Result<T, TryPopError> {
        match self.queue.pop() {
            Ok(v) => {
                self.push_ops.notify_additional(1);
                Ok(v)
            }
            Err(concurrent_queue::PopError::Empty) => Err(TryPopError::Empty),
            Err(concurrent_queue::PopError::Closed) => Err(TryPopError::Closed),
        }
    }

    /// Pops the oldest item, waiting while the buffer is empty.
    ///
    /// # Errors
    ///
    /// [`Closed`] once the buffer is closed and drained.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: an item is only taken by the poll that returns it, so a
    /// dropped `pop()` loses none; a wake-up it received passes to the next
    /// waiting consumer.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let rb = coro_sync::RingBuffer::<u8, 1>::new();
    /// rb.push(7).await.unwrap();
    /// assert_eq!(rb.pop().await, Ok(7));
    /// # });
    /// ```
    pub fn pop(&self) -> Pop<'_, T, N> {
        Pop {
            rb: self,
            listener: None,
        }
    }

    /// Closes the buffer and wakes every waiter: pushes fail from now on, pops
    /// drain the items left. Returns `true` if this call closed it.
    ///
    /// ```
    /// let rb = coro_sync::RingBuffer::<u8, 1>::new();
    /// assert!(rb.close());
    /// assert!(!rb.close());
    /// ```
    pub fn close(&self) -> bool {
        let closed = self.queue.close();
        if closed {
            crate::then_anyway(|| self.push_ops.notify_all(), || self.pop_ops.notify_all());
        }
        closed
    }

    /// Returns `true` once closed.
    ///
    /// ```
    /// assert!(!coro_sync::RingBuffer::<u8, 1>::new().is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// Items in the buffer now.
    ///
    /// ```
    /// assert_eq!(coro_sync::RingBuffer::<u8, 1>::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Returns `true` if the buffer holds no item now.
    ///
    /// ```
    /// assert!(coro_sync::RingBuffer::<u8, 1>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Returns `true` if the buffer holds `N` items now.
    ///
    /// ```
    /// let rb = coro_sync::RingBuffer::<u8, 1>::new();
    /// rb.try_push(0).unwrap();
    /// assert!(rb.is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        self.queue.is_full()
    }

    /// The capacity, `N`.
    ///
    /// ```
    /// assert_eq!(coro_sync::RingBuffer::<u8, 4>::new().capacity(), 4);
    /// ```
    pub fn capacity(&self) -> usize {
        N
    }
}

impl<T, const N: usize> Default for RingBuffer<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> fmt::Debug for RingBuffer<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingBuffer")
            .field("len", &self.len())
            .field("capacity", &N)
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Future of [`RingBuffer::push`].
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct Push<'a, T, const N: usize> {
    rb: &'a RingBuffer<T, N>,
    value: Option<T>,
    listener: Option<Listener<'a>>,
}

// The value is moved, never pinned.
impl<T, const N: usize> Unpin for Push<'_, T, N> {}

impl<T, const N: usize> Future for Push<'_, T, N> {
    type Output = Result<(), Closed<T>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // A push that always finds room never waits: counted against the
        // task's budget (`coro_core::coop`), the value stays here when it
        // yields.
        let this = &mut *self;
        coro_core::coop::poll_counted(cx, |cx| {
            loop {
                let value = this
                    .value
                    .take()
                    .expect("`push()` future polled after completion");
                let done = match this.rb.try_push(value) {
                    Ok(()) => Ok(()),
                    Err(PushError::Closed(v)) => Err(Closed(v)),
                    Err(PushError::Full(v)) => {
                        this.value = Some(v);
                        ready!(poll_listen(&this.rb.push_ops, &mut this.listener, cx));
                        continue;
                    }
                };
                // Done: out of the line of waiters, or a later wake-up
                // meant for a waiting producer would come here (a wake-up
                // this one was given and did not use passes on).
                this.listener = None;
                return Poll::Ready(done);
            }
        })
    }
}

impl<T, const N: usize> fmt::Debug for Push<'_, T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Push").finish_non_exhaustive()
    }
}

/// Future of [`RingBuffer::pop`].
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct Pop<'a, T, const N: usize> {
    rb: &'a RingBuffer<T, N>,
    listener: Option<Listener<'a>>,
}

impl<T, const N: usize> Future for Pop<'_, T, N> {
    type Output = Result<T, Closed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Counted against the task's budget, as `Queue::pop` (nothing is
        // taken when it yields).
        let this = &mut *self;
        coro_core::coop::poll_counted(cx, |cx| {
            loop {
                let done = match this.rb.try_pop() {
                    Ok(v) => Ok(v),
                    Err(TryPopError::Closed) => Err(Closed(())),
                    Err(TryPopError::Empty) => {
                        ready!(poll_listen(&this.rb.pop_ops, &mut this.listener, cx));
                        continue;
                    }
                };
                // Done: out of the line (see `Push`).
                this.listener = None;
                return Poll::Ready(done);
            }
        })
    }
}

impl<T, const N: usize> fmt::Debug for Pop<'_, T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pop").finish_non_exhaustive()
    }
}
