//! UDP: [`UdpSocket`].
//!
//! # Examples
//!
//! ```
//! use coro_net::udp::UdpSocket;
//!
//! let sched = coro_io::IoScheduler::new(Default::default())?;
//! let a = UdpSocket::bind(&sched, "127.0.0.1:0")?;
//! let b = UdpSocket::bind(&sched, "127.0.0.1:0")?;
//! let to = b.local_addr()?;
//! let from = a.local_addr()?;
//! let (got, peer) = coro_core::sync_wait(sched.spawn(async move {
//!     a.send_to(b"ping".as_slice(), to).await.0?;
//!     let (r, buf) = b.recv_from(Vec::with_capacity(64)).await;
//!     let (n, peer) = r?;
//!     assert_eq!(n, 4);
//!     std::io::Result::Ok((buf, peer))
//! }))
//! .unwrap()?;
//! assert_eq!((got.as_slice(), peer), (b"ping".as_slice(), from));
//! # std::io::Result::Ok(())
//! ```

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use coro_io::buf::{BufResult, IoBuf, IoBufMut};
use coro_io::{IoScheduler, PollOp, PollStatus, op};
use socket2::{Domain, Protocol, Type};

use crate::addr::{ToSocketAddrs, resolve, resolve_now};
use crate::dgram;
use crate::socket::{Socket, context};

/// What [`UdpSocket::recv_msg`] received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvMeta {
    /// Bytes placed in the buffer.
    pub len: usize,
    /// The datagram's full length: larger than `len` when it was truncated.
    pub datagram_len: usize,
    /// Where it came from.
    pub addr: SocketAddr,
}

impl RecvMeta {
    /// Whether the datagram did not fit in the buffer (its tail is lost).
    pub fn truncated(&self) -> bool {
        self.datagram_len > self.len
    }
}

/// A UDP socket on an [`IoScheduler`], with owned-buffer I/O.
///
/// One datagram per call: a receive buffer smaller than the datagram gets
/// its head and the rest is discarded by the kernel; [`recv_msg`](Self::recv_msg)
/// says when that happened.
pub struct UdpSocket {
    sock: Socket,
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("fd", &self.sock.raw())
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}

impl UdpSocket {
    /// Create a socket and bind it to `addr` (each address it names is
    /// tried in turn; a host name is resolved on this thread). Synchronous.
    ///
    /// # Errors
    ///
    /// The last address's error, saying which address failed.
    pub fn bind(sched: &IoScheduler, addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        let mut last = None;
        for a in resolve_now(&addr)? {
            let r = socket2::Socket::new(
                Domain::for_address(a),
                Type::DGRAM.nonblocking(),
                Some(Protocol::UDP),
            )
            .and_then(|s| s.bind(&a.into()).map(|()| s));
            match r {
                Ok(s) => {
                    return Ok(UdpSocket {
                        sock: Socket::new(sched, s.into()),
                    });
                }
                Err(e) => last = Some(context(e, format_args!("bind {a}"))),
            }
        }
        Err(last.expect("resolve_now returns at least one address"))
    }

    /// Adopt a `std` socket (made non-blocking here).
    ///
    /// # Errors
    ///
    /// If it cannot be made non-blocking.
    pub fn from_std(sched: &IoScheduler, s: std::net::UdpSocket) -> io::Result<UdpSocket> {
        s.set_nonblocking(true)?;
        Ok(UdpSocket {
            sock: Socket::new(sched, s.into()),
        })
    }

