//! Cooperative budget: a task that never waits cannot starve the others
//! on its thread.
//!
//! An op whose result is already there (a receive with bytes queued, a
//! send the socket takes at once, a write to a fast peer) completes on its
//! first poll. A task that loops over such ops never returns `Pending`, so
//! the thread that runs it (an `Inline` scheduler's only thread, a pool
//! worker) runs nothing else: not the other tasks, not its timers, not
//! the peer task on the same loop that would drain the socket. Each time
//! one of this crate's executors polls a task, the task gets a budget of
//! [`BUDGET`] completed ops; once it is spent, the next op returns
//! `Pending` without starting (after waking the task, so it runs again
//! after the tasks queued before it). Nothing is lost: an op that was not
//! started did nothing, and one in flight keeps its result for the next
//! poll.
//!
//! Futures polled elsewhere (`sync_wait`, another executor's tasks) have
//! no budget and are never held back.
//!
//! Leaf futures of other crates take part through [`poll_proceed`] and
//! [`consume`] (coro-net's TLS stream does, for reads and writes that
//! rustls' buffers serve without an op), and a loop that makes progress
//! without any op can call [`consume_budget`]; [`unconstrained`] runs a
//! future without a budget.
//!
//! # Examples
//!
//! ```
//! use coro_io::{IoScheduler, coop};
//!
//! let s = IoScheduler::new(Default::default())?;
//! let h = s.spawn(async {
//!     // A loop that never waits still lets its neighbours run.
//!     let mut sum = 0u64;
//!     for i in 0..10_000 {
//!         sum += i;
//!         coop::consume_budget().await;
//!     }
//!     sum
//! });
//! assert_eq!(coro_core::sync_wait(h).unwrap(), 49_995_000);
//! # std::io::Result::Ok(())
//! ```

use std::cell::Cell;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Ops a task may complete per poll before it yields (as tokio's budget).
pub const BUDGET: u16 = 128;

/// "No budget": polled outside this crate's executors.
const UNCONSTRAINED: u16 = u16::MAX;

thread_local! {
    static LEFT: Cell<u16> = const { Cell::new(UNCONSTRAINED) };
}

/// Run `f` (one poll of a task) with a fresh budget; the one before
/// (a task polling a `Manual` scheduler inside its own poll) comes back
/// after.
pub(crate) fn with_budget<R>(f: impl FnOnce() -> R) -> R {
    let _restore = Restore(LEFT.with(|l| l.replace(BUDGET)));
    f()
}

/// Whether the running task may go on: `Ready` if its budget is not
/// spent (or it has none); otherwise `Pending`, with `cx`'s waker woken so
/// that the task runs again after the others queued on its thread. Call
/// before an op; call [`consume`] when the op completes.
#[inline]
pub fn poll_proceed(cx: &mut Context<'_>) -> Poll<()> {
    if LEFT.with(Cell::get) == 0 {
        cx.waker().wake_by_ref();
        return Poll::Pending;
    }
    Poll::Ready(())
}

/// Count one completed op against the running task's budget.
#[inline]
pub fn consume() {
    LEFT.with(|l| {
        let n = l.get();
        if n != UNCONSTRAINED {
            l.set(n.saturating_sub(1));
        }
    });
}

/// Count one unit of work, yielding first if the budget is spent: for
/// loops that make progress without ops.
pub async fn consume_budget() {
    poll_fn(|cx| {
        std::task::ready!(poll_proceed(cx));
        consume();
        Poll::Ready(())
    })
    .await;
}

/// Budget left to the running task (`None`: it has none).
pub fn remaining() -> Option<u16> {
    Some(LEFT.with(Cell::get)).filter(|&n| n != UNCONSTRAINED)
}

/// Run `fut` without a budget: its ops never yield on their own account.
/// For a future that multiplexes others itself and must not let one of
/// them spend the budget the next one needs to make progress.
///
/// # Examples
///
/// ```
/// use coro_io::{IoScheduler, coop};
///
/// let s = IoScheduler::new(Default::default())?;
/// let h = s.spawn(coop::unconstrained(async { coop::remaining() }));
/// assert_eq!(coro_core::sync_wait(h).unwrap(), None);
/// # std::io::Result::Ok(())
/// ```
pub fn unconstrained<F: Future>(fut: F) -> Unconstrained<F> {
    Unconstrained { fut }
}

pin_project_lite::pin_project! {
    /// The future of [`unconstrained`].
    #[must_use = "futures do nothing unless polled"]
    pub struct Unconstrained<F> {
        #[pin]
        fut: F,
    }
}

impl<F: Future> Future for Unconstrained<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let fut = self.project().fut;
        let _restore = Restore(LEFT.with(|l| l.replace(UNCONSTRAINED)));
        fut.poll(cx)
    }
}

/// Puts the budget a poll found back when it ends (also by a panic).
struct Restore(u16);

impl Drop for Restore {
    fn drop(&mut self) {
        LEFT.with(|l| l.set(self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_task_nothing_is_held_back() {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        for _ in 0..1000 {
            assert!(poll_proceed(&mut cx).is_ready());
            consume();
        }
        assert_eq!(remaining(), None);
    }

    #[test]
    fn a_spent_budget_yields_until_the_next_poll_and_nesting_restores() {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        with_budget(|| {
            for _ in 0..BUDGET {
                assert!(poll_proceed(&mut cx).is_ready());
                consume();
            }
            assert_eq!(remaining(), Some(0));
            assert!(poll_proceed(&mut cx).is_pending());
            with_budget(|| assert_eq!(remaining(), Some(BUDGET)));
            assert_eq!(remaining(), Some(0));
        });
        assert_eq!(remaining(), None);
    }
}
