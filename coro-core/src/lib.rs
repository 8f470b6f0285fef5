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

pub use generator::{AsyncGenerator, Generator, Yield, Yielder};
pub use stop::{StopSource, StopToken, Stopped};
pub use sync_wait::{set_block_hook, sync_wait};
pub use task::{LocalTask, Task};
pub use when_all::{TryWhenAll, WhenAll, try_when_all, when_all};
pub use when_any::{WhenAny, when_any};
pub use yield_now::{YieldNow, yield_now};

/// Implementation details of the `when_all!` and `when_any!` macros. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::join_tuple::{IntoJoin, IntoRace, join, race};
}
