//! The I/O drivers: the contract between ops and drivers, and its two
//! backends (`Backend`, the trait they implement, is crate-private: the set
//! of backends is closed; [`Driver`] is what a [`Handle`] to either offers).
//!
//! # The model (how both backends run an op)
//!
//! An operation (`crate::op::Op`) is a plain struct that owns everything the
//! kernel may touch while it runs: the buffer, the `sockaddr`, the `msghdr`.
//! It lives in its future (no allocation) until a completion backend
//! submits it, which first moves it to the heap (a stable address); it
//! knows **both** ways to run:
//!
//! * the completion path, [`Op::sqe`]: build one io_uring
//!   submission entry that points into the op (on the heap by then);
//! * the readiness path, [`Op::readiness`] +
//!   [`Op::attempt`]: the fd and direction to wait for,
//!   and the non-blocking syscall; `WouldBlock` means "wait for readiness and
//!   try again"; [`Readiness::Blocking`] means "run `attempt` on the blocking
//!   pool" (regular files and path operations on epoll; on io_uring also
//!   an op whose opcode the kernel lacks, [`Op::uring_native`]).
//!
//! The caller holds an [`OpFuture`](crate::op::OpFuture). Its `poll` calls
//! `Backend::poll_op` with the op's `OpState`; its `Drop` (only if the op is
//! still in flight) calls `Backend::drop_op`. From then on the driver owns the
//! op's box: a completion backend parks it in the generation-tagged slot that
//! `OpState::token` names, issues `ASYNC_CANCEL`, and frees it only when the
//! completion (of the op, not of the cancel) arrives, calling
//! [`Op::orphaned`] with the late result so that an fd
//! accepted for nobody is closed (or kept for the listener). `Drop` does
//! not block, with one exception: off the loop thread of a ring only that
//! thread may enter (`DEFER_TASKRUN`), it waits, bounded, until the kernel
//! has read the op's entry (its fd may be closed right after).
//!
//! A completion backend (`uring.rs`) therefore implements:
//!
//! * `poll_op`: if `state.token == 0`, try [`Op::try_now`] (a send with
//!   room in the socket buffer completes in that syscall); else move the
//!   op to the heap, take a slot in its slab, push
//!   `state.op.sqe().user_data(token)` (batched: submitted once per
//!   `Backend::park` turn), store the waker, set `state.token`, return
//!   `Pending`. Later polls: return the stored result once the CQE arrived
//!   (and free the slot), else refresh the waker.
//! * `drop_op`: move `state.op.take()` into the slot, push an async cancel.
//! * `park(timeout)`: submit, wait for at least one CQE or the timeout
//!   (EXT_ARG), reap CQEs (store results, wake wakers, free orphaned ops),
//!   return how many CQEs were handled.
//! * `unpark`: make a concurrent or the next `park` return (an eventfd),
//!   callable from any thread.
//! * `in_flight`, `cancel_all` (shutdown: cancel everything, reap with a bound).
//!
//! Timers are not driver ops: each scheduler keeps one timer structure and
//! passes the earliest deadline as the `park` timeout, so both backends need
//! nothing but a timed wait.
//!
//! Dispatch is by the `AnyDriver` enum (not `dyn`), so ops stay generic.
//! Every method takes `&self`: the driver is shared by the scheduler thread
//! and (with `ExecutionStrategy::ThreadPool`) by the pool workers that poll op
//! futures; backends use an uncontended mutex for their tables.

#[allow(unsafe_code)] // declares `unsafe trait Op`
mod contract;
#[allow(unsafe_code)]
pub(crate) mod epoll;
#[allow(unsafe_code)] // reads the provided buffer a lease holds
mod lease;
mod notify;
pub mod probe;
mod read_cell;
#[allow(unsafe_code)] // the provided buffers the kernel writes into
mod recv_queue;
mod registered;
#[allow(unsafe_code)]
pub(crate) mod uring;
mod uring_options;
mod wake_flag;

use std::sync::Arc;

use std::io;
use std::os::fd::RawFd;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

pub(crate) use contract::{Backend, BlockingOps, Held, OpState, PendingOps, nothing_moved};
pub use contract::{Interest, Op, OpKind, Readiness};
pub use lease::RecvLease;
pub use registered::RegisteredFd;
pub use uring_options::{RingMode, UringOptions};

