//! [`TcpListener`] and its [`ListenOptions`].

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use coro_io::{IoScheduler, PollOp, PollStatus, op};
use socket2::{Domain, Protocol, Type};

use super::TcpStream;
use crate::addr::{ToSocketAddrs, resolve_now};
use crate::socket::{AcceptBackoff, Socket, context};

/// Options of [`TcpListener::bind_with`] (and [`UnixListener::bind_with`](crate::unix::UnixListener::bind_with),
/// which uses `backlog` only).
///
/// # Examples
///
/// ```
/// use coro_net::tcp::ListenOptions;
/// let o = ListenOptions { reuse_port: true, ..Default::default() };
/// assert_eq!(o.backlog, 1024);
/// assert!(o.reuse_addr);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenOptions {
    /// `listen(2)` backlog (the kernel caps it at `net.core.somaxconn`). Default 1024.
    pub backlog: u32,
    /// `SO_REUSEPORT`: several listeners (one per thread) share the port and
    /// the kernel spreads connections over them. Default `false`.
    pub reuse_port: bool,
    /// `SO_REUSEADDR`: bind even while old connections linger in TIME_WAIT.
    /// Default `true`.
    pub reuse_addr: bool,
    /// IPv6 addresses only: `IPV6_V6ONLY` (`Some(false)` = dual stack).
    /// `None` (default) leaves the system setting.
    pub only_v6: Option<bool>,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            backlog: 1024,
            reuse_port: false,
            reuse_addr: true,
            only_v6: None,
        }
    }
}

/// A TCP listening socket on an [`IoScheduler`].
///
/// # Examples
///
/// An echo of one message over loopback:
///
/// ```
/// use coro_io::IoScheduler;
/// use coro_net::tcp::{TcpListener, TcpStream};
///
/// let sched = IoScheduler::new(Default::default())?;
/// let listener = TcpListener::bind(&sched, "127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// let s = sched.clone();
/// let server = sched.spawn(async move {
///     let (conn, _peer) = listener.accept().await?;
///     let (n, buf) = conn.read(Vec::with_capacity(64)).await;
///     let (res, _) = conn.write_all(buf).await;
///     res.map(|()| n.unwrap())
/// });
/// let client = sched.spawn(async move {
///     let c = TcpStream::connect(&s, addr).await?;
///     c.write_all(b"ping".as_slice()).await.0?;
///     let (n, buf) = c.read(Vec::with_capacity(64)).await;
///     n?;
///     std::io::Result::Ok(buf)
/// });
/// assert_eq!(coro_core::sync_wait(client).unwrap()?, b"ping");
/// assert_eq!(coro_core::sync_wait(server).unwrap()?, 4);
/// # sched.shutdown();
/// # std::io::Result::Ok(())
/// ```
pub struct TcpListener {
    sock: Socket,
    local: SocketAddr,
    backoff: AcceptBackoff,
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("local_addr", &self.local)
            .field("fd", &self.sock.raw())
            .finish()
    }
}

impl TcpListener {
    /// Create a socket, bind it to `addr` and listen, with the default
    /// [`ListenOptions`] (`SO_REUSEADDR`, backlog 1024). Synchronous; each
    /// address `addr` names is tried in turn. Port 0 picks a free port
    /// ([`local_addr`](Self::local_addr) tells which).
    ///
    /// A host name in `addr` is resolved on this thread (`getaddrinfo`
    /// blocks); pass an IP address from the event loop.
    ///
    /// # Errors
    ///
    /// The last address's error (address in use, permission denied, ...),
    /// saying which address failed.
    pub fn bind(sched: &IoScheduler, addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        TcpListener::bind_with(sched, addr, ListenOptions::default())
    }

