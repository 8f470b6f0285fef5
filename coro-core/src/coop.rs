//! Cooperative budget: a task that never waits cannot starve the others
//! on its thread.
//!
//! An op whose result is already there (a receive with bytes queued, a
//! send the socket takes at once, a write to a fast peer) completes on its
//! first poll. A task that loops over such ops never returns `Pending`, so
//! the thread that runs it (an `Inline` scheduler's only thread, a pool
//! worker) runs nothing else: not the other tasks, not its timers, not
//! the peer task on the same loop that would drain the socket. Each time
//! an executor that takes part ([`budgeted`]: coro-io's scheduler and
//! thread pool do) polls a task, the task gets a budget of
//! [`BUDGET`] completed ops; once it is spent, the next op returns
//! `Pending` without starting (after waking the task, so it runs again
//! after the tasks queued before it). Nothing is lost: an op that was not
//! started did nothing, and one in flight keeps its result for the next
//! poll.
//!
//! Futures polled elsewhere (another executor's tasks) have no budget and
//! are never held back; neither are those [`sync_wait`](crate::sync_wait)
//! drives, also inside a task (it blocks the thread: a budget spent before
//! it would make its ops yield to a task that cannot run until it
//! returns), nor coro-io's blocking jobs (they run to their end in one
//! poll). Another executor's blocking wait (`futures::executor::block_on`)
//! called inside one of our tasks' polls, however, sees that task's
//! budget: once spent, every op yields and the wait polls again at once,
//! spinning. Blocking a task's thread is wrong in any case; where it must
//! be done, wrap the wait in [`without_budget`], as `sync_wait` does.
//!
//! Futures polled together in one task share its budget. A combinator that
//! always polls them in the same order lets a first one that is always
//! ready spend it every poll, and the ones after it that count never
//! complete: this crate's `when_all!`, `when_all` and `when_any!` change
//! which goes first when that happens; others (`futures::join!`,
//! `select_biased!`) do not, so put such a future last there.
//!
//! Leaf futures take part through [`poll_proceed`] and [`consume`], or
//! [`poll_counted`] for both (coro-io's ops do, coro-net's TLS stream for
//! reads and writes that rustls' buffers serve without an op, and
//! coro-sync's primitives that may never wait: receivers of its queues
//! and channels, pushes to its ring buffer, and acquiring its locks and
//! semaphore, which bounded channel sends do; coro-io's sleeps and
//! interval ticks that are already due); a loop that makes progress
//! without any op can call [`consume_budget`]; [`unconstrained`] and
//! [`without_budget`] run a future or a closure without a budget.
//!
//! # Examples
//!
//! ```
//! use coro_core::coop;
//!
//! // One poll of a task, as an executor runs it.
//! let left = coop::budgeted(|| {
//!     for _ in 0..10 {
//!         coop::consume();
//!     }
//!     coop::remaining()
//! });
//! assert_eq!(left, Some(coop::BUDGET - 10));
//! // Outside a task: no budget.
//! assert_eq!(coop::remaining(), None);
//! ```

use std::cell::Cell;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Ops a task may complete per poll before it yields (as tokio's budget).
pub const BUDGET: u16 = 128;

/// "No budget": polled outside this crate's executors.
const UNCONSTRAINED: u16 = u16::MAX;

/// "No budget" too, switched off by our own code ([`without_budget`]:
/// `sync_wait`, a stream's inner ops): told apart from the above by
/// [`polled_elsewhere`], for combinators that must act differently under
/// another executor, whose own budget they cannot see.
const OFF: u16 = u16::MAX - 1;

thread_local! {
    static LEFT: Cell<u16> = const { Cell::new(UNCONSTRAINED) };
}

/// Run `f`, one poll of a task, with a fresh budget: for executors. The
/// budget before (a task driving another executor inside its own poll)
/// comes back after, also if `f` panics.
pub fn budgeted<R>(f: impl FnOnce() -> R) -> R {
    let _restore = Restore(LEFT.with(|l| l.replace(BUDGET)));
    f()
}

/// Run `f` without a budget (the one before comes back after): for code
/// that polls ops it must not see yield on the budget's account, such as
/// a blocking wait or a stream that polls its ops with its own wakers
/// under a lock.
pub fn without_budget<R>(f: impl FnOnce() -> R) -> R {
    let _restore = Restore(LEFT.with(|l| l.replace(OFF)));
    f()
}

/// Whether the running future is polled by another executor (tokio,
/// `futures`): no executor of ours gave it a budget, and no code of ours
/// switched the budget off. That executor may have a budget of its own,
/// which we cannot see.
pub(crate) fn polled_elsewhere() -> bool {
    LEFT.with(Cell::get) == UNCONSTRAINED
}

/// Whether the running task's budget is spent: a future that combines an
/// inner future with a deadline checks it before declaring the deadline
/// passed, since the inner one may have yielded without trying.
#[inline]
pub fn budget_spent() -> bool {
    LEFT.with(Cell::get) == 0
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
        if n != UNCONSTRAINED && n != OFF {
            l.set(n.saturating_sub(1));
        }
    });
}

/// One poll of an op that counts against the budget: [`poll_proceed`],
/// then `poll` (not called if the budget is spent, so the op does nothing
/// that poll), then [`consume`] if it completed. For leaf futures whose
/// result may always be there (a lock nobody holds, a queue never empty).
///
/// ```
/// use std::task::{Context, Poll, Waker};
/// use coro_core::coop;
///
/// let mut cx = Context::from_waker(Waker::noop());
/// let left = coop::budgeted(|| {
///     let r = coop::poll_counted(&mut cx, |_| Poll::Ready(7));
///     assert_eq!(r, Poll::Ready(7));
///     coop::remaining()
/// });
/// assert_eq!(left, Some(coop::BUDGET - 1));
/// ```
#[inline]
pub fn poll_counted<T>(
    cx: &mut Context<'_>,
    poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
) -> Poll<T> {
    std::task::ready!(poll_proceed(cx));
    let r = poll(cx);
    if r.is_ready() {
        consume();
    }
    r
}

/// Count one unit of work, yielding first if the budget is spent: for
/// loops that make progress without ops.
pub async fn consume_budget() {
    poll_fn(|cx| poll_counted(cx, |_| Poll::Ready(()))).await;
}

/// Budget left to the running task (`None`: it has none).
pub fn remaining() -> Option<u16> {
    Some(LEFT.with(Cell::get)).filter(|&n| n != UNCONSTRAINED && n != OFF)
}

/// Run `fut` without a budget: its ops never yield on their own account.
/// For a future that multiplexes others itself and must not let one of
/// them spend the budget the next one needs to make progress.
///
/// # Examples
///
/// ```
/// use coro_core::coop;
/// use std::future::Future;
///
/// let inside = coop::budgeted(|| {
///     let fut = std::pin::pin!(coop::unconstrained(async { coop::remaining() }));
///     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
///     fut.poll(&mut cx)
/// });
/// assert_eq!(inside, std::task::Poll::Ready(None));
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
        without_budget(|| fut.poll(cx))
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
        budgeted(|| {
            for _ in 0..BUDGET {
                assert!(poll_proceed(&mut cx).is_ready());
                consume();
            }
            assert_eq!(remaining(), Some(0));
            assert!(poll_proceed(&mut cx).is_pending());
            budgeted(|| assert_eq!(remaining(), Some(BUDGET)));
            assert_eq!(remaining(), Some(0));
        });
        assert_eq!(remaining(), None);
    }
}