/// Which I/O backend a scheduler uses.
///
/// `Auto` picks io_uring when the kernel allows it, else epoll (see
/// [`Handle::fallback_reason`]); the environment variable
/// `CORO_DRIVER=epoll|uring|auto` overrides `Auto` (not an explicit choice).
///
/// # Examples
///
/// ```
/// use coro_io::DriverKind;
/// assert_eq!(DriverKind::default(), DriverKind::Auto);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DriverKind {
    /// io_uring if available, else epoll (`CORO_DRIVER` may override).
    #[default]
    Auto,
    /// Readiness-based epoll driver.
    Epoll,
    /// Completion-based io_uring driver.
    IoUring,
}

/// The error of an op that would wait on a driver after
/// [`Backend::cancel_all`] (its scheduler shut down).
pub(crate) fn shut_down() -> io::Error {
    io::Error::other(ShutDown)
}

/// The payload of [`shut_down`]'s error, so that code can tell that error
/// from an op's own failure ([`is_shut_down`]).
#[derive(Debug)]
struct ShutDown;

impl std::fmt::Display for ShutDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("coro-io: the I/O driver was shut down (its scheduler stopped)")
    }
}

impl std::error::Error for ShutDown {}

/// Whether `e` says the driver was shut down (rather than that an op
/// failed on a running driver).
pub(crate) fn is_shut_down(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|i| i.is::<ShutDown>())
}

/// Enum dispatch over the backends.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per scheduler, behind an Arc
pub(crate) enum AnyDriver {
    /// epoll.
    Epoll(epoll::EpollDriver),
    /// io_uring.
    Uring(uring::UringDriver),
}

macro_rules! dispatch {
    ($self:ident, $d:ident => $e:expr) => {
        match $self {
            AnyDriver::Epoll($d) => $e,
            AnyDriver::Uring($d) => $e,
        }
    };
}

impl AnyDriver {
    /// Build the backend `kind` asks for (after `Auto` resolution). Returns
    /// the driver and, when `Auto` fell back to epoll, why io_uring was not
    /// used.
    pub(crate) fn new(
        kind: DriverKind,
        uring: &UringOptions,
        issuer: uring::Issuer,
    ) -> io::Result<(AnyDriver, Option<io::Error>)> {
        if kind == DriverKind::Auto {
            // Contradictory options are refused whatever `CORO_DRIVER`
            // says: a program must not pass with the override and fail
            // without it.
            uring::check_options(uring, issuer)?;
        }
        AnyDriver::build(resolve_kind(kind)?, uring, issuer)
    }

    /// [`new`](AnyDriver::new) after the `CORO_DRIVER` override.
    fn build(
        kind: DriverKind,
        uring: &UringOptions,
        issuer: uring::Issuer,
    ) -> io::Result<(AnyDriver, Option<io::Error>)> {
        match kind {
            DriverKind::Epoll => Ok((AnyDriver::Epoll(epoll::EpollDriver::new()?), None)),
            DriverKind::IoUring => Ok((
                AnyDriver::Uring(uring::UringDriver::new(uring, issuer)?),
                None,
            )),
            DriverKind::Auto => {
                // A contradictory setting is the caller's error, not a
                // reason to fall back.
                uring::check_options(uring, issuer)?;
                match uring::UringDriver::new(uring, issuer) {
                    Ok(d) => Ok((AnyDriver::Uring(d), None)),
                    Err(e) => {
                        if std::env::var_os("CORO_DEBUG").is_some() {
                            crate::warn(format_args!("falling back to epoll: {e}"));
                        }
                        Ok((AnyDriver::Epoll(epoll::EpollDriver::new()?), Some(e)))
                    }
                }
            }
        }
    }
}

/// Apply the `CORO_DRIVER` override to `Auto`.
fn resolve_kind(kind: DriverKind) -> io::Result<DriverKind> {
    if kind != DriverKind::Auto {
        return Ok(kind);
    }
    match std::env::var("CORO_DRIVER") {
        Ok(v) => parse_override(Some(&v)),
        Err(std::env::VarError::NotPresent) => parse_override(None),
        Err(std::env::VarError::NotUnicode(v)) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("CORO_DRIVER={v:?}: expected epoll, uring or auto"),
        )),
    }
}

