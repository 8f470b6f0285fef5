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
//! then discarded with the buffer, and a dropped `send` may have sent them
//! (or send them later, after a send that started after it: the kernel
//! finishes it when the socket has room, and cancels it only if it has
//! not started).
//! (Stream sockets can read losslessly through the driver's receive queue
//! instead, where it has one:
//! [`RegisteredFd::poll_recv`](crate::driver::RegisteredFd::poll_recv); coro-net's
//! streams do.) On epoll a dropped op never transferred anything (the syscall runs inside
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
    Accept, AcceptFd, AcceptInbox, Connect, InboxWait, PollFd, Recv, RecvFrom, RecvMeta, RecvMsg,
    Send, SendTo, accept, accept_fd, accept_fd_keeping, accept_keeping, connect, poll_fd, recv,
    recv_from, recv_from_any, recv_msg, recv_stream, send, send_to,
};

pub(crate) use file::file_size;
pub(crate) use net::poll_now;

use std::borrow::Borrow;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::driver::{Backend, Handle};
pub(crate) use crate::driver::{BlockingOps, Held, OpState, PendingOps};
pub use crate::driver::{Op, OpKind};

/// A pending I/O operation. Resolves to `T::Output`.
///
/// # Cancel safety
///
/// Dropping it is memory safe (the driver keeps the op's buffers until the
/// kernel lets go) but may lose data on io_uring; see the [module docs](self).
///
/// Leaking it instead (`mem::forget`, a reference cycle) once polled is
/// memory safe too (its buffers are leaked with it), but on io_uring its
/// entry may still be waiting in memory to be submitted: if the fd is then
/// closed and its number reused, the op runs on the new file (a leaked
/// receive takes the next socket's bytes, a leaked send writes to it).
/// Dropping the future is what takes a waiting entry back.
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
    /// Runs again after `EAGAIN` so far (see `poll`).
    would_block: u16,
    /// Runs again after `EINTR` so far (see `poll`).
    interrupted: u16,
}

