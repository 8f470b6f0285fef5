//! `yield_now`: an executor-agnostic cooperative yield.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Returns a future that is pending once (after waking its own task), then ready.
///
/// Any executor re-polls the task later, after it had the chance to run others.
///
/// # Examples
/// ```
/// coro_core::sync_wait(async {
///     coro_core::yield_now().await;
/// });
/// ```
///
/// # Cancel safety
/// Cancel safe: it holds no state.
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future returned by [`yield_now`].
#[must_use = "futures do nothing unless you .await or poll them"]
#[derive(Debug)]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
