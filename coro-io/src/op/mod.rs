//! I/O operations: one struct per op that speaks both drivers.
//!
//! Each function here (`recv`, `send`, `accept`, ...) builds an op and
//! returns an [`OpFuture`]. Ops own their buffers ([`crate::buf`]) and hand
//! them back with the result. See [`crate::driver`] for how a backend runs
//! them.
//!
//! # Cancel safety
//!
//! Dropping an [`OpFuture`] is always memory safe: the driver keeps the op
//! (and its buffer) until the kernel is done with it, and closes an fd that
//! an accept produced for nobody. It is **not lossless** on io_uring: a
//! dropped `recv`/`read` may have consumed bytes from the socket that are
//! then discarded with the buffer, and a dropped `send` may have sent them.
//! On epoll a dropped op never transferred anything (the syscall runs inside
//! `poll`), except ops on the blocking pool (`read_at`/`write_at`/`sync_all`
//! and the path ops `open_at`, `statx`, `rename_at`, `unlink_at`,
//! `mkdir_at`) which run to completion in the background; an fd opened for
//! a dropped `open_at` is closed on either driver.
//!
//! # Examples
//!
//! Ops run against a [`Handle`]; inside a scheduler task use
//! `IoScheduler::current()` and its driver.
//!
//! ```
//! use coro_io::driver::Handle;
//! use coro_io::{op, DriverKind};
//! use std::os::fd::AsRawFd;
//!
//! let h = Handle::new(DriverKind::Epoll)?;
//! let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::NONBLOCK)?;
//! let (res, _buf) = futures::executor::block_on(op::write(&h, w.as_raw_fd(), b"hi".as_slice()));
//! assert_eq!(res?, 2);
//! let (res, buf) = futures::executor::block_on(op::read(&h, r.as_raw_fd(), Vec::with_capacity(8)));
//! assert_eq!(res?, 2);
//! assert_eq!(buf, b"hi");
//! # std::io::Result::Ok(())
//! ```

mod addr;
mod file;
mod fs;
mod net;

pub use addr::Address;
pub use file::{
    Close, Fsync, Read, ReadAt, Write, WriteAt, close, fsync, read, read_at, write, write_at,
};
pub use fs::{
    MkdirAt, OpenAt, RenameAt, Statx, UnlinkAt, mkdir_at, open_at, rename_at, statx, statx_fd,
    unlink_at,
};
pub use net::{
    Accept, AcceptFd, Connect, PollFd, Recv, RecvFrom, RecvMeta, RecvMsg, Send, SendTo, accept,
    accept_fd, connect, poll_fd, recv, recv_from, recv_from_any, recv_msg, recv_stream, send,
    send_to,
};

use std::borrow::Borrow;
use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::driver::{Driver, Handle, Readiness};