    /// Set the default peer: [`send`](Self::send) goes there, and only its
    /// datagrams are received from now on. Datagrams from other senders
    /// that arrived before (between `bind` and `connect`) are still queued,
    /// and [`recv`](Self::recv) returns them as any other (the kernel does
    /// not drop them): connect right after `bind`, or use
    /// [`recv_from`](Self::recv_from) and check the sender. A host name is
    /// resolved on the blocking pool.
    ///
    /// # Errors
    ///
    /// The last address's error.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe (the only wait is name resolution).
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        let mut last = None;
        for a in resolve(&addr).await? {
            match self.sock.sock_ref().connect(&a.into()) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(context(e, format_args!("connect UDP socket to {a}"))),
            }
        }
        Err(last.expect("resolve returns at least one address"))
    }

    /// Send `buf` as one datagram to `addr`: a name is looked up (on the
    /// blocking pool, as for [`connect`](Self::connect)) and the first of
    /// its addresses in this socket's family is used.
    ///
    /// # Errors
    ///
    /// From the lookup, or from `sendmsg` (`EMSGSIZE` for a datagram too
    /// large, ...).
    ///
    /// # Cancel safety
    ///
    /// On io_uring a dropped `send_to` may still send; on epoll it sent nothing.
    pub async fn send_to<B: IoBuf>(&self, buf: B, addr: impl ToSocketAddrs) -> BufResult<usize, B> {
        let to = match addr.single() {
            Some(a) => a,
            None => match resolve(&addr).await {
                // A name may give both families (`localhost`: `::1`
                // first, often): the first of this socket's own.
                Ok(all) => {
                    let v6 = self.local_addr().ok().map(|a| a.is_ipv6());
                    all.iter()
                        .copied()
                        .find(|a| v6.is_none_or(|v6| a.is_ipv6() == v6))
                        .unwrap_or(all[0])
                }
                Err(e) => return (Err(e), buf),
            },
        };
        op::send_to(self.sock.driver(), self.sock.raw(), buf, to).await
    }

    /// Receive one datagram into `buf`; resolves to the bytes placed in the
    /// buffer and the sender. A datagram larger than the buffer is cut
    /// silently; use [`recv_msg`](Self::recv_msg) to know.
    ///
    /// # Cancel safety
    ///
    /// On io_uring a dropped `recv_from` may lose a datagram; on epoll it
    /// received nothing. To give up after a while without that risk, use
    /// [`recv_from_timeout`](Self::recv_from_timeout).
    pub async fn recv_from<B: IoBufMut>(&self, buf: B) -> BufResult<(usize, SocketAddr), B> {
        op::recv_from(self.sock.driver(), self.sock.raw(), buf).await
    }

    /// [`recv_from`](Self::recv_from) with a deadline, losslessly: at the
    /// deadline the receive is cancelled and its outcome awaited, so a
    /// datagram that arrived meanwhile is returned, not dropped (unlike
    /// `sched.timeout(d, sock.recv_from(buf))` on io_uring). Times out with
    /// `(Err(TimedOut), buf)`.
    ///
    /// # Cancel safety
    ///
    /// The deadline is lossless; dropping the future itself is like
    /// dropping [`recv_from`](Self::recv_from).
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_net::udp::UdpSocket;
    /// use std::time::Duration;
    ///
    /// let sched = coro_io::IoScheduler::new(Default::default())?;
    /// let sock = UdpSocket::bind(&sched, "127.0.0.1:0")?;
    /// let (r, buf) = coro_core::sync_wait(sched.spawn(async move {
    ///     sock.recv_from_timeout(Vec::with_capacity(64), Duration::from_millis(5)).await
    /// }))
    /// .unwrap();
    /// assert_eq!(r.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
    /// assert_eq!(buf.capacity(), 64);
    /// # std::io::Result::Ok(())
    /// ```
    pub async fn recv_from_timeout<B: IoBufMut>(
        &self,
        buf: B,
        timeout: Duration,
    ) -> BufResult<(usize, SocketAddr), B> {
        let (driver, fd) = (self.sock.driver(), self.sock.raw());
        let (r, mut buf) = dgram::recv(&self.sock, buf, Some(timeout), None, |b| {
            op::recv_from(driver, fd, b)
        })
        .await;
        let r = match r {
            Ok(r) => r,
            Err(stop) => dgram::after_stop(
                &self.sock,
                &mut buf,
                stop,
                Some(timeout),
                |n, from| match from.map(SocketAddr::try_from) {
                    Some(Ok(from)) => Ok((n, from)),
                    _ => self.peer_addr().map(|from| (n, from)),
                },
                not_shut,
            ),
        };
        (r, buf)
    }

    /// Receive one datagram into `buf`, reporting its full length so that
    /// truncation is visible ([`RecvMeta::truncated`]).
    ///
    /// # Errors
    ///
    /// From `recvmsg`.
    ///
    /// # Cancel safety
    ///
    /// As [`recv_from`](Self::recv_from).
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_net::udp::UdpSocket;
    /// let sched = coro_io::IoScheduler::new(Default::default())?;
    /// let a = UdpSocket::bind(&sched, "127.0.0.1:0")?;
    /// let to = a.local_addr()?;
    /// let meta = coro_core::sync_wait(sched.spawn(async move {
    ///     a.send_to(vec![1u8; 100], to).await.0?;
    ///     let (r, buf) = a.recv_msg(Vec::with_capacity(10)).await;
    ///     assert_eq!(buf.len(), 10);
    ///     r
    /// }))
    /// .unwrap()?;
    /// assert!(meta.truncated());
    /// assert_eq!((meta.len, meta.datagram_len), (10, 100));
    /// # std::io::Result::Ok(())
    /// ```
    pub async fn recv_msg<B: IoBufMut>(&self, buf: B) -> BufResult<RecvMeta, B> {
        let cap = buf.bytes_total();
        let (r, buf) =
            op::recv_msg(self.sock.driver(), self.sock.raw(), buf, libc::MSG_TRUNC).await;
        let r = r.and_then(|m| {
            let addr = match m.addr {
                Some(a) => a,
                None => self.peer_addr()?,
            };
            Ok(RecvMeta {
                len: m.len.min(cap),
                datagram_len: m.len,
                addr,
            })
        });
        (r, buf)
    }

    /// Send `buf` to the connected peer.
    ///
    /// # Errors
    ///
    /// `NotConnected`/`EDESTADDRREQ` without [`connect`](Self::connect);
    /// `ConnectionRefused` after an ICMP port-unreachable from the peer.
    ///
    /// # Cancel safety
    ///
    /// As [`send_to`](Self::send_to).
    pub async fn send<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        op::send(self.sock.driver(), self.sock.raw(), buf).await
    }

    /// Receive one datagram from the connected peer (cut silently to `buf`).
    ///
    /// # Errors
    ///
    /// `ConnectionRefused` after an ICMP port-unreachable from the peer.
    ///
    /// # Cancel safety
    ///
    /// As [`recv_from`](Self::recv_from).
    pub async fn recv<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        op::recv(self.sock.driver(), self.sock.raw(), buf).await
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
        let (driver, fd) = (self.sock.driver(), self.sock.raw());
        let (r, mut buf) = dgram::recv(&self.sock, buf, Some(timeout), None, |b| {
            op::recv(driver, fd, b)
        })
        .await;
        let r = match r {
            Ok(r) => r,
            Err(stop) => {
                let got = |n, _| Ok(n);
                dgram::after_stop(&self.sock, &mut buf, stop, Some(timeout), got, not_shut)
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

    /// The local address.
    ///
    /// # Errors
    ///
    /// From `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        ip(self.sock.sock_ref().local_addr()?)
    }

    /// The connected peer's address.
    ///
    /// # Errors
    ///
    /// `NotConnected` without [`connect`](Self::connect).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        ip(self.sock.sock_ref().peer_addr()?)
    }

    /// `SO_BROADCAST`.
    ///
    /// # Errors
    ///
    /// From `setsockopt`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.sock.sock_ref().set_broadcast(on)
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

impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.fd()
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.raw()
    }
}

fn ip(a: socket2::SockAddr) -> io::Result<SocketAddr> {
    a.as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an IP address"))
}

/// A UDP receive is never stopped by a read shutdown (it has no
/// `shutdown`): `dgram::recv` stops for one only when asked to watch it.
fn not_shut<T>() -> io::Result<T> {
    Err(io::Error::other(
        "a UDP receive ended by a read shutdown it did not watch",
    ))
}
