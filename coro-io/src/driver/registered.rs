//! [`RegisteredFd`]: an fd together with the driver its ops run on, so
//! that whoever owns the fd also owns the end of its registration.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::task::{Context, Poll};

use super::recv_queue::{BUF_SIZE as RECV_BUF_SIZE, Leased, RecvOut, finish_buf};
use super::{Backend, Handle, RecvLease};
use crate::buf::IoBufMut;

/// An fd that one driver runs ops on, owned with that driver: dropping it
/// drops the driver's readiness registration of the fd, then closes it
/// ([`Handle::close_fd`]: at once, but on io_uring when a held-up event
/// loop or a lagging SQ thread has not submitted its receive's entry yet:
/// the drop waits up to a second for that, and past it the driver closes
/// the fd itself once the kernel has read the entry).
///
/// The order matters on epoll, whose table is keyed by fd number: a
/// registration that outlived its fd would be taken for the next fd the
/// process opens with the same number. Own every fd you run ops on this
/// way; call [`Handle::release_fd`] yourself only for an fd that someone
/// else owns and closes (a C library's).
///
/// # Many waiters on one fd
///
/// The tasks waiting on one fd for one direction (readers of one socket,
/// say) are kept in a list that also keeps the wakers of reads dropped
/// while waiting; a full list is let go of (its tasks poll again) and
/// grows, up to 1,024. More live waiters than that on one fd evict each
/// other without end while the fd is idle: a core busy with nothing to
/// do. Keep fewer (one task that reads and hands out the work, as a
/// server's accept loop does).
///
/// # Examples
///
/// ```
/// use coro_io::driver::{Handle, RegisteredFd};
/// use coro_io::{op, DriverKind};
///
/// let h = Handle::new(DriverKind::Epoll)?;
/// let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::NONBLOCK)?;
/// let (r, w) = (RegisteredFd::new(&h, r), RegisteredFd::new(&h, w));
/// let (res, _) = futures::executor::block_on(op::write(&h, w.raw(), b"hi".as_slice()));
/// assert_eq!(res?, 2);
/// let (res, buf) = futures::executor::block_on(op::read(&h, r.raw(), Vec::with_capacity(8)));
/// assert_eq!((res?, buf.as_slice()), (2, b"hi".as_slice()));
/// drop(r); // unregistered, then closed
/// futures::executor::block_on(w.close())?;
/// # std::io::Result::Ok(())
/// ```
pub struct RegisteredFd {
    /// `Some` until `into_fd` or `close` takes it (both consume `self`).
    fd: Option<OwnedFd>,
    driver: Handle,
}

impl fmt::Debug for RegisteredFd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisteredFd")
            .field("fd", &self.raw())
            .field("driver", &self.driver.kind())
            .finish()
    }
}

impl RegisteredFd {
    /// Own `fd` for ops on `driver`.
    pub fn new(driver: &Handle, fd: OwnedFd) -> RegisteredFd {
        RegisteredFd {
            fd: Some(fd),
            driver: driver.clone(),
        }
    }

    /// The driver its ops run on.
    pub fn driver(&self) -> &Handle {
        &self.driver
    }

