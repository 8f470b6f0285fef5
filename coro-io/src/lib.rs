//! coro-io: a thread pool and an I/O scheduler with pluggable drivers.
//!
//! Coming: `IoScheduler`, the `Driver` trait with epoll and io_uring
//! implementations, timers, file I/O.

pub mod blocking;
mod task;
pub mod thread_pool;