/// The meaning of a `CORO_DRIVER` value.
fn parse_override(v: Option<&str>) -> io::Result<DriverKind> {
    match v {
        None | Some("") | Some("auto") => Ok(DriverKind::Auto),
        Some("epoll") => Ok(DriverKind::Epoll),
        Some("uring") | Some("io_uring") | Some("iouring") => Ok(DriverKind::IoUring),
        Some(other) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("CORO_DRIVER={other:?}: expected epoll, uring or auto"),
        )),
    }
}

impl Backend for AnyDriver {
    #[inline]
    fn kind(&self) -> DriverKind {
        dispatch!(self, d => d.kind())
    }
    #[inline]
    fn poll_op<T: Op>(
        &self,
        state: &mut OpState<T>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        dispatch!(self, d => d.poll_op(state, cx))
    }
    #[inline]
    fn drop_op<T: Op>(&self, state: &mut OpState<T>) {
        dispatch!(self, d => d.drop_op(state))
    }
    #[inline]
    fn cancel_op<T: Op>(&self, state: &mut OpState<T>) {
        dispatch!(self, d => d.cancel_op(state))
    }
    #[inline]
    fn park(&self, timeout: Option<Duration>) -> io::Result<usize> {
        dispatch!(self, d => d.park(timeout))
    }
    #[inline]
    fn unpark(&self) {
        dispatch!(self, d => d.unpark())
    }
    #[inline]
    fn in_flight(&self) -> usize {
        dispatch!(self, d => d.in_flight())
    }
    #[inline]
    fn cancel_all(&self, bound: Duration) {
        dispatch!(self, d => d.cancel_all(bound))
    }
    #[inline]
    fn release_fd(&self, fd: RawFd) {
        dispatch!(self, d => d.release_fd(fd))
    }
    #[inline]
    fn detach_fd(&self, fd: RawFd) {
        dispatch!(self, d => d.detach_fd(fd))
    }
    #[inline]
    fn close_fd(&self, fd: std::os::fd::OwnedFd) {
        dispatch!(self, d => d.close_fd(fd))
    }
    #[inline]
    fn recv_buffered(&self, fd: RawFd) -> Option<usize> {
        dispatch!(self, d => d.recv_buffered(fd))
    }
    #[inline]
    fn recv_queue(&self) -> bool {
        dispatch!(self, d => d.recv_queue())
    }
    #[inline]
    fn poll_recv(
        &self,
        fd: RawFd,
        cx: &mut Context<'_>,
        out: &mut recv_queue::RecvOut<'_>,
        peek: bool,
    ) -> Poll<io::Result<usize>> {
        dispatch!(self, d => d.poll_recv(fd, cx, out, peek))
    }
    #[inline]
    fn poll_recv_lease(
        &self,
        fd: RawFd,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<recv_queue::Leased>> {
        dispatch!(self, d => d.poll_recv_lease(fd, cx))
    }
}

/// A cheap, cloneable handle to a scheduler's driver.
///
/// Op futures ([`crate::op`]) are created against a handle; the scheduler
/// owns one ([`crate::IoScheduler::driver`]). A handle can also be used with
/// no scheduler at all: call [`Handle::park`] yourself (see
/// `coro-io/tests/driver.rs`).
///
/// # Examples
///
/// ```
/// use coro_io::driver::Handle;
/// use coro_io::DriverKind;
///
/// let h = Handle::new(DriverKind::Epoll)?;
/// assert_eq!(h.kind(), DriverKind::Epoll);
/// assert_eq!(h.in_flight(), 0);
/// h.unpark();
/// h.park(Some(std::time::Duration::ZERO))?;
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone, Debug)]
pub struct Handle {
    pub(crate) inner: Arc<Shared>,
}

/// What every clone of a [`Handle`] shares: one allocation, one reference
/// count to bump per op.
#[derive(Debug)]
pub(crate) struct Shared {
    driver: AnyDriver,
    fallback: Option<io::Error>,
    /// Op futures waiting on this driver, per kind.
    pub(crate) pending: crate::op::PendingOps,
}

impl std::ops::Deref for Shared {
    type Target = AnyDriver;
    #[inline]
    fn deref(&self) -> &AnyDriver {
        &self.driver
    }
}