/// An I/O operation that both drivers can run. See [`crate::driver`].
///
/// The op is boxed before it is first used, so pointers into `self` that
/// [`sqe`](Op::sqe) hands to the kernel stay valid until the completion.
///
/// # Safety
///
/// The io_uring driver hands the entry [`sqe`](Op::sqe) returns to the
/// kernel as it is, and the kernel reads and writes the memory it names
/// until the op's completion arrives, whatever happens to the future in
/// between. An implementation must therefore return an entry that
///
/// * points only into memory owned by `self`: its own fields (a
///   `sockaddr`, `msghdr` or `iovec`; the op is boxed before `sqe` is
///   called and never moves after), heap memory it owns (a `Vec`'s
///   block), or `'static` memory; nothing that `self` merely borrows and
///   nothing on a stack;
/// * describes no more memory than that: lengths within the buffers, and
///   writable memory only where the kernel writes;
/// * leaves that memory alone while in flight: `readiness`, `attempt`,
///   `drains` and `expect_empty` may be called meanwhile and must not
///   free, move or reallocate what the entry points to;
/// * names an fd the op may use (the caller keeps it open while the
///   future lives), and carries no `user_data` or link flags of its own.
///
/// An op that breaks this lets safe code make the kernel write anywhere.
pub unsafe trait Op: std::marker::Send + 'static {
    /// What the future resolves to (usually a [`BufResult`](crate::buf::BufResult)).
    type Output;
    /// Which operation this is (for [`Metrics`](crate::Metrics) and tracing).
    const KIND: OpKind;
    /// Completion path: the io_uring entry for this op (`user_data` is set by
    /// the driver). Called at most once, after the op is boxed.
    fn sqe(&mut self) -> io_uring::squeue::Entry;
    /// Readiness path: what to wait for before [`attempt`](Op::attempt).
    fn readiness(&self) -> Readiness;
    /// Readiness path: the non-blocking syscall. `Ok(n)` is the raw result
    /// (bytes, an fd, revents); `WouldBlock` waits for readiness again.
    fn attempt(&mut self) -> io::Result<usize>;
    /// Turn the raw result into the output, handing owned buffers back.
    fn complete(self: Box<Self>, res: io::Result<usize>) -> Self::Output;
    /// The result arrived after the future was dropped: release what it
    /// produced (an accepted fd is closed here).
    fn orphaned(&mut self, res: io::Result<usize>) {
        let _ = res;
    }
    /// Stream reads: whether a result of `n` bytes shows the fd had no more
    /// data at that moment (a short read). Drivers then let the next read
    /// of the fd wait for data before trying (see [`recv_stream`]).
    fn drains(&self, n: usize) -> bool {
        let _ = n;
        false
    }
    /// Completion path: the previous read of this fd drained it; wait for
    /// data before the first attempt (only stream reads act on it).
    fn expect_empty(&mut self) {}
    /// The fd this op closes, so that a readiness driver drops its
    /// registration first.
    fn closes_fd(&self) -> Option<RawFd> {
        None
    }
    /// Completion path: whether this kernel's io_uring has the opcode
    /// [`sqe`](Op::sqe) uses (see [`Features`](crate::driver::probe::Features)).
    /// When it has not, the io_uring driver runs [`attempt`](Op::attempt)
    /// on the blocking pool instead, as a readiness driver does for
    /// [`Readiness::Blocking`], so an op that answers `false` here must
    /// have `Readiness::Blocking`. Default: always native.
    fn uring_native(&self, features: &crate::driver::probe::Features) -> bool {
        let _ = features;
        true
    }
    /// Whether an `EINTR`/`EAGAIN` result means "nothing happened, run me
    /// again" (true for every op that fails that way without effect). Not
    /// so for `close`: the fd is gone whatever it reports, and running it
    /// again could close a number that already names another file.
    const RESTARTABLE: bool = true;
}

/// The kinds of operation, as counted by [`Metrics::pending_ops`](crate::Metrics::pending_ops).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OpKind {
    /// [`accept`] / [`accept_fd`].
    Accept,
    /// [`connect`].
    Connect,
    /// [`recv`], [`recv_from`], [`recv_msg`], [`read`] on a socket or pipe.
    Recv,
    /// [`send`], [`send_to`], [`write()`].
    Send,
    /// [`poll_fd`].
    Poll,
    /// [`read_at`] (files).
    ReadAt,
    /// [`write_at`] (files).
    WriteAt,
    /// [`fsync`].
    Fsync,
    /// [`close`].
    Close,
    /// [`open_at`].
    OpenAt,
    /// [`statx`], [`statx_fd`].
    Statx,
    /// [`rename_at`].
    RenameAt,
    /// [`unlink_at`] (files and directories).
    UnlinkAt,
    /// [`mkdir_at`].
    MkdirAt,
}

