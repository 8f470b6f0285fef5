//! # coro
//!
//! Coroutine primitives and an I/O scheduler with pluggable drivers: libcoro,
//! brought to Rust. This facade re-exports the workspace crates:
//!
//! - [`coro_core`] at the top level: tasks, `sync_wait`, `when_all`, `when_any`,
//!   generators and stop tokens;
//! - [`sync`]: executor-agnostic synchronisation primitives (`coro-sync`);
//! - [`io`]: the thread pool and the I/O scheduler (`coro-io`);
//! - [`net`]: TCP, UDP, TLS and DNS (`coro-net`).
#![doc(test(attr(deny(warnings))))]
#![deny(rustdoc::broken_intra_doc_links)]
#![forbid(unsafe_code)]

pub use coro_core::*;

/// Synchronisation primitives that work inside any executor (`coro-sync`).
pub mod sync {
    pub use coro_sync::*;
}

/// The thread pool, the I/O scheduler and its drivers (`coro-io`).
pub mod io {
    pub use coro_io::*;
}

/// Networking on the I/O scheduler (`coro-net`).
pub mod net {
    pub use coro_net::*;
}