    /// The fd number, for building ops.
    pub fn raw(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, |f| f.as_raw_fd())
    }

    /// Whether [`poll_recv`](RegisteredFd::poll_recv) and
    /// [`poll_peek`](RegisteredFd::poll_peek) read this fd (a connected
    /// stream socket) on its driver: io_uring with multishot receive
    /// ([`UringOptions::multishot_recv`](crate::UringOptions::multishot_recv)).
    /// Elsewhere, read with an op ([`op::recv_stream`](crate::op::recv_stream)).
    pub fn recv_queued(&self) -> bool {
        self.driver.inner.recv_queue()
    }

    /// Read from the connected stream socket into `out` through the
    /// driver's receive queue (only where
    /// [`recv_queued`](RegisteredFd::recv_queued)): `Ok(n)` bytes, `Ok(0)`
    /// at the end of the stream (or for an empty `out`), `Pending` until
    /// bytes arrive.
    ///
    /// Once used, every read of the fd must go through it (the queue holds
    /// bytes the socket no longer has); the queue and what is in it end
    /// with the registration (drop, [`into_fd`](RegisteredFd::into_fd),
    /// [`close`](RegisteredFd::close)).
    ///
    /// # Cancel safety
    ///
    /// Lossless: nothing is in flight on the caller's behalf between polls;
    /// received bytes wait in the queue for the next read.
    ///
    /// # Errors
    ///
    /// The socket's error (after the bytes received before it),
    /// `Unsupported` where there is no queue, and the driver's shut-down
    /// error.
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_io::driver::{Handle, RegisteredFd};
    /// use coro_io::DriverKind;
    /// use std::io::Write;
    /// use std::os::unix::net::UnixStream;
    ///
    /// let h = Handle::new(DriverKind::Auto)?;
    /// let (a, mut b) = UnixStream::pair()?;
    /// a.set_nonblocking(true)?;
    /// let a = RegisteredFd::new(&h, a.into());
    /// if a.recv_queued() {
    ///     b.write_all(b"hi")?;
    ///     let mut out = [0u8; 8];
    ///     let n = futures::executor::block_on(std::future::poll_fn(|cx| {
    ///         let r = a.poll_recv(cx, &mut out);
    ///         if r.is_pending() {
    ///             h.park(Some(std::time::Duration::from_millis(1))).unwrap();
    ///             cx.waker().wake_by_ref();
    ///         }
    ///         r
    ///     }))?;
    ///     assert_eq!(&out[..n], b"hi");
    /// }
    /// # std::io::Result::Ok(())
    /// ```
    pub fn poll_recv(&self, cx: &mut Context<'_>, out: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut out = RecvOut::slice(out);
        self.poll_queue(cx, &mut out, false)
    }

    fn poll_queue(
        &self,
        cx: &mut Context<'_>,
        out: &mut RecvOut<'_>,
        peek: bool,
    ) -> Poll<io::Result<usize>> {
        // Queued bytes make a read complete at once: count it against the
        // task's budget (see `coop`) like an op.
        std::task::ready!(crate::coop::poll_proceed(cx));
        let r = self.driver.inner.poll_recv(self.raw(), cx, out, peek);
        if r.is_ready() {
            crate::coop::consume();
        }
        r
    }

    /// [`poll_recv`](RegisteredFd::poll_recv) into an owned buffer, from
    /// its start up to its capacity, as [`op::recv`](crate::op::recv)
    /// fills it (a `Vec`'s length becomes the bytes read).
    ///
    /// # Cancel safety
    ///
    /// As [`poll_recv`](RegisteredFd::poll_recv): lossless.
    ///
    /// # Errors
    ///
    /// As [`poll_recv`](RegisteredFd::poll_recv).
    pub fn poll_recv_buf<B: IoBufMut>(
        &self,
        cx: &mut Context<'_>,
        buf: &mut B,
        peek: bool,
    ) -> Poll<io::Result<usize>> {
        let mut out = RecvOut::buf(buf);
        let r = self.poll_queue(cx, &mut out, peek);
        if let Poll::Ready(Ok(n)) = r {
            finish_buf(buf, n);
        }
        r
    }

    /// Whether [`poll_read_direct`](RegisteredFd::poll_read_direct) and
    /// [`poll_write_direct`](RegisteredFd::poll_write_direct) work on this
    /// fd's driver: epoll, whose stream reads and sends are non-blocking
    /// syscalls made when the fd is ready. On io_uring a stream read is
    /// the receive queue ([`recv_queued`](RegisteredFd::recv_queued)) or
    /// an op, and a send an op.
    pub fn direct_io(&self) -> bool {
        self.epoll().is_some()
    }

    fn epoll(&self) -> Option<&super::epoll::EpollDriver> {
        match &**self.driver.inner {
            super::AnyDriver::Epoll(d) => Some(d),
            super::AnyDriver::Uring(_) => None,
        }
    }

    /// Read from the connected stream socket into `buf` (from its start up
    /// to its capacity, as [`op::recv`](crate::op::recv) fills it) with a
    /// non-blocking `recv(2)`, `Pending` until the fd is readable. Only
    /// where [`direct_io`](RegisteredFd::direct_io); elsewhere
    /// `Unsupported`. It is the receive op without the op: cheaper per
    /// read, for a stream's hot path. A buffer without capacity reads
    /// nothing: `Ok(0)` at once, as the syscall answers (check for it if
    /// `Ok(0)` must mean the end of the stream).
    ///
    /// `short_read_drains`: whether a read that returns fewer bytes than
    /// asked has emptied the socket, so that the next read waits for
    /// readiness without a syscall that would only say `EAGAIN`. True for
    /// TCP. False for Unix stream sockets: their reads also stop short at
    /// a message that carries fds or credentials, with more bytes queued
    /// behind it (as [`op::Recv::unix_stream`](crate::op::Recv::unix_stream)).
    ///
    /// # Cancel safety
    ///
    /// Lossless: a poll that returns `Pending` has read nothing, and
    /// nothing is in flight between polls.
    ///
    /// # Errors
    ///
    /// The socket's error, and the driver's shut-down error when it must
    /// wait after shutdown.
    pub fn poll_read_direct<B: IoBufMut>(
        &self,
        cx: &mut Context<'_>,
        buf: &mut B,
        short_read_drains: bool,
    ) -> Poll<io::Result<usize>> {
        let r = self.poll_direct(cx, |d, cx| {
            d.poll_read_direct(self.raw(), cx, &mut RecvOut::buf(buf), short_read_drains)
        });
        if let Poll::Ready(Ok(n)) = r {
            finish_buf(buf, n);
        }
        r
    }

    /// A direct syscall through the epoll driver's readiness loop (`io`),
    /// counted against the task's budget like any op (see `coop`);
    /// `Unsupported` where there is no epoll driver.
    #[inline]
    fn poll_direct(
        &self,
        cx: &mut Context<'_>,
        io: impl FnOnce(&super::epoll::EpollDriver, &mut Context<'_>) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        let Some(d) = self.epoll() else {
            return Poll::Ready(Err(no_direct_io()));
        };
        std::task::ready!(crate::coop::poll_proceed(cx));
        let r = io(d, cx);
        if r.is_ready() {
            crate::coop::consume();
        }
        r
    }

    /// Send `buf` (or its first part: the count is returned) on the
    /// connected stream socket with a non-blocking `send(2)`
    /// (`MSG_NOSIGNAL`), `Pending` until the fd is writable. Only where
    /// [`direct_io`](RegisteredFd::direct_io); elsewhere `Unsupported`.
    /// The send op without the op.
    ///
    /// # Cancel safety
    ///
    /// A poll that returns `Pending` has sent nothing, and nothing is in
    /// flight between polls.
    ///
    /// # Errors
    ///
    /// As [`poll_read_direct`](RegisteredFd::poll_read_direct);
    /// `BrokenPipe` once the peer is gone.
    pub fn poll_write_direct(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_direct(cx, |d, cx| d.poll_send_direct(self.raw(), cx, buf))
    }

    /// [`poll_write_direct`](RegisteredFd::poll_write_direct) of several
    /// buffers in order, in one `sendmsg(2)` (of more than `IOV_MAX`,
    /// 1024, the first 1024; the count sent is returned, as for `writev`,
    /// and may end inside any of them). For a caller whose bytes lie in pieces (a TLS stack's
    /// queued records), so that they leave in one syscall without being
    /// copied together first.
    ///
    /// # Cancel safety
    ///
    /// As [`poll_write_direct`](RegisteredFd::poll_write_direct): a poll
    /// that returns `Pending` has sent nothing.
    ///
    /// # Errors
    ///
    /// As [`poll_write_direct`](RegisteredFd::poll_write_direct).
    pub fn poll_write_vectored_direct(
        &self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_direct(cx, |d, cx| {
            d.poll_send_vectored_direct(self.raw(), cx, bufs)
        })
    }

    /// [`poll_recv`](RegisteredFd::poll_recv) without taking the bytes:
    /// the next read gets them again (`MSG_PEEK`). It sees what the queue
    /// holds and, while the queue is not receiving (it stops at 256 KiB
    /// until read, or its ring ran dry), what the socket holds after it:
    /// a peek loop waiting for more sees it come.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a peek consumes nothing.
    ///
    /// # Errors
    ///
    /// As [`poll_recv`](RegisteredFd::poll_recv).
    pub fn poll_peek(&self, cx: &mut Context<'_>, out: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut out = RecvOut::slice(out);
        self.poll_queue(cx, &mut out, true)
    }

    /// Read from the connected stream socket through the driver's receive
    /// queue (only where [`recv_queued`](RegisteredFd::recv_queued))
    /// without copying: the lease holds the next bytes received (at most
    /// one provided buffer's worth, 16 KiB) in the buffer the kernel put
    /// them in, which goes back to the kernel's ring when the lease is
    /// dropped. Empty at the end of the stream. When the ring ran dry for
    /// this socket (or the kernel refused it a multishot receive) and it is
    /// read directly for a while, the lease holds up to `direct_len` (at
    /// least 1, at most 16 KiB) bytes read into a `Vec`.
    ///
    /// # Cancel safety
    ///
    /// Lossless, as [`poll_recv`](RegisteredFd::poll_recv): nothing is in
    /// flight on the caller's behalf between polls.
    ///
    /// # Errors
    ///
    /// As [`poll_recv`](RegisteredFd::poll_recv).
    pub fn poll_recv_lease(
        &self,
        cx: &mut Context<'_>,
        direct_len: usize,
    ) -> Poll<io::Result<RecvLease>> {
        // Counted against the task's budget like any read (see `coop`).
        std::task::ready!(crate::coop::poll_proceed(cx));
        let r = match self.driver.inner.poll_recv_lease(self.raw(), cx) {
            Poll::Ready(Ok(Leased::Buf {
                home,
                bid,
                ptr,
                len,
            })) => {
                // The driver took these `len` bytes of buffer `bid` off the
                // queue for us; the buffer is out of the ring until the
                // lease gives it back.
                Poll::Ready(Ok(RecvLease::ring(home, bid, ptr, len)))
            }
            Poll::Ready(Ok(Leased::End)) => Poll::Ready(Ok(RecvLease::from(Vec::new()))),
            Poll::Ready(Ok(Leased::Direct)) => {
                // At most one provided buffer's worth, as a lease from the
                // ring would hold (and no huge allocation per poll).
                let mut v = Vec::with_capacity(direct_len.clamp(1, RECV_BUF_SIZE));
                let mut out = RecvOut::buf(&mut v);
                match self.driver.inner.poll_recv(self.raw(), cx, &mut out, false) {
                    Poll::Ready(Ok(n)) => {
                        finish_buf(&mut v, n);
                        Poll::Ready(Ok(RecvLease::from(v)))
                    }
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    Poll::Pending => Poll::Pending,
                }
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        };
        if r.is_ready() {
            crate::coop::consume();
        }
        r
    }

    /// Give the fd up, unregistered: the caller owns it again (bytes in
    /// its receive queue, if it has one, are dropped).
    pub fn into_fd(mut self) -> OwnedFd {
        let fd = self
            .fd
            .take()
            .expect("RegisteredFd holds its fd until consumed");
        self.driver.inner.detach_fd(fd.as_raw_fd());
        fd
    }

    /// Bytes the receive queue holds that no read took yet (0 without a
    /// queue). [`into_fd`](RegisteredFd::into_fd) and drop discard them.
    pub fn recv_buffered(&self) -> usize {
        self.driver.inner.recv_buffered(self.raw()).unwrap_or(0)
    }

    /// Whether a read went through the receive queue already (from then
    /// on the queue, not the socket, holds what arrives: a kernel poll of
    /// the fd no longer tells whether a read would return).
    pub fn recv_started(&self) -> bool {
        self.driver.inner.recv_buffered(self.raw()).is_some()
    }

    /// Close it through the driver (which drops the registration first),
    /// reporting the error `close(2)` gives.
    ///
    /// # Cancel safety
    ///
    /// The fd is closed either way: dropped before it completes, the close
    /// still happens (see [`op::close`](crate::op::close)).
    pub async fn close(mut self) -> io::Result<()> {
        if let Some(fd) = &self.fd {
            self.driver.release_fd(fd.as_raw_fd());
        }
        match self.fd.take() {
            Some(fd) => crate::op::close(&self.driver, fd).await,
            None => Ok(()),
        }
    }
}

impl AsFd for RegisteredFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd
            .as_ref()
            .expect("RegisteredFd holds its fd until consumed")
            .as_fd()
    }
}

impl AsRawFd for RegisteredFd {
    fn as_raw_fd(&self) -> RawFd {
        self.raw()
    }
}

impl Drop for RegisteredFd {
    fn drop(&mut self) {
        if let Some(fd) = self.fd.take() {
            // The driver closes it: on io_uring, not before the kernel has
            // read the entry of its receive, if one was waiting to be.
            self.driver.close_fd(fd);
        }
    }
}

fn no_direct_io() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "this driver does not read or send on stream sockets directly (see RegisteredFd::direct_io)",
    )
}
