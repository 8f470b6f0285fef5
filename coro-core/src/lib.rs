//! Coroutine building blocks for any executor: tasks, `sync_wait`, `when_all`,
//! `when_any`, generators and stop tokens (libcoro's core, in Rust).
//!
//! | item | what it does |
//! |---|---|
//! | [`Task`] / [`LocalTask`] | a lazy, type-erased future (`Send` / not `Send`) |
//! | [`sync_wait`] | block the calling thread until a future completes |
//! | [`when_all`](fn@when_all) / [`when_all!`] / [`try_when_all`] | run futures concurrently, collect every output |
//! | [`when_any`](fn@when_any) / [`when_any!`] | run futures concurrently, keep the first output, drop the rest |
//! | [`Generator`] / [`AsyncGenerator`] | write an `Iterator` / a `Stream` as an `async` body that yields |
//! | [`StopSource`] / [`StopToken`] | cooperative cancellation, with an awaitable [`StopToken::stopped`] |
//! | [`yield_now`] | give the executor a chance to run something else |
//! | [`wake_all`] | wake a batch of wakers, every one even if one panics |
//!
//! Nothing here depends on a particular executor: every future only uses the
//! [`Waker`](std::task::Waker) it is polled with, so they run inside
//! [`sync_wait`], `tokio`, `futures::executor` or coro's own schedulers.
//!
//! # Examples
//! ```
//! use coro_core::{sync_wait, when_all, Task};
//!
//! let tasks: Vec<Task<u64>> = (1..=5u64).map(|x| Task::new(async move { x + x })).collect();
//! assert_eq!(sync_wait(when_all(tasks)), vec![2, 4, 6, 8, 10]);
//! ```
//!
//! # Features
//! None: the crate has no optional parts.
//!
//! # Unsafe code
//! One block: `when_all`/`when_any` keep their children in a single pinned
//! boxed slice and pin each element in place (`pin_index` in `when_all.rs`,
//! with its safety argument). Boxing every child instead cost about half the
//! time of `when_all` over trivial futures. Everything else is safe code.
#![doc(test(attr(deny(warnings))))]
#![deny(rustdoc::broken_intra_doc_links)]
// One audited `unsafe` block: pinning the children of `when_all` in place
// (when_all.rs, `pin_index`). Everything else is safe code.
#![deny(unsafe_code)]

pub mod coop;
mod generator;
mod join_tuple;
mod stop;
mod sync_wait;
mod task;
mod when_all;
mod when_any;
mod yield_now;

/// What `when_all.rs` and `stop.rs` are written against (their loom model,
/// `tests/loom.rs`, gives them loom's).
mod sync {
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    pub(crate) use std::sync::{Mutex, MutexGuard};
}

pub use generator::{AsyncGenerator, Generator, Yield, Yielder};
pub use stop::{StopSource, StopToken, Stopped};
pub use sync_wait::{WaitState, set_block_hook, set_unblock_hook, sync_wait};
pub use task::{LocalTask, Task};
pub use when_all::{TryWhenAll, WhenAll, try_when_all, when_all};
pub use when_any::{WhenAny, when_any};
pub use yield_now::{YieldNow, yield_now};

/// Wake every waker of a batch (due timers, completed ops, tasks to
/// cancel, the waiters of a stop request or a leaf future). A waker may be another
/// executor's code and may panic: the ones after it are still woken (a
/// plain loop would drop them unwoken while unwinding, and their waiters
/// would wait forever), then the first panic goes on, unless this thread
/// is unwinding already (a batch woken by a destructor during a panic):
/// there a second panic would abort the process, so it is dropped. Costs
/// one `catch_unwind` per batch, not per waker.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::task::{Wake, Waker};
///
/// struct Count(AtomicUsize);
/// impl Wake for Count {
///     fn wake(self: Arc<Self>) {
///         self.0.fetch_add(1, Ordering::SeqCst);
///     }
/// }
/// let c = Arc::new(Count(AtomicUsize::new(0)));
/// coro_core::wake_all((0..3).map(|_| Waker::from(c.clone())));
/// assert_eq!(c.0.load(Ordering::SeqCst), 3);
/// ```
pub fn wake_all(wakers: impl IntoIterator<Item = std::task::Waker>) {
    use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
    let mut rest = wakers.into_iter().peekable();
    // Most batches are empty (nothing was evicted, no event came): skip
    // the unwind guard, which costs a call through the panic runtime.
    if rest.peek().is_none() {
        return;
    }
    let mut first = None;
    while let Err(p) = catch_unwind(AssertUnwindSafe(|| rest.by_ref().for_each(|w| w.wake()))) {
        first.get_or_insert(p);
    }
    if let Some(p) = first {
        if !std::thread::panicking() {
            resume_unwind(p);
        }
    }
}

/// Implementation details of the `when_all!` and `when_any!` macros. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::join_tuple::{IntoJoin, IntoRace, join, race};
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    struct Panics;
    impl Wake for Panics {
        fn wake(self: Arc<Self>) {
            panic!("this waker panics (on purpose)");
        }
    }

    struct Counts(AtomicUsize);
    impl Wake for Counts {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A batch woken by a destructor while its thread unwinds (a task that
    /// panicked holding a stream, whose drop wakes the stream's readers):
    /// a panicking waker in it must neither abort the process (a second
    /// panic escaping a destructor during unwinding does) nor keep the
    /// others asleep. The original panic goes on.
    #[test]
    fn a_panicking_waker_in_a_batch_woken_while_unwinding_does_not_abort() {
        struct WakesOnDrop(Arc<Counts>);
        impl Drop for WakesOnDrop {
            fn drop(&mut self) {
                super::wake_all([Waker::from(Arc::new(Panics)), Waker::from(self.0.clone())]);
            }
        }
        let c = Arc::new(Counts(AtomicUsize::new(0)));
        let c2 = c.clone();
        let r = std::thread::spawn(move || {
            let _wakes = WakesOnDrop(c2);
            panic!("the first panic (on purpose)");
        })
        .join();
        let msg = r.unwrap_err();
        assert_eq!(
            msg.downcast_ref::<&str>(),
            Some(&"the first panic (on purpose)")
        );
        assert_eq!(c.0.load(Ordering::SeqCst), 1, "the other waker slept");
    }
}
