//! `when_any` over an iterator of futures.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::ops::ControlFlow;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::when_all::Engine;

/// Runs every future of `iter` concurrently and returns the index and output
/// of the first one to finish; the others are dropped (cancelled) at once.
///
/// The first poll starts the children in input order and stops at the first
/// one that is ready. Afterwards only woken children are polled (O(1) per
/// wake-up, like [`when_all`](fn@crate::when_all)). For a fixed set of futures of
/// different types with one output type, see [`when_any!`](crate::when_any!).
///
/// # Examples
/// ```
/// use coro_core::{sync_wait, when_any, Task};
///
/// let never = Task::new(std::future::pending::<i64>());
/// let soon = Task::new(async { 1 });
/// assert_eq!(sync_wait(when_any(vec![never, soon])), (1, 1));
/// ```
///
/// # Panics
/// - at once if `iter` is empty: there would be nothing to wait for;
/// - a panic inside a child propagates to the awaiter (the other children are
///   dropped with the `WhenAny` future);
/// - polling again after the future returned `Ready`.
///
/// # Cancel safety
/// Dropping the future drops every child. When it completes, every loser has
/// already been dropped exactly once.
#[doc(alias = "select_all")]
#[doc(alias = "race")]
pub fn when_any<I>(iter: I) -> WhenAny<<I::Item as IntoFuture>::IntoFuture>
where
    I: IntoIterator,
    I::Item: IntoFuture,
{
    let engine = Engine::new(iter);
    assert!(
        engine.len() > 0,
        "coro::when_any called with no futures: an empty set has no first future to finish"
    );
    WhenAny {
        engine,
        done: false,
    }
}

/// The future returned by [`when_any`].
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct WhenAny<F> {
    engine: Engine<F>,
    done: bool,
}

impl<F: Future> Future for WhenAny<F> {
    type Output = (usize, F::Output);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        assert!(!this.done, "`when_any` future polled after it completed");
        let mut winner = None;
        let _ = this.engine.poll_pass(cx, |i, out| {
            winner = Some((i, out));
            ControlFlow::Break(())
        });
        match winner {
            Some(won) => {
                this.done = true;
                this.engine.drop_children();
                Poll::Ready(won)
            }
            None => Poll::Pending,
        }
    }
}

impl<F> fmt::Debug for WhenAny<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhenAny")
            .field("len", &self.engine.len())
            .field("done", &self.done)
            .finish()
    }
}