    /// [`bind`](Self::bind) with explicit [`ListenOptions`] (`SO_REUSEPORT`
    /// for one listener per thread, backlog, ...).
    ///
    /// # Errors
    ///
    /// As for [`bind`](Self::bind); also a backlog above `i32::MAX`.
    ///
    /// # Examples
    ///
    /// Two listeners share a port (the kernel spreads connections):
    ///
    /// ```
    /// use coro_net::tcp::{ListenOptions, TcpListener};
    /// let sched = coro_io::IoScheduler::new(Default::default())?;
    /// let opts = ListenOptions { reuse_port: true, ..Default::default() };
    /// let a = TcpListener::bind_with(&sched, "127.0.0.1:0", opts)?;
    /// let b = TcpListener::bind_with(&sched, a.local_addr()?, opts)?;
    /// assert_eq!(a.local_addr()?, b.local_addr()?);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn bind_with(
        sched: &IoScheduler,
        addr: impl ToSocketAddrs,
        opts: ListenOptions,
    ) -> io::Result<TcpListener> {
        let backlog = i32::try_from(opts.backlog).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("listen backlog {} is too large", opts.backlog),
            )
        })?;
        let mut last = None;
        for a in resolve_now(&addr)? {
            match listen_on(a, backlog, &opts) {
                Ok(fd) => return TcpListener::from_fd(sched, fd),
                Err(e) => last = Some(context(e, format_args!("bind/listen on {a}"))),
            }
        }
        Err(last.expect("resolve_now returns at least one address"))
    }

    /// Adopt a listening `std` socket (made non-blocking here).
    ///
    /// # Errors
    ///
    /// If it cannot be made non-blocking or has no local address.
    pub fn from_std(sched: &IoScheduler, l: std::net::TcpListener) -> io::Result<TcpListener> {
        l.set_nonblocking(true)?;
        TcpListener::from_fd(sched, l.into())
    }

    /// A listening socket made elsewhere in this crate (`TcpSocket`).
    pub(crate) fn from_owned(sched: &IoScheduler, fd: OwnedFd) -> io::Result<TcpListener> {
        TcpListener::from_fd(sched, fd)
    }

    fn from_fd(sched: &IoScheduler, fd: OwnedFd) -> io::Result<TcpListener> {
        let sock = Socket::new(sched, fd);
        crate::socket::check_listener(&sock)?;
        let local = sock
            .sock_ref()
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IP socket"))?;
        Ok(TcpListener {
            sock,
            local,
            backoff: AcceptBackoff::default(),
        })
    }

    /// Wait for a connection and accept it.
    ///
    /// Robust as a server loop needs: errors about one aborted connection
    /// (`ECONNABORTED`, and the network errors Linux passes on through
    /// accept) are skipped; running out of fds or memory (`EMFILE`,
    /// `ENFILE`, `ENOBUFS`, `ENOMEM`) pauses on the scheduler (5 ms doubling
    /// to 200 ms, logged once per listener to stderr) and retries, so the
    /// loop neither spins nor gives up while other connections close.
    ///
    /// Connections already waiting are taken at once, by a non-blocking
    /// `accept4(2)` in the poll: always on epoll; on io_uring once an
    /// accept's completion said more wait (Linux 6.10+), until none does,
    /// so that a burst of clients is not taken one per turn of the event
    /// loop (except on SQPOLL rings, which make no syscall of their own). So
    /// the listener's socket is non-blocking, and must stay so
    /// (the flag belongs to the open socket, shared by every duplicate of
    /// its fd: one made blocking elsewhere would block the event loop in
    /// `accept` until a client comes).
    ///
    /// # Errors
    ///
    /// Only errors about the listener itself (not listening, closed, ...).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a connection the kernel accepted for a dropped future
    /// (io_uring runs the accept in the kernel) is kept for the next
    /// `accept`, not closed, so a `select!` loop that drops an accept
    /// whenever another branch wins resets no client. (On epoll a dropped
    /// accept has taken nothing.)
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let inbox = self.backoff.inbox();
        loop {
            while let Some(fd) = inbox.take() {
                let stream = TcpStream::from_fd(self.sock.sched(), fd);
                // Without a peer it was reset meanwhile: take the next one.
                if let Ok(peer) = stream.peer_addr() {
                    self.backoff.succeeded();
                    return Ok((stream, peer));
                }
            }
            let accept = self.backoff.run(&self.sock, &self.local, || {
                op::accept_keeping(self.sock.driver(), self.sock.raw(), inbox)
            });
            // Also ready when a dropped accept's connection lands in the
            // inbox meanwhile (it lands there at the loop's next turn,
            // after this accept may have started).
            match crate::socket::or_inbox(accept, inbox).await {
                Ok(r) => {
                    let (fd, peer) = r?;
                    return Ok((TcpStream::from_fd(self.sock.sched(), fd), peer));
                }
                Err(fd) => {
                    let stream = TcpStream::from_fd(self.sock.sched(), fd);
                    if let Ok(peer) = stream.peer_addr() {
                        self.backoff.succeeded();
                        return Ok((stream, peer));
                    }
                }
            }
        }
    }

    /// Wait until a connection is ready to accept, at most `timeout`
    /// (libcoro's `server.poll()`).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn poll(&self, timeout: Option<Duration>) -> PollStatus {
        // A connection a dropped accept left for the next is ready too.
        if !self.backoff.inbox().is_empty() {
            return PollStatus::Event;
        }
        self.sock.poll(PollOp::Read, timeout).await
    }

    /// The address this listener is bound to.
    ///
    /// # Errors
    ///
    /// Never today (kept fallible, like `std`).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    /// The scheduler this listener runs on.
    pub fn scheduler(&self) -> &IoScheduler {
        self.sock.sched()
    }

    /// Close through the driver, reporting `close(2)`'s error (dropping the
    /// listener closes it too, silently).
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

    /// Give up the socket (it is unregistered from the driver first).
    ///
    /// Connections an `accept` dropped after the kernel had accepted them
    /// kept for the next `accept` (io_uring) cannot go back into the
    /// kernel's queue: they are closed here (their peers see the end).
    /// Where that matters, `accept` while [`poll`](Self::poll) with a zero
    /// timeout says one is waiting, before handing the socket on.
    pub fn into_std(self) -> std::net::TcpListener {
        self.sock.into_fd().into()
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.fd()
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.raw()
    }
}

fn listen_on(addr: SocketAddr, backlog: i32, opts: &ListenOptions) -> io::Result<OwnedFd> {
    let s = socket2::Socket::new(
        Domain::for_address(addr),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    if opts.reuse_addr {
        s.set_reuse_address(true)?;
    }
    if opts.reuse_port {
        s.set_reuse_port(true)?;
    }
    if let (SocketAddr::V6(_), Some(v6)) = (addr, opts.only_v6) {
        s.set_only_v6(v6)?;
    }
    s.bind(&addr.into())?;
    s.listen(backlog)?;
    Ok(s.into())
}
