//! `Generator<T>` (an `Iterator`) and `AsyncGenerator<T>` (a `Stream`), both
//! written as an `async` body that hands values out through a [`Yielder`].

use std::fmt;
use std::future::Future;
use std::iter::FusedIterator;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;

type Body = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The one-value mailbox between a body and its consumer.
struct Slot<T>(Mutex<Option<T>>);

impl<T> Slot<T> {
    fn lock(&self) -> MutexGuard<'_, Option<T>> {
        // No user code runs while the lock is held.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The handle a generator body uses to hand out values; see [`Generator`].
pub struct Yielder<T> {
    slot: Arc<Slot<T>>,
}

impl<T> Yielder<T> {
    /// Hands `value` to the consumer and suspends the body until the next
    /// value is asked for.
    ///
    /// # Examples
    /// ```
    /// use coro_core::{Generator, Yielder};
    ///
    /// let g = Generator::new(|y: Yielder<&str>| async move {
    ///     y.yield_("a").await;
    ///     y.yield_("b").await;
    /// });
    /// assert_eq!(g.collect::<Vec<_>>(), ["a", "b"]);
    /// ```
    ///
    /// # Panics
    /// The returned future panics if another `yield_` of the same generator
    /// is pending at the same time (for example two yields joined together).
    ///
    /// # Cancel safety
    /// Dropping the future before its first poll drops `value` unseen.
    pub fn yield_(&self, value: T) -> Yield<'_, T> {
        Yield {
            slot: &self.slot,
            value: Some(value),
        }
    }
}

impl<T> fmt::Debug for Yielder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Yielder").finish_non_exhaustive()
    }
}

/// The future returned by [`Yielder::yield_`].
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct Yield<'a, T> {
    slot: &'a Slot<T>,
    value: Option<T>,
}

// The value is moved, never pinned.
impl<T> Unpin for Yield<'_, T> {}

impl<T> Future for Yield<'_, T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        match this.value.take() {
            Some(value) => {
                let mut slot = this.slot.lock();
                assert!(
                    slot.is_none(),
                    "two `Yielder::yield_` futures of one generator were pending at once; \
                     await each `yield_` before starting the next"
                );
                *slot = Some(value);
                // The consumer takes the value and polls the body again when
                // it wants the next one: no waker needed.
                Poll::Pending
            }
            None => Poll::Ready(()),
        }
    }
}

impl<T> fmt::Debug for Yield<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Yield")
            .field("yielded", &self.value.is_none())
            .finish()
    }
}

/// A synchronous generator: an `async` body that yields values, consumed as an
/// [`Iterator`] (libcoro's `coro::generator<T>`).
///
/// The body runs lazily, one step per [`next`](Iterator::next), on the thread
/// calling `next`. It may only await [`Yielder::yield_`]: there is no executor
/// to wait with. Awaiting anything else that is pending panics with a message
/// naming the misuse; use [`AsyncGenerator`] for bodies that await I/O or timers.
///
/// # Examples
/// ```
/// use coro_core::{Generator, Yielder};
///
/// let naturals = Generator::new(|y: Yielder<u64>| async move {
///     let mut i = 0;
///     loop {
///         y.yield_(i).await;
///         i += 1;
///     }
/// });
/// let firsts: Vec<u64> = naturals.take(5).collect();
/// assert_eq!(firsts, [0, 1, 2, 3, 4]);
/// ```
///
/// # Panics
/// [`next`](Iterator::next) panics if the body awaits a pending future other
/// than `yield_`, and propagates a panic of the body; the generator is then
/// finished.
pub struct Generator<T> {
    body: Option<Body>,
    slot: Arc<Slot<T>>,
}

