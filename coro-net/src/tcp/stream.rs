//! [`TcpStream`].

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use coro_io::buf::{BufResult, IoBuf, IoBufMut};
use coro_io::{IoScheduler, PollOp, PollStatus, op};
use socket2::{Domain, Protocol, TcpKeepalive, Type};

use crate::addr::{ToSocketAddrs, resolve};
use crate::socket::{Socket, Stream, context, impl_futures_io};

/// A TCP connection on an [`IoScheduler`].
///
/// I/O comes two ways:
///
/// * owned buffers ([`read`](Self::read), [`write`](Self::write),
///   [`write_all`](Self::write_all)): the buffer moves into the operation and
///   comes back with the result, as io_uring needs; no copy. These take
///   `&self`, so one task may read while another writes (share the stream
///   with `Arc`).
/// * [`futures_io::AsyncRead`] + [`AsyncWrite`](futures_io::AsyncWrite),
///   for the `futures` ecosystem (`futures::io::copy`, codecs, ...): an
///   adapter that copies through buffers kept in the stream. The inherent
///   `read`/`write`/`write_all` shadow the `futures` extension methods of
///   the same names: call those as `AsyncWriteExt::write_all(&mut s, b)`.
///
/// Dropping the stream drops the driver's registration and closes the
/// socket; [`close`](Self::close) does it through the driver and reports
/// errors. The `AsyncWrite` adapter writes behind on io_uring (a
/// `poll_write` returns once its send is in the kernel; on epoll, once the
/// socket took the bytes): dropped with a send still in flight, the
/// stream hands it to a background task of its scheduler, which finishes
/// it (for at most 10 s) and then closes the socket, so that `write_all`
/// then drop, as in tokio code, loses nothing while the scheduler runs
/// (its shutdown cancels the task: `flush` or `close` before it, and to
/// learn the outcome).
///
/// Writes never raise `SIGPIPE` (`MSG_NOSIGNAL`): a peer that went away is
/// an `EPIPE`/`ECONNRESET` error on this stream only.
///
/// # Examples
///
/// See [`TcpListener`](super::TcpListener) for a client and a server.
pub struct TcpStream {
    pub(crate) inner: Stream,
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream")
            .field("fd", &self.inner.sock.raw())
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .finish()
    }
}

impl TcpStream {
    pub(crate) fn from_fd(sched: &IoScheduler, fd: OwnedFd) -> TcpStream {
        TcpStream {
            inner: Stream::new(Socket::new(sched, fd)),
        }
    }