impl Handle {
    /// Create a driver of `kind` (`Auto` honours `CORO_DRIVER`) with the
    /// default [`UringOptions`].
    ///
    /// # Errors
    ///
    /// When the backend cannot be created (epoll/eventfd creation failed,
    /// io_uring unavailable for an explicit [`DriverKind::IoUring`], or a bad
    /// `CORO_DRIVER` value). With `Auto`, an unavailable io_uring is not an
    /// error: the epoll driver is used and
    /// [`fallback_reason`](Handle::fallback_reason) says why.
    pub fn new(kind: DriverKind) -> io::Result<Handle> {
        Handle::with_options(kind, &UringOptions::default())
    }

    /// Like [`new`](Handle::new), with io_uring settings.
    ///
    /// # Errors
    ///
    /// As for [`new`](Handle::new); and `InvalidInput` for settings that
    /// contradict each other (`DEFER_TASKRUN` on a ring more than one
    /// thread submits to) with `IoUring`, or with `Auto` whatever
    /// `CORO_DRIVER` picks.
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_io::driver::Handle;
    /// use coro_io::{DriverKind, UringOptions};
    ///
    /// // Fault injection: io_uring_setup "fails" with EPERM, as under seccomp.
    /// let opts = UringOptions { inject_setup_error: Some(libc::EPERM), ..Default::default() };
    /// let err = Handle::with_options(DriverKind::IoUring, &opts).unwrap_err();
    /// assert!(err.to_string().contains("EPERM"), "{err}");
    ///
    /// let h = Handle::with_options(DriverKind::Epoll, &opts)?;
    /// assert_eq!(h.kind(), DriverKind::Epoll);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn with_options(kind: DriverKind, uring: &UringOptions) -> io::Result<Handle> {
        Handle::build(kind, uring, uring::Issuer::AnyThread)
    }

    /// A driver whose io_uring ring may be entered by one thread only: the
    /// one that calls [`enable_here`](Handle::enable_here) (a scheduler's
    /// loop thread), which lets it defer completion work to its own waits.
    pub(crate) fn for_loop_thread(kind: DriverKind, uring: &UringOptions) -> io::Result<Handle> {
        Handle::build(kind, uring, uring::Issuer::LoopThread)
    }

    /// A driver whose ops are submitted by a thread pool's workers (a
    /// scheduler with `ExecutionStrategy::ThreadPool`).
    pub(crate) fn for_workers(kind: DriverKind, uring: &UringOptions) -> io::Result<Handle> {
        Handle::build(kind, uring, uring::Issuer::Workers)
    }

    fn build(kind: DriverKind, uring: &UringOptions, issuer: uring::Issuer) -> io::Result<Handle> {
        let (driver, fallback) = AnyDriver::new(kind, uring, issuer)?;
        Ok(Handle {
            inner: Arc::new(Shared {
                driver,
                fallback,
                pending: Default::default(),
            }),
        })
    }

    /// Make the calling thread the issuer of a [`for_loop_thread`]
    /// (Handle::for_loop_thread) driver (no-op for others).
    pub(crate) fn enable_here(&self) -> io::Result<()> {
        match &self.inner.driver {
            AnyDriver::Uring(d) => d.enable_here(),
            AnyDriver::Epoll(_) => Ok(()),
        }
    }

    /// The calling thread serves this driver until its scheduler shuts
    /// down (the loop thread, a pool worker): on io_uring it may submit
    /// its own entries; a passing thread hands them to the parker, since
    /// the kernel cancels a thread's requests when it exits. A no-op on
    /// epoll.
    pub(crate) fn serve_here(&self) {
        self.server().serve_here();
    }

    /// What [`serve_here`](Self::serve_here) needs, without holding the
    /// driver (for a pool's start callback: the pool may outlive it).
    pub(crate) fn server(&self) -> uring::Server {
        match &self.inner.driver {
            AnyDriver::Uring(d) => d.server(),
            AnyDriver::Epoll(_) => uring::Server::NONE,
        }
    }

    /// Why `DriverKind::Auto` chose epoll over io_uring (`None` when it did
    /// not fall back).
    pub fn fallback_reason(&self) -> Option<&io::Error> {
        self.inner.fallback.as_ref()
    }

    /// The optional io_uring features the kernel offered (`None` on epoll).
    pub fn uring_features(&self) -> Option<probe::Features> {
        match &self.inner.driver {
            AnyDriver::Uring(d) => Some(*d.features()),
            AnyDriver::Epoll(_) => None,
        }
    }
    /// Whether stream reads go through the driver's receive queue
    /// (io_uring with multishot receive into provided buffers, see
    /// [`UringOptions::multishot_recv`]): then a read lease
    /// ([`RecvLease`]) holds the kernel's own buffer and copies nothing
    /// (except while the ring of buffers is empty for its socket), where
    /// elsewhere it is read into a `Vec` of its own.
    pub fn recv_queue(&self) -> bool {
        self.inner.recv_queue()
    }

    /// The backend in use (never `Auto`).
    pub fn kind(&self) -> DriverKind {
        self.inner.kind()
    }
    /// Wait up to `timeout` for events and wake the tasks they concern.
    /// For a bare handle: a scheduler's own is parked by its event loop
    /// (parked from elsewhere too, it would take that loop's turns).
    ///
    /// # Errors
    ///
    /// The wait syscall failed (not `EINTR`, which is retried as a 0-event turn).
    pub fn park(&self, timeout: Option<Duration>) -> io::Result<usize> {
        self.inner.park(timeout)
    }
    /// Wake a concurrent or the next [`park`](Handle::park), from any thread.
    pub fn unpark(&self) {
        self.inner.unpark()
    }
    /// Ops whose memory the driver currently owns or waits on.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight()
    }
    /// Forget the driver's registration of `fd`. Call it before closing an
    /// fd that was used with this driver other than through [`crate::op::close`]
    /// or [`close_fd`](Handle::close_fd).
    pub fn release_fd(&self, fd: RawFd) {
        self.inner.release_fd(fd)
    }

    /// Forget the driver's registration of `fd` and close it, as
    /// [`RegisteredFd`]'s drop does. Drop every op on `fd` first. On
    /// io_uring, when the fd's receive queue had a receive in the kernel's
    /// submission queue, the close comes once the kernel has read that
    /// queue up to where it stood when the receive was ended (the
    /// receive's entry and whatever was queued with it), which a held-up
    /// event loop or a lagging SQ thread may not have submitted yet: the
    /// kernel looks the number up only then, and closed before, the
    /// number could name another socket by then, whose bytes the receive
    /// would take. This waits up to a second for the loop (from another
    /// thread than a single-issuer ring's loop, or on SQPOLL), as the drop
    /// of an op in flight does for the op's entry; past that the driver
    /// keeps the fd open and closes it itself (its event loop; a `Manual`
    /// one's at its next turn, or at the shutdown's clean-up or the
    /// driver's end). Else the fd is closed at once (an op of it still in
    /// the kernel, an accept's or a receive's being cancelled, holds the
    /// socket itself until its cancel completes).
    ///
    /// # Examples
    ///
    /// ```
    /// let sched = coro_io::IoScheduler::new(Default::default())?;
    /// let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    /// sched.driver().close_fd(a.into());
    /// # std::io::Result::Ok(())
    /// ```
    pub fn close_fd(&self, fd: std::os::fd::OwnedFd) {
        self.inner.close_fd(fd)
    }

    /// How many fds the driver holds a readiness registration for (epoll;
    /// 0 on completion backends). Tests use it to check clean-up.
    pub fn registered_fds(&self) -> usize {
        match &self.inner.driver {
            AnyDriver::Epoll(d) => d.registered(),
            AnyDriver::Uring(_) => 0,
        }
    }
    /// For the length of an `IoScheduler::poll` of `fd`: a readiness
    /// registration made for it lasts only as long as some poll of the fd
    /// is alive (completed or dropped alike), since the caller owns the fd
    /// and may close it right after.
    pub(crate) fn poll_guard(&self, fd: RawFd) -> PollGuard<'_> {
        if let AnyDriver::Epoll(d) = &self.inner.driver {
            d.begin_poll(fd);
        }
        PollGuard { driver: self, fd }
    }

    /// Whether the driver holds a readiness registration for `fd`.
    pub fn is_registered(&self, fd: RawFd) -> bool {
        match &self.inner.driver {
            AnyDriver::Epoll(d) => d.is_registered(fd),
            AnyDriver::Uring(_) => false,
        }
    }
    /// How many ops this driver has run on the blocking pool since it was
    /// created: on epoll every file and path op; on io_uring only those
    /// whose opcode the kernel lacks (none of coro's on Linux 5.15+).
    pub fn blocking_ops(&self) -> u64 {
        match &self.inner.driver {
            AnyDriver::Epoll(d) => d.blocking_started(),
            AnyDriver::Uring(d) => d.blocking_started(),
        }
    }
    /// Op futures currently waiting on this driver, per kind (non-zero
    /// counts only). Unlike [`in_flight`](Handle::in_flight) this does not
    /// count ops whose future was dropped and whose completion the driver
    /// still awaits.
    pub fn pending_ops(&self) -> Vec<(crate::op::OpKind, usize)> {
        self.inner.pending.snapshot()
    }

    /// Cancel all in-flight ops and wait at most `bound` for the kernel to
    /// release their memory (`Duration::MAX`: as long as it takes).
    ///
    /// Two kinds of op are let run a while first. A file's write or sync
    /// that must finish even when its future was dropped (a write-behind,
    /// a dropped `write_at`, see [`crate::fs::File`]) runs for up to half
    /// of `bound` (at most 5 s) before it is cancelled in turn; on the
    /// blocking pool, where nothing can call it off, it is waited for up
    /// to `bound` (at most 5 s), then left to end on its own.
    /// A read or an open on the
    /// blocking pool (epoll; io_uring without the opcode), which cannot be
    /// called off, is waited for 100 ms and then left to end on its own
    /// (its job owns its buffer; a FIFO's read may wait for a peer).
    ///
    /// This is the driver's shutdown: it also closes the driver for good
    /// (every later op fails with "the I/O driver was shut down"). For a
    /// bare handle; a scheduler's own ([`IoScheduler::driver`](crate::IoScheduler::driver))
    /// is shut down by [`IoScheduler::shutdown`](crate::IoScheduler::shutdown),
    /// and cancelling one op is dropping its future.
    pub fn cancel_all(&self, bound: Duration) {
        self.inner.cancel_all(bound)
    }
}

