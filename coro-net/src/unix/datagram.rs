//! Unix-domain datagram sockets: [`UnixDatagram`].

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use coro_io::buf::{BufResult, IoBuf, IoBufMut, init_bytes};
use coro_io::{IoScheduler, PollOp, PollStatus, op};
use socket2::{Domain, SockAddr, Type};

use super::{peer_of, unix_addr, unnamed};
use crate::dgram::{self, ReadShut};
use crate::socket::{Socket, context};

/// A Unix-domain datagram socket (`SOCK_DGRAM`) on an [`IoScheduler`], with
/// owned-buffer I/O through the driver, as [`UdpSocket`](crate::udp::UdpSocket).
///
/// Datagrams keep their boundaries and, unlike UDP, are never dropped for
/// a full receiver: a send to a peer whose queue is full waits. A receive
/// buffer smaller than the datagram gets its head; the kernel discards the
/// rest. The socket file of [`bind`](Self::bind) is not removed on drop.
///
/// # Examples
///
/// ```
/// use coro_net::unix::UnixDatagram;
///
/// let sched = coro_io::IoScheduler::new(Default::default())?;
/// let dir = std::env::temp_dir().join(format!("coro-dgram-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let (server_path, client_path) = (dir.join("server"), dir.join("client"));
/// let server = UnixDatagram::bind(&sched, &server_path)?;
/// let client = UnixDatagram::bind(&sched, &client_path)?;
/// let (n, from, buf) = coro_core::sync_wait(sched.spawn(async move {
///     client.send_to(b"ping".as_slice(), &server_path).await.0?;
///     let (r, buf) = server.recv_from(Vec::with_capacity(64)).await;
///     let (n, from) = r?;
///     std::io::Result::Ok((n, from, buf))
/// }))
/// .unwrap()?;
/// assert_eq!((n, &buf[..]), (4, &b"ping"[..]));
/// assert_eq!(from.as_pathname(), Some(client_path.as_path()));
/// std::fs::remove_dir_all(&dir)?;
/// # std::io::Result::Ok(())
/// ```
pub struct UnixDatagram {
    sock: Socket,
    /// Set by [`shutdown`](Self::shutdown) of the read side: receives that
    /// would wait end with `Ok(0)` (see `crate::dgram`).
    read_shut: ReadShut,
}

/// No `SIGPIPE` for a send to a peer that is gone: an error instead.
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;

impl fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixDatagram")
            .field("fd", &self.sock.raw())
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}

fn new_socket() -> io::Result<socket2::Socket> {
    socket2::Socket::new(Domain::UNIX, Type::DGRAM.nonblocking(), None)
}

fn path_addr(path: &Path) -> io::Result<SockAddr> {
    super::path_sockaddr(path)
        .map_err(|e| context(e, format_args!("Unix address {}", path.display())))
}

impl UnixDatagram {
    fn from_socket(sched: &IoScheduler, s: socket2::Socket) -> UnixDatagram {
        UnixDatagram {
            sock: Socket::new(sched, s.into()),
            read_shut: ReadShut::default(),
        }
    }

    /// Create a socket bound to `path`. Synchronous.
    ///
    /// # Errors
    ///
    /// `AddrInUse` if the file exists (remove a stale one first),
    /// `InvalidInput` for a path too long for `sockaddr_un` or a file path
    /// with a NUL byte (a leading one names an abstract socket, whose name
    /// may hold more), and the other `bind` errors, naming the path.
    pub fn bind(sched: &IoScheduler, path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        let path = path.as_ref();
        let addr = path_addr(path)?;
        let s = new_socket().map_err(|e| context(e, "create Unix datagram socket"))?;
        s.bind(&addr)
            .map_err(|e| context(e, format_args!("bind {}", path.display())))?;
        Ok(UnixDatagram::from_socket(sched, s))
    }

    /// A socket with no address: it can send, and receive replies only
    /// once [`connect`](Self::connect)ed (an unbound sender cannot be
    /// answered by path).
    ///
    /// # Errors
    ///
    /// From `socket(2)`.
    pub fn unbound(sched: &IoScheduler) -> io::Result<UnixDatagram> {
        let s = new_socket().map_err(|e| context(e, "create Unix datagram socket"))?;
        Ok(UnixDatagram::from_socket(sched, s))
    }