    /// Connect to `addr`; each address it names is tried in turn (a host
    /// name is resolved on the blocking pool, never on the event loop).
    ///
    /// # Errors
    ///
    /// The last address's error, saying which address failed: kind
    /// `ConnectionRefused` when nothing listens, `TimedOut` when the peer
    /// never answered within the kernel's SYN retries (minutes; see
    /// [`connect_timeout`](Self::connect_timeout) for your own bound).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped connect closes its half-made socket.
    pub async fn connect(sched: &IoScheduler, addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let mut last = None;
        for a in resolve(&addr).await? {
            match connect_one(sched, a).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(context(e, format_args!("connect to {a}"))),
            }
        }
        Err(last.expect("resolve returns at least one address"))
    }

    /// Connect to `"host:port"` (or `"[v6]:port"`, or an address literal):
    /// the name is resolved with [`lookup_host`](crate::lookup_host)
    /// (`getaddrinfo` on the blocking pool, so `/etc/hosts` and nsswitch
    /// apply, in every build), then the addresses are raced in the manner
    /// of Happy Eyeballs (RFC 8305): families alternate, a new attempt
    /// starts every 250 ms while earlier ones are pending, or at once when
    /// one fails, and the first connection wins (the others are closed).
    /// A black-holed IPv6 address thus costs 250 ms, not the kernel's SYN
    /// timeout.
    ///
    /// # Errors
    ///
    /// The resolver's error (`InvalidInput` without a port, the
    /// `getaddrinfo` failure for an unknown name), or, when no address
    /// connects, one error listing every address with its failure
    /// (`connect to localhost:1: all 2 addresses failed: [::1]:1: ...;
    /// 127.0.0.1:1: ...`), of the kind they share (else the last one's).
    /// An address that never answers is only given up with the kernel's
    /// SYN retries (minutes): bound the call with
    /// [`IoScheduler::timeout`] if you need less.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped attempts close their sockets; a lookup still
    /// running finishes on its pool thread and is discarded.
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_net::tcp::{TcpListener, TcpStream};
    ///
    /// let sched = coro_io::IoScheduler::new(Default::default())?;
    /// let l = TcpListener::bind(&sched, "127.0.0.1:0")?;
    /// let port = l.local_addr()?.port();
    /// let s = sched.clone();
    /// let c = coro_core::sync_wait(sched.spawn(async move {
    ///     TcpStream::connect_host(&s, &format!("localhost:{port}")).await
    /// }))
    /// .unwrap()?;
    /// assert_eq!(c.peer_addr()?.port(), port);
    /// # std::io::Result::Ok(())
    /// ```
    pub async fn connect_host(sched: &IoScheduler, host: &str) -> io::Result<TcpStream> {
        let addrs = crate::lookup_host(sched, host)
            .await
            .map_err(|e| crate::socket::context(e, format_args!("connect to {host}: resolve")))?;
        super::happy::race(
            sched,
            host,
            super::happy::interleave(addrs),
            super::happy::ATTEMPT_DELAY,
        )
        .await
    }

    /// [`connect`](Self::connect) within `timeout` (name resolution included).
    ///
    /// # Errors
    ///
    /// Kind `TimedOut` ("connect to ...: timed out after ...") when the
    /// deadline passes first; otherwise as for `connect`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_net::tcp::TcpStream;
    /// use std::time::Duration;
    ///
    /// let sched = coro_io::IoScheduler::new(Default::default())?;
    /// let s = sched.clone();
    /// // Port 1 on loopback: nothing listens, the refusal comes at once.
    /// let r = coro_core::sync_wait(sched.spawn(async move {
    ///     TcpStream::connect_timeout(&s, "127.0.0.1:1", Duration::from_secs(5)).await
    /// }))
    /// .unwrap();
    /// assert_eq!(r.unwrap_err().kind(), std::io::ErrorKind::ConnectionRefused);
    /// # std::io::Result::Ok(())
    /// ```
    pub async fn connect_timeout(
        sched: &IoScheduler,
        addr: impl ToSocketAddrs,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        match sched
            .timeout(timeout, TcpStream::connect(sched, &addr))
            .await
        {
            Ok(r) => r,
            Err(_) => {
                let shown = crate::addr::describe(&addr);
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connect to {shown}: timed out after {timeout:?}"),
                ))
            }
        }
    }

    /// Adopt a connected `std` stream (made non-blocking here).
    ///
    /// # Errors
    ///
    /// If it cannot be made non-blocking.
    pub fn from_std(sched: &IoScheduler, s: std::net::TcpStream) -> io::Result<TcpStream> {
        s.set_nonblocking(true)?;
        Ok(TcpStream::from_fd(sched, s.into()))
    }

    /// Receive into `buf` (from its start, up to its capacity). `Ok(0)` is
    /// end of stream (or an empty buffer).
    ///
    /// # Cancel safety
    ///
    /// Lossless on epoll (a dropped read has read nothing) and on io_uring
    /// with its receive queue (Linux 6.0+, the default: bytes that arrived
    /// for a dropped read wait in the stream's queue for the next one; see
    /// [`UringOptions::multishot_recv`](coro_io::UringOptions::multishot_recv)).
    /// Not lossless with one receive op per read (io_uring without the
    /// queue): bytes the kernel copied into a dropped read's buffer are
    /// gone with it; there, use [`read_timeout`](Self::read_timeout) or the
    /// `AsyncRead` adapter (which keeps the in-flight read in the stream)
    /// when reads must be raced.
    // Not an `async fn`: the stream's own future, without a layer around it.
    pub fn read<B: IoBufMut>(&self, buf: B) -> impl Future<Output = BufResult<usize, B>> + '_ {
        self.inner.read(buf)
    }

    /// Receive the next bytes without copying them where the driver can:
    /// on io_uring with its receive queue (the default on Linux 6.0+) the
    /// lease holds them in the buffer the kernel received them into (up to
    /// 16 KiB, whatever `max` says), which goes back to the kernel when the
    /// lease is dropped; elsewhere, and while the kernel's ring of buffers
    /// is empty for this socket (leases and other sockets' unread bytes hold
    /// them all; or for good, if the kernel refused this socket a multishot
    /// receive), they are read into a `Vec` of up to `max` bytes (at most
    /// 16 KiB either way). Empty at the end of the stream.
    ///
    /// A lease is an [`IoBuf`](coro_io::buf::IoBuf): write it back out as
    /// it is and no byte is copied in user space (an echo, a proxy). Hold
    /// leases briefly: a held buffer is out of the kernel's ring.
    ///
    /// # Cancel safety
    ///
    /// As [`read`](Self::read): lossless on epoll and with the receive
    /// queue; with one receive op per read (io_uring without the queue) a
    /// dropped read loses what the kernel copied for it.
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> std::io::Result<()> {
    /// use coro_io::IoScheduler;
    /// use coro_net::tcp::{TcpListener, TcpStream};
    ///
    /// let sched = IoScheduler::new(Default::default())?;
    /// let listener = TcpListener::bind(&sched, "127.0.0.1:0")?;
    /// let addr = listener.local_addr()?;
    /// let s = sched.clone();
    /// let echoed = coro_core::sync_wait(sched.spawn(async move {
    ///     let client = TcpStream::connect(&s, addr).await?;
    ///     let (server, _) = listener.accept().await?;
    ///     client.write_all(b"ping".as_slice()).await.0?;
    ///     let got = server.read_lease(16 * 1024).await?;
    ///     // Echo from the kernel's buffer; it goes back when the write is done.
    ///     server.write_all(got).await.0?;
    ///     let (n, buf) = client.read(Vec::with_capacity(8)).await;
    ///     n.map(|_| buf)
    /// }))
    /// .expect("task")?;
    /// assert_eq!(echoed, b"ping");
    /// # sched.shutdown();
    /// # Ok(())
    /// # }
    /// ```
    pub async fn read_lease(&self, max: usize) -> io::Result<coro_io::buf::RecvLease> {
        self.inner.read_lease(max).await
    }

    /// [`read`](Self::read) with a deadline, losslessly: at the deadline
    /// the receive is cancelled and its outcome awaited, so data that
    /// arrived meanwhile is returned, not dropped. Times out with
    /// `(Err(TimedOut), buf)`: the buffer comes back either way.
    ///
    /// Prefer it to `sched.timeout(d, stream.read(buf))`: where reads are
    /// not lossless (io_uring without its receive queue), a read dropped by
    /// a timeout may lose the bytes the kernel already copied into its
    /// buffer.
    ///
    /// # Cancel safety
    ///
    /// The deadline is lossless; dropping the future itself is like
    /// dropping [`read`](Self::read).
    ///
    /// # Examples
    ///
    /// ```
    /// # use coro_io::IoScheduler;
    /// # use coro_net::tcp::{TcpListener, TcpStream};
    /// # use std::time::Duration;
    /// # let sched = IoScheduler::new(Default::default())?;
    /// # let s = sched.clone();
    /// # let h = sched.spawn(async move {
    /// # let l = TcpListener::bind(&s, "127.0.0.1:0")?;
    /// # let conn = TcpStream::connect(&s, l.local_addr()?).await?;
    /// let (res, buf) = conn.read_timeout(Vec::with_capacity(64), Duration::from_millis(5)).await;
    /// assert_eq!(res.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
    /// assert_eq!(buf.capacity(), 64);
    /// # std::io::Result::Ok(())
    /// # });
    /// # coro_core::sync_wait(h).unwrap()?;
    /// # std::io::Result::Ok(())
    /// ```
    pub async fn read_timeout<B: IoBufMut>(
        &self,
        buf: B,
        timeout: Duration,
    ) -> BufResult<usize, B> {
        self.inner.read_timeout(buf, timeout).await
    }

    /// Receive into `buf` without taking the bytes off the socket (the next
    /// read gets them again): `MSG_PEEK`. Waits for data like `read`;
    /// `Ok(0)` at the end of the stream.
    ///
    /// # Errors
    ///
    /// The socket's error (a reset). The kernel hands a socket error out
    /// once: where the driver keeps a receive queue (io_uring on Linux
    /// 6.0+) the read after the peek reports it too; on epoll and a plain ring the peek
    /// takes it, and the read after it sees the end of the stream.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a peek consumes no bytes.
    pub async fn peek<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        self.inner.peek(buf).await
    }

    /// `IP_TTL` (IPv4) / `IPV6_UNICAST_HOPS` (IPv6): how many hops the
    /// connection's packets may take.
    ///
    /// # Errors
    ///
    /// `InvalidInput` above 255 (the kernel would read `u32::MAX` as -1,
    /// "the system default", and say `Ok`); otherwise as `setsockopt(2)`.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        if ttl > 255 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("TTL {ttl} is above 255"),
            ));
        }
        let s = self.inner.sock.sock_ref();
        if self.speaks_ipv6()? {
            s.set_unicast_hops_v6(ttl)
        } else {
            s.set_ttl_v4(ttl)
        }
    }

    /// Whether the connection's packets are IPv6 ones: not for an IPv4
    /// peer of a dual-stack IPv6 socket (its local address is IPv4-mapped,
    /// and its packets take the IPv4 options).
    fn speaks_ipv6(&self) -> io::Result<bool> {
        Ok(match self.local_addr()? {
            SocketAddr::V6(a) => a.ip().to_ipv4_mapped().is_none(),
            SocketAddr::V4(_) => false,
        })
    }

    /// The connection's TTL (see [`set_ttl`](Self::set_ttl)).
    ///
    /// # Errors
    ///
    /// As `getsockopt(2)`.
    pub fn ttl(&self) -> io::Result<u32> {
        let s = self.inner.sock.sock_ref();
        if self.speaks_ipv6()? {
            s.unicast_hops_v6()
        } else {
            s.ttl_v4()
        }
    }

    /// Send the initialised bytes of `buf`; may send fewer (the count says).
    ///
    /// # Cancel safety
    ///
    /// On io_uring a dropped write may still send its bytes; on epoll it
    /// sent nothing.
    // Not an `async fn`: the stream's own future, without a layer around it.
    pub fn write<B: IoBuf>(&self, buf: B) -> impl Future<Output = BufResult<usize, B>> + '_ {
        self.inner.write(buf)
    }

    /// Send all initialised bytes of `buf` (several sends if needed).
    ///
    /// # Errors
    ///
    /// The first send error (`EPIPE`/`ECONNRESET` when the peer is gone;
    /// how much was sent before is not reported), or `WriteZero`.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a dropped `write_all` may have sent any prefix.
    // Not an `async fn`: the stream's own future, without a layer around it.
    pub fn write_all<B: IoBuf>(&self, buf: B) -> impl Future<Output = BufResult<(), B>> + '_ {
        self.inner.write_all(buf)
    }

    /// Wait until the stream is ready for `op`, at most `timeout`
    /// (libcoro's `client.poll(op)`).
    ///
    /// With a zero timeout it answers "would a read (or write) get
    /// something now?". Bytes in the socket count, also when the
    /// driver's receive queue (io_uring) has not taken them yet. On an
    /// SQPOLL ring, and a `COOP_TASKRUN` one run by a task that has not
    /// yielded since, the kernel may already have received them into a
    /// completion the loop has not reaped: those show at its next turn
    /// (a zero-timeout `Timeout` means "not yet", not "nothing sent").
    ///
    /// # Cancel safety
    ///
    /// Cancel safe (waiting consumes nothing).
    pub async fn poll(&self, op: PollOp, timeout: Option<Duration>) -> PollStatus {
        self.inner.poll(op, timeout).await
    }

    /// Shut down the read half, the write half (the peer reads end of
    /// stream; you can still read) or both.
    ///
    /// # Errors
    ///
    /// `NotConnected` if the connection is gone; `WouldBlock` for the
    /// write side while bytes written through `AsyncWrite` are still being
    /// sent (flush first: shutting down would lose them).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    /// Send what the `AsyncWrite` adapter accepted (this method shadows
    /// `AsyncWriteExt::close`), then close through the driver, reporting
    /// errors. Dropping the stream instead closes silently: at once, or
    /// (an adapter send still in flight on io_uring) after a background
    /// task finished that send (at most 10 s).
    ///
    /// # Errors
    ///
    /// A send error of the accepted bytes, or what `close(2)` reports.
    ///
    /// # Cancel safety
    ///
    /// The fd is closed exactly once whether or not this future is dropped.
    /// Dropped while it flushes, the send of accepted bytes is finished by
    /// a background task (at most 10 s, as when the stream is dropped),
    /// and its error, if any, goes unreported.
    pub async fn close(self) -> io::Result<()> {
        self.inner.close().await
    }

    /// `TCP_NODELAY`: send small segments at once (no Nagle delay).
    ///
    /// # Errors
    ///
    /// From `setsockopt`.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.inner.sock.sock_ref().set_tcp_nodelay(on)
    }

    /// Whether `TCP_NODELAY` is set.
    ///
    /// # Errors
    ///
    /// From `getsockopt`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.sock.sock_ref().tcp_nodelay()
    }

    /// TCP keepalive: `None` turns it off; `Some(idle)` turns it on with
    /// the first probe after `idle` without traffic.
    ///
    /// # Errors
    ///
    /// From `setsockopt`; an `idle` under one second or above 32,767
    /// seconds (Linux's bound) is `InvalidInput`, and keepalive is left
    /// as it was.
    pub fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        let s = self.inner.sock.sock_ref();
        match idle {
            None => s.set_keepalive(false),
            Some(d) if d < Duration::from_secs(1) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("keepalive idle time {d:?} is under one second"),
            )),
            // Checked here: socket2 turns keepalive on before it sets the
            // time, so the kernel's EINVAL would leave it on.
            Some(d) if d > Duration::from_secs(32_767) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("keepalive idle time {d:?} is above 32,767 seconds"),
            )),
            Some(d) => s.set_tcp_keepalive(&TcpKeepalive::new().with_time(d)),
        }
    }

    /// The keepalive idle time, or `None` when keepalive is off.
    ///
    /// # Errors
    ///
    /// From `getsockopt`.
    pub fn keepalive(&self) -> io::Result<Option<Duration>> {
        let s = self.inner.sock.sock_ref();
        if s.keepalive()? {
            s.tcp_keepalive_time().map(Some)
        } else {
            Ok(None)
        }
    }

    /// `SO_RCVBUF` (the kernel doubles the value and applies its limits).
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

    /// `SO_RCVBUF` as the kernel reports it.
    ///
    /// # Errors
    ///
    /// From `getsockopt`.
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        self.inner.sock.sock_ref().recv_buffer_size()
    }

    /// `SO_SNDBUF` (the kernel doubles the value and applies its limits).
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

    /// `SO_SNDBUF` as the kernel reports it.
    ///
    /// # Errors
    ///
    /// From `getsockopt`.
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        self.inner.sock.sock_ref().send_buffer_size()
    }

    /// `SO_LINGER`: `Some(Duration::ZERO)` makes close send a reset.
    ///
    /// # Errors
    ///
    /// From `setsockopt`.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        self.inner
            .sock
            .sock_ref()
            .set_linger(crate::socket::clamp_linger(linger))
    }

    /// The remote address.
    ///
    /// # Errors
    ///
    /// `NotConnected` once the connection is gone.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        ip_addr(self.inner.sock.sock_ref().peer_addr()?)
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// From `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        ip_addr(self.inner.sock.sock_ref().local_addr()?)
    }

    /// A pending socket error (`SO_ERROR`), taken.
    ///
    /// # Errors
    ///
    /// From `getsockopt`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.inner.sock.sock_ref().take_error()
    }

    /// Bytes received that no read took yet: held by the `AsyncRead`
    /// adapter, or (io_uring) in the stream's receive queue. They are
    /// dropped with the stream and by [`into_std`](Self::into_std).
    ///
    /// On io_uring it counts what the loop has taken from the kernel's
    /// completions: bytes received since its last turn (on an SQPOLL or
    /// a `COOP_TASKRUN` ring the kernel may receive them while the task
    /// runs) are not counted yet, and `into_std` drops them too. Before a
    /// hand-over, have the peer stop sending, then read until this is 0
    /// with a yield in between.
    pub fn buffered(&self) -> usize {
        self.inner.buffered_read()
    }

    /// The scheduler this stream runs on.
    pub fn scheduler(&self) -> &IoScheduler {
        self.inner.sock.sched()
    }

    /// Give up the socket (unregistered from the driver first). Bytes
    /// received but not read yet ([`buffered`](Self::buffered)) are
    /// dropped, and so are those of a receive of the `AsyncRead` adapter
    /// in flight (which `buffered` does not count); from the moment this
    /// returns, nothing of coro's takes bytes from the socket any more
    /// (io_uring: the receive queue's cancel is submitted first, and
    /// waited for until the kernel has read it for at most a second: on
    /// an SQPOLL ring whose SQ thread lags, from another thread than a
    /// single-issuer ring's event loop that is held up, or on a ring
    /// whose enters keep failing (no wait there), past that bound
    /// the receive may still take bytes that arrive meanwhile, and a
    /// close of the socket by its new owner then lets it take those of
    /// the next socket with the number).
    /// Flush the `AsyncWrite` adapter first: bytes it accepted and had
    /// not sent are dropped, and on io_uring a send it left waiting for
    /// room in the socket is cancelled, not stopped at once: room that
    /// comes before the cancel reaches the kernel (on a ring only the
    /// event loop enters, when that thread next submits) lets the send go
    /// on, after bytes the new owner may have written by then. The socket
    /// stays non-blocking (`O_NONBLOCK`):
    /// `set_nonblocking(false)` for blocking std I/O.
    pub fn into_std(self) -> std::net::TcpStream {
        self.inner.into_socket().into_fd().into()
    }

    /// Split into a read half and a write half that two tasks can own
    /// (see [`split`](crate::split)). Tasks can also share `&TcpStream`,
    /// which implements the same `futures_io` traits.
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_io::IoScheduler;
    /// use coro_net::tcp::{TcpListener, TcpStream};
    /// use futures::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// let sched = IoScheduler::new(Default::default())?;
    /// let s = sched.clone();
    /// let got = coro_core::sync_wait(sched.spawn(async move {
    ///     let l = TcpListener::bind(&s, "127.0.0.1:0")?;
    ///     let client = TcpStream::connect(&s, l.local_addr()?).await?;
    ///     let (server, _) = l.accept().await?;
    ///     let (rd, mut wr) = server.into_split();
    ///     // The writer half in its own task; dropping it ends the stream.
    ///     let writer = s.spawn(async move {
    ///         wr.write_all(b"from the writer task").await?;
    ///         wr.close().await
    ///     });
    ///     let mut text = String::new();
    ///     (&client).read_to_string(&mut text).await?;
    ///     writer.await.unwrap()?;
    ///     drop(rd);
    ///     std::io::Result::Ok(text)
    /// }))
    /// .unwrap()?;
    /// assert_eq!(got, "from the writer task");
    /// # std::io::Result::Ok(())
    /// ```
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        crate::split::split(self)
    }
}