/// See [`Handle::poll_guard`].
pub(crate) struct PollGuard<'a> {
    driver: &'a Handle,
    fd: RawFd,
}

impl Drop for PollGuard<'_> {
    fn drop(&mut self) {
        if let AnyDriver::Epoll(d) = &self.driver.inner.driver {
            d.end_poll(self.fd);
        }
    }
}

/// What a driver does, whichever backend (epoll or io_uring) it is: the
/// trait both drivers implement, as a [`Handle`] offers them. Sealed: the
/// backends are a closed set, picked with [`DriverKind`]; the trait lets
/// code take "a driver" generically. Each method is the [`Handle`] method
/// of the same name.
///
/// ```
/// use coro_io::driver::{Driver, Handle};
/// use coro_io::DriverKind;
///
/// fn idle(d: &impl Driver) -> bool {
///     d.in_flight() == 0
/// }
/// assert!(idle(&Handle::new(DriverKind::Epoll)?));
/// # std::io::Result::Ok(())
/// ```
pub trait Driver: sealed::Sealed + Send + Sync {
    /// The backend.
    fn kind(&self) -> DriverKind;
    /// Wait at most `timeout` for completions or readiness and wake their
    /// ops; returns how many were handled.
    ///
    /// # Errors
    ///
    /// From `epoll_wait` / `io_uring_enter`.
    fn park(&self, timeout: Option<Duration>) -> io::Result<usize>;
    /// Wake a thread blocked in [`park`](Driver::park).
    fn unpark(&self);
    /// Ops in flight (including dropped ones the kernel still holds).
    fn in_flight(&self) -> usize;
    /// Forget `fd`'s registration before its owner closes it.
    fn release_fd(&self, fd: RawFd);
    /// Cancel every op in flight, waiting at most `bound`.
    fn cancel_all(&self, bound: Duration);
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Handle {}
}