    /// A connected pair (`socketpair(2)`), both on `sched`.
    ///
    /// # Errors
    ///
    /// From `socketpair`.
    pub fn pair(sched: &IoScheduler) -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = socket2::Socket::pair(Domain::UNIX, Type::DGRAM.nonblocking(), None)?;
        Ok((
            UnixDatagram::from_socket(sched, a),
            UnixDatagram::from_socket(sched, b),
        ))
    }

    /// Adopt a `std` socket (made non-blocking here), e.g. one bound to an
    /// abstract-namespace address with `std`'s `bind_addr`.
    ///
    /// # Errors
    ///
    /// If it cannot be made non-blocking.
    pub fn from_std(
        sched: &IoScheduler,
        s: std::os::unix::net::UnixDatagram,
    ) -> io::Result<UnixDatagram> {
        s.set_nonblocking(true)?;
        Ok(UnixDatagram {
            sock: Socket::new(sched, s.into()),
            read_shut: ReadShut::default(),
        })
    }

    /// Set the default peer: [`send`](Self::send) goes there and only its
    /// datagrams are received. Synchronous (a datagram connect does not
    /// wait for anyone).
    ///
    /// Unlike UDP's, a Unix datagram socket that connects to another peer
    /// than before has its whole receive queue discarded by the kernel
    /// (datagrams of any sender): read what is queued first.
    ///
    /// # Errors
    ///
    /// `NotFound` (no such socket file), `ConnectionRefused` (nobody is
    /// bound there), naming the path.
    pub fn connect(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let path = path.as_ref();
        let addr = path_addr(path)?;
        self.sock
            .sock_ref()
            .connect(&addr)
            .map_err(|e| context(e, format_args!("connect to {}", path.display())))
    }

    /// Send `buf` as one datagram to the socket at `path`, waiting while
    /// the receiver's queue is full.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a path too long for `sockaddr_un` or a file path
    /// with a NUL byte; from
    /// `sendto`: `NotFound` / `ConnectionRefused` when nobody is bound
    /// there, `EMSGSIZE` for a datagram larger than the send buffer; an
    /// error when it must wait for room after its scheduler shut down.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the datagram is sent whole inside one poll of the
    /// future or not at all (see [`send`](Self::send) for why this send
    /// never goes through the driver's owned-buffer op).
    pub async fn send_to<B: IoBuf>(&self, buf: B, path: impl AsRef<Path>) -> BufResult<usize, B> {
        let addr = match path_addr(path.as_ref()) {
            Ok(addr) => addr,
            Err(e) => return (Err(e), buf),
        };
        let sock = self.sock.sock_ref();
        let r = self
            .send_when_ready(|| sock.send_to_with_flags(init_bytes(&buf), &addr, SEND_FLAGS))
            .await;
        (r, buf)
    }

    /// Receive one datagram into `buf`; resolves to the bytes placed in the
    /// buffer (at most its capacity: the rest of a longer datagram is
    /// discarded unseen) and the sender's address (unnamed for an unbound
    /// sender). `Ok(0)` is an empty datagram, or, once the read side was
    /// [shut down](Self::shutdown) and the datagrams queued before were
    /// taken, the end (as a blocking std socket says it).
    ///
    /// # Cancel safety
    ///
    /// On io_uring a dropped `recv_from` may lose the datagram; to give up
    /// after a while without that risk, use
    /// [`recv_from_timeout`](Self::recv_from_timeout).
    pub async fn recv_from<B: IoBufMut>(&self, buf: B) -> BufResult<(usize, SocketAddr), B> {
        self.recv_from_until(buf, None).await
    }

    /// [`recv_from`](Self::recv_from) with a deadline, losslessly: at the
    /// deadline the receive is cancelled and its outcome awaited, so a
    /// datagram that arrived meanwhile is returned, not dropped. Times out
    /// with `(Err(TimedOut), buf)`.
    ///
    /// # Cancel safety
    ///
    /// The deadline is lossless; dropping the future itself is like
    /// dropping [`recv_from`](Self::recv_from).
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_net::unix::UnixDatagram;
    /// use std::time::Duration;
    ///
    /// let sched = coro_io::IoScheduler::new(Default::default())?;
    /// let (a, b) = UnixDatagram::pair(&sched)?;
    /// coro_core::sync_wait(sched.spawn(async move {
    ///     let (r, _) = b.recv_from_timeout(Vec::with_capacity(8), Duration::from_millis(5)).await;
    ///     assert_eq!(r.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
    ///     a.send(b"late".as_slice()).await.0.unwrap();
    ///     let (r, buf) = b.recv_from_timeout(buf_of(8), Duration::from_secs(5)).await;
    ///     assert_eq!((r.unwrap().0, &buf[..]), (4, &b"late"[..]));
    /// }))
    /// .unwrap();
    /// # fn buf_of(n: usize) -> Vec<u8> { Vec::with_capacity(n) }
    /// # std::io::Result::Ok(())
    /// ```
    pub async fn recv_from_timeout<B: IoBufMut>(
        &self,
        buf: B,
        timeout: Duration,
    ) -> BufResult<(usize, SocketAddr), B> {
        self.recv_from_until(buf, Some(timeout)).await
    }

    async fn recv_from_until<B: IoBufMut>(
        &self,
        buf: B,
        timeout: Option<Duration>,
    ) -> BufResult<(usize, SocketAddr), B> {
        let (driver, fd) = (self.sock.driver(), self.sock.raw());
        let (r, mut buf) = dgram::recv(&self.sock, buf, timeout, Some(&self.read_shut), |b| {
            op::recv_from_any(driver, fd, b)
        })
        .await;
        let r = match r {
            // The datagram is taken: its sender's address cannot fail it
            // (an unbound sender's zero-length address, or one std cannot
            // express, is reported as unnamed; see `peer_of`).
            Ok(r) => r.and_then(|(n, a)| Ok((n, peer_of(Ok(a))?))),
            Err(stop) => dgram::after_stop(
                &self.sock,
                &mut buf,
                stop,
                timeout,
                |n, from| sender(from).map(|a| (n, a)),
                || unnamed().map(|a| (0, a)),
            ),
        };
        (r, buf)
    }

    /// Send `buf` as one datagram to the connected peer, waiting while
    /// its queue is full.
    ///
    /// Unlike the stream and UDP sends this one calls `send(2)` itself when
    /// the socket is ready instead of handing the buffer to the driver: an
    /// io_uring send on a Unix datagram socket whose peer queue is full
    /// (seen on Linux 6.18) copies the message, meets the full queue, and
    /// is retried by the kernel with the message already consumed, so it
    /// delivers an empty datagram and reports 0 bytes sent.
    ///
    /// # Errors
    ///
    /// `NotConnected` without [`connect`](Self::connect) (or `pair`);
    /// `ConnectionRefused` once the peer is gone (the kernel then also
    /// discards this socket's receive queue: read the peer's last
    /// datagrams before sending); from `send`; an error when it must wait
    /// for room after its scheduler shut down.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the datagram is sent whole inside one poll of the
    /// future or not at all.
    pub async fn send<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        let sock = self.sock.sock_ref();
        let r = self
            .send_when_ready(|| sock.send_with_flags(init_bytes(&buf), SEND_FLAGS))
            .await;
        (r, buf)
    }

    /// Run `send` (a non-blocking send of one datagram) until the kernel
    /// takes it. A connected sender is woken when its peer's queue has
    /// room; an unconnected one is not (Linux reports it writable whatever
    /// the receiver's queue holds), so after a wake-up that did not help,
    /// it also sleeps, 1 ms doubling to 16 ms, before it tries again.
    async fn send_when_ready(
        &self,
        mut send: impl FnMut() -> io::Result<usize>,
    ) -> io::Result<usize> {
        const MAX_PAUSE: Duration = Duration::from_millis(16);
        // A send the kernel takes at once never waits: count it against the
        // task's budget as an op (yielding first, with nothing sent, once
        // it is spent; see `coro_io::coop`).
        coro_io::coop::consume_budget().await;
        let mut pause = Duration::ZERO;
        loop {
            match send() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
            if !pause.is_zero() {
                self.sock.retry_pause(pause).await?;
            }
            // Closed or an error: the next `send` reports what happened.
            self.sock.poll(PollOp::Write, Some(MAX_PAUSE)).await;
            pause = (pause * 2).clamp(Duration::from_millis(1), MAX_PAUSE);
        }
    }

    /// Receive one datagram from the connected peer: the bytes placed in
    /// the buffer (see [`recv_from`](Self::recv_from), also for `Ok(0)`).
    ///
    /// # Cancel safety
    ///
    /// On io_uring a dropped `recv` may lose the datagram; see
    /// [`recv_timeout`](Self::recv_timeout).
    pub async fn recv<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        self.recv_until(buf, None).await
    }

    /// [`recv`](Self::recv) with a deadline, losslessly (as
    /// [`recv_from_timeout`](Self::recv_from_timeout)).
    ///
    /// # Cancel safety
    ///
    /// The deadline is lossless; dropping the future itself is like
    /// dropping [`recv`](Self::recv).
    pub async fn recv_timeout<B: IoBufMut>(
        &self,
        buf: B,
        timeout: Duration,
    ) -> BufResult<usize, B> {
        self.recv_until(buf, Some(timeout)).await
    }

    async fn recv_until<B: IoBufMut>(
        &self,
        buf: B,
        timeout: Option<Duration>,
    ) -> BufResult<usize, B> {
        let (driver, fd) = (self.sock.driver(), self.sock.raw());
        let (r, mut buf) = dgram::recv(&self.sock, buf, timeout, Some(&self.read_shut), |b| {
            op::recv(driver, fd, b)
        })
        .await;
        let r = match r {
            Ok(r) => r,
            Err(stop) => {
                let got = |n, _| Ok(n);
                dgram::after_stop(&self.sock, &mut buf, stop, timeout, got, || Ok(0))
            }
        };
        (r, buf)
    }

    /// Wait until the socket is ready for `op`, at most `timeout`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn poll(&self, op: PollOp, timeout: Option<Duration>) -> PollStatus {
        self.sock.poll(op, timeout).await
    }

    /// The local address (unnamed if unbound).
    ///
    /// # Errors
    ///
    /// From `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        unix_addr(self.sock.sock_ref().local_addr()?)
    }

    /// The connected peer's address.
    ///
    /// # Errors
    ///
    /// `NotConnected` without [`connect`](Self::connect).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        unix_addr(self.sock.sock_ref().peer_addr()?)
    }

    /// Shut down the read side, the write side or both.
    ///
    /// After the read side is shut, receives (waiting ones too) return the
    /// datagrams queued before, then `Ok(0)`, as a blocking std socket's
    /// do. (Shut it with this method, not through the raw fd: the kernel
    /// itself gives a non-blocking datagram socket no end, only `EAGAIN`,
    /// and a receive through the driver would wait for ever.)
    ///
    /// # Errors
    ///
    /// From `shutdown(2)`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.read_shut
            .shut_down(how, || self.sock.sock_ref().shutdown(how))
    }

    /// `SO_RCVBUF`.
    ///
    /// # Errors
    ///
    /// From `setsockopt`.
    pub fn set_recv_buffer_size(&self, size: usize) -> io::Result<()> {
        self.sock
            .sock_ref()
            .set_recv_buffer_size(crate::socket::clamp_size(size))
    }

    /// `SO_SNDBUF`.
    ///
    /// # Errors
    ///
    /// From `setsockopt`.
    pub fn set_send_buffer_size(&self, size: usize) -> io::Result<()> {
        self.sock
            .sock_ref()
            .set_send_buffer_size(crate::socket::clamp_size(size))
    }

    /// A pending socket error (`SO_ERROR`), taken.
    ///
    /// # Errors
    ///
    /// From `getsockopt`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.sock.sock_ref().take_error()
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

impl AsFd for UnixDatagram {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.fd()
    }
}

impl AsRawFd for UnixDatagram {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.raw()
    }
}

/// The sender of a datagram taken without the driver, as `peer_of` reports
/// one: unnamed when it has no name std can express.
fn sender(from: Option<rustix::net::SocketAddrAny>) -> io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    let Some(a) = from.and_then(|a| rustix::net::SocketAddrUnix::try_from(a).ok()) else {
        return unnamed();
    };
    let named = if let Some(p) = a.path_bytes() {
        SocketAddr::from_pathname(Path::new(std::ffi::OsStr::from_bytes(p))).ok()
    } else {
        a.abstract_name()
            .and_then(|n| SocketAddr::from_abstract_name(n).ok())
    };
    named.map_or_else(unnamed, Ok)
}
