//! Unix-domain sockets: streams ([`UnixListener`], [`UnixStream`], with the
//! same API as [`tcp`](crate::tcp)) and datagrams ([`UnixDatagram`], as
//! [`udp`](crate::udp)).
//!
//! # Examples
//!
//! ```
//! use coro_net::unix::{UnixListener, UnixStream};
//!
//! let sched = coro_io::IoScheduler::new(Default::default())?;
//! let path = std::env::temp_dir().join(format!("coro-net-doc-{}.sock", std::process::id()));
//! let _ = std::fs::remove_file(&path);
//! let listener = UnixListener::bind(&sched, &path)?;
//! let s = sched.clone();
//! let p = path.clone();
//! let got = coro_core::sync_wait(sched.spawn(async move {
//!     let client = UnixStream::connect(&s, &p).await?;
//!     let (conn, _) = listener.accept().await?;
//!     client.write_all(b"hi".as_slice()).await.0?;
//!     let (n, buf) = conn.read(Vec::with_capacity(8)).await;
//!     n?;
//!     std::io::Result::Ok(buf)
//! }))
//! .unwrap()?;
//! assert_eq!(got, b"hi");
//! std::fs::remove_file(&path)?;
//! # std::io::Result::Ok(())
//! ```

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use coro_io::buf::{BufResult, IoBuf, IoBufMut};
use coro_io::{IoScheduler, PollOp, PollStatus, op};
use socket2::{Domain, SockAddr, Type};

mod datagram;
pub use datagram::UnixDatagram;

use crate::socket::{AcceptBackoff, Socket, Stream, context, impl_futures_io};
use crate::tcp::ListenOptions;

/// A Unix-domain listening socket on an [`IoScheduler`].
///
/// The socket file is not removed on drop (as with `std`).
pub struct UnixListener {
    sock: Socket,
    backoff: AcceptBackoff,
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("fd", &self.sock.raw())
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}

/// The address of the socket at `path`: a file, or with a leading NUL
/// byte a Linux abstract name (as socket2 encodes it; `recv_from` reports
/// such peers, and replies go back this way). A NUL byte further on in a
/// file path is refused: the kernel reads a file path up to the first
/// one, so `"a\0b"` would name `a` without an error. An abstract name is
/// bytes of a given length, NULs included.
pub(crate) fn path_sockaddr(path: &Path) -> io::Result<SockAddr> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    if bytes.first() != Some(&0) && bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "Unix socket paths must not contain NUL bytes (but for a leading one: an abstract name)",
        ));
    }
    SockAddr::unix(path)
}

impl UnixListener {
    /// Create a socket at `path`, bind and listen (backlog 1024). Synchronous.
    ///
    /// # Errors
    ///
    /// `AddrInUse` if the file exists (remove a stale one first),
    /// `InvalidInput` for a file path with a NUL byte (a leading one
    /// names an abstract socket, whose name may hold more), and the other
    /// `bind`/`listen` errors, naming the path.
    pub fn bind(sched: &IoScheduler, path: impl AsRef<Path>) -> io::Result<UnixListener> {
        UnixListener::bind_with(sched, path, ListenOptions::default())
    }

