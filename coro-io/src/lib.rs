//! coro-io: a thread pool and an I/O scheduler with pluggable drivers.
//!
//! Coming: `ThreadPool`, `IoScheduler`, the `Driver` trait with epoll and
//! io_uring implementations, timers, file I/O and blocking offload.