impl OpKind {
    /// Every kind, in a fixed order.
    pub const ALL: [OpKind; 14] = [
        OpKind::Accept,
        OpKind::Connect,
        OpKind::Recv,
        OpKind::Send,
        OpKind::Poll,
        OpKind::ReadAt,
        OpKind::WriteAt,
        OpKind::Fsync,
        OpKind::Close,
        OpKind::OpenAt,
        OpKind::Statx,
        OpKind::RenameAt,
        OpKind::UnlinkAt,
        OpKind::MkdirAt,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// Per-kind counts of op futures that are waiting on their driver.
#[derive(Debug, Default)]
pub(crate) struct PendingOps([AtomicUsize; OpKind::ALL.len()]);

impl PendingOps {
    fn add(&self, k: OpKind) {
        self.0[k.index()].fetch_add(1, Ordering::Relaxed);
    }
    fn sub(&self, k: OpKind) {
        self.0[k.index()].fetch_sub(1, Ordering::Relaxed);
    }
    /// The non-zero counts.
    pub(crate) fn snapshot(&self) -> Vec<(OpKind, usize)> {
        OpKind::ALL
            .iter()
            .map(|&k| (k, self.0[k.index()].load(Ordering::Relaxed)))
            .filter(|&(_, n)| n > 0)
            .collect()
    }
}

/// The driver-side state of one op, owned by its [`OpFuture`].
///
/// `op` is `Some` until the driver takes it (blocking pool, cancelled op
/// parked in a slot) or the op completes; `token` is backend-specific
/// (io_uring: generation-tagged slot key, 0 = not submitted).
#[derive(Debug)]
pub struct OpState<T> {
    /// The op itself, boxed for a stable address.
    pub op: Option<Box<T>>,
    /// Backend-specific slot key; 0 means "not submitted".
    pub token: u64,
    pub(crate) blocking: Option<Arc<BlockingCell<T>>>,
    /// `OpFuture::cancel` was called: do not start or wait any more.
    pub(crate) cancel: bool,
}

impl<T: Op> OpState<T> {
    /// Run `attempt` on the blocking pool (readiness backends, and io_uring
    /// for opcodes the kernel lacks) and report through `cx` when it is
    /// done. Returns the result once available.
    pub(crate) fn poll_blocking(
        &mut self,
        cx: &mut Context<'_>,
        ops: &BlockingOps,
    ) -> Poll<io::Result<usize>> {
        if let Some(cell) = &self.blocking {
            let mut g = crate::lock(&cell.inner);
            if let Some((op, res)) = g.done.take() {
                drop(g);
                self.op = Some(op);
                self.blocking = None;
                return Poll::Ready(res);
            }
            match &g.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => g.waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        let Some(mut op) = self.op.take() else {
            return Poll::Ready(Err(io::Error::other("op polled after completion")));
        };
        let cell = Arc::new(BlockingCell {
            inner: Mutex::new(BlockingInner {
                done: None,
                waker: Some(cx.waker().clone()),
                abandoned: false,
            }),
        });
        self.blocking = Some(cell.clone());
        ops.started.fetch_add(1, Ordering::Relaxed);
        ops.running.fetch_add(1, Ordering::AcqRel);
        let running = ops.running.clone();
        crate::blocking_run(Box::new(move || {
            let res = op.attempt();
            let mut g = crate::lock(&cell.inner);
            let w = if g.abandoned {
                // Nobody will collect it: release what it produced (an
                // opened fd is closed) before counting it finished.
                drop(g);
                op.orphaned(res);
                drop(op);
                None
            } else {
                g.done = Some((op, res));
                let w = g.waker.take();
                drop(g);
                w
            };
            drop(cell);
            running.fetch_sub(1, Ordering::AcqRel);
            if let Some(w) = w {
                w.wake();
            }
        }));
        Poll::Pending
    }

    /// The future is dropped while its op is on the blocking pool: the op
    /// runs to the end there, and what it produced goes to
    /// [`Op::orphaned`] (here if it is done already, else on the pool
    /// thread), as a completion driver does for an op it took over.
    pub(crate) fn abandon_blocking(&mut self) {
        let Some(cell) = self.blocking.take() else {
            return;
        };
        let mut g = crate::lock(&cell.inner);
        g.abandoned = true;
        g.waker = None;
        let done = g.done.take();
        drop(g);
        if let Some((mut op, res)) = done {
            op.orphaned(res);
        }
    }
}

/// A driver's account of the ops it ran on the blocking pool.
#[derive(Debug, Default)]
pub(crate) struct BlockingOps {
    /// Running now (their ops and buffers live on pool threads).
    running: Arc<AtomicUsize>,
    /// Started since the driver was created.
    started: AtomicU64,
}

impl BlockingOps {
    /// Ops running on the pool now.
    pub(crate) fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }
    /// Ops started on the pool so far.
    pub(crate) fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }
}

/// Where a blocking-pool op leaves its result.
#[derive(Debug)]
pub(crate) struct BlockingCell<T> {
    inner: Mutex<BlockingInner<T>>,
}

#[derive(Debug)]
struct BlockingInner<T> {
    done: Option<(Box<T>, io::Result<usize>)>,
    waker: Option<Waker>,
    /// The future was dropped: the result is for nobody.
    abandoned: bool,
}

/// A pending I/O operation. Resolves to `T::Output`.
///
/// # Cancel safety
///
/// Dropping it is memory safe (the driver keeps the op's buffers until the
/// kernel lets go) but may lose data on io_uring; see the [module docs](self).
///
/// `H` is how it holds its driver: a [`Handle`] of its own (the default,
/// from [`new`](OpFuture::new); the future is `'static`) or a borrowed
/// `&Handle` ([`borrowed`](OpFuture::borrowed)), which spares an op whose
/// caller holds the handle anyway (a socket's `read`) two reference-count
/// updates.
#[must_use = "futures do nothing unless you .await or poll them"]
#[derive(Debug)]
pub struct OpFuture<T: Op, H: Borrow<Handle> = Handle> {
    driver: H,
    state: OpState<T>,
    done: bool,
    /// Counted in the driver's [`PendingOps`] (returned `Pending` once).
    counted: bool,
}

impl<T: Op> OpFuture<T> {
    /// Wrap `op` for `driver`.
    pub fn new(driver: &Handle, op: T) -> OpFuture<T> {
        OpFuture::with(driver.clone(), op)
    }
}

impl<'a, T: Op> OpFuture<T, &'a Handle> {
    /// Wrap `op` for `driver`, borrowing the handle instead of holding a
    /// clone.
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_io::driver::Handle;
    /// use coro_io::op::{self, OpFuture};
    /// use std::os::fd::AsRawFd;
    ///
    /// let h = Handle::new(coro_io::DriverKind::Epoll)?;
    /// let (_r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::NONBLOCK)?;
    /// let write = OpFuture::borrowed(&h, op::Send::new(w.as_raw_fd(), b"hi".as_slice()));
    /// # let _ = write;
    /// # std::io::Result::Ok(())
    /// ```
    pub fn borrowed(driver: &'a Handle, op: T) -> OpFuture<T, &'a Handle> {
        OpFuture::with(driver, op)
    }
}

impl<T: Op, H: Borrow<Handle>> OpFuture<T, H> {
    fn with(driver: H, op: T) -> OpFuture<T, H> {
        OpFuture {
            driver,
            state: OpState {
                op: Some(Box::new(op)),
                token: 0,
                blocking: None,
                cancel: false,
            },
            done: false,
            counted: false,
        }
    }