impl Driver for Handle {
    fn kind(&self) -> DriverKind {
        Handle::kind(self)
    }
    fn park(&self, timeout: Option<Duration>) -> io::Result<usize> {
        Handle::park(self, timeout)
    }
    fn unpark(&self) {
        Handle::unpark(self)
    }
    fn in_flight(&self) -> usize {
        Handle::in_flight(self)
    }
    fn release_fd(&self, fd: RawFd) {
        Handle::release_fd(self, fd)
    }
    fn cancel_all(&self, bound: Duration) {
        Handle::cancel_all(self, bound)
    }
}

/// How long a driver's shutdown lets writes and syncs that must finish
/// (see [`Handle::cancel_all`]) run before it cancels them too.
pub(crate) const FINISH_BOUND: Duration = Duration::from_secs(5);

/// Most wakers one list of an fd's waiting tasks keeps (see [`push_waker`]).
pub(crate) const WAKERS_MAX: usize = 32;

/// Where [`push_waker`]'s mark stops doubling. More live tasks than this
/// waiting on one fd (one direction) at once evict each other without
/// end while the fd stays idle: each eviction wakes them all, they poll
/// again and refill the list, which then evicts again (a core kept busy
/// with nothing to do). The list cannot tell a live waker from one left
/// by a dropped read, so it cannot grow for the first without growing
/// for the second; keep the waiters of one fd below this (one task that
/// reads and hands out the work).
pub(crate) const WAKERS_MARK_MAX: usize = 1024;

