//! coro-io: a thread pool and an I/O scheduler with pluggable drivers.
//!
//! (in progress)

pub mod blocking;
pub mod buf;
pub mod driver;
pub mod op;
mod task;
pub mod thread_pool;

pub use driver::DriverKind;

/// Run `f` on the blocking pool (file I/O on readiness drivers).
pub(crate) fn blocking_run(f: Box<dyn FnOnce() + Send + 'static>) {
    // Until blocking.rs lands: one thread per call.
    std::thread::Builder::new()
        .name("coro-blocking".into())
        .spawn(f)
        .expect("spawn blocking thread");
}