    fn inner(&self) -> &crate::driver::Shared {
        &self.driver.borrow().inner
    }
}

#[allow(private_bounds)] // only this crate attaches owners
impl<T: Op + file::KeepAlive> OpFuture<T> {
    /// Keep `owner` (the file) open until the op is finished, even if this
    /// future is dropped first.
    pub(crate) fn keep_alive(mut self, owner: Arc<std::os::fd::OwnedFd>) -> Self {
        if let Some(op) = self.state.op.as_mut() {
            op.keep(owner);
        }
        self
    }
}

impl<T: Op, H: Borrow<Handle> + Unpin> OpFuture<T, H> {
    /// Ask the op to stop early and keep the future: poll it on for the
    /// outcome, which is the op's own result if it completed anyway (a
    /// read that got data returns it: nothing is lost) or `ECANCELED`, with
    /// the buffer back either way. That is the lossless way to give up on
    /// an op (a timeout, say); dropping the future instead may lose what
    /// the kernel already moved on io_uring. Not started yet: it never
    /// will be. Ops on the blocking pool (regular files on epoll) run to
    /// the end regardless.
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_io::{op, driver::Handle, DriverKind};
    /// use std::os::fd::AsRawFd;
    /// use std::task::Poll;
    ///
    /// let h = Handle::new(DriverKind::Auto)?;
    /// let (r, _w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::NONBLOCK)?;
    /// let mut read = Box::pin(op::read(&h, r.as_raw_fd(), Vec::with_capacity(8)));
    /// let (res, buf) = futures::executor::block_on(async {
    ///     // Nothing to read: it waits. Then we give up on it.
    ///     assert!(futures::poll!(read.as_mut()).is_pending());
    ///     read.as_mut().cancel();
    ///     loop {
    ///         if let Poll::Ready(out) = futures::poll!(read.as_mut()) {
    ///             break out;
    ///         }
    ///         h.park(Some(std::time::Duration::from_millis(1))).unwrap();
    ///     }
    /// });
    /// assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::ECANCELED));
    /// assert_eq!(buf.capacity(), 8);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn cancel(self: Pin<&mut Self>) {
        let this = self.get_mut();
        if this.done || this.state.cancel {
            return;
        }
        this.state.cancel = true;
        this.driver.borrow().inner.cancel_op(&mut this.state);
    }
}

impl<T: Op, H: Borrow<Handle> + Unpin> Future for OpFuture<T, H> {
    type Output = T::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T::Output> {
        let this = self.get_mut();
        assert!(!this.done, "OpFuture polled after completion");
        // Cancelled before its first poll: it never runs.
        if this.state.cancel && !this.counted && this.state.token == 0 {
            this.done = true;
            let op = this.state.op.take().expect("an op not started yet");
            return Poll::Ready(op.complete(Err(io::Error::from_raw_os_error(libc::ECANCELED))));
        }
        // `EINTR`/`EAGAIN` reaching this level did nothing (drivers return
        // them only from syscalls that transferred no data): run the op
        // again, a bounded number of times, instead of failing the caller.
        let mut retries = 0;
        let polled = loop {
            // Faults are injected only into ops that have not started yet.
            #[cfg(feature = "fault-injection")]
            let injected = if this.state.token == 0
                && this.state.blocking.is_none()
                && !this.counted
                && !this.state.cancel
            {
                crate::fault::before_op(T::KIND)
            } else {
                None
            };
            #[cfg(not(feature = "fault-injection"))]
            let injected: Option<io::Error> = None;
            let polled = match injected {
                Some(e) => Poll::Ready(Err(e)),
                None => this.driver.borrow().inner.poll_op(&mut this.state, cx),
            };
            match polled {
                Poll::Ready(Err(e))
                    if T::RESTARTABLE
                        && !this.state.cancel
                        && retries < 16
                        && matches!(
                            e.kind(),
                            io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                        ) =>
                {
                    retries += 1;
                }
                other => break other,
            }
        };
        match polled {
            Poll::Pending => {
                if !this.counted {
                    this.counted = true;
                    this.inner().pending.add(T::KIND);
                    #[cfg(feature = "tracing")]
                    tracing::trace!(op = ?T::KIND, driver = ?this.driver.borrow().kind(), "op waits");
                }
                Poll::Pending
            }
            Poll::Ready(res) => {
                this.done = true;
                if std::mem::take(&mut this.counted) {
                    this.inner().pending.sub(T::KIND);
                }
                #[cfg(feature = "tracing")]
                tracing::trace!(op = ?T::KIND, ok = res.is_ok(), "op complete");
                let op = this
                    .state
                    .op
                    .take()
                    .expect("driver returned a result without the op");
                Poll::Ready(op.complete(res))
            }
        }
    }
}

impl<T: Op, H: Borrow<Handle>> Drop for OpFuture<T, H> {
    fn drop(&mut self) {
        if self.counted {
            self.inner().pending.sub(T::KIND);
            #[cfg(feature = "tracing")]
            tracing::trace!(op = ?T::KIND, "op dropped while waiting");
        }
        if !self.done && (self.state.token != 0 || self.state.blocking.is_some()) {
            self.driver.borrow().inner.drop_op(&mut self.state);
        }
    }
}

/// How many of `len` bytes a send or write offers the kernel: all of them,
/// unless fault injection shortens it.
#[inline]
pub(crate) fn offered(len: usize) -> usize {
    #[cfg(feature = "fault-injection")]
    return crate::fault::write_len(len);
    #[cfg(not(feature = "fault-injection"))]
    len
}

/// `Ok(n)` from a libc return value, or the thread's errno.
/// The syscalls of the hottest readiness paths (`recv`, `send`, `read`,
/// `write` of sockets and pipes), made directly through rustix's Linux
/// backend rather than libc's wrappers, which make each one a thread
/// cancellation point (two extra calls around every syscall that nothing
/// here uses): in the profile of a busy epoll server the wrappers were a
/// fifth of the server's user time.
pub(crate) mod sys {
    use std::io;
    use std::mem::MaybeUninit;
    use std::os::fd::{BorrowedFd, RawFd};