/// [`TcpStream::into_split`]'s read half.
pub type OwnedReadHalf = crate::split::OwnedReadHalf<TcpStream>;
/// [`TcpStream::into_split`]'s write half.
pub type OwnedWriteHalf = crate::split::OwnedWriteHalf<TcpStream>;

impl coro_io::copy::ReadOwned for TcpStream {
    fn read_owned<B: IoBufMut>(
        &self,
        buf: B,
    ) -> impl std::future::Future<Output = BufResult<usize, B>> + Send {
        self.read(buf)
    }
}

impl coro_io::copy::WriteOwned for TcpStream {
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

impl crate::split::Splittable for TcpStream {
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    fn shutdown_write_later(self: std::sync::Arc<Self>) -> bool {
        crate::socket::shutdown_write_later(self, |s| &s.inner)
    }
}

impl_futures_io!(TcpStream);

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.sock.fd()
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.sock.raw()
    }
}

fn ip_addr(a: socket2::SockAddr) -> io::Result<SocketAddr> {
    a.as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an IP address"))
}

pub(crate) async fn connect_one(sched: &IoScheduler, addr: SocketAddr) -> io::Result<TcpStream> {
    let s = socket2::Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    // Owned by the stream before the connect starts: a dropped connect
    // closes the socket through the driver.
    let stream = TcpStream::from_fd(sched, s.into());
    op::connect(sched.driver(), stream.as_raw_fd(), addr).await?;
    Ok(stream)
}