    /// [`bind`](Self::bind) with options (only `backlog` applies here).
    ///
    /// # Errors
    ///
    /// As for [`bind`](Self::bind).
    pub fn bind_with(
        sched: &IoScheduler,
        path: impl AsRef<Path>,
        opts: ListenOptions,
    ) -> io::Result<UnixListener> {
        let path = path.as_ref();
        let backlog = i32::try_from(opts.backlog).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "listen backlog is too large")
        })?;
        let r = (|| {
            let s = socket2::Socket::new(Domain::UNIX, Type::STREAM.nonblocking(), None)?;
            s.bind(&path_sockaddr(path)?)?;
            s.listen(backlog)?;
            io::Result::Ok(s)
        })();
        let s = r.map_err(|e| context(e, format_args!("bind/listen on {}", path.display())))?;
        Ok(UnixListener {
            sock: Socket::new(sched, s.into()),
            backoff: AcceptBackoff::default(),
        })
    }

    /// Adopt a listening `std` socket (made non-blocking here).
    ///
    /// # Errors
    ///
    /// If it cannot be made non-blocking.
    pub fn from_std(
        sched: &IoScheduler,
        l: std::os::unix::net::UnixListener,
    ) -> io::Result<UnixListener> {
        l.set_nonblocking(true)?;
        let sock = Socket::new(sched, l.into());
        crate::socket::check_listener(&sock)?;
        Ok(UnixListener {
            sock,
            backoff: AcceptBackoff::default(),
        })
    }

    /// Wait for a connection and accept it; as robust as
    /// [`TcpListener::accept`](crate::tcp::TcpListener::accept) (aborted
    /// connections skipped, fd exhaustion paused on and retried). A
    /// connection already waiting is taken at once, by a non-blocking
    /// `accept4(2)` in the poll, on both drivers (on io_uring always
    /// tried first: the kernel does not say whether more Unix clients
    /// wait; except on SQPOLL rings), so the socket must stay non-blocking.
    ///
    /// # Errors
    ///
    /// Only errors about the listener itself.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a connection accepted for a dropped future (io_uring)
    /// is kept for the next `accept`, as for `TcpListener`.
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let inbox = self.backoff.inbox();
        let what = ListenerName(self);
        let fd = match inbox.take() {
            Some(fd) => {
                self.backoff.succeeded();
                fd
            }
            None => {
                let accept = self.backoff.run(&self.sock, &what, || {
                    op::accept_fd_keeping(self.sock.driver(), self.sock.raw(), inbox)
                });
                // Also ready when a dropped accept's connection lands in
                // the inbox meanwhile (see `TcpListener::accept`).
                match crate::socket::or_inbox(accept, inbox).await {
                    Ok(r) => r?,
                    Err(fd) => {
                        self.backoff.succeeded();
                        fd
                    }
                }
            }
        };
        let stream = UnixStream::from_fd(self.sock.sched(), fd);
        // The connection is ours now: an address we cannot express does
        // not cost it (see `peer_of`).
        let peer = peer_of(stream.inner.sock.sock_ref().peer_addr())?;
        Ok((stream, peer))
    }

    /// Wait until a connection is ready to accept, at most `timeout`
    /// (also one a dropped accept left for the next).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn poll(&self, timeout: Option<Duration>) -> PollStatus {
        if !self.backoff.inbox().is_empty() {
            return PollStatus::Event;
        }
        self.sock.poll(PollOp::Read, timeout).await
    }

    /// The address this listener is bound to.
    ///
    /// # Errors
    ///
    /// From `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        unix_addr(self.sock.sock_ref().local_addr()?)
    }

    /// Close through the driver, reporting `close(2)`'s error.
    ///
    /// # Errors
    ///
    /// What `close(2)` reports.
    ///
    /// # Cancel safety
    ///
    /// The fd is closed exactly once whether or not this future is dropped.
    pub async fn close(self) -> io::Result<()> {
        self.sock.close().await
    }
}

impl AsFd for UnixListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.fd()
    }
}

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.raw()
    }
}

/// A connected Unix-domain stream socket on an [`IoScheduler`]; the same
/// I/O API as [`TcpStream`](crate::tcp::TcpStream) (owned buffers and the
/// `futures_io` traits, with the same cancel-safety rules).
pub struct UnixStream {
    pub(crate) inner: Stream,
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream")
            .field("fd", &self.inner.sock.raw())
            .finish()
    }
}

/// First and longest pause while a listener's backlog is full.
const CONNECT_RETRY_MIN: Duration = Duration::from_millis(1);
const CONNECT_RETRY_MAX: Duration = Duration::from_millis(50);

impl UnixStream {
    fn from_fd(sched: &IoScheduler, fd: OwnedFd) -> UnixStream {
        UnixStream {
            inner: Stream::new_unix(Socket::new(sched, fd)),
        }
    }

