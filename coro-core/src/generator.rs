//! `Generator<T>` (an `Iterator`) and `AsyncGenerator<T>` (a `Stream`), both
//! written as an `async` body that hands values out through a [`Yielder`].

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::iter::FusedIterator;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use futures_core::Stream;

type Body = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A generator's one-value mailbox: an `Option<T>`, type-erased.
type Slot = Box<dyn Any + Send>;

/// Hands values from a body to its consumer without locks: while a generator
/// polls its body, its slot sits on top of this per-thread stack, where
/// `yield_` (running inside that poll, on this thread) finds it. Nested
/// generators push above it.
struct Active {
    id: u64,
    slot: Slot,
}

thread_local! {
    static ACTIVE: RefCell<Vec<Active>> = const { RefCell::new(Vec::new()) };
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Polls `body` with the generator's slot as the current one, then takes the
/// slot back (also when the body panics) and returns what was yielded.
fn poll_body<T: 'static>(
    id: u64,
    slot: &mut Option<Slot>,
    body: &mut Body,
    cx: &mut Context<'_>,
) -> (Poll<()>, Option<T>) {
    struct Restore<'a> {
        slot: &'a mut Option<Slot>,
    }
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            let mine = ACTIVE.with(|a| a.borrow_mut().pop());
            *self.slot = mine.map(|a| a.slot);
        }
    }
    let mine = slot.take().expect("generator slot present between polls");
    ACTIVE.with(|a| a.borrow_mut().push(Active { id, slot: mine }));
    let restore = Restore { slot };
    let poll = body.as_mut().poll(cx);
    drop(restore);
    let value = slot
        .as_mut()
        .and_then(|s| s.downcast_mut::<Option<T>>())
        .expect("a body leaves the slot stack as it found it")
        .take();
    (poll, value)
}

fn new_slot<T: Send + 'static>() -> (u64, Option<Slot>) {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    (id, Some(Box::new(None::<T>)))
}

/// The handle a generator body uses to hand out values; see [`Generator`].
pub struct Yielder<T> {
    id: u64,
    _values: PhantomData<fn(T)>,
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
    /// is pending at the same time (for example two yields joined together),
    /// or if it is polled anywhere but inside its own generator's body.
    ///
    /// # Cancel safety
    /// Dropping the future before its first poll drops `value` unseen.
    /// Its first poll hands `value` over: dropped after that (a `yield_`
    /// that lost a race with another future), the value is still
    /// delivered, and a second `yield_` made before the consumer took it
    /// (in the same poll of the body) panics as two pending at once.
    pub fn yield_(&self, value: T) -> Yield<'_, T> {
        Yield {
            yielder: self,
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
    yielder: &'a Yielder<T>,
    value: Option<T>,
}

// The value is moved, never pinned.
impl<T> Unpin for Yield<'_, T> {}

impl<T: 'static> Future for Yield<'_, T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(value) = this.value.take() else {
            return Poll::Ready(());
        };
        let id = this.yielder.id;
        ACTIVE.with(|active| {
            let mut active = active.borrow_mut();
            let slot = match active.last_mut() {
                Some(top) if top.id == id => top.slot.downcast_mut::<Option<T>>(),
                _ => None,
            };
            let Some(slot) = slot else {
                drop(active);
                panic!(
                    "`Yielder::yield_` polled outside its own generator's body; a Yielder \
                     only works inside the body it was given to"
                );
            };
            let busy = slot.is_some();
            if !busy {
                *slot = Some(value);
            }
            drop(active);
            assert!(
                !busy,
                "two `Yielder::yield_` futures of one generator were pending at once; \
                 await each `yield_` before starting the next"
            );
        });
        // The consumer takes the value and polls the body again when it
        // wants the next one. Woken all the same: inside a combinator of
        // the body (`when_all`, `FuturesUnordered`), a child is polled
        // again only once it woke, so without it the next poll of the body
        // would not reach this future, and the generator would stall (or
        // a `Generator` report a foreign wait). Directly under the body
        // the wake costs nothing (`Generator`'s waker is a no-op) or one
        // early poll of the consumer (`AsyncGenerator`).
        cx.waker().wake_by_ref();
        Poll::Pending
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
/// finished. It also panics in a thread-local's destructor that runs after
/// the generators' own thread-local state was destroyed (which aborts the
/// process: do not step a generator in a thread-local's destructor).
#[doc(alias = "generator")]
pub struct Generator<T> {
    body: Option<Body>,
    id: u64,
    slot: Option<Slot>,
    _values: PhantomData<fn() -> T>,
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
        let (id, slot) = new_slot::<T>();
        let body = body(Yielder {
            id,
            _values: PhantomData,
        });
        Generator {
            body: Some(Box::pin(body)),
            id,
            slot,
            _values: PhantomData,
        }
    }
}

impl<T: 'static> Iterator for Generator<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        // Taken out while it runs: a panicking body leaves the generator finished.
        let mut body = self.body.take()?;
        let mut cx = Context::from_waker(Waker::noop());
        // `next` waits for the body as `sync_wait` waits for a future: a
        // task budget (see `coop`) of whoever calls it must not make the
        // body's always-ready operations (a lock, a queued value) pretend
        // to wait, which here would look like a foreign wait.
        let polled = crate::coop::without_budget(|| {
            poll_body::<T>(self.id, &mut self.slot, &mut body, &mut cx)
        });
        match polled {
            // A value yielded in the poll that also ended the body (a
            // `yield_` raced against a ready future): still handed out.
            (Poll::Ready(()), value) => value,
            (Poll::Pending, value) => match value {
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

impl<T: 'static> FusedIterator for Generator<T> {}

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
/// use futures::StreamExt;
///
/// let g = AsyncGenerator::new(|y: Yielder<u32>| async move {
///     for i in 0..3 {
///         yield_now().await; // any future may be awaited here
///         y.yield_(i * 10).await;
///     }
/// });
/// let items: Vec<u32> = sync_wait(g.collect());
/// assert_eq!(items, [0, 10, 20]);
/// ```
///
/// # Panics
/// A panic of the body propagates out of `poll_next`; the stream is then
/// finished. As [`Generator`], it panics when polled in a thread-local's
/// destructor that runs after the generators' own thread-local state.
pub struct AsyncGenerator<T> {
    body: Option<Body>,
    id: u64,
    slot: Option<Slot>,
    _values: PhantomData<fn() -> T>,
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
        let (id, slot) = new_slot::<T>();
        let body = body(Yielder {
            id,
            _values: PhantomData,
        });
        AsyncGenerator {
            body: Some(Box::pin(body)),
            id,
            slot,
            _values: PhantomData,
        }
    }
}

impl<T: 'static> Stream for AsyncGenerator<T> {
    type Item = T;

    /// # Cancel safety
    /// A value is only taken out of the body when it is returned, so dropping
    /// the stream between polls loses nothing already yielded.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        let Some(mut body) = this.body.take() else {
            return Poll::Ready(None);
        };
        match poll_body::<T>(this.id, &mut this.slot, &mut body, cx) {
            // A value yielded in the poll that also ended the body is still
            // handed out; the stream ends at the next poll.
            (Poll::Ready(()), value) => Poll::Ready(value),
            (Poll::Pending, value) => {
                this.body = Some(body);
                match value {
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