    use rustix::net::{RecvFlags, SendFlags};

    /// `len` bytes at `ptr` as a slice to receive into (`&mut []` if empty:
    /// an empty buffer's pointer may be null).
    ///
    /// # Safety
    ///
    /// `ptr` is valid for writes of `len` bytes for `'a`.
    unsafe fn spare<'a>(ptr: *mut u8, len: usize) -> &'a mut [MaybeUninit<u8>] {
        if len == 0 {
            return &mut [];
        }
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(ptr.cast(), len) }
    }

    /// `len` initialised bytes at `ptr` (`&[]` if empty).
    ///
    /// # Safety
    ///
    /// `ptr` is valid for reads of `len` initialised bytes for `'a`.
    unsafe fn filled<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
        if len == 0 {
            return &[];
        }
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }

    /// `recv(fd, ptr, len, 0)`.
    ///
    /// # Safety
    ///
    /// `fd` stays open during the call; `ptr` is valid for writes of `len`
    /// bytes.
    pub(crate) unsafe fn recv(fd: RawFd, ptr: *mut u8, len: usize) -> io::Result<usize> {
        // SAFETY: the caller's contract.
        let (fd, buf) = unsafe { (BorrowedFd::borrow_raw(fd), spare(ptr, len)) };
        Ok(rustix::net::recv(fd, buf, RecvFlags::empty())?.0.0.len())
    }

    /// `send(fd, ptr, len, MSG_NOSIGNAL)`.
    ///
    /// # Safety
    ///
    /// `fd` stays open during the call; `ptr` is valid for reads of `len`
    /// initialised bytes.
    pub(crate) unsafe fn send(fd: RawFd, ptr: *const u8, len: usize) -> io::Result<usize> {
        // SAFETY: the caller's contract.
        let (fd, buf) = unsafe { (BorrowedFd::borrow_raw(fd), filled(ptr, len)) };
        Ok(rustix::net::send(fd, buf, SendFlags::NOSIGNAL)?)
    }

    /// `read(fd, ptr, len)`.
    ///
    /// # Safety
    ///
    /// As [`recv`].
    pub(crate) unsafe fn read(fd: RawFd, ptr: *mut u8, len: usize) -> io::Result<usize> {
        // SAFETY: the caller's contract.
        let (fd, buf) = unsafe { (BorrowedFd::borrow_raw(fd), spare(ptr, len)) };
        Ok(rustix::io::read(fd, buf)?.0.len())
    }

    /// `write(fd, ptr, len)`.
    ///
    /// # Safety
    ///
    /// As [`send`].
    pub(crate) unsafe fn write(fd: RawFd, ptr: *const u8, len: usize) -> io::Result<usize> {
        // SAFETY: the caller's contract.
        let (fd, buf) = unsafe { (BorrowedFd::borrow_raw(fd), filled(ptr, len)) };
        Ok(rustix::io::write(fd, buf)?)
    }
}

pub(crate) fn cvt(r: isize) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}