    /// Connect to the socket at `path`. A full listen backlog (`EAGAIN` on
    /// Unix sockets) is waited out with short sleeps on the scheduler.
    ///
    /// # Errors
    ///
    /// `NotFound` (no such socket file), `ConnectionRefused` (nobody
    /// listens), `InvalidInput` (a file path with a NUL byte; see
    /// [`UnixListener::bind`]), naming the path; an error when the
    /// listener's backlog is full and the scheduler has shut down (the
    /// connect retries after a pause while the backlog is full).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped connect closes its socket.
    pub async fn connect(sched: &IoScheduler, path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let path = path.as_ref();
        let ctx = |e| context(e, format_args!("connect to {}", path.display()));
        let addr = path_sockaddr(path).map_err(ctx)?;
        let s =
            socket2::Socket::new(Domain::UNIX, Type::STREAM.nonblocking(), None).map_err(ctx)?;
        let stream = UnixStream::from_fd(sched, s.into());
        let mut pause = CONNECT_RETRY_MIN;
        loop {
            match stream.inner.sock.sock_ref().connect(&addr) {
                Ok(()) => return Ok(stream),
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                    stream.inner.sock.retry_pause(pause).await.map_err(ctx)?;
                    pause = (pause * 2).min(CONNECT_RETRY_MAX);
                }
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
                    stream.poll(PollOp::Write, None).await;
                    return match stream.inner.sock.sock_ref().take_error() {
                        Ok(None) => Ok(stream),
                        Ok(Some(e)) | Err(e) => Err(ctx(e)),
                    };
                }
                Err(e) => return Err(ctx(e)),
            }
        }
    }

    /// A connected pair (`socketpair(2)`), both on `sched`.
    ///
    /// # Errors
    ///
    /// From `socketpair`.
    pub fn pair(sched: &IoScheduler) -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = socket2::Socket::pair(Domain::UNIX, Type::STREAM.nonblocking(), None)?;
        Ok((
            UnixStream::from_fd(sched, a.into()),
            UnixStream::from_fd(sched, b.into()),
        ))
    }

    /// Adopt a connected `std` stream (made non-blocking here).
    ///
    /// # Errors
    ///
    /// If it cannot be made non-blocking.
    pub fn from_std(
        sched: &IoScheduler,
        s: std::os::unix::net::UnixStream,
    ) -> io::Result<UnixStream> {
        s.set_nonblocking(true)?;
        Ok(UnixStream::from_fd(sched, s.into()))
    }

    /// Receive into `buf`; `Ok(0)` is end of stream.
    ///
    /// # Cancel safety
    ///
    /// As [`TcpStream::read`](crate::tcp::TcpStream::read): lossless on
    /// epoll and on io_uring with its receive queue (the default on Linux
    /// 6.0+); bytes may be lost if dropped where io_uring runs one receive
    /// op per read.
    // Not an `async fn`: the stream's own future, without a layer around it.
    pub fn read<B: IoBufMut>(&self, buf: B) -> impl Future<Output = BufResult<usize, B>> + '_ {
        self.inner.read(buf)
    }

    /// Receive the next bytes without copying them where the driver can,
    /// as [`TcpStream::read_lease`](crate::tcp::TcpStream::read_lease): on
    /// io_uring with its receive queue the lease holds them in the kernel's
    /// own buffer; elsewhere in a `Vec` of up to `max` (at most 16 KiB) bytes. Empty at the
    /// end of the stream.
    ///
    /// # Cancel safety
    ///
    /// As [`read`](Self::read).
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read).
    pub async fn read_lease(&self, max: usize) -> io::Result<coro_io::buf::RecvLease> {
        self.inner.read_lease(max).await
    }

    /// [`read`](Self::read) with a deadline, losslessly, as
    /// [`TcpStream::read_timeout`](crate::tcp::TcpStream::read_timeout):
    /// `(Err(TimedOut), buf)` when it passes, and data that arrived
    /// meanwhile is returned, not dropped.
    ///
    /// # Cancel safety
    ///
    /// The deadline is lossless; dropping the future is like dropping
    /// [`read`](Self::read).
    pub async fn read_timeout<B: IoBufMut>(
        &self,
        buf: B,
        timeout: Duration,
    ) -> BufResult<usize, B> {
        self.inner.read_timeout(buf, timeout).await
    }

    /// Send the initialised bytes of `buf`; may send fewer.
    ///
    /// # Cancel safety
    ///
    /// On io_uring a dropped write may still send.
    // Not an `async fn`: the stream's own future, without a layer around it.
    pub fn write<B: IoBuf>(&self, buf: B) -> impl Future<Output = BufResult<usize, B>> + '_ {
        self.inner.write(buf)
    }

    /// Send all of `buf`.
    ///
    /// # Errors
    ///
    /// The first send error (`EPIPE` when the peer is gone) or `WriteZero`.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a dropped `write_all` may have sent any prefix.
    // Not an `async fn`: the stream's own future, without a layer around it.
    pub fn write_all<B: IoBuf>(&self, buf: B) -> impl Future<Output = BufResult<(), B>> + '_ {
        self.inner.write_all(buf)
    }

    /// Wait until the stream is ready for `op`, at most `timeout`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn poll(&self, op: PollOp, timeout: Option<Duration>) -> PollStatus {
        self.inner.poll(op, timeout).await
    }

    /// Shut down one or both halves.
    ///
    /// # Errors
    ///
    /// `NotConnected` if the connection is gone; `WouldBlock` for the
    /// write side while bytes written through `AsyncWrite` are still being
    /// sent (flush first), as for `TcpStream::shutdown`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    /// The peer's address (usually unnamed for a connecting client).
    ///
    /// # Errors
    ///
    /// From `getpeername`.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        unix_addr(self.inner.sock.sock_ref().peer_addr()?)
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// From `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        unix_addr(self.inner.sock.sock_ref().local_addr()?)
    }

    /// `SO_RCVBUF`.
    ///
    /// # Errors
    ///
    /// From `setsockopt`.
    pub fn set_recv_buffer_size(&self, size: usize) -> io::Result<()> {
        self.inner
            .sock
            .sock_ref()
            .set_recv_buffer_size(crate::socket::clamp_size(size))
    }

    /// `SO_SNDBUF`.
    ///
    /// # Errors
    ///
    /// From `setsockopt`.
    pub fn set_send_buffer_size(&self, size: usize) -> io::Result<()> {
        self.inner
            .sock
            .sock_ref()
            .set_send_buffer_size(crate::socket::clamp_size(size))
    }

    /// Send what the `AsyncWrite` adapter accepted, then close through
    /// the driver (as [`TcpStream::close`](crate::tcp::TcpStream::close)).
    ///
    /// # Errors
    ///
    /// A send error of the accepted bytes, or what `close(2)` reports.
    ///
    /// # Cancel safety
    ///
    /// The fd is closed exactly once whether or not this future is dropped.
    pub async fn close(self) -> io::Result<()> {
        self.inner.close().await
    }
}

