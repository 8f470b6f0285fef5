//! [`TcpSocket`]: a TCP socket configured before it becomes a listener or
//! a connection (bind before connect, address reuse, buffer sizes).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use coro_io::{IoScheduler, op};
use socket2::{Domain, Protocol, Type};

use super::{TcpListener, TcpStream};
use crate::socket::context;

/// A TCP socket not yet listening or connected: set its options, bind it
/// if you want a given local address, then [`listen`](TcpSocket::listen)
/// or [`connect`](TcpSocket::connect).
///
/// # Examples
///
/// ```
/// use coro_io::IoScheduler;
/// use coro_net::tcp::TcpSocket;
///
/// let sched = IoScheduler::new(Default::default())?;
/// let s = sched.clone();
/// coro_core::sync_wait(sched.spawn(async move {
///     let server = TcpSocket::new_v4(&s)?;
///     server.set_reuseaddr(true)?;
///     server.bind("127.0.0.1:0".parse().unwrap())?;
///     let listener = server.listen(128)?;
///     // A client that binds its own end first.
///     let client = TcpSocket::new_v4(&s)?;
///     client.bind("127.0.0.1:0".parse().unwrap())?;
///     let from = client.local_addr()?;
///     let conn = client.connect(listener.local_addr()?).await?;
///     let (_, peer) = listener.accept().await?;
///     assert_eq!(peer, from);
///     assert_eq!(conn.local_addr()?, from);
///     std::io::Result::Ok(())
/// }))
/// .unwrap()?;
/// # std::io::Result::Ok(())
/// ```
pub struct TcpSocket {
    sock: socket2::Socket,
    sched: IoScheduler,
}

impl fmt::Debug for TcpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpSocket")
            .field("fd", &self.sock.as_raw_fd())
            .finish()
    }
}

impl TcpSocket {
    /// A new IPv4 TCP socket (non-blocking, close-on-exec).
    ///
    /// # Errors
    ///
    /// As `socket(2)` (`EMFILE`, ...).
    pub fn new_v4(sched: &IoScheduler) -> io::Result<TcpSocket> {
        TcpSocket::new(sched, Domain::IPV4)
    }

    /// A new IPv6 TCP socket (non-blocking, close-on-exec).
    ///
    /// # Errors
    ///
    /// As `socket(2)`.
    pub fn new_v6(sched: &IoScheduler) -> io::Result<TcpSocket> {
        TcpSocket::new(sched, Domain::IPV6)
    }

    /// A new socket of the family `addr` belongs to.
    ///
    /// # Errors
    ///
    /// As `socket(2)`.
    pub fn new_for(sched: &IoScheduler, addr: SocketAddr) -> io::Result<TcpSocket> {
        TcpSocket::new(sched, Domain::for_address(addr))
    }

    fn new(sched: &IoScheduler, domain: Domain) -> io::Result<TcpSocket> {
        let sock = socket2::Socket::new(domain, Type::STREAM.nonblocking(), Some(Protocol::TCP))
            .map_err(|e| context(e, "socket"))?;
        Ok(TcpSocket {
            sock,
            sched: sched.clone(),
        })
    }

    /// `SO_REUSEADDR`: bind a port that has connections in `TIME_WAIT`.
    ///
    /// # Errors
    ///
    /// As `setsockopt(2)`.
    pub fn set_reuseaddr(&self, on: bool) -> io::Result<()> {
        self.sock.set_reuse_address(on)
    }

    /// Whether `SO_REUSEADDR` is set.
    ///
    /// # Errors
    ///
    /// As `getsockopt(2)`.
    pub fn reuseaddr(&self) -> io::Result<bool> {
        self.sock.reuse_address()
    }

    /// `SO_REUSEPORT`: several sockets listen on one port (the kernel
    /// spreads connections), one per thread say.
    ///
    /// # Errors
    ///
    /// As `setsockopt(2)`.
    pub fn set_reuseport(&self, on: bool) -> io::Result<()> {
        self.sock.set_reuse_port(on)
    }

    /// Whether `SO_REUSEPORT` is set.
    ///
    /// # Errors
    ///
    /// As `getsockopt(2)`.
    pub fn reuseport(&self) -> io::Result<bool> {
        self.sock.reuse_port()
    }

    /// `TCP_NODELAY` for the connection this becomes.
    ///
    /// # Errors
    ///
    /// As `setsockopt(2)`.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.sock.set_tcp_nodelay(on)
    }

    /// `SO_SNDBUF`.
    ///
    /// # Errors
    ///
    /// As `setsockopt(2)`.
    pub fn set_send_buffer_size(&self, size: u32) -> io::Result<()> {
        self.sock
            .set_send_buffer_size(crate::socket::clamp_size(size as usize))
    }

    /// `SO_RCVBUF` (set before `listen` to have accepted sockets inherit it).
    ///
    /// # Errors
    ///
    /// As `setsockopt(2)`.
    pub fn set_recv_buffer_size(&self, size: u32) -> io::Result<()> {
        self.sock
            .set_recv_buffer_size(crate::socket::clamp_size(size as usize))
    }

    /// `SO_KEEPALIVE`.
    ///
    /// # Errors
    ///
    /// As `setsockopt(2)`.
    pub fn set_keepalive(&self, on: bool) -> io::Result<()> {
        self.sock.set_keepalive(on)
    }

    /// `SO_LINGER` (`Some(ZERO)`: reset on close).
    ///
    /// # Errors
    ///
    /// As `setsockopt(2)`.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        self.sock.set_linger(crate::socket::clamp_linger(linger))
    }

    /// Bind to `addr` (port 0: the kernel picks).
    ///
    /// # Errors
    ///
    /// As `bind(2)` (`AddrInUse`, `AddrNotAvailable`), with the address in
    /// the message.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        self.sock
            .bind(&addr.into())
            .map_err(|e| context(e, format_args!("bind {addr}")))
    }

    /// The bound address.
    ///
    /// # Errors
    ///
    /// As `getsockname(2)`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IP socket address"))
    }

    /// Listen, with a queue of `backlog` pending connections.
    ///
    /// # Errors
    ///
    /// As `listen(2)`; `InvalidInput` for a backlog above `i32::MAX`.
    pub fn listen(self, backlog: u32) -> io::Result<TcpListener> {
        let backlog = i32::try_from(backlog).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("listen backlog {backlog} is too large"),
            )
        })?;
        self.sock
            .listen(backlog)
            .map_err(|e| context(e, "listen"))?;
        TcpListener::from_owned(&self.sched, self.sock.into())
    }

    /// Connect to `addr`.
    ///
    /// # Errors
    ///
    /// As `connect(2)` (`ConnectionRefused`, `TimedOut`, ...), with the
    /// address in the message.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped connect closes the socket.
    pub async fn connect(self, addr: SocketAddr) -> io::Result<TcpStream> {
        let stream = TcpStream::from_fd(&self.sched, self.sock.into());
        op::connect(self.sched.driver(), stream.as_raw_fd(), addr)
            .await
            .map_err(|e| context(e, format_args!("connect to {addr}")))?;
        Ok(stream)
    }
}

impl AsFd for TcpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl AsRawFd for TcpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

impl From<TcpSocket> for OwnedFd {
    fn from(s: TcpSocket) -> OwnedFd {
        s.sock.into()
    }
}