impl<T: Send + 'static> Generator<T> {
    /// Makes a generator from `body`, which receives the [`Yielder`]. Nothing
    /// runs until the first `next()`.
    ///
    /// # Examples
    /// ```
    /// let g = coro_core::Generator::new(|y| async move {
    ///     for c in ['x', 'y'] {
    ///         y.yield_(c).await;
    ///     }
    /// });
    /// assert_eq!(g.collect::<String>(), "xy");
    /// ```
    pub fn new<B, Fut>(body: B) -> Self
    where
        B: FnOnce(Yielder<T>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let slot = Arc::new(Slot(Mutex::new(None)));
        let body = body(Yielder { slot: slot.clone() });
        Generator {
            body: Some(Box::pin(body)),
            slot,
        }
    }
}

impl<T> Iterator for Generator<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        // Taken out while it runs: a panicking body leaves the generator finished.
        let mut body = self.body.take()?;
        match body.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(()) => None,
            Poll::Pending => match self.slot.lock().take() {
                Some(value) => {
                    self.body = Some(body);
                    Some(value)
                }
                None => panic!(
                    "coro::Generator body awaited a future other than `Yielder::yield_` and it \
                     was pending; a Generator is driven by Iterator::next and cannot wait. \
                     Use AsyncGenerator (a Stream) to await other futures"
                ),
            },
        }
    }
}

impl<T> FusedIterator for Generator<T> {}

impl<T> fmt::Debug for Generator<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generator")
            .field("finished", &self.body.is_none())
            .finish()
    }
}

/// An asynchronous generator: an `async` body that yields values, consumed as
/// a [`Stream`](futures_core::Stream).
///
/// Unlike [`Generator`], the body may await any future; the stream is then
/// pending and the body resumes when that future wakes the consumer's task.
///
/// # Examples
/// ```
/// use coro_core::{sync_wait, yield_now, AsyncGenerator, Yielder};
/// use futures_core::Stream;
/// use std::pin::Pin;
/// use std::task::{Context, Poll};
///
/// let mut g = AsyncGenerator::new(|y: Yielder<u32>| async move {
///     for i in 0..3 {
///         yield_now().await; // any future may be awaited here
///         y.yield_(i * 10).await;
///     }
/// });
/// let items = sync_wait(std::future::poll_fn(|cx: &mut Context<'_>| {
///     let mut items = Vec::new();
///     loop {
///         match Pin::new(&mut g).poll_next(cx) {
///             Poll::Ready(Some(v)) => items.push(v),
///             Poll::Ready(None) => return Poll::Ready(items),
///             Poll::Pending => cx.waker().wake_by_ref(),
///         }
///     }
/// }));
/// assert_eq!(items, [0, 10, 20]);
/// ```
///
/// # Panics
/// A panic of the body propagates out of `poll_next`; the stream is then finished.
pub struct AsyncGenerator<T> {
    body: Option<Body>,
    slot: Arc<Slot<T>>,
}

impl<T: Send + 'static> AsyncGenerator<T> {
    /// Makes an async generator from `body`, which receives the [`Yielder`].
    /// Nothing runs until the stream is first polled.
    ///
    /// # Examples
    /// ```
    /// let g = coro_core::AsyncGenerator::new(|y| async move { y.yield_(1u8).await });
    /// # let _ = g;
    /// ```
    pub fn new<B, Fut>(body: B) -> Self
    where
        B: FnOnce(Yielder<T>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let slot = Arc::new(Slot(Mutex::new(None)));
        let body = body(Yielder { slot: slot.clone() });
        AsyncGenerator {
            body: Some(Box::pin(body)),
            slot,
        }
    }
}

impl<T> Stream for AsyncGenerator<T> {
    type Item = T;

    /// # Cancel safety
    /// A value is only taken out of the body when it is returned, so dropping
    /// the stream between polls loses nothing already yielded.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        let Some(mut body) = this.body.take() else {
            return Poll::Ready(None);
        };
        match body.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => {
                this.body = Some(body);
                match this.slot.lock().take() {
                    Some(value) => Poll::Ready(Some(value)),
                    None => Poll::Pending,
                }
            }
        }
    }
}

impl<T> fmt::Debug for AsyncGenerator<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncGenerator")
            .field("finished", &self.body.is_none())
            .finish()
    }
}