/// Add `w` to a list of an fd's waiting tasks, unless it is there. An op
/// dropped before its event leaves its waker in the list (ops of one task
/// share an entry, so none can take it out), and one read after another
/// with a new waker each (a combinator rebuilt per loop, a stream moved
/// between tasks) would grow the list for as long as the fd stays idle,
/// and every wait would scan it. So a full list is let go of first, into
/// `evicted`: its wakers are woken (not under any lock: the drivers
/// wake them in their next turn, a `WakeList` after its caller's locks),
/// the live ones poll again and come back, the stale ones are gone.
/// "Full" is at least [`WAKERS_MAX`] and doubles with each eviction
/// (the list's capacity), up to [`WAKERS_MARK_MAX`]: more live waiters
/// than the mark (40 tasks receiving from one socket) come back below
/// the new one instead of evicting each other for ever, and stale
/// wakers stay bounded (a list holds at most about twice the top mark).
pub(crate) fn push_waker(list: &mut Vec<Waker>, w: &Waker, evicted: &mut Vec<Waker>) {
    if list.iter().any(|x| x.will_wake(w)) {
        return;
    }
    let n = list.len();
    if n >= WAKERS_MAX && n >= list.capacity() {
        evicted.append(list);
        if n < WAKERS_MARK_MAX {
            list.reserve(2 * n);
        }
    }
    list.push(w.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn override_values() {
        assert_eq!(parse_override(None).unwrap(), DriverKind::Auto);
        assert_eq!(parse_override(Some("")).unwrap(), DriverKind::Auto);
        assert_eq!(parse_override(Some("epoll")).unwrap(), DriverKind::Epoll);
        assert_eq!(parse_override(Some("uring")).unwrap(), DriverKind::IoUring);
        assert_eq!(
            parse_override(Some("io_uring")).unwrap(),
            DriverKind::IoUring
        );
        let e = parse_override(Some("kqueue")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("kqueue"), "{e}");
    }

    #[test]
    fn auto_falls_back_to_epoll_when_setup_fails() {
        for errno in [libc::ENOSYS, libc::EPERM, libc::ENOMEM] {
            let opts = UringOptions {
                inject_setup_error: Some(errno),
                ..Default::default()
            };
            let (d, why) =
                AnyDriver::build(DriverKind::Auto, &opts, uring::Issuer::AnyThread).unwrap();
            assert_eq!(d.kind(), DriverKind::Epoll);
            let why = why.expect("a fallback reason");
            assert_eq!(why.raw_os_error(), None); // wrapped with context
            assert!(why.to_string().contains("io_uring unavailable"), "{why}");
            let explicit =
                AnyDriver::build(DriverKind::IoUring, &opts, uring::Issuer::AnyThread).unwrap_err();
            assert!(
                explicit.to_string().contains("io_uring unavailable"),
                "{explicit}"
            );
        }
    }
}