// The op is never pinned: a readiness driver's syscalls hold no pointer
// into it past one `poll`, and a completion driver moves it to the heap
// before the kernel sees it. So the future may move whatever `T` is.
impl<T: Op, H: Borrow<Handle> + Unpin> Unpin for OpFuture<T, H> {}

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
                op: Some(Held::Here(op)),
                token: 0,
                blocking: None,
                cancel: false,
            },
            done: false,
            counted: false,
            would_block: 0,
            interrupted: 0,
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
            op.get_mut().keep(owner);
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
    /// the end regardless, and so does a [`close`] (the fd is closed once
    /// either way).
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
        // A close is not called off: taken back while staged, it would
        // leave the fd neither closed nor owned by anyone.
        if this.done || this.state.cancel || T::KIND == OpKind::Close {
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
            let res = Err(io::Error::from_raw_os_error(libc::ECANCELED));
            return Poll::Ready(op.into_inner().complete(res));
        }
        // The task completed its budget of ops in this poll: let the
        // others on its thread run first (nothing was started). Not an op
        // that must finish once polled (a `File`'s write or sync): its
        // caller may drop it after this one poll (a write-behind does),
        // and one never started would then never run. Its completion
        // still counts against the budget.
        let must_start = this.state.token == 0
            && this.state.blocking.is_none()
            && !this.counted
            && this
                .state
                .op
                .as_mut()
                .is_some_and(|op| op.get_mut().finish_if_dropped());
        if !must_start {
            std::task::ready!(crate::coop::poll_proceed(cx));
        }
        // `EINTR`/`EAGAIN` reaching this level did nothing (drivers return
        // them only from syscalls that transferred no data): run the op
        // again, a bounded number of times over the future's life, instead
        // of failing the caller. Over its life, not per poll: a
        // blocking-pool op on an `O_NONBLOCK` FIFO fails with `EAGAIN`
        // every time (and a FUSE file system may answer `EINTR` every
        // time), and counted per poll it would be resubmitted for ever, a
        // core busy until data came. `EAGAIN` 16 times (it then ends with
        // `WouldBlock`); `EINTR` 1,024 (a signal handler without
        // `SA_RESTART` interrupts a long wait once per signal).
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
                    if T::RESTARTABLE && !this.state.cancel && crate::driver::nothing_moved(&e) =>
                {
                    let (count, cap) = if e.kind() == io::ErrorKind::Interrupted {
                        (&mut this.interrupted, 1024)
                    } else {
                        (&mut this.would_block, 16)
                    };
                    if *count >= cap {
                        break Poll::Ready(Err(e));
                    }
                    *count += 1;
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
                crate::coop::consume();
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
                Poll::Ready(op.into_inner().complete(res))
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

/// The most bytes one entry asks the kernel to move (Linux's
/// `MAX_RW_COUNT`, which it caps a read or write at anyway): an entry's
/// length is a `u32` and its result an `i32`, and a `MSG_WAITALL` send
/// sums its rounds into that result, so more than 2 GiB would come back
/// as a negative "error". A larger buffer is moved in more than one op.
pub(crate) const MAX_ENTRY_LEN: usize = 0x7fff_f000;

/// The length field of an entry for a buffer of `len` bytes (see
/// [`MAX_ENTRY_LEN`]).
#[inline]
pub(crate) fn entry_len(len: usize) -> u32 {
    len.min(MAX_ENTRY_LEN) as u32
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

    /// `recv(fd, ptr, len, 0)`, with `MSG_DONTWAIT` if `dont_wait` (for
    /// a socket that may be in blocking mode).
    ///
    /// # Safety
    ///
    /// `fd` stays open during the call; `ptr` is valid for writes of `len`
    /// bytes.
    pub(crate) unsafe fn recv(
        fd: RawFd,
        ptr: *mut u8,
        len: usize,
        dont_wait: bool,
    ) -> io::Result<usize> {
        let flags = if dont_wait {
            RecvFlags::DONTWAIT
        } else {
            RecvFlags::empty()
        };
        // SAFETY: the caller's contract.
        let (fd, buf) = unsafe { (BorrowedFd::borrow_raw(fd), spare(ptr, len)) };
        Ok(rustix::net::recv(fd, buf, flags)?.0.0.len())
    }

    /// `send(fd, ptr, len, MSG_NOSIGNAL)`, with `MSG_DONTWAIT` if
    /// `dont_wait` (for a socket that may be in blocking mode).
    ///
    /// # Safety
    ///
    /// `fd` stays open during the call; `ptr` is valid for reads of `len`
    /// initialised bytes.
    pub(crate) unsafe fn send(
        fd: RawFd,
        ptr: *const u8,
        len: usize,
        dont_wait: bool,
    ) -> io::Result<usize> {
        // SAFETY: the caller's contract.
        let (fd, buf) = unsafe { (BorrowedFd::borrow_raw(fd), filled(ptr, len)) };
        let mut flags = SendFlags::NOSIGNAL;
        if dont_wait {
            flags |= SendFlags::DONTWAIT;
        }
        Ok(rustix::net::send(fd, buf, flags)?)
    }

    /// `sendmsg(fd, bufs, MSG_NOSIGNAL)`: the buffers in order, no address,
    /// no control data; of more than `IOV_MAX` (1024, Linux's
    /// `UIO_MAXIOV`) buffers the first 1024 (more would fail with
    /// `EMSGSIZE`; the count sent tells the caller where to go on, as
    /// for `writev`).
    pub(crate) fn sendmsg(fd: RawFd, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let bufs = &bufs[..bufs.len().min(1024)];
        // SAFETY: the borrow lives for this one syscall, and the kernel
        // checks the number: a closed fd fails with EBADF, touching no
        // memory of ours but `bufs`, which are borrowed for the call. The
        // caller sends through the `RegisteredFd` that owns `fd`.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let mut control = rustix::net::SendAncillaryBuffer::default();
        Ok(rustix::net::sendmsg(
            fd,
            bufs,
            &mut control,
            SendFlags::NOSIGNAL,
        )?)
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
