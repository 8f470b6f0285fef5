//! coro-sync: async synchronisation primitives for any executor.
//!
//! Every primitive needs nothing but a [`Waker`](core::task::Waker): they work
//! the same inside tokio, `async-executor`, `futures::executor`, or coro's own
//! schedulers. They are built on a FIFO waiter list of their own and
//! [`concurrent-queue`](concurrent_queue). Locks and
//! semaphores are not first-come-first-served: newcomers may barge for
//! about 1 ms before a waiter takes priority (each type's Fairness
//! section).
//!
//! | type | libcoro | what |
//! |---|---|---|
//! | [`Event`] | `coro::event` | manual-reset event; `set` wakes all waiters |
//! | [`Latch`] | `coro::latch` | countdown; waiters resume at zero |
//! | [`Mutex`] | `coro::mutex` | async mutex, bounded unfairness then FIFO hand-off |
//! | [`SharedMutex`] | `coro::shared_mutex` | readers-writer lock; readers and writers take turns, neither starves |
//! | [`Semaphore`] | `coro::semaphore` | counting semaphore, `acquire_many`, `close` |
//! | [`RingBuffer`] | `coro::ring_buffer` | bounded MPMC buffer of fixed capacity `N` |
//! | [`Queue`] | `coro::queue` | unbounded MPMC queue, also a `Stream` |
//! | [`Condvar`] | `coro::condition_variable` | condition variable for [`Mutex`] |
//! | [`Barrier`] | – | all of `n` tasks meet, one is the leader |
//! | [`mpsc`] | – | channels with handles, bounded and unbounded; they close when the last sender or the receiver goes |
//! | [`oneshot`] | – | one value from one task to another; the receiver is a future |
//! | [`broadcast`] | – | every receiver gets every value; a ring of `cap` values, laggards are told how many they missed |
//! | [`watch`] | – | the latest value, versioned; receivers wait for changes, which coalesce |
//!
//! The four channel modules use the names and semantics of `tokio::sync`'s
//! modules of the same names, so code moves over by changing the path; each
//! module's documentation lists where it differs.
//!
//! Named futures live in [`futures`]. Every waiting future is cancel safe:
//! dropping it loses no item already in the primitive, no permit and no
//! wake-up (a wake-up it received but did not use passes to the next
//! waiter); each method says so under `# Cancel safety`. A dropped `send`
//! or `push` future drops the value it carried, as tokio's: reserve first
//! (`mpsc::Sender::reserve`) where a send races something else.
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use coro_sync::{Mutex, Semaphore};
//!
//! # futures::executor::block_on(async {
//! let counter = Arc::new(Mutex::new(0));
//! let limit = Semaphore::new(2);
//! for _ in 0..4 {
//!     let _permit = limit.acquire().await.unwrap();
//!     *counter.lock().await += 1;
//! }
//! assert_eq!(*counter.lock().await, 4);
//! # });
//! ```
//!
//! # Wakers
//!
//! Any executor's waker works, including wakers that run code of their
//! own: one whose `wake` polls the woken task right there, one that owns
//! the last reference to a task (so that dropping it drops a future
//! waiting on the same primitive), one that panics. The waiter lists take
//! the wakers to wake out under their lock and wake them after it; a
//! waker is cloned before the lock is taken and a replaced one dropped
//! after it is released: no executor code runs under a list's lock.
//!
//! A waker that panics when woken does not keep the other waiters of that
//! wake-up asleep: all are woken, then the panic reaches the caller that
//! woke them (the `unlock`, `set`, `push`...). The primitive's own state
//! is consistent by then (a lock is released before its waiters are
//! woken, a barrier counts an arrival once), and the panicking waiter's
//! wake-up is not lost: polled again it goes on, and dropped it passes the
//! wake-up to the next waiter. An operation that wakes more than one list
//! (a `close`, a push that wakes a pop and the streams) still wakes the
//! other lists and makes its state changes before the panic goes on. A
//! receive or pop that wakes a waiting sender this way has already taken
//! its value, which is dropped as the panic unwinds through it.
//!
//! # Features
//!
//! - `loom`: switch the building blocks to loom's types. Only meaningful
//!   together with `RUSTFLAGS="--cfg loom"`, for the models in `tests/loom.rs`.
#![doc(test(attr(deny(warnings))))]
#![deny(rustdoc::broken_intra_doc_links)]
#![deny(unsafe_code)]

mod barrier;
pub mod broadcast;
mod cell;
mod condvar;
mod error;
mod event;
mod latch;
mod loom;
pub mod mpsc;
mod mutex;
pub mod oneshot;
mod queue;
mod raw_mutex;
mod ring_buffer;
mod semaphore;
mod shared_mutex;
mod wait_queue;
mod waiters;
pub mod watch;

/// Shared with the other crates of the workspace (coro-io's signal
/// listeners wait on a [`Waiters`](waiters::Waiters) list). Not public API:
/// it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::waiters::{Waiter, Waiters};
}

pub use barrier::{Barrier, BarrierWaitResult};
pub use condvar::Condvar;
pub use error::{Closed, PushError, TryAcquireError, TryPopError};
pub use event::Event;
pub use latch::Latch;
pub use mutex::{Mutex, MutexGuard, MutexGuardArc};
pub use queue::Queue;
pub use ring_buffer::RingBuffer;
pub use semaphore::{Semaphore, SemaphorePermit, SemaphorePermitArc};
pub use shared_mutex::{SharedMutex, SharedMutexReadGuard, SharedMutexWriteGuard};

/// Runs `first`, then `then` also if `first` panicked, and then lets the
/// panic go on. For operations made of steps that each may wake waiters
/// (a foreign executor's waker may panic): a panic in waking one list must
/// not skip the wake-ups of another, or a state change after them.
pub(crate) fn then_anyway<A, B>(first: impl FnOnce() -> A, then: impl FnOnce() -> B) {
    let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(first));
    let _ = then();
    if let Err(p) = first {
        std::panic::resume_unwind(p);
    }
}

/// The named future types returned by the primitives' async methods.
pub mod futures {
    pub use crate::barrier::BarrierWait;
    pub use crate::broadcast::futures::BroadcastRecv;
    pub use crate::condvar::CondvarWait;
    pub use crate::event::EventWait;
    pub use crate::latch::LatchWait;
    pub use crate::mpsc::bounded::{MpscReserve, MpscSend};
    pub use crate::mpsc::chan::{MpscClosed, MpscRecv, MpscRecvMany};
    pub use crate::mutex::{Lock, LockArc};
    pub use crate::oneshot::futures::OneshotClosed;
    pub use crate::queue::{QueuePop, QueueStream};
    pub use crate::ring_buffer::{Pop, Push};
    pub use crate::semaphore::{Acquire, AcquireArc};
    pub use crate::shared_mutex::{Read, Write};
    pub use crate::watch::futures::{WatchChanged, WatchClosed};
}