impl UnixStream {
    /// Split into a read half and a write half that two tasks can own
    /// (see [`split`](crate::split)); `&UnixStream` implements the same
    /// `futures_io` traits.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        crate::split::split(self)
    }
}

/// [`UnixStream::into_split`]'s read half.
pub type OwnedReadHalf = crate::split::OwnedReadHalf<UnixStream>;
/// [`UnixStream::into_split`]'s write half.
pub type OwnedWriteHalf = crate::split::OwnedWriteHalf<UnixStream>;

impl coro_io::copy::ReadOwned for UnixStream {
    fn read_owned<B: IoBufMut>(
        &self,
        buf: B,
    ) -> impl std::future::Future<Output = BufResult<usize, B>> + Send {
        self.read(buf)
    }
}

impl coro_io::copy::WriteOwned for UnixStream {
    fn write_all_owned<B: IoBuf>(
        &self,
        buf: B,
    ) -> impl std::future::Future<Output = BufResult<(), B>> + Send {
        self.write_all(buf)
    }
    async fn shutdown_write(&self) -> io::Result<()> {
        match self.inner.shutdown_write().await {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            r => r,
        }
    }
}

impl crate::split::Splittable for UnixStream {
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    fn shutdown_write_later(self: std::sync::Arc<Self>) -> bool {
        crate::socket::shutdown_write_later(self, |s| &s.inner)
    }
}

impl_futures_io!(UnixStream);

impl AsFd for UnixStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.sock.fd()
    }
}

impl AsRawFd for UnixStream {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.sock.raw()
    }
}

fn unix_addr(a: SockAddr) -> io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    if let Some(p) = a.as_pathname() {
        return SocketAddr::from_pathname(p);
    }
    if let Some(name) = a.as_abstract_namespace() {
        return SocketAddr::from_abstract_name(name);
    }
    if a.is_unnamed() {
        return unnamed();
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "not a Unix-domain address",
    ))
}

/// The address of a peer whose connection or datagram is already taken,
/// where an error would lose it. Where the address cannot be
/// expressed as a `SocketAddr` (a path of the full 108 bytes, which Linux
/// allows without a terminating NUL and std does not), or cannot be had,
/// it is reported as unnamed (made without a socket, so also when fds
/// have run out: see [`unnamed`]).
pub(crate) fn peer_of(a: io::Result<SockAddr>) -> io::Result<SocketAddr> {
    a.and_then(|a| {
        if a.len() == 0 {
            unnamed()
        } else {
            unix_addr(a)
        }
    })
    .or_else(|_| unnamed())
}

/// The unnamed address (an unbound socket's). `std` has no constructor
/// named for it, but an empty path makes it: an address of the family
/// alone, which is how Linux reports an unnamed socket. No socket is made
/// for it, so it is there when fds have run out, after an accept or a
/// receive took the last one (asking an unbound socket for its address
/// would then fail, losing the connection or datagram already taken).
fn unnamed() -> io::Result<SocketAddr> {
    SocketAddr::from_pathname("")
}

/// A listener's name in accept errors, asked of the kernel only when an
/// error is reported (not per accept).
struct ListenerName<'a>(&'a UnixListener);

impl fmt::Display for ListenerName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self
            .0
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(Path::to_owned))
        {
            Some(p) => write!(f, "{}", p.display()),
            None => f.write_str("a unix socket"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::linux::net::SocketAddrExt;

    #[test]
    fn the_unnamed_address_is_what_an_unbound_socket_reports() {
        let made = super::unnamed().unwrap();
        let real = std::os::unix::net::UnixDatagram::unbound()
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(made.is_unnamed() && real.is_unnamed());
        assert_eq!(made.as_pathname(), None);
        assert_eq!(made.as_abstract_name(), None);
        assert_eq!(format!("{made:?}"), format!("{real:?}"));
    }
}
